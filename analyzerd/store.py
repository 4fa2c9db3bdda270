"""The SQLite store: the job queue and the results, through one aiosqlite connection.

WAL mode and a busy timeout let ``analyzerd submit`` and several daemons share the file.
Every write is one short ``BEGIN IMMEDIATE`` transaction, so a writer either gets the lock
up front (waiting up to the busy timeout) or fails before changing anything; an image's
results are written in a single transaction, so readers see all of them or none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, Final

import aiosqlite

from . import ANALYZER_VERSION
from .errors import StoreError
from .catalogers.base import CatalogEntry, result_from_json, result_to_json
from .model import FileKind, FileRecord, ImageResult, Job, LayerResult, SecretFinding

log = logging.getLogger(__name__)

__all__ = ["SCHEMA_VERSION", "Store"]

#: Waiting this long for another process's write lock beats failing a job for it.
BUSY_TIMEOUT_MS: Final = 30_000
_BLOCK: Final = re.compile(r"^-- ([a-z0-9_ ]+) --\s*$", re.MULTILINE)


def _blocks(name: str) -> dict[str, str]:
    text = resources.files("analyzerd.sql").joinpath(name).read_text(encoding="utf-8")
    parts = _BLOCK.split(text)
    return {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


QUERIES: Final = _blocks("queries.sql")
MIGRATIONS: Final = {int(k.split()[1]): v for k, v in _blocks("schema.sql").items()}
SCHEMA_VERSION: Final = max(MIGRATIONS)


def _check_sqlite() -> None:
    if sqlite3.sqlite_version_info < (3, 35, 0):
        raise StoreError(f"SQLite {sqlite3.sqlite_version} is too old: analyzerd needs 3.35 or newer "
                         "(UPDATE ... RETURNING)")


class Store:
    """Open with ``await Store.open(path)``; close with ``await store.close()``."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        # One connection, many coroutines: transactions must not interleave on it.
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> Store:
        _check_sqlite()
        directory = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(directory, exist_ok=True)
            conn = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from exc
        conn.row_factory = aiosqlite.Row
        store = cls(conn, path)
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
                await store._migrate()
                return store
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    await conn.close()
                    raise StoreError(f"cannot use the database {path}: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
            except sqlite3.Error as exc:
                await conn.close()
                raise StoreError(f"cannot use the database {path}: {exc}") from exc

    async def close(self) -> None:
        await self._conn.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._write_lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"database {self.path}: cannot start a write: {exc}") from exc
            try:
                yield self._conn
            except BaseException:
                await asyncio.shield(self._rollback())
                raise
            try:
                await self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._rollback()
                raise StoreError(f"database {self.path}: commit failed: {exc}") from exc

    async def _rollback(self) -> None:
        """Undo the open transaction, if SQLite has not already (it rolls back by itself on
        SQLITE_FULL and some I/O errors); never hide the error that led here."""
        if not self._conn.in_transaction:
            return
        try:
            await self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("event=rollback_failed database=%s error=%r", self.path, str(exc))

    async def _migrate(self) -> None:
        async with self._conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        if row is not None and row[0] >= SCHEMA_VERSION:
            if row[0] > SCHEMA_VERSION:
                raise StoreError(f"database {self.path} has schema version {row[0]}, newer than this "
                                 f"analyzerd's {SCHEMA_VERSION}; upgrade analyzerd")
            return
        async with self._write() as conn:
            async with conn.execute("PRAGMA user_version") as cur:
                row = await cur.fetchone()
            version = row[0] if row is not None else 0  # re-read: another process may have won
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _statements(MIGRATIONS[number]):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {number}")

    async def schema_version(self) -> int:
        async with self._conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # -- jobs --------------------------------------------------------------------------

    async def enqueue(self, references: list[str], platform: str | None, *, force: bool = False) -> list[int]:
        ids = []
        async with self._write() as conn:
            for reference in references:
                async with conn.execute(QUERIES["enqueue_job"], {
                        "reference": reference, "platform": platform, "force": int(force),
                        "now": time.time()}) as cur:
                    row = await cur.fetchone()
                    assert row is not None
                    ids.append(int(row[0]))
        return ids

    async def claim(self, worker: str, lease_seconds: float) -> Job | None:
        now = time.time()
        async with self._write() as conn:
            async with conn.execute(QUERIES["claim_job"], {
                    "now": now, "worker": worker, "lease_until": now + lease_seconds}) as cur:
                row = await cur.fetchone()
        return Job.from_row(row) if row is not None else None

    async def renew_lease(self, job_id: int, worker: str, lease_seconds: float) -> bool:
        async with self._write() as conn:
            cur = await conn.execute(QUERIES["renew_lease"], {
                "id": job_id, "worker": worker, "lease_until": time.time() + lease_seconds})
            return cur.rowcount == 1

    async def finish_job(self, job_id: int, worker: str, *, image_digest: str | None = None,
                         error: str | None = None) -> bool:
        """Record the end of a job; False if this worker no longer held its lease."""
        async with self._write() as conn:
            cur = await conn.execute(QUERIES["finish_job"], {
                "id": job_id, "worker": worker, "now": time.time(),
                "status": "failed" if error is not None else "done",
                "error": error, "image_digest": image_digest})
            return cur.rowcount == 1

    async def retry_job(self, job_id: int, worker: str, *, error: str, not_before: float) -> bool:
        """Queue a job again after a transient failure, not to be claimed before ``not_before``."""
        async with self._write() as conn:
            cur = await conn.execute(QUERIES["retry_job"], {"id": job_id, "worker": worker, "error": error,
                                                            "not_before": not_before})
            return cur.rowcount == 1

    async def set_progress(self, job_id: int, worker: str, progress: dict[str, Any]) -> None:
        async with self._write() as conn:
            await conn.execute(QUERIES["set_progress"], {"id": job_id, "worker": worker,
                                                         "progress": json.dumps(progress)})

    async def release_job(self, job_id: int, worker: str) -> bool:
        """Give a running job back to the queue (a daemon stopping before it finished)."""
        async with self._write() as conn:
            cur = await conn.execute(QUERIES["release_job"], {"id": job_id, "worker": worker})
            return cur.rowcount == 1

    async def get_job(self, job_id: int) -> Job | None:
        async with self._conn.execute(QUERIES["get_job"], {"id": job_id}) as cur:
            row = await cur.fetchone()
        return Job.from_row(row) if row is not None else None

    async def list_jobs(self) -> list[Job]:
        async with self._conn.execute(QUERIES["list_jobs"]) as cur:
            return [Job.from_row(row) for row in await cur.fetchall()]

    # -- images ------------------------------------------------------------------------

    @staticmethod
    def _image_params(result: ImageResult) -> dict[str, Any]:
        return {
            "manifest_digest": result.manifest_digest,
            "manifest_media_type": result.manifest_media_type,
            "index_digest": result.index_digest,
            "config_digest": result.config_digest,
            "os": result.platform.os,
            "architecture": result.platform.architecture,
            "variant": result.platform.variant,
            "created": result.created,
            "layer_count": len(result.layers),
            "compressed_size": sum(layer.compressed_size for layer in result.layers),
            "config_json": result.config_text,
        }

    # -- layer results: what a layer contains, reused by every image that has it -------------

    @staticmethod
    async def _save_layer(conn: aiosqlite.Connection, layer: LayerResult) -> int:
        """Upsert a layer; a freshly analyzed one gets its result stored (replacing an
        older analyzer version's). Inside the caller's transaction."""
        async with conn.execute(QUERIES["upsert_layer"], _layer_params(layer)) as cur:
            row = await cur.fetchone()
            assert row is not None
            layer_id = int(row[0])
        if layer.stored or not layer.analyzed:
            return layer_id
        await conn.execute(QUERIES["delete_layer_files"], {"layer_id": layer_id})
        await conn.execute(QUERIES["delete_layer_whiteouts"], {"layer_id": layer_id})
        await conn.executemany(QUERIES["insert_layer_file"], _layer_file_rows(layer_id, layer))
        await conn.executemany(QUERIES["insert_layer_whiteout"],
                               [(layer_id, p, "delete") for p in layer.deleted] +
                               [(layer_id, p, "opaque") for p in layer.opaque_dirs])
        await conn.execute(QUERIES["delete_layer_catalog"], {"layer_id": layer_id})
        await conn.executemany(QUERIES["insert_layer_catalog"], (  # a generator: encoded in the db thread
            (layer_id, _text(e.path), e.cataloger, json.dumps(result_to_json(e.result), separators=(",", ":")))
            for e in layer.catalog))
        await conn.execute(QUERIES["delete_layer_secrets"], {"layer_id": layer_id})
        await conn.executemany(QUERIES["insert_layer_secret"], [
            (layer_id, _text(f.path), f.rule, f.category, f.severity, f.line, f.offset, f.redacted, f.fingerprint)
            for f in layer.secrets])
        await conn.execute(QUERIES["mark_layer_analyzed"], {
            "layer_id": layer_id, "analyzer_version": ANALYZER_VERSION, "now": time.time(),
            "warnings": json.dumps(layer.warnings) if layer.warnings else None,
            "secret_rules": layer.secret_rules})
        return layer_id

    async def load_layer(self, digest: str, secret_rules: str | None = None) -> LayerResult | None:
        """This analyzer version's stored result for a layer, or None; None too when its
        secrets were looked for with another rule set than ``secret_rules``."""
        async with self._conn.execute(QUERIES["find_layer_result"], {
                "digest": digest, "analyzer_version": ANALYZER_VERSION}) as cur:
            layer = await cur.fetchone()
        if layer is None or (secret_rules is not None and layer["secret_rules"] != secret_rules):
            return None
        async with self._conn.execute(QUERIES["layer_files"], {"layer_id": layer["id"]}) as cur:
            files = await cur.fetchall()
        async with self._conn.execute(QUERIES["layer_whiteouts"], {"layer_id": layer["id"]}) as cur:
            whiteouts = await cur.fetchall()
        async with self._conn.execute(QUERIES["layer_catalog"], {"layer_id": layer["id"]}) as cur:
            catalog = [CatalogEntry(path=r["path"], cataloger=r["cataloger"], result=result_from_json(json.loads(r["result"])))
                       for r in await cur.fetchall()]
        async with self._conn.execute(QUERIES["layer_secrets"], {"layer_id": layer["id"]}) as cur:
            secrets = [SecretFinding(*row) for row in await cur.fetchall()]
        records = await asyncio.get_running_loop().run_in_executor(None, _file_records, files)
        return LayerResult(
            stored=True,
            digest=layer["digest"], media_type=layer["media_type"] or "",
            compressed_size=layer["compressed_size"] or 0, uncompressed_size=layer["uncompressed_size"] or 0,
            diff_id=layer["diff_id"], files=records, entry_count=layer["entry_count"] or 0,
            deleted=[w["path"] for w in whiteouts if w["kind"] == "delete"],
            opaque_dirs=[w["path"] for w in whiteouts if w["kind"] == "opaque"],
            catalog=catalog,
            secrets=secrets, secret_rules=layer["secret_rules"],
            warnings=json.loads(layer["warnings"]) if layer["warnings"] else [],
        )

    async def current_image(self, manifest_digest: str) -> int | None:
        """The file count of an image this analyzer version already analyzed, else None."""
        async with self._conn.execute(QUERIES["current_image"], {
                "manifest_digest": manifest_digest, "analyzer_version": ANALYZER_VERSION}) as cur:
            row = await cur.fetchone()
        return int(row["file_count"] or 0) if row is not None else None

    async def config_blob(self, digest: str) -> bytes | None:
        """An image config stored earlier, as served (the caller verifies its digest)."""
        async with self._conn.execute(QUERIES["config_blob"], {"config_digest": digest}) as cur:
            row = await cur.fetchone()
        return row[0].encode("utf-8", "surrogateescape") if row is not None and row[0] else None

    async def add_reference(self, manifest_digest: str, reference: str) -> None:
        async with self._write() as conn:
            async with conn.execute("SELECT id FROM images WHERE manifest_digest = ?", (manifest_digest,)) as cur:
                row = await cur.fetchone()
            if row is not None:
                await conn.execute(QUERIES["upsert_reference"], {
                    "reference": reference, "image_id": row[0], "now": time.time()})

    async def start_image(self, result: ImageResult) -> None:
        """Mark the image 'analyzing' (an analyzed one keeps its results until replaced)."""
        async with self._write() as conn:
            await conn.execute(QUERIES["start_image"], self._image_params(result))

    async def fail_image(self, manifest_digest: str, error: str) -> None:
        async with self._write() as conn:
            await conn.execute(QUERIES["fail_image"], {"manifest_digest": manifest_digest, "error": error})

    async def save_image(self, result: ImageResult) -> int:
        """Store an image's complete results in one transaction; returns its id."""
        params = self._image_params(result)
        params.update(
            uncompressed_size=sum(layer.uncompressed_size for layer in result.layers),
            file_count=len(result.files),
            warnings=json.dumps(result.warnings) if result.warnings else None,
            **_distro_params(result),
            analyzer_version=ANALYZER_VERSION,
            now=time.time(),
        )
        try:
            async with self._write() as conn:
                async with conn.execute(QUERIES["upsert_image"], params) as cur:
                    row = await cur.fetchone()
                    assert row is not None
                    image_id = int(row[0])
                await conn.execute(QUERIES["upsert_reference"], {
                    "reference": result.reference, "image_id": image_id, "now": params["now"]})
                layer_ids = [await self._save_layer(conn, layer) for layer in result.layers]
                await conn.execute(QUERIES["delete_image_layers"], {"image_id": image_id})
                await conn.executemany(QUERIES["insert_image_layer"],
                                       [(image_id, i, lid) for i, lid in enumerate(layer_ids)])
                await conn.execute(QUERIES["delete_image_files"], {"image_id": image_id})
                # Generators: the rows are built in the database thread, not on the event loop.
                await conn.executemany(QUERIES["insert_file"], _file_rows(image_id, result, layer_ids))
                await conn.executemany(QUERIES["insert_derived_file"],
                                       _derived_file_rows(image_id, result, layer_ids))
                await conn.execute(QUERIES["delete_image_packages"], {"image_id": image_id})
                if result.inventory is not None:
                    await self._save_packages(conn, image_id, result, layer_ids)
                await conn.execute(QUERIES["delete_image_secrets"], {"image_id": image_id})
                await conn.executemany(QUERIES["insert_secret"], [
                    (image_id, layer_ids[s.layer], _text(s.finding.path), s.finding.rule, s.finding.category,
                     s.finding.severity, s.finding.line, s.finding.offset, s.finding.redacted,
                     s.finding.fingerprint, layer_ids[s.deleted_in] if s.deleted_in is not None else None)
                    for s in result.secrets])
        except sqlite3.Error as exc:
            raise StoreError(f"database {self.path}: storing {result.manifest_digest} failed: {exc}") from exc
        for layer in result.layers:
            layer.stored = layer.analyzed
        return image_id

    @staticmethod
    async def _save_packages(conn: aiosqlite.Connection, image_id: int, result: ImageResult,
                             layer_ids: list[int]) -> None:
        # Ids are assigned here (the write lock is held) so two executemany calls do it all.
        async with conn.execute(QUERIES["max_package_id"]) as cur:
            row = await cur.fetchone()
            first_id = int(row[0]) + 1 if row is not None else 1
        packages = result.inventory.packages
        await conn.executemany(QUERIES["insert_package"], _package_rows(image_id, packages, layer_ids, first_id))

    async def image_packages(self, image_id: int) -> list[tuple[aiosqlite.Row, list[aiosqlite.Row]]]:
        async with self._conn.execute(QUERIES["image_packages"], {"image_id": image_id}) as cur:
            rows = list(await cur.fetchall())
        out = []
        for row in rows:
            problems: list[aiosqlite.Row] = []
            if row["files_modified"] or row["files_missing"]:
                async with self._conn.execute(QUERIES["package_problem_files"], {"package_id": row["id"]}) as cur:
                    problems = list(await cur.fetchall())
            out.append((row, problems))
        return out

    async def find_image(self, reference_or_digest: str) -> aiosqlite.Row | None:
        """By manifest/index digest (full or sha256 prefix), or by reference as submitted."""
        key = reference_or_digest.strip()
        if re.fullmatch(r"(sha256:)?[0-9a-f]{64}", key):
            digest = key if key.startswith("sha256:") else "sha256:" + key
            async with self._conn.execute(QUERIES["find_image_by_digest"], {"digest": digest}) as cur:
                return await cur.fetchone()
        if "@" in key:
            digest = key.rsplit("@", 1)[1]
            async with self._conn.execute(QUERIES["find_image_by_digest"], {"digest": digest}) as cur:
                row = await cur.fetchone()
            if row is not None:
                return row
        async with self._conn.execute(QUERIES["find_image_by_reference"], {"reference": key}) as cur:
            return await cur.fetchone()

    async def image_references(self, image_id: int) -> list[str]:
        async with self._conn.execute(QUERIES["image_references"], {"image_id": image_id}) as cur:
            return [row[0] for row in await cur.fetchall()]

    async def image_layers(self, image_id: int) -> list[aiosqlite.Row]:
        async with self._conn.execute(QUERIES["image_layers"], {"image_id": image_id}) as cur:
            return list(await cur.fetchall())

    async def package_file_paths(self, image_id: int) -> dict[str, list[str]]:
        """purl -> the paths its package database lists that the image has."""
        out: dict[str, list[str]] = {}
        async with self._conn.execute(QUERIES["package_file_paths"], {"image_id": image_id}) as cur:
            for purl, path in await cur.fetchall():
                out.setdefault(purl, []).append(path)
        return out

    async def image_secrets(self, image_id: int) -> list[aiosqlite.Row]:
        async with self._conn.execute(QUERIES["image_secrets"], {"image_id": image_id}) as cur:
            return list(await cur.fetchall())

    async def image_files(self, image_id: int) -> list[aiosqlite.Row]:
        async with self._conn.execute(QUERIES["image_files"], {"image_id": image_id}) as cur:
            return list(await cur.fetchall())


