"""Wiring: build the long-lived objects once, run the loop, stop on signals."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import aiohttp

from . import __version__
from .analyze import PROGRESS, ImageAnalyzer, image_result
from .cache import LayerCache
from .config import Config, describe, load_config
from .errors import AnalyzerError, ConfigError, TimeLimitError
from .http import Metrics, make_app, serve
from .model import ImageResult
from .registry.client import RegistryClient, RetryPolicy
from .sdnotify import Notifier, watchdog_interval
from .secret_rules import fingerprint_key_file, secret_rule_set
from .secrets.scanner import RuleSet
from .store import Store, open_store
from .worker import Worker

__all__ = ["Outcome", "Services", "open_cache", "run_async", "run_daemon", "services"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class Services:
    config: Config
    store: Store
    client: RegistryClient
    analyzer: ImageAnalyzer
    metrics: Metrics = field(default_factory=Metrics)

    async def analyze_and_store(self, reference: str, platform: str | None, *, force: bool = False) -> Outcome:
        """Analyze and store one image; a failure is recorded on the image and re-raised.

        An image this analyzer version already analyzed (same manifest digest) is not
        analyzed again unless ``force``; the reference is added to it. The whole of it runs
        within ``image_analyze_timeout_seconds``: past that it stops and raises TimeLimitError.
        """
        limit = self.config.analyzer.image_analyze_timeout_seconds
        started = time.monotonic()
        image: list[str] = []  # the manifest digest, once known: a timeout is recorded on it
        try:
            async with asyncio.timeout(limit) as deadline:
                return await self._analyze_and_store(reference, platform, force, image)
        except TimeoutError:
            if not deadline.expired():
                raise  # a timeout of some operation inside, not the job's
            error = TimeLimitError(
                f"{reference}: the analysis ran past services.analyzer.image_analyze_timeout_seconds "
                f"({limit:g} s) and was stopped after {time.monotonic() - started:.1f} s{_progress_note()}",
                hint="raise image_analyze_timeout_seconds if images this large or registries this slow are "
                     "expected")
            log.error("event=job_timed_out ref=%s limit_seconds=%g", reference, limit)
            if image:
                self.metrics.images["failed"] += 1
                try:
                    await self.store.fail_image(image[0], error.message)
                except AnalyzerError as store_error:
                    log.error("event=image_record_failed digest=%s error=%r", image[0], store_error.message)
            raise error from None

    async def _analyze_and_store(self, reference: str, platform: str | None, force: bool,
                                 image: list[str]) -> Outcome:
        target = await self.analyzer.resolve(reference, platform)
        digest = target.image.manifest_digest
        if not force:
            files = await self.store.current_image(digest)
            if files is not None:
                await self.store.add_reference(digest, reference)
                log.info("event=image_already_analyzed ref=%s digest=%s", reference, digest)
                self.metrics.images["reused"] += 1
                return Outcome(digest, files, reused=True)
        await self.store.start_image(image_result(target))
        image.append(digest)
        started = time.monotonic()
        try:
            result = await self.analyzer.analyze_resolved(target, save=self._save)
        except Exception as exc:
            self.metrics.images["failed"] += 1
            message = exc.message if isinstance(exc, AnalyzerError) else f"internal error: {exc!r}"
            try:
                await self.store.fail_image(digest, message)
            except AnalyzerError as store_error:
                log.error("event=image_record_failed digest=%s error=%r", digest, store_error.message)
            raise
        self.metrics.analyzed(time.monotonic() - started, len(result.files),
                              sum(layer.uncompressed_size for layer in result.layers if not layer.stored))
        return Outcome(digest, len(result.files), reused=False)

    async def _save(self, result: ImageResult) -> None:
        saving = time.monotonic()
        await self.store.save_image(result)
        log.info("event=image_stored digest=%s files=%d database=%s seconds=%.2f", result.manifest_digest,
                 len(result.files), self.store.db.dialect, time.monotonic() - saving)


def _progress_note() -> str:
    """How far the stopped analysis got, for its error."""
    progress = PROGRESS.get()
    if progress is None or not progress.layers_total:
        return ""
    return (f" ({progress.layers_done} of {progress.layers_total} layers done, "
            f"{progress.bytes / 1e6:,.1f} MB received)")


@dataclass(frozen=True, slots=True)
class Outcome:
    manifest_digest: str
    files: int
    reused: bool  #: the image was already analyzed: nothing was fetched


class LoopLagMonitor:
    """Measures how late the event loop runs a 50 ms ticker: the loop must never do
    bulk CPU work, and this is the proof. The worst lag is logged on exit."""

    INTERVAL = 0.05

    def __init__(self) -> None:
        self.max_lag = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.INTERVAL
            await asyncio.sleep(self.INTERVAL)
            self.max_lag = max(self.max_lag, loop.time() - expected)

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick(), name="event loop lag monitor")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        log.info("event=loop_lag max_ms=%.1f", self.max_lag * 1000)


@asynccontextmanager
async def services(config: Config, database: str) -> AsyncIterator[Services]:
    """One aiohttp session, one store, one analyzer for the process; closed on exit."""
    lag = LoopLagMonitor()
    lag.start()
    try:
        async with _services(config, database) as svc:
            yield svc
    finally:
        lag.stop()


@asynccontextmanager
async def _services(config: Config, database: str) -> AsyncIterator[Services]:
    timeout = aiohttp.ClientTimeout(total=None, connect=config.registry_connect_timeout_seconds,
                                    sock_read=config.registry_read_timeout_seconds)
    store = await open_store(config, database)
    try:
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False,
                                         headers={"User-Agent": f"analyzerd/{__version__}"}) as session:
            client = RegistryClient(session, settings=config.registry_settings,
                                    retry=RetryPolicy(attempts=config.registry_retries))
            cache = open_cache(config)
            if cache is not None:
                await asyncio.get_running_loop().run_in_executor(None, cache.recover)
            rule_set = await asyncio.get_running_loop().run_in_executor(None, secret_rule_set, config)
            await check_fingerprint_key(store, config, rule_set)
            analyzer = ImageAnalyzer(config, client, layer_results=store, cache=cache, rule_set=rule_set)
            try:
                yield Services(config, store, client, analyzer)
            finally:
                analyzer.close()
    finally:
        await store.close()


def open_cache(config: Config) -> LayerCache | None:
    """The layer blob cache when ``layer_cache_enable`` is set (decimal GB, as Anchore)."""
    section = config.analyzer
    if not section.layer_cache_enable:
        return None
    try:
        return LayerCache(config.tmp_dir, int(section.layer_cache_max_gigabytes * 1000**3))
    except OSError as exc:
        raise ConfigError(f"tmp_dir: cannot create the layer cache in {config.tmp_dir}: {exc.strerror}") from None


def run_async(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run on uvloop when it is installed (it is a dependency; plain asyncio otherwise)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


async def run_daemon(config: Config, database: str) -> None:
    stop = asyncio.Event()
    notifier = Notifier()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stopper(stop, sig, notifier))
    async with services(config, database) as svc:
        worker = Worker(svc)
        loop.add_signal_handler(signal.SIGHUP, lambda: _background(reload_config(svc), "config reload"))
        interval = watchdog_interval()
        watchdog = asyncio.create_task(_watchdog(notifier, interval), name="systemd watchdog") if interval else None
        section = config.analyzer
        web_runner = await serve(make_app(svc, worker), section) \
            if section.port else None
        notifier.notify("READY=1", f"STATUS=claiming jobs from {svc.store.location}")
        try:
            await worker.run(stop)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if web_runner is not None:
                await web_runner.cleanup()


_BACKGROUND: set[asyncio.Task[Any]] = set()


def _background(coro: Coroutine[Any, Any, Any], name: str) -> None:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _BACKGROUND.add(task)  # held until done: the loop keeps only weak references
    task.add_done_callback(_BACKGROUND.discard)


#: What a SIGHUP can change in a running daemon; the rest needs a restart.
RELOADABLE: Final = ("log_level", "limits.", "secret_search.")


def _flat(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


async def check_fingerprint_key(store: Store, config: Config, rule_set: RuleSet | None) -> None:
    """Every process using a database fingerprints secrets with one key; the first to start
    records which, and one with another key is refused (its secret results would differ,
    and every layer the others stored would look stale to it)."""
    if rule_set is None:
        return
    theirs = await store.agree_on("fingerprint_key_id", rule_set.key_id)
    if theirs != rule_set.key_id:
        raise ConfigError(
            f"secret_search.fingerprint_key_file: {fingerprint_key_file(config)} is not the key the "
            f"database {store.location} was used with (key id {rule_set.key_id}, the database's {theirs})",
            hint="copy the key file from a host that already uses this database; to change the key for all "
                 "of them, stop every daemon, run DELETE FROM settings WHERE name = 'fingerprint_key_id', "
                 "and start them with the new key")


async def reload_config(svc: Services) -> None:
    """SIGHUP: read the config file again; apply the log level, limits and secret rules,
    and log what changed (and what only a restart would apply)."""
    source = svc.config.source
    loop = asyncio.get_running_loop()
    if source is None:
        log.warning("event=config_reload_skipped reason=%r", "no config file was given")
        return
    try:
        new = await loop.run_in_executor(None, load_config, source)
        rule_set = await loop.run_in_executor(None, secret_rule_set, new) \
            if new.secret_search != svc.config.secret_search else False
        if rule_set is not False:
            await check_fingerprint_key(svc.store, new, rule_set)
    except ConfigError as exc:
        log.error("event=config_reload_failed file=%s error=%r (the running configuration stays)", source,
                  exc.message)
        return
    before, after = _flat(describe(svc.config)), _flat(describe(new))
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    applied = [k for k in changed if k.startswith(RELOADABLE)]
    restart = [k for k in changed if not k.startswith(RELOADABLE)]
    logging.getLogger().setLevel(getattr(logging, new.log_level.upper(), logging.INFO))
    svc.analyzer.set_limits(new.limits)
    if rule_set is not False:
        svc.analyzer.set_rule_set(rule_set)
    svc.config = dataclasses.replace(svc.config, log_level=new.log_level, limits=new.limits,
                                     secret_search=new.secret_search)
    log.info("event=config_reloaded file=%s applied=%s needs_restart=%s", source,
             ",".join(applied) or "-", ",".join(restart) or "-")


async def _watchdog(notifier: Notifier, interval: float) -> None:
    """Pings from the event loop itself: a loop stuck in CPU work or a deadlock stops them,
    and systemd restarts the service (WatchdogSec=)."""
    while True:
        notifier.notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def _stopper(stop: asyncio.Event, sig: signal.Signals, notifier: Notifier) -> Callable[[], None]:
    def handler() -> None:
        log.info("event=signal signal=%s action=stop_claiming", sig.name)
        notifier.notify("STOPPING=1", "STATUS=finishing running jobs")
        stop.set()
    return handler


