"""Analyze one layer blob as its bytes stream past: verify, decompress, read the tar, hash.

``LayerAnalyzer`` is sans-IO: ``feed(chunk)`` the blob as it arrives (from a registry,
a cache file or a local layout) and ``finish()`` returns the ``LayerResult``. It is CPU
work and is meant to run in a worker thread; it holds only the current chunk and the
per-file hash states, whatever the layer's size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from ..archive.decompress import StreamDecoder
from ..archive.tar import BLOCK, END, ENTRY_END, NEED_DATA, RUNTIME_TYPEFLAGS, Entry, TarReader
from ..archive.unpack import OPAQUE_MARKER, WHITEOUT_PREFIX, LayerTree
from ..catalogers.base import CatalogEntry, Cataloger, ParseResult, StreamScanner, shorten
from ..errors import AnalyzerError, ArchiveError, IntegrityError, LimitError
from ..model import FileKind, FileRecord, LayerResult
from ..oci import DIGEST_HEX_LENGTHS
from ..secrets.scanner import SecretScanner
from .dispatch import Dispatch

__all__ = ["LayerAnalyzer", "LayerLimits", "MAX_WARNINGS", "MAX_WARNING_LENGTH", "OPAQUE_MARKER", "Spool",
           "WHITEOUT_PREFIX"]


class Spool(Protocol):
    """Where a cataloged file too big for memory collects (a temporary file, from the
    I/O side); ``view()`` gives its bytes for parsing (a memory map), ``close()`` deletes it."""

    def write(self, data: memoryview) -> None: ...

    def view(self) -> memoryview: ...

    def close(self) -> None: ...

#: Warnings kept per layer; the rest are counted in one closing warning. A hostile layer can
#: have a warning for each of its entries; a real one has a handful.
MAX_WARNINGS: Final = 100
#: Characters of one warning: long enough for a full path and a reason, short enough that the
#: warnings of a layer stay under 100 KB stored and logged.
MAX_WARNING_LENGTH: Final = 1000

_EMPTY_MD5: Final = hashlib.md5(b"").hexdigest()
_EMPTY_SHA1: Final = hashlib.sha1(b"").hexdigest()
_EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerLimits:
    """Bounds on what one (possibly hostile) layer may make analyzerd do."""

    #: Entries per layer. The largest real layers hold a few hundred thousand files.
    max_entries: int = 2_000_000
    #: Uncompressed bytes per layer: stops decompression bombs from running for hours.
    max_uncompressed_bytes: int = 64 * 1000**3
    #: A cataloged file up to this size is collected in memory; larger ones are spooled.
    max_memory_capture: int = 8 * 1024 * 1024
    #: No cataloged file larger than this is read, whatever its cataloger accepts (a large
    #: jar is spooled to tmp_dir whole: this bounds the disk a hostile image can take).
    max_catalog_file: int = 1024 * 1024 * 1024


#: Executables smaller than this are not scanned: no Go or Rust binary is this small.
MIN_SCANNED_EXECUTABLE: Final = 4096
_ANY_EXEC_BIT: Final = 0o111


class LayerAnalyzer:
    """Feed a layer blob in, get its files with MD5/SHA1/SHA256 out.

    Args:
        digest: the descriptor digest; the compressed bytes must hash to it.
        size: the descriptor size; more or fewer bytes is an integrity error.
        media_type: as the manifest says (recorded, not trusted: compression is sniffed).
        diff_id: the config's diff_id for this layer (recorded).
        verify_diff_id: hash the uncompressed stream and require it to match ``diff_id``.
    """

    def __init__(self, *, digest: str, size: int, media_type: str, diff_id: str | None = None,
                 verify_diff_id: bool = True, limits: LayerLimits = LayerLimits(),
                 dispatch: Dispatch | None = None, spool: Callable[[], Spool] | None = None,
                 secrets: SecretScanner | None = None, secret_rules: str | None = None) -> None:
        algorithm, _, self._expected_hex = digest.partition(":")
        if algorithm not in DIGEST_HEX_LENGTHS:
            raise IntegrityError(f"layer {digest}: unsupported digest algorithm {algorithm!r}")
        self._algorithm = algorithm
        self.digest = digest
        self._size = size
        self._media_type = media_type
        self._diff_id = diff_id
        self._limits = limits
        self._blob_hash = hashlib.new(algorithm)
        # the diff_id names its own algorithm (an unknown one is hashed as sha256, and mismatches)
        diff_algorithm = (diff_id or "").partition(":")[0]
        self._diff_algorithm = diff_algorithm if diff_algorithm in DIGEST_HEX_LENGTHS else "sha256"
        self._diff_hash = hashlib.new(self._diff_algorithm) \
            if verify_diff_id and diff_id and diff_id != digest else None
        self._received = 0
        self._uncompressed = 0
        self._decoder = StreamDecoder()
        self._reader = TarReader(max_hole_bytes=limits.max_uncompressed_bytes)
        self._warnings: list[str] = []
        self._warnings_dropped = 0
        self._tree = LayerTree(self._warn)
        # hardlinks of this layer and the inode (record) each shares, settled at the end
        self._hardlinks: list[tuple[FileRecord, FileRecord]] = []
        self._inodes: dict[int, FileRecord] = {}
        self._failure: AnalyzerError | None = None
        # the regular file whose data is streaming now
        self._current: FileRecord | None = None
        self._hashes: tuple[hashlib._Hash, hashlib._Hash, hashlib._Hash] | None = None
        self._dispatch = dispatch
        self._spool = spool
        self._secrets = secrets
        self._secret_rules = secret_rules if secrets is not None else None
        self._catalog: list[CatalogEntry] = []
        # the cataloged file whose data streams now: where it collects, and who parses it
        self._capture: bytearray | Spool | None = None
        self._capture_for: tuple[str, Cataloger] | None = None
        # executables: their first bytes decide which scanners see the rest as it streams
        self._scanner_catalogers = dispatch.scanners if dispatch is not None else ()
        self._sniff_path: str | None = None
        self._sniff_head = b""
        self._scanning: list[tuple[Cataloger, StreamScanner]] | None = None
        self._scanning_path = ""

    @property
    def received(self) -> int:
        return self._received

    def feed(self, chunk: bytes) -> None:
        """Add the next bytes of the blob."""
        self._received += len(chunk)
        if self._received > self._size:
            raise IntegrityError(f"layer {self.digest}: the registry sent more than the "
                                 f"{self._size} bytes its descriptor declares")
        self._blob_hash.update(chunk)
        if self._failure is not None:
            return  # keep hashing: a digest mismatch explains a corrupt stream best
        try:
            for piece in self._decoder.decode(chunk):
                self._consume(piece)
        except (ArchiveError, LimitError) as exc:
            self._failure = exc

    def finish(self) -> LayerResult:
        """Verify size and digest, drain the decoder and return the result."""
        self._verify_blob()
        if self._failure is None:
            try:
                for piece in self._decoder.finish():
                    self._consume(piece)
                self._reader.receive_data(b"")
                self._events()
            except (ArchiveError, LimitError) as exc:
                self._failure = exc
        if self._failure is not None:
            raise type(self._failure)(f"layer {self.digest}: {self._failure.message}") from self._failure
        secrets: list[object] = []
        if self._secrets is not None:
            secrets = list(self._secrets.finish())
            if self._secrets.truncated:
                self._warn(f"more than {len(secrets)} secrets found; the rest not recorded")
        try:
            files, deleted, opaque, parents_of = self._tree.finish()
        except ArchiveError as error:
            raise ArchiveError(f"layer {self.digest}: {error.message}") from error
        for link, inode in self._hardlinks:
            link.take_content_of(inode)
        if self._warnings_dropped:
            self._warnings.append(f"{self._warnings_dropped} more warnings not recorded")
        if self._diff_hash is not None:
            got = f"{self._diff_algorithm}:" + self._diff_hash.hexdigest()
            if got != self._diff_id:
                raise IntegrityError(f"layer {self.digest}: uncompressed content hashes to {got}, "
                                     f"but the image config says diff_id {self._diff_id}")
        return LayerResult(
            digest=self.digest,
            media_type=self._media_type,
            compressed_size=self._received,
            uncompressed_size=self._uncompressed,
            diff_id=self._diff_id or (f"{self._algorithm}:" + self._blob_hash.hexdigest()
                                      if self._decoder.compression == "tar" else None),
            files=files,
            catalog=self._catalog,
            deleted=deleted,
            opaque_dirs=opaque,
            parents_of=parents_of,
            made_dirs=self._tree.made_dirs(),
            entry_count=self._reader.entries,
            warnings=self._warnings,
            secrets=secrets,
            secret_rules=self._secret_rules,
        )

    def _verify_blob(self) -> None:
        if self._received != self._size:
            raise IntegrityError(f"layer {self.digest}: got {self._received} bytes, "
                                 f"its descriptor declares {self._size}")
        got = self._blob_hash.hexdigest()
        if got != self._expected_hex:
            raise IntegrityError(f"layer {self.digest}: digest mismatch, the bytes received "
                                 f"hash to sha256:{got}")

    def _consume(self, piece: bytes) -> None:
        self._uncompressed += len(piece)
        if self._uncompressed > self._limits.max_uncompressed_bytes:
            raise LimitError(f"uncompressed size exceeds {self._limits.max_uncompressed_bytes} bytes")
        if self._diff_hash is not None:
            self._diff_hash.update(piece)
        secrets = self._secrets
        if secrets is not None:
            secrets.scan(piece)
        self._reader.receive_data(piece)
        self._events()
        if secrets is not None:
            secrets.resolve()

    def _events(self) -> None:
        reader = self._reader
        while True:
            event = reader.next_event()
            if type(event) is memoryview:
                self._data(event)
            elif event is ENTRY_END:
                self._end()
            elif event is NEED_DATA or event is END:
                return
            else:
                assert isinstance(event, Entry)
                self._entry(event)
                if event.data is not None:  # complete: the entry came with all of its data
                    self._data(event.data)
                    self._end()

    def _data(self, data: memoryview) -> None:
        """Bytes of the current entry: to its digests, and to its cataloger if one wants it."""
        if self._capture is not None:
            if type(self._capture) is bytearray:
                self._capture += data
            else:
                self._capture.write(data)  # type: ignore[union-attr]
        if self._sniff_path is not None:
            self._sniff(data)
        elif self._scanning is not None:
            self._scan(data)
        hashes = self._hashes
        if hashes is not None:
            hashes[0].update(data)
            hashes[1].update(data)
            hashes[2].update(data)
        elif (current := self._current) is not None:
            if len(data) == current.size:  # the whole file in one piece: most files
                current.md5 = hashlib.md5(data).hexdigest()
                current.sha1 = hashlib.sha1(data).hexdigest()
                current.sha256 = hashlib.sha256(data).hexdigest()
                self._current = None
            else:
                self._hashes = (hashlib.md5(data), hashlib.sha1(data), hashlib.sha256(data))
                if self._secrets is not None:
                    self._secrets.long_file_started()

    def _end(self) -> None:
        """The current entry's data is complete."""
        hashes = self._hashes
        if hashes is not None:
            current = self._current
            assert current is not None
            current.md5 = hashes[0].hexdigest()
            current.sha1 = hashes[1].hexdigest()
            current.sha256 = hashes[2].hexdigest()
            self._hashes = None
        self._current = None
        if self._capture_for is not None:
            self._catalog_file()
        self._sniff_path = None
        if self._scanning is not None:
            self._finish_scan()

    def _warn(self, message: str) -> None:
        if len(self._warnings) < MAX_WARNINGS:
            self._warnings.append(shorten(message, MAX_WARNING_LENGTH))
        else:
            self._warnings_dropped += 1

    def _entry(self, entry: Entry) -> None:
        if self._reader.entries > self._limits.max_entries:
            raise LimitError(f"more than {self._limits.max_entries} entries")
        if entry.typeflag not in RUNTIME_TYPEFLAGS:
            raise ArchiveError(f"entry {shorten(entry.name, 200)!r} at offset {entry.offset} has typeflag "
                               f"{entry.typeflag!r}, which containerd and moby refuse to unpack "
                               f"('unhandled tar header type'): no container runs from this layer")
        path = self._tree.place(entry)
        if path is None:
            return  # a whiteout, an opaque marker, a global header, the root, a refused name
        kind = entry.kind
        # a symlink is always 0777 on Linux (the runtime's chmod skips it)
        record = FileRecord(path, kind, entry.mode if kind is not FileKind.SYMLINK else 0o777, entry.uid,
                            entry.gid, entry.size, entry.mtime, entry.link)
        if kind is FileKind.FILE and self._dispatch is not None:
            cataloger = self._dispatch.match(path)
            if cataloger is not None:
                self._start_capture(path, cataloger, entry.size)
            elif (self._scanner_catalogers and entry.mode & _ANY_EXEC_BIT
                  and entry.size >= MIN_SCANNED_EXECUTABLE):
                self._sniff_path, self._sniff_head = path, b""
        if kind is FileKind.FILE:
            if entry.size:
                self._current = record  # hashed as its data streams past
                if self._secrets is not None:
                    # a sparse file's bytes in the stream are its map and fragments: its
                    # secrets are found there (their line numbers count from that data)
                    self._secrets.add_file(entry.offset + BLOCK, entry.stored, path)
            else:
                record.md5, record.sha1, record.sha256 = _EMPTY_MD5, _EMPTY_SHA1, _EMPTY_SHA256
        elif kind is FileKind.HARDLINK:
            # the runtime removes what stands at the link's path before it looks the target up:
            # a link to itself, into what it replaces or through a symlink there finds nothing
            self._tree.remove(path)
            link = self._tree.link_target(entry)
            if self._tree.whited_out(link):
                self._tree.link_whiteout(path)  # a second name of the whiteout device
                return
            record.link = link
            target = self._tree.get(link)
            if target is not None and target.kind is not FileKind.DIR:
                # One inode: the runtime links it, then applies the link's own header to it
                # (chown, chmod, times), so the target takes the link's owner and mode too.
                inode = self._inodes.get(id(target), target)
                inode.uid, inode.gid, inode.mtime = entry.uid, entry.gid, entry.mtime
                if inode.kind is not FileKind.SYMLINK:
                    inode.mode = entry.mode
                self._inodes[id(record)] = inode
                self._hardlinks.append((record, inode))
            else:
                # The overlayfs snapshotter links within the layer's own directory: the target
                # must be in this layer. Other snapshotters see the lower layers too.
                self._warn(f"{path}: hardlink to {link}, which this layer does not hold as a file "
                           f"(containerd's overlayfs snapshotter refuses the layer; the lower layers' "
                           f"file is reported)")
        self._tree.add(record)

    def _sniff(self, data: memoryview) -> None:
        """The first bytes of an executable: start the scanners its magic number calls for."""
        assert self._dispatch is not None and self._sniff_path is not None
        want = self._dispatch.magic_length
        held = self._sniff_head
        head = held + bytes(data[:want - len(held)])
        if len(head) < want:
            self._sniff_head = head  # a tiny first piece: wait for more
            return
        path, self._sniff_path, self._sniff_head = self._sniff_path, None, b""
        chosen = [c for c in self._scanner_catalogers if head.startswith(c.magic)]
        if not chosen:
            return
        self._scanning = [(c, c.scanner(path)) for c in chosen]  # type: ignore[misc]
        self._scanning_path = path
        if held:
            self._scan(memoryview(held))
        self._scan(data)

    def _scan(self, data: memoryview) -> None:
        assert self._scanning is not None
        for cataloger, scanner in self._scanning:
            try:
                scanner.feed(data)
            except Exception as exc:  # noqa: BLE001 - bad content degrades, it does not abort
                self._warn(f"{self._scanning_path}: the {cataloger.name} scanner failed: "
                           f"{type(exc).__name__}: {exc}")
                self._scanning = [pair for pair in self._scanning if pair[1] is not scanner] or None
                if self._scanning is None:
                    return

    def _finish_scan(self) -> None:
        assert self._scanning is not None
        scanning, self._scanning = self._scanning, None
        path = self._scanning_path
        for cataloger, scanner in scanning:
            try:
                result = scanner.finish()
            except Exception as exc:  # noqa: BLE001
                self._warn(f"{path}: the {cataloger.name} scanner failed: {type(exc).__name__}: {exc}")
                continue
            if result is not None:
                # a scanner may name what it recognized (go-module-binary, ...)
                self._keep(path, getattr(scanner, "found_by", None) or cataloger.name, result)

    def _keep(self, path: str, cataloger: str, result: ParseResult) -> None:
        for warning in result.warnings:
            self._warn(warning)
        result.warnings = []
        if result.packages or result.claims or result.distro is not None:
            self._catalog.append(CatalogEntry(path=path, cataloger=cataloger, result=result))

    def _start_capture(self, path: str, cataloger: Cataloger, size: int) -> None:
        limit = min(cataloger.max_bytes, self._limits.max_catalog_file)
        if size > limit:
            self._warn(f"{path}: {size} bytes, more than the {cataloger.name} cataloger reads "
                       f"({limit}); not cataloged")
            return
        if size > self._limits.max_memory_capture:
            if self._spool is None:
                self._warn(f"{path}: {size} bytes, too large to catalog in memory; not cataloged")
                return
            self._capture = self._spool()
        else:
            self._capture = bytearray()
        self._capture_for = (path, cataloger)

    def _catalog_file(self) -> None:
        """Parse a collected file. A parser's failure is a warning naming the file: the
        layer's other files and the other catalogers go on."""
        assert self._capture_for is not None and self._capture is not None
        path, cataloger = self._capture_for
        capture, self._capture, self._capture_for = self._capture, None, None
        try:
            data = capture if type(capture) is bytearray else capture.view()  # type: ignore[union-attr]
            result = cataloger.parse(path, data)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - bad content degrades, it does not abort
            self._warn(f"{path}: the {cataloger.name} cataloger failed: {type(exc).__name__}: {exc}")
            return
        finally:
            if type(capture) is not bytearray:
                capture.close()  # type: ignore[union-attr]
        self._keep(path, cataloger.name, result)
