"""ConnectWise setup with either credential set or both, through GraphQL against the simulator
serving REST and SOAP over one store: each set is tested before anything is stored, an error
names the set that failed, the integration says which API it uses, and adding REST keys to a
SOAP-only integration moves it to REST without re-creating anything."""

from __future__ import annotations

from typing import Any

import pytest
from harness import CREDENTIALS, GraphQLClient, Psa

from models import (
    Configuration,
    Contact,
    Integration,
    LinkState,
    Location,
    Organization,
    RecordLink,
    RunKind,
    RunStatus,
    RunTrigger,
    SyncRun,
)
from simulators.connectwise.soap import IntegratorLogin
from sync.providers.connectwise.credentials import SOAP_NOTICE
from sync.runner import Worker

LOGIN = IntegratorLogin()  # what the simulator accepts by default
REST = {"publicKey": CREDENTIALS.public_key, "privateKey": CREDENTIALS.private_key}
SOAP = {"integratorLoginId": LOGIN.login_id, "integratorPassword": LOGIN.password}
SECRETS = (CREDENTIALS.public_key, CREDENTIALS.private_key, LOGIN.password)

CREATE = """
mutation($input: CreateIntegrationInput!) {
  createIntegration(input: $input) {
    integration { id api apiNotice credentials { setFields publicKeyHint } }
    run { id }
    errors { code message field }
  }
}"""

SHOW = """
query($id: ID!) {
  integration(id: $id) { api apiNotice credentials { setFields publicKeyHint } }
}"""

UPDATE = """
mutation($input: UpdateIntegrationCredentialsInput!) {
  updateIntegrationCredentials(input: $input) {
    integration { api apiNotice credentials { setFields } }
    errors { code message field }
  }
}"""


def _input(psa: Psa, **credentials: Any) -> dict[str, Any]:
    given = {
        "siteUrl": psa.base_url,
        "companyId": CREDENTIALS.company_id,
        "clientId": "psasync-tests",
        **credentials,
    }
    given = {k: v for k, v in given.items() if v is not None}  # None: leave the field out
    return {"provider": "CONNECTWISE_MANAGE", "name": "ConnectWise", "sandbox": True,
            "connectwise": given}  # fmt: skip


async def _create(admin: GraphQLClient, psa: Psa, **credentials: Any) -> tuple[dict[str, Any], str]:
    body = await admin.execute(CREATE, {"input": _input(psa, **credentials)})
    assert "errors" not in body, body
    return body["data"]["createIntegration"], str(body)


async def _nothing_stored() -> None:
    assert await Integration.all().count() == 0
    assert await SyncRun.all().count() == 0


@pytest.mark.parametrize(
    ("given", "api", "fields"),
    [
        (REST, "REST", {"publicKey", "privateKey"}),
        (SOAP, "SOAP", {"integratorLoginId", "integratorPassword"}),
        (
            {**REST, **SOAP},
            "REST",
            {"publicKey", "privateKey", "integratorLoginId", "integratorPassword"},
        ),
    ],
    ids=["rest-only", "soap-only", "both"],
)
async def test_each_credential_set_or_both_connects_and_shows_the_api_in_use(
    admin: GraphQLClient, psa: Psa, given: dict[str, str], api: str, fields: set[str]
) -> None:
    created, body = await _create(admin, psa, **given)
    assert created["errors"] == []
    integration = created["integration"]
    assert integration["api"] == api
    assert integration["apiNotice"] == (SOAP_NOTICE if api == "SOAP" else None)
    shown = set(integration["credentials"]["setFields"])
    assert shown & {"publicKey", "privateKey", "integratorLoginId", "integratorPassword"} == fields
    assert (integration["credentials"]["publicKeyHint"] is None) == ("publicKey" not in fields)
    for secret in SECRETS:
        assert secret not in body

    again = await admin.execute(SHOW, {"id": integration["id"]})
    assert again["data"]["integration"]["api"] == api
    for secret in SECRETS:
        assert secret not in str(again)


