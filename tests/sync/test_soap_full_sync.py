"""A SOAP-only ConnectWise integration (integrator login, no REST keys), end to end over HTTP
against the simulator serving both APIs over one store: it brings in what a REST integration
of the same store brings in, polls changes, and reconciles deletes (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from harness import ALL_SCOPE, CREDENTIALS, Psa, sync_now

from models import (
    Account,
    AssetKind,
    Configuration,
    Contact,
    Integration,
    LinkState,
    Location,
    Organization,
    RecordLink,
    ReferenceKind,
    ReferenceValue,
    RunKind,
    RunStatus,
    RunTrigger,
    SyncRun,
)
from models.vault import Vault
from simulators.connectwise.soap import IntegratorLogin
from sync import jobs
from sync.connections import provider_factory
from sync.integrations import add_connectwise
from sync.providers.connectwise.credentials import ConnectWiseCredentials
from sync.providers.connectwise.provider import ConnectWiseProvider
from sync.providers.connectwise.soap_provider import ConnectWiseSoapProvider
from sync.runner import Worker

LOGIN = IntegratorLogin()  # what the simulator accepts by default
# SOAP shows a company's first type only: a type the dataset only gives as a second type
# ("Partner") is not in the SOAP integration's derived list.
SOAP_SCOPE = {
    **ALL_SCOPE,
    ReferenceKind.ORGANIZATION_TYPE: [
        t for t in ALL_SCOPE[ReferenceKind.ORGANIZATION_TYPE] if t != "Partner"
    ],
}
_MODELS: dict[AssetKind, Any] = {
    AssetKind.ORGANIZATION: Organization,
    AssetKind.LOCATION: Location,
    AssetKind.CONTACT: Contact,
    AssetKind.CONFIGURATION: Configuration,
}
# What must read the same through either API (columns SOAP carries).
_COLUMNS = {
    AssetKind.ORGANIZATION: ("name", "short_name", "primary_location_id"),
    AssetKind.LOCATION: ("name", "address_1", "address_2", "city", "region", "postal_code"),
    AssetKind.CONTACT: ("first_name", "last_name", "title", "emails"),
    AssetKind.CONFIGURATION: (
        "name",
        "serial_number",
        "model",
        "asset_tag",
        "primary_ip",
        "operating_system",
        "manufacturer",
        "configuration_type_id",
        "configuration_status_id",
    ),
}


def soap_credentials(psa: Psa, **changes: Any) -> ConnectWiseCredentials:
    values: dict[str, Any] = {
        "site_url": psa.base_url,
        "company_id": CREDENTIALS.company_id,
        "public_key": None,
        "private_key": None,
        "client_id": "psasync-tests",
        "integrator_login_id": LOGIN.login_id,
        "integrator_password": LOGIN.password,
    }
    values.update(changes)
    return ConnectWiseCredentials(**values)


async def _soap_integration(account: Account, psa: Psa, vault: Vault) -> Integration:
    integration, _run = await add_connectwise(
        account, soap_credentials(psa), vault, sandbox=True, enable=SOAP_SCOPE, name="SOAP"
    )
    return integration


async def _synced_links(integration: Integration, kind: AssetKind) -> dict[int, RecordLink]:
    links = await RecordLink.filter(
        integration_id=integration.id, kind=kind, state=LinkState.SYNCED
    )
    return {link.psa_id: link for link in links}


async def _run(worker: Worker, integration: Integration, kind: RunKind) -> SyncRun:
    run = await jobs.enqueue(integration, kind=kind, trigger=RunTrigger.SCHEDULE)
    await worker.run_until_idle()
    return await SyncRun.get(id=run.id)


async def _view(integration: Integration, kind: AssetKind) -> dict[int, dict[str, Any]]:
    """psa id → the local record's columns that both APIs carry, relations by PSA id."""
    links = await _synced_links(integration, kind)
    local_to_psa: dict[Any, int] = {}
    for other in AssetKind:
        for psa_id, link in (await _synced_links(integration, other)).items():
            local_to_psa[link.local_id] = psa_id
    view: dict[int, dict[str, Any]] = {}
    model = _MODELS[kind]
    for psa_id, link in links.items():
        row = await model.get(id=link.local_id)
        values: dict[str, Any] = {}
        for column in _COLUMNS[kind]:
            value = getattr(row, column)
            if column.endswith("_type_id") or column.endswith("_status_id"):
                value = await _reference_name(value)
            elif column.endswith("_id"):
                value = local_to_psa.get(value)
            values[column] = value
        if kind is not AssetKind.ORGANIZATION:
            values["organization"] = local_to_psa.get(row.organization_id)
        view[psa_id] = values
    return view


async def _reference_name(value_id: Any) -> str | None:
    if value_id is None:
        return None
    return (await ReferenceValue.get(id=value_id)).name


