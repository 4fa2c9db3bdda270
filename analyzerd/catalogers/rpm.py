"""RPM packages from the rpm database the image carries, in any of its three formats
(Berkeley DB ``Packages``, NDB ``Packages.db``, ``rpmdb.sqlite``), parsed without librpm
(``rpmdb.py``). These files can be tens of MB: the layer analyzer spools them to tmp_dir
and hands the parser a memory map."""

from __future__ import annotations

import re
from typing import Final

from .base import Cataloger, OwnedFile, Package, ParseResult
from .rpmdb import RpmdbError, RpmPackage, parse_rpmdb

__all__ = ["RPM", "parse_rpm", "rpm_package"]

_SRPM: Final = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+-[^-]+)\.(?:no)?src\.rpm$")


def rpm_package(rpm: RpmPackage) -> Package:
    """Version as rpm and Syft print it: [epoch:]version-release."""
    version = f"{rpm.version}-{rpm.release}"
    if rpm.epoch is not None:
        version = f"{rpm.epoch}:{version}"
    source = _SRPM.match(rpm.source_rpm or "")
    algorithm = rpm.digest_algorithm
    return Package(
        type="rpm", name=rpm.name, version=version, arch=rpm.arch or None, epoch=rpm.epoch,
        source_name=source.group("name") if source else None,
        source_version=source.group("version") if source else None,
        license=rpm.license or None, vendor=rpm.vendor or None, installed_size=rpm.size or None,
        files=[OwnedFile(f.path, f.digest or None, algorithm if f.digest else None) for f in rpm.files],
        metadata={"source_rpm": rpm.source_rpm} if rpm.source_rpm else {},
    )


def parse_rpm(path: str, data: bytes) -> ParseResult:
    try:
        packages, warnings = parse_rpmdb(data)
    except RpmdbError as exc:
        return ParseResult(warnings=[f"{path}: not a readable rpm database: {exc}"])
    return ParseResult(packages=[rpm_package(p) for p in packages], warnings=[f"{path}: {w}" for w in warnings])


RPM = Cataloger(
    name="rpm-db",
    globs=tuple(f"{directory}/{name}" for directory in ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
                for name in ("Packages", "Packages.db", "rpmdb.sqlite")),
    parse=parse_rpm,
    max_bytes=512 * 1024 * 1024,
)
