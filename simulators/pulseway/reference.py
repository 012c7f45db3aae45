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

# More employees, for "licensed, active users": technicians (one gone), and a second API
# employee. EmployeesListSearchSelectOutputDto has no licence or user-type field, so API
# employees look like people there (psa-apis.md §9); `userType` is the simulator's own note.
MORE_EMPLOYEES: dict[int, str] = {6: "sam.tech", 7: "old.tech", 8: "rmm.api", 9: "pat.dispatch"}

# EmployeesListSearchSelectOutputDto fields (plus `userType`, not sent) by employee id.
EMPLOYEE_PROFILES: dict[int, dict[str, Any]] = {
    API_USER_ID: {"firstName": "psasync", "lastName": "API", "jobTitle": None},
    UI_USER_ID: {"firstName": "Jane", "lastName": "Tech", "jobTitle": "Technician"},
    3: {"firstName": "Tom", "lastName": "Manager", "jobTitle": "Account Manager"},
    4: {"firstName": "Ana", "lastName": "Manager", "jobTitle": "Account Manager"},
    5: {"firstName": "Lee", "lastName": "Manager", "jobTitle": "Service Manager"},
    6: {"firstName": "Sam", "lastName": "Tech", "jobTitle": "Technician"},
    7: {"firstName": "Olga", "lastName": "Tech", "jobTitle": "Technician", "isActive": False},
    8: {"firstName": "RMM", "lastName": "Integration", "jobTitle": None, "userType": "API"},
    9: {"firstName": "Pat", "lastName": "Dispatch", "jobTitle": "Dispatcher"},
}
EMPLOYEE_PROFILES[API_USER_ID]["userType"] = "API"

# Queues (IT Glue's "boards" for this PSA, psa-apis.md §9): QueueLookupOutputDto.
QUEUES: list[dict[str, Any]] = [
    {"id": 1, "name": "Service Desk", "isActive": True},
    {"id": 2, "name": "Network Operations", "isActive": True},
    {"id": 3, "name": "Alerts", "isActive": True},
    {"id": 4, "name": "Old Helpdesk", "isActive": False},
]
# Ticket statuses (`isCompleted`: the ticket counts as completed, gets a completedDate and is
# left out by Filter.ExcludeCompleted), priorities and types; ids and names assumed.
TICKET_STATUSES: list[dict[str, Any]] = [
    {"id": 1, "name": "New", "order": 1, "isCompleted": False, "color": "#2F80ED"},
    {"id": 2, "name": "In Progress", "order": 2, "isCompleted": False, "color": "#F2994A"},
    {"id": 3, "name": "Waiting on Customer", "order": 3, "isCompleted": False, "color": "#9B51E0"},
    {"id": 4, "name": "Completed", "order": 4, "isCompleted": True, "color": "#27AE60"},
    {"id": 5, "name": "Closed", "order": 5, "isCompleted": True, "color": "#828282"},
]
COMPLETED_STATUS_ID = 4
TICKET_PRIORITIES: list[dict[str, Any]] = [
    {"id": 1, "name": "Low", "color": "#27AE60"},
    {"id": 2, "name": "Medium", "color": "#F2C94C"},
    {"id": 3, "name": "High", "color": "#F2994A"},
    {"id": 4, "name": "Critical", "color": "#EB5757"},
]
TICKET_TYPES: list[dict[str, Any]] = [
    {"id": 1, "name": "Incident"},
    {"id": 2, "name": "Service Request"},
    {"id": 3, "name": "Problem"},
]


def row_of(rows: list[dict[str, Any]], ident: int | None) -> dict[str, Any] | None:
    return next((row for row in rows if row["id"] == ident), None)


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
