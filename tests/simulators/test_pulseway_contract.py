"""The Pulseway PSA simulator over HTTP, every response checked against the OpenAPI document.

The contract is ``simulators/pulseway/openapi-v2-subset.json``, a verbatim subset of the Kaseya
BMS / Pulseway PSA v2 OpenAPI document, as `pulseway_contract.contract_spec` adapts it (its
docstring lists each deliberate adjustment and why). The tests here send hand-written requests,
some deliberately wrong, so only the simulator's 200 answers are checked against it; the requests
psasync's Pulseway client sends are checked by the ``pulseway_contract`` fixture of the provider
tests, whose request check is proven at the end of this file.

Only HTTP 200 is declared by the document; 401 (bad token), 429 (budget, injected) and 5xx
(injected) answers are checked by the tests themselves, not against it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from openapi_core.testing import MockRequest, MockResponse
from pulseway_contract import BASE, contract_spec, exchange_problems
from pulseway_contract import Exchange as WireExchange
from pulseway_contract import Recorder as WireRecorder

from simulators.pulseway import (
    UI_USER_ID,
    ApiCredentials,
    Clock,
    DatasetSpec,
    PulsewaySimulator,
    PulsewayStore,
    generate_dataset,
    serve_in_thread,
)

CREDENTIALS = ApiCredentials(tenant="acme", username="api.user", password="s3cret")
START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
API_USER = CREDENTIALS.user_id


# ------------------------------------------------------------------------- the contract


class Recorder:
    """Every response the tests received, for validation at teardown."""

    def __init__(self, summary_envelope: bool = True) -> None:
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []
        self.summary_envelope = summary_envelope

    async def record(self, response: httpx.Response) -> None:
        await response.aread()
        self.exchanges.append((response.request, response))

    def problems(self) -> Iterator[str]:
        spec = contract_spec(self.summary_envelope)
        for request, response in self.exchanges:
            if response.status_code != 200 or not request.url.path.startswith("/v2/"):
                continue
            mock_request = MockRequest(
                BASE, request.method.lower(), request.url.path, args=dict(request.url.params)
            )
            mock_response = MockResponse(response.content, 200, content_type="application/json")
            for error in spec.iter_response_errors(mock_request, mock_response):
                cause = getattr(error, "__cause__", None)
                details = getattr(cause, "schema_errors", None) or [cause or error]
                for detail in details:
                    yield f"{request.method} {request.url.path}: {detail}"

    def validated(self) -> int:
        return sum(
            1
            for request, response in self.exchanges
            if response.status_code == 200 and request.url.path.startswith("/v2/")
        )


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    problems = list(recorder.problems())
    assert not problems, "responses outside the OpenAPI contract:\n" + "\n".join(problems[:20])


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def store() -> PulsewayStore:
    """20 accounts (1-3 locations each), 80 contacts, 80 assets; clock fixed at START."""
    store = PulsewayStore(Clock(START), tenant="acme")
    return generate_dataset(DatasetSpec(accounts=20, seed=7), store)


@pytest.fixture
def simulator(store: PulsewayStore) -> PulsewaySimulator:
    """Access tokens last a day here, so tests can move the clock by hours."""
    return PulsewaySimulator(
        store, credentials=CREDENTIALS, access_token_lifetime=timedelta(days=1)
    )


@pytest.fixture
async def anon(
    simulator: PulsewaySimulator, recorder: Recorder
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, event_hooks={"response": [recorder.record]}
    ) as client:
        yield client


@pytest.fixture
async def api(anon: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client holding a bearer token from ``/v2/security/authenticate``."""
    token = (await login(anon)).json()["result"]["accessToken"]
    anon.headers["Authorization"] = f"Bearer {token}"
    return anon


async def login(client: httpx.AsyncClient, **overrides: str) -> httpx.Response:
    form = {"grantType": "password", "userName": "api.user", "password": "s3cret", "tenant": "acme"}
    return await client.post("/v2/security/authenticate", data={**form, **overrides})


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True, body
    assert body["error"] is None
    return body["result"]


