"""Hostile text at the edge: every text input of every mutation, and every text argument of
every query, found by walking the schema, is refused naming its field when it holds a NUL, a
lone surrogate, a control character or too much text, and nothing is written; valid text in
any script is stored and read back exactly. Both backends alike (PostgreSQL cannot store a
NUL, neither can store a lone surrogate)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
)
from graphql.pyutils import Undefined
from harness import GraphQLClient, runner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tortoise import Tortoise

from api.graphql.ids import to_global
from api.graphql.schema import schema
from api.graphql.text import TextCheck
from models import Account, Contact, Organization

TEXT_SCALARS = {"String", "ID", "JSON"}


# -- the schema's text inputs -----------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """One place a field takes text: the argument, then input fields and list indexes."""

    root: str  # Mutation or Query
    field: str
    steps: tuple[str | int, ...]

    @property
    def path(self) -> str:
        """The path an answer names: camelCase, ``[0]`` for list items, ``input.`` dropped."""
        steps = self.steps[1:] if self.steps[0] == "input" else self.steps
        text = ""
        for step in steps:
            text += f"[{step}]" if isinstance(step, int) else f".{step}" if text else step
        return text

    def __str__(self) -> str:
        return f"{self.field}:{self.path}"


def _object(name: str) -> GraphQLObjectType:
    found = schema._schema.type_map[name]
    assert isinstance(found, GraphQLObjectType)
    return found


def _bare(type_: Any) -> Any:
    return type_.of_type if isinstance(type_, GraphQLNonNull) else type_


def _text_steps(type_: GraphQLInputType) -> Iterator[tuple[str | int, ...]]:
    bare = _bare(type_)
    if isinstance(bare, GraphQLList):
        for rest in _text_steps(bare.of_type):
            yield (0, *rest)
    elif isinstance(bare, GraphQLInputObjectType):
        for name, field in bare.fields.items():
            for rest in _text_steps(field.type):
                yield (name, *rest)
    elif isinstance(bare, GraphQLScalarType) and bare.name in TEXT_SCALARS:
        yield ()


def positions(root: str) -> list[Position]:
    found = []
    for name, field in _object(root).fields.items():
        for argument, arg in field.args.items():
            for steps in _text_steps(arg.type):
                found.append(Position(root, name, (argument, *steps)))
    return found


MUTATION_TEXT = positions("Mutation")
QUERY_TEXT = positions("Query")
ALL_TEXT = MUTATION_TEXT + QUERY_TEXT

_SCALARS: dict[str, Any] = {
    "String": "x",
    "ID": to_global("Organization", "00000000-0000-4000-8000-000000000000"),
    "JSON": "x",
    "Boolean": False,
    "Int": 0,
    "DateTime": "2024-01-01T00:00:00+00:00",
}


def filler(type_: GraphQLInputType) -> Any:
    """A value of ``type_`` with its required parts filled, valid as GraphQL."""
    bare = _bare(type_)
    if isinstance(bare, GraphQLList):
        return []
    if isinstance(bare, GraphQLInputObjectType):
        return {name: filler(f.type) for name, f in bare.fields.items() if _required(f)}
    if isinstance(bare, GraphQLEnumType):
        return next(iter(bare.values))
    return _SCALARS[bare.name]


def _required(field: Any) -> bool:
    return isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined


def _placed(type_: GraphQLInputType, current: Any, steps: tuple[str | int, ...], value: str) -> Any:
    if not steps:
        return value
    bare = _bare(type_)
    if isinstance(bare, GraphQLList):
        return [_placed(bare.of_type, filler(bare.of_type), steps[1:], value)]
    assert isinstance(bare, GraphQLInputObjectType)
    obj = dict(current) if isinstance(current, dict) else filler(bare)
    name = steps[0]
    assert isinstance(name, str)
    obj[name] = _placed(bare.fields[name].type, obj.get(name), steps[1:], value)
    return obj


def operation(position: Position, value: str) -> tuple[str, dict[str, Any]]:
    """A document calling the position's field with ``value`` there (every required argument
    given), and its variables."""
    field = _object(position.root).fields[position.field]
    variables: dict[str, Any] = {
        name: filler(arg.type) for name, arg in field.args.items() if _required(arg)
    }
    first = position.steps[0]
    assert isinstance(first, str)
    arg_type = field.args[first].type
    variables[first] = _placed(arg_type, variables.get(first), position.steps[1:], value)
    declared = ", ".join(f"${name}: {field.args[name].type}" for name in variables)
    passed = ", ".join(f"{name}: ${name}" for name in variables)
    selection = "errors { code field message }" if position.root == "Mutation" else "__typename"
    keyword = "mutation" if position.root == "Mutation" else "query"
    return (
        f"{keyword}({declared}) {{ {position.field}({passed}) {{ {selection} }} }}",
        variables,
    )


async def send(client: GraphQLClient, document: str, variables: dict[str, Any]) -> Any:
    """Post as a client would; ASCII JSON so that a lone surrogate travels as ``"\\ud800"``."""
    response = await client.http.post(
        "/graphql",
        content=json.dumps({"query": document, "variables": variables}),
        headers={"Authorization": f"Bearer {client.key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def assert_refused(position: Position, body: Any) -> None:
    """The answer names the position's field as bad input, and nothing else went wrong."""
    if position.root == "Mutation":
        assert not body.get("errors"), body["errors"]
        errors = body["data"][position.field]["errors"]
        assert [(e["code"], e["field"]) for e in errors] == [("INVALID_INPUT", position.path)]
        assert position.path in errors[0]["message"]
    else:
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        assert error["extensions"]["field"] == position.path


