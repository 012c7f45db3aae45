"""The ConnectWise resources the simulator serves, described as data.

Each `Resource` lists its fields in the order they are stored: a record is a plain list whose
slot ``i`` holds the value of ``fields[i]`` (lists are several times smaller than dicts, which
matters at 260k records). Conditions, orderBy, fields, writes and rendering are all driven by
these tables, so adding a field means adding one line here.

Field names and shapes follow ConnectWise's OpenAPI document (as mirrored by pyconnectwise's
models): camelCase, references as ``{"id", "name"}`` (company, member and state references also
carry ``identifier``), and bookkeeping under ``_info``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

Row = list[Any]


class Kind(enum.Enum):
    """How a field's value is stored, validated, compared and rendered."""

    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    REFERENCE = "reference"  # a shared canonical {"id", "name"[, "identifier"]} dict
    REFERENCES = "references"  # a list of references (company and contact types)
    ITEMS = "items"  # a list of owned sub-objects (contact communication items)
    SCALAR = "scalar"  # any JSON scalar (a custom field's value: text, number, flag or date)


@dataclass(frozen=True)
class Field:
    """One JSON property of a resource."""

    name: str
    kind: Kind = Kind.STRING
    target: str = ""  # resource a REFERENCE(S) points at
    items: tuple[Field, ...] = ()  # sub-fields of ITEMS
    required: bool = False
    max_length: int | None = None
    default: Any = None  # applied on create and on PUT when the property is absent
    lookup_default: bool = False  # when absent, refer to the target's `defaultFlag` row
    create_only: bool = False  # settable on POST only (ConnectWise rejects later changes)
    read_only: bool = False  # maintained by the server; ignored on writes
    info: bool = False  # rendered inside `_info`
    omit_empty: bool = False  # an empty list is stored as None, hence not rendered
    # Stored with the record but not part of its JSON (a ticket's attached configurations are
    # served by their own endpoint): never rendered, never named by conditions or fields.
    hidden: bool = False


@dataclass(frozen=True)
class Resource:
    """A collection of records and how ConnectWise exposes it."""

    name: str  # key in the store, e.g. "companies"
    noun: str  # "company": the `resource` of validation errors
    title: str  # "Company": used in "Company 57 not found"
    path: str  # collection path below apis/3.0; "{parent}" for nested collections
    href_key: str  # key of the href inside a reference's `_info`
    fields: tuple[Field, ...]
    first_id: int = 1
    reference_name: tuple[str, ...] = ("name",)  # fields joined to form a reference's name
    reference_identifier: bool = False  # references also carry `identifier`
    parent: str = ""  # field holding the owning record (sites belong to a company)
    soft_delete: bool = False
    unique: str = ""  # field whose value must be unique (case-insensitively)
    writable: bool = False  # POST/PUT/PATCH/DELETE allowed through the API
    links: tuple[tuple[str, str], ...] = ()  # extra `_info` hrefs, "{id}" substituted
    index: dict[str, int] = field(init=False, repr=False, compare=False)
    by_lower: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {f.name: i for i, f in enumerate(self.fields)})
        object.__setattr__(
            self, "by_lower", {f.name.lower(): f for f in self.fields if not f.hidden}
        )

    def field(self, name: str) -> Field:
        """The field called `name` (exact spelling)."""
        return self.fields[self.index[name]]


INT, DEC, BOOL, DATE = Kind.INTEGER, Kind.DECIMAL, Kind.BOOLEAN, Kind.DATETIME
REF, REFS, ITEMS = Kind.REFERENCE, Kind.REFERENCES, Kind.ITEMS

ID = Field("id", INT, read_only=True)
INFO = (
    Field("lastUpdated", DATE, read_only=True, info=True),
    Field("updatedBy", read_only=True, info=True),
    Field("dateEntered", DATE, read_only=True, info=True),
    Field("enteredBy", read_only=True, info=True),
)


def _flag(name: str, default: bool = False) -> Field:
    return Field(name, BOOL, default=default)


def _address(state: Field) -> tuple[Field, ...]:
    return (
        Field("addressLine1", max_length=50),
        Field("addressLine2", max_length=50),
        Field("city", max_length=50),
        state,
        Field("zip", max_length=12),
        Field("country", REF, "countries"),
    )


# One entry of a record's `customFields` (ConnectWise's CustomFieldValue). `id` names the
# site's custom field definition, so it is kept as sent. `customFieldConditions` are evaluated
# against these entries one at a time (`query.py`).
CUSTOM_FIELD = (
    Field("id", INT, required=True),
    Field("caption", max_length=50),
    Field("type"),
    Field("entryMethod"),
    Field("numberOfDecimals", INT),
    Field("value", Kind.SCALAR),
    Field("connectWiseId"),
)
# Records without custom fields leave the array out, as on a site that defines none.
CUSTOM_FIELDS = Field("customFields", ITEMS, items=CUSTOM_FIELD, omit_empty=True)

