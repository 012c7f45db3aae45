"""The ConnectWise provider's incremental side against the simulator over HTTP: ``since``
sees only what changed, ``fetch`` returns exactly the ids that still exist, ``record_ids``
lists what a full sync lists, and callback entries round-trip."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from harness import FAST_RETRY, Psa

from models.enums import AssetKind
from sync.connections import connectwise_provider
from sync.providers.base import ProviderScope, PsaProvider, PsaRecord, PsaSubscription

ORG, SITE, CONTACT, CONFIG = (
    AssetKind.ORGANIZATION,
    AssetKind.LOCATION,
    AssetKind.CONTACT,
    AssetKind.CONFIGURATION,
)
# Later than every stamp in the generated dataset.
EDITED_AT = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
async def cw(psa: Psa) -> AsyncIterator[PsaProvider]:
    provider = connectwise_provider(psa.credentials(), sandbox=True, retry=FAST_RETRY)
    try:
        yield provider
    finally:
        await provider.aclose()


@pytest.fixture
async def everything(cw: PsaProvider) -> ProviderScope:
    """A scope with every reference value enabled."""
    references = await cw.reference_data()
    return ProviderScope({k: frozenset(r.psa_id for r in refs) for k, refs in references.items()})


def ids(pages: list[list[PsaRecord]]) -> list[int]:
    return [record.psa_id for page in pages for record in page]


def requests(psa: Psa) -> int:
    return psa.simulator.traffic.requests


async def test_since_lists_only_records_changed_at_or_after_it(
    cw: PsaProvider, psa: Psa, everything: ProviderScope
) -> None:
    store = psa.store
    company = store.find("companies")[3]
    site = store.find("sites", parent_id=company["id"])[0]
    contact = store.find("contacts")[5]
    configuration = store.find("configurations")[7]
    store._clock = lambda: EDITED_AT
    store.update("companies", company["id"], {"name": "Renamed Ltd"})
    store.update("sites", site["id"], {"city": "Springfield"})
    store.update("contacts", contact["id"], {"title": "CTO"})
    store.update("configurations", configuration["id"], {"notes": "moved racks"})

    organizations = [p async for p in cw.organizations(everything, since=EDITED_AT)]
    locations = [p async for p in cw.locations(company["id"], since=EDITED_AT)]
    contacts = [p async for p in cw.contacts(since=EDITED_AT)]
    configurations = [p async for p in cw.configurations(everything, since=EDITED_AT)]

    assert ids(organizations) == [company["id"]]
    assert organizations[0][0].values["name"] == "Renamed Ltd"
    assert organizations[0][0].updated_by == store.ui_member
    assert ids(locations) == [site["id"]]
    assert ids(contacts) == [contact["id"]]
    assert ids(configurations) == [configuration["id"]]
    later = EDITED_AT + timedelta(seconds=1)
    assert [p async for p in cw.organizations(everything, since=later)] == []


async def test_since_combines_with_after(
    cw: PsaProvider, psa: Psa, everything: ProviderScope
) -> None:
    first, second = psa.store.find("contacts")[2:4]
    psa.store._clock = lambda: EDITED_AT
    psa.store.update("contacts", first["id"], {"title": "CTO"})
    psa.store.update("contacts", second["id"], {"title": "CFO"})

    pages = [p async for p in cw.contacts(after=first["id"], since=EDITED_AT)]

    assert ids(pages) == [second["id"]]


async def test_fetch_returns_exactly_the_requested_ids_that_still_exist(
    cw: PsaProvider, psa: Psa
) -> None:
    companies = [c["id"] for c in psa.store.find("companies")]
    wanted, deleted = companies[:5], companies[5]
    psa.store.delete("companies", deleted)  # soft-deleted: gone for psasync
    before = requests(psa)

    records = await cw.fetch(ORG, [*reversed(wanted), deleted, 999_999])

    assert [r.psa_id for r in records] == sorted(wanted)
    assert requests(psa) - before == 1


async def test_fetch_contacts_and_configurations_leave_removed_ones_out(
    cw: PsaProvider, psa: Psa
) -> None:
    contacts = [c["id"] for c in psa.store.find("contacts")][:250]
    configurations = [c["id"] for c in psa.store.find("configurations")][-3:]
    psa.store.delete("contacts", contacts[10])
    psa.store.purge("configurations", configurations[0])

    found_contacts = await cw.fetch(CONTACT, contacts)
    found_configurations = await cw.fetch(CONFIG, configurations)

    assert [r.psa_id for r in found_contacts] == [c for c in contacts if c != contacts[10]]
    assert [r.psa_id for r in found_configurations] == configurations[1:]


async def test_record_ids_match_the_full_listing(
    cw: PsaProvider, everything: ProviderScope
) -> None:
    listed = {
        ORG: ids([p async for p in cw.organizations(everything)]),
        CONTACT: ids([p async for p in cw.contacts()]),
        CONFIG: ids([p async for p in cw.configurations(everything)]),
    }

    for kind, expected in listed.items():
        pages = [p async for p in cw.record_ids(kind, everything)]
        assert [i for page in pages for i in page] == expected
        assert all(isinstance(i, int) for page in pages for i in page)


async def test_callback_entries_round_trip(cw: PsaProvider) -> None:
    subscriptions = cw.subscriptions
    assert subscriptions is not None
    url = "https://hooks.example.com/psasync/cw?recordId="

    created = await subscriptions.create(CONTACT, url)
    listed = await subscriptions.list()
    await subscriptions.delete(created.psa_id)
    await subscriptions.delete(created.psa_id)  # already gone: still fine

    assert created == PsaSubscription(created.psa_id, CONTACT, url, active=True)
    assert created in listed
    assert await subscriptions.list() == [s for s in listed if s != created]
