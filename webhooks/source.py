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

    async def verify(self, target: WebhookTarget, headers: Mapping[str, str], body: bytes) -> None:
        """Raise ``BadSignature`` unless the body is signed by the PSA (constant-time compare
        over the raw bytes). May raise ``BadPayload`` when the body is too broken to tell."""
        ...

    def parse(self, body: bytes) -> Notice:
        """The notice in a verified body; ``BadPayload`` when it is not one."""
        ...


# -- reading a notice's fields (shared by the sources) ---------------------------------------------

DEDUPE_MAX: Final = 128  # WebhookDelivery.dedupe_key
MEMBER_MAX: Final = 254  # WebhookDelivery.member


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """The body as a JSON object; ``BadPayload`` naming ``what`` it should have been."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPayload("The body is not valid JSON.") from exc
    if not isinstance(message, dict):
        raise BadPayload(f"Not a {what}: the body is not a JSON object.")
    return message


def dedupe_key(message_id: object, body: bytes) -> str:
    """The PSA's message id (hashed when too long for the column), or the body's SHA-256
    when it sends none: a redelivery is then stored once."""
    if isinstance(message_id, int | str) and not isinstance(message_id, bool):
        text = str(message_id).strip()
        if text:
            if len(text) <= DEDUPE_MAX:
                return text
            return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return hashlib.sha256(body).hexdigest()


def member(value: object) -> str | None:
    """The PSA user a notice names (an id or a name), as text; None when absent."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | str):
        text = str(value).strip()
        return text[:MEMBER_MAX] or None
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
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())
