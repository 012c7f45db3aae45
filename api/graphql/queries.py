"""Root queries: the caller, integrations and runs, webhook deliveries, the four asset lists,
``node``.

Everything is scoped to the caller's account: an id from another account is "not found".
"""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Any

import strawberry
from strawberry.types.nodes import SelectedField
from tortoise.expressions import Q, Subquery
from tortoise.functions import Coalesce
from tortoise.queryset import QuerySet

from api.graphql.context import Info
from api.graphql.ids import (
    InvalidId,
    from_global,
    from_global_int,
    global_type,
    parse_global,
    to_global,
)
from api.graphql.pagination import Connection, Ordering, SortDirection, keyset_page
from api.graphql.permissions import PublicError, require
from api.graphql.rows import fetch
from api.graphql.text import SEARCH, checked, text_rules
from api.graphql.types.assets import (
    ASSET_TYPES,
    Configuration,
    Contact,
    Location,
    Organization,
)
from api.graphql.types.enums import DeliveryStatusEnum, LinkStateEnum
from api.graphql.types.integration import Integration
from api.graphql.types.node import Node
from api.graphql.types.sync_run import SyncRun
from api.graphql.types.two_way import SyncConflict
from api.graphql.types.viewer import Account, ApiKey, User, Viewer
from api.graphql.types.webhooks import WebhookDelivery
from models import (
    ASSET_MODELS,
    AssetKind,
    DeliveryStatus,
    LinkState,
    PushState,
    RecordLink,
    Role,
)
from models import Account as AccountRow
from models import ApiKey as ApiKeyRow
from models import Integration as IntegrationRow
from models import SyncConflict as ConflictRow
from models import SyncRun as SyncRunRow
from models import User as UserRow
from models import WebhookDelivery as DeliveryRow


def local_id(value: strawberry.ID | str, *types: str, argument: str = "id") -> uuid.UUID:
    try:
        return from_global(str(value), *types)
    except InvalidId as exc:
        raise PublicError(f"{argument}: {exc}", "BAD_USER_INPUT", field=argument) from exc


@strawberry.enum
class AssetOrderField(Enum):
    NAME = "NAME"
    UPDATED_AT = "UPDATED_AT"


@strawberry.input
class AssetOrder:
    field: AssetOrderField = AssetOrderField.NAME
    direction: SortDirection = SortDirection.ASC


@strawberry.input(description="A PSA record: which integration, and its id there.")
class PsaRecordFilter:
    integration_id: strawberry.ID
    psa_id: int


@text_rules(search=SEARCH)
@strawberry.input
class LinkFilter:
    search: str | None = strawberry.field(
        default=None, description=f"Part of the name (at most {SEARCH.max_length} characters)."
    )
    psa: PsaRecordFilter | None = None
    link_state: LinkStateEnum | None = strawberry.field(  # type: ignore[valid-type]
        default=None,
        description="Records with a link in this state, as psaLinks shows it (e.g. ORPHANED, "
        "PENDING_PUSH). NOT_PUSHED finds the records a push could not create, not those "
        "never pushed yet (they have no link: see linked: false).",
    )
    integration_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Only this integration's links count. Alone: records with a link to it "
        "(NOT_PUSHED included); with linkState or linked, the state or the PSA record is "
        "looked for there.",
    )
    linked: bool | None = strawberry.field(
        default=None,
        description="true: linked to a PSA record; false: not linked (the PSA does not have "
        "the record: no link, or a NOT_PUSHED one). With integrationId: that integration's "
        "PSA (false lists what a push-all to it would consider).",
    )


@strawberry.input
class OrganizationFilter(LinkFilter):
    type_id: strawberry.ID | None = None
    status_id: strawberry.ID | None = None
    parent_id: strawberry.ID | None = None


@strawberry.input
class LocationFilter(LinkFilter):
    organization_id: strawberry.ID | None = None


@strawberry.input
class ContactFilter(LinkFilter):
    organization_id: strawberry.ID | None = None
    type_id: strawberry.ID | None = None


@strawberry.input
class ConfigurationFilter(LinkFilter):
    organization_id: strawberry.ID | None = None
    type_id: strawberry.ID | None = None
    status_id: strawberry.ID | None = None


# Filter field → (column, the type its id must name).
_ID_FILTERS: dict[AssetKind, dict[str, tuple[str, str]]] = {
    AssetKind.ORGANIZATION: {
        "type_id": ("organization_type_id", "ReferenceValue"),
        "status_id": ("organization_status_id", "ReferenceValue"),
        "parent_id": ("parent_id", "Organization"),
    },
    AssetKind.LOCATION: {"organization_id": ("organization_id", "Organization")},
    AssetKind.CONTACT: {
        "organization_id": ("organization_id", "Organization"),
        "type_id": ("contact_type_id", "ReferenceValue"),
    },
    AssetKind.CONFIGURATION: {
        "organization_id": ("organization_id", "Organization"),
        "type_id": ("configuration_type_id", "ReferenceValue"),
        "status_id": ("configuration_status_id", "ReferenceValue"),
    },
}


