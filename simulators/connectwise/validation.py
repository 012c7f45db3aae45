"""Turning a JSON document sent by a client into a stored row, with ConnectWise's errors.

Every write (POST, PUT, PATCH and the Python API's edits) ends here with the complete intended
state of the record. Values are checked against the schema, references are resolved to the
store's canonical reference objects, and all problems are reported together in one
``InvalidObject`` error, as ConnectWise does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from simulators.connectwise.errors import FieldError, InvalidObject
from simulators.connectwise.schema import CALLBACK_LEVELS, RESOURCES, Field, Kind, Resource, Row
from simulators.connectwise.timestamps import canonical_datetime

MISSING: Any = object()


class References(Protocol):
    """What validation needs from the store."""

    def resolve(self, target: str, value: Mapping[str, Any]) -> dict[str, Any] | None:
        """The canonical reference `value` ({"id"} / {"identifier"} / {"name"}) denotes."""

    def row_of(self, target: str, record_id: int) -> Row | None:
        """The stored row of a referenced record."""

    def default_reference(self, target: str) -> dict[str, Any] | None:
        """The reference to `target`'s row flagged `defaultFlag`, if any."""

    def next_item_id(self) -> int:
        """A fresh id for an owned sub-object (communication items)."""


def build_row(
    resource: Resource,
    document: Mapping[str, Any],
    current: Row | None,
    references: References,
    *,
    via_api: bool,
) -> Row:
    """The row `document` describes; fields absent from it take their defaults.

    Read-only fields keep their current values. Create-only fields keep theirs too; a client of
    the API that tries to change one gets ConnectWise's error.
    """
    errors: list[FieldError] = []
    row: Row = list(current) if current is not None else [None] * len(resource.fields)
    for slot, field in enumerate(resource.fields):
        if field.read_only:  # maintained by the store; a new record starts at the default
            if current is None:
                row[slot] = field.default
            continue
        value = document.get(field.name, MISSING)
        if current is not None and field.create_only and via_api:
            if value is not MISSING:
                proposed = _coerce(resource, field, value, None, references, errors)
                if _ids(proposed) != _ids(current[slot]):
                    errors.append(_error(resource, field, "InvalidField", _create_only(field)))
            continue
        if value is MISSING:
            row[slot] = _default(field, references)
            continue
        previous = current[slot] if current is not None else None
        row[slot] = _coerce(resource, field, value, previous, references, errors)
    for slot, field in enumerate(resource.fields):
        if field.required and row[slot] in (None, ""):
            message = f"The {field.name} field is required."
            errors.append(_error(resource, field, "MissingRequiredField", message))
    if resource.name == "callbacks":
        errors.extend(_callback_errors(resource, row))
    if errors:
        raise InvalidObject(resource.noun, errors)
    return row


def _callback_errors(resource: Resource, row: Row) -> list[FieldError]:
    """ConnectWise's checks on a callback entry: an absolute http(s) URL, a known type and a
    level that type supports (types and levels case-insensitively)."""
    slots, errors = resource.index, []
    url = row[slots["url"]]
    if url and not _absolute_http_url(url):
        errors.append(_error(resource, "url", "InvalidField", "Invalid URL"))
    kind, level = row[slots["type"]], row[slots["level"]]
    if not kind or not level:
        return errors  # reported as missing already
    if kind.lower() not in CALLBACK_LEVELS:
        message = f"Unrecognized type {kind}, see documentation for supported types"
        errors.append(_error(resource, "type", "InvalidObject", message))
        return errors
    levels = CALLBACK_LEVELS[kind.lower()]
    if levels is not None and level.lower() not in levels:
        message = (
            "Unrecognized level for type, see documentation for supported levels for each type"
        )
        errors.append(_error(resource, "level", "InvalidObject", message))
    return errors


def _absolute_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _default(field: Field, references: References) -> Any:
    if field.lookup_default:
        ref = references.default_reference(field.target)
        if field.kind is Kind.REFERENCES:
            return [ref] if ref is not None else []
        return ref
    if field.omit_empty:
        return None
    return [] if field.kind in (Kind.REFERENCES, Kind.ITEMS) else field.default


def _create_only(field: Field) -> str:
    return f"{field.name} can only be used when creating, not when updating."


def _error(resource: Resource, field: Field | str, code: str, message: str) -> FieldError:
    name = field if isinstance(field, str) else field.name
    return FieldError(code=code, message=message, resource=resource.noun, field=name)


def _ids(value: Any) -> list[int]:
    return sorted(ref["id"] for ref in value or ())


