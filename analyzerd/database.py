"""The two databases analyzerd keeps its job queue and results in, behind one small interface.

SQLite is the embedded default: one file that the daemons and the CLI of one host share.
PostgreSQL (``postgresql://user@host/db``, the optional ``asyncpg`` extra) lets daemons on
many hosts share one queue and one set of results.

The store speaks to both the same way: named statements from ``sql/queries.sql`` with
``:name`` (dict) or ``?`` (tuple) parameters, and rows that index by column name and
position. Both run the same migrations from ``sql/schema.sql``. What PostgreSQL needs
differently is kept here and in ``sql/postgresql.sql``:

- column types are mapped (``INTEGER`` -> ``BIGINT``, ``REAL`` -> ``DOUBLE PRECISION``,
  ``TEXT`` -> ``TEXT COLLATE "C"``: byte order, so every ``ORDER BY`` sorts as SQLite's does);
- ``offset``, a reserved word there, is quoted;
- the statements whose text differs (two views, the claim's ``FOR UPDATE SKIP LOCKED``)
  are replaced by the blocks of ``sql/postgresql.sql`` with the same name;
- bulk inserts go through ``COPY``, encoded in a worker thread;
- times come from the database server's clock, so hosts need not agree on the time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import aiosqlite

from .config import is_postgresql, redact
from .errors import StoreError

log = logging.getLogger(__name__)

__all__ = ["Database", "MIGRATIONS", "SCHEMA_VERSION", "Session", "escape_text", "is_postgresql", "open_database",
           "redact", "statements", "unescape_text"]

#: Waiting this long for another process's write lock beats failing a job for it.
BUSY_TIMEOUT_MS: Final = 30_000
_BLOCK: Final = re.compile(r"^-- ([a-z0-9_ :]+) --\s*$", re.MULTILINE)


def _blocks(name: str) -> dict[str, str]:
    text = resources.files("analyzerd.sql").joinpath(name).read_text(encoding="utf-8")
    parts = _BLOCK.split(text)
    return {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


QUERIES: Final = _blocks("queries.sql")
MIGRATIONS: Final = {int(k.split()[1]): v for k, v in _blocks("schema.sql").items()}
SCHEMA_VERSION: Final = max(MIGRATIONS)
_POSTGRESQL: Final = _blocks("postgresql.sql")


def statements(script: str) -> list[str]:
    """Split a migration into statements (sqlite3.complete_statement knows the grammar)."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


# -- text from images -------------------------------------------------------------------

#: What a stored text escapes: the escape character itself, NUL (PostgreSQL text cannot hold
#: it) and lone surrogates (bytes of a name that are not UTF-8, as surrogateescape decoded
#: them, and any other lone surrogate a JSON document spelled: neither database takes them).
_SPECIAL: Final = re.compile("[\\\\\x00\ud800-\udfff]")
_ESCAPED: Final = re.compile(r"\\(?:x(00|[89a-f][0-9a-f])|u(d[89a-f][0-9a-f]{2})|(\\))")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    if code == 0 or 0xDC80 <= code <= 0xDCFF:  # NUL, or a byte that is not UTF-8
        return f"\\x{code & 0xFF:02x}"
    return f"\\u{code:04x}"


def escape_text(name: str) -> str:
    """Text from an image (names, package fields, messages) as both databases store it, one
    stored text per name: a backslash is written ``\\\\``, NUL ``\\x00``, a byte that is not
    UTF-8 ``\\xNN`` and any other lone surrogate ``\\uXXXX``; everything else is kept as it is.
    ``unescape_text`` undoes it. Without the backslash escaped, the name ``a`` + byte 0xff and
    the name spelt ``a\\xff`` were stored alike, and an image holding both could not be stored."""
    return name if _plain(name) else _SPECIAL.sub(_escape, name)


def _unescape(match: re.Match[str]) -> str:
    byte, surrogate, backslash = match.groups()
    if backslash:
        return "\\"
    if byte is not None:
        code = int(byte, 16)
        return "\0" if code == 0 else chr(0xDC00 + code)
    return chr(int(surrogate, 16))


def unescape_text(text: str) -> str:
    """The name a stored text stands for (the inverse of ``escape_text``)."""
    return _ESCAPED.sub(_unescape, text) if "\\" in text else text


def _plain(name: str) -> bool:
    """``escape_text`` would keep the name as it is (the common case, tested first for speed)."""
    return name.isascii() and "\0" not in name and "\\" not in name


