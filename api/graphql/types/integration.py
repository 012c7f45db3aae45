"""PSA integrations: status, sync settings, runs, webhooks. Credentials are never returned."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

import strawberry

from api.graphql.context import Info
from api.graphql.errors import camel
from api.graphql.ids import to_global
from api.graphql.pagination import Connection, Ordering, SortDirection, keyset_page
from api.graphql.permissions import PublicError, require
from api.graphql.text import checked
from api.graphql.types.assets import ReferenceValue
from api.graphql.types.enums import (
    AssetKindEnum,
    ConnectWiseApiEnum,
    IntegrationStatusEnum,
    OutboxStatusEnum,
    ProviderEnum,
    ReferenceKindEnum,
    SyncStateEnum,
    psa_name,
)
from api.graphql.types.invitations import (
    INVITATIONS,
    PSA_USERS,
    USER_INVITES,
    Invitation,
    PsaUser,
    UserInvitesStepEnum,
    resolve_invitations,
    resolve_psa_users,
)
from api.graphql.types.node import Node
from api.graphql.types.permissions import PERMISSIONS, PsaPermission, permissions_of
from api.graphql.types.sync_run import RUN_ORDER, SyncRun
from api.graphql.types.two_way import (
    ContactAttributeOptions,
    OutboxEntry,
    SyncConflict,
    TwoWaySettings,
    build_two_way,
    stored_json,
)
from api.graphql.types.webhooks import NOTIFIED_KINDS, IntegrationWebhooks
from models import (
    AssetKind,
    ConflictOutcome,
    IntegrationStatus,
    OutboxStatus,
    Provider,
    ReferenceKind,
    Role,
    SyncState,
    UserInvitesStep,
)
from models import Integration as IntegrationRow
from models import OutboxEntry as OutboxRow
from models import SyncConflict as ConflictRow
from models import SyncRun as SyncRunRow
from models.vault import VaultError
from sync import permissions, reference, subscriptions
from sync.connections import field_table
from sync.errors import SyncError
from sync.providers.connectwise.credentials import (
    SOAP_NOTICE,
    ConnectWiseApi,
    ConnectWiseCredentials,
)

SYNC_INTERVAL = "The reconciliation poll: an incremental sync every N seconds; 0: none."
RECONCILE_INTERVAL = (
    "A full reconciliation (PSA and local id sets compared: records deleted in the PSA "
    "without a notice) every N seconds; 0: none."
)
NEAR_REAL_TIME = (
    "PSA webhooks: changes sync as they happen (needs psasync's public URL; two-way sync "
    "registers them too). See Integration.webhooks."
)


@strawberry.type(description="Which credential fields hold a value; never the values.")
class CredentialsInfo:
    site_url: str
    set_fields: list[str]
    public_key_hint: str | None


@strawberry.type(description="One type or status, and whether this integration syncs it.")
class ReferenceSetting:
    reference: ReferenceValue
    kind: ReferenceKindEnum  # type: ignore[valid-type]
    name: str
    psa_id: int | None = strawberry.field(description="None when the PSA does not have it.")
    psa_name: str | None
    sync_state: SyncStateEnum  # type: ignore[valid-type]
    recommended: bool = strawberry.field(
        default=False,
        description="Suggested for a first sync (IT Glue's defaults): every list shows these "
        "first, then the rest by name.",
    )


@strawberry.type(description="The Sync Settings screen.")
class IntegrationSettings:
    organization_types: list[ReferenceSetting]
    organization_statuses: list[ReferenceSetting]
    configuration_types: list[ReferenceSetting]
    configuration_statuses: list[ReferenceSetting]
    contact_types: list[ReferenceSetting]
    contacts_enabled: bool
    two_way_enabled: bool
    sync_interval_seconds: int = strawberry.field(description=SYNC_INTERVAL)
    reconcile_interval_seconds: int = strawberry.field(description=RECONCILE_INTERVAL)
    near_real_time: bool = strawberry.field(description=NEAR_REAL_TIME)


_SETTING_FIELDS = {
    ReferenceKind.ORGANIZATION_TYPE: "organization_types",
    ReferenceKind.ORGANIZATION_STATUS: "organization_statuses",
    ReferenceKind.CONFIGURATION_TYPE: "configuration_types",
    ReferenceKind.CONFIGURATION_STATUS: "configuration_statuses",
    ReferenceKind.CONTACT_TYPE: "contact_types",
}


def build_settings(
    integration: Any, mappings: list[dict[str, Any]], values: list[dict[str, Any]]
) -> IntegrationSettings:
    """The settings screen of one integration, from its mappings and the account's values.

    An account value this integration has no mapping for is NOT_CONNECTED (another PSA's).
    """
    by_value = {str(m["value_id"]): m for m in mappings}
    lists: dict[str, list[ReferenceSetting]] = {f: [] for f in _SETTING_FIELDS.values()}
    by_kind: dict[ReferenceKind, list[dict[str, Any]]] = {}
    for value in values:
        by_kind.setdefault(ReferenceKind(value["kind"]), []).append(value)
    for kind, rows in by_kind.items():
        names = reference.recommended_names(integration.provider, kind)

        def recommended(value: dict[str, Any], names: frozenset[str] = names) -> bool:
            # By the PSA's name: a value only another PSA has is never recommended here.
            mapping = by_value.get(str(value["id"]))
            return mapping is not None and str(mapping["psa_name"]).casefold() in names

        ordered = reference.recommended_first(rows, lambda v: str(v["name"]), recommended)
        for value, is_recommended in ordered:
            mapping = by_value.get(str(value["id"]))
            lists[_SETTING_FIELDS[kind]].append(
                ReferenceSetting(
                    reference=ReferenceValue.from_row(value),
                    kind=kind,
                    name=value["name"],
                    psa_id=mapping["psa_id"] if mapping else None,
                    psa_name=mapping["psa_name"] if mapping else None,
                    sync_state=SyncState(mapping["sync_state"])
                    if mapping
                    else SyncState.NOT_CONNECTED,
                    recommended=is_recommended,
                )
            )
    return IntegrationSettings(
        **lists,
        contacts_enabled=integration.contacts_enabled,
        two_way_enabled=integration.two_way_enabled,
        sync_interval_seconds=integration.sync_interval_seconds,
        reconcile_interval_seconds=integration.reconcile_interval_seconds,
        near_real_time=integration.near_real_time,
    )


@strawberry.type(description="How far the reconciliation poll has read one asset kind.")
class SyncBookmark:
    kind: AssetKindEnum  # type: ignore[valid-type]
    stamp: datetime = strawberry.field(
        description="Every PSA change up to this stamp has been written locally."
    )


def bookmarks_of(stored: Any) -> list[SyncBookmark]:
    """The stored bookmarks (kind → ISO 8601 stamp), in asset-kind order; anything else in
    the column is left out."""
    found = {}
    for kind, stamp in (stored_json(stored) or {}).items():
        try:
            found[AssetKind(kind)] = datetime.fromisoformat(stamp)
        except (ValueError, TypeError):
            continue
    return [SyncBookmark(kind=kind, stamp=found[kind]) for kind in AssetKind if kind in found]


@checked
@strawberry.type
class Integration(Node):
    provider: ProviderEnum  # type: ignore[valid-type]
    name: str
    site_url: str
    sandbox: bool
    status: IntegrationStatusEnum  # type: ignore[valid-type]
    status_label: str = strawberry.field(
        description="What IT Glue's screen shows: Syncing..., OK, Paused, Error, Not synced, "
        "Queued."
    )
    last_success_at: datetime | None
    last_error: str | None
    created_at: datetime
    local_id: strawberry.Private[uuid.UUID]
    account_id: strawberry.Private[uuid.UUID]
    contacts_enabled: strawberry.Private[bool]
    two_way_enabled: strawberry.Private[bool]
    sync_interval_seconds: int = strawberry.field(description=SYNC_INTERVAL)
    reconcile_interval_seconds: int = strawberry.field(description=RECONCILE_INTERVAL)
    near_real_time: bool = strawberry.field(description=NEAR_REAL_TIME)
    stored_bookmarks: strawberry.Private[Any]  # JSON, as text or decoded (see stored_json)
    stored_permissions: strawberry.Private[Any]  # JSON, as text or decoded
    webhook_rejected: strawberry.Private[int]
    webhook_last_rejected_at: strawberry.Private[datetime | None]
    directions: strawberry.Private[Any]  # JSON, as text or decoded (see stored_json)
    propagate_deletes: strawberry.Private[bool]
    contact_email_type: strawberry.Private[str | None]
    contact_phone_type: strawberry.Private[str | None]
    push_rate_per_minute: strawberry.Private[int]
    synced_api: strawberry.Private[str | None]  # picks the field table (``field_table``)
    user_invites: UserInvitesStepEnum | None = strawberry.field(  # type: ignore[valid-type]
        description=USER_INVITES
    )
    psa_users: list[PsaUser] | None = strawberry.field(
        resolver=resolve_psa_users, description=PSA_USERS
    )
    invitations: list[Invitation] = strawberry.field(
        resolver=resolve_invitations, description=INVITATIONS
    )

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "account_id", "provider", "name", "site_url", "sandbox", "status",
        "last_success_at", "last_error", "created_at", "contacts_enabled", "two_way_enabled",
        "sync_interval_seconds", "directions", "propagate_deletes", "contact_email_type",
        "contact_phone_type", "push_rate_per_minute", "reconcile_interval_seconds",
        "near_real_time", "bookmarks", "permissions", "webhook_rejected",
        "webhook_last_rejected_at",
        "synced_api", "user_invites",
    )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Integration:
        status = IntegrationStatus(row["status"])
        return cls(
            id=strawberry.ID(to_global("Integration", row["id"])),
            local_id=row["id"],
            account_id=row["account_id"],
            provider=Provider(row["provider"]),
            name=row["name"],
            site_url=row["site_url"],
            sandbox=row["sandbox"],
            status=status,
            status_label=status.label,
            last_success_at=row["last_success_at"],
            last_error=row["last_error"],
            created_at=row["created_at"],
            contacts_enabled=row["contacts_enabled"],
            two_way_enabled=row["two_way_enabled"],
            sync_interval_seconds=row["sync_interval_seconds"],
            reconcile_interval_seconds=row["reconcile_interval_seconds"],
            near_real_time=bool(row["near_real_time"]),
            stored_bookmarks=row["bookmarks"],
            stored_permissions=row["permissions"],
            webhook_rejected=row["webhook_rejected"],
            webhook_last_rejected_at=row["webhook_last_rejected_at"],
            directions=row["directions"],
            propagate_deletes=bool(row["propagate_deletes"]),
            contact_email_type=row["contact_email_type"],
            synced_api=row["synced_api"],
            contact_phone_type=row["contact_phone_type"],
            push_rate_per_minute=row["push_rate_per_minute"],
            user_invites=UserInvitesStep(row["user_invites"]) if row["user_invites"] else None,
        )

    @strawberry.field(description="The invite step of setup is done: users invited, or skipped.")
    def user_invites_done(self) -> bool:
        return self.user_invites is not None

    @strawberry.field
    async def credentials(self, info: Info) -> CredentialsInfo:
        token = await info.context.loaders.credentials.load(self.local_id)
        try:
            stored = info.context.vault.decrypt(token or "")
        except VaultError:  # a key rotated away: show the URL, claim nothing else
            return CredentialsInfo(site_url=self.site_url, set_fields=[], public_key_hint=None)
        if self.provider == Provider.CONNECTWISE_MANAGE:
            cw = ConnectWiseCredentials.from_stored(stored)
            return CredentialsInfo(
                site_url=cw.site_url,
                set_fields=[c for c in map(camel, cw.set_fields()) if c],
                public_key_hint=cw.public_key_hint,
            )
        return CredentialsInfo(
            site_url=self.site_url,
            set_fields=sorted(c for k, v in stored.items() if v and (c := camel(k))),
            public_key_hint=None,
        )

    async def _connectwise(self, info: Info) -> ConnectWiseCredentials | None:
        if self.provider != Provider.CONNECTWISE_MANAGE:
            return None
        token = await info.context.loaders.credentials.load(self.local_id)
        try:
            return ConnectWiseCredentials.from_stored(info.context.vault.decrypt(token or ""))
        except (VaultError, ValueError):  # unusable: claim no API rather than fail the query
            return None

    @strawberry.field(
        description="ConnectWise Manage: the API this integration syncs through (REST whenever "
        "its keys are stored; SOAP with the integrator login alone). Null for other PSAs."
    )
    async def api(self, info: Info) -> ConnectWiseApiEnum | None:  # type: ignore[valid-type]
        found = await self._connectwise(info)
        return found.api if found is not None else None

    @strawberry.field(
        description="What the user should know about the API in use: on ConnectWise's legacy "
        "SOAP API, that it is legacy and REST keys should be added. Null when nothing."
    )
    async def api_notice(self, info: Info) -> str | None:
        found = await self._connectwise(info)
        return SOAP_NOTICE if found is not None and found.api == ConnectWiseApi.SOAP else None

    @strawberry.field
    async def settings(self, info: Info) -> IntegrationSettings:
        return await info.context.loaders.settings.load(self.local_id)

    @strawberry.field(
        description="Per asset kind, how far the reconciliation poll has read the PSA "
        "(empty until a first full sync)."
    )
    def bookmarks(self) -> list[SyncBookmark]:
        return bookmarks_of(self.stored_bookmarks)

    @strawberry.field(description=PERMISSIONS)
    def permissions(self) -> list[PsaPermission]:
        return permissions_of(self.stored_permissions)

    @strawberry.field(description="When the PSA permissions were last checked (reads).")
    def permissions_checked_at(self) -> datetime | None:
        return permissions.checked_at(self.stored_permissions)

    @strawberry.field(description="Near-real-time sync: registrations, deliveries, refusals.")
    def webhooks(self, info: Info) -> IntegrationWebhooks:
        public_url = info.context.public_url
        # The rule the worker registers by, on the columns this type already holds.
        row = IntegrationRow(
            id=self.local_id,
            provider=self.provider,
            status=self.status,
            two_way_enabled=self.two_way_enabled,
            near_real_time=self.near_real_time,
        )
        return IntegrationWebhooks(
            receiver_url=subscriptions.receiver_url(public_url, row) if public_url else None,
            rejected_signatures=self.webhook_rejected,
            last_rejected_at=self.webhook_last_rejected_at,
            integration_id=self.local_id,
            kinds=NOTIFIED_KINDS.get(Provider(self.provider), frozenset()),
            wanted=subscriptions.wanted(row, public_url),
        )

    @strawberry.field(
        description="The most recent real run (queued, running or finished). Dry runs are "
        "previews, never the last sync: they are left out here (and never set "
        "lastSuccessAt); runs lists them, with dryRun: true."
    )
    async def last_run(self, info: Info) -> SyncRun | None:
        return await info.context.loaders.last_run.load(self.local_id)

    @strawberry.field(description="Runs, newest first.")
    async def runs(self, first: int | None = 20, after: str | None = None) -> Connection[SyncRun]:
        query = SyncRunRow.filter(integration_id=self.local_id)
        return await keyset_page(query, RUN_ORDER, first, after, SyncRun.COLUMNS, SyncRun.from_row)

    @strawberry.field(description="The Two-Way Sync Settings tab.")
    def two_way(self) -> TwoWaySettings:
        return build_two_way(
            field_table(self.provider, self.synced_api),
            self.two_way_enabled,
            stored_json(self.directions) or {},
            propagate_deletes=self.propagate_deletes,
            contact_email_type=self.contact_email_type,
            contact_phone_type=self.contact_phone_type,
            push_rate_per_minute=self.push_rate_per_minute,
        )

    @strawberry.field(
        description="The PSA's email and phone types for new contacts, asked of the PSA "
        "(managers; for contactEmailType and contactPhoneType)."
    )
    async def contact_attribute_options(self, info: Info) -> ContactAttributeOptions:
        require(info, Role.MANAGER)
        row = await IntegrationRow.filter(
            id=self.local_id, account_id=info.context.account_id
        ).first()
        if row is None:
            raise PublicError("no such integration", "NOT_FOUND")
        name = psa_name(self.provider)
        try:
            provider = await info.context.open_provider(row)
        except (VaultError, ValueError, KeyError, TypeError, NotImplementedError) as exc:
            raise PublicError(
                f"cannot connect to {name}: the stored credentials are unusable; enter them "
                "again", "PSA_ERROR",
            ) from exc  # fmt: skip
        try:
            options = await provider.contact_attribute_options()
        except SyncError as exc:
            raise PublicError(
                f"{name} did not list its contact attributes: {exc.message}", "PSA_ERROR"
            ) from exc
        finally:
            await provider.aclose()
        return ContactAttributeOptions(
            email=list(options.get("email", [])), phone=list(options.get("phone", []))
        )

    @strawberry.field(description="Pushes waiting for the PSA, or refused by it, oldest first.")
    async def outbox(
        self,
        status: OutboxStatusEnum | None = None,  # type: ignore[valid-type]
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[OutboxEntry]:
        query = OutboxRow.filter(integration_id=self.local_id)
        if status is not None:
            query = query.filter(status=OutboxStatus(status))
        return await keyset_page(
            query, Ordering("id"), first, after, OutboxEntry.COLUMNS, OutboxEntry.from_row
        )

    @strawberry.field(
        description="Conflicts, newest first. open: true (the default) the ones waiting for "
        "a person (MANUAL policy); false: the settled ones; null: all."
    )
    async def conflicts(
        self, open: bool | None = True, first: int | None = 50, after: str | None = None
    ) -> Connection[SyncConflict]:
        query = ConflictRow.filter(integration_id=self.local_id)
        if open is True:
            query = query.filter(outcome=ConflictOutcome.OPEN)
        elif open is False:
            query = query.exclude(outcome=ConflictOutcome.OPEN)
        return await keyset_page(
            query,
            Ordering("created_at", SortDirection.DESC),
            first,
            after,
            SyncConflict.COLUMNS,
            SyncConflict.from_row,
        )
