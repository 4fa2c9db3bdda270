"""Package URLs (https://github.com/package-url/purl-spec), written as Syft writes them."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

from .base import Distro, Package

__all__ = ["pep503_name", "purl"]

_PEP503_SEPARATORS: Final = re.compile(r"[-_.]+")

# os-release IDs whose purl namespace differs from the ID
_NAMESPACES: Final = {"rhel": "redhat", "sles": "suse", "opensuse-leap": "opensuse", "ol": "oracle"}


def pep503_name(name: str) -> str:
    """PyPI's normalized project name (PEP 503), which the purl spec asks for."""
    return _PEP503_SEPARATORS.sub("-", name).lower()


def _encode(value: str) -> str:
    return quote(value, safe="")


def purl(package: Package, distro: Distro | None) -> str:
    qualifiers: list[tuple[str, str]] = []
    namespace = ""
    if package.type in ("deb", "apk", "rpm"):
        namespace = _NAMESPACES.get(distro.id, distro.id) if distro else {"deb": "debian", "apk": "alpine"}.get(
            package.type, "")
        if package.arch:
            qualifiers.append(("arch", package.arch))
        if package.type == "rpm" and package.epoch is not None:
            qualifiers.append(("epoch", str(package.epoch)))
        if package.type == "rpm" and package.metadata.get("source_rpm"):
            qualifiers.append(("upstream", package.metadata["source_rpm"]))
        elif package.source_name and package.source_name != package.name:
            upstream = package.source_name
            if package.source_version and package.source_version != package.version:
                upstream += "@" + package.source_version
            qualifiers.append(("upstream", upstream))
        if distro is not None:
            qualifiers.append(("distro", f"{distro.id}-{distro.version_id}" if distro.version_id else distro.id))
    name, version = package.name, package.version
    if package.type == "rpm" and package.epoch is not None:
        version = version.partition(":")[2] or version  # the epoch is a qualifier
    subpath = ""
    if package.namespace:
        namespace = package.namespace
    elif package.type == "maven":
        namespace = name  # no groupId known: Syft repeats the artifactId
    elif package.type == "golang":
        namespace, name, subpath = _go_parts(name)
        if name == "stdlib" and not namespace:
            version = version.removeprefix("go")
    elif "/" in name and package.type in ("npm", "composer"):
        namespace, _, name = name.rpartition("/")
    if package.type == "pypi":
        name = pep503_name(name)
    text = f"pkg:{package.type}/"
    if namespace:
        text += "/".join(_encode(part) for part in namespace.split("/")) + "/"
    text += _encode(name)
    if version:
        text += "@" + quote(version, safe="()")  # "(devel)" stays readable, as Syft writes it
    if qualifiers:
        text += "?" + "&".join(f"{k}={_encode(v)}" for k, v in qualifiers)
    if subpath:
        text += "#" + "/".join(_encode(part) for part in subpath.split("/"))
    return text


def _go_parts(module: str) -> tuple[str, str, str]:
    """A Go module path as Syft splits it: two elements of namespace, then the name, and the
    rest as a subpath ("github.com/cespare/xxhash/v2" -> "github.com/cespare", "xxhash", "v2")."""
    fields = module.split("/")
    if len(fields) == 1:
        return "", fields[0], ""
    if len(fields) == 2:
        return fields[0], fields[1], ""
    return "/".join(fields[:2]), fields[2], "/".join(fields[3:])
