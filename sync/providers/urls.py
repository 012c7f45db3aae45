"""PSA URL safety: which base URLs a provider may call, and the HTTP client to call them with.

A PSA URL is typed in by a customer, and the sync sends that customer's API keys to it. So:

* https only. Plain http is allowed for a loopback sandbox (a simulator on this machine) and
  nothing else, so keys never cross a network in clear text.
* The host must be public. A host that is, or resolves to, a private, link-local, multicast,
  reserved or unspecified address is refused, so the sync cannot be pointed at internal services
  (server-side request forgery). Loopback is allowed only for sandboxes.
* Certificates are always verified (httpx's default). There is deliberately no switch to turn
  verification off. It also blunts DNS rebinding: a name that resolves to a public address here
  and to an internal one at connect time still has to present a valid certificate for that name.
* Redirects are never followed: a redirect could carry the Authorization header elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence

import httpx

from sync.errors import InsecureUrlError, UnreachableError

__all__ = ["Resolver", "build_http_client", "system_resolver", "validate_psa_url"]

# (host, port) -> IP address strings. Injectable so tests never touch DNS.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_RESOLVE_TIMEOUT = 10.0
_DEFAULT_PORTS = {"https": 443, "http": 80}


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver, in the loop's executor (never blocks the loop)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def validate_psa_url(
    url: str,
    *,
    sandbox: bool,
    resolve: bool = True,
    resolver: Resolver | None = None,
    service: str = "PSA",
) -> str:
    """Check that ``url`` is safe to send PSA credentials to; return its normalised base URL.

    The result is ``scheme://host[:port]`` (lower case, IDNA-encoded, default port dropped, no
    path and no trailing slash). A bare host such as ``na.myconnectwise.net`` means https.

    Raises ``InsecureUrlError`` when the URL breaks a rule (see the module docstring) and
    ``UnreachableError`` when the host name does not resolve. ``resolve=False`` skips DNS and
    checks only what the URL itself says; ``service`` names the PSA in messages.
    """
    text = url.strip()
    if text.startswith("//"):
        text = "https:" + text
    elif "://" not in text:
        text = "https://" + text
    try:
        parsed = httpx.URL(text)
        host = parsed.raw_host.decode("ascii").rstrip(".").lower()
    except (httpx.InvalidURL, UnicodeError) as exc:
        # The text is not echoed: a mistyped URL may hold a password.
        raise InsecureUrlError(
            f"The {service} URL is not a valid address: enter the site address, "
            f"for example https://na.myconnectwise.net"
        ) from exc

    scheme = parsed.scheme
    if scheme not in _DEFAULT_PORTS:
        raise InsecureUrlError(
            f"{service} URLs must use https; '{scheme}' is not allowed. Enter an https:// address."
        )
    if parsed.userinfo:
        raise InsecureUrlError(
            f"{service} URLs must not contain a user name or password; "
            f"remove the part before '@' and enter credentials in their own fields."
        )
    if not host:
        raise InsecureUrlError(
            f"The {service} URL has no host name: enter the site address, "
            f"for example https://na.myconnectwise.net"
        )

    literal = _ip_literal(host)
    loopback_host = literal.is_loopback if literal is not None else _is_localhost_name(host)
    if scheme == "http" and not (loopback_host and sandbox):
        if loopback_host:
            raise InsecureUrlError(
                f"Plain http is only allowed for a loopback sandbox: mark this {service} "
                f"integration as a sandbox, or use https."
            )
        raise InsecureUrlError(
            f"{service} URLs must use https; plain http is only allowed for a loopback sandbox. "
            f"Change the address to https://{host}."
        )

    port = parsed.port or _DEFAULT_PORTS[scheme]
    # Over http every address must be loopback: the name alone is not proof.
    check = _AddressCheck(sandbox=sandbox, loopback_only=scheme == "http", service=service)
    if literal is not None:
        check(literal, f"'{host}' is")
    else:
        if loopback_host and not sandbox:
            raise InsecureUrlError(
                f"The {service} URL host '{host}' is a loopback name; loopback is only allowed "
                f"for a sandbox integration."
            )
        if resolve:
            for address in await _resolve(host, port, resolver or system_resolver, service):
                check(address, f"'{host}' resolves to")

    netloc = f"[{host}]" if literal is not None and literal.version == 6 else host
    if port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}"


def build_http_client(
    *, timeout: float = 30.0, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` every PSA provider should be given.

    Certificates are verified (``verify=True``, never configurable here), redirects are not
    followed, connecting gets at most 10 s of the ``timeout``, and the pool is bounded so one
    slow PSA cannot hold unbounded sockets. ``transport`` is for tests (``httpx.MockTransport``).
    Transport-level retries stay off: ``sync.providers.http.send`` owns retries.
    """
    return httpx.AsyncClient(
        verify=_verifying_context(),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=20, keepalive_expiry=30),
        follow_redirects=False,
        transport=transport,
        headers={"User-Agent": "psasync"},
    )


