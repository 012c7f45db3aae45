"""A model-checked two-way sync: the real engine against the ConnectWise simulator in process.

``World`` owns one run: a fresh database, a ConnectWise simulator served in process over
httpx (``simulators.transport.InProcessTransport``: real requests, real providers, no
sockets), an integration with two-way sync and a policy per field, a virtual clock shared by
psasync and the simulator, and a log of every write a user made on either side. ``Machine``
(a Hypothesis ``RuleBasedStateMachine``) interleaves at random: local edits, PSA edits, local
creates, deliveries (plain, with a PSA user or a local user editing while the write is on its
way, or with the worker dying mid-batch), notices (duplicated, reordered, dropped, echoes of
our own writes), webhook processing, polls, faults (429, 5xx, writes applied whose answer is
lost), pause and resume, and time passing. At the end it lets everything settle and checks:

- both sides hold the same value of every two-way field, except a field parked in an open
  MANUAL conflict, whose two sides hold exactly the conflict's two values;
- no one-sided change is lost: the last value either side's user wrote survives, unless the
  other side's user overwrote it after seeing it, or a recorded conflict names it;
- every conflict names values users wrote (no echo of psasync's own write is a conflict),
  and was settled by its field's policy;
- every record created locally exists once in the PSA, and was not pulled back twice;
- no write was sent twice to a record with nothing in between (no blind re-send).

Rules run in a worker thread (Hypothesis is synchronous); each one runs its coroutine on the
test's event loop, where Tortoise's connections live.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

from harness import ALL_SCOPE, CREDENTIALS, FAST_RETRY
from starlette.requests import Request
from tortoise.contrib.test import truncate_all_models

from models import (
    Account,
    AssetKind,
    Configuration,
    ConflictOutcome,
    DeliveryStatus,
    Integration,
    LinkState,
    Organization,
    OutboxEntry,
    OutboxStatus,
    RecordLink,
    ReferenceKind,
    ReferenceMapping,
    ReferenceValue,
    RunKind,
    SyncConflict,
    SyncState,
    WebhookDelivery,
)
from models.outbox import json_value
from models.vault import Vault
from simulators.connectwise import ConnectWiseSimulator, DatasetSpec, generate_dataset
from simulators.pulseway import ApiCredentials as PulsewayLogin
from simulators.pulseway import DatasetSpec as PulsewaySpec
from simulators.pulseway import PulsewaySimulator
from simulators.pulseway import generate_dataset as generate_pulseway
from simulators.transport import InProcessTransport
from sync import directions as direction_settings
from sync import jobs, local_edits
from sync.connections import Options, connectwise_provider, provider_factory, pulseway_provider
from sync.deliverer import LEASE
from sync.integrations import add_connectwise, add_pulseway, pause, resume
from sync.providers.connectwise.credentials import ConnectWiseCredentials
from sync.providers.pulseway.credentials import PulsewayCredentials
from sync.runner import Worker
from sync.sync_settings import SettingsChange, update

T = TypeVar("T")
SITE = "http://127.0.0.1:9"  # never dialled: the transport serves the simulator in process
PULSEWAY_LOGIN = PulsewayLogin(tenant="model", username="psasync.api", password="api-password")

# The fields the model edits, by local column: (kind, column, policy).
FIELDS = (
    (AssetKind.ORGANIZATION, "name", "PSA_WINS"),
    (AssetKind.CONFIGURATION, "serial_number", "LOCAL_WINS"),
    (AssetKind.CONFIGURATION, "notes", "MANUAL"),
)
POLICIES = {(kind, column): policy for kind, column, policy in FIELDS}
FAULTS = {
    "none": {},
    "429 every 3rd request": {"rate_limit_every": 3, "retry_after_seconds": 1},
    "503 every 4th request": {"error_every": 4, "error_status": 503},
    "every write applied, its answer lost": {"drop_after_write_every": 1},
    "every 2nd write applied, its answer lost": {"drop_after_write_every": 2},
    "outage": {"outage_status": 503},
}


class Died(BaseException):
    """The worker's process died (raised where it was; nothing after it runs)."""


