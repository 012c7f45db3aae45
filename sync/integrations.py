"""Setting up an integration: test the connection, then store it and queue its first sync.

Nothing is stored when the PSA cannot be reached or refuses the credentials: the user gets
an error naming what is wrong (``INVALID_CREDENTIALS``, ``UNREACHABLE``, ``INSECURE_URL``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tortoise.transactions import in_transaction

from models import (
    Account,
    Integration,
    Provider,
    ReferenceKind,
    RunTrigger,
    SyncRun,
    SyncState,
)
from models.vault import Vault
from sync import jobs, reference
from sync.connections import connectwise_provider
from sync.errors import CredentialsError, InsecureUrlError, SyncError, UnreachableError
from sync.providers.base import PsaProvider, PsaReference
from sync.providers.connectwise.credentials import ConnectWiseCredentials
from sync.providers.urls import validate_psa_url

# What the Sync Settings screen suggests first (features.md §A2); everything else starts
# disabled. Names not present in the PSA are ignored.
RECOMMENDED: Mapping[ReferenceKind, Sequence[str]] = {
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


class IntegrationSetupError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def try_connection(provider: PsaProvider) -> dict[ReferenceKind, list[PsaReference]]:
    """Check the credentials and read the reference lists, mapping failures to setup codes."""
    try:
        await provider.check_connection()
        return await provider.reference_data()
    except CredentialsError as exc:
        raise IntegrationSetupError("INVALID_CREDENTIALS", exc.message) from exc
    except InsecureUrlError as exc:
        raise IntegrationSetupError("INSECURE_URL", exc.message) from exc
    except UnreachableError as exc:
        raise IntegrationSetupError("UNREACHABLE", exc.message) from exc
    except SyncError as exc:
        raise IntegrationSetupError("CONNECTION_FAILED", exc.message) from exc


async def add_connectwise(
    account: Account,
    credentials: ConnectWiseCredentials,
    vault: Vault,
    *,
    name: str = "ConnectWise Manage",
    sandbox: bool = False,
    enable: Mapping[ReferenceKind, Sequence[str]] | None = None,
    contacts_enabled: bool = True,
    sync_interval_seconds: int = 3600,
    provider: PsaProvider | None = None,
) -> tuple[Integration, SyncRun]:
    """Create a ConnectWise integration after a successful connection test."""
    try:
        site_url = await validate_psa_url(
            credentials.site_url, sandbox=sandbox, service="ConnectWise"
        )
    except InsecureUrlError as exc:
        raise IntegrationSetupError("INSECURE_URL", exc.message) from exc
    except UnreachableError as exc:
        raise IntegrationSetupError("UNREACHABLE", exc.message) from exc
    owned = provider is None
    provider = provider or connectwise_provider(credentials, sandbox=sandbox)
    try:
        lists = await try_connection(provider)
    finally:
        if owned:
            await provider.aclose()

    wanted = RECOMMENDED if enable is None else enable
    async with in_transaction():
        integration = Integration(
            account=account,
            provider=Provider.CONNECTWISE_MANAGE,
            name=name,
            site_url=site_url,
            sandbox=sandbox,
            contacts_enabled=contacts_enabled,
            sync_interval_seconds=sync_interval_seconds,
        )
        integration.set_credentials(vault, credentials.to_dict())
        await integration.save()
        await reference.sync_reference_data(integration, lists)
        for kind, names in wanted.items():
            present = {r.name.casefold() for r in lists.get(kind, [])}
            chosen = [n for n in names if n.casefold() in present]
            if enable is not None and len(chosen) != len(names):
                missing = sorted(set(names) - set(chosen))
                known = ", ".join(sorted(r.name for r in lists.get(kind, [])))
                raise IntegrationSetupError(
                    "UNKNOWN_REFERENCE",
                    f"{kind.value.replace('_', ' ')} not in the PSA: {', '.join(missing)} "
                    f"(the PSA has: {known})",
                )
            await reference.set_sync_state(integration, kind, chosen, SyncState.ENABLED)
        run = await jobs.enqueue(integration, trigger=RunTrigger.SETUP)
    return integration, run
