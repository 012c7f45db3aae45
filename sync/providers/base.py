"""What the sync engine needs from a PSA, in psasync's words.

A provider turns its PSA's records into ``PsaRecord``s: local field names and values, plus
the PSA ids of the records and reference values they point at. The engine resolves those ids
through record links and reference mappings; it never sees a PSA field name or HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from models.enums import AssetKind, ReferenceKind
from sync.errors import FatalError


@dataclass(slots=True)
class PsaRecord:
    """One PSA record, mapped.

    ``values``: local scalar fields. ``refs``: local relation name (``parent``,
    ``primary_location``, ``location``, ``contact``) → PSA id of the related record.
    ``codes``: the reference values (types, statuses) by PSA id; a ConnectWise company can
    carry several types. ``parent_psa_id``: the owning organization's PSA id.
    """

    psa_id: int
    updated_at: datetime | None
    values: dict[str, Any]
    refs: dict[str, int | None] = field(default_factory=dict)
    codes: dict[ReferenceKind, tuple[int, ...]] = field(default_factory=dict)
    parent_psa_id: int | None = None
    # Who last changed it in the PSA (a PSA user name), when the PSA says: psasync learns
    # which user its own writes appear as, to recognise their echo in notifications.
    updated_by: str | None = None


@dataclass(slots=True)
class PsaChange:
    """Values to write to one PSA record, in psasync's words: ``PsaRecord`` for writes.

    ``values``: local scalar columns to write (``name``, ``serial_number``, ``emails`` …);
    only the fields to change on an update, every mapped field on a create. ``refs``:
    relation name → PSA id of the related record (None clears it). ``codes``: the reference
    values to set, by PSA id. ``parent_psa_id``: the owning organization's PSA id (needed to
    create a child record; on an update, set only to move the record). ``address``: for an
    organization created in a PSA that keeps addresses on the company, the local columns
    of its primary location (``address_1`` … ``country``, and its ``name``).
    """

    values: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, int | None] = field(default_factory=dict)
    codes: dict[ReferenceKind, tuple[int, ...]] = field(default_factory=dict)
    parent_psa_id: int | None = None
    address: dict[str, Any] | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.values or self.refs or self.codes or self.address or self.parent_psa_id is not None
        )


@dataclass(frozen=True, slots=True)
class MatchProbe:
    """What first-link matching knows of a local record, for a provider to look up.

    The provider returns every PSA record that could match (a superset is fine: the engine
    compares exact match keys afterwards), so lookups can be batched per page.
    """

    name: str | None = None  # organizations, configurations
    # Organizations: the short name (ConnectWise's company identifier, unique there), looked
    # up instead of the name when given.
    short_name: str | None = None
    first_name: str | None = None  # contacts
    last_name: str | None = None
    parent_psa_id: int | None = None  # the organization, for every kind but organizations
    type_psa_id: int | None = None  # configurations


@dataclass(frozen=True, slots=True)
class PsaSubscription:
    """A webhook registration in the PSA (a ConnectWise callback entry)."""

    psa_id: int
    kind: AssetKind
    url: str
    active: bool = True


class PsaSubscriptions(Protocol):
    """Registering webhooks through the PSA's API (ConnectWise ``system/callbacks``).

    A PSA whose webhooks are configured in its own admin UI has none (``subscriptions``
    is None on its provider); reconciliation polling covers it either way.
    """

    kinds: frozenset[AssetKind]  # the asset kinds the PSA can notify about

    async def list(self) -> list[PsaSubscription]:
        """Every registration of the API user's, for the kinds psasync syncs."""
        ...

    async def create(self, kind: AssetKind, url: str) -> PsaSubscription: ...

    async def delete(self, psa_id: int) -> None:
        """Remove a registration (one already gone counts as removed)."""
        ...


class NotSupportedError(FatalError):
    """The PSA's API, as connected, has no way to do what was asked (ConnectWise's legacy
    SOAP API has no member list); the message says what would make it possible."""

    code = "not_supported"


@dataclass(frozen=True, slots=True)
class PsaUser:
    """A licensed, active user of the PSA (a person who may be invited to psasync)."""

    psa_id: int
    name: str
    email: str | None  # None: the PSA holds no email for them (they cannot be invited)


@dataclass(frozen=True, slots=True)
class AreaAccess:
    """What the PSA's security role let the API user do in one area, as last seen.

    ``area`` in the PSA's words (ConnectWise ``companies``, ``sites``, ``configurations``…;
    Pulseway PSA ``accounts``, ``assets``…); ``access`` ``"read"`` or ``"write"``;
    ``message`` the PSA's refusal. ``kinds``: the synced record kinds read from the area
    (a run skips them while their read is denied); ``core``: a sync cannot go on without it.
    """

    area: str
    access: str
    allowed: bool
    message: str | None = None
    kinds: tuple[AssetKind, ...] = ()
    core: bool = False


@dataclass(frozen=True, slots=True)
class PsaReference:
    psa_id: int
    name: str


@dataclass(frozen=True)
class ProviderScope:
    """The PSA ids of the enabled reference values, so a provider can filter at the source."""

    enabled: Mapping[ReferenceKind, frozenset[int]]

    def ids(self, kind: ReferenceKind) -> frozenset[int]:
        return self.enabled.get(kind, frozenset())


