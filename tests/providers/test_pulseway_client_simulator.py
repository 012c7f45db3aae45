"""The Pulseway PSA client against the Pulseway simulator, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from harness import pulseway_login
from pulseway_contract import Recorder

from simulators.connectwise.server import serve_in_thread
from simulators.pulseway import DatasetSpec, PulsewaySimulator, generate_dataset
from sync.errors import RecordError
from sync.providers.pulseway.client import PulsewayClient
from sync.providers.urls import build_http_client


@pytest.fixture
async def simulator(
    pulseway_contract: Recorder,
) -> AsyncIterator[tuple[PulsewaySimulator, str]]:
    sim = PulsewaySimulator(generate_dataset(DatasetSpec(accounts=12, seed=3)))
    async with serve_in_thread(pulseway_contract.wrap(sim.app)) as base_url:
        yield sim, base_url


@pytest.fixture
async def client(simulator: tuple[PulsewaySimulator, str]) -> AsyncIterator[PulsewayClient]:
    sim, base_url = simulator
    credentials = pulseway_login(sim, base_url)
    async with build_http_client() as http:
        yield PulsewayClient(http, credentials, sandbox=True, page_size=5)


async def test_lists_page_through_everything(
    client: PulsewayClient, simulator: tuple[PulsewaySimulator, str]
) -> None:
    sim, _ = simulator
    await client.check_connection()
    accounts = [a async for page in client.accounts() for a in page]
    contacts = [c async for page in client.contacts() for c in page]
    assets = [a async for page in client.hardware_assets() for a in page]
    assert sorted(a["id"] for a in accounts) == sorted(sim.store.accounts)
    assert sorted(c["id"] for c in contacts) == sorted(sim.store.contacts)
    assert sorted(a["id"] for a in assets) == sorted(sim.store.assets)
    for lookup in (
        client.account_types,
        client.asset_categories,
        client.asset_states,
        client.contact_email_types,
        client.contact_phone_types,
    ):
        assert await lookup()


async def test_modified_since_lists_only_later_changes(
    client: PulsewayClient, simulator: tuple[PulsewaySimulator, str]
) -> None:
    sim, _ = simulator
    account_id = min(sim.store.accounts)
    sim.store.clock.set(sim.store.clock.now() + timedelta(days=1))
    since = sim.store.clock.now()
    sim.store.update("accounts", account_id, accountName="Renamed In Pulseway")

    changed = [a async for page in client.accounts(modified_since=since) for a in page]

    assert [(a["id"], a["accountName"]) for a in changed] == [(account_id, "Renamed In Pulseway")]


async def test_a_refused_write_carries_the_apis_message(client: PulsewayClient) -> None:
    with pytest.raises(RecordError) as refused:
        await client.create_contact({"firstName": "Ada"})
    assert "lastName" in str(refused.value) or "accountId" in str(refused.value)
