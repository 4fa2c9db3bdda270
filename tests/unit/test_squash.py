"""The squash against an independent merge: the layers extracted onto a real filesystem
with whiteouts applied the way a container runtime does, then walked."""

import hashlib
import random

import pytest

from analyzerd.analysis.layer import LayerAnalyzer
from analyzerd.archive.whiteout import squash
from analyzerd.model import FileKind
from analyzerd.testing import Member, make_layer

from ..helpers import filesystem_merge


def analyze(tar_bytes):
    la = LayerAnalyzer(digest="sha256:" + hashlib.sha256(tar_bytes).hexdigest(), size=len(tar_bytes),
                       media_type="application/vnd.oci.image.layer.v1.tar")
    la.feed(tar_bytes)
    return la.finish()


def squashed(layers):
    records = squash([analyze(t) for t in layers])
    out = {}
    for _, r, _ in records:
        if r.kind is FileKind.FILE or r.kind is FileKind.HARDLINK:
            out[r.path] = ("file", r.sha256)
        elif r.kind is FileKind.DIR:
            out[r.path] = ("dir", None)
        else:
            out[r.path] = ("symlink", r.link)
    return out


def D(name):
    return Member(name, kind="dir", mode=0o755)


def F(name, data=None):
    return Member(name, data if data is not None else name.encode() * 3)


HAND_WRITTEN_MEMBERS = [
    [D("etc"), F("etc/keep"), F("etc/removed"), D("usr"), D("usr/lib"), D("usr/lib/a"), D("usr/lib/a/b"),
     F("usr/lib/a/b/deep"), D("var"), D("var/cache"), F("var/cache/old1"), D("var/cache/sub"),
     F("var/cache/sub/old2"), D("opt"), D("opt/app"), F("opt/app/x"), F("data", b"base data"),
     Member("etc/alias", kind="symlink", link="keep")],
    [F("etc/.wh.removed", b""), F("usr/lib/.wh.a", b""), D("var/cache"), F("var/cache/.wh..wh..opq", b""),
     F("var/cache/new"), F("opt/app", b"now a file"), Member("hard", kind="hardlink", link="data"),
     F("etc/temp"), Member("etc/alias", kind="symlink", link="temp")],
    [D("usr/lib/a"), F("usr/lib/a/again"), F("etc/.wh.temp", b""), F("data", b"changed above the hardlink"),
     F("etc/.wh.keep", b""), F("etc/keep", b"re-added in the same layer"),
     F("implicit/parent/file")],  # parents without entries of their own exist all the same
]
HAND_WRITTEN = [make_layer(members, "pax") for members in HAND_WRITTEN_MEMBERS]


def test_hand_written_layers(tmp_path):
    expected = filesystem_merge(HAND_WRITTEN, str(tmp_path))
    got = squashed(HAND_WRITTEN)
    assert got == expected
    # spot checks that say what the rules are
    assert "/usr/lib/a/b/deep" not in got and "/usr/lib/a/again" in got
    assert "/var/cache/old1" not in got and "/var/cache/sub" not in got and "/var/cache/new" in got
    assert got["/opt/app"][0] == "file" and "/opt/app/x" not in got
    assert got["/hard"][1] == hashlib.sha256(b"base data").hexdigest()  # the inode kept its content
    assert got["/etc/keep"][1] == hashlib.sha256(b"re-added in the same layer").hexdigest()
    assert not any("/.wh." in p for p in got)
    assert got["/implicit"] == ("dir", None) and got["/implicit/parent"] == ("dir", None)


def random_layers(rng, count=4):
    """Layers a real builder could produce: parents before children, no children under
    a non-directory, whiteouts of what exists and of what does not."""
    names = ["a", "b", "c", "lib", "x.so"]
    view = {}  # path -> "dir" | "file" | "symlink"
    layers = []
    for _ in range(count):
        members, seen = [], set()

        def ensure_dirs(path):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if view.get(d) not in (None, "dir"):
                    return False
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in seen and view.get(d) != "dir":
                    members.append(D(d))
                    seen.add(d)
                    view[d] = "dir"
            return True

        for _ in range(rng.randint(3, 12)):
            depth = rng.randint(1, 3)
            path = "/".join(rng.choice(names) for _ in range(depth))
            op = rng.random()
            if path in seen or any(s.startswith(path + "/") or path.startswith(s + "/") for s in seen):
                continue  # keep to one thing per path and layer, as a builder's diff does
            if op < 0.45:
                if ensure_dirs(path) and view.get(path) != "dir":
                    members.append(F(path, rng.randbytes(rng.randint(0, 2000))))
                    view[path] = "file"
            elif op < 0.6:
                if ensure_dirs(path) and path not in view:
                    members.append(D(path))
                    view[path] = "dir"
            elif op < 0.7:
                if ensure_dirs(path) and view.get(path) != "dir":
                    members.append(Member(path, kind="symlink", link=rng.choice(names)))
                    view[path] = "symlink"
            elif op < 0.9:
                if ensure_dirs(path):
                    parent, _, base = path.rpartition("/")
                    members.append(F((parent + "/" if parent else "") + ".wh." + base, b""))
                    for p in [p for p in view if p == path or p.startswith(path + "/")]:
                        del view[p]
            else:
                if view.get(path) == "dir" and ensure_dirs(path + "/x"):
                    members.append(F(path + "/.wh..wh..opq", b""))
                    for p in [p for p in view if p.startswith(path + "/")]:
                        del view[p]
            seen.add(path)
        layers.append(make_layer(members, rng.choice(["gnu", "pax"])))
    return layers


