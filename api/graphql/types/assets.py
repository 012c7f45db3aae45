"""The documented assets: organizations, locations, contacts, configurations, and their links.

Types are built from plain rows (``QuerySet.values``), never ORM instances: building a
Tortoise model costs more than the whole GraphQL field resolution of a row. Scalars are plain
attributes; relations go through the request's dataloaders, so a page costs one query per
relation, whatever its size.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import strawberry

from api.graphql.context import Info
from api.graphql.errors import camel, column_of
from api.graphql.ids import to_global
from api.graphql.permissions import PublicError
from api.graphql.text import checked
from api.graphql.types.enums import LinkStateEnum, ReferenceKindEnum, psa_name
from api.graphql.types.node import Node
from api.graphql.types.two_way import FieldChange
from models import ASSET_MODELS, AssetKind, LinkState, Provider, PushState, ReferenceKind
from models import Integration as IntegrationRow
from sync.connections import field_table
from sync.local_edits import read_only_columns
from sync.outbox import pushing

if TYPE_CHECKING:
    from api.graphql.types.integration import Integration

MAX_CHILDREN = 100
MAX_HISTORY = 100


def _children_limit(first: int) -> int:
    if not 0 <= first <= MAX_CHILDREN:
        raise PublicError(f"first must be between 0 and {MAX_CHILDREN}", "BAD_USER_INPUT")
    return first


@strawberry.type
class ReferenceValue(Node):
    """A type or status of the account (what a sync's scope is made of)."""

    kind: ReferenceKindEnum  # type: ignore[valid-type]
    name: str

    COLUMNS: ClassVar[tuple[str, ...]] = ("id", "kind", "name")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ReferenceValue:
        return cls(
            id=strawberry.ID(to_global("ReferenceValue", row["id"])),
            kind=ReferenceKind(row["kind"]),
            name=row["name"],
        )


@cache
def _read_only_fields(
    provider: str, two_way: bool, kind: AssetKind, directions: str
) -> tuple[str, ...]:
    columns = read_only_columns(provider, two_way, kind, json.loads(directions))
    return tuple(sorted(c for c in map(camel, columns) if c))


def directions_key(value: Any) -> str:
    """An integration's ``directions`` as a cache key: its JSON text (as stored)."""
    if value is None:
        return "{}"
    if isinstance(value, (str, bytes)):
        return value.decode() if isinstance(value, bytes) else value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def not_pushed_reason(provider: Provider | str) -> str:
    return f"Record not yet pushed to {psa_name(provider)}. To trigger a push, update the record."


@cache
def _pushes(
    provider: str, two_way: bool, contacts_enabled: bool, kind: AssetKind, directions: str
) -> bool:
    """Whether such an integration pushes records of ``kind`` (``sync.outbox.pushing``)."""
    integration = IntegrationRow(
        provider=provider,
        two_way_enabled=two_way,
        contacts_enabled=contacts_enabled,
        directions=json.loads(directions),
    )
    return pushing(integration, kind)


def pushes_kind(integration: dict[str, Any], kind: AssetKind) -> bool:
    """``pushes`` for an integration row (its columns as ``Integration.COLUMNS`` name them)."""
    return _pushes(
        str(integration["provider"]),
        bool(integration["two_way_enabled"]),
        bool(integration["contacts_enabled"]),
        kind,
        directions_key(integration["directions"]),
    )


@strawberry.type(description="A record's link to one PSA record.")
class PsaLink:
    id: strawberry.ID | None = strawberry.field(
        description="Pass to retryPush. Null for a record never pushed (no link is stored)."
    )
    psa_id: int | None = strawberry.field(description="Null until the PSA has the record.")
    state: LinkStateEnum = strawberry.field(  # type: ignore[valid-type]
        description="PENDING_PUSH: local changes wait to be pushed; ERROR: the PSA refused "
        "them (lastError says why; fix the record, then retryPush); NOT_PUSHED: the PSA does "
        "not have the record yet (reason says why)."
    )
    reason: str | None = strawberry.field(description="Why the record is NOT_PUSHED.")
    last_synced_at: datetime | None
    last_error: str | None
    read_only_fields: list[str] = strawberry.field(
        description="Fields this link makes read-only here: those flowing from the PSA only "
        "(all synced fields under one-way sync)."
    )
    integration_id: strawberry.Private[uuid.UUID]

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id",
        "local_id",
        "kind",
        "psa_id",
        "state",
        "push_state",
        "synced_at",
        "last_error",
        "integration_id",
        "created_at",
        "integration__provider",
        "integration__two_way_enabled",
        "integration__directions",
        "integration__synced_api",
    )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PsaLink:
        stored = LinkState(row["state"])
        push = PushState(row["push_state"] or PushState.NONE)
        locked: tuple[str, ...] = ()
        state, reason, error = stored, None, row["last_error"]
        if stored == LinkState.SYNCED:
            locked = _read_only_fields(
                field_table(row["integration__provider"], row["integration__synced_api"]),
                bool(row["integration__two_way_enabled"]),
                AssetKind(row["kind"]),
                directions_key(row["integration__directions"]),
            )
            if push == PushState.PENDING:
                state = LinkState.PENDING_PUSH
            elif push == PushState.FAILED:
                state = LinkState.ERROR
        elif stored == LinkState.NOT_PUSHED:
            reason, error = error, None
        return cls(
            id=strawberry.ID(to_global("PsaLink", row["id"])),
            psa_id=row["psa_id"],
            state=state,
            reason=reason,
            last_synced_at=row["synced_at"],
            last_error=error,
            read_only_fields=list(locked),
            integration_id=row["integration_id"],
        )

    @classmethod
    def not_pushed(cls, integration_id: Any, provider: Provider | str) -> PsaLink:
        """A record that has no link yet to an integration that pushes its kind."""
        return cls(
            id=None,
            psa_id=None,
            state=LinkState.NOT_PUSHED,
            reason=not_pushed_reason(provider),
            last_synced_at=None,
            last_error=None,
            read_only_fields=[],
            integration_id=integration_id,
        )

    @strawberry.field
    async def integration(
        self, info: Info
    ) -> Annotated[Integration, strawberry.lazy("api.graphql.types.integration")]:
        found = await info.context.loaders.integration.load(self.integration_id)
        assert found is not None  # links cascade with their integration
        return found


