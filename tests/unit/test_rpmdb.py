"""The pure-Python rpmdb reader against real databases and what `rpm -qa` (or go-rpmdb's test
suite, for NDB) says is in them; then against damaged copies of them, which must give an
RpmdbError (or the good packages plus a warning naming the bad one), never anything else.

Fixtures: tests/data/packagedb/rpmdb (see its README for origin and licenses).
"""

import ast
import json
import os
import random
import sqlite3
import struct
import time
import tracemalloc

import pytest

from analyzerd.catalogers import rpmdb
from analyzerd.catalogers.rpmdb import (
    RpmdbError,
    RpmFile,
    RpmPackage,
    detect_format,
    parse_header_blob,
    parse_rpmdb,
)
from tests.peak_memory import peak_growth

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "data", "packagedb", "rpmdb")

CASES = [
    ("bdb-small", "Packages", "bdb"),
    ("bdb-libuuid", "Packages", "bdb"),
    ("ndb-sle15-bci", "Packages.db", "ndb"),
    ("sqlite-cbl-mariner-2.0", "rpmdb.sqlite", "sqlite"),
]

#: A malformed input must be rejected (or read) quickly: no loop may run away.
QUICK = 2.0


def fixture(folder: str, name: str) -> bytes:
    with open(os.path.join(FIXTURES, folder, name), "rb") as f:
        return f.read()


def expected(folder: str) -> list[dict]:
    with open(os.path.join(FIXTURES, folder, "expected.json"), encoding="utf-8") as f:
        return json.load(f)["packages"]


def as_expected(p: RpmPackage, with_files: bool) -> dict:
    """A package in expected.json's terms: epoch 0 when absent, octal mode strings."""
    out = {"name": p.name, "epoch": p.epoch or 0, "version": p.version, "release": p.release, "arch": p.arch,
           "sourceRpm": p.source_rpm, "size": p.size, "license": p.license, "vendor": p.vendor}
    if with_files:
        out["files"] = [{"path": f.path, "digest": f.digest, "mode": format(f.mode, "o")} for f in p.files]
    return out


def nevra(p: dict) -> tuple:
    return p["name"], p["epoch"], p["version"], p["release"], p["arch"]


def rejected(data, match: str | None = None) -> RpmdbError:
    """parse_rpmdb raises RpmdbError (and nothing else), quickly."""
    start = time.perf_counter()
    with pytest.raises(RpmdbError, match=match) as info:
        parse_rpmdb(data)
    assert time.perf_counter() - start < QUICK
    return info.value


def sqlite_blobs() -> list[bytes]:
    """Header blobs straight out of the sqlite fixture, read with sqlite3 itself."""
    data = bytearray(fixture("sqlite-cbl-mariner-2.0", "rpmdb.sqlite"))
    data[18] = data[19] = 1  # WAL -> rollback journal, or an in-memory copy cannot open it
    conn = sqlite3.connect(":memory:")
    conn.deserialize(bytes(data))
    try:
        return [row[0] for row in conn.execute("SELECT blob FROM Packages ORDER BY hnum")]
    finally:
        conn.close()


# -- builders for inputs the fixtures do not have --------------------------------------------

STRING, BIN, INT16, INT32, INT64, STRING_ARRAY, I18NSTRING = 6, 7, 3, 4, 5, 8, 9


def header_blob(entries: list[tuple[int, int, object]]) -> bytes:
    """An rpm header blob (il, dl, index, data) from (tag, type, value), aligned like rpm's;
    the strings of a string array may be bytes (not UTF-8, say)."""
    index, data = [], bytearray()
    for tag, type_, value in entries:
        data += b"\0" * (-len(data) % {INT16: 2, INT32: 4, INT64: 8}.get(type_, 1))
        offset = len(data)
        if type_ == STRING:
            payload, count = value.encode() + b"\0", 1
        elif type_ in (STRING_ARRAY, I18NSTRING):
            payload = b"".join((v if isinstance(v, bytes) else v.encode()) + b"\0" for v in value)
            count = len(value)
        elif type_ == BIN:
            payload, count = value, len(value)
        else:
            code = {INT16: "H", INT32: "I", INT64: "Q"}[type_]
            payload, count = struct.pack(f">{len(value)}{code}", *value), len(value)
        data += payload
        index.append(struct.pack(">IIiI", tag, type_, offset, count))
    return struct.pack(">II", len(index), len(data)) + b"".join(index) + bytes(data)


def simple_header(name: str, **extra) -> bytes:
    entries = [(1000, STRING, name), (1001, STRING, "1.0"), (1002, STRING, "1"), (1022, STRING, "x86_64")]
    entries += extra.get("more", [])
    return header_blob(entries)


def bdb_file(values: list[bytes], *, order: str = "<", page_size: int = 4096) -> bytes:
    """A one-bucket Berkeley DB hash file as rpm writes Packages: record 0 (the instance
    counter), then one (instance, header) pair per hash page, chained through next_pgno;
    values over a quarter page go to overflow pages, smaller ones stay on the page."""
    hash_pages = len(values) + 1
    pages: dict[int, bytes] = {}
    next_free = hash_pages + 1

    def page(pgno, nxt, entries, hf, type_, body: bytes = b"") -> bytes:
        head = bytes(8) + struct.pack(order + "IIIHHBB", pgno, 0, nxt, entries, hf, 0, type_)
        return (head + body).ljust(page_size, b"\0")

    pairs = [(struct.pack(order + "I", 0), struct.pack(order + "I", len(values) + 1))]
    pairs += [(struct.pack(order + "I", i + 1), v) for i, v in enumerate(values)]
    for n, (key, value) in enumerate(pairs):
        pgno = n + 1
        if len(value) > page_size // 4:
            chunk = page_size - 26
            pieces = [value[i:i + chunk] for i in range(0, len(value), chunk)]
            first = next_free
            for j, piece in enumerate(pieces):
                nxt = next_free + 1 if j + 1 < len(pieces) else 0
                pages[next_free] = page(next_free, nxt, 1, len(piece), 7, piece)
                next_free += 1
            item = b"\x03\0\0\0" + struct.pack(order + "II", first, len(value))
        else:
            item = b"\x01" + value
        key_item = b"\x01" + key
        key_off = page_size - len(key_item)
        val_off = key_off - len(item)
        raw = bytearray(page(pgno, pgno + 1 if pgno < hash_pages else 0, 2, val_off, 13,
                             struct.pack(order + "HH", key_off, val_off)))
        raw[val_off:key_off] = item
        raw[key_off:] = key_item
        pages[pgno] = bytes(raw)
    last = next_free - 1
    meta = bytearray(page_size)
    struct.pack_into(order + "IIII", meta, 8, 0, 0x061561, 9, page_size)
    meta[25] = 8  # P_HASHMETA
    struct.pack_into(order + "I", meta, 32, last)
    struct.pack_into(order + "III", meta, 72, 0, 0, 0)  # max_bucket, high_mask, low_mask
    struct.pack_into(order + "I", meta, 96, 1)  # spares[0]: bucket 0 is page 1
    return bytes(meta) + b"".join(pages[n] for n in range(1, last + 1))


def bdb_offpage_item(data: bytes) -> tuple[int, int]:
    """(page size, file offset of the first H_OFFPAGE data item) in a little-endian BDB file."""
    page_size, last = struct.unpack_from("<I", data, 20)[0], struct.unpack_from("<I", data, 32)[0]
    for pgno in range(1, last + 1):
        start = pgno * page_size
        if data[start + 25] != 13:
            continue
        entries = struct.unpack_from("<H", data, start + 20)[0]
        for k in range(1, entries, 2):
            off = struct.unpack_from("<H", data, start + 26 + 2 * k)[0]
            if data[start + off] == 3:
                return page_size, start + off
    raise AssertionError("no off-page item")


def ndb_slots(data: bytes) -> list[tuple[int, int, int]]:
    """(pkgidx, blkoff, blkcnt) of the used NDB slots, in slot order."""
    slot_pages = struct.unpack_from("<I", data, 12)[0]
    out = []
    for slot in range(2, slot_pages * 256):
        magic, pkgidx, blkoff, blkcnt = struct.unpack_from("<4sIII", data, slot * 16)
        assert magic == b"Slot"
        if blkoff:
            out.append((pkgidx, blkoff, blkcnt))
    return out


# -- golden ----------------------------------------------------------------------------------

@pytest.mark.parametrize("folder,name,kind", CASES, ids=[c[0] for c in CASES])
def test_golden(folder, name, kind):
    data = fixture(folder, name)
    want = expected(folder)
    packages, warnings = parse_rpmdb(data)
    assert warnings == []
    with_files = all("files" in p for p in want)
    got = [as_expected(p, with_files) for p in packages]
    # the same set of packages, nothing more (package order is the container's, not meaningful)
    assert sorted(map(nevra, got)) == sorted(map(nevra, want))
    by_nevra = {nevra(p): p for p in got}
    assert len(by_nevra) == len(got)
    for w in want:
        g = by_nevra[nevra(w)]
        for field in w:
            if field == "files":
                continue
            assert g[field] == w[field], (w["name"], field)
        if with_files:
            # files in header order, which is rpm's (rpm -ql) order: digests and modes are
            # parallel arrays, so order matters
            assert g["files"] == w["files"], w["name"]


