"""Create, update and delete organizations, locations, contacts and configurations.

Editors and above. The rules (read-only fields under one-way sync, references within the
account and organization) live in ``sync.local_edits``; this module turns inputs into
columns and refusals into ``AssetError``s naming the input fields.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry
from strawberry.types.unset import UNSET

from api.graphql.context import Info
from api.graphql.errors import AssetError, AssetErrorCode, camel
from api.graphql.ids import InvalidId, from_global
from api.graphql.permissions import denied
from api.graphql.text import Rule, checked, text_rules
from api.graphql.types.assets import ASSET_TYPES, Configuration, Contact, Location, Organization
from models import ASSET_MODELS, AssetKind, Role
from models import Configuration as ConfigurationRow
from models import Contact as ContactRow
from models import Location as LocationRow
from models import Organization as OrganizationRow
from sync import local_edits
from sync.local_edits import RELATION_COLUMNS, EditError

MAX_METHODS = 20  # emails or phones per contact

_ID_TYPES = {
    **{column: kind.value.title() for column, kind in RELATION_COLUMNS.items()},
    **{column: "ReferenceValue" for column in local_edits.REFERENCE_COLUMNS},
}


# Type: as the PSA email and phone types an integration maps to (100 characters).
@text_rules(value=Rule(254), type=Rule(100))
@strawberry.input
class EmailInput:
    value: str
    type: str | None = None
    primary: bool = False


@text_rules(value=Rule(50), type=Rule(100), extension=Rule(30))
@strawberry.input
class PhoneInput:
    value: str
    type: str | None = None
    primary: bool = False
    extension: str | None = None


def _opt(description: str | None = None) -> Any:
    return strawberry.field(default=UNSET, description=description)


@text_rules(OrganizationRow)
@strawberry.input
class OrganizationFields:
    name: str | None = _opt()
    short_name: str | None = _opt()
    description: str | None = _opt()
    organization_type_id: strawberry.ID | None = _opt()
    organization_status_id: strawberry.ID | None = _opt()
    parent_id: strawberry.ID | None = _opt()
    primary_location_id: strawberry.ID | None = _opt()


@text_rules(LocationRow)
@strawberry.input
class LocationFields:
    organization_id: strawberry.ID | None = _opt()
    name: str | None = _opt()
    address_1: str | None = _opt()
    address_2: str | None = _opt()
    city: str | None = _opt()
    region: str | None = _opt()
    postal_code: str | None = _opt()
    country: str | None = _opt()
    phone: str | None = _opt()
    fax: str | None = _opt()
    primary: bool | None = _opt()


@text_rules(ContactRow)
@strawberry.input
class ContactFields:
    organization_id: strawberry.ID | None = _opt()
    first_name: str | None = _opt()
    last_name: str | None = _opt()
    title: str | None = _opt()
    contact_type_id: strawberry.ID | None = _opt()
    location_id: strawberry.ID | None = _opt()
    emails: list[EmailInput] | None = _opt(f"At most {MAX_METHODS}; replaces the list.")
    phones: list[PhoneInput] | None = _opt(f"At most {MAX_METHODS}; replaces the list.")
    important: bool | None = _opt()


@text_rules(ConfigurationRow)
@strawberry.input
class ConfigurationFields:
    organization_id: strawberry.ID | None = _opt()
    name: str | None = _opt()
    configuration_type_id: strawberry.ID | None = _opt()
    configuration_status_id: strawberry.ID | None = _opt()
    location_id: strawberry.ID | None = _opt()
    contact_id: strawberry.ID | None = _opt()
    hostname: str | None = _opt()
    primary_ip: str | None = _opt()
    default_gateway: str | None = _opt()
    mac_address: str | None = _opt()
    serial_number: str | None = _opt()
    asset_tag: str | None = _opt()
    manufacturer: str | None = _opt()
    model: str | None = _opt()
    operating_system: str | None = _opt()
    installed_by: str | None = _opt()
    installed_at: datetime | None = _opt()
    purchased_at: datetime | None = _opt()
    warranty_expires_at: datetime | None = _opt()
    notes: str | None = _opt()


class _Refused(Exception):
    def __init__(self, error: AssetError) -> None:
        self.error = error


def _columns(fields: Any) -> dict[str, Any]:
    """The input's given fields as model columns; global ids decoded, lists bounded."""
    values: dict[str, Any] = {}
    for item in dataclasses.fields(fields):
        value = getattr(fields, item.name)
        if value is UNSET:
            continue
        if item.name in _ID_TYPES and value is not None:
            try:
                value = from_global(str(value), _ID_TYPES[item.name])
            except InvalidId as exc:
                raise _Refused(
                    AssetError(
                        code=AssetErrorCode.INVALID_ID, message=str(exc), field=camel(item.name)
                    )
                ) from exc
        if item.name in ("emails", "phones"):
            if value is not None and len(value) > MAX_METHODS:
                raise _Refused(
                    AssetError(
                        code=AssetErrorCode.TOO_MANY,
                        message=f"at most {MAX_METHODS} {item.name}",
                        field=item.name,
                    )
                )
            value = [
                {k: v for k, v in vars(entry).items() if v is not None} for entry in value or ()
            ]
        values[item.name] = value
    return values


