"""Tortoise configuration and start-up migrations."""

from __future__ import annotations

from typing import Any

MODEL_MODULES = [
    "models.accounts",
    "models.assets",
    "models.reference",
    "models.integrations",
    "models.links",
    "models.runs",
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