COMPANY = Resource(
    name="companies",
    noun="company",
    title="Company",
    path="company/companies",
    href_key="company_href",
    first_id=250,
    reference_identifier=True,
    soft_delete=True,
    unique="identifier",
    writable=True,
    links=(
        ("sites_href", "company/companies/{id}/sites"),
        ("contacts_href", "company/contacts?conditions=company/id={id}"),
        ("configurations_href", "company/configurations?conditions=company/id={id}"),
    ),
    fields=(
        ID,
        Field("identifier", required=True, max_length=30),
        Field("name", required=True, max_length=50),
        Field("status", REF, "company_statuses", lookup_default=True),
        Field("types", REFS, "company_types", lookup_default=True, create_only=True),
        *_address(Field("state", max_length=50)),
        Field("phoneNumber", max_length=30),
        Field("faxNumber", max_length=30),
        Field("website", max_length=255),
        Field("site", REF, "sites"),
        Field("parentCompany", REF, "companies"),
        Field("defaultContact", REF, "contacts"),
        Field("accountNumber", max_length=30),
        Field("numberOfEmployees", INT),
        Field("annualRevenue", DEC),
        Field("dateAcquired", DATE),
        _flag("leadFlag"),
        _flag("unsubscribeFlag"),
        _flag("isVendorFlag"),
        Field("deletedFlag", BOOL, default=False, read_only=True),
        Field("dateDeleted", DATE, read_only=True),
        Field("deletedBy", read_only=True),
        CUSTOM_FIELDS,
        *INFO,
    ),
)

SITE = Resource(
    name="sites",
    noun="site",
    title="Site",
    path="company/companies/{parent}/sites",
    href_key="site_href",
    first_id=1000,
    parent="company",
    writable=True,
    fields=(
        ID,
        Field("name", required=True, max_length=50),
        *_address(Field("stateReference", REF, "states")),
        Field("phoneNumber", max_length=30),
        Field("faxNumber", max_length=30),
        Field("company", REF, "companies", read_only=True),
        _flag("primaryAddressFlag"),
        _flag("defaultShippingFlag"),
        _flag("defaultBillingFlag"),
        _flag("defaultMailingFlag"),
        _flag("inactiveFlag"),
        *INFO,
    ),
)

COMMUNICATION_ITEM = (
    Field("id", INT),
    Field("type", REF, "communication_types", required=True),
    Field("value", max_length=250),
    Field("extension", max_length=15),
    _flag("defaultFlag"),
    Field("domain", read_only=True),  # derived from an e-mail value
    Field("communicationType", read_only=True),  # derived from the type: Email, Phone or Fax
)

CONTACT = Resource(
    name="contacts",
    noun="contact",
    title="Contact",
    path="company/contacts",
    href_key="contact_href",
    first_id=2000,
    reference_name=("firstName", "lastName"),
    writable=True,
    links=(
        ("communications_href", "company/contacts/{id}/communications"),
        ("notes_href", "company/contacts/{id}/notes"),
    ),
    fields=(
        ID,
        Field("firstName", required=True, max_length=30),
        Field("lastName", max_length=30),
        Field("title", max_length=100),
        Field("company", REF, "companies"),
        Field("site", REF, "sites"),
        Field("types", REFS, "contact_types", create_only=True),
        Field("communicationItems", ITEMS, items=COMMUNICATION_ITEM),
        *_address(Field("state", max_length=50)),
        _flag("inactiveFlag"),
        _flag("defaultFlag"),
        _flag("unsubscribeFlag"),
        CUSTOM_FIELDS,
        *INFO,
    ),
)

CONFIGURATION = Resource(
    name="configurations",
    noun="configuration",
    title="Configuration",
    path="company/configurations",
    href_key="configuration_href",
    first_id=5000,
    writable=True,
    links=(("questions_href", "company/configurations/{id}/questions"),),
    fields=(
        ID,
        Field("name", required=True, max_length=100),
        Field("type", REF, "configuration_types", required=True),
        Field("status", REF, "configuration_statuses", lookup_default=True),
        Field("company", REF, "companies", required=True),
        Field("site", REF, "sites"),
        Field("contact", REF, "contacts"),
        Field("serialNumber", max_length=250),
        Field("tagNumber", max_length=50),
        Field("modelNumber", max_length=50),
        Field("manufacturer", REF, "manufacturers"),
        Field("ipAddress", max_length=50),
        Field("macAddress", max_length=25),
        Field("defaultGateway", max_length=50),
        Field("osType", max_length=250),
        Field("osInfo", max_length=250),
        Field("lastLoginName", max_length=250),
        Field("installedBy", REF, "members"),
        Field("installationDate", DATE),
        Field("purchaseDate", DATE),
        Field("warrantyExpirationDate", DATE),
        Field("notes"),
        _flag("activeFlag", default=True),
        _flag("billFlag"),
        CUSTOM_FIELDS,
        *INFO,
    ),
)


