"""Which PSAs can post notifications, and under which path segment.

``/webhooks/{path}/{integrationId}``: ``PATHS`` names the provider (each connector's
``webhook_path``), ``SOURCES`` says how to verify and read its notifications. A PSA gets
webhooks with one line in ``SOURCES``; a source whose ``signs_with_secret`` is true is given
the integration's ``webhook_secret`` credential, one with a ``tenant_credential`` the credential
of that name as ``WebhookTarget.tenant``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from models.enums import Provider
from sync.connections import CONNECTORS
from sync.providers.connectwise.callbacks import ConnectWiseCallbacks
from sync.providers.pulseway.webhooks import PulsewayWebhooks
from webhooks.source import WebhookSource

__all__ = [
    "PATHS",
    "SOURCES",
    "SourceFactory",
    "open_sources",
    "signed_with_secret",
    "tenant_credentials",
]

SourceFactory = Callable[[], WebhookSource]

PATHS: Final[Mapping[str, Provider]] = {c.webhook_path: p for p, c in CONNECTORS.items()}

SOURCES: Final[Mapping[Provider, SourceFactory]] = {
    Provider.CONNECTWISE_MANAGE: ConnectWiseCallbacks,
    Provider.PULSEWAY_PSA: PulsewayWebhooks,
}


def open_sources() -> dict[Provider, WebhookSource]:
    """A fresh source per provider (each holds its own key cache and HTTP client)."""
    return {provider: factory() for provider, factory in SOURCES.items()}


def signed_with_secret(sources: Mapping[Provider, WebhookSource]) -> frozenset[Provider]:
    """The providers whose deliveries are signed with a shared secret the user sets in the
    integration's credentials (``webhook_secret``)."""
    return frozenset(p for p, s in sources.items() if getattr(s, "signs_with_secret", False))


def tenant_credentials(sources: Mapping[Provider, WebhookSource]) -> dict[Provider, str]:
    """The credential naming the integration's own company, for the providers whose sources
    check it (ConnectWise: ``company_id``, the company a key URL must name)."""
    found: dict[Provider, str] = {}
    for provider, source in sources.items():
        name = getattr(source, "tenant_credential", None)
        if isinstance(name, str):
            found[provider] = name
    return found
