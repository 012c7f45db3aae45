"""Pulseway PSA webhooks as the admin UI holds them, and their deliveries.

    store write ──listener──▶ Webhooks.on_change   any thread, under the store's lock: picks the
                                    │               enabled configurations subscribed to the
                                    │               event, builds and signs each payload
                                    ▼
                      queue (threading.Condition)
                                    ▼
      one sender thread ──POST PayloadURL──▶ receiver (retries: connection error, 5xx, 429)

Configurations mirror Admin → Integrations → Webhooks (Name, PayloadURL, IsEnabled, Secret,
events) and are managed from Python (`add`, `update`, `remove`, `clear`) or over HTTP
(``GET|POST|DELETE /__simulator/webhooks``). Pulseway documents neither payload nor signature
(psa-apis.md 4.9); the simulator sends what psasync assumes (``docs/pulseway-webhooks.md``)::

    POST <PayloadURL>
    Content-Type: application/json
    X-Signature: sha256=<hex HMAC-SHA256 of the body keyed with the Secret>   (only with a Secret)

    {"id": "<guid>", "eventType": "AccountUpdated", "entityType": "Account", "entityId": 12,
     "timestamp": "2026-06-09T21:59:47Z", "modifiedById": 2}

Entity types: Account, Contact, HardwareAsset, Ticket; a location edit is its account's update.
The same configurations are reachable through the admin API (``/v2/admin/webhooks``, served by
`app.py`), whose ``Events`` are ids of `EVENT_IDS`.

Delivery never happens inside the request (or store call) that made the change: messages are
queued and a sender thread, started on demand and gone after a second idle, posts them in
order with its own HTTP client (closed when it stops). The simulator's loop is not needed, so
UI edits made before any API request are delivered too.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from simulators.delivery import RECENT_DELIVERIES, REQUEST_TIMEOUT, Attempts, Message
from simulators.pulseway.store import Change, PulsewayStore
from simulators.pulseway.wire import stamp

__all__ = ["EVENTS", "SIGNATURE_HEADER", "Delivery", "WebhookConfig", "Webhooks", "signature"]

SIGNATURE_HEADER: Final = "X-Signature"

ENTITY_TYPES: Final = {
    "accounts": "Account",
    "contacts": "Contact",
    "assets": "HardwareAsset",
    "tickets": "Ticket",
}
_VERBS: Final = {"created": "Created", "updated": "Updated", "deleted": "Deleted"}
EVENTS: Final = tuple(
    f"{entity}{verb}" for entity in ENTITY_TYPES.values() for verb in _VERBS.values()
)
# Ids of the events ``GET /v2/admin/webhooks/events/lookup`` lists and ``Events`` holds: the
# ticket events Pulseway documents webhooks for (psa-apis.md §4.9). The ids are assumed; the
# Account/Contact/HardwareAsset events are the simulator's assumption for psasync
# (docs/pulseway-webhooks.md), reachable through the admin API only with ``SendAllEvents``.
EVENT_IDS: Final = {"TicketCreated": 1, "TicketUpdated": 2, "TicketDeleted": 3}
EVENT_CATEGORY: Final = (1, "Tickets")
RETRY_STATUSES: Final = frozenset({429})  # and every 5xx
RETRY_DELAYS: Final = (1.0, 4.0, 16.0)  # after the first attempt, and after each retry
IDLE_SECONDS: Final = 1.0  # the sender thread stops after this long without work
MAX_QUEUED: Final = 10_000  # beyond this, messages are dropped (counted)
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_SETTINGS: Final = frozenset({"retry_scale"})
_CONFIG_FIELDS: Final = frozenset({"id", "name", "url", "secret", "enabled", "events"})


def signature(secret: str, body: bytes) -> str:
    """``X-Signature``: ``sha256=`` + lowercase hex HMAC-SHA256(key=utf8(secret), body)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebhookConfig:
    """One webhook of the admin UI. `events` empty: every event (Send all events)."""

    id: int
    url: str
    secret: str | None = None
    enabled: bool = True
    events: tuple[str, ...] = ()
    name: str = "psasync"
    # What the admin API shows besides (ContentType 1 = JSON, assumed; audit of the API user).
    content_type: int = 1
    created_by: int | None = None
    created_on: datetime | None = None
    modified_by: int | None = None
    modified_on: datetime | None = None

    def wants(self, event: str) -> bool:
        return self.enabled and (not self.events or event in self.events)

    def as_dict(self) -> dict[str, Any]:
        """As the admin UI shows it: the secret is never shown, only whether there is one."""
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "hasSecret": self.secret is not None,
            "enabled": self.enabled,
            "events": list(self.events),
        }


@dataclass
class Delivery(Attempts):
    """One message to one webhook and how its delivery went (final once in `deliveries`)."""

    message_id: str
    webhook_id: int
    url: str
    event: str
    entity_id: int


