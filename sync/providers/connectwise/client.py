"""ConnectWise Manage REST client: ConnectWise's words over an injected ``httpx.AsyncClient``.

The client knows ConnectWise's paths, headers, paging and error bodies; wire concerns (TLS,
pooling, timeouts) stay in the ``httpx.AsyncClient`` it is given (build it with
``sync.providers.urls.build_http_client``). The sync engine sees records as plain dicts and
failures as ``sync.errors`` classes chosen by what the caller should do:

    401                              CredentialsError  fix the keys
    403                              PermissionDenied  the API member's security role lacks the
                                                       area (``area_of``: companies, sites,
                                                       contacts, configurations, members,
                                                       boards, tickets, callbacks); not retried
    403 outside every area           CredentialsError  (``system/info``: the role reaches nothing)
    429/502/503/504/timeouts, 500    retried per RetryPolicy, then RetriableError
    no connection                    retried, then UnreachableError
    4xx on a record                  RecordError (status, ConnectWise code, errors[] verbatim)
    4xx on a list/count              FatalError (the query itself is wrong)
    body not JSON / wrong shape,     ProtocolError
    a redirect, a repeated page

``connect()`` runs first (lazily, once): it validates the site URL and discovers the codebase
with ``GET {site}/login/companyinfo/{companyId}`` (no credentials sent). Messages never hold
credentials, and nothing here logs them.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast
from urllib.parse import quote

import httpx

from sync.errors import (
    CredentialsError,
    FatalError,
    PermissionDenied,
    ProtocolError,
    RecordError,
    RetriableError,
)
from sync.providers.http import NextLinkPaginator, RetryPolicy, Sleep, json_body, send
from sync.providers.urls import Resolver, validate_psa_url

from .credentials import ConnectWiseCredentials

__all__ = ["CompanyInfo", "ConnectWiseClient", "Page", "Record", "Resource"]

Record = dict[str, Any]
Page = list[Record]


class Resource:
    """ConnectWise resource paths, relative to ``{site}/{codebase}apis/3.0/``."""

    COMPANIES: Final = "company/companies"
    COMPANY_TYPES: Final = "company/companies/types"
    COMPANY_STATUSES: Final = "company/companies/statuses"
    CONTACTS: Final = "company/contacts"
    CONTACT_TYPES: Final = "company/contacts/types"
    COMMUNICATION_TYPES: Final = "company/communicationTypes"
    CONFIGURATIONS: Final = "company/configurations"
    CONFIGURATION_TYPES: Final = "company/configurations/types"
    CONFIGURATION_STATUSES: Final = "company/configurations/statuses"
    MEMBERS: Final = "system/members"
    SYSTEM_INFO: Final = "system/info"
    CALLBACKS: Final = "system/callbacks"
    BOARDS: Final = "service/boards"
    TICKETS: Final = "service/tickets"

    @staticmethod
    def sites(company_id: int) -> str:
        return f"company/companies/{_record_id(company_id)}/sites"


# The areas of a security role, by resource path (most specific first): what a 403 names.
_AREAS: Final = (
    (re.compile(r"company/companies/[^/]+/sites(?:/|$)"), "sites"),
    (re.compile(r"company/companies(?:/|$)"), "companies"),
    (re.compile(r"company/(?:contacts|communicationTypes)(?:/|$)"), "contacts"),
    (re.compile(r"company/configurations(?:/|$)"), "configurations"),
    (re.compile(r"system/members(?:/|$)"), "members"),
    (re.compile(r"system/callbacks(?:/|$)"), "callbacks"),
    (re.compile(r"service/tickets(?:/|$)"), "tickets"),
    (re.compile(r"service/"), "boards"),
)


def area_of(path: str) -> str | None:
    """The security-role area a resource path belongs to (None: no area psasync reports)."""
    path = path.split("?", 1)[0].strip("/")
    for pattern, area in _AREAS:
        if pattern.match(path):
            return area
    return None


# Cloud API calls must use the api- host (psa-apis.md 1.1); users type the host they browse.
_CLOUD_API_HOSTS: Final = {
    "na.myconnectwise.net": "api-na.myconnectwise.net",
    "eu.myconnectwise.net": "api-eu.myconnectwise.net",
    "au.myconnectwise.net": "api-au.myconnectwise.net",
    "staging.connectwisedev.com": "api-staging.connectwisedev.com",
}
_FORWARD_ONLY: Final = {"pagination-type": "forward-only"}
_MAX_PAGE_SIZE: Final = 1000
_CODEBASE = re.compile(r"/*([A-Za-z0-9_][A-Za-z0-9._-]*)/*")
_RESOURCE_PATH = re.compile(r"[A-Za-z0-9_]+(?:/[A-Za-z0-9_]+)*")
_API_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_DEFAULT_RETRY: Final = RetryPolicy()
_SERVICE: Final = "ConnectWise"

_Scope = Literal["record", "collection"]


@dataclass(frozen=True, slots=True)
class CompanyInfo:
    """What ``GET /login/companyinfo/{companyId}`` told us, and the API base built from it."""

    company_id: str
    company_name: str | None
    codebase: str
    version_code: str | None
    version_number: str | None
    is_cloud: bool | None
    api_url: str


class ConnectWiseClient:
    """ConnectWise Manage REST API, one tenant's credentials, over a shared ``httpx.AsyncClient``.

    Lists are async generators of pages (``list[dict]``) using forward-only paging; records are
    the dicts ConnectWise returned, unvalidated (this runs over hundreds of thousands of them).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: ConnectWiseCredentials,
        *,
        sandbox: bool = False,
        retry: RetryPolicy = _DEFAULT_RETRY,
        page_size: int = _MAX_PAGE_SIZE,
        api_version: str = "2025.1",
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        resolver: Resolver | None = None,
    ) -> None:
        if not 1 <= page_size <= _MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {_MAX_PAGE_SIZE}")
        if not _API_VERSION.fullmatch(api_version):
            raise ValueError(f"not a ConnectWise API version: {api_version!r}")
        self._http = http
        self._credentials = credentials
        self._sandbox = sandbox
        self._retry = retry
        self._page_size = page_size
        self._sleep = sleep
        self._rng = rng
        self._resolver = resolver
        c = credentials
        if not (c.has_rest_keys and c.client_id):
            raise ValueError("the REST client needs the REST API keys and a client id")
        token = base64.b64encode(f"{c.company_id}+{c.public_key}:{c.private_key}".encode()).decode()
        self._headers: Final = {
            "Authorization": f"Basic {token}",
            "clientId": c.client_id,
            "Accept": f"application/vnd.connectwise.com+json; version={api_version}",
        }
        # Scrubbed out of any text ConnectWise echoes back into an error message (longest first,
        # so the token goes before the keys inside it; tiny values would garble every message).
        secrets = (token, c.private_key, c.public_key, c.integrator_password)
        self._secrets: Final = tuple(
            sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True)
        )
        self._info: CompanyInfo | None = None
        self._connect_lock = asyncio.Lock()

    def __repr__(self) -> str:
        c = self._credentials
        return f"ConnectWiseClient(site={c.site_url!r}, company_id={c.company_id!r})"

    @property
    def company_info(self) -> CompanyInfo | None:
        """The result of ``connect()``, or None before it ran."""
        return self._info

    # -- connection ---------------------------------------------------------------------------

    async def connect(self) -> CompanyInfo:
        """Validate the site URL and discover the codebase (once; later calls reuse it).

        Raises ``InsecureUrlError``, ``UnreachableError``, ``CredentialsError`` (unknown company
        id) or ``ProtocolError`` (the site does not answer like ConnectWise).
        """
        if self._info is None:
            async with self._connect_lock:
                if self._info is None:
                    self._info = await self._discover()
        return self._info

    async def check_connection(self) -> None:
        """Connect and make one cheap authenticated call (``GET /system/info``)."""
        await self._get_object(Resource.SYSTEM_INFO, scope="collection")

    async def _discover(self) -> CompanyInfo:
        site = await validate_psa_url(
            self._credentials.site_url,
            sandbox=self._sandbox,
            resolver=self._resolver,
            service=_SERVICE,
        )
        company_id = self._credentials.company_id
        url = f"{site}/login/companyinfo/{quote(company_id, safe='')}"
        what = "GET login/companyinfo"
        # No credentials: this call does not need them.
        response = await self._send(
            lambda: self._http.build_request("GET", url, headers={"Accept": "application/json"}),
            idempotent=True,
        )
        if response.status_code >= 500:
            self._raise_for_status(response, what, "collection")
        if response.status_code != 200:
            raise ProtocolError(
                f"{site} did not answer like a ConnectWise site ({response.status_code} "
                f"{response.reason_phrase} on {what}): check the site address"
            )
        body = json_body(response, _SERVICE, what)
        if body is None:
            raise CredentialsError(f"ConnectWise does not know the company id '{company_id}'")
        codebase = body.get("Codebase") if isinstance(body, dict) else None
        match = _CODEBASE.fullmatch(codebase) if isinstance(codebase, str) else None
        if match is None or ".." in match.group(1):
            raise ProtocolError(
                f"{site} did not answer the company-info call like ConnectWise (no usable "
                f"Codebase): check the site address"
            )
        body = cast(dict[str, Any], body)
        is_cloud = body.get("IsCloud")
        return CompanyInfo(
            company_id=str(body.get("CompanyID") or company_id),
            company_name=_str_or_none(body.get("CompanyName")),
            codebase=f"{match.group(1)}/",
            version_code=_str_or_none(body.get("VersionCode")),
            version_number=_str_or_none(body.get("VersionNumber")),
            is_cloud=None if is_cloud is None else str(is_cloud).lower() == "true",
            api_url=f"{_api_host(site)}/{match.group(1)}/apis/3.0",
        )

    # -- lists ---------------------------------------------------------------------------------

    def companies(
        self, conditions: str | None = None, fields: Sequence[str] | None = None
    ) -> AsyncIterator[Page]:
        """Pages of ``/company/companies``."""
        return self._pages(Resource.COMPANIES, conditions, fields)

    def sites(
        self, company_id: int, conditions: str | None = None, fields: Sequence[str] | None = None
    ) -> AsyncIterator[Page]:
        """Pages of ``/company/companies/{company_id}/sites`` (404: the company is gone)."""
        return self._pages(Resource.sites(company_id), conditions, fields, scope="record")

    def contacts(
        self, conditions: str | None = None, fields: Sequence[str] | None = None
    ) -> AsyncIterator[Page]:
        """Pages of ``/company/contacts``."""
        return self._pages(Resource.CONTACTS, conditions, fields)

    def configurations(
        self, conditions: str | None = None, fields: Sequence[str] | None = None
    ) -> AsyncIterator[Page]:
        """Pages of ``/company/configurations``."""
        return self._pages(Resource.CONFIGURATIONS, conditions, fields)

    def members(
        self, conditions: str | None = None, fields: Sequence[str] | None = None
    ) -> AsyncIterator[Page]:
        """Pages of ``/system/members``."""
        return self._pages(Resource.MEMBERS, conditions, fields)

    def callbacks(self, conditions: str | None = None) -> AsyncIterator[Page]:
        """Pages of ``/system/callbacks`` (callback entries: webhook registrations)."""
        return self._pages(Resource.CALLBACKS, conditions, None)

    async def company_types(self) -> list[Record]:
        return await self._all(Resource.COMPANY_TYPES)

    async def company_statuses(self) -> list[Record]:
        return await self._all(Resource.COMPANY_STATUSES)

    async def configuration_types(self) -> list[Record]:
        return await self._all(Resource.CONFIGURATION_TYPES)

    async def configuration_statuses(self) -> list[Record]:
        return await self._all(Resource.CONFIGURATION_STATUSES)

    async def contact_types(self) -> list[Record]:
        return await self._all(Resource.CONTACT_TYPES)

    async def communication_types(self) -> list[Record]:
        """Types of contacts' communication items (``emailFlag``/``phoneFlag``/``faxFlag``)."""
        return await self._all(Resource.COMMUNICATION_TYPES)

    async def first(self, resource_path: str) -> Page:
        """``GET {resource_path}?pageSize=1&fields=id``: at most one record's id; the
        cheapest read that tells whether the API member may read a resource."""
        path = _resource_path(resource_path)
        params = {"pageSize": "1", "fields": "id"}
        response = await self._request("GET", path, params=params, scope="collection")
        return self._records(response, f"GET {path}")

    async def count(self, resource_path: str, conditions: str | None = None) -> int:
        """``GET {resource_path}/count`` → the ``count`` as an int."""
        path = f"{_resource_path(resource_path)}/count"
        params = {"conditions": conditions} if conditions else None
        body = await self._get_object(path, scope="collection", params=params)
        value = body.get("count")
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolError(f"ConnectWise answered GET {path} without an integer count")
        return value

    # -- single records ------------------------------------------------------------------------

    async def get_company(self, company_id: int) -> Record:
        return await self._get_object(f"{Resource.COMPANIES}/{_record_id(company_id)}")

    async def get_site(self, company_id: int, site_id: int) -> Record:
        return await self._get_object(f"{Resource.sites(company_id)}/{_record_id(site_id)}")

    async def get_contact(self, contact_id: int) -> Record:
        return await self._get_object(f"{Resource.CONTACTS}/{_record_id(contact_id)}")

    async def get_configuration(self, configuration_id: int) -> Record:
        return await self._get_object(f"{Resource.CONFIGURATIONS}/{_record_id(configuration_id)}")

    # -- writes --------------------------------------------------------------------------------

    async def create(self, resource_path: str, body: Mapping[str, Any]) -> Record:
        """POST a new record; ConnectWise answers 201 with the created record."""
        path = _resource_path(resource_path)
        response = await self._request("POST", path, json=dict(body), scope="record")
        return self._object(response, f"POST {path}")

    async def patch(
        self, resource_path: str, record_id: int, operations: Sequence[Mapping[str, Any]]
    ) -> Record:
        """PATCH with a JSON Patch array (``[{"op": "replace", "path": "name", "value": ...}]``)."""
        if not operations:
            raise ValueError("patch needs at least one operation")
        path = f"{_resource_path(resource_path)}/{_record_id(record_id)}"
        ops = [dict(op) for op in operations]
        response = await self._request("PATCH", path, json=ops, scope="record")
        return self._object(response, f"PATCH {path}")

    async def delete(self, resource_path: str, record_id: int) -> None:
        """DELETE a record (ConnectWise answers 204)."""
        path = f"{_resource_path(resource_path)}/{_record_id(record_id)}"
        await self._request("DELETE", path, scope="record")

    # -- plumbing ------------------------------------------------------------------------------

    async def _pages(
        self,
        path: str,
        conditions: str | None,
        fields: Sequence[str] | None,
        scope: _Scope = "collection",
    ) -> AsyncIterator[Page]:
        info = await self.connect()
        params: dict[str, str] = {"pageSize": str(self._page_size)}
        if conditions:
            params["conditions"] = conditions
        if fields:
            # Forward-only paging continues from the last id, so ids must come back.
            params["fields"] = ",".join(fields if "id" in fields else ["id", *fields])
        paginator = _ForwardOnlyPaginator(
            httpx.URL(f"{info.api_url}/{path}", params=params), self._page_size
        )
        what = f"GET {path}"
        while (url := paginator.current_value) is not None:
            response = await self._request("GET", path, url=url, headers=_FORWARD_ONLY, scope=scope)
            page = self._records(response, what)
            if page:
                yield page
            paginator.advance(response, row_count=len(page))
            if paginator.finished:
                return

    async def _all(self, path: str) -> list[Record]:
        records: list[Record] = []
        async for page in self._pages(path, None, None):
            records.extend(page)
        return records

    async def _get_object(
        self,
        path: str,
        *,
        scope: _Scope = "record",
        params: Mapping[str, str] | None = None,
    ) -> Record:
        response = await self._request("GET", path, params=params, scope=scope)
        return self._object(response, f"GET {path}")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        scope: _Scope,
        url: str | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one API call (retries included) and map a failure status to an error."""
        info = await self.connect()
        target = url or f"{info.api_url}/{path}"
        all_headers = {**self._headers, **headers} if headers else self._headers

        def build() -> httpx.Request:
            return self._http.build_request(
                method, target, params=params, json=json, headers=all_headers
            )

        # A write may have been applied before a timeout: only re-send when it surely was not
        # (see sync.providers.http.send). A PUT too: it carries the whole record as we read
        # it, and sent again later it would undo a PSA user's change made in between.
        response = await self._send(build, idempotent=method in ("GET", "DELETE"))
        self._raise_for_status(response, f"{method} {path}", scope)
        return response

    async def _send(
        self, build: Callable[[], httpx.Request], *, idempotent: bool
    ) -> httpx.Response:
        return await send(
            self._http,
            build,
            self._retry,
            sleep=self._sleep,
            rng=self._rng,
            idempotent=idempotent,
            service=_SERVICE,
        )

    def _raise_for_status(self, response: httpx.Response, what: str, scope: _Scope) -> None:
        status = response.status_code
        if status < 300:
            return
        if status < 400:
            raise ProtocolError(
                f"ConnectWise redirected {what} ({status} {response.reason_phrase}); redirects "
                f"are not followed: check the site address"
            )
        psa_code, message, errors = _error_body(response)
        detail = f"{status} {psa_code or response.reason_phrase}"
        # The top message is generic ("company object is invalid"); the reasons are in
        # errors[] ("The identifier 'X' is already in use."): a user needs both.
        reasons = [message] if message else []
        reasons += [
            e["message"]
            for e in errors
            if isinstance(e, dict) and isinstance(e.get("message"), str)
        ]
        if reasons:
            detail = f"{detail}: {self._scrub(': '.join(reasons))[:500]}"
        if status == 401:
            raise CredentialsError(
                f"ConnectWise refused the API keys for company '{self._credentials.company_id}' "
                f"({detail}): check the company id, public key, private key and client id"
            )
        if status == 403:
            method, _, path = what.partition(" ")
            area = area_of(path)
            message = (
                f"ConnectWise denied {what} ({detail}): the API member's security role does "
                f"not allow it"
            )
            if area is None:  # outside every area (the connection check): the keys' role
                raise CredentialsError(message)
            raise PermissionDenied(
                f"{message} (area: {area})",
                area=area,
                access="read" if method in ("GET", "HEAD") else "write",
            )
        if status >= 500:
            raise RetriableError(f"ConnectWise failed on {what} ({detail})")
        if scope == "record":
            raise RecordError(
                f"ConnectWise refused {what} ({detail})",
                status_code=status,
                psa_code=psa_code,
                errors=errors,
            )
        raise FatalError(f"ConnectWise refused {what} ({detail})")

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _records(self, response: httpx.Response, what: str) -> Page:
        body = json_body(response, _SERVICE, what)
        if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
            raise ProtocolError(f"ConnectWise answered {what} with something other than a list")
        return body

    def _object(self, response: httpx.Response, what: str) -> Record:
        body = json_body(response, _SERVICE, what)
        if not isinstance(body, dict):
            raise ProtocolError(f"ConnectWise answered {what} with something other than a record")
        return body


class _ForwardOnlyPaginator(NextLinkPaginator):
    """Tokens are the URLs we request: our own URL with the next link's query merged in.

    Only the query of ConnectWise's ``rel="next"`` link is used (it carries ``pageId``). Host and
    path stay ours, so credentials never follow a link to another host, and conditions survive
    even if a link leaves them out. The first URL is remembered, so a link back to it is a loop.
    """

    def __init__(self, first: httpx.URL, page_size: int) -> None:
        super().__init__(page_size, start_value=str(first))
        self._first = first

    def get_next(self, response: httpx.Response) -> str | None:
        link = super().get_next(response)
        if link is None:
            return None
        return str(self._first.copy_merge_params(httpx.URL(link).params))


def _error_body(response: httpx.Response) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """ConnectWise's ``{"code", "message", "errors"}`` (429 says ``error``, not ``code``)."""
    try:
        body = response.json()
    except ValueError:
        return None, None, []
    if not isinstance(body, dict):
        return None, None, []
    code = body.get("code") or body.get("error")
    message = body.get("message")
    errors = body.get("errors")
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else None,
        cast(list[dict[str, Any]], errors) if isinstance(errors, list) else [],
    )


def _api_host(site: str) -> str:
    url = httpx.URL(site)
    api_host = _CLOUD_API_HOSTS.get(url.host)
    return str(url.copy_with(host=api_host)).rstrip("/") if api_host else site


def _resource_path(path: str) -> str:
    path = path.strip("/")
    if not _RESOURCE_PATH.fullmatch(path):
        raise ValueError(f"not a ConnectWise resource path: {path!r}")
    return path


def _record_id(record_id: int) -> int:
    if not isinstance(record_id, int) or isinstance(record_id, bool) or record_id < 0:
        raise ValueError(f"ConnectWise record ids are non-negative integers, not {record_id!r}")
    return record_id


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
