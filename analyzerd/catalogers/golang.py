"""Go modules: the build information the Go linker embeds in every binary (decoded here from
the strings that ``binary.BinaryScanner`` extracts), ``go.mod`` and ``go.sum``.

Formats:
- build info: the text of Go's ``runtime/debug.BuildInfo.String`` without its "go" line
  ("path", "mod", "dep", "=>", "build" lines, tab separated); see Go's
  src/runtime/debug/mod.go (``ParseBuildInfo``) and src/debug/buildinfo/buildinfo.go;
- go.mod: https://go.dev/ref/mod#go-mod-file (require / replace / exclude, single-line and
  block form);
- go.sum: https://go.dev/ref/mod#go-sum-files ("<module> <version>[/go.mod] h1:<hash>").

Packages follow Syft 1.18: the name is the full module path ("github.com/pkg/errors"), the
namespace stays None (purl.py splits golang names at the last "/"); a binary gives its
dependencies (a "=>" replacement takes the place of the module it replaces), its main
module (version "(devel)" unless -ldflags or the VCS stamp give a better one, as Syft
derives it) and a "stdlib" package whose version is the toolchain's ("go1.19.8").
go.mod lists every require (indirect ones too), replaces a replaced module by its
replacement and drops excluded modules; its h1 digests live in the go.sum beside it, which
this module turns into Claims (see ``go_sum_key``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Final, NamedTuple

from .base import Cataloger, Claim, Package, ParseResult, looks_binary

__all__ = ["GO_MOD", "GO_SUM", "MAX_MODULES", "go_sum_key", "parse_go_buildinfo", "parse_go_mod",
           "parse_go_sum"]

#: Kubernetes-sized programs list a few hundred modules; more than this is not a real build.
MAX_MODULES: Final = 20_000
#: Build settings kept in the main module's metadata (Go records about 15).
MAX_BUILD_SETTINGS: Final = 64
#: A build setting value longer than this (huge CGO flags) is cut: metadata stays small.
MAX_SETTING_VALUE: Final = 1024
#: Warnings per file: a garbage file must not produce one warning per line.
MAX_WARNINGS: Final = 20

DEVEL: Final = "(devel)"
STDLIB_LICENSE: Final = "BSD-3-Clause"

# Syft's knownBuildFlagPatterns, "-X main.version=1.2.3" and "-X ...Tag=v1.2.3" in -ldflags, are
# KEY=(?:\S+/)*(?P<version>v?\d+.\d+.\d+[-\w]*) (the unescaped "." between digits is Syft's and
# kept for parity). Go runs them in linear time; Python's backtracking engine tries every way
# to split "a/a/.../x" into "\S+/" (exponential), and rescans a word at each KEY in it
# (quadratic). So the key and the version are matched apart and _ldflags_version finds the
# match a backtracking engine finds first.
_LDFLAGS_KEYS: Final = (
    re.compile(r"\.(?:[gG]it)?(?:[bB]uild)?[vV]er(?:sion)?="),
    re.compile(r"\.[tT]ag="),
)
_LDFLAGS_VERSION_VALUE: Final = re.compile(r"v?\d+.\d+.\d+[-\w]*", re.ASCII)
_NON_SPACE_RUN: Final = re.compile(r"\S*", re.ASCII)
# Syft only reports a stdlib whose version has a number in it (it needs one for the CPE).
_HAS_VERSION_NUMBER: Final = re.compile(r"\d")


class _Module(NamedTuple):
    path: str
    version: str
    sum: str = ""


class _BuildInfo(NamedTuple):
    path: str
    main: _Module | None
    deps: list[_Module]  #: each already replaced by its "=>" replacement
    settings: dict[str, str]


# -- build info --------------------------------------------------------------------------------

def _go_unquote(text: str) -> str:
    """strconv.Unquote for the quoted keys and values of "build" lines."""
    if len(text) >= 2 and text[0] == text[-1] == "`":
        return text[1:-1]
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            value = json.loads(text)  # Go's escapes are JSON's plus a few rare ones
            return value if isinstance(value, str) else text[1:-1]
        except ValueError:
            return text[1:-1]
    return text


def _module_line(columns: list[str]) -> _Module | None:
    if len(columns) not in (2, 3):
        return None
    return _Module(columns[0], columns[1], columns[2] if len(columns) == 3 else "")


def _parse_modinfo(path: str, modinfo: str, warnings: list[str]) -> _BuildInfo:
    """Go's ParseBuildInfo, but a bad line is skipped with a warning instead of failing it all."""
    main_path, main = "", None
    deps: list[_Module] = []
    settings: dict[str, str] = {}
    last: str | None = None  # "main", "dep" or None: what a "=>" line may replace

    def warn(number: int, what: str) -> None:
        if len(warnings) < MAX_WARNINGS:
            warnings.append(f"{path}: Go build info line {number}: {what}")

    # a final line without "\n" is ignored, as Go does
    for number, line in enumerate(modinfo.split("\n")[:-1], start=1):
        word, _, rest = line.partition("\t")
        if word == "path":
            main_path = rest
        elif word in ("mod", "dep"):
            module = _module_line(rest.split("\t"))
            if module is None:
                warn(number, "expected 2 or 3 columns")
                last = None
                continue
            if word == "mod":
                main, last = module, "main"
            elif len(deps) >= MAX_MODULES:
                warn(number, f"more than {MAX_MODULES} dependencies; the rest are skipped")
                break
            else:
                deps.append(module)
                last = "dep"
        elif word == "=>":
            columns = rest.split("\t")
            if len(columns) != 3 or last is None:
                warn(number, "replacement without 3 columns or without a module before it")
                continue
            replacement = _Module(columns[0], columns[1], columns[2])
            if last == "main":
                main = replacement
            else:
                deps[-1] = replacement
            last = None
        elif word == "build":
            key, sep, value = _split_setting(rest)
            if not sep or not key:
                warn(number, "build setting without key=value")
            elif len(settings) < MAX_BUILD_SETTINGS:
                settings[key] = value
    return _BuildInfo(main_path, main, deps, settings)


