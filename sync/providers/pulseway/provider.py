"""Pulseway PSA as a ``PsaProvider``: the read side (lists, fetch, reconciliation ids).

Order: the engine needs pages in ascending PSA id order. Pulseway's list order is not
documented (``Sort`` has no documented format), so each list is read whole, de-duplicated and
sorted by id before it is yielded in pages of ``PAGE_SIZE``; records shifting between pages
while Pulseway is paged cannot make pages overlap. Hardware assets are listed by id first
(``searchselect`` rows are short) and read in full page by page.

Changes and deletes (psa-apis.md §4.8): accounts and contacts are listed with
``Filter.ModifiedOnFrom``; hardware assets have no modified filter, so every in-scope asset is
listed and read, and ``since`` is applied to their ``modifiedOn`` here. Accounts are never
deleted in v2 (only deactivated: the ``Inactive`` status), and contacts and assets are deleted
outright, so ``deleted_since`` has nothing to list: reconciliation (``record_ids``) finds
deleted contacts and assets.

Writes are not implemented yet (NotImplementedError): the provider is read-only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from models.enums import AssetKind, ReferenceKind
from sync.concurrency import gather_all
from sync.errors import RecordError
from sync.providers.base import (
    MatchProbe,
    ProviderScope,
    PsaChange,
    PsaRecord,
    PsaReference,
    PsaSubscriptions,
)
from sync.providers.pulseway import mapping
from sync.providers.pulseway.client import Page, PulsewayClient, QueryValue, Record

PAGE_SIZE = 100  # records per yielded page
# Get-by-id calls in flight at once (fetch, and the full read of listed hardware assets).
FETCH_CONCURRENCY = 4

_READ_ONLY = (
    "Pulseway PSA writes are not implemented yet: the Pulseway provider is read-only "
    "(sync from Pulseway to psasync only)"
)


class PulsewayProvider:
    display_name = "Pulseway PSA"

    def __init__(self, client: PulsewayClient) -> None:
        self.client = client
        # Pulseway's webhooks are configured in its UI (and cover tickets only): none here.
        self.subscriptions: PsaSubscriptions | None = None

    async def check_connection(self) -> None:
        await self.client.check_connection()

    async def reference_data(self) -> dict[ReferenceKind, list[PsaReference]]:
        """Account types, the two synthetic account statuses, asset categories (types) and
        asset states (statuses). Pulseway has no contact types: an empty list."""
        c = self.client
        return {
            ReferenceKind.ORGANIZATION_TYPE: mapping.references(await c.account_types()),
            ReferenceKind.ORGANIZATION_STATUS: list(mapping.ORGANIZATION_STATUSES),
            ReferenceKind.CONFIGURATION_TYPE: mapping.references(await c.asset_categories()),
            ReferenceKind.CONFIGURATION_STATUS: mapping.references(await c.asset_states()),
            ReferenceKind.CONTACT_TYPE: [],
        }

    async def estimate_total(self, scope: ProviderScope, *, contacts: bool) -> int | None:
        return None

    # -- lists -----------------------------------------------------------------------------------

    async def organizations(
        self, scope: ProviderScope, *, after: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        """Accounts, ascending by id. A full list is scoped at the source (one list per
        enabled account type; ``Filter.IsActive`` when one status is enabled); changes
        ``since`` a time are listed whatever the scope (one that left it is a change too)."""
        records = await self._accounts(scope, since)
        for page in _pages(records, after):
            yield page

    async def locations(
        self, organization_psa_id: int, *, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        """The account's locations (from ``GET …/accounts/summary/{id}``, addresses
        included), ascending; with ``since``, those whose location or address changed."""
        account = await self.client.get_account(organization_psa_id)
        raws = mapping.get(account, "locations")
        found: dict[int, PsaRecord] = {}
        for raw in raws if isinstance(raws, list) else ():
            record = mapping.LOCATION.to_record(raw, organization_psa_id)
            found.setdefault(record.psa_id, record)
        for page in _pages(_changed(found.values(), since), None):
            yield page

    async def contacts(
        self, *, after: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        records = await self._collect(
            self.client.contacts(modified_since=since), mapping.CONTACT.to_record
        )
        for page in _pages(records, after):
            yield page

    async def configurations(
        self, scope: ProviderScope, *, after: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        """Hardware assets, ascending by id: ids from ``searchselect`` (scoped by category at
        the source for a full list), then each asset read by id, a page at a time. Pulseway
        has no modified filter: with ``since``, every asset is read and those not modified
        since are left out here (one get per asset either way)."""
        ids = [
            i
            for i in await self._asset_ids(scope, scoped=since is None)
            if after is None or i > after
        ]
        for start in range(0, len(ids), PAGE_SIZE):
            records = await self._get_many(AssetKind.CONFIGURATION, ids[start : start + PAGE_SIZE])
            page = _changed(records, since)
            if page:
                yield page

    # -- by id ---------------------------------------------------------------------------------

    async def fetch(self, kind: AssetKind, psa_ids: Sequence[int]) -> list[PsaRecord]:
        """The records with these ids that Pulseway still has, ascending, whatever the scope
        (a deactivated account is still there: its status is Inactive). One get per id,
        ``FETCH_CONCURRENCY`` at a time; a 404 means deleted. ValueError for locations:
        they are read through their account."""
        if kind is AssetKind.LOCATION:
            raise ValueError("Pulseway locations are read through their account (locations)")
        return await self._get_many(kind, sorted(set(psa_ids)))

    def record_ids(self, kind: AssetKind, scope: ProviderScope) -> AsyncIterator[list[int]]:
        """Pages of the ids a full sync of ``kind`` lists (same source filters), ascending.
        ValueError for locations: they are listed per account."""
        if kind is AssetKind.LOCATION:
            raise ValueError("Pulseway lists locations per account: no location ids to list")
        return self._record_ids(kind, scope)

    async def _record_ids(self, kind: AssetKind, scope: ProviderScope) -> AsyncIterator[list[int]]:
        if kind is AssetKind.ORGANIZATION:
            ids = [r.psa_id for r in await self._accounts(scope, None)]
        elif kind is AssetKind.CONTACT:
            ids = sorted(await self._ids(self.client.contacts()))
        else:
            ids = await self._asset_ids(scope, scoped=True)
        for start in range(0, len(ids), PAGE_SIZE):
            yield ids[start : start + PAGE_SIZE]

    async def deleted_since(self, kind: AssetKind, since: datetime) -> AsyncIterator[list[int]]:
        """Nothing, for every kind: accounts are deactivated, never deleted (the Inactive
        status), and contacts and assets are deleted outright, leaving no trace to list;
        reconciliation through ``record_ids`` finds those."""
        nothing: list[list[int]] = []
        for ids in nothing:
            yield ids

    # -- helpers ---------------------------------------------------------------------------------

    async def _accounts(self, scope: ProviderScope, since: datetime | None) -> list[PsaRecord]:
        to_record = mapping.ACCOUNT.to_record
        if since is not None:
            return await self._collect(self.client.accounts(modified_since=since), to_record)
        types = sorted(scope.ids(ReferenceKind.ORGANIZATION_TYPE))
        statuses = scope.ids(ReferenceKind.ORGANIZATION_STATUS) & {
            mapping.STATUS_ACTIVE,
            mapping.STATUS_INACTIVE,
        }
        if not types or not statuses:
            return []
        active = None if len(statuses) == 2 else mapping.STATUS_ACTIVE in statuses
        found: dict[int, PsaRecord] = {}
        for type_id in types:
            filters: dict[str, QueryValue] = {"Filter.AccountTypeId": type_id}
            if active is not None:
                filters["Filter.IsActive"] = active
            for record in await self._collect(self.client.accounts(filters=filters), to_record):
                found.setdefault(record.psa_id, record)
        return sorted(found.values(), key=_by_id)

    async def _asset_ids(self, scope: ProviderScope, *, scoped: bool) -> list[int]:
        filters: dict[str, QueryValue] = {}
        if scoped:
            categories = sorted(scope.ids(ReferenceKind.CONFIGURATION_TYPE))
            if not categories:
                return []
            filters["Filter.CategoryIds"] = categories
        return sorted(await self._ids(self.client.hardware_assets(filters=filters)))

    @staticmethod
    async def _collect(
        pages: AsyncIterator[Page], to_record: Callable[[Record], PsaRecord]
    ) -> list[PsaRecord]:
        """Every record of a list, each once, ascending by id."""
        found: dict[int, PsaRecord] = {}
        async for page in pages:
            for raw in page:
                record = to_record(raw)
                found.setdefault(record.psa_id, record)
        return sorted(found.values(), key=_by_id)

    @staticmethod
    async def _ids(pages: AsyncIterator[Page]) -> set[int]:
        found: set[int] = set()
        async for page in pages:
            for raw in page:
                ident = mapping.psa_id(mapping.get(raw, "id"))
                if ident is not None:
                    found.add(ident)
        return found

    async def _get_many(self, kind: AssetKind, psa_ids: Sequence[int]) -> list[PsaRecord]:
        """Each id read by id, ``FETCH_CONCURRENCY`` at a time; ids Pulseway answers 404 for
        are left out. Ascending by id."""
        getters: dict[AssetKind, Callable[[int], Awaitable[Record]]] = {
            AssetKind.ORGANIZATION: self.client.get_account,
            AssetKind.CONTACT: self.client.get_contact,
            AssetKind.CONFIGURATION: self.client.get_hardware_asset,
        }
        read, table = getters[kind], mapping.RECORD_MAPS[kind]
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)
        found: dict[int, PsaRecord] = {}

        async def one(psa_id: int) -> None:
            async with gate:
                try:
                    raw = await read(psa_id)
                except RecordError as error:
                    if error.status_code == 404:
                        return
                    raise
            record = table.to_record(raw)
            found[record.psa_id] = record

        await gather_all(*(one(i) for i in psa_ids))
        return sorted(found.values(), key=_by_id)

    # -- writes (not implemented) ----------------------------------------------------------------

    async def create_record(self, kind: AssetKind, change: PsaChange) -> PsaRecord:
        raise NotImplementedError(_READ_ONLY)

    async def update_record(
        self, kind: AssetKind, psa_id: int, parent_psa_id: int | None, change: PsaChange
    ) -> PsaRecord:
        raise NotImplementedError(_READ_ONLY)

    async def delete_record(self, kind: AssetKind, psa_id: int, parent_psa_id: int | None) -> None:
        raise NotImplementedError(_READ_ONLY)

    async def find_matches(self, kind: AssetKind, probes: list[MatchProbe]) -> list[PsaRecord]:
        raise NotImplementedError(_READ_ONLY)

    def missing_for_create(self, kind: AssetKind, change: PsaChange) -> list[str]:
        """``mapping.REQUIRED_FOR_CREATE`` columns ``change`` lacks, in words."""
        table = mapping.RECORD_MAPS[kind]
        required = mapping.REQUIRED_FOR_CREATE.get(kind, frozenset())
        missing = [c for c in required if not _present(table, c, change)]
        order = list(mapping.REQUIRED_WORDS)
        missing.sort(key=lambda c: order.index(c) if c in order else len(order))
        return [mapping.REQUIRED_WORDS.get(c, c.replace("_", " ")) for c in missing]

    async def contact_attribute_options(self) -> dict[str, list[str]]:
        """Pulseway's email and phone type names (a phone of the Fax type is a fax)."""
        return {
            "email": [r.name for r in mapping.references(await self.client.contact_email_types())],
            "phone": [r.name for r in mapping.references(await self.client.contact_phone_types())],
        }

    async def aclose(self) -> None:
        return None


