"""Helpers for the two-way tests: turning two-way on, pulling without delivering first."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from harness import Psa

from models import (
    Configuration,
    Integration,
    LinkState,
    Organization,
    RecordLink,
    ReferenceMapping,
    RunStatus,
    SyncRun,
    SyncState,
)
from sync import directions as direction_settings
from sync.context import RunContext
from sync.full_sync import full_sync
from sync.runner import Worker
from sync.sync_settings import SettingsChange, update


async def two_way(worker: Worker, integration: Integration, **stored: Any) -> Integration:
    """Turn two-way on (the seeds' checkbox), with optional direction settings, and let the
    queued sync finish."""
    if stored:
        integration.directions = direction_settings.validated(
            integration.provider, integration.directions or {}, stored
        )
        await integration.save(update_fields=["directions"])
    result = await update(integration, SettingsChange(two_way_enabled=True))
    await worker.run_until_idle()
    return await Integration.get(id=result.integration.id)


async def pull(worker: Worker, integration: Integration) -> SyncRun:
    """A full sync that reads the PSA before any queued push goes out (as a pull racing an
    edit does), so both sides' changes meet in the merge."""
    integration = await Integration.get(id=integration.id)
    run = await SyncRun.create(
        integration_id=integration.id,
        status=RunStatus.RUNNING,
        lease_owner="test-pull",
    )
    ctx = RunContext(integration, run)
    provider = await worker.open_provider(integration)
    try:
        await full_sync(ctx, provider)
    finally:
        await provider.aclose()
    await SyncRun.filter(id=run.id).update(status=RunStatus.SUCCEEDED)
    return await SyncRun.get(id=run.id)


async def a_synced_organization(psa: Psa, integration: Integration) -> tuple[Organization, int]:
    link = (
        await RecordLink.filter(
            integration_id=integration.id, kind="organization", state=LinkState.SYNCED
        )
        .order_by("psa_id")
        .first()
    )
    assert link is not None
    assert link.psa_id is not None
    return await Organization.get(id=link.local_id), link.psa_id


async def two_way_integration(
    connect: Callable[..., Awaitable[Integration]], worker: Worker, **stored: Any
) -> Integration:
    """An integration whose first sync has run, then turned two-way (with ``stored``
    direction settings)."""
    integration = await connect()
    await worker.run_until_idle()
    return await two_way(worker, integration, **stored)


async def a_synced_configuration(
    integration: Integration, *, skip: int = 0, **having: Any
) -> tuple[Configuration, int]:
    """A linked configuration (the ``skip``-th by PSA id) whose local columns match ``having``
    (e.g. ``serial_number__isnull=False``)."""
    links = await RecordLink.filter(
        integration_id=integration.id, kind="configuration", state=LinkState.SYNCED
    ).order_by("psa_id")
    ids = {link.local_id: link.psa_id for link in links}
    found = [
        c for c in await Configuration.filter(id__in=list(ids), **having) if ids[c.id] is not None
    ]
    found.sort(key=lambda c: ids[c.id] or 0)
    assert len(found) > skip, f"no synced configuration with {having}"
    config = found[skip]
    psa_id = ids[config.id]
    assert psa_id is not None
    return config, psa_id


async def link_of(integration: Integration, local_id: uuid.UUID) -> RecordLink:
    return await RecordLink.get(integration_id=integration.id, local_id=local_id)


def psa_field(psa: Psa, collection: str, psa_id: int, name: str) -> Any:
    """A field of a record as ConnectWise holds it now."""
    record = psa.store.get(collection, psa_id)
    assert record is not None, f"{collection} {psa_id} is gone"
    return record.get(name)


async def new_configuration(integration: Integration, org_id: Any, name: str) -> dict[str, Any]:
    """A configuration psasync may create in the PSA: named, with an enabled type and status."""
    values: dict[str, Any] = {"organization_id": org_id, "name": name}
    for kind in ("configuration_type", "configuration_status"):
        mapping = await ReferenceMapping.filter(
            integration_id=integration.id, kind=kind, sync_state=SyncState.ENABLED
        ).first()
        assert mapping is not None
        values[f"{kind}_id"] = mapping.value_id  # type: ignore[attr-defined]
    return values
