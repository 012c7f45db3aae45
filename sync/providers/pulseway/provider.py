"""Pulseway PSA as a ``PsaProvider``: lists, fetch, reconciliation ids, and writes.

Order: the engine needs pages in ascending PSA id order. Pulseway's list order is not
documented (``Sort`` has no documented format), so each list is read whole, de-duplicated and
sorted by id before it is yielded in pages of ``PAGE_SIZE``; records shifting between pages
while Pulseway is paged cannot make pages overlap. Hardware assets are listed by id first
(``searchselect`` rows are short) and read in full page by page.

Changes and deletes (psa-apis.md §4.8): accounts and contacts are listed with
``Filter.ModifiedOnFrom``; hardware assets have no modified filter, so with ``since`` the
assets a full sync would read are read again and all are yielded (the engine skips unchanged
ones by their content). Each asset read costs a call of a budget of about 1,500 an hour, so
only assets that can be in scope are read: of the enabled categories (filtered at the source)
and of accounts in scope (``searchselect`` rows name their account). One that left the scope
is orphaned by the reconciliation, which lists the same ids. Accounts are never deleted in v2
(only deactivated: the ``Inactive`` status), and contacts and assets are deleted outright, so
``deleted_since`` has nothing to list: reconciliation (``record_ids``) finds deleted contacts
and assets.

Writes (two-way sync) go through the client (its per-endpoint budget included); bodies are
built by ``writes.py``. Accounts are created with one main location, a business type and an
account manager (picked here, once per provider), changed with JSON Patch, and deactivated
instead of deleted; contacts are patched, their emails and phones through their own
operations; hardware assets are PUT whole. Locations cannot be written in v2: RecordError.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import UTC, datetime
from typing import Any

from models.enums import AssetKind, ReferenceKind
from sync.concurrency import gather_all
from sync.errors import PermissionDenied, ProtocolError, RecordError
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
from sync.providers.pulseway import mapping, writes
from sync.providers.pulseway.client import Endpoint, Page, PulsewayClient, QueryValue, Record
from sync.providers.pulseway.subscriptions import PulsewaySubscriptions

PAGE_SIZE = 100  # records per yielded page
# Get-by-id calls in flight at once (fetch, and the full read of listed hardware assets).
FETCH_CONCURRENCY = 4
# Lists in flight at once when matching (one per account or account name).
LOOKUP_CONCURRENCY = 4
# From this many distinct names on, matching organizations first tries one whole listing.
LIST_ALL_MIN_NAMES = 4
# Accounts whose listed locations are kept for the locations step (beyond: read by id).
LISTED_LOCATIONS_MAX = 10_000


# The areas whose reads are probed (locations come with their accounts).
_PROBES: tuple[tuple[str, str, tuple[AssetKind, ...]], ...] = (
    ("accounts", Endpoint.ACCOUNTS_SUMMARY, (AssetKind.ORGANIZATION, AssetKind.LOCATION)),
    ("contacts", Endpoint.CONTACTS_SUMMARY, (AssetKind.CONTACT,)),
    ("assets", Endpoint.HARDWARE_ASSETS_SEARCH, (AssetKind.CONFIGURATION,)),
    ("employees", Endpoint.EMPLOYEES_SEARCH, ()),
    ("queues", Endpoint.QUEUES_LOOKUP, ()),
    ("tickets", Endpoint.TICKETS, ()),
)


class PulsewayProvider:
    display_name = "Pulseway PSA"

    def __init__(self, client: PulsewayClient) -> None:
        self.client = client
        # Registered through the admin webhooks API for the kinds its events lookup lists
        # (Pulseway documents ticket events only: then none, and polling covers the rest).
        self.subscriptions: PsaSubscriptions | None = PulsewaySubscriptions(
            client, client.webhook_secret
        )
        # Lookups writes need, read once (``_business_type``, ``_account_manager``,
        # ``_item_types``).
        self._lookups_lock = asyncio.Lock()
        self._business_type_id: int | None = None
        self._account_manager_id: int | None = None
        self._item_type_ids: tuple[writes.ItemTypes, writes.ItemTypes] | None = None
        # Locations as the account list gave them (the list's DTO is the summary's, locations
        # included): the locations step uses them once instead of reading each account again,
        # a fifth of a full sync's calls. Absent or empty: read by id as before.
        self._listed_locations: dict[int, list[Record]] = {}
        # The ids of the accounts in scope as last listed, by (types, statuses): a full sync
        # lists them for organizations, and its assets phase needs them again.
        self._scoped_accounts: (
            tuple[tuple[frozenset[int], frozenset[int]], frozenset[int]] | None
        ) = None
        # Hardware assets as ``read_for_write`` last read them, for the PUT that follows
        # (Pulseway has no asset PATCH: the whole DTO goes back). Replaced at each read.
        self._read_assets: dict[int, Record] = {}

    async def check_connection(self) -> None:
        await self.client.check_connection()

    async def reference_data(self) -> dict[ReferenceKind, list[PsaReference]]:
        """Account types, the two synthetic account statuses, asset categories (types) and
        asset states (statuses, with the synthetic ``No state``). Pulseway has no contact
        types: an empty list."""
        c = self.client
        lists = {
            ReferenceKind.ORGANIZATION_TYPE: mapping.references(await c.account_types()),
            ReferenceKind.ORGANIZATION_STATUS: list(mapping.ORGANIZATION_STATUSES),
            ReferenceKind.CONTACT_TYPE: [],
        }
        try:  # lookups a role may lack: the values stay as they were
            lists[ReferenceKind.CONFIGURATION_TYPE] = mapping.references(await c.asset_categories())
            lists[ReferenceKind.CONFIGURATION_STATUS] = [
                *mapping.references(await c.asset_states()),
                mapping.NO_STATE_REFERENCE,
            ]
        except PermissionDenied:
            pass
        return lists

    async def probe_reads(self, areas: Collection[str] | None = None) -> list[AreaAccess]:
        """One record of each area (``PageSize=1``; the queue lookup whole)."""
        found: list[AreaAccess] = []
        for area, template, kinds in _PROBES:
            if areas is not None and area not in areas:
                continue
            core = area == "accounts"
            try:
                await self.client.first(template, paged=template != Endpoint.QUEUES_LOOKUP)
            except PermissionDenied as exc:
                found.append(AreaAccess(area, "read", False, exc.message, kinds, core))
                continue
            found.append(AreaAccess(area, "read", True, None, kinds, core))
        return found

    async def estimate_total(self, scope: ProviderScope, *, contacts: bool) -> int | None:
        return None

    # -- lists -----------------------------------------------------------------------------------

    async def organizations(
        self, scope: ProviderScope, *, after: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        """Accounts, ascending by id. A full list is scoped at the source (one list per
        enabled account type; ``Filter.IsActive`` when one status is enabled); changes
        ``since`` a time are listed whatever the scope (one that left it is a change too)."""
        records = await self._accounts(scope, since, keep_locations=True)
        for page in _pages(records, after):
            yield page

    async def locations(
        self, organization_psa_id: int, *, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        """The account's locations (from ``GET …/accounts/summary/{id}``, addresses
        included), ascending; with ``since``, those whose location or address changed.
        Locations the account list just gave are used once instead (same DTO)."""
        raws: Any = self._listed_locations.pop(organization_psa_id, None)
        if raws is None:
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
        """Hardware assets, ascending by id: ids from ``searchselect`` (of the enabled
        categories and accounts in scope), then each asset read by id, a page at a time.
        Pulseway has no modified filter: with ``since``, the same assets are read and yielded,
        changed or not; the engine skips those whose content it already has."""
        ids = [i for i in await self._asset_ids(scope) if after is None or i > after]
        for start in range(0, len(ids), PAGE_SIZE):
            page = await self._get_many(AssetKind.CONFIGURATION, ids[start : start + PAGE_SIZE])
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
            ids = await self._asset_ids(scope)
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

    async def _accounts(
        self, scope: ProviderScope, since: datetime | None, *, keep_locations: bool = False
    ) -> list[PsaRecord]:
        """Accounts in scope (all changed ``since`` a time, with it); ``keep_locations`` for
        the locations step that follows (``organizations``)."""
        self._listed_locations.clear()
        to_record = self._listed_account if keep_locations else mapping.ACCOUNT.to_record
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
        self._scoped_accounts = (_account_scope(scope), frozenset(found))
        return sorted(found.values(), key=_by_id)

    async def _account_ids(self, scope: ProviderScope) -> frozenset[int]:
        """Ids of the accounts in scope (as this run last listed them, else listed now)."""
        listed = self._scoped_accounts
        if listed is not None and listed[0] == _account_scope(scope):
            return listed[1]
        return frozenset(r.psa_id for r in await self._accounts(scope, None))

    def _listed_account(self, raw: Record) -> PsaRecord:
        """An account from a list, keeping its locations for the locations step."""
        record = mapping.ACCOUNT.to_record(raw)
        locations = mapping.get(raw, "locations")
        # Every Pulseway account has a main location: an empty list means "not included".
        room = len(self._listed_locations) < LISTED_LOCATIONS_MAX
        if room and isinstance(locations, list) and locations:
            self._listed_locations[record.psa_id] = locations
        return record

    async def _asset_ids(self, scope: ProviderScope) -> list[int]:
        """Ids of the assets that can be in scope: of an enabled category and of an account in
        scope (the asset's state is not in ``searchselect`` rows: read to be known)."""
        categories = sorted(scope.ids(ReferenceKind.CONFIGURATION_TYPE))
        if not categories:
            return []
        accounts = await self._account_ids(scope)
        if not accounts:
            return []
        # A string in the document, not an array: comma-separated (repeated binds the first).
        filters: dict[str, QueryValue] = {
            "Filter.CategoryIds": ",".join(str(c) for c in categories)
        }
        found: set[int] = set()
        async for page in self.client.hardware_assets(filters=filters):
            for raw in page:
                ident = mapping.psa_id(mapping.get(raw, "id"))
                if ident is not None and mapping.psa_id(mapping.get(raw, "accountId")) in accounts:
                    found.add(ident)
        return sorted(found)

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

    async def _get_many(
        self, kind: AssetKind, psa_ids: Sequence[int], keep: dict[int, Record] | None = None
    ) -> list[PsaRecord]:
        """Each id read by id, ``FETCH_CONCURRENCY`` at a time; ids Pulseway answers 404 for
        are left out. Ascending by id. ``keep``: where to keep each DTO read, by id."""
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
            if keep is not None:
                keep[record.psa_id] = raw

        await gather_all(*(one(i) for i in psa_ids))
        return sorted(found.values(), key=_by_id)

    # -- writes (two-way sync) --------------------------------------------------------------------

    async def read_for_write(
        self, kind: AssetKind, records: Sequence[tuple[int, int | None]]
    ) -> list[PsaRecord]:
        """One get per record (Pulseway filters no list by id), ``FETCH_CONCURRENCY`` at a
        time; locations through their accounts. Assets are kept for the PUT that follows."""
        wanted = sorted({psa_id for psa_id, _parent in records})
        if kind is AssetKind.LOCATION:
            found: list[PsaRecord] = []
            for account in sorted({p for _i, p in records if p is not None}):
                async for page in self.locations(account):
                    found.extend(r for r in page if r.psa_id in wanted)
            return sorted(found, key=_by_id)
        if kind is AssetKind.CONFIGURATION:
            self._read_assets = {}
            return await self._get_many(kind, wanted, keep=self._read_assets)
        return await self._get_many(kind, wanted)

    async def create_record(self, kind: AssetKind, change: PsaChange) -> PsaRecord:
        """Create the record; returns it as Pulseway stored it (re-read when the answer is
        not the full record). An account gets the business type and account manager the
        provider picks (``_business_type``, ``_account_manager``) and one main location made
        from ``change.address`` (named ``Main`` without one); a contact's job title and
        point-of-contact flag, which the create DTO lacks, follow in a PATCH; an asset without
        a location goes to its account's main location. Locations: RecordError (v2 creates
        them only inside an account's POST)."""
        if kind is AssetKind.LOCATION:
            raise RecordError(mapping.LOCATION_CREATE_REFUSAL)
        if kind is AssetKind.ORGANIZATION:
            body = writes.account_body(
                change,
                business_type_id=await self._business_type(),
                account_manager_id=await self._account_manager(),
            )
            return await self._stored(kind, await self.client.create_account(body))
        if kind is AssetKind.CONTACT:
            emails, phones = await self._item_types()
            raw = await self.client.create_contact(writes.contact_body(change, emails, phones))
            ident = _id_of(raw, "POST /v2/crm/contacts/summary")
            rest = writes.contact_after_create(change)
            if rest:
                await self.client.patch_contact(ident, rest)
            return mapping.CONTACT.to_record(await self.client.get_contact(ident))
        location = change.refs.get("location")
        if location is None and change.parent_psa_id is not None:
            location = await self._main_location(change.parent_psa_id)
        raw = await self.client.create_hardware_asset(writes.asset_body(change, location))
        return await self._stored(kind, raw)

    async def update_record(
        self, kind: AssetKind, psa_id: int, parent_psa_id: int | None, change: PsaChange
    ) -> PsaRecord:
        """Change only the fields in ``change``; returns the record as Pulseway stored it.

        Accounts: one JSON Patch. Contacts: one JSON Patch for the scalar fields, then only the
        email/phone operations that differ from the contact's current lists, then a re-read.
        Hardware assets have no PATCH: the asset is read and PUT whole with the change laid
        over (unmapped properties kept). ValueError for an empty change or one with nothing
        Pulseway can write; RecordError for a location (v2 cannot write one).
        """
        if change.empty and change.parent_psa_id is None:
            raise ValueError("an update needs something to change")
        if kind is AssetKind.LOCATION:
            raise RecordError(
                "Pulseway PSA v2 cannot change a location (locations are written only inside "
                "a new account's POST): its columns flow from Pulseway only"
            )
        if kind is AssetKind.ORGANIZATION:
            props = writes.values(kind, change)
            _check_writable(props)
            raw = await self.client.patch_account(psa_id, writes.patch_operations(props))
            return await self._stored(kind, raw, psa_id)
        if kind is AssetKind.CONTACT:
            return await self._update_contact(psa_id, parent_psa_id, change)
        props = writes.values(kind, change)
        _check_writable(props)
        current = self._read_assets.pop(psa_id, None) or await self.client.get_hardware_asset(
            psa_id
        )
        location = None
        moved = change.parent_psa_id is not None and change.parent_psa_id != mapping.psa_id(
            mapping.get(current, mapping.CONFIGURATION.parent or "")
        )
        if moved and "location" not in change.refs and change.parent_psa_id is not None:
            location = await self._main_location(change.parent_psa_id)
        body = writes.asset_put_body(current, change, location)
        return await self._stored(
            kind, await self.client.update_hardware_asset(psa_id, body), psa_id
        )

    async def _update_contact(
        self, psa_id: int, parent_psa_id: int | None, change: PsaChange
    ) -> PsaRecord:
        location = None
        moved = change.parent_psa_id not in (None, parent_psa_id)
        if moved and "location" not in change.refs and change.parent_psa_id is not None:
            location = await self._main_location(change.parent_psa_id)
        props = writes.contact_properties(change, location)
        lists = [items for items in mapping.CONTACT_ITEMS if items.column in change.values]
        if not props and not lists:
            _check_writable(props)
        current: Record | None = None
        if props:
            current = await self.client.patch_contact(psa_id, writes.patch_operations(props))
        if lists:
            if current is None or any(
                not isinstance(mapping.get(current, items.column), list) for items in lists
            ):
                current = await self.client.get_contact(psa_id)
            types = dict(zip(mapping.CONTACT_ITEMS, await self._item_types(), strict=True))
            senders = {
                mapping.EMAILS: self.client.patch_contact_emails,
                mapping.PHONES: self.client.patch_contact_phones,
            }
            for items in lists:
                operations = writes.item_operations(
                    items,
                    mapping.get(current, items.column),
                    change.values[items.column],
                    types[items],
                )
                if operations:
                    await senders[items](psa_id, operations)
        return mapping.CONTACT.to_record(await self.client.get_contact(psa_id))

    async def delete_record(self, kind: AssetKind, psa_id: int, parent_psa_id: int | None) -> None:
        """DELETE a contact or an asset; one already gone (404) counts as deleted. Accounts
        cannot be deleted in v2: the account is deactivated instead (``isActive`` false, the
        Inactive status), as Pulseway's UI does, keeping its history. RecordError for a
        location (v2 cannot delete one)."""
        if kind is AssetKind.LOCATION:
            raise RecordError("Pulseway PSA v2 cannot delete a location: remove it in Pulseway")
        try:
            if kind is AssetKind.ORGANIZATION:
                inactive = PsaChange(
                    codes={ReferenceKind.ORGANIZATION_STATUS: (mapping.STATUS_INACTIVE,)}
                )
                operations = writes.patch_operations(writes.values(kind, inactive))
                await self.client.patch_account(psa_id, operations)
            elif kind is AssetKind.CONTACT:
                await self.client.delete_contact(psa_id)
            else:
                await self.client.delete_hardware_asset(psa_id)
        except RecordError as error:
            if error.status_code != 404:
                raise

    async def find_matches(self, kind: AssetKind, probes: list[MatchProbe]) -> list[PsaRecord]:
        """Records that could match the probes (a superset), ascending by id, each once.

        Organizations: one ``Filter.AccountName`` list per distinct name, unless there are
        many names and the whole account list turns out to be short (read whole, giving up
        after half as many pages as there are names). Other kinds are looked up per parent
        account (probes without one cannot match): its contacts, its locations, or its
        hardware assets of a probed name, read in full. ``LOOKUP_CONCURRENCY`` accounts or
        names at a time.
        """
        if kind is AssetKind.ORGANIZATION:
            return await self._accounts_named(writes.distinct_names(p.name for p in probes))
        accounts = sorted({p.parent_psa_id for p in probes if p.parent_psa_id is not None})
        if kind is AssetKind.CONFIGURATION:
            return await self._assets_named(accounts, probes)
        found: dict[int, PsaRecord] = {}
        gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)

        async def one(account: int) -> None:
            async with gate:
                try:
                    if kind is AssetKind.LOCATION:
                        records = [r async for page in self.locations(account) for r in page]
                    else:
                        listing = self.client.contacts(account_id=account)
                        records = await self._collect(listing, mapping.CONTACT.to_record)
                except RecordError as error:  # the account is gone: nothing of it to match
                    if error.status_code != 404:
                        raise
                    return
            for record in records:
                found.setdefault(record.psa_id, record)

        await gather_all(*(one(a) for a in accounts))
        return sorted(found.values(), key=_by_id)

    async def _accounts_named(self, names: Sequence[str]) -> list[PsaRecord]:
        if not names:
            return []
        if len(names) >= LIST_ALL_MIN_NAMES:
            listed = await self._all_accounts(max_pages=len(names) // 2)
            if listed is not None:
                return listed
        found: dict[int, PsaRecord] = {}
        gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)

        async def one(name: str) -> None:
            async with gate:
                listing = self.client.accounts(filters={"Filter.AccountName": name})
                records = await self._collect(listing, mapping.ACCOUNT.to_record)
            for record in records:
                found.setdefault(record.psa_id, record)

        await gather_all(*(one(n) for n in names))
        return sorted(found.values(), key=_by_id)

    async def _all_accounts(self, *, max_pages: int) -> list[PsaRecord] | None:
        """Every account, when Pulseway lists them in at most ``max_pages`` pages; else None
        (the listing is abandoned after that many pages)."""
        found: dict[int, PsaRecord] = {}
        pages = 0
        listing = self.client.accounts()
        try:
            async for page in listing:
                pages += 1
                if pages > max_pages:
                    return None
                for raw in page:
                    record = mapping.ACCOUNT.to_record(raw)
                    found.setdefault(record.psa_id, record)
        finally:
            await _close(listing)
        return sorted(found.values(), key=_by_id)

    async def _assets_named(
        self, accounts: Sequence[int], probes: Sequence[MatchProbe]
    ) -> list[PsaRecord]:
        """Per account, the ids of its assets whose name a probe of it carries (from
        ``searchselect``), then those assets read in full."""
        wanted: dict[int, set[str]] = {}
        for probe in probes:
            name = mapping.text(probe.name)
            if probe.parent_psa_id is not None and name is not None:
                wanted.setdefault(probe.parent_psa_id, set()).add(name.casefold())
        ids: set[int] = set()
        gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)
        asset_name = mapping.first_of("assetName", "name")

        async def one(account: int) -> None:
            async with gate:
                async for page in self.client.hardware_assets(account_id=account):
                    for raw in page:
                        name = mapping.text(asset_name(raw))
                        ident = mapping.psa_id(mapping.get(raw, "id"))
                        if ident is not None and name and name.casefold() in wanted[account]:
                            ids.add(ident)

        await gather_all(*(one(a) for a in accounts if a in wanted))
        return await self._get_many(AssetKind.CONFIGURATION, sorted(ids))

    # -- what writes need from Pulseway (read once per provider) ----------------------------------

    async def _stored(self, kind: AssetKind, raw: Record, psa_id: int | None = None) -> PsaRecord:
        """The record a write answered with, re-read by id when the answer is not the full
        record (an id alone, or a DTO without the stamp or the mapped fields)."""
        table = mapping.RECORD_MAPS[kind]
        if all(mapping.get(raw, name) is not None for name in mapping.WRITE_ANSWER_FIELDS[kind]):
            return table.to_record(raw)
        ident = mapping.psa_id(mapping.get(raw, "id")) or psa_id
        if ident is None:
            raise ProtocolError(f"Pulseway PSA answered a {kind.value} write without its id")
        read = {
            AssetKind.ORGANIZATION: self.client.get_account,
            AssetKind.CONFIGURATION: self.client.get_hardware_asset,
        }[kind]
        return table.to_record(await read(ident))

    async def _main_location(self, account_id: int) -> int | None:
        return writes.main_location_id(await self.client.account_locations(account_id))

    async def _business_type(self) -> int:
        """The business type new accounts get: the lookup's default (else first active)."""
        async with self._lookups_lock:
            if self._business_type_id is None:
                chosen = writes.ItemTypes.of(await self.client.business_types()).default
                if chosen is None:
                    raise RecordError(
                        "Pulseway PSA lists no business type to give a new account (required)"
                    )
                self._business_type_id = chosen
            return self._business_type_id

    async def _account_manager(self) -> int:
        """The account manager new accounts get: the API user's own employee id (from
        ``/v2/security/userinfo``) when the employee lookup knows it, else the first
        employee of that lookup."""
        async with self._lookups_lock:
            if self._account_manager_id is None:
                self._account_manager_id = await self._pick_account_manager()
            return self._account_manager_id

    async def _pick_account_manager(self) -> int:
        info = await self.client.check_connection()
        own = next(
            (
                ident
                for name in mapping.USER_EMPLOYEE_ID
                if (ident := mapping.psa_id(mapping.get(info, name))) is not None
            ),
            None,
        )
        if own is not None and own in await self._employee_ids({"Filter.Ids": [own]}):
            return own
        first = await self._employee_ids(None, first_only=True)
        if not first:
            raise RecordError(
                "Pulseway PSA lists no employee to be a new account's manager (required)"
            )
        return first[0]

    async def _employee_ids(
        self, filters: dict[str, QueryValue] | None, *, first_only: bool = False
    ) -> list[int]:
        found: list[int] = []
        listing = self.client.employees(filters)
        try:
            async for page in listing:
                found += [i for r in page if (i := mapping.psa_id(mapping.get(r, "id")))]
                if first_only and found:
                    break
        finally:
            await _close(listing)
        return found

    async def _item_types(self) -> tuple[writes.ItemTypes, writes.ItemTypes]:
        """Pulseway's email types and phone types (the order of ``mapping.CONTACT_ITEMS``)."""
        async with self._lookups_lock:
            if self._item_type_ids is None:
                self._item_type_ids = (
                    writes.ItemTypes.of(await self.client.contact_email_types()),
                    writes.ItemTypes.of(await self.client.contact_phone_types()),
                )
            return self._item_type_ids

    def missing_for_create(self, kind: AssetKind, change: PsaChange) -> list[str]:
        """What Pulseway requires that ``change`` lacks, in words (``writes.missing_for_create``);
        a location cannot be created at all, and says so."""
        return writes.missing_for_create(kind, change)

    async def contact_attribute_options(self) -> dict[str, list[str]]:
        """Pulseway's email and phone type names (a phone of the Fax type is a fax)."""
        return {
            "email": [r.name for r in mapping.references(await self.client.contact_email_types())],
            "phone": [r.name for r in mapping.references(await self.client.contact_phone_types())],
        }

    async def psa_users(self, *, subcontractors: bool = False) -> list[PsaUser]:
        """Active employees (``GET /v2/hr/employees/searchselect``, ``Filter.IsActive``),
        less the API employee this integration logs in as. Pulseway's answer has no licence
        or user type (psa-apis.md §9): other API employees cannot be told from people and are
        listed; nor does it know subcontractors (``subcontractors`` changes nothing)."""
        users: dict[int, PsaUser] = {}
        own = self.client.user_name.casefold()
        async for page in self.client.search_employees({"Filter.IsActive": True}):
            for raw in page:
                if mapping.get(raw, "isActive") is False:
                    continue
                username = str(mapping.get(raw, "username") or "")
                if username.casefold() == own:
                    continue
                user = _employee_user(raw, username)
                users.setdefault(user.psa_id, user)
        return [users[psa_id] for psa_id in sorted(users)]

    def budget_waits(self) -> Mapping[str, float]:
        """Seconds the client waited for Pulseway's per-endpoint hourly budget, per endpoint."""
        return dict(self.client.budget_waits)

    async def aclose(self) -> None:
        return None


