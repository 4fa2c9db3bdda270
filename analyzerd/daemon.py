"""Wiring: build the long-lived objects once, run the loop, stop on signals."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from . import __version__
from .analyze import ImageAnalyzer
from .config import Config
from .errors import AnalyzerError
from .model import ImageResult
from .registry.client import RegistryClient, RetryPolicy
from .store import Store
from .worker import Worker

__all__ = ["Services", "run_async", "run_daemon", "services"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class Services:
    config: Config
    store: Store
    client: RegistryClient
    analyzer: ImageAnalyzer

    async def analyze_and_store(self, reference: str, platform: str | None) -> ImageResult:
        """Analyze and store one image; a failure is recorded on the image and re-raised."""
        resolved: list[ImageResult] = []

        async def started(result: ImageResult) -> None:
            resolved.append(result)
            await self.store.start_image(result)

        try:
            result = await self.analyzer.analyze(reference, platform, on_resolved=started)
            await self.store.save_image(result)
        except Exception as exc:
            if resolved:
                message = exc.message if isinstance(exc, AnalyzerError) else f"internal error: {exc!r}"
                try:
                    await self.store.fail_image(resolved[0].manifest_digest, message)
                except AnalyzerError as store_error:
                    log.error("event=image_record_failed digest=%s error=%r",
                              resolved[0].manifest_digest, store_error.message)
            raise
        return result


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
    store = await Store.open(database)
    try:
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False,
                                         headers={"User-Agent": f"analyzerd/{__version__}"}) as session:
            client = RegistryClient(session, settings=config.registry_settings,
                                    retry=RetryPolicy(attempts=config.registry_retries))
            analyzer = ImageAnalyzer(config, client)
            try:
                yield Services(config, store, client, analyzer)
            finally:
                analyzer.close()
    finally:
        await store.close()


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
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stopper(stop, sig))
    async with services(config, database) as svc:
        worker = Worker(svc)
        await worker.run(stop)


def _stopper(stop: asyncio.Event, sig: signal.Signals) -> Callable[[], None]:
    def handler() -> None:
        log.info("event=signal signal=%s action=stop_claiming", sig.name)
        stop.set()
    return handler


