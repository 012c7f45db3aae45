"""Shared fixtures: a real database (SQLite, and PostgreSQL when configured) and a real
ConnectWise simulator on a loopback port.

A pytest session runs on one backend: SQLite by default, PostgreSQL with
PSASYNC_TEST_BACKEND=postgres and PSASYNC_TEST_POSTGRES_URL (``make test`` runs the
database tests, marked ``db`` automatically, a second time that way when the URL is set).
Under CI=true an unreachable PostgreSQL fails the session instead of skipping it. Each session
migrates a fresh database of its own and truncates the tables after every test. (One process
cannot switch backends: Tortoise keeps the first backend's SQL dialect on the models.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from harness import ALL_SCOPE, CREDENTIALS, FAST_RETRY, Psa
from pulseway_contract import Recorder
from tortoise import Tortoise
from tortoise.contrib.test import truncate_all_models

from models import Account, Integration
from models.db import migrate, tortoise_config
from models.vault import Vault
from simulators.connectwise import (
    ConnectWiseSimulator,
    DatasetSpec,
    generate_dataset,
    serve_in_thread,
)
from sync.connections import provider_factory
from sync.integrations import add_connectwise
from sync.runner import Worker

POSTGRES_URL = os.environ.get("PSASYNC_TEST_POSTGRES_URL", "").strip()
IN_CI = os.environ.get("CI", "").lower() == "true"
BACKEND = os.environ.get("PSASYNC_TEST_BACKEND", "sqlite").strip().lower()

if BACKEND not in {"sqlite", "postgres"}:
    raise pytest.UsageError(f"PSASYNC_TEST_BACKEND must be sqlite or postgres, not {BACKEND!r}")
if BACKEND == "postgres" and not POSTGRES_URL:
    raise pytest.UsageError("PSASYNC_TEST_BACKEND=postgres needs PSASYNC_TEST_POSTGRES_URL")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "db" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


def pytest_report_header() -> str:
    return f"psasync database backend: {BACKEND}"


async def _postgres_database() -> tuple[str, Callable[[], Awaitable[None]]]:
    """Create a throwaway database on the configured server; return its URL and a dropper."""
    parts = urlsplit(POSTGRES_URL)
    admin = urlunsplit(parts._replace(scheme="postgresql"))
    name = f"psasync_test_{uuid.uuid4().hex[:10]}"
    try:
        conn = await asyncpg.connect(admin, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    return urlunsplit(parts._replace(path=f"/{name}")), drop


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    if BACKEND == "sqlite":
        path = tmp_path_factory.mktemp("db") / "psasync.db"
        url = f"sqlite://{path}?journal_mode=WAL&synchronous=NORMAL&busy_timeout=10000"
        drop = None
    else:
        url, drop = await _postgres_database()
    await migrate(url)
    await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
    try:
        yield url
    finally:
        await Tortoise.close_connections()
        if drop is not None:
            await drop()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[str]:
    """A migrated, empty database; the tables are emptied again after the test."""
    try:
        yield database_url
    finally:
        await truncate_all_models()


@pytest.fixture
def secret_key() -> str:
    return Vault.generate_key()


@pytest.fixture
def vault(secret_key: str) -> Vault:
    return Vault([secret_key])


@pytest.fixture
async def account(db: str) -> Account:
    return await Account.create(name="Acme MSP")


@pytest.fixture
async def psa() -> AsyncIterator[Psa]:
    store = generate_dataset(DatasetSpec(companies=40, seed=11))
    simulator = ConnectWiseSimulator(store, credentials=CREDENTIALS)
    async with serve_in_thread(simulator) as base_url:
        yield Psa(simulator, base_url)


@pytest.fixture
def connect(account: Account, psa: Psa, vault: Vault) -> Callable[..., Awaitable[Integration]]:
    """Set up an integration against the simulator (a first full sync gets queued)."""

    async def connect(**options: Any) -> Integration:
        options.setdefault("enable", ALL_SCOPE)
        integration, _run = await add_connectwise(
            account, psa.credentials(), vault, sandbox=True, **options
        )
        return integration

    return connect


@pytest.fixture
def worker(vault: Vault) -> Worker:
    return Worker(
        provider_factory(vault, retry=FAST_RETRY), schedule=False, retry_delay=timedelta(0)
    )


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings write a secret-key file into the working directory: keep it in tmp."""
    monkeypatch.chdir(tmp_path)
    return


# ------------------------------------------------------------------------ Pulseway contract


@pytest.fixture
def pulseway_contract() -> Recorder:
    """Checks every request the Pulseway simulator receives (and every 200 it answers) against
    the Pulseway OpenAPI document; the test fails at its end listing each violation.

    Serve the simulator through it, in-process or in a thread::

        async with serve_in_thread(pulseway_contract.wrap(sim.app)) as base_url: ...
    """
    return Recorder()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Fail a test that passed but sent (or got) something outside the Pulseway contract."""
    outcome = yield
    funcargs = getattr(item, "funcargs", {})
    recorder = funcargs.get("pulseway_contract")
    if isinstance(recorder, Recorder):
        report = recorder.report()
        if report is not None:
            pytest.fail(report, pytrace=False)
    return outcome
