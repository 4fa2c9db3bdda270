"""RPM package databases read without librpm: Berkeley DB hash, NDB and SQLite.

Why pure Python: images are analysed as bytes taken out of layers, librpm is not there (and
would want files on disk), and the input is untrusted. So this module takes ``bytes`` and
nothing else: no file access, no event loop. ``sqlite3`` is used only to open an in-memory
copy of an ``rpmdb.sqlite`` (``Connection.deserialize``), never a file.

The three containers all hold the same thing, one rpm *header blob* per installed package
(lib/header.c, headerExport/headerImport)::

    il (u32 BE)  dl (u32 BE)  il x {tag, type, offset, count} (u32 BE each)  dl bytes of data

* Berkeley DB hash (``/var/lib/rpm/Packages``, rpm < 4.16 and RHEL <= 8): page 0 is the
  hash metadata page; buckets map to pages through its ``spares`` table; each bucket is a
  chain of hash pages holding key/data pairs (key: the 4-byte header instance; data: the
  blob, on the page or in a chain of overflow pages). Walked the way rpm's own read-only
  reader (lib/backend/bdb_ro.c) walks it. Either byte order exists; the magic tells which.
* NDB (``Packages.db``, rpm >= 4.16 "ndb" backend, SUSE): little-endian; a 32-byte header,
  4 KiB slot pages of 16-byte slots ``Slot, pkgidx, blkoff, blkcnt``; a slot's blocks
  (16 bytes each) hold ``BlbS, pkgidx, timestamp, bloblen``, the blob, then the tail
  ``adler32, bloblen, BlbE`` (lib/backend/ndb/rpmpkg.c).
* SQLite (``rpmdb.sqlite``, Fedora >= 33, RHEL 9, CBL-Mariner): table ``Packages(hnum, blob)``.

Failure policy: a container that cannot be read at all (wrong magic, bad metadata page,
truncated file, broken slot table, no Packages table) raises :class:`RpmdbError`; one bad
record (a blob, an overflow chain, a hash page) is skipped with a warning naming it and the
others are kept. If records were found but none could be read, that is an unreadable
database too and :class:`RpmdbError` is raised. Every loop is bounded by the input's size
or a named limit below, and every page is visited at most once, so hostile input costs
time linear in its size.
"""

from __future__ import annotations

import contextlib
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, TypeVar

__all__ = [
    "RpmFile",
    "RpmPackage",
    "RpmdbError",
    "detect_format",
    "parse_header_blob",
    "parse_rpmdb",
]


_T = TypeVar("_T")

# -- limits ----------------------------------------------------------------------------------

#: rpm's own cap on a header's index entries (HEADER_TAGS_MAX, lib/header.c).
MAX_INDEX_ENTRIES: Final = 0xFFFF
#: rpm's own cap on a header's data area and on any count/offset in it (HEADER_DATA_MAX:
#: 256 MiB - 1; file signatures can make headers big, nothing legitimate comes close).
MAX_DATA_LENGTH: Final = 0x0FFFFFFF
#: The largest blob those two caps allow: the 8-byte intro, the index, the data.
MAX_BLOB_LENGTH: Final = 8 + 16 * MAX_INDEX_ENTRIES + MAX_DATA_LENGTH
#: Bytes of file paths built from one database's headers. A path is DIRNAMES[DIRINDEXES[i]] +
#: BASENAMES[i], so one long dirname shared by a million one-byte basenames turns a 7 MB
#: header into terabytes of paths. A whole Fedora workstation owns ~500k paths, ~40 MB.
MAX_FILE_PATH_BYTES: Final = 256 * 1024 * 1024
#: Berkeley DB page sizes (powers of two, 512 B .. 64 KiB); anything else is not a BDB file.
BDB_PAGE_SIZES: Final = frozenset(1 << n for n in range(9, 17))
#: NDB slot pages: 2048 pages hold ~520k slots, far beyond any real system (go-rpmdb's cap);
#: the file size bounds it too, this just rejects absurd headers before allocating anything.
NDB_MAX_SLOT_PAGES: Final = 2048
#: At most this many warnings are kept; the rest are counted in one closing line, so a
#: hostile file cannot turn into a huge warning list.
MAX_WARNINGS: Final = 1000
#: SQLite virtual-machine steps allowed for our statements (checked every
#: _SQLITE_PROGRESS_EVERY steps): a row costs ~7 steps, so 100k packages take under a million;
#: anything crafted to run far longer (say, a huge table of tiny rows) is interrupted.
SQLITE_MAX_VM_STEPS: Final = 50_000_000
_SQLITE_PROGRESS_EVERY: Final = 100_000
#: Longest string or blob SQLite may make for us (SQLITE_LIMIT_LENGTH), and the largest header
#: blob read from rpmdb.sqlite. A schema can compute values instead of storing them
#: (``GENERATED ALWAYS AS (zeroblob(50000000))`` took 579 MB RSS from an 8 KiB file); with
#: this limit SQLite refuses to build anything larger. Real headers are far smaller: 212 KB
#: is the largest in CBL-Mariner's database, and packages listing tens of thousands of files
#: (kernel modules, texlive) make a few MB; rpm's own cap (HEADER_DATA_MAX, 256 MiB) is a
#: format bound, not a size seen.
SQLITE_MAX_VALUE_BYTES: Final = 64 * 1024 * 1024


