"""The simulator as a Starlette app: ConnectWise's REST API over a `ConnectWiseStore`.

Layout of the URL space::

    GET  /login/companyinfo/{companyId}          codebase discovery (no auth; JSON null if unknown)
    ANY  /{codebase}/apis/3.0/...                the API: v4_6_release or v2025_1 style codebases,
                                                 including system/callbacks (webhook registrations)
    GET  /{codebase}//system/callbackkey/index.rails?companyName=…&id=<connectWiseID>
                                                 a callback's signing key (no auth; 404 if unknown)
    GET|POST|DELETE /__simulator/faults          fault settings and request counters (no auth)
    GET|POST /{codebase}/apis/{1.5|2.0}/{Name}Api.asmx
                                                 the legacy SOAP API (`soap/`): ?wsdl, operations
    GET|POST /__simulator/callbacks              callback delivery settings, counters, recent
                                                 deliveries (no auth)

The faults control also denies areas (``{"deny": {"tickets": "read"}}``, see `Denials`): a
request to a denied area answers 403 after authentication, as a security role without the
access would.

A doubled or trailing slash is served as the path without it (`TolerantPaths`), as ConnectWise does.

Every API request passes one gate (`_serve`): count it and record its `clientId`, apply injected
latency and faults, check the codebase and Basic credentials, call the `before_write` hooks for a
write (`simulators/races.py`: a test edits the store there to race the client), then hand a `Call`
to the resource handlers and add ConnectWise's response headers. With
``faults.drop_after_write_every = N`` every N-th applied write is answered with a dropped
connection instead (`simulators/transport.py`; in process, use its `InProcessTransport`). Writes
to companies, contacts and configurations, through the API or the store, are posted to registered
callbacks by `callbacks.py` on the app's event loop, after the response.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from simulators.bodies import same_secret
from simulators.connectwise.callbacks import Callbacks
from simulators.connectwise.errors import ApiError, EndpointNotFound, Forbidden, Unauthorized
from simulators.connectwise.faults import Denials, Faults, Traffic
from simulators.connectwise.routes import Call, Reply, ResourceHandlers, dispatch, parse_body
from simulators.connectwise.schema import RESOURCES
from simulators.connectwise.soap.endpoint import PATH as SOAP_PATH
from simulators.connectwise.soap.endpoint import SoapEndpoint
from simulators.connectwise.soap.service import IntegratorLogin
from simulators.connectwise.store import ConnectWiseStore
from simulators.races import WriteHook, before_write
from simulators.transport import DroppedAnswer

CURRENT_VERSION = "2025.1"
CODEBASE = "v2025_1/"
VERSION_NUMBER = "v4.6.2025.1"
SERVER_NAME = "CWSIMAPI01"
_CODEBASE = re.compile(r"v4_6_release|v20\d\d_\d{1,2}")
_VERSION = re.compile(r"\d{4}\.\d{1,2}")
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Bodies are trees (shared reference objects, never cycles): skipping the cycle check saves ~15%.
_JSON = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"))

# The areas a security role grants (read = Inquire, write = Add/Edit/Delete), and the
# collections in each; reference lists go with the records they describe. Countries and
# states belong to no area (every role reads them).
AREAS: dict[str, tuple[str, ...]] = {
    "companies": ("companies", "company_types", "company_statuses"),
    "sites": ("sites",),
    "contacts": ("contacts", "contact_types", "communication_types"),
    "configurations": (
        "configurations",
        "configuration_types",
        "configuration_statuses",
        "manufacturers",
    ),
    "members": ("members",),
    "boards": ("boards", "ticket_statuses", "ticket_types", "priorities"),
    "tickets": ("tickets",),
    "callbacks": ("callbacks",),
}
AREA_OF = {collection: area for area, names in AREAS.items() for collection in names}


@dataclass(frozen=True)
class ApiCredentials:
    """The API key pair the simulator accepts, and the member it belongs to."""

    company_id: str = "simulated"
    public_key: str = "public-key"
    private_key: str = "private-key"
    member: str = "psasync"  # identifier of the API member; `updatedBy` of API writes


class ConnectWiseSimulator:
    """One simulated ConnectWise site: a store, its API app, fault settings and counters.

    ``before_write``: hooks called with each API write request just before it is applied
    (`simulators/races.py`).
    """

    def __init__(
        self,
        store: ConnectWiseStore | None = None,
        *,
        credentials: ApiCredentials | None = None,
        company_name: str = "Simulated MSP",
        faults: Faults | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        integrator: IntegratorLogin | None = None,
        denied: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store if store is not None else ConnectWiseStore()
        self.credentials = credentials or ApiCredentials()
        self.company_name = company_name
        self.faults = faults or Faults()
        self.traffic = Traffic()
        # Areas the API member may not read or write: {"tickets": "read"} and the like.
        self.denials = Denials(tuple(AREAS), denied)
        self.before_write: list[WriteHook] = []
        self.sleep = sleep
        # The legacy SOAP API's login (with `credentials.company_id`); `soap/` serves it.
        self.integrator = integrator or IntegratorLogin()
        self._handlers = ResourceHandlers(self.store)
        self.store.add_member(self.credentials.member, "API", "Member", "A")
        self.callbacks = Callbacks(
            self.store,
            company_id=self.credentials.company_id,
            api_member=self.credentials.member,
            codebase=CODEBASE.rstrip("/"),
        )
        self.store.listeners.append(self.callbacks.on_write)
        self.app = Starlette(
            routes=[
                Route("/login/companyinfo/{company_id}", self._company_info, methods=["GET"]),
                Route("/__simulator/faults", self._faults, methods=["GET", "POST", "DELETE"]),
                Route("/__simulator/callbacks", self._callback_control, methods=["GET", "POST"]),
                Route(
                    "/{codebase}/system/callbackkey/index.rails",
                    self._callback_key,
                    methods=["GET"],
                ),
                Mount("/{codebase}/apis/3.0", routes=self._api_routes()),
                Route(
                    SOAP_PATH, SoapEndpoint(self, self.integrator).serve, methods=["GET", "POST"]
                ),
            ],
            middleware=[Middleware(TolerantPaths)],
            exception_handlers={404: _endpoint_not_found, 405: _endpoint_not_found},
            lifespan=self._lifespan,
        )
        self.app.state.simulator = self

    # ------------------------------------------------------------------------------ routes

    def _api_routes(self) -> list[Route]:
        routes = [
            Route("/system/info", self._endpoint(_system_info), methods=_METHODS),
            Route(
                "/service/tickets/{id:int}/configurations",
                self._endpoint(self._guarded("tickets", self._handlers.ticket_configurations)),
                methods=_METHODS,
            ),
        ]
        for resource in RESOURCES.values():
            path = "/" + resource.path.replace("{parent}", "{parent:int}")
            for suffix, extra in (("/count", {"count": True}), ("/{id:int}", {}), ("", {})):
                handler = self._resource_handler(resource.name, extra)
                routes.append(Route(path + suffix, self._endpoint(handler), methods=_METHODS))
        routes.append(Route("/{rest:path}", self._endpoint(_no_endpoint), methods=_METHODS))
        return routes

    def _resource_handler(self, collection: str, extra: dict[str, Any]) -> Callable[[Call], Reply]:
        def handle(call: Call) -> Reply:
            path = {**call.request.path_params, **extra}
            return dispatch(self._handlers, call, collection, call.request.method, path)

        return self._guarded(collection, handle)

    def _guarded(
        self, collection: str, handler: Callable[[Call], Reply]
    ) -> Callable[[Call], Reply]:
        """`handler`, refused with 403 while the collection's area is denied."""
        area = AREA_OF.get(collection)

        def handle(call: Call) -> Reply:
            method = call.request.method
            if area is not None and self.denials.denies(area, method):
                raise Forbidden(area, method not in ("GET", "HEAD"))
            return handler(call)

        return handle

    def _endpoint(
        self, handler: Callable[[Call], Reply]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._serve(request, handler)

        return endpoint

    # -------------------------------------------------------------------------------- gate

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.callbacks.attach(asyncio.get_running_loop())
        try:
            yield
        finally:
            await self.callbacks.close()

    async def _serve(self, request: Request, handler: Callable[[Call], Reply]) -> Response:
        # Without a lifespan (in-process ASGI transports), the first request names the loop.
        self.callbacks.attach(asyncio.get_running_loop())
        traffic, faults = self.traffic, self.faults
        traffic.requests += 1
        traffic.by_method[request.method] = traffic.by_method.get(request.method, 0) + 1
        number = traffic.requests
        client_id = request.headers.get("clientid")  # header names are case-insensitive
        if client_id:
            traffic.with_client_id += 1
            traffic.last_client_id = client_id
        version = _negotiate_version(request.headers.get("accept", ""))
        if faults.latency_ms:
            await self.sleep(faults.latency_ms / 1000)
        status = faults.fault_for(number)
        if status is not None:
            return _respond(self._fault(status), version)
        try:
            codebase = request.path_params["codebase"]
            if not _CODEBASE.fullmatch(codebase):
                raise EndpointNotFound()
            member = self._authenticate(request.headers.get("authorization", ""))
            body = None
            if request.method in ("POST", "PUT", "PATCH"):
                body = parse_body(await request.body())
            params = {k.lower(): v for k, v in request.query_params.items()}
            base_url = f"{request.url.scheme}://{request.url.netloc}"
            api_base = f"{base_url}/{codebase}/apis/3.0"
            if request.method in _WRITES:
                await before_write(self.before_write, request)
            with self.callbacks.request_origin(base_url, codebase):
                reply = handler(Call(request, params, api_base, member, body))
        except ApiError as error:
            reply = Reply(error.body(), error.status)
        if request.method in _WRITES and reply.status < 300:
            traffic.writes += 1
            if faults.drops_answer(traffic.writes):
                traffic.faults_injected += 1
                traffic.dropped_answers += 1
                return DroppedAnswer(_respond(reply, version))
        traffic.served += 1
        return _respond(reply, version)

    def _authenticate(self, header: str) -> str:
        """The API member behind ``Basic base64(companyId+publicKey:privateKey)``.

        Anything else (another scheme, text outside base64's alphabet, bytes that are not
        UTF-8, no colon) is the same 401 as a wrong key: the header is attacker input.
        """
        scheme, _, encoded = header.partition(" ")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII header text
            decoded = ""
        user, colon, private_key = decoded.partition(":")
        company_id, _, public_key = user.partition("+")
        expected = self.credentials
        if not (
            scheme.lower() == "basic"
            and colon
            and company_id.lower() == expected.company_id.lower()
            and same_secret(public_key, expected.public_key)
            and same_secret(private_key, expected.private_key)
        ):
            raise Unauthorized("The API credentials are missing or not valid for this company.")
        return expected.member

    def _fault(self, status: int) -> Reply:
        traffic, faults = self.traffic, self.faults
        traffic.faults_injected += 1
        if status == 429:
            traffic.rate_limited += 1
            seconds = faults.retry_after_seconds
            message = f"Too many requests. Please try again in {seconds} seconds."
            return Reply(
                {"error": "ConnectWiseAPI", "message": message},
                429,
                {"Retry-After": str(seconds)},
            )
        traffic.server_errors += 1
        # pyconnectwise and others retry 500s whose text mentions a timeout, as SQL timeouts do.
        message = (
            "Execution Timeout Expired. The timeout period elapsed prior to completion of the "
            "operation or the server is not responding."
        )
        return Reply({"code": "ConnectWiseApi", "message": message}, status)

    # ------------------------------------------------------------------- outside the API

    async def _company_info(self, request: Request) -> Response:
        if request.path_params["company_id"].lower() != self.credentials.company_id.lower():
            return JSONResponse(None)
        return JSONResponse(
            {
                "CompanyName": self.company_name,
                "Codebase": CODEBASE,
                "VersionCode": "v" + CURRENT_VERSION,
                "VersionNumber": VERSION_NUMBER,
                "CompanyID": self.credentials.company_id,
                "IsCloud": True,
            }
        )

    async def _faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                changes = json.loads(await request.body())
                if not isinstance(changes, dict):
                    raise ValueError("send a JSON object of fault settings")
                changes = dict(changes)
                denied = changes.pop("deny", None)
                if denied is not None:
                    Denials(self.denials.areas, denied)  # check before changing anything
                self.faults.configure(changes)
                if denied is not None:
                    self.denials.configure(denied)
            except ValueError as error:
                return JSONResponse({"code": "InvalidObject", "message": str(error)}, 400)
        elif request.method == "DELETE":
            self.faults.clear()
            self.denials.clear()
        return JSONResponse(
            {
                "faults": self.faults.as_dict(),
                "denied": self.denials.as_dict(),
                "traffic": self.traffic.as_dict(),
            }
        )

    async def _callback_control(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                changes = json.loads(await request.body())
                if not isinstance(changes, dict):
                    raise ValueError("send a JSON object of callback settings")
                self.callbacks.configure(changes)
            except ValueError as error:
                return JSONResponse({"code": "InvalidObject", "message": str(error)}, 400)
        return JSONResponse(self.callbacks.as_dict())

    async def _callback_key(self, request: Request) -> Response:
        params = {k.lower(): v for k, v in request.query_params.items()}
        key = None
        if _CODEBASE.fullmatch(request.path_params["codebase"]):
            key = self.callbacks.signing_key_for(
                params.get("companyname", ""), params.get("id", "")
            )
        if key is None:
            return JSONResponse({"code": "NotFound", "message": "Callback key not found"}, 404)
        return JSONResponse({"signing_key": key})


def create_app(store: ConnectWiseStore | None = None, **options: Any) -> Starlette:
    """A Starlette app serving `store`; `options` as for `ConnectWiseSimulator`.

    The simulator (faults, traffic, credentials) is reachable as ``app.state.simulator``.
    """
    return ConnectWiseSimulator(store, **options).app


def _system_info(call: Call) -> Reply:
    if call.request.method != "GET":
        raise EndpointNotFound()
    return Reply(
        {
            "version": VERSION_NUMBER,
            "isCloud": True,
            "serverTimeZone": "Eastern Standard Time",
            "cloudRegion": "NA",
        }
    )


def _no_endpoint(call: Call) -> Reply:
    raise EndpointNotFound()


async def _endpoint_not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(EndpointNotFound().body(), 404)


def _negotiate_version(accept: str) -> str:
    """The API version a client pinned with ``Accept: ...; version=2022.1``, else the current."""
    for part in accept.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "version" and _VERSION.fullmatch(value.strip()):
            return value.strip()
    return CURRENT_VERSION


def _respond(reply: Reply, version: str) -> Response:
    headers = {
        "api-current-version": CURRENT_VERSION,
        "x-cw-request-id": str(uuid.uuid4()),
        "x-server-name": SERVER_NAME,
        **reply.headers,
    }
    if reply.body is None:
        return Response(status_code=reply.status, headers=headers)
    content = _JSON.encode(reply.body).encode()
    media_type = f"application/vnd.connectwise.com+json; version={version}"
    return Response(content, reply.status, headers, media_type=media_type)


class TolerantPaths:
    """Paths as ConnectWise tolerates them: ``v2025_1//apis/3.0`` (its own hrefs have it) and a
    trailing slash (django-connectwise requests ``company/configurations/``).

    The path is rewritten in place rather than redirected: a redirect would drop a POST body.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if "//" in path:
                path = re.sub("/{2,}", "/", path)
            if len(path) > 1 and path.endswith("/"):
                path = path[:-1]
            if path != scope["path"]:
                scope = {**scope, "path": path}
        await self.app(scope, receive, send)