def failed(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert isinstance(body["error"]["code"], int)
    return dict(body["error"])


def new_account(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "accountName": "Contoso Dental LLC",
        "accountTypeId": 1,
        "businessTypeId": 1,
        "accountManagerId": 3,
        "accountCode": "CONTOSO",
        "locations": [
            {
                "locationName": "HQ",
                "isMain": True,
                "addresses": [{"address1": "1 Main St", "city": "Austin", "zipCode": "78701"}],
            },
            {"locationName": "Branch", "addresses": []},
        ],
    }
    return {**body, **changes}


# ----------------------------------------------------------------------- authentication


async def test_authenticate_returns_tokens_with_expiry(anon: httpx.AsyncClient) -> None:
    result = ok(await login(anon))
    assert result["accessToken"]
    assert result["refreshToken"]
    assert result["accessTokenExpireOn"] == "2025-06-02T12:00:00Z"
    assert result["refreshTokenExpireOn"] == "2025-06-08T12:00:00Z"


async def test_authenticate_accepts_multipart_and_any_field_case(anon: httpx.AsyncClient) -> None:
    files = {
        "GrantType": (None, "password"),
        "UserName": (None, "API.USER"),
        "Password": (None, "s3cret"),
        "Tenant": (None, "ACME"),
    }
    ok(await anon.post("/v2/security/authenticate", files=files))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"password": "wrong"}, None), ({"tenant": "other"}, None), ({"userName": ""}, "userName")],
)
async def test_bad_credentials_fail_in_the_envelope(
    anon: httpx.AsyncClient, overrides: dict[str, str], field: str | None
) -> None:
    error = failed(await login(anon, **overrides))
    if field:
        assert field in error["message"]
    else:
        assert error["code"] == 401


async def test_expired_or_unknown_token_is_http_401(
    api: httpx.AsyncClient, store: PulsewayStore
) -> None:
    ok(await api.get("/v2/system/accounttypes/lookup"))
    store.clock.advance(days=1)
    error = failed(await api.get("/v2/system/accounttypes/lookup"), 401)
    assert "expired" in error["message"]
    failed(await api.get("/v2/crm/accounts/summary", headers={"Authorization": "Bearer x"}), 401)
    failed(await api.get("/v2/crm/accounts/summary", headers={"Authorization": ""}), 401)


async def test_refresh_issues_a_new_pair_and_retires_the_old(
    anon: httpx.AsyncClient, store: PulsewayStore
) -> None:
    first = ok(await login(anon))
    store.clock.advance(days=2)  # the access token has expired; the refresh token has not
    pair = {"AccessToken": first["accessToken"], "RefreshToken": first["refreshToken"]}
    second = ok(await anon.post("/v2/security/refreshtoken", data=pair))
    headers = {"Authorization": f"Bearer {second['accessToken']}"}
    ok(await anon.get("/v2/system/accounttypes/lookup", headers=headers))
    error = failed(await anon.post("/v2/security/refreshtoken", data=pair))
    assert error["code"] == 401
    wrong = {"AccessToken": second["accessToken"], "RefreshToken": "nope"}
    failed(await anon.post("/v2/security/refreshtoken", data=wrong))


async def test_lifetime_is_configurable(store: PulsewayStore, recorder: Recorder) -> None:
    simulator = PulsewaySimulator(
        store, credentials=CREDENTIALS, access_token_lifetime=timedelta(minutes=5)
    )
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        result = ok(await login(client))
    assert result["accessTokenExpireOn"] == "2025-06-01T12:05:00Z"


# ----------------------------------------------------------------------------- accounts


async def test_user_info_names_the_api_user(api: httpx.AsyncClient) -> None:
    result = ok(await api.get("/v2/security/userinfo"))
    assert result["userId"] == CREDENTIALS.user_id
    assert result["fullName"] == CREDENTIALS.username


async def test_account_paging_and_total_records(api: httpx.AsyncClient) -> None:
    seen: list[int] = []
    page = 1
    while True:
        response = await api.get(
            "/v2/crm/accounts/summary", params={"PageSize": 6, "PageNumber": page}
        )
        body = response.json()
        assert body["totalRecords"] == 20
        seen += [a["id"] for a in ok(response)]
        if len(body["result"]) < 6:
            break
        page += 1
    assert seen == list(range(1, 21))
    assert page == 4
    first = ok(await api.get("/v2/crm/accounts/summary", params={"pagesize": 1}))[0]
    assert {"accountName", "modifiedOn", "locations", "tenantName"} <= first.keys()
    assert first["locations"][0]["addresses"][0]["city"]
    error = failed(await api.get("/v2/crm/accounts/summary", params={"PageNumber": 0}))
    assert "pageNumber" in error["message"]


