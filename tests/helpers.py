"""Independent oracles the tests compare analyzerd against."""

import hashlib
import io
import os
import shutil
import stat
import tarfile


def filesystem_merge(layers, root):
    """Extract each layer over the previous ones: whiteouts first (they act on lower
    layers only), then the members; a non-directory replaces a directory wholesale."""
    for tar_bytes in layers:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
            members = tar.getmembers()
            for m in members:
                base = os.path.basename(m.name.rstrip("/"))
                parent = os.path.join(root, os.path.dirname(m.name.rstrip("/")))
                if base == ".wh..wh..opq":
                    if os.path.isdir(parent) and not os.path.islink(parent):
                        for child in os.listdir(parent):
                            _remove(os.path.join(parent, child))
                elif base.startswith(".wh."):
                    _remove(os.path.join(parent, base[4:]))
            for m in members:
                if os.path.basename(m.name.rstrip("/")).startswith(".wh."):
                    continue
                target = os.path.join(root, m.name.rstrip("/"))
                if not m.isdir() and os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                elif os.path.lexists(target) and not m.isdir():
                    os.unlink(target)
                tar.extract(m, root, set_attrs=False, filter="fully_trusted")
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            path = "/" + os.path.relpath(full, root)
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    out[path] = ("file", hashlib.sha256(f.read()).hexdigest())
            elif stat.S_ISDIR(st.st_mode):
                out[path] = ("dir", None)
            elif stat.S_ISLNK(st.st_mode):
                out[path] = ("symlink", os.readlink(full))
    return out


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


class Fixtures:
    """The real files of one ecosystem under tests/data/<eco>/, laid out by rootfs path,
    and what Syft 1.18.1 found in them (expected-syft-1.18.1.json)."""

    def __init__(self, ecosystem):
        self.root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", ecosystem)

    def read(self, path):
        with open(os.path.join(self.root, path.lstrip("/")), "rb") as f:
            return f.read()

    def syft_expected(self, path):
        import json
        with open(os.path.join(self.root, "expected-syft-1.18.1.json")) as f:
            return [a for a in json.load(f)["artifacts"] if a["path"] == path]
