"""Near-real-time sync through GraphQL: an integration's webhook status, the inbox of
deliveries, replaying a failed one, and the settings behind them. Rows are written straight
to the database (the receiver and the inbox processor have tests of their own)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harness import GraphQLClient
from starlette.applications import Starlette

from api.app import create_app
from api.graphql.ids import to_global
from api.settings import Settings
from models import (
    Account,
    AssetKind,
    DeliveryStatus,
    Integration,
    IntegrationStatus,
    Provider,
    Role,
    SubscriptionState,
    WebhookDelivery,
    WebhookSubscription,
)
from models.db import count_queries

Caller = Callable[..., Awaitable[GraphQLClient]]
PUBLIC_URL = "https://psasync.example.com"
NOTIFIED = (AssetKind.ORGANIZATION, AssetKind.CONTACT, AssetKind.CONFIGURATION)
_keys = itertools.count()


@pytest.fixture
def public_url() -> str | None:
    return PUBLIC_URL


@pytest.fixture
def app(db: str, secret_key: str, public_url: str | None) -> Starlette:
    settings = Settings(
        database_url=db,
        secret_keys=(secret_key,),
        host="127.0.0.1",
        port=0,
        demo="off",
        demo_port=0,
        worker=False,
        log_level="info",
        public_url=public_url,
    )
    return create_app(settings, manage_database=False)


class InboxBell:
    """Stands in for the worker: records that the inbox was woken."""

    def __init__(self) -> None:
        self.rung = 0

    def wake(self) -> None:
        pass

    def wake_inbox(self) -> None:
        self.rung += 1


async def integration_of(account: Account, name: str = "ConnectWise", **values: Any) -> Integration:
    values.setdefault("status", IntegrationStatus.OK)
    return await Integration.create(
        account=account,
        provider=Provider.CONNECTWISE_MANAGE,
        name=name,
        site_url="https://na.myconnectwise.net",
        credentials_token="not-a-token",
        **values,
    )


async def delivery(
    integration: Integration,
    status: DeliveryStatus = DeliveryStatus.PROCESSED,
    age: timedelta = timedelta(minutes=5),
    **values: Any,
) -> WebhookDelivery:
    values.setdefault("kind", AssetKind.ORGANIZATION)
    values.setdefault("psa_id", 250)
    return await WebhookDelivery.create(
        integration_id=integration.id,
        dedupe_key=f"message-{next(_keys)}",
        received_at=datetime.now(UTC) - age,
        action="updated",
        member="jdoe",
        payload='{"Action": "updated", "Type": "company", "ID": 250}',
        status=status,
        **values,
    )


async def subscribe(
    integration: Integration, state: SubscriptionState = SubscriptionState.REGISTERED, **values: Any
) -> None:
    for number, kind in enumerate(NOTIFIED, start=1):
        await WebhookSubscription.create(
            id=uuid.uuid4(),
            integration_id=integration.id,
            kind=kind,
            psa_id=number if state == SubscriptionState.REGISTERED else None,
            url=f"{PUBLIC_URL}/webhooks/connectwise/{integration.id}?recordId=",
            state=state,
            checked_at=datetime.now(UTC),
            **values,
        )


def gid(type_name: str, local_id: Any) -> str:
    return to_global(type_name, local_id)


WEBHOOKS = """
query($id: ID!) { integration(id: $id) { nearRealTime reconcileIntervalSeconds
  syncIntervalSeconds bookmarks { kind stamp }
  webhooks { receiverUrl registered rejectedSignatures lastRejectedAt lastDeliveryAt
    last24h { pending processed ignored failed }
    subscriptions { kind state psaId lastError checkedAt } } } }"""

DELIVERIES = """
query($id: ID!, $status: WebhookDeliveryStatus, $first: Int, $after: String) {
  webhookDeliveries(integrationId: $id, status: $status, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id receivedAt kind psaId action member status reason attempts nextAttemptAt
            processedAt payload } } }"""

REPLAY = """
mutation($id: ID!) { replayWebhookDelivery(id: $id) {
  delivery { id status attempts nextAttemptAt } errors { code message field requiredRole } } }"""

SETTINGS = """
mutation($input: UpdateSyncSettingsInput!) { updateSyncSettings(input: $input) {
  integration { nearRealTime reconcileIntervalSeconds syncIntervalSeconds
    settings { nearRealTime reconcileIntervalSeconds syncIntervalSeconds } }
  errors { code message field } } }"""


async def webhooks_of(client: GraphQLClient, integration: Integration) -> dict[str, Any]:
    data = await client.data(WEBHOOKS, {"id": gid("Integration", integration.id)})
    return data["integration"]  # type: ignore[no-any-return]


# -- the status ---------------------------------------------------------------------------


async def test_webhooks_count_the_last_24_hours_by_status(
    account: Account, admin: GraphQLClient
) -> None:
    rejected_at = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    integration = await integration_of(
        account, webhook_rejected=3, webhook_last_rejected_at=rejected_at
    )
    await subscribe(integration)
    for status, n in ((DeliveryStatus.PENDING, 2), (DeliveryStatus.PROCESSED, 3),
                      (DeliveryStatus.IGNORED, 1), (DeliveryStatus.FAILED, 1)):  # fmt: skip
        for _ in range(n):
            await delivery(integration, status, age=timedelta(hours=2))
    newest = await delivery(integration, DeliveryStatus.PROCESSED, age=timedelta(seconds=30))
    await delivery(integration, DeliveryStatus.FAILED, age=timedelta(hours=30))  # too old

    found = await webhooks_of(admin, integration)

    webhooks = found["webhooks"]
    assert webhooks["last24h"] == {"pending": 2, "processed": 4, "ignored": 1, "failed": 1}
    assert webhooks["rejectedSignatures"] == 3
    assert datetime.fromisoformat(webhooks["lastRejectedAt"]) == rejected_at
    last = datetime.fromisoformat(webhooks["lastDeliveryAt"])
    assert abs(last - newest.received_at) < timedelta(seconds=1)
    assert webhooks["receiverUrl"] == f"{PUBLIC_URL}/webhooks/connectwise/{integration.id}"
    assert webhooks["registered"] is True
    assert [(s["kind"], s["state"]) for s in webhooks["subscriptions"]] == [
        ("CONFIGURATION", "REGISTERED"), ("CONTACT", "REGISTERED"),
        ("ORGANIZATION", "REGISTERED"),
    ]  # fmt: skip
    assert all(s["psaId"] and s["checkedAt"] for s in webhooks["subscriptions"])
    assert found["nearRealTime"] is True
    assert found["syncIntervalSeconds"] == 900
    assert found["reconcileIntervalSeconds"] == 24 * 3600


async def test_an_integration_without_deliveries_shows_zeros(
    account: Account, admin: GraphQLClient
) -> None:
    integration = await integration_of(account)

    webhooks = (await webhooks_of(admin, integration))["webhooks"]

    assert webhooks["last24h"] == {"pending": 0, "processed": 0, "ignored": 0, "failed": 0}
    assert webhooks["lastDeliveryAt"] is None
    assert webhooks["subscriptions"] == []
    assert webhooks["registered"] is False
    assert webhooks["rejectedSignatures"] == 0


async def test_a_failed_registration_is_not_registered_and_says_why(
    account: Account, admin: GraphQLClient
) -> None:
    integration = await integration_of(account)
    await subscribe(integration, SubscriptionState.FAILED, last_error="ConnectWise said 403")

    webhooks = (await webhooks_of(admin, integration))["webhooks"]

    assert webhooks["registered"] is False
    assert {s["lastError"] for s in webhooks["subscriptions"]} == {"ConnectWise said 403"}
    assert {s["psaId"] for s in webhooks["subscriptions"]} == {None}


async def test_a_paused_integration_does_not_count_as_registered(
    account: Account, admin: GraphQLClient
) -> None:
    integration = await integration_of(account, status=IntegrationStatus.PAUSED)
    await subscribe(integration)

    webhooks = (await webhooks_of(admin, integration))["webhooks"]

    assert webhooks["registered"] is False


@pytest.mark.parametrize("public_url", [None])
async def test_without_a_public_url_there_is_no_receiver(
    account: Account, admin: GraphQLClient
) -> None:
    integration = await integration_of(account)
    await subscribe(integration)  # left from when psasync had one

    webhooks = (await webhooks_of(admin, integration))["webhooks"]

    assert webhooks["receiverUrl"] is None
    assert webhooks["registered"] is False


async def test_bookmarks_are_listed_in_asset_kind_order(
    account: Account, admin: GraphQLClient
) -> None:
    stamp = "2026-06-09T21:59:47+00:00"
    integration = await integration_of(
        account, bookmarks={"configuration": stamp, "organization": stamp, "odd": "x"}
    )

    found = await webhooks_of(admin, integration)

    assert [b["kind"] for b in found["bookmarks"]] == ["ORGANIZATION", "CONFIGURATION"]
    assert datetime.fromisoformat(found["bookmarks"][0]["stamp"]) == datetime.fromisoformat(stamp)


async def test_a_page_of_integrations_with_webhooks_costs_the_same_queries_at_any_size(
    account: Account, admin: GraphQLClient
) -> None:
    query = """{ integrations { name webhooks { receiverUrl registered rejectedSignatures
        lastDeliveryAt last24h { pending failed } subscriptions { kind state } } } }"""
    counts = {}
    for size in (1, 4):
        while len(await Integration.filter(account_id=account.id)) < size:
            integration = await integration_of(account, name=f"PSA {uuid.uuid4().hex[:6]}")
            await subscribe(integration)
            await delivery(integration, DeliveryStatus.FAILED)
            await delivery(integration, DeliveryStatus.PROCESSED)
        await admin.data(query)  # the key's last-used stamp is written once
        with count_queries() as counter:
            data = await admin.data(query)
        assert len(data["integrations"]) == size
        counts[size] = counter.count
    # Authentication, the integrations, their subscriptions, the counts, the last delivery.
    assert set(counts.values()) == {5}, counts
    assert {i["webhooks"]["last24h"]["failed"] for i in data["integrations"]} == {1}
    assert {i["webhooks"]["registered"] for i in data["integrations"]} == {True}


# -- the deliveries -----------------------------------------------------------------------


async def test_deliveries_come_newest_first_filtered_by_status_a_page_at_a_time(
    account: Account, caller: Caller
) -> None:
    viewer = await caller(account, Role.VIEWER)  # any role reads them
    integration = await integration_of(account)
    other = await integration_of(account, name="Another PSA")
    await delivery(other, DeliveryStatus.FAILED)
    failed = []
    for n in range(5):
        failed.append(
            await delivery(
                integration,
                DeliveryStatus.FAILED,
                psa_id=100 + n,
                reason="re-fetching from the PSA failed: 503",
                attempts=2,
                not_before=datetime(2026, 6, 10, 8, n, tzinfo=UTC),
            )
        )
        await delivery(integration, DeliveryStatus.PROCESSED)
    variables = {"id": gid("Integration", integration.id), "status": "FAILED", "first": 2}

    seen = []
    after = None
    while True:
        data = await viewer.data(DELIVERIES, {**variables, "after": after})
        page = data["webhookDeliveries"]
        assert page["totalCount"] == 5
        seen.extend(page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    assert [n["id"] for n in seen] == [gid("WebhookDelivery", d.id) for d in reversed(failed)]
    first = seen[0]
    assert first["status"] == "FAILED"
    assert first["kind"] == "ORGANIZATION"
    assert first["psaId"] == 104
    assert first["action"] == "updated"
    assert first["member"] == "jdoe"
    assert first["reason"] == "re-fetching from the PSA failed: 503"
    assert first["attempts"] == 2
    assert datetime.fromisoformat(first["nextAttemptAt"]) == datetime(2026, 6, 10, 8, 4, tzinfo=UTC)
    assert first["payload"] == '{"Action": "updated", "Type": "company", "ID": 250}'

    everything = await viewer.data(DELIVERIES, {"id": gid("Integration", integration.id)})
    assert everything["webhookDeliveries"]["totalCount"] == 10


async def test_a_delivery_is_a_node(account: Account, admin: GraphQLClient) -> None:
    integration = await integration_of(account)
    found = await delivery(
        integration, DeliveryStatus.IGNORED, reason="echo of psasync's own write"
    )
    query = "query($id: ID!) { node(id: $id) { id ... on WebhookDelivery { status reason } } }"

    data = await admin.data(query, {"id": gid("WebhookDelivery", found.id)})

    assert data["node"] == {
        "id": gid("WebhookDelivery", found.id),
        "status": "IGNORED",
        "reason": "echo of psasync's own write",
    }


async def test_another_accounts_deliveries_are_not_found(account: Account, caller: Caller) -> None:
    integration = await integration_of(account)
    found = await delivery(integration, DeliveryStatus.FAILED)
    stranger = await caller(await Account.create(name="Other MSP"), Role.ADMINISTRATOR)

    body = await stranger.execute(DELIVERIES, {"id": gid("Integration", integration.id)})
    node = await stranger.data(
        "query($id: ID!) { node(id: $id) { id } }", {"id": gid("WebhookDelivery", found.id)}
    )
    replayed = await stranger.data(REPLAY, {"id": gid("WebhookDelivery", found.id)})

    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["extensions"]["field"] == "integrationId"
    assert node["node"] is None
    assert replayed["replayWebhookDelivery"]["errors"][0]["code"] == "NOT_FOUND"
    assert replayed["replayWebhookDelivery"]["errors"][0]["field"] == "id"
    assert (await WebhookDelivery.get(id=found.id)).status == DeliveryStatus.FAILED


# -- replay -------------------------------------------------------------------------------


async def test_a_manager_replays_a_failed_delivery(
    account: Account, caller: Caller, app: Starlette
) -> None:
    bell = InboxBell()
    app.state.worker = bell
    manager = await caller(account, Role.MANAGER)
    integration = await integration_of(account)
    found = await delivery(
        integration,
        DeliveryStatus.FAILED,
        reason="ambiguous match: several local records match",
        attempts=8,
        not_before=datetime.now(UTC) + timedelta(hours=1),
    )

    data = await manager.data(REPLAY, {"id": gid("WebhookDelivery", found.id)})

    payload = data["replayWebhookDelivery"]
    assert payload["errors"] == []
    assert payload["delivery"] == {
        "id": gid("WebhookDelivery", found.id),
        "status": "PENDING",
        "attempts": 0,
        "nextAttemptAt": None,
    }
    stored = await WebhookDelivery.get(id=found.id)
    assert (stored.status, stored.attempts, stored.not_before) == (DeliveryStatus.PENDING, 0, None)
    assert bell.rung == 1


@pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER])
async def test_only_managers_may_replay(account: Account, caller: Caller, role: Role) -> None:
    client = await caller(account, role)
    integration = await integration_of(account)
    found = await delivery(integration, DeliveryStatus.FAILED, attempts=8)

    data = await client.data(REPLAY, {"id": gid("WebhookDelivery", found.id)})

    (error,) = data["replayWebhookDelivery"]["errors"]
    assert error["code"] == "PERMISSION_DENIED"
    assert error["requiredRole"] == "MANAGER"
    assert data["replayWebhookDelivery"]["delivery"] is None
    assert (await WebhookDelivery.get(id=found.id)).status == DeliveryStatus.FAILED


async def test_replaying_a_delivery_that_did_not_fail_names_the_id(
    account: Account, admin: GraphQLClient
) -> None:
    integration = await integration_of(account)
    found = await delivery(integration, DeliveryStatus.PROCESSED, attempts=1)

    data = await admin.data(REPLAY, {"id": gid("WebhookDelivery", found.id)})

    (error,) = data["replayWebhookDelivery"]["errors"]
    assert error["code"] == "NOT_FAILED"
    assert error["field"] == "id"
    assert error["message"] == "only a FAILED delivery can be replayed; this one is PROCESSED"
    stored = await WebhookDelivery.get(id=found.id)
    assert (stored.status, stored.attempts) == (DeliveryStatus.PROCESSED, 1)


async def test_replaying_another_kind_of_id_is_an_invalid_id(
    account: Account, admin: GraphQLClient
) -> None:
    integration = await integration_of(account)

    data = await admin.data(REPLAY, {"id": gid("Integration", integration.id)})

    (error,) = data["replayWebhookDelivery"]["errors"]
    assert (error["code"], error["field"]) == ("INVALID_ID", "id")


# -- settings -----------------------------------------------------------------------------


async def test_sync_settings_set_near_real_time_and_the_reconcile_interval(
    account: Account, admin: GraphQLClient
) -> None:
    integration = await integration_of(account)
    changes = {"nearRealTime": False, "reconcileIntervalSeconds": 7200, "syncIntervalSeconds": 600}

    data = await admin.data(
        SETTINGS, {"input": {"integrationId": gid("Integration", integration.id), **changes}}
    )

    payload = data["updateSyncSettings"]
    assert payload["errors"] == []
    assert payload["integration"]["settings"] == changes
    assert {k: payload["integration"][k] for k in changes} == changes
    stored = await Integration.get(id=integration.id)
    assert (stored.near_real_time, stored.reconcile_interval_seconds) == (False, 7200)
    assert stored.webhooks_due is True  # the worker removes the registrations


async def test_an_out_of_range_reconcile_interval_is_refused_naming_the_field(
    account: Account, admin: GraphQLClient
) -> None:
    integration = await integration_of(account)

    data = await admin.data(
        SETTINGS,
        {"input": {"integrationId": gid("Integration", integration.id),
                   "reconcileIntervalSeconds": 60}},
    )  # fmt: skip

    (error,) = data["updateSyncSettings"]["errors"]
    assert (error["code"], error["field"]) == ("INVALID_INTERVAL", "reconcileIntervalSeconds")
    assert "reconciliation interval" in error["message"]
    stored = await Integration.get(id=integration.id)
    assert stored.reconcile_interval_seconds == 24 * 3600


async def test_new_integrations_poll_every_15_minutes_by_default(admin: GraphQLClient) -> None:
    query = '{ __type(name: "CreateIntegrationInput") { inputFields { name defaultValue } } }'

    data = await admin.data(query)

    fields = {f["name"]: f["defaultValue"] for f in data["__type"]["inputFields"]}
    assert fields["syncIntervalSeconds"] == "900"


async def test_a_delivery_id_beyond_64_bits_is_not_found_rather_than_an_error(
    account: Account, admin: GraphQLClient
) -> None:
    huge = gid("WebhookDelivery", 2**63)

    node = await admin.execute("query($id: ID!) { node(id: $id) { id } }", {"id": huge})
    replayed = await admin.data(REPLAY, {"id": huge})

    assert node.get("errors") is None or all(
        e["extensions"]["code"] != "INTERNAL_SERVER_ERROR" for e in node["errors"]
    )
    assert node["data"]["node"] is None
    (error,) = replayed["replayWebhookDelivery"]["errors"]
    assert error["code"] in ("INVALID_ID", "NOT_FOUND")
    assert error["field"] == "id"
