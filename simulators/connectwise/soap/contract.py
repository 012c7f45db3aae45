"""The SOAP contract the simulator serves, as data: types, operations, and the WSDL built from them.

A subset of ConnectWise's legacy CompanyApi, ContactApi and ConfigurationApi (psa-apis.md §3):
the same type, element and operation names, namespace ``http://connectwise.com``, document/literal,
one SOAP 1.1 port ``{Name}ApiSoap`` per service. Elements keep ConnectWise's order (document/literal
sequences are ordered) and its occurrence rules, so a client built from ConnectWise's own WSDL
reads these answers. ``CompanyAddress`` is written flat (ConnectWise derives it from ``Address``;
the wire form is the same).
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree  # type: ignore[import-untyped]  # no stubs installed

NS = "http://connectwise.com"
_XS = "http://www.w3.org/2001/XMLSchema"
_WSDL = "http://schemas.xmlsoap.org/wsdl/"
_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
SCALARS = frozenset({"string", "int", "short", "boolean", "dateTime", "decimal", "ApiGender"})


@dataclass(frozen=True)
class Element:
    """One child element of a sequence."""

    name: str
    type: str = "string"  # an XSD scalar, ApiGender, or a complex type of `TYPES`
    required: bool = False  # minOccurs="1"; without it minOccurs="0"
    nillable: bool = False
    many: bool = False  # maxOccurs="unbounded" (the item of an ArrayOf... type)


def _required(name: str, type: str) -> Element:
    return Element(name, type, required=True)


def _nillable(name: str, type: str) -> Element:
    return Element(name, type, required=True, nillable=True)


def _strings(*names: str) -> tuple[Element, ...]:
    return tuple(Element(n) for n in names)


def _array(item: str) -> tuple[Element, ...]:
    return (Element(item, item, nillable=True, many=True),)


CREDENTIALS = Element("credentials", "ApiCredentials")

TYPES: dict[str, tuple[Element, ...]] = {
    "ApiCredentials": _strings("CompanyId", "IntegratorLoginId", "IntegratorPassword"),
    "ArrayOfString": (Element("string", nillable=True, many=True),),
    "CompanyAddress": (
        Element("StreetLines", "ArrayOfString"),
        *_strings("City", "State", "Zip", "Country"),
        _required("Id", "int"),
        _required("DefaultFlag", "boolean"),
        _required("CompanyRecid", "int"),
        Element("SiteName"),
    ),
    "ArrayOfCompanyAddress": _array("CompanyAddress"),
    "Company": (
        Element("DefaultAddress", "CompanyAddress"),
        Element("Addresses", "ArrayOfCompanyAddress"),
        *_strings("CompanyName", "CompanyID", "PhoneNumber", "FaxNumber", "WebSite"),
        _required("Id", "int"),
        *_strings("Territory", "Market", "Type", "Status", "AccountNbr"),
        _nillable("DefaultContactId", "int"),
        _nillable("DefaultBillingContactId", "int"),
        _nillable("LastUpdate", "dateTime"),
    ),
    "CompanyFindResult": (
        _required("CompanyRecID", "int"),
        *_strings("CompanyName", "CompanyID", "PhoneNumber", "AddressLine1", "AddressLine2"),
        *_strings("City", "State", "Zip", "Country", "Type", "Status", "Territory", "Website"),
        Element("Market"),
    ),
    "ArrayOfCompanyFindResult": _array("CompanyFindResult"),
    "CompanyAddressInfo": _strings(
        "AddressLine1", "AddressLine2", "City", "State", "Zip", "Country"
    ),
    "Contact": (
        *_strings("Relationship", "Type"),
        _required("ContactRecID", "int"),
        _required("Id", "int"),
        *_strings("Phone", "PhoneExt", "Fax", "FaxExt", "Email", "FirstName", "LastName", "Title"),
        _required("Gender", "ApiGender"),
        _required("BirthDay", "dateTime"),
        _required("Married", "boolean"),
        _required("Children", "boolean"),
        _required("Anniversary", "dateTime"),
        Element("CompanyAddressInfo", "CompanyAddressInfo"),
        Element("CompanyId"),
        _required("PortalSecurityLevel", "short"),
        _required("DisablePortalLogin", "boolean"),
        _required("Inactive", "boolean"),
        _required("UnsubscribeFlag", "boolean"),
        _required("LastUpdate", "dateTime"),
        Element("UpdatedBy"),
        _required("PersonalAddressFlag", "boolean"),
    ),
    "ContactFindResult": (
        *_strings("FirstName", "LastName", "CompanyName"),
        _required("CompanyRecID", "int"),
        *_strings("Phone", "Email", "Type", "Relationship"),
        _required("DefaultFlag", "boolean"),
        *_strings("AddressLine1", "AddressLine2", "City", "State", "Zip", "Country"),
        _required("PortalSecurityLevel", "short"),
        Element("PortalSecurityCaption"),
        _required("DisablePortalLogin", "boolean"),
        _required("LastUpdate", "dateTime"),
        Element("UpdatedBy"),
        _required("ContactRecID", "int"),
        _required("Id", "int"),
    ),
    "ArrayOfContactFindResult": _array("ContactFindResult"),
    "Configuration": (
        _required("Id", "int"),
        _required("ConfigurationTypeId", "int"),
        Element("ConfigurationType"),
        _nillable("StatusId", "int"),
        *_strings("Status", "ConfigurationName", "ContactName", "CompanyName"),
        _nillable("CompanyId", "int"),
        _nillable("ContactId", "int"),
        _nillable("OwnerLevelId", "int"),
        _nillable("BillingUnitId", "int"),
        Element("Manufacturer"),
        _nillable("ManufacturerId", "int"),
        *_strings("SerialNumber", "ModelNumber", "TagNumber"),
        _nillable("PurchaseDate", "dateTime"),
        _nillable("InstallationDate", "dateTime"),
        Element("InstalledBy"),
        _nillable("WarrantyExpiration", "dateTime"),
        _nillable("LastUpdate", "dateTime"),
        Element("UpdatedBy"),
        _nillable("AddressId", "int"),
        *_strings("AddressLine1", "AddressLine2", "City", "State", "ZipCode", "VendorNotes"),
        *_strings("Notes", "MacAddress", "LastLoginName"),
        _nillable("BillFlag", "boolean"),
        _nillable("BackupSuccesses", "int"),
        _nillable("BackupIncomplete", "int"),
        _nillable("BackupFailed", "int"),
        _nillable("BackupRestores", "int"),
        _nillable("LastBackupDate", "dateTime"),
        Element("BackupServerName"),
        _nillable("BackupBillableSpaceGb", "decimal"),
        Element("BackupProtectedDeviceList"),
        _nillable("BackupYear", "int"),
        _nillable("BackupMonth", "int"),
        *_strings("IPAddress", "DefaultGateway", "OSType", "OSInfo", "CPUSpeed", "RAM"),
        Element("LocalHardDrives"),
        _nillable("IsActive", "boolean"),
    ),
    "ConfigurationFindResult": (
        _required("Id", "int"),
        _required("ConfigurationTypeId", "int"),
        Element("ConfigurationType"),
        _nillable("StatusId", "int"),
        *_strings("Status", "CompanyId", "ConfigurationName", "ContactName", "SerialNumber"),
        *_strings("ModelNumber", "TagNumber"),
        _nillable("WarrantyExpiration", "dateTime"),
    ),
    "ArrayOfConfigurationFindResult": _array("ConfigurationFindResult"),
    "ConfigurationTypeFindResult": (
        _required("Id", "int"),
        Element("Name"),
        _required("InactiveFlag", "boolean"),
        _required("SystemFlag", "boolean"),
    ),
    "ArrayOfConfigurationTypeFindResult": _array("ConfigurationTypeFindResult"),
}


@dataclass(frozen=True)
class Operation:
    """An operation's request parameters (after `credentials`) and its result element, if any."""

    params: tuple[Element, ...]
    result: Element | None
    writes: bool = False


