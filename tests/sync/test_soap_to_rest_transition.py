"""A SOAP-synced ConnectWise integration given REST keys: its first REST run checks every link
before its pull (a SOAP id is taken to be the REST id), re-links records REST knows under
another id, and reports those it cannot settle; over HTTP against the simulator serving both
APIs over one store (SQLite and PostgreSQL)."""

from __future__ import annotations

import bisect
from typing import Any

import pytest
from harness import CREDENTIALS, Psa, sync_now
from test_soap_full_sync import SOAP_SCOPE, soap_credentials

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
    RunStatus,
    SyncRun,
    SyncRunIssue,
    SyncState,
)
from models.vault import Vault
from simulators.connectwise.store import ConnectWiseStore
from sync import reference, transition
from sync.integrations import add_connectwise, update_connectwise_credentials
from sync.runner import Worker

pytestmark = pytest.mark.db

_MODELS: dict[AssetKind, Any] = {
    AssetKind.ORGANIZATION: Organization,
    AssetKind.LOCATION: Location,
    AssetKind.CONTACT: Contact,
    AssetKind.CONFIGURATION: Configuration,
}
_REST_KEYS = {
    "public_key": CREDENTIALS.public_key,
    "private_key": CREDENTIALS.private_key,
    "client_id": "psasync-tests",
}


async def _soap_synced(account: Account, psa: Psa, vault: Vault, worker: Worker) -> Integration:
    """A SOAP-only integration after its first full sync."""
    integration, _run = await add_connectwise(
        account, soap_credentials(psa), vault, sandbox=True, enable=SOAP_SCOPE, name="SOAP"
    )
    await worker.run_until_idle()
    integration = await Integration.get(id=integration.id)
    assert integration.synced_api == "SOAP"
    last = await SyncRun.filter(integration_id=integration.id).order_by("-queued_at").first()
    assert last is not None
    assert last.status == RunStatus.SUCCEEDED, last.error
    assert await _links()
    return integration


async def _add_rest_keys(
    integration: Integration, vault: Vault, *, enable_partner: bool = True
) -> Integration:
    """REST keys added, as updateIntegrationCredentials does; "Partner", a type SOAP could
    not see (a company's second type), enabled as the SOAP scope meant it."""
    updated = await update_connectwise_credentials(integration, _REST_KEYS, vault)
    if enable_partner:
        await reference.set_sync_state(
            updated, ReferenceKind.ORGANIZATION_TYPE, ["Partner"], SyncState.ENABLED
        )
    assert updated.synced_api == "SOAP"  # the switch happens at the next run
    return updated


async def _links() -> list[tuple[str, int | None, str, str]]:
    rows = await RecordLink.all().values_list("kind", "psa_id", "local_id", "state")
    return sorted((str(k), p, str(local), str(s)) for k, p, local, s in rows)


async def _records() -> dict[str, list[str]]:
    return {
        kind.value: sorted(str(i) for i in await model.all().values_list("id", flat=True))
        for kind, model in _MODELS.items()
    }


async def _link(integration: Integration, kind: AssetKind, psa_id: int) -> RecordLink:
    return await RecordLink.get(integration_id=integration.id, kind=kind, psa_id=psa_id)


async def _no_duplicate_links() -> None:
    rows = await RecordLink.all().values_list("integration_id", "kind", "psa_id", "local_id")
    assert len({(i, k, p) for i, k, p, _ in rows}) == len(rows)
    assert len({(i, k, local) for i, k, _, local in rows}) == len(rows)


async def _issues(run: SyncRun) -> list[SyncRunIssue]:
    return await SyncRunIssue.filter(run_id=run.id, code=transition.ISSUE).order_by("psa_id")


async def _next_sync_writes_nothing(worker: Worker, integration: Integration) -> None:
    run = await sync_now(worker, await Integration.get(id=integration.id))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.transition is None  # checked once
    assert run.created == run.updated == run.linked == run.orphaned == 0
    assert await _issues(run) == []
    assert worker.last_context is not None
    assert worker.last_context.rows_written == 0


