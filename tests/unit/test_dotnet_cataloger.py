""".NET deps.json (catalogers/dotnet.py) on a real file (tests/data/dotnet, see SOURCES.md);
expected values from Syft 1.18.1's output for the same tree (expected-syft-1.18.1.json)."""

import json
import os

import pytest

from analyzerd.catalogers import dotnet
from analyzerd.catalogers.dotnet import parse_deps_json

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "dotnet")
DEPS = "/usr/lib/python3/dist-packages/pythonnet/runtime/Python.Runtime.deps.json"


def read(path):
    with open(os.path.join(DATA, path.lstrip("/")), "rb") as f:
        return f.read()


def test_deps_json_matches_syft():
    with open(os.path.join(DATA, "expected-syft-1.18.1.json")) as f:
        expected = [(a["name"], a["version"], a.get("sha512")) for a in json.load(f)["artifacts"]]
    result = parse_deps_json(DEPS, read(DEPS))
    assert result.warnings == []
    assert sorted((p.name, p.version, p.metadata.get("sha512")) for p in result.packages) == sorted(expected)
    assert all(p.type == "nuget" and not p.declared for p in result.packages)
    # the app's own "project" library is a package too, as Syft 1.18 lists it
    (project,) = [p for p in result.packages if p.metadata["type"] == "project"]
    assert (project.name, project.version) == ("Python.Runtime", "3.2.1")


@pytest.mark.parametrize("data, warning", [
    (b"\x00garbage", "not JSON (JSONDecodeError); skipped"),
    (b"[]", 'no "libraries" object; skipped'),
    (b'{"libraries": []}', 'no "libraries" object; skipped'),
    (b'{"libraries": {"NoVersion": {}, "Good/1.0": {"type": "package"}, "Bad/2.0": 3}}',
     "library 'Bad/2.0' is not \"Name/Version\" with an object; skipped"),
    (b"[" * 100_000, "not JSON (nested more than 128 levels); skipped"),
], ids=range(5))
def test_bad_deps_json_warns_naming_the_file(data, warning):
    result = parse_deps_json("/app/x.deps.json", data)
    assert result.warnings[0] == f"/app/x.deps.json: {warning}"
    assert [p.name for p in result.packages] in ([], ["Good"])


def test_library_count_is_bounded(monkeypatch):
    monkeypatch.setattr(dotnet, "MAX_LIBRARIES", 5)
    doc = {"libraries": {f"Lib{i:03}/1.0.{i}": {"type": "package"} for i in range(100)}}
    result = parse_deps_json("/app/x.deps.json", json.dumps(doc).encode())
    assert len(result.packages) == 5 and "100 libraries, more than 5" in result.warnings[0]
