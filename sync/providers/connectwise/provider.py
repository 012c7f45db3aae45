"""ConnectWise Manage as a ``PsaProvider``: the client's pages, mapped and scoped."""

from __future__ import annotations

from collections.abc import AsyncIterator

from models.enums import ReferenceKind
from sync.providers.base import ProviderScope, PsaRecord, PsaReference
from sync.providers.connectwise import mapping
from sync.providers.connectwise.client import ConnectWiseClient, Page, Resource
from sync.providers.connectwise.query import cw_and, cw_cmp, cw_eq, cw_in


class ConnectWiseProvider:
    display_name = "ConnectWise Manage"

    def __init__(self, client: ConnectWiseClient) -> None:
        self.client = client

    async def check_connection(self) -> None:
        await self.client.check_connection()

    async def reference_data(self) -> dict[ReferenceKind, list[PsaReference]]:
        c = self.client
        lists = {
            ReferenceKind.ORGANIZATION_TYPE: await c.company_types(),
            ReferenceKind.ORGANIZATION_STATUS: await c.company_statuses(),
            ReferenceKind.CONFIGURATION_TYPE: await c.configuration_types(),
            ReferenceKind.CONFIGURATION_STATUS: await c.configuration_statuses(),
            ReferenceKind.CONTACT_TYPE: await c.contact_types(),
        }
        return {
            kind: [PsaReference(int(raw["id"]), mapping.reference_name(raw)) for raw in raws]
            for kind, raws in lists.items()
        }

    async def estimate_total(self, scope: ProviderScope, *, contacts: bool) -> int | None:
        # Sites can only be counted per company: the engine adds them as it fetches them.
        total = await self.client.count(Resource.COMPANIES, _company_conditions(scope, None))
        total += await self.client.count(
            Resource.CONFIGURATIONS, _configuration_conditions(scope, None)
        )
        if contacts:
            total += await self.client.count(Resource.CONTACTS)
        return total

    async def organizations(
        self, scope: ProviderScope, *, after: int | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        async for page in self.client.companies(_company_conditions(scope, after)):
            yield _map(mapping.COMPANY, page)

    async def locations(self, organization_psa_id: int) -> AsyncIterator[list[PsaRecord]]:
        async for page in self.client.sites(organization_psa_id):
            yield _map(mapping.SITE, page)

    async def contacts(self, *, after: int | None = None) -> AsyncIterator[list[PsaRecord]]:
        async for page in self.client.contacts(_after(after)):
            yield _map(mapping.CONTACT, page)

    async def configurations(
        self, scope: ProviderScope, *, after: int | None = None
    ) -> AsyncIterator[list[PsaRecord]]:
        async for page in self.client.configurations(_configuration_conditions(scope, after)):
            yield _map(mapping.CONFIGURATION, page)

    async def aclose(self) -> None:
        return None


def _company_conditions(scope: ProviderScope, after: int | None) -> str:
    # Status filters at the source. Types cannot: a company is in scope only when ALL its
    # types are enabled, which ConnectWise conditions cannot say; the engine checks that.
    return cw_and(
        cw_eq("deletedFlag", False),
        cw_in("status/id", sorted(scope.ids(ReferenceKind.ORGANIZATION_STATUS)) or [0]),
        _after(after),
    )


def _configuration_conditions(scope: ProviderScope, after: int | None) -> str:
    return cw_and(
        cw_in("type/id", sorted(scope.ids(ReferenceKind.CONFIGURATION_TYPE)) or [0]),
        cw_in("status/id", sorted(scope.ids(ReferenceKind.CONFIGURATION_STATUS)) or [0]),
        _after(after),
    )


def _after(after: int | None) -> str | None:
    return None if after is None else cw_cmp("id", ">", after)


def _map(table: mapping.RecordMap, page: Page) -> list[PsaRecord]:
    return [table.to_record(raw) for raw in page]
