"""What the benchmark scripts share: a lock against concurrent runs, and throwaway
PostgreSQL databases (whose names must contain "bench": they are dropped and re-created)."""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg


@contextlib.contextmanager
def machine_lock(script: Path, say: Callable[[str], None]) -> Iterator[None]:
    """One run of ``script`` at a time (it locks itself): two runs would measure each other."""
    import fcntl

    with script.open("rb") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another run of this benchmark is in progress: waiting for it to finish ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


def server_and_name(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"use a plain database name in the PostgreSQL URL, not {name!r}")
    if "bench" not in name:  # it is dropped and re-created: never someone's real database
        raise ValueError(f"the benchmark database's name must contain 'bench', not {name!r}")
    return urlunsplit(parts._replace(scheme="postgresql", path="/postgres", query="")), name


async def fresh_database(url: str) -> None:
    """Drop and create the PostgreSQL database of ``url`` (SQLite: nothing to do)."""
    if not is_postgres(url):
        return
    server, name = server_and_name(url)
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    server, name = server_and_name(url)
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def describe_backend(url: str, sqlite_note: str = "") -> str:
    if not is_postgres(url):
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL){sqlite_note}"
    server, _ = server_and_name(url)
    conn = await asyncpg.connect(server)
    try:
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return f"PostgreSQL {version} (127.0.0.1, asyncpg)"


def sources_fingerprint(packages: Sequence[str]) -> str:
    """Which code was measured: a digest of the packages' sources, and the newest file."""
    import importlib.util

    digest = hashlib.sha256()
    newest = (0.0, "")
    for package in packages:
        found = importlib.util.find_spec(package)
        if found is None or found.origin is None:
            raise RuntimeError(f"cannot find the {package!r} package: is psasync installed?")
        root = Path(found.origin).parent.parent
        for path in sorted((root / package).rglob("*.py")):
            name = str(path.relative_to(root))
            digest.update(name.encode() + b"\0" + path.read_bytes())
            newest = max(newest, (path.stat().st_mtime, name))
    stamp = datetime.fromtimestamp(newest[0], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    listed = ", ".join(f"{p}/" for p in packages)
    return f"sources {digest.hexdigest()[:12]} ({listed}; newest {newest[1]}, {stamp})"


def print_profile(what: str, path: str) -> None:
    import pstats

    print(f"cProfile of the {what} ({path}), top 25 by own time:")
    stats = pstats.Stats(path, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(25)
    print("top 40 by cumulative time:")
    stats.sort_stats("cumulative").print_stats(40)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(title: str, rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> None:
    """Label, one or more values (each right-aligned in its column), note; ``header`` names
    the value columns (for figures side by side)."""
    values = len(rows[0]) - 2
    named = [("", *header, "")] if header else []
    width = max(len(r[0]) for r in rows)
    widths = [max(len(r[1 + i]) for r in [*named, *rows]) for i in range(values)]
    print(title)
    print("-" * len(title))
    for label, *cells, note in [*named, *rows]:
        shown = "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))
        print(f"  {label:<{width}}  {shown}  {note}".rstrip())
    print()
