"""Planner statistics while a sync fills tables.

A first sync grows tables from nothing in minutes, faster than autovacuum re-analyzes them.
With statistics that still say "a few rows", PostgreSQL picks the wrong index for the
per-page reads and every page scans the whole table: the sync turns quadratic. Analyzing
the tables a phase writes as they grow (pages 2, 8, 32, 128, then at the phase's end) keeps
the plans right for a few hundred milliseconds in all.

SQLite has no statistics until ANALYZE runs; without them it resolves ``id IN (…) AND
account_id = ?`` through the (account_id, match_key) index, walking every row of the
account, instead of the primary key. So each phase ends with an ANALYZE there too (about
0.1 s per 100k rows), once, not at the growth checkpoints.
"""

from __future__ import annotations

from tortoise import connections

from models import ASSET_MODELS, AssetKind, RecordLink
from sync.context import RunContext

_CHECKPOINTS = frozenset({2, 8, 32, 128})


async def refresh(ctx: RunContext, kind: AssetKind, *, growing: bool = False) -> None:
    if ctx.dry_run:
        return
    connection = connections.get("default")
    if growing and connection.capabilities.dialect != "postgres":
        return
    await analyze(ASSET_MODELS[kind]._meta.db_table, RecordLink._meta.db_table)


async def analyze(*tables: str) -> None:
    connection = connections.get("default")
    for table in tables:
        await connection.execute_script(f'ANALYZE "{table}"')


async def refresh_as_tables_grow(ctx: RunContext, kind: AssetKind, pages_written: int) -> None:
    if pages_written in _CHECKPOINTS:
        await refresh(ctx, kind, growing=True)
