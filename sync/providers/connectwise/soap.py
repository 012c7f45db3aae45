"""ConnectWise Manage legacy SOAP API (integrator login) over zeep and an injected httpx client.

For old on-premise installs that only speak the ASMX APIs (psa-apis.md §3). Each service lives at
``{site}/v4_6_release/apis/{1.5|2.0}/{Name}Api.asmx``; its WSDL is read from ``…asmx?wsdl`` like
any SOAP client does, parsed once per site and kept in a bounded process-wide cache. The WSDL's
``soap:address`` names whatever host served it, so calls always go to the site's own URL.

Async choice: zeep's ``AsyncClient`` with our own ``AsyncTransport`` subclass over the shared
``httpx.AsyncClient`` (from ``sync.providers.urls.build_http_client``), and
``zeep.proxy.AsyncServiceProxy`` built directly (``create_service`` returns a sync proxy that
breaks on call). zeep 4.3.3 needs no ``zeep[async]`` extra here: httpx is already installed.
``bench/cw_soap_async.py`` (200 FindCompanies of 50 rows, loopback server in its own process,
2 cores) measured a tie: about 175-180 calls/s and a 5.4 ms median both ways, one at a time or
ten at a time, against zeep's sync client in ``asyncio.to_thread``. The cost is zeep's XML work,
which holds the GIL in a thread as much as on the loop, so threads buy nothing. The async path
wins on fit: the same TLS/redirect/pool settings as REST, ``send_guard`` awaited before every
attempt, no second HTTP stack (requests) or thread pool to size, and no zeep transport logging
the envelope (which carries the password). The WSDL is fetched with the async client and only
parsed in a thread (about 70 KB of XML, once per site).

Failures map to ``sync.errors`` by class, as the REST client does:

    fault "Username or password is incorrect"   CredentialsError
    fault "Cannot find company"                 CredentialsError (wrong company id)
    fault about permission / security / access  PermissionDenied (area by service: CompanyApi
                                                companies, ContactApi contacts,
                                                ConfigurationApi configurations; Find/Get/Load
                                                are reads, the rest writes). ConnectWise's text
                                                for an integrator login without an API's access
                                                is undocumented: a fault without such words
                                                stays a RecordError
    any other fault                             RecordError (fault text, fault code)
    429/5xx without a fault, timeouts           retried per RetryPolicy, then RetriableError
    no connection                               retried, then UnreachableError
    a redirect, a non-SOAP answer, a loop       ProtocolError

Records are plain dicts in SOAP field names (``CompanyRecID``, ``CompanyName``…); mapping them
to psasync's fields is ``mapping.py``'s job. The integrator password never appears in a
message, a repr or a log line.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import httpx
from zeep import AsyncClient, Settings
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault, TransportError, ValidationError, XMLSyntaxError
from zeep.helpers import serialize_object
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport, Transport
from zeep.wsdl import Document

from sync.errors import (
    CredentialsError,
    PermissionDenied,
    ProtocolError,
    RecordError,
    RetriableError,
    SyncError,
    UnreachableError,
)
from sync.providers.http import (
    RETRY_STATUSES,
    RetryPolicy,
    Sleep,
    parse_retry_after,
    send,
    send_guard,
)
from sync.providers.urls import Resolver, validate_psa_url

from .credentials import ConnectWiseCredentials

__all__ = ["ConnectWiseSoapClient", "SoapEntity", "clear_wsdl_cache"]

logger = logging.getLogger(__name__)

Record = dict[str, Any]
SoapEntity = Literal["company", "contact", "configuration"]
ApiVersion = Literal["1.5", "2.0"]

_SERVICE: Final = "ConnectWise"
_NS: Final = "{http://connectwise.com}"
_MAX_PAGE_SIZE: Final = 1000
# Skip paging past this many records means the server ignores skip (or the data is absurd).
_DEFAULT_MAX_RECORDS: Final = 2_000_000
_WSDL_CACHE_SIZE: Final = 64
_DEFAULT_RETRY: Final = RetryPolicy()
# Untrusted XML from a customer-supplied host: no DTDs, entities or external fetches.
_SETTINGS: Final = Settings(forbid_dtd=True, forbid_entities=True, forbid_external=True)
# Operations that change nothing when sent twice; the rest are only re-sent when surely unsent.
_IDEMPOTENT_PREFIXES: Final = ("Find", "Get", "Load", "Delete")
_UNSENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_UNAPPLIED_STATUSES: Final = frozenset({429, 503})
_CREDENTIAL_FAULTS: Final = ("username or password is incorrect", "cannot find company")
# Words of a fault about the login's rights (the real text is not documented, psa-apis.md §3).
_PERMISSION_FAULTS: Final = (
    "permission",
    "access denied",
    "not authorized",
    "not authorised",
    "does not have access",
    "security",
)
_SERVICE_AREAS: Final = {
    "Company": "companies",
    "Contact": "contacts",
    "Configuration": "configurations",
}
_READ_PREFIXES: Final = ("Find", "Get", "Load")


@dataclass(frozen=True, slots=True)
class _Entity:
    """One SOAP service's operation names (None: the service has no such operation)."""

    service: str
    param: str  # the record element's name in Add/Update calls
    id_field: str  # the id in find results, to spot a repeated page
    find: str
    get: str
    add_or_update: str
    delete: str
    count: str | None = None
    add: str | None = None
    update: str | None = None
    # Elements that are minOccurs=1 nillable and must be sent (None becomes xsi:nil).
    count_extra: Mapping[str, Any] = field(default_factory=dict)


