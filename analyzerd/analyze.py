"""One image, end to end: resolve, stream every layer through its analyzer, squash.

The event loop only moves bytes: each layer's ``LayerAnalyzer`` runs in a worker thread
fed through a small bounded queue, so a slow analyzer slows the download (backpressure)
instead of buffering it. ``max_threads`` layers are analyzed at once, across all images
this process is working on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mmap
import queue
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeVar

from .analysis.dispatch import Dispatch
from .analysis.findings import image_secrets
from .analysis.layer import LayerAnalyzer, LayerLimits
from .analysis.packages import Inventory, inventory
from .archive.whiteout import by_path, merged_view
from .cache import CacheStats, CacheWriter, LayerCache, cacheable
from .catalogers.registry import CATALOGERS
from .config import Config, Limits
from .errors import IntegrityError, ManifestError, PlatformNotFoundError
from .model import (
    Descriptor,
    ImageResult,
    ImageSecret,
    LayerResult,
    Platform,
    VisibleFile,
)
from .oci import diff_ids, platform_matches
from .reference import parse_reference
from .registry.client import RegistryClient
from .secret_rules import secret_rule_set
from .secrets.config import ConfigScan, scan_config
from .secrets.scanner import RuleSet
from .sources import FILE_READ_SIZE, ImageSource, ResolvedImage, open_source

__all__ = ["ImageAnalyzer", "LayerResults", "Resolved", "image_result"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Chunks in flight between the loop and one layer's thread: 4 MiB at 1 MiB reads.
FEED_DEPTH: Final = 4
#: How long a stopped analysis (its time limit passed, or the daemon is stopping) waits for
#: a layer thread to notice between two chunks. One still busy after this is inside a single
#: parser call, which Python cannot interrupt: it is left to finish on its own.
THREAD_STOP_GRACE_SECONDS: Final = 5.0
_END: Final = object()
_ABORT: Final = object()


class _ThreadFeed:
    """A bounded hand-off from the event loop to one worker thread.

    The loop side awaits when the queue is full; the thread wakes it after taking an
    item. No per-chunk round trip through the loop unless the loop is actually waiting.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, depth: int = FEED_DEPTH) -> None:
        self._loop = loop
        self._queue: queue.Queue[object] = queue.Queue(depth)
        self._waiter: asyncio.Future[None] | None = None
        self.consumer_stopped = False

    async def put(self, item: object) -> bool:
        """False once the consumer has stopped (it failed): stop producing."""
        q = self._queue
        while not self.consumer_stopped:
            try:
                q.put_nowait(item)
                return True
            except queue.Full:
                pass
            waiter = self._loop.create_future()
            self._waiter = waiter
            try:  # the consumer may have taken an item before it could see the waiter
                q.put_nowait(item)
                self._waiter = None
                return True
            except queue.Full:
                pass
            if self.consumer_stopped:
                break
            await waiter
        return False

    def abort(self) -> None:
        """Loop side: tell the consumer to stop without finishing."""
        self.consumer_stopped = True
        try:
            self._queue.put_nowait(_ABORT)
        except queue.Full:
            pass  # the consumer is not blocked on get(); it sees the flag after its next item

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            self._loop.call_soon_threadsafe(_set_done, waiter)

    def get(self) -> object:
        """Thread side."""
        item = self._queue.get()
        self._wake()
        return item

    def stop(self) -> None:
        """Thread side: the consumer has ended (finished or failed)."""
        self.consumer_stopped = True
        self._wake()


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _drive(analyzer: LayerAnalyzer, feed: _ThreadFeed, writer: CacheWriter | None) -> LayerResult | None:
    """Worker thread: feed chunks to the analyzer (and the cache) until the end or an abort.
    A cached blob is committed only after the analyzer verified its digest."""
    try:
        while True:
            item = feed.get()
            if item is _END:
                layer = analyzer.finish()
                if writer is not None:
                    writer.commit()
                    writer = None
                return layer
            if item is _ABORT or feed.consumer_stopped:
                return None
            if writer is not None:
                try:
                    writer.write(item)  # type: ignore[arg-type]
                except OSError as exc:  # a full disk costs the cache entry, not the job
                    log.warning("event=cache_write_failed blob=%s error=%r", writer.digest, exc.strerror)
                    writer.abort()
                    writer = None
            analyzer.feed(item)  # type: ignore[arg-type]
    finally:
        if writer is not None:
            writer.abort()
        feed.stop()


