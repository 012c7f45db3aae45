"""A PSA record holding a value the database cannot store exactly (a NUL, which PostgreSQL
refuses; a lone surrogate, which neither backend can encode; text longer than its column)
is reported and skipped, never stored altered, and never fails the page around it. Both
backends behave alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from harness import Psa
from two_way_helpers import a_synced_organization, link_of, pull, two_way

from models import (
    Account,
    AssetKind,
    Integration,
    LinkState,
    Organization,
    OutboxEntry,
    OutboxStatus,
    PushState,
    RecordLink,
    RunStatus,
    SyncRun,
    SyncRunIssue,
)
from models.text import column_limits, first_unstorable
from sync import conflicts, local_edits
from sync.runner import Worker

Connect = Callable[..., Awaitable[Integration]]

BAD_NAMES = {
    "a NUL character": "Acme\x00 Ltd",
    "a NUL character ": "\x00Acme Holdings",
}


async def org_rows() -> dict[str, tuple[str, int]]:
    return {str(o.id): (o.name, o.version) for o in await Organization.all()}


async def test_a_record_the_database_cannot_store_is_reported_and_the_page_goes_on(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    await worker.run_until_idle()
    before = await org_rows()
    companies = sorted(link.psa_id for link in await RecordLink.filter(kind="organization"))
    bad = dict(zip(companies[:2], BAD_NAMES.values(), strict=True))
    for psa_id, name in bad.items():
        psa.store.update("companies", psa_id, {"name": name})
    renamed = companies[2]
    psa.store.update("companies", renamed, {"name": "Renamed Beside Them"})

    run = await pull(worker, integration)

    assert run.status == RunStatus.SUCCEEDED
    issues = {
        i.psa_id: i for i in await SyncRunIssue.filter(run_id=run.id, code="unstorable_value")
    }
    assert set(issues) == set(bad)
    for issue, why in zip((issues[p] for p in bad), BAD_NAMES, strict=True):
        assert issue.detail == {"field": "name", "reason": f"holds {why.strip()}"}
        assert "Correct it in the PSA" in issue.message
    after = await org_rows()
    # The records around them were taken; theirs kept the last version stored, unaltered.
    renamed_link = await RecordLink.get(kind="organization", psa_id=renamed)
    assert after[str(renamed_link.local_id)][0] == "Renamed Beside Them"
    for psa_id in bad:
        link = await RecordLink.get(kind="organization", psa_id=psa_id)
        assert link.state == LinkState.SYNCED
        assert after[str(link.local_id)] == before[str(link.local_id)]
    assert not any("\x00" in name or "Acme " in name for name, _ in after.values())

    # A resync that finds nothing new writes nothing, and says again what it skipped.
    again = await pull(worker, integration)
    assert (again.updated, again.created) == (0, 0)
    assert await org_rows() == after
    assert await SyncRunIssue.filter(run_id=again.id, code="unstorable_value").count() == 2

    # Corrected in the PSA, the record is taken on the next sync.
    first = companies[0]
    psa.store.update("companies", first, {"name": "Acme Ltd"})
    await pull(worker, integration)
    link = await RecordLink.get(kind="organization", psa_id=first)
    assert (await Organization.get(id=link.local_id)).name == "Acme Ltd"


async def test_a_new_psa_record_the_database_cannot_store_is_not_created_locally(
    psa: Psa, connect: Connect, worker: Worker
) -> None:
    integration = await connect()
    await worker.run_until_idle()
    company = psa.store.find("companies")[0]
    added = psa.store.create(
        "companies",
        {
            **{k: v for k, v in company.items() if k not in ("id", "_info", "identifier")},
            "identifier": "NulCo",
            "name": "Nul\x00Co",
        },
    )

    run = await pull(worker, integration)

    assert run.status == RunStatus.SUCCEEDED
    assert not await RecordLink.filter(kind="organization", psa_id=added["id"]).exists()
    assert not await Organization.filter(name__startswith="Nul").exists()
    issue = await SyncRunIssue.get(run_id=run.id, psa_id=added["id"])
    assert issue.code == "unstorable_value"
    assert "'Nul\\x00Co'" in issue.message  # escaped, so the message itself is storable


async def test_an_edit_waits_visible_while_the_psa_record_holds_an_unstorable_value(
    psa: Psa, connect: Connect, worker: Worker, account: Account
) -> None:
    integration = await connect()
    await worker.run_until_idle()
    integration = await two_way(worker, integration)
    org, psa_id = await a_synced_organization(psa, integration)
    await local_edits.update(
        AssetKind.ORGANIZATION, account.id, org.id, {"name": "Our Edit Holdings"}
    )
    identifier = psa.store.get("companies", psa_id)["identifier"]  # type: ignore[index]
    psa.store.update("companies", psa_id, {"identifier": identifier + "\x00"})
    writes = psa.simulator.traffic.writes

    await worker.run_until_idle()

    # Nothing sent over a version psasync could not merge; the edit is kept and says why.
    assert psa.simulator.traffic.writes == writes
    assert (await Organization.get(id=org.id)).name == "Our Edit Holdings"
    entry = await OutboxEntry.get(integration_id=integration.id, local_id=org.id)
    assert entry.status == OutboxStatus.FAILED
    assert entry.last_error is not None
    assert "holds a NUL character" in entry.last_error
    link = await link_of(integration, org.id)
    assert link.push_state == PushState.FAILED

    psa.store.update("companies", psa_id, {"identifier": identifier})
    await conflicts.retry_push(account.id, link.id)
    await worker.run_until_idle()

    company = psa.store.get("companies", psa_id)
    assert company is not None
    assert company["name"] == "Our Edit Holdings"
    assert company["identifier"] == identifier
    assert not await OutboxEntry.filter(integration_id=integration.id).exists()
    assert (await link_of(integration, org.id)).push_state == PushState.NONE
    assert await SyncRun.filter(integration_id=integration.id, status=RunStatus.FAILED).count() == 0


def test_text_longer_than_its_column_is_unstorable_like_on_postgresql() -> None:
    # SQLite would keep it; PostgreSQL's VARCHAR(n) refuses it: refused on both.
    limits = column_limits(Organization)
    assert first_unstorable({"name": "A" * 255}, limits) is None
    assert first_unstorable({"name": "A" * 256}, limits) == (
        "name",
        "is longer than 255 characters",
    )
    assert first_unstorable({"notes": "x \ud800"}) == (
        "notes",
        "holds a lone surrogate (not a valid Unicode character)",
    )
    assert first_unstorable({"emails": [{"value": "a\x00@b"}]}) == (
        "emails[0].value",
        "holds a NUL character",
    )
