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
    stay within one path component.

    A ``*`` that another ``*`` of the same component follows matches up to the first place
    the text between them fits, and keeps it (atomic): a later place can only leave less for
    the rest. Backtracking into it instead would rescan the rest of the name from each
    place ("*requirements*.txt" against a name of many "requirements"), quadratic time."""
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob[i] == "*":
            component_end = glob.find("/", i)
            component_end = len(glob) if component_end < 0 else component_end
            next_star = glob.find("*", i + 1, component_end)
            if next_star < 0:
                out.append("[^/]*")
                i += 1
            else:
                out.append("(?>[^/]*?" + glob_to_regex(glob[i + 1:next_star]) + ")")
                i = next_star
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


_Candidate = tuple[int, "re.Pattern[str]", Cataloger]


class Dispatch:
    """Each glob is filed under what a matching path's last component must be: a literal
    name ("package.json"), a suffix ("*.jar"), or, for a name that is all wildcard
    ("status.d/*"), the literal directory it sits in. A path is matched against the globs
    of its name, suffix or directory only; the first cataloger declared wins."""

    def __init__(self, catalogers: Sequence[Cataloger]) -> None:
        self.catalogers = tuple(catalogers)
        self._by_name: dict[str, list[_Candidate]] = {}
        self._by_suffix: list[tuple[str, _Candidate]] = []
        self._by_directory: dict[str, list[_Candidate]] = {}
        self._everywhere: list[_Candidate] = []  # globs none of the above can narrow
        order = 0
        for cataloger in self.catalogers:
            for glob in cataloger.globs:
                candidate = (order, re.compile(glob_to_regex(glob)), cataloger)
                order += 1
                directory, _, name = glob.rpartition("/")
                wild = max(name.rfind("*"), name.rfind("?"))
                if wild < 0:
                    self._by_name.setdefault(name, []).append(candidate)
                elif wild < len(name) - 1:
                    self._by_suffix.append((name[wild + 1:], candidate))
                elif directory and "*" not in directory and "?" not in directory:
                    self._by_directory.setdefault(directory, []).append(candidate)
                else:
                    self._everywhere.append(candidate)
        self._suffixes = tuple(sorted({suffix for suffix, _ in self._by_suffix}))
        #: catalogers that look at executables' bytes as they stream (no path identifies them)
        self.scanners = tuple(c for c in self.catalogers if c.scanner is not None)
        self.magic_length = max((len(m) for c in self.scanners for m in c.magic), default=0)

    def match(self, path: str) -> Cataloger | None:
        slash = path.rfind("/")
        name = path[slash + 1:]
        candidates = self._by_name.get(name)
        if name.endswith(self._suffixes):
            candidates = [*(candidates or ()), *(c for suffix, c in self._by_suffix if name.endswith(suffix))]
        in_directory = self._by_directory.get(path[:slash]) if self._by_directory else None
        if in_directory:
            candidates = [*(candidates or ()), *in_directory]
        if self._everywhere:
            candidates = [*(candidates or ()), *self._everywhere]
        if not candidates:
            return None
        for _, regex, cataloger in sorted(candidates, key=_order):
            if regex.fullmatch(path):
                return cataloger
        return None


def _order(candidate: _Candidate) -> int:
    return candidate[0]
