"""Alpine packages: /lib/apk/db/installed (apk's "installed database": records of
"K:value" lines separated by blank lines; F: a directory, R: a file in it, Z: that file's
checksum, "Q1" + base64 SHA-1)."""

from __future__ import annotations

import base64
import binascii

from .base import Cataloger, OwnedFile, Package, ParseResult, looks_binary

__all__ = ["APK", "parse_apk"]


def _checksum(value: str) -> tuple[str | None, str | None]:
    if value.startswith("Q1"):
        try:
            return base64.b64decode(value[2:]).hex(), "sha1"
        except (binascii.Error, ValueError):
            return None, None
    if value.startswith("Q2"):
        try:
            return base64.b64decode(value[2:]).hex(), "sha256"
        except (binascii.Error, ValueError):
            return None, None
    return None, None


def _package(fields: dict[str, str], files: list[OwnedFile]) -> Package:
    size = fields.get("I", "")
    return Package(
        type="apk", name=fields["P"], version=fields["V"], arch=fields.get("A") or None,
        source_name=fields.get("o") or fields["P"], source_version=fields["V"],
        license=fields.get("L") or None, maintainer=fields.get("m") or None,
        installed_size=int(size) if size.isdigit() else None, files=files,
        metadata={k: fields[k] for k in ("c", "t", "U", "D") if k in fields},
    )


def parse_apk(path: str, data: bytes) -> ParseResult:
    result = ParseResult()
    text = str(data, "utf-8", "replace")
    if looks_binary(text):
        result.warnings.append(f"{path}: binary data, not an apk database; skipped")
        return result
    records: list[tuple[dict[str, str], list[OwnedFile]]] = []
    fields: dict[str, str] = {}
    files: list[OwnedFile] = []
    folder = ""
    for line in text.splitlines() + [""]:
        if not line.strip():
            if fields or files:
                records.append((fields, files))
            fields, files, folder = {}, [], ""
            continue
        key, sep, value = line.partition(":")
        if not sep or len(key) != 1:
            continue
        if key == "F":
            folder = value.strip("/")
        elif key == "R":
            files.append(OwnedFile("/" + (f"{folder}/" if folder else "") + value))
        elif key == "Z" and files and files[-1].digest is None:
            digest, algorithm = _checksum(value)
            files[-1] = OwnedFile(files[-1].path, digest, algorithm)
        elif key not in fields:
            fields[key] = value
    for index, (fields, files) in enumerate(records):
        if not fields.get("P") or not fields.get("V"):
            result.warnings.append(f"{path}: record {index + 1} has no package name or version (P:, V:); skipped")
            continue
        result.packages.append(_package(fields, files))
    return result


APK = Cataloger(name="apk-db", globs=("/lib/apk/db/installed",), parse=parse_apk, max_bytes=64 * 1024 * 1024)