@checked
@strawberry.type
class _Asset:
    """What every asset type shares: ids, stamps, and its PSA links."""

    kind: ClassVar[AssetKind]
    # JSON columns fetched as text and decoded by the type only when a query asks for them.
    LAZY_JSON: ClassVar[frozenset[str]] = frozenset()
    local_id: strawberry.Private[uuid.UUID]

    @strawberry.field(
        description="This record's links to PSA records, and a NOT_PUSHED entry for each "
        "integration that pushes this kind of record but does not have this one yet."
    )
    async def psa_links(self, info: Info) -> list[PsaLink]:
        return await info.context.loaders.links.load((self.kind, self.local_id))

    @strawberry.field(
        description=f"Changes of this record's fields, newest first (at most {MAX_HISTORY}); "
        "field: only that field's (camelCase, as this type names it)."
    )
    async def history(
        self, info: Info, first: int = 20, field: str | None = None
    ) -> list[FieldChange]:
        if not 0 <= first <= MAX_HISTORY:
            raise PublicError(f"first must be between 0 and {MAX_HISTORY}", "BAD_USER_INPUT")
        column = None
        if field is not None:
            column = column_of(ASSET_MODELS[self.kind]._meta.db_fields, field)
            if column is None:
                raise PublicError(
                    f"{field} is not a field of {self.kind.value}s", "BAD_USER_INPUT",
                    field="field",
                )  # fmt: skip
        return await info.context.loaders.history.load((self.kind, self.local_id, first, column))


