"""OCI and Docker manifest formats: media types, parsing, platform choice. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from .errors import ManifestError, PlatformNotFoundError
from .model import Descriptor, Platform

__all__ = [
    "ACCEPT_MANIFESTS",
    "Index",
    "Manifest",
    "MAX_MANIFEST_SIZE",
    "DIGEST_HEX_LENGTHS",
    "MAX_CONFIG_SIZE",
    "parse_manifest",
    "platform_matches",
    "select_platform",
    "validate_digest",
]

OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1: Final = ("application/vnd.docker.distribution.manifest.v1+json",
                         "application/vnd.docker.distribution.manifest.v1+prettyjws")
ACCEPT_MANIFESTS: Final = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

#: The distribution spec lets registries refuse manifests over 4 MiB; so do we.
MAX_MANIFEST_SIZE: Final = 4 * 1024 * 1024
#: Image configs hold history and env: a few KiB, rarely 1 MiB.
MAX_CONFIG_SIZE: Final = 8 * 1024 * 1024
#: More layers than overlayfs can stack (128 on most kernels) is not a real image.
MAX_LAYERS: Final = 1000

#: The image spec's registered algorithms and the length of their lowercase-hex encoding.
#: Only these are accepted: a blob is trusted only after its bytes hash to its digest, and
#: these are the algorithms analyzerd can compute (hashlib).
DIGEST_HEX_LENGTHS: Final = {"sha256": 64, "sha512": 128}
#: The image spec's encoded part is hex for every registered algorithm (lowercase only).
_LOWER_HEX: Final = frozenset("0123456789abcdef")
#: A refused digest is quoted in the error only this far (a sha512 digest and some more):
#: it may be megabytes of hostile text.
_MAX_QUOTED_DIGEST: Final = 256


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True, slots=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def validate_digest(digest: object, where: str) -> str:
    """``digest`` when it is ``algorithm:hex`` with a registered algorithm and exactly its
    length of lowercase hex; else ManifestError naming the digest and ``where`` it came from.

    Digests become URL paths (``/v2/NAME/blobs/DIGEST``) and file names (layout blobs, the
    layer cache): anything but hex there, such as ``sha256:/../../other/private/...``, is
    normalized by the URL library into another repository's path, fetched with this
    repository's credentials. So a digest is checked where it is parsed, before any use.
    """
    if not isinstance(digest, str):
        raise ManifestError(f"{where}: digest is not a string: {type(digest).__name__}")
    algorithm, colon, encoded = digest.partition(":")
    hex_length = DIGEST_HEX_LENGTHS.get(algorithm)
    if colon and hex_length is not None and len(encoded) == hex_length and set(encoded) <= _LOWER_HEX:
        return digest
    quoted = repr(digest[:_MAX_QUOTED_DIGEST]) + ("..." if len(digest) > _MAX_QUOTED_DIGEST else "")
    if not colon or hex_length is None:
        reason = f"not algorithm:hex with a supported algorithm ({', '.join(DIGEST_HEX_LENGTHS)})"
    else:
        reason = f"{algorithm} needs exactly {hex_length} lowercase hex digits"
    raise ManifestError(f"{where}: invalid digest {quoted}: {reason}")


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: descriptor is not an object")
    digest, size, media_type = raw.get("digest"), raw.get("size"), raw.get("mediaType", "")
    if digest is None:
        raise ManifestError(f"{where}: descriptor without a digest")
    digest = validate_digest(digest, where)
    if not isinstance(size, int) or size < 0:
        raise ManifestError(f"{where}: descriptor {digest} without a valid size")
    platform = None
    plat = raw.get("platform")
    if isinstance(plat, dict) and isinstance(plat.get("os"), str) and isinstance(plat.get("architecture"), str):
        platform = Platform(plat["os"], plat["architecture"], plat.get("variant") or None)
    urls = raw.get("urls") or ()
    return Descriptor(media_type=str(media_type), digest=digest, size=size, platform=platform,
                      urls=tuple(u for u in urls if isinstance(u, str)))


def parse_manifest(data: bytes, content_type: str | None, where: str) -> Manifest | Index:
    """Parse a manifest or index; ``where`` names it in errors (the reference)."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ManifestError(f"{where}: manifest is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: manifest is not a JSON object")
    media_type = doc.get("mediaType") or (content_type or "").split(";")[0].strip()
    if media_type in DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise ManifestError(f"{where}: Docker schema 1 manifests are deprecated and not supported; "
                            "push the image again with a current client to get schema 2 or OCI")
    if "manifests" in doc and media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        entries = doc["manifests"]
        if not isinstance(entries, list):
            raise ManifestError(f"{where}: index 'manifests' is not a list")
        return Index(media_type or OCI_INDEX, tuple(_descriptor(entry, f"{where}: index entry {i}")
                                                    for i, entry in enumerate(entries)))
    if "config" not in doc or "layers" not in doc:
        raise ManifestError(f"{where}: manifest of type {media_type or 'unknown'} has no config or layers")
    layers = doc["layers"]
    if not isinstance(layers, list):
        raise ManifestError(f"{where}: manifest 'layers' is not a list")
    if len(layers) > MAX_LAYERS:
        raise ManifestError(f"{where}: {len(layers)} layers exceed the limit of {MAX_LAYERS}")
    for layer in layers:
        if isinstance(layer, dict) and "+encrypted" in str(layer.get("mediaType", "")):
            raise ManifestError(f"{where}: layer {layer.get('digest')} is encrypted "
                                f"({layer.get('mediaType')}); analyzerd cannot read encrypted layers")
    return Manifest(media_type or OCI_MANIFEST, _descriptor(doc["config"], f"{where}: config"),
                    tuple(_descriptor(layer, f"{where}: layer {i}") for i, layer in enumerate(layers)))


