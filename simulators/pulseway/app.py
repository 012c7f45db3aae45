"""The simulator as a Starlette app: Pulseway PSA's v2 API (Kaseya BMS) over a `PulsewayStore`.

URL space::

    POST /v2/security/authenticate, /v2/security/refreshtoken     form posts, no bearer token
    ANY  /v2/...                                                   the API (bearer token)
    GET|POST|DELETE /__simulator/faults                            faults, budget, counters
    GET|POST|DELETE /__simulator/webhooks                          webhooks (`webhooks.py`)

Every API request passes one gate (`_serve`): count it per endpoint, apply injected latency and
faults, spend the endpoint's hourly budget, check the bearer token, call the `before_write` hooks
for a write (`simulators/races.py`), then run the handler. With
``faults.drop_after_write_every = N`` every N-th applied write is answered with a dropped
connection instead (`simulators/transport.py`; in process, use its `InProcessTransport`).
Business failures answer HTTP 200 with ``success: false`` (the spec declares only 200s); an
unknown or expired token answers 401 and an exhausted budget 429 + ``Retry-After``, both with
the same envelope.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulators.bodies import load_json, same_secret
from simulators.pulseway import fields as F
from simulators.pulseway import reference as ref
from simulators.pulseway import render
from simulators.pulseway.faults import CallBudget, Denials, Faults, Traffic
from simulators.pulseway.store import PulsewayStore, Record
from simulators.pulseway.webhooks import EVENT_CATEGORY, EVENT_IDS, WebhookConfig, Webhooks
from simulators.pulseway.wire import (
    ApiError,
    envelope,
    invalid,
    not_found,
    parse_form,
    parse_time,
    stamp,
)
from simulators.races import WriteHook, before_write
from simulators.transport import DroppedAnswer

_JSON = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"))
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ACCESS = {False: "view", True: "add/edit/delete"}

# Areas a security role grants, by path prefix. Searches sent as POST (tickets/search) are
# reads. Authentication belongs to no area.
AREAS: dict[str, tuple[str, ...]] = {
    "accounts": ("/v2/crm/accounts", "/v2/system/accounttypes"),
    "contacts": ("/v2/crm/contacts",),
    "assets": ("/v2/servicedesk/hardwareasset",),
    "employees": ("/v2/hr/employees",),
    "queues": ("/v2/system/queues",),
    "tickets": ("/v2/servicedesk/tickets",),
    "webhooks": ("/v2/admin/webhooks",),
    "lookups": ("/v2/system/lookup",),
}
_READS_BY_POST = ("/search",)


def area_of(endpoint: str) -> str | None:
    """The area of ``"GET /v2/crm/accounts/summary"``-style endpoint names."""
    path = endpoint.partition(" ")[2]
    for area, prefixes in AREAS.items():
        if path.startswith(prefixes):
            return area
    return None


@dataclass(frozen=True)
class ApiCredentials:
    """The API employee the simulator accepts (``modifiedBy`` of API writes = `user_id`)."""

    tenant: str = "simulated"
    username: str = "psasync.api"
    password: str = "api-password"  # noqa: S105  # a simulator default, not a secret
    user_id: int = ref.API_USER_ID


@dataclass
class _Token:
    user_id: int
    access_expires: datetime
    refresh_token: str
    refresh_expires: datetime


@dataclass
class Call:
    """One API request as the handlers see it."""

    request: Request
    params: dict[str, list[str]]  # query parameters by lower-cased name
    body: bytes
    user_id: int
    path: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        try:
            return load_json(self.body or b"null")
        except ValueError as error:
            raise invalid("body", f"is not valid JSON ({error})") from None


Handler = Callable[[Call], dict[str, Any]]


class PulsewaySimulator:
    """One simulated Pulseway PSA tenant: a store, its API app, faults, budget and counters.

    ``summary_by_id_envelope``: the spec documents ``GET /v2/crm/accounts/summary/{id}`` and
    ``/v2/crm/contacts/summary/{id}`` as returning the bare DTO while working clients read
    ``result``; True (default) wraps them like every other endpoint, False answers the bare DTO.

    ``before_write``: hooks called with each API write request (authentication excluded) just
    before it is applied (`simulators/races.py`).
    """

    def __init__(
        self,
        store: PulsewayStore | None = None,
        *,
        credentials: ApiCredentials | None = None,
        faults: Faults | None = None,
        calls_per_hour: int = 1500,
        access_token_lifetime: timedelta = timedelta(hours=1),
        refresh_token_lifetime: timedelta = timedelta(days=7),
        default_page_size: int = 50,
        max_page_size: int = 500,
        summary_by_id_envelope: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        denied: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store if store is not None else PulsewayStore()
        self.credentials = credentials or ApiCredentials(tenant=self.store.tenant)
        self.faults = faults or Faults()
        self.traffic = Traffic()
        self.budget = CallBudget(calls_per_hour)
        # Areas the API employee's security role does not reach: {"tickets": "read"} and so on.
        self.denials = Denials(tuple(AREAS), denied)
        self.before_write: list[WriteHook] = []
        self.access_token_lifetime = access_token_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self.summary_by_id_envelope = summary_by_id_envelope
        self._sleep = sleep
        self._tokens: dict[str, _Token] = {}
        self.store.employees[self.credentials.user_id] = self.credentials.username
        self.webhooks = Webhooks(self.store)  # admin UI webhooks; posted on store writes
        self.store.listeners.append(self.webhooks.on_change)
        self.app = Starlette(
            routes=[
                Route("/__simulator/faults", self._faults, methods=["GET", "POST", "DELETE"]),
                Route(
                    "/__simulator/webhooks",
                    self.webhooks.control,
                    methods=["GET", "POST", "DELETE"],
                ),
                *self._api_routes(),
            ],
            exception_handlers={404: _no_endpoint, 405: _no_endpoint},
        )
        self.app.state.simulator = self

    @property
    def clock(self) -> Any:
        return self.store.clock

    # --------------------------------------------------------------------------- routes

    def _api_routes(self) -> list[Route]:
        table: list[tuple[str, str, Handler, bool]] = [
            ("POST", "/v2/security/authenticate", self._authenticate, False),
            ("POST", "/v2/security/refreshtoken", self._refresh, False),
            ("GET", "/v2/crm/accounts/summary", self._list_accounts, True),
            ("GET", "/v2/crm/accounts/summary/{id:int}", self._get_account, True),
            ("POST", "/v2/crm/accounts", self._create_account, True),
            ("PUT", "/v2/crm/accounts/{id:int}", self._put_account, True),
            ("PATCH", "/v2/crm/accounts/{id:int}", self._patch_account, True),
            ("GET", "/v2/crm/accounts/{accountId:int}/locations/lookup", self._location_list, True),
            (
                "GET",
                "/v2/crm/accounts/{accountId:int}/locations/{locationId:int}",
                self._location,
                True,
            ),
            ("GET", "/v2/crm/contacts/summary", self._list_contacts, True),
            ("GET", "/v2/crm/contacts/summary/{id:int}", self._get_contact, True),
            ("POST", "/v2/crm/contacts/summary", self._create_contact, True),
            ("GET", "/v2/crm/contacts/search", self._search_contacts, True),
            ("PUT", "/v2/crm/contacts/{id:int}", self._put_contact, True),
            ("PATCH", "/v2/crm/contacts/{id:int}", self._patch_contact, True),
            ("DELETE", "/v2/crm/contacts/{Id:int}", self._delete_contact, True),
            ("PATCH", "/v2/crm/contacts/{contactId:int}/emails", self._patch_emails, True),
            ("PATCH", "/v2/crm/contacts/{contactId:int}/phones", self._patch_phones, True),
            ("GET", "/v2/servicedesk/hardwareasset/searchselect", self._search_assets, True),
            ("GET", "/v2/servicedesk/hardwareasset/{assetId:int}", self._get_asset, True),
            ("PUT", "/v2/servicedesk/hardwareasset/{assetId:int}", self._put_asset, True),
            ("POST", "/v2/servicedesk/hardwareasset", self._create_asset, True),
            ("DELETE", "/v2/servicedesk/hardwareasset/{Id:int}", self._delete_asset, True),
            ("GET", "/v2/security/userinfo", self._user_info, True),
            ("GET", "/v2/system/accounttypes/lookup", self._account_types, True),
            ("GET", "/v2/system/lookup/{tableName}", self._lookup, True),
            ("GET", "/v2/hr/employees/lookup", self._employees, True),
            ("GET", "/v2/hr/employees/searchselect", self._search_employees, True),
            ("GET", "/v2/system/queues/lookup", self._queues, True),
            ("GET", "/v2/servicedesk/tickets", self._list_tickets, True),
            ("POST", "/v2/servicedesk/tickets/search", self._search_tickets, True),
            ("GET", "/v2/servicedesk/tickets/{ticketId:int}", self._get_ticket, True),
            ("POST", "/v2/admin/webhooks", self._create_webhook, True),
            ("GET", "/v2/admin/webhooks/{id:int}", self._get_webhook, True),
            ("PUT", "/v2/admin/webhooks/{id:int}", self._put_webhook, True),
            ("DELETE", "/v2/admin/webhooks/{id:int}", self._delete_webhook, True),
            ("GET", "/v2/admin/webhooks/events/lookup", self._webhook_events, True),
        ]
        by_path: dict[str, dict[str, tuple[Handler, bool]]] = {}
        for method, path, handler, auth in table:
            by_path.setdefault(path, {})[method] = (handler, auth)
        routes = []
        for path, methods in by_path.items():
            template = path.replace(":int", "")
            routes.append(Route(path, self._endpoint(template, methods), methods=list(methods)))
        return routes

    def _endpoint(
        self, template: str, methods: dict[str, tuple[Handler, bool]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            handler, auth = methods[request.method]
            return await self._serve(request, f"{request.method} {template}", handler, auth)

        return endpoint

    # ----------------------------------------------------------------------------- gate

    async def _serve(
        self, request: Request, endpoint: str, handler: Handler, auth: bool
    ) -> Response:
        traffic, faults = self.traffic, self.faults
        traffic.requests += 1
        traffic.by_endpoint[endpoint] = traffic.by_endpoint.get(endpoint, 0) + 1
        if faults.latency_ms:
            await self._sleep(faults.latency_ms / 1000)
        status = faults.fault_for(traffic.requests)
        if status is not None:
            return self._fault(status)
        # Authentication, token refresh and searches sent as POST are not writes.
        write = auth and request.method in _WRITES and not endpoint.endswith(_READS_BY_POST)
        try:
            wait = self.budget.spend(endpoint, self.store.clock.now())
            if wait is not None:
                traffic.over_budget += 1
                limit = self.budget.per_hour
                raise ApiError(
                    429,
                    f"API call limit exceeded: {limit} calls per hour for {endpoint}. "
                    f"Try again in {wait} seconds.",
                    status=429,
                    headers={"Retry-After": str(wait)},
                )
            user_id = self._bearer(request.headers.get("authorization", "")) if auth else 0
            area = area_of(endpoint)
            method = "GET" if endpoint.endswith(_READS_BY_POST) else request.method
            if auth and self.denials.denies(area, method):
                raise ApiError(
                    403,
                    f"Access denied: your security role has no {_ACCESS[method != 'GET']}"
                    f" permission for {area}.",
                    status=403,
                )
            params: dict[str, list[str]] = {}
            for key, value in request.query_params.multi_items():
                params.setdefault(key.lower(), []).append(value)
            call = Call(request, params, await request.body(), user_id, dict(request.path_params))
            if write:
                await before_write(self.before_write, request)  # outside the lock: hooks edit
            with self.store.lock:
                body = handler(call)
        except ApiError as error:
            traffic.served += 1
            if error.status == 401:
                traffic.unauthorized += 1
            return _respond(error.body(), error.status, error.headers)
        if write and body.get("success", True):
            traffic.writes += 1
            if faults.drops_answer(traffic.writes):
                traffic.faults_injected += 1
                traffic.dropped_answers += 1
                return DroppedAnswer(_respond(body))
        traffic.served += 1
        return _respond(body)

    def _fault(self, status: int) -> Response:
        traffic = self.traffic
        traffic.faults_injected += 1
        if status == 429:
            traffic.rate_limited += 1
            seconds = self.faults.retry_after_seconds
            error = ApiError(429, f"Too many requests. Try again in {seconds} seconds.", status=429)
            return _respond(error.body(), 429, {"Retry-After": str(seconds)})
        traffic.server_errors += 1
        error = ApiError(status, "The service is temporarily unavailable.", status=status)
        return _respond(error.body(), status)

    # --------------------------------------------------------------------------- tokens

    def _bearer(self, header: str) -> int:
        scheme, _, token = header.partition(" ")
        found = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise ApiError(401, "Unauthorized: missing or unknown access token.", status=401)
        if self.store.clock.now() >= found.access_expires:
            raise ApiError(401, "Unauthorized: the access token has expired.", status=401)
        return found.user_id

    def _issue(self, user_id: int) -> dict[str, Any]:
        now = self.store.clock.now()
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        token = _Token(
            user_id, now + self.access_token_lifetime, refresh, now + self.refresh_token_lifetime
        )
        self._tokens[access] = token
        return envelope(
            {
                "accessToken": access,
                "refreshToken": refresh,
                "accessTokenExpireOn": stamp(token.access_expires),
                "refreshTokenExpireOn": stamp(token.refresh_expires),
            }
        )

    def issue_token(self) -> str:
        """An access token for the API user, without a request (for tests)."""
        return str(self._issue(self.credentials.user_id)["result"]["accessToken"])

    def _authenticate(self, call: Call) -> dict[str, Any]:
        form = parse_form(call.request.headers.get("content-type", ""), call.body)
        expected = self.credentials
        if form.get("granttype", "").lower() != "password":
            raise invalid("grantType", "must be 'password'")
        for name in ("userName", "password", "tenant"):
            if not form.get(name.lower()):
                raise invalid(name)
        if not (
            form["tenant"].lower() == expected.tenant.lower()
            and form["username"].lower() == expected.username.lower()
            and same_secret(form["password"], expected.password)
        ):
            raise ApiError(401, "Invalid user name, password or tenant.")
        return self._issue(expected.user_id)

    def _refresh(self, call: Call) -> dict[str, Any]:
        form = parse_form(call.request.headers.get("content-type", ""), call.body)
        access, refresh = form.get("accesstoken", ""), form.get("refreshtoken", "")
        if not access:
            raise invalid("accessToken")
        token = self._tokens.get(access)
        if token is None or not same_secret(token.refresh_token, refresh):
            raise ApiError(401, "Invalid access token or refresh token.")
        if self.store.clock.now() >= token.refresh_expires:
            raise ApiError(401, "The refresh token has expired.")
        del self._tokens[access]
        return self._issue(token.user_id)

    # ------------------------------------------------------------------------- accounts

    def _list_accounts(self, call: Call) -> dict[str, Any]:
        q = _Query(call.params)
        name, code = q.text("Filter.AccountName"), q.text("Filter.AccountCode")
        type_id, type_name = q.integer("Filter.AccountTypeId"), q.text("Filter.AccountTypeName")
        active = q.boolean("Filter.IsActive")
        created, modified = q.window("Filter.CreatedOn"), q.window("Filter.ModifiedOn")
        rows = []
        for account in self.store.accounts.values():
            if name is not None and name.lower() not in account["accountName"].lower():
                continue
            if code is not None and (account.get("accountCode") or "").lower() != code.lower():
                continue
            if type_id is not None and account["accountTypeId"] != type_id:
                continue
            if type_name is not None and (
                (ref.account_type_name(account["accountTypeId"]) or "").lower() != type_name.lower()
            ):
                continue
            if active is not None and bool(account["isActive"]) != active:
                continue
            if not (
                _within(account["createdOn"], created) and _within(account["modifiedOn"], modified)
            ):
                continue
            rows.append(account)
        return self._page(q, rows, lambda a: render.account_summary(self.store, a))

    def _get_account(self, call: Call) -> dict[str, Any]:
        account = self.store.get("accounts", call.path["id"])
        dto = render.account_summary(self.store, account)
        return envelope(dto) if self.summary_by_id_envelope else _Bare(dto)

    def _create_account(self, call: Call) -> dict[str, Any]:
        body = call.json()
        fields = F.read(body, F.ACCOUNT, required=F.ACCOUNT_REQUIRED)
        given = F.lookup(body, "locations")
        if not isinstance(given, list) or not given:
            raise invalid("locations", "must contain at least one location")
        locations = []
        for n, item in enumerate(given):
            prefix = f"locations[{n}]."
            location = F.read(item, F.LOCATION, required=("locationName",), prefix=prefix)
            addresses = F.lookup(item, "addresses")
            if not isinstance(addresses, list):
                raise invalid(prefix + "addresses")
            locations.append(
                (
                    location,
                    [
                        F.read(a, F.ADDRESS, prefix=f"{prefix}addresses[{i}].")
                        for i, a in enumerate(addresses)
                    ],
                )
            )
        account = self.store.create_account(fields, locations, call.user_id)
        return envelope(render.account_summary(self.store, account))

    def _put_account(self, call: Call) -> dict[str, Any]:
        self.store.get("accounts", call.path["id"])
        fields = F.read(call.json(), F.ACCOUNT, required=F.ACCOUNT_REQUIRED)
        account = self.store.replace_account(call.path["id"], fields, call.user_id)
        return envelope(render.account_summary(self.store, account))

    def _patch_account(self, call: Call) -> dict[str, Any]:
        current = self.store.get("accounts", call.path["id"])
        document = _json_patch({k: current.get(k) for k in F.ACCOUNT}, call.json(), F.ACCOUNT)
        fields = F.read(document, F.ACCOUNT, required=F.ACCOUNT_REQUIRED)
        account = self.store.replace_account(call.path["id"], fields, call.user_id)
        return envelope(render.account_summary(self.store, account))

    def _location_list(self, call: Call) -> dict[str, Any]:
        locations = self.store.locations_of(call.path["accountId"])
        return envelope([render.location_lookup(loc) for loc in locations])

    def _location(self, call: Call) -> dict[str, Any]:
        account = self.store.get("accounts", call.path["accountId"])
        location_id = call.path["locationId"]
        if location_id not in account["locationIds"]:
            raise not_found("Location", location_id)
        return envelope(render.location(self.store.locations[location_id]))

    # ------------------------------------------------------------------------- contacts

    def _list_contacts(self, call: Call) -> dict[str, Any]:
        q = _Query(call.params)
        account_id, active = q.integer("Filter.AccountId"), q.boolean("Filter.IsActive")
        account_name = q.text("Filter.AccountName")
        first, last = q.text("Filter.FirstName"), q.text("Filter.LastName")
        email, phone = q.text("Filter.Email"), q.text("Filter.Phone")
        created, modified = q.window("Filter.CreatedOn"), q.window("Filter.ModifiedOn")
        rows = []
        for contact in self.store.contacts.values():
            if account_id is not None and contact["accountId"] != account_id:
                continue
            if active is not None and bool(contact["isActive"]) != active:
                continue
            if not (
                _within(contact["createdOn"], created) and _within(contact["modifiedOn"], modified)
            ):
                continue
            if not (
                _contains(contact["firstName"], first) and _contains(contact["lastName"], last)
            ):
                continue
            if account_name is not None:
                account = self.store.accounts.get(contact["accountId"])
                if account is None or not _contains(account["accountName"], account_name):
                    continue
            if email is not None and not any(
                e["emailAddress"].lower() == email.lower() for e in contact["emails"]
            ):
                continue
            if phone is not None and not any(phone in p["phone"] for p in contact["phones"]):
                continue
            rows.append(contact)
        return self._page(q, rows, lambda c: render.contact_summary(self.store, c))

    def _get_contact(self, call: Call) -> dict[str, Any]:
        contact = self.store.get("contacts", call.path["id"])
        dto = render.contact_summary(self.store, contact)
        return envelope(dto) if self.summary_by_id_envelope else _Bare(dto)

    def _search_contacts(self, call: Call) -> dict[str, Any]:
        q = _Query(call.params)
        ids, account_ids = q.integers("Filter.Ids"), q.integers("Filter.AccountIds")
        location_id, active = q.integer("Filter.LocationId"), q.boolean("Filter.IsActive")
        first, last = q.text("Filter.FirstName"), q.text("Filter.LastName")
        email, is_poc = q.text("Filter.EmailAddress"), q.boolean("Filter.IsPoc")
        candidates = (
            [self.store.contacts[i] for i in sorted(set(ids)) if i in self.store.contacts]
            if ids is not None
            else self.store.contacts.values()
        )
        rows = []
        for contact in candidates:
            if account_ids is not None and contact["accountId"] not in account_ids:
                continue
            if location_id is not None and contact["locationId"] != location_id:
                continue
            if active is not None and bool(contact["isActive"]) != active:
                continue
            if is_poc is not None and bool(contact.get("poc")) != is_poc:
                continue
            if not (
                _contains(contact["firstName"], first) and _contains(contact["lastName"], last)
            ):
                continue
            if email is not None and not any(
                email.lower() in e["emailAddress"].lower() for e in contact["emails"]
            ):
                continue
            rows.append(contact)
        return self._page(q, rows, lambda c: render.contact_search(self.store, c), total=False)

    def _create_contact(self, call: Call) -> dict[str, Any]:
        body = call.json()
        fields = F.read(body, F.CONTACT_CREATE, required=F.CONTACT_REQUIRED)
        emails = _items(body, "emails", F.EMAIL_INPUT)
        phones = _items(body, "phones", F.PHONE_INPUT)
        contact = self.store.create_contact(fields, emails, phones, call.user_id)
        return envelope(render.contact_created(self.store, contact))

    def _put_contact(self, call: Call) -> dict[str, Any]:
        self.store.get("contacts", call.path["id"])
        fields = F.read(call.json(), F.CONTACT, required=("accountId", "firstName", "lastName"))
        contact = self.store.replace_contact(call.path["id"], fields, call.user_id)
        return envelope(render.contact_output(self.store, contact))

    def _patch_contact(self, call: Call) -> dict[str, Any]:
        current = self.store.get("contacts", call.path["id"])
        document = _json_patch({k: current.get(k) for k in F.CONTACT}, call.json(), F.CONTACT)
        fields = F.read(document, F.CONTACT, required=("accountId", "firstName", "lastName"))
        contact = self.store.replace_contact(call.path["id"], fields, call.user_id)
        return envelope(render.contact_output(self.store, contact))

    def _delete_contact(self, call: Call) -> dict[str, Any]:
        self.store.remove("contacts", call.path["Id"], user=call.user_id)
        return envelope(None)

    def _patch_emails(self, call: Call) -> dict[str, Any]:
        return self._patch_items(call, "emails", F.EMAIL_PATCH, render.email)

    def _patch_phones(self, call: Call) -> dict[str, Any]:
        return self._patch_items(call, "phones", F.PHONE_PATCH, render.phone)

    def _patch_items(
        self, call: Call, kind: str, spec: F.Fields, show: Callable[[Record], dict[str, Any]]
    ) -> dict[str, Any]:
        self.store.get("contacts", call.path["contactId"])
        body = call.json()
        if not isinstance(body, list):
            raise invalid("body", "must be a JSON array of operations")
        operations = [F.read(op, spec, prefix=f"[{n}].") for n, op in enumerate(body)]
        contact, counts = self.store.patch_items(
            call.path["contactId"], kind, operations, call.user_id
        )
        return envelope({**counts, kind: [show(item) for item in contact[kind]]})

    # --------------------------------------------------------------------------- assets

    def _search_assets(self, call: Call) -> dict[str, Any]:
        q = _Query(call.params)
        account_id, contact_id = q.integer("Filter.AccountId"), q.integer("Filter.ContactId")
        categories = q.integers("Filter.CategoryIds")
        active, excluded = q.boolean("Filter.IsActive"), q.integer("Filter.ExcludedId")
        name, serial = q.text("Filter.AssetName"), q.text("Filter.SerialNumber")
        ip_address = q.text("Filter.IPAddress")
        rows = []
        for asset in self.store.assets.values():
            if account_id is not None and asset["accountId"] != account_id:
                continue
            if contact_id is not None and asset.get("contactId") != contact_id:
                continue
            if categories is not None and asset["categoryId"] not in categories:
                continue
            if active is not None and bool(asset["isActive"]) != active:
                continue
            if excluded is not None and asset["id"] == excluded:
                continue
            if not (
                _contains(asset["name"], name) and _contains(asset.get("serialNumber"), serial)
            ):
                continue
            if not _contains(asset.get("ipAddress"), ip_address):
                continue
            rows.append(asset)
        return self._page(q, rows, lambda a: render.asset_search(self.store, a), total=False)

    def _get_asset(self, call: Call) -> dict[str, Any]:
        asset = self.store.get("assets", call.path["assetId"])
        return envelope(render.asset_output(self.store, asset))

    def _create_asset(self, call: Call) -> dict[str, Any]:
        fields = F.read(call.json(), F.ASSET, required=F.ASSET_REQUIRED)
        return envelope(
            render.asset_output(self.store, self.store.create_asset(fields, call.user_id))
        )

    def _put_asset(self, call: Call) -> dict[str, Any]:
        self.store.get("assets", call.path["assetId"])
        fields = F.read(call.json(), F.ASSET, required=F.ASSET_REQUIRED)
        asset = self.store.replace_asset(call.path["assetId"], fields, call.user_id)
        return envelope(render.asset_output(self.store, asset))

    def _delete_asset(self, call: Call) -> dict[str, Any]:
        self.store.remove("assets", call.path["Id"], user=call.user_id)
        return envelope(None)

    # ------------------------------------------------------------------------- lookups

    def _user_info(self, call: Call) -> dict[str, Any]:
        """Who the token belongs to (clients use it as a connection check)."""
        return envelope(
            {
                "userId": call.user_id,
                "fullName": self.store.employees.get(call.user_id),
                "tenantId": 1,
                "businessName": self.store.tenant,
                "timeStamp": stamp(self.store.clock.now()),
            }
        )

    def _account_types(self, call: Call) -> dict[str, Any]:
        return envelope([dict(row) for row in ref.ACCOUNT_TYPES])

    def _lookup(self, call: Call) -> dict[str, Any]:
        key = ref.table_key(call.path["tableName"])
        if key is None:
            known = ", ".join(ref.LOOKUP_TABLES)
            raise invalid(
                "tableName", f"{call.path['tableName']!r} is not a lookup table ({known})"
            )
        return envelope([dict(row) for row in ref.LOOKUP_TABLES[key]])

    def _employees(self, call: Call) -> dict[str, Any]:
        q = _Query(call.params)
        ids, name = q.integers("Filter.Ids"), q.text("Filter.Name")
        rows = [
            {"id": i, "name": n}
            for i, n in sorted(self.store.employees.items())
            if (ids is None or i in ids) and _contains(n, name)
        ]
        return self._page(q, rows, dict, total=False)

    def _search_employees(self, call: Call) -> dict[str, Any]:
        """Employees with FirstName, LastName, EmailAddress, Username, IsActive: the list a
        client filters to "licensed, active users" (no licence field: psa-apis.md §9)."""
        q = _Query(call.params)
        ids, text = q.integers("Filter.Ids"), q.text("Filter.Filter_Text")
        active = q.boolean("Filter.IsActive")
        rows = []
        for employee_id in sorted(self.store.employees):
            row = render.employee_search(self.store, employee_id)
            if ids is not None and employee_id not in ids:
                continue
            if active is not None and bool(row["isActive"]) != active:
                continue
            words = (row["firstName"], row["lastName"], row["username"], row["emailAddress"])
            if text is not None and not any(_contains(w, text) for w in words):
                continue
            rows.append(row)
        return self._page(q, rows, dict)

    def _queues(self, call: Call) -> dict[str, Any]:
        return envelope([dict(row) for row in ref.QUEUES])

    def _list_tickets(self, call: Call) -> dict[str, Any]:
        q = _Query(call.params)
        return self._tickets(q, lambda name: q.text(f"Filter.{name}"))

    def _search_tickets(self, call: Call) -> dict[str, Any]:
        """GetTicketsInputDto: paging and `Filter` (TicketFilterDto) in a JSON body."""
        body = call.json()
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise invalid("body", "must be a JSON object")
        given = F.lookup(body, "filter") or {}
        if not isinstance(given, Mapping):
            raise invalid("filter", "must be a JSON object")
        params: dict[str, list[str]] = {}
        for name in ("PageSize", "PageNumber"):
            value = F.lookup(body, name)
            if value is not None:
                params[name.lower()] = [str(value)]

        def text(name: str) -> str | None:
            value = F.lookup(given, name)
            return None if value is None else str(value)

        for name in _TICKET_TIME_FILTERS:
            for bound in ("From", "To"):
                value = text(name + bound)
                if value is not None:
                    params[f"filter.{name}{bound}".lower()] = [value]
        return self._tickets(_Query(params), text)

    def _tickets(self, q: _Query, text: Callable[[str], str | None]) -> dict[str, Any]:
        """Both ticket lists: the filters of TicketFilterDto the simulator keeps, paged by id.

        Name lists (QueueNames, StatusNames...) and AccountIds are comma-separated;
        `ExcludeCompleted` 1 leaves out completed statuses; every date window is inclusive.
        LastActivityUpdate moves with every change: it is the "modified since" of tickets,
        which have no ModifiedOn filter (an assumption)."""
        names = {
            key: {n.strip().lower() for n in value.split(",") if n.strip()}
            for key in ("QueueNames", "StatusNames", "PriorityNames", "TicketTypeNames")
            if (value := text(key)) is not None
        }
        lookups = {
            "QueueNames": ("queueId", ref.QUEUES),
            "StatusNames": ("statusId", ref.TICKET_STATUSES),
            "PriorityNames": ("priorityId", ref.TICKET_PRIORITIES),
            "TicketTypeNames": ("typeId", ref.TICKET_TYPES),
        }
        wanted = {
            lookups[key][0]: {row["id"] for row in lookups[key][1] if row["name"].lower() in value}
            for key, value in names.items()
        }
        account_text = text("AccountIds")
        try:
            accounts = (
                None
                if account_text is None
                else {int(p) for p in account_text.split(",") if p.strip()}
            )
            contact_text = text("ContactId")
            contact = None if contact_text is None else int(contact_text)
            exclude_text = text("ExcludeCompleted")
            exclude_completed = exclude_text is not None and int(exclude_text) == 1
        except ValueError:
            raise invalid(
                "filter", "AccountIds, ContactId and ExcludeCompleted are integers"
            ) from None
        windows = {name: q.window(f"Filter.{name}") for name in _TICKET_TIME_FILTERS}
        number, title = text("TicketNumber"), text("Title")
        completed = {row["id"] for row in ref.TICKET_STATUSES if row["isCompleted"]}
        rows = []
        for ticket in self.store.tickets.values():
            if any(ticket.get(key) not in ids for key, ids in wanted.items()):
                continue
            if accounts is not None and ticket["accountId"] not in accounts:
                continue
            if contact is not None and ticket.get("contactId") != contact:
                continue
            if exclude_completed and ticket["statusId"] in completed:
                continue
            if not (
                _contains(ticket["ticketNumber"], number) and _contains(ticket["title"], title)
            ):
                continue
            if not all(
                window == (None, None)
                or (
                    ticket.get(_TICKET_TIME_FILTERS[name]) is not None
                    and _within(ticket[_TICKET_TIME_FILTERS[name]], window)
                )
                for name, window in windows.items()
            ):
                continue
            rows.append(ticket)
        return self._page(q, rows, lambda t: render.ticket_list(self.store, t))

    def _get_ticket(self, call: Call) -> dict[str, Any]:
        ticket = self.store.get("tickets", call.path["ticketId"])
        return envelope(render.ticket_output(self.store, ticket))

    # ------------------------------------------------------------------ admin webhooks

    def _webhook_input(self, call: Call) -> dict[str, Any]:
        """WebhookConfigurationInputDto as `Webhooks` arguments; the payload URL is required,
        `IsEnabled` defaults to true, `SendAllEvents` or a non-empty `Events` is needed."""
        body = call.json()
        spec = {
            "name": "str",
            "payloadURL": "str",
            "isEnabled": "bool",
            "secret": "str",
            "contentType": "int",
            "sendAllEvents": "bool",
        }
        fields = F.read(body, spec, required=("payloadURL",))
        events = F.lookup(body, "events") or []
        if not isinstance(events, list) or any(e not in EVENT_IDS.values() for e in events):
            known = ", ".join(f"{i} ({n})" for n, i in EVENT_IDS.items())
            raise invalid("events", f"must be a list of event ids: {known}")
        if not fields["sendAllEvents"] and not events:
            raise invalid("events", "must name at least one event unless sendAllEvents is true")
        by_id = {i: n for n, i in EVENT_IDS.items()}
        return {
            "url": fields["payloadURL"],
            "secret": fields["secret"] or None,
            "name": fields["name"] or "",
            "enabled": True if fields["isEnabled"] is None else fields["isEnabled"],
            "events": () if fields["sendAllEvents"] else tuple(by_id[e] for e in events),
            "content_type": fields["contentType"] or 1,
        }

    def _webhook(self, webhook_id: int) -> WebhookConfig:
        found = self.webhooks.configs.get(webhook_id)
        if found is None:
            raise not_found("Webhook", webhook_id)
        return found

    def _create_webhook(self, call: Call) -> dict[str, Any]:
        given = self._webhook_input(call)
        try:
            config = self.webhooks.add(
                given["url"],
                given["secret"],
                name=given["name"],
                enabled=given["enabled"],
                events=given["events"],
            )
            now = self.store.clock.now()
            config = self.webhooks.update(
                config.id,
                content_type=given["content_type"],
                created_by=call.user_id,
                created_on=now,
                modified_by=call.user_id,
                modified_on=now,
            )
        except ValueError as error:
            raise invalid("payloadURL", str(error)) from None
        return envelope(_webhook_output(config))

    def _get_webhook(self, call: Call) -> dict[str, Any]:
        return envelope(_webhook_output(self._webhook(call.path["id"])))

    def _put_webhook(self, call: Call) -> dict[str, Any]:
        self._webhook(call.path["id"])
        given = self._webhook_input(call)
        try:
            config = self.webhooks.update(
                call.path["id"],
                url=given["url"],
                secret=given["secret"],
                name=given["name"],
                enabled=given["enabled"],
                events=list(given["events"]),
                content_type=given["content_type"],
                modified_by=call.user_id,
                modified_on=self.store.clock.now(),
            )
        except ValueError as error:
            raise invalid("payloadURL", str(error)) from None
        return envelope(_webhook_output(config))

    def _delete_webhook(self, call: Call) -> dict[str, Any]:
        self._webhook(call.path["id"])
        self.webhooks.remove(call.path["id"])
        return envelope(None)

    def _webhook_events(self, call: Call) -> dict[str, Any]:
        category_id, category = EVENT_CATEGORY
        return envelope(
            [
                {"id": i, "name": name, "categoryName": category, "categoryId": category_id}
                for name, i in EVENT_IDS.items()
            ]
        )

    # ------------------------------------------------------------------------- helpers

    def _page(
        self,
        q: _Query,
        rows: list[Any],
        show: Callable[[Any], dict[str, Any]],
        *,
        total: bool = True,
    ) -> dict[str, Any]:
        size = q.integer("PageSize")
        number = q.integer("PageNumber")
        size = self.default_page_size if size is None else size
        number = 1 if number is None else number
        if size < 1:
            raise invalid("pageSize", "must be at least 1")
        if number < 1:
            raise invalid("pageNumber", "must be at least 1")
        size = min(size, self.max_page_size)
        start = (number - 1) * size
        page = [show(row) for row in rows[start : start + size]]
        return envelope(page, len(rows) if total else None)

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
                if "calls_per_hour" in changes:
                    per_hour = changes.pop("calls_per_hour")
                    if not isinstance(per_hour, int) or isinstance(per_hour, bool) or per_hour < 0:
                        raise ValueError("calls_per_hour must be a non-negative integer")
                    self.budget.per_hour = per_hour
                self.faults.configure(changes)
                if denied is not None:
                    self.denials.configure(denied)
            except ValueError as error:
                return JSONResponse(
                    {"success": False, "error": {"code": 400, "message": str(error)}}, 400
                )
        elif request.method == "DELETE":
            self.faults.clear()
            self.budget.reset()
            self.denials.clear()
        return JSONResponse(
            {
                "faults": self.faults.as_dict(),
                "denied": self.denials.as_dict(),
                "calls_per_hour": self.budget.per_hour,
                "traffic": self.traffic.as_dict(),
            }
        )


def create_app(store: PulsewayStore | None = None, **options: Any) -> Starlette:
    """A Starlette app serving `store`; `options` as for `PulsewaySimulator`.
    The simulator is reachable as ``app.state.simulator``."""
    return PulsewaySimulator(store, **options).app


# TicketFilterDto date windows (``<name>From`` / ``<name>To``) and the ticket field each reads.
_TICKET_TIME_FILTERS = {
    "LastActivityUpdate": "lastActivityUpdate",
    "CreatedOn": "createdOn",
    "OpenDate": "openDate",
    "CompletedDate": "completedDate",
    "LastStatusUpdate": "lastStatusUpdate",
}


def _webhook_output(config: WebhookConfig) -> dict[str, Any]:
    """WebhookConfigurationOutputDto: the secret is never shown, only whether there is one."""
    by_name = {n: i for n, i in EVENT_IDS.items()}
    return {
        "id": config.id,
        "createdBy": config.created_by,
        "createdOn": None if config.created_on is None else stamp(config.created_on),
        "modifiedBy": config.modified_by,
        "modifiedOn": None if config.modified_on is None else stamp(config.modified_on),
        "isEnabled": config.enabled,
        "payloadUrl": config.url,
        "name": config.name,
        "contentType": config.content_type,
        "sendAllEvents": not config.events,
        "events": [by_name[e] for e in config.events if e in by_name],
        "hasSecret": config.secret is not None,
    }


class _Bare(dict[str, Any]):
    """A response body sent as is, without the envelope (see ``summary_by_id_envelope``)."""


class _Query:
    """Typed access to query parameters (names case-insensitive, as in ASP.NET)."""

    def __init__(self, params: Mapping[str, list[str]]) -> None:
        self.params = params

    def _values(self, name: str) -> list[str]:
        return [v for v in self.params.get(name.lower(), []) if v != ""]

    def text(self, name: str) -> str | None:
        values = self._values(name)
        return values[-1] if values else None

    def integer(self, name: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise invalid(name, "must be an integer") from None

    def integers(self, name: str) -> set[int] | None:
        """Repeated (``?X=1&X=2``) or comma-separated (``?X=1,2``) integers."""
        values = [p for v in self._values(name) for p in v.split(",") if p.strip()]
        if not values:
            return None
        try:
            return {int(v) for v in values}
        except ValueError:
            raise invalid(name, "must be integers") from None

    def boolean(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        if value.lower() not in ("true", "false"):
            raise invalid(name, "must be true or false")
        return value.lower() == "true"

    def time(self, name: str) -> datetime | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return parse_time(value)
        except ValueError:
            raise invalid(name, "must be an ISO 8601 date-time") from None

    def window(self, prefix: str) -> tuple[datetime | None, datetime | None]:
        return self.time(prefix + "From"), self.time(prefix + "To")


def _within(moment: datetime, window: tuple[datetime | None, datetime | None]) -> bool:
    """Both bounds inclusive."""
    low, high = window
    return (low is None or moment >= low) and (high is None or moment <= high)


def _contains(value: str | None, wanted: str | None) -> bool:
    return wanted is None or (value is not None and wanted.lower() in value.lower())


def _items(body: Any, name: str, spec: F.Fields) -> list[Record]:
    given = F.lookup(body, name)
    if given is None:
        return []
    if not isinstance(given, list):
        raise invalid(name, "must be an array")
    return [F.read(item, spec, prefix=f"{name}[{n}].") for n, item in enumerate(given)]


_OPERATION_TYPES = {0: "add", 1: "remove", 2: "replace", 3: "move", 4: "copy", 5: "test"}


def _json_patch(document: dict[str, Any], operations: Any, spec: F.Fields) -> dict[str, Any]:
    """Apply an ASP.NET JsonPatch document (``add``/``replace``/``remove``; paths
    ``/fieldName`` in any case) to the writable fields of a record."""
    if not isinstance(operations, list) or not operations:
        raise invalid("body", "must be a non-empty JSON Patch array")
    names = {name.lower(): name for name in spec}
    out = dict(document)
    for n, op in enumerate(operations):
        if not isinstance(op, Mapping):
            raise invalid(f"[{n}]", "must be a JSON Patch operation")
        kind = F.lookup(op, "op")
        if kind is None and isinstance(F.lookup(op, "operationType"), int):
            kind = _OPERATION_TYPES.get(F.lookup(op, "operationType"))
        kind = str(kind or "").lower()
        path = str(F.lookup(op, "path") or "")
        name = names.get(path.strip("/").lower())
        if name is None:
            raise invalid(f"[{n}].path", f"{path!r} is not a field that can be patched")
        if kind in ("add", "replace"):
            out[name] = F.lookup(op, "value")
        elif kind == "remove":
            out[name] = None
        else:
            raise invalid(f"[{n}].op", f"{kind!r} is not supported (add, replace, remove)")
    return out


async def _no_endpoint(request: Request, exc: Exception) -> Response:
    error = ApiError(404, f"No endpoint {request.method} {request.url.path}.", status=404)
    return _respond(error.body(), 404)


def _respond(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    content = _JSON.encode(body).encode()
    return Response(content, status, dict(headers or {}), media_type="application/json")
