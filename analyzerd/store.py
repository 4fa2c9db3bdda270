"""The store: the job queue and the results, in SQLite or PostgreSQL (see database.py).

Every write is one short transaction; an image's results are written in a single
transaction, so readers see all of them or none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from typing import Any, Final

from . import ANALYZER_VERSION
from .catalogers.base import CatalogEntry, result_from_json, result_to_json
from .config import Config, is_postgresql
from .database import (
    SCHEMA_VERSION,
    Database,
    Session,
    escape_text,
    open_database,
    unescape_text,
)
from .errors import StoreError
from .jobqueue import JobQueue
from .model import FileKind, FileRecord, ImageResult, LayerResult, SecretFinding
from .secret_rules import secret_rule_set
from .secrets.config import scan_config
from .secrets.scanner import RuleSet

log = logging.getLogger(__name__)

#: The shortest digest prefix that names an image (as `docker image inspect` takes an ID prefix).
MIN_DIGEST_PREFIX: Final = 6

__all__ = ["SCHEMA_VERSION", "Store", "open_store"]

# Names from images are stored escaped, one stored text per name (database.escape_text).
_text = escape_text
_untext = unescape_text

#: Rows of a stored layer's files decoded at a time (PostgreSQL decodes on the event loop).
LAYER_FILES_BATCH: Final = 2_000


class Store(JobQueue):
    """Open with ``await Store.open(path_or_url)``; close with ``await store.close()``. The
    job queue (claim, lease, finish) is in jobqueue.JobQueue; images and layers are here."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def location(self) -> str:
        """Where the database is, for messages (never with a password)."""
        return self.db.location

    @classmethod
    async def open(cls, location: str, *, password: str | None = None, pool_size: int = 4) -> Store:
        """A SQLite path (or sqlite:///path) or a postgresql:// URL; created and migrated as needed."""
        return cls(await open_database(location, password=password, pool_size=pool_size))

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def schema_version(self) -> int:
        return await self.db.schema_version()

    async def agree_on(self, name: str, value: str) -> str:
        """Record a setting if no process did before; the value the database holds."""
        async with self.db.transaction() as tx:
            await tx.execute("agree_on_setting", {"name": name, "value": value})
            row = await tx.fetchone("get_setting", {"name": name})
        return str(row[0])

    # -- images ------------------------------------------------------------------------

    @staticmethod
    def _image_params(result: ImageResult) -> dict[str, Any]:
        params = _texts({
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
        })
        params["config_json"] = _served_text(result.config_text)
        return params

    # -- layer results: what a layer contains, reused by every image that has it -------------

    async def _save_layer(self, tx: Session, layer: LayerResult) -> int:
        """Upsert a layer; a freshly analyzed one gets its result stored (replacing an
        older analyzer version's). Inside the caller's transaction."""
        if layer.stored:
            # Only its id: an upsert would lock a base layer that many images share until
            # this whole image is written, and other hosts' images with it would wait.
            row = await tx.fetchone("find_layer_id", {"digest": layer.digest})
            if row is not None:
                return int(row[0])
        row = await tx.fetchone("upsert_layer", _layer_params(layer))
        layer_id = int(row[0])
        if layer.stored or not layer.analyzed:
            return layer_id
        await tx.execute("delete_layer_files", {"layer_id": layer_id})
        await tx.execute("delete_layer_whiteouts", {"layer_id": layer_id})
        await tx.insert_many("insert_layer_file", _layer_file_rows(layer_id, layer))
        await tx.executemany("insert_layer_whiteout",
                             [(layer_id, _text(p), "delete") for p in layer.deleted] +
                             [(layer_id, _text(p), "opaque") for p in layer.opaque_dirs] +
                             [(layer_id, _text(p), "parent") for p in layer.parents_of] +
                             [(layer_id, _text(p), "made") for p in layer.made_dirs])
        await tx.execute("delete_layer_catalog", {"layer_id": layer_id})
        await tx.executemany("insert_layer_catalog", (  # a generator: encoded in the db thread
            (layer_id, _text(e.path), e.cataloger, json.dumps(result_to_json(e.result), separators=(",", ":")))
            for e in layer.catalog))
        await tx.execute("delete_layer_secrets", {"layer_id": layer_id})
        await tx.executemany("insert_layer_secret", [
            (layer_id, _text(f.path), f.rule, f.category, f.severity, f.line, f.offset, _text(f.redacted),
             f.fingerprint)
            for f in layer.secrets])
        await tx.execute("mark_layer_analyzed", {
            "layer_id": layer_id, "analyzer_version": ANALYZER_VERSION, "now": self.db.now(),
            "warnings": json.dumps(layer.warnings) if layer.warnings else None,
            "secret_rules": layer.secret_rules})
        return layer_id

    async def load_layer(self, digest: str, secret_rules: str | None = None) -> LayerResult | None:
        """This analyzer version's stored result for a layer, or None; None too when its
        secrets were looked for with another rule set than ``secret_rules``."""
        async with self.db.snapshot() as db:
            layer = await db.fetchone("find_layer_result", {"digest": digest, "analyzer_version": ANALYZER_VERSION})
            if layer is None or (secret_rules is not None and layer["secret_rules"] != secret_rules):
                return None
            key = {"layer_id": layer["id"]}
            loop = asyncio.get_running_loop()
            records: list[FileRecord] = []
            # A batch at a time: the rows of a big layer are not all decoded at once on the loop.
            async for rows in db.fetch_batches("layer_files", key, LAYER_FILES_BATCH):
                records += await loop.run_in_executor(None, _file_records, rows)
            whiteouts = await db.fetchall("layer_whiteouts", key)
            catalog = await loop.run_in_executor(None, _catalog_entries, await db.fetchall("layer_catalog", key))
            secrets = [SecretFinding(_untext(path), rule, category, severity, line, offset, _untext(redacted),
                                     fingerprint)
                       for path, rule, category, severity, line, offset, redacted, fingerprint
                       in await db.fetchall("layer_secrets", key)]
        return LayerResult(
            stored=True,
            digest=layer["digest"], media_type=layer["media_type"] or "",
            compressed_size=layer["compressed_size"] or 0, uncompressed_size=layer["uncompressed_size"] or 0,
            diff_id=layer["diff_id"], files=records, entry_count=layer["entry_count"] or 0,
            deleted=[_untext(w["path"]) for w in whiteouts if w["kind"] == "delete"],
            opaque_dirs=[_untext(w["path"]) for w in whiteouts if w["kind"] == "opaque"],
            parents_of=[_untext(w["path"]) for w in whiteouts if w["kind"] == "parent"],
            made_dirs=[_untext(w["path"]) for w in whiteouts if w["kind"] == "made"],
            catalog=catalog,
            secrets=secrets, secret_rules=layer["secret_rules"],
            warnings=json.loads(layer["warnings"]) if layer["warnings"] else [],
        )

    async def current_image(self, manifest_digest: str) -> int | None:
        """The file count of an image this analyzer version already analyzed, else None."""
        row = await self.db.fetchone("current_image", {"manifest_digest": manifest_digest,
                                                       "analyzer_version": ANALYZER_VERSION})
        return int(row["file_count"] or 0) if row is not None else None

    async def config_blob(self, digest: str) -> bytes | None:
        """An image config stored earlier, as served (the caller verifies its digest)."""
        row = await self.db.fetchone("config_blob", {"config_digest": digest})
        return row[0].encode("utf-8", "surrogateescape") if row is not None and row[0] else None

    async def add_reference(self, manifest_digest: str, reference: str) -> None:
        async with self.db.transaction() as tx:
            row = await tx.fetchone("find_image_id", {"manifest_digest": manifest_digest})
            if row is not None:
                await tx.execute("upsert_reference", {"reference": reference, "image_id": row[0],
                                                      "now": self.db.now()})

    async def start_image(self, result: ImageResult) -> None:
        """Mark the image 'analyzing' (an analyzed one keeps its results until replaced)."""
        async with self.db.transaction() as tx:
            await tx.execute("start_image", self._image_params(result))

    async def fail_image(self, manifest_digest: str, error: str) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("fail_image", {"manifest_digest": manifest_digest, "error": _text(error)})

    async def save_image(self, result: ImageResult) -> int:
        """Store an image's complete results in one transaction; returns its id."""
        params = self._image_params(result)
        params.update(
            uncompressed_size=sum(layer.uncompressed_size for layer in result.layers),
            file_count=len(result.files),
            warnings=json.dumps(result.warnings) if result.warnings else None,
            **_distro_params(result),
            analyzer_version=ANALYZER_VERSION,
            now=self.db.now(),
        )
        try:
            async with self.db.transaction() as tx:
                row = await tx.fetchone("upsert_image", params)
                image_id = int(row[0])
                await tx.execute("upsert_reference", {
                    "reference": result.reference, "image_id": image_id, "now": params["now"]})
                # Layers in digest order: two hosts storing images that share layers lock
                # those rows in the same order, so neither waits on the other in a cycle.
                layer_ids = [0] * len(result.layers)
                for index in sorted(range(len(result.layers)), key=lambda i: result.layers[i].digest):
                    if layer_ids[index] == 0:
                        layer_ids[index] = await self._save_layer(tx, result.layers[index])
                        for other, layer in enumerate(result.layers):  # the same blob twice in one image
                            if layer.digest == result.layers[index].digest:
                                layer_ids[other] = layer_ids[index]
                await tx.execute("delete_image_layers", {"image_id": image_id})
                await tx.executemany("insert_image_layer", [(image_id, i, lid) for i, lid in enumerate(layer_ids)])
                await tx.execute("delete_image_files", {"image_id": image_id})
                # Generators: the rows are built off the event loop, by the database's thread.
                await tx.insert_many("insert_file", _file_rows(image_id, result, layer_ids))
                await tx.insert_many("insert_derived_file", _derived_file_rows(image_id, result, layer_ids))
                await tx.execute("delete_image_packages", {"image_id": image_id})
                if result.inventory is not None:
                    await tx.executemany("insert_package", _package_rows(image_id, result.inventory.packages,
                                                                         layer_ids))
                await tx.execute("delete_image_secrets", {"image_id": image_id})
                await tx.executemany("insert_secret", [
                    _secret_row(image_id, s.finding, layer_ids[s.layer] if s.layer is not None else None,
                                layer_ids[s.deleted_in] if s.deleted_in is not None else None)
                    for s in result.secrets])
        except StoreError as exc:
            raise StoreError(f"storing {result.manifest_digest} failed: {exc.message}") from exc
        for layer in result.layers:
            layer.stored = layer.analyzed
        return image_id

    # -- upgrades ---------------------------------------------------------------------------

    async def redact_older_configs(self, rules: RuleSet) -> int:
        """Images analyzed before the config was scanned hold it as served, secrets and all:
        scan each (off the event loop), store its redacted copy and add its findings, one
        image per transaction. The number of images whose config held a secret."""
        redacted, after = 0, 0
        while True:
            rows = await self.db.fetchall("unscanned_configs", {"after": after, "limit": 100})
            if not rows:
                return redacted
            for row in rows:
                after = int(row["id"])
                redacted += await self._redact_older_config(rules, after, row["config_json"])

    async def _redact_older_config(self, rules: RuleSet, image_id: int, config_json: str) -> int:
        async with self.db.transaction() as tx:
            layer_ids = [int(r[0]) for r in await tx.fetchall("image_layer_ids", {"image_id": image_id})]
            try:
                config = json.loads(config_json)
            except ValueError:
                config = None
            scan = await asyncio.to_thread(scan_config, rules, config, layers=len(layer_ids)) \
                if isinstance(config, dict) else None
            if scan is None or not scan.redacted:
                await tx.execute("set_scanned_config", {"id": image_id, "config_json": config_json})
                return 0
            await tx.execute("set_scanned_config", {
                "id": image_id, "config_json": _served_text(json.dumps(scan.config, separators=(",", ":")))})
            await tx.executemany("insert_secret", [
                _secret_row(image_id, f.finding, layer_ids[f.layer] if f.layer is not None else None, None)
                for f in scan.findings])
        log.info("event=stored_config_redacted image_id=%d findings=%d", image_id, len(scan.findings))
        return 1

    async def image_packages(self, image_id: int) -> list[tuple[Any, list[Any]]]:
        out = []
        async with self.db.reader() as db:
            for row in await db.fetchall("image_packages", {"image_id": image_id}):
                problems: list[Any] = []
                if row["files_modified"] or row["files_missing"]:
                    problems = await db.fetchall("package_problem_files", {"package_id": row["id"]})
                out.append((row, problems))
        return out

    async def images_for(self, key: str, *, limit: int = 50) -> list[Any]:
        """Every stored image that ``key`` names, newest first: a reference as submitted
        (one image per platform), a manifest or index digest (``sha256:`` optional), a
        ``REF@DIGEST``, else a digest prefix of at least ``MIN_DIGEST_PREFIX`` hex digits."""
        key = key.strip()
        if re.fullmatch(r"(sha256:)?[0-9a-f]{64}", key):
            digest = key if key.startswith("sha256:") else "sha256:" + key
            return await self.db.fetchall("images_by_digest", {"digest": digest, "limit": limit})
        if "@" in key:
            rows = await self.db.fetchall("images_by_digest", {"digest": key.rsplit("@", 1)[1], "limit": limit})
            if rows:
                return rows
        rows = await self.db.fetchall("images_by_reference", {"reference": key, "limit": limit})
        prefix = re.fullmatch(r"(?:sha256:)?([0-9a-f]{%d,63})" % MIN_DIGEST_PREFIX, key)
        if rows or prefix is None:
            return rows
        return await self.db.fetchall("images_by_digest_prefix",
                                      {"prefix": f"sha256:{prefix.group(1)}%", "limit": limit})

    async def list_images(self, limit: int) -> list[Any]:
        return await self.db.fetchall("list_images", {"limit": limit})

    async def image_references(self, image_id: int) -> list[str]:
        return [row[0] for row in await self.db.fetchall("image_references", {"image_id": image_id})]

    async def image_layers(self, image_id: int) -> list[Any]:
        return await self.db.fetchall("image_layers", {"image_id": image_id})

    async def package_file_paths(self, image_id: int) -> dict[str, list[str]]:
        """purl -> the paths its package database lists that the image has."""
        out: dict[str, list[str]] = {}
        for purl, path in await self.db.fetchall("package_file_paths", {"image_id": image_id}):
            out.setdefault(purl, []).append(path)
        return out

    async def image_secrets(self, image_id: int) -> list[Any]:
        return await self.db.fetchall("image_secrets", {"image_id": image_id})

    async def image_files(self, image_id: int) -> list[Any]:
        return await self.db.fetchall("image_files", {"image_id": image_id})


