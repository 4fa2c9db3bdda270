"""Golden tests of the Python catalogers on real installed distributions and real lock files
(tests/data/python, see SOURCES.md there). Expected values come from importlib.metadata and from
the lock tools' own output, never from the parser under test."""

import base64
import email
import importlib.metadata
import json
import pathlib
import posixpath
import re
import time
import tomllib

import pytest

from analyzerd.analysis.dispatch import Dispatch
from analyzerd.catalogers import python
from analyzerd.catalogers.base import result_from_json, result_to_json
from analyzerd.catalogers.python import (
    PYTHON_CATALOGERS, package_directory, parse_direct_url, parse_installed_files, parse_installer, parse_metadata,
    parse_pipfile_lock, parse_poetry_lock, parse_record, parse_requirements, parse_top_level, parse_uv_lock)

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "python"
EXPECTED = DATA / "expected"
SITES = ["/usr/local/lib/python3.11/site-packages", "/opt/venv/lib/python3.11/site-packages",
         "/usr/lib/python3/dist-packages", "/opt/legacy/lib/python3.11/site-packages"]


def read(image_path: str) -> bytes:
    return (DATA / image_path.lstrip("/")).read_bytes()


def canonical(name: str) -> str:
    """PEP 503 name normalization, to compare names across tools."""
    return re.sub(r"[-_.]+", "-", name).lower()


def metadata_files(site: str) -> list[str]:
    """Image paths of every METADATA / PKG-INFO / .egg-info file in a site directory."""
    root = DATA / site.lstrip("/")
    found = [*root.glob("*.dist-info/METADATA"), *root.glob("*.egg-info/PKG-INFO"),
             *(p for p in root.glob("*.egg-info") if p.is_file())]
    return sorted("/" + str(p.relative_to(DATA)) for p in found)


def distributions(site: str) -> dict[str, importlib.metadata.Distribution]:
    return {d.metadata["Name"]: d for d in importlib.metadata.distributions(path=[str(DATA / site.lstrip("/"))])}


# -- installed distributions --------------------------------------------------------------------

#: The license each fixture declares, and the field importlib.metadata must show it in.
LICENSES = {
    ("/usr/local/lib/python3.11/site-packages", "attrs"): ("MIT", "License-Expression"),
    ("/usr/local/lib/python3.11/site-packages", "packaging"): ("Apache-2.0 OR BSD-2-Clause", "License-Expression"),
    ("/usr/local/lib/python3.11/site-packages", "python-dateutil"): ("BSD-3-Clause", "License-Expression"),
    ("/usr/local/lib/python3.11/site-packages", "certifi"): ("MPL-2.0", "License"),
    ("/usr/local/lib/python3.11/site-packages", "requests"): ("Apache-2.0", "License"),
    ("/usr/local/lib/python3.11/site-packages", "six"): ("MIT", "License"),
    ("/usr/local/lib/python3.11/site-packages", "typing_extensions"):
        ("Python Software Foundation License", "Classifier"),
    ("/usr/local/lib/python3.11/site-packages", "idna"): ("BSD License", "Classifier"),
    # numpy's License field is the whole license text: the classifier names it
    ("/usr/local/lib/python3.11/site-packages", "numpy"): ("BSD License", "Classifier"),
    ("/opt/venv/lib/python3.11/site-packages", "wheel"): ("MIT", "License-Expression"),
    ("/opt/venv/lib/python3.11/site-packages", "six"): ("MIT", "License"),
    ("/opt/venv/lib/python3.11/site-packages", "iniconfig"): ("MIT", "License-Expression"),
    ("/usr/lib/python3/dist-packages", "six"): ("MIT", "License"),
    ("/usr/lib/python3/dist-packages", "python-apt"): ("GNU GPL", "License"),
    ("/usr/lib/python3/dist-packages", "PyYAML"): ("MIT", "License"),
    ("/usr/lib/python3/dist-packages", "pycairo"): ("LGPL-2.1-only OR MPL-1.1", "License"),
    ("/opt/legacy/lib/python3.11/site-packages", "six"): ("MIT", "License"),
}


def _declares(message, license_name: str, field: str) -> bool:
    if field == "Classifier":
        return any(c.split("::")[-1].strip() == license_name for c in message.get_all("Classifier") or ()) and (
            message.get("License-Expression") is None)
    return (message.get(field) or "").strip() == license_name


@pytest.mark.parametrize("site", SITES)
def test_installed_packages_match_importlib_metadata(site):
    dists = distributions(site)
    found = {}
    for path in metadata_files(site):
        result = parse_metadata(path, memoryview(read(path)))
        assert result.warnings == []
        (package,) = result.packages
        found[package.name] = (path, package)
    assert sorted(found) == sorted(dists)
    for name, (path, package) in found.items():
        message = dists[name].metadata
        assert (package.type, package.version, package.declared) == ("pypi", dists[name].version, False)
        assert package.metadata.get("summary") == message["Summary"]
        assert package.metadata.get("author") == message["Author"]
        author_email = message["Author-email"]
        assert package.metadata.get("author_email") == (" ".join(author_email.split()) if author_email else None)
        license_name, field = LICENSES[(site, name)]
        assert _declares(message, license_name, field), (name, field)
        assert package.license == license_name
        assert package_directory(path) == (path if path.endswith(".egg-info") else posixpath.dirname(path))


