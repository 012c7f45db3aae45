"""The CLI refuses the text the GraphQL API refuses, before it opens the database: an
argument from bytes that are not UTF-8 (a lone surrogate once decoded), a control character,
or more than the column holds."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from api.cli import main


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["accounts", "create", "A" * 201], "longer than 200 characters"),
        (["accounts", "create", "Acme\udcff"], "lone surrogate"),
        (["keys", "create", "--account", "Acme", "--name", "ci\x1b[2J"], "control character"),
        (["keys", "create", "--account", "Acme", "--email", "a@" + "b" * 253], "254"),
    ],
)
def test_text_the_database_cannot_store_as_given_is_a_usage_error(
    args: list[str], why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unreachable database: the command must stop before it is opened.
    monkeypatch.setenv("PSASYNC_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert why in result.output
