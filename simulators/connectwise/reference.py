"""The reference lists every simulated ConnectWise site starts with.

Ids, names and flags follow a stock ConnectWise install where we know them (Client is the
default company type, Active the default status, configuration status Retired is closed);
everything else is chosen to look plausible. Lists are static, so every store has the same ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulators.connectwise.schema import RESOURCES, Kind
from simulators.connectwise.tables import Loader

# Bookkeeping of rows that came with the install.
INSTALLED_AT = "2015-08-21T20:22:06Z"
INSTALLED_BY = "zAdmin"

# The member a person editing records in the ConnectWise UI is logged in as.
UI_MEMBER = "jsmith"

COMPANY_TYPES: tuple[dict[str, Any], ...] = (
    {"id": 1, "name": "Client", "defaultFlag": True},
    {"id": 2, "name": "Prospect"},
    {"id": 3, "name": "Vendor", "vendorFlag": True},
    {"id": 4, "name": "Partner"},
    {"id": 5, "name": "Competitor"},
)

COMPANY_STATUSES: tuple[dict[str, Any], ...] = (
    {"id": 1, "name": "Active", "defaultFlag": True},
    {"id": 2, "name": "Inactive", "inactiveFlag": True},
    {"id": 3, "name": "Not-Approved", "disallowSavingFlag": True},
    {"id": 4, "name": "Delinquent", "notifyFlag": True},
)

CONFIGURATION_TYPES: tuple[dict[str, Any], ...] = (
    {"id": 1, "name": "Managed Server"},
    {"id": 2, "name": "Managed Workstation"},
    {"id": 3, "name": "Network Device"},
    {"id": 4, "name": "Firewall"},
    {"id": 5, "name": "Printer"},
    {"id": 6, "name": "Software License"},
)

CONFIGURATION_STATUSES: tuple[dict[str, Any], ...] = (
    {"id": 1, "description": "Active", "defaultFlag": True},
    {"id": 2, "description": "Inactive"},
    {"id": 3, "description": "Retired", "closedFlag": True},
    {"id": 4, "description": "On Order"},
)

CONTACT_TYPES: tuple[dict[str, Any], ...] = (
    {"id": 1, "description": "Owner"},
    {"id": 2, "description": "Technical"},
    {"id": 3, "description": "Billing"},
    {"id": 4, "description": "Employee", "defaultFlag": True},
)

COMMUNICATION_TYPES: tuple[dict[str, Any], ...] = (
    {"id": 1, "description": "Email", "emailFlag": True, "defaultFlag": True},
    {"id": 2, "description": "Direct", "phoneFlag": True, "defaultFlag": True},
    {"id": 3, "description": "Cell", "phoneFlag": True},
    {"id": 4, "description": "Fax", "faxFlag": True, "defaultFlag": True},
)

COUNTRIES: tuple[dict[str, Any], ...] = (
    {"id": 1, "identifier": "US", "name": "United States", "defaultFlag": True},
    {"id": 2, "identifier": "CA", "name": "Canada"},
    {"id": 3, "identifier": "GB", "name": "United Kingdom"},
    {"id": 4, "identifier": "AU", "name": "Australia"},
)

# (id, identifier, name, country id)
_STATES = (
    (1, "FL", "Florida", 1),
    (2, "GA", "Georgia", 1),
    (3, "TX", "Texas", 1),
    (4, "CA", "California", 1),
    (5, "NY", "New York", 1),
    (6, "IL", "Illinois", 1),
    (7, "WA", "Washington", 1),
    (8, "CO", "Colorado", 1),
    (9, "NC", "North Carolina", 1),
    (10, "MA", "Massachusetts", 1),
    (11, "ON", "Ontario", 2),
    (12, "BC", "British Columbia", 2),
    (13, "NSW", "New South Wales", 4),
    (14, "VIC", "Victoria", 4),
)
STATES = tuple(
    {"id": i, "identifier": code, "name": name, "country": country}
    for i, code, name, country in _STATES
)

MANUFACTURERS = tuple(
    {"id": i, "name": name}
    for i, name in enumerate(
        (
            "Dell",
            "HP",
            "Lenovo",
            "Cisco",
            "Ubiquiti",
            "Fortinet",
            "SonicWall",
            "Microsoft",
            "Brother",
            "Apple",
            "Synology",
            "Meraki",
        ),
        start=1,
    )
)

MEMBERS: tuple[dict[str, Any], ...] = (
    {
        "id": 120,
        "identifier": UI_MEMBER,
        "firstName": "Jane",
        "lastName": "Smith",
        "title": "Service Manager",
        "adminFlag": True,
    },
    {
        "id": 121,
        "identifier": "mlopez",
        "firstName": "Miguel",
        "lastName": "Lopez",
        "title": "Engineer",
    },
    {
        "id": 122,
        "identifier": "tchen",
        "firstName": "Tina",
        "lastName": "Chen",
        "title": "Engineer",
    },
    {
        "id": 123,
        "identifier": "rpatel",
        "firstName": "Raj",
        "lastName": "Patel",
        "title": "Technician",
    },
    {
        "id": 124,
        "identifier": "kowens",
        "firstName": "Kara",
        "lastName": "Owens",
        "title": "Technician",
    },
)
MEMBERS = tuple(
    {**member, "officeEmail": f"{member['identifier']}@simulated-msp.example"} for member in MEMBERS
)

# Members beyond the five above (who edit the generated records): the mix a "licensed, active
# users" filter must see through. License classes per psa-apis.md §9 (F full, A API member,
# C StreamlineIT, X subcontractor); members are deactivated, never deleted.
OTHER_MEMBERS: tuple[dict[str, Any], ...] = (
    {
        "id": 125,
        "identifier": "dwright",
        "firstName": "Dana",
        "lastName": "Wright",
        "title": "Technician",
        "officeEmail": "dwright@simulated-msp.example",
        "inactiveFlag": True,
        "inactiveDate": "2024-11-29T00:00:00Z",
    },
    {
        "id": 126,
        "identifier": "bnguyen",
        "firstName": "Bao",
        "lastName": "Nguyen",
        "title": "Engineer",
        "officeEmail": "bnguyen@simulated-msp.example",
        "inactiveFlag": True,
        "inactiveDate": "2023-03-31T00:00:00Z",
    },
    {
        "id": 127,
        "identifier": "lfoster",
        "firstName": "Lena",
        "lastName": "Foster",
        "title": "Project Manager",
        "officeEmail": "lfoster@simulated-msp.example",
        "primaryEmail": "lena.foster@simulated-msp.example",
    },
    {
        "id": 128,
        "identifier": "rmm-integration",
        "firstName": "RMM",
        "lastName": "Integration",
        "licenseClass": "A",
    },
    {
        "id": 129,
        "identifier": "backup-api",
        "firstName": "Backup",
        "lastName": "Integration",
        "licenseClass": "A",
        "inactiveFlag": True,
    },
    {
        "id": 130,
        "identifier": "sortiz",
        "firstName": "Sam",
        "lastName": "Ortiz",
        "title": "Subcontractor",
        "officeEmail": "sam@ortiz-networks.example",
        "licenseClass": "X",
    },
    {
        "id": 131,
        "identifier": "frontdesk",
        "firstName": "Front",
        "lastName": "Desk",
        "title": "Dispatcher",
        "officeEmail": "frontdesk@simulated-msp.example",
        "licenseClass": "C",
    },
)

BOARDS: tuple[dict[str, Any], ...] = (
    {"id": 1, "name": "Service Desk"},
    {"id": 2, "name": "Network Operations"},
    {"id": 3, "name": "Alerts"},
    {"id": 4, "name": "Projects", "projectFlag": True},
    {"id": 5, "name": "Old Helpdesk", "inactiveFlag": True},
)

# Every board has the same five statuses and three types, with ids of their own per board
# (board b: statuses 10b+1..10b+5, types 10b+1..10b+3); the last two statuses are closed.
_STATUS_NAMES = ("New", "In Progress", "Waiting Customer", "Completed", "Closed")
TICKET_STATUSES = tuple(
    {
        "id": 10 * board["id"] + n,
        "name": name,
        "board": board["id"],
        "sortOrder": n,
        "defaultFlag": n == 1,
        "closedStatus": n >= 4,
    }
    for board in BOARDS
    for n, name in enumerate(_STATUS_NAMES, start=1)
)
TICKET_TYPES = tuple(
    {"id": 10 * board["id"] + n, "name": name, "board": board["id"]}
    for board in BOARDS
    for n, name in enumerate(("Incident", "Service Request", "Problem"), start=1)
)
PRIORITIES: tuple[dict[str, Any], ...] = (
    {"id": 1, "name": "Priority 1 - Emergency Response", "sort": 1, "color": "Red"},
    {"id": 2, "name": "Priority 2 - Quick Response", "sort": 2, "color": "Orange"},
    {"id": 3, "name": "Priority 3 - Normal Response", "sort": 3, "color": "Green"},
    {"id": 4, "name": "Priority 4 - Schedule Maintenance", "sort": 4, "color": "Blue"},
)
for _priority in PRIORITIES:
    _priority["defaultFlag"] = _priority["id"] == 3

# Loaded in this order, because states refer to countries.
REFERENCE_LISTS: tuple[tuple[str, tuple[dict[str, Any], ...]], ...] = (
    ("company_types", COMPANY_TYPES),
    ("company_statuses", COMPANY_STATUSES),
    ("configuration_types", CONFIGURATION_TYPES),
    ("configuration_statuses", CONFIGURATION_STATUSES),
    ("contact_types", CONTACT_TYPES),
    ("communication_types", COMMUNICATION_TYPES),
    ("countries", COUNTRIES),
    ("states", STATES),
    ("manufacturers", MANUFACTURERS),
    ("members", MEMBERS + OTHER_MEMBERS),
    ("boards", BOARDS),
    ("ticket_statuses", TICKET_STATUSES),
    ("ticket_types", TICKET_TYPES),
    ("priorities", PRIORITIES),
)


def install(loader: Loader, collection: str, record: Mapping[str, Any]) -> int:
    """Insert a record that came with the install: schema defaults, install-time `_info`,
    references given as plain ids."""
    resource = RESOURCES[collection]
    values = {
        "lastUpdated": INSTALLED_AT,
        "updatedBy": INSTALLED_BY,
        "dateEntered": INSTALLED_AT,
        "enteredBy": INSTALLED_BY,
        **{f.name: f.default for f in resource.fields if f.default is not None},
        **record,
    }
    for field in resource.fields:
        if field.kind is Kind.REFERENCE and isinstance(values.get(field.name), int):
            values[field.name] = loader.reference(field.target, values[field.name])
    return loader.insert(collection, values, record_id=record.get("id"))
