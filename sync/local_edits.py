"""Edits made in psasync (create, update, delete of assets) and what the sync allows.

Under one-way sync the PSA wins: a field the sync maps is read-only on a linked record, and
changing it is refused with the fields named (IT Glue greys them out). Unlinked records,
orphaned ones and unmapped fields are free to edit. Values are validated here, once, for
every caller (GraphQL, CLI, imports): references must point at the same account, and
locations and contacts at the same organization.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.fields import CharField
from tortoise.transactions import in_transaction

from models import (
    ASSET_MODELS,
    Asset,
    AssetKind,
    ChangeSource,
    Contact,
    FieldChange,
    LinkState,
    Organization,
    OutboxEntry,
    OutboxOperation,
    RecordLink,
    ReferenceKind,
    ReferenceValue,
)
from models.outbox import json_text
from sync import outbox
from sync.connections import field_table
from sync.directions import any_push, directions_of, read_only
from sync.snapshot import encode

log = logging.getLogger("psasync.edits")


class EditError(Exception):
    """An edit refused, with a stable code and the column it is about."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        fields: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.fields = fields or ((field,) if field else ())


def read_only_columns(
    provider: str, two_way: bool, kind: AssetKind, stored: Mapping[str, Any] | None = None
) -> frozenset[str]:
    """Columns a synced record of ``kind`` may not change locally under this integration:
    those whose direction is PSA_TO_LOCAL (all mapped ones under one-way sync)."""
    return read_only(directions_of(provider, two_way, stored or {}), provider, kind)


@dataclass(frozen=True)
class Lock:
    integration_name: str
    columns: frozenset[str]
    one_way: bool  # nothing flows to this PSA: deleting the record locally is refused


async def locks(kind: AssetKind, local_id: uuid.UUID) -> list[Lock]:
    """The read-only columns each integration syncing this record imposes."""
    rows = await RecordLink.filter(
        kind=kind, local_id=local_id, state=LinkState.SYNCED
    ).values_list(
        "integration__name",
        "integration__provider",
        "integration__two_way_enabled",
        "integration__directions",
        "integration__synced_api",
    )
    locks = []
    for name, provider, two_way, stored, api in rows:
        table = field_table(provider, api)
        directions = directions_of(table, bool(two_way), stored or {})
        locks.append(
            Lock(name, read_only(directions, table, kind), not any_push(directions, table))
        )
    return locks


# Which reference kind each reference column takes, and which asset each relation column.
REFERENCE_COLUMNS: Mapping[str, ReferenceKind] = {
    f"{kind.value}_id": kind for kind in ReferenceKind
}
RELATION_COLUMNS: Mapping[str, AssetKind] = {
    "organization_id": AssetKind.ORGANIZATION,
    "parent_id": AssetKind.ORGANIZATION,
    "primary_location_id": AssetKind.LOCATION,
    "location_id": AssetKind.LOCATION,
    "contact_id": AssetKind.CONTACT,
}
REQUIRED: Mapping[AssetKind, tuple[str, ...]] = {
    AssetKind.ORGANIZATION: ("name",),
    AssetKind.LOCATION: ("organization_id", "name"),
    AssetKind.CONTACT: ("organization_id",),
    AssetKind.CONFIGURATION: ("organization_id", "name"),
}


async def create(
    kind: AssetKind,
    account_id: uuid.UUID,
    values: Mapping[str, Any],
    *,
    actor: str | None = None,
) -> Asset:
    """Create a record; under two-way sync it is queued for creation in the PSAs."""
    model = ASSET_MODELS[kind]
    values = _clean(model, values)
    for column in REQUIRED[kind]:
        if values.get(column) in (None, ""):
            raise EditError("REQUIRED", f"{column} is required", field=column)
    if kind == AssetKind.CONTACT and not (values.get("first_name") or values.get("last_name")):
        raise EditError("REQUIRED", "a contact needs a first or a last name", field="first_name")
    await _check_references(kind, account_id, None, values, values)
    asset = model(id=uuid.uuid4(), account_id=account_id, **values)
    _derive(asset)
    async with in_transaction():
        await asset.save()
        await outbox.record_edit(kind, account_id, [asset.id], values, actor=actor, created=True)
    return asset


