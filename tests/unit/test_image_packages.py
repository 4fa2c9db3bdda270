"""An image's packages, in process: real layer tars through the layer analyzer and the merge
(analyze.merge), as the daemon runs them, so every step of the package path is under the
unit tests (and the mutation run): which database file the merged image still shows, the
distro that names the purls, dpkg's info files joined to their package, each recorded file
digest compared with the file the image has (through usrmerge symlinks), whiteouts."""

from __future__ import annotations

import base64
import hashlib

from analyzerd.analysis.dispatch import Dispatch
from analyzerd.analyze import merge
from analyzerd.catalogers.registry import CATALOGERS
from analyzerd.model import LayerResult
from analyzerd.testing import Member, analyze_layer

DISPATCH = Dispatch(CATALOGERS)
STATUS = b"""Package: tool
Status: install ok installed
Version: 1.0-1
Architecture: amd64

Package: held
Status: hold ok installed
Version: 2.0-1
Architecture: amd64
Source: held-src (2.0)

Package: gone
Status: deinstall ok config-files
Version: 3.0-1
Architecture: amd64
"""
TOOL = b"#!/bin/sh\necho tool\n"
LIB = b"\x7fELF library"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def analyze(members: list[Member]) -> LayerResult:
    return analyze_layer(members, dispatch=DISPATCH)


def debian_base() -> list[Member]:
    return [
        Member("etc/os-release", b'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'),
        Member("usr/lib/os-release", b'ID=ubuntu\nVERSION_ID="22.04"\n'),  # /etc/os-release wins
        Member("lib", kind="symlink", link="usr/lib"),  # usrmerge
        Member("usr/bin/tool", TOOL, mode=0o755),
        Member("usr/lib/libheld.so", LIB),
        Member("var/lib/dpkg/status", STATUS),
        Member("var/lib/dpkg/info/tool.md5sums",
               f"{md5(TOOL)}  usr/bin/tool\n{md5(b'never shipped')}  usr/share/doc/tool/README\n".encode()),
        Member("var/lib/dpkg/info/tool.list", b"/.\n/usr\n/usr/bin\n/usr/bin/tool\n/usr/share/doc/tool/README\n"),
        # a multi-arch package's info files carry its arch; its path goes through the /lib symlink
        Member("var/lib/dpkg/info/held:amd64.md5sums", f"{md5(LIB)}  lib/libheld.so\n".encode()),
    ]


def packages(layers: list[LayerResult]):
    _, inventory, _ = merge(layers)
    return inventory, {p.package.name: p for p in inventory.packages}


def test_installed_packages_with_their_files_checked_through_the_merged_image():
    inventory, found = packages([analyze(debian_base())])
    assert (inventory.distro.id, inventory.distro.version_id) == ("debian", "12")
    assert sorted(found) == ["held", "tool"]  # "gone" left only config files
    tool, held = found["tool"], found["held"]
    assert tool.purl == "pkg:deb/debian/tool@1.0-1?arch=amd64&distro=debian-12"
    assert held.purl == "pkg:deb/debian/held@2.0-1?arch=amd64&upstream=held-src%402.0&distro=debian-12"
    assert (tool.location, tool.layer) == ("/var/lib/dpkg/status", 0)
    assert {f.path: f.status for f in tool.files} == {
        "/usr/bin/tool": "ok", "/usr/share/doc/tool/README": "missing", "/usr": "unchecked",
        "/usr/bin": "unchecked"}
    assert tool.missing == ["/usr/share/doc/tool/README"] and tool.modified == []
    assert [(f.path, f.status, f.algorithm) for f in held.files] == [("/lib/libheld.so", "ok", "md5")]


def test_a_later_layer_changing_a_packaged_file_is_reported_as_modified():
    upper = analyze([Member("usr/lib/libheld.so", b"patched by hand"),
                     Member("usr/bin/tool", kind="symlink", link="/bin/busybox")])
    _, found = packages([analyze(debian_base()), upper])
    assert found["held"].modified == ["/lib/libheld.so"]
    assert found["tool"].modified == ["/usr/bin/tool"]  # no longer the file dpkg installed