def test_golden_sqlite_totals():
    packages, _ = parse_rpmdb(fixture("sqlite-cbl-mariner-2.0", "rpmdb.sqlite"))
    assert len(packages) == 129
    assert sum(len(p.files) for p in packages) == 7269
    assert {p.digest_algorithm for p in packages} == {"sha256"}
    # epoch: present for three packages, absent (None, shown as 0 by rpm -qa) for the rest
    assert sorted(p.name for p in packages if p.epoch is not None) == [
        "ca-certificates-base", "ca-certificates-shared", "ca-certificates-tools"]
    curl = next(p for p in packages if p.name == "curl")
    f = next(f for f in curl.files if f.path == "/usr/bin/curl")
    assert f.mode == 0o100755 and f.size > 0 and len(f.digest) == 64


def test_ndb_files_are_consistent():
    """expected.json has no files for NDB (go-rpmdb's expectations): check their shape."""
    packages, _ = parse_rpmdb(fixture("ndb-sle15-bci", "Packages.db"))
    glibc = next(p for p in packages if p.name == "glibc")
    assert any(f.path == "/lib64/libc.so.6" for f in glibc.files)
    for p in packages:
        assert p.digest_algorithm == "sha256"
        for f in p.files:
            assert f.path.startswith("/")
            assert len(f.digest) in (0, 64)
            assert f.mode & 0o170000 in (0o100000, 0o040000, 0o120000) or f.mode == 0


@pytest.mark.parametrize("folder,name,kind", CASES, ids=[c[0] for c in CASES])
def test_detect_format(folder, name, kind):
    data = fixture(folder, name)
    assert detect_format(data) == kind
    assert detect_format(memoryview(data)) == kind


def test_buffer_types():
    data = fixture("bdb-libuuid", "Packages")
    want = parse_rpmdb(data)
    assert parse_rpmdb(bytearray(data)) == want
    assert parse_rpmdb(memoryview(data)) == want


def test_bdb_big_endian():
    """Both byte orders exist (rpm's bdb_ro handles "swapped" files): the same blob in a
    big-endian file reads the same."""
    real, _ = parse_rpmdb(fixture("bdb-libuuid", "Packages"))
    blob = next(b for b in sqlite_blobs() if parse_header_blob(b).name == "curl")
    for order in "<>":
        data = bdb_file([blob, simple_header("tiny")], order=order)
        assert detect_format(data) == "bdb"
        packages, warnings = parse_rpmdb(data)
        assert warnings == []
        assert [p.name for p in packages] == ["curl", "tiny"]  # overflow chain, then on-page value
    assert real[0].name == "libuuid"


def test_bdb_page_sizes():
    blob = sqlite_blobs()[0]
    for size in (512, 1024, 65536):
        packages, _ = parse_rpmdb(bdb_file([blob, blob], page_size=size))
        assert [p.name for p in packages] == ["mariner-release"] * 2


# -- header fields ---------------------------------------------------------------------------

def test_header_fields_and_defaults():
    p = parse_header_blob(simple_header("x", more=[(1003, INT32, [3]), (1009, INT32, [10]),
                                                   (5009, INT64, [1 << 40])]))
    assert (p.name, p.epoch, p.version, p.release, p.arch) == ("x", 3, "1.0", "1", "x86_64")
    assert p.size == 1 << 40  # LONGSIZE wins over SIZE
    assert p.digest_algorithm == "md5"  # no FILEDIGESTALGO: rpm's default
    assert (p.source_rpm, p.license, p.vendor, p.files) == ("", "", "", ())
    assert parse_header_blob(simple_header("y")).epoch is None


def test_header_i18n_and_region_and_dribble():
    """I18NSTRING reads its first (C locale) value; a region tag first is skipped over; a
    tag repeated after the region (a "dribble") replaces the region's copy, as in rpm."""
    region = struct.pack(">IIiI", 63, BIN, -16 * 4, 16)
    blob = header_blob([(63, BIN, region), (1000, STRING, "n"), (1014, I18NSTRING, ["MIT", "MIT-de"]),
                        (1011, STRING, "old"), (1011, STRING, "new")])
    p = parse_header_blob(blob)
    assert (p.name, p.license, p.vendor) == ("n", "MIT", "new")


def test_old_filenames_and_long_sizes():
    blob = simple_header("old", more=[
        (1027, STRING_ARRAY, ["/etc/a", "/usr/bin/b"]),
        (1030, INT16, [0o100644, 0o100755]),
        (1035, STRING_ARRAY, ["d41d8cd98f00b204e9800998ecf8427e", ""]),
        (1028, INT32, [1, 2]),
        (5008, INT64, [1 << 33, 5]),
        (5011, INT32, [2]),
    ])
    p = parse_header_blob(blob)
    assert p.files == (RpmFile("/etc/a", "d41d8cd98f00b204e9800998ecf8427e", 0o100644, 1 << 33),
                       RpmFile("/usr/bin/b", "", 0o100755, 5))
    assert p.digest_algorithm == "sha1"


def test_file_modes_are_unsigned():
    blob = simple_header("m", more=[(1117, STRING_ARRAY, ["f"]), (1118, STRING_ARRAY, ["/d/"]),
                                    (1116, INT32, [0]), (1030, INT16, [0o120777]), (5011, INT32, [10])])
    p = parse_header_blob(blob)
    assert p.files == (RpmFile("/d/f", "", 0o120777, 0),)  # 0xA1FF: negative as a signed int16
    assert p.digest_algorithm == "sha512"


def test_gpg_pubkey_is_kept():
    """No fixture's expected.json excludes gpg-pubkey (none contains one) and `rpm -qa`
    lists them, so they are packages like any other here; callers decide."""
    p = parse_header_blob(header_blob([(1000, STRING, "gpg-pubkey"), (1001, STRING, "fd431d51"),
                                       (1002, STRING, "4ae0493b")]))
    assert (p.name, p.arch, p.files) == ("gpg-pubkey", "", ())
    packages, _ = parse_rpmdb(bdb_file([header_blob([(1000, STRING, "gpg-pubkey")]), simple_header("a")]))
    assert [p.name for p in packages] == ["gpg-pubkey", "a"]


# -- malformed header blobs ------------------------------------------------------------------

def _entry_offset(blob: bytes, tag: int) -> int:
    il = struct.unpack_from(">I", blob, 0)[0]
    for i in range(il):
        if struct.unpack_from(">I", blob, 8 + 16 * i)[0] == tag:
            return 8 + 16 * i
    raise AssertionError(tag)


def blob_error(blob: bytes, match: str) -> None:
    start = time.perf_counter()
    with pytest.raises(RpmdbError, match=match):
        parse_header_blob(blob)
    assert time.perf_counter() - start < QUICK


def test_blob_offset_out_of_range():
    blob = bytearray(sqlite_blobs()[0])
    dl = struct.unpack_from(">I", blob, 4)[0]
    at = _entry_offset(blob, 1000)
    struct.pack_into(">i", blob, at + 8, dl + 1)
    blob_error(bytes(blob), r"NAME \(1000\).*offset")
    struct.pack_into(">i", blob, at + 8, -4)
    blob_error(bytes(blob), r"NAME \(1000\).*offset")
    struct.pack_into(">i", blob, at + 8, dl)  # at the very end: no NUL left
    blob_error(bytes(blob), r"NAME \(1000\)")


def test_blob_counts_out_of_range():
    blob = bytearray(sqlite_blobs()[1])
    at = _entry_offset(blob, 1030)  # FILEMODES, INT16
    struct.pack_into(">I", blob, at + 12, 0x0FFFFFF0)
    blob_error(bytes(blob), r"FILEMODES \(1030\)")
    blob = bytearray(sqlite_blobs()[1])
    at = _entry_offset(blob, 1117)  # BASENAMES: more strings than the data has NULs
    struct.pack_into(">I", blob, at + 12, 1_000_000)
    blob_error(bytes(blob), r"BASENAMES \(1117\)")
    blob = bytearray(sqlite_blobs()[1])
    at = _entry_offset(blob, 1000)  # NAME as STRING with count 2
    struct.pack_into(">I", blob, at + 12, 2)
    blob_error(bytes(blob), r"NAME \(1000\).*count")


