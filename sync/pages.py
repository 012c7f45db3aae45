"""A page of PSA records of one kind, with what ``apply`` needs to write it.

Full syncs, incremental syncs and webhook notices all write records the same way; only how
the records were found differs. This module knows, per asset kind, which related records a
page resolves and which records are out of scope.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from models import AssetKind, ReferenceKind
from sync.apply import LinkRow, Page, Related, RelatedLoader, resolve
from sync.context import RunContext
from sync.providers.base import PsaRecord

Scope = Callable[[PsaRecord], str | None]

# The relations each kind's records point at, besides their organization.
_RELATED: dict[AssetKind, tuple[tuple[str, AssetKind], ...]] = {
    AssetKind.ORGANIZATION: (
        ("parent", AssetKind.ORGANIZATION),
        ("primary_location", AssetKind.LOCATION),
    ),
    AssetKind.LOCATION: (),
    AssetKind.CONTACT: (("location", AssetKind.LOCATION),),
    AssetKind.CONFIGURATION: (
        ("location", AssetKind.LOCATION),
        ("contact", AssetKind.CONTACT),
    ),
}


def out_of_scope(ctx: RunContext, kind: AssetKind) -> Scope:
    """Why a record of ``kind`` is not synced (its types and statuses), or None."""
    ref = ctx.reference
    if kind is AssetKind.ORGANIZATION:
        codes = (ReferenceKind.ORGANIZATION_TYPE, ReferenceKind.ORGANIZATION_STATUS)
    elif kind is AssetKind.CONFIGURATION:
        codes = (ReferenceKind.CONFIGURATION_TYPE, ReferenceKind.CONFIGURATION_STATUS)
    else:
        return lambda _record: None

    def why(record: PsaRecord) -> str | None:
        for code in codes:
            if not ref.all_enabled(code, record.codes.get(code, ())):
                return f"{code.value}_not_synced"
        return None

    return why


def related_loader(ctx: RunContext, kind: AssetKind) -> RelatedLoader | None:
    relations = _RELATED[kind]
    if not relations:
        return None

    async def load(records: list[PsaRecord]) -> Related:
        found: Related = {}
        for name, target in relations:
            found.setdefault(target, {}).update(
                await resolve(ctx, target, (r.refs.get(name) for r in records))
            )
        return found

    return load


async def organizations_of(
    ctx: RunContext, kind: AssetKind, records: Sequence[PsaRecord]
) -> dict[int, LinkRow]:
    """The synced organizations the records belong to (none for organizations)."""
    if kind is AssetKind.ORGANIZATION:
        return {}
    return await resolve(ctx, AssetKind.ORGANIZATION, (r.parent_psa_id for r in records))


async def page_of(
    ctx: RunContext,
    kind: AssetKind,
    records: Sequence[PsaRecord],
    links: dict[int, LinkRow],
    checkpoint: dict[str, Any] | None = None,
    *,
    organizations: dict[int, LinkRow] | None = None,
    read_at: datetime | None = None,
) -> Page:
    """``read_at``: when the PSA read of ``records`` began (see ``Page.read_at``)."""
    if organizations is None:
        organizations = await organizations_of(ctx, kind, records)
    return Page(
        kind,
        records,
        links,
        organizations,
        related_loader(ctx, kind),
        out_of_scope(ctx, kind),
        checkpoint,
        read_at=read_at,
    )
