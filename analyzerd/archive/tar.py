"""A sans-IO, push-style tar reader: feed bytes in, take entry and data events out.

It reads what container layers contain: POSIX ustar, GNU (long names and links, base-256
numbers) and PAX (extended and global headers), with every entry type a filesystem has.
It never touches a file or a socket; the caller decides where bytes come from.

Usage::

    reader = TarReader()
    reader.receive_data(chunk)      # b"" means end of input
    while (event := reader.next_event()) is not NEED_DATA:
        ...                          # Entry, memoryview (file data), ENTRY_END or END

Data events are ``memoryview`` slices of the bytes that were fed in (no copy): use them
before feeding more data. When an entry's data is already at hand in full, it comes with
the entry as ``entry.data`` and no data events or ENTRY_END follow (most files are small:
this saves two events per file). Bounded in space for any input: metadata records (long names,
PAX headers) are limited by ``max_meta_size``; file data is never buffered.
"""

from __future__ import annotations

import posixpath
import struct
import zlib
from collections import deque
from typing import Final

from ..errors import ArchiveError, LimitError
from ..model import FileKind

__all__ = ["END", "ENTRY_END", "NEED_DATA", "Entry", "TarReader", "normalize_path"]

BLOCK: Final = 512
_ZERO_BLOCK: Final = bytes(BLOCK)
_SPACES8: Final = b" " * 8

#: Long names and PAX records are metadata; Linux paths are at most 4 KiB and real PAX
#: headers a few KiB, so 1 MiB leaves room for large xattrs while refusing memory bombs.
MAX_META_SIZE: Final = 1 << 20


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
    b"0": FileKind.FILE,
    b"\0": FileKind.FILE,
    b"7": FileKind.FILE,  # contiguous file: a regular file everywhere that matters
    b"1": FileKind.HARDLINK,
    b"2": FileKind.SYMLINK,
    b"3": FileKind.CHAR,
    b"4": FileKind.BLOCK,
    b"5": FileKind.DIR,
    b"6": FileKind.FIFO,
}
# Entry types that carry no data in the archive whatever their size field says (as tarfile).
_NO_DATA: Final = frozenset({FileKind.HARDLINK, FileKind.SYMLINK, FileKind.CHAR, FileKind.BLOCK,
                             FileKind.DIR, FileKind.FIFO})

_PAX_INT_KEYS: Final = ("size", "uid", "gid")
_META_TYPES: Final = frozenset({b"L", b"K", b"x", b"g"})
# name mode uid gid size mtime chksum typeflag linkname magic+version uname gname
# devmajor devminor prefix: the ustar layout (GNU uses the tail differently; unused here)
_FIELDS: Final = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s")


class Entry:
    """One archive member's header, after long-name and PAX records are applied."""

    __slots__ = ("path", "kind", "mode", "uid", "gid", "size", "mtime", "link",
                 "devmajor", "devminor", "sparse", "offset", "data")

    def __init__(self, path: str, kind: FileKind, mode: int, uid: int, gid: int, size: int,
                 mtime: int, link: str | None, devmajor: int, devminor: int, sparse: bool,
                 offset: int) -> None:
        self.path = path  #: normalized, absolute, "/" for the root
        self.kind = kind
        self.mode = mode  #: permission bits incl. setuid/setgid/sticky
        self.uid = uid
        self.gid = gid
        self.size = size  #: bytes of data that follow (0 for non-files)
        self.mtime = mtime
        self.link = link  #: symlink target as written; hardlink target normalized
        self.devmajor = devmajor
        self.devminor = devminor
        self.sparse = sparse  #: GNU sparse file: the data is a sparse map, not the content
        self.offset = offset  #: byte offset of the header in the uncompressed stream
        #: the entry's whole data when it was at hand (then no data events and no ENTRY_END
        #: follow); None: data events and ENTRY_END follow
        self.data: memoryview | None = None

    def __repr__(self) -> str:
        return f"Entry({self.path!r}, {self.kind.value}, size={self.size})"


def normalize_path(name: str) -> str:
    """Absolute, normalized, no trailing slash; ".." cannot climb above the root."""
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
    end = raw.find(b"\0")
    return raw if end < 0 else raw[:end]


