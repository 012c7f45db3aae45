"""Two-way conflicts end to end: a local edit and a ConnectWise edit meet in a pull, and each
policy and direction settles them as a user would expect (SQLite, and PostgreSQL when
configured)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from harness import Psa
from two_way_helpers import (
    a_synced_configuration,
    a_synced_organization,
    link_of,
    psa_field,
    pull,
    two_way_integration,
)

from models import (
    Account,
    AssetKind,
    Configuration,
    ConflictOutcome,
    Integration,
    Location,
    Organization,
    OutboxEntry,
    PushState,
    RecordLink,
    SyncConflict,
)
from models.outbox import json_value
from sync import local_edits
from sync.conflicts import Choice, resolve
from sync.local_edits import EditError
from sync.runner import Worker

Connect = Callable[..., Awaitable[Integration]]
ORG = AssetKind.ORGANIZATION
CONFIG = AssetKind.CONFIGURATION


def policy(name: str) -> dict[str, dict[str, str]]:
    return {"default": {"direction": "TWO_WAY", "policy": name}}


async def both_rename(
    psa: Psa, account: Account, org: Organization, psa_id: int, ours: str, theirs: str
) -> None:
    """A person renames the organization here, another renames it in ConnectWise."""
    await local_edits.update(ORG, account.id, org.id, {"name": ours}, actor="ann@msp")
    psa.store.update("companies", psa_id, {"name": theirs})


async def name_conflicts(org: Organization) -> list[SyncConflict]:
    return await SyncConflict.filter(local_id=org.id, field="name").order_by("created_at")


# ------------------------------------------------------------------------------ PSA_WINS


async def test_psa_wins_by_default_the_local_record_takes_the_psa_value_and_nothing_is_pushed(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)  # the checkbox: PSA wins
    org, psa_id = await a_synced_organization(psa, integration)
    base = org.name
    await both_rename(psa, account, org, psa_id, "Ours Ltd", "Theirs Ltd")
    writes = psa.simulator.traffic.writes

    await pull(worker, integration)
    await worker.run_until_idle()

    assert (await Organization.get(id=org.id)).name == "Theirs Ltd"
    assert psa_field(psa, "companies", psa_id, "name") == "Theirs Ltd"
    assert psa.simulator.traffic.writes == writes
    [conflict] = await name_conflicts(org)
    assert json_value(conflict.base) == base
    assert json_value(conflict.local_value) == "Ours Ltd"
    assert json_value(conflict.psa_value) == "Theirs Ltd"
    assert conflict.policy == "PSA_WINS"
    assert conflict.outcome == ConflictOutcome.PSA
    assert conflict.psa_id == psa_id
    assert (await link_of(integration, org.id)).push_state == PushState.NONE
    assert not await OutboxEntry.exists()


# ---------------------------------------------------------------------------- LOCAL_WINS


async def test_local_wins_keeps_our_value_and_pushes_it(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker, **policy("LOCAL_WINS"))
    org, psa_id = await a_synced_organization(psa, integration)
    await both_rename(psa, account, org, psa_id, "Ours Ltd", "Theirs Ltd")
    writes = psa.simulator.traffic.writes

    await pull(worker, integration)
    await worker.run_until_idle()

    assert (await Organization.get(id=org.id)).name == "Ours Ltd"
    assert psa_field(psa, "companies", psa_id, "name") == "Ours Ltd"
    assert psa.simulator.traffic.writes == writes + 1
    [conflict] = await name_conflicts(org)
    assert conflict.outcome == ConflictOutcome.LOCAL
    assert conflict.policy == "LOCAL_WINS"
    link = await link_of(integration, org.id)
    assert link.push_state == PushState.NONE
    assert link.snapshot["name"] == "Ours Ltd"


# --------------------------------------------------------------- PREFER_PSA_UNLESS_BLANK

PREFER_PSA_FOR_SERIALS = {
    "fields": {
        "configuration.serial_number": {
            "direction": "TWO_WAY",
            "policy": "PREFER_PSA_UNLESS_BLANK",
        }
    }
}


async def test_prefer_psa_unless_blank_pushes_ours_when_the_psa_blanked_the_field(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker, **PREFER_PSA_FOR_SERIALS)
    config, psa_id = await a_synced_configuration(integration, serial_number__isnull=False)
    await local_edits.update(CONFIG, account.id, config.id, {"serial_number": "SN-OURS-1"})
    psa.store.update("configurations", psa_id, {"serialNumber": None})
    writes = psa.simulator.traffic.writes

    await pull(worker, integration)
    await worker.run_until_idle()

    assert (await Configuration.get(id=config.id)).serial_number == "SN-OURS-1"
    assert psa_field(psa, "configurations", psa_id, "serialNumber") == "SN-OURS-1"
    assert psa.simulator.traffic.writes == writes + 1
    [conflict] = await SyncConflict.filter(local_id=config.id, field="serial_number")
    assert json_value(conflict.psa_value) is None
    assert conflict.outcome == ConflictOutcome.LOCAL


async def test_prefer_psa_unless_blank_takes_a_non_blank_psa_value(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker, **PREFER_PSA_FOR_SERIALS)
    config, psa_id = await a_synced_configuration(integration, serial_number__isnull=False)
    await local_edits.update(CONFIG, account.id, config.id, {"serial_number": "SN-OURS-1"})
    psa.store.update("configurations", psa_id, {"serialNumber": "SN-THEIRS-2"})
    writes = psa.simulator.traffic.writes

    await pull(worker, integration)
    await worker.run_until_idle()

    assert (await Configuration.get(id=config.id)).serial_number == "SN-THEIRS-2"
    assert psa_field(psa, "configurations", psa_id, "serialNumber") == "SN-THEIRS-2"
    assert psa.simulator.traffic.writes == writes
    [conflict] = await SyncConflict.filter(local_id=config.id, field="serial_number")
    assert conflict.outcome == ConflictOutcome.PSA


# --------------------------------------------------------------------------- NEWEST_WINS


def psa_clock(psa: Psa, offset: timedelta) -> None:
    """ConnectWise's clock runs ``offset`` from ours: its edits are stamped that far off."""
    psa.store._clock = lambda: datetime.now(UTC) + offset


