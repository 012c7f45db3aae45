"""Reference data (types and statuses) from the PSA, and the scope it defines.

New PSA values arrive ``DISABLED`` until someone enables them (features.md §A2). A value the
PSA no longer lists becomes ``NOT_CONNECTED``, kept with the assets that use it. A rename in
the PSA renames the local value (the PSA owns these lists), unless the new name is taken. A
value listed under a new id with the name of one no longer listed is that value renumbered
(an integration switching from SOAP, whose ids are derived from names, to REST): it keeps
its mapping and its sync state.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from tortoise.transactions import in_transaction

from models import Integration, ReferenceKind, ReferenceMapping, ReferenceValue, SyncState
from models.text import column_limits, unstorable
from sync.connections import connector
from sync.providers.base import ProviderScope, PsaReference

log = logging.getLogger("psasync.sync")
T = TypeVar("T")

# A value's name, with room for the " (2)" that tells apart two values of one name.
NAME_MAX = min(column_limits(ReferenceValue)["name"], column_limits(ReferenceMapping)["psa_name"])


@dataclass
class ReferenceIndex:
    """PSA id → local value id and sync state, per kind, for one integration."""

    local: dict[ReferenceKind, dict[int, uuid.UUID]] = field(default_factory=dict)
    state: dict[ReferenceKind, dict[int, SyncState]] = field(default_factory=dict)

    def local_id(self, kind: ReferenceKind, psa_ids: Iterable[int]) -> uuid.UUID | None:
        """The local value for the first PSA id (a company's first type is its type)."""
        known = self.local.get(kind, {})
        for psa_id in psa_ids:
            if psa_id in known:
                return known[psa_id]
        return None

    def all_enabled(self, kind: ReferenceKind, psa_ids: Iterable[int]) -> bool:
        """True when every value is enabled, and there is at least one."""
        states = self.state.get(kind, {})
        ids = list(psa_ids)
        return bool(ids) and all(states.get(i) == SyncState.ENABLED for i in ids)

    def scope(self) -> ProviderScope:
        return ProviderScope(
            {
                kind: frozenset(i for i, s in states.items() if s == SyncState.ENABLED)
                for kind, states in self.state.items()
            }
        )


def recommended_names(provider: str, kind: ReferenceKind) -> frozenset[str]:
    """The names the Sync Settings screen recommends for ``kind`` (``Connector.
    recommended``), casefolded."""
    try:
        names = connector(provider).recommended.get(kind, ())
    except NotImplementedError:
        return frozenset()
    return frozenset(name.casefold() for name in names)


def recommended_first(
    items: Iterable[T], name: Callable[[T], str], recommended: Callable[[T], bool]
) -> list[tuple[T, bool]]:
    """``items`` as every list of sync settings shows them: the recommended ones first,
    then the rest, each part by name (case-insensitive); with whether each is recommended."""
    marked = [(item, recommended(item)) for item in items]
    return sorted(marked, key=lambda m: (not m[1], name(m[0]).casefold(), name(m[0])))


async def load_index(integration: Integration) -> ReferenceIndex:
    index = ReferenceIndex()
    rows = await ReferenceMapping.filter(integration_id=integration.id).values_list(
        "kind", "psa_id", "value_id", "sync_state"
    )
    for kind, psa_id, value_id, state in rows:
        k = ReferenceKind(kind)
        index.local.setdefault(k, {})[psa_id] = value_id
        index.state.setdefault(k, {})[psa_id] = SyncState(state)
    return index


async def sync_reference_data(
    integration: Integration,
    lists: Mapping[ReferenceKind, list[PsaReference]],
    *,
    dry_run: bool = False,
) -> ReferenceIndex:
    """Bring the account's values and this integration's mappings in line with the PSA."""
    if dry_run:
        index = await load_index(integration)
        for kind, refs in lists.items():
            for ref in refs:  # unknown values would arrive disabled: out of scope
                index.state.setdefault(kind, {}).setdefault(ref.psa_id, SyncState.DISABLED)
        return index

    async with in_transaction():
        values = {
            (v.kind, v.name.casefold()): v
            for v in await ReferenceValue.filter(account_id=integration.account_id)  # type: ignore[attr-defined]
        }
        mappings = {
            (m.kind, m.psa_id): m
            for m in await ReferenceMapping.filter(integration_id=integration.id)
        }
        mapped_values = {m.value_id for m in mappings.values()}  # type: ignore[attr-defined]
        for kind, refs in lists.items():
            seen: set[int] = set()
            listed = {ref.psa_id for ref in refs}
            # Values the PSA no longer lists under their id, by name: one listed again under
            # a new id is the same value (a switch from SOAP's name-derived ids to REST's real
            # ones): it keeps its mapping and its ENABLED/DISABLED state, so scope holds.
            unlisted = {
                m.psa_name.casefold(): m
                for (k, psa_id), m in mappings.items()
                if k == kind and psa_id not in listed
            }
            for ref in refs:
                seen.add(ref.psa_id)
                reason = unstorable(ref.name, NAME_MAX - len(" (99)"))
                if reason is not None:  # left as it was: never stored altered
                    log.warning(
                        "%s: %s %d's name %s: not synced", integration.name, kind.value,
                        ref.psa_id, reason,
                    )  # fmt: skip
                    continue
                current = mappings.get((kind, ref.psa_id))
                renumbered = current is None and ref.name.casefold() in unlisted
                if renumbered:
                    current = unlisted.pop(ref.name.casefold())
                    del mappings[(kind, current.psa_id)]
                    current.psa_id = ref.psa_id
                    mappings[(kind, ref.psa_id)] = current
                if current is None:
                    value = values.get((kind, ref.name.casefold()))
                    if value is None or value.id in mapped_values:
                        value = await ReferenceValue.create(
                            account_id=integration.account_id,  # type: ignore[attr-defined]
                            kind=kind,
                            name=_free_name(values, kind, ref.name),
                        )
                        values[(kind, value.name.casefold())] = value
                    mapped_values.add(value.id)
                    mappings[(kind, ref.psa_id)] = await ReferenceMapping.create(
                        integration_id=integration.id,
                        value_id=value.id,
                        kind=kind,
                        psa_id=ref.psa_id,
                        psa_name=ref.name,
                        sync_state=SyncState.DISABLED,
                    )
                    continue
                changed: list[str] = ["psa_id"] if renumbered else []
                if current.psa_name != ref.name:
                    await _rename(values, current, kind, ref.name)
                    current.psa_name = ref.name
                    changed.append("psa_name")
                if current.sync_state == SyncState.NOT_CONNECTED:
                    current.sync_state = SyncState.DISABLED
                    changed.append("sync_state")
                if changed:
                    await current.save(update_fields=[*changed, "updated_at"])
            for (k, psa_id), mapping in mappings.items():
                if (
                    k == kind
                    and psa_id not in seen
                    and mapping.sync_state != SyncState.NOT_CONNECTED
                ):
                    mapping.sync_state = SyncState.NOT_CONNECTED
                    await mapping.save(update_fields=["sync_state", "updated_at"])
    return await load_index(integration)


def _free_name(
    values: Mapping[tuple[ReferenceKind, str], ReferenceValue], kind: ReferenceKind, name: str
) -> str:
    candidate, n = name, 2
    while (kind, candidate.casefold()) in values:
        candidate, n = f"{name} ({n})", n + 1
    return candidate


async def _rename(
    values: dict[tuple[ReferenceKind, str], ReferenceValue],
    mapping: ReferenceMapping,
    kind: ReferenceKind,
    new_name: str,
) -> None:
    if (kind, new_name.casefold()) in values:
        return  # the name is taken locally: keep ours rather than merge two values
    value = await ReferenceValue.get(id=mapping.value_id)  # type: ignore[attr-defined]
    values.pop((kind, value.name.casefold()), None)
    value.name = new_name
    await value.save(update_fields=["name"])
    values[(kind, new_name.casefold())] = value


class UnknownReferenceError(ValueError):
    pass


async def set_sync_state(
    integration: Integration, kind: ReferenceKind, names: Iterable[str], state: SyncState
) -> list[str]:
    """Enable or disable values by name (case-insensitive). Returns the names changed."""
    wanted = {name.casefold(): name for name in names}
    mappings = await ReferenceMapping.filter(integration_id=integration.id, kind=kind)
    by_name = {m.psa_name.casefold(): m for m in mappings}
    unknown = sorted(original for key, original in wanted.items() if key not in by_name)
    if unknown:
        known = ", ".join(sorted(m.psa_name for m in mappings)) or "none yet"
        raise UnknownReferenceError(
            f"unknown {kind.value.replace('_', ' ')}: {', '.join(unknown)} (known: {known})"
        )
    changed = []
    for key in wanted:
        mapping = by_name[key]
        if mapping.sync_state != state and mapping.sync_state != SyncState.NOT_CONNECTED:
            mapping.sync_state = state
            await mapping.save(update_fields=["sync_state", "updated_at"])
            changed.append(mapping.psa_name)
    return changed
