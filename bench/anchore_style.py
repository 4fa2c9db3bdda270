"""The Anchore Engine way, for comparison: extract each layer to disk with tar (applying
whiteouts first, as a squash does), then walk the rootfs and hash every regular file.

    python bench/anchore_style.py ROOTFS LAYER...
"""

import hashlib
import os
import shutil
import subprocess
import sys


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def main() -> None:
    rootfs, layers = sys.argv[1], sys.argv[2:]
    for layer in layers:
        names = subprocess.run(["tar", "-tf", layer], check=True, capture_output=True).stdout.decode(
            "utf-8", "surrogateescape").splitlines()
        for name in names:
            base = os.path.basename(name.rstrip("/"))
            parent = os.path.join(rootfs, os.path.dirname(name.rstrip("/")))
            if base == ".wh..wh..opq" and os.path.isdir(parent):
                for child in os.listdir(parent):
                    remove(os.path.join(parent, child))
            elif base.startswith(".wh."):
                remove(os.path.join(parent, base[4:]))
        subprocess.run(["tar", "-xf", layer, "-C", rootfs, "--exclude=.wh.*", "--same-owner",
                        "--numeric-owner", "--no-same-permissions"], check=True)
    files = 0
    for dirpath, _, names in os.walk(rootfs):
        for name in names:
            path = os.path.join(dirpath, name)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            md5, sha1, sha256 = hashlib.md5(), hashlib.sha1(), hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    md5.update(chunk)
                    sha1.update(chunk)
                    sha256.update(chunk)
            files += 1
    print(f"files={files}", file=sys.stderr)


if __name__ == "__main__":
    main()
