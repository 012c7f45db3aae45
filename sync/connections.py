"""Open a provider for an integration: decrypt its credentials, build its client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from models import Integration, Provider
from models.vault import Vault
from sync.providers.base import FieldMap, PsaProvider
from sync.providers.connectwise import mapping as connectwise_mapping
from sync.providers.connectwise.client import ConnectWiseClient
from sync.providers.connectwise.credentials import ConnectWiseCredentials
from sync.providers.connectwise.provider import ConnectWiseProvider
from sync.providers.http import RetryPolicy
from sync.providers.urls import build_http_client

ProviderFactory = Callable[[Integration], Awaitable[PsaProvider]]


class _OwnedConnectWise(ConnectWiseProvider):
    """A provider that closes the HTTP client it was given when it is closed."""

    def __init__(self, client: ConnectWiseClient, http: httpx.AsyncClient) -> None:
        super().__init__(client)
        self._http = http

    async def aclose(self) -> None:
        await self._http.aclose()


def connectwise_provider(
    credentials: ConnectWiseCredentials,
    *,
    sandbox: bool,
    transport: httpx.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
) -> PsaProvider:
    http = build_http_client(transport=transport)
    client = ConnectWiseClient(http, credentials, sandbox=sandbox, retry=retry or RetryPolicy())
    return _OwnedConnectWise(client, http)


def provider_factory(
    vault: Vault,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
) -> ProviderFactory:
    async def open_provider(integration: Integration) -> PsaProvider:
        if integration.provider != Provider.CONNECTWISE_MANAGE:
            raise NotImplementedError(f"no provider for {integration.provider}")
        credentials = ConnectWiseCredentials.from_dict(integration.credentials(vault))
        return connectwise_provider(
            credentials, sandbox=integration.sandbox, transport=transport, retry=retry
        )

    return open_provider


FIELD_MAPS: dict[Provider, FieldMap] = {
    Provider.CONNECTWISE_MANAGE: connectwise_mapping.FIELD_MAP,
}


def field_map(provider: Provider | str) -> FieldMap:
    return FIELD_MAPS.get(Provider(provider), FieldMap(mapped={}))