async def open_store(config: Config, location: str) -> Store:
    """The store at ``location`` with the config's credentials, and enough PostgreSQL
    connections that a big image being written does not hold up lease renewals. Image
    configs stored before they were scanned for secrets are redacted first, so that no
    command prints one raw."""
    password = config.database_password() if is_postgresql(location) else None
    store = await Store.open(location, password=password, pool_size=config.analyzer.concurrent_jobs + 3)
    try:
        if config.secret_search.enabled and await store.db.fetchall("unscanned_configs", {"after": 0, "limit": 1}):
            rules = await asyncio.to_thread(secret_rule_set, config)
            if rules is not None:
                await store.redact_older_configs(rules)
    except BaseException:
        await store.close()
        raise
    return store


def _package_rows(image_id: int, packages: list[Any], layer_ids: list[int]) -> Iterator[dict[str, Any]]:
    for found in packages:
        p = found.package
        yield _texts({"image_id": image_id, "type": p.type, "namespace": p.namespace,
               "name": p.name, "version": p.version, "declared": int(p.declared),
               "arch": p.arch, "epoch": p.epoch, "source_name": p.source_name, "source_version": p.source_version,
               "license": p.license, "maintainer": p.maintainer, "vendor": p.vendor,
               "installed_size": p.installed_size, "purl": found.purl, "location": found.location,
               "layer_id": layer_ids[found.layer], "files_total": len(found.files),
               "files_modified": len(found.modified), "files_missing": len(found.missing)}) | {
               # JSON (ASCII, no NUL) that users read with json_each(): not escaped again
               "files": json.dumps([[_text(f.path), f.digest, f.algorithm, f.status]
                                    for f in found.files], separators=(",", ":")) if found.files else None,
               "metadata": json.dumps(p.metadata) if p.metadata else None}


