"""Integration mutations: connect, credentials, sync settings (scope, intervals, near-real-time
sync), manual sync, pause, delete.

All need the manager role. Each returns its payload with ``errors`` (``IntegrationError``):
expected failures are data, never exceptions.
"""

from __future__ import annotations

import uuid
from typing import Any

import strawberry

from api.graphql.context import Info
from api.graphql.errors import IntegrationError, IntegrationErrorCode, camel
from api.graphql.ids import InvalidId, from_global
from api.graphql.permissions import denied
from api.graphql.text import checked, text_rules
from api.graphql.types.enums import ProviderEnum, SyncStateEnum
from api.graphql.types.integration import Integration
from api.graphql.types.sync_run import SyncRun
from models import Account, AssetKind, IntegrationStatus, Provider, Role, SyncState
from models import Integration as IntegrationRow
from models import SyncRun as SyncRunRow
from models.integrations import DEFAULT_SYNC_INTERVAL
from sync import integrations, jobs, sync_settings
from sync.connections import connector
from sync.integrations import DeleteMode
from sync.integrations import IntegrationError as SetupError

MAX_SETTING_CHANGES = 500

DeleteModeEnum = strawberry.enum(DeleteMode, name="DeleteMode")


def _error(code: str, message: str, field: str | None = None) -> IntegrationError:
    return IntegrationError(code=IntegrationErrorCode(code), message=message, field=field)


def _forbidden(info: Info) -> list[IntegrationError] | None:
    message = denied(info, Role.MANAGER)
    if message is None:
        return None
    return [
        IntegrationError(
            code=IntegrationErrorCode.PERMISSION_DENIED,
            message=message,
            required_role=Role.MANAGER,
        )
    ]


async def _find(info: Info, value: strawberry.ID) -> IntegrationRow | IntegrationError:
    try:
        found_id = from_global(str(value), "Integration")
    except InvalidId as exc:
        return _error("INVALID_ID", str(exc), "integrationId")
    row = await IntegrationRow.filter(id=found_id, account_id=info.context.account_id).first()
    if row is None:
        return _error("NOT_FOUND", "no such integration", "integrationId")
    return row


async def _managed(info: Info, value: strawberry.ID) -> IntegrationRow | list[IntegrationError]:
    """The caller's integration ``value``, if the caller may manage it; else the errors."""
    if errors := _forbidden(info):
        return errors
    row = await _find(info, value)
    return [row] if isinstance(row, IntegrationError) else row


async def _integration(row: IntegrationRow) -> Integration:
    values = await IntegrationRow.filter(id=row.id).values(*Integration.COLUMNS)
    return Integration.from_row(values[0])


async def _run(run: SyncRunRow | None) -> SyncRun | None:
    if run is None:
        return None
    values = await SyncRunRow.filter(id=run.id).values(*SyncRun.COLUMNS)
    return SyncRun.from_row(values[0])


@text_rules(IntegrationRow)
@strawberry.input(
    description="ConnectWise Manage: the REST API member keys, the legacy SOAP integrator "
    "login, or both (each set complete, each tested). With both, REST is used and the login "
    "is kept."
)
class ConnectWiseCredentialsInput:
    site_url: str = strawberry.field(description="e.g. https://na.myconnectwise.net")
    company_id: str
    client_id: str | None = strawberry.field(
        default=None,
        description="Your ConnectWise developer client id: needed with the REST keys (every "
        "REST call sends it), not for the integrator login alone.",
    )
    public_key: str | None = strawberry.field(default=None, description="REST API member key.")
    private_key: str | None = strawberry.field(default=None, description="REST API member key.")
    integrator_login_id: str | None = strawberry.field(
        default=None, description="Legacy SOAP API integrator login."
    )
    integrator_password: str | None = None


@text_rules(IntegrationRow)
@strawberry.input(
    description="Only the fields given change; the result is tested first. Adding REST keys "
    "to a SOAP-only integration moves it to REST from its next run (the login is kept)."
)
class ConnectWiseCredentialsUpdate:
    site_url: str | None = None
    company_id: str | None = None
    public_key: str | None = None
    private_key: str | None = None
    client_id: str | None = None
    integrator_login_id: str | None = None
    integrator_password: str | None = None


