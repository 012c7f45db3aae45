"""Fixtures for provider tests: a ConnectWise client over pytest-httpx, no DNS, no waiting.
(`pulseway_contract`, which checks what a test sent to the Pulseway simulator, lives in
tests/conftest.py: the sync tests use it too.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import httpx
import pytest
from pytest_httpx import HTTPXMock

from sync.providers.connectwise import ConnectWiseClient, ConnectWiseCredentials
from sync.providers.http import RetryPolicy
from sync.providers.urls import build_http_client

SITE = "https://cw.example.com"
API = f"{SITE}/v2025_1/apis/3.0"
PUBLIC_KEY = "PubKey0123456789"
PRIVATE_KEY = "PrivKeyS3cr3tValue"
CLIENT_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


class RecordingSleep:
    """Stands in for asyncio.sleep: records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def public_resolver(host: str, port: int) -> list[str]:
    return ["93.184.215.14"]


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with build_http_client() as client:
        yield client


@pytest.fixture
def credentials() -> ConnectWiseCredentials:
    return ConnectWiseCredentials(
        site_url=SITE,
        company_id="acme",
        public_key=PUBLIC_KEY,
        private_key=PRIVATE_KEY,
        client_id=CLIENT_ID,
    )


@pytest.fixture
def make_client(
    http: httpx.AsyncClient, credentials: ConnectWiseCredentials, sleep: RecordingSleep
) -> Callable[..., ConnectWiseClient]:
    def make(site_url: str | None = None, **kwargs: object) -> ConnectWiseClient:
        creds = replace(credentials, site_url=site_url) if site_url else credentials
        options: dict[str, object] = {
            "sleep": sleep,
            "rng": lambda: 0.5,
            "resolver": public_resolver,
            "retry": RetryPolicy(),
        }
        options.update(kwargs)
        return ConnectWiseClient(http, creds, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def cw(make_client: Callable[..., ConnectWiseClient], company_info: None) -> ConnectWiseClient:
    """A client whose codebase discovery is already registered with httpx_mock."""
    return make_client()


@pytest.fixture
def company_info(httpx_mock: HTTPXMock) -> None:
    """Registers the codebase discovery answer (``v2025_1/``)."""
    httpx_mock.add_response(
        method="GET",
        url=f"{SITE}/login/companyinfo/acme",
        json={
            "CompanyName": "Acme MSP",
            "Codebase": "v2025_1/",
            "VersionCode": "v2025.1",
            "VersionNumber": "v4.6.12345",
            "CompanyID": "acme",
            "IsCloud": "True",
        },
    )
