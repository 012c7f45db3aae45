"""ConnectWise's datetime wire format: UTC, second precision, trailing ``Z``.

The simulator stores every datetime as this canonical string. Because the format is fixed-width
and always UTC, comparing two canonical strings orders them in time, so conditions such as
``lastUpdated > [2024-01-01T00:00:00Z]`` compare strings instead of parsing each row.
"""

from __future__ import annotations

from datetime import UTC, datetime

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_datetime(moment: datetime) -> str:
    """Render a datetime the way ConnectWise does; naive values are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(FORMAT)


def canonical_datetime(text: str) -> str:
    """Normalise an ISO-8601 string (``Z``, offsets, fractions, date only) to the wire format.

    Raises ValueError for anything that is not a date or datetime.
    """
    return format_datetime(datetime.fromisoformat(text.strip()))


def utc_now() -> datetime:
    """The default clock of a store."""
    return datetime.now(UTC)
