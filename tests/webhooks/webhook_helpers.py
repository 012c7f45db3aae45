"""Signed ConnectWise callbacks, a recording key server, and posting them to the receiver."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from harness import CREDENTIALS
from starlette.types import Receive, Scope, Send

from models import Integration
from sync.providers.connectwise.callbacks import expected_signature

SIGNING_KEY = "test-signing-key-5b2c"
KEY_PATH = "/system/callbackkey/index.rails"


class KeyServer:
    """ASGI: ``…/system/callbackkey/index.rails`` answers a signing key; every request is
    recorded; anything else goes to ``inner`` (the simulator), or 404."""

    def __init__(self, inner: Any = None, signing_key: str = SIGNING_KEY) -> None:
        self.inner = inner
        self.signing_key = signing_key
        self.status = 200
        self.requests: list[str] = []  # paths with query, in arrival order (any thread)

    @property
    def key_requests(self) -> list[str]:
        return [r for r in self.requests if KEY_PATH in r]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        query = scope.get("query_string", b"").decode()
        self.requests.append(scope["path"] + ("?" + query if query else ""))
        if scope["path"].endswith(KEY_PATH):
            body = json.dumps({"signing_key": self.signing_key}).encode()
            if self.status != 200:
                body = b'{"code": "ServerError"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if self.inner is not None:
            await self.inner(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def key_url(site: str, key_id: str | None = None) -> str:
    return (
        f"{site}/v4_6_release//system/callbackkey/index.rails"
        f"?companyName={CREDENTIALS.company_id}&id={key_id or uuid.uuid4()}"
    )


def callback(site: str, **changes: Any) -> dict[str, Any]:
    """A ConnectWise callback body as psa-apis.md 2.2 shows it."""
    entity = {
        "id": 250,
        "identifier": "Acme",
        "name": "Acme Inc",
        "_info": {"lastUpdated": "2026-06-09T21:59:47Z", "updatedBy": "jdoe"},
    }
    body: dict[str, Any] = {
        "MessageId": str(uuid.uuid4()),
        "FromUrl": "na.myconnectwise.net",
        "CompanyId": CREDENTIALS.company_id,
        "MemberId": "jdoe",
        "Action": "updated",
        "Type": "company",
        "ID": 250,
        "CallbackObjectRecId": 26604,
        "Entity": json.dumps(entity),
        "Metadata": {"key_url": key_url(site, "b1f0a0e2-4a59-4b4e-9d2c-0c7a7b3f2f11")},
    }
    body.update(changes)
    return body


def signed(body: dict[str, Any] | bytes, signing_key: str = SIGNING_KEY) -> tuple[bytes, str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw, expected_signature(signing_key, raw)


async def post(
    http: httpx.AsyncClient,
    integration: Integration | str,
    raw: bytes,
    signature: str | None,
    *,
    provider: str = "connectwise",
    content_type: str = "application/json",
) -> httpx.Response:
    headers = {"content-type": content_type}
    if signature is not None:
        headers["x-content-signature"] = signature
    target = integration if isinstance(integration, str) else str(integration.id)
    return await http.post(f"/webhooks/{provider}/{target}", content=raw, headers=headers)