def _read_file(analyzer: LayerAnalyzer, path: str, stop: threading.Event) -> LayerResult | None:
    """Worker thread: a cached blob through the same analyzer, until the end or ``stop``."""
    with open(path, "rb") as f:
        while chunk := f.read(FILE_READ_SIZE):
            if stop.is_set():
                return None
            analyzer.feed(chunk)
    return analyzer.finish()


class FileSpool:
    """A cataloged file too big for memory: an unnamed temporary file in tmp_dir, memory
    mapped for parsing and gone when closed (nothing of the layer is left on disk)."""

    def __init__(self, tmp_dir: str) -> None:
        self._file = tempfile.TemporaryFile(dir=tmp_dir, prefix="analyzerd-spool-")
        self._map: mmap.mmap | None = None

    def write(self, data: memoryview) -> None:
        self._file.write(data)

    def view(self) -> memoryview:
        self._file.flush()
        if self._file.tell() == 0:
            return memoryview(b"")
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        return memoryview(self._map)

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a parser kept a view: the map goes with the last reference
                pass
        self._file.close()


class LayerResults(Protocol):
    """Where analyzed layers (and image configs) are kept for reuse (the Store). Fresh
    layers are stored with their image, in its transaction."""

    async def load_layer(self, digest: str) -> LayerResult | None: ...

    async def config_blob(self, digest: str) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Resolved:
    reference: str
    source: ImageSource
    image: ResolvedImage
    #: the config's secrets and the config without them (None: secrets are not looked for)
    config_scan: ConfigScan | None = None


