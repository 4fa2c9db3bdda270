"""One image, end to end: resolve, stream every layer through its analyzer, squash.

The event loop only moves bytes: each layer's ``LayerAnalyzer`` runs in a worker thread
fed through a small bounded queue, so a slow analyzer slows the download (backpressure)
instead of buffering it. ``max_threads`` layers are analyzed at once, across all images
this process is working on.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from .analysis.layer import LayerAnalyzer, LayerLimits
from .archive.whiteout import squash
from .config import Config
from .errors import ManifestError
from .model import Descriptor, ImageResult, LayerResult, Platform
from .oci import diff_ids
from .reference import parse_reference
from .registry.client import RegistryClient
from .sources import ImageSource, ResolvedImage, open_source

__all__ = ["ImageAnalyzer"]

log = logging.getLogger(__name__)

#: Chunks in flight between the loop and one layer's thread: ~4 MiB at 256 KiB reads.
FEED_DEPTH: Final = 16
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


def _drive(analyzer: LayerAnalyzer, feed: _ThreadFeed) -> LayerResult | None:
    """Worker thread: feed chunks to the analyzer until the end (or an abort)."""
    try:
        while True:
            item = feed.get()
            if item is _END:
                return analyzer.finish()
            if item is _ABORT or feed.consumer_stopped:
                return None
            analyzer.feed(item)  # type: ignore[arg-type]
    finally:
        feed.stop()


class ImageAnalyzer:
    """Analyzes images; one per process, shared by all jobs (it owns the CPU bound)."""

    def __init__(self, config: Config, client: RegistryClient) -> None:
        self._config = config
        self._client = client
        threads = config.analyzer.max_threads
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="analyzerd-layer")
        self._cpu = asyncio.Semaphore(threads)
        self._limits = LayerLimits(
            max_entries=config.limits.max_layer_entries,
            max_uncompressed_bytes=int(config.limits.max_layer_uncompressed_gigabytes * 1000**3),
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def analyze(self, reference: str, platform: str | None = None,
                      on_resolved: Callable[[ImageResult], Awaitable[None]] | None = None) -> ImageResult:
        """Analyze ``reference``; ``on_resolved`` runs once the manifest is known."""
        ref = parse_reference(reference)
        want = Platform.parse(platform or self._config.default_platform)
        source = open_source(ref, self._client, allow_foreign_layers=self._config.allow_foreign_layers)
        started = time.monotonic()
        resolved = await source.resolve(want)
        layers = resolved.manifest.layers
        ids = diff_ids(resolved.config)
        if ids and len(ids) != len(layers):
            raise ManifestError(f"{source.display}: the config lists {len(ids)} diff_ids "
                                f"for {len(layers)} layers")
        result = _image_result(reference, resolved, [])
        if on_resolved is not None:
            await on_resolved(result)
        log.info("event=image_resolved ref=%s digest=%s layers=%d", reference,
                 resolved.manifest_digest, len(layers))
        tasks = [asyncio.create_task(self._layer(source, desc, ids[i] if ids else None),
                                     name=f"layer {desc.digest} of {reference}")
                 for i, desc in enumerate(layers)]
        try:
            result.layers = list(await asyncio.gather(*tasks))
        except BaseException:
            # The first failure is the job's error; the other layers stop downloading.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        loop = asyncio.get_running_loop()
        result.files = await loop.run_in_executor(self._executor, squash, result.layers)
        log.info("event=image_analyzed ref=%s digest=%s files=%d seconds=%.2f", reference,
                 resolved.manifest_digest, len(result.files), time.monotonic() - started)
        return result

    async def _layer(self, source: ImageSource, desc: Descriptor, diff_id: str | None) -> LayerResult:
        skipped = source.skip_reason(desc)
        if skipped is not None:
            log.warning("event=layer_skipped %s", skipped)
            return LayerResult(digest=desc.digest, media_type=desc.media_type, compressed_size=desc.size,
                               diff_id=diff_id, warnings=[skipped])
        loop = asyncio.get_running_loop()
        async with self._cpu:
            analyzer = LayerAnalyzer(digest=desc.digest, size=desc.size, media_type=desc.media_type,
                                     diff_id=diff_id, verify_diff_id=self._config.verify_diff_ids,
                                     limits=self._limits)
            feed = _ThreadFeed(loop)
            work = loop.run_in_executor(self._executor, _drive, analyzer, feed)
            try:
                async for chunk in source.layer_chunks(desc):
                    if not await feed.put(chunk):
                        break  # the analyzer failed; its error is raised below
                else:
                    await feed.put(_END)
            except BaseException:
                feed.abort()
                try:  # the thread must be gone before its CPU slot is given back
                    await asyncio.shield(work)
                except BaseException:
                    pass
                raise
            layer = await work
            if layer is None:  # stopped without a result: the analyzer raised, or we aborted
                raise RuntimeError(f"layer {desc.digest}: analysis stopped")
            for warning in layer.warnings:
                log.warning("event=layer_warning layer=%s %s", desc.digest, warning)
            layer.warnings = [f"layer {desc.digest}: {w}" for w in layer.warnings]
            return layer


def _image_result(reference: str, resolved: ResolvedImage, layers: list[LayerResult]) -> ImageResult:
    return ImageResult(
        reference=reference,
        manifest_digest=resolved.manifest_digest,
        manifest_media_type=resolved.manifest.media_type,
        index_digest=resolved.index_digest,
        config_digest=resolved.config_digest,
        platform=resolved.platform,
        config=resolved.config,
        layers=layers,
        files=[],
    )
