"""The PSA's licensed, active users, as the invite step lists them: over real HTTP to each
simulator. ConnectWise: active members with a user licence, not API members, subcontractors
only when asked; SOAP has no member list and says so. Pulseway PSA: active employees, less
the integration's own API employee (others cannot be told apart: they are listed)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from harness import Psa, pulseway_login
from pulseway_contract import Recorder

from simulators.connectwise import ConnectWiseSimulator, DatasetSpec, generate_dataset
from simulators.connectwise.app import ApiCredentials
from simulators.connectwise.server import serve_in_thread
from simulators.connectwise.soap import IntegratorLogin
from simulators.pulseway import DatasetSpec as PulsewaySpec
from simulators.pulseway import PulsewaySimulator
from simulators.pulseway import generate_dataset as pulseway_dataset
from sync.connections import connectwise_provider, pulseway_provider
from sync.providers.base import NotSupportedError
from sync.providers.connectwise import ConnectWiseCredentials
from sync.providers.connectwise.soap import clear_wsdl_cache

SOAP_LOGIN = IntegratorLogin("soap-login", "soap-secret-123")


async def test_connectwise_lists_active_licensed_members_only(psa: Psa) -> None:
    provider = connectwise_provider(psa.credentials(), sandbox=True)
    try:
        users = await provider.psa_users()
    finally:
        await provider.aclose()
    by_email = {u.email: u for u in users}
    assert "jsmith@simulated-msp.example" in by_email
    assert by_email["jsmith@simulated-msp.example"].name == "Jane Smith"
    # officeEmail wins over primaryEmail
    assert "lfoster@simulated-msp.example" in by_email
    # StreamlineIT (class C) users are licensed people too
    assert "frontdesk@simulated-msp.example" in by_email
    # inactive members, API members (the integration's own included) and subcontractors: out
    names = {u.name for u in users}
    assert "Dana Wright" not in names
    assert "RMM Integration" not in names
    assert "API Member" not in names
    assert "Sam Ortiz" not in names
    assert [u.psa_id for u in users] == sorted(u.psa_id for u in users)


async def test_connectwise_lists_subcontractors_when_asked(psa: Psa) -> None:
    provider = connectwise_provider(psa.credentials(), sandbox=True)
    try:
        users = await provider.psa_users(subcontractors=True)
    finally:
        await provider.aclose()
    assert "sam@ortiz-networks.example" in {u.email for u in users}
    assert "RMM Integration" not in {u.name for u in users}


@pytest.fixture
async def soap_site() -> AsyncIterator[str]:
    clear_wsdl_cache()
    simulator = ConnectWiseSimulator(
        generate_dataset(DatasetSpec(companies=3, seed=5)),
        credentials=ApiCredentials(company_id="acme"),
        integrator=SOAP_LOGIN,
    )
    async with serve_in_thread(simulator) as url:
        yield url
    clear_wsdl_cache()


async def test_connectwise_soap_says_it_has_no_member_list(soap_site: str) -> None:
    credentials = ConnectWiseCredentials(
        site_url=soap_site,
        company_id="acme",
        public_key=None,
        private_key=None,
        client_id=None,
        integrator_login_id=SOAP_LOGIN.login_id,
        integrator_password=SOAP_LOGIN.password,
    )
    provider = connectwise_provider(credentials, sandbox=True)
    try:
        with pytest.raises(NotSupportedError, match="REST API member keys"):
            await provider.psa_users()
    finally:
        await provider.aclose()


async def test_pulseway_lists_active_employees_but_its_own_login(
    pulseway_contract: Recorder,
) -> None:
    simulator = PulsewaySimulator(pulseway_dataset(PulsewaySpec(accounts=2, seed=3)))
    async with serve_in_thread(pulseway_contract.wrap(simulator.app)) as base_url:
        provider = pulseway_provider(pulseway_login(simulator, base_url), sandbox=True)
        try:
            users = await provider.psa_users()
        finally:
            await provider.aclose()
    usernames = {(u.email or "").split("@")[0] for u in users}
    assert "jane.tech" in usernames
    assert "sam.tech" in usernames
    assert "old.tech" not in usernames  # inactive
    assert simulator.credentials.username not in usernames  # the integration's own login
    # Another API employee looks like a person in Pulseway's answer: it is listed.
    assert "rmm.api" in usernames
    jane = next(u for u in users if u.email and u.email.startswith("jane.tech@"))
    assert jane.name == "Jane Tech"
