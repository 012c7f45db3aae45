"""Records as the v2 API's output DTOs (camelCase on the wire)."""

from __future__ import annotations

from typing import Any

from simulators.pulseway import reference as ref
from simulators.pulseway.fields import ASSET
from simulators.pulseway.store import PulsewayStore, Record
from simulators.pulseway.wire import stamp


def audit(record: Record) -> dict[str, Any]:
    return {
        "createdBy": record["createdBy"],
        "createdOn": stamp(record["createdOn"]),
        "modifiedBy": record["modifiedBy"],
        "modifiedOn": stamp(record["modifiedOn"]),
    }


def account_summary(store: PulsewayStore, account: Record) -> dict[str, Any]:
    """AccountSummaryOutputDto."""
    return {
        "id": account["id"],
        **audit(account),
        "parentId": account.get("parentId"),
        "accountCode": account.get("accountCode"),
        "accountTypeId": account["accountTypeId"],
        "accountType": ref.account_type_name(account["accountTypeId"]),
        "accountName": account["accountName"],
        "businessTypeId": account["businessTypeId"],
        "businessType": ref.lookup_name("BusinessType", account["businessTypeId"]),
        "serviceTypeId": account.get("serviceTypeId"),
        "serviceType": None,
        "accountManagerId": account["accountManagerId"],
        "accountManagerUserName": store.employees.get(account["accountManagerId"]),
        "currencyId": account.get("currencyId"),
        "currencyName": None,
        "creditLimit": account.get("creditLimit"),
        "netDays": account.get("netDays"),
        "salesTaxItemId": account.get("salesTaxItemId"),
        "salesTaxItemName": None,
        "website": account.get("website"),
        "description": account.get("description"),
        "classId": account.get("classId"),
        "className": None,
        "isActive": bool(account["isActive"]),
        "isBilling": False,
        "acquiredDate": account.get("acquiredDate"),
        "tenantName": store.tenant,
        "locations": [location(store.locations[i]) for i in account["locationIds"]],
    }


def location(loc: Record) -> dict[str, Any]:
    """AccountLocationOutputDto with its AccountAddressOutputDto list."""
    return {
        "id": loc["id"],
        **audit(loc),
        "locationName": loc["locationName"],
        "isMain": bool(loc["isMain"]),
        "isActive": bool(loc["isActive"]),
        "timeZoneId": loc.get("timeZoneId"),
        "dateFormatId": loc.get("dateFormatId"),
        "timeFormatId": loc.get("timeFormatId"),
        "addresses": [address(a) for a in loc["addresses"]],
    }


_ADDRESS_FIELDS = (
    "address1",
    "address2",
    "city",
    "state",
    "zipCode",
    "countryId",
    "country",
    "phone",
    "fax",
    "latitude",
    "longitude",
    "emailAddress",
    "addressTypeId",
    "addressType",
)


def address(item: Record) -> dict[str, Any]:
    out = {"id": item["id"], **audit(item)}
    out.update({name: item.get(name) for name in _ADDRESS_FIELDS})
    out["isMain"] = bool(item.get("isMain"))
    out["isBilling"] = bool(item.get("isBilling"))
    return out


def location_lookup(loc: Record) -> dict[str, Any]:
    """AccountLocationLookupOutputDto."""
    return {
        "id": loc["id"],
        "name": loc["locationName"],
        "accountId": loc["accountId"],
        "isMain": bool(loc["isMain"]),
    }


def email(item: Record) -> dict[str, Any]:
    return {
        "id": item["id"],
        **audit(item),
        "emailAddress": item["emailAddress"],
        "emailTypeId": item["emailTypeId"],
        "emailType": ref.lookup_name("EmailType", item["emailTypeId"]),
        "isDefault": bool(item["isDefault"]),
    }


def phone(item: Record) -> dict[str, Any]:
    return {
        "id": item["id"],
        **audit(item),
        "phone": item["phone"],
        "phoneTypeId": item["phoneTypeId"],
        "phoneType": ref.lookup_name("PhoneType", item["phoneTypeId"]),
        "isDefault": bool(item["isDefault"]),
    }


