"""Compare analyzerd's language packages with ../shared/realworld's truth.py and with Syft.

    python tools/compare_packages.py TRUTH.json OURS.json [--syft SYFT.json]

OURS is ``analyzerd show REF --packages --json`` (or ``analyze --json``). Truth lists
installed packages: Python dist-info/egg-info, npm manifests under node_modules and
Debian's nodejs dirs, gemspecs, and maven pom.properties (nested archives included).
Prints, per ecosystem, what is missing from analyzerd and what it has beyond truth; with
--syft, what Syft finds that analyzerd does not. Exit status 1 when truth and analyzerd
differ or Syft finds a package analyzerd misses.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict

SYFT_TYPES = {"python": "pypi", "npm": "npm", "gem": "gem", "java-archive": "maven", "go-module": "golang",
              "rust-crate": "cargo", "php-composer": "composer", "dotnet": "nuget"}


def _pypi(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def key(kind: str, name: str, version: str, group: str | None = None) -> tuple[str, ...]:
    if kind == "pypi":
        return (_pypi(name), version)
    if kind == "maven":
        return (group or "", name, version)
    return (name, version)


def truth_sets(truth: dict) -> dict[str, set[tuple[str, ...]]]:
    packages = truth["packages"]
    out: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for p in packages.get("python", []):
        out["pypi"].add(key("pypi", p["name"], p["version"]))
    for p in packages.get("npm", []):
        out["npm"].add(key("npm", p["name"], p["version"]))
    for p in packages.get("gem", []):
        out["gem"].add(key("gem", p["name"], p["version"]))
    for p in packages.get("java", []):
        out["maven"].add(key("maven", p["artifactId"], p["version"], p["groupId"]))
    return out


def our_sets(ours: dict, applications: bool = False) -> dict[str, set[tuple[str, ...]]]:
    """``applications``: the set to compare with Syft, which also lists an application's own
    package.json and jars known by their manifest alone."""
    out: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for p in ours.get("packages", []):
        if p["type"] in ("deb", "apk", "rpm") or not p.get("installed", True):
            continue
        if not applications and (p.get("metadata") or {}).get("application"):
            continue  # the application's own package.json, not a dependency
        if p["type"] == "maven":
            pom = (p.get("metadata") or {}).get("pom_path") or ""
            if not applications and not pom.endswith("pom.properties"):
                continue  # truth lists pom.properties only; a manifest-only jar is compared with Syft
            # no groupId known: the purl repeats the artifactId, as Syft's does
            out["maven"].add(key("maven", p["name"], p["version"], p.get("namespace") or p["name"]))
            continue
        out[p["type"]].add(key(p["type"], p["name"], p["version"], p.get("namespace")))
    return out


def syft_sets(syft: dict) -> dict[str, set[tuple[str, ...]]]:
    out: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for a in syft["artifacts"]:
        kind = SYFT_TYPES.get(a["type"])
        if kind is None:
            continue
        group = None
        if kind == "maven":
            match = re.match(r"pkg:maven/([^/]+)/", a.get("purl") or "")
            group = match.group(1) if match else None
        version = "" if a["version"] == "UNKNOWN" else a["version"]  # Syft's word for none
        out[kind].add(key(kind, a["name"], version, group))
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("truth")
    parser.add_argument("ours")
    parser.add_argument("--syft")
    args = parser.parse_args()
    with open(args.truth) as f:
        truth = truth_sets(json.load(f))
    with open(args.ours) as f:
        ours_doc = json.load(f)
    ours_all = our_sets(ours_doc)
    failed = False
    for kind in ("pypi", "npm", "gem", "maven"):
        want, got = truth.get(kind, set()), ours_all.get(kind, set())
        missing, extra = sorted(want - got), sorted(got - want)
        print(f"{kind:<9} truth {len(want):>4}  analyzerd {len(got):>4}  missing {len(missing)}  extra {len(extra)}")
        for k in missing:
            print(f"    missing {'@'.join(k)}")
        for k in extra:
            print(f"    extra   {'@'.join(k)}")
        failed |= bool(missing or extra)
    if args.syft:
        with open(args.syft) as f:
            syft = syft_sets(json.load(f))
        # Syft reports an application's own package.json as a package too
        ours_with_apps = our_sets(ours_doc, applications=True)
        for kind in sorted(set(syft) | set(ours_with_apps)):
            theirs, got = syft.get(kind, set()), ours_with_apps.get(kind, set())
            missed = sorted(theirs - got)
            print(f"syft {kind:<9} syft {len(theirs):>4}  analyzerd {len(got):>4}  "
                  f"syft-only {len(missed)}  analyzerd-only {len(got - theirs)}")
            for k in missed:
                print(f"    syft-only {'@'.join(k)}")
            failed |= bool(missed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
