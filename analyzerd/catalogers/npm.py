"""JavaScript packages: npm manifests (package.json) and the lockfiles of npm, Yarn and pnpm.

Formats:

- ``package.json``: https://docs.npmjs.com/cli/configuring-npm/package-json. A package's own
  manifest sits at ``node_modules/<name>/package.json`` or
  ``node_modules/@scope/<name>/package.json`` (installed by npm, Yarn or pnpm, whose virtual
  store ``node_modules/.pnpm/<id>/node_modules/<name>`` has the same shape), or in Debian's
  system directories ``/usr/share/nodejs``, ``/usr/lib/nodejs`` and
  ``/usr/lib/<triplet>/nodejs``. Any other ``package.json`` inside those trees (``dist/esm/
  package.json`` holding ``{"type": "module"}``, test fixtures) is not a package. A
  ``package.json`` outside them is an application's own manifest: reported, as Syft does,
  but marked ``metadata["application"]``.
- ``package-lock.json`` / ``npm-shrinkwrap.json``:
  https://docs.npmjs.com/cli/configuring-npm/package-lock-json (v1: a nested
  ``dependencies`` tree; v2 and v3: a flat ``packages`` map keyed by install path).
- ``yarn.lock``: Yarn 1's own format (https://classic.yarnpkg.com/en/docs/yarn-lock), or
  Yarn 2+ ("berry"), which is YAML with a ``__metadata`` entry.
- ``pnpm-lock.yaml``: YAML; ``packages`` keys are ``/name/version`` (lockfile 5.x),
  ``/name@version`` (6.x) or ``name@version`` (9.x, with ``snapshots``).

Package sets follow Syft 1.18 (``javascript-package-cataloger`` and
``javascript-lock-cataloger``): lockfiles inside ``node_modules`` are skipped (they describe a
dependency's own development, not this install); npm's hidden ``node_modules/.package-lock.json``
is not read (it repeats the installed manifests); npm lockfiles leave out ``"dev": true``
entries while yarn and pnpm lockfiles keep development dependencies. Where Syft reports the
project itself from a lockfile (the root ``""`` entry, a Yarn workspace, a ``link: true``
workspace entry), it is left out here: those are not dependencies, and the application is
reported from its own ``package.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, Final

from .base import Cataloger, Package, ParseResult, looks_binary
from .safeyaml import YamlError, load_mapping

__all__ = ["NPM_LOCK", "NPM_PACKAGE", "parse_npm_lockfile", "parse_package_json",
           "parse_package_lock", "parse_pnpm_lock", "parse_yarn_lock"]

#: package.json files are a few KiB (the largest real ones, with long "files" lists, are a
#: few hundred KiB); anything bigger is not a manifest.
MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024
#: Real lockfiles are a few MB (~10 MB for the biggest monorepos); a parsed JSON/YAML document
#: costs several times its size in Python objects, so the cap is also a memory cap.
MAX_LOCKFILE_BYTES: Final = 16 * 1024 * 1024
#: More entries than any real lockfile has (big monorepos list ~20k); stops a crafted one.
MAX_LOCK_ENTRIES: Final = 200_000
#: npm v1 lockfiles nest one level per conflicting version; real trees are < 20 deep.
MAX_V1_DEPTH: Final = 200
#: Free-text metadata (description, author, URLs) is cut to this many characters.
MAX_TEXT: Final = 1024

_NODE_MODULES: Final = "node_modules"
# Debian's node-* packages install into these directories (Debian JavaScript policy)
# (the multiarch directory is checked once for "/nodejs/" after it, then its first "-linux-"
# decides; trying each with a scan to the end of the name was quadratic on a long name)
_DEBIAN_NODE_ROOT: Final = re.compile(
    r"/usr/(?:share/nodejs|lib/nodejs|lib/(?=[^/]*+/nodejs/)(?>[^/]+?-linux-)[^/]++/nodejs)/")
#: Yarn 2+ lockfiles are YAML with a "__metadata:" entry at the top level.
_BERRY_METADATA: Final = re.compile(r"^__metadata:", re.MULTILINE)


# -- package.json --------------------------------------------------------------------------

def _is_package_dir(parts: list[str]) -> bool:
    """``parts`` is what follows a node_modules (or Debian) directory, ending in package.json."""
    if len(parts) == 2:
        return bool(parts[0]) and parts[0][0] not in "@."
    if len(parts) == 3:
        scope, name = parts[0], parts[1]
        return len(scope) > 1 and scope[0] == "@" and bool(name) and name[0] != "."
    return False


def _manifest_role(path: str) -> str | None:
    """"installed", "application", or None for a manifest nested inside a package."""
    parts = path.split("/")
    if _NODE_MODULES in parts:
        last = len(parts) - 1 - parts[::-1].index(_NODE_MODULES)
        return "installed" if _is_package_dir(parts[last + 1:]) else None
    debian = _DEBIAN_NODE_ROOT.match(path)
    if debian:
        return "installed" if _is_package_dir(path[debian.end():].split("/")) else None
    return "application"


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:MAX_TEXT]
    return None


def _person(value: Any) -> str | None:
    """npm's people field: a string, or {"name", "email", "url"} written as npm's string form
    "Name <email> (url)" (as Syft writes it)."""
    if isinstance(value, dict):
        text = _text(value.get("name")) or ""
        if email := _text(value.get("email")):
            text += f" <{email}>"
        if url := _text(value.get("url")):
            text += f" ({url})"
        return text.strip()[:MAX_TEXT] or None
    return _text(value)


def _license_types(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, dict):  # deprecated {"type": "MIT", "url": ...}
        return _license_types(value.get("type"))
    if isinstance(value, list):
        return [t for item in value[:64] for t in _license_types(item)]
    return []


def _joined(licenses: list[str]) -> str | None:
    return " AND ".join(dict.fromkeys(licenses)) or None


def _license(doc: dict[str, Any]) -> str | None:
    """"license" (an SPDX expression, or the deprecated object), else the legacy "licenses"
    array; several licenses are joined with " AND "."""
    return _joined(_license_types(doc.get("license")) or _license_types(doc.get("licenses")))


def _repository(value: Any) -> str | None:
    return _text(value.get("url")) if isinstance(value, dict) else _text(value)


def _load_json(path: str, data: bytes | bytearray | memoryview, what: str) -> tuple[Any, str | None]:
    try:
        return json.loads(str(data, "utf-8-sig", "replace")), None
    except ValueError as exc:
        return None, f"{path}: not a valid {what} (JSON: {exc})"
    except RecursionError:
        return None, f"{path}: not a valid {what} (JSON nested too deeply)"


def parse_package_json(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """One package from an installed package's manifest or an application's package.json."""
    role = _manifest_role(path)
    if role is None:
        return ParseResult()  # a file inside a package (dist/esm/package.json), not a package
    doc, problem = _load_json(path, data, "package.json")
    if problem:
        return ParseResult(warnings=[problem])
    if not isinstance(doc, dict):
        return ParseResult(warnings=[f"{path}: package.json is not a JSON object"])
    name, version = doc.get("name"), doc.get("version")
    if name is None or version is None or name == "" or version == "":
        return ParseResult()  # common for manifests that only set "type" or "exports"
    if not isinstance(name, str) or not isinstance(version, str) or not name.strip() or not version.strip():
        return ParseResult(warnings=[f"{path}: package.json name or version is not a string; skipped"])
    metadata: dict[str, Any] = {}
    for key, value in (("author", _person(doc.get("author"))), ("homepage", _text(doc.get("homepage"))),
                       ("description", _text(doc.get("description"))),
                       ("repository", _repository(doc.get("repository")))):
        if value:
            metadata[key] = value
    if doc.get("private") is True:
        metadata["private"] = True
    if role == "application":
        metadata["application"] = True
    return ParseResult(packages=[Package(type="npm", name=name.strip(), version=version.strip(),
                                         license=_license(doc), metadata=metadata)])


# -- lockfiles: shared -----------------------------------------------------------------------

class _Collector:
    """Lock entries become packages once per (name, version), in a bounded number."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.result = ParseResult()
        self._seen: set[tuple[str, str]] = set()
        self._entries = 0
        self.skipped = 0  #: entries without a usable name or version

    def full(self) -> bool:
        self._entries += 1
        if self._entries > MAX_LOCK_ENTRIES:
            if self._entries == MAX_LOCK_ENTRIES + 1:
                self.result.warnings.append(
                    f"{self.path}: more than {MAX_LOCK_ENTRIES} entries; the rest skipped")
            return True
        return False

    def add(self, name: Any, version: Any, license: str | None = None, **metadata: Any) -> None:
        if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
            self.skipped += 1
            return
        if (name, version) in self._seen:
            return
        self._seen.add((name, version))
        kept = {k: v[:MAX_TEXT] for k, v in metadata.items() if isinstance(v, str) and v}
        self.result.packages.append(Package(type="npm", name=name, version=version, declared=True,
                                            license=license, metadata=kept))

    def finish(self) -> ParseResult:
        if self.skipped:
            self.result.warnings.append(f"{self.path}: {self.skipped} entries without a name or version; skipped")
        self.result.packages.sort(key=lambda p: (p.name, p.version))
        return self.result


