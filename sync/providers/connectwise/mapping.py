"""ConnectWise Manage ↔ psasync field mapping (features.md §A4), as data.

Each table row pairs a local field with a ConnectWise path (``a/b`` walks nested objects) and
a converter. This module and ``client.py`` are the only code that knows ConnectWise names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from models.enums import AssetKind, ReferenceKind
from sync.providers.base import FieldMap, PsaRecord, RawRecord, parse_psa_datetime

Getter = Callable[[RawRecord], Any]


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


@dataclass(frozen=True)
class Field:
    local: str
    get: Getter
    convert: Callable[[Any], Any] = text


def field(local: str, spec: str, convert: Callable[[Any], Any] = text) -> Field:
    return Field(local, path(spec), convert)


@dataclass(frozen=True)
class RecordMap:
    """How one ConnectWise entity becomes a ``PsaRecord``."""

    fields: Sequence[Field]
    refs: Sequence[tuple[str, Getter]] = ()
    codes: Sequence[tuple[ReferenceKind, Getter, Callable[[Any], tuple[int, ...]]]] = ()
    parent: Getter | None = None

    def columns(self) -> frozenset[str]:
        """The local columns this map writes: what a one-way sync makes read-only."""
        names = {f.local for f in self.fields}
        names |= {f"{name}_id" for name, _ in self.refs}
        names |= {f"{kind.value}_id" for kind, _, _ in self.codes}
        if self.parent is not None:
            names.add("organization_id")
        return frozenset(names)

    def to_record(self, raw: RawRecord) -> PsaRecord:
        info = raw.get("_info")
        stamp = info.get("lastUpdated") if isinstance(info, dict) else None
        values = {f.local: f.convert(f.get(raw)) for f in self.fields}
        refs = {name: ref_id(get(raw)) for name, get in self.refs}
        codes = {kind: convert(get(raw)) for kind, get, convert in self.codes}
        parent = ref_id(self.parent(raw)) if self.parent else None
        return PsaRecord(int(raw["id"]), parse_psa_datetime(stamp), values, refs, codes, parent)


COMPANY = RecordMap(
    fields=[field("name", "name"), field("short_name", "identifier")],
    refs=[("parent", path("parentCompany")), ("primary_location", path("site"))],
    codes=[
        (ReferenceKind.ORGANIZATION_TYPE, path("types"), ref_codes),
        (ReferenceKind.ORGANIZATION_STATUS, path("status"), ref_code),
    ],
)

SITE = RecordMap(
    fields=[
        field("name", "name"),
        field("address_1", "addressLine1"),
        field("address_2", "addressLine2"),
        field("city", "city"),
        field("region", "stateReference", region),
        field("postal_code", "zip"),
        field("country", "country", ref_name),
        field("phone", "phoneNumber"),
        field("fax", "faxNumber"),
        field("primary", "primaryAddressFlag", flag),
    ],
    parent=path("company"),
)

CONTACT = RecordMap(
    fields=[
        field("first_name", "firstName"),
        field("last_name", "lastName"),
        field("title", "title"),
        field("emails", "communicationItems", communication_items("email")),
        field("phones", "communicationItems", communication_items("phone")),
    ],
    refs=[("location", path("site"))],
    codes=[(ReferenceKind.CONTACT_TYPE, path("types"), ref_codes)],
    parent=path("company"),
)

CONFIGURATION = RecordMap(
    fields=[
        field("name", "name"),
        field("asset_tag", "tagNumber"),
        field("default_gateway", "defaultGateway"),
        field("installed_at", "installationDate", parse_psa_datetime),
        field("installed_by", "installedBy", ref_name),
        field("manufacturer", "manufacturer", ref_name),
        field("model", "modelNumber"),
        field("notes", "notes"),
        field("operating_system", "osType"),
        field("primary_ip", "ipAddress"),
        field("purchased_at", "purchaseDate", parse_psa_datetime),
        field("serial_number", "serialNumber"),
        field("mac_address", "macAddress", mac_address),
        field("warranty_expires_at", "warrantyExpirationDate", parse_psa_datetime),
    ],
    refs=[("location", path("site")), ("contact", path("contact"))],
    codes=[
        (ReferenceKind.CONFIGURATION_TYPE, path("type"), ref_code),
        (ReferenceKind.CONFIGURATION_STATUS, path("status"), ref_code),
    ],
    parent=path("company"),
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

FIELD_MAP = FieldMap(
    mapped={kind: record_map.columns() for kind, record_map in RECORD_MAPS.items()},
    # ConnectWise site phone and fax only ever flow from the PSA, even under two-way sync
    # (IT Glue's documented exception).
    psa_to_local_only={AssetKind.LOCATION: frozenset({"phone", "fax"})},
)