@strawberry.type
class Organization(_Asset, Node):
    kind: ClassVar[AssetKind] = AssetKind.ORGANIZATION
    name: str
    short_name: str | None
    description: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    organization_type_id: strawberry.Private[uuid.UUID | None]
    organization_status_id: strawberry.Private[uuid.UUID | None]
    parent_id: strawberry.Private[uuid.UUID | None]
    primary_location_id: strawberry.Private[uuid.UUID | None]

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "name", "short_name", "description", "version", "created_at", "updated_at",
        "organization_type_id", "organization_status_id", "parent_id", "primary_location_id",
    )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Organization:
        return cls(
            id=strawberry.ID(to_global("Organization", row["id"])),
            local_id=row["id"],
            name=row["name"],
            short_name=row["short_name"],
            description=row["description"],
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            organization_type_id=row["organization_type_id"],
            organization_status_id=row["organization_status_id"],
            parent_id=row["parent_id"],
            primary_location_id=row["primary_location_id"],
        )

    @strawberry.field
    async def organization_type(self, info: Info) -> ReferenceValue | None:
        return await info.context.loaders.reference.load(self.organization_type_id)

    @strawberry.field
    async def organization_status(self, info: Info) -> ReferenceValue | None:
        return await info.context.loaders.reference.load(self.organization_status_id)

    @strawberry.field
    async def parent(self, info: Info) -> Organization | None:
        return await info.context.loaders.organization.load(self.parent_id)

    @strawberry.field
    async def primary_location(self, info: Info) -> Location | None:
        return await info.context.loaders.location.load(self.primary_location_id)

    @strawberry.field(description=f"The first locations by name (at most {MAX_CHILDREN}).")
    async def locations(self, info: Info, first: int = 20) -> list[Location]:
        key = (AssetKind.LOCATION, self.local_id, _children_limit(first))
        return await info.context.loaders.children.load(key)

    @strawberry.field(description=f"The first contacts by name (at most {MAX_CHILDREN}).")
    async def contacts(self, info: Info, first: int = 20) -> list[Contact]:
        key = (AssetKind.CONTACT, self.local_id, _children_limit(first))
        return await info.context.loaders.children.load(key)

    @strawberry.field(description=f"The first configurations by name (at most {MAX_CHILDREN}).")
    async def configurations(self, info: Info, first: int = 20) -> list[Configuration]:
        key = (AssetKind.CONFIGURATION, self.local_id, _children_limit(first))
        return await info.context.loaders.children.load(key)


@strawberry.type
class _Owned(_Asset):
    organization_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def organization(self, info: Info) -> Organization:
        found = await info.context.loaders.organization.load(self.organization_id)
        assert found is not None  # assets cascade with their organization
        return found


@strawberry.type
class Location(_Owned, Node):
    kind: ClassVar[AssetKind] = AssetKind.LOCATION
    name: str
    address_1: str | None
    address_2: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None
    phone: str | None
    fax: str | None
    primary: bool
    version: int
    created_at: datetime
    updated_at: datetime

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "organization_id", "name", "address_1", "address_2", "city", "region",
        "postal_code", "country", "phone", "fax", "primary", "version", "created_at",
        "updated_at",
    )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Location:
        values = {k: row[k] for k in cls.COLUMNS}
        return cls(
            id=strawberry.ID(to_global("Location", values.pop("id"))),
            local_id=row["id"],
            **values,
        )


@strawberry.type(description="A typed email or phone number.")
class ContactMethod:
    type: str | None
    value: str
    primary: bool
    extension: str | None = None


