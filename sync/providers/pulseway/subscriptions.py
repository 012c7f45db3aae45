"""Pulseway PSA webhooks registered through its admin API (``/v2/admin/webhooks``, psa-apis.md
4.9) as ``PsaSubscriptions``.

- **Kinds**: only the asset kinds whose events ``GET /v2/admin/webhooks/events/lookup`` lists
  (Account*, Contact*, HardwareAsset*/Asset*). Pulseway documents webhooks for ticket events
  only, so on such a tenant ``kinds`` is empty, nothing is registered and polling covers
  accounts, contacts and assets as before. The lookup is read on each ``list``.
- **One webhook per kind**, named ``psasync <kind>``, carrying that kind's event ids (never
  ``SendAllEvents``), the callback URL the engine passes and the integration's webhook secret
  (the receiver checks ``X-Signature`` with it, ``webhooks.py``). Without a secret nothing is
  registered (every delivery would be refused): the rows say why.
- **No list endpoint**: Pulseway has ``GET /v2/admin/webhooks/{id}`` only, so ``list`` reads
  the ids psasync registered (the engine passes them through ``track``); one gone (404) is
  left out, so the engine registers it again.
- An API user without the admin right gets 403: ``PermissionDenied``, which the engine
  records on the subscription rows as a failure; the integration keeps polling and the
  manual set-up (README) still applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from models.enums import AssetKind
from sync.errors import FatalError, ProtocolError, RecordError
from sync.providers.base import PsaSubscription
from sync.providers.pulseway.client import PulsewayClient, Record

# Event-name prefixes (lower-cased) per kind; Pulseway's events are ``<Entity><Verb>``.
_ENTITIES: dict[AssetKind, tuple[str, ...]] = {
    AssetKind.ORGANIZATION: ("account",),
    AssetKind.CONTACT: ("contact",),
    AssetKind.CONFIGURATION: ("hardwareasset", "asset"),
}
_VERBS = ("created", "updated", "deleted")
_NAME = "psasync "
_CONTENT_TYPE_JSON = 1  # ContentType 1 = application/json (assumed, as in the simulator)


def _kind_of(event_name: str) -> AssetKind | None:
    name = event_name.strip().lower()
    if not name.endswith(_VERBS):
        return None
    entity = next(name[: -len(v)] for v in _VERBS if name.endswith(v))
    return next((k for k, names in _ENTITIES.items() if entity in names), None)


def _field(raw: Record, name: str) -> Any:
    """A field in either casing (``payloadUrl``, ``PayloadURL``, ``payloadURL`` …)."""
    wanted = name.lower()
    return next((v for k, v in raw.items() if k.lower() == wanted), None)


class PulsewaySubscriptions:
    """Webhook registrations through Pulseway PSA's admin webhooks API."""

    def __init__(self, client: PulsewayClient, secret: str | None) -> None:
        self.client = client
        self.secret = secret
        # Until the lookup answers, every kind might be notified (a 403 is reported on each).
        self.kinds: frozenset[AssetKind] = frozenset(_ENTITIES)
        self._events: dict[AssetKind, list[int]] = {}
        self._known: dict[int, AssetKind] = {}

    def track(self, registrations: Iterable[tuple[int, AssetKind]]) -> None:
        """The webhooks psasync registered before (their ids are not listable)."""
        self._known.update(registrations)

    async def refresh_kinds(self) -> frozenset[AssetKind]:
        """Read the events lookup: the kinds with at least one listed event."""
        events: dict[AssetKind, list[int]] = {}
        for raw in await self.client.webhook_events():
            name, event_id = _field(raw, "name"), _field(raw, "id")
            kind = _kind_of(name) if isinstance(name, str) else None
            if kind is not None and isinstance(event_id, int) and not isinstance(event_id, bool):
                events.setdefault(kind, []).append(event_id)
        self._events = events
        self.kinds = frozenset(events)
        return self.kinds

    async def list(self) -> list[PsaSubscription]:
        """The tracked webhooks that still exist (a 404 one is forgotten)."""
        await self.refresh_kinds()
        found: list[PsaSubscription] = []
        for psa_id, kind in sorted(self._known.items()):
            try:
                raw = await self.client.get_webhook(psa_id)
            except RecordError as error:
                if error.status_code != 404:
                    raise
                del self._known[psa_id]
                continue
            url = _field(raw, "payloadUrl")
            if isinstance(url, str):
                # Disabled, or its secret dropped in the UI: not active (made again).
                has_secret = _field(raw, "hasSecret")
                active = _field(raw, "isEnabled") is not False and has_secret in (True, None)
                found.append(PsaSubscription(psa_id, kind, url, active=active))
        return found

    async def create(self, kind: AssetKind, url: str) -> PsaSubscription:
        if not self._events:
            await self.refresh_kinds()
        if not self.secret:
            # Every delivery would be refused (401): say so instead of registering.
            raise FatalError(
                "the integration has no webhook secret: set one to have Pulseway PSA's "
                "webhooks registered (polling covers every record meanwhile)"
            )
        events = self._events.get(kind)
        if not events:
            raise ValueError(f"Pulseway PSA lists no webhook events for {kind.value} records")
        body: dict[str, Any] = {
            "name": f"{_NAME}{kind.value}",
            "payloadURL": url,
            "isEnabled": True,
            "contentType": _CONTENT_TYPE_JSON,
            "sendAllEvents": False,
            "events": events,
            "secret": self.secret,
        }
        raw = await self.client.create_webhook(body)
        psa_id = _field(raw, "id")
        if not isinstance(psa_id, int) or isinstance(psa_id, bool):
            raise ProtocolError("Pulseway PSA answered POST /v2/admin/webhooks with no webhook id")
        self._known[psa_id] = kind
        return PsaSubscription(psa_id, kind, url)

    async def delete(self, psa_id: int) -> None:
        """DELETE the webhook; one already gone (404) counts as removed."""
        try:
            await self.client.delete_webhook(psa_id)
        except RecordError as error:
            if error.status_code != 404:
                raise
        self._known.pop(psa_id, None)
