"""The layer blob cache, laid out and configured as Anchore Engine's.

Blobs live at ``<tmp_dir>/anchore_layercache/sha256/<hex>`` (Anchore's own layout, so an
existing cache volume is reused). The total stays at or under the configured size at every
moment: room is made, least recently used first, *before* a blob is admitted, and the new
blob's space is reserved up front (its temporary file is allocated to its full size), so
concurrent writers, in this process or another, cannot overshoot together. Admission and
eviction happen under an exclusive ``flock`` on ``.lock``; each temporary file is held with
its own ``flock`` while written, which tells a crashed writer's leftovers (deleted at start)
from a live one's.

A blob is written while it streams to the analysis (the stream is teed) and renamed into
place only after its digest verified. A hit is verified again as it is read; a corrupt
entry is deleted and the layer fetched again. Recency is the file's mtime, refreshed on
every hit, so LRU order survives restarts and is shared by every process.

All methods block (file system calls, and waiting for the lock): call them from a thread.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

__all__ = ["CACHE_DIRNAME", "CacheStats", "CacheWriter", "LayerCache"]

log = logging.getLogger(__name__)

CACHE_DIRNAME: Final = "anchore_layercache"
_TMP_PREFIX: Final = ".tmp-"
_STATS_FILE: Final = ".stats.json"


@dataclass(frozen=True, slots=True)
class CacheStats:
    entries: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int
    in_progress: int


class CacheWriter:
    """A blob being admitted: space reserved, written by one thread, committed or aborted."""

    def __init__(self, cache: LayerCache, digest: str, tmp_path: str, fd: int) -> None:
        self._cache = cache
        self.digest = digest
        self.tmp_path = tmp_path
        self._fd = fd
        self.written = 0

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
            self.written += n

    def commit(self) -> None:
        """The digest verified: rename into place (the reservation becomes the entry)."""
        os.ftruncate(self._fd, self.written)  # no-op unless the reservation was larger
        final = self._cache.blob_path(self.digest)
        # Under the cache lock: another process's accounting scan must not see the entry
        # under both names, or under neither (a directory listing racing a rename can do both).
        with self._cache._locked():
            os.rename(self.tmp_path, final)
        os.close(self._fd)
        self._fd = -1

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass


class LayerCache:
    def __init__(self, tmp_dir: str, max_bytes: int) -> None:
        self.root = os.path.join(tmp_dir, CACHE_DIRNAME)
        self.blob_dir = os.path.join(self.root, "sha256")
        self.max_bytes = max_bytes
        os.makedirs(self.blob_dir, exist_ok=True)
        self._lock_path = os.path.join(self.root, ".lock")

    def blob_path(self, digest: str) -> str:
        algorithm, _, hex_ = digest.partition(":")
        if algorithm != "sha256" or len(hex_) != 64 or not all(c in "0123456789abcdef" for c in hex_):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return os.path.join(self.blob_dir, hex_)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # -- accounting (under the lock) ------------------------------------------------------

    def _scan(self) -> tuple[list[tuple[float, int, str]], int, int]:
        """(entries as (mtime, size, path), total bytes incl. reservations, writers)."""
        entries, total, writers = [], 0, 0
        with os.scandir(self.blob_dir) as it:
            for item in it:
                try:
                    st = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                total += st.st_size
                if item.name.startswith(_TMP_PREFIX):
                    writers += 1
                elif not item.name.startswith("."):
                    entries.append((st.st_mtime, st.st_size, item.path))
        return entries, total, writers

    def _count(self, **deltas: int) -> None:
        path = os.path.join(self.root, _STATS_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                counters = json.load(f)
        except (FileNotFoundError, ValueError):
            counters = {}
        for key, delta in deltas.items():
            counters[key] = int(counters.get(key, 0)) + delta
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(counters, f)
        os.replace(tmp, path)

    def _evict_for(self, needed: int) -> int:
        entries, total, _ = self._scan()
        evicted = 0
        for _, size, path in sorted(entries):  # oldest use first
            if total + needed <= self.max_bytes:
                break
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            total -= size
            evicted += 1
            log.info("event=cache_evict blob=sha256:%s bytes=%d", os.path.basename(path), size)
        if total + needed > self.max_bytes:
            return -1  # the rest is reserved by writers in flight
        return evicted

    # -- the API ---------------------------------------------------------------------------

    def lookup(self, digest: str) -> str | None:
        """The cached blob's path (and a refreshed recency), or None."""
        path = self.blob_path(digest)
        try:
            os.utime(path)
        except FileNotFoundError:
            with self._locked():
                self._count(misses=1)
            return None
        with self._locked():
            self._count(hits=1)
        return path

    def begin(self, digest: str, size: int) -> CacheWriter | None:
        """Reserve room for a blob of ``size`` bytes; None if it cannot be cached now."""
        if size > self.max_bytes:
            log.info("event=cache_skip blob=%s bytes=%d reason=larger_than_cache", digest, size)
            return None
        final = self.blob_path(digest)
        with self._locked():
            evicted = self._evict_for(size)
            if evicted < 0:
                log.info("event=cache_skip blob=%s bytes=%d reason=space_reserved_by_other_writers", digest, size)
                return None
            if evicted:
                self._count(evictions=evicted)
            if os.path.exists(final):
                return None  # another process admitted it meanwhile
            tmp = os.path.join(self.blob_dir, f"{_TMP_PREFIX}{os.path.basename(final)}-{os.getpid()}-"
                                              f"{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while we write: we are alive
            try:
                if size:
                    os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    os.close(fd)
                    os.unlink(tmp)
                    log.warning("event=cache_skip blob=%s error=%r", digest, exc.strerror)
                    return None
                os.ftruncate(fd, size)  # no preallocation here: reserve the size in name only
            return CacheWriter(self, digest, tmp, fd)

    def discard(self, digest: str) -> None:
        """Delete an entry that failed verification."""
        try:
            os.unlink(self.blob_path(digest))
            log.warning("event=cache_corrupt blob=%s action=deleted", digest)
        except FileNotFoundError:
            pass

    def recover(self) -> int:
        """Delete temporaries left by crashed writers (their flock is gone). At start."""
        removed = 0
        with self._locked():
            for name in os.listdir(self.blob_dir):
                if not name.startswith(_TMP_PREFIX):
                    continue
                path = os.path.join(self.blob_dir, name)
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer
                finally:
                    os.close(fd)
                os.unlink(path)
                removed += 1
        if removed:
            log.info("event=cache_recovered stale_temporaries=%d", removed)
        return removed

    def stats(self) -> CacheStats:
        with self._locked():
            entries, total, writers = self._scan()
            try:
                with open(os.path.join(self.root, _STATS_FILE), encoding="utf-8") as f:
                    counters = json.load(f)
            except (FileNotFoundError, ValueError):
                counters = {}
        return CacheStats(entries=len(entries), bytes=total, max_bytes=self.max_bytes,
                          hits=int(counters.get("hits", 0)), misses=int(counters.get("misses", 0)),
                          evictions=int(counters.get("evictions", 0)), in_progress=writers)

    def prune(self) -> int:
        """Remove crashed writers' leftovers and evict down to the size limit."""
        self.recover()
        with self._locked():
            evicted = max(self._evict_for(0), 0)
            if evicted:
                self._count(evictions=evicted)
        return evicted

    def clear(self) -> int:
        removed = 0
        with self._locked():
            for name in os.listdir(self.blob_dir):
                if name.startswith(_TMP_PREFIX):
                    continue
                try:
                    os.unlink(os.path.join(self.blob_dir, name))
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed
