import pytest

from analyzerd.errors import InvalidReferenceError
from analyzerd.oci import Index, parse_manifest, select_platform
from analyzerd.errors import ManifestError, PlatformNotFoundError
from analyzerd.model import Descriptor, Platform
from analyzerd.reference import ImageRef, LocalRef, canonical_source, is_loopback_host, parse_reference


@pytest.mark.parametrize("text, expected", [
    ("alpine", ImageRef("docker.io", "library/alpine", "latest")),
    ("alpine:3.19", ImageRef("docker.io", "library/alpine", "3.19")),
    ("docker.io/alpine", ImageRef("docker.io", "library/alpine", "latest")),
    ("index.docker.io/library/alpine:3", ImageRef("docker.io", "library/alpine", "3")),
    ("bitnami/redis", ImageRef("docker.io", "bitnami/redis", "latest")),
    ("127.0.0.1:5000/polyglot:1", ImageRef("127.0.0.1:5000", "polyglot", "1")),
    ("localhost/a/b", ImageRef("localhost", "a/b", "latest")),
    ("ghcr.io/org/img@sha256:" + "a" * 64, ImageRef("ghcr.io", "org/img", None, "sha256:" + "a" * 64)),
    ("quay.io/x/y:v1@sha256:" + "b" * 64, ImageRef("quay.io", "x/y", "v1", "sha256:" + "b" * 64)),
    ("[::1]:5000/img", ImageRef("[::1]:5000", "img", "latest")),
    ("oci:/srv/layout:v2", LocalRef("oci", "/srv/layout", "v2")),
    ("oci:examples/hello", LocalRef("oci", "examples/hello", None)),
])
def test_parse(text, expected):
    assert parse_reference(text) == expected


@pytest.mark.parametrize("text", ["", "UPPER/case", "a:b:c", "host:5000/repo:bad tag", "x@sha256:12",
                                  "registry.io/", "a//b"])
def test_invalid(text):
    with pytest.raises(InvalidReferenceError):
        parse_reference(text)


@pytest.mark.parametrize("host, loopback", [("localhost:5000", True), ("127.0.0.1:5000", True),
                                            ("127.8.9.10", True), ("[::1]:5000", True),
                                            ("example.com", False), ("10.0.0.1:5000", False)])
def test_loopback(host, loopback):
    assert is_loopback_host(host) is loopback


def _index(*platforms):
    return Index("application/vnd.oci.image.index.v1+json", tuple(
        Descriptor(media_type="m", digest=f"sha256:{i}", size=1, platform=Platform.parse(p))
        for i, p in enumerate(platforms)))


def test_platform_selection_normalizes_like_containerd():
    index = _index("linux/amd64", "linux/arm64/v8", "linux/arm/v7")
    assert select_platform(index, Platform.parse("linux/arm64"), "x").digest == "sha256:1"
    assert select_platform(index, Platform.parse("linux/arm64/v8"), "x").digest == "sha256:1"
    assert select_platform(index, Platform.parse("linux/arm"), "x").digest == "sha256:2"
    with pytest.raises(PlatformNotFoundError, match=r"no image for platform linux/s390x .*linux/amd64, linux/arm64/v8"):
        select_platform(index, Platform.parse("linux/s390x"), "img")


def test_an_architecture_alone_is_a_linux_platform_and_sources_from_syft_and_skopeo_are_named():
    assert Platform.parse("arm64") == Platform("linux", "arm64") and str(Platform.parse("amd64")) == "linux/amd64"
    for text in ("x86", "linux", "linux/", "/amd64"):
        with pytest.raises(ValueError, match="os/architecture"):
            Platform.parse(text)
    assert canonical_source("registry:ghcr.io/org/app:1") == "ghcr.io/org/app:1"
    assert canonical_source("docker://quay.io/org/app@sha256:" + "a" * 64) == "quay.io/org/app@sha256:" + "a" * 64
    assert canonical_source("oci-dir:./layout") == "oci:./layout"
    # a host and port, or an image and tag, are not sources
    for text in ("registry:5000/app:1", "registry:2", "docker:latest", "localhost:5000/app"):
        assert canonical_source(text) == text
    for text, hint in (("docker:nginx:1", "docker save"), ("podman:app:1", "podman save"),
                       ("oci-archive:img.tar", "tar -xf"), ("dir:/srv/app", "not directories")):
        with pytest.raises(InvalidReferenceError) as caught:
            canonical_source(text)
        assert hint in caught.value.hint and text.split(":")[0] in caught.value.message


def test_schema1_is_refused_with_a_reason():
    with pytest.raises(ManifestError, match="schema 1"):
        parse_manifest(b'{"schemaVersion": 1, "fsLayers": []}', None, "old:1")


def test_encrypted_layers_are_refused():
    doc = (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
           b'"config":{"digest":"sha256:a","size":1},"layers":[{"mediaType":'
           b'"application/vnd.oci.image.layer.v1.tar+gzip+encrypted","digest":"sha256:b","size":2}]}')
    with pytest.raises(ManifestError, match="encrypted"):
        parse_manifest(doc, None, "enc:1")
