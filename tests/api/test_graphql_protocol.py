"""The endpoint as a GraphQL client meets it: the committed schema, media types, limits,
masked errors, and subscriptions over a real WebSocket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets
from graphql import get_introspection_query
from harness import GraphQLClient, Psa
from starlette.applications import Starlette

from api.graphql.ids import to_global
from api.graphql.schema import schema
from models import Integration, SyncRun
from sync.runner import Worker

ROOT = Path(__file__).resolve().parents[2]


def test_schema_graphql_is_the_exported_schema() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == schema.as_str() + "\n", (
        "schema.graphql is stale: regenerate it with `make schema`"
    )


async def test_graphql_response_json_when_asked(admin: GraphQLClient) -> None:
    wanted = "application/graphql-response+json"
    ok = await admin.post("{ viewer { role } }", Accept=wanted)
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith(wanted)
    assert ok.json()["data"]["viewer"]["role"] == "ADMINISTRATOR"

    invalid = await admin.post("{ viewer { nope } }", Accept=f"{wanted}, application/json;q=0.9")
    assert invalid.status_code == 400
    assert invalid.headers["content-type"].startswith(wanted)
    assert "nope" in invalid.json()["errors"][0]["message"]

    legacy = await admin.post("{ viewer { nope } }", Accept="application/json")
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith("application/json")
    assert legacy.headers["x-request-id"]


async def test_introspection_is_allowed_within_the_limits(admin: GraphQLClient) -> None:
    data = await admin.data(get_introspection_query(descriptions=True))
    names = {t["name"] for t in data["__schema"]["types"]}
    assert {"Organization", "Configuration", "Integration", "SyncRun"} <= names


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "{ configurations { edges { node { organization { "
            + "parent { " * 10
            + "name"
            + " }" * 10
            + " } } } } }",
            "exceeds maximum operation depth",
        ),
        (
            "{ " + " ".join(f"a{i}: viewer {{ role }}" for i in range(40)) + " }",
            "aliases found",
        ),
    ],
)
async def test_deep_or_wide_queries_are_refused_before_they_run(
    admin: GraphQLClient, query: str, message: str
) -> None:
    body = await admin.execute(query)
    assert body["data"] is None
    assert message in body["errors"][0]["message"]


async def test_an_unexpected_error_is_masked_and_quotes_the_request_id(
    admin: GraphQLClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_args: Any) -> None:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr("api.graphql.queries.load_run", broken)
    response = await admin.post(
        "query($id: ID!) { syncRun(id: $id) { id } }",
        {"id": to_global("SyncRun", "00000000-0000-0000-0000-000000000000")},
        **{"X-Request-ID": "req-1234abcd"},
    )
    (error,) = response.json()["errors"]
    assert "hunter2" not in response.text
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-1234abcd"}
    assert "req-1234abcd" in error["message"]
    assert response.headers["x-request-id"] == "req-1234abcd"
    assert any("req-1234abcd" in r.getMessage() for r in caplog.records)


@pytest.fixture
async def served(app: Starlette) -> AsyncIterator[str]:
    """The app on a real loopback port, in this event loop (it shares the test database)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110  (uvicorn offers no event for it)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await task


SUBSCRIBE = """subscription($id: ID!) { syncRunProgress(runId: $id) {
  status phase progress { processed total } counts { created } } }"""


async def test_sync_run_progress_streams_the_run_until_it_ends(
    served: str, admin: GraphQLClient, connect: Any, worker: Worker, psa: Psa
) -> None:
    integration: Integration = await connect()
    run = await SyncRun.get(integration_id=integration.id)
    events: list[dict[str, Any]] = []

    async def next_event(ws: Any) -> dict[str, Any] | None:
        message = json.loads(await ws.recv())
        if message["type"] == "complete":
            return None
        assert message["type"] == "next", message
        event: dict[str, Any] = message["payload"]["data"]["syncRunProgress"]
        events.append(event)
        return event

    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {admin.key}"}}
    variables = {"id": to_global("SyncRun", run.id)}
    subscribe = {"id": "1", "type": "subscribe",
                 "payload": {"query": SUBSCRIBE, "variables": variables}}  # fmt: skip
    async with websockets.connect(served, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps(subscribe))
        async with asyncio.timeout(120):
            assert (await next_event(ws)) == {"status": "QUEUED", "phase": None,
                "progress": {"processed": 0, "total": None}, "counts": {"created": 0}}  # fmt: skip
            # A worker elsewhere (another process, say) moves the run on: each step is sent.
            await SyncRun.filter(id=run.id).update(status="RUNNING", phase="organizations")
            assert (await next_event(ws) or {}).get("status") == "RUNNING"
            await SyncRun.filter(id=run.id).update(processed=7, total=40)
            assert (await next_event(ws) or {}).get("progress") == {"processed": 7, "total": 40}
            await SyncRun.filter(id=run.id).update(status="QUEUED", processed=0, total=None)
            await next_event(ws)
            # Then the run happens for real, and the stream ends with it.
            running = asyncio.create_task(worker.run_until_idle())
            while await next_event(ws) is not None:
                pass
            await running
    assert events[-1]["status"] == "SUCCEEDED"
    assert events[-1]["counts"]["created"] > 0


async def test_a_websocket_without_a_valid_key_is_closed(served: str) -> None:
    async with websockets.connect(served, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init",
                                  "payload": {"Authorization": "Bearer psk_wrong"}}))  # fmt: skip
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403
