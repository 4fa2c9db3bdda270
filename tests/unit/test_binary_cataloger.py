"""The streaming executable scanner (catalogers/binary.py) on real Go and Rust executables
(tests/data/golang, tests/data/rust; see their SOURCES.md) and on hostile streams.

Expected packages come from Syft 1.18.1's output for the same files
(expected-syft-1.18.1.json) and from ``go version -m`` (expected-go-version-m.txt)."""

import glob
import json
import os
import random
import shutil
import subprocess
import zlib

import pytest

from analyzerd.catalogers import binary
from analyzerd.catalogers.binary import (
    GO_BINARY_CATALOGER,
    GO_BUILDINFO_MAGIC,
    MAX_AUDITABLE_JSON_BYTES,
    MAX_GO_BUILDINFO_BYTES,
    RUST_BINARY_CATALOGER,
    SCAN_BLOCK,
    BinaryScanner,
)

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
GO_BINARIES = ["/usr/bin/go-md2man", "/usr/local/bin/hello-vcs-replace"]
UVX = "/usr/local/bin/uvx"


def read(eco, path):
    with open(os.path.join(DATA, eco, path.lstrip("/")), "rb") as f:
        return f.read()


def syft_expected(eco, path):
    with open(os.path.join(DATA, eco, "expected-syft-1.18.1.json")) as f:
        return [a for a in json.load(f)["artifacts"] if a["path"] == path]


def scan(path, data, chunks):
    """Feed ``data`` cut at the given chunk sizes (cycled) and finish."""
    scanner = BinaryScanner(path)
    view, offset, index = memoryview(data), 0, 0
    while offset < len(data):
        size = chunks[index % len(chunks)]
        scanner.feed(view[offset:offset + size])
        offset, index = offset + size, index + 1
    return scanner, scanner.finish()


def go_packages(result):
    return sorted((p.name, p.version, p.metadata.get("h1"), p.metadata.get("main_module"), p.metadata["go_version"],
                   p.license) for p in result.packages)


def syft_go_packages(path):
    return sorted((a["name"], a["version"], a.get("h1Digest"), a.get("mainModule"), a["goCompiledVersion"],
                   " AND ".join(a["licenses"]) or None) for a in syft_expected("golang", path))


# -- Go ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", GO_BINARIES)
@pytest.mark.parametrize("chunks", [[1 << 30], [1 << 20], [4093], [1, 7, 65536, 13, 999_999]], ids=str)
def test_go_binaries_match_syft(path, chunks):
    scanner, result = scan(path, read("golang", path), chunks)
    assert scanner.found_by == GO_BINARY_CATALOGER
    assert result.warnings == []
    assert go_packages(result) == syft_go_packages(path)
    assert all(p.type == "golang" and p.namespace is None and not p.declared for p in result.packages)


def go_version_m(path):
    """The lines `go version -m` printed for one binary: {"mod": ..., "dep": [...], "build": {...}}."""
    with open(os.path.join(DATA, "golang", "expected-go-version-m.txt")) as f:
        blocks = f.read().split("\n/")
    block = next(b for b in blocks if b.lstrip("/").startswith(path.lstrip("/") + ":"))
    lines = [line[1:].split("\t") for line in block.splitlines()[1:] if line.startswith("\t") and line.strip()]
    out = {"dep": [], "build": {}}
    for words in lines:
        if words[0] == "dep":
            out["dep"].append(words[1:])
        elif words[0] == "=>":
            out["dep"][-1] = words[1:]
        elif words[0] == "build":
            key, _, value = words[1].partition("=")
            out["build"][key] = value.strip('"')
        else:
            out[words[0]] = words[1:]
    return out


@pytest.mark.parametrize("path", GO_BINARIES)
def test_go_binaries_match_go_version_m(path):
    expected = go_version_m(path)
    _, result = scan(path, read("golang", path), [1 << 20])
    main_path = (expected.get("mod") or expected["path"])[0]
    deps = [p for p in result.packages if p.name not in (main_path, "stdlib")]
    assert [[p.name, p.version, p.metadata["h1"]] for p in deps] == expected["dep"]
    (main,) = [p for p in result.packages if p.name == main_path]
    assert main.metadata["build_settings"] == expected["build"]
    assert main.metadata["architecture"] == expected["build"]["GOARCH"]


