"""Planner statistics while a first sync fills empty tables (PostgreSQL).

A first sync grows tables from nothing in minutes, faster than autovacuum re-analyzes them.
With statistics that still say "a few rows", PostgreSQL picks the wrong index for the
per-page reads and every page scans the whole table: the sync turns quadratic. Analyzing
the tables a phase writes as they grow (pages 2, 8, 32, 128, then at the phase's end) keeps
the plans right for a few hundred milliseconds in all. SQLite plans by index shape alone.
"""

from __future__ import annotations

from tortoise import connections

from models import ASSET_MODELS, AssetKind, RecordLink
from sync.context import RunContext

_CHECKPOINTS = frozenset({2, 8, 32, 128})


async def refresh(ctx: RunContext, kind: AssetKind) -> None:
    if ctx.dry_run:
        return
    connection = connections.get("default")
    if connection.capabilities.dialect != "postgres":
        return
    for model in (ASSET_MODELS[kind], RecordLink):
        await connection.execute_script(f'ANALYZE "{model._meta.db_table}"')


async def refresh_as_tables_grow(ctx: RunContext, kind: AssetKind, pages_written: int) -> None:
    if pages_written in _CHECKPOINTS:
        await refresh(ctx, kind)
