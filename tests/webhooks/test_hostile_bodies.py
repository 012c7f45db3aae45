"""Hostile webhook bodies through the real service: never a 5xx, never one delivery failed for
another's sake. A 400 stores nothing, a 200 stores exactly one row (issue 15, items 1-2)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from harness import Psa, runner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pulseway_helpers import delivery, pulseway_integration
from pulseway_helpers import post as post_pulseway
from pulseway_helpers import signed as signed_pulseway
from starlette.applications import Starlette
from webhook_helpers import KeyServer, callback, post, signed

from models import Account, Integration, WebhookDelivery
from models.vault import Vault

Connect = Callable[..., Awaitable[Integration]]

OPTIONS = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


async def stored() -> int:
    return await WebhookDelivery.all().count()


# -- strategies ------------------------------------------------------------------------------------

# What a database or int() chokes on, beside anything Hypothesis makes up.
NASTY_TEXT = st.sampled_from(
    ["", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "²", "٣", "7", " 7 ", "1" * 30,
     "9223372036854775807", "9223372036854775808", "-1", "0", "1e3", "\u202e", "A" * 300]
)  # fmt: skip
NASTY_INT = st.sampled_from([0, -1, 2**63 - 1, 2**63, -(2**63), 2**64, 10**40])
TEXT = st.one_of(NASTY_TEXT, st.text(max_size=20))
SCALAR = st.one_of(
    st.none(), st.booleans(), NASTY_INT, st.integers(), st.floats(allow_nan=False), TEXT
)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
DEEP = st.integers(min_value=30, max_value=3000).map(lambda n: "[" * n + "]" * n)


def encode(value: Any, ascii_only: bool) -> bytes:
    """JSON bytes; without ASCII escapes a lone surrogate becomes invalid UTF-8."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


CW_FIELDS = st.sampled_from(
    ["MessageId", "MemberId", "ID", "Action", "Type", "Entity", "CompanyId", "Metadata", "Extra"]
)
PW_FIELDS = st.sampled_from(
    ["id", "eventType", "entityType", "entityId", "timestamp", "modifiedById", "EntityId", "x"]
)


def bodies(fields: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, Any]]:
    """A notification with one field replaced, or any JSON, text or bytes at all."""
    return st.one_of(
        st.tuples(st.just("field"), st.tuples(fields, JSON, st.booleans())),
        st.tuples(st.just("deep"), st.tuples(fields, DEEP)),
        st.tuples(st.just("json"), st.tuples(JSON, st.booleans())),
        st.tuples(st.just("text"), st.text(max_size=200)),
        st.tuples(st.just("bytes"), st.binary(max_size=200)),
    )


def build(shape: tuple[str, Any], base: dict[str, Any]) -> bytes:
    kind, data = shape
    if kind == "field":
        name, value, ascii_only = data
        return encode({**base, name: value}, ascii_only)
    if kind == "deep":  # valid JSON up to a point, then nested far too deep
        name, nested = data
        text = json.dumps({**base, name: None})
        return text.replace(f'"{name}": null', f'"{name}": {nested}').encode()
    if kind == "json":
        value, ascii_only = data
        return encode(value, ascii_only)
    if kind == "text":
        return str(data).encode("utf-8", "surrogatepass")
    assert isinstance(data, bytes)
    return data


async def check(answer: httpx.Response, before: int) -> None:
    """What a user of the receiver may rely on, whatever the body."""
    assert answer.status_code < 500, answer.text
    assert "Traceback" not in answer.text
    after = await stored()
    if answer.status_code == 200 and answer.json() == {"status": "stored"}:
        assert after == before + 1
    else:
        assert after == before, answer.text


# -- the hostile suites ----------------------------------------------------------------------------


async def test_no_connectwise_body_signed_or_not_gets_a_5xx_or_stores_more_than_itself(
    http: httpx.AsyncClient, connect: Connect, psa: Psa
) -> None:
    integration = await connect()
    run = runner(asyncio.get_running_loop())

    async def attempt(raw: bytes, sign: bool) -> None:
        before = await stored()
        answer = await post(http, integration, raw, signed(raw)[1] if sign else None)
        await check(answer, before)
        if not sign:
            assert answer.status_code in (400, 401)

    @settings(OPTIONS, max_examples=120)
    @given(shape=bodies(CW_FIELDS), sign=st.booleans())
    def hostile(shape: tuple[str, Any], sign: bool) -> None:
        run(attempt(build(shape, callback(psa.base_url)), sign))

    await asyncio.to_thread(hostile)


