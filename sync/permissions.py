"""What the PSA's security role lets psasync's API user do, by area: a warning on the
integration, not a failure, unless the core read (ConnectWise companies, Pulseway PSA
accounts) is denied.

When it is checked:
- **reads** are probed with one cheap read per area (``PsaProvider.probe_reads``: a
  one-record page) at setup, when credentials change, and at the start of every full and
  reconciliation run, which replaces the read entries. An incremental poll probes only the
  areas denied so far (nothing when none is: a poll stays a handful of requests), so a
  denial lifted in the PSA clears at the next run of any kind. A run skips
  the kinds whose area it may not read (``RunContext.skipped``), leaving their records and
  links as they are; a 403 met later in a run is recorded before the run fails.
- **writes** are never probed: neither PSA has a dry run, and a test write would change
  the customer's data. A 403 on a push is recorded as a write denial (the entries FAILED,
  ``retryPush`` sends them again); a later successful push of a kind from that area clears
  it, and so do new credentials.

The report lives in the integration's ``permissions`` JSON column:
``{"entries": [...], "checked_at": ISO 8601}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from tortoise.transactions import in_transaction

from models import AssetKind, Integration
from models.bulk import lock_rows
from sync.errors import PermissionDenied
from sync.providers.base import AreaAccess, PsaProvider

ENTRIES, CHECKED_AT = "entries", "checked_at"
READ, WRITE = "read", "write"


def _decoded(stored: Any) -> dict[str, Any]:
    if isinstance(stored, (str, bytes)):
        stored = json.loads(stored)
    return stored if isinstance(stored, dict) else {}


def report_of(stored: Any) -> list[AreaAccess]:
    """The stored report (the ``permissions`` column's value, decoded or as text)."""
    entries = _decoded(stored).get(ENTRIES)
    found = []
    for raw in entries or ():
        try:
            found.append(
                AreaAccess(
                    area=str(raw["area"]),
                    access=str(raw["access"]),
                    allowed=bool(raw["allowed"]),
                    message=raw.get("message"),
                    kinds=tuple(AssetKind(k) for k in raw.get("kinds", ())),
                    core=bool(raw.get("core", False)),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return found


def checked_at(stored: Any) -> datetime | None:
    """When the reads were last probed."""
    value = _decoded(stored).get(CHECKED_AT)
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def ordered(entries: Iterable[AreaAccess]) -> list[AreaAccess]:
    """Denials first, then by area and access (reads before writes)."""
    return sorted(entries, key=lambda e: (e.allowed, e.area, e.access != READ))


def core_denial(entries: Iterable[AreaAccess]) -> AreaAccess | None:
    """The denied core read, if any: no sync is possible without it."""
    return next((e for e in entries if e.core and e.access == READ and not e.allowed), None)


def denied_kinds(entries: Iterable[AreaAccess]) -> frozenset[AssetKind]:
    """The record kinds whose area may not be read."""
    return frozenset(
        kind for e in entries if e.access == READ and not e.allowed for kind in e.kinds
    )


async def probe(provider: PsaProvider) -> list[AreaAccess]:
    """Probe the reads; ``PermissionDenied`` naming the area when the core read is denied."""
    entries = await provider.probe_reads()
    refused = core_denial(entries)
    if refused is not None:
        raise _core_error(provider, refused)
    return entries


async def refresh(
    integration: Integration, provider: PsaProvider, *, denied_only: bool = False
) -> list[AreaAccess]:
    """A run's check: probe the reads (``denied_only``: just the areas denied so far) and
    record them (a lifted denial clears here); returns the report, or raises
    ``PermissionDenied`` if the core read is denied."""
    if denied_only:
        before = report_of(integration.permissions)
        areas = {e.area for e in before if e.access == READ and not e.allowed}
        if not areas:
            return before
        probed = await provider.probe_reads(areas)
        keep = [e for e in before if e.access == READ and e.area not in areas]
        entries = await record_reads(integration.id, [*keep, *probed])
    else:
        entries = await record_reads(integration.id, await provider.probe_reads())
    refused = core_denial(entries)
    if refused is not None:
        raise _core_error(provider, refused)
    return entries


def _core_error(provider: PsaProvider, refused: AreaAccess) -> PermissionDenied:
    return PermissionDenied(
        f"{provider.display_name} does not let the API user read {refused.area}, which "
        f"every sync needs: grant it in the API user's security role "
        f"({refused.message or 'denied'})",
        area=refused.area,
        access=READ,
    )


async def record_reads(
    integration_id: Any,
    entries: Sequence[AreaAccess],
    *,
    keep_writes: bool = True,
    now: datetime | None = None,
) -> list[AreaAccess]:
    """Replace the report's read entries with ``entries`` (writes kept unless new
    credentials make them moot); returns the report."""

    def change(current: list[AreaAccess]) -> list[AreaAccess]:
        writes = [e for e in current if e.access == WRITE] if keep_writes else []
        return [*entries, *writes]

    return await _update(integration_id, change, checked=now or datetime.now(UTC))


async def record_denial(integration_id: Any, denied: PermissionDenied) -> None:
    """A 403 met while syncing or pushing: the area's entry for that access is denied."""
    if denied.area is None:
        return

    def change(current: list[AreaAccess]) -> list[AreaAccess]:
        kinds: tuple[AssetKind, ...] = ()
        for entry in current:
            if entry.area == denied.area:
                kinds = kinds or entry.kinds
        rest = [e for e in current if (e.area, e.access) != (denied.area, denied.access)]
        area, access = denied.area or "", denied.access
        return [*rest, AreaAccess(area, access, False, denied.message, kinds)]

    await _update(integration_id, change)


async def record_writes_allowed(integration_id: Any, kinds: Iterable[AssetKind]) -> None:
    """Pushes of these kinds were answered: write denials of their areas are lifted."""
    wanted = set(kinds)
    if not wanted:
        return

    def change(current: list[AreaAccess]) -> list[AreaAccess]:
        areas = {e.area for e in current if e.access == READ and wanted & set(e.kinds)}
        return [e for e in current if not (e.access == WRITE and not e.allowed and e.area in areas)]

    await _update(integration_id, change, only_if=_has_write_denials)


def _has_write_denials(entries: list[AreaAccess]) -> bool:
    return any(e.access == WRITE and not e.allowed for e in entries)


async def _update(
    integration_id: Any,
    change: Callable[[list[AreaAccess]], list[AreaAccess]],
    *,
    checked: datetime | None = None,
    only_if: Callable[[list[AreaAccess]], bool] | None = None,
) -> list[AreaAccess]:
    """Read the column fresh, change the report, write it back, the row locked meanwhile
    (PostgreSQL; SQLite has one writer) so a concurrent change (a push's denial, a run's
    probe) is not lost."""
    async with in_transaction():
        await lock_rows(Integration, [integration_id])
        stored = await Integration.filter(id=integration_id).values_list("permissions", flat=True)
        if not stored:
            return []
        value = dict(_decoded(stored[0]))
        current = report_of(value)
        if only_if is not None and not only_if(current):
            return current
        report = change(current)
        value[ENTRIES] = [_as_json(e) for e in report]
        if checked is not None:
            value[CHECKED_AT] = checked.isoformat()
        await Integration.filter(id=integration_id).update(permissions=value)
    return report


def _as_json(entry: AreaAccess) -> dict[str, Any]:
    return {
        "area": entry.area,
        "access": entry.access,
        "allowed": entry.allowed,
        "message": entry.message,
        "kinds": [k.value for k in entry.kinds],
        "core": entry.core,
    }
