"""ConnectWiseSoapClient over pytest-httpx serving ConnectWise's real WSDLs and canned replies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from pytest_httpx import HTTPXMock

from sync.errors import (
    CredentialsError,
    InsecureUrlError,
    PermissionDenied,
    ProtocolError,
    RecordError,
    RetriableError,
    UnreachableError,
)
from sync.providers.connectwise import ConnectWiseCredentials
from sync.providers.connectwise.soap import ConnectWiseSoapClient, clear_wsdl_cache
from sync.providers.http import RetryPolicy, send_guard

# ConnectWise's own WSDLs, read where they are kept (never copied into the project).
WSDL_DIR = Path(__file__).resolve().parents[2].parent / "shared/reference/connectwise-soap"
if not WSDL_DIR.is_dir():
    pytest.skip(f"ConnectWise WSDLs not found in {WSDL_DIR}", allow_module_level=True)

SITE = "https://cw.example.com"
ASMX = f"{SITE}/v4_6_release/apis/2.0/{{}}Api.asmx"
COMPANY_API = ASMX.format("Company")
LOGIN = "psasync-integrator"
PASSWORD = "IntegratorS3cr3t!"
CW = "{http://connectwise.com}"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XML = {"Content-Type": "text/xml; charset=utf-8"}


async def public_resolver(host: str, port: int) -> list[str]:
    return ["93.184.215.14"]


def wsdl(name: str) -> bytes:
    return (WSDL_DIR / f"{name}Api.wsdl").read_bytes()


def envelope(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()


def companies_page(ids: range | list[int]) -> bytes:
    rows = "".join(
        f"<CompanyFindResult><CompanyRecID>{i}</CompanyRecID><CompanyName>Company {i}"
        f"</CompanyName><CompanyID>C{i}</CompanyID></CompanyFindResult>"
        for i in ids
    )
    return envelope(
        '<FindCompaniesResponse xmlns="http://connectwise.com">'
        f"<FindCompaniesResult>{rows}</FindCompaniesResult></FindCompaniesResponse>"
    )


# Every minOccurs=1 element of ContactApi's Contact, in sequence order (zeep reads strictly).
CONTACT = {
    "ContactRecID": 9,
    "Id": 9,
    "FirstName": "Ada",
    "LastName": "Lovelace",
    "Gender": "Unspecified",
    "BirthDay": "1815-12-10T00:00:00",
    "Married": "true",
    "Children": "false",
    "Anniversary": "0001-01-01T00:00:00",
    "CompanyId": "ACME",
    "PortalSecurityLevel": 0,
    "DisablePortalLogin": "false",
    "Inactive": "false",
    "UnsubscribeFlag": "false",
    "LastUpdate": "2026-01-02T03:04:05",
    "PersonalAddressFlag": "false",
}


def contact_xml() -> str:
    return "".join(f"<{name}>{value}</{name}>" for name, value in CONTACT.items())


def contact_record() -> dict[str, Any]:
    """The same contact as a record to send (zeep wants Python values here)."""
    booleans = {k: v == "true" for k, v in CONTACT.items() if v in ("true", "false")}
    dates = {k: datetime.fromisoformat(str(CONTACT[k])) for k in ("BirthDay", "LastUpdate")}
    dates["Anniversary"] = datetime(1, 1, 1)
    return {**CONTACT, **booleans, **dates}


def fault(text: str) -> bytes:
    return envelope(
        f"<soap:Fault><faultcode>soap:Server</faultcode><faultstring>{text}</faultstring>"
        "<detail /></soap:Fault>"
    )


def sent(request: httpx.Request) -> etree._Element:
    """The operation element of a request's SOAP body."""
    root = etree.fromstring(request.content)
    body = root.find(f"{{{SOAP_ENV}}}Body")
    assert body is not None
    return body[0]


def text_of(operation: etree._Element, name: str) -> str | None:
    element = operation.find(f"{CW}{name}")
    assert element is not None, f"{name} was not sent"
    return element.text


@pytest.fixture(autouse=True)
def fresh_wsdl_cache() -> Iterator[None]:
    clear_wsdl_cache()
    yield
    clear_wsdl_cache()


@pytest.fixture
def soap_credentials(credentials: ConnectWiseCredentials) -> ConnectWiseCredentials:
    return replace(credentials, integrator_login_id=LOGIN, integrator_password=PASSWORD)


@pytest.fixture
def make_soap(
    http: httpx.AsyncClient, soap_credentials: ConnectWiseCredentials, sleep: Any
) -> Callable[..., ConnectWiseSoapClient]:
    def make(site_url: str | None = None, **kwargs: Any) -> ConnectWiseSoapClient:
        creds = replace(soap_credentials, site_url=site_url) if site_url else soap_credentials
        options: dict[str, Any] = {"sleep": sleep, "rng": lambda: 0.5, "resolver": public_resolver}
        options.update(kwargs)
        return ConnectWiseSoapClient(http, creds, **options)

    return make


