"""The invite step of the ConnectWise article, through GraphQL, against the ConnectWise
simulator over HTTP: "a list of all licensed user accounts in your PSA … We automatically
select all PSA users to be invited … Invite Users … Skip". Invitations are accepted with their
token by a caller without an API key (the only operation allowed so), once, within 7 days,
unless revoked; emailed through a real local SMTP server when SMTP is configured."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from harness import GraphQLClient, Psa
from starlette.applications import Starlette

from api.app import create_app
from api.graphql.ids import to_global
from api.mail import Smtp
from api.settings import Settings
from models import Account, ApiKey, Integration, Invitation, Role, User

Connect = Callable[..., Awaitable[Integration]]
Caller = Callable[..., Awaitable[GraphQLClient]]

PSA_USERS = """
query($id: ID!, $sub: Boolean! = false) { integration(id: $id) {
  userInvites userInvitesDone
  psaUsers(subcontractors: $sub) { psaId name email existingUser invited invitationId selected }
} }"""

INVITE = """
mutation($id: ID!, $ids: [Int!]!, $role: Role! = VIEWER) {
  inviteUsers(integrationId: $id, psaUserIds: $ids, role: $role) {
    integration { userInvites userInvitesDone }
    invitations { invitation { id email name role status psaId } emailed link linkNote }
    skipped { psaId email reason }
    errors { code message field requiredRole }
  }
}"""

SKIP = """
mutation($id: ID!) { skipUserInvites(integrationId: $id) {
  integration { userInvites userInvitesDone invitations { id } } errors { code } } }"""

REVOKE = """
mutation($id: ID!) { revokeInvitation(id: $id) {
  invitation { id status revokedAt } errors { code message field } } }"""

ACCEPT = """
mutation($token: String!) { acceptInvitation(token: $token) {
  user { email name role } apiKey { prefix } key errors { code message field } } }"""

ME = "{ viewer { user { email } role } }"


def gid(integration: Integration) -> str:
    return to_global("Integration", integration.id)


def token_of(link: str) -> str:
    return link.split("token=", 1)[1]


async def listed(admin: GraphQLClient, integration: Integration, **extra: Any) -> list[Any]:
    data = await admin.data(PSA_USERS, {"id": gid(integration), **extra})
    return data["integration"]["psaUsers"]  # type: ignore[no-any-return]


def by_email(users: list[Any]) -> dict[str, Any]:
    return {u["email"]: u for u in users if u["email"]}


async def invite(admin: GraphQLClient, integration: Integration, ids: list[int], **kw: Any) -> Any:
    data = await admin.data(INVITE, {"id": gid(integration), "ids": ids, **kw})
    return data["inviteUsers"]


async def accept(http: httpx.AsyncClient, token: str) -> Any:
    response = await http.post("/graphql", json={"query": ACCEPT, "variables": {"token": token}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]["acceptInvitation"]


async def test_the_list_shows_licensed_users_marks_existing_ones_and_selects_the_new(
    account: Account, admin: GraphQLClient, connect: Connect
) -> None:
    integration = await connect()
    # An existing user, written in another case than the PSA has it.
    await User.create(account=account, email="JSmith@Simulated-MSP.example", role=Role.EDITOR)
    users = await listed(admin, integration)
    emails = by_email(users)
    jane = emails["jsmith@simulated-msp.example"]
    assert jane["existingUser"] is True
    assert jane["selected"] is False
    assert jane["name"] == "Jane Smith"
    miguel = emails["mlopez@simulated-msp.example"]
    assert (miguel["existingUser"], miguel["invited"], miguel["selected"]) == (False, False, True)
    names = {u["name"] for u in users}
    assert not names & {"Dana Wright", "RMM Integration", "Sam Ortiz", "API Member"}
    with_subcontractors = by_email(await listed(admin, integration, sub=True))
    assert with_subcontractors["sam@ortiz-networks.example"]["selected"] is True
    shown = await admin.data(PSA_USERS, {"id": gid(integration)})
    assert shown["integration"]["userInvitesDone"] is False


async def test_only_administrators_see_the_list_or_invite(
    account: Account, caller: Caller, connect: Connect
) -> None:
    integration = await connect()
    manager = await caller(account, Role.MANAGER)
    body = await manager.execute(PSA_USERS, {"id": gid(integration)})
    assert body["errors"][0]["extensions"]["code"] == "PERMISSION_DENIED"
    data = await manager.data(INVITE, {"id": gid(integration), "ids": [121]})
    error = data["inviteUsers"]["errors"][0]
    assert (error["code"], error["requiredRole"]) == ("PERMISSION_DENIED", "ADMINISTRATOR")
    assert await Invitation.all().count() == 0


async def test_a_psa_that_refuses_the_member_list_is_a_typed_error(
    admin: GraphQLClient, connect: Connect, psa: Psa
) -> None:
    integration = await connect()
    psa.simulator.denials.deny("members")
    body = await admin.execute(PSA_USERS, {"id": gid(integration)})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "PSA_ERROR"
    assert "ConnectWise Manage did not list its users" in error["message"]
    data = await admin.data(INVITE, {"id": gid(integration), "ids": [121]})
    assert data["inviteUsers"]["errors"][0]["code"] == "PSA_ERROR"


async def test_invite_some_then_all_never_invites_an_email_twice(
    account: Account, admin: GraphQLClient, connect: Connect
) -> None:
    integration = await connect()
    await User.create(account=account, email="jsmith@simulated-msp.example", role=Role.EDITOR)
    some = await invite(admin, integration, [121, 122], role="EDITOR")
    assert some["errors"] == []
    assert sorted(i["invitation"]["email"] for i in some["invitations"]) == [
        "mlopez@simulated-msp.example",
        "tchen@simulated-msp.example",
    ]
    first = some["invitations"][0]
    assert first["invitation"]["status"] == "PENDING"
    assert first["invitation"]["role"] == "EDITOR"
    assert first["emailed"] is False
    assert first["link"].startswith("http://psasync.test/invitations/accept#token=psi_")
    assert "acceptInvitation" in first["linkNote"]
    assert some["integration"] == {"userInvites": "INVITED", "userInvitesDone": True}

    users = by_email(await listed(admin, integration))
    assert users["mlopez@simulated-msp.example"]["invited"] is True
    assert users["mlopez@simulated-msp.example"]["selected"] is False
    assert users["mlopez@simulated-msp.example"]["invitationId"]

    # "Invite Users" with everything still selected, plus the ones invited and existing.
    selected = [u["psaId"] for u in users.values() if u["selected"]]
    everyone = await invite(admin, integration, [*selected, 120, 121, 999])
    invited = {i["invitation"]["email"] for i in everyone["invitations"]}
    assert "mlopez@simulated-msp.example" not in invited
    assert "jsmith@simulated-msp.example" not in invited
    assert len(invited) == len(selected)
    reasons = {s["psaId"]: s["reason"] for s in everyone["skipped"]}
    assert reasons == {120: "EXISTING_USER", 121: "ALREADY_INVITED", 999: "NOT_IN_PSA"}
    assert await Invitation.filter(email="mlopez@simulated-msp.example").count() == 1
    after = by_email(await listed(admin, integration))
    assert not any(u["selected"] for u in after.values())


async def test_skipping_the_step_invites_nobody_and_shows_it_done(
    admin: GraphQLClient, connect: Connect
) -> None:
    integration = await connect()
    data = await admin.data(SKIP, {"id": gid(integration)})
    assert data["skipUserInvites"] == {
        "integration": {"userInvites": "SKIPPED", "userInvitesDone": True, "invitations": []},
        "errors": [],
    }
    assert await Invitation.all().count() == 0


async def test_accepting_returns_a_working_key_once(
    http: httpx.AsyncClient, admin: GraphQLClient, connect: Connect
) -> None:
    integration = await connect()
    sent = await invite(admin, integration, [122], role="MANAGER")
    token = token_of(sent["invitations"][0]["link"])
    accepted = await accept(http, token)
    assert accepted["errors"] == []
    assert accepted["user"] == {
        "email": "tchen@simulated-msp.example",
        "name": "Tina Chen",
        "role": "MANAGER",
    }
    me = await GraphQLClient(http, accepted["key"]).data(ME)
    assert me["viewer"] == {"user": {"email": "tchen@simulated-msp.example"}, "role": "MANAGER"}

    users_before = await User.all().count()
    again = await accept(http, token)
    assert again["key"] is None
    assert again["errors"][0]["code"] == "ALREADY_USED"
    assert await User.all().count() == users_before
    assert await ApiKey.filter(user__email="tchen@simulated-msp.example").count() == 1
    invitations = await admin.data(
        "query($id: ID!) { integration(id: $id) { invitations(status: ACCEPTED) { email } } }",
        {"id": gid(integration)},
    )
    assert invitations["integration"]["invitations"] == [{"email": "tchen@simulated-msp.example"}]
    listed_now = by_email(await listed(admin, integration))
    assert listed_now["tchen@simulated-msp.example"]["existingUser"] is True


async def test_an_expired_token_is_refused_and_changes_nothing(
    http: httpx.AsyncClient, admin: GraphQLClient, connect: Connect
) -> None:
    integration = await connect()
    sent = await invite(admin, integration, [123])
    token = token_of(sent["invitations"][0]["link"])
    # Eight days later, as far as the invitation knows.
    await Invitation.all().update(expires_at=datetime.now(UTC) - timedelta(days=1))
    refused = await accept(http, token)
    assert refused["errors"][0]["code"] == "EXPIRED"
    assert refused["user"] is None
    assert not await User.filter(email="rpatel@simulated-msp.example").exists()
    row = await Invitation.get(email="rpatel@simulated-msp.example")
    assert row.accepted_at is None
    # An expired invitation no longer blocks a new one.
    again = await invite(admin, integration, [123])
    assert len(again["invitations"]) == 1


async def test_a_revoked_token_is_refused(
    http: httpx.AsyncClient, admin: GraphQLClient, connect: Connect
) -> None:
    integration = await connect()
    sent = await invite(admin, integration, [124])
    item = sent["invitations"][0]
    revoked = await admin.data(REVOKE, {"id": item["invitation"]["id"]})
    assert revoked["revokeInvitation"]["invitation"]["status"] == "REVOKED"
    refused = await accept(http, token_of(item["link"]))
    assert refused["errors"][0]["code"] == "REVOKED"
    assert not await User.filter(email="kowens@simulated-msp.example").exists()
    unknown = await accept(http, "psi_" + "x" * 43)
    assert unknown["errors"][0]["code"] == "INVALID_TOKEN"


@pytest.mark.parametrize(
    "query",
    [
        ME,
        # acceptInvitation with anything else beside it
        'mutation { acceptInvitation(token: "psi_x") { key } '
        'createUser(input: {email: "x@y.z", role: ADMINISTRATOR}) { user { id } } }',
        'mutation { acceptInvitation(token: "psi_x") { key } } query { viewer { role } }',
        'mutation { acceptInvitation(token: "psi_x") { ...F } } '
        "fragment F on AcceptInvitationPayload { key }",
        "query { acceptInvitation: viewer { role } }",
        'mutation { skipUserInvites(integrationId: "x") { errors { code } } }',
    ],
)
async def test_without_a_key_anything_but_a_lone_accept_is_401(
    http: httpx.AsyncClient, query: str
) -> None:
    response = await http.post("/graphql", json={"query": query})
    assert response.status_code == 401
    assert await User.all().count() == 0


async def test_accept_attempts_are_limited_per_client_address(
    http: httpx.AsyncClient, db: str
) -> None:
    answers = []
    for _ in range(11):
        response = await http.post(
            "/graphql", json={"query": ACCEPT, "variables": {"token": "psi_guess"}}
        )
        answers.append(response.status_code)
    assert answers[:10] == [200] * 10
    assert answers[10] == 429


# ------------------------------------------------------------------------------------ email


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = parsed.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        self.messages.append((list(envelope.rcpt_tos), f"{parsed['Subject']}\n{text}"))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
async def mailing_http(
    db: str, secret_key: str, smtp_server: tuple[Inbox, int]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=db,
        secret_keys=(secret_key,),
        host="127.0.0.1",
        port=0,
        demo="off",
        demo_port=0,
        worker=False,
        log_level="info",
        allow_sandbox=True,
        public_url="https://docs.acme.example",
        smtp=Smtp(
            host="127.0.0.1", port=smtp_server[1], sender="psasync@acme.example", starttls=False
        ),
    )
    app: Starlette = create_app(settings, manage_database=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://psasync.test") as client:
        yield client


async def test_invitations_are_emailed_with_their_link_when_smtp_is_configured(
    account: Account,
    connect: Connect,
    mailing_http: httpx.AsyncClient,
    smtp_server: tuple[Inbox, int],
) -> None:
    from api import access

    integration = await connect()
    user = await access.create_user(account, "owner@acme.example", Role.ADMINISTRATOR)
    _row, key = await access.issue_key(user)
    admin = GraphQLClient(mailing_http, key)
    sent = await invite(admin, integration, [121])
    item = sent["invitations"][0]
    assert (item["emailed"], item["link"], item["linkNote"]) == (True, None, None)
    inbox, _port = smtp_server
    for _ in range(50):  # the server thread stores what it received
        if inbox.messages:
            break
        await asyncio.sleep(0.05)
    recipients, content = inbox.messages[0]
    assert recipients == ["mlopez@simulated-msp.example"]
    assert "invited to Acme MSP" in content
    found = re.search(r"https://docs\.acme\.example/invitations/accept#token=(psi_[\w-]+)", content)
    assert found is not None, content
    stored = await Invitation.get(email="mlopez@simulated-msp.example")
    assert stored.token_hash not in content
    assert stored.emailed_at is not None
    accepted = await accept(mailing_http, found.group(1))
    assert accepted["user"]["email"] == "mlopez@simulated-msp.example"


async def test_no_log_line_holds_a_token(
    http: httpx.AsyncClient,
    admin: GraphQLClient,
    connect: Connect,
    caplog: pytest.LogCaptureFixture,
) -> None:
    integration = await connect()
    caplog.set_level("DEBUG")
    sent = await invite(admin, integration, [121, 122])
    tokens = [token_of(i["link"]) for i in sent["invitations"]]
    await accept(http, tokens[0])
    await accept(http, tokens[0])  # refused: still not logged
    assert caplog.records  # the SQL went through the log
    assert not any(token in caplog.text for token in tokens)