def test_homepage_from_home_page_or_a_homepage_project_url():
    for path, expected in [
        ("/usr/local/lib/python3.11/site-packages/six-1.17.0.dist-info/METADATA", "Home-page"),
        ("/usr/local/lib/python3.11/site-packages/python_dateutil-4.0.0.dist-info/METADATA", "Project-URL"),
        ("/usr/local/lib/python3.11/site-packages/numpy-1.26.4.dist-info/METADATA", "Home-page"),
    ]:
        message = email.message_from_bytes(read(path))
        if expected == "Home-page":
            want = message["Home-page"]
        else:
            want = next(u.split(",", 1)[1].strip() for u in message.get_all("Project-URL") if u.startswith("Homepage,"))
        (package,) = parse_metadata(path, read(path)).packages
        assert package.metadata["homepage"] == want
    # requests names no homepage (only Documentation and Source URLs)
    (requests,) = parse_metadata("/r.dist-info/METADATA",
                                 read("/usr/local/lib/python3.11/site-packages/requests-2.34.2.dist-info/METADATA")).packages
    assert "homepage" not in requests.metadata


def test_the_description_body_is_never_read_into_metadata():
    path = "/usr/lib/python3/dist-packages/pycairo-1.20.1.egg-info"  # Description as a folded header
    (package,) = parse_metadata(path, read(path)).packages
    assert len(json.dumps(package.metadata)) < 1024 and "description" not in package.metadata


def _record_expectation(site: str, dist: importlib.metadata.Distribution) -> tuple[set, set]:
    hashed, plain = set(), set()
    for entry in dist.files:
        absolute = posixpath.normpath(posixpath.join(site, str(entry)))
        if entry.hash is None:
            plain.add(absolute)
        else:
            raw = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4))
            hashed.add((absolute, raw.hex(), entry.hash.mode))
    return hashed, plain


@pytest.mark.parametrize("site", SITES[:3])
def test_record_claims_match_importlib_files(site):
    dists = distributions(site)
    records = sorted((DATA / site.lstrip("/")).glob("*.dist-info/RECORD"))
    assert records
    for record in records:
        path = "/" + str(record.relative_to(DATA))
        result = parse_record(path, memoryview(record.read_bytes()))
        assert result.warnings == []
        (claim,) = result.claims
        assert claim.package == posixpath.dirname(path)
        (metadata_package,) = parse_metadata(claim.package + "/METADATA", read(claim.package + "/METADATA")).packages
        hashed, plain = _record_expectation(site, dists[metadata_package.name])
        assert {(f.path, f.digest, f.algorithm) for f in claim.files} == hashed
        assert set(claim.paths) == plain


def test_record_paths_outside_site_packages_are_resolved():
    path = "/opt/venv/lib/python3.11/site-packages/wheel-0.48.0.dist-info/RECORD"
    (claim,) = parse_record(path, read(path)).claims
    assert "../../../bin/wheel" in read(path).decode()
    script = next(f for f in claim.files if f.path == "/opt/venv/bin/wheel")
    assert script.algorithm == "sha256" and len(script.digest) == 64


def test_installed_files_txt_matches_pip_show():
    lines = (EXPECTED / "legacy-six.pip-show.out").read_text().splitlines()
    listed = [line.strip() for line in lines[lines.index("Files:") + 1:] if line.strip()]
    site = "/opt/legacy/lib/python3.11/site-packages"
    path = f"{site}/six-1.17.0-py3.11.egg-info/installed-files.txt"
    result = parse_installed_files(path, read(path))
    (claim,) = result.claims
    assert claim.package == posixpath.dirname(path) and claim.files == ()
    assert sorted(claim.paths) == sorted(posixpath.join(site, p) for p in listed)


@pytest.mark.parametrize("site", SITES)
def test_top_level_installer_and_direct_url_match_importlib(site):
    for name, dist in distributions(site).items():
        metadata_path = next(p for p in metadata_files(site)
                             if parse_metadata(p, read(p)).packages[0].name == name)
        directory = package_directory(metadata_path)
        claims = {}
        for file_name, parser in [("top_level.txt", parse_top_level), ("INSTALLER", parse_installer),
                                  ("direct_url.json", parse_direct_url)]:
            text = dist.read_text(file_name)
            if text is None:
                continue
            (claim,) = parser(f"{directory}/{file_name}", text.encode()).claims
            assert claim.package == directory
            claims.update(claim.metadata)
        if (top_level := dist.read_text("top_level.txt")) is not None:
            assert claims["top_level"] == top_level.split()
        if (installer := dist.read_text("INSTALLER")) is not None:
            assert claims["installer"] == installer.strip()
        if (direct_url := dist.read_text("direct_url.json")) is not None:
            document = json.loads(direct_url)
            assert claims["direct_url"] == document["url"]
            assert claims.get("editable", False) == document.get("dir_info", {}).get("editable", False)


# -- declared dependencies ----------------------------------------------------------------------

def _pins(lines) -> set[tuple[str, str]]:
    pins = set()
    for line in lines:
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        if match:
            pins.add((canonical(match.group(1)), match.group(2)))
    return pins


def _got(result) -> set[tuple[str, str]]:
    assert all(p.declared and p.type == "pypi" for p in result.packages)
    return {(canonical(p.name), p.version) for p in result.packages}


@pytest.mark.parametrize("project, root, kind", [("uv-app", "demo-app", "virtual"), ("uv-lib", "demo-lib", "editable")])
def test_uv_lock_matches_uv_export_and_skips_the_project(project, root, kind):
    path = f"/srv/{project}/uv.lock"
    result = parse_uv_lock(path, memoryview(read(path)))
    assert result.warnings == []
    assert _got(result) == _pins((EXPECTED / f"{project}.uv-export.out").read_text().splitlines())
    lock = tomllib.loads(read(path).decode())
    (project_entry,) = [p for p in lock["package"] if p["name"] == root]
    assert kind in project_entry["source"]
    assert root not in {p.name for p in result.packages}
    assert all(p.metadata == {"index": "https://pypi.org/simple"} for p in result.packages)