def _normalize_arch(platform: Platform) -> Platform:
    """containerd's normalization: arm64 means v8; amd64 has no variant that matters."""
    arch, variant = platform.architecture, platform.variant
    if arch in ("aarch64", "arm64"):
        return Platform(platform.os, "arm64", None if variant in (None, "v8") else variant)
    if arch in ("x86_64", "x86-64", "amd64"):
        return Platform(platform.os, "amd64", None if variant in (None, "v1") else variant)
    if arch == "arm" and variant is None:
        return Platform(platform.os, "arm", "v7")
    return platform


def select_platform(index: Index, want: Platform, where: str) -> Descriptor:
    """The index entry for ``want``; the error lists what the index has."""
    target = _normalize_arch(want)
    for entry in index.manifests:
        if entry.platform is not None and _normalize_arch(entry.platform) == target:
            return entry
    available = ", ".join(str(m.platform) for m in index.manifests
                          if m.platform is not None and m.platform.os != "unknown") or "none"
    raise PlatformNotFoundError(f"{where}: no image for platform {want} in the index "
                                f"(available: {available})")


def platform_matches(want: Platform, have: Platform) -> bool:
    """``have`` is ``want`` as containerd compares them (arm64 is arm64/v8, ...)."""
    return _normalize_arch(want) == _normalize_arch(have)


def is_foreign(desc: Descriptor) -> bool:
    """Non-distributable layers (Windows base layers): registries usually do not hold them."""
    return "foreign" in desc.media_type or "nondistributable" in desc.media_type


def parse_config(data: bytes, where: str) -> dict[str, Any]:
    try:
        config = json.loads(data)
    except ValueError as exc:
        raise ManifestError(f"{where}: image config is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ManifestError(f"{where}: image config is not a JSON object")
    return config


def diff_ids(config: dict[str, Any]) -> list[str]:
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    return [d for d in ids if isinstance(d, str)] if isinstance(ids, list) else []
