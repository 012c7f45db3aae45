"""ConnectWiseCredentials: secrets stay out of repr/str, storage round-trips."""

from __future__ import annotations

import pytest

from sync.providers.connectwise import ConnectWiseCredentials
from sync.providers.connectwise.credentials import ConnectWiseApi, MissingCredential

PUBLIC_KEY = "PubKey0123456789"
PRIVATE_KEY = "PrivKeyS3cr3tValue"
INTEGRATOR_PASSWORD = "Integr8torPassw0rd"


def make(**overrides: str | None) -> ConnectWiseCredentials:
    values: dict[str, str | None] = {
        "site_url": "https://na.myconnectwise.net",
        "company_id": "acme",
        "public_key": PUBLIC_KEY,
        "private_key": PRIVATE_KEY,
        "client_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    }
    values.update(overrides)
    return ConnectWiseCredentials.from_dict(values)


@pytest.mark.parametrize("render", [repr, str, lambda c: f"{c}", lambda c: repr([c])])
def test_secrets_never_show_when_rendered(render) -> None:  # type: ignore[no-untyped-def]
    creds = make(integrator_login_id="sync-bot", integrator_password=INTEGRATOR_PASSWORD)

    text = render(creds)

    assert PRIVATE_KEY not in text
    assert INTEGRATOR_PASSWORD not in text
    assert PUBLIC_KEY not in text
    assert "PubK…" in text
    assert "acme" in text


def test_to_dict_and_from_dict_round_trip() -> None:
    creds = make(integrator_login_id="sync-bot", integrator_password=INTEGRATOR_PASSWORD)

    assert ConnectWiseCredentials.from_dict(creds.to_dict()) == creds


def test_from_dict_ignores_unknown_keys() -> None:
    data = {**make().to_dict(), "added_in_a_later_version": "x"}

    assert ConnectWiseCredentials.from_dict(data) == make()


def test_from_dict_names_missing_fields_without_values() -> None:
    data = make().to_dict()
    del data["private_key"]
    data["public_key"] = ""

    with pytest.raises(ValueError, match="missing: public_key, private_key") as caught:
        ConnectWiseCredentials.from_dict(data)

    assert "acme" not in str(caught.value)


def test_pasted_whitespace_is_stripped_and_empty_optionals_are_none() -> None:
    creds = make(private_key=f"  {PRIVATE_KEY}\n", integrator_login_id="")

    assert creds.private_key == PRIVATE_KEY
    assert creds.integrator_login_id is None


def test_set_fields_names_what_has_a_value() -> None:
    assert make().set_fields() == (
        "site_url",
        "company_id",
        "public_key",
        "private_key",
        "client_id",
    )
    assert "integrator_password" in make(integrator_password="pw").set_fields()


def test_secret_fields_cover_every_secret() -> None:
    assert set(ConnectWiseCredentials.secret_fields) == {
        "public_key",
        "private_key",
        "integrator_password",
    }


def test_credentials_are_immutable() -> None:
    creds = make()

    with pytest.raises(AttributeError):
        creds.private_key = "other"  # type: ignore[misc]


_SITE = {"site_url": "https://na.myconnectwise.net", "company_id": "acme", "client_id": "c"}
_REST = {"public_key": PUBLIC_KEY, "private_key": PRIVATE_KEY}
_SOAP = {"integrator_login_id": "sync-bot", "integrator_password": INTEGRATOR_PASSWORD}


@pytest.mark.parametrize(
    ("given", "api"),
    [(_REST, ConnectWiseApi.REST), (_SOAP, ConnectWiseApi.SOAP),
     ({**_REST, **_SOAP}, ConnectWiseApi.REST)],
)  # fmt: skip
def test_setup_takes_either_set_or_both_and_rest_wins(
    given: dict[str, str], api: ConnectWiseApi
) -> None:
    creds = ConnectWiseCredentials.from_input({**_SITE, **given})
    assert creds.api == api
    if creds.has_integrator_login:  # the set testing the login alone opens SOAP
        assert creds.soap_only().api == ConnectWiseApi.SOAP


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"public_key": PUBLIC_KEY}, "private_key"),
        ({"private_key": PRIVATE_KEY, **_SOAP}, "public_key"),
        ({**_REST, "integrator_login_id": "sync-bot"}, "integrator_password"),
        ({"integrator_password": INTEGRATOR_PASSWORD}, "integrator_login_id"),
        ({}, None),
        ({"public_key": "  ", "integrator_login_id": ""}, None),
    ],
)
def test_setup_names_the_missing_half_of_a_set_without_values(
    given: dict[str, str], field: str | None
) -> None:
    with pytest.raises(MissingCredential) as raised:
        ConnectWiseCredentials.from_input({**_SITE, **given})
    assert raised.value.field == field
    for secret in (PUBLIC_KEY, PRIVATE_KEY, INTEGRATOR_PASSWORD):
        assert secret not in str(raised.value)
