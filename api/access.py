"""Accounts, users, API keys and roles: who is asking, and what they may do.

Only a key's SHA-256 is stored; the key itself is shown once. A revoked or unknown key is
refused the same way, so a caller cannot tell which of the two it holds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from models import Account, ApiKey, Role, User
from models.accounts import API_KEY_PREFIX

# Each role can do what the roles below it can.
RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.MANAGER: 2, Role.ADMINISTRATOR: 3}
# Writing last_used_at on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=5)


@dataclass(frozen=True)
class Viewer:
    """The authenticated caller: a user of one account, through one API key."""

    user_id: uuid.UUID
    account_id: uuid.UUID
    role: Role
    api_key_id: uuid.UUID
    email: str | None = None  # who field history and the outbox say made a change

    def can(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]


async def authenticate(token: str | None) -> Viewer | None:
    if not token or not token.startswith(API_KEY_PREFIX) or len(token) > 200:
        return None
    rows = await ApiKey.filter(key_hash=ApiKey.hash(token), revoked_at__isnull=True).values_list(
        "id", "account_id", "user_id", "user__role", "last_used_at", "user__email"
    )
    if not rows:
        return None
    key_id, account_id, user_id, role, last_used, email = rows[0]
    now = datetime.now(UTC)
    if last_used is None or now - last_used > LAST_USED_RESOLUTION:
        await ApiKey.filter(id=key_id).update(last_used_at=now)
    return Viewer(user_id, account_id, Role(role), key_id, email)


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def create_account(name: str) -> Account:
    return await Account.create(name=name)


async def create_user(account: Account, email: str, role: Role, name: str = "") -> User:
    return await User.create(account=account, email=email.strip().lower(), role=role, name=name)


async def issue_key(user: User, name: str = "") -> tuple[ApiKey, str]:
    """Create a key for ``user``; returns the row and the key, which is never shown again."""
    key, key_hash = ApiKey.generate()
    row = await ApiKey.create(
        account_id=user.account_id,  # type: ignore[attr-defined]
        user=user,
        name=name,
        prefix=key[:12],
        key_hash=key_hash,
    )
    return row, key


async def revoke_key(key: ApiKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await key.save(update_fields=["revoked_at"])