def _error(exc: EditError) -> AssetError:
    return AssetError(
        code=AssetErrorCode(exc.code),
        message=exc.message,
        field=camel(exc.field),
        fields=[c for c in map(camel, exc.fields) if c],
    )


def _forbidden(info: Info) -> AssetError | None:
    message = denied(info, Role.EDITOR)
    if message is None:
        return None
    return AssetError(
        code=AssetErrorCode.PERMISSION_DENIED, message=message, required_role=Role.EDITOR
    )


async def _built(kind: AssetKind, local_id: uuid.UUID) -> Any:
    type_ = ASSET_TYPES[kind]
    rows = await ASSET_MODELS[kind].filter(id=local_id).values(*type_.COLUMNS)
    return type_.from_row(rows[0])


async def _save(
    kind: AssetKind,
    info: Info,
    record_id: strawberry.ID | None,
    fields: Any,
) -> tuple[Any, list[AssetError]]:
    """Create (no id) or update; returns (the record, errors)."""
    if forbidden := _forbidden(info):
        return None, [forbidden]
    try:
        values = _columns(fields)
        account_id = info.context.account_id
        if record_id is None:
            asset = await local_edits.create(kind, account_id, values, actor=info.context.actor)
        else:
            try:
                local_id = from_global(str(record_id), kind.value.title())
            except InvalidId as exc:
                raise _Refused(
                    AssetError(code=AssetErrorCode.INVALID_ID, message=str(exc), field="id")
                ) from exc
            asset = await local_edits.update(
                kind, account_id, local_id, values, actor=info.context.actor
            )
    except _Refused as refused:
        return None, [refused.error]
    except EditError as exc:
        return None, [_error(exc)]
    return await _built(kind, asset.id), []


async def _delete(kind: AssetKind, info: Info, record_id: strawberry.ID) -> list[AssetError]:
    if forbidden := _forbidden(info):
        return [forbidden]
    try:
        local_id = from_global(str(record_id), kind.value.title())
        await local_edits.delete(kind, info.context.account_id, local_id, actor=info.context.actor)
    except InvalidId as exc:
        return [AssetError(code=AssetErrorCode.INVALID_ID, message=str(exc), field="id")]
    except EditError as exc:
        return [_error(exc)]
    return []


@strawberry.type
class OrganizationPayload:
    organization: Organization | None = None
    errors: list[AssetError] = strawberry.field(default_factory=list)


@strawberry.type
class LocationPayload:
    location: Location | None = None
    errors: list[AssetError] = strawberry.field(default_factory=list)


