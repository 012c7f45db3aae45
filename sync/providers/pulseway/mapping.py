"""Pulseway PSA (Kaseya BMS v2) ↔ psasync field mapping (features.md §A4), as data.

Each table row pairs a local column with a Pulseway output field (camelCase, read
case-insensitively) and a converter, and names the input-DTO property it is written to (None:
Pulseway cannot write it, so it flows from Pulseway only); the input-DTO names outside the
table (an account's locations, an asset's full DTO, contact email/phone operations) are below
it. This module and ``client.py`` are the only code that knows Pulseway names (``writes.py``
builds bodies from the names given here).

Kinds: organizations ↔ accounts, locations ↔ account locations (with their main address),
contacts ↔ contacts, configurations ↔ hardware assets.

Statuses: Pulseway has no account status list, only ``isActive``; psasync sees two synthetic
organization statuses, ``1 Active`` and ``2 Inactive`` (``ORGANIZATION_STATUSES``). A hardware
asset's status is its ``stateId`` (the ``AssetState`` lookup), or the synthetic ``No state``
when it has none (``stateId`` is optional), so such assets can be chosen for sync too; its
``isActive`` flag is not mapped. Pulseway has no contact types.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from models.enums import AssetKind, ReferenceKind
from sync.providers.base import FieldMap, PsaRecord, PsaReference, RawRecord

Getter = Callable[[RawRecord], Any]

PARENT_COLUMN: Final = "organization_id"

# The synthetic organization statuses (Pulseway accounts are only active or not).
STATUS_ACTIVE: Final = 1
STATUS_INACTIVE: Final = 2
ORGANIZATION_STATUSES: Final = (
    PsaReference(STATUS_ACTIVE, "Active"),
    PsaReference(STATUS_INACTIVE, "Inactive"),
)

# The synthetic asset state of an asset without one (Pulseway ids are positive).
NO_STATE: Final = -1
NO_STATE_REFERENCE: Final = PsaReference(NO_STATE, "No state")

# A phone whose Pulseway phone type is named so is a fax (``kind: "fax"`` locally).
FAX_PHONE_TYPE: Final = "fax"


# -- reading Pulseway values -----------------------------------------------------------------


def get(record: Any, name: str) -> Any:
    """``record[name]``, matching the name case-insensitively (None when absent)."""
    if not isinstance(record, Mapping):
        return None
    if name in record:
        return record[name]
    lowered = name.lower()
    for key, value in record.items():
        if str(key).lower() == lowered:
            return value
    return None


def key(name: str) -> Getter:
    return lambda record: get(record, name)


def first_of(*names: str) -> Getter:
    """The first of these fields that holds a non-blank value."""

    def pick(record: RawRecord) -> Any:
        for name in names:
            value = get(record, name)
            if text(value) is not None:
                return value
        return None

    return pick


def text(value: Any) -> str | None:
    if value is None:
        return None
    stripped = str(value).strip()
    return stripped or None


def flag(value: Any) -> bool:
    return bool(value)


def psa_id(value: Any) -> int | None:
    """A Pulseway id reference; 0 means none (``contactId: 0`` on an asset without one)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        found = int(value)
    except (TypeError, ValueError):
        return None
    return found if found > 0 else None