def _names(store: PulsewayStore, contact: Record) -> dict[str, Any]:
    account = store.accounts.get(contact["accountId"])
    loc = store.locations.get(contact["locationId"])
    return {
        "accountId": contact["accountId"],
        "accountName": account["accountName"] if account else None,
        "locationId": contact["locationId"],
        "locationName": loc["locationName"] if loc else None,
    }


def _default(items: list[Record], key: str) -> str | None:
    chosen = next((i for i in items if i["isDefault"]), items[0] if items else None)
    return None if chosen is None else str(chosen[key])


def contact_summary(store: PulsewayStore, contact: Record) -> dict[str, Any]:
    """ContactsSummaryOutputDto (GET /v2/crm/contacts/summary[/{id}])."""
    return {
        "id": contact["id"],
        **audit(contact),
        **_names(store, contact),
        "firstName": contact["firstName"],
        "lastName": contact["lastName"],
        "jobTitle": contact.get("jobTitle"),
        "isPoc": bool(contact.get("poc")),
        "isActive": bool(contact["isActive"]),
        "effectiveDate": contact.get("effectiveDate"),
        "isBillable": bool(contact.get("billByContact")),
        "emails": [email(e) for e in contact["emails"]],
        "phones": [phone(p) for p in contact["phones"]],
        "canRecieveInvoices": bool(contact.get("receiveInvoices")),
    }


def contact_output(store: PulsewayStore, contact: Record) -> dict[str, Any]:
    """ContactOutputDto (PUT and PATCH /v2/crm/contacts/{id})."""
    return {
        "id": contact["id"],
        **audit(contact),
        **_names(store, contact),
        "firstName": contact["firstName"],
        "middleName": contact.get("middleName"),
        "lastName": contact["lastName"],
        "jobTitle": contact.get("jobTitle"),
        "poc": bool(contact.get("poc")),
        "isActive": bool(contact["isActive"]),
        "billByContact": bool(contact.get("billByContact")),
        "effectiveDate": contact.get("effectiveDate"),
        "phones": [phone(p) for p in contact["phones"]],
        "emails": [email(e) for e in contact["emails"]],
        "recieveInvoices": bool(contact.get("receiveInvoices")),
        "createdByName": store.employees.get(contact["createdBy"]),
        "modifiedByName": store.employees.get(contact["modifiedBy"]),
    }


def contact_created(store: PulsewayStore, contact: Record) -> dict[str, Any]:
    """ContactSummaryOutputDto (POST /v2/crm/contacts/summary)."""
    return {
        "id": contact["id"],
        "firstName": contact["firstName"],
        "lastName": contact["lastName"],
        **_names(store, contact),
        "phoneNumber": _default(contact["phones"], "phone"),
        "emailAddress": _default(contact["emails"], "emailAddress"),
        "customFieldsData": [],
    }


def contact_search(store: PulsewayStore, contact: Record) -> dict[str, Any]:
    """ContactsSearchSelectOutputDto (GET /v2/crm/contacts/search)."""
    return {
        "id": contact["id"],
        **_names(store, contact),
        "firstName": contact["firstName"],
        "lastName": contact["lastName"],
        "jobTitle": contact.get("jobTitle"),
        "emailAddress": _default(contact["emails"], "emailAddress"),
        "isPoc": bool(contact.get("poc")),
        "isActive": bool(contact["isActive"]),
        "hasClientPortalAccess": False,
    }