async def row_counts() -> dict[str, int]:
    counts = {}
    for app in Tortoise.apps.values():
        for name, model in app.items():
            counts[name] = await model.all().count()
    return counts


OPTIONS = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)

# -- text strategies --------------------------------------------------------------------------

# Any character a database stores and every field accepts.
PLAIN = st.characters(exclude_categories=("Cs", "Cc"))
SOME = st.text(PLAIN, max_size=12)


def _within(bad: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(SOME, bad, SOME).map("".join)


NUL = _within(st.just("\x00"))
SURROGATE = _within(st.characters(categories=["Cs"]))
# Refused in every field, multi-line ones too (those allow only tab, line feed, return).
CONTROL = _within(st.characters(categories=["Cc"]).filter(lambda c: c not in "\t\n\r\x00"))
# Past every cap (the longest, multi-line text, is 65,535 characters); from the BMP, so that
# the request (each character escaped in ASCII JSON) stays well under the body limit.
BMP = st.characters(exclude_categories=("Cs", "Cc"), max_codepoint=0xFFFF)
TOO_LONG = st.tuples(st.text(BMP, min_size=1, max_size=3), st.integers(65_536, 67_000)).map(
    lambda pair: (pair[0] * pair[1])[: pair[1]]
)
HOSTILE = st.one_of(NUL, SURROGATE, CONTROL, TOO_LONG)
SINGLE_LINE = st.text(PLAIN, min_size=1, max_size=100).map(str.strip).filter(bool)
MULTI_LINE = (
    st.text(st.one_of(PLAIN, st.sampled_from("\t\n\r")), min_size=1, max_size=400)
    .map(str.strip)
    .filter(bool)
)


# -- every text input, from the schema --------------------------------------------------------


def test_the_schema_walk_finds_every_mutation_and_the_query_text_arguments() -> None:
    mutations = {p.field for p in MUTATION_TEXT}
    assert mutations == set(_object("Mutation").fields)
    paths = {str(p) for p in ALL_TEXT}
    assert {
        "createIntegration:connectwise.privateKey",
        "importDirectoryContacts:contacts[0].email",
        "createContact:emails[0].value",
        "resolveConflict:value",
        "contacts:filter.search",
        "organizations:after",
    } <= paths


def test_every_field_anywhere_that_takes_text_checks_it() -> None:
    """Nested fields too (history(field:), runs(after:)): a field added without the check
    fails here."""
    unchecked = []
    for type_name, type_ in schema._schema.type_map.items():
        fields = getattr(type_, "fields", None)
        if type_name.startswith("__") or isinstance(type_, GraphQLInputObjectType) or not fields:
            continue
        for name, field in fields.items():
            if not any(next(_text_steps(a.type), None) is not None for a in field.args.values()):
                continue
            definition = field.extensions.get("strawberry-definition")
            if definition is None or not any(
                isinstance(e, TextCheck) for e in definition.extensions
            ):
                unchecked.append(f"{type_name}.{name}")
    # The subscription's runId is only decoded as an id: bad text is BAD_USER_INPUT there.
    assert unchecked in ([], ["Subscription.syncRunProgress"]), unchecked


@pytest.mark.parametrize("field", sorted({p.field for p in ALL_TEXT}), ids=lambda name: str(name))
async def test_a_nul_or_a_lone_surrogate_in_any_text_input_is_refused_naming_it(
    admin: GraphQLClient, account: Account, field: str
) -> None:
    await Organization.create(account=account, name="Acme")
    before = await row_counts()
    for position in (p for p in ALL_TEXT if p.field == field):
        for bad in ("a\x00b", "a\ud800b"):
            assert_refused(position, await send(admin, *operation(position, bad)))
    assert await row_counts() == before


async def test_hostile_text_anywhere_is_refused_and_writes_nothing(
    admin: GraphQLClient, account: Account
) -> None:
    await Organization.create(account=account, name="Acme")
    before = await row_counts()
    run = runner(asyncio.get_running_loop())

    @settings(OPTIONS, max_examples=60)
    @given(position=st.sampled_from(ALL_TEXT), bad=HOSTILE)
    def refused(position: Position, bad: str) -> None:
        assert_refused(position, run(send(admin, *operation(position, bad))))

    await asyncio.to_thread(refused)
    assert await row_counts() == before


# -- where the check matters most -------------------------------------------------------------

CREATE_ORGANIZATION = """mutation($input: OrganizationFields!) { createOrganization(input: $input) {
    organization { id name shortName description } errors { code field message } } }"""


@pytest.mark.parametrize("bad", ["Acme\x00", "Acme\ud800", "Acme\nCorp", "Acme\x1b[31m", "A" * 256])
async def test_an_organization_name_that_cannot_be_stored_as_given_is_refused(
    admin: GraphQLClient, bad: str
) -> None:
    body = await send(admin, CREATE_ORGANIZATION, {"input": {"name": bad}})
    errors = body["data"]["createOrganization"]["errors"]
    assert [(e["code"], e["field"]) for e in errors] == [("INVALID_INPUT", "name")]
    assert await Organization.all().count() == 0


async def test_lines_and_tabs_are_kept_in_a_description_and_refused_in_a_name(
    admin: GraphQLClient,
) -> None:
    description = "Line one\n\tindented\r\nlast"
    kept = await admin.data(
        CREATE_ORGANIZATION, {"input": {"name": "Acme", "description": description}}
    )
    assert kept["createOrganization"]["organization"]["description"] == description
    refused = await admin.data(CREATE_ORGANIZATION, {"input": {"name": "Acme\tCorp"}})
    assert refused["createOrganization"]["errors"][0]["field"] == "name"
    assert await Organization.all().count() == 1


async def test_a_name_as_long_as_its_column_is_stored_one_longer_is_refused(
    admin: GraphQLClient,
) -> None:
    longest = "é" * 255  # the column's max_length, in characters, on both backends
    stored = await admin.data(CREATE_ORGANIZATION, {"input": {"name": longest}})
    assert stored["createOrganization"]["organization"]["name"] == longest
    refused = await admin.data(CREATE_ORGANIZATION, {"input": {"name": longest + "é"}})
    (error,) = refused["createOrganization"]["errors"]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", "name")
    assert "255" in error["message"]


async def test_valid_text_in_any_script_is_stored_and_read_back_exactly(
    admin: GraphQLClient,
) -> None:
    run = runner(asyncio.get_running_loop())
    read = """query($id: ID!, $search: String!) {
      node(id: $id) { ... on Organization { name shortName description } }
      organizations(filter: {search: $search}, first: 500) { nodes { id } } }"""

    @settings(OPTIONS, max_examples=15)
    @given(name=SINGLE_LINE, short=SINGLE_LINE, description=MULTI_LINE)
    def round_trip(name: str, short: str, description: str) -> None:
        given = {"name": name, "shortName": short, "description": description}
        created = run(admin.data(CREATE_ORGANIZATION, {"input": given}))
        organization = created["createOrganization"]["organization"]
        assert organization is not None, created
        back = run(admin.data(read, {"id": organization["id"], "search": name}))
        assert back["node"] == {k: v for k, v in given.items()}
        assert organization["id"] in {n["id"] for n in back["organizations"]["nodes"]}

    await asyncio.to_thread(round_trip)


# -- queries ----------------------------------------------------------------------------------


async def test_a_search_of_a_megabyte_is_refused_naming_it(admin: GraphQLClient) -> None:
    query = "query($s: String) { contacts(filter: {search: $s}) { totalCount } }"
    body = await admin.execute(query, {"s": "x" * 1_000_000})
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "filter.search"}
    assert "200" in error["message"]
    found = await admin.data(query, {"s": "x" * 200})
    assert found["contacts"]["totalCount"] == 0