_ENTITIES: Final[Mapping[SoapEntity, _Entity]] = {
    "company": _Entity(
        service="Company",
        param="company",
        id_field="CompanyRecID",
        find="FindCompanies",
        get="GetCompany",
        add="AddCompany",
        update="UpdateCompany",
        add_or_update="AddOrUpdateCompany",
        delete="DeleteCompany",
    ),
    "contact": _Entity(
        service="Contact",
        param="contact",
        id_field="Id",
        find="FindContacts",
        get="GetContact",
        count="FindContactsCount",
        add_or_update="AddOrUpdateContact",
        delete="DeleteContact",
    ),
    "configuration": _Entity(
        service="Configuration",
        param="configuration",
        id_field="Id",
        find="FindConfigurations",
        get="GetConfiguration",
        count="FindConfigurationsCount",
        add="AddConfiguration",
        update="UpdateConfiguration",
        add_or_update="AddOrUpdateConfiguration",
        delete="DeleteConfiguration",
        count_extra={"isOpen": None},
    ),
}

# WSDL URL -> parsed document. Parsing is the costly part; bounded so a process serving many
# sites does not grow without end. Only touched from event-loop code (no lock needed).
_wsdl_cache: OrderedDict[str, Document] = OrderedDict()


def clear_wsdl_cache() -> None:
    """Forget every parsed WSDL (tests; a site upgraded to a new API version)."""
    _wsdl_cache.clear()


