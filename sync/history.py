"""Field history: who or what set each synced field, one row per change.

Rows are plain dicts inserted in bulk (``models.bulk.insert_rows``): a delivery or a pull
page writes hundreds of them, and a Tortoise instance per row would cost more than the rest
of the write. Values are stored as JSON text (``models.outbox.json_text``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from models import AssetKind, ChangeSource, FieldChange
from models.bulk import insert_rows
from models.outbox import json_text


def change(
    account_id: uuid.UUID,
    kind: AssetKind,
    local_id: uuid.UUID,
    field: str,
    old: Any,
    new: Any,
    source: ChangeSource,
    at: datetime,
    *,
    actor: str | None = None,
    integration_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """One history row; ``old`` and ``new`` in JSON form (``sync.snapshot.encode``)."""
    return {
        "account_id": account_id,
        "kind": kind,
        "local_id": local_id,
        "field": field,
        "old_value": json_text(old),
        "new_value": json_text(new),
        "source": source,
        "actor": actor,
        "integration_id": integration_id,
        "changed_at": at,
    }


async def write(rows: Sequence[dict[str, Any]]) -> None:
    """Insert history rows (inside the caller's transaction)."""
    await insert_rows(FieldChange, rows)