@dataclass
class Write:
    """A user's write of one field on one side (``before``: that side's value just before)."""

    side: str  # "local" or "psa"
    value: Any
    before: Any
    seq: int


@dataclass
class Tracked:
    kind: AssetKind
    local_id: uuid.UUID
    psa_id: int
    column: str
    initial: Any
    writes: list[Write] = field(default_factory=list)

    def last(self, side: str) -> Write | None:
        return next((w for w in reversed(self.writes) if w.side == side), None)


@dataclass
class Event:
    """A write the simulator reported (what a ConnectWise callback would say)."""

    key: str
    kind: AssetKind
    psa_id: int
    action: str
    member: str
    stamp: int | None


class ConnectWise:
    """The ConnectWise side: its simulator, in process, and its names for the fields."""

    name = "connectwise"
    collections = {AssetKind.ORGANIZATION: "companies", AssetKind.CONFIGURATION: "configurations"}
    properties = {
        (AssetKind.ORGANIZATION, "name"): "name",
        (AssetKind.CONFIGURATION, "serial_number"): "serialNumber",
        (AssetKind.CONFIGURATION, "notes"): "notes",
    }

    def __init__(self, world: World) -> None:
        store = generate_dataset(
            DatasetSpec(companies=3, sites=3, contacts=0, configurations=8, seed=6)
        )
        store._clock = world.clock
        store.listeners.append(self._heard)
        self.world = world
        self.store = store
        self.simulator = ConnectWiseSimulator(store, credentials=CREDENTIALS)

    async def connect(self, account: Account, vault: Vault) -> Integration:
        credentials = ConnectWiseCredentials(
            site_url=SITE,
            company_id=CREDENTIALS.company_id,
            public_key=CREDENTIALS.public_key,
            private_key=CREDENTIALS.private_key,
            client_id="psasync-model",
        )
        provider = connectwise_provider(
            credentials, sandbox=True, transport=InProcessTransport(app=self.simulator.app)
        )
        try:
            integration, _run = await add_connectwise(
                account, credentials, vault, sandbox=True, enable=ALL_SCOPE, provider=provider
            )
        finally:
            await provider.aclose()
        return integration

    def value(self, kind: AssetKind, psa_id: int, column: str) -> Any:
        record = self.store.get(self.collections[kind], psa_id)
        assert record is not None
        return record.get(self.properties[(kind, column)])

    def edit(self, kind: AssetKind, psa_id: int, column: str, value: Any) -> None:
        prop = self.properties[(kind, column)]
        self.store.update(self.collections[kind], psa_id, {prop: value})

    def named(self, name: str) -> int:
        return len(self.store.find("configurations", f'name = "{name}"'))

    def target(self, request: Request) -> tuple[AssetKind | None, int]:
        """What a write request is for (0: a create)."""
        parts = request.url.path.rstrip("/").split("/")
        psa_id = int(parts[-1]) if parts[-1].isdigit() else 0
        collection = parts[-2] if psa_id else parts[-1]
        kinds = {v: k for k, v in self.collections.items()}
        return kinds.get(collection), psa_id

    def _heard(self, collection: str, action: str, record_id: int, member: str) -> None:
        kind = {v: k for k, v in self.collections.items()}.get(collection)
        if kind is None:
            return
        record = self.store.get(collection, record_id)
        stamp = None
        if record is not None:
            updated = (record.get("_info") or {}).get("lastUpdated")
            stamp = int(datetime.fromisoformat(updated).timestamp()) if updated else None
        self.world.events.append(Event(uuid.uuid4().hex, kind, record_id, action, member, stamp))


