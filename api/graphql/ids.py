"""Relay global ids: an opaque ``base64("Type:uuid")`` per object, decoded with a type check."""

from __future__ import annotations

import base64
import binascii
import uuid


class InvalidId(ValueError):
    pass


def to_global(type_name: str, local_id: uuid.UUID | str) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{local_id}".encode()).decode().rstrip("=")


def parse_global(value: str) -> tuple[str, uuid.UUID]:
    try:
        padded = value + "=" * (-len(value) % 4)
        type_name, _, raw = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        return type_name, uuid.UUID(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidId(f"{value!r} is not a psasync id") from exc


def from_global(value: str, *expected: str) -> uuid.UUID:
    """The local id of ``value``, which must name one of the ``expected`` types."""
    type_name, local_id = parse_global(value)
    if expected and type_name not in expected:
        raise InvalidId(f"{value!r} is a {type_name} id, not a {' or '.join(expected)} id")
    return local_id