def _find(array: str, *extra: Element) -> Operation:
    paging: tuple[Element, ...] = (Element("conditions"), Element("orderBy"))
    paging += (_nillable("limit", "int"), _nillable("skip", "int"))
    return Operation(paging + extra, Element("", array))


def _count(*extra: Element) -> Operation:
    return Operation((Element("conditions"), *extra), _required("", "int"))


def _by_id(result: str | None, *, writes: bool = False) -> Operation:
    return Operation(
        (_required("id", "int"),), None if result is None else Element("", result), writes
    )


def _write(param: str, type: str) -> Operation:
    return Operation((Element(param, type),), Element("", type), writes=True)


SERVICES: dict[str, dict[str, Operation]] = {
    "Company": {
        "FindCompanies": _find("ArrayOfCompanyFindResult"),
        "GetCompany": _by_id("Company"),
        "AddCompany": _write("company", "Company"),
        "UpdateCompany": _write("company", "Company"),
        "AddOrUpdateCompany": _write("company", "Company"),
        "DeleteCompany": _by_id(None, writes=True),
    },
    "Contact": {
        "FindContacts": _find("ArrayOfContactFindResult", Element("marketingGroupFilter")),
        "FindContactsCount": _count(),
        "GetContact": _by_id("Contact"),
        "AddOrUpdateContact": _write("contact", "Contact"),
        "DeleteContact": _by_id(None, writes=True),
    },
    "Configuration": {
        "FindConfigurations": _find("ArrayOfConfigurationFindResult"),
        "FindConfigurationsCount": _count(_nillable("isOpen", "boolean")),
        "GetConfiguration": _by_id("Configuration"),
        "AddConfiguration": _write("configuration", "Configuration"),
        "UpdateConfiguration": _write("configuration", "Configuration"),
        "AddOrUpdateConfiguration": _write("configuration", "Configuration"),
        "DeleteConfiguration": _by_id(None, writes=True),
        "FindConfigurationTypes": _find("ArrayOfConfigurationTypeFindResult"),
    },
}


