"""GraphQL page benchmark: a 500-configuration page with its relations, against its limit.

    .venv/bin/python bench/graphql_page.py                    # 100k configurations, SQLite
    .venv/bin/python bench/graphql_page.py --postgres postgres://postgres@127.0.0.1:5432/psasync_graphql_bench
    .venv/bin/python bench/graphql_page.py --configurations 20000 --profile /tmp/psasync-gql

It seeds a fresh database with one account (an administrator and an API key), one
ConnectWise integration, and ``--configurations`` configurations (100k by default), each with
its organization, a location and a contact of that organization, and a SYNCED link to the
integration: 1 organization per 50 configurations, 2 locations and 10 contacts each. Rows go
in through ``models.bulk.insert_rows``; then the tables are ANALYZEd, as the
sync engine does after a first sync.

Then, for pages spread through the whole table (cursors, ordered by name):

    server      ``configurations(first: 500, after: $cursor)`` with scalars, organization,
                location, contact and psaLinks { ..., integration }, POSTed with a Bearer API
                key to the real Starlette app (``create_app``) through httpx.ASGITransport.
                Server time is the time spent inside the ASGI app (authentication, Strawberry,
                SQL, JSON encoding); the client's round trip is shown beside it.
    in-memory   the limit: Strawberry executing the same query text over the same objects,
                already in memory. A small schema whose ``configurations`` returns the page's
                prebuilt ``Connection``, and a context whose dataloaders are all primed, so no
                SQL runs (checked: 0 statements) and the data is checked equal to the server's
                for every page.

The two alternate page by page, so they share the machine's conditions. SQL statements per
request are counted (``models.db.count_queries``) on separate requests for first: 50 and
first: 500, since counting turns on Tortoise's debug logging. Targets (2-core machine):
server p50 <= 1.5 x in-memory p50, and at most 6 statements per request whatever the page
size.

Runs of this script take a lock on it and queue: two at once would measure each other. The
temp directory and the PostgreSQL database are removed however the run ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import common  # bench/common.py: this script's directory is on sys.path
import httpx
import strawberry

from api.graphql.context import Context
from api.graphql.pagination import Connection
from api.graphql.types.assets import Configuration as ConfigurationType

SCRIPT = Path(__file__).resolve()
SOURCE_PACKAGES = ("api", "models", "sync")
SQLITE_OPTIONS = "journal_mode=WAL&synchronous=NORMAL&busy_timeout=10000"
PAGE = 500
SMALL_PAGE = 50
CONFIGURATIONS_PER_ORGANIZATION = 50
LOCATIONS_PER_ORGANIZATION = 2
CONTACTS_PER_ORGANIZATION = 10
INSERT_CHUNK = 5000

# Targets (the issue tracker's brief).
TARGET_RATIO = 1.5  # server p50 / in-memory Strawberry p50
TARGET_STATEMENTS = 6  # SQL statements per request, whatever the page size

QUERY = """
query Page($first: Int!, $after: String) {
  configurations(first: $first, after: $after) {
    edges {
      cursor
      node {
        id
        name
        hostname
        primaryIp
        macAddress
        serialNumber
        manufacturer
        model
        operatingSystem
        installedAt
        version
        createdAt
        updatedAt
        organization { id name }
        location { id name }
        contact { id name }
        psaLinks {
          psaId
          state
          lastSyncedAt
          readOnlyFields
          integration { id name }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--configurations", type=int, default=100_000)
    parser.add_argument(
        "--requests",
        type=int,
        default=60,
        help="measured pages (each once through the server, once in memory)",
    )
    parser.add_argument("--warmup", type=int, default=8, help="pages before measuring")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run on PostgreSQL (the database, whose name must contain 'bench', is dropped "
        "and created fresh, and dropped again at the end)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="after measuring, run the server pages, the data fetches alone and the in-memory "
        "executions again under cProfile, save server.prof, fetch.prof and memory.prof in DIR "
        "and print their top functions (the measured figures are taken before, unprofiled)",
    )
    args = parser.parse_args(argv)
    if args.configurations < PAGE * 4:
        parser.error(f"--configurations must be at least {PAGE * 4}")
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    # A plain `kill` should clean up too (the `finally` blocks), not just Ctrl+C.
    signal.signal(signal.SIGTERM, _terminated)
    with common.machine_lock(SCRIPT, _say):
        return _run(args)


def _terminated(signum: int, _frame: object) -> None:
    _say(f"stopped by signal {signum}: cleaning up")
    raise SystemExit(128 + signum)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _run(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()[0]
    sources_before = common.sources_fingerprint(SOURCE_PACKAGES)
    workdir = Path(tempfile.mkdtemp(prefix="psasync-gql-bench-"))
    url = args.postgres or f"sqlite://{workdir / 'bench.db'}?{SQLITE_OPTIONS}"
    try:
        if args.postgres:
            common.server_and_name(
                url
            )  # refuse a database whose name lacks 'bench' before anything
            asyncio.run(common.fresh_database(url))
        backend = asyncio.run(common.describe_backend(url, ", file in a temp dir"))
        result = asyncio.run(_benchmark(args, url))
        load = f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after (1-min load average)"
        sources = sources_before
        if common.sources_fingerprint(SOURCE_PACKAGES) != sources_before:
            sources += "; WARNING: the sources changed during the run"
        _report(args, backend, load, sources, result)
        if args.profile:
            for name in ("server", "fetch", "memory"):
                common.print_profile(f"{name} runs", str(Path(args.profile, f"{name}.prof")))
        return 0
    finally:
        if args.postgres:  # however the run ended
            with contextlib.suppress(Exception):
                asyncio.run(common.drop_database(url))
        shutil.rmtree(workdir, ignore_errors=True)


# -- databases --------------------------------------------------------------------------------


# -- seeding ----------------------------------------------------------------------------------


@dataclass
class Seeded:
    account_id: uuid.UUID
    user_id: uuid.UUID
    key_id: uuid.UUID
    key: str
    integration_id: uuid.UUID
    sizes: dict[str, int]
    seconds: float


_PREFIXES = ("WS", "SRV", "LT", "FW", "SW", "PRN", "NAS", "AP", "UPS", "VM")
_MAKERS = (
    ("Dell", "OptiPlex 7090"),
    ("Dell", "PowerEdge R650"),
    ("HP", "EliteBook 840 G8"),
    ("Lenovo", "ThinkPad T14"),
    ("Cisco", "Catalyst 9200"),
    ("Ubiquiti", "UniFi U6-Pro"),
    ("Synology", "DS920+"),
    ("APC", "Smart-UPS 1500"),
)
_SYSTEMS = ("Windows 11 Pro", "Windows Server 2022", "Ubuntu 22.04", "macOS 14", None)
_FIRST = ("Ada", "Grace", "Alan", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Radia")
_LAST = ("Lovelace", "Hopper", "Turing", "Torvalds", "Liskov", "Thompson", "Hamilton")
_CITIES = ("Leeds", "Lyon", "Graz", "Porto", "Ghent", "Turku", "Bergen", "Cork")


async def _seed(args: argparse.Namespace) -> Seeded:
    from tortoise.transactions import in_transaction

    from api import access
    from models import (
        AssetKind,
        Configuration,
        Contact,
        ContactSource,
        Integration,
        IntegrationStatus,
        LinkState,
        Location,
        Organization,
        Provider,
        RecordLink,
        Role,
    )
    from models.bulk import insert_rows
    from sync import statistics as planner_statistics

    started = time.perf_counter()
    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    account = await access.create_account("bench")
    user = await access.create_user(account, "admin@bench.test", Role.ADMINISTRATOR)
    key_row, key = await access.issue_key(user, "bench")
    integration = await Integration.create(
        account=account,
        provider=Provider.CONNECTWISE_MANAGE,
        name="Bench ConnectWise",
        site_url="https://cw.bench.invalid",
        status=IntegrationStatus.OK,
        credentials_token="bench-not-a-token",  # noqa: S106 (never decrypted here)
    )

    n_configurations = args.configurations
    n_organizations = max(1, n_configurations // CONFIGURATIONS_PER_ORGANIZATION)
    organizations = [uuid.uuid4() for _ in range(n_organizations)]
    locations = [[uuid.uuid4() for _ in range(LOCATIONS_PER_ORGANIZATION)] for _ in organizations]
    contacts = [[uuid.uuid4() for _ in range(CONTACTS_PER_ORGANIZATION)] for _ in organizations]
    stamps = {"created_at": now, "updated_at": now, "version": 1}

    org_rows = [
        {
            "id": org,
            "account_id": account.id,
            "name": f"{rng.choice(_LAST)} {rng.choice(('Ltd', 'GmbH', 'SA', 'LLC'))} {i:05d}",
            "short_name": f"C{i:05d}",
            **stamps,
        }
        for i, org in enumerate(organizations)
    ]
    location_rows = [
        {
            "id": loc,
            "account_id": account.id,
            "organization_id": org,
            "name": "Head office" if j == 0 else f"Branch {j}",
            "address_1": f"{rng.randint(1, 200)} High Street",
            "city": rng.choice(_CITIES),
            "country": "GB",
            "phone": f"+44 20 7946 {rng.randint(0, 9999):04d}",
            "primary": j == 0,
            **stamps,
        }
        for org, locs in zip(organizations, locations, strict=True)
        for j, loc in enumerate(locs)
    ]
    contact_rows = []
    for i, (org, people) in enumerate(zip(organizations, contacts, strict=True)):
        for j, person in enumerate(people):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            email = f"{first}.{last}.{i}.{j}@example.test".lower()
            contact_rows.append(
                {
                    "id": person,
                    "account_id": account.id,
                    "organization_id": org,
                    "location_id": locations[i][j % LOCATIONS_PER_ORGANIZATION],
                    "first_name": first,
                    "last_name": last,
                    "title": "IT contact",
                    "emails": [{"type": "Work", "value": email, "primary": True}],
                    "phones": [{"type": "Direct", "value": "+44 20 7946 0000", "primary": True}],
                    "primary_email": email,
                    "source": ContactSource.PSA,
                    **stamps,
                }
            )
    configuration_rows = []
    link_rows = []
    for i in range(n_configurations):
        o = rng.randrange(n_organizations)
        maker, model = rng.choice(_MAKERS)
        local_id = uuid.uuid4()
        installed = now - timedelta(days=rng.randint(30, 2000))
        configuration_rows.append(
            {
                "id": local_id,
                "account_id": account.id,
                "organization_id": organizations[o],
                "location_id": rng.choice(locations[o]),
                "contact_id": rng.choice(contacts[o]),
                "name": f"{rng.choice(_PREFIXES)}-{rng.randint(0, 999_999):06d}-{i}",
                "hostname": f"host-{i}.corp.example.test",
                "primary_ip": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                "mac_address": ":".join(f"{rng.randrange(256):02x}" for _ in range(6)),
                "serial_number": f"SN{rng.randrange(10**10):010d}",
                "manufacturer": maker,
                "model": model,
                "operating_system": rng.choice(_SYSTEMS),
                "installed_at": installed,
                **stamps,
            }
        )
        link_rows.append(
            {
                "id": uuid.uuid4(),
                "integration_id": integration.id,
                "kind": AssetKind.CONFIGURATION,
                "local_id": local_id,
                "psa_id": 100_000 + i,
                "psa_parent_id": 1 + o,
                "snapshot": {},
                "psa_updated_at": installed,
                "synced_at": now,
                "psa_stamp": int(installed.timestamp()),
                "stamp_trusted": True,
                "state": LinkState.SYNCED,
                "created_by_sync": True,
                "created_at": now,
                "updated_at": now,
            }
        )
    tables: list[tuple[Any, list[dict[str, Any]]]] = [
        (Organization, org_rows),
        (Location, location_rows),
        (Contact, contact_rows),
        (Configuration, configuration_rows),
        (RecordLink, link_rows),
    ]
    for model, rows in tables:
        for offset in range(0, len(rows), INSERT_CHUNK):
            async with in_transaction():
                await insert_rows(model, rows[offset : offset + INSERT_CHUNK])
    # As a sync leaves them: each phase ends with ANALYZE (sync/statistics.py), both backends.
    await planner_statistics.analyze(*(model._meta.db_table for model, _rows in tables))
    sizes = {
        "organizations": len(org_rows),
        "locations": len(location_rows),
        "contacts": len(contact_rows),
        "configurations": len(configuration_rows),
        "links": len(link_rows),
    }
    return Seeded(
        account_id=account.id,
        user_id=user.id,
        key_id=key_row.id,
        key=key,
        integration_id=integration.id,
        sizes=sizes,
        seconds=time.perf_counter() - started,
    )


# -- measuring --------------------------------------------------------------------------------


class TimedApp:
    """ASGI wrapper: the time spent inside the app for the last request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.last = time.perf_counter() - start


@dataclass
class Fixture:
    """One page's objects, built from the database once, and the loaders' keys for them."""

    page: Connection[ConfigurationType]
    organizations: dict[Any, Any]
    locations: dict[Any, Any]
    contacts: dict[Any, Any]
    links: dict[Any, Any]
    integrations: dict[Any, Any]


@dataclass
class Samples:
    server: list[float] = field(default_factory=list)
    client: list[float] = field(default_factory=list)
    memory: list[float] = field(default_factory=list)
    memory_ext: list[float] = field(default_factory=list)
    fetch: list[float] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)


@dataclass
class BenchContext(Context):
    """The API's context, plus the page the bench query returns."""

    page: Any = None


@strawberry.type(name="Query")
class BenchQuery:
    @strawberry.field
    async def configurations(
        self,
        info: strawberry.Info[BenchContext, None],
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[ConfigurationType]:
        page: Connection[ConfigurationType] = info.context.page
        return page


def _bench_schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    """Two schemas whose ``configurations`` returns the context's prebuilt page: plain
    Strawberry (the limit), and the same with the app schema's extensions."""
    from api.graphql.schema import schema as app_schema

    plain = strawberry.Schema(query=BenchQuery)
    with_extensions = strawberry.Schema(query=BenchQuery, extensions=list(app_schema.extensions))
    return plain, with_extensions


async def _build_fixture(account_id: uuid.UUID, after: str | None, first: int) -> Fixture:
    """The page and its related objects, fetched with the API's own code (keyset_page and
    the dataloaders: the same SQL and the same ``from_row``), outside any GraphQL."""
    from api.graphql.loaders import Loaders
    from api.graphql.pagination import Ordering, keyset_page
    from models import AssetKind
    from models import Configuration as ConfigurationRow

    loaders = Loaders(account_id)
    page = await keyset_page(
        ConfigurationRow.filter(account_id=account_id),
        Ordering("name"),
        first,
        after,
        ConfigurationType.COLUMNS,
        ConfigurationType.from_row,
    )
    nodes = [edge.node for edge in page.edges]
    org_ids = list(dict.fromkeys(n.organization_id for n in nodes))
    loc_ids = list(dict.fromkeys(n.location_id for n in nodes if n.location_id))
    contact_ids = list(dict.fromkeys(n.contact_id for n in nodes if n.contact_id))
    link_keys = [(AssetKind.CONFIGURATION, n.local_id) for n in nodes]
    orgs, locs, people, links = await asyncio.gather(
        loaders.organization.load_many(org_ids),
        loaders.location.load_many(loc_ids),
        loaders.contact.load_many(contact_ids),
        loaders.links.load_many(link_keys),
    )
    integration_ids = list(dict.fromkeys(link.integration_id for ls in links for link in ls))
    integrations = await loaders.integration.load_many(integration_ids)  # primed: no SQL
    return Fixture(
        page=page,
        organizations=dict(zip(org_ids, orgs, strict=True)),
        locations=dict(zip(loc_ids, locs, strict=True)),
        contacts=dict(zip(contact_ids, people, strict=True)),
        links=dict(zip(link_keys, links, strict=True)),
        integrations=dict(zip(integration_ids, integrations, strict=True)),
    )


def _primed_context(fixture: Fixture, viewer: Any, vault: Any) -> BenchContext:
    from api.graphql.loaders import Loaders

    loaders = Loaders(viewer.account_id)
    loaders.organization.prime_many(fixture.organizations)
    loaders.location.prime_many(fixture.locations)
    loaders.contact.prime_many(fixture.contacts)
    loaders.links.prime_many(fixture.links)
    loaders.integration.prime_many(fixture.integrations)
    loaders.configuration.prime_many({e.node.local_id: e.node for e in fixture.page.edges})
    return BenchContext(
        request_id="bench", viewer=viewer, loaders=loaders, vault=vault, page=fixture.page
    )


@dataclass(frozen=True)
class Start:
    """Where a page starts: its offset, the ``after`` cursor (None: the first page), and the
    name of its first configuration."""

    offset: int
    cursor: str | None
    first_name: str


def _start(rows: Sequence[tuple[Any, Any]], offset: int) -> Start:
    from api.graphql.pagination import encode_cursor

    cursor = None if offset == 0 else encode_cursor(rows[offset - 1][0], rows[offset - 1][1])
    return Start(offset, cursor, rows[offset][0])


def _normalised(data: Any) -> Any:
    return json.loads(json.dumps(data))


async def _benchmark(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from tortoise import Tortoise

    from api.access import Viewer
    from api.app import create_app
    from api.settings import Settings
    from models import Configuration as ConfigurationRow
    from models import Role
    from models.db import count_queries, migrate, tortoise_config
    from models.vault import Vault

    await migrate(url)
    await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
    try:
        _say(f"seeding {args.configurations:,} configurations ...")
        seeded = await _seed(args)
        _say(f"  {seeded.seconds:.1f} s: {seeded.sizes}")
        secret = Vault.generate_key()
        settings = Settings(
            database_url=url,
            secret_keys=(secret,),
            host="127.0.0.1",
            port=0,
            demo="off",
            demo_port=0,
            worker=False,
            log_level="warning",
        )
        timed = TimedApp(create_app(settings, manage_database=False))
        vault = Vault([secret])
        viewer = Viewer(seeded.user_id, seeded.account_id, Role.ADMINISTRATOR, seeded.key_id)
        plain, with_extensions = _bench_schemas()

        # Every page start, in the API's order; pages spread through the whole table.
        rows = (
            await ConfigurationRow.filter(account_id=seeded.account_id)
            .order_by("name", "id")
            .values_list("name", "id")
        )
        last_start = len(rows) - PAGE
        total = args.warmup + args.requests + 6
        starts = [_start(rows, round(i * last_start / (total - 1))) for i in range(total)]
        del rows  # long-lived objects the cyclic GC would rescan during the measurements
        random.Random(args.seed).shuffle(starts)
        warm_starts = starts[: args.warmup]
        count_starts = starts[args.warmup : args.warmup + 6]
        measure_starts = starts[args.warmup + 6 :]

        transport = httpx.ASGITransport(app=timed)
        headers = {"Authorization": f"Bearer {seeded.key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as http:

            async def request(first: int, after: str | None) -> tuple[dict[str, Any], float]:
                began = time.perf_counter()
                response = await http.post(
                    "/graphql",
                    json={"query": QUERY, "variables": {"first": first, "after": after}},
                    headers=headers,
                )
                elapsed = time.perf_counter() - began
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:500]}")
                body: dict[str, Any] = response.json()
                if body.get("errors"):
                    raise RuntimeError(f"GraphQL errors: {body['errors'][:3]}")
                body["_bytes"] = len(response.content)
                return body, elapsed

            async def in_memory(schema: Any, fixture: Fixture, after: str | None) -> Any:
                context = _primed_context(fixture, viewer, vault)
                variables = {"first": len(fixture.page.edges), "after": after}
                with count_queries() as counter:
                    began = time.perf_counter()
                    result = await schema.execute(
                        QUERY, variable_values=variables, context_value=context
                    )
                    elapsed = time.perf_counter() - began
                if result.errors:
                    raise RuntimeError(f"in-memory errors: {result.errors[:3]}")
                if counter.count:
                    raise RuntimeError(f"the in-memory run sent SQL: {counter.statements[:3]}")
                return result.data, elapsed

            # Warm-up: the first request of the key also stamps last_used_at (an UPDATE).
            _say(f"warming up ({len(warm_starts)} pages) ...")
            first_request: list[str] = []
            for n, start in enumerate(warm_starts):
                with count_queries() as counter:
                    await request(PAGE, start.cursor)
                if n == 0:
                    first_request = [_verb(s) for s in counter.statements]
                fixture = await _build_fixture(seeded.account_id, start.cursor, PAGE)
                await in_memory(plain, fixture, start.cursor)
                await in_memory(with_extensions, fixture, start.cursor)

            _say("counting SQL statements (first: 50 and first: 500) ...")
            counts: dict[int, list[list[str]]] = {SMALL_PAGE: [], PAGE: []}
            for n, start in enumerate(count_starts):
                size = SMALL_PAGE if n % 2 == 0 else PAGE
                with count_queries() as counter:
                    body, _ = await request(size, start.cursor)
                assert len(body["data"]["configurations"]["edges"]) == size
                counts[size].append(list(counter.statements))

            _say(f"measuring {len(measure_starts)} pages of {PAGE} ...")
            samples = Samples()
            # What the process holds from here on (modules, schemas, the starts) is not
            # rescanned by the cyclic GC: a server would not carry the bench's own state.
            gc.collect()
            gc.freeze()
            cpu_before = _cpu_times()
            for start in measure_starts:
                body, client_time = await request(PAGE, start.cursor)
                samples.server.append(timed.last)
                samples.client.append(client_time)
                samples.bytes.append(body["_bytes"])
                edges = body["data"]["configurations"]["edges"]
                if len(edges) != PAGE or edges[0]["node"]["name"] != start.first_name:
                    raise RuntimeError(f"the page at {start.offset} is not the one asked for")
                began = time.perf_counter()
                fixture = await _build_fixture(seeded.account_id, start.cursor, PAGE)
                samples.fetch.append(time.perf_counter() - began)
                data, memory_time = await in_memory(plain, fixture, start.cursor)
                samples.memory.append(memory_time)
                if _normalised(data) != body["data"]:
                    raise RuntimeError(f"in-memory data differ from the server's at {start.offset}")
                _, ext_time = await in_memory(with_extensions, fixture, start.cursor)
                samples.memory_ext.append(ext_time)
            steal = _steal(cpu_before, _cpu_times())

            if args.profile:
                await _profile(
                    args.profile,
                    seeded.account_id,
                    request,
                    in_memory,
                    plain,
                    [start.cursor for start in measure_starts],
                )
        return {
            "seeded": seeded,
            "samples": samples,
            "counts": counts,
            "first_request": first_request,
            "steal": steal,
        }
    finally:
        await Tortoise.close_connections()


async def _profile(
    directory: str,
    account_id: uuid.UUID,
    request: Any,
    in_memory: Any,
    schema: Any,
    cursors: Sequence[str | None],
) -> None:
    import cProfile

    _say(f"profiling {len(cursors)} server requests, data fetches, in-memory executions ...")
    fixtures = []
    server, fetch = cProfile.Profile(), cProfile.Profile()
    for cursor in cursors:
        server.enable()
        await request(PAGE, cursor)
        server.disable()
        fetch.enable()
        fixtures.append((await _build_fixture(account_id, cursor, PAGE), cursor))
        fetch.disable()
    server.dump_stats(str(Path(directory, "server.prof")))
    fetch.dump_stats(str(Path(directory, "fetch.prof")))
    memory = cProfile.Profile()
    for fixture, cursor in fixtures:
        memory.enable()
        await in_memory(schema, fixture, cursor)
        memory.disable()
    memory.dump_stats(str(Path(directory, "memory.prof")))


def _cpu_times() -> list[int] | None:
    """The machine's CPU time counters (/proc/stat: user nice system idle iowait irq softirq
    steal), or None where there is no /proc."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    return [int(v) for v in first[1:9]]


def _steal(before: list[int] | None, after: list[int] | None) -> str:
    """Share of CPU time the hypervisor took (steal) and share spent busy, over a window."""
    if before is None or after is None:
        return "unknown"
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta) or 1
    idle = delta[3] + delta[4]
    busy = total - idle - delta[7]
    return f"{100 * delta[7] / total:.1f}% stolen by the hypervisor, {100 * busy / total:.0f}% busy"


def _verb(statement: str) -> str:
    words = statement.split()
    verb = words[0].upper() if words else "?"
    table = ""
    for i, word in enumerate(words[:-1]):
        if word.upper() in {"FROM", "UPDATE", "INTO"}:
            table = words[i + 1].strip('"`')
            break
    return f"{verb} {table}".strip()


# -- report -----------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _versions() -> str:
    names = ("strawberry-graphql", "graphql-core", "tortoise-orm", "starlette", "httpx")
    found = []
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    return ", ".join(found)


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def _ms(values: Sequence[float]) -> str:
    return f"{_percentile(values, 50) * 1000:.1f} / {_percentile(values, 95) * 1000:.1f} ms"


def _report(
    args: argparse.Namespace, backend: str, load: str, sources: str, result: dict[str, Any]
) -> None:
    seeded: Seeded = result["seeded"]
    samples: Samples = result["samples"]
    counts: dict[int, list[list[str]]] = result["counts"]
    server_p50 = _percentile(samples.server, 50)
    memory_p50 = _percentile(samples.memory, 50)
    ratio = server_p50 / memory_p50
    per_size = {size: sorted({len(c) for c in runs}) for size, runs in counts.items()}
    worst = max(n for found in per_size.values() for n in found)
    statements_ok = worst <= TARGET_STATEMENTS and per_size[SMALL_PAGE] == per_size[PAGE]
    kinds = ", ".join(_verb(s) for s in counts[PAGE][0])

    print("Machine")
    print("-------")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"  CPU       {_cpu_model()}, {os.cpu_count()} cores ({affinity} usable)")
    print(f"  Python    {platform.python_version()} ({platform.python_implementation()})")
    print(f"  packages  {_versions()}")
    print(f"  database  {backend}")
    print(f"  dataset   {', '.join(f'{v:,} {k}' for k, v in seeded.sizes.items())}")
    print(f"  load      {load}")
    print(f"  CPU use   {result['steal']} (all cores, while measuring)")
    print(f"  code      {sources}")
    print()
    n = len(samples.server)
    size_kb = statistics.median(samples.bytes) / 1000
    common.table(
        f"GraphQL page: configurations(first: {PAGE}) with organization, location, contact, "
        f"psaLinks {{ integration }} ({n} pages, p50 / p95)",
        [
            ("seeding", f"{seeded.seconds:.1f} s", "insert_rows in chunks of 5,000"),
            (
                "server",
                _ms(samples.server),
                f"inside the ASGI app: auth, Strawberry, SQL, JSON ({size_kb:.0f} kB response)",
            ),
            ("  client round trip", _ms(samples.client), "httpx.ASGITransport, body read"),
            (
                "in-memory Strawberry",
                _ms(samples.memory),
                "plain schema, same query and objects, primed loaders, 0 SQL",
            ),
            (
                "  with the app's extensions",
                _ms(samples.memory_ext),
                "MaskErrors, depth, alias and token limiters (information)",
            ),
            (
                "  data fetch alone",
                _ms(samples.fetch),
                "keyset_page + 4 loaders, rows to types, no GraphQL (information)",
            ),
            (
                "server p50 / in-memory p50",
                f"{ratio:.2f}",
                f"target <= {TARGET_RATIO}: {common.verdict(ratio <= TARGET_RATIO)}",
            ),
            (
                f"SQL statements, first: {SMALL_PAGE}",
                "/".join(map(str, per_size[SMALL_PAGE])),
                f"{len(counts[SMALL_PAGE])} requests after warm-up",
            ),
            (
                f"SQL statements, first: {PAGE}",
                "/".join(map(str, per_size[PAGE])),
                f"target <= {TARGET_STATEMENTS}, same for both sizes: "
                + common.verdict(statements_ok),
            ),
            ("  statements", "", kinds),
            (
                "  the key's first request",
                str(len(result["first_request"])),
                "includes the last_used_at UPDATE (at most once per 5 minutes per key)",
            ),
        ],
    )
    common.table(
        "Targets",
        [
            (
                f"server p50 <= {TARGET_RATIO} x in-memory p50",
                common.verdict(ratio <= TARGET_RATIO),
                f"{server_p50 * 1000:.1f} ms / {memory_p50 * 1000:.1f} ms = {ratio:.2f}",
            ),
            (
                f"SQL statements <= {TARGET_STATEMENTS}, whatever the page size",
                common.verdict(statements_ok),
                f"first: {SMALL_PAGE} -> {per_size[SMALL_PAGE]}, first: {PAGE} -> {per_size[PAGE]}",
            ),
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
