"""A sans-IO, push-style tar reader: feed bytes in, take entry and data events out.

It reads a layer exactly as Go's ``archive/tar`` does, because containerd and moby unpack
layers with it: whatever the container gets is what this reader reports, and where Go's
reader fails, this one fails too (``tests/unit/test_tar_differential.py`` holds the two
readers to that, on generated hostile streams). In particular:

- only typeflag ``\\0`` with a trailing slash is a directory; any other type keeps its data;
- a PAX extended header (``x``) applies to the next entry only, and a second one replaces
  the first; a global header (``g``) applies to no entry: it is an entry of its own, typeflag
  ``g``, that the runtime ignores; a GNU long name or link overrides PAX's path or linkpath;
- a zero block must be followed by a second one (the end-of-archive marker) or the stream
  is corrupt; whatever follows the marker is dropped unread;
- numbers are parsed as strictly as Go parses them (octal digits only, base-256 with
  overflow checks, PAX decimals with an optional sign and nothing else);
- GNU sparse files in PAX form (0.0, 0.1, 1.0) come out as their logical content, holes
  as zero bytes.

It never touches a file or a socket; the caller decides where bytes come from.

Usage::

    reader = TarReader()
    reader.receive_data(chunk)      # b"" means end of input
    while (event := reader.next_event()) is not NEED_DATA:
        ...                          # Entry, memoryview (file data), ENTRY_END or END

Data events are ``memoryview`` slices of the bytes that were fed in (no copy): use them
before feeding more data. When an entry's data is already at hand in full, it comes with
the entry as ``entry.data`` and no data events or ENTRY_END follow (most files are small:
this saves two events per file). Bounded in space for any input: metadata records (long
names, PAX headers) are limited by ``max_meta_size``, sparse maps by ``MAX_SPARSE_ENTRIES``;
file data is never buffered.
"""

from __future__ import annotations

import posixpath
import struct
import zlib
from collections import deque
from typing import Final

from ..errors import ArchiveError, LimitError
from ..model import FileKind

__all__ = ["END", "ENTRY_END", "NEED_DATA", "Entry", "TarReader", "normalize_path", "RUNTIME_TYPEFLAGS"]

BLOCK: Final = 512
_ZERO_BLOCK: Final = bytes(BLOCK)
_SPACES8: Final = b" " * 8
_SPACES8_SUM: Final = sum(_SPACES8)

#: Long names and PAX records are metadata. Go's archive/tar refuses special files over
#: 1 MiB (``maxSpecialFileSize``, "archive/tar: header field too long"): so do we.
MAX_META_SIZE: Final = 1 << 20
#: Fragments of one sparse file. Go trusts the count once the map's bytes are read; a map
#: in the data section can be gigabytes, so we bound it: real sparse files (VM images,
#: databases) have a few thousand fragments.
MAX_SPARSE_ENTRIES: Final = 100_000
#: The bytes of a sparse map kept in the data section (GNU 1.0): room for the fragments above
#: at 20 digits a number. Go reads any length, leading zeros and all.
MAX_SPARSE_MAP_SIZE: Final = 8 << 20
#: Holes are read back as zero bytes; they come from this buffer, a slice at a time.
_ZEROS: Final = memoryview(bytes(256 * 1024))
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: next_event() needs more input.
NEED_DATA: Final = _Sentinel("NEED_DATA")
#: the data of the current entry is complete.
ENTRY_END: Final = _Sentinel("ENTRY_END")
#: the archive ended (end-of-archive marker or end of input on an entry boundary).
END: Final = _Sentinel("END")

_KINDS: Final = {
    "0": FileKind.FILE,
    "1": FileKind.HARDLINK,
    "2": FileKind.SYMLINK,
    "3": FileKind.CHAR,
    "4": FileKind.BLOCK,
    "5": FileKind.DIR,
    "6": FileKind.FIFO,
}
#: The typeflags containerd and moby unpack (``createTarFile``); "g" they skip. Any other
#: ("7", "S", "V", vendor letters, ...) fails the layer there: "unhandled tar header type".
RUNTIME_TYPEFLAGS: Final = frozenset(_KINDS) | {"g"}
# Go's isHeaderOnlyType: these carry no data whatever their size field says.
_HEADER_ONLY: Final = frozenset("123456")
_META_TYPES: Final = frozenset({b"L", b"K", b"x", b"g"})
# name mode uid gid size mtime chksum typeflag linkname magic version uname gname devmajor
# devminor, then 167 bytes that each format uses differently (prefix, times, sparse map)
_FIELDS: Final = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s167s")
_OCTAL_DIGITS: Final = frozenset(b"01234567")
_OCTAL_FIELD: Final = b"01234567 \0"  # what a plain octal field holds
_DECIMAL_DIGITS: Final = frozenset(b"0123456789")

