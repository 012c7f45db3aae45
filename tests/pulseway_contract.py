"""The Pulseway PSA OpenAPI contract, for tests: the document, adapted, and a recorder that checks
every request the simulator receives and every 200 response it sends against it.

The contract is ``simulators/pulseway/openapi-v2-subset.json``: the Kaseya BMS / Pulseway PSA v2
OpenAPI 3.0.1 document cut down, verbatim, to the paths the simulator serves. `contract_spec`
adapts a copy of it in these deliberate ways, each a documented property of the real API (see
``/work/shared/reference/psa-apis.md`` section 4) rather than a licence for the client or the
simulator:

1. Property names (and ``required`` lists) of the component schemas are camelCased the way
   System.Text.Json does (``IPAddress`` → ``ipAddress``): the document lists PascalCase, the
   wire is camelCase, both ways (psa-apis.md 4.4).
2. ``ErrorInfo`` and every DTO that is an envelope's ``Result`` may be null: the envelope has
   ``"error": null`` on success and ``"result": null`` on failure (.NET reference types).
3. ``GET /v2/crm/accounts/summary/{id}`` and ``/v2/crm/contacts/summary/{id}`` are documented
   as the bare DTO, but working clients read ``result``; the simulator wraps them (its default),
   so the copy wraps them too. With ``summary_envelope=False`` the original applies.
4. ``POST /v2/security/authenticate`` and ``/refreshtoken`` need no bearer token (the document
   inherits its global ``bearerAuth`` requirement onto them, which cannot be: they issue it).
5. Those two also accept ``application/x-www-form-urlencoded`` (the form working clients send;
   psa-apis.md 4.3: "x-www-form-urlencoded works; spec says multipart/form-data"), with the same
   schema. ASP.NET binds form field names case-insensitively (working clients send ``grantType``,
   ``userName``, the document says ``GrantType``, ``UserName``), so `Recorder` spells an
   urlencoded field the way the schema does when the names differ only in case. Multipart
   bodies are checked as sent.
6. ``date-time`` query parameters (``Filter.ModifiedOnFrom`` …) accept ISO 8601 without a zone
   as well as RFC 3339: .NET binds ``DateTime`` either way and zoneless UTC is what working
   clients send (psa-apis.md 4.5). Anything that is not an ISO date-time still fails.

Three checks are stricter than openapi-core, because the API fails silently where they apply:

- a query parameter the operation does not declare (``Filter.ModifiedSince``, ``pageSize`` for
  ``PageSize``) is a violation: ASP.NET ignores it and the call lists everything;
- a ``boolean`` query parameter must be ``true`` or ``false`` (any case), as .NET parses one;
  openapi-core also takes ``yes``, ``1``, ``on``…;
- a query parameter may be repeated only when the document declares it an array (exploded, the
  3.0 default): ASP.NET binds the first value of a repeated scalar and drops the rest, so
  ``?Filter.CategoryIds=1&Filter.CategoryIds=2`` (declared ``string``) filters by 1 alone.

openapi-core parses only ``application/json`` bodies as JSON by itself; `contract_spec` teaches
it the other JSON media types the document lists (``application/json-patch+json``, which the
client's PATCH calls send, and ``text/json``), so those bodies are validated too.

Only HTTP 200 is declared by the document; other answers (401, 429, 5xx, 404 envelopes) are the
tests' business and are not checked against it. Requests are always checked.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.testing import MockRequest, MockResponse
from werkzeug.datastructures import Headers, ImmutableMultiDict

import simulators.pulseway
from simulators.pulseway.wire import camel

__all__ = [
    "BASE",
    "SPEC",
    "Exchange",
    "Recorder",
    "contract_document",
    "contract_spec",
    "exchange_problems",
]

SPEC = Path(simulators.pulseway.__file__).parent / "openapi-v2-subset.json"
BASE = "http://psa.test"
_FORM = "application/x-www-form-urlencoded"
_JSON_TYPES = ("application/json-patch+json", "text/json", "application/*+json")
_LOGIN_PATHS = ("/v2/security/authenticate", "/v2/security/refreshtoken")
# ISO 8601 date-time, zone optional (adjustment 6); fractions as .NET writes them (7 digits).
_ISO_DATE_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})?$"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


# ------------------------------------------------------------------------------ the document


def _camel_schemas(node: Any) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                out[key] = {camel(k): _camel_schemas(v) for k, v in value.items()}
            elif key == "required" and isinstance(value, list):
                out[key] = [camel(k) for k in value]
            else:
                out[key] = _camel_schemas(value)
        return out
    if isinstance(node, list):
        return [_camel_schemas(v) for v in node]
    return node


def _operations(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in document["paths"].values():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "patch", "head", "options"}:
                yield operation


@cache
def contract_spec(summary_envelope: bool = True) -> OpenAPI:
    """The document with the adjustments listed in this module's docstring (cached)."""
    # openapi-core parses only application/json as JSON; the document lists the JSON types
    # ASP.NET reads, JSON Patch (what PATCH calls send) among them.
    json_types: dict[str, Callable[[bytes], Any]] = {kind: _json_loads for kind in _JSON_TYPES}
    config = Config(extra_media_type_deserializers=json_types)
    return OpenAPI.from_dict(copy.deepcopy(contract_document(summary_envelope)), config=config)


