"""Connecting Pulseway PSA through GraphQL, by role: "You must have Manager or Administrator
access" (the Pulseway two-way sync article). Viewers and editors are refused and nothing is
created; a manager connects, two-way sync on by default; Sync Settings are a manager's too.
The simulator runs on a loopback port, every request checked against the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from harness import GraphQLClient
from pulseway_contract import Recorder

from models import Account, Integration, Provider, Role, SyncRun
from simulators.pulseway import (
    ApiCredentials,
    DatasetSpec,
    PulsewaySimulator,
    generate_dataset,
    serve_in_thread,
)

Caller = Callable[..., Awaitable[GraphQLClient]]
LOGIN = ApiCredentials(tenant="acme", username="psasync.api", password="api-password")

CREATE = """
mutation($input: CreateIntegrationInput!) {
  createIntegration(input: $input) {
    integration { id name provider status api apiNotice settings { twoWayEnabled } }
    run { id status trigger }
    errors { code message field requiredRole }
  }
}"""

SETTINGS = """
mutation($input: UpdateSyncSettingsInput!) {
  updateSyncSettings(input: $input) {
    integration { settings { twoWayEnabled } }
    queuedRun { id }
    errors { code message field requiredRole }
  }
}"""

SHOWN = """
query($id: ID!) { integration(id: $id) { settings { twoWayEnabled } } }"""


@pytest.fixture
async def pulseway_url(pulseway_contract: Recorder) -> AsyncIterator[str]:
    simulator = PulsewaySimulator(
        generate_dataset(DatasetSpec(accounts=2, seed=3)), credentials=LOGIN, calls_per_hour=0
    )
    try:
        async with serve_in_thread(pulseway_contract.wrap(simulator.app)) as base_url:
            yield base_url
    finally:
        simulator.webhooks.close()


def pulseway_input(base_url: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "provider": "PULSEWAY_PSA",
        "name": "Pulseway PSA",
        "sandbox": True,
        "pulseway": {
            "tenant": LOGIN.tenant,
            "userName": LOGIN.username,
            "password": LOGIN.password,
            "host": base_url,
            "webhookSecret": "whsec-graphql-tests",
        },
    }
    values.update(changes)
    return values


async def create(client: GraphQLClient, values: dict[str, Any]) -> dict[str, Any]:
    data = await client.data(CREATE, {"input": values})
    return data["createIntegration"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
async def test_a_viewer_or_editor_cannot_connect_pulseway(
    account: Account, caller: Caller, pulseway_url: str, role: Role
) -> None:
    client = await caller(account, role)
    created = await create(client, pulseway_input(pulseway_url))
    assert created["integration"] is None
    assert [(e["code"], e["requiredRole"]) for e in created["errors"]] == [
        ("PERMISSION_DENIED", "MANAGER")
    ]
    assert not await Integration.exists()
    assert not await SyncRun.exists()


async def test_a_manager_connects_pulseway_with_two_way_on(
    account: Account, caller: Caller, pulseway_url: str
) -> None:
    manager = await caller(account, Role.MANAGER)
    created = await create(manager, pulseway_input(pulseway_url))
    assert created["errors"] == []
    integration = created["integration"]
    assert integration["provider"] == "PULSEWAY_PSA"
    assert (integration["api"], integration["apiNotice"]) == (None, None)  # ConnectWise's only
    assert integration["settings"]["twoWayEnabled"] is True  # the article's default
    assert (created["run"]["status"], created["run"]["trigger"]) == ("QUEUED", "SETUP")
    shown = await manager.data(SHOWN, {"id": integration["id"]})
    assert shown["integration"]["settings"]["twoWayEnabled"] is True
    row = await Integration.get()
    assert row.two_way_enabled
    assert row.provider == Provider.PULSEWAY_PSA


async def test_sync_settings_are_refused_to_a_non_manager(
    account: Account, caller: Caller, pulseway_url: str
) -> None:
    manager = await caller(account, Role.MANAGER)
    created = await create(manager, pulseway_input(pulseway_url))
    integration_id = created["integration"]["id"]
    runs = await SyncRun.all().count()

    for role in (Role.EDITOR, Role.VIEWER):
        client = await caller(account, role)
        data = await client.data(
            SETTINGS, {"input": {"integrationId": integration_id, "twoWayEnabled": False}}
        )
        refused = data["updateSyncSettings"]
        assert refused["integration"] is None
        assert [(e["code"], e["requiredRole"]) for e in refused["errors"]] == [
            ("PERMISSION_DENIED", "MANAGER")
        ]
    assert (await Integration.get()).two_way_enabled
    assert await SyncRun.all().count() == runs

    data = await manager.data(
        SETTINGS, {"input": {"integrationId": integration_id, "twoWayEnabled": False}}
    )
    assert data["updateSyncSettings"]["errors"] == []
    assert data["updateSyncSettings"]["integration"]["settings"]["twoWayEnabled"] is False


async def test_pulseway_with_connectwise_credentials_names_the_pulseway_field(
    account: Account, caller: Caller, pulseway_url: str
) -> None:
    admin = await caller(account, Role.ADMINISTRATOR)
    values = pulseway_input(pulseway_url)
    del values["pulseway"]
    values["connectwise"] = {
        "siteUrl": pulseway_url,
        "companyId": "acme",
        "publicKey": "pub",
        "privateKey": "priv",
        "clientId": "psasync-tests",
    }
    created = await create(admin, values)
    assert created["integration"] is None
    [error] = created["errors"]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", "pulseway")
    assert not await Integration.exists()


PSA_USERS = """
query($id: ID!) { integration(id: $id) { psaUsers { psaId name email existingUser selected } } }"""


async def test_pulseway_lists_its_active_employees_to_invite_but_not_its_own_login(
    admin: GraphQLClient, pulseway_url: str
) -> None:
    created = await create(admin, pulseway_input(pulseway_url))
    assert created["errors"] == []
    data = await admin.data(PSA_USERS, {"id": created["integration"]["id"]})
    users = data["integration"]["psaUsers"]
    assert users
    assert all(u["selected"] and not u["existingUser"] for u in users)
    assert LOGIN.username not in {(u["email"] or "").split("@")[0] for u in users}
    assert len({u["psaId"] for u in users}) == len(users)