def _lookup(
    name: str,
    path: str,
    href_key: str,
    *fields: Field,
    reference_name: tuple[str, ...] = ("name",),
    reference_identifier: bool = False,
) -> Resource:
    """A read-only reference list (types, statuses, countries...)."""
    return Resource(
        name=name,
        noun=name.rstrip("s"),
        title=name.replace("_", " ").capitalize(),
        path=path,
        href_key=href_key,
        fields=(ID, *fields, *INFO),
        reference_name=reference_name,
        reference_identifier=reference_identifier,
    )


LOOKUPS = (
    _lookup(
        "company_types",
        "company/companies/types",
        "type_href",
        Field("name", required=True),
        _flag("defaultFlag"),
        _flag("vendorFlag"),
        _flag("serviceAlertFlag"),
    ),
    _lookup(
        "company_statuses",
        "company/companies/statuses",
        "status_href",
        Field("name", required=True),
        _flag("defaultFlag"),
        _flag("inactiveFlag"),
        _flag("notifyFlag"),
        _flag("disallowSavingFlag"),
        _flag("customNoteFlag"),
        _flag("cancelOpenTracksFlag"),
    ),
    _lookup(
        "configuration_types",
        "company/configurations/types",
        "type_href",
        Field("name", required=True),
        _flag("inactiveFlag"),
        _flag("systemFlag"),
    ),
    _lookup(
        "configuration_statuses",
        "company/configurations/statuses",
        "status_href",
        Field("description", required=True),
        _flag("closedFlag"),
        _flag("defaultFlag"),
        reference_name=("description",),
    ),
    _lookup(
        "contact_types",
        "company/contacts/types",
        "type_href",
        Field("description", required=True),
        _flag("defaultFlag"),
        _flag("serviceAlertFlag"),
        reference_name=("description",),
    ),
    _lookup(
        "communication_types",
        "company/communicationTypes",
        "type_href",
        Field("description", required=True),
        _flag("phoneFlag"),
        _flag("faxFlag"),
        _flag("emailFlag"),
        _flag("defaultFlag"),
        reference_name=("description",),
    ),
    _lookup(
        "countries",
        "company/countries",
        "country_href",
        Field("identifier"),
        Field("name", required=True),
        _flag("defaultFlag"),
        reference_identifier=True,
    ),
    _lookup(
        "states",
        "company/states",
        "state_href",
        Field("identifier", required=True),
        Field("name", required=True),
        Field("country", REF, "countries"),
        reference_identifier=True,
    ),
    _lookup(
        "manufacturers",
        "procurement/manufacturers",
        "manufacturer_href",
        Field("name", required=True),
        _flag("inactiveFlag"),
    ),
    _lookup(
        "members",
        "system/members",
        "member_href",
        Field("identifier", required=True),
        Field("firstName", required=True),
        Field("lastName"),
        Field("title"),
        Field("officeEmail"),
        Field("primaryEmail"),  # some versions carry the e-mail here (psa-apis.md §9)
        # psa-apis.md §9: F = full, A = API member, C = StreamlineIT, X = subcontractor. The
        # licence class is what tells people from integrations and subcontractors; the
        # simulator has no separate member `type`.
        Field("licenseClass", default="F"),
        _flag("inactiveFlag"),
        Field("inactiveDate", DATE),
        _flag("adminFlag"),
        # Required by ConnectWise's Member schema; constant in the simulator.
        Field("defaultEmail", default="Office"),
        Field("defaultPhone", default="Office"),
        Field("agreementInvoicingDisplayOptions", default="RemainOnInvoicingScreen"),
        Field("invoicingDisplayOptions", default="RemainOnInvoicingScreen"),
        Field("invoiceScreenDefaultTabFormat", default="ShowInvoicingTab"),
        reference_name=("firstName", "lastName"),
        reference_identifier=True,
    ),
)

# Service boards and what belongs to each: statuses and types live below their board
# (``service/boards/{id}/statuses``), as in ConnectWise, where every board has its own.
BOARD = Resource(
    name="boards",
    noun="board",
    title="Board",
    path="service/boards",
    href_key="board_href",
    fields=(
        ID,
        Field("name", required=True, max_length=50),
        _flag("inactiveFlag"),
        _flag("projectFlag"),
        *INFO,
    ),
)

