"""The PSAs psasync can connect to, and opening a provider for an integration.

Each PSA is one ``Connector``: how to read its stored credentials, open its provider, which
columns it syncs, and its defaults. This module is the only place outside a provider's own
package that names it; everything else asks a connector.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from models import Integration, Provider
from models.enums import ReferenceKind
from models.vault import Vault
from sync.providers.base import FieldMap, PsaProvider
from sync.providers.connectwise import mapping as connectwise_mapping
from sync.providers.connectwise.client import ConnectWiseClient
from sync.providers.connectwise.credentials import ConnectWiseApi, ConnectWiseCredentials
from sync.providers.connectwise.provider import ConnectWiseProvider
from sync.providers.connectwise.soap import ConnectWiseSoapClient
from sync.providers.connectwise.soap_provider import ConnectWiseSoapProvider
from sync.providers.http import RetryPolicy, Sleep
from sync.providers.pulseway import mapping as pulseway_mapping
from sync.providers.pulseway.client import PulsewayClient
from sync.providers.pulseway.credentials import PulsewayCredentials
from sync.providers.pulseway.provider import PulsewayProvider
from sync.providers.urls import build_http_client

ProviderFactory = Callable[[Integration], Awaitable[PsaProvider]]

# Pulseway PSA allows about 1,500 calls per hour per endpoint (psa-apis.md §4.10).
DEFAULT_CALLS_PER_HOUR = 1500


class Credentials(Protocol):
    """What every PSA's credentials offer (secrets never appear in ``repr``)."""

    @property
    def site_url(self) -> str: ...

    def to_dict(self) -> Mapping[str, Any]: ...

    def set_fields(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Options:
    """How providers are opened in this process (tests and benches change them)."""

    transport: httpx.AsyncBaseTransport | None = None
    retry: RetryPolicy | None = None
    # Calls per hour per endpoint, for a PSA that budgets them (Pulseway PSA).
    calls_per_hour: int = DEFAULT_CALLS_PER_HOUR
    # The wall clock and the sleep a budgeting client waits with (None: the real ones);
    # tests pass a virtual pair so an hour's budget does not take an hour.
    clock: Callable[[], float] | None = None
    sleep: Sleep | None = None


OpenProvider = Callable[[Any, bool, Options], PsaProvider]


@dataclass(frozen=True)
class CredentialSet:
    """Credentials that are tested on their own at setup. ``field``: the credential field an
    error about them names (None: the credentials as a whole); ``fields``: what the set is
    made of, to tell whether an update touched it."""

    credentials: Any
    field: str | None = None
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Connector:
    provider: Provider
    display_name: str
    field_map: FieldMap
    # Setup's parser (CLI, API): what a new integration must give.
    read_credentials: Callable[[Mapping[str, Any]], Credentials]
    open: OpenProvider
    # The receiver's path segment for its notifications: /webhooks/{webhook_path}/{id}.
    webhook_path: str
    # The integration is created with two-way sync on (the user can turn it off).
    two_way_default: bool = False
    # Credential fields that are secrets: never returned by the API.
    secret_fields: tuple[str, ...] = ()
    # What the Sync Settings screen suggests first, by reference list (names not present in
    # the PSA are ignored); every other value starts disabled.
    recommended: Mapping[ReferenceKind, Sequence[str]] = field(default_factory=dict)
    # The parser of stored credentials when it accepts more than setup does (None: the same).
    read_stored_credentials: Callable[[Mapping[str, Any]], Credentials] | None = None
    # The sets setup tests, the one the integration uses first (None: all in one set).
    credential_sets: Callable[[Any], Sequence[CredentialSet]] | None = None

    def sets(self, credentials: Credentials) -> Sequence[CredentialSet]:
        """The credential sets to test, the one in use first."""
        if self.credential_sets is None:
            return (CredentialSet(credentials),)
        return self.credential_sets(credentials)


class _Owned:
    """A provider that closes the HTTP client it was given when it is closed."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def aclose(self) -> None:
        await self._http.aclose()


class _OwnedConnectWise(_Owned, ConnectWiseProvider):
    def __init__(self, client: ConnectWiseClient, http: httpx.AsyncClient) -> None:
        ConnectWiseProvider.__init__(self, client)
        _Owned.__init__(self, http)


class _OwnedConnectWiseSoap(_Owned, ConnectWiseSoapProvider):
    def __init__(self, client: ConnectWiseSoapClient, http: httpx.AsyncClient) -> None:
        ConnectWiseSoapProvider.__init__(self, client)
        _Owned.__init__(self, http)


class _OwnedPulseway(_Owned, PulsewayProvider):
    def __init__(self, client: PulsewayClient, http: httpx.AsyncClient) -> None:
        PulsewayProvider.__init__(self, client)
        _Owned.__init__(self, http)


def connectwise_provider(
    credentials: ConnectWiseCredentials,
    *,
    sandbox: bool,
    transport: httpx.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
) -> PsaProvider:
    """REST when the credentials hold the REST keys (with both sets too, as the seed asks);
    the legacy SOAP API (reads and writes) with the integrator login alone."""
    http = build_http_client(transport=transport)
    if not credentials.has_rest_keys:
        soap = ConnectWiseSoapClient(
            http, credentials, sandbox=sandbox, retry=retry or RetryPolicy()
        )
        return _OwnedConnectWiseSoap(soap, http)
    client = ConnectWiseClient(http, credentials, sandbox=sandbox, retry=retry or RetryPolicy())
    return _OwnedConnectWise(client, http)


def pulseway_provider(
    credentials: PulsewayCredentials, *, sandbox: bool, options: Options | None = None
) -> PsaProvider:
    options = options or Options()
    http = build_http_client(transport=options.transport)
    client = PulsewayClient(
        http,
        credentials,
        sandbox=sandbox,
        retry=options.retry or RetryPolicy(),
        budget_per_hour=options.calls_per_hour,
        clock=options.clock or time.time,
        sleep=options.sleep or asyncio.sleep,
    )
    return _OwnedPulseway(client, http)


def connectwise_sets(credentials: ConnectWiseCredentials) -> Sequence[CredentialSet]:
    """REST first when its keys are given (it is then the API in use); the integrator login
    is tested alone, through SOAP, so an error says which of the two sets is wrong."""
    sets = []
    if credentials.has_rest_keys:
        sets.append(CredentialSet(credentials, "private_key", ("public_key", "private_key")))
    if credentials.has_integrator_login:
        sets.append(
            CredentialSet(
                credentials.soap_only(),
                "integrator_password",
                ("integrator_login_id", "integrator_password"),
            )
        )
    return sets


# What the Sync Settings screen suggests first (features.md §A2), in each PSA's words.
_CONNECTWISE_RECOMMENDED: Mapping[ReferenceKind, Sequence[str]] = {
    ReferenceKind.ORGANIZATION_TYPE: ("Client",),
    ReferenceKind.ORGANIZATION_STATUS: ("Active",),
    ReferenceKind.CONFIGURATION_TYPE: (
        "Managed Server",
        "Managed Workstation",
        "Network Device",
        "Firewall",
    ),
    ReferenceKind.CONFIGURATION_STATUS: ("Active",),
}
# Pulseway's default account types call clients "Customer"; asset states are not a scope.
_PULSEWAY_RECOMMENDED: Mapping[ReferenceKind, Sequence[str]] = {
    ReferenceKind.ORGANIZATION_TYPE: ("Customer", "Client"),
    ReferenceKind.ORGANIZATION_STATUS: ("Active",),
    ReferenceKind.CONFIGURATION_TYPE: (
        "Server",
        "Workstation",
        "Laptop",
        "Network Device",
        "Firewall",
    ),
    ReferenceKind.CONFIGURATION_STATUS: ("In Use", "In Stock", "Active"),
}

CONNECTORS: Mapping[Provider, Connector] = {
    Provider.CONNECTWISE_MANAGE: Connector(
        provider=Provider.CONNECTWISE_MANAGE,
        display_name=ConnectWiseProvider.display_name,
        field_map=connectwise_mapping.FIELD_MAP,
        # REST keys, the integrator login, or both; a stored integration too.
        read_credentials=ConnectWiseCredentials.from_input,
        read_stored_credentials=ConnectWiseCredentials.from_stored,
        credential_sets=connectwise_sets,
        webhook_path="connectwise",
        open=lambda credentials, sandbox, options: connectwise_provider(
            credentials, sandbox=sandbox, transport=options.transport, retry=options.retry
        ),
        secret_fields=ConnectWiseCredentials.secret_fields,
        recommended=_CONNECTWISE_RECOMMENDED,
    ),
    Provider.PULSEWAY_PSA: Connector(
        provider=Provider.PULSEWAY_PSA,
        display_name=PulsewayProvider.display_name,
        field_map=pulseway_mapping.FIELD_MAP,
        read_credentials=PulsewayCredentials.from_dict,
        webhook_path="pulseway",
        open=lambda credentials, sandbox, options: pulseway_provider(
            credentials, sandbox=sandbox, options=options
        ),
        # The Pulseway two-way sync article: "Enable two-way sync" is checked by default.
        two_way_default=True,
        secret_fields=PulsewayCredentials.secret_fields,
        recommended=_PULSEWAY_RECOMMENDED,
    ),
}


def connector(provider: Provider | str) -> Connector:
    try:
        return CONNECTORS[Provider(provider)]
    except (KeyError, ValueError):
        raise NotImplementedError(f"no provider for {provider}") from None


def open_provider(
    provider: Provider | str,
    credentials: Credentials,
    *,
    sandbox: bool,
    options: Options | None = None,
) -> PsaProvider:
    return connector(provider).open(credentials, sandbox, options or Options())


def provider_factory(
    vault: Vault,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
    calls_per_hour: int = DEFAULT_CALLS_PER_HOUR,
    clock: Callable[[], float] | None = None,
    sleep: Sleep | None = None,
) -> ProviderFactory:
    options = Options(
        transport=transport,
        retry=retry,
        calls_per_hour=calls_per_hour,
        clock=clock,
        sleep=sleep,
    )

    async def open_for(integration: Integration) -> PsaProvider:
        found = connector(integration.provider)
        read = found.read_stored_credentials or found.read_credentials
        credentials = read(integration.credentials(vault))
        return found.open(credentials, integration.sandbox, options)

    return open_for


def provider_api(provider: PsaProvider) -> str | None:
    """Which of its PSA's APIs an open provider speaks, for a PSA reached through more than
    one (ConnectWise: "REST" or "SOAP"); None for a PSA with one API."""
    if isinstance(provider, ConnectWiseSoapProvider):
        return ConnectWiseApi.SOAP.value
    if isinstance(provider, ConnectWiseProvider):
        return ConnectWiseApi.REST.value
    return None


# The field tables that differ by API, keyed ``"{provider}:{api}"`` (``field_table``).
_API_FIELD_MAPS: Mapping[str, FieldMap] = {
    f"{Provider.CONNECTWISE_MANAGE}:{ConnectWiseApi.SOAP}": connectwise_mapping.SOAP_FIELD_MAP,
}


def field_table(provider: Provider | str, api: str | None) -> str:
    """The key of the field table an integration syncs by: its PSA, and the API its last run
    used where the tables differ (ConnectWise through SOAP writes fewer columns than REST).
    A plain string, so callers can cache by it; ``field_map`` takes it like a provider."""
    key = f"{provider}:{api}"
    return key if key in _API_FIELD_MAPS else str(provider)


def table_of(integration: Any) -> str:
    """``field_table`` of an ``Integration`` (or anything with ``provider`` and
    ``synced_api``)."""
    return field_table(integration.provider, getattr(integration, "synced_api", None))


def field_map(table: Provider | str) -> FieldMap:
    """The columns a PSA syncs (``table``: a provider, or a ``field_table`` key)."""
    found = _API_FIELD_MAPS.get(str(table))
    if found is not None:
        return found
    try:
        return connector(str(table).partition(":")[0]).field_map
    except NotImplementedError:
        return FieldMap(mapped={})
