"""analyzerd against the container runtime itself: Go's archive/tar and containerd's layer
applier, built here from Debian's packages (see tests/runtime_oracle).

Wherever Go reads a stream, analyzerd's TarReader must give the same entries; wherever Go
fails, analyzerd must fail too, after a prefix of Go's entries. The images below, the attacks
that once blinded or fooled analyzerd, must unpack to the filesystem containerd gives them.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from tests import runtime_oracle
from tests.tar_grammar import BLOCK, Member, images, pax_record, streams

#: Generated streams and images per CI run; tools/tar_fuzz.py runs as many as asked for.
EXAMPLES = 300
IMAGE_EXAMPLES = 200

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containerd's applier and overlayfs need root")


@pytest.fixture(scope="session")
def oracle(tmp_path_factory):
    return runtime_oracle.build(str(tmp_path_factory.mktemp("oracle")))


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(stream=streams())
def test_generated_streams_read_as_go_reads_them(oracle, stream):
    data = stream.encode()
    assert runtime_oracle.compare_entries(oracle, data) == []
    assert runtime_oracle.compare_entries(oracle, data, step=7) == []


def _end(data: bytes) -> bytes:
    return data + bytes(2 * BLOCK)


_REAL = [Member(name=b"var/lib/dpkg/status", data=b"Package: openssl\nStatus: install ok installed\nVersion: 3\n\n"),
         Member(name=b"usr/bin/sudo", data=b"\x7fELF" + b"s" * 100, mode=0o4755),
         Member(name=b"root/.aws/credentials", data=b"[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLF\n")]
_FAKE = _end(Member(name=b"var/lib/dpkg/status", data=b"Package: openssl\nVersion: 99.0\n\n").encode())

SEED = {
    # one global header named tmp/decoy before the real entries hid the whole layer
    "global-header": [_end(Member(name=b"pax_global_header", typeflag=b"g", data=pax_record(b"path", b"tmp/decoy"))
                           .encode() + b"".join(m.encode() for m in _REAL))],
    # a regular entry named opt/blob/ became a directory, its data read as headers
    "regular-with-slash": [_end(Member(name=b"opt/blob/", data=_FAKE).encode())],
    # data after the end-of-archive marker was buffered
    "data-after-end": [_end(Member(name=b"etc/x", data=b"x").encode()) + b"garbage" + bytes(4096)],
    # a zero block in the middle: Go stops with an error, never skips to what follows
    "zero-block-mid": [_end(Member(name=b"a", data=b"1").encode() + bytes(BLOCK) + Member(name=b"b").encode())],
    # a 64 KiB path: refused per entry, its parents never made
    "long-path": [_end(Member(name=b"PaxHeaders/x", typeflag=b"x", data=pax_record(b"path", b"/".join([b"a"] * 32768)))
                       .encode() + Member(name=b"x", data=b"deep").encode() + b"".join(m.encode() for m in _REAL))],
    # a file written through the layer's own symlink lands where the symlink points
    "through-symlink": [_end(Member(name=b"etc/", typeflag=b"5", mode=0o755).encode()
                             + Member(name=b"x", typeflag=b"2", linkname=b"/etc").encode()
                             + Member(name=b"x/shadow", data=b"root::0:0\n").encode())],
    # a hardlink's header gives the shared inode its mode: a setuid bit cannot hide
    "hardlink-setuid": [_end(Member(name=b"usr/", typeflag=b"5", mode=0o755).encode()
                             + Member(name=b"usr/tool", data=b"t", mode=0o755).encode()
                             + Member(name=b"usr/alias", typeflag=b"1", linkname=b"usr/tool", mode=0o4755).encode())],
    # a directory replaced by a file takes what the layer put under it along
    "dir-then-file": [_end(Member(name=b"d/", typeflag=b"5", mode=0o755).encode()
                           + Member(name=b"d/inner", data=b"i").encode()),
                      _end(Member(name=b"d", data=b"now a file").encode())],
    # whiteouts and opaque directories across layers
    "whiteouts": [_end(Member(name=b"a/", typeflag=b"5", mode=0o755).encode() + Member(name=b"a/x", data=b"x").encode()
                       + Member(name=b"b/", typeflag=b"5", mode=0o755).encode() + Member(name=b"b/y", data=b"y").encode()),
                  _end(Member(name=b".wh.a").encode() + Member(name=b"b/", typeflag=b"5", mode=0o755).encode()
                       + Member(name=b"b/.wh..wh..opq").encode() + Member(name=b"b/z", data=b"z").encode())],
    # a directory the upper layer makes is looked up in every lower layer, nearest first: a
    # file the middle layer hid still fails it (ENOTDIR), as containerd's mkparent does
    "lower-file-above-made-dir": [_end(Member(name=b"a", data=b"file").encode()),
                                  _end(Member(name=b"a/", typeflag=b"5", mode=0o700).encode()),
                                  _end(Member(name=b"a/b/c", data=b"c").encode())],
    # a made directory copies the attributes of what the lower layer has there, through its
    # symlinks
    "made-dir-through-lower-symlink": [_end(Member(name=b"srv/", typeflag=b"5", mode=0o700, uid=1000).encode()
                                            + Member(name=b"link", typeflag=b"2", linkname=b"srv").encode()),
                                       _end(Member(name=b"link/x", data=b"x").encode())],
    # what a global header removed is gone for the lookups that follow it in the layer
    "global-header-then-deeper": [_end(Member(name=b"a/", typeflag=b"5", mode=0o755).encode()
                                       + Member(name=b"a/b", data=b"b").encode()
                                       + Member(name=b"pax_global_header", typeflag=b"g",
                                                data=pax_record(b"path", b"a")).encode()
                                       + Member(name=b"a/b/c", data=b"c").encode())],
    # a second removal at the same path removes what was written after the first
    "global-header-twice": [_end(Member(name=b"g", typeflag=b"g", data=pax_record(b"path", b"a")).encode()
                                 + Member(name=b"a/b/c", data=b"c").encode()
                                 + Member(name=b"g", typeflag=b"g", data=pax_record(b"path", b"a")).encode()
                                 + Member(name=b".wh.a").encode())],
    # a hardlink to a whiteout is a second whiteout
    "hardlink-to-whiteout": [_end(Member(name=b"x", data=b"x").encode() + Member(name=b"y", data=b"y").encode()),
                             _end(Member(name=b".wh.x").encode()
                                  + Member(name=b"y", typeflag=b"1", linkname=b"x").encode())],
    # a hardlink to itself: the runtime removes the path first, then finds no target
    "hardlink-to-itself": [_end(Member(name=b"x", data=b"x").encode()
                                + Member(name=b"x", typeflag=b"1", linkname=b"x").encode())],
    # ... and through a symlink at the path it replaces: the target is looked up after removal
    "hardlink-through-replaced-symlink": [_end(Member(name=b"a/", typeflag=b"5", mode=0o755).encode()
                                               + Member(name=b"a/d", data=b"d").encode()
                                               + Member(name=b"c", typeflag=b"2", linkname=b"a").encode()
                                               + Member(name=b"c", typeflag=b"1", linkname=b"c/d").encode())],
    # a directory entry's times are set at its name resolved again at the end of the layer
    "dir-entry-resolved-again": [_end(Member(name=b"b", typeflag=b"2", linkname=b"l").encode()
                                      + Member(name=b"b/c/d/", typeflag=b"5", mode=0o755).encode()
                                      + Member(name=b"b/", typeflag=b"5", mode=0o755).encode())],
}


@pytest.mark.parametrize("name", sorted(SEED))
def test_seed_images_unpack_as_containerd_unpacks_them(oracle, name):
    layers = SEED[name]
    for layer in layers:
        assert runtime_oracle.compare_entries(oracle, layer) == []
    assert runtime_oracle.compare_image(oracle, layers) == []


@settings(max_examples=IMAGE_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(layers=images())
def test_generated_images_unpack_as_containerd_unpacks_them(oracle, layers):
    assert runtime_oracle.compare_image(oracle, layers) == []
