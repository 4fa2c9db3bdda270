"""What `show` and `analyze` print: one JSON document, or readable tables. Built from the store."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from .errors import InvalidArgumentError, NotFoundError, PlatformNotFoundError
from .model import Platform
from .oci import platform_matches
from .store import Store

__all__ = ["SECTIONS", "SUMMARY_SECTIONS", "image_document", "image_row", "render_images", "render_summary",
           "render_table", "select_image", "summary"]

SECTIONS = ("files", "packages", "secrets")


def _platform_of(row: Any) -> Platform:
    return Platform(row["os"] or "unknown", row["architecture"] or "unknown", row["variant"] or None)


async def select_image(store: Store, key: str, platform: str | None = None,
                       default_platform: str | None = None) -> Any:
    """The stored image that ``key`` names (see Store.images_for). Where it names several
    (one reference or index, many platforms) the one for ``platform``, else for
    ``default_platform``; an error lists the platforms stored when none is it. A digest
    prefix that names several images is an error listing them."""
    rows = await store.images_for(key)
    if not rows:
        raise NotFoundError(f"no analyzed image matches {key!r}",
                            hint="`analyzerd images` lists what is stored; `analyzerd analyze REF` adds one.")
    by_digest: dict[str, Any] = {}
    for row in rows:
        by_digest.setdefault(row["manifest_digest"], row)
    candidates = list(by_digest.values())
    prefix = key.strip().removeprefix("sha256:")
    if len(candidates) > 1 and all(r["manifest_digest"].removeprefix("sha256:").startswith(prefix)
                                   for r in candidates) and len({r["index_digest"] or r["manifest_digest"] for r in candidates}) > 1:
        raise InvalidArgumentError(f"{key!r} is the start of {len(candidates)} image digests: "
                                   + ", ".join(r["manifest_digest"][:19] for r in candidates),
                                   hint="give more of the digest")
    wanted = Platform.parse(platform) if platform else None
    if wanted is None and len(candidates) == 1:
        return candidates[0]
    target = wanted or Platform.parse(default_platform or "linux/amd64")
    for row in candidates:
        if platform_matches(target, _platform_of(row)):
            return row
    stored = ", ".join(sorted({str(_platform_of(r)) for r in candidates}))
    raise PlatformNotFoundError(f"{key!r} has no analyzed image for platform {target} (stored: {stored})",
                                hint="pick one with --platform, or analyze it with `analyzerd analyze --platform`")


async def image_document(store: Store, key: str, sections: Iterable[str] = SECTIONS, *,
                         platform: str | None = None, default_platform: str | None = None) -> dict[str, Any]:
    """The `show --json` document for the image that ``key`` (reference or digest) names."""
    row = await select_image(store, key, platform, default_platform)
    image_id = row["id"]
    config = json.loads(row["config_json"]) if row["config_json"] else {}
    references = await store.image_references(image_id)
    platform = image_platform(row)
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


#: What `show` and `analyze` print by default: the summary (counts of these sections) alone.
SUMMARY_SECTIONS: Final = ("packages", "secrets")
#: How much of a digest the suggested commands show (a prefix `show` accepts).
SHORT_DIGEST: Final = len("sha256:") + 12
_SEVERITY_ORDER: Final = ("CRITICAL", "HIGH", "MEDIUM", "LOW")


def _counts(counts: dict[str, int], order: Iterable[str] = ()) -> str:
    keys = [k for k in order if k in counts] + sorted(k for k in counts if k not in order)
    return ", ".join(f"{counts[k]:,} {k}" for k in keys)


def render_table(document: dict[str, Any], *, tables: Iterable[str] = (), database: str | None = None,
                 next_steps: bool = True) -> str:
    """The summary of an image (counts per ecosystem and severity, warnings, where it is
    stored), the ``tables`` asked for (files, packages, secrets), then the commands a
    person runs next. A section with nothing in it says "none found"."""
    image = document["image"]
    lines = [
        f"image      {image['reference']}",
        f"digest     {image['manifest_digest']}",
        f"platform   {image['platform']}",
    ]
    if image.get("distro"):
        lines.append(f"distro     {image['distro']['name'] or image['distro']['id']}")
    if image["analysis_status"] != "analyzed":
        lines.append(f"status     {image['analysis_status']}")
    lines += [
        f"layers     {len(image['layers'])}  ({_size(image['compressed_size'])} compressed, "
        f"{_size(image['uncompressed_size'])} uncompressed)",
        f"files      {image['file_count'] or 0:,}",
    ]
    packages, secrets = document.get("packages"), document.get("secrets")
    if packages is not None:
        ecosystems: dict[str, int] = {}
        for p in packages:
            ecosystems[p["type"]] = ecosystems.get(p["type"], 0) + 1
        lines.append(f"packages   {len(packages):,}  ({_counts(ecosystems)})" if packages else "packages   none found")
    if secrets is not None:
        severities: dict[str, int] = {}
        for found in secrets:
            severities[found["severity"]] = severities.get(found["severity"], 0) + 1
        lines.append(f"secrets    {len(secrets):,}  ({_counts(severities, _SEVERITY_ORDER)})"
                     if secrets else "secrets    none found")
    warnings = image.get("warnings") or []
    lines.append(f"warnings   {len(warnings)}  (`show --json` lists them under image.warnings)"
                 if warnings else "warnings   none")
    if database:
        lines.append(f"stored in  {database}")
    tables = tuple(tables)
    for name in ("packages", "secrets", "files"):
        if name in tables and document.get(name) is not None:
            lines.append("")
            lines += _TABLES[name](document)
    if next_steps:
        short = image["manifest_digest"][:SHORT_DIGEST]
        shown = [t for t in ("packages", "secrets", "files") if t not in tables]
        lines += ["", "next:"]
        if shown:
            lines.append(f"  analyzerd show {short} --{shown[0]}"
                         f"   (or {', '.join('--' + t for t in shown[1:] + ['json'])})")
        lines.append(f"  analyzerd export {short} -o cyclonedx=sbom.json   (or spdx, syft)")
        lines.append("  analyzerd images   (everything analyzed)")
    return "\n".join(lines)


def _package_table(document: dict[str, Any]) -> list[str]:
    packages = document["packages"]
    if not packages:
        return ["packages: none found"]
    lines = [f"{'TYPE':<9} {'NAME':<40} {'VERSION':<32} {'ARCH':<8} CHANGED"]
    for p in packages:
        changed = len(p["files"]["modified"]) + len(p["files"]["missing"])
        name = f"{p['namespace']}:{p['name']}" if p.get("namespace") and p["type"] == "maven" else p["name"]
        if not p.get("installed", True):
            name += " (declared)"
        lines.append(f"{p['type']:<9} {name:<40} {p['version']:<32} {p['arch'] or '-':<8} "
                     f"{changed or ''}")
    return lines


def _layer_index(document: dict[str, Any]) -> dict[str, int]:
    """Layer digest -> its position (the tables' L column)."""
    return {layer["digest"]: i for i, layer in enumerate(document["image"]["layers"])}


def _secret_table(document: dict[str, Any]) -> list[str]:
    secrets = document["secrets"]
    if not secrets:
        return ["secrets: none found"]
    layer_index = _layer_index(document)
    width = max(12, *(len(s["match"]) for s in secrets))
    lines = [f"{'SEVERITY':<9} {'RULE':<32} {'MATCH':<{width}} L  {'DELETED':<7} PATH:LINE"]
    for s in secrets:
        deleted = f"in L{layer_index.get(s['deleted_in_layer'], '?')}" if s["deleted_in_layer"] else ""
        # a secret in the image config outside any layer (Env, Labels, ...) has no layer: "-"
        layer = layer_index.get(s["layer"], "?") if s["layer"] else "-"
        lines.append(f"{s['severity']:<9} {s['rule']:<32} {s['match']:<{width}} {layer:<2} "
                     f"{deleted:<7} {s['path']}:{s['line']}")
    return lines


def _file_table(document: dict[str, Any]) -> list[str]:
    files = document["files"]
    if not files:
        return ["files: none found"]
    layer_index = _layer_index(document)
    lines = [f"{'MODE':<5} {'TYPE':<8} {'UID:GID':>11} {'SIZE':>10} {'SHA256':<12} L  PATH"]
    for f in files:
        target = f" -> {f['link']}" if f["link"] else ""
        lines.append(f"{f['mode']:<5} {f['type']:<8} {str(f['uid']) + ':' + str(f['gid']):>11} "
                     f"{f['size']:>10} {(f['sha256'] or '-')[:12]:<12} {layer_index.get(f['layer'], '?'):<2} "
                     f"{f['path']}{target}")
    return lines


_TABLES: Final = {"packages": _package_table, "secrets": _secret_table, "files": _file_table}


def render_summary(document: dict[str, Any], review: dict[str, Any]) -> str:
    """`show --summary`: what a reviewer looks at first, as text."""
    lines = [render_table(document, next_steps=False), "", "largest files:"]
    lines += [f"  {_size(f['size']):>10}  {f['path']}" for f in review["largest_files"]] or ["  none found"]
    lines.append("setuid/setgid files:")
    lines += [f"  {f['mode']} {f['uid']}:{f['gid']}  {f['path']}" for f in review["setuid_setgid"]] or ["  none found"]
    lines.append("world-writable (not sticky dirs):")
    lines += [f"  {f['mode']} {f['type']:<8} {f['path']}" for f in review["world_writable"]] or ["  none found"]
    return "\n".join(lines)


def render_images(rows: list[Any]) -> str:
    """`analyzerd images`: one line per stored image, newest first."""
    if not rows:
        return "no images analyzed yet: `analyzerd analyze REF` adds one"
    lines = [f"{'DIGEST':<19}  {'PLATFORM':<14} {'ANALYZED':<16} {'FILES':>8} {'PKGS':>6} {'SECRETS':>7}  REFERENCE"]
    for row in rows:
        lines.append(f"{row['manifest_digest'][:SHORT_DIGEST]:<19}  {image_platform(row):<14} "
                     f"{_when(row['analyzed_at']):<16} {row['file_count'] or 0:>8,} {row['packages']:>6,} "
                     f"{row['secrets']:>7,}  {row['reference'] or '-'}"
                     + ("" if row["analysis_status"] == "analyzed" else f"  ({row['analysis_status']})"))
    return "\n".join(lines)


def image_platform(row: Any) -> str:
    return "/".join(p for p in (row["os"], row["architecture"], row["variant"]) if p)


def image_row(row: Any) -> dict[str, Any]:
    """`images --json`: one stored image."""
    return {"reference": row["reference"], "manifest_digest": row["manifest_digest"], "platform": image_platform(row),
            "analysis_status": row["analysis_status"], "analyzed_at": row["analyzed_at"],
            "files": row["file_count"], "packages": row["packages"], "secrets": row["secrets"]}


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    import time
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))
