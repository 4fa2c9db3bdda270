"""The job queue in the database: jobs are enqueued, claimed under a lease that the worker
renews while it runs them, then finished, retried after a delay, or released back to the
queue by a daemon that stops. Every step is one transaction of SQL in sql/queries.sql, so
any number of daemons (on PostgreSQL) share one queue; a worker whose lease lapsed can no
longer finish, renew or release the job (the SQL checks the worker)."""

from __future__ import annotations

import json
import logging
from typing import Any

from .database import Database, escape_text
from .model import Job

log = logging.getLogger(__name__)

__all__ = ["JobQueue"]


class JobQueue:
    """The job half of the Store (which inherits it): needs only the open database."""

    db: Database

    async def enqueue(self, references: list[str], platform: str | None, *, force: bool = False) -> list[int]:
        ids = []
        async with self.db.transaction() as tx:
            for reference in references:
                row = await tx.fetchone("enqueue_job", {"reference": reference, "platform": platform,
                                                        "force": int(force), "now": self.db.now()})
                ids.append(int(row[0]))
        return ids

    async def claim(self, worker: str, lease_seconds: float, *, max_attempts: int) -> Job | None:
        """The next job for ``worker``, leased for ``lease_seconds``, or None. A job whose lease
        expired is retaken only while it has made fewer than ``max_attempts`` tries; one with no
        tries left is failed in the same transaction (its daemons died on every try)."""
        await self.db.refresh_clock()
        now = self.db.now()
        async with self.db.transaction() as tx:
            exhausted = await tx.fetchall("fail_exhausted_jobs", {"now": now, "max_attempts": max_attempts})
            row = await tx.fetchone("claim_job", {"now": now, "worker": worker, "lease_until": now + lease_seconds,
                                                  "max_attempts": max_attempts})
        for job in exhausted:
            log.error("event=job_failed job=%d ref=%s attempts=%d error=%r", job["id"], job["reference"],
                      job["attempts"], job["error"])
        return Job.from_row(row) if row is not None else None

    async def renew_lease(self, job_id: int, worker: str, lease_seconds: float) -> bool:
        async with self.db.transaction() as tx:
            return await tx.execute("renew_lease", {"id": job_id, "worker": worker,
                                                    "lease_until": self.db.now() + lease_seconds}) == 1

    async def finish_job(self, job_id: int, worker: str, *, image_digest: str | None = None,
                         error: str | None = None) -> bool:
        """Record the end of a job; False if this worker no longer held its lease."""
        async with self.db.transaction() as tx:
            return await tx.execute("finish_job", {
                "id": job_id, "worker": worker, "now": self.db.now(),
                "status": "failed" if error is not None else "done",
                "error": escape_text(error) if error is not None else None, "image_digest": image_digest}) == 1

    async def retry_job(self, job_id: int, worker: str, *, error: str, delay_seconds: float) -> bool:
        """Queue a job again after a transient failure, not to be claimed for ``delay_seconds``."""
        async with self.db.transaction() as tx:
            return await tx.execute("retry_job", {"id": job_id, "worker": worker, "error": escape_text(error),
                                                  "not_before": self.db.now() + delay_seconds}) == 1

    async def set_progress(self, job_id: int, worker: str, progress: dict[str, Any]) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("set_progress", {"id": job_id, "worker": worker, "progress": json.dumps(progress)})

    async def release_job(self, job_id: int, worker: str) -> bool:
        """Give a running job back to the queue (a daemon stopping before it finished)."""
        async with self.db.transaction() as tx:
            return await tx.execute("release_job", {"id": job_id, "worker": worker}) == 1

    async def get_job(self, job_id: int) -> Job | None:
        row = await self.db.fetchone("get_job", {"id": job_id})
        return Job.from_row(row) if row is not None else None

    async def list_jobs(self) -> list[Job]:
        return [Job.from_row(row) for row in await self.db.fetchall("list_jobs")]

    async def recent_jobs(self, status: str | None, limit: int) -> list[Job]:
        """The newest ``limit`` jobs, of one status if given."""
        if status is None:
            rows = await self.db.fetchall("recent_jobs", {"limit": limit})
        else:
            rows = await self.db.fetchall("recent_jobs_by_status", {"status": status, "limit": limit})
        return [Job.from_row(row) for row in rows]
