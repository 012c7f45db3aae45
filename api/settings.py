"""Settings, read once from the environment.

| variable                 | default                                   |
|--------------------------|-------------------------------------------|
| PSASYNC_DATABASE_URL     | sqlite://psasync.db (in the working dir)  |
| PSASYNC_SECRET_KEY       | generated into PSASYNC_SECRET_KEY_FILE    |
| PSASYNC_SECRET_KEY_FILE  | .psasync-secret-key (in the working dir)  |
| PSASYNC_HOST             | 127.0.0.1                                 |
| PSASYNC_PORT             | 8000                                      |
| PSASYNC_DEMO             | auto: a demo PSA when none is configured  |
| PSASYNC_DEMO_PORT        | 8081 (Pulseway PSA's demo: the next port) |
| PSASYNC_DEMO_PROVIDERS   | connectwise: the demo PSAs, comma-separated |
|                          | (connectwise, connectwise-soap, pulseway) |
| PSASYNC_WORKER           | true: run the sync worker in this process |
| PSASYNC_LOG_LEVEL        | info                                      |
| PSASYNC_ALLOW_SANDBOX    | false: API clients may not connect a PSA  |
|                          | over plain http on this machine           |
| PSASYNC_PULSEWAY_CALLS_PER_HOUR | 1500: calls per endpoint per hour |
|                          | psasync allows itself (Pulseway's limit)  |
| PSASYNC_PUBLIC_URL       | none: where PSAs post webhooks (https);   |
|                          | without it, polling alone                 |
| PSASYNC_SMTP_HOST        | none: invitations are not emailed; their  |
|                          | links go to the administrator instead     |
| PSASYNC_SMTP_PORT        | 587                                       |
| PSASYNC_SMTP_USER        | none: no SMTP login                       |
| PSASYNC_SMTP_PASSWORD    | none                                      |
| PSASYNC_SMTP_FROM        | the sender; required with a host          |
| PSASYNC_SMTP_STARTTLS    | true: upgrade the connection with STARTTLS|

PSASYNC_SECRET_KEY may hold several comma-separated Fernet keys: the first encrypts, all
decrypt, which is how keys are rotated.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from api.mail import Smtp
from models.vault import Vault, VaultError

log = logging.getLogger("psasync")

SQLITE_PRAGMAS = "journal_mode=WAL&synchronous=NORMAL&busy_timeout=10000"
DEFAULT_DATABASE_URL = f"sqlite://psasync.db?{SQLITE_PRAGMAS}"


class SettingsError(Exception):
    pass


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_keys: tuple[str, ...]
    host: str
    port: int
    demo: str  # "auto", "on" or "off"
    demo_port: int
    worker: bool
    log_level: str
    # Lets GraphQL clients create "sandbox" integrations: plain http to a loopback PSA (a
    # simulator). Off by default, so the API cannot be used to probe local ports.
    allow_sandbox: bool = False
    # Where PSAs reach this service (``https://psasync.example.com``): with it, psasync
    # registers ConnectWise callbacks at ``{public_url}/webhooks/...``; without it, sync
    # relies on polling alone.
    public_url: str | None = None
    # Calls per hour per endpoint psasync spreads its Pulseway PSA calls under.
    pulseway_calls_per_hour: int = 1500
    # Which PSAs the demo simulates (``connectwise``, ``connectwise-soap``, ``pulseway``).
    demo_providers: tuple[str, ...] = ("connectwise",)
    # Where invitations are emailed from; None: their links are shown to the administrator.
    smtp: Smtp | None = None

    def __repr__(self) -> str:  # the keys must never reach a log
        return (
            f"Settings(database_url={redact_url(self.database_url)!r}, host={self.host!r}, "
            f"port={self.port}, demo={self.demo!r}, worker={self.worker})"
        )

    @property
    def vault(self) -> Vault:
        return Vault(self.secret_keys)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite:")


def redact_url(url: str) -> str:
    """Hide a password in a database URL."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url


