"""Full-sync benchmark: psasync against a PSA simulator, with the limits beside it.

    .venv/bin/python bench/full_sync.py                       # 20k companies, SQLite
    .venv/bin/python bench/full_sync.py --postgres postgres://postgres@127.0.0.1:5432/psasync_bench
    .venv/bin/python bench/full_sync.py --companies 5000 --profile /tmp/psasync-profile
    .venv/bin/python bench/full_sync.py --provider pulseway --companies 2000
    .venv/bin/python bench/full_sync.py --api soap --companies 300

``--api soap`` (ConnectWise only) also syncs the same dataset through ConnectWise's legacy SOAP
API, in the same run: after the REST report, a SOAP-only integration (the integrator login, no
REST keys) makes a full sync into its own fresh database and a no-change resync, and a last
table sets records/s and requests per 1,000 records (the simulator's request counter: every
REST GET and SOAP POST) side by side for REST and SOAP. ``--api both`` is the same.

``--provider connectwise`` (the default) syncs the ConnectWise simulator; ``--provider
pulseway`` the Pulseway PSA simulator (``--companies`` accounts, each with 1-3 locations;
``--contacts``/``--configurations`` contacts and hardware assets, 4 per account by default;
``--sites`` does not apply). The Pulseway simulator serves at an unlimited call budget and the
engine's client gets a budget it never reaches, so the figures are the engine's; the report adds
the calls the syncs made per endpoint (the simulator's counters), per 1,000 records, and what
they would take at Pulseway's real budget of 1,500 calls per hour per endpoint.

Every measured piece runs in its own fresh process, started from this script with a hidden
``--role``, so each peak RSS belongs to that piece alone:

    simulator   builds the dataset and serves it on 127.0.0.1 (its CPU and memory are not
                the engine's)
    sync        a fresh database, an integration with every type and status enabled (Pulseway:
                two-way sync off), then one full sync, timed (``Worker.run_until_idle``)
    resync      a second full sync of the same integration, nothing changed in the PSA
    limits      (a) every page fetched raw with httpx, as the engine requests them, JSON
                parsed, nothing mapped or written (Pulseway: also every hardware asset read by
                id, as the provider does); (b) the same asset and link rows bulk-inserted with
                plain Tortoise ``bulk_create`` into an empty database

The parent prints one table, with PASS/MISS against the targets, a digest of the engine's
sources (sync/, models/, simulators/) so a figure can be tied to the code it measured, and the load
average (other work on the machine skews every figure). It removes its temp files, databases
and processes however it ends (Ctrl+C, kill; children also die with it). Runs of this script
take a lock on it and queue: two at once would measure each other. All traffic stays on
127.0.0.1. 20k companies take about 8 minutes on SQLite, more on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import common  # bench/common.py: this script's directory is on sys.path
import httpx

SCRIPT = Path(__file__).resolve()
ENGINE_PACKAGES = ("sync", "models", "simulators")
API_VERSION = "2025.1"
PAGE_SIZE = 1000
INSERT_BATCH = 1000
CLIENT_ID = "psasync-bench"
START_TIMEOUT = 900.0  # the simulator builds its dataset before it answers
ROLE_TIMEOUT = 3 * 3600.0  # one measured piece; the script always ends
SQLITE_OPTIONS = "journal_mode=WAL&synchronous=NORMAL&busy_timeout=10000"

# Targets (the brief the engine is held to).
TARGET_RECORDS_PER_S = 10_000  # end to end, SQLite
TARGET_RATIO = 1.5  # engine time / (fetch time + insert time)
TARGET_RSS_MB = 300  # peak RSS of the engine process, MB (10^6 bytes)
TARGET_RESYNC_PER_S = 25_000  # no-change resync, records examined per second

# Pulseway PSA.
PULSEWAY_BUDGET = 1500  # Pulseway's real budget: calls per hour per endpoint
UNLIMITED_CALLS = 10**9  # the engine's client budget in the bench: never reached
PULSEWAY_TENANT = "benchmsp"
PULSEWAY_USER = "psasync.bench"


# ---------------------------------------------------------------------------------- parent


@dataclass(frozen=True)
class Credentials:
    company_id: str
    public_key: str
    private_key: str

    def as_dict(self) -> dict[str, str]:
        return {
            "company_id": self.company_id,
            "public_key": self.public_key,
            "private_key": self.private_key,
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--provider",
        choices=("connectwise", "pulseway"),
        default="connectwise",
        help="the PSA simulator to sync (default: connectwise)",
    )
    parser.add_argument(
        "--companies", type=int, default=20_000, help="companies (Pulseway: accounts)"
    )
    parser.add_argument(
        "--sites",
        type=int,
        default=None,
        help="default: 2 per company (ConnectWise only: Pulseway has 1-3 locations per account)",
    )
    parser.add_argument(
        "--contacts",
        type=int,
        default=None,
        help="default: 5 per company (Pulseway: 4 per account)",
    )
    parser.add_argument(
        "--configurations",
        type=int,
        default=None,
        help="default: 5 per company (Pulseway: hardware assets, 4 per account)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--api",
        choices=("rest", "soap", "both"),
        default="rest",
        help="ConnectWise: soap (or both) adds a SOAP full sync beside REST's, same dataset",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run on PostgreSQL (the database is dropped and created fresh; "
        "the insert limit uses <name>_insert)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run both syncs under cProfile, save sync.prof and resync.prof in DIR and print "
        "their top functions (timings are then inflated by the profiler)",
    )
    parser.add_argument("--role", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        return _child(args.role)
    if args.provider == "pulseway" and args.sites is not None:
        parser.error("--sites does not apply to Pulseway (1-3 locations per account)")
    if args.provider == "pulseway" and args.api != "rest":
        parser.error("--api applies to ConnectWise only (Pulseway PSA has one API)")
    # A plain `kill` should clean up too (the `finally` in _benchmark), not just Ctrl+C.
    signal.signal(signal.SIGTERM, _terminated)
    with common.machine_lock(SCRIPT, _say):
        return _benchmark(args)


def _terminated(signum: int, _frame: object) -> None:
    _say(f"stopped by signal {signum}: cleaning up")
    raise SystemExit(128 + signum)


def _benchmark(args: argparse.Namespace) -> int:
    provider = args.provider
    creds: dict[str, str]
    if provider == "pulseway":
        creds = {
            "tenant": PULSEWAY_TENANT,
            "user_name": PULSEWAY_USER,
            "password": secrets.token_hex(12),
        }
        spec: dict[str, Any] = {
            "accounts": args.companies,
            "contacts": args.contacts,
            "assets": args.configurations,
            "seed": args.seed,
        }
    else:
        creds = Credentials("benchmsp", secrets.token_hex(8), secrets.token_hex(16)).as_dict()
        # The legacy SOAP integrator login, beside the REST keys (--api soap).
        creds["integrator_login_id"] = "psasync-bench"
        creds["integrator_password"] = secrets.token_hex(12)
        spec = {
            "companies": args.companies,
            "sites": args.sites,
            "contacts": args.contacts,
            "configurations": args.configurations,
            "seed": args.seed,
        }
    load_before = os.getloadavg()[0]
    engine_before = common.sources_fingerprint(ENGINE_PACKAGES)
    workdir = Path(tempfile.mkdtemp(prefix="psasync-bench-"))
    simulator: subprocess.Popen[str] | None = None
    databases: list[str] = []
    try:
        if args.postgres:
            sync_db = args.postgres
            insert_db = _sibling_database(args.postgres, "_insert")
            soap_db = _sibling_database(args.postgres, "_soap")
            databases = [sync_db, insert_db, soap_db]
        else:
            sync_db = f"sqlite:///{workdir / 'sync.db'}?{SQLITE_OPTIONS}"
            insert_db = f"sqlite:///{workdir / 'insert.db'}?{SQLITE_OPTIONS}"
            soap_db = f"sqlite:///{workdir / 'soap.db'}?{SQLITE_OPTIONS}"
        backend = asyncio.run(common.describe_backend(sync_db))
        what = "accounts" if provider == "pulseway" else "companies"
        _say(f"starting the {provider} simulator ({args.companies} {what}, seed {args.seed}) ...")
        simulator, sim = _start_simulator(provider, spec, creds, workdir)
        base_url = sim["base_url"]
        _say(f"simulator at {base_url}: {sim['sizes']}")

        shared = {"provider": provider, "base_url": base_url, "credentials": creds}
        profiles: dict[str, str | None] = {"sync": None, "resync": None}
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            profiles = {role: str(Path(args.profile, f"{role}.prof")) for role in profiles}
        vault_key = _vault_key()
        asyncio.run(common.fresh_database(sync_db))
        _say("full sync into a fresh database ...")
        first = _run_role(
            "sync",
            {**shared, "db_url": sync_db, "vault_key": vault_key, "profile": profiles["sync"]},
            workdir,
        )
        _say(f"  {first['wall']:.1f} s; no-change resync ...")
        second = _run_role(
            "resync",
            {
                **shared,
                "db_url": sync_db,
                "vault_key": vault_key,
                "integration_id": first["integration_id"],
                "profile": profiles["resync"],
            },
            workdir,
        )
        _say(f"  {second['wall']:.1f} s; limits: raw fetch, then bulk_create ...")
        asyncio.run(common.fresh_database(insert_db))
        limits = _run_role("limits", {**shared, "db_url": insert_db}, workdir)
        soap: tuple[dict[str, Any], dict[str, Any]] | None = None
        if args.api != "rest":
            soap = _soap_syncs({**shared, "api": "soap"}, soap_db, vault_key, workdir)
        _say("")
        load = f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after (1-min load average)"
        engine = engine_before
        if common.sources_fingerprint(ENGINE_PACKAGES) != engine_before:
            engine += "; WARNING: the engine sources changed during the run"
        _report(args, backend, sim, first, second, limits, load, engine)
        if soap is not None:
            _report_apis((first, second), soap)
        for role, path in profiles.items():
            if path:
                common.print_profile(role, path)
        return 0
    finally:
        if simulator is not None:
            _stop(simulator)
        for url in databases:
            with contextlib.suppress(Exception):
                asyncio.run(common.drop_database(url))
        shutil.rmtree(workdir, ignore_errors=True)


def _soap_syncs(
    config: dict[str, Any], db_url: str, vault_key: str, workdir: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same dataset through SOAP: a full sync into a fresh database, then a resync."""
    asyncio.run(common.fresh_database(db_url))
    _say("SOAP: full sync into a fresh database ...")
    config = {**config, "db_url": db_url, "vault_key": vault_key, "profile": None}
    first = _run_role("sync", config, workdir)
    _say(f"  {first['wall']:.1f} s; SOAP no-change resync ...")
    second = _run_role("resync", {**config, "integration_id": first["integration_id"]}, workdir)
    _say(f"  {second['wall']:.1f} s")
    return first, second


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _vault_key() -> str:
    from models.vault import Vault

    key: str = Vault.generate_key()
    return key


