"""The demo ``make run`` shows when no real PSA is configured.

A ConnectWise simulator with a seeded company set runs on a loopback port inside the service;
a demo account gets an administrator, a sandbox integration against the simulator (created
once, then reused), and an API key printed with the GraphiQL URL and example queries.

The demo key is derived from the secret key (HMAC), so it is the same on every start without
being stored anywhere but as the usual hash; a new secret key gives a new demo key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from api.settings import Settings
from models import Account, ApiKey, Integration, Role, User
from models.accounts import API_KEY_PREFIX
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
DEMO_COMPANIES = 50
DEMO_ADMIN = "admin@demo.psasync.local"
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
        account = await Account.filter(name=DEMO_ACCOUNT).first()
        account = account or await Account.create(name=DEMO_ACCOUNT)
        key = await demo_key(account, settings)
        integration = await Integration.filter(name=DEMO_INTEGRATION).first()
        if integration is None:
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
        sys.stdout.write(banner(settings, key))
        sys.stdout.flush()
        yield integration


async def demo_key(account: Account, settings: Settings) -> str:
    """The demo administrator's key: the same on every start with the same secret key."""
    digest = hmac.new(
        settings.secret_keys[0].encode(), b"psasync demo administrator key", hashlib.sha256
    ).digest()
    key = API_KEY_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")
    user = await User.filter(account_id=account.id, email=DEMO_ADMIN).first()
    if user is None:
        user = await User.create(
            account=account, email=DEMO_ADMIN, name="Demo administrator", role=Role.ADMINISTRATOR
        )
    if not await ApiKey.filter(key_hash=ApiKey.hash(key)).exists():
        await ApiKey.create(
            account=account, user=user, name="demo", prefix=key[:12], key_hash=ApiKey.hash(key)
        )
    return key


EXAMPLES = """\
    { integrations { name statusLabel lastRun { status progress { processed total } } } }

    { organizations(first: 5) { totalCount edges { node { name
        configurations(first: 3) { name psaLinks { psaId state readOnlyFields } } } } } }

    mutation { startManualSync(integrationId: "<id from integrations>") { run { id status } } }
"""


def banner(settings: Settings, key: str) -> str:
    url = f"http://{settings.host}:{settings.port}/graphql"
    return (
        "\n"
        "  psasync demo is ready\n"
        f"  GraphiQL:  {url}\n"
        f"  API key:   {key}\n"
        '  In GraphiQL, open Headers and add {"Authorization": "Bearer <API key>"}.\n'
        f"  curl:      curl -H 'Authorization: Bearer {key}' -H 'Content-Type: "
        'application/json\' -d \'{"query": "{ viewer { role } }"}\' ' + url + "\n"
        "  Try:\n" + EXAMPLES + "\n"
    )
