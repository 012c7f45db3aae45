"""``psasync``: serve, migrate, set up integrations, sync, and read status from a terminal."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import click
from tortoise import Tortoise

from api import access, invitations
from api.graphql.text import SINGLE_LINE, Rule, problem
from api.settings import Settings, SettingsError, get_settings, redact_url
from models import (
    Account,
    ApiKey,
    AssetKind,
    Integration,
    IntegrationStatus,
    Provider,
    ReferenceKind,
    Role,
    RunStatus,
    SyncRun,
    SyncRunIssue,
    SyncState,
    User,
)
from models.db import migrate, tortoise_config
from models.integrations import DEFAULT_SYNC_INTERVAL
from models.vault import Vault, VaultError
from sync import jobs, permissions, reference
from sync.connections import Credentials, connector, provider_factory
from sync.errors import SyncError
from sync.integrations import IntegrationError, add_integration, update_credentials
from sync.providers.base import PsaUser
from sync.providers.connectwise.credentials import (
    SOAP_NOTICE,
    ConnectWiseApi,
    ConnectWiseCredentials,
)
from sync.runner import Worker

T = TypeVar("T")

KIND_OPTIONS = {
    "org_type": ReferenceKind.ORGANIZATION_TYPE,
    "org_status": ReferenceKind.ORGANIZATION_STATUS,
    "config_type": ReferenceKind.CONFIGURATION_TYPE,
    "config_status": ReferenceKind.CONFIGURATION_STATUS,
}


def _settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


# Arguments stored in a column of that length; any other text is checked as single-line.
_TEXT_RULES = {
    **dict.fromkeys(("name", "account", "account_ref"), Rule(200)),  # an account may be created
    "email": Rule(254),
    "site": Rule(500),
    "host": Rule(500),
}


def _check_text(kwargs: dict[str, Any]) -> None:
    """Refuse what the GraphQL API refuses (api.graphql.text): a lone surrogate (argv bytes
    that are not UTF-8), a control character, or more than the column holds, before a write
    fails on one backend and not the other."""
    for name, value in kwargs.items():
        for item in value if isinstance(value, tuple) else (value,):
            rule = _TEXT_RULES.get(name, SINGLE_LINE)
            if isinstance(item, str) and (found := problem(item, rule)) is not None:
                raise click.BadParameter(found, param_hint=name.replace("_", "-"))


def run_async(func: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        _check_text(kwargs)
        return asyncio.run(func(*args, **kwargs))

    return wrapper


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[None]:
    await migrate(settings.database_url)
    await Tortoise.init(config=tortoise_config(settings.database_url))
    try:
        yield
    finally:
        await Tortoise.close_connections()


@click.group()
def main() -> None:
    """psasync: two-way sync between your IT documentation and your PSA."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--host", help="Bind address (default PSASYNC_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default PSASYNC_PORT or 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Run the service: API, sync worker, and the demo PSA when none is configured."""
    import uvicorn

    from api.app import create_app
    from api.limits import MAX_BODY_BYTES, head_deadline_protocol

    settings = _settings()
    settings = dataclasses.replace(settings, host=host or settings.host, port=port or settings.port)
    logging.getLogger("psasync").setLevel(settings.log_level.upper())
    click.echo(f"psasync on http://{settings.host}:{settings.port}")
    click.echo(f"  GraphQL (GraphiQL in a browser): http://{settings.host}:{settings.port}/graphql")
    click.echo(f"  database: {redact_url(settings.database_url)}")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # uvicorn has no header-read timeout: a client trickling its headers would hold the
        # connection for ever (api/limits.py). The body's limits are the app's own.
        http=head_deadline_protocol(),
        ws_max_size=MAX_BODY_BYTES,  # a graphql-transport-ws message: the body's limit
    )


@main.command("migrate")
@run_async
async def migrate_command() -> None:
    """Apply database migrations (run once before starting several processes)."""
    settings = _settings()
    await migrate(settings.database_url)
    click.echo(f"migrated {redact_url(settings.database_url)}")


@main.command()
def keygen() -> None:
    """Print a new secret key for PSASYNC_SECRET_KEY."""
    click.echo(Vault.generate_key())