def _move_company(store: ConnectWiseStore, old: int) -> int:
    """ConnectWise knows the company under a new id from now on: the same record (its
    identifier, sites, contacts and configurations), renumbered. Returns the new id."""
    with store.lock:
        companies = store.table("companies")
        new = companies.next_id
        companies.next_id += 1
        row = companies.rows.pop(old)
        companies.unindex_unique(old, row)
        companies.ids.remove(old)
        row[0] = new
        companies.rows[new] = row
        bisect.insort(companies.ids, new)
        companies.index_unique(new, row)
        # Every record pointing at the company shares its one reference: it now says ``new``.
        shared = companies.refs.pop(old)
        shared["id"] = new
        companies.refs[new] = shared
        sites = store.table("sites")
        sites.children[new] = sites.children.pop(old, [])
        for site in sites.children[new]:
            sites.parent_of[site] = new
        store._version += 1  # cached selections are stale
    return new


async def test_a_switched_integration_verifies_every_link_and_creates_or_orphans_nothing(
    psa: Psa,
    account: Account,
    vault: Vault,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transition, "PAGE", 7)  # many pages, one partly filled
    integration = await _soap_synced(account, psa, vault, worker)
    links, records = await _links(), await _records()
    integration = await _add_rest_keys(integration, vault)

    run = await sync_now(worker, integration)

    assert run.status == RunStatus.SUCCEEDED, run.error
    synced = sum(1 for link in links if link[3] == LinkState.SYNCED)
    assert run.transition == {
        "from": "SOAP", "to": "REST", "verified": synced, "relinked": 0, "unsettled": 0,
        "leaving_scope": 0,
    }  # fmt: skip
    assert await _issues(run) == []
    assert run.created == run.orphaned == 0
    assert await _links() == links
    assert await _records() == records
    await _no_duplicate_links()
    assert (await Integration.get(id=integration.id)).synced_api == "REST"
    await _next_sync_writes_nothing(worker, integration)


