"""The one GraphQL operation a request without an API key may run: ``acceptInvitation``.

A person accepting an invitation has no key yet. The view lets a keyless POST through only
when its document is exactly one mutation whose only root field is ``acceptInvitation``
(no other operation or fragment in the document), and only while the client's address is
under ``AddressLimit``. Anything else without a key is still a 401.

The limit is a small in-process sliding window per client address (``scope["client"]``:
behind a proxy, the proxy's address unless uvicorn is told to trust its headers); a process
restart forgets it, and several processes each keep their own. Tokens hold 256 random bits,
so the limit is about sparing the database, not about guessing.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse

GUEST_FIELD = "acceptInvitation"
# Far above an invitation's needs, far below a guessing loop.
GUEST_ATTEMPTS = 10
GUEST_WINDOW_SECONDS = 60.0
_MAX_QUERY = 4_096  # an acceptInvitation document is a few hundred characters
_MAX_ADDRESSES = 10_000


def is_guest_operation(body: bytes) -> bool:
    """True when a POST body is a lone ``acceptInvitation`` mutation (nothing else)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return False
    if not isinstance(payload, dict):
        return False
    query = payload.get("query")
    if not isinstance(query, str) or len(query) > _MAX_QUERY:
        return False
    try:
        document = parse(query, max_tokens=500)
    except GraphQLError:
        return False
    if len(document.definitions) != 1:
        return False
    operation = document.definitions[0]
    if not isinstance(operation, OperationDefinitionNode):
        return False
    if operation.operation != OperationType.MUTATION or operation.directives:
        return False
    selections = operation.selection_set.selections
    return (
        len(selections) == 1
        and isinstance(selections[0], FieldNode)
        and selections[0].name.value == GUEST_FIELD
        and not selections[0].directives
    )


class AddressLimit:
    """At most ``attempts`` per ``window`` seconds per client address (sliding window)."""

    def __init__(
        self,
        attempts: int = GUEST_ATTEMPTS,
        window: float = GUEST_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window = window
        self._clock = clock
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def take(self, address: str) -> float | None:
        """Count an attempt: None when allowed, else the seconds until the next one is."""
        now = self._clock()
        times = self._seen.pop(address, None) or deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        self._seen[address] = times  # most recent last
        while len(self._seen) > _MAX_ADDRESSES:
            self._seen.popitem(last=False)
        if len(times) >= self.attempts:
            return max(self.window - (now - times[0]), 1.0)
        times.append(now)
        return None
