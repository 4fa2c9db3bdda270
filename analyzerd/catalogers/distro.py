"""The distribution: /etc/os-release (or /usr/lib/os-release), else the release files of
Debian, Alpine and Red Hat derivatives. Each file is parsed on its own; the image takes
the best one it sees (see ``DISTRO_PRIORITY``)."""

from __future__ import annotations

import re
import shlex
from typing import Final

from .base import Cataloger, Distro, ParseResult

__all__ = ["DISTRO", "DISTRO_PRIORITY", "parse_distro_file"]

#: The first of these an image has decides its distro.
DISTRO_PRIORITY: Final = ("/etc/os-release", "/usr/lib/os-release", "/etc/alpine-release",
                          "/etc/debian_version", "/etc/redhat-release")
_REDHAT: Final = re.compile(r"^(?P<name>.+?) release (?P<version>[0-9][0-9.]*)")
_REDHAT_IDS: Final = {"red hat enterprise linux": "rhel", "centos linux": "centos", "centos stream": "centos",
                      "fedora": "fedora", "rocky linux": "rocky", "almalinux": "almalinux",
                      "oracle linux server": "ol"}


def _os_release(text: str) -> Distro | None:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value)
            fields[key.strip()] = parts[0] if parts else ""
        except ValueError:
            fields[key.strip()] = value.strip().strip("\"'")
    if not fields.get("ID"):
        return None
    return Distro(id=fields["ID"].lower(), version_id=fields.get("VERSION_ID") or None,
                  codename=fields.get("VERSION_CODENAME") or None,
                  id_like=tuple(fields.get("ID_LIKE", "").split()),
                  pretty_name=fields.get("PRETTY_NAME") or None)


def parse_distro_file(path: str, data: bytes) -> ParseResult:
    text = str(data, "utf-8", "replace")
    distro: Distro | None = None
    if path.endswith("os-release"):
        distro = _os_release(text)
    elif path == "/etc/alpine-release":
        version = text.strip().split()[0] if text.strip() else None
        distro = Distro(id="alpine", version_id=version)
    elif path == "/etc/debian_version":
        version = text.strip()
        # "12.4" is Debian 12; "bookworm/sid" (testing) has no number
        major = version.split(".")[0] if version[:1].isdigit() else None
        distro = Distro(id="debian", version_id=major)
    elif path == "/etc/redhat-release":
        match = _REDHAT.match(text.strip())
        if match:
            name = match.group("name").lower()
            distro_id = next((v for k, v in _REDHAT_IDS.items() if name.startswith(k)), "rhel")
            distro = Distro(id=distro_id, version_id=match.group("version"))
    result = ParseResult(distro=distro)
    if distro is None:
        result.warnings.append(f"{path}: no distribution identified")
    return result


DISTRO = Cataloger(name="distro", globs=DISTRO_PRIORITY, parse=parse_distro_file, max_bytes=64 * 1024)
