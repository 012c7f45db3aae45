"""ConnectWise Manage ↔ psasync field mapping (features.md §A4), as data.

Each table row pairs a local field with a ConnectWise path (``a/b`` walks nested objects) and
a converter, and for writes the ConnectWise property to write and a converter local → PSA (a
row that cannot be written flows from ConnectWise only). The legacy SOAP API's names sit at
the end, mapped to the same local columns. This module, ``client.py`` and ``soap.py`` are the
only code that knows ConnectWise names.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, date, datetime
from typing import Any

from models.enums import AssetKind, ReferenceKind
from sync.providers.base import FieldMap, PsaChange, PsaRecord, RawRecord, parse_psa_datetime

Getter = Callable[[RawRecord], Any]
Writer = Callable[[Any], Any]


def path(spec: str) -> Getter:
    """Compile ``a/b/c`` into a getter that yields None when any step is missing."""
    steps = tuple(spec.split("/"))
    if len(steps) == 1:
        key = steps[0]
        return lambda record: record.get(key)

    def get(record: RawRecord) -> Any:
        value: Any = record
        for step in steps:
            if not isinstance(value, dict):
                return None
            value = value.get(step)
        return value

    return get


def text(value: Any) -> str | None:
    if value is None:
        return None
    stripped = str(value).strip()
    return stripped or None


def flag(value: Any) -> bool:
    return bool(value)


_SINGLE_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-]?)([0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$")


def mac_address(value: Any) -> str | None:
    """IT Glue skips MAC values longer than 17 characters or holding several addresses."""
    candidate = text(value)
    if candidate is None or len(candidate) > 17 or not _SINGLE_MAC.match(candidate):
        return None
    return candidate


def ref_id(value: Any) -> int | None:
    return int(value["id"]) if isinstance(value, dict) and value.get("id") is not None else None


def ref_name(value: Any) -> str | None:
    return text(value.get("name")) if isinstance(value, dict) else None


def ref_code(value: Any) -> tuple[int, ...]:
    found = ref_id(value)
    return () if found is None else (found,)


def ref_codes(values: Any) -> tuple[int, ...]:
    if not isinstance(values, list):
        return ()
    return tuple(sorted({int(item["id"]) for item in values if isinstance(item, dict)}))


def region(value: Any) -> str | None:
    if not isinstance(value, dict):
        return text(value)
    return text(value.get("identifier")) or text(value.get("name"))


def communication_items(kind: str) -> Callable[[Any], list[dict[str, Any]]]:
    """Typed emails, or phones and faxes, from a contact's ``communicationItems``."""
    wanted = {"Email"} if kind == "email" else {"Phone", "Fax"}

    def convert(items: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for item in items or ():
            if not isinstance(item, dict) or item.get("communicationType") not in wanted:
                continue
            entry: dict[str, Any] = {
                "type": ref_name(item.get("type")) or item.get("communicationType"),
                "value": text(item.get("value")),
                "primary": bool(item.get("defaultFlag")),
            }
            if kind != "email":
                entry["kind"] = str(item.get("communicationType")).lower()
                if item.get("extension"):
                    entry["extension"] = str(item["extension"])
            found.append(entry)
        return found

    return convert


# -- local → ConnectWise converters ---------------------------------------------------------


def psa_datetime(value: Any) -> str | None:
    """ConnectWise's body format: UTC, to the second, trailing ``Z`` (naive values are UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip())
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    else:
        raise TypeError(f"not a date or datetime: {value!r}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def by_name(value: Any) -> dict[str, Any] | None:
    """A reference ConnectWise resolves by name (countries, manufacturers)."""
    name = text(value)
    return None if name is None else {"name": name}


def state_reference(value: Any) -> dict[str, Any] | None:
    """A site's state: codes (``FL``, ``NSW``) by identifier, longer values by name.

    Sites read back the identifier first (``region``), so a synced value round-trips.
    """
    state = text(value)
    if state is None:
        return None
    return {"identifier": state} if len(state) <= 3 and state.isalnum() else {"name": state}


def ref_object(psa_id: int | None) -> dict[str, Any] | None:
    """A reference replaced whole: ``{"id": n}``, or None to clear it."""
    return None if psa_id is None else {"id": int(psa_id)}


def ref_object_of(ids: tuple[int, ...]) -> dict[str, Any] | None:
    """A single-valued reference from ``PsaChange.codes`` (empty clears it)."""
    if len(ids) > 1:
        raise ValueError(f"one reference value expected, not {len(ids)}")
    return ref_object(ids[0]) if ids else None


def ref_objects(ids: tuple[int, ...]) -> list[dict[str, Any]]:
    return [{"id": int(i)} for i in ids]


# The stock ConnectWise communication types an item falls back to when it names none.
_DEFAULT_COMMUNICATION_TYPE = {"email": "Email", "phone": "Direct", "fax": "Fax"}


def communication_items_to_psa(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A contact's whole ``communicationItems`` from its ``emails`` and ``phones``.

    ``type`` is a communication type by name (``/company/communicationTypes``); ConnectWise
    derives ``communicationType`` (Email, Phone, Fax) from it, so a phone's ``kind`` is not
    sent. ``defaultFlag`` is ``primary``. Entries without a value are left out.
    """
    entries = [(entry, "email") for entry in values.get("emails") or ()]
    entries += [(entry, "phone") for entry in values.get("phones") or ()]
    items: list[dict[str, Any]] = []
    for entry, group in entries:
        data: Mapping[str, Any] = entry if isinstance(entry, Mapping) else {"value": entry}
        value = text(data.get("value"))
        if value is None:
            continue
        kind = "fax" if group == "phone" and text(data.get("kind")) == "fax" else group
        item: dict[str, Any] = {
            "type": {"name": text(data.get("type")) or _DEFAULT_COMMUNICATION_TYPE[kind]},
            "value": value,
            "defaultFlag": bool(data.get("primary")),
        }
        extension = text(data.get("extension")) if kind != "email" else None
        if extension:
            item["extension"] = extension
        items.append(item)
    return items


# Which flags of a ``/company/communicationTypes`` entry make it an option for new contacts'
# emails or phones (a fax is a phone entry of kind "fax").
_COMMUNICATION_FLAGS = {"email": ("emailFlag",), "phone": ("phoneFlag", "faxFlag")}


def communication_type_options(raws: Iterable[RawRecord]) -> dict[str, list[str]]:
    """``{"email": [names], "phone": [names]}`` from ConnectWise's communication types."""
    rows = list(raws)
    return {
        group: [reference_name(raw) for raw in rows if any(raw.get(f) for f in flags)]
        for group, flags in _COMMUNICATION_FLAGS.items()
    }


# -- the table's rows --------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A local column: read from ``spec``, written to ``write`` (None: not writable)."""

    local: str
    spec: str
    get: Getter
    convert: Callable[[Any], Any] = text
    write: str | None = None
    to_psa: Writer = text


def field(
    local: str,
    spec: str,
    convert: Callable[[Any], Any] = text,
    *,
    to_psa: Writer = text,
    writable: bool = True,
) -> Field:
    if writable and "/" in spec:
        raise ValueError(f"write {local} as a whole property, not {spec!r}")
    return Field(local, spec, path(spec), convert, spec if writable else None, to_psa)


@dataclass(frozen=True)
class Combined:
    """Local columns ConnectWise keeps in one property, written whole from all of them."""

    locals: tuple[str, ...]
    write: str
    to_psa: Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Ref:
    """A relation (``parent``, ``location`` …) to another record, as a reference object."""

    name: str
    spec: str
    get: Getter
    write: str | None


def ref(name: str, spec: str, *, writable: bool = True) -> Ref:
    return Ref(name, spec, path(spec), spec if writable else None)


@dataclass(frozen=True)
class Code:
    """Reference values (types, statuses) by PSA id: one reference, or a list of them."""

    kind: ReferenceKind
    spec: str
    get: Getter
    convert: Callable[[Any], tuple[int, ...]]
    write: str
    to_psa: Callable[[tuple[int, ...]], Any]
    create_only: bool = False  # ConnectWise takes it on POST only


def code(kind: ReferenceKind, spec: str, *, many: bool = False, create_only: bool = False) -> Code:
    if many:
        return Code(kind, spec, path(spec), ref_codes, spec, ref_objects, create_only)
    return Code(kind, spec, path(spec), ref_code, spec, ref_object_of, create_only)


@dataclass(frozen=True)
class Parent:
    """The owning company; ``write`` None when it is part of the record's URL (sites)."""

    spec: str
    get: Getter
    write: str | None


def parent(spec: str, *, in_body: bool = True) -> Parent:
    return Parent(spec, path(spec), spec if in_body else None)


PARENT_COLUMN = "organization_id"


@dataclass(frozen=True)
class RecordMap:
    """How one ConnectWise entity becomes a ``PsaRecord``, and a ``PsaChange`` a body."""

    fields: Sequence[Field]
    refs: Sequence[Ref] = ()
    codes: Sequence[Code] = ()
    parent: Parent | None = None
    combined: Sequence[Combined] = ()
    # Where a create puts ``PsaChange.address`` (local location columns → this entity).
    address: Sequence[Field] = ()

    def columns(self) -> frozenset[str]:
        """The local columns this map writes: what a one-way sync makes read-only."""
        names = {f.local for f in self.fields}
        names |= {f"{r.name}_id" for r in self.refs}
        names |= {f"{c.kind.value}_id" for c in self.codes}
        if self.parent is not None:
            names.add(PARENT_COLUMN)
        return frozenset(names)

    def psa_only_columns(self) -> frozenset[str]:
        """Columns ConnectWise will not change through the API once the record exists."""
        combined = {local for group in self.combined for local in group.locals}
        names = {f.local for f in self.fields if f.write is None and f.local not in combined}
        names |= {f"{r.name}_id" for r in self.refs if r.write is None}
        names |= {f"{c.kind.value}_id" for c in self.codes if c.create_only}
        if self.parent is not None and self.parent.write is None:
            names.add(PARENT_COLUMN)
        return frozenset(names)

    def condition_path(self, column: str) -> str:
        """The ConnectWise path to filter on for a local column (``company/id`` …)."""
        for f in self.fields:
            if f.local == column:
                return f.spec
        for r in self.refs:
            if f"{r.name}_id" == column:
                return f"{r.spec}/id"
        for c in self.codes:
            if f"{c.kind.value}_id" == column:
                return f"{c.spec}/id"
        if self.parent is not None and column == PARENT_COLUMN:
            return f"{self.parent.spec}/id"
        raise KeyError(f"{column} is not mapped")

    def to_record(self, raw: RawRecord) -> PsaRecord:
        info = raw.get("_info")
        if not isinstance(info, dict):
            info = {}
        values = {f.local: f.convert(f.get(raw)) for f in self.fields}
        refs = {r.name: ref_id(r.get(raw)) for r in self.refs}
        codes = {c.kind: c.convert(c.get(raw)) for c in self.codes}
        owner = ref_id(self.parent.get(raw)) if self.parent else None
        return PsaRecord(
            int(raw["id"]),
            parse_psa_datetime(info.get("lastUpdated")),
            values,
            refs,
            codes,
            owner,
            updated_by=text(info.get("updatedBy")),
        )

    def to_psa(self, change: PsaChange, *, create: bool) -> dict[str, Any]:
        """ConnectWise property → value for what ``change`` holds (None clears a value).

        An update leaves out what ConnectWise takes on create only, and what it cannot be
        written at all; a combined property needs all its columns (ValueError otherwise:
        replacing it from part of them would drop the rest). ``address`` is used on create.
        """
        self._check_known(change)
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.write is not None and f.local in change.values:
                out[f.write] = f.to_psa(change.values[f.local])
        for group in self.combined:
            given = [local for local in group.locals if local in change.values]
            if not given:
                continue
            if not create and len(given) < len(group.locals):
                raise ValueError(
                    f"{' and '.join(group.locals)} are written together (ConnectWise keeps them "
                    f"in one {group.write} list): send all of them"
                )
            out[group.write] = group.to_psa({c: change.values.get(c) for c in group.locals})
        for r in self.refs:
            if r.write is not None and r.name in change.refs:
                out[r.write] = ref_object(change.refs[r.name])
        for c in self.codes:
            if c.kind in change.codes and (create or not c.create_only):
                out[c.write] = c.to_psa(tuple(change.codes[c.kind]))
        if self.parent is not None and self.parent.write and change.parent_psa_id is not None:
            out[self.parent.write] = ref_object(change.parent_psa_id)
        if create and change.address:
            for f in self.address:
                if f.write is not None and f.local in change.address:
                    out[f.write] = f.to_psa(change.address[f.local])
        return out

    def _check_known(self, change: PsaChange) -> None:
        unknown = sorted(set(change.values) - {f.local for f in self.fields})
        unknown += sorted(set(change.refs) - {r.name for r in self.refs})
        unknown += sorted(str(k) for k in set(change.codes) - {c.kind for c in self.codes})
        if unknown:
            raise ValueError(f"not mapped to ConnectWise: {', '.join(unknown)}")


COMPANY = RecordMap(
    fields=[field("name", "name"), field("short_name", "identifier")],
    refs=[ref("parent", "parentCompany"), ref("primary_location", "site")],
    codes=[
        # Types can only be set on POST; later changes go through typeAssociations.
        code(ReferenceKind.ORGANIZATION_TYPE, "types", many=True, create_only=True),
        code(ReferenceKind.ORGANIZATION_STATUS, "status"),
    ],
    # ConnectWise keeps a company's address on the company and builds its primary site from
    # it; its state is plain text there (a site's is a reference).
    address=[
        field("address_1", "addressLine1"),
        field("address_2", "addressLine2"),
        field("city", "city"),
        field("region", "state"),
        field("postal_code", "zip"),
        field("country", "country", ref_name, to_psa=by_name),
    ],
)

SITE = RecordMap(
    fields=[
        field("name", "name"),
        field("address_1", "addressLine1"),
        field("address_2", "addressLine2"),
        field("city", "city"),
        field("region", "stateReference", region, to_psa=state_reference),
        field("postal_code", "zip"),
        field("country", "country", ref_name, to_psa=by_name),
        field("phone", "phoneNumber"),
        field("fax", "faxNumber"),
        field("primary", "primaryAddressFlag", flag, to_psa=flag),
    ],
    # A site is created and addressed under its company and cannot move to another one.
    parent=parent("company", in_body=False),
)

CONTACT = RecordMap(
    fields=[
        field("first_name", "firstName"),
        field("last_name", "lastName"),
        field("title", "title"),
        field("emails", "communicationItems", communication_items("email"), writable=False),
        field("phones", "communicationItems", communication_items("phone"), writable=False),
    ],
    # Emails and phones share one array, replaced whole: the engine sends both together.
    combined=[Combined(("emails", "phones"), "communicationItems", communication_items_to_psa)],
    refs=[ref("location", "site")],
    # Like a company's, a contact's types can only be set on POST.
    codes=[code(ReferenceKind.CONTACT_TYPE, "types", many=True, create_only=True)],
    parent=parent("company"),
)

CONFIGURATION = RecordMap(
    fields=[
        field("name", "name"),
        field("asset_tag", "tagNumber"),
        field("default_gateway", "defaultGateway"),
        field("installed_at", "installationDate", parse_psa_datetime, to_psa=psa_datetime),
        # A member reference: ConnectWise resolves members by id or identifier, and the local
        # column holds the member's name, so it cannot be written back.
        field("installed_by", "installedBy", ref_name, writable=False),
        field("manufacturer", "manufacturer", ref_name, to_psa=by_name),
        field("model", "modelNumber"),
        field("notes", "notes"),
        field("operating_system", "osType"),
        field("primary_ip", "ipAddress"),
        field("purchased_at", "purchaseDate", parse_psa_datetime, to_psa=psa_datetime),
        field("serial_number", "serialNumber"),
        field("mac_address", "macAddress", mac_address),
        field(
            "warranty_expires_at", "warrantyExpirationDate", parse_psa_datetime, to_psa=psa_datetime
        ),
    ],
    refs=[ref("location", "site"), ref("contact", "contact")],
    codes=[
        code(ReferenceKind.CONFIGURATION_TYPE, "type"),
        code(ReferenceKind.CONFIGURATION_STATUS, "status"),
    ],
    parent=parent("company"),
)


def reference_name(raw: RawRecord) -> str:
    """Reference lists name their entries ``name`` (types) or ``description`` (statuses)."""
    return str(raw.get("name") or raw.get("description") or raw.get("id"))


RECORD_MAPS = {
    AssetKind.ORGANIZATION: COMPANY,
    AssetKind.LOCATION: SITE,
    AssetKind.CONTACT: CONTACT,
    AssetKind.CONFIGURATION: CONFIGURATION,
}

# What ConnectWise calls each kind in a callback entry's ``type`` (and a delivered payload's
# ``Type``). Sites have no documented callbacks: they are polled through their company.
CALLBACK_TYPES: dict[AssetKind, str] = {
    AssetKind.ORGANIZATION: "company",
    AssetKind.CONTACT: "contact",
    AssetKind.CONFIGURATION: "configuration",
}

# -- creates -----------------------------------------------------------------------------------

# ConnectWise requires a company identifier (unique, case-insensitively; 30 characters at
# most). A new organization without a short name gets one derived from its name.
IDENTIFIER_COLUMN = "short_name"
IDENTIFIER_MAX_LENGTH = 30


def identifier_taken(errors: Sequence[Mapping[str, Any]]) -> bool:
    """Whether ConnectWise refused a company because its identifier is in use."""
    return any(e.get("code") == "ObjectExists" and e.get("field") == "identifier" for e in errors)


# What ConnectWise needs before it takes a new record, as local columns. A configuration
# needs name, type and status (IT Glue's rule); a contact its first name (``firstName`` is
# required). ConnectWise keeps a company's address on the company, so a new organization needs
# a primary location with an address: ``primary_location_id`` stands for that requirement, and
# the address itself travels in ``PsaChange.address``.
ADDRESS_REQUIREMENT = "primary_location_id"
REQUIRED_FOR_CREATE: dict[AssetKind, frozenset[str]] = {
    AssetKind.ORGANIZATION: frozenset(
        {"name", ADDRESS_REQUIREMENT, "organization_type_id", "organization_status_id"}
    ),
    AssetKind.LOCATION: frozenset({"name", PARENT_COLUMN}),
    AssetKind.CONTACT: frozenset({"first_name", PARENT_COLUMN}),
    AssetKind.CONFIGURATION: frozenset(
        {"name", "configuration_type_id", "configuration_status_id", PARENT_COLUMN}
    ),
}

# How ``missing_for_create`` words each required column, in the order it lists them.
REQUIRED_WORDS: dict[str, str] = {
    "name": "name",
    "first_name": "first name",
    ADDRESS_REQUIREMENT: (
        "an address (ConnectWise keeps a company's address on it: give the organization a "
        "primary location with an address)"
    ),
    "organization_type_id": "type",
    "configuration_type_id": "type",
    "organization_status_id": "status",
    "configuration_status_id": "status",
    PARENT_COLUMN: "organization",
}

# Columns that flow from ConnectWise only, whatever the configured direction:
# - site phone and fax: IT Glue's documented exception;
# - what ConnectWise will not change through the API once a record exists (derived from the
#   tables above): company types (``organization_type_id``; create-only in ConnectWise, so
#   under two-way sync the organization type flows PSA → local) and contact types, a site's
#   company (a site cannot move), and a configuration's ``installed_by``.
_PSA_ONLY_EXCEPTIONS = {AssetKind.LOCATION: frozenset({"phone", "fax"})}

FIELD_MAP = FieldMap(
    mapped={kind: record_map.columns() for kind, record_map in RECORD_MAPS.items()},
    psa_to_local_only={
        kind: record_map.psa_only_columns() | _PSA_ONLY_EXCEPTIONS.get(kind, frozenset())
        for kind, record_map in RECORD_MAPS.items()
    },
    required_for_create=REQUIRED_FOR_CREATE,
)


# -- the legacy SOAP API (psa-apis.md §3): the same local columns, SOAP names --------------------
#
# SOAP records are dicts in SOAP names (``soap.py`` serializes zeep's objects). Where SOAP
# lacks what REST has, the column reads None (SOAP-only integrations know no better): a
# company's parent company, a site's phone and fax, a contact's site, a configuration's
# installer name (SOAP gives the member identifier, not the name). SOAP gives one company type
# (REST: a list), a contact's single email, phone and fax (REST: every communication item,
# with its type), and company types and statuses by name only.
#
# Writes (``SOAP_WRITE_MAPS``, at the end) change a record as read: ``Update*`` replaces the
# whole record, so the provider starts from what it read and each column a change sets
# rewrites its elements only. What SOAP cannot write is skipped, and flows from ConnectWise
# only (``SOAP_FIELD_MAP``).

# Company types and statuses have no ids in SOAP: each name gets a stable id derived from it,
# above any real ConnectWise id (``synthetic_id``).
SYNTHETIC_ID_BASE = 1 << 40


def synthetic_id(name: str) -> int:
    """A reference value's id derived from its name: ``SYNTHETIC_ID_BASE`` plus 39 bits of the
    SHA-256 of the case-folded, stripped name (ConnectWise compares names case-insensitively).
    Stable across processes and versions, unlike Python's ``hash()``."""
    digest = hashlib.sha256(name.strip().casefold().encode()).digest()
    return SYNTHETIC_ID_BASE + (int.from_bytes(digest[:5], "big") >> 1)


def soap_id(value: Any) -> int | None:
    """A SOAP id element: ints, or a string in ``ConfigurationFindResult.CompanyId``; 0 and
    blank mean none."""
    if value is None or isinstance(value, bool):
        return None
    try:
        found = int(str(value).strip())
    except ValueError:
        return None
    return found if found > 0 else None


def soap_id_code(value: Any) -> tuple[int, ...]:
    found = soap_id(value)
    return () if found is None else (found,)


def soap_name_code(value: Any) -> tuple[int, ...]:
    name = text(value)
    return () if name is None else (synthetic_id(name),)


def soap_list(value: Any) -> list[Any]:
    """A SOAP ``ArrayOf…`` element as zeep serializes it: ``{"Item": [...]}``, a list, or None."""
    if isinstance(value, dict):
        value = next(iter(value.values()), None) if len(value) == 1 else None
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def street_line(index: int) -> Callable[[Any], str | None]:
    def convert(lines: Any) -> str | None:
        found = soap_list(lines)
        return text(found[index]) if len(found) > index else None

    return convert


def soap_datetime(value: Any) -> datetime | None:
    """zeep gives ``xs:dateTime`` as datetimes (naive: UTC), the simulator's text as ISO."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return parse_psa_datetime(value)


def single_item(label: str, kind: str | None = None) -> Callable[[Any], list[dict[str, Any]]]:
    """SOAP's one email (or phone, or fax) as the REST mapping's list of items."""

    def convert(value: Any) -> list[dict[str, Any]]:
        found = text(value)
        if found is None:
            return []
        item: dict[str, Any] = {"type": label, "value": found, "primary": True}
        if kind is not None:
            item["kind"] = kind
        return [item]

    return convert


def soap_phones(record: RawRecord) -> list[dict[str, Any]]:
    return single_item("Direct", "phone")(record.get("Phone")) + single_item("Fax", "fax")(
        record.get("Fax")
    )


@dataclass(frozen=True)
class SoapRecordMap:
    """How one SOAP record becomes a ``PsaRecord`` with the REST map's local names.

    ``fields``: local column → (getter, converter); ``refs``: relation → getter of an id;
    ``codes``: reference kind → getter and converter to PSA ids.
    """

    id: Getter
    fields: Mapping[str, tuple[Getter, Callable[[Any], Any]]]
    refs: Mapping[str, Getter] = dataclass_field(default_factory=dict)
    codes: Mapping[ReferenceKind, tuple[Getter, Callable[[Any], tuple[int, ...]]]] = (
        dataclass_field(default_factory=dict)
    )
    parent: Getter | None = None
    updated_at: Getter | None = None
    updated_by: Getter | None = None

    def unread_columns(self) -> frozenset[str]:
        """Local columns SOAP has no element for (read as None): not synced through SOAP,
        so a pull never clears what the local record holds there."""
        fields = {local for local, (get, _convert) in self.fields.items() if get is _none}
        refs = {f"{name}_id" for name, get in self.refs.items() if get is _none}
        return frozenset(fields | refs)

    def to_record(self, raw: RawRecord, *, parent_psa_id: int | None = None) -> PsaRecord:
        psa_id = soap_id(self.id(raw))
        if psa_id is None:
            raise ValueError("a ConnectWise SOAP record without an id")
        owner = soap_id(self.parent(raw)) if self.parent is not None else None
        return PsaRecord(
            psa_id,
            soap_datetime(self.updated_at(raw)) if self.updated_at else None,
            {local: convert(get(raw)) for local, (get, convert) in self.fields.items()},
            {name: soap_id(get(raw)) for name, get in self.refs.items()},
            {kind: convert(get(raw)) for kind, (get, convert) in self.codes.items()},
            owner if owner is not None else parent_psa_id,
            updated_by=text(self.updated_by(raw)) if self.updated_by else None,
        )


def _none(_record: RawRecord) -> None:
    return None


def _soap(spec: str, convert: Callable[[Any], Any] = text) -> tuple[Getter, Callable[[Any], Any]]:
    return path(spec), convert


def _absent() -> tuple[Getter, Callable[[Any], Any]]:
    return _none, text


# A full ``Company`` (``GetCompany``); company types and statuses are names.
SOAP_COMPANY = SoapRecordMap(
    id=path("Id"),
    fields={"name": _soap("CompanyName"), "short_name": _soap("CompanyID")},
    refs={"parent": _none, "primary_location": path("DefaultAddress/Id")},
    codes={
        ReferenceKind.ORGANIZATION_TYPE: _soap("Type", soap_name_code),
        ReferenceKind.ORGANIZATION_STATUS: _soap("Status", soap_name_code),
    },
    updated_at=path("LastUpdate"),
)

# A ``CompanyAddress`` of a company's ``Addresses``: a site (same id as REST's site).
SOAP_ADDRESS = SoapRecordMap(
    id=path("Id"),
    fields={
        "name": _soap("SiteName"),
        "address_1": _soap("StreetLines", street_line(0)),
        "address_2": _soap("StreetLines", street_line(1)),
        "city": _soap("City"),
        "region": _soap("State"),
        "postal_code": _soap("Zip"),
        "country": _soap("Country"),
        "phone": _absent(),
        "fax": _absent(),
        "primary": _soap("DefaultFlag", flag),
    },
    parent=path("CompanyRecid"),
)

# A ``ContactFindResult`` (it has the company's record id and the stamp; ``GetContact`` names
# the company by its identifier only).
SOAP_CONTACT = SoapRecordMap(
    id=path("Id"),
    fields={
        "first_name": _soap("FirstName"),
        "last_name": _soap("LastName"),
        "title": _soap("Title"),
        "emails": _soap("Email", single_item("Email")),
        "phones": (lambda record: record, soap_phones),
    },
    refs={"location": _none},
    codes={ReferenceKind.CONTACT_TYPE: _soap("Type", soap_name_code)},
    parent=path("CompanyRecID"),
    updated_at=path("LastUpdate"),
    updated_by=path("UpdatedBy"),
)

# A full ``Configuration`` (``GetConfiguration``); its type and status carry their REST ids.
SOAP_CONFIGURATION = SoapRecordMap(
    id=path("Id"),
    fields={
        "name": _soap("ConfigurationName"),
        "asset_tag": _soap("TagNumber"),
        "default_gateway": _soap("DefaultGateway"),
        "installed_at": _soap("InstallationDate", soap_datetime),
        "installed_by": _absent(),
        "manufacturer": _soap("Manufacturer"),
        "model": _soap("ModelNumber"),
        "notes": _soap("Notes"),
        "operating_system": _soap("OSType"),
        "primary_ip": _soap("IPAddress"),
        "purchased_at": _soap("PurchaseDate", soap_datetime),
        "serial_number": _soap("SerialNumber"),
        "mac_address": _soap("MacAddress", mac_address),
        "warranty_expires_at": _soap("WarrantyExpiration", soap_datetime),
    },
    refs={"location": path("AddressId"), "contact": path("ContactId")},
    codes={
        ReferenceKind.CONFIGURATION_TYPE: _soap("ConfigurationTypeId", soap_id_code),
        ReferenceKind.CONFIGURATION_STATUS: _soap("StatusId", soap_id_code),
    },
    parent=path("CompanyId"),
    updated_at=path("LastUpdate"),
    updated_by=path("UpdatedBy"),
)

SOAP_RECORD_MAPS = {
    AssetKind.ORGANIZATION: SOAP_COMPANY,
    AssetKind.LOCATION: SOAP_ADDRESS,
    AssetKind.CONTACT: SOAP_CONTACT,
    AssetKind.CONFIGURATION: SOAP_CONFIGURATION,
}

# SOAP names the provider filters, orders and collects reference values by.
SOAP_ID = "Id"
SOAP_LAST_UPDATE = "LastUpdate"
SOAP_COMPANY_STATUS = "Status"
SOAP_ADDRESSES = "Addresses"
# The id element of each entity's find results.
SOAP_FIND_ID: dict[str, str] = {
    "company": "CompanyRecID",
    "contact": "Id",
    "configuration": "Id",
}
# Skip paging is only stable under a stable order: by id, so pages also ascend.
SOAP_ORDER: dict[str, str] = SOAP_FIND_ID
SOAP_CONFIGURATION_FILTER = {
    ReferenceKind.CONFIGURATION_TYPE: "ConfigurationTypeId",
    ReferenceKind.CONFIGURATION_STATUS: "StatusId",
}
# Where reference values are collected from, per entity's find results: kind → (id element,
# name element); no id element means the id is derived from the name (``synthetic_id``).
SOAP_REFERENCE_SOURCES: dict[str, dict[ReferenceKind, tuple[str | None, str]]] = {
    "company": {
        ReferenceKind.ORGANIZATION_TYPE: (None, "Type"),
        ReferenceKind.ORGANIZATION_STATUS: (None, "Status"),
    },
    "contact": {ReferenceKind.CONTACT_TYPE: (None, "Type")},
    "configuration": {
        ReferenceKind.CONFIGURATION_TYPE: ("ConfigurationTypeId", "ConfigurationType"),
        ReferenceKind.CONFIGURATION_STATUS: ("StatusId", "Status"),
    },
}


# -- SOAP writes: local columns into a record as read ------------------------------------------

SoapPut = Callable[[dict[str, Any], Any], None]
# What .NET sends for a DateTime nobody set (required dateTime elements of a new contact).
DOTNET_MIN_DATETIME = datetime(1, 1, 1)  # xs:dateTime without a zone


def soap_moment(value: Any) -> datetime | None:
    """A local date or datetime as an ``xs:dateTime`` (UTC; a date is its midnight)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip())
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise TypeError(f"not a date or datetime: {value!r}")


