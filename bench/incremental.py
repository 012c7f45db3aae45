"""Incremental-sync benchmark: one reconciliation poll after 10 edits in a large ConnectWise.

    .venv/bin/python bench/incremental.py                      # ~200k records, SQLite, 3 runs
    .venv/bin/python bench/incremental.py --repeat 5 --companies 2000
    .venv/bin/python bench/incremental.py --postgres postgres://postgres@127.0.0.1:5432/psasync_incr_bench
    .venv/bin/python bench/incremental.py --profile /tmp/psasync-incremental   # + one profiled run

What it does, all in this process (the simulator is served by uvicorn in a thread, as the
tests serve it, so the bench can edit its store the way a person edits ConnectWise's UI):

    1. builds a simulator dataset of about 200,000 records (companies, sites, contacts,
       configurations; 13 per company by default) and prints the real counts;
    2. adds a ConnectWise integration with every type and status enabled to a fresh
       database and runs the first full sync (timed, for information);
    3. ``--repeat`` times: changes 10 synced records in the simulator's store
       (``store.update``, which bumps ``_info.lastUpdated`` as a UI edit does): 2 companies,
       4 contacts, 4 configurations, picked at random from SYNCED ``RecordLink`` rows, each
       run other ones; waits ``--settle`` seconds; then times one incremental run end to end
       (``jobs.enqueue(kind=INCREMENTAL)`` + ``Worker.run_until_idle()``) and counts the PSA
       requests it made, per kind, through a recording wrapper around the simulator's ASGI
       app; checks that the 10 changes are visible locally, that the run counted 10 updated
       records, and that no other asset or link row was written.

The wait (``--settle``, default 1.1 s) stands for the time between an edit and the next
poll: the engine trusts a PSA stamp only when it read the record at least a second after it
(``sync.columns.stamps``). A record read within the second of its stamp is compared again by
the next run (the runs follow each other within the 2-minute overlap) and its link is
written again, sites re-read for a company: with ``--settle 0`` that happens to the records
whose edit and read fall in the same wall-clock second.

Targets: the incremental run <= 0.3 s end to end (median over the runs), and <= 2 PSA
requests per polled kind (organizations, contacts, configurations). Sites are reported
apart: ConnectWise has no site listing across companies, so the poll reads the sites of each
changed company, one request per changed company.

Timing notes. The simulator shares this process (and the GIL) with the engine: its own time
is measured in the wrapper (``PSA time``, summed over requests) and by its thread's CPU
clock, so what the engine itself costs can be told apart. Each SQL statement the engine
awaits is timed too (the slowest are listed), as are the worker's steps and the incremental
sync's phases. cProfile (``--profile``) sees only the event loop's thread: time spent in
SQLite's thread (aiosqlite) shows there as waiting in ``select``. The simulator's objects
are frozen out of the cyclic collector once built (they would not be in the engine's
process in production), and a collection runs before each timed run. Runs of this script
take a lock on it and queue; they print the load average and the hypervisor's steal share.
The exit status is 1 only when a result is wrong: a missed target is a figure, and
``make bench`` goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import gc
import os
import platform
import random
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common  # bench/common.py: this script's directory is on sys.path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SCRIPT = Path(__file__).resolve()
ENGINE_PACKAGES = ("sync", "models", "simulators")
SQLITE_OPTIONS = "journal_mode=WAL&synchronous=NORMAL&busy_timeout=10000"
CLIENT_ID = "psasync-bench"

# ~200,000 records with the dataset's defaults (2 sites, 5 contacts, 5 configurations per
# company): 15,400 + 30,800 + 77,000 + 77,000 = 200,200.
DEFAULT_COMPANIES = 15_400

# The 10 edits of each run: (collection, how many, store field, local column).
EDITS: tuple[tuple[str, int, str, str], ...] = (
    ("companies", 1, "name", "name"),
    ("companies", 1, "name", "name"),
    ("contacts", 2, "lastName", "last_name"),
    ("contacts", 2, "title", "title"),
    ("configurations", 1, "name", "name"),
    ("configurations", 1, "serialNumber", "serial_number"),
    ("configurations", 1, "notes", "notes"),
    ("configurations", 1, "ipAddress", "primary_ip"),
)
CHANGES_PER_RUN = sum(n for _, n, _, _ in EDITS)

# Targets.
TARGET_WALL_S = 0.3
TARGET_REQUESTS_PER_KIND = 2
POLLED_KINDS = ("organizations", "contacts", "configurations")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--companies",
        type=int,
        default=DEFAULT_COMPANIES,
        help="dataset size; sites, contacts and configurations are 2, 5 and 5 per company "
        f"(default {DEFAULT_COMPANIES:,}: about 200,000 records)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="incremental runs measured")
    parser.add_argument(
        "--settle",
        type=float,
        default=1.1,
        help="seconds between the edits and the poll (the engine trusts a PSA stamp read "
        "at least 1 s after it was set); 0: poll at once",
    )
    parser.add_argument(
        "--postgres",
        "--database-url",
        dest="postgres",
        metavar="URL",
        help="run on PostgreSQL (the database, whose name must contain 'bench', is dropped "
        "and created fresh)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="after the measured runs, one more run (10 other edits) under cProfile: saves "
        "incremental.prof in DIR and prints its top functions",
    )
    parser.add_argument("--verbose", action="store_true", help="list every PSA request of each run")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    signal.signal(signal.SIGTERM, _terminated)
    with common.machine_lock(SCRIPT, _say):
        return asyncio.run(_benchmark(args))


def _terminated(signum: int, _frame: object) -> None:
    _say(f"stopped by signal {signum}: cleaning up")
    raise SystemExit(128 + signum)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------- PSA requests


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    status: int
    seconds: float  # inside the simulator's app, response sent

    @property
    def kind(self) -> str:
        return request_kind(self.path)


_API = re.compile(r"^/[^/]+/apis/3\.0/")
_NUMBER = re.compile(r"/\d+(?=/|$)")
KINDS = {
    "company/companies": "organizations",
    "company/companies/{id}/sites": "locations",
    "company/contacts": "contacts",
    "company/configurations": "configurations",
}


def request_kind(path: str) -> str:
    """organizations, locations, contacts, configurations, or the path with ids as {id}."""
    if path.startswith("/login/companyinfo/"):
        return "codebase discovery"
    rest = _NUMBER.sub("/{id}", _API.sub("", path))
    return KINDS.get(rest, rest)


class RequestLog:
    """Wraps the simulator's ASGI app and records every HTTP request it answers.

    ``Traffic`` counts API requests in all; the benchmark needs them per path, and how long
    the simulator took over each. Appends happen on the server thread (a list append is
    atomic under the GIL); the benchmark reads the list between runs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[Request] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.requests.append(
                Request(
                    scope["method"],
                    scope["path"],
                    scope.get("query_string", b"").decode("latin-1"),
                    status,
                    time.perf_counter() - start,
                )
            )


