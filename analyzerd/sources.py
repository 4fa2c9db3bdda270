"""Where images come from: a registry, or an OCI image layout on disk.

Every source resolves a reference to one platform's manifest and config, and yields each
layer blob as a stream of bytes; the layer pipeline is the same for all of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import aiofiles

from .errors import IntegrityError, ManifestError, NotFoundError
from .model import Descriptor, Platform
from .oci import (MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Index, Manifest, diff_ids, is_foreign, parse_config,
                  parse_manifest, select_platform, validate_digest)
from .reference import ImageRef, LocalRef
from .registry.client import RegistryClient

__all__ = ["DockerArchiveSource", "ImageSource", "OciLayoutSource", "RegistrySource", "ResolvedImage",
           "open_source"]

#: Local files are read in 1 MiB pieces (disk reads are cheap; fewer loop iterations).
FILE_READ_SIZE: Final = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedImage:
    manifest: Manifest
    manifest_digest: str
    index_digest: str | None
    config_digest: str
    config: dict[str, Any]
    config_bytes: bytes
    platform: Platform


class ImageSource(Protocol):
    display: str
    #: blobs come over the network: worth keeping in the layer cache (local files are not)
    remote: bool
    #: looks up blobs already stored (image configs); None: always fetch
    known_blob: Callable[[str], Awaitable[bytes | None]] | None

    async def resolve(self, platform: Platform) -> ResolvedImage: ...

    def layer_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]: ...

    def skip_reason(self, desc: Descriptor) -> str | None:
        """Why this layer will not be read (a foreign layer not allowed), or None."""


def _platform_of(config: dict[str, Any], fallback: Platform) -> Platform:
    os_name, arch = config.get("os"), config.get("architecture")
    if isinstance(os_name, str) and isinstance(arch, str) and os_name and arch:
        variant = config.get("variant")
        return Platform(os_name, arch, variant if isinstance(variant, str) and variant else None)
    return fallback


class _Resolver:
    """Index -> platform manifest -> config, over a source's raw fetches."""

    display: str
    remote = False
    #: looks up blobs already stored (image configs), set by the analyzer
    known_blob: Callable[[str], Awaitable[bytes | None]] | None = None

    async def _manifest_bytes(self, reference: str) -> tuple[bytes, str, str]:
        raise NotImplementedError

    async def _config_bytes(self, desc: Descriptor) -> bytes:
        raise NotImplementedError

    async def _top_reference(self) -> str:
        raise NotImplementedError

    def skip_reason(self, desc: Descriptor) -> str | None:
        return None

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
        config_bytes = await self._known_config(parsed.config) or await self._config_bytes(parsed.config)
        config = parse_config(config_bytes, self.display)
        return ResolvedImage(manifest=parsed, manifest_digest=digest, index_digest=index_digest,
                             config_digest=parsed.config.digest, config=config, config_bytes=config_bytes,
                             platform=_platform_of(config, platform))

    async def _known_config(self, desc: Descriptor) -> bytes | None:
        """The config blob from earlier analyses (verified again), sparing a download."""
        if self.known_blob is None:
            return None
        data = await self.known_blob(desc.digest)
        if data is None or "sha256:" + hashlib.sha256(data).hexdigest() != desc.digest:
            return None
        return data


class RegistrySource(_Resolver):
    remote = True

    def __init__(self, client: RegistryClient, ref: ImageRef, *, allow_foreign_layers: bool = False) -> None:
        self._client = client
        self._ref = ref
        self._allow_foreign = allow_foreign_layers
        self.display = str(ref)

    def skip_reason(self, desc: Descriptor) -> str | None:
        if not is_foreign(desc):
            return None
        if not self._allow_foreign:
            return (f"layer {desc.digest}: non-distributable layer ({desc.media_type}) not analyzed; "
                    "set allow_foreign_layers: true to fetch it from its URLs")
        if not desc.urls:
            return f"layer {desc.digest}: non-distributable layer without URLs, not analyzed"
        return None

    async def _top_reference(self) -> str:
        return self._ref.manifest_reference

    async def _manifest_bytes(self, reference: str) -> tuple[bytes, str, str]:
        return await self._client.get_manifest(self._ref, reference)

    async def _config_bytes(self, desc: Descriptor) -> bytes:
        return await self._client.get_blob(self._ref, desc, MAX_CONFIG_SIZE)

    def layer_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        if is_foreign(desc) and desc.urls:
            return self._client.url_chunks(desc.urls[0], desc)
        return self._client.blob_chunks(self._ref, desc)


class _Files(Protocol):
    """Named files of a local image: a directory's, or a tar archive's members."""

    async def read(self, name: str, limit: int) -> bytes: ...

    def stream(self, name: str) -> AsyncIterator[bytes]: ...

    def exists(self, name: str) -> bool: ...