def soap_put(element: str, to_soap: Callable[[Any], Any] = text, *, clears: str = "") -> SoapPut:
    """Write one element; ``clears``: an element naming the same thing another way (a name
    beside an id), blanked so the two cannot disagree."""

    def put(record: dict[str, Any], value: Any) -> None:
        record[element] = to_soap(value)
        if clears:
            record[clears] = None

    return put


def soap_street_line(index: int) -> SoapPut:
    """One line of an address's ``StreetLines`` (the other lines as read)."""

    def put(record: dict[str, Any], value: Any) -> None:
        lines: list[str | None] = [text(line) for line in soap_list(record.get("StreetLines"))]
        lines += [None] * (index + 1 - len(lines))
        lines[index] = text(value)
        while lines and lines[-1] is None:
            lines.pop()
        record["StreetLines"] = {"string": [line or "" for line in lines]} if lines else None

    return put


def _entries(values: Any) -> list[Mapping[str, Any]]:
    """Contact methods, primary first (a plain string is a value)."""
    entries = [v if isinstance(v, Mapping) else {"value": v} for v in values or ()]
    return sorted(entries, key=lambda entry: not entry.get("primary"))


def _first_value(entries: Iterable[Mapping[str, Any]]) -> str | None:
    return next((found for e in entries if (found := text(e.get("value")))), None)