async def test_accounts_modified_on_from_and_filters(
    api: httpx.AsyncClient, store: PulsewayStore
) -> None:
    store.clock.advance(hours=1)
    store.update("accounts", 5, website="https://five.example")
    since = (START + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S")  # no zone = UTC
    response = await api.get("/v2/crm/accounts/summary", params={"Filter.ModifiedOnFrom": since})
    [changed] = ok(response)
    assert response.json()["totalRecords"] == 1
    assert changed["id"] == 5
    assert changed["modifiedBy"] == UI_USER_ID
    assert changed["modifiedOn"] == "2025-06-01T13:00:00Z"
    clients = ok(
        await api.get(
            "/v2/crm/accounts/summary",
            params={"Filter.AccountTypeId": 1, "Filter.IsActive": "true", "PageSize": 100},
        )
    )
    expected = [
        a["id"] for a in store.accounts.values() if a["accountTypeId"] == 1 and a["isActive"]
    ]
    assert [a["id"] for a in clients] == expected
    error = failed(await api.get("/v2/crm/accounts/summary", params={"Filter.IsActive": "yes"}))
    assert "Filter.IsActive" in error["message"]


async def test_create_get_put_patch_account(api: httpx.AsyncClient, store: PulsewayStore) -> None:
    created = ok(await api.post("/v2/crm/accounts", json=new_account()))
    assert created["createdBy"] == created["modifiedBy"] == API_USER
    assert created["createdOn"] == "2025-06-01T12:00:00Z"
    assert [loc["isMain"] for loc in created["locations"]] == [True, False]
    account_id = created["id"]
    fetched = ok(await api.get(f"/v2/crm/accounts/summary/{account_id}"))
    assert fetched["accountName"] == "Contoso Dental LLC"
    assert fetched["accountManagerUserName"] == "tom.manager"

    store.clock.advance(minutes=1)
    put = {k: v for k, v in new_account(accountName="Contoso Ltd").items() if k != "locations"}
    replaced = ok(await api.put(f"/v2/crm/accounts/{account_id}", json=put))
    assert replaced["accountName"] == "Contoso Ltd"
    assert replaced["modifiedOn"] == "2025-06-01T12:01:00Z"
    assert replaced["createdOn"] == "2025-06-01T12:00:00Z"

    store.clock.advance(minutes=1)
    patch = [
        {"op": "replace", "path": "/website", "value": "https://contoso.example"},
        {"op": "replace", "path": "/IsActive", "value": False},
    ]
    patched = ok(await api.patch(f"/v2/crm/accounts/{account_id}", json=patch))
    assert patched["website"] == "https://contoso.example"
    assert patched["isActive"] is False
    assert patched["accountName"] == "Contoso Ltd"
    assert store.accounts[account_id]["modifiedBy"] == API_USER

    locations = ok(await api.get(f"/v2/crm/accounts/{account_id}/locations/lookup"))
    assert [(x["name"], x["isMain"]) for x in locations] == [("HQ", True), ("Branch", False)]
    location = ok(await api.get(f"/v2/crm/accounts/{account_id}/locations/{locations[0]['id']}"))
    assert location["addresses"][0]["address1"] == "1 Main St"
    failed(await api.get(f"/v2/crm/accounts/1/locations/{locations[0]['id']}"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (new_account(accountName=""), "accountName"),
        ({k: v for k, v in new_account().items() if k != "businessTypeId"}, "businessTypeId"),
        (new_account(accountTypeId=99), "accountTypeId"),
        (new_account(accountManagerId=999), "accountManagerId"),
        (new_account(locations=[]), "locations"),
        (new_account(locations=[{"addresses": []}]), "locations[0].locationName"),
        (new_account(creditLimit="lots"), "creditLimit"),
    ],
)
async def test_account_validation_names_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    error = failed(await api.post("/v2/crm/accounts", json=body))
    assert error["message"].startswith(field), error


async def test_unknown_account_and_bad_patch(api: httpx.AsyncClient) -> None:
    assert failed(await api.get("/v2/crm/accounts/summary/9999"))["code"] == 404
    bad = [{"op": "replace", "path": "/noSuchField", "value": 1}]
    assert "path" in failed(await api.patch("/v2/crm/accounts/1", json=bad))["message"]
    blank = [{"op": "replace", "path": "/accountName", "value": ""}]
    assert "accountName" in failed(await api.patch("/v2/crm/accounts/1", json=blank))["message"]


# ----------------------------------------------------------------------------- contacts


async def test_contacts_paging_filters_and_modified_since(
    api: httpx.AsyncClient, store: PulsewayStore
) -> None:
    response = await api.get("/v2/crm/contacts/summary", params={"PageSize": 30, "PageNumber": 3})
    assert response.json()["totalRecords"] == 80
    assert [c["id"] for c in ok(response)] == list(range(61, 81))
    of_three = ok(await api.get("/v2/crm/contacts/summary", params={"Filter.AccountId": 3}))
    assert {c["accountId"] for c in of_three} <= {3}
    assert len(of_three) == sum(1 for c in store.contacts.values() if c["accountId"] == 3)
    store.clock.advance(seconds=10)
    store.update("contacts", 7, jobTitle="CTO")
    since = {"Filter.ModifiedOnFrom": "2025-06-01T12:00:05Z"}
    [changed] = ok(await api.get("/v2/crm/contacts/summary", params=since))
    assert (changed["id"], changed["jobTitle"], changed["modifiedBy"]) == (7, "CTO", UI_USER_ID)
    single = ok(await api.get("/v2/crm/contacts/summary/7"))
    assert single["emails"][0]["emailType"] == "Work"


async def test_contact_search(api: httpx.AsyncClient, store: PulsewayStore) -> None:
    target = store.contacts[4]
    email = target["emails"][0]["emailAddress"]
    found = ok(await api.get("/v2/crm/contacts/search", params={"Filter.EmailAddress": email}))
    assert [c["id"] for c in found] == [4]
    assert found[0]["emailAddress"] == email
    by_ids = ok(
        await api.get("/v2/crm/contacts/search", params=[("Filter.Ids", 3), ("Filter.Ids", 9)])
    )
    assert [c["id"] for c in by_ids] == [3, 9]


async def test_contact_lifecycle(api: httpx.AsyncClient, store: PulsewayStore) -> None:
    location_id = store.accounts[2]["locationIds"][0]
    body = {
        "firstName": "Ada",
        "lastName": "Lovelace",
        "accountId": 2,
        "locationId": location_id,
        "emails": [{"emailAddress": "ada@example.com", "emailTypeId": 1, "isDefault": True}],
        "phones": [{"phoneNumber": "+1 555 0100", "phoneTypeId": 2, "isDefault": True}],
    }
    created = ok(await api.post("/v2/crm/contacts/summary", json=body))
    contact_id = created["id"]
    assert (created["emailAddress"], created["phoneNumber"]) == ("ada@example.com", "+1 555 0100")
    record = store.contacts[contact_id]
    assert record["createdBy"] == record["modifiedBy"] == API_USER

    store.clock.advance(minutes=5)
    put = {"accountId": 2, "firstName": "Ada", "lastName": "King", "jobTitle": "Analyst"}
    replaced = ok(await api.put(f"/v2/crm/contacts/{contact_id}", json=put))
    assert (replaced["lastName"], replaced["jobTitle"]) == ("King", "Analyst")
    assert replaced["locationId"] == location_id
    assert replaced["modifiedOn"] == "2025-06-01T12:05:00Z"
    assert replaced["modifiedByName"] == "api.user"

    patch = [{"op": "replace", "path": "/isActive", "value": False}]
    assert ok(await api.patch(f"/v2/crm/contacts/{contact_id}", json=patch))["isActive"] is False

    emails = [
        {"operation": 0, "emailAddress": "ada@home.example", "typeId": 2},
        {"operation": 1, "emailAddress": "ada@example.com", "newEmailAddress": "ada@work.example"},
    ]
    result = ok(await api.patch(f"/v2/crm/contacts/{contact_id}/emails", json=emails))
    assert (result["added"], result["updated"], result["deleted"]) == (1, 1, 0)
    assert [e["emailAddress"] for e in result["emails"]] == ["ada@work.example", "ada@home.example"]
    phones = [{"operation": 2, "phoneNumber": "+1 555 0100"}]
    result = ok(await api.patch(f"/v2/crm/contacts/{contact_id}/phones", json=phones))
    assert (result["deleted"], result["phones"]) == (1, [])

    ok(await api.delete(f"/v2/crm/contacts/{contact_id}"))
    assert contact_id not in store.contacts
    assert failed(await api.get(f"/v2/crm/contacts/summary/{contact_id}"))["code"] == 404
    assert failed(await api.delete(f"/v2/crm/contacts/{contact_id}"))["code"] == 404


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"firstName": None}, "firstName"),
        ({"accountId": 9999}, "accountId"),
        ({"locationId": 999999}, "locationId"),
        ({"emails": [{"emailAddress": "x@y.z", "emailTypeId": 42}]}, "emails[0].emailTypeId"),
    ],
)
async def test_contact_validation_names_the_field(
    api: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    body = {"firstName": "A", "lastName": "B", "accountId": 1, **changes}
    error = failed(await api.post("/v2/crm/contacts/summary", json=body))
    assert error["message"].startswith(field), error


# ------------------------------------------------------------------------------- assets


async def test_asset_search_and_lifecycle(api: httpx.AsyncClient, store: PulsewayStore) -> None:
    page = ok(
        await api.get(
            "/v2/servicedesk/hardwareasset/searchselect",
            params={"Filter.AccountId": 4, "Filter.CategoryIds": "1,2,3", "PageSize": 100},
        )
    )
    expected = [
        a["id"] for a in store.assets.values() if a["accountId"] == 4 and a["categoryId"] <= 3
    ]
    assert [a["id"] for a in page] == expected
    location_id = store.accounts[4]["locationIds"][0]
    body = {
        "name": "WS-NEW",
        "accountId": 4,
        "accountLocationId": location_id,
        "categoryId": 1,
        "stateId": 2,
        "serialNumber": "SN-1",
        "warrantyExpirationDate": "2027-01-31T00:00:00",
    }
    created = ok(await api.post("/v2/servicedesk/hardwareasset", json=body))
    assert (created["category"], created["state"]) == ("Workstation", "In Stock")
    assert created["warrantyExpirationDate"] == "2027-01-31T00:00:00Z"
    assert created["createdById"] == API_USER
    assert created["createdBy"] == "api.user"
    asset_id = created["id"]
    store.clock.advance(hours=2)
    replaced = ok(
        await api.put(f"/v2/servicedesk/hardwareasset/{asset_id}", json={**body, "stateId": 1})
    )
    assert replaced["state"] == "In Use"
    assert replaced["modifiedOn"] == "2025-06-01T14:00:00Z"
    assert ok(await api.get(f"/v2/servicedesk/hardwareasset/{asset_id}"))["name"] == "WS-NEW"
    ok(await api.delete(f"/v2/servicedesk/hardwareasset/{asset_id}"))
    assert failed(await api.get(f"/v2/servicedesk/hardwareasset/{asset_id}"))["code"] == 404


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": None}, "name"),
        ({"categoryId": 99}, "categoryId"),
        ({"accountLocationId": 999999}, "accountLocationId"),
        ({"stateId": 77}, "stateId"),
        ({"contactId": 999999}, "contactId"),
    ],
)
async def test_asset_validation_names_the_field(
    api: httpx.AsyncClient, store: PulsewayStore, changes: dict[str, Any], field: str
) -> None:
    location_id = store.accounts[1]["locationIds"][0]
    body = {"name": "X", "accountId": 1, "accountLocationId": location_id, "categoryId": 1}
    error = failed(await api.post("/v2/servicedesk/hardwareasset", json={**body, **changes}))
    assert error["message"].startswith(field), error


