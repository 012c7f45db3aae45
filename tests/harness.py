"""Helpers the tests share (conftest.py holds the fixtures)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette

from api.app import create_app
from api.settings import Settings
from models import Integration, ReferenceKind, SyncRun
from simulators.connectwise import (
    ApiCredentials,
    ConnectWiseSimulator,
    DatasetSpec,
    generate_dataset,
)
from simulators.connectwise.server import bind, serve_in_thread
from simulators.pulseway import PulsewaySimulator
from sync import jobs
from sync.providers.connectwise.credentials import ConnectWiseCredentials
from sync.providers.http import RetryPolicy
from sync.providers.pulseway.credentials import PulsewayCredentials
from sync.runner import Worker

# Retries as in production, minus the waiting.
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01, max_retry_after=0.01)
CREDENTIALS = ApiCredentials(company_id="acme", public_key="pub-key", private_key="priv-key")
ALL_SCOPE = {
    ReferenceKind.ORGANIZATION_TYPE: ["Client", "Partner", "Vendor"],
    ReferenceKind.ORGANIZATION_STATUS: ["Active"],
    ReferenceKind.CONFIGURATION_TYPE: ["Managed Server", "Managed Workstation", "Network Device"],
    ReferenceKind.CONFIGURATION_STATUS: ["Active"],
}


class Psa:
    """A running ConnectWise simulator and how to reach it."""

    def __init__(self, simulator: ConnectWiseSimulator, base_url: str) -> None:
        self.simulator = simulator
        self.store = simulator.store
        self.base_url = base_url

    def credentials(self, **changes: Any) -> ConnectWiseCredentials:
        values: dict[str, Any] = {
            "site_url": self.base_url,
            "company_id": CREDENTIALS.company_id,
            "public_key": CREDENTIALS.public_key,
            "private_key": CREDENTIALS.private_key,
            "client_id": "psasync-tests",
        }
        values.update(changes)
        return ConnectWiseCredentials(**values)


async def sync_now(worker: Worker, integration: Integration, *, dry_run: bool = False) -> SyncRun:
    """Queue a manual sync and run the queue dry; return the run as it ended."""
    run = await jobs.manual_sync(integration, dry_run=dry_run)
    await worker.run_until_idle()
    return await SyncRun.get(id=run.id)


class GraphQLClient:
    """Posts GraphQL to the app with an API key; ``data`` fails the test on any error."""

    def __init__(self, http: Any, key: str | None) -> None:
        self.http = http
        self.key = key

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, **headers: str
    ) -> Any:
        sent = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        sent.update(headers)
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=sent
        )

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        return response.json()

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        body = await self.execute(query, variables)
        assert not body.get("errors"), body["errors"]
        return body["data"]


def pulseway_login(simulator: PulsewaySimulator, base_url: str) -> PulsewayCredentials:
    """Credentials the Pulseway simulator at ``base_url`` accepts (its API user)."""
    accepted = simulator.credentials
    return PulsewayCredentials(
        tenant=accepted.tenant,
        user_name=accepted.username,
        password=accepted.password,
        host=base_url,
    )


@asynccontextmanager
async def live_connectwise(spec: DatasetSpec) -> AsyncIterator[Psa]:
    """A ConnectWise simulator on its own thread and port, posting its callbacks for real
    (they need its own lifespan), with ConnectWise's retry waits scaled down."""
    simulator = ConnectWiseSimulator(generate_dataset(spec), credentials=CREDENTIALS)
    simulator.callbacks.retry_scale = 0.01
    async with serve_in_thread(simulator) as base_url:
        yield Psa(simulator, base_url)


@asynccontextmanager
async def served_here(db: str, secret_key: str) -> AsyncIterator[tuple[Starlette, str]]:
    """The psasync service on a loopback port, served in this event loop (it shares the
    test's database connections), the test driving the worker; yields the app and its URL
    (its public URL too: where a simulator posts callbacks)."""
    sock = bind("127.0.0.1", 0)
    host, port = sock.getsockname()[:2]
    base_url = f"http://{host}:{port}"
    settings = Settings(
        database_url=db,
        secret_keys=(secret_key,),
        host="127.0.0.1",
        port=0,
        demo="off",
        demo_port=0,
        worker=False,
        log_level="warning",
        allow_sandbox=True,
        public_url=base_url,
    )
    app = create_app(settings, manage_database=False)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
            assert not task.done(), "the service did not start"
        yield app, base_url
    finally:
        server.should_exit = True
        await task
        sock.close()


T = TypeVar("T")


def runner(loop: asyncio.AbstractEventLoop) -> Callable[[Awaitable[T]], T]:
    """Run a coroutine on ``loop`` (the test's, where the database lives) from Hypothesis'
    thread: Hypothesis' stateful and ``@given`` tests are synchronous."""

    def run(awaitable: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapped(), loop).result()

    return run
