"""The container runtime as an oracle: Go's archive/tar and containerd's layer applier,
built from Debian's packages (golang-go, golang-github-containerd-containerd-dev) offline,
and compared with analyzerd's tar reader and layer merge.

``build(directory)`` compiles ``main.go`` once; ``compare_entries`` and ``compare_image``
return a list of differences (empty when analyzerd reports what the runtime would).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from analyzerd.analysis.layer import LayerAnalyzer
from analyzerd.archive.tar import END, ENTRY_END, NEED_DATA, Entry, TarReader
from analyzerd.archive.whiteout import squash
from analyzerd.errors import ArchiveError, IntegrityError, LimitError

HERE = os.path.dirname(os.path.abspath(__file__))
GOPATH = "/usr/share/gocode"
CONTAINERD = os.path.join(GOPATH, "src/github.com/containerd/containerd/archive")
APT_PACKAGES = "golang-go golang-github-containerd-containerd-dev"


def find_go() -> str | None:
    return shutil.which("go") or next(iter(sorted(glob.glob("/usr/lib/go-*/bin/go"), reverse=True)), None)


def build(directory: str) -> str:
    """Compile the oracle into ``directory``; its path. Fails, naming the packages, without Go."""
    go = find_go()
    if go is None or not os.path.isdir(CONTAINERD):
        raise RuntimeError(f"the runtime oracle needs Go and containerd's sources: apt-get install {APT_PACKAGES}")
    out = os.path.join(directory, "runtime_oracle")
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": GOPATH, "GOFLAGS": "", "GOPROXY": "off",
           "CGO_ENABLED": "0", "GOCACHE": os.path.join(directory, "gocache")}
    subprocess.run([go, "build", "-o", out, "."], cwd=HERE, env=env, check=True, capture_output=True, timeout=600)
    return out


# -- one layer: the entries ---------------------------------------------------------------------

@dataclass(frozen=True)
class Seen:
    """An entry as both readers can say it."""

    name: bytes
    typeflag: str
    data: int
    mode: int
    uid: int
    gid: int
    mtime: int
    linkname: bytes
    devmajor: int
    devminor: int
    sha256: str


def go_entries(oracle: str, data: bytes) -> tuple[list[Seen], str | None]:
    proc = subprocess.run([oracle, "entries"], input=data, capture_output=True, timeout=60, check=True)
    seen, error = [], None
    for line in proc.stdout.splitlines():
        item = json.loads(line)
        if "error" in item:
            error = item["error"]
        elif "end" not in item:
            seen.append(Seen(bytes.fromhex(item["name"]), chr(item["typeflag"]), item["data"],
                             item["mode"] & 0o7777, item["uid"], item["gid"], item["mtime"],
                             bytes.fromhex(item["linkname"]), item["devmajor"], item["devminor"], item["sha256"]))
    return seen, error


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def analyzerd_entries(data: bytes, step: int | None = None) -> tuple[list[Seen], str | None]:
    """What analyzerd's TarReader reads, fed whole or ``step`` bytes at a time."""
    reader = TarReader()
    seen: list[Seen] = []
    current: Entry | None = None
    digest = hashlib.sha256()
    length = 0

    def done(entry: Entry) -> None:
        seen.append(Seen(_raw(entry.name), entry.typeflag, length, entry.mode, entry.uid, entry.gid, entry.mtime,
                         _raw(entry.linkname), entry.devmajor, entry.devminor, digest.hexdigest()))

    pieces = [data] if step is None else [data[i:i + step] for i in range(0, len(data), step)]
    try:
        for piece in [*pieces, b""]:
            reader.receive_data(piece)
            while True:
                event = reader.next_event()
                if event is NEED_DATA:
                    break
                if event is END:
                    return seen, None
                if isinstance(event, Entry):
                    current, digest, length = event, hashlib.sha256(), 0
                    if event.data is not None:
                        digest.update(event.data)
                        length = len(event.data)
                        done(event)
                elif event is ENTRY_END:
                    assert current is not None
                    done(current)
                else:
                    digest.update(event)
                    length += len(event)
    except (ArchiveError, LimitError) as exc:
        return seen, str(exc)
    raise AssertionError("the reader never ended")


