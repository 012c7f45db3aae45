"""The merge core: three-way, per field, with directions and conflict policies as data.

Pure: plain values in, a plan out. No ORM, no HTTP, and no clock but the times it is given.

For each field the link's snapshot is the base (the value both sides agreed on at the last
sync). With ``TWO_WAY``:

    changed only in the PSA            → apply it locally
    changed only locally               → push it
    changed on both sides, same value  → nothing (the base moves on)
    changed on both sides, different   → a conflict, settled by the field's policy

``PSA_TO_LOCAL`` makes the PSA's value win whatever happened locally (one-way sync);
``LOCAL_TO_PSA`` pushes the local value whatever happened in the PSA; ``NONE`` leaves the
field alone. Direction is set at three levels, each overriding the one above: integration,
asset kind, field (``Directions``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Direction(StrEnum):
    PSA_TO_LOCAL = "PSA_TO_LOCAL"
    LOCAL_TO_PSA = "LOCAL_TO_PSA"
    TWO_WAY = "TWO_WAY"
    NONE = "NONE"


class Policy(StrEnum):
    PSA_WINS = "PSA_WINS"  # IT Glue's behaviour
    LOCAL_WINS = "LOCAL_WINS"
    NEWEST_WINS = "NEWEST_WINS"
    PREFER_PSA_UNLESS_BLANK = "PREFER_PSA_UNLESS_BLANK"
    MANUAL = "MANUAL"


class Side(StrEnum):
    PSA = "PSA"
    LOCAL = "LOCAL"


@dataclass(frozen=True)
class Rule:
    direction: Direction
    policy: Policy = Policy.PSA_WINS


@dataclass(frozen=True)
class Directions:
    """Direction and policy per integration, overridden per asset kind, then per field.

    ``fixed`` holds what no setting overrides (e.g. ConnectWise site phone and fax flow from
    the PSA only).
    """

    default: Rule
    kinds: Mapping[str, Rule] = field(default_factory=dict)
    fields: Mapping[tuple[str, str], Rule] = field(default_factory=dict)
    fixed: Mapping[tuple[str, str], Rule] = field(default_factory=dict)

    def rule(self, kind: str, name: str) -> Rule:
        key = (kind, name)
        if key in self.fixed:
            return self.fixed[key]
        if key in self.fields:
            return self.fields[key]
        return self.kinds.get(kind, self.default)

    @classmethod
    def preset(
        cls, two_way: bool, fixed: Mapping[tuple[str, str], Rule] | None = None
    ) -> Directions:
        """The seeds' two-way checkbox: off is one-way (PSA wins, read-only locally); on is
        two-way with the PSA winning conflicts, as IT Glue does."""
        rule = Rule(Direction.TWO_WAY, Policy.PSA_WINS) if two_way else Rule(Direction.PSA_TO_LOCAL)
        return cls(default=rule, fixed=dict(fixed or {}))


@dataclass(frozen=True)
class Clocks:
    """When each side last changed, for NEWEST_WINS. ``tie`` settles changes closer together
    than ``skew`` (clocks of two systems never agree exactly) or whose time is unknown."""

    psa_changed_at: datetime | None = None
    local_changed_at: Mapping[str, datetime] = field(default_factory=dict)
    skew: timedelta = timedelta(seconds=5)
    tie: Side = Side.PSA


@dataclass(frozen=True)
class Conflict:
    field: str
    base: Any
    local: Any
    psa: Any
    policy: Policy
    winner: Side | None  # None: parked for a person to decide (MANUAL)


@dataclass
class Plan:
    """What to do: values to write locally, values to push, the next base, the conflicts."""

    local: dict[str, Any] = field(default_factory=dict)
    psa: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.local or self.psa or self.conflicts)


def blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def merge(
    kind: str,
    base: Mapping[str, Any],
    local: Mapping[str, Any],
    psa: Mapping[str, Any],
    directions: Directions,
    clocks: Clocks | None = None,
) -> Plan:
    """Merge one record. ``base`` may lack a field (a link made before it was synced): the
    two sides then count as both changed when they differ."""
    clocks = clocks or Clocks()
    plan = Plan(base=dict(base))
    for name in sorted(set(local) | set(psa)):
        rule = directions.rule(kind, name)
        if rule.direction == Direction.NONE:
            continue
        ours, theirs = local.get(name), psa.get(name)
        if rule.direction == Direction.PSA_TO_LOCAL:
            _take(plan, name, ours, theirs, Side.PSA)
            continue
        if rule.direction == Direction.LOCAL_TO_PSA:
            _take(plan, name, ours, theirs, Side.LOCAL)
            continue
        known = name in base
        was = base.get(name)
        local_changed = not known or ours != was
        psa_changed = not known or theirs != was
        if ours == theirs:
            plan.base[name] = ours
        elif psa_changed and not local_changed:
            _take(plan, name, ours, theirs, Side.PSA)
        elif local_changed and not psa_changed:
            _take(plan, name, ours, theirs, Side.LOCAL)
        else:
            winner = _settle(rule.policy, name, ours, theirs, clocks)
            plan.conflicts.append(Conflict(name, was, ours, theirs, rule.policy, winner))
            if winner is not None:
                _take(plan, name, ours, theirs, winner)
    return plan


def _take(plan: Plan, name: str, ours: Any, theirs: Any, winner: Side) -> None:
    value = theirs if winner == Side.PSA else ours
    plan.base[name] = value
    if ours == theirs:
        return
    if winner == Side.PSA:
        plan.local[name] = value
    else:
        plan.psa[name] = value


def _settle(policy: Policy, name: str, ours: Any, theirs: Any, clocks: Clocks) -> Side | None:
    if policy == Policy.PSA_WINS:
        return Side.PSA
    if policy == Policy.LOCAL_WINS:
        return Side.LOCAL
    if policy == Policy.PREFER_PSA_UNLESS_BLANK:
        return Side.LOCAL if blank(theirs) and not blank(ours) else Side.PSA
    if policy == Policy.NEWEST_WINS:
        local_at = clocks.local_changed_at.get(name)
        if clocks.psa_changed_at is None or local_at is None:
            return clocks.tie
        if abs(clocks.psa_changed_at - local_at) <= clocks.skew:
            return clocks.tie
        return Side.PSA if clocks.psa_changed_at > local_at else Side.LOCAL
    return None  # MANUAL: both sides stay as they are until someone decides
