"""An integration's life: set up, new credentials, pause, resume, delete.

Setting up tests the connection first: nothing is stored when the PSA cannot be reached or
refuses the credentials, and the user gets an error naming what is wrong
(``INVALID_CREDENTIALS``, ``UNREACHABLE``, ``INSECURE_URL``). New credentials are tested the
same way before they replace the stored ones.

The test also reads one record of each area psasync uses (``sync.permissions``): what the
API user may not read is stored as a warning on the integration, and only a denied core read
(ConnectWise companies, Pulseway PSA accounts) refuses the setup (``PSA_ACCESS_DENIED``,
``IntegrationError.area`` naming it).

A PSA may take more than one credential set (ConnectWise: REST keys and the legacy SOAP
integrator login). Each set given is tested on its own, the one in use first, and an error
names the set's field (``IntegrationError.credential``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from models import (
    ASSET_MODELS,
    Account,
    AssetKind,
    Configuration,
    Contact,
    Integration,
    IntegrationStatus,
    Location,
    Organization,
    Provider,
    RecordLink,
    ReferenceKind,
    RunKind,
    RunStatus,
    RunTrigger,
    SubscriptionState,
    SyncRun,
    SyncState,
    WebhookSubscription,
)
from models.integrations import DEFAULT_SYNC_INTERVAL
from models.vault import Vault
from sync import jobs, outbox, permissions, reference, subscriptions
from sync.connections import Credentials, ProviderFactory, connector, open_provider
from sync.errors import (
    CredentialsError,
    InsecureUrlError,
    PermissionDenied,
    SyncError,
    UnreachableError,
)
from sync.providers.base import AreaAccess, PsaProvider, PsaReference
from sync.providers.connectwise.credentials import ConnectWiseCredentials
from sync.providers.pulseway.credentials import PulsewayCredentials
from sync.providers.urls import validate_psa_url

log = logging.getLogger("psasync.integrations")


class IntegrationError(Exception):
    """An expected failure, with a stable ``code`` and the input ``field`` it is about."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        credential: str | None = None,
        area: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        # The PSA area the API user may not read (``PSA_ACCESS_DENIED``), in the PSA's words.
        self.area = area
        # The credential field (as the credentials call it) the error is about, if any: the
        # API and the CLI name it in their own words.
        self.credential = credential


async def try_connection(
    provider: PsaProvider, *, credential: str | None = None, lists: bool = True
) -> dict[ReferenceKind, list[PsaReference]]:
    """Check the credentials and read the reference lists (unless ``lists`` is False), mapping
    failures to setup codes about ``credential``."""
    try:
        await provider.check_connection()
        return await provider.reference_data() if lists else {}
    except PermissionDenied as exc:
        raise IntegrationError(
            "PSA_ACCESS_DENIED", exc.message, credential=credential, area=exc.area
        ) from exc
    except CredentialsError as exc:
        code, message = "INVALID_CREDENTIALS", exc.message
    except InsecureUrlError as exc:
        code, message = "INSECURE_URL", exc.message
    except UnreachableError as exc:
        code, message = "UNREACHABLE", exc.message
    except SyncError as exc:
        code, message = "CONNECTION_FAILED", exc.message
    raise IntegrationError(code, message, credential=credential)


async def check_permissions(
    provider: PsaProvider, *, credential: str | None = None
) -> list[AreaAccess]:
    """Probe the reads of every area (``sync.permissions.probe``), a denied core read being
    a setup error naming the area."""
    try:
        return await permissions.probe(provider)
    except PermissionDenied as exc:
        raise IntegrationError(
            "PSA_ACCESS_DENIED", exc.message, credential=credential, area=exc.area
        ) from exc
    except SyncError as exc:
        raise IntegrationError("CONNECTION_FAILED", exc.message, credential=credential) from exc


