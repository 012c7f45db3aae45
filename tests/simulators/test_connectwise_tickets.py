"""ConnectWise service tickets, boards and members in the simulator: the endpoints answer as
psa-apis.md §1 and §9 describe, conditions, paging and ``/count`` agree, ticket changes fire
``ticket`` callbacks, and a denied area answers 403 while the others keep working."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from simulator_access import AUTHORIZATION, CREDENTIALS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulators.connectwise import (
    ConnectWiseSimulator,
    ConnectWiseStore,
    DatasetSpec,
    generate_dataset,
    serve_in_thread,
)

NINETY_DAYS_BEFORE_UNTIL = "2025-03-03T00:00:00Z"  # DatasetSpec.updated_until minus 90 days


async def listed(api: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def counted(api: httpx.AsyncClient, path: str, **params: Any) -> int:
    response = await api.get(f"{path}/count", params=params)
    assert response.status_code == 200, response.text
    return int(response.json()["count"])


# --------------------------------------------------------------------------------- members


async def test_members_carry_license_class_state_and_email(api: httpx.AsyncClient) -> None:
    members = await listed(api, "system/members", pageSize=100)
    by_identifier = {m["identifier"]: m for m in members}
    assert by_identifier["jsmith"]["officeEmail"] == "jsmith@simulated-msp.example"
    assert by_identifier["dwright"]["inactiveFlag"] is True
    assert by_identifier["sortiz"]["licenseClass"] == "X"
    assert by_identifier["frontdesk"]["licenseClass"] == "C"
    assert by_identifier[CREDENTIALS.member]["licenseClass"] == "A"
    assert {m["licenseClass"] for m in members} == {"F", "A", "C", "X"}


async def test_licensed_active_members_filter_and_count_agree(api: httpx.AsyncClient) -> None:
    conditions = 'inactiveFlag=false and licenseClass!="A"'
    members = await listed(api, "system/members", conditions=conditions, pageSize=100)
    assert members
    assert all(not m["inactiveFlag"] and m["licenseClass"] != "A" for m in members)
    assert "dwright" not in {m["identifier"] for m in members}
    assert await counted(api, "system/members", conditions=conditions) == len(members)
    full = await listed(api, "system/members", conditions='licenseClass in ("F")', pageSize=100)
    assert {m["licenseClass"] for m in full} == {"F"}


# ---------------------------------------------------------------------------------- boards


async def test_boards_list_pages_and_filter(api: httpx.AsyncClient) -> None:
    boards = await listed(api, "service/boards")
    assert {"id", "name", "inactiveFlag", "_info"} <= set(boards[0])
    active = await listed(api, "service/boards", conditions="inactiveFlag=false")
    assert len(active) == len(boards) - 1
    first = await api.get("service/boards", params={"pageSize": 2, "page": 1})
    assert len(first.json()) == 2
    assert 'rel="next"' in first.headers["Link"]
    statuses = await listed(api, "service/boards/1/statuses")
    assert [s["name"] for s in statuses if s["closedStatus"]] == ["Completed", "Closed"]


# --------------------------------------------------------------------------------- tickets


async def test_ticket_has_the_fields_of_the_ticket_feed(api: httpx.AsyncClient) -> None:
    ticket = (await listed(api, "service/tickets", pageSize=1))[0]
    for key in ("id", "summary", "board", "status", "priority", "type", "company", "closedFlag"):
        assert key in ticket, key
    assert set(ticket["board"]) >= {"id", "name", "_info"}
    assert set(ticket["company"]) >= {"id", "identifier", "name"}
    assert ticket["_info"]["lastUpdated"].endswith("Z")
    assert ticket["_info"]["dateEntered"] < ticket["_info"]["lastUpdated"]
    one = await api.get(f"service/tickets/{ticket['id']}")
    assert one.json() == ticket


async def test_ticket_conditions_paging_and_count_agree(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    conditions = (
        f"board/id in (1,2) and closedFlag=false and lastUpdated>[{NINETY_DAYS_BEFORE_UNTIL}]"
    )
    expected = store.find("tickets", conditions)
    assert expected  # the dataset has recent open tickets on those boards
    assert await counted(api, "service/tickets", conditions=conditions) == len(expected)
    pages: list[dict[str, Any]] = []
    for page in (1, 2, 3, 4, 5, 6):
        rows = await listed(
            api, "service/tickets", conditions=conditions, pageSize=2, page=page, orderBy="id desc"
        )
        pages.extend(rows)
    assert [t["id"] for t in pages] == sorted((t["id"] for t in expected), reverse=True)[:12]
    for ticket in pages:
        assert ticket["board"]["id"] in (1, 2)
        assert ticket["closedFlag"] is False
        assert ticket["_info"]["lastUpdated"] > NINETY_DAYS_BEFORE_UNTIL


async def test_dataset_spreads_tickets_over_time_and_state(store: ConnectWiseStore) -> None:
    old = f"lastUpdated<[{NINETY_DAYS_BEFORE_UNTIL}]"
    assert store.count("tickets", f"{old} and closedFlag=false") > 0  # old open tickets
    assert store.count("tickets", f"{old} and closedFlag=true") > 0
    assert store.count("tickets", "closedFlag=true and closedDate=null") == 0
    assert store.count("tickets") == 30  # one per company by default


async def test_fields_selects_parts_of_tickets(api: httpx.AsyncClient) -> None:
    rows = await listed(api, "service/tickets", fields="id,summary,board/name,_info/lastUpdated")
    assert set(rows[0]) == {"id", "summary", "board", "_info"}
    assert set(rows[0]["board"]) == {"name"}
    assert set(rows[0]["_info"]) == {"lastUpdated"}


async def test_ticket_configurations_lists_attached_devices(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    ticket = store.find("tickets")[0]
    company_id = ticket["company"]["id"]
    device = store.find("configurations", f"company/id={company_id}")[0]
    before = await listed(api, f"service/tickets/{ticket['id']}/configurations")
    store.attach_configuration(ticket["id"], device["id"])
    after = await listed(api, f"service/tickets/{ticket['id']}/configurations")
    assert len(after) == len({c["id"] for c in before} | {device["id"]})
    attached = next(c for c in after if c["id"] == device["id"])
    assert attached["name"] == device["name"]
    assert attached["_info"]["configuration_href"].endswith(f"/configurations/{device['id']}")
    missing = await api.get("service/tickets/1/configurations")
    assert missing.status_code == 404
    assert missing.json()["code"] == "NotFound"


async def test_tickets_are_created_changed_and_closed(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    company = store.find("companies")[0]
    created = await api.post(
        "service/tickets",
        json={"summary": "Printer jam", "board": {"id": 1}, "company": {"id": company["id"]}},
    )
    assert created.status_code == 201, created.text
    ticket = created.json()
    assert ticket["status"]["name"] == "New"  # the board's default
    assert ticket["priority"]["name"].startswith("Priority 3")
    assert ticket["closedFlag"] is False
    assert ticket["_info"]["updatedBy"] == CREDENTIALS.member
    closed = await api.patch(
        f"service/tickets/{ticket['id']}",
        json=[{"op": "replace", "path": "status", "value": {"id": 15}}],
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["closedFlag"] is True
    assert closed.json()["closedDate"] == closed.json()["_info"]["lastUpdated"]
    assert closed.json()["closedBy"] == CREDENTIALS.member
    reopened = store.update("tickets", ticket["id"], {"status": {"id": 12}})
    assert reopened["closedFlag"] is False
    assert "closedDate" not in reopened
    wrong_board = await api.patch(
        f"service/tickets/{ticket['id']}",
        json=[{"op": "replace", "path": "status", "value": {"id": 21}}],
    )
    assert wrong_board.status_code == 400
    assert wrong_board.json()["errors"][0]["field"] == "status"


# ----------------------------------------------------------------------- ticket callbacks


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        received.append({"query": dict(request.query_params), **json.loads(await request.body())})
        return Response(status_code=200)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve_in_thread(app) as base_url:
        yield received, f"{base_url}/hook?recordId="


async def test_ticket_changes_fire_ticket_callbacks(
    receiver: tuple[list[dict[str, Any]], str],
) -> None:
    received, hook_url = receiver
    store = generate_dataset(DatasetSpec(companies=5, seed=3))
    simulator = ConnectWiseSimulator(store, credentials=CREDENTIALS)
    headers = {"Authorization": AUTHORIZATION}
    async with (
        serve_in_thread(simulator) as base_url,
        httpx.AsyncClient(base_url=f"{base_url}/v4_6_release/apis/3.0/", headers=headers) as api,
    ):
        entry = {"url": hook_url, "objectId": 1, "type": "Ticket", "level": "owner"}
        assert (await api.post("system/callbacks", json=entry)).status_code == 201
        company_entry = {**entry, "type": "company"}
        assert (await api.post("system/callbacks", json=company_entry)).status_code == 201
        ticket_id = store.find("tickets")[0]["id"]
        store.update("tickets", ticket_id, {"summary": "Changed in the UI"})
        patched = await api.patch(
            f"service/tickets/{ticket_id}",
            json=[{"op": "replace", "path": "status", "value": {"id": 14}}],
        )
        assert patched.status_code == 200
        await simulator.callbacks.drain(10)
    assert [(p["Type"], p["Action"], p["ID"]) for p in received] == [
        ("Ticket", "updated", ticket_id),
        ("Ticket", "updated", ticket_id),
    ]
    assert received[0]["query"]["recordId"] == str(ticket_id)
    entity = json.loads(received[1]["Entity"])
    assert entity["closedFlag"] is True
    assert entity["status"]["name"] == "Completed"


# ------------------------------------------------------------------------ denied areas


async def test_denied_area_answers_403_and_others_still_work(
    api: httpx.AsyncClient, simulator: ConnectWiseSimulator, store: ConnectWiseStore
) -> None:
    control = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=simulator.app), base_url="http://cw.test"
    )
    async with control:
        state = await control.post(
            "/__simulator/faults", json={"deny": {"tickets": "read", "companies": "write"}}
        )
        assert state.status_code == 200
        assert state.json()["denied"] == {"tickets": ["read"], "companies": ["write"]}
        refused = await api.get("service/tickets")
        assert refused.status_code == 403
        body = refused.json()
        assert body["code"] == "Forbidden"
        assert "tickets" in body["message"]
        assert (await api.get("service/tickets/count")).status_code == 403
        ticket_id = store.find("tickets")[0]["id"]
        configurations = await api.get(f"service/tickets/{ticket_id}/configurations")
        assert configurations.status_code == 403
        assert (await api.get("company/companies")).status_code == 200  # read still allowed
        company_id = store.find("companies")[0]["id"]
        rename = [{"op": "replace", "path": "name", "value": "Nope"}]
        write = await api.patch(f"company/companies/{company_id}", json=rename)
        assert write.status_code == 403
        assert "Add/Edit/Delete" in write.json()["message"]
        assert (await api.get("company/contacts")).status_code == 200
        assert (await api.get("service/boards")).status_code == 200

        bad = await control.post("/__simulator/faults", json={"deny": {"invoices": "read"}})
        assert bad.status_code == 400
        assert "invoices" in bad.json()["message"]
        await control.delete("/__simulator/faults")
        assert (await api.get("service/tickets")).status_code == 200


async def test_denials_given_to_the_simulator_apply_from_the_start(store: ConnectWiseStore) -> None:
    simulator = ConnectWiseSimulator(store, credentials=CREDENTIALS, denied={"members": "all"})
    simulator.denials.deny("boards", "read")
    transport = httpx.ASGITransport(app=simulator.app)
    headers = {"Authorization": AUTHORIZATION}
    root = "http://cw.test/v2025_1/apis/3.0/"
    async with httpx.AsyncClient(transport=transport, base_url=root, headers=headers) as api:
        assert (await api.get("system/members")).status_code == 403
        assert (await api.get("service/boards/1/statuses")).status_code == 403
        unauthenticated = await api.get("system/members", headers={"Authorization": "Basic x"})
        assert unauthenticated.status_code == 401  # authentication comes first
        assert (await api.get("service/tickets")).status_code == 200