def put_email(record: dict[str, Any], emails: Any) -> None:
    """SOAP keeps one email: the primary one (else the first)."""
    record["Email"] = _first_value(_entries(emails))


def put_phones(record: dict[str, Any], phones: Any) -> None:
    """SOAP keeps one phone and one fax: the primary entry of each kind (else the first)."""
    entries = _entries(phones)
    faxes = [e for e in entries if text(e.get("kind")) == "fax"]
    record["Phone"] = _first_value(e for e in entries if text(e.get("kind")) != "fax")
    record["Fax"] = _first_value(faxes)


@dataclass(frozen=True)
class SoapCode:
    """A reference value's element: by name (company and contact types, company statuses:
    the provider names the id) or by id; ``clears`` as in ``soap_put``."""

    element: str
    by_name: bool = False
    clears: str = ""


@dataclass(frozen=True)
class SoapParent:
    """The owning company's element: its record id, or its identifier (``CompanyID``)."""

    element: str
    by_identifier: bool = False
    clears: str = ""


@dataclass(frozen=True)
class SoapWriteMap:
    """How a ``PsaChange`` rewrites one SOAP record as read.

    ``skipped``/``skipped_refs``: columns and relations SOAP has no element for; a change of
    them is not written (they flow from ConnectWise only: ``SOAP_FIELD_MAP``). ``address``: a
    new company's ``DefaultAddress`` from ``PsaChange.address``. ``new``: a new record's
    required elements, as .NET fills them in for a record nobody set them on.
    """

    fields: Mapping[str, SoapPut]
    refs: Mapping[str, SoapPut] = dataclass_field(default_factory=dict)
    codes: Mapping[ReferenceKind, SoapCode] = dataclass_field(default_factory=dict)
    parent: SoapParent | None = None
    address: Mapping[str, SoapPut] = dataclass_field(default_factory=dict)
    skipped: frozenset[str] = frozenset()
    skipped_refs: frozenset[str] = frozenset()
    new: Mapping[str, Any] = dataclass_field(default_factory=dict)

    def skipped_columns(self) -> frozenset[str]:
        return self.skipped | {f"{name}_id" for name in self.skipped_refs}

    def writes(self, change: PsaChange) -> bool:
        """Whether ``change`` sets anything SOAP can write."""
        return bool(
            set(change.values) & set(self.fields)
            or set(change.refs) & set(self.refs)
            or set(change.codes) & set(self.codes)
            or (change.parent_psa_id is not None and self.parent is not None)
            or (change.address and self.address)
        )

    def apply(
        self,
        record: dict[str, Any],
        change: PsaChange,
        *,
        name_of: Callable[[ReferenceKind, int], str],
        parent: Any = None,
        create: bool = False,
    ) -> None:
        """Rewrite the elements of what ``change`` sets (None clears); ``parent``: the value
        of the parent element (the provider looks up an identifier). SOAP holds one value of
        a code: the first of several is written."""
        self._check_known(change)
        for column, value in change.values.items():
            put = self.fields.get(column)
            if put is not None:
                put(record, value)
        for name, psa_id in change.refs.items():
            put = self.refs.get(name)
            if put is not None:
                put(record, psa_id)
        for kind, ids in change.codes.items():
            code = self.codes.get(kind)
            if code is None:
                continue
            first = ids[0] if ids else None
            record[code.element] = (
                name_of(kind, first) if code.by_name and first is not None else first
            )
            if code.clears:
                record[code.clears] = None
        if self.parent is not None and parent is not None:
            record[self.parent.element] = parent
            if self.parent.clears:
                record[self.parent.clears] = None
        if create and change.address and self.address:
            target = record.setdefault("DefaultAddress", {})
            for column, value in change.address.items():
                put = self.address.get(column)
                if put is not None:
                    put(target, value)

    def _check_known(self, change: PsaChange) -> None:
        unknown = sorted(set(change.values) - set(self.fields) - self.skipped)
        unknown += sorted(set(change.refs) - set(self.refs) - self.skipped_refs)
        unknown += sorted(str(k) for k in set(change.codes) - set(self.codes))
        if unknown:
            raise ValueError(f"not mapped to ConnectWise's SOAP API: {', '.join(unknown)}")