@strawberry.input(description="A Pulseway PSA API employee's login.")
class PulsewayCredentialsInput:
    tenant: str = strawberry.field(description="The company name you log in to Pulseway with.")
    user_name: str = strawberry.field(description="An API employee (Manager or Administrator).")
    password: str
    host: str | None = strawberry.field(
        default=None,
        description="The API host for your region; default https://api.psa.pulseway.com.",
    )
    webhook_secret: str | None = strawberry.field(
        default=None,
        description="The secret of the webhook configured in Pulseway (signs its deliveries).",
    )


@strawberry.input(description="Only the fields given change; the result is tested first.")
class PulsewayCredentialsUpdate:
    tenant: str | None = None
    user_name: str | None = None
    password: str | None = None
    host: str | None = None
    webhook_secret: str | None = strawberry.field(
        default=None, description="An empty string removes it (webhooks are then refused)."
    )


@text_rules(IntegrationRow)
@strawberry.input
class CreateIntegrationInput:
    provider: ProviderEnum  # type: ignore[valid-type]
    name: str
    connectwise: ConnectWiseCredentialsInput | None = strawberry.field(
        default=None, description="For provider CONNECTWISE_MANAGE."
    )
    pulseway: PulsewayCredentialsInput | None = strawberry.field(
        default=None, description="For provider PULSEWAY_PSA."
    )
    two_way_enabled: bool | None = strawberry.field(
        default=None,
        description="Two-way sync from the start; default: on for Pulseway PSA, off for "
        "ConnectWise Manage.",
    )
    sandbox: bool = strawberry.field(
        default=False, description="Allow plain http to a PSA on this machine (simulators)."
    )
    contacts_enabled: bool = True
    sync_interval_seconds: int = strawberry.field(
        default=DEFAULT_SYNC_INTERVAL,
        description="The reconciliation poll: an incremental sync every N seconds; 0: none.",
    )


@strawberry.type
class CreateIntegrationPayload:
    integration: Integration | None = None
    run: SyncRun | None = strawberry.field(default=None, description="The first full sync.")
    errors: list[IntegrationError] = strawberry.field(default_factory=list)


@strawberry.input(description="Give the credentials of the integration's own PSA.")
class UpdateIntegrationCredentialsInput:
    integration_id: strawberry.ID
    connectwise: ConnectWiseCredentialsUpdate | None = None
    pulseway: PulsewayCredentialsUpdate | None = None


@strawberry.type
class IntegrationPayload:
    integration: Integration | None = None
    errors: list[IntegrationError] = strawberry.field(default_factory=list)


@strawberry.input
class ReferenceStateInput:
    reference_id: strawberry.ID = strawberry.field(description="A ReferenceValue id.")
    sync_state: SyncStateEnum  # type: ignore[valid-type]


@strawberry.input
class UpdateSyncSettingsInput:
    integration_id: strawberry.ID
    changes: list[ReferenceStateInput] = strawberry.field(
        default_factory=list, description=f"At most {MAX_SETTING_CHANGES}."
    )
    contacts_enabled: bool | None = None
    two_way_enabled: bool | None = None
    sync_interval_seconds: int | None = strawberry.field(
        default=None,
        description=f"The reconciliation poll: an incremental sync every N seconds; 0: none, "
        f"else {sync_settings.MIN_INTERVAL} to {sync_settings.MAX_INTERVAL}.",
    )
    reconcile_interval_seconds: int | None = strawberry.field(
        default=None,
        description=f"The full reconciliation (deletes the PSA sent no notice of) every N "
        f"seconds; 0: none, else {sync_settings.MIN_RECONCILE_INTERVAL} to "
        f"{sync_settings.MAX_RECONCILE_INTERVAL}.",
    )
    near_real_time: bool | None = strawberry.field(
        default=None,
        description="PSA webhooks on or off (registered or removed by the worker soon after).",
    )


@strawberry.type
class UpdateSyncSettingsPayload:
    integration: Integration | None = None
    queued_run: SyncRun | None = strawberry.field(
        default=None, description="The sync queued because the scope changed."
    )
    errors: list[IntegrationError] = strawberry.field(default_factory=list)


@strawberry.type
class StartManualSyncPayload:
    run: SyncRun | None = None
    errors: list[IntegrationError] = strawberry.field(default_factory=list)


@strawberry.type
class RemovedRecords:
    organizations: int
    locations: int
    contacts: int
    configurations: int


@strawberry.type
class DeleteIntegrationPayload:
    deleted_id: strawberry.ID | None = None
    removed: RemovedRecords | None = None
    errors: list[IntegrationError] = strawberry.field(default_factory=list)


