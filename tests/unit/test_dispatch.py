"""Dispatch: the file-name prefilter must never change which cataloger a path goes to,
and stream scanners see an executable's bytes whole, however the stream is cut."""

import gzip
import hashlib
import random
import re

import pytest

from analyzerd.analysis.dispatch import Dispatch, glob_to_regex
from analyzerd.analysis.layer import LayerAnalyzer
from analyzerd.catalogers.base import Cataloger, Package, ParseResult
from analyzerd.catalogers.registry import CATALOGERS
from analyzerd.testing import Member, make_layer

SAMPLE_PATHS = [
    "/var/lib/dpkg/status", "/var/lib/dpkg/status.d/base", "/var/lib/dpkg/info/libc6:amd64.md5sums",
    "/etc/os-release", "/usr/lib/os-release", "/lib/apk/db/installed", "/var/lib/rpm/Packages",
    "/usr/lib/sysimage/rpm/rpmdb.sqlite", "/usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
    "/usr/lib/python3/dist-packages/six-1.16.0.dist-info/RECORD", "/app/requirements-dev.txt",
    "/srv/web/node_modules/@babel/core/package.json", "/srv/web/node_modules/x/dist/package.json",
    "/srv/web/package.json", "/srv/web/package-lock.json", "/opt/app.war", "/opt/lib/a.jar",
    "/usr/share/rubygems-integration/all/specifications/rake-13.0.6.gemspec", "/usr/bin/ls",
    "/usr/share/doc/README", "/x/METADATA", "/etc/passwd", "/a/b/Cargo.lock", "/go/src/x/go.mod",
]


def _naive(dispatch, path):
    for cataloger in dispatch.catalogers:
        for glob in cataloger.globs:
            if re.fullmatch(glob_to_regex(glob), path):
                return cataloger
    return None


def test_the_name_prefilter_agrees_with_plain_glob_matching():
    dispatch = Dispatch(CATALOGERS)
    rng = random.Random(7)
    names = [p.rpartition("/")[2] for p in SAMPLE_PATHS] + ["status", "x.jar", "a.txt", ""]
    dirs = [p.rpartition("/")[0] for p in SAMPLE_PATHS] + ["/node_modules/a", "/specifications"]
    paths = SAMPLE_PATHS + [f"{rng.choice(dirs)}/{rng.choice(names)}" for _ in range(3000)]
    for path in paths:
        assert dispatch.match(path) is _naive(dispatch, path), path



def _glob_matches(glob: str, path: str) -> bool:
    """The glob semantics, read straight off the definition by backtracking (exponential, for
    tiny inputs only): an independent oracle for glob_to_regex. ``**/`` is any run of whole
    directories (or none), ``*`` any run of characters but ``/``, ``?`` one character but ``/``."""
    if not glob:
        return not path
    if glob.startswith("**/"):
        rest = glob[3:]
        return _glob_matches(rest, path) or any(
            _glob_matches(rest, path[i + 1:]) for i, char in enumerate(path) if char == "/")
    head = glob[0]
    if head == "*":
        stop = path.find("/")
        stop = len(path) if stop < 0 else stop
        return any(_glob_matches(glob[1:], path[i:]) for i in range(stop + 1))
    if not path:
        return False
    if head == "?":
        return path[0] != "/" and _glob_matches(glob[1:], path[1:])
    return path[0] == head and _glob_matches(glob[1:], path[1:])


GLOB_CASES = [
    ("**/package.json", "/package.json", True), ("**/package.json", "package.json", True),
    ("**/package.json", "a/b/package.json", True), ("**/package.json", "a/bpackage.json", False),
    ("/a/**/b", "/a/b", True), ("/a/**/b", "/a/x/y/b", True), ("/a/**/b", "/ab", False),
    ("*.jar", "x.jar", True), ("*.jar", "d/x.jar", False), ("*.jar", ".jar", True),
    ("?.txt", "a.txt", True), ("?.txt", "/.txt", False), ("?.txt", "ab.txt", False),
    ("*req*.txt", "requirements.txt", True), ("*req*.txt", "dev-req-x.txt", True),
    ("*requirements*.txt", "requirements.txt", True), ("*requirements*.txt", "x-requirements-dev.txt", True),
    ("*requirements*.txt", "requirements/dev.txt", False), ("a*b*c", "abc", True), ("a*b*c", "a/b/c", False),
    ("a*b*c", "axbyc", True), ("a*b*c", "abcbc", True), ("a*b*c", "acb", False), ("a.b", "a.b", True),
    ("a.b", "axb", False), ("a+b", "a+b", True), ("(x)", "(x)", True), ("[ab]", "a", False),
]


@pytest.mark.parametrize(("glob", "path", "expected"), GLOB_CASES)
def test_globs_match_what_their_definition_says(glob, path, expected):
    assert _glob_matches(glob, path) is expected  # the oracle reads the cases as written
    assert (re.fullmatch(glob_to_regex(glob), path) is not None) is expected


def _double_star_is_a_component(glob: str) -> bool:
    return all(glob[at:at + 3] == "**/" and glob[at - 1:at] in ("", "/")
               for at in range(len(glob)) if glob.startswith("**", at))


