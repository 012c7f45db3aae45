"""Writes to Pulseway PSA in psasync's words: JSON Patch operations, create bodies and full
PUT bodies from a ``PsaChange``, the email/phone operations that turn a contact's lists into
the wanted ones, and what a create still lacks.

Pulseway names come from ``mapping.py`` (the field table and the input-DTO names below it);
nothing here calls Pulseway: the provider reads what a body needs (lookups, the current
record) and sends it through the client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.enums import AssetKind
from sync.providers import requirements
from sync.providers.base import PsaChange
from sync.providers.pulseway import mapping

Operation = dict[str, Any]

_ITEM_COLUMNS = frozenset(items.column for items in mapping.CONTACT_ITEMS)


def values(kind: AssetKind, change: PsaChange) -> dict[str, Any]:
    """Pulseway input property → value for what ``change`` sets (None clears a value).

    Columns Pulseway cannot write (``write=None``: they flow from Pulseway only) are left
    out; a contact's ``emails``/``phones`` too (they have their own operations). ValueError
    for a column the table does not know.
    """
    table = mapping.RECORD_MAPS[kind]
    _check_known(table, change)
    out: dict[str, Any] = {}
    for f in table.fields:
        if f.write is not None and f.local in change.values and f.local not in _ITEM_COLUMNS:
            out[f.write] = f.to_psa(change.values[f.local])
    for r in table.refs:
        if r.write is not None and r.name in change.refs:
            out[r.write] = change.refs[r.name]
    for c in table.codes:
        if c.write is not None and c.kind in change.codes:
            out[c.write] = c.to_psa(tuple(change.codes[c.kind]))
    if table.parent_write is not None and change.parent_psa_id is not None:
        out[table.parent_write] = change.parent_psa_id
    return out


def patch_operations(properties: Mapping[str, Any]) -> list[Operation]:
    """One JSON Patch ``replace`` per property (ASP.NET JsonPatch: path ``/name``)."""
    return [{"op": "replace", "path": f"/{name}", "value": v} for name, v in properties.items()]


def _check_known(table: mapping.RecordMap, change: PsaChange) -> None:
    unknown = sorted(set(change.values) - {f.local for f in table.fields})
    unknown += sorted(set(change.refs) - {r.name for r in table.refs})
    unknown += sorted(str(k) for k in set(change.codes) - {c.kind for c in table.codes})
    if unknown:
        raise ValueError(f"not Pulseway-mapped columns: {', '.join(unknown)}")


def _given(properties: Mapping[str, Any]) -> dict[str, Any]:
    """Properties with a value: a create leaves the rest to Pulseway's defaults."""
    return {name: v for name, v in properties.items() if v is not None}


# -- accounts ------------------------------------------------------------------------------------


def account_body(
    change: PsaChange, *, business_type_id: int, account_manager_id: int
) -> dict[str, Any]:
    """An ``AccountPostInputDto``: the mapped values, the business type and account manager
    the provider picked, and the one location Pulseway requires (see ``location_body``)."""
    body = _given(values(AssetKind.ORGANIZATION, change))
    body[mapping.BUSINESS_TYPE_ID] = business_type_id
    body[mapping.ACCOUNT_MANAGER_ID] = account_manager_id
    body[mapping.ACCOUNT_LOCATIONS] = [location_body(change.address)]
    return body


def location_body(address: Mapping[str, Any] | None) -> dict[str, Any]:
    """The main location of a new account: named after the local primary location (``name``
    in ``PsaChange.address``), else ``mapping.DEFAULT_LOCATION_NAME``, with one main address
    from the local address columns (none when they are all blank)."""
    given = address or {}
    name = mapping.text(given.get("name")) or mapping.DEFAULT_LOCATION_NAME
    lines = _given(
        {
            target: mapping.wire_value(given[local])
            for local, target in mapping.ADDRESS_WRITE.items()
            if local in given
        }
    )
    addresses = [{**lines, mapping.IS_MAIN: True}] if lines else []
    return {
        mapping.LOCATION_NAME: name,
        mapping.IS_MAIN: True,
        mapping.IS_ACTIVE: True,
        mapping.ADDRESSES: addresses,
    }


