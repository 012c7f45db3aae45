"""The conditions language, checked against a small, hand-made ConnectWise site."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from simulators.connectwise import ConditionError, ConnectWiseStore
from simulators.connectwise.conditions import VALUE_RULES, Comparison, Junction, parse


class SteppingClock:
    """A clock the test sets, so each record gets a known `_info.lastUpdated`."""

    def __init__(self) -> None:
        self.now = datetime(2023, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _build_site() -> tuple[ConnectWiseStore, dict[str, int]]:
    clock = SteppingClock()
    store = ConnectWiseStore(clock=clock)
    ids: dict[str, int] = {}

    def at(stamp: str) -> None:
        clock.now = datetime.fromisoformat(stamp)

    at("2023-12-31T23:59:59+00:00")
    ids["acme"] = store.create(
        "companies",
        {
            "identifier": "Acme",
            "name": "Acme Corp",
            "types": [{"id": 1}],
            "city": "Tampa",
            "numberOfEmployees": 25,
            "annualRevenue": 1500000.75,
        },
    )["id"]
    at("2024-01-01T00:00:00+00:00")
    ids["fred"] = store.create(
        "companies",
        {
            "identifier": "FredsFish",
            "name": "Fred's Fish",
            "types": [{"name": "Client"}, {"name": "Partner"}],
            "status": {"name": "Inactive"},
            "city": "Orlando",
            "numberOfEmployees": 3,
        },
    )["id"]
    at("2024-06-01T12:00:00+00:00")
    ids["globex"] = store.create(
        "companies",
        {"identifier": "Globex", "name": "Globex Corporation", "typeIds": [2], "zip": "30301"},
    )["id"]

    def contact(label: str, company: str, data: dict[str, object]) -> None:
        ids[label] = store.create("contacts", {**data, "company": {"id": ids[company]}})["id"]

    email, direct = {"id": 1}, {"name": "Direct"}
    contact(
        "fred_flint",
        "acme",
        {
            "firstName": "Fred",
            "lastName": "Flint",
            "title": "Owner",
            "communicationItems": [{"type": email, "value": "fred@acme.com", "defaultFlag": True}],
        },
    )
    contact(
        "wilma",
        "fred",
        {
            "firstName": "Wilma",
            "inactiveFlag": True,
            "communicationItems": [{"type": direct, "value": "555-0101"}],
        },
    )
    contact(
        "barney",
        "globex",
        {
            "firstName": "Barney",
            "lastName": "Rubble",
            "title": "Engineer",
            "communicationItems": [
                {"type": email, "value": "barney@globex.com"},
                {"type": direct, "value": "555-0102", "extension": "12"},
            ],
        },
    )

    def configuration(label: str, company: str, data: dict[str, object]) -> None:
        ids[label] = store.create("configurations", {**data, "company": {"id": ids[company]}})["id"]

    configuration(
        "server",
        "acme",
        {
            "name": "ACME-SRV01",
            "type": {"name": "Managed Server"},
            "contact": {"id": ids["fred_flint"]},
            "installationDate": "2024-03-01T00:00:00Z",
            "notes": "test unit in the rack",
        },
    )
    configuration(
        "workstation",
        "fred",
        {
            "name": "FRED-WS01",
            "type": {"name": "Managed Workstation"},
            "status": {"name": "Retired"},
            "contact": {"id": ids["wilma"]},
            "installationDate": "2022-01-01T08:30:00Z",
        },
    )
    configuration(
        "firewall",
        "globex",
        {"name": "GLOBEX-FW", "type": {"id": 4}, "status": {"name": "On Order"}},
    )
    return store, ids


Site = tuple[ConnectWiseStore, dict[str, int]]


@pytest.fixture(scope="module")
def site() -> Site:
    return _build_site()


CASES = [
    # change tracking, as the sync polls it
    ("companies", "lastUpdated > [2024-01-01T00:00:00Z] and deletedFlag=false", {"globex"}),
    ("companies", "lastUpdated >= [2024-01-01T00:00:00Z]", {"fred", "globex"}),
    ("companies", "_info/lastUpdated < [2024-01-01T00:00:00Z]", {"acme"}),
    ("companies", "lastUpdated >= [2024-01-01T02:00:00+02:00]", {"fred", "globex"}),
    # arrays: a match on any element
    ("companies", 'types/name="Client"', {"acme", "fred"}),
    ("companies", "types/id = 4", {"fred"}),
    ("companies", "types/id in (3, 2, 4)", {"fred", "globex"}),
    # references, quoting and case-insensitivity
    ("companies", "status/name='Active'", {"acme", "globex"}),
    ("companies", "STATUS/NAME = 'active'", {"acme", "globex"}),
    ("companies", "status/id != 1", {"fred"}),
    ("companies", 'name = "Fred\'s Fish"', {"fred"}),
    ("companies", "name = 'Fred\\'s Fish'", {"fred"}),
    ("companies", 'identifier in ("acme", "Globex")', {"acme", "globex"}),
    ("companies", 'identifier not in ("acme")', {"fred", "globex"}),
    # wildcards and substrings
    ("companies", 'name like "Acme%"', {"acme"}),
    ("companies", 'name like "*corp*"', {"acme", "globex"}),
    ("companies", 'name like "%Corp"', {"acme"}),
    ("companies", 'name like "Fred_s Fish"', {"fred"}),
    ("companies", 'name not like "%Corp%"', {"fred"}),
    ("companies", 'name contains "fish"', {"fred"}),
    ("companies", 'name not contains "corp"', {"fred"}),
    # numbers and nulls (SQL: a comparison with NULL is never true)
    ("companies", "numberOfEmployees > 10", {"acme"}),
    ("companies", "numberOfEmployees >= -1", {"acme", "fred"}),
    ("companies", "numberOfEmployees = null", {"globex"}),
    ("companies", "numberOfEmployees != null", {"acme", "fred"}),
    ("companies", "numberOfEmployees != 3", {"acme"}),
    ("companies", "annualRevenue > 1500000.5", {"acme"}),
    # logic: AND binds tighter than OR; keywords in any case; nested parentheses
    ("companies",
     '(name contains "acme" or name contains "globex") and status/name = "Active"',
     {"acme", "globex"}),
    ("companies",
     'name contains "acme" or name contains "globex" and status/name = "Inactive"',
     {"acme"}),
    ("companies",
     '((types/name = "Partner")) OR (city = "Tampa" AND (leadFlag = FALSE))',
     {"acme", "fred"}),
    ("companies", "deletedFlag = False And leadFlag = false", {"acme", "fred", "globex"}),
    # contacts: company references and communication items
    ("contacts", 'company/name = "Acme Corp"', {"fred_flint"}),
    ("contacts", 'company/identifier = "acme"', {"fred_flint"}),
    ("contacts",
     'communicationItems/value like "fred@%" and communicationItems/communicationType = "Email"',
     {"fred_flint"}),
    ("contacts", 'communicationItems/type/name = "Direct"', {"wilma", "barney"}),
    ("contacts", "communicationItems/value != null", {"fred_flint", "wilma", "barney"}),
    ("contacts", "title = null", {"wilma"}),
    ("contacts", 'title != "Owner"', {"barney"}),
    ("contacts", "inactiveFlag = true", {"wilma"}),
    ("contacts", 'firstName = "FRED"', {"fred_flint"}),
    # configurations
    ("configurations",
     '(contact/name like "Fred%" and status/name = "Active") or notes contains "test"',
     {"server"}),
    ("configurations", 'type/name="Managed Server"', {"server"}),
    ("configurations", 'status/name in ("Retired", "On Order")', {"workstation", "firewall"}),
    ("configurations", "installationDate < [2023-01-01T00:00:00Z]", {"workstation"}),
    ("configurations", "installationDate > [2024-02-29]", {"server"}),
    ("configurations", "contact/id = null", {"firewall"}),
    ("configurations", 'notes not contains "rack"', set()),
]  # fmt: skip


@pytest.mark.parametrize(("collection", "conditions", "expected"), CASES)
def test_conditions_select_exactly_the_matching_records(
    site: Site, collection: str, conditions: str, expected: set[str]
) -> None:
    store, ids = site
    labels = {record_id: label for label, record_id in ids.items()}
    found = {
        labels.get(record["id"], record["id"]) for record in store.find(collection, conditions)
    }
    assert found == expected


def test_parse_builds_the_tree_real_client_code_expects() -> None:
    tree = parse('(contact/name like "Fred%" and closedFlag = false) or summary contains "test"')
    assert tree == Junction(
        "or",
        (
            Junction(
                "and",
                (
                    Comparison("contact/name", "like", "Fred%"),
                    Comparison("closedFlag", "=", False),
                ),
            ),
            Comparison("summary", "contains", "test"),
        ),
    )
    assert parse("board/id in (3, 2, 4)") == Comparison("board/id", "in", (3, 2, 4))
    assert parse('summary NOT CONTAINS "x"') == Comparison("summary", "contains", "x", negated=True)
    assert parse("value != null") == Comparison("value", "!=", None)
    assert parse("amount >= -12.5") == Comparison("amount", ">=", -12.5)


INVALID_SYNTAX = [
    "name =",
    "name = Acme",
    'name = "Acme',
    '(name = "a"',
    'name = "a")',
    'name == "a"',
    'name "a"',
    'name = "a" and',
    'and name = "a"',
    "lastUpdated > [not-a-date]",
    "lastUpdated > [2024-01-01T00:00:00Z",
    "id = 12abc",
    'name not = "x"',
    "id in ()",
    "id in (1, 2",
    'name = "a" # comment',
]


@pytest.mark.parametrize("conditions", INVALID_SYNTAX)
def test_malformed_conditions_raise_a_parse_error(conditions: str) -> None:
    with pytest.raises(ConditionError):
        parse(conditions)


INVALID_FOR_RESOURCE = [
    ("companies", "nosuchfield = 1"),
    ("companies", 'status = "Active"'),
    ("companies", "name/first = 'x'"),
    ("companies", "name = 5"),
    ("companies", 'lastUpdated > "2024-01-01"'),
    ("companies", "name contains 5"),
    ("companies", 'numberOfEmployees like "5%"'),
    ("companies", "leadFlag > true"),
    ("companies", "name < null"),
    ("contacts", "communicationItems = 'x'"),
]


@pytest.mark.parametrize(("collection", "conditions"), INVALID_FOR_RESOURCE)
def test_conditions_that_do_not_fit_the_resource_are_rejected(
    site: Site, collection: str, conditions: str
) -> None:
    with pytest.raises(ConditionError):
        site[0].find(collection, conditions)


def test_a_number_for_a_boolean_gets_connectwise_own_message(site: Site) -> None:
    with pytest.raises(ConditionError) as raised:
        site[0].find("companies", "deletedFlag = 1")
    assert raised.value.message == f"Expected a boolean value, not a numeric. {VALUE_RULES}"
    assert raised.value.message.endswith(
        "boolean values should be indicated with the keywords true or false; null values should "
        "be indicated by the keyword null."
    )