async def test_a_soap_only_integration_opens_the_soap_provider_and_both_sets_open_rest(
    psa: Psa, account: Account, vault: Vault
) -> None:
    soap = await _soap_integration(account, psa, vault)
    both, _run = await add_connectwise(
        account,
        psa.credentials(integrator_login_id=LOGIN.login_id, integrator_password=LOGIN.password),
        vault,
        sandbox=True,
        enable=ALL_SCOPE,
        name="Both",
    )
    open_for = provider_factory(vault)

    opened = await open_for(soap)
    try:
        assert isinstance(opened, ConnectWiseSoapProvider)
        assert opened.subscriptions is None
    finally:
        await opened.aclose()
    opened = await open_for(both)
    try:
        assert isinstance(opened, ConnectWiseProvider)
    finally:
        await opened.aclose()


async def test_a_soap_full_sync_brings_in_what_a_rest_sync_of_the_same_store_does(
    psa: Psa, account: Account, vault: Vault, worker: Worker
) -> None:
    soap = await _soap_integration(account, psa, vault)
    rest_account = await Account.create(name="Same PSA over REST")
    rest, _run = await add_connectwise(
        rest_account, psa.credentials(), vault, sandbox=True, enable=ALL_SCOPE
    )

    await worker.run_until_idle()

    for integration in (soap, rest):
        last = await SyncRun.filter(integration_id=integration.id).order_by("-queued_at").first()
        assert last is not None
        assert last.status == RunStatus.SUCCEEDED, last.error
    for kind in AssetKind:
        through_soap = await _view(soap, kind)
        through_rest = await _view(rest, kind)
        assert through_soap, kind
        assert set(through_soap) == set(through_rest), kind
        assert through_soap == through_rest, kind


async def test_a_soap_resync_without_changes_writes_nothing(
    psa: Psa, account: Account, vault: Vault, worker: Worker
) -> None:
    soap = await _soap_integration(account, psa, vault)
    await worker.run_until_idle()

    run = await sync_now(worker, await Integration.get(id=soap.id))

    assert run.status == RunStatus.SUCCEEDED
    assert run.created == run.updated == run.linked == run.orphaned == 0
    assert worker.last_context is not None
    assert worker.last_context.rows_written == 0


async def test_a_soap_poll_picks_up_a_change_in_connectwise(
    psa: Psa, account: Account, vault: Vault, worker: Worker
) -> None:
    soap = await _soap_integration(account, psa, vault)
    await worker.run_until_idle()
    links = await _synced_links(soap, AssetKind.ORGANIZATION)
    company = min(links)
    configuration = min(await _synced_links(soap, AssetKind.CONFIGURATION))
    contact = min(await _synced_links(soap, AssetKind.CONTACT))
    psa.store.update("companies", company, {"name": "Renamed Over SOAP"})
    psa.store.update("configurations", configuration, {"serialNumber": "SN-CHANGED"})
    psa.store.update("contacts", contact, {"lastName": "Changed-Here"})

    run = await _run(worker, await Integration.get(id=soap.id), RunKind.INCREMENTAL)

    assert run.status == RunStatus.SUCCEEDED
    assert run.kind == RunKind.INCREMENTAL
    assert run.updated == 3
    assert (await Organization.get(id=links[company].local_id)).name == "Renamed Over SOAP"
    device = (await _synced_links(soap, AssetKind.CONFIGURATION))[configuration]
    assert (await Configuration.get(id=device.local_id)).serial_number == "SN-CHANGED"
    person = (await _synced_links(soap, AssetKind.CONTACT))[contact]
    assert (await Contact.get(id=person.local_id)).last_name == "Changed-Here"


async def test_a_soap_reconciliation_orphans_records_deleted_in_connectwise(
    psa: Psa, account: Account, vault: Vault, worker: Worker
) -> None:
    soap = await _soap_integration(account, psa, vault)
    await worker.run_until_idle()
    company = max(await _synced_links(soap, AssetKind.ORGANIZATION))
    contact = min(await _synced_links(soap, AssetKind.CONTACT))
    configuration = min(await _synced_links(soap, AssetKind.CONFIGURATION))
    psa.store.delete("companies", company)  # soft: SOAP stops listing it
    psa.store.purge("contacts", contact)
    psa.store.purge("configurations", configuration)

    run = await _run(worker, await Integration.get(id=soap.id), RunKind.RECONCILE)

    assert run.status == RunStatus.SUCCEEDED
    assert run.kind == RunKind.RECONCILE
    gone = {
        AssetKind.ORGANIZATION: company,
        AssetKind.CONTACT: contact,
        AssetKind.CONFIGURATION: configuration,
    }
    for kind, psa_id in gone.items():
        link = await RecordLink.get(integration_id=soap.id, kind=kind, psa_id=psa_id)
        assert link.state == LinkState.ORPHANED, kind
    assert await RecordLink.filter(integration_id=soap.id, state=LinkState.SYNCED).exists()