def _split_spec(spec: str) -> tuple[str, str]:
    """"@scope/name@range" -> ("@scope/name", "range"); the name's own leading @ is kept."""
    at = spec.find("@", 1)
    return (spec, "") if at < 0 else (spec[:at], spec[at + 1:])


def _inside_node_modules(path: str) -> bool:
    return _NODE_MODULES in path.split("/")


def _load_yaml(path: str, text: str, what: str) -> tuple[dict[str, Any], str | None]:
    try:
        return load_mapping(text), None
    except YamlError as exc:
        return {}, f"{path}: not a valid {what} (YAML: {exc})"


# -- package-lock.json ------------------------------------------------------------------------

def _lock_v2(packages: dict[str, Any], out: _Collector) -> None:
    marker = _NODE_MODULES + "/"
    for key, entry in packages.items():
        if out.full():
            return
        if key == "" or not isinstance(entry, dict) or entry.get("link") is True:
            continue  # the project itself; a symlink to a workspace directory
        cut = key.rfind(marker)
        if cut < 0:
            continue  # a workspace member's own directory ("packages/a"): part of the project
        if entry.get("dev") is True:
            continue  # Syft 1.18 leaves development dependencies out of npm lockfiles
        name = entry.get("name") if isinstance(entry.get("name"), str) else key[cut + len(marker):]
        out.add(name, entry.get("version"), _joined(_license_types(entry.get("license"))),
                resolved=entry.get("resolved"), integrity=entry.get("integrity"))


