"""The simulator's REST behaviour as a ConnectWise client sees it, over httpx."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from simulator_access import API_ROOT, AUTHORIZATION, CREDENTIALS

from simulators.connectwise import (
    ConnectWiseSimulator,
    ConnectWiseStore,
    DatasetSpec,
    generate_dataset,
    serve_in_thread,
)

ADDRESS = {"addressLine1": "1 Main St", "city": "Tampa", "state": "FL", "zip": "33602"}


def links(response: httpx.Response) -> dict[str, str]:
    """The Link header as {rel: url}."""
    found = re.findall(r'<([^>]+)>; rel="(\w+)"', response.headers.get("link", ""))
    return {rel: url for url, rel in found}


def query_of(url: str) -> dict[str, str]:
    return dict(httpx.URL(url).params)


# ------------------------------------------------------------------ discovery and the gate


async def test_company_info_gives_the_codebase_and_null_for_unknown_companies(
    simulator: ConnectWiseSimulator,
) -> None:
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cw.test") as client:
        known = await client.get("/login/companyinfo/ACME")
        unknown = await client.get("/login/companyinfo/someone-else")
    assert known.json()["Codebase"] == "v2025_1/"
    assert known.json()["CompanyID"] == "acme"
    assert set(known.json()) == {
        "CompanyName",
        "Codebase",
        "VersionCode",
        "VersionNumber",
        "CompanyID",
        "IsCloud",
    }
    assert unknown.status_code == 200
    assert unknown.json() is None


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(b"acme+pub-key:wrong").decode(),
        "Basic " + base64.b64encode(b"other+pub-key:priv-key").decode(),
        "Basic " + base64.b64encode(b"pub-key:priv-key").decode(),
        "Bearer " + base64.b64encode(b"acme+pub-key:priv-key").decode(),
        "Basic not-base64!",
    ],
)
async def test_requests_without_the_api_key_pair_are_unauthorized(
    api: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    if authorization is None:
        del api.headers["Authorization"]
    response = await api.get("company/companies", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "Unauthorized"
    assert response.json()["message"]


async def test_company_id_in_credentials_is_case_insensitive(api: httpx.AsyncClient) -> None:
    upper = "Basic " + base64.b64encode(b"ACME+pub-key:priv-key").decode()
    response = await api.get("system/info", headers={"Authorization": upper})
    assert response.status_code == 200


async def test_the_client_id_header_is_recorded_whatever_its_case(
    api: httpx.AsyncClient, simulator: ConnectWiseSimulator
) -> None:
    del api.headers["clientId"]
    await api.get("system/info")
    assert simulator.traffic.with_client_id == 0
    await api.get("system/info", headers={"ClientID": "3f1c-guid"})
    assert simulator.traffic.last_client_id == "3f1c-guid"
    assert simulator.traffic.with_client_id == 1
    assert simulator.traffic.requests == 2


async def test_responses_carry_connectwise_headers_and_the_pinned_version(
    api: httpx.AsyncClient,
) -> None:
    default = await api.get("company/companies")
    pinned = await api.get(
        "company/companies",
        headers={"Accept": "application/vnd.connectwise.com+json; version=2022.1"},
    )
    assert default.headers["content-type"] == "application/vnd.connectwise.com+json; version=2025.1"
    assert pinned.headers["content-type"] == "application/vnd.connectwise.com+json; version=2022.1"
    for header in ("api-current-version", "x-cw-request-id", "x-server-name"):
        assert default.headers[header]
    assert default.headers["x-cw-request-id"] != pinned.headers["x-cw-request-id"]


@pytest.mark.parametrize("codebase", ["v4_6_release/", "v2025_1/", "v2025_1//", "v2019_4/"])
async def test_both_codebase_styles_reach_the_api(
    simulator: ConnectWiseSimulator, codebase: str
) -> None:
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cw.test") as client:
        response = await client.get(
            f"/{codebase}apis/3.0/company/companies/count",
            headers={"Authorization": AUTHORIZATION},
        )
    assert response.json() == {"count": 30}


@pytest.mark.parametrize(
    "path",
    [
        "/v4_6_release/apis/3.0/company/nonsense",
        "/v4_6_release/apis/3.0/company/companies/types/1/extra",
        "/v9/apis/3.0/company/companies",
        "/somewhere/else",
    ],
)
async def test_unknown_endpoints_answer_like_connectwise(
    simulator: ConnectWiseSimulator, path: str
) -> None:
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cw.test") as client:
        response = await client.get(path, headers={"Authorization": AUTHORIZATION})
    assert response.status_code == 404
    assert response.json() == {"code": "ConnectWiseApi", "message": "The endpoint does not exist."}


async def test_reference_lists_cannot_be_written(api: httpx.AsyncClient) -> None:
    response = await api.post("company/companies/types", json={"name": "Reseller"})
    assert response.status_code == 404


# ---------------------------------------------------------------------------------- paging


async def test_navigable_pages_link_first_prev_next_and_last(api: httpx.AsyncClient) -> None:
    conditions = 'status/name != "Nope"'
    first = await api.get("company/companies", params={"conditions": conditions, "pageSize": 7})
    middle = await api.get(
        "company/companies", params={"conditions": conditions, "pageSize": 7, "page": 2}
    )
    last = await api.get(
        "company/companies", params={"conditions": conditions, "pageSize": 7, "page": 5}
    )
    assert set(links(first)) == {"next", "last"}
    assert set(links(middle)) == {"first", "prev", "next", "last"}
    assert set(links(last)) == {"first", "prev"}
    assert len(last.json()) == 30 - 4 * 7
    assert links(middle)["next"].startswith(API_ROOT + "company/companies?")
    assert query_of(links(middle)["prev"]) == {
        "conditions": conditions,
        "pageSize": "7",
        "page": "1",
    }
    assert query_of(links(first)["last"])["page"] == "5"
    assert links(middle)["next"].endswith("&page=3")  # pyconnectwise reads the trailing page


async def test_following_next_links_visits_every_record_once(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    seen: list[int] = []
    url: str | None = "company/contacts?pageSize=40&orderBy=lastName asc"
    while url:
        response = await api.get(url)
        seen += [record["id"] for record in response.json()]
        url = links(response).get("next")
    assert sorted(seen) == sorted(record["id"] for record in store.find("contacts"))
    assert len(seen) == len(set(seen)) == 150


async def test_a_single_page_has_no_link_header(api: httpx.AsyncClient) -> None:
    response = await api.get("company/companies/statuses")
    assert len(response.json()) == 4
    assert "link" not in response.headers


async def test_page_size_defaults_to_25_and_is_clamped_to_1000() -> None:
    store = generate_dataset(DatasetSpec(companies=3, configurations=1100, seed=5))
    transport = httpx.ASGITransport(app=ConnectWiseSimulator(store, credentials=CREDENTIALS).app)
    headers = {"Authorization": AUTHORIZATION}
    async with httpx.AsyncClient(transport=transport, base_url=API_ROOT, headers=headers) as api:
        default = await api.get("company/configurations")
        huge = await api.get("company/configurations", params={"pageSize": 5000})
    assert len(default.json()) == 25
    assert len(huge.json()) == 1000
    assert query_of(links(huge)["next"])["pageSize"] == "1000"


@pytest.mark.parametrize("params", [{"page": "0"}, {"pageSize": "ten"}, {"page": "-1"}])
async def test_bad_paging_parameters_are_400(
    api: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await api.get("company/companies", params=params)
    assert response.status_code == 400


async def test_forward_only_paging_returns_each_matching_record_once() -> None:
    store = generate_dataset(DatasetSpec(companies=20, contacts=400, seed=9))
    conditions = "inactiveFlag = false"
    expected = [record["id"] for record in store.find("contacts", conditions)]
    transport = httpx.ASGITransport(app=ConnectWiseSimulator(store, credentials=CREDENTIALS).app)
    headers = {"Authorization": AUTHORIZATION, "pagination-type": "forward-only"}
    async with httpx.AsyncClient(transport=transport, base_url=API_ROOT, headers=headers) as api:
        seen: list[int] = []
        url: str | None = f"company/contacts?conditions={conditions}&pageSize=37&page=3"
        pages = 0
        while url:
            response = await api.get(url)
            page = [record["id"] for record in response.json()]
            assert page == sorted(page)
            seen += page
            pages += 1
            url = links(response).get("next")
            if url:
                assert query_of(url)["pageId"] == str(page[-1])
                assert query_of(url)["conditions"] == conditions
    assert seen == expected
    assert len(expected) > 300
    assert pages == -(-len(expected) // 37)


async def test_forward_only_starts_after_the_page_id(api: httpx.AsyncClient) -> None:
    everything = (await api.get("company/companies", params={"pageSize": 100})).json()
    after = everything[9]["id"]
    response = await api.get(
        "company/companies",
        params={"pageId": after, "pageSize": 5},
        headers={"pagination-type": "forward-only"},
    )
    assert [c["id"] for c in response.json()] == [c["id"] for c in everything[10:15]]


async def test_forward_only_refuses_order_by(api: httpx.AsyncClient) -> None:
    response = await api.get(
        "company/companies",
        params={"orderBy": "name asc"},
        headers={"pagination-type": "forward-only"},
    )
    assert response.status_code == 400


# ------------------------------------------------------------------ selection and shaping


async def test_count_applies_the_conditions(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    conditions = 'status/name = "Active" and types/name = "Client"'
    response = await api.get("company/companies/count", params={"conditions": conditions})
    assert response.json() == {"count": len(store.find("companies", conditions))}
    assert 0 < response.json()["count"] < 30


async def test_child_conditions_filter_on_arrays(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    response = await api.get(
        "company/companies",
        params={"childConditions": 'types/name = "Prospect"', "pageSize": 100},
    )
    ids = {c["id"] for c in response.json()}
    assert ids == {c["id"] for c in store.find("companies", 'types/name = "Prospect"')}


async def test_invalid_conditions_are_400_with_connectwise_text(api: httpx.AsyncClient) -> None:
    response = await api.get("company/companies", params={"conditions": "deletedFlag = 1"})
    assert response.status_code == 400
    assert response.json()["message"].startswith("Expected a boolean value, not a numeric.")


async def test_fields_returns_only_the_requested_fields(api: httpx.AsyncClient) -> None:
    response = await api.get(
        "company/companies", params={"fields": "id,name,status/id,_info/lastUpdated"}
    )
    for company in response.json():
        assert set(company) == {"id", "name", "status", "_info"}
        assert set(company["status"]) == {"id"}
        assert set(company["_info"]) == {"lastUpdated"}


async def test_order_by_sorts_on_several_keys(api: httpx.AsyncClient) -> None:
    response = await api.get(
        "company/companies", params={"orderBy": "status/name desc, name asc", "pageSize": 100}
    )
    rows = [(c["status"]["name"], c["name"].casefold()) for c in response.json()]
    expected = sorted(rows, key=lambda row: row[1])
    expected.sort(key=lambda row: row[0].casefold(), reverse=True)
    assert rows == expected
    assert len({status for status, _ in rows}) > 1


async def test_sites_are_listed_under_their_own_company(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    company, other = store.find("companies")[:2]
    sites = (await api.get(f"company/companies/{company['id']}/sites")).json()
    assert sites
    assert all(site["company"]["id"] == company["id"] for site in sites)
    assert company["site"]["id"] in {site["id"] for site in sites}
    wrong_parent = await api.get(f"company/companies/{other['id']}/sites/{sites[0]['id']}")
    assert wrong_parent.status_code == 404


# ---------------------------------------------------------------------------------- writes


async def test_post_creates_a_company_with_its_primary_site(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    response = await api.post(
        "company/companies",
        json={"identifier": "NewCo", "name": "New Co", "typeIds": [2], **ADDRESS},
    )
    assert response.status_code == 201
    company = response.json()
    assert company["types"][0]["name"] == "Prospect"
    assert company["status"]["name"] == "Active"  # the default status
    assert company["_info"]["updatedBy"] == "psasync-api"
    assert company["site"]["name"] == "Main"
    assert company["_info"]["lastUpdated"].endswith("Z")
    site = store.get("sites", company["site"]["id"])
    assert site is not None
    assert site["addressLine1"] == "1 Main St"
    assert site["stateReference"]["identifier"] == "FL"
    assert site["primaryAddressFlag"] is True
    fetched = await api.get(f"company/companies/{company['id']}")
    assert fetched.json() == company


async def test_post_without_required_fields_is_rejected_like_connectwise(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post("company/contacts", json={"lastName": "Nobody"})
    assert response.status_code == 400
    assert response.json() == {
        "code": "InvalidObject",
        "message": "contact object is invalid",
        "errors": [
            {
                "code": "MissingRequiredField",
                "message": "The firstName field is required.",
                "resource": "contact",
                "field": "firstName",
            }
        ],
    }


async def test_company_identifiers_are_unique_ignoring_case(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    existing = store.find("companies")[0]["identifier"]
    response = await api.post(
        "company/companies", json={"identifier": existing.upper(), "name": "Copycat", **ADDRESS}
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert (error["code"], error["field"]) == ("ObjectExists", "identifier")


async def test_put_replaces_the_record_and_resets_missing_fields(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    contact = next(c for c in store.find("contacts", "title != null"))
    response = await api.put(
        f"company/contacts/{contact['id']}",
        json={"firstName": "Replaced", "company": {"id": contact["company"]["id"]}},
    )
    assert response.status_code == 200
    replaced = response.json()
    assert replaced["firstName"] == "Replaced"
    assert "title" not in replaced
    assert "lastName" not in replaced
    assert replaced["communicationItems"] == []
    assert [t["id"] for t in replaced["types"]] == [t["id"] for t in contact["types"]]


async def test_patch_applies_json_patch_operations(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    contact = next(c for c in store.find("contacts") if len(c["communicationItems"]) >= 2)
    operations = [
        {"op": "replace", "path": "firstName", "value": "Patched"},
        {"op": "replace", "path": "/title", "value": "CTO"},
        {"op": "replace", "path": "/communicationItems/1/value", "value": "555-9999"},
        {"op": "replace", "path": "/communicationItems/0/extension", "value": "42"},
        {
            "op": "add",
            "path": "/communicationItems/-",
            "value": {"type": {"id": 4}, "value": "5550"},
        },
        {"op": "remove", "path": "lastName"},
        {"op": "replace", "path": "site", "value": None},
    ]
    response = await api.patch(f"company/contacts/{contact['id']}", json=operations)
    assert response.status_code == 200
    patched = response.json()
    assert (patched["firstName"], patched["title"]) == ("Patched", "CTO")
    assert "lastName" not in patched
    assert "site" not in patched
    items = patched["communicationItems"]
    assert items[1]["value"] == "555-9999"
    assert items[1]["id"] == contact["communicationItems"][1]["id"]
    assert items[0]["extension"] == "42"
    assert (items[-1]["communicationType"], items[-1]["value"]) == ("Fax", "5550")
    assert len(items) == len(contact["communicationItems"]) + 1


async def test_patch_replaces_references_whole_and_refuses_paths_into_them(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    configuration = store.find("configurations")[0]
    whole = await api.patch(
        f"company/configurations/{configuration['id']}",
        json=[{"op": "replace", "path": "status", "value": {"id": 3}}],
    )
    assert whole.json()["status"]["name"] == "Retired"
    inside = await api.patch(
        f"company/configurations/{configuration['id']}",
        json=[{"op": "replace", "path": "company/identifier", "value": "Other"}],
    )
    assert inside.status_code == 400
    unknown = await api.patch(
        f"company/configurations/{configuration['id']}",
        json=[{"op": "replace", "path": "Name", "value": "x"}],
    )
    assert unknown.status_code == 400
    not_an_array = await api.patch(
        f"company/configurations/{configuration['id']}", json={"name": "x"}
    )
    assert not_an_array.status_code == 400


async def test_company_types_are_create_only_through_the_api(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    company = store.find("companies", 'types/name = "Client"')[0]
    url = f"company/companies/{company['id']}"
    patched = await api.patch(url, json=[{"op": "replace", "path": "types", "value": [{"id": 2}]}])
    assert patched.status_code == 400
    assert patched.json()["errors"][0]["field"] == "types"
    body = {k: v for k, v in company.items() if k not in ("_info", "site")}
    changed = await api.put(url, json={**body, "types": [{"id": 2}]})
    assert changed.status_code == 400
    unchanged = await api.put(url, json={**body, "name": "Same Types"})
    assert unchanged.status_code == 200
    # A person in the ConnectWise UI can change them.
    assert store.update("companies", company["id"], {"types": [{"id": 2}]})["types"][0]["id"] == 2


async def test_deleting_a_company_marks_it_deleted_and_hides_it(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    company = store.find("companies")[0]
    url = f"company/companies/{company['id']}"
    assert (await api.delete(url)).status_code == 204
    gone = await api.get(url)
    assert gone.status_code == 404
    assert gone.json() == {"code": "NotFound", "message": f"Company {company['id']} not found"}
    listed = await api.get("company/companies", params={"pageSize": 100})
    assert company["id"] not in {c["id"] for c in listed.json()}
    assert (await api.get("company/companies/count")).json() == {"count": 29}
    deleted = await api.get("company/companies", params={"conditions": "deletedFlag = true"})
    [record] = deleted.json()
    assert record["id"] == company["id"]
    assert record["deletedBy"] == "psasync-api"
    assert record["dateDeleted"] == record["_info"]["lastUpdated"]
    assert (await api.delete(url)).status_code == 404


async def test_deleting_a_contact_removes_it(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    contact = store.find("contacts")[0]
    url = f"company/contacts/{contact['id']}"
    assert (await api.delete(url)).status_code == 204
    assert (await api.get(url)).json()["message"] == f"Contact {contact['id']} not found"
    assert store.get("contacts", contact["id"]) is None


class AdjustableClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_writes_stamp_last_updated_and_never_go_backwards() -> None:
    clock = AdjustableClock(datetime(2030, 5, 1, 12, 0, 0, tzinfo=UTC))
    store = generate_dataset(DatasetSpec(companies=2, seed=3), ConnectWiseStore(clock=clock))
    transport = httpx.ASGITransport(app=ConnectWiseSimulator(store, credentials=CREDENTIALS).app)
    headers = {"Authorization": AUTHORIZATION}
    company = store.find("companies")[0]
    url = f"company/companies/{company['id']}"
    patch = [{"op": "replace", "path": "name", "value": "Renamed"}]
    async with httpx.AsyncClient(transport=transport, base_url=API_ROOT, headers=headers) as api:
        first = (await api.patch(url, json=patch)).json()["_info"]
        clock.now -= timedelta(hours=3)  # the server clock steps back
        second = (await api.patch(url, json=patch)).json()["_info"]
        clock.now += timedelta(hours=4)
        third = (await api.patch(url, json=patch)).json()["_info"]
    assert company["_info"]["lastUpdated"] < "2025-06-01T00:00:00Z"
    assert first["lastUpdated"] == "2030-05-01T12:00:00Z"
    assert second["lastUpdated"] == "2030-05-01T12:00:00Z"
    assert third["lastUpdated"] == "2030-05-01T13:00:00Z"
    assert first["updatedBy"] == "psasync-api"
    ui_edit = store.update("companies", company["id"], {"phoneNumber": "(813) 555-0199"})
    assert ui_edit["_info"]["updatedBy"] == "jsmith"
    assert ui_edit["_info"]["lastUpdated"] == "2030-05-01T13:00:00Z"


async def test_renaming_a_company_in_the_ui_shows_in_references_only(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    contact = store.find("contacts")[0]
    company_id = contact["company"]["id"]
    store.update("companies", company_id, {"name": "Renamed In UI"})
    fetched = (await api.get(f"company/contacts/{contact['id']}")).json()
    assert fetched["company"]["name"] == "Renamed In UI"
    assert fetched["_info"]["lastUpdated"] == contact["_info"]["lastUpdated"]
    company = (await api.get(f"company/companies/{company_id}")).json()
    assert company["_info"]["lastUpdated"] > contact["_info"]["lastUpdated"]


# ---------------------------------------------------------------------------------- faults


async def test_every_nth_request_is_rate_limited(
    api: httpx.AsyncClient, simulator: ConnectWiseSimulator
) -> None:
    simulator.faults.rate_limit_every = 3
    simulator.faults.retry_after_seconds = 7
    responses = [await api.get("system/info") for _ in range(6)]
    assert [r.status_code for r in responses] == [200, 200, 429, 200, 200, 429]
    limited = responses[2]
    assert limited.headers["Retry-After"] == "7"
    assert limited.json() == {
        "error": "ConnectWiseAPI",
        "message": "Too many requests. Please try again in 7 seconds.",
    }
    assert simulator.traffic.rate_limited == simulator.traffic.faults_injected == 2
    assert simulator.traffic.served == 4


async def test_requests_are_counted_per_method_refused_ones_included(
    api: httpx.AsyncClient, simulator: ConnectWiseSimulator
) -> None:
    simulator.faults.rate_limit_every = 2
    for _ in range(3):
        await api.get("system/info")
    await api.post("company/configurations", json={})  # refused (400): still received
    assert simulator.traffic.by_method == {"GET": 3, "POST": 1}
    assert simulator.traffic.requests == 4


async def test_every_mth_request_fails_with_the_configured_server_error(
    api: httpx.AsyncClient, simulator: ConnectWiseSimulator
) -> None:
    simulator.faults.error_every = 2
    simulator.faults.error_status = 500
    responses = [await api.get("company/companies/count") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 500, 200, 500]
    assert responses[1].json()["code"] == "ConnectWiseApi"
    assert "timeout" in responses[1].json()["message"].lower()
    assert simulator.traffic.server_errors == 2


async def test_an_outage_fails_every_request_until_it_is_cleared(
    api: httpx.AsyncClient, simulator: ConnectWiseSimulator
) -> None:
    simulator.faults.outage_status = 503
    down = [await api.get("company/companies/count") for _ in range(3)]
    simulator.faults.outage_status = 429
    simulator.faults.retry_after_seconds = 9
    limited = await api.get("system/info")
    simulator.faults.clear()
    back = await api.get("company/companies/count")
    assert [r.status_code for r in down] == [503, 503, 503]
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "9"
    assert back.status_code == 200
    assert simulator.traffic.server_errors == 3
    assert simulator.traffic.rate_limited == 1
    assert simulator.traffic.served == 1


@pytest.mark.parametrize("status", [200, 404, 600])
def test_an_outage_takes_429_or_a_server_error_only(
    simulator: ConnectWiseSimulator, status: int
) -> None:
    with pytest.raises(ValueError, match="outage_status"):
        simulator.faults.configure({"outage_status": status})
    assert simulator.faults.outage_status == 0


async def test_latency_is_added_to_every_api_request(store: ConnectWiseStore) -> None:
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)

    simulator = ConnectWiseSimulator(store, credentials=CREDENTIALS, sleep=record)
    simulator.faults.latency_ms = 250
    transport = httpx.ASGITransport(app=simulator.app)
    headers = {"Authorization": AUTHORIZATION}
    async with httpx.AsyncClient(transport=transport, base_url=API_ROOT, headers=headers) as api:
        await api.get("company/companies")
        await api.get("company/contacts/count")
    assert delays == [0.25, 0.25]


async def test_faults_and_counters_are_available_over_http(
    simulator: ConnectWiseSimulator,
) -> None:
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cw.test") as client:
        changed = await client.post(
            "/__simulator/faults", json={"error_every": 1, "error_status": 503}
        )
        failing = await client.get(
            "/v4_6_release/apis/3.0/system/info", headers={"Authorization": AUTHORIZATION}
        )
        state = (await client.get("/__simulator/faults")).json()
        rejected = await client.post("/__simulator/faults", json={"error_status": 200})
        unknown = await client.post("/__simulator/faults", json={"explode": 1})
        cleared = await client.delete("/__simulator/faults")
    assert changed.json()["faults"]["error_every"] == 1
    assert failing.status_code == 503
    assert state["traffic"]["faults_injected"] == 1
    assert state["traffic"]["requests"] == 1
    assert rejected.status_code == unknown.status_code == 400
    assert cleared.json()["faults"]["error_every"] == 0
    assert simulator.faults.error_every == 0


# --------------------------------------------------------------------------------- dataset


def _snapshot(store: ConnectWiseStore) -> list[list[dict[str, Any]]]:
    return [store.find(name) for name in ("companies", "contacts", "configurations")]


def test_the_same_seed_gives_the_same_dataset() -> None:
    spec = DatasetSpec(companies=25, seed=42)
    assert _snapshot(generate_dataset(spec)) == _snapshot(generate_dataset(spec))
    other = DatasetSpec(companies=25, seed=43)
    assert _snapshot(generate_dataset(spec)) != _snapshot(generate_dataset(other))


def test_the_dataset_has_the_requested_totals_and_a_realistic_mix() -> None:
    store = generate_dataset(
        DatasetSpec(companies=400, sites=700, contacts=1500, configurations=3000, seed=1)
    )
    companies = store.find("companies")
    assert len(companies) == 400
    assert sum(store.count("sites", parent_id=c["id"]) for c in companies) == 700
    assert (store.count("contacts"), store.count("configurations")) == (1500, 3000)
    in_scope = store.count("companies", 'types/name = "Client" and status/name = "Active"')
    assert 0.5 * 400 < in_scope < 0.8 * 400
    assert store.count("companies", 'types/name = "Prospect"') > 0
    assert store.count("companies", 'status/name = "Inactive"') > 0
    assert sum(len(c["types"]) == 2 for c in companies) > 0
    assert sum("parentCompany" in c for c in companies) > 0
    for company in companies:
        site = store.get("sites", company["site"]["id"])
        assert site is not None
        assert (site["company"]["id"], site["primaryAddressFlag"]) == (company["id"], True)
        assert site["addressLine1"] == company["addressLine1"]
    contacts = {c["id"]: c for c in store.find("contacts")}
    assert {len(c["communicationItems"]) for c in contacts.values()} == {1, 2, 3}
    configurations = store.find("configurations", "contact/id != null")
    foreign = [
        c
        for c in configurations
        if contacts[c["contact"]["id"]]["company"]["id"] != c["company"]["id"]
    ]
    assert 0 < len(foreign) < 0.03 * 3000
    assert all(
        re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", c["macAddress"])
        for c in configurations
        if "macAddress" in c
    )


# ------------------------------------------------------------------------------ real HTTP


async def test_serve_in_thread_serves_the_api_on_a_loopback_port(
    simulator: ConnectWiseSimulator,
) -> None:
    async with serve_in_thread(simulator, port=0) as base_url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
        headers = {"Authorization": AUTHORIZATION, "clientId": "real-http"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
            response = await client.get("/v2025_1/apis/3.0/company/companies?pageSize=10")
    assert response.status_code == 200
    assert len(response.json()) == 10
    assert links(response)["next"].startswith(base_url + "/v2025_1/apis/3.0/company/companies?")
    assert simulator.traffic.last_client_id == "real-http"