class _DirectoryFiles:
    def __init__(self, root: str, display: str) -> None:
        self._root, self._display = root, display

    def exists(self, name: str) -> bool:
        return os.path.isfile(os.path.join(self._root, name))

    async def read(self, name: str, limit: int) -> bytes:
        path = os.path.join(self._root, name)
        try:
            async with aiofiles.open(path, "rb") as f:
                data = await f.read(limit + 1)
        except FileNotFoundError:
            raise NotFoundError(f"{name} not found in {self._display}") from None
        except OSError as exc:
            raise ManifestError(f"{self._display}: cannot read {path}: {exc.strerror}") from None
        if len(data) > limit:
            raise ManifestError(f"{self._display}: {name} exceeds the limit of {limit} bytes")
        return data

    async def stream(self, name: str) -> AsyncIterator[bytes]:
        async with aiofiles.open(os.path.join(self._root, name), "rb") as f:
            while chunk := await f.read(FILE_READ_SIZE):
                yield chunk


#: Members of a docker-archive worth indexing; a hostile archive is not owed more.
MAX_ARCHIVE_MEMBERS: Final = 100_000


class _ArchiveFiles:
    """Members of an uncompressed tar file, read in place by offset: never unpacked."""

    def __init__(self, path: str, display: str) -> None:
        self._path, self._display = path, display
        self._members: dict[str, tuple[int, int]] | None = None

    def _index(self) -> dict[str, tuple[int, int]]:
        members: dict[str, tuple[int, int]] = {}
        try:
            with tarfile.open(self._path, "r:") as tar:  # headers only: tarfile seeks over data
                for info in tar:
                    if len(members) >= MAX_ARCHIVE_MEMBERS:
                        raise ManifestError(f"{self._display}: more than {MAX_ARCHIVE_MEMBERS} members")
                    if info.isreg():
                        members[info.name.lstrip("./")] = (info.offset_data, info.size)
        except FileNotFoundError:
            raise NotFoundError(f"{self._display}: no such file") from None
        except (tarfile.TarError, OSError) as exc:
            raise ManifestError(f"{self._display}: not a readable tar archive: {exc}") from None
        return members

    async def open(self) -> None:
        if self._members is None:
            self._members = await asyncio.to_thread(self._index)

    def size(self, name: str) -> int:
        return self._member(name)[1]

    def _member(self, name: str) -> tuple[int, int]:
        assert self._members is not None
        try:
            return self._members[name]
        except KeyError:
            raise NotFoundError(f"{name} not found in {self._display}") from None

    def exists(self, name: str) -> bool:
        return self._members is not None and name in self._members

    async def read(self, name: str, limit: int) -> bytes:
        offset, size = self._member(name)
        if size > limit:
            raise ManifestError(f"{self._display}: {name} exceeds the limit of {limit} bytes")
        async with aiofiles.open(self._path, "rb") as f:
            await f.seek(offset)
            return await f.read(size)

    async def stream(self, name: str) -> AsyncIterator[bytes]:
        offset, size = self._member(name)
        async with aiofiles.open(self._path, "rb") as f:
            await f.seek(offset)
            while size > 0:
                chunk = await f.read(min(FILE_READ_SIZE, size))
                if not chunk:
                    raise ManifestError(f"{self._display}: {name} is cut short")
                size -= len(chunk)
                yield chunk


def _blob_name(digest: str, display: str) -> str:
    algorithm, _, hex_ = validate_digest(digest, display).partition(":")
    return f"blobs/{algorithm}/{hex_}"


class OciLayoutSource(_Resolver):
    """An OCI image layout (``oci-layout``, ``index.json``, ``blobs/``): a directory, or
    the same inside a ``docker save`` archive (Docker 25 and later write one)."""

    def __init__(self, ref: LocalRef, files: _Files | None = None, tag_annotations: tuple[str, ...] = (
            "org.opencontainers.image.ref.name",)) -> None:
        self._ref = ref
        self._files = files or _DirectoryFiles(ref.path, str(ref))
        self._tag_annotations = tag_annotations
        self.display = str(ref)

    async def _top_reference(self) -> str:
        data = await self._files.read("index.json", MAX_MANIFEST_SIZE)
        try:
            manifests = json.loads(data)["manifests"]
        except (ValueError, KeyError, TypeError):
            raise ManifestError(f"{self.display}: index.json is not an OCI image index") from None
        tag = self._ref.tag
        chosen = [m for m in manifests if isinstance(m, dict) and (
            tag is None or any((m.get("annotations") or {}).get(key) in (tag, f"docker.io/library/{tag}",
                                                                         f"docker.io/{tag}")
                               for key in self._tag_annotations))]
        if not chosen:
            raise NotFoundError(f"manifest unknown: {self.display}: no image tagged {tag!r} in the layout")
        if len(chosen) > 1 and tag is None:
            raise ManifestError(f"{self.display}: the layout holds {len(chosen)} images; name one with :TAG")
        digest = chosen[0].get("digest")
        if not isinstance(digest, str):
            raise ManifestError(f"{self.display}: index.json entry without a digest")
        return digest

    async def _manifest_bytes(self, reference: str) -> tuple[bytes, str, str]:
        data = await self._files.read(_blob_name(reference, self.display), MAX_MANIFEST_SIZE)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest != reference:
            raise IntegrityError(f"{self.display}: manifest blob {reference} hashes to {digest}")
        return data, "", digest

    async def _config_bytes(self, desc: Descriptor) -> bytes:
        data = await self._files.read(_blob_name(desc.digest, self.display), MAX_CONFIG_SIZE)
        if "sha256:" + hashlib.sha256(data).hexdigest() != desc.digest:
            raise IntegrityError(f"{self.display}: config blob {desc.digest} does not match its digest")
        return data

    async def layer_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        name = _blob_name(desc.digest, self.display)
        if not self._files.exists(name):
            raise NotFoundError(f"blob unknown: layer {desc.digest} is missing from {self.display}")
        async for chunk in self._files.stream(name):
            yield chunk


