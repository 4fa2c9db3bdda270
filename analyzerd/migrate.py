"""`analyzerd migrate`: move a SQLite database's jobs and results into PostgreSQL.

The source is first brought to the current schema (as any open does); the destination must
be empty. Everything is copied in one PostgreSQL transaction, table by table through COPY,
a batch at a time, so memory stays flat and a failure leaves the destination as it was.
Ids are kept, so job ids that users noted still name the same jobs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from .config import is_postgresql, redact
from .database import PostgresDatabase, SqliteDatabase
from .errors import ConfigError, StoreError

__all__ = ["TABLES", "migrate"]

#: Every table, parents before the tables that refer to them.
TABLES: Final = ("jobs", "images", "image_references", "layers", "layer_files", "layer_catalog",
                 "layer_whiteouts", "image_layers", "files", "packages", "layer_secrets", "secrets")
#: Tables whose id the database assigns: their sequences continue after the copied ids.
_IDENTITY: Final = ("jobs", "images", "layers", "packages", "secrets")
_BATCH: Final = 5_000


async def migrate(source: str, destination: str, *, password: str | None = None,
                  progress: Callable[[str, int], None] = lambda table, rows: None) -> dict[str, int]:
    """Copy the SQLite database at ``source`` into the PostgreSQL database ``destination``;
    rows copied by table."""
    if not is_postgresql(destination):
        raise ConfigError(f"migrate: the destination must be a postgresql:// database (--db or the config's "
                          f"'database'), not {destination}")
    if is_postgresql(source):
        raise ConfigError(f"migrate: the source must be a SQLite database, not {redact(source)}")
    if not os.path.isfile(source):
        raise StoreError(f"migrate: there is no SQLite database at {source}")
    src = await SqliteDatabase.open(source)
    try:
        dst = await PostgresDatabase.open(destination, password=password)
        try:
            return await _copy(src, dst, progress)
        finally:
            await dst.close()
    finally:
        await src.close()


async def _copy(src: SqliteDatabase, dst: PostgresDatabase,
                progress: Callable[[str, int], None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with src.snapshot() as reader, dst.transaction() as writer:
        for table in TABLES:
            if (await writer.run(f"SELECT EXISTS (SELECT 1 FROM {table}) AS used"))[0]["used"]:
                raise StoreError(f"migrate: the destination {dst.location} already has rows in {table}; "
                                 "migrate into an empty database")
        for table in TABLES:
            columns = [row["name"] for row in await reader.run(f"PRAGMA table_info({table})")]
            select = f"SELECT {', '.join(_quote(c) for c in columns)} FROM {table}"
            copied = 0
            async for rows in reader.batches(select, _BATCH):
                await writer.copy_rows(table, columns, rows)
                copied += len(rows)
            stored = (await writer.run(f"SELECT count(*) AS n FROM {table}"))[0]["n"]
            if stored != copied:
                raise StoreError(f"migrate: {table}: {copied} rows read but {stored} stored")
            counts[table] = copied
            progress(table, copied)
        for table in _IDENTITY:
            await writer.run(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                             f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
    return counts


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'