def test_poetry_lock_matches_poetry_show():
    path = "/srv/poetry-app/poetry.lock"
    result = parse_poetry_lock(path, read(path))
    assert result.warnings == []

    def shown(name):
        return {(canonical(line.split()[0]), line.split()[2] if line.split()[1] == "(!)" else line.split()[1])
                for line in (EXPECTED / name).read_text().splitlines() if line.strip()}

    assert _got(result) == shown("poetry-app.poetry-show.out")
    dev = {canonical(p.name) for p in result.packages if "dev" in p.metadata.get("groups", ())}
    assert dev == {name for name, _ in shown("poetry-app.poetry-show-only-dev.out")}


def test_pipfile_lock_matches_pipenv_requirements():
    path = "/srv/pipenv-app/Pipfile.lock"
    result = parse_pipfile_lock(path, read(path))
    assert result.warnings == []
    assert _got(result) == _pins((EXPECTED / "pipenv-app.pipenv-requirements.out").read_text().splitlines())
    pipfile = tomllib.loads(read("/srv/pipenv-app/Pipfile").decode())
    assert {p.name for p in result.packages if p.metadata.get("develop")} == set(pipfile["dev-packages"])


@pytest.mark.parametrize("name", ["requirements", "requirements-nohash"])
def test_requirements_match_pip_resolution_report(name):
    path = f"/srv/reqs/{name}.txt"
    result = parse_requirements(path, read(path))
    assert result.warnings == []
    assert _got(result) == _pins((EXPECTED / f"{name}.pip-report.out").read_text().splitlines())


def test_requirement_lines_as_syft_reads_them():
    text = b"\n".join([
        b"# a comment line",
        b"-r base.txt", b"-c constraints.txt", b"--index-url https://example.invalid/simple",
        b"-e git+https://example.invalid/x.git#egg=x",
        b"flask==2.0.1  # trailing comment",
        b"requests[security, socks] == 2.8.1 ; python_version < '2.7' \\",
        b"    --hash=sha256:a9b3aaa1904eeb78e32394cd46c6f37ac0fb4af6dc488daa58971bdc7d7fcaf3",
        b"torch==2.1.0+cpu",
        b"legacy===1.0.post1",
        b"unpinned", b"ranged>=1.0", b"wildcard==2.8.*", b"pinned-and-ranged==1.0,>=0.9", b"excluded!=1.0",
        b"direct @ https://example.invalid/direct-1.0.tar.gz",
        b"./local/path/pkg-1.0.whl", b"https://example.invalid/pkg-1.0.tar.gz",
        b"",
    ])
    result = parse_requirements("/app/requirements.txt", text)
    got = [(p.name, p.version, p.metadata) for p in result.packages]
    assert got == [
        ("flask", "2.0.1", {}),
        ("requests", "2.8.1", {"extras": ["security", "socks"], "markers": "python_version < '2.7'"}),
        ("torch", "2.1.0+cpu", {}),
        ("legacy", "1.0.post1", {}),
    ]
    assert result.warnings == []


def test_pipfile_lock_vcs_entry_has_no_version_as_in_syft():
    lock = {"_meta": {}, "default": {"x": {"git": "https://example.invalid/x.git", "ref": "abc123"},
                                     "y": {"version": "==1.0"}}, "develop": {}}
    result = parse_pipfile_lock("/Pipfile.lock", json.dumps(lock).encode())
    assert [(p.name, p.version, p.metadata) for p in result.packages] == [
        ("x", "", {"source": "git+https://example.invalid/x.git", "ref": "abc123"}), ("y", "1.0", {})]


# -- globs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, cataloger", [
    ("/usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO", "python-installed-package"),
    ("/usr/lib/python3/dist-packages/pycairo-1.20.1.egg-info", "python-installed-package"),
    ("/usr/local/lib/python3.11/site-packages/attrs-26.1.0.dist-info/METADATA", "python-installed-package"),
    ("/app/x.egg/EGG-INFO/PKG-INFO", "python-installed-package"),
    ("/usr/local/lib/python3.11/site-packages/attrs-26.1.0.dist-info/RECORD", "python-record"),
    ("/opt/legacy/lib/python3.11/site-packages/six-1.17.0-py3.11.egg-info/installed-files.txt",
     "python-installed-files"),
    ("/usr/lib/python3/dist-packages/six-1.16.0.egg-info/top_level.txt", "python-top-level"),
    ("/opt/venv/lib/python3.11/site-packages/six-1.17.0.dist-info/direct_url.json", "python-direct-url"),
    ("/opt/venv/lib/python3.11/site-packages/six-1.17.0.dist-info/INSTALLER", "python-installer"),
    ("/srv/app/requirements.txt", "python-requirements"),
    ("/srv/app/dev-requirements-py3.txt", "python-requirements"),
    ("/requirements.txt", "python-requirements"),
    ("/srv/app/poetry.lock", "python-poetry-lock"),
    ("/srv/app/Pipfile.lock", "python-pipfile-lock"),
    ("/srv/app/uv.lock", "python-uv-lock"),
    ("/srv/app/script.py.lock", "python-uv-lock"),
    ("/usr/lib/python3/dist-packages/six.py", None),
    ("/srv/app/requirements.in", None),
    ("/srv/app/Pipfile", None),
    ("/usr/local/lib/python3.11/site-packages/attrs-26.1.0.dist-info/WHEEL", None),
])
def test_globs(path, cataloger):
    found = Dispatch(PYTHON_CATALOGERS).match(path)
    assert (found.name if found else None) == cataloger


def test_every_fixture_is_claimed_by_the_expected_cataloger():
    dispatch = Dispatch(PYTHON_CATALOGERS)
    for file in DATA.rglob("*"):
        if not file.is_file():
            continue  # an .egg-info directory: only regular files reach a cataloger
        image_path = "/" + str(file.relative_to(DATA))
        cataloger = dispatch.match(image_path)
        if cataloger is None:
            continue
        result = cataloger.parse(image_path, memoryview(file.read_bytes()))
        assert result.warnings == [], image_path
        assert result.packages or result.claims, image_path
        again = result_from_json(json.loads(json.dumps(result_to_json(result))))
        assert again.packages == result.packages