async def update(
    kind: AssetKind,
    account_id: uuid.UUID,
    local_id: uuid.UUID,
    values: Mapping[str, Any],
    *,
    actor: str | None = None,
    source: ChangeSource = ChangeSource.USER,
) -> Asset:
    """Change some fields. Under two-way sync the change is queued for the PSAs in the same
    transaction; saving a record the PSA does not have yet (even with no change) queues its
    creation there, as IT Glue's "edit and save to push" does."""
    model = ASSET_MODELS[kind]
    asset = await model.filter(id=local_id, account_id=account_id).first()
    if asset is None:
        raise EditError("NOT_FOUND", f"no {kind.value} {local_id}", field="id")
    values = _clean(model, values)
    changed = {k: v for k, v in values.items() if getattr(asset, k) != v}
    if not changed:
        async with in_transaction():
            await outbox.record_edit(kind, account_id, [local_id], (), actor=actor)
        return asset
    for column in REQUIRED[kind]:
        if column in changed and changed[column] in (None, ""):
            raise EditError("REQUIRED", f"{column} cannot be empty", field=column)
    refused: set[str] = set()
    names: list[str] = []
    for lock in await locks(kind, local_id):
        hit = lock.columns & changed.keys()
        if hit:
            refused |= hit
            names.append(lock.integration_name)
    if refused:
        columns = tuple(sorted(refused))
        raise EditError(
            "READ_ONLY_FIELD",
            f"{', '.join(columns)} {'is' if len(columns) == 1 else 'are'} read-only: "
            f"{'it flows' if len(columns) == 1 else 'they flow'} one-way from "
            f"{', '.join(sorted(names))} to this {kind.value}, where the PSA wins. Change "
            f"{'it' if len(columns) == 1 else 'them'} in the PSA, or turn on two-way sync "
            "for the field.",
            field=columns[0],
            fields=columns,
        )
    current = {name: getattr(asset, name) for name in _columns(model)}
    await _check_references(kind, account_id, local_id, changed, {**current, **changed})
    for key, value in changed.items():
        setattr(asset, key, value)
    _derive(asset)
    asset.version += 1
    # Only the columns this edit changed (and what derives from them): a pull or a push's
    # answer that wrote other fields since this record was read keeps them.
    derived = ["match_key", "version", "updated_at"]
    if isinstance(asset, Contact):
        derived.append("primary_email")
    async with in_transaction():
        await asset.save(update_fields=[*changed, *derived])
        await FieldChange.bulk_create(
            [
                FieldChange(
                    account_id=account_id,
                    kind=kind,
                    local_id=local_id,
                    field=column,
                    old_value=json_text(encode(current.get(column))),
                    new_value=json_text(encode(value)),
                    source=source,
                    actor=actor,
                    changed_at=asset.updated_at,
                )
                for column, value in sorted(changed.items())
            ]
        )
        await outbox.record_edit(kind, account_id, [local_id], changed, actor=actor)
    return asset


async def delete(
    kind: AssetKind, account_id: uuid.UUID, local_id: uuid.UUID, *, actor: str | None = None
) -> None:
    """Delete a record. Its links go with it; the PSA record is left alone (and the log
    says so) unless the integration propagates deletes, when a PSA delete is queued."""
    model = ASSET_MODELS[kind]
    asset = await model.filter(id=local_id, account_id=account_id).first()
    if asset is None:
        raise EditError("NOT_FOUND", f"no {kind.value} {local_id}", field="id")
    one_way = [lock.integration_name for lock in await locks(kind, local_id) if lock.one_way]
    if one_way:
        raise EditError(
            "SYNCED_RECORD",
            f"this {kind.value} is synced one-way from {', '.join(sorted(one_way))}: it "
            "would come back on the next sync. Delete it in the PSA, or stop syncing its "
            "type or status.",
            field="id",
        )
    async with in_transaction():
        kept = await outbox.record_delete(kind, account_id, local_id, actor=actor)
        await RecordLink.filter(kind=kind, local_id=local_id).delete()
        await OutboxEntry.filter(
            kind=kind,
            local_id=local_id,
            operation__in=[OutboxOperation.CREATE, OutboxOperation.UPDATE],
        ).delete()
        if kind == AssetKind.LOCATION:
            await Organization.filter(primary_location_id=local_id).update(primary_location_id=None)
        await asset.delete()
    for name in kept:
        log.info(
            "%s %s deleted locally; its record in %s is left alone (propagateDeletes is off)",
            kind.value, local_id, name,
        )  # fmt: skip


