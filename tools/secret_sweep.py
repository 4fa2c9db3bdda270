#!/usr/bin/env python3
"""Run the built-in secret rules over a directory tree, the way the scanner applies them.

    tools/secret_sweep.py [--root ROOT] [--anchore] [--stats] [--everywhere] DIR...

A development tool for tuning analyzerd/secrets/rules.py against real files (a clean
system must stay quiet at HIGH and CRITICAL): for every regular file under each DIR it
takes the lines that contain a rule's keyword (case-insensitively), runs the rule's regex
on the line (``match`` for Anchore rules), drops values an ``allow`` regex finds, and
honours ``paths``. Paths are matched and printed as the image would see them: relative to
ROOT (default "/"), with a leading "/". Skipped, as the sweep's brief says: files that
DEFAULT_ALLOWED_PATHS finds (unless --everywhere), files over 1 MiB, files with a NUL
byte in their first 8 KiB, and symlinks.

--anchore adds Anchore Engine's five default rules; --stats prints, per rule, how many
lines its keywords selected (the scanner's prefilter cost) next to its findings.
Exits 1 when a HIGH or CRITICAL finding was printed.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import hmac
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzerd.secrets.redaction import affixes_of, hint  # noqa: E402
from analyzerd.secrets.rules import ANCHORE_RULES, DEFAULT_ALLOWED_PATHS, RULES, Rule, engine_regex  # noqa: E402

MAX_FILE = 1024 * 1024  # the sweep's brief: skip files over 1 MiB
BINARY_PROBE = 8192  # a NUL in this many leading bytes marks a binary file
WINDOW = 4096  # the scanner takes up to this many bytes of the line either side of a keyword hit


class Compiled:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.regex = re.compile(rule.regex.encode())
        self.allow = [re.compile(a.encode()) for a in rule.allow]
        self.paths = [re.compile(p) for p in rule.paths]
        self.keywords = [k.encode() for k in rule.keywords]
        self.has_secret = "secret" in self.regex.groupindex
        self.affixes = affixes_of(engine_regex(rule))

    def applies(self, path: str) -> bool:
        return not self.paths or any(p.search(path) for p in self.paths)

    def find(self, line: bytes) -> bytes | None:
        m = self.regex.match(line) if self.rule.anchore else self.regex.search(line)
        if m is None:
            return None
        secret = m.group("secret") if self.has_secret else m.group(0)
        if any(a.search(secret) for a in self.allow):
            return None
        return secret


#: Fingerprints printed by one run are comparable within it only (a key of its own).
_RUN_KEY = os.urandom(32)


def redact(secret: bytes, compiled: Compiled) -> str:
    """As analyzerd shows a finding: the rule's public literals, else length and fingerprint."""
    return hint(secret, hmac.new(_RUN_KEY, secret, hashlib.sha256).hexdigest(), compiled.affixes)


def walk(directory: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--root", type=Path, default=Path("/"))
    parser.add_argument("--anchore", action="store_true", help="also run Anchore Engine's default rules")
    parser.add_argument("--stats", action="store_true", help="print keyword-selected lines per rule")
    parser.add_argument("--everywhere", action="store_true", help="ignore DEFAULT_ALLOWED_PATHS")
    args = parser.parse_args()

    rules = [Compiled(r) for r in (*RULES, *(ANCHORE_RULES if args.anchore else ()))]
    keyed = [c for c in rules if c.keywords]
    unkeyed = [c for c in rules if not c.keywords]
    keywords = sorted({k for c in keyed for k in c.keywords}, key=len, reverse=True)
    prefilter = re.compile(b"|".join(re.escape(k) for k in keywords))
    allowed = [re.compile(p) for p in DEFAULT_ALLOWED_PATHS]

    selected: collections.Counter[str] = collections.Counter()
    fired: collections.Counter[str] = collections.Counter()
    skipped: collections.Counter[str] = collections.Counter()
    scanned_bytes = scanned_files = 0
    serious = False
    started = time.monotonic()
    for directory in args.dirs:
        for file in walk(directory):
            try:
                if file.is_symlink() or not file.is_file():
                    continue
                path = "/" + str(file.resolve(strict=False).relative_to(args.root.resolve())).lstrip("/")
            except (OSError, ValueError):
                continue
            if not args.everywhere and any(p.search(path) for p in allowed):
                skipped["allowed path"] += 1
                continue
            try:
                if file.stat().st_size > MAX_FILE:
                    skipped["over 1 MiB"] += 1
                    continue
                data = file.read_bytes()
            except OSError:
                skipped["unreadable"] += 1
                continue
            if b"\0" in data[:BINARY_PROBE]:
                skipped["binary"] += 1
                continue
            scanned_files += 1
            scanned_bytes += len(data)
            lower = data.lower()
            candidates: dict[int, int] = {}  # line start -> first keyword hit in it
            for found in prefilter.finditer(lower):
                start = lower.rfind(b"\n", 0, found.start()) + 1
                candidates.setdefault(start, found.start())
            whole = [c for c in unkeyed if c.applies(path)]
            starts = sorted(candidates) if not whole else sorted(
                {0, *(i + 1 for i in range(len(data)) if data[i] == 10)})
            for start in starts:
                end = data.find(b"\n", start)
                end = len(data) if end < 0 else end
                hit: int | None = candidates.get(start)
                lo, hi = (start, end) if hit is None else (max(start, hit - WINDOW), min(end, hit + WINDOW))
                line = data[lo:hi].removesuffix(b"\r")
                low = lower[lo:hi]
                for c in (keyed if hit is not None else []) + whole:
                    if c.keywords and not any(k in low for k in c.keywords):
                        continue
                    if not c.applies(path):
                        continue
                    selected[c.rule.id] += 1
                    secret = c.find(line)
                    if secret is None:
                        continue
                    fired[c.rule.id] += 1
                    lineno = data.count(b"\n", 0, start) + 1
                    serious |= c.rule.severity in ("HIGH", "CRITICAL")
                    print(f"{c.rule.severity:8} {c.rule.id:32} {path}:{lineno}  {redact(secret, c)}")
    elapsed = time.monotonic() - started
    print(f"\n{scanned_files} files, {scanned_bytes / 1e6:.1f} MB scanned in {elapsed:.1f} s; skipped: "
          + ", ".join(f"{n} {why}" for why, n in sorted(skipped.items())))
    for rule_id, n in fired.most_common():
        print(f"  {n:6} findings  {rule_id}")
    if args.stats:
        print("\nlines selected by keywords (prefilter cost), per MB scanned:")
        for rule_id, n in selected.most_common():
            print(f"  {n / max(scanned_bytes / 1e6, 1e-9):10.1f}  {n:8}  {rule_id}")
    return 1 if serious else 0


if __name__ == "__main__":
    sys.exit(main())