async def test_no_pulseway_body_signed_or_not_gets_a_5xx_or_stores_more_than_itself(
    http: httpx.AsyncClient, account: Account, vault: Vault
) -> None:
    integration = await pulseway_integration(account, vault)
    run = runner(asyncio.get_running_loop())

    async def attempt(raw: bytes, sign: bool) -> None:
        before = await stored()
        answer = await post_pulseway(
            http, integration, raw, signed_pulseway(raw)[1] if sign else None
        )
        await check(answer, before)
        if not sign:
            assert answer.status_code in (400, 401)

    @settings(OPTIONS, max_examples=120)
    @given(shape=bodies(PW_FIELDS), sign=st.booleans())
    def hostile(shape: tuple[str, Any], sign: bool) -> None:
        run(attempt(build(shape, delivery()), sign))

    await asyncio.to_thread(hostile)


# -- deep JSON: refused before anything looks inside ----------------------------------------------

DEEPEST = b"[" * 100_000 + b"]" * 100_000


async def test_deep_json_is_a_400_before_the_connectwise_key_is_fetched(
    http: httpx.AsyncClient,
    connect: Connect,
    psa: Psa,
    keys: KeyServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    integration = await connect()
    inside = json.dumps(callback(psa.base_url, Extra=None))
    nested = inside.replace('"Extra": null', '"Extra": ' + "[" * 50_000 + "]" * 50_000).encode()

    with caplog.at_level(logging.INFO):
        for raw in (DEEPEST, nested):
            answer = await post(http, integration, raw, signed(raw)[1])

            assert answer.status_code == 400
            assert "nested deeper" in answer.json()["error"]
    assert keys.key_requests == []  # refused before the key URL was even read
    assert await stored() == 0
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_deep_json_is_a_400_for_pulseway_psa(
    http: httpx.AsyncClient, account: Account, vault: Vault
) -> None:
    integration = await pulseway_integration(account, vault)

    answer = await post_pulseway(http, integration, DEEPEST, signed_pulseway(DEEPEST)[1])

    assert answer.status_code == 400
    assert "nested deeper" in answer.json()["error"]
    assert await stored() == 0


async def test_a_deep_connectwise_entity_only_loses_the_stamp(
    http: httpx.AsyncClient, connect: Connect, psa: Psa
) -> None:
    """Entity is JSON inside a string, read after the body: bounded too, and optional."""
    integration = await connect()
    raw, signature = signed(callback(psa.base_url, Entity="[" * 100_000))

    answer = await post(http, integration, raw, signature)

    assert answer.status_code == 200, answer.text
    row = await WebhookDelivery.get(integration_id=integration.id)
    assert (row.psa_id, row.stamp) == (250, None)


# -- what is stored is the text that was signed ----------------------------------------------------


async def test_escaped_nuls_and_surrogates_in_unread_fields_are_stored_as_escapes(
    http: httpx.AsyncClient, connect: Connect, psa: Psa
) -> None:
    integration = await connect()
    body = callback(psa.base_url, Note="nul \x00 surrogate \ud800", FromUrl="\x00")
    raw, signature = signed(body)  # json.dumps escapes them: \u0000, \ud800
    assert b"\\u0000" in raw
    assert b"\\ud800" in raw

    answer = await post(http, integration, raw, signature)

    assert answer.status_code == 200, answer.text
    row = await WebhookDelivery.get(integration_id=integration.id)
    assert row.payload == raw.decode()  # the six-character escapes, not the characters
    assert json.loads(row.payload)["Note"] == "nul \x00 surrogate \ud800"


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({"Action": "updated", "Type": "company", "ID": 1}).encode("utf-16"),
        b'{"Action": "updated", "Type": "company", "ID": 1, "x": "\xff\xfe"}',
        b'{"Action": "updated", "Type": "company", "ID": 1, "x": "\xed\xa0\x80"}',  # surrogate
    ],
    ids=["utf-16", "invalid-utf-8", "encoded-surrogate"],
)
async def test_a_body_that_is_not_utf_8_is_a_400(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, raw: bytes
) -> None:
    integration = await connect()

    answer = await post(http, integration, raw, signed(raw)[1])

    assert answer.status_code == 400
    assert "UTF-8" in answer.json()["error"]
    assert await stored() == 0


# -- poison deliveries among innocent ones -------------------------------------------------------

POISON: list[dict[str, Any]] = [
    {"ID": 2**63},
    {"ID": "9223372036854775808"},
    {"ID": "²"},
    {"ID": "٣"},
    {"ID": 0},
    {"ID": -5},
    {"MessageId": "poison\x00message"},
    {"MemberId": "j\x00doe"},
    {"MessageId": "lone \udc00 surrogate"},
    {"MemberId": "\ud83d"},
]


