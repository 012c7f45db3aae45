"""Per-request dataloaders: every relation of every type resolves through one of these.

A loader collects the keys asked for while a level of the query resolves, then fetches them
in one query (``values``: plain rows, account-scoped). Whatever the page size, a query costs
one SQL statement per relation it names. Loaders live in the request's context, so their
cache never outlives a request nor crosses accounts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader
from tortoise.models import Model

from api.graphql.rows import fetch
from api.graphql.types.assets import (
    ASSET_TYPES,
    Configuration,
    Contact,
    Location,
    Organization,
    PsaLink,
    ReferenceValue,
)
from api.graphql.types.integration import Integration, IntegrationSettings, build_settings
from api.graphql.types.sync_run import SyncRun
from models import ASSET_MODELS, AssetKind, RecordLink, ReferenceMapping
from models import Integration as IntegrationRow
from models import ReferenceValue as ReferenceRow
from models import SyncRun as SyncRunRow

V = TypeVar("V")

# How children are ordered under their organization (never NULL: COALESCE for contacts).
CHILD_ORDER = {
    AssetKind.LOCATION: "name",
    AssetKind.CONTACT: "COALESCE(last_name, ''), COALESCE(first_name, '')",
    AssetKind.CONFIGURATION: "name",
}


def _key(value: Any) -> str:
    """Ids as dict keys: rows carry them as text (SQLite) or UUIDs (PostgreSQL), callers as
    either; one form for both keeps every lookup a hit, and text needs no parsing."""
    return str(value)


async def ranked_ids(
    model: type[Model],
    partition: str,
    parents: Sequence[uuid.UUID | str],
    order: str,
    limit: int,
    account_id: uuid.UUID | None,
) -> dict[str, list[str]]:
    """The first ``limit`` ids per parent, by ``order``, in one window-function query."""
    if not parents:
        return {}
    db = model._meta.db
    postgres = db.capabilities.dialect == "postgres"
    params: list[Any] = [uuid.UUID(str(p)) if postgres else str(p) for p in parents]
    where = f"{partition} IN ({', '.join(['{}'] * len(parents))})"
    if account_id is not None:
        where += " AND account_id = {}"
        params.append(account_id if postgres else str(account_id))
    params.append(limit)
    # Identifiers come from this module's constants, never from input; values are parameters.
    sql = (
        f"SELECT id, {partition} AS parent FROM (SELECT id, {partition}, ROW_NUMBER() OVER "  # noqa: S608
        f"(PARTITION BY {partition} ORDER BY {order}, id) AS rn FROM {model._meta.db_table} "
        f"WHERE {where}) AS ranked WHERE rn <= {{}} ORDER BY parent, rn"
    )
    marks = [f"${i}" if postgres else "?" for i in range(1, len(params) + 1)]
    rows = await db.execute_query_dict(sql.format(*marks), params)
    found: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        found[_key(row["parent"])].append(_key(row["id"]))
    return found


def _by_id(
    model: type[Model],
    build: Callable[[dict[str, Any]], V],
    columns: Sequence[str],
    account_id: uuid.UUID,
    lazy: frozenset[str] = frozenset(),
) -> DataLoader[uuid.UUID | None, V | None]:
    async def load(keys: list[uuid.UUID | None]) -> list[V | None]:
        wanted = {k for k in keys if k is not None}
        rows = (
            await fetch(model.filter(id__in=wanted, account_id=account_id), columns, lazy)
            if wanted
            else []
        )
        found = {_key(row["id"]): build(row) for row in rows}
        return [found.get(_key(k)) if k is not None else None for k in keys]

    return DataLoader(load_fn=load)


_INTEGRATION_JOIN = tuple(
    f"integration__{c}" for c in Integration.COLUMNS if f"integration__{c}" not in PsaLink.COLUMNS
)


# Relation fields a page may select → (the node attribute holding the id, the loader).
RELATION_FIELDS = {
    "organization": ("organization_id", "organization"),
    "parent": ("parent_id", "organization"),
    "location": ("location_id", "location"),
    "primaryLocation": ("primary_location_id", "location"),
    "contact": ("contact_id", "contact"),
    "organizationType": ("organization_type_id", "reference"),
    "organizationStatus": ("organization_status_id", "reference"),
    "configurationType": ("configuration_type_id", "reference"),
    "configurationStatus": ("configuration_status_id", "reference"),
    "contactType": ("contact_type_id", "reference"),
}


async def _prime(loader: DataLoader[Any, Any], keys: list[Any], values: Awaitable[Any]) -> None:
    loader.prime_many(dict(zip(keys, await values, strict=True)))


class Loaders:
    def __init__(self, account_id: uuid.UUID) -> None:
        self.account_id = account_id
        self.organization = _by_id(
            ASSET_MODELS[AssetKind.ORGANIZATION],
            Organization.from_row,
            Organization.COLUMNS,
            account_id,
        )
        self.location = _by_id(
            ASSET_MODELS[AssetKind.LOCATION], Location.from_row, Location.COLUMNS, account_id
        )
        self.contact = _by_id(
            ASSET_MODELS[AssetKind.CONTACT],
            Contact.from_row,
            Contact.COLUMNS,
            account_id,
            Contact.LAZY_JSON,
        )
        self.configuration = _by_id(
            ASSET_MODELS[AssetKind.CONFIGURATION],
            Configuration.from_row,
            Configuration.COLUMNS,
            account_id,
        )
        self.reference = _by_id(
            ReferenceRow, ReferenceValue.from_row, ReferenceValue.COLUMNS, account_id
        )
        self.integration = _by_id(
            IntegrationRow, Integration.from_row, Integration.COLUMNS, account_id
        )
        self.links: DataLoader[tuple[AssetKind, uuid.UUID], list[PsaLink]] = DataLoader(
            load_fn=self._links
        )
        self.children: DataLoader[tuple[AssetKind, uuid.UUID, int], list[Any]] = DataLoader(
            load_fn=self._children
        )
        self.last_run: DataLoader[uuid.UUID, SyncRun | None] = DataLoader(load_fn=self._last_run)
        self.settings: DataLoader[uuid.UUID, IntegrationSettings] = DataLoader(
            load_fn=self._settings
        )
        self.credentials: DataLoader[uuid.UUID, str | None] = DataLoader(load_fn=self._credentials)

    async def prefetch(self, kind: AssetKind, nodes: Sequence[Any], fields: set[str]) -> None:
        """Load the relations a page selects before its fields resolve, and prime the loaders.

        The same single query per relation as batching would send, without a dataloader
        round (a future and a task per record) for each of the page's records: the fields
        then resolve from the cache, as fast as objects already in memory.
        """
        if not nodes:
            return
        jobs: list[Awaitable[None]] = []
        for name in fields & RELATION_FIELDS.keys():
            attribute, loader_name = RELATION_FIELDS[name]
            loader: DataLoader[Any, Any] = getattr(self, loader_name)
            ids = list({v for n in nodes if (v := getattr(n, attribute, None)) is not None})
            if ids:
                jobs.append(_prime(loader, ids, loader.load_fn(ids)))
        if "psaLinks" in fields:
            keys = [(kind, n.local_id) for n in nodes]
            jobs.append(_prime(self.links, keys, self._links(keys)))
        # Concurrently: PostgreSQL runs them on separate pooled connections (as batching
        # would); SQLite's single connection takes them in turn.
        await asyncio.gather(*jobs)

    def by_kind(self, kind: AssetKind) -> DataLoader[uuid.UUID | None, Any]:
        return {
            AssetKind.ORGANIZATION: self.organization,
            AssetKind.LOCATION: self.location,
            AssetKind.CONTACT: self.contact,
            AssetKind.CONFIGURATION: self.configuration,
        }[kind]  # type: ignore[return-value]

    async def _links(self, keys: list[tuple[AssetKind, uuid.UUID]]) -> list[list[PsaLink]]:
        by_kind: dict[AssetKind, set[uuid.UUID]] = defaultdict(set)
        for kind, local_id in keys:
            by_kind[kind].add(local_id)
        found: dict[tuple[AssetKind, str], list[PsaLink]] = defaultdict(list)
        primed: set[str] = set()
        for kind, ids in by_kind.items():
            # The integrations come in the same query (a join), and prime their loader.
            rows = await fetch(
                RecordLink.filter(
                    kind=kind, local_id__in=ids, integration__account_id=self.account_id
                ).order_by("created_at"),
                (*PsaLink.COLUMNS, *_INTEGRATION_JOIN),
            )
            for row in rows:
                found[(kind, _key(row["local_id"]))].append(PsaLink.from_row(row))
                integration_id = row["integration_id"]
                if _key(integration_id) not in primed:
                    primed.add(_key(integration_id))
                    joined = {c: row[f"integration__{c}"] for c in Integration.COLUMNS}
                    self.integration.prime(integration_id, Integration.from_row(joined))
        return [found.get((kind, _key(local_id)), []) for kind, local_id in keys]

    async def _children(self, keys: list[tuple[AssetKind, uuid.UUID, int]]) -> list[list[Any]]:
        groups: dict[tuple[AssetKind, int], set[str]] = defaultdict(set)
        for kind, parent, limit in keys:
            groups[(kind, limit)].add(_key(parent))
        found: dict[tuple[AssetKind, str, int], list[Any]] = {}
        for (kind, limit), parents in groups.items():
            model = ASSET_MODELS[kind]
            ranked = await ranked_ids(
                model, "organization_id", sorted(parents), CHILD_ORDER[kind], limit,
                self.account_id,
            )  # fmt: skip
            ids = [i for per_parent in ranked.values() for i in per_parent]
            type_ = ASSET_TYPES[kind]
            query = model.filter(id__in=ids)
            rows = await fetch(query, type_.COLUMNS, type_.LAZY_JSON) if ids else []
            built = {_key(row["id"]): type_.from_row(row) for row in rows}
            for parent_key in parents:
                found[(kind, parent_key, limit)] = [
                    built[i] for i in ranked.get(parent_key, []) if i in built
                ]
        return [found[(kind, _key(parent), limit)] for kind, parent, limit in keys]

    async def _settings(self, keys: list[uuid.UUID]) -> list[IntegrationSettings]:
        integrations = await self.integration.load_many(keys)
        mappings = await ReferenceMapping.filter(
            integration_id__in=keys, integration__account_id=self.account_id
        ).values("integration_id", "value_id", "kind", "psa_id", "psa_name", "sync_state")
        values = await ReferenceRow.filter(account_id=self.account_id).values(
            *ReferenceValue.COLUMNS
        )
        per: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for mapping in mappings:
            per[_key(mapping["integration_id"])].append(mapping)
        return [
            build_settings(integration, per[_key(key)], values)
            for key, integration in zip(keys, integrations, strict=True)
        ]

    async def _credentials(self, keys: list[uuid.UUID]) -> list[str | None]:
        rows = await IntegrationRow.filter(id__in=keys, account_id=self.account_id).values_list(
            "id", "credentials_token"
        )
        tokens = {_key(i): token for i, token in rows}
        return [tokens.get(_key(key)) for key in keys]

    async def _last_run(self, keys: list[uuid.UUID]) -> list[SyncRun | None]:
        ranked = await ranked_ids(
            SyncRunRow, "integration_id", sorted({_key(k) for k in keys}), "queued_at DESC", 1, None
        )
        ids = [i for per_parent in ranked.values() for i in per_parent]
        rows = await SyncRunRow.filter(id__in=ids).values(*SyncRun.COLUMNS) if ids else []
        by_integration = {_key(row["integration_id"]): SyncRun.from_row(row) for row in rows}
        return [by_integration.get(_key(key)) for key in keys]