def _start_simulator(
    provider: str, spec: dict[str, Any], creds: dict[str, str], workdir: Path
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Spawn the simulator process and wait until it answers (ConnectWise:
    ``GET /login/companyinfo``; Pulseway: ``GET /__simulator/faults``)."""
    ready = workdir / "simulator.json"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--role", "simulator"],
        stdin=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(
            json.dumps(
                {"provider": provider, "spec": spec, "credentials": creds, "ready": str(ready)}
            )
            + "\n"
        )
        proc.stdin.close()
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the simulator exited with status {proc.returncode}")
                if time.monotonic() > deadline:
                    raise RuntimeError("the simulator did not start in time")
                if ready.exists():
                    info = json.loads(ready.read_text())
                    if provider == "pulseway":
                        url = f"{info['base_url']}/__simulator/faults"
                    else:
                        url = f"{info['base_url']}/login/companyinfo/{creds['company_id']}"
                    with contextlib.suppress(httpx.HTTPError):
                        answer = client.get(url)
                        if answer.status_code == 200 and answer.json():
                            return proc, info
                time.sleep(0.2)
    except BaseException:
        _stop(proc)
        raise


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_role(role: str, config: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Run one measured piece in a fresh process of this script; return what it reported."""
    out = workdir / f"{role}.json"
    out.unlink(missing_ok=True)
    config = {**config, "result": str(out)}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--role", role], stdin=subprocess.PIPE, text=True
    )
    try:
        proc.communicate(json.dumps(config), timeout=ROLE_TIMEOUT)
    finally:
        _stop(proc)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"the {role} process failed (exit status {proc.returncode})")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


# -- databases --------------------------------------------------------------------------------


