"""SBOM exports derived from the stored results (`show --json` documents): CycloneDX 1.6 JSON,
SPDX 2.3 JSON, a Syft-compatible JSON and Anchore Engine's image content format. Pure: a document in, a document out. Ordering and
identifiers are stable (derived from the manifest digest and sorted content), so exporting
the same image twice gives the same bytes apart from nothing at all."""

from __future__ import annotations

import datetime
import hashlib
import uuid
from typing import Any, Final

from . import __version__

__all__ = ["FORMATS", "anchore_json", "cyclonedx", "export", "spdx", "syft_json"]

#: A fixed namespace for the UUIDs and SPDX document namespaces derived from manifest digests.
_NAMESPACE: Final = uuid.UUID("5f0c6a3e-7d1e-4b57-9b5e-2f3d1c0a9e11")
_HASHES: Final = (("md5", "MD5", "MD5"), ("sha1", "SHA-1", "SHA1"), ("sha256", "SHA-256", "SHA256"))


def _packages(document: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(document.get("packages", []), key=lambda p: (p["purl"], p["location"]))


def _image_name(document: dict[str, Any]) -> str:
    reference = document["image"].get("reference") or document["image"]["manifest_digest"]
    return reference.split("@")[0]


def _timestamp(document: dict[str, Any]) -> str:
    """When the image was analyzed (so the same stored result exports to the same bytes)."""
    seconds = document["image"].get("analyzed_at") or 0
    return datetime.datetime.fromtimestamp(float(seconds), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cyclonedx(document: dict[str, Any], *, files: bool = False) -> dict[str, Any]:
    image = document["image"]
    digest = image["manifest_digest"]
    components: list[dict[str, Any]] = []
    for index, p in enumerate(_packages(document)):
        component: dict[str, Any] = {
            "type": "library", "bom-ref": f"pkg-{index}", "name": p["name"], "version": p["version"],
            "purl": p["purl"],
            "properties": [{"name": "analyzerd:layer", "value": p["layer"]},
                           {"name": "analyzerd:location", "value": p["location"]},
                           {"name": "analyzerd:installed", "value": str(p.get("installed", True)).lower()}],
        }
        if p.get("namespace"):
            component["group"] = p["namespace"]
        if p.get("license"):
            component["licenses"] = [{"license": {"name": p["license"]}}]
        sha1 = (p.get("metadata") or {}).get("sha1")
        if sha1:
            component["hashes"] = [{"alg": "SHA-1", "content": sha1}]
        components.append(component)
    if files:
        for index, f in enumerate(sorted(document.get("files", []), key=lambda f: f["path"])):
            if f["type"] not in ("file", "hardlink") or not f.get("sha256"):
                continue
            components.append({"type": "file", "bom-ref": f"file-{index}", "name": f["path"],
                               "hashes": [{"alg": alg, "content": f[key]} for key, alg, _ in _HASHES if f.get(key)]})
    return {
        "bomFormat": "CycloneDX", "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid5(_NAMESPACE, digest)}", "version": 1,
        "metadata": {
            "timestamp": _timestamp(document),
            "tools": {"components": [{"type": "application", "name": "analyzerd", "version": __version__}]},
            "component": {"type": "container", "bom-ref": "image", "name": _image_name(document),
                          "version": digest},
        },
        "components": components,
        "dependencies": [{"ref": "image", "dependsOn": [c["bom-ref"] for c in components if c["type"] == "library"]}],
    }


def spdx(document: dict[str, Any], *, owned_files: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """``owned_files``: purl -> paths its package database lists, for package CONTAINS file
    relationships (files the image has)."""
    image = document["image"]
    digest = image["manifest_digest"]
    packages = [{"SPDXID": "SPDXRef-Image", "name": _image_name(document), "versionInfo": digest,
                 "downloadLocation": "NOASSERTION", "filesAnalyzed": False, "primaryPackagePurpose": "CONTAINER",
                 "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION"}]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": "SPDXRef-Image"}]
    ids: dict[str, str] = {}
    for index, p in enumerate(_packages(document)):
        spdx_id = f"SPDXRef-Package-{index}"
        ids.setdefault(p["purl"], spdx_id)
        packages.append({
            "SPDXID": spdx_id, "name": p["name"], "versionInfo": p["version"], "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False, "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION", "sourceInfo": f"found in {p['location']} (layer {p['layer']})",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": p["purl"]}],
        })
        relationships.append({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS",
                              "relatedSpdxElement": spdx_id})
    files = []
    file_ids: dict[str, str] = {}
    for index, f in enumerate(sorted(document.get("files", []), key=lambda f: f["path"])):
        if f["type"] not in ("file", "hardlink") or not f.get("sha1"):
            continue
        spdx_id = f"SPDXRef-File-{index}"
        file_ids[f["path"]] = spdx_id
        files.append({"SPDXID": spdx_id, "fileName": "." + f["path"],
                      "checksums": [{"algorithm": name, "checksumValue": f[key]} for key, _, name in _HASHES if f.get(key)],
                      "licenseConcluded": "NOASSERTION", "copyrightText": "NOASSERTION"})
    by_id = {p["SPDXID"]: p for p in packages}
    sha1_of = {f["SPDXID"]: next(c["checksumValue"] for c in f["checksums"] if c["algorithm"] == "SHA1")
               for f in files}
    for purl, paths in sorted((owned_files or {}).items()):
        if purl not in ids:
            continue
        contained = sorted({file_ids[path] for path in paths if path in file_ids})
        if not contained:
            continue
        for file_id in contained:
            relationships.append({"spdxElementId": ids[purl], "relationshipType": "CONTAINS",
                                  "relatedSpdxElement": file_id})
        # a package with files is "files analyzed", with the verification code SPDX defines:
        # SHA-1 of its files' SHA-1s, sorted and concatenated
        package = by_id[ids[purl]]
        package["filesAnalyzed"] = True
        package["packageVerificationCode"] = {"packageVerificationCodeValue": hashlib.sha1(
            "".join(sorted(sha1_of[f] for f in contained)).encode()).hexdigest()}
    return {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": _image_name(document),
        "documentNamespace": f"https://spdx.org/spdxdocs/analyzerd/{uuid.uuid5(_NAMESPACE, digest)}",
        "creationInfo": {"created": _timestamp(document), "creators": [f"Tool: analyzerd-{__version__}"]},
        "packages": packages, "files": files, "relationships": relationships,
    }


_SYFT_TYPES: Final = {"pypi": "python", "npm": "npm", "gem": "gem", "maven": "java-archive", "golang": "go-module",
                      "cargo": "rust-crate", "composer": "php-composer", "nuget": "dotnet", "deb": "deb",
                      "apk": "apk", "rpm": "rpm"}


#: Go's os.FileMode bits, which Syft writes: stereoscope's file.NewMetadata keeps the tar
#: header's FileInfo(), and syftjson's toFileMetadataEntry writes
#: strconv.Atoi(fmt.Sprintf("%o", metadata.Mode())) (anchore/syft v1.18.1)
_GO_MODE_SYMLINK: Final = 1 << 27
_GO_MODE_DEVICE: Final = 1 << 26
_GO_MODE_NAMED_PIPE: Final = 1 << 25
_GO_MODE_SETUID: Final = 1 << 23
_GO_MODE_SETGID: Final = 1 << 22
_GO_MODE_CHAR_DEVICE: Final = 1 << 21
_GO_MODE_STICKY: Final = 1 << 20
#: Go's ModeDir (1 << 31) is left out: Syft before 1.27.1 (PyPI's newest is 1.18.1) reads a
#: mode back only if its octal digits, as a decimal number, fit an int32 (safeFileModeConvert),
#: so `syft convert` refuses the directory modes `syft scan` writes (20000000755: "out of the
#: range that int32 can represent") and reads them as 0; the entry's type says it is a directory.
_GO_TYPE_BITS: Final = {"symlink": _GO_MODE_SYMLINK, "fifo": _GO_MODE_NAMED_PIPE,
                        "block": _GO_MODE_DEVICE, "char": _GO_MODE_DEVICE | _GO_MODE_CHAR_DEVICE}
_SYFT_FILE_TYPES: Final = {"file": "RegularFile", "hardlink": "HardLink", "symlink": "SymbolicLink",
                           "dir": "Directory", "char": "CharacterDevice", "block": "BlockDevice", "fifo": "FIFONode"}


def syft_mode(mode: str, kind: str) -> int:
    """A file's mode as Syft's JSON holds it: Go's os.FileMode (type bits and setuid, setgid,
    sticky as Go numbers them) written in octal and read as a decimal number, so 0755 is 755,
    a setuid file 40000755, a symlink 1000000777, /tmp 4000777 (without Go's directory bit,
    which Syft cannot read back)."""
    bits = int(mode, 8)
    go = (bits & 0o777) | _GO_TYPE_BITS.get(kind, 0)
    for unix, flag in ((0o4000, _GO_MODE_SETUID), (0o2000, _GO_MODE_SETGID), (0o1000, _GO_MODE_STICKY)):
        if bits & unix:
            go |= flag
    return int(f"{go:o}")


def syft_json(document: dict[str, Any]) -> dict[str, Any]:
    """The parts of Syft's JSON that tools read: artifacts, files, source, distro."""
    image = document["image"]
    artifacts = [{
        "id": f"pkg-{index}", "name": p["name"], "version": p["version"], "type": _SYFT_TYPES.get(p["type"], p["type"]),
        "foundBy": "analyzerd", "purl": p["purl"],
        "locations": [{"path": p["location"], "layerID": p["layer"]}],
        "licenses": [{"value": p["license"]}] if p.get("license") else [],
        "language": "", "cpes": [], "metadataType": "", "metadata": {},
    } for index, p in enumerate(_packages(document))]
    files = [{
        "id": f"file-{index}", "location": {"path": f["path"], "layerID": f["layer"]},
        "metadata": {"mode": syft_mode(f["mode"], f["type"]), "type": _SYFT_FILE_TYPES.get(f["type"], f["type"]),
                     **({"linkDestination": f["link"]} if f["link"] else {}),
                     "userID": f["uid"], "groupID": f["gid"], "mimeType": "",
                     "size": f["size"] if f["type"] == "file" else 0},
        "digests": [{"algorithm": key, "value": f[key]} for key, _, _ in _HASHES if f.get(key)],
    } for index, f in enumerate(sorted(document.get("files", []), key=lambda f: f["path"]))]
    distro = image.get("distro") or {}
    return {
        "artifacts": artifacts, "artifactRelationships": [], "files": files,
        "source": {"id": image["manifest_digest"], "name": _image_name(document), "version": image["manifest_digest"],
                   "type": "image", "metadata": {"userInput": image.get("reference"),
                                                 "manifestDigest": image["manifest_digest"],
                                                 "layers": [{"digest": layer["digest"]} for layer in image["layers"]]}},
        "distro": {"id": distro.get("id"), "versionID": distro.get("version_id"), "name": distro.get("name")},
        "descriptor": {"name": "analyzerd", "version": __version__},
        "schema": {"version": "16.0.0", "url": "https://raw.githubusercontent.com/anchore/syft/main/schema/json/"},
    }


#: Anchore's content types by package type (its API: GET /images/{digest}/content/{type})
_ANCHORE_TYPES: Final = {"deb": "os", "apk": "os", "rpm": "os", "pypi": "python", "npm": "npm", "gem": "gem",
                         "maven": "java", "golang": "go", "cargo": "binary", "composer": "binary", "nuget": "nuget"}
_ANCHORE_PACKAGE_TYPE: Final = {"deb": "dpkg", "apk": "APKG", "rpm": "rpm", "pypi": "python", "npm": "npm",
                                "gem": "gem", "maven": "java-jar", "golang": "go", "cargo": "rust",
                                "composer": "php", "nuget": "nuget"}


def anchore_json(document: dict[str, Any]) -> dict[str, Any]:
    """Anchore Engine's image content responses, one per content type (os, python, npm, gem,
    java, go, nuget, binary, files), as its API returns them, so its users can switch."""
    digest = document["image"]["manifest_digest"]
    content: dict[str, list[dict[str, Any]]] = {t: [] for t in ("os", "python", "npm", "gem", "java", "files")}
    for p in _packages(document):
        kind = _ANCHORE_TYPES.get(p["type"], "binary")
        entry: dict[str, Any] = {"package": p["name"], "version": p["version"],
                                 "type": _ANCHORE_PACKAGE_TYPE.get(p["type"], p["type"]),
                                 "location": (p.get("metadata") or {}).get("virtual_path") or p["location"],
                                 "license": p.get("license") or "Unknown", "licenses": [p["license"]] if p.get("license") else [],
                                 "origin": p.get("maintainer") or p.get("namespace") or "N/A", "purl": p["purl"]}
        if kind == "os":
            entry["size"] = str(p.get("installed_size") or 0)
            entry["sourcepkg"] = (p.get("source") or {}).get("name") or p["name"]
        if kind == "java":
            entry["maven-version"] = p["version"]
            entry["implementation-version"] = ((p.get("metadata") or {}).get("manifest") or {}).get(
                "Implementation-Version", "N/A")
        content.setdefault(kind, []).append(entry)
    for f in sorted(document.get("files", []), key=lambda f: f["path"]):
        content["files"].append({"filename": f["path"], "type": f["type"], "mode": int(f["mode"], 8),
                                 "uid": f["uid"], "gid": f["gid"], "size": f["size"], "linkdest": f["link"],
                                 "sha256": f["sha256"]})
    return {kind: {"content_type": kind, "imageDigest": digest, "content": entries}
            for kind, entries in content.items()}


FORMATS: Final = ("cyclonedx-json", "spdx-json", "syft-json", "anchore-json")


def export(document: dict[str, Any], fmt: str, *, files: bool = False,
           owned_files: dict[str, list[str]] | None = None) -> dict[str, Any]:
    if fmt == "cyclonedx-json":
        return cyclonedx(document, files=files)
    if fmt == "spdx-json":
        return spdx(document, owned_files=owned_files)
    if fmt == "syft-json":
        return syft_json(document)
    if fmt == "anchore-json":
        return anchore_json(document)
    raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