_Message = Message[Delivery]


@dataclass(eq=False)
class Webhooks:
    """The webhooks of one simulated tenant: configurations, delivery, counters.

    Counters: `sent` messages whose first POST was made, `succeeded` / `failed` messages that
    ended with / without a 2xx, `retried` extra attempts, `dropped` messages never sent (the
    queue was full).
    """

    store: PulsewayStore
    retry_scale: float = 1.0  # multiplies RETRY_DELAYS; tests use 0
    configs: dict[int, WebhookConfig] = field(default_factory=dict)
    deliveries: collections.deque[Delivery] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT_DELIVERIES)
    )
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Condition()  # guards configs, the queue, counters, the thread
        self._queue: collections.deque[_Message] = collections.deque()
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    # --------------------------------------------------------------- configurations

    def add(
        self,
        url: str,
        secret: str | None = None,
        *,
        name: str = "psasync",
        enabled: bool = True,
        events: Sequence[str] = (),
    ) -> WebhookConfig:
        """Add a webhook as an admin would in Admin → Integrations → Webhooks."""
        with self._lock:
            config = _config(
                {"url": url, "secret": secret, "name": name, "enabled": enabled, "events": events},
                WebhookConfig(id=next(self._ids), url=""),
            )
            self.configs[config.id] = config
            return config

    def configure(
        self,
        url: str,
        secret: str | None = None,
        *,
        name: str = "psasync",
        enabled: bool = True,
        events: Sequence[str] = (),
    ) -> WebhookConfig:
        """Set the webhook called `name`: change it when there is one, else add it (a demo
        that starts again reconfigures its webhook instead of adding another)."""
        with self._lock:
            found = next((c for c in self.configs.values() if c.name == name), None)
            if found is None:
                return self.add(url, secret, name=name, enabled=enabled, events=events)
            return self.update(
                found.id, url=url, secret=secret, enabled=enabled, events=list(events)
            )

    def update(self, webhook_id: int, **changes: Any) -> WebhookConfig:
        """Change fields of a webhook (`url`, `secret`, `name`, `enabled`, `events`)."""
        with self._lock:
            current = self.configs.get(webhook_id)
            if current is None:
                raise KeyError(f"no webhook {webhook_id}")
            config = _config(changes, current)
            self.configs[webhook_id] = config
            return config

    def remove(self, webhook_id: int) -> None:
        with self._lock:
            self.configs.pop(webhook_id, None)

    def clear(self) -> None:
        """No webhooks, counters at zero (queued messages are still sent)."""
        with self._lock:
            self.configs.clear()
            self.deliveries.clear()
            self.sent = self.succeeded = self.failed = self.retried = self.dropped = 0

    # ----------------------------------------------------------------------- events

    def on_change(self, change: Change) -> None:
        """The store listener: queue a signed message for each webhook wanting the event."""
        entity = ENTITY_TYPES.get(change.kind)
        if entity is None:
            return
        event = entity + _VERBS[change.action]
        with self._lock:
            wanted = [c for c in self.configs.values() if c.wants(event)]
            if not wanted:
                return
            for config in wanted:
                if len(self._queue) >= MAX_QUEUED:
                    self.dropped += 1
                    continue
                self._queue.append(_message(config, event, entity, change))
            self._start()

    def _start(self) -> None:
        """Under the lock: wake the sender, or start one."""
        if self._closed:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pulseway-webhooks", daemon=True)
            self._thread.start()
        self._lock.notify()

    # --------------------------------------------------------------------- delivery

    def _run(self) -> None:
        with httpx.Client(
            timeout=REQUEST_TIMEOUT,
            trust_env=False,  # receivers are reached directly, never through a proxy
        ) as client:
            while True:
                with self._lock:
                    if not self._queue and not self._closed:
                        self._lock.wait(IDLE_SECONDS)
                    if not self._queue or self._closed:
                        self._thread = None
                        self._lock.notify_all()
                        return
                    message = self._queue.popleft()
                    self._in_flight += 1
                try:
                    self._deliver(client, message)
                finally:
                    with self._lock:
                        self._in_flight -= 1
                        self._lock.notify_all()

    def _deliver(self, client: httpx.Client, message: _Message) -> None:
        delivery = message.delivery
        with self._lock:
            self.sent += 1
        for attempt in range(len(RETRY_DELAYS) + 1):
            if attempt:
                with self._lock:
                    self.retried += 1
                time.sleep(RETRY_DELAYS[attempt - 1] * self.retry_scale)
            try:
                outcome: httpx.Response | Exception = client.post(
                    delivery.url, content=message.body, headers=message.headers
                )
            except (httpx.HTTPError, httpx.InvalidURL) as error:
                outcome = error
            if not delivery.settle(outcome, _retriable):
                break
        with self._lock:
            if delivery.succeeded:
                self.succeeded += 1
            else:
                self.failed += 1
            self.deliveries.append(delivery)

    def close(self, timeout: float = 10.0) -> None:
        """Stop delivering (queued messages are dropped) and wait for the sender to end."""
        with self._lock:
            self._closed = True
            self.dropped += len(self._queue)
            self._queue.clear()
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # ------------------------------------------------------------------ observation

    @property
    def outstanding(self) -> int:
        """Messages queued or being delivered."""
        with self._lock:
            return len(self._queue) + self._in_flight

    def wait(self, timeout: float = 10.0) -> None:
        """Block until nothing is queued or in flight; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(self._queue) + self._in_flight} webhook message(s) still queued "
                        f"or in flight after {timeout} s"
                    )
                self._lock.wait(left)

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 -- waits on a thread
        """`wait`, from an event loop (the receiver may be served on this very loop)."""
        await asyncio.to_thread(self.wait, timeout)

    def as_dict(self) -> dict[str, Any]:
        """Webhooks, settings, counters and recent deliveries (oldest first), for HTTP."""
        with self._lock:
            return {
                "webhooks": [c.as_dict() for c in self.configs.values()],
                "retry_scale": self.retry_scale,
                "sent": self.sent,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "retried": self.retried,
                "dropped": self.dropped,
                "queued": len(self._queue),
                "in_flight": self._in_flight,
                "deliveries": [d.as_dict() for d in self.deliveries],
            }

    # ------------------------------------------------------------------------- HTTP

    async def control(self, request: Request) -> Response:
        """``/__simulator/webhooks``: GET reads; POST a webhook (``id`` given: change it; also
        ``retry_scale``); DELETE removes one (``?id=``) or all, with the counters."""
        try:
            if request.method == "POST":
                changes = json.loads(await request.body())
                if not isinstance(changes, dict):
                    raise ValueError("send a JSON object: a webhook's fields, or retry_scale")
                self._post(changes)
            elif request.method == "DELETE":
                given = request.query_params.get("id")
                if given is None:
                    self.clear()
                else:
                    self.remove(int(given))
        except (ValueError, KeyError) as error:
            message = error.args[0] if isinstance(error, KeyError) else str(error)
            return JSONResponse({"error": message}, 400)
        return JSONResponse(self.as_dict())

    def _post(self, changes: Mapping[str, Any]) -> None:
        unknown = set(changes) - _CONFIG_FIELDS - _SETTINGS
        if unknown:
            known = ", ".join(sorted(_CONFIG_FIELDS | _SETTINGS))
            raise ValueError(f"unknown webhook fields {sorted(unknown)}; known: {known}")
        if "retry_scale" in changes:
            scale = changes["retry_scale"]
            if not isinstance(scale, int | float) or isinstance(scale, bool) or scale < 0:
                raise ValueError("retry_scale must be a non-negative number")
            self.retry_scale = float(scale)
        fields = {k: v for k, v in changes.items() if k in _CONFIG_FIELDS and k != "id"}
        if "id" in changes:
            webhook_id = changes["id"]
            if not isinstance(webhook_id, int) or isinstance(webhook_id, bool):
                raise ValueError("id must be an integer")
            self.update(webhook_id, **fields)
        elif fields:
            if "url" not in fields:
                raise ValueError("a new webhook needs a url")
            self.add(**fields)


def _config(changes: Mapping[str, Any], current: WebhookConfig) -> WebhookConfig:
    """`current` with `changes`, checked; ValueError naming the bad field."""
    config = replace(current, **{k: v for k, v in changes.items() if k != "events"})
    if not isinstance(config.url, str) or not config.url.startswith(("http://", "https://")):
        raise ValueError("url must be an http(s) address")
    if config.secret is not None and (not isinstance(config.secret, str) or not config.secret):
        raise ValueError("secret must be a non-empty string or null")
    if not isinstance(config.enabled, bool):
        raise ValueError("enabled must be true or false")
    if not isinstance(config.name, str):
        raise ValueError("name must be a string")
    if "events" in changes:
        events = changes["events"]
        if not isinstance(events, list | tuple) or any(e not in EVENTS for e in events):
            raise ValueError(f"events must be a list of {', '.join(EVENTS)}")
        config = replace(config, events=tuple(events))
    return config


def _message(config: WebhookConfig, event: str, entity: str, change: Change) -> _Message:
    message_id = str(uuid.uuid4())
    payload = {
        "id": message_id,
        "eventType": event,
        "entityType": entity,
        "entityId": change.record_id,
        "timestamp": stamp(change.at),
        "modifiedById": change.user,
    }
    body = _JSON.encode(payload).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if config.secret is not None:
        headers[SIGNATURE_HEADER] = signature(config.secret, body)
    delivery = Delivery(message_id, config.id, config.url, event, change.record_id)
    return Message(delivery, body, headers)


def _retriable(status: int) -> bool:
    return status >= 500 or status in RETRY_STATUSES
