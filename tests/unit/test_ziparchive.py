"""The zip reader against Python's zipfile as the oracle: the same member names and bytes
on real jars and on archives zipfile writes (stored, deflated, ZIP64, bytes prepended), and
bounded refusals of damaged or hostile archives."""

import io
import os
import struct
import zipfile
import zlib

import pytest

from analyzerd.catalogers.ziparchive import ZipError, list_members, read_member

JARS = os.path.join(os.path.dirname(__file__), "..", "data", "java", "usr", "share", "java")
REAL_JARS = ["commons-lang3.jar", "commons-io.jar", "slf4j-api.jar", "slf4j-simple.jar"]
EVERYTHING = (b"",)  # every name ends with the empty suffix


def real(name):
    with open(os.path.join(JARS, name), "rb") as f:
        return f.read()


def build(members, *, comment=b""):
    """members: (name, data, compress_type)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.comment = comment
        for name, data, method in members:
            info = zipfile.ZipInfo(name, date_time=(2024, 5, 6, 7, 8, 10))
            info.compress_type = method
            archive.writestr(info, data)
    return out.getvalue()


def assert_same_as_zipfile(data):
    with zipfile.ZipFile(io.BytesIO(data)) as oracle:
        expected = [(info.filename, oracle.read(info)) for info in oracle.infolist()]
    index = list_members(data, suffixes=EVERYTHING, max_members=10**6)
    assert index.complete and index.examined == index.declared == len(expected)
    got = []
    for member in index.members:
        with read_member(data, member, limit=10**9) as content:
            got.append((member.name, bytes(content)))
    assert got == expected


@pytest.mark.parametrize("name", REAL_JARS)
def test_real_jars_read_as_zipfile_reads_them(name):
    assert_same_as_zipfile(real(name))


def test_stored_deflated_commented_and_prepended_archives():
    members = [("a/", b"", zipfile.ZIP_STORED), ("a/stored.bin", os.urandom(5000), zipfile.ZIP_STORED),
               ("a/deflated.txt", b"hello " * 10000, zipfile.ZIP_DEFLATED),
               ("ünïcode.txt", b"x", zipfile.ZIP_DEFLATED)]
    data = build(members, comment=b"an archive comment")
    assert_same_as_zipfile(data)
    # a "fully executable" jar: a launch script before the zip; offsets inside count from the zip
    assert_same_as_zipfile(b"#!/bin/sh\nexec java -jar \"$0\" \"$@\"\n" * 50 + data)
    # an end record signature inside the comment (zipfile itself gives up on this one)
    tricky = build(members, comment=b"PK\x05\x06 in a comment is not the end record" + b"!" * 100)
    index = list_members(tricky, suffixes=EVERYTHING, max_members=100)
    assert [(m.name, bytes(read_member(tricky, m, limit=10**6))) for m in index.members] == [
        (name, content) for name, content, _ in members]


def test_only_wanted_names_are_kept_and_stored_members_are_views():
    data = build([("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\n", zipfile.ZIP_DEFLATED),
                  ("x/Main.class", b"\xca\xfe\xba\xbe", zipfile.ZIP_DEFLATED),
                  ("lib/inner.jar", b"inner bytes", zipfile.ZIP_STORED)])
    index = list_members(data, suffixes=(b".jar", b"MANIFEST.MF"), max_members=100)
    assert [m.name for m in index.members] == ["META-INF/MANIFEST.MF", "lib/inner.jar"]
    inner = read_member(data, index.members[1], limit=100)
    assert bytes(inner) == b"inner bytes" and inner.obj is data  # no copy of a stored member
    inner.release()


def zip64_archive(members):
    """An archive whose every size and offset is in ZIP64 extra fields, with a ZIP64 end
    record (as archives over 4 GiB or 65,535 members have): written by hand, read back by
    zipfile before it is used."""
    local, directory = b"", b""
    for name, data in members:
        name = name.encode()
        crc, offset = zlib.crc32(data), len(local)
        local += struct.pack("<4s5H3I2H", b"PK\x03\x04", 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                             len(name), 20) + name + struct.pack("<2H2Q", 1, 16, len(data), len(data)) + data
        extra = struct.pack("<2H3Q", 1, 24, len(data), len(data), offset)
        directory += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                                 len(name), len(extra), 0, 0, 0, 0, 0xFFFFFFFF) + name + extra
    end64 = struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, len(members), len(members),
                        len(directory), len(local))
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, len(local) + len(directory), 1)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return local + directory + end64 + locator + end


def test_zip64_sizes_offsets_and_end_record():
    data = zip64_archive([("one.txt", b"first"), ("two/three.bin", bytes(range(256)))])
    assert_same_as_zipfile(data)


def test_max_members_stops_the_walk():
    data = build([(f"c/{i}.class", b"", zipfile.ZIP_STORED) for i in range(50)]
                 + [("last.jar", b"j", zipfile.ZIP_STORED)])
    index = list_members(data, suffixes=(b".jar",), max_members=20)
    assert (index.examined, index.declared, index.complete, index.members) == (20, 51, False, [])


def test_not_a_zip_truncated_and_damaged_directories_are_refused():
    jar = real("slf4j-simple.jar")
    for data, message in [(b"", "shorter than an end record"), (os.urandom(4096), "no end of central directory"),
                          (jar[: len(jar) // 2], "no end of central directory"),
                          (jar[:-40], "no end of central directory")]:
        with pytest.raises(ZipError, match=message):
            list_members(data, suffixes=EVERYTHING, max_members=100)
    damaged = bytearray(jar)
    start = damaged.rfind(b"PK\x01\x02")
    damaged[start:start + 4] = b"XXXX"
    with pytest.raises(ZipError, match="damaged central directory"):
        list_members(bytes(damaged), suffixes=EVERYTHING, max_members=100)
    cut = bytearray(jar)  # the end record claims a directory larger than what precedes it
    end = cut.rfind(b"PK\x05\x06")
    struct.pack_into("<I", cut, end + 12, len(jar) * 2)
    with pytest.raises(ZipError, match="does not fit"):
        list_members(bytes(cut), suffixes=EVERYTHING, max_members=100)


def member_of(data, name):
    return next(m for m in list_members(data, suffixes=EVERYTHING, max_members=100).members if m.name == name)


def patch_directory(data, name, **fields):
    """Rewrite central directory fields of one member (sizes, crc, flags, method)."""
    out = bytearray(data)
    at = out.find(b"PK\x01\x02")
    while at >= 0:
        name_length = struct.unpack_from("<H", out, at + 28)[0]
        if out[at + 46:at + 46 + name_length] == name.encode():
            for field, (offset, fmt) in {"flags": (8, "<H"), "method": (10, "<H"), "crc": (16, "<I"),
                                         "compressed_size": (20, "<I"), "size": (24, "<I")}.items():
                if field in fields:
                    struct.pack_into(fmt, out, at + offset, fields[field])
            return bytes(out)
        at = out.find(b"PK\x01\x02", at + 4)
    raise AssertionError(name)


def test_reads_never_exceed_the_declared_size_or_the_limit():
    zeros = bytes(4 * 1024 * 1024)
    data = build([("z.bin", zeros, zipfile.ZIP_DEFLATED), ("s.bin", b"stored!", zipfile.ZIP_STORED)])
    member = member_of(data, "z.bin")
    with pytest.raises(ZipError, match="declares 4194304 bytes, more than the 1000 read"):
        read_member(data, member, limit=1000)
    with read_member(data, member, limit=1000, truncate=True) as head:
        assert bytes(head) == bytes(1000)
    lying = patch_directory(data, "z.bin", size=1024)  # the data inflates to far more than declared
    with pytest.raises(ZipError, match="more than its declared 1024 bytes"):
        read_member(lying, member_of(lying, "z.bin"), limit=10**9)
    boasting = patch_directory(data, "z.bin", size=2**31)  # declares 2 GiB, holds 4 MiB
    with pytest.raises(ZipError, match="4194304 of its declared 2147483648 bytes"):
        read_member(boasting, member_of(boasting, "z.bin"), limit=2**32)
    huge_stored = patch_directory(data, "s.bin", size=2**31, compressed_size=2**31)
    with pytest.raises(ZipError, match="runs past the end"):
        read_member(huge_stored, member_of(huge_stored, "s.bin"), limit=2**32)


def test_checksums_encryption_and_methods():
    data = build([("d.txt", b"deflated " * 100, zipfile.ZIP_DEFLATED), ("s.txt", b"stored", zipfile.ZIP_STORED)])
    for name in ("d.txt", "s.txt"):
        bad = patch_directory(data, name, crc=12345)
        with pytest.raises(ZipError, match="CRC-32 mismatch"):
            read_member(bad, member_of(bad, name), limit=10**6)
    encrypted = patch_directory(data, "d.txt", flags=1)
    with pytest.raises(ZipError, match="encrypted"):
        read_member(encrypted, member_of(encrypted, "d.txt"), limit=10**6)
    bzip2 = build([("b.txt", b"bzip2 " * 100, zipfile.ZIP_BZIP2)])
    with pytest.raises(ZipError, match="method 12 not supported"):
        read_member(bzip2, member_of(bzip2, "b.txt"), limit=10**6)
    garbage = bytearray(data)  # the deflate stream itself damaged
    start = garbage.find(b"d.txt") + len("d.txt")
    garbage[start:start + 20] = b"\xff" * 20
    with pytest.raises(ZipError):
        read_member(bytes(garbage), member_of(bytes(garbage), "d.txt"), limit=10**6)


def test_directories_larger_than_one_copy_window():
    # ~3 MB of central directory (read in 1 MiB windows), and names long enough to straddle them
    members = [(f"pkg/{i:06}/" + "n" * (i % 400) + ".class", b"", zipfile.ZIP_STORED) for i in range(12_000)]
    members += [("x" * 60_000 + ".jar", b"long name", zipfile.ZIP_DEFLATED)]
    assert_same_as_zipfile(build(members))
