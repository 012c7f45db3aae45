"""Dates before year 1000 are valid ISO 8601 on the wire and in filters, in both simulators.

glibc's ``strftime('%Y')`` writes year 999 as ``999``: not ISO 8601, and a string that sorts
after ``2024``, which broke the ConnectWise simulator's string-compared conditions too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from openapi_core.testing import MockRequest, MockResponse
from pulseway_contract import BASE, contract_spec
from simulator_access import API_ROOT, AUTHORIZATION, CREDENTIALS

from simulators.connectwise import ConnectWiseSimulator, ConnectWiseStore
from simulators.connectwise.timestamps import canonical_datetime, format_datetime
from simulators.pulseway import ApiCredentials, Clock, PulsewaySimulator, PulsewayStore
from simulators.pulseway.wire import parse_time, stamp

EARLY = datetime(999, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(999, 1, 1, tzinfo=UTC), "0999-01-01T00:00:00Z"),
        (datetime(1, 2, 3, 4, 5, 6), "0001-02-03T04:05:06Z"),
        (datetime(99, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), "0099-12-31T23:59:59Z"),
        (datetime(2025, 6, 1, tzinfo=timezone(timedelta(hours=2))), "2025-05-31T22:00:00Z"),
    ],
)
def test_both_simulators_render_four_digit_years(moment: datetime, text: str) -> None:
    assert format_datetime(moment) == text
    assert stamp(moment if moment.tzinfo else moment.replace(tzinfo=UTC)) == text


@pytest.mark.parametrize("text", ["0999-01-01T00:00:00Z", "0999-01-01", "0999-01-01T00:00:00"])
def test_early_dates_parse_in_both_simulators(text: str) -> None:
    assert canonical_datetime(text) == "0999-01-01T00:00:00Z"
    assert parse_time(text) == EARLY


def test_dates_whose_utc_time_is_before_year_one_are_value_errors() -> None:
    with pytest.raises(ValueError, match="out of range"):
        canonical_datetime("0001-01-01T00:00:00+05:00")
    with pytest.raises(ValueError, match="out of range"):
        parse_time("0001-01-01T00:00:00+05:00")


# ------------------------------------------------------------------------- ConnectWise


@pytest.fixture
async def cw() -> AsyncIterator[httpx.AsyncClient]:
    simulator = ConnectWiseSimulator(ConnectWiseStore(), credentials=CREDENTIALS)
    transport = httpx.ASGITransport(app=simulator.app)
    headers = {"Authorization": AUTHORIZATION}
    async with httpx.AsyncClient(transport=transport, base_url=API_ROOT, headers=headers) as client:
        yield client


async def cw_company(client: httpx.AsyncClient, identifier: str, acquired: str) -> dict[str, Any]:
    body = {"identifier": identifier, "name": identifier, "addressLine1": "1 Main St"}
    response = await client.post("company/companies", json={**body, "dateAcquired": acquired})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_connectwise_renders_early_dates_zero_padded(cw: httpx.AsyncClient) -> None:
    created = await cw_company(cw, "Ancient", "0999-01-01T00:00:00Z")
    read = (await cw.get(f"company/companies/{created['id']}")).json()
    assert created["dateAcquired"] == read["dateAcquired"] == "0999-01-01T00:00:00Z"

    patch = [{"op": "replace", "path": "dateAcquired", "value": "0042-07-04T12:30:00+01:00"}]
    patched = await cw.patch(f"company/companies/{created['id']}", json=patch)
    assert patched.json()["dateAcquired"] == "0042-07-04T11:30:00Z"


async def test_connectwise_conditions_compare_early_dates_in_time_order(
    cw: httpx.AsyncClient,
) -> None:
    await cw_company(cw, "Ancient", "0999-01-01")
    await cw_company(cw, "Medieval", "1066-10-14")
    await cw_company(cw, "Modern", "2024-01-01")

    async def selected(conditions: str) -> list[str]:
        response = await cw.get("company/companies", params={"conditions": conditions})
        assert response.status_code == 200, response.text
        return sorted(c["identifier"] for c in response.json())

    assert await selected("dateAcquired < [1000-01-01T00:00:00Z]") == ["Ancient"]
    assert await selected("dateAcquired > [0999-06-01T00:00:00Z]") == ["Medieval", "Modern"]
    assert await selected("dateAcquired >= [0999-01-01]") == ["Ancient", "Medieval", "Modern"]
    assert await selected("lastUpdated > [0998-12-31T23:59:59Z]") == [
        "Ancient",
        "Medieval",
        "Modern",
    ]
    assert await selected("lastUpdated < [1000-01-01T00:00:00Z]") == []


@pytest.mark.parametrize(
    "conditions",
    ["dateAcquired > [0001-01-01T00:00:00+05:00]", "dateAcquired > [0000-01-01T00:00:00Z]"],
)
async def test_connectwise_refuses_dates_outside_the_calendar_with_400(
    cw: httpx.AsyncClient, conditions: str
) -> None:
    response = await cw.get("company/companies", params={"conditions": conditions})
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidObject"


async def test_connectwise_refuses_a_body_date_outside_the_calendar_with_400(
    cw: httpx.AsyncClient,
) -> None:
    body = {"identifier": "Nowhen", "name": "Nowhen", "addressLine1": "1 Main St"}
    response = await cw.post(
        "company/companies", json={**body, "dateAcquired": "0001-01-01T00:00:00+05:00"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidObject"


# ----------------------------------------------------------------------------- Pulseway


@pytest.fixture
async def pw() -> AsyncIterator[httpx.AsyncClient]:
    store = PulsewayStore(Clock(EARLY), tenant="acme")
    credentials = ApiCredentials(tenant="acme", username="api.user", password="s3cret")
    simulator = PulsewaySimulator(store, credentials=credentials)
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        form = {"grantType": "password", "userName": "api.user", "password": "s3cret"}
        login = await client.post("/v2/security/authenticate", data={**form, "tenant": "acme"})
        assert login.json()["result"]["accessTokenExpireOn"] == "0999-01-01T01:00:00Z"
        client.headers["Authorization"] = "Bearer " + login.json()["result"]["accessToken"]
        yield client


def in_contract(response: httpx.Response) -> Any:
    """The result of a 200 answer, after checking it against the OpenAPI document."""
    assert response.status_code == 200, response.text
    request = response.request
    mock_request = MockRequest(
        BASE, request.method.lower(), request.url.path, args=dict(request.url.params)
    )
    mock_response = MockResponse(response.content, 200, content_type="application/json")
    errors = list(contract_spec().iter_response_errors(mock_request, mock_response))
    assert not errors, errors
    body = response.json()
    assert body["success"] is True, body
    return body["result"]


async def test_pulseway_renders_early_dates_zero_padded(pw: httpx.AsyncClient) -> None:
    account = {
        "accountName": "Ancient Ltd",
        "accountTypeId": 1,
        "businessTypeId": 1,
        "accountManagerId": 3,
        "accountCode": "ANCIENT",
        "acquiredDate": "0999-01-01T00:00:00",
        "locations": [{"locationName": "HQ", "isMain": True, "addresses": []}],
    }
    created = in_contract(await pw.post("/v2/crm/accounts", json=account))
    read = in_contract(await pw.get(f"/v2/crm/accounts/summary/{created['id']}"))
    assert read["acquiredDate"] == "0999-01-01T00:00:00Z"
    assert read["createdOn"] == read["modifiedOn"] == "0999-01-01T00:00:00Z"

    listed = in_contract(
        await pw.get(
            "/v2/crm/accounts/summary", params={"Filter.ModifiedOnFrom": "0999-01-01T00:00:00"}
        )
    )
    assert [a["id"] for a in listed] == [created["id"]]
    later = in_contract(
        await pw.get("/v2/crm/accounts/summary", params={"Filter.ModifiedOnFrom": "0999-01-02"})
    )
    assert later == []


async def test_pulseway_refuses_a_filter_date_outside_the_calendar(pw: httpx.AsyncClient) -> None:
    response = await pw.get(
        "/v2/crm/accounts/summary", params={"Filter.ModifiedOnFrom": "0001-01-01T00:00:00+05:00"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == 400