def _flag(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def _port(value: str, name: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a port number, not {value!r}") from None
    if not 0 < port < 65536:
        raise SettingsError(f"{name} must be between 1 and 65535, not {port}")
    return port


def _secret_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("PSASYNC_SECRET_KEY", "").strip()
    if not raw:
        path = Path(env.get("PSASYNC_SECRET_KEY_FILE", ".psasync-secret-key"))
        if path.exists():
            raw = path.read_text().strip()
        else:
            raw = Vault.generate_key()
            path.write_text(raw + "\n")
            path.chmod(0o600)
            log.warning(
                "PSASYNC_SECRET_KEY is not set: generated a key into %s. PSA credentials are "
                "encrypted with it, so keep it with the database and back it up.",
                path,
            )
    keys = tuple(key.strip() for key in raw.split(",") if key.strip())
    try:
        Vault(keys)  # fail now, with a clear message, rather than at the first credential
    except VaultError as exc:
        raise SettingsError(str(exc)) from None
    return keys


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    demo = env.get("PSASYNC_DEMO", "auto").strip().lower()
    if demo not in {"auto", "on", "off"}:
        demo = "on" if _flag(demo, "PSASYNC_DEMO") else "off"
    return Settings(
        database_url=env.get("PSASYNC_DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL,
        secret_keys=_secret_keys(env),
        host=env.get("PSASYNC_HOST", "127.0.0.1"),
        port=_port(env.get("PSASYNC_PORT", "8000"), "PSASYNC_PORT"),
        demo=demo,
        demo_port=_port(env.get("PSASYNC_DEMO_PORT", "8081"), "PSASYNC_DEMO_PORT"),
        worker=_flag(env.get("PSASYNC_WORKER", "true"), "PSASYNC_WORKER"),
        log_level=env.get("PSASYNC_LOG_LEVEL", "info").lower(),
        allow_sandbox=_flag(env.get("PSASYNC_ALLOW_SANDBOX", "false"), "PSASYNC_ALLOW_SANDBOX"),
        public_url=_public_url(env.get("PSASYNC_PUBLIC_URL", "")),
        demo_providers=_demo_providers(env.get("PSASYNC_DEMO_PROVIDERS", "")),
        pulseway_calls_per_hour=_positive(
            env.get("PSASYNC_PULSEWAY_CALLS_PER_HOUR", "1500"), "PSASYNC_PULSEWAY_CALLS_PER_HOUR"
        ),
        smtp=_smtp(env),
    )


def _smtp(env: Mapping[str, str]) -> Smtp | None:
    host = env.get("PSASYNC_SMTP_HOST", "").strip()
    if not host:
        return None
    sender = env.get("PSASYNC_SMTP_FROM", "").strip()
    if "@" not in sender:
        raise SettingsError("PSASYNC_SMTP_FROM must be the sender's email address")
    return Smtp(
        host=host,
        port=_port(env.get("PSASYNC_SMTP_PORT", "587"), "PSASYNC_SMTP_PORT"),
        sender=sender,
        user=env.get("PSASYNC_SMTP_USER", "").strip() or None,
        password=env.get("PSASYNC_SMTP_PASSWORD") or None,
        starttls=_flag(env.get("PSASYNC_SMTP_STARTTLS", "true"), "PSASYNC_SMTP_STARTTLS"),
    )


def _positive(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {value!r}") from None
    if number < 1:
        raise SettingsError(f"{name} must be at least 1")
    return number


DEMO_PROVIDERS = ("connectwise", "connectwise-soap", "pulseway")


def _demo_providers(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in DEMO_PROVIDERS]
    if unknown:
        raise SettingsError(
            f"PSASYNC_DEMO_PROVIDERS: unknown {', '.join(unknown)} "
            f"(choose from {', '.join(DEMO_PROVIDERS)})"
        )
    return names or ("connectwise",)


def _public_url(value: str) -> str | None:
    """https, or http on loopback (a PSA simulator on this machine posts there)."""
    value = value.strip().rstrip("/")
    if not value:
        return None
    parts = urlsplit(value)
    loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise SettingsError(
            f"PSASYNC_PUBLIC_URL must be an https URL (plain http only on loopback): {value!r}"
        )
    if parts.query or parts.fragment:
        raise SettingsError("PSASYNC_PUBLIC_URL must not carry a query or fragment")
    return value


@cache
def get_settings() -> Settings:
    """The process's settings: read from the environment on first use, then kept."""
    return load_settings()