def serve_wsdl(httpx_mock: HTTPXMock, name: str = "Company", site: str = SITE) -> None:
    url = f"{site}/v4_6_release/apis/2.0/{name}Api.asmx?wsdl"
    httpx_mock.add_response(method="GET", url=url, content=wsdl(name), headers=XML)


def reply(httpx_mock: HTTPXMock, content: bytes, status: int = 200, url: str = COMPANY_API) -> None:
    httpx_mock.add_response(
        method="POST", url=url, status_code=status, content=content, headers=XML
    )


async def collect(client: ConnectWiseSoapClient, **kwargs: Any) -> list[list[dict[str, Any]]]:
    return [page async for page in client.find("company", **kwargs)]


# -- what goes on the wire -----------------------------------------------------------------------


async def test_find_sends_soap_action_credentials_limit_and_skip_to_the_sites_own_address(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock)
    reply(httpx_mock, companies_page([7]))

    pages = await collect(make_soap(), conditions="CompanyName like 'A%'", order_by="CompanyName")

    assert pages[0][0]["CompanyRecID"] == 7
    assert pages[0][0]["CompanyName"] == "Company 7"
    request = httpx_mock.get_requests(method="POST")[0]
    # The WSDL names cw.connectwise.net; the call must go to the site instead.
    assert str(request.url) == COMPANY_API
    assert request.headers["SOAPAction"] == '"http://connectwise.com/FindCompanies"'
    operation = sent(request)
    assert operation.tag == f"{CW}FindCompanies"
    credentials = operation.find(f"{CW}credentials")
    assert credentials is not None
    assert text_of(credentials, "CompanyId") == "acme"
    assert text_of(credentials, "IntegratorLoginId") == LOGIN
    assert text_of(credentials, "IntegratorPassword") == PASSWORD
    assert text_of(operation, "conditions") == "CompanyName like 'A%'"
    assert text_of(operation, "orderBy") == "CompanyName"
    assert text_of(operation, "limit") == "500"
    assert text_of(operation, "skip") == "0"


async def test_the_wsdl_is_fetched_once_per_site(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock)
    reply(httpx_mock, companies_page([1]))
    reply(httpx_mock, companies_page([1]))
    reply(httpx_mock, companies_page([1]))

    first = make_soap()
    await collect(first)
    await collect(first)
    await collect(make_soap())  # another client for the same site: the cache is process-wide

    assert len(httpx_mock.get_requests(method="GET")) == 1