def asset_output(store: PulsewayStore, asset: Record) -> dict[str, Any]:
    """HardwareAssetOutputDto: the input fields, their names, audit (by id and by name)."""
    out: dict[str, Any] = {"id": asset["id"]}
    # `computerName` is accepted on input but HardwareAssetOutputDto has no such property.
    out.update({name: asset.get(name) for name in ASSET if name != "computerName"})
    account = store.accounts.get(asset["accountId"])
    loc = store.locations.get(asset["accountLocationId"])
    contact = store.contacts.get(asset.get("contactId") or 0)
    out.update(
        {
            "accountName": account["accountName"] if account else None,
            "accountLocation": loc["locationName"] if loc else None,
            "contactFirstName": contact["firstName"] if contact else None,
            "contactLastName": contact["lastName"] if contact else None,
            "contactEmailAddress": _default(contact["emails"], "emailAddress") if contact else None,
            "contactPhoneNumber": _default(contact["phones"], "phone") if contact else None,
            "category": ref.lookup_name("AssetCategory", asset["categoryId"]),
            "state": ref.lookup_name("AssetState", asset.get("stateId")),
            "brand": None,
            "businessImpact": None,
            "vendor": None,
            "manufacturer": None,
            "motherboardManufacturer": None,
            "chassisManufacturer": None,
            "webRemoteUrl": None,
            "isActive": bool(asset["isActive"]),
            "dhcpEnabled": bool(asset.get("dhcpEnabled")),
            "winsEnabled": bool(asset.get("winsEnabled")),
            "createdById": asset["createdBy"],
            "createdBy": store.employees.get(asset["createdBy"]),
            "modifiedById": asset["modifiedBy"],
            "modifiedBy": store.employees.get(asset["modifiedBy"]),
            "createdOn": stamp(asset["createdOn"]),
            "modifiedOn": stamp(asset["modifiedOn"]),
            "agentId": None,
            "diskVolumes": [],
            "integrationTypeId": None,
            "statuses": [],
        }
    )
    return out


def asset_search(store: PulsewayStore, asset: Record) -> dict[str, Any]:
    """HardwareAssetsListSearchSelectOutputDto."""
    account = store.accounts.get(asset["accountId"])
    loc = store.locations.get(asset["accountLocationId"])
    contact = store.contacts.get(asset.get("contactId") or 0)
    return {
        "id": asset["id"],
        "categoryName": ref.lookup_name("AssetCategory", asset["categoryId"]),
        "categoryId": asset["categoryId"],
        "locationName": loc["locationName"] if loc else None,
        "assetName": asset["name"],
        "serialNumber": asset.get("serialNumber"),
        "machineGroupId": asset.get("machineGroupId"),
        "ipAddress": asset.get("ipAddress"),
        "contactId": asset.get("contactId") or 0,
        "contactName": f"{contact['firstName']} {contact['lastName']}" if contact else None,
        "accountId": asset["accountId"],
        "accountName": account["accountName"] if account else None,
        "isActive": bool(asset["isActive"]),
    }


def _stamp_or_none(moment: Any) -> str | None:
    return None if moment is None else stamp(moment)


def _ticket_names(store: PulsewayStore, ticket: Record) -> dict[str, Any]:
    """What TicketListDto and TicketOutputDto share: ids with their names, and the dates."""
    account = store.accounts.get(ticket["accountId"])
    loc = store.locations.get(ticket.get("locationId") or 0)
    contact = store.contacts.get(ticket.get("contactId") or 0)
    queue = ref.row_of(ref.QUEUES, ticket.get("queueId"))
    status = ref.row_of(ref.TICKET_STATUSES, ticket["statusId"]) or {}
    priority = ref.row_of(ref.TICKET_PRIORITIES, ticket["priorityId"]) or {}
    kind = ref.row_of(ref.TICKET_TYPES, ticket.get("typeId"))
    asset = store.assets.get(ticket.get("hardwareAssetId") or 0)
    assignee = ticket.get("assigneeId")
    return {
        "id": ticket["id"],
        **audit(ticket),
        "ticketNumber": ticket["ticketNumber"],
        "title": ticket["title"],
        "details": ticket.get("details"),
        "accountId": ticket["accountId"],
        "accountCode": account.get("accountCode") if account else None,
        "accountName": account["accountName"] if account else None,
        "locationId": ticket.get("locationId"),
        "locationName": loc["locationName"] if loc else None,
        "contactId": ticket.get("contactId"),
        "contactName": f"{contact['firstName']} {contact['lastName']}" if contact else None,
        "queueId": ticket.get("queueId"),
        "queueName": queue["name"] if queue else None,
        "statusId": ticket["statusId"],
        "statusName": status.get("name"),
        "statusColor": status.get("color"),
        "statusForeColor": "#FFFFFF",
        "statusOrder": status.get("order", 0),
        "priorityId": ticket["priorityId"],
        "priorityName": priority.get("name"),
        "priorityColor": priority.get("color"),
        "typeId": ticket.get("typeId"),
        "typeName": kind["name"] if kind else None,
        "assigneeId": assignee,
        "assigneeName": store.employees.get(assignee) if assignee else None,
        "hardwareAssetName": asset["name"] if asset else None,
        "openDate": _stamp_or_none(ticket.get("openDate")),
        "dueDate": _stamp_or_none(ticket.get("dueDate")),
        "completedDate": _stamp_or_none(ticket.get("completedDate")),
        "lastActivityUpdate": _stamp_or_none(ticket.get("lastActivityUpdate")),
        "lastStatusUpdate": _stamp_or_none(ticket.get("lastStatusUpdate")),
        "lastPriorityUpdate": _stamp_or_none(ticket.get("lastPriorityUpdate")),
        "lastQueueUpdate": _stamp_or_none(ticket.get("lastQueueUpdate")),
        "createdByName": store.employees.get(ticket["createdBy"]),
        "isScheduled": 0,
    }


