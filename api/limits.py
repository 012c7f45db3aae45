"""Limits on what one HTTP client may hold: request-body size and time, request-head time.

- ``BodyLimits`` (ASGI middleware around the whole app, /webhooks included) reads the body
  before the app sees it: over ``max_body_bytes`` is a 413 (at once when Content-Length says
  so, else as soon as the streamed chunks pass it), not complete within ``body_deadline`` is a
  408. Both answers close the connection. The app then gets the body in one message.
- ``head_deadline_protocol`` builds uvicorn HTTP protocols that close a connection whose
  request head (request line and headers) is not complete within ``head_deadline`` seconds,
  or grows past ``max_head_bytes``: uvicorn has no header-read timeout of its own, and its
  keep-alive timer stops at the first byte of a request.

A reverse proxy in front (README, "Production") should enforce the same limits; these hold
when there is none.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_BODY_BYTES = 1024 * 1024
BODY_DEADLINE = 10.0
HEAD_DEADLINE = 10.0
MAX_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = MAX_BODY_BYTES
    body_deadline: float = BODY_DEADLINE  # seconds from the end of the head to the body's end
    head_deadline: float = HEAD_DEADLINE  # seconds for the request line and headers


def _refusal(status: int, code: str, message: str) -> tuple[Message, Message]:
    body = json.dumps({"errors": [{"message": message, "extensions": {"code": code}}]}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the rest of the body is never read
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimits:
    """Buffers each HTTP request body within the size and time limits (see the module)."""

    def __init__(self, app: ASGIApp, limits: Limits | None = None) -> None:
        self.app = app
        self.limits = limits or Limits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(send, 413, "PAYLOAD_TOO_LARGE", self._too_large())
                return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.limits.body_deadline):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        await self._refuse(send, 413, "PAYLOAD_TOO_LARGE", self._too_large())
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await self._refuse(
                send,
                408,
                "REQUEST_TIMEOUT",
                f"The request body did not arrive within {self.limits.body_deadline:g} s.",
            )
            return
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # the disconnect, when the app waits for one
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"The request body is larger than {self.limits.max_body_bytes:,} bytes."

    @staticmethod
    async def _refuse(send: Send, status: int, code: str, message: str) -> None:
        start, body = _refusal(status, code, message)
        await send(start)
        await send(body)


_TIMEOUT_ANSWER = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_TOO_LARGE_ANSWER = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)


class _HeadDeadline:
    """Mixed into a uvicorn protocol: a timer from the connection's start (and from the end of
    each response, for the next request on a kept-alive connection) until the head is in."""

    head_deadline: float = HEAD_DEADLINE
    max_head_bytes: int = MAX_HEAD_BYTES
    transport: asyncio.Transport
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes: int = 0

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_bytes = 0
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(self.head_deadline, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_ANSWER)
            self.transport.close()

    def _count_head_bytes(self, data: bytes) -> bool:
        """False (and the connection closed) when the head outgrows ``max_head_bytes``."""
        if self._head_timer is None:
            return True
        self._head_bytes += len(data)
        if self._head_bytes <= self.max_head_bytes:
            return True
        self._disarm_head_timer()
        self.transport.write(_TOO_LARGE_ANSWER)
        self.transport.close()
        return False


class HeadDeadlineHttpTools(_HeadDeadline, HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._count_head_bytes(data):
            super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # the next head is already in
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm_head_timer()


class HeadDeadlineH11(_HeadDeadline, H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._count_head_bytes(data):
            return
        super().data_received(data)
        # h11 leaves IDLE once it has parsed a whole request head.
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may parse a pipelined head
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm_head_timer()


def head_deadline_protocol(
    http: str = "auto",
    head_deadline: float = HEAD_DEADLINE,
    max_head_bytes: int = MAX_HEAD_BYTES,
) -> type[asyncio.Protocol]:
    """A uvicorn ``http=`` protocol class ("httptools", "h11", or "auto": httptools when
    installed, as uvicorn chooses) with the head deadline and size limit."""
    if http == "auto":
        try:
            import httptools  # noqa: F401
        except ImportError:
            http = "h11"
        else:
            http = "httptools"
    base: type[_HeadDeadline] = HeadDeadlineHttpTools if http == "httptools" else HeadDeadlineH11
    return type(
        base.__name__,
        (base,),
        {"head_deadline": head_deadline, "max_head_bytes": max_head_bytes},
    )
