"""JSON Patch (``add``, ``replace``, ``remove``) as ConnectWise applies it to a record.

ConnectWise takes a JSON array of operations even for one change, accepts paths with or without a
leading slash, matches names case-sensitively and supports array indexes such as
``/communicationItems/1/value`` (``-`` appends). The document patched here is a full copy of the
record, so every known field exists and an unknown name is an error rather than a new key.
"""

from __future__ import annotations

from typing import Any

from simulators.connectwise.schema import Kind, Resource

OPERATIONS = ("add", "replace", "remove")


class PatchError(ValueError):
    """An operation that cannot be applied; `path` is the offending path."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


def split_path(path: str) -> list[str]:
    """``/communicationItems/1/value`` into its segments (RFC 6901 ``~1``/``~0`` unescaped)."""
    return [part.replace("~1", "/").replace("~0", "~") for part in path.strip("/").split("/")]


def parse_operations(body: Any) -> list[tuple[str, list[str], Any]]:
    """Validate a PATCH body into (op, path segments, value) triples."""
    if not isinstance(body, list):
        raise PatchError("The request body must be a JSON array of patch operations.")
    operations = []
    for entry in body:
        if not isinstance(entry, dict):
            raise PatchError("Each patch operation must be a JSON object.")
        op, path = entry.get("op"), entry.get("path")
        if not isinstance(op, str) or op.lower() not in OPERATIONS:
            raise PatchError(f"Unsupported patch operation {op!r}; use add, replace or remove.")
        if not isinstance(path, str) or not path.strip("/"):
            raise PatchError("Each patch operation needs a path.", str(path))
        if op.lower() != "remove" and "value" not in entry:
            raise PatchError(f"The {op} operation needs a value.", path)
        operations.append((op.lower(), split_path(path), entry.get("value")))
    return operations


def apply_operation(document: dict[str, Any], op: str, segments: list[str], value: Any) -> None:
    """Apply one operation to `document` in place."""
    path = "/" + "/".join(segments)
    container: Any = document
    for segment in segments[:-1]:
        container = _child(container, segment, path)
    last = segments[-1]
    if isinstance(container, dict):
        if last not in container:
            raise PatchError(f"'{path}' does not name a field.", path)
        # Removing a field of a record resets it, as ConnectWise does with PUT's omitted fields.
        container[last] = None if op == "remove" else value
    elif isinstance(container, list):
        if op == "add" and last == "-":
            container.append(value)
            return
        index = _index(last, len(container) + (op == "add"), path)
        if op == "add":
            container.insert(index, value)
        elif op == "replace":
            container[index] = value
        else:
            del container[index]
    else:
        raise PatchError(f"'{path}' goes through a value that has no fields.", path)


def _child(container: Any, segment: str, path: str) -> Any:
    if isinstance(container, dict):
        if segment not in container or container[segment] is None:
            raise PatchError(f"'{path}' does not name a field.", path)
        return container[segment]
    if isinstance(container, list):
        return container[_index(segment, len(container), path)]
    raise PatchError(f"'{path}' goes through a value that has no fields.", path)


def _index(segment: str, size: int, path: str) -> int:
    if not segment.isdigit() or int(segment) >= size:
        raise PatchError(f"'{path}' has no array element {segment}.", path)
    return int(segment)


def check_path(resource: Resource, segments: list[str], *, via_api: bool) -> None:
    """ConnectWise's rules on what a PATCH may touch."""
    path = "/".join(segments)
    slot = resource.index.get(segments[0])
    if slot is None:
        raise PatchError(f"'{path}' does not name a field.", path)
    field = resource.fields[slot]
    if via_api and field.create_only:
        message = f"{field.name} can only be used when creating, not when updating."
        raise PatchError(message, path)
    if field.kind in (Kind.REFERENCE, Kind.REFERENCES) and len(segments) > 1:
        # ConnectWise wants reference objects replaced whole; patching `company/identifier`
        # returns a 200 that changes nothing, so the simulator makes the mistake loud.
        raise PatchError(f"Replace the {segments[0]} reference as a whole object.", path)