def _json_loads(value: bytes, **parameters: str) -> Any:
    return json.loads(value)


@cache
def contract_document(summary_envelope: bool = True) -> dict[str, Any]:
    """`contract_spec`'s document as a dict (cached: do not change it)."""
    document: dict[str, Any] = json.loads(SPEC.read_text())
    document["servers"] = [{"url": "/"}]
    schemas = document["components"]["schemas"]
    # 1. camelCase on the wire.
    for name, schema in list(schemas.items()):
        schemas[name] = _camel_schemas(schema)
    # 2. null error / result.
    schemas["ErrorInfo"]["nullable"] = True
    for schema in schemas.values():
        result = schema.get("properties", {}).get("result", {})
        if "$ref" in result:
            schemas[result["$ref"].split("/")[-1]]["nullable"] = True
    # 3. the by-id summaries in their envelope.
    if summary_envelope:
        for path in ("/v2/crm/accounts/summary/{id}", "/v2/crm/contacts/summary/{id}"):
            content = document["paths"][path]["get"]["responses"]["200"]["content"]
            for media in content.values():
                schemas[media["schema"]["$ref"].split("/")[-1]]["nullable"] = True
                media["schema"] = {
                    "type": "object",
                    "properties": {
                        "success": {"type": "boolean"},
                        "error": {"$ref": "#/components/schemas/ErrorInfo"},
                        "result": copy.deepcopy(media["schema"]),
                    },
                }
    for path in _LOGIN_PATHS:
        operation = document["paths"][path]["post"]
        # 4. no token needed to get one.
        operation["security"] = []
        # 5. urlencoded forms too.
        content = operation["requestBody"]["content"]
        content[_FORM] = {"schema": copy.deepcopy(content["multipart/form-data"]["schema"])}
    # 6. zoneless date-time filters.
    for operation in _operations(document):
        for parameter in operation.get("parameters", []):
            schema = parameter.get("schema", {})
            if parameter.get("in") == "query" and schema.get("format") == "date-time":
                parameter["schema"] = {"type": "string", "pattern": _ISO_DATE_TIME}
    return document


# ------------------------------------------------------------------------------- exchanges


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request as the simulator received it and the answer it sent."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    body: bytes
    status: int
    response_body: bytes
    response_content_type: str = "application/json"

    @property
    def content_type(self) -> str:
        return self.header("content-type") or ""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def __str__(self) -> str:
        query = f"?{urlencode(self.query)}" if self.query else ""
        return f"{self.method} {self.path}{query}"