def _filtered(kind: AssetKind, account_id: uuid.UUID, where: LinkFilter | None) -> QuerySet[Any]:
    query = ASSET_MODELS[kind].filter(account_id=account_id)
    if where is None:
        return query
    for name, (column, type_name) in _ID_FILTERS[kind].items():
        value = getattr(where, name, None)
        if value is not None:
            query = query.filter(**{column: local_id(value, type_name, argument=name)})
    if where.search:
        term = where.search.strip()
        if kind == AssetKind.CONTACT:
            query = query.filter(
                Q(first_name__icontains=term)
                | Q(last_name__icontains=term)
                | Q(primary_email__icontains=term)
            )
        else:
            query = query.filter(name__icontains=term)
    # The links the filter looks at: the account's, or one integration's.
    scope = RecordLink.filter(kind=kind, integration__account_id=account_id)
    if where.integration_id is not None:
        scope = scope.filter(
            integration_id=local_id(where.integration_id, "Integration", argument="integrationId")
        )
    required: list[QuerySet[RecordLink]] = []
    if where.psa is not None:
        required.append(
            scope.filter(
                integration_id=local_id(where.psa.integration_id, "Integration", argument="psa"),
                psa_id=where.psa.psa_id,
            )
        )
    if where.link_state is not None:
        required.append(scope.filter(_shown_state(LinkState(where.link_state))))
    # Linked means the PSA has the record: a NOT_PUSHED link has no PSA id yet.
    in_psa = scope.filter(psa_id__isnull=False)
    if where.linked:
        required.append(in_psa)
    elif where.linked is None and where.integration_id is not None and not required:
        required.append(scope)  # any link to the integration, NOT_PUSHED ones included
    for links in required:
        query = query.filter(id__in=Subquery(links.values("local_id")))
    if where.linked is False:
        query = query.exclude(id__in=Subquery(in_psa.values("local_id")))
    return query


def _shown_state(state: LinkState) -> Q:
    """Links that ``PsaLink.state`` shows as ``state`` (pushes are kept in ``push_state``)."""
    if state == LinkState.SYNCED:
        return Q(state=LinkState.SYNCED, push_state=PushState.NONE)
    if state == LinkState.PENDING_PUSH:
        return Q(state=LinkState.SYNCED, push_state=PushState.PENDING)
    if state == LinkState.ERROR:
        return Q(state=LinkState.ERROR) | Q(state=LinkState.SYNCED, push_state=PushState.FAILED)
    return Q(state=state)


async def asset_page(
    kind: AssetKind,
    info: Info,
    where: LinkFilter | None,
    order: AssetOrder | None,
    first: int | None,
    after: str | None,
) -> Connection[Any]:
    query = _filtered(kind, info.context.account_id, where)
    order = order or AssetOrder()
    if order.field == AssetOrderField.UPDATED_AT:
        column = "updated_at"
    elif kind == AssetKind.CONTACT:
        query = query.annotate(sort_name=Coalesce("last_name", ""))
        column = "sort_name"
    else:
        column = "name"
    type_ = ASSET_TYPES[kind]
    connection = await keyset_page(
        query,
        Ordering(column, order.direction),
        first,
        after,
        type_.COLUMNS,
        type_.from_row,
        type_.LAZY_JSON,
    )
    loaders = info.context.loaders
    loader = loaders.by_kind(kind)
    nodes = [edge.node for edge in connection.edges]
    for node in nodes:  # later lookups of the same records hit the cache
        loader.prime(node.local_id, node)
    await loaders.prefetch(kind, nodes, node_fields(info))
    return connection


def node_fields(info: Info) -> set[str]:
    """The fields a connection query selects on its nodes (``edges { node }`` or ``nodes``)."""
    found: set[str] = set()

    def fields(selections: Any) -> list[Any]:
        flat = []
        for selection in selections:
            if isinstance(selection, SelectedField):
                flat.append(selection)
            else:  # an inline fragment or a fragment spread
                flat.extend(fields(selection.selections))
        return flat

    for root in fields(info.selected_fields):
        for child in fields(root.selections):
            if child.name == "nodes":
                found.update(f.name for f in fields(child.selections))
            elif child.name == "edges":
                for edge_field in fields(child.selections):
                    if edge_field.name == "node":
                        found.update(f.name for f in fields(edge_field.selections))
    return found


