"""Two-way sync of a SOAP-only ConnectWise integration (integrator login, no REST keys), end to
end through the engine over HTTP against the simulator (SQLite and PostgreSQL): local edits
are pushed through SOAP's whole-record updates without blanking what was not touched, a PSA
edit met by a push is settled as over REST, and creates happen once."""

from __future__ import annotations

from typing import Any

import pytest
from harness import ALL_SCOPE, CREDENTIALS, Psa
from two_way_helpers import (
    a_synced_configuration,
    a_synced_organization,
    link_of,
    new_configuration,
    pull,
    two_way,
)

from models import (
    Account,
    AssetKind,
    ConflictOutcome,
    Contact,
    Integration,
    LinkState,
    Location,
    Organization,
    OutboxEntry,
    PushState,
    RecordLink,
    ReferenceKind,
    ReferenceValue,
    RunStatus,
    SyncConflict,
    SyncRun,
)
from models.vault import Vault
from simulators.connectwise.soap import IntegratorLogin
from sync import local_edits, push_all
from sync.integrations import add_connectwise
from sync.providers.connectwise.credentials import ConnectWiseCredentials
from sync.push_all import Scope
from sync.runner import Worker

pytestmark = pytest.mark.db

LOGIN = IntegratorLogin()  # what the simulator accepts by default
# SOAP shows a company's first type only: "Partner" is never one in the dataset.
SOAP_SCOPE = {
    **ALL_SCOPE,
    ReferenceKind.ORGANIZATION_TYPE: [
        t for t in ALL_SCOPE[ReferenceKind.ORGANIZATION_TYPE] if t != "Partner"
    ],
}
ORG, SITE, CONTACT, CONFIG = (
    AssetKind.ORGANIZATION,
    AssetKind.LOCATION,
    AssetKind.CONTACT,
    AssetKind.CONFIGURATION,
)


def _soap_credentials(psa: Psa) -> ConnectWiseCredentials:
    return ConnectWiseCredentials(
        site_url=psa.base_url,
        company_id=CREDENTIALS.company_id,
        public_key=None,
        private_key=None,
        client_id="psasync-tests",
        integrator_login_id=LOGIN.login_id,
        integrator_password=LOGIN.password,
    )


async def _soap_two_way(
    account: Account, psa: Psa, vault: Vault, worker: Worker, **stored: Any
) -> Integration:
    """A SOAP-only integration whose first sync has run, then turned two-way."""
    integration, _run = await add_connectwise(
        account, _soap_credentials(psa), vault, sandbox=True, enable=SOAP_SCOPE, name="SOAP"
    )
    await worker.run_until_idle()
    return await two_way(worker, integration, **stored)


def _untimed(record: Any) -> Any:
    """A store record without its ``_info`` stamps (every write changes them)."""
    if isinstance(record, dict):
        return {k: _untimed(v) for k, v in record.items() if k != "_info"}
    if isinstance(record, list):
        return [_untimed(v) for v in record]
    return record


def _stored(psa: Psa, collection: str, psa_id: int) -> dict[str, Any]:
    record = psa.store.get(collection, psa_id)
    assert record is not None, f"{collection} {psa_id} is gone"
    return record


async def _synced_id(integration: Integration, kind: AssetKind, local_id: Any) -> int:
    link = await RecordLink.get(integration_id=integration.id, kind=kind, local_id=local_id)
    assert link.state == LinkState.SYNCED
    assert link.psa_id is not None
    return link.psa_id


# ------------------------------------------------------------------------------ updates


