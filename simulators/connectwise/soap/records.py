"""Store records (REST-shaped dicts) to the SOAP types and back.

Reads: ``Company.CompanyID`` is the REST ``identifier``, ``Id`` the REST id; ``Type`` and
``Status`` are names; ``DefaultAddress`` is the company's own address (with its primary site's
id and name) and ``Addresses`` its sites.

Writes (``*_document``): the REST fields a SOAP type carries, every one of them (None where the
request left its element out), so an ``Update*`` clears what it leaves out, as ConnectWise's
own ``Update*`` operations do; REST fields the SOAP type has no element for (a company's
parent and primary site, a contact's site, a configuration's installer) are kept. Where SOAP
shows one value of a list, a write changes that one only: ``Type`` is a company's (a contact's)
first type, and a contact's ``Email``/``Phone``/``Fax`` is its default item of that kind (its
other items, and that item's type, are kept). ``site_document`` is one ``CompanyAddress`` of a
company's ``Addresses`` as a site.
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


def address(company_id: int, site: Record) -> Record:
    """A site as a ``CompanyAddress`` (``DefaultFlag`` aside)."""
    return _site(company_id, site, None)


def same_address(stored: Record, sent: Record) -> bool:
    """Whether an address sent says what the site holds (the elements a write changes)."""
    return all(
        (stored.get(name) or None) == (sent.get(name) or None)
        for name in ("City", "State", "Zip", "Country", "SiteName")
    ) and _street_lines(stored) == _street_lines(sent)


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


def company_document(value: Record, current: Record | None) -> Record:
    """The REST fields of a SOAP Company; ``current``: the stored document on an update.

    Addresses are not part of it: ``site_document`` writes them, one site each.
    """
    address = value.get("DefaultAddress") or {}
    lines = _street_lines(address)
    return {
        "identifier": value.get("CompanyID"),
        "name": value.get("CompanyName"),
        "phoneNumber": value.get("PhoneNumber"),
        "faxNumber": value.get("FaxNumber"),
        "website": value.get("WebSite"),
        "accountNumber": value.get("AccountNbr"),
        "addressLine1": lines[0],
        "addressLine2": lines[1],
        "city": address.get("City"),
        "state": address.get("State"),
        "zip": address.get("Zip"),
        "country": _named(address.get("Country")),
        "status": _named(value.get("Status")),
        "types": _types(value.get("Type"), current),
        "defaultContact": {"id": value["DefaultContactId"]}
        if value.get("DefaultContactId")
        else None,
    }


def site_document(store: ConnectWiseStore, address: Record) -> Record:
    """The REST fields of a site from one ``CompanyAddress`` (a state by identifier or name)."""
    lines = _street_lines(address)
    return {
        "name": address.get("SiteName"),
        "addressLine1": lines[0],
        "addressLine2": lines[1],
        "city": address.get("City"),
        "stateReference": _state(store, address.get("State")),
        "zip": address.get("Zip"),
        "country": _named(address.get("Country")),
    }


def _street_lines(address: Record) -> tuple[Any, Any]:
    lines = [line for line in (address.get("StreetLines") or {}).get("string") or () if line]
    return (lines[0] if lines else None, lines[1] if len(lines) > 1 else None)


def _named(name: Any) -> Record | None:
    return {"name": name} if name else None


def _state(store: ConnectWiseStore, state: Any) -> Record | None:
    if not state:
        return None
    for key in ("identifier", "name"):
        found = store.resolve("states", {key: state})
        if found is not None:
            return {"id": found["id"]}
    return {"name": state}  # not a state ConnectWise lists: the store's error says so


def _types(name: Any, current: Record | None) -> list[Record] | None:
    """SOAP's ``Type`` is the first type: a new name replaces that one and the others are
    kept; the same name, or none (SOAP cannot clear them), keeps the list as it is."""
    current_types = [t for t in (current or {}).get("types") or () if isinstance(t, dict)]
    kept = [{"id": t["id"]} for t in current_types]
    if not name:
        return kept or None
    wanted = str(name).casefold()
    if current_types and str(current_types[0].get("name") or "").casefold() == wanted:
        return kept
    others = [
        {"id": t["id"]} for t in current_types[1:] if str(t.get("name") or "").casefold() != wanted
    ]
    return [{"name": name}, *others]


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


# SOAP element → (REST communicationType, the type a new item gets).
_SINGLE_ITEMS = (("Email", "Email", "Email"), ("Phone", "Phone", "Direct"), ("Fax", "Fax", "Fax"))


def contact_document(value: Record, current: Record | None) -> Record:
    """The REST fields of a SOAP Contact; ``current``: the stored document on an update."""
    address = value.get("CompanyAddressInfo") or {}
    return {
        "firstName": value.get("FirstName"),
        "lastName": value.get("LastName"),
        "title": value.get("Title"),
        "inactiveFlag": value.get("Inactive"),
        "unsubscribeFlag": value.get("UnsubscribeFlag"),
        "communicationItems": _communication_items(value, current),
        "addressLine1": address.get("AddressLine1"),
        "addressLine2": address.get("AddressLine2"),
        "city": address.get("City"),
        "state": address.get("State"),
        "zip": address.get("Zip"),
        "company": {"identifier": value["CompanyId"]} if value.get("CompanyId") else None,
        "types": _types(value.get("Type"), current),
    }


def _communication_items(value: Record, current: Record | None) -> list[Record]:
    """The items with SOAP's single email, phone and fax written to the default item of each
    kind (the one SOAP shows): changed in place, removed when left out, added when new."""
    items = [dict(i) for i in (current or {}).get("communicationItems") or ()]
    for element, kind, type_name in _SINGLE_ITEMS:
        wanted = value.get(element) or None
        same_kind = [i for i in items if i.get("communicationType") == kind]
        chosen = next((i for i in same_kind if i.get("defaultFlag")), None)
        chosen = chosen or (same_kind[0] if same_kind else None)
        if chosen is None:
            if wanted:
                items.append({"type": {"name": type_name}, "value": wanted, "defaultFlag": True})
        elif wanted is None:
            items.remove(chosen)
        else:
            chosen["value"] = wanted
    return items


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
    """The REST fields of a SOAP Configuration (references by id, else by name)."""
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
        document[field] = None
        if value.get(id_element):
            document[field] = {"id": value[id_element]}
        elif name_element and value.get(name_element):
            document[field] = {"name": value[name_element]}
    return document


def configuration_type(store: ConnectWiseStore, record: Record) -> Record:
    return {
        "Id": record["id"],
        "Name": record.get("name"),
        "InactiveFlag": bool(record.get("inactiveFlag")),
        "SystemFlag": bool(record.get("systemFlag")),
    }