def _by_id(record: PsaRecord) -> int:
    return record.psa_id


def _pages(records: Sequence[PsaRecord], after: int | None) -> list[list[PsaRecord]]:
    """Ascending records (after ``after``) in pages of ``PAGE_SIZE``."""
    wanted = [r for r in sorted(records, key=_by_id) if after is None or r.psa_id > after]
    return [wanted[i : i + PAGE_SIZE] for i in range(0, len(wanted), PAGE_SIZE)]


def _account_scope(scope: ProviderScope) -> tuple[frozenset[int], frozenset[int]]:
    return (
        scope.ids(ReferenceKind.ORGANIZATION_TYPE),
        scope.ids(ReferenceKind.ORGANIZATION_STATUS),
    )


def _changed(records: Iterable[PsaRecord], since: datetime | None) -> list[PsaRecord]:
    """Records stamped at or after ``since`` (all without ``since``; an unstamped record is
    kept), ascending. ``since`` is floored to the second, as Pulseway's filters are."""
    ordered = sorted(records, key=_by_id)
    if since is None:
        return ordered
    moment = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    moment = moment.replace(microsecond=0)
    return [r for r in ordered if r.updated_at is None or r.updated_at >= moment]


async def _close(listing: AsyncIterator[Any]) -> None:
    """Close a list left early (an async generator), so its request is not left pending."""
    close = getattr(listing, "aclose", None)
    if close is not None:
        await close()


def _id_of(raw: Record, what: str) -> int:
    ident = mapping.psa_id(mapping.get(raw, "id"))
    if ident is None:
        raise ProtocolError(f"Pulseway PSA answered {what} without the new record's id")
    return ident


def _check_writable(props: dict[str, Any]) -> None:
    if not props:
        raise ValueError("nothing Pulseway PSA can change in this update (read-only columns only)")


def _employee_user(raw: Record, username: str) -> PsaUser:
    words = (mapping.get(raw, "firstName"), mapping.get(raw, "lastName"))
    name = " ".join(str(w).strip() for w in words if w and str(w).strip())
    email = str(mapping.get(raw, "emailAddress") or "").strip()
    return PsaUser(psa_id=int(mapping.get(raw, "id")), name=name or username, email=email or None)