def _number(field: bytes, what: str, offset: int) -> int:
    """A numeric header field: octal ASCII, or GNU base-256 when the high bit is set."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big") | ((field[0] & 0x3F) << (8 * (len(field) - 1)))
        return -((1 << (8 * len(field) - 2)) - value) if field[0] & 0x40 else value
    try:
        return int(field.rstrip(b"\0 ") or b"0", 8)  # int() itself skips leading spaces
    except ValueError:
        pass
    text = _cstr(field).strip(b" ")  # "644\0garbage": the number ends at the first NUL
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise ArchiveError(f"invalid {what} field {bytes(field)!r} in tar header at offset {offset}") from None


class _Meta:
    """A metadata record being collected: GNU long name/link or a PAX header."""

    __slots__ = ("kind", "data", "remaining", "padding")

    def __init__(self, kind: bytes, size: int) -> None:
        self.kind = kind
        self.data = bytearray()
        self.remaining = size
        self.padding = -size % BLOCK


_HEADER, _DATA, _SKIP, _META, _DONE = range(5)


class TarReader:
    """Push parser for a tar stream. See the module docstring for the protocol."""

    def __init__(self, *, max_meta_size: int = MAX_META_SIZE) -> None:
        self._max_meta_size = max_meta_size
        self._chunks: deque[memoryview] = deque()
        self._buf = memoryview(b"")
        self._pos = 0
        self._eof = False
        self._state = _HEADER
        self._remaining = 0  # data bytes left of the current entry, or bytes to skip
        self._padding = 0  # padding bytes after the current data
        self._offset = 0  # stream offset of self._buf[0]
        self._meta: _Meta | None = None
        self._pending: dict[str, str] = {}  # long name/link and PAX values for the next entry
        self._global: dict[str, str] = {}
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
                if self._pos + BLOCK > len(self._buf) and self._available() < BLOCK:
                    if not self._eof:
                        return NEED_DATA
                    if self._available() == 0:
                        # No end-of-archive marker: common in layers, and harmless.
                        self._state = _DONE
                        return END
                    raise self._truncated()
                event = self._header(self._take(BLOCK))
                if event is not None:
                    return event
            elif state == _SKIP:
                if not self._skip():
                    if self._eof:
                        raise self._truncated()
                    return NEED_DATA
                self._state = _HEADER
            elif state == _META:
                if not self._collect_meta():
                    if self._eof:
                        raise self._truncated()
                    return NEED_DATA
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
        self._meta = None
        data = bytes(meta.data)
        if meta.kind == b"L":
            self._pending["path"] = _decode(_cstr(data))
        elif meta.kind == b"K":
            self._pending["linkpath"] = _decode(_cstr(data))
        else:
            records = self._parse_pax(data)
            (self._global if meta.kind == b"g" else self._pending).update(records)
        self._state = _SKIP
        self._remaining = meta.padding
        return True

    def _parse_pax(self, data: bytes) -> dict[str, str]:
        """PAX records: "LEN key=value\\n", LEN counting the whole record."""
        records: dict[str, str] = {}
        pos = 0
        binary = False
        while pos < len(data):
            if data[pos] == 0:  # some writers pad with NULs
                break
            space = data.find(b" ", pos)
            try:
                length = int(data[pos:space])
            except ValueError:
                raise ArchiveError(f"invalid PAX record length at offset {self.offset}") from None
            record = data[space + 1:pos + length]
            if length <= 0 or pos + length > len(data) or not record.endswith(b"\n") or b"=" not in record:
                raise ArchiveError(f"invalid PAX record at offset {self.offset}")
            key, _, value = record[:-1].partition(b"=")
            name = key.decode("utf-8", "replace")
            if name == "hdrcharset":
                binary = value == b"BINARY"
            records[name] = value.decode("utf-8", "surrogateescape") if not binary else _decode(value)
            pos += length
        return records

    def _header(self, hdr: bytes) -> Entry | _Sentinel | None:
        offset = self.offset - BLOCK
        if hdr == _ZERO_BLOCK:
            # End-of-archive: a second zero block and any trailing padding are ignored.
            self._state = _DONE
            self._chunks.clear()
            self._buf = memoryview(b"")
            self._pos = 0
            return END
        # Owner names (uname/gname) are not read: files are recorded by numeric ids.
        (name_f, mode_f, uid_f, gid_f, size_f, mtime_f, chksum_f, typeflag, link_f, magic,
         _, _, devmajor_f, devminor_f, prefix_f) = _FIELDS.unpack_from(hdr)
        try:  # the common case: plain octal numbers
            mode = int(mode_f.rstrip(b"\0 ") or b"0", 8)
            uid = int(uid_f.rstrip(b"\0 ") or b"0", 8)
            gid = int(gid_f.rstrip(b"\0 ") or b"0", 8)
            size = int(size_f.rstrip(b"\0 ") or b"0", 8)
            mtime = int(mtime_f.rstrip(b"\0 ") or b"0", 8)
            stored = int(chksum_f.rstrip(b"\0 ") or b"0", 8)
        except ValueError:  # base-256, or NUL-terminated with garbage after: the careful way
            mode = _number(mode_f, "mode", offset)
            uid = _number(uid_f, "uid", offset)
            gid = _number(gid_f, "gid", offset)
            size = _number(size_f, "size", offset)
            mtime = _number(mtime_f, "mtime", offset)
            stored = _number(chksum_f, "checksum", offset)
        # adler32's low half is (1 + sum of bytes) mod 65521: the tar checksum, in C.
        unsigned = zlib.adler32(hdr[156:], zlib.adler32(_SPACES8, zlib.adler32(hdr[:148]))) & 0xFFFF
        if unsigned != (1 + stored) % 65521:
            blanked = hdr[:148] + _SPACES8 + hdr[156:]
            signed = sum(b - 256 if b > 127 else b for b in blanked)
            if stored not in (sum(blanked), signed):
                raise ArchiveError(f"tar header checksum mismatch at offset {offset} "
                                   f"(not a tar stream, or corrupt)")
        if size < 0:
            raise ArchiveError(f"negative size in tar header at offset {offset}")

        if typeflag in _META_TYPES:
            if size > self._max_meta_size:
                raise LimitError(f"tar metadata record of {size} bytes at offset {offset} "
                                 f"exceeds the limit of {self._max_meta_size}")
            self._meta = _Meta(typeflag, size)
            self._state = _META
            return None

        pending = self._pending
        if self._global:
            pending = {**self._global, **pending}
        if pending:
            self._pending = {}

        kind = _KINDS.get(typeflag)
        if kind is None:
            if typeflag == b"S":
                raise ArchiveError(f"old GNU sparse member at offset {offset} is not supported")
            if typeflag in (b"V", b"M", b"N", b"D"):
                # Volume labels, multi-volume continuations, old long names, dumpdirs:
                # archive bookkeeping, not filesystem content.
                self._state = _SKIP
                self._remaining = size + (-size % BLOCK)
                return None
            kind = FileKind.FILE  # POSIX: unknown types are read as regular files

        if "path" in pending:
            name = pending["path"]
        else:
            end = name_f.find(b"\0")
            name = (name_f if end < 0 else name_f[:end]).decode("utf-8", "surrogateescape")
            if magic[:6] == b"ustar\0" and prefix_f[0]:  # POSIX ustar: the prefix holds the head
                name = _decode(_cstr(prefix_f)) + "/" + name
        if "linkpath" in pending:
            link: str | None = pending["linkpath"]
        elif kind is FileKind.SYMLINK or kind is FileKind.HARDLINK:
            link = _decode(_cstr(link_f))
        else:
            link = None
        if kind is FileKind.FILE and name.endswith("/"):
            kind = FileKind.DIR  # old tars mark directories only with a trailing slash

        mode &= 0o7777
        devmajor = devminor = 0
        if kind is FileKind.CHAR or kind is FileKind.BLOCK:
            devmajor = _number(devmajor_f, "devmajor", offset)
            devminor = _number(devminor_f, "devminor", offset)
        sparse = False
        if pending:
            try:
                for key in _PAX_INT_KEYS:
                    if key in pending:
                        value = int(pending[key])
                        if key == "size":
                            size = value
                        elif key == "uid":
                            uid = value
                        else:
                            gid = value
                if "mtime" in pending:
                    mtime = int(float(pending["mtime"]))
            except ValueError:
                raise ArchiveError(f"invalid numeric PAX value in the header at offset {offset}") from None
            sparse = any(key.startswith("GNU.sparse.") for key in pending)
            if sparse and "GNU.sparse.name" in pending:
                name = pending["GNU.sparse.name"]
            if size < 0:
                raise ArchiveError(f"negative size in PAX header at offset {offset}")

        path = normalize_path(name)
        if kind is FileKind.HARDLINK and link is not None:
            link = normalize_path(link)
        data_size = 0 if kind in _NO_DATA else size
        self.entries += 1
        entry = Entry(path, kind, mode, uid, gid, data_size, mtime, link, devmajor, devminor,
                      sparse, offset)
        padding = -data_size % BLOCK
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
