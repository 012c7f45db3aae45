"""ConnectWise Manage credentials: a value that never shows its secrets.

``repr``/``str`` mask the keys, so a credentials object can end up in a log line or a traceback
without leaking them. ``to_dict``/``from_dict`` are for storage (the caller encrypts the dict);
``set_fields`` lets the API say which fields hold a value without revealing any.
``from_input`` is setup's parser: either credential set, or both (see ``ConnectWiseApi``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any, ClassVar

__all__ = ["SOAP_NOTICE", "ConnectWiseApi", "ConnectWiseCredentials", "MissingCredential"]

_REQUIRED = ("site_url", "company_id", "public_key", "private_key", "client_id")
_REST_KEYS = ("public_key", "private_key")
# Only REST calls send the developer client id: a SOAP-only integration needs none.
_REST_ONLY = (*_REST_KEYS, "client_id")
_OPTIONAL = ("integrator_login_id", "integrator_password")
_SOAP_LOGIN = ("integrator_login_id", "integrator_password")
_ALWAYS = tuple(n for n in _REQUIRED if n not in _REST_ONLY)


class ConnectWiseApi(StrEnum):
    """Which of ConnectWise's APIs an integration uses: REST whenever its keys are stored."""

    REST = "REST"
    SOAP = "SOAP"


# What an integration on the legacy API tells its user (GraphQL, CLI).
SOAP_NOTICE = (
    "This integration uses ConnectWise's legacy SOAP API (integrator login): it polls for "
    "changes (no callbacks) and derives company types and statuses from the records it "
    "reads. Add REST API keys (publicKey, privateKey, and your clientId): the next sync "
    "then uses REST, keeping every record and link."
)


class MissingCredential(ValueError):
    """A credential field setup needs and did not get; ``field`` names it (None: a whole set
    is missing). The message names fields, never values."""

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True, repr=False)
class ConnectWiseCredentials:
    """API-member keys (REST) plus the optional legacy integrator login (SOAP).

    Surrounding whitespace is stripped (keys are usually pasted); required fields must not be
    empty. Optional fields are None when unset (an empty string becomes None). The REST keys
    may only be left out (None) together, when the integrator login and password are set:
    such credentials open the SOAP provider, and need no client id (only REST sends it).
    Setup parses with ``from_input``.
    """

    site_url: str
    company_id: str
    public_key: str | None
    private_key: str | None
    client_id: str | None
    integrator_login_id: str | None = None
    integrator_password: str | None = None

    # Never returned by the API. The public key is half of the key pair, so it counts too.
    secret_fields: ClassVar[tuple[str, ...]] = ("public_key", "private_key", "integrator_password")

    def __post_init__(self) -> None:
        soap_only = self.public_key is None and self.private_key is None
        for name in _REQUIRED:
            value = getattr(self, name)
            if soap_only and name in _REST_ONLY:
                if name == "client_id" and value is not None:
                    if not isinstance(value, str):
                        raise ValueError("ConnectWise credentials: client_id must be a string")
                    object.__setattr__(self, name, value.strip() or None)
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

    @property
    def has_integrator_login(self) -> bool:
        """Whether the legacy SOAP integrator login and password are both set."""
        return bool(self.integrator_login_id and self.integrator_password)

    @property
    def api(self) -> ConnectWiseApi:
        """The API these credentials open: REST when its keys are set (the SOAP login is then
        only kept), else the legacy SOAP API."""
        return ConnectWiseApi.REST if self.has_rest_keys else ConnectWiseApi.SOAP

    def soap_only(self) -> ConnectWiseCredentials:
        """The same credentials without the REST keys: what testing the SOAP login opens."""
        return replace(self, public_key=None, private_key=None)

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
    def from_input(cls, data: Mapping[str, Any]) -> ConnectWiseCredentials:
        """Setup's parser: the site, company and client id, plus the REST keys, the integrator
        login, or both; each set complete. Raises ``MissingCredential`` naming the first
        missing field (a set's other half), never showing a value."""

        def given(name: str) -> bool:
            value = data.get(name)
            return isinstance(value, str) and bool(value.strip())

        missing = [name for name in _ALWAYS if not given(name)]
        if missing:
            raise MissingCredential(
                f"ConnectWise credentials are missing: {', '.join(missing)}", missing[0]
            )
        sets = 0
        for pair, label in (
            (_REST_KEYS, "the REST API keys"),
            (_SOAP_LOGIN, "the integrator login"),
        ):
            have = [name for name in pair if given(name)]
            if len(have) == 1:
                lacking = next(name for name in pair if name not in have)
                raise MissingCredential(
                    f"{label}: {pair[0]} and {pair[1]} go together; {lacking} is missing",
                    lacking,
                )
            sets += bool(have)
        if not sets:
            raise MissingCredential(
                "ConnectWise credentials need the REST API keys (public_key, private_key), the "
                "legacy integrator login (integrator_login_id, integrator_password), or both",
                None,
            )
        rest = given("public_key")
        if rest and not given("client_id"):
            raise MissingCredential(
                "ConnectWise credentials are missing: client_id (the REST API sends it with "
                "every call)",
                "client_id",
            )
        soap = given("integrator_login_id")
        return cls(
            site_url=data["site_url"],
            company_id=data["company_id"],
            public_key=data["public_key"] if rest else None,
            private_key=data["private_key"] if rest else None,
            client_id=data.get("client_id") or None,
            integrator_login_id=data["integrator_login_id"] if soap else None,
            integrator_password=data["integrator_password"] if soap else None,
        )

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> ConnectWiseCredentials:
        """Like ``from_dict``, for credentials already stored: the REST keys may be absent
        when the integrator login is there (a SOAP-only integration)."""
        if data.get("public_key") or data.get("private_key"):
            return cls.from_dict(data)
        missing = [n for n in _REQUIRED if n not in _REST_ONLY and not data.get(n)]
        if missing:
            raise ValueError(f"ConnectWise credentials are missing: {', '.join(missing)}")
        return cls(
            site_url=data["site_url"],
            company_id=data["company_id"],
            public_key=None,
            private_key=None,
            client_id=data.get("client_id") or None,
            integrator_login_id=data.get("integrator_login_id"),
            integrator_password=data.get("integrator_password"),
        )
