"""Expected failures are data: each mutation domain has its own error type and codes.

Every error names its ``code``, a ``message`` for people, and the input ``field`` it is
about (camelCase, as in the input). A denied operation names the ``requiredRole``. Text a
client sends is checked before any of this (``api.graphql.text``): every error type has
INVALID_INPUT for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

import strawberry

from models import Role

RoleEnum = strawberry.enum(Role, name="Role")


def camel(name: str | None) -> str | None:
    """A model column as the GraphQL input calls it: ``organization_type_id`` → ``…TypeId``."""
    if name is None:
        return None
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def column_of(columns: Iterable[str], name: str) -> str | None:
    """The column among ``columns`` that the GraphQL name ``name`` stands for (``camel``'s
    inverse over known columns: ``serialNumber`` → ``serial_number``), else None."""
    for column in columns:
        if camel(column) == name:
            return column
    return None


@strawberry.interface(description="An expected failure of a mutation.")
class Error:
    message: str
    field: str | None = None


@strawberry.enum
class IntegrationErrorCode(Enum):
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_ID = "INVALID_ID"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    UNREACHABLE = "UNREACHABLE"
    INSECURE_URL = "INSECURE_URL"
    CONNECTION_FAILED = "CONNECTION_FAILED"
    UNKNOWN_REFERENCE = "UNKNOWN_REFERENCE"
    REFERENCE_NOT_FOUND = "REFERENCE_NOT_FOUND"
    NOT_CONNECTED = "NOT_CONNECTED"
    INVALID_INTERVAL = "INVALID_INTERVAL"
    INVALID_SYNC_STATE = "INVALID_SYNC_STATE"
    WRONG_PROVIDER = "WRONG_PROVIDER"
    PAUSED = "PAUSED"
    NOT_PAUSED = "NOT_PAUSED"
    TOO_MANY = "TOO_MANY"
    INVALID_DIRECTION = "INVALID_DIRECTION"
    TWO_WAY_OFF = "TWO_WAY_OFF"
    # The PSA's security role does not let the API user read what every sync needs.
    PSA_ACCESS_DENIED = "PSA_ACCESS_DENIED"


@strawberry.type
class IntegrationError(Error):
    code: IntegrationErrorCode
    required_role: RoleEnum | None = None  # type: ignore[valid-type]
    area: str | None = strawberry.field(
        default=None,
        description="PSA_ACCESS_DENIED: the PSA area the API user may not read, in the "
        "PSA's words (ConnectWise companies, Pulseway PSA accounts).",
    )


@strawberry.enum
class AssetErrorCode(Enum):
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    INVALID_ID = "INVALID_ID"
    REQUIRED = "REQUIRED"
    READ_ONLY_FIELD = "READ_ONLY_FIELD"
    SYNCED_RECORD = "SYNCED_RECORD"
    UNKNOWN_FIELD = "UNKNOWN_FIELD"
    TOO_LONG = "TOO_LONG"
    TOO_MANY = "TOO_MANY"
    INVALID = "INVALID"
    INVALID_INPUT = "INVALID_INPUT"
    WRONG_ORGANIZATION = "WRONG_ORGANIZATION"


@strawberry.type
class AssetError(Error):
    code: AssetErrorCode
    # Every field the error is about (all the read-only ones, for READ_ONLY_FIELD).
    fields: list[str] = strawberry.field(default_factory=list)
    required_role: RoleEnum | None = None  # type: ignore[valid-type]


@strawberry.enum
class AccessErrorCode(Enum):
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    INVALID_ID = "INVALID_ID"
    INVALID_INPUT = "INVALID_INPUT"
    DUPLICATE = "DUPLICATE"
    LAST_ADMINISTRATOR = "LAST_ADMINISTRATOR"


@strawberry.type
class AccessError(Error):
    code: AccessErrorCode
    required_role: RoleEnum | None = None  # type: ignore[valid-type]


@strawberry.enum
class TwoWayErrorCode(Enum):
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    INVALID_ID = "INVALID_ID"
    REQUIRED = "REQUIRED"
    INVALID = "INVALID"
    INVALID_INPUT = "INVALID_INPUT"
    NOT_OPEN = "NOT_OPEN"
    NOTHING_TO_RETRY = "NOTHING_TO_RETRY"


@strawberry.type(description="An expected failure of a two-way sync action on one record.")
class TwoWayError(Error):
    code: TwoWayErrorCode
    required_role: RoleEnum | None = None  # type: ignore[valid-type]


@strawberry.enum
class WebhookErrorCode(Enum):
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    INVALID_ID = "INVALID_ID"
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FAILED = "NOT_FAILED"


@strawberry.type(description="An expected failure of a webhook action.")
class WebhookError(Error):
    code: WebhookErrorCode
    required_role: RoleEnum | None = None  # type: ignore[valid-type]
