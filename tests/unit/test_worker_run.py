"""The worker's loop over a real SQLite job queue: at most max_concurrent_jobs at once, every
job ends done, retried or failed as its error says, an idle worker waits a cycle, a stop ends
the loop at once and a job still running past the grace period goes back to the queue. The
analysis itself is a stand-in (the worker's job is scheduling; the analysis is tested on its
own), so the cases are exact and fast."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from analyzerd.config import parse_config
from analyzerd.daemon import Outcome
from analyzerd.errors import ManifestError, RegistryError, StoreError
from analyzerd.model import JobStatus
from analyzerd.store import Store
from analyzerd.worker import Worker, _acquire_unless_stopped

DIGEST = "sha256:" + "b" * 64


def config(**analyzer):
    settings = {"cycle_timer_seconds": 0.05, "max_concurrent_jobs": 2, "retry_backoff_seconds": 30,
                "shutdown_grace_seconds": 5, **analyzer}
    return parse_config({"services": {"analyzer": settings}})


async def run_until_idle(store, services, *, stop_when) -> Worker:
    worker = Worker(services)
    stop = asyncio.Event()
    loop = asyncio.create_task(worker.run(stop))
    for _ in range(400):
        if await stop_when():
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(loop, 10)
    return worker


def test_jobs_run_at_most_n_at_once_and_end_as_their_errors_say(tmp_path):
    async def scenario():
        async with await Store.open(str(tmp_path / "jobs.db")) as store:
            references = ["r.example/ok:1", "r.example/ok:2", "r.example/ok:3", "r.example/flaky:1",
                          "r.example/broken:1", "r.example/crash:1"]
            ids = dict(zip(references, await store.enqueue(references, None)))
            running, peak = 0, 0

            async def analyze_and_store(reference, platform, *, force):
                nonlocal running, peak
                running += 1
                peak = max(peak, running)
                try:
                    await asyncio.sleep(0.05)
                    if "flaky" in reference:
                        raise RegistryError(f"{reference}: HTTP 503", temporary=True)
                    if "broken" in reference:
                        raise ManifestError(f"manifest {reference}: not JSON")
                    if "crash" in reference:
                        raise KeyError("a bug")
                    return Outcome(DIGEST, 3, False)
                finally:
                    running -= 1

            services = SimpleNamespace(config=config(), store=store, analyze_and_store=analyze_and_store)

            async def all_ended():
                return not any(j.status in (JobStatus.QUEUED, JobStatus.RUNNING) and j.error is None
                               for j in await store.list_jobs())
            await run_until_idle(store, services, stop_when=all_ended)
            jobs = {j.reference: j for j in await store.list_jobs()}
            assert peak == 2
            for reference in references[:3]:
                assert (jobs[reference].status, jobs[reference].image_digest) == (JobStatus.DONE, DIGEST)
            flaky = jobs["r.example/flaky:1"]  # transient: queued again, not before its backoff
            assert flaky.status is JobStatus.QUEUED and "HTTP 503" in flaky.error and flaky.attempts == 1
            assert await store.claim("another", 60, max_attempts=3) is None  # its 30 s backoff holds it
            broken = jobs["r.example/broken:1"]
            assert (broken.status, broken.error) == (JobStatus.FAILED, "manifest r.example/broken:1: not JSON")
            crash = jobs["r.example/crash:1"]
            assert crash.status is JobStatus.FAILED and crash.error == "internal error: KeyError: 'a bug'"
            assert set(ids.values()) == {j.id for j in jobs.values()}
    asyncio.run(scenario())


def test_a_stop_ends_the_loop_at_once_and_a_job_past_the_grace_goes_back_to_the_queue(tmp_path):
    async def scenario():
        async with await Store.open(str(tmp_path / "jobs.db")) as store:
            [slow_id, waiting_id] = await store.enqueue(["r.example/slow:1", "r.example/waiting:1"], None)
            started = asyncio.Event()

            async def analyze_and_store(reference, platform, *, force):
                started.set()
                await asyncio.sleep(3600)  # longer than any grace

            services = SimpleNamespace(config=config(max_concurrent_jobs=1, shutdown_grace_seconds=0.2),
                                       store=store, analyze_and_store=analyze_and_store)
            worker = Worker(services)
            stop = asyncio.Event()
            loop = asyncio.create_task(worker.run(stop))
            await asyncio.wait_for(started.wait(), 5)
            # the one slot is busy: the loop waits for a slot or for the stop, whichever comes first
            stop.set()
            await asyncio.wait_for(loop, 5)
            slow, waiting = await store.get_job(slow_id), await store.get_job(waiting_id)
            assert (slow.status, slow.worker) == (JobStatus.QUEUED, None)  # released, for any daemon
            assert waiting.status is JobStatus.QUEUED and waiting.attempts == 0  # never claimed
    asyncio.run(scenario())


def test_an_idle_worker_polls_every_cycle_and_stops_without_waiting_for_one(tmp_path):
    async def scenario():
        async with await Store.open(str(tmp_path / "jobs.db")) as store:
            done = asyncio.Event()

            async def analyze_and_store(reference, platform, *, force):
                done.set()
                return Outcome(DIGEST, 1, True)

            services = SimpleNamespace(config=config(cycle_timer_seconds=0.1), store=store,
                                       analyze_and_store=analyze_and_store)
            worker = Worker(services)
            stop = asyncio.Event()
            loop = asyncio.create_task(worker.run(stop))
            await asyncio.sleep(0.25)  # idle for a few cycles
            [job_id] = await store.enqueue(["r.example/late:1"], None)
            await asyncio.wait_for(done.wait(), 5)  # picked up at the next cycle
            services.config = config(cycle_timer_seconds=3600)
            stop.set()
            await asyncio.wait_for(loop, 2)
            assert (await store.get_job(job_id)).status is JobStatus.DONE
    asyncio.run(scenario())


class ClaimsFailOnce:
    """The real store, except that the first claim fails as a lost database connection does."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.failed = False

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def claim(self, *args, **kwargs):
        if not self.failed:
            self.failed = True
            raise StoreError("database: connection lost")
        return await self._store.claim(*args, **kwargs)


