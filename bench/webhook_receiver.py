"""Webhook receiver benchmark: signed ConnectWise callbacks into the inbox, against a bare
endpoint on the same server stack.

    .venv/bin/python bench/webhook_receiver.py                  # 32 connections, 10 s, SQLite
    .venv/bin/python bench/webhook_receiver.py --seconds 20 --connections 64
    .venv/bin/python bench/webhook_receiver.py --postgres postgres://postgres@127.0.0.1:5432/psasync_bench
    .venv/bin/python bench/webhook_receiver.py --profile /tmp/prof  # cProfile of the service
    .venv/bin/python bench/webhook_receiver.py --busy-api       # the same, under GraphQL load

Processes, all on 127.0.0.1:

    service    the real app (``api.app.create_app``, worker off, so the inbox only fills) under
               uvicorn (uvloop and httptools when installed), on a fresh database holding one
               account and one sandbox ConnectWise integration;
    key        a tiny signing-key endpoint the integration's site URL points at (a thread of
               this process; the receiver fetches the key once and caches it);
    load       ``wrk`` with a Lua script when it is on PATH, else a raw-socket asyncio load
               generator in its own process (no HTTP client library: keep-alive connections,
               pre-built requests): ``--connections`` connections, each posting valid signed
               callbacks (unique MessageIds) one after another, ``--warmup`` s then
               ``--seconds`` s measured;
    bare       the limit: a Starlette endpoint that only reads the body and answers the same
               tiny JSON, under the same uvicorn settings, driven the same way.

Then the inbox is checked: every accepted delivery stored exactly once (rows = accepted,
distinct dedupe keys = accepted). Targets (2 cores, SQLite): >= 4,000 accepted/s, p99 <= 25 ms,
accepted/s >= 0.15 x the bare endpoint's, zero lost or duplicated. Not part of ``make test``.

``--busy-api``: the same callbacks while ``--api-clients`` GraphQL clients (2) send, back to
back, the most expensive query the cost budget allows (``heaviest_query``: aliases of a
500-configuration page with every scalar and the single-object relations, which the node
count does not charge for), with an API key of a seeded account (``bench/graphql_page.py``'s
seeding). Target: callbacks answered within 1 s at p99 (ConnectWise gives up after 5 s); the
query's cost, wall time and response size are reported. No bare-endpoint run in this mode.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common  # bench/common.py: this script's directory is on sys.path

SCRIPT = Path(__file__).resolve()
PACKAGES = ("webhooks", "api", "models", "sync")
SQLITE_OPTIONS = "journal_mode=WAL&synchronous=NORMAL&busy_timeout=10000"
SIGNING_KEY = "bench-signing-key-0f3a9c"
COMPANY = "benchmsp"
START_TIMEOUT = 60.0

TARGET_ACCEPTED_PER_S = 4_000
TARGET_P99_MS = 25.0
TARGET_RATIO = 0.15
TARGET_BUSY_P99_MS = 1_000.0  # --busy-api: well inside ConnectWise's 5 s callback timeout
BUSY_CONFIGURATIONS = 5_000  # seeded for --busy-api: full 500-row pages

# Every scalar of a configuration and the single-object relations with theirs: the node count
# charges 1 per configuration, so this is the most work one unit of cost can buy.
_HEAVY_PAGE = """configurations(first: 500) { edges { cursor node {
  id name hostname primaryIp defaultGateway macAddress serialNumber assetTag manufacturer
  model operatingSystem installedBy installedAt purchasedAt warrantyExpiresAt notes version
  createdAt updatedAt
  configurationType { id name } configurationStatus { id name }
  organization { id name shortName description version createdAt updatedAt }
  location { id name } contact { id name firstName lastName primaryEmail title }
} } pageInfo { hasNextPage endCursor } }"""


def heaviest_query(max_cost: int) -> str:
    """As many aliased 500-configuration pages as the budget allows (each costs 500)."""
    pages = max(1, max_cost // 500)
    return "{ " + " ".join(f"p{i}: {_HEAVY_PAGE}" for i in range(pages)) + " }"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per target")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument("--postgres", help="a PostgreSQL URL whose database name has 'bench'")
    parser.add_argument("--profile", help="write a cProfile of the service process here")
    parser.add_argument("--no-wrk", action="store_true", help="use the Python load generator")
    parser.add_argument(
        "--busy-api", action="store_true", help="GraphQL clients send the costliest query"
    )
    parser.add_argument("--api-clients", type=int, default=2, help="GraphQL clients (--busy-api)")
    parser.add_argument(
        "--role", choices=["service", "bare", "load", "graphql"], help=argparse.SUPPRESS
    )
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--secret-key", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--site", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role in ("service", "bare"):
        _serve(args)
        return 0
    if args.role == "load":
        _install_uvloop()
        print(json.dumps(asyncio.run(_load(args))))
        return 0
    if args.role == "graphql":
        _install_uvloop()
        print(json.dumps(asyncio.run(_graphql_load(args))))
        return 0
    with common.machine_lock(SCRIPT, _say):
        return asyncio.run(_benchmark(args))


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _install_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the servers (subprocesses) ------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> None:
    """The service or the bare endpoint under uvicorn, until SIGTERM."""
    import importlib.util

    import uvicorn

    if args.role == "service":
        from api.app import create_app
        from api.settings import Settings

        settings = Settings(
            database_url=args.database_url,
            secret_keys=(args.secret_key,),
            host="127.0.0.1",
            port=args.port,
            demo="off",
            demo_port=0,
            worker=False,
            log_level="warning",
            allow_sandbox=True,
        )
        app: Any = create_app(settings, migrate_on_start=False)
    else:
        app = _bare_app()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        ws="none",
        lifespan="on",
        log_level="warning",
        access_log=False,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the SIGTERM it shut down for: let it return instead (profile dump).
    signal.signal(signal.SIGTERM, lambda *_: None)
    if not args.profile or args.role != "service":
        server.run()
        return
    import cProfile

    profile = cProfile.Profile()
    profile.enable()
    try:
        server.run()
    finally:
        profile.disable()
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        profile.dump_stats(str(Path(args.profile, "service.prof")))


def _bare_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def bare(request: Request) -> Response:
        await request.body()
        return Response(b'{"status":"stored"}', media_type="application/json")

    return Starlette(routes=[Route("/bare/{provider}/{integration_id}", bare, methods=["POST"])])


class Server:
    """One ``--role`` server in its own process."""

    def __init__(self, role: str, args: argparse.Namespace, **options: str) -> None:
        self.port = _free_port()
        command = [sys.executable, str(SCRIPT), "--role", role, "--port", str(self.port)]
        for name, value in options.items():
            command += [f"--{name.replace('_', '-')}", value]
        if args.profile:
            command += ["--profile", args.profile]
        self.proc = subprocess.Popen(command)

    async def ready(self, path: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode})")
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            status = await reader.readline()
            writer.close()
            if status.startswith(b"HTTP/1.1"):
                return
        raise RuntimeError("the server did not start in time")

    def cpu_seconds(self) -> float:
        import psutil

        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        """SIGTERM: uvicorn shuts down gracefully (the inbox stores what is waiting)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# -- signed callbacks ------------------------------------------------------------------------------


