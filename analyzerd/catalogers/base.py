"""The types every cataloger shares. Pure: catalogers parse bytes, they never read files."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

__all__ = ["CatalogEntry", "Cataloger", "Claim", "Distro", "OwnedFile", "Package", "ParseResult", "StreamScanner",
           "BINARY_SNIFF_CHARS", "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "load_json", "looks_binary", "shorten"]


@dataclass(frozen=True, slots=True)
class OwnedFile:
    """A file a package database says the package installed, with the digest it recorded."""

    path: str
    digest: str | None = None  #: lowercase hex
    algorithm: str | None = None  #: md5, sha1, sha256, sha384, sha512


@dataclass(slots=True, kw_only=True)
class Package:
    type: str  #: purl type: deb, apk, rpm, pypi, npm, gem, maven, golang, cargo, composer, nuget
    name: str  #: as the ecosystem spells it (npm: "@scope/name"; maven: the artifactId)
    version: str
    #: the purl namespace where the name alone does not identify the package: maven's groupId,
    #: a Go module's or Composer package's leading path ("github.com/pkg" of "github.com/pkg/errors")
    namespace: str | None = None
    #: listed by a lock or manifest file (requirements.txt, package-lock.json, go.mod, ...),
    #: not found installed in the image
    declared: bool = False
    arch: str | None = None
    epoch: int | None = None
    source_name: str | None = None
    source_version: str | None = None
    license: str | None = None
    maintainer: str | None = None
    vendor: str | None = None
    installed_size: int | None = None  #: bytes
    files: list[OwnedFile] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Claim:
    """What a file beside the package record says about the package: dpkg's info/<pkg>.list
    and .md5sums, a Python dist-info's RECORD, top_level.txt or direct_url.json."""

    #: which package: dpkg "name" or "name:arch"; Python: the absolute path of the
    #: .dist-info / .egg-info directory
    package: str
    files: tuple[OwnedFile, ...] = ()  #: with recorded digests
    #: owned paths without digests (dpkg's .list: directories, links, conffiles too);
    #: kept as plain strings, there are tens of thousands
    paths: tuple[str, ...] = ()
    #: fields to add to the package's metadata (small, JSON-serializable)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Distro:
    id: str
    version_id: str | None = None
    codename: str | None = None
    id_like: tuple[str, ...] = ()
    pretty_name: str | None = None


@dataclass(slots=True, kw_only=True)
class ParseResult:
    packages: list[Package] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    distro: Distro | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class CatalogEntry:
    """What one cataloger found in one file of a layer."""

    path: str
    cataloger: str
    result: ParseResult


Parser = Callable[[str, bytes], ParseResult]


class StreamScanner(Protocol):
    """Looks at a file's bytes as they stream past, without holding the file."""

    def feed(self, data: memoryview) -> None: ...

    def finish(self) -> ParseResult | None: ...


