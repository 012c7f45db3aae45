"""The service and CLI as a user meets them: real processes, real ports, real files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from harness import CREDENTIALS, Psa
from pulseway_contract import Recorder

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


async def test_cli_status_shows_the_last_real_sync_not_a_later_dry_run(
    psa: Psa, tmp_path: Path
) -> None:
    env = cli_env(tmp_path)
    code, out = await psasync(env, *add_args(psa, "--sandbox", "--name", "Dry"))
    assert code == 0, out
    code, out = await psasync(env, "sync", "Dry", "--wait-for-worker", "0")
    assert code == 0, out
    real = out.split("sync queued: run ")[1].split()[0]
    code, before = await psasync(env, "status")
    success = before.split("last success: ")[1].splitlines()[0]

    code, out = await psasync(env, "sync", "Dry", "--dry-run", "--wait-for-worker", "0")
    assert code == 0, out
    dry = out.split("dry run queued: run ")[1].split()[0]
    code, out = await psasync(env, "status")
    assert code == 0, out

    assert f"last success: {success}" in out
    assert f"last run: run {real} SUCCEEDED" in out
    assert f"last run: run {dry}" not in out
    assert f"last dry run: run {dry} SUCCEEDED" in out  # still findable, said to be one


async def test_cli_turns_two_way_on_and_previews_push_all(psa: Psa, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    code, out = await psasync(env, *add_args(psa, "--sandbox", "--name", "Switch"))
    assert code == 0, out
    code, out = await psasync(env, "push-all", "Switch", "--dry-run", "--wait-for-worker", "0")
    assert code != 0  # two-way is off: nothing may be pushed
    assert "turn it on" in out

    code, out = await psasync(env, "integrations", "settings", "Switch", "--two-way")
    assert code == 0, out
    code, out = await psasync(
        env, "push-all", "Switch", "--dry-run", "--kind", "organization", "--wait-for-worker", "0"
    )
    assert code == 0, out
    assert "SUCCEEDED" in out
    assert "dry run: nothing written" in out


async def start_service(env: dict[str, str], port: int) -> tuple[asyncio.subprocess.Process, str]:
    """Start `psasync serve`; return it and the demo API key its banner printed."""
    server = await asyncio.create_subprocess_exec(
        PSASYNC, "serve", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert server.stdout is not None
    key = None
    async with asyncio.timeout(60):
        while key is None:
            line = (await server.stdout.readline()).decode()
            if not line:
                assert server.stderr is not None
                errors = (await server.stderr.read()).decode(errors="replace")
                raise AssertionError(f"the service exited before printing the demo key:\n{errors}")
            if "API key:" in line:
                key = line.split("API key:")[1].strip()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for _ in range(600):
            try:
                if (await http.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    return server, key


async def stop_service(server: asyncio.subprocess.Process) -> bytes:
    server.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(server.communicate(), timeout=30)
    # uvicorn shuts down, then re-raises the SIGTERM it captured: -15 after a clean stop.
    assert server.returncode in (0, -signal.SIGTERM)
    return err


INTEGRATIONS = "{ viewer { role } integrations { name statusLabel lastRun { status } } }"


async def test_serve_runs_the_demo_a_newcomer_can_query_with_the_printed_key(
    tmp_path: Path,
) -> None:
    port, demo_port = free_port(), free_port()
    env = cli_env(tmp_path, PSASYNC_PORT=str(port), PSASYNC_DEMO_PORT=str(demo_port))
    server, key = await start_service(env, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            auth = {"Authorization": f"Bearer {key}"}
            for _ in range(600):
                body = (await http.post("/graphql", json={"query": INTEGRATIONS},
                                        headers=auth)).json()  # fmt: skip
                (integration,) = body["data"]["integrations"]
                if integration["statusLabel"] == "OK":
                    break
                await asyncio.sleep(0.25)
            assert body["data"]["viewer"]["role"] == "ADMINISTRATOR"
            assert integration == {
                "name": "Demo ConnectWise (simulator)",
                "statusLabel": "OK",
                "lastRun": {"status": "SUCCEEDED"},
            }
            # A key made with the CLI works against the running service.
            code, out = await psasync(env, "keys", "create", "--account", "Demo MSP",
                                      "--role", "viewer")  # fmt: skip
            assert code == 0, out
            viewer_key = out.strip().splitlines()[-1]
            seen = await http.post("/graphql", json={"query": "{ viewer { role } }"},
                                   headers={"Authorization": f"Bearer {viewer_key}"})  # fmt: skip
            assert seen.json()["data"]["viewer"]["role"] == "VIEWER"
            assert (await http.post("/graphql", json={"query": INTEGRATIONS})).status_code == 401
    finally:
        err = await stop_service(server)
    assert b"Application shutdown complete" in err

    # A second start reuses the database: the same demo, the same key, nothing duplicated.
    server, again = await start_service(env, port)
    try:
        assert again == key
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            body = (await http.post("/graphql", json={"query": INTEGRATIONS},
                                    headers={"Authorization": f"Bearer {key}"})).json()  # fmt: skip
        assert len(body["data"]["integrations"]) == 1
    finally:
        await stop_service(server)
    code, out = await psasync(env, "status")
    assert out.count("Demo ConnectWise (simulator)") == 1


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


PSA_LINKS = """{ integrations { name statusLabel }
  organizations(first: 100) { edges { node { name
    psaLinks { psaId state integration { name } } } } } }"""


async def test_the_demo_can_run_pulseway_psa_beside_connectwise(tmp_path: Path) -> None:
    """The switch-PSA story's starting point: both demo integrations, and the clients both
    PSAs have are one organization with two links."""
    port, demo_port = free_port(), free_port()
    env = cli_env(
        tmp_path,
        PSASYNC_PORT=str(port),
        PSASYNC_DEMO_PORT=str(demo_port),
        PSASYNC_DEMO_PROVIDERS="connectwise,pulseway",
        # The demo's Pulseway budget would spread its first sync over a minute.
        PSASYNC_PULSEWAY_CALLS_PER_HOUR="1000000",
    )
    # Pulseway's demo port is the next one; something else has it: the demo goes on anyway.
    with socket.socket() as taken:
        with contextlib.suppress(OSError):  # already busy: as good
            taken.bind(("127.0.0.1", demo_port + 1))
            taken.listen()
        server, key = await start_service(env, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            auth = {"Authorization": f"Bearer {key}"}
            for _ in range(600):
                body = (await http.post("/graphql", json={"query": PSA_LINKS},
                                        headers=auth)).json()  # fmt: skip
                labels = {i["name"]: i["statusLabel"] for i in body["data"]["integrations"]}
                if set(labels.values()) == {"OK"}:
                    break
                await asyncio.sleep(0.25)
    finally:
        await stop_service(server)
    assert labels == {
        "Demo ConnectWise (simulator)": "OK",
        "Demo Pulseway PSA (simulator)": "OK",
    }
    names = [edge["node"]["name"] for edge in body["data"]["organizations"]["edges"]]
    assert len(names) == len(set(names))  # nothing duplicated
    linked = {
        edge["node"]["name"]: {
            link["integration"]["name"]
            for link in edge["node"]["psaLinks"]
            if link["psaId"] is not None and link["state"] == "SYNCED"
        }
        for edge in body["data"]["organizations"]["edges"]
    }
    both = [name for name, integrations in linked.items() if integrations == set(labels)]
    assert len(both) == 3
    # The other ConnectWise clients wait for push-all: Pulseway does not have them yet.
    waiting = [
        edge["node"]["name"]
        for edge in body["data"]["organizations"]["edges"]
        if any(link["state"] == "NOT_PUSHED" for link in edge["node"]["psaLinks"])
    ]
    assert waiting


SOAP_DEMO = """{ integrations { name statusLabel lastRun { status } }
  organizations(first: 100) { totalCount edges { node { name
    psaLinks { psaId state integration { name } } } } } }"""


async def test_the_demo_syncs_a_soap_only_connectwise_integration_beside_rest(
    tmp_path: Path,
) -> None:
    """``connectwise-soap``: an integration holding only the integrator login syncs the demo
    simulator's records through its SOAP face (the same store as the REST demo), and a second
    start reuses it."""
    port, demo_port = free_port(), free_port()
    env = cli_env(
        tmp_path,
        PSASYNC_PORT=str(port),
        PSASYNC_DEMO_PORT=str(demo_port),
        PSASYNC_DEMO_PROVIDERS="connectwise,connectwise-soap",
    )
    server, key = await start_service(env, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            auth = {"Authorization": f"Bearer {key}"}
            for _ in range(600):
                body = (await http.post("/graphql", json={"query": SOAP_DEMO},
                                        headers=auth)).json()  # fmt: skip
                states = {
                    i["name"]: (i["statusLabel"], (i["lastRun"] or {}).get("status"))
                    for i in body["data"]["integrations"]
                }
                if set(states.values()) == {("OK", "SUCCEEDED")}:
                    break
                await asyncio.sleep(0.25)
    finally:
        await stop_service(server)
    assert states == {
        "Demo ConnectWise (simulator)": ("OK", "SUCCEEDED"),
        "Demo ConnectWise SOAP (simulator)": ("OK", "SUCCEEDED"),
    }
    organizations = body["data"]["organizations"]
    assert organizations["totalCount"] > 0
    links = {
        edge["node"]["name"]: {
            (link["integration"]["name"], link["psaId"])
            for link in edge["node"]["psaLinks"]
            if link["state"] == "SYNCED"
        }
        for edge in organizations["edges"]
    }
    through_soap = {name: ids for name, ids in links.items() if any("SOAP" in i for i, _ in ids)}
    assert through_soap
    # One store behind both faces: a company reached through SOAP has the same id via REST.
    for ids in through_soap.values():
        assert len({psa_id for _, psa_id in ids}) == 1, ids

    server, _again = await start_service(env, port)
    await stop_service(server)
    code, out = await psasync(env, "status")
    assert code == 0, out
    assert out.count("Demo ConnectWise SOAP (simulator)") == 1


async def test_cli_connects_pulseway_psa_with_two_way_on_and_names_wrong_options(
    tmp_path: Path, pulseway_contract: Recorder
) -> None:
    from simulators.pulseway import (
        ApiCredentials,
        DatasetSpec,
        PulsewaySimulator,
        generate_dataset,
        serve_in_thread,
    )

    login = ApiCredentials(tenant="acme", username="api.user", password="pw-123456")
    simulator = PulsewaySimulator(generate_dataset(DatasetSpec(accounts=3)), credentials=login)
    env = cli_env(tmp_path, PSASYNC_PULSEWAY_PASSWORD=login.password)
    async with serve_in_thread(pulseway_contract.wrap(simulator.app)) as base_url:
        base = ["integrations", "add", "pulseway", "--tenant", "acme", "--user-name"]
        code, out = await psasync(env, *base, "api.user", "--host", base_url, "--site", "x")
        assert code != 0
        assert "--site: not pulseway options" in out

        code, out = await psasync(env, *base, "someone.else", "--host", base_url, "--sandbox")
        assert code != 0
        assert "INVALID_CREDENTIALS" in out
        assert login.password not in out

        code, out = await psasync(env, *base, "api.user", "--host", base_url, "--sandbox")
        assert code == 0, out
        assert "connected Pulseway PSA" in out
        assert "two-way sync: on" in out
    simulator.webhooks.close()