@functools.cache
def _verifying_context() -> ssl.SSLContext:
    """httpx's default (certificates and host names verified, certifi's CAs), built once:
    loading the CA bundle costs ~20 ms, paid by every run, push batch and inbox batch."""
    return httpx.create_ssl_context()


def _ip_literal(host: str) -> _IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_localhost_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


async def _resolve(host: str, port: int, resolver: Resolver, service: str) -> list[_IPAddress]:
    try:
        async with asyncio.timeout(_RESOLVE_TIMEOUT):
            found = await resolver(host, port)
    except (OSError, TimeoutError, UnicodeError) as exc:
        # socket.gaierror is an OSError.
        raise UnreachableError(
            f"The {service} host '{host}' could not be resolved: check the site address "
            f"for typos, and that this server can reach your DNS."
        ) from exc
    addresses = [ip for ip in (_ip_literal(a.split("%", 1)[0]) for a in found) if ip is not None]
    if not addresses:
        raise UnreachableError(
            f"The {service} host '{host}' did not resolve to any address: check the site address."
        )
    return addresses


class _AddressCheck:
    """Raises ``InsecureUrlError`` for an address the URL may not point at."""

    def __init__(self, *, sandbox: bool, loopback_only: bool, service: str) -> None:
        self.sandbox = sandbox
        self.loopback_only = loopback_only
        self.service = service

    def __call__(self, ip: _IPAddress, subject: str) -> None:
        service = self.service
        ip = _unwrap(ip)
        if self.loopback_only and not ip.is_loopback:
            raise InsecureUrlError(
                f"{service} URLs must use https; plain http is only allowed for a loopback "
                f"sandbox, and the host {subject} {ip}."
            )
        reason = _refusal(ip, sandbox=self.sandbox)
        if reason is None:
            return
        if reason == "loopback":
            raise InsecureUrlError(
                f"The {service} URL host {subject} a loopback address {ip}; loopback is only "
                f"allowed for a sandbox integration."
            )
        raise InsecureUrlError(
            f"The {service} URL host {subject} a {reason} address {ip}; only public addresses "
            f"are allowed, so the sync cannot reach internal services. Enter your {service} "
            f"server's public address."
        )


def _unwrap(ip: _IPAddress) -> _IPAddress:
    """The IPv4 address an IPv6 one carries (::ffff:10.0.0.5, 6to4), which is what gets reached."""
    if isinstance(ip, ipaddress.IPv6Address):
        return ip.ipv4_mapped or ip.sixtofour or ip
    return ip


def _refusal(ip: _IPAddress, *, sandbox: bool) -> str | None:
    """Why ``ip`` may not be called (a word for the message), or None when it may."""
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return None if sandbox else "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:  # e.g. 100.64.0.0/10, carrier-grade NAT
        return "non-public"
    return None
