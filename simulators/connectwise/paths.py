"""Field paths such as ``company/name`` or ``communicationItems/type/name``.

Conditions, orderBy and fields all name values by path. A path is resolved once per request
against the resource schema (case-insensitively, as ConnectWise does) into a getter over a
stored row, so evaluating it per row is a couple of index operations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators.connectwise.errors import ConditionError
from simulators.connectwise.schema import RESOURCES, Field, Kind, Resource, Row

Getter = Callable[[Row], Any]


@dataclass(frozen=True)
class Path:
    """A resolved path: `get(row)` yields one value, or a list of values when `many`."""

    text: str
    field: Field  # the top-level field the path starts at
    leaf: Kind  # kind of the value(s) the getter yields
    many: bool
    get: Getter


def reference_keys(target: str) -> dict[str, tuple[str, Kind]]:
    """Keys of a reference to `target`, by lower-case name."""
    keys = {"id": ("id", Kind.INTEGER), "name": ("name", Kind.STRING)}
    if RESOURCES[target].reference_identifier:
        keys["identifier"] = ("identifier", Kind.STRING)
    return keys


def resolve(resource: Resource, text: str) -> Path:
    """Resolve `text` (``status/name``, ``_info/lastUpdated``...) against `resource`."""
    parts = [p for p in text.strip().split("/") if p]
    if parts and parts[0].lower() == "_info":
        parts = parts[1:]
        info_only = True
    else:
        info_only = False
    if not parts:
        raise ConditionError(f"'{text}' is not a valid field")
    top = resource.by_lower.get(parts[0].lower())
    if top is None or (info_only and not top.info):
        raise ConditionError(f"'{text}' is not a valid field for {resource.noun}")
    slot = resource.index[top.name]
    rest = parts[1:]

    if top.kind is Kind.ITEMS:
        if not rest:
            raise ConditionError(f"'{text}' must name a field of {top.name}")
        item_field = {f.name.lower(): f for f in top.items}.get(rest[0].lower())
        if item_field is None:
            raise ConditionError(f"'{text}' is not a valid field for {resource.noun}")
        key, leaf = _leaf_key(item_field, rest[1:], text)
        return Path(text, top, leaf, True, _items_getter(slot, item_field.name, key))

    if top.kind is Kind.REFERENCES:
        key, leaf = _leaf_key(top, rest, text)
        assert key is not None  # a list of references is only comparable through a key

        def get_all(row: Row) -> list[Any]:
            return [ref.get(key) for ref in row[slot] or ()]

        return Path(text, top, leaf, True, get_all)

    key, leaf = _leaf_key(top, rest, text)
    if key is None:
        return Path(text, top, leaf, False, lambda row: row[slot])

    def get_key(row: Row) -> Any:
        ref = row[slot]
        return None if ref is None else ref.get(key)

    return Path(text, top, leaf, False, get_key)


def _leaf_key(field: Field, rest: list[str], text: str) -> tuple[str | None, Kind]:
    """For a reference field, the key named by `rest`; for a scalar, check nothing follows."""
    if field.kind in (Kind.REFERENCE, Kind.REFERENCES):
        if len(rest) != 1:
            raise ConditionError(f"'{text}' must name a field of the {field.name} reference")
        found = reference_keys(field.target).get(rest[0].lower())
        if found is None:
            raise ConditionError(f"'{text}' is not a valid field of {field.name}")
        return found
    if rest:
        raise ConditionError(f"'{text}' is not a valid field: {field.name} has no sub-fields")
    return None, field.kind


def _items_getter(slot: int, name: str, key: str | None) -> Getter:
    if key is None:
        return lambda row: [item.get(name) for item in row[slot] or ()]

    def get(row: Row) -> list[Any]:
        return [(item.get(name) or {}).get(key) for item in row[slot] or ()]

    return get