_FORMAT_V7, _FORMAT_USTAR, _FORMAT_GNU, _FORMAT_STAR = range(4)
_TYPEFLAGS: Final = {bytes([byte]): chr(byte) for byte in range(256)}  # as bytes.decode("latin-1")


class Entry:
    """One archive member's header, after long-name and PAX records are applied."""

    __slots__ = ("path", "kind", "typeflag", "name", "linkname", "mode", "uid", "gid", "size",
                 "mtime", "link", "devmajor", "devminor", "sparse", "offset", "stored", "data")

    def __init__(self, path: str, kind: FileKind, mode: int, uid: int, gid: int, size: int,
                 mtime: int, link: str | None, devmajor: int, devminor: int, sparse: bool,
                 offset: int, *, typeflag: str = "0", name: str = "", linkname: str = "") -> None:
        self.path = path  #: normalized, absolute, "/" for the root
        self.kind = kind  #: FILE for a typeflag the runtime does not unpack (see typeflag)
        #: the typeflag as Go reports it ("\\0" already made "0" or "5"); "g": a global header
        self.typeflag = typeflag
        self.name = name  #: the name as the archive gives it, before normalization
        self.linkname = linkname  #: the link name as the archive gives it, for every type
        self.mode = mode  #: permission bits incl. setuid/setgid/sticky
        self.uid = uid
        self.gid = gid
        self.size = size  #: bytes of data that follow (0 for non-files; logical size if sparse)
        self.mtime = mtime
        self.link = link  #: symlink target as written; hardlink target normalized
        self.devmajor = devmajor
        self.devminor = devminor
        self.sparse = sparse  #: a GNU sparse file: data events give its logical content
        self.offset = offset  #: byte offset of the header in the uncompressed stream
        #: bytes of data stored after the header (size, or a sparse file's map and fragments)
        self.stored = size
        #: the entry's whole data when it was at hand (then no data events and no ENTRY_END
        #: follow); None: data events and ENTRY_END follow
        self.data: memoryview | None = None

    def __repr__(self) -> str:
        return f"Entry({self.path!r}, {self.typeflag!r}, size={self.size})"


def normalize_path(name: str) -> str:
    """Absolute, normalized, no trailing slash; ".." cannot climb above the root (as
    containerd's ``filepath.Clean`` and root-confined join do)."""
    if name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    # The common case needs no normpath: no empty, "." or ".." components.
    if name and name[0] not in "./" and "//" not in name and "/." not in name:
        return "/" + name
    path = posixpath.normpath("/" + name.lstrip("/"))
    # normpath keeps a leading "//" (POSIX allows it to mean something else); we do not.
    return path if not path.startswith("//") else "/" + path.lstrip("/")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _cstr(raw: bytes) -> bytes:
    """Go's parseString: up to the first NUL."""
    end = raw.find(b"\0")
    return raw if end < 0 else raw[:end]


class _BadNumber(Exception):
    """A numeric field Go's parser refuses (``ErrHeader``)."""


def _octal(field: bytes) -> int:
    """Go's parseOctal: trim spaces and NULs at both ends, stop at a NUL, octal digits only."""
    text = field.strip(b" \0")
    if not text:
        return 0
    text = _cstr(text)
    if not _OCTAL_DIGITS.issuperset(text):
        raise _BadNumber
    return int(text, 8)


def _numeric(field: bytes) -> int:
    """Go's parseNumeric: base-256 (two's complement, high bit set) or octal."""
    if field and field[0] & 0x80:
        invert = 0xFF if field[0] & 0x40 else 0
        value = 0
        for i, byte in enumerate(field):
            byte ^= invert
            if i == 0:
                byte &= 0x7F
            if value >> 56:
                raise _BadNumber  # overflow
            value = value << 8 | byte
        if value >> 63:
            raise _BadNumber
        return ~value if invert else value
    text = field.strip(b" \0")
    if text.isdigit():  # the common case
        if not _OCTAL_DIGITS.issuperset(text):
            raise _BadNumber
        return int(text, 8)
    return _octal(field)


