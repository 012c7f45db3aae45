"""The GraphQL endpoint: authentication first, then Strawberry.

- ``GET /graphql`` from a browser (no ``query``) serves GraphiQL; it runs nothing, so it
  needs no key. Every request that executes something needs ``Authorization: Bearer <key>``:
  without a valid key the answer is 401 with a GraphQL error, and nothing is executed.
- WebSocket (``graphql-transport-ws``): browsers cannot set headers on a WebSocket, so the
  key may also come in ``connection_init``'s payload (``{"Authorization": "Bearer …"}``).
- ``Accept: application/graphql-response+json`` gets that media type (GraphQL over HTTP),
  with 400 for a request that failed before execution; otherwise ``application/json``.
- Every response carries ``X-Request-ID``; masked errors quote it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from api.access import Viewer, authenticate, bearer_token
from api.graphql.context import Context
from api.graphql.loaders import Loaders
from api.graphql.schema import schema
from models.vault import Vault
from sync.connections import ProviderFactory

GRAPHQL_RESPONSE = "application/graphql-response+json"
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            request_id = _request_id(request.headers)
            scope.setdefault("state", {})["request_id"] = request_id
            if not self.should_render_graphql_ide(_IdeProbe(request)):  # type: ignore[arg-type]
                token = bearer_token(request.headers.get("authorization"))
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

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        state = request.scope.get("state", {})
        viewer: Viewer | None = state.get("viewer")
        request_id = state.get("request_id") or uuid.uuid4().hex
        if viewer is None and isinstance(request, WebSocket):
            token = bearer_token(request.headers.get("authorization"))
            viewer = await authenticate(token) if token else None
        return Context(
            request_id=request_id,
            viewer=viewer,
            loaders=Loaders(viewer.account_id) if viewer else Loaders(uuid.UUID(int=0)),
            vault=self.vault,
            wake_worker=self.wake_worker,
            wake_inbox=self.wake_inbox,
            public_url=self.public_url,
            allow_sandbox=self.allow_sandbox,
            provider_factory=self.open_provider,
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