@dataclass(frozen=True)
class FieldMap:
    """Which local columns a provider syncs, per asset kind (no PSA names: local columns)."""

    mapped: Mapping[AssetKind, frozenset[str]]
    # Columns that flow from the PSA only, whatever the configured direction.
    psa_to_local_only: Mapping[AssetKind, frozenset[str]] = field(default_factory=dict)
    # Columns a record needs before it can be created in the PSA (local column names).
    required_for_create: Mapping[AssetKind, frozenset[str]] = field(default_factory=dict)

    def columns(self, kind: AssetKind) -> frozenset[str]:
        return self.mapped.get(kind, frozenset())


class PsaProvider(Protocol):
    """A PSA as the sync engine sees it. Lists yield pages ordered by ascending PSA id."""

    display_name: str
    # Webhook registration through the API, or None when the PSA has none.
    subscriptions: PsaSubscriptions | None

    async def check_connection(self) -> None: ...

    async def reference_data(self) -> dict[ReferenceKind, list[PsaReference]]:
        """The reference lists; a list whose area the API user may not read is left out."""
        ...

    async def probe_reads(self, areas: Collection[str] | None = None) -> list[AreaAccess]:
        """Whether the API user may read each area psasync uses (only ``areas``, when
        given), by one cheap read per area (a one-record page); a 403 is a denied entry,
        any other failure is raised."""
        ...

    async def estimate_total(self, scope: ProviderScope, *, contacts: bool) -> int | None:
        """Roughly how many records a full sync will list (for progress), if cheap to know."""
        ...

    # ``since``: only records the PSA changed at or after this time (incremental sync).

    def organizations(
        self, scope: ProviderScope, *, after: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]: ...

    def locations(
        self, organization_psa_id: int, *, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]: ...

    def contacts(
        self, *, after: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]: ...

    def configurations(
        self, scope: ProviderScope, *, after: int | None = None, since: datetime | None = None
    ) -> AsyncIterator[list[PsaRecord]]: ...

    async def fetch(self, kind: AssetKind, psa_ids: Sequence[int]) -> list[PsaRecord]:
        """The records with these ids that the PSA still has, whatever the scope, in
        ascending id order (few requests: a notification burst is re-fetched in batches).
        Ids missing from the answer are deleted in the PSA. Not for locations: they are
        addressed through their organization."""
        ...

    def record_ids(self, kind: AssetKind, scope: ProviderScope) -> AsyncIterator[list[int]]:
        """Pages of the ids a full sync of ``kind`` would list (same scope filter at the
        source), ascending; cheap (ids only), for reconciliation. Not for locations."""
        ...

    def deleted_since(self, kind: AssetKind, since: datetime) -> AsyncIterator[list[int]]:
        """Pages of the ids of records the PSA marked deleted at or after ``since`` (a PSA
        that soft-deletes keeps them, stamped); nothing for kinds it deletes outright (the
        reconciliation finds those)."""
        ...

    # -- writes (two-way sync) --------------------------------------------------------------

    async def read_for_write(
        self, kind: AssetKind, records: Sequence[tuple[int, int | None]]
    ) -> list[PsaRecord]:
        """The PSA's current version of records about to be written (``(psa id, parent psa
        id)`` each; the parent addresses a location), in ascending id order; records missing
        from the answer are gone from the PSA. As few requests as the PSA allows: one list
        call per batch of ids where it filters by id. A provider that must read a record to
        write it (a PUT of the whole record) keeps what it read here for the
        ``update_record`` of the same record that follows, so a push reads it once."""
        ...

    async def create_record(self, kind: AssetKind, change: PsaChange) -> PsaRecord:
        """Create a record; returns it as the PSA stored it (with its stamp).

        A refusal of the record itself (validation) raises ``RecordError`` carrying the
        PSA's messages; outages raise ``RetriableError``.
        """
        ...

    async def update_record(
        self, kind: AssetKind, psa_id: int, parent_psa_id: int | None, change: PsaChange
    ) -> PsaRecord:
        """Change only the fields in ``change``; returns the record as the PSA stored it."""
        ...

    async def delete_record(self, kind: AssetKind, psa_id: int, parent_psa_id: int | None) -> None:
        """Delete a record (a record already gone counts as deleted)."""
        ...

    async def find_matches(self, kind: AssetKind, probes: list[MatchProbe]) -> list[PsaRecord]:
        """PSA records that could match these probes, for first-link matching on push."""
        ...

    def missing_for_create(self, kind: AssetKind, change: PsaChange) -> list[str]:
        """What the PSA requires to create this record that ``change`` lacks, in words
        (e.g. ``["type", "status"]``); empty when it can be created."""
        ...

    async def contact_attribute_options(self) -> dict[str, list[str]]:
        """The PSA's types for new contacts' emails and phones: ``{"email": [...],
        "phone": [...]}`` (names, as ``PsaChange`` values carry them)."""
        ...

    async def psa_users(self, *, subcontractors: bool = False) -> list[PsaUser]:
        """The PSA's licensed, active users, by ascending PSA id: people, not API logins,
        as far as the PSA's API can tell them apart (``subcontractors``: include those too,
        where the PSA has such a class). ``NotSupportedError`` when the API has no user list.
        """
        ...

    def budget_waits(self) -> Mapping[str, float]:
        """Seconds spent waiting for the PSA's call budget since the provider was opened, per
        endpoint (empty for a PSA without one): lets a run say the budget set its pace."""
        ...

    async def aclose(self) -> None: ...


def parse_psa_datetime(value: Any) -> datetime | None:
    """PSA stamps are ISO 8601 UTC with a trailing Z (second precision)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


RawRecord = Mapping[str, Any]
