"""The demo ``make run`` shows when no real PSA is configured.

A ConnectWise simulator with a seeded company set runs on a loopback port inside the service;
a demo account gets an administrator, a sandbox integration against the simulator (created
once, then reused), and an API key printed with the GraphiQL URL and example queries.
``connectwise-soap`` adds a second integration against the same simulator (its legacy SOAP
face over the same records) holding only the integrator login, so it syncs through SOAP.

The demo key is derived from the secret key (HMAC), so it is the same on every start without
being stored anywhere but as the usual hash; a new secret key gives a new demo key.
"""

from __future__ import annotations

import base64
import contextlib
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
    ConnectWiseStore,
    DatasetSpec,
    generate_dataset,
    serve_in_thread,
)
from simulators.connectwise.soap import IntegratorLogin
from simulators.pulseway import ApiCredentials as PulsewayApiCredentials
from simulators.pulseway import DatasetSpec as PulsewayDatasetSpec
from simulators.pulseway import PulsewaySimulator
from simulators.pulseway import generate_dataset as generate_pulseway
from simulators.pulseway import serve_in_thread as serve_pulseway
from sync.integrations import add_connectwise, add_pulseway
from sync.providers.connectwise.credentials import ConnectWiseCredentials
from sync.providers.pulseway.credentials import PulsewayCredentials

log = logging.getLogger("psasync.demo")

DEMO_ACCOUNT = "Demo MSP"
DEMO_INTEGRATION = "Demo ConnectWise (simulator)"
DEMO_SOAP_INTEGRATION = "Demo ConnectWise SOAP (simulator)"
DEMO_PULSEWAY_INTEGRATION = "Demo Pulseway PSA (simulator)"
DEMO_INTEGRATIONS = (DEMO_INTEGRATION, DEMO_SOAP_INTEGRATION, DEMO_PULSEWAY_INTEGRATION)
DEMO_COMPANIES = 50
DEMO_PULSEWAY_ACCOUNTS = 12
# Pulseway accounts renamed after ConnectWise companies: a partner's clients are in both PSAs
# while it switches, so these become one organization with two links.
DEMO_SHARED_CLIENTS = 3
DEMO_ADMIN = "admin@demo.psasync.local"
# Loopback-only toy credentials: the simulators they open live inside this process.
DEMO_CREDENTIALS = ApiCredentials(
    company_id="demo", public_key="demo-public", private_key="demo-private"
)
DEMO_INTEGRATOR = IntegratorLogin(login_id="psasync-demo", password="demo-integrator-password")  # noqa: S106
DEMO_PULSEWAY_CREDENTIALS = PulsewayApiCredentials(
    tenant="demo",
    username="psasync.demo",
    password="demo-password",  # noqa: S106
)


async def wanted(settings: Settings) -> bool:
    if settings.demo == "on":
        return True
    if settings.demo == "off":
        return False
    real = await Integration.exclude(name__in=DEMO_INTEGRATIONS).exists()
    return not real


@asynccontextmanager
async def demo_psa(settings: Settings) -> AsyncIterator[Integration | None]:
    """Run the demo simulators for the life of the service (``PSASYNC_DEMO_PROVIDERS``);
    create their integrations once."""
    if not await wanted(settings):
        yield None
        return
    account = await Account.filter(name=DEMO_ACCOUNT).first()
    account = account or await Account.create(name=DEMO_ACCOUNT)
    key = await demo_key(account, settings)
    store = generate_dataset(DatasetSpec(companies=DEMO_COMPANIES, seed=7))
    integrations: list[Integration] = []
    async with contextlib.AsyncExitStack() as stack:
        providers = settings.demo_providers
        if {"connectwise", "connectwise-soap"} & set(providers):
            base_url = await stack.enter_async_context(_connectwise_site(settings, store))
            if "connectwise" in providers:
                integrations.append(await _connectwise(settings, base_url))
            if "connectwise-soap" in providers:
                integrations.append(await _connectwise_soap(settings, base_url))
        if "pulseway" in settings.demo_providers:
            shared = _synced_clients(store)[:DEMO_SHARED_CLIENTS]
            integrations.append(await stack.enter_async_context(_pulseway(settings, shared)))
        sys.stdout.write(banner(settings, key))
        sys.stdout.flush()
        yield integrations[0] if integrations else None