def _canonical_form(document: dict[str, Any], exchange: Exchange) -> bytes:
    """An urlencoded body with field names spelled as the schema does (adjustment 5)."""
    if exchange.content_type.split(";")[0].strip().lower() != _FORM:
        return exchange.body
    operation = _operation(document, exchange) or {}
    content = operation.get("requestBody", {}).get("content", {})
    fields = content.get(_FORM, {}).get("schema", {}).get("properties", {})
    declared = {n.lower(): n for n in fields}
    pairs = parse_qsl(exchange.body.decode(), keep_blank_values=True)
    return urlencode([(declared.get(k.lower(), k), v) for k, v in pairs]).encode()


def _wire_request(document: dict[str, Any], exchange: Exchange) -> MockRequest:
    request = MockRequest(
        BASE,
        exchange.method,
        exchange.path,
        data=_canonical_form(document, exchange),
        content_type=exchange.content_type,
    )
    # MockRequest takes a dict: keep repeated query parameters and every header instead.
    request.parameters = RequestParameters(
        query=ImmutableMultiDict(list(exchange.query)),
        header=Headers(list(exchange.headers)),
        cookie=ImmutableMultiDict(),
        path={},
    )
    return request


def _details(error: BaseException) -> Iterator[str]:
    """The innermost reasons openapi-core gives (schema errors, else the cause, else itself)."""
    cause = error.__cause__ or error.__context__
    schema_errors = getattr(error, "schema_errors", None) or getattr(cause, "schema_errors", None)
    if schema_errors:
        for schema_error in schema_errors:
            where = "/".join(str(p) for p in schema_error.absolute_path)
            yield f"{where or '(body)'}: {schema_error.message}" if where else schema_error.message
        return
    if cause is not None and not isinstance(cause, KeyError):
        deeper = list(_details(cause))
        yield f"{error}: {'; '.join(deeper)}" if deeper else f"{error}: {cause}"
        return
    yield str(error)


def _repeated_scalars(document: dict[str, Any], exchange: Exchange) -> Iterator[str]:
    names = [name for name, _ in exchange.query]
    repeated = {name for name in names if names.count(name) > 1}
    operation = _operation(document, exchange) if repeated else None
    for parameter in (operation or {}).get("parameters", []):
        name = parameter["name"]
        if parameter["in"] != "query" or name not in repeated:
            continue
        schema_type = parameter.get("schema", {}).get("type")
        if schema_type != "array" or parameter.get("explode", True) is False:
            yield (
                f"query parameter {name!r} is repeated ({names.count(name)} times) but the "
                f"document declares a single {schema_type or 'value'}: the API would bind "
                f"only the first"
            )


def _strict_booleans(document: dict[str, Any], exchange: Exchange) -> Iterator[str]:
    operation = _operation(document, exchange) or {}
    booleans = {
        p["name"]
        for p in operation.get("parameters", [])
        if p["in"] == "query" and p.get("schema", {}).get("type") == "boolean"
    }
    for name, value in exchange.query:
        if name in booleans and value.lower() not in ("true", "false"):
            yield f"query parameter {name!r} is {value!r}: the API binds only true or false"


def _undeclared(document: dict[str, Any], exchange: Exchange) -> Iterator[str]:
    operation = _operation(document, exchange)
    if operation is None or not exchange.query:
        return
    declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    for name in dict.fromkeys(name for name, _ in exchange.query):
        if name not in declared:
            yield f"query parameter {name!r} is not in the document: the API would ignore it"


def _operation(document: dict[str, Any], exchange: Exchange) -> dict[str, Any] | None:
    """The operation ``exchange`` calls (a literal segment wins over a template's)."""
    candidates = [
        (template.count("{"), item[exchange.method.lower()])
        for template, item in document["paths"].items()
        if exchange.method.lower() in item and _matches(template, exchange.path)
    ]
    return min(candidates, key=lambda c: c[0])[1] if candidates else None


def _matches(template: str, path: str) -> bool:
    wanted, actual = template.strip("/").split("/"), path.strip("/").split("/")
    return len(wanted) == len(actual) and all(
        w == a or (w.startswith("{") and w.endswith("}"))
        for w, a in zip(wanted, actual, strict=True)
    )


