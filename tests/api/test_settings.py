"""Settings: documented defaults, a generated secret key, and clear errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from api.settings import DEFAULT_DATABASE_URL, SettingsError, load_settings, redact_url
from models.vault import Vault


def test_defaults_use_an_sqlite_file_and_generate_a_secret_key_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "key"
    with caplog.at_level(logging.WARNING):
        first = load_settings({"PSASYNC_SECRET_KEY_FILE": str(key_file)})
    assert first.database_url == DEFAULT_DATABASE_URL
    assert first.is_sqlite
    assert (first.host, first.port) == ("127.0.0.1", 8000)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "generated a key" in caplog.text
    again = load_settings({"PSASYNC_SECRET_KEY_FILE": str(key_file)})
    assert again.secret_keys == first.secret_keys


def test_several_keys_rotate_old_tokens_stay_readable() -> None:
    old, new = Vault.generate_key(), Vault.generate_key()
    token = Vault([old]).encrypt({"private_key": "s3cret"})
    settings = load_settings({"PSASYNC_SECRET_KEY": f"{new},{old}"})
    assert settings.vault.decrypt(token) == {"private_key": "s3cret"}


def test_the_settings_repr_hides_keys_and_database_passwords() -> None:
    key = Vault.generate_key()
    settings = load_settings(
        {"PSASYNC_SECRET_KEY": key, "PSASYNC_DATABASE_URL": "postgres://app:hunter2@db/psasync"}
    )
    assert key not in repr(settings)
    assert "hunter2" not in repr(settings)
    assert redact_url("postgres://app:hunter2@db/x") == "postgres://app:***@db/x"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PSASYNC_PORT": "70000"}, "between 1 and 65535"),
        ({"PSASYNC_WORKER": "perhaps"}, "PSASYNC_WORKER must be true or false"),
        ({"PSASYNC_SECRET_KEY": "short"}, "32 url-safe base64-encoded bytes"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({"PSASYNC_SECRET_KEY": Vault.generate_key(), **env})
