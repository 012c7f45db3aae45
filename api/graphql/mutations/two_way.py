"""Two-way sync mutations: settings, push all, retrying refused pushes, settling conflicts,
and importing directory contacts.

Settings and push-all need the manager role and answer with ``IntegrationError``s; the
record-level actions need an editor and answer with ``TwoWayError``s (``AssetError``s for
the directory import, whose refusals are those of any contact edit). Every id is looked up
within the caller's account: another account's is NOT_FOUND.
"""

from __future__ import annotations

import uuid
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types.unset import UNSET
from tortoise.transactions import in_transaction

from api.graphql.context import Info
from api.graphql.errors import (
    AssetError,
    AssetErrorCode,
    IntegrationError,
    TwoWayError,
    TwoWayErrorCode,
    camel,
    column_of,
)
from api.graphql.ids import InvalidId, from_global
from api.graphql.mutations.assets import _error as asset_error
from api.graphql.mutations.integrations import (
    _error,
    _integration,
    _managed,
    _run,
    _setup_error,
)
from api.graphql.permissions import denied
from api.graphql.rows import fetch
from api.graphql.text import Rule, checked, text_rules
from api.graphql.types.assets import Contact, PsaLink
from api.graphql.types.enums import (
    AssetKindEnum,
    ConflictChoiceEnum,
    ConflictPolicyEnum,
    DirectionEnum,
    SideEnum,
)
from api.graphql.types.integration import Integration
from api.graphql.types.sync_run import SyncRun
from api.graphql.types.two_way import SyncConflict
from models import ASSET_MODELS, AssetKind, IntegrationStatus, RecordLink, ReferenceKind, Role
from models import Contact as ContactRow
from models import Integration as IntegrationRow
from models import ReferenceValue as ReferenceRow
from models import SyncConflict as ConflictRow
from models.vault import VaultError
from sync import conflicts, directions, directory, push_all, sync_settings
from sync.conflicts import Choice, ConflictError
from sync.connections import table_of
from sync.integrations import IntegrationError as SetupError
from sync.local_edits import EditError
from sync.merge import Direction, Policy, Side

MAX_RULES = 200  # kinds or fields per updateTwoWaySettings
MAX_SCOPE_IDS = 500  # reference ids per list of a push-all scope
MAX_DIRECTORY_CONTACTS = directory.MAX_CONTACTS


# -- settings ---------------------------------------------------------------------------------


@strawberry.input(description="A direction and the conflict policy of TWO_WAY fields.")
class DirectionRuleInput:
    direction: DirectionEnum  # type: ignore[valid-type]
    policy: ConflictPolicyEnum | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Who wins when both sides changed; PSA_WINS when not given."
    )


@strawberry.input(description="The rule for every field of one asset kind.")
class KindDirectionInput:
    kind: AssetKindEnum  # type: ignore[valid-type]
    rule: DirectionRuleInput | None = strawberry.field(
        default=None, description="Null (or clear: true) removes the kind's rule."
    )
    clear: bool = False


@text_rules(field=Rule(64))  # a column name, as a conflict records it
@strawberry.input(description="The rule for one field.")
class FieldDirectionInput:
    kind: AssetKindEnum  # type: ignore[valid-type]
    field: str = strawberry.field(description="As the record type names it: serialNumber, …")
    rule: DirectionRuleInput | None = strawberry.field(
        default=None, description="Null (or clear: true) removes the field's rule."
    )
    clear: bool = False


@text_rules(IntegrationRow)
@strawberry.input(description="Only what is given changes.")
class UpdateTwoWaySettingsInput:
    integration_id: strawberry.ID
    default: DirectionRuleInput | None = strawberry.field(
        default=UNSET,
        description="The integration-wide rule; null goes back to the two-way checkbox's.",
    )
    kinds: list[KindDirectionInput] | None = strawberry.field(
        default=None, description=f"At most {MAX_RULES}."
    )
    fields: list[FieldDirectionInput] | None = strawberry.field(
        default=None, description=f"At most {MAX_RULES}."
    )
    clock_skew_seconds: int | None = None
    tie_breaker: SideEnum | None = None  # type: ignore[valid-type]
    propagate_deletes: bool | None = None
    contact_email_type: str | None = strawberry.field(
        default=None,
        description='A PSA email type (see Integration.contactAttributeOptions); "" clears.',
    )
    contact_phone_type: str | None = strawberry.field(
        default=None,
        description='A PSA phone type (see Integration.contactAttributeOptions); "" clears.',
    )
    push_rate_per_minute: int | None = None


@strawberry.type
class UpdateTwoWaySettingsPayload:
    integration: Integration | None = None
    errors: list[IntegrationError] = strawberry.field(default_factory=list)


