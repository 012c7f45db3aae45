"""Store records (REST-shaped dicts) to the SOAP types and back.

Reads: ``Company.CompanyID`` is the REST ``identifier``, ``Id`` the REST id; ``Type`` and
``Status`` are names; ``DefaultAddress`` is the company's own address (with its primary site's
id and name) and ``Addresses`` its sites. Writes build a complete REST document, so an element
a SOAP ``Update*`` leaves out is cleared, as ConnectWise's own ``Update*`` operations do.
"""

from __future__ import annotations

from typing import Any

from simulators.connectwise.store import ConnectWiseStore

Record = dict[str, Any]


def _name(ref: Any) -> Any:
    return ref.get("name") if isinstance(ref, dict) else None


def _id(ref: Any) -> Any:
    return ref.get("id") if isinstance(ref, dict) else None


def _lines(*lines: Any) -> dict[str, list[Any]] | None:
    present = [line for line in lines if line]
    return {"string": present} if present else None


def _info(record: Record, key: str) -> Any:
    return record.get("_info", {}).get(key)


# ------------------------------------------------------------------------------ companies


def company(store: ConnectWiseStore, record: Record) -> Record:
    sites = store.find("sites", parent_id=record["id"])
    primary = _id(record.get("site"))
    default_site = next((s for s in sites if s["id"] == primary), None)
    default = {
        "StreetLines": _lines(record.get("addressLine1"), record.get("addressLine2")),
        "City": record.get("city"),
        "State": record.get("state"),
        "Zip": record.get("zip"),
        "Country": _name(record.get("country")),
        "Id": primary or 0,
        "DefaultFlag": True,
        "CompanyRecid": record["id"],
        "SiteName": None if default_site is None else default_site["name"],
    }
    return {
        "DefaultAddress": default,
        "Addresses": {"CompanyAddress": [_site(record["id"], s, primary) for s in sites]},
        "CompanyName": record.get("name"),
        "CompanyID": record.get("identifier"),
        "PhoneNumber": record.get("phoneNumber"),
        "FaxNumber": record.get("faxNumber"),
        "WebSite": record.get("website"),
        "Id": record["id"],
        "Type": _name((record.get("types") or [None])[0]),
        "Status": _name(record.get("status")),
        "AccountNbr": record.get("accountNumber"),
        "DefaultContactId": _id(record.get("defaultContact")),
        "DefaultBillingContactId": None,
        "LastUpdate": _info(record, "lastUpdated"),
    }


def _site(company_id: int, site: Record, primary: int | None) -> Record:
    return {
        "StreetLines": _lines(site.get("addressLine1"), site.get("addressLine2")),
        "City": site.get("city"),
        "State": (site.get("stateReference") or {}).get("identifier"),
        "Zip": site.get("zip"),
        "Country": _name(site.get("country")),
        "Id": site["id"],
        "DefaultFlag": site["id"] == primary,
        "CompanyRecid": company_id,
        "SiteName": site.get("name"),
    }


def company_found(store: ConnectWiseStore, record: Record) -> Record:
    return {
        "CompanyRecID": record["id"],
        "CompanyName": record.get("name"),
        "CompanyID": record.get("identifier"),
        "PhoneNumber": record.get("phoneNumber"),
        "AddressLine1": record.get("addressLine1"),
        "AddressLine2": record.get("addressLine2"),
        "City": record.get("city"),
        "State": record.get("state"),
        "Zip": record.get("zip"),
        "Country": _name(record.get("country")),
        "Type": _name((record.get("types") or [None])[0]),
        "Status": _name(record.get("status")),
        "Website": record.get("website"),
    }


def company_document(value: Record) -> Record:
    """The REST document of a SOAP Company (Addresses are read-only here: sites are REST's)."""
    address = value.get("DefaultAddress") or {}
    lines = (address.get("StreetLines") or {}).get("string") or []
    document: Record = {
        "identifier": value.get("CompanyID"),
        "name": value.get("CompanyName"),
        "phoneNumber": value.get("PhoneNumber"),
        "faxNumber": value.get("FaxNumber"),
        "website": value.get("WebSite"),
        "accountNumber": value.get("AccountNbr"),
        "addressLine1": lines[0] if lines else None,
        "addressLine2": lines[1] if len(lines) > 1 else None,
        "city": address.get("City"),
        "state": address.get("State"),
        "zip": address.get("Zip"),
    }
    if address.get("Country"):
        document["country"] = {"name": address["Country"]}
    if value.get("Status"):
        document["status"] = {"name": value["Status"]}
    if value.get("Type"):
        document["types"] = [{"name": value["Type"]}]
    if value.get("DefaultContactId"):
        document["defaultContact"] = {"id": value["DefaultContactId"]}
    return {k: v for k, v in document.items() if v is not None}


# ------------------------------------------------------------------------------- contacts


def _item(record: Record, kind: str) -> Any:
    items = [
        i for i in record.get("communicationItems") or () if i.get("communicationType") == kind
    ]
    chosen = next((i for i in items if i.get("defaultFlag")), items[0] if items else None)
    return None if chosen is None else chosen.get("value")


def contact(store: ConnectWiseStore, record: Record) -> Record:
    return {
        "Type": _name((record.get("types") or [None])[0]),
        "ContactRecID": record["id"],
        "Id": record["id"],
        "Phone": _item(record, "Phone"),
        "Fax": _item(record, "Fax"),
        "Email": _item(record, "Email"),
        "FirstName": record.get("firstName"),
        "LastName": record.get("lastName"),
        "Title": record.get("title"),
        "CompanyAddressInfo": {
            "AddressLine1": record.get("addressLine1"),
            "AddressLine2": record.get("addressLine2"),
            "City": record.get("city"),
            "State": record.get("state"),
            "Zip": record.get("zip"),
            "Country": _name(record.get("country")),
        },
        "CompanyId": (record.get("company") or {}).get("identifier"),
        "Inactive": bool(record.get("inactiveFlag")),
        "UnsubscribeFlag": bool(record.get("unsubscribeFlag")),
        "LastUpdate": _info(record, "lastUpdated"),
        "UpdatedBy": _info(record, "updatedBy"),
    }


