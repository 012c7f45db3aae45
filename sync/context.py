"""What one run carries through its phases."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from models import AssetKind, Integration, SyncRun
from sync.directions import any_push, clocks_of, integration_directions
from sync.merge import Clocks, Directions
from sync.reference import ReferenceIndex

if TYPE_CHECKING:
    from sync.apply import LinkRow


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunContext:
    integration: Integration
    run: SyncRun
    reference: ReferenceIndex = field(default_factory=ReferenceIndex)
    clock: Callable[[], datetime] = utcnow
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

    def __post_init__(self) -> None:
        self.directions = integration_directions(self.integration)
        self.clocks = clocks_of(self.integration.directions or {})
        self.two_way = any_push(self.directions, self.integration.provider)

    @property
    def dry_run(self) -> bool:
        return bool(self.run.dry_run)