# ------------------------------------------------------------------------------ lookups


async def test_reference_lists(api: httpx.AsyncClient) -> None:
    types = ok(await api.get("/v2/system/accounttypes/lookup"))
    assert {
        "id": 1,
        "name": "Customer",
        "isActive": True,
        "isClient": True,
        "isVendor": False,
    } in types
    for table, first in (
        ("AssetCategory", "Workstation"),
        ("assetcategories", "Workstation"),
        ("HardwareAssetStates", "In Use"),
        ("EmailType", "Work"),
        ("PhoneTypes", "Work"),
        ("BusinessType", "Small Business"),
    ):
        assert ok(await api.get(f"/v2/system/lookup/{table}"))[0]["name"] == first
    assert "tableName" in failed(await api.get("/v2/system/lookup/Nope"))["message"]
    employees = ok(await api.get("/v2/hr/employees/lookup", params={"Filter.Ids": "3"}))
    assert employees == [{"id": 3, "name": "tom.manager"}]


# ------------------------------------------------------------------- budget and faults


async def test_hourly_budget_per_endpoint(
    api: httpx.AsyncClient, simulator: PulsewaySimulator, store: PulsewayStore
) -> None:
    simulator.budget.per_hour = 3
    for _ in range(3):
        ok(await api.get("/v2/crm/accounts/summary/1"))
    over = await api.get("/v2/crm/accounts/summary/2")  # same endpoint: method + template
    error = failed(over, 429)
    assert error["code"] == 429
    assert "GET /v2/crm/accounts/summary/{id}" in error["message"]
    assert over.headers["Retry-After"] == "3600"
    ok(await api.get("/v2/crm/accounts/summary"))  # another endpoint has its own budget
    store.clock.advance(minutes=59)
    assert (await api.get("/v2/crm/accounts/summary/1")).headers["Retry-After"] == "60"
    store.clock.advance(minutes=1)
    ok(await api.get("/v2/crm/accounts/summary/1"))
    assert simulator.traffic.over_budget == 2
    assert simulator.traffic.by_endpoint["GET /v2/crm/accounts/summary/{id}"] == 6