class ImageAnalyzer:
    """Analyzes images; one per process, shared by all jobs (it owns the CPU bound).

    Each layer is taken, in order of preference, from the stored layer results (no
    download, no analysis), from a layer this process is analyzing right now for another
    image (single flight), from the blob cache, or from the source (teed into the cache).
    A layer analyzed for an image is shared until that image is stored (``save``): until
    then the stored layer results do not have it yet, and another image would fetch it again.
    """

    def __init__(self, config: Config, client: RegistryClient, *, layer_results: LayerResults | None = None,
                 cache: LayerCache | None = None, rule_set: RuleSet | None | bool = True) -> None:
        """``rule_set``: the secret rules, built beforehand (compiling them takes a tenth of
        a second: not on the event loop); True: build them from the config here."""
        self._config = config
        self._client = client
        self._results = layer_results
        self._cache = cache
        threads = config.analyzer.max_threads
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="analyzerd-layer")
        self._cpu = asyncio.Semaphore(threads)
        #: work of stopped analyses whose threads are still inside one call
        self._abandoned: set[asyncio.Future[Any]] = set()
        self._in_flight: dict[str, asyncio.Future[LayerResult]] = {}
        self._limits = layer_limits(config.limits)
        self._dispatch = Dispatch(CATALOGERS)
        self._rule_set: RuleSet | None = None
        self._secret_rules: str | None = None
        self.set_rule_set(secret_rule_set(config) if rule_set is True else rule_set or None)
        tmp_dir = config.tmp_dir
        self._spool = lambda: FileSpool(tmp_dir)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def abandoned_threads(self) -> int:
        """Threads of stopped analyses still inside a parser call (each ends when it returns)."""
        return len(self._abandoned)

    async def in_thread(self, fn: Callable[..., T], *args: Any, stop: Callable[[], None] | None = None) -> T:
        """``fn(*args)`` in a layer thread. If the caller is cancelled (its job's time ran out,
        or the daemon is stopping), ``stop`` asks the thread to stop between two chunks, and the
        caller waits THREAD_STOP_GRACE_SECONDS at most for it before it is cancelled itself."""
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._executor, fn, *args)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            if stop is not None:
                stop()
            await self._wait_for_stopped_thread(work)
            raise

    async def _wait_for_stopped_thread(self, work: asyncio.Future[Any]) -> None:
        """Wait a little for stopped work's thread; one that is still busy is inside a single
        call: its executor is retired with it (the thread exits when the call returns) and new
        work goes to a fresh executor, so the process keeps max_threads threads to work with."""
        done, _ = await asyncio.wait({work}, timeout=THREAD_STOP_GRACE_SECONDS)
        if done:
            if not work.cancelled():
                work.exception()  # retrieved: the caller's cancellation is what counts now
            return
        retired = self._executor
        self._executor = ThreadPoolExecutor(self._config.analyzer.max_threads, thread_name_prefix="analyzerd-layer")
        retired.shutdown(wait=False)
        self._abandoned.add(work)
        work.add_done_callback(self._thread_ended)
        log.error("event=layer_thread_abandoned grace_seconds=%g abandoned_threads=%d (busy inside one parser "
                  "call; it ends when that call returns)", THREAD_STOP_GRACE_SECONDS, len(self._abandoned))

    def _thread_ended(self, work: asyncio.Future[Any]) -> None:
        self._abandoned.discard(work)
        if not work.cancelled():
            work.exception()
        log.info("event=abandoned_thread_ended abandoned_threads=%d", len(self._abandoned))

    def set_limits(self, limits: Limits) -> None:
        """New bounds for layers analyzed from now on (a config reload)."""
        self._limits = layer_limits(limits)

    def set_rule_set(self, rule_set: RuleSet | None) -> None:
        """New secret rules for layers analyzed from now on; stored layer results found with
        other rules are analyzed again when an image needs them."""
        self._rule_set = rule_set
        self._secret_rules = rule_set.digest if rule_set is not None else None

    def cache_stats(self) -> CacheStats | None:
        """The layer cache's counters (file I/O: call it off the event loop)."""
        return self._cache.stats() if self._cache is not None else None

    async def resolve(self, reference: str, platform: str | None = None) -> Resolved:
        """Find the image: its manifest (for the platform) and config."""
        ref = parse_reference(reference)
        want = Platform.parse(platform or self._config.default_platform)
        source = open_source(ref, self._client, allow_foreign_layers=self._config.allow_foreign_layers)
        if self._results is not None and source.remote:
            source.known_blob = self._results.config_blob
        resolved = await source.resolve(want)
        if platform and resolved.index_digest is None and not platform_matches(want, resolved.platform):
            # as `docker pull --platform`: a single-platform image of another platform is not it
            raise PlatformNotFoundError(f"{source.display}: the image is for {resolved.platform}, "
                                        f"not the platform asked for, {want}",
                                        hint="leave out --platform to analyze it as it is")
        ids = diff_ids(resolved.config)
        if ids and len(ids) != len(resolved.manifest.layers):
            raise ManifestError(f"{source.display}: the config lists {len(ids)} diff_ids "
                                f"for {len(resolved.manifest.layers)} layers")
        log.info("event=image_resolved ref=%s digest=%s layers=%d", reference,
                 resolved.manifest_digest, len(resolved.manifest.layers))
        scan, rules = None, self._rule_set
        if rules is not None:
            # before anything stores the config: what is kept of it is the redacted copy
            scan = await self.in_thread(lambda: scan_config(rules, resolved.config,
                                                            layers=len(resolved.manifest.layers)))
        return Resolved(reference, source, resolved, scan)

    async def analyze_resolved(self, target: Resolved,
                               save: Callable[[ImageResult], Awaitable[Any]] | None = None) -> ImageResult:
        """The image's result; ``save`` (storing it) is awaited before the layers this
        analysis made stop being shared with other images."""
        made: list[tuple[str, asyncio.Future[LayerResult]]] = []
        try:
            result = await self._analyze_resolved(target, made)
            if save is not None:
                await save(result)
            return result
        finally:
            for digest, future in made:
                if self._in_flight.get(digest) is future:
                    del self._in_flight[digest]

    async def _analyze_resolved(self, target: Resolved,
                                made: list[tuple[str, asyncio.Future[LayerResult]]]) -> ImageResult:
        started = time.monotonic()
        resolved = target.image
        layers = resolved.manifest.layers
        ids = diff_ids(resolved.config)
        result = image_result(target)
        progress = PROGRESS.get()
        if progress is not None:
            progress.layers_total = len(layers)
        tasks = [asyncio.create_task(self._layer(target.source, desc, ids[i] if ids else None, made),
                                     name=f"layer {desc.digest} of {target.reference}")
                 for i, desc in enumerate(layers)]
        try:
            result.layers = list(await asyncio.gather(*tasks))
        except BaseException:
            # The first failure is the job's error; the other layers stop downloading.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        result.files, result.inventory, result.secrets = await self.in_thread(merge, result.layers)
        if target.config_scan is not None:
            result.secrets = [ImageSecret(f.finding, f.layer, None) for f in target.config_scan.findings] \
                + result.secrets
        log.info("event=image_analyzed ref=%s digest=%s files=%d seconds=%.2f", target.reference,
                 resolved.manifest_digest, len(result.files), time.monotonic() - started)
        return result

    async def _layer(self, source: ImageSource, desc: Descriptor, diff_id: str | None,
                     made: list[tuple[str, asyncio.Future[LayerResult]]]) -> LayerResult:
        """One layer's result; one this call analyzed is added to ``made`` and stays shared
        (in ``_in_flight``, done) until the caller's image is stored."""
        skipped = source.skip_reason(desc)
        if skipped is not None:
            log.warning("event=layer_skipped %s", skipped)
            return LayerResult(digest=desc.digest, media_type=desc.media_type, compressed_size=desc.size,
                               diff_id=diff_id, warnings=[skipped], analyzed=False)
        if self._results is not None:
            stored = await self._results.load_layer(desc.digest, self._secret_rules)
            if stored is not None:
                log.info("event=layer_reused layer=%s files=%d", desc.digest, len(stored.files))
                _count_done(stored)
                return stored
        running = self._in_flight.get(desc.digest)
        if running is not None:  # another image needs the same layer right now
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not running.cancelled() or (task is not None and task.cancelling()):
                    raise
                # the image that was analyzing it was stopped (its time ran out): not this one
                return await self._layer(source, desc, diff_id, made)
        future: asyncio.Future[LayerResult] = asyncio.get_running_loop().create_future()
        self._in_flight[desc.digest] = future
        try:
            layer = await self._analyze_layer(source, desc, diff_id)
        except BaseException as exc:
            del self._in_flight[desc.digest]
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: a failure nobody else waited for is not "never retrieved"
            raise
        future.set_result(layer)
        made.append((desc.digest, future))
        return layer

    def _new_analyzer(self, desc: Descriptor, diff_id: str | None) -> LayerAnalyzer:
        return LayerAnalyzer(digest=desc.digest, size=desc.size, media_type=desc.media_type,
                             diff_id=diff_id, verify_diff_id=self._config.verify_diff_ids, limits=self._limits,
                             dispatch=self._dispatch, spool=self._spool,
                             secrets=self._rule_set.scanner() if self._rule_set is not None else None,
                             secret_rules=self._secret_rules)

    async def _analyze_layer(self, source: ImageSource, desc: Descriptor, diff_id: str | None) -> LayerResult:
        loop = asyncio.get_running_loop()
        async with self._cpu:
            cache = self._cache if source.remote and cacheable(desc.digest) else None
            if cache is not None:
                path = await loop.run_in_executor(None, cache.lookup, desc.digest)
                if path is not None:
                    stop = threading.Event()
                    try:
                        cached = await self.in_thread(_read_file, self._new_analyzer(desc, diff_id), path, stop,
                                                       stop=stop.set)
                    except IntegrityError:
                        await loop.run_in_executor(None, cache.discard, desc.digest)  # fetch it again
                    else:
                        assert cached is not None  # only a stop returns None, and a stop raises above
                        return self._finished(cached)
            writer = await loop.run_in_executor(None, cache.begin, desc.digest, desc.size) if cache else None
            feed = _ThreadFeed(loop)
            work = loop.run_in_executor(self._executor, _drive, self._new_analyzer(desc, diff_id), feed, writer)
            progress = PROGRESS.get()
            try:
                async for chunk in source.layer_chunks(desc):
                    if progress is not None:
                        progress.bytes += len(chunk)
                    if not await feed.put(chunk):
                        break  # the analyzer failed; its error is raised below
                else:
                    await feed.put(_END)
            except BaseException:
                feed.abort()  # the thread stops before its next chunk
                # Its CPU slot is given back once it has stopped, or once it is abandoned
                # inside one call (a fresh executor then runs new work).
                await self._wait_for_stopped_thread(work)
                raise
            try:
                layer = await asyncio.shield(work)
            except asyncio.CancelledError:  # stopped while the thread finishes the layer
                await self._wait_for_stopped_thread(work)
                raise
            if layer is None:  # stopped without a result: the analyzer raised, or we aborted
                raise RuntimeError(f"layer {desc.digest}: analysis stopped")
            return self._finished(layer)

    @staticmethod
    def _finished(layer: LayerResult) -> LayerResult:
        _count_done(layer)
        for warning in layer.warnings:
            log.warning("event=layer_warning layer=%s %s", layer.digest, warning)
        layer.warnings = [f"layer {layer.digest}: {w}" for w in layer.warnings]
        return layer


