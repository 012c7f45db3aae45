"""First-link match keys (features.md §A5): exact matching after trimming and case-folding.

A key is stored, indexed, on every asset so that matching a page of PSA records is one query,
whatever the size of the account. It is a digest: equal keys mean equal normalised fields.
"""

from __future__ import annotations

import hashlib
from typing import Any

_SEPARATOR = "\x1f"  # unit separator: cannot appear in a trimmed field by accident


def normalise(value: Any) -> str:
    if value is None:
        return ""
    return " ".join(str(value).split()).casefold()


def match_key(*parts: Any) -> str:
    joined = _SEPARATOR.join(normalise(part) for part in parts)
    return hashlib.sha1(joined.encode(), usedforsecurity=False).hexdigest()


def organization_key(name: str | None) -> str:
    return match_key("organization", name)


def location_key(
    organization_id: Any,
    address_1: str | None,
    address_2: str | None,
    city: str | None,
    region: str | None,
    country: str | None,
) -> str:
    return match_key("location", organization_id, address_1, address_2, city, region, country)


def contact_key(organization_id: Any, first_name: str | None, last_name: str | None) -> str:
    return match_key("contact", organization_id, first_name, last_name)


def configuration_key(
    organization_id: Any,
    configuration_type_id: Any,
    name: str | None,
    serial_number: str | None,
    mac_address: str | None,
) -> str:
    return match_key(
        "configuration", organization_id, configuration_type_id, name, serial_number, mac_address
    )


def for_values(kind: str, values: dict[str, Any]) -> str:
    """The key of an asset of ``kind`` (an ``AssetKind`` value) from its field values."""
    v = values.get
    if kind == "organization":
        return organization_key(v("name"))
    if kind == "location":
        return location_key(
            v("organization_id"), v("address_1"), v("address_2"), v("city"), v("region"),
            v("country"),
        )  # fmt: skip
    if kind == "contact":
        return contact_key(v("organization_id"), v("first_name"), v("last_name"))
    if kind == "configuration":
        return configuration_key(
            v("organization_id"), v("configuration_type_id"), v("name"), v("serial_number"),
            v("mac_address"),
        )  # fmt: skip
    raise ValueError(f"no match key for {kind!r}")