@strawberry.type
class ContactPayload:
    contact: Contact | None = None
    errors: list[AssetError] = strawberry.field(default_factory=list)


@strawberry.type
class ConfigurationPayload:
    configuration: Configuration | None = None
    errors: list[AssetError] = strawberry.field(default_factory=list)


@strawberry.type
class DeletePayload:
    deleted_id: strawberry.ID | None = None
    errors: list[AssetError] = strawberry.field(default_factory=list)


async def _deleted(kind: AssetKind, info: Info, record_id: strawberry.ID) -> DeletePayload:
    errors = await _delete(kind, info, record_id)
    return DeletePayload(deleted_id=None if errors else record_id, errors=errors)


Saver = Callable[..., Awaitable[Any]]


@checked
@strawberry.type
class AssetMutations:
    @strawberry.mutation
    async def create_organization(
        self, info: Info, input: OrganizationFields
    ) -> OrganizationPayload:
        record, errors = await _save(AssetKind.ORGANIZATION, info, None, input)
        return OrganizationPayload(organization=record, errors=errors)

    @strawberry.mutation(description="Only the fields given change.")
    async def update_organization(
        self, info: Info, id: strawberry.ID, input: OrganizationFields
    ) -> OrganizationPayload:
        record, errors = await _save(AssetKind.ORGANIZATION, info, id, input)
        return OrganizationPayload(organization=record, errors=errors)

    @strawberry.mutation
    async def delete_organization(self, info: Info, id: strawberry.ID) -> DeletePayload:
        return await _deleted(AssetKind.ORGANIZATION, info, id)

    @strawberry.mutation
    async def create_location(self, info: Info, input: LocationFields) -> LocationPayload:
        record, errors = await _save(AssetKind.LOCATION, info, None, input)
        return LocationPayload(location=record, errors=errors)

    @strawberry.mutation(description="Only the fields given change.")
    async def update_location(
        self, info: Info, id: strawberry.ID, input: LocationFields
    ) -> LocationPayload:
        record, errors = await _save(AssetKind.LOCATION, info, id, input)
        return LocationPayload(location=record, errors=errors)

    @strawberry.mutation
    async def delete_location(self, info: Info, id: strawberry.ID) -> DeletePayload:
        return await _deleted(AssetKind.LOCATION, info, id)

    @strawberry.mutation
    async def create_contact(self, info: Info, input: ContactFields) -> ContactPayload:
        record, errors = await _save(AssetKind.CONTACT, info, None, input)
        return ContactPayload(contact=record, errors=errors)

    @strawberry.mutation(description="Only the fields given change.")
    async def update_contact(
        self, info: Info, id: strawberry.ID, input: ContactFields
    ) -> ContactPayload:
        record, errors = await _save(AssetKind.CONTACT, info, id, input)
        return ContactPayload(contact=record, errors=errors)

    @strawberry.mutation
    async def delete_contact(self, info: Info, id: strawberry.ID) -> DeletePayload:
        return await _deleted(AssetKind.CONTACT, info, id)

    @strawberry.mutation
    async def create_configuration(
        self, info: Info, input: ConfigurationFields
    ) -> ConfigurationPayload:
        record, errors = await _save(AssetKind.CONFIGURATION, info, None, input)
        return ConfigurationPayload(configuration=record, errors=errors)

    @strawberry.mutation(description="Only the fields given change.")
    async def update_configuration(
        self, info: Info, id: strawberry.ID, input: ConfigurationFields
    ) -> ConfigurationPayload:
        record, errors = await _save(AssetKind.CONFIGURATION, info, id, input)
        return ConfigurationPayload(configuration=record, errors=errors)

    @strawberry.mutation
    async def delete_configuration(self, info: Info, id: strawberry.ID) -> DeletePayload:
        return await _deleted(AssetKind.CONFIGURATION, info, id)
