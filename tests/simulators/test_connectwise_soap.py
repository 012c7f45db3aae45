"""The simulator's legacy SOAP API, checked with zeep against ConnectWise's REAL WSDLs.

zeep parses every answer against ConnectWise's own schema (strict mode), so a misplaced, missing
or mistyped element fails here. The simulator runs on a loopback port; zeep (blocking) is called
in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import zeep
import zeep.exceptions
from simulator_access import CREDENTIALS

from simulators.connectwise import ConnectWiseSimulator, ConnectWiseStore, serve_in_thread
from simulators.connectwise.soap import IntegratorLogin

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "connectwise-soap"
LOGIN = IntegratorLogin("soap-login", "soap-secret")
GOOD = {"CompanyId": "acme", "IntegratorLoginId": "soap-login", "IntegratorPassword": "soap-secret"}

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference not found")


@pytest.fixture
async def base_url(store: ConnectWiseStore) -> AsyncIterator[str]:
    simulator = ConnectWiseSimulator(store, credentials=CREDENTIALS, integrator=LOGIN)
    async with serve_in_thread(simulator) as url:
        yield url


def _service(base_url: str, name: str) -> Any:
    client = zeep.Client(str(REFERENCE / f"{name}Api.wsdl"), settings=zeep.Settings(strict=True))
    address = f"{base_url}/v4_6_release/apis/1.5/{name}Api.asmx"
    return client.create_service(f"{{http://connectwise.com}}{name}ApiSoap", address)


async def _call(fn: Callable[..., Any], **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, credentials=GOOD, **kwargs)


async def test_company_operations_round_trip_through_rest(
    base_url: str, store: ConnectWiseStore
) -> None:
    svc = _service(base_url, "Company")
    rows = await _call(svc.FindCompanies, conditions="", orderBy="CompanyName", limit=5, skip=0)
    assert len(rows) == 5
    assert rows[0].CompanyRecID > 0
    assert [r.CompanyName for r in rows] == sorted(r.CompanyName for r in rows)
    first = store.find("companies")[0]
    got = await _call(svc.GetCompany, id=first["id"])
    assert got.CompanyID == first["identifier"]
    assert got.Id == first["id"]
    assert got.DefaultAddress.City == first["city"]
    assert got.Addresses.CompanyAddress

    new = {
        "CompanyName": "Soap Made Ltd",
        "CompanyID": "SoapMade",
        "PhoneNumber": "555-0100",
        "Id": 0,
        "Status": "Active",
        "Type": "Client",
        "DefaultAddress": {"City": "Austin", "Id": 0, "DefaultFlag": True, "CompanyRecid": 0},
        "DefaultContactId": None,
        "DefaultBillingContactId": None,
        "LastUpdate": None,
    }
    added = await _call(svc.AddCompany, company=new)
    assert store.get("companies", added.Id)["identifier"] == "SoapMade"  # type: ignore[index]
    assert added.LastUpdate is not None
    upserted = await _call(svc.AddOrUpdateCompany, company={**new, "CompanyID": "SoapTwo"})
    assert upserted.Id != added.Id

    # Update replaces the whole record: the phone number left out is cleared.
    await _call(svc.UpdateCompany, company={**new, "Id": added.Id, "PhoneNumber": None})
    assert "phoneNumber" not in store.get("companies", added.Id)  # type: ignore[operator]
    await _call(svc.AddOrUpdateCompany, company={**new, "Id": added.Id, "CompanyName": "Renamed"})
    assert store.get("companies", added.Id)["name"] == "Renamed"  # type: ignore[index]

    found = await _call(
        svc.FindCompanies, conditions="CompanyID = 'SoapMade'", orderBy=None, limit=None, skip=None
    )
    assert [r.CompanyRecID for r in found] == [added.Id]
    await _call(svc.DeleteCompany, id=added.Id)
    assert store.get("companies", added.Id)["deletedFlag"] is True  # type: ignore[index]
    with pytest.raises(zeep.exceptions.Fault, match="not found"):
        await _call(svc.GetCompany, id=added.Id)


async def test_find_pages_stably_and_limit_zero_returns_nothing(base_url: str) -> None:
    svc = _service(base_url, "Company")
    everything = await _call(
        svc.FindCompanies, conditions=None, orderBy=None, limit=None, skip=None
    )
    pages = []
    for skip in range(0, len(everything), 7):
        pages += await _call(svc.FindCompanies, conditions=None, orderBy=None, limit=7, skip=skip)
    assert [r.CompanyRecID for r in pages] == [r.CompanyRecID for r in everything]
    # zeep reads an empty ArrayOfCompanyFindResult as None
    assert not await _call(svc.FindCompanies, conditions=None, orderBy=None, limit=0, skip=0)


async def test_last_update_condition_takes_a_bracketed_datetime(
    base_url: str, store: ConnectWiseStore
) -> None:
    svc = _service(base_url, "Company")
    target = store.find("companies")[3]
    store.update("companies", target["id"], {"name": "Touched"})
    stamp = store.get("companies", target["id"])["_info"]["lastUpdated"]  # type: ignore[index]
    rows = await _call(
        svc.FindCompanies,
        conditions=f"LastUpdate >= [{stamp}]",
        orderBy=None,
        limit=None,
        skip=None,
    )
    assert [r.CompanyRecID for r in rows] == [target["id"]]


async def test_contact_operations(base_url: str, store: ConnectWiseStore) -> None:
    svc = _service(base_url, "Contact")
    company = store.find("companies")[0]
    count = await _call(svc.FindContactsCount, conditions=f"CompanyRecID = {company['id']}")
    assert count == store.count("contacts", f"company/id = {company['id']}")
    rows = await _call(
        svc.FindContacts,
        conditions="LastName like 'B%'",
        orderBy="LastName desc",
        limit=10,
        skip=0,
        marketingGroupFilter=None,
    )
    assert all(r.LastName.startswith("B") for r in rows)
    first = store.find("contacts")[0]
    got = await _call(svc.GetContact, id=first["id"])
    assert got.FirstName == first["firstName"]
    assert got.CompanyId == first["company"]["identifier"]
    contact = {
        "Id": 0,
        "ContactRecID": 0,
        "FirstName": "Sam",
        "LastName": "Soap",
        "Title": "CTO",
        "Email": "sam@example.com",
        "CompanyId": company["identifier"],
        "Gender": "Unspecified",
        "BirthDay": "2000-01-01T00:00:00",
        "Married": False,
        "Children": False,
        "Anniversary": "2000-01-01T00:00:00",
        "PortalSecurityLevel": 0,
        "DisablePortalLogin": False,
        "Inactive": False,
        "UnsubscribeFlag": False,
        "LastUpdate": "2000-01-01T00:00:00",
        "PersonalAddressFlag": False,
    }
    added = await _call(svc.AddOrUpdateContact, contact=contact)
    assert store.get("contacts", added.Id)["company"]["id"] == company["id"]  # type: ignore[index]
    updated = await _call(
        svc.AddOrUpdateContact, contact={**contact, "Id": added.Id, "Title": None}
    )
    assert updated.Title is None
    assert "title" not in store.get("contacts", added.Id)
    await _call(svc.DeleteContact, id=added.Id)
    assert store.get("contacts", added.Id) is None


async def test_configuration_operations(base_url: str, store: ConnectWiseStore) -> None:
    svc = _service(base_url, "Configuration")
    types = await _call(
        svc.FindConfigurationTypes, conditions=None, orderBy="Name", limit=100, skip=0
    )
    assert types
    assert types[0].Name
    company = store.find("companies")[0]
    rows = await _call(
        svc.FindConfigurations,
        conditions=f"CompanyId = {company['id']}",
        orderBy=None,
        limit=100,
        skip=0,
    )
    assert rows
    assert all(r.CompanyId == str(company["id"]) for r in rows)
    assert await _call(svc.FindConfigurationsCount, conditions=None, isOpen=None) == store.count(
        "configurations"
    )
    got = await _call(svc.GetConfiguration, id=rows[0].Id)
    assert got.ConfigurationName == rows[0].ConfigurationName
    new = {
        "Id": 0,
        "ConfigurationTypeId": types[0].Id,
        "ConfigurationName": "SOAP-PC",
        "CompanyId": company["id"],
        "SerialNumber": "SN-1",
    }
    nils = {
        n: None
        for n in (
            "StatusId",
            "ContactId",
            "OwnerLevelId",
            "BillingUnitId",
            "ManufacturerId",
            "PurchaseDate",
            "InstallationDate",
            "WarrantyExpiration",
            "LastUpdate",
            "AddressId",
            "BillFlag",
            "BackupSuccesses",
            "BackupIncomplete",
            "BackupFailed",
            "BackupRestores",
            "LastBackupDate",
            "BackupBillableSpaceGb",
            "BackupYear",
            "BackupMonth",
            "IsActive",
        )
    }
    added = await _call(svc.AddConfiguration, configuration={**nils, **new})
    assert store.get("configurations", added.Id)["serialNumber"] == "SN-1"  # type: ignore[index]
    await _call(
        svc.UpdateConfiguration, configuration={**nils, **new, "Id": added.Id, "SerialNumber": None}
    )
    assert "serialNumber" not in store.get("configurations", added.Id)  # type: ignore[operator]
    again = await _call(
        svc.AddOrUpdateConfiguration,
        configuration={**nils, **new, "Id": added.Id, "TagNumber": "T1"},
    )
    assert again.TagNumber == "T1"
    await _call(svc.DeleteConfiguration, id=added.Id)
    assert store.get("configurations", added.Id) is None


async def test_bad_credentials_are_a_soap_fault(base_url: str) -> None:
    svc = _service(base_url, "Company")
    bad = {**GOOD, "IntegratorPassword": "wrong"}
    with pytest.raises(zeep.exceptions.Fault, match=r"Username or password is incorrect\."):
        await asyncio.to_thread(svc.GetCompany, credentials=bad, id=250)
    with pytest.raises(zeep.exceptions.Fault, match="Cannot find company 'other'"):
        await asyncio.to_thread(svc.GetCompany, credentials={**GOOD, "CompanyId": "other"}, id=250)


async def test_malformed_xml_and_unknown_operations_are_faults(base_url: str) -> None:
    url = f"{base_url}/v4_6_release/apis/2.0/ConfigurationAPI.asmx"
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b"<GetConfiguration>&e;</GetConfiguration></soap:Body></soap:Envelope>"
    )
    async with httpx.AsyncClient() as client:
        for body, action in (
            (b"<soap:Envelope", ""),
            (xxe, ""),
            (b"<a/>", '"http://connectwise.com/Nope"'),
        ):
            answer = await client.post(url, content=body, headers={"SOAPAction": action})
            assert answer.status_code == 500
            assert b"<faultcode>soap:Client</faultcode>" in answer.content
            assert b"root:" not in answer.content


async def test_own_wsdl_loads_in_zeep_and_points_at_the_simulator(base_url: str) -> None:
    wsdl = f"{base_url}/v4_6_release/apis/1.5/ContactApi.asmx?wsdl"
    client = await asyncio.to_thread(zeep.Client, wsdl)
    assert client.service._binding_options["address"] == wsdl.removesuffix("?wsdl")
    count = await asyncio.to_thread(
        client.service.FindContactsCount, credentials=GOOD, conditions=""
    )
    assert count > 0


async def test_fault_injection_applies_to_soap(base_url: str) -> None:
    svc = _service(base_url, "Company")
    async with httpx.AsyncClient() as client:
        await client.post(f"{base_url}/__simulator/faults", json={"outage_status": 503})
        with pytest.raises((zeep.exceptions.Fault, zeep.exceptions.TransportError)):
            await _call(svc.GetCompany, id=250)
        await client.post(f"{base_url}/__simulator/faults", json={"outage_status": 429})
        url = f"{base_url}/v4_6_release/apis/1.5/CompanyApi.asmx"
        answer = await client.post(url, content=b"<x/>")
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == "1"
        state = (await client.delete(f"{base_url}/__simulator/faults")).json()
        assert state["traffic"]["rate_limited"] == 1
        assert state["traffic"]["server_errors"] == 1


def _untimed(record: Any) -> Any:
    """A store record without its ``_info`` stamps (every write changes them)."""
    if isinstance(record, dict):
        return {k: _untimed(v) for k, v in record.items() if k != "_info"}
    if isinstance(record, list):
        return [_untimed(v) for v in record]
    return record


async def test_update_company_writes_its_addresses_and_keeps_what_soap_cannot_show(
    base_url: str, store: ConnectWiseStore
) -> None:
    svc = _service(base_url, "Company")
    company = next(
        c for c in store.find("companies") if len(store.find("sites", parent_id=c["id"])) >= 3
    )
    parent = next(c for c in store.find("companies") if c["id"] != company["id"])
    store.update(
        "companies",
        company["id"],
        {"types": [{"name": "Client"}, {"name": "Vendor"}], "parentCompany": {"id": parent["id"]}},
    )
    before = store.get("companies", company["id"])
    sites = store.find("sites", parent_id=company["id"])
    got = await _call(svc.GetCompany, id=company["id"])
    edited = next(a for a in got.Addresses.CompanyAddress if a.Id == sites[1]["id"])
    edited.City = "Orlando"
    got.Addresses.CompanyAddress.append(
        {"City": "Tampa", "Id": 0, "DefaultFlag": False, "CompanyRecid": 0, "SiteName": "Annex"}
    )
    got.CompanyName = "Renamed Over SOAP"

    answer = await _call(svc.UpdateCompany, company=got)

    after = store.get("companies", company["id"])
    assert after is not None
    assert before is not None
    # The parent, primary site and second type SOAP does not show are kept.
    assert _untimed(after) == {**_untimed(before), "name": "Renamed Over SOAP"}
    now = {s["id"]: s for s in store.find("sites", parent_id=company["id"])}
    assert now[sites[1]["id"]]["city"] == "Orlando"
    # An address sent back as read leaves its site alone, stamps and all.
    assert now[sites[2]["id"]]["_info"] == sites[2]["_info"]
    [annex] = [s for s in now.values() if s["name"] == "Annex"]
    assert annex["city"] == "Tampa"
    assert {a.Id for a in answer.Addresses.CompanyAddress} == set(now)
    # Addresses left out altogether leave the sites as they are.
    got.Addresses = None
    await _call(svc.UpdateCompany, company=got)
    assert set(s["id"] for s in store.find("sites", parent_id=company["id"])) == set(now)


async def test_add_or_update_contact_changes_only_the_items_soap_shows(
    base_url: str, store: ConnectWiseStore
) -> None:
    svc = _service(base_url, "Contact")
    contact = next(c for c in store.find("contacts") if len(c.get("communicationItems")) >= 3)
    before = store.get("contacts", contact["id"])
    assert before is not None
    got = await _call(svc.GetContact, id=contact["id"])
    got.Title = "Office Manager"
    await _call(svc.AddOrUpdateContact, contact=got)
    after = store.get("contacts", contact["id"])
    assert _untimed(after) == {**_untimed(before), "title": "Office Manager"}

    got.Email = "changed@example.com"
    await _call(svc.AddOrUpdateContact, contact=got)
    items = (store.get("contacts", contact["id"]) or {})["communicationItems"]
    assert next(i["value"] for i in items if i["communicationType"] == "Email") == (
        "changed@example.com"
    )
    assert [i["id"] for i in items] == [i["id"] for i in before["communicationItems"]]


async def test_update_configuration_as_read_changes_nothing_but_what_was_edited(
    base_url: str, store: ConnectWiseStore
) -> None:
    svc = _service(base_url, "Configuration")
    config = next(c for c in store.find("configurations") if c.get("installedBy"))
    store.update("configurations", config["id"], {"notes": "keep"})
    before = store.get("configurations", config["id"])
    got = await _call(svc.GetConfiguration, id=config["id"])
    got.ConfigurationName = "Renamed-PC"
    answer = await _call(svc.UpdateConfiguration, configuration=got)
    assert answer.ConfigurationName == "Renamed-PC"
    assert _untimed(store.get("configurations", config["id"])) == {
        **_untimed(before),
        "name": "Renamed-PC",
    }
