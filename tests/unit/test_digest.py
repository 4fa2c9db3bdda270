"""Descriptor digests are checked where they are parsed, before any URL or path is built.

The image spec's grammar is ``algorithm:encoded``; its registered algorithms have exact
encodings (sha256: 64 lowercase hex digits, sha512: 128). Anything else is refused with an
error naming the digest and where it came from. The crafted values below are what a hostile
manifest or index would hold."""

from __future__ import annotations

import json

import pytest

from analyzerd.errors import ManifestError
from analyzerd.oci import Index, Manifest, parse_manifest, validate_digest

SHA256 = "sha256:" + "0123456789abcdef" * 4
SHA512 = "sha512:" + "0123456789abcdef" * 8

CRAFTED = [
    # the confirmed bug: normalized by the URL library into another repository's blob URL
    pytest.param("sha256:/../../other/private/blobs/" + SHA256, id="dot-dot-into-another-repository"),
    pytest.param(SHA256 + "/../../../other/private/manifests/1", id="valid-then-dot-dot"),
    pytest.param("sha256:" + "%2e%2e%2f" * 8, id="percent-encoded-dot-dot"),
    pytest.param("sha256:..%2F..%2Fother", id="dots-and-encoded-slashes"),
    pytest.param("sha256:" + "0" * 63, id="sha256-one-digit-short"),
    pytest.param("sha256:" + "0" * 65, id="sha256-one-digit-long"),
    pytest.param("sha256:" + "0" * 128, id="sha256-with-sha512-length"),
    pytest.param("sha512:" + "0" * 64, id="sha512-with-sha256-length"),
    pytest.param("sha256:" + "ABCDEF0123456789" * 4, id="uppercase-hex"),
    pytest.param("SHA256:" + "0" * 64, id="uppercase-algorithm"),
    pytest.param("sha256:" + "g" * 64, id="not-hex"),
    pytest.param("sha256:" + "\u0660" * 64, id="arabic-indic-digits"),  # str.isalnum and isdigit say yes
    pytest.param("sha256:" + "0" * 63 + "\n", id="trailing-newline"),
    pytest.param(" sha256:" + "0" * 64, id="leading-space"),
    pytest.param("sha256:" + "0" * 32 + "?" + "0" * 31, id="query-in-the-middle"),
    pytest.param("sha256:" + "0" * 32 + "#" + "0" * 31, id="fragment-in-the-middle"),
    pytest.param("md5:" + "0" * 32, id="unregistered-algorithm"),
    pytest.param("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", id="unregistered-with-separator"),
    pytest.param("sha256", id="no-colon"),
    pytest.param(":" + "0" * 64, id="no-algorithm"),
    pytest.param("sha256:", id="no-encoded"),
    pytest.param("", id="empty"),
]


def test_registered_algorithms_pass_unchanged() -> None:
    assert validate_digest(SHA256, "here") == SHA256
    assert validate_digest(SHA512, "here") == SHA512


@pytest.mark.parametrize("digest", CRAFTED)
def test_crafted_digests_are_refused_naming_the_digest_and_where(digest: str) -> None:
    with pytest.raises(ManifestError) as caught:
        validate_digest(digest, "registry.example/team/app:1: layer 3")
    message = caught.value.message
    assert message.startswith("registry.example/team/app:1: layer 3: invalid digest ")
    assert repr(digest) in message


@pytest.mark.parametrize("value", [None, 7, ["sha256:" + "0" * 64], {"digest": SHA256}])
def test_a_digest_that_is_not_a_string_is_refused(value: object) -> None:
    with pytest.raises(ManifestError, match="^here: digest is not a string"):
        validate_digest(value, "here")


def test_a_huge_digest_is_quoted_only_in_part() -> None:
    digest = "sha256:" + "/.." * 1_000_000
    with pytest.raises(ManifestError) as caught:
        validate_digest(digest, "here")
    assert len(caught.value.message) < 400


def _manifest(config_digest: str = SHA256, layer_digests: tuple[str, ...] = (SHA256,)) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": 2}
                   for d in layer_digests]}).encode()


def test_a_manifest_with_valid_digests_parses() -> None:
    parsed = parse_manifest(_manifest(SHA256, (SHA256, SHA512)), None, "ref")
    assert isinstance(parsed, Manifest)
    assert [d.digest for d in (parsed.config, *parsed.layers)] == [SHA256, SHA256, SHA512]


def test_a_crafted_config_digest_fails_the_manifest_naming_the_config() -> None:
    crafted = "sha256:/../../other/private/blobs/" + SHA256
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_manifest(config_digest=crafted), None, "registry.example/team/app:1")
    assert caught.value.message.startswith("registry.example/team/app:1: config: invalid digest ")
    assert repr(crafted) in caught.value.message


def test_a_crafted_layer_digest_fails_the_manifest_naming_the_layer() -> None:
    crafted = SHA256 + "/../x"
    with pytest.raises(ManifestError, match=r"^ref: layer 1: invalid digest "):
        parse_manifest(_manifest(layer_digests=(SHA256, crafted)), None, "ref")


def test_a_crafted_index_entry_fails_the_index_naming_the_entry() -> None:
    crafted = "sha256:../../../other/private/manifests/latest"
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [
                            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": SHA256,
                             "size": 2, "platform": {"os": "linux", "architecture": "arm64"}},
                            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": crafted,
                             "size": 2, "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    with pytest.raises(ManifestError, match=r"^ref: index entry 1: invalid digest "):
        parse_manifest(index, None, "ref")
    valid = index.replace(crafted.encode(), SHA512.encode())
    assert isinstance(parse_manifest(valid, None, "ref"), Index)


def test_a_descriptor_without_a_digest_says_so() -> None:
    doc = json.loads(_manifest())
    del doc["config"]["digest"]
    with pytest.raises(ManifestError, match="^ref: config: descriptor without a digest"):
        parse_manifest(json.dumps(doc).encode(), None, "ref")