def _soap_address(*, name: bool) -> dict[str, SoapPut]:
    puts: dict[str, SoapPut] = {
        "address_1": soap_street_line(0),
        "address_2": soap_street_line(1),
        "city": soap_put("City"),
        "region": soap_put("State"),
        "postal_code": soap_put("Zip"),
        "country": soap_put("Country"),
    }
    return {"name": soap_put("SiteName"), **puts} if name else puts


SOAP_WRITE_COMPANY = SoapWriteMap(
    fields={"name": soap_put("CompanyName"), "short_name": soap_put("CompanyID")},
    codes={
        ReferenceKind.ORGANIZATION_TYPE: SoapCode("Type", by_name=True),
        ReferenceKind.ORGANIZATION_STATUS: SoapCode("Status", by_name=True),
    },
    address=_soap_address(name=False),
    # No parent company in SOAP's Company; the primary site is the default address, which
    # SOAP does not move.
    skipped_refs=frozenset({"parent", "primary_location"}),
    new={
        "Id": 0,
        "DefaultAddress": {"Id": 0, "DefaultFlag": True, "CompanyRecid": 0},
        "DefaultContactId": None,
        "DefaultBillingContactId": None,
        "LastUpdate": None,
    },
)

# A ``CompanyAddress``, written through its company (``UpdateCompany``). SOAP's address has no
# phone or fax, and ``DefaultFlag`` does not move a company's primary site.
SOAP_WRITE_ADDRESS = SoapWriteMap(
    fields=_soap_address(name=True),
    skipped=frozenset({"phone", "fax", "primary"}),
    new={"Id": 0, "DefaultFlag": False},
)