def _sibling_database(url: str, suffix: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


# -- report -----------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mb(kib: int) -> float:
    return kib * 1024 / 1e6


def _join(items: dict[str, Any], unit: str = "") -> str:
    return ", ".join(
        f"{k} {v:.1f}{unit}" if isinstance(v, float) else f"{k} {v:,}{unit}"
        for k, v in items.items()
    )


def _ram_gb() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / 1e9
    return 0.0


def _busiest(calls: dict[str, int]) -> tuple[str, int]:
    return max(calls.items(), key=lambda item: item[1], default=("(none)", 0))


def _budget_hours(calls: dict[str, int]) -> str:
    endpoint, most = _busiest(calls)
    return (
        f"at {PULSEWAY_BUDGET:,} calls/hour/endpoint this sync would take "
        f">= {most / PULSEWAY_BUDGET:.1f} h ({endpoint}: {most:,} calls)"
    )


def _report_calls(
    records: int,
    sync_calls: dict[str, int],
    examined: int,
    resync_calls: dict[str, int],
    fetch_calls: dict[str, int],
) -> None:
    """PSA calls per endpoint (the simulator's counters), per 1,000 records."""

    def per_k(calls: int, of: int) -> str:
        return f"{1000 * calls / of:.1f}" if of else "-"

    endpoints = sorted(
        set(sync_calls) | set(resync_calls) | set(fetch_calls),
        key=lambda e: (-sync_calls.get(e, 0), e),
    )
    header = ("endpoint", "sync", "/1k rec", "resync", "/1k rec", "raw fetch")
    rows = [
        (
            endpoint,
            f"{sync_calls.get(endpoint, 0):,}",
            per_k(sync_calls.get(endpoint, 0), records),
            f"{resync_calls.get(endpoint, 0):,}",
            per_k(resync_calls.get(endpoint, 0), examined),
            f"{fetch_calls.get(endpoint, 0):,}",
        )
        for endpoint in endpoints
    ]
    totals = (sum(sync_calls.values()), sum(resync_calls.values()), sum(fetch_calls.values()))
    rows.append(
        (
            "total",
            f"{totals[0]:,}",
            per_k(totals[0], records),
            f"{totals[1]:,}",
            per_k(totals[1], examined),
            f"{totals[2]:,}",
        )
    )
    title = (
        f"4. Pulseway PSA calls per endpoint (the simulator's counters; per 1,000 records: "
        f"{records:,} synced, {examined:,} examined by the resync)"
    )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(title)
    print("-" * len(title))
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  " + "  ".join(cells))
    print()
    print(f"  sync:   {_budget_hours(sync_calls)}")
    print(f"  resync: {_budget_hours(resync_calls)}")
    print()


def _report(
    args: argparse.Namespace,
    backend: str,
    sim: dict[str, Any],
    first: dict[str, Any],
    second: dict[str, Any],
    limits: dict[str, Any],
    load: str,
    engine: str,
) -> None:
    sqlite = not args.postgres
    created = first["counts"].get("created", 0)
    rate = created / first["wall"]
    rss_mb = _mb(first["maxrss_kib"])
    fetch, insert = limits["fetch_wall"], limits["insert_wall"]
    ratio = first["wall"] / (fetch + insert)
    examined = second["processed"]
    resync_rate = examined / second["wall"]
    written = second["rows_written"]
    rate_ok = rate >= TARGET_RECORDS_PER_S
    resync_ok = written == 0 and resync_rate >= TARGET_RESYNC_PER_S
    pulseway = args.provider == "pulseway"
    if pulseway:
        fetched_note = (
            f"{limits['requests']:,} requests ({limits['account_requests']:,} account reads "
            f"for locations, {limits['in_flight']} in flight; {limits['asset_requests']:,} "
            f"hardware assets by id, {limits['asset_in_flight']} in flight), "
            f"{limits['records']:,} records; client CPU {limits['fetch_cpu']:.1f} s"
        )
    else:
        fetched_note = (
            f"{limits['requests']:,} requests ({limits['site_requests']:,} site lists, "
            f"{limits['in_flight']} in flight), {limits['records']:,} records; "
            f"client CPU {limits['fetch_cpu']:.1f} s"
        )

    print("Machine")
    print("-------")
    print(f"  CPU       {_cpu_model()}, {os.cpu_count()} cores, {_ram_gb():.0f} GB RAM")
    if pulseway:
        print(
            "  PSA       Pulseway PSA simulator, unlimited budget (calls_per_hour=0); engine "
            f"client budget {UNLIMITED_CALLS:,} calls/hour/endpoint"
        )
    print(f"  Python    {platform.python_version()} ({platform.python_implementation()})")
    print(f"  database  {backend}")
    print(f"  dataset   {sim['sizes']} (seed {args.seed})")
    print(f"  load      {load}")
    print(f"  engine    {engine}")
    print()
    profiled = " (under cProfile: slower than normal)" if args.profile else ""
    common.table(
        f"1. Full sync into a fresh database{profiled}",
        [
            ("wall time", f"{first['wall']:.1f} s", f"engine CPU {first['cpu']:.1f} s"),
            (
                "records synced",
                f"{created:,}",
                "created (organizations+locations+contacts+configs)",
            ),
            *(
                [("  PSA calls", f"{sum(first['calls'].values()):,}", "all endpoints (below)")]
                if pulseway
                else []
            ),
            ("  in the database", f"{sum(first['tables'].values()):,}", _join(first["tables"])),
            ("  run counts", f"{first['processed']:,}", f"processed: {_join(first['counts'])}"),
            (
                "  rows written",
                f"{first['rows_written']:,}",
                "asset + link rows, as the engine counts them (ctx.rows_written)",
            ),
            ("  run status", first["status"], first.get("error") or ""),
            (
                "records/s",
                f"{rate:,.0f}",
                f"target >= {TARGET_RECORDS_PER_S:,} (SQLite): {common.verdict(rate_ok)}"
                if sqlite
                else f"(the {TARGET_RECORDS_PER_S:,}/s target is for SQLite)",
            ),
            (
                "peak RSS (engine)",
                f"{rss_mb:.0f} MB",
                f"{first['maxrss_kib'] / 1024:.0f} MiB; target <= {TARGET_RSS_MB} MB: "
                f"{common.verdict(rss_mb <= TARGET_RSS_MB)}",
            ),
            ("  phases", "", _join(first["phases"], "s")),
        ],
    )
    common.table(
        "2. Limits, measured in the same run",
        [
            ("(a) raw fetch", f"{fetch:.1f} s", fetched_note),
            ("", "", _join(limits["fetch_seconds"], "s")),
            (
                "(b) bulk_create",
                f"{insert:.1f} s",
                f"{limits['asset_rows']:,} asset + {limits['link_rows']:,} link rows, "
                f"batches of {INSERT_BATCH}, one transaction per batch",
            ),
            ("fetch + insert", f"{fetch + insert:.1f} s", ""),
            (
                "engine / (fetch + insert)",
                f"{ratio:.3f}",
                f"target <= {TARGET_RATIO}: {common.verdict(ratio <= TARGET_RATIO)}",
            ),
        ],
    )
    common.table(
        f"3. Second full sync, nothing changed{profiled}",
        [
            ("wall time", f"{second['wall']:.1f} s", f"engine CPU {second['cpu']:.1f} s"),
            ("records examined", f"{examined:,}", f"processed: {_join(second['counts'])}"),
            (
                "records/s",
                f"{resync_rate:,.0f}",
                f"target >= {TARGET_RESYNC_PER_S:,}: "
                f"{common.verdict(resync_rate >= TARGET_RESYNC_PER_S)}",
            ),
            (
                "rows written",
                f"{written:,}",
                f"asset + link rows (ctx.rows_written); target 0: {common.verdict(written == 0)}",
            ),
            (
                "  rows touched",
                f"{second['touched_rows']:,}",
                "asset/link rows whose updated_at moved during the resync (database check)",
            ),
            ("  run status", second["status"], second.get("error") or ""),
            *(
                [("  PSA calls", f"{sum(second['calls'].values()):,}", "all endpoints (below)")]
                if pulseway
                else []
            ),
            ("  peak RSS", f"{_mb(second['maxrss_kib']):.0f} MB", ""),
            ("  phases", "", _join(second["phases"], "s")),
        ],
    )
    print(
        "Rows written leave out run bookkeeping: the sync_run row (progress and checkpoint,\n"
        "updated once per page; claim, heartbeat and finish) is not counted."
    )
    print()
    if pulseway:
        _report_calls(created, first["calls"], examined, second["calls"], limits["calls"])
    common.table(
        "Targets",
        [
            (
                f"end to end >= {TARGET_RECORDS_PER_S:,} records/s on SQLite",
                common.verdict(rate_ok) if sqlite else "n/a",
                f"{rate:,.0f}/s" + ("" if sqlite else " on PostgreSQL"),
            ),
            (
                f"engine / (fetch + insert) <= {TARGET_RATIO}",
                common.verdict(ratio <= TARGET_RATIO),
                f"{ratio:.3f}",
            ),
            (
                f"peak RSS <= {TARGET_RSS_MB} MB",
                common.verdict(rss_mb <= TARGET_RSS_MB),
                f"{rss_mb:.0f} MB",
            ),
            (
                f"no-change resync: 0 rows, >= {TARGET_RESYNC_PER_S:,} records/s",
                common.verdict(resync_ok),
                f"{written:,} rows, {resync_rate:,.0f}/s",
            ),
        ],
    )


def _report_apis(
    rest: tuple[dict[str, Any], dict[str, Any]], soap: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """REST beside SOAP on the same dataset: rates and requests per 1,000 records."""

    def rows(api: str, first: dict[str, Any], second: dict[str, Any]) -> list[tuple[str, ...]]:
        created = first["counts"].get("created", 0)
        examined = second["processed"]
        sync_requests = first["requests"]["requests"]
        resync_requests = second["requests"]["requests"]
        return [
            (
                f"{api} full sync",
                f"{created / first['wall']:,.0f} rec/s",
                f"{created:,} created in {first['wall']:.1f} s; {sync_requests:,} requests "
                f"({_join(first['requests']['by_method'])}), "
                f"{1000 * sync_requests / max(created, 1):.1f} per 1,000 records; "
                f"{first['status']}",
            ),
            (
                f"{api} no-change resync",
                f"{examined / second['wall']:,.0f} rec/s",
                f"{examined:,} examined in {second['wall']:.1f} s, {second['rows_written']:,} "
                f"rows written; {resync_requests:,} requests, "
                f"{1000 * resync_requests / max(examined, 1):.1f} per 1,000 records; "
                f"{second['status']}",
            ),
        ]

    common.table(
        "5. REST beside SOAP, same dataset (requests: the simulator's counter)",
        [*rows("REST", *rest), *rows("SOAP", *soap)],
    )


# ---------------------------------------------------------------------------------- children


def _child(role: str) -> int:
    _die_with_parent()
    config: dict[str, Any] = json.loads(sys.stdin.readline())
    if role == "simulator":
        _simulator(config)
        return 0
    runners = {"sync": _sync, "resync": _resync, "limits": _limits}
    result = asyncio.run(runners[role](config))
    Path(config["result"]).write_text(json.dumps(result, default=str))
    return 0


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process if the benchmark dies without stopping it."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # the parent was already gone
        sys.exit(1)


def _simulator(config: dict[str, Any]) -> None:
    """Build the dataset, then serve it until the parent terminates us (or dies)."""
    if config.get("provider") == "pulseway":
        _pulseway_simulator(config)
        return
    import gc

    from simulators.connectwise import (
        ApiCredentials,
        ConnectWiseSimulator,
        DatasetSpec,
        generate_dataset,
    )
    from simulators.connectwise.server import bind, serve
    from simulators.connectwise.soap import IntegratorLogin

    spec = DatasetSpec(**config["spec"])
    store = generate_dataset(spec)
    # Millions of long-lived dataset objects: keep the cyclic collector from rescanning them
    # while serving (its pauses would land, at random, in one measurement or another).
    gc.collect()
    gc.freeze()
    creds = dict(config["credentials"])
    integrator = IntegratorLogin(creds.pop("integrator_login_id"), creds.pop("integrator_password"))
    simulator = ConnectWiseSimulator(
        store, credentials=ApiCredentials(**creds), integrator=integrator
    )
    sock = bind("127.0.0.1", 0)
    host, port = sock.getsockname()[:2]
    sizes = ", ".join(
        f"{store.count(name):,} {name}" for name in ("companies", "contacts", "configurations")
    )
    sites = sum(len(children) for children in store.table("sites").children.values())
    sizes = sizes.replace(" companies,", f" companies, {sites:,} sites,")

    ready = Path(config["ready"])
    partial = ready.with_suffix(".partial")
    partial.write_text(json.dumps({"base_url": f"http://{host}:{port}", "sizes": sizes}))
    partial.rename(ready)  # the parent never reads half a file
    serve(simulator, sock)


def _pulseway_simulator(config: dict[str, Any]) -> None:
    """The Pulseway PSA simulator over a generated dataset, at an unlimited call budget
    (``calls_per_hour=0``), served by uvicorn in this process until the parent stops it."""
    import gc

    from simulators.connectwise.server import bind, serve
    from simulators.pulseway import (
        ApiCredentials,
        DatasetSpec,
        PulsewaySimulator,
        PulsewayStore,
        generate_dataset,
    )

    c = config["credentials"]
    credentials = ApiCredentials(
        tenant=c["tenant"], username=c["user_name"], password=c["password"]
    )
    spec = DatasetSpec(**config["spec"])
    store = generate_dataset(spec, PulsewayStore(tenant=credentials.tenant))
    gc.collect()
    gc.freeze()  # as for ConnectWise: no collector pauses over the dataset while serving
    simulator = PulsewaySimulator(store, credentials=credentials, calls_per_hour=0)
    sock = bind("127.0.0.1", 0)
    host, port = sock.getsockname()[:2]
    sizes = ", ".join(
        f"{store.count(kind):,} {kind}" for kind in ("accounts", "locations", "contacts", "assets")
    )
    ready = Path(config["ready"])
    partial = ready.with_suffix(".partial")
    partial.write_text(json.dumps({"base_url": f"http://{host}:{port}", "sizes": sizes}))
    partial.rename(ready)
    serve(simulator.app, sock)


async def _connectwise_traffic(base_url: str) -> dict[str, Any]:
    """The ConnectWise simulator's request counters so far (REST and SOAP alike)."""
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        response = await client.get(f"{base_url}/__simulator/faults")
        response.raise_for_status()
        traffic: dict[str, Any] = response.json()["traffic"]
        return traffic


def _traffic_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        "requests": after["requests"] - before["requests"],
        "by_method": _calls_between(before["by_method"], after["by_method"]),
    }


async def _simulator_calls(base_url: str) -> dict[str, int]:
    """The Pulseway simulator's API requests so far, per endpoint ("GET /v2/...")."""
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        response = await client.get(f"{base_url}/__simulator/faults")
        response.raise_for_status()
        counts: dict[str, int] = response.json()["traffic"]["by_endpoint"]
        return counts


def _calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}