# -- public types ----------------------------------------------------------------------------

class RpmdbError(Exception):
    """The rpm database (or one header blob in it) is malformed; the message says what and where."""


@dataclass(frozen=True, slots=True)
class RpmFile:
    """One file a package installed, as the rpm header records it."""

    path: str  #: absolute: dirnames[dirindexes[i]] + basenames[i] (or OLDFILENAMES[i])
    digest: str  #: hex as stored in FILEDIGESTS; "" when none (directories, symlinks, ghosts)
    mode: int  #: FILEMODES, unsigned (e.g. 0o100644)
    size: int  #: LONGFILESIZES or FILESIZES; 0 when absent


@dataclass(frozen=True, slots=True)
class RpmPackage:
    """One installed package: the header fields an SBOM and a file-ownership check need."""

    name: str
    epoch: int | None  #: None when the header has no EPOCH tag (rpm -q prints it as 0 / "(none)")
    version: str
    release: str
    arch: str
    source_rpm: str
    license: str
    vendor: str
    size: int  #: LONGSIZE or SIZE (installed size, bytes)
    digest_algorithm: str  #: of the file digests: md5 (when FILEDIGESTALGO is absent), sha1, sha256, ...
    files: tuple[RpmFile, ...]


# -- header blobs (lib/header.c) -------------------------------------------------------------

TAG_HEADERIMMUTABLE: Final = 63
TAG_NAME: Final = 1000
TAG_VERSION: Final = 1001
TAG_RELEASE: Final = 1002
TAG_EPOCH: Final = 1003
TAG_SIZE: Final = 1009
TAG_VENDOR: Final = 1011
TAG_LICENSE: Final = 1014
TAG_ARCH: Final = 1022
TAG_OLDFILENAMES: Final = 1027
TAG_FILESIZES: Final = 1028
TAG_FILEMODES: Final = 1030
TAG_FILEDIGESTS: Final = 1035  # a.k.a. FILEMD5S
TAG_SOURCERPM: Final = 1044
TAG_DIRINDEXES: Final = 1116
TAG_BASENAMES: Final = 1117
TAG_DIRNAMES: Final = 1118
TAG_LONGFILESIZES: Final = 5008
TAG_LONGSIZE: Final = 5009
TAG_FILEDIGESTALGO: Final = 5011

_TAG_NAMES: Final = {
    TAG_HEADERIMMUTABLE: "HEADERIMMUTABLE", TAG_NAME: "NAME", TAG_VERSION: "VERSION",
    TAG_RELEASE: "RELEASE", TAG_EPOCH: "EPOCH", TAG_SIZE: "SIZE", TAG_VENDOR: "VENDOR",
    TAG_LICENSE: "LICENSE", TAG_ARCH: "ARCH", TAG_OLDFILENAMES: "OLDFILENAMES",
    TAG_FILESIZES: "FILESIZES", TAG_FILEMODES: "FILEMODES", TAG_FILEDIGESTS: "FILEDIGESTS",
    TAG_SOURCERPM: "SOURCERPM", TAG_DIRINDEXES: "DIRINDEXES", TAG_BASENAMES: "BASENAMES",
    TAG_DIRNAMES: "DIRNAMES", TAG_LONGFILESIZES: "LONGFILESIZES", TAG_LONGSIZE: "LONGSIZE",
    TAG_FILEDIGESTALGO: "FILEDIGESTALGO",
}

# rpm_tagtype_t
_NULL, _CHAR, _INT8, _INT16, _INT32, _INT64, _STRING, _BIN, _STRING_ARRAY, _I18NSTRING = range(10)
_MAX_TYPE: Final = _I18NSTRING
_STRING_TYPES: Final = frozenset({_STRING, _STRING_ARRAY, _I18NSTRING})
#: integer type -> (bytes per item, struct code), unsigned: rpm reads these as uint*_t
_INT_TYPES: Final = {_CHAR: (1, "B"), _INT8: (1, "B"), _INT16: (2, "H"), _INT32: (4, "I"), _INT64: (8, "Q")}

#: FILEDIGESTALGO values (PGPHASHALGO_*, include/rpm/rpmpgp.h)
_DIGEST_ALGORITHMS: Final = {1: "md5", 2: "sha1", 3: "ripemd160", 8: "sha256", 9: "sha384",
                             10: "sha512", 11: "sha224"}
_DEFAULT_DIGEST_ALGORITHM: Final = 1  # headers without FILEDIGESTALGO use MD5

_INTRO = struct.Struct(">II")
_ENTRY = struct.Struct(">IIiI")  # tag, type, offset (signed: negative is an error), count


def _tag_name(tag: int) -> str:
    name = _TAG_NAMES.get(tag)
    return f"{name} ({tag})" if name else f"tag {tag}"