@checked
@strawberry.type
class Query:
    @strawberry.field(description="The caller: user, role and account.")
    async def viewer(self, info: Info) -> Viewer:
        viewer = info.context.viewer
        assert viewer is not None
        user = await UserRow.filter(id=viewer.user_id).values(*User.COLUMNS)
        account = await AccountRow.get(id=viewer.account_id)
        return Viewer(
            user=User.from_row(user[0]),
            role=viewer.role,
            account=Account(id=strawberry.ID(to_global("Account", account.id)), name=account.name),
        )

    @strawberry.field
    async def integrations(self, info: Info) -> list[Integration]:
        rows = (
            await IntegrationRow.filter(account_id=info.context.account_id)
            .order_by("name", "id")
            .limit(200)
            .values(*Integration.COLUMNS)
        )
        return [Integration.from_row(row) for row in rows]

    @strawberry.field
    async def integration(self, info: Info, id: strawberry.ID) -> Integration | None:
        return await info.context.loaders.integration.load(local_id(id, "Integration"))

    @strawberry.field
    async def sync_run(self, info: Info, id: strawberry.ID) -> SyncRun | None:
        return await load_run(info, local_id(id, "SyncRun"))

    @strawberry.field(
        description="The notifications an integration's PSA posted, newest first (any role)."
    )
    async def webhook_deliveries(
        self,
        info: Info,
        integration_id: strawberry.ID,
        status: DeliveryStatusEnum | None = None,  # type: ignore[valid-type]
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[WebhookDelivery]:
        found_id = local_id(integration_id, "Integration", argument="integrationId")
        if not await IntegrationRow.filter(
            id=found_id, account_id=info.context.account_id
        ).exists():
            raise PublicError("no such integration", "NOT_FOUND", field="integrationId")
        query = DeliveryRow.filter(integration_id=found_id)
        if status is not None:
            query = query.filter(status=DeliveryStatus(status))
        return await keyset_page(
            query,
            Ordering("id", SortDirection.DESC),
            first,
            after,
            WebhookDelivery.COLUMNS,
            WebhookDelivery.from_row,
        )

    @strawberry.field(description="Organizations, a page at a time.")
    async def organizations(
        self,
        info: Info,
        filter: OrganizationFilter | None = None,
        order: AssetOrder | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[Organization]:
        return await asset_page(AssetKind.ORGANIZATION, info, filter, order, first, after)

    @strawberry.field
    async def locations(
        self,
        info: Info,
        filter: LocationFilter | None = None,
        order: AssetOrder | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[Location]:
        return await asset_page(AssetKind.LOCATION, info, filter, order, first, after)

    @strawberry.field
    async def contacts(
        self,
        info: Info,
        filter: ContactFilter | None = None,
        order: AssetOrder | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[Contact]:
        return await asset_page(AssetKind.CONTACT, info, filter, order, first, after)

    @strawberry.field
    async def configurations(
        self,
        info: Info,
        filter: ConfigurationFilter | None = None,
        order: AssetOrder | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[Configuration]:
        return await asset_page(AssetKind.CONFIGURATION, info, filter, order, first, after)

    @strawberry.field(description="Users of the account (administrators).")
    async def users(self, info: Info) -> list[User]:
        require(info, Role.ADMINISTRATOR)
        rows = (
            await UserRow.filter(account_id=info.context.account_id)
            .order_by("email")
            .limit(1000)
            .values(*User.COLUMNS)
        )
        return [User.from_row(row) for row in rows]

    @strawberry.field(description="API keys of the account, revoked ones too (administrators).")
    async def api_keys(self, info: Info) -> list[ApiKey]:
        require(info, Role.ADMINISTRATOR)
        rows = (
            await ApiKeyRow.filter(account_id=info.context.account_id)
            .order_by("-created_at")
            .limit(1000)
            .values(*ApiKey.COLUMNS)
        )
        return [ApiKey.from_row(row) for row in rows]

    @strawberry.field(description="Any object by its global id.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        try:
            if global_type(str(id)) == "WebhookDelivery":
                return await load_delivery(info, from_global_int(str(id)))
            type_name, found = parse_global(str(id))
        except InvalidId:
            return None
        loaders = info.context.loaders
        for kind, type_ in ASSET_TYPES.items():
            if type_.__name__ == type_name:
                return await loaders.by_kind(kind).load(found)  # type: ignore[no-any-return]
        if type_name == "Integration":
            return await loaders.integration.load(found)
        if type_name == "ReferenceValue":
            return await loaders.reference.load(found)
        if type_name == "SyncRun":
            return await load_run(info, found)
        if type_name == "SyncConflict":
            return await load_conflict(info, found)
        return None


async def load_run(info: Info, run_id: uuid.UUID) -> SyncRun | None:
    rows = await SyncRunRow.filter(
        id=run_id, integration__account_id=info.context.account_id
    ).values(*SyncRun.COLUMNS)
    return SyncRun.from_row(rows[0]) if rows else None


async def load_conflict(info: Info, conflict_id: uuid.UUID) -> SyncConflict | None:
    rows = await fetch(
        ConflictRow.filter(id=conflict_id, integration__account_id=info.context.account_id),
        SyncConflict.COLUMNS,
    )
    return SyncConflict.from_row(rows[0]) if rows else None


async def load_delivery(info: Info, delivery_id: int) -> WebhookDelivery | None:
    rows = await fetch(
        DeliveryRow.filter(id=delivery_id, integration__account_id=info.context.account_id),
        WebhookDelivery.COLUMNS,
    )
    return WebhookDelivery.from_row(rows[0]) if rows else None
