"""Which cataloger wants an entry. Runs once per file of every layer, so it must turn the
common case (no cataloger wants the file) away in C: the file name is looked up in a set
of literal names and tested against a tuple of suffixes before any regular expression
runs; only a candidate's full path is matched against its catalogers' globs."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..catalogers.base import Cataloger

__all__ = ["Dispatch", "glob_to_regex"]


def glob_to_regex(glob: str) -> str:
    """Globs over absolute paths: ``**/`` is any directory prefix (or none), ``*`` and ``?``
    stay within one path component."""
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def _name_filter(glob: str) -> tuple[str | None, str]:
    """What the file name of a match must be: (a literal name, "") or (None, a suffix that
    every matching name ends with; "" when nothing is known)."""
    name = glob.rpartition("/")[2]
    if "*" not in name and "?" not in name:
        return name, ""
    tail = name[max(name.rfind("*"), name.rfind("?")) + 1:]
    return None, tail


class Dispatch:
    def __init__(self, catalogers: Sequence[Cataloger]) -> None:
        self.catalogers = tuple(catalogers)
        self._names: set[str] = set()
        suffixes: set[str] = set()
        parts = []
        self._by_group: dict[str, Cataloger] = {}
        for i, cataloger in enumerate(self.catalogers):
            for j, glob in enumerate(cataloger.globs):
                group = f"c{i}_{j}"
                self._by_group[group] = cataloger
                parts.append(f"(?P<{group}>{glob_to_regex(glob)})")
                name, suffix = _name_filter(glob)
                if name is not None:
                    self._names.add(name)
                else:
                    suffixes.add(suffix)  # "" (a glob like "*") lets every name through
        self._suffixes = tuple(sorted(suffixes))
        #: catalogers that look at executables' bytes as they stream (no path identifies them)
        self.scanners = tuple(c for c in self.catalogers if c.scanner is not None)
        self.magic_length = max((len(m) for c in self.scanners for m in c.magic), default=0)
        self._regex = re.compile("|".join(parts)) if parts else None

    def match(self, path: str) -> Cataloger | None:
        if self._regex is None:
            return None
        name = path[path.rfind("/") + 1:]
        if name not in self._names and not name.endswith(self._suffixes):
            return None
        found = self._regex.fullmatch(path)
        return self._by_group[found.lastgroup] if found and found.lastgroup else None