def compare_entries(oracle: str, data: bytes, step: int | None = None) -> list[str]:
    """Differences between Go's reading of ``data`` and analyzerd's (empty: none).

    Where Go reads the stream, analyzerd must give the same entries. Where Go fails,
    analyzerd must fail too, after giving a prefix of Go's entries. analyzerd may fail where
    Go reads only at a typeflag containerd refuses to unpack ("S"), or on a named limit.
    """
    want, go_error = go_entries(oracle, data)
    got, error = analyzerd_entries(data, step)
    # a global header's name follows PAX records Go applies in random order when one is
    # invalid: only its kind is compared
    strip = [s if s.typeflag != "g" else Seen(b"", "g", 0, 0, 0, 0, 0, b"", 0, 0, "") for s in want]
    mine = [s if s.typeflag != "g" else Seen(b"", "g", 0, 0, 0, 0, 0, b"", 0, 0, "") for s in got]
    problems = []
    if go_error is None and error is None:
        if strip != mine:
            problems.append(f"entries differ:\n  go:        {strip}\n  analyzerd: {mine}")
    elif go_error is None:
        allowed = "limit" in error or "refuse" in error
        if not allowed:
            problems.append(f"analyzerd fails where Go reads: {error}")
        if mine != strip[:len(mine)]:
            problems.append(f"entries before the failure differ:\n  go:        {strip}\n  analyzerd: {mine}")
    elif error is None:
        problems.append(f"analyzerd reads where Go fails ({go_error}):\n  go:        {strip}\n  analyzerd: {mine}")
    elif mine != strip[:len(mine)]:
        problems.append(f"entries before the failure differ (go: {go_error}; analyzerd: {error}):\n"
                        f"  go:        {strip}\n  analyzerd: {mine}")
    return problems


# -- an image: the merged filesystem --------------------------------------------------------------

def containerd_view(oracle: str, layers: list[bytes]) -> tuple[dict[str, dict], str | None]:
    """The filesystem containerd's overlayfs snapshotter gives a container of these layers
    (path -> attributes), or the error with which it refuses one of them. Needs root."""
    with tempfile.TemporaryDirectory(prefix="oracle-") as work:
        paths = []
        for i, layer in enumerate(layers):
            path = os.path.join(work, f"layer{i}.tar")
            with open(path, "wb") as f:
                f.write(layer)
            paths.append(path)
        root = os.path.join(work, "root")
        os.mkdir(root)
        proc = subprocess.run([oracle, "apply", root, *paths], capture_output=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"runtime oracle failed: {proc.stderr.decode(errors='replace')[-2000:]}")
        view: dict[str, dict] = {}
        for line in proc.stdout.splitlines():
            item = json.loads(line)
            if "error" in item:
                return view, f"layer {item['layer']}: {item['error']}"
            if "end" in item:
                continue
            path = bytes.fromhex(item.pop("path")).decode("utf-8", "surrogateescape")
            if item.get("link"):
                item["link"] = bytes.fromhex(item["link"]).decode("utf-8", "surrogateescape")
            view[path] = item
    return view, None


def analyzerd_view(layers: list[bytes]) -> tuple[dict[str, dict], str | None, list[list[str]]]:
    """analyzerd's merged view of the same layers (path -> attributes), its error, and
    each layer's warnings."""
    results = []
    for layer in layers:
        digest = "sha256:" + hashlib.sha256(layer).hexdigest()
        analyzer = LayerAnalyzer(digest=digest, size=len(layer), media_type="application/vnd.oci.image.layer.v1.tar")
        try:
            analyzer.feed(layer)
            results.append(analyzer.finish())
        except (ArchiveError, LimitError, IntegrityError) as exc:
            return {}, f"layer {len(results)}: {exc}", [r.warnings for r in results]
    view = {}
    try:
        merged = squash(results)
    except (ArchiveError, LimitError) as exc:
        return {}, f"merge: {exc}", [r.warnings for r in results]
    for _, record, _ in merged:
        item = {"type": record.kind.value if record.kind.value != "hardlink" else "file", "mode": record.mode,
                "uid": record.uid, "gid": record.gid}
        if record.kind.value in ("file", "hardlink"):
            item["size"] = record.size
            item["sha256"] = record.sha256
        if record.kind.value == "symlink":
            item["link"] = record.link
        view[record.path] = item
    return view, None, [r.warnings for r in results]


def compare_image(oracle: str, layers: list[bytes]) -> list[str]:
    """Differences between the filesystem containerd unpacks and analyzerd's merged view.
    Where containerd refuses a layer, analyzerd must refuse it too or warn about it."""
    want, refused = containerd_view(oracle, layers)
    got, error, warnings = analyzerd_view(layers)
    if refused is not None:
        if error is not None:
            return []
        layer = int(refused.split(":")[0].split()[1])
        if layer < len(warnings) and warnings[layer]:
            return []
        return [f"containerd refuses {refused}; analyzerd reads it without a warning"]
    if error is not None:
        return [f"analyzerd fails ({error}) where containerd unpacks:\n  {sorted(want)}"]
    problems = []
    for path in sorted(set(want) | set(got)):
        mine, theirs = got.get(path), want.get(path)
        if theirs is not None:
            theirs = {k: v for k, v in theirs.items() if k != "rdev"}
            if theirs["type"] != "file":
                theirs.pop("size", None)
        if mine != theirs:
            problems.append(f"{path}: containerd {theirs}, analyzerd {mine}")
    return problems