def test_blob_il_dl_too_large():
    blob = bytearray(sqlite_blobs()[0])
    good = bytes(blob)
    struct.pack_into(">I", blob, 0, 0x10000)
    blob_error(bytes(blob), "il=65536")
    blob[:] = good
    struct.pack_into(">I", blob, 4, 0x10000000)
    blob_error(bytes(blob), "dl=268435456")
    blob[:] = good
    struct.pack_into(">I", blob, 0, 5000)  # within rpm's cap, but more than the blob holds
    blob_error(bytes(blob), "shorter than")
    blob_error(good[:len(good) // 2], "shorter than")
    blob_error(good[:5], "intro")
    blob_error(b"", "intro")


def test_blob_inconsistent_file_arrays():
    base = [(1117, STRING_ARRAY, ["a", "b"]), (1118, STRING_ARRAY, ["/"])]
    blob_error(simple_header("p", more=base + [(1116, INT32, [0])]), r"DIRINDEXES")
    blob_error(simple_header("p", more=base + [(1116, INT32, [0, 1])]), r"DIRINDEXES.*\[1\] = 1")
    blob_error(simple_header("p", more=base + [(1116, INT32, [0, 0]), (1030, INT16, [1])]), "FILEMODES")
    blob_error(simple_header("p", more=base + [(1116, INT32, [0, 0]), (1035, STRING, "x")]), "FILEDIGESTS")
    blob_error(simple_header("p", more=[(1003, STRING, "1")]), r"EPOCH \(1003\).*integer")
    blob_error(header_blob([(1000, INT32, [1])]), r"NAME.*string")
    blob_error(header_blob([(1001, STRING, "1")]), "no NAME")
    blob_error(header_blob([(1000, STRING, "n"), (1009, INT32, [])]), r"SIZE \(1009\).*count 0")


def test_blob_unknown_type():
    blob = bytearray(simple_header("t"))
    struct.pack_into(">I", blob, 8 + 16 * 2 + 4, 42)
    blob_error(bytes(blob), r"RELEASE \(1002\): unknown data type 42")


def test_blob_fuzz():
    """Random damage to real blobs: a package or an RpmdbError, nothing else."""
    rng = random.Random(1)
    blobs = sqlite_blobs()[:20]
    outcomes = {"ok": 0, "error": 0}
    start = time.perf_counter()
    for _ in range(1500):
        blob = bytearray(rng.choice(blobs))
        il = struct.unpack_from(">I", blob, 0)[0]
        for _ in range(rng.randint(1, 6)):
            # mostly the intro and the index, where damage changes the structure
            pos = rng.randrange(min(len(blob), 8 + 16 * il + 64)) if rng.random() < 0.8 else rng.randrange(len(blob))
            blob[pos] = rng.randrange(256)
        if rng.random() < 0.1:
            del blob[rng.randrange(len(blob)):]
        try:
            assert isinstance(parse_header_blob(bytes(blob)), RpmPackage)
            outcomes["ok"] += 1
        except RpmdbError:
            outcomes["error"] += 1
    assert outcomes["ok"] and outcomes["error"]
    assert time.perf_counter() - start < 5 * QUICK


# -- malformed databases ---------------------------------------------------------------------

def test_empty_and_garbage():
    assert "empty" in str(rejected(b""))
    rng = random.Random(7)
    for n in (1, 3, 15, 16, 100, 4096, 100_000):
        data = rng.randbytes(n)
        if data[:4] == b"RpmP" or data[:16] == b"SQLite format 3\0":
            continue
        rejected(data, "not an rpm database|btree|bdb")
        with pytest.raises(RpmdbError):
            detect_format(data)
    rejected(b"\0" * 8192, "not an rpm database")


def test_magic_then_garbage():
    rng = random.Random(8)
    junk = rng.randbytes(20_000)
    rejected(b"RpmP" + junk, "ndb")
    rejected(b"SQLite format 3\0" + junk, "sqlite")
    for order in "<>":
        meta = bytearray(junk[:4096])
        struct.pack_into(order + "I", meta, 12, 0x061561)
        rejected(bytes(meta), "bdb")
        struct.pack_into(order + "I", meta, 12, 0x053162)
        rejected(bytes(meta), "btree")


def test_bdb_truncated():
    data = fixture("bdb-libuuid", "Packages")
    for cut in (len(data) - 1, len(data) // 2, 4096, 600):
        rejected(data[:cut], "truncated")
    rejected(data[:100], "shorter than")


def test_bdb_page_number_past_the_end():
    data = bytearray(fixture("bdb-libuuid", "Packages"))
    _, item = bdb_offpage_item(data)
    struct.pack_into("<I", data, item + 4, 0xFFFF)
    error = rejected(bytes(data), "outside pages 1..22")
    assert "bdb bucket 1 page 2 item 1" in str(error)
    # a bucket whose page is past the end
    data = bytearray(fixture("bdb-libuuid", "Packages"))
    struct.pack_into("<I", data, 96 + 4, 1000)  # spares[1]
    rejected(bytes(data), "bucket 1 page 1001.*outside")
    # more buckets than pages
    data = bytearray(fixture("bdb-libuuid", "Packages"))
    struct.pack_into("<I", data, 72, 0xFFFFFFF0)
    rejected(bytes(data), "buckets cannot fit")


def test_bdb_overflow_chain_cycle():
    data = bytearray(fixture("bdb-libuuid", "Packages"))
    page_size, item = bdb_offpage_item(data)
    first = struct.unpack_from("<I", data, item + 4)[0]
    # the first overflow page points to itself ...
    looped = bytearray(data)
    struct.pack_into("<I", looped, first * page_size + 16, first)
    rejected(bytes(looped), f"overflow page {first} reached twice")
    # ... or a later page points back to the first
    looped = bytearray(data)
    struct.pack_into("<I", looped, (first + 5) * page_size + 16, first)
    rejected(bytes(looped), f"overflow page {first} reached twice")
    # a hash page chain that loops back on itself
    looped = bytearray(data)
    struct.pack_into("<I", looped, 2 * page_size + 16, 2)
    packages, warnings = parse_rpmdb(bytes(looped))
    assert [p.name for p in packages] == ["libuuid"]
    assert warnings == ["bdb bucket 1 page 2: hash page 2 reached twice (a cycle or a shared page)"]


def test_bdb_overflow_chain_short_or_wrong():
    data = bytearray(fixture("bdb-libuuid", "Packages"))
    page_size, item = bdb_offpage_item(data)
    first = struct.unpack_from("<I", data, item + 4)[0]
    cut = bytearray(data)
    struct.pack_into("<I", cut, (first + 3) * page_size + 16, 0)
    rejected(bytes(cut), "overflow chain ends at page")
    wrong = bytearray(data)
    wrong[(first + 3) * page_size + 25] = 13
    rejected(bytes(wrong), "has type 13, not 7")
    huge = bytearray(data)
    struct.pack_into("<I", huge, item + 8, 0xFFFFFFFF)
    rejected(bytes(huge), "overflow item of 4294967295 bytes")


def test_bdb_one_bad_blob_among_good():
    blobs = sqlite_blobs()[:3]
    bad = bytearray(blobs[1])
    struct.pack_into(">I", bad, 0, 0x7FFFFFFF)
    packages, warnings = parse_rpmdb(bdb_file([blobs[0], bytes(bad), blobs[2]]))
    assert [p.name for p in packages] == [parse_header_blob(blobs[0]).name, parse_header_blob(blobs[2]).name]
    assert len(warnings) == 1
    assert warnings[0].startswith("bdb bucket 0 page 3 item 1") and "il=2147483647" in warnings[0]
    # the cataloger keeps the good packages and passes the warning on, naming the database file
    from analyzerd.catalogers.rpm import parse_rpm
    result = parse_rpm("/var/lib/rpm/Packages", bdb_file([blobs[0], bytes(bad), blobs[2]]))
    assert len(result.packages) == 2 and result.warnings == [f"/var/lib/rpm/Packages: {warnings[0]}"]


def test_ndb_one_bad_blob_among_good():
    data = bytearray(fixture("ndb-sle15-bci", "Packages.db"))
    slots = ndb_slots(bytes(data))
    want = {p["name"] for p in expected("ndb-sle15-bci")}
    (idx1, off1, cnt1), (idx2, off2, cnt2) = slots[4], slots[9]
    name1 = parse_header_blob(bytes(data[off1 * 16 + 16:(off1 + cnt1) * 16])).name
    name2 = parse_header_blob(bytes(data[off2 * 16 + 16:(off2 + cnt2) * 16])).name
    struct.pack_into(">I", data, off1 * 16 + 16, 0xFFFFFFFF)  # the header's il
    data[off2 * 16:off2 * 16 + 4] = b"XXXX"  # the blob magic
    packages, warnings = parse_rpmdb(bytes(data))
    assert {p.name for p in packages} == want - {name1, name2}
    assert len(warnings) == 2
    assert f"package index {idx1}" in warnings[0] and "il=4294967295" in warnings[0]
    assert f"package index {idx2}" in warnings[1] and "BlbS" in warnings[1]


def test_ndb_truncated():
    data = fixture("ndb-sle15-bci", "Packages.db")
    packages, warnings = parse_rpmdb(data[:len(data) // 2])
    assert 0 < len(packages) < 35
    assert len(packages) + len(warnings) == 35
    assert all(w.startswith("ndb slot ") and "outside the blob area" in w for w in warnings)
    rejected(data[:3000], "truncated")
    rejected(data[:10], "shorter than")


def test_ndb_bad_slots():
    data = bytearray(fixture("ndb-sle15-bci", "Packages.db"))
    bad = bytearray(data)
    bad[5 * 16:5 * 16 + 4] = b"Xlot"
    rejected(bytes(bad), "slot 5 at offset 80 has no Slot magic")
    bad = bytearray(data)
    struct.pack_into("<I", bad, 12, 100_000)
    rejected(bytes(bad), "slot pages")
    bad = bytearray(data)
    struct.pack_into("<I", bad, 4, 1)
    rejected(bytes(bad), "version")
    # every slot pointing past the end: no package readable at all
    bad = bytearray(data)
    for slot in range(2, 256):
        if struct.unpack_from("<I", bad, slot * 16 + 8)[0]:
            struct.pack_into("<I", bad, slot * 16 + 8, 0xFFFFFFF0)
    rejected(bytes(bad), "no readable package")


def nested_ndb(inner: bytes, count: int, filler_blocks: int) -> bytes:
    """An NDB file whose ``count`` slots point at blobs nested like parentheses: each starts a
    block after the one holding it and ends before it ends. The innermost holds ``inner``;
    the others hold the rest (other blobs' headers and tails, ``filler_blocks`` of zeros)."""
    page = 4096
    inner_blocks = -(-(16 + len(inner) + 12) // 16)
    total_blocks = 2 * (count - 1) + inner_blocks + filler_blocks
    first = page // 16
    area = bytearray(total_blocks * 16)
    slots = []
    for depth in range(count):  # 0: outermost
        start = depth
        blocks = total_blocks - 2 * depth if depth < count - 1 else inner_blocks
        if depth == count - 1:
            start = count - 1 + filler_blocks // 2
        length = len(inner) if depth == count - 1 else blocks * 16 - 28
        struct.pack_into("<4sIII", area, start * 16, b"BlbS", depth + 1, 0, length)
        if depth == count - 1:
            area[start * 16 + 16:start * 16 + 16 + length] = inner
        struct.pack_into("<II4s", area, (start + blocks) * 16 - 12, 0, length, b"BlbE")
        slots.append((depth + 1, first + start, blocks))
    header = bytearray(page)
    struct.pack_into("<4sIIII", header, 0, b"RpmP", 0, 0, 1, count + 1)
    for slot in range(2, 256):
        struct.pack_into("<4sIII", header, slot * 16, b"Slot", 0, 0, 0)
    for slot, (pkgidx, blkoff, blkcnt) in enumerate(reversed(slots), start=2):  # innermost first
        struct.pack_into("<4sIII", header, slot * 16, b"Slot", pkgidx, blkoff, blkcnt)
    return bytes(header + area)


def test_ndb_overlapping_blobs_are_read_at_most_once_over():
    """Nested blobs would each be copied and parsed: the file's size once per slot. Together
    the blobs read never exceed the file's blob area; the rest are named, not read."""
    data = nested_ndb(simple_header("inner"), count=200, filler_blocks=64 * 1024)  # a 1 MiB file
    packages, warnings = parse_rpmdb(data)
    assert [p.name for p in packages] == ["inner"]
    overlapping = [w for w in warnings if w.endswith("(they overlap); not read")]
    assert len(overlapping) >= 197 and len(warnings) == 199


def test_file_paths_built_from_a_header_are_bounded():
    """One 4,000-byte dirname shared by 100,000 one-byte basenames: a 0.6 MB header that
    would build 400 MB of paths. Refused after counting, before building any."""
    blob = simple_header("wide", more=[(1116, INT32, [0] * 100_000), (1117, STRING_ARRAY, ["a"] * 100_000),
                                       (1118, STRING_ARRAY, ["/" + "d" * 3998 + "/"])])
    assert len(blob) < 700_000
    tracemalloc.start()
    try:
        with pytest.raises(RpmdbError, match="100000 file paths of 400100000 bytes in all, over the"):
            parse_header_blob(blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20


def test_file_path_budget_is_per_database(monkeypatch):
    monkeypatch.setattr(rpmdb, "MAX_FILE_PATH_BYTES", 10_000)
    headers = [simple_header(name, more=[(1116, INT32, [0]), (1117, STRING_ARRAY, ["f"]),
                                         (1118, STRING_ARRAY, ["/" + "d" * 3998 + "/"])]) for name in "abc"]
    packages, warnings = parse_rpmdb(sqlite_rpmdb(RPM_SCHEMA, headers))
    assert [p.name for p in packages] == ["a", "b"]
    assert warnings == ["sqlite Packages hnum 3: 1 file paths of 4001 bytes in all, over the 1998 bytes left of "
                        "MAX_FILE_PATH_BYTES"]


def test_sqlite_without_packages_table_or_a_view():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE Other (x)")
    rejected(conn.serialize(), "no Packages table")
    conn.execute("CREATE VIEW Packages AS WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) "
                 "SELECT x AS hnum, x AS blob FROM r")
    rejected(conn.serialize(), "no Packages table")
    conn.close()


def test_sqlite_one_bad_blob_among_good():
    blobs = sqlite_blobs()[:4]
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
    conn.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b,) for b in blobs])
    conn.execute("UPDATE Packages SET blob = ? WHERE hnum = 2", (blobs[1][:100],))
    conn.execute("UPDATE Packages SET blob = 'text' WHERE hnum = 3")
    packages, warnings = parse_rpmdb(conn.serialize())
    conn.close()
    assert [p.name for p in packages] == [parse_header_blob(blobs[i]).name for i in (0, 3)]
    assert warnings[0].startswith("sqlite Packages hnum 2: header blob of 100 bytes is shorter")
    assert warnings[1] == "sqlite Packages hnum 3: blob is str, not a BLOB"


def test_sqlite_work_is_bounded(monkeypatch):
    monkeypatch.setattr(rpmdb, "SQLITE_MAX_VM_STEPS", 100)
    monkeypatch.setattr(rpmdb, "_SQLITE_PROGRESS_EVERY", 10)
    rejected(fixture("sqlite-cbl-mariner-2.0", "rpmdb.sqlite"), "interrupted")


def sqlite_rpmdb(schema: str, blobs: list[bytes], *, more: tuple[str, ...] = ()) -> bytes:
    """An rpmdb.sqlite built by sqlite3 itself: the Packages table as ``schema`` says, the
    blobs inserted in order, then the ``more`` statements; serialized."""
    conn = sqlite3.connect(":memory:")
    conn.execute(schema)
    conn.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b,) for b in blobs])
    for statement in more:
        conn.execute(statement)
    data = conn.serialize()
    conn.close()
    return data


RPM_SCHEMA = "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)"
GENERATED_BOMB_SETUP = """
    import sqlite3
    from analyzerd.catalogers.rpmdb import parse_rpmdb
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, x INTEGER, "
                 "blob BLOB GENERATED ALWAYS AS (zeroblob(50000000)))")
    conn.executemany("INSERT INTO Packages (x) VALUES (?)", [(i,) for i in range(20)])
    data = conn.serialize()
    conn.close()
"""


def test_sqlite_generated_column_bomb_is_refused_without_allocating():
    """The confirmed attack: 20 rows computing 50 MB blobs each, in an 8 KiB file. It used to
    grow peak RSS by ~1 GB; now the schema is refused before any row is read."""
    growth, outcome = peak_growth(GENERATED_BOMB_SETUP, "parse_rpmdb(data)")
    assert outcome == ("RpmdbError: sqlite: Packages column 'blob' is generated (computed, not stored); "
                       "rpm writes none")
    assert growth < 16 << 20


@pytest.mark.parametrize("statement,kind", [
    ("CREATE VIEW Elsewhere AS SELECT zeroblob(50000000) AS b", "view"),
    ("CREATE TRIGGER Grow AFTER INSERT ON Packages BEGIN SELECT zeroblob(50000000); END", "trigger"),
])
def test_sqlite_views_and_triggers_are_refused(statement, kind):
    rejected(sqlite_rpmdb(RPM_SCHEMA, [simple_header("a")], more=(statement,)), f"the schema has a {kind}")


def test_sqlite_packages_must_be_keyed_by_hnum():
    """Ordering by anything but the primary key would sort every row (blobs too) in memory."""
    rejected(sqlite_rpmdb("CREATE TABLE Packages (hnum INTEGER, blob BLOB)", [simple_header("a")]),
             r"not \(hnum PRIMARY KEY, blob\)")


def test_sqlite_blob_over_the_limit_is_named_not_read(monkeypatch):
    monkeypatch.setattr(rpmdb, "SQLITE_MAX_VALUE_BYTES", 1 << 20)
    big = simple_header("big", more=[(1004, BIN, b"\0" * (2 << 20))])
    packages, warnings = parse_rpmdb(sqlite_rpmdb(RPM_SCHEMA, [simple_header("a"), big, simple_header("c")]))
    assert [p.name for p in packages] == ["a", "c"]
    assert warnings == [f"sqlite Packages hnum 2: blob of {len(big)} bytes, over the 1048576-byte limit "
                        f"(SQLITE_MAX_VALUE_BYTES)"]


def test_sqlite_labels_are_bounded():
    """A row is named by its hnum only when that is an integer: a megabyte of text in the key
    of a WITHOUT ROWID table does not become a megabyte of warning."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB) WITHOUT ROWID")
    conn.execute("INSERT INTO Packages VALUES (1, ?)", (simple_header("a"),))
    conn.execute("INSERT INTO Packages VALUES ('k' || zeroblob(1000000), 'text')")
    packages, warnings = parse_rpmdb(conn.serialize())
    conn.close()
    assert [p.name for p in packages] == ["a"]
    assert warnings == ["sqlite Packages hnum (not an integer): blob is str, not a BLOB"]


def test_max_packages():
    packages, warnings = parse_rpmdb(fixture("sqlite-cbl-mariner-2.0", "rpmdb.sqlite"), max_packages=10)
    assert len(packages) == 10
    assert warnings == ["sqlite: more than 10 packages; stopped reading at sqlite Packages hnum 11"]
    with pytest.raises(ValueError):
        parse_rpmdb(b"", max_packages=0)


def test_warnings_are_capped():
    blob = bytearray(simple_header("x"))
    struct.pack_into(">I", blob, 0, 0)
    packages, warnings = parse_rpmdb(bdb_file([bytes(blob)] * (rpmdb.MAX_WARNINGS + 5) + [simple_header("ok")],
                                              page_size=512))
    assert [p.name for p in packages] == ["ok"]
    assert len(warnings) == rpmdb.MAX_WARNINGS + 1
    assert warnings[-1] == "5 more warnings not shown"


@pytest.mark.parametrize("folder,name,rounds", [("bdb-libuuid", "Packages", 300), ("bdb-small", "Packages", 200),
                                                ("ndb-sle15-bci", "Packages.db", 40)])
def test_database_fuzz(folder, name, rounds):
    """Random damage to whole databases: packages (+ warnings) or RpmdbError, nothing else."""
    good = fixture(folder, name)
    rng = random.Random(folder)
    start = time.perf_counter()
    hot = 3 * 4096  # metadata, slot and hash pages: where damage changes the structure
    for _ in range(rounds):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(hot) if rng.random() < 0.7 else rng.randrange(len(data))
            data[pos] = rng.randrange(256)
        try:
            packages, warnings = parse_rpmdb(bytes(data))
            assert packages and all(isinstance(w, str) for w in warnings)
        except RpmdbError:
            pass
    assert time.perf_counter() - start < 5 * QUICK


# -- purity ----------------------------------------------------------------------------------

def test_module_is_pure():
    """Bytes in, packages out: stdlib only, no file or network access, no event loop."""
    allowed = {"__future__", "contextlib", "collections", "dataclasses", "sqlite3", "struct", "typing"}
    tree = ast.parse(open(rpmdb.__file__, encoding="utf-8").read())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in ("open", "exec", "eval", "__import__"), node.func.id
        for name in names:
            assert name.split(".")[0] in allowed, name


def test_versions_carry_the_epoch_as_rpm_prints_them():
    """`rpm -qa` prints [epoch:]version-release, and version comparison for vulnerability
    matching needs the epoch: 1:2.0.0 is newer than any 2.x without one. Every package of the
    real CBL-Mariner database, with and without an epoch, against what rpm itself read."""
    from analyzerd.catalogers.purl import purl
    from analyzerd.catalogers.rpm import parse_rpm
    with open(os.path.join(FIXTURES, "sqlite-cbl-mariner-2.0", "expected.json"), encoding="utf-8") as f:
        expected = {p["name"]: p for p in json.load(f)["packages"]}
    result = parse_rpm("/var/lib/rpm/rpmdb.sqlite", fixture("sqlite-cbl-mariner-2.0", "rpmdb.sqlite"))
    got = {p.name: p for p in result.packages}
    assert set(got) == set(expected)
    with_epoch = [name for name, p in expected.items() if p["epoch"]]
    assert len(with_epoch) == 3 and len(expected) - len(with_epoch) == 126
    for name, rpm in expected.items():
        version = f"{rpm['version']}-{rpm['release']}"
        assert got[name].version == (f"{rpm['epoch']}:{version}" if rpm["epoch"] else version), name
    tools = got["ca-certificates-tools"]
    assert tools.version == "1:2.0.0-1.cm2" and tools.epoch == 1
    assert "epoch=1" in purl(tools, None)


def test_every_field_of_an_rpm_package_as_rpm_read_it():
    """What analyzerd reports of each package of the real CBL-Mariner database, field by
    field, against rpm -qa's reading of the same file: arch, source package name and
    version (from its source rpm), license, vendor, installed size, and each file with its
    digest (sha256 here: the database's digest algorithm)."""
    import re

    from analyzerd.catalogers.rpm import parse_rpm
    with open(os.path.join(FIXTURES, "sqlite-cbl-mariner-2.0", "expected.json"), encoding="utf-8") as f:
        expected = {p["name"]: p for p in json.load(f)["packages"]}
    got = {p.name: p for p in parse_rpm("/var/lib/rpm/rpmdb.sqlite",
                                        fixture("sqlite-cbl-mariner-2.0", "rpmdb.sqlite")).packages}
    for name, rpm in expected.items():
        package = got[name]
        source = re.fullmatch(r"(.+)-([^-]+-[^-]+)\.src\.rpm", rpm["sourceRpm"])
        assert (package.type, package.arch, package.license, package.vendor, package.installed_size) == \
            ("rpm", rpm["arch"], rpm["license"], rpm["vendor"], rpm["size"] or None), name
        assert (package.source_name, package.source_version) == (source.group(1), source.group(2)), name
        assert package.metadata == {"source_rpm": rpm["sourceRpm"]}, name
        files = [(f.path, f.digest, f.algorithm) for f in package.files]
        assert files == [(f["path"], f["digest"] or None, "sha256" if f["digest"] else None)
                         for f in rpm["files"]], name


def test_a_package_without_a_source_rpm_and_a_database_that_does_not_read():
    """A header with no SOURCERPM (gpg-pubkey entries have none) names no source package and
    keeps no empty metadata; a file that is no rpm database is a warning naming it, not a crash."""
    from analyzerd.catalogers.rpm import parse_rpm, rpm_package
    from analyzerd.catalogers.rpmdb import RpmPackage
    bare = rpm_package(RpmPackage(name="gpg-pubkey", epoch=None, version="3228467c", release="613798eb", arch="",
                                  source_rpm="", license="pubkey", vendor="", size=0, digest_algorithm="md5",
                                  files=()))
    assert (bare.source_name, bare.source_version, bare.metadata) == (None, None, {})
    assert (bare.version, bare.arch, bare.vendor, bare.installed_size) == ("3228467c-613798eb", None, None, None)
    broken = parse_rpm("/var/lib/rpm/Packages", b"not a database at all" * 100)
    assert broken.packages == []
    assert len(broken.warnings) == 1
    assert broken.warnings[0].startswith("/var/lib/rpm/Packages: not a readable rpm database")
    read = parse_rpm("/var/lib/rpm/rpmdb.sqlite", fixture("sqlite-cbl-mariner-2.0", "rpmdb.sqlite"))
    assert read.warnings == []


# -- against rpm itself ------------------------------------------------------------------------

@pytest.mark.parametrize("folder,name,kind", [c for c in CASES if c[2] != "ndb"],
                         ids=[c[0] for c in CASES if c[2] != "ndb"])
def test_packages_and_versions_agree_with_rpm(tmp_path, folder, name, kind):
    """What rpm itself lists from the database (`rpm -qa --dbpath`, Debian's rpm 4.18, which
    reads sqlite and Berkeley DB but not NDB) is what the cataloger reports: every package, its
    version as rpm prints it ([epoch:]version-release: the epoch is part of the version that
    vulnerability matching compares), arch, source rpm, license and vendor."""
    import shutil
    import subprocess

    from analyzerd.catalogers.rpm import parse_rpm
    assert shutil.which("rpm"), "rpm (Debian's rpm package) is needed: it is the expected result"
    dbpath = tmp_path / "rpm"
    shutil.copytree(os.path.join(FIXTURES, folder), dbpath)  # rpm may write beside the database
    query = "%{NAME}\\t%{EVR}\\t%{ARCH}\\t%{SOURCERPM}\\t%{LICENSE}\\t%{VENDOR}\\n"
    listed = subprocess.run(["rpm", "-qa", "--dbpath", str(dbpath), "--qf", query],
                            capture_output=True, text=True, check=True).stdout
    # "(none)" is rpm's word for an absent tag; an empty one (a vendor of "") is reported as absent
    want = sorted(tuple(None if value in ("(none)", "") else value for value in line.split("\t"))
                  for line in listed.splitlines())
    result = parse_rpm(f"/var/lib/rpm/{name}", fixture(folder, name))
    got = sorted((p.name, p.version, p.arch, p.metadata.get("source_rpm"), p.license, p.vendor)
                 for p in result.packages)
    assert result.warnings == []
    assert got == want
    if kind == "sqlite":  # the fixture with epochs: rpm prints them, and so must the cataloger
        assert [v for _, v, *_ in want if ":" in v] == [v for _, v, *_ in got if ":" in v] != []


def test_a_wal_mode_sqlite_database_is_read_like_any_other(tmp_path):
    """rpm opens its sqlite database in WAL mode, so an image's rpmdb.sqlite says so in its
    header (bytes 18 and 19 = 2); with the WAL already checkpointed into it, it holds every
    package and must read as the same database in rollback mode does."""
    import shutil
    copy = tmp_path / "rpmdb.sqlite"
    shutil.copy(os.path.join(FIXTURES, "sqlite-cbl-mariner-2.0", "rpmdb.sqlite"), copy)
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = copy.read_bytes()
    assert data[18] == data[19] == 2  # the WAL marks in the header
    packages, warnings = parse_rpmdb(data)
    rollback, _ = parse_rpmdb(fixture("sqlite-cbl-mariner-2.0", "rpmdb.sqlite"))
    assert warnings == [] and [p.name for p in packages] == [p.name for p in rollback] and len(packages) == 129


# -- every limit at its boundary, and what each refusal names --------------------------------

def bdb_pages(pages: list[list[tuple[bytes, bytes]]], *, page_size: int = 4096) -> bytes:
    """A little-endian one-bucket Berkeley DB hash file whose chained hash pages hold the given
    (key, value) pairs on the page, in order from the page's end down: key, then its value."""
    out = []
    for n, pairs in enumerate(pages):
        pgno = n + 1
        raw, inp, top = bytearray(page_size), [], page_size
        for key, value in pairs:
            for item in (b"\x01" + key, b"\x01" + value):
                top -= len(item)
                raw[top:top + len(item)] = item
                inp.append(top)
        struct.pack_into("<IIIHHBB", raw, 8, pgno, 0, pgno + 1 if pgno < len(pages) else 0, len(inp), top, 0, 13)
        struct.pack_into(f"<{len(inp)}H", raw, 26, *inp)
        out.append(bytes(raw))
    meta = bytearray(page_size)
    struct.pack_into("<IIII", meta, 8, 0, 0x061561, 9, page_size)
    meta[25] = 8  # P_HASHMETA
    struct.pack_into("<I", meta, 32, len(pages))  # last page
    struct.pack_into("<I", meta, 96, 1)  # spares[0]: bucket 0 is page 1
    return bytes(meta) + b"".join(out)


def instance(n: int) -> bytes:
    """A BDB key: the header instance, little-endian (0 is rpm's instance counter)."""
    return struct.pack("<I", n)


def ndb_file(blobs: list[bytes]) -> bytes:
    """An NDB Packages.db laid out as rpm writes it: one slot page, then each blob in its own
    blocks (BlbS head, the header blob, the BlbE tail ending its last block), package index i + 1."""
    head, area = bytearray(4096), bytearray()
    struct.pack_into("<4sIIII", head, 0, b"RpmP", 0, 0, 1, len(blobs) + 1)
    for slot in range(2, 256):
        struct.pack_into("<4sIII", head, slot * 16, b"Slot", 0, 0, 0)
    for i, blob in enumerate(blobs):
        blocks, start = -(-(16 + len(blob) + 12) // 16), len(area)
        area += bytes(blocks * 16)
        struct.pack_into("<4sIII", area, start, b"BlbS", i + 1, 0, len(blob))
        area[start + 16:start + 16 + len(blob)] = blob
        struct.pack_into("<II4s", area, start + blocks * 16 - 12, 0, len(blob), b"BlbE")
        struct.pack_into("<4sIII", head, (2 + i) * 16, b"Slot", i + 1, 256 + start // 16, blocks)
    return bytes(head + area)


def test_header_too_short_for_what_its_intro_says():
    blob_error(struct.pack(">II", 1, 5), r"^header blob of 8 bytes is shorter than il=1, dl=5 need \(29 bytes\)$")
    blob_error(struct.pack(">II", 0, 0), r"^header index count il=0 outside 1\.\.65535$")


def test_header_index_count_at_its_limit(monkeypatch):
    monkeypatch.setattr(rpmdb, "MAX_INDEX_ENTRIES", 4)
    assert parse_header_blob(simple_header("four")).name == "four"  # exactly 4 entries
    blob_error(simple_header("five", more=[(1011, STRING, "v")]), r"^header index count il=5 outside 1\.\.4$")


def test_header_data_length_at_its_limit(monkeypatch):
    blob = simple_header("d")
    dl = struct.unpack_from(">I", blob, 4)[0]
    monkeypatch.setattr(rpmdb, "MAX_DATA_LENGTH", dl)
    assert parse_header_blob(blob).name == "d"
    monkeypatch.setattr(rpmdb, "MAX_DATA_LENGTH", dl - 1)
    blob_error(blob, rf"^header data length dl={dl} over the {dl - 1}-byte limit$")


def test_entry_count_at_its_limit_and_an_unnamed_tag(monkeypatch):
    """A tag the reader has no name for (1004, SUMMARY) is named by its number."""
    monkeypatch.setattr(rpmdb, "MAX_DATA_LENGTH", 64)
    blob = bytearray(simple_header("c", more=[(1004, BIN, b"s")]))
    struct.pack_into(">I", blob, 8 + 16 * 4 + 12, 64)
    assert parse_header_blob(bytes(blob)).name == "c"
    struct.pack_into(">I", blob, 8 + 16 * 4 + 12, 65)
    blob_error(bytes(blob), r"^header entry 4, tag 1004: count 65 over the limit$")


def test_strings_that_exactly_fill_the_data_area_are_read():
    """Two empty digests (a directory and a symlink) end the data area: one NUL each, no byte to spare."""
    blob = simple_header("e", more=[(1116, INT32, [0, 0]), (1117, STRING_ARRAY, ["d", "l"]),
                                    (1118, STRING_ARRAY, ["/"]), (1035, STRING_ARRAY, ["", ""])])
    offset, dl = struct.unpack_from(">i", blob, _entry_offset(blob, 1035) + 8)[0], struct.unpack_from(">I", blob, 4)[0]
    assert dl - offset == 2
    assert parse_header_blob(blob).files == (RpmFile("/d", "", 0, 0), RpmFile("/l", "", 0, 0))


def test_more_strings_than_the_data_area_can_hold():
    blob = bytearray(simple_header("o", more=[(1027, STRING_ARRAY, ["a", "b"])]))
    at = _entry_offset(blob, 1027)
    offset, dl = struct.unpack_from(">i", blob, at + 8)[0], struct.unpack_from(">I", blob, 4)[0]
    assert dl - offset == 4  # "a\0b\0": room for 4 strings at most
    struct.pack_into(">I", blob, at + 12, 5)
    blob_error(bytes(blob), rf"^OLDFILENAMES \(1027\): 5 strings at offset {offset} cannot fit in the "
                            rf"{dl}-byte data area$")


def test_a_string_whose_nul_lies_past_the_data_area():
    """Bytes after the data area are not the header's: a string must end inside it."""
    blob = bytearray(simple_header("n", more=[(1011, STRING, "acme")]))
    offset, dl = struct.unpack_from(">i", blob, _entry_offset(blob, 1011) + 8)[0], struct.unpack_from(">I", blob, 4)[0]
    struct.pack_into(">I", blob, 4, dl - 1)  # the vendor's NUL is now just past the data area
    blob_error(bytes(blob), rf"^VENDOR \(1011\): string 0 of 1 at offset {offset} runs past the end of the "
                            rf"{dl - 1}-byte data area$")


def test_an_empty_string_array_reads_as_an_empty_string():
    p = parse_header_blob(simple_header("z", more=[(1014, I18NSTRING, [])]))
    assert p.license == ""


def test_absent_version_release_and_an_unknown_digest_algorithm():
    p = parse_header_blob(header_blob([(1000, STRING, "bare"), (5011, INT32, [99])]))
    assert (p.version, p.release, p.digest_algorithm) == ("", "", "pgphashalgo-99")


def test_paths_keep_their_bytes_and_digests_stay_text():
    """A path that is not UTF-8 keeps its bytes (surrogateescape), so it still matches the
    layer's path; a digest that is not UTF-8 becomes replacement characters: it is never a path,
    and a surrogate would not survive being written out as UTF-8."""
    blob = simple_header("l", more=[(1116, INT32, [0]), (1117, STRING_ARRAY, [b"caf\xe9"]),
                                    (1118, STRING_ARRAY, [b"/opt/\xff/"]), (1035, STRING_ARRAY, [b"\xff"])])
    (f,) = parse_header_blob(blob).files
    assert f == RpmFile("/opt/\udcff/caf\udce9", "\ufffd", 0, 0)  # no FILEMODES: mode 0
    assert os.fsencode(f.path) == b"/opt/\xff/caf\xe9"
    old = simple_header("o", more=[(1027, STRING_ARRAY, [b"/etc/\xe9t\xe9"])])
    assert [f.path for f in parse_header_blob(old).files] == ["/etc/\udce9t\udce9"]


def test_file_path_budget_at_its_limit():
    blob = simple_header("b", more=[(1116, INT32, [0]), (1117, STRING_ARRAY, ["ab"]), (1118, STRING_ARRAY, ["/d/"])])
    assert [f.path for f in parse_header_blob(blob, max_path_bytes=5).files] == ["/d/ab"]
    with pytest.raises(RpmdbError, match="^1 file paths of 5 bytes in all, over the 4 bytes left of "
                                         "MAX_FILE_PATH_BYTES$"):
        parse_header_blob(blob, max_path_bytes=4)


def test_file_sizes_of_another_length_are_named():
    blob = simple_header("s", more=[(1117, STRING_ARRAY, ["a", "b"]), (1118, STRING_ARRAY, ["/"]),
                                    (1116, INT32, [0, 0]), (1028, INT32, [1])])
    blob_error(blob, r"^FILESIZES \(1028\): 1 entries for 2 files$")


def test_refusals_of_what_is_no_rpm_database_say_why():
    assert str(rejected(b"")) == "empty file: not an rpm database"
    btree = bytearray(4096)
    struct.pack_into("<I", btree, 12, 0x053162)
    assert str(rejected(bytes(btree))) == ("a Berkeley DB btree: an rpm index (Name, Basenames, ...), "
                                           "not the Packages hash database")


def test_bdb_with_the_metadata_page_only_is_empty():
    meta = bytearray(bdb_file([], page_size=512)[:512])
    struct.pack_into("<I", meta, 32, 0)  # last page: 0
    struct.pack_into("<I", meta, 96, 0)  # bucket 0 has no page
    assert parse_rpmdb(bytes(meta)) == ([], [])
    assert str(rejected(bytes(meta[:511]))) == "bdb: 511 bytes, shorter than the 512-byte metadata page"


@pytest.mark.parametrize("version", [8, 9, 10])
def test_bdb_hash_versions_rpm_reads(version):
    data = bytearray(bdb_file([simple_header("a")]))
    struct.pack_into("<I", data, 16, version)
    assert [p.name for p in parse_rpmdb(bytes(data))[0]] == ["a"]


@pytest.mark.parametrize("offset,fmt,value,message", [
    (16, "<I", 7, "bdb: unsupported hash version 7 (page 0, offset 16)"),
    (16, "<I", 11, "bdb: unsupported hash version 11 (page 0, offset 16)"),
    (16, "<I", 0xFFFFFFFF, "bdb: unsupported hash version 4294967295 (page 0, offset 16)"),
    (20, "<I", 1000, "bdb: page size 1000 is not a power of two in 512..65536 (page 0, offset 20)"),
    (25, "B", 9, "bdb: page 0 has type 9, not hash metadata (8)"),
    (24, "B", 1, "bdb: encrypted database (page 0, offset 24)"),
    (32, "<I", 0xFFFFFFFF, "bdb: truncated: the metadata says the last page is 4294967295 "
                           "(17592186044416 bytes), the file has 12288 bytes"),
    (32, "<I", 3, "bdb: truncated: the metadata says the last page is 3 (16384 bytes), the file has 12288 bytes"),
    (72, "<I", 2, "bdb: 3 buckets cannot fit in 2 pages (page 0, offset 72)"),
])
def test_bdb_metadata_refusals_name_the_field(offset, fmt, value, message):
    data = bytearray(bdb_file([simple_header("a")]))  # pages 0 (metadata), 1 (record 0), 2 ("a")
    struct.pack_into(fmt, data, offset, value)
    assert str(rejected(bytes(data))) == message


def test_bdb_buckets_at_the_page_count():
    """Every bucket owns a page: one page holds one bucket, not two."""
    data = bytearray(bdb_file([]))  # the metadata page and one hash page (record 0)
    assert parse_rpmdb(bytes(data)) == ([], [])
    struct.pack_into("<I", data, 72, 1)
    assert str(rejected(bytes(data))) == "bdb: 2 buckets cannot fit in 1 pages (page 0, offset 72)"


def test_bdb_truncated_names_the_sizes():
    data = fixture("bdb-libuuid", "Packages")
    assert str(rejected(data[:-1])) == ("bdb: truncated: the metadata says the last page is 22 (94208 bytes), "
                                        "the file has 94207 bytes")


def test_bdb_bad_hash_page_skips_its_chain_not_the_next_bucket():
    """libuuid's database: bucket 0 (page 1) holds rpm's instance counter, bucket 1 (page 2)
    the package. A bad page in bucket 0 is named; bucket 1 is still read."""
    data = bytearray(fixture("bdb-libuuid", "Packages"))
    data[4096 + 25] = 200
    want = ([parse_rpmdb(fixture("bdb-libuuid", "Packages"))[0][0]],
            ["bdb bucket 0 page 1: type 200, not a hash page (13)"])
    assert parse_rpmdb(bytes(data)) == want
    # a memoryview of any item format is read as its bytes
    assert parse_rpmdb(memoryview(data)) == want
    assert parse_rpmdb(memoryview(data).cast("I")) == want


def test_bdb_bucket_past_the_pages():
    data = bytearray(fixture("bdb-libuuid", "Packages"))
    struct.pack_into("<I", data, 96 + 4, 0xFFFFFFFF)  # spares[1]
    assert str(rejected(bytes(data))) == ("bdb: no readable package (1 bad records); first: bdb bucket 1 page "
                                          "4294967296: hash page 4294967296 outside pages 1..22")


@pytest.mark.parametrize("field,value,message", [
    (8, 9, "bdb bucket 0 page 3: hash page 3 (offset 12288) says it is page 9"),
    (20, 0xFFFF, "bdb bucket 0 page 3: 65535 entries cannot fit in a 4096-byte page"),
])
def test_bdb_bad_hash_page_is_named(field, value, message):
    data = bytearray(bdb_file([simple_header("a"), simple_header("b")]))
    struct.pack_into("<I" if field == 8 else "<H", data, 3 * 4096 + field, value)
    assert parse_rpmdb(bytes(data)) == ([parse_header_blob(simple_header("a"))], [message])


LIBUUID_ITEM = 2 * 4096 + 4079  # page 2's off-page data item: type 3, first page 3, 80880 bytes


def libuuid_item_error(patch, offset: int = LIBUUID_ITEM) -> str:
    """The refusal of the libuuid database after ``patch(data)``: what is wrong with its one
    item, the data item at file offset ``offset``."""
    data = bytearray(fixture("bdb-libuuid", "Packages"))
    patch(data)
    message = str(rejected(bytes(data)))
    head = f"bdb: no readable package (1 bad records); first: bdb bucket 1 page 2 item 1 (offset {offset}): "
    assert message.startswith(head), message
    return message[len(head):]


def test_bdb_overflow_total_length_bounds(monkeypatch):
    def total(n):
        return lambda data: struct.pack_into("<I", data, LIBUUID_ITEM + 8, n)
    limit = rpmdb.MAX_BLOB_LENGTH
    assert libuuid_item_error(total(0)) == f"overflow item of 0 bytes (limit {limit}, file 94208)"
    assert libuuid_item_error(total(94209)) == f"overflow item of 94209 bytes (limit {limit}, file 94208)"
    # as long as the file: allowed, and then the chain is too short for it
    assert libuuid_item_error(total(94208)) == "overflow chain ends at page 22 with 13328 of 94208 bytes missing"
    # a one-byte shorter total: the last page holds more than is still expected
    assert libuuid_item_error(total(80879)) == ("overflow page 22 holds 3550 bytes; 3549 of 80879 "
                                                "were still expected and a page holds 4070")
    # a page that says it holds more than a page can
    assert libuuid_item_error(lambda data: struct.pack_into("<H", data, 3 * 4096 + 22, 4071)) == (
        "overflow page 3 holds 4071 bytes; 80880 of 80880 were still expected and a page holds 4070")
    # exactly MAX_BLOB_LENGTH: read
    monkeypatch.setattr(rpmdb, "MAX_BLOB_LENGTH", 80880)
    assert [p.name for p in parse_rpmdb(fixture("bdb-libuuid", "Packages"))[0]] == ["libuuid"]


@pytest.mark.parametrize("type_,message", [
    (3, "off-page item of 13 bytes, not 12"),
    (5, "item type 5 (only on-page 1 and off-page 3 hold rpm headers)"),
])
def test_bdb_item_of_a_wrong_type_or_size(type_, message):
    def patch(data):
        struct.pack_into("<H", data, 2 * 4096 + 26 + 2, 4078)  # the data item starts a byte earlier
        data[2 * 4096 + 4078] = type_
    assert libuuid_item_error(patch, offset=2 * 4096 + 4078) == message


def test_bdb_page_with_several_records():
    """Pages may hold several key/data pairs, rpm's instance counter (key 0) among them."""
    a, b = simple_header("a"), simple_header("b")
    data = bdb_pages([[(instance(1), a), (instance(0), instance(3)), (instance(2), b)]])
    assert parse_rpmdb(data) == ([parse_header_blob(a), parse_header_blob(b)], [])


def test_bdb_item_that_fills_its_page_is_read():
    """The item index ends at byte 30 of a page with one pair; a value may start right there."""
    pad = 476 - len(simple_header("fill")) - 16
    blob = simple_header("fill", more=[(1004, BIN, b"x" * pad)])
    assert len(blob) == 476  # 512 - 26 (page header) - 4 (index) - 5 (key item) - 1 (value's type byte)
    data = bdb_pages([[(instance(1), blob)]], page_size=512)
    assert struct.unpack_from("<H", data, 512 + 28)[0] == 30
    assert [p.name for p in parse_rpmdb(data)[0]] == ["fill"]


@pytest.mark.parametrize("entry,source", [(3, 2), (2, 1)])
def test_bdb_item_offsets_out_of_order_are_named(entry, source):
    """The second pair's value made empty (its offset = its key's), or its key made empty (the
    key's offset = the end of the pair before): that pair is named, the others are read."""
    a, b, c = simple_header("a"), simple_header("b"), simple_header("c")
    data = bytearray(bdb_pages([[(instance(1), a), (instance(2), b), (instance(3), c)]]))
    inp = list(struct.unpack_from("<6H", data, 4096 + 26))
    inp[entry] = inp[source]
    struct.pack_into("<6H", data, 4096 + 26, *inp)
    val_off, key_off, key_end = inp[3], inp[2], inp[1]
    assert parse_rpmdb(bytes(data)) == (
        [parse_header_blob(a), parse_header_blob(c)],
        [f"bdb bucket 0 page 1 item 3 (offset {4096 + val_off}): item offsets {val_off}/{key_off}/{key_end} "
         f"out of order or outside 38..4096"])


def test_no_readable_package_counts_the_bad_records():
    bad = struct.pack(">II", 0, 0)
    error = rejected(bdb_file([bad, bad]))
    assert str(error).startswith("bdb: no readable package (2 bad records); first: bdb bucket 0 page 2 item 1 ")
    assert str(error).endswith(": header index count il=0 outside 1..65535")


def test_max_packages_of_one():
    packages, warnings = parse_rpmdb(fixture("bdb-libuuid", "Packages"), max_packages=1)
    assert ([p.name for p in packages], warnings) == (["libuuid"], [])
    with pytest.raises(ValueError, match="^max_packages must be at least 1$"):
        parse_rpmdb(fixture("bdb-libuuid", "Packages"), max_packages=0)


def test_ndb_as_rpm_lays_it_out():
    """One blob filling the blob area exactly; two; none (the slot page only)."""
    a, b = simple_header("a"), simple_header("b")
    assert parse_rpmdb(ndb_file([a])) == ([parse_header_blob(a)], [])
    assert parse_rpmdb(ndb_file([a, b])) == ([parse_header_blob(a), parse_header_blob(b)], [])
    assert parse_rpmdb(ndb_file([])) == ([], [])
    assert str(rejected(ndb_file([])[:20])) == "ndb: truncated: 1 slot pages need 4096 bytes, the file has 20"
    assert str(rejected(ndb_file([])[:19])) == "ndb: 19 bytes, shorter than the 20-byte header"


def test_ndb_slot_pages_at_their_limit(monkeypatch):
    monkeypatch.setattr(rpmdb, "NDB_MAX_SLOT_PAGES", 1)
    assert len(parse_rpmdb(fixture("ndb-sle15-bci", "Packages.db"))[0]) == 35  # one slot page
    data = bytearray(ndb_file([simple_header("a")]) + bytes(4096))
    struct.pack_into("<I", data, 12, 2)
    assert str(rejected(bytes(data))) == "ndb: 2 slot pages, not 1..1 (offset 12)"


NDB_A_BLOCKS = -(-(16 + len(simple_header("a")) + 12) // 16)
NDB_B_OFFSET = (256 + NDB_A_BLOCKS) * 16  # where the second blob of ndb_file([a, b]) starts


@pytest.mark.parametrize("patch,message", [
    (lambda d: struct.pack_into("<I", d, 3 * 16 + 8, 2),
     "ndb slot 3 (package index 2, offset 32): blocks 2+{n} outside the blob area 256..{end} (or too few)"),
    (lambda d: struct.pack_into("<I", d, 3 * 16 + 12, 1),
     "ndb slot 3 (package index 2, offset {b}): blocks {k}+1 outside the blob area 256..{end} (or too few)"),
    (lambda d: struct.pack_into("<I", d, 3 * 16 + 4, 1),
     "ndb slot 3 (package index 1, offset {b}): package index 0 or already used by another slot"),
    (lambda d: struct.pack_into("<I", d, 3 * 16 + 4, 0),
     "ndb slot 3 (package index 0, offset {b}): package index 0 or already used by another slot"),
    (lambda d: d.__setitem__(slice(NDB_B_OFFSET, NDB_B_OFFSET + 4), b"BlbX"),
     "ndb slot 3 (package index 2, offset {b}): no BlbS blob magic"),
    (lambda d: struct.pack_into("<I", d, NDB_B_OFFSET + 4, 7),
     "ndb slot 3 (package index 2, offset {b}): the blob says package index 7"),
    (lambda d: struct.pack_into("<I", d, NDB_B_OFFSET + 12, 500),
     "ndb slot 3 (package index 2, offset {b}): a 500-byte blob needs 33 blocks, the slot has {n}"),
    (lambda d: d.__setitem__(slice(len(d) - 4, len(d)), b"BlbX"),
     "ndb slot 3 (package index 2, offset {b}): blob tail missing or with another length"),
    (lambda d: struct.pack_into("<I", d, len(d) - 8, 1),
     "ndb slot 3 (package index 2, offset {b}): blob tail missing or with another length"),
])
def test_ndb_bad_slot_is_named(patch, message):
    a, b = simple_header("a"), simple_header("b")
    data = bytearray(ndb_file([a, b]))
    n = struct.unpack_from("<I", data, 3 * 16 + 12)[0]
    patch(data)
    want = message.format(n=n, b=NDB_B_OFFSET, k=NDB_B_OFFSET // 16, end=len(data) // 16)
    assert parse_rpmdb(bytes(data)) == ([parse_header_blob(a)], [want])


def test_ndb_smallest_blob_is_read_as_a_header():
    """Two blocks are the least a blob takes (head and tail); what they hold is then the
    header's to judge."""
    data = ndb_file([simple_header("a"), b"\0\0\0\1"])
    assert struct.unpack_from("<I", data, 3 * 16 + 12)[0] == 2
    assert parse_rpmdb(data)[1] == [f"ndb slot 3 (package index 2, offset {NDB_B_OFFSET}): header blob of 4 bytes "
                                    f"is shorter than its 8-byte intro"]


def test_ndb_slot_reusing_another_blob_is_not_read():
    data = bytearray(ndb_file([simple_header("a")]))
    struct.pack_into("<4sIII", data, 3 * 16, b"Slot", 2, 256, NDB_A_BLOCKS)  # slot 3: the same blocks as slot 2
    assert parse_rpmdb(bytes(data)) == ([parse_header_blob(simple_header("a"))], [
        "ndb slot 3 (package index 2, offset 4096): the blobs of the slots so far add up to more than the file "
        "holds (they overlap); not read"])


def test_sqlite_too_short_for_its_header():
    assert str(rejected(b"SQLite format 3\0\0\0")) == "sqlite: cannot read the database: file is not a database"


def test_sqlite_is_read_without_touching_the_filesystem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(parse_rpmdb(sqlite_rpmdb(RPM_SCHEMA, [simple_header("a")]))[0]) == 1
    assert os.listdir(tmp_path) == []


def test_sqlite_step_budget_checked_often_lets_a_real_database_through(monkeypatch):
    monkeypatch.setattr(rpmdb, "_SQLITE_PROGRESS_EVERY", 10)
    packages, warnings = parse_rpmdb(fixture("sqlite-cbl-mariner-2.0", "rpmdb.sqlite"))
    assert (len(packages), warnings) == (129, [])


def test_sqlite_damaged_mid_table_keeps_the_rows_read():
    data = bytearray(sqlite_rpmdb(RPM_SCHEMA, [simple_header(f"p{i:03d}") for i in range(300)]))
    data[5 * 4096] = 0xFF  # page 6, a leaf of the Packages table: not a b-tree page any more
    packages, warnings = parse_rpmdb(bytes(data))
    assert 0 < len(packages) < 300 and [p.name for p in packages] == [f"p{i:03d}" for i in range(len(packages))]
    assert warnings == [f"sqlite: reading Packages stopped after {len(packages)} rows: "
                        f"database disk image is malformed"]


def test_sqlite_schema_refusals_name_what_is_wrong():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE Other (x)")
    assert str(rejected(conn.serialize())) == "sqlite: no Packages table"
    conn.close()
    long_name = "V" * 100
    view = sqlite_rpmdb(RPM_SCHEMA, [simple_header("a")], more=(f"CREATE VIEW {long_name} AS SELECT 1",))
    assert str(rejected(view)) == (f"sqlite: the schema has a view ('{'V' * 64}'); rpm writes none, "
                                   f"and its rows would be computed, not read")
    assert str(rejected(sqlite_rpmdb("CREATE TABLE Packages (hnum INTEGER, blob BLOB)", [simple_header("a")]))) == \
        "sqlite: the Packages table is not (hnum PRIMARY KEY, blob) as rpm writes it"


@pytest.mark.parametrize("kind", ["VIRTUAL", "STORED"])
def test_sqlite_generated_columns_are_refused(kind):
    column = "G" * 100
    schema = (f"CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL, "
              f"{column} INTEGER GENERATED ALWAYS AS (length(blob)) {kind})")
    assert str(rejected(sqlite_rpmdb(schema, [simple_header("a")]))) == (
        f"sqlite: Packages column '{'G' * 64}' is generated (computed, not stored); rpm writes none")


# Mutation survivors that cannot matter (tools/mutation.sh catalogers):
# - rpm_package: `rpm.source_rpm or "XXXX"`: neither "" nor "XXXX" is a source rpm name, so
#   _SRPM matches neither and the package has no source either way.
# - rpmdb _Header.__init__, _ndb_records: `unpack_from(blob, )`, `unpack_from(mv, )`: the offset
#   defaults to 0, so it is the same call.
# - rpmdb _Header._strings_raw: `nul <= 0`, `nul < 1`: the NUL is searched for from inside the data
#   area (offset >= 24, past the intro and an index entry), so find() gives -1 or at least 24.
# - rpmdb _Header.string, _Header.strings: `"UTF-8"` for `"utf-8"`: codec names are case-insensitive.
# - rpmdb detect_format: `cast("b")`: bytes() of a signed-byte view are the same bytes.
# - rpmdb detect_format, _Bdb.__init__: `order + "i"` reading the magic: both magics are below
#   2**31, so a signed read equals them for exactly the inputs an unsigned one does.
# - rpmdb detect_format: `head[:17].hex()`: head is at most 16 bytes long.
# - rpmdb _Bdb.__init__ (3 mutants of "bdb: no hash magic ...") and _ndb_records (4 of "ndb: no RpmP
#   magic ..."): unreachable: parse_rpmdb reads a container only after detect_format found its magic.
# - rpmdb _Bdb.records: `first_item >= page_size`: an item index that fills its page leaves no room
#   for any item, so every record of that page is refused either way (per item instead of per page).
# - rpmdb _ndb_records: `... / _NDB_BLK_SIZE` in min_blocks: 1.75 instead of 2, and block counts are
#   integers, so `blkcnt < 1.75` holds exactly when `blkcnt < 2` does.
# - rpmdb _sqlite_records: `len(data) > 20`, `len(data) >= 21`: a 20-byte file is no database (its
#   first page alone is 512 bytes or more); SQLite refuses it with or without the WAL marks reset.
# - rpmdb _sqlite_records: `data[19] == 2 and data[19] == 2`: differs only for a header whose marks
#   are 1 and 2, which SQLite never writes (WAL mode sets both bytes).
# - rpmdb _sqlite_records progress: `steps = 1`, `steps >= SQLITE_MAX_VM_STEPS`: the budget moves by
#   one check (100,000 of 50 million steps); the budget holding is tested (test_sqlite_work_is_bounded),
#   its exact step is SQLite's VM internals, not something a user relies on.
# - rpmdb _sqlite_records progress: `return 2`: any nonzero value interrupts the statement, as 1 does.
# - rpmdb _sqlite_records (9 mutants) and _check_sqlite_schema (3): SQL keywords, pragma, table and
#   column names in another case ("pragma query_only = on", "FROM PACKAGES ORDER BY HNUM",
#   "pragma table_xinfo(packages)", ...): all case-insensitive in SQL; the string literals compared
#   ('integer', 'blob', 'view', 'trigger') are unchanged.
# - rpmdb _sqlite_records: the label "sqlite Packages" of the stopped-reading record in another case
#   (3 mutants): parse_rpmdb uses a record's label only for header blobs; an RpmdbError record's
#   message stands alone.
# - rpmdb _sqlite_records: `_SQLITE_TYPE_NAMES.get(kind, None)`, `.get(kind)`, `.get(kind, )`: that
#   branch is reached only for typeof() text, integer, real or null, all in the table.
# - rpmdb parse_rpmdb: `max_packages: int = 100001`: the default cap moved by one; reaching it takes
#   100,001 headers (seconds of test time); the cap's boundary is tested with max_packages=10 and 1.
# - rpmdb parse_rpmdb: `(isinstance(data, memoryview)) or True`: a bytes or bytearray view cast to
#   "B" is the same view.
# - rpmdb parse_rpmdb: `first_error = None`: it is only read as `first_error or message`, and None
#   and "" are both false.
