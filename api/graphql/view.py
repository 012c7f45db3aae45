"""The GraphQL endpoint: authentication first, then Strawberry.

- ``GET /graphql`` from a browser (no ``query``) serves GraphiQL; it runs nothing, so it
  needs no key. Every request that executes something needs ``Authorization: Bearer <key>``:
  without a valid key the answer is 401 with a GraphQL error, and nothing is executed.
  The one exception: a POST whose document is a lone ``acceptInvitation`` mutation (a person
  invited has no key yet), rate-limited per client address (api/graphql/guest.py; over the
  limit, 429 with Retry-After).
- WebSocket (``graphql-transport-ws``): browsers cannot set headers on a WebSocket, so the
  key may also come in ``connection_init``'s payload (``{"Authorization": "Bearer …"}``).
- ``Accept: application/graphql-response+json`` gets that media type (GraphQL over HTTP),
  with 400 for a request that failed before execution; otherwise ``application/json``.
- Every response carries ``X-Request-ID``; masked errors quote it.
- One query executes at a time per process (``gate``, held by ``OneQueryAtATime`` in the
  schema); mutations, which may wait on a PSA, never hold it. Answers are encoded outside the
  gate. Why: docs/architecture.md, "Limits" (webhook answers stay fast).
- Request JSON (HTTP bodies, WebSocket messages) must be UTF-8, at most ``MAX_JSON_DEPTH``
  levels deep and ``MAX_JSON_VALUES`` values: otherwise a 400 (WebSocket: close 4400).
  The body's size is bounded before this (api/limits.py), the query text after
  (api/graphql/schema.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from api.access import Viewer, authenticate, bearer_token
from api.graphql.context import Context
from api.graphql.guest import AddressLimit, is_guest_operation
from api.graphql.loaders import Loaders
from api.graphql.schema import schema
from api.mail import Smtp
from models.vault import Vault
from sync.connections import ProviderFactory

GRAPHQL_RESPONSE = "application/graphql-response+json"
# Our inputs nest about six levels (variables > input > list > item > list > item); the
# count bounds the work of coercing variables (500 contacts x a few fields each fits).
MAX_JSON_DEPTH = 20
MAX_JSON_VALUES = 50_000
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _request_id(headers: Any) -> str:
    given = headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


def _wants_graphql_response(accept: str) -> bool:
    """True when the client prefers application/graphql-response+json to application/json."""
    ranked = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        ranked.append((-q, position, media))
    for _q, _pos, media in sorted(ranked):
        if media == GRAPHQL_RESPONSE:
            return True
        if media in ("application/json", "application/*", "*/*"):
            return False
    return False


def unauthorized(message: str, request_id: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="psasync"', "X-Request-ID": request_id},
    )


class UnacceptableJson(json.JSONDecodeError):
    """Request JSON we refuse to use. A JSONDecodeError, so that Strawberry's WebSocket
    handler closes the socket with 4400 as it does for malformed JSON."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "", 0)
        self.reason = message


