"""PSA URL validation and the HTTP client factory. No test here touches DNS or the network."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence

import httpx
import pytest

from sync.errors import InsecureUrlError, UnreachableError
from sync.providers.urls import build_http_client, validate_psa_url


def resolving_to(*addresses: str):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> Sequence[str]:
        return list(addresses)

    return resolve


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"unexpected DNS lookup of {host}")


async def unknown_host(host: str, port: int) -> Sequence[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


PUBLIC = resolving_to("93.184.215.14")


@pytest.mark.parametrize(
    ("url", "sandbox", "expected"),
    [
        ("https://na.myconnectwise.net", False, "https://na.myconnectwise.net"),
        ("na.myconnectwise.net", False, "https://na.myconnectwise.net"),
        (
            "  HTTPS://NA.MyConnectWise.net:443/v4_6_release/ ",
            False,
            "https://na.myconnectwise.net",
        ),
        ("https://cw.example.com:8443/", False, "https://cw.example.com:8443"),
        ("https://93.184.215.14", False, "https://93.184.215.14"),
        ("http://127.0.0.1:8765", True, "http://127.0.0.1:8765"),
        ("http://[::1]:8765", True, "http://[::1]:8765"),
        ("https://127.0.0.1", True, "https://127.0.0.1"),
    ],
)
async def test_accepted_urls_are_normalised(url: str, sandbox: bool, expected: str) -> None:
    assert await validate_psa_url(url, sandbox=sandbox, resolver=PUBLIC) == expected


@pytest.mark.parametrize(
    ("url", "sandbox", "message"),
    [
        ("http://na.myconnectwise.net", False, "must use https"),
        ("http://na.myconnectwise.net", True, "must use https"),
        ("http://93.184.215.14", True, "must use https"),
        ("http://127.0.0.1:8765", False, "only allowed for a loopback sandbox"),
        ("http://localhost:8765", False, "only allowed for a loopback sandbox"),
        ("https://127.0.0.1", False, "loopback address 127.0.0.1"),
        ("https://[::1]", False, "loopback address ::1"),
        ("https://10.0.0.5", False, "private address 10.0.0.5"),
        ("https://10.0.0.5", True, "private address 10.0.0.5"),
        ("https://192.168.1.20", True, "private address 192.168.1.20"),
        ("https://172.16.0.1", False, "private address"),
        ("https://169.254.169.254", False, "link-local address 169.254.169.254"),
        ("https://[fe80::1]", False, "link-local address fe80::1"),
        ("https://[::ffff:10.0.0.5]", False, "private address 10.0.0.5"),
        ("https://224.0.0.1", False, "multicast address"),
        ("https://0.0.0.0", False, "unspecified address"),
        ("https://100.64.0.1", False, "non-public address"),
        ("ftp://na.myconnectwise.net", False, "must use https"),
        ("https://user:secret@na.myconnectwise.net", False, "user name or password"),
        ("https://", False, "no host name"),
    ],
)
async def test_refused_urls_say_what_is_wrong(url: str, sandbox: bool, message: str) -> None:
    with pytest.raises(InsecureUrlError, match=message):
        await validate_psa_url(url, sandbox=sandbox, resolver=no_dns)


@pytest.mark.parametrize("address", ["10.0.0.5", "192.168.0.9", "169.254.1.1", "fe80::2"])
async def test_a_name_resolving_to_an_internal_address_is_refused(address: str) -> None:
    with pytest.raises(InsecureUrlError, match=f"resolves to a .* address {address}"):
        await validate_psa_url(
            "https://cw.example.com", sandbox=True, resolver=resolving_to(address)
        )


async def test_one_internal_address_among_public_ones_is_enough_to_refuse() -> None:
    resolver = resolving_to("93.184.215.14", "10.0.0.5")

    with pytest.raises(InsecureUrlError, match=r"10\.0\.0\.5"):
        await validate_psa_url("https://cw.example.com", sandbox=False, resolver=resolver)


async def test_http_to_localhost_needs_every_address_to_be_loopback() -> None:
    resolver = resolving_to("127.0.0.1", "93.184.215.14")

    with pytest.raises(InsecureUrlError, match="must use https"):
        await validate_psa_url("http://localhost:8765", sandbox=True, resolver=resolver)


async def test_localhost_sandbox_over_http_is_allowed() -> None:
    resolver = resolving_to("127.0.0.1", "::1")

    url = await validate_psa_url("http://localhost:8765", sandbox=True, resolver=resolver)

    assert url == "http://localhost:8765"


async def test_an_unresolvable_host_is_unreachable() -> None:
    with pytest.raises(UnreachableError, match="could not be resolved"):
        await validate_psa_url("https://nope.example.com", sandbox=False, resolver=unknown_host)


async def test_resolve_false_checks_only_the_url_itself() -> None:
    url = await validate_psa_url("https://cw.example.com", sandbox=False, resolve=False)

    assert url == "https://cw.example.com"


async def test_http_client_verifies_certificates_and_never_follows_redirects() -> None:
    async with build_http_client(timeout=12.0) as client:
        assert client.follow_redirects is False
        assert client.timeout.read == 12.0
        assert client.timeout.connect == 10.0
        context = client._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True


async def test_http_client_accepts_a_transport_for_tests() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(204))

    async with build_http_client(transport=transport) as client:
        response = await client.get("https://cw.example.com/")

    assert response.status_code == 204
