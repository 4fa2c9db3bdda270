"""Merge layer results into the filesystem a container sees, as containerd's overlayfs
snapshotter stacks the layers' upper directories (OCI image spec, "whiteouts").

Layers apply bottom to top. Within a layer, whiteouts act only on the layers below it
(what the layer itself writes at a whited-out path was already settled when the layer was
read, see ``archive.unpack``):

- ``DIR/.wh.NAME`` deletes ``DIR/NAME`` and everything under it;
- ``DIR/.wh..wh..opq`` hides everything the lower layers had under ``DIR`` (DIR stays);
- an entry replaces the lower entry at its path; a non-directory that replaces a
  directory hides the directory's lower contents too.

Hardlinks take the content of their target: in the same layer (resolved while reading),
or else in the merged view below the layer. Parent directories that no layer lists exist
all the same, as unpacking creates them (root-owned 0755, or as the lower layer has the
directory): they also replace a lower layer's file or symlink at their path, as an upper
directory hides whatever non-directory overlayfs finds below it.

containerd's ``mkparent`` looks each directory it makes up in every lower layer's own
directory, nearest first, through that layer's symlinks (``fs.RootPath``), until one has the
path, and copies that directory's owner and mode (a non-directory there: 0755 root). A lower
layer holding a file, device or whiteout above the path (ENOTDIR) or a symlink loop (ELOOP)
fails the layer being unpacked, even where an upper layer hid that file (``_made_dirs``).
moby's own unpacker does not look; the image is refused all the same, naming the lower
entry, rather than reported as only one runtime would run it.

Linear in the number of paths: a layer's deletions are ranges of the sorted paths, not a
walk of every path's ancestors; the implicit parent directories are bounded by
``MAX_IMPLICIT_DIR_BYTES``.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Iterable
from typing import Final

from ..errors import ArchiveError, LimitError
from ..model import FileKind, FileRecord, LayerResult, VisibleFile
from .unpack import MAX_LINK_FOLLOWS
from .tar import normalize_path

__all__ = ["MAX_IMPLICIT_DIR_BYTES", "MAX_PARENT_LOOKUP_STEPS", "by_path", "merged_view", "squash"]

#: Bytes of path of the parent directories the layers imply without listing them. Real
#: layers list their directories; a hostile one can name 4 KiB paths of 2,000 levels each,
#: whose parents add up to megabytes per name.
MAX_IMPLICIT_DIR_BYTES: Final = 64 * 1024 * 1024
#: Path components walked looking the directories a layer makes up in its lower layers (each
#: one in each lower layer until one has it). Real images make a few hundred directories, or
#: none; a hostile one could make a million deep ones over a hundred layers that lack them.
MAX_PARENT_LOOKUP_STEPS: Final = 20_000_000


def squash(layers: list[LayerResult]) -> list[VisibleFile]:
    """The merged view as (layer index, record, derived), sorted by path."""
    return by_path(merged_view(layers))


def by_path(view: dict[str, VisibleFile]) -> list[VisibleFile]:
    return sorted(view.values(), key=_path_key)


def merged_view(layers: list[LayerResult]) -> dict[str, VisibleFile]:
    """The merged view by path. Layer records are shared and left untouched: a hardlink
    resolved against lower layers is a copy."""
    view: dict[str, VisibleFile] = {}
    budget = [MAX_IMPLICIT_DIR_BYTES]
    made = _made_dirs(layers) if any(layer.made_dirs for layer in layers[1:]) else None
    for index, layer in enumerate(layers):
        subtree_gone = set(layer.deleted)
        subtree_gone.update(layer.opaque_dirs)
        for record in layer.files:
            if record.kind is not FileKind.DIR:
                lower = view.get(record.path)
                if lower is not None and lower[1].kind is FileKind.DIR:
                    subtree_gone.add(record.path)
        if subtree_gone:
            _remove_subtrees(view, subtree_gone, layer.deleted)
        for record in layer.files:
            derived = False
            if record.kind is FileKind.HARDLINK and record.md5 is None and record.link:
                target = view.get(record.link)
                if target is not None:
                    record = copy.copy(record)
                    record.take_content_of(target[1])
                    derived = True
            view[record.path] = (index, record, derived)
        attributes = made[index] if made is not None else None
        _add_implicit_parents(view, (r.path for r in layer.files), index, budget, attributes)
        # unpacking a whiteout or an opaque marker makes its directory too
        _add_implicit_parents(view, layer.deleted, index, budget, attributes)
        _add_implicit_parents(view, (d + "/" for d in layer.opaque_dirs if d != "/"), index, budget, attributes)
        _add_implicit_parents(view, layer.parents_of, index, budget, attributes)
    return view


def _remove_subtrees(view: dict[str, VisibleFile], subtree_gone: set[str], deleted: Iterable[str]) -> None:
    """Remove everything under each of ``subtree_gone``, and the ``deleted`` paths themselves:
    each subtree is a range of the sorted paths ("/d/" up to "/d0", "0" following "/")."""
    if "/" in subtree_gone:
        view.clear()  # an opaque root hides every lower layer
        return
    paths = sorted(view)
    for gone in subtree_gone:
        low = bisect.bisect_left(paths, gone + "/")
        high = bisect.bisect_left(paths, gone + "0", low)
        for path in paths[low:high]:
            view.pop(path, None)
    for path in deleted:
        view.pop(path, None)


class _LowerLayer:
    """One layer's own directory as the snapshotter holds it, for lookups by path."""

    __slots__ = ("records", "dirs", "whiteouts", "made")

    def __init__(self, layer: LayerResult, made: dict[str, FileRecord]) -> None:
        self.made = made  # the directories it made, with the attributes they were given
        self.records = {record.path: record for record in layer.files}
        self.whiteouts = set(layer.deleted)
        # every directory the layer has: listed, or made for what it holds
        self.dirs: set[str] = set()
        for path in (*self.records, *self.whiteouts, *layer.parents_of, *(d + "/" for d in layer.opaque_dirs)):
            parent = path[:path.rfind("/")]
            while parent and parent not in self.dirs:
                self.dirs.add(parent)
                parent = parent[:parent.rfind("/")]

    def kind(self, path: str) -> FileKind | None:
        """What the layer has at ``path``: a kind, CHAR for a whiteout, None for nothing."""
        record = self.records.get(path)
        if record is not None:
            return record.kind
        if path in self.whiteouts:
            return FileKind.CHAR
        return FileKind.DIR if path in self.dirs or path == "/" else None

    def directory(self, path: str) -> FileRecord | None:
        """The attributes of the directory the layer has at ``path`` (None: not a directory)."""
        record = self.records.get(path)
        if record is not None:
            return record if record.kind is FileKind.DIR else None
        if path in self.whiteouts:
            return None
        return self.made.get(path) or FileRecord(path, FileKind.DIR, 0o755, 0, 0, 0, 0)


