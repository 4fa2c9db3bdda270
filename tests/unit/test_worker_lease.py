"""The worker keeps a running job's lease: renewed every lease/3 while the job runs, so no
other daemon retakes a job whose daemon is alive, however long the job takes. Driven by an
injected clock over a real SQLite store: no waiting, no timing luck."""

import asyncio
from types import SimpleNamespace

from analyzerd.analyze import PROGRESS
from analyzerd.config import parse_config
from analyzerd.daemon import Outcome
from analyzerd.model import JobStatus
from analyzerd.store import Store
from analyzerd.worker import PROGRESS_SECONDS, Worker

LEASE = 5.0
START = 1_000_000.0


class VirtualTime:
    """Seconds that pass only when the worker sleeps; a sleep past ``horizon`` waits until
    the test moves the horizon (so the test reads the store at a time of its choosing)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.horizon = 0.0
        self.moved = asyncio.Event()

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return START + self.now

    async def sleep(self, seconds: float) -> None:
        while self.now + seconds > self.horizon:
            self.moved.clear()
            await self.moved.wait()
        self.now += seconds
        await asyncio.sleep(0)

    async def run_until(self, horizon: float) -> None:
        self.horizon = horizon
        self.moved.set()
        while self.now + LEASE / 3 <= horizon:  # until the worker sleeps past it
            await asyncio.sleep(0.005)


def test_a_running_jobs_lease_is_renewed_so_no_other_daemon_retakes_it(tmp_path):
    async def scenario():
        clock = VirtualTime()
        async with await Store.open(str(tmp_path / "jobs.db")) as store:
            store.db.now = clock.wall  # the database's clock is the virtual one too
            [job_id] = await store.enqueue(["registry.example/app:1"], "linux/arm64", force=True)
            release = asyncio.Event()
            asked = []

            async def analyze_and_store(reference, platform, *, force):
                asked.append((reference, platform, force))
                progress = PROGRESS.get()  # the worker's, for this job
                progress.layers_total, progress.layers_done, progress.bytes, progress.files = 3, 1, 4096, 17
                await release.wait()  # a job that runs as long as the test wants
                return Outcome("sha256:" + "a" * 64, 1, False)

            config = parse_config({"services": {"analyzer": {"lease_seconds": LEASE}}})
            services = SimpleNamespace(config=config, store=store, analyze_and_store=analyze_and_store)
            worker = Worker(services, clock=clock.monotonic, sleep=clock.sleep)
            job = await store.claim(worker.id, LEASE, max_attempts=3)
            assert job is not None and job.id == job_id
            running = asyncio.create_task(worker.process(job))

            for horizon in (4.0, 12.0, 60.0):  # well past the first lease, and many leases later
                await clock.run_until(horizon)
                row = await store.get_job(job_id)
                assert row.status is JobStatus.RUNNING and row.worker == worker.id
                # its progress, as the analysis left it, is written for `jobs` to show
                assert row.progress == {"layers_done": 1, "layers_total": 3, "bytes": 4096, "files": 17}
                assert row.lease_until >= clock.wall() + LEASE / 3, (horizon, row.lease_until - clock.wall())
                # another daemon looking for work now finds none: the lease is alive
                assert await store.claim("other:1:x", LEASE, max_attempts=3) is None

            release.set()
            await running
            done = await store.get_job(job_id)
            assert done.status is JobStatus.DONE and done.attempts == 1 and done.lease_expiries == 0
            assert asked == [("registry.example/app:1", "linux/arm64", True)]
    asyncio.run(scenario())


def test_a_lease_that_is_not_renewed_is_retaken_after_it_expires(tmp_path):
    """The other half: the same claim, with no worker renewing it, is taken by another
    daemon once the lease has passed, so the test above would see a worker that never renews."""
    async def scenario():
        clock = VirtualTime()
        async with await Store.open(str(tmp_path / "jobs.db")) as store:
            store.db.now = clock.wall
            [job_id] = await store.enqueue(["registry.example/app:1"], None)
            assert (await store.claim("dead:1:x", LEASE, max_attempts=3)).id == job_id
            clock.now = LEASE + 1
            retaken = await store.claim("other:1:x", LEASE, max_attempts=3)
            assert retaken is not None and retaken.id == job_id and retaken.worker == "other:1:x"
    asyncio.run(scenario())


class Recorded:
    """The real store, with the worker's lease renewals and progress writes noted at the
    virtual time they happen."""

    def __init__(self, store: Store, clock: "TickClock") -> None:
        self._store, self._clock = store, clock
        self.renewals: list[float] = []
        self.progress_writes: list[tuple[float, dict]] = []

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def renew_lease(self, job_id, worker, lease_seconds):
        self.renewals.append(self._clock.now)
        return await self._store.renew_lease(job_id, worker, lease_seconds)

    async def set_progress(self, job_id, worker, progress):
        self.progress_writes.append((self._clock.now, dict(progress)))
        await self._store.set_progress(job_id, worker, progress)


class TickClock:
    """Virtual seconds that pass only as the worker sleeps; ``ticks`` is set after ``until`` sleeps."""

    def __init__(self, until: int) -> None:
        self.now, self.sleeps, self.until, self.ticks = 0.0, [], until, asyncio.Event()
        self.on_sleep = lambda: None

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep()
        if len(self.sleeps) >= self.until:
            self.ticks.set()
            await asyncio.Event().wait()  # the job is over by now; this sleep never ends
        await asyncio.sleep(0)


def run_job_for_ticks(tmp_path, lease: float, ticks: int, on_tick=None):
    """One job processed while its keeper sleeps ``ticks`` times; returns (clock, store record)."""
    async def scenario():
        clock = TickClock(ticks)
        async with await Store.open(str(tmp_path / "jobs.db")) as real:
            store = Recorded(real, clock)
            [job_id] = await real.enqueue(["registry.example/app:1"], None)

            async def analyze_and_store(reference, platform, *, force):
                progress = PROGRESS.get()
                progress.layers_total, progress.layers_done = 4, 1
                if on_tick:
                    clock.on_sleep = lambda: on_tick(clock, progress)
                await clock.ticks.wait()
                return Outcome("sha256:" + "a" * 64, 1, False)

            config = parse_config({"services": {"analyzer": {"lease_seconds": lease}}})
            worker = Worker(SimpleNamespace(config=config, store=store, analyze_and_store=analyze_and_store),
                            clock=clock.monotonic, sleep=clock.sleep)
            await worker.process(await real.claim(worker.id, lease, max_attempts=3))
            assert (await real.get_job(job_id)).status is JobStatus.DONE
            return clock, store
    return asyncio.run(scenario())


def test_a_long_lease_is_renewed_every_third_of_it_and_progress_checked_every_two_seconds(tmp_path):
    clock, store = run_job_for_ticks(tmp_path, lease=30.0, ticks=16)
    assert clock.sleeps == [PROGRESS_SECONDS] * 16
    assert store.renewals == [10.0, 20.0, 30.0]  # at lease/3 exactly, not a tick later
    # progress that did not move is written once, not at every tick
    assert store.progress_writes == [(2.0, {"layers_done": 1, "layers_total": 4, "bytes": 0, "files": 0})]


def test_a_short_lease_is_renewed_at_every_third_of_it(tmp_path):
    # a lease near the shortest the config takes (5 s), whose third (1.75 s) is exact in binary, so
    # the virtual clock adds up without rounding (a real clock's sleeps run over, never short)
    clock, store = run_job_for_ticks(tmp_path, lease=5.25, ticks=4)
    assert clock.sleeps == [1.75] * 4
    assert store.renewals == [1.75, 3.5, 5.25]  # the fourth sleep outlasts the job


def test_progress_is_written_each_time_it_moved(tmp_path):
    def on_tick(clock, progress):
        if clock.now in (4.0, 6.0):
            progress.layers_done += 1
    clock, store = run_job_for_ticks(tmp_path, lease=30.0, ticks=5, on_tick=on_tick)
    assert [(at, written["layers_done"]) for at, written in store.progress_writes] == [(2.0, 1), (4.0, 2), (6.0, 3)]