async def test_a_nested_field_refuses_bad_text_too(admin: GraphQLClient, account: Account) -> None:
    organization = await Organization.create(account=account, name="Acme")
    body = await send(
        admin,
        """query($id: ID!) { node(id: $id) { ... on Organization {
             history(field: "name\\u0000") { field } } } }""",
        {"id": to_global("Organization", organization.id)},
    )
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "field"}


# -- importDirectoryContacts: all or nothing --------------------------------------------------

IMPORT = """mutation($org: ID!, $contacts: [DirectoryContactInput!]!) {
  importDirectoryContacts(organizationId: $org, contacts: $contacts) {
    created errors { code field } } }"""


def _people(count: int) -> list[dict[str, str]]:
    return [
        {"firstName": f"Person{i}", "lastName": "Lee", "email": f"p{i}@acme.test"}
        for i in range(count)
    ]


async def test_one_bad_contact_among_many_imports_none(
    admin: GraphQLClient, account: Account
) -> None:
    organization = await Organization.create(account=account, name="Acme")
    org_id = to_global("Organization", organization.id)
    run = runner(asyncio.get_running_loop())

    @settings(OPTIONS, max_examples=10)
    @given(
        index=st.integers(0, 19),
        field=st.sampled_from(["firstName", "lastName", "email", "phone", "title"]),
        bad=HOSTILE,
    )
    def none_written(index: int, field: str, bad: str) -> None:
        people = _people(20)
        people[index][field] = bad
        body = run(send(admin, IMPORT, {"org": org_id, "contacts": people}))
        answer = body["data"]["importDirectoryContacts"]
        assert answer["created"] == 0
        assert answer["errors"] == [
            {"code": "INVALID_INPUT", "field": f"contacts[{index}].{field}"}
        ]
        assert run(Contact.all().count()) == 0

    await asyncio.to_thread(none_written)


async def test_a_contact_refused_by_the_edit_rules_mid_import_rolls_back_the_others(
    admin: GraphQLClient, account: Account
) -> None:
    organization = await Organization.create(account=account, name="Acme")
    people = _people(5)
    people[3]["phone"] = "   "  # passes the text check; refused as it is written (no value)
    body = await admin.data(
        IMPORT, {"org": to_global("Organization", organization.id), "contacts": people}
    )
    assert body["importDirectoryContacts"]["errors"] == [{"code": "REQUIRED", "field": "phones"}]
    assert await Contact.all().count() == 0
    fine = await admin.data(
        IMPORT, {"org": to_global("Organization", organization.id), "contacts": _people(5)}
    )
    assert fine["importDirectoryContacts"]["created"] == 5
