"""Merge layer results into the filesystem a container sees (OCI image spec, "whiteouts").

Layers apply bottom to top. Within a layer, whiteouts act only on the layers below it,
wherever they stand in the archive:

- ``DIR/.wh.NAME`` deletes ``DIR/NAME`` and everything under it;
- ``DIR/.wh..wh..opq`` hides everything the lower layers had under ``DIR`` (DIR stays);
- an entry replaces the lower entry at its path; a non-directory that replaces a
  directory hides the directory's lower contents too.

Hardlinks take the content of their target: in the same layer (resolved while reading),
or else in the merged view below the layer. Parent directories that no layer lists exist
all the same, as extraction creates them.
"""

from __future__ import annotations

from collections.abc import Iterable

import copy

from ..model import FileKind, FileRecord, LayerResult, VisibleFile

__all__ = ["by_path", "merged_view", "squash"]


def _ancestors(path: str) -> Iterable[str]:
    """'/a/b/c' -> '/a/b', '/a' (not '/': nothing deletes the root)."""
    end = path.rfind("/")
    while end > 0:
        path = path[:end]
        yield path
        end = path.rfind("/")


def squash(layers: list[LayerResult]) -> list[VisibleFile]:
    """The merged view as (layer index, record, derived), sorted by path."""
    return by_path(merged_view(layers))


def by_path(view: dict[str, VisibleFile]) -> list[VisibleFile]:
    return sorted(view.values(), key=_path_key)


def merged_view(layers: list[LayerResult]) -> dict[str, VisibleFile]:
    """The merged view by path. Layer records are shared and left untouched: a hardlink
    resolved against lower layers is a copy."""
    view: dict[str, VisibleFile] = {}
    for index, layer in enumerate(layers):
        subtree_gone = set(layer.deleted)
        subtree_gone.update(layer.opaque_dirs)
        for record in layer.files:
            if record.kind is not FileKind.DIR:
                lower = view.get(record.path)
                if lower is not None and lower[1].kind is FileKind.DIR:
                    subtree_gone.add(record.path)
        if subtree_gone:
            deleted = set(layer.deleted)
            view = {
                path: record
                for path, record in view.items()
                if path not in deleted and not any(a in subtree_gone for a in _ancestors(path))
            }
        for record in layer.files:
            derived = False
            if record.kind is FileKind.HARDLINK and record.md5 is None and record.link:
                target = view.get(record.link)
                if target is not None:
                    record = copy.copy(record)
                    record.take_content_of(target[1])
                    derived = True
            view[record.path] = (index, record, derived)
        _add_implicit_parents(view, layer.files, index)
    return view


def _add_implicit_parents(view: dict[str, VisibleFile], added: list[FileRecord], layer: int) -> None:
    """Layers may omit a file's parent directories; extracting them creates the
    directories anyway (root-owned, 0755), so the container sees them."""
    for record in added:
        path = record.path
        parent = path[:path.rfind("/")]
        while parent and parent not in view:
            view[parent] = (layer, FileRecord(parent, FileKind.DIR, 0o755, 0, 0, 0, 0), True)
            parent = parent[:parent.rfind("/")]


def _path_key(item: VisibleFile) -> str:
    return item[1].path
