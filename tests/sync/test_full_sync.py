"""One-way full sync, end to end: the engine talks HTTP to a running ConnectWise simulator
and writes to a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from harness import ALL_SCOPE, FAST_RETRY, Psa, sync_now

from models import (
    Configuration,
    Contact,
    Integration,
    IntegrationStatus,
    LinkState,
    Location,
    Organization,
    RecordLink,
    ReferenceKind,
    ReferenceMapping,
    RunStatus,
    SyncRun,
    SyncRunIssue,
    SyncState,
)
from models.vault import Vault
from sync import integrations
from sync.connections import provider_factory
from sync.providers.base import PsaProvider
from sync.runner import Worker

Connect = Callable[..., Awaitable[Integration]]


def in_scope_companies(psa: Psa) -> dict[int, dict[str, Any]]:
    """The rule, restated: every type AND the status enabled; deleted companies never."""
    types = set(ALL_SCOPE[ReferenceKind.ORGANIZATION_TYPE])
    statuses = set(ALL_SCOPE[ReferenceKind.ORGANIZATION_STATUS])
    return {
        c["id"]: c
        for c in psa.store.find("companies")
        if c["status"]["name"] in statuses and {t["name"] for t in c["types"]} <= types
    }


def in_scope_configurations(psa: Psa) -> dict[int, dict[str, Any]]:
    companies = in_scope_companies(psa)
    types = set(ALL_SCOPE[ReferenceKind.CONFIGURATION_TYPE])
    statuses = set(ALL_SCOPE[ReferenceKind.CONFIGURATION_STATUS])
    return {
        c["id"]: c
        for c in psa.store.find("configurations")
        if c["type"]["name"] in types
        and c["status"]["name"] in statuses
        and c["company"]["id"] in companies
    }


async def linked(integration: Integration, kind: str) -> dict[int, RecordLink]:
    links = await RecordLink.filter(integration_id=integration.id, kind=kind)
    return {link.psa_id: link for link in links}


async def test_first_full_sync_brings_in_scope_records_linked_to_their_psa_records(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    assert (await Integration.get(id=integration.id)).status == IntegrationStatus.QUEUED

    assert await worker.run_until_idle() == 1

    integration = await Integration.get(id=integration.id)
    assert integration.status_label == "OK"
    assert integration.last_success_at is not None
    companies = in_scope_companies(psa)
    org_links = await linked(integration, "organization")
    assert set(org_links) == set(companies)
    for psa_id, link in org_links.items():
        org = await Organization.get(id=link.local_id)
        assert org.name == companies[psa_id]["name"]
        assert org.short_name == companies[psa_id]["identifier"]
        assert link.state == LinkState.SYNCED
    assert await Organization.all().count() == len(companies)

    expected_sites = {s["id"] for c in companies for s in psa.store.find("sites", parent_id=c)}
    assert set(await linked(integration, "location")) == expected_sites
    expected_contacts = {
        c["id"] for c in psa.store.find("contacts") if c["company"]["id"] in companies
    }
    assert set(await linked(integration, "contact")) == expected_contacts
    assert set(await linked(integration, "configuration")) == set(in_scope_configurations(psa))

    run = await SyncRun.filter(integration_id=integration.id).get()
    assert run.status == RunStatus.SUCCEEDED
    total = len(companies) + len(expected_sites) + len(expected_contacts)
    assert run.created == total + len(in_scope_configurations(psa))
    assert run.total is not None
    assert run.processed == run.total  # progress reaches its announced total


class PausingAtContacts:
    """The real provider; the user pauses the integration as the sync reaches contacts."""

    def __init__(self, inner: PsaProvider, integration: Integration) -> None:
        self.inner = inner
        self.integration = integration

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def contacts(self, *, after: int | None = None):  # type: ignore[no-untyped-def]
        await integrations.pause(self.integration)
        async for page in self.inner.contacts(after=after):
            yield page


async def test_a_paused_and_resumed_sync_ends_at_the_total_it_announced(
    psa: Psa, connect: Connect, vault: Vault
) -> None:
    integration = await connect()
    real = provider_factory(vault, retry=FAST_RETRY)

    async def pausing(found: Integration) -> PsaProvider:
        return PausingAtContacts(await real(found), integration)  # type: ignore[return-value]

    await Worker(pausing, schedule=False).run_until_idle()
    run = await SyncRun.get(integration_id=integration.id)
    assert run.status == RunStatus.QUEUED
    assert run.phase == "contacts"  # the sites are read and counted already
    await integrations.resume(integration)
    await Worker(real, schedule=False).run_until_idle()

    run = await SyncRun.get(id=run.id)
    assert run.status == RunStatus.SUCCEEDED
    assert run.attempts == 2
    assert run.created == await RecordLink.filter(integration_id=integration.id).count()
    assert run.processed == run.total  # the sites the first attempt read still count


async def test_fields_follow_the_connectwise_mapping_table(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    await worker.run_until_idle()
    config_links = await linked(integration, "configuration")
    psa_id, link = next(iter(sorted(config_links.items())))
    raw = psa.store.get("configurations", psa_id)
    assert raw is not None
    config = await Configuration.get(id=link.local_id).prefetch_related(
        "configuration_type", "configuration_status", "organization"
    )
    assert config.name == raw["name"]
    assert config.serial_number == raw.get("serialNumber")
    assert config.asset_tag == raw.get("tagNumber")
    assert config.primary_ip == raw.get("ipAddress")
    assert config.operating_system == raw.get("osType")
    assert config.manufacturer == raw["manufacturer"]["name"]
    assert config.configuration_type is not None
    assert config.configuration_type.name == raw["type"]["name"]
    assert config.configuration_status is not None
    assert config.configuration_status.name == raw["status"]["name"]
    org_link = (await linked(integration, "organization"))[raw["company"]["id"]]
    assert config.organization.id == org_link.local_id

    contact_link = next(iter((await linked(integration, "contact")).values()))
    contact_raw = psa.store.get("contacts", contact_link.psa_id)
    assert contact_raw is not None
    contact = await Contact.get(id=contact_link.local_id)
    emails = [
        i["value"] for i in contact_raw["communicationItems"] if i["communicationType"] == "Email"
    ]
    assert [e["value"] for e in contact.emails] == emails
    assert contact.source == "psa"

    company_id = raw["company"]["id"]
    org = await Organization.get(id=org_link.local_id)
    company = psa.store.get("companies", company_id)
    assert company is not None
    primary_site = (await linked(integration, "location"))[company["site"]["id"]]
    assert org.primary_location_id == primary_site.local_id


async def test_a_company_with_two_types_syncs_only_when_both_are_enabled(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    company = psa.store.create(
        "companies",
        {
            "identifier": "TwoTypes",
            "name": "Two Types Ltd",
            "addressLine1": "1 Main St",
            "status": {"id": 1},
            "types": [{"name": "Client"}, {"name": "Prospect"}],
        },
    )
    integration = await connect()
    await worker.run_until_idle()
    assert company["id"] not in await linked(integration, "organization")
    assert not await Organization.filter(name="Two Types Ltd").exists()

    mapping = await ReferenceMapping.get(
        integration_id=integration.id, kind=ReferenceKind.ORGANIZATION_TYPE, psa_name="Prospect"
    )
    mapping.sync_state = SyncState.ENABLED
    await mapping.save()
    await sync_now(worker, integration)
    assert company["id"] in await linked(integration, "organization")


async def test_new_psa_types_arrive_disabled_and_out_of_scope(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    await worker.run_until_idle()
    states = {
        m.psa_name: m.sync_state
        for m in await ReferenceMapping.filter(
            integration_id=integration.id, kind=ReferenceKind.CONFIGURATION_TYPE
        )
    }
    assert states["Printer"] == SyncState.DISABLED
    assert states["Managed Server"] == SyncState.ENABLED
    assert not await Configuration.filter(configuration_type__name="Printer").exists()


async def test_a_contact_of_another_company_is_not_attached_to_a_configuration(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    configs = sorted(in_scope_configurations(psa))
    companies = sorted(in_scope_companies(psa))
    config_id = configs[0]
    config = psa.store.get("configurations", config_id)
    assert config is not None
    other = next(c for c in companies if c != config["company"]["id"])
    foreign = psa.store.find("contacts", f"company/id = {other}")[0]
    psa.store.update("configurations", config_id, {"contact": {"id": foreign["id"]}})
    same = psa.store.find("contacts", f"company/id = {config['company']['id']}")[0]
    psa.store.update("configurations", configs[1], {"contact": {"id": same["id"]}})
    second = psa.store.get("configurations", configs[1])
    assert second is not None

    integration = await connect()
    await worker.run_until_idle()
    links = await linked(integration, "configuration")
    attached = await Configuration.get(id=links[config_id].local_id)
    assert attached.contact_id is None  # type: ignore[attr-defined]
    if second["company"]["id"] == same["company"]["id"]:
        kept = await Configuration.get(id=links[configs[1]].local_id)
        contact_link = (await linked(integration, "contact"))[same["id"]]
        assert kept.contact_id == contact_link.local_id  # type: ignore[attr-defined]


async def test_a_second_sync_without_changes_writes_nothing(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    await worker.run_until_idle()
    first = worker.last_context
    assert first is not None
    before = {
        model.__name__: sorted(await model.all().values_list("id", "updated_at", "version"))
        for model in (Organization, Location, Contact, Configuration)
    }
    links_before = sorted(await RecordLink.all().values_list("id", "updated_at"))

    run = await sync_now(worker, integration)

    assert run.status == RunStatus.SUCCEEDED
    assert run.created == run.updated == run.linked == run.orphaned == 0
    assert run.unchanged == first.counts["created"]
    assert worker.last_context is not None
    assert worker.last_context.rows_written == 0
    after = {
        model.__name__: sorted(await model.all().values_list("id", "updated_at", "version"))
        for model in (Organization, Location, Contact, Configuration)
    }
    assert after == before
    assert sorted(await RecordLink.all().values_list("id", "updated_at")) == links_before


async def test_a_psa_edit_is_pulled_and_bumps_the_version(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    await worker.run_until_idle()
    company_id = min(in_scope_companies(psa))
    link = (await linked(integration, "organization"))[company_id]
    before = await Organization.get(id=link.local_id)

    psa.store.update("companies", company_id, {"name": "Renamed In ConnectWise"})
    run = await sync_now(worker, integration)

    after = await Organization.get(id=link.local_id)
    assert after.name == "Renamed In ConnectWise"
    assert after.version == before.version + 1
    assert run.updated == 1


async def test_existing_local_records_are_linked_not_duplicated(
    psa: Psa, connect: Connect, worker: Worker, account: Any
) -> None:
    company = in_scope_companies(psa)[min(in_scope_companies(psa))]
    # Same name after trimming and case-folding: IT Glue's exact-match rule.
    mine = await Organization.create(
        account=account, name=f"  {company['name'].upper()} ", description="written by hand"
    )
    mine.match_key = mine.compute_match_key()
    await mine.save()

    integration = await connect()
    await worker.run_until_idle()

    link = (await linked(integration, "organization"))[company["id"]]
    assert link.local_id == mine.id
    assert await Organization.filter(account=account).count() == len(in_scope_companies(psa))
    linked_org = await Organization.get(id=mine.id)
    assert linked_org.name == company["name"]  # the PSA wins on the mapped fields
    assert linked_org.description == "written by hand"  # local-only fields are kept
    run = await SyncRun.filter(integration_id=integration.id).get()
    assert run.linked == 1


async def test_an_ambiguous_match_is_reported_and_nothing_is_linked_or_created(
    psa: Psa, connect: Connect, worker: Worker, account: Any
) -> None:
    company = in_scope_companies(psa)[min(in_scope_companies(psa))]
    twins = []
    for _ in range(2):
        org = Organization(account=account, name=company["name"])
        org.match_key = org.compute_match_key()
        await org.save()
        twins.append(org.id)

    integration = await connect()
    await worker.run_until_idle()

    assert company["id"] not in await linked(integration, "organization")
    assert await Organization.filter(name=company["name"]).count() == 2
    run = await SyncRun.filter(integration_id=integration.id).get()
    issue = await SyncRunIssue.get(run_id=run.id, code="ambiguous_match")
    assert issue.psa_id == company["id"]
    assert set(issue.detail["candidates"]) == {str(t) for t in twins}
    assert run.status == RunStatus.SUCCEEDED
    assert run.failed >= 1

    preview = await sync_now(worker, integration, dry_run=True)
    assert await SyncRunIssue.filter(run_id=preview.id, code="ambiguous_match").exists()


async def test_a_company_out_of_scope_is_orphaned_kept_and_relinked_when_back(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    await worker.run_until_idle()
    company_id = min(in_scope_companies(psa))
    link = (await linked(integration, "organization"))[company_id]
    contacts_before = await linked(integration, "contact")

    psa.store.update("companies", company_id, {"status": {"id": 2}})  # Inactive
    run = await sync_now(worker, integration)
    assert run.orphaned >= 1
    orphan = await RecordLink.get(id=link.id)
    assert orphan.state == LinkState.ORPHANED
    assert await Organization.filter(id=link.local_id).exists()  # kept, never deleted
    company_contacts = [c for c in contacts_before.values() if c.psa_parent_id == company_id]
    for contact in company_contacts:
        assert (await RecordLink.get(id=contact.id)).state == LinkState.ORPHANED

    psa.store.update("companies", company_id, {"status": {"id": 1}})  # Active again
    run = await sync_now(worker, integration)
    back = await RecordLink.get(id=link.id)
    assert back.state == LinkState.SYNCED
    assert back.local_id == link.local_id
    assert await Organization.all().count() == len(in_scope_companies(psa))
    for contact in company_contacts:
        assert (await RecordLink.get(id=contact.id)).state == LinkState.SYNCED


async def test_a_company_deleted_in_the_psa_is_orphaned(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    await worker.run_until_idle()
    company_id = max(in_scope_companies(psa))
    link = (await linked(integration, "organization"))[company_id]

    psa.store.delete("companies", company_id)
    await sync_now(worker, integration)

    assert (await RecordLink.get(id=link.id)).state == LinkState.ORPHANED
    assert await Organization.filter(id=link.local_id).exists()


async def test_a_parent_company_listed_after_its_child_is_still_linked(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    ids = sorted(in_scope_companies(psa))
    child, parent = ids[0], ids[-1]
    psa.store.update("companies", child, {"parentCompany": {"id": parent}})
    integration = await connect()
    await worker.run_until_idle()
    links = await linked(integration, "organization")
    org = await Organization.get(id=links[child].local_id)
    assert org.parent_id == links[parent].local_id  # type: ignore[attr-defined]

    run = await sync_now(worker, integration)
    assert run.updated == 0  # resolving it later is not a change on the next sync


async def test_a_dry_run_reports_what_it_would_do_and_writes_nothing(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    queued = await SyncRun.filter(integration_id=integration.id).get()
    await queued.delete()  # leave only the dry run in the queue

    run = await sync_now(worker, integration, dry_run=True)

    assert run.status == RunStatus.SUCCEEDED
    assert run.dry_run
    assert await Organization.all().count() == 0
    assert await RecordLink.all().count() == 0
    companies = in_scope_companies(psa)
    sites = sum(len(psa.store.find("sites", parent_id=c)) for c in companies)
    contacts = sum(1 for c in psa.store.find("contacts") if c["company"]["id"] in companies)
    assert run.created == len(companies) + sites + contacts + len(in_scope_configurations(psa))


async def test_contacts_are_not_synced_when_contact_sync_is_off(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    await connect(contacts_enabled=False)
    await worker.run_until_idle()
    assert await Contact.all().count() == 0
    assert await Organization.all().count() == len(in_scope_companies(psa))
