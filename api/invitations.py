"""Inviting the PSA's users at setup: the list, invitations, skipping the step, accepting.

IT Glue shows "a list of all licensed user accounts in your PSA … We automatically select
all PSA users to be invited … Invite Users … Skip". Here:

- ``list_psa_users``: the PSA's licensed, active users (``PsaProvider.psa_users``), each
  marked with whether a user of the account already has that email (case-insensitive), a
  pending invitation, and ``selected`` (true for every new one).
- ``invite``: an ``Invitation`` per chosen user, each with a one-time token (only its SHA-256
  stored) valid ``LIFETIME``; an email that already belongs to a user, or has a pending
  invitation, is skipped and reported, never invited twice. ``deliver`` emails them after
  the transaction has committed (SMTP configured), or hands back their links.
- ``accept``: the token's invitation becomes a ``User`` with a first API key, once; an
  unknown, expired, used or revoked token is refused and nothing changes.

No network I/O happens inside a transaction: the PSA is asked before, emails go after.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tortoise.transactions import in_transaction

from api import access, mail
from models import Account, ApiKey, Integration, Invitation, Role, User, UserInvitesStep
from models.accounts import INVITATION_TOKEN_PREFIX
from models.bulk import lock_rows
from sync.providers.base import PsaProvider, PsaUser

log = logging.getLogger("psasync.invitations")

LIFETIME = timedelta(days=7)
# How a link's page is reached: the token rides in the fragment, which browsers never send
# to a server, so no access log can hold it.
ACCEPT_PATH = "/invitations/accept#token="
LINK_NOTE = (
    "Hand this link to the person invited; it works once, for 7 days. psasync's console "
    "does not have the link's page yet: until it does, the token after 'token=' is accepted "
    "through the GraphQL mutation acceptInvitation(token: ...), which answers the first API key."
)


class InvitationStatus(StrEnum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"


class SkipReason(StrEnum):
    EXISTING_USER = "EXISTING_USER"
    ALREADY_INVITED = "ALREADY_INVITED"
    NO_EMAIL = "NO_EMAIL"
    NOT_IN_PSA = "NOT_IN_PSA"
    DUPLICATE = "DUPLICATE"


class InvitationError(Exception):
    """An expected refusal; ``code`` names it (the API's ``InvitationErrorCode``)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def status_of(row: Invitation, now: datetime | None = None) -> InvitationStatus:
    if row.accepted_at is not None:
        return InvitationStatus.ACCEPTED
    if row.revoked_at is not None:
        return InvitationStatus.REVOKED
    if row.expires_at <= (now or datetime.now(UTC)):
        return InvitationStatus.EXPIRED
    return InvitationStatus.PENDING


@dataclass(frozen=True)
class ListedUser:
    """One PSA user on the invite screen."""

    psa_id: int
    name: str
    email: str | None
    existing_user: bool
    invitation_id: uuid.UUID | None  # the pending invitation for this email

    @property
    def invited(self) -> bool:
        return self.invitation_id is not None

    @property
    def selected(self) -> bool:
        """Selected for inviting: everyone new, as IT Glue pre-selects them."""
        return self.email is not None and not self.existing_user and not self.invited


async def _known_emails(
    account_id: uuid.UUID, now: datetime
) -> tuple[set[str], dict[str, uuid.UUID]]:
    """The emails of the account's users, and of its pending invitations (lower case)."""
    users = await User.filter(account_id=account_id).values_list("email", flat=True)
    rows = await Invitation.filter(
        account_id=account_id,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=now,
    ).values_list("email", "id")
    return {str(e).lower() for e in users}, {str(e).lower(): i for e, i in rows}


async def list_psa_users(
    account_id: uuid.UUID, provider: PsaProvider, *, subcontractors: bool = False
) -> list[ListedUser]:
    """The PSA's users (one call to the PSA), marked against the account's users and pending
    invitations. ``SyncError`` from the PSA goes to the caller."""
    return await mark(account_id, await provider.psa_users(subcontractors=subcontractors))


async def mark(account_id: uuid.UUID, users: Sequence[PsaUser]) -> list[ListedUser]:
    """PSA users as the invite screen shows them: existing user, invited, selected."""
    emails, invited = await _known_emails(account_id, datetime.now(UTC))
    listed = []
    for user in users:
        email = user.email.lower() if user.email else None
        listed.append(
            ListedUser(
                psa_id=user.psa_id,
                name=user.name,
                email=user.email,
                existing_user=email in emails if email else False,
                invitation_id=invited.get(email) if email else None,
            )
        )
    return listed


@dataclass
class Issued:
    """A new invitation and its token: shown or sent once, never stored."""

    invitation: Invitation
    token: str
    link: str = ""
    emailed: bool = False
    email_error: str | None = None


@dataclass(frozen=True)
class Skipped:
    psa_id: int
    email: str | None
    reason: SkipReason


@dataclass
class Invited:
    issued: list[Issued] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def choose(users: Sequence[PsaUser], psa_ids: Sequence[int]) -> tuple[list[PsaUser], list[Skipped]]:
    """The PSA users with these ids (in the order asked); ids the PSA did not list are
    skipped as NOT_IN_PSA (inactive, an API login, gone)."""
    by_id = {u.psa_id: u for u in users}
    chosen, skipped = [], []
    for psa_id in dict.fromkeys(psa_ids):
        found = by_id.get(psa_id)
        if found is None:
            skipped.append(Skipped(psa_id, None, SkipReason.NOT_IN_PSA))
        else:
            chosen.append(found)
    return chosen, skipped


async def invite(
    integration: Integration,
    chosen: Sequence[PsaUser],
    role: Role,
    *,
    invited_by: uuid.UUID | None,
    now: datetime | None = None,
) -> Invited:
    """Invitations for ``chosen`` (PSA users already read), in one transaction that also
    marks the integration's invite step done. Emails of users or pending invitations are
    skipped: the account's row is locked first, so two administrators inviting at once
    cannot both invite one email."""
    now = now or datetime.now(UTC)
    account_id: uuid.UUID = integration.account_id  # type: ignore[attr-defined]
    result = Invited()
    async with in_transaction():
        await lock_rows(Account, [account_id])
        emails, invited = await _known_emails(account_id, now)
        for user in chosen:
            email = (user.email or "").strip().lower()
            if not email:
                result.skipped.append(Skipped(user.psa_id, None, SkipReason.NO_EMAIL))
                continue
            reason = (
                SkipReason.EXISTING_USER
                if email in emails
                else SkipReason.ALREADY_INVITED
                if email in invited
                else None
            )
            if reason is not None:
                # One email listed twice in the PSA: the second is a duplicate of this call's.
                if any(i.invitation.email == email for i in result.issued):
                    reason = SkipReason.DUPLICATE
                result.skipped.append(Skipped(user.psa_id, user.email, reason))
                continue
            token, token_hash = Invitation.generate()
            row = await Invitation.create(
                account_id=account_id,
                integration_id=integration.id,
                email=email,
                name=user.name[:200],
                role=role,
                psa_id=user.psa_id,
                token_hash=token_hash,
                invited_by_id=invited_by,
                expires_at=now + LIFETIME,
            )
            invited[email] = row.id
            result.issued.append(Issued(row, token))
        await Integration.filter(id=integration.id).update(user_invites=UserInvitesStep.INVITED)
    return result


def link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{ACCEPT_PATH}{token}"


async def deliver(
    issued: Sequence[Issued],
    *,
    base_url: str,
    smtp: mail.Smtp | None,
    account_name: str,
    inviter: str | None,
) -> None:
    """Email each invitation when SMTP is configured (after the invitations committed); the
    link stays on the ``Issued`` for the administrator when there is no SMTP or a send
    failed (``email_error``). Never logs a token or a link."""
    for item in issued:
        item.link = link(base_url, item.token)
        if smtp is None:
            continue
        expires = item.invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        message = mail.invitation_message(
            smtp,
            to=item.invitation.email,
            account=account_name,
            inviter=inviter,
            link=item.link,
            expires=expires,
        )
        try:
            await mail.send(smtp, message)
        except mail.MailError as exc:
            item.email_error = str(exc)
            log.warning("invitation %s was not emailed: %s", item.invitation.id, exc)
            continue
        item.emailed = True
        item.invitation.emailed_at = datetime.now(UTC)
        await Invitation.filter(id=item.invitation.id).update(emailed_at=item.invitation.emailed_at)


async def skip(integration: Integration) -> None:
    """Record that the invite step was skipped (an earlier invite keeps it INVITED)."""
    await Integration.filter(id=integration.id, user_invites__isnull=True).update(
        user_invites=UserInvitesStep.SKIPPED
    )


async def revoke(account_id: uuid.UUID, invitation_id: uuid.UUID) -> Invitation:
    """Revoke a pending invitation (its token is refused from now on). Revoking a revoked
    one changes nothing; an accepted one cannot be revoked (revoke the user's keys)."""
    row = await Invitation.filter(id=invitation_id, account_id=account_id).first()
    if row is None:
        raise InvitationError("NOT_FOUND", "no such invitation", "id")
    if row.accepted_at is not None:
        raise InvitationError(
            "NOT_PENDING", "this invitation was accepted: revoke the user's API keys instead", "id"
        )
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await Invitation.filter(id=row.id, accepted_at__isnull=True).update(
            revoked_at=row.revoked_at
        )
    return row


_REFUSALS = {
    InvitationStatus.ACCEPTED: ("ALREADY_USED", "this invitation was already accepted"),
    InvitationStatus.REVOKED: ("REVOKED", "this invitation was revoked"),
    InvitationStatus.EXPIRED: ("EXPIRED", "this invitation has expired: ask for a new one"),
}


@dataclass(frozen=True)
class Accepted:
    user: User
    key_row: ApiKey
    key: str  # shown once


async def accept(token: str, *, now: datetime | None = None) -> Accepted:
    """The invitation of ``token`` becomes a user of its account with a first API key.
    Refused (``InvitationError``, nothing changed): INVALID_TOKEN, EXPIRED, ALREADY_USED,
    REVOKED, EMAIL_TAKEN (a user with that email was added meanwhile)."""
    now = now or datetime.now(UTC)
    token = token.strip()
    if not token.startswith(INVITATION_TOKEN_PREFIX) or len(token) > 200:
        raise InvitationError("INVALID_TOKEN", "not an invitation token", "token")
    row = await Invitation.filter(token_hash=Invitation.hash(token)).first()
    if row is None:
        raise InvitationError("INVALID_TOKEN", "unknown invitation token", "token")
    async with in_transaction():
        # Claimed by compare-and-set: of two accepts at once, one wins.
        claimed = await Invitation.filter(
            id=row.id, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
        ).update(accepted_at=now)
        if not claimed:
            await row.refresh_from_db()
            code, message = _REFUSALS.get(
                status_of(row, now), ("INVALID_TOKEN", "unknown invitation token")
            )
            raise InvitationError(code, message, "token")
        account_id: uuid.UUID = row.account_id  # type: ignore[attr-defined]
        if await User.filter(account_id=account_id, email=row.email).exists():
            raise InvitationError(
                "EMAIL_TAKEN",
                "a user with this email already exists: ask an administrator for an API key",
                "token",
            )
        user = await User.create(
            account_id=account_id, email=row.email, name=row.name, role=row.role
        )
        await Invitation.filter(id=row.id).update(user_id=user.id)
        key_row, key = await access.issue_key(user, "invitation")
    return Accepted(user, key_row, key)
