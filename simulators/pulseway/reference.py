"""Reference lists of the simulated tenant: account types, employees and the system lookup
tables (``GET /v2/system/lookup/{tableName}``).

Pulseway does not document its lookup table names; the simulator answers the canonical names
below and common variants of them (plural, ``Hardware`` prefix, any letter case): see
`table_key`.
"""

from __future__ import annotations

from typing import Any

API_USER_ID = 1
UI_USER_ID = 2
EMPLOYEES: dict[int, str] = {
    API_USER_ID: "psasync.api",
    UI_USER_ID: "jane.tech",
    3: "tom.manager",
    4: "ana.manager",
    5: "lee.manager",
}
ACCOUNT_MANAGERS = (3, 4, 5)

# AccountTypeLookupOutputDto
ACCOUNT_TYPES: list[dict[str, Any]] = [
    {"id": 1, "name": "Customer", "isActive": True, "isClient": True, "isVendor": False},
    {"id": 2, "name": "Prospect", "isActive": True, "isClient": False, "isVendor": False},
    {"id": 3, "name": "Vendor", "isActive": True, "isClient": False, "isVendor": True},
    {"id": 4, "name": "Partner", "isActive": True, "isClient": False, "isVendor": False},
    {"id": 5, "name": "Former Customer", "isActive": False, "isClient": True, "isVendor": False},
]


def _rows(*names: str, default: int = 1, inactive: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": name, "isDefault": i == default, "isActive": i not in inactive}
        for i, name in enumerate(names, start=1)
    ]


# LookupOutputDto lists by canonical table name.
LOOKUP_TABLES: dict[str, list[dict[str, Any]]] = {
    "AssetCategory": _rows(
        "Workstation",
        "Laptop",
        "Server",
        "Network Device",
        "Printer",
        "Mobile Device",
        "Virtual Machine",
        "Legacy Terminal",
        inactive=(8,),
    ),
    "AssetState": _rows("In Use", "In Stock", "In Repair", "Retired", "Disposed"),
    "EmailType": _rows("Work", "Personal", "Other"),
    "PhoneType": _rows("Work", "Mobile", "Home", "Fax"),
    "BusinessType": _rows("Small Business", "Mid-Market", "Enterprise", "Non-Profit"),
}


def table_key(name: str) -> str | None:
    """The canonical lookup table a requested ``tableName`` means, or None."""
    wanted = _normal(name)
    for key in LOOKUP_TABLES:
        if _normal(key) == wanted:
            return key
    return None


def _normal(name: str) -> str:
    text = name.lower().replace("_", "").replace("-", "")
    text = text.removeprefix("hardware")
    if text.endswith("ies"):
        text = text[:-3] + "y"
    elif text.endswith("s"):
        text = text[:-1]
    return text


def lookup_ids(table: str) -> set[int]:
    return {row["id"] for row in LOOKUP_TABLES[table]}


def lookup_name(table: str, ident: int | None) -> str | None:
    for row in LOOKUP_TABLES[table]:
        if row["id"] == ident:
            return str(row["name"])
    return None


def account_type_name(ident: int | None) -> str | None:
    for row in ACCOUNT_TYPES:
        if row["id"] == ident:
            return str(row["name"])
    return None
