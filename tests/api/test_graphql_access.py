"""Authentication, account isolation and roles, through the real app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from harness import GraphQLClient

from api import access
from models import Account, ApiKey, Organization, Role

CREATE_ORG = """
mutation($name: String!) {
  createOrganization(input: {name: $name}) {
    organization { id name }
    errors { code message field requiredRole }
  }
}"""

Caller = Callable[..., Awaitable[GraphQLClient]]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer psk_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer "],
)
async def test_missing_or_unknown_key_is_401_and_runs_nothing(
    http: httpx.AsyncClient, account: Account, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await http.post(
        "/graphql", json={"query": CREATE_ORG, "variables": {"name": "Sneaky"}}, headers=headers
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in body
    assert await Organization.all().count() == 0


async def test_revoked_key_is_refused(admin: GraphQLClient, account: Account) -> None:
    assert (await admin.post("{ viewer { role } }")).status_code == 200
    key = await ApiKey.get(key_hash=ApiKey.hash(admin.key or ""))
    await access.revoke_key(key)
    response = await admin.post(CREATE_ORG, {"name": "After revocation"})
    assert response.status_code == 401
    assert await Organization.filter(name="After revocation").count() == 0


async def test_queries_by_get_need_a_key_but_graphiql_does_not(http: httpx.AsyncClient) -> None:
    page = await http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    executed = await http.get("/graphql", params={"query": "{ viewer { role } }"})
    assert executed.status_code == 401


async def test_an_account_never_sees_another_accounts_rows(
    admin: GraphQLClient, caller: Caller
) -> None:
    mine = await admin.data(CREATE_ORG, {"name": "Ours Ltd"})
    org_id = mine["createOrganization"]["organization"]["id"]
    other = await caller(await Account.create(name="Other MSP"), Role.ADMINISTRATOR)

    seen = await other.data(
        """query($id: ID!) {
          node(id: $id) { id }
          organizations { totalCount edges { node { id } } }
          locations(filter: {organizationId: $id}) { totalCount }
        }""",
        {"id": org_id},
    )
    assert seen["node"] is None
    assert seen["organizations"]["totalCount"] == 0
    assert seen["locations"]["totalCount"] == 0

    changed = await other.data(
        """mutation($id: ID!) {
          updateOrganization(id: $id, input: {name: "Hijacked"}) { errors { code field } }
          deleteOrganization(id: $id) { errors { code } }
          createLocation(input: {organizationId: $id, name: "Foothold"}) { errors { code field } }
        }""",
        {"id": org_id},
    )
    assert changed["updateOrganization"]["errors"] == [{"code": "NOT_FOUND", "field": "id"}]
    assert changed["deleteOrganization"]["errors"] == [{"code": "NOT_FOUND"}]
    assert changed["createLocation"]["errors"] == [{"code": "NOT_FOUND", "field": "organizationId"}]
    assert await Organization.filter(name="Ours Ltd").count() == 1


@pytest.mark.parametrize(
    ("role", "mutation", "required"),
    [
        (Role.VIEWER, CREATE_ORG, "EDITOR"),
        (
            Role.EDITOR,
            """mutation($name: ID!) { pauseIntegration(integrationId: $name) {
                 errors { code message field requiredRole } } }""",
            "MANAGER",
        ),
        (
            Role.MANAGER,
            """mutation($name: String!) { createUser(input: {email: $name, role: VIEWER}) {
                 errors { code message field requiredRole } } }""",
            "ADMINISTRATOR",
        ),
    ],
)
async def test_a_denied_operation_names_the_role_it_needs(
    account: Account, caller: Caller, role: Role, mutation: str, required: str
) -> None:
    client = await caller(account, role)
    data = await client.data(mutation, {"name": "someone@msp.test"})
    (error,) = next(iter(data.values()))["errors"]
    assert error["code"] == "PERMISSION_DENIED"
    assert error["requiredRole"] == required
    assert required.lower() in error["message"]
    assert await Organization.all().count() == 0


async def test_viewers_read_but_only_administrators_list_keys(
    account: Account, caller: Caller
) -> None:
    viewer = await caller(account, Role.VIEWER)
    data = await viewer.data("{ viewer { role account { name } } organizations { totalCount } }")
    assert data["viewer"] == {"role": "VIEWER", "account": {"name": "Acme MSP"}}
    body = await viewer.execute("{ apiKeys { prefix } }")
    assert body["errors"][0]["extensions"] == {
        "code": "PERMISSION_DENIED",
        "requiredRole": "ADMINISTRATOR",
    }


async def test_administrators_manage_users_and_keys(
    admin: GraphQLClient, http: httpx.AsyncClient
) -> None:
    created = await admin.data(
        """mutation { createUser(input: {email: "Tech@MSP.test", role: EDITOR, name: "Tech"}) {
             user { id email role } errors { code } } }"""
    )
    user = created["createUser"]["user"]
    assert user["email"] == "tech@msp.test"
    duplicate = await admin.data(
        """mutation { createUser(input: {email: "tech@msp.test", role: VIEWER}) {
             errors { code field } } }"""
    )
    assert duplicate["createUser"]["errors"] == [{"code": "DUPLICATE", "field": "email"}]

    issued = await admin.data(
        """mutation($user: ID!) { createApiKey(input: {userId: $user, name: "laptop"}) {
             key apiKey { id prefix user { email } } errors { code } } }""",
        {"user": user["id"]},
    )
    key = issued["createApiKey"]["key"]
    assert key.startswith(issued["createApiKey"]["apiKey"]["prefix"])
    tech = GraphQLClient(http, key)
    assert (await tech.data("{ viewer { role } }"))["viewer"]["role"] == "EDITOR"

    listed = await admin.data("{ apiKeys { prefix user { email } revokedAt } }")
    assert {"prefix": key[:12], "user": {"email": "tech@msp.test"}, "revokedAt": None} in listed[
        "apiKeys"
    ]
    assert key not in str(listed)  # only the prefix, never the key

    await admin.data(
        "mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { revokedAt } } }",
        {"id": issued["createApiKey"]["apiKey"]["id"]},
    )
    assert (await tech.post("{ viewer { role } }")).status_code == 401


async def test_the_last_administrator_keeps_the_role(admin: GraphQLClient) -> None:
    me = await admin.data("{ viewer { user { id } } }")
    data = await admin.data(
        """mutation($id: ID!) { updateUserRole(userId: $id, role: VIEWER) {
             user { role } errors { code } } }""",
        {"id": me["viewer"]["user"]["id"]},
    )
    assert data["updateUserRole"] == {"user": None, "errors": [{"code": "LAST_ADMINISTRATOR"}]}
