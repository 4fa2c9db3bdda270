"""LayerAnalyzer: digests of every file, and integrity failures named by layer digest."""

import gzip
import hashlib
import os

import pytest

from analyzerd.analysis.layer import LayerAnalyzer, LayerLimits
from analyzerd.errors import ArchiveError, IntegrityError, LimitError
from analyzerd.model import FileKind
from analyzerd.testing import Member, analyze_layer, make_layer, raw_header, raw_member


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


def _pax(key, value):
    """One PAX record ("LEN key=value\\n")."""
    record = b" " + key + b"=" + value + b"\n"
    length = len(record) + 1
    while len(str(length)) + len(record) != length:
        length += 1
    return str(length).encode() + record


def _unsupported(digest):
    with pytest.raises(IntegrityError) as error:
        LayerAnalyzer(digest=digest, size=0, media_type="m")
    return error.value.message


def test_an_unsupported_digest_algorithm_is_refused_naming_the_layer_and_the_algorithm():
    assert _unsupported("md5:" + "0" * 32) == f"layer md5:{'0' * 32}: unsupported digest algorithm 'md5'"
    assert _unsupported("deadbeef") == "layer deadbeef: unsupported digest algorithm 'deadbeef'"


def test_the_result_names_the_blob_its_media_type_sizes_and_entries():
    tar = make_layer([Member("a/b/c", b"x" * 100), Member("d", kind="dir")])
    blob = gzip.compress(tar)
    la = LayerAnalyzer(digest="sha256:" + hashlib.sha256(blob).hexdigest(), size=len(blob),
                       media_type="application/vnd.oci.image.layer.v1.tar+gzip")
    la.feed(blob)
    result = la.finish()
    assert result.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert result.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert (result.compressed_size, result.uncompressed_size) == (len(blob), len(tar))
    assert result.entry_count == 2 and result.made_dirs == ["/a/b", "/a"]


def test_a_global_header_makes_the_parents_of_its_path_and_counts_as_an_entry():
    """Go reads a "g" header's path; containerd removes what stands there and makes its parents."""
    g = _pax(b"path", b"tmp/decoy")
    tar = (raw_member(raw_header(b"pax_global_header", size=len(g), typeflag=b"g"), g)
           + raw_member(raw_header(b"a/b/c", size=1), b"x") + bytes(1024))
    result = run(tar)
    assert [r.path for r in result.files] == ["/a/b/c"]
    assert result.parents_of == ["/tmp/decoy"]
    assert result.made_dirs == ["/tmp", "/a/b", "/a"]
    assert result.entry_count == 2


def test_diff_id_of_an_uncompressed_layer_is_its_digest_and_of_a_compressed_one_what_the_config_says():
    tar = make_layer([Member("a", b"x")])
    assert run(tar).diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    sha512 = "sha512:" + hashlib.sha512(tar).hexdigest()
    assert run(tar, digest=sha512).diff_id == sha512
    blob = gzip.compress(tar)
    assert run(blob).diff_id is None
    stated = "sha256:" + hashlib.sha256(tar).hexdigest()
    assert run(blob, diff_id=stated).diff_id == stated


def test_a_diff_id_is_verified_with_the_algorithm_it_names_an_unknown_one_as_sha256():
    tar = make_layer([Member("a", b"x")])
    blob = gzip.compress(tar)
    sha512 = "sha512:" + hashlib.sha512(tar).hexdigest()
    assert run(blob, diff_id=sha512).diff_id == sha512
    for diff_id, got in (("foo:abc", "sha256:" + hashlib.sha256(tar).hexdigest()),
                         ("sha512:not:hex", "sha512:" + hashlib.sha512(tar).hexdigest())):
        with pytest.raises(IntegrityError) as error:
            run(blob, diff_id=diff_id)
        assert error.value.message == (f"layer sha256:{hashlib.sha256(blob).hexdigest()}: uncompressed content "
                                       f"hashes to {got}, but the image config says diff_id {diff_id}")


def test_a_blob_shorter_than_any_compression_magic_is_a_truncated_tar():
    blob = b"abc"
    with pytest.raises(ArchiveError, match=rf"^layer sha256:{hashlib.sha256(blob).hexdigest()}: "
                                           r"tar stream truncated at offset 0$"):
        run(blob)


def test_the_entry_limit_holds_at_exactly_its_value():
    tar = make_layer([Member(f"f{i}", b"") for i in range(10)])
    assert run(tar, limits=LayerLimits(max_entries=10)).entry_count == 10
    with pytest.raises(LimitError, match="more than 9 entries"):
        run(tar, limits=LayerLimits(max_entries=9))