def _rule(rule: DirectionRuleInput | None, clear: bool = False) -> dict[str, str] | None:
    if clear or rule is None:
        return None
    return {
        "direction": Direction(rule.direction).value,
        "policy": Policy(rule.policy or Policy.PSA_WINS).value,
    }


def _direction_changes(
    provider: str, input: UpdateTwoWaySettingsInput
) -> dict[str, Any] | IntegrationError:
    """The input's direction changes as ``sync.directions`` settings (columns, not camelCase),
    each field checked on its own so that an error names its place in the list."""
    changes: dict[str, Any] = {}
    if input.default is not UNSET:
        changes["default"] = _rule(input.default)
    for name, items in (("kinds", input.kinds), ("fields", input.fields)):
        if items is not None and len(items) > MAX_RULES:
            return _error("TOO_MANY", f"at most {MAX_RULES} {name}", name)
    if input.kinds is not None:
        changes["kinds"] = {
            AssetKind(item.kind).value: _rule(item.rule, item.clear) for item in input.kinds
        }
    if input.fields is not None:
        by_field: dict[str, Any] = {}
        for index, item in enumerate(input.fields):
            kind = AssetKind(item.kind)
            where = f"fields[{index}].field"
            column = column_of(ASSET_MODELS[kind]._meta.db_fields, item.field)
            if column is None:
                return _error(
                    "INVALID_DIRECTION", f"{item.field!r} is not a field of {kind.value}s", where
                )
            key = f"{kind.value}.{column}"
            raw = _rule(item.rule, item.clear)
            try:
                directions.validated(provider, {}, {"fields": {key: raw}})
            except directions.DirectionError as exc:
                return _error("INVALID_DIRECTION", f"{item.field}: {exc}", where)
            by_field[key] = raw
        changes["fields"] = by_field
    if input.clock_skew_seconds is not None:
        changes["clock_skew_seconds"] = input.clock_skew_seconds
    if input.tie_breaker is not None:
        changes["tie_breaker"] = Side(input.tie_breaker).value
    return changes


# -- push all ---------------------------------------------------------------------------------


@strawberry.input(description="What to push; an empty or missing list means all.")
class PushAllScopeInput:
    kinds: list[AssetKindEnum] | None = None  # type: ignore[valid-type]
    organization_type_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    organization_status_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    configuration_type_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    configuration_status_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


@strawberry.type
class PushAllPayload:
    run: SyncRun | None = strawberry.field(
        default=None,
        description="The push-all run (kind PUSH_ALL): its errors, grouped by code, are the "
        "plan (would_create, would_link, …) or the outcome (created, linked, …) per record.",
    )
    errors: list[IntegrationError] = strawberry.field(default_factory=list)


# Scope input → (Scope attribute, the reference kind its ids must be).
_SCOPE_LISTS = {
    "organization_type_ids": ("organization_types", ReferenceKind.ORGANIZATION_TYPE),
    "organization_status_ids": ("organization_statuses", ReferenceKind.ORGANIZATION_STATUS),
    "configuration_type_ids": ("configuration_types", ReferenceKind.CONFIGURATION_TYPE),
    "configuration_status_ids": ("configuration_statuses", ReferenceKind.CONFIGURATION_STATUS),
}


async def _scope(info: Info, scope: PushAllScopeInput | None) -> push_all.Scope | IntegrationError:
    if scope is None:
        return push_all.Scope()
    values: dict[str, Any] = {}
    if scope.kinds is not None:
        if not scope.kinds:
            return _error("INVALID_INPUT", "name at least one kind, or none for all", "scope.kinds")
        values["kinds"] = frozenset(AssetKind(k) for k in scope.kinds)
    for name, (attribute, kind) in _SCOPE_LISTS.items():
        given = getattr(scope, name)
        where = f"scope.{camel(name)}"
        if len(given) > MAX_SCOPE_IDS:
            return _error("TOO_MANY", f"at most {MAX_SCOPE_IDS} ids", where)
        try:
            ids = {from_global(str(value), "ReferenceValue") for value in given}
        except InvalidId as exc:
            return _error("INVALID_ID", str(exc), where)
        if ids:
            found = await ReferenceRow.filter(
                id__in=list(ids), account_id=info.context.account_id, kind=kind
            ).count()
            if found != len(ids):
                return _error("REFERENCE_NOT_FOUND", f"not all are {kind.value}s", where)
        values[attribute] = frozenset(ids)
    return push_all.Scope(**values)


# -- record-level actions ---------------------------------------------------------------------


@strawberry.type
class RetryPushPayload:
    link: PsaLink | None = None
    errors: list[TwoWayError] = strawberry.field(default_factory=list)


