"""Ruby gems: installed specifications (``specifications/*.gemspec``, default gems in
``specifications/default/``) and Bundler's ``Gemfile.lock``.

Formats:

- An installed gemspec is Ruby code that RubyGems writes with ``Gem::Specification#to_ruby``
  (https://guides.rubygems.org/specification-reference/): ``Gem::Specification.new do |s|``
  followed by one assignment a line, ``s.name = "rack".freeze``, ``s.licenses = ["MIT".freeze]``.
  It is never executed: as Syft's ``parse_gemspec.go`` does, the assignments of that generated
  form are read as text (string literals, arrays of them, ``.freeze``, ``%q{}``). The file name
  is not used to fill a missing name or version (Syft does not either).
- ``Gemfile.lock``: Bundler's lockfile (https://bundler.io/guides/using_bundler_in_applications.html;
  the grammar is ``Bundler::LockfileParser``). Sections ``GEM``, ``GIT``, ``PATH`` and
  ``PLUGIN SOURCE`` list their gems under ``specs:`` as four-space-indented ``name (version)``
  lines, where the version may end in ``-<platform>`` (``nokogiri (1.15.0-x86_64-linux)``).
  Syft 1.18 keeps that suffix in the version; here the version is Bundler's (before the first
  "-") and the platform goes to metadata, so vulnerability matching sees the real version.
  A Gemfile.lock inside an installed gem's directory (``gems/typeprof-0.21.2/Gemfile.lock``) is the
  gem's own development lock, not part of the image's application, and is skipped, as Syft skips
  lockfiles under ``node_modules``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from .base import Cataloger, Package, ParseResult, looks_binary

__all__ = ["GEMFILE_LOCK", "GEMSPEC", "parse_gemfile_lock", "parse_gemspec"]

#: Generated gemspecs are under 100 KiB (bundler's, listing every file, is ~12 KiB).
MAX_GEMSPEC_BYTES: Final = 1024 * 1024
#: Gemfile.lock of large applications are ~100 KiB.
MAX_GEMFILE_LOCK_BYTES: Final = 8 * 1024 * 1024
#: More gems than any real Gemfile.lock lists (large Rails apps have ~500).
MAX_LOCK_GEMS: Final = 100_000
#: Lists longer than this (authors) are cut: metadata stays small.
MAX_LIST_ITEMS: Final = 64
#: Free-text metadata (homepage, an author) is cut to this many characters.
MAX_TEXT: Final = 1024

# -- gemspec ----------------------------------------------------------------------------------

_FIELDS: Final = ("name", "version", "licenses", "license", "authors", "author", "homepage", "platform")
_ASSIGNMENT: Final = re.compile(
    r"^[ \t]*(?P<receiver>[a-z_]\w*)\.(?P<field>" + "|".join(_FIELDS) + r")[ \t]*=(?!=)[ \t]*", re.MULTILINE)
_BLOCK: Final = re.compile(r"Gem::Specification\.new\s+do\s*\|\s*(?P<var>[a-z_]\w*)\s*\|")
# run right after a literal's closing delimiter; the look-behind makes a search enter a run of
# blanks once, not at each of its characters
_FREEZE: Final = re.compile(r"(?<![ \t])[ \t]*+\.freeze\b")
_PERCENT_CLOSERS: Final = {"{": "}", "(": ")", "[": "]", "<": ">"}


def _closer(opener: str) -> str:
    """What closes a literal opened by ``opener``: its pair for a bracket, else itself."""
    return _PERCENT_CLOSERS.get(opener, opener)


_SIMPLE_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", "e": "\x1b", "s": " ", "a": "\a",
                          "b": "\b", "f": "\f", "v": "\v"}
#: The text up to a literal's closing delimiter, its opening one (a paired delimiter nests:
#: %q(a (b) c) is "a (b) c") or a backslash, by (opener, closer); Ruby takes any ASCII
#: character that is not alphanumeric as a delimiter.
_PLAIN_RUNS: Final = {
    (chr(code), _closer(chr(code))): re.compile("[^" + re.escape(chr(code) + _closer(chr(code))) + r"\\]+")
    for code in range(128)}
_ESCAPE: Final = re.compile(r"u\{([0-9a-fA-F ]{1,32})\}|u([0-9a-fA-F]{4})|x([0-9a-fA-F]{1,2})|([0-7]{1,3})")


def _code_point(digits: str, base: int = 16) -> str:
    value = int(digits, base)
    return chr(value) if value <= 0x10FFFF else "\ufffd"


def _escape(text: str, i: int) -> tuple[list[str], int]:
    """The characters a double-quoted literal's escape after the backslash at ``i - 1`` stands
    for (String#dump writes \\u00E9, \\u{1F600}, \\#, \\"), and the index after it."""
    escape = _ESCAPE.match(text, i)
    if escape is None:
        return [_SIMPLE_ESCAPES.get(text[i], text[i])], i + 1
    if escape.group(4) is not None:
        return [_code_point(escape.group(4), 8)], escape.end()
    codes = escape.group(1).split() if escape.group(1) is not None else [escape.group(2) or escape.group(3)]
    return [_code_point(code) for code in codes], escape.end()


def _literal_body(text: str, start: int, opener: str, close: str, *, double_quoted: bool) -> tuple[str, int] | None:
    """The value of the literal whose body starts at ``start`` and the index after its closing
    delimiter. Double-quoted ("...", %Q) bodies take escapes; single-quoted ones ('...', %q)
    only an escaped delimiter or backslash."""
    plain_run = _PLAIN_RUNS.get((opener, close))
    if plain_run is None:
        return None  # a non-ASCII delimiter: not Ruby
    out: list[str] = []
    depth = 0
    i = start
    while True:
        plain = plain_run.match(text, i)
        if plain:
            out.append(plain.group())
            i = plain.end()
        if i >= len(text):
            return None
        char = text[i]
        if char == close:
            if depth == 0:
                return "".join(out), i + 1
            depth -= 1
            out.append(char)
            i += 1
        elif char == opener:  # only a paired opener reaches here: an unpaired one is the closer
            depth += 1
            out.append(char)
            i += 1
        elif i + 1 >= len(text):  # a backslash that ends the text
            return None
        elif double_quoted:
            chars, i = _escape(text, i + 1)
            out.extend(chars)
        elif text[i + 1] in (opener, close, "\\"):
            out.append(text[i + 1])
            i += 2
        else:
            out.append("\\")
            i += 1


def _string_literal(text: str, i: int) -> tuple[str, int] | None:
    if text.startswith(('"', "'"), i):
        found = _literal_body(text, i + 1, text[i], text[i], double_quoted=text[i] == '"')
    elif text.startswith(("%q", "%Q"), i) and i + 2 < len(text):
        opener = text[i + 2]
        found = _literal_body(text, i + 3, opener, _closer(opener), double_quoted=text[i + 1] == "Q")
    else:
        return None
    if found is None:
        return None
    value, end = found
    freeze = _FREEZE.match(text, end)
    return value, freeze.end() if freeze else end


def _skip_blank(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _literal_value(text: str, i: int) -> str | list[str] | None:
    """A string literal or an array of them at ``i``; None for anything else (a constant, a call)."""
    if not text.startswith("[", i):
        found = _string_literal(text, i)
        return found[0] if found else None
    items: list[str] = []
    i = _skip_blank(text, i + 1)
    while i < len(text) and text[i] != "]":
        found = _string_literal(text, i)
        if found is None:
            return None
        if len(items) < MAX_LIST_ITEMS:
            items.append(found[0])
        i = _skip_blank(text, found[1])
        if text.startswith(",", i):
            i = _skip_blank(text, i + 1)
    return items if i < len(text) else None


def _gemspec_fields(text: str) -> dict[str, str | list[str]]:
    """The first assignment of each field, on the block variable when one is declared, when its
    value is a literal."""
    block = _BLOCK.search(text)
    receiver = block.group("var") if block else None
    fields: dict[str, str | list[str]] = {}
    tried: set[str] = set()  # a field is read once: a bad literal can cost one pass, not one per line
    for match in _ASSIGNMENT.finditer(text, block.end() if block else 0):
        field = match.group("field")
        if field in tried or (receiver is not None and match.group("receiver") != receiver):
            continue
        tried.add(field)
        value = _literal_value(text, match.end())
        if value is not None:
            fields[field] = value
    return fields


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    return [item.strip()[:MAX_TEXT] for item in items if item.strip()]


def parse_gemspec(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """One gem from an installed (RubyGems-generated) specification file."""
    # stub lines ("# stub: ext/.../extconf.rb\0ext/...") legitimately hold NUL bytes
    text = str(data, "utf-8", "replace")
    fields = _gemspec_fields(text)
    name, version = fields.get("name"), fields.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name.strip() or not version.strip():
        return ParseResult(warnings=[f"{path}: no literal name and version assignment; not a generated gemspec"])
    licenses = list(dict.fromkeys(_as_list(fields.get("licenses")) or _as_list(fields.get("license"))))
    metadata: dict[str, Any] = {}
    authors = _as_list(fields.get("authors")) or _as_list(fields.get("author"))
    if authors:
        metadata["authors"] = authors
    homepage = _as_list(fields.get("homepage"))
    if homepage:
        metadata["homepage"] = homepage[0]
    platform = _as_list(fields.get("platform"))
    if platform and platform[0] != "ruby":
        metadata["platform"] = platform[0]
    if "/specifications/default/" in path:
        metadata["default_gem"] = True  # shipped inside Ruby itself
    return ParseResult(packages=[Package(type="gem", name=name.strip(), version=version.strip(),
                                         license=" AND ".join(licenses) or None, metadata=metadata)])


# -- Gemfile.lock -----------------------------------------------------------------------------

_SOURCE_SECTIONS: Final = {"GEM": None, "GIT": "git", "PATH": "path", "PLUGIN SOURCE": "plugin"}
# Bundler's LockfileParser::NAME_VERSION, for a spec line (four spaces): the version stops at
# the first "-", after which comes the platform
_SPEC_LINE: Final = re.compile(r"^    (?! )(?P<name>\S+) \((?P<version>[^-)]*)(?:-(?P<platform>[^)]*))?\)!?\s*$")
_SOURCE_OPTION: Final = re.compile(r"^  (?P<key>remote|revision|ref|branch|tag): (?P<value>.*)$")
# an installed gem's directory: gems/<name>-<version>/ or bundler/gems/<name>-<12 hex digits>/
_LOCKFILE_SECTION: Final = re.compile(r"^(?:GEM|GIT|PATH|PLUGIN SOURCE|DEPENDENCIES)$", re.MULTILINE)
# (the look-ahead checks once that the directory ends, so the first "-<digit>" decides; trying
# each "-" with a scan to the end of the name was quadratic on a long name)
_INSTALLED_GEM_DIR: Final = re.compile(r"/gems/(?=[^/]*+/)(?:[^/]+?-\d|[^/]+-[0-9a-f]{12}/)")


def _gem_entries(text: str) -> list[tuple[str, str, str | None, dict[str, str]]]:
    """(name, version, platform, source metadata) for every spec line of a source section."""
    entries = []
    section: str | None = None
    source: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0] != " ":
            section = line.strip()
            kind = _SOURCE_SECTIONS.get(section)
            source = {"source": kind} if kind else {}
            continue
        if section not in _SOURCE_SECTIONS:
            continue
        option = _SOURCE_OPTION.match(line)
        if option and source and option.group("key") in ("remote", "revision"):
            source[option.group("key")] = option.group("value").strip()[:MAX_TEXT]
            continue
        spec = _SPEC_LINE.match(line)
        if spec:
            entries.append((spec.group("name"), spec.group("version"), spec.group("platform"), source))
            if len(entries) > MAX_LOCK_GEMS:
                break
    return entries


def parse_gemfile_lock(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """The gems a Bundler lockfile pins, one package per name and version."""
    if _INSTALLED_GEM_DIR.search(path):
        return ParseResult()  # a gem's own development lockfile, shipped inside the gem
    text = str(data, "utf-8", "replace")
    if looks_binary(text):
        return ParseResult(warnings=[f"{path}: binary data, not a Gemfile.lock; skipped"])
    result = ParseResult()
    entries = _gem_entries(text)
    if len(entries) > MAX_LOCK_GEMS:
        result.warnings.append(f"{path}: more than {MAX_LOCK_GEMS} gems; the rest skipped")
        entries = entries[:MAX_LOCK_GEMS]
    by_key: dict[tuple[str, str], Package] = {}
    for name, version, platform, source in entries:
        if not version:
            continue
        package = by_key.get((name, version))
        if package is None:
            package = by_key[(name, version)] = Package(type="gem", name=name, version=version, declared=True,
                                                        metadata=dict(source))
            result.packages.append(package)
        if platform:  # one gem locked for several platforms is one package
            platforms = package.metadata.setdefault("platforms", [])
            if platform not in platforms and len(platforms) < MAX_LIST_ITEMS:
                platforms.append(platform)
    if not result.packages and not _LOCKFILE_SECTION.search(text):
        result.warnings.append(f"{path}: no GEM, GIT, PATH or DEPENDENCIES section; not a Gemfile.lock")
    return result


GEMSPEC = Cataloger(name="ruby-gemspec",
                    globs=("**/specifications/*.gemspec", "**/specifications/default/*.gemspec"),
                    parse=parse_gemspec, max_bytes=MAX_GEMSPEC_BYTES)
GEMFILE_LOCK = Cataloger(name="ruby-gemfile", globs=("**/Gemfile.lock", "**/gems.locked"),
                         parse=parse_gemfile_lock, max_bytes=MAX_GEMFILE_LOCK_BYTES)
