"""The GraphQL examples in the README are valid against the schema a user meets."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import DocumentNode, parse, validate

from api.graphql.schema import schema

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_graphql_example_in_the_readme_validates_against_the_schema() -> None:
    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    checked = 0
    for block in blocks:
        for definition in parse(block).definitions:
            errors = validate(schema._schema, DocumentNode(definitions=(definition,)))
            assert not errors, f"{errors}\n{block}"
            checked += 1
    assert checked >= 10


def test_every_graphql_example_in_the_readme_fits_the_cost_budget() -> None:
    from api.graphql.cost import MAX_COST, cost_rule

    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(), re.S)
    costs = []
    for block in blocks:
        for definition in parse(block).definitions:
            # A limit of 0 makes the rule report every operation's cost.
            errors = validate(
                schema._schema, DocumentNode(definitions=(definition,)), [cost_rule(0, {}, None)]
            )
            costs.append(errors[0].extensions["cost"] if errors and errors[0].extensions else 0)
    assert costs
    assert max(costs) <= MAX_COST, costs
