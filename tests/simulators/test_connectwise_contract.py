"""Contract: pyconnectwise, whose pydantic models are generated from ConnectWise's OpenAPI
document, talks to the simulator over real loopback HTTP and parses every response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from pyconnectwise import ConnectWiseManageAPIClient
from pyconnectwise.exceptions import MalformedRequestException, NotFoundException, ObjectExistsError
from simulator_access import CREDENTIALS

from simulators.connectwise import (
    ConnectWiseSimulator,
    ConnectWiseStore,
    DatasetSpec,
    generate_dataset,
    serve_in_thread,
)

T = TypeVar("T")
CLIENT_ID = "7c1b7f0e-contract-test"


class LoopbackManageClient(ConnectWiseManageAPIClient):  # type: ignore[misc]
    """pyconnectwise hard-codes ``https://``; the simulator speaks plain HTTP on loopback.

    Only the scheme differs: paths, headers and bodies are pyconnectwise's own.
    """

    def _get_url(self) -> str:
        return "http" + str(super()._get_url()).removeprefix("https")

    def _try_get_codebase_from_api(
        self, manage_url: str, company_name: str, headers: dict[str, str]
    ) -> str | None:
        url = f"http://{manage_url}/login/companyinfo/{company_name}"
        codebase = self._make_request("GET", url, headers=headers).json().get("Codebase")
        return str(codebase) if codebase else None


@dataclass
class Site:
    store: ConnectWiseStore
    simulator: ConnectWiseSimulator
    client: Any

    async def call(self, work: Callable[[Any], T]) -> T:
        """Run blocking pyconnectwise calls off the event loop."""
        return await asyncio.to_thread(work, self.client)


@pytest.fixture(scope="module")
async def site() -> AsyncIterator[Site]:
    store = generate_dataset(DatasetSpec(companies=12, seed=21))
    simulator = ConnectWiseSimulator(store, credentials=CREDENTIALS)
    async with serve_in_thread(simulator) as base_url:
        client = await asyncio.to_thread(
            LoopbackManageClient,
            CREDENTIALS.company_id,
            base_url.removeprefix("http://"),
            CLIENT_ID,
            CREDENTIALS.public_key,
            CREDENTIALS.private_key,
        )
        yield Site(store, simulator, client)


async def test_client_discovers_the_codebase_and_sends_its_client_id(site: Site) -> None:
    info = await site.call(lambda cw: cw.system.info.get())
    assert site.client.codebase == "v2025_1/"
    assert info.is_cloud is True
    assert site.simulator.traffic.last_client_id == CLIENT_ID


async def test_paginated_iteration_walks_every_page(site: Site) -> None:
    companies = await site.call(lambda cw: list(cw.company.companies.paginated(1, 5).all()))
    assert [c.id for c in companies] == [c["id"] for c in site.store.find("companies")]
    assert all(c.identifier and c.name and c.types and c.site for c in companies)

    conditions = {"conditions": "inactiveFlag = false", "orderBy": "lastName asc"}
    contacts = await site.call(
        lambda cw: list(cw.company.contacts.paginated(1, 7, conditions).all())
    )
    expected = site.store.find("contacts", "inactiveFlag = false")
    assert sorted(c.id for c in contacts) == sorted(c["id"] for c in expected)
    assert len(contacts) > 14  # several pages
    assert [c.last_name.casefold() for c in contacts] == sorted(
        c.last_name.casefold() for c in contacts
    )

    configurations = await site.call(
        lambda cw: list(cw.company.configurations.paginated(1, 25).all())
    )
    assert len(configurations) == 60

    company_id = companies[0].id
    sites = await site.call(
        lambda cw: list(cw.company.companies.id(company_id).sites.paginated(1, 1).all())
    )
    assert {s.id for s in sites} == {
        s["id"] for s in site.store.find("sites", parent_id=company_id)
    }


async def test_records_fetched_by_id_parse_into_connectwise_models(site: Site) -> None:
    configuration = site.store.find("configurations", "contact/id != null")[0]
    company_id, contact_id = configuration["company"]["id"], configuration["contact"]["id"]
    site_id = site.store.get("companies", company_id)["site"]["id"]  # type: ignore[index]

    def fetch(cw: Any) -> tuple[Any, Any, Any, Any]:
        return (
            cw.company.companies.id(company_id).get(),
            cw.company.companies.id(company_id).sites.id(site_id).get(),
            cw.company.contacts.id(contact_id).get(),
            cw.company.configurations.id(configuration["id"]).get(),
        )

    company, primary_site, contact, device = await site.call(fetch)
    assert company.site.id == primary_site.id
    assert primary_site.primary_address_flag is True
    assert primary_site.state_reference.identifier
    assert primary_site.company.identifier == company.identifier
    assert contact.communication_items[0].communication_type == "Email"
    assert contact.communication_items[0].type.name == "Email"
    assert device.contact.id == contact_id
    assert device.installed_by.identifier
    assert device.warranty_expiration_date > device.installation_date
    assert device.info["lastUpdated"].endswith("Z")


async def test_conditions_and_counts_through_pyconnectwise(site: Site) -> None:
    conditions = 'status/name = "Active" and types/name = "Client"'

    def query(cw: Any) -> tuple[Any, Any]:
        params = {"conditions": conditions, "pageSize": 100}
        return cw.company.companies.get(params=params), cw.company.companies.count.get(
            params={"conditions": conditions}
        )

    companies, count = await site.call(query)
    assert {c.id for c in companies} == {c["id"] for c in site.store.find("companies", conditions)}
    assert count.count == len(companies)


async def test_reference_lists_parse(site: Site) -> None:
    def read(cw: Any) -> dict[str, list[Any]]:
        return {
            "company types": cw.company.companies.types.get(),
            "company statuses": cw.company.companies.statuses.get(),
            "configuration types": cw.company.configurations.types.get(),
            "configuration statuses": cw.company.configurations.statuses.get(),
            "contact types": cw.company.contacts.types.get(),
            "members": cw.system.members.get(),
        }

    lists = await site.call(read)
    assert [t.name for t in lists["company types"]] == [
        "Client",
        "Prospect",
        "Vendor",
        "Partner",
        "Competitor",
    ]
    assert "Not-Approved" in [s.name for s in lists["company statuses"]]
    assert len(lists["configuration types"]) == 6
    retired = next(s for s in lists["configuration statuses"] if s.description == "Retired")
    assert retired.closed_flag is True
    assert {t.description for t in lists["contact types"]} >= {"Owner", "Technical", "Billing"}
    api_member = next(m for m in lists["members"] if m.identifier == CREDENTIALS.member)
    assert api_member.license_class == "A"


async def test_writes_round_trip_through_pyconnectwise(site: Site) -> None:
    def write(cw: Any) -> tuple[Any, ...]:
        company = cw.company.companies.post(
            data={
                "identifier": "ContractCo",
                "name": "Contract Co",
                "addressLine1": "9 Test Ave",
                "city": "Austin",
                "state": "TX",
                "typeIds": [1],
            }
        )
        renamed = cw.company.companies.id(company.id).patch(
            [{"op": "replace", "path": "name", "value": "Contract Company"}]
        )
        branch = cw.company.companies.id(company.id).sites.post(
            data={"name": "Branch", "city": "Dallas", "stateReference": {"identifier": "TX"}}
        )
        contact = cw.company.contacts.post(
            data={
                "firstName": "Casey",
                "lastName": "Contract",
                "company": {"id": company.id},
                "site": {"id": branch.id},
                "communicationItems": [
                    {"type": {"id": 1}, "value": "casey@contract.example", "defaultFlag": True}
                ],
            }
        )
        device = cw.company.configurations.post(
            data={
                "name": "CONTRACT-WS1",
                "type": {"id": 2},
                "company": {"identifier": "ContractCo"},
                "contact": {"id": contact.id},
                "macAddress": "00:1A:2B:3C:4D:5E",
                "installationDate": "2024-02-03T04:05:06Z",
            }
        )
        return company, renamed, branch, contact, device, cw.company.companies.id(company.id).get()

    company, renamed, branch, contact, device, fetched = await site.call(write)
    assert company.site.name == "Main"
    assert renamed.name == fetched.name == "Contract Company"
    assert branch.company.id == company.id
    assert contact.communication_items[0].domain == "@contract.example"
    assert device.company.name == "Contract Company"
    assert device.status.name == "Active"
    assert device.info["updatedBy"] == CREDENTIALS.member


async def test_connectwise_errors_map_to_pyconnectwise_exceptions(site: Site) -> None:
    existing = site.store.find("companies")[1]

    def duplicate(cw: Any) -> None:
        cw.company.companies.post(
            data={"identifier": existing["identifier"], "name": "Copy", "city": "Tampa"}
        )

    def change_types(cw: Any) -> None:
        cw.company.companies.id(existing["id"]).patch(
            [{"op": "replace", "path": "types", "value": [{"id": 5}]}]
        )

    def read_deleted(cw: Any) -> None:
        cw.company.companies.id(existing["id"]).delete()
        cw.company.companies.id(existing["id"]).get()

    with pytest.raises(ObjectExistsError):
        await site.call(duplicate)
    with pytest.raises(MalformedRequestException):
        await site.call(change_types)
    with pytest.raises(NotFoundException):
        await site.call(read_deleted)


async def test_service_tickets_boards_and_members_parse(site: Site) -> None:
    ticket = site.store.find("tickets", "closedFlag = true")[0]
    configuration = site.store.find("configurations", f"company/id = {ticket['company']['id']}")
    site.store.attach_configuration(ticket["id"], configuration[0]["id"])

    def read(cw: Any) -> tuple[Any, ...]:
        conditions = {"conditions": "board/id in (1,2,3) and closedFlag = true", "pageSize": 5}
        return (
            list(cw.service.tickets.paginated(1, 5, conditions).all()),
            cw.service.tickets.count.get(params={"conditions": conditions["conditions"]}),
            cw.service.tickets.id(ticket["id"]).get(),
            cw.service.tickets.id(ticket["id"]).configurations.get(),
            cw.service.boards.get(),
            cw.system.members.get(params={"conditions": "inactiveFlag = false", "pageSize": 100}),
        )

    tickets, count, one, devices, boards, members = await site.call(read)
    assert count.count == len(tickets) > 0
    assert all(t.closed_flag for t in tickets)
    assert one.summary == ticket["summary"]
    assert one.board.id == ticket["board"]["id"]
    assert one.status.name in ("Completed", "Closed")
    assert one.company.identifier == ticket["company"]["identifier"]
    assert one.closed_date is not None
    assert one.info["lastUpdated"].endswith("Z")
    assert configuration[0]["id"] in [d.id for d in devices]
    assert "Service Desk" in [b.name for b in boards]
    assert {m.license_class for m in members} >= {"F", "A", "X"}
