"""Queries execute one at a time per process (webhook answers stay fast while GraphQL is
busy); mutations never wait for that turn, since some wait on a PSA themselves."""

from __future__ import annotations

import asyncio

from harness import GraphQLClient
from starlette.applications import Starlette
from starlette.routing import Route

from api.graphql.view import GraphQLApp

RETRY = 'mutation { retryPush(linkId: "not-an-id") { errors { code field } } }'
VIEWER = "query { viewer { role } }"


def graphql_of(app: Starlette) -> GraphQLApp:
    for route in app.routes:
        if isinstance(route, Route) and isinstance(route.endpoint, GraphQLApp):
            return route.endpoint
    raise AssertionError("no GraphQL route")


async def test_a_mutation_runs_while_a_query_holds_the_turn(
    app: Starlette, admin: GraphQLClient
) -> None:
    gate = graphql_of(app).gate
    await gate.acquire()  # a heavy query executing
    try:
        query = asyncio.ensure_future(admin.data(VIEWER))
        mutation = await asyncio.wait_for(admin.data(RETRY), timeout=60)
        assert mutation["retryPush"]["errors"][0]["code"] == "INVALID_ID"
        # Given every chance to finish (a mutation's worth of round trips and more), the
        # query is still waiting for its turn.
        await asyncio.wait({query}, timeout=0.5)
        assert not query.done()
    finally:
        gate.release()
    assert (await asyncio.wait_for(query, timeout=60))["viewer"]["role"] == "ADMINISTRATOR"