def shorten(text: str, limit: int) -> str:
    """``text``, or when longer than ``limit`` characters its head and tail around "…": both
    ends of a path say where it is (the archive, the file), the middle rarely does."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    tail = limit - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


#: Bytes of one JSON document read (PHP's installed.json, the largest read, is given 32 MiB).
#: Parsed, JSON grows: 16 MiB of ``[{},{},...`` is 5 million dicts, ~300 MB.
MAX_JSON_BYTES: Final = 32 * 1024 * 1024
#: Nesting of a JSON document: the formats read nest under ten levels. Python's parser
#: recurses once per level and stops near its recursion limit (~1000) with a RecursionError;
#: this bound is ours, far below it, so code walking a document never nears that limit.
MAX_JSON_DEPTH: Final = 128
#: A text database has no NUL among its first this many characters; a file that does (an ELF
#: or an archive under a database's name) is skipped with a warning, not parsed as text.
BINARY_SNIFF_CHARS: Final = 8192


def looks_binary(text: str) -> bool:
    return "\x00" in text[:BINARY_SNIFF_CHARS]


def load_json(path: str, data: bytes | bytearray | memoryview, subject: str = "") -> tuple[Any, str | None]:
    """A JSON document, or None and the warning that names the file (``subject``: what the
    bytes were meant to be, when the file itself is not it, e.g. data inside a binary)."""
    what = f"{subject} is not JSON" if subject else "not JSON"
    if len(data) > MAX_JSON_BYTES:
        return None, f"{path}: {what} read ({len(data)} bytes, more than the {MAX_JSON_BYTES} read); skipped"
    try:
        document = json.loads(bytes(data))
    except RecursionError:  # deeper than Python's recursion limit, so deeper than ours too
        return None, f"{path}: {what} (nested more than {MAX_JSON_DEPTH} levels); skipped"
    except ValueError as exc:
        return None, f"{path}: {what} ({type(exc).__name__}); skipped"
    if _nested_deeper_than(document, MAX_JSON_DEPTH):
        return None, f"{path}: {what} (nested more than {MAX_JSON_DEPTH} levels); skipped"
    return document, None


def _nested_deeper_than(document: Any, limit: int) -> bool:
    """Whether lists and objects nest more than ``limit`` levels (a walk without recursion)."""
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _no_parser(path: str, data: bytes) -> ParseResult:
    return ParseResult(warnings=[f"{path}: no parser"])


@dataclass(frozen=True, slots=True)
class Cataloger:
    """A declared value: the paths it wants (globs over absolute paths; ``**/`` matches any
    directory prefix) and a pure parser from (path, bytes) to a ParseResult.

    Or, for files no path identifies (executables: Go and Rust binaries), a ``scanner``
    that sees the data of every executable regular file starting with one of ``magic``
    as it streams, so a 200 MB binary is never held in memory."""

    name: str
    globs: tuple[str, ...] = ()
    parse: Parser = _no_parser
    #: Files larger than this are not read (a warning names them): the parser needs them whole.
    max_bytes: int = 16 * 1024 * 1024
    scanner: Callable[[str], StreamScanner] | None = None
    magic: tuple[bytes, ...] = ()


# -- storage form: what a layer's catalog entries look like in the database (JSON) ------------

def result_to_json(result: ParseResult) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if result.packages:
        out["packages"] = [_package_to_json(p) for p in result.packages]
    if result.claims:
        out["claims"] = [{"package": c.package, "files": _files_to_json(c.files), "paths": "\n".join(c.paths),
                          **({"metadata": c.metadata} if c.metadata else {})} for c in result.claims]
    if result.distro is not None:
        d = result.distro
        out["distro"] = {"id": d.id, "version_id": d.version_id, "codename": d.codename,
                         "id_like": list(d.id_like), "pretty_name": d.pretty_name}
    return out


def result_from_json(doc: dict[str, Any]) -> ParseResult:
    distro = doc.get("distro")
    return ParseResult(
        packages=[_package_from_json(p) for p in doc.get("packages", ())],
        claims=[Claim(c["package"], tuple(_files_from_json(c["files"])),
                      tuple(c["paths"].split("\n")) if c.get("paths") else (), c.get("metadata", {}))
                for c in doc.get("claims", ())],
        distro=Distro(distro["id"], distro.get("version_id"), distro.get("codename"), tuple(distro.get("id_like", ())),
                      distro.get("pretty_name")) if distro else None,
    )


def _files_to_json(files: Any) -> list[str]:
    """Flat [path, digest, algorithm, path, ...]: one list of strings is cheap to encode
    (package databases list tens of thousands of files)."""
    return [x for f in files for x in (f.path, f.digest or "", f.algorithm or "")]


def _files_from_json(flat: list[str]) -> list[OwnedFile]:
    return [OwnedFile(flat[i], flat[i + 1] or None, flat[i + 2] or None) for i in range(0, len(flat), 3)]


_PACKAGE_FIELDS = ("type", "name", "version", "namespace", "declared", "arch", "epoch", "source_name", "source_version", "license",
                   "maintainer", "vendor", "installed_size", "metadata")


def _package_to_json(p: Package) -> dict[str, Any]:
    out = {k: v for k in _PACKAGE_FIELDS if (v := getattr(p, k)) is not None and v is not False and v != {}}
    if p.files:
        out["files"] = _files_to_json(p.files)
    return out


def _package_from_json(doc: dict[str, Any]) -> Package:
    return Package(**{k: doc[k] for k in _PACKAGE_FIELDS if k in doc},
                   files=_files_from_json(doc.get("files", [])))
