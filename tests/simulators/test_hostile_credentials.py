"""Credentials nobody would type: both simulators answer them as the PSA answers a wrong key.

ConnectWise: 401 with its ``{"code": "Unauthorized", ...}`` body. Pulseway PSA: the envelope
with ``success: false`` and error code 401 (HTTP 200, as for any wrong password; see the
simulator's README). Never a 500, whatever the bytes.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from simulator_access import API_ROOT, CREDENTIALS

from simulators.connectwise import ConnectWiseSimulator, ConnectWiseStore
from simulators.pulseway import ApiCredentials, PulsewaySimulator

PW_CREDENTIALS = ApiCredentials(tenant="acme", username="api.user", password="s3cret")
PW_BASE = "http://psa.test"
LONG = "x" * 100_000


def basic(raw: bytes) -> bytes:
    return b"Basic " + base64.b64encode(raw)


# ------------------------------------------------------------------------- ConnectWise


@pytest.fixture
async def cw() -> AsyncIterator[httpx.AsyncClient]:
    simulator = ConnectWiseSimulator(ConnectWiseStore(), credentials=CREDENTIALS)
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(transport=transport, base_url=API_ROOT) as client:
        yield client


async def cw_answer(client: httpx.AsyncClient, authorization: bytes) -> tuple[int, Any]:
    response = await client.get("company/companies", headers={b"Authorization": authorization})
    return response.status_code, response.json()


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(basic("acme+pub-kéy:priv-key".encode()), id="non-ascii-public-key"),
        pytest.param(basic("acme+pub-key:priv-kéy".encode()), id="non-ascii-private-key"),
        pytest.param(basic("äcme+pub-key:priv-key".encode()), id="non-ascii-company"),
        pytest.param("Basic ÿé".encode("latin-1"), id="non-ascii-header-bytes"),
        pytest.param(b"Basic \xe2\x82\xac\xe2\x82\xac", id="utf8-header-bytes"),
        pytest.param(b"Basic !!not-base64!!", id="invalid-base64"),
        pytest.param(b"Basic YWJj", id="truncated-base64"),
        pytest.param(basic(b"acme+\xff\xfe:\xc3\x28"), id="decoded-not-utf8"),
        pytest.param(basic(b"acme+pub-key"), id="missing-colon"),
        pytest.param(basic(b"acme+pub-key:priv-key\x00"), id="nul"),
        pytest.param(basic(b"acme+pub-key:" + LONG.encode()), id="very-long"),
        pytest.param(basic("acme+pub-key:\udcff".encode("utf-8", "surrogatepass")), id="cesu"),
        pytest.param(b"Bearer " + base64.b64encode(b"acme+pub-key:priv-key"), id="scheme"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_connectwise_answers_hostile_basic_auth_as_a_wrong_key(
    cw: httpx.AsyncClient, authorization: bytes
) -> None:
    wrong_key = await cw_answer(cw, basic(b"acme+pub-key:wrong"))
    assert wrong_key[0] == 401
    assert wrong_key[1]["code"] == "Unauthorized"

    assert await cw_answer(cw, authorization) == wrong_key


async def test_connectwise_still_accepts_the_right_key(cw: httpx.AsyncClient) -> None:
    status, _ = await cw_answer(cw, basic(b"ACME+pub-key:priv-key"))
    assert status == 200


# ----------------------------------------------------------------------------- Pulseway


@pytest.fixture
def pw_simulator() -> PulsewaySimulator:
    return PulsewaySimulator(credentials=PW_CREDENTIALS)


@pytest.fixture
async def pw(pw_simulator: PulsewaySimulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=pw_simulator.app)
    async with httpx.AsyncClient(transport=transport, base_url=PW_BASE) as client:
        yield client


FORM = {"grantType": "password", "userName": "api.user", "password": "s3cret", "tenant": "acme"}
URLENCODED = {"content-type": "application/x-www-form-urlencoded"}


async def pw_answer(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json()


async def pw_wrong_password(client: httpx.AsyncClient) -> tuple[int, Any]:
    answer = await pw_answer(
        await client.post("/v2/security/authenticate", data={**FORM, "password": "wrong"})
    )
    assert answer == (
        200,
        {
            "success": False,
            "error": {"code": 401, "message": "Invalid user name, password or tenant."},
            "result": None,
        },
    )
    return answer


@pytest.mark.parametrize("field", ["userName", "password", "tenant"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("s3crét", id="non-ascii"),
        pytest.param("密码", id="cjk"),
        pytest.param("s3cret\x00", id="nul"),
        pytest.param(LONG, id="very-long"),
    ],
)
async def test_pulseway_answers_hostile_form_values_as_bad_credentials(
    pw: httpx.AsyncClient, field: str, value: str
) -> None:
    wrong = await pw_wrong_password(pw)
    for encoding in ("urlencoded", "multipart"):
        form = {**FORM, field: value}
        if encoding == "urlencoded":
            response = await pw.post("/v2/security/authenticate", data=form)
        else:
            files = {name: (None, text) for name, text in form.items()}
            response = await pw.post("/v2/security/authenticate", files=files)
        assert await pw_answer(response) == wrong, encoding


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"password=s3cret\xff", id="raw-not-utf8"),
        pytest.param(b"password=%ED%B3%BF", id="percent-encoded-surrogate"),
        pytest.param(b"password=%FF%FE", id="percent-encoded-not-utf8"),
        pytest.param(b"password=s3cret%00", id="percent-encoded-nul"),
    ],
)
async def test_pulseway_answers_undecodable_passwords_as_bad_credentials(
    pw: httpx.AsyncClient, raw: bytes
) -> None:
    wrong = await pw_wrong_password(pw)
    body = b"grantType=password&userName=api.user&tenant=acme&" + raw
    response = await pw.post("/v2/security/authenticate", content=body, headers=URLENCODED)
    assert await pw_answer(response) == wrong


async def test_pulseway_answers_a_non_utf8_multipart_part_as_bad_credentials(
    pw: httpx.AsyncClient,
) -> None:
    wrong = await pw_wrong_password(pw)
    files: dict[str, tuple[None, str | bytes]] = {k: (None, v) for k, v in FORM.items()}
    files["password"] = (None, b"s3cret\xff\xfe")
    response = await pw.post("/v2/security/authenticate", files=files)
    assert await pw_answer(response) == wrong


@pytest.mark.parametrize("token_field", ["accessToken", "refreshToken"], ids=["access", "refresh"])
@pytest.mark.parametrize("value", ["tökén", "\x00", LONG], ids=["non-ascii", "nul", "long"])
async def test_pulseway_refresh_answers_hostile_tokens_as_invalid(
    pw: httpx.AsyncClient, token_field: str, value: str
) -> None:
    tokens = (await pw.post("/v2/security/authenticate", data=FORM)).json()["result"]
    form = {"accessToken": tokens["accessToken"], "refreshToken": tokens["refreshToken"]}
    form[token_field] = value

    status, body = await pw_answer(await pw.post("/v2/security/refreshtoken", data=form))

    assert status == 200
    assert body["success"] is False
    assert body["error"]["code"] == 401
    # The real pair still works: a hostile attempt burns nothing.
    status, body = await pw_answer(
        await pw.post(
            "/v2/security/refreshtoken",
            data={"accessToken": tokens["accessToken"], "refreshToken": tokens["refreshToken"]},
        )
    )
    assert body["success"] is True