def _pulseway_credentials(config: dict[str, Any]) -> Any:
    from sync.providers.pulseway.credentials import PulsewayCredentials

    c = config["credentials"]
    return PulsewayCredentials(
        tenant=c["tenant"],
        user_name=c["user_name"],
        password=c["password"],
        host=config["base_url"],
    )


def _provider_factory(config: dict[str, Any], vault: Any) -> Any:
    """The worker's provider factory; Pulseway's client gets a budget it never reaches."""
    from sync.connections import provider_factory

    if config.get("provider") == "pulseway":
        return provider_factory(vault, calls_per_hour=UNLIMITED_CALLS)
    return provider_factory(vault)


async def _timed_counted(config: dict[str, Any], vault: Any) -> dict[str, Any]:
    """``_timed_run``, plus the simulator's counters during the run (Pulseway: calls per
    endpoint; ConnectWise: requests, per HTTP method)."""
    pulseway = config.get("provider") == "pulseway"
    if pulseway:
        before = await _simulator_calls(config["base_url"])
    else:
        traffic = await _connectwise_traffic(config["base_url"])
    result = await _timed_run(_provider_factory(config, vault), config.get("profile"))
    if pulseway:
        result["calls"] = _calls_between(before, await _simulator_calls(config["base_url"]))
    else:
        after = await _connectwise_traffic(config["base_url"])
        result["requests"] = _traffic_between(traffic, after)
    return result


