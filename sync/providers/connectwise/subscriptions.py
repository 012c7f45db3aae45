"""ConnectWise callback entries (``system/callbacks``, psa-apis.md 2.1) as ``PsaSubscriptions``.

psasync registers one entry per kind at level ``owner`` (every record of that type), so
ConnectWise POSTs to the URL whenever a company, contact or configuration is added, updated
or deleted. Sites have no documented callbacks; they stay polled through their company.
"""

from __future__ import annotations

from typing import Any

from models.enums import AssetKind
from sync.errors import ProtocolError, RecordError
from sync.providers.base import PsaSubscription
from sync.providers.connectwise.client import ConnectWiseClient, Record, Resource
from sync.providers.connectwise.mapping import CALLBACK_TYPES

_KINDS_BY_TYPE = {callback_type: kind for kind, callback_type in CALLBACK_TYPES.items()}
_DESCRIPTION_MAX_LENGTH = 100


class ConnectWiseSubscriptions:
    """Webhook registrations through ConnectWise's callback entries."""

    kinds: frozenset[AssetKind] = frozenset(CALLBACK_TYPES)

    def __init__(self, client: ConnectWiseClient) -> None:
        self.client = client

    async def list(self) -> list[PsaSubscription]:
        """Every callback entry for companies, contacts and configurations (all pages);
        entries for other types (tickets …), or without an id or URL, are left out."""
        found: list[PsaSubscription] = []
        async for page in self.client.callbacks():
            found.extend(s for raw in page if (s := _subscription(raw)) is not None)
        return found

    async def create(self, kind: AssetKind, url: str) -> PsaSubscription:
        """Register ``url`` for every record of ``kind`` (level ``owner``). ConnectWise
        appends the record id to the URL when it calls it."""
        callback_type = CALLBACK_TYPES.get(kind)
        if callback_type is None:
            raise ValueError(f"ConnectWise has no callbacks for {kind.value} records")
        body: dict[str, Any] = {
            "url": url,
            "objectId": 1,  # the owner level's object, per ConnectWise's guide
            "type": callback_type,
            "level": "owner",
            "description": f"psasync {kind.value}"[:_DESCRIPTION_MAX_LENGTH],
            "inactiveFlag": False,
            # Our own writes are notified too: the engine recognises their echo itself.
            "isSelfSuppressedFlag": False,
        }
        created = _subscription(await self.client.create(Resource.CALLBACKS, body))
        if created is None:
            raise ProtocolError("ConnectWise answered POST system/callbacks with no usable entry")
        return created

    async def delete(self, psa_id: int) -> None:
        """DELETE the callback entry; one already gone (404) counts as removed."""
        try:
            await self.client.delete(Resource.CALLBACKS, psa_id)
        except RecordError as error:
            if error.status_code != 404:
                raise


def _subscription(raw: Record) -> PsaSubscription | None:
    """The entry as a subscription, or None when it is not for a kind psasync syncs."""
    callback_type, psa_id, url = raw.get("type"), raw.get("id"), raw.get("url")
    kind = _KINDS_BY_TYPE.get(callback_type.lower()) if isinstance(callback_type, str) else None
    if kind is None or not isinstance(url, str):
        return None
    if not isinstance(psa_id, int) or isinstance(psa_id, bool):
        return None
    return PsaSubscription(psa_id, kind, url, active=not raw.get("inactiveFlag"))