@asynccontextmanager
async def _connectwise_site(settings: Settings, store: ConnectWiseStore) -> AsyncIterator[str]:
    """One demo ConnectWise site serving REST and legacy SOAP over one store: the REST and
    SOAP demo integrations read the same records, with the same ids."""
    simulator = ConnectWiseSimulator(
        store,
        credentials=DEMO_CREDENTIALS,
        company_name="Demo MSP",
        integrator=DEMO_INTEGRATOR,
    )
    async with serve_in_thread(simulator, "127.0.0.1", settings.demo_port) as base_url:
        log.info("demo: ConnectWise simulator on %s (%d companies)", base_url, DEMO_COMPANIES)
        yield base_url


async def _connectwise(settings: Settings, base_url: str) -> Integration:
    """The REST demo integration (API-member keys)."""
    credentials = ConnectWiseCredentials(
        site_url=base_url,
        company_id=DEMO_CREDENTIALS.company_id,
        public_key=DEMO_CREDENTIALS.public_key,
        private_key=DEMO_CREDENTIALS.private_key,
        client_id="psasync-demo",
    )
    return await _connectwise_integration(settings, DEMO_INTEGRATION, credentials)


async def _connectwise_soap(settings: Settings, base_url: str) -> Integration:
    """The legacy SOAP demo integration: the integrator login only, no REST keys, so it
    syncs through SOAP and polls (SOAP has no callbacks)."""
    credentials = ConnectWiseCredentials(
        site_url=base_url,
        company_id=DEMO_CREDENTIALS.company_id,
        public_key=None,
        private_key=None,
        client_id="psasync-demo",
        integrator_login_id=DEMO_INTEGRATOR.login_id,
        integrator_password=DEMO_INTEGRATOR.password,
    )
    return await _connectwise_integration(settings, DEMO_SOAP_INTEGRATION, credentials)


async def _connectwise_integration(
    settings: Settings, name: str, credentials: ConnectWiseCredentials
) -> Integration:
    """Create the named demo integration once; later starts point it at the simulator."""
    integration = await Integration.filter(name=name).first()
    if integration is not None:
        await _follow(integration, settings, "site_url", credentials.site_url)
        return integration
    account = await Account.get(name=DEMO_ACCOUNT)
    integration, _run = await add_connectwise(
        account, credentials, settings.vault, name=name, sandbox=True
    )
    log.info("demo: created %s against the simulator at %s", name, credentials.site_url)
    return integration


