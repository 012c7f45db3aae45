"""A trailing slash on a ConnectWise path is served as the path without one, for every route.

Real sites tolerate it (django-connectwise requests ``company/configurations/``), and the
simulator rewrites the path rather than redirecting, so a write keeps its body.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from simulator_access import API_ROOT, AUTHORIZATION, CREDENTIALS

from simulators.connectwise import ConnectWiseSimulator, ConnectWiseStore, serve_in_thread
from simulators.connectwise.schema import RESOURCES

VOLATILE = {"x-cw-request-id", "date"}


def same_answer(a: httpx.Response, b: httpx.Response) -> None:
    assert (a.status_code, a.content) == (b.status_code, b.content)
    headers_a = {k: v for k, v in a.headers.items() if k not in VOLATILE}
    headers_b = {k: v for k, v in b.headers.items() if k not in VOLATILE}
    assert headers_a == headers_b


def collection_path(store: ConnectWiseStore, name: str) -> str:
    resource = RESOURCES[name]
    if not resource.parent:
        return resource.path
    parent = next(iter(store.table(name).parent_of.values()))
    return resource.path.replace("{parent}", str(parent))


READABLE = [name for name in RESOURCES if name != "callbacks"]


@pytest.mark.parametrize("name", READABLE)
async def test_reads_with_a_trailing_slash_answer_as_without(
    api: httpx.AsyncClient, store: ConnectWiseStore, name: str
) -> None:
    collection = collection_path(store, name)
    record_id = next(iter(store.table(name).rows))
    for path in (collection, f"{collection}/count", f"{collection}/{record_id}"):
        params = {"pageSize": "2", "page": "2"} if path == collection else {}
        plain = await api.get(path, params=params)
        slashed = await api.get(path + "/", params=params)
        assert plain.status_code == 200, (path, plain.text)
        same_answer(plain, slashed)


async def test_system_info_and_a_double_slash_with_a_trailing_one(api: httpx.AsyncClient) -> None:
    same_answer(await api.get("system/info"), await api.get("system/info/"))
    same_answer(await api.get("company/companies"), await api.get("company//companies//"))


def new_company(identifier: str) -> dict[str, Any]:
    return {"identifier": identifier, "name": "Slash Inc", "addressLine1": "1 Main St"}


async def test_writes_with_a_trailing_slash_are_applied_without_redirect(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    created = await api.post("company/companies/", json=new_company("Slash"))
    assert created.status_code == 201, created.text
    company_id = created.json()["id"]
    assert created.json()["identifier"] == "Slash"

    patch = [{"op": "replace", "path": "name", "value": "Patched"}]
    patched = await api.patch(f"company/companies/{company_id}/", json=patch)
    assert (patched.status_code, patched.json()["name"]) == (200, "Patched")

    replaced = await api.put(f"company/companies/{company_id}/", json=new_company("Slash2"))
    assert (replaced.status_code, replaced.json()["identifier"]) == (200, "Slash2")

    site = {"name": "Annex", "addressLine1": "2 Side St"}
    site_answer = await api.post(f"company/companies/{company_id}/sites/", json=site)
    assert site_answer.status_code == 201, site_answer.text

    deleted = await api.delete(f"company/companies/{company_id}/")
    assert deleted.status_code == 204
    assert (await api.get(f"company/companies/{company_id}/")).status_code == 404

    # Inactive and registered last: no delivery may outlive the test.
    callback = {"url": "http://hook.test/cw?recordId=", "objectId": 1, "type": "company"}
    registered = await api.post(
        "system/callbacks/", json={**callback, "level": "owner", "inactiveFlag": True}
    )
    assert registered.status_code == 201, registered.text


async def test_unknown_paths_with_a_trailing_slash_are_still_unknown(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("company/nonsense/")
    assert response.status_code == 404
    assert response.json() == {"code": "ConnectWiseApi", "message": "The endpoint does not exist."}


async def test_a_post_with_a_trailing_slash_over_real_http(store: ConnectWiseStore) -> None:
    simulator = ConnectWiseSimulator(store, credentials=CREDENTIALS)
    headers = {"Authorization": AUTHORIZATION}
    async with serve_in_thread(simulator) as base_url:
        root = base_url + httpx.URL(API_ROOT).path
        async with httpx.AsyncClient(base_url=root, headers=headers) as client:
            response = await client.post("company/companies/", json=new_company("OverHttp"))
    assert response.status_code == 201, response.text
    assert response.json()["identifier"] == "OverHttp"
