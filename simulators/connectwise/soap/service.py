"""The SOAP operations over the store: credentials, dispatch, finds, gets, writes, deletes.

`SoapApi.handle` turns one request element into an answer envelope or raises `SoapFault`;
HTTP concerns (routes, faults injection, traffic) stay in `endpoint.py`.

Writes: ``Add*`` (and ``AddOrUpdate*`` with ``Id`` 0) create from the request; ``Update*`` (and
``AddOrUpdate*`` with an id) replace every field the SOAP type carries with the request's
(an element left out clears it) and keep the REST fields it has no element for
(``records.py``). A company update with ``Addresses`` also writes each address to its site
(``Id`` 0 adds a site); a site whose address is left out is kept (assumed: psa-apis.md has
nothing on it), and ``Addresses`` left out altogether leaves the sites alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree  # type: ignore[import-untyped]  # no stubs installed

from simulators.bodies import same_secret
from simulators.connectwise.errors import ApiError
from simulators.connectwise.render import Renderer
from simulators.connectwise.schema import RESOURCES
from simulators.connectwise.soap import records
from simulators.connectwise.soap.contract import CREDENTIALS, NS, SERVICES, TYPES, Operation
from simulators.connectwise.soap.envelope import SoapFault, answer, read, read_fields
from simulators.connectwise.soap.queries import build_query
from simulators.connectwise.store import ConnectWiseStore

BAD_LOGIN = "Username or password is incorrect."
Render = Callable[[ConnectWiseStore, records.Record], records.Record]


@dataclass(frozen=True)
class IntegratorLogin:
    """The legacy SOAP integrator login the simulator accepts (with the REST company id)."""

    login_id: str = "psasync-integrator"
    password: str = "integrator-password"  # noqa: S105 -- the demo default, documented


@dataclass(frozen=True)
class _Entity:
    collection: str
    title: str
    render: Render
    render_found: Render
    # The REST fields of a SOAP record (store, SOAP value, the stored document or None).
    document: Callable[[ConnectWiseStore, records.Record, records.Record | None], records.Record]


_ENTITIES = {
    "Company": _Entity(
        "companies",
        "Company",
        records.company,
        records.company_found,
        lambda store, value, current: records.company_document(value, current),
    ),
    "Contact": _Entity(
        "contacts",
        "Contact",
        records.contact,
        records.contact_found,
        lambda store, value, current: records.contact_document(value, current),
    ),
    "Configuration": _Entity(
        "configurations",
        "Configuration",
        records.configuration,
        records.configuration_found,
        lambda store, value, current: records.configuration_document(value),
    ),
}


class SoapApi:
    """One site's SOAP services over `store`."""

    def __init__(self, store: ConnectWiseStore, company_id: str, login: IntegratorLogin) -> None:
        self.store = store
        self.company_id = company_id
        self.login = login

    def operation(self, service: str, request: etree._Element, soap_action: str) -> str:
        """The operation named by SOAPAction (quotes optional), else by the body's element."""
        action = soap_action.strip().strip('"')
        name = action.rsplit("/", 1)[-1] if action else etree.QName(request).localname
        if name not in SERVICES[service]:
            shown = action or etree.QName(request).localname
            raise SoapFault(
                f"Server did not recognize the value of HTTP Header SOAPAction: {shown}.",
                "soap:Client",
            )
        return name

    def handle(self, service: str, name: str, request: etree._Element) -> bytes:
        operation = SERVICES[service][name]
        self._authenticate(request)
        values = read_fields(request, operation.params)
        try:
            result = self._run(service, name, operation, values)
        except ApiError as error:  # validation, not found, bad conditions: ConnectWise's text
            raise SoapFault(_message(error)) from None
        return answer(name, operation.result, result)

    def _authenticate(self, request: etree._Element) -> None:
        element = request.find(f"{{{NS}}}{CREDENTIALS.name}")
        given = {} if element is None else read(element, CREDENTIALS) or {}
        company = given.get("CompanyId") or ""
        if company and company.lower() != self.company_id.lower():
            raise SoapFault(f"Cannot find company '{company}' in connectwise config.")
        if not (
            company
            and same_secret(given.get("IntegratorLoginId") or "", self.login.login_id)
            and same_secret(given.get("IntegratorPassword") or "", self.login.password)
        ):
            raise SoapFault(BAD_LOGIN)

    def _run(self, service: str, name: str, operation: Operation, values: dict[str, Any]) -> Any:
        if name == "FindConfigurationTypes":
            return {
                "ConfigurationTypeFindResult": self._find(
                    "configuration_types", values, records.configuration_type
                )
            }
        entity = _ENTITIES[service]
        if name.endswith("Count"):
            query = build_query(entity.collection, values.get("conditions"), None)
            ids = self.store.select(entity.collection, query)
            if values.get("isOpen") is not None:  # open = active configurations
                wanted = bool(values["isOpen"])
                ids = [i for i in ids if bool(self._get(entity, i).get("activeFlag")) == wanted]
            return len(ids)
        if name.startswith("Find"):
            item = TYPES[operation.result.type if operation.result else ""][0].name
            return {item: self._find(entity.collection, values, entity.render_found)}
        if name.startswith("Get"):
            return entity.render(self.store, self._get(entity, values.get("id", 0)))
        if name.startswith("Delete"):
            self._get(entity, values.get("id", 0))
            self.store.delete(entity.collection, values["id"], updated_by=self.login.login_id)
            return None
        return self._write(entity, name, values)

    def _find(self, collection: str, values: dict[str, Any], render: Render) -> list[Any]:
        limit, skip = values.get("limit"), values.get("skip") or 0
        if (limit is not None and limit < 0) or skip < 0:
            raise SoapFault("limit and skip must not be negative.")
        if limit == 0:  # as documented for ConnectWise: limit 0 returns nothing
            return []
        query = build_query(collection, values.get("conditions"), values.get("orderBy"))
        with self.store.lock:
            ids = self.store.select(collection, query)
            page = ids[skip:] if limit is None else ids[skip : skip + limit]
            return [render(self.store, self._record(collection, i)) for i in page]

    def _write(self, entity: _Entity, name: str, values: dict[str, Any]) -> records.Record:
        value = next((v for k, v in values.items() if isinstance(v, dict)), None) or {}
        record_id = value.get("Id") or 0
        creating = name.startswith("Add") and not (name.startswith("AddOrUpdate") and record_id)
        member = self.login.login_id
        with self.store.lock:  # the read of the stored record and the write as one
            if creating:
                document = entity.document(self.store, value, None)
                present = {k: v for k, v in document.items() if v is not None}
                created = self.store.create(entity.collection, present, updated_by=member)
                record_id = created["id"]
            else:
                row = self.store.live_row(entity.collection, record_id)
                current = Renderer(self.store, None).document(RESOURCES[entity.collection], row)
                document = entity.document(self.store, value, current)
                self.store.update(entity.collection, record_id, document, updated_by=member)
                if entity.collection == "companies":
                    self._write_addresses(record_id, value.get("Addresses"), member)
            return entity.render(self.store, self._get(entity, record_id))

    def _write_addresses(self, company_id: int, addresses: Any, member: str) -> None:
        """Each address of ``Addresses`` to its site (``Id`` 0: a new site); see the module
        docstring for the sites left out."""
        if not isinstance(addresses, dict):
            return
        for address in addresses.get("CompanyAddress") or ():
            if not isinstance(address, dict):
                continue
            document = records.site_document(self.store, address)
            site_id = address.get("Id") or 0
            if site_id:
                self.store.live_row("sites", site_id, company_id)  # another company's: a fault
                current = self.store.get("sites", site_id)
                assert current is not None
                if records.same_address(records.address(company_id, current), address):
                    continue  # sent back as read: the site is not written (nor stamped)
                self.store.update("sites", site_id, document, updated_by=member)
            else:
                present = {k: v for k, v in document.items() if v is not None}
                self.store.create("sites", present, parent_id=company_id, updated_by=member)

    def _get(self, entity: _Entity, record_id: int) -> records.Record:
        with self.store.lock:
            self.store.live_row(entity.collection, record_id)
            return self._record(entity.collection, record_id)

    def _record(self, collection: str, record_id: int) -> records.Record:
        record = self.store.get(collection, record_id)
        assert record is not None  # selected or checked under the store's lock
        return record


def _message(error: ApiError) -> str:
    body = error.body()
    details = [e.get("message", "") for e in body.get("errors") or () if isinstance(e, dict)]
    return " ".join([str(body.get("message", error)), *details]).strip()
