"""An image's secrets: every layer's findings, including those in files an upper layer
deleted or replaced. Those bytes are still in the image's blobs, and anyone who pulls the
image can read them, so they are reported, marked with the layer that hid them."""

from __future__ import annotations

from ..model import FileKind, ImageSecret, LayerResult

__all__ = ["image_secrets"]


def _ancestors(path: str) -> list[str]:
    """"/" too: an opaque marker at a layer's root hides every lower layer, as the merge has it."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(len(parts))]


class _LayerChanges:
    """What one layer does to lower layers' paths (built only when a lower layer has secrets)."""

    def __init__(self, layer: LayerResult) -> None:
        self.written = {r.path: r.kind for r in layer.files}
        self.deleted = set(layer.deleted)
        self.opaque = set(layer.opaque_dirs)

    def hides(self, path: str) -> bool:
        if path in self.written or path in self.deleted:
            return True
        for ancestor in _ancestors(path):
            if ancestor in self.deleted or ancestor in self.opaque:
                return True
            kind = self.written.get(ancestor)
            if kind is not None and kind is not FileKind.DIR:
                return True  # a directory replaced by a file or a link
        return False


def image_secrets(layers: list[LayerResult]) -> list[ImageSecret]:
    changes: dict[int, _LayerChanges] = {}
    out: list[ImageSecret] = []
    for index, layer in enumerate(layers):
        for finding in layer.secrets:
            hidden_in = None
            for upper in range(index + 1, len(layers)):
                if upper not in changes:
                    changes[upper] = _LayerChanges(layers[upper])
                if changes[upper].hides(finding.path):
                    hidden_in = upper
                    break
            out.append(ImageSecret(finding, index, hidden_in))
    return out