# -- hostile and malformed input -------------------------------------------------------------------

METADATA_PATH = "/usr/lib/python3/dist-packages/x-1.0.dist-info/METADATA"


@pytest.mark.parametrize("data, reason", [
    (b"", "no Name and Version"),
    (b"Metadata-Version: 2.1\nVersion: 1.0\n", "no Name"),
    (b"Metadata-Version: 2.1\nName: x\n\nVersion: 1.0 (in the description)\n", "no Version"),
    (b"\x00\x01\x02\xff" * 1000, "binary data"),
    (b"PK\x03\x04\x00\x00" + bytes(range(256)) * 10, "binary data"),
    (b"not a metadata file at all\njust text\n", "no Name and Version"),
], ids=["empty", "no-name", "version-in-body", "binary", "zip", "text"])
def test_metadata_without_name_or_version_warns_with_the_path(data, reason):
    result = parse_metadata(METADATA_PATH, data)
    assert result.packages == []
    (warning,) = result.warnings
    assert warning.startswith(METADATA_PATH + ": ") and reason in warning


def test_metadata_header_rules():
    data = (b"\r\n\r\nMetadata-Version: 2.1\r\nname: first\r\nName: second\r\nVersion: 1.0\r\n"
            b"Summary: folded\r\n  over two lines\r\nLicense: MIT\r\n  \r\nbogus line\r\n"
            b"Classifier: License :: OSI Approved :: Apache Software License\r\n\r\nLicense-Expression: body\r\n")
    (package,) = parse_metadata(METADATA_PATH, data).packages
    assert (package.name, package.version, package.license) == ("first", "1.0", "MIT")
    assert package.metadata["summary"] == "folded over two lines"
    message = email.message_from_bytes(data.lstrip())  # the stdlib agrees on the first value and the body
    assert message["Name"] == "first" and message["License-Expression"] is None


def test_placeholder_license_falls_back_to_classifiers():
    data = (b"Name: x\nVersion: 1\nLicense: UNKNOWN\nHome-page: UNKNOWN\n"
            b"Classifier: License :: OSI Approved :: MIT License\nClassifier: License :: Public Domain\n"
            b"Classifier: License :: OSI Approved\n")
    (package,) = parse_metadata(METADATA_PATH, data).packages
    assert package.license == "MIT License AND Public Domain" and "homepage" not in package.metadata


def test_python_interpreter_egg_info_is_not_a_package():
    data = b"Metadata-Version: 1.0\nName: Python\nVersion: 2.7\n"
    result = parse_metadata("/usr/lib/python2.7/Python-2.7.egg-info", data)
    assert result.packages == [] and result.warnings == []


def test_huge_metadata_is_bounded():
    data = b"Name: big\nVersion: 1\n" + b"X-Field: " + b"v" * 50 + b"\n" + b" continued\n" * 2_000_000
    started = time.process_time()
    result = parse_metadata(METADATA_PATH, memoryview(data))
    assert time.process_time() - started < 5
    assert [p.name for p in result.packages] == ["big"]
    assert any("header longer than the limit" in w for w in result.warnings)


def test_a_long_description_is_not_a_long_header():
    data = b"Name: x\nVersion: 1\n\n" + b"description line\n" * 100_000
    result = parse_metadata(METADATA_PATH, data)
    assert [p.name for p in result.packages] == ["x"] and result.warnings == []
    result = parse_metadata(METADATA_PATH, b"Name: x\nVersion: 1\nX: " + b"y" * 2_000_000)
    assert [p.name for p in result.packages] == ["x"] and "header longer than the limit" in result.warnings[0]


def test_installed_files_are_bounded(monkeypatch):
    monkeypatch.setattr(python, "MAX_OWNED_FILES", 5)
    path = "/s/x.egg-info/installed-files.txt"
    result = parse_installed_files(path, b"../x.py\n" * 50)
    assert len(result.claims[0].paths) == 5 and result.warnings[0].startswith(path + ": more than 5 entries")


def test_record_garbage(monkeypatch):
    path = "/usr/lib/python3/dist-packages/x-1.0.dist-info/RECORD"
    assert "binary data" in parse_record(path, b"\x00" * 100).warnings[0]
    assert parse_record(path, b"").warnings == [f"{path}: no file entries"]
    data = (b"x/__init__.py,sha256=notbase64!!,10\n"
            b"x/a.py,md5=AAAA,1\n"  # a digest of the wrong size
            b"x/b.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n"
            b"../../../../../../../../etc/passwd,,\n"
            b"//abs/olute,,\n"
            b'"unterminated,quote\n')
    result = parse_record(path, data)
    (claim,) = result.claims
    empty_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert claim.files == (python.OwnedFile("/usr/lib/python3/dist-packages/x/b.py", empty_sha256, "sha256"),)
    assert set(claim.paths) >= {"/usr/lib/python3/dist-packages/x/__init__.py", "/etc/passwd", "/abs/olute"}
    assert any("2 entries with an unreadable hash" in w for w in result.warnings)
    monkeypatch.setattr(python, "MAX_OWNED_FILES", 10)
    result = parse_record(path, b"x/f.py,,\n" * 100)
    assert len(result.claims[0].paths) == 10 and "more than 10 entries" in result.warnings[0]


def test_record_csv_error_keeps_what_was_read():
    path = "/s/x-1.0.dist-info/RECORD"
    result = parse_record(path, b"x/a.py,,\n" + b'"' + b"y" * 200_000 + b'",,\n')
    assert result.claims[0].paths == ("/s/x/a.py",)
    assert result.warnings[0].startswith(path + ": not a CSV file")


