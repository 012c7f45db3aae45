"""ConnectWiseClient against pytest-httpx: headers, discovery, paging, retries, error mapping."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from sync.errors import (
    CredentialsError,
    FatalError,
    InsecureUrlError,
    ProtocolError,
    RecordError,
    RetriableError,
    UnreachableError,
)
from sync.providers.connectwise import ConnectWiseClient, Resource
from sync.providers.http import RetryPolicy

SITE = "https://cw.example.com"
API = f"{SITE}/v2025_1/apis/3.0"
PUBLIC_KEY = "PubKey0123456789"
PRIVATE_KEY = "PrivKeyS3cr3tValue"
CLIENT_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
BASIC = "Basic " + base64.b64encode(f"acme+{PUBLIC_KEY}:{PRIVATE_KEY}".encode()).decode()
FORWARD_ONLY = {"pagination-type": "forward-only"}


def records(start: int, count: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"Company {i}"} for i in range(start, start + count)]


def next_link(page_id: int, page_size: int = 1000) -> dict[str, str]:
    url = f"{API}/company/companies?pageSize={page_size}&pageId={page_id}"
    return {"Link": f'<{url}>; rel="next"'}


def assert_no_secrets(error: BaseException) -> None:
    text = str(error)
    for secret in (PRIVATE_KEY, PUBLIC_KEY, BASIC, BASIC.removeprefix("Basic ")):
        assert secret not in text


# -- headers and discovery -----------------------------------------------------------------------


async def test_api_calls_send_basic_auth_client_id_and_pinned_version(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=f"{API}/system/info", json={"version": "v2025.1"})

    await cw.check_connection()

    request = httpx_mock.get_request(url=f"{API}/system/info")
    assert request is not None
    assert request.headers["Authorization"] == BASIC
    assert request.headers["clientId"] == CLIENT_ID
    assert request.headers["Accept"] == "application/vnd.connectwise.com+json; version=2025.1"


async def test_company_info_call_carries_no_credentials(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock
) -> None:
    await cw.connect()

    request = httpx_mock.get_request(url=f"{SITE}/login/companyinfo/acme")
    assert request is not None
    assert "Authorization" not in request.headers
    assert "clientId" not in request.headers


async def test_connect_builds_the_api_base_from_the_codebase(cw: ConnectWiseClient) -> None:
    info = await cw.connect()

    assert info.codebase == "v2025_1/"
    assert info.api_url == API
    assert info.company_name == "Acme MSP"
    assert info.is_cloud is True


async def test_connect_runs_discovery_once(cw: ConnectWiseClient) -> None:
    first = await cw.connect()
    second = await cw.connect()

    assert first is second


@pytest.mark.parametrize("codebase", ["v2025_1", "/v2025_1//", "v2025_1//"])
async def test_codebase_slashes_are_tolerated(
    make_client: Callable[..., ConnectWiseClient], httpx_mock: HTTPXMock, codebase: str
) -> None:
    httpx_mock.add_response(url=f"{SITE}/login/companyinfo/acme", json={"Codebase": codebase})
    httpx_mock.add_response(url=f"{API}/company/companies/7", json={"id": 7})

    record = await make_client().get_company(7)

    assert record == {"id": 7}


async def test_unknown_company_id_is_a_credentials_error(
    make_client: Callable[..., ConnectWiseClient], httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=f"{SITE}/login/companyinfo/acme", content=b"null")

    with pytest.raises(CredentialsError, match="does not know the company id 'acme'"):
        await make_client().connect()


async def test_a_site_that_is_not_connectwise_is_a_protocol_error(
    make_client: Callable[..., ConnectWiseClient], httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=f"{SITE}/login/companyinfo/acme", html="<html>Welcome to nginx</html>"
    )

    with pytest.raises(ProtocolError, match="not JSON"):
        await make_client().connect()


async def test_known_cloud_site_calls_the_api_host(
    make_client: Callable[..., ConnectWiseClient], httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url="https://na.myconnectwise.net/login/companyinfo/acme", json={"Codebase": "v2025_1/"}
    )
    httpx_mock.add_response(
        url="https://api-na.myconnectwise.net/v2025_1/apis/3.0/system/info", json={}
    )

    await make_client(site_url="na.myconnectwise.net").check_connection()


async def test_insecure_site_url_is_refused_before_any_request(
    make_client: Callable[..., ConnectWiseClient],
) -> None:
    client = make_client(site_url="http://cw.example.com")

    with pytest.raises(InsecureUrlError, match="must use https"):
        await client.connect()


async def test_loopback_simulator_is_allowed_for_a_sandbox(
    make_client: Callable[..., ConnectWiseClient], httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url="http://127.0.0.1:8765/login/companyinfo/acme", json={"Codebase": "v4_6_release/"}
    )

    info = await make_client(site_url="http://127.0.0.1:8765", sandbox=True).connect()

    assert info.api_url == "http://127.0.0.1:8765/v4_6_release/apis/3.0"


# -- pagination ----------------------------------------------------------------------------------


async def test_lists_follow_next_links_forward_only_across_three_pages(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock
) -> None:
    base = f"{API}/company/companies"
    httpx_mock.add_response(
        url=f"{base}?pageSize=1000",
        match_headers={**FORWARD_ONLY, "Authorization": BASIC},
        json=records(1, 1000),
        headers=next_link(1000),
    )
    httpx_mock.add_response(
        url=f"{base}?pageSize=1000&pageId=1000",
        match_headers=FORWARD_ONLY,
        json=records(1001, 1000),
        headers=next_link(2000),
    )
    httpx_mock.add_response(
        url=f"{base}?pageSize=1000&pageId=2000",
        match_headers=FORWARD_ONLY,
        json=records(2001, 10),
    )

    pages = [page async for page in cw.companies()]

    assert [len(p) for p in pages] == [1000, 1000, 10]
    assert pages[2][-1]["id"] == 2010


@pytest.mark.usefixtures("company_info")
async def test_listing_stops_on_a_full_page_without_next_link(
    make_client: Callable[..., ConnectWiseClient], httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=f"{API}/company/contacts?pageSize=2", json=records(1, 2))

    pages = [page async for page in make_client(page_size=2).contacts()]

    assert pages == [records(1, 2)]


async def test_listing_stops_on_a_short_page_even_with_a_next_link(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=f"{API}/company/companies?pageSize=1000", json=records(1, 3), headers=next_link(3)
    )

    pages = [page async for page in cw.companies()]

    assert pages == [records(1, 3)]


@pytest.mark.usefixtures("company_info")
async def test_listing_stops_on_an_empty_page_and_yields_nothing_for_it(
    make_client: Callable[..., ConnectWiseClient], httpx_mock: HTTPXMock
) -> None:
    base = f"{API}/company/companies"
    httpx_mock.add_response(
        url=f"{base}?pageSize=2", json=records(1, 2), headers=next_link(2, page_size=2)
    )
    httpx_mock.add_response(
        url=f"{base}?pageSize=2&pageId=2", json=[], headers=next_link(2, page_size=2)
    )

    pages = [page async for page in make_client(page_size=2).companies()]

    assert pages == [records(1, 2)]


@pytest.mark.usefixtures("company_info")
async def test_a_repeated_next_link_is_a_protocol_error(
    make_client: Callable[..., ConnectWiseClient], httpx_mock: HTTPXMock
) -> None:
    base = f"{API}/company/companies"
    httpx_mock.add_response(
        url=f"{base}?pageSize=2", json=records(1, 2), headers=next_link(2, page_size=2)
    )
    httpx_mock.add_response(
        url=f"{base}?pageSize=2&pageId=2", json=records(3, 2), headers=next_link(2, page_size=2)
    )

    pages: list[list[dict[str, Any]]] = []

    async def walk() -> None:
        async for page in make_client(page_size=2).companies():
            pages.append(page)

    with pytest.raises(ProtocolError, match="twice"):
        await walk()
    assert len(pages) == 2


@pytest.mark.usefixtures("company_info")
async def test_a_next_link_back_to_the_first_page_is_a_protocol_error(
    make_client: Callable[..., ConnectWiseClient], httpx_mock: HTTPXMock
) -> None:
    first = f"{API}/company/companies?pageSize=2"
    httpx_mock.add_response(
        url=first, json=records(1, 2), headers={"Link": f'<{first}>; rel="next"'}
    )

    with pytest.raises(ProtocolError):
        async for _ in make_client(page_size=2).companies():
            pass


@pytest.mark.usefixtures("company_info")
async def test_next_links_keep_our_host_path_and_conditions(
    make_client: Callable[..., ConnectWiseClient], httpx_mock: HTTPXMock
) -> None:
    base = f"{API}/company/companies"
    elsewhere = "https://evil.example.net/v4_6_release/apis/3.0/company/companies?pageId=2"
    httpx_mock.add_response(
        url=f"{base}?pageSize=2&conditions=deletedFlag%3Dfalse&fields=id%2Cname",
        json=records(1, 2),
        headers={"Link": f'<{elsewhere}>; rel="next"'},
    )
    httpx_mock.add_response(
        url=f"{base}?pageSize=2&conditions=deletedFlag%3Dfalse&fields=id%2Cname&pageId=2",
        match_headers={"Authorization": BASIC},
        json=records(3, 1),
    )

    client = make_client(page_size=2)
    pages = [p async for p in client.companies("deletedFlag=false", ["id", "name"])]

    assert [len(p) for p in pages] == [2, 1]


async def test_fields_always_include_id_for_forward_only_paging(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=f"{API}/company/configurations?pageSize=1000&fields=id%2Cname", json=[]
    )

    assert [p async for p in cw.configurations(fields=["name"])] == []


async def test_sites_are_listed_under_their_company(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=f"{API}/company/companies/42/sites?pageSize=1000&conditions=inactiveFlag%3Dfalse",
        json=[{"id": 1, "name": "Main"}],
    )

    pages = [p async for p in cw.sites(42, conditions="inactiveFlag=false")]

    assert pages == [[{"id": 1, "name": "Main"}]]


@pytest.mark.usefixtures("company_info")
async def test_reference_lists_join_their_pages(
    make_client: Callable[..., ConnectWiseClient], httpx_mock: HTTPXMock
) -> None:
    base = f"{API}/company/companies/types"
    httpx_mock.add_response(
        url=f"{base}?pageSize=2",
        json=[{"id": 1}, {"id": 2}],
        headers={"Link": f'<{base}?pageSize=2&pageId=2>; rel="next"'},
    )
    httpx_mock.add_response(url=f"{base}?pageSize=2&pageId=2", json=[{"id": 3}])

    types = await make_client(page_size=2).company_types()

    assert types == [{"id": 1}, {"id": 2}, {"id": 3}]


async def test_count_returns_the_integer(cw: ConnectWiseClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{API}/company/contacts/count?conditions=inactiveFlag%3Dfalse", json={"count": 260}
    )

    assert await cw.count(Resource.CONTACTS, "inactiveFlag=false") == 260


async def test_a_list_body_that_is_not_a_list_is_a_protocol_error(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=f"{API}/company/companies?pageSize=1000", json={"id": 1})

    with pytest.raises(ProtocolError, match="other than a list"):
        async for _ in cw.companies():
            pass


# -- retries -------------------------------------------------------------------------------------


async def test_429_is_retried_after_the_retry_after_delay(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock, sleep: Any
) -> None:
    httpx_mock.add_response(
        url=f"{API}/company/companies/5",
        status_code=429,
        headers={"Retry-After": "7"},
        json={"error": "ConnectWiseAPI", "message": "Too many requests."},
    )
    httpx_mock.add_response(url=f"{API}/company/companies/5", json={"id": 5})

    assert await cw.get_company(5) == {"id": 5}
    assert sleep.delays == [7.0]


async def test_503_then_success(cw: ConnectWiseClient, httpx_mock: HTTPXMock, sleep: Any) -> None:
    httpx_mock.add_response(url=f"{API}/company/contacts/9", status_code=503)
    httpx_mock.add_response(url=f"{API}/company/contacts/9", json={"id": 9})

    assert await cw.get_contact(9) == {"id": 9}
    assert len(sleep.delays) == 1


@pytest.mark.usefixtures("company_info")
async def test_exhausted_retries_raise_retriable_error_with_retry_after(
    make_client: Callable[..., ConnectWiseClient], httpx_mock: HTTPXMock, sleep: Any
) -> None:
    for _ in range(3):
        httpx_mock.add_response(
            url=f"{API}/company/companies/5", status_code=429, headers={"Retry-After": "30"}
        )
    client = make_client(retry=RetryPolicy(max_attempts=3))

    with pytest.raises(RetriableError) as caught:
        await client.get_company(5)

    assert caught.value.retry_after == 30.0
    assert sleep.delays == [30.0, 30.0]


async def test_timeouts_are_retried(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock, sleep: Any
) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=f"{API}/company/configurations/3")
    httpx_mock.add_response(url=f"{API}/company/configurations/3", json={"id": 3})

    assert await cw.get_configuration(3) == {"id": 3}
    assert len(sleep.delays) == 1


async def test_500_is_retried_twice_then_retriable_error(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock, sleep: Any
) -> None:
    for _ in range(3):
        httpx_mock.add_response(url=f"{API}/company/companies/5", status_code=500)

    with pytest.raises(RetriableError, match="500"):
        await cw.get_company(5)
    assert len(sleep.delays) == 2


@pytest.mark.usefixtures("company_info")
async def test_connection_failures_end_as_unreachable_error(
    make_client: Callable[..., ConnectWiseClient], httpx_mock: HTTPXMock
) -> None:
    for _ in range(2):
        httpx_mock.add_exception(httpx.ConnectError("refused"), url=f"{API}/system/info")
    client = make_client(retry=RetryPolicy(max_attempts=2))

    with pytest.raises(UnreachableError):
        await client.check_connection()


async def test_a_create_is_not_resent_after_a_timeout(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock, sleep: Any
) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=f"{API}/company/companies")

    with pytest.raises(RetriableError, match="may or may not have been applied"):
        await cw.create(Resource.COMPANIES, {"identifier": "ACME", "name": "Acme"})
    assert sleep.delays == []


# -- error mapping -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_keys_are_a_credentials_error_without_secrets(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock, status: int
) -> None:
    httpx_mock.add_response(
        url=f"{API}/system/info",
        status_code=status,
        # A server that echoes what it got must not get it into our message.
        json={"code": "Unauthorized", "message": f"bad key {PUBLIC_KEY}:{PRIVATE_KEY}"},
    )

    with pytest.raises(CredentialsError) as caught:
        await cw.check_connection()

    assert_no_secrets(caught.value)


async def test_400_is_a_record_error_keeping_errors_verbatim(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock
) -> None:
    errors = [
        {
            "code": "MissingRequiredField",
            "message": "The firstName field is required.",
            "resource": "contact",
            "field": "firstName",
        }
    ]
    httpx_mock.add_response(
        method="POST",
        url=f"{API}/company/contacts",
        status_code=400,
        json={"code": "InvalidObject", "message": "contact object is invalid", "errors": errors},
    )

    with pytest.raises(RecordError) as caught:
        await cw.create(Resource.CONTACTS, {"lastName": "Doe"})

    assert caught.value.status_code == 400
    assert caught.value.psa_code == "InvalidObject"
    assert caught.value.errors == errors
    assert_no_secrets(caught.value)


async def test_404_is_a_record_error(cw: ConnectWiseClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{API}/company/contacts/57919",
        status_code=404,
        json={"code": "NotFound", "message": "Contact 57919 not found", "errors": None},
    )

    with pytest.raises(RecordError, match="Contact 57919 not found") as caught:
        await cw.get_contact(57919)

    assert caught.value.status_code == 404
    assert caught.value.psa_code == "NotFound"
    assert caught.value.errors == []


async def test_a_refused_list_query_is_fatal_not_a_record_error(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=re.compile(rf"{re.escape(API)}/company/companies\?.*"),
        status_code=400,
        json={"code": "InvalidObject", "message": "Expected a boolean value, not a numeric."},
    )

    with pytest.raises(FatalError, match="Expected a boolean value"):
        async for _ in cw.companies("deletedFlag=1"):
            pass


async def test_a_redirect_is_not_followed(cw: ConnectWiseClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{API}/system/info", status_code=302, headers={"Location": "https://elsewhere/"}
    )

    with pytest.raises(ProtocolError, match="redirect"):
        await cw.check_connection()


# -- writes --------------------------------------------------------------------------------------


async def test_create_posts_json_and_returns_the_record(
    cw: ConnectWiseClient, httpx_mock: HTTPXMock
) -> None:
    body = {"identifier": "ACME", "name": "Acme"}
    httpx_mock.add_response(
        method="POST",
        url=f"{API}/company/companies",
        match_json=body,
        status_code=201,
        json={"id": 250, **body},
    )

    assert await cw.create(Resource.COMPANIES, body) == {"id": 250, **body}


async def test_patch_sends_a_json_patch_array(cw: ConnectWiseClient, httpx_mock: HTTPXMock) -> None:
    ops = [{"op": "replace", "path": "name", "value": "Acme Ltd"}]
    httpx_mock.add_response(
        method="PATCH",
        url=f"{API}/company/companies/250",
        match_json=ops,
        json={"id": 250, "name": "Acme Ltd"},
    )

    assert await cw.patch(Resource.COMPANIES, 250, ops) == {"id": 250, "name": "Acme Ltd"}


async def test_delete_accepts_204(cw: ConnectWiseClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="DELETE", url=f"{API}/company/contacts/8", status_code=204)

    await cw.delete(Resource.CONTACTS, 8)


def test_client_repr_shows_no_secrets(make_client: Callable[..., ConnectWiseClient]) -> None:
    text = repr(make_client())

    assert PRIVATE_KEY not in text
    assert PUBLIC_KEY not in text


def test_record_ids_must_be_integers() -> None:
    with pytest.raises(ValueError, match="record ids"):
        Resource.sites("1/../../system")  # type: ignore[arg-type]


async def test_resource_paths_cannot_escape_the_api(
    make_client: Callable[..., ConnectWiseClient],
) -> None:
    # Refused before any request: httpx_mock would fail the test on an unexpected one.
    with pytest.raises(ValueError, match="resource path"):
        await make_client().count("company/../../login")