class DockerArchiveSource:
    known_blob = None

    """A ``docker save`` tarball, read in place (seeks to members; never unpacked).

    Docker 25 and later write an OCI layout inside the archive: read as one. Older
    archives have only ``manifest.json`` (``Config``, ``RepoTags``, ``Layers``) and no
    manifest digest: the image is identified by its config digest (Docker's image ID),
    and each layer tar is verified against its ``diff_id``.
    """

    remote = False

    def __init__(self, ref: LocalRef) -> None:
        self._ref = ref
        self.display = str(ref)
        self._files = _ArchiveFiles(ref.path, self.display)
        self._layers: dict[str, str] = {}  # layer digest -> member name (legacy format)

    async def resolve(self, platform: Platform) -> ResolvedImage:
        await self._files.open()
        if self._files.exists("index.json") and self._files.exists("oci-layout"):
            self._oci = OciLayoutSource(self._ref, self._files, tag_annotations=(
                "io.containerd.image.name", "org.opencontainers.image.ref.name"))
            return await self._oci.resolve(platform)
        return await self._resolve_legacy(platform)

    async def _resolve_legacy(self, platform: Platform) -> ResolvedImage:
        try:
            entries = json.loads(await self._files.read("manifest.json", MAX_MANIFEST_SIZE))
            assert isinstance(entries, list)
        except (ValueError, AssertionError):
            raise ManifestError(f"{self.display}: manifest.json is not a docker save manifest") from None
        name = self._ref.tag
        chosen = [e for e in entries if isinstance(e, dict) and (name is None or name in (e.get("RepoTags") or []))]
        if not chosen:
            raise NotFoundError(f"manifest unknown: {self.display}: no image {name!r} in the archive")
        if len(chosen) > 1 and name is None:
            raise ManifestError(f"{self.display}: the archive holds {len(chosen)} images; name one as "
                                "docker-archive:FILE:REPO:TAG")
        entry = chosen[0]
        config_name, layer_names = entry.get("Config"), entry.get("Layers")
        if not isinstance(config_name, str) or not isinstance(layer_names, list):
            raise ManifestError(f"{self.display}: manifest.json entry without Config or Layers")
        config_bytes = await self._files.read(config_name, MAX_CONFIG_SIZE)
        config = parse_config(config_bytes, self.display)
        ids = diff_ids(config)
        if len(ids) != len(layer_names):
            raise ManifestError(f"{self.display}: {len(layer_names)} layers but {len(ids)} diff_ids in the config")
        layers = []
        for layer_name, diff_id in zip(layer_names, ids):
            size = self._files.size(layer_name)
            self._layers[diff_id] = layer_name
            layers.append(Descriptor(media_type="application/vnd.docker.image.rootfs.diff.tar",
                                     digest=diff_id, size=size))
        config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        config_desc = Descriptor(media_type="application/vnd.docker.container.image.v1+json",
                                 digest=config_digest, size=len(config_bytes))
        manifest = Manifest("application/vnd.docker.distribution.manifest.v2+json", config_desc, tuple(layers))
        return ResolvedImage(manifest=manifest, manifest_digest=config_digest, index_digest=None,
                             config_digest=config_digest, config=config, config_bytes=config_bytes,
                             platform=_platform_of(config, platform))

    def skip_reason(self, desc: Descriptor) -> str | None:
        return None

    def layer_chunks(self, desc: Descriptor) -> AsyncIterator[bytes]:
        if desc.digest in self._layers:
            return self._files.stream(self._layers[desc.digest])
        return self._oci.layer_chunks(desc)


def open_source(ref: ImageRef | LocalRef, client: RegistryClient, *,
                allow_foreign_layers: bool = False) -> ImageSource:
    if isinstance(ref, ImageRef):
        return RegistrySource(client, ref, allow_foreign_layers=allow_foreign_layers)
    if ref.transport == "docker-archive":
        return DockerArchiveSource(ref)
    return OciLayoutSource(ref)
