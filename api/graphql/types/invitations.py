"""The invite step of setup: the PSA's users, invitations, and their errors.

``Integration.psaUsers``, ``Integration.invitations`` and ``Integration.userInvitesDone``
resolve here (administrators: the list names the PSA's staff and their emails).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Any, ClassVar

import strawberry

from api import invitations
from api.graphql.context import Info
from api.graphql.errors import Error, RoleEnum
from api.graphql.ids import to_global
from api.graphql.permissions import PublicError, require
from api.graphql.types.enums import psa_name
from api.invitations import InvitationStatus, SkipReason
from models import Integration as IntegrationRow
from models import Invitation as InvitationRow
from models import Role, UserInvitesStep
from models.vault import VaultError
from sync.errors import SyncError
from sync.providers.base import NotSupportedError

InvitationStatusEnum = strawberry.enum(InvitationStatus, name="InvitationStatus")
InviteSkipReasonEnum = strawberry.enum(
    SkipReason,
    name="InviteSkipReason",
    description="Why a chosen PSA user was not invited.",
)
UserInvitesStepEnum = strawberry.enum(
    UserInvitesStep,
    name="UserInvitesStep",
    description="How the invite step of setup ended: users invited, or the step skipped.",
)


@strawberry.enum
class InvitationErrorCode(Enum):
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    INVALID_ID = "INVALID_ID"
    INVALID_INPUT = "INVALID_INPUT"
    TOO_MANY = "TOO_MANY"
    PSA_ERROR = "PSA_ERROR"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    NOT_PENDING = "NOT_PENDING"
    INVALID_TOKEN = "INVALID_TOKEN"  # noqa: S105 (an error code)
    EXPIRED = "EXPIRED"
    ALREADY_USED = "ALREADY_USED"
    REVOKED = "REVOKED"
    EMAIL_TAKEN = "EMAIL_TAKEN"


@strawberry.type(description="An expected failure of an invitation action.")
class InvitationError(Error):
    code: InvitationErrorCode
    required_role: RoleEnum | None = None  # type: ignore[valid-type]


@strawberry.type(description="An invitation to join the account; its token is never shown.")
class Invitation:
    id: strawberry.ID
    email: str
    name: str
    role: RoleEnum  # type: ignore[valid-type]
    status: InvitationStatusEnum  # type: ignore[valid-type]
    psa_id: int | None = strawberry.field(description="The PSA user it was made for.")
    created_at: datetime
    expires_at: datetime
    emailed_at: datetime | None
    accepted_at: datetime | None
    revoked_at: datetime | None

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "email", "name", "role", "psa_id", "created_at", "expires_at", "emailed_at",
        "accepted_at", "revoked_at",
    )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any], now: datetime | None = None) -> Invitation:
        stand_in = InvitationRow(
            accepted_at=row["accepted_at"],
            revoked_at=row["revoked_at"],
            expires_at=row["expires_at"],
        )
        return cls(
            id=strawberry.ID(to_global("Invitation", row["id"])),
            email=row["email"],
            name=row["name"],
            role=Role(row["role"]),
            status=invitations.status_of(stand_in, now),
            psa_id=row["psa_id"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            emailed_at=row["emailed_at"],
            accepted_at=row["accepted_at"],
            revoked_at=row["revoked_at"],
        )

    @classmethod
    def of(cls, row: InvitationRow) -> Invitation:
        return cls.from_row({c: getattr(row, c) for c in cls.COLUMNS})


async def load_invitation(invitation_id: uuid.UUID) -> Invitation:
    rows = await InvitationRow.filter(id=invitation_id).values(*Invitation.COLUMNS)
    return Invitation.from_row(rows[0])


@strawberry.type(description="A licensed, active user of the PSA, on the invite screen.")
class PsaUser:
    psa_id: int
    name: str
    email: str | None = strawberry.field(description="Null: the PSA has none (not invitable).")
    existing_user: bool = strawberry.field(
        description="A user of this account already has this email (case-insensitive)."
    )
    invited: bool = strawberry.field(description="A pending invitation has this email.")
    invitation_id: strawberry.ID | None = strawberry.field(
        description="That pending invitation (for revokeInvitation)."
    )
    selected: bool = strawberry.field(
        description="Pre-selected for inviting: true for every new user, as IT Glue does."
    )


def psa_user(listed: invitations.ListedUser) -> PsaUser:
    return PsaUser(
        psa_id=listed.psa_id,
        name=listed.name,
        email=listed.email,
        existing_user=listed.existing_user,
        invited=listed.invited,
        invitation_id=(
            strawberry.ID(to_global("Invitation", listed.invitation_id))
            if listed.invitation_id
            else None
        ),
        selected=listed.selected,
    )


async def open_psa_users(
    info: Info, integration_id: uuid.UUID, *, subcontractors: bool = False
) -> list[invitations.ListedUser]:
    """The caller's integration's PSA users, marked; the PSA's failures as ``PublicError``
    (``PSA_ERROR``, ``NOT_SUPPORTED``), never an unexpected error."""
    row = await IntegrationRow.filter(id=integration_id, account_id=info.context.account_id).first()
    if row is None:
        raise PublicError("no such integration", "NOT_FOUND")
    name = psa_name(row.provider)
    try:
        provider = await info.context.open_provider(row)
    except (VaultError, ValueError, KeyError, TypeError, NotImplementedError) as exc:
        raise PublicError(
            f"cannot connect to {name}: the stored credentials are unusable; enter them again",
            "PSA_ERROR",
        ) from exc
    try:
        return await invitations.list_psa_users(
            info.context.account_id, provider, subcontractors=subcontractors
        )
    except NotSupportedError as exc:
        raise PublicError(exc.message, "NOT_SUPPORTED") from exc
    except SyncError as exc:
        raise PublicError(f"{name} did not list its users: {exc.message}", "PSA_ERROR") from exc
    finally:
        await provider.aclose()


async def resolve_psa_users(
    root: Any, info: Info, subcontractors: bool = False
) -> list[PsaUser] | None:
    # Nullable: a PSA that cannot list (SOAP) or a caller who may not see it gets null with
    # an error on this integration only, not on every integration of the same list.
    require(info, Role.ADMINISTRATOR)
    listed = await open_psa_users(info, root.local_id, subcontractors=subcontractors)
    return [psa_user(u) for u in listed]


async def resolve_invitations(
    root: Any,
    info: Info,
    status: InvitationStatusEnum | None = InvitationStatus.PENDING,  # type: ignore[valid-type]
) -> list[Invitation]:
    require(info, Role.ADMINISTRATOR)
    rows = await (
        InvitationRow.filter(integration_id=root.local_id, account_id=info.context.account_id)
        .order_by("created_at", "id")
        .values(*Invitation.COLUMNS)
    )
    now = datetime.now(UTC)
    found = [Invitation.from_row(r, now) for r in rows]
    return [i for i in found if status is None or i.status == InvitationStatus(status)]


PSA_USERS = (
    "The PSA's licensed, active users, to invite (administrators). ConnectWise Manage: "
    "active members with a user licence, not API members; subcontractors only with "
    "subcontractors: true. Pulseway PSA: active employees but this integration's own API "
    "login (Pulseway does not tell other API employees from people). Through ConnectWise's "
    "legacy SOAP API: NOT_SUPPORTED (it has no member list)."
)
INVITATIONS = "Invitations made from this integration's users (administrators), oldest first."
USER_INVITES = "The invite step of setup: INVITED, SKIPPED, or null while it waits."