TICKET_STATUS = Resource(
    name="ticket_statuses",
    noun="serviceStatus",
    title="ServiceStatus",
    path="service/boards/{parent}/statuses",
    href_key="status_href",
    parent="board",
    fields=(
        ID,
        Field("name", required=True, max_length=50),
        Field("board", REF, "boards", read_only=True),
        Field("sortOrder", INT),
        _flag("defaultFlag"),
        _flag("inactive"),
        _flag("closedStatus"),  # a ticket moved here is closed (closedFlag, closedDate)
        *INFO,
    ),
)

TICKET_TYPE = Resource(
    name="ticket_types",
    noun="serviceType",
    title="ServiceType",
    path="service/boards/{parent}/types",
    href_key="type_href",
    parent="board",
    fields=(
        ID,
        Field("name", required=True, max_length=50),
        Field("board", REF, "boards", read_only=True),
        _flag("inactiveFlag"),
        *INFO,
    ),
)

PRIORITY = Resource(
    name="priorities",
    noun="priority",
    title="Priority",
    path="service/priorities",
    href_key="priority_href",
    fields=(
        ID,
        Field("name", required=True, max_length=50),
        Field("sort", INT),
        Field("color"),
        _flag("defaultFlag"),
        *INFO,
    ),
)

# A service ticket with the fields psa-apis.md §9 lists for IT Glue's ticket feed. `closedFlag`
# follows the status (a `closedStatus` closes the ticket; the store stamps `closedDate` and
# `closedBy`); a client may also set it directly.
TICKET = Resource(
    name="tickets",
    noun="ticket",
    title="Ticket",
    path="service/tickets",
    href_key="ticket_href",
    first_id=40000,
    writable=True,
    links=(
        ("configurations_href", "service/tickets/{id}/configurations"),
        ("notes_href", "service/tickets/{id}/notes"),
    ),
    fields=(
        ID,
        Field("summary", required=True, max_length=100),
        Field("recordType", default="ServiceTicket"),
        Field("board", REF, "boards", required=True),
        Field("status", REF, "ticket_statuses"),  # default: the board's default status
        Field("type", REF, "ticket_types"),
        Field("priority", REF, "priorities", lookup_default=True),
        Field("company", REF, "companies", required=True),
        Field("site", REF, "sites"),
        Field("contact", REF, "contacts"),
        Field("contactName", max_length=62),
        Field("contactEmailAddress", max_length=250),
        Field("owner", REF, "members"),
        Field("severity", default="Medium"),
        Field("impact", default="Medium"),
        _flag("closedFlag"),
        Field("closedDate", DATE, read_only=True),
        Field("closedBy", read_only=True),
        _flag("customerUpdatedFlag"),
        # Served by ``service/tickets/{id}/configurations``; changed with the store's
        # `attach_configuration` (a person linking a device in the UI).
        Field("configurations", REFS, "configurations", read_only=True, hidden=True),
        *INFO,
    ),
)

# A callback (webhook) registration. ConnectWise's CallbackEntry `_info` carries only these two.
CALLBACK = Resource(
    name="callbacks",
    noun="callbackEntry",
    title="CallbackEntry",
    path="system/callbacks",
    href_key="callback_href",
    reference_name=("description",),  # nothing refers to callbacks; keeps the schema total
    writable=True,
    fields=(
        ID,
        Field("description", max_length=100),
        Field("url", required=True),
        Field("objectId", INT, required=True),
        Field("type", required=True),
        Field("level", required=True),
        Field("memberId", INT, read_only=True),  # the member whose API keys created it
        Field("payloadVersion", default="3.0.0"),
        _flag("inactiveFlag"),
        _flag("isSoapCallbackFlag"),
        _flag("isSelfSuppressedFlag"),
        Field("connectWiseID", read_only=True),  # a uuid; also names the signing key
        *INFO[:2],
    ),
)

# Callback levels by type, lower-cased (CWDG "Levels and Types"). None: ConnectWise documents
# the type but no levels the simulator knows of, so any level is accepted.
CALLBACK_LEVELS: dict[str, frozenset[str] | None] = {
    "company": frozenset({"owner", "status", "type", "territory", "company", "integratortag"}),
    "contact": frozenset({"owner", "type", "territory", "company", "contact"}),
    "configuration": frozenset({"owner", "type", "status", "configuration"}),
    **dict.fromkeys(
        (
            "ticket",
            "project",
            "opportunity",
            "activity",
            "schedule",
            "agreement",
            "invoice",
            "expense",
            "member",
            "productcatalog",
            "purchaseorder",
            "time",
        )
    ),
}

RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        COMPANY,
        SITE,
        CONTACT,
        CONFIGURATION,
        CALLBACK,
        *LOOKUPS,
        BOARD,
        TICKET_STATUS,
        TICKET_TYPE,
        PRIORITY,
        TICKET,
    )
}