async def test_a_local_edit_is_pushed_through_soap_and_untouched_fields_stay(
    psa: Psa, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await _soap_two_way(account, psa, vault, worker)
    config, psa_id = await a_synced_configuration(integration)
    psa.store.update("configurations", psa_id, {"notes": "Rack 4", "osInfo": "22H2"})
    await pull(worker, integration)
    before = _stored(psa, "configurations", psa_id)
    writes = psa.simulator.traffic.writes

    await local_edits.update(CONFIG, account.id, config.id, {"serial_number": "SN-OVER-SOAP"})
    await worker.run_until_idle()

    after = _stored(psa, "configurations", psa_id)
    assert _untimed(after) == {**_untimed(before), "serialNumber": "SN-OVER-SOAP"}
    assert psa.simulator.traffic.writes == writes + 1
    link = await link_of(integration, config.id)
    assert link.push_state == PushState.NONE
    assert link.snapshot["serial_number"] == "SN-OVER-SOAP"
    assert not await OutboxEntry.filter(integration_id=integration.id).exists()


async def test_a_contact_title_and_an_organization_name_are_pushed_and_nothing_else(
    psa: Psa, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await _soap_two_way(account, psa, vault, worker)
    org, company_id = await a_synced_organization(psa, integration)
    sites = psa.store.find("sites", parent_id=company_id)
    person = await Contact.filter(organization_id=org.id).order_by("last_name").first()
    assert person is not None
    contact_id = await _synced_id(integration, CONTACT, person.id)
    company_before = _stored(psa, "companies", company_id)
    contact_before = _stored(psa, "contacts", contact_id)

    await local_edits.update(ORG, account.id, org.id, {"name": "Renamed Over SOAP"})
    await local_edits.update(CONTACT, account.id, person.id, {"title": "Chief Soap Officer"})
    await worker.run_until_idle()

    company = _stored(psa, "companies", company_id)
    assert _untimed(company) == {**_untimed(company_before), "name": "Renamed Over SOAP"}
    contact = _stored(psa, "contacts", contact_id)
    expected = {**_untimed(contact_before), "title": "Chief Soap Officer"}
    expected["company"]["name"] = "Renamed Over SOAP"
    assert _untimed(contact) == expected
    # Sites sent back as read by the company update are not rewritten.
    assert [s["_info"] for s in psa.store.find("sites", parent_id=company_id)] == [
        s["_info"] for s in sites
    ]
    assert (await Organization.get(id=org.id)).name == "Renamed Over SOAP"


async def test_a_site_edit_is_pushed_through_its_company(
    psa: Psa, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await _soap_two_way(account, psa, vault, worker)
    org, company_id = await a_synced_organization(psa, integration)
    location = await Location.filter(organization_id=org.id).first()
    assert location is not None
    site_id = await _synced_id(integration, SITE, location.id)
    before = _stored(psa, "sites", site_id)
    others = [s for s in psa.store.find("sites", parent_id=company_id) if s["id"] != site_id]

    await local_edits.update(SITE, account.id, location.id, {"city": "Soapville"})
    await worker.run_until_idle()

    assert _untimed(_stored(psa, "sites", site_id)) == {**_untimed(before), "city": "Soapville"}
    assert [s for s in psa.store.find("sites", parent_id=company_id) if s["id"] != site_id] == (
        others
    )
    link = await link_of(integration, location.id)
    assert link.push_state == PushState.NONE


# ------------------------------------------------------------------ the PSA changed too


@pytest.mark.parametrize(
    ("policy", "outcome", "name_after"),
    [
        ("PSA_WINS", ConflictOutcome.PSA, "Theirs Ltd"),
        ("LOCAL_WINS", ConflictOutcome.LOCAL, "Ours Ltd"),
        ("MANUAL", ConflictOutcome.OPEN, None),
    ],
)
async def test_a_psa_edit_of_a_field_we_push_is_settled_by_its_policy_over_soap(
    psa: Psa,
    account: Account,
    vault: Vault,
    worker: Worker,
    policy: str,
    outcome: ConflictOutcome,
    name_after: str | None,
) -> None:
    fields = {"organization.name": {"direction": "TWO_WAY", "policy": policy}}
    integration = await _soap_two_way(account, psa, vault, worker, fields=fields)
    org, psa_id = await a_synced_organization(psa, integration)
    await local_edits.update(ORG, account.id, org.id, {"name": "Ours Ltd"})
    psa.store.update("companies", psa_id, {"name": "Theirs Ltd"})  # before we deliver
    writes = psa.simulator.traffic.writes

    await worker.deliverer.run_due()

    [conflict] = await SyncConflict.filter(local_id=org.id, field="name")
    assert conflict.outcome == outcome
    assert (conflict.local_value, conflict.psa_value) == ('"Ours Ltd"', '"Theirs Ltd"')
    local = (await Organization.get(id=org.id)).name
    if name_after is None:  # MANUAL: both sides keep theirs, nothing is written
        assert (local, _stored(psa, "companies", psa_id)["name"]) == ("Ours Ltd", "Theirs Ltd")
        assert psa.simulator.traffic.writes == writes
    else:
        assert local == _stored(psa, "companies", psa_id)["name"] == name_after
    assert not await OutboxEntry.filter(integration_id=integration.id).exists()


# ------------------------------------------------------------------------------ creates


async def test_a_local_create_happens_once_in_connectwise(
    psa: Psa, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await _soap_two_way(account, psa, vault, worker)
    org, company_id = await a_synced_organization(psa, integration)
    values = await new_configuration(integration, org.id, "SOAP-NEW-PC")
    values["serial_number"] = "SN-NEW-1"
    config = await local_edits.create(CONFIG, account.id, values)

    await worker.run_until_idle()
    await pull(worker, integration)
    await worker.run_until_idle()

    [created] = psa.store.find("configurations", 'name = "SOAP-NEW-PC"')
    assert created["company"]["id"] == company_id
    assert created["serialNumber"] == "SN-NEW-1"
    assert await _synced_id(integration, CONFIG, config.id) == created["id"]


async def test_push_all_over_soap_creates_each_record_once(
    psa: Psa, account: Account, vault: Vault, worker: Worker
) -> None:
    integration = await _soap_two_way(account, psa, vault, worker)
    client = await ReferenceValue.get(
        account_id=account.id, kind="organization_type", name="Client"
    )
    active = await ReferenceValue.get(
        account_id=account.id, kind="organization_status", name="Active"
    )
    names = [f"Soapco {i}" for i in range(2)]
    for name in names:
        org = await local_edits.create(
            ORG,
            account.id,
            {
                "name": name,
                "organization_type_id": client.id,
                "organization_status_id": active.id,
            },
        )
        site = await local_edits.create(
            SITE,
            account.id,
            {"organization_id": org.id, "name": "Main", "address_1": "1 Foam Rd", "city": "Tampa"},
        )
        await Organization.filter(id=org.id).update(primary_location_id=site.id)

    run = await push_all.start(integration, Scope(), dry_run=False)
    await worker.run_until_idle()
    run = await SyncRun.get(id=run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    companies = len(psa.store.find("companies"))
    for name in names:
        [company] = psa.store.find("companies", f'name = "{name}"')
        assert company["types"][0]["name"] == "Client"
        assert company["status"]["name"] == "Active"
        assert company["city"] == "Tampa"
        org = await Organization.get(account_id=account.id, name=name)
        assert await _synced_id(integration, ORG, org.id) == company["id"]
        # ConnectWise made the company's site from its address: linked, not created again.
        [made] = psa.store.find("sites", parent_id=company["id"])
        location = await Location.get(organization_id=org.id)
        assert await _synced_id(integration, SITE, location.id) == made["id"]

    again = await push_all.start(integration, Scope(), dry_run=False)
    await worker.run_until_idle()
    again = await SyncRun.get(id=again.id)
    assert again.status == RunStatus.SUCCEEDED, again.error
    assert again.created == 0
    assert len(psa.store.find("companies")) == companies


async def test_a_column_soap_cannot_read_keeps_its_local_value_through_pushes_and_pulls(
    psa: Psa, account: Account, vault: Vault, worker: Worker
) -> None:
    """SOAP has no parent company: the field is not synced through SOAP, so the local parent
    is neither sent (nothing to send it with) nor cleared by the next pull's None."""
    integration = await _soap_two_way(account, psa, vault, worker)
    org, company_id = await a_synced_organization(psa, integration)
    other = await Organization.filter(account_id=account.id).exclude(id=org.id).first()
    assert other is not None
    writes = psa.simulator.traffic.writes
    before = _stored(psa, "companies", company_id)

    await local_edits.update(ORG, account.id, org.id, {"parent_id": other.id})
    await worker.run_until_idle()
    psa.store.update("companies", company_id, {"name": "Renamed In ConnectWise"})
    await pull(worker, integration)

    local = await Organization.get(id=org.id)
    assert local.parent_id == other.id  # type: ignore[attr-defined]
    assert local.name == "Renamed In ConnectWise"  # the pull did run over this record
    assert psa.simulator.traffic.writes == writes  # nothing sent for the parent
    assert _stored(psa, "companies", company_id).get("parentCompany") == before.get("parentCompany")
    assert not await OutboxEntry.filter(integration_id=integration.id).exists()
    assert not await SyncConflict.filter(integration_id=integration.id).exists()