def test_go_binary_trailing_data_changes_nothing():
    data = read("golang", GO_BINARIES[1])
    _, plain = scan("/x", data, [1 << 20])
    _, trailed = scan("/x", data + b"trailing" * 100_000, [1 << 20])
    assert go_packages(trailed) == go_packages(plain)


def test_go_binary_with_damaged_elf_header_is_searched_whole():
    data = read("golang", GO_BINARIES[0])
    _, result = scan("/usr/bin/go-md2man", b"\0\0\0\0" + data[4:], [65536])
    assert go_packages(result) == syft_go_packages(GO_BINARIES[0])


def test_truncated_go_binary_is_not_a_go_binary():
    data = read("golang", GO_BINARIES[1])
    scanner, result = scan("/x", data[: len(data) // 2], [65536])
    assert result is None and scanner.found_by is None


def go_blob(version=b"go1.21.0", modinfo=b"", flags=2, pointer_size=8):
    header = GO_BUILDINFO_MAGIC + bytes([pointer_size, flags]) + bytes(16)
    framed = b"0123456789abcdef" + modinfo + b"fedcba9876543210" if modinfo else b""
    return header + bytes([len(version)]) + version + _uvarint(len(framed)) + framed


def _uvarint(value):
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def embedded(blob, at=4096, size=16384):
    """A non-ELF stream with ``blob`` at offset ``at`` (searched whole)."""
    data = bytearray(b"\x55" * size)
    data[at:at + len(blob)] = blob
    return bytes(data)


def test_inline_go_blob_across_every_chunk_boundary():
    modinfo = b"path\texample.com/x\nmod\texample.com/x\tv1.0.0\t\ndep\tgolang.org/x/text\tv0.3.7\th1:abc=\n"
    data = embedded(go_blob(modinfo=modinfo))
    for size in (1, 2, 3, 5, 16, 31, 4099):
        _, result = scan("/x", data, [size])
        assert [(p.name, p.version) for p in result.packages] == [
            ("golang.org/x/text", "v0.3.7"), ("example.com/x", "v1.0.0"), ("stdlib", "go1.21.0")], size


def test_misaligned_magic_is_not_build_info():
    assert scan("/x", embedded(go_blob(modinfo=b"path\tx\n"), at=4097), [4096])[1] is None


def test_stray_magic_before_the_real_blob_is_skipped():
    stray = GO_BUILDINFO_MAGIC + b"\x08\x02" + bytes(16) + b"\x03abc\x00"  # not a toolchain version
    data = bytearray(embedded(go_blob(modinfo=b"path\texample.com/x\n"), at=8192))
    data[1024:1024 + len(stray)] = stray
    _, result = scan("/x", bytes(data), [1000])
    assert [p.name for p in result.packages] == ["example.com/x", "stdlib"]


def test_pre_go_1_18_blob_gives_a_warning_naming_the_file():
    blob = GO_BUILDINFO_MAGIC + bytes([8, 0]) + (0x4A1000).to_bytes(8, "little") + (0x4A2000).to_bytes(8, "little")
    scanner, result = scan("/usr/bin/old", embedded(blob), [4096])
    assert result.packages == [] and scanner.found_by is None
    assert result.warnings == [("/usr/bin/old: Go < 1.18 build info not supported (it points into the data segment, "
                                "which a stream cannot revisit); no Go packages reported")]


def test_huge_go_string_length_is_refused_without_buffering_it():
    blob = GO_BUILDINFO_MAGIC + bytes([8, 2]) + bytes(16) + _uvarint(1 << 40)
    scanner = BinaryScanner("/usr/bin/evil")
    data = embedded(blob, size=8 * MAX_GO_BUILDINFO_BYTES)
    for offset in range(0, len(data), 1 << 20):
        scanner.feed(data[offset:offset + (1 << 20)])
        assert len(scanner._buf) <= (1 << 20) + SCAN_BLOCK
    result = scanner.finish()
    assert result.packages == [] and "/usr/bin/evil" in result.warnings[0] and "larger than" in result.warnings[0]


def test_go_blob_cut_by_the_end_of_the_file_finds_nothing():
    blob = go_blob(modinfo=b"path\texample.com/x\n" * 100)
    assert scan("/x", b"\x55" * 4096 + blob[:-50], [512])[1] is None


# -- Rust -------------------------------------------------------------------------------------

def rust_packages(result):
    return sorted((p.name, p.version, p.metadata.get("source")) for p in result.packages)


def syft_rust_packages():
    return sorted((a["name"], a["version"], a.get("source")) for a in syft_expected("rust", UVX))


@pytest.mark.parametrize("chunks", [[1 << 30], [1], [4093], [3, 65536, 1, 100_003]], ids=str)
def test_cargo_auditable_binary_matches_syft(chunks):
    scanner, result = scan(UVX, read("rust", UVX), chunks)
    assert scanner.found_by == RUST_BINARY_CATALOGER
    assert result.warnings == []
    assert rust_packages(result) == syft_rust_packages()
    assert len(result.packages) == 532  # 567 crates, 35 of them build-time only
    assert all(p.type == "cargo" and not p.declared for p in result.packages)


def test_cargo_auditable_with_damaged_elf_header_is_searched_whole():
    data = read("rust", UVX)
    _, result = scan(UVX, b"\0\0\0\0" + data[4:], [4096])
    assert rust_packages(result) == syft_rust_packages()


def auditable(json_text, level=6):  # zlib level 6 writes 78 9C, as miniz_oxide level 7 does
    return zlib.compress(json_text, level)


def test_auditable_stream_across_every_chunk_boundary():
    doc = json.dumps({"packages": [{"name": "a", "version": "1.0.0", "source": "crates.io"},
                                   {"name": "b", "version": "2.0.0", "source": "local", "kind": "build"}]})
    data = embedded(auditable(doc.encode()))
    for size in (1, 2, 3, 7, 64, 4099):
        _, result = scan("/x", data, [size])
        assert rust_packages(result) == [("a", "1.0.0", "crates.io")], size


def test_zlib_streams_of_other_data_are_not_auditable():
    data = embedded(auditable(b'{"other": 1}' * 50) + auditable(bytes(range(256)) * 40), size=65536)
    assert scan("/x", data, [1000])[1] is None


def test_auditable_bomb_is_cut_at_the_limit():
    bomb = auditable(b'{"packages":[' + b" " * (MAX_AUDITABLE_JSON_BYTES + 1000) + b"]}")
    scanner, result = scan("/usr/bin/bomb", embedded(bomb, size=len(bomb) + 8192), [1 << 20])
    assert result.packages == [] and scanner.found_by is None
    assert result.warnings == [(f"/usr/bin/bomb: cargo-auditable data inflates past {MAX_AUDITABLE_JSON_BYTES} bytes; "
                                "skipped")]


def test_truncated_auditable_stream_warns():
    stream = auditable(json.dumps({"packages": [{"name": f"c{i}", "version": "1.0.0"} for i in range(3000)]}).encode())
    result = scan("/usr/bin/cut", b"\x55" * 4096 + stream[: len(stream) // 2], [4096])[1]
    assert result.packages == []
    assert result.warnings == ["/usr/bin/cut: cargo-auditable data ends before its zlib stream does; skipped"]


def test_corrupt_auditable_stream_warns():
    stream = bytearray(auditable(json.dumps({"packages": [{"name": f"c{i}", "version": "1"} for i in range(2000)]})
                                 .encode()))
    stream[-1] ^= 0xFF  # the Adler-32 of the JSON no longer matches
    result = scan("/usr/bin/bad", embedded(bytes(stream), size=len(stream) + 8192), [4096])[1]
    assert result.packages == [] and result.warnings[0].startswith("/usr/bin/bad: cargo-auditable data is corrupt")


def test_auditable_prefix_that_is_not_json_warns():
    result = scan("/usr/bin/nojson", embedded(auditable(b'{"packages": nope')), [4096])[1]
    assert result.packages == [] and result.warnings == [
        "/usr/bin/nojson: cargo-auditable data is not JSON (JSONDecodeError); skipped"]


# -- no match ---------------------------------------------------------------------------------

def test_random_bytes_full_of_zlib_headers_find_nothing():
    rng = random.Random(7)
    data = bytearray(rng.randbytes(1 << 21))
    for _ in range(2000):  # many candidates that must each be refused quickly
        at = rng.randrange(len(data) - 2)
        data[at:at + 2] = b"\x78\x9c"
    assert scan("/x", bytes(data), [65536])[1] is None


def test_empty_and_tiny_files():
    assert BinaryScanner("/x").finish() is None
    assert scan("/x", b"\x7fELF", [1])[1] is None
    assert scan("/x", b"MZ", [1])[1] is None


def test_elf_without_matches_skips_loaded_segments_without_copying():
    data = read("golang", GO_BINARIES[1])
    go_ranges, rust_ranges = binary._elf_ranges(data[:4096], complete=True)
    loaded = sum(high - low for low, high in go_ranges)
    assert loaded < len(data) // 4  # only the writable segment is searched for the Go blob
    assert rust_ranges[0][0] > len(data) // 2  # and only the unloaded tail for cargo-auditable


def test_feed_after_finish_is_a_bug():
    scanner = BinaryScanner("/x")
    scanner.finish()
    with pytest.raises(RuntimeError):
        scanner.feed(b"more")


# -- other executable formats, built here by the Go toolchain --------------------------------

def find_go():
    return shutil.which("go") or next(iter(sorted(glob.glob("/usr/lib/go-*/bin/go"), reverse=True)), None)


@pytest.fixture(scope="module")
def go_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("gocache")


@pytest.mark.skipif(not find_go(), reason="needs the Go toolchain (apt-get install golang-go)")
@pytest.mark.parametrize("goos, goarch", [
    ("linux", "386"),  # ELF, 32-bit, little endian
    ("linux", "s390x"),  # ELF, 64-bit, big endian
    ("windows", "amd64"),  # PE
    ("darwin", "arm64"),  # Mach-O
])
def test_go_binaries_of_other_formats(tmp_path, go_cache, goos, goarch):
    go = find_go()
    (tmp_path / "go.mod").write_text("module example.com/tiny\n\ngo 1.18\n")
    (tmp_path / "main.go").write_text('package main\n\nfunc main() { println("hi") }\n')
    env = {**os.environ, "GOOS": goos, "GOARCH": goarch, "CGO_ENABLED": "0", "GOPROXY": "off", "GOFLAGS": "",
           "GOCACHE": str(go_cache), "GOPATH": str(go_cache / "gopath")}
    out = tmp_path / "tiny"
    subprocess.run([go, "build", "-ldflags=-s -w -X main.version=0.1.0", "-o", str(out), "."], cwd=tmp_path, env=env,
                   check=True, capture_output=True, timeout=300)
    listing = subprocess.run([go, "version", "-m", str(out)], env=env, check=True, capture_output=True, text=True)
    toolchain = listing.stdout.split(": ", 1)[1].split()[0]
    assert f"\tbuild\tGOARCH={goarch}\n" in listing.stdout

    scanner, result = scan("/opt/tiny", out.read_bytes(), [65536])
    assert scanner.found_by == GO_BINARY_CATALOGER
    # the -X main.version semver stands for "(devel)", as Syft 1.18 derives it
    assert [(p.name, p.version) for p in result.packages] == [("example.com/tiny", "v0.1.0"), ("stdlib", toolchain)]
    assert result.packages[0].metadata["architecture"] == goarch


def test_many_oversized_go_candidates_give_one_warning():
    """Each 16-byte-aligned magic declaring a huge string is a candidate refused with a
    warning; a file made of them (8 MiB, 174,762 candidates here) says so once, not once per
    candidate (this one made 11 MB of warnings, a 200 MB one would make 275 MB)."""
    candidate = GO_BUILDINFO_MAGIC + bytes([8, 2]) + bytes(16) + _uvarint(1 << 40)
    candidate += bytes(-len(candidate) % 16)
    _, result = scan("/usr/bin/evil", candidate * ((8 << 20) // len(candidate)), [1 << 20])
    assert result.warnings == [f"/usr/bin/evil: Go build info larger than {MAX_GO_BUILDINFO_BYTES} bytes; skipped"]