async def check_credentials(
    provider_kind: Provider,
    credentials: Credentials,
    *,
    sandbox: bool,
    provider: PsaProvider | None = None,
    touched: Sequence[str] | None = None,
    extra: Any = None,
    probed: list[AreaAccess] | None = None,
) -> tuple[dict[ReferenceKind, list[PsaReference]], dict[str, str]]:
    """Test each credential set, the one in use first (``provider``, when given, is opened on
    it), and read the reference lists through it. Of the other sets, only those with a field
    in ``touched`` are tested (None: all). Returns the lists and, if ``extra`` is a callable
    taking the provider in use, what it returns. The reads of the one in use are probed by
    area into ``probed``, when given."""
    sets = connector(provider_kind).sets(credentials)
    used, others = sets[0], sets[1:]
    owned = provider is None
    opened = provider or open_provider(provider_kind, used.credentials, sandbox=sandbox)
    try:
        lists = await try_connection(opened, credential=used.field)
        if probed is not None:
            probed.extend(await check_permissions(opened, credential=used.field))
        extras = await extra(opened) if extra is not None else {}
    finally:
        if owned:
            await opened.aclose()
    for other in others:
        if touched is not None and not set(other.fields) & set(touched):
            continue
        checked = open_provider(provider_kind, other.credentials, sandbox=sandbox)
        try:
            await try_connection(checked, credential=other.field, lists=False)
        finally:
            await checked.aclose()
    return lists, extras


async def add_integration(
    account: Account,
    provider_kind: Provider,
    credentials: Credentials,
    vault: Vault,
    *,
    name: str | None = None,
    sandbox: bool = False,
    enable: Mapping[ReferenceKind, Sequence[str]] | None = None,
    contacts_enabled: bool = True,
    sync_interval_seconds: int = DEFAULT_SYNC_INTERVAL,
    two_way_enabled: bool | None = None,
    provider: PsaProvider | None = None,
) -> tuple[Integration, SyncRun]:
    """Create an integration after a successful connection test, and queue its first sync.

    ``enable``: the reference values to sync by name (the PSA's recommended ones when None;
    an unknown name is an error). ``two_way_enabled``: None takes the PSA's default (on for
    Pulseway PSA, as its article says; off for ConnectWise). With two-way sync on, new
    directory contacts take the PSA's first email and phone types until the user picks.
    """
    found = connector(provider_kind)
    site_url = await _validated_url(credentials.site_url, sandbox, found.display_name, None)
    two_way = found.two_way_default if two_way_enabled is None else two_way_enabled
    probed: list[AreaAccess] = []
    lists, attributes = await check_credentials(
        provider_kind,
        credentials,
        sandbox=sandbox,
        provider=provider,
        extra=_default_attributes if two_way else None,
        probed=probed,
    )

    wanted = found.recommended if enable is None else enable
    async with in_transaction():
        integration = Integration(
            account=account,
            provider=provider_kind,
            name=name or found.display_name,
            site_url=site_url,
            sandbox=sandbox,
            contacts_enabled=contacts_enabled,
            sync_interval_seconds=sync_interval_seconds,
            two_way_enabled=two_way,
            contact_email_type=attributes.get("email"),
            contact_phone_type=attributes.get("phone"),
        )
        integration.set_credentials(vault, dict(credentials.to_dict()))
        await integration.save()
        await reference.sync_reference_data(integration, lists)
        for kind, names in wanted.items():
            if kind not in lists:
                continue  # its area may not be read (a permissions warning): nothing to enable
            present = {r.name.casefold() for r in lists.get(kind, [])}
            chosen = [n for n in names if n.casefold() in present]
            if enable is not None and len(chosen) != len(names):
                missing = sorted(set(names) - set(chosen))
                known = ", ".join(sorted(r.name for r in lists.get(kind, [])))
                raise IntegrationError(
                    "UNKNOWN_REFERENCE",
                    f"{kind.value.replace('_', ' ')} not in the PSA: {', '.join(missing)} "
                    f"(the PSA has: {known})",
                )
            await reference.set_sync_state(integration, kind, chosen, SyncState.ENABLED)
        run = await jobs.enqueue(integration, trigger=RunTrigger.SETUP)
    await permissions.record_reads(integration.id, probed, keep_writes=False)
    await integration.refresh_from_db()
    return integration, run


async def add_connectwise(
    account: Account,
    credentials: ConnectWiseCredentials,
    vault: Vault,
    **options: Any,
) -> tuple[Integration, SyncRun]:
    """Create a ConnectWise Manage integration (see ``add_integration``)."""
    options.setdefault("name", "ConnectWise Manage")
    return await add_integration(
        account, Provider.CONNECTWISE_MANAGE, credentials, vault, **options
    )


async def add_pulseway(
    account: Account,
    credentials: PulsewayCredentials,
    vault: Vault,
    **options: Any,
) -> tuple[Integration, SyncRun]:
    """Create a Pulseway PSA integration, two-way sync on (see ``add_integration``)."""
    return await add_integration(account, Provider.PULSEWAY_PSA, credentials, vault, **options)


