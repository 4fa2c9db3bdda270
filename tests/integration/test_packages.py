"""OS packages end to end on the real registry: what the image shows, whiteouts included,
and each package's files checked against the image's real content."""

import base64
import hashlib
import json
import sqlite3
import os

from analyzerd.testing import Member, build_image, make_layer, push_image

OS_RELEASE = b'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
STATUS = b"""Package: pkg-a
Status: install ok installed
Architecture: amd64
Version: 1.0-1+deb12u1
Source: a-src (1.0-1)
Installed-Size: 10

Package: pkg-b
Status: install ok installed
Architecture: amd64
Version: 2.0
"""
A, A2, B = b"original a\n", b"a2\n", b"library b\n"


def md5(data):
    return hashlib.md5(data).hexdigest()


def base_layer():
    return make_layer([
        Member("etc/", kind="dir"), Member("etc/os-release", OS_RELEASE),
        Member("usr/", kind="dir"), Member("usr/bin/", kind="dir"), Member("usr/lib/", kind="dir"),
        Member("bin", kind="symlink", link="usr/bin"),  # merged /usr: packages still list /bin/...
        Member("usr/bin/a", A, mode=0o755), Member("usr/bin/a2", A2, mode=0o755), Member("usr/lib/b.so", B),
        Member("var/lib/dpkg/status", STATUS),
        Member("var/lib/dpkg/info/pkg-a.list", b"/.\n/usr\n/usr/bin\n/usr/bin/a\n/bin/a2\n"),
        Member("var/lib/dpkg/info/pkg-a.md5sums", f"{md5(A)}  usr/bin/a\n{md5(A2)}  bin/a2\n".encode()),
        Member("var/lib/dpkg/info/pkg-b:amd64.md5sums", f"{md5(B)}  usr/lib/b.so\n".encode()),
    ], "gnu")


def packages_of(cli, ref):
    return json.loads(cli("analyze", ref, "--packages", "--json").stdout)


def test_dpkg_packages_with_modified_and_missing_files(registry, cli, db_path):
    patched = make_layer([Member("usr/bin/a", b"patched by an attacker\n", mode=0o755), Member("usr/lib/.wh.b.so")])
    image = build_image([base_layer(), patched])
    push_image(registry.url, "pkgs/deb", "1", image)
    document = packages_of(cli, f"{registry.host}/pkgs/deb:1")
    assert document["image"]["distro"]["id"] == "debian" and document["image"]["distro"]["version_id"] == "12"
    by_name = {p["name"]: p for p in document["packages"]}
    assert set(by_name) == {"pkg-a", "pkg-b"}
    a, b = by_name["pkg-a"], by_name["pkg-b"]
    assert a["purl"] == "pkg:deb/debian/pkg-a@1.0-1%2Bdeb12u1?arch=amd64&upstream=a-src%401.0-1&distro=debian-12"
    assert a["location"] == "/var/lib/dpkg/status" and a["layer"] == image.layers[0].digest
    assert a["files"]["modified"] == ["/usr/bin/a"]  # /bin/a2 resolves through the /bin symlink and is fine
    assert a["files"]["missing"] == []
    assert b["files"]["missing"] == ["/usr/lib/b.so"]  # arch-qualified .md5sums name
    assert a["source"] == {"name": "a-src", "version": "1.0-1"}
    # the same, as one SQL query over the documented view
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT package, path, status FROM package_file_changes WHERE manifest_digest = ? "
                        "ORDER BY path", (image.manifest.digest,)).fetchall()
    assert rows == [("pkg-a", "/usr/bin/a", "modified"), ("pkg-b", "/usr/lib/b.so", "missing")]


def test_packages_whose_database_was_deleted_do_not_appear(registry, cli):
    image = build_image([base_layer(), make_layer([Member("var/lib/dpkg/.wh.status")])])
    push_image(registry.url, "pkgs/deleted", "1", image)
    document = packages_of(cli, f"{registry.host}/pkgs/deleted:1")
    assert document["packages"] == []
    replaced = STATUS.replace(b"Version: 2.0", b"Version: 2.1")
    image = build_image([base_layer(), make_layer([Member("var/lib/dpkg/status", replaced)])])
    push_image(registry.url, "pkgs/upgraded", "1", image)
    document = packages_of(cli, f"{registry.host}/pkgs/upgraded:1")
    assert {p["name"]: p["version"] for p in document["packages"]}["pkg-b"] == "2.1"
    assert {p["location"] for p in document["packages"]} == {"/var/lib/dpkg/status"}
    assert {p["layer"] for p in document["packages"]} == {image.layers[1].digest}