def decode_request_json(data: str | bytes) -> object:
    """``json.loads`` with the bounds above; UnacceptableJson instead of anything else."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise UnacceptableJson(f"The request body is not valid UTF-8 ({exc.reason}).") from exc
    try:
        value = json.loads(text)
    except RecursionError as exc:  # the C decoder nests on the stack
        raise UnacceptableJson(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.") from exc
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # e.g. an integer over Python's 4,300-digit limit
        raise UnacceptableJson(f"Unusable JSON: {exc}") from exc
    _check_shape(value)
    return value


def _check_shape(value: object) -> None:
    stack: list[tuple[object, int]] = [(value, 1)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_JSON_VALUES:
            raise UnacceptableJson(f"JSON with more than {MAX_JSON_VALUES:,} values.")
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= MAX_JSON_DEPTH and children:
            raise UnacceptableJson(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
        stack.extend((child, depth + 1) for child in children)


class GraphQLApp(GraphQL[Context, None]):
    def __init__(
        self,
        vault: Vault,
        wake_worker: Callable[[], None] = lambda: None,
        allowed_origins: tuple[str, ...] = (),
        allow_sandbox: bool = False,
        open_provider: ProviderFactory | None = None,
        *,
        public_url: str | None = None,
        wake_inbox: Callable[[], None] = lambda: None,
        smtp: Smtp | None = None,
        guest_limit: AddressLimit | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            allowed_origins=allowed_origins,
        )
        self.vault = vault
        self.wake_worker = wake_worker
        self.allow_sandbox = allow_sandbox
        self.open_provider = open_provider
        self.public_url = public_url
        self.wake_inbox = wake_inbox
        self.smtp = smtp
        self.guest_limit = guest_limit or AddressLimit()
        # Two heavy queries executing at once doubled the time every webhook answer waited
        # (bench/webhook_receiver.py --busy-api); one at a time, it is one query's time.
        self.gate = asyncio.Semaphore(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            request_id = _request_id(request.headers)
            scope.setdefault("state", {})["request_id"] = request_id
            if not self.should_render_graphql_ide(_IdeProbe(request)):  # type: ignore[arg-type]
                token = bearer_token(request.headers.get("authorization"))
                if token is None and request.method == "POST":
                    body = await request.body()
                    if is_guest_operation(body):
                        await self._as_guest(scope, receive, send, body, request_id)
                        return
                if token is None:
                    await unauthorized(
                        "Authentication required: send Authorization: Bearer <api key>.",
                        request_id,
                    )(scope, receive, send)
                    return
                viewer = await authenticate(token)
                if viewer is None:
                    await unauthorized("Unknown or revoked API key.", request_id)(
                        scope, receive, send
                    )
                    return
                scope["state"]["viewer"] = viewer
        await super().__call__(scope, receive, send)

    async def _as_guest(
        self, scope: Scope, receive: Receive, send: Send, body: bytes, request_id: str
    ) -> None:
        """Run a lone acceptInvitation without a viewer, if the client is under its limit."""
        client = scope.get("client")
        wait = self.guest_limit.take(str(client[0]) if client else "")
        if wait is not None:
            await JSONResponse(
                {
                    "errors": [
                        {
                            "message": "Too many invitation attempts from this address: "
                            f"try again in {int(wait) + 1} s.",
                            "extensions": {"code": "RATE_LIMITED"},
                        }
                    ]
                },
                status_code=429,
                headers={"Retry-After": str(int(wait) + 1), "X-Request-ID": request_id},
            )(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:  # the body was read here: hand it on once more
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await super().__call__(scope, replay, send)

    def decode_json(self, data: str | bytes) -> object:
        return decode_request_json(data)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return self.decode_json(data)
        except UnacceptableJson as exc:
            raise HTTPException(400, exc.reason) from exc
        except json.JSONDecodeError as exc:
            raise HTTPException(400, "Unable to parse request body as JSON") from exc

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        state = request.scope.get("state", {})
        viewer: Viewer | None = state.get("viewer")
        request_id = state.get("request_id") or uuid.uuid4().hex
        if viewer is None and isinstance(request, WebSocket):
            token = bearer_token(request.headers.get("authorization"))
            viewer = await authenticate(token) if token else None
        return Context(
            query_gate=self.gate,
            request_id=request_id,
            viewer=viewer,
            loaders=Loaders(viewer.account_id) if viewer else Loaders(uuid.UUID(int=0)),
            vault=self.vault,
            wake_worker=self.wake_worker,
            wake_inbox=self.wake_inbox,
            public_url=self.public_url,
            allow_sandbox=self.allow_sandbox,
            provider_factory=self.open_provider,
            smtp=self.smtp,
            request=request,
            response=response,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        if context.viewer is None:
            params = context.connection_params or {}
            raw = params.get("Authorization") or params.get("authorization")
            token = bearer_token(raw) if isinstance(raw, str) else None
            viewer = await authenticate(token) if token else None
            if viewer is None:
                raise ConnectionRejectionError({"message": "Unknown or missing API key."})
            context.viewer = viewer
            context.loaders = Loaders(viewer.account_id)
        return await super().on_ws_connect(context)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        request_id = request.scope.get("state", {}).get("request_id")
        if request_id:
            sub_response.headers["X-Request-ID"] = request_id
        if _wants_graphql_response(request.headers.get("accept", "")):
            sub_response.headers["content-type"] = GRAPHQL_RESPONSE
        return sub_response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        graphql_response = sub_response.headers.get("content-type") == GRAPHQL_RESPONSE
        if graphql_response:
            del sub_response.headers["content-type"]
        response = super().create_response(response_data, sub_response)
        if graphql_response:
            response.headers["content-type"] = GRAPHQL_RESPONSE
            # GraphQL over HTTP: a request that failed before execution (parse, validation)
            # is a 4xx when the client speaks graphql-response+json.
            failed_early = isinstance(response_data, dict) and response_data.get("data") is None
            if failed_early and response.status_code == 200:
                response.status_code = 400
        return response


class _IdeProbe:
    """Just enough of Strawberry's request adapter to ask whether this is a GraphiQL load."""

    def __init__(self, request: Request) -> None:
        self.method = request.method
        self.query_params = request.query_params
        self.headers = request.headers
