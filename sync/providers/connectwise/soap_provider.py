"""ConnectWise Manage through its legacy SOAP API (integrator login): the read half of a
``PsaProvider``, over ``ConnectWiseSoapClient``.

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
- Reference lists: SOAP has no list of company types, company statuses or contact types, and
  the client does not call ``FindConfigurationTypes``/statuses. So ``reference_data`` walks
  ``FindCompanies``, ``FindContacts`` and ``FindConfigurations`` and collects the values in
  use. Company and contact types and company statuses have names only: each gets a stable id
  derived from its name (``mapping.synthetic_id``: SHA-256 of the case-folded name, above any
  real id). Configuration types and statuses carry their real ids. A value no record uses is
  not listed.
- Scope at the source as REST does: company statuses (by name, once ``reference_data`` has
  named their ids), configuration types and statuses (by id). Company types are checked by
  the engine (a company is in scope when all its types are; SOAP shows its first type only).
- No callbacks (``subscriptions`` is None): SOAP-only integrations poll.
- Writes are not implemented yet: every write raises ``FatalError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NoReturn

from models.enums import AssetKind, ReferenceKind
from sync.concurrency import gather_all
from sync.errors import FatalError, RecordError
from sync.providers.base import (
    MatchProbe,
    ProviderScope,
    PsaChange,
    PsaRecord,
    PsaReference,
    PsaSubscriptions,
)
from sync.providers.connectwise import mapping
from sync.providers.connectwise.query import cw_and, cw_cmp, cw_in
from sync.providers.connectwise.soap import ConnectWiseSoapClient, SoapEntity

__all__ = ["ConnectWiseSoapProvider"]

# Get* calls in flight at once while a page of find results is completed.
GET_CONCURRENCY: Final = 8
# Ids per ``Id in (…)`` condition when fetching records by id.
FETCH_BATCH: Final = 100

_ENTITY: Final[Mapping[AssetKind, SoapEntity]] = {
    AssetKind.ORGANIZATION: "company",
    AssetKind.CONTACT: "contact",
    AssetKind.CONFIGURATION: "configuration",
}
_NO_WRITES: Final = (
    "ConnectWise through the legacy SOAP API is read-only in psasync for now: pushes through "
    "SOAP arrive in a later change (add REST API keys to push now)"
)


class ConnectWiseSoapProvider:
    display_name = "ConnectWise Manage"

    def __init__(self, client: ConnectWiseSoapClient) -> None:
        self.client = client
        self.subscriptions: PsaSubscriptions | None = None
        # Company status names by their derived id, learnt by ``reference_data``: the scope
        # holds ids, SOAP filters by name.
        self._status_names: dict[int, str] = {}

    async def check_connection(self) -> None:
        """One cheap authenticated call (a contact count matching nothing)."""
        await self.client.count("contact", cw_cmp(mapping.SOAP_ID, "=", 0))

    async def reference_data(self) -> dict[ReferenceKind, list[PsaReference]]:
        """The values in use, collected from the records (see the module docstring)."""
        found: dict[ReferenceKind, dict[int, str]] = {kind: {} for kind in _REFERENCE_KINDS}
        for entity in _ENTITY.values():
            sources = mapping.SOAP_REFERENCE_SOURCES[entity]
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
        self._status_names = dict(found[ReferenceKind.ORGANIZATION_STATUS])
        return {
            kind: sorted(
                (PsaReference(psa_id, name) for psa_id, name in values.items()),
                key=lambda r: (r.name.casefold(), r.psa_id),
            )
            for kind, values in found.items()
        }

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
        entity = _ENTITY[kind]
        table = mapping.SOAP_RECORD_MAPS[kind]
        id_element = mapping.SOAP_FIND_ID[entity]
        gate = asyncio.Semaphore(GET_CONCURRENCY)

        async def complete(row: dict[str, Any]) -> PsaRecord | None:
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
            return table.to_record({**row, **{k: v for k, v in full.items() if v is not None}})

        async for rows in self.client.find(entity, conditions or None, mapping.SOAP_ORDER[entity]):
            records = [r for r in await gather_all(*(complete(row) for row in rows)) if r]
            if records:
                yield sorted(records, key=_by_id)

    def _status_condition(self, scope: ProviderScope) -> str | None:
        """``Status in (…)`` for the enabled company statuses; None (no filter at the source:
        the engine checks the scope) when their names are not known here."""
        enabled = scope.ids(ReferenceKind.ORGANIZATION_STATUS)
        names = [self._status_names.get(psa_id) for psa_id in sorted(enabled)]
        if not names or any(name is None for name in names):
            return None
        return cw_in(mapping.SOAP_COMPANY_STATUS, [n for n in names if n is not None])

    # -- writes: not through SOAP yet ----------------------------------------------------------

    async def read_for_write(
        self, kind: AssetKind, records: Sequence[tuple[int, int | None]]
    ) -> list[PsaRecord]:
        _refuse_writes()

    async def create_record(self, kind: AssetKind, change: PsaChange) -> PsaRecord:
        _refuse_writes()

    async def update_record(
        self, kind: AssetKind, psa_id: int, parent_psa_id: int | None, change: PsaChange
    ) -> PsaRecord:
        _refuse_writes()

    async def delete_record(self, kind: AssetKind, psa_id: int, parent_psa_id: int | None) -> None:
        _refuse_writes()

    async def find_matches(self, kind: AssetKind, probes: list[MatchProbe]) -> list[PsaRecord]:
        _refuse_writes()

    def missing_for_create(self, kind: AssetKind, change: PsaChange) -> list[str]:
        _refuse_writes()

    async def contact_attribute_options(self) -> dict[str, list[str]]:
        _refuse_writes()

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


def _refuse_writes() -> NoReturn:
    raise FatalError(_NO_WRITES)


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