async def _add_integration(config: dict[str, Any], account: Any, vault: Any) -> Any:
    """The integration, every type and status enabled (the PSA's own lists)."""
    from sync.connections import Options, connectwise_provider, pulseway_provider
    from sync.integrations import add_connectwise, add_pulseway

    if config.get("provider") == "pulseway":
        pw_creds = _pulseway_credentials(config)
        options = Options(calls_per_hour=UNLIMITED_CALLS)
        provider = pulseway_provider(pw_creds, sandbox=True, options=options)
        try:
            lists = await provider.reference_data()
        finally:
            await provider.aclose()
        # Every account type, both statuses (Active, Inactive), every asset category and
        # state; two-way sync off: the bench measures the pull.
        enable = {kind: [ref.name for ref in refs] for kind, refs in lists.items()}
        integration, _run = await add_pulseway(
            account, pw_creds, vault, sandbox=True, enable=enable, two_way_enabled=False
        )
        return integration
    creds = _connectwise_credentials(config)
    provider = connectwise_provider(creds, sandbox=True)
    try:
        lists = await provider.reference_data()
    finally:
        await provider.aclose()
    enable = {kind: [ref.name for ref in refs] for kind, refs in lists.items()}
    integration, _run = await add_connectwise(account, creds, vault, sandbox=True, enable=enable)
    return integration


def _connectwise_credentials(config: dict[str, Any]) -> Any:
    from sync.providers.connectwise.credentials import ConnectWiseCredentials

    c = config["credentials"]
    if config.get("api") == "soap":  # the integrator login alone: the SOAP API is used
        return ConnectWiseCredentials(
            site_url=config["base_url"],
            company_id=c["company_id"],
            public_key=None,
            private_key=None,
            client_id=CLIENT_ID,
            integrator_login_id=c["integrator_login_id"],
            integrator_password=c["integrator_password"],
        )
    return ConnectWiseCredentials(
        site_url=config["base_url"],
        company_id=c["company_id"],
        public_key=c["public_key"],
        private_key=c["private_key"],
        client_id=CLIENT_ID,
    )


async def _sync(config: dict[str, Any]) -> dict[str, Any]:
    """Migrate a fresh database, add the integration (everything enabled), run a full sync."""
    from tortoise import Tortoise

    from models import Account
    from models.db import migrate, tortoise_config
    from models.vault import Vault

    url = config["db_url"]
    await migrate(url)
    await Tortoise.init(config=tortoise_config(url))
    try:
        vault = Vault([config["vault_key"]])
        account = await Account.create(name="bench")
        integration = await _add_integration(config, account, vault)
        result = await _timed_counted(config, vault)
        result["integration_id"] = str(integration.id)
        result["tables"] = await _table_counts(account.id)
        return result
    finally:
        await Tortoise.close_connections()


async def _resync(config: dict[str, Any]) -> dict[str, Any]:
    from tortoise import Tortoise

    from models import ASSET_MODELS, Integration, RecordLink
    from models.db import tortoise_config
    from models.vault import Vault
    from sync import jobs

    await Tortoise.init(config=tortoise_config(config["db_url"]))
    try:
        integration = await Integration.get(id=config["integration_id"])
        await jobs.manual_sync(integration)
        started = datetime.now(UTC)
        vault = Vault([config["vault_key"]])
        result = await _timed_counted(config, vault)
        touched = await RecordLink.filter(
            integration_id=integration.id, updated_at__gte=started
        ).count()
        for model in ASSET_MODELS.values():
            touched += await model.filter(updated_at__gte=started).count()
        result["touched_rows"] = touched
        return result
    finally:
        await Tortoise.close_connections()


