"""Writes to ConnectWise in psasync's words: where a record lives, JSON Patch operations and
create bodies from a ``PsaChange``, what a create still lacks, company identifiers, and the
batches first-link matching looks records up in.

ConnectWise names come from ``mapping.py`` (the field table) and paths from ``client.Resource``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from models.enums import AssetKind
from sync.providers import requirements
from sync.providers.base import PsaChange
from sync.providers.connectwise import mapping
from sync.providers.connectwise.client import Resource

T = TypeVar("T")

# One lookup holds at most this many probes, and its conditions stay short enough for the
# URL: ConnectWise asks for URLs under ~2000 characters (IIS's default query-string limit is
# 2048 bytes), and the rest of the query string needs room too.
MAX_BATCH = 100
MAX_CONDITIONS_LENGTH = 1800  # of ``conditions=…`` as sent, URL-encoded

_COLLECTIONS = {
    AssetKind.ORGANIZATION: Resource.COMPANIES,
    AssetKind.CONTACT: Resource.CONTACTS,
    AssetKind.CONFIGURATION: Resource.CONFIGURATIONS,
}


def collection(kind: AssetKind, parent_psa_id: int | None) -> str:
    """The collection a record of ``kind`` lives in (sites: under their company)."""
    if kind is AssetKind.LOCATION:
        if parent_psa_id is None:
            raise ValueError("a ConnectWise site is addressed under its company: no company id")
        return Resource.sites(parent_psa_id)
    return _COLLECTIONS[kind]


def patch_operations(kind: AssetKind, change: PsaChange) -> list[dict[str, Any]]:
    """One ``replace`` per ConnectWise property ``change`` sets (null clears a value)."""
    values = mapping.RECORD_MAPS[kind].to_psa(change, create=False)
    return [{"op": "replace", "path": name, "value": value} for name, value in values.items()]


def create_body(kind: AssetKind, change: PsaChange) -> dict[str, Any]:
    """A POST body; empty values are left out so ConnectWise applies its defaults."""
    values = mapping.RECORD_MAPS[kind].to_psa(change, create=True)
    return {name: value for name, value in values.items() if value not in (None, [], "")}


def missing_for_create(kind: AssetKind, change: PsaChange) -> list[str]:
    """``mapping.REQUIRED_FOR_CREATE`` columns ``change`` lacks, in ``REQUIRED_WORDS`` words."""
    table = mapping.RECORD_MAPS[kind]
    return requirements.missing(
        mapping.REQUIRED_FOR_CREATE.get(kind, frozenset()),
        lambda column: _present(table, column, change),
        mapping.REQUIRED_WORDS,
    )


def _present(table: mapping.RecordMap, column: str, change: PsaChange) -> bool:
    if column == mapping.ADDRESS_REQUIREMENT and table.address:
        address = change.address or {}
        return any(requirements.filled(address.get(f.local)) for f in table.address)
    return requirements.present(table, column, change, mapping.PARENT_COLUMN)


# -- company identifiers -------------------------------------------------------------------------


def derive_identifier(name: str, taken: Collection[str] = ()) -> str:
    """A company identifier from its name: its ASCII letters and digits (accents dropped),
    at most 30 characters, with a number appended (2, 3 …) when ``taken`` holds it already
    (compared case-insensitively, as ConnectWise does). Deterministic."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    stem = "".join(ch for ch in plain if ch.isalnum())[: mapping.IDENTIFIER_MAX_LENGTH]
    stem = stem or "Company"
    used = {t.casefold() for t in taken}
    candidate, number = stem, 1
    while candidate.casefold() in used:
        number += 1
        suffix = str(number)
        candidate = stem[: mapping.IDENTIFIER_MAX_LENGTH - len(suffix)] + suffix
    return candidate


def identifier_prefix(identifier: str) -> str:
    """What every numbered variant of ``identifier`` (up to 999) starts with."""
    return identifier[: mapping.IDENTIFIER_MAX_LENGTH - 3]


# -- lookups ---------------------------------------------------------------------------------------


def distinct_texts(values: Iterable[str | None]) -> list[str]:
    """Non-blank values, once each (ConnectWise compares strings case-insensitively)."""
    seen: set[str] = set()
    kept: list[str] = []
    for value in values:
        stripped = mapping.text(value)
        if stripped is not None and stripped.casefold() not in seen:
            seen.add(stripped.casefold())
            kept.append(stripped)
    return kept


def batches(items: Sequence[T], conditions: Callable[[Sequence[T]], str]) -> Iterator[str]:
    """The conditions of each lookup: consecutive batches of at most ``MAX_BATCH`` items whose
    conditions fit ``MAX_CONDITIONS_LENGTH`` (an item too long on its own goes alone).

    Lengths are kept as a running estimate (what each item adds next to one other item), and
    measured only when the estimate passes the limit: measuring every trial batch made a
    page of lookups quadratic in its size.
    """
    batch: list[T] = []
    estimate = alone = 0  # the batch's estimated length; its first item's on its own
    for item in items:
        if not batch or len(batch) >= MAX_BATCH:
            if batch:
                yield conditions(batch)
            batch = [item]
            estimate = alone = _sent_length(conditions(batch))
            continue
        estimate += _sent_length(conditions([batch[0], item])) - alone
        if estimate > MAX_CONDITIONS_LENGTH:
            estimate = _sent_length(conditions([*batch, item]))
            if estimate > MAX_CONDITIONS_LENGTH:
                yield conditions(batch)
                batch = [item]
                estimate = alone = _sent_length(conditions(batch))
                continue
        batch.append(item)
    if batch:
        yield conditions(batch)


def _sent_length(conditions: str) -> int:
    # Every reserved character percent-encoded: never shorter than what httpx sends.
    return len("conditions=") + len(quote(conditions, safe=""))