@main.command()
@run_async
async def worker() -> None:
    """Run only the sync worker (for deployments with several processes on PostgreSQL)."""
    settings = _settings()
    async with database(settings):
        await Worker(
            provider_factory(settings.vault, calls_per_hour=settings.pulseway_calls_per_hour),
            public_url=settings.public_url,
        ).run_forever()


@main.group()
def accounts() -> None:
    """Accounts (tenants): every record belongs to one."""


@accounts.command("create")
@click.argument("name")
@run_async
async def accounts_create(name: str) -> None:
    """Create an account; then give it an administrator key with `psasync keys create`."""
    settings = _settings()
    async with database(settings):
        if await Account.filter(name=name).exists():
            raise click.ClickException(f"an account named {name!r} exists already")
        account = await access.create_account(name)
        click.echo(f"created account {account.name!r} ({account.id})")


@main.group()
def keys() -> None:
    """API keys: what every GraphQL request authenticates with."""


async def _find_account(ref: str) -> Account:
    return await _find(Account, ref, "account", "create it: psasync accounts create")


@keys.command("create")
@click.option("--account", "account_ref", required=True, help="Account name or id.")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default=Role.ADMINISTRATOR.value,
    show_default=True,
)
@click.option("--email", default=None, help="The key's user (created if new; default admin@…).")
@click.option("--name", default="cli", show_default=True, help="A label for the key.")
@run_async
async def keys_create(account_ref: str, role: str, email: str | None, name: str) -> None:
    """Create an API key and print it. It is shown once: store it now."""
    settings = _settings()
    async with database(settings):
        account = await _find_account(account_ref)
        email = (email or f"{role}@{account.id.hex[:8]}.psasync.local").strip().lower()
        user = await User.filter(account_id=account.id, email=email).first()
        if user is None:
            user = await access.create_user(account, email, Role(role))
        elif user.role != role:
            raise click.ClickException(f"{email} exists with the {user.role} role")
        _row, key = await access.issue_key(user, name)
        click.echo(f"API key for {email} ({role}) in {account.name!r}:", err=True)
        click.echo(key)


@keys.command("revoke")
@click.argument("prefix")
@run_async
async def keys_revoke(prefix: str) -> None:
    """Revoke the key whose prefix (its first 12 characters) is PREFIX."""
    settings = _settings()
    async with database(settings):
        found = await ApiKey.filter(prefix=prefix[:12]).limit(2)
        if len(found) != 1:
            raise click.ClickException(f"{len(found)} keys start with {prefix!r}")
        await access.revoke_key(found[0])
        click.echo(f"revoked {found[0].prefix}…")


@main.group()
def integrations() -> None:
    """Set up and configure PSA integrations."""


async def _account(name: str | None) -> Account:
    if name:
        account = await Account.filter(name=name).first()
        return account or await Account.create(name=name)
    accounts = await Account.all().limit(2)
    if len(accounts) == 1:
        return accounts[0]
    if not accounts:
        return await Account.create(name="Default")
    raise click.UsageError("several accounts exist: choose one with --account")


async def find_integration(ref: str) -> Integration:
    return await _find(Integration, ref, "integration", "see `psasync status`")


M = TypeVar("M", Account, Integration)


async def _find(model: type[M], ref: str, noun: str, hint: str) -> M:
    """A row by id, or by its name when that is unique."""
    try:
        found = await model.filter(id=uuid.UUID(ref)).first()
    except ValueError:
        matches = await model.filter(name=ref).limit(2)
        if len(matches) > 1:
            raise click.UsageError(f"several {noun}s are named {ref!r}: use the id") from None
        found = matches[0] if matches else None
    if found is None:
        raise click.ClickException(f"no {noun} {ref!r} ({hint})")
    return found


def _scope_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option, kind in reversed(KIND_OPTIONS.items()):
        flag = "--" + option.replace("_", "-")
        func = click.option(
            flag,
            option,
            multiple=True,
            help=f"{kind.value.replace('_', ' ').capitalize()} to sync (repeatable).",
        )(func)
    return func


