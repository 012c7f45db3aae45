"""The two-way invariants, model-checked: random interleavings of everything users, the PSA,
the network and the worker can do, against the real engine and the ConnectWise simulator in
process (``two_way_model.py`` says what is checked).

``make test`` runs a modest, fixed set of examples; ``make soak`` runs many random ones
(``PSASYNC_MODEL_EXAMPLES``, ``PSASYNC_MODEL_STEPS``, ``PSASYNC_MODEL_SEED``), for each PSA:
ConnectWise Manage and Pulseway PSA, their real providers against their simulators.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from harness import runner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test
from two_way_model import FAULTS, World

from models.vault import Vault

EXAMPLES = int(os.environ.get("PSASYNC_MODEL_EXAMPLES", "25"))
STEPS = int(os.environ.get("PSASYNC_MODEL_STEPS", "40"))
SOAK = "PSASYNC_MODEL_EXAMPLES" in os.environ
INDEX = st.integers(min_value=0, max_value=50)
FAULT = st.sampled_from(sorted(FAULTS))


def machine(run: object, vault: Vault, psa: str) -> type[RuleBasedStateMachine]:
    execute = run  # (a callable running a coroutine on the test's loop)

    class TwoWay(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.world = World(vault, psa)
            self.run(self.world.start())

        def run(self, awaitable: object) -> None:
            execute(awaitable)  # type: ignore[operator]

        def pick(self, index: int) -> object:
            return self.world.tracked[index % len(self.world.tracked)]

        @rule(index=INDEX)
        def a_user_edits_a_field_locally(self, index: int) -> None:
            self.run(self.world.local_edit(self.pick(index)))  # type: ignore[arg-type]

        @rule(index=INDEX)
        def a_psa_user_edits_a_field(self, index: int) -> None:
            self.world.psa_edit(self.pick(index))  # type: ignore[arg-type]

        @rule(index=INDEX)
        def a_user_creates_a_configuration(self, index: int) -> None:
            organizations = self.world.organizations
            self.run(self.world.create_configuration(organizations[index % len(organizations)]))

        @rule(fault=FAULT)
        def pushes_are_delivered(self, fault: str) -> None:
            self.run(self.world.during(fault, self.world.deliver()))

        @rule(fault=FAULT)
        def pushes_are_delivered_while_a_psa_user_edits_the_record(self, fault: str) -> None:
            world = self.world

            async def race(request: object) -> None:
                await world.psa_user_races(request, world.tracked)  # type: ignore[arg-type]

            self.run(world.during(fault, world.deliver_racing(race)))

        @rule(index=INDEX, fault=FAULT)
        def pushes_are_delivered_while_a_user_edits_locally(self, index: int, fault: str) -> None:
            world, tracked = self.world, self.pick(index)

            async def race(_request: object) -> None:
                await world.local_edit(tracked)  # type: ignore[arg-type]

            self.run(world.during(fault, world.deliver_racing(race)))

        @rule(fault=FAULT)
        def the_worker_dies_mid_batch(self, fault: str) -> None:
            self.run(self.world.during(fault, self.world.die_mid_batch()))

        @rule(fault=FAULT)
        def two_workers_deliver_at_once(self, fault: str) -> None:
            world = self.world
            both = world.at_once(*(w.deliverer.run_due() for w in world.workers))
            self.run(world.during(fault, both))

        @rule(fault=FAULT)
        def a_poll_runs_while_the_other_worker_delivers(self, fault: str) -> None:
            world = self.world
            both = world.at_once(world.poll(worker=1), world.worker.deliverer.run_due())
            self.run(world.during(fault, both))

        @rule(fault=FAULT)
        def notices_are_processed_while_pushes_are_delivered(self, fault: str) -> None:
            world = self.world
            both = world.at_once(world.workers[1].inbox.run_due(), world.worker.deliverer.run_due())
            self.run(world.during(fault, both))

        @rule(
            order=st.lists(st.integers(min_value=0, max_value=30), max_size=8),
            duplicate=st.booleans(),
            drop=st.booleans(),
        )
        def the_psa_notifies(self, order: list[int], duplicate: bool, drop: bool) -> None:
            self.run(self.world.notify(order, duplicate, drop))

        @rule(fault=FAULT)
        def notices_are_processed(self, fault: str) -> None:
            self.run(self.world.during(fault, self.world.process_inbox()))

        @rule(fault=FAULT)
        def a_poll_runs(self, fault: str) -> None:
            self.run(self.world.during(fault, self.world.poll()))

        @rule(name=FAULT)
        def the_psa_misbehaves_from_now_on(self, name: str) -> None:
            self.world.faults(name)

        @rule()
        def the_integration_is_paused(self) -> None:
            self.run(self.world.pause())

        @rule()
        def the_integration_is_resumed(self) -> None:
            self.run(self.world.resume())

        @rule(seconds=st.sampled_from([0.4, 1.0, 2.0, 7.0, 61.0]))
        def time_passes(self, seconds: float) -> None:
            self.world.advance(seconds)

        def teardown(self) -> None:
            self.run(self.world.settle())
            self.run(self.world.check())

    return TwoWay


@pytest.mark.parametrize("psa", ["connectwise", "pulseway"])
async def test_two_way_sync_keeps_every_change_and_writes_once_under_any_interleaving(
    db: str, vault: Vault, psa: str
) -> None:
    run = runner(asyncio.get_running_loop())
    options = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        database=None,
        derandomize=not SOAK,
        suppress_health_check=list(HealthCheck),
    )
    if "PSASYNC_MODEL_SEED" in os.environ:
        from hypothesis import seed

        seeded = seed(int(os.environ["PSASYNC_MODEL_SEED"]))
        await asyncio.to_thread(
            lambda: seeded(run_state_machine_as_test)(machine(run, vault, psa), settings=options)
        )
        return
    await asyncio.to_thread(run_state_machine_as_test, machine(run, vault, psa), settings=options)
