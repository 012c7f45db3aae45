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
_OPTIONAL = ("integrator_login_id", "integrator_password")


@dataclass(frozen=True, slots=True, repr=False)
class ConnectWiseCredentials:
    """API-member keys (REST) plus the optional legacy integrator login (SOAP).

    Surrounding whitespace is stripped (keys are usually pasted); required fields must not be
    empty. Optional fields are None when unset (an empty string becomes None).
    """

    site_url: str
    company_id: str
    public_key: str
    private_key: str
    client_id: str
    integrator_login_id: str | None = None
    integrator_password: str | None = None

    # Never returned by the API. The public key is half of the key pair, so it counts too.
    secret_fields: ClassVar[tuple[str, ...]] = ("public_key", "private_key", "integrator_password")

    def __post_init__(self) -> None:
        for name in _REQUIRED:
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"ConnectWise credentials need a non-empty {name}")
            object.__setattr__(self, name, value.strip())
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"ConnectWise credentials: {name} must be a string")
            object.__setattr__(self, name, (value or "").strip() or None)

    def __repr__(self) -> str:
        return (
            f"ConnectWiseCredentials(site_url={self.site_url!r}, company_id={self.company_id!r}, "
            f"public_key={self.public_key_hint!r}, private_key='***', "
            f"client_id={self.client_id!r}, integrator_login_id={self.integrator_login_id!r}, "
            f"integrator_password={'***' if self.integrator_password else None!r})"
        )

    __str__ = __repr__

    @property
    def public_key_hint(self) -> str:
        """The public key's first 4 characters, enough to tell two keys apart in a UI."""
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
