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
#: Real package databases with their provenance (tests/data/packagedb/README.md).
FIXTURES = os.path.join(ROOT, "tests", "data", "packagedb")


def fixture(*parts):
    with open(os.path.join(FIXTURES, *parts), "rb") as f:
        return f.read()


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


def test_results_survive_the_database_round_trip():
    result = parse_apk("/lib/apk/db/installed", fixture("apk", "alpine-multiple", "installed"))
    again = result_from_json(json.loads(json.dumps(result_to_json(result))))
    assert again.packages == result.packages


#: Every want and status word dpkg writes (the error flag "ok" or "reinstreq" in between).
DPKG_WANTS = ("install", "hold", "deinstall", "purge", "unknown")
DPKG_STATES = ("installed", "config-files", "half-installed", "unpacked", "half-configured", "triggers-awaited",
               "triggers-pending", "not-installed")


def test_dpkg_status_words_agree_with_dpkg_query(tmp_path):
    """Which packages are installed is dpkg's call: every want/flag/status combination in one
    status file, read by dpkg-query itself (--admindir) and by the parser. A package held with
    `apt-mark hold` (hold ok installed) or still installed though marked for removal
    (deinstall ok installed) is in the image and must be reported."""
    import shutil
    import subprocess
    assert shutil.which("dpkg-query"), "dpkg-query (Debian's dpkg) is needed: it is the expected result"
    records = []
    for want in DPKG_WANTS:
        for flag in ("ok", "reinstreq"):
            for state in DPKG_STATES:
                name = f"p-{want}-{flag}-{state}"
                fields = [f"Package: {name}", f"Status: {want} {flag} {state}", "Architecture: amd64",
                          "Maintainer: Nobody <nobody@example.org>"]
                if state != "not-installed":
                    fields.append("Version: 1.0-1")
                if state in ("triggers-awaited",):
                    fields.append("Triggers-Awaited: p-install-ok-triggers-pending")
                if state in ("triggers-pending",):
                    fields.append("Triggers-Pending: ldconfig")
                if state in ("installed", "triggers-awaited", "triggers-pending", "half-configured", "unpacked",
                             "half-installed", "config-files"):
                    fields.append("Description: test package\n a status dpkg writes")
                records.append("\n".join(fields) + "\n")
    status = "\n".join(records)
    admin = tmp_path / "dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "updates").mkdir()
    (admin / "status").write_text(status)
    listed = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W", "-f=${Package}\\t${db:Status-Abbrev}\\n"],
                            capture_output=True, text=True, check=True).stdout
    abbrev = dict(line.split("\t") for line in listed.splitlines())
    # dpkg read every record (it lists none of the not-installed ones, which have no version)
    assert len(abbrev) == len(records) - len(DPKG_WANTS) * 2
    # dpkg-query's second letter: i installed, W triggers-awaited, t triggers-pending; c, H, U, F, n are not
    expected = {name for name, code in abbrev.items() if code[1] in "iWt"}
    got = {p.name for p in parse_dpkg("/var/lib/dpkg/status", status.encode()).packages}
    assert got == expected
    assert {"p-hold-ok-installed", "p-deinstall-ok-installed", "p-purge-ok-installed"} <= got


def test_dpkg_fields_agree_with_dpkg_query_for_every_package(tmp_path):
    """Maintainer, installed size (dpkg's KiB), section, priority, multi-arch, homepage and the
    status line of every installed package of the real Ubuntu status file, as dpkg-query
    prints them from the same file."""
    import shutil
    import subprocess
    assert shutil.which("dpkg-query"), "dpkg-query (Debian's dpkg) is needed: it is the expected result"
    status = fixture("dpkg", "ubuntu-status", "var", "lib", "dpkg", "status")
    admin = tmp_path / "dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "updates").mkdir()
    (admin / "status").write_bytes(status)
    columns = ("Package", "Version", "Architecture", "Maintainer", "Installed-Size", "Section", "Priority",
               "Multi-Arch", "Homepage", "Status", "db:Status-Abbrev")
    listed = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W",
                             "-f=" + "\\t".join("${%s}" % c for c in columns) + "\\n"],
                            capture_output=True, text=True, check=True).stdout
    expected = {}
    for line in listed.splitlines():
        row = dict(zip(columns, line.split("\t")))
        if row["db:Status-Abbrev"][1] in "iWt":
            expected[row["Package"]] = row
    packages = {p.name: p for p in parse_dpkg("/var/lib/dpkg/status", status).packages}
    assert set(packages) == set(expected) and len(expected) == 90
    for name, row in expected.items():
        p = packages[name]
        assert (p.type, p.version, p.arch) == ("deb", row["Version"], row["Architecture"] or None), name
        assert p.maintainer == (row["Maintainer"] or None), name
        assert p.installed_size == (int(row["Installed-Size"]) * 1024 if row["Installed-Size"] else None), name
        # dpkg-query prints Multi-Arch's default, "no", for a package without the field
        shown = {k: p.metadata.get(k, "no" if k == "Multi-Arch" else "")
                 for k in ("Status", "Section", "Priority", "Multi-Arch", "Homepage")}
        assert shown == {k: row[k] for k in shown}, name
        assert set(p.metadata) <= set(shown) and all(p.metadata.values()), name


