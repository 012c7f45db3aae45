"""The service and CLI as a user meets them: real processes, real ports, real files."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from harness import CREDENTIALS, Psa

PSASYNC = str(Path(sys.executable).with_name("psasync"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSASYNC_")}
    env["PSASYNC_DATABASE_URL"] = f"sqlite://{tmp_path / 'cli.db'}"
    env["PSASYNC_SECRET_KEY_FILE"] = str(tmp_path / "secret.key")
    env.update(extra)
    return env


async def psasync(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        PSASYNC, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode()


def add_args(psa: Psa, *extra: str, private_key: str = CREDENTIALS.private_key) -> list[str]:
    return [
        "integrations", "add", "connectwise",
        "--site", psa.base_url,
        "--company-id", CREDENTIALS.company_id,
        "--public-key", CREDENTIALS.public_key,
        "--private-key", private_key,
        "--client-id", "cli-test",
        *extra,
    ]  # fmt: skip


async def test_cli_refuses_bad_credentials_and_plain_http_and_stores_nothing(
    psa: Psa, tmp_path: Path
) -> None:
    env = cli_env(tmp_path)
    code, out = await psasync(env, *add_args(psa, "--sandbox", private_key="wrong"))
    assert code != 0
    assert "INVALID_CREDENTIALS" in out
    assert "wrong" not in out

    code, out = await psasync(env, *add_args(psa))  # http without --sandbox
    assert code != 0
    assert "INSECURE_URL" in out

    code, out = await psasync(env, "status")
    assert code == 0
    assert "no integrations yet" in out


async def test_cli_adds_an_integration_syncs_it_and_shows_ok_with_counts(
    psa: Psa, tmp_path: Path
) -> None:
    env = cli_env(tmp_path)
    code, out = await psasync(env, *add_args(psa, "--sandbox", "--name", "Acme CW"))
    assert code == 0, out
    assert "full sync queued" in out

    code, out = await psasync(env, "status")
    assert "Acme CW  [Queued]" in out

    code, out = await psasync(env, "sync", "Acme CW", "--wait-for-worker", "0")
    assert code == 0, out
    assert "SUCCEEDED" in out
    assert "created" in out

    code, out = await psasync(env, "status")
    assert "Acme CW  [OK]" in out
    assert "last success:" in out
    assert "unchanged" in out


async def test_cli_dry_run_writes_nothing(psa: Psa, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    code, out = await psasync(env, *add_args(psa, "--sandbox", "--name", "Dry"))
    assert code == 0, out
    code, out = await psasync(env, "sync", "Dry", "--dry-run", "--wait-for-worker", "0")
    assert code == 0, out
    assert "dry run: nothing written" in out


async def test_serve_starts_the_demo_psa_and_syncs_it_to_ok(tmp_path: Path) -> None:
    port, demo_port = free_port(), free_port()
    env = cli_env(tmp_path, PSASYNC_PORT=str(port), PSASYNC_DEMO_PORT=str(demo_port))
    server = await asyncio.create_subprocess_exec(
        PSASYNC, "serve", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(600):
                try:
                    health = await http.get("/healthz")
                    if health.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.returncode is None, "the service exited"
                await asyncio.sleep(0.1)
            assert health.json()["status"] == "ok"
            assert health.json()["worker"] is True
        for _ in range(600):
            _code, out = await psasync(env, "status")
            if "[OK]" in out:
                break
            await asyncio.sleep(0.5)
        assert "Demo ConnectWise (simulator)  [OK]" in out
        assert "SUCCEEDED" in out
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(server.communicate(), timeout=30)
    # uvicorn shuts down, then re-raises the SIGTERM it captured: -15 after a clean stop.
    assert server.returncode in (0, -signal.SIGTERM)
    assert b"Application shutdown complete" in err


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PSASYNC_PORT", "eighty", "PSASYNC_PORT must be a port number"),
        ("PSASYNC_SECRET_KEY", "not-a-key", "PSASYNC_SECRET_KEY must be 32 url-safe"),
    ],
)
async def test_bad_settings_are_named_clearly(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    code, out = await psasync(cli_env(tmp_path, **{variable: value}), "status")
    assert code != 0
    assert message in out