def test_a_failed_claim_is_logged_and_the_worker_goes_on_to_the_next_cycle(tmp_path, caplog):
    async def scenario():
        async with await Store.open(str(tmp_path / "jobs.db")) as store:
            [job_id] = await store.enqueue(["r.example/app:1"], None)

            async def analyze_and_store(reference, platform, *, force):
                return Outcome(DIGEST, 1, False)

            flaky = ClaimsFailOnce(store)
            services = SimpleNamespace(config=config(), store=flaky, analyze_and_store=analyze_and_store)

            async def done():
                return (await store.get_job(job_id)).status is JobStatus.DONE
            await run_until_idle(store, services, stop_when=done)
            assert flaky.failed and await done()
    with caplog.at_level("ERROR", logger="analyzerd.worker"):
        asyncio.run(scenario())
    assert "event=claim_failed" in caplog.text and "connection lost" in caplog.text


def test_a_job_whose_daemons_died_max_attempts_times_is_failed_not_run_again(tmp_path):
    """The worker claims with the configured max_attempts: a job whose only try's lease lapsed
    (its daemon was killed) is failed when max_attempts is 1, and never analyzed again."""
    async def scenario():
        async with await Store.open(str(tmp_path / "jobs.db")) as store:
            [job_id] = await store.enqueue(["r.example/killer:1"], None)
            assert (await store.claim("killed:1:x", -1, max_attempts=1)).id == job_id  # lease already over
            analyzed = []

            async def analyze_and_store(reference, platform, *, force):
                analyzed.append(reference)
                return Outcome(DIGEST, 1, False)

            services = SimpleNamespace(config=config(max_attempts=1), store=store, analyze_and_store=analyze_and_store)

            async def ended():
                return (await store.get_job(job_id)).status is JobStatus.FAILED
            await run_until_idle(store, services, stop_when=ended)
            job = await store.get_job(job_id)
            assert job.status is JobStatus.FAILED and job.attempts == 1 and analyzed == []
    asyncio.run(scenario())


def test_finished_jobs_leave_no_callback_errors_and_nothing_running_at_stop(tmp_path):
    async def scenario():
        errors = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        async with await Store.open(str(tmp_path / "jobs.db")) as store:
            await store.enqueue(["r.example/a:1", "r.example/b:1", "r.example/c:1"], None)

            async def analyze_and_store(reference, platform, *, force):
                return Outcome(DIGEST, 1, False)

            services = SimpleNamespace(config=config(), store=store, analyze_and_store=analyze_and_store)

            async def all_done():
                return all(job.status is JobStatus.DONE for job in await store.list_jobs())
            worker = await run_until_idle(store, services, stop_when=all_done)
            assert await all_done()
        assert errors == []
        # a finished job leaves the running set, so a stop has nothing to wait for
        assert not worker._running
    asyncio.run(scenario())


