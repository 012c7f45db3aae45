"""Who is asking: the user, their role and account; users and API keys (administrators)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import strawberry

from api.graphql.errors import RoleEnum
from api.graphql.ids import to_global
from api.graphql.types.node import Node
from models import Role


@strawberry.type
class Account(Node):
    name: str


@strawberry.type
class User(Node):
    email: str
    name: str
    role: RoleEnum  # type: ignore[valid-type]
    created_at: datetime

    COLUMNS: ClassVar[tuple[str, ...]] = ("id", "email", "name", "role", "created_at")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> User:
        return cls(
            id=strawberry.ID(to_global("User", row["id"])),
            email=row["email"],
            name=row["name"],
            role=Role(row["role"]),
            created_at=row["created_at"],
        )


@strawberry.type(description="An API key. The key itself is shown once, when it is created.")
class ApiKey(Node):
    name: str
    prefix: str = strawberry.field(description="The key's first characters, to recognise it.")
    user: User
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id", "name", "prefix", "created_at", "last_used_at", "revoked_at",
        "user__id", "user__email", "user__name", "user__role", "user__created_at",
    )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiKey:
        user = {k.removeprefix("user__"): v for k, v in row.items() if k.startswith("user__")}
        return cls(
            id=strawberry.ID(to_global("ApiKey", row["id"])),
            name=row["name"],
            prefix=row["prefix"],
            user=User.from_row(user),
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
            revoked_at=row["revoked_at"],
        )


@strawberry.type
class Viewer:
    user: User
    role: RoleEnum  # type: ignore[valid-type]
    account: Account
