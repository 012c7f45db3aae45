"""Tortoise configuration, start-up migrations, and a statement counter."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MODEL_MODULES = [
    "models.accounts",
    "models.assets",
    "models.reference",
    "models.integrations",
    "models.links",
    "models.runs",
    "models.outbox",
    "models.webhooks",
]


def tortoise_config(database_url: str) -> dict[str, Any]:
    return {
        "connections": {"default": database_url},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "migrations": "models.migrations",
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


# For `tortoise makemigrations` (pyproject [tool.tortoise]); the autodetector needs no database.
MIGRATIONS_CONFIG = tortoise_config("sqlite://:memory:")


async def migrate(database_url: str) -> None:
    """Apply committed migrations. Not safe to run from two processes at once (no lock)."""
    from tortoise import Tortoise
    from tortoise.migrations.api import migrate as run_migrations

    try:
        await run_migrations(config=tortoise_config(database_url))
    finally:
        await Tortoise.close_connections()


class QueryCounter(logging.Handler):
    """Counts the SQL statements Tortoise sends while installed (see ``count_queries``)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.lstrip().split(" ", 1)[0].upper() in _STATEMENTS:
            self.statements.append(message)

    @property
    def count(self) -> int:
        return len(self.statements)


_STATEMENTS = {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}


@contextmanager
def count_queries() -> Iterator[QueryCounter]:
    """Count the statements sent inside the block (tests and benchmarks)."""
    logger = logging.getLogger("tortoise.db_client")
    counter = QueryCounter()
    level = logger.level
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(level)