def exchange_problems(exchange: Exchange, summary_envelope: bool = True) -> list[str]:
    """What in ``exchange`` the contract does not allow: the request always, a 200's body."""
    spec, document = contract_spec(summary_envelope), contract_document(summary_envelope)
    request = _wire_request(document, exchange)
    found = [f"request: {d}" for e in spec.iter_request_errors(request) for d in _details(e)]
    found += [f"request: {p}" for p in _repeated_scalars(document, exchange)]
    found += [f"request: {p}" for p in _undeclared(document, exchange)]
    found += [f"request: {p}" for p in _strict_booleans(document, exchange)]
    if exchange.status == 200 and not found:
        response = MockResponse(
            exchange.response_body, 200, content_type=exchange.response_content_type
        )
        for error in spec.iter_response_errors(request, response):
            found += [f"response: {d}" for d in _details(error)]
    return [f"{exchange}: {problem}" for problem in found]


# -------------------------------------------------------------------------------- recorder


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``messages`` first, then whatever ``receive`` brings (a disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


@dataclass
class Recorder:
    """ASGI middleware recording every ``/v2/`` exchange, checked against the contract on demand.

    ``recorder.wrap(simulator.app)`` serves the simulator through it, in-process or on a port in
    another thread (`serve_in_thread`): exchanges are appended under a lock and checked later, on
    the test's thread, by `problems` (``/__simulator`` control calls are not part of the API).
    """

    summary_envelope: bool = True
    exchanges: list[Exchange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wrap(self, app: App) -> App:
        async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not str(scope["path"]).startswith("/v2/"):
                await app(scope, receive, send)
                return
            await self._exchange(app, scope, receive, send)

        return recorded

    async def _exchange(self, app: App, scope: Scope, receive: Receive, send: Send) -> None:
        # The whole body first: the app may answer (401, 429) without reading it.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await app(scope, _replay([message], receive), send)
                return
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                break
        status = 0
        content_type = "application/json"
        sent = bytearray()
        receive_recorded = _replay(
            [{"type": "http.request", "body": bytes(body), "more_body": False}], receive
        )

        async def send_recorded(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for key, value in message.get("headers", []):
                    if key.decode("latin-1").lower() == "content-type":
                        content_type = value.decode("latin-1").split(";")[0].strip()
            elif message["type"] == "http.response.body":
                sent.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    # Before the last chunk leaves: the client sees nothing the recorder missed.
                    self._add(scope, bytes(body), status, bytes(sent), content_type)
            await send(message)

        await app(scope, receive_recorded, send_recorded)

    def _add(self, scope: Scope, body: bytes, status: int, sent: bytes, content_type: str) -> None:
        query = parse_qsl(bytes(scope.get("query_string", b"")).decode(), keep_blank_values=True)
        headers = tuple(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])
        )
        exchange = Exchange(
            method=str(scope["method"]),
            path=str(scope["path"]),
            query=tuple(query),
            headers=headers,
            body=body,
            status=status,
            response_body=sent,
            response_content_type=content_type,
        )
        with self._lock:
            self.exchanges.append(exchange)

    def recorded(self) -> list[Exchange]:
        with self._lock:
            return list(self.exchanges)

    def problems(self, exchanges: Iterable[Exchange] | None = None) -> list[str]:
        chosen = self.recorded() if exchanges is None else exchanges
        return [
            problem
            for exchange in chosen
            for problem in exchange_problems(exchange, self.summary_envelope)
        ]

    def take_problems(self) -> list[str]:
        """The violations so far, forgotten after: for a test that breaks the contract on
        purpose (to see the simulator refuse) and checks it broke it only as intended."""
        with self._lock:
            taken, self.exchanges = self.exchanges, []
        return self.problems(taken)

    def report(self) -> str | None:
        """None when every exchange kept to the contract, else one line per violation."""
        problems = self.problems()
        if not problems:
            return None
        count = len(self.recorded())
        return f"{len(problems)} violation(s) of the Pulseway OpenAPI contract in {count} " + (
            "exchanges:\n  " + "\n  ".join(problems)
        )
