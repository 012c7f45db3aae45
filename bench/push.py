"""Two-way push benchmark: edits delivered to the ConnectWise simulator, and push-all.

    .venv/bin/python bench/push.py                         # 5k records, 20k edits, 50k push-all
    .venv/bin/python bench/push.py --records 1000 --edits 4000 --push-all 5000
    .venv/bin/python bench/push.py --postgres postgres://postgres@127.0.0.1:5432/psasync_bench

Two simulators run in their own processes on 127.0.0.1 (their CPU is not the engine's, but
they share the machine's cores with it): one with a seeded dataset for the edits, one empty
for push-all. The engine runs in this process, on a fresh database.

    edits      a full sync, two-way on, then ``--edits`` local edits (through the same code
               as the GraphQL mutations) spread evenly over ``--records`` configurations;
               then the outbox is delivered with no injected faults. Figures: PSA writes
               delivered per second, PSA requests per record and per edit (coalescing).
    push-all   ``--push-all`` organizations documented only in psasync (each with a primary
               location for its address); a dry run (the plan), then the real run. Figures:
               records per second of each, and the PSA writes of the real run.

Targets (2 cores): >= 1,500 PSA writes/s delivered, <= 1 request per record per delivery,
push-all dry run of 50k records <= 10 s. Prints one table; not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common  # bench/common.py: this script's directory is on sys.path
import httpx

SCRIPT = Path(__file__).resolve()
ENGINE_PACKAGES = ("sync", "models", "simulators")
SQLITE_OPTIONS = "journal_mode=WAL&synchronous=NORMAL&busy_timeout=10000"
START_TIMEOUT = 600.0

TARGET_WRITES_PER_S = 1_500
TARGET_REQUESTS_PER_RECORD = 1.0
TARGET_DRY_RUN_S = 10.0  # for 50k records; scaled linearly for other sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=5_000, help="configurations edited")
    parser.add_argument("--edits", type=int, default=20_000, help="local edits in all")
    parser.add_argument("--push-all", type=int, default=50_000, help="organizations pushed")
    parser.add_argument("--postgres", help="a PostgreSQL URL whose database name has 'bench'")
    parser.add_argument("--concurrency", type=int, default=None, help="requests in flight")
    parser.add_argument("--profile", help="write cProfile stats of delivery and push-all here")
    args = parser.parse_args(argv)
    with common.machine_lock(SCRIPT, _say):
        return asyncio.run(_benchmark(args))


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Simulator:
    """``psasync simulate connectwise`` in its own process."""

    def __init__(self, companies: int) -> None:
        self.port = _free_port()
        self.company_id = "benchmsp"
        self.public_key = secrets.token_hex(8)
        self.private_key = secrets.token_hex(16)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("psasync")),
                "simulate", "connectwise", "--port", str(self.port),
                "--companies", str(companies), "--company-id", self.company_id,
                "--public-key", self.public_key, "--private-key", self.private_key,
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip

    async def ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the simulator exited ({self.proc.returncode})")
                with contextlib.suppress(httpx.HTTPError):
                    answer = await client.get(
                        f"{self.base_url}/login/companyinfo/{self.company_id}"
                    )
                    if answer.status_code == 200 and answer.json():
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError("the simulator did not start in time")

    async def traffic(self) -> dict[str, int]:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
            answer = await client.get(f"{self.base_url}/__simulator/faults")
            traffic: dict[str, int] = answer.json()["traffic"]
            return traffic

    def cpu_seconds(self) -> float:
        """CPU time the simulator process has used so far."""
        import psutil

        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    def credentials(self) -> Any:
        from sync.providers.connectwise.credentials import ConnectWiseCredentials

        return ConnectWiseCredentials(
            site_url=self.base_url,
            company_id=self.company_id,
            public_key=self.public_key,
            private_key=self.private_key,
            client_id="psasync-bench",
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def _benchmark(args: argparse.Namespace) -> int:
    from tortoise import Tortoise

    from models.db import migrate, tortoise_config

    workdir = Path(tempfile.mkdtemp(prefix="psasync-push-bench-"))
    url = args.postgres or f"sqlite:///{workdir / 'push.db'}?{SQLITE_OPTIONS}"
    engine = common.sources_fingerprint(ENGINE_PACKAGES)
    load_before = os.getloadavg()[0]
    # Enough companies that every one of them holds some of the edited configurations.
    seeded = Simulator(companies=max(10, args.records // 5 + 1))
    empty = Simulator(companies=0)
    try:
        await common.fresh_database(url)
        await migrate(url)
        await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
        backend = await common.describe_backend(url)
        await seeded.ready()
        await empty.ready()
        edits = await _edits(args, seeded)
        pushed = await _push_all(args, empty)
        await Tortoise.close_connections()
        load = f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after (1-min load average)"
        _report(args, backend, engine, load, edits, pushed)
        return 0
    finally:
        seeded.stop()
        empty.stop()
        if args.postgres:
            with contextlib.suppress(Exception):
                await Tortoise.close_connections()
                await common.drop_database(args.postgres)
        shutil.rmtree(workdir, ignore_errors=True)


async def _integration(sim: Simulator, account_name: str) -> tuple[Any, Any, Any]:
    from models import Account, ReferenceMapping, SyncState
    from models.vault import Vault
    from sync.connections import provider_factory
    from sync.integrations import add_connectwise
    from sync.runner import Worker

    vault = Vault([Vault.generate_key()])
    account = await Account.create(name=account_name)
    integration, _run = await add_connectwise(account, sim.credentials(), vault, sandbox=True)
    # Everything in scope, and no rate limit below the PSA's own (none in the simulator).
    await ReferenceMapping.filter(integration_id=integration.id).update(
        sync_state=SyncState.ENABLED
    )
    integration.push_rate_per_minute = 100_000
    await integration.save(update_fields=["push_rate_per_minute"])
    factory = provider_factory(vault)
    OPEN_PROVIDER[:] = [factory]
    worker = Worker(factory, schedule=False)
    return account, integration, worker


async def _edits(args: argparse.Namespace, sim: Simulator) -> dict[str, Any]:
    from models import AssetKind, Integration, LinkState, OutboxEntry, RecordLink
    from sync import local_edits
    from sync.sync_settings import SettingsChange, update

    account, integration, worker = await _integration(sim, "Bench edits")
    _say("first full sync of the seeded simulator ...")
    await worker.run_until_idle()
    await update(integration, SettingsChange(two_way_enabled=True))
    await worker.run_until_idle()
    integration = await Integration.get(id=integration.id)
    ids = await (
        RecordLink.filter(
            integration_id=integration.id, kind=AssetKind.CONFIGURATION, state=LinkState.SYNCED
        )
        .order_by("psa_id")
        .limit(args.records)
        .values_list("local_id", flat=True)
    )
    records = [uuid.UUID(str(i)) for i in ids]
    if len(records) < args.records:
        raise RuntimeError(f"only {len(records)} configurations synced; raise the dataset")
    _say(f"{args.edits} edits over {len(records)} configurations ...")
    fields = ("notes", "serial_number", "asset_tag", "model")
    started = time.perf_counter()
    for i in range(args.edits):
        record = records[i % len(records)]
        column = fields[(i // len(records)) % len(fields)]
        await local_edits.update(
            AssetKind.CONFIGURATION, account.id, record, {column: f"bench {i}"}, actor="bench"
        )
    edit_wall = time.perf_counter() - started
    queued = await OutboxEntry.filter(integration_id=integration.id).count()

    deliverer = worker.deliverer
    if args.concurrency:
        deliverer.concurrency = args.concurrency
    before = await sim.traffic()
    _say(f"delivering {queued} outbox entries ...")
    sim_cpu, own_cpu = sim.cpu_seconds(), time.process_time()
    started = time.perf_counter()
    with _profiled(args, "delivery"):
        while await deliverer.run_due():
            pass
    wall = time.perf_counter() - started
    sim_cpu, own_cpu = sim.cpu_seconds() - sim_cpu, time.process_time() - own_cpu
    after = await sim.traffic()
    _say("the limit: the same PATCHes from the provider alone, no engine ...")
    limit = await _raw_patches(integration, records, deliverer.concurrency)
    left = await OutboxEntry.filter(integration_id=integration.id).count()
    return {
        "records": len(records),
        "edits": args.edits,
        "edit_wall": edit_wall,
        "queued": queued,
        "wall": wall,
        "writes": after["writes"] - before["writes"],
        "requests": after["requests"] - before["requests"],
        "left": left,
        "concurrency": deliverer.concurrency,
        "sim_cpu": sim_cpu,
        "own_cpu": own_cpu,
        "limit": limit,
    }


async def _raw_patches(integration: Any, records: list[uuid.UUID], concurrency: int) -> float:
    """PATCHes per second from the provider alone (one per record, same concurrency): what
    the simulator and the HTTP stacks allow on this machine, with no database at all."""
    from models import AssetKind, RecordLink
    from sync.providers.base import PsaChange

    psa_ids = await RecordLink.filter(
        integration_id=integration.id, local_id__in=records
    ).values_list("psa_id", flat=True)
    worker_provider = await _open(integration)
    gate = asyncio.Semaphore(concurrency)

    async def patch(psa_id: Any) -> None:
        async with gate:
            change = PsaChange(values={"notes": f"raw {psa_id}"})
            await worker_provider.update_record(AssetKind.CONFIGURATION, int(psa_id), None, change)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(patch(i) for i in psa_ids))
        return len(psa_ids) / (time.perf_counter() - started)
    finally:
        await worker_provider.aclose()


async def _open(integration: Any) -> Any:
    return await OPEN_PROVIDER[0](integration)


OPEN_PROVIDER: list[Any] = []


async def _push_all(args: argparse.Namespace, sim: Simulator) -> dict[str, Any]:
    from models import (
        AssetKind,
        Location,
        Organization,
        RecordLink,
        ReferenceValue,
        SyncRun,
    )
    from models.bulk import insert_rows
    from sync import push_all
    from sync.sync_settings import SettingsChange, update

    account, integration, worker = await _integration(sim, "Bench push-all")
    await worker.run_until_idle()
    await update(integration, SettingsChange(two_way_enabled=True))
    await worker.run_until_idle()
    refs = {(r.kind, r.name): r.id for r in await ReferenceValue.filter(account_id=account.id)}
    client = refs[("organization_type", "Client")]
    active = refs[("organization_status", "Active")]
    _say(f"documenting {args.push_all} organizations in psasync only ...")
    now = datetime.now(UTC)
    for start in range(0, args.push_all, 5_000):
        orgs, sites = [], []
        for i in range(start, min(start + 5_000, args.push_all)):
            org_id, site_id = uuid.uuid4(), uuid.uuid4()
            name = f"Documented Customer {i:06d}"
            orgs.append({
                "id": org_id, "account_id": account.id, "name": name,
                "organization_type_id": client, "organization_status_id": active,
                "primary_location_id": site_id, "created_at": now, "updated_at": now,
                "match_key": Organization(name=name).compute_match_key(),
            })  # fmt: skip
            sites.append({
                "id": site_id, "account_id": account.id, "organization_id": org_id,
                "name": "Main", "address_1": f"{i} Main St", "city": "Tampa",
                "created_at": now, "updated_at": now, "primary": True,
            })  # fmt: skip
        await insert_rows(Organization, orgs)
        await insert_rows(Location, sites)
    scope = push_all.Scope(kinds=frozenset({AssetKind.ORGANIZATION}))

    async def timed(dry_run: bool) -> tuple[float, Any]:
        run = await push_all.start(integration, scope, dry_run=dry_run)
        started = time.perf_counter()
        await worker.run_until_idle()
        wall = time.perf_counter() - started
        return wall, await SyncRun.get(id=run.id)

    _say("push-all dry run ...")
    before = await sim.traffic()
    with _profiled(args, "dry-run"):
        dry_wall, dry = await timed(True)
    after_dry = await sim.traffic()
    _say(f"  {dry_wall:.1f} s; the real run ...")
    real_wall, real = await timed(False)
    after_real = await sim.traffic()
    linked = await RecordLink.filter(
        integration_id=integration.id, kind=AssetKind.ORGANIZATION, psa_id__isnull=False
    ).count()
    return {
        "records": args.push_all,
        "dry_wall": dry_wall,
        "dry_status": dry.status,
        "dry_planned": dry.created + dry.linked,
        "dry_requests": after_dry["requests"] - before["requests"],
        "dry_writes": after_dry["writes"] - before["writes"],
        "real_wall": real_wall,
        "real_status": real.status,
        "real_created": real.created,
        "real_writes": after_real["writes"] - after_dry["writes"],
        "real_requests": after_real["requests"] - after_dry["requests"],
        "linked": linked,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
    }


@contextlib.contextmanager
def _profiled(args: argparse.Namespace, what: str) -> Any:
    if not args.profile:
        yield
        return
    import cProfile

    Path(args.profile).mkdir(parents=True, exist_ok=True)
    path = str(Path(args.profile, f"{what}.prof"))
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        profile.dump_stats(path)
        _say(f"  profile of the {what}: {path}")


def _report(
    args: argparse.Namespace,
    backend: str,
    engine: str,
    load: str,
    edits: dict[str, Any],
    pushed: dict[str, Any],
) -> None:
    import platform

    writes_per_s = edits["writes"] / edits["wall"] if edits["wall"] else 0.0
    per_record = edits["requests"] / edits["records"]
    dry_target = TARGET_DRY_RUN_S * pushed["records"] / 50_000
    print()
    print(f"psasync push benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"  machine: {os.cpu_count()} CPUs, {platform.python_implementation()} "
          f"{platform.python_version()}, {backend}")  # fmt: skip
    print(f"  {engine}")
    print(f"  load: {load}")
    print()
    common.table(
        f"Edits: {edits['edits']} local edits over {edits['records']} configurations",
        [
            ("edits saved", f"{edits['edits'] / edits['edit_wall']:,.0f}/s",
             f"{edits['edit_wall']:.1f} s, each its own transaction with its outbox entry"),
            ("outbox entries", f"{edits['queued']:,}", "one per edit"),
            ("delivery", f"{edits['wall']:.2f} s",
             f"{edits['concurrency']} requests in flight, no injected faults"),
            ("PSA writes", f"{edits['writes']:,}",
             f"{edits['writes'] / edits['edits']:.3f} per edit"),
            ("PSA writes delivered", f"{writes_per_s:,.0f}/s",
             f"target >= {TARGET_WRITES_PER_S:,}: "
             f"{common.verdict(writes_per_s >= TARGET_WRITES_PER_S)}"),
            ("limit: provider alone", f"{edits['limit']:,.0f}/s",
             f"engine at {writes_per_s / edits['limit']:.0%} of it (same PATCHes, no database)"),
            ("CPU during delivery", f"{edits['own_cpu']:.2f} s",
             f"engine process; simulator {edits['sim_cpu']:.2f} s (2 cores: "
             f"{(edits['own_cpu'] + edits['sim_cpu']) / edits['wall'] / 2:.0%} busy)"),
            ("PSA requests per record", f"{per_record:.3f}",
             f"target <= {TARGET_REQUESTS_PER_RECORD}: "
             f"{common.verdict(per_record <= TARGET_REQUESTS_PER_RECORD)}"),
            ("entries left", f"{edits['left']}", "must be 0"),
        ],
    )  # fmt: skip
    common.table(
        f"Push-all: {pushed['records']:,} organizations documented only in psasync",
        [
            ("dry run", f"{pushed['dry_wall']:.2f} s",
             f"target <= {dry_target:.1f} s: {common.verdict(pushed['dry_wall'] <= dry_target)}; "
             f"{pushed['records'] / pushed['dry_wall']:,.0f} records/s, {pushed['dry_status']}"),
            ("dry run plan", f"{pushed['dry_planned']:,}",
             f"would create or link; {pushed['dry_requests']} PSA reads, "
             f"{pushed['dry_writes']} writes"),
            ("real run", f"{pushed['real_wall']:.2f} s",
             f"{pushed['records'] / pushed['real_wall']:,.0f} records/s, {pushed['real_status']}"),
            ("created in the PSA", f"{pushed['real_created']:,}",
             f"{pushed['real_writes']:,} writes, {pushed['real_requests']:,} requests; "
             f"{pushed['linked']:,} linked"),
            ("peak RSS of the engine", f"{pushed['peak_rss_mb']:.0f} MB", "this process"),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