def _made_dirs(layers: list[LayerResult]) -> list[dict[str, FileRecord]]:
    """containerd's mkparent, for each directory each layer made: look it up in the lower
    layers, nearest first, until one has something at the path, and copy its attributes if it
    is a directory. The made directories by layer, with those attributes. Raises ArchiveError
    where the lookup fails (ENOTDIR, ELOOP), as containerd then fails the layer."""
    made: list[dict[str, FileRecord]] = []
    lowers: dict[int, _LowerLayer] = {}
    steps = [MAX_PARENT_LOOKUP_STEPS]
    for index, layer in enumerate(layers):
        mine: dict[str, FileRecord] = {}
        for directory in layer.made_dirs:
            copied: FileRecord | None = None
            for below in range(index - 1, -1, -1):
                lower = lowers.get(below)
                if lower is None:
                    lower = lowers[below] = _LowerLayer(layers[below], made[below])
                fault, found = _lookup(lower, directory, steps)
                if fault is not None:
                    raise ArchiveError(f"layer {layer.digest} makes directory {directory!r}, which containerd "
                                       f"looks up in lower layer {layers[below].digest}: {fault} "
                                       f"(containerd fails the layer)")
                if found is not None:
                    copied = lower.directory(found)  # None: not a directory, nothing copied
                    break
            record = FileRecord(directory, FileKind.DIR, 0o755, 0, 0, 0, 0)
            if copied is not None:
                record.mode, record.uid, record.gid = copied.mode, copied.uid, copied.gid
            mine[directory] = record
        made.append(mine)
    return made


def _lookup(lower: _LowerLayer, path: str, steps: list[int]) -> tuple[str | None, str | None]:
    """continuity's fs.RootPath of ``path`` in one lower layer, then its Lstat: (the error
    that fails, None) or (None, the resolved path if the layer has something there)."""
    parts = path.split("/")[:0:-1]  # reversed: the next part last
    resolved, follows = "", 0
    while parts:
        steps[0] -= 1
        if steps[0] < 0:
            raise LimitError(f"looking up the directories the layers make in their lower layers took "
                             f"more than {MAX_PARENT_LOOKUP_STEPS} steps (MAX_PARENT_LOOKUP_STEPS)")
        part = parts.pop()
        candidate = resolved + "/" + part
        kind = lower.kind(candidate)
        if kind is FileKind.SYMLINK:
            follows += 1
            if follows > MAX_LINK_FOLLOWS:
                return f"too many levels of symbolic links at {candidate!r}", None
            target = lower.records[candidate].link or ""
            base = "/" if target.startswith("/") else (resolved or "/")
            parts.extend(p for p in reversed(normalize_path(base + "/" + target).split("/")) if p)
            resolved = ""
            continue
        if parts and kind is not None and kind is not FileKind.DIR:
            what = "a whiteout" if candidate in lower.whiteouts and candidate not in lower.records else f"a {kind.value}"
            return f"{candidate!r} there is {what}, not a directory", None
        resolved = candidate
    resolved = resolved or "/"
    return None, (resolved if lower.kind(resolved) is not None else None)


def _add_implicit_parents(view: dict[str, VisibleFile], added: Iterable[str], layer: int,
                          budget: list[int], made: dict[str, FileRecord] | None) -> None:
    """Layers may omit a file's parent directories; unpacking creates them anyway
    (``made``: with the attributes copied from below; else root-owned, 0755), replacing a
    lower non-directory at their path (what containerd refuses here was refused before, by
    ``_made_dirs``)."""
    for path in added:
        parent = path[:path.rfind("/")]
        while parent:
            lower = view.get(parent)
            if lower is not None and lower[1].kind is FileKind.DIR:
                break
            budget[0] -= len(parent)
            if budget[0] < 0:
                raise LimitError(f"the layers imply more than {MAX_IMPLICIT_DIR_BYTES} bytes of parent "
                                 f"directory paths that they do not list (deeply nested names)")
            record = made.get(parent) if made is not None else None
            view[parent] = (layer, record or FileRecord(parent, FileKind.DIR, 0o755, 0, 0, 0, 0), True)
            parent = parent[:parent.rfind("/")]


def _path_key(item: VisibleFile) -> str:
    return item[1].path
