"""``make run``'s demo with the README's defaults: its simulator's callbacks are verified and
processed (issue 15, item 7: they were all refused 401 unless PSASYNC_ALLOW_SANDBOX was set)."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

PSASYNC = str(Path(sys.executable).with_name("psasync"))
WEBHOOKS = """{ integrations { id name statusLabel
    webhooks { registered rejectedSignatures last24h { processed } } } }"""
NAMES = "{ organizations(first: 100) { edges { node { name } } } }"
# api/demo.py's loopback-only toy credentials.
DEMO_AUTH = "Basic " + base64.b64encode(b"demo+demo-public:demo-private").decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve(
    tmp_path: Path, port: int, demo_port: int
) -> tuple[asyncio.subprocess.Process, str]:
    """``psasync serve`` as ``make run`` starts it (no PSASYNC_* but a database, a key file and
    free ports); the demo API key its banner prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSASYNC_")}
    env.update(
        PSASYNC_DATABASE_URL=f"sqlite://{tmp_path / 'demo.db'}",
        PSASYNC_SECRET_KEY_FILE=str(tmp_path / "secret.key"),
        PSASYNC_PORT=str(port),
        PSASYNC_DEMO_PORT=str(demo_port),
    )
    server = await asyncio.create_subprocess_exec(
        PSASYNC, "serve", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert server.stdout is not None
    async with asyncio.timeout(60):
        while True:
            line = (await server.stdout.readline()).decode()
            assert line, "the service exited before printing the demo key"
            if "API key:" in line:
                return server, line.split("API key:")[1].strip()


async def until(check: Any, what: str, attempts: int = 480) -> Any:
    for _ in range(attempts):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"waited in vain for {what}")


async def test_the_demo_simulators_callbacks_are_processed_with_the_readme_defaults(
    tmp_path: Path,
) -> None:
    port, demo_port = free_port(), free_port()
    server, key = await serve(tmp_path, port, demo_port)
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as service,
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{demo_port}/v2025_1/apis/3.0",
                headers={"Authorization": DEMO_AUTH, "clientId": "a-psa-user"},
                timeout=30,
            ) as connectwise,
        ):

            async def graphql(query: str) -> Any:
                try:
                    answer = await service.post(
                        "/graphql",
                        json={"query": query},
                        headers={"Authorization": f"Bearer {key}"},
                    )
                except httpx.TransportError:
                    return None
                return answer.json()["data"]

            async def synced_and_registered() -> Any:
                data = await graphql(WEBHOOKS)
                (demo,) = data["integrations"] if data else [None]
                ok = demo and demo["statusLabel"] == "OK" and demo["webhooks"]["registered"]
                return demo if ok else None

            await until(synced_and_registered, "the first sync and the callback registrations")

            # A PSA user renames a company in ConnectWise: the simulator posts a callback.
            (company,) = (await connectwise.get("/company/companies?pageSize=1")).json()
            renamed = f"{company['name']} (renamed in the PSA)"
            patch = [{"op": "replace", "path": "name", "value": renamed}]
            edited = await connectwise.patch(f"/company/companies/{company['id']}", json=patch)
            assert edited.status_code == 200, edited.text

            async def processed() -> Any:
                data = await graphql(WEBHOOKS)
                demo = data["integrations"][0] if data else None
                if demo is None:
                    return None
                assert demo["webhooks"]["rejectedSignatures"] == 0  # refused: fail at once
                return demo if demo["webhooks"]["last24h"]["processed"] else None

            demo = await until(processed, "the callback to be processed")
            assert demo["webhooks"]["rejectedSignatures"] == 0
            names = await graphql(NAMES)
            assert renamed in [e["node"]["name"] for e in names["organizations"]["edges"]]
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.communicate(), timeout=30)