@pytest.mark.parametrize("seed", range(60))
def test_random_layers(seed, tmp_path):
    layers = random_layers(random.Random(seed))
    assert squashed(layers) == filesystem_merge(layers, str(tmp_path))


def attributes(layers, path):
    """(mode & 0o7777, uid, gid) of ``path`` in the squash of ``layers`` (members)."""
    for _, record, _ in squash([analyze(make_layer(members)) for members in layers]):
        if record.path == path:
            return record.kind, record.mode & 0o7777, record.uid, record.gid
    raise AssertionError(f"{path} not in the merged view")


def test_a_made_directory_copies_the_nearest_lower_layers_made_directory():
    """containerd's mkparent looks in each lower layer's own directory, ignoring an opaque
    marker above: the nearest that has /d/a made it, copying 0700 7:8 from the bottom layer."""
    layers = [[D("d"), Member("d/a", kind="dir", mode=0o700, uid=7, gid=8)],
              [F("d/a/b/f")],  # makes /d/a, as layer 0 has it
              [D("d"), F("d/.wh..wh..opq", b"")],  # hides /d/a, has no /d/a of its own
              [F("d/a/g")]]  # makes /d/a again, looked up in layer 2, then found in layer 1
    assert attributes(layers, "/d/a") == (FileKind.DIR, 0o700, 7, 8)
    # a whiteout is something at the path: the lookup stops there, and copies nothing
    whited = [layers[0], layers[1], [F("d/.wh.a", b"")], layers[3]]
    assert attributes(whited, "/d/a") == (FileKind.DIR, 0o755, 0, 0)


def test_a_directory_made_where_a_lower_symlink_points_at_the_root_is_root_owned_0755():
    """The lower layer's root directory has no entry of its own: 0755, root-owned, and the
    symlink it replaces is gone from the merged view."""
    layers = [[Member("link", kind="symlink", link="/"), Member("srv", kind="dir", mode=0o700, uid=9, gid=9)],
              [F("link/f")]]
    assert attributes(layers, "/link") == (FileKind.DIR, 0o755, 0, 0)
    assert attributes(layers, "/link/f")[0] is FileKind.FILE


def _global_header(path: bytes) -> bytes:
    from analyzerd.testing import raw_header, raw_member
    body = b" path=" + path + b"\n"
    record = str(len(body) + 2).encode() + body
    return raw_member(raw_header(b"pax_global_header", size=len(record), typeflag=b"g"), record)


@pytest.mark.parametrize("marker", ["whiteout", "opaque", "global-header"])
def test_the_directory_a_whiteout_opaque_marker_or_removal_makes_copies_the_lower_layers(marker):
    """Unpacking a whiteout, an opaque marker or a global header's removal makes its parent
    directory as any entry does: /s/d takes 0700 7:8 from the layer that made it below
    (containerd's applier gives the same)."""
    base = [[D("s"), Member("s/d", kind="dir", mode=0o700, uid=7, gid=8)],
            [F("s/d/f")],  # makes /s/d, copying layer 0's
            [D("s"), F("s/.wh..wh..opq", b"")]]  # hides it; has no /s/d of its own
    tars = [make_layer(members) for members in base]
    if marker == "global-header":
        tars.append(_global_header(b"s/d/decoy") + bytes(1024))
    else:
        tars.append(make_layer([F("s/d/.wh.gone" if marker == "whiteout" else "s/d/.wh..wh..opq", b"")]))
    view = {record.path: (index, record) for index, record, _ in squash([analyze(t) for t in tars])}
    index, record = view["/s/d"]
    assert (index, record.kind, record.mode & 0o7777, record.uid, record.gid) == (3, FileKind.DIR, 0o700, 7, 8)



# Mutation survivors that cannot matter (tools/mutation.sh archive):
# - whiteout _LowerLayer.directory: the default record built with path None, kind None, size None or
#   mtime None: _made_dirs copies only its mode, uid and gid.
