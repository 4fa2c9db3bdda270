"""Rust crates: the dependency list ``cargo auditable`` embeds in executables (the JSON
that ``binary.BinaryScanner`` inflates from the ``.dep-v0`` section) and ``Cargo.lock``.

Formats:
- cargo-auditable: zlib-compressed JSON ``{"packages": [{"name", "version", "source",
  "kind", "dependencies", "root"}, ...], "format": 1}``; "kind" is "runtime" when absent
  (https://github.com/rust-secure-code/cargo-auditable, PARSING.md; Microsoft's
  go-rustaudit, which Syft uses, defaults it the same way);
- Cargo.lock: TOML, one ``[[package]]`` table per crate with name, version, and for
  registry/git crates source and checksum (https://doc.rust-lang.org/cargo/guide/cargo-toml-vs-cargo-lock.html).

As Syft 1.18: a binary lists its runtime crates only (build-time crates such as proc
macros are not in the program), the root crate included; a Cargo.lock lists every package.
"""

from __future__ import annotations

import tomllib
from typing import Any, Final

from .base import Cataloger, Package, ParseResult, load_json

__all__ = ["CARGO_LOCK", "MAX_CRATES", "parse_cargo_auditable", "parse_cargo_lock"]

#: The largest Rust workspaces lock about 1,500 crates; more than this is not a real lock.
MAX_CRATES: Final = 50_000
#: Names, versions and sources longer than this are not crate metadata.
MAX_FIELD: Final = 1024
#: Warnings per file: a garbage file must not produce one warning per entry.
MAX_WARNINGS: Final = 20


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_FIELD else None


def _crates(path: str, entries: Any, what: str, result: ParseResult) -> list[dict[str, Any]]:
    """The well-formed entries of a crate list (a list of tables with a name and version)."""
    if not isinstance(entries, list):
        result.warnings.append(f"{path}: {what} is not a list; skipped")
        return []
    if len(entries) > MAX_CRATES:
        result.warnings.append(f"{path}: {len(entries)} crates, more than {MAX_CRATES}; the rest are skipped")
        entries = entries[:MAX_CRATES]
    crates = []
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and _text(entry.get("name")) and _text(entry.get("version")):
            crates.append(entry)
        elif len(result.warnings) < MAX_WARNINGS:
            result.warnings.append(f"{path}: {what} entry {index} has no name or version; skipped")
    return crates


def parse_cargo_auditable(path: str, json_bytes: bytes) -> ParseResult:
    """Crates of one executable built with ``cargo auditable`` (``path`` is the executable)."""
    result = ParseResult()
    document, problem = load_json(path, json_bytes, "cargo-auditable data")
    if problem is not None:
        result.warnings.append(problem)
        return result
    if not isinstance(document, dict):
        result.warnings.append(f"{path}: cargo-auditable data is not a JSON object; skipped")
        return result
    for crate in _crates(path, document.get("packages"), "cargo-auditable packages", result):
        if crate.get("kind", "runtime") != "runtime":
            continue
        source = _text(crate.get("source"))
        result.packages.append(Package(type="cargo", name=crate["name"], version=crate["version"],
                                       metadata={"source": source} if source else {}))
    return result


def parse_cargo_lock(path: str, data: bytes) -> ParseResult:
    """Every ``[[package]]`` of a Cargo.lock, declared."""
    result = ParseResult()
    try:
        document = tomllib.loads(str(bytes(data), "utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        result.warnings.append(f"{path}: not a TOML Cargo.lock ({exc.__class__.__name__}); skipped")
        return result
    for crate in _crates(path, document.get("package", []), "[[package]]", result):
        metadata = {key: value for key in ("source", "checksum") if (value := _text(crate.get(key)))}
        result.packages.append(Package(type="cargo", name=crate["name"], version=crate["version"], declared=True,
                                       metadata=metadata))
    return result


CARGO_LOCK = Cataloger(name="rust-cargo-lock", globs=("**/Cargo.lock",), parse=parse_cargo_lock,
                       max_bytes=16 * 1024 * 1024)
