"""Email out: invitations, through the SMTP server the settings name (aiosmtplib).

Sent after the database transaction that made the invitation has committed, never inside
one. The message carries the invitation's link (with its token); nothing here logs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

# An SMTP server that does not answer within this long fails the send, not the request.
TIMEOUT_SECONDS = 15.0


class MailError(Exception):
    """The message was not handed to the SMTP server; ``message`` says why (no token)."""


@dataclass(frozen=True, repr=False)
class Smtp:
    """An SMTP server to send through (``PSASYNC_SMTP_*``)."""

    host: str
    port: int
    sender: str
    user: str | None = None
    password: str | None = None
    starttls: bool = True

    def __repr__(self) -> str:  # the password must never reach a log
        return f"Smtp(host={self.host!r}, port={self.port}, user={self.user!r}, password='***')"


def invitation_message(
    smtp: Smtp, *, to: str, account: str, inviter: str | None, link: str, expires: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = to
    message["Subject"] = f"You are invited to {account} on psasync"
    who = inviter or "An administrator"
    message.set_content(
        f"{who} invited you to join {account} on psasync, the documentation side of your "
        f"PSA.\n\nAccept the invitation (the link works once, until {expires}):\n\n{link}\n\n"
        "Until psasync's console has its invitation page, accept it through the API: the "
        "GraphQL mutation acceptInvitation(token: ...) with the token after 'token=' in the "
        "link; it answers your first API key.\n"
    )
    return message


async def send(smtp: Smtp, message: EmailMessage) -> None:
    try:
        await aiosmtplib.send(
            message,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.user,
            password=smtp.password,
            start_tls=smtp.starttls,
            timeout=TIMEOUT_SECONDS,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise MailError(f"{smtp.host}:{smtp.port} did not take the message: {exc}") from exc