async def _timed_run(open_provider: Any, profile: str | None) -> dict[str, Any]:
    """Run the queued sync with a fresh worker; time it, and each phase as it starts."""
    import cProfile

    from models import SyncRun
    from sync import full_sync
    from sync.runner import Worker

    marks: list[tuple[str, float]] = []
    set_phase = full_sync._set_phase

    async def mark_phase(ctx: Any, phase: str) -> None:  # timing only; then the real one
        marks.append((phase, time.perf_counter()))
        await set_phase(ctx, phase)

    full_sync._set_phase = mark_phase
    worker = Worker(open_provider, schedule=False)
    profiler = cProfile.Profile() if profile else None
    cpu, start = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    runs = await worker.run_until_idle()
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    full_sync._set_phase = set_phase
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    ctx = worker.last_context
    if runs != 1 or ctx is None:
        raise RuntimeError(f"expected one queued run, the worker ran {runs}")
    run = await SyncRun.get(id=ctx.run.id)
    bounds = [("reference", start), *marks, ("", start + wall)]
    phases = {name: end - begin for (name, begin), (_, end) in itertools.pairwise(bounds)}
    return {
        "wall": wall,
        "cpu": cpu,
        "counts": {name: n for name, n in ctx.counts.items() if n},
        "processed": ctx.processed,
        "rows_written": ctx.rows_written,
        "status": str(run.status),
        "error": run.error,
        "phases": phases,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


async def _table_counts(account_id: Any) -> dict[str, int]:
    from models import ASSET_MODELS

    return {
        f"{kind.value}s": await model.filter(account_id=account_id).count()
        for kind, model in ASSET_MODELS.items()
    }


# -- limits -----------------------------------------------------------------------------------


@dataclass
class Fetched:
    references: dict[str, list[dict[str, Any]]]
    companies: list[dict[str, Any]]
    sites: list[dict[str, Any]]
    contacts: list[dict[str, Any]]
    configurations: list[dict[str, Any]]
    requests: int = 0
    site_requests: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    provider: str = "connectwise"
    site_parents: list[int] = field(default_factory=list)  # Pulseway: each location's account

    @property
    def records(self) -> int:
        return len(self.companies) + len(self.sites) + len(self.contacts) + len(self.configurations)


class RawFetcher:
    """The engine's requests, raw: same URLs, headers, paging and concurrency; JSON only."""

    def __init__(self, client: httpx.AsyncClient, config: dict[str, Any]) -> None:
        c = config["credentials"]
        token = base64.b64encode(
            f"{c['company_id']}+{c['public_key']}:{c['private_key']}".encode()
        ).decode()
        self.client = client
        self.site = config["base_url"]
        self.company_id = c["company_id"]
        self.headers = {
            "Authorization": f"Basic {token}",
            "clientId": CLIENT_ID,
            "Accept": f"application/vnd.connectwise.com+json; version={API_VERSION}",
            "pagination-type": "forward-only",
        }
        self.api = ""
        self.requests = 0

    async def connect(self) -> None:
        url = f"{self.site}/login/companyinfo/{self.company_id}"
        response = await self.client.get(url, headers={"Accept": "application/json"})
        self.requests += 1
        codebase = response.json()["Codebase"].strip("/")
        self.api = f"{self.site}/{codebase}/apis/3.0"

    async def count(self, path: str, conditions: str | None = None) -> int:
        params = {"conditions": conditions} if conditions else None
        headers = {k: v for k, v in self.headers.items() if k != "pagination-type"}
        response = await self.client.get(f"{self.api}/{path}/count", params=params, headers=headers)
        self.requests += 1
        response.raise_for_status()
        total: int = response.json()["count"]
        return total

    async def pages(self, path: str, conditions: str | None = None) -> list[dict[str, Any]]:
        params = {"pageSize": str(PAGE_SIZE)}
        if conditions:
            params["conditions"] = conditions
        first = httpx.URL(f"{self.api}/{path}", params=params)
        url: httpx.URL | None = first
        records: list[dict[str, Any]] = []
        while url is not None:
            response = await self.client.get(url, headers=self.headers)
            self.requests += 1
            response.raise_for_status()
            page = response.json()
            records.extend(page)
            link = response.links.get("next", {}).get("url")
            url = None
            if len(page) >= PAGE_SIZE and link:
                url = first.copy_merge_params(httpx.URL(link).params)
        return records

    async def fetch_all(self, in_flight: int) -> Fetched:
        from sync.providers.connectwise.query import cw_and, cw_eq, cw_in

        marks = [time.perf_counter()]
        await self.connect()
        references = {
            name: await self.pages(f"company/{name}")
            for name in (
                "companies/types",
                "companies/statuses",
                "configurations/types",
                "configurations/statuses",
                "contacts/types",
            )
        }

        def ids(name: str) -> list[int]:
            return sorted(int(r["id"]) for r in references[name])

        company_conditions = cw_and(
            cw_eq("deletedFlag", False), cw_in("status/id", ids("companies/statuses"))
        )
        configuration_conditions = cw_and(
            cw_in("type/id", ids("configurations/types")),
            cw_in("status/id", ids("configurations/statuses")),
        )
        # The run's progress total (the engine's provider.estimate_total).
        await self.count("company/companies", company_conditions)
        await self.count("company/configurations", configuration_conditions)
        await self.count("company/contacts")
        companies = await self.pages("company/companies", company_conditions)
        marks.append(time.perf_counter())
        gate = asyncio.Semaphore(in_flight)

        async def sites_of(company: int) -> list[dict[str, Any]]:
            async with gate:
                return await self.pages(f"company/companies/{company}/sites")

        site_lists = await asyncio.gather(*(sites_of(int(c["id"])) for c in companies))
        marks.append(time.perf_counter())
        contacts = await self.pages("company/contacts")
        marks.append(time.perf_counter())
        configurations = await self.pages("company/configurations", configuration_conditions)
        fetched = Fetched(
            references,
            companies,
            [site for sites in site_lists for site in sites],
            contacts,
            configurations,
        )
        marks.append(time.perf_counter())
        fetched.requests = self.requests
        fetched.site_requests = len(companies)
        names = ("reference+counts+companies", "sites", "contacts", "configurations")
        fetched.seconds = {
            n: b - a for n, (a, b) in zip(names, itertools.pairwise(marks), strict=True)
        }
        return fetched


class PulsewayRawFetcher:
    """The Pulseway provider's requests, raw: same URLs, paging, order and concurrency
    (sync.providers.pulseway): accounts listed per account type, each account read by id for
    its locations, contacts listed, hardware asset ids listed (``searchselect``), then each
    asset read by id a page of ids at a time. JSON parsed, nothing mapped."""

    def __init__(self, client: httpx.AsyncClient, config: dict[str, Any]) -> None:
        self.client = client
        self.base = config["base_url"]
        self.credentials: dict[str, str] = config["credentials"]
        self.headers = {"Accept": "application/json"}
        self.requests = 0
        self.site_reads = 0

    async def connect(self) -> None:
        c = self.credentials
        form = {
            "grantType": "password",
            "userName": c["user_name"],
            "password": c["password"],
            "tenant": c["tenant"],
        }
        response = await self.client.post(
            f"{self.base}/v2/security/authenticate", data=form, headers=self.headers
        )
        self.requests += 1
        response.raise_for_status()
        token = response.json()["result"]["accessToken"]
        self.headers = {**self.headers, "Authorization": f"Bearer {token}"}

    async def get(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        query = tuple(params) if params else None
        response = await self.client.get(f"{self.base}{path}", params=query, headers=self.headers)
        self.requests += 1
        response.raise_for_status()
        body = response.json()
        if not body.get("success"):
            raise RuntimeError(f"GET {path}: {body.get('error')}")
        return body

    async def pages(self, path: str, query: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """``PageSize``/``PageNumber`` paging as the client does: stop at a short page or
        when ``totalRecords`` are in."""
        import inspect

        from sync.providers.pulseway.client import PulsewayClient

        # The client's page size (its default: the provider does not set one).
        size: int = inspect.signature(PulsewayClient).parameters["page_size"].default
        records: list[dict[str, Any]] = []
        number = 1
        while True:
            paging: list[tuple[str, str]] = [
                *query,
                ("PageSize", str(size)),
                ("PageNumber", str(number)),
            ]
            body = await self.get(path, paging)
            page = body["result"] or []
            records.extend(page)
            total = body.get("totalRecords")
            if len(page) < size or (total is not None and len(records) >= total):
                return records
            number += 1

    async def fetch_all(self, in_flight: int) -> Fetched:
        from sync.providers.pulseway import provider

        marks = [time.perf_counter()]
        await self.connect()
        references = {
            "accounttypes": (await self.get("/v2/system/accounttypes/lookup"))["result"],
            "AssetCategory": (await self.get("/v2/system/lookup/AssetCategory"))["result"],
            "AssetState": (await self.get("/v2/system/lookup/AssetState"))["result"],
        }
        # Every account type, both statuses: one list per type, no Filter.IsActive.
        found: dict[int, dict[str, Any]] = {}
        for type_id in sorted(int(r["id"]) for r in references["accounttypes"]):
            listed = await self.pages(
                "/v2/crm/accounts/summary", [("Filter.AccountTypeId", str(type_id))]
            )
            for raw in listed:
                found.setdefault(int(raw["id"]), raw)
        accounts = [found[i] for i in sorted(found)]
        marks.append(time.perf_counter())
        gate = asyncio.Semaphore(in_flight)

        async def locations_of(account: int) -> list[dict[str, Any]]:
            # As the provider: the list's locations when it gave them, else the account by id.
            listed: list[dict[str, Any]] = found[account].get("locations") or []
            if listed:
                return listed
            async with gate:
                body = await self.get(f"/v2/crm/accounts/summary/{account}")
            raws: list[dict[str, Any]] = body["result"].get("locations") or []
            self.site_reads += 1
            return raws

        location_lists = await asyncio.gather(*(locations_of(i) for i in sorted(found)))
        marks.append(time.perf_counter())
        contacts = await self.pages("/v2/crm/contacts/summary", [])
        marks.append(time.perf_counter())
        categories = ",".join(str(r["id"]) for r in sorted(references["AssetCategory"], key=_id))
        rows = await self.pages(
            "/v2/servicedesk/hardwareasset/searchselect", [("Filter.CategoryIds", categories)]
        )
        ids = sorted({int(r["id"]) for r in rows})
        marks.append(time.perf_counter())
        asset_gate = asyncio.Semaphore(provider.FETCH_CONCURRENCY)

        async def asset(asset_id: int) -> dict[str, Any]:
            async with asset_gate:
                body = await self.get(f"/v2/servicedesk/hardwareasset/{asset_id}")
            raw: dict[str, Any] = body["result"]
            return raw

        assets: list[dict[str, Any]] = []
        for start in range(0, len(ids), provider.PAGE_SIZE):  # a page of ids at a time
            chunk = ids[start : start + provider.PAGE_SIZE]
            assets.extend(await asyncio.gather(*(asset(i) for i in chunk)))
        marks.append(time.perf_counter())
        fetched = Fetched(
            references,
            accounts,
            [raw for raws in location_lists for raw in raws],
            contacts,
            assets,
            provider="pulseway",
            site_parents=[
                account
                for account, raws in zip(sorted(found), location_lists, strict=True)
                for _ in raws
            ],
        )
        fetched.requests = self.requests
        fetched.site_requests = self.site_reads
        names = (
            "login+reference+accounts",
            "locations (account by id)",
            "contacts",
            "asset ids",
            "assets by id",
        )
        fetched.seconds = {
            n: b - a for n, (a, b) in zip(names, itertools.pairwise(marks), strict=True)
        }
        return fetched


def _id(raw: dict[str, Any]) -> int:
    return int(raw["id"])


async def _limits(config: dict[str, Any]) -> dict[str, Any]:
    if config.get("provider") == "pulseway":
        return await _pulseway_limits(config)
    from sync.full_sync import SITE_CONCURRENCY

    # The engine's client settings (sync.providers.urls.build_http_client), spelled out.
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(30.0, connect=10.0),
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=30),
        follow_redirects=False,
        headers={"User-Agent": "psasync"},
        trust_env=False,  # no proxy from the environment: the traffic stays on 127.0.0.1
    )
    async with client:
        fetcher = RawFetcher(client, config)
        cpu, start = time.process_time(), time.perf_counter()
        fetched = await fetcher.fetch_all(SITE_CONCURRENCY)
        fetch_wall = time.perf_counter() - start
        fetch_cpu = time.process_time() - cpu
    insert = await _insert_floor(config["db_url"], fetched)
    return {
        "fetch_wall": fetch_wall,
        "fetch_cpu": fetch_cpu,
        "fetch_seconds": fetched.seconds,
        "requests": fetched.requests,
        "site_requests": fetched.site_requests,
        "in_flight": SITE_CONCURRENCY,
        "records": fetched.records,
        **insert,
    }


async def _pulseway_limits(config: dict[str, Any]) -> dict[str, Any]:
    from sync.full_sync import SITE_CONCURRENCY
    from sync.providers.pulseway.provider import FETCH_CONCURRENCY

    # The engine's client settings (sync.providers.urls.build_http_client), spelled out.
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(30.0, connect=10.0),
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=20, keepalive_expiry=30),
        follow_redirects=False,
        headers={"User-Agent": "psasync"},
        trust_env=False,  # no proxy from the environment: the traffic stays on 127.0.0.1
    )
    before = await _simulator_calls(config["base_url"])
    async with client:
        fetcher = PulsewayRawFetcher(client, config)
        cpu, start = time.process_time(), time.perf_counter()
        fetched = await fetcher.fetch_all(SITE_CONCURRENCY)
        fetch_wall = time.perf_counter() - start
        fetch_cpu = time.process_time() - cpu
    calls = _calls_between(before, await _simulator_calls(config["base_url"]))
    insert = await _insert_floor(config["db_url"], fetched)
    return {
        "fetch_wall": fetch_wall,
        "fetch_cpu": fetch_cpu,
        "fetch_seconds": fetched.seconds,
        "requests": fetched.requests,
        "account_requests": fetched.site_requests,
        "in_flight": SITE_CONCURRENCY,
        "asset_requests": len(fetched.configurations),
        "asset_in_flight": FETCH_CONCURRENCY,
        "records": fetched.records,
        "calls": calls,
        **insert,
    }