async def test_faults_over_http(api: httpx.AsyncClient, simulator: PulsewaySimulator) -> None:
    control = await api.post("/__simulator/faults", json={"rate_limit_every": 2, "error_every": 3})
    assert control.json()["faults"]["rate_limit_every"] == 2
    statuses = [(await api.get("/v2/system/accounttypes/lookup")).status_code for _ in range(6)]
    assert statuses == [429, 503, 429, 200, 429, 200]  # requests 2-7 (login was 1)
    await api.post("/__simulator/faults", json={"outage_status": 502})
    failed(await api.get("/v2/system/accounttypes/lookup"), 502)
    traffic = (await api.delete("/__simulator/faults")).json()["traffic"]
    assert traffic["rate_limited"] == 3
    assert traffic["server_errors"] == 2  # request 3 and the outage
    ok(await api.get("/v2/system/accounttypes/lookup"))
    bad = await api.post("/__simulator/faults", json={"nope": 1})
    assert bad.status_code == 400
    await api.post("/__simulator/faults", json={"calls_per_hour": 1})
    assert simulator.budget.per_hour == 1


async def test_unknown_endpoint_is_404_in_the_envelope(api: httpx.AsyncClient) -> None:
    failed(await api.get("/v2/crm/nothing"), 404)


# ----------------------------------------------------------------- store and dataset