def _decimal(text: bytes) -> int:
    """Go's strconv.ParseInt(text, 10, 64): an optional sign, decimal digits, int64 range."""
    digits = text[1:] if text[:1] in (b"+", b"-") else text
    if not digits or not _DECIMAL_DIGITS.issuperset(digits):
        raise _BadNumber
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise _BadNumber
    return value


def _pax_seconds(text: bytes) -> int:
    """Go's parsePAXTime, as whole seconds (what ModTime.Unix() gives: rounded down)."""
    seconds, dot, fraction = text.partition(b".")
    value = _decimal(seconds)
    if dot and fraction:
        if not _DECIMAL_DIGITS.issuperset(fraction):
            raise _BadNumber
        if seconds.startswith(b"-") and fraction[:9].strip(b"0"):
            value -= 1  # time.Unix(secs, -nsecs) normalizes to the second below
    return value


#: PAX keys that change an entry (Go's mergePAX); the rest are only validated.
_PAX_KEYS: Final = frozenset({b"path", b"linkpath", b"uid", b"gid", b"size", b"mtime", b"atime", b"ctime"})
_PAX_NAME_KEYS: Final = frozenset({b"path", b"linkpath", b"uname", b"gname"})
_SPARSE_PREFIX: Final = b"GNU.sparse."


def _parse_pax(data: bytes, offset: int) -> dict[bytes, bytes]:
    """Go's parsePAX: every record "LEN key=value\\n" valid, or the header is refused.
    Keeps the records that matter to an entry (path, ids, times, size, GNU sparse)."""
    records: dict[bytes, bytes] = {}
    sparse_map: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        space = data.find(b" ", pos)
        if space < 0:
            raise ArchiveError(f"invalid PAX record in the header at offset {offset}")
        try:
            length = _decimal(data[pos:space])
        except _BadNumber:
            raise ArchiveError(f"invalid PAX record length in the header at offset {offset}") from None
        if length < 5 or length > end - pos or length <= space - pos + 1:
            raise ArchiveError(f"invalid PAX record length in the header at offset {offset}")
        record_end = pos + length
        if data[record_end - 1] != 0x0A:  # "\n"
            raise ArchiveError(f"PAX record not ended by a newline in the header at offset {offset}")
        equals = data.find(b"=", space + 1, record_end - 1)
        if equals < 0 or equals == space + 1:
            raise ArchiveError(f"invalid PAX record in the header at offset {offset}")
        key = data[space + 1:equals]
        value = data[equals + 1:record_end - 1]
        if b"\0" in (value if key in _PAX_NAME_KEYS else key):
            raise ArchiveError(f"NUL byte in the PAX record {_decode(_cstr(key))!r} in the header at offset {offset}")
        pos = record_end
        if key == b"GNU.sparse.offset" or key == b"GNU.sparse.numbytes":
            # GNU sparse 0.0: alternating records, gathered into a 0.1-style map as Go does
            want = b"GNU.sparse.offset" if len(sparse_map) % 2 == 0 else b"GNU.sparse.numbytes"
            if key != want or b"," in value:
                raise ArchiveError(f"invalid GNU sparse record in the PAX header at offset {offset}")
            if len(sparse_map) >= 2 * MAX_SPARSE_ENTRIES:
                raise LimitError(f"sparse map of more than {MAX_SPARSE_ENTRIES} fragments in the PAX header "
                                 f"at offset {offset}")
            sparse_map.append(value)
        elif key in _PAX_KEYS or key.startswith(_SPARSE_PREFIX):
            records[key] = value
    if sparse_map:
        records[b"GNU.sparse.map"] = b",".join(sparse_map)
    return records


class _Meta:
    """A metadata record being collected: GNU long name/link or a PAX header."""

    __slots__ = ("kind", "data", "remaining", "padding", "offset", "name")

    def __init__(self, kind: bytes, size: int, offset: int, name: str) -> None:
        self.kind = kind
        self.data = bytearray()
        self.remaining = size
        self.padding = -size % BLOCK
        self.offset = offset
        self.name = name  #: a global header's own name (it becomes an entry)