# --------------------------------------------------------------------- timing the run


class Timeline:
    """Wall time spent in wrapped coroutine functions, per label (calls may nest only
    across labels that are reported apart)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()

    def wrap(
        self, label: str | Callable[..., str], fn: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            name = label(*args, **kwargs) if callable(label) else label
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1

        return timed

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


class SqlLog:
    """Wall time of every SQL statement the engine awaits (Tortoise's client methods,
    wrapped on the default connection's class and its transaction wrappers)."""

    METHODS = ("execute_insert", "execute_many", "execute_query", "execute_query_dict",
               "execute_script")  # fmt: skip

    def __init__(self) -> None:
        self.statements: list[tuple[str, float]] = []
        self._inside: contextvars.ContextVar[bool] = contextvars.ContextVar("sql", default=False)

    def install(self) -> Callable[[], None]:
        from tortoise import connections
        from tortoise.backends.base.client import BaseDBAsyncClient

        root = type(connections.get("default"))
        classes = [c for c in root.__mro__ if issubclass(c, BaseDBAsyncClient)]
        stack = [root]
        while stack:
            for sub in stack.pop().__subclasses__():
                if sub not in classes:
                    classes.append(sub)
                    stack.append(sub)
        undo: list[tuple[type, str, Any]] = []
        for cls in classes:
            for name in self.METHODS:
                if name in vars(cls):
                    original = vars(cls)[name]
                    setattr(cls, name, self._wrap(original))
                    undo.append((cls, name, original))

        def uninstall() -> None:
            for cls, name, original in reversed(undo):
                setattr(cls, name, original)

        return uninstall

    def _wrap(self, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        log = self

        async def timed(client: Any, *args: Any, **kwargs: Any) -> Any:
            if log._inside.get():  # an override calling its base: count the outer call only
                return await method(client, *args, **kwargs)
            token = log._inside.set(True)
            start = time.perf_counter()
            try:
                return await method(client, *args, **kwargs)
            finally:
                log._inside.reset(token)
                sql = args[0] if args and isinstance(args[0], str) else "?"
                log.statements.append((sql, time.perf_counter() - start))

        return timed


_PARAMS = re.compile(r"(\?|\$\d+)(\s*,\s*(\?|\$\d+))+")
_ALIAS = re.compile(r'("\w+") \1')  # Tortoise's `"col" "col"` in value queries
_CASES = re.compile(r"(WHEN \S+=\S+ THEN \S+ )+")


def statement_shape(sql: str, width: int = 160) -> str:
    """A statement with its parameter lists folded, cut to ``width``: a key to group by."""
    shape = _CASES.sub("WHEN … ", _PARAMS.sub("…", " ".join(sql.split())))
    shape = _ALIAS.sub(r"\1", shape)
    return shape if len(shape) <= width else shape[: width - 1] + "…"


# The worker's steps, in the order they run; the incremental sync's own steps inside it.
WORKER_STEPS = (
    "requeue_expired",
    "outbox + inbox checks",
    "claim",
    "catch-up pushes",
    "open provider",
    "incremental_sync",
    "finish",
)
SYNC_STEPS = (
    "load reference index",
    "phase organizations",
    "phase locations",
    "phase contacts",
    "phase configurations",
    "phase relations",
)


def instrument(worker: Any, timeline: Timeline) -> Callable[[], None]:
    """Time the worker's steps and the incremental sync's phases; returns an undo."""
    from models import AssetKind
    from sync import incremental, reference, runner

    undo: list[Callable[[], None]] = []

    def patch(owner: Any, name: str, label: str | Callable[..., str]) -> None:
        original = getattr(owner, name)
        own = name in vars(owner)  # a module's global or an instance's attribute
        setattr(owner, name, timeline.wrap(label, original))

        def restore() -> None:
            if own:
                setattr(owner, name, original)
            else:  # a method found on the class: drop the instance's shadow
                delattr(owner, name)

        undo.append(restore)

    patch(worker, "requeue_expired", "requeue_expired")
    patch(worker.deliverer, "run_due", "outbox + inbox checks")
    patch(worker.inbox, "run_due", "outbox + inbox checks")
    patch(worker, "claim", "claim")
    patch(worker, "_catch_up", "catch-up pushes")
    patch(worker, "open_provider", "open provider")
    patch(worker, "_finish", "finish")
    patch(runner, "incremental_sync", "incremental_sync")
    patch(reference, "load_index", "load reference index")
    names = {
        AssetKind.ORGANIZATION: "organizations",
        AssetKind.CONTACT: "contacts",
        AssetKind.CONFIGURATION: "configurations",
    }
    patch(incremental, "_changed", lambda ctx, kind, *a, **k: f"phase {names[kind]}")
    patch(incremental, "sync_locations", "phase locations")
    patch(incremental, "resolve_pending_relations", "phase relations")

    def undo_all() -> None:
        for restore in reversed(undo):
            restore()

    return undo_all


def _thread_cpu(thread: threading.Thread | None) -> float:
    """CPU seconds a thread has used (Linux), or 0.0 where that cannot be read."""
    if thread is None or thread.ident is None:
        return 0.0
    with contextlib.suppress(OSError, AttributeError):
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return 0.0


def _simulator_thread() -> threading.Thread | None:
    for thread in threading.enumerate():
        if thread.name == "connectwise-simulator":
            return thread
    return None


def _cpu_times() -> list[int] | None:
    """The machine's CPU counters from /proc/stat (user … steal), or None."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    return [int(v) for v in first[1:9]]


def _steal(before: list[int] | None, after: list[int] | None) -> str:
    if before is None or after is None:
        return "unknown"
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta) or 1
    busy = total - delta[3] - delta[4]
    return f"{100 * delta[7] / total:.1f}% steal, {100 * busy / total:.0f}% busy"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


# ----------------------------------------------------------------------------- edits


@dataclass
class Edit:
    collection: str
    kind: Any  # AssetKind
    psa_id: int
    local_id: Any
    link_id: Any
    psa_field: str
    column: str
    value: str


@dataclass
class RunResult:
    index: int
    edits: list[Edit]
    wall: float  # enqueue + run_until_idle
    enqueue: float
    run_own: float  # the run's started_at → finished_at (worker clock)
    cpu: float  # this process, simulator thread included
    simulator_cpu: float
    requests: list[Request]
    steps: dict[str, float]
    counts: dict[str, int]
    rows_written: int
    status: str
    kind: str
    error: str | None
    asset_rows: int
    link_rows: int
    sql: list[tuple[str, float]]
    problems: list[str] = field(default_factory=list)

    def per_kind(self) -> Counter[str]:
        return Counter(r.kind for r in self.requests)

    @property
    def psa_seconds(self) -> float:
        return sum(r.seconds for r in self.requests)


class Picker:
    """Synced records to edit, each used once across the runs."""

    def __init__(self, links: dict[str, list[tuple[int, Any, Any]]], seed: int) -> None:
        rng = random.Random(seed)
        self.pools = {name: rng.sample(rows, len(rows)) for name, rows in links.items()}

    def take(self, collection: str) -> tuple[int, Any, Any]:
        pool = self.pools[collection]
        if not pool:
            raise RuntimeError(f"no synced {collection} left to edit")
        return pool.pop()


def make_edits(store: Any, picker: Picker, run: int) -> list[Edit]:
    """Change 10 synced records in the simulator, as a person in ConnectWise's UI would."""
    from models import AssetKind

    kinds = {
        "companies": AssetKind.ORGANIZATION,
        "contacts": AssetKind.CONTACT,
        "configurations": AssetKind.CONFIGURATION,
    }
    edits: list[Edit] = []
    for collection, count, psa_field, column in EDITS:
        for _ in range(count):
            psa_id, local_id, link_id = picker.take(collection)
            n = len(edits)
            value = {
                "name": f"Bench edit {run}-{n} #{psa_id}",
                "lastName": f"Edited{run}x{n}",
                "title": f"Benchmark title {run}-{n}",
                "serialNumber": f"SN-BENCH-{run}-{n}-{psa_id}",
                "notes": f"Edited by the incremental benchmark, run {run}, edit {n}.",
                "ipAddress": f"10.250.{run % 250}.{n + 1}",
            }[psa_field]
            store.update(collection, psa_id, {psa_field: value})
            edits.append(
                Edit(collection, kinds[collection], psa_id, local_id, link_id, psa_field,
                     column, value)
            )  # fmt: skip
    return edits


# ------------------------------------------------------------------------- benchmark


async def _benchmark(args: argparse.Namespace) -> int:
    from tortoise import Tortoise

    from simulators.connectwise import (
        ApiCredentials,
        ConnectWiseSimulator,
        DatasetSpec,
        generate_dataset,
        serve_in_thread,
    )

    load_before = os.getloadavg()[0]
    engine_before = common.sources_fingerprint(ENGINE_PACKAGES)
    workdir = Path(tempfile.mkdtemp(prefix="psasync-incremental-"))
    db_url = args.postgres or f"sqlite:///{workdir / 'incremental.db'}?{SQLITE_OPTIONS}"
    initialised = False
    try:
        backend = await common.describe_backend(db_url)
        _say(f"building the simulator dataset ({args.companies:,} companies, seed {args.seed}) ...")
        started = time.perf_counter()
        spec = DatasetSpec(companies=args.companies, seed=args.seed)
        store = generate_dataset(spec)
        # The simulator's objects would not live in the engine's process in production:
        # keep the cyclic collector from scanning them during the measured runs.
        gc.collect()
        gc.freeze()
        sizes = _dataset_sizes(store)
        _say(f"  {time.perf_counter() - started:.1f} s: {_sizes_text(sizes)}")

        creds = ApiCredentials("benchmsp", secrets.token_hex(8), secrets.token_hex(16))
        simulator = ConnectWiseSimulator(store, credentials=creds)
        log = RequestLog(simulator.app)
        async with serve_in_thread(log) as base_url:
            await common.fresh_database(db_url)
            from models.db import migrate, tortoise_config

            await migrate(db_url)
            await Tortoise.init(config=tortoise_config(db_url))
            initialised = True
            setup = await _first_full_sync(base_url, creds, log)
            _say(
                f"  full sync: {setup['wall']:.1f} s, {setup['requests']:,} PSA requests; "
                f"local {_sizes_text(setup['tables'])}"
            )
            picker = Picker(await _synced_links(setup["integration"]), args.seed)
            timeline = Timeline()
            setup["sql"] = SqlLog()
            undo = instrument(setup["worker"], timeline)
            uninstall = setup["sql"].install()
            results: list[RunResult] = []
            cpu_before = _cpu_times()
            try:
                for index in range(1, args.repeat + 1):
                    result = await _measured_run(index, args, store, log, setup, picker, timeline)
                    results.append(result)
                    _say(
                        f"  run {index}: {result.wall * 1000:.0f} ms end to end, "
                        f"{len(result.requests)} PSA requests, updated "
                        f"{result.counts.get('updated', 0)}"
                        + (f"; PROBLEMS: {'; '.join(result.problems)}" if result.problems else "")
                    )
            finally:
                uninstall()
                undo()
            steal = _steal(cpu_before, _cpu_times())
            profiled = None
            if args.profile:
                profiled = await _profiled_run(
                    len(results) + 1, args, store, log, setup, picker, timeline
                )
        load = f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after (1-min load average)"
        engine = engine_before
        if common.sources_fingerprint(ENGINE_PACKAGES) != engine_before:
            engine += "; WARNING: the engine sources changed during the run"
        # A missed target is a figure, not a failure (``make bench`` goes on); a wrong
        # result is.
        ok = _report(args, backend, sizes, setup, results, load, steal, engine)
        if profiled is not None:
            common.print_profile("profiled incremental run", profiled)
        return 0 if ok else 1
    finally:
        if initialised:
            await Tortoise.close_connections()
        if args.postgres:
            with contextlib.suppress(Exception):
                await common.drop_database(db_url)
        shutil.rmtree(workdir, ignore_errors=True)


def _dataset_sizes(store: Any) -> dict[str, int]:
    sites = sum(len(children) for children in store.table("sites").children.values())
    return {
        "companies": store.count("companies"),
        "sites": sites,
        "contacts": store.count("contacts"),
        "configurations": store.count("configurations"),
    }


def _sizes_text(sizes: dict[str, int]) -> str:
    total = sum(sizes.values())
    parts = ", ".join(f"{n:,} {name}" for name, n in sizes.items())
    return f"{parts} ({total:,} in all)"


async def _first_full_sync(base_url: str, creds: Any, log: RequestLog) -> dict[str, Any]:
    """An account, a ConnectWise integration with every type and status enabled, one full
    sync; returns what the measured runs need."""
    from models import ASSET_MODELS, Account, Integration, RunStatus, SyncRun
    from models.vault import Vault
    from sync.connections import connectwise_provider, provider_factory
    from sync.incremental import has_bookmarks
    from sync.integrations import add_connectwise
    from sync.providers.connectwise.credentials import ConnectWiseCredentials
    from sync.runner import Worker

    credentials = ConnectWiseCredentials(
        site_url=base_url,
        company_id=creds.company_id,
        public_key=creds.public_key,
        private_key=creds.private_key,
        client_id=CLIENT_ID,
    )
    provider = connectwise_provider(credentials, sandbox=True)
    try:
        lists = await provider.reference_data()
    finally:
        await provider.aclose()
    enable = {kind: [ref.name for ref in refs] for kind, refs in lists.items()}
    vault = Vault([Vault.generate_key()])
    account = await Account.create(name="bench")
    integration, _run = await add_connectwise(
        account, credentials, vault, sandbox=True, enable=enable
    )
    worker = Worker(provider_factory(vault), schedule=False)
    _say("first full sync into a fresh database (a few minutes for 200k records) ...")
    mark = len(log.requests)
    start = time.perf_counter()
    runs = await worker.run_until_idle()
    wall = time.perf_counter() - start
    run = await SyncRun.filter(integration_id=integration.id).order_by("-queued_at").first()
    if runs != 1 or run is None or run.status != RunStatus.SUCCEEDED:
        status = None if run is None else (run.status, run.error)
        raise RuntimeError(f"the first full sync did not succeed: {runs} run(s), {status}")
    integration = await Integration.get(id=integration.id)
    if not has_bookmarks(integration):
        raise RuntimeError("the full sync left no bookmarks: the poll would be a full sync")
    tables = {
        f"{kind.value}s": await model.filter(account_id=account.id).count()
        for kind, model in ASSET_MODELS.items()
    }
    gc.collect()
    return {
        "integration": integration,
        "worker": worker,
        "wall": wall,
        "requests": len(log.requests) - mark,
        "tables": tables,
    }


async def _synced_links(integration: Any) -> dict[str, list[tuple[int, Any, Any]]]:
    from models import AssetKind, LinkState, RecordLink

    found: dict[str, list[tuple[int, Any, Any]]] = {}
    for collection, kind in (
        ("companies", AssetKind.ORGANIZATION),
        ("contacts", AssetKind.CONTACT),
        ("configurations", AssetKind.CONFIGURATION),
    ):
        rows = (
            await RecordLink.filter(
                integration_id=integration.id, kind=kind, state=LinkState.SYNCED
            )
            .order_by("psa_id")
            .values_list("psa_id", "local_id", "id")
        )
        found[collection] = [(int(p), local, link) for p, local, link in rows]
    return found


async def _measured_run(
    index: int,
    args: argparse.Namespace,
    store: Any,
    log: RequestLog,
    setup: dict[str, Any],
    picker: Picker,
    timeline: Timeline,
) -> RunResult:
    from models import Integration, RunKind, RunStatus, SyncRun
    from sync import jobs

    worker = setup["worker"]
    integration = await Integration.get(id=setup["integration"].id)
    edits = make_edits(store, picker, index)
    if args.settle > 0:
        await asyncio.sleep(args.settle)
    gc.collect()
    timeline.reset()
    sim_thread = _simulator_thread()
    sql_log: SqlLog = setup["sql"]
    sql_log.statements.clear()
    mark = len(log.requests)
    written_since = datetime.now(UTC)
    sim_cpu = _thread_cpu(sim_thread)
    cpu = time.process_time()
    start = time.perf_counter()
    queued = await jobs.enqueue(integration, kind=RunKind.INCREMENTAL)
    enqueued = time.perf_counter()
    runs = await worker.run_until_idle()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    sim_cpu = _thread_cpu(sim_thread) - sim_cpu
    requests = log.requests[mark:]
    statements = list(sql_log.statements)
    ctx = worker.last_context
    run = await SyncRun.get(id=queued.id)
    own = 0.0
    if run.started_at is not None and run.finished_at is not None:
        own = (run.finished_at - run.started_at).total_seconds()
    asset_rows, link_rows, problems = await _verify(edits, written_since, setup["integration"])
    counts = {
        name: getattr(run, name)
        for name in ("created", "updated", "unchanged", "linked", "orphaned", "skipped", "failed")
    }
    if runs != 1:
        problems.append(f"the worker ran {runs} runs, not 1")
    if run.kind != RunKind.INCREMENTAL or timeline.calls["incremental_sync"] != 1:
        problems.append(f"the {run.kind.value} run did not run the incremental sync")
    if counts["updated"] != CHANGES_PER_RUN:
        problems.append(f"the run counted {counts['updated']} updated, not {CHANGES_PER_RUN}")
    for name in ("created", "linked", "orphaned", "failed"):
        if counts[name]:
            problems.append(f"the run counted {counts[name]} {name}")
    if run.status != RunStatus.SUCCEEDED:
        problems.append(f"the run ended {run.status.value}: {run.error}")
    if args.verbose:
        for r in requests:
            _say(f"    {r.method} {r.path}?{r.query}  {r.status}  {r.seconds * 1000:.1f} ms")
    return RunResult(
        index=index,
        edits=edits,
        wall=wall,
        enqueue=enqueued - start,
        run_own=own,
        cpu=cpu,
        simulator_cpu=sim_cpu,
        requests=requests,
        steps=dict(timeline.seconds),
        counts=counts,
        rows_written=ctx.rows_written if ctx is not None else -1,
        status=run.status.value,
        kind=run.kind.value,
        error=run.error,
        asset_rows=asset_rows,
        link_rows=link_rows,
        sql=statements,
        problems=problems,
    )


async def _verify(
    edits: list[Edit], since: datetime, integration: Any
) -> tuple[int, int, list[str]]:
    """The edits are visible locally; no other asset or link row was written since ``since``.
    Returns (asset rows written, link rows written, problems)."""
    from models import ASSET_MODELS, RecordLink

    problems: list[str] = []
    for edit in edits:
        model = ASSET_MODELS[edit.kind]
        row = await model.filter(id=edit.local_id).values(edit.column)
        value = row[0][edit.column] if row else None
        if value != edit.value:
            problems.append(
                f"{edit.collection} {edit.psa_id}: local {edit.column} is {value!r}, "
                f"not {edit.value!r}"
            )
    expected_assets = {str(e.local_id) for e in edits}
    expected_links = {str(e.link_id) for e in edits}
    assets: set[str] = set()
    for model in ASSET_MODELS.values():
        ids = await model.filter(updated_at__gte=since).values_list("id", flat=True)
        assets.update(str(i) for i in ids)
    links = {
        str(i)
        for i in await RecordLink.filter(
            integration_id=integration.id, updated_at__gte=since
        ).values_list("id", flat=True)
    }
    if assets != expected_assets:
        extra, missing = len(assets - expected_assets), len(expected_assets - assets)
        problems.append(f"asset rows written: {extra} unexpected, {missing} edited ones missing")
    if links != expected_links:
        extra, missing = len(links - expected_links), len(expected_links - links)
        problems.append(f"link rows written: {extra} unexpected, {missing} edited ones missing")
    return len(assets), len(links), problems


async def _profiled_run(
    index: int,
    args: argparse.Namespace,
    store: Any,
    log: RequestLog,
    setup: dict[str, Any],
    picker: Picker,
    timeline: Timeline,
) -> str:
    import cProfile

    from models import Integration, RunKind
    from sync import jobs

    directory = Path(args.profile)
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    path = str(directory / "incremental.prof")
    worker = setup["worker"]
    integration = await Integration.get(id=setup["integration"].id)
    make_edits(store, picker, index)
    if args.settle > 0:
        await asyncio.sleep(args.settle)
    gc.collect()
    _say("one more run under cProfile ...")
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    await jobs.enqueue(integration, kind=RunKind.INCREMENTAL)
    await worker.run_until_idle()
    profiler.disable()
    _say(f"  {1000 * (time.perf_counter() - start):.0f} ms under the profiler")
    profiler.dump_stats(path)
    return path


# ---------------------------------------------------------------------------- report


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def _report(
    args: argparse.Namespace,
    backend: str,
    sizes: dict[str, int],
    setup: dict[str, Any],
    results: list[RunResult],
    load: str,
    steal: str,
    engine: str,
) -> bool:
    sqlite = not args.postgres
    print()
    print(
        f"Incremental sync, {os.cpu_count()} CPUs ({_cpu_model()}), "
        f"{platform.python_implementation()} {platform.python_version()}, {backend}"
    )
    print(f"  {engine}")
    print(f"  load: {load}; while measuring: {steal}")
    print(f"  dataset (simulator, seed {args.seed}): {_sizes_text(sizes)}")
    print(
        f"  first full sync: {setup['wall']:.1f} s, {setup['requests']:,} PSA requests; "
        f"local {_sizes_text(setup['tables'])}"
    )
    print(
        f"  each run: {CHANGES_PER_RUN} records changed in the simulator "
        f"(2 companies, 4 contacts, 4 configurations), then {args.settle:g} s before the poll"
    )
    print()

    kinds = sorted({k for r in results for k in r.per_kind()}, key=_kind_order)
    header = [f"run {r.index}" for r in results]
    rows: list[tuple[str, list[str]]] = [
        ("end to end (enqueue + run_until_idle)", [_ms(r.wall) for r in results]),
        ("  of which enqueue", [_ms(r.enqueue) for r in results]),
        ("run's own started -> finished", [_ms(r.run_own) for r in results]),
        ("process CPU (simulator thread incl.)", [_ms(r.cpu) for r in results]),
        ("simulator thread CPU", [_ms(r.simulator_cpu) for r in results]),
        ("PSA time (sum over requests)", [_ms(r.psa_seconds) for r in results]),
        ("PSA requests in all", [str(len(r.requests)) for r in results]),
    ]
    for kind in kinds:
        rows.append(
            (
                f"  {kind}",
                [f"{r.per_kind()[kind]} ({_ms(_psa_time(r, kind))})" for r in results],
            )
        )
    rows += [
        (
            "updated / unchanged",
            [f"{r.counts['updated']} / {r.counts['unchanged']}" for r in results],
        ),
        ("asset rows / link rows written", [f"{r.asset_rows} / {r.link_rows}" for r in results]),
        ("rows written (engine's count)", [str(r.rows_written) for r in results]),
        ("SQL statements", [str(len(r.sql)) for r in results]),
        ("SQL time (sum over statements)", [_ms(sum(t for _, t in r.sql)) for r in results]),
    ]
    rows.append(("where the time went", ["" for _ in results]))
    for step in WORKER_STEPS:
        rows.append((f"  {step}", [_ms(r.steps.get(step, 0.0)) for r in results]))
        if step == "incremental_sync":
            for inner in SYNC_STEPS:
                rows.append((f"    {inner}", [_ms(r.steps.get(inner, 0.0)) for r in results]))
            rows.append(
                (
                    "    rest (phase and checkpoint rows)",
                    [_ms(_rest(r.steps, "incremental_sync", SYNC_STEPS)) for r in results],
                )
            )
    rows.append(
        (
            "  rest (integration row, status, heartbeat, aclose)",
            [_ms(r.wall - r.enqueue - sum(r.steps.get(s, 0.0) for s in WORKER_STEPS))
             for r in results],
        )
    )  # fmt: skip
    _grid("Per run", [*header, "median"], rows, results)

    _slowest_statements(results)

    walls = [r.wall for r in results]
    median_wall = _median(walls)
    worst: dict[str, int] = {k: max(r.per_kind()[k] for r in results) for k in POLLED_KINDS}
    sites = [r.per_kind()["locations"] for r in results]
    problems = [f"run {r.index}: {p}" for r in results for p in r.problems]
    correct = not problems
    target_rows = [
        (
            f"incremental run <= {TARGET_WALL_S * 1000:.0f} ms end to end (median)",
            common.verdict(median_wall <= TARGET_WALL_S),
            f"{_ms(median_wall)} (min {_ms(min(walls))}, max {_ms(max(walls))})"
            + ("" if sqlite else " on PostgreSQL"),
        ),
    ]
    for kind in POLLED_KINDS:
        target_rows.append(
            (
                f"{kind}: <= {TARGET_REQUESTS_PER_KIND} requests",
                common.verdict(worst[kind] <= TARGET_REQUESTS_PER_KIND),
                f"{worst[kind]} at most",
            )
        )
    target_rows += [
        (
            "locations (information)",
            "",
            f"{'/'.join(str(n) for n in sites)} requests: one per changed company "
            "(ConnectWise lists sites per company only)",
        ),
        (
            f"correct: {CHANGES_PER_RUN} changes visible, updated = {CHANGES_PER_RUN}, "
            "nothing else written",
            common.verdict(correct),
            "" if correct else f"{len(problems)} problem(s), below",
        ),
    ]
    common.table("Targets", target_rows)
    for problem in problems:
        print(f"  {problem}")
    if problems:
        print()
    print(
        "Sites: ConnectWise has no cross-company site listing (no lastUpdated query over all\n"
        "sites), so the poll re-reads the sites of every company it found changed: one\n"
        "request per changed company, whatever changed in them."
    )
    print()
    return correct


def _slowest_statements(results: list[RunResult], top: int = 8) -> None:
    total: dict[str, float] = defaultdict(float)
    calls: Counter[str] = Counter()
    for result in results:
        for sql, seconds in result.sql:
            shape = statement_shape(sql)
            total[shape] += seconds
            calls[shape] += 1
    title = f"Slowest SQL, summed over the {len(results)} runs (ms per run, statements per run)"
    print(title)
    print("-" * len(title))
    runs = len(results)
    for shape, seconds in sorted(total.items(), key=lambda item: -item[1])[:top]:
        print(f"  {seconds * 1000 / runs:7.1f} ms {calls[shape] / runs:4.1f}x  {shape}")
    print()


def _psa_time(result: RunResult, kind: str) -> float:
    return sum(q.seconds for q in result.requests if q.kind == kind)


def _rest(steps: dict[str, float], whole: str, parts: Sequence[str]) -> float:
    return steps.get(whole, 0.0) - sum(steps.get(p, 0.0) for p in parts)


def _kind_order(kind: str) -> tuple[int, str]:
    order = ["codebase discovery", "organizations", "locations", "contacts", "configurations"]
    return (order.index(kind), kind) if kind in order else (len(order), kind)


def _grid(
    title: str, header: list[str], rows: list[tuple[str, list[str]]], results: list[RunResult]
) -> None:
    """Rows of per-run values with a median column where the values are times."""
    table: list[list[str]] = []
    for label, values in rows:
        median = ""
        if values and all(v.endswith(" ms") for v in values) and label.strip():
            median = _ms(_median([float(v[:-3]) / 1000 for v in values]))
        table.append([label, *values, median])
    widths = [max(len(row[i]) for row in [["", *header], *table]) for i in range(len(header) + 1)]
    print(title)
    print("-" * len(title))
    print("  " + "  ".join(h.rjust(w) for h, w in zip(["", *header], widths, strict=True)))
    for row in table:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  " + "  ".join(cells).rstrip())
    print()


if __name__ == "__main__":
    sys.exit(main())
