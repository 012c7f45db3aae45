"""Directory contacts (what Active Directory sync brings in): matched, enriched, created, and
pushed to the PSA only once the integration's contact attributes are set."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from harness import Psa
from two_way_helpers import a_synced_organization, two_way

from models import Account, Contact, ContactSource, Integration, LinkState, RecordLink
from sync.directory import DirectoryContact, import_contacts
from sync.integrations import IntegrationError
from sync.runner import Worker
from sync.sync_settings import TwoWayChange, update_two_way

Connect = Callable[..., Awaitable[Integration]]
PEOPLE = [
    DirectoryContact("Ada", "Lovelace", "ada@newco.test", "+1 555 0100", "Engineer"),
    DirectoryContact("Alan", "Turing", "alan@newco.test", None, None),
]


async def test_an_import_matches_by_email_then_name_and_never_duplicates(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await connect()
    await worker.run_until_idle()
    org, _ = await a_synced_organization(psa, integration)
    first = await import_contacts(account.id, org.id, PEOPLE)
    assert len(first.created) == 2
    again = await import_contacts(account.id, org.id, PEOPLE)
    assert again.created == []
    assert sorted(again.unchanged) == sorted(first.created)

    moved = await import_contacts(
        account.id, org.id, [DirectoryContact("ADA ", "lovelace", "ada.l@newco.test", None, "CTO")]
    )
    assert moved.updated == [first.created[0]]
    ada = await Contact.get(id=first.created[0])
    assert ada.title == "CTO"
    assert [e["value"] for e in ada.emails] == ["ada@newco.test", "ada.l@newco.test"]
    assert ada.source == ContactSource.DIRECTORY


async def test_directory_contacts_wait_for_the_contact_attributes_before_being_pushed(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await connect()
    await worker.run_until_idle()
    integration = await two_way(worker, integration)
    org, psa_company = await a_synced_organization(psa, integration)

    result = await import_contacts(account.id, org.id, PEOPLE[:1])
    await worker.run_until_idle()
    link = await RecordLink.get(integration_id=integration.id, local_id=result.created[0])
    assert link.state == LinkState.NOT_PUSHED
    assert link.last_error is not None
    assert "contact attributes" in link.last_error
    assert not psa.store.find("contacts", 'lastName = "Lovelace"')

    with pytest.raises(IntegrationError) as refused:
        await update_two_way(
            integration,
            TwoWayChange(contact_email_type="Carrier Pigeon", contact_phone_type="Direct"),
            open_provider=worker.open_provider,
        )
    assert refused.value.field == "contactEmailType"
    await update_two_way(
        integration,
        TwoWayChange(contact_email_type="Email", contact_phone_type="Direct"),
        open_provider=worker.open_provider,
    )
    result = await import_contacts(account.id, org.id, PEOPLE[1:])
    await worker.run_until_idle()
    pushed = psa.store.find("contacts", 'lastName = "Turing"')
    assert len(pushed) == 1
    assert pushed[0]["company"]["id"] == psa_company
    items = pushed[0]["communicationItems"]
    assert [(i["type"]["name"], i["value"]) for i in items] == [("Email", "alan@newco.test")]
    link = await RecordLink.get(integration_id=integration.id, local_id=result.created[0])
    assert link.state == LinkState.SYNCED
    assert link.psa_id == pushed[0]["id"]
