"""PulsewayClient against pytest-httpx: login, token renewal, envelope, paging, retries, budget."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pytest_httpx import HTTPXMock

from sync.errors import (
    CredentialsError,
    FatalError,
    InsecureUrlError,
    PermissionDenied,
    ProtocolError,
    RecordError,
    RetriableError,
)
from sync.providers.http import RetryPolicy
from sync.providers.pulseway import (
    EndpointBudget,
    PulsewayClient,
    PulsewayCredentials,
    format_filter_datetime,
)

HOST = "https://psa.example.com"
PASSWORD = "S3cr3t-Passw0rd"
START = datetime(2030, 1, 1, tzinfo=UTC)
AUTH_URL = f"{HOST}/v2/security/authenticate"
REFRESH_URL = f"{HOST}/v2/security/refreshtoken"
USERINFO_URL = f"{HOST}/v2/security/userinfo"
CONTACTS = re.compile(re.escape(f"{HOST}/v2/crm/contacts/summary") + r"(\?.*)?$")


class FakeTime:
    """A wall clock that only moves when slept on (or by hand); records the sleeps."""

    def __init__(self) -> None:
        self.now = START.timestamp()
        self.delays: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        self.now += delay

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def public_resolver(host: str, port: int) -> list[str]:
    return ["93.184.215.14"]


def envelope(result: Any, **extra: Any) -> dict[str, Any]:
    return {"success": True, "error": None, "result": result, **extra}


def refusal(message: str, code: int = 400) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message}, "result": None}


def token(access: str = "access-1", refresh: str = "refresh-1", minutes: int = 60) -> Any:
    return envelope(
        {
            "accessToken": access,
            "refreshToken": refresh,
            "accessTokenExpireOn": (START + timedelta(minutes=minutes))
            .replace(tzinfo=None)
            .isoformat(),
            "refreshTokenExpireOn": (START + timedelta(days=1)).isoformat(),
        }
    )


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def contacts(start: int, count: int) -> list[dict[str, Any]]:
    return [{"id": i, "firstName": f"C{i}"} for i in range(start, start + count)]


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(http: httpx.AsyncClient, fake_time: FakeTime) -> Callable[..., PulsewayClient]:
    def make(host: str = HOST, **kwargs: Any) -> PulsewayClient:
        creds = PulsewayCredentials(
            host=host, tenant="acme", user_name="sync-api", password=PASSWORD
        )
        options: dict[str, Any] = {
            "clock": fake_time.clock,
            "sleep": fake_time.sleep,
            "rng": lambda: 0.5,
            "resolver": public_resolver,
            "retry": RetryPolicy(),
        }
        options.update(kwargs)
        return PulsewayClient(http, creds, **options)

    return make


@pytest.fixture
def pw(make_client: Callable[..., PulsewayClient]) -> PulsewayClient:
    return make_client()


def login(httpx_mock: HTTPXMock, **kwargs: Any) -> None:
    httpx_mock.add_response(method="POST", url=AUTH_URL, json=token(**kwargs))


def bearer(request: httpx.Request) -> str:
    return request.headers["Authorization"]


# -- login and tokens -----------------------------------------------------------------------------


async def test_login_posts_the_password_grant_as_a_form(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(url=USERINFO_URL, json=envelope({"userId": 7, "fullName": "Sync"}))

    info = await pw.check_connection()

    assert info == {"userId": 7, "fullName": "Sync"}
    auth, call = httpx_mock.get_requests()
    assert auth.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form(auth) == {
        "grantType": "password",
        "userName": "sync-api",
        "password": PASSWORD,
        "tenant": "acme",
    }
    assert bearer(call) == "Bearer access-1"


async def test_the_token_is_reused_across_calls(pw: PulsewayClient, httpx_mock: HTTPXMock) -> None:
    login(httpx_mock)
    httpx_mock.add_response(url=USERINFO_URL, json=envelope({"userId": 7}), is_reusable=True)

    await pw.check_connection()
    await pw.check_connection()

    requests = httpx_mock.get_requests()
    assert [r.url.path for r in requests].count("/v2/security/authenticate") == 1
    assert all(bearer(r) == "Bearer access-1" for r in requests[1:])


async def test_the_token_is_refreshed_shortly_before_it_expires(
    pw: PulsewayClient, httpx_mock: HTTPXMock, fake_time: FakeTime
) -> None:
    login(httpx_mock, minutes=60)
    httpx_mock.add_response(method="POST", url=REFRESH_URL, json=token("access-2", "refresh-2"))
    httpx_mock.add_response(url=USERINFO_URL, json=envelope({"userId": 7}), is_reusable=True)

    await pw.check_connection()
    fake_time.advance(59.5 * 60)
    await pw.check_connection()

    _login, first, refresh, second = httpx_mock.get_requests()
    assert form(refresh) == {"AccessToken": "access-1", "RefreshToken": "refresh-1"}
    assert bearer(first) == "Bearer access-1"
    assert bearer(second) == "Bearer access-2"


async def test_a_401_refreshes_the_token_and_retries_once(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(url=USERINFO_URL, status_code=401)
    httpx_mock.add_response(method="POST", url=REFRESH_URL, json=token("access-2", "refresh-2"))
    httpx_mock.add_response(url=USERINFO_URL, json=envelope({"userId": 7}))

    assert await pw.check_connection() == {"userId": 7}

    calls = [r for r in httpx_mock.get_requests() if r.url.path == "/v2/security/userinfo"]
    assert [bearer(r) for r in calls] == ["Bearer access-1", "Bearer access-2"]


async def test_a_refused_refresh_falls_back_to_logging_in_again(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(url=USERINFO_URL, status_code=401)
    httpx_mock.add_response(method="POST", url=REFRESH_URL, json=refusal("Invalid refresh token"))
    httpx_mock.add_response(method="POST", url=AUTH_URL, json=token("access-3"))
    httpx_mock.add_response(url=USERINFO_URL, json=envelope({"userId": 7}))

    assert await pw.check_connection() == {"userId": 7}

    assert bearer(httpx_mock.get_requests()[-1]) == "Bearer access-3"


async def test_a_second_401_is_a_credentials_error(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(url=USERINFO_URL, status_code=401, is_reusable=True)
    httpx_mock.add_response(method="POST", url=REFRESH_URL, json=token("access-2"))

    with pytest.raises(CredentialsError) as caught:
        await pw.check_connection()

    assert "access-" not in str(caught.value)
    assert len(httpx_mock.get_requests(url=USERINFO_URL)) == 2


async def test_bad_credentials_are_a_credentials_error_with_pulseways_message(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        method="POST", url=AUTH_URL, json=refusal(f"Invalid user name or password {PASSWORD}")
    )

    with pytest.raises(CredentialsError, match="Invalid user name or password") as caught:
        await pw.check_connection()

    assert PASSWORD not in str(caught.value)
    assert "acme" in str(caught.value)


async def test_a_login_refused_with_http_401_is_a_credentials_error(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(method="POST", url=AUTH_URL, status_code=401, json=refusal("Nope"))

    with pytest.raises(CredentialsError, match="401 Unauthorized: Nope"):
        await pw.authenticate()


async def test_a_login_without_an_access_token_is_a_protocol_error(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(method="POST", url=AUTH_URL, json=envelope({"refreshToken": "x"}))

    with pytest.raises(ProtocolError, match="without an access token"):
        await pw.authenticate()


async def test_a_403_is_a_permission_denial_naming_the_area(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(url=f"{HOST}/v2/crm/contacts/summary/5", status_code=403)

    with pytest.raises(PermissionDenied, match="security role") as denied:
        await pw.get_contact(5)
    assert (denied.value.area, denied.value.access) == ("contacts", "read")


# -- envelope ------------------------------------------------------------------------------------


async def test_success_false_on_a_record_is_a_record_error_with_the_message(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(
        method="POST",
        url=f"{HOST}/v2/crm/contacts/summary",
        json={
            "success": False,
            "error": {"code": 1001, "message": "First name is required", "subErrors": ["x"]},
        },
    )

    with pytest.raises(RecordError, match="First name is required: x") as caught:
        await pw.create_contact({"lastName": "Doe"})

    assert caught.value.psa_code == "1001"
    assert caught.value.status_code is None
    assert caught.value.errors[0]["message"] == "First name is required"


async def test_success_false_on_a_list_is_a_fatal_error(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(url=CONTACTS, json=refusal("Invalid filter"))

    with pytest.raises(FatalError, match="Invalid filter") as caught:
        [page async for page in pw.contacts()]

    assert not isinstance(caught.value, RecordError)


async def test_a_pascal_case_envelope_is_read(pw: PulsewayClient, httpx_mock: HTTPXMock) -> None:
    login(httpx_mock)
    httpx_mock.add_response(
        url=f"{HOST}/v2/servicedesk/hardwareasset/9",
        json={"Success": True, "Error": None, "Result": {"Id": 9, "Name": "PC-9"}},
    )

    assert await pw.get_hardware_asset(9) == {"Id": 9, "Name": "PC-9"}


async def test_a_get_by_id_may_answer_with_the_bare_record(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(
        url=f"{HOST}/v2/crm/accounts/summary/3", json={"id": 3, "accountName": "Acme"}
    )
    httpx_mock.add_response(
        url=f"{HOST}/v2/crm/accounts/summary/4", json=envelope({"id": 4, "accountName": "Beta"})
    )

    assert await pw.get_account(3) == {"id": 3, "accountName": "Acme"}
    assert await pw.get_account(4) == {"id": 4, "accountName": "Beta"}


async def test_a_list_without_an_envelope_is_a_protocol_error(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(url=f"{HOST}/v2/system/accounttypes/lookup", json=[{"id": 1}])

    with pytest.raises(ProtocolError, match="envelope"):
        await pw.account_types()


async def test_a_body_that_is_not_json_is_a_protocol_error(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(url=f"{HOST}/v2/crm/contacts/summary/5", html="<html>oops</html>")

    with pytest.raises(ProtocolError, match="not JSON"):
        await pw.get_contact(5)


async def test_a_404_on_a_record_is_a_record_error_with_status_404(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(url=f"{HOST}/v2/crm/contacts/summary/5", status_code=404)

    with pytest.raises(RecordError) as caught:
        await pw.get_contact(5)

    assert caught.value.status_code == 404


# -- paging --------------------------------------------------------------------------------------


async def test_paging_stops_on_a_short_page_and_passes_the_filters(
    make_client: Callable[..., PulsewayClient], httpx_mock: HTTPXMock
) -> None:
    pw = make_client(page_size=2)
    login(httpx_mock)
    httpx_mock.add_response(url=CONTACTS, json=envelope(contacts(1, 2)))
    httpx_mock.add_response(url=CONTACTS, json=envelope(contacts(3, 1)))
    since = datetime(2030, 1, 1, 2, 30, 15, 999, tzinfo=timezone(timedelta(hours=2)))

    pages = [p async for p in pw.contacts(modified_since=since, account_id=42)]

    assert [[c["id"] for c in p] for p in pages] == [[1, 2], [3]]
    calls = httpx_mock.get_requests(url=CONTACTS)
    assert [dict(r.url.params) for r in calls] == [
        {
            "Filter.ModifiedOnFrom": "2030-01-01T00:30:15",
            "Filter.AccountId": "42",
            "PageSize": "2",
            "PageNumber": str(n),
        }
        for n in (1, 2)
    ]


async def test_paging_stops_when_total_records_is_reached(
    make_client: Callable[..., PulsewayClient], httpx_mock: HTTPXMock
) -> None:
    pw = make_client(page_size=2)
    login(httpx_mock)
    httpx_mock.add_response(url=CONTACTS, json=envelope(contacts(1, 2), totalRecords=4))
    httpx_mock.add_response(url=CONTACTS, json=envelope(contacts(3, 2), totalRecords=4))

    pages = [p async for p in pw.contacts()]

    assert len(pages) == 2
    assert len(httpx_mock.get_requests(url=CONTACTS)) == 2


async def test_a_page_served_twice_is_a_protocol_error(
    make_client: Callable[..., PulsewayClient], httpx_mock: HTTPXMock
) -> None:
    pw = make_client(page_size=2)
    login(httpx_mock)
    httpx_mock.add_response(url=CONTACTS, json=envelope(contacts(1, 2)), is_reusable=True)

    with pytest.raises(ProtocolError, match="same page"):
        [p async for p in pw.contacts()]


async def test_extra_filters_pass_through_and_sequences_repeat(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    url = re.compile(re.escape(f"{HOST}/v2/crm/contacts/search") + r"\?.*")
    httpx_mock.add_response(url=url, json=envelope([]))

    pages = [
        p
        async for p in pw.search_contacts(
            {"Filter.EmailAddress": "a@b.c", "Filter.Ids": [1, 2], "Filter.IsActive": True}
        )
    ]

    assert pages == []
    request = httpx_mock.get_requests(url=url)[0]
    assert request.url.params.get_list("Filter.Ids") == ["1", "2"]
    assert request.url.params["Filter.EmailAddress"] == "a@b.c"
    assert request.url.params["Filter.IsActive"] == "true"


def test_filter_datetimes_are_utc_without_a_zone() -> None:
    assert format_filter_datetime(datetime(2030, 5, 1, 12, 0, 0, 500)) == "2030-05-01T12:00:00"
    local = datetime(2030, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert format_filter_datetime(local) == "2030-05-01T17:00:00"


# -- retries -------------------------------------------------------------------------------------


async def test_a_429_is_retried_after_retry_after(
    pw: PulsewayClient, httpx_mock: HTTPXMock, fake_time: FakeTime
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(url=USERINFO_URL, status_code=429, headers={"Retry-After": "7"})
    httpx_mock.add_response(url=USERINFO_URL, json=envelope({"userId": 7}))

    assert await pw.check_connection() == {"userId": 7}

    assert 7.0 in fake_time.delays


async def test_endless_503s_end_in_a_retriable_error(
    make_client: Callable[..., PulsewayClient], httpx_mock: HTTPXMock
) -> None:
    pw = make_client(retry=RetryPolicy(max_attempts=2))
    login(httpx_mock)
    httpx_mock.add_response(url=USERINFO_URL, status_code=503, is_reusable=True)

    with pytest.raises(RetriableError):
        await pw.check_connection()


# -- budget --------------------------------------------------------------------------------------


async def test_the_budget_makes_calls_wait_and_reports_the_wait(
    make_client: Callable[..., PulsewayClient], httpx_mock: HTTPXMock, fake_time: FakeTime
) -> None:
    # Burst of 2, then one call every ~30 s: well within the token's hour.
    pw = make_client(budget_per_hour=120)
    login(httpx_mock)
    httpx_mock.add_response(
        url=re.compile(re.escape(f"{HOST}/v2/crm/contacts/summary/") + r"\d+"),
        json=envelope({"id": 1}),
        is_reusable=True,
    )

    for contact_id in (1, 2, 3, 4):
        await pw.get_contact(contact_id)

    key = "GET /v2/crm/contacts/summary/{id}"
    assert pw.budget_wait_seconds > 0
    assert pw.budget_waits[key] == pw.budget_wait_seconds
    assert pw.budget_calls[key] == 4
    assert "POST /v2/security/authenticate" not in pw.budget_waits
    assert fake_time.delays  # waited through the injected sleep, not in real time


async def test_no_hour_holds_more_calls_than_the_budget(fake_time: FakeTime) -> None:
    budget = EndpointBudget(120, clock=fake_time.clock, sleep=fake_time.sleep)
    times: list[float] = []

    for _ in range(400):
        await budget.acquire("GET /v2/crm/contacts/summary")
        times.append(fake_time.now)

    assert all(sum(1 for t in times if start <= t < start + 3600) <= 120 for start in times)
    assert budget.calls["GET /v2/crm/contacts/summary"] == 400
    assert budget.wait_seconds == pytest.approx(times[-1] - times[0])


async def test_calls_waiting_at_the_same_time_count_that_time_once() -> None:
    # After a burst of 3,000, about 50 calls a second: waits of some 20 ms, in real time.
    budget = EndpointBudget(180_000)
    for endpoint in ("POST /v2/crm/accounts", "GET /v2/crm/accounts/{id}"):
        for _ in range(3_000):
            await budget.acquire(endpoint)

    started = time.monotonic()
    await asyncio.gather(
        *(budget.acquire("POST /v2/crm/accounts") for _ in range(12)),
        *(budget.acquire("GET /v2/crm/accounts/{id}") for _ in range(6)),
    )
    elapsed = time.monotonic() - started

    assert budget.wait_seconds > 0
    assert budget.wait_seconds <= elapsed  # never more waiting than time went by
    assert sum(budget.waits.values()) == pytest.approx(budget.wait_seconds)
    assert set(budget.waits) == {"POST /v2/crm/accounts", "GET /v2/crm/accounts/{id}"}


async def test_endpoints_have_separate_budgets(fake_time: FakeTime) -> None:
    budget = EndpointBudget(1, clock=fake_time.clock, sleep=fake_time.sleep)

    assert await budget.acquire("GET /a") == 0
    assert await budget.acquire("GET /b") == 0
    assert await budget.acquire("GET /a") > 0
    assert set(budget.waits) == {"GET /a"}


# -- writes --------------------------------------------------------------------------------------


async def test_patch_sends_json_patch(pw: PulsewayClient, httpx_mock: HTTPXMock) -> None:
    login(httpx_mock)
    httpx_mock.add_response(
        method="PATCH",
        url=f"{HOST}/v2/crm/contacts/5",
        json=envelope({"id": 5, "jobTitle": "CTO"}),
    )
    ops = [{"op": "replace", "path": "/jobTitle", "value": "CTO"}]

    assert await pw.patch_contact(5, ops) == {"id": 5, "jobTitle": "CTO"}

    request = httpx_mock.get_requests(method="PATCH")[0]
    assert request.headers["Content-Type"] == "application/json-patch+json"
    assert httpx.Response(200, content=request.content).json() == ops


async def test_hardware_assets_are_updated_with_put(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(
        method="PUT", url=f"{HOST}/v2/servicedesk/hardwareasset/9", json=envelope({"id": 9})
    )

    assert await pw.update_hardware_asset(9, {"name": "PC-9"}) == {"id": 9}

    request = httpx_mock.get_requests(method="PUT")[0]
    assert request.headers["Content-Type"] == "application/json"


async def test_delete_accepts_an_empty_answer(pw: PulsewayClient, httpx_mock: HTTPXMock) -> None:
    login(httpx_mock)
    httpx_mock.add_response(method="DELETE", url=f"{HOST}/v2/crm/contacts/5")
    httpx_mock.add_response(
        method="DELETE", url=f"{HOST}/v2/servicedesk/hardwareasset/9", json=envelope(True)
    )

    await pw.delete_contact(5)
    await pw.delete_hardware_asset(9)


async def test_a_refused_delete_is_a_record_error(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(
        method="DELETE", url=f"{HOST}/v2/crm/contacts/5", json=refusal("Contact has tickets")
    )

    with pytest.raises(RecordError, match="Contact has tickets"):
        await pw.delete_contact(5)


async def test_a_created_id_is_returned_as_a_record(
    pw: PulsewayClient, httpx_mock: HTTPXMock
) -> None:
    login(httpx_mock)
    httpx_mock.add_response(method="POST", url=f"{HOST}/v2/crm/accounts", json=envelope(77))

    assert await pw.create_account({"accountName": "Acme"}) == {"id": 77}


# -- lookups -------------------------------------------------------------------------------------


async def test_lookups_use_their_endpoints(pw: PulsewayClient, httpx_mock: HTTPXMock) -> None:
    login(httpx_mock)
    for path in (
        "/v2/system/accounttypes/lookup",
        "/v2/system/lookup/AssetCategory",
        "/v2/system/lookup/PhoneType",
        "/v2/crm/accounts/3/locations/lookup",
    ):
        httpx_mock.add_response(url=f"{HOST}{path}", json=envelope([{"id": 1, "name": path}]))

    assert (await pw.account_types())[0]["name"] == "/v2/system/accounttypes/lookup"
    assert (await pw.asset_categories())[0]["id"] == 1
    assert (await pw.contact_phone_types())[0]["id"] == 1
    assert (await pw.account_locations(3))[0]["id"] == 1


async def test_lookup_table_names_are_checked(pw: PulsewayClient) -> None:
    with pytest.raises(ValueError, match="lookup table"):
        await pw.lookup("../security/userinfo")


# -- URL safety ----------------------------------------------------------------------------------


async def test_plain_http_is_refused_before_anything_is_sent(
    make_client: Callable[..., PulsewayClient], httpx_mock: HTTPXMock
) -> None:
    pw = make_client(host="http://psa.example.com")

    with pytest.raises(InsecureUrlError, match="https"):
        await pw.check_connection()

    assert httpx_mock.get_requests() == []


async def test_loopback_http_is_allowed_for_a_sandbox_only(
    make_client: Callable[..., PulsewayClient], httpx_mock: HTTPXMock
) -> None:
    with pytest.raises(InsecureUrlError, match="sandbox"):
        await make_client(host="http://127.0.0.1:8080").authenticate()

    httpx_mock.add_response(
        method="POST", url="http://127.0.0.1:8080/v2/security/authenticate", json=token()
    )
    await make_client(host="http://127.0.0.1:8080", sandbox=True).authenticate()


def test_repr_shows_no_password(pw: PulsewayClient) -> None:
    assert PASSWORD not in repr(pw)


async def test_concurrent_calls_share_one_login(pw: PulsewayClient, httpx_mock: HTTPXMock) -> None:
    login(httpx_mock)
    httpx_mock.add_response(url=USERINFO_URL, json=envelope({"userId": 7}), is_reusable=True)

    await asyncio.gather(*(pw.check_connection() for _ in range(5)))

    assert len(httpx_mock.get_requests(url=AUTH_URL)) == 1


async def test_a_wall_clock_stepping_back_does_not_fill_the_budget(fake_time: FakeTime) -> None:
    budget = EndpointBudget(60, clock=fake_time.clock, sleep=fake_time.sleep)

    await budget.acquire("GET /a")
    fake_time.advance(-3600)
    await budget.acquire("GET /a")

    assert budget.wait_seconds < 120
