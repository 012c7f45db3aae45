"""What one run carries through its phases."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from models import AssetKind, Integration, SyncRun
from sync.connections import table_of
from sync.directions import any_push, clocks_of, integration_directions
from sync.merge import Clocks, Directions
from sync.reference import ReferenceIndex

if TYPE_CHECKING:
    from sync.apply import LinkRow


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunContext:
    """``run`` is None when records are synced outside a run (webhook notices): counts stay
    in memory, and each record's outcome is kept in ``outcomes``."""

    integration: Integration
    run: SyncRun | None
    reference: ReferenceIndex = field(default_factory=ReferenceIndex)
    clock: Callable[[], datetime] = utcnow
    # The run's counts over all its attempts (seeded from the run); rows this attempt wrote.
    counts: Counter[str] = field(default_factory=Counter)
    processed: int = 0
    rows_written: int = 0
    # Dry runs write no links, so what they would have linked is kept here instead, for the
    # later phases to resolve against (memory grows with the records planned, dry runs only).
    planned: defaultdict[AssetKind, dict[int, LinkRow]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    checkpoint: dict[str, Any] = field(default_factory=dict)
    # Two-way sync: how each field flows. A pull merges records only when something flows
    # to the PSA at all; otherwise it takes the one-way path (the PSA wins, no local reads).
    directions: Directions | None = None
    clocks: Clocks = field(default_factory=Clocks)
    two_way: bool = False
    # PSA id → what became of the record ("updated", "unchanged", "out_of_scope:…", …), for
    # callers that answer per record (webhook deliveries); None when nobody asks.
    outcomes: dict[int, str] | None = None
    # Kinds whose PSA area the API user may not read (``sync.permissions``): the run leaves
    # them as they are, unread and not orphaned, and says so in the integration's report.
    skipped: frozenset[AssetKind] = frozenset()

    def reads(self, kind: AssetKind) -> bool:
        """Whether this run reads ``kind`` from the PSA (its area is not denied)."""
        return kind not in self.skipped

    def __post_init__(self) -> None:
        if self.run is not None:
            # A resumed run counts on from what its earlier attempts recorded: the counters
            # are the run's, not this attempt's.
            self.counts.update({name: n for name, n in self.run.counts().items() if n})
            self.processed = self.run.processed
        self.directions = integration_directions(self.integration)
        self.clocks = clocks_of(self.integration.directions or {})
        self.two_way = any_push(self.directions, table_of(self.integration))

    @property
    def dry_run(self) -> bool:
        return self.run is not None and bool(self.run.dry_run)

    @property
    def run_id(self) -> uuid.UUID:
        """The run's id, for code that only ever runs inside a run (phases, push-all)."""
        if self.run is None:
            raise RuntimeError("not inside a run")
        return self.run.id

    def note(self, psa_id: int, outcome: str) -> None:
        if self.outcomes is not None:
            self.outcomes[psa_id] = outcome