def test_a_whited_out_or_replaced_database_takes_its_packages_with_it():
    base = analyze(debian_base())
    _, found = packages([base, analyze([Member("var/lib/dpkg/.wh.status")])])
    assert found == {}
    replaced = analyze([Member("var/lib/dpkg/status", STATUS.split(b"\n\n")[0] + b"\n")])
    _, found = packages([base, replaced])
    assert sorted(found) == ["tool"] and (found["tool"].location, found["tool"].layer) == ("/var/lib/dpkg/status", 1)
    # an opaque directory hides the lower layer's database just the same
    _, found = packages([base, analyze([Member("var/lib/dpkg/.wh..wh..opq")])])
    assert found == {}


def test_apk_file_digests_are_checked_as_sha1():
    busybox = b"\x7fELF busybox"
    q1 = "Q1" + base64.b64encode(hashlib.sha1(busybox).digest()).decode()
    db = f"P:busybox\nV:1.36.1-r2\nA:x86_64\nF:bin\nR:busybox\nZ:{q1}\nR:sh\nZ:{q1}\n\n".encode()
    layer = analyze([Member("etc/alpine-release", b"3.19.1\n"), Member("lib/apk/db/installed", db),
                     Member("bin/busybox", busybox), Member("bin/sh", b"not busybox")])
    inventory, found = packages([layer])
    assert inventory.distro.id == "alpine"
    assert found["busybox"].purl == "pkg:apk/alpine/busybox@1.36.1-r2?arch=x86_64&distro=alpine-3.19.1"
    assert {f.path: f.status for f in found["busybox"].files} == {"/bin/busybox": "ok", "/bin/sh": "modified"}


def test_package_files_are_found_through_symlinked_directories_and_loops_end():
    """A recorded path is followed through symlinked directories (relative, absolute, chained)
    as the kernel would, up to 40 links; a loop or a dangling link makes the file missing; a
    file that became a symlink or a directory is modified. Every check keeps the recorded
    digest and algorithm."""
    from analyzerd.analysis.packages import FileCheck
    data = b"payload"
    digest = md5(data)
    md5sums = "".join(f"{digest}  {path}\n" for path in (
        "lib64/x/a", "rel/b", "chain1/c", "loop1/d", "dangling/e", "far0/f", "swapped", "dir")).encode()
    members = [
        Member("usr/lib/x/a", data), Member("lib64", kind="symlink", link="/usr/lib"),  # absolute
        Member("opt/real/b", data), Member("rel", kind="symlink", link="opt/real"),  # relative
        Member("chain1", kind="symlink", link="chain2"), Member("chain2", kind="symlink", link="usr/lib/x"),
        Member("usr/lib/x/c", data),
        Member("loop1", kind="symlink", link="loop2"), Member("loop2", kind="symlink", link="loop1"),
        Member("dangling", kind="symlink", link="nowhere"),
        Member("swapped", kind="symlink", link="usr/lib/x/a"), Member("dir", kind="dir"),
        Member("var/lib/dpkg/status", b"Package: p\nStatus: install ok installed\nVersion: 1\n"),
        Member("var/lib/dpkg/info/p.md5sums", md5sums),
    ]
    # far0 -> far1 -> ... -> far41 -> /usr/lib/x: 42 links, past the kernel's 40
    members += [Member(f"far{i}", kind="symlink", link=f"far{i + 1}") for i in range(41)]
    members += [Member("far41", kind="symlink", link="/usr/lib/x"), Member("usr/lib/x/f", data)]
    _, found = packages([analyze(members)])
    checks = {f.path: f for f in found["p"].files}
    status = {path: check.status for path, check in checks.items()}
    assert status == {"/lib64/x/a": "ok", "/rel/b": "ok", "/chain1/c": "ok", "/loop1/d": "missing",
                      "/dangling/e": "missing", "/far0/f": "missing", "/swapped": "modified", "/dir": "modified"}
    assert checks["/lib64/x/a"] == FileCheck("/lib64/x/a", digest, "md5", "ok")
    assert checks["/loop1/d"] == FileCheck("/loop1/d", digest, "md5", "missing")
    assert checks["/swapped"] == FileCheck("/swapped", digest, "md5", "modified")