def test_apk_packages_and_a_garbage_database_next_to_them(registry, cli):
    musl = b"\x7fELF musl\n"
    q1 = "Q1" + base64.b64encode(hashlib.sha1(musl).digest()).decode()
    installed = (f"P:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\nF:lib\nR:ld-musl-x86_64.so.1\nZ:{q1}\n\n"
                 "P:broken\nA:x86_64\n\n").encode()
    layer = make_layer([
        Member("etc/alpine-release", b"3.18.4\n"), Member("lib/ld-musl-x86_64.so.1", musl),
        Member("lib/apk/db/installed", installed),
        Member("var/lib/dpkg/status", b"\x00\xff\xfe garbage" * 50),  # hostile: must not stop anything
    ])
    image = build_image([layer])
    push_image(registry.url, "pkgs/apk", "1", image)
    document = packages_of(cli, f"{registry.host}/pkgs/apk:1")
    (musl_pkg,) = document["packages"]
    assert musl_pkg["purl"] == "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.18.4"
    assert musl_pkg["files"] == {"total": 1, "modified": [], "missing": []}
    warnings = document["image"]["warnings"]
    assert any("/lib/apk/db/installed" in w and "skipped" in w for w in warnings)
    assert any("/var/lib/dpkg/status" in w and "binary" in w for w in warnings)
    table = cli("show", f"{registry.host}/pkgs/apk:1", "--packages").stdout
    assert "musl" in table and "distro     alpine" in table


def test_rpm_database_in_an_image_spooled_and_checked(registry, cli, tmp_path):
    import os
    fixtures = os.path.join(os.path.dirname(__file__), "..", "data", "packagedb", "rpmdb")
    with open(os.path.join(fixtures, "bdb-libuuid", "Packages"), "rb") as f:
        packages_db = f.read()
    layer = make_layer([
        Member("etc/os-release", b'ID="rhel"\nVERSION_ID="8.8"\n'),
        Member("var/lib/rpm/Packages", packages_db),
        Member("usr/lib64/libuuid.so.1.3.0", b"not the library rpm installed"),
    ])
    image = build_image([layer])
    push_image(registry.url, "pkgs/rpm", "1", image)
    document = packages_of(cli, f"{registry.host}/pkgs/rpm:1")
    (libuuid,) = document["packages"]
    assert libuuid["purl"] == ("pkg:rpm/redhat/libuuid@2.32.1-42.el8_8?arch=x86_64"
                               "&upstream=util-linux-2.32.1-42.el8_8.src.rpm&distro=rhel-8.8")
    assert libuuid["files"]["modified"] == ["/usr/lib64/libuuid.so.1.3.0"]
    assert "/usr/share/licenses/libuuid/COPYING" in libuuid["files"]["missing"]


def test_large_catalog_files_are_spooled_not_held(tmp_path):
    """A database above the in-memory limit goes to a temporary file in tmp_dir, is parsed
    through a memory map, and the file is gone afterwards."""
    import os
    from analyzerd.analysis.dispatch import Dispatch
    from analyzerd.analysis.layer import LayerAnalyzer, LayerLimits
    from analyzerd.analyze import FileSpool
    from analyzerd.catalogers.registry import CATALOGERS

    fixtures = os.path.join(os.path.dirname(__file__), "..", "data", "packagedb", "rpmdb")
    with open(os.path.join(fixtures, "sqlite-cbl-mariner-2.0", "rpmdb.sqlite"), "rb") as f:
        db = f.read()
    tar = make_layer([Member("var/lib/rpm/rpmdb.sqlite", db)])
    spools = []

    def spool():
        spools.append(FileSpool(str(tmp_path)))
        return spools[-1]

    analyzer = LayerAnalyzer(digest="sha256:" + hashlib.sha256(tar).hexdigest(), size=len(tar), media_type="x",
                             limits=LayerLimits(max_memory_capture=64 * 1024), dispatch=Dispatch(CATALOGERS),
                             spool=spool)
    for i in range(0, len(tar), 1 << 16):
        analyzer.feed(tar[i:i + (1 << 16)])
    result = analyzer.finish()
    (entry,) = result.catalog
    assert len(entry.result.packages) == 129 and len(spools) == 1
    assert os.listdir(tmp_path) == []  # the spool is unnamed and closed


