"""The sans-IO tar reader, against tarfile's own writer and hand-made headers."""

import hashlib
import io
import os
import random
import tarfile

import pytest

from analyzerd.archive.tar import END, ENTRY_END, NEED_DATA, Entry, TarReader
from analyzerd.errors import ArchiveError, LimitError
from analyzerd.model import FileKind
from analyzerd.testing import Member, make_layer, raw_header, raw_member


def read_all(data: bytes, step: int | None = None, trailing: bytes = b""):
    """Feed ``data`` whole or in ``step``-byte pieces; returns [(entry, sha256 of data)]."""
    reader = TarReader()
    out, current, digest = [], None, None
    pieces = [data] if step is None else [data[i:i + step] for i in range(0, len(data), step)]
    pieces.append(trailing)
    pieces.append(b"")
    for piece in pieces:
        reader.receive_data(piece)
        while True:
            event = reader.next_event()
            if event is NEED_DATA:
                break
            if event is END:
                return out
            if isinstance(event, Entry):
                current, digest = event, hashlib.sha256()
                if event.data is not None:  # complete with its data: no more events for it
                    digest.update(event.data)
                    out.append((current, digest.hexdigest()))
            elif isinstance(event, memoryview):
                digest.update(event)
            elif event is ENTRY_END:
                out.append((current, digest.hexdigest()))
    raise AssertionError("no END event")


def summary(results):
    return [(e.path, e.kind, e.mode, e.uid, e.gid, e.size, e.mtime, e.link, d) for e, d in results]


CORPUS = [
    Member("etc/", kind="dir", mode=0o755),
    Member("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n" * 40),
    Member("usr/bin/su", os.urandom(70_000), mode=0o4755, uid=0, gid=0),
    Member("tmp/", kind="dir", mode=0o1777),
    Member("usr/local/sgid", b"x", mode=0o2711, uid=1000, gid=50),
    Member("srv/" + "deep/" * 30 + "file.txt", b"long name"),  # > 100 characters
    Member("srv/caf\u00e9/\u00fcber", b"utf-8 names"),
    Member("etc/link-to-passwd", kind="hardlink", link="etc/passwd"),
    Member("etc/alternatives/x", kind="symlink", link="../../usr/bin/" + "y" * 120),
    Member("dev/null", kind="char", mode=0o666, devmajor=1, devminor=3),
    Member("dev/sda", kind="block", mode=0o660, devmajor=8, devminor=0),
    Member("run/pipe", kind="fifo"),
    Member("empty", b""),
    Member("exact-block", b"z" * 512),
]


@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_formats_match_tarfile(fmt):
    data = make_layer(CORPUS, fmt)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        expected = {"/" + m.name.rstrip("/"):
                    (m, hashlib.sha256(tar.extractfile(m).read() if m.isreg() else b"").hexdigest())
                    for m in tar.getmembers()}
    got = read_all(data)
    assert len(got) == len(expected)
    for entry, digest in got:
        member, want = expected[entry.path]
        assert entry.mode == member.mode and entry.uid == member.uid and entry.gid == member.gid
        assert entry.mtime == member.mtime
        assert digest == want
        if member.issym():
            assert entry.kind is FileKind.SYMLINK and entry.link == member.linkname
        if member.islnk():
            assert entry.kind is FileKind.HARDLINK and entry.link == "/" + member.linkname
        if member.ischr() or member.isblk():
            assert (entry.devmajor, entry.devminor) == (member.devmajor, member.devminor)
        if member.isreg():
            assert entry.size == member.size and entry.kind is FileKind.FILE


def test_ustar_prefix_field_and_short_names():
    corpus = [m for m in CORPUS if len(m.name) < 100 and len(m.link) < 100 and m.name.isascii()]
    corpus.append(Member("a" * 90 + "/" + "b" * 60, b"split by prefix"))
    results = read_all(make_layer(corpus, "ustar"))
    assert "/" + "a" * 90 + "/" + "b" * 60 in [e.path for e, _ in results]


