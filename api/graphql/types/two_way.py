"""Two-way sync: its settings, the outbox of pushes, conflicts, and field history.

Built from plain rows like every type. Field values (a conflict's sides, a history entry's
old and new value) are stored as JSON text and returned as the ``JSON`` scalar; column names
are shown in camelCase, as the record types name them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import strawberry
from strawberry.scalars import JSON

from api.graphql.context import Info
from api.graphql.errors import camel
from api.graphql.ids import to_global
from api.graphql.types.enums import (
    AssetKindEnum,
    ChangeSourceEnum,
    ConflictChoiceEnum,
    ConflictOutcomeEnum,
    ConflictPolicyEnum,
    DirectionEnum,
    OutboxOperationEnum,
    OutboxStatusEnum,
    SideEnum,
)
from api.graphql.types.node import Node
from models import AssetKind, ChangeSource, ConflictOutcome, OutboxOperation, OutboxStatus, Provider
from models.outbox import json_value
from sync.conflicts import Choice
from sync.directions import DEFAULT_SKEW_SECONDS, fixed_rules, rule_of
from sync.merge import Directions, Policy, Rule, Side

if TYPE_CHECKING:
    from api.graphql.types.integration import Integration

_IntegrationRef = Annotated["Integration", strawberry.lazy("api.graphql.types.integration")]


def record_id(kind: AssetKind | str, local_id: Any) -> strawberry.ID:
    """The global id of an asset (``Organization``, ``Location``, …)."""
    return strawberry.ID(to_global(AssetKind(kind).value.title(), local_id))


def stored_json(value: Any) -> Any:
    """A JSON column as rows carry it: text (kept lazy, or SQLite) or already decoded."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


async def _record(info: Info, kind: AssetKind, local_id: Any) -> Node | None:
    found = await info.context.loaders.by_kind(kind).load(local_id)
    return found  # type: ignore[no-any-return]


# -- settings ---------------------------------------------------------------------------------


@strawberry.type(description="Which way a field flows, and who wins when both sides changed.")
class DirectionRule:
    direction: DirectionEnum  # type: ignore[valid-type]
    policy: ConflictPolicyEnum  # type: ignore[valid-type]

    @classmethod
    def of(cls, rule: Rule) -> DirectionRule:
        return cls(direction=rule.direction, policy=rule.policy)


@strawberry.type(description="A direction set for every field of one asset kind.")
class KindDirection:
    kind: AssetKindEnum  # type: ignore[valid-type]
    direction: DirectionEnum  # type: ignore[valid-type]
    policy: ConflictPolicyEnum  # type: ignore[valid-type]


@strawberry.type(description="A direction set for one field.")
class FieldDirection:
    kind: AssetKindEnum  # type: ignore[valid-type]
    field: str = strawberry.field(description="As the record type names it (camelCase).")
    direction: DirectionEnum  # type: ignore[valid-type]
    policy: ConflictPolicyEnum  # type: ignore[valid-type]
    fixed: bool = strawberry.field(
        description="The PSA decides this field's direction (it only flows from the PSA); "
        "it cannot be changed."
    )


@strawberry.type(description="The Two-Way Sync Settings tab.")
class TwoWaySettings:
    enabled: bool = strawberry.field(description="The two-way checkbox (twoWayEnabled).")
    default: DirectionRule = strawberry.field(
        description="The integration-wide rule (without one set: the checkbox's preset)."
    )
    kinds: list[KindDirection]
    fields: list[FieldDirection]
    clock_skew_seconds: int = strawberry.field(
        description="NEWEST_WINS: changes closer together than this are a tie."
    )
    tie_breaker: SideEnum  # type: ignore[valid-type]
    propagate_deletes: bool
    contact_email_type: str | None = strawberry.field(
        description="The PSA email type given to new directory contacts."
    )
    contact_phone_type: str | None
    push_rate_per_minute: int


def build_two_way(
    provider: Provider | str,
    enabled: bool,
    stored: Mapping[str, Any],
    *,
    propagate_deletes: bool,
    contact_email_type: str | None,
    contact_phone_type: str | None,
    push_rate_per_minute: int,
) -> TwoWaySettings:
    preset = Directions.preset(enabled)
    default = rule_of(stored["default"], "default") if stored.get("default") else preset.default
    order = list(AssetKind)
    kinds = [
        KindDirection(kind=AssetKind(kind), direction=rule.direction, policy=rule.policy)
        for kind, rule in sorted(
            ((k, rule_of(v, k)) for k, v in (stored.get("kinds") or {}).items()),
            key=lambda item: order.index(AssetKind(item[0])),
        )
    ]
    fixed = fixed_rules(provider)
    rules: dict[tuple[str, str], tuple[Rule, bool]] = {}
    for key, value in (stored.get("fields") or {}).items():
        kind, _, column = key.partition(".")
        rules[(kind, column)] = (rule_of(value, key), False)
    for key, rule in fixed.items():
        rules[key] = (rule, True)
    fields = [
        FieldDirection(
            kind=AssetKind(kind),
            field=camel(column) or column,
            direction=rule.direction,
            policy=rule.policy,
            fixed=is_fixed,
        )
        for (kind, column), (rule, is_fixed) in sorted(
            rules.items(), key=lambda item: (order.index(AssetKind(item[0][0])), item[0][1])
        )
    ]
    return TwoWaySettings(
        enabled=enabled,
        default=DirectionRule.of(default),
        kinds=kinds,
        fields=fields,
        clock_skew_seconds=int(stored.get("clock_skew_seconds", DEFAULT_SKEW_SECONDS)),
        tie_breaker=Side(stored.get("tie_breaker") or Side.PSA),
        propagate_deletes=propagate_deletes,
        contact_email_type=contact_email_type,
        contact_phone_type=contact_phone_type,
        push_rate_per_minute=push_rate_per_minute,
    )