_SINGLE_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-]?)([0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$")


def mac_address(value: Any) -> str | None:
    """IT Glue skips MAC values longer than 17 characters or holding several addresses."""
    candidate = text(value)
    if candidate is None or len(candidate) > 17 or not _SINGLE_MAC.match(candidate):
        return None
    return candidate


_FRACTION = re.compile(r"(\.\d{6})\d+")


def stamp(value: Any) -> datetime | None:
    """A Pulseway date-time: ISO 8601, ``Z``, an offset or none (UTC), up to 7 fractional
    digits (.NET); always returned timezone-aware (UTC)."""
    raw = text(value)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", raw))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def active_status(value: Any) -> tuple[int, ...]:
    return (STATUS_ACTIVE,) if value is None or bool(value) else (STATUS_INACTIVE,)


def one_code(value: Any) -> tuple[int, ...]:
    found = psa_id(value)
    return () if found is None else (found,)


def main_item(items: Any) -> RawRecord | None:
    """The ``isMain`` entry of a list (a location's addresses, an account's locations), else
    the first one."""
    if not isinstance(items, list):
        return None
    entries = [i for i in items if isinstance(i, Mapping)]
    return next((i for i in entries if get(i, "isMain")), entries[0] if entries else None)


def main_location_id(record: RawRecord) -> int | None:
    return psa_id(get(main_item(get(record, "locations")), "id"))


def main_address(name: str) -> Getter:
    """A field of a location's main address."""
    return lambda record: get(main_item(get(record, "addresses")), name)


def emails(items: Any) -> list[dict[str, Any]]:
    """A contact's ``emails`` as local typed entries: ``{"type", "value", "primary"}``."""
    found: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else ():
        value = text(get(item, "emailAddress"))
        if value is None:
            continue
        found.append(
            {
                "type": text(get(item, "emailType")) or "Email",
                "value": value,
                "primary": bool(get(item, "isDefault")),
            }
        )
    return found


def phones(items: Any) -> list[dict[str, Any]]:
    """A contact's ``phones`` as local typed entries: ``{"type", "value", "primary",
    "kind"}``, ``kind`` being ``fax`` for a phone of the Fax type, else ``phone`` (the shape
    the ConnectWise mapping gives the ``phones`` column)."""
    found: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else ():
        value = text(get(item, "phone")) or text(get(item, "phoneNumber"))
        if value is None:
            continue
        kind = text(get(item, "phoneType")) or "Phone"
        found.append(
            {
                "type": kind,
                "value": value,
                "primary": bool(get(item, "isDefault")),
                "kind": "fax" if kind.lower() == FAX_PHONE_TYPE else "phone",
            }
        )
    return found


def reference_name(raw: RawRecord) -> str:
    return text(get(raw, "name")) or str(get(raw, "id"))


def references(raws: Sequence[RawRecord]) -> list[PsaReference]:
    found = [
        PsaReference(ident, reference_name(raw))
        for raw in raws
        if (ident := psa_id(get(raw, "id"))) is not None
    ]
    return sorted(found, key=lambda r: r.psa_id)


# -- the table's rows --------------------------------------------------------------------------


def wire_value(value: Any) -> Any:
    """A local value as Pulseway takes it: date-times as ISO 8601 UTC with ``Z`` (a date as
    its midnight UTC), blank strings as null; anything else unchanged."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00Z"
    if isinstance(value, str) and not value.strip():
        return None
    return value


@dataclass(frozen=True)
class Field:
    """A local column: read with ``get`` and ``convert``, written to ``write`` (None: not
    writable through the API) after ``to_psa``."""

    local: str
    get: Getter
    convert: Callable[[Any], Any] = text
    write: str | None = None
    to_psa: Callable[[Any], Any] = wire_value


def field(
    local: str,
    source: str | Getter,
    convert: Callable[[Any], Any] = text,
    *,
    write: str | None = None,
    writable: bool = True,
    to_psa: Callable[[Any], Any] = wire_value,
) -> Field:
    getter = key(source) if isinstance(source, str) else source
    target = write if write is not None else (source if isinstance(source, str) else None)
    return Field(local, getter, convert, target if writable else None, to_psa)


@dataclass(frozen=True)
class Ref:
    """A relation (``parent``, ``location`` …) to another record, by its Pulseway id."""

    name: str
    get: Getter
    write: str | None


def first_code(ids: tuple[int, ...]) -> int | None:
    """The one reference id Pulseway keeps (its first; None clears it)."""
    return ids[0] if ids else None


def state_code(value: Any) -> tuple[int, ...]:
    """An asset's state: its ``stateId``, or ``No state`` when it has none."""
    return one_code(value) or (NO_STATE,)


def state_id(ids: tuple[int, ...]) -> int | None:
    """``stateId`` to write: ``No state`` clears it."""
    found = first_code(ids)
    return None if found == NO_STATE else found


def active_flag(ids: tuple[int, ...]) -> bool | None:
    """``isActive`` from the synthetic organization status (None: left as it is)."""
    return None if not ids else ids[0] != STATUS_INACTIVE


@dataclass(frozen=True)
class Code:
    """Reference values (types, statuses) by PSA id; ``to_psa`` gives the written value."""

    kind: ReferenceKind
    get: Getter
    convert: Callable[[Any], tuple[int, ...]]
    write: str | None
    to_psa: Callable[[tuple[int, ...]], Any] = first_code


@dataclass(frozen=True)
class RecordMap:
    """How one Pulseway record becomes a ``PsaRecord``.

    ``parent``: the owning account's id field (None for accounts, and for locations, which
    are read inside their account: the caller passes the account id); ``parent_write``: where
    a write puts it (None: the record cannot move). ``stamps``: the fields whose latest value
    is the record's ``updated_at``.
    """

    fields: Sequence[Field]
    refs: Sequence[Ref] = ()
    codes: Sequence[Code] = ()
    parent: str | None = None
    has_parent: bool = False
    parent_write: str | None = None
    stamps: Callable[[RawRecord], list[Any]] = lambda raw: [get(raw, "modifiedOn")]
    updated_by: Sequence[str] = ("modifiedBy",)

    def columns(self) -> frozenset[str]:
        names = {f.local for f in self.fields}
        names |= {f"{r.name}_id" for r in self.refs}
        names |= {f"{c.kind.value}_id" for c in self.codes}
        if self.has_parent:
            names.add(PARENT_COLUMN)
        return frozenset(names)

    def psa_only_columns(self) -> frozenset[str]:
        names = {f.local for f in self.fields if f.write is None}
        names |= {f"{r.name}_id" for r in self.refs if r.write is None}
        names |= {f"{c.kind.value}_id" for c in self.codes if c.write is None}
        if self.has_parent and self.parent_write is None:
            names.add(PARENT_COLUMN)
        return frozenset(names)

    def to_record(self, raw: RawRecord, parent_psa_id: int | None = None) -> PsaRecord:
        ident = psa_id(get(raw, "id"))
        if ident is None:
            raise ValueError("a Pulseway record without an id")
        moments = [m for m in (stamp(v) for v in self.stamps(raw)) if m is not None]
        owner = parent_psa_id
        if owner is None and self.parent is not None:
            owner = psa_id(get(raw, self.parent))
        who = next((text(get(raw, n)) for n in self.updated_by if text(get(raw, n))), None)
        return PsaRecord(
            ident,
            max(moments) if moments else None,
            {f.local: f.convert(f.get(raw)) for f in self.fields},
            {r.name: psa_id(r.get(raw)) for r in self.refs},
            {c.kind: c.convert(c.get(raw)) for c in self.codes},
            owner,
            updated_by=who,
        )


def _location_stamps(raw: RawRecord) -> list[Any]:
    # A location's address is a record of its own: a changed address changes the location.
    addresses = get(raw, "addresses")
    found = [get(raw, "modifiedOn")]
    if isinstance(addresses, list):
        found += [get(a, "modifiedOn") for a in addresses if isinstance(a, Mapping)]
    return found


ACCOUNT = RecordMap(
    fields=[
        field("name", "accountName"),
        field("short_name", "accountCode"),
        field("description", "description"),
    ],
    refs=[
        Ref("parent", key("parentId"), "parentId"),
        # The main location is the location flagged ``isMain``: it is set on the location,
        # which v2 cannot write outside an account POST.
        Ref("primary_location", main_location_id, None),
    ],
    codes=[
        Code(ReferenceKind.ORGANIZATION_TYPE, key("accountTypeId"), one_code, "accountTypeId"),
        Code(
            ReferenceKind.ORGANIZATION_STATUS,
            key("isActive"),
            active_status,
            "isActive",
            active_flag,
        ),
    ],
)

# Locations (and their addresses) are only written inside an account POST in v2: every
# column flows from Pulseway only.
LOCATION = RecordMap(
    fields=[
        field("name", "locationName", writable=False),
        field("address_1", main_address("address1")),
        field("address_2", main_address("address2")),
        field("city", main_address("city")),
        field("region", main_address("state")),
        field("postal_code", main_address("zipCode")),
        field("country", main_address("country")),
        field("phone", main_address("phone")),
        field("fax", main_address("fax")),
        field("primary", "isMain", flag, writable=False),
    ],
    has_parent=True,
    stamps=_location_stamps,
)

CONTACT = RecordMap(
    fields=[
        field("first_name", "firstName"),
        field("last_name", "lastName"),
        field("title", "jobTitle"),
        # Point of contact (features.md §A4: Important Contact ↔ Point of Contact).
        field("important", "isPoc", flag, write="poc", to_psa=flag),
        # Written through PATCH /v2/crm/contacts/{id}/emails and /phones.
        field("emails", "emails", emails),
        field("phones", "phones", phones),
    ],
    refs=[Ref("location", key("locationId"), "locationId")],
    parent="accountId",
    has_parent=True,
    parent_write="accountId",
)

CONFIGURATION = RecordMap(
    fields=[
        field("name", "name"),
        field("asset_tag", "assetTag"),
        field("serial_number", "serialNumber"),
        field("mac_address", "macAddress", mac_address),
        field("primary_ip", "ipAddress"),
        field("default_gateway", "defaultGateway"),
        # Operating System ↔ OS Info (features.md §A4), OS Type when there is no OS Info.
        field("operating_system", first_of("osInfo", "osType"), write="osInfo"),
        field("model", first_of("modelNumber", "productName"), write="modelNumber"),
        # The output carries the manufacturer's name; the input takes a manufacturerId.
        field("manufacturer", "manufacturer", writable=False),
        field("notes", "description"),
        field("purchased_at", "acquisitionDate", stamp),
        field("warranty_expires_at", "warrantyExpirationDate", stamp),
    ],
    refs=[
        Ref("location", key("accountLocationId"), "accountLocationId"),
        Ref("contact", key("contactId"), "contactId"),
    ],
    codes=[
        Code(ReferenceKind.CONFIGURATION_TYPE, key("categoryId"), one_code, "categoryId"),
        Code(ReferenceKind.CONFIGURATION_STATUS, key("stateId"), state_code, "stateId", state_id),
    ],
    parent="accountId",
    has_parent=True,
    parent_write="accountId",
    # Assets name their modifier (``modifiedBy``) and give its id (``modifiedById``); accounts
    # and contacts give the id as ``modifiedBy``: the id is used throughout.
    updated_by=("modifiedById", "modifiedBy"),
)

RECORD_MAPS: dict[AssetKind, RecordMap] = {
    AssetKind.ORGANIZATION: ACCOUNT,
    AssetKind.LOCATION: LOCATION,
    AssetKind.CONTACT: CONTACT,
    AssetKind.CONFIGURATION: CONFIGURATION,
}

# -- writes ------------------------------------------------------------------------------------
# Input-DTO names the field table does not hold (psa-apis.md §4.7). ``writes.py`` builds the
# bodies from these and from the table's ``write`` names.

# AccountPostInputDto: what psasync has no column for, picked by the provider.
BUSINESS_TYPE_ID: Final = "businessTypeId"
ACCOUNT_MANAGER_ID: Final = "accountManagerId"
ACCOUNT_LOCATIONS: Final = "locations"
# AccountLocationInputDto and its AccountAddressInputDto list.
LOCATION_NAME: Final = "locationName"
IS_MAIN: Final = "isMain"
IS_ACTIVE: Final = "isActive"
ADDRESSES: Final = "addresses"
# Local location column (``PsaChange.address``) → address input name.
ADDRESS_WRITE: Final[Mapping[str, str]] = {
    "address_1": "address1",
    "address_2": "address2",
    "city": "city",
    "region": "state",
    "postal_code": "zipCode",
    "country": "country",
    "phone": "phone",
    "fax": "fax",
}
# Where ``/v2/security/userinfo`` may give the API user's employee id (the first found).
USER_EMPLOYEE_ID: Final = ("employeeId", "userId")
# The location an account is created with when psasync has no address for it.
DEFAULT_LOCATION_NAME: Final = "Main"

# ContactInputDto (POST) takes only these of the contact's scalar properties (plus the lists):
# the rest (job title, point of contact) is written by a PATCH right after the create.
CONTACT_CREATE_INPUT: Final = frozenset({"firstName", "lastName", "accountId", "locationId"})

# HardwareAssetInputDto, every property: an asset has no PATCH, so an update PUTs all of them
# (read back from the asset) with the change laid over.
HARDWARE_ASSET_INPUT: Final = (
    "name",
    "accountId",
    "accountLocationId",
    "contactId",
    "categoryId",
    "brandId",
    "serialNumber",
    "businessImpactId",
    "stateId",
    "locationInfo",
    "description",
    "barCode",
    "assetTag",
    "vendorId",
    "isActive",
    "modelNumber",
    "machineGroupId",
    "ipAddress",
    "subnetMask",
    "defaultGateway",
    "dnsServers",
    "dhcpEnabled",
    "dhcpServer",
    "winsEnabled",
    "secondaryWinsServer",
    "connectionGatewayIp",
    "osType",
    "osInfo",
    "majorVersion",
    "minorVersion",
    "macAddress",
    "loginName",
    "lastLoginname",
    "currentUser",
    "productName",
    "machineVersion",
    "motherboardManufacturerId",
    "motherboardProductCode",
    "motherboardSerialNumber",
    "motherboardVersion",
    "chassisAssetTag",
    "chassisManufacturerId",
    "chassisSerialNumber",
    "chassisType",
    "chassisVersion",
    "busSpeed",
    "manufacturerId",
    "maxMemorySize",
    "maxMemorySlots",
    "primaryWinsServer",
    "computerName",
    "purchaseCost",
    "warrantyExpirationDate",
    "expirationDate",
    "acquisitionDate",
    "firstCheckIn",
    "lastCheckIn",
    "lastReboot",
)

# What a write's answer must carry to be taken as the stored record (else it is re-read by id).
WRITE_ANSWER_FIELDS: Final[Mapping[AssetKind, tuple[str, ...]]] = {
    AssetKind.ORGANIZATION: ("id", "accountName", "modifiedOn", "locations"),
    AssetKind.CONFIGURATION: ("id", "name", "modifiedOn", "accountId"),
}

# ContactEmail/PhonePatchOperationDto (PATCH /v2/crm/contacts/{id}/emails and /phones).
ITEM_OPERATION: Final = "operation"
ITEM_ADD: Final = 0
ITEM_UPDATE: Final = 1
ITEM_DELETE: Final = 2
ITEM_TYPE_ID: Final = "typeId"
ITEM_DEFAULT: Final = "isDefault"


@dataclass(frozen=True)
class ContactItems:
    """A contact's email or phone list, as read, created and patched."""

    column: str  # the local column (``emails`` / ``phones``)
    read_value: Getter  # the value of an output entry
    read_type_id: str  # its type id
    input_value: str  # ContactEmail/PhoneInputDto (create)
    input_type_id: str
    patch_value: str  # the patch operation's entry to act on
    patch_new_value: str  # its new value (update)


EMAILS = ContactItems(
    column="emails",
    read_value=key("emailAddress"),
    read_type_id="emailTypeId",
    input_value="emailAddress",
    input_type_id="emailTypeId",
    patch_value="emailAddress",
    patch_new_value="newEmailAddress",
)
PHONES = ContactItems(
    column="phones",
    read_value=first_of("phone", "phoneNumber"),
    read_type_id="phoneTypeId",
    input_value="phoneNumber",
    input_type_id="phoneTypeId",
    patch_value="phoneNumber",
    patch_new_value="newPhoneNumber",
)
CONTACT_ITEMS: Final = (EMAILS, PHONES)

# -- creates -----------------------------------------------------------------------------------

# What Pulseway requires before it takes a new record, as local columns (psa-apis.md §4.7):
# an account needs a name and a type (its business type and account manager are not local
# columns: the provider picks them; its required location is made from the local primary
# location's address, or named ``DEFAULT_LOCATION_NAME``); a contact its first and last name
# and account; an asset its name, account and category (without a location, the account's
# main one). Locations cannot be created on their own in v2 (``LOCATION_CREATE_REFUSAL``).
REQUIRED_FOR_CREATE: dict[AssetKind, frozenset[str]] = {
    AssetKind.ORGANIZATION: frozenset({"name", "organization_type_id"}),
    AssetKind.LOCATION: frozenset(),
    AssetKind.CONTACT: frozenset({"first_name", "last_name", PARENT_COLUMN}),
    AssetKind.CONFIGURATION: frozenset({"name", "configuration_type_id", PARENT_COLUMN}),
}

REQUIRED_WORDS: dict[str, str] = {
    "name": "name",
    "first_name": "first name",
    "last_name": "last name",
    "organization_type_id": "type",
    "configuration_type_id": "type",
    PARENT_COLUMN: "organization",
}

LOCATION_CREATE_REFUSAL: Final = (
    "Pulseway PSA v2 creates locations only inside a new account's POST: add the location in "
    "Pulseway (it is then read into psasync)"
)

# Location phone and fax flow from the PSA only (IT Glue's documented exception); they are
# already read-only here, as every location column is.
FIELD_MAP = FieldMap(
    mapped={kind: table.columns() for kind, table in RECORD_MAPS.items()},
    psa_to_local_only={kind: table.psa_only_columns() for kind, table in RECORD_MAPS.items()},
    required_for_create=REQUIRED_FOR_CREATE,
)
