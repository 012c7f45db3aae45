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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader
from tortoise.functions import Count, Max
from tortoise.models import Model

from api.graphql.rows import as_datetime, converters, fetch
from api.graphql.types.assets import (
    ASSET_TYPES,
    Configuration,
    Contact,
    Location,
    Organization,
    PsaLink,
    ReferenceValue,
    pushes_kind,
)
from api.graphql.types.integration import Integration, IntegrationSettings, build_settings
from api.graphql.types.sync_run import SyncRun
from api.graphql.types.two_way import FieldChange
from api.graphql.types.webhooks import WebhookDeliveryCounts, WebhookSubscription
from models import (
    ASSET_MODELS,
    AssetKind,
    DeliveryStatus,
    RecordLink,
    ReferenceMapping,
    WebhookDelivery,
)
from models import FieldChange as FieldChangeRow
from models import Integration as IntegrationRow
from models import ReferenceValue as ReferenceRow
from models import SyncRun as SyncRunRow
from models import WebhookSubscription as SubscriptionRow

V = TypeVar("V")

# integration.webhooks.last24h counts the deliveries received within this window.
DELIVERY_WINDOW = timedelta(hours=24)

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


def _dialect(model: type[Model]) -> tuple[Any, bool]:
    db = model._meta.db
    return db, db.capabilities.dialect == "postgres"


def _id_param(value: Any, postgres: bool) -> Any:
    """An id as the driver wants it: a UUID for PostgreSQL, its text for SQLite."""
    return uuid.UUID(str(value)) if postgres else str(value)


def _marks(sql: str, count: int, postgres: bool) -> str:
    return sql.format(*(f"${i}" if postgres else "?" for i in range(1, count + 1)))