@pytest.mark.parametrize("fmt", ["gnu", "pax", "ustar"])
def test_byte_at_a_time_and_trailing_data_give_the_same_events(fmt):
    corpus = [m for m in CORPUS if fmt != "ustar" or (len(m.name) < 100 and len(m.link) < 100 and m.name.isascii())]
    data = make_layer(corpus, fmt)
    whole = summary(read_all(data))
    assert summary(read_all(data, step=1)) == whole
    assert summary(read_all(data, trailing=b"\0" * 5000 + b"garbage after the end marker")) == whole
    rng = random.Random(7)
    for _ in range(20):
        assert summary(read_all(data, step=rng.randint(2, 3000))) == whole


def test_pax_overrides_large_values():
    """uid 3,000,000 and a 12-digit mtime do not fit ustar fields; PAX carries them."""
    data = make_layer([Member("big-uid", b"data", uid=3_000_000, gid=4_000_000, mtime=99_999_999_999)], "pax")
    (entry, _), = read_all(data)
    assert (entry.uid, entry.gid, entry.mtime) == (3_000_000, 4_000_000, 99_999_999_999)


def test_gnu_base256_numbers():
    data = make_layer([Member("big-uid", b"data", uid=3_000_000, gid=4_000_000)], "gnu")
    (entry, _), = read_all(data)
    assert (entry.uid, entry.gid) == (3_000_000, 4_000_000)


def test_hand_made_headers_tarfile_does_not_write():
    base256_uid = b"\x80" + (3_000_000).to_bytes(7, "big")
    data = b"".join([
        # pre-POSIX (v7) header: no magic, typeflag NUL; a directory marked only by its
        # trailing slash (Go: only typeflag NUL does this; "0" keeps a file, see below)
        raw_member(raw_header(b"olddir/", typeflag=b"\0", magic=b"", mode=0o755)),
        raw_member(raw_header(b"olddir/file", size=5, magic=b""), b"hello"),
        # base-256 uid in an otherwise ustar header
        raw_member(raw_header(b"b256", size=3, uid=base256_uid), b"abc"),
        # ustar prefix field
        raw_member(raw_header(b"name", size=1, prefix=b"some/prefix"), b"x"),
        # leading "./" and "/" and "..": normalized, confined to the root
        raw_member(raw_header(b"./a/./b/../c", size=0)),
        raw_member(raw_header(b"/../../etc/escape", size=0)),
        # contiguous file type '7': Go keeps its data; the runtime refuses it (the layer
        # analyzer does too), the reader reports it as it is
        raw_member(raw_header(b"contig", size=2, typeflag=b"7"), b"hi"),
        # typeflag "0" with a trailing slash stays a regular file with its data
        raw_member(raw_header(b"opt/blob/", size=3), b"abc"),
    ])  # no end-of-archive marker at all: common in layers
    got = {e.path: (e, d) for e, d in read_all(data)}
    assert got["/olddir"][0].kind is FileKind.DIR
    assert got["/olddir/file"][1] == hashlib.sha256(b"hello").hexdigest()
    assert got["/b256"][0].uid == 3_000_000
    assert "/some/prefix/name" in got
    assert "/a/c" in got and "/etc/escape" in got
    assert got["/contig"][0].typeflag == "7" and got["/contig"][1] == hashlib.sha256(b"hi").hexdigest()
    assert got["/opt/blob"][0].kind is FileKind.FILE and got["/opt/blob"][1] == hashlib.sha256(b"abc").hexdigest()


def test_gnu_longname_and_longlink_records():
    name = b"d/" * 80 + b"file"
    link = b"t/" * 80 + b"target"
    data = b"".join([
        raw_member(raw_header(b"././@LongLink", size=len(name) + 1, typeflag=b"L", magic=b"ustar  \0"), name + b"\0"),
        raw_member(raw_header(b"trunc", size=0, typeflag=b"2", magic=b"ustar  \0")),
    ])
    data2 = b"".join([
        raw_member(raw_header(b"././@LongLink", size=len(link) + 1, typeflag=b"K", magic=b"ustar  \0"), link + b"\0"),
        raw_member(raw_header(b"short", size=0, typeflag=b"2", link=b"trunc", magic=b"ustar  \0")),
    ])
    (entry, _), = read_all(data)
    assert entry.path == "/" + name.decode()
    (entry, _), = read_all(data2)
    assert entry.link == link.decode()


