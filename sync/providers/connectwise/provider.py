"""ConnectWise Manage as a ``PsaProvider``: the client's pages, mapped and scoped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace

from models.enums import AssetKind, ReferenceKind
from sync.errors import RecordError
from sync.providers.base import MatchProbe, ProviderScope, PsaChange, PsaRecord, PsaReference
from sync.providers.connectwise import mapping, writes
from sync.providers.connectwise.client import ConnectWiseClient, Page, Resource
from sync.providers.connectwise.query import cw_and, cw_cmp, cw_eq, cw_in, cw_or

# A derived company identifier that turns out taken is renumbered this many times at most
# (each time after looking up the identifiers in use), in case others take it meanwhile.
_IDENTIFIER_ATTEMPTS = 3


# Match lookups of one page go out a few at a time: each is a short URL-bound list call.
LOOKUP_CONCURRENCY = 4
PAGE_SIZE = 1000  # the client's page size: records per list call


class ConnectWiseProvider:
    display_name = "ConnectWise Manage"

    def __init__(self, client: ConnectWiseClient) -> None:
        self.client = client

    async def check_connection(self) -> None:
        await self.client.check_connection()

    async def reference_data(self) -> dict[ReferenceKind, list[PsaReference]]:
        c = self.client
        lists = {
            ReferenceKind.ORGANIZATION_TYPE: await c.company_types(),
            ReferenceKind.ORGANIZATION_STATUS: await c.company_statuses(),
            ReferenceKind.CONFIGURATION_TYPE: await c.configuration_types(),
            ReferenceKind.CONFIGURATION_STATUS: await c.configuration_statuses(),
            ReferenceKind.CONTACT_TYPE: await c.contact_types(),
        }
        return {
            kind: [PsaReference(int(raw["id"]), mapping.reference_name(raw)) for raw in raws]
            for kind, raws in lists.items()
        }

    async def estimate_total(self, scope: ProviderScope, *, contacts: bool) -> int | None:
        # Sites can only be counted per company: the engine adds them as it fetches them.
        total = await self.client.count(Resource.COMPANIES, _company_conditions(scope, None))
        total += await self.client.count(
            Resource.CONFIGURATIONS, _configuration_conditions(scope, None)
        )
        if contacts:
            total += await self.client.count(Resource.CONTACTS)
        return total

    async def organizations(
        self, scope: ProviderScope, *, after: int | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        async for page in self.client.companies(_company_conditions(scope, after)):
            yield _map(mapping.COMPANY, page)

    async def locations(self, organization_psa_id: int) -> AsyncIterator[list[PsaRecord]]:
        async for page in self.client.sites(organization_psa_id):
            yield _map(mapping.SITE, page)

    async def contacts(self, *, after: int | None = None) -> AsyncIterator[list[PsaRecord]]:
        async for page in self.client.contacts(_after(after)):
            yield _map(mapping.CONTACT, page)

    async def configurations(
        self, scope: ProviderScope, *, after: int | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        async for page in self.client.configurations(_configuration_conditions(scope, after)):
            yield _map(mapping.CONFIGURATION, page)

    # -- writes (two-way sync) ----------------------------------------------------------------

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
        table = mapping.RECORD_MAPS[kind]
        lists = {
            AssetKind.ORGANIZATION: self.client.companies,
            AssetKind.CONTACT: self.client.contacts,
            AssetKind.CONFIGURATION: self.client.configurations,
        }
        found: dict[int, PsaRecord] = {}
        gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)

        async def lookup(conditions: str) -> None:
            async with gate:
                async for page in lists[kind](conditions):
                    for raw in page:
                        record = table.to_record(raw)
                        found.setdefault(record.psa_id, record)

        batches = _match_conditions(kind, probes)
        if kind is AssetKind.ORGANIZATION and len(batches) > 1:
            # A PSA with few companies (one just adopted, the case push-all is for) is read
            # whole in fewer calls than the name lookups would take.
            live = cw_eq("deletedFlag", False)
            pages = -(-await self.client.count(Resource.COMPANIES, live) // PAGE_SIZE)
            if pages < len(batches):
                batches = [live]
        await asyncio.gather(*(lookup(c) for c in batches))
        return sorted(found.values(), key=lambda r: r.psa_id)

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

    async def aclose(self) -> None:
        return None


def _company_conditions(scope: ProviderScope, after: int | None) -> str:
    # Status filters at the source. Types cannot: a company is in scope only when ALL its
    # types are enabled, which ConnectWise conditions cannot say; the engine checks that.
    return cw_and(
        cw_eq("deletedFlag", False),
        cw_in("status/id", sorted(scope.ids(ReferenceKind.ORGANIZATION_STATUS)) or [0]),
        _after(after),
    )


def _configuration_conditions(scope: ProviderScope, after: int | None) -> str:
    return cw_and(
        cw_in("type/id", sorted(scope.ids(ReferenceKind.CONFIGURATION_TYPE)) or [0]),
        cw_in("status/id", sorted(scope.ids(ReferenceKind.CONFIGURATION_STATUS)) or [0]),
        _after(after),
    )


def _match_conditions(kind: AssetKind, probes: Sequence[MatchProbe]) -> list[str]:
    """The conditions of each batch of lookups for ``probes``."""
    table = mapping.RECORD_MAPS[kind]
    if kind is AssetKind.ORGANIZATION:
        name = table.condition_path("name")
        names = writes.distinct_texts(p.name for p in probes)
        return list(
            writes.batches(
                names, lambda batch: cw_and(cw_in(name, batch), cw_eq("deletedFlag", False))
            )
        )
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


def _map(table: mapping.RecordMap, page: Page) -> list[PsaRecord]:
    return [table.to_record(raw) for raw in page]