def test_dpkg_info_list_and_md5sums_as_dpkg_reads_them(tmp_path):
    """A real Debian 12 info/base-files.list and .md5sums: the paths are those dpkg-query -L
    lists from the same files (no "/." entry), the digests every md5sums line's, each path
    absolute; the claim names the package."""
    import shutil
    import subprocess
    assert shutil.which("dpkg-query"), "dpkg-query (Debian's dpkg) is needed: it is the expected result"
    listing = fixture("dpkg", "debian12-info", "base-files.list")
    sums = fixture("dpkg", "debian12-info", "base-files.md5sums")
    admin = tmp_path / "dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "updates").mkdir()
    (admin / "info" / "base-files.list").write_bytes(listing)
    (admin / "status").write_text("Package: base-files\nStatus: install ok installed\nArchitecture: amd64\n"
                                  "Version: 12.4+deb12u11\nMaintainer: Santiago Vila <sanvila@debian.org>\n"
                                  "Description: Debian base system miscellaneous files\n")
    listed = subprocess.run(["dpkg-query", f"--admindir={admin}", "-L", "base-files"], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    (claim,) = parse_dpkg("/var/lib/dpkg/info/base-files.list", listing).claims
    assert claim.package == "base-files"
    assert list(claim.paths) == [p for p in listed if p != "/."] and len(claim.paths) > 80
    (claim,) = parse_dpkg("/var/lib/dpkg/info/base-files.md5sums", sums).claims
    expected = [(("/" + line[34:]), line[:32]) for line in sums.decode().splitlines()]
    assert [(f.path, f.digest, f.algorithm) for f in claim.files] == [(p, d, "md5") for p, d in expected]
    assert claim.package == "base-files" and all(f.path.startswith("/usr/") or f.path.startswith("/etc/")
                                                 for f in claim.files)


def test_dpkg_continuation_lines_never_become_fields(tmp_path):
    """A folded field's continuation lines (leading blank or tab) belong to it, even when they
    look like fields ("  Version: 9.9", "\\tPackage: evil"), before any field of a record, or
    after a garbage line: dpkg-query reads the same file to the same packages and versions."""
    import shutil
    import subprocess
    assert shutil.which("dpkg-query"), "dpkg-query (Debian's dpkg) is needed: it is the expected result"
    status = ("Package: folded\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: amd64\n"
              "Depends: libc6 (>= 2.34),\n libssl3 (>= 3.0)\n"
              "Description: a package\n Version: 9.9\n\tPackage: evil\n .\n Source: evil\n"
              "Maintainer: Nobody <nobody@example.org>\n"
              "\n"
              "Package: second\nStatus: hold ok installed\nVersion: 2.0\nArchitecture: all\n"
              "Source: origin (1.5)\nInstalled-Size: 12\nMaintainer: Nobody <nobody@example.org>\n"
              "Description: second\n Version: 7\n")
    admin = tmp_path / "dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "updates").mkdir()
    (admin / "status").write_text(status)
    listed = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W",
                             "-f=${Package}\\t${Version}\\t${source:Package}\\t${source:Version}\\n"],
                            capture_output=True, text=True, check=True).stdout
    expected = sorted(tuple(line.split("\t")) for line in listed.splitlines())
    result = parse_dpkg("/var/lib/dpkg/status", status.encode())
    got = sorted((p.name, p.version, p.source_name, p.source_version) for p in result.packages)
    assert got == expected == [("folded", "1.0-1", "folded", "1.0-1"), ("second", "2.0", "origin", "1.5")]
    assert [p.installed_size for p in sorted(result.packages, key=lambda p: p.name)] == [None, 12 * 1024]
    assert result.warnings == []
    # a record that opens with a continuation line or holds a garbage line keeps its fields
    odd = parse_dpkg("/var/lib/dpkg/status", b" stray continuation\nPackage: a\nno colon at all\n continued\n"
                     b"Version: 1\nStatus: install ok installed\n")
    assert [(p.name, p.version) for p in odd.packages] == [("a", "1")] and odd.warnings == []


