"""Roles in resolvers: queries raise a public error, mutations return a typed one."""

from __future__ import annotations

from graphql import GraphQLError

from api.graphql.context import Info
from models import Role


class PublicError(GraphQLError):
    """An error meant for the client, shown as is (everything else is masked)."""

    def __init__(self, message: str, code: str, **extensions: object) -> None:
        super().__init__(message, extensions={"code": code, **extensions})


def denied(info: Info, role: Role) -> str | None:
    """A message naming the role required, or None when the caller has it."""
    viewer = info.context.viewer
    if viewer is not None and viewer.can(role):
        return None
    have = viewer.role.value if viewer else "none"
    return f"this needs the {role.value} role or higher (your role: {have})"


def require(info: Info, role: Role) -> None:
    message = denied(info, role)
    if message is not None:
        raise PublicError(message, "PERMISSION_DENIED", requiredRole=role.name)
