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
from analyzerd.errors import ManifestError, RegistryError
from analyzerd.model import JobStatus
from analyzerd.store import Store
from analyzerd.worker import Worker

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