# The secret and login options of `integrations add` and `integrations credentials`.
_CREDENTIAL_FLAGS = (
    click.option("--public-key", default=None, help="ConnectWise API member public key."),
    click.option(
        "--private-key",
        default=None,
        envvar="PSASYNC_CW_PRIVATE_KEY",
        help="ConnectWise private key (or PSASYNC_CW_PRIVATE_KEY).",
    ),
    click.option(
        "--client-id",
        default=None,
        help="Your ConnectWise developer client id (needed with the REST keys).",
    ),
    click.option("--integrator-login", default=None, help="Legacy SOAP integrator login id."),
    click.option(
        "--integrator-password",
        default=None,
        envvar="PSASYNC_CW_INTEGRATOR_PASSWORD",
        help="Legacy SOAP integrator password (or PSASYNC_CW_INTEGRATOR_PASSWORD).",
    ),
    click.option("--user-name", default=None, help="Pulseway PSA API employee user name."),
    click.option(
        "--password",
        default=None,
        envvar="PSASYNC_PULSEWAY_PASSWORD",
        help="Pulseway PSA password (or PSASYNC_PULSEWAY_PASSWORD).",
    ),
    click.option(
        "--webhook-secret",
        default=None,
        envvar="PSASYNC_PULSEWAY_WEBHOOK_SECRET",
        help="The secret of the webhook configured in Pulseway PSA.",
    ),
)


def _credential_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_CREDENTIAL_FLAGS):
        func = option(func)
    return func


@integrations.command("add")
@click.argument("provider", type=click.Choice(["connectwise", "pulseway"]))
@click.option("--site", default=None, help="ConnectWise site, e.g. https://na.myconnectwise.net")
@click.option("--company-id", default=None, help="ConnectWise company id.")
@click.option("--tenant", default=None, help="Pulseway PSA company name (as typed at login).")
@click.option("--host", default=None, help="Pulseway PSA API host (default: api.psa.pulseway.com).")
@_credential_options
@click.option("--name", default=None, help="Default: the PSA's name.")
@click.option("--account", default=None, help="Account name (default: the only account).")
@click.option("--sandbox", is_flag=True, help="Allow plain http to a loopback sandbox.")
@click.option("--contacts/--no-contacts", default=True)
@click.option(
    "--two-way/--one-way",
    "two_way",
    default=None,
    help="Two-way sync from the start (default: on for Pulseway PSA, off for ConnectWise).",
)
@click.option(
    "--interval",
    type=int,
    default=DEFAULT_SYNC_INTERVAL,
    help="Seconds between reconciliation polls (incremental syncs).",
)
@_scope_options
@run_async
async def integrations_add(
    provider: str,
    name: str | None,
    account: str | None,
    sandbox: bool,
    contacts: bool,
    two_way: bool | None,
    interval: int,
    **options: Any,
) -> None:
    """Connect a PSA: tests the connection first and stores nothing if it fails."""
    settings = _settings()
    scope = {k: options.pop(k) for k in KIND_OPTIONS}
    kind, credentials = _credentials(provider, options)
    chosen = {KIND_OPTIONS[k]: list(v) for k, v in scope.items() if v}
    async with database(settings):
        owner = await _account(account)
        try:
            integration, run = await add_integration(
                owner,
                kind,
                credentials,
                settings.vault,
                name=name,
                sandbox=sandbox,
                enable=chosen or None,
                contacts_enabled=contacts,
                sync_interval_seconds=interval,
                two_way_enabled=two_way,
            )
        except IntegrationError as exc:
            about = _flag(provider, exc.credential)
            where = f" ({about})" if about else ""
            raise click.ClickException(f"{exc.code}{where}: {exc.message}") from exc
        click.echo(f"connected {integration.name} ({integration.id})")
        _echo_api(integration, settings.vault)
        click.echo(f"two-way sync: {'on' if integration.two_way_enabled else 'off'}")
        _echo_permissions(integration)
        await _print_scope(integration)
        click.echo(f"full sync queued (run {run.id}); follow it with `psasync status`")