def test_the_uncompressed_limit_holds_at_exactly_its_value():
    tar = make_layer([Member("a", b"x" * 5000)])
    assert run(gzip.compress(tar), limits=LayerLimits(max_uncompressed_bytes=len(tar))).uncompressed_size == len(tar)
    with pytest.raises(LimitError, match=f"uncompressed size exceeds {len(tar) - 1} bytes"):
        run(gzip.compress(tar), limits=LayerLimits(max_uncompressed_bytes=len(tar) - 1))


def test_the_holes_of_a_sparse_file_count_against_the_uncompressed_limit():
    """A few KB of sparse map can declare a terabyte of zeros: they are bounded as decompressed bytes are."""
    pax = _pax(b"GNU.sparse.major", b"0") + _pax(b"GNU.sparse.minor", b"1") + _pax(b"GNU.sparse.size", b"1000000") \
        + _pax(b"GNU.sparse.numblocks", b"1") + _pax(b"GNU.sparse.map", b"0,10")
    tar = (raw_member(raw_header(b"PaxHeaders/bomb", size=len(pax), typeflag=b"x"), pax)
           + raw_member(raw_header(b"bomb", size=10), b"0123456789") + bytes(1024))
    assert run(tar).files[0].sha256 == hashlib.sha256(b"0123456789" + bytes(999_990)).hexdigest()
    with pytest.raises(LimitError, match="sparse files expand to more than 100000 bytes of holes"):
        run(tar, limits=LayerLimits(max_uncompressed_bytes=100_000))


def test_a_record_has_the_owner_mode_and_time_of_its_header_a_symlink_mode_0777():
    result = analyze_layer([Member("f", b"x", mode=0o640, uid=1000, gid=1001, mtime=1_234_567),
                            Member("s", kind="symlink", link="f", mode=0o755, uid=7, gid=8, mtime=7_654_321)])
    f, s = result.files
    assert (f.mode, f.uid, f.gid, f.size, f.mtime) == (0o640, 1000, 1001, 1, 1_234_567)
    assert (s.kind, s.mode, s.uid, s.gid, s.mtime, s.link) == (FileKind.SYMLINK, 0o777, 7, 8, 7_654_321, "f")


def test_a_typeflag_the_runtime_refuses_fails_the_layer_naming_the_entry_shortened():
    name = b"a" * 150 + b"b" * 150
    pax = _pax(b"path", name)
    tar = (raw_member(raw_header(b"PaxHeaders/x", size=len(pax), typeflag=b"x"), pax)
           + raw_member(raw_header(b"x", size=1, typeflag=b"7"), b"y") + bytes(1024))
    with pytest.raises(ArchiveError) as error:
        run(tar)
    assert error.value.message == (
        f"layer sha256:{hashlib.sha256(tar).hexdigest()}: entry '{'a' * 99}…{'b' * 100}' at offset 1024 has typeflag "
        "'7', which containerd and moby refuse to unpack ('unhandled tar header type'): no container runs from "
        "this layer")


def test_a_directory_entry_a_later_entry_removes_fails_the_layer_naming_it():
    tar = make_layer([Member("d", kind="dir"), Member("d/e", kind="dir"), Member("d", kind="symlink", link="/x")])
    with pytest.raises(ArchiveError) as error:
        run(tar)
    assert error.value.message == (f"layer sha256:{hashlib.sha256(tar).hexdigest()}: directory entry '/d' is "
                                   "removed by a later entry of the layer (containerd fails the layer setting "
                                   "its times)")


def test_hardlinks_share_one_inode_that_takes_the_last_links_owner_and_mode_not_a_symlinks_mode():
    """The runtime links, then chowns and chmods the inode with each link's header: a chain of
    links (l2 -> l1 -> f) is one inode with l2's attributes; a symlink's mode stays 0777."""
    result = analyze_layer([
        Member("f", b"data", mode=0o644, uid=1, gid=1, mtime=100),
        Member("l1", kind="hardlink", link="f", mode=0o600, uid=2, gid=2, mtime=200),
        Member("l2", kind="hardlink", link="l1", mode=0o640, uid=3, gid=3, mtime=300),
        Member("s", kind="symlink", link="f"),
        Member("h", kind="hardlink", link="s", mode=0o600, uid=4, gid=4, mtime=400)])
    by_path = {r.path: r for r in result.files}
    sha = hashlib.sha256(b"data").hexdigest()
    for path in ("/f", "/l1", "/l2"):
        record = by_path[path]
        assert (record.mode, record.uid, record.gid, record.mtime, record.sha256) == (0o640, 3, 3, 300, sha), path
    for path in ("/s", "/h"):
        record = by_path[path]
        assert (record.kind, record.link, record.mode, record.uid, record.mtime) == (
            FileKind.SYMLINK, "f", 0o777, 4, 400), path
    assert result.warnings == []