async def _default_attributes(provider: PsaProvider) -> dict[str, str]:
    """The PSA's first email and phone type (IT Glue asks the user; a sane start)."""
    try:
        options = await provider.contact_attribute_options()
    except SyncError:
        return {}
    return {kind: names[0] for kind, names in options.items() if names}


async def _validated_url(url: str, sandbox: bool, service: str, field: str | None) -> str:
    try:
        return await validate_psa_url(url, sandbox=sandbox, service=service)
    except InsecureUrlError as exc:
        raise IntegrationError("INSECURE_URL", exc.message, field=field) from exc
    except UnreachableError as exc:
        raise IntegrationError("UNREACHABLE", exc.message, field=field) from exc


async def update_credentials(
    integration: Integration,
    provider_kind: Provider,
    changes: Mapping[str, str | None],
    vault: Vault,
    *,
    provider: PsaProvider | None = None,
) -> Integration:
    """Replace some credential fields; the result is tested before anything is stored.

    Fields left out (None) keep their stored value, so a user rotating a password does not
    have to paste the rest again; an empty string clears an optional field.
    ``provider_kind`` is the PSA the caller's credentials are for.
    """
    found = connector(integration.provider)
    if Provider(integration.provider) != provider_kind:
        raise IntegrationError(
            "WRONG_PROVIDER", f"this integration is {found.display_name}: use its credentials"
        )
    given = {k: v for k, v in changes.items() if v is not None}
    stored = integration.credentials(vault)
    merged = {**stored, **given}
    try:
        credentials = found.read_credentials(merged)
    except ValueError as exc:
        raise IntegrationError(
            "INVALID_INPUT", str(exc), credential=getattr(exc, "field", None)
        ) from exc
    site_url = await _validated_url(
        credentials.site_url, integration.sandbox, found.display_name, "siteUrl"
    )
    probed: list[AreaAccess] = []
    lists, _ = await check_credentials(
        provider_kind,
        credentials,
        sandbox=integration.sandbox,
        provider=provider,
        touched=list(given),
        probed=probed,
    )
    integration.set_credentials(vault, dict(credentials.to_dict()))
    async with in_transaction():
        await Integration.filter(id=integration.id).update(
            credentials_token=integration.credentials_token, site_url=site_url, last_error=None
        )
        await Integration.filter(id=integration.id, status=IntegrationStatus.ERROR).update(
            status=IntegrationStatus.NOT_SYNCED
        )
        await reference.sync_reference_data(integration, lists)
    # Another key may be another API member: its role's write denials are not known yet.
    await permissions.record_reads(integration.id, probed, keep_writes=False)
    await integration.refresh_from_db()
    if _api_of(found, stored) != _api_of(found, credentials.to_dict()):
        # Another API from now on (ConnectWise SOAP → REST): its links are checked by the
        # next run, and pushes and notices wait for it: run it now, not at the next poll.
        await jobs.enqueue(integration, kind=RunKind.INCREMENTAL, trigger=RunTrigger.SETTINGS)
    return integration


def _api_of(found: Any, stored: Mapping[str, Any]) -> str | None:
    """Which of its PSA's APIs stored credentials open (ConnectWise: REST or SOAP)."""
    read = found.read_stored_credentials or found.read_credentials
    try:
        return getattr(read(stored), "api", None)
    except ValueError:
        return None


async def update_connectwise_credentials(
    integration: Integration,
    changes: Mapping[str, str | None],
    vault: Vault,
    *,
    provider: PsaProvider | None = None,
) -> Integration:
    return await update_credentials(
        integration, Provider.CONNECTWISE_MANAGE, changes, vault, provider=provider
    )


async def pause(integration: Integration) -> Integration:
    """Stop syncing: queued runs wait, and a running run is handed back to the queue.

    The worker notices at its next page (the page's write finds the run no longer its own)
    and drops it; the run keeps its checkpoint and carries on from there on resume.
    """
    async with in_transaction():
        await SyncRun.filter(integration_id=integration.id, status=RunStatus.RUNNING).update(
            status=RunStatus.QUEUED, lease_owner=None, lease_expires_at=None
        )
        # The worker removes the PSA's webhooks (deliveries already stored wait).
        await Integration.filter(id=integration.id).update(
            status=IntegrationStatus.PAUSED, webhooks_due=True
        )
    await integration.refresh_from_db()
    return integration