# The CLI's name for each PSA.
_CLI_PROVIDER: dict[Provider, str] = {
    Provider.CONNECTWISE_MANAGE: "connectwise",
    Provider.PULSEWAY_PSA: "pulseway",
}

# The options each PSA's credentials need, by CLI provider name.
_CREDENTIAL_OPTIONS: dict[str, tuple[Provider, dict[str, str], tuple[str, ...]]] = {
    "connectwise": (
        Provider.CONNECTWISE_MANAGE,
        {
            "site": "site_url",
            "company_id": "company_id",
            "public_key": "public_key",
            "private_key": "private_key",
            "client_id": "client_id",
            "integrator_login": "integrator_login_id",
            "integrator_password": "integrator_password",
        },
        # The REST keys, the integrator login or both: the credentials' parser names a
        # missing half.
        ("site", "company_id"),
    ),
    "pulseway": (
        Provider.PULSEWAY_PSA,
        {
            "tenant": "tenant",
            "user_name": "user_name",
            "password": "password",
            "host": "host",
            "webhook_secret": "webhook_secret",
        },
        ("tenant", "user_name", "password"),
    ),
}


def _credentials(provider: str, options: dict[str, Any]) -> tuple[Provider, Credentials]:
    """The provider's credentials from its options; a usage error names what is missing or
    does not belong to it."""
    kind, names, required = _CREDENTIAL_OPTIONS[provider]
    missing = [n for n in required if not options.get(n)]
    if missing:
        flags = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise click.UsageError(f"{provider} needs {flags}")
    foreign = [n for n, v in options.items() if v is not None and n not in names]
    if foreign:
        flags = ", ".join("--" + n.replace("_", "-") for n in foreign)
        raise click.UsageError(f"{flags}: not {provider} options")
    values = {field: options[option] for option, field in names.items() if options[option]}
    try:
        return kind, connector(kind).read_credentials(values)
    except ValueError as exc:
        about = _flag(provider, getattr(exc, "field", None))
        raise click.UsageError(f"{about}: {exc}" if about else str(exc)) from exc


def _flag(provider: str, credential: str | None) -> str | None:
    """The option that sets the credential field ``credential`` (``--integrator-password``)."""
    _kind, names, _required = _CREDENTIAL_OPTIONS[provider]
    for option, field in names.items():
        if field == credential:
            return "--" + option.replace("_", "-")
    return None


def _echo_api(integration: Integration, vault: Vault) -> None:
    """Which ConnectWise API the integration uses, and the legacy notice on SOAP."""
    if integration.provider != Provider.CONNECTWISE_MANAGE:
        return
    try:
        api = ConnectWiseCredentials.from_stored(integration.credentials(vault)).api
    except (VaultError, ValueError):
        click.echo("  api: unknown (the stored credentials are unusable: enter them again)")
        return
    click.echo(f"  api: {api}")
    if api == ConnectWiseApi.SOAP:
        click.echo(f"  note: {SOAP_NOTICE}")


async def _print_scope(integration: Integration) -> None:
    """Each list as the Sync Settings screen shows it: recommended values first (marked *),
    then the rest by name, each on or off."""
    from models import ReferenceMapping

    for kind in KIND_OPTIONS.values():
        rows = await ReferenceMapping.filter(integration_id=integration.id, kind=kind)
        if not rows:
            continue
        names = reference.recommended_names(integration.provider, kind)
        ordered = reference.recommended_first(
            rows,
            lambda r: r.psa_name,
            lambda r: r.psa_name.casefold() in names,  # noqa: B023 (called before the next kind)
        )
        enabled = sum(r.sync_state == SyncState.ENABLED for r in rows)
        label = kind.value.replace("_", " ").replace("status", "statuse")
        click.echo(f"  {label}s: {enabled} of {len(rows)} enabled (* recommended)")
        for row, recommended in ordered:
            state = "on " if row.sync_state == SyncState.ENABLED else "off"
            click.echo(f"    {state} {row.psa_name}{' *' if recommended else ''}")


