"""PulsewayCredentials: the password stays out of repr/str, storage round-trips."""

from __future__ import annotations

import pytest

from sync.providers.pulseway import DEFAULT_HOST, PulsewayCredentials

PASSWORD = "S3cr3t-Passw0rd"


def make(**overrides: str | None) -> PulsewayCredentials:
    values: dict[str, str | None] = {
        "host": "https://api.psa.pulseway.com",
        "tenant": "acme",
        "user_name": "sync-api",
        "password": PASSWORD,
    }
    values.update(overrides)
    return PulsewayCredentials.from_dict(values)


@pytest.mark.parametrize("render", [repr, str, lambda c: f"{c}", lambda c: repr([c])])
def test_password_never_shows_when_rendered(render) -> None:  # type: ignore[no-untyped-def]
    text = render(make())

    assert PASSWORD not in text
    assert "acme" in text
    assert "sync-api" in text


def test_to_dict_and_from_dict_round_trip() -> None:
    creds = make(host="https://api.bmsemea.kaseya.com")

    assert PulsewayCredentials.from_dict(creds.to_dict()) == creds


def test_host_defaults_to_pulseway_production() -> None:
    assert make(host=None).host == DEFAULT_HOST
    assert make(host="  ").host == DEFAULT_HOST
    assert PulsewayCredentials(tenant="acme", user_name="u", password="p").host == DEFAULT_HOST


def test_whitespace_is_stripped_except_from_the_password() -> None:
    creds = make(tenant=" acme ", user_name=" sync-api\n", password=" pass word ")

    assert (creds.tenant, creds.user_name, creds.password) == ("acme", "sync-api", " pass word ")


def test_from_dict_ignores_unknown_keys() -> None:
    assert PulsewayCredentials.from_dict({**make().to_dict(), "later": "x"}) == make()


def test_from_dict_names_missing_fields_without_values() -> None:
    data = make().to_dict()
    del data["password"]
    data["tenant"] = ""

    with pytest.raises(ValueError, match="missing: tenant, password") as caught:
        PulsewayCredentials.from_dict(data)

    assert "sync-api" not in str(caught.value)


def test_set_fields_lists_filled_fields() -> None:
    assert make().set_fields() == ("tenant", "user_name", "password", "host")
