"""The ConnectWise provider's incremental side against pytest-httpx: ``since`` conditions,
fetching by id, id listings for reconciliation, callback registrations, ``updated_by``."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from models.enums import AssetKind, ReferenceKind
from sync.errors import ProtocolError, RecordError
from sync.providers.base import ProviderScope, PsaSubscription
from sync.providers.connectwise import ConnectWiseClient, mapping
from sync.providers.connectwise import provider as provider_module
from sync.providers.connectwise.provider import ConnectWiseProvider

API = "https://cw.example.com/v2025_1/apis/3.0"
ORG, SITE, CONTACT, CONFIG = (
    AssetKind.ORGANIZATION,
    AssetKind.LOCATION,
    AssetKind.CONTACT,
    AssetKind.CONFIGURATION,
)
SCOPE = ProviderScope(
    {
        ReferenceKind.ORGANIZATION_STATUS: frozenset({2, 1}),
        ReferenceKind.CONFIGURATION_TYPE: frozenset({3}),
        ReferenceKind.CONFIGURATION_STATUS: frozenset({1}),
    }
)
# 10:30:15.5 at UTC+2: sent as 08:30:15 UTC (rounded down, never forward).
SINCE = datetime(2025, 3, 1, 10, 30, 15, 500_000, tzinfo=timezone(timedelta(hours=2)))
SINCE_LITERAL = "[2025-03-01T08:30:15Z]"
_IDS = re.compile(r"\bid in \(([^)]*)\)")


@pytest.fixture
def provider(cw: ConnectWiseClient) -> ConnectWiseProvider:
    return ConnectWiseProvider(cw)


def sent(httpx_mock: HTTPXMock, path: str) -> list[httpx.Request]:
    """The API requests made to ``path`` (below apis/3.0/), in order."""
    return [r for r in httpx_mock.get_requests() if r.url.path.endswith(f"/apis/3.0/{path}")]


def ids_in(request: httpx.Request) -> list[int]:
    match = _IDS.search(request.url.params["conditions"])
    assert match is not None
    return [int(i) for i in match.group(1).split(", ")]


def company(psa_id: int, **extra: Any) -> dict[str, Any]:
    return {"id": psa_id, "name": f"Company {psa_id}", **extra}


# -- since ----------------------------------------------------------------------------------------


async def test_organizations_since_lists_changes_whatever_the_scope_after_an_id(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=re.compile(rf"{API}/company/companies\?.*"), json=[company(7)])

    pages = [p async for p in provider.organizations(SCOPE, after=5, since=SINCE)]

    assert [r.psa_id for p in pages for r in p] == [7]
    [request] = sent(httpx_mock, "company/companies")
    # No status filter: a company moved out of scope is a change the engine must see.
    assert request.url.params["conditions"] == (
        f"(deletedFlag = false) and (id > 5) and (lastUpdated >= {SINCE_LITERAL})"
    )


async def test_configurations_since_lists_changes_whatever_the_scope(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=re.compile(rf"{API}/company/configurations\?.*"), json=[])

    assert [p async for p in provider.configurations(SCOPE, since=SINCE)] == []

    [request] = sent(httpx_mock, "company/configurations")
    assert request.url.params["conditions"] == f"lastUpdated >= {SINCE_LITERAL}"


async def test_contacts_since_is_the_only_condition_without_after(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=re.compile(rf"{API}/company/contacts\?.*"), json=[])

    assert [p async for p in provider.contacts(since=SINCE)] == []

    [request] = sent(httpx_mock, "company/contacts")
    assert request.url.params["conditions"] == f"lastUpdated >= {SINCE_LITERAL}"


async def test_contacts_since_combines_with_after(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=re.compile(rf"{API}/company/contacts\?.*"), json=[])

    assert [p async for p in provider.contacts(after=40, since=SINCE)] == []

    [request] = sent(httpx_mock, "company/contacts")
    assert request.url.params["conditions"] == f"(id > 40) and (lastUpdated >= {SINCE_LITERAL})"


async def test_contacts_without_since_or_after_send_no_conditions(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=f"{API}/company/contacts?pageSize=1000", json=[])

    assert [p async for p in provider.contacts()] == []


async def test_locations_since_filters_the_company_sites(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=re.compile(rf"{API}/company/companies/42/sites\?.*"),
        json=[{"id": 3, "name": "HQ", "company": {"id": 42}}],
    )

    pages = [p async for p in provider.locations(42, since=SINCE)]

    assert [(r.psa_id, r.parent_psa_id) for p in pages for r in p] == [(3, 42)]
    [request] = sent(httpx_mock, "company/companies/42/sites")
    assert request.url.params["conditions"] == f"lastUpdated >= {SINCE_LITERAL}"


# -- fetch ----------------------------------------------------------------------------------------


def answer_existing(existing: set[int]) -> Any:
    """A list endpoint holding ``existing`` ids: answers ``id in (…)`` newest first."""

    def respond(request: httpx.Request) -> httpx.Response:
        wanted = [i for i in ids_in(request) if i in existing]
        return httpx.Response(200, json=[company(i) for i in sorted(wanted, reverse=True)])

    return respond


async def test_fetch_asks_for_450_ids_in_three_calls_and_sorts_what_exists(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    existing = set(range(2, 451, 2))  # the odd ids are gone
    httpx_mock.add_callback(
        answer_existing(existing),
        url=re.compile(rf"{API}/company/contacts\?.*"),
        is_reusable=True,
    )
    wanted = [*range(450, 0, -1), 7, 8]  # unordered, with repeats

    records = await provider.fetch(CONTACT, wanted)

    assert [r.psa_id for r in records] == sorted(existing)
    requests = sent(httpx_mock, "company/contacts")
    assert len(requests) == 3
    asked = [ids_in(r) for r in requests]
    assert all(len(batch) <= provider_module.FETCH_BATCH for batch in asked)
    assert sorted(i for batch in asked for i in batch) == list(range(1, 451))
    assert all(r.url.params["conditions"].startswith("id in (") for r in requests)


async def test_fetch_companies_leaves_soft_deleted_ones_out_and_ignores_scope(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_callback(
        answer_existing({5, 9}),
        url=re.compile(rf"{API}/company/companies\?.*"),
        is_reusable=True,
    )

    records = await provider.fetch(ORG, [9, 5, 6])

    assert [r.psa_id for r in records] == [5, 9]
    [request] = sent(httpx_mock, "company/companies")
    assert request.url.params["conditions"] == "(id in (5, 6, 9)) and (deletedFlag = false)"


async def test_fetch_keeps_each_url_short_when_ids_are_long(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_callback(
        answer_existing(set()),
        url=re.compile(rf"{API}/company/configurations\?.*"),
        is_reusable=True,
    )
    wanted = list(range(10_000_000, 10_000_450))

    assert await provider.fetch(CONFIG, wanted) == []

    requests = sent(httpx_mock, "company/configurations")
    assert len(requests) > 3  # 200 eight-digit ids would not fit
    assert all(len(str(r.url)) <= 2000 for r in requests)
    assert sorted(i for r in requests for i in ids_in(r)) == wanted


async def test_fetch_runs_a_few_batches_at_a_time(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    in_flight = peak = 0

    async def respond(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json=[])

    httpx_mock.add_callback(
        respond, url=re.compile(rf"{API}/company/contacts\?.*"), is_reusable=True
    )

    await provider.fetch(CONTACT, range(1, 2001))

    assert len(sent(httpx_mock, "company/contacts")) == 10
    assert 1 < peak <= provider_module.LOOKUP_CONCURRENCY


async def test_fetch_of_no_ids_sends_nothing(make_client: Any) -> None:
    # No response is registered (not even discovery): any request would fail the test.
    assert await ConnectWiseProvider(make_client()).fetch(ORG, []) == []


async def test_fetch_refuses_sites(make_client: Any) -> None:
    with pytest.raises(ValueError, match="through their company"):
        await ConnectWiseProvider(make_client()).fetch(SITE, [1])


# -- record ids -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("company_info")
async def test_record_ids_lists_company_ids_only_with_the_full_sync_conditions(
    make_client: Any, httpx_mock: HTTPXMock
) -> None:
    provider = ConnectWiseProvider(make_client(page_size=2))
    base = f"{API}/company/companies"
    httpx_mock.add_response(
        url=re.compile(rf"{base}\?(?!.*pageId).*"),
        json=[{"id": 1}, {"id": 2}],
        headers={"Link": f'<{base}?pageSize=2&pageId=2>; rel="next"'},
    )
    httpx_mock.add_response(url=re.compile(rf"{base}\?.*pageId=2.*"), json=[{"id": 5}])

    pages = [p async for p in provider.record_ids(ORG, SCOPE)]

    assert pages == [[1, 2], [5]]
    first, second = sent(httpx_mock, "company/companies")
    for request in (first, second):
        assert request.url.params["fields"] == "id"
        assert request.url.params["conditions"] == "(deletedFlag = false) and (status/id in (1, 2))"
    assert second.url.params["pageId"] == "2"


async def test_record_ids_of_configurations_use_the_scope(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=re.compile(rf"{API}/company/configurations\?.*"), json=[{"id": 11}, {"id": 12}]
    )

    assert [p async for p in provider.record_ids(CONFIG, SCOPE)] == [[11, 12]]

    [request] = sent(httpx_mock, "company/configurations")
    assert request.url.params["fields"] == "id"
    assert request.url.params["conditions"] == "(type/id in (3)) and (status/id in (1))"


async def test_record_ids_of_contacts_have_no_conditions(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=f"{API}/company/contacts?pageSize=1000&fields=id", json=[{"id": 4}])

    assert [p async for p in provider.record_ids(CONTACT, SCOPE)] == [[4]]


def test_record_ids_refuses_sites(make_client: Any) -> None:
    with pytest.raises(ValueError, match="per company"):
        ConnectWiseProvider(make_client()).record_ids(SITE, SCOPE)


# -- callbacks ------------------------------------------------------------------------------------

CALLBACKS = f"{API}/system/callbacks"


def callback(psa_id: int, callback_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": psa_id,
        "type": callback_type,
        "url": f"https://hooks.example.com/cw/{psa_id}?recordId=",
        "level": "owner",
        "objectId": 1,
        "inactiveFlag": False,
        **extra,
    }


def test_subscriptions_cover_companies_contacts_and_configurations(make_client: Any) -> None:
    provider = ConnectWiseProvider(make_client())
    assert provider.subscriptions is not None
    assert provider.subscriptions.kinds == frozenset({ORG, CONTACT, CONFIG})


@pytest.mark.usefixtures("company_info")
async def test_subscriptions_list_reads_every_page_and_keeps_our_types(
    make_client: Any, httpx_mock: HTTPXMock
) -> None:
    provider = ConnectWiseProvider(make_client(page_size=3))
    httpx_mock.add_response(
        url=f"{CALLBACKS}?pageSize=3",
        json=[callback(1, "company"), callback(2, "ticket"), callback(3, "Contact")],
        headers={"Link": f'<{CALLBACKS}?pageSize=3&pageId=3>; rel="next"'},
    )
    httpx_mock.add_response(
        url=f"{CALLBACKS}?pageSize=3&pageId=3",
        json=[callback(4, "configuration", inactiveFlag=True)],
    )
    assert provider.subscriptions is not None

    found = await provider.subscriptions.list()

    assert found == [
        PsaSubscription(1, ORG, "https://hooks.example.com/cw/1?recordId=", active=True),
        PsaSubscription(3, CONTACT, "https://hooks.example.com/cw/3?recordId=", active=True),
        PsaSubscription(4, CONFIG, "https://hooks.example.com/cw/4?recordId=", active=False),
    ]


async def test_subscriptions_list_skips_entries_without_an_id_or_url(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=f"{CALLBACKS}?pageSize=1000",
        json=[callback(1, "company", url=None), {"type": "contact", "url": "https://x/"}],
    )
    assert provider.subscriptions is not None

    assert await provider.subscriptions.list() == []


async def test_subscriptions_create_answered_without_an_entry_is_a_protocol_error(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(method="POST", url=CALLBACKS, status_code=201, json={"id": 5})
    assert provider.subscriptions is not None

    with pytest.raises(ProtocolError, match="no usable entry"):
        await provider.subscriptions.create(ORG, "https://hooks.example.com/cw/5?recordId=")


async def test_subscriptions_create_posts_an_owner_level_callback(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    url = "https://hooks.example.com/cw/abc?recordId="
    httpx_mock.add_response(
        method="POST", url=CALLBACKS, status_code=201, json=callback(31, "configuration", url=url)
    )
    assert provider.subscriptions is not None

    created = await provider.subscriptions.create(CONFIG, url)

    assert created == PsaSubscription(31, CONFIG, url, active=True)
    [request] = sent(httpx_mock, "system/callbacks")
    assert request.method == "POST"
    assert json.loads(request.content) == {
        "url": url,
        "objectId": 1,
        "type": "configuration",
        "level": "owner",
        "description": "psasync configuration",
        "inactiveFlag": False,
        "isSelfSuppressedFlag": False,
    }


@pytest.mark.parametrize(("kind", "callback_type"), [(ORG, "company"), (CONTACT, "contact")])
async def test_subscriptions_create_names_the_connectwise_type(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock, kind: AssetKind, callback_type: str
) -> None:
    httpx_mock.add_response(
        method="POST", url=CALLBACKS, status_code=201, json=callback(8, callback_type)
    )
    assert provider.subscriptions is not None

    created = await provider.subscriptions.create(kind, "https://hooks.example.com/cw/8?recordId=")

    assert created.kind is kind
    [request] = sent(httpx_mock, "system/callbacks")
    assert json.loads(request.content)["type"] == callback_type


async def test_subscriptions_create_refuses_sites(make_client: Any) -> None:
    subscriptions = ConnectWiseProvider(make_client()).subscriptions
    assert subscriptions is not None

    with pytest.raises(ValueError, match="no callbacks for location"):
        await subscriptions.create(SITE, "https://hooks.example.com/cw/x?recordId=")


async def test_subscriptions_delete_sends_delete(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(method="DELETE", url=f"{CALLBACKS}/31", status_code=204)
    assert provider.subscriptions is not None

    await provider.subscriptions.delete(31)

    assert [r.method for r in sent(httpx_mock, "system/callbacks/31")] == ["DELETE"]


async def test_subscriptions_delete_of_a_callback_already_gone_succeeds(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        method="DELETE",
        url=f"{CALLBACKS}/31",
        status_code=404,
        json={"code": "NotFound", "message": "CallbackEntry 31 not found"},
    )
    assert provider.subscriptions is not None

    await provider.subscriptions.delete(31)


async def test_subscriptions_delete_refused_otherwise_raises(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        method="DELETE",
        url=f"{CALLBACKS}/31",
        status_code=400,
        json={"code": "InvalidObject", "message": "nope"},
    )
    assert provider.subscriptions is not None

    with pytest.raises(RecordError) as caught:
        await provider.subscriptions.delete(31)
    assert caught.value.status_code == 400


# -- updated_by -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [ORG, SITE, CONTACT, CONFIG])
def test_records_carry_who_last_updated_them(kind: AssetKind) -> None:
    raw = {
        "id": 9,
        "name": "X",
        "firstName": "X",
        "company": {"id": 1},
        "_info": {"lastUpdated": "2025-03-01T08:30:15Z", "updatedBy": "psasync-api"},
    }

    record = mapping.RECORD_MAPS[kind].to_record(raw)

    assert record.updated_by == "psasync-api"
    assert record.updated_at == datetime(2025, 3, 1, 8, 30, 15, tzinfo=UTC)


def test_a_record_without_info_has_no_updater() -> None:
    record = mapping.COMPANY.to_record({"id": 9, "name": "X"})

    assert record.updated_by is None
    assert record.updated_at is None


async def test_deleted_since_lists_the_ids_of_soft_deleted_companies_only(
    provider: ConnectWiseProvider, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=re.compile(rf"{API}/company/companies\?.*"), json=[{"id": 4}, {"id": 9}]
    )

    pages = [p async for p in provider.deleted_since(AssetKind.ORGANIZATION, SINCE)]
    assert pages == [[4, 9]]
    [request] = sent(httpx_mock, "company/companies")
    assert request.url.params["conditions"] == (
        f"(deletedFlag = true) and (lastUpdated >= {SINCE_LITERAL})"
    )
    assert request.url.params["fields"] == "id"
    # Contacts and configurations are deleted outright: nothing to ask.
    before = len(httpx_mock.get_requests())
    assert [p async for p in provider.deleted_since(AssetKind.CONTACT, SINCE)] == []
    assert len(httpx_mock.get_requests()) == before
