"""Pulseway PSA webhooks: the signature psasync assumes, what a delivery says, and the receiver
storing signed deliveries (and refusing the rest) for a Pulseway integration."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from pulseway_helpers import (
    WEBHOOK_SECRET,
    delivery,
    mounted,
    post,
    pulseway_integration,
    signed,
)

from models import Account, AssetKind, DeliveryStatus, Integration, Provider, WebhookDelivery
from models.vault import Vault
from sync.providers.pulseway.webhooks import PulsewayWebhooks, signature
from webhooks.app import WebhookReceiver, create_app
from webhooks.source import BadPayload, BadSignature, WebhookTarget


def target(secret: str | None = WEBHOOK_SECRET) -> WebhookTarget:
    return WebhookTarget(
        integration_id="0" * 32,
        provider=Provider.PULSEWAY_PSA,
        site_url="https://api.psa.pulseway.com",
        sandbox=False,
        secret=secret,
    )


def digest(body: bytes, secret: str = WEBHOOK_SECRET) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


BODY = json.dumps(delivery()).encode()

# -- the signature ---------------------------------------------------------------------------------


def test_the_signature_is_sha256_and_the_lowercase_hex_hmac_of_the_body() -> None:
    assert signature("s3cret", b'{"id": 1}') == "sha256=" + digest(b'{"id": 1}', "s3cret").hex()


@pytest.mark.parametrize(
    "header",
    [
        "sha256=" + digest(BODY).hex(),
        "SHA256=" + digest(BODY).hex(),
        digest(BODY).hex(),
        digest(BODY).hex().upper(),
        base64.b64encode(digest(BODY)).decode(),
        "  sha256=" + digest(BODY).hex() + " ",
    ],
    ids=["sha256=hex", "SHA256=hex", "hex", "HEX", "base64", "padded"],
)
async def test_a_body_signed_with_the_secret_is_accepted_in_each_form(header: str) -> None:
    await PulsewayWebhooks().verify(target(), {"x-signature": header}, BODY)


@pytest.mark.parametrize(
    "header",
    [
        signature("not-the-secret", BODY),
        "sha256=" + base64.b64encode(digest(BODY)).decode(),  # sha256= announces hex
        "sha1=" + digest(BODY).hex(),
        "sha256=" + digest(BODY).hex()[:-2],
        "sha256=" + hashlib.sha256(BODY).hexdigest(),  # a plain hash, no secret
        "v1," + base64.b64encode(digest(BODY)).decode(),
        "not a signature",
    ],
)
async def test_anything_else_in_the_header_is_refused(header: str) -> None:
    with pytest.raises(BadSignature):
        await PulsewayWebhooks().verify(target(), {"x-signature": header}, BODY)


async def test_a_body_altered_by_one_byte_is_refused() -> None:
    raw, header = signed(delivery(entityId=123))
    altered = raw.replace(b'"entityId": 123', b'"entityId": 124')
    assert len(altered) == len(raw)
    assert altered != raw
    with pytest.raises(BadSignature, match="does not match"):
        await PulsewayWebhooks().verify(target(), {"x-signature": header}, altered)


async def test_a_delivery_without_the_header_is_refused() -> None:
    with pytest.raises(BadSignature, match="x-signature header is missing"):
        await PulsewayWebhooks().verify(target(), {}, BODY)


@pytest.mark.parametrize("secret", [None, ""])
async def test_without_a_webhook_secret_every_delivery_is_refused(secret: str | None) -> None:
    raw, header = signed(delivery())
    with pytest.raises(BadSignature, match="set the integration's webhook secret"):
        await PulsewayWebhooks().verify(target(secret), {"x-signature": header}, raw)


# -- the payload -----------------------------------------------------------------------------------


def test_a_delivery_is_read_as_a_notice() -> None:
    notice = PulsewayWebhooks().parse(
        json.dumps(
            {"id": "d-1", "eventType": "ContactCreated", "entityType": "Contact",
             "entityId": 42, "timestamp": "2026-01-01T00:00:10Z", "modifiedById": 7}
        ).encode()
    )  # fmt: skip
    assert notice.dedupe_key == "d-1"
    assert notice.action == "added"
    assert notice.kind == AssetKind.CONTACT
    assert notice.psa_id == 42
    assert notice.member == "7"  # compared with Integration.psa_member (the API user's id)
    assert notice.stamp == 1767225610


def test_keys_are_read_in_any_case() -> None:
    notice = PulsewayWebhooks().parse(
        json.dumps(
            {"Id": "d-2", "EventType": "HardwareAssetDeleted", "ENTITYTYPE": "HardwareAsset",
             "EntityID": "9", "TimeStamp": "2026-01-01T00:00:10", "ModifiedByID": "3"}
        ).encode()
    )  # fmt: skip
    assert (notice.dedupe_key, notice.action, notice.kind, notice.psa_id, notice.member) == (
        "d-2",
        "deleted",
        AssetKind.CONFIGURATION,
        9,
        "3",
    )
    assert notice.stamp == 1767225610  # no zone: UTC


@pytest.mark.parametrize(
    ("entity_type", "kind"),
    [
        ("Account", AssetKind.ORGANIZATION),
        ("Contact", AssetKind.CONTACT),
        ("HardwareAsset", AssetKind.CONFIGURATION),
        ("Asset", AssetKind.CONFIGURATION),
        ("Location", AssetKind.LOCATION),
        ("AccountLocation", AssetKind.LOCATION),
        ("account", AssetKind.ORGANIZATION),
        ("Ticket", None),
        ("Invoice", None),
    ],
)
def test_entity_types_map_to_asset_kinds_and_others_are_kept_without_one(
    entity_type: str, kind: AssetKind | None
) -> None:
    body = delivery(entityType=entity_type, eventType=f"{entity_type}Updated")
    assert PulsewayWebhooks().parse(json.dumps(body).encode()).kind == kind


def test_without_an_id_the_body_hash_dedupes_and_unreadable_extras_are_dropped() -> None:
    body = json.dumps(
        {"eventType": "AccountUpdated", "entityType": "Account", "entityId": 5,
         "timestamp": "yesterday", "modifiedById": {"id": 7}}
    ).encode()  # fmt: skip
    notice = PulsewayWebhooks().parse(body)
    assert notice.dedupe_key == hashlib.sha256(body).hexdigest()
    assert notice.stamp is None
    assert notice.member is None
    assert notice.action == "updated"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'"a string"',
        b"\xff\xfe",
        json.dumps(delivery(eventType=None)).encode(),
        json.dumps(delivery(eventType="AccountMerged")).encode(),
        json.dumps(delivery(entityType=None)).encode(),
        json.dumps(delivery(entityType="")).encode(),
        json.dumps(delivery(entityId=None)).encode(),
        json.dumps(delivery(entityId="12a")).encode(),
        json.dumps(delivery(entityId=True)).encode(),
        json.dumps(delivery(entityId=0)).encode(),
    ],
)
def test_anything_else_is_a_bad_payload(body: bytes) -> None:
    with pytest.raises(BadPayload):
        PulsewayWebhooks().parse(body)


# -- through the receiver --------------------------------------------------------------------------


@pytest.fixture
async def receiver(db: str, vault: Vault) -> AsyncIterator[WebhookReceiver]:
    app = create_app(vault=vault)
    yield app
    await app.aclose()


@pytest.fixture
async def http(receiver: WebhookReceiver) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=mounted(receiver))
    async with httpx.AsyncClient(transport=transport, base_url="http://psasync.test") as client:
        yield client


async def test_a_signed_delivery_is_stored_pending_with_what_it_says(
    http: httpx.AsyncClient, account: Account, vault: Vault
) -> None:
    integration = await pulseway_integration(account, vault)
    body = delivery(eventType="AccountUpdated", entityType="Account", entityId=123)
    raw, header = signed(body)

    answer = await post(http, integration, raw, header)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "stored"}
    row = await WebhookDelivery.get(integration_id=integration.id)
    assert row.status == DeliveryStatus.PENDING
    assert (row.dedupe_key, row.kind, row.psa_id, row.action, row.member) == (
        body["id"],
        AssetKind.ORGANIZATION,
        123,
        "updated",
        "7",
    )
    assert row.payload == raw.decode()


async def test_a_wrong_signature_is_refused_unstored_and_counted(
    http: httpx.AsyncClient, account: Account, vault: Vault
) -> None:
    integration = await pulseway_integration(account, vault)
    raw, header = signed(delivery(), secret="not-the-secret")

    answer = await post(http, integration, raw, header)

    assert answer.status_code == 401
    assert "does not match" in answer.json()["error"]
    assert await WebhookDelivery.all().count() == 0
    assert (await Integration.get(id=integration.id)).webhook_rejected == 1


async def test_an_integration_without_a_webhook_secret_refuses_deliveries_and_says_why(
    http: httpx.AsyncClient, account: Account, vault: Vault
) -> None:
    integration = await pulseway_integration(account, vault, webhook_secret=None)
    raw, header = signed(delivery())

    answer = await post(http, integration, raw, header)

    assert answer.status_code == 401
    assert "webhook secret" in answer.json()["error"]
    assert WEBHOOK_SECRET not in answer.text
    assert await WebhookDelivery.all().count() == 0


async def test_a_delivery_posted_twice_is_stored_once(
    http: httpx.AsyncClient, account: Account, vault: Vault
) -> None:
    integration = await pulseway_integration(account, vault)
    raw, header = signed(delivery())

    first = await post(http, integration, raw, header)
    again = await post(http, integration, raw, header)

    assert first.json() == {"status": "stored"}
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate"}
    assert await WebhookDelivery.filter(integration_id=integration.id).count() == 1


async def test_a_signed_body_that_is_not_a_delivery_is_a_bad_request(
    http: httpx.AsyncClient, account: Account, vault: Vault
) -> None:
    integration = await pulseway_integration(account, vault)
    raw, header = signed(b'{"hello": "world"}')

    answer = await post(http, integration, raw, header)

    assert answer.status_code == 400
    assert await WebhookDelivery.all().count() == 0


async def test_a_connectwise_path_does_not_reach_a_pulseway_integration(
    http: httpx.AsyncClient, account: Account, vault: Vault
) -> None:
    integration = await pulseway_integration(account, vault)
    raw, header = signed(delivery())

    answer = await http.post(
        f"/webhooks/connectwise/{integration.id}",
        content=raw,
        headers={"content-type": "application/json", "X-Signature": header},
    )

    assert answer.status_code == 404
    assert await WebhookDelivery.all().count() == 0


async def test_a_secret_set_after_a_refusal_is_used_once_the_cache_expires(
    db: str, account: Account, vault: Vault
) -> None:
    app = create_app(vault=vault, integration_ttl=0)  # no caching: the next lookup reads it
    transport = httpx.ASGITransport(app=mounted(app))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://psasync.test") as http:
            integration = await pulseway_integration(account, vault, webhook_secret=None)
            raw, header = signed(delivery())
            assert (await post(http, integration, raw, header)).status_code == 401

            integration.set_credentials(
                vault, {**integration.credentials(vault), "webhook_secret": WEBHOOK_SECRET}
            )
            await integration.save()

            assert (await post(http, integration, raw, header)).status_code == 200
    finally:
        await app.aclose()


async def test_a_receiver_without_the_vault_refuses_pulseway_deliveries(
    db: str, account: Account, vault: Vault
) -> None:
    app = create_app()
    transport = httpx.ASGITransport(app=mounted(app))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://psasync.test") as http:
            integration = await pulseway_integration(account, vault)
            raw, header = signed(delivery())
            answer = await post(http, integration, raw, header)
    finally:
        await app.aclose()
    assert answer.status_code == 401
    assert await WebhookDelivery.all().count() == 0
