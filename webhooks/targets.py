"""Which integration a delivery is addressed to: looked up by id, cached for a few seconds.

A busy PSA posts many notifications a second for one integration; one query per request would
be most of the request's database work. A cached answer is at most ``ttl`` seconds old: an
integration deleted meanwhile is caught by the inbox's foreign key (404), and a changed site
URL is seen within ``ttl``. Unknown ids are cached too (bounded), so a flood of made-up ids
costs one query each per ``ttl``, not one per request.

For providers that sign with a shared secret (``signed_with_secret``), the target carries the
integration's ``webhook_secret`` from its encrypted credentials, decrypted at lookup and kept
in memory only as long as the cached target. It is never logged. For providers whose signing
keys name a company (``tenant_credentials``: ConnectWise's ``company_id``), the target
carries that credential as ``tenant``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from typing import Any

from models import Integration, Provider
from models.vault import Vault, VaultError
from webhooks.source import WebhookTarget

__all__ = ["Targets"]

log = logging.getLogger("psasync.webhooks")


class Targets:
    """``WebhookTarget`` by (provider, integration id); None for no such integration."""

    def __init__(
        self,
        *,
        vault: Vault | None = None,
        signed_with_secret: Collection[Provider] = (),
        tenant_credentials: Mapping[Provider, str] | None = None,
        ttl: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._vault = vault
        self._signed_with_secret = frozenset(signed_with_secret)
        self._tenant_credentials = dict(tenant_credentials or {})
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[uuid.UUID, tuple[float, WebhookTarget | None]] = OrderedDict()

    async def get(self, provider: Provider, integration_id: uuid.UUID) -> WebhookTarget | None:
        now = self._clock()
        cached = self._cache.get(integration_id)
        if cached is not None and cached[0] > now:
            target = cached[1]
        else:
            target = await self._load(integration_id)
            self._cache[integration_id] = (now + self.ttl, target)
            self._cache.move_to_end(integration_id)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        if target is None or target.provider != provider:
            return None
        return target

    def forget(self, integration_id: uuid.UUID) -> None:
        self._cache.pop(integration_id, None)

    async def _load(self, integration_id: uuid.UUID) -> WebhookTarget | None:
        rows = await (
            Integration.filter(id=integration_id)
            .limit(1)
            .values_list("provider", "site_url", "sandbox", "credentials_token")
        )
        if not rows:
            return None
        provider, site_url, sandbox, token = rows[0]
        provider = Provider(provider)
        secret = tenant = None
        tenant_field = self._tenant_credentials.get(provider)
        if provider in self._signed_with_secret or tenant_field is not None:
            credentials = self._credentials(integration_id, str(token))
            if provider in self._signed_with_secret:
                secret = _text(credentials.get("webhook_secret"))
            if tenant_field is not None:
                tenant = _text(credentials.get(tenant_field))
        return WebhookTarget(
            integration_id=str(integration_id),
            provider=provider,
            site_url=str(site_url),
            # The stored flag is the trust: only the operator (CLI, demo) or, where
            # PSASYNC_ALLOW_SANDBOX allows it, an API client can have set it, and it only ever
            # lets a key come over plain http from loopback.
            sandbox=bool(sandbox),
            secret=secret,
            tenant=tenant,
        )

    def _credentials(self, integration_id: uuid.UUID, token: str) -> dict[str, Any]:
        """The integration's credentials (``Integration.credentials``); empty — deliveries
        refused — when they cannot be read here."""
        if self._vault is None:
            log.warning("webhook: no vault to read integration %s's credentials", integration_id)
            return {}
        try:
            return self._vault.decrypt(token)
        except VaultError as exc:
            log.warning("webhook: integration %s's credentials: %s", integration_id, exc)
            return {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
