"""Where each entry of a layer lands: containerd's applier rules, over the layer's own entries.

containerd (with the overlayfs snapshotter, the default, as moby's overlay2) unpacks a layer
into an empty upper directory, entry by entry (``archive.Apply``), then stacks the upper
directories. Within one layer that means:

- an entry's parent directory is resolved through the symlinks this layer already wrote
  (``fs.RootPath``: absolute targets start at the layer root, ".." stops there, at most 255
  links); a parent that is a file of this layer fails the layer (``mkparent``: not a directory);
- an entry replaces what this layer already has at its path, except a directory onto a
  directory (the two merge); replacing a directory removes everything under it;
- ``.wh.NAME`` leaves a whiteout at NAME (a 0/0 character device): it fails the layer if this
  layer already wrote NAME, and a later entry at NAME replaces it (a directory then merges
  with the lower layers' one again); ``.wh..wh..opq`` marks its directory opaque;
- missing parent directories are created (root-owned 0755, or as the lower layer has them);
  the ones made are remembered even if a later entry removes them, because containerd looks
  each one up in the lower layers as it makes it (see ``archive.whiteout``);
- a global PAX header (typeflag "g") is skipped, but not before what stands at its path in this
  layer is removed, or its name acts as a whiteout;
- a name resolving to the root is skipped;
- a hardlink to a whiteout is one more name of the 0/0 device, so one more whiteout.

``LayerTree`` keeps that state in write order, so a removal is a marker in the order rather than
a search: ``finish()`` drops, in one pass, whatever a later removal took away. Until then, a
lookup checks that no removal above the path came after it was written (``_live``). Pure: no
I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ..errors import ArchiveError
from ..model import FileKind, FileRecord
from .tar import Entry, normalize_path

__all__ = ["LayerTree", "MAX_LINK_FOLLOWS", "MAX_NAME_BYTES", "MAX_PATH_BYTES", "OPAQUE_MARKER",
           "WHITEOUT_PREFIX"]

WHITEOUT_PREFIX: Final = ".wh."
OPAQUE_MARKER: Final = ".wh..wh..opq"
#: Linux's PATH_MAX (with its terminating NUL): no longer path can be created, so no container
#: has one; longer names are refused per entry, with a warning.
MAX_PATH_BYTES: Final = 4096
#: Linux's NAME_MAX: the longest path component a filesystem accepts.
MAX_NAME_BYTES: Final = 255
#: continuity's fs.RootPath gives up after this many symlinks ("too many links").
MAX_LINK_FOLLOWS: Final = 255

# Keys of the ordered state besides paths (which are str): markers in the write order.
_CUT: Final = 0  # (_CUT, path): what was under path was removed here
_WHITEOUT: Final = 1  # (_WHITEOUT, path): a whiteout stands at path
_OPAQUE: Final = 2  # (_OPAQUE, path): path was made opaque here
_PARENTS: Final = 3  # (_PARENTS, path): path's parents were made here (a global header)


def _too_long(path: str) -> str | None:
    if len(path) <= MAX_NAME_BYTES + 1 and path.isascii():
        return None  # the common case: short enough in every part
    raw = path.encode("utf-8", "surrogateescape")
    if len(raw) >= MAX_PATH_BYTES:
        return f"a path of {len(raw)} bytes (Linux allows {MAX_PATH_BYTES - 1})"
    if len(raw) > MAX_NAME_BYTES + 1 and any(len(part) > MAX_NAME_BYTES for part in raw.split(b"/")):
        return f"a path component longer than {MAX_NAME_BYTES} bytes"
    return None


def _join(directory: str, name: str) -> str:
    return directory + name if directory == "/" else directory + "/" + name


class LayerTree:
    """One layer's own entries as the runtime leaves them. See the module docstring."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        self._warn = warn
        # path -> record, and marker tuples; in the order written (a rewrite moves to the end)
        self._state: dict[str | tuple[int, str], FileRecord | None] = {}
        self._symlinks = 0  # symlinks written: 0 means no parent needs resolving
        # parents found free of this layer's non-directories: only a removal (a cut) of one
        # of their directories can change that, and a cut forgets them all
        self._clean_parents: set[str] = set()
        # directories of this layer (written, or made for children) -> when (self._writes)
        self._dirs: dict[str, int] = {}
        self._cut_at: dict[str, int] = {}  # path -> when what was under it was last removed
        self._writes = 0
        self._dir_entries: list[str] = []  # the names of directory entries, in order
        self._whiteouts = 0  # whiteouts written: 0 means no entry can replace one
        # when each key was written, once a removal has happened (earlier ones count as 0)
        self._written: dict[str | tuple[int, str], int] = {}
        self._made: list[str] = []  # directories made for children, in the order made
        # a symlink was replaced or removed: a name may resolve elsewhere than when written
        self._symlink_gone = False

    # -- placing an entry ----------------------------------------------------------------------

    def place(self, entry: Entry) -> str | None:
        """The path the entry is written at, or None when it writes no file record (whiteout,
        opaque marker, global header, the root, a refused name). Raises ArchiveError where
        containerd fails the layer."""
        path = entry.path
        if path == "/":
            return None
        # refused before its parents are looked at or made: a 64 KiB name has 32,768 of them
        reason = _too_long(path)
        slash = path.rfind("/")
        parent, name = path[:slash] or "/", path[slash + 1:]
        if reason is None and parent not in self._clean_parents:
            parent = self._parent(parent, entry)
            path = _join(parent, name)
            reason = _too_long(path)  # a symlink may have made it longer
        if reason is not None:
            self._warn(f"{path[:200]}…: {reason}; not recorded (the runtime cannot create it)")
            return None
        if name.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent, name, entry)
            return None
        if entry.typeflag == "g":
            self.remove(path)
            self._state.pop((_PARENTS, path), None)
            self._state[(_PARENTS, path)] = None
            return None
        if entry.kind is FileKind.DIR:
            # its times are set at the end, at its name resolved again (not where it was written)
            self._dir_entries.append(entry.path)
        return path

    def _parent(self, parent: str, entry: Entry) -> str:
        """The parent directory, resolved through this layer's symlinks; checked to be (or to
        become) a directory."""
        needs_resolving = False
        ancestor = parent
        while len(ancestor) > 1:
            record = self.get(ancestor)
            if record is not None and record.kind is not FileKind.DIR:
                if record.kind is not FileKind.SYMLINK:
                    raise ArchiveError(f"entry {entry.name!r} at offset {entry.offset}: its parent "
                                       f"{ancestor!r} is a {record.kind.value} of this layer, not a directory")
                needs_resolving = True
            elif self._whited_out(ancestor):
                raise ArchiveError(f"entry {entry.name!r} at offset {entry.offset}: its parent {ancestor!r} "
                                   f"is whited out in this layer, not a directory")
            ancestor = ancestor[:ancestor.rfind("/")] or "/"
        if needs_resolving:
            parent = self._root_path(parent, entry)
            record = self.get(parent)
            if (record is not None and record.kind is not FileKind.DIR) or self._whited_out(parent):
                raise ArchiveError(f"entry {entry.name!r} at offset {entry.offset}: its parent resolves to "
                                   f"{parent!r}, not a directory")
        else:
            self._clean_parents.add(parent)
        self._made_dirs(parent)
        return parent

    def _made_dirs(self, directory: str) -> None:
        """``directory`` and its ancestors exist now (mkparent makes the missing ones)."""
        dirs, now = self._dirs, self._writes
        while len(directory) > 1 and (directory not in dirs or self._cut_at):
            if not self._is_dir(directory):
                self._made.append(directory)
            dirs[directory] = now
            directory = directory[:directory.rfind("/")] or "/"

    def _is_dir(self, path: str) -> bool:
        """Whether this layer has a directory at ``path`` now (written or made for children)."""
        made = self._dirs.get(path)
        if made is None:
            return False
        ancestor = path
        while self._cut_at and ancestor:
            if self._cut_at.get(ancestor, -1) > made:
                return False
            ancestor = ancestor[:ancestor.rfind("/")]
        return True

    def _root_path(self, path: str, entry: Entry,
                   final: tuple[dict[str, FileRecord], set[str]] | None = None) -> str:
        """continuity's fs.RootPath over this layer: ``path`` with symlinks followed, confined
        to the root. ``final``: the records and whiteouts to resolve in (default: the layer as
        it is now)."""
        get = self.get if final is None else final[0].get
        whited_out = self._whited_out if final is None else final[1].__contains__
        follows = 0
        parts = [p for p in path.split("/") if p]
        resolved = "/"
        while parts:
            part = parts.pop(0)
            candidate = normalize_path(_join(resolved, part))
            record = get(candidate)
            if parts and whited_out(candidate):
                raise ArchiveError(f"entry {entry.name!r} at offset {entry.offset}: {candidate!r} "
                                   f"is whited out in this layer, not a directory")
            if record is None or record.kind is not FileKind.SYMLINK:
                if record is not None and record.kind is not FileKind.DIR and parts:
                    raise ArchiveError(f"entry {entry.name!r} at offset {entry.offset}: {candidate!r} "
                                       f"is a {record.kind.value} of this layer, not a directory")
                resolved = candidate
                continue
            follows += 1
            if follows > MAX_LINK_FOLLOWS:
                raise ArchiveError(f"entry {entry.name!r} at offset {entry.offset}: too many levels of "
                                   f"symbolic links under {path!r}")
            target = record.link or ""
            base = "/" if target.startswith("/") else resolved
            parts[:0] = [p for p in normalize_path(_join(base, target)).split("/") if p]
            resolved = "/"
        return resolved

    def link_target(self, entry: Entry) -> str:
        """Where a hardlink's target is (containerd's hardlinkRootPath): its parent resolved
        through this layer's symlinks."""
        target = normalize_path(entry.linkname)
        if not self._symlinks or target == "/":
            return target
        slash = target.rfind("/")
        parent = self._root_path(target[:slash] or "/", entry)
        return _join(parent, target[slash + 1:])

    # -- whiteouts and removals ------------------------------------------------------------------

    def _whiteout(self, parent: str, name: str, entry: Entry) -> None:
        state = self._state
        if name == OPAQUE_MARKER:
            state.pop((_OPAQUE, parent), None)
            state[(_OPAQUE, parent)] = None
            return
        target = name[len(WHITEOUT_PREFIX):]
        if target in ("", ".", ".."):
            raise ArchiveError(f"invalid whiteout name {entry.name!r} at offset {entry.offset}")
        path = _join(parent, target)
        if self.get(path) is not None or self._is_dir(path) or self._whited_out(path):
            raise ArchiveError(f"whiteout {entry.name!r} at offset {entry.offset}: this layer already has "
                               f"{path!r} (containerd fails the layer: the whiteout cannot be created)")
        self._mark_whiteout(path)

    def _mark_whiteout(self, path: str) -> None:
        key = (_WHITEOUT, path)
        self._state.pop(key, None)  # a stale mark (under a removal) would keep its old place
        self._state[key] = None
        if self._cut_at:
            self._writes += 1
            self._written[key] = self._writes
        self._whiteouts += 1

    def link_whiteout(self, path: str) -> None:
        """A hardlink to a whiteout of this layer: the link is one more name of the 0/0 device,
        so overlayfs hides ``path`` too. It replaces what the layer has at ``path``."""
        self.remove(path)
        self._mark_whiteout(path)

    def whited_out(self, path: str) -> bool:
        """Whether a whiteout of this layer stands at ``path`` now."""
        return self._whiteouts > 0 and self._whited_out(path)

    def _whited_out(self, path: str) -> bool:
        key = (_WHITEOUT, path)
        return key in self._state and (not self._cut_at or self._live(key, path))

    def _live(self, key: str | tuple[int, str], path: str) -> bool:
        """Whether what was written at ``key`` is still there: no removal above ``path`` since."""
        written = self._written.get(key, 0)
        cut_at = self._cut_at
        ancestor = path
        while len(ancestor) > 1:
            ancestor = ancestor[:ancestor.rfind("/")] or "/"
            if cut_at.get(ancestor, -1) > written:
                return False
        return True

    def remove(self, path: str) -> None:
        """RemoveAll of what this layer has at ``path``: what a global header does to its
        path, and what the runtime does before it makes a hardlink."""
        old = self._state.pop(path, None)
        self._state.pop((_WHITEOUT, path), None)
        if old is not None and old.kind is FileKind.SYMLINK:
            self._symlink_gone = True
        if (old is not None and old.kind is FileKind.DIR) or self._is_dir(path):
            self._cut(path)

    def _cut(self, path: str) -> None:
        self._state.pop((_CUT, path), None)  # a second cut at the path counts from now
        self._state[(_CUT, path)] = None
        self._writes += 1
        self._cut_at[path] = self._writes
        self._dirs.pop(path, None)
        self._clean_parents.clear()

    # -- records ----------------------------------------------------------------------------------

    def get(self, path: str) -> FileRecord | None:
        """What this layer has at ``path`` now (a record under a later removal is gone)."""
        record = self._state.get(path)
        if record is not None and self._cut_at and not self._live(path, path):
            return None
        return record

    def add(self, record: FileRecord) -> None:
        """Write ``record`` at its path, replacing what this layer has there."""
        state, path = self._state, record.path
        old = state.get(path)
        if old is not None and self._cut_at and not self._live(path, path):
            del state[path]  # a record under a later removal: gone, and its place in the order too
            old = None
        if self._whiteouts:
            state.pop((_WHITEOUT, path), None)  # an entry replaces a whiteout
        self._writes += 1
        if self._cut_at:
            self._written[path] = self._writes
        if record.kind is FileKind.DIR:
            self._dirs[path] = self._writes
            if old is not None and old.kind is FileKind.DIR:
                state[path] = record  # a directory onto a directory: merged, in place
                return
        if old is not None:
            del state[path]
            if old.kind is FileKind.SYMLINK:
                self._symlink_gone = True
        if record.kind is not FileKind.DIR:
            if (old is not None and old.kind is FileKind.DIR) or (path in self._dirs and self._is_dir(path)):
                self._cut(path)
            if record.kind is FileKind.SYMLINK:
                self._symlinks += 1
        state[path] = record

    def _check_directories(self, files: list[FileRecord], deleted: list[str]) -> None:
        """containerd sets each directory entry's times once the layer is unpacked, at its
        path as the layer left it (whatever stands there now): a directory a later entry
        removed fails the layer."""
        alive = {record.path: record for record in files}
        whiteouts = set(deleted)
        for path in self._dir_entries:
            entry = Entry(path, FileKind.DIR, 0, 0, 0, 0, 0, None, 0, 0, False, 0, typeflag="5", name=path)
            resolved = self._root_path(path, entry, (alive, whiteouts))
            if (resolved != "/" and resolved not in alive and resolved not in whiteouts
                    and not self._is_dir(resolved)):
                raise ArchiveError(f"directory entry {path!r} is removed by a later entry of the layer "
                                   f"(containerd fails the layer setting its times)")

    def made_dirs(self) -> list[str]:
        """Every directory made for a child (not listed before it), in the order made, even
        those a later entry removed: containerd looked each up in the lower layers."""
        return self._made

    def finish(self) -> tuple[list[FileRecord], list[str], list[str], list[str]]:
        """The layer's records, whiteouts, opaque directories and paths whose parents it
        made, after removals. Raises ArchiveError where containerd fails the layer at its end."""
        files: list[FileRecord] = []
        marks: tuple[list[str], list[str], list[str], list[str]] = ([], [], [], [])
        deleted, opaque, parents = marks[_WHITEOUT], marks[_OPAQUE], marks[_PARENTS]
        if not self._cut_at:
            for key, record in self._state.items():
                if record is not None:
                    files.append(record)
                else:
                    marks[key[0]].append(key[1])  # type: ignore[index]
            if self._symlink_gone:
                self._check_directories(files, deleted)
            return files, deleted, opaque, parents
        # Newest first: a removal drops what was written under its path before it.
        removed: set[str] = set()
        for key, record in reversed(self._state.items()):
            if record is not None:
                path = record.path
            elif key[0] == _CUT:  # type: ignore[index]
                removed.add(key[1])  # type: ignore[index]
                continue
            else:
                path = key[1]  # type: ignore[index]
            # an opaque mark goes with its directory; anything else with its parent
            opaque_mark = record is None and key[0] == _OPAQUE  # type: ignore[index]
            ancestor = path if opaque_mark else path[:path.rfind("/")]
            gone = False
            while ancestor:
                if ancestor in removed:
                    gone = True
                    break
                ancestor = ancestor[:ancestor.rfind("/")]
            if gone:
                continue
            if record is not None:
                files.append(record)
            else:
                marks[key[0]].append(path)  # type: ignore[index]
        files.reverse()
        for mark in marks:
            mark.reverse()
        self._check_directories(files, deleted)
        return files, deleted, opaque, parents
