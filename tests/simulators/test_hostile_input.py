"""A quick property sweep: hostile query parameters and bodies never make a simulator answer 500.

For the routes psasync uses, any query string or body gets an answer below 500 in the PSA's
error shape: ConnectWise's ``{"code", "message"}`` or Pulseway's ``{success: false, error}``.
Example counts are small: this guards against regressions, it is not a fuzzing campaign.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simulator_access import API_ROOT, AUTHORIZATION, CREDENTIALS

from simulators.connectwise import ConnectWiseSimulator, DatasetSpec, generate_dataset
from simulators.pulseway import ApiCredentials, PulsewaySimulator
from simulators.pulseway import DatasetSpec as PulsewayDatasetSpec
from simulators.pulseway import generate_dataset as generate_pulseway_dataset

SWEEP = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

# Text a URL can carry (no lone surrogates: httpx cannot encode them), NULs included.
TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
GRAMMAR = st.sampled_from(
    [
        "id",
        "name",
        "company/id",
        "types/id",
        "lastUpdated",
        "_info/lastUpdated",
        "caption",
        "value",
        "=",
        "!=",
        "<",
        ">=",
        " and ",
        " OR ",
        " not ",
        " like ",
        " contains ",
        " in ",
        "(",
        ")",
        ",",
        '"x"',
        "'y'",
        "[2024-01-01T00:00:00Z]",
        "[0999-01-01]",
        "[0001-01-01T00:00:00+05:00]",
        "[",
        "]",
        "null",
        "true",
        "-1.5",
        "9" * 5000,
        "\x00",
        "é",
        " asc",
        " desc",
        "/",
    ]
)
# Conditions-like text: mostly near-valid token soup, sometimes anything at all.
CONDITION_TEXT = st.one_of(st.lists(GRAMMAR, max_size=8).map("".join), TEXT)
NUMBER_TEXT = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["", " ", "1e3", "0x10", "9" * 5000, "1.5", "-0", "\x00", "٣"]),
    TEXT,
)

CW_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "conditions": CONDITION_TEXT,
        "childConditions": CONDITION_TEXT,
        "customFieldConditions": CONDITION_TEXT,
        "orderBy": CONDITION_TEXT,
        "fields": CONDITION_TEXT,
        "page": NUMBER_TEXT,
        "pageSize": NUMBER_TEXT,
        "pageId": NUMBER_TEXT,
    },
)
CW_LISTS = st.sampled_from(
    [
        "company/companies",
        "company/companies/count",
        "company/companies/250/sites",
        "company/contacts",
        "company/contacts/count",
        "company/configurations",
        "company/configurations/count",
        "company/companies/types",
        "company/companies/statuses",
        "company/configurations/types",
        "system/members",
        "system/callbacks",
    ]
)

# JSON values, with the awkward corners: NULs, huge and non-finite-looking numbers, nesting.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)


def company_like(value: Any) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"identifier": st.just("Fuzz"), "name": st.just("Fuzz"), "addressLine1": st.just("1 St")}
    ).map(lambda base: {**base, **value})


RAW_BODIES = st.one_of(
    st.sampled_from(
        [
            b"",
            b"null",
            b"[" * 50_000,
            b'{"a":' * 50_000,
            b"1" * 5000,
            b"1e999",
            b"NaN",
            b"-Infinity",
            b'"\\ud800"',
            b'{"name":"\\udc00"}',
            b'{"name":"\x00"}',
            b'{"name":"\\u0000"}',
            b"\xff\xfe\x00",
            b'{"identifier":' + b"9" * 5000 + b"}",
            b'[{"op":"replace","path":"name","value":"\\ud83d"}]',
        ]
    ),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(
            [
                "identifier",
                "name",
                "customFields",
                "types",
                "status",
                "dateAcquired",
                "annualRevenue",
                "numberOfEmployees",
                "site",
                "communicationItems",
            ]
        ),
        JSON_VALUES,
        max_size=4,
    )
    .flatmap(company_like)
    .map(lambda v: json.dumps(v).encode()),
    st.lists(
        st.fixed_dictionaries(
            {"op": st.sampled_from(["add", "replace", "remove", "move", "x"]), "path": TEXT},
            optional={"value": JSON_VALUES},
        ),
        max_size=3,
    ).map(lambda v: json.dumps(v).encode()),
)


def cw_client() -> httpx.AsyncClient:
    store = generate_dataset(DatasetSpec(companies=2, seed=3))
    simulator = ConnectWiseSimulator(store, credentials=CREDENTIALS)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=simulator.app),
        base_url=API_ROOT,
        headers={"Authorization": AUTHORIZATION},
    )


def connectwise_error(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body["code"], str), body
        assert isinstance(body["message"], str), body


@SWEEP
@given(path=CW_LISTS, params=CW_PARAMS, forward_only=st.booleans())
async def test_connectwise_list_parameters_never_answer_500(
    path: str, params: dict[str, str], forward_only: bool
) -> None:
    headers = {"pagination-type": "forward-only"} if forward_only else {}
    async with cw_client() as client:
        connectwise_error(await client.get(path, params=params, headers=headers))


@SWEEP
@given(
    target=st.sampled_from(
        [
            ("POST", "company/companies"),
            ("PUT", "company/companies/250"),
            ("PATCH", "company/companies/250"),
            ("POST", "company/companies/250/sites"),
            ("POST", "company/contacts"),
            ("PATCH", "company/contacts/2000"),
            ("POST", "company/configurations"),
            ("PUT", "company/configurations/5000"),
            ("POST", "system/callbacks"),
        ]
    ),
    body=RAW_BODIES,
)
async def test_connectwise_bodies_never_answer_500(target: tuple[str, str], body: bytes) -> None:
    method, path = target
    async with cw_client() as client:
        headers = {"content-type": "application/json"}
        connectwise_error(await client.request(method, path, content=body, headers=headers))


# ----------------------------------------------------------------------------- Pulseway

PW_BASE = "http://psa.test"
PW_PARAMS = st.dictionaries(
    st.sampled_from(
        [
            "PageNumber",
            "PageSize",
            "Sort",
            "Exclude",
            "Filter.AccountName",
            "Filter.AccountId",
            "Filter.AccountTypeId",
            "Filter.IsActive",
            "Filter.ModifiedOnFrom",
            "Filter.ModifiedOnTo",
            "Filter.CreatedOnFrom",
            "Filter.ContactId",
            "Filter.CategoryIds",
            "Filter.SerialNumber",
            "Filter.IPAddress",
        ]
    ),
    st.one_of(NUMBER_TEXT, TEXT, st.sampled_from(["0999-01-01", "0001-01-01T00:00:00+05:00"])),
    max_size=5,
)


def pw_client() -> httpx.AsyncClient:
    store = generate_pulseway_dataset(PulsewayDatasetSpec(accounts=2, seed=3))
    credentials = ApiCredentials(tenant=store.tenant, username="api.user", password="s3cret")
    simulator = PulsewaySimulator(store, credentials=credentials)
    token = simulator.issue_token()
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=simulator.app),
        base_url=PW_BASE,
        headers={"Authorization": f"Bearer {token}"},
    )


def pulseway_error(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code >= 400 or not body.get("success", True):
        assert body["success"] is False, body
        assert isinstance(body["error"]["code"], int), body
        assert isinstance(body["error"]["message"], str), body


@SWEEP
@given(
    path=st.sampled_from(
        [
            "/v2/crm/accounts/summary",
            "/v2/crm/contacts/summary",
            "/v2/crm/contacts/search",
            "/v2/servicedesk/hardwareasset/searchselect",
            "/v2/hr/employees/lookup",
        ]
    ),
    params=PW_PARAMS,
)
async def test_pulseway_query_parameters_never_answer_500(
    path: str, params: dict[str, str]
) -> None:
    async with pw_client() as client:
        pulseway_error(await client.get(path, params=params))


@SWEEP
@given(
    target=st.sampled_from(
        [
            ("POST", "/v2/crm/accounts"),
            ("PUT", "/v2/crm/accounts/1"),
            ("PATCH", "/v2/crm/accounts/1"),
            ("POST", "/v2/crm/contacts/summary"),
            ("PUT", "/v2/crm/contacts/1"),
            ("PATCH", "/v2/crm/contacts/1"),
            ("PATCH", "/v2/crm/contacts/1/emails"),
            ("POST", "/v2/servicedesk/hardwareasset"),
            ("PUT", "/v2/servicedesk/hardwareasset/1"),
        ]
    ),
    body=RAW_BODIES,
)
async def test_pulseway_bodies_never_answer_500(target: tuple[str, str], body: bytes) -> None:
    method, path = target
    async with pw_client() as client:
        headers = {"content-type": "application/json"}
        pulseway_error(await client.request(method, path, content=body, headers=headers))


@SWEEP
@given(
    path=st.sampled_from(["/v2/security/authenticate", "/v2/security/refreshtoken"]),
    body=st.one_of(RAW_BODIES, st.binary(max_size=200)),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "multipart/form-data; boundary=x",
            "application/json",
            "",
        ]
    ),
)
async def test_pulseway_authentication_bodies_never_answer_500(
    path: str, body: bytes, content_type: str
) -> None:
    async with pw_client() as client:
        headers = {"content-type": content_type}
        pulseway_error(await client.post(path, content=body, headers=headers))
