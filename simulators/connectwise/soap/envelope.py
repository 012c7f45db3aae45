"""SOAP 1.1 envelopes: reading requests with a hardened parser, writing answers and faults.

Values cross the wire through the contract's types (`contract.TYPES`): `read` turns a request
element into plain Python values (dicts, lists, str, int, bool, None for ``xsi:nil``), `write`
does the reverse in the contract's element order, so answers validate against ConnectWise's own
schema.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree  # type: ignore[import-untyped]  # no stubs installed

from simulators.connectwise.soap.contract import NS, SCALARS, TYPES, Element
from simulators.connectwise.timestamps import canonical_datetime

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_NIL = f"{{{_XSI}}}nil"
CONTENT_TYPE = "text/xml; charset=utf-8"
# What .NET writes for a DateTime nobody set (required dateTime elements, e.g. Contact.BirthDay).
DATETIME_MIN = "0001-01-01T00:00:00"
_DEFAULTS: dict[str, str] = {
    "int": "0",
    "short": "0",
    "boolean": "false",
    "dateTime": DATETIME_MIN,
    "decimal": "0",
    "ApiGender": "Unspecified",
    "string": "",
}

# Request bodies are attacker input: no DTD entities, no network, no huge trees.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
)


class SoapFault(Exception):
    """A fault to answer with (HTTP 500 by default), as ASMX does."""

    def __init__(self, message: str, code: str = "soap:Server", status: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def parse_envelope(body: bytes) -> etree._Element:
    """The first element inside ``soap:Body``; malformed input is a `soap:Client` fault."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as error:
        raise SoapFault(
            f"Server was unable to read request. ---> There is an error in XML document. {error}",
            "soap:Client",
        ) from None
    if (
        root.getroottree().docinfo.doctype
    ):  # a DTD is never part of SOAP; refuse it rather than half-read it
        raise SoapFault("Server was unable to read request. ---> DTD is prohibited.", "soap:Client")
    soap_body = root.find(f"{{{SOAP_ENV}}}Body") if root.tag == f"{{{SOAP_ENV}}}Envelope" else None
    operation = (
        None if soap_body is None else next(iter(soap_body.iterchildren(etree.Element)), None)
    )
    if operation is None:
        raise SoapFault("Server was unable to read request. ---> No SOAP 1.1 body.", "soap:Client")
    return operation


def read(element: etree._Element, spec: Element) -> Any:
    """The value of `element` as `spec` types it."""
    if element.get(_NIL) in ("true", "1"):
        return None
    if spec.type not in SCALARS:
        return read_fields(element, TYPES[spec.type])
    text = element.text or ""
    try:
        if spec.type in ("int", "short"):
            return int(text)
        if spec.type == "boolean":
            if text.strip() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.strip() in ("true", "1")
        if spec.type == "dateTime":
            return canonical_datetime(text)
        if spec.type == "decimal":
            return Decimal(text)
    except (ValueError, InvalidOperation):
        raise SoapFault(
            f"Server was unable to read request. ---> '{text}' is not a valid {spec.type} "
            f"for {spec.name}.",
            "soap:Client",
        ) from None
    return text


def read_fields(parent: etree._Element, elements: tuple[Element, ...]) -> dict[str, Any]:
    """Children of `parent` by local name; unknown children are ignored, as .NET does."""
    by_name = {e.name: e for e in elements}
    values: dict[str, Any] = {}
    for child in parent.iterchildren(etree.Element):
        spec = by_name.get(etree.QName(child).localname)
        if spec is None:
            continue
        value = read(child, spec)
        if spec.many:
            values.setdefault(spec.name, []).append(value)
        else:
            values[spec.name] = value
    return values


def write(parent: etree._Element, spec: Element, value: Any) -> None:
    """Append `value` under `parent` as element `spec` (nothing when it may be left out)."""
    if value is None and not spec.required and not spec.nillable:
        return
    if spec.many:
        for item in value or ():
            write(parent, Element(spec.name, spec.type, nillable=True), item)
        return
    element = etree.SubElement(parent, f"{{{NS}}}{spec.name}")
    if value is None and spec.nillable:
        element.set(_NIL, "true")
    elif spec.type not in SCALARS:
        for child in TYPES[spec.type]:
            write(element, child, (value or {}).get(child.name))
    else:
        element.text = _DEFAULTS[spec.type] if value is None else _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def answer(operation: str, result: Element | None, value: Any) -> bytes:
    """The envelope of ``{operation}Response``."""
    envelope, body = _envelope()
    response = etree.SubElement(body, f"{{{NS}}}{operation}Response", nsmap={None: NS})
    if result is not None:
        write(response, Element(f"{operation}Result", result.type, result.required), value)
    return _serialize(envelope)


def fault(error: SoapFault) -> bytes:
    """A SOAP 1.1 fault envelope for `error`."""
    envelope, body = _envelope()
    element = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(element, "faultcode").text = error.code
    etree.SubElement(element, "faultstring").text = error.message
    etree.SubElement(element, "detail")
    return _serialize(envelope)


def _envelope() -> tuple[etree._Element, etree._Element]:
    envelope = etree.Element(
        f"{{{SOAP_ENV}}}Envelope",
        nsmap={"soap": SOAP_ENV, "xsi": _XSI, "xsd": "http://www.w3.org/2001/XMLSchema"},
    )
    return envelope, etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")


def _serialize(envelope: etree._Element) -> bytes:
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))