@pytest.mark.parametrize(
    ("given", "code", "field"),
    [
        ({**REST, **SOAP, "integratorPassword": "wrong"}, "INVALID_CREDENTIALS",
         "connectwise.integratorPassword"),
        ({**SOAP, "integratorPassword": "wrong"}, "INVALID_CREDENTIALS",
         "connectwise.integratorPassword"),
        ({**REST, **SOAP, "privateKey": "wrong"}, "INVALID_CREDENTIALS",
         "connectwise.privateKey"),
        ({**REST, "privateKey": "wrong"}, "INVALID_CREDENTIALS", "connectwise.privateKey"),
        ({**REST, "integratorLoginId": LOGIN.login_id}, "INVALID_INPUT",
         "connectwise.integratorPassword"),
        ({"integratorPassword": LOGIN.password}, "INVALID_INPUT",
         "connectwise.integratorLoginId"),
        ({"publicKey": CREDENTIALS.public_key, **SOAP}, "INVALID_INPUT",
         "connectwise.privateKey"),
        ({"privateKey": CREDENTIALS.private_key}, "INVALID_INPUT", "connectwise.publicKey"),
        ({}, "INVALID_INPUT", "connectwise"),
        ({"publicKey": " ", "privateKey": ""}, "INVALID_INPUT", "connectwise"),
        ({**REST, **SOAP, "clientId": None}, "INVALID_INPUT", "connectwise.clientId"),
    ],
    ids=[
        "wrong-soap-password-with-rest", "wrong-soap-password", "wrong-rest-key-with-soap",
        "wrong-rest-key", "login-without-password", "password-without-login",
        "public-key-without-private", "private-key-without-public", "neither", "blank-keys",
        "rest-keys-without-client-id",
    ],
)  # fmt: skip
async def test_a_failing_or_half_given_set_is_named_and_nothing_is_stored(
    admin: GraphQLClient, psa: Psa, given: dict[str, str], code: str, field: str
) -> None:
    created, body = await _create(admin, psa, **given)
    assert created["integration"] is None
    assert [(e["code"], e["field"]) for e in created["errors"]] == [(code, field)]
    assert created["errors"][0]["message"]
    for secret in (*SECRETS, "wrong"):
        assert secret not in body
    await _nothing_stored()


async def _switched(
    admin: GraphQLClient, psa: Psa, worker: Worker
) -> tuple[dict[str, Any], SyncRun]:
    """A synced SOAP-only integration given REST keys, then synced again: the records and
    links before the switch, and the run after it."""
    created, _body = await _create(admin, psa, **SOAP)
    integration_id = created["integration"]["id"]
    await worker.run_until_idle()
    assert (await SyncRun.all().order_by("-queued_at").first()).status == RunStatus.SUCCEEDED  # type: ignore[union-attr]
    before = await _records()
    assert before["links"]

    refused = await admin.data(
        UPDATE,
        {"input": {"integrationId": integration_id,
                   "connectwise": {**REST, "privateKey": "wrong"}}},
    )  # fmt: skip
    assert [(e["code"], e["field"]) for e in refused["updateIntegrationCredentials"]["errors"]] == [
        ("INVALID_CREDENTIALS", "connectwise.privateKey")
    ]
    half = await admin.data(
        UPDATE,
        {"input": {"integrationId": integration_id,
                   "connectwise": {"publicKey": CREDENTIALS.public_key}}},
    )  # fmt: skip
    assert [(e["code"], e["field"]) for e in half["updateIntegrationCredentials"]["errors"]] == [
        ("INVALID_INPUT", "connectwise.privateKey")
    ]
    still = await admin.data(SHOW, {"id": integration_id})
    assert still["integration"]["api"] == "SOAP"

    body = await admin.execute(
        UPDATE, {"input": {"integrationId": integration_id, "connectwise": REST}}
    )
    updated = body["data"]["updateIntegrationCredentials"]
    assert updated["errors"] == []
    assert updated["integration"]["api"] == "REST"
    assert updated["integration"]["apiNotice"] is None
    assert {"integratorLoginId", "integratorPassword"} <= set(
        updated["integration"]["credentials"]["setFields"]
    )  # the SOAP set is kept
    for secret in SECRETS:
        assert secret not in str(body)

    # The change of API queued a run at once: pushes and notices wait for its link check.
    queued = await SyncRun.filter(status=RunStatus.QUEUED).values_list("kind", "trigger")
    assert queued == [(RunKind.INCREMENTAL, RunTrigger.SETTINGS)]
    await worker.run_until_idle()
    last = await SyncRun.all().order_by("-queued_at").first()
    assert last is not None
    assert last.status == RunStatus.SUCCEEDED, last.error
    return before, last