@dataclass(slots=True)
class Progress:
    """How far the analysis of one image is, for a progress display (updated on the loop)."""

    layers_total: int = 0
    layers_done: int = 0
    bytes: int = 0  #: compressed layer bytes received
    files: int = 0  #: files of the layers done
    started: float = field(default_factory=time.monotonic)

    def counts(self) -> dict[str, int]:
        """What a daemon records for its running job (jobs.progress)."""
        return {"layers_done": self.layers_done, "layers_total": self.layers_total, "bytes": self.bytes,
                "files": self.files}


#: The Progress of the image being analyzed in this task (and the layer tasks it starts).
PROGRESS: ContextVar[Progress | None] = ContextVar("analyzerd_progress", default=None)


def _count_done(layer: LayerResult) -> None:
    progress = PROGRESS.get()
    if progress is not None:
        progress.layers_done += 1
        progress.files += len(layer.files)


def layer_limits(limits: Limits) -> LayerLimits:
    return LayerLimits(
        max_entries=limits.max_layer_entries,
        max_uncompressed_bytes=int(limits.max_layer_uncompressed_gigabytes * 1000**3),
        max_memory_capture=int(limits.max_catalog_memory_megabytes * 1024**2),
        max_catalog_file=int(limits.max_cataloged_file_megabytes * 1024**2),
    )


def merge(layers: list[LayerResult]) -> tuple[list[VisibleFile], Inventory, list[ImageSecret]]:
    """CPU work on the merged image (in a worker thread): the squash, the packages, and
    which secrets upper layers hid."""
    view = merged_view(layers)
    return by_path(view), inventory(layers, view), image_secrets(layers)


def image_result(target: Resolved) -> ImageResult:
    """The image's result before its layers are read. Its config is the redacted copy when
    secrets were found in it (then the blob as served is kept nowhere: its digest no longer
    matches, and the next analysis fetches it again)."""
    resolved = target.image
    scan = target.config_scan
    config, config_text = resolved.config, resolved.config_bytes.decode("utf-8", "surrogateescape")
    if scan is not None and scan.redacted:
        config, config_text = scan.config, json.dumps(scan.config, separators=(",", ":"))
    return ImageResult(
        reference=target.reference,
        manifest_digest=resolved.manifest_digest,
        manifest_media_type=resolved.manifest.media_type,
        index_digest=resolved.index_digest,
        config_digest=resolved.config_digest,
        platform=resolved.platform,
        config=config,
        config_text=config_text,
        layers=[],
        files=[],
    )
