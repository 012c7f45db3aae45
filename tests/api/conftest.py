"""GraphQL fixtures: the real app over httpx.ASGITransport, and callers of each role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from harness import GraphQLClient
from starlette.applications import Starlette

from api import access
from api.app import create_app
from api.settings import Settings
from models import Account, Role


@pytest.fixture
def app(db: str, secret_key: str) -> Starlette:
    settings = Settings(
        database_url=db,
        secret_keys=(secret_key,),
        host="127.0.0.1",
        port=0,
        demo="off",
        demo_port=0,
        worker=False,
        log_level="info",
        allow_sandbox=True,  # the simulator is plain http on loopback
    )
    return create_app(settings, manage_database=False)


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://psasync.test") as client:
        yield client


@pytest.fixture
def caller(
    http: httpx.AsyncClient,
) -> Callable[..., Awaitable[GraphQLClient]]:
    """A GraphQL client authenticated as a new user of ``account`` with ``role``."""

    async def make(account: Account, role: Role = Role.ADMINISTRATOR) -> GraphQLClient:
        user = await access.create_user(account, f"{role.value}-{id(account)}@msp.test", role)
        _row, key = await access.issue_key(user)
        return GraphQLClient(http, key)

    return make


@pytest.fixture
async def admin(account: Account, caller: Callable[..., Awaitable[GraphQLClient]]) -> GraphQLClient:
    return await caller(account, Role.ADMINISTRATOR)