def test_glob_to_regex_agrees_with_the_definition_on_random_globs_and_paths():
    assert all(_double_star_is_a_component(glob) for cataloger in CATALOGERS for glob in cataloger.globs)
    rng = random.Random(19)
    glob_parts = ["a", "b", ".", "/", "*", "?", "**/", "ab", "*b", "a*", "+"]
    path_parts = ["a", "b", ".", "/", "ab", "ba", "+", "aa"]
    for _ in range(4000):
        glob = "".join(rng.choice(glob_parts) for _ in range(rng.randint(1, 5)))
        if not _double_star_is_a_component(glob):  # as in every cataloger's globs (above)
            continue
        path = "".join(rng.choice(path_parts) for _ in range(rng.randint(0, 6)))
        assert (re.fullmatch(glob_to_regex(glob), path) is not None) is _glob_matches(glob, path), (glob, path)



def test_the_prefilter_agrees_with_plain_matching_for_globs_of_every_shape():
    """Globs of each shape the prefilter files differently (a literal name, a suffix after the
    last wildcard, a wildcard name in a literal directory, a wildcard directory, a name that
    ends in a wildcard anywhere), declared so that several match one path: the first declared
    still wins, and the prefilter never changes the answer."""
    shapes = [["/etc/a?c"], ["**/*.lock"], ["/var/lib/s.d/*"], ["/v?r/*/x"], ["**/ab*"], ["/etc/ab?"],
              ["**/*c"], ["/var/lib/*/y?"], ["/etc/abc"], ["/e*/abc", "**/x"], ["**/a?b?d"]]
    catalogers = [Cataloger(name=f"c{i}", globs=tuple(globs)) for i, globs in enumerate(shapes)]
    dispatch = Dispatch(catalogers)
    rng = random.Random(5)
    directories = ["/etc", "/var/lib/s.d", "/var/lib/q", "/vxr/q", "/var/q", "/e", "/", "/a/b"]
    names = ["abc", "a?c", "abd", "x.lock", "ab", "y1", "yy", "x", "c", "s.d", "lock", "axbyd", "a?b?d"]
    paths = [f"{d.rstrip('/')}/{n}" for d in directories for n in names]
    paths += [f"{rng.choice(directories).rstrip('/')}/{rng.choice(names)}" for _ in range(500)]
    for path in paths:
        assert dispatch.match(path) is _naive(dispatch, path), path
    # several match /etc/abc: c0 is declared first; /etc/abc's literal glob (c8) comes later
    assert dispatch.match("/etc/abc").name == "c0"
    assert dispatch.match("/var/lib/s.d/x.lock").name == "c1"  # a suffix before a directory glob
    assert dispatch.match("/var/lib/s.d/yy").name == "c2"
    assert dispatch.match("/vxr/q/x").name == "c3"
    assert dispatch.match("/a/b/x").name == "c9"  # only the glob that no name narrows
    assert dispatch.match("/a/b/axbyd").name == "c10"  # filed by what follows its last wildcard


class _Collect:
    """A scanner that keeps what it is fed (the test checks it saw the file exactly)."""

    def __init__(self, path):
        self.path, self.data = path, bytearray()

    def feed(self, data):
        self.data += data

    def finish(self):
        return ParseResult(packages=[Package(type="golang", name=self.path,
                                             version=hashlib.sha256(self.data).hexdigest())])


ELF = b"\x7fELF" + bytes(60)


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_scanners_see_executables_whole_whatever_the_chunking(step):
    scanner = Cataloger(name="test-binary", scanner=_Collect, magic=(b"\x7fELF",))
    # past several 64 KiB output pieces; a byte at a time, one piece and a bit is enough to
    # cross every kind of boundary (and 300 KB would take half a minute)
    binary = ELF + random.Random(1).randbytes(70_000 if step == 1 else 300_000)
    members = [Member("usr/bin/tool", binary, mode=0o755),
               Member("usr/lib/libdata.so", binary, mode=0o644),  # not executable
               Member("usr/bin/script", b"#!/bin/sh\n" + bytes(8000), mode=0o755),  # not a binary
               Member("usr/bin/tiny", ELF, mode=0o755)]  # too small to be a Go or Rust binary
    blob = gzip.compress(make_layer(members))
    analyzer = LayerAnalyzer(digest="sha256:" + hashlib.sha256(blob).hexdigest(), size=len(blob), media_type="m",
                             dispatch=Dispatch([scanner]))
    for i in range(0, len(blob), step):
        analyzer.feed(blob[i:i + step])
    result = analyzer.finish()
    found = {e.path: e.result.packages[0].version for e in result.catalog}
    assert found == {"/usr/bin/tool": hashlib.sha256(binary).hexdigest()}


# Mutation survivors that cannot matter (tools/mutation.sh analysis):
# - glob_to_regex: where a star becomes an atomic group (`component_end`/`next_star` searched from elsewhere, to the
#   end, `< 0` -> `<= 0`/`< 1`, `i + 2`; 15 mutants): which stars are atomic changes only the regex's worst-case
#   time, not what it matches (test_glob_to_regex_agrees_with_the_definition...); tests/unit/test_regex_linear.py
#   times the dispatch globs, outside this group's tests because it measures time.
# - Dispatch.__init__: `order = 1`, `order += 2`: only the order of the numbers counts.
# - Dispatch.__init__: `wild < len(name) - 1` -> `<=`, `< len(name) + 1`, `< len(name) - 2`, `name[wild + 2:]`: a
#   shorter (or empty) suffix files a glob where more paths reach its regex; the answer is the same, only slower.
# - Dispatch.match: `sorted(candidates, key=None)` or no key: the tuples sort by their first item, the declaration
#   order, which is unique.
