"""The demo PSA ``make run`` shows when no real PSA is configured.

A ConnectWise simulator with a seeded company set runs on a loopback port inside the service,
and a demo account gets a sandbox integration against it (created once, then reused).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from api.settings import Settings
from models import Account, Integration
from simulators.connectwise import (
    ApiCredentials,
    ConnectWiseSimulator,
    DatasetSpec,
    generate_dataset,
    serve_in_thread,
)
from sync.integrations import add_connectwise
from sync.providers.connectwise.credentials import ConnectWiseCredentials

log = logging.getLogger("psasync.demo")

DEMO_ACCOUNT = "Demo MSP"
DEMO_INTEGRATION = "Demo ConnectWise (simulator)"
DEMO_COMPANIES = 200
# Loopback-only toy credentials: the simulator they open lives inside this process.
DEMO_CREDENTIALS = ApiCredentials(
    company_id="demo", public_key="demo-public", private_key="demo-private"
)


async def wanted(settings: Settings) -> bool:
    if settings.demo == "on":
        return True
    if settings.demo == "off":
        return False
    real = await Integration.exclude(name=DEMO_INTEGRATION).exists()
    return not real


@asynccontextmanager
async def demo_psa(settings: Settings) -> AsyncIterator[Integration | None]:
    """Run the simulator for the life of the service; create the demo integration once."""
    if not await wanted(settings):
        yield None
        return
    store = generate_dataset(DatasetSpec(companies=DEMO_COMPANIES, seed=7))
    simulator = ConnectWiseSimulator(store, credentials=DEMO_CREDENTIALS, company_name="Demo MSP")
    async with serve_in_thread(simulator, "127.0.0.1", settings.demo_port) as base_url:
        integration = await Integration.filter(name=DEMO_INTEGRATION).first()
        if integration is None:
            account = await Account.filter(name=DEMO_ACCOUNT).first()
            account = account or await Account.create(name=DEMO_ACCOUNT)
            credentials = ConnectWiseCredentials(
                site_url=base_url,
                company_id=DEMO_CREDENTIALS.company_id,
                public_key=DEMO_CREDENTIALS.public_key,
                private_key=DEMO_CREDENTIALS.private_key,
                client_id="psasync-demo",
            )
            integration, _run = await add_connectwise(
                account, credentials, settings.vault, name=DEMO_INTEGRATION, sandbox=True
            )
            log.info("demo: created %s against the simulator at %s", DEMO_INTEGRATION, base_url)
        log.info("demo: ConnectWise simulator on %s (%d companies)", base_url, DEMO_COMPANIES)
        yield integration