def _echo_permissions(integration: Integration) -> None:
    """What the PSA's role does not let psasync do (``sync.permissions``), one line each."""
    report = permissions.report_of(integration.permissions)
    denied = [e for e in permissions.ordered(report) if not e.allowed]
    if not report:
        return
    if not denied:
        click.echo("  permissions: every area checked is allowed")
        return
    for entry in denied:
        need = " (required: no sync without it)" if entry.core else ""
        click.echo(f"  permission denied: {entry.access} {entry.area}{need}: {entry.message}")


@integrations.command("settings")
@click.argument("integration")
@click.option("--enable", "enable", multiple=True, metavar="KIND=NAME",
              help="Enable a value, e.g. org-type=Partner (kinds: org-type, org-status, "
                   "config-type, config-status).")  # fmt: skip
@click.option("--disable", "disable", multiple=True, metavar="KIND=NAME")
@click.option("--contacts/--no-contacts", default=None)
@click.option("--interval", type=int, default=None)
@click.option(
    "--two-way/--one-way",
    "two_way",
    default=None,
    help="Two-way sync: local edits are pushed to the PSA (PSA wins conflicts).",
)
@click.option(
    "--propagate-deletes/--keep-psa-records",
    "propagate",
    default=None,
    help="Whether deleting a linked record here deletes it in the PSA too.",
)
@run_async
async def integrations_settings(
    integration: str,
    enable: tuple[str, ...],
    disable: tuple[str, ...],
    contacts: bool | None,
    interval: int | None,
    two_way: bool | None,
    propagate: bool | None,
) -> None:
    """Change what an integration syncs; saving queues a sync, as in IT Glue."""
    settings = _settings()
    async with database(settings):
        found = await find_integration(integration)
        for values, state in ((enable, SyncState.ENABLED), (disable, SyncState.DISABLED)):
            for item in values:
                key, _, name = item.partition("=")
                kind = KIND_OPTIONS.get(key.replace("-", "_"))
                if kind is None or not name:
                    raise click.UsageError(f"expected KIND=NAME, got {item!r}")
                try:
                    await reference.set_sync_state(found, kind, [name], state)
                except reference.UnknownReferenceError as exc:
                    raise click.ClickException(str(exc)) from exc
        if contacts is not None:
            found.contacts_enabled = contacts
        if interval is not None:
            found.sync_interval_seconds = interval
        if two_way is not None:
            found.two_way_enabled = two_way
        if propagate is not None:
            found.propagate_deletes = propagate
        found.settings_version += 1
        await found.save(  # only these: a run may be changing the rest of the row meanwhile
            update_fields=[
                "contacts_enabled", "sync_interval_seconds", "two_way_enabled",
                "propagate_deletes", "settings_version", "updated_at",
            ]
        )  # fmt: skip
        run = await jobs.enqueue(found)
        await _print_scope(found)
        click.echo(f"saved; sync queued (run {run.id})")


@integrations.command("credentials")
@click.argument("integration")
@_credential_options
@run_async
async def integrations_credentials(integration: str, **options: Any) -> None:
    """Replace some credentials (the rest are kept); tested before anything is stored.

    Adding REST keys to a ConnectWise integration that syncs through the legacy SOAP API
    moves it to REST at its next run, keeping every record and link."""
    settings = _settings()
    async with database(settings):
        found = await find_integration(integration)
        provider = _CLI_PROVIDER[Provider(found.provider)]
        _kind, names, _required = _CREDENTIAL_OPTIONS[provider]
        given = {n: v for n, v in options.items() if v is not None}
        foreign = [n for n in given if n not in names]
        if foreign:
            flags = ", ".join("--" + n.replace("_", "-") for n in foreign)
            raise click.UsageError(f"{flags}: not {provider} options")
        if not given:
            raise click.UsageError("give at least one credential option")
        changes = {names[n]: v for n, v in given.items()}
        try:
            found = await update_credentials(
                found, Provider(found.provider), changes, settings.vault
            )
        except IntegrationError as exc:
            about = _flag(provider, exc.credential)
            where = f" ({about})" if about else ""
            raise click.ClickException(f"{exc.code}{where}: {exc.message}") from exc
        click.echo(f"credentials of {found.name} replaced")
        _echo_api(found, settings.vault)