async def test_a_company_rest_knows_under_another_id_and_two_swapped_contacts_are_relinked(
    psa: Psa, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await _soap_synced(account, psa, vault, worker)
    companies = [
        link.psa_id
        for link in await RecordLink.filter(
            integration_id=integration.id, kind=AssetKind.ORGANIZATION
        ).order_by("psa_id")
    ]
    contacts = await RecordLink.filter(integration_id=integration.id, kind=AssetKind.CONTACT)
    # The company whose id changes has sites, contacts and configurations.
    parents = {
        kind: set(
            await RecordLink.filter(integration_id=integration.id, kind=kind).values_list(
                "psa_parent_id", flat=True
            )
        )
        for kind in (AssetKind.LOCATION, AssetKind.CONTACT, AssetKind.CONFIGURATION)
    }
    moved = next(c for c in companies if all(c in found for found in parents.values()))
    children = {
        kind: sorted(
            link.psa_id
            for link in await RecordLink.filter(
                integration_id=integration.id, kind=kind, psa_parent_id=moved
            )
        )
        for kind in (AssetKind.LOCATION, AssetKind.CONTACT, AssetKind.CONFIGURATION)
    }
    company_link = await _link(integration, AssetKind.ORGANIZATION, moved)
    company_before = await Organization.get(id=company_link.local_id).values()
    # Two contacts of one company whose names are their own there: REST has them swapped.
    names: dict[tuple[int | None, str, str], list[RecordLink]] = {}
    for link in contacts:
        key = (link.psa_parent_id, link.snapshot["first_name"], link.snapshot["last_name"])
        names.setdefault(key, []).append(link)
    unique = [links[0] for links in names.values() if len(links) == 1]
    first = unique[0]
    second = next(x for x in unique[1:] if x.psa_parent_id == first.psa_parent_id)
    a, b = psa.store.get("contacts", first.psa_id), psa.store.get("contacts", second.psa_id)
    assert a is not None
    assert b is not None
    for one, other in ((a, b), (b, a)):
        psa.store.update(
            "contacts",
            one["id"],
            {"firstName": other["firstName"], "lastName": other["lastName"]},
        )
    new_id = _move_company(psa.store, moved)
    links_before, records = await _links(), await _records()
    integration = await _add_rest_keys(integration, vault)

    run = await sync_now(worker, integration)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.transition is not None
    assert (run.transition["relinked"], run.transition["unsettled"]) == (3, 0)
    assert await _issues(run) == []
    assert run.created == run.orphaned == 0
    assert await _records() == records
    await _no_duplicate_links()
    relinked = await _link(integration, AssetKind.ORGANIZATION, new_id)
    assert relinked.id == company_link.id
    assert relinked.state == LinkState.SYNCED
    assert await Organization.get(id=company_link.local_id).values() == company_before
    assert not await RecordLink.filter(
        integration_id=integration.id, kind=AssetKind.ORGANIZATION, psa_id=moved
    ).exists()
    for kind, ids in children.items():  # its children name its new id
        now = await RecordLink.filter(
            integration_id=integration.id, kind=kind, psa_parent_id=new_id
        ).values_list("psa_id", flat=True)
        assert sorted(now) == ids, kind
    assert (await _link(integration, AssetKind.CONTACT, second.psa_id)).id == first.id
    assert (await _link(integration, AssetKind.CONTACT, first.psa_id)).id == second.id
    for link in (first, second):  # each local contact keeps its own name
        person = await Contact.get(id=link.local_id)
        assert (person.first_name, person.last_name) == (
            link.snapshot["first_name"],
            link.snapshot["last_name"],
        )
    # The same links, apart from the ids that moved.
    assert len(await _links()) == len(links_before)
    await _next_sync_writes_nothing(worker, integration)


async def test_a_record_gone_from_rest_without_a_candidate_is_reported_once(
    psa: Psa, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await _soap_synced(account, psa, vault, worker)
    configuration = min(
        await RecordLink.filter(
            integration_id=integration.id, kind=AssetKind.CONFIGURATION
        ).values_list("psa_id", flat=True)
    )
    link = await _link(integration, AssetKind.CONFIGURATION, configuration)
    psa.store.purge("configurations", configuration)
    integration = await _add_rest_keys(integration, vault)

    run = await sync_now(worker, integration)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.transition is not None
    assert (run.transition["relinked"], run.transition["unsettled"]) == (0, 1)
    [issue] = await _issues(run)
    assert (issue.kind, issue.psa_id, issue.local_id) == (
        AssetKind.CONFIGURATION,
        configuration,
        link.local_id,
    )
    assert issue.detail["reason"] == "not_found"
    assert f"no configuration {configuration}" in issue.message
    assert link.snapshot["name"] in issue.message
    # Reported, then orphaned by the pull as any record gone from the PSA.
    assert run.orphaned == 1
    assert (await RecordLink.get(id=link.id)).state == LinkState.ORPHANED
    assert run.created == 0
    await _next_sync_writes_nothing(worker, integration)


async def test_pushes_and_notices_wait_for_the_check_after_a_switch(
    psa: Psa, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await _soap_synced(account, psa, vault, worker)
    integration = await _add_rest_keys(integration, vault)
    provider = await worker.open_provider(integration)
    try:
        assert transition.pending(integration, provider)
        await sync_now(worker, integration)
        assert not transition.pending(await Integration.get(id=integration.id), provider)
    finally:
        await provider.aclose()


async def test_companies_rest_shows_with_a_type_not_synced_are_reported_as_leaving_the_sync(
    psa: Psa, account: Account, vault: Vault, worker: Worker
) -> None:
    """SOAP shows a company's first type only: a "Client" that is also a "Partner" synced
    through SOAP with Partner disabled. REST shows both, so the pull after the switch leaves
    it out (every type must be enabled, as in IT Glue); the switch says so, company by
    company, naming the type to enable, instead of orphans without a reason."""
    clients = [
        c["id"]
        for c in psa.store.find("companies")
        if [t["name"] for t in c.get("types") or []] == ["Client"]
        and c["status"]["name"] == "Active"
    ]
    partners = clients[:2]
    for company in partners:  # Client first: through SOAP they are Clients only
        psa.store.update("companies", company, {"types": [{"id": 1}, {"id": 4}]})
    integration = await _soap_synced(account, psa, vault, worker)
    linked = await RecordLink.filter(
        integration_id=integration.id, kind=AssetKind.ORGANIZATION, state=LinkState.SYNCED
    ).values_list("psa_id", flat=True)
    assert set(partners) <= set(linked)
    integration = await _add_rest_keys(integration, vault, enable_partner=False)

    run = await sync_now(worker, integration)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.transition is not None
    assert run.transition["leaving_scope"] == len(partners)
    issues = await SyncRunIssue.filter(run_id=run.id, code=transition.SCOPE_ISSUE).order_by(
        "psa_id"
    )
    assert [i.psa_id for i in issues] == partners
    assert all("Enable 'Partner' to keep it" in i.message for i in issues)
    orphaned = await RecordLink.filter(
        integration_id=integration.id, kind=AssetKind.ORGANIZATION, state=LinkState.ORPHANED
    ).values_list("psa_id", flat=True)
    assert sorted(orphaned) == partners  # those, and no other company
    assert run.created == 0