def test_dpkg_records_without_a_name_version_or_status_are_skipped_by_number():
    """The warning says which record (counted from 1) was skipped and why, and parsing goes on
    with the next record."""
    text = (b"Package: first\nVersion: 1\nStatus: install ok installed\n\n"
            b"Package: nameless-version\nStatus: install ok installed\n\n"
            b"Package: no-status\nVersion: 3\n\n"
            b"Package: last\nVersion: 4\nStatus: install ok installed\n")
    result = parse_dpkg("/var/lib/dpkg/status", text)
    assert [p.name for p in result.packages] == ["first", "last"]
    assert result.warnings == ["/var/lib/dpkg/status: record 2 has no Package or Version field; skipped",
                               "/var/lib/dpkg/status: package no-status has no Status field; skipped"]
    # opkg's status is a status file too: no Status, not installed
    opkg = parse_dpkg("/usr/lib/opkg/status", b"Package: no-status\nVersion: 3\n")
    assert opkg.packages == [] and opkg.warnings == ["/usr/lib/opkg/status: package no-status has no Status field; "
                                                     "skipped"]
    # a distroless status.d entry has no Status: being there installs it, whatever its file name
    for path in ("/var/lib/dpkg/status.d/no-status", "/var/lib/dpkg/status.d/status"):
        entry = parse_dpkg(path, b"Package: no-status\nVersion: 3\n")
        assert [p.name for p in entry.packages] == ["no-status"] and entry.warnings == []


def test_dpkg_info_files_name_their_package_and_keep_odd_paths():
    """<pkg>[:arch].list and .md5sums name the package (with its arch) the files belong to; a
    path with blanks is one path; a leading slash (some tools write one) is not doubled; "/"
    and "/." are the root, not a file the package owns."""
    (claim,) = parse_dpkg("/var/lib/dpkg/info/libc6:amd64.list",
                          b"/.\n/\n/usr\n/usr/share/doc/my package/read me.txt\n/etc/x\n").claims
    assert claim.package == "libc6:amd64"
    assert claim.paths == ("/usr", "/usr/share/doc/my package/read me.txt", "/etc/x")
    (claim,) = parse_dpkg("/var/lib/dpkg/info/libc6:amd64.md5sums",
                          b"0123456789abcdef0123456789ABCDEF  /usr/lib/x.so\n"
                          b"fedcba9876543210fedcba9876543210  usr/share/a b/\n"
                          b"not a digest line\n").claims
    assert claim.package == "libc6:amd64"
    assert [(f.path, f.digest) for f in claim.files] == [
        ("/usr/lib/x.so", "0123456789abcdef0123456789abcdef"), ("/usr/share/a b/", "fedcba9876543210fedcba9876543210")]


@pytest.mark.parametrize("name", ["alpine-multiple", "alpine-trivy"])
def test_apk_fields_and_file_digests_agree_with_syft(name):
    """Every field Syft reads from the same apk database (syft.json: Syft 1.18.1 on a directory
    holding only it; Debian does not package apk-tools) is what the cataloger reports: origin
    and its version, maintainer, installed size, URL, aports commit, dependencies, and each
    file's Q1 checksum (base64 SHA-1) as hex SHA-1 (Q2: SHA-256)."""
    import base64
    syft = {(p["package"], p["version"]): p for p in json.loads(fixture("apk", name, "syft.json"))["packages"]}
    result = parse_apk("/lib/apk/db/installed", fixture("apk", name, "installed"))
    assert result.packages and {(p.name, p.version) for p in result.packages} <= set(syft)
    for package in result.packages:
        want = syft[(package.name, package.version)]
        assert (package.source_name, package.source_version) == (want["originPackage"] or package.name, package.version)
        assert package.maintainer == want["maintainer"] and package.installed_size == want["installedSize"]
        assert package.metadata.get("U") == want["url"] and package.metadata.get("c") == want["gitCommitOfApkPort"]
        assert package.metadata.get("D", "").split() == (want["pullDependencies"] or [])
        digests = [(f.path, f.digest, f.algorithm) for f in package.files if f.digest]
        algorithms = {"Q1": "sha1", "Q2": "sha256"}
        assert digests == [(f["path"], base64.b64decode(f["digest"][2:]).hex(), algorithms[f["digest"][:2]])
                           for f in want["files"]], package.name