@integrations.command("users")
@click.argument("integration")
@click.option("--subcontractors", is_flag=True, help="ConnectWise: list subcontractors too.")
@run_async
async def integrations_users(integration: str, subcontractors: bool) -> None:
    """The PSA's licensed, active users, to invite: [x] selected (new), [=] already a user,
    [i] invited (pending)."""
    settings = _settings()
    async with database(settings):
        found = await find_integration(integration)
        psa_users = await _psa_users(found, settings, subcontractors)
        listed = await invitations.mark(found.account_id, psa_users)  # type: ignore[attr-defined]
        for user in listed:
            mark = (
                "x"
                if user.selected
                else "="
                if user.existing_user
                else "i"
                if user.invited
                else " "
            )
            click.echo(f"[{mark}] {user.psa_id:>6}  {user.name}  <{user.email or 'no email'}>")
        click.echo(
            f"{sum(u.selected for u in listed)} selected, {sum(u.existing_user for u in listed)} "
            f"already users, {sum(u.invited for u in listed)} invited"
        )


@integrations.command("invite")
@click.argument("integration")
@click.option("--all", "everyone", is_flag=True, help="Every selected (new) PSA user.")
@click.option("--email", "emails", multiple=True, help="A PSA user's email (repeatable).")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default=Role.VIEWER.value,
    show_default=True,
)
@click.option("--subcontractors", is_flag=True, help="ConnectWise: subcontractors may be chosen.")
@run_async
async def integrations_invite(
    integration: str, everyone: bool, emails: tuple[str, ...], role: str, subcontractors: bool
) -> None:
    """Invite PSA users to the account: emailed when SMTP is configured (PSASYNC_SMTP_HOST),
    otherwise each invitation's link is printed, once."""
    if everyone == bool(emails):
        raise click.UsageError("give either --all or one or more --email")
    settings = _settings()
    async with database(settings):
        found = await find_integration(integration)
        psa_users = await _psa_users(found, settings, subcontractors)
        listed = await invitations.mark(found.account_id, psa_users)  # type: ignore[attr-defined]
        wanted = {e.strip().lower() for e in emails}
        chosen_ids = [
            u.psa_id
            for u in listed
            if (u.selected if everyone else (u.email or "").lower() in wanted)
        ]
        for email in sorted(wanted - {(u.email or "").lower() for u in listed}):
            click.echo(f"skipped {email}: not a licensed, active user of the PSA")
        chosen, skipped = invitations.choose(psa_users, chosen_ids)
        result = await invitations.invite(found, chosen, Role(role), invited_by=None)
        account = await Account.get(id=found.account_id)  # type: ignore[attr-defined]
        base = settings.public_url or f"http://{settings.host}:{settings.port}"
        await invitations.deliver(
            result.issued,
            base_url=base,
            smtp=settings.smtp,
            account_name=account.name,
            inviter=None,
        )
        for item in result.issued:
            email = item.invitation.email
            if item.emailed:
                click.echo(f"invited {email}: emailed")
            else:
                why = f" (email failed: {item.email_error})" if item.email_error else ""
                click.echo(f"invited {email}{why}: {item.link}")
        for skip in [*skipped, *result.skipped]:
            click.echo(f"skipped {skip.email or skip.psa_id}: {skip.reason.value}")
        if any(not item.emailed for item in result.issued):
            click.echo(invitations.LINK_NOTE)


async def _psa_users(
    integration: Integration, settings: Settings, subcontractors: bool
) -> list[PsaUser]:
    provider = await provider_factory(settings.vault)(integration)
    try:
        return await provider.psa_users(subcontractors=subcontractors)
    except SyncError as exc:
        raise click.ClickException(f"the PSA did not list its users: {exc.message}") from exc
    finally:
        await provider.aclose()


@main.command()
@click.argument("integration")
@click.option("--dry-run", is_flag=True, help="Compute what a sync would do; write nothing.")
@click.option("--no-wait", is_flag=True, help="Queue the run and return.")
@click.option("--wait-for-worker", type=float, default=5.0, show_default=True,
              help="Seconds to wait for a running service to pick the run up before running "
                   "it in this process.")  # fmt: skip
