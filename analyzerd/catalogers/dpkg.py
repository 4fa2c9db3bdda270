"""Debian packages: the dpkg database (/var/lib/dpkg/status), distroless images'
/var/lib/dpkg/status.d/*, opkg's status, and the ownership files in /var/lib/dpkg/info
(<pkg>[:arch].list: paths; <pkg>[:arch].md5sums: expected MD5 of each file).

Format: deb-control(5) paragraphs; a package is installed when its Status is
"<want> <flag> installed" (dpkg-query's "ii" when want is install).
"""

from __future__ import annotations

import re
from typing import Final

from .base import Cataloger, Claim, OwnedFile, Package, ParseResult, looks_binary

__all__ = ["DPKG", "parse_dpkg"]

_SOURCE: Final = re.compile(r"^(?P<name>\S+)(?:\s+\((?P<version>[^)]+)\))?\s*$")
# atomic: once the path has run to the end of the line, no shorter split of the blanks
# before it can make "$" match (it would rescan the path for each blank)
_MD5: Final = re.compile(r"^([0-9a-fA-F]{32})(?>\s+\*?(.+))$")
#: A field line, deb822(5): the name has no blank or colon and starts with neither "#" nor
#: "-". A continuation line starts with a blank, so it never matches: no field the cataloger
#: reports spans lines (Description and Depends do, and are not read).
_FIELD: Final = re.compile(r"^([^\s:#-][^\s:]*):(.*)")


def _paragraphs(text: str) -> list[dict[str, str]]:
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                paragraphs.append(current)
            current = {}
            continue
        field = _FIELD.match(line)
        if field:  # anything else is a continuation, a comment or garbage the checks below skip
            current[field[1]] = field[2].strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def _package(fields: dict[str, str]) -> Package:
    name, version = fields["Package"], fields["Version"]
    source = _SOURCE.match(fields.get("Source", ""))  # "name" or "name (version)"
    size = fields.get("Installed-Size")
    return Package(
        type="deb", name=name, version=version,
        arch=fields.get("Architecture") or None,
        source_name=source["name"] if source else name,
        source_version=(source["version"] if source else None) or version,
        maintainer=fields.get("Maintainer") or None,
        installed_size=int(size) * 1024 if size and size.isdigit() else None,  # dpkg counts KiB
        metadata={k: fields[k] for k in ("Status", "Section", "Priority", "Multi-Arch", "Homepage")
                  if k in fields},
    )


#: dpkg's status words of a package whose files are installed and configured (dpkg-query's
#: db:Status-Abbrev "i", "W" and "t"): triggers only wait to run.
INSTALLED_STATES: Final = ("installed", "triggers-awaited", "triggers-pending")


def _status(path: str, text: str, *, require_status: bool) -> ParseResult:
    result = ParseResult()
    for index, fields in enumerate(_paragraphs(text)):
        name = fields.get("Package")
        if not name or not fields.get("Version"):
            result.warnings.append(f"{path}: record {index + 1} has no Package or Version field; skipped")
            continue
        status = fields.get("Status")
        if status is not None:
            words = status.split()
            # installed whatever was wanted of it: `apt-mark hold` (hold ok installed) and a
            # package marked for removal that is still there (deinstall ok installed) are in
            # the image; removed ones with config files left ("rc"), half-installed, ... are not
            if len(words) != 3 or words[2] not in INSTALLED_STATES:
                continue
        elif require_status:
            result.warnings.append(f"{path}: package {name} has no Status field; skipped")
            continue
        result.packages.append(_package(fields))
    return result


def _owned_name(path: str, suffix: str) -> str:
    """The package (and arch) an info file is about: base-files.list -> base-files."""
    return path.rsplit("/", 1)[1].removesuffix(suffix)


def parse_dpkg(path: str, data: bytes) -> ParseResult:
    text = str(data, "utf-8", "replace")
    if looks_binary(text):
        return ParseResult(warnings=[f"{path}: binary data, not a dpkg database; skipped"])
    if path.endswith(".md5sums"):
        files = []
        for line in text.splitlines():
            match = _MD5.match(line.strip())
            if match:
                files.append(OwnedFile("/" + match.group(2).lstrip("/"), match.group(1).lower(), "md5"))
        return ParseResult(claims=[Claim(_owned_name(path, ".md5sums"), tuple(files))])
    if path.endswith(".list"):
        paths = tuple(line for line in text.split("\n") if line.startswith("/") and line not in ("/", "/."))
        return ParseResult(claims=[Claim(_owned_name(path, ".list"), paths=paths)])
    # status.d entries of distroless images carry no Status field: their presence installs them
    return _status(path, text, require_status=path.endswith("/status") and "/status.d/" not in path)


DPKG = Cataloger(
    name="dpkg-db",
    globs=("/var/lib/dpkg/status", "/var/lib/dpkg/status.d/*", "/usr/lib/opkg/status",
           "/var/lib/dpkg/info/*.list", "/var/lib/dpkg/info/*.md5sums"),
    parse=parse_dpkg,
    max_bytes=64 * 1024 * 1024,
)