class Callbacks:
    """Valid signed ConnectWise callbacks with unique MessageIds, built from one template."""

    def __init__(self, site: str, port: int, path: str) -> None:
        entity = {
            "id": 0, "identifier": "AcmeBench", "name": "Acme Bench Inc", "status": {"id": 1,
            "name": "Active"}, "types": [{"id": 1, "name": "Client"}], "addressLine1":
            "1 Main St", "city": "Tampa", "state": "FL", "zip": "33601", "phoneNumber":
            "8135550100", "website": "https://acme.example", "territory": {"id": 1, "name":
            "Main"}, "_info": {"lastUpdated": "2026-06-09T21:59:47Z", "updatedBy": "jdoe"},
        }  # fmt: skip
        body = {
            "MessageId": "@@MSG@@",
            "FromUrl": "na.myconnectwise.net",
            "CompanyId": COMPANY,
            "MemberId": "jdoe",
            "Action": "updated",
            "Type": "company",
            "ID": 250,
            "CallbackObjectRecId": 26604,
            "Entity": json.dumps(entity),
            "Metadata": {
                "key_url": f"{site}/v4_6_release//system/callbackkey/index.rails"
                f"?companyName={COMPANY}&id=5b2c6a0e-4d8f-4b8e-9a55-1c1f0e7f2a10"
            },
        }
        self.head, self.tail = json.dumps(body).encode().split(b"@@MSG@@")
        self.mac_key = hashlib.sha256(SIGNING_KEY.encode()).digest()
        self.run = uuid.uuid4().hex[:12]
        self.request_line = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()

    def body(self, n: int) -> bytes:
        return self.head + f"{self.run}-{n:010d}".encode() + self.tail

    def signature(self, body: bytes) -> bytes:
        return base64.b64encode(hmac.new(self.mac_key, body, hashlib.sha256).digest())

    def request(self, n: int) -> bytes:
        body = self.body(n)
        return b"".join(
            (
                self.request_line,
                b"Content-Type: application/json\r\nContent-Length: ",
                str(len(body)).encode(),
                b"\r\nx-content-signature: ",
                self.signature(body),
                b"\r\n\r\n",
                body,
            )
        )