@strawberry.type
class ResolveConflictPayload:
    conflict: SyncConflict | None = None
    errors: list[TwoWayError] = strawberry.field(default_factory=list)


@text_rules(ContactRow, email=Rule(254), phone=Rule(50))
@strawberry.input(description="One person from a directory (Active Directory).")
class DirectoryContactInput:
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    title: str | None = None


@strawberry.type
class ImportDirectoryContactsPayload:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    contacts: list[Contact] = strawberry.field(
        default_factory=list, description="The contacts created, then the ones updated."
    )
    errors: list[AssetError] = strawberry.field(default_factory=list)


def _two_way_error(code: str, message: str, field: str | None = None) -> TwoWayError:
    try:
        found = TwoWayErrorCode(code)
    except ValueError:
        found = TwoWayErrorCode.INVALID
    return TwoWayError(code=found, message=message, field=field)


def _editor(info: Info) -> str | None:
    return denied(info, Role.EDITOR)


def _editor_denial(info: Info) -> TwoWayError | None:
    message = _editor(info)
    if message is None:
        return None
    return TwoWayError(
        code=TwoWayErrorCode.PERMISSION_DENIED, message=message, required_role=Role.EDITOR
    )


async def _link(link_id: uuid.UUID) -> PsaLink:
    rows = await fetch(RecordLink.filter(id=link_id), PsaLink.COLUMNS)
    return PsaLink.from_row(rows[0])


async def _conflict(conflict_id: uuid.UUID) -> SyncConflict:
    rows = await fetch(ConflictRow.filter(id=conflict_id), SyncConflict.COLUMNS)
    return SyncConflict.from_row(rows[0])


