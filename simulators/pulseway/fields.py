"""The writable fields of Pulseway PSA's input DTOs (camelCase, as sent on the wire) and how a
JSON body is checked against them.

Kinds: ``int``, ``str``, ``bool``, ``num``, ``time`` (ISO date-time, stored as the wire stamp).
Names are matched case-insensitively, as ASP.NET's model binding does; unknown names are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulators.pulseway.wire import invalid, parse_time, stamp

Fields = dict[str, str]

# AccountPutInputDto; AccountPostInputDto adds `locations`.
ACCOUNT: Fields = {
    "parentId": "int",
    "accountCode": "str",
    "accountTypeId": "int",
    "accountName": "str",
    "description": "str",
    "website": "str",
    "businessTypeId": "int",
    "serviceTypeId": "int",
    "currencyId": "int",
    "salesTaxItemId": "int",
    "classId": "int",
    "accountManagerId": "int",
    "isActive": "bool",
    "acquiredDate": "time",
    "creditLimit": "num",
    "netDays": "num",
    "routeInvoiceToParent": "bool",
}
ACCOUNT_REQUIRED = ("accountName", "accountTypeId", "businessTypeId", "accountManagerId")

LOCATION: Fields = {"locationName": "str", "isMain": "bool", "isActive": "bool"}
ADDRESS: Fields = {
    "address1": "str",
    "address2": "str",
    "city": "str",
    "state": "str",
    "zipCode": "str",
    "countryId": "int",
    "country": "str",
    "phone": "str",
    "fax": "str",
    "latitude": "num",
    "longitude": "num",
    "emailAddress": "str",
    "isMain": "bool",
    "isBilling": "bool",
    "addressTypeId": "int",
    "addressType": "str",
}

# ContactInputDto (POST /v2/crm/contacts/summary) without its lists.
CONTACT_CREATE: Fields = {
    "firstName": "str",
    "lastName": "str",
    "accountId": "int",
    "locationId": "int",
}
CONTACT_REQUIRED = ("firstName", "lastName", "accountId")
# ContactPutInputDto (PUT and PATCH /v2/crm/contacts/{id}).
CONTACT: Fields = {
    "accountId": "int",
    "locationId": "int",
    "firstName": "str",
    "middleName": "str",
    "lastName": "str",
    "jobTitle": "str",
    "poc": "bool",
    "isActive": "bool",
    "receiveInvoices": "bool",
    "billByContact": "bool",
    "effectiveDate": "time",
}
EMAIL_INPUT: Fields = {"emailAddress": "str", "emailTypeId": "int", "isDefault": "bool"}
PHONE_INPUT: Fields = {"phoneNumber": "str", "phoneTypeId": "int", "isDefault": "bool"}
EMAIL_PATCH: Fields = {
    "operation": "int",
    "newEmailAddress": "str",
    "emailAddress": "str",
    "typeId": "int",
    "isDefault": "bool",
}
PHONE_PATCH: Fields = {
    "operation": "int",
    "phoneNumber": "str",
    "newPhoneNumber": "str",
    "typeId": "int",
    "isDefault": "bool",
}

# HardwareAssetInputDto (POST, PUT /v2/servicedesk/hardwareasset).
ASSET: Fields = {
    "name": "str",
    "accountId": "int",
    "accountLocationId": "int",
    "contactId": "int",
    "categoryId": "int",
    "brandId": "int",
    "serialNumber": "str",
    "businessImpactId": "int",
    "stateId": "int",
    "locationInfo": "str",
    "description": "str",
    "barCode": "str",
    "assetTag": "str",
    "vendorId": "int",
    "isActive": "bool",
    "modelNumber": "str",
    "machineGroupId": "str",
    "ipAddress": "str",
    "subnetMask": "str",
    "defaultGateway": "str",
    "dnsServers": "str",
    "dhcpEnabled": "bool",
    "dhcpServer": "str",
    "winsEnabled": "bool",
    "secondaryWinsServer": "str",
    "connectionGatewayIp": "str",
    "osType": "str",
    "osInfo": "str",
    "majorVersion": "str",
    "minorVersion": "str",
    "macAddress": "str",
    "loginName": "str",
    "lastLoginname": "str",
    "currentUser": "str",
    "productName": "str",
    "machineVersion": "str",
    "motherboardManufacturerId": "int",
    "motherboardProductCode": "str",
    "motherboardSerialNumber": "str",
    "motherboardVersion": "str",
    "chassisAssetTag": "str",
    "chassisManufacturerId": "int",
    "chassisSerialNumber": "str",
    "chassisType": "str",
    "chassisVersion": "str",
    "busSpeed": "str",
    "manufacturerId": "int",
    "maxMemorySize": "str",
    "maxMemorySlots": "str",
    "primaryWinsServer": "str",
    "computerName": "str",
    "purchaseCost": "num",
    "warrantyExpirationDate": "time",
    "expirationDate": "time",
    "acquisitionDate": "time",
    "firstCheckIn": "time",
    "lastCheckIn": "time",
    "lastReboot": "time",
}
ASSET_REQUIRED = ("name", "accountId", "accountLocationId", "categoryId")

_KIND_WORDS = {
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "num": "a number",
    "time": "an ISO 8601 date-time",
}


def coerce(field: str, kind: str, value: Any) -> Any:
    """`value` checked against `kind` (None passes: nullable); raises a validation ApiError."""
    if value is None:
        return None
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "num": isinstance(value, int | float) and not isinstance(value, bool),
        "time": isinstance(value, str),
    }[kind]
    if not ok:
        raise invalid(field, f"must be {_KIND_WORDS[kind]}")
    if kind == "time":
        try:
            return stamp(parse_time(value))
        except ValueError:
            raise invalid(field, f"must be {_KIND_WORDS[kind]}") from None
    if kind == "num":
        return float(value)
    return value


def read(
    body: Any,
    fields: Fields,
    *,
    required: tuple[str, ...] = (),
    prefix: str = "",
    partial: bool = False,
) -> dict[str, Any]:
    """The known fields of a JSON object, checked; `required` must be present and not null
    (strings not blank). With `partial`, absent fields stay absent instead of becoming None."""
    if not isinstance(body, Mapping):
        raise invalid(prefix.rstrip(".") or "body", "must be a JSON object")
    by_lower = {str(k).lower(): v for k, v in body.items()}
    out: dict[str, Any] = {}
    for name, kind in fields.items():
        if name.lower() in by_lower:
            out[name] = coerce(prefix + name, kind, by_lower[name.lower()])
        elif not partial:
            out[name] = None
    for name in required:
        value = out.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise invalid(prefix + name)
    return out


def lookup(body: Mapping[str, Any], name: str) -> Any:
    """A member of a JSON object by case-insensitive name (None when absent)."""
    for key, value in body.items():
        if str(key).lower() == name.lower():
            return value
    return None
