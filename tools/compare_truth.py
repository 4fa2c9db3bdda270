#!/usr/bin/env python3
"""Compare `analyzerd show --json` output with a ground-truth file from shared/realworld/truth.py.

    tools/compare_truth.py TRUTH.json ANALYZERD.json

Checks that both list the same paths, and for each path type, mode, uid, gid, size,
link target and (regular files) MD5/SHA1/SHA256. A hardlink in analyzerd's output is
compared as the regular file it is on disk. Exits 1 on any difference.
"""

import json
import sys


def main() -> int:
    truth = json.load(open(sys.argv[1]))
    ours = json.load(open(sys.argv[2]))
    expected = {e["path"]: e for e in truth["files"]}
    got = {e["path"]: e for e in ours["files"]}
    problems = []
    for path in sorted(expected.keys() - got.keys()):
        problems.append(f"missing: {path}")
    for path in sorted(got.keys() - expected.keys()):
        problems.append(f"extra: {path}")
    checked = 0
    for path in sorted(expected.keys() & got.keys()):
        t, o = expected[path], got[path]
        kind = "file" if o["type"] == "hardlink" else o["type"]
        fields = [("type", t["type"], kind), ("mode", t["mode"], o["mode"]), ("uid", t["uid"], o["uid"]),
                  ("gid", t["gid"], o["gid"]), ("size", t["size"], o["size"])]
        if t["type"] == "symlink":
            fields.append(("link", t.get("target"), o["link"]))
        if t["type"] == "file":
            fields += [(h, t[h], o[h]) for h in ("md5", "sha1", "sha256")]
        for name, want, have in fields:
            if want != have:
                problems.append(f"{path}: {name} {have!r} != truth {want!r}")
        checked += 1
    for line in problems[:50]:
        print(line)
    regular = sum(1 for e in expected.values() if e["type"] == "file")
    print(f"{checked} paths compared ({regular} regular files), {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