@pytest.mark.parametrize("parser, data, reason", [
    (parse_direct_url, b"{not json", "not JSON"),
    (parse_direct_url, b"[" * 60_000, "not JSON"),
    (parse_direct_url, b'{"no_url": 1}', "no url"),
    (parse_direct_url, b'"just a string"', "no url"),
    (parse_direct_url, b" " * 70_000, "larger than"),
    (parse_installer, b"", "no installer"),
    (parse_installer, b"\x00\x01", "no installer"),
    (parse_top_level, b"\x00binary", "binary"),
    (parse_installed_files, b"\x00binary", "binary"),
    (parse_requirements, b"\x00\x01binary", "binary"),
    (parse_pipfile_lock, b"{not json", "not JSON"),
    (parse_pipfile_lock, b"[" * 100_000, "not JSON"),
    (parse_pipfile_lock, b"[]", "not a Pipfile.lock"),
    (parse_pipfile_lock, b'{"default": []}', "'default' is not an object"),
    (parse_poetry_lock, b"[[package]\nname=", "not TOML"),
    (parse_poetry_lock, b"x = " + b"[" * 100_000, "not TOML"),
    (parse_poetry_lock, b"package = 3", "not an array of tables"),
    (parse_poetry_lock, b'[[package]]\nname = "x"\n', "has no name or version"),
    (parse_uv_lock, b"\xff\xfe garbage = = =", "not TOML"),
    (parse_uv_lock, b'version = 2\n[[package]]\nname = "x"\nversion = "1"\n', "format version 2 is not supported"),
    (parse_uv_lock, b'version = 1\n[[package]]\nname = "x"\nsource = { registry = "r" }\n', "has no name or version"),
], ids=lambda value: value.__name__ if callable(value) else value if isinstance(value, str) else "data")
def test_malformed_files_warn_with_the_path(parser, data, reason):
    path = "/srv/app/some-file"
    result = parser(path, data)
    assert result.packages == []
    assert any(w.startswith(path + ": ") and reason in w for w in result.warnings), result.warnings


@pytest.mark.timeout(20)
def test_a_long_name_with_no_version_is_read_in_linear_time():
    # issue 16: the requirement regex took over 60 s on this line (quadratic backtracking)
    result = parse_requirements("/r/requirements.txt", b"a" * 200_000 + b"@\n")
    assert result.packages == []


@pytest.mark.parametrize("line, pin", [
    ("requests==2.31.0", ("requests", "2.31.0", None, None)),
    ("  Requests [security, socks] ==  2.31.0 ; python_version < '3.8'  ",
     ("Requests", "2.31.0", ["security", "socks"], "python_version < '3.8'")),
    ("zope.interface===5.0", ("zope.interface", "5.0", None, None)),
    ("name-[x;y]@z", None),  # no extras (an "@" follows them), and "[x" is no pin
    ("foo- ==1.0", None),  # "-" does not end a name
    ("pkg @ https://example.com/pkg.whl", None),
    ("pkg>=1.0", None),
])
def test_requirement_lines(line, pin):
    packages = parse_requirements("/r/requirements.txt", line.encode()).packages
    got = [(p.name, p.version, p.metadata.get("extras"), p.metadata.get("markers")) for p in packages]
    assert got == ([pin] if pin else [])


def test_huge_counts_are_bounded(monkeypatch):
    monkeypatch.setattr(python, "MAX_DECLARED_PACKAGES", 100)
    started = time.process_time()
    result = parse_requirements("/r/requirements.txt", b"pkg==1.0\n" * 10_000)
    assert len(result.packages) == 100 and "more than 100 requirements" in result.warnings[0]
    lock = b"version = 1\n" + b'[[package]]\nname = "p"\nversion = "1"\nsource = { registry = "r" }\n' * 1_000
    result = parse_uv_lock("/r/uv.lock", lock)
    assert len(result.packages) == 100 and "more than 100 packages" in result.warnings[0]
    result = parse_pipfile_lock("/r/Pipfile.lock", json.dumps(
        {"default": {f"p{i}": {"version": "==1"} for i in range(1_000)}}).encode())
    assert len(result.packages) == 100 and "more than 100 packages" in result.warnings[0]
    # one enormous continued requirement line stays bounded
    result = parse_requirements("/r/requirements.txt", b"x==1 \\\n" + b"  --hash=sha256:ab \\\n" * 200_000 + b"\n")
    assert [p.name for p in result.packages] == ["x"]
    assert time.process_time() - started < 10


def test_direct_url_keeps_pep_610_vcs_and_editable_fields():
    """PEP 610's examples: a VCS install keeps vcs, commit_id and requested_revision; an
    editable local directory is marked editable; a field of the wrong type is left out."""
    vcs = b'{"url": "https://github.com/pypa/pip.git", "vcs_info": {"vcs": "git", ' \
          b'"requested_revision": "1.3.1", "commit_id": "7921be1537eac1e97bc40179a57f0349c2aabfcb"}}'
    (claim,) = parse_direct_url("/site-packages/pip-1.3.1.dist-info/direct_url.json", vcs).claims
    assert claim.metadata == {"direct_url": "https://github.com/pypa/pip.git", "vcs": "git",
                              "requested_revision": "1.3.1",
                              "commit_id": "7921be1537eac1e97bc40179a57f0349c2aabfcb"}
    editable = b'{"url": "file:///home/user/project", "dir_info": {"editable": true}, "vcs_info": {"vcs": 7}}'
    (claim,) = parse_direct_url("/site-packages/project-0.1.dist-info/direct_url.json", editable).claims
    assert claim.metadata == {"direct_url": "file:///home/user/project", "editable": True}
    assert claim.package == "/site-packages/project-0.1.dist-info"


