"""The ConnectWise source alone: which key URLs may be fetched, and what a callback says."""

from __future__ import annotations

import hashlib
import json

import pytest

from models import AssetKind, Provider
from sync.providers.connectwise.callbacks import (
    ConnectWiseCallbacks,
    allowed_key_url,
    expected_signature,
)
from webhooks.source import BadPayload, BadSignature, WebhookTarget

KEY_PATH = "/v2025_1//system/callbackkey/index.rails?companyName=acme&id=1"


def target(site_url: str, *, sandbox: bool = False, tenant: str | None = "acme") -> WebhookTarget:
    return WebhookTarget(
        integration_id="0" * 32,
        provider=Provider.CONNECTWISE_MANAGE,
        site_url=site_url,
        sandbox=sandbox,
        secret=None,
        tenant=tenant,
    )


@pytest.mark.parametrize(
    ("site", "key_host"),
    [
        ("https://na.myconnectwise.net", "https://na.myconnectwise.net"),
        ("https://na.myconnectwise.net", "https://api-na.myconnectwise.net"),
        ("https://api-eu.myconnectwise.net", "https://eu.myconnectwise.net"),
        ("https://staging.connectwisedev.com", "https://api-staging.connectwisedev.com"),
        ("https://cw.example-msp.com:8443", "https://CW.example-msp.com:8443"),
    ],
)
def test_key_urls_on_the_integrations_own_host_are_allowed(site: str, key_host: str) -> None:
    assert allowed_key_url(key_host + KEY_PATH, target(site)).startswith(key_host.lower())


@pytest.mark.parametrize(
    ("site", "key_url", "sandbox"),
    [
        ("https://na.myconnectwise.net", "https://eu.myconnectwise.net", False),
        ("https://na.myconnectwise.net", "https://api-eu.myconnectwise.net", False),
        ("https://na.myconnectwise.net", "https://evil.example", False),
        ("https://na.myconnectwise.net", "https://na.myconnectwise.net.evil.example", False),
        ("https://na.myconnectwise.net", "https://user:pw@na.myconnectwise.net", False),
        ("https://na.myconnectwise.net", "https://na.myconnectwise.net:8443", False),
        ("https://na.myconnectwise.net", "http://na.myconnectwise.net:443", False),
        ("https://na.myconnectwise.net", "ftp://na.myconnectwise.net", False),
        ("https://cw.example-msp.com", "http://cw.example-msp.com:443", True),  # not loopback
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081", False),  # not a sandbox
        ("http://127.0.0.1:8081", "http://127.0.0.1:8082", True),  # another port
        ("http://127.0.0.1:8081", "http://10.0.0.1:8081", True),
        ("https://na.myconnectwise.net", "not a url at all", False),
    ],
)
def test_other_key_urls_are_refused(site: str, key_url: str, sandbox: bool) -> None:
    with pytest.raises(BadSignature):
        allowed_key_url(key_url + KEY_PATH, target(site, sandbox=sandbox))


@pytest.mark.parametrize(
    "key_url",
    [
        "https://na.myconnectwise.net/v2025_1//system/callbackkey/index.rails?companyName=ACME&id=1",
        "https://na.myconnectwise.net/v2025_1/system/callbackkey/index.rails?companyname=acme&id=1",
        "https://na.myconnectwise.net/v4_6_release/system/callbackkey/index.rails?id=x&companyName=acme",
    ],
)
def test_a_key_url_naming_the_integrations_company_is_allowed(key_url: str) -> None:
    assert allowed_key_url(key_url, target("https://na.myconnectwise.net")) == key_url


@pytest.mark.parametrize(
    ("path", "message"),
    [
        # Another tenant of the same cloud host: its own key would verify its forgeries.
        ("/v2025_1//system/callbackkey/index.rails?companyName=rival&id=1", "another"),
        ("/v2025_1//system/callbackkey/index.rails?companyName=acme-co&id=1", "another"),
        ("/v2025_1//system/callbackkey/index.rails?id=1", "one company"),
        ("/v2025_1//system/callbackkey/index.rails?companyName=acme&companyName=rival&id=1",
         "one company"),
        ("/v2025_1//system/callbackkey/index.rails?companyName=acme", "key id"),
        ("/v2025_1//system/callbackkey/index.rails?companyName=acme&id=", "key id"),
        # Any other address on the host, even one answering JSON with a signing_key in it.
        ("/v2025_1/apis/3.0/company/companies?companyName=acme&id=1", "signing-key address"),
        ("/uploads/x/system/callbackkey/index.rails.json?companyName=acme&id=1", "signing-key"),
    ],
)  # fmt: skip
def test_a_key_url_not_naming_this_integrations_company_and_key_is_refused(
    path: str, message: str
) -> None:
    with pytest.raises(BadSignature, match=message):
        allowed_key_url(
            "https://na.myconnectwise.net" + path, target("https://na.myconnectwise.net")
        )


