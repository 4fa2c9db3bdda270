"""The store on both backends (every test that takes `database` runs on SQLite and on
PostgreSQL): migrations, atomic claims across processes, leases."""

import asyncio
import multiprocessing
import sqlite3

import asyncpg
import pytest

from analyzerd.config import is_postgresql
from analyzerd.database import MIGRATIONS, postgres_migration, statements
from analyzerd.errors import StoreError
from analyzerd.model import JobStatus
from analyzerd.store import SCHEMA_VERSION, Store


def run(coro):
    return asyncio.run(coro)


def sql(database, *script, params=()):
    """Run statements on the database directly (not through the store); the last one's rows."""
    if not is_postgresql(database):
        conn = sqlite3.connect(database, isolation_level=None)
        try:
            rows = []
            for statement in script:
                rows = conn.execute(statement, params).fetchall()
            return [tuple(r) for r in rows]
        finally:
            conn.close()

    async def go():
        conn = await asyncpg.connect(database)
        try:
            rows = []
            for statement in script:
                rows = await conn.fetch(statement, *params)
            return [tuple(r) for r in rows]
        finally:
            await conn.close()
    return run(go())


def test_fresh_database_is_migrated_and_reopens(database):
    async def go():
        async with await Store.open(database) as store:
            assert await store.schema_version() == SCHEMA_VERSION
        async with await Store.open(database) as store:
            assert await store.schema_version() == SCHEMA_VERSION
    run(go())
    if is_postgresql(database):
        names = sql(database, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    else:
        assert sql(database, "PRAGMA journal_mode") == [("wal",)]
        names = sql(database, "SELECT name FROM sqlite_master WHERE type IN ('table','view')")
    tables = {name for (name,) in names}
    assert {"jobs", "images", "image_references", "layers", "image_layers", "files", "image_files",
            "packages", "package_files", "secrets", "image_secrets", "package_file_changes"} <= tables


def test_a_newer_schema_is_refused(database):
    async def create():
        await (await Store.open(database)).close()
    run(create())
    if is_postgresql(database):
        sql(database, f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}")
    else:
        sql(database, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this analyzerd"):
        run(Store.open(database))


def _claimer(database, worker, out):
    async def go():
        claimed = []
        async with await Store.open(database) as store:
            while (job := await store.claim(worker, 60, max_attempts=3)) is not None:
                claimed.append(job.id)
                await store.finish_job(job.id, worker, image_digest="sha256:" + "0" * 64)
        out.put((worker, claimed))
    asyncio.run(go())


def test_four_processes_never_claim_the_same_job(database):
    async def setup():
        async with await Store.open(database) as store:
            return await store.enqueue([f"example.com/img:{i}" for i in range(60)], None)
    ids = run(setup())
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(database, f"w{i}", out)) for i in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    claimed = [job for _, jobs in results for job in jobs]
    assert sorted(claimed) == ids  # every job once, none twice

    async def check():
        async with await Store.open(database) as store:
            return await store.list_jobs()
    jobs = run(check())
    assert all(j.status is JobStatus.DONE and j.attempts == 1 for j in jobs)


def test_an_expired_lease_is_retaken_and_the_old_worker_cannot_finish(database):
    async def go():
        async with await Store.open(database) as store:
            [job_id] = await store.enqueue(["example.com/a:1"], "linux/arm64")
            first = await store.claim("dead-worker", 2.0, max_attempts=3)
            assert first.id == job_id and first.platform == "linux/arm64"
            assert await store.claim("other", 60, max_attempts=3) is None  # lease still held
            await asyncio.sleep(2.1)
            second = await store.claim("other", 60, max_attempts=3)
            assert second.id == job_id and second.attempts == 2 and second.worker == "other"
            assert not await store.finish_job(job_id, "dead-worker", error="late")
            assert await store.renew_lease(job_id, "other", 60)
            assert await store.finish_job(job_id, "other", error="boom")
            job = await store.get_job(job_id)
            assert job.status is JobStatus.FAILED and job.error == "boom"
    run(go())


async def _expire(store, job_id):
    """Wait until the job's lease has passed by the store's clock (a dead daemon's job)."""
    job = await store.get_job(job_id)
    while store.db.now() <= job.lease_until:
        await asyncio.sleep(0.05)


def test_a_job_whose_daemons_die_is_failed_after_max_attempts_not_handed_out_again(database):
    async def go():
        async with await Store.open(database) as store:
            [job_id, other_id] = await store.enqueue(["example.com/poison:1", "example.com/fine:1"], None)
            for attempt, worker in enumerate(["host:101:aa", "host:102:bb", "host:103:cc"], start=1):
                job = await store.claim(worker, 0.3, max_attempts=3)
                assert (job.id, job.attempts, job.lease_expiries) == (job_id, attempt, attempt - 1)
                assert job.progress is None  # not the dead daemon's
                await store.set_progress(job_id, worker, {"layers_done": 0, "layers_total": 1, "bytes": 1, "files": 0})
                await _expire(store, job_id)  # the daemon died: no renewal, no finish
            # the fourth claim fails the poison job and hands out the next one instead
            job = await store.claim("host:104:dd", 60, max_attempts=3)
            assert job.id == other_id
            poison = await store.get_job(job_id)
            assert poison.status is JobStatus.FAILED and poison.attempts == 3 and poison.lease_expiries == 3
            assert poison.error == ("the daemons analyzing this image died 3 times (lease expired each time); "
                                    "last worker host:103:cc")
            assert poison.lease_until is None and poison.finished_at is not None
            assert await store.claim("host:105:ee", 60, max_attempts=3) is None
            assert not await store.finish_job(job_id, "host:103:cc", image_digest="sha256:" + "0" * 64)
            assert (await store.get_job(job_id)).status is JobStatus.FAILED  # a late finish changes nothing
    run(go())


def test_tries_that_failed_and_tries_whose_daemon_died_count_together(database):
    async def go():
        async with await Store.open(database) as store:
            [job_id] = await store.enqueue(["example.com/flaky:1"], None)
            first = await store.claim("host:1:aa", 60, max_attempts=2)
            assert await store.retry_job(job_id, "host:1:aa", error="registry: 503", delay_seconds=0)
            second = await store.claim("host:2:bb", 0.3, max_attempts=2)
            assert (first.attempts, second.attempts, second.lease_expiries) == (1, 2, 0)
            await _expire(store, job_id)
            assert await store.claim("host:3:cc", 60, max_attempts=2) is None
            job = await store.get_job(job_id)
            assert job.status is JobStatus.FAILED and (job.attempts, job.lease_expiries) == (2, 1)
            assert job.error == ("the daemons analyzing this image died on 1 of its 2 tries (lease expired); "
                                 "last worker host:2:bb; an earlier try failed with: registry: 503")
    run(go())


def _claim_once(database, worker, ready, out):
    async def go():
        async with await Store.open(database) as store:
            ready.wait()
            job = await store.claim(worker, 60, max_attempts=2)
            out.put((worker, job.id if job is not None else None))
    asyncio.run(go())


def test_daemons_racing_for_an_exhausted_job_neither_get_it_and_it_fails_once(database):
    """Four processes claim at once when the only job's lease expired on its last try: none
    gets it, and it is failed exactly once (its lease expiries counted once)."""
    async def setup():
        async with await Store.open(database) as store:
            [job_id] = await store.enqueue(["example.com/poison:1"], None)
            for worker in ("host:1:aa", "host:2:bb"):
                await store.claim(worker, 0.3, max_attempts=2)
                await _expire(store, job_id)
            return job_id
    job_id = run(setup())
    ctx = multiprocessing.get_context("spawn")
    ready, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claim_once, args=(database, f"host:{10 + i}:ff", ready, out)) for i in range(4)]
    for p in procs:
        p.start()
    ready.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert [job for _, job in results] == [None] * 4
    assert sql(database, f"SELECT status, attempts, lease_expiries, worker FROM jobs WHERE id = {job_id}") == [
        ("failed", 2, 2, "host:2:bb")]


