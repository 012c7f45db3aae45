"""Pulseway PSA webhook deliveries for the tests: an integration row with a webhook secret in
its encrypted credentials, a delivery body as psasync assumes it, and posting it signed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from models import Account, Integration, Provider
from models.vault import Vault
from sync.providers.pulseway.credentials import PulsewayCredentials
from sync.providers.pulseway.webhooks import signature
from webhooks.app import WebhookReceiver

WEBHOOK_SECRET = "whsec-test-6d1f0c"


async def pulseway_integration(
    account: Account,
    vault: Vault,
    *,
    webhook_secret: str | None = WEBHOOK_SECRET,
    site_url: str = "https://api.psa.pulseway.com",
) -> Integration:
    """A Pulseway PSA integration row as setup stores it (credentials encrypted)."""
    credentials = PulsewayCredentials(
        tenant="acme",
        user_name="psasync.api",
        password="api-password",
        host=site_url,
        webhook_secret=webhook_secret,
    )
    integration = Integration(
        account=account,
        provider=Provider.PULSEWAY_PSA,
        name="Pulseway PSA",
        site_url=site_url,
        sandbox=site_url.startswith("http://"),
    )
    integration.set_credentials(vault, credentials.to_dict())
    await integration.save()
    return integration


def mounted(receiver: WebhookReceiver) -> Starlette:
    """The receiver where the service mounts it (``/webhooks``), without the rest."""
    return Starlette(routes=[Mount("/webhooks", app=receiver)])


def delivery(**changes: Any) -> dict[str, Any]:
    """A Pulseway PSA webhook body (docs/pulseway-webhooks.md)."""
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "eventType": "AccountUpdated",
        "entityType": "Account",
        "entityId": 123,
        "timestamp": "2026-06-09T21:59:47Z",
        "modifiedById": 7,
    }
    body.update(changes)
    return body


def signed(body: dict[str, Any] | bytes, secret: str = WEBHOOK_SECRET) -> tuple[bytes, str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw, signature(secret, raw)


async def post(
    http: httpx.AsyncClient, integration: Integration, raw: bytes, signature: str | None
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["X-Signature"] = signature
    return await http.post(f"/webhooks/pulseway/{integration.id}", content=raw, headers=headers)
