"""The documented assets: organizations, locations, contacts and configurations.

Fields follow the ConnectWise mapping table (features.md §A4). Every asset carries its account
(tenant scope), ``created_at``/``updated_at``, a ``version`` bumped on each change, and a
``match_key`` (see ``models.match_keys``) kept in step with the fields it digests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from models import match_keys
from models.enums import AssetKind, ContactSource

if TYPE_CHECKING:
    from models.accounts import Account
    from models.reference import ReferenceValue


# Composite indexes on (account_id, match_key) and (account_id, name) live in migration
# 0002: Tortoise adds foreign-key columns after CREATE TABLE, so Meta.indexes on them fail.
class Asset(Model):
    id = fields.UUIDField(primary_key=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True, db_index=True)
    version = fields.IntField(default=1)
    match_key = fields.CharField(max_length=40, default="")

    kind: AssetKind

    class Meta:
        abstract = True

    def compute_match_key(self) -> str:
        raise NotImplementedError


def _reference(related_name: str) -> Any:
    return fields.ForeignKeyField(
        "models.ReferenceValue", related_name=related_name, null=True, on_delete=fields.SET_NULL
    )


class Organization(Asset):
    kind = AssetKind.ORGANIZATION

    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="organizations", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=255)
    short_name = fields.CharField(max_length=100, null=True)
    organization_type: fields.ForeignKeyNullableRelation[ReferenceValue] = _reference(
        "organizations_of_type"
    )
    organization_status: fields.ForeignKeyNullableRelation[ReferenceValue] = _reference(
        "organizations_with_status"
    )
    parent: fields.ForeignKeyNullableRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="children", null=True, on_delete=fields.SET_NULL
    )
    # A plain column, not a foreign key: locations already reference organizations, and
    # a cycle of references cannot be created in one migration.
    primary_location_id = fields.UUIDField(null=True)
    description = fields.TextField(null=True)

    class Meta:
        table = "organization"

    def compute_match_key(self) -> str:
        return match_keys.organization_key(self.name)


class Location(Asset):
    kind = AssetKind.LOCATION

    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="locations", on_delete=fields.CASCADE
    )
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="locations", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=255)
    address_1 = fields.CharField(max_length=255, null=True)
    address_2 = fields.CharField(max_length=255, null=True)
    city = fields.CharField(max_length=100, null=True)
    region = fields.CharField(max_length=100, null=True)
    postal_code = fields.CharField(max_length=30, null=True)
    country = fields.CharField(max_length=100, null=True)
    phone = fields.CharField(max_length=50, null=True)
    fax = fields.CharField(max_length=50, null=True)
    primary = fields.BooleanField(default=False)

    class Meta:
        table = "location"

    def compute_match_key(self) -> str:
        return match_keys.location_key(
            self.organization_id,  # type: ignore[attr-defined]
            self.address_1,
            self.address_2,
            self.city,
            self.region,
            self.country,
        )


class Contact(Asset):
    """Emails and phones are typed lists (``[{"type", "value", "primary", ...}]``).

    They are read and written whole with their contact; the one value we search on, the
    primary email, is also a real indexed column.
    """

    kind = AssetKind.CONTACT

    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="contacts", on_delete=fields.CASCADE
    )
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="contacts", on_delete=fields.CASCADE
    )
    first_name = fields.CharField(max_length=100, null=True)
    last_name = fields.CharField(max_length=100, null=True)
    title = fields.CharField(max_length=150, null=True)
    contact_type: fields.ForeignKeyNullableRelation[ReferenceValue] = _reference("contacts_of_type")
    location: fields.ForeignKeyNullableRelation[Location] = fields.ForeignKeyField(
        "models.Location", related_name="contacts", null=True, on_delete=fields.SET_NULL
    )
    emails: Any = fields.JSONField(default=list)
    phones: Any = fields.JSONField(default=list)
    primary_email = fields.CharField(max_length=254, null=True, db_index=True)
    important = fields.BooleanField(default=False)
    source = fields.CharEnumField(ContactSource, max_length=16, default=ContactSource.MANUAL)

    class Meta:
        table = "contact"

    def compute_match_key(self) -> str:
        return match_keys.contact_key(
            self.organization_id,  # type: ignore[attr-defined]
            self.first_name,
            self.last_name,
        )


class Configuration(Asset):
    kind = AssetKind.CONFIGURATION

    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="configurations", on_delete=fields.CASCADE
    )
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "models.Organization", related_name="configurations", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=255)
    configuration_type: fields.ForeignKeyNullableRelation[ReferenceValue] = _reference(
        "configurations_of_type"
    )
    configuration_status: fields.ForeignKeyNullableRelation[ReferenceValue] = _reference(
        "configurations_with_status"
    )
    location: fields.ForeignKeyNullableRelation[Location] = fields.ForeignKeyField(
        "models.Location", related_name="configurations", null=True, on_delete=fields.SET_NULL
    )
    contact: fields.ForeignKeyNullableRelation[Contact] = fields.ForeignKeyField(
        "models.Contact", related_name="configurations", null=True, on_delete=fields.SET_NULL
    )
    hostname = fields.CharField(max_length=255, null=True)
    primary_ip = fields.CharField(max_length=64, null=True)
    default_gateway = fields.CharField(max_length=64, null=True)
    mac_address = fields.CharField(max_length=64, null=True)
    serial_number = fields.CharField(max_length=255, null=True)
    asset_tag = fields.CharField(max_length=100, null=True)
    manufacturer = fields.CharField(max_length=100, null=True)
    model = fields.CharField(max_length=100, null=True)
    operating_system = fields.CharField(max_length=255, null=True)
    installed_by = fields.CharField(max_length=100, null=True)
    installed_at = fields.DatetimeField(null=True)
    purchased_at = fields.DatetimeField(null=True)
    warranty_expires_at = fields.DatetimeField(null=True)
    notes = fields.TextField(null=True)

    class Meta:
        table = "configuration"

    def compute_match_key(self) -> str:
        return match_keys.configuration_key(
            self.organization_id,  # type: ignore[attr-defined]
            self.configuration_type_id,  # type: ignore[attr-defined]
            self.name,
            self.serial_number,
            self.mac_address,
        )


ASSET_MODELS: dict[AssetKind, type[Asset]] = {
    AssetKind.ORGANIZATION: Organization,
    AssetKind.LOCATION: Location,
    AssetKind.CONTACT: Contact,
    AssetKind.CONFIGURATION: Configuration,
}
