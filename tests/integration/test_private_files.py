"""Files that hold results are private: the SQLite database with its -wal and -shm, and the
layer cache, which another local user must not be able to point elsewhere."""

import asyncio
import errno
import hashlib
import os
import secrets
import stat
import subprocess

import pytest

from analyzerd.cache import LayerCache
from analyzerd.errors import ConfigError
from analyzerd.store import Store


def ls_mode(path):
    """The mode column of ``ls -l`` (``-rw-------``), as ls itself prints it."""
    return subprocess.run(["ls", "-ld", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]


@pytest.fixture
def open_umask():
    """The umask most shells have: without care, new files are readable by everyone."""
    old = os.umask(0o022)
    yield
    os.umask(old)


async def _create(path):
    await (await Store.open(str(path))).close()


def write_a_job(path, listed=None):
    """Open (creating) the database at ``path`` and write to it; the modes of ``listed``
    (default: ``path``) and its -wal and -shm while it is open."""
    listed = listed or path

    async def go():
        async with await Store.open(str(path)) as store:
            await store.enqueue(["example.com/a:1"], None)
            # still open: the -wal and -shm files exist now
            return {suffix: ls_mode(f"{listed}{suffix}") for suffix in ("", "-wal", "-shm")}
    return asyncio.run(go())


def test_a_new_database_and_its_wal_and_shm_are_private(tmp_path, open_umask):
    modes = write_a_job(tmp_path / "new" / "analyzerd.db")
    assert modes == {"": "-rw-------", "-wal": "-rw-------", "-shm": "-rw-------"}
    assert ls_mode(tmp_path / "new") == "drwx------"  # the directory it made for it


def test_an_existing_database_keeps_the_mode_its_owner_gave_it(tmp_path, open_umask):
    path = tmp_path / "shared.db"
    asyncio.run(_create(path))
    os.chmod(path, 0o640)  # say, a group of analysts reads it
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.unlink(f"{path}{suffix}")
    assert write_a_job(path) == {"": "-rw-r-----", "-wal": "-rw-r-----", "-shm": "-rw-r-----"}


def test_a_database_reached_through_a_symlink_is_created_private_where_it_points(tmp_path, open_umask):
    target = tmp_path / "data" / "analyzerd.db"
    os.symlink(target, tmp_path / "link.db")
    assert write_a_job(tmp_path / "link.db", target) == {"": "-rw-------", "-wal": "-rw-------", "-shm": "-rw-------"}
    assert ls_mode(tmp_path / "data") == "drwx------"


# -- the layer cache ---------------------------------------------------------------------

def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def victim_dir(tmp_path):
    victim = tmp_path / "victim"
    (victim / "sha256").mkdir(parents=True)
    (victim / "sha256" / "precious").write_text("keep me")
    (victim / "precious").write_text("keep me")
    return victim


def test_a_new_cache_root_is_private(tmp_path, open_umask):
    cache = LayerCache(str(tmp_path), max_bytes=1000)
    assert ls_mode(cache.root) == "drwx------" and ls_mode(cache.blob_dir) == "drwx------"
    writer = cache.begin(digest_of(b"abc"), 3)
    writer.write(b"abc")
    writer.commit()
    assert ls_mode(cache.blob_path(digest_of(b"abc"))) == "-rw-------"
    assert cache.lookup(digest_of(b"abc")) is not None  # the counters are written too
    for name in os.listdir(cache.root):
        assert ls_mode(os.path.join(cache.root, name)) in ("-rw-------", "drwx------"), name


@pytest.mark.parametrize("root_mode, blobs_mode", [(0o777, 0o755), (0o701, 0o701)])
def test_an_own_cache_root_from_before_is_made_private(tmp_path, open_umask, root_mode, blobs_mode):
    (tmp_path / "anchore_layercache" / "sha256").mkdir(parents=True)
    os.chmod(tmp_path / "anchore_layercache" / "sha256", blobs_mode)
    os.chmod(tmp_path / "anchore_layercache", root_mode)
    cache = LayerCache(str(tmp_path), max_bytes=1000)
    assert ls_mode(cache.root) == "drwx------" and ls_mode(cache.blob_dir) == "drwx------"


def test_a_symlinked_cache_root_is_refused_and_nothing_it_points_at_is_deleted(tmp_path):
    # Another local user made <tmp_dir>/anchore_layercache first, pointing at our files.
    victim = victim_dir(tmp_path)
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.symlink(victim, shared / "anchore_layercache")
    with pytest.raises(ConfigError, match=str(shared / "anchore_layercache")) as refused:
        LayerCache(str(shared), max_bytes=1000).clear()
    assert refused.value.message.startswith(f"layer cache {shared / 'anchore_layercache'} is a symlink: refused")
    assert (victim / "sha256" / "precious").read_text() == "keep me"


def test_a_symlinked_blob_directory_is_refused(tmp_path):
    victim = victim_dir(tmp_path)
    root = tmp_path / "tmp" / "anchore_layercache"
    root.mkdir(parents=True, mode=0o700)
    os.symlink(victim / "sha256", root / "sha256")
    with pytest.raises(ConfigError, match=f"{root / 'sha256'} is a symlink: refused"):
        LayerCache(str(tmp_path / "tmp"), max_bytes=1000).clear()
    assert (victim / "sha256" / "precious").read_text() == "keep me"


@pytest.mark.parametrize("path", ["anchore_layercache", "anchore_layercache/sha256"])
def test_a_cache_directory_that_is_a_file_is_refused_naming_it_and_what_to_do(tmp_path, path):
    (tmp_path / path).parent.mkdir(exist_ok=True, mode=0o700)
    (tmp_path / path).write_text("not a directory")
    with pytest.raises(ConfigError) as refused:
        LayerCache(str(tmp_path), max_bytes=1000)
    assert refused.value.message == (f"layer cache {tmp_path / path} is not a directory: refused (in a shared "
                                     "tmp_dir, another user may have made it to have the cache read or delete "
                                     "files elsewhere)")
    assert refused.value.hint == (f"remove {tmp_path / path}, or set tmp_dir to a directory only analyzerd's "
                                  "user can write")


@pytest.fixture
def no_umask():
    """umask 0: a directory is made with exactly the mode asked for."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_a_new_cache_directory_is_private_from_its_first_moment(tmp_path, no_umask, monkeypatch):
    """Made wider and narrowed after, it would be open in between: another user could plant a
    symlink in it then."""
    created = {}
    real_mkdir = os.mkdir

    def mkdir(path, mode=0o777, *, dir_fd=None):
        real_mkdir(path, mode, dir_fd=dir_fd)
        created[path] = stat.S_IMODE(os.lstat(path, dir_fd=dir_fd).st_mode)
    monkeypatch.setattr(os, "mkdir", mkdir)
    LayerCache(str(tmp_path), max_bytes=1000)
    assert created == {str(tmp_path / "anchore_layercache"): 0o700, "sha256": 0o700}


def test_a_directory_swapped_for_a_symlink_after_opening_is_refused(tmp_path):
    """Every operation checks again (on the directory it then works in)."""
    victim = victim_dir(tmp_path)
    cache = LayerCache(str(tmp_path / "tmp"), max_bytes=10)
    os.rename(cache.root, tmp_path / "moved")
    os.symlink(victim, cache.root)
    with pytest.raises(ConfigError, match="symlink"):
        cache.clear()
    with pytest.raises(ConfigError, match="symlink"):
        cache.prune()
    assert (victim / "sha256" / "precious").read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory owned by another user needs root")
def test_a_cache_root_owned_by_another_user_is_refused(tmp_path):
    root = tmp_path / "anchore_layercache"
    root.mkdir(mode=0o777)
    os.chown(root, 65534, 65534)
    with pytest.raises(ConfigError, match=f"{root}.*owned by uid 65534"):
        LayerCache(str(tmp_path), max_bytes=1000)


def test_a_symlink_inside_the_cache_is_never_followed(tmp_path):
    cache = LayerCache(str(tmp_path / "tmp"), max_bytes=1000)
    secret = tmp_path / "secret"
    secret.write_text("not a layer")
    digest = digest_of(b"layer")
    os.symlink(secret, cache.blob_path(digest))
    assert cache.lookup(digest) is None  # not a hit: a symlink is no cache entry
    assert not os.path.lexists(cache.blob_path(digest))  # and it is gone
    assert secret.read_text() == "not a layer"
    # the counters' and the lock's names, taken over by symlinks
    for name in (".stats.json", ".lock", f".stats.json.{os.getpid()}"):
        if os.path.lexists(os.path.join(cache.root, name)):
            os.unlink(os.path.join(cache.root, name))
        os.symlink(secret, os.path.join(cache.root, name))
    assert cache.lookup(digest) is None and cache.stats().misses >= 1
    assert secret.read_text() == "not a layer"
    os.symlink(secret, os.path.join(cache.blob_dir, ".tmp-" + digest.split(":")[1] + "-1-00000000"))
    cache.recover()
    cache.clear()
    assert secret.read_text() == "not a layer"


def test_a_fifo_in_the_cache_does_not_hang_it(tmp_path):
    cache = LayerCache(str(tmp_path / "tmp"), max_bytes=1000)
    digest = digest_of(b"layer")
    os.mkfifo(cache.blob_path(digest))
    os.mkfifo(os.path.join(cache.blob_dir, ".tmp-x"))
    assert cache.lookup(digest) is None
    assert cache.recover() == 1


def test_a_fifo_at_the_lock_or_counters_name_is_replaced_not_waited_on(tmp_path):
    cache = LayerCache(str(tmp_path / "tmp"), max_bytes=1000)
    names = [os.path.join(cache.root, name) for name in (".lock", ".stats.json")]
    for path in names:
        os.mkfifo(path)
    assert cache.lookup(digest_of(b"layer")) is None
    assert cache.stats().misses == 1
    assert all(stat.S_ISREG(os.lstat(path).st_mode) for path in names)


def test_a_name_put_back_each_time_it_is_removed_is_an_error_naming_it(tmp_path, monkeypatch):
    cache = LayerCache(str(tmp_path / "tmp"), max_bytes=1000)
    os.mkfifo(os.path.join(cache.root, ".lock"))
    real_unlink = os.unlink

    def unlink_and_put_back(path, *, dir_fd=None):
        real_unlink(path, dir_fd=dir_fd)
        if path == ".lock":
            os.mkfifo(path, dir_fd=dir_fd)  # another process of this user puts it back at once
    monkeypatch.setattr(os, "unlink", unlink_and_put_back)
    with pytest.raises(FileExistsError) as replaced:
        cache.stats()
    assert (replaced.value.errno, replaced.value.strerror) == (errno.EEXIST, ".lock keeps being replaced")


def test_a_symlink_at_a_temporary_name_is_never_written_through(tmp_path, monkeypatch):
    """Temporary names are random and created exclusively: one guessed and planted is refused."""
    cache = LayerCache(str(tmp_path / "tmp"), max_bytes=1000)
    secret = tmp_path / "secret"
    secret.write_text("not a layer")
    monkeypatch.setattr(secrets, "token_hex", lambda nbytes=None: "guessed")
    digest = digest_of(b"layer")
    os.symlink(secret, os.path.join(cache.blob_dir, f".tmp-{digest.split(':')[1]}-{os.getpid()}-guessed"))
    os.symlink(secret, os.path.join(cache.root, f".stats.json.{os.getpid()}-guessed"))
    with pytest.raises(FileExistsError):
        cache.begin(digest, 100)
    assert cache.lookup(digest) is None  # the counters update is lost (a warning), never written through
    assert secret.read_text() == "not a layer"


def test_a_symlink_in_the_blob_directory_counts_as_itself_not_what_it_points_at(tmp_path):
    cache = LayerCache(str(tmp_path / "tmp"), max_bytes=1000)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 5000)
    link = os.path.join(cache.blob_dir, "f" * 64)
    os.symlink(big, link)
    assert cache.stats().bytes == os.lstat(link).st_size < 1000


def test_stale_cache_entries_are_still_evicted_and_cleared(tmp_path):
    cache = LayerCache(str(tmp_path / "tmp"), max_bytes=10)
    for data in (b"12345", b"67890"):
        writer = cache.begin(digest_of(data), 5)
        writer.write(data)
        writer.commit()
    assert stat.S_ISREG(os.lstat(cache.blob_path(digest_of(b"12345"))).st_mode)
    assert cache.clear() == 2 and cache.stats().entries == 0