def test_python_record_digests_and_go_sum_hashes_join_their_own_package_only():
    """A .dist-info's RECORD checks that distribution's files (sha256, urlsafe base64); a
    go.sum's h1 hash goes to the module the go.mod beside it requires, and to nothing else."""
    module = b"print('hello')\n"
    encoded = base64.urlsafe_b64encode(hashlib.sha256(module).digest()).rstrip(b"=").decode()
    site = "usr/lib/python3/dist-packages"
    members = [
        Member(f"{site}/hello-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: hello\nVersion: 1.0\n"),
        Member(f"{site}/hello-1.0.dist-info/RECORD",
               f"hello.py,sha256={encoded},{len(module)}\nhello_extra.py,sha256={encoded},{len(module)}\n"
               f"hello-1.0.dist-info/RECORD,,\n".encode()),
        Member(f"{site}/hello.py", module), Member(f"{site}/hello_extra.py", b"changed\n"),
        Member(f"{site}/other-2.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: other\nVersion: 2.0\n"),
        Member("src/app/go.mod", b"module example.com/app\n\ngo 1.21\n\nrequire github.com/pkg/errors v0.9.1\n"),
        Member("src/app/go.sum", b"github.com/pkg/errors v0.9.1 h1:FEBLx1zS214owpjy7qsBeixbURkuhQAwrK5UwLGTwt4=\n"
                                 b"github.com/pkg/errors v0.9.1/go.mod h1:bwawxfHBFNV+L2hUp1rHADufV3IMtnDRdf1r5NINEl0=\n"),
        Member("src/other/go.mod", b"module example.com/other\n\ngo 1.21\n\nrequire github.com/pkg/errors v0.9.1\n"),
    ]
    _, found = packages([analyze(members)])
    hello = found["hello"]
    assert {f.path: f.status for f in hello.files if f.digest} == {
        f"/{site}/hello.py": "ok", f"/{site}/hello_extra.py": "modified"}
    assert found["other"].files == []
    inventory, _ = packages([analyze(members)])
    by_location = {p.location: p.package.metadata.get("h1") for p in inventory.packages
                   if p.package.name == "github.com/pkg/errors"}
    assert by_location == {"/src/app/go.mod": "h1:FEBLx1zS214owpjy7qsBeixbURkuhQAwrK5UwLGTwt4=",
                           "/src/other/go.mod": None}


def test_symlink_resolution_stops_at_exactly_the_kernels_40_links():
    """40 links in a row resolve (the kernel's ELOOP limit is more than 40); 41 do not."""
    data = b"payload"
    members = [Member("usr/lib/x/f", data),
               Member("var/lib/dpkg/status", b"Package: p\nStatus: install ok installed\nVersion: 1\n"),
               Member("var/lib/dpkg/info/p.md5sums", f"{md5(data)}  a0/f\n{md5(data)}  b0/f\n".encode())]
    for name, links in (("a", 40), ("b", 41)):
        members += [Member(f"{name}{i}", kind="symlink", link=f"{name}{i + 1}") for i in range(links - 1)]
        members.append(Member(f"{name}{links - 1}", kind="symlink", link="/usr/lib/x"))
    _, found = packages([analyze(members)])
    assert {f.path: f.status for f in found["p"].files} == {"/a0/f": "ok", "/b0/f": "missing"}


def test_relative_links_in_subdirectories_and_a_link_at_the_end_of_the_path():
    """A relative link is read from its own directory (/usr/lib64 -> lib is /usr/lib); a link
    that is the last component is the file itself, not followed (a packaged file replaced by a
    symlink is modified), also behind a symlinked directory; names with any letters."""
    data = b"payload"
    md5sums = "".join(f"{md5(data)}  {path}\n" for path in (
        "usr/lib64/X/Xa", "usr/lib64/X/link", "lib/X", "usr/lib64/up/X")).encode()
    members = [
        Member("usr/lib/X/Xa", data), Member("usr/lib64", kind="symlink", link="lib"),
        Member("usr/lib/X/link", kind="symlink", link="Xa"),
        Member("lib", kind="symlink", link="usr/lib"), Member("usr/lib/X", kind="dir"),
        Member("usr/lib/up", kind="symlink", link="../share"), Member("usr/share/X", data),
        Member("var/lib/dpkg/status", b"Package: p\nStatus: install ok installed\nVersion: 1\n"),
        Member("var/lib/dpkg/info/p.md5sums", md5sums),
    ]
    _, found = packages([analyze(members)])
    assert {f.path: f.status for f in found["p"].files} == {
        "/usr/lib64/X/Xa": "ok", "/usr/lib64/X/link": "modified", "/lib/X": "modified", "/usr/lib64/up/X": "ok"}