SOAP_WRITE_CONTACT = SoapWriteMap(
    fields={
        "first_name": soap_put("FirstName"),
        "last_name": soap_put("LastName"),
        "title": soap_put("Title"),
        "emails": put_email,
        "phones": put_phones,
    },
    codes={ReferenceKind.CONTACT_TYPE: SoapCode("Type", by_name=True)},
    # ``Contact.CompanyId`` is the company's identifier.
    parent=SoapParent("CompanyId", by_identifier=True),
    skipped_refs=frozenset({"location"}),
    new={
        "Id": 0,
        "ContactRecID": 0,
        "Gender": "Unspecified",
        "BirthDay": DOTNET_MIN_DATETIME,
        "Married": False,
        "Children": False,
        "Anniversary": DOTNET_MIN_DATETIME,
        "PortalSecurityLevel": 0,
        "DisablePortalLogin": False,
        "Inactive": False,
        "UnsubscribeFlag": False,
        "LastUpdate": DOTNET_MIN_DATETIME,
        "PersonalAddressFlag": False,
    },
)


def _soap_id(value: Any) -> int | None:
    return None if value is None else int(value)


SOAP_WRITE_CONFIGURATION = SoapWriteMap(
    fields={
        "name": soap_put("ConfigurationName"),
        "asset_tag": soap_put("TagNumber"),
        "default_gateway": soap_put("DefaultGateway"),
        "installed_at": soap_put("InstallationDate", soap_moment),
        "manufacturer": soap_put("Manufacturer", clears="ManufacturerId"),
        "model": soap_put("ModelNumber"),
        "notes": soap_put("Notes"),
        "operating_system": soap_put("OSType"),
        "primary_ip": soap_put("IPAddress"),
        "purchased_at": soap_put("PurchaseDate", soap_moment),
        "serial_number": soap_put("SerialNumber"),
        "mac_address": soap_put("MacAddress"),
        "warranty_expires_at": soap_put("WarrantyExpiration", soap_moment),
    },
    refs={
        "location": soap_put("AddressId", _soap_id),
        "contact": soap_put("ContactId", _soap_id, clears="ContactName"),
    },
    codes={
        ReferenceKind.CONFIGURATION_TYPE: SoapCode(
            "ConfigurationTypeId", clears="ConfigurationType"
        ),
        ReferenceKind.CONFIGURATION_STATUS: SoapCode("StatusId", clears="Status"),
    },
    parent=SoapParent("CompanyId", clears="CompanyName"),
    # SOAP's ``InstalledBy`` is a member identifier; the local column holds a name.
    skipped=frozenset({"installed_by"}),
    new={"Id": 0, "ConfigurationTypeId": 0},
)

