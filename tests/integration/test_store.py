"""The SQLite store: migrations, atomic claims across processes, leases."""

import asyncio
import multiprocessing
import sqlite3

import pytest

from analyzerd.errors import StoreError
from analyzerd.model import JobStatus
from analyzerd.store import SCHEMA_VERSION, Store


def run(coro):
    return asyncio.run(coro)


def test_fresh_database_is_migrated_and_reopens(db_path):
    async def go():
        async with await Store.open(db_path) as store:
            assert await store.schema_version() == SCHEMA_VERSION
        async with await Store.open(db_path) as store:
            assert await store.schema_version() == SCHEMA_VERSION
    run(go())
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table','view')")}
    assert {"jobs", "images", "image_references", "layers", "image_layers", "files", "image_files"} <= tables


def test_a_newer_schema_is_refused(db_path):
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this analyzerd"):
        run(Store.open(db_path))


def _claimer(db_path, worker, out):
    async def go():
        claimed = []
        async with await Store.open(db_path) as store:
            while (job := await store.claim(worker, 60)) is not None:
                claimed.append(job.id)
                await store.finish_job(job.id, worker, image_digest="sha256:" + "0" * 64)
        out.put((worker, claimed))
    asyncio.run(go())


def test_four_processes_never_claim_the_same_job(db_path):
    async def setup():
        async with await Store.open(db_path) as store:
            return await store.enqueue([f"example.com/img:{i}" for i in range(60)], None)
    ids = run(setup())
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(db_path, f"w{i}", out)) for i in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    claimed = [job for _, jobs in results for job in jobs]
    assert sorted(claimed) == ids  # every job once, none twice

    async def check():
        async with await Store.open(db_path) as store:
            return await store.list_jobs()
    jobs = run(check())
    assert all(j.status is JobStatus.DONE and j.attempts == 1 for j in jobs)


def test_an_expired_lease_is_retaken_and_the_old_worker_cannot_finish(db_path):
    async def go():
        async with await Store.open(db_path) as store:
            [job_id] = await store.enqueue(["example.com/a:1"], "linux/arm64")
            first = await store.claim("dead-worker", 2.0)
            assert first.id == job_id and first.platform == "linux/arm64"
            assert await store.claim("other", 60) is None  # lease still held
            await asyncio.sleep(2.1)
            second = await store.claim("other", 60)
            assert second.id == job_id and second.attempts == 2 and second.worker == "other"
            assert not await store.finish_job(job_id, "dead-worker", error="late")
            assert await store.renew_lease(job_id, "other", 60)
            assert await store.finish_job(job_id, "other", error="boom")
            job = await store.get_job(job_id)
            assert job.status is JobStatus.FAILED and job.error == "boom"
    run(go())


def test_concurrent_transactions_on_one_connection_do_not_interleave(db_path):
    async def go():
        async with await Store.open(db_path) as store:
            ids = await asyncio.gather(*(store.enqueue([f"example.com/x:{i}"], None) for i in range(30)))
            claims = await asyncio.gather(*(store.claim("w", 60) for _ in range(30)))
            assert sorted(j.id for j in claims) == sorted(i for [i] in ids)
    run(go())


def _open_and_enqueue(db_path, n, out):
    async def go():
        async with await Store.open(db_path) as store:
            out.put(await store.enqueue([f"example.com/x:{n}"], None))
    asyncio.run(go())


def test_many_connections_opening_a_new_database_at_once_all_succeed(db_path):
    async def go(path):
        stores = await asyncio.gather(*(Store.open(path) for _ in range(12)))
        ids = await asyncio.gather(*(s.enqueue(["example.com/x:1"], None) for s in stores))
        for store in stores:
            await store.close()
        assert sorted(i for [i] in ids) == list(range(1, 13))

    for attempt in range(5):  # each on a new file: the race is in creating it
        asyncio.run(go(f"{db_path}.{attempt}"))


def test_many_processes_opening_a_new_database_at_once_all_succeed(db_path):
    """A daemon creating the database while `submit` opens it: no "database is locked"."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_open_and_enqueue, args=(db_path, n, out)) for n in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 6
    assert sorted(out.get(timeout=10)[0] for _ in procs) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("start", range(1, SCHEMA_VERSION))
def test_a_database_of_every_earlier_schema_is_migrated_with_its_data(db_path, start):
    from analyzerd.store import MIGRATIONS, _statements
    conn = sqlite3.connect(db_path, isolation_level=None)
    for number in range(1, start + 1):
        for statement in _statements(MIGRATIONS[number]):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    conn.execute("INSERT INTO jobs (reference, created_at) VALUES ('registry.example/app:1', 1.0)")
    conn.execute("INSERT INTO images (id, manifest_digest, analysis_status) VALUES (1, 'sha256:aa', 'analyzed')")
    conn.execute("INSERT INTO layers (id, digest) VALUES (1, 'sha256:bb')")
    conn.execute("INSERT INTO packages (image_id, type, name, version, purl, location, layer_id) "
                 "VALUES (1, 'deb', 'libc6', '2.36-9', 'pkg:deb/debian/libc6@2.36-9', '/var/lib/dpkg/status', 1)")
    conn.close()

    async def go():
        async with await Store.open(db_path) as store:
            assert await store.schema_version() == SCHEMA_VERSION
    run(go())
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT reference, status FROM jobs").fetchall() == [("registry.example/app:1", "queued")]
    assert conn.execute("SELECT manifest_digest, type, name, version, layer_digest FROM image_packages").fetchall() == [
        ("sha256:aa", "deb", "libc6", "2.36-9", "sha256:bb")]