class _Header:
    """The index of one header blob, with bounded readers for the tags we need.

    Only the entries we read are decoded; every entry's type and offset are still checked
    against the data area, like rpm's hdrblobVerifyInfo, so a blob rpm would reject is
    rejected here too rather than half-read.
    """

    __slots__ = ("blob", "base", "end", "dl", "entries")

    def __init__(self, blob: bytes) -> None:
        if len(blob) < _INTRO.size:
            raise RpmdbError(f"header blob of {len(blob)} bytes is shorter than its 8-byte intro")
        il, dl = _INTRO.unpack_from(blob, 0)
        if il == 0 or il > MAX_INDEX_ENTRIES:
            raise RpmdbError(f"header index count il={il} outside 1..{MAX_INDEX_ENTRIES}")
        if dl > MAX_DATA_LENGTH:
            raise RpmdbError(f"header data length dl={dl} over the {MAX_DATA_LENGTH}-byte limit")
        base = _INTRO.size + 16 * il
        if base + dl > len(blob):
            raise RpmdbError(f"header blob of {len(blob)} bytes is shorter than il={il}, dl={dl} "
                             f"need ({base + dl} bytes)")
        self.blob, self.base, self.dl, self.end = blob, base, dl, base + dl
        entries: dict[int, tuple[int, int, int]] = {}
        for i, (tag, type_, offset, count) in enumerate(_ENTRY.iter_unpack(blob[_INTRO.size:base])):
            if type_ > _MAX_TYPE:
                raise RpmdbError(f"header entry {i}, {_tag_name(tag)}: unknown data type {type_}")
            if offset < 0 or offset > dl:
                raise RpmdbError(f"header entry {i}, {_tag_name(tag)}: data offset {offset} "
                                 f"outside the {dl}-byte data area")
            if count > MAX_DATA_LENGTH:
                raise RpmdbError(f"header entry {i}, {_tag_name(tag)}: count {count} over the limit")
            # A tag seen again later is a "dribble" appended after the immutable region;
            # rpm lets it replace the region's copy, so the last one wins here too.
            entries[tag] = (type_, offset, count)
        self.entries = entries

    def _strings_raw(self, tag: int) -> list[bytes] | None:
        entry = self.entries.get(tag)
        if entry is None:
            return None
        type_, offset, count = entry
        if type_ not in _STRING_TYPES:
            raise RpmdbError(f"{_tag_name(tag)}: type {type_} where a string was expected")
        if type_ == _STRING and count != 1:
            raise RpmdbError(f"{_tag_name(tag)}: STRING with count {count}, not 1")
        pos = self.base + offset
        if count > self.end - pos:  # each string takes at least its NUL
            raise RpmdbError(f"{_tag_name(tag)}: {count} strings at offset {offset} cannot fit "
                             f"in the {self.dl}-byte data area")
        blob, end, out = self.blob, self.end, []
        for i in range(count):
            nul = blob.find(b"\0", pos, end)
            if nul < 0:
                raise RpmdbError(f"{_tag_name(tag)}: string {i} of {count} at offset {pos - self.base} "
                                 f"runs past the end of the {self.dl}-byte data area")
            out.append(blob[pos:nul])
            pos = nul + 1
        return out

    def string(self, tag: int) -> str | None:
        """A STRING (or the first of an I18NSTRING/array: the untranslated "C" value)."""
        raw = self._strings_raw(tag)
        if raw is None:
            return None
        return raw[0].decode("utf-8", "replace") if raw else ""

    def strings(self, tag: int, *, paths: bool = False) -> list[str] | None:
        """A STRING_ARRAY. Paths keep undecodable bytes (surrogateescape), as the tar reader
        does, so they still match the layer's paths byte for byte."""
        raw = self._strings_raw(tag)
        if raw is None:
            return None
        errors = "surrogateescape" if paths else "replace"
        return [s.decode("utf-8", errors) for s in raw]

    def ints(self, tag: int) -> list[int] | None:
        entry = self.entries.get(tag)
        if entry is None:
            return None
        type_, offset, count = entry
        item = _INT_TYPES.get(type_)
        if item is None:
            raise RpmdbError(f"{_tag_name(tag)}: type {type_} where an integer was expected")
        size, code = item
        if offset + size * count > self.dl:
            raise RpmdbError(f"{_tag_name(tag)}: {count} x {size} bytes at offset {offset} run past "
                             f"the end of the {self.dl}-byte data area")
        return list(struct.unpack_from(f">{count}{code}", self.blob, self.base + offset))

    def number(self, tag: int) -> int | None:
        """The first value of an integer tag (EPOCH, SIZE, ...)."""
        values = self.ints(tag)
        if values is None:
            return None
        if not values:
            raise RpmdbError(f"{_tag_name(tag)}: no value (count 0)")
        return values[0]


