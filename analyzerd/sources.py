"""Where images come from: a registry, or an OCI image layout on disk.

Every source resolves a reference to one platform's manifest and config, and yields each
layer blob as a stream of bytes; the layer pipeline is the same for all of them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import aiofiles

from .errors import IntegrityError, ManifestError, NotFoundError
from .model import Descriptor, Platform
from .oci import MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Index, Manifest, parse_config, parse_manifest, select_platform
from .reference import ImageRef, LocalRef
from .registry.client import READ_SIZE, RegistryClient

__all__ = ["ImageSource", "OciLayoutSource", "RegistrySource", "ResolvedImage", "open_source"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedImage:
    manifest: Manifest
    manifest_digest: str
    index_digest: str | None
    config_digest: str
    config: dict[str, Any]
    platform: Platform


class ImageSource(Protocol):
    display: str

    async def resolve(self, platform: Platform) -> ResolvedImage: ...

    def layer_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]: ...


def _platform_of(config: dict[str, Any], fallback: Platform) -> Platform:
    os_name, arch = config.get("os"), config.get("architecture")
    if isinstance(os_name, str) and isinstance(arch, str) and os_name and arch:
        variant = config.get("variant")
        return Platform(os_name, arch, variant if isinstance(variant, str) and variant else None)
    return fallback


class _Resolver:
    """Index -> platform manifest -> config, over a source's raw fetches."""

    display: str

    async def _manifest_bytes(self, reference: str) -> tuple[bytes, str, str]:
        raise NotImplementedError

    async def _config_bytes(self, desc: Descriptor) -> bytes:
        raise NotImplementedError

    async def _top_reference(self) -> str:
        raise NotImplementedError

    async def resolve(self, platform: Platform) -> ResolvedImage:
        data, media_type, digest = await self._manifest_bytes(await self._top_reference())
        parsed = parse_manifest(data, media_type, self.display)
        index_digest = None
        if isinstance(parsed, Index):
            index_digest = digest
            entry = select_platform(parsed, platform, self.display)
            data, media_type, digest = await self._manifest_bytes(entry.digest)
            parsed = parse_manifest(data, media_type, self.display)
            if isinstance(parsed, Index):
                raise ManifestError(f"{self.display}: an index inside an index is not supported")
        config_bytes = await self._config_bytes(parsed.config)
        config = parse_config(config_bytes, self.display)
        return ResolvedImage(manifest=parsed, manifest_digest=digest, index_digest=index_digest,
                             config_digest=parsed.config.digest, config=config,
                             platform=_platform_of(config, platform))


class RegistrySource(_Resolver):
    def __init__(self, client: RegistryClient, ref: ImageRef) -> None:
        self._client = client
        self._ref = ref
        self.display = str(ref)

    async def _top_reference(self) -> str:
        return self._ref.manifest_reference

    async def _manifest_bytes(self, reference: str) -> tuple[bytes, str, str]:
        return await self._client.get_manifest(self._ref, reference)

    async def _config_bytes(self, desc: Descriptor) -> bytes:
        return await self._client.get_blob(self._ref, desc, MAX_CONFIG_SIZE)

    def layer_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        return self._client.blob_chunks(self._ref, desc)


class OciLayoutSource(_Resolver):
    """An OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/``)."""

    def __init__(self, ref: LocalRef) -> None:
        self._ref = ref
        self._dir = ref.path
        self.display = str(ref)

    def _blob_path(self, digest: str) -> str:
        algorithm, _, hex_ = digest.partition(":")
        if not algorithm.isalnum() or not hex_.isalnum():
            raise ManifestError(f"{self.display}: invalid digest {digest!r}")
        return os.path.join(self._dir, "blobs", algorithm, hex_)

    async def _read(self, path: str, limit: int, what: str) -> bytes:
        try:
            async with aiofiles.open(path, "rb") as f:
                data = await f.read(limit + 1)
        except FileNotFoundError:
            raise NotFoundError(f"{what} not found: {path} ({self.display})") from None
        except OSError as exc:
            raise ManifestError(f"{self.display}: cannot read {path}: {exc.strerror}") from None
        if len(data) > limit:
            raise ManifestError(f"{self.display}: {path} exceeds the limit of {limit} bytes")
        return data

    async def _top_reference(self) -> str:
        data = await self._read(os.path.join(self._dir, "index.json"), MAX_MANIFEST_SIZE, "OCI layout index")
        try:
            manifests = json.loads(data)["manifests"]
        except (ValueError, KeyError, TypeError):
            raise ManifestError(f"{self.display}: index.json is not an OCI image index") from None
        tag = self._ref.tag
        chosen = [m for m in manifests if isinstance(m, dict) and (
            tag is None or (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag)]
        if not chosen:
            raise NotFoundError(f"manifest unknown: {self.display}: no image tagged {tag!r} in the layout")
        if len(chosen) > 1 and tag is None:
            raise ManifestError(f"{self.display}: the layout holds {len(chosen)} images; name one as oci:DIR:TAG")
        digest = chosen[0].get("digest")
        if not isinstance(digest, str):
            raise ManifestError(f"{self.display}: index.json entry without a digest")
        return digest

    async def _manifest_bytes(self, reference: str) -> tuple[bytes, str, str]:
        data = await self._read(self._blob_path(reference), MAX_MANIFEST_SIZE, "manifest")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest != reference:
            raise IntegrityError(f"{self.display}: manifest blob {reference} hashes to {digest}")
        return data, "", digest

    async def _config_bytes(self, desc: Descriptor) -> bytes:
        data = await self._read(self._blob_path(desc.digest), MAX_CONFIG_SIZE, "config")
        if "sha256:" + hashlib.sha256(data).hexdigest() != desc.digest:
            raise IntegrityError(f"{self.display}: config blob {desc.digest} does not match its digest")
        return data

    async def layer_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        path = self._blob_path(desc.digest)
        if not os.path.exists(path):
            raise NotFoundError(f"blob unknown: layer {desc.digest} is missing from {self.display}")
        async with aiofiles.open(path, "rb") as f:
            while chunk := await f.read(READ_SIZE * 4):
                yield chunk


def open_source(ref: ImageRef | LocalRef, client: RegistryClient) -> ImageSource:
    if isinstance(ref, LocalRef):
        return OciLayoutSource(ref)
    return RegistrySource(client, ref)
