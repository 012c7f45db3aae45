"""Two-way sync through GraphQL, end to end: GraphQL → engine → ConnectWise simulator over
real HTTP → database. Link states, read-only fields under each direction, settings, push
all, conflicts, refused pushes, the outbox, field history and directory imports, with the
roles and account boundaries of each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from harness import GraphQLClient, Psa

from api.graphql.ids import to_global
from models import (
    Account,
    Contact,
    Integration,
    LinkState,
    Organization,
    RecordLink,
    ReferenceValue,
    Role,
    RunStatus,
    SyncConflict,
    SyncRun,
)
from models.db import count_queries
from sync.context import RunContext
from sync.full_sync import full_sync
from sync.runner import Worker

Connect = Callable[..., Awaitable[Integration]]
Caller = Callable[..., Awaitable[GraphQLClient]]
NOT_PUSHED = "Record not yet pushed to ConnectWise Manage. To trigger a push, update the record."


def gid(type_name: str, local_id: Any) -> str:
    return to_global(type_name, local_id)


@pytest.fixture
async def synced(connect: Connect, worker: Worker) -> Integration:
    """An integration whose first (one-way) sync has run."""
    integration = await connect()
    await worker.run_until_idle()
    return integration


SYNC_SETTINGS = """
mutation($input: UpdateSyncSettingsInput!) {
  updateSyncSettings(input: $input) { integration { settings { twoWayEnabled } }
    errors { code field } } }"""

TWO_WAY_SETTINGS = """
mutation($input: UpdateTwoWaySettingsInput!) {
  updateTwoWaySettings(input: $input) {
    integration { twoWay {
      enabled default { direction policy } kinds { kind direction policy }
      fields { kind field direction policy fixed }
      clockSkewSeconds tieBreaker propagateDeletes contactEmailType contactPhoneType
      pushRatePerMinute } }
    errors { code field message }
  }
}"""


async def two_way_on(admin: GraphQLClient, integration: Integration, worker: Worker) -> None:
    """Tick the two-way checkbox (updateSyncSettings) and let the sync it queues run."""
    data = await admin.data(
        SYNC_SETTINGS,
        {"input": {"integrationId": gid("Integration", integration.id), "twoWayEnabled": True}},
    )
    assert data["updateSyncSettings"]["errors"] == []
    assert data["updateSyncSettings"]["integration"]["settings"]["twoWayEnabled"] is True
    await worker.run_until_idle()


async def two_way_settings(
    client: GraphQLClient, integration: Integration, **changes: Any
) -> dict[str, Any]:
    data = await client.data(
        TWO_WAY_SETTINGS,
        {"input": {"integrationId": gid("Integration", integration.id), **changes}},
    )
    return data["updateTwoWaySettings"]  # type: ignore[no-any-return]


async def synced_organization(integration: Integration, skip: int = 0) -> tuple[Organization, int]:
    links = (
        await RecordLink.filter(
            integration_id=integration.id, kind="organization", state=LinkState.SYNCED
        )
        .order_by("psa_id")
        .offset(skip)
        .limit(1)
    )
    (link,) = links
    assert link.psa_id is not None
    return await Organization.get(id=link.local_id), link.psa_id


async def pull(worker: Worker, integration: Integration) -> None:
    """A full sync that reads the PSA before any queued push goes out, so both sides'
    changes meet in the merge (as a pull racing an edit does)."""
    integration = await Integration.get(id=integration.id)
    run = await SyncRun.create(
        integration_id=integration.id, status=RunStatus.RUNNING, lease_owner="test-pull"
    )
    provider = await worker.open_provider(integration)
    try:
        await full_sync(RunContext(integration, run), provider)
    finally:
        await provider.aclose()
    await SyncRun.filter(id=run.id).update(status=RunStatus.SUCCEEDED)


async def email_of(client: GraphQLClient) -> str:
    data = await client.data("{ viewer { user { email } } }")
    return data["viewer"]["user"]["email"]  # type: ignore[no-any-return]


async def reference_id(account: Account, kind: str, name: str) -> str:
    value = await ReferenceValue.get(account_id=account.id, kind=kind, name=name)
    return gid("ReferenceValue", value.id)


RENAME = """mutation($id: ID!, $input: OrganizationFields!) {
  updateOrganization(id: $id, input: $input) {
    organization { name psaLinks { id psaId state reason lastError } }
    errors { code field fields } } }"""

ORGANIZATION = """query($id: ID!) { node(id: $id) { ... on Organization {
  name psaLinks { id psaId state reason lastError readOnlyFields integration { name } }
  history(first: 5) { field oldValue newValue source actor integration { name } changedAt }
} } }"""


# ---------------------------------------------------------------------- link states


async def test_an_edit_under_two_way_is_pending_then_synced_and_reaches_connectwise(
    admin: GraphQLClient, synced: Integration, psa: Psa, worker: Worker
) -> None:
    await two_way_on(admin, synced, worker)
    org, psa_id = await synced_organization(synced)
    org_id = gid("Organization", org.id)

    saved = await admin.data(RENAME, {"id": org_id, "input": {"name": "Renamed Holdings"}})
    payload = saved["updateOrganization"]
    assert payload["errors"] == []
    (link,) = payload["organization"]["psaLinks"]
    assert link["state"] == "PENDING_PUSH"
    assert link["psaId"] == psa_id
    assert link["id"] is not None

    pending = await admin.data(
        """{ organizations(filter: {linkState: PENDING_PUSH}) { nodes { id } }
             synced: organizations(filter: {linkState: SYNCED}) { totalCount } }"""
    )
    assert pending["organizations"]["nodes"] == [{"id": org_id}]
    assert pending["synced"]["totalCount"] == await Organization.all().count() - 1

    # The history names the user who made the change.
    shown = (await admin.data(ORGANIZATION, {"id": org_id}))["node"]
    latest = shown["history"][0]
    assert latest["field"] == "name"
    assert (latest["oldValue"], latest["newValue"]) == (org.name, "Renamed Holdings")
    assert latest["source"] == "USER"
    assert latest["actor"] == await email_of(admin)
    assert latest["integration"] is None

    await worker.run_until_idle()
    shown = (await admin.data(ORGANIZATION, {"id": org_id}))["node"]
    (link,) = shown["psaLinks"]
    assert link["state"] == "SYNCED"
    assert link["integration"]["name"] == synced.name
    company = psa.store.get("companies", psa_id)
    assert company is not None
    assert company["name"] == "Renamed Holdings"


async def test_a_refused_push_shows_error_until_fixed_and_retried(
    admin: GraphQLClient, synced: Integration, psa: Psa, worker: Worker
) -> None:
    await two_way_on(admin, synced, worker)
    org, psa_id = await synced_organization(synced)
    _other, other_psa_id = await synced_organization(synced, skip=1)
    other = psa.store.get("companies", other_psa_id)
    assert other is not None
    org_id = gid("Organization", org.id)

    # ConnectWise refuses an identifier another company has.
    saved = await admin.data(RENAME, {"id": org_id, "input": {"shortName": other["identifier"]}})
    assert saved["updateOrganization"]["errors"] == []
    await worker.run_until_idle()
    (link,) = (await admin.data(ORGANIZATION, {"id": org_id}))["node"]["psaLinks"]
    assert link["state"] == "ERROR"
    assert f"The identifier '{other['identifier']}' is already in use." in link["lastError"]
    failed = await admin.data(
        """query($id: ID!) { integration(id: $id) { outbox(status: FAILED) { totalCount
             nodes { recordId status lastError attempts } } } }""",
        {"id": gid("Integration", synced.id)},
    )
    (entry,) = failed["integration"]["outbox"]["nodes"]
    assert entry["recordId"] == org_id
    assert entry["status"] == "FAILED"
    assert entry["lastError"] == link["lastError"]

    retry = """mutation($id: ID!) { retryPush(linkId: $id) {
      link { id state } errors { code field requiredRole } } }"""
    fixed = await admin.data(RENAME, {"id": org_id, "input": {"shortName": "FIXEDID"}})
    assert fixed["updateOrganization"]["errors"] == []
    retried = await admin.data(retry, {"id": link["id"]})
    assert retried["retryPush"] == {
        "link": {"id": link["id"], "state": "PENDING_PUSH"},
        "errors": [],
    }
    await worker.run_until_idle()
    company = psa.store.get("companies", psa_id)
    assert company is not None
    assert company["identifier"] == "FIXEDID"
    (link,) = (await admin.data(ORGANIZATION, {"id": org_id}))["node"]["psaLinks"]
    assert (link["state"], link["lastError"]) == ("SYNCED", None)


async def test_retry_push_without_refused_pushes_and_foreign_links_are_typed_errors(
    admin: GraphQLClient,
    synced: Integration,
    worker: Worker,
    caller: Caller,
    account: Account,
) -> None:
    await two_way_on(admin, synced, worker)
    org, _psa_id = await synced_organization(synced)
    link = await RecordLink.get(integration_id=synced.id, local_id=org.id)
    retry = """mutation($id: ID!) { retryPush(linkId: $id) {
      link { id } errors { code field requiredRole } } }"""

    nothing = await admin.data(retry, {"id": gid("PsaLink", link.id)})
    assert nothing["retryPush"] == {
        "link": None,
        "errors": [{"code": "NOTHING_TO_RETRY", "field": "linkId", "requiredRole": None}],
    }
    wrong_type = await admin.data(retry, {"id": gid("Organization", org.id)})
    assert wrong_type["retryPush"]["errors"][0]["code"] == "INVALID_ID"
    viewer = await caller(account, Role.VIEWER)
    denied = await viewer.data(retry, {"id": gid("PsaLink", link.id)})
    assert denied["retryPush"]["errors"] == [
        {"code": "PERMISSION_DENIED", "field": None, "requiredRole": "EDITOR"}
    ]
    stranger = await caller(await Account.create(name="Other MSP"), Role.ADMINISTRATOR)
    foreign = await stranger.data(retry, {"id": gid("PsaLink", link.id)})
    assert foreign["retryPush"]["errors"][0]["code"] == "NOT_FOUND"


async def test_a_record_from_before_two_way_shows_a_virtual_not_pushed_link(
    admin: GraphQLClient, synced: Integration, worker: Worker, account: Account, psa: Psa
) -> None:
    created = await admin.data(
        """mutation($type: ID!, $status: ID!) { createOrganization(input: {
             name: "Documented Before Two-Way", organizationTypeId: $type,
             organizationStatusId: $status}) { organization { id psaLinks { state } } } }""",
        {
            "type": await reference_id(account, "organization_type", "Client"),
            "status": await reference_id(account, "organization_status", "Active"),
        },
    )
    org = created["createOrganization"]["organization"]
    assert org["psaLinks"] == []  # one-way: nothing is pushed, so nothing is pending

    await two_way_on(admin, synced, worker)
    shown = (await admin.data(ORGANIZATION, {"id": org["id"]}))["node"]
    assert shown["psaLinks"] == [
        {
            "id": None,
            "psaId": None,
            "state": "NOT_PUSHED",
            "reason": NOT_PUSHED,
            "lastError": None,
            "readOnlyFields": [],
            "integration": {"name": synced.name},
        }
    ]
    # In a page too, next to linked records (which get no virtual link).
    page = await admin.data(
        "{ organizations(first: 500) { nodes { id psaLinks { id state reason } } } }"
    )
    states = {n["id"]: n["psaLinks"] for n in page["organizations"]["nodes"]}
    assert states[org["id"]] == [{"id": None, "state": "NOT_PUSHED", "reason": NOT_PUSHED}]
    others = [links for key, links in states.items() if key != org["id"]]
    assert others
    assert all(len(links) == 1 and links[0]["id"] for links in others)

    # "To trigger a push, update the record": saving it tries; ConnectWise needs an address
    # first, which the stored NOT_PUSHED link says.
    saved = await admin.data(RENAME, {"id": org["id"], "input": {}})
    assert saved["updateOrganization"]["errors"] == []
    await worker.run_until_idle()
    (link,) = (await admin.data(ORGANIZATION, {"id": org["id"]}))["node"]["psaLinks"]
    assert (link["state"], link["psaId"], link["lastError"]) == ("NOT_PUSHED", None, None)
    assert link["id"] is not None
    assert "address" in link["reason"]
    found = await admin.data(
        """{ unlinked: organizations(filter: {linked: false}) { nodes { id } }
             refused: organizations(filter: {linkState: NOT_PUSHED}) { nodes { id } } }"""
    )
    assert found == {"unlinked": {"nodes": [{"id": org["id"]}]},
                     "refused": {"nodes": [{"id": org["id"]}]}}  # fmt: skip

    site = await admin.data(
        """mutation($org: ID!) { createLocation(input: {organizationId: $org, name: "Main",
             address1: "1 Documented Way", city: "Tampa"}) { location { id } } }""",
        {"org": org["id"]},
    )
    site_id = site["createLocation"]["location"]["id"]
    saved = await admin.data(RENAME, {"id": org["id"], "input": {"primaryLocationId": site_id}})
    assert saved["updateOrganization"]["errors"] == []
    await worker.run_until_idle()
    (link,) = (await admin.data(ORGANIZATION, {"id": org["id"]}))["node"]["psaLinks"]
    assert (link["state"], link["reason"]) == ("SYNCED", None)
    company = psa.store.get("companies", link["psaId"])
    assert company is not None
    assert company["name"] == "Documented Before Two-Way"


LOCATION = """query($id: ID!) { node(id: $id) { ... on Location {
  psaLinks { state readOnlyFields } } } }"""


async def test_read_only_fields_follow_the_directions(
    admin: GraphQLClient, synced: Integration, worker: Worker
) -> None:
    link = await RecordLink.filter(
        integration_id=synced.id, kind="location", state=LinkState.SYNCED
    ).first()
    assert link is not None
    location_id = gid("Location", link.local_id)

    one_way = (await admin.data(LOCATION, {"id": location_id}))["node"]["psaLinks"][0]
    assert {"name", "city", "phone", "fax"} <= set(one_way["readOnlyFields"])

    await two_way_on(admin, synced, worker)
    two_way = (await admin.data(LOCATION, {"id": location_id}))["node"]["psaLinks"][0]
    # ConnectWise sites' phone and fax come from the PSA only, whatever the settings.
    assert two_way["readOnlyFields"] == ["fax", "organizationId", "phone"]

    saved = await two_way_settings(
        admin,
        synced,
        fields=[
            {"kind": "LOCATION", "field": "city", "rule": {"direction": "PSA_TO_LOCAL"}},
            {"kind": "LOCATION", "field": "name", "rule": {"direction": "LOCAL_TO_PSA"}},
        ],
    )
    assert saved["errors"] == []
    shown = {(f["kind"], f["field"]): f for f in saved["integration"]["twoWay"]["fields"]}
    assert shown[("LOCATION", "city")] == {
        "kind": "LOCATION", "field": "city", "direction": "PSA_TO_LOCAL",
        "policy": "PSA_WINS", "fixed": False,
    }  # fmt: skip
    assert shown[("LOCATION", "phone")]["fixed"] is True
    assert shown[("LOCATION", "phone")]["direction"] == "PSA_TO_LOCAL"
    link_now = (await admin.data(LOCATION, {"id": location_id}))["node"]["psaLinks"][0]
    assert link_now["readOnlyFields"] == ["city", "fax", "organizationId", "phone"]

    edit = """mutation($id: ID!, $input: LocationFields!) { updateLocation(id: $id,
      input: $input) { location { name } errors { code fields } } }"""
    renamed = await admin.data(edit, {"id": location_id, "input": {"name": "Local Name"}})
    assert renamed["updateLocation"] == {"location": {"name": "Local Name"}, "errors": []}
    refused = await admin.data(edit, {"id": location_id, "input": {"city": "Elsewhere"}})
    assert refused["updateLocation"]["errors"] == [{"code": "READ_ONLY_FIELD", "fields": ["city"]}]
    # The PSA-only exceptions cannot be overridden.
    fixed = await two_way_settings(
        admin,
        synced,
        fields=[{"kind": "LOCATION", "field": "phone", "rule": {"direction": "TWO_WAY"}}],
    )
    assert [(e["code"], e["field"]) for e in fixed["errors"]] == [
        ("INVALID_DIRECTION", "fields[0].field")
    ]


# -------------------------------------------------------------------------- settings


async def test_two_way_settings_are_stored_shown_and_cleared(
    admin: GraphQLClient, synced: Integration, worker: Worker
) -> None:
    await two_way_on(admin, synced, worker)
    options = await admin.data(
        "query($id: ID!) { integration(id: $id) { contactAttributeOptions { email phone } } }",
        {"id": gid("Integration", synced.id)},
    )
    attributes = options["integration"]["contactAttributeOptions"]
    assert attributes["email"]
    assert attributes["phone"]

    saved = await two_way_settings(
        admin,
        synced,
        default={"direction": "TWO_WAY", "policy": "NEWEST_WINS"},
        kinds=[{"kind": "CONTACT", "rule": {"direction": "PSA_TO_LOCAL"}}],
        fields=[
            {
                "kind": "CONFIGURATION",
                "field": "serialNumber",
                "rule": {"direction": "LOCAL_TO_PSA", "policy": "LOCAL_WINS"},
            },
        ],
        clockSkewSeconds=30,
        tieBreaker="LOCAL",
        propagateDeletes=True,
        contactEmailType=attributes["email"][0],
        contactPhoneType=attributes["phone"][0],
        pushRatePerMinute=120,
    )
    assert saved["errors"] == []
    settings = saved["integration"]["twoWay"]
    assert settings["enabled"] is True
    assert settings["default"] == {"direction": "TWO_WAY", "policy": "NEWEST_WINS"}
    assert settings["kinds"] == [
        {"kind": "CONTACT", "direction": "PSA_TO_LOCAL", "policy": "PSA_WINS"}
    ]
    serial = [f for f in settings["fields"] if f["field"] == "serialNumber"]
    assert serial == [
        {"kind": "CONFIGURATION", "field": "serialNumber", "direction": "LOCAL_TO_PSA",
         "policy": "LOCAL_WINS", "fixed": False}
    ]  # fmt: skip
    assert (settings["clockSkewSeconds"], settings["tieBreaker"]) == (30, "LOCAL")
    assert settings["propagateDeletes"] is True
    assert settings["contactEmailType"] == attributes["email"][0]
    assert settings["contactPhoneType"] == attributes["phone"][0]
    assert settings["pushRatePerMinute"] == 120
    stored = await Integration.get(id=synced.id)
    assert stored.directions["fields"] == {
        "configuration.serial_number": {"direction": "LOCAL_TO_PSA", "policy": "LOCAL_WINS"}
    }

    cleared = await two_way_settings(
        admin,
        synced,
        default=None,
        kinds=[{"kind": "CONTACT", "clear": True}],
        fields=[{"kind": "CONFIGURATION", "field": "serialNumber", "rule": None}],
        contactEmailType="",
    )
    assert cleared["errors"] == []
    settings = cleared["integration"]["twoWay"]
    assert settings["default"] == {"direction": "TWO_WAY", "policy": "PSA_WINS"}  # checkbox
    assert settings["kinds"] == []
    assert all(f["fixed"] for f in settings["fields"])
    assert settings["contactEmailType"] is None
    assert settings["contactPhoneType"] == attributes["phone"][0]


async def test_two_way_settings_refuse_bad_input_naming_the_field(
    admin: GraphQLClient, synced: Integration, caller: Caller, account: Account
) -> None:
    def refused(result: dict[str, Any]) -> list[tuple[str, str | None]]:
        assert result["integration"] is None
        return [(e["code"], e["field"]) for e in result["errors"]]

    unknown = await two_way_settings(
        admin,
        synced,
        fields=[
            {"kind": "CONFIGURATION", "field": "serialNumber", "rule": {"direction": "TWO_WAY"}},
            {"kind": "CONFIGURATION", "field": "colour", "rule": {"direction": "TWO_WAY"}},
        ],
    )
    assert refused(unknown) == [("INVALID_DIRECTION", "fields[1].field")]
    assert "colour" in unknown["errors"][0]["message"]
    unsynced = await two_way_settings(
        admin,
        synced,
        fields=[{"kind": "ORGANIZATION", "field": "description",
                 "rule": {"direction": "TWO_WAY"}}],
    )  # fmt: skip
    assert refused(unsynced) == [("INVALID_DIRECTION", "fields[0].field")]
    assert "not a synced field" in unsynced["errors"][0]["message"]
    email = await two_way_settings(admin, synced, contactEmailType="Carrier Pigeon")
    assert refused(email) == [("UNKNOWN_REFERENCE", "contactEmailType")]
    rate = await two_way_settings(admin, synced, pushRatePerMinute=0)
    assert refused(rate) == [("INVALID_INPUT", "pushRatePerMinute")]
    skew = await two_way_settings(admin, synced, clockSkewSeconds=-1)
    assert refused(skew) == [("INVALID_DIRECTION", "clockSkewSeconds")]
    many = [{"kind": "CONFIGURATION", "field": "notes", "rule": None}] * 201
    assert refused(await two_way_settings(admin, synced, fields=many)) == [("TOO_MANY", "fields")]
    assert (await Integration.get(id=synced.id)).directions == {}

    editor = await caller(account, Role.EDITOR)
    denied = await two_way_settings(editor, synced, propagateDeletes=True)
    assert refused(denied) == [("PERMISSION_DENIED", None)]
    options = await editor.execute(
        "query($id: ID!) { integration(id: $id) { contactAttributeOptions { email } } }",
        {"id": gid("Integration", synced.id)},
    )
    assert options["errors"][0]["extensions"]["code"] == "PERMISSION_DENIED"
    stranger = await caller(await Account.create(name="Other MSP"), Role.ADMINISTRATOR)
    foreign = await two_way_settings(stranger, synced, propagateDeletes=True)
    assert refused(foreign) == [("NOT_FOUND", "integrationId")]


async def test_contact_attribute_options_fail_cleanly_when_the_psa_is_down(
    admin: GraphQLClient, synced: Integration, psa: Psa
) -> None:
    psa.simulator.faults.outage_status = 503
    try:
        body = await admin.execute(
            "query($id: ID!) { integration(id: $id) { contactAttributeOptions { email } } }",
            {"id": gid("Integration", synced.id)},
        )
    finally:
        psa.simulator.faults.outage_status = 0
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "PSA_ERROR"
    assert "ConnectWise Manage" in error["message"]
    assert "priv-key" not in str(body)
    assert "pub-key" not in str(body)


# -------------------------------------------------------------------------- push all

PUSH_ALL = """mutation($id: ID!, $dry: Boolean!, $scope: PushAllScopeInput) {
  pushAllSyncableAssets(integrationId: $id, dryRun: $dry, scope: $scope) {
    run { id kind dryRun status } errors { code field requiredRole } } }"""

RUN = """query($id: ID!) { syncRun(id: $id) { status kind dryRun
  errors { code count records(first: 10) { nodes { recordId } } } } }"""


async def test_push_all_dry_run_plans_and_the_real_run_creates(
    admin: GraphQLClient,
    synced: Integration,
    worker: Worker,
    account: Account,
    psa: Psa,
    caller: Caller,
) -> None:
    integration_id = gid("Integration", synced.id)
    off = await admin.data(PUSH_ALL, {"id": integration_id, "dry": True})
    assert off["pushAllSyncableAssets"]["errors"] == [
        {"code": "TWO_WAY_OFF", "field": "integrationId", "requiredRole": None}
    ]
    client_type = await reference_id(account, "organization_type", "Client")
    created = await admin.data(
        """mutation($type: ID!, $status: ID!) { createOrganization(input: {
             name: "Switching Partner Co", organizationTypeId: $type,
             organizationStatusId: $status}) { organization { id } } }""",
        {"type": client_type,
         "status": await reference_id(account, "organization_status", "Active")},
    )  # fmt: skip
    org_id = created["createOrganization"]["organization"]["id"]
    site = await admin.data(
        """mutation($org: ID!) { createLocation(input: {organizationId: $org, name: "Main",
             address1: "1 Switching Way", city: "Tampa"}) { location { id } } }""",
        {"org": org_id},
    )
    primary = {"primaryLocationId": site["createLocation"]["location"]["id"]}
    saved = await admin.data(RENAME, {"id": org_id, "input": primary})
    assert saved["updateOrganization"]["errors"] == []
    await two_way_on(admin, synced, worker)

    editor = await caller(account, Role.EDITOR)
    denied = await editor.data(PUSH_ALL, {"id": integration_id, "dry": True})
    assert denied["pushAllSyncableAssets"]["errors"] == [
        {"code": "PERMISSION_DENIED", "field": None, "requiredRole": "MANAGER"}
    ]
    bad_scope = await admin.data(
        PUSH_ALL,
        {"id": integration_id, "dry": True,
         "scope": {"organizationTypeIds": [integration_id]}},
    )  # fmt: skip
    assert bad_scope["pushAllSyncableAssets"]["errors"][0]["field"] == "scope.organizationTypeIds"

    scope = {"kinds": ["ORGANIZATION"], "organizationTypeIds": [client_type]}
    writes = psa.simulator.traffic.writes
    dry = await admin.data(PUSH_ALL, {"id": integration_id, "dry": True, "scope": scope})
    run = dry["pushAllSyncableAssets"]["run"]
    assert dry["pushAllSyncableAssets"]["errors"] == []
    assert (run["kind"], run["dryRun"], run["status"]) == ("PUSH_ALL", True, "QUEUED")
    await worker.run_until_idle()
    report = (await admin.data(RUN, {"id": run["id"]}))["syncRun"]
    assert report["status"] == "SUCCEEDED"
    groups = {g["code"]: g for g in report["errors"]}
    assert groups["would_create"]["count"] == 1
    assert [n["recordId"] for n in groups["would_create"]["records"]["nodes"]] == [org_id]
    assert psa.simulator.traffic.writes == writes
    assert not [c for c in psa.store.find("companies") if c["name"] == "Switching Partner Co"]

    real = await admin.data(PUSH_ALL, {"id": integration_id, "dry": False, "scope": scope})
    await worker.run_until_idle()
    report = await admin.data(RUN, {"id": real["pushAllSyncableAssets"]["run"]["id"]})
    groups = {g["code"]: g["count"] for g in report["syncRun"]["errors"]}
    assert groups["created"] == 1
    assert [c for c in psa.store.find("companies") if c["name"] == "Switching Partner Co"]
    (link,) = (await admin.data(ORGANIZATION, {"id": org_id}))["node"]["psaLinks"]
    assert link["state"] == "SYNCED"


# -------------------------------------------------------------------------- conflicts

CONFLICTS = """query($id: ID!, $open: Boolean) { integration(id: $id) {
  conflicts(open: $open) { totalCount nodes { id kind recordId psaId field base localValue
    psaValue policy outcome resolution resolvedBy resolvedAt record { id } } } } }"""

RESOLVE = """mutation($id: ID!, $choice: ConflictChoice!, $value: JSON) {
  resolveConflict(conflictId: $id, choice: $choice, value: $value) {
    conflict { id outcome resolution resolvedBy resolvedValue }
    errors { code field requiredRole } } }"""


async def test_a_manual_conflict_is_listed_and_settled_with_our_value(
    admin: GraphQLClient,
    synced: Integration,
    worker: Worker,
    psa: Psa,
    caller: Caller,
    account: Account,
) -> None:
    await two_way_on(admin, synced, worker)
    manual = {"direction": "TWO_WAY", "policy": "MANUAL"}
    saved = await two_way_settings(admin, synced, default=manual)
    assert saved["errors"] == []
    org, psa_id = await synced_organization(synced)
    org_id = gid("Organization", org.id)
    renamed = await admin.data(RENAME, {"id": org_id, "input": {"name": "Ours Ltd"}})
    assert renamed["updateOrganization"]["errors"] == []
    psa.store.update("companies", psa_id, {"name": "Theirs Ltd"})
    await pull(worker, synced)  # before our push goes out: both changes meet

    integration_id = gid("Integration", synced.id)
    listed = (await admin.data(CONFLICTS, {"id": integration_id}))["integration"]["conflicts"]
    assert listed["totalCount"] == 1
    (conflict,) = listed["nodes"]
    assert conflict["kind"] == "ORGANIZATION"
    assert conflict["recordId"] == conflict["record"]["id"] == org_id
    assert conflict["psaId"] == psa_id
    assert conflict["field"] == "name"
    assert (conflict["base"], conflict["localValue"], conflict["psaValue"]) == (
        org.name, "Ours Ltd", "Theirs Ltd",
    )  # fmt: skip
    assert (conflict["policy"], conflict["outcome"]) == ("MANUAL", "OPEN")
    node = await admin.data(
        "query($id: ID!) { node(id: $id) { __typename id } }", {"id": conflict["id"]}
    )
    assert node["node"] == {"__typename": "SyncConflict", "id": conflict["id"]}

    viewer = await caller(account, Role.VIEWER)
    denied = await viewer.data(RESOLVE, {"id": conflict["id"], "choice": "LOCAL"})
    assert denied["resolveConflict"]["errors"] == [
        {"code": "PERMISSION_DENIED", "field": None, "requiredRole": "EDITOR"}
    ]
    stranger = await caller(await Account.create(name="Other MSP"), Role.ADMINISTRATOR)
    foreign = await stranger.data(RESOLVE, {"id": conflict["id"], "choice": "LOCAL"})
    assert foreign["resolveConflict"] == {
        "conflict": None,
        "errors": [{"code": "NOT_FOUND", "field": "conflictId", "requiredRole": None}],
    }
    hidden = await stranger.data("query($id: ID!) { node(id: $id) { id } }", {"id": conflict["id"]})
    assert hidden["node"] is None
    no_value = await admin.data(RESOLVE, {"id": conflict["id"], "choice": "VALUE"})
    assert no_value["resolveConflict"]["errors"] == [
        {"code": "REQUIRED", "field": "value", "requiredRole": None}
    ]

    settled = await admin.data(RESOLVE, {"id": conflict["id"], "choice": "LOCAL"})
    assert settled["resolveConflict"] == {
        "conflict": {
            "id": conflict["id"],
            "outcome": "RESOLVED",
            "resolution": "LOCAL",
            "resolvedBy": await email_of(admin),
            "resolvedValue": "Ours Ltd",
        },
        "errors": [],
    }
    await worker.run_until_idle()
    company = psa.store.get("companies", psa_id)
    assert company is not None
    assert company["name"] == "Ours Ltd"
    still_open = await admin.data(CONFLICTS, {"id": integration_id})
    assert still_open["integration"]["conflicts"]["totalCount"] == 0
    closed = await admin.data(CONFLICTS, {"id": integration_id, "open": False})
    assert [c["id"] for c in closed["integration"]["conflicts"]["nodes"]] == [conflict["id"]]
    again = await admin.data(RESOLVE, {"id": conflict["id"], "choice": "PSA"})
    assert again["resolveConflict"]["errors"][0]["code"] == "NOT_OPEN"
    assert await SyncConflict.filter(outcome="OPEN").count() == 0


# ----------------------------------------------------------------------------- outbox

OUTBOX = """query($id: ID!, $first: Int, $after: String) { integration(id: $id) {
  outbox(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor }
    nodes { id kind recordId operation status attempts nextAttemptAt lastError createdBy
      createdAt fieldsChanged record { id } } } } }"""


async def test_the_outbox_lists_pending_pushes_while_the_integration_is_paused(
    admin: GraphQLClient, synced: Integration, worker: Worker, psa: Psa
) -> None:
    await two_way_on(admin, synced, worker)
    integration_id = gid("Integration", synced.id)
    paused = await admin.data(
        "mutation($id: ID!) { pauseIntegration(integrationId: $id) { errors { code } } }",
        {"id": integration_id},
    )
    assert paused["pauseIntegration"]["errors"] == []
    orgs = [await synced_organization(synced, skip=i) for i in range(3)]
    for index, (org, _psa_id) in enumerate(orgs):
        saved = await admin.data(
            RENAME, {"id": gid("Organization", org.id), "input": {"name": f"Paused Edit {index}"}}
        )
        assert saved["updateOrganization"]["errors"] == []
    writes = psa.simulator.traffic.writes
    await worker.run_until_idle()
    assert psa.simulator.traffic.writes == writes  # paused: nothing goes out

    email = await email_of(admin)
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        data = await admin.data(OUTBOX, {"id": integration_id, "first": 2, "after": after})
        outbox = data["integration"]["outbox"]
        assert outbox["totalCount"] == 3
        seen += outbox["nodes"]
        if not outbox["pageInfo"]["hasNextPage"]:
            break
        after = outbox["pageInfo"]["endCursor"]
    assert [e["recordId"] for e in seen] == [gid("Organization", org.id) for org, _ in orgs]
    for entry in seen:
        assert entry["record"]["id"] == entry["recordId"]
        assert (entry["kind"], entry["operation"], entry["status"]) == (
            "ORGANIZATION", "UPDATE", "PENDING",
        )  # fmt: skip
        assert (entry["attempts"], entry["lastError"]) == (0, None)
        assert entry["createdBy"] == email
        assert entry["fieldsChanged"] == ["name"]
    failed = await admin.data(
        "query($id: ID!) { integration(id: $id) { outbox(status: FAILED) { totalCount } } }",
        {"id": integration_id},
    )
    assert failed["integration"]["outbox"]["totalCount"] == 0

    await admin.data(
        "mutation($id: ID!) { resumeIntegration(integrationId: $id) { errors { code } } }",
        {"id": integration_id},
    )
    await worker.run_until_idle()
    emptied = await admin.data(OUTBOX, {"id": integration_id, "first": 10, "after": None})
    assert emptied["integration"]["outbox"]["totalCount"] == 0


# ---------------------------------------------------------------------------- history


async def test_history_filters_by_field_and_rejects_unknown_fields(
    admin: GraphQLClient,
) -> None:
    org = (
        await admin.data(
            'mutation { createOrganization(input: {name: "History Co"}) { organization { id } } }'
        )
    )["createOrganization"]["organization"]["id"]
    for name, description in (("History Co 2", None), ("History Co 3", "VIP")):
        changes: dict[str, Any] = {"name": name}
        if description:
            changes["description"] = description
        saved = await admin.data(RENAME, {"id": org, "input": changes})
        assert saved["updateOrganization"]["errors"] == []
    query = """query($id: ID!, $field: String) { node(id: $id) { ... on Organization {
      history(first: 10, field: $field) { field oldValue newValue source actor } } } }"""
    every = (await admin.data(query, {"id": org}))["node"]["history"]
    # Newest first; one edit's fields in the order they were written, last first.
    assert [(h["field"], h["newValue"]) for h in every] == [
        ("name", "History Co 3"), ("description", "VIP"), ("name", "History Co 2"),
    ]  # fmt: skip
    assert {(h["source"], h["actor"]) for h in every} == {("USER", await email_of(admin))}
    names = (await admin.data(query, {"id": org, "field": "name"}))["node"]["history"]
    assert [(h["oldValue"], h["newValue"]) for h in names] == [
        ("History Co 2", "History Co 3"),
        ("History Co", "History Co 2"),
    ]
    unknown = await admin.execute(query, {"id": org, "field": "colour"})
    assert unknown["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


# ------------------------------------------------------------------ directory contacts

IMPORT = """mutation($org: ID!, $people: [DirectoryContactInput!]!) {
  importDirectoryContacts(organizationId: $org, contacts: $people) {
    created updated unchanged contacts { id name title primaryEmail source }
    errors { code field requiredRole } } }"""


async def test_directory_contacts_are_created_enriched_and_bounded(
    admin: GraphQLClient, caller: Caller, account: Account
) -> None:
    org = (
        await admin.data(
            'mutation { createOrganization(input: {name: "Directory Co"}) { organization { id } } }'
        )
    )["createOrganization"]["organization"]["id"]
    people = [
        {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@directory.test",
         "phone": "555-0100", "title": "Analyst"},
        {"firstName": "Alan", "lastName": "Turing", "email": "alan@directory.test"},
    ]  # fmt: skip
    first = (await admin.data(IMPORT, {"org": org, "people": people}))["importDirectoryContacts"]
    assert (first["created"], first["updated"], first["unchanged"]) == (2, 0, 0)
    assert first["errors"] == []
    assert [(c["name"], c["primaryEmail"], c["source"]) for c in first["contacts"]] == [
        ("Ada Lovelace", "ada@directory.test", "directory"),
        ("Alan Turing", "alan@directory.test", "directory"),
    ]
    people[1]["title"] = "Cryptanalyst"
    again = (await admin.data(IMPORT, {"org": org, "people": people}))["importDirectoryContacts"]
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 1, 1)
    assert [(c["name"], c["title"]) for c in again["contacts"]] == [("Alan Turing", "Cryptanalyst")]
    assert await Contact.all().count() == 2

    nameless = await admin.data(
        IMPORT, {"org": org, "people": [people[0], {"email": "who@directory.test"}]}
    )
    assert nameless["importDirectoryContacts"]["errors"] == [
        {"code": "REQUIRED", "field": "contacts[1].firstName", "requiredRole": None}
    ]
    crowd = [{"lastName": f"Person {i}"} for i in range(501)]
    too_many = await admin.data(IMPORT, {"org": org, "people": crowd})
    assert too_many["importDirectoryContacts"]["errors"] == [
        {"code": "TOO_MANY", "field": "contacts", "requiredRole": None}
    ]
    viewer = await caller(account, Role.VIEWER)
    denied = await viewer.data(IMPORT, {"org": org, "people": people})
    assert denied["importDirectoryContacts"]["errors"] == [
        {"code": "PERMISSION_DENIED", "field": None, "requiredRole": "EDITOR"}
    ]
    stranger = await caller(await Account.create(name="Other MSP"), Role.ADMINISTRATOR)
    foreign = await stranger.data(IMPORT, {"org": org, "people": people})
    assert foreign["importDirectoryContacts"]["errors"][0]["code"] == "NOT_FOUND"
    assert await Contact.all().count() == 2


HISTORY_PAGE = """query($first: Int!) { organizations(first: $first) { nodes {
  id psaLinks { id state reason integration { name } } history(first: 3) { field actor } } } }"""


async def test_a_page_with_links_and_history_costs_the_same_sql_whatever_its_size(
    admin: GraphQLClient, synced: Integration, worker: Worker
) -> None:
    await two_way_on(admin, synced, worker)
    orgs = [await synced_organization(synced, skip=i) for i in range(3)]
    for org, _psa_id in orgs:
        await admin.data(RENAME, {"id": gid("Organization", org.id), "input": {"name": "H"}})
    total = await Organization.all().count()
    await admin.data(HISTORY_PAGE, {"first": 1})  # the key's last-used stamp is written once
    counts = {}
    for size in (2, total):
        with count_queries() as counter:
            data = await admin.data(HISTORY_PAGE, {"first": size})
        assert len(data["organizations"]["nodes"]) == size
        counts[size] = counter.count
    # Authentication, the page, the links with every integration, the history.
    assert set(counts.values()) == {4}, counts
    edited = [n for n in data["organizations"]["nodes"] if n["history"]]
    assert len(edited) == 3
    assert {h["field"] for n in edited for h in n["history"]} == {"name"}
