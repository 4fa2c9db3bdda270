"""An image's packages, from the catalog entries of its layers and its merged filesystem.

Only what the image shows counts: a catalog file (a dpkg status, an apk database) is used
when the merged view still has that path *from that layer*; a later layer's copy replaces
it and a whiteout removes it, with its packages. Then each package's recorded file digests
(dpkg md5sums, apk Q1 SHA-1, rpm file digests) are compared with the files the image
actually has: modified and missing files are what no common tool reports.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Final

from ..catalogers.base import CatalogEntry, Claim, Distro, OwnedFile, Package
from ..catalogers.distro import DISTRO_PRIORITY
from ..catalogers.golang import go_sum_key
from ..catalogers.purl import purl
from ..catalogers.python import package_directory
from ..model import FileKind, FileRecord, LayerResult, VisibleFile

__all__ = ["FileCheck", "ImagePackage", "Inventory", "inventory"]

#: Symlinks followed while resolving a package's file path (as the kernel's ELOOP limit).
MAX_SYMLINK_HOPS: Final = 40
_CHECKED_ALGORITHMS: Final = {"md5": "md5", "sha1": "sha1", "sha256": "sha256"}


@dataclass(frozen=True, slots=True)
class FileCheck:
    path: str
    digest: str | None
    algorithm: str | None
    status: str  #: ok, modified, missing, unchecked (no digest, or one we do not compute)


@dataclass(slots=True)
class ImagePackage:
    package: Package
    purl: str
    location: str  #: the database file it was found in
    layer: int  #: index of the layer that wrote that file
    files: list[FileCheck] = field(default_factory=list)

    @property
    def modified(self) -> list[str]:
        return [f.path for f in self.files if f.status == "modified"]

    @property
    def missing(self) -> list[str]:
        return [f.path for f in self.files if f.status == "missing"]


@dataclass(slots=True)
class Inventory:
    distro: Distro | None
    packages: list[ImagePackage]


class _View:
    """Path lookups in the merged filesystem, through symlinked directories (usrmerge:
    a package's /bin/ls is the image's /usr/bin/ls)."""

    def __init__(self, visible: dict[str, VisibleFile]) -> None:
        self.records = visible

    def resolve(self, path: str) -> FileRecord | None:
        found = self.records.get(path)
        if found is not None:
            return found[1]
        parts = path.strip("/").split("/")
        current = ""
        hops = 0
        i = 0
        while i < len(parts):
            candidate = f"{current}/{parts[i]}"
            entry = self.records.get(candidate)
            if entry is not None and entry[1].kind is FileKind.SYMLINK and entry[1].link and i < len(parts) - 1:
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    return None
                target = entry[1].link
                base = target if target.startswith("/") else posixpath.join(current or "/", target)
                rest = "/".join(parts[i + 1:])
                parts = posixpath.normpath(posixpath.join(base, rest)).strip("/").split("/")
                current, i = "", 0
                continue
            current = candidate
            i += 1
        found = self.records.get(current)
        return found[1] if found is not None else None


def _check(owned: OwnedFile, view: _View) -> FileCheck:
    if not owned.digest:  # ownership only: nothing to compare
        return FileCheck(owned.path, None, None, "unchecked")
    record = view.resolve(owned.path)
    algorithm = _CHECKED_ALGORITHMS.get(owned.algorithm or "")
    if record is None:
        status = "missing"
    elif algorithm is None:  # a digest we do not compute
        status = "unchecked"
    elif record.kind is not FileKind.FILE and record.kind is not FileKind.HARDLINK:
        status = "modified"  # a directory, a symlink, a device where the package had a file
    else:
        actual = getattr(record, algorithm)
        status = "unchecked" if actual is None else "ok" if actual == owned.digest else "modified"
    return FileCheck(owned.path, owned.digest, owned.algorithm, status)


def _claims_of(package: Package, location: str, claims: dict[str, list[Claim]]) -> list[Claim]:
    """What files beside the package record say about it: dpkg's info/<name>[:arch].*,
    the RECORD, top_level.txt, ... in a Python package's .dist-info/.egg-info directory."""
    if package.type == "deb":
        return claims.get(package.name, []) + claims.get(f"{package.name}:{package.arch}", [])
    if package.type == "pypi" and not package.declared:
        return claims.get(package_directory(location), [])
    if package.type == "golang" and location.endswith("/go.mod"):
        return claims.get(go_sum_key(location, package.name, package.version), [])
    return []


def _owned_files(package: Package, mine: list[Claim]) -> list[OwnedFile]:
    """The package's own file list, merged with the claims' files and paths."""
    if not mine:
        return list(package.files)
    merged: dict[str, OwnedFile] = {f.path: f for f in package.files}
    for claim in mine:
        for owned in claim.files:
            merged[owned.path] = owned
    for claim in mine:
        for path in claim.paths:
            if path not in merged:
                merged[path] = OwnedFile(path)
    return list(merged.values())


def inventory(layers: list[LayerResult], visible: dict[str, VisibleFile]) -> Inventory:
    """``visible``: the merged view by path (archive.whiteout.merged_view)."""
    view = _View(visible)
    entries: list[tuple[int, CatalogEntry]] = []
    for index, layer in enumerate(layers):
        for entry in layer.catalog:
            shown = view.records.get(entry.path)
            if shown is not None and shown[0] == index and shown[1].kind is FileKind.FILE:
                entries.append((index, entry))
    distros = {entry.path: entry.result.distro for _, entry in entries if entry.result.distro is not None}
    distro = next((distros[p] for p in DISTRO_PRIORITY if p in distros), None)
    claims: dict[str, list[Claim]] = {}
    for _, entry in entries:
        for claim in entry.result.claims:
            claims.setdefault(claim.package, []).append(claim)
    packages: list[ImagePackage] = []
    for index, entry in entries:
        for package in entry.result.packages:
            mine = _claims_of(package, entry.path, claims)
            for claim in mine:
                package.metadata.update(claim.metadata)
            if package.type == "maven" and package.metadata.get("virtual_path", entry.path) == entry.path:
                # the archive itself (not one nested in it): its SHA-1 names it on Maven Central
                record = view.records[entry.path][1]
                package.metadata["sha1"] = record.sha1
            found = ImagePackage(package=package, purl=purl(package, distro), location=entry.path, layer=index)
            found.files = [_check(owned, view) for owned in _owned_files(package, mine)]
            packages.append(found)
    packages.sort(key=lambda p: (p.package.type, p.package.name, p.package.version, p.location))
    return Inventory(distro=distro, packages=packages)