async def test_adding_rest_keys_to_a_soap_only_integration_moves_it_to_rest_creating_nothing(
    admin: GraphQLClient, psa: Psa, worker: Worker
) -> None:
    before, run = await _switched(admin, psa, worker)
    assert run.created == 0
    after = await _records()
    for kind in ("Organization", "Location", "Contact", "Configuration"):
        assert after[kind] == before[kind], kind
    # Every link is still there, on the same record and PSA id (one store, one id per record).
    assert [link[:3] for link in after["links"]] == [link[:3] for link in before["links"]]


async def test_adding_rest_keys_to_a_soap_only_integration_orphans_nothing(
    admin: GraphQLClient, psa: Psa, worker: Worker
) -> None:
    before, run = await _switched(admin, psa, worker)
    assert run.orphaned == 0
    assert await _records() == before


async def _records() -> dict[str, Any]:
    """Every record id and every link, to compare before and after the switch."""
    found: dict[str, Any] = {}
    for model in (Organization, Location, Contact, Configuration):
        found[model.__name__] = sorted(
            str(i) for i in await model.all().values_list("id", flat=True)
        )
    links = await RecordLink.all().values_list("kind", "psa_id", "local_id", "state")
    found["links"] = sorted((str(k), p, str(local), str(s)) for k, p, local, s in links)
    found["orphaned"] = await RecordLink.filter(state=LinkState.ORPHANED).count()
    return found


async def test_the_integrator_login_alone_needs_no_client_id_until_rest_keys_are_added(
    admin: GraphQLClient, psa: Psa
) -> None:
    """Only REST calls send the developer client id: an on-premise SOAP user who has none
    connects, and is asked for it with the REST keys."""
    created, _body = await _create(admin, psa, **SOAP, clientId=None)
    assert created["errors"] == []
    assert created["integration"]["api"] == "SOAP"
    integration_id = created["integration"]["id"]

    refused = await admin.execute(
        UPDATE, {"input": {"integrationId": integration_id, "connectwise": REST}}
    )
    answer = refused["data"]["updateIntegrationCredentials"]
    assert [(e["code"], e["field"]) for e in answer["errors"]] == [
        ("INVALID_INPUT", "connectwise.clientId")
    ]
    shown = await admin.execute(SHOW, {"id": integration_id})
    assert shown["data"]["integration"]["api"] == "SOAP"  # nothing changed

    given = {**REST, "clientId": "psasync-tests"}
    moved = await admin.execute(
        UPDATE, {"input": {"integrationId": integration_id, "connectwise": given}}
    )
    answer = moved["data"]["updateIntegrationCredentials"]
    assert answer["errors"] == []
    assert answer["integration"]["api"] == "REST"


async def test_a_soap_only_integration_says_it_cannot_list_psa_users(
    admin: GraphQLClient, psa: Psa
) -> None:
    """The SOAP WSDLs have no member API: the invite step asks for REST keys instead."""
    created, _body = await _create(admin, psa, **SOAP)
    body = await admin.execute(
        "query($id: ID!) { integration(id: $id) { psaUsers { psaId } } }",
        {"id": created["integration"]["id"]},
    )
    error = body["errors"][0]
    assert error["extensions"]["code"] == "NOT_SUPPORTED"
    assert "REST" in error["message"]


async def test_listing_users_over_several_integrations_fails_only_the_soap_one(
    admin: GraphQLClient, psa: Psa
) -> None:
    """One integration that cannot list its users must not blank the others' answer."""
    for name, credentials in (("REST one", REST), ("SOAP one", SOAP)):
        body = await admin.execute(CREATE, {"input": {**_input(psa, **credentials), "name": name}})
        assert body["data"]["createIntegration"]["errors"] == [], body
    body = await admin.execute("{ integrations { name psaUsers { email } } }")
    listed = {i["name"]: i["psaUsers"] for i in body["data"]["integrations"]}
    assert listed["REST one"]  # the REST integration's users are there
    assert listed["SOAP one"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "NOT_SUPPORTED"
