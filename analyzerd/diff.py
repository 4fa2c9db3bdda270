"""What changed from one analyzed image to another: packages added, removed or changed in
version; files added, removed or changed (content, mode, owner, type, link target); and
secrets the second image has that the first does not. Pure: it compares two `show --json`
documents."""

from __future__ import annotations

from typing import Any

__all__ = ["diff_documents"]

_FILE_FIELDS = ("type", "mode", "uid", "gid", "sha256", "link")


def _package_key(p: dict[str, Any]) -> tuple[Any, ...]:
    return (p["type"], p.get("namespace"), p["name"], p.get("arch"), p["location"])


def _brief(p: dict[str, Any]) -> dict[str, Any]:
    return {"type": p["type"], "name": p["name"], "version": p["version"], "purl": p["purl"],
            "location": p["location"]}


def diff_documents(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"from": a["image"]["manifest_digest"], "to": b["image"]["manifest_digest"]}
    if "packages" in a and "packages" in b:
        old = {_package_key(p): p for p in a["packages"]}
        new = {_package_key(p): p for p in b["packages"]}
        out["packages"] = {
            "added": [_brief(new[k]) for k in sorted(new.keys() - old.keys(), key=repr)],
            "removed": [_brief(old[k]) for k in sorted(old.keys() - new.keys(), key=repr)],
            "changed": [{**_brief(new[k]), "from_version": old[k]["version"]}
                        for k in sorted(old.keys() & new.keys(), key=repr) if old[k]["version"] != new[k]["version"]],
        }
    if "files" in a and "files" in b:
        old_files = {f["path"]: f for f in a["files"]}
        new_files = {f["path"]: f for f in b["files"]}
        changed = []
        for path in sorted(old_files.keys() & new_files.keys()):
            before, after = old_files[path], new_files[path]
            fields = [name for name in _FILE_FIELDS if before.get(name) != after.get(name)]
            if fields:
                changed.append({"path": path, "changed": fields,
                                **{name: {"from": before.get(name), "to": after.get(name)} for name in fields}})
        out["files"] = {"added": sorted(new_files.keys() - old_files.keys()),
                        "removed": sorted(old_files.keys() - new_files.keys()), "changed": changed}
    if "secrets" in a and "secrets" in b:
        known = {(s["fingerprint"], s["rule"]) for s in a["secrets"]}
        out["secrets"] = {"new": [s for s in b["secrets"] if (s["fingerprint"], s["rule"]) not in known]}
    return out
