"""The daemon's job loop: claim, analyze, store, renew leases, stop gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from .analyze import PROGRESS, Progress
from .errors import AnalyzerError
from .retry import retry_delay
from .model import Job

if TYPE_CHECKING:
    from .daemon import Services

__all__ = ["Worker", "worker_id"]

log = logging.getLogger(__name__)


def worker_id() -> str:
    """host:pid:random: containers on many hosts can share a hostname and a pid, and two
    daemons with one id could each finish the other's job."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


#: How often a running job's progress is written to the database (when it moved).
PROGRESS_SECONDS: Final = 2.0


class Worker:
    def __init__(self, services: Services, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """``clock`` and ``sleep`` time the lease renewals (a test drives them)."""
        self._clock = clock
        self._sleep = sleep
        self._services = services
        self._config = services.config
        self._store = services.store
        self.id = worker_id()
        self._running: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and process jobs until ``stop`` is set; then let running jobs finish."""
        section = self._config.analyzer
        slots = asyncio.Semaphore(section.concurrent_jobs)
        log.info("event=worker_started worker=%s database=%s max_threads=%d max_concurrent_jobs=%d",
                 self.id, self._store.location, section.max_threads, section.concurrent_jobs)
        while not stop.is_set():
            if not await _acquire_unless_stopped(slots, stop):
                break
            job = None
            try:
                job = await self._store.claim(self.id, section.lease_seconds, max_attempts=section.max_attempts)
            except AnalyzerError as exc:
                log.error("event=claim_failed worker=%s error=%r", self.id, exc.message)
            if job is None:
                slots.release()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), section.cycle_timer_seconds)
                continue
            task = asyncio.create_task(self.process(job), name=f"job {job.id} {job.reference}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda _t: slots.release())
        if self._running:
            grace = section.shutdown_grace_seconds
            log.info("event=worker_stopping running_jobs=%d grace_seconds=%g", len(self._running), grace)
            _, late = await asyncio.wait(set(self._running), timeout=grace)
            for task in late:  # each gives its job back to the queue as it is cancelled
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        log.info("event=worker_stopped worker=%s", self.id)

    async def _keep_lease(self, job: Job, progress: Progress) -> None:
        """Renew the job's lease every lease/3 seconds, and write its progress when it moved."""
        lease = self._config.analyzer.lease_seconds
        renewed = self._clock()
        written: dict[str, int] = {}
        while True:
            await self._sleep(min(PROGRESS_SECONDS, lease / 3))
            try:
                now = progress.counts()
                if now != written:
                    await self._store.set_progress(job.id, self.id, now)
                    written = now
                if self._clock() - renewed >= lease / 3:
                    renewed = self._clock()
                    if not await self._store.renew_lease(job.id, self.id, lease):
                        log.warning("event=lease_lost job=%d ref=%s", job.id, job.reference)
                        return
            except AnalyzerError as exc:
                log.warning("event=lease_renew_failed job=%d error=%r", job.id, exc.message)

    async def _release(self, job: Job) -> bool:
        try:
            return await self._store.release_job(job.id, self.id)
        except AnalyzerError as exc:  # the lease then expires and any daemon retakes the job
            log.error("event=job_release_failed job=%d error=%r", job.id, exc.message)
            return False

    async def process(self, job: Job) -> None:
        log.info("event=job_started job=%d ref=%s attempt=%d", job.id, job.reference, job.attempts)
        progress = Progress()
        PROGRESS.set(progress)  # the analysis's layer tasks inherit it
        keeper = asyncio.create_task(self._keep_lease(job, progress), name=f"lease of job {job.id}")
        try:
            outcome = await self._services.analyze_and_store(job.reference, job.platform, force=job.force)
        except asyncio.CancelledError:
            keeper.cancel()
            released = await asyncio.shield(self._release(job))
            log.warning("event=job_released job=%d ref=%s released=%s (stopped before it finished)",
                        job.id, job.reference, released)
            raise
        except Exception as exc:  # noqa: BLE001 - any failure ends this job, never the daemon
            if isinstance(exc, AnalyzerError):
                error = exc.message
                log.error("event=job_failed job=%d ref=%s error=%r", job.id, job.reference, error)
            else:
                error = f"internal error: {type(exc).__name__}: {exc}"
                log.exception("event=job_failed job=%d ref=%s error=%r", job.id, job.reference, error)
            keeper.cancel()
            section = self._config.analyzer
            delay = retry_delay(exc, job.attempts, section.max_attempts, section.retry_backoff_seconds)
            try:
                if delay is not None:
                    log.warning("event=job_retry_scheduled job=%d ref=%s attempt=%d in_seconds=%g", job.id,
                                job.reference, job.attempts, delay)
                    await self._store.retry_job(job.id, self.id, error=error, delay_seconds=delay)
                else:
                    await self._store.finish_job(job.id, self.id, error=error)
            except AnalyzerError as store_error:  # the lease expires and another try follows
                log.error("event=job_record_failed job=%d error=%r", job.id, store_error.message)
            return
        finally:
            keeper.cancel()
        if not await self._store.finish_job(job.id, self.id, image_digest=outcome.manifest_digest):
            log.warning("event=job_lease_lost job=%d ref=%s (another daemon took it over)", job.id, job.reference)
        log.info("event=job_done job=%d ref=%s digest=%s files=%d already_analyzed=%s", job.id, job.reference,
                 outcome.manifest_digest, outcome.files, outcome.reused)


async def _acquire_unless_stopped(slots: asyncio.Semaphore, stop: asyncio.Event) -> bool:
    """Wait for a free slot, or for ``stop``: a stop must not wait for a running job to end
    (its grace period starts at once)."""
    if not slots.locked():
        await slots.acquire()
        return True
    acquire = asyncio.ensure_future(slots.acquire())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if acquire.done() and not acquire.cancelled():
        if stop.is_set():
            slots.release()
            return False
        return True
    acquire.cancel()
    return False
