"""Go: the build info decoder, go.mod and go.sum (catalogers/golang.py) on real files
(tests/data/golang, see SOURCES.md). Expected values: Syft 1.18.1's output for the same tree
(expected-syft-1.18.1.json) and ``go version -m``; binaries are scanned in
test_binary_cataloger.py."""

import glob
import os
import random
import re
import shutil
import subprocess

import pytest

from analyzerd.catalogers import golang
from analyzerd.catalogers.binary import BinaryScanner
from analyzerd.catalogers.golang import (
    go_sum_key,
    parse_go_buildinfo,
    parse_go_mod,
    parse_go_sum,
)
from tests.helpers import Fixtures

DATA = Fixtures("golang").root
GO_MODS = ["/usr/share/gocode/src/github.com/prometheus/client_golang/go.mod",
           "/usr/share/gocode/src/github.com/containerd/containerd/go.mod",
           "/usr/src/hello2/go.mod"]


FIXTURES = Fixtures("golang")
read, syft_expected = FIXTURES.read, FIXTURES.syft_expected


def with_go_sum(go_mod_path, packages):
    """What the integrator does: the go.sum beside a go.mod fills the h1 of its packages."""
    go_sum_path = go_mod_path[: -len("go.mod")] + "go.sum"
    if not os.path.exists(os.path.join(DATA, go_sum_path.lstrip("/"))):
        return {(p.name, p.version): None for p in packages}
    claims = {c.package: c.metadata["h1"] for c in parse_go_sum(go_sum_path, read(go_sum_path)).claims}
    return {(p.name, p.version): claims.get(go_sum_key(go_mod_path, p.name, p.version)) for p in packages}


@pytest.mark.parametrize("path", GO_MODS)
def test_go_mod_matches_syft(path):
    result = parse_go_mod(path, read(path))
    assert result.warnings == []
    assert all(p.type == "golang" and p.declared and p.namespace is None for p in result.packages)
    expected = {(a["name"], a["version"]): a.get("h1Digest") for a in syft_expected(path)}
    assert len(result.packages) == len(syft_expected(path))
    assert with_go_sum(path, result.packages) == expected


def test_go_mod_replacement_takes_the_place_of_the_replaced_module():
    (package,) = parse_go_mod("/usr/src/hello2/go.mod", read("/usr/src/hello2/go.mod")).packages
    assert (package.name, package.version) == ("example.org/forks/errors", "v0.9.2-fork.1")


def test_go_mod_replace_block_exclude_and_local_directory():
    text = b"""module example.com/m

go 1.21

require (
\tgithub.com/a/b v1.0.0 // indirect
\t"github.com/quoted/c" v1.2.0
\tgithub.com/gone/d v0.1.0
)

require github.com/e/f v2.0.0+incompatible

replace (
\tgithub.com/a/b v1.0.0 => github.com/fork/b v1.0.1
\tgithub.com/e/f => ../local/f
)

exclude github.com/gone/d v0.1.0
retract v0.0.1
"""
    got = [(p.name, p.version) for p in parse_go_mod("/m/go.mod", text).packages]
    # as Syft 1.18: the replaced module leaves, the replacement (a local directory too) comes in
    assert got == [("../local/f", ""), ("github.com/fork/b", "v1.0.1"), ("github.com/quoted/c", "v1.2.0")]


@pytest.mark.parametrize("data, warning", [
    (b"\x00\x01\x02\x7fELF" * 100, "binary data, not a go.mod"),
    (b"require\nreplace a\nrequire (\nonlyone\n", "require without a module and version"),
])
def test_go_mod_garbage_warns_naming_the_file(data, warning):
    result = parse_go_mod("/app/go.mod", data)
    assert result.packages == []
    assert result.warnings and all(w.startswith("/app/go.mod: ") for w in result.warnings)
    assert warning in result.warnings[0]


def test_go_mod_module_count_is_bounded(monkeypatch):
    monkeypatch.setattr(golang, "MAX_MODULES", 100)
    text = "require (\n" + "".join(f"\texample.com/m{i} v1.0.{i}\n" for i in range(10_000)) + ")\n"
    result = parse_go_mod("/app/go.mod", text.encode())
    assert len(result.packages) == 100 and "more than 100 modules" in result.warnings[0]


