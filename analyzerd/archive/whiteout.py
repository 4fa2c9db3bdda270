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

__all__ = ["MAX_IMPLICIT_DIR_BYTES", "by_path", "merged_view", "squash"]

#: Bytes of path of the parent directories the layers imply without listing them. Real
#: layers list their directories; a hostile one can name 4 KiB paths of 2,000 levels each,
#: whose parents add up to megabytes per name.
MAX_IMPLICIT_DIR_BYTES: Final = 64 * 1024 * 1024


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
        _add_implicit_parents(view, (r.path for r in layer.files), index, budget)
        # unpacking a whiteout or an opaque marker makes its directory too
        _add_implicit_parents(view, layer.deleted, index, budget)
        _add_implicit_parents(view, (d + "/" for d in layer.opaque_dirs if d != "/"), index, budget)
        _add_implicit_parents(view, layer.parents_of, index, budget)
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


def _add_implicit_parents(view: dict[str, VisibleFile], added: Iterable[str], layer: int,
                          budget: list[int]) -> None:
    """Layers may omit a file's parent directories; unpacking creates them anyway
    (root-owned, 0755), replacing a lower non-directory at their path. containerd looks the
    directory up in the lower layers to copy its attributes: it fails the layer when a lower
    layer has a file where a directory above the one it makes should be."""
    for path in added:
        parent = path[:path.rfind("/")]
        deepest = True
        while parent:
            lower = view.get(parent)
            if lower is not None and lower[1].kind is FileKind.DIR:
                break
            if lower is not None and not deepest and lower[1].kind is not FileKind.SYMLINK:
                raise ArchiveError(f"layer {layer} puts {path!r} under {parent!r}, a {lower[1].kind.value} of "
                                   f"layer {lower[0]}: containerd fails the layer (not a directory)")
            deepest = False
            budget[0] -= len(parent)
            if budget[0] < 0:
                raise LimitError(f"the layers imply more than {MAX_IMPLICIT_DIR_BYTES} bytes of parent "
                                 f"directory paths that they do not list (deeply nested names)")
            view[parent] = (layer, FileRecord(parent, FileKind.DIR, 0o755, 0, 0, 0, 0), True)
            parent = parent[:parent.rfind("/")]


def _path_key(item: VisibleFile) -> str:
    return item[1].path
