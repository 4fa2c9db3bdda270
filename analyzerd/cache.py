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

The cache is private to the user the daemon runs as, because ``tmp_dir`` is often shared
(``/tmp``): another local user who made ``anchore_layercache`` first, as a symlink or as a
directory of their own, could have eviction and ``cache clear`` delete files elsewhere. So
the root and ``sha256/`` are made 0700, and refused (an error naming the path) when either is
a symlink, not a directory or another user's; an own directory with wider permissions (an
older cache volume) is narrowed to 0700. Every operation opens both directories again
(``O_NOFOLLOW``, checked with ``fstat``) and works relative to them, so swapping one for a
symlink later is refused too; files in them are opened ``O_NOFOLLOW`` (non-blocking, so a
FIFO cannot hang a reader), and an entry that is not a regular file of ours is deleted, never
followed. Temporary names are random and created exclusively.

All methods block (file system calls, and waiting for the lock): call them from a thread.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from .errors import ConfigError

__all__ = ["CACHE_DIRNAME", "CacheStats", "CacheWriter", "LayerCache", "cacheable"]

log = logging.getLogger(__name__)

CACHE_DIRNAME: Final = "anchore_layercache"
_BLOB_DIRNAME: Final = "sha256"
_TMP_PREFIX: Final = ".tmp-"
_STATS_FILE: Final = ".stats.json"
_LOCK_FILE: Final = ".lock"
#: How every file in the cache is opened: never through a symlink, never blocking on a FIFO.
_OPEN_FLAGS: Final = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class CacheStats:
    entries: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int
    in_progress: int


@dataclass(frozen=True, slots=True)
class _Dirs:
    """The cache's two directories, open and checked, for one operation."""

    root: int
    blobs: int


class CacheWriter:
    """A blob being admitted: space reserved, written by one thread, committed or aborted."""

    def __init__(self, cache: LayerCache, digest: str, tmp_name: str, fd: int) -> None:
        self._cache = cache
        self.digest = digest
        self.tmp_name = tmp_name
        self.tmp_path = os.path.join(cache.blob_dir, tmp_name)
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
        final = _blob_name(self.digest)
        # Under the cache lock: another process's accounting scan must not see the entry
        # under both names, or under neither (a directory listing racing a rename can do both).
        with self._cache._locked() as dirs:
            os.rename(self.tmp_name, final, src_dir_fd=dirs.blobs, dst_dir_fd=dirs.blobs)
        os.close(self._fd)
        self._fd = -1

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with self._cache._dirs() as dirs:
            _unlink(self.tmp_name, dirs.blobs)


def cacheable(digest: str) -> bool:
    """Anchore's layout holds sha256 blobs only; a layer with another digest (OCI allows
    sha512) is analyzed as it streams, never cached."""
    return digest.startswith("sha256:")


