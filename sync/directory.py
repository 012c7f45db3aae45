"""Contacts from a directory (Active Directory through Network Glue, in IT Glue's words).

A directory source calls ``import_contacts`` with the people of one organization. Each is
matched to an existing contact of that organization by email, then by first and last name
(trimmed, case-folded; features.md §A3): a match is enriched (title, a missing email or
phone added), anything else is created with source ``directory``. Every change goes through
``sync.local_edits``, so history and two-way pushes follow as for any edit; a directory
contact is pushed to a PSA only once that integration's contact attributes (the PSA email
and phone types for new contacts) are set (``sync.push_create``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from models import AssetKind, ChangeSource, Contact, ContactSource, Organization, match_keys
from sync import local_edits
from sync.local_edits import EditError

MAX_CONTACTS = 500  # per call: a directory sends its people in pages
EMAIL_TYPE = "AD Email"  # IT Glue's type for directory emails until contact attributes apply
PHONE_TYPE = "AD Phone"


@dataclass(frozen=True)
class DirectoryContact:
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    title: str | None = None


@dataclass
class ImportResult:
    created: list[uuid.UUID] = field(default_factory=list)
    updated: list[uuid.UUID] = field(default_factory=list)
    unchanged: list[uuid.UUID] = field(default_factory=list)


def _name_key(first: str | None, last: str | None) -> str:
    return f"{match_keys.normalise(first)}|{match_keys.normalise(last)}"


async def import_contacts(
    account_id: uuid.UUID,
    organization_id: uuid.UUID,
    people: Sequence[DirectoryContact],
    *,
    actor: str | None = None,
) -> ImportResult:
    if len(people) > MAX_CONTACTS:
        raise EditError("TOO_MANY", f"at most {MAX_CONTACTS} contacts per call", field="contacts")
    if not await Organization.filter(id=organization_id, account_id=account_id).exists():
        raise EditError("NOT_FOUND", f"no organization {organization_id}", field="organizationId")
    for index, person in enumerate(people):
        if not (person.first_name or person.last_name):
            raise EditError(
                "REQUIRED",
                f"contacts[{index}] needs a first or last name",
                field=f"contacts[{index}].firstName",
            )
    existing = await Contact.filter(account_id=account_id, organization_id=organization_id).values(
        "id", "first_name", "last_name", "primary_email", "emails", "phones", "title"
    )
    by_email: dict[str, dict[str, Any]] = {}
    for known in existing:
        for entry in known["emails"] or []:
            by_email.setdefault(str(entry.get("value", "")).casefold(), known)
    by_name = {_name_key(r["first_name"], r["last_name"]): r for r in existing}
    result = ImportResult()
    for person in people:
        email = (person.email or "").strip()
        row = by_email.get(email.casefold()) if email else None
        row = row or by_name.get(_name_key(person.first_name, person.last_name))
        if row is None:
            contact = await local_edits.create(
                AssetKind.CONTACT,
                account_id,
                {
                    "organization_id": organization_id,
                    "first_name": person.first_name,
                    "last_name": person.last_name,
                    "title": person.title,
                    "emails": [{"type": EMAIL_TYPE, "value": email, "primary": True}]
                    if email
                    else [],
                    "phones": [{"type": PHONE_TYPE, "value": person.phone, "primary": True}]
                    if person.phone
                    else [],
                    "source": ContactSource.DIRECTORY,
                },
                actor=actor,
            )
            result.created.append(contact.id)
            continue
        changes = _enrichment(row, person, email)
        local_id = uuid.UUID(str(row["id"]))
        if not changes:
            result.unchanged.append(local_id)
            continue
        await local_edits.update(
            AssetKind.CONTACT,
            account_id,
            local_id,
            changes,
            actor=actor,
            source=ChangeSource.DIRECTORY,
        )
        result.updated.append(local_id)
    return result


def _enrichment(row: dict[str, Any], person: DirectoryContact, email: str) -> dict[str, Any]:
    """What the directory adds to a matched contact: never removes what is there."""
    changes: dict[str, Any] = {}
    if person.title and person.title != row["title"]:
        changes["title"] = person.title
    emails = list(row["emails"] or [])
    if email and email.casefold() not in {str(e.get("value", "")).casefold() for e in emails}:
        changes["emails"] = [
            *emails,
            {"type": EMAIL_TYPE, "value": email, "primary": not emails},
        ]
    phones = list(row["phones"] or [])
    if person.phone and person.phone not in {p.get("value") for p in phones}:
        changes["phones"] = [
            *phones,
            {"type": PHONE_TYPE, "value": person.phone, "primary": not phones},
        ]
    return changes