def _lock_v1(dependencies: dict[str, Any], out: _Collector) -> None:
    stack: list[tuple[dict[str, Any], int]] = [(dependencies, 1)]
    while stack:
        level, depth = stack.pop()
        for name, entry in level.items():
            if out.full():
                return
            if not isinstance(entry, dict):
                out.skipped += 1
                continue
            nested = entry.get("dependencies")
            if isinstance(nested, dict) and depth < MAX_V1_DEPTH:
                stack.append((nested, depth + 1))
            version = entry.get("version")
            if entry.get("dev") is True:
                continue
            if isinstance(version, str) and version.startswith("file:"):
                continue  # a local directory of the project
            if isinstance(version, str) and version.startswith("npm:"):
                name, version = _split_spec(version[4:])  # an alias: "npm:real-name@1.2.3"
            out.add(name, version, resolved=entry.get("resolved"), integrity=entry.get("integrity"))


def parse_package_lock(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """npm's package-lock.json or npm-shrinkwrap.json (lockfile v1, v2 or v3)."""
    if _inside_node_modules(path):
        return ParseResult()
    doc, problem = _load_json(path, data, "npm lockfile")
    if problem:
        return ParseResult(warnings=[problem])
    if not isinstance(doc, dict):
        return ParseResult(warnings=[f"{path}: npm lockfile is not a JSON object"])
    out = _Collector(path)
    version = doc.get("lockfileVersion")
    if isinstance(doc.get("packages"), dict) and version != 1:
        _lock_v2(doc["packages"], out)
    elif isinstance(doc.get("dependencies"), dict):
        _lock_v1(doc["dependencies"], out)
    elif not isinstance(version, int):
        out.result.warnings.append(f"{path}: no lockfileVersion, packages or dependencies; not an npm lockfile")
    return out.finish()


# -- yarn.lock ----------------------------------------------------------------------------------

def _yarn_v1_entries(text: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(first descriptor of the entry, its top-level fields) for each entry of a Yarn 1 lockfile."""
    descriptor: str | None = None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        if line[0] not in " \t":
            if descriptor is not None:
                yield descriptor, fields
            first = line.rstrip().rstrip(":").split(",", 1)[0].strip()
            descriptor, fields = first.strip('"'), {}
            continue
        if descriptor is None or line.startswith("   ") or not line.startswith("  "):
            continue  # nested maps (dependencies) are indented further
        key, _, value = line.strip().partition(" ")
        if value and not value.endswith(":"):
            fields.setdefault(key.strip('"'), value.strip().strip('"'))
    if descriptor is not None:
        yield descriptor, fields


def _yarn_v1(path: str, text: str) -> ParseResult:
    out = _Collector(path)
    for descriptor, fields in _yarn_v1_entries(text):
        if out.full():
            break
        name, spec = _split_spec(descriptor)
        if spec.startswith("npm:"):
            name = _split_spec(spec[4:])[0]  # an alias: "alias@npm:real-name@^1.0.0"
        out.add(name, fields.get("version"), resolved=fields.get("resolved"), integrity=fields.get("integrity"))
    return out.finish()


#: Yarn 2+ protocols of the project's own directories (not fetched packages)
_LOCAL_PROTOCOLS: Final = ("workspace:", "link:", "portal:")


def _yarn_berry(path: str, text: str) -> ParseResult:
    doc, problem = _load_yaml(path, text, "yarn.lock")
    if problem:
        return ParseResult(warnings=[problem])
    out = _Collector(path)
    for key, entry in doc.items():
        if key == "__metadata":
            continue
        if out.full():
            break
        if not isinstance(entry, dict):
            out.skipped += 1
            continue
        resolution = entry.get("resolution")
        if not isinstance(resolution, str):
            resolution = str(key).split(",", 1)[0].strip()
        name, reference = _split_spec(resolution)
        if reference.startswith(_LOCAL_PROTOCOLS):
            continue  # the project root or one of its workspaces
        out.add(name, entry.get("version"))  # "checksum" is of Yarn's cache archive, not the tarball
    return out.finish()


def parse_yarn_lock(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """yarn.lock of Yarn 1 (its own format) or Yarn 2+ (YAML with a __metadata entry)."""
    if _inside_node_modules(path):
        return ParseResult()
    text = str(data, "utf-8-sig", "replace")
    if looks_binary(text):
        return ParseResult(warnings=[f"{path}: binary data, not a yarn.lock; skipped"])
    if _BERRY_METADATA.search(text):
        return _yarn_berry(path, text)
    return _yarn_v1(path, text)


# -- pnpm-lock.yaml ---------------------------------------------------------------------------

def _pnpm_key(key: str, slash_separated: bool) -> tuple[str, str]:
    """"/@scope/name/1.0.0_peer@2" (5.x), "/@scope/name@1.0.0(peer@2)" (6.x) or
    "@scope/name@1.0.0(peer@2)" (9.x) -> ("@scope/name", "1.0.0")."""
    key = key.split("(", 1)[0].lstrip("/")
    if slash_separated:
        name, _, version = key.rpartition("/")
        return name, version.split("_", 1)[0]  # 5.x appends peers after "_"
    return _split_spec(key)


#: "5.4", "'6.0'", " 9": the major version of a pnpm lockfile. "\A": a search would rescan a run
#: of spaces from each of its characters.
_LEADING_INTEGER: Final = re.compile(r"\A\s*+'?(\d+)")


def _pnpm_major(value: Any) -> int | None:
    match = _LEADING_INTEGER.match(str(value)) if value is not None else None
    return int(match.group(1)) if match else None


def parse_pnpm_lock(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """pnpm-lock.yaml, lockfile versions 5.x, 6.x and 9.x."""
    if _inside_node_modules(path):
        return ParseResult()
    text = str(data, "utf-8-sig", "replace")
    if looks_binary(text):
        return ParseResult(warnings=[f"{path}: binary data, not a pnpm-lock.yaml; skipped"])
    doc, problem = _load_yaml(path, text, "pnpm-lock.yaml")
    if problem:
        return ParseResult(warnings=[problem])
    major = _pnpm_major(doc.get("lockfileVersion"))
    if major is None:
        return ParseResult(warnings=[f"{path}: no lockfileVersion; not a pnpm lockfile"])
    out = _Collector(path)
    sections: Iterable[Any] = (doc.get("packages"), doc.get("snapshots"))
    for section in sections:
        if not isinstance(section, dict):
            continue
        for key, entry in section.items():
            if out.full():
                break
            name, version = _pnpm_key(str(key), slash_separated=major < 6)
            fields = entry if isinstance(entry, dict) else {}
            resolution = fields.get("resolution")
            # git and tarball dependencies name themselves
            out.add(fields.get("name") or name, fields.get("version") or version,
                    integrity=resolution.get("integrity") if isinstance(resolution, dict) else None)
    return out.finish()


# -- the catalogers ---------------------------------------------------------------------------

_LOCK_PARSERS: Final = {"package-lock.json": parse_package_lock, "npm-shrinkwrap.json": parse_package_lock,
                        "yarn.lock": parse_yarn_lock, "pnpm-lock.yaml": parse_pnpm_lock}


def parse_npm_lockfile(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """Any of the JavaScript lockfiles, chosen by file name."""
    parser = _LOCK_PARSERS.get(path.rpartition("/")[2])
    if parser is None:
        return ParseResult(warnings=[f"{path}: not a JavaScript lockfile name"])
    return parser(path, data)


NPM_PACKAGE = Cataloger(name="javascript-package", globs=("**/package.json",), parse=parse_package_json,
                        max_bytes=MAX_MANIFEST_BYTES)
NPM_LOCK = Cataloger(name="javascript-lock",
                     globs=("**/package-lock.json", "**/npm-shrinkwrap.json", "**/yarn.lock", "**/pnpm-lock.yaml"),
                     parse=parse_npm_lockfile, max_bytes=MAX_LOCKFILE_BYTES)
