"""What `show` and `analyze` print: one JSON document, or readable tables. Built from the store."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from .errors import NotFoundError
from .store import Store

__all__ = ["SECTIONS", "image_document", "render_table", "summary"]

SECTIONS = ("files", "packages", "secrets")


async def image_document(store: Store, key: str, sections: Iterable[str] = SECTIONS) -> dict[str, Any]:
    """The `show --json` document for the image that ``key`` (reference or digest) names."""
    row = await store.find_image(key)
    if row is None:
        raise NotFoundError(f"no analyzed image matches {key!r}",
                            hint="Run `analyzerd jobs` to see what was analyzed, or `analyzerd analyze REF`.")
    image_id = row["id"]
    config = json.loads(row["config_json"]) if row["config_json"] else {}
    references = await store.image_references(image_id)
    platform = "/".join(p for p in (row["os"], row["architecture"], row["variant"]) if p)
    layers = await store.image_layers(image_id)
    image: dict[str, Any] = {
        "reference": references[0] if references else None,
        "references": references,
        "manifest_digest": row["manifest_digest"],
        "manifest_media_type": row["manifest_media_type"],
        "index_digest": row["index_digest"],
        "config_digest": row["config_digest"],
        "platform": platform,
        "created": row["created"],
        "analysis_status": row["analysis_status"],
        "analysis_error": row["analysis_error"],
        "warnings": json.loads(row["warnings"]) if row["warnings"] else [],
        "analyzer_version": row["analyzer_version"],
        "analyzed_at": row["analyzed_at"],
        "file_count": row["file_count"],
        "compressed_size": row["compressed_size"],
        "uncompressed_size": row["uncompressed_size"],
        "layers": [{"digest": layer["digest"], "diff_id": layer["diff_id"], "media_type": layer["media_type"],
                    "size": layer["compressed_size"], "uncompressed_size": layer["uncompressed_size"]}
                   for layer in layers],
    }
    image_config = config.get("config") if isinstance(config.get("config"), dict) else {}
    for key_out, key_in in (("env", "Env"), ("entrypoint", "Entrypoint"), ("cmd", "Cmd"),
                            ("user", "User"), ("working_dir", "WorkingDir"), ("labels", "Labels"),
                            ("exposed_ports", "ExposedPorts")):
        image[key_out] = image_config.get(key_in)
    image["history"] = config.get("history") if isinstance(config.get("history"), list) else []
    image["distro"] = ({"id": row["distro_id"], "version_id": row["distro_version_id"],
                        "codename": row["distro_codename"],
                        "id_like": row["distro_id_like"].split() if row["distro_id_like"] else [],
                        "name": row["distro_name"]} if row["distro_id"] else None)
    document: dict[str, Any] = {"image": image}
    if "packages" in sections:
        document["packages"] = [
            {"type": p["type"], "name": p["name"], "version": p["version"], "arch": p["arch"],
             "purl": p["purl"], "location": p["location"], "layer": p["layer"],
             "namespace": p["namespace"],
             "installed": not p["declared"],
             **({"metadata": json.loads(p["metadata"])} if p["metadata"] else {}),
             "source": {"name": p["source_name"], "version": p["source_version"]} if p["source_name"] else None,
             "license": p["license"], "maintainer": p["maintainer"], "installed_size": p["installed_size"],
             "files": {"total": p["files_total"], "modified": [f["path"] for f in problems if f["status"] == "modified"],
                       "missing": [f["path"] for f in problems if f["status"] == "missing"]}}
            for p, problems in await store.image_packages(image_id)
        ]
    if "secrets" in sections:
        document["secrets"] = [
            {"path": s["path"], "rule": s["rule"], "category": s["category"], "severity": s["severity"],
             "line": s["line"], "offset": s["offset"], "match": s["redacted"], "fingerprint": s["fingerprint"],
             "layer": s["layer"], "deleted_in_layer": s["deleted_in_layer_digest"]}
            for s in await store.image_secrets(image_id)
        ]
    if "files" in sections:
        document["files"] = [
            {"path": f["path"], "type": f["type"], "mode": f["mode"], "uid": f["uid"],
             "gid": f["gid"], "size": f["size"], "mtime": f["mtime"], "link": f["link"],
             "md5": f["md5"], "sha1": f["sha1"], "sha256": f["sha256"], "layer": f["layer"]}
            for f in await store.image_files(image_id)
        ]
    return document


#: Largest files listed by the summary.
SUMMARY_LARGEST: Final = 10


def summary(document: dict[str, Any]) -> dict[str, Any]:
    """Counts and the files a reviewer looks at first, from a document with all sections."""
    files = document["files"]
    regular = [f for f in files if f["type"] in ("file", "hardlink")]
    ecosystems: dict[str, dict[str, int]] = {}
    for p in document["packages"]:
        counts = ecosystems.setdefault(p["type"], {"installed": 0, "declared": 0})
        counts["installed" if p.get("installed", True) else "declared"] += 1
    severities: dict[str, int] = {}
    for s in document["secrets"]:
        severities[s["severity"]] = severities.get(s["severity"], 0) + 1

    def mode(f: dict[str, Any]) -> int:
        return int(f["mode"], 8)
    return {
        "distro": document["image"].get("distro"),
        "files": len(files), "regular_files": len(regular),
        "total_size": sum(f["size"] or 0 for f in regular if f["type"] == "file"),
        "packages": ecosystems,
        "secrets": {"total": len(document["secrets"]), "by_severity": severities,
                    "deleted_in_upper_layers": sum(1 for s in document["secrets"] if s["deleted_in_layer"])},
        "largest_files": [{"path": f["path"], "size": f["size"]}
                          for f in sorted(regular, key=lambda f: -(f["size"] or 0))[:SUMMARY_LARGEST]],
        "setuid_setgid": [{"path": f["path"], "mode": f["mode"], "uid": f["uid"], "gid": f["gid"]}
                          for f in regular if mode(f) & 0o6000],
        "world_writable": [{"path": f["path"], "type": f["type"], "mode": f["mode"]}
                           for f in files if f["type"] != "symlink" and mode(f) & 0o002
                           and not (f["type"] == "dir" and mode(f) & 0o1000)],  # sticky dirs (/tmp) are fine
    }


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(n)


def render_table(document: dict[str, Any]) -> str:
    image = document["image"]
    lines = [
        f"image      {image['reference']}",
        f"digest     {image['manifest_digest']}",
        f"platform   {image['platform']}",
        f"status     {image['analysis_status']}",
        f"layers     {len(image['layers'])}  ({_size(image['compressed_size'])} compressed, "
        f"{_size(image['uncompressed_size'])} uncompressed)",
        f"files      {image['file_count']}",
    ]
    packages = document.get("packages")
    if image.get("distro"):
        lines.insert(3, f"distro     {image['distro']['name'] or image['distro']['id']}")
    if packages is not None:
        lines.append("")
        lines.append(f"{'TYPE':<9} {'NAME':<40} {'VERSION':<32} {'ARCH':<8} CHANGED")
        for p in packages:
            changed = len(p["files"]["modified"]) + len(p["files"]["missing"])
            name = f"{p['namespace']}:{p['name']}" if p.get("namespace") and p["type"] == "maven" else p["name"]
            if not p.get("installed", True):
                name += " (declared)"
            lines.append(f"{p['type']:<9} {name:<40} {p['version']:<32} {p['arch'] or '-':<8} "
                         f"{changed or ''}")
    layer_index = {layer["digest"]: i for i, layer in enumerate(image["layers"])}
    secrets = document.get("secrets")
    if secrets is not None:
        lines.append("")
        lines.append(f"{'SEVERITY':<9} {'RULE':<32} {'MATCH':<12} L  {'DELETED':<7} PATH:LINE")
        for s in secrets:
            deleted = f"in L{layer_index.get(s['deleted_in_layer'], '?')}" if s["deleted_in_layer"] else ""
            # a secret in the image config outside any layer (Env, Labels, ...) has no layer: "-"
            layer = layer_index.get(s["layer"], "?") if s["layer"] else "-"
            lines.append(f"{s['severity']:<9} {s['rule']:<32} {s['match']:<12} {layer:<2} "
                         f"{deleted:<7} {s['path']}:{s['line']}")
    files = document.get("files")
    if files is not None:
        lines.append("")
        lines.append(f"{'MODE':<5} {'TYPE':<8} {'UID:GID':>11} {'SIZE':>10} {'SHA256':<12} L  PATH")
        for f in files:
            target = f" -> {f['link']}" if f["link"] else ""
            lines.append(f"{f['mode']:<5} {f['type']:<8} {str(f['uid']) + ':' + str(f['gid']):>11} "
                         f"{f['size']:>10} {(f['sha256'] or '-')[:12]:<12} {layer_index.get(f['layer'], '?'):<2} "
                         f"{f['path']}{target}")
    return "\n".join(lines)