def test_go_sum_claims_and_bounds(monkeypatch):
    result = parse_go_sum("/usr/src/hello2/go.sum", read("/usr/src/hello2/go.sum"))
    assert [(c.package, c.metadata) for c in result.claims] == [
        ("/usr/src/hello2/go.mod#example.org/forks/errors@v0.9.2-fork.1",
         {"h1": "h1:BkkF6tNgVV1Msx3hiFHKh7oh8l71jPhtkn4SqsWBD9g="})]
    monkeypatch.setattr(golang, "MAX_MODULES", 10)
    text = "".join(f"example.com/m{i} v1.0.0 h1:x{i}=\nbroken line\n" for i in range(1000))
    bounded = parse_go_sum("/a/go.sum", text.encode())
    assert len(bounded.claims) == 10 and bounded.warnings == ["/a/go.sum: more than 10 entries; the rest are skipped"]
    assert parse_go_sum("/a/go.sum", b"\x00" * 100).warnings == ["/a/go.sum: binary data, not a go.sum; skipped"]


# -- the build info decoder -------------------------------------------------------------------

MODINFO = "path\texample.com/cmd/x\nmod\texample.com\t(devel)\t\ndep\tgithub.com/a/b\tv1.0.0\th1:ab=\n"


@pytest.mark.parametrize("settings, version", [
    # Syft 1.18's findMainModuleVersion: a semver in -ldflags first, then the VCS stamp
    ('build\t-ldflags="-X main.version=1.2.3"\n', "v1.2.3"),
    ('build\t-ldflags="-s -w -X github.com/x/y/internal/version.Version=v2.0.0-rc1"\n', "v2.0.0-rc1"),
    ('build\t-ldflags="-X main.gitTag=v0.4.0"\n', "(devel)"),
    ('build\t-ldflags="-X main.Tag=v0.4.0"\n', "v0.4.0"),
    ("build\tvcs.revision=0123456789abcdef0123\nbuild\tvcs.time=2023-11-02T09:08:07+01:00\n",
     "v0.0.0-20231102080807-0123456789ab"),
    ("build\tvcs.revision=abc\nbuild\tvcs.time=yesterday\n", "v0.0.0-00010101000000-abc"),
    ("build\tvcs.revision=abc\n", "(devel)"),
])
def test_main_module_version(settings, version):
    result = parse_go_buildinfo("/bin/x", "go1.21.5", MODINFO + settings)
    assert [(p.name, p.version) for p in result.packages] == [
        ("github.com/a/b", "v1.0.0"), ("example.com", version), ("stdlib", "go1.21.5")]


@pytest.mark.timeout(20)
def test_a_long_ldflags_path_is_read_in_linear_time():
    # issue 16: "-X main.version=a/a/.../x" (60 components) sent the ldflags regex into
    # exponential backtracking; a key repeated along one word was quadratic
    for ldflags in ("-X main.version=" + "a/" * 60 + "x", "-X main.version=" + "a/" * 100_000 + "x",
                    ".version=" * 50_000 + "x"):
        result = parse_go_buildinfo("/bin/x", "go1.21.5", MODINFO + f'build\t-ldflags="{ldflags}"\n')
        assert result.packages[1].version == "(devel)"


def test_ldflags_versions_are_syfts_first_match():
    """The key and the version are matched apart: the result is what Syft's single pattern
    finds first (Go's engine and Python's agree on it), here on texts made of its pieces."""
    syft_patterns = (
        re.compile(r"\.(?:[gG]it)?(?:[bB]uild)?[vV]er(?:sion)?=(?:\S+/)*(?P<version>v?\d+.\d+.\d+[-\w]*)", re.ASCII),
        re.compile(r"\.(?:[tT]ag)=(?:\S+/)*(?P<version>v?\d+.\d+.\d+[-\w]*)", re.ASCII))
    pieces = [".version=", ".ver=", ".Tag=", ".gitVersion=", "/", "a", "1", ".", "v", " ", "-", "x", "2.3", "=", "\t"]
    generator = random.Random(16)
    for _ in range(20_000):
        text = "".join(generator.choice(pieces) for _ in range(generator.randint(0, 10)))
        for syft, key in zip(syft_patterns, golang._LDFLAGS_KEYS):
            match = syft.search(text)
            assert golang._ldflags_version(key, text) == (match and match.group("version")), text