def test_a_hardlink_to_itself_finds_nothing_and_is_a_warning_naming_it():
    """The runtime removes what stands at the link's path before it looks the target up."""
    result = analyze_layer([Member("a", b"x"), Member("a", kind="hardlink", link="a")])
    assert [(r.path, r.kind, r.link) for r in result.files] == [("/a", FileKind.HARDLINK, "/a")]
    assert result.warnings == ["/a: hardlink to /a, which this layer does not hold as a file (containerd's "
                               "overlayfs snapshotter refuses the layer; the lower layers' file is reported)"]


def test_a_hardlink_to_a_whiteout_is_one_more_whiteout():
    result = analyze_layer([Member("etc/.wh.x"), Member("etc/y", b"old"), Member("etc/y", kind="hardlink",
                                                                                   link="etc/x")])
    assert [r.path for r in result.files] == []
    assert result.deleted == ["/etc/x", "/etc/y"]


def test_a_parsers_warnings_become_the_layers():
    from analyzerd.catalogers.base import Package, ParseResult

    def warned(path, data):
        return ParseResult(packages=[Package(type="test", name="p", version="1")], warnings=[f"{path}: line 2 odd"])
    result = _cataloged([Member("etc/a.db", b"x")], parse=warned)
    assert result.warnings == ["/etc/a.db: line 2 odd"]
    assert [(e.path, e.result.warnings) for e in result.catalog] == [("/etc/a.db", [])]


def _secret_rules():
    from analyzerd.secrets.rules import Rule
    from analyzerd.secrets.scanner import RuleSet
    return RuleSet((Rule(id="test-token", category="Test", title="test token", severity="HIGH",
                         regex=r"(?P<secret>tkn_[A-Za-z0-9]{24})", keywords=("tkn_",)),), fingerprint_key=b"k" * 32)


def test_secrets_past_the_cap_are_a_warning_and_the_rule_set_is_recorded_only_when_scanned(monkeypatch):
    import analyzerd.secrets.scanner
    monkeypatch.setattr(analyzerd.secrets.scanner, "MAX_FINDINGS", 2)
    rules = _secret_rules()
    members = [Member(f"srv/{i}.env", b"key = tkn_" + b"A" * 24 + b"\n") for i in range(3)]
    result = analyze_layer(members, secrets=rules.scanner(), secret_rules=rules.digest)
    assert len(result.secrets) == 2 and result.secret_rules == rules.digest
    assert result.warnings == ["more than 2 secrets found; the rest not recorded"]
    unscanned = analyze_layer(members, secret_rules=rules.digest)
    assert unscanned.secrets == [] and unscanned.secret_rules is None


# -- stream scanners (executables) ---------------------------------------------------------

ELF = b"\x7fELF"


class _Seen:
    """A scanner that reports the path it was made for and the bytes it was fed, as a package."""

    def __init__(self, path):
        self.path = path
        self.data = bytearray()

    def feed(self, data):
        self.data += data

    def finish(self):
        from analyzerd.catalogers.base import Package, ParseResult
        return ParseResult(packages=[Package(type="test", name=self.path,
                                             version=hashlib.sha256(self.data).hexdigest())])


class _FailsFeeding(_Seen):
    def feed(self, data):
        raise ValueError("bad section header")


class _FailsFinishing(_Seen):
    def finish(self):
        raise RuntimeError("no end")


def _scanned(members, scanners, *, step=1 << 20):
    """Members through the analyzer with these (name, scanner class) stream scanners for ELF
    files, the layer fed ``step`` bytes at a time; the catalog as {(path, cataloger): (name, version)}."""
    from analyzerd.analysis.dispatch import Dispatch
    from analyzerd.catalogers.base import Cataloger
    dispatch = Dispatch([Cataloger(name=name, scanner=scanner, magic=(ELF,)) for name, scanner in scanners])
    tar = make_layer(members)
    la = LayerAnalyzer(digest="sha256:" + hashlib.sha256(tar).hexdigest(), size=len(tar), media_type="m",
                       dispatch=dispatch)
    for i in range(0, len(tar), step):
        la.feed(tar[i:i + step])
    result = la.finish()
    return {(e.path, e.cataloger): (e.result.packages[0].name, e.result.packages[0].version)
            for e in result.catalog}, result


def _seen(path, data):
    """What a _Seen scanner made for ``path`` and fed ``data`` reports."""
    return path, hashlib.sha256(data).hexdigest()


