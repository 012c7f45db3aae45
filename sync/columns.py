"""How local columns relate to what a PSA record carries: relations, reference codes, stamps.

Shared by pulls (``sync.apply``) and pushes (``sync.push``), which read the same facts in
opposite directions.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from models import AssetKind, ReferenceKind

# A PSA stamp has one-second precision: a record read within the second of its stamp may
# change again under the same stamp, so only trust the stamp once that second had passed.
STAMP_RESOLUTION = timedelta(seconds=1)

# Relations a record may carry: name → (kind of the related asset, local FK column).
RELATIONS: dict[str, tuple[AssetKind, str]] = {
    "parent": (AssetKind.ORGANIZATION, "parent_id"),
    "primary_location": (AssetKind.LOCATION, "primary_location_id"),
    "location": (AssetKind.LOCATION, "location_id"),
    "contact": (AssetKind.CONTACT, "contact_id"),
}
CODES: dict[ReferenceKind, str] = {
    ReferenceKind.ORGANIZATION_TYPE: "organization_type_id",
    ReferenceKind.ORGANIZATION_STATUS: "organization_status_id",
    ReferenceKind.CONFIGURATION_TYPE: "configuration_type_id",
    ReferenceKind.CONFIGURATION_STATUS: "configuration_status_id",
    ReferenceKind.CONTACT_TYPE: "contact_type_id",
}


def stamps(updated_at: datetime | None, now: datetime) -> dict[str, Any]:
    """A link's record of the PSA stamp it last saw (at ``now``), as ``RecordLink`` columns."""
    return {
        "psa_updated_at": updated_at,
        "synced_at": now,
        "psa_stamp": None if updated_at is None else int(updated_at.timestamp()),
        "stamp_trusted": updated_at is not None and now >= updated_at + STAMP_RESOLUTION,
    }


def as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