def _credential_field(provider: Provider, credential: str | None) -> str:
    """The input field a credential error is about: ``connectwise.integratorPassword``, or the
    provider's whole input when no one field is."""
    field = _CREDENTIALS_FIELD[provider]
    return f"{field}.{camel(credential)}" if credential else field


def _setup_error(exc: SetupError, provider: Provider | None = None) -> IntegrationError:
    try:
        code = IntegrationErrorCode(exc.code)
    except ValueError:
        code = IntegrationErrorCode.CONNECTION_FAILED
    field = exc.field
    if field is None and exc.credential is not None and provider is not None:
        field = _credential_field(provider, exc.credential)
    return IntegrationError(code=code, message=exc.message, field=field, area=exc.area)


@checked
@strawberry.type
class IntegrationMutations:
    @strawberry.mutation(description="Connect a PSA. The connection is tested first.")
    async def create_integration(
        self, info: Info, input: CreateIntegrationInput
    ) -> CreateIntegrationPayload:
        if errors := _forbidden(info):
            return CreateIntegrationPayload(errors=errors)
        provider = Provider(input.provider)
        given = _credentials_input(input.connectwise, input.pulseway)
        if given is None or given[0] != provider:
            field = _CREDENTIALS_FIELD[provider]
            return CreateIntegrationPayload(
                errors=[_error("INVALID_INPUT", f"{field} credentials are required", field)]
            )
        if input.sandbox and not info.context.allow_sandbox:
            return CreateIntegrationPayload(
                errors=[
                    _error(
                        "INSECURE_URL",
                        "sandbox integrations (plain http to this machine) are off; the "
                        "operator can allow them with PSASYNC_ALLOW_SANDBOX=true",
                        "sandbox",
                    )
                ]
            )
        if not input.name.strip():
            return CreateIntegrationPayload(errors=[_error("INVALID_INPUT", "name is empty",
                                                           "name")])  # fmt: skip
        try:
            credentials = connector(provider).read_credentials(_given(given[1]))
        except ValueError as exc:
            field = _credential_field(provider, getattr(exc, "field", None))
            return CreateIntegrationPayload(errors=[_error("INVALID_INPUT", str(exc), field)])
        interval = input.sync_interval_seconds
        if interval != 0 and not (
            sync_settings.MIN_INTERVAL <= interval <= sync_settings.MAX_INTERVAL
        ):
            return CreateIntegrationPayload(
                errors=[_error("INVALID_INTERVAL", "interval out of range", "syncIntervalSeconds")]
            )
        account = await Account.get(id=info.context.account_id)
        try:
            row, run = await integrations.add_integration(
                account,
                provider,
                credentials,
                info.context.vault,
                name=input.name.strip(),
                sandbox=input.sandbox,
                contacts_enabled=input.contacts_enabled,
                sync_interval_seconds=interval,
                two_way_enabled=input.two_way_enabled,
            )
        except SetupError as exc:
            return CreateIntegrationPayload(errors=[_setup_error(exc, provider)])
        info.context.wake_worker()
        return CreateIntegrationPayload(integration=await _integration(row), run=await _run(run))

    @strawberry.mutation(description="New credentials, tested before they replace the old.")
    async def update_integration_credentials(
        self, info: Info, input: UpdateIntegrationCredentialsInput
    ) -> IntegrationPayload:
        row = await _managed(info, input.integration_id)
        if isinstance(row, list):
            return IntegrationPayload(errors=row)
        given = _credentials_input(input.connectwise, input.pulseway)
        changes = _given(given[1]) if given is not None else {}
        if given is None or not changes:
            field = _CREDENTIALS_FIELD.get(Provider(row.provider), "connectwise")
            return IntegrationPayload(
                errors=[_error("INVALID_INPUT", "no credential field given", field)]
            )
        try:
            row = await integrations.update_credentials(row, given[0], changes, info.context.vault)
        except SetupError as exc:
            return IntegrationPayload(errors=[_setup_error(exc, given[0])])
        info.context.wake_worker()  # a change of API queues a run
        return IntegrationPayload(integration=await _integration(row))

    @strawberry.mutation(description="Change what syncs; a change of scope queues a sync.")
    async def update_sync_settings(
        self, info: Info, input: UpdateSyncSettingsInput
    ) -> UpdateSyncSettingsPayload:
        row = await _managed(info, input.integration_id)
        if isinstance(row, list):
            return UpdateSyncSettingsPayload(errors=row)
        if len(input.changes) > MAX_SETTING_CHANGES:
            return UpdateSyncSettingsPayload(
                errors=[_error("TOO_MANY", f"at most {MAX_SETTING_CHANGES} changes", "changes")]
            )
        states: dict[uuid.UUID, SyncState] = {}
        for change in input.changes:
            try:
                value_id = from_global(str(change.reference_id), "ReferenceValue")
            except InvalidId as exc:
                return UpdateSyncSettingsPayload(
                    errors=[_error("INVALID_ID", str(exc), "referenceId")]
                )
            states[value_id] = SyncState(change.sync_state)
        try:
            result = await sync_settings.update(
                row,
                sync_settings.SettingsChange(
                    states=states,
                    contacts_enabled=input.contacts_enabled,
                    two_way_enabled=input.two_way_enabled,
                    sync_interval_seconds=input.sync_interval_seconds,
                    reconcile_interval_seconds=input.reconcile_interval_seconds,
                    near_real_time=input.near_real_time,
                ),
            )
        except SetupError as exc:
            return UpdateSyncSettingsPayload(errors=[_setup_error(exc)])
        # A queued run, or webhooks to register or remove: the worker does both.
        if result.run is not None or result.integration.webhooks_due:
            info.context.wake_worker()
        return UpdateSyncSettingsPayload(
            integration=await _integration(result.integration), queued_run=await _run(result.run)
        )

    @strawberry.mutation(description="Sync now, ahead of scheduled runs. A dry run writes nothing.")
    async def start_manual_sync(
        self, info: Info, integration_id: strawberry.ID, dry_run: bool = False
    ) -> StartManualSyncPayload:
        row = await _managed(info, integration_id)
        if isinstance(row, list):
            return StartManualSyncPayload(errors=row)
        if row.status == IntegrationStatus.PAUSED:
            return StartManualSyncPayload(
                errors=[_error("PAUSED", "the integration is paused: resume it first")]
            )
        run = await jobs.manual_sync(row, dry_run=dry_run)
        info.context.wake_worker()
        return StartManualSyncPayload(run=await _run(run))

    @strawberry.mutation(description="Stop syncing; a running sync stops at its next page.")
    async def pause_integration(
        self, info: Info, integration_id: strawberry.ID
    ) -> IntegrationPayload:
        row = await _managed(info, integration_id)
        if isinstance(row, list):
            return IntegrationPayload(errors=row)
        row = await integrations.pause(row)
        return IntegrationPayload(integration=await _integration(row))

    @strawberry.mutation(description="Start syncing again; a paused run carries on.")
    async def resume_integration(
        self, info: Info, integration_id: strawberry.ID
    ) -> IntegrationPayload:
        row = await _managed(info, integration_id)
        if isinstance(row, list):
            return IntegrationPayload(errors=row)
        if row.status != IntegrationStatus.PAUSED:
            return IntegrationPayload(
                errors=[_error("NOT_PAUSED", "the integration is not paused")]
            )
        row = await integrations.resume(row)
        info.context.wake_worker()
        return IntegrationPayload(integration=await _integration(row))

    @strawberry.mutation(
        description="DISCONNECT keeps every record and drops the links; DELETE_DATA also "
        "removes the records that came only from this PSA."
    )
    async def delete_integration(
        self,
        info: Info,
        integration_id: strawberry.ID,
        mode: DeleteModeEnum,  # type: ignore[valid-type]
    ) -> DeleteIntegrationPayload:
        row = await _managed(info, integration_id)
        if isinstance(row, list):
            return DeleteIntegrationPayload(errors=row)
        removed = await integrations.delete(
            row, DeleteMode(mode), open_provider=info.context.open_provider
        )
        return DeleteIntegrationPayload(
            deleted_id=integration_id,
            removed=RemovedRecords(
                **{f"{kind.value}s": removed.get(kind, 0) for kind in AssetKind}
            ),
        )


# The input field that carries each PSA's credentials.
_CREDENTIALS_FIELD: dict[Provider, str] = {
    Provider.CONNECTWISE_MANAGE: "connectwise",
    Provider.PULSEWAY_PSA: "pulseway",
}


def _credentials_input(connectwise: Any, pulseway: Any) -> tuple[Provider, Any] | None:
    """The PSA whose credentials the input gives, and them (None: none, or both given)."""
    given = [
        (provider, value)
        for provider, value in (
            (Provider.CONNECTWISE_MANAGE, connectwise),
            (Provider.PULSEWAY_PSA, pulseway),
        )
        if value is not None
    ]
    return given[0] if len(given) == 1 else None


def _given(values: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(values).items() if v is not None}