class Session(ABC):
    """One connection, inside a transaction or for reading."""

    @abstractmethod
    async def fetchone(self, name: str, params: Any = ()) -> Any: ...

    @abstractmethod
    async def fetchall(self, name: str, params: Any = ()) -> list[Any]: ...

    @abstractmethod
    async def execute(self, name: str, params: Any = ()) -> int:
        """Run a statement; the number of rows it changed."""

    @abstractmethod
    async def executemany(self, name: str, rows: Iterable[Any]) -> None:
        """Run a statement once per row. ``rows`` may be a generator: it is consumed off
        the event loop where the driver allows."""

    async def insert_many(self, name: str, rows: Iterable[Sequence[Any]]) -> None:
        """A plain ``INSERT INTO t (cols) VALUES (?, ...)`` for many rows, the fastest way
        the database has."""
        await self.executemany(name, rows)

    def fetch_batches(self, name: str, params: Any, size: int) -> AsyncIterator[list[Any]]:
        """A named query's rows ``size`` at a time, where the driver would otherwise decode
        them all on the event loop at once (inside a transaction or snapshot)."""
        return self._one_batch(name, params)

    async def _one_batch(self, name: str, params: Any) -> AsyncIterator[list[Any]]:
        yield await self.fetchall(name, params)  # aiosqlite fetches in its own thread

    @abstractmethod
    async def run(self, sql: str) -> list[Any]:
        """A statement given as text, without parameters (maintenance: `analyzerd migrate`)."""


class Database(ABC):
    dialect: str
    #: where it is, for messages (a PostgreSQL URL without its password)
    location: str

    @abstractmethod
    def transaction(self) -> Any:
        """``async with db.transaction() as session``: committed on exit, rolled back on error."""

    @abstractmethod
    def reader(self) -> Any:
        """``async with db.reader() as session``: reads, outside any transaction."""

    @abstractmethod
    def snapshot(self) -> Any:
        """``async with db.snapshot() as session``: reads that all see the database as it was
        at the first one (another process may replace what they read meanwhile)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def schema_version(self) -> int: ...

    def now(self) -> float:
        """Unix time by the clock that leases are compared with."""
        return time.time()

    async def refresh_clock(self) -> None:
        """Check that clock again if it is not this host's (before a claim)."""

    async def fetchone(self, name: str, params: Any = ()) -> Any:
        async with self.reader() as session:
            return await session.fetchone(name, params)

    async def fetchall(self, name: str, params: Any = ()) -> list[Any]:
        async with self.reader() as session:
            return await session.fetchall(name, params)

    def failed(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"database {self.location}: {what}: {exc}")

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(f"database {self.location} has schema version {version}, newer than this "
                             f"analyzerd's {SCHEMA_VERSION}; upgrade analyzerd")


async def open_database(location: str, *, password: str | None = None, pool_size: int = 4) -> Database:
    """Open (creating and migrating as needed) the database at a path or URL."""
    if is_postgresql(location):
        return await PostgresDatabase.open(location, password=password, pool_size=pool_size)
    return await SqliteDatabase.open(location)


# -- SQLite ------------------------------------------------------------------------------

def _check_sqlite() -> None:
    if sqlite3.sqlite_version_info < (3, 35, 0):
        raise StoreError(f"SQLite {sqlite3.sqlite_version} is too old: analyzerd needs 3.35 or newer "
                         "(UPDATE ... RETURNING)")


def _create_private(path: str) -> None:
    """Create the database file mode 0600 (and a missing directory 0700) before SQLite opens
    it: SQLite would make it 0644 less the umask, and its -wal and -shm take the database's
    mode. The results hold secrets' fingerprints and positions, and whoever can write the
    file can queue jobs. A file that exists keeps its mode: its owner may have shared it
    on purpose (a group of readers); one that others can read or write is named in a
    warning. A path that is a symlink is followed, as SQLite follows it."""
    target = os.path.realpath(path)
    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        return
    except FileExistsError:
        pass
    mode = os.stat(target).st_mode
    if mode & 0o006:
        log.warning("event=database_not_private database=%s mode=%s: other users can %s it; "
                    "chmod 600 it unless that is meant", path, oct(mode & 0o777),
                    "read and write" if mode & 0o006 == 0o006 else "read" if mode & 0o004 else "write")