async def ranked_rows(
    model: type[Model],
    partition: str,
    parents: Sequence[uuid.UUID | str],
    order: str,
    limit: int,
    account_id: uuid.UUID | None,
    columns: Sequence[str] = ("id",),
    where: Mapping[str, Any] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The first ``limit`` rows per parent, by ``order``, in one window-function query.

    ``where``: more equality conditions (column → value). Rows come converted as ``fetch``
    converts them (JSON columns stay text).
    """
    if not parents:
        return {}
    db, postgres = _dialect(model)
    params: list[Any] = [_id_param(p, postgres) for p in parents]
    conditions = f"{partition} IN ({', '.join(['{}'] * len(parents))})"
    if account_id is not None:
        conditions += " AND account_id = {}"
        params.append(_id_param(account_id, postgres))
    for column, value in (where or {}).items():
        conditions += f' AND "{column}" = {{}}'
        params.append(value)
    params.append(limit)
    selected = list(dict.fromkeys([*columns, partition]))
    names = ", ".join(f'"{c}"' for c in selected)
    # Identifiers come from this module's constants, never from input; values are parameters.
    sql = (
        f"SELECT {names} FROM (SELECT {names}, ROW_NUMBER() OVER "  # noqa: S608
        f"(PARTITION BY {partition} ORDER BY {order}, id) AS rn FROM {model._meta.db_table} "
        f"WHERE {conditions}) AS ranked WHERE rn <= {{}} ORDER BY {partition}, rn"
    )
    rows = await db.execute_query_dict(_marks(sql, len(params), postgres), params)
    convert = converters(model, tuple(selected), lazy=frozenset(selected))
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        for column, function in convert:
            if row[column] is not None:
                row[column] = function(row[column])
        found[_key(row[partition])].append(row)
    return found


async def ranked_ids(
    model: type[Model],
    partition: str,
    parents: Sequence[uuid.UUID | str],
    order: str,
    limit: int,
    account_id: uuid.UUID | None,
) -> dict[str, list[str]]:
    """The first ``limit`` ids per parent, by ``order``, in one window-function query."""
    ranked = await ranked_rows(model, partition, parents, order, limit, account_id)
    return {parent: [_key(row["id"]) for row in rows] for parent, rows in ranked.items()}


# The columns of a record's links and of every integration of the account, in one query.
_LINK_COLUMNS = tuple(c for c in PsaLink.COLUMNS if not c.startswith("integration__"))
_INTEGRATION_COLUMNS = tuple(f"integration__{c}" for c in Integration.COLUMNS)
_LINKS_SQL = (
    "SELECT "  # noqa: S608 (identifiers are constants; values are parameters)
    + ", ".join(
        [f'l."{c}" AS "{c}"' for c in _LINK_COLUMNS]
        + [f'i."{c}" AS "integration__{c}"' for c in Integration.COLUMNS]
    )
    + f' FROM "{IntegrationRow._meta.db_table}" i LEFT JOIN "{RecordLink._meta.db_table}" l'
    + ' ON l."integration_id" = i."id"'
    + ' AND l."kind" = {{}} AND l."local_id" IN ({ids}) WHERE i."account_id" = {{}}'
    + ' ORDER BY l."created_at", l."id"'
)


async def links_with_integrations(
    kind: AssetKind, local_ids: Sequence[uuid.UUID | str], account_id: uuid.UUID
) -> list[dict[str, Any]]:
    """Every integration of the account, each joined to its links to ``local_ids`` (one row
    per link; one row with NULL link columns for an integration with none of them)."""
    db, postgres = _dialect(RecordLink)
    params: list[Any] = [kind.value, *(_id_param(i, postgres) for i in local_ids)]
    params.append(_id_param(account_id, postgres))
    sql = _LINKS_SQL.format(ids=", ".join(["{}"] * len(local_ids)))
    rows: list[dict[str, Any]] = await db.execute_query_dict(
        _marks(sql, len(params), postgres), params
    )
    columns = (*_LINK_COLUMNS, *_INTEGRATION_COLUMNS)
    # JSON the integration type decodes only when a query asks for it.
    lazy = frozenset({"integration__directions", "integration__bookmarks"})
    convert = converters(RecordLink, columns, lazy)
    for row in rows:
        for column, function in convert:
            if row[column] is not None:
                row[column] = function(row[column])
    return rows


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
        self._primed: set[str] = set()  # integrations the links query has primed
        self.links: DataLoader[tuple[AssetKind, uuid.UUID], list[PsaLink]] = DataLoader(
            load_fn=self._links
        )
        self.history: DataLoader[tuple[AssetKind, uuid.UUID, int, str | None], list[Any]] = (
            DataLoader(load_fn=self._history)
        )
        self.children: DataLoader[tuple[AssetKind, uuid.UUID, int], list[Any]] = DataLoader(
            load_fn=self._children
        )
        self.last_run: DataLoader[uuid.UUID, SyncRun | None] = DataLoader(load_fn=self._last_run)
        self.settings: DataLoader[uuid.UUID, IntegrationSettings] = DataLoader(
            load_fn=self._settings
        )
        self.credentials: DataLoader[uuid.UUID, str | None] = DataLoader(load_fn=self._credentials)
        # Webhooks, per integration.
        self.webhook_subscriptions: DataLoader[uuid.UUID, list[WebhookSubscription]] = DataLoader(
            load_fn=self._webhook_subscriptions
        )
        self.delivery_counts: DataLoader[uuid.UUID, WebhookDeliveryCounts] = DataLoader(
            load_fn=self._delivery_counts
        )
        self.last_delivery: DataLoader[uuid.UUID, datetime | None] = DataLoader(
            load_fn=self._last_delivery
        )

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
        """Stored links, then a virtual NOT_PUSHED link per integration that pushes the
        kind but has no link for the record. The account's integrations come in the same
        query (a join) and prime their loader."""
        by_kind: dict[AssetKind, dict[str, uuid.UUID]] = defaultdict(dict)
        for kind, local_id in keys:
            by_kind[kind][_key(local_id)] = local_id
        found: dict[tuple[AssetKind, str], list[PsaLink]] = defaultdict(list)
        for kind, ids in by_kind.items():
            rows = await links_with_integrations(kind, list(ids.values()), self.account_id)
            integrations: dict[str, dict[str, Any]] = {}
            linked: set[tuple[str, str]] = set()
            for row in rows:
                integration_key = _key(row["integration__id"])
                if integration_key not in integrations:
                    joined = {c: row[f"integration__{c}"] for c in Integration.COLUMNS}
                    integrations[integration_key] = joined
                    if integration_key not in self._primed:
                        self._primed.add(integration_key)
                        self.integration.prime(joined["id"], Integration.from_row(joined))
                if row["id"] is None:
                    continue  # an integration without links to these records
                local_key = _key(row["local_id"])
                linked.add((integration_key, local_key))
                found[(kind, local_key)].append(PsaLink.from_row(row))
            pushing = sorted(
                (i for i in integrations.values() if pushes_kind(i, kind)),
                key=lambda i: (str(i["name"]).casefold(), _key(i["id"])),
            )
            for integration in pushing:
                integration_key = _key(integration["id"])
                for local_key in ids:
                    if (integration_key, local_key) not in linked:
                        found[(kind, local_key)].append(
                            PsaLink.not_pushed(integration["id"], integration["provider"])
                        )
        return [found.get((kind, _key(local_id)), []) for kind, local_id in keys]

    async def _history(
        self, keys: list[tuple[AssetKind, uuid.UUID, int, str | None]]
    ) -> list[list[FieldChange]]:
        groups: dict[tuple[AssetKind, int, str | None], set[str]] = defaultdict(set)
        for kind, local_id, limit, column in keys:
            groups[(kind, limit, column)].add(_key(local_id))
        found: dict[tuple[AssetKind, str, int, str | None], list[FieldChange]] = {}
        for (kind, limit, column), parents in groups.items():
            where: dict[str, Any] = {"kind": kind.value}
            if column is not None:
                where["field"] = column
            ranked = await ranked_rows(
                FieldChangeRow, "local_id", sorted(parents), "changed_at DESC, id DESC", limit,
                self.account_id, FieldChange.COLUMNS, where,
            )  # fmt: skip
            for parent in parents:
                found[(kind, parent, limit, column)] = [
                    FieldChange.from_row(row) for row in ranked.get(parent, [])
                ]
        return [
            found[(kind, _key(local_id), limit, column)] for kind, local_id, limit, column in keys
        ]

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
        """The newest real run per integration: a dry run synced nothing."""
        parents = sorted({_key(k) for k in keys})
        ranked = await ranked_rows(
            SyncRunRow, "integration_id", parents, "queued_at DESC", 1, None,
            where={"dry_run": False},
        )  # fmt: skip
        ids = [_key(row["id"]) for rows in ranked.values() for row in rows]
        rows = await SyncRunRow.filter(id__in=ids).values(*SyncRun.COLUMNS) if ids else []
        by_integration = {_key(row["integration_id"]): SyncRun.from_row(row) for row in rows}
        return [by_integration.get(_key(key)) for key in keys]

    async def _webhook_subscriptions(
        self, keys: list[uuid.UUID]
    ) -> list[list[WebhookSubscription]]:
        rows = await fetch(
            SubscriptionRow.filter(
                integration_id__in=keys, integration__account_id=self.account_id
            ).order_by("integration_id", "kind"),
            WebhookSubscription.COLUMNS,
        )
        found: dict[str, list[WebhookSubscription]] = defaultdict(list)
        for row in rows:
            found[_key(row["integration_id"])].append(WebhookSubscription.from_row(row))
        return [found.get(_key(key), []) for key in keys]

    async def _delivery_counts(self, keys: list[uuid.UUID]) -> list[WebhookDeliveryCounts]:
        """Deliveries received within ``DELIVERY_WINDOW``, by integration and status (one
        grouped query; the (integration_id, received_at) index narrows it)."""
        since = datetime.now(UTC) - DELIVERY_WINDOW
        rows = (
            await WebhookDelivery.filter(
                integration_id__in=keys,
                integration__account_id=self.account_id,
                received_at__gte=since,
            )
            .annotate(n=Count("id"))
            .group_by("integration_id", "status")
            .values("integration_id", "status", "n")
        )
        counts: dict[str, dict[DeliveryStatus, int]] = defaultdict(dict)
        for row in rows:
            counts[_key(row["integration_id"])][DeliveryStatus(row["status"])] = row["n"]
        return [WebhookDeliveryCounts.of(counts.get(_key(key), {})) for key in keys]

    async def _last_delivery(self, keys: list[uuid.UUID]) -> list[datetime | None]:
        rows = (
            await WebhookDelivery.filter(
                integration_id__in=keys, integration__account_id=self.account_id
            )
            .annotate(last=Max("received_at"))
            .group_by("integration_id")
            .values("integration_id", "last")
        )
        found = {_key(row["integration_id"]): row["last"] for row in rows}
        return [
            as_datetime(value) if (value := found.get(_key(key))) is not None else None
            for key in keys
        ]