@asynccontextmanager
async def _pulseway(settings: Settings, shared: list[str]) -> AsyncIterator[Integration]:
    """A Pulseway PSA tenant with a few of the ConnectWise clients in it, its webhook
    configured (signed with a secret derived from the service's key) to post here."""
    store = generate_pulseway(PulsewayDatasetSpec(accounts=DEMO_PULSEWAY_ACCOUNTS, seed=7))
    clients = sorted(store.table("accounts"))[: len(shared)]
    for account_id, name in zip(clients, shared, strict=False):
        store.update("accounts", account_id, accountName=name, accountTypeId=1, isActive=True)
    simulator = PulsewaySimulator(store, credentials=DEMO_PULSEWAY_CREDENTIALS, calls_per_hour=0)
    secret = _derived(settings, b"psasync demo pulseway webhook secret")
    port = settings.demo_port + 1 if settings.demo_port < 65535 else 0
    async with _serve_near(simulator, port) as base_url:
        account = await Account.get(name=DEMO_ACCOUNT)
        integration = await Integration.filter(name=DEMO_PULSEWAY_INTEGRATION).first()
        if integration is None:
            credentials = PulsewayCredentials(
                tenant=DEMO_PULSEWAY_CREDENTIALS.tenant,
                user_name=DEMO_PULSEWAY_CREDENTIALS.username,
                password=DEMO_PULSEWAY_CREDENTIALS.password,
                host=base_url,
                webhook_secret=secret,
            )
            integration, _run = await add_pulseway(
                account,
                credentials,
                settings.vault,
                name=DEMO_PULSEWAY_INTEGRATION,
                sandbox=True,
            )
            log.info("demo: created %s against the simulator at %s", integration.name, base_url)
        else:
            await _follow(integration, settings, "host", base_url)
        receiver = settings.public_url or f"http://127.0.0.1:{settings.port}"
        # As an admin would in Pulseway's Admin → Integrations → Webhooks.
        simulator.webhooks.add(
            f"{receiver.rstrip('/')}/webhooks/pulseway/{integration.id}", secret, name="psasync"
        )
        log.info(
            "demo: Pulseway PSA simulator on %s (%d accounts)", base_url, DEMO_PULSEWAY_ACCOUNTS
        )
        try:
            yield integration
        finally:
            simulator.webhooks.close()


@asynccontextmanager
async def _serve_near(simulator: PulsewaySimulator, port: int) -> AsyncIterator[str]:
    """Serve on ``port`` (the one after ``PSASYNC_DEMO_PORT``), or on a free one when it is
    taken: the port is implied, not chosen, so a busy one must not stop the demo (the stored
    integration follows the simulator to its port)."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            base_url = await stack.enter_async_context(
                serve_pulseway(simulator.app, "127.0.0.1", port)
            )
        except OSError as error:
            log.warning("demo: port %d is taken (%s); Pulseway PSA on a free port", port, error)
            base_url = await stack.enter_async_context(
                serve_pulseway(simulator.app, "127.0.0.1", 0)
            )
        yield base_url


async def _follow(integration: Integration, settings: Settings, field: str, url: str) -> None:
    """A demo simulator may come back on another port (``PSASYNC_DEMO_PORT``): point the
    stored integration at it."""
    stored = integration.credentials(settings.vault)
    if stored.get(field) == url and integration.site_url == url:
        return
    integration.set_credentials(settings.vault, {**stored, field: url})
    integration.site_url = url
    await integration.save(update_fields=["credentials_token", "site_url"])


def _synced_clients(store: ConnectWiseStore) -> list[str]:
    """Names of ConnectWise companies the demo integration syncs (active clients)."""
    return [
        str(c["name"])
        for c in store.find("companies")
        if c["status"]["name"] == "Active"
        and [t["name"] for t in c.get("types") or []] == ["Client"]
    ]


def _derived(settings: Settings, label: bytes) -> str:
    digest = hmac.new(settings.secret_keys[0].encode(), label, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


async def demo_key(account: Account, settings: Settings) -> str:
    """The demo administrator's key: the same on every start with the same secret key."""
    key = API_KEY_PREFIX + _derived(settings, b"psasync demo administrator key")
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
        "  Try:\n"
        + EXAMPLES
        + (SWITCH if "pulseway" in settings.demo_providers else "")
        + (SOAP if "connectwise-soap" in settings.demo_providers else "")
        + "\n"
    )


SWITCH = """
    Switching PSA (README: "Switching PSA"): plan, then push what Pulseway PSA lacks
    mutation { pushAllSyncableAssets(integrationId: "<Pulseway id>", dryRun: true) {
        run { id } } }
"""


SOAP = """
    Legacy SOAP (README: "Legacy SOAP demo"): "Demo ConnectWise SOAP (simulator)" holds only
    the integrator login, so it syncs through ConnectWise's SOAP API and polls (no callbacks).
"""
