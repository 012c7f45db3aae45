"""ConnectWise's two paging styles and their ``Link`` headers.

Navigable (default): ``page`` (1-based) and ``pageSize`` (default 25, at most 1000; larger
values are clamped). The ``Link`` header carries absolute ``first``/``prev``/``next``/``last``
URLs, leaving out those that do not apply (no ``first``/``prev`` on page 1, no ``next``/``last``
on the last page), with ``page`` as the final query parameter as ConnectWise writes it.

Forward-only: request header ``pagination-type: forward-only`` and ``pageId`` = the last id
seen; rows with a larger id come back by id; ``page`` is ignored and ``orderBy`` refused. The
``Link`` header has a ``next`` URL with the page's last id while more rows exist.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from simulators.connectwise.errors import BadRequest

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 1000
_PAGING_PARAMS = ("page", "pagesize", "pageid")


@dataclass(frozen=True)
class PageRequest:
    page: int
    page_size: int
    forward_only: bool
    page_id: int


def page_request(params: Mapping[str, str], headers: Mapping[str, str]) -> PageRequest:
    """Read paging from query `params` (keys lower-cased) and request `headers`."""
    page_size = min(_positive(params, "pagesize", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
    forward_only = headers.get("pagination-type", "").strip().lower() == "forward-only"
    if forward_only and params.get("orderby", "").strip():
        raise BadRequest("orderBy is not supported with forward-only pagination.")
    page_id = _positive(params, "pageid", 0, minimum=0)
    return PageRequest(_positive(params, "page", 1), page_size, forward_only, page_id)


def _positive(params: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    raw = params.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"The {name} parameter must be an integer, not '{raw}'.") from None
    if value < minimum:
        raise BadRequest(f"The {name} parameter must be at least {minimum}.")
    return value


def navigable_links(
    url: str, query: Sequence[tuple[str, str]], page: int, page_size: int, total: int
) -> str | None:
    """The ``Link`` header for `page` of `total` rows, or None when there is a single page."""
    last = max(1, math.ceil(total / page_size))
    links = []
    if page > 1:
        links.append((1, "first"))
        links.append((min(page - 1, last), "prev"))
    if page < last:
        links.append((page + 1, "next"))
        links.append((last, "last"))
    kept = _without_paging(query)
    parts = []
    for number, rel in links:
        params = urlencode([*kept, ("pageSize", str(page_size)), ("page", str(number))])
        parts.append(f'<{url}?{params}>; rel="{rel}"')
    return ", ".join(parts) or None


def forward_link(url: str, query: Sequence[tuple[str, str]], page_size: int, last_id: int) -> str:
    """The ``Link`` header pointing at the forward-only page after `last_id`."""
    params = [*_without_paging(query), ("pageSize", str(page_size)), ("pageId", str(last_id))]
    return f'<{url}?{urlencode(params)}>; rel="next"'


def _without_paging(query: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in query if k.lower() not in _PAGING_PARAMS]
