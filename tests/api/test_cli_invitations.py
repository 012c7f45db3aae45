"""``psasync integrations users`` and ``psasync integrations invite``: the invite step from a
terminal, against the ConnectWise simulator, the CLI running as a process on the test's
database. Without SMTP, each invitation's link is printed once; the token in it is accepted
through GraphQL like any other."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from harness import CREDENTIALS, Psa
from test_cli_connectwise_setup import _psasync

from models import Invitation, User

ADD = ("integrations", "add", "connectwise", "--sandbox", "--name", "Acme CW")
ACCEPT = """
mutation($token: String!) { acceptInvitation(token: $token) { user { email role } key } }"""


def _add(psa: Psa) -> list[str]:
    return [
        *ADD,
        "--site", psa.base_url,
        "--company-id", CREDENTIALS.company_id,
        "--client-id", "cli-test",
        "--public-key", CREDENTIALS.public_key,
        "--private-key", CREDENTIALS.private_key,
    ]  # fmt: skip


async def test_cli_lists_users_and_invites_some_then_all(
    db: str, psa: Psa, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    code, out = _psasync(db, tmp_path, *_add(psa))
    assert code == 0, out

    code, out = _psasync(db, tmp_path, "integrations", "users", "Acme CW")
    assert code == 0, out
    assert re.search(r"\[x\]\s+120  Jane Smith  <jsmith@simulated-msp\.example>", out), out
    assert "Sam Ortiz" not in out  # a subcontractor
    assert "RMM Integration" not in out  # an API member

    code, out = _psasync(
        db, tmp_path, "integrations", "invite", "Acme CW",
        "--email", "MLopez@simulated-msp.example", "--role", "editor",
    )  # fmt: skip
    assert code == 0, out
    link = re.search(r"invited mlopez@simulated-msp\.example: (\S+)", out)
    assert link is not None, out
    assert "acceptInvitation" in out

    code, out = _psasync(db, tmp_path, "integrations", "users", "Acme CW")
    assert re.search(r"\[i\]\s+121  Miguel Lopez", out), out

    code, out = _psasync(db, tmp_path, "integrations", "invite", "Acme CW", "--all")
    assert code == 0, out
    assert "invited jsmith@simulated-msp.example" in out
    assert "mlopez" not in out  # no longer selected: never invited twice
    assert await Invitation.filter(email="mlopez@simulated-msp.example").count() == 1

    token = link.group(1).split("token=", 1)[1]
    response = await http.post("/graphql", json={"query": ACCEPT, "variables": {"token": token}})
    accepted = response.json()["data"]["acceptInvitation"]
    assert accepted["user"] == {"email": "mlopez@simulated-msp.example", "role": "EDITOR"}
    assert await User.filter(email="mlopez@simulated-msp.example").exists()


async def test_cli_invite_needs_all_or_emails(db: str, psa: Psa, tmp_path: Path) -> None:
    code, out = _psasync(db, tmp_path, *_add(psa))
    assert code == 0, out
    code, out = _psasync(db, tmp_path, "integrations", "invite", "Acme CW")
    assert code != 0
    assert "--all or one or more --email" in out