async def test_newest_wins_takes_the_psa_value_when_the_psa_change_is_newer(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker, **policy("NEWEST_WINS"))
    org, psa_id = await a_synced_organization(psa, integration)
    psa_clock(psa, timedelta(hours=1))  # their edit comes an hour after ours
    await both_rename(psa, account, org, psa_id, "Ours Ltd", "Theirs Ltd")
    writes = psa.simulator.traffic.writes

    await pull(worker, integration)
    await worker.run_until_idle()

    assert (await Organization.get(id=org.id)).name == "Theirs Ltd"
    assert psa_field(psa, "companies", psa_id, "name") == "Theirs Ltd"
    assert psa.simulator.traffic.writes == writes
    [conflict] = await name_conflicts(org)
    assert (conflict.policy, conflict.outcome) == ("NEWEST_WINS", ConflictOutcome.PSA)


async def test_newest_wins_keeps_and_pushes_ours_when_the_local_change_is_newer(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker, **policy("NEWEST_WINS"))
    org, psa_id = await a_synced_organization(psa, integration)
    psa_clock(psa, -timedelta(hours=1))  # their edit an hour before ours (after the sync)
    await both_rename(psa, account, org, psa_id, "Ours Ltd", "Theirs Ltd")
    writes = psa.simulator.traffic.writes

    await pull(worker, integration)
    await worker.run_until_idle()

    assert (await Organization.get(id=org.id)).name == "Ours Ltd"
    assert psa_field(psa, "companies", psa_id, "name") == "Ours Ltd"
    assert psa.simulator.traffic.writes == writes + 1
    [conflict] = await name_conflicts(org)
    assert (conflict.policy, conflict.outcome) == ("NEWEST_WINS", ConflictOutcome.LOCAL)