def service_types(service: str) -> list[str]:
    """The complex types `service`'s operations reach, each before the types using it."""
    found: list[str] = ["ApiCredentials"]

    def visit(type_name: str) -> None:
        if type_name in SCALARS or type_name in found:
            return
        for element in TYPES[type_name]:
            visit(element.type)
        found.append(type_name)

    for operation in SERVICES[service].values():
        for element in operation.params:
            visit(element.type)
        if operation.result is not None:
            visit(operation.result.type)
    return found


def build_wsdl(service: str, address: str) -> bytes:
    """The WSDL of ``{service}Api`` whose SOAP 1.1 port is served at `address`."""
    api = f"{service}Api"
    root = etree.Element(
        f"{{{_WSDL}}}definitions",
        nsmap={"wsdl": _WSDL, "soap": _SOAP, "s": _XS, "tns": NS},
        targetNamespace=NS,
    )
    types = etree.SubElement(root, f"{{{_WSDL}}}types")
    schema = etree.SubElement(
        types, f"{{{_XS}}}schema", elementFormDefault="qualified", targetNamespace=NS
    )
    if "Contact" in service_types(service):
        gender = etree.SubElement(schema, f"{{{_XS}}}simpleType", name="ApiGender")
        restriction = etree.SubElement(gender, f"{{{_XS}}}restriction", base="s:string")
        for value in ("Male", "Female", "Unspecified"):
            etree.SubElement(restriction, f"{{{_XS}}}enumeration", value=value)
    for type_name in service_types(service):
        complex_type = etree.SubElement(schema, f"{{{_XS}}}complexType", name=type_name)
        _sequence(complex_type, TYPES[type_name])
    operations = SERVICES[service]
    for name, operation in operations.items():
        request = etree.SubElement(schema, f"{{{_XS}}}element", name=name)
        _sequence(
            etree.SubElement(request, f"{{{_XS}}}complexType"), (CREDENTIALS, *operation.params)
        )
        response = etree.SubElement(schema, f"{{{_XS}}}element", name=f"{name}Response")
        result = () if operation.result is None else (operation.result,)
        results = tuple(Element(f"{name}Result", e.type, e.required) for e in result)
        _sequence(etree.SubElement(response, f"{{{_XS}}}complexType"), results)
    for name in operations:
        for suffix, element in (("SoapIn", name), ("SoapOut", f"{name}Response")):
            message = etree.SubElement(root, f"{{{_WSDL}}}message", name=name + suffix)
            etree.SubElement(
                message, f"{{{_WSDL}}}part", name="parameters", element=f"tns:{element}"
            )
    port_type = etree.SubElement(root, f"{{{_WSDL}}}portType", name=f"{api}Soap")
    for name in operations:
        operation = etree.SubElement(port_type, f"{{{_WSDL}}}operation", name=name)
        etree.SubElement(operation, f"{{{_WSDL}}}input", message=f"tns:{name}SoapIn")
        etree.SubElement(operation, f"{{{_WSDL}}}output", message=f"tns:{name}SoapOut")
    binding = etree.SubElement(
        root, f"{{{_WSDL}}}binding", name=f"{api}Soap", type=f"tns:{api}Soap"
    )
    etree.SubElement(
        binding, f"{{{_SOAP}}}binding", transport="http://schemas.xmlsoap.org/soap/http"
    )
    for name in operations:
        operation = etree.SubElement(binding, f"{{{_WSDL}}}operation", name=name)
        etree.SubElement(
            operation, f"{{{_SOAP}}}operation", soapAction=f"{NS}/{name}", style="document"
        )
        for direction in ("input", "output"):
            body = etree.SubElement(operation, f"{{{_WSDL}}}{direction}")
            etree.SubElement(body, f"{{{_SOAP}}}body", use="literal")
    service_element = etree.SubElement(root, f"{{{_WSDL}}}service", name=api)
    port = etree.SubElement(
        service_element, f"{{{_WSDL}}}port", name=f"{api}Soap", binding=f"tns:{api}Soap"
    )
    etree.SubElement(port, f"{{{_SOAP}}}address", location=address)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def _sequence(parent: etree._Element, elements: tuple[Element, ...]) -> None:
    sequence = etree.SubElement(parent, f"{{{_XS}}}sequence")
    for element in elements:
        prefix = "s" if element.type in SCALARS - {"ApiGender"} else "tns"
        attributes = {
            "minOccurs": "1" if element.required else "0",
            "maxOccurs": "unbounded" if element.many else "1",
            "name": element.name,
            "type": f"{prefix}:{element.type}",
        }
        if element.nillable:
            attributes["nillable"] = "true"
        etree.SubElement(sequence, f"{{{_XS}}}element", attributes)