def _package_rows(image_id: int, packages: list[Any], layer_ids: list[int], first_id: int) -> Iterator[dict[str, Any]]:
    for offset, found in enumerate(packages):
        p = found.package
        yield {"id": first_id + offset, "image_id": image_id, "type": p.type, "namespace": p.namespace,
               "name": p.name, "version": p.version, "declared": int(p.declared),
               "arch": p.arch, "epoch": p.epoch, "source_name": p.source_name, "source_version": p.source_version,
               "license": p.license, "maintainer": p.maintainer, "vendor": p.vendor,
               "installed_size": p.installed_size, "purl": found.purl, "location": found.location,
               "layer_id": layer_ids[found.layer], "files_total": len(found.files),
               "files_modified": len(found.modified), "files_missing": len(found.missing),
               "files": json.dumps([[f.path if f.path.isascii() else _text(f.path), f.digest, f.algorithm, f.status]
                                    for f in found.files], separators=(",", ":")) if found.files else None,
               "metadata": json.dumps(p.metadata) if p.metadata else None}


def _distro_params(result: ImageResult) -> dict[str, Any]:
    distro = result.inventory.distro if result.inventory is not None else None
    return {"distro_id": distro.id if distro else None, "distro_version_id": distro.version_id if distro else None,
            "distro_codename": distro.codename if distro else None,
            "distro_id_like": " ".join(distro.id_like) if distro and distro.id_like else None,
            "distro_name": distro.pretty_name if distro else None}


