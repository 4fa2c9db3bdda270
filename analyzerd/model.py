"""Value types shared by every part of analyzerd. A leaf: stdlib only."""

from __future__ import annotations

import json

import enum
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "Descriptor",
    "FileKind",
    "FileRecord",
    "ImageResult",
    "Job",
    "JobStatus",
    "LayerResult",
    "Platform",
    "VisibleFile",
]


class FileKind(str, enum.Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR = "char"
    BLOCK = "block"
    FIFO = "fifo"


#: Architectures that may stand alone for ``linux/ARCH`` (GOARCH names, as images use them).
SHORTHAND_ARCHITECTURES: Final = ("amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le")


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]``, or an architecture alone (``arm64``: ``linux/arm64``,
        as containerd reads it); raises ValueError."""
        parts = text.strip().split("/")
        if len(parts) == 1 and parts[0] in SHORTHAND_ARCHITECTURES:
            return cls("linux", parts[0])
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform {text!r} is not os/architecture[/variant] "
                             f"(or an architecture alone: {', '.join(SHORTHAND_ARCHITECTURES)})")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True, kw_only=True)
class Descriptor:
    """An OCI content descriptor: what a manifest says about a blob."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()


@dataclass(slots=True)
class FileRecord:
    """One entry of a layer's filesystem as analyzerd records it.

    Mutable only while its layer is being read (digests arrive after the header); a
    finished layer's records are shared by every image that has the layer: do not modify.
    """

    path: str
    kind: FileKind
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    link: str | None = None
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None

    def take_content_of(self, target: FileRecord) -> None:
        """A hardlink is the same inode as its target: same content, digests and attributes.
        A hardlink to a symlink or a device is that symlink or device at another path."""
        if target.kind is FileKind.FILE or target.kind is FileKind.HARDLINK:
            self.size, self.mode, self.uid, self.gid, self.mtime = (
                target.size, target.mode, target.uid, target.gid, target.mtime)
            self.md5, self.sha1, self.sha256 = target.md5, target.sha1, target.sha256
        elif target.kind is not FileKind.DIR:
            self.kind, self.link, self.size = target.kind, target.link, target.size
            self.mode, self.uid, self.gid, self.mtime = target.mode, target.uid, target.gid, target.mtime


@dataclass(slots=True, kw_only=True)
class LayerResult:
    """Everything one layer blob contains, independent of the image it is in."""

    digest: str
    media_type: str
    compressed_size: int
    uncompressed_size: int = 0
    diff_id: str | None = None
    files: list[FileRecord] = field(default_factory=list)
    #: paths removed from lower layers by ``.wh.NAME`` entries
    deleted: list[str] = field(default_factory=list)
    #: directories whose lower-layer contents are hidden by ``.wh..wh..opq``
    opaque_dirs: list[str] = field(default_factory=list)
    #: paths whose parent directories the layer makes without an entry of its own (the name
    #: of a global PAX header, which the runtime skips once it has made them)
    parents_of: list[str] = field(default_factory=list)
    #: directories the runtime makes for a child the layer lists before (or without) them, in
    #: the order made, those a later entry removes too: containerd looks each one up in the
    #: lower layers as it makes it, and fails the layer where one is under a lower non-directory
    made_dirs: list[str] = field(default_factory=list)
    entry_count: int = 0
    warnings: list[str] = field(default_factory=list)
    #: what the catalogers found in this layer's files (CatalogEntry values)
    catalog: list[Any] = field(default_factory=list)
    #: secrets found in this layer's files (SecretFinding values), whatever upper layers do
    secrets: list[Any] = field(default_factory=list)
    #: the rule set (RuleSet.digest) the secrets were looked for with; None: not scanned
    secret_rules: str | None = None
    #: False for a layer that was not read (a foreign layer not allowed): nothing to reuse
    analyzed: bool = True
    #: True when it came from the database (it need not be stored again)
    stored: bool = False


#: A path of the merged filesystem: the layer (index) that last wrote it, its record, and
#: whether the record is the image's own (an implied parent directory, a hardlink given its
#: target's content) rather than the layer's.
VisibleFile = tuple[int, FileRecord, bool]


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """A secret in a layer's file, or in the image config (``path`` then starts with
    ``config:``, as in ``config:Env[2]``; ``line`` and ``offset`` are within that value).
    The secret itself is never kept."""

    path: str
    rule: str
    category: str
    severity: str
    line: int  #: 1-based
    offset: int  #: byte offset of the match in the file
    #: what may be shown: the rule's public literals around ``*****`` (``AKIA*****``), else
    #: only the length and fingerprint (``<redacted: 4 chars, fp 1a2b3c4d>``); secrets.redaction
    redacted: str
    fingerprint: str  #: HMAC-SHA256 of the secret under the installation's key (hex)


@dataclass(frozen=True, slots=True)
class ImageSecret:
    finding: SecretFinding
    #: index of the layer whose file holds it, or that the config's history entry made;
    #: None: the image config holds it outside any layer (Env, Labels, Entrypoint, Cmd)
    layer: int | None
    #: index of the upper layer that deleted or replaced that file (the secret is still in
    #: the image's blobs); None: the image shows the file
    deleted_in: int | None


@dataclass(slots=True, kw_only=True)
class ImageResult:
    reference: str
    manifest_digest: str
    manifest_media_type: str
    index_digest: str | None
    config_digest: str
    platform: Platform
    #: the image config, with any secret found in it replaced by the finding's hint
    config: dict[str, Any]
    #: the config blob as served (its sha256 is config_digest) or, when secrets were found
    #: in it, the redacted config as JSON: what is stored (images.config_json)
    config_text: str
    layers: list[LayerResult]
    files: list[VisibleFile]
    #: distro and packages (analysis.packages.Inventory), once the layers are merged
    inventory: Any = None
    #: every layer's secrets, with the upper layer that hid each one, if any
    secrets: list[ImageSecret] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [w for layer in self.layers for w in layer.warnings]

    @property
    def created(self) -> str | None:
        value = self.config.get("created")
        return value if isinstance(value, str) else None


class JobStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    id: int
    reference: str
    platform: str | None
    status: JobStatus
    attempts: int
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    image_digest: str | None
    worker: str | None = None
    lease_until: float | None = None
    force: bool = False  #: analyze again even if the manifest was analyzed
    #: a running job's progress as its daemon last wrote it (layers_done, layers_total, bytes, files)
    progress: dict[str, Any] | None = None
    #: tries that ended with the daemon dead (its lease expired); they count toward max_attempts
    lease_expiries: int = 0

    @classmethod
    def from_row(cls, row: Any) -> Job:
        return cls(
            id=row["id"],
            reference=row["reference"],
            platform=row["platform"],
            status=JobStatus(row["status"]),
            attempts=row["attempts"],
            error=row["error"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            image_digest=row["image_digest"],
            worker=row["worker"],
            lease_until=row["lease_until"],
            force=bool(row["force"]),
            progress=json.loads(row["progress"]) if "progress" in row.keys() and row["progress"] else None,
            lease_expiries=row["lease_expiries"] if "lease_expiries" in row.keys() else 0,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "platform": self.platform,
            "status": self.status.value,
            "attempts": self.attempts,
            "lease_expiries": self.lease_expiries,
            "error": self.error,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "image_digest": self.image_digest,
            "progress": self.progress,
            "worker": self.worker,  # host:pid:random of the daemon that has it or had it last
        }
