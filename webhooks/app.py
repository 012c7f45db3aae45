"""The webhook receiver: ``POST /webhooks/{provider}/{integrationId}``.

The order of work on the request path, and nothing more (the PSA is never called here, except
the ConnectWise signing-key fetch inside ``verify``, cached):

    a. size: 413 when Content-Length or the streamed body exceeds 256 KiB (read incrementally)
    b. JSON content type (parameters allowed): 415 otherwise
    c. ``source.read``: 400 unless the body is UTF-8 JSON object within bounds (nesting depth,
       number of members: ``webhooks.source``), before anything looks inside it — the
       ConnectWise key URL included
    d. a known integration of that provider: 404 otherwise (also for a malformed id)
    e. ``source.verify`` over the raw body: 401 for a bad signature, counted on the
       integration (one atomic UPDATE), nothing stored
    f. ``source.parse``: 400 when the body is not a notification, or holds a field the
       database could not store (an id outside BIGINT, a NUL, a lone surrogate)
    g. the delivery stored PENDING by the inbox's group commit (``webhooks.inbox``), then 200
       ``{"status": "stored"}`` — or ``{"status": "duplicate"}`` for a notice already stored;
       400 for a row the database refuses anyway (only that one: the others are stored)

A bad body is never a 5xx: an unexpected error while reading or parsing one is logged and
answered 400 (401 while verifying: the delivery is unverified).

Errors are JSON ``{"error": "…"}``. It is a plain ASGI app (no per-request framework objects:
throughput matters, see ``bench/webhook_receiver.py``); ``api/app.py`` mounts it at ``/webhooks``
and closes it in its lifespan.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send
from tortoise.expressions import F

from models import Integration, Provider
from models.vault import Vault
from webhooks.inbox import Delivery, Inbox, InboxError, IntegrationGone
from webhooks.registry import PATHS, open_sources, signed_with_secret, tenant_credentials
from webhooks.source import BadSignature, Rejected, WebhookSource, decode
from webhooks.targets import Targets

__all__ = ["MAX_BODY", "WebhookReceiver", "create_app"]

log = logging.getLogger("psasync.webhooks")

MAX_BODY: Final = 256 * 1024
_CONTENT_TYPE: Final = (b"content-type", b"application/json")
_STORED: Final = b'{"status":"stored"}'
_DUPLICATE: Final = b'{"status":"duplicate"}'


def create_app(
    *,
    on_stored: Callable[[], None] | None = None,
    sources: Mapping[Provider, WebhookSource] | None = None,
    batch_size: int = 500,
    max_waiting: int = 10_000,
    integration_ttl: float = 5.0,
    vault: Vault | None = None,
) -> WebhookReceiver:
    """The receiver. ``on_stored`` is called (in the event loop) after each commit that
    stored new deliveries, to wake the inbox processor; ``sources`` replaces the registry's
    (tests); ``vault`` decrypts the shared webhook secret of PSAs that sign with one and the
    company ConnectWise signing keys must name (without it, their deliveries are refused)."""
    opened = open_sources() if sources is None else dict(sources)
    return WebhookReceiver(
        sources=opened,
        targets=Targets(
            vault=vault,
            signed_with_secret=signed_with_secret(opened),
            tenant_credentials=tenant_credentials(opened),
            ttl=integration_ttl,
        ),
        batch_size=batch_size,
        max_waiting=max_waiting,
        on_stored=on_stored,
    )


class WebhookReceiver:
    """ASGI app for ``/{provider}/{integrationId}`` (relative to where it is mounted)."""

    def __init__(
        self,
        *,
        sources: dict[Provider, WebhookSource],
        targets: Targets,
        batch_size: int,
        max_waiting: int,
        on_stored: Callable[[], None] | None,
    ) -> None:
        self.sources = sources
        self.targets = targets
        self.inbox = Inbox(
            batch_size=batch_size,
            max_waiting=max_waiting,
            on_stored=on_stored,
            on_gone=targets.forget,
        )

    async def aclose(self) -> None:
        """Store what is waiting, stop the writer, close the sources' HTTP clients."""
        await self.inbox.aclose()
        for source in self.sources.values():
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # served on its own rather than mounted
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, body = await self._handle(scope, receive)
        if status == 0:
            return  # the client went away
        headers = [_CONTENT_TYPE, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        parts = _route_path(scope).strip("/").split("/")
        if len(parts) != 2:
            return _error(404, "Not found: post notifications to /webhooks/{provider}/{id}.")
        if scope["method"] != "POST":
            return _error(405, "Method not allowed: notifications are POSTed.")
        provider = PATHS.get(parts[0])
        source = self.sources.get(provider) if provider is not None else None
        if provider is None or source is None:
            return _error(404, "No webhook receiver for this provider.")
        headers = Headers(scope=scope)

        # a. size, b. content type
        length = headers.get("content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return _error(400, "Content-Length is not a number.")
            if size > MAX_BODY:
                return _too_large()
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            return _error(415, "Notifications must be JSON (Content-Type: application/json).")
        try:
            raw = await _read_body(receive)
        except _TooLarge:
            return _too_large()
        if raw is None:
            return 0, b""

        # c. the body, within bounds, before anything looks inside it
        try:
            text = decode(raw)
            message = source.read(text)
        except Rejected as refused:
            return _error(refused.status, refused.message)
        except Exception:
            log.exception("webhook: reading a %s body failed", provider.value)
            return _error(400, "The body could not be read as a notification.")

        # d. a known integration of that provider
        try:
            integration_id = uuid.UUID(parts[1])
        except ValueError:
            return _no_integration()
        try:
            target = await self.targets.get(provider, integration_id)
        except Exception:
            log.exception("webhook: looking up integration %s failed", integration_id)
            return _error(503, "The notification could not be stored; try again.")
        if target is None:
            return _no_integration()

        # e. the signature
        try:
            await source.verify(target, headers, raw, message)
        except Rejected as refused:
            return await _refused(integration_id, refused)
        except Exception:
            log.exception("webhook: verifying for integration %s failed", integration_id)
            unchecked = BadSignature("The signature could not be checked: refused unverified.")
            return await _refused(integration_id, unchecked)

        # f. the notice
        try:
            notice = source.parse(raw, message)
        except Rejected as refused:
            return await _refused(integration_id, refused)
        except Exception:
            log.exception("webhook: parsing for integration %s failed", integration_id)
            return _error(400, "The body could not be read as a notification.")

        # g. stored (group commit), then answered
        try:
            new = await self.inbox.put(Delivery(integration_id, notice, text))
        except IntegrationGone:
            return _no_integration()
        except InboxError as failed:
            return _error(failed.status, failed.message)
        return 200, _STORED if new else _DUPLICATE

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive) -> bytes | None:
    """The body, or None on a disconnect; ``_TooLarge`` (read no further) past ``MAX_BODY``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _refused(integration_id: uuid.UUID, refused: Rejected) -> tuple[int, bytes]:
    """The answer for a refused delivery; a bad signature is counted on the integration."""
    if isinstance(refused, BadSignature):
        log.info("webhook refused for integration %s: %s", integration_id, refused.message)
        await _count_rejection(integration_id)
    else:
        log.debug("webhook refused for integration %s: %s", integration_id, refused.message)
    return _error(refused.status, refused.message)


async def _count_rejection(integration_id: uuid.UUID) -> None:
    try:
        await Integration.filter(id=integration_id).update(
            webhook_rejected=F("webhook_rejected") + 1,
            webhook_last_rejected_at=datetime.now(UTC),
        )
    except Exception:  # the answer is 401 regardless
        log.exception("webhook: counting a rejection for integration %s failed", integration_id)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :]
    return path


def _error(status: int, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"error": message}).encode()


def _no_integration() -> tuple[int, bytes]:
    return _error(404, "No such integration for this provider.")


def _too_large() -> tuple[int, bytes]:
    return _error(413, f"The notification is larger than {MAX_BODY // 1024} KiB.")
