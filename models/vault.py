"""Encryption at rest for PSA secrets (Fernet, with key rotation through MultiFernet)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class VaultError(Exception):
    pass


class Vault:
    """Encrypts JSON objects. The first key encrypts; every key decrypts (rotation)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise VaultError("at least one secret key is required")
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except ValueError as exc:
            raise VaultError(
                "PSASYNC_SECRET_KEY must be 32 url-safe base64-encoded bytes "
                "(generate one with `psasync keygen`)"
            ) from exc

    def __repr__(self) -> str:
        return "<Vault>"

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, value: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(value, sort_keys=True).encode()).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        try:
            plain = self._fernet.decrypt(token.encode())
        except InvalidToken:
            # Say nothing about the token itself: it is the secret's ciphertext.
            raise VaultError(
                "stored credentials cannot be decrypted with the configured secret key"
            ) from None
        return cast(dict[str, Any], json.loads(plain))
