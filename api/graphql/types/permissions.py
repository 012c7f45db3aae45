"""What the PSA's security role lets psasync's API user do, by area (``sync.permissions``)."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from sync import permissions

PERMISSIONS = (
    "What the PSA's security role lets psasync's API user do, by area (in the PSA's words), "
    "denials first. Reads are checked at setup, when credentials change and at every run; "
    "writes are never tried for the check (neither PSA has a dry run): a write denial is "
    "what a push met (its entries FAILED), cleared by a later push there or new credentials. "
    "A denial is a warning: the area's records are not synced, the rest is. Empty until a "
    "first check."
)


@strawberry.enum(name="PsaAccess", description="Reading or writing a PSA area.")
class PsaAccess(Enum):
    READ = "read"
    WRITE = "write"


@strawberry.type(description="Whether psasync's API user may read or write one PSA area.")
class PsaPermission:
    area: str = strawberry.field(
        description="ConnectWise: companies, sites, contacts, configurations, members, boards, "
        "tickets, callbacks. Pulseway PSA: accounts, contacts, assets, employees, queues, "
        "tickets, webhooks, lookups."
    )
    access: PsaAccess
    allowed: bool
    message: str | None = strawberry.field(description="The PSA's refusal, when denied.")
    required: bool = strawberry.field(
        description="No sync is possible without it (ConnectWise companies, Pulseway PSA "
        "accounts): denied at setup, the setup is refused."
    )


def permissions_of(stored: Any) -> list[PsaPermission]:
    """The report kept in the integration's ``permissions`` column, denials first."""
    return [
        PsaPermission(
            area=e.area,
            access=PsaAccess(e.access),
            allowed=e.allowed,
            message=e.message,
            required=e.core,
        )
        for e in permissions.ordered(permissions.report_of(stored))
    ]
