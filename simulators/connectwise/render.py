"""Stored rows to ConnectWise JSON: camelCase, references with `_info` hrefs, nulls omitted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulators.connectwise.query import Projection
from simulators.connectwise.schema import RESOURCES, Field, Kind, Resource, Row

if TYPE_CHECKING:
    from simulators.connectwise.store import ConnectWiseStore


class Renderer:
    """Renders records for one response; `api_base` (``http://host/v2025_1/apis/3.0``) is
    used for hrefs, which are left out when it is None (the Python API)."""

    def __init__(self, store: ConnectWiseStore, api_base: str | None) -> None:
        self._store = store
        self._base = api_base
        # Rendered references by id() of the canonical reference: a page of 1000 records
        # mentions the same few statuses, types and companies over and over.
        self._rendered: dict[int, dict[str, Any]] = {}

    def record(
        self, resource: Resource, row: Row, projection: Projection | None = None
    ) -> dict[str, Any]:
        """The JSON object of `row`, restricted to `projection` (the `fields` parameter)."""
        out: dict[str, Any] = {}
        reference = self.reference
        for slot, name, kind, target, items in _BODY[resource.name]:
            value = row[slot]
            if value is None:
                continue
            sub: Projection | None = None
            if projection is not None:
                if name not in projection:
                    continue
                sub = projection[name]
            if kind is _REFERENCE:
                value = reference(target, value, sub)
            elif kind is _REFERENCES:
                value = [reference(target, ref, sub) for ref in value]
            elif kind is _ITEMS:
                value = [self._item(items, item, sub) for item in value]
            out[name] = value
        if projection is None or "_info" in projection:
            out["_info"] = _select(self._info(resource, row), projection and projection["_info"])
        return out

    def reference(
        self, target: str, ref: dict[str, Any], projection: Projection | None = None
    ) -> dict[str, Any]:
        out = self._rendered.get(id(ref))
        if out is None:
            out = dict(ref)
            if self._base is not None:
                out["_info"] = {RESOURCES[target].href_key: self.href(target, ref["id"])}
            self._rendered[id(ref)] = out
        return out if projection is None else _select(out, projection)

    def href(self, collection: str, record_id: int) -> str:
        resource = RESOURCES[collection]
        path = resource.path
        if resource.parent:
            parent = self._store.table(collection).parent_of.get(record_id, 0)
            path = path.replace("{parent}", str(parent))
        return f"{self._base}/{path}/{record_id}"

    def _item(
        self, fields: tuple[Field, ...], item: dict[str, Any], projection: Projection | None
    ) -> dict[str, Any]:
        out = {name: value for name, value in item.items() if value is not None}
        for field in fields:
            if field.kind is _REFERENCE and field.name in out:
                out[field.name] = self.reference(field.target, out[field.name])
        return out if projection is None else _select(out, projection)

    def _info(self, resource: Resource, row: Row) -> dict[str, Any]:
        info = {name: row[slot] for slot, name in _INFO[resource.name] if row[slot] is not None}
        if self._base is not None:
            record_id = row[0]
            for key, template in resource.links:
                info[key] = f"{self._base}/{template.format(id=record_id)}"
        return info

    def document(self, resource: Resource, row: Row) -> dict[str, Any]:
        """An editable copy of `row` in JSON form (nulls kept, no `_info`), for PATCH."""
        document: dict[str, Any] = {}
        for slot, field in enumerate(resource.fields):
            if field.info or field.hidden:  # hidden fields are read-only: writes keep them
                continue
            value = row[slot]
            if field.kind is Kind.REFERENCE and value is not None:
                value = dict(value)
            elif field.kind is Kind.REFERENCES:
                value = [dict(ref) for ref in value]
            elif field.kind is Kind.ITEMS:  # every sub-field present, so patches can set any
                items = value or ()  # None: an omitted empty list (`Field.omit_empty`)
                value = [{f.name: _copy(item.get(f.name)) for f in field.items} for item in items]
            document[field.name] = value
        return document


_REFERENCE, _REFERENCES, _ITEMS = Kind.REFERENCE, Kind.REFERENCES, Kind.ITEMS

# (slot, name, kind, target, item fields) of everything rendered outside `_info`, per resource.
_BODY = {
    name: tuple(
        (slot, f.name, f.kind, f.target, f.items)
        for slot, f in enumerate(resource.fields)
        if not (f.info or f.hidden)
    )
    for name, resource in RESOURCES.items()
}

# (slot, name) of the fields rendered inside `_info`, per resource.
_INFO = {
    name: tuple((slot, f.name) for slot, f in enumerate(resource.fields) if f.info)
    for name, resource in RESOURCES.items()
}


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def _select(value: dict[str, Any], projection: Projection | None) -> dict[str, Any]:
    if projection is None:
        return value
    return {k: v for k, v in value.items() if k in projection}
