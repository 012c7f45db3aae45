"""SOAP records map to the REST mapping's local columns; SOAP-only credentials."""

from __future__ import annotations

import pytest

from models.enums import ReferenceKind
from sync.providers.connectwise import mapping
from sync.providers.connectwise.credentials import ConnectWiseCredentials

_SOAP_ONLY = {
    "site_url": "https://cw.example.com",
    "company_id": "acme",
    "client_id": "psasync",
    "integrator_login_id": "login",
    "integrator_password": "secret-password",
}


def test_a_synthetic_reference_id_is_stable_case_insensitive_and_above_real_ids() -> None:
    assert mapping.synthetic_id("Client") == mapping.synthetic_id(" client ")
    assert mapping.synthetic_id("Client") != mapping.synthetic_id("Vendor")
    # 2**40 + the first 39 bits of sha256(b"client"): never changes between processes.
    assert mapping.synthetic_id("Client") == 1418546315771
    assert mapping.synthetic_id("Client") > mapping.SYNTHETIC_ID_BASE


def test_a_soap_company_maps_to_the_rest_columns_with_types_by_name() -> None:
    record = mapping.SOAP_COMPANY.to_record(
        {
            "Id": 250,
            "CompanyID": "ACME",
            "CompanyName": "Acme Corp",
            "Type": "Client",
            "Status": "Active",
            "DefaultAddress": {"Id": 12},
            "LastUpdate": "2026-01-02T03:04:05Z",
        }
    )
    assert record.psa_id == 250
    assert record.values == {"name": "Acme Corp", "short_name": "ACME"}
    assert record.refs == {"parent": None, "primary_location": 12}
    assert record.codes == {
        ReferenceKind.ORGANIZATION_TYPE: (mapping.synthetic_id("Client"),),
        ReferenceKind.ORGANIZATION_STATUS: (mapping.synthetic_id("Active"),),
    }
    assert record.updated_at is not None


def test_soap_maps_cover_every_rest_column() -> None:
    for kind, table in mapping.SOAP_RECORD_MAPS.items():
        rest = mapping.RECORD_MAPS[kind]
        assert set(table.fields) == {f.local for f in rest.fields}, kind
        assert set(table.refs) == {r.name for r in rest.refs}, kind
        assert set(table.codes) == {c.kind for c in rest.codes}, kind


def test_credentials_without_rest_keys_need_the_integrator_login() -> None:
    stored = ConnectWiseCredentials.from_stored(_SOAP_ONLY)
    assert not stored.has_rest_keys
    assert stored.public_key_hint is None
    with pytest.raises(ValueError, match="integrator_login_id and integrator_password"):
        ConnectWiseCredentials.from_stored({**_SOAP_ONLY, "integrator_password": None})


def test_setup_still_requires_the_rest_keys() -> None:
    with pytest.raises(ValueError, match="missing: public_key, private_key"):
        ConnectWiseCredentials.from_dict(_SOAP_ONLY)