def _columns(model: type[Asset]) -> list[str]:
    return [
        name
        for name in model._meta.db_fields
        if name not in {"id", "account_id", "created_at", "updated_at", "version", "match_key"}
    ]


def _clean(model: type[Asset], values: Mapping[str, Any]) -> dict[str, Any]:
    """Known columns only, text trimmed (blank becomes None), lengths checked."""
    known = set(_columns(model))
    cleaned: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise EditError("UNKNOWN_FIELD", f"{key} is not a field of this record", field=key)
        if isinstance(value, str):
            value = value.strip() or None
            field = model._meta.fields_map[key]
            limit = field.max_length if isinstance(field, CharField) else None
            if value is not None and limit is not None and len(value) > limit:
                raise EditError("TOO_LONG", f"{key} is longer than {limit} characters", field=key)
        if isinstance(value, datetime) and value.tzinfo is None:
            raise EditError("INVALID", f"{key} needs a time zone", field=key)
        cleaned[key] = value
    if "emails" in cleaned:
        cleaned["emails"] = _typed_list(cleaned["emails"], "emails")
    if "phones" in cleaned:
        cleaned["phones"] = _typed_list(cleaned["phones"], "phones")
    return cleaned


def _typed_list(items: Any, column: str) -> list[dict[str, Any]]:
    entries = []
    for item in items or ():
        value = (item.get("value") or "").strip()
        if not value:
            raise EditError("REQUIRED", f"every entry of {column} needs a value", field=column)
        entries.append({**item, "value": value, "primary": bool(item.get("primary"))})
    if sum(e["primary"] for e in entries) > 1:
        raise EditError("INVALID", f"only one of {column} can be primary", field=column)
    return entries


async def _check_references(
    kind: AssetKind,
    account_id: uuid.UUID,
    local_id: uuid.UUID | None,
    changed: Mapping[str, Any],
    merged: Mapping[str, Any],
) -> None:
    for column, value in changed.items():
        if value is None:
            continue
        if column in REFERENCE_COLUMNS:
            found = await ReferenceValue.filter(
                id=value, account_id=account_id, kind=REFERENCE_COLUMNS[column]
            ).exists()
            if not found:
                raise EditError(
                    "NOT_FOUND", f"no {REFERENCE_COLUMNS[column].value} {value}", field=column
                )
        elif column in RELATION_COLUMNS:
            target = ASSET_MODELS[RELATION_COLUMNS[column]]
            row = await target.filter(id=value, account_id=account_id).first()
            if row is None:
                raise EditError("NOT_FOUND", f"no {target.kind.value} {value}", field=column)
            if column == "parent_id":
                await _check_no_cycle(account_id, local_id, value)
            elif column != "organization_id":
                organization = (
                    merged.get("organization_id") if kind != AssetKind.ORGANIZATION else local_id
                )
                if row.organization_id != organization:  # type: ignore[attr-defined]
                    raise EditError(
                        "WRONG_ORGANIZATION",
                        f"{column} must belong to the same organization",
                        field=column,
                    )
    if kind != AssetKind.ORGANIZATION and "organization_id" in changed and local_id is not None:
        # Moving to another organization: relations to the old one's records would dangle.
        for column in ("location_id", "contact_id"):
            if column in merged and merged[column] is not None and column not in changed:
                raise EditError(
                    "WRONG_ORGANIZATION",
                    f"clear or change {column} when moving to another organization",
                    field=column,
                )


async def _check_no_cycle(
    account_id: uuid.UUID, local_id: uuid.UUID | None, parent_id: uuid.UUID
) -> None:
    seen: set[uuid.UUID] = set()
    current: uuid.UUID | None = parent_id
    while current is not None and current not in seen:
        if current == local_id:
            raise EditError(
                "INVALID", "an organization cannot be its own ancestor", field="parent_id"
            )
        seen.add(current)
        parents = await Organization.filter(id=current, account_id=account_id).values_list(
            "parent_id", flat=True
        )
        current = uuid.UUID(str(parents[0])) if parents and parents[0] else None


def _derive(asset: Asset) -> None:
    """Keep the derived columns (match key, primary email) in step with the values."""
    if isinstance(asset, Contact):
        emails = asset.emails or []
        primary = next((e for e in emails if e.get("primary")), emails[0] if emails else None)
        asset.primary_email = primary["value"].lower() if primary else None
    asset.match_key = asset.compute_match_key()
