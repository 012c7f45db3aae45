"""Integration mutations and queries end to end: GraphQL → engine → ConnectWise simulator
over real HTTP → database."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from harness import CREDENTIALS, GraphQLClient, Psa

from models import (
    Configuration,
    Contact,
    Integration,
    Location,
    Organization,
    RecordLink,
    RunStatus,
    SyncRun,
)
from sync.runner import Worker

CREATE = """
mutation($input: CreateIntegrationInput!) {
  createIntegration(input: $input) {
    integration {
      id name status statusLabel
      settings { configurationTypes { reference { id } name syncState } contactsEnabled }
    }
    run { id status trigger }
    errors { code message field }
  }
}"""

INTEGRATION = """
query($id: ID!) {
  integration(id: $id) {
    name status statusLabel lastSuccessAt lastError siteUrl
    credentials { siteUrl setFields publicKeyHint }
    settings { twoWayEnabled contactsEnabled syncIntervalSeconds
               configurationTypes { reference { id } name psaId syncState } }
    lastRun { id status dryRun kind trigger progress { processed total percent }
              counts { created updated unchanged linked orphaned skipped failed } }
    runs(first: 10) { totalCount edges { node { id status dryRun } } }
  }
}"""

SETTINGS = """
mutation($input: UpdateSyncSettingsInput!) {
  updateSyncSettings(input: $input) {
    integration { status statusLabel settings { syncIntervalSeconds } }
    queuedRun { id status trigger }
    errors { code message field }
  }
}"""


def connectwise_input(psa: Psa, **changes: Any) -> dict[str, Any]:
    credentials = {
        "siteUrl": psa.base_url,
        "companyId": CREDENTIALS.company_id,
        "publicKey": CREDENTIALS.public_key,
        "privateKey": CREDENTIALS.private_key,
        "clientId": "psasync-tests",
    }
    credentials.update(changes)
    return {"provider": "CONNECTWISE_MANAGE", "name": "ConnectWise", "sandbox": True,
            "connectwise": credentials}  # fmt: skip


async def create(admin: GraphQLClient, psa: Psa, **changes: Any) -> dict[str, Any]:
    data = await admin.data(CREATE, {"input": connectwise_input(psa, **changes)})
    return data["createIntegration"]  # type: ignore[no-any-return]


async def connected(admin: GraphQLClient, psa: Psa, worker: Worker) -> str:
    """An integration whose first full sync has run; returns its id."""
    created = await create(admin, psa)
    assert created["errors"] == []
    await worker.run_until_idle()
    return created["integration"]["id"]  # type: ignore[no-any-return]


async def test_connecting_loads_reference_data_and_queues_the_first_sync(
    admin: GraphQLClient, psa: Psa, worker: Worker
) -> None:
    created = await create(admin, psa)
    assert created["errors"] == []
    integration = created["integration"]
    assert integration["statusLabel"] == "Queued"
    assert created["run"]["status"] == "QUEUED"
    assert created["run"]["trigger"] == "SETUP"
    types = {t["name"]: t["syncState"] for t in integration["settings"]["configurationTypes"]}
    assert types["Managed Server"] == "ENABLED"  # the recommended scope
    assert types["Printer"] == "DISABLED"

    await worker.run_until_idle()
    data = await admin.data(INTEGRATION, {"id": integration["id"]})
    shown = data["integration"]
    assert shown["status"] == "OK"
    assert shown["statusLabel"] == "OK"
    assert shown["lastSuccessAt"] is not None
    assert shown["lastRun"]["status"] == "SUCCEEDED"
    every = [await model.all().count() for model in (Organization, Location, Contact,
                                                       Configuration)]  # fmt: skip
    assert shown["lastRun"]["counts"]["created"] == sum(every)
    assert shown["lastRun"]["progress"]["processed"] >= shown["lastRun"]["counts"]["created"]


async def test_credentials_are_never_returned(
    admin: GraphQLClient, psa: Psa, worker: Worker
) -> None:
    integration_id = await connected(admin, psa, worker)
    data = await admin.data(INTEGRATION, {"id": integration_id})
    credentials = data["integration"]["credentials"]
    assert credentials["siteUrl"] == psa.base_url
    assert set(credentials["setFields"]) >= {"privateKey", "publicKey", "companyId"}
    body = str(data)
    assert CREDENTIALS.private_key not in body
    assert CREDENTIALS.public_key not in body


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_failed_connection_test_is_a_typed_error_and_stores_nothing(
    admin: GraphQLClient, psa: Psa
) -> None:
    cases = [
        ({"privateKey": "wrong"}, "INVALID_CREDENTIALS"),
        ({"siteUrl": f"http://127.0.0.1:{closed_port()}"}, "UNREACHABLE"),
        ({"siteUrl": "http://psa.example.com"}, "INSECURE_URL"),
    ]
    for changes, code in cases:
        created = await create(admin, psa, **changes)
        assert created["integration"] is None
        assert [e["code"] for e in created["errors"]] == [code], created["errors"]
        assert created["errors"][0]["message"]
    assert await Integration.all().count() == 0
    assert await SyncRun.all().count() == 0


async def test_sandbox_integrations_need_the_operator_to_allow_them(
    admin: GraphQLClient, psa: Psa, app: Any
) -> None:
    graphql = next(r.endpoint for r in app.routes if getattr(r, "path", "") == "/graphql")
    graphql.allow_sandbox = False
    created = await create(admin, psa)
    assert created["errors"] == [
        {"code": "INSECURE_URL", "field": "sandbox", "message": created["errors"][0]["message"]}
    ]
    assert "PSASYNC_ALLOW_SANDBOX" in created["errors"][0]["message"]
    assert await Integration.all().count() == 0


async def test_enabling_a_configuration_type_queues_a_sync_that_brings_its_records(
    admin: GraphQLClient, psa: Psa, worker: Worker
) -> None:
    integration_id = await connected(admin, psa, worker)
    before = await admin.data(INTEGRATION, {"id": integration_id})
    printer = next(
        t for t in before["integration"]["settings"]["configurationTypes"] if t["name"] == "Printer"
    )
    assert printer["syncState"] == "DISABLED"
    expected = [
        c["name"]
        for c in psa.store.find("configurations")
        if c["type"]["name"] == "Printer" and c["status"]["name"] == "Active"
    ]
    assert expected  # the seeded PSA has printers to bring in
    assert not await Configuration.filter(name__in=expected).exists()

    changes = [{"referenceId": printer["reference"]["id"], "syncState": "ENABLED"}]
    saved = await admin.data(
        SETTINGS, {"input": {"integrationId": integration_id, "changes": changes}}
    )
    payload = saved["updateSyncSettings"]
    assert payload["errors"] == []
    assert payload["queuedRun"]["status"] == "QUEUED"
    assert payload["queuedRun"]["trigger"] == "SETTINGS"
    assert payload["integration"]["statusLabel"] == "Queued"

    await worker.run_until_idle()
    assert await Configuration.filter(name__in=expected).exists()


async def test_settings_without_a_scope_change_queue_nothing_and_bad_ones_are_refused(
    admin: GraphQLClient, psa: Psa, worker: Worker
) -> None:
    integration_id = await connected(admin, psa, worker)
    saved = await admin.data(
        SETTINGS, {"input": {"integrationId": integration_id, "syncIntervalSeconds": 900}}
    )
    assert saved["updateSyncSettings"]["queuedRun"] is None
    assert saved["updateSyncSettings"]["integration"]["settings"]["syncIntervalSeconds"] == 900

    refused = await admin.data(
        SETTINGS, {"input": {"integrationId": integration_id, "syncIntervalSeconds": 5}}
    )
    assert refused["updateSyncSettings"]["errors"][0]["code"] == "INVALID_INTERVAL"
    assert refused["updateSyncSettings"]["errors"][0]["field"] == "syncIntervalSeconds"
    # A reference value id that is not this integration's (here: an integration id).
    refused = await admin.data(
        SETTINGS,
        {
            "input": {
                "integrationId": integration_id,
                "changes": [{"referenceId": integration_id, "syncState": "ENABLED"}],
            }
        },
    )
    assert refused["updateSyncSettings"]["errors"][0]["code"] == "INVALID_ID"
    assert refused["updateSyncSettings"]["errors"][0]["field"] == "referenceId"
    assert await SyncRun.filter(status=RunStatus.QUEUED).count() == 0


async def test_a_manual_dry_run_reports_and_writes_nothing(
    admin: GraphQLClient, psa: Psa, worker: Worker
) -> None:
    integration_id = await connected(admin, psa, worker)
    psa.store.create("companies", _company(psa, "Brand New Client Co"))
    started = await admin.data(
        """mutation($id: ID!) { startManualSync(integrationId: $id, dryRun: true) {
             run { id dryRun status kind trigger } errors { code } } }""",
        {"id": integration_id},
    )
    run = started["startManualSync"]["run"]
    assert run["dryRun"] is True
    assert run["kind"] == "MANUAL"
    await worker.run_until_idle()
    report = await admin.data(
        "query($id: ID!) { syncRun(id: $id) { status counts { created } } }", {"id": run["id"]}
    )
    assert report["syncRun"]["status"] == "SUCCEEDED"
    assert report["syncRun"]["counts"]["created"] == 2  # the company and its "Main" site
    assert not await Organization.filter(name="Brand New Client Co").exists()

    real = await admin.data(
        """mutation($id: ID!) { startManualSync(integrationId: $id) { run { id } } }""",
        {"id": integration_id},
    )
    await worker.run_until_idle()
    assert await Organization.filter(name="Brand New Client Co").exists()
    report = await admin.data(
        "query($id: ID!) { syncRun(id: $id) { status dryRun } }",
        {"id": real["startManualSync"]["run"]["id"]},
    )
    assert report["syncRun"] == {"status": "SUCCEEDED", "dryRun": False}


async def test_a_dry_run_is_never_shown_as_the_last_sync_but_stays_in_the_runs(
    admin: GraphQLClient, psa: Psa, worker: Worker
) -> None:
    integration_id = await connected(admin, psa, worker)
    before = (await admin.data(INTEGRATION, {"id": integration_id}))["integration"]
    assert before["lastRun"]["dryRun"] is False

    started = await admin.data(
        """mutation($id: ID!) { startManualSync(integrationId: $id, dryRun: true) {
             run { id } errors { code } } }""",
        {"id": integration_id},
    )
    dry_id = started["startManualSync"]["run"]["id"]
    await worker.run_until_idle()

    after = (await admin.data(INTEGRATION, {"id": integration_id}))["integration"]
    assert after["lastRun"]["id"] == before["lastRun"]["id"]  # the real sync, not the preview
    assert after["lastSuccessAt"] == before["lastSuccessAt"]
    newest = after["runs"]["edges"][0]["node"]
    assert newest == {"id": dry_id, "status": "SUCCEEDED", "dryRun": True}
    listed = await admin.data("{ integrations { lastRun { id dryRun } } }")
    assert listed["integrations"] == [{"lastRun": {"id": before["lastRun"]["id"],
                                                   "dryRun": False}}]  # fmt: skip


def _company(psa: Psa, name: str) -> dict[str, Any]:
    template = next(
        c
        for c in psa.store.find("companies")
        if c["status"]["name"] == "Active" and {t["name"] for t in c["types"]} == {"Client"}
    )
    return {
        "name": name,
        "identifier": name.replace(" ", "")[:25],
        "types": template["types"],
        "status": template["status"],
        "addressLine1": "1 Main Street",
        "city": "Springfield",
    }


PAUSE = """mutation($id: ID!) { pauseIntegration(integrationId: $id) {
  integration { status statusLabel } errors { code } } }"""
RESUME = """mutation($id: ID!) { resumeIntegration(integrationId: $id) {
  integration { status statusLabel } errors { code } } }"""


async def test_a_paused_integration_starts_no_runs_until_resumed(
    admin: GraphQLClient, psa: Psa, worker: Worker
) -> None:
    integration_id = await connected(admin, psa, worker)
    paused = await admin.data(PAUSE, {"id": integration_id})
    assert paused["pauseIntegration"]["integration"] == {"status": "PAUSED",
                                                         "statusLabel": "Paused"}  # fmt: skip
    refused = await admin.data(
        "mutation($id: ID!) { startManualSync(integrationId: $id) { errors { code } } }",
        {"id": integration_id},
    )
    assert refused["startManualSync"]["errors"] == [{"code": "PAUSED"}]

    # A scheduled or settings-driven run may still be queued while paused: it waits.
    integration = await Integration.get()
    from sync import jobs

    waiting = await jobs.enqueue(integration)
    assert await worker.run_until_idle() == 0
    assert (await SyncRun.get(id=waiting.id)).status == RunStatus.QUEUED

    resumed = await admin.data(RESUME, {"id": integration_id})
    assert resumed["resumeIntegration"]["integration"]["statusLabel"] == "Queued"
    assert await worker.run_until_idle() == 1
    assert (await SyncRun.get(id=waiting.id)).status == RunStatus.SUCCEEDED
    again = await admin.data(RESUME, {"id": integration_id})
    assert again["resumeIntegration"]["errors"] == [{"code": "NOT_PAUSED"}]


async def test_pausing_hands_a_running_sync_back_and_resume_finishes_it(
    admin: GraphQLClient, psa: Psa, worker: Worker
) -> None:
    psa.simulator.faults.latency_ms = 15  # slow enough to pause mid-run
    created = await create(admin, psa)
    integration_id = created["integration"]["id"]
    running = asyncio.create_task(worker.run_once())
    run = await SyncRun.get()
    while run.processed == 0:
        await asyncio.sleep(0.02)
        await run.refresh_from_db()
    await admin.data(PAUSE, {"id": integration_id})
    await running  # the worker drops the run at its next page

    run = await SyncRun.get()
    assert run.status == RunStatus.QUEUED
    assert run.checkpoint  # where it will carry on
    assert (await Integration.get()).status == "PAUSED"
    assert await worker.run_until_idle() == 0

    psa.simulator.faults.latency_ms = 0
    await admin.data(RESUME, {"id": integration_id})
    assert await worker.run_until_idle() == 1
    run = await SyncRun.get()
    assert run.status == RunStatus.SUCCEEDED
    assert (await Integration.get()).status == "OK"


DELETE = """mutation($id: ID!, $mode: DeleteMode!) {
  deleteIntegration(integrationId: $id, mode: $mode) {
    deletedId removed { organizations locations contacts configurations } errors { code }
  }
}"""


async def test_disconnecting_keeps_the_records_and_drops_the_links(
    admin: GraphQLClient, psa: Psa, worker: Worker
) -> None:
    integration_id = await connected(admin, psa, worker)
    organizations = await Organization.all().count()
    data = await admin.data(DELETE, {"id": integration_id, "mode": "DISCONNECT"})
    assert data["deleteIntegration"]["deletedId"] == integration_id
    assert data["deleteIntegration"]["removed"]["organizations"] == 0
    assert await Organization.all().count() == organizations
    assert await RecordLink.all().count() == 0
    assert await Integration.all().count() == 0
    listed = await admin.data("{ integrations { id } organizations { totalCount } }")
    assert listed == {"integrations": [], "organizations": {"totalCount": organizations}}


async def test_deleting_with_data_removes_only_what_came_from_that_psa(
    admin: GraphQLClient, psa: Psa, worker: Worker, account: Any
) -> None:
    companies = sorted(
        (
            c
            for c in psa.store.find("companies")
            if c["status"]["name"] == "Active" and {t["name"] for t in c["types"]} == {"Client"}
        ),
        key=lambda c: c["id"],
    )
    # Existed before the sync, then matched and linked: not the PSA's to delete.
    mine = Organization(account=account, name=companies[0]["name"])
    mine.match_key = mine.compute_match_key()
    await mine.save()
    integration_id = await connected(admin, psa, worker)
    # Added locally under an organization the sync created: that organization stays.
    host = await Organization.get(name=companies[1]["name"])
    await admin.data(
        """mutation($org: ID!) { createConfiguration(input: {organizationId: $org,
             name: "Hand-added NAS"}) { errors { code } } }""",
        {"org": _gid("Organization", host.id)},
    )
    total = await Organization.all().count()

    data = await admin.data(DELETE, {"id": integration_id, "mode": "DELETE_DATA"})
    removed = data["deleteIntegration"]["removed"]
    assert removed["organizations"] == total - 2
    assert removed["configurations"] > 0
    assert removed["locations"] > 0
    left = {o.name for o in await Organization.all()}
    assert left == {companies[0]["name"], companies[1]["name"]}
    assert [c.name for c in await Configuration.all()] == ["Hand-added NAS"]


async def test_new_credentials_are_tested_before_they_replace_the_old(
    admin: GraphQLClient, psa: Psa, worker: Worker
) -> None:
    integration_id = await connected(admin, psa, worker)
    mutation = """mutation($input: UpdateIntegrationCredentialsInput!) {
      updateIntegrationCredentials(input: $input) { integration { statusLabel }
        errors { code field } } }"""
    refused = await admin.data(
        mutation,
        {"input": {"integrationId": integration_id, "connectwise": {"privateKey": "stale"}}},
    )
    assert refused["updateIntegrationCredentials"]["errors"] == [
        {"code": "INVALID_CREDENTIALS", "field": "connectwise.privateKey"}
    ]
    # The stored credentials still work.
    await admin.data(
        "mutation($id: ID!) { startManualSync(integrationId: $id) { run { id } } }",
        {"id": integration_id},
    )
    await worker.run_until_idle()
    assert (await SyncRun.filter().order_by("-queued_at").first()).status == RunStatus.SUCCEEDED  # type: ignore[union-attr]

    accepted = await admin.data(
        mutation,
        {
            "input": {
                "integrationId": integration_id,
                "connectwise": {"privateKey": CREDENTIALS.private_key, "clientId": "rotated"},
            }
        },
    )
    assert accepted["updateIntegrationCredentials"]["errors"] == []


async def test_run_errors_are_grouped_by_type_with_the_affected_records(
    admin: GraphQLClient, psa: Psa, worker: Worker, account: Any
) -> None:
    company = next(
        c
        for c in sorted(psa.store.find("companies"), key=lambda c: c["id"])
        if c["status"]["name"] == "Active" and {t["name"] for t in c["types"]} == {"Client"}
    )
    for _ in range(2):
        twin = Organization(account=account, name=company["name"])
        twin.match_key = twin.compute_match_key()
        await twin.save()
    created = await create(admin, psa)
    await worker.run_until_idle()
    data = await admin.data(
        """query($id: ID!) { syncRun(id: $id) { status counts { failed }
             errors { code count message records(first: 5) { totalCount
               edges { node { kind psaId message } } } } } }""",
        {"id": created["run"]["id"]},
    )
    run = data["syncRun"]
    assert run["status"] == "SUCCEEDED"
    (group,) = [g for g in run["errors"] if g["code"] == "ambiguous_match"]
    assert group["count"] == 1
    assert company["name"] in group["message"]
    (record,) = [e["node"] for e in group["records"]["edges"]]
    assert record["kind"] == "ORGANIZATION"
    assert record["psaId"] == company["id"]


def _gid(type_name: str, local_id: Any) -> str:
    from api.graphql.ids import to_global

    return to_global(type_name, local_id)
