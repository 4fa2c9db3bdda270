"""Which cataloger wants an entry: every declared glob compiled into one regular
expression, so an entry no cataloger wants costs one C-level match."""

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


def _literal_head(glob: str) -> str:
    """The part of a glob before its first wildcard ("" when it starts with one)."""
    cut = min((i for i in (glob.find("*"), glob.find("?")) if i >= 0), default=len(glob))
    return glob[:cut]


class Dispatch:
    def __init__(self, catalogers: Sequence[Cataloger]) -> None:
        self.catalogers = tuple(catalogers)
        parts = []
        self._by_group: dict[str, Cataloger] = {}
        for i, cataloger in enumerate(self.catalogers):
            for j, glob in enumerate(cataloger.globs):
                group = f"c{i}_{j}"
                self._by_group[group] = cataloger
                parts.append(f"(?P<{group}>{glob_to_regex(glob)})")
        self._regex = re.compile("|".join(parts)) if parts else None
        # The literal heads of the globs ("/var/lib/dpkg/", "/etc/os-release"): a str.startswith
        # over them turns most paths away before the regular expression runs.
        heads = {_literal_head(glob) for c in self.catalogers for glob in c.globs}
        self._heads: tuple[str, ...] | None = None if "" in heads else tuple(sorted(heads))

    def match(self, path: str) -> Cataloger | None:
        if self._regex is None or (self._heads is not None and not path.startswith(self._heads)):
            return None
        found = self._regex.fullmatch(path)
        return self._by_group[found.lastgroup] if found and found.lastgroup else None
