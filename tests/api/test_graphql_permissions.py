"""What a user sees of the PSA's permissions and of recommended options: ``integration.
permissions`` after a setup whose API user lacks an area (ConnectWise and Pulseway PSA), a
setup refused naming the core area, and every sync-settings list recommended first, in
GraphQL and the CLI. Real HTTP to the simulators (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from harness import CREDENTIALS, GraphQLClient, Psa
from pulseway_contract import Recorder
from test_cli_connectwise_setup import _psasync

from models import Account, Integration, Provider, ReferenceKind
from simulators.pulseway import (
    ApiCredentials,
    DatasetSpec,
    PulsewaySimulator,
    generate_dataset,
    serve_in_thread,
)
from sync.connections import connector

Caller = Callable[..., Awaitable[GraphQLClient]]
LOGIN = ApiCredentials(tenant="acme", username="psasync.api", password="api-password")

CREATE = """
mutation($input: CreateIntegrationInput!) {
  createIntegration(input: $input) {
    integration {
      id
      permissions { area access allowed message required }
      permissionsCheckedAt
      settings {
        organizationTypes { name recommended syncState }
        configurationTypes { name recommended syncState }
      }
    }
    errors { code message field area }
  }
}"""


def connectwise_input(psa: Psa) -> dict[str, Any]:
    return {
        "provider": "CONNECTWISE_MANAGE",
        "name": "ConnectWise",
        "sandbox": True,
        "connectwise": {
            "siteUrl": psa.base_url,
            "companyId": CREDENTIALS.company_id,
            "publicKey": CREDENTIALS.public_key,
            "privateKey": CREDENTIALS.private_key,
            "clientId": "psasync-tests",
        },
    }


def pulseway_input(base_url: str) -> dict[str, Any]:
    return {
        "provider": "PULSEWAY_PSA",
        "name": "Pulseway PSA",
        "sandbox": True,
        "pulseway": {
            "tenant": LOGIN.tenant,
            "userName": LOGIN.username,
            "password": LOGIN.password,
            "host": base_url,
        },
    }


@pytest.fixture
async def pulseway() -> AsyncIterator[tuple[PulsewaySimulator, str]]:
    # Not through the contract recorder: a denied area answers 403, which the published
    # document (200s only) does not describe.
    simulator = PulsewaySimulator(
        generate_dataset(DatasetSpec(accounts=2, seed=3)), credentials=LOGIN, calls_per_hour=0
    )
    try:
        async with serve_in_thread(simulator.app) as base_url:
            yield simulator, base_url
    finally:
        simulator.webhooks.close()


async def create(client: GraphQLClient, values: dict[str, Any]) -> dict[str, Any]:
    data = await client.data(CREATE, {"input": values})
    return data["createIntegration"]  # type: ignore[no-any-return]


def denials(integration: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["area"], p["access"]) for p in integration["permissions"] if not p["allowed"]]


async def test_connectwise_setup_without_configurations_read_warns_and_creates(
    admin: GraphQLClient, psa: Psa
) -> None:
    psa.simulator.denials.deny("configurations", "read")

    created = await create(admin, connectwise_input(psa))

    assert created["errors"] == []
    integration = created["integration"]
    assert denials(integration) == [("configurations", "READ")]
    first = integration["permissions"][0]  # denials first
    assert first["area"] == "configurations"
    assert "security role" in first["message"]
    assert first["required"] is False
    assert {p["area"] for p in integration["permissions"] if p["allowed"]} >= {
        "companies",
        "contacts",
    }
    assert integration["permissionsCheckedAt"] is not None
    assert integration["settings"]["configurationTypes"] == []  # not readable: not offered


async def test_connectwise_setup_without_companies_read_is_refused_naming_the_area(
    admin: GraphQLClient, psa: Psa
) -> None:
    psa.simulator.denials.deny("companies", "all")

    created = await create(admin, connectwise_input(psa))

    assert created["integration"] is None
    [error] = created["errors"]
    assert (error["code"], error["area"]) == ("PSA_ACCESS_DENIED", "companies")
    assert "companies" in error["message"]
    assert not await Integration.exists()


async def test_pulseway_setup_without_assets_read_warns_and_creates(
    admin: GraphQLClient, pulseway: tuple[PulsewaySimulator, str]
) -> None:
    simulator, base_url = pulseway
    simulator.denials.deny("assets", "read")

    created = await create(admin, pulseway_input(base_url))

    assert created["errors"] == []
    assert denials(created["integration"]) == [("assets", "READ")]


async def test_pulseway_setup_without_accounts_read_is_refused_naming_the_area(
    admin: GraphQLClient, pulseway: tuple[PulsewaySimulator, str]
) -> None:
    simulator, base_url = pulseway
    simulator.denials.deny("accounts", "read")

    created = await create(admin, pulseway_input(base_url))

    assert created["integration"] is None
    [error] = created["errors"]
    assert (error["code"], error["area"]) == ("PSA_ACCESS_DENIED", "accounts")
    assert not await Integration.exists()


async def test_pulseway_setup_with_every_area_allowed_reports_no_denial(
    admin: GraphQLClient, pulseway_contract: Recorder
) -> None:
    simulator = PulsewaySimulator(
        generate_dataset(DatasetSpec(accounts=2, seed=3)), credentials=LOGIN, calls_per_hour=0
    )
    try:
        async with serve_in_thread(pulseway_contract.wrap(simulator.app)) as base_url:
            created = await create(admin, pulseway_input(base_url))
    finally:
        simulator.webhooks.close()

    assert created["errors"] == []
    permissions = created["integration"]["permissions"]
    assert denials(created["integration"]) == []
    assert {p["area"] for p in permissions} == {
        "accounts",
        "contacts",
        "assets",
        "employees",
        "queues",
        "tickets",
    }


def recommended_first(values: list[dict[str, Any]], recommended: set[str]) -> None:
    names = [v["name"] for v in values]
    marked = [v["name"] for v in values if v["recommended"]]
    assert set(marked) == {n for n in names if n.casefold() in recommended}
    assert names[: len(marked)] == marked  # the recommended ones lead
    assert marked == sorted(marked, key=str.casefold)
    rest = names[len(marked) :]
    assert rest == sorted(rest, key=str.casefold)


async def test_sync_settings_lists_show_recommended_options_first(
    admin: GraphQLClient, psa: Psa
) -> None:
    created = await create(admin, connectwise_input(psa))

    settings = created["integration"]["settings"]
    wanted = connector(Provider.CONNECTWISE_MANAGE).recommended
    for field, kind in (
        ("organizationTypes", ReferenceKind.ORGANIZATION_TYPE),
        ("configurationTypes", ReferenceKind.CONFIGURATION_TYPE),
    ):
        values = settings[field]
        recommended = {n.casefold() for n in wanted[kind]}
        assert any(v["recommended"] for v in values)
        assert any(not v["recommended"] for v in values)
        recommended_first(values, recommended)
    [client] = [v for v in settings["organizationTypes"] if v["recommended"]]
    assert (client["name"], client["syncState"]) == ("Client", "ENABLED")


async def test_cli_shows_recommended_first_and_a_denied_area_in_status(
    db: str, account: Account, psa: Psa, tmp_path: Path
) -> None:
    psa.simulator.denials.deny("contacts", "read")
    add = [
        "integrations", "add", "connectwise", "--sandbox",
        "--site", psa.base_url,
        "--company-id", CREDENTIALS.company_id,
        "--client-id", "cli-test",
        "--public-key", CREDENTIALS.public_key,
        "--private-key", CREDENTIALS.private_key,
    ]  # fmt: skip
    code, out = _psasync(db, tmp_path, *add)
    assert code == 0, out
    assert "permission denied: read contacts" in out

    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "configuration types:" in line)
    values = []
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        _state, rest = line.split(maxsplit=1)
        values.append({"name": rest.removesuffix(" *"), "recommended": rest.endswith(" *")})
    wanted = connector(Provider.CONNECTWISE_MANAGE).recommended
    recommended = {n.casefold() for n in wanted[ReferenceKind.CONFIGURATION_TYPE]}
    assert any(v["recommended"] for v in values)
    recommended_first(values, recommended)

    code, status = _psasync(db, tmp_path, "status")
    assert code == 0, status
    assert "permission denied: read contacts" in status

    code, refused = _psasync(db, tmp_path, "integrations", "settings", "ConnectWise Manage")
    assert code == 0, refused
    assert "configuration types:" in refused
