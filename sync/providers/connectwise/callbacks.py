"""ConnectWise callbacks (webhooks): the signature check and the payload's words.

A callback is a JSON POST whose ``x-content-signature`` header is
``base64(HMAC-SHA256(key=SHA256(signing_key), msg=raw body))``; the signing key is served at
the ``Metadata.key_url`` the body names (psa-apis.md 2.2-2.3). That URL is attacker-controlled
input, so it is fetched only when it is https on the integration's own ConnectWise host (the
site's host, or its cloud API host ``api-na`` <-> ``na``), on the same port; plain http only
for a loopback sandbox. Anything else is refused unfetched: a forged callback cannot make
psasync call an address of its choosing (server-side request forgery). The URL must also be a
signing-key address (``…/system/callbackkey/index.rails``) naming the integration's own company
(``companyName``, the integration's company id) and a key id: on a shared cloud host
(na.myconnectwise.net) another tenant's key, served under its own company name, does not verify
our callbacks. What remains is in ``docs/webhook-security.md``.

Keys are cached per key URL (bounded LRU with a TTL). A signature that does not match a cached
key triggers one refetch (the key may have rotated), at most once per ``refetch_interval`` per
URL, so a flood of forged callbacks cannot become a flood of key fetches; a failed fetch is
remembered for ``failure_ttl``. Concurrent first requests for one URL share one fetch.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

import httpx

from models.enums import AssetKind, Provider
from sync.providers.urls import build_http_client
from webhooks.source import (
    BadPayload,
    BadSignature,
    Notice,
    WebhookTarget,
    decode,
    dedupe_key,
    epoch_seconds,
    json_object,
    member,
    read_json,
    record_id,
)

from .client import _CLOUD_API_HOSTS

__all__ = ["ConnectWiseCallbacks", "KeyUnavailable", "allowed_key_url", "expected_signature"]

log = logging.getLogger("psasync.webhooks.connectwise")

SIGNATURE_HEADER: Final = "x-content-signature"
_WHAT: Final = "ConnectWise callback"
ACTIONS: Final = frozenset({"added", "updated", "deleted"})
# ConnectWise callback types psasync syncs; every other type is stored and later ignored.
KINDS: Final[Mapping[str, AssetKind]] = {
    "company": AssetKind.ORGANIZATION,
    "contact": AssetKind.CONTACT,
    "configuration": AssetKind.CONFIGURATION,
}
KEY_TIMEOUT: Final = 10.0
KEY_MAX_BYTES: Final = 64 * 1024
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
# psa-apis.md 2.3: /{codebase}/system/callbackkey/index.rails?companyName=…&id=<uuid> (the
# double slash after the codebase is ConnectWise's own).
KEY_PATH: Final = "/system/callbackkey/index.rails"
# Both ways: a site typed as na.myconnectwise.net serves keys on api-na, and the reverse.
_SAME_INSTANCE: Final[Mapping[str, str]] = {
    **_CLOUD_API_HOSTS,
    **{api: site for site, api in _CLOUD_API_HOSTS.items()},
}


class KeyUnavailable(BadSignature):
    """The signing key could not be fetched: the callback is refused as unverified."""


def expected_signature(signing_key: str, body: bytes) -> str:
    """The ``x-content-signature`` ConnectWise sends with ``body`` (psa-apis.md 2.3)."""
    return _sign(_mac_key(signing_key), body).decode("ascii")


def allowed_key_url(key_url: str, target: WebhookTarget) -> str:
    """``key_url`` normalised, when it may be fetched for ``target``; ``BadSignature`` when not.

    Allowed: https (http only for a sandbox on loopback), no user info, the host of the
    integration's site or its cloud API counterpart, the site's port, the signing-key path, a
    ``companyName`` that is the integration's company (``target.tenant``) and a key ``id``.
    """
    try:
        url = httpx.URL(key_url)
        site = httpx.URL(target.site_url)
    except (httpx.InvalidURL, TypeError, UnicodeError) as exc:
        raise BadSignature("The callback key URL is not a valid address.") from exc
    host, site_host = url.host.rstrip(".").lower(), site.host.rstrip(".").lower()
    if url.scheme not in _DEFAULT_PORTS or not host:
        raise BadSignature("The callback key URL must be an https address.")
    if url.userinfo:
        raise BadSignature("The callback key URL must not contain a user name or password.")
    if host not in {site_host, _SAME_INSTANCE.get(site_host)}:
        raise BadSignature(
            "The callback key URL is not on this integration's ConnectWise host: not fetched."
        )
    port = url.port or _DEFAULT_PORTS[url.scheme]
    site_port = site.port or _DEFAULT_PORTS.get(site.scheme, 443)
    if port != site_port:
        raise BadSignature(
            "The callback key URL is not on this integration's ConnectWise port: not fetched."
        )
    if url.scheme == "http" and not (target.sandbox and _is_loopback(host)):
        raise BadSignature(
            "The callback key URL must use https; plain http is only allowed for a loopback "
            "sandbox: not fetched."
        )
    path = "/" + "/".join(part for part in url.path.split("/") if part)
    if not path.lower().endswith(KEY_PATH):
        raise BadSignature("The callback key URL is not a ConnectWise signing-key address.")
    params = [(name.lower(), value) for name, value in url.params.multi_items()]
    companies = {value.strip().lower() for name, value in params if name == "companyname"}
    if target.tenant is None:
        raise BadSignature(
            "This integration's ConnectWise company is unknown: its callbacks cannot be checked."
        )
    if len(companies) != 1:
        raise BadSignature("The callback key URL must name one company: not fetched.")
    if companies != {target.tenant.strip().lower()}:
        raise BadSignature(
            "The callback key URL names another ConnectWise company than this integration's: "
            "not fetched."
        )
    if not any(name == "id" and value.strip() for name, value in params):
        raise BadSignature("The callback key URL names no key id: not fetched.")
    return str(url.copy_with(fragment=None))


class ConnectWiseCallbacks:
    """The ConnectWise ``WebhookSource``: verifies callbacks and reads them as ``Notice``."""

    provider = Provider.CONNECTWISE_MANAGE
    # The receiver fills ``WebhookTarget.tenant`` with this credential: the company key URLs
    # must name.
    tenant_credential = "company_id"

    def __init__(
        self,
        *,
        http: httpx.AsyncClient | None = None,
        cache_size: int = 1024,
        ttl: float = 3600.0,
        refetch_interval: float = 30.0,
        failure_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._own_http = http is None
        self._cache_size = cache_size
        self._ttl = ttl
        self.refetch_interval = refetch_interval
        self._failure_ttl = failure_ttl
        self._clock = clock
        # key URL -> (HMAC key, fetched at); least recently used first.
        self._keys: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._failures: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._fetching: dict[str, asyncio.Task[bytes]] = {}
        self._verdicts: OrderedDict[tuple[str, str, bool, str | None], tuple[bool, str]] = (
            OrderedDict()
        )
        self.fetches = 0  # key fetches started (tests and benchmarks)

    def read(self, text: str) -> dict[str, Any]:
        """The callback's JSON object, read within bounds."""
        return json_object(text, _WHAT)

    async def verify(
        self,
        target: WebhookTarget,
        headers: Mapping[str, str],
        body: bytes,
        message: Mapping[str, Any] | None = None,
    ) -> None:
        """Raise ``BadSignature`` unless ``body`` carries ConnectWise's signature for it."""
        if message is None:
            message = self.read(decode(body))
        signature = headers.get(SIGNATURE_HEADER)
        if not signature or not signature.strip():
            raise BadSignature(f"The {SIGNATURE_HEADER} header is missing.")
        metadata = message.get("Metadata")
        key_url = metadata.get("key_url") if isinstance(metadata, dict) else None
        if not isinstance(key_url, str) or not key_url:
            raise BadSignature(
                "The callback has no Metadata.key_url: its signature cannot be checked."
            )
        url = self._allowed(key_url, target)
        sent = signature.strip().encode("latin-1", "replace")
        key = await self._key(url)
        if hmac.compare_digest(_sign(key, body), sent):
            return
        # The key may have rotated since it was cached: look once more (rate-limited).
        fresh = await self._refetch(url, key)
        if fresh is not None and hmac.compare_digest(_sign(fresh, body), sent):
            return
        raise BadSignature(
            f"The {SIGNATURE_HEADER} header does not match the body signed with the callback key."
        )

    def parse(self, body: bytes, message: Mapping[str, Any] | None = None) -> Notice:
        """The notice in a callback body; ``BadPayload`` when the body is not a callback."""
        if message is None:
            message = self.read(decode(body))
        action = message.get("Action")
        kind_name = message.get("Type")
        if not isinstance(action, str) or action.lower() not in ACTIONS:
            raise BadPayload(
                "Not a ConnectWise callback: Action must be added, updated or deleted."
            )
        if not isinstance(kind_name, str) or not kind_name:
            raise BadPayload("Not a ConnectWise callback: Type is missing.")
        return Notice(
            dedupe_key=dedupe_key(message.get("MessageId"), body, _WHAT),
            action=action.lower(),
            kind=KINDS.get(kind_name.lower()),
            psa_id=record_id(message.get("ID"), "ID", _WHAT),
            member=member(message.get("MemberId"), _WHAT),
            stamp=_stamp(message.get("Entity")),
        )

    async def aclose(self) -> None:
        """Cancel key fetches in flight and close the HTTP client (if this source made it)."""
        for task in list(self._fetching.values()):
            task.cancel()
        self._fetching.clear()
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- keys ------------------------------------------------------------------------------------

    def _allowed(self, key_url: str, target: WebhookTarget) -> str:
        """``allowed_key_url``, remembered: URL parsing costs more than the rest of a request,
        and a tenant's callbacks all name the same key URL."""
        check = (key_url, target.site_url, target.sandbox, target.tenant)
        verdict = self._verdicts.get(check)
        if verdict is None:
            try:
                verdict = (True, allowed_key_url(key_url, target))
            except BadSignature as refused:
                verdict = (False, refused.message)
            self._verdicts[check] = verdict
            while len(self._verdicts) > self._cache_size:
                self._verdicts.popitem(last=False)
        else:
            self._verdicts.move_to_end(check)
        allowed, text = verdict
        if not allowed:
            raise BadSignature(text)
        return text

    async def _key(self, url: str) -> bytes:
        now = self._clock()
        cached = self._keys.get(url)
        if cached is not None and now - cached[1] < self._ttl:
            self._keys.move_to_end(url)
            return cached[0]
        return await self._fetch_shared(url, now)

    async def _refetch(self, url: str, stale: bytes) -> bytes | None:
        now = self._clock()
        cached = self._keys.get(url)
        if cached is not None and cached[0] != stale:
            return cached[0]  # someone else refetched meanwhile
        recent = cached is not None and now - cached[1] < self.refetch_interval
        if recent and url not in self._fetching:
            return None
        try:
            return await self._fetch_shared(url, now)
        except KeyUnavailable:
            return None

    async def _fetch_shared(self, url: str, now: float) -> bytes:
        failed = self._failures.get(url)
        if failed is not None:
            if now - failed[1] < self._failure_ttl:
                raise KeyUnavailable(failed[0])
            del self._failures[url]
        task = self._fetching.get(url)
        if task is None:
            task = asyncio.ensure_future(self._fetch(url))
            self._fetching[url] = task
            task.add_done_callback(lambda done: self._fetched(url, done))
        # A cancelled request must not cancel the fetch the others wait for.
        return await asyncio.shield(task)

    async def _fetch(self, url: str) -> bytes:
        self.fetches += 1
        try:
            async with asyncio.timeout(KEY_TIMEOUT):
                signing_key = await self._download(url)
        except KeyUnavailable as exc:
            self._remember_failure(url, exc.message)
            raise
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            message = (
                "The ConnectWise callback key could not be fetched "
                f"({type(exc).__name__}): the callback is unverified."
            )
            self._remember_failure(url, message)
            raise KeyUnavailable(message) from exc
        key = _mac_key(signing_key)
        self._keys[url] = (key, self._clock())
        self._keys.move_to_end(url)
        while len(self._keys) > self._cache_size:
            self._keys.popitem(last=False)
        return key

    async def _download(self, url: str) -> str:
        if self._http is None:
            self._http = build_http_client(timeout=KEY_TIMEOUT)
        async with self._http.stream("GET", url, headers={"Accept": "application/json"}) as answer:
            if answer.status_code != 200:
                raise KeyUnavailable(
                    "The ConnectWise callback key could not be fetched (HTTP "
                    f"{answer.status_code}): the callback is unverified."
                )
            data = bytearray()
            async for chunk in answer.aiter_bytes():
                data += chunk
                if len(data) > KEY_MAX_BYTES:
                    raise KeyUnavailable(
                        "The ConnectWise callback key could not be fetched (the answer is "
                        "larger than 64 KiB): the callback is unverified."
                    )
        signing_key = _signing_key(bytes(data))
        if signing_key is None:
            raise KeyUnavailable(
                "The ConnectWise callback key could not be fetched (the answer holds no "
                "signing_key): the callback is unverified."
            )
        return signing_key

    def _fetched(self, url: str, task: asyncio.Task[bytes]) -> None:
        if self._fetching.get(url) is task:
            del self._fetching[url]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" noise when every waiter left

    def _remember_failure(self, url: str, message: str) -> None:
        self._failures[url] = (message, self._clock())
        while len(self._failures) > self._cache_size:
            self._failures.popitem(last=False)


# -- pure helpers ----------------------------------------------------------------------------------


def _mac_key(signing_key: str) -> bytes:
    return hashlib.sha256(signing_key.encode("utf-8")).digest()


def _sign(mac_key: bytes, body: bytes) -> bytes:
    return base64.b64encode(hmac.new(mac_key, body, hashlib.sha256).digest())


def _signing_key(data: bytes) -> str | None:
    """``{"signing_key": …}``, also when served as a JSON string holding that JSON."""
    try:
        value: Any = json.loads(data)
        if isinstance(value, str):
            value = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    key = value.get("signing_key") if isinstance(value, dict) else None
    return key if isinstance(key, str) and key else None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")


def _stamp(entity: object) -> int | None:
    """``_info.lastUpdated`` of the entity, as epoch seconds; None when it cannot be read."""
    if isinstance(entity, str):
        try:
            entity = read_json(entity)  # bounded: it is as unverified as the body
        except BadPayload:
            return None
    if not isinstance(entity, dict):
        return None
    info = entity.get("_info")
    return epoch_seconds(info.get("lastUpdated") if isinstance(info, dict) else None)
