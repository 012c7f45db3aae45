"""Local records in the form a push needs: their values, and ``PsaChange``s.

A push translates local ids into the PSA's: related records through this integration's
links, types and statuses through its reference mappings. What cannot be translated (a
related record the PSA does not have yet, a type only psasync knows) is left out of the
change and stays a difference, pushed by a later edit once it can be.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from models import (
    ASSET_MODELS,
    AssetKind,
    Integration,
    LinkState,
    RecordLink,
    ReferenceKind,
    ReferenceMapping,
    match_keys,
)
from sync.columns import CODES, RELATIONS, as_uuid
from sync.connections import field_map, table_of
from sync.providers.base import PsaChange, PsaRecord
from sync.snapshot import snapshot_of

COLUMN_CODES: dict[str, ReferenceKind] = {column: kind for kind, column in CODES.items()}
COLUMN_RELATIONS: dict[str, tuple[str, AssetKind]] = {
    column: (name, kind) for name, (kind, column) in RELATIONS.items()
}
# Contact methods go to the PSA as one list in ConnectWise: push both when either changes.
TOGETHER: dict[AssetKind, tuple[frozenset[str], ...]] = {
    AssetKind.CONTACT: (frozenset({"emails", "phones"}),),
}


def columns_of(integration: Integration, kind: AssetKind) -> frozenset[str]:
    return field_map(table_of(integration)).columns(kind)


async def local_rows(
    kind: AssetKind, local_ids: Iterable[uuid.UUID], columns: Iterable[str]
) -> dict[uuid.UUID, dict[str, Any]]:
    """The records' current values (plain, not encoded), by id."""
    model = ASSET_MODELS[kind]
    present = model._meta.db_fields
    names = {*columns, "id", "match_key"} | {
        c for c in ("organization_id", "source", "primary_location_id") if c in present
    }
    rows = await model.filter(id__in=list(local_ids)).values(*sorted(names))
    return {as_uuid(row["id"]): row for row in rows}


@dataclass
class Translator:
    """Local ids → this integration's PSA ids, loaded once per batch of records."""

    integration: Integration
    codes: dict[uuid.UUID, int] = field(default_factory=dict)  # reference value → PSA id
    links: dict[tuple[AssetKind, uuid.UUID], tuple[int, int | None]] = field(default_factory=dict)

    @classmethod
    async def load(cls, integration: Integration, rows: Iterable[Mapping[str, Any]]) -> Translator:
        translator = cls(integration)
        mappings = await ReferenceMapping.filter(integration_id=integration.id).values_list(
            "value_id", "psa_id"
        )
        translator.codes = {as_uuid(v): int(p) for v, p in mappings if p is not None}
        wanted: dict[AssetKind, set[uuid.UUID]] = {}
        for row in rows:
            for column, (_name, target) in COLUMN_RELATIONS.items():
                if row.get(column):
                    wanted.setdefault(target, set()).add(as_uuid(row[column]))
            if row.get("organization_id"):
                wanted.setdefault(AssetKind.ORGANIZATION, set()).add(
                    as_uuid(row["organization_id"])
                )
        for kind, ids in wanted.items():
            found = await RecordLink.filter(
                integration_id=integration.id,
                kind=kind,
                local_id__in=list(ids),
                psa_id__isnull=False,
                state=LinkState.SYNCED,
            ).values_list("local_id", "psa_id", "psa_parent_id")
            for local_id, psa_id, parent in found:
                translator.links[(kind, as_uuid(local_id))] = (int(psa_id), parent)
        return translator

    def psa_id(self, kind: AssetKind, local_id: Any) -> int | None:
        if local_id is None:
            return None
        found = self.links.get((kind, as_uuid(local_id)))
        return found[0] if found else None

    def change(
        self, kind: AssetKind, row: Mapping[str, Any], columns: Iterable[str]
    ) -> tuple[PsaChange, set[str]]:
        """The change that writes ``columns`` of ``row``, and the columns it could carry."""
        change = PsaChange()
        carried: set[str] = set()
        for column in columns:
            value = row.get(column)
            if column in COLUMN_CODES:
                if value is None:
                    change.codes[COLUMN_CODES[column]] = ()
                elif as_uuid(value) in self.codes:
                    change.codes[COLUMN_CODES[column]] = (self.codes[as_uuid(value)],)
                else:
                    continue  # a value this PSA does not know
            elif column in COLUMN_RELATIONS:
                name, target = COLUMN_RELATIONS[column]
                psa_id = self.psa_id(target, value)
                if value is not None and psa_id is None:
                    continue  # the related record is not in this PSA (yet)
                change.refs[name] = psa_id
            elif column == "organization_id":
                psa_id = self.psa_id(AssetKind.ORGANIZATION, value)
                if psa_id is None:
                    continue
                change.parent_psa_id = psa_id
            else:
                change.values[column] = value
            carried.add(column)
        return change, carried


@dataclass
class Reverse:
    """This integration's PSA ids → local ids, to read PSA records in local terms."""

    codes: dict[ReferenceKind, dict[int, uuid.UUID]] = field(default_factory=dict)
    links: dict[AssetKind, dict[int, uuid.UUID]] = field(default_factory=dict)

    @classmethod
    async def load(cls, integration: Integration, records: Iterable[PsaRecord]) -> Reverse:
        reverse = cls()
        rows = await ReferenceMapping.filter(integration_id=integration.id).values_list(
            "kind", "psa_id", "value_id"
        )
        for kind, psa_id, value_id in rows:
            if psa_id is not None:
                reverse.codes.setdefault(ReferenceKind(kind), {})[int(psa_id)] = as_uuid(value_id)
        wanted: dict[AssetKind, set[int]] = {}
        for record in records:
            if record.parent_psa_id is not None:
                wanted.setdefault(AssetKind.ORGANIZATION, set()).add(record.parent_psa_id)
            for name, psa_id in record.refs.items():
                if psa_id is not None:
                    wanted.setdefault(RELATIONS[name][0], set()).add(psa_id)
        for kind, ids in wanted.items():
            found = await RecordLink.filter(
                integration_id=integration.id, kind=kind, psa_id__in=list(ids)
            ).values_list("psa_id", "local_id")
            reverse.links[kind] = {int(p): as_uuid(loc) for p, loc in found}
        return reverse

    def local_values(self, kind: AssetKind, record: PsaRecord) -> dict[str, Any]:
        """A PSA record as local column values (what a pull would write)."""
        values = dict(record.values)
        for code_kind, psa_ids in record.codes.items():
            known = self.codes.get(code_kind, {})
            values[CODES[code_kind]] = next((known[i] for i in psa_ids if i in known), None)
        if kind != AssetKind.ORGANIZATION:
            values["organization_id"] = self.links.get(AssetKind.ORGANIZATION, {}).get(
                record.parent_psa_id or -1
            )
        for name, psa_id in record.refs.items():
            target, column = RELATIONS[name]
            values[column] = None if psa_id is None else self.links.get(target, {}).get(psa_id)
        return values


def snapshot_for(kind: AssetKind, values: dict[str, Any], record: PsaRecord) -> dict[str, Any]:
    """The link's base for a record just written to or matched in the PSA."""
    snap = snapshot_of(values, record.refs)
    snap["match_key"] = match_keys.for_values(kind.value, values)
    return snap
