"""The webhook receiver through the real service app: signatures, refusals, the inbox."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
from harness import Psa
from starlette.applications import Starlette
from webhook_helpers import KeyServer, callback, key_url, post, signed

from models import AssetKind, DeliveryStatus, Integration, WebhookDelivery

Connect = Callable[..., Awaitable[Integration]]


async def rejected(integration: Integration) -> int:
    fresh = await Integration.get(id=integration.id)
    return fresh.webhook_rejected


# -- signatures ------------------------------------------------------------------------------------


async def test_a_signed_callback_is_stored_pending_with_what_it_says(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, keys: KeyServer
) -> None:
    integration = await connect()
    body = callback(psa.base_url, MemberId="jdoe", Type="company", ID=250)
    raw, signature = signed(body)

    answer = await post(http, integration, raw, signature)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "stored"}
    row = await WebhookDelivery.get(integration_id=integration.id)
    assert row.status == DeliveryStatus.PENDING
    assert row.dedupe_key == body["MessageId"]
    assert (row.kind, row.psa_id, row.action, row.member) == (
        AssetKind.ORGANIZATION,
        250,
        "updated",
        "jdoe",
    )
    assert row.stamp == int(datetime(2026, 6, 9, 21, 59, 47, tzinfo=UTC).timestamp())
    assert row.payload == raw.decode()
    assert row.attempts == 0
    assert len(keys.key_requests) == 1


async def test_the_signing_key_is_fetched_once_per_key_url(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, keys: KeyServer
) -> None:
    integration = await connect()
    for kind in ("contact", "configuration", "ticket"):
        raw, signature = signed(callback(psa.base_url, Type=kind, Action="added", Entity=None))
        answer = await post(http, integration, raw, signature)
        assert answer.status_code == 200, answer.text
    rows = await WebhookDelivery.filter(integration_id=integration.id).order_by("id")
    assert [r.kind for r in rows] == [AssetKind.CONTACT, AssetKind.CONFIGURATION, None]
    assert all(r.stamp is None and r.action == "added" for r in rows)
    assert len(keys.key_requests) == 1


async def test_a_wrong_key_is_refused_unstored_and_counted(
    http: httpx.AsyncClient, connect: Connect, psa: Psa
) -> None:
    integration = await connect()
    raw, signature = signed(callback(psa.base_url), signing_key="not-the-key")

    answer = await post(http, integration, raw, signature)

    assert answer.status_code == 401
    assert "does not match" in answer.json()["error"]
    assert await WebhookDelivery.all().count() == 0
    fresh = await Integration.get(id=integration.id)
    assert fresh.webhook_rejected == 1
    assert fresh.webhook_last_rejected_at is not None


async def test_a_body_altered_by_one_byte_is_refused(
    http: httpx.AsyncClient, connect: Connect, psa: Psa
) -> None:
    integration = await connect()
    raw, signature = signed(callback(psa.base_url, ID=250))
    altered = raw.replace(b'"ID": 250', b'"ID": 251')
    assert len(altered) == len(raw)
    assert altered != raw

    answer = await post(http, integration, altered, signature)

    assert answer.status_code == 401
    assert await WebhookDelivery.all().count() == 0
    assert await rejected(integration) == 1


async def test_a_callback_without_the_signature_header_is_refused(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, keys: KeyServer
) -> None:
    integration = await connect()
    raw, _ = signed(callback(psa.base_url))

    answer = await post(http, integration, raw, None)

    assert answer.status_code == 401
    assert "x-content-signature" in answer.json()["error"]
    assert await WebhookDelivery.all().count() == 0
    assert await rejected(integration) == 1
    assert keys.key_requests == []


async def test_a_key_url_on_a_foreign_host_is_refused_and_never_fetched(
    http: httpx.AsyncClient,
    connect: Connect,
    psa: Psa,
    keys: KeyServer,
    foreign: tuple[KeyServer, str],
) -> None:
    integration = await connect()
    recorder, foreign_url = foreign
    # Signed with the key the foreign host would serve: only fetching it would pass.
    raw, signature = signed(callback(psa.base_url, Metadata={"key_url": key_url(foreign_url)}))

    answer = await post(http, integration, raw, signature)

    assert answer.status_code == 401
    assert "not fetched" in answer.json()["error"]
    assert recorder.requests == []
    assert keys.key_requests == []
    assert await WebhookDelivery.all().count() == 0
    assert await rejected(integration) == 1


async def test_another_companys_key_on_the_same_host_is_refused_and_never_fetched(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, keys: KeyServer
) -> None:
    """A shared cloud host serves every tenant's keys: a rival tenant signs a forgery with its
    own callback key, served under its own company name. The host alone would let it verify."""
    integration = await connect()
    rival = key_url(psa.base_url).replace("companyName=", "companyName=rival")
    raw, signature = signed(callback(psa.base_url, Metadata={"key_url": rival}))

    answer = await post(http, integration, raw, signature)

    assert answer.status_code == 401
    assert "another ConnectWise company" in answer.json()["error"]
    assert keys.key_requests == []
    assert await WebhookDelivery.all().count() == 0
    assert await rejected(integration) == 1


async def test_a_plain_http_key_url_is_not_fetched_for_a_non_sandbox_integration(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, keys: KeyServer
) -> None:
    integration = await connect()
    await Integration.filter(id=integration.id).update(sandbox=False)
    raw, signature = signed(callback(psa.base_url))  # http://127.0.0.1:port/…

    answer = await post(http, integration, raw, signature)

    assert answer.status_code == 401
    assert "https" in answer.json()["error"]
    assert keys.key_requests == []
    assert await WebhookDelivery.all().count() == 0


async def test_a_key_that_cannot_be_fetched_leaves_the_callback_unverified(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, keys: KeyServer
) -> None:
    integration = await connect()
    keys.status = 500
    raw, signature = signed(callback(psa.base_url))

    answer = await post(http, integration, raw, signature)

    assert answer.status_code == 401
    assert "could not be fetched" in answer.json()["error"]
    assert await WebhookDelivery.all().count() == 0


async def test_a_rotated_key_is_fetched_again_but_bad_signatures_do_not_flood_the_psa(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, keys: KeyServer, service: Starlette
) -> None:
    integration = await connect()
    raw, signature = signed(callback(psa.base_url))
    assert (await post(http, integration, raw, signature)).status_code == 200
    assert len(keys.key_requests) == 1

    # Within the refetch interval a mismatch does not fetch again, however many arrive.
    forged = [signed(callback(psa.base_url), signing_key="forged") for _ in range(20)]
    answers = await asyncio.gather(*(post(http, integration, r, s) for r, s in forged))
    assert {a.status_code for a in answers} == {401}
    assert len(keys.key_requests) == 1

    # Past it, a mismatch refetches once: a rotated key is picked up.
    source = service.state.webhooks.sources[integration.provider]
    source.refetch_interval = 0.0
    keys.signing_key = "rotated-key"
    raw, signature = signed(callback(psa.base_url), signing_key="rotated-key")
    answer = await post(http, integration, raw, signature)
    assert answer.status_code == 200, answer.text
    assert len(keys.key_requests) == 2


async def test_a_replayed_message_is_answered_twice_and_stored_once(
    http: httpx.AsyncClient, connect: Connect, psa: Psa
) -> None:
    integration = await connect()
    raw, signature = signed(callback(psa.base_url))

    first = await post(http, integration, raw, signature)
    again = await post(http, integration, raw, signature)

    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json(), again.json()) == ({"status": "stored"}, {"status": "duplicate"})
    assert await WebhookDelivery.filter(integration_id=integration.id).count() == 1


async def test_without_a_message_id_the_body_hash_dedupes(
    http: httpx.AsyncClient, connect: Connect, psa: Psa
) -> None:
    integration = await connect()
    body = callback(psa.base_url)
    del body["MessageId"]
    raw, signature = signed(body)
    other_raw, other_signature = signed({**body, "ID": 251})

    for _ in range(2):
        assert (await post(http, integration, raw, signature)).status_code == 200
    assert (await post(http, integration, other_raw, other_signature)).status_code == 200

    keys = await WebhookDelivery.filter(integration_id=integration.id).values_list(
        "dedupe_key", flat=True
    )
    assert sorted(keys) == sorted(
        [hashlib.sha256(raw).hexdigest(), hashlib.sha256(other_raw).hexdigest()]
    )


# -- bad input -------------------------------------------------------------------------------------


async def test_an_oversized_body_is_refused_with_413(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, keys: KeyServer
) -> None:
    integration = await connect()
    raw, signature = signed(callback(psa.base_url, Padding="x" * (256 * 1024)))

    answer = await post(http, integration, raw, signature)

    assert answer.status_code == 413
    assert "256 KiB" in answer.json()["error"]
    assert await WebhookDelivery.all().count() == 0
    assert keys.key_requests == []


async def test_an_oversized_streamed_body_without_length_is_refused_with_413(
    http: httpx.AsyncClient, connect: Connect
) -> None:
    integration = await connect()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"Action": "updated", "Padding": "'
        for _ in range(100):
            yield b"x" * 4096

    answer = await http.post(
        f"/webhooks/connectwise/{integration.id}",
        content=chunks(),
        headers={"content-type": "application/json", "x-content-signature": "c2ln"},
    )

    assert answer.status_code == 413
    assert await WebhookDelivery.all().count() == 0


async def test_malformed_json_is_refused_with_400(
    http: httpx.AsyncClient, connect: Connect, psa: Psa
) -> None:
    integration = await connect()
    raw, signature = signed(b'{"Action": "updated", "ID": 25')

    answer = await post(http, integration, raw, signature)

    assert answer.status_code == 400
    assert "JSON" in answer.json()["error"]
    assert await WebhookDelivery.all().count() == 0
    assert await rejected(integration) == 0


async def test_a_signed_body_that_is_not_a_callback_is_refused_with_400(
    http: httpx.AsyncClient, connect: Connect, psa: Psa
) -> None:
    integration = await connect()
    body = callback(psa.base_url)
    del body["Action"]
    raw, signature = signed(body)

    answer = await post(http, integration, raw, signature)

    assert answer.status_code == 400
    assert "Action" in answer.json()["error"]
    assert await WebhookDelivery.all().count() == 0


async def test_unknown_integrations_are_404(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, keys: KeyServer
) -> None:
    integration = await connect()
    raw, signature = signed(callback(psa.base_url))

    for target in (str(uuid.uuid4()), "not-a-uuid", "1"):
        answer = await post(http, target, raw, signature)
        assert answer.status_code == 404, target
        assert "integration" in answer.json()["error"]

    assert await WebhookDelivery.all().count() == 0
    assert await rejected(integration) == 0
    assert keys.key_requests == []


async def test_a_non_json_content_type_is_refused_with_415(
    http: httpx.AsyncClient, connect: Connect, psa: Psa
) -> None:
    integration = await connect()
    raw, signature = signed(callback(psa.base_url))

    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        answer = await post(http, integration, raw, signature, content_type=content_type)
        assert answer.status_code == 415, content_type
    # Parameters are fine.
    ok = await post(
        http, integration, raw, signature, content_type="application/json; charset=utf-8"
    )
    assert ok.status_code == 200

    assert await WebhookDelivery.all().count() == 1


async def test_unknown_provider_paths_are_404(
    http: httpx.AsyncClient, connect: Connect, psa: Psa
) -> None:
    integration = await connect()
    raw, signature = signed(callback(psa.base_url))

    for provider in ("autotask", "pulseway", "connectwise_manage"):
        answer = await post(http, integration, raw, signature, provider=provider)
        assert answer.status_code == 404, provider
        assert "error" in answer.json()
    answer = await http.post(f"/webhooks/connectwise/{integration.id}/extra", content=raw)
    assert answer.status_code == 404
    answer = await http.get(f"/webhooks/connectwise/{integration.id}")
    assert answer.status_code == 405

    assert await WebhookDelivery.all().count() == 0
    assert await rejected(integration) == 0


async def test_a_delivery_for_an_integration_deleted_meanwhile_is_404_not_500(
    http: httpx.AsyncClient, connect: Connect, psa: Psa
) -> None:
    integration = await connect()
    raw, signature = signed(callback(psa.base_url))
    assert (await post(http, integration, raw, signature)).status_code == 200  # now cached

    await Integration.filter(id=integration.id).delete()
    raw, signature = signed(callback(psa.base_url))
    answer = await post(http, integration, raw, signature)

    assert answer.status_code == 404
    assert await WebhookDelivery.all().count() == 0


# -- group commit ----------------------------------------------------------------------------------


async def test_concurrent_deliveries_are_group_committed_each_stored_once(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, service: Starlette, keys: KeyServer
) -> None:
    integration = await connect()
    bodies = [signed(callback(psa.base_url, ID=i)) for i in range(1, 201)]
    inbox = service.state.webhooks.inbox

    answers = await asyncio.gather(*(post(http, integration, r, s) for r, s in bodies))

    assert [a.status_code for a in answers] == [200] * 200
    assert await WebhookDelivery.filter(integration_id=integration.id).count() == 200
    stored = await WebhookDelivery.filter(integration_id=integration.id).values_list(
        "psa_id", flat=True
    )
    assert sorted(stored) == list(range(1, 201))
    assert inbox.batches < 200  # grouped, not one transaction per request
    assert len(keys.key_requests) == 1  # the first requests shared one key fetch


async def test_stored_deliveries_wake_the_inbox_processor(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, service: Starlette
) -> None:
    integration = await connect()
    woken: list[bool] = []

    class Worker:
        def wake_inbox(self) -> None:
            woken.append(True)

    service.state.worker = Worker()
    raw, signature = signed(callback(psa.base_url))
    assert (await post(http, integration, raw, signature)).status_code == 200
    assert woken == [True]
    assert (await post(http, integration, raw, signature)).status_code == 200
    assert woken == [True]  # a duplicate stores nothing: nothing to wake for


async def test_a_failed_write_answers_503_and_stores_nothing(
    http: httpx.AsyncClient,
    connect: Connect,
    psa: Psa,
    service: Starlette,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    integration = await connect()
    inbox = service.state.webhooks.inbox

    async def broken(deliveries: object) -> set[tuple[str, str]]:
        raise RuntimeError("disk full")

    monkeypatch.setattr(inbox, "_insert", broken)
    bodies = [signed(callback(psa.base_url, ID=i)) for i in range(1, 21)]

    answers = await asyncio.gather(*(post(http, integration, r, s) for r, s in bodies))

    assert {a.status_code for a in answers} == {503}
    assert "could not be stored" in answers[0].json()["error"]
    monkeypatch.undo()
    assert await WebhookDelivery.all().count() == 0
    # The writer carries on: the PSA's retry is stored.
    raw, signature = bodies[0]
    assert (await post(http, integration, raw, signature)).status_code == 200


async def test_a_full_inbox_answers_429(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, service: Starlette
) -> None:
    integration = await connect()
    service.state.webhooks.inbox.max_waiting = 0
    raw, signature = signed(callback(psa.base_url))

    answer = await post(http, integration, raw, signature)

    assert answer.status_code == 429
    assert await WebhookDelivery.all().count() == 0


async def test_batches_are_bounded(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, service: Starlette
) -> None:
    integration = await connect()
    inbox = service.state.webhooks.inbox
    inbox.batch_size = 7
    bodies = [signed(callback(psa.base_url, ID=i)) for i in range(1, 51)]

    answers = await asyncio.gather(*(post(http, integration, r, s) for r, s in bodies))

    assert [a.status_code for a in answers] == [200] * 50
    assert await WebhookDelivery.filter(integration_id=integration.id).count() == 50
    assert inbox.batches >= 8  # 50 rows, at most 7 a statement