async def test_another_site_gets_its_own_wsdl_and_address(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    other = "https://cw.other-msp.example"
    serve_wsdl(httpx_mock)
    serve_wsdl(httpx_mock, site=other)
    reply(httpx_mock, companies_page([1]))
    reply(httpx_mock, companies_page([2]), url=f"{other}/v4_6_release/apis/2.0/CompanyApi.asmx")

    await collect(make_soap())
    pages = await collect(make_soap(other))

    assert pages[0][0]["CompanyRecID"] == 2
    assert len(httpx_mock.get_requests(method="GET")) == 2


async def test_other_operations_send_their_elements_and_return_plain_dicts(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    config_api = ASMX.format("Configuration")
    serve_wsdl(httpx_mock, "Configuration")
    reply(
        httpx_mock,
        envelope(
            '<FindConfigurationsCountResponse xmlns="http://connectwise.com">'
            "<FindConfigurationsCountResult>42</FindConfigurationsCountResult>"
            "</FindConfigurationsCountResponse>"
        ),
        url=config_api,
    )
    reply(
        httpx_mock,
        envelope('<DeleteConfigurationResponse xmlns="http://connectwise.com" />'),
        url=config_api,
    )
    client = make_soap()

    assert await client.count("configuration", "CompanyId = 5") == 42
    assert await client.delete("configuration", 12) is None

    count, delete = (sent(r) for r in httpx_mock.get_requests(method="POST"))
    assert text_of(count, "conditions") == "CompanyId = 5"
    is_open = count.find(f"{CW}isOpen")  # minOccurs=1 nillable: sent as xsi:nil
    assert is_open is not None
    assert text_of(delete, "id") == "12"


async def test_get_returns_the_record_in_soap_field_names(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock, "Contact")
    reply(
        httpx_mock,
        envelope(
            '<GetContactResponse xmlns="http://connectwise.com"><GetContactResult>'
            f"{contact_xml()}</GetContactResult></GetContactResponse>"
        ),
        url=ASMX.format("Contact"),
    )

    record = await make_soap().get("contact", 9)

    assert record is not None
    assert type(record) is dict
    assert (record["Id"], record["FirstName"], record["CompanyId"]) == (9, "Ada", "ACME")
    assert record["Inactive"] is False


async def test_add_or_update_sends_the_record_and_returns_what_was_stored(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock, "Contact")
    reply(
        httpx_mock,
        envelope(
            '<AddOrUpdateContactResponse xmlns="http://connectwise.com"><AddOrUpdateContactResult>'
            f"{contact_xml()}</AddOrUpdateContactResult></AddOrUpdateContactResponse>"
        ),
        url=ASMX.format("Contact"),
    )

    stored = await make_soap().add_or_update("contact", {**contact_record(), "Id": 0})

    operation = sent(httpx_mock.get_requests(method="POST")[0])
    contact = operation.find(f"{CW}contact")
    assert contact is not None
    assert (text_of(contact, "Id"), text_of(contact, "LastName")) == ("0", "Lovelace")
    assert stored is not None
    assert stored["Id"] == 9


async def test_a_record_missing_required_elements_is_refused_before_sending(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock, "Contact")

    with pytest.raises(RecordError, match="was not sent"):
        await make_soap().add_or_update("contact", {"Id": 0, "FirstName": "Ada"})

    assert httpx_mock.get_requests(method="POST") == []


async def test_send_guard_is_awaited_before_the_call(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock)
    calls: list[str] = []

    async def guard() -> None:
        calls.append("guard")

    token = send_guard.set(guard)
    try:
        reply(httpx_mock, companies_page([1]))
        await collect(make_soap())
    finally:
        send_guard.reset(token)

    assert calls == ["guard", "guard"]  # the WSDL GET, then the FindCompanies POST


# -- URL rules -----------------------------------------------------------------------------------


async def test_a_plain_http_site_that_is_not_loopback_is_refused_before_any_request(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    client = make_soap("http://cw.example.com")

    with pytest.raises(InsecureUrlError):
        await collect(client)

    assert httpx_mock.get_requests() == []


async def test_a_loopback_sandbox_may_use_plain_http(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    site = "http://127.0.0.1:8089"
    serve_wsdl(httpx_mock, site=site)
    reply(httpx_mock, companies_page([1]), url=f"{site}/v4_6_release/apis/2.0/CompanyApi.asmx")

    pages = await collect(make_soap(site, sandbox=True))

    assert [[r["CompanyRecID"] for r in page] for page in pages] == [[1]]


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault_text", "error"),
    [
        ("Username or password is incorrect.", CredentialsError),
        ("Cannot find company acme in ConnectWise config.", CredentialsError),
        ("Conditions are invalid: unknown field 'Nope'", RecordError),
    ],
)
async def test_faults_map_to_sync_errors_with_the_fault_text(
    make_soap: Callable[..., ConnectWiseSoapClient],
    httpx_mock: HTTPXMock,
    fault_text: str,
    error: type[Exception],
) -> None:
    serve_wsdl(httpx_mock)
    reply(httpx_mock, fault(fault_text), status=500)

    with pytest.raises(error) as caught:
        await collect(make_soap())

    assert type(caught.value) is error
    assert fault_text in str(caught.value)
    assert len(httpx_mock.get_requests(method="POST")) == 1  # a fault is an answer, not retried


async def test_a_fault_about_permission_is_a_denial_of_the_service_area(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    # ConnectWise's wording is undocumented: any fault naming permission or access maps.
    serve_wsdl(httpx_mock, "Contact")
    text = "The integrator login does not have permission to use this API."
    reply(httpx_mock, fault(text), status=500, url=ASMX.format("Contact"))

    with pytest.raises(PermissionDenied) as caught:
        await make_soap().add_or_update("contact", contact_record())

    assert (caught.value.area, caught.value.access) == ("contacts", "write")
    assert text in caught.value.message


async def test_an_unknown_fault_keeps_its_code_for_the_record_error(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock, "Contact")
    reply(httpx_mock, fault("Email is not valid"), status=500, url=ASMX.format("Contact"))

    with pytest.raises(RecordError) as caught:
        await make_soap().add_or_update("contact", contact_record())

    assert caught.value.errors == [{"code": "soap:Server", "message": "Email is not valid"}]


async def test_http_503_without_a_fault_is_retried_then_retriable(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock, sleep: Any
) -> None:
    serve_wsdl(httpx_mock)
    httpx_mock.add_response(method="POST", url=COMPANY_API, status_code=503, is_reusable=True)

    with pytest.raises(RetriableError) as caught:
        await collect(make_soap(retry=RetryPolicy(max_attempts=3)))

    assert not isinstance(caught.value, UnreachableError)
    assert "503" in str(caught.value)
    assert len(httpx_mock.get_requests(method="POST")) == 3
    assert len(sleep.delays) == 2


async def test_http_500_without_a_fault_is_retriable(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock)
    httpx_mock.add_response(
        method="POST", url=COMPANY_API, status_code=500, text="<html>oops</html>", is_reusable=True
    )

    with pytest.raises(RetriableError):
        await collect(make_soap(retry=RetryPolicy(max_attempts=6, server_error_retries=1)))

    assert len(httpx_mock.get_requests(method="POST")) == 2


async def test_a_timeout_is_retriable(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock)
    httpx_mock.add_exception(
        httpx.ReadTimeout("timed out"), method="POST", url=COMPANY_API, is_reusable=True
    )

    with pytest.raises(RetriableError) as caught:
        await collect(make_soap(retry=RetryPolicy(max_attempts=2)))

    assert "in time" in str(caught.value)
    assert len(httpx_mock.get_requests(method="POST")) == 2


async def test_no_connection_is_unreachable(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), is_reusable=True)

    with pytest.raises(UnreachableError):
        await collect(make_soap(retry=RetryPolicy(max_attempts=2)))


async def test_a_write_that_timed_out_is_not_sent_again(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock)
    httpx_mock.add_exception(httpx.ReadTimeout("timed out"), method="POST", url=COMPANY_API)

    with pytest.raises(RetriableError):
        await make_soap().add("company", {"Id": 0, "CompanyID": "NEW"})

    assert len(httpx_mock.get_requests(method="POST")) == 1


async def test_a_secret_never_appears_in_an_error_or_a_repr(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock)
    reply(httpx_mock, fault(f"Username or password is incorrect ({LOGIN}/{PASSWORD})"), status=500)
    client = make_soap()

    with pytest.raises(CredentialsError) as caught:
        await collect(client)

    for text in (str(caught.value), repr(caught.value), repr(client)):
        assert PASSWORD not in text


async def test_a_missing_integrator_login_fails_before_any_request(
    make_soap: Callable[..., ConnectWiseSoapClient],
    httpx_mock: HTTPXMock,
    credentials: ConnectWiseCredentials,
    http: httpx.AsyncClient,
) -> None:
    client = ConnectWiseSoapClient(http, credentials, resolver=public_resolver)

    with pytest.raises(CredentialsError):
        await collect(client)

    assert httpx_mock.get_requests() == []


# -- paging --------------------------------------------------------------------------------------


async def test_paging_advances_skip_and_stops_on_a_short_page(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock)
    reply(httpx_mock, companies_page([1, 2]))
    reply(httpx_mock, companies_page([3, 4]))
    reply(httpx_mock, companies_page([5]))

    pages = await collect(make_soap(page_size=2))

    assert [[r["CompanyRecID"] for r in page] for page in pages] == [[1, 2], [3, 4], [5]]
    skips = [text_of(sent(r), "skip") for r in httpx_mock.get_requests(method="POST")]
    limits = {text_of(sent(r), "limit") for r in httpx_mock.get_requests(method="POST")}
    assert skips == ["0", "2", "4"]
    assert limits == {"2"}


async def test_an_empty_result_is_no_pages(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock)
    reply(httpx_mock, envelope('<FindCompaniesResponse xmlns="http://connectwise.com" />'))

    assert await collect(make_soap()) == []


async def test_a_page_repeating_the_previous_one_stops_the_walk(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock)
    reply(httpx_mock, companies_page([1, 2]))
    reply(httpx_mock, companies_page([1, 2]))  # a server that ignores skip
    walk = make_soap(page_size=2).find("company")

    first = await anext(walk)
    with pytest.raises(ProtocolError, match="same page twice"):
        await anext(walk)

    assert [r["CompanyRecID"] for r in first] == [1, 2]


async def test_skip_past_the_bound_stops_the_walk(
    make_soap: Callable[..., ConnectWiseSoapClient], httpx_mock: HTTPXMock
) -> None:
    serve_wsdl(httpx_mock)
    reply(httpx_mock, companies_page([1, 2]))
    reply(httpx_mock, companies_page([3, 4]))

    with pytest.raises(ProtocolError, match="went past"):
        await collect(make_soap(page_size=2, max_records=3))


def test_limit_zero_is_refused(
    http: httpx.AsyncClient, soap_credentials: ConnectWiseCredentials
) -> None:
    with pytest.raises(ValueError, match="page_size"):
        ConnectWiseSoapClient(http, soap_credentials, page_size=0)
