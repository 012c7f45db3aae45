"""Tenants, their users, the API keys users authenticate with, and invitations to join."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from tortoise import fields
from tortoise.models import Model

from models.enums import Role

API_KEY_PREFIX = "psk_"
INVITATION_TOKEN_PREFIX = "psi_"  # noqa: S105 (a prefix, not a secret)


class Account(Model):
    """A tenant: every other row belongs to exactly one account."""

    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "account"


class User(Model):
    id = fields.UUIDField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="users", on_delete=fields.CASCADE
    )
    email = fields.CharField(max_length=254)
    name = fields.CharField(max_length=200, default="")
    role = fields.CharEnumField(Role, max_length=16, default=Role.VIEWER)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "user"
        unique_together = (("account", "email"),)


class ApiKey(Model):
    """Only the SHA-256 of the key is stored. The key itself is shown once, at creation."""

    id = fields.UUIDField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="api_keys", on_delete=fields.CASCADE
    )
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="api_keys", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=200, default="")
    prefix = fields.CharField(max_length=12)
    key_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_key"

    @staticmethod
    def generate() -> tuple[str, str]:
        """Return (key, hash). A 256-bit random key needs no slow KDF: it cannot be guessed."""
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        return key, ApiKey.hash(key)

    @staticmethod
    def hash(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()


class Invitation(Model):
    """An invited user, pending until the token is accepted (which creates the ``User``).

    Only the SHA-256 of the one-time token is stored. Pending means: not accepted, not
    revoked, and ``expires_at`` still ahead; an email is never invited twice while pending.
    """

    id = fields.UUIDField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="invitations", on_delete=fields.CASCADE
    )
    # The integration whose PSA user list it came from (None once that integration is gone).
    integration: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "models.Integration", related_name="invitations", null=True, on_delete=fields.SET_NULL
    )
    email = fields.CharField(max_length=254)  # lower case
    name = fields.CharField(max_length=200, default="")
    role = fields.CharEnumField(Role, max_length=16, default=Role.VIEWER)
    psa_id = fields.BigIntField(null=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    invited_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="invitations_sent", null=True, on_delete=fields.SET_NULL
    )
    # The user the invitation became, once accepted.
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="invitations", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    emailed_at = fields.DatetimeField(null=True)
    accepted_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "invitation"
        indexes = (("account_id", "email"),)

    @staticmethod
    def generate() -> tuple[str, str]:
        """Return (token, hash): 256 random bits, so a fast hash is enough."""
        token = INVITATION_TOKEN_PREFIX + secrets.token_urlsafe(32)
        return token, Invitation.hash(token)

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()
