"""The invite step: invite the PSA's users, skip the step, revoke an invitation (all for
administrators), and accept one: the only operation that runs without an API key (the view
lets exactly it through, rate-limited per client address: api/graphql/guest.py).
"""

from __future__ import annotations

import uuid

import strawberry

from api import invitations
from api.graphql.context import Info
from api.graphql.errors import RoleEnum
from api.graphql.ids import InvalidId, from_global
from api.graphql.permissions import PublicError, denied
from api.graphql.text import checked
from api.graphql.types.integration import Integration
from api.graphql.types.invitations import (
    Invitation,
    InvitationError,
    InvitationErrorCode,
    InviteSkipReasonEnum,
    load_invitation,
)
from api.graphql.types.viewer import ApiKey, User
from api.invitations import LINK_NOTE
from models import Account, Role
from models import ApiKey as ApiKeyRow
from models import Integration as IntegrationRow
from models import User as UserRow
from models.vault import VaultError
from sync.errors import SyncError
from sync.providers.base import NotSupportedError, PsaUser

# The most users one inviteUsers names (IT Glue's screen invites the whole list at once).
MAX_INVITES = 500


def _error(code: str, message: str, field: str | None = None) -> InvitationError:
    return InvitationError(code=InvitationErrorCode(code), message=message, field=field)


def _forbidden(info: Info) -> list[InvitationError] | None:
    message = denied(info, Role.ADMINISTRATOR)
    if message is None:
        return None
    return [
        InvitationError(
            code=InvitationErrorCode.PERMISSION_DENIED,
            message=message,
            required_role=Role.ADMINISTRATOR,
        )
    ]


async def _integration_of(
    info: Info, value: strawberry.ID
) -> IntegrationRow | list[InvitationError]:
    if errors := _forbidden(info):
        return errors
    try:
        found_id = from_global(str(value), "Integration")
    except InvalidId as exc:
        return [_error("INVALID_ID", str(exc), "integrationId")]
    row = await IntegrationRow.filter(id=found_id, account_id=info.context.account_id).first()
    if row is None:
        return [_error("NOT_FOUND", "no such integration", "integrationId")]
    return row


async def _integration_type(integration_id: uuid.UUID) -> Integration:
    values = await IntegrationRow.filter(id=integration_id).values(*Integration.COLUMNS)
    return Integration.from_row(values[0])


def _base_url(info: Info) -> str:
    """Where the invitation links point: psasync's public URL, else the address the
    administrator reached the API at."""
    if info.context.public_url:
        return info.context.public_url
    request = info.context.request
    base = getattr(request, "base_url", None)
    return str(base) if base is not None else "http://127.0.0.1:8000"


@strawberry.type(description="One invitation made; its link is shown here once, when not emailed.")
class InvitationSent:
    invitation: Invitation
    emailed: bool = strawberry.field(description="Sent to the user's email through SMTP.")
    link: str | None = strawberry.field(
        description="The invitation's link, shown this once, when it was not emailed (no "
        "SMTP configured, or the send failed): hand it to the person. See linkNote."
    )
    link_note: str | None
    email_error: str | None = strawberry.field(description="Why the email was not sent.")


@strawberry.type(description="A chosen PSA user who was not invited, and why.")
class SkippedInvite:
    psa_id: int
    email: str | None
    reason: InviteSkipReasonEnum  # type: ignore[valid-type]


@strawberry.type
class InviteUsersPayload:
    integration: Integration | None = None
    invitations: list[InvitationSent] = strawberry.field(default_factory=list)
    skipped: list[SkippedInvite] = strawberry.field(default_factory=list)
    errors: list[InvitationError] = strawberry.field(default_factory=list)


@strawberry.type
class SkipUserInvitesPayload:
    integration: Integration | None = None
    errors: list[InvitationError] = strawberry.field(default_factory=list)


@strawberry.type
class InvitationPayload:
    invitation: Invitation | None = None
    errors: list[InvitationError] = strawberry.field(default_factory=list)


@strawberry.type
class AcceptInvitationPayload:
    user: User | None = None
    api_key: ApiKey | None = None
    key: str | None = strawberry.field(
        default=None, description="Your first API key. Shown this once: store it now."
    )
    errors: list[InvitationError] = strawberry.field(default_factory=list)