def test_signed_checksum_is_accepted():
    header = bytearray(raw_header("h\u00e9".encode("latin-1"), size=0))
    header[148:156] = b" " * 8
    signed = sum(b - 256 if b > 127 else b for b in header)
    header = raw_header("h\u00e9".encode("latin-1"), checksum=signed)
    assert len(read_all(raw_member(header))) == 1


def test_corrupt_header_is_an_archive_error():
    data = bytearray(make_layer(CORPUS[:3], "pax"))
    data[10] ^= 0x01  # one bit of the first header's name
    with pytest.raises(ArchiveError, match="checksum mismatch at offset 0"):
        read_all(bytes(data))


def test_garbage_is_not_a_tar():
    with pytest.raises(ArchiveError):
        read_all(os.urandom(4096))


@pytest.mark.parametrize("cut", [100, 512 + 10, 1500])
def test_truncated_stream_is_an_archive_error(cut):
    data = make_layer([Member("a", os.urandom(3000)), Member("b", b"x")], "gnu")
    with pytest.raises(ArchiveError, match="truncated"):
        read_all(data[:cut])


def test_metadata_records_are_bounded():
    huge = 2 << 20
    data = raw_member(raw_header(b"././@LongLink", size=huge, typeflag=b"L"))[:1024]
    reader = TarReader()
    reader.receive_data(data)
    with pytest.raises(LimitError, match="exceeds the limit"):
        reader.next_event()


def test_invalid_pax_record():
    body = b"99 path=x\n"
    data = raw_member(raw_header(b"pax", size=len(body), typeflag=b"x"), body) + raw_member(raw_header(b"f"))
    with pytest.raises(ArchiveError, match="PAX"):
        read_all(data)


def test_data_events_are_zero_copy_views_of_the_input():
    data = make_layer([Member("f", b"q" * 100_000)], "gnu")
    reader = TarReader()
    reader.receive_data(data)
    events = []
    while (event := reader.next_event()) is not END:
        events.append(event)
    views = [e for e in events if isinstance(e, memoryview)] + [e.data for e in events if isinstance(e, Entry)]
    assert views and all(v.obj is data for v in views)


def test_small_entries_come_with_their_data_and_large_ones_stream():
    data = make_layer([Member("small", b"s" * 100), Member("large", b"L" * 50_000)], "gnu")
    reader = TarReader()
    reader.receive_data(data[:20_000])
    small = reader.next_event()
    assert small.path == "/small" and bytes(small.data) == b"s" * 100
    large = reader.next_event()
    assert large.path == "/large" and large.data is None
    assert isinstance(reader.next_event(), memoryview)


