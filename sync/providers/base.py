"""What the sync engine needs from a PSA, in psasync's words.

A provider turns its PSA's records into ``PsaRecord``s: local field names and values, plus
the PSA ids of the records and reference values they point at. The engine resolves those ids
through record links and reference mappings; it never sees a PSA field name or HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from models.enums import AssetKind, ReferenceKind


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

    def columns(self, kind: AssetKind) -> frozenset[str]:
        return self.mapped.get(kind, frozenset())


class PsaProvider(Protocol):
    """A PSA as the sync engine sees it. Lists yield pages ordered by ascending PSA id."""

    display_name: str

    async def check_connection(self) -> None: ...

    async def reference_data(self) -> dict[ReferenceKind, list[PsaReference]]: ...

    async def estimate_total(self, scope: ProviderScope, *, contacts: bool) -> int | None:
        """Roughly how many records a full sync will list (for progress), if cheap to know."""
        ...

    def organizations(
        self, scope: ProviderScope, *, after: int | None = None
    ) -> AsyncIterator[list[PsaRecord]]: ...

    def locations(self, organization_psa_id: int) -> AsyncIterator[list[PsaRecord]]: ...

    def contacts(self, *, after: int | None = None) -> AsyncIterator[list[PsaRecord]]: ...

    def configurations(
        self, scope: ProviderScope, *, after: int | None = None
    ) -> AsyncIterator[list[PsaRecord]]: ...

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
