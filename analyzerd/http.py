"""The daemon's HTTP endpoint on ``listen``:``port`` (8084, as Anchore's analyzer):

- ``GET /health``: liveness, never authenticated;
- ``GET /status``: version, jobs by status, running jobs, layer cache stats (JSON);
- ``GET /metrics``: Prometheus text format;
- ``POST /v1/jobs``: queue images, as ``analyzerd submit`` does.

With ``require_auth`` every endpoint but /health needs HTTP Basic credentials of a user in
``api_users`` (name: scrypt hash, made by ``analyzerd hash-password``); anything else is 401.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from . import __version__
from .errors import AnalyzerError, ConfigError
from .model import JobStatus
from .passwords import verify_password

__all__ = ["Metrics", "make_app", "serve"]

log = logging.getLogger(__name__)

#: Requests to /v1/jobs name at most this many images (the body is bounded likewise).
MAX_SUBMIT: Final = 1000
MAX_BODY: Final = 1024 * 1024
#: Buckets of the analysis duration histogram, in seconds.
DURATION_BUCKETS: Final = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, float("inf"))


@dataclass(slots=True)
class Metrics:
    """What the daemon has done since it started (Prometheus counters and a histogram)."""

    images: dict[str, int] = field(default_factory=lambda: {"analyzed": 0, "reused": 0, "failed": 0})
    files: int = 0
    bytes: int = 0
    durations: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    duration_sum: float = 0.0
    started: float = field(default_factory=time.time)

    def analyzed(self, seconds: float, files: int, uncompressed_bytes: int) -> None:
        self.images["analyzed"] += 1
        self.files += files
        self.bytes += uncompressed_bytes
        self.duration_sum += seconds
        for i, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.durations[i] += 1


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _authenticator(users: dict[str, str], required: bool) -> Callable[..., Awaitable[web.StreamResponse]]:
    # Checked (user, password) pairs, keyed by an HMAC under a per-process key: scrypt runs
    # once per pair, not per request, and the plain password is not kept.
    remembered: set[bytes] = set()
    key = os.urandom(32)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not required or request.path == "/health":
            return await handler(request)
        header = request.headers.get("Authorization", "")
        user = password = None
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = None
        stored = users.get(user or "")
        if stored is not None and password is not None:
            token = hmac.new(key, f"{user}\0{password}".encode(), hashlib.sha256).digest()
            if token in remembered or await asyncio.get_running_loop().run_in_executor(
                    None, verify_password, password, stored):
                remembered.add(token)
                return await handler(request)
        log.warning("event=http_unauthorized path=%s user=%r", request.path, user)
        return web.json_response({"error": "unauthorized"}, status=401,
                                 headers={"WWW-Authenticate": 'Basic realm="analyzerd"'})
    return middleware


def _job_counts(jobs: list[Any]) -> dict[str, int]:
    counts = {status.value: 0 for status in JobStatus}
    for job in jobs:
        counts[job.status.value] += 1
    return counts


def make_app(services: Any, worker: Any) -> web.Application:
    config = services.config
    metrics: Metrics = services.metrics
    app = web.Application(middlewares=[_authenticator(dict(config.api_users), config.analyzer.require_auth)],
                          client_max_size=MAX_BODY)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def status(request: web.Request) -> web.Response:
        jobs = await services.store.list_jobs()
        counts = {status: n for status, n in _job_counts(jobs).items() if n}
        running = [{"id": j.id, "reference": j.reference, "worker": j.worker, "started_at": j.started_at,
                    "progress": j.progress} for j in jobs if j.status.value == "running"]
        cache = await asyncio.get_running_loop().run_in_executor(None, services.analyzer.cache_stats)
        return web.json_response({
            "version": __version__, "worker": worker.id, "uptime_seconds": round(time.time() - metrics.started, 1),
            "jobs": counts, "running": running,
            "layer_cache": _fields(cache), "images": dict(metrics.images)})

    async def prometheus(request: web.Request) -> web.Response:
        counts = _job_counts(await services.store.list_jobs())
        lines = ["# HELP analyzerd_jobs Jobs in the database by status.", "# TYPE analyzerd_jobs gauge"]
        lines += [f'analyzerd_jobs{{status="{s}"}} {n}' for s, n in sorted(counts.items())]
        lines += ["# HELP analyzerd_images_total Images this daemon finished, by result.",
                  "# TYPE analyzerd_images_total counter"]
        lines += [f'analyzerd_images_total{{result="{r}"}} {n}' for r, n in sorted(metrics.images.items())]
        lines += ["# HELP analyzerd_files_processed_total Files recorded in analyzed images.",
                  "# TYPE analyzerd_files_processed_total counter", f"analyzerd_files_processed_total {metrics.files}",
                  "# HELP analyzerd_bytes_processed_total Uncompressed layer bytes of analyzed images.",
                  "# TYPE analyzerd_bytes_processed_total counter", f"analyzerd_bytes_processed_total {metrics.bytes}",
                  "# HELP analyzerd_analysis_seconds Time to analyze and store an image.",
                  "# TYPE analyzerd_analysis_seconds histogram"]
        for bound, n in zip(DURATION_BUCKETS, metrics.durations):  # cumulative, as filled
            label = "+Inf" if bound == float("inf") else f"{bound:g}"
            lines.append(f'analyzerd_analysis_seconds_bucket{{le="{label}"}} {n}')
        lines += [f"analyzerd_analysis_seconds_sum {metrics.duration_sum:.3f}",
                  f"analyzerd_analysis_seconds_count {metrics.images['analyzed']}"]
        cache = await asyncio.get_running_loop().run_in_executor(None, services.analyzer.cache_stats)
        if cache is not None:
            for name in ("hits", "misses", "evictions"):
                lines += [f"# TYPE analyzerd_layer_cache_{name}_total counter",
                          f"analyzerd_layer_cache_{name}_total {getattr(cache, name)}"]
            lines += ["# TYPE analyzerd_layer_cache_bytes gauge", f"analyzerd_layer_cache_bytes {cache.bytes}"]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def submit(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        images = body.get("images") if isinstance(body, dict) else None
        if isinstance(body, dict) and isinstance(body.get("image"), str):
            images = [body["image"]]
        if not isinstance(images, list) or not images or len(images) > MAX_SUBMIT or \
                not all(isinstance(i, str) and i for i in images):
            return web.json_response({"error": f'expected {{"images": [REF, ...]}} (1 to {MAX_SUBMIT})'},
                                     status=400)
        platform = body.get("platform")
        if platform is not None and not isinstance(platform, str):
            return web.json_response({"error": "platform: expected os/arch[/variant]"}, status=400)
        try:
            from .reference import parse_reference
            for image in images:
                parse_reference(image)
            ids = await services.store.enqueue(images, platform, force=bool(body.get("force")))
        except AnalyzerError as exc:
            return web.json_response({"error": exc.message}, status=400)
        log.info("event=http_submit jobs=%s", ",".join(map(str, ids)))
        return web.json_response({"jobs": ids}, status=201)

    app.router.add_get("/health", health)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", prometheus)
    app.router.add_post("/v1/jobs", submit)
    return app


def _fields(value: Any) -> Any:
    return None if value is None else dataclasses.asdict(value)


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"services.analyzer.listen/port: cannot listen on {host}:{port}: {exc.strerror}") from None
    log.info("event=http_listening address=%s:%d", host, port)
    return runner