async def test_bare_summary_by_id_matches_the_document_as_written(store: PulsewayStore) -> None:
    simulator = PulsewaySimulator(store, credentials=CREDENTIALS, summary_by_id_envelope=False)
    recorder = Recorder(summary_envelope=False)
    transport = httpx.ASGITransport(app=simulator.app)
    headers = {"Authorization": f"Bearer {simulator.issue_token()}"}
    async with httpx.AsyncClient(
        transport=transport,
        base_url=BASE,
        headers=headers,
        event_hooks={"response": [recorder.record]},
    ) as client:
        assert (await client.get("/v2/crm/accounts/summary/1")).json()["id"] == 1
        assert (await client.get("/v2/crm/contacts/summary/1")).json()["id"] == 1
    assert recorder.validated() == 2
    assert not list(recorder.problems())


def test_dataset_is_deterministic_and_consistent() -> None:
    one = generate_dataset(DatasetSpec(accounts=40, seed=3))
    two = generate_dataset(DatasetSpec(accounts=40, seed=3))
    assert one.accounts == two.accounts
    assert one.contacts == two.contacts
    assert one.assets == two.assets
    assert {len(a["locationIds"]) for a in one.accounts.values()} <= {1, 2, 3}
    assert {a["categoryId"] for a in one.assets.values()} == set(range(1, 8))
    for contact in one.contacts.values():
        assert contact["locationId"] in one.accounts[contact["accountId"]]["locationIds"]
    for asset in one.assets.values():
        assert asset["accountLocationId"] in one.accounts[asset["accountId"]]["locationIds"]
        if asset["contactId"] is not None:
            assert one.contacts[asset["contactId"]]["accountId"] == asset["accountId"]
    other = generate_dataset(DatasetSpec(accounts=40, seed=4))
    assert other.accounts != one.accounts