def _files(h: _Header, max_path_bytes: int) -> tuple[RpmFile, ...]:
    """The file list: BASENAMES/DIRNAMES/DIRINDEXES (rpm >= 4) or OLDFILENAMES (older headers)."""
    basenames = h.strings(TAG_BASENAMES, paths=True)
    if basenames is not None:
        dirnames = h.strings(TAG_DIRNAMES, paths=True) or []
        dirindexes = h.ints(TAG_DIRINDEXES) or []
        if len(dirindexes) != len(basenames):
            raise RpmdbError(f"{_tag_name(TAG_DIRINDEXES)}: {len(dirindexes)} entries for "
                             f"{len(basenames)} basenames")
        for i, index in enumerate(dirindexes):
            if index >= len(dirnames):
                raise RpmdbError(f"{_tag_name(TAG_DIRINDEXES)}[{i}] = {index}, but there are "
                                 f"{len(dirnames)} dirnames")
        dirname_lengths = [len(d) for d in dirnames]
        total = sum(map(len, basenames)) + sum(dirname_lengths[index] for index in dirindexes)
        if total > max_path_bytes:  # counted before a single path is built
            raise RpmdbError(f"{len(basenames)} file paths of {total} bytes in all, over the "
                             f"{max_path_bytes} bytes left of MAX_FILE_PATH_BYTES")
        paths = [dirnames[index] + base for index, base in zip(dirindexes, basenames)]
    else:
        paths = h.strings(TAG_OLDFILENAMES, paths=True) or []
    if not paths:
        return ()
    n = len(paths)
    modes = _per_file(TAG_FILEMODES, h.ints(TAG_FILEMODES), 0, n)
    size_tag = TAG_LONGFILESIZES if TAG_LONGFILESIZES in h.entries else TAG_FILESIZES
    sizes = _per_file(size_tag, h.ints(size_tag), 0, n)
    digests = _per_file(TAG_FILEDIGESTS, h.strings(TAG_FILEDIGESTS), "", n)
    return tuple(RpmFile(p, d, m, s) for p, d, m, s in zip(paths, digests, modes, sizes))


def _per_file(tag: int, values: list[_T] | None, default: _T, n: int) -> list[_T]:
    """A per-file array must have one value per file; an absent one means all defaults."""
    if values is None:
        return [default] * n
    if len(values) != n:
        raise RpmdbError(f"{_tag_name(tag)}: {len(values)} entries for {n} files")
    return values


def parse_header_blob(blob: bytes | bytearray | memoryview, *,
                      max_path_bytes: int = MAX_FILE_PATH_BYTES) -> RpmPackage:
    """One rpm header blob (as stored in any rpmdb) to a package.

    Raises RpmdbError when the blob is malformed: counts over rpm's limits, an offset or a
    length outside the data area, a string without its NUL, per-file arrays of different
    lengths, a missing NAME, or file paths of more than ``max_path_bytes`` in all. The
    message names the tag.
    """
    h = _Header(bytes(blob))
    name = h.string(TAG_NAME)
    if not name:
        raise RpmdbError(f"header has no {_tag_name(TAG_NAME)}")
    long_size = h.number(TAG_LONGSIZE)
    size = long_size if long_size is not None else h.number(TAG_SIZE)
    algo = h.number(TAG_FILEDIGESTALGO)
    algo = _DEFAULT_DIGEST_ALGORITHM if algo is None else algo
    return RpmPackage(
        name=name,
        epoch=h.number(TAG_EPOCH),
        version=h.string(TAG_VERSION) or "",
        release=h.string(TAG_RELEASE) or "",
        arch=h.string(TAG_ARCH) or "",
        source_rpm=h.string(TAG_SOURCERPM) or "",
        license=h.string(TAG_LICENSE) or "",
        vendor=h.string(TAG_VENDOR) or "",
        size=size or 0,
        digest_algorithm=_DIGEST_ALGORITHMS.get(algo, f"pgphashalgo-{algo}"),
        files=_files(h, max_path_bytes),
    )


# -- containers ------------------------------------------------------------------------------

_SQLITE_MAGIC: Final = b"SQLite format 3\0"
_NDB_MAGIC: Final = b"RpmP"
_BDB_HASH_MAGIC: Final = 0x00061561
_BDB_BTREE_MAGIC: Final = 0x00053162

#: A record: (label naming it for warnings, its header blob or why it could not be read).
_Record = tuple[str, bytes | RpmdbError]


def detect_format(data: bytes | bytearray | memoryview) -> str:
    """"bdb", "ndb" or "sqlite", from the magic numbers; RpmdbError for anything else."""
    head = bytes(memoryview(data).cast("B")[:16])
    if not head:
        raise RpmdbError("empty file: not an rpm database")
    if head == _SQLITE_MAGIC:
        return "sqlite"
    if head[:4] == _NDB_MAGIC:
        return "ndb"
    if len(head) == 16:
        for order in "<>":
            (magic,) = struct.unpack_from(order + "I", head, 12)
            if magic == _BDB_HASH_MAGIC:
                return "bdb"
            if magic == _BDB_BTREE_MAGIC:
                raise RpmdbError("a Berkeley DB btree: an rpm index (Name, Basenames, ...), "
                                 "not the Packages hash database")
    raise RpmdbError(f"not an rpm database: unknown magic {head[:16].hex()} at offset 0")