def _blob_name(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    if algorithm != "sha256" or len(hex_) != 64 or not all(c in "0123456789abcdef" for c in hex_):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return hex_


def _unlink(name: str, dir_fd: int) -> bool:
    """Remove a name (a symlink itself, never what it points at); False if it was gone."""
    try:
        os.unlink(name, dir_fd=dir_fd)
        return True
    except FileNotFoundError:
        return False


def _private_dir(path: str, name: str, parent_fd: int | None) -> int:
    """Open one of the cache's directories, made 0700 if missing. Refused when it is a
    symlink, not a directory, or another user's; an own one is narrowed to 0700."""
    try:
        os.mkdir(name, 0o700, dir_fd=parent_fd)
    except FileExistsError:
        pass
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        what = "a symlink" if stat.S_ISLNK(os.lstat(name, dir_fd=parent_fd).st_mode) else "not a directory"
        raise _refused(path, f"is {what}") from None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        os.close(fd)
        raise _refused(path, f"is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.fchmod(fd, 0o700)
    return fd


def _refused(path: str, why: str) -> ConfigError:
    return ConfigError(f"layer cache {path} {why}: refused (in a shared tmp_dir, another user may have "
                       "made it to have the cache read or delete files elsewhere)",
                       hint=f"remove {path}, or set tmp_dir to a directory only analyzerd's user can write")


def _open_file(name: str, flags: int, dir_fd: int) -> int:
    """Open (or create, 0600) a file of the cache's own: a symlink or other non-regular file
    standing at its name is removed first, never followed."""
    for _ in range(2):
        try:
            fd = os.open(name, flags | _OPEN_FLAGS, 0o600, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            _unlink(name, dir_fd)
            continue
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
        os.close(fd)
        _unlink(name, dir_fd)
    raise FileExistsError(errno.EEXIST, f"{name} keeps being replaced")


class LayerCache:
    def __init__(self, tmp_dir: str, max_bytes: int) -> None:
        self.root = os.path.join(tmp_dir, CACHE_DIRNAME)
        self.blob_dir = os.path.join(self.root, _BLOB_DIRNAME)
        self.max_bytes = max_bytes
        os.makedirs(tmp_dir, exist_ok=True)
        with self._dirs():  # made, or refused, now
            pass

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blob_dir, _blob_name(digest))

    @contextmanager
    def _dirs(self) -> Iterator[_Dirs]:
        root = _private_dir(self.root, self.root, None)
        try:
            blobs = _private_dir(self.blob_dir, _BLOB_DIRNAME, root)
            try:
                yield _Dirs(root, blobs)
            finally:
                os.close(blobs)
        finally:
            os.close(root)

    @contextmanager
    def _locked(self) -> Iterator[_Dirs]:
        with self._dirs() as dirs:
            fd = _open_file(_LOCK_FILE, os.O_RDWR | os.O_CREAT, dirs.root)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield dirs
            finally:
                os.close(fd)  # closing releases the lock

    # -- accounting (under the lock) ------------------------------------------------------

    @staticmethod
    def _scan(dirs: _Dirs) -> tuple[list[tuple[float, int, str]], int, int]:
        """(entries as (mtime, size, name), total bytes incl. reservations, writers)."""
        entries, total, writers = [], 0, 0
        with os.scandir(dirs.blobs) as it:
            for item in it:
                try:
                    st = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                total += st.st_size
                if item.name.startswith(_TMP_PREFIX):
                    writers += 1
                elif not item.name.startswith("."):
                    entries.append((st.st_mtime, st.st_size, item.name))
        return entries, total, writers

    @staticmethod
    def _counters(dirs: _Dirs) -> dict[str, Any]:
        try:
            fd = _open_file(_STATS_FILE, os.O_RDONLY, dirs.root)
        except FileNotFoundError:
            return {}
        try:
            with os.fdopen(fd, encoding="utf-8") as f:
                counters = json.load(f)
        except ValueError:
            return {}
        return counters if isinstance(counters, dict) else {}

    def _count(self, dirs: _Dirs, **deltas: int) -> None:
        """Add to the hit/miss counters. They are statistics: a full disk (or any error writing
        them) loses this update, with a warning, never the lookup or the job."""
        counters = self._counters(dirs)
        for key, delta in deltas.items():
            counters[key] = int(counters.get(key, 0)) + delta
        tmp = f"{_STATS_FILE}.{os.getpid()}-{secrets.token_hex(8)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o600, dir_fd=dirs.root)
        except OSError as exc:
            log.warning("event=cache_counters_not_written root=%s error=%r", self.root, str(exc))
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(counters, f)
            os.replace(tmp, _STATS_FILE, src_dir_fd=dirs.root, dst_dir_fd=dirs.root)
        except OSError as exc:
            _unlink(tmp, dirs.root)
            log.warning("event=cache_counters_not_written root=%s error=%r", self.root, str(exc))
        except BaseException:
            _unlink(tmp, dirs.root)
            raise

    def _evict_for(self, dirs: _Dirs, needed: int) -> int:
        entries, total, _ = self._scan(dirs)
        evicted = 0
        for _, size, name in sorted(entries):  # oldest use first
            if total + needed <= self.max_bytes:
                break
            if not _unlink(name, dirs.blobs):
                continue
            total -= size
            evicted += 1
            log.info("event=cache_evict blob=sha256:%s bytes=%d", name, size)
        if total + needed > self.max_bytes:
            return -1  # the rest is reserved by writers in flight
        return evicted

    # -- the API ---------------------------------------------------------------------------

    def lookup(self, digest: str) -> str | None:
        """The cached blob's path (and a refreshed recency), or None."""
        name = _blob_name(digest)
        with self._dirs() as dirs:
            hit = self._touch(name, dirs)
        with self._locked() as dirs:
            self._count(dirs, **{"hits" if hit else "misses": 1})
        return self.blob_path(digest) if hit else None

    @staticmethod
    def _touch(name: str, dirs: _Dirs) -> bool:
        """Refresh an entry's recency; False if there is none. What stands at its name and is
        not a regular file of ours (a symlink, a FIFO) is deleted, never followed."""
        try:
            fd = os.open(name, os.O_RDONLY | _OPEN_FLAGS, dir_fd=dirs.blobs)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            fd = -1
        try:
            st = os.fstat(fd) if fd >= 0 else None
            if st is not None and stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
                os.utime(fd)
                return True
        finally:
            if fd >= 0:
                os.close(fd)
        _unlink(name, dirs.blobs)
        log.warning("event=cache_entry_removed blob=sha256:%s reason=%s", name,
                    "symlink" if st is None else "not_a_regular_file_of_ours")
        return False

    def begin(self, digest: str, size: int) -> CacheWriter | None:
        """Reserve room for a blob of ``size`` bytes; None if it cannot be cached now."""
        if size > self.max_bytes:
            log.info("event=cache_skip blob=%s bytes=%d reason=larger_than_cache", digest, size)
            return None
        final = _blob_name(digest)
        with self._locked() as dirs:
            evicted = self._evict_for(dirs, size)
            if evicted < 0:
                log.info("event=cache_skip blob=%s bytes=%d reason=space_reserved_by_other_writers", digest, size)
                return None
            if evicted:
                self._count(dirs, evictions=evicted)
            try:
                os.stat(final, dir_fd=dirs.blobs, follow_symlinks=False)
                return None  # another process admitted it meanwhile
            except FileNotFoundError:
                pass
            # A random name, created exclusively (O_EXCL never follows a symlink either).
            tmp = f"{_TMP_PREFIX}{final}-{os.getpid()}-{secrets.token_hex(8)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dirs.blobs)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while we write: we are alive
            try:
                if size:
                    os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    os.close(fd)
                    _unlink(tmp, dirs.blobs)
                    log.warning("event=cache_skip blob=%s error=%r", digest, exc.strerror)
                    return None
                os.ftruncate(fd, size)  # no preallocation here: reserve the size in name only
            return CacheWriter(self, digest, tmp, fd)

    def discard(self, digest: str) -> None:
        """Delete an entry that failed verification."""
        with self._dirs() as dirs:
            if _unlink(_blob_name(digest), dirs.blobs):
                log.warning("event=cache_corrupt blob=%s action=deleted", digest)

    def recover(self) -> int:
        """Delete temporaries left by crashed writers (their flock is gone). At start."""
        removed = 0
        with self._locked() as dirs:
            for name in os.listdir(dirs.blobs):
                if not name.startswith(_TMP_PREFIX):
                    continue
                try:
                    fd = os.open(name, os.O_RDONLY | _OPEN_FLAGS, dir_fd=dirs.blobs)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    if exc.errno != errno.ELOOP:
                        raise
                    fd = -1  # a symlink: no writer of ours
                if fd >= 0:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a live writer
                    finally:
                        os.close(fd)
                if _unlink(name, dirs.blobs):
                    removed += 1
        if removed:
            log.info("event=cache_recovered stale_temporaries=%d", removed)
        return removed

    def stats(self) -> CacheStats:
        with self._locked() as dirs:
            entries, total, writers = self._scan(dirs)
            counters = self._counters(dirs)
        return CacheStats(entries=len(entries), bytes=total, max_bytes=self.max_bytes,
                          hits=int(counters.get("hits", 0)), misses=int(counters.get("misses", 0)),
                          evictions=int(counters.get("evictions", 0)), in_progress=writers)

    def prune(self) -> int:
        """Remove crashed writers' leftovers and evict down to the size limit."""
        self.recover()
        with self._locked() as dirs:
            evicted = max(self._evict_for(dirs, 0), 0)
            if evicted:
                self._count(dirs, evictions=evicted)
        return evicted

    def clear(self) -> int:
        removed = 0
        with self._locked() as dirs:
            for name in os.listdir(dirs.blobs):
                if not name.startswith(_TMP_PREFIX) and _unlink(name, dirs.blobs):
                    removed += 1
        return removed