async def test_newest_wins_settles_changes_within_the_clock_skew_by_the_tie_breaker(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(
        connect,
        worker,
        **policy("NEWEST_WINS"),
        clock_skew_seconds=3600,
        tie_breaker="LOCAL",
    )
    org, psa_id = await a_synced_organization(psa, integration)
    psa_clock(psa, timedelta(minutes=30))  # newer, but within the tolerated skew
    await both_rename(psa, account, org, psa_id, "Ours Ltd", "Theirs Ltd")

    await pull(worker, integration)
    await worker.run_until_idle()

    assert (await Organization.get(id=org.id)).name == "Ours Ltd"
    assert psa_field(psa, "companies", psa_id, "name") == "Ours Ltd"
    [conflict] = await name_conflicts(org)
    assert conflict.outcome == ConflictOutcome.LOCAL


# -------------------------------------------------------------------------------- MANUAL


async def a_parked_conflict(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> tuple[Integration, Organization, int, SyncConflict]:
    integration = await two_way_integration(connect, worker, **policy("MANUAL"))
    org, psa_id = await a_synced_organization(psa, integration)
    await both_rename(psa, account, org, psa_id, "Ours Ltd", "Theirs Ltd")
    await pull(worker, integration)
    await worker.run_until_idle()
    [conflict] = await name_conflicts(org)
    return integration, org, psa_id, conflict


async def test_manual_parks_the_conflict_and_leaves_both_sides_untouched(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker, **policy("MANUAL"))
    org, psa_id = await a_synced_organization(psa, integration)
    base = org.name
    await both_rename(psa, account, org, psa_id, "Ours Ltd", "Theirs Ltd")
    writes = psa.simulator.traffic.writes

    await pull(worker, integration)
    await worker.run_until_idle()

    assert (await Organization.get(id=org.id)).name == "Ours Ltd"
    assert psa_field(psa, "companies", psa_id, "name") == "Theirs Ltd"
    assert psa.simulator.traffic.writes == writes
    [conflict] = await name_conflicts(org)
    assert conflict.outcome == ConflictOutcome.OPEN
    assert conflict.policy == "MANUAL"
    assert json_value(conflict.base) == base
    assert (await link_of(integration, org.id)).snapshot["name"] == base  # base kept


async def test_a_second_pull_does_not_open_a_second_conflict_for_the_same_field(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration, org, psa_id, conflict = await a_parked_conflict(psa, connect, worker, account)
    psa.store.update("companies", psa_id, {"name": "Theirs Again Ltd"})
    writes = psa.simulator.traffic.writes

    await pull(worker, integration)
    await worker.run_until_idle()

    [still] = await name_conflicts(org)
    assert still.id == conflict.id
    assert still.outcome == ConflictOutcome.OPEN
    assert json_value(still.psa_value) == "Theirs Again Ltd"  # shows the PSA's latest
    assert (await Organization.get(id=org.id)).name == "Ours Ltd"
    assert psa.simulator.traffic.writes == writes


async def test_resolving_a_manual_conflict_with_ours_pushes_it_and_closes_the_conflict(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration, org, psa_id, conflict = await a_parked_conflict(psa, connect, worker, account)
    writes = psa.simulator.traffic.writes

    await resolve(account.id, conflict.id, Choice.LOCAL, actor="bob@msp")
    await worker.run_until_idle()

    assert psa_field(psa, "companies", psa_id, "name") == "Ours Ltd"
    assert (await Organization.get(id=org.id)).name == "Ours Ltd"
    assert psa.simulator.traffic.writes == writes + 1
    closed = await SyncConflict.get(id=conflict.id)
    assert closed.outcome == ConflictOutcome.RESOLVED
    assert closed.resolution == "LOCAL"
    assert closed.resolved_by == "bob@msp"
    await pull(worker, integration)  # and it stays settled
    await worker.run_until_idle()
    assert [c.id for c in await name_conflicts(org)] == [conflict.id]
    assert psa.simulator.traffic.writes == writes + 1


async def test_resolving_a_manual_conflict_with_the_psa_value_takes_it_and_pushes_nothing(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration, org, psa_id, conflict = await a_parked_conflict(psa, connect, worker, account)
    writes = psa.simulator.traffic.writes

    await resolve(account.id, conflict.id, Choice.PSA, actor="bob@msp")
    await worker.run_until_idle()

    assert (await Organization.get(id=org.id)).name == "Theirs Ltd"
    assert psa_field(psa, "companies", psa_id, "name") == "Theirs Ltd"
    assert psa.simulator.traffic.writes == writes
    assert (await SyncConflict.get(id=conflict.id)).outcome == ConflictOutcome.RESOLVED
    assert (await link_of(integration, org.id)).push_state == PushState.NONE


async def test_resolving_a_manual_conflict_with_a_third_value_sets_it_on_both_sides(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration, org, psa_id, conflict = await a_parked_conflict(psa, connect, worker, account)
    writes = psa.simulator.traffic.writes

    await resolve(account.id, conflict.id, Choice.VALUE, "Agreed Ltd", actor="bob@msp")
    await worker.run_until_idle()

    assert (await Organization.get(id=org.id)).name == "Agreed Ltd"
    assert psa_field(psa, "companies", psa_id, "name") == "Agreed Ltd"
    assert psa.simulator.traffic.writes == writes + 1
    closed = await SyncConflict.get(id=conflict.id)
    assert closed.resolution == "VALUE"
    assert json_value(closed.resolved_value) == "Agreed Ltd"
    assert (await link_of(integration, org.id)).push_state == PushState.NONE


# ------------------------------------------------------------------- no conflict at all


async def test_the_same_change_on_both_sides_is_no_conflict_and_writes_nothing(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker, **policy("MANUAL"))
    org, psa_id = await a_synced_organization(psa, integration)
    await both_rename(psa, account, org, psa_id, "Agreed Ltd", "Agreed Ltd")
    writes = psa.simulator.traffic.writes

    await pull(worker, integration)
    await worker.run_until_idle()

    assert not await SyncConflict.exists()
    assert psa.simulator.traffic.writes == writes
    assert (await Organization.get(id=org.id)).name == "Agreed Ltd"
    link = await link_of(integration, org.id)
    assert link.snapshot["name"] == "Agreed Ltd"
    assert link.push_state == PushState.NONE


async def test_changes_of_different_fields_on_each_side_both_end_on_both_sides(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker, **policy("MANUAL"))
    org, psa_id = await a_synced_organization(psa, integration)
    await local_edits.update(ORG, account.id, org.id, {"name": "Ours Ltd"})
    psa.store.update("companies", psa_id, {"identifier": "THEIRSID"})
    writes = psa.simulator.traffic.writes

    await pull(worker, integration)
    await worker.run_until_idle()

    local = await Organization.get(id=org.id)
    assert (local.name, local.short_name) == ("Ours Ltd", "THEIRSID")
    assert psa_field(psa, "companies", psa_id, "name") == "Ours Ltd"
    assert psa_field(psa, "companies", psa_id, "identifier") == "THEIRSID"
    assert psa.simulator.traffic.writes == writes + 1
    assert not await SyncConflict.exists()


# ------------------------------------------------------------- field-level directions


async def test_a_local_to_psa_field_overwrites_a_psa_edit_with_ours(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(
        connect, worker, fields={"organization.name": {"direction": "LOCAL_TO_PSA"}}
    )
    org, psa_id = await a_synced_organization(psa, integration)
    ours = org.name
    psa.store.update("companies", psa_id, {"name": "Edited In ConnectWise"})
    writes = psa.simulator.traffic.writes

    await pull(worker, integration)
    await worker.run_until_idle()

    assert psa_field(psa, "companies", psa_id, "name") == ours
    assert (await Organization.get(id=org.id)).name == ours
    assert psa.simulator.traffic.writes == writes + 1
    assert not await SyncConflict.exists()


async def test_a_field_set_psa_to_local_under_two_way_is_read_only_locally(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(
        connect, worker, fields={"organization.short_name": {"direction": "PSA_TO_LOCAL"}}
    )
    org, _psa_id = await a_synced_organization(psa, integration)

    with pytest.raises(EditError) as refused:
        await local_edits.update(ORG, account.id, org.id, {"short_name": "MINE"})

    assert refused.value.code == "READ_ONLY_FIELD"
    assert refused.value.fields == ("short_name",)
    assert (await Organization.get(id=org.id)).short_name == org.short_name
    await local_edits.update(ORG, account.id, org.id, {"name": "Still Editable"})  # the rest
    [entry] = await OutboxEntry.filter(local_id=org.id)
    assert entry.fields_changed == ["name"]


async def test_a_site_phone_flows_from_connectwise_only_even_under_two_way(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(connect, worker)
    link = (
        await RecordLink.filter(integration_id=integration.id, kind="location")
        .order_by("psa_id")
        .first()
    )
    assert link is not None
    location = await Location.get(id=link.local_id)

    with pytest.raises(EditError) as refused:
        await local_edits.update(AssetKind.LOCATION, account.id, location.id, {"phone": "555"})

    assert refused.value.code == "READ_ONLY_FIELD"
    assert refused.value.field == "phone"
    assert (await Location.get(id=location.id)).phone == location.phone


async def test_a_field_set_to_none_moves_in_neither_direction(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await two_way_integration(
        connect, worker, fields={"organization.name": {"direction": "NONE"}}
    )
    org, psa_id = await a_synced_organization(psa, integration)
    await local_edits.update(ORG, account.id, org.id, {"name": "Only Here Ltd"})
    psa.store.update("companies", psa_id, {"name": "Only There Ltd"})
    writes = psa.simulator.traffic.writes

    await pull(worker, integration)
    await worker.run_until_idle()

    assert (await Organization.get(id=org.id)).name == "Only Here Ltd"
    assert psa_field(psa, "companies", psa_id, "name") == "Only There Ltd"
    assert psa.simulator.traffic.writes == writes
    assert not await SyncConflict.exists()
