"""Slow clients are cut off on a real socket: a trickled request head by the uvicorn protocol
(api.limits.head_deadline_protocol), a trickled body by the app's deadline; and a WebSocket
subscribe gets the same document limits as HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import uvicorn
import websockets
from harness import GraphQLClient
from starlette.applications import Starlette

from api.app import create_app
from api.graphql.schema import MAX_QUERY_BYTES
from api.limits import Limits, head_deadline_protocol
from api.settings import Settings

DEADLINE = 0.5
GIVE_UP = 15.0  # only so that a regression fails instead of hanging


@pytest.fixture
def slow_app(db: str, secret_key: str) -> Starlette:
    settings = Settings(
        database_url=db, secret_keys=(secret_key,), host="127.0.0.1", port=0, demo="off",
        demo_port=0, worker=False, log_level="info", allow_sandbox=True,
    )  # fmt: skip
    return create_app(settings, manage_database=False, limits=Limits(body_deadline=DEADLINE))


@pytest.fixture(params=["httptools", "h11"])
async def port(request: pytest.FixtureRequest, slow_app: Starlette) -> AsyncIterator[int]:
    """The app under uvicorn on a loopback port, in this event loop."""
    config = uvicorn.Config(
        slow_app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
        http=head_deadline_protocol(request.param, head_deadline=DEADLINE),
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110  (uvicorn offers no event for it)
        await asyncio.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def _trickle(writer: asyncio.StreamWriter, pieces: list[bytes]) -> None:
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.1)


async def _answer_then_eof(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before it closed. A server that closes while the client still
    sends answers the next bytes with a reset; what arrived before it is still the answer
    (reader.read() would drop it with the exception)."""
    answer = b""
    async with asyncio.timeout(GIVE_UP):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                return answer
            if not chunk:
                return answer
            answer += chunk


async def test_a_client_trickling_its_headers_is_disconnected(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [b"POST /graphql HTTP/1.1\r\nHost: x\r\n"]
    head += [f"X-Slow-{i}: y\r\n".encode() for i in range(200)]
    sending = asyncio.create_task(_trickle(writer, head))
    try:
        answer = await _answer_then_eof(reader)
    finally:
        sending.cancel()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408") or answer == b""
    assert not sending.done() or sending.cancelled()  # cut off before the head was in


async def test_a_client_trickling_its_body_gets_a_408_and_is_disconnected(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        b"POST /webhooks/connectwise/00000000-0000-0000-0000-000000000000 HTTP/1.1\r\n"
        b"Host: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"
    )
    sending = asyncio.create_task(_trickle(writer, [head] + [b" "] * 400))
    try:
        answer = await _answer_then_eof(reader)
    finally:
        sending.cancel()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408")


async def test_a_kept_alive_connection_gets_the_head_deadline_again(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /graphql HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n")
    status = await reader.readline()
    assert status.startswith(b"HTTP/1.1 200")  # GraphiQL: a whole request passes
    sending = asyncio.create_task(
        _trickle(writer, [b"GET /graphql HTTP/1.1\r\n"] + [b"X-Slow: y\r\n"] * 200)
    )
    try:
        rest = await _answer_then_eof(reader)
    finally:
        sending.cancel()
        writer.close()
    assert b"408 Request Timeout" in rest


async def test_a_websocket_subscribe_gets_the_query_text_limit(
    port: int, admin: GraphQLClient
) -> None:
    url = f"ws://127.0.0.1:{port}/graphql"
    query = (
        "#" + "x" * MAX_QUERY_BYTES + '\nsubscription { syncRunProgress(runId: "x") { status } }'
    )
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {admin.key}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        async with asyncio.timeout(GIVE_UP):
            message = json.loads(await ws.recv())
    assert message["type"] == "error"
    assert message["payload"][0]["extensions"]["code"] == "QUERY_TOO_LARGE"
