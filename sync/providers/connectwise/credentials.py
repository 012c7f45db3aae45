"""ConnectWise Manage credentials: a value that never shows its secrets.

``repr``/``str`` mask the keys, so a credentials object can end up in a log line or a traceback
without leaking them. ``to_dict``/``from_dict`` are for storage (the caller encrypts the dict);
``set_fields`` lets the API say which fields hold a value without revealing any.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

__all__ = ["ConnectWiseCredentials"]

_REQUIRED = ("site_url", "company_id", "public_key", "private_key", "client_id")
_REST_KEYS = ("public_key", "private_key")
_OPTIONAL = ("integrator_login_id", "integrator_password")


@dataclass(frozen=True, slots=True, repr=False)
class ConnectWiseCredentials:
    """API-member keys (REST) plus the optional legacy integrator login (SOAP).

    Surrounding whitespace is stripped (keys are usually pasted); required fields must not be
    empty. Optional fields are None when unset (an empty string becomes None). The REST keys
    may only be left out (None) together, when the integrator login and password are set:
    such credentials open the SOAP provider. Setup (``from_dict``) still requires the keys.
    """

    site_url: str
    company_id: str
    public_key: str | None
    private_key: str | None
    client_id: str
    integrator_login_id: str | None = None
    integrator_password: str | None = None

    # Never returned by the API. The public key is half of the key pair, so it counts too.
    secret_fields: ClassVar[tuple[str, ...]] = ("public_key", "private_key", "integrator_password")

    def __post_init__(self) -> None:
        soap_only = self.public_key is None and self.private_key is None
        for name in _REQUIRED:
            value = getattr(self, name)
            if soap_only and name in _REST_KEYS:
                continue
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"ConnectWise credentials need a non-empty {name}")
            object.__setattr__(self, name, value.strip())
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"ConnectWise credentials: {name} must be a string")
            object.__setattr__(self, name, (value or "").strip() or None)
        if soap_only and not (self.integrator_login_id and self.integrator_password):
            raise ValueError(
                "ConnectWise credentials need a public_key and private_key, or an "
                "integrator_login_id and integrator_password"
            )

    @property
    def has_rest_keys(self) -> bool:
        """Whether the REST API member keys are set (otherwise only the SOAP login is)."""
        return self.public_key is not None and self.private_key is not None

    def __repr__(self) -> str:
        return (
            f"ConnectWiseCredentials(site_url={self.site_url!r}, company_id={self.company_id!r}, "
            f"public_key={self.public_key_hint!r}, private_key='***', "
            f"client_id={self.client_id!r}, integrator_login_id={self.integrator_login_id!r}, "
            f"integrator_password={'***' if self.integrator_password else None!r})"
        )

    __str__ = __repr__

    @property
    def public_key_hint(self) -> str | None:
        """The public key's first 4 characters, enough to tell two keys apart in a UI."""
        if self.public_key is None:
            return None
        return f"{self.public_key[:4]}…" if len(self.public_key) > 8 else "***"

    def set_fields(self) -> tuple[str, ...]:
        """Names of the fields that hold a value, in declaration order."""
        return tuple(f.name for f in fields(self) if getattr(self, f.name))

    def to_dict(self) -> dict[str, str | None]:
        """Every field, secrets included: encrypt before storing."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConnectWiseCredentials:
        """Rebuild from ``to_dict`` output. Unknown keys are ignored (rollbacks stay readable).

        Raises ``ValueError`` naming a missing or invalid field, never showing a value.
        """
        missing = [name for name in _REQUIRED if not data.get(name)]
        if missing:
            raise ValueError(f"ConnectWise credentials are missing: {', '.join(missing)}")
        return cls(
            site_url=data["site_url"],
            company_id=data["company_id"],
            public_key=data["public_key"],
            private_key=data["private_key"],
            client_id=data["client_id"],
            integrator_login_id=data.get("integrator_login_id"),
            integrator_password=data.get("integrator_password"),
        )

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> ConnectWiseCredentials:
        """Like ``from_dict``, for credentials already stored: the REST keys may be absent
        when the integrator login is there (a SOAP-only integration). Setup keeps using
        ``from_dict``, which requires them."""
        if data.get("public_key") or data.get("private_key"):
            return cls.from_dict(data)
        missing = [n for n in _REQUIRED if n not in _REST_KEYS and not data.get(n)]
        if missing:
            raise ValueError(f"ConnectWise credentials are missing: {', '.join(missing)}")
        return cls(
            site_url=data["site_url"],
            company_id=data["company_id"],
            public_key=None,
            private_key=None,
            client_id=data["client_id"],
            integrator_login_id=data.get("integrator_login_id"),
            integrator_password=data.get("integrator_password"),
        )
