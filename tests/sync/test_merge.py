"""The merge core: table tests for each direction and policy, and properties that must hold
for any edits on either side (Hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.merge import Clocks, Direction, Directions, Plan, Policy, Rule, Side, merge

KIND = "organization"
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def two_way(policy: Policy = Policy.PSA_WINS) -> Directions:
    return Directions(default=Rule(Direction.TWO_WAY, policy))


def one(base: Any, local: Any, psa: Any, directions: Directions, **clocks: Any) -> Plan:
    return merge(KIND, {"name": base}, {"name": local}, {"name": psa}, directions,
                 Clocks(**clocks))  # fmt: skip


@pytest.mark.parametrize(
    ("base", "local", "psa", "to_local", "to_psa"),
    [
        ("A", "A", "A", {}, {}),
        ("A", "A", "P", {"name": "P"}, {}),  # changed only in the PSA: applied locally
        ("A", "L", "A", {}, {"name": "L"}),  # changed only locally: pushed
        ("A", "X", "X", {}, {}),  # the same change on both sides: nothing to do
        ("A", "L", "P", {"name": "P"}, {}),  # a conflict: PSA_WINS by default
    ],
)
def test_two_way_three_way_merge(
    base: str, local: str, psa: str, to_local: dict[str, str], to_psa: dict[str, str]
) -> None:
    plan = one(base, local, psa, two_way())
    assert (plan.local, plan.psa) == (to_local, to_psa)


@pytest.mark.parametrize(
    ("policy", "local", "psa", "winner", "clocks"),
    [
        (Policy.PSA_WINS, "L", "P", Side.PSA, {}),
        (Policy.LOCAL_WINS, "L", "P", Side.LOCAL, {}),
        (Policy.PREFER_PSA_UNLESS_BLANK, "L", "P", Side.PSA, {}),
        (Policy.PREFER_PSA_UNLESS_BLANK, "L", "", Side.LOCAL, {}),
        (Policy.PREFER_PSA_UNLESS_BLANK, "L", None, Side.LOCAL, {}),
        (Policy.MANUAL, "L", "P", None, {}),
        # NEWEST_WINS: the later change wins, outside the clock-skew tolerance...
        (Policy.NEWEST_WINS, "L", "P", Side.LOCAL,
         {"psa_changed_at": T0, "local_changed_at": {"name": T0 + timedelta(minutes=1)}}),
        (Policy.NEWEST_WINS, "L", "P", Side.PSA,
         {"psa_changed_at": T0 + timedelta(minutes=1), "local_changed_at": {"name": T0}}),
        # ...and inside it, or without a time, the integration's tie-breaker decides.
        (Policy.NEWEST_WINS, "L", "P", Side.PSA,
         {"psa_changed_at": T0, "local_changed_at": {"name": T0 + timedelta(seconds=2)}}),
        (Policy.NEWEST_WINS, "L", "P", Side.LOCAL,
         {"psa_changed_at": T0, "local_changed_at": {"name": T0 + timedelta(seconds=2)},
          "tie": Side.LOCAL}),
        (Policy.NEWEST_WINS, "L", "P", Side.PSA, {"local_changed_at": {"name": T0}}),
    ],
)  # fmt: skip
def test_conflict_policies(
    policy: Policy, local: Any, psa: Any, winner: Side | None, clocks: dict[str, Any]
) -> None:
    plan = one("A", local, psa, two_way(policy), **clocks)
    (conflict,) = plan.conflicts
    assert (conflict.base, conflict.local, conflict.psa) == ("A", local, psa)
    assert conflict.policy == policy
    assert conflict.winner == winner
    if winner == Side.PSA:
        assert (plan.local, plan.psa, plan.base["name"]) == ({"name": psa}, {}, psa)
    elif winner == Side.LOCAL:
        assert (plan.local, plan.psa, plan.base["name"]) == ({}, {"name": local}, local)
    else:  # MANUAL: both sides untouched, the base too, until someone decides
        assert (plan.local, plan.psa, plan.base["name"]) == ({}, {}, "A")


@pytest.mark.parametrize(
    ("direction", "to_local", "to_psa"),
    [
        (Direction.PSA_TO_LOCAL, {"name": "P"}, {}),  # one-way: the PSA wins, local edits too
        (Direction.LOCAL_TO_PSA, {}, {"name": "L"}),  # psasync is the source of truth
        (Direction.NONE, {}, {}),
    ],
)
def test_one_directional_fields(
    direction: Direction, to_local: dict[str, str], to_psa: dict[str, str]
) -> None:
    plan = one("A", "L", "P", Directions(default=Rule(direction)))
    assert (plan.local, plan.psa, plan.conflicts) == (to_local, to_psa, [])


def test_field_overrides_kind_overrides_integration_and_fixed_rules_override_all() -> None:
    directions = Directions(
        default=Rule(Direction.PSA_TO_LOCAL),
        kinds={"location": Rule(Direction.TWO_WAY)},
        fields={("location", "city"): Rule(Direction.LOCAL_TO_PSA),
                ("location", "phone"): Rule(Direction.LOCAL_TO_PSA)},
        fixed={("location", "phone"): Rule(Direction.PSA_TO_LOCAL)},
    )  # fmt: skip
    assert directions.rule("organization", "name").direction == Direction.PSA_TO_LOCAL
    assert directions.rule("location", "name").direction == Direction.TWO_WAY
    assert directions.rule("location", "city").direction == Direction.LOCAL_TO_PSA
    assert directions.rule("location", "phone").direction == Direction.PSA_TO_LOCAL


def test_the_two_way_checkbox_is_a_preset() -> None:
    fixed = {("location", "phone"): Rule(Direction.PSA_TO_LOCAL)}
    assert Directions.preset(False).rule(KIND, "name") == Rule(Direction.PSA_TO_LOCAL)
    on = Directions.preset(True, fixed)
    assert on.rule(KIND, "name") == Rule(Direction.TWO_WAY, Policy.PSA_WINS)
    assert on.rule("location", "phone") == Rule(Direction.PSA_TO_LOCAL)


def test_a_field_missing_from_the_base_counts_as_changed_on_both_sides() -> None:
    plan = merge(KIND, {}, {"name": "L"}, {"name": "P"}, two_way(Policy.LOCAL_WINS))
    assert plan.psa == {"name": "L"}
    plan = merge(KIND, {}, {"name": "X"}, {"name": "X"}, two_way())
    assert plan.empty
    assert plan.base == {"name": "X"}


# -- properties ---------------------------------------------------------------------------

FIELDS = ("name", "short_name", "notes")
values = st.one_of(st.none(), st.sampled_from(["", "a", "b", "c"]))
records = st.fixed_dictionaries({f: values for f in FIELDS})
policies = st.sampled_from(list(Policy))
directions_st = st.builds(
    lambda default, per_field: Directions(
        default=default, fields={(KIND, f): r for f, r in per_field.items()}
    ),
    st.builds(Rule, st.sampled_from(list(Direction)), policies),
    st.dictionaries(
        st.sampled_from(FIELDS), st.builds(Rule, st.sampled_from(list(Direction)), policies)
    ),
)


def apply(
    plan: Plan, local: dict[str, Any], psa: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return {**local, **plan.local}, {**psa, **plan.psa}, plan.base


@given(base=records, local=records, psa=records, directions=directions_st)
def test_merging_again_changes_nothing(
    base: dict[str, Any], local: dict[str, Any], psa: dict[str, Any], directions: Directions
) -> None:
    first = merge(KIND, base, local, psa, directions)
    local2, psa2, base2 = apply(first, local, psa)
    again = merge(KIND, base2, local2, psa2, directions)
    assert again.local == {}
    assert again.psa == {}
    # Only MANUAL conflicts are still open, and they are the same ones.
    parked = {c.field for c in first.conflicts if c.winner is None}
    assert {c.field for c in again.conflicts} == parked
    assert all(c.winner is None for c in again.conflicts)


@given(base=records, local=records, psa=records, directions=directions_st)
def test_two_way_fields_converge_unless_parked_for_review(
    base: dict[str, Any], local: dict[str, Any], psa: dict[str, Any], directions: Directions
) -> None:
    plan = merge(KIND, base, local, psa, directions)
    local2, psa2, _ = apply(plan, local, psa)
    parked = {c.field for c in plan.conflicts if c.winner is None}
    for name in FIELDS:
        if directions.rule(KIND, name).direction == Direction.NONE or name in parked:
            continue
        assert local2[name] == psa2[name], name


@given(base=records, local=records, psa=records, directions=directions_st)
def test_a_one_sided_change_is_never_lost(
    base: dict[str, Any], local: dict[str, Any], psa: dict[str, Any], directions: Directions
) -> None:
    local2, psa2, _ = apply(merge(KIND, base, local, psa, directions), local, psa)
    for name in FIELDS:
        if directions.rule(KIND, name).direction != Direction.TWO_WAY:
            continue
        if local[name] != base[name] and psa[name] == base[name]:
            assert psa2[name] == local[name]  # pushed
        if psa[name] != base[name] and local[name] == base[name]:
            assert local2[name] == psa[name]  # pulled


@given(
    base=records,
    edits=st.lists(st.tuples(st.sampled_from(list(Side)), st.sampled_from(FIELDS), values),
                   max_size=12),
    policy=st.sampled_from([p for p in Policy if p != Policy.MANUAL]),
)  # fmt: skip
def test_any_interleaving_of_edits_and_syncs_ends_in_agreement(
    base: dict[str, Any], edits: list[tuple[Side, str, Any]], policy: Policy
) -> None:
    directions = two_way(policy)
    local, psa, agreed = dict(base), dict(base), dict(base)
    for i, (side, name, value) in enumerate(edits):
        (local if side == Side.LOCAL else psa)[name] = value
        if i % 3 == 2:  # a sync now and then, between edits
            local, psa, agreed = apply(merge(KIND, agreed, local, psa, directions), local, psa)
    local, psa, agreed = apply(merge(KIND, agreed, local, psa, directions), local, psa)
    assert local == psa == agreed
