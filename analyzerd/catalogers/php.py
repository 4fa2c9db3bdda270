"""PHP Composer packages: ``vendor/composer/installed.json`` (what Composer installed) and
``composer.lock`` (what a project pins).

Formats (https://getcomposer.org/doc/01-basic-usage.md#commit-your-composer-lock-file-to-version-control,
https://getcomposer.org/doc/04-schema.md): installed.json is a JSON list of package objects
(Composer 1) or ``{"packages": [...], "dev": bool, "dev-package-names": [...]}`` (Composer 2);
composer.lock is ``{"packages": [...], "packages-dev": [...], ...}``. A package object has
name ("vendor/package"), version, license (a string or a list of alternatives), source and
dist ({type, url, reference[, shasum]}).

As Syft 1.18: installed.json gives every package it lists; composer.lock gives its
"packages" only (Syft leaves "packages-dev" out: they are not deployed). The name keeps
"vendor/package" (purl.py splits composer names at the "/"); a list of licenses is an
alternative ("the package is available under any of them"), so it is joined with " OR ".
"""

from __future__ import annotations

from typing import Any, Final

from .base import Cataloger, Package, ParseResult, load_json

__all__ = ["COMPOSER_INSTALLED", "COMPOSER_LOCK", "MAX_PACKAGES", "parse_composer_lock", "parse_installed_json"]

#: Large PHP applications install a few hundred packages; more than this is not a real list.
MAX_PACKAGES: Final = 50_000
#: Strings kept in metadata (URLs, references, licenses) are cut at this length.
MAX_FIELD: Final = 1024
#: Licenses kept per package (a license list is a short set of alternatives).
MAX_LICENSES: Final = 16
#: Warnings per file: a garbage file must not produce one warning per entry.
MAX_WARNINGS: Final = 20


def _text(value: Any) -> str | None:
    return value[:MAX_FIELD] if isinstance(value, str) and value else None


def _identifier(value: Any) -> bool:
    """A usable name or version: a non-empty string of sane length."""
    return isinstance(value, str) and 0 < len(value) <= MAX_FIELD


def _license(value: Any) -> str | None:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list):
        names = [name for item in value[:MAX_LICENSES] if (name := _text(item))]
        if len(names) > 1:
            return " OR ".join(f"({name})" if " " in name else name for name in names)
        return names[0] if names else None
    return None


def _reference(value: Any) -> dict[str, str]:
    """The small, useful part of a "source" or "dist" object."""
    if not isinstance(value, dict):
        return {}
    return {key: text for key in ("type", "url", "reference", "shasum") if (text := _text(value.get(key)))}


def _package(entry: dict[str, Any], declared: bool, dev_names: frozenset[str]) -> Package:
    metadata: dict[str, Any] = {}
    for key in ("source", "dist"):
        if reference := _reference(entry.get(key)):
            metadata[key] = reference
    for key in ("type", "homepage"):
        if text := _text(entry.get(key)):
            metadata[key] = text
    if entry["name"] in dev_names:
        metadata["dev"] = True
    return Package(type="composer", name=entry["name"], version=entry["version"], declared=declared,
                   license=_license(entry.get("license")), metadata=metadata)


def _packages(path: str, entries: Any, what: str, result: ParseResult, declared: bool,
              dev_names: frozenset[str] = frozenset()) -> None:
    if not isinstance(entries, list):
        result.warnings.append(f"{path}: {what} is not a list; skipped")
        return
    if len(entries) > MAX_PACKAGES:
        result.warnings.append(f"{path}: {len(entries)} packages, more than {MAX_PACKAGES}; the rest are skipped")
        entries = entries[:MAX_PACKAGES]
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and _identifier(entry.get("name")) and _identifier(entry.get("version")):
            result.packages.append(_package(entry, declared, dev_names))
        elif len(result.warnings) < MAX_WARNINGS:
            result.warnings.append(f"{path}: {what} entry {index} has no name or version; skipped")


def _load(path: str, data: bytes, result: ParseResult) -> Any:
    document, problem = load_json(path, data)
    if problem is not None:
        result.warnings.append(problem)
    return document


def parse_installed_json(path: str, data: bytes) -> ParseResult:
    """Packages Composer installed into a vendor directory (Composer 1 or 2 layout)."""
    result = ParseResult()
    document = _load(path, data, result)
    if isinstance(document, list):  # Composer 1
        _packages(path, document, "installed.json", result, declared=False)
    elif isinstance(document, dict):  # Composer 2
        dev = document.get("dev-package-names")
        dev_names = frozenset(n for n in dev[:MAX_PACKAGES] if isinstance(n, str)) if isinstance(dev, list) else frozenset()
        _packages(path, document.get("packages"), "installed.json packages", result, declared=False,
                  dev_names=dev_names)
    elif document is not None:
        result.warnings.append(f"{path}: neither a package list nor an object with packages; skipped")
    return result


def parse_composer_lock(path: str, data: bytes) -> ParseResult:
    """The non-dev packages a composer.lock pins, declared."""
    result = ParseResult()
    document = _load(path, data, result)
    if isinstance(document, dict):
        _packages(path, document.get("packages", []), "composer.lock packages", result, declared=True)
    elif document is not None:
        result.warnings.append(f"{path}: not a JSON object; skipped")
    return result


COMPOSER_INSTALLED = Cataloger(name="php-composer-installed", globs=("**/composer/installed.json",),
                               parse=parse_installed_json, max_bytes=32 * 1024 * 1024)
COMPOSER_LOCK = Cataloger(name="php-composer-lock", globs=("**/composer.lock",), parse=parse_composer_lock,
                          max_bytes=32 * 1024 * 1024)
