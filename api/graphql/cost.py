"""The query-cost budget: how many nodes an operation may ask for, counted before it runs.

The rule is GitHub's "node limit": a connection asks for ``first`` nodes (its default page size
when ``first`` is absent), and a connection inside another asks for the product of the
``first`` values down its path. The operation's cost is the sum over every connection in it,
aliases and fragments included. Our plain list fields count the same way: their own ``first``
when they have one, else an estimate of how long they get (``LIST_ESTIMATES``). Lists of
scalars add no nodes; ``edges``/``nodes``/``node`` inside a connection are the connection's own
nodes, counted once. Introspection (``__schema``, ``__type``) is free: it is static.

Worked example (``MAX_COST`` is the budget)::

    organizations(first: 100) {            100
      nodes { contacts(first: 20) {        100 x 20 = 2,000
        emails { address } } } }           2,000 x 5 = 10,000   -> cost 12,100

No library fits: graphql-core and Strawberry have depth, alias and token limits only, and the
cost analysers on PyPI are either abandoned or weight fields by directives in the schema. The
rule is a small graphql-core ``ValidationRule`` built per operation, so it sees the request's
variables (``first: $n``) and runs for HTTP and WebSocket subscriptions alike.

Cost is linear in the multiplier above a selection, so each fragment is costed once per
document (a "fragment bomb" that spreads one fragment 2^n times costs n steps to price).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_interface_type,
    is_list_type,
    is_object_type,
    is_union_type,
    value_from_ast_untyped,
)
from graphql.pyutils import Undefined
from strawberry.extensions import SchemaExtension

from api.graphql.pagination import DEFAULT_PAGE

# Set by the busy-API benchmark (bench/webhook_receiver.py --busy-api): two clients sending
# the heaviest query this allows still leave webhook answers within 1 s at p99. It fits every
# query in the README with room to spare; see docs/architecture.md.
MAX_COST = 2_000

# How long a plain list without a ``first`` argument gets, by ``Type.field``. Unlisted object
# lists count DEFAULT_LIST_ESTIMATE.
LIST_ESTIMATES: Mapping[str, int] = {
    "Query.integrations": 20,  # integrations of one account
    "Query.users": 50,
    "Query.apiKeys": 50,
    "Organization.psaLinks": 2,  # one link per integration holding the record
    "Location.psaLinks": 2,
    "Contact.psaLinks": 2,
    "Configuration.psaLinks": 2,
    "Contact.emails": 5,
    "Contact.phones": 5,
    "Integration.bookmarks": 4,  # one per asset kind
    "IntegrationSettings.organizationTypes": 50,  # a PSA's reference values
    "IntegrationSettings.organizationStatuses": 50,
    "IntegrationSettings.configurationTypes": 50,
    "IntegrationSettings.configurationStatuses": 50,
    "IntegrationSettings.contactTypes": 50,
    "IntegrationWebhooks.subscriptions": 5,
    "TwoWaySettings.kinds": 4,
    "TwoWaySettings.fields": 50,
    "SyncRun.errors": 10,  # error groups: one per code
    "ImportDirectoryContactsPayload.contacts": 100,  # as many as the mutation's bounded input
}
DEFAULT_LIST_ESTIMATE = 10
# A connection's edges/nodes/node are the nodes the connection already counted.
_CONNECTION_PARTS = frozenset({"edges", "nodes"})

COST_CODE = "QUERY_TOO_COSTLY"


def _is_connection(type_: GraphQLNamedType) -> bool:
    return (
        isinstance(type_, GraphQLObjectType)
        and type_.name.endswith("Connection")
        and "edges" in type_.fields
    )


class _Pricer:
    """Prices one operation against the schema, with the request's variables."""

    def __init__(
        self,
        context: ValidationContext,
        variables: Mapping[str, Any],
        defaults: Mapping[str, Any],
    ) -> None:
        self.schema = context.schema
        self.variables = variables
        self.defaults = defaults  # the operation's variable defaults
        self.fragments = {
            d.name.value: d
            for d in context.document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }
        self.fragment_costs: dict[str, int] = {}
        self.pricing: set[str] = set()  # fragments being priced (cycles are invalid anyway)

    def selection_cost(
        self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType
    ) -> int:
        """The nodes one instance of ``parent`` asks for through ``selection_set``."""
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field_cost(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection_cost(selection.selection_set, inner or parent)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment_cost(selection.name.value)
        return total

    def fragment_cost(self, name: str) -> int:
        if name in self.fragment_costs:
            return self.fragment_costs[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.pricing:
            return 0
        self.pricing.add(name)
        on = self.schema.get_type(fragment.type_condition.name.value)
        cost = self.selection_cost(fragment.selection_set, on) if on else 0
        self.pricing.discard(name)
        self.fragment_costs[name] = cost
        return cost

    def field_cost(self, node: FieldNode, parent: GraphQLNamedType) -> int:
        name = node.name.value
        if name.startswith("__") or not (is_object_type(parent) or is_interface_type(parent)):
            return 0
        field: GraphQLField | None = parent.fields.get(name)
        if field is None:
            return 0  # unknown fields are another rule's error
        named = get_named_type(field.type)
        inner = self.selection_cost(node.selection_set, named)
        if _is_connection(parent) and name in _CONNECTION_PARTS:
            return inner
        if _is_connection(named):
            count = self.first(node, field)
        elif is_list_type(get_nullable_type(field.type)) and (
            is_object_type(named) or is_interface_type(named) or is_union_type(named)
        ):
            if "first" in field.args:
                count = self.first(node, field)
            else:
                key = f"{parent.name}.{name}"
                count = LIST_ESTIMATES.get(key, DEFAULT_LIST_ESTIMATE)
        else:
            return inner  # one object (or a scalar): its own lists count below it
        return count + count * inner

    def first(self, node: FieldNode, field: GraphQLField) -> int:
        """The ``first`` the field will run with: given, from a variable, or the default."""
        value: Any = Undefined
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            given = argument.value
            if isinstance(given, IntValueNode):
                value = int(given.value)
            elif isinstance(given, VariableNode):
                var = given.name.value
                value = self.variables.get(var, self.defaults.get(var, Undefined))
        if value is Undefined or value is None:
            value = field.args["first"].default_value
        if isinstance(value, bool) or not isinstance(value, int):
            return DEFAULT_PAGE  # not an Int: coercion refuses it before anything runs
        return max(0, value)


def _defaults(operation: OperationDefinitionNode) -> dict[str, Any]:
    return {
        d.variable.name.value: value_from_ast_untyped(d.default_value)
        for d in operation.variable_definitions or ()
        if d.default_value is not None
    }


def _operation(
    context: ValidationContext, operation_name: str | None
) -> OperationDefinitionNode | None:
    operations = [d for d in context.document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    named = (o for o in operations if o.name and o.name.value == operation_name)
    return next(named, None)


def operation_cost(
    context: ValidationContext,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None = None,
) -> int:
    """The nodes ``operation`` asks for (see the module docstring)."""
    root = context.schema.get_root_type(operation.operation)
    if root is None:
        return 0
    pricer = _Pricer(context, variables or {}, _defaults(operation))
    return pricer.selection_cost(operation.selection_set, root)


def cost_rule(
    max_cost: int, variables: Mapping[str, Any] | None, operation_name: str | None
) -> type[ASTValidationRule]:
    """A validation rule refusing the operation that would run if it costs over ``max_cost``."""

    class QueryCostRule(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            operation = _operation(context, operation_name)
            if operation is None:
                return  # no single operation to run: graphql-core says why
            cost = operation_cost(context, operation, variables)
            if cost > max_cost:
                context.report_error(
                    GraphQLError(
                        f"Query cost {cost:,} exceeds the limit of {max_cost:,} nodes: ask for "
                        "smaller pages (first) or fewer nested lists, and page through them.",
                        operation,
                        extensions={"code": COST_CODE, "cost": cost, "limit": max_cost},
                    )
                )

    return QueryCostRule


class QueryCostLimiter(SchemaExtension):
    """Adds the cost rule, bound to this request's variables and operation, to validation."""

    def __init__(self, max_cost: int = MAX_COST) -> None:
        self.max_cost = max_cost

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        rule = cost_rule(self.max_cost, context.variables, context.operation_name)
        context.validation_rules = (*context.validation_rules, rule)
        yield
