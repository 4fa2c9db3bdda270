"""LayerAnalyzer: digests of every file, and integrity failures named by layer digest."""

import gzip
import hashlib
import os

import pytest

from analyzerd.analysis.layer import LayerAnalyzer, LayerLimits
from analyzerd.errors import ArchiveError, IntegrityError, LimitError
from analyzerd.model import FileKind
from analyzerd.testing import Member, analyze_layer, make_layer


def run(blob, *, digest=None, size=None, diff_id=None, step=65536, limits=LayerLimits()):
    digest = digest or "sha256:" + hashlib.sha256(blob).hexdigest()
    la = LayerAnalyzer(digest=digest, size=len(blob) if size is None else size, media_type="m",
                       diff_id=diff_id, limits=limits)
    for i in range(0, len(blob), step):
        la.feed(blob[i:i + step])
    return la.finish()


FILES = {f"usr/share/f{i}": os.urandom(i * 997) for i in range(40)}


def test_every_file_hashed_three_ways():
    tar = make_layer([Member(name, data) for name, data in FILES.items()] +
                     [Member("usr/share/hl", kind="hardlink", link="usr/share/f7")], "gnu")
    result = run(gzip.compress(tar), diff_id="sha256:" + hashlib.sha256(tar).hexdigest())
    by_path = {r.path: r for r in result.files}
    for name, data in FILES.items():
        record = by_path["/" + name]
        assert record.md5 == hashlib.md5(data).hexdigest()
        assert record.sha1 == hashlib.sha1(data).hexdigest()
        assert record.sha256 == hashlib.sha256(data).hexdigest()
        assert record.size == len(data)
    link = by_path["/usr/share/hl"]
    assert link.kind is FileKind.HARDLINK and link.link == "/usr/share/f7"
    assert link.sha256 == hashlib.sha256(FILES["usr/share/f7"]).hexdigest() and link.size == len(FILES["usr/share/f7"])
    assert result.uncompressed_size == len(tar)


def test_digest_mismatch_names_the_layer():
    blob = gzip.compress(make_layer([Member("a", b"x")]))
    wrong = "sha256:" + "ab" * 32
    with pytest.raises(IntegrityError, match=f"layer {wrong}: digest mismatch"):
        run(blob, digest=wrong)


def test_corrupt_bytes_report_the_digest_mismatch_not_the_gzip_error():
    blob = gzip.compress(make_layer([Member("a", os.urandom(100_000))]))
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(IntegrityError, match="digest mismatch"):
        run(bytes(bad), digest=digest)


def test_size_mismatch():
    blob = gzip.compress(make_layer([Member("a", b"x")]))
    with pytest.raises(IntegrityError, match="more than the 10 bytes"):
        run(blob, size=10)
    with pytest.raises(IntegrityError, match="descriptor declares"):
        run(blob, size=len(blob) + 1)


def test_diff_id_mismatch():
    blob = gzip.compress(make_layer([Member("a", b"x")]))
    with pytest.raises(IntegrityError, match="diff_id"):
        run(blob, diff_id="sha256:" + "00" * 32)


def test_corrupt_gzip_with_a_matching_digest_names_the_layer():
    """A registry can serve (and hash) a broken layer: the error must say which."""
    blob = bytearray(gzip.compress(make_layer([Member("a", os.urandom(50_000))])))
    blob[100] ^= 0xFF
    with pytest.raises(ArchiveError, match=r"layer sha256:[0-9a-f]{64}: corrupt gzip"):
        run(bytes(blob))


def test_truncated_tar_inside_valid_gzip():
    tar = make_layer([Member("a", os.urandom(50_000))])
    with pytest.raises(ArchiveError, match=r"layer sha256:[0-9a-f]{64}: tar stream truncated"):
        run(gzip.compress(tar[:20_000]))


def test_entry_limit():
    tar = make_layer([Member(f"f{i}", b"") for i in range(20)])
    with pytest.raises(LimitError, match="more than 10 entries"):
        run(tar, limits=LayerLimits(max_entries=10))


def test_uncompressed_limit():
    blob = gzip.compress(make_layer([Member("zeros", bytes(5_000_000))]))
    with pytest.raises(LimitError, match="uncompressed size exceeds"):
        run(blob, limits=LayerLimits(max_uncompressed_bytes=1_000_000))