class _SqliteSession(Session):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetchone(self, name: str, params: Any = ()) -> Any:
        async with self._conn.execute(QUERIES[name], params) as cur:
            return await cur.fetchone()

    async def fetchall(self, name: str, params: Any = ()) -> list[Any]:
        async with self._conn.execute(QUERIES[name], params) as cur:
            return list(await cur.fetchall())

    async def execute(self, name: str, params: Any = ()) -> int:
        cur = await self._conn.execute(QUERIES[name], params)
        return cur.rowcount

    async def executemany(self, name: str, rows: Iterable[Any]) -> None:
        # aiosqlite runs executemany in its thread: a generator is consumed there.
        await self._conn.executemany(QUERIES[name], rows)

    async def batches(self, sql: str, size: int) -> AsyncIterator[list[Any]]:
        """The rows of a query, ``size`` at a time (`analyzerd migrate` reads SQLite so)."""
        async with self._conn.execute(sql) as cur:
            while rows := await cur.fetchmany(size):
                yield list(rows)

    async def run(self, sql: str) -> list[Any]:
        async with self._conn.execute(sql) as cur:
            return list(await cur.fetchall())


class SqliteDatabase(Database):
    """WAL mode and a busy timeout let ``analyzerd submit`` and several daemons share the file.
    Every write is one short ``BEGIN IMMEDIATE`` transaction, so a writer either gets the lock
    up front (waiting up to the busy timeout) or fails before changing anything."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self._session = _SqliteSession(conn)
        self.location = path
        # One connection, many coroutines: transactions must not interleave on it.
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SqliteDatabase:
        _check_sqlite()
        try:
            _create_private(path)
            conn = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from exc
        conn.row_factory = aiosqlite.Row
        db = cls(conn, path)
        # Switching a new file to WAL needs it to itself, and SQLite does not wait for that
        # (no busy handler): a daemon creating the database and `submit` opening it at the
        # same moment must take turns, not fail.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        delay = 0.02
        while True:
            try:
                await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                await conn.execute("PRAGMA journal_mode = WAL")
                await conn.execute("PRAGMA synchronous = NORMAL")
                await conn.execute("PRAGMA foreign_keys = ON")
                await db._migrate()
                return db
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    await conn.close()
                    raise StoreError(f"cannot use the database {path}: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
            except sqlite3.Error as exc:
                await conn.close()
                raise StoreError(f"cannot use the database {path}: {exc}") from exc
            except StoreError:
                await conn.close()
                raise

    async def close(self) -> None:
        await self._conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        async with self._write_lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self.failed("cannot start a write", exc) from exc
            try:
                yield self._session
            except BaseException as exc:
                await asyncio.shield(self._rollback())
                if isinstance(exc, sqlite3.Error):
                    raise self.failed("write failed", exc) from exc
                raise
            try:
                await self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._rollback()
                raise self.failed("commit failed", exc) from exc

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Session]:
        try:
            yield self._session
        except sqlite3.Error as exc:
            raise self.failed("read failed", exc) from exc

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Session]:
        # A deferred transaction reads one WAL snapshot and takes no write lock.
        async with self._write_lock:
            try:
                await self._conn.execute("BEGIN")
                yield self._session
            except sqlite3.Error as exc:
                raise self.failed("read failed", exc) from exc
            finally:
                await asyncio.shield(self._rollback())

    async def _rollback(self) -> None:
        """Undo the open transaction, if SQLite has not already (it rolls back by itself on
        SQLITE_FULL and some I/O errors); never hide the error that led here."""
        if not self._conn.in_transaction:
            return
        try:
            await self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("event=rollback_failed database=%s error=%r",
                                                self.location, str(exc))

    async def schema_version(self) -> int:
        async with self._conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        version = await self.schema_version()
        self._check_version(version)
        if version == SCHEMA_VERSION:
            return
        async with self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                version = await self.schema_version()  # re-read: another process may have won
                for number in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in statements(MIGRATIONS[number]):
                        await self._conn.execute(statement)
                    await self._conn.execute(f"PRAGMA user_version = {number}")
                await self._conn.execute("COMMIT")
            except BaseException:
                await asyncio.shield(self._rollback())
                raise


# -- PostgreSQL --------------------------------------------------------------------------

_PARAM: Final = re.compile(r"--[^\n]*|'[^']*'|\"[^\"]*\"|::|:([a-z_][a-z0-9_]*)|\?")
_INSERT: Final = re.compile(r"^INSERT INTO (\w+) \(([^)]*)\)\s+VALUES \([?, ]+\);?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Statement:
    sql: str
    #: the parameter names in $n order, or None for positional (?) parameters
    names: tuple[str, ...] | None
    #: for a plain INSERT: the table and columns, so many rows can go through COPY
    copy: tuple[str, tuple[str, ...]] | None

    def args(self, params: Any) -> Sequence[Any]:
        if self.names is None:
            return params
        return [params[name] for name in self.names]


def _postgres_statement(sql: str) -> _Statement:
    """``:name`` and ``?`` parameters become ``$n`` (skipping quoted text and ``::`` casts)."""
    names: list[str] = []
    positional = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal positional
        text = match.group(0)
        if text == "?":
            positional += 1
            return f"${positional}"
        name = match.group(1)
        if name is None:
            return text
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    converted = _PARAM.sub(replace, sql)
    if names and positional:
        raise ValueError(f"a statement mixes :name and ? parameters: {sql[:60]}")
    insert = _INSERT.match(sql.strip())
    copy = (insert.group(1), tuple(c.strip().strip('"') for c in insert.group(2).split(","))) if insert else None
    return _Statement(converted, tuple(names) if not positional else None, copy)


_COLUMN_TYPES: Final = [
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    # byte order, as SQLite compares: the same ORDER BY gives the same rows on both
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
    (re.compile(r"\)\s*WITHOUT ROWID"), ")"),
]
_RESERVED: Final = re.compile(r"\boffset\b")  # a column name that is a reserved word in PostgreSQL
_CREATE_VIEW: Final = re.compile(r"^CREATE VIEW (\w+)", re.MULTILINE)


def postgres_migration(number: int) -> list[str]:
    """Migration ``number`` of schema.sql as PostgreSQL runs it."""
    out = []
    for statement in statements(MIGRATIONS[number]):
        view = _CREATE_VIEW.search(statement)
        own = _POSTGRESQL.get(f"migration {number}: {view.group(1)}") if view else None
        if own is not None:
            out.append(own)
            continue
        if view is None:  # a view has no column types
            for pattern, replacement in _COLUMN_TYPES:
                statement = pattern.sub(replacement, statement)
        out.append(_RESERVED.sub('"offset"', statement))
    return out


_PG_QUERIES: Final = {name: _postgres_statement(_POSTGRESQL.get(name, sql)) for name, sql in QUERIES.items()}

#: A statement that takes longer fails (a silent network partition would otherwise hold a
#: claim or a lease renewal forever); the largest image's COPY takes well under a minute.
STATEMENT_TIMEOUT_SECONDS: Final = 600.0
#: Held while a process migrates the schema, so that daemons starting together take turns.
_MIGRATION_LOCK: Final = 0x616E616C797A6572  # "analyzer"
#: How often the offset between this host's clock and the server's is measured again.
_CLOCK_SECONDS: Final = 60.0
#: COPY data is sent in pieces of about this size.
_COPY_CHUNK: Final = 1 << 20
_COPY_SPECIAL: Final = re.compile(r"[\\\t\n\r\x00]")


def _copy_text(value: str) -> str:
    """COPY's escapes. Text from images arrives escaped already (escape_text); a value with
    a NUL, which PostgreSQL text cannot hold, did not, and is escaped as that would."""
    if "\x00" in value:
        value = escape_text(value)
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_chunks(rows: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    """Rows in COPY's text format, about _COPY_CHUNK bytes at a time."""
    special = _COPY_SPECIAL.search
    lines: list[str] = []
    size = 0
    for row in rows:
        fields = []
        for value in row:
            if value is None:
                fields.append("\\N")
            elif value.__class__ is str:
                fields.append(_copy_text(value) if special(value) else value)
            elif value.__class__ is float:
                fields.append(repr(value))
            elif isinstance(value, (bytes, str)):  # a BLOB in an old SQLite file; a str subclass
                text = escape_text(value.decode("utf-8", "surrogateescape")) if isinstance(value, bytes) else str(value)
                fields.append(_copy_text(text))
            else:
                fields.append(str(int(value)))
        line = "\t".join(fields) + "\n"
        lines.append(line)
        size += len(line)
        if size >= _COPY_CHUNK:
            yield "".join(lines).encode("utf-8")
            lines, size = [], 0
    if lines:
        yield "".join(lines).encode("utf-8")


