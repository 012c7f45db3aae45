"""The root schema: queries, mutations by domain, the subscription, and the API's limits."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import strawberry
from graphql import GraphQLError, parse
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.tools import merge_types
from strawberry.types.graphql import OperationType

from api.graphql.cost import MAX_COST, QueryCostLimiter
from api.graphql.mutations.access import AccessMutations
from api.graphql.mutations.assets import AssetMutations
from api.graphql.mutations.integrations import IntegrationMutations
from api.graphql.mutations.invitations import InvitationMutations
from api.graphql.mutations.two_way import TwoWayMutations
from api.graphql.mutations.webhooks import WebhookMutations
from api.graphql.permissions import PublicError
from api.graphql.queries import Query
from api.graphql.subscriptions import Subscription
from api.graphql.types.assets import Configuration, Contact, Location, Organization
from api.graphql.types.integration import Integration
from api.graphql.types.sync_run import SyncRun
from api.graphql.types.two_way import SyncConflict
from api.graphql.types.webhooks import WebhookDelivery

log = logging.getLogger("psasync.api")

# Deep enough for GraphiQL's introspection query (ofType nests about 8 levels in its
# fragments); far too shallow for a query that walks relations in circles.
MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 4000
# The token limit skips comments and whitespace: bound the text itself, before it is parsed.
MAX_QUERY_BYTES = 100 * 1024


class QueryTextLimiter(SchemaExtension):
    """Refuses a document longer than ``MAX_QUERY_BYTES`` characters before parsing it (HTTP
    and WebSocket alike): 20 MB of comments took the parser 5 s."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query or ""
        if len(query) > MAX_QUERY_BYTES:
            # Raising here escapes Strawberry's WebSocket path; an error set before parsing
            # is answered like a validation error on every path. The stand-in document only
            # spares the parser: with an error already set, nothing validates or runs.
            context.graphql_document = _STAND_IN
            context.pre_execution_errors = [
                GraphQLError(
                    f"The query is {len(query):,} characters long; "
                    f"the limit is {MAX_QUERY_BYTES:,}.",
                    extensions={"code": "QUERY_TOO_LARGE", "limit": MAX_QUERY_BYTES},
                )
            ]
        yield


_STAND_IN = parse("{ __typename }")


class MaskUnexpected(MaskErrors):
    """Our own errors and GraphQL's validation errors go out as they are; anything else is a
    bug, logged with the request id, which the client also gets to quote."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=self._unexpected)

    @staticmethod
    def _unexpected(error: GraphQLError) -> bool:
        original = error.original_error
        return original is not None and not isinstance(original, (PublicError, GraphQLError))

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = getattr(self.execution_context.context, "request_id", None)
        log.error(
            "unexpected error in %s (request %s)",
            ".".join(map(str, error.path or ())) or "operation",
            request_id,
            exc_info=error.original_error,
        )
        return GraphQLError(
            message=f"Unexpected error (request id {request_id}).",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )


class OneQueryAtATime(SchemaExtension):
    """Queries execute one at a time per process: two of the heaviest the cost budget allows,
    executing at once, doubled how long every webhook answer waited (their reads queue on
    SQLite's one connection ahead of the receiver's insert; bench/webhook_receiver.py
    --busy-api). Mutations are left out: some wait on a PSA (a connection check), and the API
    must not stall behind a slow PSA."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        gate = getattr(context, "query_gate", None)
        if gate is None or self.execution_context.operation_type != OperationType.QUERY:
            yield
            return
        async with gate:
            yield


Mutation = merge_types(
    "Mutation",
    (
        IntegrationMutations,
        TwoWayMutations,
        WebhookMutations,
        AssetMutations,
        AccessMutations,
        InvitationMutations,
    ),
)

schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[
        Organization,
        Location,
        Contact,
        Configuration,
        Integration,
        SyncRun,
        SyncConflict,
        WebhookDelivery,
    ],
    extensions=[
        MaskUnexpected,
        QueryTextLimiter,
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: QueryCostLimiter(max_cost=MAX_COST),
        OneQueryAtATime,
    ],
)
