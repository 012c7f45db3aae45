"""``psasync integrations add connectwise`` with the REST keys, the integrator login (SOAP) or
both: each set tested before anything is stored, a failure naming the option of the set that
failed, and ``status`` saying which API the integration uses. The CLI runs as a process on the
test's database (SQLite or PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import CREDENTIALS, Psa

from models import Integration, SyncRun
from models.vault import Vault
from simulators.connectwise.soap import IntegratorLogin
from sync.providers.connectwise.credentials import SOAP_NOTICE

PSASYNC = str(Path(sys.executable).with_name("psasync"))
LOGIN = IntegratorLogin()
REST = ("--public-key", CREDENTIALS.public_key, "--private-key", CREDENTIALS.private_key)
SOAP = ("--integrator-login", LOGIN.login_id, "--integrator-password", LOGIN.password)
SECRETS = (CREDENTIALS.public_key, CREDENTIALS.private_key, LOGIN.password)


def _psasync(db: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSASYNC_")}
    env["PSASYNC_DATABASE_URL"] = db
    env["PSASYNC_SECRET_KEY_FILE"] = str(tmp_path / "secret.key")
    done = subprocess.run(
        [PSASYNC, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout.decode()


def _add(psa: Psa, *credentials: str) -> list[str]:
    return [
        "integrations", "add", "connectwise", "--sandbox",
        "--site", psa.base_url,
        "--company-id", CREDENTIALS.company_id,
        "--client-id", "cli-test",
        *credentials,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("given", "api"),
    [(REST, "REST"), (SOAP, "SOAP"), ((*REST, *SOAP), "REST")],
    ids=["rest-only", "soap-only", "both"],
)
async def test_cli_connects_with_either_set_or_both_and_shows_the_api(
    db: str, psa: Psa, tmp_path: Path, given: tuple[str, ...], api: str
) -> None:
    code, out = _psasync(db, tmp_path, *_add(psa, *given))
    assert code == 0, out
    assert f"api: {api}" in out
    assert (SOAP_NOTICE in out) == (api == "SOAP")
    code, status = _psasync(db, tmp_path, "status")
    assert code == 0, status
    assert f"api: {api}" in status
    for secret in SECRETS:
        assert secret not in out.replace("--integrator-password", "--…")
        assert secret not in status
    assert await Integration.all().count() == 1


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ((*REST, "--integrator-login", LOGIN.login_id, "--integrator-password", "wrong"),
         "INVALID_CREDENTIALS (--integrator-password)"),
        (("--integrator-login", LOGIN.login_id, "--integrator-password", "wrong"),
         "INVALID_CREDENTIALS (--integrator-password)"),
        (("--public-key", CREDENTIALS.public_key, "--private-key", "wrong", *SOAP),
         "INVALID_CREDENTIALS (--private-key)"),
        ((*REST, "--integrator-login", LOGIN.login_id), "--integrator-password:"),
        (("--public-key", CREDENTIALS.public_key, *SOAP), "--private-key:"),
        ((), "the REST API keys (public_key, private_key), the legacy integrator login"),
    ],
    ids=["wrong-soap-password-with-rest", "wrong-soap-password", "wrong-rest-key-with-soap",
         "login-without-password", "public-key-without-private", "neither"],
)  # fmt: skip
async def test_cli_names_the_failing_or_half_given_set_and_stores_nothing(
    db: str, psa: Psa, tmp_path: Path, given: tuple[str, ...], expected: str
) -> None:
    code, out = _psasync(db, tmp_path, *_add(psa, *given))
    assert code != 0
    assert expected in out, out
    shown = out.replace("--integrator-password", "--…")  # the demo password is also its name
    for secret in (*SECRETS, "wrong"):
        assert secret not in shown
    assert await Integration.all().count() == 0
    assert await SyncRun.all().count() == 0


async def test_cli_adds_rest_keys_to_a_soap_only_integration_and_keeps_the_login(
    db: str, psa: Psa, tmp_path: Path
) -> None:
    code, out = _psasync(db, tmp_path, *_add(psa, *SOAP, "--name", "Acme CW"))
    assert code == 0, out
    code, out = _psasync(db, tmp_path, "integrations", "credentials", "Acme CW", *REST)
    assert code == 0, out
    assert "api: REST" in out
    assert SOAP_NOTICE not in out
    for secret in SECRETS:
        assert secret not in out
    code, status = _psasync(db, tmp_path, "status")
    assert "api: REST" in status, status
    vault = Vault([(tmp_path / "secret.key").read_text().strip()])
    stored = (await Integration.get(name="Acme CW")).credentials(vault)
    assert stored["integrator_login_id"] == LOGIN.login_id  # the login is kept
    assert stored["integrator_password"] == LOGIN.password
    assert stored["public_key"] == CREDENTIALS.public_key


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (("--public-key", CREDENTIALS.public_key, "--private-key", "wrong"),
         "INVALID_CREDENTIALS (--private-key)"),
        (("--public-key", CREDENTIALS.public_key), "INVALID_INPUT (--private-key)"),
        (("--password", "x"), "--password: not connectwise options"),
        ((), "give at least one credential option"),
    ],
    ids=["wrong-rest-key", "half-a-set", "pulseway-option", "nothing"],
)  # fmt: skip
async def test_cli_credentials_refuses_bad_keys_and_keeps_the_soap_integration(
    db: str, psa: Psa, tmp_path: Path, given: tuple[str, ...], expected: str
) -> None:
    code, out = _psasync(db, tmp_path, *_add(psa, *SOAP, "--name", "Acme CW"))
    assert code == 0, out
    before = (await Integration.get(name="Acme CW")).credentials_token
    code, out = _psasync(db, tmp_path, "integrations", "credentials", "Acme CW", *given)
    assert code != 0
    assert expected in out, out
    assert "wrong" not in out
    assert (await Integration.get(name="Acme CW")).credentials_token == before
    code, status = _psasync(db, tmp_path, "status")
    assert "api: SOAP" in status, status


async def test_cli_connects_with_the_integrator_login_alone_without_a_client_id(
    db: str, psa: Psa, tmp_path: Path
) -> None:
    args = [a for a in _add(psa, *SOAP) if a not in ("--client-id", "cli-test")]
    code, out = _psasync(db, tmp_path, *args)
    assert code == 0, out
    assert "api: SOAP" in out
    args = [a for a in _add(psa, *REST) if a not in ("--client-id", "cli-test")]
    code, out = _psasync(db, tmp_path, *args, "--name", "REST without client id")
    assert code != 0
    assert "--client-id: ConnectWise credentials are missing: client_id" in out, out
    assert await Integration.all().count() == 1