class Pulseway:
    """The Pulseway PSA side: its simulator, in process, and its names for the fields."""

    name = "pulseway"
    tables = {AssetKind.ORGANIZATION: "accounts", AssetKind.CONFIGURATION: "assets"}
    properties = {
        (AssetKind.ORGANIZATION, "name"): "accountName",
        (AssetKind.CONFIGURATION, "serial_number"): "serialNumber",
        (AssetKind.CONFIGURATION, "notes"): "description",
    }
    enable: ClassVar[dict[ReferenceKind, list[str]]] = {
        ReferenceKind.ORGANIZATION_TYPE: ["Customer"],
        ReferenceKind.ORGANIZATION_STATUS: ["Active"],
        ReferenceKind.CONFIGURATION_TYPE: ["Workstation", "Laptop", "Server"],
        ReferenceKind.CONFIGURATION_STATUS: ["In Use", "In Stock"],
    }

    def __init__(self, world: World) -> None:
        store = generate_pulseway(PulsewaySpec(accounts=3, contacts=0, assets=12, seed=2))
        store.clock = _WholeSeconds(world)
        store.listeners.append(self._heard)
        self.world = world
        self.store = store
        self.simulator = PulsewaySimulator(store, credentials=PULSEWAY_LOGIN, calls_per_hour=0)
        self.simulator.webhooks.close()  # notices come from the model (``notify``)

    async def connect(self, account: Account, vault: Vault) -> Integration:
        credentials = PulsewayCredentials(
            tenant=PULSEWAY_LOGIN.tenant,
            user_name=PULSEWAY_LOGIN.username,
            password=PULSEWAY_LOGIN.password,
            host=SITE,
        )
        options = Options(transport=InProcessTransport(app=self.simulator.app), retry=FAST_RETRY)
        provider = pulseway_provider(credentials, sandbox=True, options=options)
        try:
            integration, _run = await add_pulseway(
                account, credentials, vault, sandbox=True, enable=self.enable, provider=provider
            )
        finally:
            await provider.aclose()
        return integration

    def value(self, kind: AssetKind, psa_id: int, column: str) -> Any:
        return self.store.get(self.tables[kind], psa_id).get(self.properties[(kind, column)])

    def edit(self, kind: AssetKind, psa_id: int, column: str, value: Any) -> None:
        self.store.update(self.tables[kind], psa_id, **{self.properties[(kind, column)]: value})

    def named(self, name: str) -> int:
        return sum(1 for asset in self.store.assets.values() if asset.get("name") == name)

    def target(self, request: Request) -> tuple[AssetKind | None, int]:
        parts = request.url.path.rstrip("/").split("/")
        psa_id = int(parts[-1]) if parts[-1].isdigit() else 0
        path = request.url.path
        if "/crm/accounts" in path:
            return AssetKind.ORGANIZATION, psa_id
        if "/hardwareasset" in path:
            return AssetKind.CONFIGURATION, psa_id
        return None, psa_id

    def _heard(self, change: Any) -> None:
        kind = {v: k for k, v in self.tables.items()}.get(change.kind)
        if kind is None:
            return
        stamp = int(change.at.timestamp())
        self.world.events.append(
            Event(uuid.uuid4().hex, kind, change.record_id, change.action, str(change.user), stamp)
        )


class _WholeSeconds:
    """The Pulseway store's clock, on the model's time (Pulseway stamps whole seconds)."""

    def __init__(self, world: World) -> None:
        self.world = world

    def now(self) -> datetime:
        return self.world.now.replace(microsecond=0)


PSAS = {"connectwise": ConnectWise, "pulseway": Pulseway}