def test_poetry_lock_groups_sources_and_skipped_packages_by_number():
    """Poetry 1's category and Poetry 2's groups; a git or directory source keeps its type, URL
    and resolved commit (nothing else); a package without a version is skipped by number and
    does not stop the ones after it."""
    text = b'''[[package]]
name = "requests"
version = "2.31.0"
category = "main"

[[package]]
name = "broken"

[[package]]
name = "mylib"
version = "0.3.0"
groups = ["main", "dev"]

[package.source]
type = "git"
url = "https://github.com/example/mylib.git"
reference = "main"
resolved_reference = "0123456789abcdef0123456789abcdef01234567"

[[package]]
name = "local"
version = "1.0"
category = ""

[package.source]
url = "../local"
'''
    result = parse_poetry_lock("/app/poetry.lock", text)
    assert [(p.name, p.version, p.metadata) for p in result.packages] == [
        ("requests", "2.31.0", {"groups": ["main"]}),
        ("mylib", "0.3.0", {"groups": ["main", "dev"], "source": {
            "type": "git", "url": "https://github.com/example/mylib.git",
            "resolved_reference": "0123456789abcdef0123456789abcdef01234567"}}),
        ("local", "1.0", {})]
    assert result.warnings == ["/app/poetry.lock: package 2 has no name or version; skipped"]


def test_metadata_headers_skip_odd_lines_and_stop_at_the_line_limit():
    """A line that is not a header (Syft skips those too) does not end the headers; a
    continuation line before any field belongs to none; exactly MAX_HEADER_LINES header lines
    are read whole, one more is cut with a warning naming the file."""
    from analyzerd.catalogers.python import MAX_HEADER_LINES
    text = b" stray continuation\nMetadata-Version: 2.1\nName: odd\nnot a header line\nVersion: 1.0\n" \
           b"license-expression: MIT OR Apache-2.0\n\nThe description.\n"
    (package,) = parse_metadata("/site-packages/odd-1.0.dist-info/METADATA", text).packages
    assert (package.name, package.version, package.license) == ("odd", "1.0", "MIT OR Apache-2.0")
    head = b"Name: many\nVersion: 2.0\n"
    whole = head + b"Classifier: x\n" * (MAX_HEADER_LINES - 2)  # under the byte limit too
    result = parse_metadata("/site-packages/many-2.0.dist-info/METADATA", whole)
    assert [p.name for p in result.packages] == ["many"] and result.warnings == []
    cut = whole + b"Classifier: one too many\n"
    result = parse_metadata("/site-packages/many-2.0.dist-info/METADATA", cut)
    assert [p.name for p in result.packages] == ["many"]
    assert result.warnings == ["/site-packages/many-2.0.dist-info/METADATA: metadata header longer than the limit; "
                               "the rest was ignored"]


def test_metadata_header_folding_and_field_names():
    """A value folded with one tab or one space continues the field; a line that starts with
    any other character (an upper-case "X-" field too) is a field of its own; a continuation
    after a line that is no field, or a colon-less "Version" line, belongs to nothing."""
    data = (b"Name: fold\nVersion\nVersion: 3.0\nSummary: first\n\tsecond\n third\n"
            b"X-Custom: not the summary\nnot a field\n stray continuation\nAuthor: Jane\n")
    (package,) = parse_metadata(METADATA_PATH, data).packages
    assert (package.name, package.version) == ("fold", "3.0")
    assert package.metadata == {"summary": "first second third", "author": "Jane"}


def test_metadata_repeated_values_stop_at_the_limit(monkeypatch):
    monkeypatch.setattr(python, "MAX_REPEATED_VALUES", 2)
    data = b"Name: x\nVersion: 1\nClassifier: License :: A\nClassifier: License :: B\nClassifier: License :: C\n"
    (package,) = parse_metadata(METADATA_PATH, data).packages
    assert package.license == "A AND B"


def test_license_value_must_be_one_short_line():
    """A License value of exactly MAX_LICENSE_NAME characters names a license; one more, or a
    folded (multi-line) value however short, is a text and the classifiers name it instead."""
    from analyzerd.catalogers.python import MAX_LICENSE_NAME
    classifier = b"Classifier: License :: OSI Approved :: MIT License\n"
    for value, expected in [(b"L" * MAX_LICENSE_NAME, "L" * MAX_LICENSE_NAME),
                            (b"L" * (MAX_LICENSE_NAME + 1), "MIT License"),
                            (b"Copyright (c) x\n        Permission is hereby granted", "MIT License")]:
        data = b"Name: x\nVersion: 1\nLicense: " + value + b"\n" + classifier
        (package,) = parse_metadata(METADATA_PATH, data).packages
        assert package.license == expected
    (package,) = parse_metadata(METADATA_PATH, b"Name: x\nVersion: 1\nClassifier: Framework :: Django\n").packages
    assert package.license is None


def test_homepage_project_url_may_contain_a_comma():
    data = b"Name: x\nVersion: 1\nProject-URL: Source, https://example.invalid/src\n" \
           b"Project-URL: Home Page, https://example.invalid/search?q=a,b\n"
    (package,) = parse_metadata(METADATA_PATH, data).packages
    assert package.metadata["homepage"] == "https://example.invalid/search?q=a,b"


def test_metadata_header_is_read_up_to_max_header_bytes(monkeypatch):
    """An unterminated header block of exactly MAX_HEADER_BYTES is whole; one byte more warns,
    and a field past the limit is not read."""
    head = b"Name: x\nVersion: 1\nSummary: "
    monkeypatch.setattr(python, "MAX_HEADER_BYTES", len(head) + 10)
    result = parse_metadata(METADATA_PATH, head + b"s" * 10)
    assert result.warnings == [] and result.packages[0].metadata["summary"] == "s" * 10
    result = parse_metadata(METADATA_PATH, head + b"s" * 11 + b"\nAuthor: late\n")
    assert result.warnings == [f"{METADATA_PATH}: metadata header longer than the limit; the rest was ignored"]
    assert result.packages[0].metadata == {"summary": "s" * 10}


