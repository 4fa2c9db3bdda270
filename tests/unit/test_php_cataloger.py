"""PHP Composer (catalogers/php.py) on real files from Debian packages (tests/data/php, see
SOURCES.md). Expected values: Syft 1.18.1's output for the same tree
(expected-syft-1.18.1.json) and Composer's own installed.php beside installed.json."""

import json
import re

import pytest

from analyzerd.catalogers import php
from analyzerd.catalogers.php import parse_composer_lock, parse_installed_json
from tests.helpers import Fixtures

ZABBIX_LOCK = "/usr/share/zabbix/composer.lock"
ZABBIX_INSTALLED = "/usr/share/zabbix/vendor/composer/installed.json"  # Composer 1: a list
DOKUWIKI_INSTALLED = "/usr/share/dokuwiki/vendor/composer/installed.json"  # Composer 2: {"packages": ...}
SLIKA_LOCK = "/usr/share/dokuwiki/vendor/splitbrain/slika/composer.lock"  # packages-dev only


FIXTURES = Fixtures("php")
read, syft_expected = FIXTURES.read, FIXTURES.syft_expected


@pytest.mark.parametrize("path, parse, declared", [
    (ZABBIX_LOCK, parse_composer_lock, True),
    (ZABBIX_INSTALLED, parse_installed_json, False),
    (DOKUWIKI_INSTALLED, parse_installed_json, False),
    (SLIKA_LOCK, parse_composer_lock, True),
])
def test_composer_files_match_syft(path, parse, declared):
    result = parse(path, read(path))
    assert result.warnings == []
    got = sorted((p.name, p.version, frozenset(p.license.split(" OR ")) if p.license else frozenset())
                 for p in result.packages)
    assert got == sorted((a["name"], a["version"], frozenset(a["licenses"])) for a in syft_expected(path))
    assert all(p.type == "composer" and p.declared is declared and p.namespace is None for p in result.packages)


def test_lock_leaves_dev_packages_out_as_syft_does():
    document = json.loads(read(SLIKA_LOCK))
    assert len(document["packages-dev"]) == 29 and document["packages"] == []
    assert parse_composer_lock(SLIKA_LOCK, read(SLIKA_LOCK)).packages == []


def test_installed_json_agrees_with_installed_php():
    text = read("/usr/share/dokuwiki/vendor/composer/installed.php").decode()
    root, versions = text.split("'versions' => array(")
    root_name = re.search(r"'name' => '([^']+)'", root).group(1)  # the application itself
    recorded = {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(
        r"'([^']+)' => array\(\s*'pretty_version' => '([^']*)',.*?'reference' => '([^']*)'", versions, re.DOTALL) if m.group(1) != root_name}
    result = parse_installed_json(DOKUWIKI_INSTALLED, read(DOKUWIKI_INSTALLED))
    assert {p.name: (p.version, p.metadata["source"]["reference"]) for p in result.packages} == recorded
    lesserphp = next(p for p in result.packages if p.name == "marcusschwarz/lesserphp")
    assert lesserphp.license == "MIT OR GPL-3.0"  # a license list is a choice (Composer's schema)
    assert lesserphp.metadata["dist"]["type"] == "zip" and lesserphp.metadata["type"] == "library"


@pytest.mark.parametrize("parse, data, warning", [
    (parse_installed_json, b"<?php return array();", "not JSON (JSONDecodeError); skipped"),
    (parse_installed_json, b'"a string"', "neither a package list nor an object with packages; skipped"),
    (parse_installed_json, b'{"packages": 3}', "installed.json packages is not a list; skipped"),
    (parse_installed_json, b'[{"name": "a/b"}, {"name": "c/d", "version": "1.0"}]',
     "installed.json entry 0 has no name or version; skipped"),
    (parse_composer_lock, b"[]", "not a JSON object; skipped"),
    (parse_composer_lock, b"[" * 100_000, "not JSON (nested more than 128 levels); skipped"),
], ids=range(6))
def test_bad_composer_files_warn_naming_the_file(parse, data, warning):
    result = parse("/srv/app/composer.json", data)
    assert result.warnings[0] == f"/srv/app/composer.json: {warning}"
    assert [p.name for p in result.packages] in ([], ["c/d"])


def test_package_count_is_bounded(monkeypatch):
    monkeypatch.setattr(php, "MAX_PACKAGES", 3)
    document = {"packages": [{"name": f"v/p{i}", "version": "1.0.0"} for i in range(50)]}
    result = parse_composer_lock("/app/composer.lock", json.dumps(document).encode())
    assert len(result.packages) == 3 and "50 packages, more than 3" in result.warnings[0]
