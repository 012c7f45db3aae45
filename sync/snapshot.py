"""Snapshots: mapped field values in JSON form, the base of change detection and merging."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any


def encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def snapshot_of(values: dict[str, Any], refs: dict[str, int | None]) -> dict[str, Any]:
    """``values`` in JSON form, plus the PSA ids of the related records under ``_refs``."""
    snap = {key: encode(value) for key, value in values.items()}
    snap["_refs"] = {name: psa_id for name, psa_id in refs.items() if psa_id is not None}
    return snap
