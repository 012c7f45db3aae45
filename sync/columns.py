"""How local columns relate to what a PSA record carries: relations, reference codes, stamps.

Shared by pulls (``sync.apply``) and pushes (``sync.push``), which read the same facts in
opposite directions.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from models import AssetKind, ReferenceKind

if TYPE_CHECKING:
    from sync.providers.base import PsaRecord

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


def stamps(
    updated_at: datetime | None, now: datetime, content: str | None = None
) -> dict[str, Any]:
    """A link's record of the PSA stamp it last saw (at ``now``), as ``RecordLink`` columns.

    ``content``: the ``content_hash`` of the record as read, when the link now holds exactly
    what it says (a pull); None after a push, whose answer is not compared field by field.
    """
    return {
        "psa_updated_at": updated_at,
        "synced_at": now,
        "psa_stamp": None if updated_at is None else int(updated_at.timestamp()),
        "stamp_trusted": updated_at is not None and now >= updated_at + STAMP_RESOLUTION,
        "psa_hash": content,
    }


def content_hash(record: PsaRecord) -> str:
    """A digest of what a PSA record says in psasync's words (values, relations, reference
    codes, owner), not of when or by whom it changed: equal digests mean nothing to apply.

    For PSA lists that cannot filter by change time (Pulseway hardware assets), a pull reads
    every record and skips those whose digest its link already holds, writing nothing.
    """
    content = {
        "values": record.values,
        "refs": record.refs,
        "codes": {kind.value: sorted(ids) for kind, ids in record.codes.items()},
        "parent": record.parent_psa_id,
    }
    text = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