def _secret_row(image_id: int, finding: SecretFinding, layer_id: int | None,
                deleted_in: int | None) -> tuple[Any, ...]:
    """An insert_secret row: a file's finding, or the image config's (no layer, never deleted)."""
    return (image_id, layer_id, _text(finding.path), finding.rule, finding.category, finding.severity, finding.line,
            finding.offset, _text(finding.redacted), finding.fingerprint, deleted_in)


def _distro_params(result: ImageResult) -> dict[str, Any]:
    distro = result.inventory.distro if result.inventory is not None else None
    return _texts({"distro_id": distro.id if distro else None, "distro_version_id": distro.version_id if distro else None,
            "distro_codename": distro.codename if distro else None,
            "distro_id_like": " ".join(distro.id_like) if distro and distro.id_like else None,
            "distro_name": distro.pretty_name if distro else None})


def _layer_params(layer: LayerResult) -> dict[str, Any]:
    return {"digest": layer.digest, "media_type": layer.media_type, "compressed_size": layer.compressed_size,
            "uncompressed_size": layer.uncompressed_size if layer.analyzed else None,
            "diff_id": layer.diff_id, "entry_count": layer.entry_count if layer.analyzed else None}


def _layer_file_rows(layer_id: int, layer: LayerResult) -> Iterator[tuple[Any, ...]]:
    # In key order: appending to the (layer_id, path) B-tree is much cheaper than inserting
    # at random places, which is what the archive's order amounts to.
    for r in sorted(layer.files, key=_record_path):
        path, link = r.path, r.link
        if not (path.isascii() and "\0" not in path and "\\" not in path):  # _text's own test, inline
            path = _text(path)
        if link and not (link.isascii() and "\0" not in link and "\\" not in link):
            link = _text(link)
        yield (layer_id, path, _KIND_TEXT[r.kind], r.mode, r.uid, r.gid, r.size, r.mtime, link, r.md5, r.sha1, r.sha256)


