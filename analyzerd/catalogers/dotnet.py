""".NET: the ``<app>.deps.json`` file the .NET SDK writes beside a built application or
library, which lists every library the app was built with under "libraries", keyed
"Name/Version" ({"type": "package" | "project" | "reference"..., "sha512", "path", "hashPath"}).

Format: https://github.com/dotnet/sdk/blob/main/documentation/specs/runtime-configuration-file.md
(the deps.json section). As Syft 1.18 (dotnet-deps-cataloger) every library is a package,
the app's own "project" entry included, in key order; the NuGet package's SHA-512 (the
"sha512-<base64>" form the file records) is kept in the metadata.
"""

from __future__ import annotations

from typing import Any, Final

from .base import Cataloger, Package, ParseResult, load_json

__all__ = ["DOTNET_DEPS", "MAX_LIBRARIES", "parse_deps_json"]

#: Big ASP.NET apps list a few hundred libraries; more than this is not a real deps.json.
MAX_LIBRARIES: Final = 50_000
#: Strings kept in metadata are cut at this length (a sha512 entry is 95 characters).
MAX_FIELD: Final = 1024
#: Warnings per file: a garbage file must not produce one warning per entry.
MAX_WARNINGS: Final = 20


def _text(value: Any) -> str | None:
    return value[:MAX_FIELD] if isinstance(value, str) and value else None


def parse_deps_json(path: str, data: bytes) -> ParseResult:
    result = ParseResult()
    document, problem = load_json(path, data)
    if problem is not None:
        result.warnings.append(problem)
        return result
    libraries = document.get("libraries") if isinstance(document, dict) else None
    if not isinstance(libraries, dict):
        result.warnings.append(f"{path}: no \"libraries\" object; skipped")
        return result
    if len(libraries) > MAX_LIBRARIES:
        result.warnings.append(f"{path}: {len(libraries)} libraries, more than {MAX_LIBRARIES}; the rest are skipped")
    for key in sorted(libraries)[:MAX_LIBRARIES]:
        name, _, version = key.partition("/")
        library = libraries[key]
        if not name or not version or len(key) > MAX_FIELD or not isinstance(library, dict):
            if len(result.warnings) < MAX_WARNINGS:
                result.warnings.append(f"{path}: library {key[:200]!r} is not \"Name/Version\" with an object; skipped")
            continue
        metadata = {field: text for field, source in (("type", "type"), ("sha512", "sha512"), ("path", "path"))
                    if (text := _text(library.get(source)))}
        result.packages.append(Package(type="nuget", name=name, version=version, metadata=metadata))
    return result


DOTNET_DEPS = Cataloger(name="dotnet-deps", globs=("**/*.deps.json",), parse=parse_deps_json,
                        max_bytes=16 * 1024 * 1024)
