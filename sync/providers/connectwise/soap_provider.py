"""ConnectWise Manage through its legacy SOAP API (integrator login): a ``PsaProvider`` over
``ConnectWiseSoapClient``, reads and writes.

For an integration whose credentials hold the integrator login but no REST keys. Records map
to the same local columns as through REST (``mapping.SOAP_RECORD_MAPS``), with the same ids
(a SOAP ``Id``/``CompanyRecID`` is the REST id).

How each read is done, and what SOAP cannot do:

- Lists: ``Find*`` (ordered by id, so pages ascend) gives a summary per record; the full record
  comes from ``Get*`` of each id, a few at a time (``GET_CONCURRENCY``), and both are merged
  (a ``ContactFindResult`` has the company's record id, ``GetContact`` only its identifier;
  the find results of companies and configurations carry no ``LastUpdate``). So a list costs
  one call per record plus one per page.
- Sites are a company's ``Addresses`` (``GetCompany``), one call per company.
- Incremental: ``LastUpdate >= [since]`` conditions (the date syntax is the REST one, and is
  unverified against a real ConnectWise: psa-apis.md §3.4), then ``Get*`` of the ids found.
  Soft-deleted companies are not listed by SOAP: ``deleted_since`` yields nothing and the
  reconciliation's id sets find deletions instead.
- Reference lists: SOAP has no list of company types, company statuses, contact types or
  configuration statuses (the WSDLs hold none). So ``reference_data`` walks
  ``FindCompanies``, ``FindContacts`` and ``FindConfigurations`` and collects the values in
  use. Company and contact types and company statuses have names only: each gets a stable id
  derived from its name (``mapping.synthetic_id``: SHA-256 of the case-folded name, above any
  real id). Configuration types and statuses carry their real ids. A value no record uses is
  not listed, except configuration types: ``FindConfigurationTypes`` lists them all.
- Scope at the source as REST does: company statuses (by name, once ``reference_data`` has
  named their ids), configuration types and statuses (by id). Company types are checked by
  the engine (a company is in scope when all its types are; SOAP shows its first type only).
- No callbacks (``subscriptions`` is None): SOAP-only integrations poll.

How each write is done (``mapping.SOAP_WRITE_MAPS`` says which elements each column writes):

- ``Update*`` and ``AddOrUpdate*`` replace the whole record: an element left out is cleared.
  So an update starts from the full record as read (``Get*``) and rewrites only the elements
  of the columns the change sets; everything else goes back exactly as read.
  ``read_for_write`` keeps the records it reads, for the ``update_record`` of the same record
  that follows in the same push (``KEEP_SECONDS`` at most, and only until the next
  ``read_for_write``); without one, ``update_record`` reads the record first. SOAP has no
  partial or conditional update: a PSA user's change to ANY field of the record made between
  that read and the write is overwritten (over REST, only a change to a field we write is),
  so the window is kept to the push's chunk, about a second.
- Companies and configurations: ``AddCompany``/``UpdateCompany``, ``AddConfiguration``/
  ``UpdateConfiguration``. Contacts: ``AddOrUpdateContact`` (``Id`` 0 creates; ContactApi has
  no Add or Update), naming the company by its identifier (``CompanyId``).
- Sites are a company's ``Addresses``: a site is updated, or added (``Id`` 0), by an
  ``UpdateCompany`` carrying the company as read with that one address changed (and the
  company's ``DefaultAddress`` too when it is that site). SOAP has no way to delete a site:
  a delete raises ``RecordError`` saying so (psa-apis.md §3 documents none, and leaving the
  address out of ``Addresses`` is not relied on to delete it).
- Company and contact types and company statuses are written by name: the names of their
  derived ids are learnt by ``reference_data`` (read again once for an id not known yet;
  still unknown, the write raises ``RecordError`` naming the value).
- Columns SOAP cannot write (a company's parent and primary site, a contact's site, a site's
  phone, fax and primary flag, a configuration's installer) are not written: they flow from
  ConnectWise only (``field_map``, ``mapping.SOAP_FIELD_MAP``).
- A new company without a short name gets an identifier derived from its name, numbered past
  the identifiers ``FindCompanies`` shows in use. Creates are sent once: the client re-sends a
  write only when it surely was not sent.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from models.enums import AssetKind, ReferenceKind
from sync.concurrency import gather_all
from sync.errors import PermissionDenied, ProtocolError, RecordError
from sync.providers.base import (
    AreaAccess,
    FieldMap,
    MatchProbe,
    NotSupportedError,
    ProviderScope,
    PsaChange,
    PsaRecord,
    PsaReference,
    PsaSubscriptions,
    PsaUser,
)
from sync.providers.connectwise import mapping, writes
from sync.providers.connectwise.query import cw_and, cw_cmp, cw_eq, cw_in, cw_or
from sync.providers.connectwise.soap import ConnectWiseSoapClient, SoapEntity

__all__ = ["SOAP_HAS_NO_MEMBERS", "ConnectWiseSoapProvider"]

SOAP_HAS_NO_MEMBERS: Final = (
    "ConnectWise's legacy SOAP API has no list of members: add the REST API member keys to "
    "this integration to list its users"
)

# Get* calls in flight at once while a page of find results is completed.
GET_CONCURRENCY: Final = 8
# Ids per ``Id in (…)`` condition when fetching records by id.
FETCH_BATCH: Final = 100

_ENTITY: Final[Mapping[AssetKind, SoapEntity]] = {
    AssetKind.ORGANIZATION: "company",
    AssetKind.CONTACT: "contact",
    AssetKind.CONFIGURATION: "configuration",
}
# How long a record read for a write may be written back (a push writes within seconds).
KEEP_SECONDS: Final = 60.0
_COMPANY: Final = "company"
_NO_SITE_DELETE: Final = (
    "ConnectWise's legacy SOAP API cannot delete a site: delete it in ConnectWise, or add REST "
    "API keys to the integration"
)
_SOAP_AREAS: Final[Mapping[SoapEntity, str]] = {
    "company": "companies",
    "contact": "contacts",
    "configuration": "configurations",
}
_REFERENCE_WORDS: Final[Mapping[ReferenceKind, str]] = {
    ReferenceKind.ORGANIZATION_TYPE: "company type",
    ReferenceKind.ORGANIZATION_STATUS: "company status",
    ReferenceKind.CONTACT_TYPE: "contact type",
}


class ConnectWiseSoapProvider:
    display_name = "ConnectWise Manage"
    # The REST field table, with what SOAP cannot write flowing from ConnectWise only.
    field_map: FieldMap = mapping.SOAP_FIELD_MAP

    def __init__(
        self, client: ConnectWiseSoapClient, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.subscriptions: PsaSubscriptions | None = None
        # Reference value names by their derived id, learnt by ``reference_data``: the scope
        # and changes hold ids, SOAP filters and writes by name.
        self._names: dict[ReferenceKind, dict[int, str]] = {}
        # Records read for a write: (entity, id) → (when, the record as read, its company).
        self._kept: dict[tuple[SoapEntity, int], tuple[float, dict[str, Any], int | None]] = {}
        self._clock = clock

    async def check_connection(self) -> None:
        """One cheap authenticated call (a contact count matching nothing)."""
        await self.client.count("contact", cw_cmp(mapping.SOAP_ID, "=", 0))

    async def reference_data(self) -> dict[ReferenceKind, list[PsaReference]]:
        """The values in use, collected from the records, and every configuration type (see
        the module docstring)."""
        found: dict[ReferenceKind, dict[int, str]] = {kind: {} for kind in _REFERENCE_KINDS}
        denied: set[ReferenceKind] = set()  # from an API the login may not read: left out
        for entity in _ENTITY.values():
            sources = mapping.SOAP_REFERENCE_SOURCES[entity]
            try:
                async for page in self.client.find(entity, order_by=mapping.SOAP_ORDER[entity]):
                    for row in page:
                        for kind, (id_element, name_element) in sources.items():
                            name = mapping.text(row.get(name_element))
                            if name is None:
                                continue
                            psa_id = (
                                mapping.synthetic_id(name)
                                if id_element is None
                                else mapping.soap_id(row.get(id_element))
                            )
                            if psa_id is not None:
                                found[kind].setdefault(psa_id, name)
            except PermissionDenied:
                if entity == _COMPANY:
                    raise  # the core read: setup and runs stop on it
                denied.update(sources)
        # Configuration types have a list of their own: those no record uses are offered too.
        if ReferenceKind.CONFIGURATION_TYPE not in denied:
            async for page in self.client.configuration_types():
                for row in page:
                    psa_id, name = mapping.soap_id(row.get("Id")), mapping.text(row.get("Name"))
                    if psa_id is not None and name is not None:
                        found[ReferenceKind.CONFIGURATION_TYPE].setdefault(psa_id, name)
        self._names = {kind: dict(values) for kind, values in found.items()}
        return {
            kind: sorted(
                (PsaReference(psa_id, name) for psa_id, name in values.items()),
                key=lambda r: (r.name.casefold(), r.psa_id),
            )
            for kind, values in found.items()
            if kind not in denied
        }

    async def probe_reads(self, areas: Collection[str] | None = None) -> list[AreaAccess]:
        """One record of each SOAP API the login reads (``Find*`` with ``limit`` 1). Sites
        are company addresses here; members, boards and tickets are not read through SOAP."""
        found: list[AreaAccess] = []
        for kind, entity in _ENTITY.items():
            area = _SOAP_AREAS[entity]
            if areas is not None and area not in areas:
                continue
            kinds = (kind, AssetKind.LOCATION) if entity == _COMPANY else (kind,)
            try:
                await self.client.first(entity)
            except PermissionDenied as exc:
                found.append(
                    AreaAccess(area, "read", False, exc.message, kinds, entity == _COMPANY)
                )
                continue
            found.append(AreaAccess(area, "read", True, None, kinds, entity == _COMPANY))
        return found

    async def estimate_total(self, scope: ProviderScope, *, contacts: bool) -> int | None:
        # CompanyApi has no count operation: the total is not cheap to know.
        return None

    # -- lists ---------------------------------------------------------------------------------

    async def organizations(
        self, scope: ProviderScope, *, after: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        status = None
        if since is None:
            if not scope.ids(ReferenceKind.ORGANIZATION_STATUS):
                return  # no status enabled: nothing is in scope
            status = self._status_condition(scope)
        conditions = cw_and(status, *_window(AssetKind.ORGANIZATION, after, since))
        async for page in self._read(AssetKind.ORGANIZATION, conditions):
            yield page

    async def locations(
        self, organization_psa_id: int, *, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        """The company's ``Addresses`` (they carry no stamp: ``since`` cannot filter them).
        A company gone from ConnectWise raises ``RecordError``, as REST's 404 does."""
        company = await self.client.get("company", organization_psa_id)
        if company is None:
            raise RecordError(f"ConnectWise has no company {organization_psa_id}")
        table = mapping.SOAP_ADDRESS
        rows = mapping.soap_list(company.get(mapping.SOAP_ADDRESSES))
        records = [
            table.to_record(row, parent_psa_id=organization_psa_id)
            for row in rows
            if isinstance(row, dict) and mapping.soap_id(row.get(mapping.SOAP_ID)) is not None
        ]
        if records:
            yield sorted(records, key=_by_id)

    async def contacts(
        self, *, after: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        conditions = cw_and(*_window(AssetKind.CONTACT, after, since))
        async for page in self._read(AssetKind.CONTACT, conditions):
            yield page

    async def configurations(
        self, scope: ProviderScope, *, after: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        conditions = cw_and(
            *_configuration_scope(scope, since), *_window(AssetKind.CONFIGURATION, after, since)
        )
        async for page in self._read(AssetKind.CONFIGURATION, conditions):
            yield page

    async def fetch(self, kind: AssetKind, psa_ids: Sequence[int]) -> list[PsaRecord]:
        """The records with these ids that ConnectWise still has, ascending, whatever the
        scope: ``Id in (…)`` finds in batches, then ``Get*`` of each."""
        if kind is AssetKind.LOCATION:
            raise ValueError("ConnectWise sites are read through their company")
        wanted = sorted(set(psa_ids))
        records: list[PsaRecord] = []
        for batch in _batches(wanted, FETCH_BATCH):
            conditions = cw_in(mapping.SOAP_FIND_ID[_ENTITY[kind]], batch)
            async for page in self._read(kind, conditions):
                records.extend(page)
        requested = set(wanted)
        return sorted((r for r in records if r.psa_id in requested), key=_by_id)

    async def record_ids(self, kind: AssetKind, scope: ProviderScope) -> AsyncIterator[list[int]]:
        """Pages of the ids a full sync lists (same scope conditions), ascending; find
        results only, no ``Get*``."""
        conditions: str | None = None
        if kind is AssetKind.LOCATION:
            raise ValueError("ConnectWise lists sites per company: no site ids to list")
        if kind is AssetKind.ORGANIZATION:
            if not scope.ids(ReferenceKind.ORGANIZATION_STATUS):
                return
            conditions = self._status_condition(scope)
        elif kind is AssetKind.CONFIGURATION:
            conditions = cw_and(*_configuration_scope(scope, None)) or None
        entity = _ENTITY[kind]
        id_element = mapping.SOAP_FIND_ID[entity]
        async for page in self.client.find(entity, conditions, mapping.SOAP_ORDER[entity]):
            ids = [mapping.soap_id(row.get(id_element)) for row in page]
            yield [i for i in ids if i is not None]

    async def deleted_since(self, kind: AssetKind, since: datetime) -> AsyncIterator[list[int]]:
        """Nothing: SOAP lists no soft-deleted companies (the reconciliation finds them)."""
        return
        yield  # pragma: no cover -- makes this an async generator

    async def _read(
        self, kind: AssetKind, conditions: str | None
    ) -> AsyncIterator[list[PsaRecord]]:
        """Find pages under ``conditions``, each completed by ``Get*`` and mapped."""
        async for page in self._read_full(kind, conditions):
            yield [record for record, _raw in page]

    async def _read_full(
        self, kind: AssetKind, conditions: str | None
    ) -> AsyncIterator[list[tuple[PsaRecord, dict[str, Any]]]]:
        """Find pages under ``conditions``, each record completed by ``Get*``: mapped, and the
        ``Get*`` record as read (what a write sends back)."""
        entity = _ENTITY[kind]
        table = mapping.SOAP_RECORD_MAPS[kind]
        id_element = mapping.SOAP_FIND_ID[entity]
        gate = asyncio.Semaphore(GET_CONCURRENCY)

        async def complete(row: dict[str, Any]) -> tuple[PsaRecord, dict[str, Any]] | None:
            psa_id = mapping.soap_id(row.get(id_element))
            if psa_id is None:
                return None
            async with gate:
                try:
                    full = await self.client.get(entity, psa_id)
                except RecordError:  # deleted between the find and the get
                    return None
            if full is None:
                return None
            # Get's elements win; the find result adds what Get lacks (a contact's company id).
            merged = {**row, **{k: v for k, v in full.items() if v is not None}}
            return table.to_record(merged), full

        async for rows in self.client.find(entity, conditions or None, mapping.SOAP_ORDER[entity]):
            found = [r for r in await gather_all(*(complete(row) for row in rows)) if r]
            if found:
                yield sorted(found, key=lambda pair: pair[0].psa_id)

    def _status_condition(self, scope: ProviderScope) -> str | None:
        """``Status in (…)`` for the enabled company statuses; None (no filter at the source:
        the engine checks the scope) when their names are not known here."""
        enabled = scope.ids(ReferenceKind.ORGANIZATION_STATUS)
        known = self._names.get(ReferenceKind.ORGANIZATION_STATUS, {})
        names = [known.get(psa_id) for psa_id in sorted(enabled)]
        if not names or any(name is None for name in names):
            return None
        return cw_in(mapping.SOAP_COMPANY_STATUS, [n for n in names if n is not None])

    # -- writes (two-way sync) ----------------------------------------------------------------

    async def read_for_write(
        self, kind: AssetKind, records: Sequence[tuple[int, int | None]]
    ) -> list[PsaRecord]:
        """The records by ``Id in (…)`` finds and ``Get*`` (sites: ``GetCompany`` of each
        company), kept for the writes that follow (see the module docstring)."""
        self._kept.clear()
        if kind is AssetKind.LOCATION:
            wanted = {psa_id for psa_id, _parent in records}
            companies = sorted({parent for _psa_id, parent in records if parent is not None})
            found: list[PsaRecord] = []
            gate = asyncio.Semaphore(GET_CONCURRENCY)

            async def read_company(company_id: int) -> dict[str, Any] | None:
                async with gate:
                    return await self._company(company_id)

            read_all = await gather_all(*(read_company(c) for c in companies))
            for company_id, company in zip(companies, read_all, strict=True):
                if company is not None:
                    self._keep(_COMPANY, company_id, company, None)
                    found.extend(s for s in _sites(company, company_id) if s.psa_id in wanted)
            return sorted(found, key=_by_id)
        entity = _ENTITY[kind]
        read: list[PsaRecord] = []
        for batch in _batches(sorted({psa_id for psa_id, _parent in records}), FETCH_BATCH):
            conditions = cw_in(mapping.SOAP_FIND_ID[entity], batch)
            async for page in self._read_full(kind, conditions):
                for record, raw in page:
                    self._keep(entity, record.psa_id, raw, record.parent_psa_id)
                    read.append(record)
        return sorted(read, key=_by_id)

    async def update_record(
        self, kind: AssetKind, psa_id: int, parent_psa_id: int | None, change: PsaChange
    ) -> PsaRecord:
        """Read-modify-write of the whole record (see the module docstring); returns it as
        ConnectWise stored it. A change SOAP can write nothing of sends nothing and returns
        the record as read. ValueError for an empty change."""
        if change.empty and change.parent_psa_id is None:
            raise ValueError("an update needs something to change")
        if kind is AssetKind.LOCATION:
            return await self._update_site(psa_id, parent_psa_id, change)
        entity = _ENTITY[kind]
        kept = self._take(entity, psa_id)
        if kept is None:
            kept = await self._current(kind, psa_id)
        current, owner = kept
        table = mapping.SOAP_WRITE_MAPS[kind]
        if change.parent_psa_id is not None and table.parent is not None:
            owner = change.parent_psa_id
        if not table.writes(change):
            return mapping.SOAP_RECORD_MAPS[kind].to_record(current, parent_psa_id=owner)
        body = copy.deepcopy(current)
        await self._apply(kind, body, change, create=False)
        if kind is AssetKind.CONTACT:  # ContactApi has no Update
            answer = await self.client.add_or_update(entity, body)
        else:
            answer = await self.client.update(entity, body)
        answer = answer or await self.client.get(entity, psa_id)
        if answer is None:
            raise ProtocolError(
                f"ConnectWise answered the update of {entity} {psa_id} with nothing"
            )
        return mapping.SOAP_RECORD_MAPS[kind].to_record(answer, parent_psa_id=owner)

    async def create_record(self, kind: AssetKind, change: PsaChange) -> PsaRecord:
        """``AddCompany``, ``AddOrUpdateContact`` (``Id`` 0), ``AddConfiguration``; a site
        through its company (see the module docstring). Returns it as ConnectWise stored it."""
        if kind is AssetKind.LOCATION:
            return await self._create_site(change)
        entity = _ENTITY[kind]
        body = copy.deepcopy(dict(mapping.SOAP_WRITE_MAPS[kind].new))
        if kind is AssetKind.ORGANIZATION and not mapping.text(
            change.values.get(mapping.IDENTIFIER_COLUMN)
        ):
            identifier = await self._free_identifier(mapping.text(change.values.get("name")) or "")
            change = replace(
                change, values={**change.values, mapping.IDENTIFIER_COLUMN: identifier}
            )
        await self._apply(kind, body, change, create=True)
        if kind is AssetKind.CONTACT:
            answer = await self.client.add_or_update(entity, body)
        else:
            answer = await self.client.add(entity, body)
        if answer is None:
            raise ProtocolError(f"ConnectWise answered the create of a {entity} with nothing")
        return mapping.SOAP_RECORD_MAPS[kind].to_record(answer, parent_psa_id=change.parent_psa_id)

    async def delete_record(self, kind: AssetKind, psa_id: int, parent_psa_id: int | None) -> None:
        """``Delete*``; a record already gone counts as deleted. Sites cannot be deleted
        through SOAP (``RecordError``), unless already gone."""
        if kind is AssetKind.LOCATION:
            company = None if parent_psa_id is None else await self._company(parent_psa_id)
            if company is None or _address(company, psa_id) is None:
                return
            raise RecordError(_NO_SITE_DELETE)
        try:
            await self.client.delete(_ENTITY[kind], psa_id)
        except RecordError:
            if await self._exists(kind, psa_id):
                raise

    async def find_matches(self, kind: AssetKind, probes: list[MatchProbe]) -> list[PsaRecord]:
        """Records that could match, found in batches (``CompanyName in (…)``, names within
        companies) and completed by ``Get*``; sites: each company's addresses. A superset:
        ConnectWise compares case-insensitively."""
        if kind is AssetKind.LOCATION:
            return await self._sites_of(p.parent_psa_id for p in probes)
        found: dict[int, PsaRecord] = {}
        for conditions in _match_conditions(kind, probes):
            async for page in self._read(kind, conditions):
                for record in page:
                    found.setdefault(record.psa_id, record)
        return sorted(found.values(), key=_by_id)

    def missing_for_create(self, kind: AssetKind, change: PsaChange) -> list[str]:
        """What REST requires too (``mapping.REQUIRED_FOR_CREATE``)."""
        return writes.missing_for_create(kind, change)

    async def contact_attribute_options(self) -> dict[str, list[str]]:
        """SOAP's contact has one email, one phone and one fax: their fixed labels."""
        return {group: list(labels) for group, labels in mapping.SOAP_CONTACT_ATTRIBUTES.items()}

    async def psa_users(self, *, subcontractors: bool = False) -> list[PsaUser]:
        """Not through SOAP: the company, contact and configuration APIs are all its WSDLs
        offer, and none lists members."""
        raise NotSupportedError(SOAP_HAS_NO_MEMBERS)

    # -- write plumbing -------------------------------------------------------------------------

    def _keep(
        self, entity: SoapEntity, psa_id: int, raw: dict[str, Any], owner: int | None
    ) -> None:
        self._kept[(entity, psa_id)] = (self._clock(), raw, owner)

    def _take(self, entity: SoapEntity, psa_id: int) -> tuple[dict[str, Any], int | None] | None:
        """A record kept by ``read_for_write`` (used once), if still fresh."""
        kept = self._kept.pop((entity, psa_id), None)
        if kept is None or self._clock() - kept[0] > KEEP_SECONDS:
            return None
        return kept[1], kept[2]

    async def _current(self, kind: AssetKind, psa_id: int) -> tuple[dict[str, Any], int | None]:
        """The record as ConnectWise holds it now (a find for the contact's company id, then
        ``Get*``); RecordError when it is gone."""
        conditions = cw_cmp(mapping.SOAP_FIND_ID[_ENTITY[kind]], "=", psa_id)
        async for page in self._read_full(kind, conditions):
            for record, raw in page:
                if record.psa_id == psa_id:
                    return raw, record.parent_psa_id
        raise RecordError(f"ConnectWise has no {_ENTITY[kind]} {psa_id}", status_code=404)

    async def _company(self, company_id: int) -> dict[str, Any] | None:
        """``GetCompany``; None when the company is gone (a fault for one that exists is
        raised)."""
        try:
            return await self.client.get(_COMPANY, company_id)
        except RecordError:
            if await self._exists(AssetKind.ORGANIZATION, company_id):
                raise
            return None

    async def _exists(self, kind: AssetKind, psa_id: int) -> bool:
        entity = _ENTITY[kind]
        conditions = cw_cmp(mapping.SOAP_FIND_ID[entity], "=", psa_id)
        async for page in self.client.find(entity, conditions):
            if page:
                return True
        return False

    async def _apply(
        self, kind: AssetKind, body: dict[str, Any], change: PsaChange, *, create: bool
    ) -> None:
        """Rewrite ``body`` with what ``change`` sets (reference names and the company's
        identifier looked up first)."""
        table = mapping.SOAP_WRITE_MAPS[kind]
        by_name = [
            (code_kind, psa_id)
            for code_kind, ids in change.codes.items()
            if (code := table.codes.get(code_kind)) is not None and code.by_name and ids
            for psa_id in ids[:1]
        ]
        if any(psa_id not in self._names.get(k, {}) for k, psa_id in by_name):
            await self.reference_data()  # values first used since the last read
        for code_kind, psa_id in by_name:
            if psa_id not in self._names.get(code_kind, {}):
                raise RecordError(
                    f"ConnectWise's SOAP API takes a {_REFERENCE_WORDS[code_kind]} by name, and "
                    f"no record in ConnectWise uses the {_REFERENCE_WORDS[code_kind]} with id "
                    f"{psa_id}: choose one ConnectWise lists"
                )
        parent: Any = None
        if change.parent_psa_id is not None and table.parent is not None:
            parent = change.parent_psa_id
            if table.parent.by_identifier:
                parent = await self._company_identifier(change.parent_psa_id)
        table.apply(
            body,
            change,
            name_of=lambda code_kind, psa_id: self._names[code_kind][psa_id],
            parent=parent,
            create=create,
        )

    async def _company_identifier(self, company_id: int) -> str:
        company = await self._company(company_id)
        identifier = (
            None if company is None else mapping.text(company.get(mapping.SOAP_COMPANY_IDENTIFIER))
        )
        if identifier is None:
            raise RecordError(f"ConnectWise has no company {company_id}")
        return identifier

    async def _free_identifier(self, name: str) -> str:
        """An identifier derived from ``name`` that no company ``FindCompanies`` shows uses."""
        prefix = writes.identifier_prefix(writes.derive_identifier(name))
        element = mapping.SOAP_COMPANY_IDENTIFIER
        taken: list[str] = []
        async for page in self.client.find(_COMPANY, cw_cmp(element, "like", f"{prefix}%")):
            taken.extend(str(row[element]) for row in page if row.get(element))
        return writes.derive_identifier(name, taken)

    async def _update_site(
        self, psa_id: int, parent_psa_id: int | None, change: PsaChange
    ) -> PsaRecord:
        company_id = parent_psa_id if parent_psa_id is not None else change.parent_psa_id
        if company_id is None:
            raise RecordError("ConnectWise keeps a site on its company: no organization")
        if change.parent_psa_id not in (None, company_id):
            raise RecordError("ConnectWise cannot move a site to another company")
        kept = self._take(_COMPANY, company_id)
        company = kept[0] if kept is not None else await self._company(company_id)
        if company is None or _address(company, psa_id) is None:
            raise RecordError(f"ConnectWise has no site {psa_id} in company {company_id}")
        table = mapping.SOAP_WRITE_MAPS[AssetKind.LOCATION]
        if not table.writes(change):
            return _site(_address(company, psa_id) or {}, company_id)
        body = copy.deepcopy(company)
        await self._apply(AssetKind.LOCATION, _address(body, psa_id) or {}, change, create=False)
        default = body.get(mapping.SOAP_DEFAULT_ADDRESS)
        if isinstance(default, dict) and mapping.soap_id(default.get(mapping.SOAP_ID)) == psa_id:
            # The company's own address is its primary site's: both say the same.
            await self._apply(AssetKind.LOCATION, default, change, create=False)
        answer = await self._write_company(company_id, body)
        site = _address(answer, psa_id)
        if site is None:
            raise ProtocolError(f"ConnectWise's answer lost site {psa_id} of company {company_id}")
        return _site(site, company_id)

    async def _create_site(self, change: PsaChange) -> PsaRecord:
        company_id = change.parent_psa_id
        if company_id is None:
            raise RecordError("ConnectWise creates a site under its company: no organization")
        company = await self._company(company_id)
        if company is None:
            raise RecordError(f"ConnectWise has no company {company_id}")
        before = {mapping.soap_id(a.get(mapping.SOAP_ID)) for a in _addresses(company)}
        address = mapping.soap_new_address(company_id)
        await self._apply(AssetKind.LOCATION, address, change, create=True)
        body = copy.deepcopy(company)
        body[mapping.SOAP_ADDRESSES] = mapping.soap_addresses([*_addresses(body), address])
        answer = await self._write_company(company_id, body)
        added = [
            a for a in _addresses(answer) if mapping.soap_id(a.get(mapping.SOAP_ID)) not in before
        ]
        name = mapping.SOAP_SITE_NAME
        named = [a for a in added if a.get(name) == address.get(name)] or added
        if not named:
            raise ProtocolError(f"ConnectWise's answer shows no new site in company {company_id}")
        newest = max(named, key=lambda a: mapping.soap_id(a.get(mapping.SOAP_ID)) or 0)
        return _site(newest, company_id)

    async def _write_company(self, company_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """``UpdateCompany``; the answer is kept for the next site write of the same push."""
        answer = await self.client.update(_COMPANY, body) or await self._company(company_id)
        if answer is None:
            raise RecordError(f"ConnectWise has no company {company_id}")
        self._keep(_COMPANY, company_id, answer, None)
        return answer

    async def _sites_of(self, companies: Iterable[int | None]) -> list[PsaRecord]:
        records: list[PsaRecord] = []
        for company_id in sorted({c for c in companies if c is not None}):
            company = await self._company(company_id)
            if company is not None:  # a company gone has no sites to match
                records.extend(_sites(company, company_id))
        return records

    def budget_waits(self) -> Mapping[str, float]:
        return {}

    async def aclose(self) -> None:
        return None


_REFERENCE_KINDS: Final = (
    ReferenceKind.ORGANIZATION_TYPE,
    ReferenceKind.ORGANIZATION_STATUS,
    ReferenceKind.CONFIGURATION_TYPE,
    ReferenceKind.CONFIGURATION_STATUS,
    ReferenceKind.CONTACT_TYPE,
)


def _window(kind: AssetKind, after: int | None, since: datetime | None) -> list[str | None]:
    id_element = mapping.SOAP_FIND_ID[_ENTITY[kind]]
    return [
        None if after is None else cw_cmp(id_element, ">", after),
        # Second precision: a sub-second ``since`` is rounded down, so nothing is missed.
        None if since is None else cw_cmp(mapping.SOAP_LAST_UPDATE, ">=", since),
    ]


def _configuration_scope(scope: ProviderScope, since: datetime | None) -> list[str | None]:
    # As REST: changes since a time are listed whatever the scope (one that left the scope
    # is a change too); an empty scope lists nothing (``in (0)``).
    if since is not None:
        return []
    return [
        cw_in(element, sorted(scope.ids(kind)) or [0])
        for kind, element in mapping.SOAP_CONFIGURATION_FILTER.items()
    ]


def _batches(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def _by_id(record: PsaRecord) -> int:
    return record.psa_id


def _addresses(company: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = mapping.soap_list(company.get(mapping.SOAP_ADDRESSES))
    return [row for row in rows if isinstance(row, dict)]


def _address(company: Mapping[str, Any], psa_id: int) -> dict[str, Any] | None:
    return next(
        (a for a in _addresses(company) if mapping.soap_id(a.get(mapping.SOAP_ID)) == psa_id), None
    )


def _site(address: Mapping[str, Any], company_id: int) -> PsaRecord:
    return mapping.SOAP_ADDRESS.to_record(address, parent_psa_id=company_id)


def _sites(company: Mapping[str, Any], company_id: int) -> list[PsaRecord]:
    return sorted(
        (
            _site(row, company_id)
            for row in _addresses(company)
            if mapping.soap_id(row.get(mapping.SOAP_ID)) is not None
        ),
        key=_by_id,
    )


def _match_conditions(kind: AssetKind, probes: Sequence[MatchProbe]) -> list[str]:
    """The conditions of each batch of lookups for ``probes`` (as REST's, in SOAP names)."""
    fields = mapping.SOAP_MATCH_FIELDS[kind]
    if kind is AssetKind.ORGANIZATION:
        # By identifier where the probe knows it (unique in ConnectWise), else by name.
        identifiers = writes.distinct_texts(p.short_name for p in probes)
        names = writes.distinct_texts(p.name for p in probes if not mapping.text(p.short_name))
        identifier = fields[mapping.IDENTIFIER_COLUMN]
        return [
            *writes.batches(identifiers, lambda batch: cw_in(identifier, batch)),
            *writes.batches(names, lambda batch: cw_in(fields["name"], batch)),
        ]
    company = fields[mapping.PARENT_COLUMN]

    def companies(batch: Sequence[MatchProbe]) -> str:
        ids = sorted({p.parent_psa_id for p in batch if p.parent_psa_id is not None})
        without = any(p.parent_psa_id is None for p in batch)
        return cw_or(
            cw_in(company, ids) if ids else None, cw_eq(company, None) if without else None
        )

    if kind is AssetKind.CONTACT:
        wanted = [p for p in probes if mapping.text(p.first_name) or mapping.text(p.last_name)]

        def contacts(batch: Sequence[MatchProbe]) -> str:
            firsts = writes.distinct_texts(p.first_name for p in batch)
            lasts = writes.distinct_texts(
                p.last_name for p in batch if not mapping.text(p.first_name)
            )
            return cw_and(
                companies(batch),
                cw_or(
                    cw_in(fields["first_name"], firsts) if firsts else None,
                    cw_in(fields["last_name"], lasts) if lasts else None,
                ),
            )

        return list(writes.batches(wanted, contacts))
    named = [p for p in probes if mapping.text(p.name)]

    def configurations(batch: Sequence[MatchProbe]) -> str:
        names = writes.distinct_texts(p.name for p in batch)
        return cw_and(companies(batch), cw_in(fields["name"], names))

    return list(writes.batches(named, configurations))