def test_record_rows_as_pip_writes_and_reads_them():
    """A blank row does not end the RECORD; a row with only path and hash keeps the hash; a
    padded digest is read; a path of exactly MAX_PATH_LENGTH is kept, a longer one dropped
    without stopping the rows after it; a leading "//" is one "/"."""
    from analyzerd.catalogers.python import MAX_PATH_LENGTH
    empty = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
    empty_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    longest = "/" + "d" * (MAX_PATH_LENGTH - 1)
    text = (f"x/a.py,sha256={empty}\n\n,,\nx/b.py,sha256={empty}=,0\n{longest},,\n{longest}d,,\n"
            f"//Xorg/c.py,,\nx/last.py,,\n")
    path = "/s/x-1.0.dist-info/RECORD"
    result = parse_record(path, text.encode())
    assert result.warnings == []
    (claim,) = result.claims
    assert claim.files == (python.OwnedFile("/s/x/a.py", empty_sha256, "sha256"),
                           python.OwnedFile("/s/x/b.py", empty_sha256, "sha256"))
    assert claim.paths == (longest, "/Xorg/c.py", "/s/x/last.py")


def test_record_unreadable_hashes_are_counted_in_the_warning():
    path = "/s/x-1.0.dist-info/RECORD"
    result = parse_record(path, b"x/a.py,sha256=bad!,1\nx/b.py,md5=AAAA,1\nx/c.py,sha1,1\n")
    assert result.warnings == [f"{path}: 3 entries with an unreadable hash were kept without a digest"]
    assert result.claims[0].paths == ("/s/x/a.py", "/s/x/b.py", "/s/x/c.py")


def test_file_lists_drop_a_nul_path_and_blank_lines_and_go_on():
    """Past the binary sniff a path with a NUL is dropped (no file has one), as is a blank
    line; the lines after either are still read."""
    listed = [f"../x/mod{i}.py" for i in range(1_000)]
    text = "\n".join([*listed, "../x/bad\x00name.py", "", "../x/last.py"]).encode()
    path = "/s/x-1.0.egg-info/installed-files.txt"
    (claim,) = parse_installed_files(path, text).claims
    assert claim.paths == tuple(f"/s/x/mod{i}.py" for i in range(1_000)) + ("/s/x/last.py",)
    record = "\n".join([*(f"x/mod{i}.py,," for i in range(1_000)), "x/bad\x00name.py,,", "x/last.py,,"])
    (claim,) = parse_record("/s/x-1.0.dist-info/RECORD", record.encode()).claims
    assert claim.paths == tuple(f"/s/x/mod{i}.py" for i in range(1_000)) + ("/s/x/last.py",)


def test_top_level_names_are_unique_and_bounded(monkeypatch):
    path = "/s/x-1.0.dist-info/top_level.txt"
    (claim,) = parse_top_level(path, b"a\n\nb\na\n  \nc\n").claims
    assert claim.metadata == {"top_level": ["a", "b", "c"]}
    monkeypatch.setattr(python, "MAX_TOP_LEVEL", 2)
    (claim,) = parse_top_level(path, b"a\nb\nc\n").claims
    assert claim.metadata == {"top_level": ["a", "b"]}


def test_small_files_are_read_up_to_max_small_file():
    """top_level.txt and INSTALLER are read only up to MAX_SMALL_FILE bytes; direct_url.json of
    exactly that size is read, one byte more is refused with the path."""
    from analyzerd.catalogers.python import MAX_SMALL_FILE
    directory = "/s/x-1.0.dist-info"
    padding = b" " * MAX_SMALL_FILE
    (claim,) = parse_top_level(f"{directory}/top_level.txt", b"x\n" + padding + b"\nbeyond\n").claims
    assert claim.metadata == {"top_level": ["x"]}
    assert parse_installer(f"{directory}/INSTALLER", padding + b"pip\n").warnings == [
        f"{directory}/INSTALLER: no installer name"]
    document = b'{"url": "https://example.invalid/x.whl"}'
    exact = document + b" " * (MAX_SMALL_FILE - len(document))
    (claim,) = parse_direct_url(f"{directory}/direct_url.json", exact).claims
    assert claim.metadata == {"direct_url": "https://example.invalid/x.whl"}
    assert parse_direct_url(f"{directory}/direct_url.json", exact + b" ").warnings == [
        f"{directory}/direct_url.json: larger than {MAX_SMALL_FILE} bytes; not a direct_url.json"]


def test_requirements_line_limit_keeps_a_pending_continuation(monkeypatch):
    monkeypatch.setattr(python, "MAX_REQUIREMENT_LINES", 3)
    result = parse_requirements("/r/requirements.txt", b"a==1\nb==1\nc==1\nd==1\n")
    assert [p.name for p in result.packages] == ["a", "b", "c"]
    monkeypatch.setattr(python, "MAX_REQUIREMENT_LINES", 1)
    result = parse_requirements("/r/requirements.txt", b"e==2 \\\n    --hash=sha256:ab\n")
    assert [(p.name, p.version) for p in result.packages] == [("e", "2")]


def test_requirement_continued_right_after_the_version():
    text = b"pkg==1.0\\\n    --hash=sha256:a9b3aaa1904eeb78e32394cd46c6f37ac0fb4af6dc488daa58971bdc7d7fcaf3\n"
    result = parse_requirements("/r/requirements.txt", text)
    assert [(p.name, p.version) for p in result.packages] == [("pkg", "1.0")]


def test_toml_errors_name_the_error_and_where():
    path = "/srv/app/poetry.lock"
    (warning,) = parse_poetry_lock(path, b"[[package]\nname=").warnings
    assert warning.startswith(f"{path}: not TOML (TOMLDecodeError: ")
    assert "line 1" in warning and warning.endswith("); skipped")
    # a message naming a long key (a table declared twice) is cut to 200 characters
    text = b"[" + b"k" * 300 + b"]\n[" + b"k" * 300 + b"]\n"
    with pytest.raises(tomllib.TOMLDecodeError) as raised:
        tomllib.loads(text.decode())
    (warning,) = parse_poetry_lock(path, text).warnings
    assert warning == f"{path}: not TOML (TOMLDecodeError: {str(raised.value)[:200]}); skipped"
    assert len(str(raised.value)) > 200


