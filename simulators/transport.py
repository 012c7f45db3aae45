"""A write the simulator applied and then never answered, as a client sees it: a transport error.

``Faults.drop_after_write_every`` makes a simulator answer every N-th applied write with a
`DroppedAnswer`, which starts the response (the real status line and headers, ``Content-Length``
included) and then raises `AnswerDropped` instead of sending the body:

- Over a socket, uvicorn closes a connection whose response has started when the app fails, so
  httpx raises ``httpx.RemoteProtocolError`` ("peer closed connection without sending complete
  message body"). `quiet_dropped_answers` keeps uvicorn from logging each drop as a crash.
- In process, ``httpx.ASGITransport`` re-raises the app's exception as it is; `InProcessTransport`
  turns `AnswerDropped` into the ``httpx.RemoteProtocolError`` a socket client would get, so code
  under test sees the same error either way.
"""

from __future__ import annotations

import logging

import httpx
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = ["AnswerDropped", "DroppedAnswer", "InProcessTransport", "quiet_dropped_answers"]


class AnswerDropped(Exception):
    """The simulator cut the connection after applying a write, before its answer's body."""


class DroppedAnswer(Response):
    """`answer`'s status line and headers, then a dropped connection instead of its body."""

    def __init__(self, answer: Response) -> None:
        super().__init__(status_code=answer.status_code)
        self.raw_headers = answer.raw_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        # Raising after the start is the one way an ASGI app makes a server drop the connection.
        raise AnswerDropped(
            f"simulated dropped connection: {scope['method']} {scope['path']} was applied, "
            "its answer never sent"
        )


class InProcessTransport(httpx.ASGITransport):
    """``httpx.ASGITransport`` that fails a dropped answer the way a socket does.

    ``AsyncClient(transport=InProcessTransport(app=simulator.app), base_url=...)``; keep the
    default ``raise_app_exceptions=True`` (otherwise httpx answers a dropped write with its status
    and an empty body).
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except AnswerDropped as dropped:
            raise httpx.RemoteProtocolError(str(dropped), request=request) from dropped


class _SkipDroppedAnswers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], AnswerDropped))


_SKIP = _SkipDroppedAnswers()


def quiet_dropped_answers() -> None:
    """Keep uvicorn's "Exception in ASGI application" records of deliberate drops out of the
    log; every other record passes. Idempotent."""
    logger = logging.getLogger("uvicorn.error")  # where uvicorn's protocols log app failures
    if _SKIP not in logger.filters:
        logger.addFilter(_SKIP)
