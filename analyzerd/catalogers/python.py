"""Python packages: installed distributions and declared (locked or pinned) dependencies.

Installed (``type="pypi"``), in any directory, as Syft looks for them:

- ``*.dist-info/METADATA`` (wheels, PEP 376/627), ``*.egg-info/PKG-INFO`` (setuptools) and a
  ``*.egg-info`` *file* (distutils wrote PKG-INFO content under that name). The format is the
  Core Metadata specification (https://packaging.python.org/specifications/core-metadata/):
  RFC 822 style headers, folded lines start with whitespace, and the body after the first blank
  line is the long description, which is never read.
- files beside it, each its own parser returning a ``Claim`` keyed by the absolute path of the
  ``.dist-info``/``.egg-info`` directory (``posixpath.dirname`` of the METADATA path): ``RECORD``
  (CSV ``path,hash,size``; https://packaging.python.org/specifications/recording-installed-packages/),
  ``installed-files.txt`` (paths relative to the egg-info directory, written by pip's legacy
  ``setup.py install``), ``top_level.txt``, ``direct_url.json`` (PEP 610) and ``INSTALLER``.

Declared (``declared=True``): pinned ``requirements*.txt`` lines (pip's requirements file format;
like Syft, only ``name==version`` pins: a range names no version), ``poetry.lock``,
``Pipfile.lock`` (``default`` and ``develop``) and ``uv.lock`` (the project being locked, an
``editable`` or ``virtual`` source, is not a dependency and is left out: ``uv export`` omits a
virtual one and names an editable one only as ``-e .``, without a version).
"""

from __future__ import annotations

import base64
import binascii
import csv
import posixpath
import re
import string
import tomllib
from collections.abc import Iterable, Iterator
from typing import Any, Final

from .base import Cataloger, Claim, OwnedFile, Package, ParseResult, load_json, looks_binary

__all__ = [
    "PYTHON_CATALOGERS",
    "PYTHON_DIRECT_URL",
    "PYTHON_INSTALLED",
    "PYTHON_INSTALLED_FILES",
    "PYTHON_INSTALLER",
    "PYTHON_PIPFILE_LOCK",
    "PYTHON_POETRY_LOCK",
    "PYTHON_RECORD",
    "PYTHON_REQUIREMENTS",
    "PYTHON_TOP_LEVEL",
    "PYTHON_UV_LOCK",
    "package_directory",
    "parse_direct_url",
    "parse_installed_files",
    "parse_installer",
    "parse_metadata",
    "parse_pipfile_lock",
    "parse_poetry_lock",
    "parse_record",
    "parse_requirements",
    "parse_top_level",
    "parse_uv_lock",
]

# -- limits ---------------------------------------------------------------------------------------

#: Only the header block of METADATA is read. numpy 1.26's is 60 KB (its License field holds
#: the whole license text); a header past this is not metadata. The description after it can be
#: megabytes and is never copied.
MAX_HEADER_BYTES: Final = 1024 * 1024
#: Lines of a header block (numpy's: ~1,000).
MAX_HEADER_LINES: Final = 20_000
#: One header field, folded lines included; longer values are cut (they are only kept when short).
MAX_FIELD_CHARS: Final = 128 * 1024
#: A License value longer than this is a text, not a license name (SPDX ids are < 40 chars).
MAX_LICENSE_NAME: Final = 200
#: Each string stored in Package.metadata / Claim.metadata (keeps result rows small).
MAX_METADATA_VALUE: Final = 512
#: Values of repeated fields (Classifier, Project-URL) kept; real packages have < 100.
MAX_REPEATED_VALUES: Final = 1_000
#: RECORD / installed-files.txt entries per distribution: the largest wheels (tensorflow,
#: torch) list ~30,000 files.
MAX_OWNED_FILES: Final = 200_000
#: A path longer than Linux's PATH_MAX is not a real file.
MAX_PATH_LENGTH: Final = 4096
#: top_level.txt names (module names; a handful in practice).
MAX_TOP_LEVEL: Final = 1_000
#: Packages in one lock or requirements file: large monorepo locks hold a few thousand.
MAX_DECLARED_PACKAGES: Final = 50_000
#: Lines of a requirements file read (hash-pinned files of ~1,000 packages are ~50,000 lines).
MAX_REQUIREMENT_LINES: Final = 500_000
#: One logical requirements line after joining "\\" continuations (a line with a hundred
#: --hash options is ~9 KB).
MAX_REQUIREMENT_LINE: Final = 256 * 1024
#: Small files read whole: INSTALLER, top_level.txt, direct_url.json.
MAX_SMALL_FILE: Final = 64 * 1024
#: Lock and requirements files are parsed whole (tomllib and json need all of it, at several
#: times the file size in memory); a generated uv.lock or poetry.lock of a large project is a
#: few MB.
MAX_LOCK_FILE: Final = 16 * 1024 * 1024
#: METADATA files with an embedded long description reach a few MB; only the first
#: MAX_HEADER_BYTES are ever decoded, so a larger file costs nothing more.
MAX_METADATA_FILE: Final = 64 * 1024 * 1024
#: RECORD and installed-files.txt: ~3 MB for the largest wheels (tensorflow, torch).
MAX_RECORD_FILE: Final = 16 * 1024 * 1024