def test_apk_q2_checksums_build_time_and_odd_records():
    """A Q2 checksum is a base64 SHA-256; a malformed or unknown one leaves the file without a
    digest; the build time (t:) and aports commit are kept; a record without P: or V: is
    skipped naming its number."""
    import base64
    import hashlib
    sha256 = hashlib.sha256(b"x").digest()
    text = ("P:musl\nV:1.2.4-r2\nA:x86_64\nI:12\nt:1700000000\nc:abc123\nF:lib\nR:ld.so\nZ:Q2"
            + base64.b64encode(sha256).decode() + "\nR:bad\nZ:Q1!!notbase64\nR:other\nZ:X3abc\n\n"
            "V:1.0\n\nP:zlib\nV:1.3-r0\nI:not-a-size\n")
    result = parse_apk("/lib/apk/db/installed", text.encode())
    musl, zlib = result.packages
    assert [(f.path, f.digest, f.algorithm) for f in musl.files] == [
        ("/lib/ld.so", sha256.hex(), "sha256"), ("/lib/bad", None, None), ("/lib/other", None, None)]
    assert (musl.type, musl.installed_size, musl.metadata) == ("apk", 12, {"t": "1700000000", "c": "abc123"})
    assert (zlib.name, zlib.source_name, zlib.installed_size) == ("zlib", "zlib", None)
    assert result.warnings == ["/lib/apk/db/installed: record 2 has no package name or version (P:, V:); skipped"]


def test_apk_records_with_odd_lines_files_outside_a_folder_and_binary_data():
    """Lines that are not "K:value" with a one-letter key are passed over without ending the
    record; a file before any F: is at the root; a folder's slashes are trimmed; the folder
    resets with each record; a Z: before any R: belongs to no file; NUL bytes mean not a database."""
    text = (b"P:first\nV:1\nZ:Q1orphan\nnot a field line\nPX:two letters\nR:at-root\nF:/usr/bin/\nR:tool\n\n"
            b"P:second\nV:2\nR:also-root\n")
    first, second = parse_apk("/lib/apk/db/installed", text).packages
    assert [f.path for f in first.files] == ["/at-root", "/usr/bin/tool"]
    assert all(f.digest is None for f in first.files) and "X" not in first.metadata
    assert [f.path for f in second.files] == ["/also-root"]
    binary = parse_apk("/lib/apk/db/installed", b"\x7fELF\x00\x00P:x\nV:1\n")
    assert binary.packages == [] and binary.warnings == [
        "/lib/apk/db/installed: binary data, not an apk database; skipped"]


def test_apk_and_dpkg_read_invalid_utf8_and_folder_names_as_written():
    """An undecodable byte (a Latin-1 maintainer name) becomes U+FFFD and parsing goes on;
    directory and file names are taken as written, whatever letter they start with."""
    apk = parse_apk("/lib/apk/db/installed", b"P:xorg\nV:1\nm:Fran\xe7ois <f@example.org>\nF:/Xorg/\nR:X\n")
    (package,) = apk.packages
    assert package.maintainer == "Fran\ufffdois <f@example.org>" and [f.path for f in package.files] == ["/Xorg/X"]
    dpkg = parse_dpkg("/var/lib/dpkg/status", b"Package: x\nVersion: 1\nStatus: install ok installed\n"
                                               b"Maintainer: Fran\xe7ois <f@example.org>\n")
    assert dpkg.packages[0].maintainer == "Fran\ufffdois <f@example.org>"
    (claim,) = parse_dpkg("/var/lib/dpkg/info/x11-common.md5sums",
                          b"0123456789abcdef0123456789abcdef  X11/app\n").claims
    assert [f.path for f in claim.files] == ["/X11/app"]


# Mutation survivors that cannot matter (tools/mutation.sh catalogers):
# - dpkg and apk: `str(data, "UTF-8", ...)` for "utf-8": codec names are case-insensitive.
# - apk _package: `fields.get("I", "XXXX")`: a missing size reads as None either way ("XXXX" is
#   not digits).
# - apk: `folder = None` before the first record: a falsy folder means the root either way.
# - apk: `not sep and len(key) != 1`: a "KEY:value" line with a longer key is then stored in the
#   record's fields, but only one-letter keys are ever read.