def test_without_the_integrations_company_no_key_url_is_allowed() -> None:
    with pytest.raises(BadSignature, match="company is unknown"):
        allowed_key_url(
            "https://na.myconnectwise.net" + KEY_PATH,
            target("https://na.myconnectwise.net", tenant=None),
        )


def test_a_loopback_sandbox_may_serve_its_key_over_http() -> None:
    url = allowed_key_url(
        "http://127.0.0.1:8081" + KEY_PATH, target("http://127.0.0.1:8081", sandbox=True)
    )
    assert url.startswith("http://127.0.0.1:8081/v2025_1//system/callbackkey/")


def test_the_signature_is_base64_hmac_sha256_keyed_by_the_keys_sha256() -> None:
    # psa-apis.md 2.3, computed independently.
    import base64
    import hmac

    body = b'{"ID": 1}'
    key = hashlib.sha256(b"secret").digest()
    expected = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
    assert expected_signature("secret", body) == expected


def test_a_callback_is_read_as_a_notice() -> None:
    entity = json.dumps({"id": 7, "_info": {"lastUpdated": "2026-01-01T00:00:10Z"}})
    notice = ConnectWiseCallbacks().parse(
        json.dumps(
            {"MessageId": "m-1", "Action": "Deleted", "Type": "Configuration", "ID": "7",
             "MemberId": "apiuser", "Entity": entity}
        ).encode()
    )  # fmt: skip
    assert notice.dedupe_key == "m-1"
    assert notice.action == "deleted"
    assert notice.kind == AssetKind.CONFIGURATION
    assert notice.psa_id == 7
    assert notice.member == "apiuser"
    assert notice.stamp == 1767225610


@pytest.mark.parametrize("entity", ["{not json", "[]", json.dumps({"_info": "x"}), None, 5])
def test_an_unreadable_entity_only_loses_the_stamp(entity: object) -> None:
    notice = ConnectWiseCallbacks().parse(
        json.dumps({"Action": "updated", "Type": "company", "ID": 1, "Entity": entity}).encode()
    )
    assert notice.stamp is None
    assert notice.kind == AssetKind.ORGANIZATION


def test_other_types_are_kept_without_a_kind() -> None:
    body = json.dumps({"Action": "added", "Type": "ticket", "ID": 9}).encode()
    notice = ConnectWiseCallbacks().parse(body)
    assert notice.kind is None
    assert notice.dedupe_key == hashlib.sha256(body).hexdigest()  # no MessageId


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'"a string"',
        json.dumps({"Type": "company", "ID": 1}).encode(),
        json.dumps({"Action": "merged", "Type": "company", "ID": 1}).encode(),
        json.dumps({"Action": "added", "ID": 1}).encode(),
        json.dumps({"Action": "added", "Type": "company"}).encode(),
        json.dumps({"Action": "added", "Type": "company", "ID": "12a"}).encode(),
        json.dumps({"Action": "added", "Type": "company", "ID": True}).encode(),
    ],
)
def test_anything_else_is_a_bad_payload(body: bytes) -> None:
    with pytest.raises(BadPayload):
        ConnectWiseCallbacks().parse(body)


async def test_verify_refuses_before_fetching_anything() -> None:
    source = ConnectWiseCallbacks()
    site = target("https://na.myconnectwise.net")
    no_key_url = json.dumps({"Action": "added", "Type": "company", "ID": 1}).encode()
    with pytest.raises(BadSignature, match="key_url"):
        await source.verify(site, {"x-content-signature": "c2ln"}, no_key_url)
    with pytest.raises(BadPayload):
        await source.verify(site, {"x-content-signature": "c2ln"}, b"{broken")
    foreign = json.dumps({"Metadata": {"key_url": "https://evil.example" + KEY_PATH}}).encode()
    with pytest.raises(BadSignature, match="not fetched"):
        await source.verify(site, {"x-content-signature": "c2ln"}, foreign)
    assert source.fetches == 0
    await source.aclose()