def _arguments(statement: _Statement, rows: Iterable[Any]) -> list[Sequence[Any]]:
    return [statement.args(row) for row in rows]


def _rowcount(status: str) -> int:
    """'UPDATE 1' -> 1."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


class _PostgresSession(Session):
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetchone(self, name: str, params: Any = ()) -> Any:
        statement = _PG_QUERIES[name]
        return await self._conn.fetchrow(statement.sql, *statement.args(params))

    async def fetchall(self, name: str, params: Any = ()) -> list[Any]:
        statement = _PG_QUERIES[name]
        return list(await self._conn.fetch(statement.sql, *statement.args(params)))

    async def execute(self, name: str, params: Any = ()) -> int:
        statement = _PG_QUERIES[name]
        return _rowcount(await self._conn.execute(statement.sql, *statement.args(params)))

    async def executemany(self, name: str, rows: Iterable[Any]) -> None:
        statement = _PG_QUERIES[name]
        # A generator's rows (JSON encoding and all) are built in a worker thread.
        args = await asyncio.get_running_loop().run_in_executor(None, _arguments, statement, rows)
        if args:
            await self._conn.executemany(statement.sql, args)

    async def insert_many(self, name: str, rows: Iterable[Sequence[Any]]) -> None:
        statement = _PG_QUERIES[name]
        if statement.copy is None:
            raise ValueError(f"{name} is not a plain INSERT")
        table, columns = statement.copy
        await self.copy_rows(table, columns, rows)

    async def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        chunks = _copy_chunks(rows)
        loop = asyncio.get_running_loop()

        async def source() -> AsyncIterator[bytes]:
            # The rows are built and encoded in a worker thread, not on the event loop.
            while (chunk := await loop.run_in_executor(None, next, chunks, None)) is not None:
                yield chunk

        await self._conn.copy_to_table(table, source=source(), columns=list(columns), format="text")

    async def fetch_batches(self, name: str, params: Any, size: int) -> AsyncIterator[list[Any]]:
        statement = _PG_QUERIES[name]
        cursor = await self._conn.cursor(statement.sql, *statement.args(params))
        while rows := await cursor.fetch(size):
            yield rows

    async def run(self, sql: str) -> list[Any]:
        return list(await self._conn.fetch(sql))


class PostgresDatabase(Database):
    """A connection pool; each transaction takes one connection for its length."""

    dialect = "postgresql"

    def __init__(self, pool: Any, location: str, errors: tuple[type[BaseException], ...]) -> None:
        self._pool = pool
        self.location = location
        #: the driver's exceptions that mean the database failed
        self._errors = errors
        self._clock_offset = 0.0
        self._clock_measured = -_CLOCK_SECONDS

    @classmethod
    async def open(cls, url: str, *, password: str | None = None, pool_size: int = 4) -> PostgresDatabase:
        try:
            import asyncpg
        except ImportError:
            raise StoreError(f"database {redact(url)}: PostgreSQL needs the asyncpg package: "
                             "pip install 'analyzerd[postgres]'") from None
        errors = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)
        location = redact(url)
        try:
            pool = await asyncpg.create_pool(
                url, password=password or None, min_size=1, max_size=max(2, pool_size), timeout=30,
                command_timeout=STATEMENT_TIMEOUT_SECONDS, server_settings={"application_name": "analyzerd"})
        except (*errors, ValueError) as exc:
            raise StoreError(f"cannot open the database {location}: {exc}") from exc
        db = cls(pool, location, errors)
        try:
            await db._migrate()
            await db._measure_clock()
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, errors):
                raise StoreError(f"cannot use the database {location}: {exc}") from exc
            raise
        return db

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def _connection(self, what: str) -> AsyncIterator[Any]:
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except self._errors as exc:
            raise self.failed(what, exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        async with self._connection("write failed") as conn:
            async with conn.transaction():
                yield _PostgresSession(conn)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Session]:
        async with self._connection("read failed") as conn:
            yield _PostgresSession(conn)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Session]:
        async with self._connection("read failed") as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                yield _PostgresSession(conn)

    def now(self) -> float:
        return time.time() + self._clock_offset

    async def _measure_clock(self) -> None:
        async with self._pool.acquire() as conn:
            before = time.time()
            server = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
            after = time.time()
        self._clock_offset = server - (before + after) / 2
        self._clock_measured = time.monotonic()

    async def refresh_clock(self) -> None:
        """Measure the server's clock again if the last measure is old (called before claims)."""
        if time.monotonic() - self._clock_measured >= _CLOCK_SECONDS:
            try:
                await self._measure_clock()
            except self._errors as exc:
                raise self.failed("reading the server's clock failed", exc) from exc

    async def schema_version(self) -> int:
        async with self._connection("read failed") as conn:
            if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
                return 0
            return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))

    async def _migrate(self) -> None:
        current = await self.schema_version()
        self._check_version(current)
        if current == SCHEMA_VERSION:
            return  # nothing to create: a role that may only read and write rows can use it
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                # DDL is transactional here: a migration is applied whole or not at all.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                version = int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))
                self._check_version(version)
                for number in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in postgres_migration(number):
                        await conn.execute(statement)
                if version < SCHEMA_VERSION:
                    await conn.execute("DELETE FROM schema_version")
                    await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", SCHEMA_VERSION)