# -- contacts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemTypes:
    """Pulseway's email or phone types, to give a local entry's type name its id."""

    by_name: Mapping[str, int]  # casefolded name → id
    default: int | None  # the lookup's default (else its first active) type
    fax: int | None  # the phone type named Fax, if any

    @classmethod
    def of(cls, rows: Iterable[Mapping[str, Any]]) -> ItemTypes:
        by_name: dict[str, int] = {}
        default = first = fax = None
        for row in rows:
            ident = mapping.psa_id(mapping.get(row, "id"))
            name = mapping.text(mapping.get(row, "name"))
            if ident is None or name is None:
                continue
            by_name.setdefault(name.casefold(), ident)
            active = mapping.get(row, "isActive") is not False
            if active and first is None:
                first = ident
            if active and default is None and mapping.get(row, "isDefault"):
                default = ident
            if fax is None and name.casefold() == mapping.FAX_PHONE_TYPE:
                fax = ident
        return cls(by_name, default if default is not None else first, fax)

    def id_for(self, entry: Mapping[str, Any]) -> int | None:
        """The type named by ``entry["type"]``; an unknown name gets the default type (a fax
        the Fax type)."""
        name = mapping.text(entry.get("type"))
        if name is not None and name.casefold() in self.by_name:
            return self.by_name[name.casefold()]
        if entry.get("kind") == "fax" and self.fax is not None:
            return self.fax
        return self.default


def wanted_entries(entries: Any) -> dict[str, Mapping[str, Any]]:
    """Local typed entries (``{"type", "value", "primary"[, "kind"]}``) with a value, by
    casefolded value (the first of duplicates wins; Pulseway matches values case-blind)."""
    found: dict[str, Mapping[str, Any]] = {}
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, Mapping):
            continue
        value = mapping.text(entry.get("value"))
        if value is not None:
            found.setdefault(value.casefold(), {**entry, "value": value})
    return found


def item_inputs(
    items: mapping.ContactItems, entries: Any, types: ItemTypes
) -> list[dict[str, Any]]:
    """A new contact's ``emails``/``phones`` (ContactEmail/PhoneInputDto)."""
    return [
        {
            items.input_value: entry["value"],
            items.input_type_id: types.id_for(entry),
            mapping.ITEM_DEFAULT: bool(entry.get("primary")),
        }
        for entry in wanted_entries(entries).values()
    ]


def item_operations(
    items: mapping.ContactItems, current: Any, entries: Any, types: ItemTypes
) -> list[Operation]:
    """The email/phone patch operations that turn the contact's ``current`` list (as read)
    into ``entries`` (local typed entries), and nothing more: deletes of values no longer
    wanted, updates of the type, default flag or letter case of kept ones, adds of new ones.

    The default flag is compared only when some wanted entry is primary: Pulseway always
    keeps one default, so a list without a primary entry accepts whichever it chose.
    """
    have: dict[str, Mapping[str, Any]] = {}
    for raw in current if isinstance(current, list) else ():
        value = mapping.text(items.read_value(raw)) if isinstance(raw, Mapping) else None
        if value is not None:
            have.setdefault(value.casefold(), raw)
    wanted = wanted_entries(entries)
    any_primary = any(bool(e.get("primary")) for e in wanted.values())
    deletes: list[Operation] = [
        {mapping.ITEM_OPERATION: mapping.ITEM_DELETE, items.patch_value: _value(items, raw)}
        for folded, raw in have.items()
        if folded not in wanted
    ]
    updates: list[Operation] = []
    adds: list[Operation] = []
    for folded, entry in wanted.items():
        type_id, primary = types.id_for(entry), bool(entry.get("primary"))
        raw = have.get(folded)
        if raw is None:
            adds.append(
                {
                    mapping.ITEM_OPERATION: mapping.ITEM_ADD,
                    items.patch_value: entry["value"],
                    mapping.ITEM_TYPE_ID: type_id,
                    mapping.ITEM_DEFAULT: primary,
                }
            )
            continue
        changes: Operation = {}
        if entry["value"] != _value(items, raw):
            changes[items.patch_new_value] = entry["value"]
        if type_id is not None and mapping.psa_id(mapping.get(raw, items.read_type_id)) != type_id:
            changes[mapping.ITEM_TYPE_ID] = type_id
        if any_primary and bool(mapping.get(raw, mapping.ITEM_DEFAULT)) != primary:
            changes[mapping.ITEM_DEFAULT] = primary
        if changes:
            updates.append(
                {
                    mapping.ITEM_OPERATION: mapping.ITEM_UPDATE,
                    items.patch_value: _value(items, raw),
                    **changes,
                }
            )
    return deletes + updates + adds


def _value(items: mapping.ContactItems, raw: Mapping[str, Any]) -> str:
    return mapping.text(items.read_value(raw)) or ""