@strawberry.type(description="The PSA's types for new contacts' emails and phones.")
class ContactAttributeOptions:
    email: list[str]
    phone: list[str]


# -- the outbox -------------------------------------------------------------------------------


@strawberry.type(description="A local change waiting to be pushed to the PSA (or refused by it).")
class OutboxEntry:
    id: strawberry.ID
    kind: AssetKindEnum  # type: ignore[valid-type]
    record_id: strawberry.ID = strawberry.field(description="The local record's global id.")
    operation: OutboxOperationEnum  # type: ignore[valid-type]
    status: OutboxStatusEnum  # type: ignore[valid-type]
    fields_changed: list[str] = strawberry.field(
        description="The fields the edit changed (the push sends what still differs)."
    )
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None = strawberry.field(description="The PSA's answer, when it refused.")
    created_by: str | None
    created_at: datetime
    local_id: strawberry.Private[Any]

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "kind", "local_id", "operation", "status", "fields_changed", "attempts",
        "next_attempt_at", "last_error", "created_by", "created_at",
    )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OutboxEntry:
        kind = AssetKind(row["kind"])
        return cls(
            id=strawberry.ID(to_global("OutboxEntry", str(row["id"]))),
            kind=kind,
            record_id=record_id(kind, row["local_id"]),
            local_id=row["local_id"],
            operation=OutboxOperation(row["operation"]),
            status=OutboxStatus(row["status"]),
            fields_changed=[camel(c) or c for c in stored_json(row["fields_changed"]) or []],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
            created_by=row["created_by"],
            created_at=row["created_at"],
        )

    @strawberry.field(description="The local record (null once it is deleted).")
    async def record(self, info: Info) -> Node | None:
        return await _record(info, self.kind, self.local_id)


# -- conflicts --------------------------------------------------------------------------------


@strawberry.type(description="A field changed on both sides since the last sync, and how it was "
                 "settled.")  # fmt: skip
class SyncConflict(Node):
    kind: AssetKindEnum  # type: ignore[valid-type]
    record_id: strawberry.ID = strawberry.field(description="The local record's global id.")
    psa_id: int | None
    field: str = strawberry.field(description="As the record type names it (camelCase).")
    base: JSON | None = strawberry.field(description="The value both sides agreed on before.")
    local_value: JSON | None
    psa_value: JSON | None
    policy: ConflictPolicyEnum  # type: ignore[valid-type]
    outcome: ConflictOutcomeEnum  # type: ignore[valid-type]
    resolution: ConflictChoiceEnum | None  # type: ignore[valid-type]
    resolved_value: JSON | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime
    local_id: strawberry.Private[Any]
    integration_id: strawberry.Private[Any]

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "integration_id", "kind", "local_id", "psa_id", "field", "base", "local_value",
        "psa_value", "policy", "outcome", "resolution", "resolved_value", "resolved_by",
        "resolved_at", "created_at",
    )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SyncConflict:
        kind = AssetKind(row["kind"])
        return cls(
            id=strawberry.ID(to_global("SyncConflict", row["id"])),
            kind=kind,
            record_id=record_id(kind, row["local_id"]),
            local_id=row["local_id"],
            integration_id=row["integration_id"],
            psa_id=row["psa_id"],
            field=camel(row["field"]) or row["field"],
            base=json_value(row["base"]),
            local_value=json_value(row["local_value"]),
            psa_value=json_value(row["psa_value"]),
            policy=Policy(row["policy"]),
            outcome=ConflictOutcome(row["outcome"]),
            resolution=Choice(row["resolution"]) if row["resolution"] else None,
            resolved_value=json_value(row["resolved_value"]),
            resolved_by=row["resolved_by"],
            resolved_at=row["resolved_at"],
            created_at=row["created_at"],
        )

    @strawberry.field(description="The local record (null once it is deleted).")
    async def record(self, info: Info) -> Node | None:
        return await _record(info, self.kind, self.local_id)

    @strawberry.field
    async def integration(self, info: Info) -> _IntegrationRef:
        found = await info.context.loaders.integration.load(self.integration_id)
        assert found is not None  # conflicts cascade with their integration
        return found


# -- field history ----------------------------------------------------------------------------


@strawberry.type(description="One change of a field: old and new value, and who or what set it.")
class FieldChange:
    field: str = strawberry.field(description="As the record type names it (camelCase).")
    old_value: JSON | None
    new_value: JSON | None
    source: ChangeSourceEnum  # type: ignore[valid-type]
    actor: str | None = strawberry.field(
        description="Who: the user's email for USER, CONFLICT and DIRECTORY changes; the "
        "integration's name for PSA and PUSH ones."
    )
    changed_at: datetime
    integration_id: strawberry.Private[uuid.UUID | None]

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "local_id", "field", "old_value", "new_value", "source", "actor",
        "integration_id", "changed_at",
    )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> FieldChange:
        return cls(
            field=camel(row["field"]) or row["field"],
            old_value=json_value(row["old_value"]),
            new_value=json_value(row["new_value"]),
            source=ChangeSource(row["source"]),
            actor=row["actor"],
            changed_at=row["changed_at"],
            integration_id=row["integration_id"],
        )

    @strawberry.field(description="The integration the change came from or went to.")
    async def integration(self, info: Info) -> _IntegrationRef | None:
        return await info.context.loaders.integration.load(self.integration_id)
