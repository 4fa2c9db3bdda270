#!/usr/bin/env python3
"""Build examples/sample-image, the small OCI image layout the README's quick start analyzes.

Deterministic: running it again gives the same digests. Two layers: a tiny Debian-like
base with a hardlink, and an app layer that deletes a base file (whiteout), adds an npm
package and a planted, well-known *example* AWS key (from AWS's documentation).
"""

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from analyzerd.testing import Member, build_image, make_layer, write_oci_layout  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

OS_RELEASE = b"""PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""
DPKG_STATUS = b"""Package: base-files
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 341
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files

Package: hello
Status: install ok installed
Priority: optional
Section: devel
Installed-Size: 280
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Version: 2.10-3
Depends: libc6 (>= 2.34)
Description: example package based on GNU hello
"""


def D(name, mode=0o755):
    return Member(name, kind="dir", mode=mode)


def main() -> None:
    base = make_layer([
        D("etc"), D("usr"), D("usr/bin"), D("var"), D("var/lib"), D("var/lib/dpkg"), D("tmp", 0o1777), D("root", 0o700),
        Member("bin", kind="symlink", link="usr/bin", mode=0o777),
        Member("etc/os-release", OS_RELEASE),
        Member("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
        Member("etc/shadow", b"root:*:19000:0:99999:7:::\n", mode=0o640, gid=42),
        Member("usr/bin/hello", b"#!/bin/sh\necho 'Hello, world!'\n", mode=0o755),
        # a hardlink names a file earlier in its own layer: one to a lower layer's file is a
        # layer containerd refuses (analyzerd warns about it)
        Member("usr/bin/hello-again", kind="hardlink", link="usr/bin/hello", mode=0o755),
        Member("usr/bin/su-helper", b"\x7fELF not really\n", mode=0o4755),
        Member("usr/bin/old-tool", b"#!/bin/sh\necho old\n", mode=0o755),
        Member("var/lib/dpkg/status", DPKG_STATUS),
    ], "gnu")
    app = make_layer([
        Member("usr/bin/.wh.old-tool"),
        D("app"), D("app/node_modules"), D("app/node_modules/left-pad"),
        Member("app/package.json", b'{"name": "sample-app", "version": "1.0.0", "dependencies": {"left-pad": "1.3.0"}}\n'),
        Member("app/node_modules/left-pad/package.json",
               b'{"name": "left-pad", "version": "1.3.0", "license": "WTFPL"}\n'),
        D("root/.aws", 0o700),
        Member("root/.aws/credentials", b"[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
               b"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n", mode=0o600),
    ], "pax")
    image = build_image([base, app], compression=["gzip", "gzip"],
                        config_extra={"config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/usr/bin/hello"]}})
    target = os.path.join(HERE, "sample-image")
    shutil.rmtree(target, ignore_errors=True)
    write_oci_layout(target, {"1": image})
    print(f"{target}: {image.manifest.digest}")


if __name__ == "__main__":
    main()