def contact_body(
    change: PsaChange, email_types: ItemTypes, phone_types: ItemTypes
) -> dict[str, Any]:
    """A ``ContactInputDto``: names, account, location and the email/phone lists."""
    given = _given(values(AssetKind.CONTACT, change))
    body = {name: v for name, v in given.items() if name in mapping.CONTACT_CREATE_INPUT}
    body[mapping.EMAILS.column] = item_inputs(
        mapping.EMAILS, change.values.get(mapping.EMAILS.column), email_types
    )
    body[mapping.PHONES.column] = item_inputs(
        mapping.PHONES, change.values.get(mapping.PHONES.column), phone_types
    )
    return body


def contact_properties(change: PsaChange, location_id: int | None = None) -> dict[str, Any]:
    """The contact properties an update sets (``emails``/``phones`` aside); ``location_id``:
    the new account's location when the change moves the contact without naming one (its old
    location is not the new account's)."""
    props = values(AssetKind.CONTACT, change)
    if location_id is not None:
        props[_write_of(mapping.CONTACT, "location")] = location_id
    return props


def contact_after_create(change: PsaChange) -> list[Operation]:
    """What ``ContactInputDto`` cannot carry (job title, point of contact), as the PATCH
    operations that follow the create; none when those are blank or false (the defaults)."""
    given = values(AssetKind.CONTACT, change)
    rest = {
        name: v
        for name, v in given.items()
        if name not in mapping.CONTACT_CREATE_INPUT and v not in (None, False)
    }
    return patch_operations(rest)


# -- hardware assets -----------------------------------------------------------------------------


def _write_of(table: mapping.RecordMap, ref: str) -> str:
    return next(r.write for r in table.refs if r.name == ref and r.write is not None)


_ACCOUNT_LOCATION = _write_of(mapping.CONFIGURATION, "location")


def asset_body(change: PsaChange, location_id: int | None) -> dict[str, Any]:
    """A ``HardwareAssetInputDto`` for a create; ``location_id`` (the account's main location)
    when the change names none."""
    body = _given(values(AssetKind.CONFIGURATION, change))
    if location_id is not None:
        body.setdefault(_ACCOUNT_LOCATION, location_id)
    return body


def asset_put_body(
    current: Mapping[str, Any], change: PsaChange, location_id: int | None = None
) -> dict[str, Any]:
    """The full ``HardwareAssetInputDto`` for a PUT: every input property the asset's output
    carries, as it is, with the change laid over (``location_id``: the new account's location
    when the change moves the asset without naming one). An id of 0 (Pulseway's "none") is
    sent as null. A property the output does not return cannot be kept: it is left out."""
    lowered = {str(k).lower() for k in current}
    body: dict[str, Any] = {}
    for name in mapping.HARDWARE_ASSET_INPUT:
        if name.lower() not in lowered:
            continue
        value = mapping.get(current, name)
        if name.endswith("Id") and isinstance(value, int) and not isinstance(value, bool):
            value = value or None
        body[name] = value
    body.update(values(AssetKind.CONFIGURATION, change))
    if location_id is not None:
        body[_ACCOUNT_LOCATION] = location_id
    return body


def main_location_id(locations: Sequence[Mapping[str, Any]]) -> int | None:
    """The ``isMain`` location of an account's location lookup, else its first."""
    return mapping.psa_id(mapping.get(mapping.main_item(list(locations)), "id"))


# -- creates -------------------------------------------------------------------------------------


def missing_for_create(kind: AssetKind, change: PsaChange) -> list[str]:
    """``mapping.REQUIRED_FOR_CREATE`` columns ``change`` lacks, in ``REQUIRED_WORDS`` words;
    for a location, why it cannot be created at all."""
    if kind is AssetKind.LOCATION:
        return [mapping.LOCATION_CREATE_REFUSAL]
    table = mapping.RECORD_MAPS[kind]
    return requirements.missing(
        mapping.REQUIRED_FOR_CREATE.get(kind, frozenset()),
        lambda column: requirements.present(table, column, change, mapping.PARENT_COLUMN),
        mapping.REQUIRED_WORDS,
    )


# -- matching ------------------------------------------------------------------------------------


def distinct_names(names: Iterable[str | None]) -> list[str]:
    """Non-blank names, once each (compared case-blind), in first-seen order."""
    seen: set[str] = set()
    kept: list[str] = []
    for name in names:
        stripped = mapping.text(name)
        if stripped is not None and stripped.casefold() not in seen:
            seen.add(stripped.casefold())
            kept.append(stripped)
    return kept
