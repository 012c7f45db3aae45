"""Pulseway PSA (Kaseya BMS v2) REST client over an injected ``httpx.AsyncClient``.

The client knows Pulseway's paths, bearer-token login, response envelope, paging and call
budget; wire concerns (TLS, pooling, timeouts) stay in the ``httpx.AsyncClient`` it is given
(build it with ``sync.providers.urls.build_http_client``). Records are the dicts Pulseway sent
(camelCase), unvalidated. Failures are ``sync.errors`` classes chosen by what the caller does:

    login refused (success:false, 400/401/403)      CredentialsError with Pulseway's message
    401 on a call                                   refresh the token (or log in again), retry
                                                    once; a second 401 is a CredentialsError
    403                                             PermissionDenied (the role lacks the area,
                                                    ``area_of``); not retried; outside every
                                                    area (``userinfo``) CredentialsError
    429/502/503/504/timeouts, 500                   retried per RetryPolicy, then RetriableError
    no connection                                   retried, then UnreachableError
    success:false or 4xx on a record                RecordError (404 keeps status_code 404)
    success:false or 4xx on a list/lookup           FatalError (the query itself is wrong)
    body not JSON, no envelope, a repeated page,    ProtocolError
    a redirect

Every response is ``{success, error, result, totalRecords}`` (keys read case-insensitively,
psa-apis.md 4.4); a GET by id may also answer with the bare record. Each call first takes its
endpoint's share of the 1,500-calls-per-hour budget (see ``budget.py``). Tokens and the password
are never logged and are scrubbed from any text Pulseway echoes back.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal
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
from sync.providers.http import RetryPolicy, Sleep, json_body, send
from sync.providers.urls import Resolver, validate_psa_url

from .budget import Clock, EndpointBudget
from .credentials import PulsewayCredentials
from .mapping import stamp

__all__ = [
    "Endpoint",
    "LookupTable",
    "Page",
    "PulsewayClient",
    "QueryValue",
    "Record",
    "format_filter_datetime",
]

Record = dict[str, Any]
Page = list[Record]
QueryValue = str | int | bool | datetime | Sequence[int] | Sequence[str] | None

_Scope = Literal["record", "collection"]
_SERVICE: Final = "Pulseway PSA"
_DEFAULT_RETRY: Final = RetryPolicy()
_DEFAULT_PAGE_SIZE: Final = 100  # what a working client uses; the maximum is undocumented
# Renew the access token this long before Pulseway says it expires.
_REFRESH_MARGIN: Final = 60.0
_JSON_PATCH: Final = "application/json-patch+json"


class Endpoint:
    """Path templates (the budget counts calls per method + template)."""

    AUTHENTICATE: Final = "/v2/security/authenticate"
    REFRESH_TOKEN: Final = "/v2/security/refreshtoken"  # noqa: S105 (a path)
    USER_INFO: Final = "/v2/security/userinfo"
    ACCOUNTS: Final = "/v2/crm/accounts"
    ACCOUNT: Final = "/v2/crm/accounts/{id}"
    ACCOUNTS_SUMMARY: Final = "/v2/crm/accounts/summary"
    ACCOUNT_SUMMARY: Final = "/v2/crm/accounts/summary/{id}"
    ACCOUNT_LOCATIONS: Final = "/v2/crm/accounts/{accountId}/locations/lookup"
    ACCOUNT_LOCATION: Final = "/v2/crm/accounts/{accountId}/locations/{locationId}"
    CONTACTS_SUMMARY: Final = "/v2/crm/contacts/summary"
    CONTACT_SUMMARY: Final = "/v2/crm/contacts/summary/{id}"
    CONTACTS_SEARCH: Final = "/v2/crm/contacts/search"
    CONTACT: Final = "/v2/crm/contacts/{id}"
    CONTACT_EMAILS: Final = "/v2/crm/contacts/{id}/emails"
    CONTACT_PHONES: Final = "/v2/crm/contacts/{id}/phones"
    HARDWARE_ASSETS: Final = "/v2/servicedesk/hardwareasset"
    HARDWARE_ASSET: Final = "/v2/servicedesk/hardwareasset/{id}"
    HARDWARE_ASSETS_SEARCH: Final = "/v2/servicedesk/hardwareasset/searchselect"
    ACCOUNT_TYPES: Final = "/v2/system/accounttypes/lookup"
    SYSTEM_LOOKUP: Final = "/v2/system/lookup/{tableName}"
    TENANT_LOOKUP: Final = "/v2/system/tenantlookup/{tableName}"
    EMPLOYEES_LOOKUP: Final = "/v2/hr/employees/lookup"
    QUEUES_LOOKUP: Final = "/v2/system/queues/lookup"
    TICKETS: Final = "/v2/servicedesk/tickets"
    EMPLOYEES_SEARCH: Final = "/v2/hr/employees/searchselect"
    WEBHOOKS: Final = "/v2/admin/webhooks"
    WEBHOOK: Final = "/v2/admin/webhooks/{id}"
    WEBHOOK_EVENTS: Final = "/v2/admin/webhooks/events/lookup"


class LookupTable:
    """Table names for ``/v2/system/lookup/{tableName}`` and ``/v2/system/tenantlookup/...``.

    The v2 spec has no dedicated endpoints for these lists and does not name its tables: these
    names are unverified guesses (psa-apis.md 4.6, "table names [U]"). Each convenience method
    takes the table name as a parameter so a verified name can be passed without a release.
    """

    ASSET_CATEGORIES: Final = "AssetCategory"  # tenant-defined
    ASSET_STATES: Final = "AssetState"  # tenant-defined
    EMAIL_TYPES: Final = "EmailType"  # system
    PHONE_TYPES: Final = "PhoneType"  # system
    BUSINESS_TYPES: Final = "BusinessType"  # system (required on an account)


@dataclass(frozen=True, slots=True)
class _Token:
    access: str
    refresh: str | None
    expires_at: float | None  # clock seconds
    refresh_expires_at: float | None


class _RefreshRefused(Exception):
    """The refresh token was not accepted: log in again instead."""


class PulsewayClient:
    """Pulseway PSA v2 API for one tenant's API employee, over a shared ``httpx.AsyncClient``.

    Lists are async generators of pages (``list[dict]``, ``PageSize``/``PageNumber`` paging);
    lookups are lists; single records and write results are dicts.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: PulsewayCredentials,
        *,
        sandbox: bool = False,
        retry: RetryPolicy = _DEFAULT_RETRY,
        budget_per_hour: int = 1500,
        page_size: int = _DEFAULT_PAGE_SIZE,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        resolver: Resolver | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._http = http
        self._credentials = credentials
        self._sandbox = sandbox
        self._retry = retry
        self._page_size = page_size
        # A wall clock: token expiries are absolute times. The budget tolerates steps back.
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._resolver = resolver
        self._budget = EndpointBudget(budget_per_hour, clock=clock, sleep=sleep)
        self._base: str | None = None
        self._base_lock = asyncio.Lock()
        self._token: _Token | None = None
        self._auth_lock = asyncio.Lock()

    def __repr__(self) -> str:
        c = self._credentials
        return f"PulsewayClient(host={c.host!r}, tenant={c.tenant!r}, user_name={c.user_name!r})"

    # -- budget --------------------------------------------------------------------------------

    @property
    def budget_wait_seconds(self) -> float:
        """Seconds calls spent waiting for the per-endpoint budget, in total."""
        return self._budget.wait_seconds

    @property
    def budget_waits(self) -> Mapping[str, float]:
        """Seconds waited for the budget per endpoint (``"GET /v2/crm/contacts/summary"``)."""
        return self._budget.waits

    @property
    def budget_calls(self) -> Mapping[str, int]:
        """Calls counted against the budget per endpoint."""
        return self._budget.calls

    # -- connection ----------------------------------------------------------------------------

    async def authenticate(self) -> None:
        """Log in now (``POST /v2/security/authenticate``), replacing any token held.

        Raises ``CredentialsError`` with Pulseway's message when the login is refused.
        """
        async with self._auth_lock:
            self._token = await self._login()

    async def check_connection(self) -> Record:
        """Log in and make one cheap authenticated call: ``GET /v2/security/userinfo``."""
        return await self._get_one(Endpoint.USER_INFO, scope="collection")

    # -- lists ---------------------------------------------------------------------------------

    def accounts(
        self,
        *,
        modified_since: datetime | None = None,
        filters: Mapping[str, QueryValue] | None = None,
    ) -> AsyncIterator[Page]:
        """Pages of ``GET /v2/crm/accounts/summary`` (``Filter.ModifiedOnFrom`` when given)."""
        params = _with(filters, {"Filter.ModifiedOnFrom": modified_since})
        return self._pages(Endpoint.ACCOUNTS_SUMMARY, params)

    def contacts(
        self,
        *,
        modified_since: datetime | None = None,
        account_id: int | None = None,
        filters: Mapping[str, QueryValue] | None = None,
    ) -> AsyncIterator[Page]:
        """Pages of ``GET /v2/crm/contacts/summary`` (full contacts, with emails and phones)."""
        params = _with(
            filters, {"Filter.ModifiedOnFrom": modified_since, "Filter.AccountId": account_id}
        )
        return self._pages(Endpoint.CONTACTS_SUMMARY, params)

    def search_contacts(
        self, filters: Mapping[str, QueryValue] | None = None
    ) -> AsyncIterator[Page]:
        """Pages of ``GET /v2/crm/contacts/search`` (flat rows; ``Filter.EmailAddress``, ...)."""
        return self._pages(Endpoint.CONTACTS_SEARCH, dict(filters or {}))

    def hardware_assets(
        self,
        *,
        account_id: int | None = None,
        filters: Mapping[str, QueryValue] | None = None,
    ) -> AsyncIterator[Page]:
        """Pages of ``GET /v2/servicedesk/hardwareasset/searchselect`` (no modified filter)."""
        params = _with(filters, {"Filter.AccountId": account_id})
        return self._pages(Endpoint.HARDWARE_ASSETS_SEARCH, params)

    async def account_locations(self, account_id: int) -> list[Record]:
        """``GET /v2/crm/accounts/{accountId}/locations/lookup``: ``{id, name, isMain}``s."""
        return await self._get_list(
            Endpoint.ACCOUNT_LOCATIONS, {"accountId": _record_id(account_id)}, scope="record"
        )

    # -- lookups -------------------------------------------------------------------------------

    async def account_types(self) -> list[Record]:
        """``GET /v2/system/accounttypes/lookup``: ``{id, name, isActive, isClient, isVendor}``."""
        return await self._get_list(Endpoint.ACCOUNT_TYPES)

    async def lookup(self, table_name: str) -> list[Record]:
        """``GET /v2/system/lookup/{tableName}``: ``{id, name, isDefault, isActive}``."""
        return await self._get_list(Endpoint.SYSTEM_LOOKUP, {"tableName": _table(table_name)})

    async def tenant_lookup(self, table_name: str) -> list[Record]:
        """``GET /v2/system/tenantlookup/{tableName}``: ``{id, name, isActive, isDefault}``."""
        return await self._get_list(Endpoint.TENANT_LOOKUP, {"tableName": _table(table_name)})

    # The generic lookup for every list, as a working Pulseway client uses it and the
    # simulator serves it; a tenant-specific table can still be read with tenant_lookup.
    async def asset_categories(
        self, table_name: str = LookupTable.ASSET_CATEGORIES
    ) -> list[Record]:
        return await self.lookup(table_name)

    async def asset_states(self, table_name: str = LookupTable.ASSET_STATES) -> list[Record]:
        return await self.lookup(table_name)

    async def contact_email_types(self, table_name: str = LookupTable.EMAIL_TYPES) -> list[Record]:
        return await self.lookup(table_name)

    async def contact_phone_types(self, table_name: str = LookupTable.PHONE_TYPES) -> list[Record]:
        return await self.lookup(table_name)

    async def business_types(self, table_name: str = LookupTable.BUSINESS_TYPES) -> list[Record]:
        return await self.lookup(table_name)

    def employees(self, filters: Mapping[str, QueryValue] | None = None) -> AsyncIterator[Page]:
        """Pages of ``GET /v2/hr/employees/lookup`` (``{id, name}``; ``Filter.Ids``,
        ``Filter.Name``): the candidates for an account's ``accountManagerId``."""
        return self._pages(Endpoint.EMPLOYEES_LOOKUP, dict(filters or {}))

    def search_employees(
        self, filters: Mapping[str, QueryValue] | None = None
    ) -> AsyncIterator[Page]:
        """Pages of ``GET /v2/hr/employees/searchselect`` (``{id, firstName, lastName,
        emailAddress, username, jobTitle, isActive}``; ``Filter.IsActive``, ``Filter.Ids``,
        ``Filter.Filter_Text``)."""
        return self._pages(Endpoint.EMPLOYEES_SEARCH, dict(filters or {}))

    @property
    def webhook_secret(self) -> str | None:
        """The integration's webhook secret (what Pulseway signs deliveries with)."""
        return self._credentials.webhook_secret

    @property
    def user_name(self) -> str:
        """The API employee this client logs in as."""
        return self._credentials.user_name

    async def first(self, template: str, *, paged: bool = True) -> None:
        """One record of a list (``PageSize=1``; a lookup without paging whole): the
        cheapest read that tells whether the API employee may read an area."""
        what = f"GET {template}"
        paging = [("PageSize", "1"), ("PageNumber", "1")] if paged else None
        response = await self._call("GET", template, {}, params=paging, scope="collection")
        self._unwrap(response, what, "collection")

    # -- single records ------------------------------------------------------------------------

    async def get_account(self, account_id: int) -> Record:
        """``GET /v2/crm/accounts/summary/{id}`` (with ``locations``)."""
        return await self._get_one(Endpoint.ACCOUNT_SUMMARY, {"id": _record_id(account_id)})

    async def get_location(self, account_id: int, location_id: int) -> Record:
        """``GET /v2/crm/accounts/{accountId}/locations/{locationId}`` (with ``addresses``)."""
        ids = {"accountId": _record_id(account_id), "locationId": _record_id(location_id)}
        return await self._get_one(Endpoint.ACCOUNT_LOCATION, ids)

    async def get_contact(self, contact_id: int) -> Record:
        """``GET /v2/crm/contacts/summary/{id}``."""
        return await self._get_one(Endpoint.CONTACT_SUMMARY, {"id": _record_id(contact_id)})

    async def get_hardware_asset(self, asset_id: int) -> Record:
        """``GET /v2/servicedesk/hardwareasset/{assetId}``."""
        return await self._get_one(Endpoint.HARDWARE_ASSET, {"id": _record_id(asset_id)})

    # -- writes --------------------------------------------------------------------------------
    # Accounts cannot be deleted in v2 (deactivate with isActive=false); locations are only
    # written inside an account POST. Hardware assets have PUT but no PATCH.

    async def create_account(self, body: Mapping[str, Any]) -> Record:
        """``POST /v2/crm/accounts`` (``AccountPostInputDto``, with ``locations``)."""
        return await self._write("POST", Endpoint.ACCOUNTS, {}, dict(body))

    async def update_account(self, account_id: int, body: Mapping[str, Any]) -> Record:
        """``PUT /v2/crm/accounts/{id}`` with the full ``AccountPutInputDto``."""
        return await self._write(
            "PUT", Endpoint.ACCOUNT, {"id": _record_id(account_id)}, dict(body)
        )

    async def patch_account(
        self, account_id: int, operations: Sequence[Mapping[str, Any]]
    ) -> Record:
        """``PATCH /v2/crm/accounts/{id}`` with JSON Patch operations."""
        return await self._patch(Endpoint.ACCOUNT, account_id, operations)

    async def create_contact(self, body: Mapping[str, Any]) -> Record:
        """``POST /v2/crm/contacts/summary`` (``ContactInputDto``, with emails and phones)."""
        return await self._write("POST", Endpoint.CONTACTS_SUMMARY, {}, dict(body))

    async def update_contact(self, contact_id: int, body: Mapping[str, Any]) -> Record:
        """``PUT /v2/crm/contacts/{id}`` with the full ``ContactPutInputDto``."""
        return await self._write(
            "PUT", Endpoint.CONTACT, {"id": _record_id(contact_id)}, dict(body)
        )

    async def patch_contact(
        self, contact_id: int, operations: Sequence[Mapping[str, Any]]
    ) -> Record:
        """``PATCH /v2/crm/contacts/{id}`` with JSON Patch operations."""
        return await self._patch(Endpoint.CONTACT, contact_id, operations)

    async def patch_contact_emails(
        self, contact_id: int, operations: Sequence[Mapping[str, Any]]
    ) -> Record:
        """``PATCH /v2/crm/contacts/{contactId}/emails`` with JSON Patch operations."""
        return await self._patch(Endpoint.CONTACT_EMAILS, contact_id, operations)

    async def patch_contact_phones(
        self, contact_id: int, operations: Sequence[Mapping[str, Any]]
    ) -> Record:
        """``PATCH /v2/crm/contacts/{contactId}/phones`` with JSON Patch operations."""
        return await self._patch(Endpoint.CONTACT_PHONES, contact_id, operations)

    async def delete_contact(self, contact_id: int) -> None:
        """``DELETE /v2/crm/contacts/{Id}``."""
        await self._write("DELETE", Endpoint.CONTACT, {"id": _record_id(contact_id)}, None)

    async def create_hardware_asset(self, body: Mapping[str, Any]) -> Record:
        """``POST /v2/servicedesk/hardwareasset`` (``HardwareAssetInputDto``)."""
        return await self._write("POST", Endpoint.HARDWARE_ASSETS, {}, dict(body))

    async def update_hardware_asset(self, asset_id: int, body: Mapping[str, Any]) -> Record:
        """``PUT /v2/servicedesk/hardwareasset/{assetId}`` with the full DTO (there is no PATCH)."""
        ids = {"id": _record_id(asset_id)}
        return await self._write("PUT", Endpoint.HARDWARE_ASSET, ids, dict(body))

    async def delete_hardware_asset(self, asset_id: int) -> None:
        """``DELETE /v2/servicedesk/hardwareasset/{Id}``."""
        await self._write("DELETE", Endpoint.HARDWARE_ASSET, {"id": _record_id(asset_id)}, None)

    # -- admin webhooks (the API user needs the admin right; 403 is PermissionDenied) ------------

    async def webhook_events(self) -> list[Record]:
        """``GET /v2/admin/webhooks/events/lookup``: the events a webhook can carry."""
        return await self._get_list(Endpoint.WEBHOOK_EVENTS)

    async def create_webhook(self, body: Mapping[str, Any]) -> Record:
        """``POST /v2/admin/webhooks`` (``WebhookConfigurationInputDto``)."""
        return await self._write("POST", Endpoint.WEBHOOKS, {}, dict(body))

    async def get_webhook(self, webhook_id: int) -> Record:
        """``GET /v2/admin/webhooks/{id}`` (there is no list of webhooks)."""
        return await self._get_one(Endpoint.WEBHOOK, {"id": _record_id(webhook_id)})

    async def update_webhook(self, webhook_id: int, body: Mapping[str, Any]) -> Record:
        """``PUT /v2/admin/webhooks/{id}`` with the full input DTO."""
        ids = {"id": _record_id(webhook_id)}
        return await self._write("PUT", Endpoint.WEBHOOK, ids, dict(body))

    async def delete_webhook(self, webhook_id: int) -> None:
        """``DELETE /v2/admin/webhooks/{id}``."""
        await self._write("DELETE", Endpoint.WEBHOOK, {"id": _record_id(webhook_id)}, None)

    # -- authentication ------------------------------------------------------------------------

    async def _bearer(self) -> _Token:
        """A token to call with: logs in first, renews one that is about to expire."""
        async with self._auth_lock:
            token = self._token
            if token is None:
                token = self._token = await self._login()
            elif token.expires_at is not None and self._clock() >= (
                token.expires_at - _REFRESH_MARGIN
            ):
                token = self._token = await self._renew(token)
            return token

    async def _replace(self, stale: _Token) -> _Token:
        """A new token after ``stale`` was refused (unless another call already replaced it)."""
        async with self._auth_lock:
            if self._token is None or self._token is stale:
                self._token = await self._renew(stale)
            return self._token

    async def _renew(self, token: _Token) -> _Token:
        usable = token.refresh and (
            token.refresh_expires_at is None or self._clock() < token.refresh_expires_at
        )
        if usable:
            try:
                return await self._refresh(token)
            except _RefreshRefused:
                pass
        return await self._login()

    async def _login(self) -> _Token:
        c = self._credentials
        form = {
            "grantType": "password",
            "userName": c.user_name,
            "password": c.password,
            "tenant": c.tenant,
        }
        response = await self._post_form(Endpoint.AUTHENTICATE, form)
        what = f"POST {Endpoint.AUTHENTICATE}"
        refusal = self._login_refusal(response, what)
        if refusal is not None:
            raise CredentialsError(
                f"Pulseway PSA refused the login of '{c.user_name}' to tenant '{c.tenant}' "
                f"({refusal}): check the tenant, user name and password, and that the user is "
                f"an API employee whose role has API access"
            )
        return self._token_from(response, what)

    async def _refresh(self, token: _Token) -> _Token:
        form = {"AccessToken": token.access, "RefreshToken": token.refresh or ""}
        response = await self._post_form(Endpoint.REFRESH_TOKEN, form)
        what = f"POST {Endpoint.REFRESH_TOKEN}"
        if self._login_refusal(response, what) is not None:
            raise _RefreshRefused
        return self._token_from(response, what)

    async def _post_form(self, template: str, form: Mapping[str, str]) -> httpx.Response:
        url = await self._url(template, {})
        await self._budget.acquire(f"POST {template}")
        # Logging in twice is harmless: a login may be re-sent after a timeout.
        return await self._send(
            lambda: self._http.build_request(
                "POST", url, data=dict(form), headers={"Accept": "application/json"}
            ),
            idempotent=True,
        )

    def _login_refusal(self, response: httpx.Response, what: str) -> str | None:
        """Why Pulseway refused a login or refresh (None if it did not)."""
        status = response.status_code
        if status in (400, 401, 403):
            detail = _error_text(_envelope_error(_json_or_none(response)))
            return self._scrub(
                f"{status} {response.reason_phrase}" + (f": {detail}" if detail else "")
            )
        self._raise_unexpected(response, what)
        envelope = _envelope_of(json_body(response, "Pulseway PSA", what))
        if envelope is None:
            raise ProtocolError(f"Pulseway PSA answered {what} without its response envelope")
        if envelope.get("success") is not True:
            detail = _error_text(envelope.get("error")) or "no reason given"
            return self._scrub(detail)
        return None

    def _token_from(self, response: httpx.Response, what: str) -> _Token:
        envelope = _envelope_of(json_body(response, "Pulseway PSA", what)) or {}
        result = _lower_keys(envelope.get("result")) or {}
        access = result.get("accesstoken")
        if not isinstance(access, str) or not access:
            raise ProtocolError(f"Pulseway PSA answered {what} without an access token")
        refresh = result.get("refreshtoken")
        return _Token(
            access=access,
            refresh=refresh if isinstance(refresh, str) and refresh else None,
            expires_at=_instant(result.get("accesstokenexpireon")),
            refresh_expires_at=_instant(result.get("refreshtokenexpireon")),
        )

    # -- calls ---------------------------------------------------------------------------------

    async def _pages(self, template: str, params: Mapping[str, QueryValue]) -> AsyncIterator[Page]:
        query = _query(params)
        what = f"GET {template}"
        size = self._page_size
        number = 1
        seen = 0
        previous: tuple[Any, ...] | None = None
        while True:
            paging = [*query, ("PageSize", str(size)), ("PageNumber", str(number))]
            response = await self._call("GET", template, {}, params=paging, scope="collection")
            result, total = self._unwrap(response, what, "collection")
            page = _records(result, what)
            if page:
                key = _page_key(page)
                if key is not None and key == previous:
                    raise ProtocolError(
                        f"Pulseway PSA returned the same page for pages {number - 1} and {number} "
                        f"of {what}; stopping instead of looping forever"
                    )
                previous = key
                yield page
            seen += len(page)
            if len(page) < size or (total is not None and seen >= total):
                return
            number += 1

    async def _get_list(
        self, template: str, ids: Mapping[str, object] | None = None, scope: _Scope = "collection"
    ) -> list[Record]:
        what = f"GET {template}"
        response = await self._call("GET", template, ids or {}, scope=scope)
        result, _ = self._unwrap(response, what, scope)
        return _records(result, what)

    async def _get_one(
        self, template: str, ids: Mapping[str, object] | None = None, scope: _Scope = "record"
    ) -> Record:
        what = f"GET {template}"
        response = await self._call("GET", template, ids or {}, scope=scope)
        result, _ = self._unwrap(response, what, scope, bare=True)
        if not isinstance(result, dict):
            raise ProtocolError(f"Pulseway PSA answered {what} with something other than a record")
        return result

    async def _patch(
        self, template: str, record_id: int, operations: Sequence[Mapping[str, Any]]
    ) -> Record:
        if not operations:
            raise ValueError("patch needs at least one operation")
        ops = [dict(op) for op in operations]
        return await self._write("PATCH", template, {"id": _record_id(record_id)}, ops)

    async def _write(
        self, method: str, template: str, ids: Mapping[str, object], body: Any
    ) -> Record:
        what = f"{method} {template}"
        headers = {"Content-Type": _JSON_PATCH} if method == "PATCH" else None
        response = await self._call(
            method, template, ids, json=body, headers=headers, scope="record"
        )
        if method == "DELETE" and not response.content.strip():
            return {}
        result, _ = self._unwrap(response, what, "record")
        if result is None:
            return {}
        if isinstance(result, dict):
            return result
        if isinstance(result, int) and not isinstance(result, bool):
            return {"id": result}
        if method == "DELETE":
            return {}
        raise ProtocolError(f"Pulseway PSA answered {what} with something other than a record")

    async def _call(
        self,
        method: str,
        template: str,
        ids: Mapping[str, object],
        *,
        scope: _Scope,
        params: list[tuple[str, str]] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One API call with a bearer token; a 401 renews the token and retries once."""
        url = await self._url(template, ids)
        key = f"{method} {template}"
        token = await self._bearer()
        response = await self._send_api(method, url, key, token, params, json, headers)
        if response.status_code == 401:
            token = await self._replace(token)
            response = await self._send_api(method, url, key, token, params, json, headers)
            if response.status_code == 401:
                raise CredentialsError(
                    f"Pulseway PSA refused a fresh token on {key} (401 Unauthorized): check "
                    f"the API employee's account and its role's API access"
                )
        self._raise_for_status(response, key, scope)
        return response

    async def _send_api(
        self,
        method: str,
        url: str,
        key: str,
        token: _Token,
        params: list[tuple[str, str]] | None,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {token.access}", "Accept": "application/json"}
        if headers:
            all_headers.update(headers)
        await self._budget.acquire(key)

        query = tuple(params) if params else None

        def build() -> httpx.Request:
            return self._http.build_request(
                method, url, params=query, json=json, headers=all_headers
            )

        # A write may have been applied before a timeout: only re-send when it surely was not
        # (see sync.providers.http.send). A PUT too: it carries the whole record as we read
        # it, and sent again later it would undo a PSA user's change made in between.
        return await self._send(build, idempotent=method in ("GET", "DELETE"))

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

    async def _url(self, template: str, ids: Mapping[str, object]) -> str:
        if self._base is None:
            async with self._base_lock:
                if self._base is None:
                    self._base = await validate_psa_url(
                        self._credentials.host,
                        sandbox=self._sandbox,
                        resolver=self._resolver,
                        service=_SERVICE,
                    )
        path = template.format_map({k: quote(str(v), safe="") for k, v in ids.items()})
        return f"{self._base}{path}"

    # -- responses -----------------------------------------------------------------------------

    def _unwrap(
        self, response: httpx.Response, what: str, scope: _Scope, *, bare: bool = False
    ) -> tuple[Any, int | None]:
        """``(result, totalRecords)`` from the envelope; ``bare`` accepts an unwrapped record."""
        body = json_body(response, "Pulseway PSA", what)
        envelope = _envelope_of(body)
        if envelope is None:
            if bare and isinstance(body, dict):
                return body, None
            raise ProtocolError(f"Pulseway PSA answered {what} without its response envelope")
        success = envelope.get("success")
        if success is False:
            self._raise_refusal(envelope.get("error"), what, scope, response.status_code)
        if success is not True:
            raise ProtocolError(f"Pulseway PSA answered {what} with a malformed envelope")
        total = envelope.get("totalrecords")
        if not isinstance(total, int) or isinstance(total, bool):
            total = None
        return envelope.get("result"), total

    def _raise_refusal(self, error: Any, what: str, scope: _Scope, status: int) -> None:
        info = _lower_keys(error) or {}
        code = info.get("code")
        text = self._scrub(_error_text(error) or "no reason given")[:500]
        psa_code = None if code is None else str(code)
        if scope == "record":
            if isinstance(code, int) and 400 <= code < 600:
                status_code: int | None = code
            else:
                status_code = status if status >= 400 else None
            raise RecordError(
                f"Pulseway PSA refused {what}: {text}",
                status_code=status_code,
                psa_code=psa_code,
                errors=[info] if info else [],
            )
        raise FatalError(f"Pulseway PSA refused {what}: {text}")

    def _raise_unexpected(self, response: httpx.Response, what: str) -> None:
        """Map a 3xx or an odd 4xx/5xx on the login calls."""
        status = response.status_code
        if status < 300:
            return
        if status < 400:
            raise ProtocolError(
                f"Pulseway PSA redirected {what} ({status} {response.reason_phrase}); redirects "
                f"are not followed: check the host"
            )
        if status >= 500:
            raise RetriableError(f"Pulseway PSA failed on {what} ({status})")
        raise FatalError(f"Pulseway PSA refused {what} ({status} {response.reason_phrase})")

    def _raise_for_status(self, response: httpx.Response, what: str, scope: _Scope) -> None:
        status = response.status_code
        if status < 300:
            return
        if status < 400:
            self._raise_unexpected(response, what)
        detail = f"{status} {response.reason_phrase}"
        reason = _error_text(_envelope_error(_json_or_none(response)))
        if reason:
            detail = f"{detail}: {self._scrub(reason)[:500]}"
        if status == 403:
            method, _, path = what.partition(" ")
            area = area_of(path)
            message = (
                f"Pulseway PSA denied {what} ({detail}): the API employee's security role does "
                f"not allow it"
            )
            if area is None:  # outside every area (the connection check): the role itself
                raise CredentialsError(message)
            raise PermissionDenied(
                f"{message} (area: {area})",
                area=area,
                access="read" if method == "GET" or path.endswith("/search") else "write",
            )
        if status >= 500:
            raise RetriableError(f"Pulseway PSA failed on {what} ({detail})")
        if scope == "record":
            info = _lower_keys(_envelope_error(_json_or_none(response)))
            raise RecordError(
                f"Pulseway PSA refused {what} ({detail})",
                status_code=status,
                psa_code=None if not info or info.get("code") is None else str(info["code"]),
                errors=[info] if info else [],
            )
        raise FatalError(f"Pulseway PSA refused {what} ({detail})")

    def _scrub(self, text: str) -> str:
        secrets = [self._credentials.password]
        if self._token is not None:
            secrets += [self._token.access, self._token.refresh or ""]
        for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


# -- helpers -------------------------------------------------------------------------------------

# The areas of a security role, by path prefix: what a 403 names.
_AREAS: Final = (
    (("/v2/crm/accounts", "/v2/system/accounttypes"), "accounts"),
    (("/v2/crm/contacts",), "contacts"),
    (("/v2/servicedesk/hardwareasset",), "assets"),
    (("/v2/hr/employees",), "employees"),
    (("/v2/system/queues",), "queues"),
    (("/v2/servicedesk/tickets",), "tickets"),
    (("/v2/admin/webhooks",), "webhooks"),
    (("/v2/system/lookup",), "lookups"),
)


def area_of(path: str) -> str | None:
    """The security-role area an endpoint path belongs to (None: no area psasync reports)."""
    for prefixes, area in _AREAS:
        if path.startswith(prefixes):
            return area
    return None


def format_filter_datetime(value: datetime) -> str:
    """A ``Filter.*On*`` value: UTC, ISO 8601 without a zone, whole seconds (floored).

    A naive datetime is taken as UTC. Flooring keeps a ``...From`` filter inclusive.
    """
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=0).isoformat(timespec="seconds")


def _with(
    filters: Mapping[str, QueryValue] | None, named: Mapping[str, QueryValue]
) -> dict[str, QueryValue]:
    """``filters`` plus the named arguments that were given (None leaves a filter alone)."""
    return {**(filters or {}), **{k: v for k, v in named.items() if v is not None}}


def _query(params: Mapping[str, QueryValue]) -> list[tuple[str, str]]:
    """Query pairs; None drops a parameter, a sequence repeats it (``Filter.Ids``)."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif isinstance(value, datetime):
            pairs.append((name, format_filter_datetime(value)))
        elif isinstance(value, str | int):
            pairs.append((name, str(value)))
        else:
            pairs.extend((name, str(item)) for item in value)
    return pairs


def _lower_keys(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return {str(k).lower(): v for k, v in value.items()}


def _envelope_of(body: Any) -> dict[str, Any] | None:
    """The envelope with lower-cased keys, or None when ``body`` is not one."""
    envelope = _lower_keys(body)
    return envelope if envelope is not None and "success" in envelope else None


def _envelope_error(body: Any) -> Any:
    envelope = _envelope_of(body)
    return envelope.get("error") if envelope else None


def _error_text(error: Any) -> str | None:
    """``ErrorInfo``'s message, details and sub-errors, joined."""
    info = _lower_keys(error)
    if info is None:
        return error if isinstance(error, str) and error else None
    parts = [info.get("message"), info.get("details")]
    sub = info.get("suberrors")
    if isinstance(sub, list):
        parts += sub
    texts = [p for p in parts if isinstance(p, str) and p.strip()]
    return ": ".join(texts) or None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _records(result: Any, what: str) -> Page:
    if result is None:
        return []
    if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
        raise ProtocolError(f"Pulseway PSA answered {what} with something other than a list")
    return result


def _page_key(page: Page) -> tuple[Any, ...] | None:
    first, last = _lower_keys(page[0]) or {}, _lower_keys(page[-1]) or {}
    if first.get("id") is None:
        return None
    return (first.get("id"), last.get("id"), len(page))


def _instant(value: Any) -> float | None:
    """Seconds since the epoch for a Pulseway date-time (naive means UTC), or None."""
    when = stamp(value)
    return None if when is None else when.timestamp()


def _record_id(record_id: int) -> int:
    if not isinstance(record_id, int) or isinstance(record_id, bool) or record_id < 0:
        raise ValueError(f"Pulseway PSA record ids are non-negative integers, not {record_id!r}")
    return record_id


_TABLE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _table(name: str) -> str:
    if not _TABLE.fullmatch(name):
        raise ValueError(f"not a Pulseway PSA lookup table name: {name!r}")
    return name
