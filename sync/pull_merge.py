"""A pull under two-way sync: merge each changed PSA record with its local record.

The link's snapshot is the base: the values the PSA had when we last read or wrote it. The
merge core (``sync.merge``) decides per field; this module turns its plan into what the page
writes: local values, the next base, an outbox entry when something must go to the PSA,
conflicts, and field history. It reads nothing and writes nothing itself.

The next base is the PSA's current values, except for a field parked in a MANUAL conflict,
which keeps its old base: both sides stay untouched, and the conflict stays visible, until
someone resolves it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from models import (
    AssetKind,
    ChangeSource,
    ConflictOutcome,
    SyncConflict,
)
from models.outbox import json_text
from sync import history
from sync.columns import RELATIONS, as_uuid
from sync.merge import Clocks, Directions, Policy, Side, merge
from sync.providers.base import PsaRecord
from sync.snapshot import encode

LOCAL_SOURCES = (ChangeSource.USER, ChangeSource.DIRECTORY, ChangeSource.CONFLICT)


@dataclass
class Merged:
    local: dict[str, Any] = field(default_factory=dict)  # columns to write locally
    snapshot: dict[str, Any] = field(default_factory=dict)
    push: bool = False
    psa: dict[str, Any] = field(default_factory=dict)  # columns to push → encoded values
    conflicts: list[SyncConflict] = field(default_factory=list)
    reopened: dict[str, dict[str, Any]] = field(default_factory=dict)  # open conflict → values
    settled: list[str] = field(default_factory=list)  # open conflicts the sides now agree on
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MergeContext:
    """What merging one page needs to know about the integration."""

    integration_id: uuid.UUID
    account_id: uuid.UUID
    integration_name: str
    kind: AssetKind
    columns: frozenset[str]
    directions: Directions
    clocks: Clocks
    now: datetime


def uses_newest(directions: Directions) -> bool:
    rules = [directions.default, *directions.kinds.values(), *directions.fields.values()]
    return any(rule.policy == Policy.NEWEST_WINS for rule in rules)


def merge_record(
    mc: MergeContext,
    record: PsaRecord,
    values: Mapping[str, Any],
    snap: Mapping[str, Any],
    base: Mapping[str, Any],
    local: Mapping[str, Any],
    local_id: uuid.UUID,
    open_conflicts: Mapping[str, uuid.UUID],
    local_times: Mapping[str, datetime],
) -> Merged:
    """Merge one record. ``values``: the PSA record in local terms (decoded); ``snap``: the
    same encoded; ``base``: the link's snapshot; ``local``: our record's current values."""
    unresolved = {
        column
        for name, (_kind, column) in RELATIONS.items()
        if record.refs.get(name) is not None and values.get(column) is None
    }
    columns = [c for c in sorted(mc.columns) if c in snap and c not in unresolved]
    theirs = {c: snap[c] for c in columns}
    ours = {c: encode(local.get(c)) for c in columns}
    was = {c: base[c] for c in columns if c in base}
    clocks = Clocks(
        psa_changed_at=record.updated_at,
        local_changed_at=dict(local_times),
        skew=mc.clocks.skew,
        tie=mc.clocks.tie,
    )
    plan = merge(mc.kind.value, was, ours, theirs, mc.directions, clocks)
    result = Merged(snapshot=dict(snap))
    result.local = {c: values[c] for c in plan.local}
    result.push = bool(plan.psa)
    result.psa = dict(plan.psa)
    parked = set()
    for conflict in plan.conflicts:
        if conflict.winner is None:
            parked.add(conflict.field)
            result.snapshot[conflict.field] = base.get(conflict.field)
            if conflict.field in open_conflicts:
                result.reopened[conflict.field] = {
                    "local_value": json_text(conflict.local),
                    "psa_value": json_text(conflict.psa),
                }
                continue
        outcome = (
            ConflictOutcome.OPEN
            if conflict.winner is None
            else ConflictOutcome.PSA
            if conflict.winner == Side.PSA
            else ConflictOutcome.LOCAL
        )
        result.conflicts.append(
            SyncConflict(
                id=uuid.uuid4(),
                integration_id=mc.integration_id,
                kind=mc.kind,
                local_id=local_id,
                psa_id=record.psa_id,
                field=conflict.field,
                base=json_text(conflict.base),
                local_value=json_text(conflict.local),
                psa_value=json_text(conflict.psa),
                policy=conflict.policy.value,
                outcome=outcome,
            )
        )
    result.settled = [f for f in open_conflicts if f not in parked]
    for column in sorted(plan.local):
        result.history.append(
            history.change(
                mc.account_id, mc.kind, local_id, column, ours.get(column), theirs.get(column),
                ChangeSource.PSA, mc.now, actor=mc.integration_name,
                integration_id=mc.integration_id,
            )
        )  # fmt: skip
    return result


def echo_base(
    base: Mapping[str, Any], sending: Mapping[str, Any] | None, psa: Mapping[str, Any]
) -> dict[str, Any]:
    """The base for a merge of ``psa`` (encoded), knowing what psasync has sent but not yet
    recorded (``RecordLink.sending``): a field the PSA shows with one of those values holds
    psasync's own write, so that value is the base, not a change by a PSA user. Without this,
    a notice that overtakes the answer to our write would look like a PSA edit and undo a
    local edit made since."""
    if not sending:
        return dict(base)
    adjusted = dict(base)
    for column, values in sending.items():
        if column in psa and psa[column] != base.get(column) and psa[column] in values:
            adjusted[column] = psa[column]
    return adjusted


def latest_local_times(
    rows: Iterable[tuple[Any, str, datetime]],
) -> dict[uuid.UUID, dict[str, datetime]]:
    """(local id, field, time) rows of local changes → the latest time per record and field."""
    found: dict[uuid.UUID, dict[str, datetime]] = {}
    for local_id, name, at in rows:
        times = found.setdefault(as_uuid(local_id), {})
        if name not in times or at > times[name]:
            times[name] = at
    return found