SOAP_WRITE_MAPS = {
    AssetKind.ORGANIZATION: SOAP_WRITE_COMPANY,
    AssetKind.LOCATION: SOAP_WRITE_ADDRESS,
    AssetKind.CONTACT: SOAP_WRITE_CONTACT,
    AssetKind.CONFIGURATION: SOAP_WRITE_CONFIGURATION,
}

# The fixed labels of SOAP's single email, phone and fax (``single_item``), offered as the
# types of new contacts' emails and phones.
SOAP_CONTACT_ATTRIBUTES: dict[str, list[str]] = {"email": ["Email"], "phone": ["Direct", "Fax"]}

# First-link matching: the find field of each local column a lookup filters on.
SOAP_MATCH_FIELDS: dict[AssetKind, dict[str, str]] = {
    AssetKind.ORGANIZATION: {"name": "CompanyName", IDENTIFIER_COLUMN: "CompanyID"},
    AssetKind.CONTACT: {
        "first_name": "FirstName",
        "last_name": "LastName",
        PARENT_COLUMN: "CompanyRecID",
    },
    AssetKind.CONFIGURATION: {"name": "ConfigurationName", PARENT_COLUMN: "CompanyId"},
}
# Company identifiers in use, for a new company's (``CompanyID like 'prefix%'``); a contact's
# company is written by it.
SOAP_COMPANY_IDENTIFIER = "CompanyID"
SOAP_DEFAULT_ADDRESS = "DefaultAddress"
SOAP_SITE_NAME = "SiteName"


def soap_new_address(company_id: int) -> dict[str, Any]:
    """A new ``CompanyAddress`` of the company (``Id`` 0: ConnectWise adds a site)."""
    return {**SOAP_WRITE_ADDRESS.new, "CompanyRecid": company_id}


def soap_addresses(addresses: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A company's ``Addresses`` element (``ArrayOfCompanyAddress``)."""
    return {"CompanyAddress": [dict(a) for a in addresses]}


# The REST table's columns less those SOAP cannot read (a pull would clear them: they stay
# as the local record has them until REST reads them), with what SOAP reads but cannot write
# flowing from ConnectWise only.
_SOAP_MAPPED = {
    kind: columns - SOAP_RECORD_MAPS[kind].unread_columns()
    for kind, columns in FIELD_MAP.mapped.items()
}
SOAP_FIELD_MAP = FieldMap(
    mapped=_SOAP_MAPPED,
    psa_to_local_only={
        kind: (
            FIELD_MAP.psa_to_local_only.get(kind, frozenset())
            | SOAP_WRITE_MAPS[kind].skipped_columns()
        )
        & _SOAP_MAPPED[kind]
        for kind in RECORD_MAPS
    },
    required_for_create=REQUIRED_FOR_CREATE,
)