# Names both ticket DTOs have that the simulator does not keep (SLA, contract, work type...).
_TICKET_UNKNOWN = (
    "issueTypeId",
    "issueTypeName",
    "subIssueTypeId",
    "subIssueTypeName",
    "contractId",
    "contractNumber",
    "contractName",
    "workTypeId",
    "workTypeName",
    "ticketRecurringMasterId",
    "recurring",
    "slaStatusEventId",
    "sourceId",
    "slaId",
    "slaObjectiveId",
    "slaName",
    "hasMetSLA",
    "actualPauseMinutes",
    "actualFirstResponseMinutes",
    "actualResolutionMinutes",
    "isSLAPaused",
    "slaStatusEnum",
    "reOpenedDate",
    "resolutionTargetTime",
    "resolutionActualTime",
    "firstResponseTargetTime",
    "firstResponseActualTime",
    "slaLastPausedTime",
    "slaLastResumedTime",
)


def ticket_list(store: PulsewayStore, ticket: Record) -> dict[str, Any]:
    """TicketListDto (GET /v2/servicedesk/tickets, POST .../tickets/search)."""
    out = _ticket_names(store, ticket)
    out.update(dict.fromkeys(_TICKET_UNKNOWN))
    out["tenantName"] = store.tenant
    out["hardwareAssetId"] = ticket.get("hardwareAssetId") or 0  # not nullable in the DTO
    out["customFields"] = None
    return out


def ticket_output(store: PulsewayStore, ticket: Record) -> dict[str, Any]:
    """TicketOutputDto (GET /v2/servicedesk/tickets/{ticketId})."""
    out = _ticket_names(store, ticket)
    out.update(dict.fromkeys(_TICKET_UNKNOWN))
    loc = store.locations.get(ticket.get("locationId") or 0)
    contact = store.contacts.get(ticket.get("contactId") or 0)
    out.update(
        {
            "hardwareAssetId": ticket.get("hardwareAssetId"),
            "locationPhone": loc["addresses"][0].get("phone") if loc and loc["addresses"] else None,
            "contactPhone": _default(contact["phones"], "phone") if contact else None,
            "contactEmail": _default(contact["emails"], "emailAddress") if contact else None,
            "softwareAssetId": None,
            "softwareAssetName": None,
            "vsaAssetId": None,
            "hasVsaAgent": None,
            "sourceName": None,
            "occurrenceCount": None,
            "lastOccurrenceDate": None,
            "cCs": [],
            "rmmTicketReference": None,
            "tenantId": 1,
            "hasPostedEntries": False,
            "secondaryAssignees": [],
            "totalExpenses": None,
            "totalTimeSpent": None,
            "isReadOnly": False,
            "openDateLocked": False,
            "integrationTypeId": None,
        }
    )
    return out


def employee_search(store: PulsewayStore, employee_id: int) -> dict[str, Any]:
    """EmployeesListSearchSelectOutputDto (GET /v2/hr/employees/searchselect)."""
    profile = ref.EMPLOYEE_PROFILES.get(employee_id, {})
    username = store.employees[employee_id]
    return {
        "id": employee_id,
        "firstName": profile.get("firstName"),
        "lastName": profile.get("lastName"),
        "emailAddress": f"{username}@{store.tenant}.example",
        "username": username,
        "jobTitle": profile.get("jobTitle"),
        "isActive": profile.get("isActive", True),
    }
