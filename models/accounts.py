"""Tenants, their users, and the API keys users authenticate with."""

from __future__ import annotations

import hashlib
import secrets

from tortoise import fields
from tortoise.models import Model

from models.enums import Role

API_KEY_PREFIX = "psk_"


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
