"""What every resolver gets: the caller, per-request dataloaders, a request id."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import strawberry

from api.access import Viewer
from api.mail import Smtp
from models.vault import Vault
from sync.connections import ProviderFactory, provider_factory
from sync.providers.http import RetryPolicy

if TYPE_CHECKING:
    from api.graphql.loaders import Loaders


# A person waits on the answer: one more try, soon, rather than a sync's patient back-off.
INTERACTIVE_RETRY = RetryPolicy(max_attempts=2, base_delay=0.25, max_delay=1.0, max_retry_after=2.0)


@dataclass
class Context:
    request_id: str
    viewer: Viewer | None
    loaders: Loaders
    vault: Vault
    # Wakes the in-process worker after a mutation queued a run (no-op without one).
    wake_worker: Callable[[], None] = lambda: None
    # Wakes the worker's inbox after a webhook delivery was queued again (no-op without one).
    wake_inbox: Callable[[], None] = lambda: None
    # Where PSAs reach psasync (PSASYNC_PUBLIC_URL); None: no webhooks, polling only.
    public_url: str | None = None
    allow_sandbox: bool = False
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = field(default=None)
    # Held while a query executes (``OneQueryAtATime``); None: not gated.
    query_gate: asyncio.Semaphore | None = None
    # How a resolver reaches an integration's PSA (None: the default, over real HTTP).
    provider_factory: ProviderFactory | None = None
    # Where invitations are emailed from (PSASYNC_SMTP_*); None: links go to the caller.
    smtp: Smtp | None = None

    @property
    def account_id(self) -> Any:
        assert self.viewer is not None  # the view refuses unauthenticated requests
        return self.viewer.account_id

    @property
    def actor(self) -> str | None:
        """Who the change history names for this caller's edits (the user's email)."""
        return self.viewer.email if self.viewer is not None else None

    @property
    def open_provider(self) -> ProviderFactory:
        return self.provider_factory or provider_factory(self.vault, retry=INTERACTIVE_RETRY)


Info = strawberry.Info[Context, None]