def test_diff_lists_what_the_second_image_adds_removes_and_changes(registry, cli):
    upgraded = STATUS.replace(b"Version: 2.0", b"Version: 2.1")
    key_id = "AKIA" + "Q7TZ" * 4
    change = make_layer([Member("var/lib/dpkg/status", upgraded), Member("usr/lib/.wh.b.so"),
                         Member("usr/bin/a", b"patched\n", mode=0o755), Member("usr/bin/a2", A2, mode=0o700),
                         Member("etc/app.env", f"AWS_ACCESS_KEY_ID={key_id}\n".encode())])
    first, second = build_image([base_layer()]), build_image([base_layer(), change])
    push_image(registry.url, "pkgs/diff", "1", first)
    push_image(registry.url, "pkgs/diff", "2", second)
    cli("analyze", f"{registry.host}/pkgs/diff:1", "--quiet")
    cli("analyze", f"{registry.host}/pkgs/diff:2", "--quiet")
    result = json.loads(cli("diff", f"{registry.host}/pkgs/diff:1", f"{registry.host}/pkgs/diff:2", "--json").stdout)
    assert result["from"] == first.manifest.digest and result["to"] == second.manifest.digest
    assert result["packages"]["added"] == [] and result["packages"]["removed"] == []
    assert [(p["name"], p["from_version"], p["version"]) for p in result["packages"]["changed"]] == [
        ("pkg-b", "2.0", "2.1")]
    files = result["files"]
    assert files["added"] == ["/etc/app.env"] and files["removed"] == ["/usr/lib/b.so"]
    changed = {f["path"]: f["changed"] for f in files["changed"]}
    assert changed == {"/usr/bin/a": ["sha256"], "/usr/bin/a2": ["mode"], "/var/lib/dpkg/status": ["sha256"]}
    assert [(s["path"], s["rule"]) for s in result["secrets"]["new"]] == [("/etc/app.env", "aws-access-key-id")]
    text = cli("diff", f"{registry.host}/pkgs/diff:1", f"{registry.host}/pkgs/diff:2").stdout
    assert "~ deb pkg-b 2.0 -> 2.1" in text and "- /usr/lib/b.so" in text and key_id not in text


def test_show_summary(registry, cli):
    big = os.urandom(300_000)
    layer = make_layer([Member("usr/bin/helper", b"#!/bin/sh\n", mode=0o4755), Member("srv/open.txt", b"x", mode=0o666),
                        Member("tmp/", kind="dir", mode=0o1777), Member("srv/big.bin", big),
                        Member("srv/link", kind="symlink", link="open.txt")])
    image = build_image([base_layer(), layer])
    push_image(registry.url, "pkgs/summary", "1", image)
    cli("analyze", f"{registry.host}/pkgs/summary:1", "--quiet")
    summary = json.loads(cli("show", f"{registry.host}/pkgs/summary:1", "--summary", "--json").stdout)["summary"]
    assert summary["distro"]["id"] == "debian"
    assert summary["packages"] == {"deb": {"installed": 2, "declared": 0}}
    assert summary["largest_files"][0] == {"path": "/srv/big.bin", "size": len(big)}
    assert [f["path"] for f in summary["setuid_setgid"]] == ["/usr/bin/helper"]
    assert [f["path"] for f in summary["world_writable"]] == ["/srv/open.txt"]  # not the sticky /tmp, not links
    assert summary["secrets"]["total"] == 0


def test_held_and_deinstall_marked_packages_are_reported_as_dpkg_query_lists_them(registry, cli, tmp_path):
    """An image whose upper layer ran `apt-mark hold` on one package and marked another for
    removal without removing it (a real Ubuntu status file): the analysis reports the same
    packages as dpkg-query reading that image's status file."""
    import pathlib
    import shutil
    import subprocess
    assert shutil.which("dpkg-query"), "dpkg-query (Debian's dpkg) gives the expected packages"
    real = (pathlib.Path(__file__).parents[1] / "data" / "packagedb" / "dpkg" / "ubuntu-status" / "var" / "lib" /
            "dpkg" / "status").read_text()
    wanted = {"bash": "hold ok installed", "gzip": "deinstall ok installed"}
    paragraphs = real.split("\n\n")
    for i, paragraph in enumerate(paragraphs):
        name = paragraph.partition("Package: ")[2].partition("\n")[0]
        if name in wanted:
            paragraphs[i] = paragraph.replace("Status: install ok installed", f"Status: {wanted[name]}")
    marked = "\n\n".join(paragraphs)
    assert marked.count("hold ok installed") == 1 and marked.count("deinstall ok installed") == 1
    admin = tmp_path / "dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "updates").mkdir()
    (admin / "status").write_text(marked)
    listed = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W", "-f=${Package} ${db:Status-Abbrev}\\n"],
                            capture_output=True, text=True, check=True).stdout.split("\n")
    expected = {line.split()[0] for line in listed if line and line.split()[1][1] in "iWt"}
    assert {"bash", "gzip"} <= expected
    lower = make_layer([Member("etc/os-release", OS_RELEASE), Member("var/lib/dpkg/status", real.encode())])
    upper = make_layer([Member("var/lib/dpkg/status", marked.encode())])
    push_image(registry.url, "pkgs/held", "1", build_image([lower, upper]))
    document = packages_of(cli, f"{registry.host}/pkgs/held:1")
    assert {p["name"] for p in document["packages"] if p["type"] == "deb"} == expected
