"""The query-cost budget: GitHub's node count, refused before anything runs."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse, validate
from harness import GraphQLClient

from api.graphql import pagination
from api.graphql.cost import COST_CODE, DEFAULT_LIST_ESTIMATE, LIST_ESTIMATES, MAX_COST, cost_rule
from api.graphql.pagination import DEFAULT_PAGE
from api.graphql.schema import schema


def cost_of(query: str, variables: dict[str, Any] | None = None, limit: int = 0) -> int:
    """The cost the rule reports, read from its refusal (a limit of 0 refuses anything)."""
    rule = cost_rule(limit, variables, None)
    errors = validate(schema._schema, parse(query), [rule])
    if not errors:
        return 0
    (error,) = errors
    assert error.extensions is not None
    cost: int = error.extensions["cost"]
    return cost


def test_a_connection_costs_its_first() -> None:
    assert cost_of("{ organizations(first: 120) { nodes { id name } } }") == 120


def test_a_connection_without_first_costs_the_default_page() -> None:
    assert cost_of("{ organizations { edges { node { id } } } }") == DEFAULT_PAGE


def test_nested_lists_multiply_down_the_path() -> None:
    query = """{ organizations(first: 100) { edges { node {
      contacts(first: 20) { id organization { configurations(first: 5) { id } } } } } } }"""
    assert cost_of(query) == 100 + 100 * 20 + 100 * 20 * 5


def test_aliases_each_count() -> None:
    one = "a: organizations(first: 100) { nodes { contacts(first: 10) { id } } }"
    two = one + " " + one.replace("a:", "b:")
    assert cost_of("{" + one + "}") == 1_100
    assert cost_of("{" + two + "}") == 2_200


def test_fragments_count_where_they_are_spread() -> None:
    query = """
      query { organizations(first: 10) { nodes { ...Org } } more: organizations(first: 30) {
        nodes { ...Org } } }
      fragment Org on Organization { contacts(first: 4) { id } ... on Organization {
        locations(first: 2) { id } } }"""
    assert cost_of(query) == 10 + 10 * 6 + 30 + 30 * 6


def test_first_from_a_variable_or_its_default() -> None:
    query = "query($n: Int = 70) { organizations(first: $n) { nodes { id } } }"
    assert cost_of(query) == 70
    assert cost_of(query, {"n": 400}) == 400


def test_plain_lists_count_their_estimate_and_scalar_lists_nothing() -> None:
    assert cost_of("{ integrations { id bookmarks { kind } } }") == (
        LIST_ESTIMATES["Query.integrations"] * (1 + LIST_ESTIMATES["Integration.bookmarks"])
    )
    assert cost_of("{ contacts(first: 10) { nodes { emails { value } } } }") == 10 + 10 * 5
    # Payload errors: unlisted object lists count the default estimate.
    assert cost_of('mutation { deleteOrganization(id: "x") { errors { message } } }') == (
        DEFAULT_LIST_ESTIMATE
    )


def test_introspection_is_free() -> None:
    assert cost_of("{ __schema { types { name fields { name args { name } } } } }") == 0


def test_a_fragment_bomb_is_priced_without_expanding_it() -> None:
    levels = 40  # 2**40 spreads if expanded
    fragments = [
        f"fragment F{i} on Organization {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    ]
    fragments.append(f"fragment F{levels} on Organization {{ contacts(first: 1) {{ id }} }}")
    query = "{ organizations(first: 1) { nodes { ...F0 } } }\n" + "\n".join(fragments)
    assert cost_of(query) == 1 + 2**levels


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every page read from the database (pagination.fetch), to show nothing ran."""
    calls: list[object] = []
    real = pagination.fetch

    async def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await real(*args, **kwargs)

    monkeypatch.setattr(pagination, "fetch", spy)
    return calls


def _pages(per_org: int) -> str:
    return f"{{ organizations(first: 500) {{ nodes {{ contacts(first: {per_org}) {{ id }} }} }} }}"


async def test_a_query_over_the_budget_is_refused_with_its_cost_and_nothing_runs(
    admin: GraphQLClient, fetches: list[object]
) -> None:
    per_org = (MAX_COST - 500) // 500 + 1
    body = await admin.execute(_pages(per_org))
    assert body["data"] is None
    (error,) = body["errors"]
    cost = 500 + 500 * per_org
    assert error["extensions"] == {"code": COST_CODE, "cost": cost, "limit": MAX_COST}
    assert f"{cost:,}" in error["message"]
    assert f"{MAX_COST:,}" in error["message"]
    assert fetches == []


async def test_a_query_just_under_the_budget_runs(
    admin: GraphQLClient, fetches: list[object]
) -> None:
    per_org = (MAX_COST - 500) // 500
    assert 500 + 500 * per_org <= MAX_COST
    data = await admin.data(_pages(per_org))
    assert data["organizations"]["nodes"] == []
    assert fetches


async def test_the_budget_holds_over_graphql_response_json_as_a_400(
    admin: GraphQLClient,
) -> None:
    response = await admin.post(_pages(100), Accept="application/graphql-response+json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == COST_CODE