def test_executables_from_min_scanned_executable_bytes_are_scanned_whole_in_any_chunks():
    from analyzerd.analysis.layer import MIN_SCANNED_EXECUTABLE
    small = ELF + os.urandom(MIN_SCANNED_EXECUTABLE - 5)
    exact = ELF + os.urandom(MIN_SCANNED_EXECUTABLE - 4)
    members = [Member("bin/small", small, mode=0o755), Member("bin/exact", exact, mode=0o755),
               Member("lib/data", exact, mode=0o644), Member("bin/script", b"#!" + exact, mode=0o755)]
    for step in (1 << 20, 515, 2):  # the magic number whole in the first piece, or split across pieces
        catalog, result = _scanned(members, [("seen", _Seen)], step=step)
        assert catalog == {("/bin/exact", "seen"): _seen("/bin/exact", exact)}, step
        assert {r.path: r.sha256 for r in result.files}["/bin/exact"] == hashlib.sha256(exact).hexdigest()


def test_a_scanner_failing_on_its_data_is_a_warning_and_dropped_the_others_go_on():
    exe = ELF + os.urandom(10_000)
    for step in (1 << 20, 3000):
        catalog, result = _scanned([Member("usr/bin/x", exe, mode=0o755)],
                                   [("first", _FailsFeeding), ("second", _Seen)], step=step)
        assert catalog == {("/usr/bin/x", "second"): _seen("/usr/bin/x", exe)}
        assert result.warnings == ["/usr/bin/x: the first scanner failed: ValueError: bad section header"]
    catalog, result = _scanned([Member("usr/bin/x", exe, mode=0o755), Member("usr/bin/y", exe, mode=0o755)],
                               [("first", _Seen), ("second", _FailsFeeding)])
    assert catalog == {("/usr/bin/x", "first"): _seen("/usr/bin/x", exe),
                       ("/usr/bin/y", "first"): _seen("/usr/bin/y", exe)}
    assert result.warnings == ["/usr/bin/x: the second scanner failed: ValueError: bad section header",
                               "/usr/bin/y: the second scanner failed: ValueError: bad section header"]


def test_a_scanner_failing_at_its_end_is_a_warning_the_others_finish():
    exe = ELF + os.urandom(10_000)
    catalog, result = _scanned([Member("usr/bin/x", exe, mode=0o755)],
                               [("first", _FailsFinishing), ("second", _Seen)])
    assert catalog == {("/usr/bin/x", "second"): _seen("/usr/bin/x", exe)}
    assert result.warnings == ["/usr/bin/x: the first scanner failed: RuntimeError: no end"]


def test_real_go_and_rust_binaries_are_cataloged_under_the_cataloger_the_scanner_names():
    from analyzerd.analysis.dispatch import Dispatch
    from analyzerd.catalogers.binary import BINARY
    data = os.path.join(os.path.dirname(__file__), "..", "data")
    members = []
    for path in ("golang/usr/local/bin/hello-vcs-replace", "rust/usr/local/bin/uvx"):
        with open(os.path.join(data, path), "rb") as f:
            members.append(Member("usr/local/bin/" + os.path.basename(path), f.read(), mode=0o755))
    result = analyze_layer(members, dispatch=Dispatch([BINARY]))
    assert [(e.path, e.cataloger) for e in result.catalog] == [
        ("/usr/local/bin/hello-vcs-replace", "go-module-binary"), ("/usr/local/bin/uvx", "rust-cargo-auditable-binary")]


# Mutation survivors that cannot matter (tools/mutation.sh analysis):
# - layer __init__: `(diff_id or "XXXX").partition(":")[0]`: with no diff_id, "XXXX" is as unknown an
#   algorithm as "", so both fall back to sha256 (and nothing is hashed: there is no diff_id to verify).
# - layer __init__: `_sniff_head = None` / `b"XXXX"`, `_scanning_path = None` / `"XXXX"`: initial values
#   never read; _entry sets the head to b"" before any sniff, _sniff sets the path before any scan.
# - layer __init__: `_scanning = ""`: an empty iterable until the first executable: _scan and
#   _finish_scan loop over nothing, and _end sets it to None.
# - layer finish: `receive_data(None)`: None is as falsy as b"", which is all TarReader tests for the end.
# - layer _data: `self._current = ""` after hashing a file in one piece: that piece is all of its data,
#   so no other _data call comes before _end sets it to None.
# - layer _sniff, _catalog_file: `assert ... or ...` for `and`: both operands always hold there.
# - layer _sniff: `data[:want + len(held)]`: a longer head changes neither the wait (head shorter than
#   magic_length) nor the startswith test against magics no longer than magic_length.
# - layer _sniff: `_sniff_head = b"XXXX"` once sniffed: _sniff_path is None, so it is not read until
#   _entry sets it to b"" for the next executable.