def test_whiteouts_are_recorded_not_listed():
    tar = make_layer([Member("etc/.wh.passwd"), Member("var/.wh..wh..opq"), Member("keep", b"k")])
    result = run(tar)
    assert [r.path for r in result.files] == ["/keep"]
    assert result.deleted == ["/etc/passwd"]
    assert result.opaque_dirs == ["/var"]


def test_a_64_kib_path_is_refused_before_its_parents_are_made():
    """32,768 components: their parents alone would be 1 GB of strings (1.1 GB RSS measured)."""
    import tracemalloc
    from analyzerd.testing import raw_header, raw_member
    long = b"/".join([b"a"] * 32768)
    record = b" path=" + long + b"\n"
    length = len(record) + len(str(len(record) + 5))
    pax = b"%d" % length + record
    tar = (raw_member(raw_header(b"PaxHeaders/x", size=len(pax), typeflag=b"x"), pax)
           + raw_member(raw_header(b"x", size=4), b"deep") + raw_member(raw_header(b"kept", size=1), b"k"))
    tracemalloc.start()
    result = run(tar)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [r.path for r in result.files] == ["/kept"]
    assert len(result.warnings) == 1 and "a path of 65536 bytes" in result.warnings[0]
    assert peak < 20 * 1024 * 1024


def _cataloged(members, *, limits=LayerLimits(), spool=None, max_bytes=1000, parse=None):
    """A layer analyzed with one cataloger for /etc/*.db (parse: the file's bytes as one package)."""
    from analyzerd.analysis.dispatch import Dispatch
    from analyzerd.catalogers.base import Cataloger, Package, ParseResult

    def whole(path, data):
        return ParseResult(packages=[Package(type="test", name=path, version=str(len(bytes(data))))])
    cataloger = Cataloger(name="test-db", globs=("/etc/*.db",), parse=parse or whole, max_bytes=max_bytes)
    return analyze_layer(members, limits=limits, dispatch=Dispatch([cataloger]), spool=spool)


class _ListSpool:
    """A spool kept in a list, to see what the analyzer sends past memory."""

    made: list["_ListSpool"] = []

    def __init__(self):
        self.data = bytearray()
        self.closed = False
        _ListSpool.made.append(self)

    def write(self, data):
        self.data += data

    def view(self):
        return memoryview(self.data)

    def close(self):
        self.closed = True


def test_cataloged_files_up_to_the_limits_are_read_whole_in_memory_or_spooled():
    """A file of exactly the cataloger's max_bytes is read, one byte more is not (a warning
    names it and the cataloger); past max_memory_capture it goes to the spool (closed after
    parsing), and with no spool it is not cataloged, with a warning saying so."""
    limits = LayerLimits(max_memory_capture=600)
    _ListSpool.made.clear()
    result = _cataloged([Member("etc/a.db", b"a" * 1000), Member("etc/b.db", b"b" * 1001),
                         Member("etc/c.db", b"c" * 600), Member("etc/d.db", b"d" * 601)],
                        limits=limits, spool=_ListSpool)
    versions = {entry.path: (entry.cataloger, entry.result.packages[0].version) for entry in result.catalog}
    assert versions == {"/etc/a.db": ("test-db", "1000"), "/etc/c.db": ("test-db", "600"),
                        "/etc/d.db": ("test-db", "601")}
    assert result.warnings == ["/etc/b.db: 1001 bytes, more than the test-db cataloger reads (1000); not cataloged"]
    assert [len(s.data) for s in _ListSpool.made] == [1000, 601] and all(s.closed for s in _ListSpool.made)
    no_spool = _cataloged([Member("etc/d.db", b"d" * 601)], limits=limits)
    assert no_spool.catalog == [] and no_spool.warnings == [
        "/etc/d.db: 601 bytes, too large to catalog in memory; not cataloged"]


def test_a_failing_cataloger_is_a_warning_naming_file_cataloger_and_error_and_warnings_are_capped():
    from analyzerd.analysis.layer import MAX_WARNINGS

    def broken(path, data):
        raise KeyError("no such field")
    result = _cataloged([Member(f"etc/{i:03}.db", b"x") for i in range(MAX_WARNINGS + 5)], parse=broken)
    assert result.catalog == []
    assert result.warnings[0] == "/etc/000.db: the test-db cataloger failed: KeyError: 'no such field'"
    assert len(result.warnings) == MAX_WARNINGS + 1 and result.warnings[-1] == "5 more warnings not recorded"