async def resume(integration: Integration) -> Integration:
    """Back to the status the integration's runs say it has; queued runs start again."""
    waiting = await SyncRun.filter(
        integration_id=integration.id, status=RunStatus.QUEUED, dry_run=False
    ).exists()
    last = (
        await SyncRun.filter(
            integration_id=integration.id,
            dry_run=False,
            status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED],
        )
        .order_by("-finished_at")
        .first()
    )
    if waiting:
        status = IntegrationStatus.QUEUED
    elif last is None:
        status = IntegrationStatus.NOT_SYNCED
    elif last.status == RunStatus.FAILED:
        status = IntegrationStatus.ERROR
    else:
        status = IntegrationStatus.OK
    await Integration.filter(id=integration.id, status=IntegrationStatus.PAUSED).update(
        status=status, webhooks_due=True
    )
    outbox.queued.set()  # catch up: edits queued while paused go out now, in order
    await integration.refresh_from_db()
    return integration


class DeleteMode(StrEnum):
    DISCONNECT = "DISCONNECT"  # keep every record, drop the links
    DELETE_DATA = "DELETE_DATA"  # also remove the records that came only from this PSA


# Children before parents, so an organization is only removed once nothing else is in it.
_DELETE_ORDER = (
    AssetKind.CONFIGURATION,
    AssetKind.CONTACT,
    AssetKind.LOCATION,
    AssetKind.ORGANIZATION,
)


async def delete(
    integration: Integration,
    mode: DeleteMode,
    *,
    open_provider: ProviderFactory | None = None,
) -> dict[AssetKind, int]:
    """Delete an integration; with DELETE_DATA, also the records it created.

    Its webhook registrations in the PSA are removed first (best effort, bounded: a PSA that
    is down does not block the delete; its callbacks then fail with 404 until ConnectWise
    disables them).

    A record is removed only when this integration's sync created it and no other
    integration links it; records that existed before and were matched stay. An organization
    that still holds records of its own (added locally, or from another PSA) stays too.
    A run in progress is cancelled: its next page finds the run gone and is rolled back.
    Returns how many records of each kind were removed.
    """
    if open_provider is not None:
        await _unsubscribe(integration, open_provider)
    removed: dict[AssetKind, int] = {}
    account_id = integration.account_id  # type: ignore[attr-defined]
    async with in_transaction():
        if mode == DeleteMode.DELETE_DATA:
            for kind in _DELETE_ORDER:
                model = ASSET_MODELS[kind]
                created_here = RecordLink.filter(
                    integration_id=integration.id, kind=kind, created_by_sync=True
                ).values("local_id")
                linked_elsewhere = (
                    RecordLink.filter(kind=kind)
                    .exclude(integration_id=integration.id)
                    .values("local_id")
                )
                doomed = model.filter(account_id=account_id, id__in=Subquery(created_here)).exclude(
                    id__in=Subquery(linked_elsewhere)
                )
                if kind == AssetKind.ORGANIZATION:
                    for child in (Location, Contact, Configuration):
                        doomed = doomed.exclude(
                            id__in=Subquery(
                                child.filter(account_id=account_id).values("organization_id")
                            )
                        )
                if kind == AssetKind.LOCATION:
                    await Organization.filter(
                        account_id=account_id, primary_location_id__in=Subquery(doomed.values("id"))
                    ).update(primary_location_id=None)
                removed[kind] = await doomed.delete()
        await SyncRun.filter(
            integration_id=integration.id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
        ).update(status=RunStatus.CANCELLED, lease_owner=None, lease_expires_at=None)
        await integration.delete()  # links, mappings and run history go with it
    return removed


UNSUBSCRIBE_TIMEOUT = 15.0


async def _unsubscribe(integration: Integration, open_provider: ProviderFactory) -> None:
    if not await WebhookSubscription.filter(
        integration_id=integration.id, state=SubscriptionState.REGISTERED
    ).exists():
        return
    try:
        provider = await open_provider(integration)
        try:
            await asyncio.wait_for(
                subscriptions.unsubscribe_all(integration, provider), UNSUBSCRIBE_TIMEOUT
            )
        finally:
            await provider.aclose()
    except Exception as exc:  # the delete goes on; the PSA disables dead callbacks itself
        log.warning("could not remove the webhooks of %s: %s", integration.name, exc)