def test_a_job_whose_lease_another_daemon_took_over_is_left_to_it_with_a_warning(tmp_path, caplog):
    async def scenario():
        async with await Store.open(str(tmp_path / "jobs.db")) as store:
            [job_id] = await store.enqueue(["r.example/slow:1"], None)

            async def analyze_and_store(reference, platform, *, force):
                return Outcome(DIGEST, 1, False)

            services = SimpleNamespace(config=config(), store=store, analyze_and_store=analyze_and_store)
            worker = Worker(services)
            job = await store.claim(worker.id, -1, max_attempts=3)  # its lease lapses at once
            assert (await store.claim("other:1:x", 60, max_attempts=3)).id == job_id
            await worker.process(job)
            taken = await store.get_job(job_id)
            assert (taken.status, taken.worker, taken.image_digest) == (JobStatus.RUNNING, "other:1:x", None)
    with caplog.at_level("WARNING", logger="analyzerd.worker"):
        asyncio.run(scenario())
    assert "event=job_lease_lost" in caplog.text


def test_a_job_that_finishes_under_its_own_lease_logs_no_lease_warning(tmp_path, caplog):
    async def scenario():
        async with await Store.open(str(tmp_path / "jobs.db")) as store:
            [job_id] = await store.enqueue(["r.example/app:1"], None)

            async def analyze_and_store(reference, platform, *, force):
                return Outcome(DIGEST, 1, False)

            worker = Worker(SimpleNamespace(config=config(), store=store, analyze_and_store=analyze_and_store))
            await worker.process(await store.claim(worker.id, 60, max_attempts=3))
            assert (await store.get_job(job_id)).status is JobStatus.DONE
    with caplog.at_level("WARNING", logger="analyzerd.worker"):
        asyncio.run(scenario())
    assert "lease" not in caplog.text


def test_a_stop_that_comes_with_a_free_slot_still_stops_and_gives_the_slot_back():
    async def scenario():
        slots = asyncio.Semaphore(1)
        await slots.acquire()  # the one slot is busy
        stop = asyncio.Event()
        waiting = asyncio.create_task(_acquire_unless_stopped(slots, stop))
        await asyncio.sleep(0)
        slots.release()  # the job ends and the stop arrives in the same turn of the loop
        stop.set()
        assert await waiting is False
        assert not slots.locked()  # the slot it took on the way is free again

        await slots.acquire()  # busy again; now only the stop comes
        stopped = asyncio.Event()
        waiting = asyncio.create_task(_acquire_unless_stopped(slots, stopped))
        await asyncio.sleep(0)
        stopped.set()
        assert await waiting is False
        assert slots.locked()  # it gave back no slot it did not take
        slots.release()
        assert not slots.locked() and await asyncio.wait_for(slots.acquire(), 1) and slots.locked()
    asyncio.run(scenario())



def test_a_job_is_forced_only_when_asked_and_an_unknown_job_is_none(tmp_path):
    async def scenario():
        async with await Store.open(str(tmp_path / "jobs.db")) as store:
            plain, = await store.enqueue(["r.example/a:1"], None)
            forced, = await store.enqueue(["r.example/a:1"], "linux/arm64", force=True)
            assert (await store.get_job(plain)).force is False
            assert (await store.get_job(forced)).force is True
            assert await store.get_job(forced + 1000) is None
    asyncio.run(scenario())

# Mutation survivors that cannot matter (tools/mutation.sh jobs):
# - worker_id: secrets.token_hex(3) -> token_hex(4) or token_hex(None): a longer random part
#   keeps ids distinct just as well.
# - Worker.run, process: the asyncio task names ("job 7 ref", "lease of job 7") -> None or left out:
#   they name tasks in asyncio's own debug output only.
# - Worker._keep_lease: `written = None` for `{}`: progress counts are never an empty dict, so the first tick writes
#   either way and later ones compare dicts.
# - Worker._release: `return False` -> `True` when the release failed: only the job_released log line's
#   released= field reads it (the lease then expires, as the comment there says).
# - _acquire_unless_stopped: `acquire.done() or not acquire.cancelled()`: when only the stop came, the slot it then
#   releases without holding is taken straight back by its own acquire, still pending, so the count is the same.
