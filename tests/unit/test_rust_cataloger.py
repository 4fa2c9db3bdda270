"""Rust: Cargo.lock and the cargo-auditable JSON decoder (catalogers/rust.py) on real files
(tests/data/rust, see SOURCES.md), expected values from Syft 1.18.1's output for the same
tree (expected-syft-1.18.1.json). The executable itself is scanned in test_binary_cataloger.py."""

import json

import pytest

from analyzerd.catalogers import rust
from analyzerd.catalogers.base import MAX_JSON_BYTES
from analyzerd.catalogers.rust import parse_cargo_auditable, parse_cargo_lock
from tests.helpers import Fixtures

LOCK = "/usr/src/orjson-3.13.0/Cargo.lock"


FIXTURES = Fixtures("rust")
read, syft_expected = FIXTURES.read, FIXTURES.syft_expected


def test_cargo_lock_matches_syft():
    result = parse_cargo_lock(LOCK, read(LOCK))
    assert result.warnings == []
    got = sorted((p.name, p.version, p.metadata.get("source"), p.metadata.get("checksum")) for p in result.packages)
    assert got == sorted((a["name"], a["version"], a.get("source"), a.get("checksum")) for a in syft_expected(LOCK))
    assert len(got) == 23  # the [[package]] tables of the file, orjson itself (no source) included
    assert all(p.type == "cargo" and p.declared for p in result.packages)


@pytest.mark.parametrize("data, warning", [
    (b"\x00\x01\x02garbage[[[", "not a TOML Cargo.lock (TOMLDecodeError)"),
    (b"\xff\xfe", "not a TOML Cargo.lock (UnicodeDecodeError)"),
    (b"package = 3\n", "[[package]] is not a list"),
    (b'[[package]]\nname = "a"\n\n[[package]]\nname = "b"\nversion = "1.0.0"\n', "[[package]] entry 0 has no name"),
    (b"x = " + b"[" * 100_000 + b"]" * 100_000, "not a TOML Cargo.lock (RecursionError)"),
], ids=range(5))
def test_bad_cargo_lock_warns_naming_the_file(data, warning):
    result = parse_cargo_lock("/app/Cargo.lock", data)
    assert result.warnings[0] == f"/app/Cargo.lock: {warning}" or result.warnings[0].startswith(
        f"/app/Cargo.lock: {warning}")
    assert [p.name for p in result.packages] in ([], ["b"])


def test_crate_count_is_bounded(monkeypatch):
    monkeypatch.setattr(rust, "MAX_CRATES", 10)
    text = "".join(f'[[package]]\nname = "c{i}"\nversion = "1.0.{i}"\n\n' for i in range(100))
    result = parse_cargo_lock("/app/Cargo.lock", text.encode())
    assert len(result.packages) == 10 and "100 crates, more than 10" in result.warnings[0]


def test_auditable_json_keeps_runtime_crates_only():
    doc = {"packages": [{"name": "app", "version": "0.1.0", "source": "local", "root": True, "dependencies": [1]},
                        {"name": "serde", "version": "1.0.0", "source": "crates.io"},
                        {"name": "serde_derive", "version": "1.0.0", "source": "crates.io", "kind": "build"},
                        {"name": "broken"}], "format": 1}
    result = parse_cargo_auditable("/usr/bin/app", json.dumps(doc).encode())
    assert [(p.name, p.version, p.metadata) for p in result.packages] == [
        ("app", "0.1.0", {"source": "local"}), ("serde", "1.0.0", {"source": "crates.io"})]
    assert result.warnings == ["/usr/bin/app: cargo-auditable packages entry 3 has no name or version; skipped"]


@pytest.mark.parametrize("data, warning", [
    (b"not json", "cargo-auditable data is not JSON (JSONDecodeError); skipped"),
    (b"[1, 2]", "cargo-auditable data is not a JSON object; skipped"),
    (b'{"packages": {"a": 1}}', "cargo-auditable packages is not a list; skipped"),
    (b"[" * 100_000, "cargo-auditable data is not JSON (nested more than 128 levels); skipped"),
    # deep enough to trouble code that walks it, not deep enough for Python's parser to refuse
    (b'{"packages": ' + b"[" * 500 + b"]" * 500 + b"}",
     "cargo-auditable data is not JSON (nested more than 128 levels); skipped"),
    (b" " * (MAX_JSON_BYTES + 1),
     f"cargo-auditable data is not JSON read ({MAX_JSON_BYTES + 1} bytes, more than the {MAX_JSON_BYTES} read); "
     "skipped"),
], ids=range(6))
def test_bad_auditable_json_warns_naming_the_file(data, warning):
    result = parse_cargo_auditable("/usr/bin/app", data)
    assert result.packages == [] and result.warnings == [f"/usr/bin/app: {warning}"]