@checked
@strawberry.type
class TwoWayMutations:
    @strawberry.mutation(
        description="Directions, conflict policies, deletes, contact attributes and push rate "
        "(managers). The two-way checkbox itself is updateSyncSettings' twoWayEnabled."
    )
    async def update_two_way_settings(
        self, info: Info, input: UpdateTwoWaySettingsInput
    ) -> UpdateTwoWaySettingsPayload:
        row = await _managed(info, input.integration_id)
        if isinstance(row, list):
            return UpdateTwoWaySettingsPayload(errors=row)
        changes = _direction_changes(table_of(row), input)
        if isinstance(changes, IntegrationError):
            return UpdateTwoWaySettingsPayload(errors=[changes])
        change = sync_settings.TwoWayChange(
            directions=changes,
            propagate_deletes=input.propagate_deletes,
            contact_email_type=input.contact_email_type,
            contact_phone_type=input.contact_phone_type,
            push_rate_per_minute=input.push_rate_per_minute,
        )
        try:
            row = await sync_settings.update_two_way(
                row, change, open_provider=info.context.open_provider
            )
        except SetupError as exc:
            return UpdateTwoWaySettingsPayload(errors=[_setup_error(exc)])
        except VaultError:
            return UpdateTwoWaySettingsPayload(
                errors=[
                    _error(
                        "CONNECTION_FAILED",
                        "the stored credentials cannot be read: enter them again",
                    )
                ]
            )
        return UpdateTwoWaySettingsPayload(integration=await _integration(row))

    @strawberry.mutation(
        description="Push every record the PSA does not have yet (managers; two-way sync must "
        "be on). A dry run reports what it would create or link, and writes nothing to the "
        "PSA."
    )
    async def push_all_syncable_assets(
        self,
        info: Info,
        integration_id: strawberry.ID,
        dry_run: bool,
        scope: PushAllScopeInput | None = None,
    ) -> PushAllPayload:
        row = await _managed(info, integration_id)
        if isinstance(row, list):
            return PushAllPayload(errors=row)
        pushing = directions.any_push(directions.integration_directions(row), table_of(row))
        if not (row.two_way_enabled or pushing):
            return PushAllPayload(
                errors=[
                    _error(
                        "TWO_WAY_OFF",
                        f"two-way sync is off for {row.name}: turn it on before pushing all assets",
                        "integrationId",
                    )
                ]
            )
        if row.status == IntegrationStatus.PAUSED:
            return PushAllPayload(
                errors=[_error("PAUSED", "the integration is paused: resume it first")]
            )
        chosen = await _scope(info, scope)
        if isinstance(chosen, IntegrationError):
            return PushAllPayload(errors=[chosen])
        run = await push_all.start(row, chosen, dry_run=dry_run)
        info.context.wake_worker()
        return PushAllPayload(run=await _run(run))

    @strawberry.mutation(
        description="Send a record's refused pushes again, after fixing the record (editors)."
    )
    async def retry_push(self, info: Info, link_id: strawberry.ID) -> RetryPushPayload:
        if denial := _editor_denial(info):
            return RetryPushPayload(errors=[denial])
        try:
            local_id = from_global(str(link_id), "PsaLink")
            link = await conflicts.retry_push(info.context.account_id, local_id)
        except InvalidId as exc:
            return RetryPushPayload(errors=[_two_way_error("INVALID_ID", str(exc), "linkId")])
        except ConflictError as exc:
            return RetryPushPayload(errors=[_two_way_error(exc.code, exc.message, exc.field)])
        return RetryPushPayload(link=await _link(link.id))

    @strawberry.mutation(
        description="Settle an open conflict (editors): LOCAL keeps our value and pushes it, "
        "PSA takes the PSA's, VALUE sets value and pushes it."
    )
    async def resolve_conflict(
        self,
        info: Info,
        conflict_id: strawberry.ID,
        choice: ConflictChoiceEnum,  # type: ignore[valid-type]
        value: JSON | None = UNSET,
    ) -> ResolveConflictPayload:
        if denial := _editor_denial(info):
            return ResolveConflictPayload(errors=[denial])
        picked = Choice(choice)
        given = value is not UNSET and value is not None
        if picked == Choice.VALUE and not given:
            return ResolveConflictPayload(
                errors=[_two_way_error("REQUIRED", "choice VALUE needs a value", "value")]
            )
        if picked != Choice.VALUE and given:
            return ResolveConflictPayload(
                errors=[_two_way_error("INVALID", "a value goes with choice VALUE only", "value")]
            )
        try:
            conflict_local_id = from_global(str(conflict_id), "SyncConflict")
            conflict = await conflicts.resolve(
                info.context.account_id,
                conflict_local_id,
                picked,
                value if given else None,
                actor=info.context.actor,
            )
        except InvalidId as exc:
            return ResolveConflictPayload(
                errors=[_two_way_error("INVALID_ID", str(exc), "conflictId")]
            )
        except ConflictError as exc:
            return ResolveConflictPayload(errors=[_two_way_error(exc.code, exc.message, exc.field)])
        return ResolveConflictPayload(conflict=await _conflict(conflict.id))

    @strawberry.mutation(
        description=f"Contacts of one organization from a directory (editors; at most "
        f"{MAX_DIRECTORY_CONTACTS} per call): matched by email, then name; a match gains "
        "what it lacks, anyone else is created."
    )
    async def import_directory_contacts(
        self, info: Info, organization_id: strawberry.ID, contacts: list[DirectoryContactInput]
    ) -> ImportDirectoryContactsPayload:
        if message := _editor(info):
            return ImportDirectoryContactsPayload(
                errors=[
                    AssetError(
                        code=AssetErrorCode.PERMISSION_DENIED,
                        message=message,
                        required_role=Role.EDITOR,
                    )
                ]
            )
        if len(contacts) > MAX_DIRECTORY_CONTACTS:
            return ImportDirectoryContactsPayload(
                errors=[
                    AssetError(
                        code=AssetErrorCode.TOO_MANY,
                        message=f"at most {MAX_DIRECTORY_CONTACTS} contacts per call",
                        field="contacts",
                    )
                ]
            )
        try:
            org_id = from_global(str(organization_id), "Organization")
        except InvalidId as exc:
            return ImportDirectoryContactsPayload(
                errors=[
                    AssetError(
                        code=AssetErrorCode.INVALID_ID, message=str(exc), field="organizationId"
                    )
                ]
            )
        people = [
            directory.DirectoryContact(
                first_name=person.first_name,
                last_name=person.last_name,
                email=person.email,
                phone=person.phone,
                title=person.title,
            )
            for person in contacts
        ]
        try:
            # All or nothing: a contact refused half-way (its text was checked before any
            # write; a refusal of the edit rules comes as it is written) rolls back the rest.
            async with in_transaction():
                result = await directory.import_contacts(
                    info.context.account_id, org_id, people, actor=info.context.actor
                )
        except EditError as exc:
            return ImportDirectoryContactsPayload(errors=[asset_error(exc)])
        changed = [*result.created, *result.updated]
        rows = await fetch(
            ContactRow.filter(id__in=changed, account_id=info.context.account_id),
            Contact.COLUMNS,
            Contact.LAZY_JSON,
        )
        by_id = {str(row["id"]): Contact.from_row(row) for row in rows}
        return ImportDirectoryContactsPayload(
            created=len(result.created),
            updated=len(result.updated),
            unchanged=len(result.unchanged),
            contacts=[by_id[str(i)] for i in changed if str(i) in by_id],
        )