class World:
    def __init__(self, vault: Vault, psa: str = "connectwise") -> None:
        self.vault = vault
        self.psa_name = psa
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self.seq = itertools.count(1)
        self.values = itertools.count(1)
        self.events: list[Event] = []
        # Writes the PSA applied, (kind, PSA id, body), in order; a PSA user's edit as body
        # None (after it, the same write again is a new decision, not a re-send).
        self.api_writes: list[tuple[str, int, str | None]] = []
        self.created: list[str] = []  # names of configurations created locally
        self.paused = False
        self.race: Callable[[Request], Awaitable[None]] | None = None

    def clock(self) -> datetime:
        return self.now

    # -- setting up ----------------------------------------------------------------------

    async def start(self) -> None:
        await truncate_all_models()
        self.psa: ConnectWise | Pulseway = PSAS[self.psa_name](self)
        self.simulator = self.psa.simulator
        self.simulator.before_write.append(self._before_write)
        transport = InProcessTransport(app=self.simulator.app)
        factory = provider_factory(
            self.vault, transport=transport, retry=FAST_RETRY, calls_per_hour=10**9
        )
        # Two workers, as two processes would have: each with its deliverer and inbox.
        self.workers = [
            Worker(factory, schedule=False, retry_delay=timedelta(0), clock=self.clock)
            for _ in range(2)
        ]
        for worker in self.workers:
            worker.deliverer.base_delay = 0  # back-offs are Retry-After only
            worker.inbox.base_delay = 0
        self.worker = self.workers[0]
        self.account = await Account.create(name="Model MSP")
        integration = await self.psa.connect(self.account, self.vault)
        await self.worker.run_until_idle()
        fields = {
            f"{kind.value}.{column}": {"direction": "TWO_WAY", "policy": policy}
            for kind, column, policy in FIELDS
        }
        integration = await Integration.get(id=integration.id)
        integration.directions = direction_settings.validated(
            integration.provider, integration.directions or {}, {"fields": fields}
        )
        await integration.save(update_fields=["directions"])
        await update(integration, SettingsChange(two_way_enabled=True))
        await self.worker.run_until_idle()
        self.integration_id = integration.id
        self.tracked: list[Tracked] = []
        for kind, column, _policy in FIELDS:
            links = await RecordLink.filter(
                integration_id=integration.id, kind=kind, state=LinkState.SYNCED
            ).order_by("psa_id")
            for link in links[:2]:
                assert link.psa_id is not None
                initial = self.psa.value(kind, link.psa_id, column)
                self.tracked.append(Tracked(kind, link.local_id, link.psa_id, column, initial))
        self.organizations = [t for t in self.tracked if t.kind is AssetKind.ORGANIZATION]
        assert self.organizations
        assert len(self.tracked) > len(self.organizations)
        self.events.clear()

    async def integration(self) -> Integration:
        return await Integration.get(id=self.integration_id)

    # -- what users do ---------------------------------------------------------------------

    def value(self, side: str) -> str:
        return f"{'L' if side == 'local' else 'P'}{next(self.values)}"

    async def local_value(self, tracked: Tracked) -> Any:
        model = Organization if tracked.kind is AssetKind.ORGANIZATION else Configuration
        row = await model.get(id=tracked.local_id)
        return getattr(row, tracked.column)

    def psa_value(self, tracked: Tracked) -> Any:
        return self.psa.value(tracked.kind, tracked.psa_id, tracked.column)

    async def local_edit(self, tracked: Tracked) -> None:
        value = self.value("local")
        before = await self.local_value(tracked)
        await local_edits.update(
            tracked.kind, self.account.id, tracked.local_id, {tracked.column: value}, actor="u"
        )
        tracked.writes.append(Write("local", value, before, next(self.seq)))

    def psa_edit(self, tracked: Tracked) -> None:
        value = self.value("psa")
        before = self.psa_value(tracked)
        self.psa.edit(tracked.kind, tracked.psa_id, tracked.column, value)
        self.api_writes.append((str(tracked.kind), tracked.psa_id, None))
        tracked.writes.append(Write("psa", value, before, next(self.seq)))

    async def create_configuration(self, organization: Tracked) -> None:
        name = f"NEW-{next(self.values)}"
        kinds = {k: await self._enabled(k) for k in ("configuration_type", "configuration_status")}
        await local_edits.create(
            AssetKind.CONFIGURATION,
            self.account.id,
            {
                "organization_id": organization.local_id,
                "name": name,
                "configuration_type_id": kinds["configuration_type"],
                "configuration_status_id": kinds["configuration_status"],
            },
            actor="u",
        )
        self.created.append(name)

    async def _enabled(self, kind: str) -> uuid.UUID:
        mapping = await ReferenceMapping.filter(
            integration_id=self.integration_id, kind=kind, sync_state=SyncState.ENABLED
        ).first()
        assert mapping is not None
        value = await ReferenceValue.get(id=mapping.value_id)  # type: ignore[attr-defined]
        return value.id

    # -- what psasync does -------------------------------------------------------------------

    async def deliver(self) -> None:
        await self.worker.deliverer.run_due()

    async def deliver_racing(self, race: Callable[[Request], Awaitable[None]]) -> None:
        """Deliver, with ``race`` run when the first write arrives at the PSA."""
        self.race = race
        try:
            await self.worker.deliverer.run_due()
        finally:
            self.race = None

    async def psa_user_races(self, request: Request, tracked: list[Tracked]) -> None:
        """A PSA user edits a field of the record being written that this write does not
        carry (the window on the written fields themselves is documented, not closed)."""
        kind, psa_id = self.psa.target(request)
        operations = json.loads(await request.body())
        if not isinstance(operations, list):
            return  # a create, or a whole record PUT: nothing to tell apart
        written = {str(op.get("path", "")).strip("/") for op in operations}
        for item in tracked:
            prop = self.psa.properties[(item.kind, item.column)]
            if item.kind == kind and item.psa_id == psa_id and prop not in written:
                self.psa_edit(item)
                return

    async def at_once(self, *operations: Awaitable[Any]) -> None:
        """Operations of the two workers interleaved on one event loop (as two processes'
        would be, at every await)."""
        await asyncio.gather(*operations)

    async def die_mid_batch(self) -> None:
        """The worker dies when its first write reaches the PSA: the lease stays held until
        it expires, marks and entries stay as they were."""

        async def die(_request: Request) -> None:
            raise Died

        integration = await self.integration()
        self.race = die
        try:
            await self.worker.deliverer.deliver(integration)
        except Died:
            # What the dead process left: its lease, held until it expires.
            await Integration.filter(id=integration.id).update(
                push_lease_owner="dead#0", push_lease_expires_at=self.now + LEASE
            )
        finally:
            self.race = None

    async def _before_write(self, request: Request) -> None:
        race, self.race = self.race, None
        if race is not None:
            await race(request)  # (a worker that dies here sends nothing)
        kind, psa_id = self.psa.target(request)
        self.api_writes.append((str(kind), psa_id, (await request.body()).decode()))

    async def notify(self, order: list[int], duplicate: bool, drop: bool) -> None:
        """Store the notices heard so far as the receiver would, in ``order`` (indexes into
        them, reordering), some twice, or leave some out (the poll covers those)."""
        events, self.events = self.events, []
        if not events:
            return
        chosen = [events[i % len(events)] for i in order] or events
        if drop:
            chosen = chosen[1:]
        keyed = [(event.key, event) for event in chosen]
        if duplicate and chosen:  # the same change notified twice, under two message ids
            keyed.append((uuid.uuid4().hex, chosen[0]))
        for key, event in keyed:
            await WebhookDelivery.get_or_create(
                integration_id=self.integration_id,
                dedupe_key=key,
                defaults={
                    "received_at": self.now,
                    "kind": event.kind,
                    "psa_id": event.psa_id,
                    "action": event.action,
                    "member": event.member,
                    "stamp": event.stamp,
                    "payload": "{}",
                },
            )

    async def process_inbox(self) -> None:
        await self.worker.inbox.run_due()

    async def poll(self, kind: RunKind = RunKind.INCREMENTAL, worker: int = 0) -> None:
        """A poll (a run: it catches up pushes first, then pulls)."""
        await jobs.enqueue(await self.integration(), kind=kind)
        await self.workers[worker].run_until_idle()

    def faults(self, name: str) -> None:
        """Faults from now on (``during`` sets them for one operation)."""
        self.simulator.faults.clear()
        self.simulator.faults.configure(FAULTS[name])

    async def during(self, name: str, awaitable: Awaitable[T]) -> T:
        """Run one operation while the PSA misbehaves as ``name`` says, then as before."""
        before = self.simulator.faults.as_dict()
        self.faults(name)
        try:
            return await awaitable
        finally:
            self.simulator.faults.clear()
            self.simulator.faults.configure(before)

    async def pause(self) -> None:
        if not self.paused:
            await pause(await self.integration())
            self.paused = True

    async def resume(self) -> None:
        if self.paused:
            await resume(await self.integration())
            self.paused = False

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    # -- the end ---------------------------------------------------------------------------

    async def settle(self) -> None:
        """Faults cleared, resumed: deliver, notify, process and poll until nothing moves."""
        self.simulator.faults.clear()
        await self.resume()
        for _ in range(20):
            self.advance(LEASE.total_seconds() + 1)
            await self.notify([], duplicate=False, drop=False)
            await self.deliver()
            await self.process_inbox()
            await self.poll()
            await self.deliver()
            await self.notify([], duplicate=False, drop=False)
            await self.process_inbox()
            busy = (
                await OutboxEntry.filter(
                    integration_id=self.integration_id, status=OutboxStatus.PENDING
                ).exists()
                or await WebhookDelivery.filter(
                    integration_id=self.integration_id, status=DeliveryStatus.PENDING
                ).exists()
            )
            if not busy and not self.events:
                break
        await self.poll(RunKind.FULL)
        await self.deliver()

    async def check(self) -> None:
        failed = await OutboxEntry.filter(integration_id=self.integration_id).values(
            "operation", "status", "last_error", "kind", "local_id"
        )
        assert not failed, f"entries left in the outbox: {failed}"
        for tracked in self.tracked:
            await self._check_field(tracked)
        await self._check_conflicts()
        await self._check_creates()
        self._check_writes()

    async def _check_field(self, t: Tracked) -> None:
        local, psa = await self.local_value(t), self.psa_value(t)
        what = f"{t.kind.value} {t.psa_id} {t.column} (writes {t.writes}, initial {t.initial!r})"
        conflicts = await SyncConflict.filter(
            integration_id=self.integration_id, local_id=t.local_id, field=t.column
        ).order_by("created_at")
        opened = [c for c in conflicts if c.outcome == ConflictOutcome.OPEN]
        if opened:
            assert len(opened) == 1, f"{what}: two open conflicts"
            assert (local, psa) == (
                json_value(opened[0].local_value),
                json_value(opened[0].psa_value),
            ), f"{what}: local {local!r} / PSA {psa!r} are not the open conflict's sides"
        else:
            assert local == psa, f"{what}: local {local!r} != PSA {psa!r} after settling"
        named = {("local", json_value(c.local_value)) for c in conflicts} | {
            ("psa", json_value(c.psa_value)) for c in conflicts
        }
        for side, final in (("local", local), ("psa", psa)):
            last = t.last(side)
            if last is None or last.value == final:
                continue
            other = "psa" if side == "local" else "local"
            seen = any(w.side == other and w.seq > last.seq and w.before == last.value
                       for w in t.writes)  # fmt: skip
            assert seen or (side, last.value) in named, (
                f"{what}: {side}'s last write {last.value!r} was lost (now {final!r}) with "
                f"no conflict naming it and no later {other} edit that saw it"
            )

    async def _check_conflicts(self) -> None:
        by_record = {(t.local_id, t.column): t for t in self.tracked}
        for conflict in await SyncConflict.filter(integration_id=self.integration_id):
            t = by_record.get((conflict.local_id, conflict.field))
            assert t is not None, f"a conflict on an untouched field: {conflict.field}"
            policy = POLICIES[(t.kind, t.column)]
            expected = {
                "PSA_WINS": {ConflictOutcome.PSA},
                "LOCAL_WINS": {ConflictOutcome.LOCAL},
                "MANUAL": {ConflictOutcome.OPEN, ConflictOutcome.RESOLVED},
            }[policy]
            assert conflict.outcome in expected, f"{policy} settled as {conflict.outcome}"
            locals_ = {t.initial} | {w.value for w in t.writes if w.side == "local"}
            psas = {t.initial} | {w.value for w in t.writes if w.side == "psa"}
            local_value = json_value(conflict.local_value)
            psa_value = json_value(conflict.psa_value)
            assert local_value in locals_, f"phantom conflict: local {local_value!r} ({t.writes})"
            assert psa_value in psas, f"phantom conflict: PSA {psa_value!r} ({t.writes})"

    async def _check_creates(self) -> None:
        for name in self.created:
            in_psa = self.psa.named(name)
            assert in_psa == 1, f"{name} is in the PSA {in_psa} times"
            assert await Configuration.filter(name=name).count() == 1, f"{name} came back twice"

    def _check_writes(self) -> None:
        previous: dict[tuple[str, int], str | None] = {}
        for kind, psa_id, body in self.api_writes:
            assert body is None or previous.get((kind, psa_id)) != body, (
                f"the same write went to {kind} {psa_id} twice with nothing in between: {body}"
            )
            previous[(kind, psa_id)] = body