def _coerce(
    resource: Resource,
    field: Field,
    value: Any,
    previous: Any,
    references: References,
    errors: list[FieldError],
) -> Any:
    """`value` as stored for `field`, or None after recording an error."""
    kind = field.kind
    if field.omit_empty and not value:
        return None
    if value is None:
        return [] if kind in (Kind.REFERENCES, Kind.ITEMS) else None
    bad = _error(
        resource, field, "InvalidField", f"The {field.name} field is not a valid {kind.value}."
    )
    if kind is Kind.STRING:
        if not isinstance(value, str):
            errors.append(bad)
            return None
        if field.max_length is not None and len(value) > field.max_length:
            message = f"The {field.name} field must be {field.max_length} characters or less."
            errors.append(_error(resource, field, "InvalidField", message))
            return None
        return value
    if kind in (Kind.INTEGER, Kind.DECIMAL, Kind.BOOLEAN):
        expected = _PYTHON_TYPES[kind]
        if not isinstance(value, expected) or (
            kind is not Kind.BOOLEAN and isinstance(value, bool)
        ):
            errors.append(bad)
            return None
        return value
    if kind is Kind.SCALAR:
        return value if isinstance(value, str | int | float | bool) else _fail(errors, bad)
    if kind is Kind.DATETIME:
        try:
            return canonical_datetime(value) if isinstance(value, str) else _fail(errors, bad)
        except ValueError:
            return _fail(errors, bad)
    if kind is Kind.REFERENCE:
        return _reference(resource, field, value, references, errors)
    if kind is Kind.REFERENCES:
        if not isinstance(value, list):
            return _fail(errors, bad)
        resolved = [_reference(resource, field, v, references, errors) for v in value]
        unique = {ref["id"]: ref for ref in resolved if ref is not None}
        return list(unique.values())
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        return _fail(errors, bad)
    return _items(resource, field, value, previous or [], references, errors)


_PYTHON_TYPES: dict[Kind, type | tuple[type, ...]] = {
    Kind.INTEGER: int,
    Kind.DECIMAL: (int, float),
    Kind.BOOLEAN: bool,
}


def _fail(errors: list[FieldError], error: FieldError) -> None:
    errors.append(error)


def _reference(
    resource: Resource,
    field: Field,
    value: Any,
    references: References,
    errors: list[FieldError],
) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        message = f"The {field.name} field must be a reference object."
        errors.append(_error(resource, field, "InvalidField", message))
        return None
    ref = references.resolve(field.target, value)
    if ref is None:
        shown = {k: value[k] for k in ("id", "identifier", "name") if k in value} or value
        message = f"{field.name} {shown} could not be found."
        errors.append(_error(resource, field, "InvalidField", message))
    return ref


def _items(
    resource: Resource,
    field: Field,
    values: list[dict[str, Any]],
    previous: list[dict[str, Any]],
    references: References,
    errors: list[FieldError],
) -> list[dict[str, Any]]:
    """Owned sub-objects: existing ids are kept, new items get fresh ids."""
    if field.name == "customFields":
        return _custom_fields(resource, field, values, references, errors)
    known_ids = {item["id"] for item in previous}
    items = []
    for value in values:
        item: dict[str, Any] = {}
        for sub in field.items:
            raw = value.get(sub.name)
            if sub.read_only or raw is None:
                item[sub.name] = sub.default
                continue
            item[sub.name] = _coerce(resource, sub, raw, None, references, errors)
        if item["id"] not in known_ids:
            item["id"] = references.next_item_id()
        known_ids.discard(item["id"])  # a duplicated id becomes a new item
        kind = item.get("type")
        if kind is None:
            message = f"The {field.name} type field is required."
            errors.append(_error(resource, f"{field.name}/type", "MissingRequiredField", message))
        else:
            _derive_communication(item, references.row_of("communication_types", kind["id"]))
        items.append(item)
    return items


def _custom_fields(
    resource: Resource,
    field: Field,
    values: list[dict[str, Any]],
    references: References,
    errors: list[FieldError],
) -> list[dict[str, Any]]:
    """Custom field values as sent: `id` names the site's definition, so it is required."""
    items = []
    for value in values:
        item = {
            sub.name: _coerce(resource, sub, value.get(sub.name), None, references, errors)
            for sub in field.items
        }
        if item["id"] is None:
            message = f"The {field.name} id field is required."
            errors.append(_error(resource, f"{field.name}/id", "MissingRequiredField", message))
        items.append(item)
    return items


_TYPE_SLOTS = RESOURCES["communication_types"].index


def _derive_communication(item: dict[str, Any], kind_row: Row | None) -> None:
    """ConnectWise derives `communicationType` from the item's type and `domain` from e-mails."""
    if kind_row is None:
        return
    email = kind_row[_TYPE_SLOTS["emailFlag"]]
    fax = kind_row[_TYPE_SLOTS["faxFlag"]]
    item["communicationType"] = "Email" if email else "Fax" if fax else "Phone"
    value = item.get("value")
    if email and isinstance(value, str) and "@" in value:
        item["domain"] = "@" + value.rsplit("@", 1)[1]