async def _insert_floor(url: str, fetched: Fetched) -> dict[str, Any]:
    """bulk_create the asset and link rows of ``fetched`` into an empty, migrated database.

    Rows are built first (mapped with the engine's field tables, foreign keys filled in
    directly, snapshots as the engine stores them); only the inserts are timed: per batch of
    1000 records, one transaction holding the assets' and their links' ``bulk_create``.
    """
    from tortoise import Tortoise
    from tortoise.transactions import in_transaction

    from models import Account, Integration, Provider, RecordLink, ReferenceValue
    from models.db import migrate, tortoise_config
    from models.vault import Vault

    await migrate(url)
    await Tortoise.init(config=tortoise_config(url))
    try:
        account = await Account.create(name="bench")
        integration = await Integration.create(
            account=account,
            provider=(
                Provider.PULSEWAY_PSA
                if fetched.provider == "pulseway"
                else Provider.CONNECTWISE_MANAGE
            ),
            name="bench",
            site_url="http://127.0.0.1",
            sandbox=True,
            credentials_token=Vault([Vault.generate_key()]).encrypt({}),
        )
        values = await _reference_values(account, fetched, ReferenceValue)
        batches = _rows(fetched, account.id, integration.id, values)
        assets = links = 0
        start = time.perf_counter()
        for model, rows, row_links in batches:
            async with in_transaction():
                await model.bulk_create(rows, batch_size=INSERT_BATCH)
                await RecordLink.bulk_create(row_links, batch_size=INSERT_BATCH)
            assets += len(rows)
            links += len(row_links)
        insert_wall = time.perf_counter() - start
        return {"insert_wall": insert_wall, "asset_rows": assets, "link_rows": links}
    finally:
        await Tortoise.close_connections()


