"""Assets through GraphQL: pages, filters, relations and links; edits and what one-way sync
allows; the SQL a page costs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from harness import GraphQLClient, Psa, sync_now

from api.graphql.ids import to_global
from models import (
    AssetKind,
    Configuration,
    Contact,
    Integration,
    LinkState,
    Location,
    Organization,
    RecordLink,
)
from models.db import count_queries
from sync.runner import Worker

Connect = Callable[..., Awaitable[Integration]]


@pytest.fixture
async def synced(connect: Connect, worker: Worker) -> Integration:
    integration = await connect()
    await worker.run_until_idle()
    return integration


def gid(type_name: str, local_id: Any) -> str:
    return to_global(type_name, local_id)


async def test_organizations_with_their_configurations_and_psa_links(
    admin: GraphQLClient, synced: Integration
) -> None:
    data = await admin.data(
        """{ organizations(first: 50) { totalCount edges { node {
              id name organizationType { name } organizationStatus { name }
              configurations(first: 30) { name organization { id } }
              psaLinks { psaId state lastSyncedAt readOnlyFields integration { name } }
        } } } }"""
    )
    page = data["organizations"]
    assert page["totalCount"] == await Organization.all().count()
    configurations = 0
    for edge in page["edges"]:
        org = edge["node"]
        (link,) = org["psaLinks"]
        assert link["state"] == "SYNCED"
        assert link["integration"]["name"] == synced.name
        assert "name" in link["readOnlyFields"]
        assert org["organizationStatus"]["name"] == "Active"
        for configuration in org["configurations"]:
            assert configuration["organization"]["id"] == org["id"]
        configurations += len(org["configurations"])
    assert configurations == await Configuration.all().count()


async def test_pages_walk_every_record_once_in_order(
    admin: GraphQLClient, synced: Integration
) -> None:
    query = """query($after: String, $dir: SortDirection!) {
      configurations(first: 7, after: $after, order: {field: NAME, direction: $dir}) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { id name } } } }"""
    for direction in ("ASC", "DESC"):
        seen: list[tuple[str, str]] = []
        after = None
        while True:
            data = await admin.data(query, {"after": after, "dir": direction})
            page = data["configurations"]
            seen += [(e["node"]["name"], e["node"]["id"]) for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert len(seen) == len({i for _, i in seen}) == page["totalCount"]
        names = [n for n, _ in seen]
        assert names == sorted(names, reverse=direction == "DESC")

    too_big = await admin.execute("{ configurations(first: 501) { totalCount } }")
    assert "first must be between 0 and 500" in too_big["errors"][0]["message"]


async def test_filters_by_organization_type_search_psa_id_and_link_state(
    admin: GraphQLClient, synced: Integration, psa: Psa, worker: Worker
) -> None:
    config = await Configuration.all().order_by("name").first()
    assert config is not None
    org_id = gid("Organization", config.organization_id)  # type: ignore[attr-defined]
    type_id = gid("ReferenceValue", config.configuration_type_id)  # type: ignore[attr-defined]
    data = await admin.data(
        """query($org: ID!, $type: ID!, $search: String!) {
          byOrg: configurations(filter: {organizationId: $org}) { edges { node { organization { id } } } }
          byType: configurations(filter: {typeId: $type}, first: 500) { edges { node { configurationType { id } } } }
          bySearch: configurations(filter: {search: $search}) { edges { node { name } } }
        }""",  # noqa: E501
        {"org": org_id, "type": type_id, "search": config.name[2:6].lower()},
    )
    assert data["byOrg"]["edges"]
    assert {e["node"]["organization"]["id"] for e in data["byOrg"]["edges"]} == {org_id}
    assert {e["node"]["configurationType"]["id"] for e in data["byType"]["edges"]} == {type_id}
    assert config.name in {e["node"]["name"] for e in data["bySearch"]["edges"]}

    # Delete a company in the PSA: after a sync its organization is ORPHANED, and findable.
    company = psa.store.find("companies")[0]
    for candidate in psa.store.find("companies"):
        if await Organization.filter(name=candidate["name"]).exists():
            company = candidate
            break
    psa.store.delete("companies", company["id"])
    await sync_now(worker, synced)
    data = await admin.data(
        """query($integration: ID!, $psaId: Int!) {
          orphaned: organizations(filter: {linkState: ORPHANED}) { edges { node { name
            psaLinks { state readOnlyFields } } } }
          byPsaId: organizations(filter: {psa: {integrationId: $integration, psaId: $psaId}}) {
            edges { node { name } } }
          unlinked: organizations(filter: {linked: false}) { totalCount }
        }""",
        {"integration": gid("Integration", synced.id), "psaId": company["id"]},
    )
    (orphan,) = [e["node"] for e in data["orphaned"]["edges"]]
    assert orphan["name"] == company["name"]
    # An orphaned record is no longer synced: nothing about it is read-only.
    assert orphan["psaLinks"] == [{"state": "ORPHANED", "readOnlyFields": []}]
    assert [e["node"]["name"] for e in data["byPsaId"]["edges"]] == [company["name"]]
    assert data["unlinked"]["totalCount"] == 0


UNLINKED = """query($integration: ID!) {
  orgsOff: organizations(first: 200, filter: {integrationId: $integration, linked: false}) {
    nodes { name } }
  orgsOn: organizations(first: 200, filter: {integrationId: $integration, linked: true}) {
    totalCount nodes { name } }
  orgsNowhere: organizations(first: 200, filter: {linked: false}) { nodes { name } }
  locationsOff: locations(filter: {integrationId: $integration, linked: false}) {
    nodes { name } }
  contactsOff: contacts(filter: {integrationId: $integration, linked: false}) {
    nodes { name } }
  configurationsOff: configurations(filter: {integrationId: $integration, linked: false}) {
    nodes { name } }
  configurationsOn: configurations(first: 500,
    filter: {integrationId: $integration, linked: true}) { totalCount }
}"""


async def test_linked_false_with_an_integration_lists_exactly_what_its_psa_does_not_have(
    admin: GraphQLClient, synced: Integration, connect: Connect, account: Any
) -> None:
    other = await connect(name="Second ConnectWise")
    local = await Organization.create(account=account, name="Local Only")
    refused = await Organization.create(account=account, name="Refused By The PSA")
    elsewhere = await Organization.create(account=account, name="Only In The Other PSA")
    await RecordLink.create(
        integration=synced, kind=AssetKind.ORGANIZATION, local_id=refused.id, psa_id=None,
        state=LinkState.NOT_PUSHED, last_error="missing required field",
    )  # fmt: skip
    await RecordLink.create(
        integration=other, kind=AssetKind.ORGANIZATION, local_id=elsewhere.id, psa_id=991
    )
    await Location.create(account=account, organization=local, name="Local Office")
    await Contact.create(account=account, organization=local, first_name="Lou", last_name="Cal")
    await Configuration.create(account=account, organization=local, name="LOCAL-FW")
    synced_orgs = await RecordLink.filter(
        integration_id=synced.id, kind=AssetKind.ORGANIZATION, psa_id__isnull=False
    ).count()

    data = await admin.data(UNLINKED, {"integration": gid("Integration", synced.id)})

    def names(key: str) -> set[str]:
        return {n["name"] for n in data[key]["nodes"]}

    assert names("orgsOff") == {"Local Only", "Refused By The PSA", "Only In The Other PSA"}
    assert data["orgsOn"]["totalCount"] == synced_orgs > 0
    assert not names("orgsOn") & names("orgsOff")
    assert names("orgsNowhere") == {"Local Only", "Refused By The PSA"}
    assert names("locationsOff") == {"Local Office"}
    assert names("contactsOff") == {"Lou Cal"}
    assert names("configurationsOff") == {"LOCAL-FW"}
    assert data["configurationsOn"]["totalCount"] == await Configuration.all().count() - 1


RENAME = """mutation($id: ID!, $input: OrganizationFields!) {
  updateOrganization(id: $id, input: $input) {
    organization { name description version }
    errors { code message field fields }
  }
}"""


async def test_mapped_fields_of_a_one_way_synced_record_are_read_only(
    admin: GraphQLClient, synced: Integration
) -> None:
    org = await Organization.all().order_by("name").first()
    assert org is not None
    refused = await admin.data(
        RENAME, {"id": gid("Organization", org.id), "input": {"name": "Renamed", "shortName": "R"}}
    )
    payload = refused["updateOrganization"]
    assert payload["organization"] is None
    (error,) = payload["errors"]
    assert error["code"] == "READ_ONLY_FIELD"
    assert error["fields"] == ["name", "shortName"]
    assert "one-way" in error["message"]
    assert synced.name in error["message"]
    assert (await Organization.get(id=org.id)).name == org.name

    # Same value: not a change. Unmapped fields: free.
    allowed = await admin.data(
        RENAME,
        {"id": gid("Organization", org.id), "input": {"name": org.name, "description": "VIP"}},
    )
    assert allowed["updateOrganization"]["errors"] == []
    assert allowed["updateOrganization"]["organization"]["description"] == "VIP"
    assert allowed["updateOrganization"]["organization"]["version"] == org.version + 1

    deleted = await admin.data(
        "mutation($id: ID!) { deleteOrganization(id: $id) { deletedId errors { code } } }",
        {"id": gid("Organization", org.id)},
    )
    assert deleted["deleteOrganization"] == {"deletedId": None,
                                             "errors": [{"code": "SYNCED_RECORD"}]}  # fmt: skip


async def test_unlinked_records_are_fully_editable(admin: GraphQLClient) -> None:
    created = await admin.data(
        """mutation { createOrganization(input: {name: "  Local Only LLC  "}) {
             organization { id name psaLinks { psaId } } errors { code } } }"""
    )
    org = created["createOrganization"]["organization"]
    assert org["name"] == "Local Only LLC"
    assert org["psaLinks"] == []
    renamed = await admin.data(RENAME, {"id": org["id"], "input": {"name": "Local Only Inc"}})
    assert renamed["updateOrganization"]["organization"]["name"] == "Local Only Inc"
    stored = await Organization.get(name="Local Only Inc")
    assert stored.match_key == stored.compute_match_key()  # matching sees the new name


async def test_locations_contacts_and_configurations_keep_to_their_organization(
    admin: GraphQLClient,
) -> None:
    orgs = await admin.data(
        """mutation { a: createOrganization(input: {name: "Alpha"}) { organization { id } }
                      b: createOrganization(input: {name: "Beta"}) { organization { id } } }"""
    )
    alpha = orgs["a"]["organization"]["id"]
    beta = orgs["b"]["organization"]["id"]

    missing = await admin.data(
        """mutation { createLocation(input: {name: "HQ"}) { errors { code field } } }"""
    )
    assert missing["createLocation"]["errors"] == [{"code": "REQUIRED", "field": "organizationId"}]

    made = await admin.data(
        """mutation($org: ID!) { createLocation(input: {organizationId: $org, name: "HQ",
             city: "Oslo"}) { location { id name organization { id } } errors { code } } }""",
        {"org": alpha},
    )
    hq = made["createLocation"]["location"]
    assert hq["organization"]["id"] == alpha

    wrong = await admin.data(
        """mutation($org: ID!, $loc: ID!) { createContact(input: {organizationId: $org,
             firstName: "Kim", locationId: $loc}) { errors { code field } } }""",
        {"org": beta, "loc": hq["id"]},
    )
    assert wrong["createContact"]["errors"] == [
        {"code": "WRONG_ORGANIZATION", "field": "locationId"}
    ]
    bad_id = await admin.data(
        """mutation($org: ID!) { createContact(input: {organizationId: $org, firstName: "Kim"})
             { errors { code field } } }""",
        {"org": hq["id"]},  # a Location id where an Organization id belongs
    )
    assert bad_id["createContact"]["errors"] == [{"code": "INVALID_ID", "field": "organizationId"}]

    contact = await admin.data(
        """mutation($org: ID!, $loc: ID!) { createContact(input: {organizationId: $org,
             firstName: "Kim", lastName: "Lee", locationId: $loc,
             emails: [{value: "Kim@Alpha.test", type: "Work", primary: true}]}) {
             contact { id name primaryEmail emails { value primary } location { name } }
             errors { code } } }""",
        {"org": alpha, "loc": hq["id"]},
    )
    kim = contact["createContact"]["contact"]
    assert kim["name"] == "Kim Lee"
    assert kim["primaryEmail"] == "kim@alpha.test"
    assert kim["location"] == {"name": "HQ"}

    config = await admin.data(
        """mutation($org: ID!, $kim: ID!) { createConfiguration(input: {organizationId: $org,
             name: "ALPHA-FW1", contactId: $kim, serialNumber: "SN-1"}) {
             configuration { id name contact { name } version } errors { code } } }""",
        {"org": alpha, "kim": kim["id"]},
    )
    fw = config["createConfiguration"]["configuration"]
    assert fw["contact"] == {"name": "Kim Lee"}
    updated = await admin.data(
        """mutation($id: ID!) { updateConfiguration(id: $id, input: {notes: "rack 4"}) {
             configuration { version } errors { code } } }""",
        {"id": fw["id"]},
    )
    assert updated["updateConfiguration"]["configuration"]["version"] == fw["version"] + 1
    too_long = await admin.data(
        """mutation($id: ID!, $name: String!) { updateConfiguration(id: $id,
             input: {name: $name}) { errors { code field } } }""",
        {"id": fw["id"], "name": "x" * 300},
    )
    assert too_long["updateConfiguration"]["errors"] == [{"code": "INVALID_INPUT", "field": "name"}]

    gone = await admin.data(
        """mutation($id: ID!) { deleteConfiguration(id: $id) { deletedId errors { code } } }""",
        {"id": fw["id"]},
    )
    assert gone["deleteConfiguration"]["deletedId"] == fw["id"]
    assert await Configuration.all().count() == 0
    assert await Contact.all().count() == 1
    assert await Location.all().count() == 1


async def test_node_resolves_every_kind_by_global_id(
    admin: GraphQLClient, synced: Integration
) -> None:
    config = await Configuration.filter(location_id__isnull=False).first()
    assert config is not None
    ids = {
        "Configuration": config.id,
        "Organization": config.organization_id,  # type: ignore[attr-defined]
        "Location": config.location_id,  # type: ignore[attr-defined]
        "Integration": synced.id,
    }
    for type_name, local_id in ids.items():
        data = await admin.data(
            "query($id: ID!) { node(id: $id) { __typename id } }",
            {"id": gid(type_name, local_id)},
        )
        assert data["node"] == {"__typename": type_name, "id": gid(type_name, local_id)}
    nothing = await admin.data('{ node(id: "not-an-id") { id } }')
    assert nothing["node"] is None


PAGE = """query($first: Int!) { configurations(first: $first) { edges { node {
  id name serialNumber
  organization { id name } location { id name } contact { id name }
  psaLinks { psaId state lastSyncedAt readOnlyFields integration { id name statusLabel } }
} } } }"""


async def test_a_page_costs_the_same_sql_whatever_its_size(
    admin: GraphQLClient, synced: Integration
) -> None:
    total = await Configuration.all().count()
    assert total > 60
    await admin.data(PAGE, {"first": 1})  # the key's last-used stamp is written once
    counts = {}
    for size in (5, 60, total):
        with count_queries() as counter:
            data = await admin.data(PAGE, {"first": size})
        assert len(data["configurations"]["edges"]) == size
        counts[size] = counter.count
    # Authentication, the page, then one query per relation: organization, location,
    # contact, links (which bring their integration along).
    assert set(counts.values()) == {6}, counts