@pytest.mark.parametrize("size", [511, 512, 513, 1023, 1024, 1025])
@pytest.mark.parametrize("kind", ["gnu", "pax"])
def test_metadata_records_of_block_sizes_do_not_swallow_the_next_member(kind, size):
    """A GNU long name or a PAX header whose record is exactly 512 or 1,024 bytes (no padding
    after it) followed by normal members: each member is read as tarfile wrote it, with its
    own data. Reading padding after an exact record would skip the real header, and the next
    file would vanish with its content shown under the long name."""
    if kind == "gnu":
        name = "d/" * ((size - 1 - 4) // 2) + "f" * ((size - 1 - 4) % 2) + "file"  # + NUL: ``size`` bytes
        assert len(name) + 1 == size
        fmt = tarfile.GNU_FORMAT
    else:
        # a PAX record "NNN path=...\n" of the length that makes the record ``size`` bytes long
        fmt = tarfile.PAX_FORMAT
        name = None
        for length in range(1, size):
            candidate = ("p/" * length)[:length - 1] + "x"  # ends in a file name, not "/"
            body = f" path={candidate}\n"
            record = f"{len(body) + len(str(len(body) + 3))}{body}"
            if len(record.encode()) == size:
                name = candidate
                break
        assert name is not None, f"no single-record PAX header is exactly {size} bytes"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for path, content in ((name, b"long-named content"), ("next", b"next content"), ("last", b"")):
            info = tarfile.TarInfo(path)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    data = buffer.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # what was written: one long record each time
        assert [m.name for m in tar.getmembers()] == [name, "next", "last"]
    for step in (None, 1, 511, 512, 4096):
        got = [(entry.path, digest) for entry, digest in read_all(data, step)]
        assert got == [("/" + name, hashlib.sha256(b"long-named content").hexdigest()),
                       ("/next", hashlib.sha256(b"next content").hexdigest()),
                       ("/last", hashlib.sha256(b"").hexdigest())], (kind, size, step)


def test_the_protocol_events_print_as_their_names():
    """What a caller sees when it logs or prints an event it did not expect."""
    assert [repr(event) for event in (NEED_DATA, ENTRY_END, END)] == ["NEED_DATA", "ENTRY_END", "END"]
    (entry, _), = read_all(make_layer([Member("etc/os-release", b"ID=x\n")], "gnu"))
    assert repr(entry) == "Entry('/etc/os-release', '0', size=5)"


def _pax(records: dict[bytes, bytes]) -> bytes:
    body = b""
    for key, value in records.items():
        line = b" " + key + b"=" + value + b"\n"
        length = len(line) + 1
        while len(str(length)) + len(line) != length:
            length += 1
        body += str(length).encode() + line
    return raw_member(raw_header(b"PaxHeaders/f", size=len(body), typeflag=b"x"), body)


SPARSE_CONTENT = b"hello" + bytes(7995) + b"xyz" + bytes(1997)  # fragments (0, 5) and (8000, 3) of 10,000


@pytest.mark.parametrize("step", [None, 1, 100])
def test_gnu_sparse_pax_0_1_and_1_0_give_the_logical_content(step):
    v01 = _pax({b"GNU.sparse.size": b"10000", b"GNU.sparse.numblocks": b"2", b"GNU.sparse.map": b"0,5,8000,3",
                b"GNU.sparse.name": b"sparse01"}) + raw_member(raw_header(b"GNUSparseFile.0/x", size=8), b"helloxyz")
    sparse_map = b"2\n0\n5\n8000\n3\n".ljust(512, b"\0")
    v10 = _pax({b"GNU.sparse.major": b"1", b"GNU.sparse.minor": b"0", b"GNU.sparse.realsize": b"10000",
                b"GNU.sparse.name": b"sparse10"}) + raw_member(raw_header(b"GNUSparseFile.0/y", size=520),
                                                               sparse_map + b"helloxyz")
    after = raw_member(raw_header(b"after", size=1), b"!")
    got = [(e.path, e.size, e.sparse, d) for e, d in read_all(v01 + v10 + after, step)]
    want = hashlib.sha256(SPARSE_CONTENT).hexdigest()
    assert got == [("/sparse01", 10000, True, want), ("/sparse10", 10000, True, want),
                   ("/after", 1, False, hashlib.sha256(b"!").hexdigest())]


def test_gnu_sparse_maps_that_do_not_fit_the_file_are_refused():
    def v01(sparse_map, count=b"2", stored=8):
        return (_pax({b"GNU.sparse.size": b"10000", b"GNU.sparse.numblocks": count, b"GNU.sparse.map": sparse_map})
                + raw_member(raw_header(b"f", size=stored), b"h" * stored))
    with pytest.raises(ArchiveError, match="invalid GNU sparse map of '/f' at offset 1024"):
        read_all(v01(b"0,5,9999,3"))  # past the end
    with pytest.raises(ArchiveError, match="invalid GNU sparse map of '/f'"):
        read_all(v01(b"100,5,50,3"))  # out of order
    with pytest.raises(ArchiveError, match="does not match its block count"):
        read_all(v01(b"0,5,8000,3", count=b"3"))
    with pytest.raises(ArchiveError, match="missing data"):
        read_all(v01(b"0,5,8000,3", stored=6))
    with pytest.raises(ArchiveError, match="unreferenced data"):
        read_all(v01(b"0,5,8000,3", stored=9))