# -- the load generator (a subprocess) -------------------------------------------------------------


async def _load(args: argparse.Namespace) -> dict[str, Any]:
    """Keep-alive connections posting callbacks back to back; latencies of the measured window."""
    callbacks = Callbacks(args.site, args.port, args.path)
    clock = time.perf_counter  # uvloop's loop.time() has millisecond resolution
    started = clock()
    measure_from = started + args.warmup
    stop_at = measure_from + args.seconds
    counter = iter(range(10**12))
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    measured_ok = 0
    errors = 0

    async def connection() -> None:
        nonlocal measured_ok, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        try:
            while True:
                request = callbacks.request(next(counter))
                sent = clock()
                if sent >= stop_at:
                    return
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                done = clock()
                statuses[status] += 1
                if sent >= measure_from:
                    latencies.append(done - sent)
                    if status == 200:
                        measured_ok += 1
                if b"connection: close" in head.lower():
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(args.connections)))
    latencies.sort()
    return {
        "generator": "python",
        "accepted": statuses.get(200, 0),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": errors,
        "measured_ok": measured_ok,
        "measured_s": args.seconds,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
    }


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


async def _graphql_load(args: argparse.Namespace) -> dict[str, Any]:
    """``--api-clients`` keep-alive connections sending the heaviest query back to back."""
    from api.graphql.cost import MAX_COST

    body = json.dumps({"query": heaviest_query(MAX_COST)}).encode()
    request = (
        f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
        f"Authorization: Bearer {args.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    clock = time.perf_counter
    stop_at = clock() + args.seconds
    walls: list[float] = []
    sizes: list[int] = []
    statuses: Counter[int] = Counter()
    errors: list[str] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        try:
            while clock() < stop_at:
                sent = clock()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                answer = await reader.readexactly(length)
                walls.append(clock() - sent)
                sizes.append(len(answer))
                statuses[int(head[9:12])] += 1
                if b'"errors"' in answer[:200] and len(errors) < 3:
                    errors.append(answer[:300].decode(errors="replace"))
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(args.api_clients)))
    walls.sort()
    return {
        "queries": len(walls),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": errors,
        "wall_p50_ms": _percentile(walls, 0.50) * 1000,
        "wall_max_ms": (walls[-1] if walls else float("nan")) * 1000,
        "bytes": max(sizes, default=0),
    }


async def _run_load(
    args: argparse.Namespace, server: Server, path: str, site: str
) -> dict[str, Any]:
    if shutil.which("wrk") and not args.no_wrk:
        return await _run_wrk(args, server, path, site)
    command = [
        sys.executable, str(SCRIPT), "--role", "load", "--port", str(server.port),
        "--path", path, "--site", site, "--seconds", str(args.seconds),
        "--warmup", str(args.warmup), "--connections", str(args.connections),
    ]  # fmt: skip
    before = _cpu(server)
    process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed ({process.returncode})")
    result: dict[str, Any] = json.loads(out)
    result.update(_cpu_used(before, _cpu(server)))
    return result


def _cpu(server: Server) -> dict[str, float]:
    """CPU seconds so far: the machine's (busy, stolen), the server's, this process's
    children's (the load generator or wrk, once reaped)."""
    import resource

    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as stat:
        fields = [int(v) / tick for v in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall": time.monotonic(),
        "busy": user + nice + system + irq + softirq,
        "steal": steal,
        "server": server.cpu_seconds(),
        "load": children.ru_utime + children.ru_stime,
    }


