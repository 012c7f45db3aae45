"""Users and API keys: administrators only."""

from __future__ import annotations

import uuid

import strawberry
from tortoise.exceptions import IntegrityError

from api import access
from api.graphql.context import Info
from api.graphql.errors import AccessError, AccessErrorCode, RoleEnum
from api.graphql.ids import InvalidId, from_global
from api.graphql.permissions import denied
from api.graphql.text import checked, text_rules
from api.graphql.types.viewer import ApiKey, User
from models import Account, Role
from models import ApiKey as ApiKeyRow
from models import User as UserRow


def _forbidden(info: Info) -> list[AccessError] | None:
    message = denied(info, Role.ADMINISTRATOR)
    if message is None:
        return None
    return [
        AccessError(
            code=AccessErrorCode.PERMISSION_DENIED,
            message=message,
            required_role=Role.ADMINISTRATOR,
        )
    ]


def _error(code: AccessErrorCode, message: str, field: str | None = None) -> AccessError:
    return AccessError(code=code, message=message, field=field)


async def _user(info: Info, value: strawberry.ID) -> UserRow | AccessError:
    try:
        user_id = from_global(str(value), "User")
    except InvalidId as exc:
        return _error(AccessErrorCode.INVALID_ID, str(exc), "userId")
    row = await UserRow.filter(id=user_id, account_id=info.context.account_id).first()
    return row or _error(AccessErrorCode.NOT_FOUND, "no such user", "userId")


async def _user_type(user_id: uuid.UUID) -> User:
    rows = await UserRow.filter(id=user_id).values(*User.COLUMNS)
    return User.from_row(rows[0])


async def _key_type(key_id: uuid.UUID) -> ApiKey:
    rows = await ApiKeyRow.filter(id=key_id).values(*ApiKey.COLUMNS)
    return ApiKey.from_row(rows[0])


@text_rules(UserRow)
@strawberry.input
class CreateUserInput:
    email: str
    role: RoleEnum  # type: ignore[valid-type]
    name: str = ""


@strawberry.type
class UserPayload:
    user: User | None = None
    errors: list[AccessError] = strawberry.field(default_factory=list)


@text_rules(ApiKeyRow)
@strawberry.input
class CreateApiKeyInput:
    user_id: strawberry.ID
    name: str = ""


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKey | None = None
    key: str | None = strawberry.field(
        default=None, description="The key itself. Shown this once: store it now."
    )
    errors: list[AccessError] = strawberry.field(default_factory=list)


@strawberry.type
class ApiKeyPayload:
    api_key: ApiKey | None = None
    errors: list[AccessError] = strawberry.field(default_factory=list)


async def _last_administrator(user: UserRow) -> bool:
    others = (
        await UserRow.filter(
            account_id=user.account_id,  # type: ignore[attr-defined]
            role=Role.ADMINISTRATOR,
        )
        .exclude(id=user.id)
        .count()
    )
    return user.role == Role.ADMINISTRATOR and others == 0


@checked
@strawberry.type
class AccessMutations:
    @strawberry.mutation
    async def create_user(self, info: Info, input: CreateUserInput) -> UserPayload:
        if errors := _forbidden(info):
            return UserPayload(errors=errors)
        email = input.email.strip()
        if "@" not in email or len(email) > 254:
            return UserPayload(
                errors=[_error(AccessErrorCode.INVALID_INPUT, "not an email address", "email")]
            )
        account = await Account.get(id=info.context.account_id)
        try:
            user = await access.create_user(account, email, Role(input.role), input.name)
        except IntegrityError:
            return UserPayload(
                errors=[_error(AccessErrorCode.DUPLICATE, "a user has this email", "email")]
            )
        return UserPayload(user=await _user_type(user.id))

    @strawberry.mutation
    async def update_user_role(
        self,
        info: Info,
        user_id: strawberry.ID,
        role: RoleEnum,  # type: ignore[valid-type]
    ) -> UserPayload:
        if errors := _forbidden(info):
            return UserPayload(errors=errors)
        user = await _user(info, user_id)
        if isinstance(user, AccessError):
            return UserPayload(errors=[user])
        if Role(role) != Role.ADMINISTRATOR and await _last_administrator(user):
            return UserPayload(
                errors=[
                    _error(
                        AccessErrorCode.LAST_ADMINISTRATOR,
                        "the account's last administrator keeps that role",
                        "role",
                    )
                ]
            )
        user.role = Role(role)
        await user.save(update_fields=["role"])
        return UserPayload(user=await _user_type(user.id))

    @strawberry.mutation(description="A new key for a user; the key is returned once.")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyPayload:
        if errors := _forbidden(info):
            return CreateApiKeyPayload(errors=errors)
        user = await _user(info, input.user_id)
        if isinstance(user, AccessError):
            return CreateApiKeyPayload(errors=[user])
        row, key = await access.issue_key(user, input.name[:200])
        return CreateApiKeyPayload(api_key=await _key_type(row.id), key=key)

    @strawberry.mutation(description="Revoke a key: requests with it get 401 from now on.")
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> ApiKeyPayload:
        if errors := _forbidden(info):
            return ApiKeyPayload(errors=errors)
        try:
            key_id = from_global(str(id), "ApiKey")
        except InvalidId as exc:
            return ApiKeyPayload(errors=[_error(AccessErrorCode.INVALID_ID, str(exc), "id")])
        row = await ApiKeyRow.filter(id=key_id, account_id=info.context.account_id).first()
        if row is None:
            return ApiKeyPayload(errors=[_error(AccessErrorCode.NOT_FOUND, "no such key", "id")])
        await access.revoke_key(row)
        return ApiKeyPayload(api_key=await _key_type(row.id))
