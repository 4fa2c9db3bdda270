"""The daemon's HTTP endpoint on ``listen``:``port`` (8084, as Anchore's analyzer):

- ``GET /health``: liveness, never authenticated;
- ``GET /status``: version, jobs by status, running jobs, layer cache stats (JSON);
- ``GET /metrics``: Prometheus text format;
- ``POST /v1/jobs``: queue images, as ``analyzerd submit`` does;
- ``GET /v1/jobs/{id}``: one job, as ``analyzerd jobs --json`` gives it (``Job.as_dict``);
- ``GET /v1/jobs?status=&limit=``: the newest jobs first, of one status if asked.

Every error is ``{"error": CODE, "message": TEXT}`` in JSON (plus ``"field"`` when one field
or parameter is at fault), CODE in the kebab-case of ``errors.py`` as the CLI prints it
(``error: invalid-reference``); aiohttp's own errors (no such route, wrong method, a body too
large) and anything unexpected are answered the same way by ``json_errors``.

With ``require_auth`` every endpoint but /health needs HTTP Basic credentials of a user in
``api_users`` (name: scrypt hash, made by ``analyzerd hash-password``); anything else is 401.
A wrong password costs the same scrypt check whether the user exists or not, so the time of
a 401 does not tell user names. A client (remote address) gets ``auth_failure_limit`` failed
logins per ``auth_failure_window_seconds``, then 429 with Retry-After; password checks run in
a few threads of their own with a bounded queue (503 past it). ``POST /v1/jobs`` takes only
``application/json`` (415 otherwise), which a browser cannot send cross-site without asking
first. With ``ssl_enable`` (Anchore's key, with ``ssl_cert`` and ``ssl_key``) it is HTTPS.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

from aiohttp import web

from . import __version__
from .config import AnalyzerSection
from .errors import AnalyzerError, ConfigError, InvalidJobError
from .model import JobStatus
from .passwords import dummy_hash, verify_password
from .submission import validate_job_request

__all__ = ["LoginLimiter", "Metrics", "client_key", "is_loopback", "make_app", "serve", "tls_context"]

log = logging.getLogger(__name__)

#: Requests to /v1/jobs name at most this many images (the body is bounded likewise).
MAX_SUBMIT: Final = 1000
#: The keys of a POST /v1/jobs body; any other is refused (a misspelt "platfrom" would
#: otherwise queue the default platform silently).
SUBMIT_FIELDS: Final = frozenset({"image", "images", "platform", "force"})
MAX_BODY: Final = 1024 * 1024
#: GET /v1/jobs: the newest this many jobs unless ?limit= says otherwise, and at most
#: MAX_JOB_LIST (each job is ~400 bytes of JSON).
DEFAULT_JOB_LIST: Final = 100
MAX_JOB_LIST: Final = 1000
JOB_STATUSES: Final = tuple(status.value for status in JobStatus)
#: The query parameters of GET /v1/jobs; any other is refused (a misspelt "stauts=failed"
#: would otherwise list every job).
LIST_PARAMETERS: Final = frozenset({"status", "limit"})
#: The largest job id there can be (SQLite's rowid and PostgreSQL's BIGINT are signed
#: 64-bit); a larger one is not looked up, which the database would refuse with an error.
MAX_JOB_ID: Final = 2**63 - 1
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

#: Clients (remote addresses) whose failed logins are counted at once, ~200 bytes each; past
#: it the least recently active one is forgotten. An attacker who owns more addresses than
#: this can rotate through them, but each new address still starts from zero tries left.
MAX_TRACKED_CLIENTS: Final = 10_000
#: Password checks running at once, in the endpoint's own threads (scrypt: ~40 ms of CPU and
#: 16 MiB each): failed logins never take the default executor's threads or all the cores.
MAX_CONCURRENT_PASSWORD_CHECKS: Final = 2
#: Password checks waiting for one of those threads (~0.6 s of work); a login past it is
#: answered 503 at once instead of queueing more scrypt work.
MAX_QUEUED_PASSWORD_CHECKS: Final = 32
#: An IPv6 host is usually given a whole /64: its addresses count as one client.
IPV6_CLIENT_PREFIX: Final = 64


def client_key(remote: str | None) -> str:
    """The client a failed login is counted against: its IPv4 address, or its IPv6 /64."""
    if not remote:
        return "-"  # a Unix socket: one client
    try:
        address = ipaddress.ip_address(remote.partition("%")[0])
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)


@dataclass(slots=True)
class _Client:
    window_start: float
    failures: int = 0
    in_flight: int = 0


class LoginLimiter:
    """Failed logins per client: ``limit`` per window, the window starting at the client's
    first failure. Checks under way count against the limit too, so that a client cannot
    start more checks than it has tries left by sending them all at once. A success does
    not reset the count (else one valid account would lift the limit on guessing others).
    """

    def __init__(self, limit: int, window_seconds: float, *, max_clients: int = MAX_TRACKED_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window_seconds
        self.max_clients = max_clients
        self._clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def acquire(self, client: str) -> int | None:
        """None: the client may have a password checked (call release() after); else the
        seconds it must wait (for Retry-After)."""
        now = self._clock()
        entry = self._clients.get(client)
        if entry is None:
            entry = self._add(client, now)
        elif entry.failures and now >= entry.window_start + self.window:
            entry.failures = 0
        if entry.failures + entry.in_flight >= self.limit:
            if entry.failures >= self.limit:
                return max(1, math.ceil(entry.window_start + self.window - now))
            return 1  # its checks under way end within a second or so
        entry.in_flight += 1
        self._clients.move_to_end(client)
        return None

    def release(self, client: str, *, failed: bool) -> bool:
        """End a check that acquire() allowed; True when this failure used the last try."""
        now = self._clock()
        entry = self._clients.get(client)
        if entry is None:  # forgotten while its check ran (the table was full)
            if not failed:
                return False
            entry = self._add(client, now)
        else:
            entry.in_flight = max(0, entry.in_flight - 1)
            self._clients.move_to_end(client)
        if not failed:
            if not entry.failures and not entry.in_flight:
                del self._clients[client]
            return False
        if not entry.failures:
            entry.window_start = now
        entry.failures += 1
        return entry.failures == self.limit

    def _add(self, client: str, now: float) -> _Client:
        while len(self._clients) >= self.max_clients:
            self._clients.popitem(last=False)
        entry = self._clients[client] = _Client(window_start=now)
        return entry


class _Busy(Exception):
    """Too many password checks are waiting already."""


class _Authenticator:
    """HTTP Basic authentication of api_users, with the cost of a failure the same for
    every user name and the number of failures per client limited."""

    def __init__(self, users: dict[str, str], required: bool, limiter: LoginLimiter) -> None:
        self.users = users
        self.required = required
        self.limiter = limiter
        # An unknown user's password is checked against this, with the same scrypt cost.
        self.dummy = dummy_hash(users.values())
        # Checked (user, password) pairs, keyed by an HMAC under a per-process key: scrypt
        # runs once per pair, not per request, and the plain password is not kept.
        self.remembered: set[bytes] = set()
        self.key = os.urandom(32)
        self.executor = ThreadPoolExecutor(MAX_CONCURRENT_PASSWORD_CHECKS, thread_name_prefix="password-check")
        self.checks = 0  # submitted to the executor and not finished

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.required or request.path == "/health":
            return await handler(request)
        user, password = _basic_credentials(request.headers.get("Authorization", ""))
        if user is None or password is None:  # nothing to check: no cost, not counted
            return self._unauthorized(request, user)
        client = client_key(request.remote)
        wait = self.limiter.acquire(client)
        if wait is not None:
            return _error(429, None, f"too many failed logins; retry after {wait} s", headers={"Retry-After": str(wait)})
        ok = busy = False
        try:
            ok = await self._check(user, password)
        except _Busy:
            busy = True
        finally:
            if self.limiter.release(client, failed=not ok and not busy):
                log.warning("event=http_login_limited client=%s failures=%d window_seconds=%g",
                            client, self.limiter.limit, self.limiter.window)
        if busy:
            return _error(503, None, "too many logins being checked; retry shortly", headers={"Retry-After": "1"})
        if ok:
            return await handler(request)
        return self._unauthorized(request, user)

    async def _check(self, user: str, password: str) -> bool:
        stored = self.users.get(user)
        token = hmac.new(self.key, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        if stored is not None and token in self.remembered:
            return True
        if self.checks >= MAX_CONCURRENT_PASSWORD_CHECKS + MAX_QUEUED_PASSWORD_CHECKS:
            raise _Busy
        loop = asyncio.get_running_loop()
        self.checks += 1
        # Counted until the thread is done with it, even if the request is gone before.
        future = self.executor.submit(verify_password, password, self.dummy if stored is None else stored)
        future.add_done_callback(lambda _: _call_soon(loop, self._check_done))
        matched = await asyncio.wrap_future(future)
        if matched and stored is not None:
            self.remembered.add(token)
            return True
        return False

    def _check_done(self) -> None:
        self.checks -= 1

    @staticmethod
    def _unauthorized(request: web.Request, user: str | None) -> web.Response:
        log.warning("event=http_unauthorized path=%s user=%r", request.path, user)
        return _error(401, None, "unauthorized", headers={"WWW-Authenticate": 'Basic realm="analyzerd"'})

    async def close(self, app: web.Application) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:  # the loop is closed: the daemon is gone
        pass


def _basic_credentials(header: str) -> tuple[str | None, str | None]:
    if not header.startswith("Basic "):
        return None, None
    try:
        user, colon, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return user, password if colon else None


def _job_counts(jobs: list[Any]) -> dict[str, int]:
    counts = {status.value: 0 for status in JobStatus}
    for job in jobs:
        counts[job.status.value] += 1
    return counts


def make_app(services: Any, worker: Any) -> web.Application:
    config = services.config
    metrics: Metrics = services.metrics
    section = config.analyzer
    authenticator = _Authenticator(dict(config.api_users), section.require_auth,
                                   LoginLimiter(section.auth_failure_limit, section.auth_failure_window_seconds))
    app = web.Application(middlewares=[json_errors, authenticator.middleware], client_max_size=MAX_BODY)
    app.on_cleanup.append(authenticator.close)

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
        # Only JSON: a browser sends a cross-site text/plain or form POST without asking the
        # server first (no CORS preflight), with the user's saved Basic credentials.
        if request.content_type != "application/json":
            return _error(415, None, "Content-Type must be application/json", headers={"Accept": "application/json"})
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid-job", "the body is not JSON")
        if not isinstance(body, dict):
            return _bad_request(f'expected a JSON object {{"images": [REF, ...]}} (1 to {MAX_SUBMIT} images)')
        unknown = sorted(set(body) - SUBMIT_FIELDS)
        if unknown:
            return _bad_request(f"unknown field (expected {', '.join(sorted(SUBMIT_FIELDS))})", unknown[0][:100])
        if "image" in body and "images" in body:
            return _bad_request("give image or images, not both", "image")
        references = body.get("images")
        if "image" in body:
            if not isinstance(body["image"], str):
                return _bad_request("expected an image reference (a string)", "image")
            references = [body["image"]]
        force = body.get("force", False)
        if not isinstance(force, bool):
            return _bad_request("expected true or false", "force")
        try:
            job = validate_job_request(references, body.get("platform"), max_references=MAX_SUBMIT)
        except InvalidJobError as exc:  # its code: invalid-job, or invalid-reference for a bad reference
            return _error(400, exc.reference, exc.message, field=exc.field)
        try:
            ids = await services.store.enqueue(list(job.references), job.platform, force=force)
        except AnalyzerError as exc:
            log.error("event=http_submit_failed error=%r", exc.message)
            return _error(503, None, exc.message)
        log.info("event=http_submit jobs=%s", ",".join(map(str, ids)))
        return web.json_response({"jobs": ids}, status=201)

    async def get_job(request: web.Request) -> web.Response:
        text = request.match_info["job_id"]
        if not (text.isascii() and text.isdigit()):
            return _error(400, "invalid-argument", f"id: expected a job id (a number), got {text[:40]!r}",
                          field="id")
        # the length first: int() of thousands of digits is slow, then refused (ValueError)
        job_id = int(text) if len(text) <= len(str(MAX_JOB_ID)) else None
        job = await services.store.get_job(job_id) if job_id is not None and job_id <= MAX_JOB_ID else None
        if job is None:
            return _error(404, "not-found", f"there is no job {text[:40] if job_id is None else job_id}")
        return web.json_response(job.as_dict())

    async def list_jobs(request: web.Request) -> web.Response:
        unknown = sorted(set(request.query) - LIST_PARAMETERS)
        if unknown:
            return _error(400, "invalid-argument", f"{unknown[0][:40]}: unknown parameter (expected "
                                                   f"{', '.join(sorted(LIST_PARAMETERS))})", field=unknown[0][:40])
        status = request.query.get("status")
        if status is not None and status not in JOB_STATUSES:
            return _error(400, "invalid-argument", f"status: expected one of {', '.join(JOB_STATUSES)}, "
                                                   f"got {status[:40]!r}", field="status")
        limit = request.query.get("limit", str(DEFAULT_JOB_LIST))
        # the length first: int() of thousands of digits is slow, then refused (ValueError)
        if not (limit.isascii() and limit.isdigit() and len(limit) <= 4 and 1 <= int(limit) <= MAX_JOB_LIST):
            return _error(400, "invalid-argument", f"limit: expected 1 to {MAX_JOB_LIST}, got {limit[:40]!r}",
                          field="limit")
        jobs = await services.store.recent_jobs(status, int(limit))
        # ~8 ms of JSON encoding for 1,000 jobs: in a thread, not on the event loop
        text = await asyncio.get_running_loop().run_in_executor(
            None, json.dumps, {"jobs": [job.as_dict() for job in jobs]})
        return web.json_response(text=text)

    app.router.add_get("/health", health)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", prometheus)
    app.router.add_post("/v1/jobs", submit)
    app.router.add_get("/v1/jobs", list_jobs)
    app.router.add_get("/v1/jobs/{job_id}", get_job)
    return app


#: The JSON body's "error" code for a status when the endpoint has no more precise one.
_CODES: Final = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
                 405: "method-not-allowed", 413: "payload-too-large", 415: "unsupported-media-type",
                 429: "too-many-requests", 500: "internal-error", 503: "unavailable"}


def _error(status: int, code: str | None, message: str, *, field: str | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    """Every error the endpoint sends: JSON ``{"error": code, "message": message}``, the code
    as the CLI prints it (``error: invalid-reference``), and the field at fault if one is."""
    body: dict[str, Any] = {"error": code or _status_code(status), "message": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status, headers=headers)


def _status_code(status: int) -> str:
    """The code of an HTTP status: ours, else its reason phrase in kebab-case (431:
    request-header-fields-too-large)."""
    if status in _CODES:
        return _CODES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")
    except ValueError:
        return "error"


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own errors (no such route, wrong method, a body too large) and anything
    unexpected answered in JSON like the endpoint's own, never as HTML or text."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
        return _error(exc.status, None, _http_message(request, exc), headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the client gets a JSON 500; the daemon goes on
        log.error("event=http_internal_error path=%s error=%r", request.path[:200], exc)
        return _error(500, None, "internal error (the daemon's log has the details)")


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    """What an aiohttp HTTPException means, in words that name the request."""
    where = f"{request.method} {request.path[:200]}"
    if exc.status == 404:
        return f"no such endpoint: {where}"
    if exc.status == 405:
        return f"method not allowed: {where} (allowed: {exc.headers.get('Allow', 'none')})"
    if exc.status == 413:
        return f"the request body is over {MAX_BODY // (1024 * 1024)} MiB"
    return exc.reason


def _bad_request(message: str, field: str | None = None) -> web.Response:
    """400, the message naming the field (also given alone, for programs)."""
    if field is None:
        return _error(400, "invalid-job", message)
    return _error(400, "invalid-job", f"{field}: {message}", field=field)


def _fields(value: Any) -> Any:
    return None if value is None else dataclasses.asdict(value)


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the endpoint on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name, or an interface's name: reachable from elsewhere


def tls_context(section: AnalyzerSection) -> ssl.SSLContext | None:
    """The server's TLS settings from ssl_enable, ssl_cert and ssl_key (None: plain HTTP)."""
    if not section.ssl_enable:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2

    def no_passphrase() -> bytes:  # instead of OpenSSL prompting on the terminal
        raise ConfigError(f"services.analyzer.ssl_key: {section.ssl_key} is encrypted; give an unencrypted "
                          "key, readable by analyzerd's user only")

    try:
        context.load_cert_chain(section.ssl_cert, section.ssl_key, password=no_passphrase)
    except ssl.SSLError as exc:
        raise ConfigError(f"services.analyzer.ssl_cert, ssl_key: cannot use {section.ssl_cert} with "
                          f"{section.ssl_key}: {exc.reason or exc}",
                          hint="ssl_cert: the certificate (then its chain), PEM; ssl_key: its private key, "
                               "PEM") from None
    except OSError as exc:
        raise ConfigError(f"services.analyzer.ssl_cert, ssl_key: {exc.filename}: {exc.strerror}") from None
    return context


async def serve(app: web.Application, section: AnalyzerSection) -> web.AppRunner:
    """Start the endpoint on ``listen``:``port``, over TLS with ssl_enable; warn when it is
    open to the network without authentication, or with credentials in clear text."""
    host, port = section.listen, section.port
    context = tls_context(section)
    if not is_loopback(host):
        if not section.require_auth:
            log.warning("event=http_auth_disabled address=%s:%d: require_auth is false on a non-loopback "
                        "address: anyone who reaches it can queue images and read /status and /metrics; "
                        "set require_auth: true with api_users, or listen: 127.0.0.1", host, port)
        elif context is None:
            log.warning("event=http_cleartext address=%s:%d: HTTP Basic credentials cross the network in "
                        "clear text; set ssl_enable with ssl_cert and ssl_key, or listen: 127.0.0.1 behind "
                        "a TLS proxy", host, port)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"services.analyzer.listen/port: cannot listen on {host}:{port}: {exc.strerror}") from None
    log.info("event=http_listening address=%s:%d tls=%s", host, port, "on" if context else "off")
    return runner