def _cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    used = {key: after[key] - before[key] for key in before}
    return {
        "server_cpu_s": used["server"],
        "load_cpu_s": used["load"],
        "others_cpu_s": max(0.0, used["busy"] - used["server"] - used["load"]),
        "steal_s": used["steal"],
        "wall_s": used["wall"],
    }


# wrk: Lua has no HMAC, so the requests are signed ahead, one file per wrk thread
# ("signature body" lines), read as they are sent; a file that runs out starts again, and
# ``done`` reports how often (those repeats are duplicates, answered 200 and stored once).
_WRK_SCRIPT = """
local threads = {}
function setup(thread)
  thread:set("slice", #threads)
  table.insert(threads, thread)
end
function init(args)
  file = io.open(os.getenv("WEBHOOK_REQUESTS") .. "." .. slice, "rb")
  wraps = 0
end
function request()
  local line = file:read("*l")
  if line == nil then
    wraps = wraps + 1
    file:seek("set", 0)
    line = file:read("*l")
  end
  local sig, body = line:match("^(%S+) (.*)$")
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json", ["x-content-signature"] = sig }, body)
end
function done(summary, latency, requests)
  local wrapped = 0
  for _, thread in ipairs(threads) do wrapped = wrapped + thread:get("wraps") end
  io.write(string.format('{"p50_us": %d, "p99_us": %d, "wraps": %d}\\n',
    latency:percentile(50), latency:percentile(99), wrapped))
end
"""
WRK_THREADS = 2
WRK_POOL_RATE = 15_000  # unique requests signed per second of the run


async def _run_wrk(
    args: argparse.Namespace, server: Server, path: str, site: str
) -> dict[str, Any]:
    """``wrk -t2``: a warm-up run, then the measured run, each with its own requests."""
    callbacks = Callbacks(site, server.port, path)
    workdir = Path(tempfile.mkdtemp(prefix="psasync-wrk-"))
    try:
        before = _cpu(server)
        warm = await _wrk_once(args, server, path, callbacks, workdir, "warm", args.warmup, 0)
        pool = int(WRK_POOL_RATE * args.seconds) // WRK_THREADS + 1
        first = warm["pool"] * WRK_THREADS
        run = await _wrk_once(args, server, path, callbacks, workdir, "run", args.seconds, first)
        after = _cpu(server)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    accepted = warm["accepted"] + run["accepted"]
    unique = min(warm["accepted"], warm["pool"] * WRK_THREADS) + min(
        run["accepted"], pool * WRK_THREADS
    )
    return {
        "generator": "wrk",
        "accepted": accepted,
        "unique": unique,  # repeats of a wrapped request file are duplicates by design
        "statuses": {"2xx": accepted, "other": warm["other"] + run["other"]},
        "errors": warm["errors"] + run["errors"],
        "measured_ok": run["accepted"],
        "measured_s": run["seconds"],
        "p50_ms": run["p50_us"] / 1000,
        "p99_ms": run["p99_us"] / 1000,
        **_cpu_used(before, after),
        "wraps": run["wraps"] + warm["wraps"],
        # wrk stops with a request in flight on each connection: sent (and stored), its
        # answer never counted.
        "unanswered": 2 * args.connections,
    }


def _sign_requests(callbacks: Callbacks, requests: Path, first: int, pool: int) -> None:
    for slice_ in range(WRK_THREADS):
        with Path(f"{requests}.{slice_}").open("wb") as listing:
            for n in range(first + slice_ * pool, first + (slice_ + 1) * pool):
                body = callbacks.body(n)
                listing.write(callbacks.signature(body) + b" " + body + b"\n")