def _record_path(record: FileRecord) -> str:
    return record.path


_KINDS = {kind.value: kind for kind in FileKind}
_KIND_TEXT = {kind: kind.value for kind in FileKind}  # an Enum's .value is a slow property


def _catalog_entries(rows: list[Any]) -> list[CatalogEntry]:
    """Decoded off the event loop: a package database's result can be megabytes of JSON."""
    return [CatalogEntry(path=_untext(r["path"]), cataloger=r["cataloger"],
                         result=result_from_json(json.loads(r["result"]))) for r in rows]


def _file_records(rows: list[Any]) -> list[FileRecord]:
    kinds = _KINDS
    # Stored names are escaped (see _text): the layer's names are what it is merged with.
    return [FileRecord(r[0] if "\\" not in r[0] else _untext(r[0]), kinds[r[1]], r[2], r[3], r[4], r[5], r[6],
                       r[7], r[8] if not r[8] or "\\" not in r[8] else _untext(r[8]), r[9], r[10]) for r in rows]


def _file_rows(image_id: int, result: ImageResult, layer_ids: list[int]) -> Iterator[tuple[Any, ...]]:
    for index, r, derived in result.files:
        if not derived:
            path = r.path
            if not (path.isascii() and "\0" not in path and "\\" not in path):
                path = _text(path)
            yield image_id, path, layer_ids[index]


def _derived_file_rows(image_id: int, result: ImageResult, layer_ids: list[int]) -> Iterator[tuple[Any, ...]]:
    for index, r, derived in result.files:
        if derived:
            yield (image_id, _text(r.path), layer_ids[index], r.kind.value, r.mode, r.uid, r.gid, r.size,
                   r.mtime, _text(r.link) if r.link else r.link, r.md5, r.sha1, r.sha256)


_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


def _served_text(config: str) -> str:
    """The image config as JSON text users can query: as served, but for what neither
    database holds (NUL, bytes that are not UTF-8), written as JSON's ``\\uXXXX`` so that a
    string holding one still parses. That may read back differently from what was served:
    ``config_blob`` hands it back for reuse only once its digest verified, else it is fetched."""
    return _UNSTORABLE.sub(_json_escape, config) if _UNSTORABLE.search(config) else config


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _texts(row: dict[str, Any]) -> dict[str, Any]:
    """_text for every string of a row (package fields come from hostile files)."""
    return {k: _text(v) if v.__class__ is str else v for k, v in row.items()}