def test_store_ui_actions(store: PulsewayStore) -> None:
    store.clock.advance(seconds=30)
    store.delete("accounts", 2)
    assert store.accounts[2]["isActive"] is False
    assert store.accounts[2]["modifiedOn"] == START + timedelta(seconds=30)
    location = store.add_location(2, "Annex", [{"city": "Reno"}], is_main=True)
    assert [store.locations[i]["isMain"] for i in store.accounts[2]["locationIds"]][-1] is True
    assert sum(loc["isMain"] for loc in store.locations_of(2)) == 1
    assert location["addresses"][0]["city"] == "Reno"
    contact_id = next(iter(store.contacts))
    store.delete("contacts", contact_id)
    assert contact_id not in store.contacts
    account_id = store.assets[1]["accountId"]
    store.purge("accounts", account_id)
    assert account_id not in store.accounts
    assert all(a["accountId"] != account_id for a in store.assets.values())
    assert all(c["accountId"] != account_id for c in store.contacts.values())


async def test_served_in_a_thread(simulator: PulsewaySimulator) -> None:
    async with serve_in_thread(simulator.app) as base_url, httpx.AsyncClient() as client:
        response = await client.post(
            f"{base_url}/v2/security/authenticate",
            data={
                "grantType": "password",
                "userName": "api.user",
                "password": "s3cret",
                "tenant": "acme",
            },
        )
        token = ok(response)["accessToken"]
        headers = {"Authorization": f"Bearer {token}"}
        accounts = await client.get(f"{base_url}/v2/crm/accounts/summary", headers=headers)
        assert accounts.json()["totalRecords"] == 20


def test_contract_fixture_sees_every_response(recorder: Recorder) -> None:
    """The recorder validates only what it recorded: make sure a known-bad body is caught."""
    bad = httpx.Response(
        200,
        json={"success": True, "error": None, "result": [{"id": "not-an-int"}]},
        request=httpx.Request("GET", f"{BASE}/v2/system/accounttypes/lookup"),
    )
    probe = Recorder()
    probe.exchanges.append((bad.request, bad))
    assert any("not-an-int" in p for p in probe.problems())


# ------------------------------------------------------------- the request check itself


