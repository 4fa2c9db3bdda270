"""Golden tests of the OS catalogers on real package databases (../shared/fixtures)."""

import json
import os

import pytest

from analyzerd.catalogers.apk import parse_apk
from analyzerd.catalogers.distro import parse_distro_file
from analyzerd.catalogers.dpkg import parse_dpkg
from analyzerd.catalogers.purl import purl
from analyzerd.catalogers.base import Distro, Package, result_from_json, result_to_json

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "..", "shared", "fixtures")
needs_fixtures = pytest.mark.skipif(not os.path.isdir(FIXTURES), reason="../shared/fixtures is not here")


def fixture(*parts):
    with open(os.path.join(FIXTURES, *parts), "rb") as f:
        return f.read()


@needs_fixtures
def test_dpkg_ubuntu_status_matches_dpkg_query():
    expected = json.loads(fixture("dpkg", "ubuntu-status", "expected.json"))
    result = parse_dpkg("/var/lib/dpkg/status", fixture("dpkg", "ubuntu-status", "var", "lib", "dpkg", "status"))
    got = sorted(({"name": p.name, "version": p.version, "arch": p.arch, "source": p.source_name,
                   "sourceVersion": p.source_version, "status": "ii"} for p in result.packages),
                 key=lambda p: p["name"])
    assert got == sorted(expected["installed"], key=lambda p: p["name"])
    removed = {p["name"] for p in expected["not_installed"]}
    assert not removed & {p.name for p in result.packages}  # "rc": config files left, not installed
    assert result.warnings == []


@needs_fixtures
def test_dpkg_distroless_status_d_and_md5sums():
    result = parse_dpkg("/var/lib/dpkg/status.d/libsqlite3-0", fixture("dpkg", "distroless-status.d", "libsqlite3-0"))
    (package,) = result.packages
    assert (package.name, package.version, package.arch, package.source_name) == (
        "libsqlite3-0", "3.34.1-3", "arm64", "sqlite3")
    assert package.installed_size == 1490 * 1024
    sums = parse_dpkg("/var/lib/dpkg/status.d/libsqlite3-0.md5sums",
                      fixture("dpkg", "distroless-status.d", "libsqlite3-0.md5sums"))
    (claim,) = sums.claims
    assert claim.package == "libsqlite3-0"
    assert claim.files[0].path == "/usr/lib/aarch64-linux-gnu/libsqlite3.so.0.8.6"
    assert claim.files[0].digest == "e11d70c96979a1328ae4e7e50542782b" and claim.files[0].algorithm == "md5"


@needs_fixtures
@pytest.mark.parametrize("name", ["alpine-multiple", "alpine-trivy"])
def test_apk_databases_match_their_records(name):
    expected = json.loads(fixture("apk", name, "expected.json"))
    result = parse_apk("/lib/apk/db/installed", fixture("apk", name, "installed"))
    got = [{"name": p.name, "version": p.version, "arch": p.arch, "license": p.license, "origin": p.source_name,
            **({"files": [f.path.lstrip("/") for f in p.files]} if p.files else {})} for p in result.packages]
    assert got == expected["packages"]
    assert len(result.warnings) == expected.get("invalid_records", 0)
    for warning in result.warnings:
        assert "/lib/apk/db/installed" in warning and "skipped" in warning
    checked = [f for p in result.packages for f in p.files if f.digest]
    assert checked and all(f.algorithm == "sha1" and len(f.digest) == 40 for f in checked)


@pytest.mark.parametrize("data", [b"\x00\x01\x02binary\xff" * 100, b"Package: x\nStatus: install ok installed\n",
                                  b"no colon here\n\nPackage: ok\nVersion: 1\nStatus: install ok installed\n"])
def test_dpkg_malformed_input_warns_and_keeps_the_rest(data):
    result = parse_dpkg("/var/lib/dpkg/status", data)
    if data.startswith(b"\x00"):
        assert result.packages == [] and "binary data" in result.warnings[0]
    elif b"Package: ok" in data:
        assert [p.name for p in result.packages] == ["ok"]
    else:
        assert result.packages == [] and "no Package or Version" in result.warnings[0]
    assert all("/var/lib/dpkg/status" in w for w in result.warnings)


@pytest.mark.parametrize("path, text, expected", [
    ("/etc/os-release", b'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nPRETTY_NAME="Debian GNU/Linux 12"\n',
     ("debian", "12", "bookworm")),
    ("/usr/lib/os-release", b'ID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.2"\n', ("rhel", "9.2", None)),
    ("/etc/alpine-release", b"3.18.4\n", ("alpine", "3.18.4", None)),
    ("/etc/debian_version", b"12.4\n", ("debian", "12", None)),
    ("/etc/redhat-release", b"Red Hat Enterprise Linux release 9.2 (Plow)\n", ("rhel", "9.2", None)),
])
def test_distro_files(path, text, expected):
    distro = parse_distro_file(path, text).distro
    assert (distro.id, distro.version_id, distro.codename) == expected


def test_purls_as_syft_writes_them():
    assert purl(Package(type="deb", name="libc6", version="2.36-9+deb12u9", arch="amd64", source_name="glibc",
                        source_version="2.36-9+deb12u9"), Distro("debian", "12")) == \
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u9?arch=amd64&upstream=glibc&distro=debian-12"
    assert purl(Package(type="apk", name="musl", version="1.2.4-r2", arch="x86_64", source_name="musl"),
                Distro("alpine", "3.18.4")) == "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.18.4"


@needs_fixtures
def test_results_survive_the_database_round_trip():
    result = parse_apk("/lib/apk/db/installed", fixture("apk", "alpine-multiple", "installed"))
    again = result_from_json(json.loads(json.dumps(result_to_json(result))))
    assert again.packages == result.packages
