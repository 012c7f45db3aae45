"""ConnectWise condition builders: values are always literals, never syntax."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from sync.providers.connectwise.query import (
    cw_and,
    cw_cmp,
    cw_datetime,
    cw_eq,
    cw_in,
    cw_or,
    cw_quote,
    cw_value,
)


def test_cw_in_lists_ids() -> None:
    assert cw_in("status/id", [1, 2]) == "status/id in (1, 2)"


def test_cw_in_quotes_strings() -> None:
    assert cw_in("type/name", ["Server", "Workstation"]) == (
        'type/name in ("Server", "Workstation")'
    )


def test_cw_in_refuses_an_empty_list() -> None:
    with pytest.raises(ValueError, match="at least one"):
        cw_in("id", [])


def test_cw_datetime_is_utc_to_the_second() -> None:
    plus_two = timezone(timedelta(hours=2))

    assert cw_datetime(datetime(2024, 1, 1, tzinfo=UTC)) == "[2024-01-01T00:00:00Z]"
    assert cw_datetime(datetime(2024, 1, 1, 2, 0, 5, 999, tzinfo=plus_two)) == (
        "[2024-01-01T00:00:05Z]"
    )
    assert cw_datetime(date(2024, 3, 4)) == "[2024-03-04T00:00:00Z]"


def test_cw_datetime_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cw_datetime(datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("Acme", '"Acme"'),
        ("O'Brien", '"O\'Brien"'),
        ('24" monitor', "'24\" monitor'"),
        ("Bob's 24\" monitor", '"Bob\'s 24\\" monitor"'),
        ("DOMAIN\\server", '"DOMAIN\\\\server"'),
        ('" or id > 0 or name = "', "'\" or id > 0 or name = \"'"),
    ],
)
def test_strings_are_quoted_so_they_stay_strings(value: str, literal: str) -> None:
    assert cw_quote(value) == literal


@pytest.mark.parametrize(
    ("value", "literal"),
    [(None, "null"), (True, "true"), (False, "false"), (42, "42"), (1.5, "1.5")],
)
def test_plain_values(value: object, literal: str) -> None:
    assert cw_value(value) == literal  # type: ignore[arg-type]


def test_cw_and_parenthesises_and_skips_empty_parts() -> None:
    last = datetime(2024, 1, 1, tzinfo=UTC)
    condition = cw_and(
        cw_cmp("lastUpdated", ">", last),
        None,
        cw_or(cw_eq("deletedFlag", False), cw_eq("deletedFlag", None)),
    )

    assert condition == (
        "(lastUpdated > [2024-01-01T00:00:00Z]) and ((deletedFlag = false) or (deletedFlag = null))"
    )


def test_a_single_part_is_left_alone() -> None:
    assert cw_and("id = 1", "") == "id = 1"
    assert cw_and() == ""


@pytest.mark.parametrize("field", ["name = 1 or id", "", "a//b", "name)"])
def test_field_names_cannot_carry_syntax(field: str) -> None:
    with pytest.raises(ValueError, match="field name"):
        cw_eq(field, 1)


def test_operators_are_checked() -> None:
    assert cw_cmp("name", "NOT  LIKE", "Ac%") == 'name not like "Ac%"'
    with pytest.raises(ValueError, match="operator"):
        cw_cmp("name", "= 1 or name =", "x")