#: RECORD hash names (hashlib's) and the digest size each must decode to.
_DIGEST_SIZES: Final = {"md5": 16, "sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
#: setuptools and distutils wrote "UNKNOWN" for a field the project left empty.
_PLACEHOLDERS: Final = frozenset({"", "UNKNOWN", "UNKNOWN <UNKNOWN>", "None"})
#: PEP 753: a Project-URL label is compared with punctuation and whitespace removed, lowercased.
_LABEL_NOISE: Final = str.maketrans("", "", string.punctuation + string.whitespace)
#: A PEP 508 distribution name: alphanumeric runs joined by runs of "._-" (the two classes
#: are disjoint, so a name splits one way only).
_NAME: Final = r"[A-Za-z0-9]++(?:[._-]++[A-Za-z0-9]++)*+"
#: Possessive throughout, so that no text is tried by two parts in turn (the old lazy spec
#: between two "\s*" was quadratic on 200,000 "a" and an "@"). The name, the space after it
#: and the spec each take the most they can, which is what the old pattern's first try took;
#: the spec keeps its surrounding space, which the caller strips.
_REQUIREMENT: Final = re.compile(
    rf"^(?P<name>{_NAME})\s*+(?:\[(?P<extras>[^\]]*+)\]\s*+)?(?P<spec>[^;@]*+)(?:;(?P<marker>.*+))?$")
#: A pin: "==" (or arbitrary equality "===") and one PEP 440 version, no wildcard.
_PIN: Final = re.compile(r"^===?\s*(?P<version>[A-Za-z0-9][A-Za-z0-9._+!-]*)$")
#: pip's comment rule: "#" at the start of a line or after whitespace.
_COMMENT: Final = re.compile(r"(?:^|\s)#.*$")
#: Per-requirement options (--hash, --config-settings, ...) follow the requirement.
_OPTION: Final = re.compile(r"\s--[A-Za-z]")
#: uv.lock source kinds that are the project being locked (or a workspace member), not a dependency.
_LOCAL_PROJECT_SOURCES: Final = frozenset({"editable", "virtual"})
#: The uv.lock format versions this parser knows (Syft refuses newer ones too).
_UV_LOCK_VERSIONS: Final = frozenset({1})
#: Pipfile.lock keys naming a version-control source.
_VCS_KEYS: Final = ("git", "hg", "svn", "bzr")


# -- shared helpers ---------------------------------------------------------------------------------

def package_directory(metadata_path: str) -> str:
    """The key under which claims about the package at ``metadata_path`` are filed: the
    ``.dist-info``/``.egg-info`` directory (for a distutils ``.egg-info`` file: the file itself,
    which has no companions)."""
    if metadata_path.endswith(".egg-info"):
        return metadata_path
    return posixpath.dirname(metadata_path)


def _short(value: str) -> str:
    """A metadata string: folded lines joined, cut to MAX_METADATA_VALUE."""
    return " ".join(value.split())[:MAX_METADATA_VALUE]


def _text(data: bytes | bytearray | memoryview, limit: int | None = None) -> str:
    view = data if limit is None or len(data) <= limit else memoryview(data)[:limit]
    return str(view, "utf-8", "replace")


def _absolute(base: str, path: str) -> str | None:
    """``path`` from a file listing, resolved against ``base`` and normalized; None if unusable."""
    if not path or len(path) > MAX_PATH_LENGTH or "\x00" in path:
        return None
    resolved = posixpath.normpath(posixpath.join(base, path))
    if resolved.startswith("//"):  # normpath keeps a leading "//" (POSIX leaves it implementation-defined)
        resolved = "/" + resolved.lstrip("/")
    return resolved


def _lines(text: str) -> Iterator[str]:
    """Lines split at "\n" only: a file name may contain any other line-breaking character."""
    for line in text.split("\n"):
        yield line[:-1] if line.endswith("\r") else line


# -- METADATA / PKG-INFO ----------------------------------------------------------------------------

class _Headers:
    """The header block of a Core Metadata file: field names compared case-insensitively, the
    first value of a single field kept (as ``email.message.Message.get`` does), every value of
    a repeated field kept in order."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}
        self.ended = False  #: the blank line that closes the header block was seen
        self.truncated = False  #: more than MAX_HEADER_LINES header lines

    def first(self, name: str) -> str | None:
        values = self.fields.get(name.lower())
        return values[0] if values else None

    def all_values(self, name: str) -> list[str]:
        return self.fields.get(name.lower(), [])

    def clean(self, name: str) -> str | None:
        """A single-line value, placeholders dropped."""
        value = self.first(name)
        if value is None:
            return None
        value = _short(value)
        return None if value in _PLACEHOLDERS else value


def _read_headers(text: str) -> _Headers:
    headers = _Headers()
    current: list[str] | None = None  # the value list of the field being folded
    for count, line in enumerate(_lines(text)):
        if not line:
            if headers.fields:
                headers.ended = True  # the description follows (or the file ends)
                break
            continue  # blank lines before the first field
        if count >= MAX_HEADER_LINES:  # a header line past the limit (the end's "" is not one)
            headers.truncated = True
            break
        if line[0] in " \t":
            if current is not None and len(current[-1]) < MAX_FIELD_CHARS:
                current[-1] = (current[-1] + "\n" + line.strip())[:MAX_FIELD_CHARS]
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        current = None
        if not sep or not name or any(c.isspace() for c in name):
            continue  # not a field (Syft logs and skips such lines too)
        values = headers.fields.setdefault(name.lower(), [])
        if len(values) < MAX_REPEATED_VALUES:
            values.append(value.strip()[:MAX_FIELD_CHARS])
            current = values
    return headers


def _license(headers: _Headers) -> str | None:
    """License-Expression (PEP 639), else a License value that names a license (one short line;
    setuptools let projects paste the whole license text there, which Syft also refuses to take
    as a name), else the names of the ``License ::`` trove classifiers."""
    expression = headers.first("License-Expression")
    if expression and expression.strip():
        return _short(expression)
    declared = (headers.first("License") or "").strip()
    if declared and declared not in _PLACEHOLDERS and "\n" not in declared and len(declared) <= MAX_LICENSE_NAME:
        return declared
    names: list[str] = []
    for classifier in headers.all_values("Classifier"):
        parts = [part.strip() for part in classifier.split("::")]
        if len(parts) < 2 or parts[0] != "License":
            continue
        name = parts[-1]
        if name and name != "OSI Approved" and name not in names:
            names.append(name)
    return " AND ".join(names)[:MAX_METADATA_VALUE] if names else None


def _homepage(headers: _Headers) -> str | None:
    homepage = headers.clean("Home-page")
    if homepage:
        return homepage
    for entry in headers.all_values("Project-URL"):
        label, sep, url = entry.partition(",")
        if sep and label.translate(_LABEL_NOISE).lower() == "homepage" and url.strip():
            return _short(url)
    return None


def _metadata_fields(headers: _Headers) -> dict[str, Any]:
    candidates = {
        "summary": headers.clean("Summary"),
        "author": headers.clean("Author"),
        "author_email": headers.clean("Author-email"),
        "homepage": _homepage(headers),
    }
    return {key: value for key, value in candidates.items() if value}


def parse_metadata(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """An installed distribution's METADATA / PKG-INFO (or a distutils ``.egg-info`` file)."""
    text = _text(data, MAX_HEADER_BYTES)
    if looks_binary(text):
        return ParseResult(warnings=[f"{path}: binary data, not Python package metadata; skipped"])
    headers = _read_headers(text)
    result = ParseResult()
    if headers.truncated or (not headers.ended and len(data) > MAX_HEADER_BYTES):
        result.warnings.append(f"{path}: metadata header longer than the limit; the rest was ignored")
    name = (headers.first("Name") or "").strip()
    version = (headers.first("Version") or "").strip()
    if not name or not version:
        missing = " and ".join(field for field, value in (("Name", name), ("Version", version)) if not value)
        result.warnings.append(f"{path}: no {missing} field; not a package")
        return result
    if name == "Python":
        # Python 2's stdlib installed a Python-2.7.egg-info for the interpreter itself: not a
        # package (Syft skips it too).
        return result
    result.packages.append(Package(
        type="pypi", name=name[:MAX_METADATA_VALUE], version=version[:MAX_METADATA_VALUE],
        license=_license(headers), metadata=_metadata_fields(headers)))
    return result


# -- files beside METADATA --------------------------------------------------------------------------

def _decode_hash(value: str) -> tuple[str, str] | None:
    """RECORD's "<algorithm>=<urlsafe base64, no padding>" as (lowercase hex, algorithm)."""
    algorithm, sep, encoded = value.partition("=")
    algorithm = algorithm.strip().lower()
    size = _DIGEST_SIZES.get(algorithm)
    if not sep or size is None:
        return None
    encoded = encoded.strip()
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != size:
        return None
    return raw.hex(), algorithm


def parse_record(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """A RECORD: every installed file, with its digest when recorded (RECORD itself and
    ``.pyc`` files usually carry none). Paths are relative to the directory holding the
    ``.dist-info`` directory (``../../../bin/x`` for scripts)."""
    text = _text(data)
    if looks_binary(text):
        return ParseResult(warnings=[f"{path}: binary data, not a RECORD file; skipped"])
    directory = posixpath.dirname(path)
    base = posixpath.dirname(directory)
    files: list[OwnedFile] = []
    paths: list[str] = []
    warnings: list[str] = []
    bad_hashes = 0
    rows = 0
    reader = csv.reader(_lines(text))
    try:
        for row in reader:
            if not row or not row[0].strip():
                continue
            rows += 1
            if rows > MAX_OWNED_FILES:
                warnings.append(f"{path}: more than {MAX_OWNED_FILES} entries; the rest were ignored")
                break
            owned = _absolute(base, row[0])
            if owned is None:
                continue
            recorded = row[1].strip() if len(row) > 1 else ""
            digest = _decode_hash(recorded) if recorded else None
            if digest is not None:
                files.append(OwnedFile(owned, digest[0], digest[1]))
                continue
            if recorded:
                bad_hashes += 1
            paths.append(owned)
    except csv.Error as exc:
        warnings.append(f"{path}: not a CSV file past line {reader.line_num} ({exc}); the rest was ignored")
    if bad_hashes:
        warnings.append(f"{path}: {bad_hashes} entries with an unreadable hash were kept without a digest")
    if not files and not paths:
        warnings.append(f"{path}: no file entries")
        return ParseResult(warnings=warnings)
    return ParseResult(claims=[Claim(directory, tuple(files), tuple(paths))], warnings=warnings)


def parse_installed_files(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """An egg-info's installed-files.txt: one path a line, relative to the egg-info directory."""
    text = _text(data)
    if looks_binary(text):
        return ParseResult(warnings=[f"{path}: binary data, not an installed-files.txt; skipped"])
    directory = posixpath.dirname(path)
    paths: list[str] = []
    warnings: list[str] = []
    for line in _lines(text):
        owned = _absolute(directory, line.strip())
        if owned is None:
            continue
        if len(paths) >= MAX_OWNED_FILES:
            warnings.append(f"{path}: more than {MAX_OWNED_FILES} entries; the rest were ignored")
            break
        paths.append(owned)
    return ParseResult(claims=[Claim(directory, paths=tuple(paths))], warnings=warnings)


def parse_top_level(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """top_level.txt: the importable top-level names the distribution installs."""
    text = _text(data, MAX_SMALL_FILE)
    if looks_binary(text):
        return ParseResult(warnings=[f"{path}: binary data, not a top_level.txt; skipped"])
    names: list[str] = []
    for line in text.splitlines():
        name = line.strip()
        if name and name not in names:
            names.append(name[:MAX_METADATA_VALUE])
            if len(names) >= MAX_TOP_LEVEL:
                break
    return ParseResult(claims=[Claim(posixpath.dirname(path), metadata={"top_level": names})])


def parse_installer(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """INSTALLER: the name of the tool that installed the distribution (pip, uv, ...)."""
    text = _text(data, MAX_SMALL_FILE)
    lines = text.strip().splitlines()
    installer = _short(lines[0]) if lines else ""
    if not installer or looks_binary(text):
        return ParseResult(warnings=[f"{path}: no installer name"])
    return ParseResult(claims=[Claim(posixpath.dirname(path), metadata={"installer": installer})])


def _string(value: Any) -> str | None:
    return _short(value) if isinstance(value, str) and value.strip() else None


def parse_direct_url(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """direct_url.json (PEP 610): where a distribution installed from a URL, a VCS or a local
    directory came from."""
    if len(data) > MAX_SMALL_FILE:
        return ParseResult(warnings=[f"{path}: larger than {MAX_SMALL_FILE} bytes; not a direct_url.json"])
    document, problem = load_json(path, data)
    if problem is not None:
        return ParseResult(warnings=[problem])
    if not isinstance(document, dict) or (url := _string(document.get("url"))) is None:
        return ParseResult(warnings=[f"{path}: no url; skipped"])
    metadata: dict[str, Any] = {"direct_url": url}
    vcs_info = document.get("vcs_info")
    if isinstance(vcs_info, dict):
        for key in ("vcs", "commit_id", "requested_revision"):
            if (value := _string(vcs_info.get(key))) is not None:
                metadata[key] = value
    dir_info = document.get("dir_info")
    if isinstance(dir_info, dict) and dir_info.get("editable") is True:
        metadata["editable"] = True
    return ParseResult(claims=[Claim(posixpath.dirname(path), metadata=metadata)])


# -- declared dependencies --------------------------------------------------------------------------

def _declared(name: str, version: str, metadata: dict[str, Any] | None = None) -> Package:
    return Package(type="pypi", name=name[:MAX_METADATA_VALUE], version=version[:MAX_METADATA_VALUE],
                   declared=True, metadata=metadata or {})


def _logical_lines(text: str) -> Iterator[str]:
    """Requirement lines with comments removed and "\\" continuations joined, as pip reads them."""
    pending = ""
    for index, raw in enumerate(text.splitlines()):
        if index >= MAX_REQUIREMENT_LINES:
            break
        line = _COMMENT.sub("", raw).rstrip()
        if line.endswith("\\"):
            if len(pending) < MAX_REQUIREMENT_LINE:  # past the limit the rest of the line is dropped
                pending += line[:-1]
            continue
        yield (pending + line).strip()[:MAX_REQUIREMENT_LINE]
        pending = ""
    if pending.strip():
        yield pending.strip()


def _pinned_requirement(line: str) -> Package | None:
    """``name[extras]==version ; marker --hash=...`` as a package; None for anything else
    (options, URLs and paths, ranges: Syft reports only exact pins)."""
    if not line or line.startswith("-"):
        return None  # -r / -c / -e / --index-url ... : not a requirement
    option = _OPTION.search(line)
    requirement = line[:option.start()] if option else line
    match = _REQUIREMENT.match(requirement.strip())
    if match is None:
        return None
    pin = _PIN.match(match.group("spec").strip())
    if pin is None:
        return None
    metadata: dict[str, Any] = {}
    extras = [e.strip() for e in (match.group("extras") or "").split(",") if e.strip()]
    if extras:
        metadata["extras"] = extras[:MAX_REPEATED_VALUES]
    marker = (match.group("marker") or "").strip()
    if marker:
        metadata["markers"] = _short(marker)
    return _declared(match.group("name"), pin.group("version"), metadata)


def parse_requirements(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """A pip requirements file: the exactly pinned requirements."""
    text = _text(data)
    if looks_binary(text):
        return ParseResult(warnings=[f"{path}: binary data, not a requirements file; skipped"])
    result = ParseResult()
    for line in _logical_lines(text):
        package = _pinned_requirement(line)
        if package is None:
            continue
        if len(result.packages) >= MAX_DECLARED_PACKAGES:
            result.warnings.append(f"{path}: more than {MAX_DECLARED_PACKAGES} requirements; the rest were ignored")
            break
        result.packages.append(package)
    return result


def _load_toml(path: str, data: bytes | bytearray | memoryview) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return tomllib.loads(_text(data)), None
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
        return None, f"{path}: not TOML ({type(exc).__name__}: {str(exc)[:200]}); skipped"


def _packages_table(path: str, document: dict[str, Any], result: ParseResult) -> list[dict[str, Any]]:
    entries = document.get("package", [])
    if not isinstance(entries, list):
        result.warnings.append(f"{path}: 'package' is not an array of tables; skipped")
        return []
    if len(entries) > MAX_DECLARED_PACKAGES:
        result.warnings.append(f"{path}: more than {MAX_DECLARED_PACKAGES} packages; the rest were ignored")
    return [entry if isinstance(entry, dict) else {} for entry in entries[:MAX_DECLARED_PACKAGES]]


def _name_and_version(entry: dict[str, Any]) -> tuple[str, str]:
    name, version = entry.get("name"), entry.get("version")
    return (name.strip() if isinstance(name, str) else "", version.strip() if isinstance(version, str) else "")


def _poetry_groups(entry: dict[str, Any]) -> list[str]:
    groups = entry.get("groups")
    if isinstance(groups, list):  # Poetry 2 (lock-version 2.1)
        return [_short(g) for g in groups[:MAX_REPEATED_VALUES] if isinstance(g, str)]
    category = entry.get("category")  # Poetry 1: "main" or "dev"
    return [_short(category)] if isinstance(category, str) and category else []


def parse_poetry_lock(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """poetry.lock: every locked package (the project itself is never listed)."""
    document, error = _load_toml(path, data)
    if document is None:
        return ParseResult(warnings=[error or path])
    result = ParseResult()
    for index, entry in enumerate(_packages_table(path, document, result)):
        name, version = _name_and_version(entry)
        if not name or not version:
            result.warnings.append(f"{path}: package {index + 1} has no name or version; skipped")
            continue
        metadata: dict[str, Any] = {}
        if groups := _poetry_groups(entry):
            metadata["groups"] = groups
        source = entry.get("source")
        if isinstance(source, dict) and isinstance(source.get("type"), str):
            metadata["source"] = {k: _short(v) for k, v in source.items()
                                  if k in ("type", "url", "resolved_reference") and isinstance(v, str)}
        result.packages.append(_declared(name, version, metadata))
    return result


def _uv_source(source: dict[str, Any]) -> dict[str, Any]:
    """Where uv locked a package from: {"index": URL} for a registry, else {"source": "git+URL"},
    "url+...", "path+...", "directory+..."."""
    for kind, location in source.items():
        if isinstance(location, str):
            if kind == "registry":
                return {"index": _short(location)}
            return {"source": f"{_short(kind)}+{_short(location)}"}
    return {}


def parse_uv_lock(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """uv.lock: every locked package except the project being locked and its workspace
    members (an ``editable`` or ``virtual`` source): the image's own code, not a dependency.
    (Syft 1.x reports the root too, with index ".".)"""
    document, error = _load_toml(path, data)
    if document is None:
        return ParseResult(warnings=[error or path])
    lock_version = document.get("version")
    if lock_version not in _UV_LOCK_VERSIONS:
        shown = str(lock_version)[:20]
        return ParseResult(warnings=[f"{path}: uv.lock format version {shown} is not supported; skipped"])
    result = ParseResult()
    for index, entry in enumerate(_packages_table(path, document, result)):
        source = entry.get("source")
        source = source if isinstance(source, dict) else {}
        if _LOCAL_PROJECT_SOURCES & source.keys():
            continue
        name, version = _name_and_version(entry)
        if not name or not version:
            result.warnings.append(f"{path}: package {index + 1} ({name or 'unnamed'}) has no name or version; skipped")
            continue
        result.packages.append(_declared(name, version, _uv_source(source)))
    return result


def _pipfile_entries(path: str, document: dict[str, Any],
                     result: ParseResult) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for section in ("default", "develop"):
        table = document.get(section, {})
        if not isinstance(table, dict):
            result.warnings.append(f"{path}: '{section}' is not an object; skipped")
            continue
        for name, entry in table.items():
            yield section, name, entry if isinstance(entry, dict) else {}


def parse_pipfile_lock(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """Pipfile.lock: the ``default`` and ``develop`` packages. A package locked from a VCS or a
    path has no version; it is kept with version "" as Syft does."""
    document, problem = load_json(path, data)
    if problem is not None:
        return ParseResult(warnings=[problem])
    if not isinstance(document, dict):
        return ParseResult(warnings=[f"{path}: not a Pipfile.lock object; skipped"])
    result = ParseResult()
    for section, name, entry in _pipfile_entries(path, document, result):
        if len(result.packages) >= MAX_DECLARED_PACKAGES:
            result.warnings.append(f"{path}: more than {MAX_DECLARED_PACKAGES} packages; the rest were ignored")
            break
        if not name.strip():
            continue
        version = entry.get("version")
        version = version.strip().lstrip("=").strip() if isinstance(version, str) else ""
        metadata: dict[str, Any] = {"develop": True} if section == "develop" else {}
        for key in _VCS_KEYS:
            if isinstance(entry.get(key), str):
                metadata["source"] = f"{key}+{_short(entry[key])}"
                if isinstance(entry.get("ref"), str):
                    metadata["ref"] = _short(entry["ref"])
                break
        else:
            if isinstance(entry.get("path"), str):
                metadata["source"] = f"path+{_short(entry['path'])}"
        result.packages.append(_declared(name.strip(), version, metadata))
    return result


# -- catalogers -------------------------------------------------------------------------------------

#: Installed distributions, anywhere (site-packages, dist-packages, virtualenvs, zipapps unpacked).
#: "*dist-info" without the dot and the upper-case forms are Syft's globs (an unzipped .egg has
#: EGG-INFO/PKG-INFO).
PYTHON_INSTALLED = Cataloger(
    name="python-installed-package",
    globs=("**/*dist-info/METADATA", "**/*egg-info/PKG-INFO", "**/*.egg-info",
           "**/*DIST-INFO/METADATA", "**/*EGG-INFO/PKG-INFO"),
    parse=parse_metadata,
    max_bytes=MAX_METADATA_FILE,
)
#: What an installed distribution owns and where it came from: each file gives claims keyed by its
#: directory, to be joined to the package whose METADATA/PKG-INFO lies in that same directory
#: (``package_directory``).
PYTHON_RECORD = Cataloger(name="python-record",
                          globs=("**/*dist-info/RECORD", "**/*egg-info/RECORD", "**/*DIST-INFO/RECORD"),
                          parse=parse_record, max_bytes=MAX_RECORD_FILE)
PYTHON_INSTALLED_FILES = Cataloger(name="python-installed-files", globs=("**/*egg-info/installed-files.txt",),
                                   parse=parse_installed_files, max_bytes=MAX_RECORD_FILE)
PYTHON_TOP_LEVEL = Cataloger(name="python-top-level",
                             globs=("**/*dist-info/top_level.txt", "**/*egg-info/top_level.txt",
                                    "**/*DIST-INFO/top_level.txt", "**/*EGG-INFO/top_level.txt"),
                             parse=parse_top_level, max_bytes=MAX_SMALL_FILE)
PYTHON_DIRECT_URL = Cataloger(name="python-direct-url", globs=("**/*dist-info/direct_url.json",),
                              parse=parse_direct_url, max_bytes=MAX_SMALL_FILE)
PYTHON_INSTALLER = Cataloger(name="python-installer", globs=("**/*dist-info/INSTALLER", "**/*DIST-INFO/INSTALLER"),
                             parse=parse_installer, max_bytes=MAX_SMALL_FILE)
PYTHON_REQUIREMENTS = Cataloger(name="python-requirements", globs=("**/*requirements*.txt",),
                                parse=parse_requirements, max_bytes=MAX_LOCK_FILE)
PYTHON_POETRY_LOCK = Cataloger(name="python-poetry-lock", globs=("**/poetry.lock",),
                               parse=parse_poetry_lock, max_bytes=MAX_LOCK_FILE)
PYTHON_PIPFILE_LOCK = Cataloger(name="python-pipfile-lock", globs=("**/Pipfile.lock",),
                                parse=parse_pipfile_lock, max_bytes=MAX_LOCK_FILE)
#: "<script>.py.lock" is uv's lock for a PEP 723 script (``uv lock --script``), same format.
PYTHON_UV_LOCK = Cataloger(name="python-uv-lock", globs=("**/uv.lock", "**/*.py.lock"),
                           parse=parse_uv_lock, max_bytes=MAX_LOCK_FILE)

#: Every Python cataloger, in the order the registry should list them.
PYTHON_CATALOGERS: Final = (PYTHON_INSTALLED, PYTHON_RECORD, PYTHON_INSTALLED_FILES, PYTHON_TOP_LEVEL,
                            PYTHON_DIRECT_URL, PYTHON_INSTALLER, PYTHON_REQUIREMENTS, PYTHON_POETRY_LOCK,
                            PYTHON_PIPFILE_LOCK, PYTHON_UV_LOCK)
