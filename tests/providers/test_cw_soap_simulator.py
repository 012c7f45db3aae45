"""ConnectWiseSoapClient against the ConnectWise simulator's SOAP face, over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from models.enums import ReferenceKind
from simulators.connectwise import (
    ConnectWiseSimulator,
    DatasetSpec,
    generate_dataset,
    serve_in_thread,
)
from simulators.connectwise.app import ApiCredentials
from simulators.connectwise.soap import IntegratorLogin
from sync.errors import CredentialsError
from sync.providers.connectwise import ConnectWiseCredentials
from sync.providers.connectwise.soap import ConnectWiseSoapClient, clear_wsdl_cache
from sync.providers.connectwise.soap_provider import ConnectWiseSoapProvider
from sync.providers.urls import build_http_client

LOGIN = IntegratorLogin("soap-login", "soap-secret-123")


@pytest.fixture
async def site() -> AsyncIterator[str]:
    clear_wsdl_cache()
    simulator = ConnectWiseSimulator(
        generate_dataset(DatasetSpec(companies=12, seed=5)),
        credentials=ApiCredentials(company_id="acme"),
        integrator=LOGIN,
    )
    async with serve_in_thread(simulator) as url:
        yield url
    clear_wsdl_cache()


def soap_credentials(site: str, password: str = LOGIN.password) -> ConnectWiseCredentials:
    return ConnectWiseCredentials(
        site_url=site,
        company_id="acme",
        public_key="unused-public",
        private_key="unused-private",
        client_id="unused",
        integrator_login_id=LOGIN.login_id,
        integrator_password=password,
    )


async def test_find_pages_every_company_and_get_reads_one(site: str) -> None:
    async with build_http_client() as http:
        client = ConnectWiseSoapClient(http, soap_credentials(site), sandbox=True, page_size=5)

        pages = [page async for page in client.find("company", order_by="CompanyRecID")]
        ids = [row["CompanyRecID"] for page in pages for row in page]
        record = await client.get("company", ids[0])

    assert [len(page) for page in pages][:-1] == [5] * (len(pages) - 1)
    assert len(ids) == len(set(ids)) == 12
    assert record is not None
    assert record["Id"] == ids[0]


async def test_a_wrong_password_is_a_credentials_error(site: str) -> None:
    async with build_http_client() as http:
        client = ConnectWiseSoapClient(http, soap_credentials(site, "wrong-password"), sandbox=True)
        with pytest.raises(CredentialsError) as caught:
            await client.count("contact")

    assert "wrong-password" not in str(caught.value)


async def test_a_configuration_type_no_configuration_uses_is_offered_through_soap() -> None:
    """FindConfigurationTypes lists every type: a type nobody uses yet can still be enabled
    (company types and statuses, which SOAP does not list, come from the records only)."""
    clear_wsdl_cache()
    dataset = generate_dataset(DatasetSpec(companies=6, seed=5))
    simulator = ConnectWiseSimulator(
        dataset, credentials=ApiCredentials(company_id="acme"), integrator=LOGIN
    )
    unused = simulator.store.create("configuration_types", {"name": "Unused Appliance"})
    async with serve_in_thread(simulator) as url, build_http_client() as http:
        client = ConnectWiseSoapClient(http, soap_credentials(url), sandbox=True, page_size=3)
        provider = ConnectWiseSoapProvider(client)
        lists = await provider.reference_data()
    clear_wsdl_cache()
    types = {r.psa_id: r.name for r in lists[ReferenceKind.CONFIGURATION_TYPE]}
    assert types[unused["id"]] == "Unused Appliance"
    used = {c["type"]["id"] for c in simulator.store.find("configurations")}
    assert used < set(types)
