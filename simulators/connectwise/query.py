"""List query parameters other than paging: conditions, childConditions, customFieldConditions,
orderBy and fields."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from simulators.connectwise.conditions import Predicate, compile_conditions
from simulators.connectwise.errors import ConditionError
from simulators.connectwise.paths import Path, reference_keys, resolve
from simulators.connectwise.schema import (
    CUSTOM_FIELD,
    CUSTOM_FIELDS,
    Field,
    Kind,
    Resource,
    Row,
)

# {"id": None, "status": {"id": None}}: None selects the whole value.
Projection = dict[str, "Projection | None"]


@dataclass(frozen=True)
class SortKey:
    path: Path
    descending: bool


@dataclass(frozen=True)
class ListQuery:
    """What a list (or /count) request selects, parsed once per request."""

    test: Predicate | None
    mentions: frozenset[str]  # fields named by the conditions
    order: tuple[SortKey, ...]
    cache_key: tuple[str, str, str, str]


def build_query(
    resource: Resource,
    conditions: str = "",
    child_conditions: str = "",
    order_by: str = "",
    custom_field_conditions: str = "",
) -> ListQuery:
    """Parse the selection parameters; raises ConditionError (400) when any is invalid."""
    tests: list[Predicate] = []
    mentions: set[str] = set()
    # childConditions use the same grammar over array paths (types/id, communicationItems/...);
    # all given parameters must hold.
    for text in (conditions, child_conditions):
        if text.strip():
            condition = compile_conditions(text, resource)
            tests.append(condition.test)
            mentions |= condition.fields
    if custom_field_conditions.strip():
        tests.append(_custom_field_test(resource, custom_field_conditions))
        mentions.add(CUSTOM_FIELDS.name)
    test: Predicate | None = None
    if tests:
        test = functools.reduce(_both, tests)
    return ListQuery(
        test=test,
        mentions=frozenset(mentions),
        order=parse_order_by(resource, order_by),
        cache_key=(
            conditions.strip(),
            child_conditions.strip(),
            order_by.strip().lower(),
            custom_field_conditions.strip(),
        ),
    )


# The entries of `customFields` as a resource of their own, for customFieldConditions.
_CUSTOM_FIELD_VALUE = Resource(
    name="custom_field_values",
    noun="customFieldValue",
    title="Custom field",
    path="",
    href_key="",
    fields=CUSTOM_FIELD,
)
_CUSTOM_FIELD_NAMES = tuple(f.name for f in CUSTOM_FIELD)


def _custom_field_test(resource: Resource, text: str) -> Predicate:
    """``caption="TomNumber" AND value != null`` (psa-apis.md §1.3): a record matches when one
    of its custom field entries satisfies the whole expression, as a SQL join on the entries."""
    slot = resource.index.get(CUSTOM_FIELDS.name)
    if slot is None:
        raise ConditionError(f"customFieldConditions cannot be used with {resource.noun}")
    entry_test = compile_conditions(text, _CUSTOM_FIELD_VALUE).test
    names = _CUSTOM_FIELD_NAMES

    def test(row: Row) -> bool:
        return any(entry_test([entry.get(name) for name in names]) for entry in row[slot] or ())

    return test


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda row: a(row) and b(row)


def parse_order_by(resource: Resource, text: str) -> tuple[SortKey, ...]:
    """``name asc, contact/name desc`` into sort keys (empty text: none)."""
    keys: list[SortKey] = []
    for term in text.split(","):
        words = term.split()
        if not words:
            if text.strip():
                raise ConditionError(f"orderBy '{text}' has an empty term")
            continue
        direction = words[1].lower() if len(words) > 1 else "asc"
        if len(words) > 2 or direction not in ("asc", "desc"):
            raise ConditionError(f"orderBy term '{term.strip()}' must be 'field [asc|desc]'")
        path = resolve(resource, words[0])
        if path.many:
            raise ConditionError(f"orderBy cannot sort on the array field '{words[0]}'")
        keys.append(SortKey(path, direction == "desc"))
    return tuple(keys)


def order_ids(ids: list[int], rows: Mapping[int, Row], order: tuple[SortKey, ...]) -> list[int]:
    """Sort `ids` (ascending) by `order`; ties keep id order, NULLs sort first as in SQL Server."""
    result = list(ids)
    for key in reversed(order):  # stable sorts, least significant key first
        result.sort(key=_sort_value(key.path, rows), reverse=key.descending)
    return result


def _sort_value(path: Path, rows: Mapping[int, Row]) -> Callable[[int], tuple[bool, Any]]:
    get, fold = path.get, path.leaf is Kind.STRING

    def value(record_id: int) -> tuple[bool, Any]:
        v = get(rows[record_id])
        if v is None:
            return (False, 0)
        return (True, v.casefold() if fold else v)

    return value


def parse_fields(resource: Resource, text: str) -> Projection | None:
    """``id,name,status/id`` into a projection; None when every field is wanted."""
    if not text.strip():
        return None
    projection: Projection = {}
    for raw in text.split(","):
        parts = [p for p in raw.strip().split("/") if p]
        node = projection
        scope = _resource_scope(resource)
        for depth, part in enumerate(parts):
            found = scope.get(part.lower())
            if found is None:
                raise ConditionError(f"fields: '{raw.strip()}' is not a valid field")
            name, field = found
            if depth == len(parts) - 1:
                node[name] = None
                break
            sub = node.setdefault(name, {})
            if sub is None:  # the whole value is already selected
                break
            node = sub
            scope = _scope_below(resource, name, field, depth)
    return projection


# Selectable names by lower-case spelling: (canonical name, field or None for plain keys).
_Scope = dict[str, tuple[str, Field | None]]


def _resource_scope(resource: Resource) -> _Scope:
    scope: _Scope = {
        f.name.lower(): (f.name, f) for f in resource.fields if not (f.info or f.hidden)
    }
    scope["_info"] = ("_info", None)
    return scope


def _scope_below(resource: Resource, name: str, field: Field | None, depth: int) -> _Scope:
    if depth == 0 and name == "_info":
        return {f.name.lower(): (f.name, None) for f in resource.fields if f.info}
    if field is None:
        return {}
    if field.kind is Kind.ITEMS:
        return {f.name.lower(): (f.name, f) for f in field.items}
    if field.kind in (Kind.REFERENCE, Kind.REFERENCES):
        scope: _Scope = {k: (v, None) for k, (v, _) in reference_keys(field.target).items()}
        scope["_info"] = ("_info", None)
        return scope
    return {}