class ConnectWiseSoapClient:
    """ConnectWise's SOAP APIs for one tenant's integrator login, over a shared httpx client.

    ``find`` is an async iterator of pages (``list[dict]``) paged with ``limit``/``skip``;
    the other operations return the record as a dict (``None`` where the API answers nothing).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: ConnectWiseCredentials,
        *,
        sandbox: bool = False,
        api_version: ApiVersion = "2.0",
        retry: RetryPolicy = _DEFAULT_RETRY,
        page_size: int = 500,
        max_records: int = _DEFAULT_MAX_RECORDS,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        resolver: Resolver | None = None,
    ) -> None:
        if not 1 <= page_size <= _MAX_PAGE_SIZE:
            # limit=0 returns nothing at all: it would look like an empty PSA.
            raise ValueError(f"page_size must be between 1 and {_MAX_PAGE_SIZE}")
        if api_version not in ("1.5", "2.0"):
            raise ValueError(f"not a ConnectWise SOAP API version: {api_version!r}")
        self._http = http
        self._site_url = credentials.site_url
        self._company_id = credentials.company_id
        self._login = credentials.integrator_login_id
        self._password = credentials.integrator_password
        self._sandbox = sandbox
        self._api_version = api_version
        self._retry = retry
        self._page_size = page_size
        self._max_records = max_records
        self._sleep = sleep
        self._rng = rng
        self._resolver = resolver
        self._site: str | None = None
        self._proxies: dict[str, AsyncServiceProxy] = {}
        self._transport = _HttpxTransport(self)

    def __repr__(self) -> str:
        return f"ConnectWiseSoapClient(site={self._site_url!r}, company_id={self._company_id!r})"

    # -- operations ----------------------------------------------------------------------------

    async def find(
        self,
        entity: SoapEntity,
        conditions: str | None = None,
        order_by: str | None = None,
    ) -> AsyncIterator[list[Record]]:
        """Pages of ``Find{Entities}``, ``page_size`` records each, until a short page.

        Skip paging is only stable under a stable order: pass ``order_by`` (e.g. ``"Id"``) when
        records may change during the walk. Raises ``ProtocolError`` if a page repeats the one
        before it or ``skip`` passes ``max_records``.
        """
        spec = _ENTITIES[entity]
        async for page in self._pages(spec, spec.find, spec.id_field, conditions, order_by):
            yield page

    async def first(self, entity: SoapEntity) -> list[Record]:
        """``Find{Entities}`` with ``limit`` 1: whether the login may read the entity."""
        spec = _ENTITIES[entity]
        rows = await self._call(spec, spec.find, conditions=None, orderBy=None, limit=1, skip=0)
        return _records(rows)

    async def configuration_types(self) -> AsyncIterator[list[Record]]:
        """Pages of ``FindConfigurationTypes`` (every type, with its id and inactive flag)."""
        async for page in self._pages(
            _ENTITIES["configuration"], "FindConfigurationTypes", "Id", None, "Id"
        ):
            yield page

    async def _pages(
        self,
        spec: _Entity,
        operation: str,
        id_field: str,
        conditions: str | None,
        order_by: str | None,
    ) -> AsyncIterator[list[Record]]:
        previous: tuple[Any, ...] | None = None
        skip = 0
        while True:
            if skip > self._max_records:
                raise ProtocolError(
                    f"ConnectWise {operation} went past {self._max_records} records; stopping "
                    f"instead of paging forever"
                )
            rows = await self._call(
                spec,
                operation,
                conditions=conditions,
                orderBy=order_by,
                limit=self._page_size,
                skip=skip,
            )
            page = _records(rows)
            ids = tuple(row.get(id_field) for row in page)
            if page and ids == previous:
                raise ProtocolError(
                    f"ConnectWise {operation} returned the same page twice (skip={skip}); "
                    f"stopping instead of looping forever"
                )
            if page:
                yield page
            if len(page) < self._page_size:
                return
            previous = ids
            skip += len(page)

    async def get(self, entity: SoapEntity, record_id: int) -> Record | None:
        """``Get{Entity}(id)``; None when the API answers with no record."""
        spec = _ENTITIES[entity]
        return _record(await self._call(spec, spec.get, id=_record_id(record_id)))

    async def count(self, entity: SoapEntity, conditions: str | None = None) -> int:
        """``Find{Entities}Count``. CompanyApi has no count operation (ValueError)."""
        spec = _ENTITIES[entity]
        if spec.count is None:
            raise ValueError(f"ConnectWise's {spec.service}Api has no count operation")
        value = await self._call(spec, spec.count, conditions=conditions, **spec.count_extra)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolError(f"ConnectWise answered {spec.count} without an integer")
        return value

    async def add(self, entity: SoapEntity, record: Mapping[str, Any]) -> Record | None:
        """``Add{Entity}``; returns the created record."""
        spec = _ENTITIES[entity]
        return await self._write(spec, _operation(spec, spec.add, "add"), record)

    async def update(self, entity: SoapEntity, record: Mapping[str, Any]) -> Record | None:
        """``Update{Entity}`` (the record carries its ``Id``); returns the stored record."""
        spec = _ENTITIES[entity]
        return await self._write(spec, _operation(spec, spec.update, "update"), record)

    async def add_or_update(self, entity: SoapEntity, record: Mapping[str, Any]) -> Record | None:
        """``AddOrUpdate{Entity}``: ``Id`` 0 creates, another id updates."""
        spec = _ENTITIES[entity]
        return await self._write(spec, spec.add_or_update, record)

    async def delete(self, entity: SoapEntity, record_id: int) -> None:
        """``Delete{Entity}(id)`` (an empty response)."""
        spec = _ENTITIES[entity]
        await self._call(spec, spec.delete, id=_record_id(record_id))

    # -- plumbing ------------------------------------------------------------------------------

    async def _write(
        self, spec: _Entity, operation: str, record: Mapping[str, Any]
    ) -> Record | None:
        return _record(await self._call(spec, operation, **{spec.param: dict(record)}))

    async def _call(self, spec: _Entity, operation: str, **arguments: Any) -> Any:
        credentials = self._credentials()  # before any request: nothing to send without them
        proxy = await self._proxy(spec.service)
        try:
            return await proxy[operation](credentials=credentials, **arguments)
        except SyncError:
            raise
        except Fault as exc:
            raise self._fault_error(exc, operation, spec.service) from None
        except ValidationError as exc:
            # zeep refused to build the request: the record lacks a required element.
            raise RecordError(
                f"ConnectWise {operation} was not sent: {self._scrub(str(exc))[:500]}"
            ) from None
        except (TransportError, XMLSyntaxError) as exc:
            status = getattr(exc, "status_code", None)
            if isinstance(status, int) and status >= 500:
                raise RetriableError(f"ConnectWise failed on {operation} ({status})") from None
            raise ProtocolError(
                f"ConnectWise did not answer {operation} like a SOAP service"
                + (f" ({status})" if status else "")
                + ": check the site address and API version"
            ) from None
        except ZeepError as exc:
            raise ProtocolError(
                f"ConnectWise answered {operation} with something zeep could not read: "
                f"{type(exc).__name__}"
            ) from None

    def _credentials(self) -> dict[str, str | None]:
        if not self._login or not self._password:
            raise CredentialsError(
                "ConnectWise's SOAP API needs an integrator login id and password"
            )
        return {
            "CompanyId": self._company_id,
            "IntegratorLoginId": self._login,
            "IntegratorPassword": self._password,
        }

    def _fault_error(self, fault: Fault, operation: str, service: str) -> SyncError:
        text = self._scrub(str(fault.message or "")).strip()[:500]
        lowered = text.lower()
        if any(marker in lowered for marker in _CREDENTIAL_FAULTS):
            return CredentialsError(
                f"ConnectWise refused the integrator login for company '{self._company_id}' "
                f"({text}): check the company id, integrator login id and password, and that "
                f"the login may use the API"
            )
        if any(marker in lowered for marker in _PERMISSION_FAULTS):
            return PermissionDenied(
                f"ConnectWise denied {operation} ({text}): the integrator login may not use "
                f"the {service} API",
                area=_SERVICE_AREAS.get(service),
                access="read" if operation.startswith(_READ_PREFIXES) else "write",
            )
        code = str(fault.code) if fault.code else None
        return RecordError(
            f"ConnectWise refused {operation}: {text or 'a SOAP fault without text'}",
            status_code=500,
            psa_code=code,
            errors=[{"code": code, "message": text}],
        )

    def _scrub(self, text: str) -> str:
        if self._password and len(self._password) >= 4:
            text = text.replace(self._password, "***")
        return text

    async def _proxy(self, service: str) -> AsyncServiceProxy:
        proxy = self._proxies.get(service)
        if proxy is None:
            site = await self._validated_site()
            address = f"{site}/v4_6_release/apis/{self._api_version}/{service}Api.asmx"
            document = await self._document(address)
            client = AsyncClient(document, transport=self._transport, settings=_SETTINGS)  # type: ignore[no-untyped-call]
            binding = document.bindings.get(f"{_NS}{service}ApiSoap")
            if binding is None:
                raise ProtocolError(
                    f"ConnectWise's {service}Api WSDL has no {service}ApiSoap binding: check "
                    f"the site address and API version"
                )
            # The WSDL's soap:address is whatever host served it: always call the site itself.
            proxy = AsyncServiceProxy(client, binding, address=address)  # type: ignore[no-untyped-call]
            self._proxies[service] = proxy
        return proxy

    async def _validated_site(self) -> str:
        if self._site is None:
            self._site = await validate_psa_url(
                self._site_url,
                sandbox=self._sandbox,
                resolver=self._resolver,
                service=_SERVICE,
            )
        return self._site

    async def _document(self, address: str) -> Document:
        url = f"{address}?wsdl"
        document = _wsdl_cache.get(url)
        if document is not None:
            _wsdl_cache.move_to_end(url)
            return document
        response = await send(
            self._http,
            lambda: self._http.build_request("GET", url),
            self._retry,
            sleep=self._sleep,
            rng=self._rng,
            service=_SERVICE,
        )
        if response.status_code != 200:
            raise ProtocolError(
                f"ConnectWise did not serve the WSDL at {url} ({response.status_code} "
                f"{response.reason_phrase}): check the site address and API version"
            )
        try:
            document = await asyncio.to_thread(_parse_wsdl, response.content)
        except (ZeepError, SyntaxError, ValueError) as exc:  # lxml's XMLSyntaxError too
            raise ProtocolError(
                f"ConnectWise served something at {url} that is not a usable WSDL "
                f"({type(exc).__name__})"
            ) from None
        _wsdl_cache[url] = document
        while len(_wsdl_cache) > _WSDL_CACHE_SIZE:
            _wsdl_cache.popitem(last=False)
        return document

    async def _post(self, address: str, message: bytes, headers: dict[str, str]) -> httpx.Response:
        """Send one envelope, retrying transient failures; a fault is returned for zeep to read."""
        operation = headers.get("SOAPAction", "").strip('"').rsplit("/", 1)[-1]
        idempotent = operation.startswith(_IDEMPOTENT_PREFIXES)
        policy = self._retry
        attempt = server_errors = 0
        while True:
            attempt += 1
            guard = send_guard.get()
            if guard is not None:
                await guard()
            try:
                response = await self._http.post(address, content=message, headers=headers)
            except httpx.TransportError as exc:
                unsent = isinstance(exc, _UNSENT)
                if (idempotent or unsent) and attempt < policy.max_attempts:
                    await self._sleep(policy.backoff(attempt, self._rng))
                    continue
                raise _transport_error(exc, operation, attempt) from None
            status = response.status_code
            if 300 <= status < 400:
                raise ProtocolError(
                    f"ConnectWise redirected {operation} ({status}); redirects are not "
                    f"followed: check the site address"
                )
            if status < 500 and status not in RETRY_STATUSES:
                return response
            if status == 500 and _is_fault(response.content):
                return response
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            # A bare 500 is usually a server bug: retried a little only, as REST does.
            server_errors += status == 500
            again = idempotent or status in _UNAPPLIED_STATUSES
            if (
                again
                and attempt < policy.max_attempts
                and server_errors <= policy.server_error_retries
            ):
                delay = (
                    min(retry_after, policy.max_retry_after)
                    if retry_after is not None
                    else policy.backoff(attempt, self._rng)
                )
                logger.info(
                    "ConnectWise SOAP %s answered %d, retry in %.1fs", operation, status, delay
                )
                await self._sleep(delay)
                continue
            raise RetriableError(
                f"ConnectWise answered {status} {response.reason_phrase} on {operation}"
                + (f" after {attempt} attempts" if attempt > 1 else ""),
                retry_after=retry_after,
            )


class _HttpxTransport(AsyncTransport):
    """zeep's async transport, sending through the client's ``_post``.

    ``AsyncTransport.__init__`` is deliberately not called: it would build its own sync client
    and overwrite the shared client's headers; and its ``post`` logs the whole envelope
    (credentials included) at DEBUG.
    """

    def __init__(self, owner: ConnectWiseSoapClient) -> None:
        self._owner = owner
        self._close_session = False
        self.cache = None
        self.logger = logger

    async def post(self, address: str, message: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self._owner._post(address, message, headers)

    def load(self, url: str) -> bytes:
        raise ProtocolError("ConnectWise's WSDL refers to another document; it is not fetched")

    async def aclose(self) -> None:
        """The httpx client belongs to the caller."""


class _OfflineTransport(Transport):
    """Used while parsing a WSDL we already fetched: imports are not followed (no SSRF hop)."""

    def __init__(self) -> None:
        self._close_session = False
        self.cache = None

    def load(self, url: str) -> bytes:
        raise ProtocolError("ConnectWise's WSDL refers to another document; it is not fetched")


def _parse_wsdl(content: bytes) -> Document:
    return Document(io.BytesIO(content), _OfflineTransport(), settings=_SETTINGS)  # type: ignore[arg-type]


def _is_fault(content: bytes) -> bool:
    # A SOAP 1.1/1.2 fault element, whatever its prefix; zeep parses it properly afterwards.
    return b"Fault>" in content and b"Envelope" in content


def _transport_error(exc: httpx.TransportError, operation: str, attempts: int) -> RetriableError:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(exc, _UNSENT):
        return UnreachableError(
            f"Could not connect to ConnectWise ({type(exc).__name__}){tries}: check the site "
            f"address and that ConnectWise is up."
        )
    if isinstance(exc, httpx.TimeoutException):
        return RetriableError(f"ConnectWise did not answer {operation} in time{tries}")
    return RetriableError(
        f"The connection to ConnectWise failed during {operation} ({type(exc).__name__}){tries}"
    )


def _operation(spec: _Entity, name: str | None, verb: str) -> str:
    if name is None:
        raise ValueError(f"ConnectWise's {spec.service}Api has no {verb} operation")
    return name


def _records(rows: Any) -> list[Record]:
    if rows is None:  # an empty result array comes back as a missing element
        return []
    value = serialize_object(rows, dict)  # type: ignore[no-untyped-call]
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise ProtocolError("ConnectWise answered a find with something other than records")
    return value


def _record(value: Any) -> Record | None:
    if value is None:
        return None
    record = serialize_object(value, dict)  # type: ignore[no-untyped-call]
    if not isinstance(record, dict):
        raise ProtocolError("ConnectWise answered with something other than a record")
    return record


def _record_id(record_id: int) -> int:
    if not isinstance(record_id, int) or isinstance(record_id, bool) or record_id < 0:
        raise ValueError(f"ConnectWise record ids are non-negative integers, not {record_id!r}")
    return record_id
