"""The layer blob cache and the reuse of layer results, on real files, processes and a
real registry (whose access log counts the blob downloads)."""

import errno
import hashlib
import json
import logging
import multiprocessing
import os
import random
import signal
import sqlite3
import threading
import time

import pytest

from analyzerd.cache import _STATS_FILE as STATS_FILE
from analyzerd.cache import LayerCache, cacheable
from analyzerd.testing import Member, build_image, make_layer, push_image

from .test_end_to_end import start_daemon


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def admit(cache, data):
    writer = cache.begin(digest_of(data), len(data))
    if writer is None:
        return False
    writer.write(data)
    writer.commit()
    return True


def dir_bytes(cache):
    return sum(os.stat(os.path.join(cache.blob_dir, n)).st_size for n in os.listdir(cache.blob_dir))


def test_anchore_layout_and_lru_eviction_before_admission(tmp_path):
    cache = LayerCache(str(tmp_path), max_bytes=1000)
    blobs = [os.urandom(400) for _ in range(4)]
    assert admit(cache, blobs[0]) and admit(cache, blobs[1])
    assert os.path.exists(tmp_path / "anchore_layercache" / "sha256" / digest_of(blobs[0]).split(":")[1])
    old = time.time() - 100
    os.utime(cache.blob_path(digest_of(blobs[0])), (old, old))
    os.utime(cache.blob_path(digest_of(blobs[1])), (old + 1, old + 1))
    assert cache.lookup(digest_of(blobs[0])) is not None  # a hit makes blob 0 the most recent
    assert admit(cache, blobs[2])  # needs room: blob 1, the least recently used, goes
    assert cache.lookup(digest_of(blobs[1])) is None
    assert cache.lookup(digest_of(blobs[0])) and cache.lookup(digest_of(blobs[2]))
    assert dir_bytes(cache) <= 1000
    stats = cache.stats()
    assert (stats.entries, stats.evictions, stats.hits, stats.misses) == (2, 1, 3, 1)


def test_space_is_reserved_before_writing(tmp_path):
    cache = LayerCache(str(tmp_path), max_bytes=1000)
    first = cache.begin(digest_of(b"a" * 600), 600)
    assert first is not None
    assert dir_bytes(cache) == 600  # the reservation counts at once
    assert cache.begin(digest_of(b"b" * 600), 600) is None  # cannot fit next to it
    assert cache.begin(digest_of(b"c" * 2000), 2000) is None  # larger than the cache
    first.abort()
    assert dir_bytes(cache) == 0


def _writer_process(tmp_dir, seed, count):
    rng = random.Random(seed)
    cache = LayerCache(tmp_dir, max_bytes=1000)
    for _ in range(count):
        data = rng.randbytes(rng.randint(100, 300))
        writer = cache.begin(digest_of(data), len(data))
        if writer is not None:
            for i in range(0, len(data), 37):
                writer.write(data[i:i + 37])
                time.sleep(0.0005)
            writer.commit()
        if rng.random() < 0.5:
            cache.lookup(digest_of(data))


