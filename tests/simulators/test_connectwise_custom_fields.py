"""``customFieldConditions``: the conditions grammar over a record's ``customFields`` entries.

psa-apis.md §1.3 documents ``customFieldConditions=caption="TomNumber" AND value != null``: a
record matches when one of its entries satisfies the whole expression. A malformed one is a 400
with ConnectWise's body, as for ``conditions``, never silently ignored.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from simulators.connectwise import ConnectWiseStore

TOM = {"id": 7, "caption": "TomNumber", "type": "Text", "entryMethod": "EntryField"}
SEATS = {"id": 8, "caption": "Seats", "type": "Number", "numberOfDecimals": 0}
RENEWAL = {"id": 9, "caption": "Renewal", "type": "Date", "entryMethod": "Date"}
MANAGED = {"id": 10, "caption": "Managed", "type": "Checkbox", "entryMethod": "EntryField"}


def entry(definition: dict[str, Any], value: Any) -> dict[str, Any]:
    return {**definition, "value": value}


async def create(api: httpx.AsyncClient, identifier: str, fields: list[dict[str, Any]]) -> int:
    body = {"identifier": identifier, "name": identifier, "addressLine1": "1 Main St"}
    response = await api.post("company/companies", json={**body, "customFields": fields})
    assert response.status_code == 201, response.text
    # Nulls are left out, as everywhere in ConnectWise's JSON.
    sent = [{k: v for k, v in f.items() if v is not None} for f in fields]
    assert response.json()["customFields"] == sent
    return int(response.json()["id"])


@pytest.fixture
async def companies(api: httpx.AsyncClient) -> dict[str, int]:
    return {
        "tom": await create(
            api,
            "Tom",
            [
                entry(TOM, "T-100"),
                entry(SEATS, 12),
                entry(RENEWAL, "2026-01-31T00:00:00Z"),
                entry(MANAGED, True),
            ],
        ),
        "blank": await create(api, "Blank", [entry(TOM, None), entry(SEATS, 3)]),
        # The same value under another caption must not satisfy caption="TomNumber".
        "other": await create(api, "Other", [entry(SEATS, "T-100")]),
    }


async def selected(api: httpx.AsyncClient, conditions: str) -> list[str]:
    params = {"customFieldConditions": conditions, "fields": "identifier", "pageSize": "1000"}
    response = await api.get("company/companies", params=params)
    assert response.status_code == 200, response.text
    count = await api.get("company/companies/count", params={"customFieldConditions": conditions})
    assert count.json() == {"count": len(response.json())}
    return sorted(c["identifier"] for c in response.json())


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ('caption="TomNumber" AND value != null', ["Tom"]),
        ('caption="TomNumber" AND value = null', ["Blank"]),
        ('caption = "tomnumber" and value = "t-100"', ["Tom"]),
        ('value = "T-100"', ["Other", "Tom"]),
        ('caption="Seats" AND value > 10', ["Tom"]),
        ('caption="Seats" AND value in (3, 12)', ["Blank", "Tom"]),
        # A string literal only compares with string values: 12 and 3 are numbers.
        ('caption="Seats" AND value > "10"', ["Other"]),
        ('caption="TomNumber" AND value like "T-1%"', ["Tom"]),
        ('caption="TomNumber" AND value not contains "x"', ["Tom"]),
        ('caption="Renewal" AND value > [2026-01-01T00:00:00Z]', ["Tom"]),
        ('caption="Managed" AND value = true', ["Tom"]),
        (
            '(caption="Seats" and value < 5) or (caption="Managed" and value = true)',
            ["Blank", "Tom"],
        ),
        ("id = 8", ["Blank", "Other", "Tom"]),
    ],
)
async def test_custom_field_conditions_select_by_one_entry(
    api: httpx.AsyncClient, companies: dict[str, int], conditions: str, expected: list[str]
) -> None:
    assert await selected(api, conditions) == expected


async def test_custom_field_conditions_combine_with_conditions(
    api: httpx.AsyncClient, companies: dict[str, int]
) -> None:
    params = {
        "conditions": 'identifier != "Tom"',
        "customFieldConditions": 'caption="Seats"',
        "fields": "identifier",
    }
    response = await api.get("company/companies", params=params)
    assert sorted(c["identifier"] for c in response.json()) == ["Blank", "Other"]


@pytest.mark.parametrize(
    "conditions",
    [
        "caption=",
        'caption="TomNumber" AND',
        'caption="TomNumber" value="x"',
        'nonsense = "x"',
        'caption = 5 AND value = "x"',
        'caption="Seats" AND value > true',
        "value = [not a date]",
        "caption = 'unterminated",
        "id = 1x",
        "value in ()",
        "caption/name = 'x'",
    ],
)
async def test_malformed_custom_field_conditions_are_400(
    api: httpx.AsyncClient, conditions: str
) -> None:
    for path in ("company/companies", "company/companies/count"):
        response = await api.get(path, params={"customFieldConditions": conditions})
        assert response.status_code == 400, (path, response.text)
        body = response.json()
        assert body["code"] == "InvalidObject"
        assert isinstance(body["message"], str)


async def test_custom_field_conditions_work_on_contacts_and_configurations(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    for collection in ("contacts", "configurations"):
        record_id = int(store.find(collection)[0]["id"])
        store.update(collection, record_id, {"customFields": [entry(TOM, "T-7")]})
        params = {"customFieldConditions": 'caption="TomNumber" and value="T-7"'}
        response = await api.get(f"company/{collection}", params=params)
        assert [r["id"] for r in response.json()] == [record_id]


async def test_records_without_custom_fields_leave_the_array_out(
    api: httpx.AsyncClient, store: ConnectWiseStore
) -> None:
    company_id = int(store.find("companies")[0]["id"])
    record = (await api.get(f"company/companies/{company_id}")).json()
    assert "customFields" not in record
    assert await selected(api, 'caption="TomNumber"') == []


async def test_custom_fields_are_replaced_whole_and_patched_by_index(
    api: httpx.AsyncClient, companies: dict[str, int]
) -> None:
    path = f"company/companies/{companies['tom']}"
    patch = [{"op": "replace", "path": "customFields/0/value", "value": "T-200"}]
    patched = (await api.patch(path, json=patch)).json()
    assert patched["customFields"][0] == entry(TOM, "T-200")
    assert await selected(api, 'caption="TomNumber" and value="T-200"') == ["Tom"]

    cleared = await api.patch(path, json=[{"op": "replace", "path": "customFields", "value": []}])
    assert "customFields" not in cleared.json()


@pytest.mark.parametrize(
    "fields",
    [[{"caption": "No id", "value": "x"}], [{"id": 1, "value": {"nested": True}}], "text"],
)
async def test_invalid_custom_fields_are_refused(api: httpx.AsyncClient, fields: Any) -> None:
    body = {"identifier": "Bad", "name": "Bad", "addressLine1": "1 Main St", "customFields": fields}
    response = await api.post("company/companies", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "InvalidObject"
