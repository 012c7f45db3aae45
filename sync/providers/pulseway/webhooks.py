"""Pulseway PSA webhooks: the signature check and the payload's words (our assumption).

Pulseway PSA's webhooks are configured in its admin UI (Admin → Integrations → Webhooks:
Name, Payload URL, Enabled, Secret, events); their payload and signature are undocumented
(psa-apis.md 4.9). psasync assumes, and documents in ``docs/pulseway-webhooks.md``:

- **Signature**: ``X-Signature: sha256=<hex>`` where ``<hex>`` is the lowercase hex
  HMAC-SHA256 of the raw body keyed with the webhook's shared secret (UTF-8). The same digest
  as bare hex (any case) or as base64 is accepted too (senders differ); nothing else. The
  secret is the integration's ``webhook_secret``; without one every delivery is refused.
- **Payload**: a JSON object, keys in any case::

      {"id": "<delivery guid>", "eventType": "AccountUpdated", "entityType": "Account",
       "entityId": 123, "timestamp": "2026-06-09T21:59:47Z", "modifiedById": 7}

  ``entityType`` names the record (Account, Contact, HardwareAsset or Asset, Location or
  AccountLocation; anything else is stored without a kind and ignored), ``eventType`` ends in
  Created, Updated or Deleted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final

from models.enums import AssetKind, Provider
from webhooks.source import (
    BadPayload,
    BadSignature,
    Notice,
    WebhookTarget,
    decode,
    dedupe_key,
    epoch_seconds,
    json_object,
    member,
    record_id,
)

__all__ = ["KINDS", "SIGNATURE_HEADER", "PulsewayWebhooks", "signature"]

SIGNATURE_HEADER: Final = "x-signature"
_WHAT: Final = "Pulseway PSA webhook"
_PREFIX: Final = "sha256="
# Pulseway entity types psasync syncs (lower-cased); every other type is stored and ignored.
KINDS: Final[Mapping[str, AssetKind]] = {
    "account": AssetKind.ORGANIZATION,
    "contact": AssetKind.CONTACT,
    "hardwareasset": AssetKind.CONFIGURATION,
    "asset": AssetKind.CONFIGURATION,
    "location": AssetKind.LOCATION,
    "accountlocation": AssetKind.LOCATION,
}
# eventType suffix -> Notice.action.
_ACTIONS: Final = (("created", "added"), ("updated", "updated"), ("deleted", "deleted"))
_DIGEST_SIZE: Final = hashlib.sha256().digest_size
_HEX: Final = frozenset("0123456789abcdefABCDEF")


def signature(secret: str, body: bytes) -> str:
    """The ``X-Signature`` header value for ``body`` signed with ``secret``: ``sha256=<hex>``."""
    return _PREFIX + _digest(secret, body).hex()


class PulsewayWebhooks:
    """The Pulseway PSA ``WebhookSource``: verifies deliveries and reads them as ``Notice``."""

    provider = Provider.PULSEWAY_PSA
    # The receiver fills ``WebhookTarget.secret`` from the integration's credentials.
    signs_with_secret = True

    def read(self, text: str) -> dict[str, Any]:
        """The delivery's JSON object within bounds, keys lower-cased (the first spelling of
        each wins: entityId, EntityId, entityID)."""
        folded: dict[str, Any] = {}
        for key, value in json_object(text, _WHAT).items():
            folded.setdefault(key.lower(), value)
        return folded

    async def verify(
        self,
        target: WebhookTarget,
        headers: Mapping[str, str],
        body: bytes,
        message: Mapping[str, Any] | None = None,
    ) -> None:
        """Raise ``BadSignature`` unless ``X-Signature`` is the body's HMAC with the secret."""
        if not target.secret:
            raise BadSignature(
                "This integration has no webhook secret: set the integration's webhook secret "
                "to the Secret of the webhook in Pulseway PSA (Admin → Integrations → Webhooks); "
                "unsigned deliveries are refused."
            )
        header = headers.get(SIGNATURE_HEADER)
        if not header or not header.strip():
            raise BadSignature(f"The {SIGNATURE_HEADER} header is missing.")
        sent = _sent_digest(header.strip())
        if sent is None:
            raise BadSignature(
                f"The {SIGNATURE_HEADER} header is not an HMAC-SHA256 digest "
                "(sha256=<hex>, hex or base64)."
            )
        if not hmac.compare_digest(sent, _digest(target.secret, body)):
            raise BadSignature(
                f"The {SIGNATURE_HEADER} header does not match the body signed with the "
                "integration's webhook secret."
            )

    def parse(self, body: bytes, message: Mapping[str, Any] | None = None) -> Notice:
        """The notice in a delivery body; ``BadPayload`` when the body is not one."""
        if message is None:
            message = self.read(decode(body))
        event = message.get("eventtype")
        entity = message.get("entitytype")
        if not isinstance(event, str) or not event.strip():
            raise BadPayload("Not a Pulseway PSA webhook: eventType is missing.")
        action = _action(event.strip().lower())
        if action is None:
            raise BadPayload(
                "Not a Pulseway PSA webhook: eventType must end in Created, Updated or Deleted."
            )
        if not isinstance(entity, str) or not entity.strip():
            raise BadPayload("Not a Pulseway PSA webhook: entityType is missing.")
        return Notice(
            dedupe_key=dedupe_key(message.get("id"), body, _WHAT),
            action=action,
            kind=KINDS.get(entity.strip().lower()),
            psa_id=record_id(message.get("entityid"), "entityId", _WHAT),
            member=member(message.get("modifiedbyid"), _WHAT),
            stamp=epoch_seconds(message.get("timestamp")),
        )


# -- pure helpers ----------------------------------------------------------------------------------


def _digest(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()


def _sent_digest(header: str) -> bytes | None:
    """The digest a header value carries (``sha256=<hex>``, bare hex, base64), or None."""
    text = header[len(_PREFIX) :] if header[: len(_PREFIX)].lower() == _PREFIX else header
    if len(text) == 2 * _DIGEST_SIZE:
        return bytes.fromhex(text) if all(c in _HEX for c in text) else None
    if text is header:  # base64 only bare: "sha256=" announces hex
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return None
        return raw if len(raw) == _DIGEST_SIZE else None
    return None


def _action(event: str) -> str | None:
    for suffix, action in _ACTIONS:
        if event.endswith(suffix):
            return action
    return None
