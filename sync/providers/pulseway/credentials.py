"""Pulseway PSA credentials: an API employee's login, a value that never shows the password.

``repr``/``str`` mask the password, so a credentials object can end up in a log line or a
traceback without leaking it. ``to_dict``/``from_dict`` are for storage (the caller encrypts the
dict); ``set_fields`` lets the API say which fields hold a value without revealing any.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Final

__all__ = ["DEFAULT_HOST", "PulsewayCredentials"]

# Pulseway's production API host (psa-apis.md 4.2); other regions or white-label hosts differ.
DEFAULT_HOST: Final = "https://api.psa.pulseway.com"
_REQUIRED = ("tenant", "user_name", "password")


@dataclass(frozen=True, slots=True, repr=False)
class PulsewayCredentials:
    """Host, tenant (company name as typed at login), API employee user name and password.

    Surrounding whitespace is stripped from the host, tenant and user name (they are usually
    pasted); the password is kept verbatim, since spaces may belong to it. An empty host means
    ``DEFAULT_HOST``.
    """

    tenant: str
    user_name: str
    password: str
    host: str = DEFAULT_HOST
    # The shared secret of the webhook configured in Pulseway's admin UI (signs deliveries);
    # None: no webhook, or one without a secret (its deliveries are refused).
    webhook_secret: str | None = None

    secret_fields: ClassVar[tuple[str, ...]] = ("password", "webhook_secret")

    def __post_init__(self) -> None:
        for name in _REQUIRED:
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"Pulseway PSA credentials need a non-empty {name}")
            if name != "password":
                object.__setattr__(self, name, value.strip())
        if self.host is not None and not isinstance(self.host, str):
            raise ValueError("Pulseway PSA credentials: host must be a string")
        object.__setattr__(self, "host", (self.host or "").strip() or DEFAULT_HOST)
        if self.webhook_secret is not None and not isinstance(self.webhook_secret, str):
            raise ValueError("Pulseway PSA credentials: webhook_secret must be a string")
        object.__setattr__(self, "webhook_secret", self.webhook_secret or None)

    def __repr__(self) -> str:
        return (
            f"PulsewayCredentials(host={self.host!r}, tenant={self.tenant!r}, "
            f"user_name={self.user_name!r}, password='***', "
            f"webhook_secret={'***' if self.webhook_secret else None})"
        )

    __str__ = __repr__

    @property
    def site_url(self) -> str:
        """Where the API is (the host, as every PSA's credentials name it)."""
        return self.host

    def set_fields(self) -> tuple[str, ...]:
        """Names of the fields that hold a value, in declaration order."""
        return tuple(f.name for f in fields(self) if getattr(self, f.name))

    def to_dict(self) -> dict[str, str | None]:
        """Every field, the password included: encrypt before storing."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PulsewayCredentials:
        """Rebuild from ``to_dict`` output. Unknown keys are ignored (rollbacks stay readable).

        Raises ``ValueError`` naming a missing or invalid field, never showing a value.
        """
        missing = [name for name in _REQUIRED if not data.get(name)]
        if missing:
            raise ValueError(f"Pulseway PSA credentials are missing: {', '.join(missing)}")
        return cls(
            tenant=data["tenant"],
            user_name=data["user_name"],
            password=data["password"],
            host=data.get("host") or DEFAULT_HOST,
            webhook_secret=data.get("webhook_secret") or None,
        )
