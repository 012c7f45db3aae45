"""The REST resources below ``/{codebase}/apis/3.0/``: lists, counts, items and writes.

Each handler receives a `Call` (the request already authenticated by the gate in `app.py`) and
returns JSON plus the status and headers ConnectWise would send. Handlers are synchronous: the
store is in memory, and a 1000-row page renders in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from simulators.bodies import load_json
from simulators.connectwise.errors import BadRequest, EndpointNotFound
from simulators.connectwise.paging import forward_link, navigable_links, page_request
from simulators.connectwise.query import Projection, build_query, parse_fields
from simulators.connectwise.render import Renderer
from simulators.connectwise.schema import RESOURCES, Resource
from simulators.connectwise.store import ConnectWiseStore


@dataclass
class Call:
    """One authenticated API request."""

    request: Request
    params: dict[str, str]  # query parameters by lower-cased name (ConnectWise ignores case)
    api_base: str  # http://host:port/v2025_1/apis/3.0, for hrefs
    member: str  # identifier of the API member making the call
    body: Any = None  # parsed JSON body of writes


@dataclass
class Reply:
    """A handler's answer; `body` None means no content."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def parse_body(raw: bytes) -> Any:
    try:
        return load_json(raw)
    except ValueError as error:
        raise BadRequest(f"The request body is not valid JSON: {error}.") from None


class ResourceHandlers:
    """Generic handlers for every resource in `schema.RESOURCES`."""

    def __init__(self, store: ConnectWiseStore) -> None:
        self.store = store

    def list_records(self, call: Call, resource: Resource, parent_id: int | None) -> Reply:
        store, params = self.store, call.params
        query = build_query(
            resource,
            params.get("conditions", ""),
            params.get("childconditions", ""),
            params.get("orderby", ""),
            params.get("customfieldconditions", ""),
        )
        paging = page_request(params, call.request.headers)
        projection = parse_fields(resource, params.get("fields", ""))
        url = str(call.request.url.replace(query=""))
        query_items = call.request.query_params.multi_items()
        with store.lock:
            renderer = Renderer(store, call.api_base)
            headers: dict[str, str] = {}
            if paging.forward_only:
                rows, more = store.scan_after(
                    resource.name, query, paging.page_id, paging.page_size, parent_id
                )
                if more:
                    headers["Link"] = forward_link(url, query_items, paging.page_size, rows[-1][0])
            else:
                ids = store.select(resource.name, query, parent_id)
                start = (paging.page - 1) * paging.page_size
                table = store.table(resource.name).rows
                rows = [table[i] for i in ids[start : start + paging.page_size]]
                link = navigable_links(url, query_items, paging.page, paging.page_size, len(ids))
                if link:
                    headers["Link"] = link
            body = [renderer.record(resource, row, projection) for row in rows]
        return Reply(body, headers=headers)

    def count(self, call: Call, resource: Resource, parent_id: int | None) -> Reply:
        params = call.params
        query = build_query(
            resource,
            params.get("conditions", ""),
            params.get("childconditions", ""),
            custom_field_conditions=params.get("customfieldconditions", ""),
        )
        return Reply({"count": len(self.store.select(resource.name, query, parent_id))})

    def read(self, call: Call, resource: Resource, record_id: int, parent_id: int | None) -> Reply:
        with self.store.lock:
            row = self.store.live_row(resource.name, record_id, parent_id)
            return Reply(self._render(call, resource, row[0]))

    def create(self, call: Call, resource: Resource, parent_id: int | None) -> Reply:
        if not isinstance(call.body, dict):
            raise BadRequest(f"The request body must be a JSON {resource.noun} object.")
        with self.store.lock:
            record = self.store.create(
                resource.name, call.body, parent_id=parent_id, updated_by=call.member, via_api=True
            )
            return Reply(self._render(call, resource, record["id"]), status=201)

    def replace(
        self, call: Call, resource: Resource, record_id: int, parent_id: int | None
    ) -> Reply:
        if not isinstance(call.body, dict):
            raise BadRequest(f"The request body must be a JSON {resource.noun} object.")
        with self.store.lock:
            self.store.replace(
                resource.name,
                record_id,
                call.body,
                parent_id=parent_id,
                updated_by=call.member,
                via_api=True,
            )
            return Reply(self._render(call, resource, record_id))

    def patch(self, call: Call, resource: Resource, record_id: int, parent_id: int | None) -> Reply:
        with self.store.lock:
            self.store.patch(
                resource.name,
                record_id,
                call.body,
                parent_id=parent_id,
                updated_by=call.member,
                via_api=True,
            )
            return Reply(self._render(call, resource, record_id))

    def delete(
        self, call: Call, resource: Resource, record_id: int, parent_id: int | None
    ) -> Reply:
        self.store.delete(resource.name, record_id, parent_id=parent_id, updated_by=call.member)
        return Reply(None, status=204)

    def ticket_configurations(self, call: Call) -> Reply:
        """``GET service/tickets/{id}/configurations``: the configurations attached to a
        ticket as ConfigurationReference objects (id, deviceIdentifier, plus name and type,
        which the real answer carries too [assumed]), paged like any list."""
        if call.request.method != "GET":
            raise EndpointNotFound()
        store = self.store
        paging = page_request(call.params, call.request.headers)
        with store.lock:
            ids = store.ticket_configurations(call.request.path_params["id"])
            start = (paging.page - 1) * paging.page_size
            renderer = Renderer(store, call.api_base)
            table = store.table("configurations")
            slots = table.resource.index
            body = []
            for configuration_id in ids[start : start + paging.page_size]:
                row = table.rows[configuration_id]
                item: dict[str, Any] = {"id": configuration_id, "name": row[slots["name"]]}
                item["type"] = renderer.reference("configuration_types", row[slots["type"]])
                item["_info"] = {"configuration_href": renderer.href("configurations", row[0])}
                body.append(item)
        url = str(call.request.url.replace(query=""))
        link = navigable_links(
            url, call.request.query_params.multi_items(), paging.page, paging.page_size, len(ids)
        )
        return Reply(body, headers={"Link": link} if link else {})

    def _render(self, call: Call, resource: Resource, record_id: int) -> dict[str, Any]:
        projection: Projection | None = parse_fields(resource, call.params.get("fields", ""))
        row = self.store.table(resource.name).rows[record_id]
        return Renderer(self.store, call.api_base).record(resource, row, projection)


def dispatch(
    handlers: ResourceHandlers, call: Call, collection: str, method: str, path: dict[str, Any]
) -> Reply:
    """Route one request on a resource to the handler for `method` and the path's shape.

    `path` holds the Starlette path parameters: ``id`` for an item, ``parent`` for a nested
    collection, ``count`` when the path ends with ``/count``.
    """
    resource = RESOURCES[collection]
    parent_id: int | None = path.get("parent")
    record_id: int | None = path.get("id")
    writable = resource.writable
    if path.get("count"):
        if method == "GET":
            return handlers.count(call, resource, parent_id)
    elif record_id is None:
        if method == "GET":
            return handlers.list_records(call, resource, parent_id)
        if method == "POST" and writable:
            return handlers.create(call, resource, parent_id)
    elif method == "GET":
        return handlers.read(call, resource, record_id, parent_id)
    elif writable and method == "PUT":
        return handlers.replace(call, resource, record_id, parent_id)
    elif writable and method == "PATCH":
        return handlers.patch(call, resource, record_id, parent_id)
    elif writable and method == "DELETE":
        return handlers.delete(call, resource, record_id, parent_id)
    raise EndpointNotFound()