@checked
@strawberry.type
class InvitationMutations:
    @strawberry.mutation(
        description="Invite the PSA users with these psaIds (from Integration.psaUsers) to the "
        "account with this role (administrators). An email that belongs to a user or has a "
        "pending invitation is skipped and reported, never invited twice. Emailed when SMTP "
        "is configured; otherwise each invitation's link is returned once."
    )
    async def invite_users(
        self,
        info: Info,
        integration_id: strawberry.ID,
        psa_user_ids: list[int],
        role: RoleEnum = Role.VIEWER,  # type: ignore[valid-type]
    ) -> InviteUsersPayload:
        found = await _integration_of(info, integration_id)
        if isinstance(found, list):
            return InviteUsersPayload(errors=found)
        if len(psa_user_ids) > MAX_INVITES:
            return InviteUsersPayload(
                errors=[_error("TOO_MANY", f"at most {MAX_INVITES} users at once", "psaUserIds")]
            )
        # The PSA is asked first, outside any transaction: who it lists now is who may be
        # invited (an id it no longer lists is skipped as NOT_IN_PSA).
        try:
            listed = await _psa_users(info, found)
        except PublicError as exc:
            code = (exc.extensions or {}).get("code", "PSA_ERROR")
            return InviteUsersPayload(errors=[_error(str(code), exc.message)])
        chosen, skipped = invitations.choose(listed, psa_user_ids)
        viewer = info.context.viewer
        assert viewer is not None
        result = await invitations.invite(found, chosen, Role(role), invited_by=viewer.user_id)
        account = await Account.get(id=viewer.account_id)
        await invitations.deliver(
            result.issued,
            base_url=_base_url(info),
            smtp=info.context.smtp,
            account_name=account.name,
            inviter=viewer.email,
        )
        sent = [
            InvitationSent(
                invitation=Invitation.of(item.invitation),
                emailed=item.emailed,
                link=None if item.emailed else item.link,
                link_note=None if item.emailed else LINK_NOTE,
                email_error=item.email_error,
            )
            for item in result.issued
        ]
        return InviteUsersPayload(
            integration=await _integration_type(found.id),
            invitations=sent,
            skipped=[
                SkippedInvite(psa_id=s.psa_id, email=s.email, reason=s.reason)
                for s in [*skipped, *result.skipped]
            ],
        )

    @strawberry.mutation(
        description="Skip the invite step (administrators): nobody is invited; "
        "Integration.userInvitesDone shows the step done."
    )
    async def skip_user_invites(
        self, info: Info, integration_id: strawberry.ID
    ) -> SkipUserInvitesPayload:
        found = await _integration_of(info, integration_id)
        if isinstance(found, list):
            return SkipUserInvitesPayload(errors=found)
        await invitations.skip(found)
        return SkipUserInvitesPayload(integration=await _integration_type(found.id))

    @strawberry.mutation(description="Revoke a pending invitation: its token is refused.")
    async def revoke_invitation(self, info: Info, id: strawberry.ID) -> InvitationPayload:
        if errors := _forbidden(info):
            return InvitationPayload(errors=errors)
        try:
            invitation_id = from_global(str(id), "Invitation")
        except InvalidId as exc:
            return InvitationPayload(errors=[_error("INVALID_ID", str(exc), "id")])
        try:
            row = await invitations.revoke(info.context.account_id, invitation_id)
        except invitations.InvitationError as exc:
            return InvitationPayload(errors=[_error(exc.code, exc.message, exc.field)])
        return InvitationPayload(invitation=await load_invitation(row.id))

    @strawberry.mutation(
        description="Accept an invitation with its token: the one operation that needs no "
        "API key (alone in its request; rate-limited per client address). Creates your user "
        "and returns your first API key, once. An unknown, expired, used or revoked token is "
        "refused and nothing changes."
    )
    async def accept_invitation(self, info: Info, token: str) -> AcceptInvitationPayload:
        try:
            accepted = await invitations.accept(token)
        except invitations.InvitationError as exc:
            return AcceptInvitationPayload(errors=[_error(exc.code, exc.message, exc.field)])
        users = await UserRow.filter(id=accepted.user.id).values(*User.COLUMNS)
        keys = await ApiKeyRow.filter(id=accepted.key_row.id).values(*ApiKey.COLUMNS)
        return AcceptInvitationPayload(
            user=User.from_row(users[0]), api_key=ApiKey.from_row(keys[0]), key=accepted.key
        )


async def _psa_users(info: Info, row: IntegrationRow) -> list[PsaUser]:
    """The PSA's users for ``invite``: failures as PublicError (PSA_ERROR, NOT_SUPPORTED)."""
    try:
        provider = await info.context.open_provider(row)
    except (VaultError, ValueError, KeyError, TypeError, NotImplementedError) as exc:
        raise PublicError(
            "cannot connect to the PSA: the stored credentials are unusable", "PSA_ERROR"
        ) from exc
    try:
        return await provider.psa_users(subcontractors=True)
    except NotSupportedError as exc:
        raise PublicError(exc.message, "NOT_SUPPORTED") from exc
    except SyncError as exc:
        raise PublicError(f"the PSA did not list its users: {exc.message}", "PSA_ERROR") from exc
    finally:
        await provider.aclose()