def contact_found(store: ConnectWiseStore, record: Record) -> Record:
    found = contact(store, record)
    address = found.pop("CompanyAddressInfo")
    return {
        **found,
        **address,
        "CompanyName": _name(record.get("company")),
        "CompanyRecID": _id(record.get("company")) or 0,
        "DefaultFlag": bool(record.get("defaultFlag")),
    }


def contact_document(store: ConnectWiseStore, value: Record) -> Record:
    items = []
    for kind, type_name in (("Email", "Email"), ("Phone", "Direct"), ("Fax", "Fax")):
        if value.get(kind):
            items.append({"type": {"name": type_name}, "value": value[kind], "defaultFlag": True})
    address = value.get("CompanyAddressInfo") or {}
    document: Record = {
        "firstName": value.get("FirstName"),
        "lastName": value.get("LastName"),
        "title": value.get("Title"),
        "inactiveFlag": value.get("Inactive"),
        "unsubscribeFlag": value.get("UnsubscribeFlag"),
        "communicationItems": items,
        "addressLine1": address.get("AddressLine1"),
        "addressLine2": address.get("AddressLine2"),
        "city": address.get("City"),
        "state": address.get("State"),
        "zip": address.get("Zip"),
    }
    if value.get("CompanyId"):
        document["company"] = {"identifier": value["CompanyId"]}
    if value.get("Type"):
        document["types"] = [{"name": value["Type"]}]
    return {k: v for k, v in document.items() if v is not None}


# ------------------------------------------------------------------------- configurations


def configuration(store: ConnectWiseStore, record: Record) -> Record:
    return {
        "Id": record["id"],
        "ConfigurationTypeId": _id(record.get("type")) or 0,
        "ConfigurationType": _name(record.get("type")),
        "StatusId": _id(record.get("status")),
        "Status": _name(record.get("status")),
        "ConfigurationName": record.get("name"),
        "ContactName": _name(record.get("contact")),
        "CompanyName": _name(record.get("company")),
        "CompanyId": _id(record.get("company")),
        "ContactId": _id(record.get("contact")),
        "Manufacturer": _name(record.get("manufacturer")),
        "ManufacturerId": _id(record.get("manufacturer")),
        "SerialNumber": record.get("serialNumber"),
        "ModelNumber": record.get("modelNumber"),
        "TagNumber": record.get("tagNumber"),
        "PurchaseDate": record.get("purchaseDate"),
        "InstallationDate": record.get("installationDate"),
        "InstalledBy": (record.get("installedBy") or {}).get("identifier"),
        "WarrantyExpiration": record.get("warrantyExpirationDate"),
        "LastUpdate": _info(record, "lastUpdated"),
        "UpdatedBy": _info(record, "updatedBy"),
        "AddressId": _id(record.get("site")),
        "Notes": record.get("notes"),
        "MacAddress": record.get("macAddress"),
        "LastLoginName": record.get("lastLoginName"),
        "BillFlag": record.get("billFlag"),
        "IPAddress": record.get("ipAddress"),
        "DefaultGateway": record.get("defaultGateway"),
        "OSType": record.get("osType"),
        "OSInfo": record.get("osInfo"),
        "IsActive": record.get("activeFlag"),
    }


def configuration_found(store: ConnectWiseStore, record: Record) -> Record:
    found = configuration(store, record)
    company_id = found["CompanyId"]
    # ConfigurationFindResult.CompanyId is a string in ConnectWise's schema.
    return {**found, "CompanyId": None if company_id is None else str(company_id)}


def configuration_document(value: Record) -> Record:
    document: Record = {
        "name": value.get("ConfigurationName"),
        "serialNumber": value.get("SerialNumber"),
        "modelNumber": value.get("ModelNumber"),
        "tagNumber": value.get("TagNumber"),
        "purchaseDate": value.get("PurchaseDate"),
        "installationDate": value.get("InstallationDate"),
        "warrantyExpirationDate": value.get("WarrantyExpiration"),
        "notes": value.get("Notes"),
        "macAddress": value.get("MacAddress"),
        "lastLoginName": value.get("LastLoginName"),
        "billFlag": value.get("BillFlag"),
        "ipAddress": value.get("IPAddress"),
        "defaultGateway": value.get("DefaultGateway"),
        "osType": value.get("OSType"),
        "osInfo": value.get("OSInfo"),
        "activeFlag": value.get("IsActive"),
    }
    references = (
        ("type", "ConfigurationTypeId", "ConfigurationType"),
        ("status", "StatusId", "Status"),
        ("company", "CompanyId", None),
        ("contact", "ContactId", None),
        ("manufacturer", "ManufacturerId", "Manufacturer"),
        ("site", "AddressId", None),
    )
    for field, id_element, name_element in references:
        if value.get(id_element):
            document[field] = {"id": value[id_element]}
        elif name_element and value.get(name_element):
            document[field] = {"name": value[name_element]}
    return {k: v for k, v in document.items() if v is not None}


def configuration_type(store: ConnectWiseStore, record: Record) -> Record:
    return {
        "Id": record["id"],
        "Name": record.get("name"),
        "InactiveFlag": bool(record.get("inactiveFlag")),
        "SystemFlag": bool(record.get("systemFlag")),
    }