@run_async
async def sync(integration: str, dry_run: bool, no_wait: bool, wait_for_worker: float) -> None:
    """Start a manual (prioritised) sync and follow it to the end."""
    settings = _settings()
    async with database(settings):
        found = await find_integration(integration)
        run = await jobs.manual_sync(found, dry_run=dry_run)
        click.echo(f"{'dry run' if dry_run else 'sync'} queued: run {run.id}")
        if no_wait:
            return
        final = await _follow(run.id, settings, wait_for_worker)
        _print_run(final)
        if final.status != RunStatus.SUCCEEDED:
            sys.exit(1)


@main.command("push-all")
@click.argument("integration")
@click.option("--dry-run", is_flag=True, help="Show the plan (create, link, skip and why).")
@click.option("--kind", "kinds", multiple=True,
              type=click.Choice([k.value for k in AssetKind]),
              help="Only these asset kinds (repeat; default: all four).")  # fmt: skip
@click.option("--wait-for-worker", type=float, default=5.0, show_default=True)
@run_async
async def push_all_command(
    integration: str, dry_run: bool, kinds: tuple[str, ...], wait_for_worker: float
) -> None:
    """Push every syncable record the PSA does not have yet (switching PSAs)."""
    from sync import push_all

    settings = _settings()
    async with database(settings):
        found = await find_integration(integration)
        scope = push_all.Scope(
            kinds=frozenset(AssetKind(k) for k in kinds) if kinds else push_all.Scope().kinds
        )
        run = await push_all.start(found, scope, dry_run=dry_run)
        click.echo(f"push-all {'dry run ' if dry_run else ''}queued: run {run.id}")
        final = await _follow(run.id, settings, wait_for_worker)
        _print_run(final)
        rows = await SyncRunIssue.filter(run_id=run.id).values_list("code", flat=True)
        for code, count in sorted(Counter(rows).items()):
            click.echo(f"  {code}: {count:,}")
        if final.status != RunStatus.SUCCEEDED:
            sys.exit(1)


async def _follow(run_id: uuid.UUID, settings: Settings, grace: float) -> SyncRun:
    waited = 0.0
    local: asyncio.Task[int] | None = None
    last = ""
    while True:
        run = await SyncRun.get(id=run_id)
        if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED):
            if local is not None:
                await local
            if last:
                click.echo("", err=True)
            return run
        if run.status == RunStatus.QUEUED and local is None and waited >= grace:
            click.echo("no running service picked it up: running it here", err=True)
            worker = Worker(
                provider_factory(settings.vault, calls_per_hour=settings.pulseway_calls_per_hour),
                schedule=False,
            )
            local = asyncio.create_task(worker.run_until_idle())
        line = _progress_line(run)
        if line != last and sys.stderr.isatty():
            click.echo("\r" + line.ljust(70), nl=False, err=True)
        last = line
        await asyncio.sleep(0.5)
        waited += 0.5
        if local is not None and local.done() and local.exception():
            raise local.exception()  # type: ignore[misc]


def _progress_line(run: SyncRun, width: int = 30) -> str:
    phase = run.phase or "starting"
    if not run.total:
        return f"{_label(run)} {run.processed:,} records ({phase})"
    share = min(run.processed / run.total, 1.0)
    filled = int(share * width)
    bar = "#" * filled + "-" * (width - filled)
    return f"{_label(run)} [{bar}] {share:4.0%} {run.processed:,}/{run.total:,} ({phase})"


def _label(run: SyncRun) -> str:
    return {RunStatus.QUEUED: "Queued", RunStatus.RUNNING: "Syncing..."}.get(
        RunStatus(run.status), str(run.status)
    )


def _print_run(run: SyncRun) -> None:
    counts = ", ".join(f"{k} {v:,}" for k, v in run.counts().items())
    took = ""
    if run.started_at and run.finished_at:
        took = f" in {(run.finished_at - run.started_at).total_seconds():.1f}s"
    dry = " (dry run: nothing written)" if run.dry_run else ""
    click.echo(f"run {run.id} {run.status}{took}{dry}: {counts}")
    if run.error:
        click.echo(f"  error: {run.error}")