def test_a_digest_of_an_algorithm_not_computed_is_unchecked_and_kept():
    """A RECORD may hash with sha512: analyzerd computes md5, sha1 and sha256 only, so the
    file is unchecked (neither ok nor modified), and the recorded digest is kept."""
    module = b"print('hello')\n"
    encoded = base64.urlsafe_b64encode(hashlib.sha512(module).digest()).rstrip(b"=").decode()
    site = "usr/lib/python3/dist-packages"
    members = [
        Member(f"{site}/hello-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: hello\nVersion: 1.0\n"),
        Member(f"{site}/hello-1.0.dist-info/RECORD", f"hello.py,sha512={encoded},{len(module)}\n".encode()),
        Member(f"{site}/hello.py", module),
    ]
    _, found = packages([analyze(members)])
    (check,) = found["hello"].files
    assert (check.path, check.digest, check.algorithm, check.status) == (
        f"/{site}/hello.py", hashlib.sha512(module).hexdigest(), "sha512", "unchecked")


def test_the_archive_carries_the_files_sha1_and_a_nested_archive_its_own():
    """A jar's SHA-1 names it on Maven Central: the top-level archive's package gets the
    file's SHA-1; a jar nested in it keeps the SHA-1 of its own bytes, not the file's."""
    import io
    import zipfile

    def jar(entries: dict[str, bytes]) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for name, data in entries.items():
                archive.writestr(name, data)
        return out.getvalue()

    inner = jar({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\nImplementation-Title: inner\n"
                                         b"Implementation-Version: 2.0\n"})
    outer = jar({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\nImplementation-Title: outer\n"
                                         b"Implementation-Version: 1.0\n", "lib/inner-2.0.jar": inner})
    inventory, found = packages([analyze([Member("opt/app/outer-1.0.jar", outer)])])
    assert found["outer"].package.metadata["sha1"] == hashlib.sha1(outer).hexdigest()
    assert found["inner"].package.metadata["sha1"] == hashlib.sha1(inner).hexdigest()
    assert found["inner"].location == "/opt/app/outer-1.0.jar"



def test_a_packaged_file_that_is_a_hardlink_is_checked_against_the_content_it_links_to():
    """A hardlink to a lower layer's file has that file's content (checked: ok); one to a file
    the image does not have has no content at all, so nothing can be compared (unchecked)."""
    data = b"payload"
    database = [Member("var/lib/dpkg/status", b"Package: p\nStatus: install ok installed\nVersion: 1\n"),
                Member("var/lib/dpkg/info/p.md5sums", f"{md5(data)}  usr/bin/x\n".encode()),
                Member("usr/bin/x", kind="hardlink", link="usr/bin/real")]
    _, found = packages([analyze([Member("usr/bin/real", data)]), analyze(database)])
    assert [(f.path, f.status) for f in found["p"].files] == [("/usr/bin/x", "ok")]
    _, found = packages([analyze(database)])
    assert [(f.path, f.digest, f.status) for f in found["p"].files] == [("/usr/bin/x", md5(data), "unchecked")]

# Mutation survivors that cannot matter (tools/mutation.sh analysis):
# - _View.resolve: `found = None` or `records.get(None)` (no direct lookup first): the walk below finds the same
#   record, one component at a time.
# - _View.resolve: an absolute link target joined to the current directory (`... and False`, `startswith("XX/XX")`):
#   posixpath.join drops everything before an absolute part, so the path is the same.
# - _check: `owned.algorithm or "XXXX"`: neither "" nor "XXXX" is an algorithm analyzerd computes.
# - _claims_of: `pypi or not declared`: other packages then look up claims under their database's directory, a key
#   no claim has (claims are filed under dpkg names, .dist-info directories and go.mod#module@version).
# - _claims_of: `golang or location.endswith("/go.mod")`: a Go binary's key (path#module@version) is never a go.sum's.
# - inventory: `metadata.get("virtual_path", None)` or no default: the java cataloger sets virtual_path on every
#   package, so the default is never read.