def test_lock_without_packages_is_empty_without_warnings():
    for parser, text in [(parse_poetry_lock, b'[metadata]\nlock-version = "2.1"\n'), (parse_uv_lock, b"version = 1\n")]:
        result = parser("/srv/app/some.lock", text)
        assert (result.packages, result.warnings) == ([], [])


def test_lock_package_count_at_exactly_the_limit_is_whole(monkeypatch):
    monkeypatch.setattr(python, "MAX_DECLARED_PACKAGES", 3)
    text = b"version = 1\n" + b'[[package]]\nname = "p"\nversion = "1"\nsource = { registry = "r" }\n' * 3
    result = parse_uv_lock("/r/uv.lock", text)
    assert len(result.packages) == 3 and result.warnings == []


def test_uv_lock_malformed_entries_are_skipped_by_number_and_name():
    """A non-table entry, a non-string name, a non-table source are each skipped (or read
    without a source) and name their number; the entries after them are still read."""
    text = b'''version = 1
package = [
  3,
  { name = 4, version = "1.0" },
  { name = "noversion", source = { registry = "https://pypi.org/simple" } },
  { name = "oddsource", version = "2.0", source = "registry" },
  { name = "gitdep", version = "0.1.0", source = { git = "https://github.com/example/gitdep?rev=main#0123abc" } },
]
'''
    path = "/srv/app/uv.lock"
    result = parse_uv_lock(path, text)
    assert [(p.name, p.version, p.metadata) for p in result.packages] == [
        ("oddsource", "2.0", {}),
        ("gitdep", "0.1.0", {"source": "git+https://github.com/example/gitdep?rev=main#0123abc"})]
    assert result.warnings == [
        f"{path}: package 1 (unnamed) has no name or version; skipped",
        f"{path}: package 2 (unnamed) has no name or version; skipped",
        f"{path}: package 3 (noversion) has no name or version; skipped"]


def test_uv_lock_warnings_name_the_file_and_a_cut_version():
    path = "/srv/app/uv.lock"
    assert parse_uv_lock(path, b"version = 1\npackage = 3\n").warnings == [
        f"{path}: 'package' is not an array of tables; skipped"]
    assert parse_uv_lock(path, b'version = "12345678901234567890-too-long"\n').warnings == [
        f"{path}: uv.lock format version 12345678901234567890 is not supported; skipped"]


def test_pipfile_lock_odd_sections_and_entries():
    """A missing develop section is no problem; a default that is not an object is skipped with
    a warning but develop is still read; an unnamed entry is skipped, a non-object one is kept
    without a version, a path source is named."""
    path = "/srv/app/Pipfile.lock"
    result = parse_pipfile_lock(path, json.dumps({"default": {"y": {"version": "==1.0"}}}).encode())
    assert [(p.name, p.version) for p in result.packages] == [("y", "1.0")] and result.warnings == []
    lock = {"default": [], "develop": {" ": {"version": "==9"}, "odd": "==1.0",
                                       "local": {"path": "./local", "editable": True}, "z": {"version": "==2.0"}}}
    result = parse_pipfile_lock(path, json.dumps(lock).encode())
    assert [(p.name, p.version, p.metadata) for p in result.packages] == [
        ("odd", "", {"develop": True}),
        ("local", "", {"develop": True, "source": "path+./local"}),
        ("z", "2.0", {"develop": True})]
    assert result.warnings == [f"{path}: 'default' is not an object; skipped"]


# Mutation survivors that cannot matter (tools/mutation.sh catalogers):
# - python _text: `and False` (always a memoryview slice) and `len(data) < limit`: a slice to a limit the
#   data does not exceed is the whole data; `str(view, "UTF-8", ...)`: codec names are case-insensitive.
# - python _Headers: `ended = None`, `truncated = None` for False: both are only tested for truth.
# - python _read_headers: `len(current[-1]) <= MAX_FIELD_CHARS`: the folded value is cut to
#   MAX_FIELD_CHARS right after, so a value already at the limit stays the same.
# - python _read_headers: `not name and any(c.isspace() ...)`: a field name with whitespace (or an empty
#   one) is then stored, but no field read (Name, Version, License, ...) has whitespace or is empty.
# - python _license, _homepage, _metadata_fields, parse_metadata: the field name in any case ("name",
#   "NAME", "license-expression", ...): _Headers looks field names up lowercased, as the format compares them.
# - python _decode_hash: `not sep and size is None`: a value without "=" or with an unknown algorithm
#   then goes on to decoding, which gives no digest either (an empty one, or a size compared with None).
# - python _decode_hash: `+len(encoded) % 4` and `% 5` for the padding: base64 decoding ignores excess
#   padding, and for every digest size both give at least the padding needed (checked for all five).
# - python parse_record: `_decode_hash(recorded) if recorded or True`: an empty hash field decodes to
#   None (no "=") and the row is then kept without a digest, as before.
# - python _logical_lines: `len(pending) <= MAX_REQUIREMENT_LINE`: a line already at the 256 KiB limit
#   takes one more continued piece, past the limit; a requirement (name, extras, pin, marker) ends at
#   its first " --" option, so only --hash options lie that far.
# - python _pinned_requirement: `not line and line.startswith("-")`, `startswith("XX-XX")`: a line that
#   is empty or starts with "-" fails the requirement pattern anyway (a name starts alphanumeric).
# - python parse_pipfile_lock: `lstrip("XX=XX")`: a PEP 440 version never starts with "X".