@main.command()
@run_async
async def status() -> None:
    """Integrations with their status, last success, last error and last (real) run."""
    settings = _settings()
    async with database(settings):
        found = await Integration.all().order_by("created_at")
        if not found:
            click.echo("no integrations yet: add one with `psasync integrations add connectwise`")
            return
        for integration in found:
            label = IntegrationStatus(integration.status).label
            click.echo(f"{integration.name}  [{label}]  {integration.id}")
            click.echo(f"  provider: {integration.provider}  site: {integration.site_url}")
            _echo_api(integration, settings.vault)
            if integration.last_success_at:
                click.echo(f"  last success: {integration.last_success_at:%Y-%m-%d %H:%M:%S} UTC")
            if integration.last_error:
                click.echo(f"  last error: {integration.last_error}")
            _echo_permissions(integration)
            runs = SyncRun.filter(integration_id=integration.id).order_by("-queued_at")
            # A dry run synced nothing: it is never the last run, only shown when newer.
            run = await runs.filter(dry_run=False).first()
            if run is not None:
                click.echo("  last run: ", nl=False)
                _print_run(run)
                await _print_issues(run)
            dry = await runs.filter(dry_run=True).first()
            if dry is not None and (run is None or dry.queued_at > run.queued_at):
                click.echo("  last dry run: ", nl=False)
                _print_run(dry)


async def _print_issues(run: SyncRun) -> None:
    from tortoise.functions import Count

    groups = (
        await SyncRunIssue.filter(run_id=run.id)
        .annotate(n=Count("id"))
        .group_by("code")
        .values("code", "n")
    )
    for group in groups:
        sample = await SyncRunIssue.filter(run_id=run.id, code=group["code"]).first()
        message = sample.message if sample else ""
        click.echo(f"  {group['code']} x{group['n']}: e.g. {message}")


@main.group()
def simulate() -> None:
    """Run a PSA simulator on a loopback port."""


@simulate.command("connectwise")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8081, show_default=True)
@click.option("--companies", type=int, default=500, show_default=True)
@click.option("--company-id", default=None)
@click.option("--public-key", default=None)
@click.option("--private-key", default=None)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--integrator-login",
    default="psasync-integrator",
    show_default=True,
    help="Legacy SOAP API integrator login id.",
)
@click.option(
    "--integrator-password",
    default="integrator-password",
    show_default=True,
    envvar="PSASYNC_SIM_INTEGRATOR_PASSWORD",
    help="Legacy SOAP API integrator password.",
)
def simulate_connectwise(
    host: str,
    port: int,
    companies: int,
    company_id: str | None,
    public_key: str | None,
    private_key: str | None,
    seed: int,
    integrator_login: str,
    integrator_password: str,
) -> None:
    """A ConnectWise Manage simulator (REST and legacy SOAP) with a seeded company set
    (credentials printed)."""
    from simulators.connectwise import run_standalone
    from simulators.connectwise.soap import IntegratorLogin

    run_standalone(
        host,
        port,
        companies,
        company_id,
        public_key,
        private_key,
        seed,
        click.echo,
        integrator=IntegratorLogin(integrator_login, integrator_password),
    )


@simulate.command("pulseway")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8082, show_default=True)
@click.option("--accounts", type=int, default=500, show_default=True)
@click.option("--tenant", default=None)
@click.option("--username", default=None)
@click.option("--password", default=None)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--calls-per-hour",
    type=int,
    default=1500,
    show_default=True,
    help="Each endpoint's hourly budget, as Pulseway PSA enforces it.",
)
def simulate_pulseway(
    host: str,
    port: int,
    accounts: int,
    tenant: str | None,
    username: str | None,
    password: str | None,
    seed: int,
    calls_per_hour: int,
) -> None:
    """A Pulseway PSA simulator with a seeded account set (credentials printed)."""
    from simulators.pulseway import run_standalone

    run_standalone(
        host, port, accounts, tenant, username, password, seed, calls_per_hour, click.echo
    )
