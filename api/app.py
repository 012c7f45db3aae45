"""The Starlette application: database, migrations, the sync worker, the webhook receiver
(``/webhooks``) and the demo PSA."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from tortoise.contrib.starlette import RegisterTortoise

from api import demo
from api.graphql.view import GraphQLApp
from api.limits import BodyLimits, Limits
from api.settings import Settings, get_settings
from models import Integration
from models.db import migrate, tortoise_config
from sync.connections import ProviderFactory, provider_factory
from sync.runner import Worker
from webhooks.app import create_app as create_webhooks_app

log = logging.getLogger("psasync")


async def healthz(request: Request) -> JSONResponse:
    """Liveness plus a database round trip; 503 when the database does not answer."""
    try:
        integrations = await Integration.all().count()
    except Exception as exc:
        return JSONResponse({"status": "error", "database": type(exc).__name__}, status_code=503)
    worker = request.app.state.worker
    return JSONResponse(
        {"status": "ok", "integrations": integrations, "worker": worker is not None}
    )


def _wake(app: Starlette) -> None:
    worker = app.state.worker
    if worker is not None:
        worker.wake()


def _wake_inbox(app: Starlette) -> None:
    # getattr: the worker learns to process the inbox in its own change.
    wake = getattr(app.state.worker, "wake_inbox", None)
    if wake is not None:
        wake()


def create_app(
    settings: Settings | None = None,
    *,
    open_provider: ProviderFactory | None = None,
    migrate_on_start: bool = True,
    manage_database: bool = True,
    limits: Limits | None = None,
) -> Starlette:
    """The service. ``manage_database=False`` leaves the database (and the demo) to the
    caller, for tests that already hold a Tortoise connection. ``limits``: request-body size
    and deadline (api/limits.py), the defaults unless a test needs them short."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if migrate_on_start and manage_database:
            await migrate(settings.database_url)
        async with contextlib.AsyncExitStack() as stack:
            if manage_database:
                await stack.enter_async_context(
                    RegisterTortoise(app, config=tortoise_config(settings.database_url))
                )
                demo_integration = await stack.enter_async_context(demo.demo_psa(settings))
            else:
                demo_integration = None
            public_url = settings.public_url
            if public_url is None and demo_integration is not None:
                # The demo PSA runs on this machine: it can post its callbacks here.
                public_url = f"http://127.0.0.1:{settings.port}"
            graphql.public_url = public_url  # what integration.webhooks reports
            worker = None
            task = None
            if settings.worker:
                worker = Worker(
                    open_provider
                    or provider_factory(
                        settings.vault, calls_per_hour=settings.pulseway_calls_per_hour
                    ),
                    public_url=public_url,
                )
                task = asyncio.create_task(worker.run_forever(), name="psasync-worker")
            app.state.worker = worker
            if manage_database:
                # Everything loaded so far (modules, the schema, ORM metadata) lives as long
                # as the process: out of the collector's sight, a full collection no longer
                # walks it, and those pauses were the webhook receiver's tail latency.
                gc.collect()
                gc.freeze()
            try:
                yield
            finally:
                # Deliveries still waiting are committed (and answered) before the worker and
                # the database go.
                await webhooks.aclose()
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    graphql = GraphQLApp(
        settings.vault,
        wake_worker=lambda: _wake(app),
        allow_sandbox=settings.allow_sandbox,
        open_provider=open_provider,
        public_url=settings.public_url,
        wake_inbox=lambda: _wake_inbox(app),
        smtp=settings.smtp,
    )
    webhooks = create_webhooks_app(
        on_stored=lambda: _wake_inbox(app),
        vault=settings.vault,  # reads shared webhook secrets (Pulseway PSA)
    )
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Mount("/webhooks", app=webhooks),
        ],
        lifespan=lifespan,
        # Outermost: a body is bounded in size and time before any route reads it.
        middleware=[Middleware(BodyLimits, limits=limits or Limits())],
    )
    app.state.settings = settings
    app.state.worker = None
    app.state.webhooks = webhooks
    return app
