"""SOAP ``conditions`` and ``orderBy``: ConnectWise's SQL-like grammar with SOAP field names.

The grammar is the REST one (`conditions.py`); only the field names differ. Each SOAP name
(case-insensitive) is renamed to the REST path holding the same value, then bound to the REST
resource, so SOAP and REST select the same records::

    CompanyName like 'Acme%' or CompanyID = 'ACME'
    LastUpdate > [2026-01-01T00:00:00Z]

Dates: the SOAP syntax for date conditions is not documented anywhere we could find (psa-apis.md
§3.4 marks it unverified). The simulator takes the REST form, an ISO-8601 datetime in square
brackets (``[2026-01-01T00:00:00Z]``, an offset or a plain date also work), and compares in UTC
at second precision. A quoted date is a string and does not compare with a date field (a
fault). ``EmailAddress``/``Email`` and ``Phone`` match any communication item's value.
"""

from __future__ import annotations

import dataclasses

from simulators.connectwise.conditions import Junction, Node, compile_node, parse
from simulators.connectwise.errors import ConditionError
from simulators.connectwise.query import ListQuery, parse_order_by
from simulators.connectwise.schema import RESOURCES

_ADDRESS = {
    "addressline1": "addressLine1",
    "addressline2": "addressLine2",
    "city": "city",
    "state": "state",
    "zip": "zip",
    "country": "country/name",
}
_INFO = {"lastupdate": "lastUpdated", "updatedby": "updatedBy"}

# SOAP field name (lower case) -> REST path, per collection.
FIELDS: dict[str, dict[str, str]] = {
    "companies": {
        "id": "id",
        "companyrecid": "id",
        "companyid": "identifier",
        "companyname": "name",
        "phonenumber": "phoneNumber",
        "faxnumber": "faxNumber",
        "website": "website",
        "accountnbr": "accountNumber",
        "type": "types/name",
        "status": "status/name",
        "deletedflag": "deletedFlag",
        **_ADDRESS,
        **_INFO,
    },
    "contacts": {
        "id": "id",
        "contactrecid": "id",
        "firstname": "firstName",
        "lastname": "lastName",
        "title": "title",
        "companyrecid": "company/id",
        "companyid": "company/identifier",
        "companyname": "company/name",
        "email": "communicationItems/value",
        "emailaddress": "communicationItems/value",
        "phone": "communicationItems/value",
        "type": "types/name",
        "inactive": "inactiveFlag",
        "defaultflag": "defaultFlag",
        **_ADDRESS,
        **_INFO,
    },
    "configurations": {
        "id": "id",
        "configurationname": "name",
        "configurationtypeid": "type/id",
        "configurationtype": "type/name",
        "statusid": "status/id",
        "status": "status/name",
        "companyid": "company/id",
        "companyname": "company/name",
        "contactid": "contact/id",
        "contactname": "contact/name",
        "serialnumber": "serialNumber",
        "modelnumber": "modelNumber",
        "tagnumber": "tagNumber",
        "macaddress": "macAddress",
        "ipaddress": "ipAddress",
        "ostype": "osType",
        "manufacturer": "manufacturer/name",
        "warrantyexpiration": "warrantyExpirationDate",
        "isactive": "activeFlag",
        **_INFO,
    },
    "configuration_types": {
        "id": "id",
        "name": "name",
        "inactiveflag": "inactiveFlag",
        "systemflag": "systemFlag",
        **_INFO,
    },
}


def build_query(collection: str, conditions: str | None, order_by: str | None) -> ListQuery:
    """The REST query selecting what SOAP `conditions` and `order_by` select, in the same order.

    Rows tie-break by id (the store's order), so ``skip``/``limit`` page stably.
    """
    resource = RESOURCES[collection]
    names = FIELDS[collection]
    condition = None
    if conditions and conditions.strip():
        condition = compile_node(_rename(parse(conditions), names), resource)
    terms = []
    for term in (order_by or "").split(","):
        words = term.split()
        if words:
            terms.append(" ".join([_rest_name(names, words[0]), *words[1:]]))
    order = parse_order_by(resource, ", ".join(terms))
    return ListQuery(
        test=None if condition is None else condition.test,
        mentions=frozenset() if condition is None else condition.fields,
        order=order,
        # Prefixed: the same text means something else as a REST condition.
        cache_key=("soap", (conditions or "").strip(), ", ".join(terms).lower(), ""),
    )


def _rename(node: Node, names: dict[str, str]) -> Node:
    if isinstance(node, Junction):
        return Junction(node.operator, tuple(_rename(n, names) for n in node.operands))
    return dataclasses.replace(node, path=_rest_name(names, node.path))


def _rest_name(names: dict[str, str], soap_name: str) -> str:
    path = names.get(soap_name.lower())
    if path is None:
        raise ConditionError(f"'{soap_name}' is not a valid field name.")
    return path
