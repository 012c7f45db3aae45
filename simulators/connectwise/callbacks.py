"""ConnectWise callbacks (webhooks): who is told about a write, what they are sent, and how.

    store write ──listener──▶ Callbacks.on_write    any thread, under the store's lock: picks the
                                    │               active callbacks of the record's type, builds
                                    │               and signs each payload (Entity as of now)
                                    ▼
                      bounded queue (threading.Lock)
                                    │ loop.call_soon_threadsafe
                                    ▼
      ≤ 32 worker tasks on the simulator's loop ──POST url+id──▶ receiver (retries 404/409/419/429)

Callback entries are ordinary store records (collection "callbacks", served at
``system/callbacks``), so a test can see or remove what psasync registered. Payload, signature
and retry schedule follow psa-apis.md §2.2-2.5. Simplifications: every level matches every record
of its type (``owner`` semantics), and a failing callback is never disabled after three days.

Writes reach the store from the server's loop (API requests) and from test threads (store-level
"UI" edits), so messages are queued under a threading lock and the loop is woken thread-safely.
The loop is captured at app startup (lifespan) or on the first API request; messages queued
before that wait for it. `drain` may be awaited from any loop, e.g. a test's, while the
simulator runs in its own thread.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

import httpx

from simulators.connectwise.render import Renderer
from simulators.connectwise.schema import RESOURCES
from simulators.connectwise.store import ConnectWiseStore
from simulators.delivery import RECENT_DELIVERIES, REQUEST_TIMEOUT, Attempts, Message

EVENT_TYPES = {
    "companies": "company",
    "contacts": "contact",
    "configurations": "configuration",
    "tickets": "ticket",
}
RETRY_STATUSES = frozenset({404, 409, 419, 429})
RETRY_DELAYS = (2.0, 4.0)  # after the first attempt, after the first retry
MAX_IN_FLIGHT = 32
MAX_QUEUED = 10_000  # beyond this, messages are dropped (counted) rather than piling up
FALLBACK_BASE_URL = "http://127.0.0.1"  # until the simulator learns its own URL
_SLOTS = RESOURCES["callbacks"].index
_MEMBER_IDENTIFIER = RESOURCES["members"].index["identifier"]
_KEY_PATH = "system/callbackkey/index.rails"
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Origin:
    """Where the simulator is reached: ``http://host:port`` and a codebase such as v2025_1."""

    base_url: str
    codebase: str


# The origin of the API request being handled, so its events link back to the URL it used.
_REQUEST_ORIGIN: ContextVar[Origin | None] = ContextVar("callback_origin", default=None)


def signature(signing_key: str, body: bytes) -> str:
    """``x-content-signature``: base64(HMAC-SHA256(key=SHA256(utf8(signing_key)), body))."""
    key = hashlib.sha256(signing_key.encode("utf-8")).digest()
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode("ascii")


@dataclass
class Delivery(Attempts):
    """One message to one callback and how its delivery went (final once in `deliveries`)."""

    message_id: str
    callback_id: int
    url: str
    action: str
    type: str
    record_id: int
    member: str


_Message = Message[Delivery]


class _Subscriber(NamedTuple):
    id: int
    url: str
    type: str
    connectwise_id: str
    member: str | None  # identifier of the creating member
    self_suppressed: bool


