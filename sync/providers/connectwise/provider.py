"""ConnectWise Manage as a ``PsaProvider``: the client's pages, mapped and scoped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from models.enums import AssetKind, ReferenceKind
from sync.concurrency import gather_all
from sync.errors import PermissionDenied, RecordError
from sync.providers.base import (
    AreaAccess,
    MatchProbe,
    ProviderScope,
    PsaChange,
    PsaRecord,
    PsaReference,
    PsaSubscriptions,
    PsaUser,
)
from sync.providers.connectwise import mapping, writes
from sync.providers.connectwise.client import ConnectWiseClient, Page, Resource
from sync.providers.connectwise.query import cw_and, cw_cmp, cw_eq, cw_in, cw_or
from sync.providers.connectwise.subscriptions import ConnectWiseSubscriptions

# A derived company identifier that turns out taken is renumbered this many times at most
# (each time after looking up the identifiers in use), in case others take it meanwhile.
_IDENTIFIER_ATTEMPTS = 3


# Match lookups of one page go out a few at a time: each is a short URL-bound list call.
LOOKUP_CONCURRENCY = 4
PAGE_SIZE = 1000  # the client's page size: records per list call
# A fetch by id asks for at most this many ids per list call (fewer when their conditions
# would make the URL too long: see ``writes.MAX_CONDITIONS_LENGTH``).
FETCH_BATCH = 200


# The areas whose reads are probed, in order (sites need a company id from the first).
_PROBES: tuple[tuple[str, str, tuple[AssetKind, ...]], ...] = (
    ("companies", Resource.COMPANIES, (AssetKind.ORGANIZATION,)),
    ("sites", "", (AssetKind.LOCATION,)),
    ("contacts", Resource.CONTACTS, (AssetKind.CONTACT,)),
    ("configurations", Resource.CONFIGURATIONS, (AssetKind.CONFIGURATION,)),
    ("members", Resource.MEMBERS, ()),
    ("boards", Resource.BOARDS, ()),
    ("tickets", Resource.TICKETS, ()),
)


class ConnectWiseProvider:
    display_name = "ConnectWise Manage"

    def __init__(self, client: ConnectWiseClient) -> None:
        self.client = client
        self.subscriptions: PsaSubscriptions | None = ConnectWiseSubscriptions(client)

    async def check_connection(self) -> None:
        await self.client.check_connection()

    async def reference_data(self) -> dict[ReferenceKind, list[PsaReference]]:
        c = self.client
        reads = {
            ReferenceKind.ORGANIZATION_TYPE: c.company_types,
            ReferenceKind.ORGANIZATION_STATUS: c.company_statuses,
            ReferenceKind.CONFIGURATION_TYPE: c.configuration_types,
            ReferenceKind.CONFIGURATION_STATUS: c.configuration_statuses,
            ReferenceKind.CONTACT_TYPE: c.contact_types,
        }
        lists = {}
        for kind, read in reads.items():
            try:
                raws = await read()
            except PermissionDenied as exc:
                if exc.area == "companies":
                    raise  # the core read: setup and runs stop on it
                continue  # an area the role lacks: its values stay as they were
            lists[kind] = [
                PsaReference(int(raw["id"]), mapping.reference_name(raw)) for raw in raws
            ]
        return lists

    async def probe_reads(self, areas: Collection[str] | None = None) -> list[AreaAccess]:
        """One id of each area (``pageSize=1&fields=id``); sites through the first company
        (read for them, reported only when asked for)."""
        found: list[AreaAccess] = []
        first_company: int | None = None
        for area, path, kinds in _PROBES:
            wanted = areas is None or area in areas
            if not wanted and not (area == "companies" and "sites" in (areas or ())):
                continue
            if area == "sites":
                if first_company is None:
                    continue  # no company to ask about: unknown, not reported
                path = Resource.sites(first_company)
            try:
                rows = await self.client.first(path)
            except PermissionDenied as exc:
                found.append(
                    AreaAccess(area, "read", False, exc.message, kinds, area == "companies")
                )
                continue
            except RecordError:
                continue  # the company went away meanwhile
            if area == "companies" and rows:
                first_company = int(rows[0]["id"])
            if wanted:
                found.append(AreaAccess(area, "read", True, None, kinds, area == "companies"))
        return [e for e in found if areas is None or e.area in areas]

    async def estimate_total(self, scope: ProviderScope, *, contacts: bool) -> int | None:
        # Sites can only be counted per company: the engine adds them as it fetches them.
        total = await self.client.count(Resource.COMPANIES, _company_conditions(scope, None))
        total += await self.client.count(
            Resource.CONFIGURATIONS, _configuration_conditions(scope, None)
        )
        if contacts:
            total += await self.client.count(Resource.CONTACTS)
        return total

    # ``since`` filters on ``lastUpdated`` at the source; pages stay in ascending id order
    # (forward-only paging), whatever the filter.

    async def organizations(
        self, scope: ProviderScope, *, after: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        async for page in self.client.companies(_company_conditions(scope, after, since)):
            yield _map(mapping.COMPANY, page)

    async def locations(
        self, organization_psa_id: int, *, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        async for page in self.client.sites(organization_psa_id, _since(since)):
            yield _map(mapping.SITE, page)

    async def contacts(
        self, *, after: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        async for page in self.client.contacts(cw_and(_after(after), _since(since))):
            yield _map(mapping.CONTACT, page)

    async def configurations(
        self, scope: ProviderScope, *, after: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        conditions = _configuration_conditions(scope, after, since)
        async for page in self.client.configurations(conditions):
            yield _map(mapping.CONFIGURATION, page)

    async def fetch(self, kind: AssetKind, psa_ids: Sequence[int]) -> list[PsaRecord]:
        """The records with these ids that ConnectWise still has, in ascending id order,
        whatever the scope (the engine checks it). A soft-deleted company counts as gone.

        One list call per batch of ids (``id in (…)``), a few at a time. Sites are not
        fetched by id (ValueError): ConnectWise addresses them through their company.
        """
        if kind is AssetKind.LOCATION:
            raise ValueError("ConnectWise sites are fetched through their company (locations)")
        wanted = sorted(set(psa_ids))
        if not wanted:
            return []
        live = cw_eq("deletedFlag", False) if kind is AssetKind.ORGANIZATION else None
        records = await self._lookups(kind, list(_id_batches(wanted, live)))
        requested = set(wanted)
        return [r for r in records if r.psa_id in requested]

    def record_ids(self, kind: AssetKind, scope: ProviderScope) -> AsyncIterator[list[int]]:
        """Pages of the ids a full sync of ``kind`` lists (same conditions, ``fields=id``),
        ascending. ValueError for sites: they are listed per company."""
        if kind is AssetKind.LOCATION:
            raise ValueError("ConnectWise lists sites per company: no site ids to list")
        conditions: str | None = None
        if kind is AssetKind.ORGANIZATION:
            conditions = _company_conditions(scope, None)
        elif kind is AssetKind.CONFIGURATION:
            conditions = _configuration_conditions(scope, None)
        return self._ids(kind, conditions)

    async def deleted_since(self, kind: AssetKind, since: datetime) -> AsyncIterator[list[int]]:
        """Companies are soft-deleted (``deletedFlag``, stamped); contacts, sites and
        configurations are deleted outright and have nothing to list."""
        if kind is AssetKind.ORGANIZATION:
            conditions = cw_and(cw_eq("deletedFlag", True), _since(since))
            async for ids in self._ids(kind, conditions):
                yield ids

    async def _ids(self, kind: AssetKind, conditions: str | None) -> AsyncIterator[list[int]]:
        async for page in self._list(kind, conditions, fields=["id"]):
            yield [int(raw["id"]) for raw in page]

    def _list(
        self, kind: AssetKind, conditions: str | None, fields: Sequence[str] | None = None
    ) -> AsyncIterator[Page]:
        lists = {
            AssetKind.ORGANIZATION: self.client.companies,
            AssetKind.CONTACT: self.client.contacts,
            AssetKind.CONFIGURATION: self.client.configurations,
        }
        return lists[kind](conditions, fields)

    async def _lookups(self, kind: AssetKind, batches: Sequence[str]) -> list[PsaRecord]:
        """The records of one list call per conditions, ``LOOKUP_CONCURRENCY`` at a time;
        each record once, in ascending id order."""
        table = mapping.RECORD_MAPS[kind]
        found: dict[int, PsaRecord] = {}
        gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)

        async def lookup(conditions: str) -> None:
            async with gate:
                async for page in self._list(kind, conditions):
                    for raw in page:
                        record = table.to_record(raw)
                        found.setdefault(record.psa_id, record)

        await gather_all(*(lookup(c) for c in batches))
        return sorted(found.values(), key=_by_id)

    # -- writes (two-way sync) ----------------------------------------------------------------

    async def read_for_write(
        self, kind: AssetKind, records: Sequence[tuple[int, int | None]]
    ) -> list[PsaRecord]:
        """Companies, contacts and configurations by ``id in (…)`` (``fetch``: batches kept
        within the URL length); sites through their companies, one list per company."""
        if kind is not AssetKind.LOCATION:
            return await self.fetch(kind, [psa_id for psa_id, _parent in records])
        wanted = {psa_id for psa_id, _parent in records}
        sites = await self._sites_of(parent for _psa_id, parent in records)
        return sorted((s for s in sites if s.psa_id in wanted), key=_by_id)

    async def create_record(self, kind: AssetKind, change: PsaChange) -> PsaRecord:
        """POST the record (a site under its company; contacts and configurations name their
        company); returns it as ConnectWise stored it. A company without a short name gets an
        identifier derived from its name, renumbered if ConnectWise says it is taken."""
        table = mapping.RECORD_MAPS[kind]
        parent = change.parent_psa_id
        if kind is AssetKind.LOCATION and parent is None:
            raise RecordError("ConnectWise creates a site under its company: no organization")
        if kind is AssetKind.ORGANIZATION and not mapping.text(
            change.values.get(mapping.IDENTIFIER_COLUMN)
        ):
            return await self._create_company(change)
        raw = await self.client.create(
            writes.collection(kind, parent), writes.create_body(kind, change)
        )
        record = table.to_record(raw)
        if kind is AssetKind.LOCATION and record.parent_psa_id is None:
            record.parent_psa_id = parent
        return record

    async def _create_company(self, change: PsaChange) -> PsaRecord:
        name = mapping.text(change.values.get("name")) or ""
        identifier = writes.derive_identifier(name)
        for attempt in range(1, _IDENTIFIER_ATTEMPTS + 1):
            values = {**change.values, mapping.IDENTIFIER_COLUMN: identifier}
            body = writes.create_body(AssetKind.ORGANIZATION, replace(change, values=values))
            try:
                raw = await self.client.create(Resource.COMPANIES, body)
            except RecordError as error:
                if attempt == _IDENTIFIER_ATTEMPTS or not mapping.identifier_taken(error.errors):
                    raise
                taken = await self._identifiers_starting(writes.identifier_prefix(identifier))
                identifier = writes.derive_identifier(name, taken)
                continue
            return mapping.COMPANY.to_record(raw)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _identifiers_starting(self, prefix: str) -> list[str]:
        """Company identifiers in use that start with ``prefix`` (deleted companies too)."""
        column = mapping.COMPANY.condition_path(mapping.IDENTIFIER_COLUMN)
        conditions = cw_and(
            cw_cmp(column, "like", f"{prefix}%"),
            cw_or(cw_eq("deletedFlag", True), cw_eq("deletedFlag", False)),
        )
        found: list[str] = []
        async for page in self.client.companies(conditions, fields=[column]):
            found.extend(str(raw[column]) for raw in page if raw.get(column))
        return found

    async def update_record(
        self, kind: AssetKind, psa_id: int, parent_psa_id: int | None, change: PsaChange
    ) -> PsaRecord:
        """One PATCH replacing exactly the properties ``change`` sets; returns the record as
        ConnectWise stored it (its stamp is the new ``lastUpdated``).

        ValueError when there is nothing ConnectWise can change (an empty change, or only
        create-only values such as company types), or when a contact's change carries one
        of ``emails``/``phones`` without the other (they share one array, replaced whole).
        """
        # (``PsaChange.empty`` does not count ``parent_psa_id``: a move alone is a change.)
        if change.empty and change.parent_psa_id is None:
            raise ValueError("an update needs something to change")
        if kind is AssetKind.LOCATION:
            parent_psa_id = parent_psa_id if parent_psa_id is not None else change.parent_psa_id
            if change.parent_psa_id not in (None, parent_psa_id):
                raise RecordError("ConnectWise cannot move a site to another company")
        operations = writes.patch_operations(kind, change)
        if not operations:
            raise ValueError(
                "nothing ConnectWise can change in this update (create-only values only)"
            )
        raw = await self.client.patch(writes.collection(kind, parent_psa_id), psa_id, operations)
        return mapping.RECORD_MAPS[kind].to_record(raw)

    async def delete_record(self, kind: AssetKind, psa_id: int, parent_psa_id: int | None) -> None:
        """DELETE the record; one already gone (404) counts as deleted."""
        try:
            await self.client.delete(writes.collection(kind, parent_psa_id), psa_id)
        except RecordError as error:
            if error.status_code != 404:
                raise

    async def find_matches(self, kind: AssetKind, probes: list[MatchProbe]) -> list[PsaRecord]:
        """Records that could match, looked up in batches (one list call per batch; sites:
        one list per company). A superset: ConnectWise compares case-insensitively."""
        if kind is AssetKind.LOCATION:
            return await self._sites_of(p.parent_psa_id for p in probes)
        batches = _match_conditions(kind, probes)
        if kind is AssetKind.ORGANIZATION and len(batches) > 1:
            # A PSA with few companies (one just adopted, the case push-all is for) is read
            # whole in fewer calls than the name lookups would take.
            live = cw_eq("deletedFlag", False)
            pages = -(-await self.client.count(Resource.COMPANIES, live) // PAGE_SIZE)
            if pages < len(batches):
                batches = [live]
        return await self._lookups(kind, batches)

    async def _sites_of(self, companies: Iterable[int | None]) -> list[PsaRecord]:
        records: list[PsaRecord] = []
        for company in sorted({c for c in companies if c is not None}):
            try:
                async for page in self.locations(company):
                    records.extend(page)
            except RecordError as error:  # the company is gone: it has no sites to match
                if error.status_code != 404:
                    raise
        return records

    def missing_for_create(self, kind: AssetKind, change: PsaChange) -> list[str]:
        return writes.missing_for_create(kind, change)

    async def contact_attribute_options(self) -> dict[str, list[str]]:
        return mapping.communication_type_options(await self.client.communication_types())

    async def psa_users(self, *, subcontractors: bool = False) -> list[PsaUser]:
        """Active members with a user licence (psa-apis.md §9): not API members (class A),
        nor subcontractors (class X) unless asked."""
        return [
            _member_user(raw)
            async for page in self.client.members(member_conditions(subcontractors), MEMBER_FIELDS)
            for raw in page
        ]

    def budget_waits(self) -> Mapping[str, float]:
        # ConnectWise has no published call budget: it answers 429 (retried by the client).
        return {}

    async def aclose(self) -> None:
        return None


# What ``psa_users`` reads of a member (e-mail in ``officeEmail``, ``primaryEmail`` on some
# versions).
MEMBER_FIELDS = ("id", "identifier", "firstName", "lastName", "officeEmail", "primaryEmail")


def member_conditions(subcontractors: bool) -> str:
    """Licensed, active members: ``inactiveFlag=false and licenseClass!="A"`` (and not "X",
    subcontractors, unless asked)."""
    return cw_and(
        cw_eq("inactiveFlag", False),
        cw_cmp("licenseClass", "!=", "A"),
        None if subcontractors else cw_cmp("licenseClass", "!=", "X"),
    )


def _member_user(raw: Mapping[str, Any]) -> PsaUser:
    name = " ".join(str(raw[k]).strip() for k in ("firstName", "lastName") if raw.get(k))
    email = raw.get("officeEmail") or raw.get("primaryEmail")
    return PsaUser(
        psa_id=int(raw["id"]),
        name=name or str(raw.get("identifier") or raw["id"]),
        email=str(email).strip() or None if email else None,
    )


def _company_conditions(
    scope: ProviderScope, after: int | None, since: datetime | None = None
) -> str:
    # Status filters at the source. Types cannot: a company is in scope only when ALL its
    # types are enabled, which ConnectWise conditions cannot say; the engine checks that.
    # Changes since a time are listed whatever the scope: a company that left the scope is
    # a change too (the engine orphans it), and there are few of them.
    return cw_and(
        cw_eq("deletedFlag", False),
        _in_scope("status/id", scope, ReferenceKind.ORGANIZATION_STATUS, since),
        _after(after),
        _since(since),
    )


def _configuration_conditions(
    scope: ProviderScope, after: int | None, since: datetime | None = None
) -> str:
    return cw_and(
        _in_scope("type/id", scope, ReferenceKind.CONFIGURATION_TYPE, since),
        _in_scope("status/id", scope, ReferenceKind.CONFIGURATION_STATUS, since),
        _after(after),
        _since(since),
    )


def _in_scope(
    path: str, scope: ProviderScope, kind: ReferenceKind, since: datetime | None
) -> str | None:
    return None if since is not None else cw_in(path, sorted(scope.ids(kind)) or [0])


def _id_batches(ids: Sequence[int], extra: str | None) -> Iterator[str]:
    """``id in (…)`` conditions (and ``extra``) for consecutive batches of ``ids``: at most
    ``FETCH_BATCH`` each, and short enough for the URL (``writes.MAX_CONDITIONS_LENGTH``).

    Each id after the first adds its digits and one encoded ``", "`` to what is sent, so
    the length is counted as the batch grows rather than re-measured.
    """

    def conditions(batch: Sequence[int]) -> str:
        return cw_and(cw_in("id", batch), extra)

    separator = _sent_length(conditions([0, 0])) - _sent_length(conditions([0])) - 1
    batch: list[int] = []
    length = 0
    for psa_id in ids:
        if batch:
            added = separator + len(str(psa_id))
            if len(batch) < FETCH_BATCH and length + added <= writes.MAX_CONDITIONS_LENGTH:
                batch.append(psa_id)
                length += added
                continue
            yield conditions(batch)
        batch = [psa_id]
        length = _sent_length(conditions(batch))
    if batch:
        yield conditions(batch)


def _sent_length(conditions: str) -> int:
    # As httpx encodes a query parameter (spaces as ``+``, like ``urlencode``).
    return len(urlencode({"conditions": conditions}))


def _match_conditions(kind: AssetKind, probes: Sequence[MatchProbe]) -> list[str]:
    """The conditions of each batch of lookups for ``probes``."""
    table = mapping.RECORD_MAPS[kind]
    if kind is AssetKind.ORGANIZATION:
        live = cw_eq("deletedFlag", False)
        # By identifier where the probe knows it (unique in ConnectWise), else by name.
        identifier = table.condition_path(mapping.IDENTIFIER_COLUMN)
        identifiers = writes.distinct_texts(p.short_name for p in probes)
        name = table.condition_path("name")
        names = writes.distinct_texts(p.name for p in probes if not mapping.text(p.short_name))
        return [
            *writes.batches(identifiers, lambda batch: cw_and(cw_in(identifier, batch), live)),
            *writes.batches(names, lambda batch: cw_and(cw_in(name, batch), live)),
        ]
    company = table.condition_path(mapping.PARENT_COLUMN)

    def companies(batch: Sequence[MatchProbe]) -> str:
        ids = sorted({p.parent_psa_id for p in batch if p.parent_psa_id is not None})
        without = any(p.parent_psa_id is None for p in batch)
        return cw_or(
            cw_in(company, ids) if ids else None, cw_eq(company, None) if without else None
        )

    if kind is AssetKind.CONTACT:
        first, last = table.condition_path("first_name"), table.condition_path("last_name")
        wanted = [p for p in probes if mapping.text(p.first_name) or mapping.text(p.last_name)]

        def contacts(batch: Sequence[MatchProbe]) -> str:
            firsts = writes.distinct_texts(p.first_name for p in batch)
            # Probes without a first name are looked up by their last name.
            lasts = writes.distinct_texts(
                p.last_name for p in batch if not mapping.text(p.first_name)
            )
            return cw_and(
                companies(batch),
                cw_or(
                    cw_in(first, firsts) if firsts else None,
                    cw_in(last, lasts) if lasts else None,
                ),
            )

        return list(writes.batches(wanted, contacts))
    name = table.condition_path("name")
    named = [p for p in probes if mapping.text(p.name)]

    def configurations(batch: Sequence[MatchProbe]) -> str:
        return cw_and(companies(batch), cw_in(name, writes.distinct_texts(p.name for p in batch)))

    return list(writes.batches(named, configurations))


def _after(after: int | None) -> str | None:
    return None if after is None else cw_cmp("id", ">", after)


def _since(since: datetime | None) -> str | None:
    # Second precision: a sub-second ``since`` is rounded down, so nothing is missed.
    return None if since is None else cw_cmp("lastUpdated", ">=", since)


def _by_id(record: PsaRecord) -> int:
    return record.psa_id


def _map(table: mapping.RecordMap, page: Page) -> list[PsaRecord]:
    return [table.to_record(raw) for raw in page]
