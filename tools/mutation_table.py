"""Per-module table of a mutation run: reads `python -m mutmut results --all true` on stdin
(lines "    analyzerd.pkg.module.x_function__mutmut_N: status") and prints, per module, how many
mutants were generated, killed, survived, timed out and had no test reaching them, and the
share killed (a timeout counts as killed: the mutant made the code hang)."""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict

_LINE = re.compile(r"^\s*(?P<module>[\w.]+?)\.x[_ǁ][^:]*__mutmut_\d+: (?P<status>[\w ]+?)\s*$")
COLUMNS = ("killed", "survived", "timeout", "no tests", "suspicious", "skipped", "not checked")


def main() -> None:
    by_module: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for line in sys.stdin:
        match = _LINE.match(line)
        if match:
            by_module[match["module"]][match["status"]] += 1
    print(f"| module | mutants | {' | '.join(COLUMNS)} | killed % |")
    print("|---" * (len(COLUMNS) + 3) + "|")
    total: Counter[str] = Counter()
    for module in sorted(by_module):
        _row(module, by_module[module])
        total.update(by_module[module])
    _row("**all**", total)


def _row(name: str, counts: Counter[str]) -> None:
    generated = sum(counts.values())
    checked = generated - counts["not checked"] - counts["skipped"]
    share = 100 * (counts["killed"] + counts["timeout"]) / checked if checked else 0.0
    cells = " | ".join(str(counts[c]) for c in COLUMNS)
    print(f"| {name} | {generated} | {cells} | {share:.1f} |")


if __name__ == "__main__":
    main()