# Berkeley DB -------------------------------------------------------------------------------

_BDB_META_SIZE: Final = 512  # rpm's bdb_ro reads this much of page 0
_BDB_PAGE_HEADER: Final = 26  # SIZEOF_PAGE: lsn, pgno, prev, next, entries, hf_offset, level, type
_P_HASH_UNSORTED: Final = 2  # hash pages written by BDB < 4.6 (RHEL/CentOS 5)
_P_OVERFLOW: Final = 7
_P_HASHMETA: Final = 8
_P_HASH: Final = 13
_H_KEYDATA: Final = 1
_H_OFFPAGE: Final = 3
_H_OFFPAGE_SIZE: Final = 12  # type, 3 unused, pgno, tlen


class _Bdb:
    """A Berkeley DB hash file, read page by page from one buffer; no page is visited twice."""

    def __init__(self, mv: memoryview) -> None:
        if len(mv) < _BDB_META_SIZE:
            raise RpmdbError(f"bdb: {len(mv)} bytes, shorter than the {_BDB_META_SIZE}-byte metadata page")
        for order in "<>":
            if struct.unpack_from(order + "I", mv, 12)[0] == _BDB_HASH_MAGIC:
                break
        else:
            raise RpmdbError("bdb: no hash magic 0x061561 at offset 12")
        self.mv, self.order = mv, order
        version, page_size = struct.unpack_from(order + "II", mv, 16)
        encrypt_alg, page_type = mv[24], mv[25]
        (self.last_pgno,) = struct.unpack_from(order + "I", mv, 32)
        self.max_bucket, _high_mask, _low_mask = struct.unpack_from(order + "III", mv, 72)
        self.spares = struct.unpack_from(order + "32I", mv, 96)
        if not 8 <= version <= 10:  # the hash versions rpm's bdb_ro reads
            raise RpmdbError(f"bdb: unsupported hash version {version} (page 0, offset 16)")
        if page_size not in BDB_PAGE_SIZES:
            raise RpmdbError(f"bdb: page size {page_size} is not a power of two in 512..65536 (page 0, offset 20)")
        if page_type != _P_HASHMETA:
            raise RpmdbError(f"bdb: page 0 has type {page_type}, not hash metadata ({_P_HASHMETA})")
        if encrypt_alg:
            raise RpmdbError("bdb: encrypted database (page 0, offset 24)")
        self.page_size = page_size
        pages_in_file = len(mv) // page_size
        if self.last_pgno >= pages_in_file:
            raise RpmdbError(f"bdb: truncated: the metadata says the last page is {self.last_pgno} "
                             f"({(self.last_pgno + 1) * page_size} bytes), the file has {len(mv)} bytes")
        if self.max_bucket >= max(self.last_pgno, 1):  # every bucket owns at least one page
            raise RpmdbError(f"bdb: {self.max_bucket + 1} buckets cannot fit in {self.last_pgno} pages "
                             f"(page 0, offset 72)")
        self.visited: set[int] = set()

    def _page(self, pgno: int, what: str) -> tuple[int, int, int, int, int]:
        """(start offset, next pgno, entries, hf_offset, type) of a page not read before."""
        if not 1 <= pgno <= self.last_pgno:
            raise RpmdbError(f"{what} page {pgno} outside pages 1..{self.last_pgno}")
        if pgno in self.visited:
            raise RpmdbError(f"{what} page {pgno} reached twice (a cycle or a shared page)")
        self.visited.add(pgno)
        start = pgno * self.page_size
        own, _prev, nxt, entries, hf_offset = struct.unpack_from(self.order + "IIIHH", self.mv, start + 8)
        if own != pgno:
            raise RpmdbError(f"{what} page {pgno} (offset {start}) says it is page {own}")
        return start, nxt, entries, hf_offset, self.mv[start + 25]

    def _overflow(self, pgno: int, total: int) -> bytes:
        """The value stored in the overflow chain starting at ``pgno``, ``total`` bytes long."""
        if total == 0 or total > MAX_BLOB_LENGTH or total > len(self.mv):
            raise RpmdbError(f"overflow item of {total} bytes (limit {MAX_BLOB_LENGTH}, file {len(self.mv)})")
        chunks, remaining = [], total
        while remaining:
            start, nxt, _entries, length, type_ = self._page(pgno, "overflow")
            if type_ != _P_OVERFLOW:
                raise RpmdbError(f"overflow page {pgno} has type {type_}, not {_P_OVERFLOW}")
            if _BDB_PAGE_HEADER + length > self.page_size or length > remaining:
                raise RpmdbError(f"overflow page {pgno} holds {length} bytes; {remaining} of {total} "
                                 f"were still expected and a page holds {self.page_size - _BDB_PAGE_HEADER}")
            chunks.append(self.mv[start + _BDB_PAGE_HEADER:start + _BDB_PAGE_HEADER + length])
            remaining -= length
            if remaining and not nxt:
                raise RpmdbError(f"overflow chain ends at page {pgno} with {remaining} of {total} bytes missing")
            pgno = nxt
        return b"".join(chunks)

    def _item(self, start: int, offset: int, length: int) -> bytes | tuple[int, int]:
        """One hash page item: its bytes when on the page, (first page, total length) when
        in an overflow chain."""
        mv = self.mv
        type_ = mv[start + offset]
        if type_ == _H_KEYDATA:
            return bytes(mv[start + offset + 1:start + offset + length])
        if type_ == _H_OFFPAGE:
            if length != _H_OFFPAGE_SIZE:
                raise RpmdbError(f"off-page item of {length} bytes, not {_H_OFFPAGE_SIZE}")
            pgno, total = struct.unpack_from(self.order + "II", mv, start + offset + 4)
            return pgno, total
        raise RpmdbError(f"item type {type_} (only on-page 1 and off-page 3 hold rpm headers)")

    def records(self) -> Iterator[_Record]:
        """Bucket by bucket (rpm's bdb_ro hash_next), each bucket's chain of hash pages, each
        page's key/data pairs; the data items are the header blobs."""
        page_size, order = self.page_size, self.order
        for bucket in range(self.max_bucket + 1):
            pgno = bucket + self.spares[bucket.bit_length()]
            while pgno:
                where = f"bdb bucket {bucket} page {pgno}"
                try:
                    start, nxt, entries, _hf, type_ = self._page(pgno, "hash")
                    if type_ not in (_P_HASH, _P_HASH_UNSORTED):
                        raise RpmdbError(f"type {type_}, not a hash page ({_P_HASH})")
                    first_item = _BDB_PAGE_HEADER + 2 * entries
                    if first_item > page_size:
                        raise RpmdbError(f"{entries} entries cannot fit in a {page_size}-byte page")
                    inp = struct.unpack_from(f"{order}{entries}H", self.mv, start + _BDB_PAGE_HEADER)
                except RpmdbError as exc:
                    yield where, RpmdbError(f"{where}: {exc}")
                    break  # the rest of this chain cannot be trusted; the next bucket may be fine
                for k in range(0, entries - 1, 2):
                    label = f"{where} item {k + 1} (offset {start + inp[k + 1]})"
                    try:
                        key_off, val_off = inp[k], inp[k + 1]
                        key_end = page_size if k == 0 else inp[k - 1]
                        if not first_item <= val_off < key_off < key_end <= page_size:
                            raise RpmdbError(f"item offsets {val_off}/{key_off}/{key_end} out of order "
                                             f"or outside {first_item}..{page_size}")
                        if self._item(start, key_off, key_end - key_off) == b"\0\0\0\0":
                            continue  # record 0: rpm's "next header instance" counter, not a package
                        value = self._item(start, val_off, key_off - val_off)
                        yield label, value if isinstance(value, bytes) else self._overflow(*value)
                    except RpmdbError as exc:
                        yield label, RpmdbError(f"{label}: {exc}")
                pgno = nxt