async def _wrk_once(
    args: argparse.Namespace,
    server: Server,
    path: str,
    callbacks: Callbacks,
    workdir: Path,
    tag: str,
    seconds: float,
    first: int,
) -> dict[str, Any]:
    pool = max(1_000, int(WRK_POOL_RATE * seconds) // WRK_THREADS + 1)
    requests = workdir / f"{tag}.txt"
    await asyncio.to_thread(_sign_requests, callbacks, requests, first, pool)
    script = workdir / "webhooks.lua"
    script.write_text(_WRK_SCRIPT)
    env = {**os.environ, "WEBHOOK_REQUESTS": str(requests)}
    duration = max(1, round(seconds))
    process = await asyncio.create_subprocess_exec(
        "wrk", "-t", str(WRK_THREADS), "-c", str(args.connections), "-d", f"{duration}s",
        "-s", str(script), f"http://127.0.0.1:{server.port}{path}",
        stdout=subprocess.PIPE, env=env,
    )  # fmt: skip
    out, _ = await process.communicate()
    text = out.decode()
    if process.returncode != 0 or " requests in " not in text:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{text}")
    done = int(text.split(" requests in ")[0].split()[-1])
    other = errors = 0
    for line in text.splitlines():
        if "Non-2xx or 3xx responses:" in line:
            other = int(line.split(":")[1])
        if "Socket errors:" in line:
            errors = sum(int(part.split()[-1]) for part in line.split(":", 1)[1].split(","))
    tail = json.loads(text.strip().splitlines()[-1])
    return {
        "accepted": done - other,
        "other": other,
        "errors": errors,
        "seconds": float(duration),
        "pool": pool,
        **tail,
    }


# -- the run ---------------------------------------------------------------------------------------


async def _key_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps({"signing_key": SIGNING_KEY}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _benchmark(args: argparse.Namespace) -> int:
    from tortoise import Tortoise

    from models.db import migrate, tortoise_config
    from models.vault import Vault
    from simulators.connectwise import serve_in_thread

    workdir = Path(tempfile.mkdtemp(prefix="psasync-webhooks-bench-"))
    url = args.postgres or f"sqlite://{workdir / 'webhooks.db'}?{SQLITE_OPTIONS}"
    sources = common.sources_fingerprint(PACKAGES)
    load_before = os.getloadavg()[0]
    secret_key = Vault.generate_key()
    service: Server | None = None
    bare: Server | None = None
    try:
        await common.fresh_database(url)
        await migrate(url)
        backend = await common.describe_backend(url)
        async with serve_in_thread(_key_app) as site:
            await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
            integration_id = await _integration(site, secret_key)

            api_key = await _seed_api(args) if args.busy_api else None
            await Tortoise.close_connections()

            path = f"/webhooks/connectwise/{integration_id}"
            service = Server("service", args, database_url=url, secret_key=secret_key)
            await service.ready("/healthz")
            _say(f"service: {args.connections} connections, {args.warmup:g} s warm-up, "
                 f"{args.seconds:g} s measured ...")  # fmt: skip
            if api_key is not None:
                _say(f"  ... while {args.api_clients} GraphQL clients send the heaviest query")
                api = asyncio.create_task(_run_graphql(args, service, api_key))
                await asyncio.sleep(1.0)  # the queries are under way before measuring
                served = await _run_load(args, service, path, site)
                busy = await api
                service.stop()
                load = f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
                return _report_busy(args, backend, sources, load, served, busy)
            served = await _run_load(args, service, path, site)
            service.stop()
            if args.profile:
                common.print_profile("service process", str(Path(args.profile, "service.prof")))

            bare = Server("bare", args)
            await bare.ready("/")
            _say("bare endpoint (the limit) ...")
            limit = await _run_load(args, bare, f"/bare/connectwise/{integration_id}", site)
            bare.stop()

        await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
        inbox = await _inbox(integration_id)
        await Tortoise.close_connections()
        load = f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after (1-min load average)"
        return _report(args, backend, sources, load, served, limit, inbox)
    finally:
        for server in (service, bare):
            if server is not None:
                server.stop()
        if args.postgres:
            with contextlib.suppress(Exception):
                await Tortoise.close_connections()
                await common.drop_database(args.postgres)
        shutil.rmtree(workdir, ignore_errors=True)


async def _seed_api(args: argparse.Namespace) -> str:
    """An account with configurations to page through; its API key."""
    import graphql_page  # bench/graphql_page.py: its seeding

    _say(f"seeding {BUSY_CONFIGURATIONS:,} configurations for the GraphQL clients ...")
    seeded = await graphql_page._seed(
        argparse.Namespace(seed=7, configurations=BUSY_CONFIGURATIONS)
    )
    return seeded.key


async def _run_graphql(args: argparse.Namespace, server: Server, key: str) -> dict[str, Any]:
    seconds = args.warmup + args.seconds + 3.0  # over the whole webhook run
    command = [
        sys.executable, str(SCRIPT), "--role", "graphql", "--port", str(server.port),
        "--key", key, "--seconds", str(seconds), "--api-clients", str(args.api_clients),
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the GraphQL clients failed ({process.returncode})")
    result: dict[str, Any] = json.loads(out)
    return result


def heaviest_cost() -> tuple[int, int]:
    """The heaviest query's cost as the API counts it, and the budget."""
    from graphql import parse, validate

    from api.graphql.cost import MAX_COST, cost_rule
    from api.graphql.schema import schema

    errors = validate(schema._schema, parse(heaviest_query(MAX_COST)), [cost_rule(0, {}, None)])
    extensions = errors[0].extensions if errors else None
    if not extensions:
        raise RuntimeError(f"the heaviest query was not priced: {errors}")
    return int(extensions["cost"]), MAX_COST


async def _integration(site: str, secret_key: str) -> uuid.UUID:
    from models import Account, Integration, Provider
    from models.vault import Vault

    account = await Account.create(name="Bench webhooks")
    integration = Integration(
        account=account,
        provider=Provider.CONNECTWISE_MANAGE,
        name="Bench ConnectWise",
        site_url=site,
        sandbox=True,
    )
    integration.set_credentials(
        Vault([secret_key]),
        {"site_url": site, "company_id": COMPANY, "public_key": "p", "private_key": "k",
         "client_id": "psasync-bench"},
    )  # fmt: skip
    await integration.save()
    return uuid.UUID(str(integration.id))


async def _inbox(integration_id: uuid.UUID) -> dict[str, int]:
    from tortoise import connections

    from models import WebhookDelivery

    rows = await WebhookDelivery.filter(integration_id=integration_id).count()
    db = connections.get("default")
    placeholder = "$1" if db.capabilities.dialect == "postgres" else "?"
    result = await db.execute_query_dict(
        "SELECT COUNT(DISTINCT dedupe_key) AS n FROM webhook_delivery "  # noqa: S608
        f"WHERE integration_id = {placeholder}",
        [str(integration_id)],
    )
    pending = await WebhookDelivery.filter(integration_id=integration_id, status="PENDING").count()
    return {"rows": rows, "distinct": int(result[0]["n"]), "pending": pending}


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def _report(
    args: argparse.Namespace,
    backend: str,
    sources: str,
    load: str,
    served: dict[str, Any],
    limit: dict[str, Any],
    inbox: dict[str, int],
) -> int:
    import platform

    rate = served["measured_ok"] / served["measured_s"]
    bare_rate = limit["measured_ok"] / limit["measured_s"]
    ratio = rate / bare_rate if bare_rate else 0.0
    accepted = served["accepted"]
    unique = served.get("unique", accepted)  # wrk may repeat requests (see _WRK_SCRIPT)
    unanswered = served.get("unanswered", 0)  # wrk: requests in flight when it stopped
    lost = max(0, unique - inbox["distinct"])
    extra = inbox["distinct"] - unique  # stored but not counted as answered
    duplicated = inbox["rows"] - inbox["distinct"]
    checks = {
        "rate": rate >= TARGET_ACCEPTED_PER_S,
        "p99": served["p99_ms"] <= TARGET_P99_MS,
        "ratio": ratio >= TARGET_RATIO,
        "inbox": lost == 0 and duplicated == 0 and 0 <= extra <= unanswered,
    }
    print()
    print(f"psasync webhook benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"  machine: {os.cpu_count()} CPUs ({_cpu_model()}), "
          f"{platform.python_implementation()} {platform.python_version()}, {backend}")  # fmt: skip
    print(f"  server: uvicorn, {_stack()}; load: {served['generator']} generator, "
          f"{args.connections} connections, "
          f"{args.warmup:g} s warm-up + {args.seconds:g} s")  # fmt: skip
    print(f"  {sources}")
    print(f"  load: {load}")
    print()
    common.table(
        "Signed ConnectWise callbacks into the inbox",
        [
            ("accepted deliveries", f"{rate:,.0f}/s",
             f"target >= {TARGET_ACCEPTED_PER_S:,}: {common.verdict(checks['rate'])}"),
            ("latency p50", f"{served['p50_ms']:.2f} ms", ""),
            ("latency p99", f"{served['p99_ms']:.2f} ms",
             f"target <= {TARGET_P99_MS:g} ms: {common.verdict(checks['p99'])}"),
            ("bare endpoint (limit)", f"{bare_rate:,.0f}/s",
             f"p50 {limit['p50_ms']:.2f} ms, p99 {limit['p99_ms']:.2f} ms"),
            ("ratio to the bare endpoint", f"{ratio:.2f}",
             f"target >= {TARGET_RATIO}: {common.verdict(checks['ratio'])}"),
            ("answers (whole run)", f"{accepted:,}",
             f"{unique:,} unique; statuses {served['statuses']}, "
             f"connection errors {served['errors']}"),
            ("inbox rows", f"{inbox['rows']:,}",
             f"{inbox['distinct']:,} distinct dedupe keys, {inbox['pending']:,} PENDING"),
            ("lost / duplicated", f"{lost} / {duplicated}",
             f"target 0 / 0: {common.verdict(checks['inbox'])}"
             + (f"; {extra} stored of the <= {unanswered} requests wrk left in flight"
                if unanswered else "")),
            ("service CPU", f"{served['server_cpu_s'] / served['wall_s']:.0%}",
             f"of one core; load generator {served['load_cpu_s'] / served['wall_s']:.0%}; "
             f"other processes {served['others_cpu_s'] / served['wall_s']:.0%}; "
             f"steal {served['steal_s'] / served['wall_s']:.0%}"),
            ("bare endpoint CPU", f"{limit['server_cpu_s'] / limit['wall_s']:.0%}",
             f"of one core; load generator {limit['load_cpu_s'] / limit['wall_s']:.0%}; "
             f"other processes {limit['others_cpu_s'] / limit['wall_s']:.0%}"),
        ],
    )  # fmt: skip
    return 0


def _report_busy(
    args: argparse.Namespace,
    backend: str,
    sources: str,
    load: str,
    served: dict[str, Any],
    busy: dict[str, Any],
) -> int:
    import platform

    cost, budget = heaviest_cost()
    rate = served["measured_ok"] / served["measured_s"]
    p99_ok = served["p99_ms"] <= TARGET_BUSY_P99_MS
    print()
    print(f"psasync webhook benchmark, busy API, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"  machine: {os.cpu_count()} CPUs ({_cpu_model()}), "
          f"{platform.python_implementation()} {platform.python_version()}, {backend}")  # fmt: skip
    print(f"  server: uvicorn, {_stack()}; load: {served['generator']} generator, "
          f"{args.connections} connections, {args.warmup:g} s warm-up + {args.seconds:g} s; "
          f"{args.api_clients} GraphQL clients")  # fmt: skip
    print(f"  {sources}")
    print(f"  load: {load} (1-min load average)")
    print()
    common.table(
        "Signed ConnectWise callbacks while the API serves its costliest query",
        [
            ("accepted deliveries", f"{rate:,.0f}/s",
             f"statuses {served['statuses']}, connection errors {served['errors']}"),
            ("latency p50", f"{served['p50_ms']:.2f} ms", ""),
            ("latency p99", f"{served['p99_ms']:.2f} ms",
             f"target <= {TARGET_BUSY_P99_MS:,.0f} ms: {common.verdict(p99_ok)}"),
            ("heaviest allowed query", f"cost {cost:,}", f"budget {budget:,} nodes"),
            ("its wall time", f"{busy['wall_p50_ms']:,.0f} ms p50",
             f"max {busy['wall_max_ms']:,.0f} ms; {busy['queries']} answered, "
             f"statuses {busy['statuses']}"),
            ("its response", f"{busy['bytes'] / 1e6:.1f} MB", ""),
            ("service CPU", f"{served['server_cpu_s'] / served['wall_s']:.0%}",
             f"of one core; load generator {served['load_cpu_s'] / served['wall_s']:.0%}; "
             f"other processes {served['others_cpu_s'] / served['wall_s']:.0%}; "
             f"steal {served['steal_s'] / served['wall_s']:.0%}"),
        ],
    )  # fmt: skip
    for error in busy["errors"]:
        print(f"  GraphQL error: {error}")
    return 0 if p99_ok and not busy["errors"] else 1


def _stack() -> str:
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop} + {http}"


if __name__ == "__main__":
    sys.exit(main())
