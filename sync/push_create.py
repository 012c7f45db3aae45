"""Records the PSA does not have yet: check, match, then create or link.

Used by the deliverer (a record saved under two-way sync) and by push-all. For each record:

    contacts not synced, or a directory contact    → skip (with the reason)
      without the integration's contact attributes
    type or status not synced, organization not    → skip
      in this PSA
    the PSA's required fields missing              → skip ("missing_required_field")
    linked since it was queued (a pull or a notice → nothing to create ("linked_meanwhile");
      matched what an earlier attempt created)       its values go as an update
    one PSA record with the same match key         → link to it (then push our values)
    none                                           → create it in the PSA
    several                                        → ambiguous_match, nothing done

Matching asks the provider for candidates in one batch per page, then compares exact match
keys here, the same keys a pull uses (features.md §A5). Planning makes no local writes and
no PSA writes, so a dry run is the plan itself. ``record_outcomes`` and ``write_created``
then turn what was created or matched into links, in one transaction holding the push lease.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from models import (
    ASSET_MODELS,
    AssetKind,
    ChangeSource,
    ContactSource,
    Integration,
    LinkState,
    Location,
    OutboxEntry,
    OutboxOperation,
    PushState,
    RecordLink,
    ReferenceKind,
    ReferenceMapping,
    ReferenceValue,
    SyncState,
    match_keys,
)
from models.bulk import insert_rows, lock_rows
from models.text import column_limits, first_unstorable
from sync import history
from sync.columns import as_uuid, stamps
from sync.concurrency import gather_all
from sync.errors import PermissionDenied, RecordError
from sync.leases import Fence
from sync.providers.base import MatchProbe, PsaChange, PsaProvider, PsaRecord
from sync.push_values import Reverse, Translator, columns_of, snapshot_for
from sync.snapshot import encode

log = logging.getLogger("psasync.push")

# Which reference columns must be synced (enabled) for a record to be pushed.
SCOPED: Mapping[AssetKind, tuple[str, ...]] = {
    AssetKind.ORGANIZATION: ("organization_type_id", "organization_status_id"),
    AssetKind.CONFIGURATION: ("configuration_type_id", "configuration_status_id"),
}
ADDRESS = ("address_1", "address_2", "city", "region", "postal_code", "country")
CREATE_CONCURRENCY = 8


@dataclass
class Outcome:
    """What happens (or, in a dry run, would happen) to one record."""

    local_id: uuid.UUID
    code: str  # create | link | skip codes: type_not_syncable, ambiguous_match, …
    message: str = ""
    change: PsaChange | None = None
    match: PsaRecord | None = None  # the PSA record to link, or the one created
    candidates: list[int] = field(default_factory=list)
    # The PSA's role refused the create (403): the write denial to report.
    denied: PermissionDenied | None = None

    @property
    def acts(self) -> bool:
        return self.code in ("create", "link")


def label(kind: AssetKind, row: Mapping[str, Any]) -> str:
    if kind == AssetKind.CONTACT:
        name = " ".join(str(v) for v in (row.get("first_name"), row.get("last_name")) if v)
    else:
        name = str(row.get("name") or "")
    return f"{kind.value} {name!r}"


async def plan(
    integration: Integration,
    provider: PsaProvider,
    kind: AssetKind,
    rows: Sequence[Mapping[str, Any]],
    display_name: str,
    planned: set[uuid.UUID] | None = None,
) -> list[Outcome]:
    """Decide create, link or skip for each row (plain values of unlinked records).

    ``planned``: organizations a dry run would create: their records would be created after
    them (nothing to match: their organization is not in the PSA yet).
    """
    translator = await Translator.load(integration, rows)
    states = {
        as_uuid(v): SyncState(s)
        for v, s in await ReferenceMapping.filter(integration_id=integration.id).values_list(
            "value_id", "sync_state"
        )
    }
    names = dict(
        await ReferenceMapping.filter(integration_id=integration.id).values_list(
            "value_id", "psa_name"
        )
    )
    # A value only another PSA lists (ConnectWise's "Client" when pushing to Pulseway) has no
    # mapping here: name it by its local name, not its id, in the type_not_syncable message.
    known = ReferenceValue.filter(account_id=integration.account_id)  # type: ignore[attr-defined]
    names = {**dict(await known.values_list("id", "name")), **names}
    addresses = await _addresses(kind, rows)
    columns = columns_of(integration, kind)
    outcomes: list[Outcome] = []
    eligible: list[tuple[Mapping[str, Any], Outcome]] = []
    linked = await _linked_meanwhile(integration, kind, rows)
    for row in rows:
        local_id = as_uuid(row["id"])
        if local_id in linked:
            # Linked since it was queued (a pull or a notice matched the PSA record an
            # earlier attempt created): nothing to create; its values go as an update.
            outcomes.append(Outcome(local_id, "linked_meanwhile", match=linked[local_id]))
            continue
        reason = _out_of_scope(integration, kind, row, states, names, translator, display_name)
        if (
            reason is not None
            and reason[0] == "organization_not_synced"
            and planned is not None
            and row.get("organization_id") is not None
            and as_uuid(row["organization_id"]) in planned
        ):
            outcomes.append(Outcome(local_id, "create", "after its organization"))
            continue
        if reason is not None:
            outcomes.append(Outcome(local_id, reason[0], reason[1]))
            continue
        change, _ = translator.change(kind, row, columns)
        if kind == AssetKind.ORGANIZATION:
            change.address = addresses.get(local_id)
        if kind == AssetKind.CONTACT and row.get("source") == ContactSource.DIRECTORY:
            _type_methods(integration, change)
        missing = provider.missing_for_create(kind, change)
        if missing:
            outcomes.append(
                Outcome(
                    local_id,
                    "missing_required_field",
                    f"{label(kind, row)} cannot be created in {display_name} without "
                    f"{', '.join(missing)}",
                )
            )
            continue
        outcome = Outcome(local_id, "create", change=change)
        outcomes.append(outcome)
        eligible.append((row, outcome))
    if eligible:
        await _match(integration, provider, kind, eligible, display_name)
    return outcomes


async def execute(
    provider: PsaProvider, kind: AssetKind, outcomes: Sequence[Outcome], display_name: str
) -> None:
    """Create the records planned for creation (bounded concurrency); a refusal turns the
    outcome into ``psa_error`` with the PSA's message (a 403 too: ``Outcome.denied``).
    Retriable errors propagate."""
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def create(outcome: Outcome) -> None:
        assert outcome.change is not None
        async with gate:
            try:
                outcome.match = await provider.create_record(kind, outcome.change)
            except (RecordError, PermissionDenied) as exc:
                # A 403 is no outage: sent again, it is refused again until the role changes.
                outcome.code = "psa_error"
                outcome.message = f"{display_name} refused the record: {exc.message}"
                if isinstance(exc, PermissionDenied):
                    outcome.denied = exc

    await gather_all(*(create(o) for o in outcomes if o.code == "create"))


def _out_of_scope(
    integration: Integration,
    kind: AssetKind,
    row: Mapping[str, Any],
    states: Mapping[uuid.UUID, SyncState],
    names: Mapping[Any, str],
    translator: Translator,
    display_name: str,
) -> tuple[str, str] | None:
    what = label(kind, row)
    if kind == AssetKind.CONTACT and not integration.contacts_enabled:
        return "contacts_not_synced", f"contact sync is off for {integration.name}"
    if (
        kind == AssetKind.CONTACT
        and row.get("source") == ContactSource.DIRECTORY
        and not (integration.contact_email_type and integration.contact_phone_type)
    ):
        return (
            "contact_attributes_not_set",
            f"{what} came from the directory: set the integration's contact attributes "
            "(email type and phone type) to push directory contacts",
        )
    for column in SCOPED.get(kind, ()):
        value = row.get(column)
        if value is not None and states.get(as_uuid(value)) != SyncState.ENABLED:
            name = names.get(as_uuid(value)) or names.get(str(value)) or str(value)
            return (
                "type_not_syncable",
                f"{what}: {column.removesuffix('_id').replace('_', ' ')} {name!r} is not "
                f"synced with {integration.name}",
            )
    if kind != AssetKind.ORGANIZATION and (
        translator.psa_id(AssetKind.ORGANIZATION, row.get("organization_id")) is None
    ):
        return (
            "organization_not_synced",
            f"{what}: its organization is not in {display_name} yet (push the organization first)",
        )
    return None


async def _linked_meanwhile(
    integration: Integration, kind: AssetKind, rows: Sequence[Mapping[str, Any]]
) -> dict[uuid.UUID, PsaRecord]:
    """The rows that have a PSA record now (their link's PSA id, as a bare record)."""
    found = await RecordLink.filter(
        integration_id=integration.id,
        kind=kind,
        local_id__in=[row["id"] for row in rows],
        psa_id__isnull=False,
    ).values_list("local_id", "psa_id", "psa_parent_id")
    return {
        as_uuid(local_id): PsaRecord(int(psa_id), None, {}, parent_psa_id=parent)
        for local_id, psa_id, parent in found
    }


def _type_methods(integration: Integration, change: PsaChange) -> None:
    """Directory contacts take the integration's contact attributes as their PSA types."""
    for column, kind in (
        ("emails", integration.contact_email_type),
        ("phones", integration.contact_phone_type),
    ):
        entries = change.values.get(column)
        if entries:
            change.values[column] = [{**e, "type": kind} for e in entries]


async def _addresses(
    kind: AssetKind, rows: Sequence[Mapping[str, Any]]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Organizations' primary location addresses, with the location's ``name`` (a PSA may
    keep the address on the company, or create the company with its first location)."""
    if kind != AssetKind.ORGANIZATION:
        return {}
    primary = {
        as_uuid(r["primary_location_id"]): as_uuid(r["id"])
        for r in rows
        if r.get("primary_location_id")
    }
    if not primary:
        return {}
    found = await Location.filter(id__in=list(primary)).values("id", "name", *ADDRESS)
    return {
        primary[as_uuid(row["id"])]: {c: row[c] for c in ("name", *ADDRESS) if row.get(c)}
        for row in found
    }


def _probe(kind: AssetKind, change: PsaChange, row: Mapping[str, Any]) -> MatchProbe:
    types = (
        change.codes.get(ReferenceKind.CONFIGURATION_TYPE, ())
        if kind == AssetKind.CONFIGURATION
        else ()
    )
    return MatchProbe(
        name=row.get("name"),
        first_name=row.get("first_name"),
        last_name=row.get("last_name"),
        parent_psa_id=change.parent_psa_id,
        type_psa_id=types[0] if types else None,
    )


async def _match(
    integration: Integration,
    provider: PsaProvider,
    kind: AssetKind,
    eligible: list[tuple[Mapping[str, Any], Outcome]],
    display_name: str,
) -> None:
    probes = [_probe(kind, o.change or PsaChange(), row) for row, o in eligible]
    found = await provider.find_matches(kind, probes)
    # Read after the PSA answered: a notice or a pull may have linked one of these records
    # meanwhile (the create of an earlier attempt whose answer was lost, say).
    taken: dict[int, uuid.UUID] = {
        int(psa_id): as_uuid(local_id)
        for psa_id, local_id in await RecordLink.filter(
            integration_id=integration.id,
            kind=kind,
            psa_id__in=[r.psa_id for r in found],
            state__in=[LinkState.SYNCED, LinkState.ORPHANED],
        ).values_list("psa_id", "local_id")
    }
    reverse = await Reverse.load(integration, found)
    by_key: dict[str, list[PsaRecord]] = {}
    for record in found:
        if record.psa_id in taken:
            continue
        values = reverse.local_values(kind, record)
        by_key.setdefault(match_keys.for_values(kind.value, values), []).append(record)
    mine = {local_id: psa_id for psa_id, local_id in taken.items()}
    records = {record.psa_id: record for record in found}
    claimed: dict[int, uuid.UUID] = {}
    for row, outcome in eligible:
        linked = mine.get(outcome.local_id)
        if linked is not None:  # linked to this very record already: nothing to create
            outcome.code = "link"
            outcome.match = records[linked]
            continue
        candidates = by_key.get(str(row.get("match_key") or ""), [])
        if len(candidates) == 1 and candidates[0].psa_id not in claimed:
            outcome.code = "link"
            outcome.match = candidates[0]
            claimed[candidates[0].psa_id] = outcome.local_id
        elif candidates:
            ids = sorted(c.psa_id for c in candidates)
            outcome.code = "ambiguous_match"
            outcome.candidates = ids
            what = (
                f"matches {len(ids)} records in {display_name} (ids {', '.join(map(str, ids))})"
                if len(ids) > 1
                else f"matches {display_name} record {ids[0]}, which another local record "
                "matches too"
            )
            outcome.message = (
                f"{label(kind, row)} {what}; nothing was pushed. Remove the duplicates, "
                "then save the record again."
            )
    limits = column_limits(ASSET_MODELS[kind])
    for row, outcome in eligible:
        bad = first_unstorable(outcome.match.values, limits) if outcome.match else None
        if outcome.code == "link" and outcome.match is not None and bad is not None:
            # Linking would store its value altered or fail the write: leave it to the user.
            outcome.code = "unstorable_match"
            outcome.message = (
                f"{label(kind, row)} matches {display_name} record {outcome.match.psa_id}, "
                f"whose {bad[0]} {bad[1]}; nothing was pushed. Correct it in {display_name}, "
                "then save the record again."
            )
            outcome.match = None


# ------------------------------------------------------------------- recording outcomes


@dataclass
class Created:
    """Links (and local values the PSA normalised) from create/link outcomes, written by
    ``write_created``."""

    new_links: list[dict[str, Any]] = field(default_factory=list)
    not_pushed: list[dict[str, Any]] = field(default_factory=list)
    replaced: dict[AssetKind, list[uuid.UUID]] = field(default_factory=lambda: defaultdict(list))
    # kind → local id → column → (value sent, value the PSA stored)
    normalised: dict[AssetKind, dict[uuid.UUID, dict[str, tuple[Any, Any]]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    followups: list[OutboxEntry] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    member: str | None = None


async def record_outcomes(
    integration: Integration,
    kind: AssetKind,
    outcomes: Sequence[Outcome],
    rows: dict[uuid.UUID, dict[str, Any]],
    created: Created,
    now: datetime,
) -> None:
    """Turn create/link/skip outcomes into link rows (written by ``write_created``).

    A created record's base is what the PSA stored, and our record takes the PSA's form of
    any value it normalised. A linked (matched) record's base is the PSA record as found, and
    an UPDATE follows to push our values: the user asked for this record to be pushed.
    """
    acted = [o for o in outcomes if o.code in ("create", "link") and o.match is not None]
    reverse = await Reverse.load(integration, [o.match for o in acted if o.match is not None])
    # A NOT_PUSHED link gives way to the new state of the record.
    created.replaced[kind].extend(o.local_id for o in outcomes if o.code != "linked_meanwhile")
    for outcome in outcomes:
        row = rows[outcome.local_id]
        if outcome.code == "linked_meanwhile":  # its link is there: our values go as an update
            created.followups.append(_update_next(integration, kind, outcome.local_id))
            continue
        if outcome.match is None or outcome.code not in ("create", "link"):
            created.not_pushed.append(
                _new_link(integration, kind, outcome.local_id, now, state=LinkState.NOT_PUSHED,
                          last_error=outcome.message or outcome.code)
            )  # fmt: skip
            continue
        record = outcome.match
        values = reverse.local_values(kind, record)
        made = outcome.code == "create"
        created.new_links.append(
            _new_link(
                integration, kind, outcome.local_id, now,
                psa_id=record.psa_id, psa_parent_id=record.parent_psa_id,
                snapshot=snapshot_for(kind, values, record), state=LinkState.SYNCED,
                push_state=PushState.NONE if made else PushState.PENDING,
                **stamps(record.updated_at, now),
            )
        )  # fmt: skip
        # Our record takes what the PSA filled in where it has nothing (a default location,
        # a status…): pushing our blank back would clear it, or be refused (Pulseway requires
        # an asset's location). A created record also takes the PSA's form of what it stored
        # (a value it normalised): otherwise the next merge would push ours back.
        adopted = {
            c: (row.get(c), v)
            for c, v in values.items()
            if c in row
            and encode(v) != encode(row.get(c))
            and ((made and c in record.values) or (row.get(c) is None and v is not None))
        }
        if adopted:
            created.normalised[kind][outcome.local_id] = adopted
        if not made:  # matched: our values go to it next
            created.followups.append(_update_next(integration, kind, outcome.local_id))
            continue
        created.member = record.updated_by or created.member
        for column in sorted(record.values):
            created.history.append(
                history.change(
                    integration.account_id,  # type: ignore[attr-defined]
                    kind, outcome.local_id, column, None, encode(record.values[column]),
                    ChangeSource.PUSH, now, actor=integration.name,
                    integration_id=integration.id,
                )
            )  # fmt: skip


async def write_created(
    integration: Integration,
    created: Created,
    fence: Fence,
    now: datetime,
    also: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Write create/link outcomes in one transaction holding the fence (``also``: the
    caller's own writes, e.g. a run's report and checkpoint)."""
    async with in_transaction():
        await fence.hold()
        # Records first, then links: the order a pull's write takes them in (``apply``), or
        # a pull linking the same record meanwhile would deadlock with this on PostgreSQL.
        touched: dict[AssetKind, set[uuid.UUID]] = defaultdict(set)
        for row in (*created.new_links, *created.not_pushed):
            touched[row["kind"]].add(row["local_id"])
        for kind, local_ids in created.replaced.items():
            touched[kind].update(local_ids)
        for kind, values in created.normalised.items():
            touched[kind].update(values)
        for kind in sorted(touched, key=lambda k: k.value):
            await lock_rows(ASSET_MODELS[kind], sorted(touched[kind], key=str))
        for kind, local_ids in created.replaced.items():
            await RecordLink.filter(
                integration_id=integration.id,
                kind=kind,
                local_id__in=local_ids,
                psa_id__isnull=True,
            ).delete()
        new_links = await _unlinked(integration, created.new_links)
        if new_links:
            await insert_rows(RecordLink, new_links)
        if created.not_pushed:
            await insert_rows(RecordLink, created.not_pushed)
        if created.followups:
            await OutboxEntry.bulk_create(created.followups)
        for kind, values in created.normalised.items():
            await _adopt(kind, values, now)
        if created.history:
            await history.write(created.history)
        if created.member and created.member != integration.psa_member:
            await Integration.filter(id=integration.id).update(psa_member=created.member)
            integration.psa_member = created.member
        if also is not None:
            await also()


async def _unlinked(integration: Integration, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The new links whose record and PSA record are both still unlinked: a pull or a notice
    may have linked the record just created (it matched) while its answer was on its way."""
    if not rows:
        return []
    taken = await RecordLink.filter(
        integration_id=integration.id,
        kind__in=list({r["kind"] for r in rows}),
        psa_id__isnull=False,
    ).filter(
        local_id__in=[r["local_id"] for r in rows]
    ).values_list("kind", "local_id")  # fmt: skip
    taken_local = {(str(k), str(i)) for k, i in taken}
    taken_psa = {
        (str(k), int(p))
        for k, p in await RecordLink.filter(
            integration_id=integration.id,
            kind__in=list({r["kind"] for r in rows}),
            psa_id__in=[r["psa_id"] for r in rows],
        ).values_list("kind", "psa_id")
    }
    kept = []
    for row in rows:
        kind = str(AssetKind(row["kind"]).value)
        if (kind, str(row["local_id"])) in taken_local or (kind, row["psa_id"]) in taken_psa:
            log.info("%s %s was linked while its create was answered", kind, row["local_id"])
            continue
        kept.append(row)
    return kept


async def _adopt(
    kind: AssetKind, values: dict[uuid.UUID, dict[str, tuple[Any, Any]]], now: datetime
) -> None:
    """Our records take the PSA's form of values it normalised on create, unless a user
    changed them since (then their value is pushed next)."""
    model = ASSET_MODELS[kind]
    await lock_rows(model, list(values))
    for asset in await model.filter(id__in=list(values)):
        columns = [
            c for c, (sent, _stored) in values[asset.id].items() if getattr(asset, c) == sent
        ]
        if not columns:
            continue
        for column in columns:
            setattr(asset, column, values[asset.id][column][1])
        asset.match_key = asset.compute_match_key()
        asset.version += 1
        asset.updated_at = now
        await asset.save(update_fields=[*columns, "match_key", "version", "updated_at"])


def _update_next(integration: Integration, kind: AssetKind, local_id: uuid.UUID) -> OutboxEntry:
    return OutboxEntry(
        integration_id=integration.id,
        kind=kind,
        local_id=local_id,
        operation=OutboxOperation.UPDATE,
    )


def _new_link(
    integration: Integration, kind: AssetKind, local_id: uuid.UUID, now: datetime, **values: Any
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "integration_id": integration.id,
        "kind": kind,
        "local_id": local_id,
        "settings_version": integration.settings_version,
        "created_at": now,
        "updated_at": now,
        **values,
    }