# NDB ---------------------------------------------------------------------------------------

_NDB_HEADER: Final = struct.Struct("<4sIIII")  # magic, version, generation, slotnpages, nextpkgidx
_NDB_SLOT: Final = struct.Struct("<4sIII")  # "Slot", pkgidx, blkoff, blkcnt
_NDB_BLOB_HEAD: Final = struct.Struct("<4sIII")  # "BlbS", pkgidx, timestamp, bloblen
_NDB_BLOB_TAIL: Final = struct.Struct("<II4s")  # adler32, bloblen, "BlbE"
_NDB_PAGE_SIZE: Final = 4096
_NDB_SLOT_SIZE: Final = 16
_NDB_BLK_SIZE: Final = 16
_NDB_FIRST_SLOT: Final = 2  # the 32-byte file header takes the first two slots


def _ndb_records(mv: memoryview) -> Iterator[_Record]:
    """Slots in file order (as go-rpmdb; rpm itself lists them by block offset)."""
    if len(mv) < _NDB_HEADER.size:
        raise RpmdbError(f"ndb: {len(mv)} bytes, shorter than the {_NDB_HEADER.size}-byte header")
    magic, version, _generation, slot_pages, _next = _NDB_HEADER.unpack_from(mv, 0)
    if magic != _NDB_MAGIC:
        raise RpmdbError("ndb: no RpmP magic at offset 0")
    if version != 0:
        raise RpmdbError(f"ndb: unsupported version {version} (offset 4)")
    if not 1 <= slot_pages <= NDB_MAX_SLOT_PAGES:
        raise RpmdbError(f"ndb: {slot_pages} slot pages, not 1..{NDB_MAX_SLOT_PAGES} (offset 12)")
    if slot_pages * _NDB_PAGE_SIZE > len(mv):
        raise RpmdbError(f"ndb: truncated: {slot_pages} slot pages need {slot_pages * _NDB_PAGE_SIZE} bytes, "
                         f"the file has {len(mv)}")
    file_blocks = len(mv) // _NDB_BLK_SIZE
    first_blob_block = slot_pages * (_NDB_PAGE_SIZE // _NDB_BLK_SIZE)
    min_blocks = -(-(_NDB_BLOB_HEAD.size + _NDB_BLOB_TAIL.size) // _NDB_BLK_SIZE)
    seen: set[int] = set()
    # Slots may point into each other's blobs: each would be copied and parsed, so nested
    # overlapping blobs cost the file's size once per slot. Real blobs are disjoint, so
    # together they fit in the blob area: that bounds the bytes read at the file's size.
    blocks_left = file_blocks - first_blob_block
    for slot in range(_NDB_FIRST_SLOT, slot_pages * (_NDB_PAGE_SIZE // _NDB_SLOT_SIZE)):
        offset = slot * _NDB_SLOT_SIZE
        smagic, pkgidx, blkoff, blkcnt = _NDB_SLOT.unpack_from(mv, offset)
        if smagic != b"Slot":
            raise RpmdbError(f"ndb: slot {slot} at offset {offset} has no Slot magic: not a slot page")
        if not blkoff:
            continue  # a free slot
        label = f"ndb slot {slot} (package index {pkgidx}, offset {blkoff * _NDB_BLK_SIZE})"
        try:
            if not pkgidx or pkgidx in seen:
                raise RpmdbError("package index 0 or already used by another slot")
            seen.add(pkgidx)
            if blkoff < first_blob_block or blkcnt < min_blocks or blkoff + blkcnt > file_blocks:
                raise RpmdbError(f"blocks {blkoff}+{blkcnt} outside the blob area "
                                 f"{first_blob_block}..{file_blocks} (or too few)")
            if blkcnt > blocks_left:
                raise RpmdbError("the blobs of the slots so far add up to more than the file holds "
                                 "(they overlap); not read")
            blocks_left -= blkcnt
            start = blkoff * _NDB_BLK_SIZE
            bmagic, bidx, _stamp, length = _NDB_BLOB_HEAD.unpack_from(mv, start)
            if bmagic != b"BlbS":
                raise RpmdbError("no BlbS blob magic")
            if bidx != pkgidx:
                raise RpmdbError(f"the blob says package index {bidx}")
            need = -(-(_NDB_BLOB_HEAD.size + length + _NDB_BLOB_TAIL.size) // _NDB_BLK_SIZE)
            if need != blkcnt:
                raise RpmdbError(f"a {length}-byte blob needs {need} blocks, the slot has {blkcnt}")
            _adler, tail_length, tmagic = _NDB_BLOB_TAIL.unpack_from(
                mv, start + blkcnt * _NDB_BLK_SIZE - _NDB_BLOB_TAIL.size)
            if tmagic != b"BlbE" or tail_length != length:
                raise RpmdbError("blob tail missing or with another length")
            body = start + _NDB_BLOB_HEAD.size
            yield label, bytes(mv[body:body + length])
        except RpmdbError as exc:
            yield label, RpmdbError(f"{label}: {exc}")


# SQLite ------------------------------------------------------------------------------------

_SQLITE_WAL_VERSION: Final = 2  # header bytes 18/19 (write/read format) of a WAL-mode file


def _sqlite_records(data: memoryview) -> Iterator[_Record]:
    """rows of Packages(hnum, blob), read from an in-memory copy, one row at a time.

    rpm keeps rpmdb.sqlite in WAL mode (header bytes 18/19 = 2), which an in-memory database
    cannot open ("unable to open database file"); those two bytes are set to 1 (rollback
    journal) in our copy. Only the main file is read: a -wal file next to it is not ours to
    see, just as go-rpmdb and syft read only the main file.

    The schema is the attacker's too: it could compute rows instead of storing them, so a
    database whose schema holds anything rpm never writes (a view, a trigger, a generated
    column) is refused before any row is read, and no value longer than
    SQLITE_MAX_VALUE_BYTES is made or read.
    """
    buf: memoryview | bytearray = data
    if len(data) >= 20 and data[18] == _SQLITE_WAL_VERSION and data[19] == _SQLITE_WAL_VERSION:
        buf = bytearray(data)
        buf[18:20] = b"\x01\x01"
    conn = sqlite3.connect(":memory:")
    steps = 0

    def progress() -> int:
        nonlocal steps
        steps += _SQLITE_PROGRESS_EVERY
        return 1 if steps > SQLITE_MAX_VM_STEPS else 0  # nonzero interrupts the statement

    try:
        conn.set_progress_handler(progress, _SQLITE_PROGRESS_EVERY)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, SQLITE_MAX_VALUE_BYTES)
        try:
            conn.deserialize(buf)
            # Functions named by the schema run only if marked harmless; none of ours is wanted.
            conn.execute("PRAGMA trusted_schema = OFF")
            conn.execute("PRAGMA query_only = ON")
            _check_sqlite_schema(conn)
            # hnum is the primary key (checked above), so its order needs no sort. Only an
            # integer hnum labels a row; blobs over the limit are named, not read (length() of
            # a stored blob reads only its header); anything not a blob is named by its type.
            cursor = conn.execute(
                "SELECT CASE WHEN typeof(hnum) = 'integer' THEN hnum ELSE '(not an integer)' END, "
                "typeof(blob), CASE WHEN typeof(blob) = 'blob' THEN length(blob) END, "
                "CASE WHEN typeof(blob) = 'blob' AND length(blob) <= ? THEN blob END "
                "FROM Packages ORDER BY hnum", (SQLITE_MAX_VALUE_BYTES,))
        except (sqlite3.Error, OverflowError, ValueError, MemoryError) as exc:
            raise RpmdbError(f"sqlite: cannot read the database: {exc}") from exc
        read = 0
        while True:
            try:
                row = cursor.fetchone()
            except (sqlite3.Error, MemoryError) as exc:
                # A corrupt page mid-table: keep what was read, say where it stopped.
                yield "sqlite Packages", RpmdbError(f"sqlite: reading Packages stopped after {read} rows: {exc}")
                return
            if row is None:
                return
            hnum, kind, length, blob = row
            read += 1
            label = f"sqlite Packages hnum {hnum}"
            if isinstance(blob, bytes):
                yield label, blob
            elif kind == "blob":
                yield label, RpmdbError(f"{label}: blob of {length} bytes, over the {SQLITE_MAX_VALUE_BYTES}-byte "
                                        f"limit (SQLITE_MAX_VALUE_BYTES)")
            else:
                yield label, RpmdbError(f"{label}: blob is {_SQLITE_TYPE_NAMES.get(kind, kind)}, not a BLOB")
    finally:
        conn.close()


#: typeof() names as Python's sqlite3 returns those values (the warnings predate typeof()).
_SQLITE_TYPE_NAMES: Final = {"text": "str", "integer": "int", "real": "float", "null": "NoneType"}


def _check_sqlite_schema(conn: sqlite3.Connection) -> None:
    """Refuses, with RpmdbError, a schema rpm would not write: rpm creates tables and indexes
    only, and Packages as (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)."""
    kind = conn.execute("SELECT type FROM sqlite_master WHERE name = 'Packages'").fetchone()
    if kind is None or kind[0] != "table":
        raise RpmdbError("sqlite: no Packages table")
    computed = conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('view', 'trigger') LIMIT 1").fetchone()
    if computed is not None:
        raise RpmdbError(f"sqlite: the schema has a {computed[0]} ({str(computed[1])[:64]!r}); rpm writes none, "
                         f"and its rows would be computed, not read")
    names, keys = set(), []
    for _cid, name, _type, _notnull, _default, pk, hidden in conn.execute("PRAGMA table_xinfo(Packages)"):
        if hidden in (2, 3):  # generated: VIRTUAL, STORED
            raise RpmdbError(f"sqlite: Packages column {str(name)[:64]!r} is generated (computed, not stored); "
                             f"rpm writes none")
        names.add(name)
        if pk:
            keys.append(name)
    if "blob" not in names or keys != ["hnum"]:
        raise RpmdbError("sqlite: the Packages table is not (hnum PRIMARY KEY, blob) as rpm writes it")


# -- entry point -----------------------------------------------------------------------------

def parse_rpmdb(data: bytes | bytearray | memoryview, *,
                max_packages: int = 100_000) -> tuple[list[RpmPackage], list[str]]:
    """All packages of an rpm database (BDB Packages, NDB Packages.db or rpmdb.sqlite).

    Returns (packages, warnings). A bad record is skipped with a warning naming it (bucket
    and page, NDB slot and package index, or SQLite hnum); reading stops, with a warning,
    after ``max_packages``. Raises RpmdbError when the database cannot be read at all,
    including when it has records but not one of them is readable.
    """
    if max_packages < 1:
        raise ValueError("max_packages must be at least 1")
    mv = memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
    kind = detect_format(mv)
    if kind == "bdb":
        records: Iterator[_Record] = _Bdb(mv).records()
    elif kind == "ndb":
        records = _ndb_records(mv)
    else:
        records = _sqlite_records(mv)
    packages: list[RpmPackage] = []
    warnings: list[str] = []
    bad = dropped = 0
    path_bytes_left = MAX_FILE_PATH_BYTES
    first_error = ""

    def warn(message: str) -> None:
        nonlocal dropped
        if len(warnings) < MAX_WARNINGS:
            warnings.append(message)
        else:
            dropped += 1

    with contextlib.closing(records):
        for label, blob in records:
            if isinstance(blob, RpmdbError):
                message = str(blob)
            else:
                if len(packages) >= max_packages:
                    warn(f"{kind}: more than {max_packages} packages; stopped reading at {label}")
                    break
                try:
                    package = parse_header_blob(blob, max_path_bytes=path_bytes_left)
                    path_bytes_left -= sum(len(f.path) for f in package.files)
                    packages.append(package)
                    continue
                except RpmdbError as exc:
                    message = f"{label}: {exc}"
            bad += 1
            first_error = first_error or message
            warn(message)
    if dropped:
        warnings.append(f"{dropped} more warnings not shown")
    if not packages and bad:
        raise RpmdbError(f"{kind}: no readable package ({bad} bad records); first: {first_error}")
    return packages, warnings