async def _reference_values(
    account: Any, fetched: Fetched, reference_value: Any
) -> dict[tuple[str, int], uuid.UUID]:
    found: dict[tuple[str, int], uuid.UUID] = {}
    for kind, psa_id, name in _references_of(fetched):
        value = await reference_value.create(account=account, kind=kind, name=name)
        found[(kind.value, psa_id)] = value.id
    return found


def _references_of(fetched: Fetched) -> list[tuple[Any, int, str]]:
    """(reference kind, PSA id, name) of every reference value, as the provider names them."""
    from models import ReferenceKind

    if fetched.provider == "pulseway":
        from sync.providers.pulseway import mapping as pw

        lists = {
            ReferenceKind.ORGANIZATION_TYPE: pw.references(fetched.references["accounttypes"]),
            ReferenceKind.ORGANIZATION_STATUS: list(pw.ORGANIZATION_STATUSES),
            ReferenceKind.CONFIGURATION_TYPE: pw.references(fetched.references["AssetCategory"]),
            ReferenceKind.CONFIGURATION_STATUS: pw.references(fetched.references["AssetState"]),
        }
        return [(kind, r.psa_id, r.name) for kind, refs in lists.items() for r in refs]
    from sync.providers.connectwise.mapping import reference_name

    kinds = {
        "companies/types": ReferenceKind.ORGANIZATION_TYPE,
        "companies/statuses": ReferenceKind.ORGANIZATION_STATUS,
        "configurations/types": ReferenceKind.CONFIGURATION_TYPE,
        "configurations/statuses": ReferenceKind.CONFIGURATION_STATUS,
        "contacts/types": ReferenceKind.CONTACT_TYPE,
    }
    return [
        (kinds[name], int(raw["id"]), reference_name(raw))
        for name, raws in fetched.references.items()
        for raw in raws
    ]


def _record_groups(fetched: Fetched) -> list[tuple[Any, list[Any]]]:
    """(asset kind, PsaRecords) in the engine's order, mapped with the provider's tables."""
    from models import AssetKind

    if fetched.provider == "pulseway":
        from sync.providers.pulseway import mapping as pw

        return [
            (AssetKind.ORGANIZATION, [pw.ACCOUNT.to_record(r) for r in fetched.companies]),
            (
                AssetKind.LOCATION,
                [
                    pw.LOCATION.to_record(r, parent)
                    for r, parent in zip(fetched.sites, fetched.site_parents, strict=True)
                ],
            ),
            (AssetKind.CONTACT, [pw.CONTACT.to_record(r) for r in fetched.contacts]),
            (
                AssetKind.CONFIGURATION,
                [pw.CONFIGURATION.to_record(r) for r in fetched.configurations],
            ),
        ]
    from sync.providers.connectwise import mapping

    return [
        (AssetKind.ORGANIZATION, [mapping.COMPANY.to_record(r) for r in fetched.companies]),
        (AssetKind.LOCATION, [mapping.SITE.to_record(r) for r in fetched.sites]),
        (AssetKind.CONTACT, [mapping.CONTACT.to_record(r) for r in fetched.contacts]),
        (
            AssetKind.CONFIGURATION,
            [mapping.CONFIGURATION.to_record(r) for r in fetched.configurations],
        ),
    ]


def _rows(
    fetched: Fetched,
    account_id: uuid.UUID,
    integration_id: uuid.UUID,
    references: dict[tuple[str, int], uuid.UUID],
) -> list[tuple[Any, list[Any], list[Any]]]:
    """(model, asset rows, link rows) per batch of up to 1000 records, in the engine's order."""
    from models import ASSET_MODELS, AssetKind, ContactSource, LinkState, RecordLink, match_keys
    from sync.columns import CODES, RELATIONS
    from sync.snapshot import snapshot_of

    now = datetime.now(UTC)
    local: dict[AssetKind, dict[int, uuid.UUID]] = {kind: {} for kind in AssetKind}
    groups = _record_groups(fetched)
    for kind, records in groups:
        local[kind] = {record.psa_id: uuid.uuid4() for record in records}
    batches: list[tuple[Any, list[Any], list[Any]]] = []
    for kind, records in groups:
        model = ASSET_MODELS[kind]
        for offset in range(0, len(records), INSERT_BATCH):
            rows: list[Any] = []
            links: list[Any] = []
            for record in records[offset : offset + INSERT_BATCH]:
                values = dict(record.values)
                for code_kind, ids in record.codes.items():
                    code = ids[0] if ids else None
                    values[CODES[code_kind]] = references.get((code_kind.value, code or -1))
                if kind != AssetKind.ORGANIZATION:
                    values["organization_id"] = local[AssetKind.ORGANIZATION].get(
                        record.parent_psa_id or -1
                    )
                for name, psa_id in record.refs.items():
                    target_kind, column = RELATIONS[name]
                    values[column] = local[target_kind].get(psa_id) if psa_id else None
                values["match_key"] = match_keys.for_values(kind.value, values)
                extra: dict[str, Any] = {}
                if kind == AssetKind.CONTACT:
                    emails = values.get("emails") or []
                    extra["source"] = ContactSource.PSA
                    extra["primary_email"] = emails[0]["value"].lower() if emails else None
                local_id = local[kind][record.psa_id]
                rows.append(
                    model(
                        id=local_id,
                        account_id=account_id,
                        created_at=now,
                        updated_at=now,
                        version=1,
                        **values,
                        **extra,
                    )
                )
                links.append(
                    RecordLink(
                        id=uuid.uuid4(),
                        integration_id=integration_id,
                        kind=kind,
                        local_id=local_id,
                        psa_id=record.psa_id,
                        psa_parent_id=record.parent_psa_id,
                        snapshot=snapshot_of(values, record.refs),
                        psa_updated_at=record.updated_at,
                        synced_at=now,
                        **_link_stamps(record.updated_at),
                        state=LinkState.SYNCED,
                        refs_pending=False,
                        created_at=now,
                        updated_at=now,
                    )
                )
            batches.append((model, rows, links))
    return batches


def _link_stamps(stamp: datetime | None) -> dict[str, Any]:
    """The integer stamp columns the engine keeps beside the datetimes, where it has them."""
    from models import RecordLink

    if "psa_stamp" not in RecordLink._meta.fields_map:
        return {}
    return {
        "psa_stamp": None if stamp is None else int(stamp.timestamp()),
        "stamp_trusted": stamp is not None,
        "settings_version": 0,
    }


if __name__ == "__main__":
    sys.exit(main())
