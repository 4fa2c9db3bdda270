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
