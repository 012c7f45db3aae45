"""Webhook fixtures: the real service app (lifespan run, so the inbox writer stops), a
ConnectWise simulator that also serves a callback signing key, and another loopback host.

The key endpoint is served here, in front of the simulator, so these tests do not depend on
the simulator's own callbacks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from harness import CREDENTIALS, Psa
from starlette.applications import Starlette
from webhook_helpers import KeyServer

from api.app import create_app
from api.settings import Settings
from simulators.connectwise import (
    ConnectWiseSimulator,
    DatasetSpec,
    generate_dataset,
    serve_in_thread,
)


@pytest.fixture
def keys() -> KeyServer:
    return KeyServer()


@pytest.fixture
async def psa(keys: KeyServer) -> AsyncIterator[Psa]:
    """The shared ``psa`` fixture, with the callback key served on the simulator's host."""
    store = generate_dataset(DatasetSpec(companies=5, seed=11))
    simulator = ConnectWiseSimulator(store, credentials=CREDENTIALS)
    keys.inner = simulator.app
    async with serve_in_thread(keys) as base_url:
        yield Psa(simulator, base_url)


@pytest.fixture
async def foreign() -> AsyncIterator[tuple[KeyServer, str]]:
    """Another loopback server (another port: another host as far as the guard goes)."""
    server = KeyServer()
    async with serve_in_thread(server) as base_url:
        yield server, base_url


@pytest.fixture
def service(db: str, secret_key: str) -> Starlette:
    settings = Settings(
        database_url=db,
        secret_keys=(secret_key,),
        host="127.0.0.1",
        port=0,
        demo="off",
        demo_port=0,
        worker=False,
        log_level="info",
        # Off, as by default: sandbox integrations made here still post (issue 15, item 7).
        allow_sandbox=False,
    )
    return create_app(settings, manage_database=False)


@pytest.fixture
async def http(service: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=service)
    async with (
        service.router.lifespan_context(service),
        httpx.AsyncClient(transport=transport, base_url="http://psasync.test") as client,
    ):
        yield client
