"""Executables: the module list the Go linker embeds (Go >= 1.18) and the crate list
``cargo auditable`` embeds, found in one streaming pass that never holds the whole file.

Sans-IO: ``BinaryScanner(path)``; ``feed(chunk)`` with consecutive chunks of any size;
``finish()`` gives the ParseResult (None when the file holds neither).

What is searched for:
- Go: the build info blob, ``b"\\xff Go buildinf:"`` at a 16-byte aligned offset, a 32-byte
  header (byte 14: pointer size, byte 15: flags) and, when flag 2 is set (Go >= 1.18), the
  toolchain version and the module text inline as uvarint-length-prefixed strings (Go's
  src/debug/buildinfo/buildinfo.go). Older blobs hold pointers into the data segment, which
  a stream has passed: they give a warning and no packages.
- Rust: the ``.dep-v0`` section of cargo-auditable, a zlib stream of JSON that starts with
  ``{"packages":`` (https://github.com/rust-secure-code/cargo-auditable). Each zlib header
  cargo-auditable writes (``AUDITABLE_ZLIB_HEADER``) is a candidate: a few bytes are inflated
  to see whether the JSON starts there; a match is then inflated to its end as the stream
  goes on, up to ``MAX_AUDITABLE_JSON_BYTES``.

Cost: every executable of an image passes through here, so only C-level searches
(``bytearray.find``) touch the bytes. For ELF files the program headers at the start of the
file narrow the search: the Go blob is in a writable PT_LOAD segment (where Go's own reader
looks for it), and cargo-auditable's section is not loaded (it sets no SHF_ALLOC flag), so
linkers place it after the last loaded byte. Chunks outside those ranges are skipped
without a copy. Other formats (PE, Mach-O, unparsable ELF) are searched whole.
"""

from __future__ import annotations

import struct
import zlib
from enum import Enum
from typing import Final

from .base import Cataloger, ParseResult
from .golang import parse_go_buildinfo
from .rust import parse_cargo_auditable

__all__ = [
    "AUDITABLE_ZLIB_HEADER",
    "BINARY",
    "EXECUTABLE_MAGIC",
    "GO_BINARY_CATALOGER",
    "GO_BUILDINFO_MAGIC",
    "MAX_AUDITABLE_JSON_BYTES",
    "MAX_GO_BUILDINFO_BYTES",
    "MAX_HEADER_BYTES",
    "RUST_BINARY_CATALOGER",
    "BinaryScanner",
]

GO_BINARY_CATALOGER: Final = "go-module-binary"
RUST_BINARY_CATALOGER: Final = "rust-cargo-auditable-binary"

GO_BUILDINFO_MAGIC: Final = b"\xff Go buildinf:"
_GO_ALIGN: Final = 16
_GO_HEADER_SIZE: Final = 32
_GO_INLINE_STRINGS: Final = 2  # flag bit of Go >= 1.18: the strings follow the header
#: The build info of Kubernetes-sized programs (~500 modules) is under 100 KiB.
MAX_GO_BUILDINFO_BYTES: Final = 2 * 1024 * 1024
#: The sentinels around Go's module text (cmd/go/internal/modload infoStart / infoEnd).
_GO_SENTINEL_SIZE: Final = 16

#: cargo-auditable compresses with miniz_oxide at level 7 (zlib FLEVEL 2, 32 KiB window),
#: so its stream always starts with these two bytes. Searching for the rarer second byte
#: keeps the search in C; the other FLEVEL bytes (0x01 above all) are far too common in
#: machine code to probe, and no cargo-auditable release writes them.
AUDITABLE_ZLIB_HEADER: Final = b"\x78\x9c"
_AUDITABLE_PREFIX: Final = b'{"packages":'
#: Compressed bytes a candidate may take to yield the prefix: a dynamic Huffman block header
#: is about 100 bytes; anything that needs this many is not the stream.
MAX_PROBE_BYTES: Final = 4096
#: uv's 567 crates inflate to 54 KiB of JSON; ten times the largest known graph is plenty.
MAX_AUDITABLE_JSON_BYTES: Final = 8 * 1024 * 1024

#: An ELF whose program headers end beyond this offset is searched whole (they normally
#: follow the 64-byte ELF header).
MAX_HEADER_BYTES: Final = 64 * 1024
#: Small feeds are gathered up to this size before a search: one search call per 1-byte
#: chunk would cost more than the search itself.
SCAN_BLOCK: Final = 64 * 1024

_EVERYTHING: Final = ((0, 1 << 62),)
_PT_LOAD: Final = 1
_PF_W: Final = 2


