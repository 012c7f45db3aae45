"""What a PSA plugs into the webhook receiver: a verifier and a parser, nothing else.

The receiver (``webhooks.app``) owns the order of work on the request path: size limit,
known integration, ``verify`` over the raw body, ``parse``, store, answer. A source only
knows its PSA's signature scheme and payload names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from models.enums import AssetKind, Provider
from models.text import NUL, SURROGATE, text_fault


class Rejected(Exception):
    """The request is refused; ``status`` is the HTTP answer (401 signature, 400 payload)."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadSignature(Rejected):
    status = 401


class BadPayload(Rejected):
    status = 400


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """What a source may know of the integration a delivery is addressed to."""

    integration_id: str
    provider: Provider
    site_url: str  # the PSA's address as configured (host the PSA's key URLs must be on)
    sandbox: bool  # a loopback sandbox: plain http allowed
    # A shared webhook secret, for PSAs that sign with one (never in a repr).
    secret: str | None = field(repr=False)
    # The integration's own company at the PSA (ConnectWise's company id), for sources that
    # check that a signing key is this company's; None when unknown.
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification in psasync's words: a hint that a record changed."""

    dedupe_key: str  # the PSA's message id, or a hash of the body when it sends none
    action: str  # "added" | "updated" | "deleted"
    kind: AssetKind | None  # None: an entity psasync does not sync (ignored when processed)
    psa_id: int | None
    member: str | None = None  # the PSA user who made the change
    stamp: int | None = None  # the record's last-update time in the notice, epoch seconds


class WebhookSource(Protocol):
    provider: Provider

    def read(self, text: str) -> dict[str, Any]:
        """The decoded body as this PSA's JSON object, read within bounds (``json_object``);
        ``BadPayload`` when it is not one. The receiver calls it before anything else."""
        ...

    async def verify(
        self,
        target: WebhookTarget,
        headers: Mapping[str, str],
        body: bytes,
        message: Mapping[str, Any] | None = None,
    ) -> None:
        """Raise ``BadSignature`` unless the body is signed by the PSA (constant-time compare
        over the raw bytes). ``message`` is ``read``'s answer (read here when None). May raise
        ``BadPayload`` when the body is too broken to tell."""
        ...

    def parse(self, body: bytes, message: Mapping[str, Any] | None = None) -> Notice:
        """The notice in a verified body; ``BadPayload`` when it is not one (every field the
        notice takes is checked: what the inbox stores can always be stored)."""
        ...


# -- reading a notice's fields (shared by the sources) ---------------------------------------------
#
# A body is unverified input until its signature is checked, and a stored notice goes into a
# group commit with other PSAs' notices: anything the database could refuse (an id outside
# BIGINT, a NUL or a lone surrogate in text) is refused here, as 400, so one bad delivery
# cannot fail the others' INSERT.

DEDUPE_MAX: Final = 128  # WebhookDelivery.dedupe_key
MEMBER_MAX: Final = 254  # WebhookDelivery.member
MAX_ID: Final = 2**63 - 1  # WebhookDelivery.psa_id is a signed 64-bit BIGINT
MAX_DEPTH: Final = 32  # a notification is 2 levels deep, its ConnectWise Entity about 4
MAX_MEMBERS: Final = 10_000  # object members and array items in one document


def json_object(text: str, what: str) -> dict[str, Any]:
    """``text`` as a JSON object, read within bounds (``read_json``); ``BadPayload`` naming
    ``what`` it should have been."""
    message = read_json(text)
    if not isinstance(message, dict):
        raise BadPayload(f"Not a {what}: the body is not a JSON object.")
    return message


def read_json(text: str) -> Any:
    """JSON no deeper than ``MAX_DEPTH`` with at most ``MAX_MEMBERS`` members in all;
    ``BadPayload`` otherwise (never a RecursionError: 100,000 ``[`` are a bad body, not a
    crash)."""
    if text[:1] == "\ufeff":  # a UTF-8 byte order mark, as json.loads(bytes) allowed
        text = text[1:]
    try:
        value = json.loads(text)
    except RecursionError:
        raise BadPayload(f"The JSON is nested deeper than {MAX_DEPTH} levels.") from None
    except ValueError:
        raise BadPayload("The body is not valid JSON.") from None
    members = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadPayload(f"The JSON is nested deeper than {MAX_DEPTH} levels.")
        items = node.values() if isinstance(node, dict) else node
        members += len(items)
        if members > MAX_MEMBERS:
            raise BadPayload(f"The JSON has more than {MAX_MEMBERS} members.")
        stack.extend((item, depth + 1) for item in items if isinstance(item, dict | list))
    return value


def decode(body: bytes) -> str:
    """The body as text: strict UTF-8, so what is stored is the text that was signed (no
    replacement characters, no NULs from a UTF-16 body); ``BadPayload`` otherwise."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPayload("The body is not UTF-8 JSON.") from None


def storable_text(value: str, name: str, what: str) -> str:
    """``value`` when the database can store it as text: no NUL, no lone surrogate."""
    fault = text_fault(value)
    if fault == NUL:
        raise BadPayload(f"Not a {what}: {name} contains a NUL character.")
    if fault == SURROGATE:
        raise BadPayload(f"Not a {what}: {name} is not valid Unicode.")
    return value


def record_id(value: object, name: str, what: str) -> int:
    """A PSA record id: a JSON integer, or a string of ASCII digits, from 1 to 2^63 - 1."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        digits = value.strip()
        # isdigit alone takes "²" and "٣", which int() refuses or reads: ASCII only.
        if 0 < len(digits) <= 19 and digits.isascii() and digits.isdigit():
            number = int(digits)
    if number is None or not 1 <= number <= MAX_ID:
        raise BadPayload(f"Not a {what}: {name} must be an integer from 1 to 2^63 - 1.")
    return number


def dedupe_key(message_id: object, body: bytes, what: str = "notification") -> str:
    """The PSA's message id (hashed when too long for the column), or the body's SHA-256
    when it sends none: a redelivery is then stored once."""
    if isinstance(message_id, int | str) and not isinstance(message_id, bool):
        key = storable_text(str(message_id), "the message id", what).strip()
        if key:
            if len(key) <= DEDUPE_MAX:
                return key
            return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return hashlib.sha256(body).hexdigest()


def member(value: object, what: str = "notification") -> str | None:
    """The PSA user a notice names (an id or a name), as text; None when absent or not an id
    or a name (it is only a hint), ``BadPayload`` when it is text that cannot be stored."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | str):
        name = storable_text(str(value), "the member", what).strip()
        return name[:MEMBER_MAX] or None
    return None


def epoch_seconds(value: object) -> int | None:
    """An ISO 8601 time (``Z``, an offset, or none: UTC; .NET's seven fractional digits
    allowed) as epoch seconds; None when it cannot be read."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, tail = text.partition(".")
    if dot:  # keep microseconds: fromisoformat takes at most six digits
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = f"{head}.{tail[: min(digits, 6)]}{tail[digits:]}"
    try:
        when = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return int(when.timestamp())
    except (ValueError, OverflowError):
        return None