def _by_id(record: PsaRecord) -> int:
    return record.psa_id


def _pages(records: Sequence[PsaRecord], after: int | None) -> list[list[PsaRecord]]:
    """Ascending records (after ``after``) in pages of ``PAGE_SIZE``."""
    wanted = [r for r in sorted(records, key=_by_id) if after is None or r.psa_id > after]
    return [wanted[i : i + PAGE_SIZE] for i in range(0, len(wanted), PAGE_SIZE)]


def _changed(records: Iterable[PsaRecord], since: datetime | None) -> list[PsaRecord]:
    """Records stamped at or after ``since`` (all without ``since``; an unstamped record is
    kept), ascending. ``since`` is floored to the second, as Pulseway's filters are."""
    ordered = sorted(records, key=_by_id)
    if since is None:
        return ordered
    moment = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    moment = moment.replace(microsecond=0)
    return [r for r in ordered if r.updated_at is None or r.updated_at >= moment]


def _present(table: mapping.RecordMap, column: str, change: PsaChange) -> bool:
    if column == mapping.PARENT_COLUMN:
        return change.parent_psa_id is not None
    for code in table.codes:
        if column == f"{code.kind.value}_id":
            return bool(change.codes.get(code.kind))
    for ref in table.refs:
        if column == f"{ref.name}_id":
            return change.refs.get(ref.name) is not None
    return _filled(change.values.get(column))


def _filled(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return value is not None