@pytest.fixture
async def wire(
    simulator: PulsewaySimulator,
) -> AsyncIterator[tuple[httpx.AsyncClient, WireRecorder]]:
    """An authenticated client to the simulator served through the provider tests' recorder."""
    recorder = WireRecorder()
    transport = httpx.ASGITransport(app=recorder.wrap(simulator.app))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        token = ok(await login(client))["accessToken"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, recorder


async def test_request_check_passes_what_the_document_allows(
    wire: tuple[httpx.AsyncClient, WireRecorder], store: PulsewayStore
) -> None:
    """The deliberate adjustments: urlencoded camelCase login form, zoneless date filters."""
    api, recorder = wire
    zoneless = {"Filter.ModifiedOnFrom": "2025-06-01T11:00:00", "Filter.IsActive": "True"}
    ok(await api.get("/v2/crm/accounts/summary", params={**zoneless, "PageSize": 5}))
    ids = (("Filter.Ids", 3), ("Filter.Ids", 9), ("PageNumber", 1))
    ok(await api.get("/v2/crm/contacts/search", params=ids))
    categories: dict[str, str | int] = {"Filter.CategoryIds": "1,2,3", "Filter.AccountId": 4}
    ok(await api.get("/v2/servicedesk/hardwareasset/searchselect", params=categories))
    patch = [{"op": "replace", "path": "/website", "value": "https://one.example"}]
    headers = {"Content-Type": "application/json-patch+json"}
    ok(await api.patch("/v2/crm/accounts/1", json=patch, headers=headers))
    location_id = store.accounts[4]["locationIds"][0]
    asset = {"name": "WS-1", "accountId": 4, "accountLocationId": location_id, "categoryId": 1}
    ok(await api.post("/v2/servicedesk/hardwareasset", json=asset))
    assert len(recorder.recorded()) == 6  # the login too
    assert recorder.problems() == []
    assert recorder.report() is None


async def test_request_check_reports_parameters_and_bodies_outside_the_document(
    wire: tuple[httpx.AsyncClient, WireRecorder],
) -> None:
    api, recorder = wire
    await api.get(
        "/v2/crm/accounts/summary",
        params={"PageSize": "ten", "Filter.IsActive": "yes", "Filter.ModifiedSince": "x"},
    )
    await api.get("/v2/crm/accounts/summary", params={"Filter.ModifiedOnFrom": "yesterday"})
    categories = (("Filter.CategoryIds", 1), ("Filter.CategoryIds", 2))
    await api.get("/v2/servicedesk/hardwareasset/searchselect", params=categories)
    await api.post("/v2/crm/accounts", json={"accountName": "No Manager"})
    await api.post("/v2/servicedesk/hardwareasset", json={"name": "X", "accountId": "four"})
    bad_patch = [{"op": "replace", "path": "/website", "value": "x", "note": "extra"}]
    headers = {"Content-Type": "application/json-patch+json"}
    await api.patch("/v2/crm/accounts/1", json=bad_patch, headers=headers)
    await api.post("/v2/security/authenticate", data={"userName": "api.user"})
    await api.get("/v2/crm/accounts/summary/1", headers={"Authorization": ""})
    await api.get("/v2/crm/nothing")

    problems = "\n".join(recorder.problems())
    expected = [
        "GET /v2/crm/accounts/summary?PageSize=ten",
        "PageSize: Failed to cast value to integer type: ten",
        "'Filter.IsActive' is 'yes'",
        "'Filter.ModifiedSince' is not in the document",
        "'yesterday' does not match",
        "'Filter.CategoryIds' is repeated (2 times) but the document declares a single string",
        "POST /v2/crm/accounts: request: 'accountManagerId' is a required property",
        "POST /v2/servicedesk/hardwareasset: request: accountId: 'four' is not of type 'integer'",
        "'categoryId' is a required property",
        "PATCH /v2/crm/accounts/1: request: 0: Additional properties are not allowed",
        "POST /v2/security/authenticate: request: 'GrantType' is a required property",
        "GET /v2/crm/accounts/summary/1: request: SecurityValidationError",
        "GET /v2/crm/nothing: request: Path not found",
    ]
    for text in expected:
        assert text in problems, f"{text!r} not reported in:\n{problems}"
    report = recorder.report()
    assert report is not None
    assert report.startswith(f"{len(recorder.problems())} violation(s)")


def test_response_check_of_the_recorder_reports_bad_bodies() -> None:
    exchange = WireExchange(
        method="GET",
        path="/v2/system/accounttypes/lookup",
        query=(),
        headers=(("authorization", "Bearer t"),),
        body=b"",
        status=200,
        response_body=b'{"success": true, "error": null, "result": [{"id": "not-an-int"}]}',
    )
    [problem] = exchange_problems(exchange)
    assert problem.startswith("GET /v2/system/accounttypes/lookup: response: result/0/id:")
    assert "'not-an-int' is not of type 'integer'" in problem
    assert exchange_problems(replace(exchange, status=404)) == []  # only 200 is documented


async def test_recorder_collects_from_a_server_thread(simulator: PulsewaySimulator) -> None:
    recorder = WireRecorder()
    async with (
        serve_in_thread(recorder.wrap(simulator.app)) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        token = ok(await login(client))["accessToken"]
        headers = {"Authorization": f"Bearer {token}"}
        ok(await client.get("/v2/crm/accounts/summary", params={"PageSize": 2}, headers=headers))
        await client.get("/__simulator/faults")  # control calls are not the API's
        await client.get("/v2/crm/accounts/summary", params={"Pagesize": 2}, headers=headers)
    assert [e.path for e in recorder.recorded()] == [
        "/v2/security/authenticate",
        "/v2/crm/accounts/summary",
        "/v2/crm/accounts/summary",
    ]
    [problem] = recorder.problems()
    assert "'Pagesize' is not in the document" in problem