class _Verdict(Enum):
    REJECT = "reject"  #: not what we look for; search on
    WAIT = "wait"  #: maybe; decide when more bytes have come
    FOUND = "found"


Ranges = tuple[tuple[int, int], ...]


def _elf_ranges(header: bytes | bytearray, complete: bool) -> tuple[Ranges, Ranges] | None:
    """(Go ranges, Rust ranges) of file offsets for an ELF file; everything when the header is
    not usable; None when more bytes are needed to decide."""
    if len(header) < 64:
        return None if not complete and header[:4] == b"\x7fELF"[:len(header)] else (_EVERYTHING, _EVERYTHING)
    if header[:4] != b"\x7fELF" or header[4] not in (1, 2) or header[5] not in (1, 2):
        return _EVERYTHING, _EVERYTHING
    order = "<" if header[5] == 1 else ">"
    if header[4] == 2:
        (phoff,) = struct.unpack_from(order + "Q", header, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", header, 0x36)
        layout, minimum = order + "IIQxxxxxxxxxxxxxxxxQ", 56  # type, flags, offset, (vaddr, paddr), filesz
    else:
        (phoff,) = struct.unpack_from(order + "I", header, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", header, 0x2A)
        layout, minimum = order + "IIxxxxxxxxIxxxxI", 32  # type, offset, (vaddr, paddr), filesz, (memsz), flags
    end = phoff + phnum * phentsize
    if phnum in (0, 0xFFFF) or phentsize < minimum or end > MAX_HEADER_BYTES:
        return _EVERYTHING, _EVERYTHING
    if len(header) < end:
        return None if not complete else (_EVERYTHING, _EVERYTHING)
    loads: list[tuple[int, int, int]] = []
    for index in range(phnum):
        fields = struct.unpack_from(layout, header, phoff + index * phentsize)
        if header[4] == 2:
            p_type, flags, offset, size = fields
        else:
            p_type, offset, size, flags = fields
        if p_type == _PT_LOAD and size:
            loads.append((offset, offset + size, flags))
    if not loads:
        return _EVERYTHING, _EVERYTHING
    writable = tuple(sorted((start, stop) for start, stop, flags in loads if flags & _PF_W))
    return writable or _EVERYTHING, ((max(stop for _, stop, _ in loads), _EVERYTHING[0][1]),)


def _uvarint(data: bytes | bytearray, pos: int, end: int) -> tuple[int, int] | None:
    """encoding/binary.Uvarint: (value, next position), or None when it runs past ``end``."""
    value = shift = 0
    for index in range(pos, min(end, pos + 10)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index + 1
        shift += 7
    return None


class BinaryScanner:
    """Finds Go build info or cargo-auditable data in one executable fed as a stream."""

    def __init__(self, path: str) -> None:
        self.path = path
        #: after finish(): which cataloger's packages the result holds
        self.found_by: str | None = None
        self._offset = 0  # file offset just past the bytes fed so far
        self._buf = bytearray()  # file bytes [_buf_start, _offset) still to be searched
        self._buf_start = 0
        self._layout_known = False
        self._go_ranges: Ranges = _EVERYTHING
        self._rust_ranges: Ranges = _EVERYTHING
        self._go_next = 0  # candidates starting before these offsets have been decided
        self._rust_next = 0
        self._go_active = True
        self._rust_active = True
        self._go_legacy = False  # a pre-1.18 blob was seen
        self._inflater: zlib._Decompress | None = None
        self._json = bytearray()
        self._result: ParseResult | None = None
        self._warnings: list[str] = []
        self._finished = False

    # -- the stream --------------------------------------------------------------------------

    def feed(self, data: memoryview | bytes | bytearray) -> None:
        """Take the next chunk of the file (any size)."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        view = memoryview(data).cast("B")
        if not self._layout_known and view:
            # gather the file header first (never more of a big chunk than the header needs)
            head = view[:max(0, MAX_HEADER_BYTES - len(self._buf))]
            self._buf += head
            self._offset += len(head)
            self._decide_layout(complete=False)
            view = view[len(head):]
        start, self._offset = self._offset, self._offset + len(view)
        if self._inflater is not None:
            self._inflate(view)
            return
        if not (self._go_active or self._rust_active) or not self._layout_known:
            return
        if not self._buf and not self._wanted(start, self._offset):
            self._buf_start = self._offset  # nothing here can hold what we look for: no copy
            return
        if not self._buf:
            self._buf_start = start
        self._buf += view
        if len(self._buf) >= SCAN_BLOCK:
            self._scan(final=False)

    def finish(self) -> ParseResult | None:
        """Decide what is still pending; the packages found, or None when there are none."""
        if not self._finished:
            self._finished = True
            if not self._layout_known:
                self._decide_layout(complete=True)
            if self._inflater is None and (self._go_active or self._rust_active):
                self._scan(final=True)
            if self._inflater is not None:
                self._warn(f"{self.path}: cargo-auditable data ends before its zlib stream does; skipped")
                self._inflater = None
            if self._result is None and self._go_legacy:
                self._warn(f"{self.path}: Go < 1.18 build info not supported (it points into the "
                           "data segment, which a stream cannot revisit); no Go packages reported")
            self._buf, self._json = bytearray(), bytearray()
            self._result = self._result or ParseResult()
            self._result.warnings.extend(self._warnings)
        return self._result if self._result is not None and (self._result.packages or self._result.warnings) else None

    # -- where to look -----------------------------------------------------------------------

    def _decide_layout(self, complete: bool) -> None:
        ranges = _elf_ranges(self._buf, complete or len(self._buf) >= MAX_HEADER_BYTES)
        if ranges is not None:
            self._go_ranges, self._rust_ranges = ranges
            self._layout_known = True

    def _wanted(self, start: int, stop: int) -> bool:
        for active, ranges in ((self._go_active, self._go_ranges), (self._rust_active, self._rust_ranges)):
            if active and any(low < stop and start < high for low, high in ranges):
                return True
        return False

    def _scan(self, final: bool) -> None:
        if self._go_active:
            self._scan_go(final)
        if self._rust_active and self._inflater is None:
            self._scan_rust(final)
        self._trim()

    def _trim(self) -> None:
        """Drop the bytes every active search has decided."""
        keep = self._offset
        if self._go_active:
            keep = min(keep, self._go_next)
        if self._rust_active and self._inflater is None:
            keep = min(keep, self._rust_next)
        drop = keep - self._buf_start
        if drop >= len(self._buf):
            self._buf.clear()
            self._buf_start = self._offset
        elif drop > 0:
            del self._buf[:drop]  # CPython moves the start of a bytearray, no copy
            self._buf_start = keep

    # -- Go ----------------------------------------------------------------------------------

    def _scan_go(self, final: bool) -> None:
        buf, base, end = self._buf, self._buf_start, self._offset
        width = len(GO_BUILDINFO_MAGIC)
        for low, high in self._go_ranges:
            position, stop = max(low, self._go_next, base), min(high, end)
            while position < stop:
                index = buf.find(GO_BUILDINFO_MAGIC, position - base, stop - base + width - 1)
                if index < 0:
                    break
                verdict = self._try_go(base + index, final)
                if verdict is _Verdict.WAIT:
                    self._go_next = base + index
                    return
                if verdict is _Verdict.FOUND:
                    return
                position = base + index + 1
        # a magic cut by the end of the buffer is found again next time
        self._go_next = max(self._go_next, end if final else end - width + 1)

    def _try_go(self, offset: int, final: bool) -> _Verdict:
        if offset % _GO_ALIGN:
            return _Verdict.REJECT
        buf, start = self._buf, offset - self._buf_start
        available = len(buf) - start
        if available < _GO_HEADER_SIZE:
            return _Verdict.REJECT if final else _Verdict.WAIT
        pointer_size, flags = buf[start + 14], buf[start + 15]
        if pointer_size not in (4, 8):
            return _Verdict.REJECT
        if not flags & _GO_INLINE_STRINGS:
            if flags in (0, 1):  # little or big endian pointers: the pre-1.18 layout
                self._go_legacy = True
            return _Verdict.REJECT
        limit = start + min(available, MAX_GO_BUILDINFO_BYTES)
        strings: list[bytes] = []
        position = start + _GO_HEADER_SIZE
        for _ in range(2):
            decoded = _uvarint(buf, position, limit)
            if decoded is None or decoded[1] + decoded[0] > limit:
                if available >= MAX_GO_BUILDINFO_BYTES or (decoded and decoded[0] > MAX_GO_BUILDINFO_BYTES):
                    self._warn(f"{self.path}: Go build info larger than {MAX_GO_BUILDINFO_BYTES} bytes; skipped")
                    return _Verdict.REJECT
                return _Verdict.REJECT if final else _Verdict.WAIT
            length, position = decoded
            strings.append(bytes(buf[position:position + length]))
            position += length
        version = strings[0].decode("utf-8", "replace")
        if not version.startswith(("go", "devel")):
            return _Verdict.REJECT  # not a toolchain version: a stray copy of the magic
        modinfo = strings[1]
        if len(modinfo) >= 2 * _GO_SENTINEL_SIZE + 1 and modinfo[-_GO_SENTINEL_SIZE - 1] == 0x0A:
            modinfo = modinfo[_GO_SENTINEL_SIZE:-_GO_SENTINEL_SIZE]
        else:
            modinfo = b""  # built outside module mode: only the version is known
        self._found(GO_BINARY_CATALOGER, parse_go_buildinfo(self.path, version, modinfo.decode("utf-8", "replace")))
        return _Verdict.FOUND

    # -- Rust --------------------------------------------------------------------------------

    def _scan_rust(self, final: bool) -> None:
        buf, base, end = self._buf, self._buf_start, self._offset
        second = AUDITABLE_ZLIB_HEADER[1]
        for low, high in self._rust_ranges:
            position, stop = max(low, self._rust_next, base), min(high, end)
            if position >= stop:
                continue
            # the second header byte is rarer than the first: search it, then look back
            index = buf.find(second, position - base + 1, stop - base + 1)
            while index >= 0:
                if buf[index - 1] == AUDITABLE_ZLIB_HEADER[0]:
                    verdict = self._try_rust(base + index - 1, final)
                    if verdict is _Verdict.WAIT:
                        self._rust_next = base + index - 1
                        return
                    if verdict is _Verdict.FOUND:
                        return
                index = buf.find(second, index + 1, stop - base + 1)
        self._rust_next = max(self._rust_next, end if final else end - 1)

    def _try_rust(self, offset: int, final: bool) -> _Verdict:
        start = offset - self._buf_start
        window = bytes(self._buf[start:start + MAX_PROBE_BYTES])
        probe = zlib.decompressobj()
        try:
            out = probe.decompress(window, len(_AUDITABLE_PREFIX))
        except zlib.error:
            return _Verdict.REJECT
        if out != _AUDITABLE_PREFIX[:len(out)] or probe.eof:
            return _Verdict.REJECT
        if len(out) < len(_AUDITABLE_PREFIX):
            more_may_come = not final and len(window) < MAX_PROBE_BYTES
            return _Verdict.WAIT if more_may_come else _Verdict.REJECT
        self._go_active = False  # a Rust program: no Go build info to look for
        self._inflater = zlib.decompressobj()
        self._inflate(memoryview(bytes(self._buf[start:])))  # a copy: finding clears the buffer
        return _Verdict.FOUND

    def _inflate(self, data: memoryview) -> None:
        inflater = self._inflater
        assert inflater is not None
        try:
            self._json += inflater.decompress(data, MAX_AUDITABLE_JSON_BYTES + 1 - len(self._json))
        except zlib.error as exc:
            self._stop_rust(f"{self.path}: cargo-auditable data is corrupt ({exc}); skipped")
            return
        if inflater.eof:
            json_bytes, self._json = bytes(self._json), bytearray()
            self._inflater = None
            self._found(RUST_BINARY_CATALOGER, parse_cargo_auditable(self.path, json_bytes))
        elif len(self._json) > MAX_AUDITABLE_JSON_BYTES:
            self._stop_rust(f"{self.path}: cargo-auditable data inflates past {MAX_AUDITABLE_JSON_BYTES} bytes; skipped")

    def _warn(self, warning: str) -> None:
        # Every aligned copy of the Go magic may be a candidate: one warning per candidate
        # would be a warning per 16 bytes of a hostile file. The same words are said once.
        if warning not in self._warnings:
            self._warnings.append(warning)

    def _stop_rust(self, warning: str) -> None:
        self._warn(warning)
        self._inflater = None
        self._json = bytearray()
        self._rust_active = False
        self._buf.clear()
        self._buf_start = self._offset

    # -- done --------------------------------------------------------------------------------

    def _found(self, cataloger: str, result: ParseResult) -> None:
        self._result, self.found_by = result, cataloger
        self._go_active = self._rust_active = False  # one toolchain per executable
        self._buf.clear()
        self._buf_start = self._offset


#: ELF, PE ("MZ"), Mach-O (32/64-bit, either byte order) and universal Mach-O
EXECUTABLE_MAGIC: Final = (b"\x7fELF", b"MZ", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
                           b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")

BINARY: Final = Cataloger(name="binary", scanner=BinaryScanner, magic=EXECUTABLE_MAGIC)
