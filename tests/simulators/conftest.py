"""Fixtures for the ConnectWise simulator tests: a small generated site and clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from simulator_access import API_ROOT, AUTHORIZATION, CREDENTIALS

from simulators.connectwise import (
    ConnectWiseSimulator,
    ConnectWiseStore,
    DatasetSpec,
    generate_dataset,
)


@pytest.fixture
def store() -> ConnectWiseStore:
    """30 companies with 60 sites, 150 contacts and 150 configurations."""
    return generate_dataset(DatasetSpec(companies=30, seed=11))


@pytest.fixture
def simulator(store: ConnectWiseStore) -> ConnectWiseSimulator:
    return ConnectWiseSimulator(store, credentials=CREDENTIALS)


@pytest.fixture
async def api(simulator: ConnectWiseSimulator) -> AsyncIterator[httpx.AsyncClient]:
    """An authenticated client rooted at the API (``.../apis/3.0/``), in-process."""
    transport = httpx.ASGITransport(app=simulator.app)
    headers = {"Authorization": AUTHORIZATION, "clientId": "test-client-id"}
    async with httpx.AsyncClient(transport=transport, base_url=API_ROOT, headers=headers) as client:
        yield client