def _layer_params(layer: LayerResult) -> dict[str, Any]:
    return {"digest": layer.digest, "media_type": layer.media_type, "compressed_size": layer.compressed_size,
            "uncompressed_size": layer.uncompressed_size if layer.analyzed else None,
            "diff_id": layer.diff_id, "entry_count": layer.entry_count if layer.analyzed else None}


def _layer_file_rows(layer_id: int, layer: LayerResult) -> Iterator[tuple[Any, ...]]:
    # In key order: appending to the (layer_id, path) B-tree is much cheaper than inserting
    # at random places, which is what the archive's order amounts to.
    for r in sorted(layer.files, key=_record_path):
        path, link = r.path, r.link
        yield (layer_id, path if path.isascii() else _text(path), _KIND_TEXT[r.kind], r.mode, r.uid, r.gid,
               r.size, r.mtime, link if not link or link.isascii() else _text(link), r.md5, r.sha1, r.sha256)


def _record_path(record: FileRecord) -> str:
    return record.path


_KINDS = {kind.value: kind for kind in FileKind}
_KIND_TEXT = {kind: kind.value for kind in FileKind}  # an Enum's .value is a slow property


def _file_records(rows: list[Any]) -> list[FileRecord]:
    kinds = _KINDS
    return [FileRecord(r[0], kinds[r[1]], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10]) for r in rows]


def _file_rows(image_id: int, result: ImageResult, layer_ids: list[int]) -> Iterator[tuple[Any, ...]]:
    for index, r, derived in result.files:
        if not derived:
            yield image_id, r.path if r.path.isascii() else _text(r.path), layer_ids[index]


def _derived_file_rows(image_id: int, result: ImageResult, layer_ids: list[int]) -> Iterator[tuple[Any, ...]]:
    for index, r, derived in result.files:
        if derived:
            yield (image_id, _text(r.path), layer_ids[index], r.kind.value, r.mode, r.uid, r.gid, r.size,
                   r.mtime, _text(r.link) if r.link else r.link, r.md5, r.sha1, r.sha256)


def _text(name: str) -> str:
    """Names that are not UTF-8 in the image are kept readable, with \\x escapes."""
    if name.isascii():
        return name
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _statements(script: str) -> list[str]:
    """Split a migration into statements (sqlite3.complete_statement knows the grammar)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