class _Sparse:
    """The logical content of a sparse file: data fragments (offset, length) and holes."""

    __slots__ = ("fragments", "index", "position", "size", "physical", "in_fragment")

    def __init__(self, fragments: list[tuple[int, int]], size: int, physical: int) -> None:
        self.fragments = [f for f in fragments if f[1]]  # empty fragments are skipped
        self.index = 0
        self.position = 0  # logical bytes produced
        self.size = size
        self.physical = physical  # data bytes left in the archive
        self.in_fragment = 0  # bytes left of the current data fragment


_HEADER, _DATA, _SKIP, _META, _SPARSE_MAP, _SPARSE, _ZERO, _DONE = range(8)


class TarReader:
    """Push parser for a tar stream. See the module docstring for the protocol."""

    def __init__(self, *, max_meta_size: int = MAX_META_SIZE, max_hole_bytes: int | None = None) -> None:
        self._max_meta_size = max_meta_size
        self._max_hole_bytes = max_hole_bytes
        self._chunks: deque[memoryview] = deque()
        self._buf = memoryview(b"")
        self._pos = 0
        self._eof = False
        self._state = _HEADER
        self._remaining = 0  # data bytes left of the current entry, or bytes to skip
        self._padding = 0  # padding bytes after the current data
        self._offset = 0  # stream offset of self._buf[0]
        self._meta: _Meta | None = None
        # what metadata records say about the next entry (Go's paxHdrs, gnuLongName/Link)
        self._pax: dict[bytes, bytes] = {}
        self._long_name = ""
        self._long_link = ""
        self._sparse: _Sparse | None = None
        self._sparse_entry: Entry | None = None
        self._sparse_map = bytearray()
        self._sparse_lines = 0
        self.hole_bytes = 0  #: zero bytes produced for sparse holes so far
        self.entries = 0

    @property
    def offset(self) -> int:
        """Bytes of the stream consumed so far."""
        return self._offset + self._pos

    # -- input -------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add input. ``b""`` marks the end of input."""
        if self._eof:
            if data:
                raise RuntimeError("receive_data() after end of input")
            return
        if not data:
            self._eof = True
            return
        if self._state == _DONE:
            return  # after the end-of-archive marker: dropped unread, as the runtime does
        self._chunks.append(memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data))

    def _advance(self) -> bool:
        """Make the current buffer non-empty; False if no input is available."""
        while self._pos >= len(self._buf):
            if not self._chunks:
                return False
            self._offset += len(self._buf)
            self._buf = self._chunks.popleft()
            self._pos = 0
        return True

    def _available(self) -> int:
        return len(self._buf) - self._pos + sum(len(c) for c in self._chunks)

    def _take(self, n: int) -> bytes:
        """Exactly n bytes, copied; the caller checked they are available."""
        pos, buf = self._pos, self._buf
        if pos + n <= len(buf):
            self._pos = pos + n
            return bytes(buf[pos:pos + n])
        parts = []
        while n:
            self._advance()
            step = min(n, len(self._buf) - self._pos)
            parts.append(self._buf[self._pos:self._pos + step])
            self._pos += step
            n -= step
        return b"".join(parts)

    def _skip(self) -> bool:
        """Skip self._remaining bytes; True when done."""
        while self._remaining:
            if not self._advance():
                return False
            step = min(self._remaining, len(self._buf) - self._pos)
            self._pos += step
            self._remaining -= step
        return True

    def _truncated(self) -> ArchiveError:
        return ArchiveError(f"tar stream truncated at offset {self.offset}")

    def _block(self) -> bytes | _Sentinel:
        """The next header block; NEED_DATA; or END when the input ends on a block boundary
        (no end-of-archive marker: common in layers, and harmless, as in Go)."""
        if self._pos + BLOCK > len(self._buf) and self._available() < BLOCK:
            if not self._eof:
                return NEED_DATA
            if self._available() == 0:
                return self._done()
            raise self._truncated()
        return self._take(BLOCK)

    def _done(self) -> _Sentinel:
        self._state = _DONE
        self._chunks.clear()
        self._buf = memoryview(b"")
        self._pos = 0
        return END

    # -- events ------------------------------------------------------------------------

    def next_event(self) -> Entry | memoryview | _Sentinel:
        """The next event, or NEED_DATA. Raises ArchiveError or LimitError on bad input."""
        while True:
            state = self._state
            if state == _DATA:
                if not self._remaining:
                    self._state = _SKIP
                    self._remaining = self._padding
                    return ENTRY_END
                if not self._advance():
                    if self._eof:
                        raise self._truncated()
                    return NEED_DATA
                pos = self._pos
                end = min(pos + self._remaining, len(self._buf))
                self._pos = end
                self._remaining -= end - pos
                return self._buf[pos:end]
            if state == _HEADER:
                block = self._block()
                if type(block) is not bytes:
                    return block
                event = self._header(block)
                if event is not None:
                    return event
            elif state == _SKIP:
                if not self._skip():
                    if self._eof:
                        # Go reads missing padding at the very end as the end of the archive.
                        return self._done()
                    return NEED_DATA
                self._state = _HEADER
            elif state == _META:
                if not self._collect_meta():
                    if self._eof:
                        raise self._truncated()
                    return NEED_DATA
                meta = self._meta
                assert meta is not None
                self._meta = None
                self._state = _SKIP
                self._remaining = meta.padding
                if meta.kind == b"g":
                    return self._global_entry(meta)
            elif state == _ZERO:
                # One zero block read: the end-of-archive marker needs a second one.
                offset = self.offset
                block = self._block()
                if type(block) is not bytes:
                    return block
                if block != _ZERO_BLOCK:
                    raise ArchiveError(f"a zero block followed by a non-zero block at offset {offset}: "
                                       f"not an end-of-archive marker (invalid tar header)")
                return self._done()
            elif state == _SPARSE:
                event = self._sparse_data()
                if event is not None:
                    return event
            elif state == _SPARSE_MAP:
                entry = self._collect_sparse_map()
                if entry is None:
                    if self._eof:
                        raise self._truncated()
                    return NEED_DATA
                return entry
            else:
                return END

    def _collect_meta(self) -> bool:
        meta = self._meta
        assert meta is not None
        while meta.remaining:
            if not self._advance():
                return False
            step = min(meta.remaining, len(self._buf) - self._pos)
            meta.data += self._buf[self._pos:self._pos + step]
            self._pos += step
            meta.remaining -= step
        data = bytes(meta.data)
        if meta.kind == b"L":
            self._long_name = _decode(_cstr(data))
        elif meta.kind == b"K":
            self._long_link = _decode(_cstr(data))
        elif meta.kind == b"x":
            self._pax = _parse_pax(data, meta.offset)  # a second "x" replaces the first
        return True

    def _global_entry(self, meta: _Meta) -> Entry:
        """A global header is an entry of its own (typeflag "g") that changes no other; the
        records that came before it are dropped, as Go's Next() returns here."""
        records = _parse_pax(bytes(meta.data), meta.offset)
        name = meta.name
        path = records.get(b"path")
        if path:
            name = _decode(path)
        self._pax, self._long_name, self._long_link = {}, "", ""
        self.entries += 1
        entry = Entry(normalize_path(name), FileKind.FILE, 0, 0, 0, 0, 0, None, 0, 0, False, meta.offset,
                      typeflag="g", name=name)
        entry.data = _ZEROS[:0]
        return entry

    @staticmethod
    def _numbers(fields: tuple[bytes, ...], fmt: int, offset: int) -> list[int]:
        """The numeric fields (size mode uid gid mtime devmajor devminor) as Go parses them."""
        try:
            count = 7 if fmt != _FORMAT_V7 else 5
            return [_numeric(field) for field in fields[:count]] + [0] * (7 - count)
        except _BadNumber:
            raise ArchiveError(f"invalid numeric field in the tar header at offset {offset}") from None

    def _header(self, hdr: bytes) -> Entry | _Sentinel | None:
        offset = self.offset - BLOCK
        if hdr == _ZERO_BLOCK:
            self._state = _ZERO
            return None
        (name_f, mode_f, uid_f, gid_f, size_f, mtime_f, chksum_f, typeflag_b, link_f, magic, version,
         _, _, devmajor_f, devminor_f, tail) = _FIELDS.unpack_from(hdr)
        # The checksum: octal, over the header with its own field as spaces; unsigned or
        # signed bytes (old Sun tars) both pass, as in Go.
        try:
            text = chksum_f.strip(b" \0")
            stored = int(text, 8) if text.isdigit() else _octal(chksum_f)
        except (_BadNumber, ValueError):
            raise ArchiveError(f"invalid checksum field in the tar header at offset {offset} "
                               f"(not a tar stream, or corrupt)") from None
        # The sum of the bytes, in C: adler32's low half is (1 + sum) mod 65521, exact over
        # 256 bytes (at most 65,280); then the checksum field's bytes out, 8 spaces in.
        unsigned = ((zlib.adler32(hdr[:256]) & 0xFFFF) + (zlib.adler32(hdr[256:]) & 0xFFFF) - 2
                    - sum(chksum_f) + _SPACES8_SUM)
        if unsigned != stored:
            blanked = hdr[:148] + _SPACES8 + hdr[156:]
            signed = sum(b - 256 if b > 127 else b for b in blanked)
            if stored not in (sum(blanked), signed):
                raise ArchiveError(f"tar header checksum mismatch at offset {offset} "
                                   f"(not a tar stream, or corrupt)")
        if magic == b"ustar\0":
            fmt = _FORMAT_STAR if hdr[508:512] == b"tar\0" else _FORMAT_USTAR
        elif magic == b"ustar " and version == b" \0":
            fmt = _FORMAT_GNU
        else:
            fmt = _FORMAT_V7
        try:
            if hdr[100:148].translate(None, _OCTAL_FIELD) or \
                    (fmt != _FORMAT_V7 and hdr[329:345].translate(None, _OCTAL_FIELD)):
                raise ValueError  # base-256 or odd bytes: the careful way below
            # Only octal digits, spaces and NULs: Go's parseOctal is int() of the stripped
            # field (which refuses a space or NUL left inside it: the careful way then).
            size = int(size_f.strip(b" \0") or b"0", 8)
            mode = int(mode_f.strip(b" \0") or b"0", 8)
            uid = int(uid_f.strip(b" \0") or b"0", 8)
            gid = int(gid_f.strip(b" \0") or b"0", 8)
            mtime = int(mtime_f.strip(b" \0") or b"0", 8)
            devmajor = devminor = 0
            if fmt != _FORMAT_V7:
                devmajor = int(devmajor_f.strip(b" \0") or b"0", 8)
                devminor = int(devminor_f.strip(b" \0") or b"0", 8)
        except ValueError:
            size, mode, uid, gid, mtime, devmajor, devminor = self._numbers(
                (size_f, mode_f, uid_f, gid_f, mtime_f, devmajor_f, devminor_f), fmt, offset)
        try:
            prefix = b""
            if fmt != _FORMAT_V7:
                if fmt == _FORMAT_USTAR:
                    if tail[0]:
                        prefix = _cstr(tail[:155])
                elif fmt == _FORMAT_STAR:
                    prefix = _cstr(tail[:131])
                    _numeric(tail[131:143])  # atime and ctime: Go refuses them malformed
                    _numeric(tail[143:155])
                else:  # GNU: atime/ctime, or a pre-Go 1.8 writer's prefix in their place
                    try:
                        if tail[0]:
                            _numeric(tail[:12])
                        if tail[12]:
                            _numeric(tail[12:24])
                    except _BadNumber:
                        candidate = _cstr(tail[:155])
                        if candidate.isascii():
                            prefix = candidate
        except _BadNumber:
            raise ArchiveError(f"invalid numeric field in the tar header at offset {offset}") from None
        typeflag = _TYPEFLAGS[typeflag_b]
        name = _decode(prefix + b"/" + _cstr(name_f)) if prefix else _decode(_cstr(name_f))

        if typeflag not in _HEADER_ONLY and size < 0:
            raise ArchiveError(f"negative size in the tar header at offset {offset}")
        if typeflag_b in _META_TYPES:
            if size > self._max_meta_size:
                raise LimitError(f"tar metadata record of {size} bytes at offset {offset} "
                                 f"exceeds the limit of {self._max_meta_size}")
            self._meta = _Meta(typeflag_b, size, offset, name)
            self._state = _META
            return None

        # An entry: the records collected for it apply now, then are spent.
        pax, long_name, long_link = self._pax, self._long_name, self._long_link
        if pax or long_name or long_link:
            self._pax, self._long_name, self._long_link = {}, "", ""
        linkname = _decode(_cstr(link_f)) if link_f[0] else ""
        if pax:
            try:
                for key, value in pax.items():
                    if not value:
                        continue  # an empty record keeps the header's value
                    if key == b"path":
                        name = _decode(value)
                    elif key == b"linkpath":
                        linkname = _decode(value)
                    elif key == b"size":
                        size = _decimal(value)
                    elif key == b"uid":
                        uid = _decimal(value)
                    elif key == b"gid":
                        gid = _decimal(value)
                    elif key == b"mtime":
                        mtime = _pax_seconds(value)
                    elif key == b"atime" or key == b"ctime":
                        _pax_seconds(value)
            except _BadNumber:
                raise ArchiveError(f"invalid numeric PAX record in the header at offset {offset}") from None
        if long_name:
            name = long_name
        if long_link:
            linkname = long_link
        if typeflag == "\0":
            typeflag = "5" if name.endswith("/") else "0"  # legacy archives' directories
        if typeflag not in _HEADER_ONLY and size < 0:
            raise ArchiveError(f"negative size in the tar header at offset {offset}")
        if typeflag == "S":
            raise ArchiveError(f"old GNU sparse member {name!r} at offset {offset}: containerd and moby "
                               f"refuse this entry type (unhandled tar header type 'S')")
        data_size = 0 if typeflag in _HEADER_ONLY else size

        sparse = None
        if pax:
            sparse = self._sparse_version(pax, offset)
        if sparse is not None:
            sparse_name = pax.get(b"GNU.sparse.name")
            if sparse_name:
                name = _decode(sparse_name)
            logical = pax.get(b"GNU.sparse.size") or pax.get(b"GNU.sparse.realsize")
            if logical:
                try:
                    size = _decimal(logical)
                except _BadNumber:
                    raise ArchiveError(f"invalid GNU sparse size in the header at offset {offset}") from None

        kind = _KINDS.get(typeflag, FileKind.FILE)
        link: str | None = None
        if kind is FileKind.SYMLINK:
            link = linkname
        elif kind is FileKind.HARDLINK:
            link = normalize_path(linkname)
        mode &= 0o7777
        self.entries += 1
        entry = Entry(normalize_path(name), kind, mode, uid, gid, data_size, mtime, link, devmajor, devminor,
                      sparse is not None, offset, typeflag=typeflag, name=name, linkname=linkname)
        padding = -data_size % BLOCK
        if sparse is not None:
            if typeflag in _HEADER_ONLY:
                raise ArchiveError(f"sparse map on a {typeflag!r} entry at offset {offset}")
            entry.size = size
            entry.stored = data_size
            self._remaining, self._padding = data_size, padding
            if sparse == "1.0":
                self._sparse_entry = entry
                self._sparse_map = bytearray()
                self._state = _SPARSE_MAP
                return None
            self._start_sparse(entry, self._sparse_map_0x1(pax, offset), data_size)
            return entry
        pos = self._pos
        if pos + data_size + padding <= len(self._buf):
            # The whole entry is in the current chunk (most files are small): hand its data
            # over with the entry, no data or ENTRY_END events.
            entry.data = self._buf[pos:pos + data_size]
            self._pos = pos + data_size + padding
            return entry
        self._state = _DATA
        self._remaining = data_size
        self._padding = padding
        return entry

    # -- GNU sparse files (PAX forms) ------------------------------------------------------

    @staticmethod
    def _sparse_version(pax: dict[bytes, bytes], offset: int) -> str | None:
        """Go's readGNUSparsePAXHeaders: which sparse format, if any."""
        major, minor = pax.get(b"GNU.sparse.major", b""), pax.get(b"GNU.sparse.minor", b"")
        if major == b"0" and minor in (b"0", b"1"):
            return "0.1"
        if major == b"1" and minor == b"0":
            return "1.0"
        if major or minor:
            return None  # an unknown version: Go reads the entry as it is
        if pax.get(b"GNU.sparse.map"):
            return "0.1"
        return None

    @staticmethod
    def _sparse_map_0x1(pax: dict[bytes, bytes], offset: int) -> list[tuple[int, int]]:
        try:
            count = _decimal(pax.get(b"GNU.sparse.numblocks", b""))
        except _BadNumber:
            raise ArchiveError(f"invalid GNU sparse block count in the header at offset {offset}") from None
        if count < 0:
            raise ArchiveError(f"invalid GNU sparse block count in the header at offset {offset}")
        if count > MAX_SPARSE_ENTRIES:
            raise LimitError(f"sparse map of {count} fragments at offset {offset} exceeds the limit "
                             f"of {MAX_SPARSE_ENTRIES}")
        text = pax.get(b"GNU.sparse.map", b"")
        values = text.split(b",") if text else []
        if len(values) != 2 * count:
            raise ArchiveError(f"GNU sparse map does not match its block count in the header at offset {offset}")
        try:
            numbers = [_decimal(v) for v in values]
        except _BadNumber:
            raise ArchiveError(f"invalid GNU sparse map in the header at offset {offset}") from None
        return list(zip(numbers[0::2], numbers[1::2]))

    def _collect_sparse_map(self) -> Entry | None:
        """GNU sparse 1.0: the map is decimal lines at the start of the data, in whole blocks."""
        entry = self._sparse_entry
        assert entry is not None
        collected = self._sparse_map
        while True:
            lines = self._sparse_lines
            if lines:
                head = collected[:collected.index(b"\n")]
                try:
                    count = _decimal(bytes(head))
                except _BadNumber:
                    raise ArchiveError(f"invalid GNU sparse map at offset {entry.offset}") from None
                if count < 0:
                    raise ArchiveError(f"invalid GNU sparse map at offset {entry.offset}")
                if count > MAX_SPARSE_ENTRIES:
                    raise LimitError(f"sparse map of {count} fragments at offset {entry.offset} exceeds "
                                     f"the limit of {MAX_SPARSE_ENTRIES}")
                if lines >= 1 + 2 * count:
                    break
            if self._remaining < BLOCK:
                raise ArchiveError(f"GNU sparse map of {entry.path!r} at offset {entry.offset} runs past "
                                   f"the entry's data")
            if len(collected) >= MAX_SPARSE_MAP_SIZE:
                raise LimitError(f"GNU sparse map of {entry.path!r} at offset {entry.offset} is longer than "
                                 f"{MAX_SPARSE_MAP_SIZE} bytes")
            if self._available() < BLOCK:
                return None
            block = self._take(BLOCK)
            collected += block
            self._sparse_lines += block.count(b"\n")
            self._remaining -= BLOCK
        tokens = bytes(collected).split(b"\n")[1:1 + 2 * count]
        try:
            numbers = [_decimal(t) for t in tokens]
        except _BadNumber:
            raise ArchiveError(f"invalid GNU sparse map at offset {entry.offset}") from None
        self._sparse_map = bytearray()
        self._sparse_lines = 0
        self._sparse_entry = None
        self._start_sparse(entry, list(zip(numbers[0::2], numbers[1::2])), self._remaining)
        return entry

    def _start_sparse(self, entry: Entry, fragments: list[tuple[int, int]], physical: int) -> None:
        size, previous_end = entry.size, 0
        for start, length in fragments:  # Go's validateSparseEntries
            if start < 0 or length < 0 or start > _INT64_MAX - length or start + length > size \
                    or previous_end > start:
                raise ArchiveError(f"invalid GNU sparse map of {entry.path!r} at offset {entry.offset}")
            previous_end = start + length
        if size < 0:
            raise ArchiveError(f"invalid GNU sparse size of {entry.path!r} at offset {entry.offset}")
        self._sparse = _Sparse(fragments, size, physical)
        self._state = _SPARSE

    def _sparse_data(self) -> memoryview | _Sentinel | None:
        sparse = self._sparse
        assert sparse is not None
        if sparse.in_fragment:
            if not self._advance():
                if self._eof:
                    raise self._truncated()
                return NEED_DATA
            pos = self._pos
            end = min(pos + sparse.in_fragment, len(self._buf))
            self._pos = end
            sparse.in_fragment -= end - pos
            sparse.position += end - pos
            self._remaining -= end - pos
            return self._buf[pos:end]
        if sparse.index < len(sparse.fragments):
            start, length = sparse.fragments[sparse.index]
            gap = start - sparse.position
            if gap <= 0:
                if length > self._remaining:
                    raise ArchiveError("sparse file has less data than its map declares (missing data)")
                sparse.index += 1
                sparse.in_fragment = length
                return None
        else:
            gap = sparse.size - sparse.position
            if gap <= 0:
                if self._remaining:
                    raise ArchiveError("sparse file has data its map does not reference (unreferenced data)")
                self._sparse = None
                self._state = _SKIP
                self._remaining = self._padding
                return ENTRY_END
        step = min(gap, len(_ZEROS))
        self.hole_bytes += step
        if self._max_hole_bytes is not None and self.hole_bytes > self._max_hole_bytes:
            raise LimitError(f"sparse files expand to more than {self._max_hole_bytes} bytes of holes")
        sparse.position += step
        return _ZEROS[:step]