def test_two_processes_never_exceed_the_size_or_corrupt_entries(tmp_path):
    cache = LayerCache(str(tmp_path), max_bytes=1000)
    peak = [0]
    done = threading.Event()

    def monitor():
        # under the cache's own lock, as every process's accounting is: a listing racing a
        # rename can count an entry twice or not at all
        while not done.is_set():
            with cache._locked():
                peak[0] = max(peak[0], dir_bytes(cache))

    thread = threading.Thread(target=monitor)
    thread.start()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer_process, args=(str(tmp_path), seed, 40)) for seed in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    done.set()
    thread.join()
    assert 0 < peak[0] <= 1000
    for name in os.listdir(cache.blob_dir):
        with open(os.path.join(cache.blob_dir, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == name  # every entry is what it claims


def test_crash_leftovers_are_removed_but_live_writers_kept(tmp_path):
    cache = LayerCache(str(tmp_path), max_bytes=10_000)
    live = cache.begin(digest_of(b"live" * 10), 40)
    stale = os.path.join(cache.blob_dir, ".tmp-" + "ab" * 32 + "-999999-dead")
    with open(stale, "wb") as f:
        f.write(b"partial")
    other = LayerCache(str(tmp_path), max_bytes=10_000)  # as a second daemon starting up
    assert other.recover() == 1
    assert not os.path.exists(stale) and os.path.isfile(live.tmp_path)
    live.write(b"live" * 10)
    live.commit()
    assert other.lookup(digest_of(b"live" * 10))


# -- against the registry: what gets downloaded ---------------------------------------------

def blob_gets(registry, digest):
    with open(registry.log_path, errors="replace") as f:
        return sum(1 for line in f if f"/blobs/{digest} HTTP" in line and '"GET ' in line)


@pytest.fixture(scope="module")
def shared_base(registry):
    """Two images on one base layer: what debian-base and polyglot are to each other."""
    base = make_layer([Member(f"usr/lib/base{i}.so", os.urandom(20_000)) for i in range(30)] +
                      [Member("etc/os-release", b"ID=debian\n")])
    a = make_layer([Member("app/a.py", b"print('a')\n"), Member("usr/lib/.wh.base0.so")])
    b = make_layer([Member("app/b.py", b"print('b')\n")])
    image_a, image_b = build_image([base, a]), build_image([base, b])
    tag = os.urandom(4).hex()
    push_image(registry.url, f"reuse/a{tag}", "1", image_a)
    push_image(registry.url, f"reuse/b{tag}", "1", image_b)
    return {"a": f"{registry.host}/reuse/a{tag}:1", "b": f"{registry.host}/reuse/b{tag}:1",
            "image_a": image_a, "image_b": image_b, "tars": ([base, a], [base, b])}


@pytest.mark.parametrize("cache_enabled", [False, True], ids=["results-only", "with-blob-cache"])
def test_shared_layers_are_not_downloaded_twice(registry, shared_base, cli, tmp_path, cache_enabled):
    config = tmp_path / "config.yaml"
    config.write_text(f"tmp_dir: {tmp_path}\nservices:\n  analyzer:\n    layer_cache_enable: {cache_enabled}\n"
                      f"    layer_cache_max_gigabytes: 1\n")
    base_digest = shared_base["image_a"].layers[0].digest
    b_digest = shared_base["image_b"].layers[1].digest
    before_base, before_b = blob_gets(registry, base_digest), blob_gets(registry, b_digest)
    cli("--config", str(config), "analyze", shared_base["a"])
    assert blob_gets(registry, base_digest) == before_base + 1
    shown = json.loads(cli("--config", str(config), "analyze", shared_base["b"], "--json").stdout)
    assert blob_gets(registry, base_digest) == before_base + 1  # reused, not fetched
    assert blob_gets(registry, b_digest) == before_b + 1
    # the same files as an analysis that reused nothing
    fresh = json.loads(cli("--config", str(config), "--db", str(tmp_path / "fresh.db"), "analyze",
                           shared_base["b"], "--json").stdout)
    assert shown["files"] == fresh["files"]
    # a repeat fetches no blob at all, not even the config
    digests = [base_digest, b_digest, shared_base["image_b"].config.digest]
    total = sum(blob_gets(registry, d) for d in digests)
    cli("--config", str(config), "analyze", shared_base["b"])
    assert sum(blob_gets(registry, d) for d in digests) == total
    if cache_enabled:
        assert len(os.listdir(tmp_path / "anchore_layercache" / "sha256")) >= 2


def test_a_corrupt_cached_blob_is_deleted_and_fetched_again(registry, shared_base, cli, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"tmp_dir: {tmp_path}\nservices:\n  analyzer:\n    layer_cache_enable: true\n")
    cli("--config", str(config), "--db", str(tmp_path / "one.db"), "analyze", shared_base["a"])
    base_digest = shared_base["image_a"].layers[0].digest
    path = tmp_path / "anchore_layercache" / "sha256" / base_digest.split(":")[1]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    before = blob_gets(registry, base_digest)
    proc = cli("--config", str(config), "--db", str(tmp_path / "two.db"), "analyze", shared_base["a"], "--json")
    assert "event=cache_corrupt" in proc.stderr
    assert blob_gets(registry, base_digest) == before + 1
    assert hashlib.sha256(path.read_bytes()).hexdigest() == base_digest.split(":")[1]  # replaced, verified


def test_a_newer_analyzer_version_does_not_reuse_old_results(registry, shared_base, cli, tmp_path, db_path):
    cli("analyze", shared_base["a"])
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE layers SET analyzer_version = '0'")
    conn.execute("UPDATE images SET analyzer_version = '0'")
    conn.commit()
    base_digest = shared_base["image_a"].layers[0].digest
    before = blob_gets(registry, base_digest)
    cli("analyze", shared_base["a"])
    assert blob_gets(registry, base_digest) == before + 1


def test_two_jobs_needing_one_layer_at_once_download_it_once(registry, cli, db_path, tmp_path):
    big = make_layer([Member("big.bin", os.urandom(8_000_000))])
    images = [build_image([big, make_layer([Member(f"app{i}", b"x")])]) for i in range(2)]
    tag = os.urandom(4).hex()
    refs = []
    for i, image in enumerate(images):
        push_image(registry.url, f"flight/{tag}{i}", "1", image)
        refs.append(f"{registry.host}/flight/{tag}{i}:1")
    before = blob_gets(registry, images[0].layers[0].digest)
    daemon = start_daemon(db_path, tmp_path, "services:\n  analyzer:\n    cycle_timer_seconds: 0.05\n"
                                             "    max_threads: 1\n    max_concurrent_jobs: 2\n")
    try:
        cli("submit", "--wait", "--timeout", "60", *refs)
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    assert blob_gets(registry, images[0].layers[0].digest) == before + 1
    log = (tmp_path / "daemon.log").read_text()
    assert log.count("event=job_done") == 2


def test_cache_cli(cli, tmp_path, shared_base):
    config = tmp_path / "config.yaml"
    config.write_text(f"tmp_dir: {tmp_path}\nservices:\n  analyzer:\n    layer_cache_enable: true\n")
    cli("--config", str(config), "analyze", "oci:examples/sample-image:1")  # local blobs are not cached
    assert json.loads(cli("--config", str(config), "cache", "stats", "--json").stdout)["entries"] == 0
    cli("--config", str(config), "analyze", shared_base["a"])
    stats = json.loads(cli("--config", str(config), "cache", "stats", "--json").stdout)
    assert stats["entries"] == 2 and stats["misses"] == 2 and stats["enabled"] is True
    assert cli("--config", str(config), "cache", "clear").returncode == 0
    assert json.loads(cli("--config", str(config), "cache", "stats", "--json").stdout)["entries"] == 0


def test_cache_minimum_is_refused_at_start(cli, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("services:\n  analyzer:\n    layer_cache_enable: true\n    layer_cache_max_gigabytes: 0.5\n")
    proc = cli("--config", str(config), "run", check=False)
    assert proc.returncode == 2 and "minimum layer cache size is 1 GB" in proc.stderr


def test_a_sha512_layer_is_analyzed_with_the_cache_on_and_not_cached(registry, cli, tmp_path):
    """OCI allows sha512 digests; Anchore's cache layout holds sha256 blobs only. Such a
    layer is analyzed as any other, bypassing the cache, and its sha256 neighbours are cached."""
    from analyzerd.testing import Blob
    image = build_image([make_layer([Member("etc/one", b"1")]), make_layer([Member("etc/two", b"2")])])
    image.layers[1] = Blob(image.layers[1].data, image.layers[1].media_type, algorithm="sha512")
    manifest = json.loads(image.manifest.data)
    manifest["layers"] = [layer.descriptor() for layer in image.layers]
    image.manifest = Blob(json.dumps(manifest).encode(), image.manifest.media_type)
    repo = f"sha512/{os.urandom(4).hex()}"
    push_image(registry.url, repo, "1", image)
    config = tmp_path / "config.yaml"
    config.write_text(f"tmp_dir: {tmp_path}\nservices:\n  analyzer:\n    layer_cache_enable: true\n"
                      f"    layer_cache_max_gigabytes: 1\n")
    shown = json.loads(cli("--config", str(config), "analyze", f"{registry.host}/{repo}:1", "--json").stdout)
    assert {f["path"] for f in shown["files"]} >= {"/etc/one", "/etc/two"}
    assert next(f for f in shown["files"] if f["path"] == "/etc/two")["layer"].startswith("sha512:")
    assert os.listdir(tmp_path / "anchore_layercache" / "sha256") == [image.layers[0].digest.split(":")[1]]


def test_a_layer_analyzed_for_an_image_not_yet_stored_is_shared_not_fetched_again(registry, tmp_path):
    """Between a layer's analysis ending and its image being stored, the stored results do
    not have the layer yet: another image needing it then gets the same result, not a
    second download. The first image's store is held open until the second has its layers."""
    import asyncio

    import aiohttp

    from analyzerd.analyze import ImageAnalyzer
    from analyzerd.config import parse_config
    from analyzerd.registry.client import RegistryClient
    from analyzerd.store import Store

    base = make_layer([Member("big.bin", os.urandom(1_000_000))])
    images = [build_image([base, make_layer([Member(f"app{i}", b"x")])]) for i in range(2)]
    tag = os.urandom(4).hex()
    refs = []
    for i, image in enumerate(images):
        push_image(registry.url, f"shared/{tag}{i}", "1", image)
        refs.append(f"{registry.host}/shared/{tag}{i}:1")
    shared = images[0].layers[0].digest
    before = blob_gets(registry, shared)
    config = parse_config({"tmp_dir": str(tmp_path)})

    async def go():
        async with aiohttp.ClientSession() as session, await Store.open(str(tmp_path / "a.db")) as store:
            analyzer = ImageAnalyzer(config, RegistryClient(session, settings=config.registry_settings),
                                     layer_results=store, rule_set=None)
            first_analyzed, second_done = asyncio.Event(), asyncio.Event()

            async def save_first(result):
                first_analyzed.set()
                await second_done.wait()  # the first image is still being stored
                await store.save_image(result)

            async def first():
                return await analyzer.analyze_resolved(await analyzer.resolve(refs[0]), save=save_first)

            async def second():
                await first_analyzed.wait()
                try:
                    return await analyzer.analyze_resolved(await analyzer.resolve(refs[1]), save=store.save_image)
                finally:
                    second_done.set()

            a, b = await asyncio.gather(first(), second())
            analyzer.close()
            return a, b
    a, b = asyncio.run(go())
    assert blob_gets(registry, shared) == before + 1
    assert [f.path for f in a.layers[0].files] == [f.path for f in b.layers[0].files]


# -- the cache's own rules, without a registry ----------------------------------------------------

@pytest.mark.parametrize("digest", ["sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha512:" + "a" * 64,
                                    "sha256:" + "g" * 64, "sha256:" + "X" * 64, "a" * 64,
                                    "sha256:" + "a" * 64 + ":x"])
def test_only_a_lowercase_sha256_names_an_entry(tmp_path, digest):
    """The Anchore layout is sha256/<64 lowercase hex>: anything else is refused by name before
    it becomes a path."""
    cache = LayerCache(str(tmp_path), max_bytes=1000)
    with pytest.raises(ValueError, match="not a sha256 digest"):
        cache.lookup(digest)
    with pytest.raises(ValueError, match="not a sha256 digest"):
        cache.begin(digest, 10)


def test_a_blob_that_exactly_fills_the_cache_evicts_nothing_and_the_oldest_go_first(tmp_path):
    cache = LayerCache(str(tmp_path), max_bytes=1000)
    blobs = [os.urandom(size) for size in (200, 200, 400, 200)]
    for age, blob in enumerate(blobs):
        assert admit(cache, blob)
        then = time.time() - 100 + age
        os.utime(cache.blob_path(digest_of(blob)), (then, then))
    # 200 + 200 + 400 + 200: exactly full, nothing evicted
    assert cache.stats().evictions == 0 and dir_bytes(cache) == 1000
    assert admit(cache, os.urandom(500))  # room for 500: the three oldest go, the newest stays
    kept = [os.path.exists(cache.blob_path(digest_of(b))) for b in blobs]
    assert kept == [False, False, False, True]
    assert cache.stats().evictions == 3 and dir_bytes(cache) == 700


def test_a_reservation_larger_than_the_blob_is_cut_to_what_was_written(tmp_path):
    cache = LayerCache(str(tmp_path), max_bytes=10_000)
    data = os.urandom(4000)
    writer = cache.begin(digest_of(data), 9000)  # the size a manifest declared, too large
    assert cache.stats().in_progress == 1 and dir_bytes(cache) == 9000
    writer.write(data[:1500])
    writer.write(memoryview(data)[1500:])
    assert writer.written == 4000
    writer.commit()
    with open(cache.lookup(digest_of(data)), "rb") as f:
        assert f.read() == data
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.in_progress, stats.max_bytes) == (1, 4000, 0, 10_000)
    other = cache.begin(digest_of(b"x" * 10), 10)
    other.abort()
    other.abort()  # twice is harmless
    assert cache.stats().in_progress == 0


def test_the_counters_file_is_private_and_a_damaged_one_restarts_the_counts(tmp_path):
    cache = LayerCache(str(tmp_path), max_bytes=1000)
    assert cache.lookup(digest_of(b"absent")) is None
    counters = tmp_path / "anchore_layercache" / ".stats.json"
    assert counters.stat().st_mode & 0o777 == 0o600
    assert cache.stats().misses == 1
    counters.write_text("[1, 2, 3]")  # valid JSON, not the counters
    assert (cache.stats().hits, cache.stats().misses) == (0, 0)
    counters.write_text("{not json")
    assert cache.lookup(digest_of(b"absent")) is None and cache.stats().misses == 1


def test_a_blob_as_large_as_the_cache_is_admitted_one_byte_more_is_not(tmp_path):
    cache = LayerCache(str(tmp_path), max_bytes=1000)
    assert cache.begin(digest_of(b"y" * 1001), 1001) is None
    assert admit(cache, b"x" * 1000) and cache.lookup(digest_of(b"x" * 1000))


def test_recovery_removes_every_stale_temporary_around_live_ones_and_prune_evicts_to_the_limit(tmp_path):
    cache = LayerCache(str(tmp_path), max_bytes=10_000)
    stale = []
    for i in range(3):
        stale.append(os.path.join(cache.blob_dir, f".tmp-{i:064x}-99999{i}-dead"))
        with open(stale[-1], "wb") as f:
            f.write(b"partial")
    live = cache.begin(digest_of(b"live"), 4)
    os.symlink("/etc/passwd", os.path.join(cache.blob_dir, ".tmp-" + "f" * 64 + "-1-link"))
    assert LayerCache(str(tmp_path), max_bytes=10_000).recover() == 4  # three files and the link
    assert not any(os.path.lexists(p) for p in stale) and os.path.isfile(live.tmp_path)
    assert os.path.exists("/etc/passwd")  # the link was removed, never followed
    live.abort()
    for blob in (os.urandom(3000), os.urandom(3000), os.urandom(3000)):
        assert admit(cache, blob)
    smaller = LayerCache(str(tmp_path), max_bytes=5000)  # the limit lowered in config.yaml
    assert smaller.prune() == 2 and dir_bytes(smaller) == 3000
    assert smaller.prune() == 0 and smaller.stats().evictions == 2
    assert LayerCache(str(tmp_path), max_bytes=3000).prune() == 0  # exactly at its limit: nothing goes
    assert dir_bytes(smaller) == 3000


def test_only_sha256_layers_are_cached():
    assert cacheable("sha256:" + "a" * 64)
    assert not cacheable("sha512:" + "a" * 128)


def test_a_discarded_entry_is_deleted_logged_once_and_then_a_miss(tmp_path, caplog):
    cache = LayerCache(str(tmp_path), max_bytes=1000)
    data = b"a layer that failed verification"
    assert admit(cache, data)
    with caplog.at_level(logging.WARNING, logger="analyzerd.cache"):
        cache.discard(digest_of(data))
        cache.discard(digest_of(data))  # already gone: nothing deleted, nothing logged
    assert [r.getMessage() for r in caplog.records] == [f"event=cache_corrupt blob={digest_of(data)} action=deleted"]
    assert not os.path.lexists(cache.blob_path(digest_of(data)))
    assert cache.lookup(digest_of(data)) is None


def test_a_write_the_kernel_cuts_short_is_continued_to_the_end(tmp_path, monkeypatch):
    """Linux writes at most 2 GiB - 4 KiB a call; a short write must not lose the rest."""
    cache = LayerCache(str(tmp_path), max_bytes=10_000)
    data = os.urandom(1000)
    writer = cache.begin(digest_of(data), len(data))
    real_write = os.write
    with monkeypatch.context() as m:
        m.setattr(os, "write", lambda fd, buf: real_write(fd, buf[:64]))
        writer.write(data)
    assert writer.written == 1000
    writer.commit()
    with open(cache.lookup(digest_of(data)), "rb") as f:
        assert f.read() == data


def open_files():
    """The process's open descriptors and what each refers to."""
    files = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            files[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:
            pass  # the listing's own descriptor, closed by now
    return files


def test_commit_abort_and_recovery_close_their_own_files_and_no_other(tmp_path):
    """A daemon runs for months: a writer's descriptor is closed once, and a cleanup that runs
    again (an abort after a commit, a second abort) never closes a descriptor it no longer owns,
    such as the log's."""
    cache = LayerCache(str(tmp_path), max_bytes=1000)
    before = open_files()
    data = b"layer"
    writer = cache.begin(digest_of(data), len(data))
    writer.write(data)
    writer.commit()
    writer.abort()  # a cleanup after the commit: the entry stays
    other = cache.begin(digest_of(b"other"), 5)
    other.abort()
    other.abort()
    os.symlink("/etc/passwd", os.path.join(cache.blob_dir, ".tmp-" + "e" * 64 + "-1-link"))
    assert cache.recover() == 1
    assert open_files() == before
    assert cache.lookup(digest_of(data)) is not None


def test_recovery_removes_every_stale_temporary_amid_entries_and_live_writers(tmp_path):
    cache = LayerCache(str(tmp_path), max_bytes=100_000)
    entries = [b"entry %d" % i for i in range(8)]
    for data in entries[:4]:
        assert admit(cache, data)
    live = [cache.begin(digest_of(b"live %d" % i), 10) for i in range(6)]
    stale = [os.path.join(cache.blob_dir, f".tmp-{i:064x}-99999{i}-dead") for i in range(12)]
    for path in stale:
        with open(path, "wb") as f:
            f.write(b"partial")
    for data in entries[4:]:
        assert admit(cache, data)
    assert cache.stats().in_progress == 6 + 12
    assert LayerCache(str(tmp_path), max_bytes=100_000).recover() == 12
    assert not any(os.path.lexists(p) for p in stale)
    assert all(os.path.isfile(w.tmp_path) for w in live)
    assert all(cache.lookup(digest_of(data)) for data in entries)
    assert cache.stats().in_progress == 6


def test_a_hidden_file_in_the_blob_directory_is_no_entry_and_never_evicted(tmp_path):
    """Say, a .keep file that came with the volume."""
    cache = LayerCache(str(tmp_path), max_bytes=1000)
    keep = os.path.join(cache.blob_dir, ".keep")
    open(keep, "wb").close()
    os.utime(keep, (0, 0))  # older than any entry
    assert admit(cache, b"a" * 600)
    assert admit(cache, b"b" * 600)  # the 600-byte entry goes, not .keep
    assert os.path.exists(keep)
    stats = cache.stats()
    assert (stats.entries, stats.evictions) == (1, 1)


def test_a_full_disk_at_reservation_caches_nothing_and_leaves_nothing(tmp_path, monkeypatch, caplog):
    cache = LayerCache(str(tmp_path), max_bytes=1000)

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "posix_fallocate", full)
    digest = digest_of(b"x" * 100)
    with caplog.at_level(logging.WARNING, logger="analyzerd.cache"):
        assert cache.begin(digest, 100) is None
    assert os.listdir(cache.blob_dir) == []
    assert f"event=cache_skip blob={digest} error='{os.strerror(errno.ENOSPC)}'" in caplog.text


@pytest.mark.parametrize("code", [errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS])
def test_without_preallocation_the_reservation_still_counts_at_once(tmp_path, monkeypatch, code):
    """A file system (or C library) without fallocate: the size is reserved as the file's length."""
    cache = LayerCache(str(tmp_path), max_bytes=1000)

    def unsupported(fd, offset, length):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    data = os.urandom(600)
    writer = cache.begin(digest_of(data), 600)
    assert dir_bytes(cache) == 600
    assert cache.begin(digest_of(b"b" * 600), 600) is None  # cannot fit next to it
    writer.write(data)
    writer.commit()
    with open(cache.lookup(digest_of(data)), "rb") as f:
        assert f.read() == data


def test_a_counters_update_that_fails_costs_the_update_not_the_lookup(tmp_path, monkeypatch, caplog):
    """The counters are statistics: a full disk loses that update, with a warning naming the
    cache, leaves no temporary file, and the lookup (and so the job) goes on."""
    cache = LayerCache(str(tmp_path), max_bytes=1000)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with monkeypatch.context() as m, caplog.at_level("WARNING", logger="analyzerd.cache"):
        m.setattr(os, "replace", full)
        assert cache.lookup(digest_of(b"absent")) is None
    assert "event=cache_counters_not_written" in caplog.text and os.strerror(errno.ENOSPC) in caplog.text
    assert cache.root in caplog.text
    assert sorted(os.listdir(cache.root)) == [".lock", "sha256"]
    assert cache.lookup(digest_of(b"absent")) is None and cache.stats().misses == 1
    real_open = os.open

    def no_temporary_counters(path, *args, **kwargs):
        if str(path).startswith(STATS_FILE + "."):
            full()
        return real_open(path, *args, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(os, "open", no_temporary_counters)  # not even the temporary file can be made
        assert cache.lookup(digest_of(b"absent")) is None
    assert sorted(os.listdir(cache.root)) == [".lock", STATS_FILE, "sha256"] and cache.stats().misses == 1


# Mutation survivors that cannot matter (tools/mutation.sh cache):
# - cache _touch, recover, CacheWriter.abort: `fd >= 0` -> `fd > 0` / `fd >= 1`: the file is opened after the cache's
#   directories (and, for a writer, its lock), which take the lowest free descriptors, so its descriptor is never 0.
# - cache _touch, recover: `fd = -1` -> `fd = -2` (a symlink's "no descriptor"); CacheWriter.commit, abort:
#   `self._fd = -1` -> `-2`: every reader tests `fd >= 0`, for which -1 and -2 are the same.
# - cache _blob_name: `partition(":")` -> `rpartition(":")`: the algorithm must then be exactly "sha256", which
#   leaves one colon, where both split alike (no colon: both refuse).
# - cache _open_file: `range(2)` -> `range(3)`: one more attempt against a name put back between attempts; a name
#   put back every time still ends in the same error (test_a_name_put_back_each_time_it_is_removed...).
# - cache _scan, begin: `follow_symlinks=False` -> `follow_symlinks=None`: the flag is read as a truth value, and
#   None is false.
# - cache begin: `os.stat(final, ..., follow_symlinks=False)` -> followed (`True` or the default): differs only for
#   a dangling symlink planted at the final name after lookup removed it, which then gets replaced by the verified
#   blob's rename instead of blocking it; nothing is read or written through the link either way.
# - cache begin: `os.O_NOFOLLOW | os.O_CLOEXEC` -> `os.O_NOFOLLOW & os.O_CLOEXEC` (both dropped): O_CREAT | O_EXCL
#   never follows a symlink either (test_a_symlink_at_a_temporary_name_is_never_written_through), and Python makes
#   every descriptor it opens close-on-exec by itself (PEP 446).
# - cache begin, _count: `secrets.token_hex(8)` -> `token_hex(9)` / `token_hex(None)` (32 bytes): a temporary name
#   as random and as exclusive, only longer.
# - cache _counters, _count: `encoding="utf-8"` -> `"UTF-8"` / `None` / the locale's default: the counters are
#   json.dump'ed with ensure_ascii, so the file is ASCII, read alike in every encoding Python runs with.
# - cache _scan, recover: `continue` -> `break` after FileNotFoundError, and _evict_for: `continue` -> `break` when an
#   entry to evict is already gone: reached only when a name vanishes between the listing and its use (a discard
#   racing it); the rest is handled at the next scan, recovery or admission, and the size limit holds either way.
# - cache _evict_for: `return -1` -> `return -2`: both callers only test `< 0` (begin) or clamp with max(..., 0).