async def test_poison_deliveries_are_refused_and_concurrent_innocent_ones_stored_once(
    http: httpx.AsyncClient, connect: Connect, psa: Psa
) -> None:
    integration = await connect()
    innocent = [callback(psa.base_url, ID=i) for i in range(1, 81)]
    poison = [callback(psa.base_url, **changes) for changes in POISON]
    mixed = innocent[:40] + poison + innocent[40:]

    answers = await asyncio.gather(*(post(http, integration, *signed(body)) for body in mixed))

    by_id = {body["MessageId"]: answer for body, answer in zip(mixed, answers, strict=True)}
    assert [by_id[b["MessageId"]].status_code for b in innocent] == [200] * 80
    assert [by_id[b["MessageId"]].status_code for b in poison] == [400] * len(POISON)
    keys = await WebhookDelivery.filter(integration_id=integration.id).values_list(
        "dedupe_key", flat=True
    )
    assert sorted(keys) == sorted(b["MessageId"] for b in innocent)


async def test_a_row_the_database_refuses_is_refused_alone_when_its_batch_fails(
    http: httpx.AsyncClient,
    connect: Connect,
    psa: Psa,
    service: Starlette,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should validation ever let a bad value through, the group commit fails: its rows are
    then written one by one, and only the bad one is refused (400: the PSA must not retry)."""
    integration = await connect()
    monkeypatch.setattr("webhooks.source.MAX_ID", 2**70)  # lets 2^63 reach the INSERT
    inbox = service.state.webhooks.inbox
    innocent = [callback(psa.base_url, ID=i) for i in range(1, 61)]
    poison = [callback(psa.base_url, ID=2**63 + i) for i in range(3)]
    mixed = innocent[:20] + poison[:1] + innocent[20:40] + poison[1:] + innocent[40:]

    answers = await asyncio.gather(*(post(http, integration, *signed(body)) for body in mixed))

    by_id = {body["MessageId"]: answer for body, answer in zip(mixed, answers, strict=True)}
    assert [by_id[b["MessageId"]].status_code for b in innocent] == [200] * 60
    assert [by_id[b["MessageId"]].status_code for b in poison] == [400] * 3
    assert "cannot be stored" in by_id[poison[0]["MessageId"]].json()["error"]
    assert inbox.split >= 1  # the group commit did fail, and was split
    rows = await WebhookDelivery.filter(integration_id=integration.id).values_list(
        "dedupe_key", "psa_id"
    )
    assert sorted(rows) == sorted((b["MessageId"], b["ID"]) for b in innocent)
    # The PSA's redelivery of an innocent one is a duplicate: it was stored exactly once.
    again = await post(http, integration, *signed(innocent[0]))
    assert again.json() == {"status": "duplicate"}


async def test_when_every_row_fails_for_the_database_they_are_answered_503(
    http: httpx.AsyncClient,
    connect: Connect,
    psa: Psa,
    service: Starlette,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An outage is not the rows' fault: 503 (retry later), not 400 (never retried)."""
    integration = await connect()
    inbox = service.state.webhooks.inbox

    async def down(deliveries: object) -> set[tuple[str, str]]:
        raise ConnectionRefusedError("the database is down")

    monkeypatch.setattr(inbox, "_insert", down)
    bodies = [callback(psa.base_url, ID=i) for i in range(1, 11)]

    answers = await asyncio.gather(*(post(http, integration, *signed(body)) for body in bodies))

    assert {a.status_code for a in answers} == {503}
    monkeypatch.undo()
    assert await stored() == 0


async def test_a_nul_that_reached_postgresql_would_be_refused_alone(
    http: httpx.AsyncClient, connect: Connect, psa: Psa, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's text cannot hold a NUL (SQLite's can): with the check bypassed, the
    database refuses that row, and only it."""
    integration = await connect()
    monkeypatch.setattr("webhooks.source.storable_text", lambda value, name, what: value)
    innocent = [callback(psa.base_url, ID=i) for i in range(1, 31)]
    poison = callback(psa.base_url, MemberId="j\x00doe")

    answers = await asyncio.gather(
        *(
            post(http, integration, *signed(body))
            for body in [*innocent[:15], poison, *innocent[15:]]
        )
    )

    postgres = WebhookDelivery._meta.db.capabilities.dialect == "postgres"
    assert answers[15].status_code == (400 if postgres else 200)
    assert [a.status_code for a in answers[:15] + answers[16:]] == [200] * 30
    assert await stored() == (30 if postgres else 31)