def _split_setting(text: str) -> tuple[str, str, str]:
    if text[:1] in ('"', "`"):  # a quoted key (it holds "=", a space or a quote)
        end = text.find(text[0], 1)
        while end > 0 and text[0] == '"' and text[end - 1] == "\\":
            end = text.find('"', end + 1)
        if end < 0 or text[end + 1:end + 2] != "=":
            return "", "", ""
        return _go_unquote(text[:end + 1]), "=", _go_unquote(text[end + 2:])
    key, sep, value = text.partition("=")
    return key, sep, _go_unquote(value)


def _pseudo_version(revision: str, timestamp: str) -> str:
    """golang.org/x/mod/module.PseudoVersion("", "", time, rev[:12]) as Syft calls it."""
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:  # RFC 3339 requires the offset
        stamp = "00010101000000"  # Syft ignores the parse error and formats Go's zero time
    else:
        stamp = moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return f"v0.0.0-{stamp}-{revision[:12]}"


def _ldflags_version(key: re.Pattern[str], ldflags: str) -> str | None:
    """What ``key(?:\\S+/)*(?P<version>...)`` finds first in ``ldflags``: at the leftmost key
    that has one, the version after the last "/" of the word after the key (one character at
    least before that "/") that a version follows, else the version right after the key.

    Linear: each position is tried as a version start once. A key later in the same word
    has the same "/" after it, all tried already, so only its own start is new."""
    tried: dict[int, re.Match[str] | None] = {}

    def version_at(position: int) -> re.Match[str] | None:
        if position not in tried:
            tried[position] = _LDFLAGS_VERSION_VALUE.match(ldflags, position)
        return tried[position]

    word_end = -1
    for found in key.finditer(ldflags):
        start = found.end()
        if start >= word_end:  # a new word: its "/" are still to try, latest first
            word_end = _NON_SPACE_RUN.match(ldflags, start).end()  # type: ignore[union-attr]
            slash = ldflags.rfind("/", start + 1, word_end)
            while slash >= 0:
                if version := version_at(slash + 1):
                    return version.group()
                slash = ldflags.rfind("/", start + 1, slash)
        if version := version_at(start):
            return version.group()
    return None


def _main_version(settings: dict[str, str]) -> str | None:
    """Syft's findMainModuleVersion for a "(devel)" main module: a semver in -ldflags
    ("-X main.version=1.2.3" gives "v1.2.3"), else a pseudo-version from the VCS stamp."""
    ldflags = settings.get("-ldflags", "")
    for key in _LDFLAGS_KEYS:
        version = _ldflags_version(key, ldflags)
        if version:
            return version if version.startswith("v") else "v" + version
    revision, timestamp = settings.get("vcs.revision"), settings.get("vcs.time")
    if revision is not None and timestamp is not None:
        return _pseudo_version(revision, timestamp)
    return None


def _binary_package(module: _Module, metadata: dict[str, object]) -> Package:
    if module.sum:
        metadata["h1"] = module.sum
    return Package(type="golang", name=module.path, version=module.version, metadata=metadata)


def parse_go_buildinfo(path: str, version: str, modinfo: str) -> ParseResult:
    """Packages of one Go binary.

    ``version`` is the toolchain string ("go1.19.8", maybe followed by " X:<experiments>");
    ``modinfo`` is the module text without Go's 16-byte sentinels ("" when the binary was
    built outside module mode)."""
    result = ParseResult()
    go_version = version.split(" ", 1)[0]  # experiments are dropped, as Syft does
    info = _parse_modinfo(path, modinfo, result.warnings)
    main = info.main or (_Module(info.path, DEVEL) if info.path else None)
    arch = info.settings.get("GOARCH")
    common: dict[str, object] = {"go_version": go_version}
    if main is not None:
        common["main_module"] = main.path
    if arch:
        common["architecture"] = arch
    for dep in info.deps:
        if dep.path:
            result.packages.append(_binary_package(dep, dict(common)))
    if main is not None:
        if main.version == DEVEL:
            main = main._replace(version=_main_version(info.settings) or DEVEL)
        settings = {k: v[:MAX_SETTING_VALUE] for k, v in info.settings.items()}
        result.packages.append(_binary_package(main, {**common, **({"build_settings": settings} if settings else {})}))
    if result.packages and _HAS_VERSION_NUMBER.search(go_version):
        # one stdlib per binary, as Syft's stdlib processor adds it (its purl drops the "go")
        result.packages.append(Package(type="golang", name="stdlib", version=go_version, license=STDLIB_LICENSE,
                                       metadata={"go_version": go_version}))
    return result


