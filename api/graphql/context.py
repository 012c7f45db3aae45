"""What every resolver gets: the caller, per-request dataloaders, a request id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import strawberry

from api.access import Viewer
from models.vault import Vault

if TYPE_CHECKING:
    from api.graphql.loaders import Loaders


@dataclass
class Context:
    request_id: str
    viewer: Viewer | None
    loaders: Loaders
    vault: Vault
    # Wakes the in-process worker after a mutation queued a run (no-op without one).
    wake_worker: Callable[[], None] = lambda: None
    allow_sandbox: bool = False
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = field(default=None)

    @property
    def account_id(self) -> Any:
        assert self.viewer is not None  # the view refuses unauthenticated requests
        return self.viewer.account_id


Info = strawberry.Info[Context, None]
