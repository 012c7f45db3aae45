"""An integration's directions and conflict policies, from its stored settings.

Stored on ``Integration.directions`` as JSON (nothing queries it)::

    {"default": {"direction": "TWO_WAY", "policy": "NEWEST_WINS"},   # optional
     "kinds": {"contact": {"direction": "PSA_TO_LOCAL"}},
     "fields": {"configuration.notes": {"direction": "LOCAL_TO_PSA"}},
     "clock_skew_seconds": 5, "tie_breaker": "PSA"}

Without ``default``, the seeds' two-way checkbox decides (``Directions.preset``). Each
level overrides the one above; the field table's fixed exceptions (ConnectWise site phone and
fax, company types; through SOAP also what SOAP cannot write) override everything. Functions
taking ``provider`` take a provider or a ``connections.field_table`` key.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from models import AssetKind, Provider
from sync.connections import field_map, table_of
from sync.merge import Clocks, Direction, Directions, Policy, Rule, Side

DEFAULT_SKEW_SECONDS = 5
MAX_SKEW_SECONDS = 3600


class DirectionError(ValueError):
    """A direction setting that cannot be stored; ``field`` names the input."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def rule_of(raw: Mapping[str, Any], where: str) -> Rule:
    try:
        direction = Direction(raw["direction"])
        policy = Policy(raw.get("policy") or Policy.PSA_WINS)
    except (KeyError, ValueError) as exc:
        raise DirectionError(f"{where}: not a direction and policy: {dict(raw)}", where) from exc
    return Rule(direction, policy)


def rule_json(rule: Rule) -> dict[str, str]:
    return {"direction": rule.direction.value, "policy": rule.policy.value}


def fixed_rules(provider: Provider | str) -> dict[tuple[str, str], Rule]:
    fields = field_map(provider)
    return {
        (kind.value, column): Rule(Direction.PSA_TO_LOCAL)
        for kind, columns in fields.psa_to_local_only.items()
        for column in columns
    }


def directions_of(provider: Provider | str, two_way: bool, stored: Mapping[str, Any]) -> Directions:
    """The ``Directions`` an integration's settings describe."""
    preset = Directions.preset(two_way)
    default = rule_of(stored["default"], "default") if stored.get("default") else preset.default
    kinds = {k: rule_of(v, k) for k, v in (stored.get("kinds") or {}).items()}
    fields: dict[tuple[str, str], Rule] = {}
    for key, value in (stored.get("fields") or {}).items():
        kind, _, column = key.partition(".")
        fields[(kind, column)] = rule_of(value, key)
    return Directions(default=default, kinds=kinds, fields=fields, fixed=fixed_rules(provider))


def clocks_of(stored: Mapping[str, Any]) -> Clocks:
    """Skew and tie-breaker for NEWEST_WINS (the times are filled in per record)."""
    return Clocks(
        skew=timedelta(seconds=int(stored.get("clock_skew_seconds", DEFAULT_SKEW_SECONDS))),
        tie=Side(stored.get("tie_breaker") or Side.PSA),
    )


def integration_directions(integration: Any) -> Directions:
    return directions_of(
        table_of(integration), bool(integration.two_way_enabled), integration.directions or {}
    )


def pushes(directions: Directions, kind: AssetKind, column: str) -> bool:
    """Whether a local change of ``column`` goes to the PSA."""
    return directions.rule(kind.value, column).direction in (
        Direction.TWO_WAY,
        Direction.LOCAL_TO_PSA,
    )


def read_only(directions: Directions, provider: Provider | str, kind: AssetKind) -> frozenset[str]:
    """Mapped columns a linked record may not change locally: the PSA_TO_LOCAL ones."""
    return frozenset(
        column
        for column in field_map(provider).columns(kind)
        if directions.rule(kind.value, column).direction == Direction.PSA_TO_LOCAL
    )


def any_push(directions: Directions, provider: Provider | str) -> bool:
    """Whether anything at all flows to the PSA (else pulls take the one-way fast path)."""
    fields = field_map(provider)
    return any(
        pushes(directions, kind, column) for kind in AssetKind for column in fields.columns(kind)
    )


def validated(
    provider: Provider | str, stored: Mapping[str, Any], changes: Mapping[str, Any]
) -> dict[str, Any]:
    """``stored`` with ``changes`` applied, checked: known kinds and mapped fields only."""
    result: dict[str, Any] = {k: v for k, v in stored.items()}
    fields = field_map(provider)
    if "default" in changes:
        default = changes["default"]
        if default is None:
            result.pop("default", None)
        else:
            result["default"] = rule_json(rule_of(default, "default"))
    if "kinds" in changes:
        kinds = dict(result.get("kinds") or {})
        for kind, raw in (changes["kinds"] or {}).items():
            if kind not in {k.value for k in AssetKind}:
                raise DirectionError(f"no asset kind {kind!r}", "kind")
            if raw is None:
                kinds.pop(kind, None)
            else:
                kinds[kind] = rule_json(rule_of(raw, kind))
        result["kinds"] = kinds
    if "fields" in changes:
        by_field = dict(result.get("fields") or {})
        for key, raw in (changes["fields"] or {}).items():
            kind, _, column = key.partition(".")
            try:
                asset_kind = AssetKind(kind)
            except ValueError as exc:
                raise DirectionError(f"no asset kind {kind!r}", "kind") from exc
            if column not in fields.columns(asset_kind):
                mapped = ", ".join(sorted(fields.columns(asset_kind)))
                raise DirectionError(
                    f"{column!r} is not a synced field of {kind} (synced: {mapped})", "field"
                )
            if (kind, column) in fixed_rules(provider) and raw is not None:
                raise DirectionError(
                    f"{kind} {column} flows from the PSA only with this PSA; its direction "
                    "cannot be changed",
                    "field",
                )
            if raw is None:
                by_field.pop(key, None)
            else:
                by_field[key] = rule_json(rule_of(raw, key))
        result["fields"] = by_field
    if "clock_skew_seconds" in changes:
        skew = int(changes["clock_skew_seconds"])
        if not 0 <= skew <= MAX_SKEW_SECONDS:
            raise DirectionError(
                f"the clock-skew tolerance is between 0 and {MAX_SKEW_SECONDS} seconds",
                "clockSkewSeconds",
            )
        result["clock_skew_seconds"] = skew
    if "tie_breaker" in changes:
        try:
            result["tie_breaker"] = Side(changes["tie_breaker"]).value
        except ValueError as exc:
            raise DirectionError("the tie-breaker is PSA or LOCAL", "tieBreaker") from exc
    return result
