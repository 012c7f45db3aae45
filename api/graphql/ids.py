"""Relay global ids: an opaque ``base64("Type:id")`` per object, decoded with a type check.

Ids are UUIDs, or integers for sequence-keyed tables (webhook deliveries).
"""

from __future__ import annotations

import base64
import binascii
import uuid


class InvalidId(ValueError):
    pass


def to_global(type_name: str, local_id: uuid.UUID | str | int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{local_id}".encode()).decode().rstrip("=")


def _decoded(value: str) -> tuple[str, str]:
    try:
        padded = value + "=" * (-len(value) % 4)
        type_name, _, raw = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidId(f"{value!r} is not a psasync id") from exc
    return type_name, raw


def parse_global(value: str) -> tuple[str, uuid.UUID]:
    type_name, raw = _decoded(value)
    try:
        return type_name, uuid.UUID(raw)
    except ValueError as exc:
        raise InvalidId(f"{value!r} is not a psasync id") from exc


def global_type(value: str) -> str:
    """The type an id names (whatever its key), or InvalidId."""
    return _decoded(value)[0]


BIGINT_MAX = 2**63 - 1


def from_global(value: str, *expected: str) -> uuid.UUID:
    """The local id of ``value``, which must name one of the ``expected`` types."""
    type_name, local_id = parse_global(value)
    _check(value, type_name, expected)
    return local_id


def from_global_int(value: str, *expected: str) -> int:
    """The integer key of ``value`` (a sequence-keyed type), which must name one of
    ``expected``."""
    type_name, raw = _decoded(value)
    # Sequence keys are BIGINT: a larger number names nothing (and the database would refuse
    # it as a parameter, failing the query instead of answering "not found").
    if not raw.isascii() or not raw.isdigit() or int(raw) > BIGINT_MAX:
        raise InvalidId(f"{value!r} is not a psasync id")
    _check(value, type_name, expected)
    return int(raw)


def _check(value: str, type_name: str, expected: tuple[str, ...]) -> None:
    if expected and type_name not in expected:
        raise InvalidId(f"{value!r} is a {type_name} id, not a {' or '.join(expected)} id")
