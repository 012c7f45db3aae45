"""Helpers for the Pulseway PSA sync tests: a simulator served over real HTTP (through the
OpenAPI contract recorder), its credentials, a worker, and reading links and records back.

(Named so as not to shadow ``tests/webhooks/pulseway_helpers.py``: test folders share one
import path.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from harness import FAST_RETRY, pulseway_login
from pulseway_contract import Recorder

from models import (
    Account,
    AssetKind,
    Integration,
    LinkState,
    RecordLink,
    ReferenceKind,
    ReferenceValue,
)
from models.vault import Vault
from simulators.pulseway import (
    ApiCredentials,
    DatasetSpec,
    PulsewaySimulator,
    generate_dataset,
    serve_in_thread,
)
from simulators.pulseway import reference as ref
from sync.connections import provider_factory
from sync.integrations import add_pulseway
from sync.providers.pulseway.credentials import PulsewayCredentials
from sync.runner import Worker

LOGIN = ApiCredentials(tenant="acme", username="psasync.api", password="api-password")
WEBHOOK_SECRET = "whsec-sync-tests-51c2"

# What the tests sync: Customer accounts that are active; workstations, laptops and servers
# in use or in stock. (Prospects, vendors, partners, inactive accounts, other categories and
# other states stay out.)
ENABLE: dict[ReferenceKind, list[str]] = {
    ReferenceKind.ORGANIZATION_TYPE: ["Customer"],
    ReferenceKind.ORGANIZATION_STATUS: ["Active"],
    ReferenceKind.CONFIGURATION_TYPE: ["Workstation", "Laptop", "Server"],
    ReferenceKind.CONFIGURATION_STATUS: ["In Use", "In Stock"],
}
CUSTOMER = 1  # account type id
IN_SCOPE_CATEGORIES = frozenset({1, 2, 3})
IN_SCOPE_STATES = frozenset({1, 2})
# Endpoints that write (the simulator's traffic keys).
PATCH_ACCOUNT = "PATCH /v2/crm/accounts/{id}"
POST_ACCOUNT = "POST /v2/crm/accounts"
PATCH_CONTACT = "PATCH /v2/crm/contacts/{id}"
PATCH_EMAILS = "PATCH /v2/crm/contacts/{contactId}/emails"
PATCH_PHONES = "PATCH /v2/crm/contacts/{contactId}/phones"
PUT_ASSET = "PUT /v2/servicedesk/hardwareasset/{assetId}"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class Pulseway:
    """A running Pulseway simulator and how to reach it."""

    simulator: PulsewaySimulator
    base_url: str

    @property
    def store(self) -> Any:
        return self.simulator.store

    def credentials(self, **changes: Any) -> PulsewayCredentials:
        login = pulseway_login(self.simulator, self.base_url)
        return replace(login, **{"webhook_secret": WEBHOOK_SECRET, **changes})

    def calls(self) -> dict[str, int]:
        """Requests so far, per endpoint (``"GET /v2/crm/accounts/summary"``)."""
        return dict(self.simulator.traffic.by_endpoint)

    def writes(self) -> dict[str, int]:
        """Write requests so far (authentication aside), per endpoint."""
        return {
            k: v
            for k, v in self.calls().items()
            if k.startswith(WRITE_METHODS) and "/security/" not in k
        }

    def in_scope_accounts(self) -> list[int]:
        return sorted(
            i
            for i, a in self.store.accounts.items()
            if a["accountTypeId"] == CUSTOMER and a["isActive"]
        )

    def readable_assets(self) -> list[int]:
        """Assets a sync reads: of an enabled category and an account in scope (the state
        is only known once read)."""
        accounts = set(self.in_scope_accounts())
        return sorted(
            i
            for i, a in self.store.assets.items()
            if a["accountId"] in accounts and a["categoryId"] in IN_SCOPE_CATEGORIES
        )

    def in_scope_assets(self) -> list[int]:
        accounts = set(self.in_scope_accounts())
        return sorted(
            i
            for i, a in self.store.assets.items()
            if a["accountId"] in accounts
            and a["categoryId"] in IN_SCOPE_CATEGORIES
            and a["stateId"] in IN_SCOPE_STATES
        )


@asynccontextmanager
async def served(spec: DatasetSpec, contract: Recorder) -> AsyncIterator[Pulseway]:
    """A Pulseway tenant of ``spec`` on a loopback port at an unlimited budget, every
    exchange checked by ``contract``."""
    store = generate_dataset(spec)
    store.tenant = LOGIN.tenant
    simulator = PulsewaySimulator(store, credentials=LOGIN, calls_per_hour=0)
    try:
        async with serve_in_thread(contract.wrap(simulator.app)) as base_url:
            yield Pulseway(simulator, base_url)
    finally:
        simulator.webhooks.close()


def diff(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """What grew between two ``calls()``/``writes()`` readings."""
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


def pulseway_worker(vault: Vault, **options: Any) -> Worker:
    """A worker whose Pulseway budget never waits (unless told otherwise)."""
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("calls_per_hour", 10**9)
    return Worker(provider_factory(vault, **options), schedule=False, retry_delay=timedelta(0))


async def connect_pulseway(
    pulseway: Pulseway, account: Account, vault: Vault, **options: Any
) -> Integration:
    """Set up a Pulseway integration on the simulator (its first full sync gets queued)."""
    options.setdefault("enable", ENABLE)
    integration, _run = await add_pulseway(
        account, pulseway.credentials(), vault, sandbox=True, **options
    )
    return integration


async def link_for(integration: Integration, kind: AssetKind, psa_id: int) -> RecordLink:
    return await RecordLink.get(integration_id=integration.id, kind=kind, psa_id=psa_id)


async def synced_ids(integration: Integration, kind: AssetKind) -> list[int]:
    ids = await RecordLink.filter(
        integration_id=integration.id, kind=kind, state=LinkState.SYNCED
    ).values_list("psa_id", flat=True)
    return sorted(int(i) for i in ids if i is not None)


async def reference_name(value_id: Any) -> str | None:
    if value_id is None:
        return None
    return (await ReferenceValue.get(id=value_id)).name


async def reference_id(account: Account, kind: ReferenceKind, name: str) -> Any:
    return (await ReferenceValue.get(account_id=account.id, kind=kind, name=name)).id


def category(ident: int) -> str | None:
    return ref.lookup_name("AssetCategory", ident)


def state(ident: int | None) -> str | None:
    return ref.lookup_name("AssetState", ident)


def names(values: Sequence[Mapping[str, Any]], *keys: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(v.get(k) for k in keys) for v in values)