def test_concurrent_transactions_on_one_connection_do_not_interleave(database):
    async def go():
        async with await Store.open(database) as store:
            ids = await asyncio.gather(*(store.enqueue([f"example.com/x:{i}"], None) for i in range(30)))
            claims = await asyncio.gather(*(store.claim("w", 60, max_attempts=3) for _ in range(30)))
            assert sorted(j.id for j in claims) == sorted(i for [i] in ids)
    run(go())


def _open_and_enqueue(database, n, out):
    async def go():
        async with await Store.open(database) as store:
            out.put(await store.enqueue([f"example.com/x:{n}"], None))
    asyncio.run(go())


def test_many_connections_opening_a_new_database_at_once_all_succeed(database):
    async def go(path):
        stores = await asyncio.gather(*(Store.open(path) for _ in range(12)))
        ids = await asyncio.gather(*(s.enqueue(["example.com/x:1"], None) for s in stores))
        for store in stores:
            await store.close()
        assert sorted(i for [i] in ids) == list(range(1, 13))

    for attempt in range(5):  # each on a new database: the race is in creating it
        asyncio.run(go(new_database(database, attempt)))


def test_many_processes_opening_a_new_database_at_once_all_succeed(database):
    """A daemon creating the database while `submit` opens it: no "database is locked"."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_open_and_enqueue, args=(database, n, out)) for n in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 6
    assert sorted(out.get(timeout=10)[0] for _ in procs) == [1, 2, 3, 4, 5, 6]


def schema_script(database, version):
    """The statements that make an empty database of schema ``version`` (as that release did)."""
    script = []
    for number in range(1, version + 1):
        if is_postgresql(database):
            script += postgres_migration(number)
        else:
            script += [*statements(MIGRATIONS[number]), f"PRAGMA user_version = {number}"]
    if is_postgresql(database):
        script += ["CREATE TABLE schema_version (version INTEGER NOT NULL)",
                   f"INSERT INTO schema_version VALUES ({version})"]
    return script


@pytest.mark.parametrize("start", range(1, SCHEMA_VERSION))
def test_a_database_of_every_earlier_schema_is_migrated_with_its_data(database, start):
    script = schema_script(database, start)
    script += [
        "INSERT INTO jobs (reference, created_at) VALUES ('registry.example/app:1', 1.0)",
        "INSERT INTO images (id, manifest_digest, analysis_status) VALUES (1, 'sha256:aa', 'analyzed')",
        "INSERT INTO layers (id, digest) VALUES (1, 'sha256:bb')",
        "INSERT INTO packages (image_id, type, name, version, purl, location, layer_id) "
        "VALUES (1, 'deb', 'libc6', '2.36-9', 'pkg:deb/debian/libc6@2.36-9', '/var/lib/dpkg/status', 1)"]
    sql(database, *script)

    async def go():
        async with await Store.open(database) as store:
            assert await store.schema_version() == SCHEMA_VERSION
            # ids the database assigns continue after the rows that were there
            assert await store.enqueue(["registry.example/app:2"], None) == [2]
    run(go())
    assert sql(database, "SELECT reference, status FROM jobs ORDER BY id") == [
        ("registry.example/app:1", "queued"), ("registry.example/app:2", "queued")]
    assert sql(database, "SELECT manifest_digest, type, name, version, layer_digest FROM image_packages") == [
        ("sha256:aa", "deb", "libc6", "2.36-9", "sha256:bb")]


def new_database(database, n):
    """Another new database of the same kind as ``database``."""
    if is_postgresql(database):
        base, _, name = database.rpartition("/")
        sql(database, f"CREATE DATABASE {name}_{n}")
        return f"{base}/{name}_{n}"
    return f"{database}.{n}"


def test_results_come_in_code_point_order_on_both_backends(registry, database, tmp_path):
    """Names that a locale sorts differently ('/usr/B' after '/usr/b' in en-US, which the
    PostgreSQL test databases use): files, a package's missing files and secrets come out
    by code point on both backends, as one result must read the same from either."""
    import json
    import subprocess
    import sys

    from analyzerd.testing import Member, build_image, make_layer, push_image
    from tests.integration.test_end_to_end import ROOT
    from tests.integration.test_packages import base_layer
    from tests.integration.test_secrets import private_key_pem
    names = ["usr/B", "usr/_a", "usr/a", "usr/b", "usr/\u00e9", "usr/Z"]
    listed = "".join(f"{'0' * 32}  usr/lib/{n.split('/')[1]}\n" for n in names).encode()
    layer = make_layer([Member(n, b"x") for n in names] +
                       [Member(f"home/{n.split('/')[1]}/.ssh/id_rsa", private_key_pem().encode()) for n in names] +
                       [Member("var/lib/dpkg/info/pkg-b:amd64.md5sums", listed)])  # files the image lacks
    push_image(registry.url, "order/app", "1", build_image([base_layer(), layer]))
    proc = subprocess.run([sys.executable, "-m", "analyzerd", "--db", database, "analyze",
                           f"{registry.host}/order/app:1", "--json"], capture_output=True, text=True, cwd=ROOT,
                          check=True, env={**__import__("os").environ, "TMPDIR": str(tmp_path)})
    document = json.loads(proc.stdout)
    paths = [f["path"] for f in document["files"] if f["path"].startswith("/usr/") and f["path"].count("/") == 2]
    assert paths == sorted(paths) and "/usr/B" in paths
    missing = next(p for p in document["packages"] if p["name"] == "pkg-b")["files"]["missing"]
    assert missing == sorted(missing) and len(missing) == len(names)
    secret_paths = [s["path"] for s in document["secrets"]]
    assert secret_paths == sorted(secret_paths) and len(secret_paths) == len(names)


def test_nul_characters_from_a_hostile_image_are_stored_alike_on_both_backends(registry, database, tmp_path):
    """PostgreSQL text cannot hold NUL; a package database can. Both backends store such
    text the same readable way (\\x00), and the image's other results are whole."""
    import json
    import os
    import subprocess
    import sys

    from analyzerd.testing import Member, build_image, make_layer, push_image
    from tests.integration.test_end_to_end import ROOT
    # past the first 8 KiB, where the dpkg reader looks for binary content
    padding = b"Package: first\nStatus: install ok installed\nVersion: 1\nDescription: x\n" + b" .\n" * 4000 + b"\n"
    status = padding + (b"Package: evil\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\x00-1\n"
              b"Maintainer: Mallory <m@example.com>\x00\n\n")
    layer = make_layer([Member("etc/os-release", b"ID=debian\nVERSION_ID=12\n"), Member("var/lib/dpkg/status", status),
                        Member("var/lib/dpkg/info/evil.md5sums", b"".join(
                            b"0" * 32 + b"  usr/share/doc/evil/%d\n" % i for i in range(200)) +
                            b"0" * 32 + b"  usr/bin/ev\x00il\n"),
                        Member("usr/bin/ok", b"fine\n")])
    push_image(registry.url, "hostile/nul", "1", build_image([layer]))
    proc = subprocess.run([sys.executable, "-m", "analyzerd", "--db", database, "analyze",
                           f"{registry.host}/hostile/nul:1", "--json"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    [package] = [p for p in document["packages"] if p["name"].startswith("evil")]
    assert package["version"] == "1.0\\x00-1" and package["maintainer"] == "Mallory <m@example.com>\\x00"
    assert "/usr/bin/ev\\x00il" in package["files"]["missing"]
    assert "/usr/bin/ok" in {f["path"] for f in document["files"]}


def test_a_config_stored_raw_before_it_was_scanned_is_redacted_when_the_database_is_opened(database, tmp_path):
    """Images analyzed by version 4 or older kept the config as served: the first open of the
    upgraded database (by any command) redacts it and records its secrets, once."""
    import json

    from analyzerd.config import parse_config
    from analyzerd.store import open_store
    from tests.integration.test_secrets import aws_key_id, aws_secret

    key_id, secret = aws_key_id(), aws_secret()
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/usr/bin", f"AWS_ACCESS_KEY_ID={key_id}", f"AWS_SECRET_ACCESS_KEY={secret}"]},
              "history": [{"created_by": "/bin/sh -c #(nop) ADD file:base in /"},
                          {"created_by": f"/bin/sh -c echo {key_id} > /k"}]}
    script = schema_script(database, 11)
    script += [
        "INSERT INTO layers (id, digest) VALUES (1, 'sha256:b1'), (2, 'sha256:b2')",
        "INSERT INTO images (id, manifest_digest, analysis_status, analyzer_version, config_json) VALUES "
        f"(1, 'sha256:old', 'analyzed', '4', '{json.dumps(config)}'), "
        f"(2, 'sha256:new', 'analyzed', '5', '{json.dumps(config)}')",
        "INSERT INTO image_layers (image_id, position, layer_id) VALUES (1, 0, 1), (1, 1, 2), (2, 0, 1), (2, 1, 2)"]
    sql(database, *script)
    settings = parse_config({"secret_search": {"fingerprint_key_file": str(tmp_path / "key")}})

    async def go():
        for _ in range(2):  # the second open finds nothing left to do
            async with await open_store(settings, database):
                pass
    run(go())
    stored = sql(database, "SELECT config_json, analyzer_version FROM images WHERE id = 1")[0]
    assert key_id not in stored[0] and secret not in stored[0] and stored[1] == "4"
    assert json.loads(stored[0])["config"]["Env"][0] == "PATH=/usr/bin"
    findings = sql(database, "SELECT path, rule, redacted, layer_digest FROM image_secrets "
                             "WHERE image_id = 1 ORDER BY path")
    assert [(p, lay) for p, _, _, lay in findings] == [
        ("config:Env[1]", None), ("config:Env[2]", None), ("config:history[1].created_by", "sha256:b2")]
    assert all(key_id not in r and secret not in r for _, _, r, _ in findings)
    # version 5 and later stored it redacted already: not scanned again
    assert sql(database, "SELECT count(*) FROM secrets WHERE image_id = 2") == [(0,)]


def test_a_released_job_is_queued_again_for_anyone_and_only_its_worker_may_release_it(database):
    async def go():
        async with await Store.open(database) as store:
            [job_id] = await store.enqueue(["example.com/a:1"], None)
            job = await store.claim("stopping", 60, max_attempts=3)
            assert not await store.release_job(job_id, "someone-else")
            assert (await store.get_job(job_id)).status is JobStatus.RUNNING
            assert await store.release_job(job_id, "stopping")
            released = await store.get_job(job_id)
            assert (released.status, released.worker, released.lease_until) == (JobStatus.QUEUED, None, None)
            assert not await store.release_job(job_id, "stopping")  # no longer running
            again = await store.claim("next", 60, max_attempts=3)
            assert again.id == job.id and again.worker == "next"
    run(go())


def test_recent_jobs_newest_first_of_one_status_or_all(database):
    async def go():
        async with await Store.open(database) as store:
            ids = await store.enqueue([f"example.com/a:{i}" for i in range(5)], None)
            claimed = await store.claim("w", 60, max_attempts=3)
            assert await store.finish_job(claimed.id, "w", image_digest="sha256:" + "a" * 64)
            assert [j.id for j in await store.recent_jobs(None, 3)] == sorted(ids, reverse=True)[:3]
            assert [j.id for j in await store.recent_jobs("queued", 10)] == sorted(set(ids) - {claimed.id},
                                                                                    reverse=True)
            assert [(j.id, j.status) for j in await store.recent_jobs("done", 10)] == [(claimed.id, JobStatus.DONE)]
            assert await store.recent_jobs("failed", 10) == []
    run(go())