# -- go.mod ------------------------------------------------------------------------------------

_TOKEN: Final = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|=>|\S+')


def _tokens(line: str) -> list[str]:
    """The words of a go.mod line: comments dropped, quoted strings unquoted."""
    words = []
    for token in _TOKEN.findall(line):
        if token.startswith("//"):
            break
        words.append(_go_unquote(token))
    return words


def _directives(text: str) -> list[tuple[str, list[str]]]:
    """(verb, arguments) for every directive, block forms ("require ( ... )") flattened."""
    out: list[tuple[str, list[str]]] = []
    block: str | None = None
    for raw in text.splitlines():
        words = _tokens(raw)
        if not words:
            continue
        if block is not None:
            if words == [")"]:
                block = None
            else:
                out.append((block, words))
        elif len(words) == 2 and words[1] == "(":
            block = words[0]
        else:
            out.append((words[0], words[1:]))
    return out


def parse_go_mod(path: str, data: bytes) -> ParseResult:
    """The modules a go.mod requires, as Syft's go-module-file-cataloger lists them."""
    result = ParseResult()
    text = str(bytes(data), "utf-8", "replace")
    if looks_binary(text):
        result.warnings.append(f"{path}: binary data, not a go.mod; skipped")
        return result
    modules: dict[str, str] = {}  # path -> version, in the order found
    for verb, args in _directives(text):
        if len(modules) >= MAX_MODULES:
            result.warnings.append(f"{path}: more than {MAX_MODULES} modules; the rest are skipped")
            break
        if verb == "require":
            if len(args) < 2:
                _warn(result, f"{path}: require without a module and version: {' '.join(args)[:200]!r}")
                continue
            modules[args[0]] = args[1]
        elif verb == "replace":
            if "=>" not in args:
                _warn(result, f"{path}: replace without '=>': {' '.join(args)[:200]!r}")
                continue
            arrow = args.index("=>")
            old, new = args[:arrow], args[arrow + 1:]
            if not old or not new:
                _warn(result, f"{path}: replace without both sides: {' '.join(args)[:200]!r}")
                continue
            # the replaced module is gone, even when the replacement has another path; a local
            # directory replacement ("=> ../fork") has no version, Syft keeps it all the same
            modules.pop(old[0], None)
            modules[new[0]] = new[1] if len(new) > 1 else ""
        elif verb == "exclude" and args:
            modules.pop(args[0], None)
    for name in sorted(modules):
        result.packages.append(Package(type="golang", name=name, version=modules[name], declared=True))
    return result


def _warn(result: ParseResult, message: str) -> None:
    if len(result.warnings) < MAX_WARNINGS:
        result.warnings.append(message)


# -- go.sum ------------------------------------------------------------------------------------

def go_sum_key(go_mod_path: str, module: str, version: str) -> str:
    """The Claim.package under which a go.sum states the h1 digest of ``module@version`` for
    the packages of the go.mod at ``go_mod_path`` (the go.mod in the same directory)."""
    return f"{go_mod_path}#{module}@{version}"


def parse_go_sum(path: str, data: bytes) -> ParseResult:
    """One Claim per module zip digest: metadata {"h1": "h1:..."}; the integrator sets it on
    the package of the sibling go.mod whose key (``go_sum_key``) matches. The "/go.mod"
    digests are not the module's and are skipped, as Syft's lookup never reaches them."""
    result = ParseResult()
    text = str(bytes(data), "utf-8", "replace")
    if looks_binary(text):
        result.warnings.append(f"{path}: binary data, not a go.sum; skipped")
        return result
    go_mod = path[: -len("go.sum")] + "go.mod" if path.endswith("go.sum") else path + ".mod"
    seen: set[str] = set()
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) < 3 or parts[1].endswith("/go.mod"):
            continue
        if len(seen) >= MAX_MODULES:
            result.warnings.append(f"{path}: more than {MAX_MODULES} entries; the rest are skipped")
            break
        key = go_sum_key(go_mod, parts[0], parts[1])
        if key not in seen:
            seen.add(key)
            result.claims.append(Claim(key, metadata={"h1": parts[2]}))
    return result


GO_MOD = Cataloger(name="go-module-file", globs=("**/go.mod",), parse=parse_go_mod, max_bytes=4 * 1024 * 1024)
GO_SUM = Cataloger(name="go-sum", globs=("**/go.sum",), parse=parse_go_sum, max_bytes=16 * 1024 * 1024)