def _json_list(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _methods(items: Any) -> list[ContactMethod]:
    return [
        ContactMethod(
            type=item.get("type"),
            value=str(item.get("value") or ""),
            primary=bool(item.get("primary")),
            extension=item.get("extension"),
        )
        for item in items or ()
    ]


@strawberry.type
class Contact(_Owned, Node):
    kind: ClassVar[AssetKind] = AssetKind.CONTACT
    first_name: str | None
    last_name: str | None
    title: str | None
    raw_emails: strawberry.Private[Any]
    raw_phones: strawberry.Private[Any]

    LAZY_JSON: ClassVar[frozenset[str]] = frozenset({"emails", "phones"})
    primary_email: str | None
    important: bool
    source: str
    version: int
    created_at: datetime
    updated_at: datetime
    contact_type_id: strawberry.Private[uuid.UUID | None]
    location_id: strawberry.Private[uuid.UUID | None]

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "organization_id", "first_name", "last_name", "title", "emails", "phones",
        "primary_email", "important", "source", "version", "created_at", "updated_at",
        "contact_type_id", "location_id",
    )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Contact:
        values = {k: row[k] for k in cls.COLUMNS}
        values["raw_emails"] = values.pop("emails")
        values["raw_phones"] = values.pop("phones")
        values["source"] = str(getattr(values["source"], "value", values["source"]))
        return cls(
            id=strawberry.ID(to_global("Contact", values.pop("id"))),
            local_id=row["id"],
            **values,
        )

    # Decoded only when asked for: a page of contacts rarely shows every number.
    @strawberry.field
    def emails(self) -> list[ContactMethod]:
        return _methods(_json_list(self.raw_emails))

    @strawberry.field
    def phones(self) -> list[ContactMethod]:
        return _methods(_json_list(self.raw_phones))

    @strawberry.field
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)

    @strawberry.field
    async def contact_type(self, info: Info) -> ReferenceValue | None:
        return await info.context.loaders.reference.load(self.contact_type_id)

    @strawberry.field
    async def location(self, info: Info) -> Location | None:
        return await info.context.loaders.location.load(self.location_id)


@strawberry.type
class Configuration(_Owned, Node):
    kind: ClassVar[AssetKind] = AssetKind.CONFIGURATION
    name: str
    hostname: str | None
    primary_ip: str | None
    default_gateway: str | None
    mac_address: str | None
    serial_number: str | None
    asset_tag: str | None
    manufacturer: str | None
    model: str | None
    operating_system: str | None
    installed_by: str | None
    installed_at: datetime | None
    purchased_at: datetime | None
    warranty_expires_at: datetime | None
    notes: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    configuration_type_id: strawberry.Private[uuid.UUID | None]
    configuration_status_id: strawberry.Private[uuid.UUID | None]
    location_id: strawberry.Private[uuid.UUID | None]
    contact_id: strawberry.Private[uuid.UUID | None]

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "organization_id", "name", "hostname", "primary_ip", "default_gateway",
        "mac_address", "serial_number", "asset_tag", "manufacturer", "model",
        "operating_system", "installed_by", "installed_at", "purchased_at",
        "warranty_expires_at", "notes", "version", "created_at", "updated_at",
        "configuration_type_id", "configuration_status_id", "location_id", "contact_id",
    )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Configuration:
        values = {k: row[k] for k in cls.COLUMNS}
        return cls(
            id=strawberry.ID(to_global("Configuration", values.pop("id"))),
            local_id=row["id"],
            **values,
        )

    @strawberry.field
    async def configuration_type(self, info: Info) -> ReferenceValue | None:
        return await info.context.loaders.reference.load(self.configuration_type_id)

    @strawberry.field
    async def configuration_status(self, info: Info) -> ReferenceValue | None:
        return await info.context.loaders.reference.load(self.configuration_status_id)

    @strawberry.field
    async def location(self, info: Info) -> Location | None:
        return await info.context.loaders.location.load(self.location_id)

    @strawberry.field
    async def contact(self, info: Info) -> Contact | None:
        return await info.context.loaders.contact.load(self.contact_id)


ASSET_TYPES: dict[AssetKind, Any] = {
    AssetKind.ORGANIZATION: Organization,
    AssetKind.LOCATION: Location,
    AssetKind.CONTACT: Contact,
    AssetKind.CONFIGURATION: Configuration,
}
