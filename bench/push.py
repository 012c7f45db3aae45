"""Two-way push benchmark: edits delivered to the ConnectWise simulator, with and without
faults, and push-all.

    .venv/bin/python bench/push.py     # 5k records, 20k edits; faulty 250 x 20; 50k push-all
    .venv/bin/python bench/push.py --records 1000 --edits 4000 --fault-records 200 \\
        --fault-rounds 10 --push-all 5000
    .venv/bin/python bench/push.py --no-faults --push-all 0       # the no-fault delivery only
    .venv/bin/python bench/push.py --postgres postgres://postgres@127.0.0.1:5432/psasync_bench

Two simulators run in their own processes on 127.0.0.1 (their CPU is not the engine's, but
they share the machine's cores with it): one with a seeded dataset for the edits, one empty
for push-all. The engine runs in this process, on a fresh database. After a full sync with
two-way on, two delivery scenarios run on the same integration, each on its own
configurations:

    no faults  ``--edits`` local edits (through the same code as the GraphQL mutations)
               spread evenly over ``--records`` configurations, then the outbox is delivered.
    faults     ``--fault-records`` other configurations edited in ``--fault-rounds`` rounds
               (each round edits every record once, one of four fields in turn). Delivery
               starts after the first round and runs while the other rounds arrive, then until
               the outbox is empty. The simulator answers 429 with Retry-After: 1 to every
               third request throughout, and fails every request with 503 for 10 s once, from
               when a quarter of the records have been written. Its own, smaller default
               (250 records, 5,000 edits): a 429 on every third request makes nearly every
               chunk of reads and writes wait one Retry-After (1 s) or more, so this delivery
               is paced by Retry-After, not by CPU: 3-5 records/s with 16 in flight, the
               provider alone included. 5k records would take about twenty minutes.
    push-all   ``--push-all`` organizations documented only in psasync (each with a primary
               location for its address); a dry run (the plan), then the real run.

Figures, side by side for both delivery scenarios:

    edits landed         every record's last edit of each field is what the local record
                         holds AND what the PSA holds at the end (read over the simulator's
                         REST API, faults off); must be 100 %: otherwise the script exits 1
    PSA writes           per edit (coalescing) and per record (the simulator's counters)
    pre-read             GET requests during delivery / records delivered (the simulator's
                         per-method counter; retries after a 429 or a 503 count again)
    deliveries per s     records delivered (a record whose entries a batch settled; a record
                         edited again after its push is delivered again) / delivery wall;
                         beside the provider alone doing the same with no database: per chunk
                         (sized as the engine sizes it) one ``read_for_write`` of the records'
                         current versions, then one PATCH each, same concurrency (in the faulty
                         scenario under the same 429s, no outage). The engine/provider ratio.
    conflicts, left      conflicts recorded (0: only local edits happen) and outbox entries
                         left (must be 0: otherwise the script exits 1)
    push-all             records per second of the dry run and of the real run, its writes

Targets (2 cores): >= 1,500 PSA writes/s delivered with no faults, <= 1 write per record plus
1 read per chunk of each batch (no faults), edits landed 100 % and 0 entries left in both
scenarios (exit 1 otherwise), push-all dry run of 50k records <= 10 s. Prints one table per
part; not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common  # bench/common.py: this script's directory is on sys.path
import httpx

SCRIPT = Path(__file__).resolve()
ENGINE_PACKAGES = ("sync", "models", "simulators")
SQLITE_OPTIONS = "journal_mode=WAL&synchronous=NORMAL&busy_timeout=10000"
START_TIMEOUT = 600.0
DRAIN_TIMEOUT = 1_800.0  # seconds a delivery may take before the bench gives up

TARGET_WRITES_PER_S = 1_500
TARGET_DRY_RUN_S = 10.0  # for 50k records; scaled linearly for other sizes

# The faulty PSA (simulators/connectwise/faults.py): 429 + Retry-After on every third
# request throughout, and one outage while delivery is under way.
RATE_LIMITS = {"rate_limit_every": 3, "retry_after_seconds": 1}
OUTAGE_STATUS = 503
OUTAGE_S = 10.0
OUTAGE_AFTER = 0.25  # of the records written when the outage starts

# The configuration fields edited, and their ConnectWise names (the check reads the PSA
# over its REST API, not through the engine's mapping).
FIELDS = ("notes", "serial_number", "asset_tag", "model")
PSA_FIELDS = {
    "notes": "notes",
    "serial_number": "serialNumber",
    "asset_tag": "tagNumber",
    "model": "modelNumber",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=5_000, help="configurations edited")
    parser.add_argument("--edits", type=int, default=20_000, help="local edits in all")
    parser.add_argument(
        "--faults",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also deliver to a faulty PSA (429s and an outage)",
    )
    parser.add_argument(
        "--fault-records", type=int, default=250, help="configurations edited, faulty PSA"
    )
    parser.add_argument("--fault-rounds", type=int, default=20, help="edits per record, faulty PSA")
    parser.add_argument(
        "--push-all", type=int, default=50_000, help="organizations pushed (0: skip)"
    )
    parser.add_argument("--postgres", help="a PostgreSQL URL whose database name has 'bench'")
    parser.add_argument("--concurrency", type=int, default=None, help="requests in flight")
    parser.add_argument("--profile", help="write cProfile stats of delivery and push-all here")
    args = parser.parse_args(argv)
    if not args.faults:
        args.fault_records = 0
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

    async def traffic(self) -> dict[str, Any]:
        return (await self._faults("GET"))["traffic"]  # type: ignore[no-any-return]

    async def set_faults(self, settings: dict[str, int]) -> None:
        await self._faults("POST", settings)

    async def clear_faults(self) -> None:
        await self._faults("DELETE")

    async def _faults(self, method: str, settings: dict[str, int] | None = None) -> Any:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
            answer = await client.request(
                method, f"{self.base_url}/__simulator/faults", json=settings
            )
            answer.raise_for_status()
            return answer.json()

    async def configurations(self, psa_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The configurations' edited fields as the PSA holds them, over its REST API."""
        token = base64.b64encode(
            f"{self.company_id}+{self.public_key}:{self.private_key}".encode()
        ).decode()
        headers = {"Authorization": f"Basic {token}", "clientId": "psasync-bench"}
        url = f"{self.base_url}/v2025_1/apis/3.0/company/configurations"
        found: dict[int, dict[str, Any]] = {}
        async with httpx.AsyncClient(timeout=30.0, trust_env=False, headers=headers) as client:
            for start in range(0, len(psa_ids), 200):
                ids = ",".join(str(i) for i in psa_ids[start : start + 200])
                answer = await client.get(
                    url,
                    params={
                        "conditions": f"id in ({ids})",
                        "fields": ",".join(["id", *PSA_FIELDS.values()]),
                        "pageSize": "1000",
                    },
                )
                answer.raise_for_status()
                found.update({int(raw["id"]): raw for raw in answer.json()})
        return found

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
    # Enough companies that every one of them holds some of the edited configurations
    # (five each), with some to spare for the few the dataset leaves out of scope.
    seeded = Simulator(companies=max(10, (args.records + args.fault_records) // 5 + 2))
    empty = Simulator(companies=0) if args.push_all else None
    try:
        await common.fresh_database(url)
        await migrate(url)
        await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
        backend = await common.describe_backend(url)
        await seeded.ready()
        if empty is not None:
            await empty.ready()
        bench = await _synced(args, seeded)
        quiet = await _no_faults(args, bench)
        faulty = await _faulty(args, bench) if args.faults else None
        pushed = await _push_all(args, empty) if empty is not None else None
        await Tortoise.close_connections()
        load = f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after (1-min load average)"
        return _report(args, backend, engine, load, quiet, faulty, pushed)
    finally:
        seeded.stop()
        if empty is not None:
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


@dataclass
class Bench:
    """The synced integration both delivery scenarios edit, each its own configurations."""

    sim: Simulator
    account: Any
    integration: Any
    worker: Any
    records: list[uuid.UUID]  # no faults
    fault_records: list[uuid.UUID]

    @property
    def deliverer(self) -> Any:
        return self.worker.deliverer

    @property
    def chunk(self) -> int:
        """Records read together then written, as ``sync.push._update`` sizes a chunk."""
        from sync import push

        per_second = max(1, self.integration.push_rate_per_minute) / 60
        return max(1, min(push.CHUNK, self.deliverer.concurrency, int(per_second)))


async def _synced(args: argparse.Namespace, sim: Simulator) -> Bench:
    from models import AssetKind, Integration, LinkState, RecordLink
    from sync.sync_settings import SettingsChange, update

    account, integration, worker = await _integration(sim, "Bench edits")
    _say("first full sync of the seeded simulator ...")
    await worker.run_until_idle()
    await update(integration, SettingsChange(two_way_enabled=True))
    await worker.run_until_idle()
    integration = await Integration.get(id=integration.id)
    wanted = args.records + args.fault_records
    ids = await (
        RecordLink.filter(
            integration_id=integration.id, kind=AssetKind.CONFIGURATION, state=LinkState.SYNCED
        )
        .order_by("psa_id")
        .limit(wanted)
        .values_list("local_id", flat=True)
    )
    records = [uuid.UUID(str(i)) for i in ids]
    if len(records) < wanted:
        raise RuntimeError(f"only {len(records)} configurations synced; raise the dataset")
    if args.concurrency:
        worker.deliverer.concurrency = args.concurrency
    return Bench(
        sim, account, integration, worker, records[: args.records], records[args.records :]
    )


@dataclass
class Delivered:
    """What one delivery scenario did, and what it left."""

    records: int
    edits: int
    edit_wall: float
    wall: float  # delivery: from its start until the outbox was empty
    traffic: dict[str, Any]  # the simulator's counters during delivery (differences)
    deliveries: int  # records delivered (a record delivered twice counts twice)
    reads: int  # reads the engine's chunking calls for: one per chunk of each batch
    stopped: int  # batches that stopped on an outage (the PSA gave no answer)
    landed: int  # records whose last edits both sides hold
    conflicts: int
    left: int
    failed: int
    sim_cpu: float
    own_cpu: float
    alone: Alone
    concurrency: int  # requests in flight
    chunk: int  # records read together, then written
    during: int = 0  # edits made while delivery ran
    outage: dict[str, float] = field(default_factory=dict)


@dataclass
class Alone:
    """The provider alone, no database: records per second, same concurrency."""

    read_and_write: float  # per chunk, one read of the records then one PATCH each
    write_only: float | None = None  # PATCHes only, all records at once (the old limit)
    gave_up: int = 0  # requests whose retries ran out (429 after 429)


async def _no_faults(args: argparse.Namespace, bench: Bench) -> Delivered:
    from models import AssetKind, OutboxEntry
    from sync import local_edits

    records = bench.records
    _say(f"no faults: {args.edits} edits over {len(records)} configurations ...")
    expected: dict[uuid.UUID, dict[str, str]] = {r: {} for r in records}
    started = time.perf_counter()
    for i in range(args.edits):
        record = records[i % len(records)]
        column = FIELDS[(i // len(records)) % len(FIELDS)]
        value = f"bench {i}"
        await local_edits.update(
            AssetKind.CONFIGURATION, bench.account.id, record, {column: value}, actor="bench"
        )
        expected[record][column] = value
    edit_wall = time.perf_counter() - started
    queued = await OutboxEntry.filter(integration_id=bench.integration.id).count()

    _say(f"delivering {queued} outbox entries ...")
    counter = Deliveries(bench.chunk)
    before = await bench.sim.traffic()
    sim_cpu, own_cpu = bench.sim.cpu_seconds(), time.process_time()
    done = asyncio.Event()
    done.set()
    started = time.perf_counter()
    with _profiled(args, "delivery"), counter.counting():
        await _drain(bench, done)
    wall = time.perf_counter() - started
    sim_cpu, own_cpu = bench.sim.cpu_seconds() - sim_cpu, time.process_time() - own_cpu
    traffic = _difference(await bench.sim.traffic(), before)
    outcome = await _outcome(bench, expected)
    _say("the floor: the same reads and PATCHes from the provider alone, no engine ...")
    alone = await _provider_alone(bench, records)
    alone.write_only = (await _provider_alone(bench, records, read=False)).read_and_write
    return Delivered(
        records=len(records), edits=args.edits, edit_wall=edit_wall, wall=wall,
        traffic=traffic, deliveries=counter.records, reads=counter.reads,
        stopped=counter.stopped,
        sim_cpu=sim_cpu, own_cpu=own_cpu, alone=alone,
        concurrency=bench.deliverer.concurrency, chunk=bench.chunk, **outcome,
    )  # fmt: skip


async def _faulty(args: argparse.Namespace, bench: Bench) -> Delivered:
    from models import AssetKind
    from sync import local_edits

    records, sim = bench.fault_records, bench.sim
    rounds = args.fault_rounds
    expected: dict[uuid.UUID, dict[str, str]] = {r: {} for r in records}
    edit_wall = 0.0
    made = 0

    async def edit_round(number: int) -> None:
        nonlocal edit_wall, made
        column = FIELDS[number % len(FIELDS)]
        started = time.perf_counter()
        for record in records:
            value = f"faulty {made}"
            await local_edits.update(
                AssetKind.CONFIGURATION, bench.account.id, record, {column: value}, actor="bench"
            )
            expected[record][column] = value
            made += 1
        edit_wall += time.perf_counter() - started

    _say(f"faulty PSA: {rounds} rounds of edits over {len(records)} configurations ...")
    await edit_round(0)
    await sim.set_faults(RATE_LIMITS)
    counter = Deliveries(bench.chunk)
    before = await sim.traffic()
    sim_cpu, own_cpu = sim.cpu_seconds(), time.process_time()
    edits_done = asyncio.Event()
    _say(f"  delivering under 429s while {rounds - 1} more rounds arrive; one outage ...")
    started = time.perf_counter()
    seen: dict[str, float] = {}
    with _profiled(args, "faulty-delivery"), counter.counting():
        delivery = asyncio.create_task(_drain(bench, edits_done))
        outage = asyncio.create_task(_outage(sim, before["writes"], len(records), seen))
        try:
            for number in range(1, rounds):
                await edit_round(number)
            edits_done.set()
            await delivery
            wall = time.perf_counter() - started
            if "began" in seen:  # the first write after it may land as the outbox empties
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(outage), OUTAGE_S + 5)
        finally:
            delivery.cancel()
            outage.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await outage
    sim_cpu, own_cpu = sim.cpu_seconds() - sim_cpu, time.process_time() - own_cpu
    traffic = _difference(await sim.traffic(), before)
    await sim.clear_faults()
    outcome = await _outcome(bench, expected)
    _say("the floor: the same reads and PATCHes from the provider alone, same 429s ...")
    await sim.set_faults(RATE_LIMITS)
    try:
        alone = await _provider_alone(bench, records)
    finally:
        await sim.clear_faults()
    return Delivered(
        records=len(records), edits=made, edit_wall=edit_wall, wall=wall, traffic=traffic,
        deliveries=counter.records, reads=counter.reads, stopped=counter.stopped,
        sim_cpu=sim_cpu,
        own_cpu=own_cpu, alone=alone, concurrency=bench.deliverer.concurrency,
        chunk=bench.chunk, during=made - len(records), outage=seen, **outcome,
    )  # fmt: skip


class Deliveries:
    """Records delivered, counted around ``sync.push.push_batch`` (the deliverer calls it
    through its module): a record whose entries are gone after its batch was delivered. One
    extra query per batch of up to 200 records."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self.records = 0
        self.stopped = 0
        self.reads = 0  # one read per chunk of each batch's records, as the engine chunks

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        from models import OutboxEntry
        from sync import push

        original = push.push_batch

        async def counted(integration: Any, provider: Any, groups: Any, *rest: Any) -> Any:
            report = await original(integration, provider, groups, *rest)
            firsts = [group.entry_ids[0] for group in groups]
            left = set(await OutboxEntry.filter(id__in=firsts).values_list("id", flat=True))
            self.records += sum(1 for i in firsts if i not in left)
            self.stopped += bool(report.stop)
            self.reads += -(-len(groups) // self.chunk)
            return report

        push.push_batch = counted
        try:
            yield
        finally:
            push.push_batch = original


async def _drain(bench: Bench, edits_done: asyncio.Event) -> None:
    """Deliver until the edits are all made and no entry is pending, waiting out the
    back-off an outage sets (``Deliverer.run_due`` skips what is not due yet)."""
    from models import OutboxEntry, OutboxStatus

    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        if await bench.deliverer.run_due():
            continue
        if edits_done.is_set():
            pending = await OutboxEntry.filter(
                integration_id=bench.integration.id, status=OutboxStatus.PENDING
            ).count()
            if not pending:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"delivery did not end in {DRAIN_TIMEOUT:.0f} s")
        await asyncio.sleep(0.05)


async def _outage(sim: Simulator, writes_before: int, records: int, seen: dict[str, float]) -> None:
    """One outage while delivery is under way: every request fails with 503 for
    ``OUTAGE_S`` from when ``OUTAGE_AFTER`` of the records have been written. Fills ``seen``:
    when it began (seconds after this task started, i.e. into the delivery), and how long
    after its end the first write landed again."""
    started = time.perf_counter()
    threshold = writes_before + max(1, int(records * OUTAGE_AFTER))
    await _writes_past(sim, threshold - 1)
    await sim.set_faults({"outage_status": OUTAGE_STATUS})
    seen["began"] = time.perf_counter() - started
    try:
        await asyncio.sleep(OUTAGE_S)
    finally:
        await sim.set_faults({"outage_status": 0})
    ended = time.perf_counter()
    await _writes_past(sim, (await sim.traffic())["writes"])
    seen["resumed"] = time.perf_counter() - ended


async def _writes_past(sim: Simulator, count: int) -> None:
    """Return once the simulator has applied more than ``count`` writes (its counter)."""
    while True:
        if (await sim.traffic())["writes"] > count:
            return
        await asyncio.sleep(0.05)


def _difference(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    counters = {k: v - before.get(k, 0) for k, v in after.items() if isinstance(v, int)}
    methods = before.get("by_method", {})
    counters.update({m: n - methods.get(m, 0) for m, n in after.get("by_method", {}).items()})
    return counters


async def _outcome(bench: Bench, expected: dict[uuid.UUID, dict[str, str]]) -> dict[str, int]:
    """Edits landed (every record's last edit of each field, on both sides), conflicts
    recorded, entries left."""
    from models import (
        AssetKind,
        Configuration,
        OutboxEntry,
        OutboxStatus,
        RecordLink,
        SyncConflict,
    )

    integration_id = bench.integration.id
    ids = list(expected)
    local = {
        uuid.UUID(str(row["id"])): row
        for row in await Configuration.filter(id__in=ids).values("id", *FIELDS)
    }
    links = {
        uuid.UUID(str(local_id)): int(psa_id)
        for local_id, psa_id in await RecordLink.filter(
            integration_id=integration_id, kind=AssetKind.CONFIGURATION, local_id__in=ids
        ).values_list("local_id", "psa_id")
    }
    psa = await bench.sim.configurations(sorted(links.values()))
    landed, misses = 0, []
    for local_id, wanted in expected.items():
        row = local.get(local_id, {})
        raw = psa.get(links.get(local_id, -1), {})
        if all(row.get(c) == v and raw.get(PSA_FIELDS[c]) == v for c, v in wanted.items()):
            landed += 1
        elif len(misses) < 5:
            have = {c: (row.get(c), raw.get(PSA_FIELDS[c])) for c in wanted}
            misses.append(f"  {local_id}: wanted {wanted}, (local, PSA) {have}")
    if misses:
        _say(f"{len(expected) - landed} records do not hold their last edits, e.g.:")
        for miss in misses:
            _say(miss)
    entries = OutboxEntry.filter(integration_id=integration_id)
    return {
        "landed": landed,
        "conflicts": await SyncConflict.filter(
            integration_id=integration_id, local_id__in=ids
        ).count(),
        "left": await entries.count(),
        "failed": await entries.filter(status=OutboxStatus.FAILED).count(),
    }


async def _provider_alone(bench: Bench, records: list[uuid.UUID], read: bool = True) -> Alone:
    """Records per second from the provider alone, no database, same concurrency: per chunk
    of records (sized as the engine's), one ``read_for_write`` then one PATCH each; or, with
    ``read`` False, the PATCHes only, all at once (what the simulator and the HTTP stacks
    allow on this machine). A request whose retries run out is counted, not raised."""
    from models import AssetKind, RecordLink
    from sync.errors import SyncError
    from sync.providers.base import PsaChange

    links = await (
        RecordLink.filter(integration_id=bench.integration.id, local_id__in=records)
        .order_by("psa_id")
        .values_list("psa_id", "psa_parent_id")
    )
    provider = await _open(bench.integration)
    gate = asyncio.Semaphore(bench.deliverer.concurrency)
    gave_up = 0

    async def attempt(request: Callable[[], Awaitable[Any]]) -> None:
        nonlocal gave_up
        async with gate:
            try:
                await request()
            except SyncError:
                gave_up += 1

    def patch(psa_id: int) -> Callable[[], Awaitable[Any]]:
        change = PsaChange(values={"notes": f"raw {psa_id}"})
        return lambda: provider.update_record(AssetKind.CONFIGURATION, psa_id, None, change)

    chunk = bench.chunk if read else len(links)
    try:
        started = time.perf_counter()
        for start in range(0, len(links), chunk):
            part = [(int(p), parent) for p, parent in links[start : start + chunk]]
            if read:
                await attempt(lambda: provider.read_for_write(AssetKind.CONFIGURATION, part))  # noqa: B023
            await asyncio.gather(*(attempt(patch(psa_id)) for psa_id, _ in part))
        return Alone(len(links) / (time.perf_counter() - started), gave_up=gave_up)
    finally:
        await provider.aclose()


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
    quiet: Delivered,
    faulty: Delivered | None,
    pushed: dict[str, Any] | None,
) -> int:
    """Print the tables; 1 when an edit did not land or an entry is left, else 0."""
    import platform

    runs = [quiet] if faulty is None else [quiet, faulty]
    chunk = quiet.chunk
    print()
    print(f"psasync push benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"  machine: {os.cpu_count()} CPUs, {platform.python_implementation()} "
          f"{platform.python_version()}, {backend}")  # fmt: skip
    print(f"  {engine}")
    print(f"  load: {load}")
    print()

    def each(show: Callable[[Delivered], str]) -> list[str]:
        return [show(run) for run in runs]

    def rate(run: Delivered) -> float:
        return run.deliveries / run.wall if run.wall else 0.0

    def writes_rate(run: Delivered) -> float:
        return run.traffic["writes"] / run.wall if run.wall else 0.0

    def per_delivery(run: Delivered, count: int) -> float:
        return count / run.deliveries if run.deliveries else float("inf")

    def outage(run: Delivered) -> str:
        if run is quiet:
            return "-"
        if "began" not in run.outage:
            return "none"
        return f"{OUTAGE_S:.0f} s"

    def faulty_too(note: str) -> str:
        return note if faulty else ""

    def outside_outage(run: Delivered) -> float:
        """Deliveries per second with the outage and the wait after it taken out."""
        lost = OUTAGE_S + run.outage.get("resumed", 0.0) if "began" in run.outage else 0.0
        return run.deliveries / (run.wall - lost) if run.wall > lost else 0.0

    # One write per record delivered, one read per chunk of each batch (a batch of 200
    # records in chunks of 16 is 13 reads, not 12.5).
    floor = per_delivery(quiet, quiet.deliveries + quiet.reads)
    requests_ok = per_delivery(quiet, quiet.traffic["requests"]) <= floor
    landed_ok = all(run.landed == run.records for run in runs)
    left_ok = all(run.left == 0 for run in runs)
    header = ["no faults", "faulty PSA"][: len(runs)]
    rows: list[tuple[str, ...]] = [
        ("configurations edited", *each(lambda r: f"{r.records:,}"),
         "each scenario its own, on one integration"),
        ("local edits", *each(lambda r: f"{r.edits:,}"),
         f"no faults: {quiet.edits / quiet.records:g} per record, all before delivery"
         + (f"; faulty: {args.fault_rounds} rounds, {faulty.during:,} while delivering"
            if faulty else "")),
        ("edits saved", *each(lambda r: f"{r.edits / r.edit_wall:,.0f}/s"),
         "each its own transaction with its outbox entry"
         + faulty_too(" (faulty: beside delivery)")),
        ("delivery", *each(lambda r: f"{r.wall:.2f} s"),
         f"{quiet.concurrency} requests in flight, chunks of {chunk}; until the outbox is empty"),
        ("records delivered", *each(lambda r: f"{r.deliveries:,}"),
         "a record edited again after its push is delivered again"),
        ("deliveries per second", *each(lambda r: f"{rate(r):,.1f}/s"),
         "records delivered / delivery wall"),
        ("provider alone", *each(lambda r: f"{r.alone.read_and_write:,.1f}/s"),
         f"per chunk of {chunk}: one read, then the PATCHes; no database"
         + faulty_too(" (faulty: the same 429s, no outage)")),
        ("engine / provider", *each(lambda r: f"{rate(r) / r.alone.read_and_write:.0%}"),
         "deliveries per second against the provider's records per second"
         + (f"; faulty, the outage and the wait after it taken out: "
            f"{outside_outage(faulty) / faulty.alone.read_and_write:.0%}"
            if faulty and "began" in faulty.outage else "")),
        ("provider, PATCHes only", *each(
            lambda r: f"{r.alone.write_only:,.0f}/s" if r.alone.write_only else "-"),
         "the previous limit: one PATCH per record, all at once, no read"),
        ("PSA writes", *each(lambda r: f"{r.traffic['writes']:,}"),
         "applied writes, the simulator's counter"),
        ("PSA writes per edit", *each(lambda r: f"{r.traffic['writes'] / r.edits:.3f}"),
         "several edits of a record make one write"),
        ("PSA writes per record", *each(lambda r: f"{r.traffic['writes'] / r.records:.2f}"),
         "per configuration edited"),
        ("PSA writes delivered", *each(lambda r: f"{writes_rate(r):,.0f}/s"),
         f"no faults: target >= {TARGET_WRITES_PER_S:,}: "
         f"{common.verdict(writes_rate(quiet) >= TARGET_WRITES_PER_S)}"),
        ("pre-read GETs per delivery", *each(
            lambda r: f"{per_delivery(r, r.traffic.get('GET', 0)):.3f}"),
         f"GETs / records delivered; one per chunk of each batch: "
         f"{per_delivery(quiet, quiet.reads):.3f}; retries count again"),
        ("requests per delivery", *each(
            lambda r: f"{per_delivery(r, r.traffic['requests']):.3f}"),
         f"no faults: target <= {floor:.3f} (a write each, a read per chunk): "
         f"{common.verdict(requests_ok)}"),
        ("CPU during delivery", *each(lambda r: f"{r.own_cpu:.1f} s"),
         "engine process; simulator " + ", ".join(f"{r.sim_cpu:.1f} s" for r in runs)
         + faulty_too("; faulty: with the edits made meanwhile")),
        ("edits landed", *each(lambda r: f"{r.landed / r.records:.1%}"),
         f"last edit of each field on both sides; must be 100 %: {common.verdict(landed_ok)}"),
        ("conflicts recorded", *each(lambda r: f"{r.conflicts}"),
         f"only local edits happen: should be 0: "
         f"{common.verdict(all(r.conflicts == 0 for r in runs))}"),
        ("entries left", *each(lambda r: f"{r.left} ({r.failed} failed)"),
         f"must be 0: {common.verdict(left_ok)}"),
    ]  # fmt: skip
    if faulty:
        rows[-4:-4] = [
            ("refused: 429 / 503", *each(
                lambda r: f"{r.traffic['rate_limited']:,} / {r.traffic['server_errors']:,}"),
             "requests the simulator failed on purpose (each retried or waited for)"),
            ("outage", *each(outage),
             f"503 to every request from {faulty.outage['began']:.1f} s into delivery; first "
             f"write {faulty.outage.get('resumed', float('nan')):.1f} s after it ended"
             if "began" in faulty.outage else "did not fall within delivery"),
            ("batches stopped", *each(lambda r: f"{r.stopped}"),
             "on an outage or retries run out: the rest of the batch waits (back-off)"),
        ]  # fmt: skip
    title = f"Edits delivered: {quiet.records:,} configurations, no faults"
    if faulty:
        title += f"; {faulty.records:,}, faulty PSA (429 every 3rd request, one outage)"
    common.table(title, rows, header)
    if pushed is not None:
        dry_target = TARGET_DRY_RUN_S * pushed["records"] / 50_000
        common.table(
            f"Push-all: {pushed['records']:,} organizations documented only in psasync",
            [
                ("dry run", f"{pushed['dry_wall']:.2f} s",
                 f"target <= {dry_target:.1f} s: "
                 f"{common.verdict(pushed['dry_wall'] <= dry_target)}; "
                 f"{pushed['records'] / pushed['dry_wall']:,.0f} records/s, "
                 f"{pushed['dry_status']}"),
                ("dry run plan", f"{pushed['dry_planned']:,}",
                 f"would create or link; {pushed['dry_requests']} PSA reads, "
                 f"{pushed['dry_writes']} writes"),
                ("real run", f"{pushed['real_wall']:.2f} s",
                 f"{pushed['records'] / pushed['real_wall']:,.0f} records/s, "
                 f"{pushed['real_status']}"),
                ("created in the PSA", f"{pushed['real_created']:,}",
                 f"{pushed['real_writes']:,} writes, {pushed['real_requests']:,} requests; "
                 f"{pushed['linked']:,} linked"),
                ("peak RSS of the engine", f"{pushed['peak_rss_mb']:.0f} MB", "this process"),
            ],
        )  # fmt: skip
    if not (landed_ok and left_ok):
        print("FAILED: an edit did not land or an outbox entry is left (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
