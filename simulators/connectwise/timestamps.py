"""ConnectWise's datetime wire format: UTC, second precision, trailing ``Z``.

The simulator stores every datetime as this canonical string. Because the format is fixed-width
and always UTC, comparing two canonical strings orders them in time, so conditions such as
``lastUpdated > [2024-01-01T00:00:00Z]`` compare strings instead of parsing each row.
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_datetime(moment: datetime) -> str:
    """Render a datetime the way ConnectWise does; naive values are taken as UTC.

    Years are always four digits (``0999-01-01T00:00:00Z``): glibc's ``strftime('%Y')`` writes
    ``999``, which is not ISO 8601 and would sort after ``2024`` in string comparisons.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    m = moment.astimezone(UTC)
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}Z"


def canonical_datetime(text: str) -> str:
    """Normalise an ISO-8601 string (``Z``, offsets, fractions, date only) to the wire format.

    Raises ValueError for anything that is not a date or datetime, including one whose UTC
    equivalent falls outside years 1-9999 (``0001-01-01T00:00:00+05:00``).
    """
    try:
        return format_datetime(datetime.fromisoformat(text.strip()))
    except OverflowError:
        raise ValueError(f"{text!r} is out of range") from None


def utc_now() -> datetime:
    """The default clock of a store."""
    return datetime.now(UTC)