def test_experiments_are_dropped_from_the_go_version():
    result = parse_go_buildinfo("/bin/x", "go1.22.1 X:nocoverageredesign", MODINFO)
    assert {p.metadata["go_version"] for p in result.packages} == {"go1.22.1"}
    assert result.packages[-1].version == "go1.22.1" and result.packages[-1].license == "BSD-3-Clause"


def test_binary_outside_module_mode_reports_nothing():
    assert parse_go_buildinfo("/bin/x", "go1.21.5", "").packages == []


def test_bad_modinfo_lines_warn_and_the_rest_is_kept():
    modinfo = ("path\texample.com/x\n=>\torphan\tv1\t\ndep\tonly-one-column\ndep\tgood/dep\tv1.0.0\t\n"
               "build\tno-equals-sign\nbuild\t\"quoted key\"=\"v a l\"\nbuild\tGOARCH=arm64\n" + "x" * 10)
    result = parse_go_buildinfo("/bin/x", "go1.20", modinfo)
    assert [(p.name, p.version) for p in result.packages] == [
        ("good/dep", "v1.0.0"), ("example.com/x", "(devel)"), ("stdlib", "go1.20")]
    assert result.packages[1].metadata["build_settings"] == {"quoted key": "v a l", "GOARCH": "arm64"}
    assert len(result.warnings) == 3 and all(w.startswith("/bin/x: Go build info line ") for w in result.warnings)


def test_dependency_count_is_bounded(monkeypatch):
    monkeypatch.setattr(golang, "MAX_MODULES", 50)
    modinfo = "mod\tm\tv1.0.0\t\n" + "".join(f"dep\td{i}\tv1.0.0\t\n" for i in range(5000))
    result = parse_go_buildinfo("/bin/x", "go1.20", modinfo)
    assert len(result.packages) == 52 and "more than 50 dependencies" in result.warnings[0]


# -- a binary built here ----------------------------------------------------------------------

def find_go():
    return shutil.which("go") or next(iter(sorted(glob.glob("/usr/lib/go-*/bin/go"), reverse=True)), None)


PKG_ERRORS = "/usr/share/gocode/src/github.com/pkg/errors"


@pytest.mark.skipif(not find_go() or not os.path.isdir(PKG_ERRORS),
                    reason="needs Go and golang-github-pkg-errors-dev (apt-get install golang-go golang-github-pkg-errors-dev)")
def test_binary_built_with_ldflags_version(tmp_path):
    go = find_go()
    src = tmp_path / "src"
    shutil.copytree(os.path.join(DATA, "usr/src/hello2"), src, ignore=shutil.ignore_patterns("go.*"))
    (src / "go.mod").write_text("module example.com/hello\n\ngo 1.19\n\nrequire github.com/pkg/errors v0.9.1\n")
    shutil.copytree(PKG_ERRORS, src / "vendor/github.com/pkg/errors", ignore=shutil.ignore_patterns("*_test.go"))
    (src / "vendor/modules.txt").write_text("# github.com/pkg/errors v0.9.1\n## explicit\ngithub.com/pkg/errors\n")
    env = {**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=vendor", "CGO_ENABLED": "0",
           "GOCACHE": str(tmp_path / "cache"), "GOPATH": str(tmp_path / "gopath")}
    out = tmp_path / "hello"
    subprocess.run([go, "build", "-ldflags=-s -w -X main.version=1.2.3", "-o", str(out), "."], cwd=src, env=env,
                   check=True, capture_output=True, timeout=300)
    listing = subprocess.run([go, "version", "-m", str(out)], env=env, check=True, capture_output=True, text=True)
    deps = [line.split("\t")[2:4] for line in listing.stdout.splitlines() if line.startswith("\tdep\t")]

    scanner = BinaryScanner("/usr/local/bin/hello")
    with open(out, "rb") as f:
        while chunk := f.read(1 << 16):
            scanner.feed(chunk)
    result = scanner.finish()
    assert [[p.name, p.version] for p in result.packages[:-2]] == deps == [["github.com/pkg/errors", "v0.9.1"]]
    main = result.packages[-2]
    # Syft 1.18.1 reports this build's main module as v1.2.3 (see SOURCES.md)
    assert (main.name, main.version) == ("example.com/hello", "v1.2.3")
    assert result.packages[-1].name == "stdlib"