class Callbacks:
    """The callbacks of one simulated site: registrations (in the store), the signing key,
    delivery, and what tests control and observe.

    Counters: `sent` messages whose first POST was made, `succeeded` / `failed` messages that
    ended with / without a 2xx, `retried` extra attempts, `dropped` messages never sent (while
    `enabled` is False, or the queue was full), `suppressed` events skipped for
    `isSelfSuppressedFlag`.
    """

    def __init__(
        self, store: ConnectWiseStore, *, company_id: str, api_member: str, codebase: str
    ) -> None:
        self.store = store
        self.company_id = company_id
        self.api_member = api_member  # creator of callbacks `add`ed from Python
        self.signing_key = secrets.token_urlsafe(32)
        # Recorded payloads carry these two 24-hex-digit ids (ConnectWise's partner and this
        # site's product instance); fixed per site, like the real ones.
        self.partner_id = secrets.token_hex(12)
        self.product_instance_id = secrets.token_hex(12)
        self.retry_scale = 1.0  # multiplies RETRY_DELAYS; tests use e.g. 0.01
        self.enabled = True  # False: events are dropped, as missed callbacks
        self.base_url: str | None = None  # for store-level edits; set by every API request
        self.codebase = codebase
        self.deliveries: collections.deque[Delivery] = collections.deque(maxlen=RECENT_DELIVERIES)
        self.sent = self.succeeded = self.failed = self.retried = 0
        self.dropped = self.suppressed = 0
        self._lock = threading.Lock()  # guards the queue, in-flight count and loop handoff
        self._queue: collections.deque[_Message] = collections.deque()
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers = 0  # touched on the loop only
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    # ------------------------------------------------------------------- registrations

    def add(
        self,
        url: str,
        type: str = "company",
        *,
        level: str = "owner",
        object_id: int = 1,
        description: str | None = None,
        inactive: bool = False,
        self_suppressed: bool = False,
        member: str | None = None,
    ) -> dict[str, Any]:
        """Register a callback as `member` (default: the API member) would through the API."""
        entry = {
            "url": url,
            "type": type,
            "level": level,
            "objectId": object_id,
            "description": description,
            "inactiveFlag": inactive,
            "isSelfSuppressedFlag": self_suppressed,
        }
        return self.store.create("callbacks", entry, updated_by=member or self.api_member)

    def remove(self, callback_id: int) -> None:
        """Delete a callback entry, e.g. behind psasync's back."""
        self.store.delete("callbacks", callback_id)

    def entries(self) -> list[dict[str, Any]]:
        return self.store.find("callbacks")

    def signing_key_for(self, company_name: str, key_id: str) -> str | None:
        """The key a ``key_url`` names, or None when the company or callback uuid is unknown."""
        if company_name.casefold() != self.company_id.casefold():
            return None
        with self.store.lock:
            rows = self.store.table("callbacks").rows.values()
            known = any(row[_SLOTS["connectWiseID"]] == key_id for row in rows)
        return self.signing_key if known else None

    # ------------------------------------------------------------------------ events

    @contextmanager
    def request_origin(self, base_url: str, codebase: str) -> Iterator[None]:
        """Around an API request's handler: its events link to the URL it came in on, and
        later store-level edits use the same one."""
        self.base_url, self.codebase = base_url, codebase
        token = _REQUEST_ORIGIN.set(Origin(base_url, codebase))
        try:
            yield
        finally:
            _REQUEST_ORIGIN.reset(token)

    def on_write(self, collection: str, action: str, record_id: int, member: str) -> None:
        """The store listener: queue a message for each active callback of the record's type."""
        kind = EVENT_TYPES.get(collection)
        if kind is None:
            return
        subscribers = self._subscribers(kind)
        if not subscribers:
            return
        if not self.enabled:
            with self._lock:
                self.dropped += len(subscribers)
            return
        origin = _REQUEST_ORIGIN.get() or Origin(self.base_url or FALLBACK_BASE_URL, self.codebase)
        entity = None if action == "deleted" else self._entity(collection, record_id, origin)
        messages = []
        for subscriber in subscribers:
            if subscriber.self_suppressed and _same_member(subscriber.member, member):
                with self._lock:
                    self.suppressed += 1
                continue
            messages.append(self._message(subscriber, origin, action, record_id, member, entity))
        self._submit(messages)

    def _subscribers(self, kind: str) -> list[_Subscriber]:
        members = self.store.table("members").rows
        found = []
        for row in self.store.table("callbacks").rows.values():
            if row[_SLOTS["inactiveFlag"]] or row[_SLOTS["type"]].lower() != kind:
                continue
            creator = members.get(row[_SLOTS["memberId"]])
            found.append(
                _Subscriber(
                    row[0],
                    row[_SLOTS["url"]],
                    row[_SLOTS["type"]],
                    row[_SLOTS["connectWiseID"]],
                    None if creator is None else creator[_MEMBER_IDENTIFIER],
                    bool(row[_SLOTS["isSelfSuppressedFlag"]]),
                )
            )
        return found

    def _entity(self, collection: str, record_id: int, origin: Origin) -> str:
        """The record exactly as ``GET`` at `origin` returns it, JSON-encoded."""
        table = self.store.table(collection)
        api_base = f"{origin.base_url}/{origin.codebase}/apis/3.0"
        return _JSON.encode(
            Renderer(self.store, api_base).record(table.resource, table.rows[record_id])
        )

    def _message(
        self,
        subscriber: _Subscriber,
        origin: Origin,
        action: str,
        record_id: int,
        member: str,
        entity: str | None,
    ) -> _Message:
        message_id = str(uuid.uuid4())
        query = urlencode({"companyName": self.company_id, "id": subscriber.connectwise_id})
        payload = {
            "MessageId": message_id,
            "FromUrl": urlsplit(origin.base_url).netloc,
            "CompanyId": self.company_id,
            "MemberId": member,
            "Action": action,
            "Type": subscriber.type,
            "ID": record_id,
            "CallbackObjectRecId": subscriber.id,
            "PartnerId": self.partner_id,
            "ProductInstanceId": self.product_instance_id,
            "Entity": entity,
            "Metadata": {
                # The double slash is ConnectWise's own (codebase slash + path slash).
                "key_url": f"{origin.base_url}/{origin.codebase}//{_KEY_PATH}?{query}"
            },
        }
        body = _JSON.encode(payload).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "x-content-signature": signature(self.signing_key, body),
        }
        url = subscriber.url + str(record_id)  # ConnectWise appends the id; URLs end "?recordId="
        delivery = Delivery(
            message_id, subscriber.id, url, action, subscriber.type, record_id, member
        )
        return Message(delivery, body, headers)

    # ---------------------------------------------------------------------- delivery

    def _submit(self, messages: list[_Message]) -> None:
        if not messages:
            return
        with self._lock:
            accepted = messages[: max(0, MAX_QUEUED - len(self._queue))]
            self.dropped += len(messages) - len(accepted)
            self._queue.extend(accepted)
            loop = self._loop
        if loop is not None:
            self._wake(loop)

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(RuntimeError):  # closed: messages wait for the next `attach`
            loop.call_soon_threadsafe(self._spawn, loop)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver on `loop` (the server's) from now on, starting with anything queued."""
        if self._loop is loop:
            return
        with self._lock:
            self._loop = loop
            self._client = None  # a client's connections belong to one loop
            self._workers = 0
            self._tasks = set()
        self._wake(loop)

    async def close(self) -> None:
        """At server shutdown: stop delivering and close the HTTP client. Queued messages wait
        for the next `attach`; deliveries in progress are abandoned."""
        with self._lock:
            self._loop = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _spawn(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop: start workers until the queue is served or MAX_IN_FLIGHT are busy."""
        if loop is not self._loop:
            return  # woken for a loop that has since been replaced or closed
        while self._workers < MAX_IN_FLIGHT and self.queued:
            self._workers += 1
            task = loop.create_task(self._work())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _work(self) -> None:
        try:
            while True:
                with self._lock:
                    if not self._queue:
                        return  # no await before `finally`: `_spawn` cannot run in between
                    message = self._queue.popleft()
                    self._in_flight += 1
                try:
                    await self._deliver(message)
                finally:
                    with self._lock:
                        self._in_flight -= 1
        finally:
            self._workers -= 1

    async def _deliver(self, message: _Message) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=REQUEST_TIMEOUT,
                trust_env=False,  # receivers are reached directly, never through a proxy
                limits=httpx.Limits(max_connections=MAX_IN_FLIGHT),
            )
        client, delivery = self._client, message.delivery
        self.sent += 1
        for attempt in range(len(RETRY_DELAYS) + 1):
            if attempt:
                self.retried += 1
                await asyncio.sleep(RETRY_DELAYS[attempt - 1] * self.retry_scale)
            try:
                outcome: httpx.Response | Exception = await client.post(
                    delivery.url, content=message.body, headers=message.headers
                )
            except (httpx.HTTPError, httpx.InvalidURL) as error:
                outcome = error
            if not delivery.settle(outcome, RETRY_STATUSES.__contains__):
                break
        if delivery.succeeded:
            self.succeeded += 1
        else:
            self.failed += 1
        with self._lock:  # `as_dict` copies it from other threads
            self.deliveries.append(delivery)

    # ------------------------------------------------------------------ observation

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def outstanding(self) -> int:
        """Messages queued or being delivered."""
        with self._lock:
            return len(self._queue) + self._in_flight

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 -- polls across threads
        """Wait, on the caller's loop, until nothing is queued or in flight; TimeoutError after
        `timeout` seconds (e.g. when the simulator is not being served)."""
        deadline = time.monotonic() + timeout
        while self.outstanding:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.outstanding} callback message(s) still queued or in flight "
                    f"after {timeout} s"
                )
            await asyncio.sleep(0.005)

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Apply ``{"enabled": bool, "retry_scale": float}`` (either); ValueError if invalid."""
        unknown = set(changes) - {"enabled", "retry_scale"}
        if unknown:
            raise ValueError(
                f"unknown callback settings {sorted(unknown)}; known: enabled, retry_scale"
            )
        enabled = changes.get("enabled", self.enabled)
        scale = changes.get("retry_scale", self.retry_scale)
        if not isinstance(enabled, bool):
            raise ValueError("enabled must be true or false")
        if not isinstance(scale, int | float) or isinstance(scale, bool) or scale < 0:
            raise ValueError("retry_scale must be a non-negative number")
        self.enabled, self.retry_scale = enabled, float(scale)

    def as_dict(self) -> dict[str, Any]:
        """Settings, counters and recent deliveries (oldest first), for the HTTP control."""
        with self._lock:
            deliveries = list(self.deliveries)
        return {
            "enabled": self.enabled,
            "retry_scale": self.retry_scale,
            "sent": self.sent,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retried": self.retried,
            "dropped": self.dropped,
            "suppressed": self.suppressed,
            "queued": self.queued,
            "in_flight": self.in_flight,
            "deliveries": [d.as_dict() for d in deliveries],
        }


def _same_member(creator: str | None, member: str) -> bool:
    return creator is not None and creator.casefold() == member.casefold()
