"""Request bodies and GraphQL documents are bounded before they cost anything: size (413),
query text, variables' shape, and JSON we cannot use (400, never a 500)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from harness import GraphQLClient
from starlette.applications import Starlette

from api.app import create_app
from api.graphql.schema import MAX_QUERY_BYTES
from api.graphql.view import MAX_JSON_DEPTH, MAX_JSON_VALUES
from api.limits import MAX_BODY_BYTES, Limits
from api.settings import Settings


def _headers(client: GraphQLClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.key}", "Content-Type": "application/json"}


async def test_a_body_over_the_limit_is_a_413_from_its_content_length(
    admin: GraphQLClient,
) -> None:
    padding = "#" * MAX_BODY_BYTES
    response = await admin.post(padding + "\n{ viewer { role } }")
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert response.headers["connection"] == "close"


async def test_a_chunked_body_over_the_limit_is_a_413(admin: GraphQLClient) -> None:
    chunk = b" " * 64 * 1024

    async def body() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
            yield chunk

    response = await admin.http.post("/graphql", content=body(), headers=_headers(admin))
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


async def test_webhooks_have_the_same_body_limit(admin: GraphQLClient) -> None:
    response = await admin.http.post(
        "/webhooks/connectwise/00000000-0000-0000-0000-000000000000",
        content=b"{" + b" " * MAX_BODY_BYTES + b"}",
    )
    assert response.status_code == 413


async def test_a_comment_padded_query_is_refused_before_parsing(admin: GraphQLClient) -> None:
    # Comments are not tokens: only the text's own limit sees them.
    query = "#" + "x" * MAX_QUERY_BYTES + "\n{ viewer { role } }"
    body = await admin.execute(query)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_LARGE"


async def test_variables_with_too_many_values_are_a_400(admin: GraphQLClient) -> None:
    variables = {"ids": list(range(MAX_JSON_VALUES + 1))}
    response = await admin.post("query($ids: [ID!]) { viewer { role } }", variables)
    assert response.status_code == 400
    assert f"{MAX_JSON_VALUES:,} values" in response.text


async def test_variables_larger_than_the_body_limit_are_a_413(admin: GraphQLClient) -> None:
    variables = {"name": "x" * MAX_BODY_BYTES}
    response = await admin.post("query($name: String) { viewer { role } }", variables)
    assert response.status_code == 413


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 200_000])
async def test_deeply_nested_json_in_variables_is_a_400(admin: GraphQLClient, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    raw = '{"query": "{ viewer { role } }", "variables": {"deep": ' + nested + "}}"
    response = await admin.http.post("/graphql", content=raw, headers=_headers(admin))
    assert response.status_code == 400
    assert "nested deeper" in response.text


async def test_invalid_utf8_is_a_400(admin: GraphQLClient) -> None:
    raw = b'{"query": "{ viewer { role } }", "variables": {"x": "\xff\xfe"}}'
    response = await admin.http.post("/graphql", content=raw, headers=_headers(admin))
    assert response.status_code == 400
    assert "UTF-8" in response.text


async def test_a_huge_integer_is_a_400(admin: GraphQLClient) -> None:
    raw = '{"query": "{ viewer { role } }", "variables": {"n": ' + "9" * 5000 + "}}"
    response = await admin.http.post("/graphql", content=raw, headers=_headers(admin))
    assert response.status_code == 400


async def test_batches_are_refused(admin: GraphQLClient) -> None:
    batch = [{"query": "{ viewer { role } }"}] * 2
    response = await admin.http.post("/graphql", content=json.dumps(batch), headers=_headers(admin))
    assert response.status_code == 400


@pytest.fixture
def slow_app(db: str, secret_key: str) -> Starlette:
    settings = Settings(
        database_url=db, secret_keys=(secret_key,), host="127.0.0.1", port=0, demo="off",
        demo_port=0, worker=False, log_level="info", allow_sandbox=True,
    )  # fmt: skip
    return create_app(settings, manage_database=False, limits=Limits(body_deadline=0.3))


async def test_a_body_trickled_past_the_deadline_is_a_408(
    slow_app: Starlette, admin: GraphQLClient
) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"query": '
        for _ in range(50):
            await asyncio.sleep(0.05)
            yield b" "

    transport = httpx.ASGITransport(app=slow_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://psasync.test") as http:
        response = await http.post("/graphql", content=trickle(), headers=_headers(admin))
    assert response.status_code == 408
    assert response.headers["connection"] == "close"
