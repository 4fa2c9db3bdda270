"""Image references: ``[host[:port]/]repository[:tag][@algorithm:hex]``, and local sources.

Docker's rules: a first component with a "." or ":" in it, or "localhost", is a registry
host; otherwise the image is on Docker Hub (``docker.io``), where one-component names
live under ``library/``. Without tag or digest the tag is ``latest``.

Local sources use Syft's and skopeo's transport prefixes: ``oci:DIR[:TAG]`` is an OCI
image layout directory, ``docker-archive:FILE[:NAME:TAG]`` a ``docker save`` tarball.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

from .errors import InvalidReferenceError

__all__ = ["DOCKER_HUB", "ImageRef", "LocalRef", "canonical_source", "is_loopback_host", "parse_reference"]

DOCKER_HUB: Final = "docker.io"
_HUB_ALIASES: Final = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_COMPONENT: Final = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST: Final = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}")
_HOST: Final = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?")
MAX_REFERENCE_LENGTH: Final = 4096


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image in a registry."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def name(self) -> str:
        """registry/repository, no tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def manifest_reference(self) -> str:
        """What goes after /manifests/: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"


@dataclass(frozen=True, slots=True)
class LocalRef:
    """An image on local disk: an ``oci`` layout directory or a ``docker-archive`` file."""

    transport: str
    path: str
    tag: str | None = None

    def __str__(self) -> str:
        return f"{self.transport}:{self.path}" + (f":{self.tag}" if self.tag else "")


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1, with or without a port (Docker pulls these over HTTP)."""
    name = host
    if name.startswith("["):
        name = name[1:name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


#: Syft's and skopeo's names for sources analyzerd reads, and what they stand for here.
_SOURCE_ALIASES: Final = {"registry:": "", "docker://": "", "oci-dir:": "oci:"}
#: Their names for sources analyzerd does not read, and what to do instead.
_REFUSED_SOURCES: Final = {
    "docker:": "analyzerd reads registries and image files, not a container engine: "
               "`docker save IMAGE -o image.tar`, then analyze docker-archive:image.tar",
    "docker-daemon:": "analyzerd reads registries and image files, not a container engine: "
                      "`docker save IMAGE -o image.tar`, then analyze docker-archive:image.tar",
    "podman:": "analyzerd reads registries and image files, not a container engine: "
               "`podman save --format oci-dir -o DIR IMAGE`, then analyze oci:DIR",
    "containers-storage:": "analyzerd reads registries and image files, not container storage: "
                           "`podman save --format oci-dir -o DIR IMAGE`, then analyze oci:DIR",
    "oci-archive:": "unpack it first (`mkdir DIR && tar -xf FILE -C DIR`), then analyze oci:DIR",
    "dir:": "analyzerd analyzes container images, not directories",
    "file:": "analyzerd analyzes container images, not single files",
    "singularity:": "analyzerd analyzes OCI and Docker images, not Singularity images",
}
#: Prefixes that are Docker Hub images too: followed by a tag alone they are one (``registry:2``).
_ALSO_IMAGE_NAMES: Final = ("registry:", "docker:")
_SCHEME: Final = re.compile(r"([a-z][a-z-]*:(?://)?)(?!\d+(?:/|$))")


def canonical_source(text: str) -> str:
    """The reference as analyzerd names it, from Syft's or skopeo's source syntax
    (``registry:REF`` and ``docker://REF`` are ``REF``, ``oci-dir:DIR`` is ``oci:DIR``);
    a source analyzerd does not read raises InvalidReferenceError with what to do instead.
    ``registry:5000/app`` is a host and port, and ``docker:latest`` or ``registry:2`` an image
    and tag (Docker Hub has both), not a scheme."""
    text = text.strip()
    scheme = _SCHEME.match(text)
    if scheme is None:
        return text
    prefix = scheme.group(1)
    if prefix in _ALSO_IMAGE_NAMES and _TAG.fullmatch(text[len(prefix):]):
        return text
    if prefix in _SOURCE_ALIASES:
        return _SOURCE_ALIASES[prefix] + text[len(prefix):]
    if prefix in _REFUSED_SOURCES:
        raise InvalidReferenceError(f"invalid image reference {text[:200]!r}: analyzerd cannot read "
                                    f"{prefix.rstrip(':/')} sources", hint=_REFUSED_SOURCES[prefix])
    return text


def parse_reference(text: str) -> ImageRef | LocalRef:
    """Parse a user's image reference; raises InvalidReferenceError naming it."""
    text = text.strip()
    if not text or len(text) > MAX_REFERENCE_LENGTH:
        raise InvalidReferenceError(f"invalid image reference {text[:200]!r}: empty or too long")
    if text.startswith("oci:"):
        rest = text[4:]
        path, tag = rest, None
        head, sep, tail = rest.rpartition(":")
        if sep and "/" not in tail and tail:
            path, tag = head, tail
        if not path:
            raise InvalidReferenceError(f"invalid image reference {text!r}: oci: needs a directory")
        return LocalRef("oci", path, tag)
    if text.startswith("docker-archive:"):
        # docker-archive:FILE or docker-archive:FILE:REPO:TAG (skopeo's syntax)
        rest = text[len("docker-archive:"):]
        path, name = rest, None
        parts = rest.split(":")
        if len(parts) >= 3 and "/" not in parts[-1]:
            path, name = ":".join(parts[:-2]), ":".join(parts[-2:])
        if not path:
            raise InvalidReferenceError(f"invalid image reference {text!r}: docker-archive: needs a file")
        return LocalRef("docker-archive", path, name)

    remainder, _, digest = text.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise InvalidReferenceError(f"invalid image reference {text!r}: bad digest {digest!r}")
    first, slash, rest = remainder.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        if not _HOST.fullmatch(first):
            raise InvalidReferenceError(f"invalid image reference {text!r}: bad registry host {first!r}")
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, remainder
    tag = None
    last = path.rfind("/")
    colon = path.rfind(":")
    if colon > last:
        path, tag = path[:colon], path[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise InvalidReferenceError(f"invalid image reference {text!r}: bad tag {tag!r}")
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in path:
            path = "library/" + path
    if not path or not all(_COMPONENT.fullmatch(c) for c in path.split("/")):
        raise InvalidReferenceError(
            f"invalid image reference {text!r}: repository {path!r} must be lowercase "
            "components of letters, digits and separators"
        )
    if tag is None and not digest:
        tag = "latest"
    return ImageRef(registry, path, tag, digest.lower() if digest else None)
