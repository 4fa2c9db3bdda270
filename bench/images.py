"""Getting the images a benchmark runs on: layer blobs on local disk, once, for every
contestant; a registry image, an OCI layout, or a generated synthetic image."""

from __future__ import annotations

import hashlib
import json
import os
import random
import urllib.request
from dataclasses import dataclass

from analyzerd.reference import ImageRef, LocalRef, parse_reference

from .kernel import kernel_limit

ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


@dataclass
class BenchImage:
    name: str
    reference: str  #: what analyzerd analyzes
    syft_source: str  #: what Syft scans
    layer_paths: list[str]
    compressed_bytes: int
    uncompressed_bytes: int


def _get(url: str, accept: str | None = None) -> bytes:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return resp.read()


def _fetch_registry(ref: ImageRef, blobs: str) -> list[str]:
    base = f"http://{ref.registry}/v2/{ref.repository}"
    manifest = json.loads(_get(f"{base}/manifests/{ref.manifest_reference}", ACCEPT))
    if "manifests" in manifest:
        entry = next(m for m in manifest["manifests"]
                     if m.get("platform", {}).get("architecture") == "amd64")
        manifest = json.loads(_get(f"{base}/manifests/{entry['digest']}", ACCEPT))
    paths = []
    for layer in manifest["layers"]:
        path = os.path.join(blobs, layer["digest"].split(":")[1])
        if not os.path.exists(path):
            digest = hashlib.sha256()
            with urllib.request.urlopen(f"{base}/blobs/{layer['digest']}", timeout=120) as resp, \
                    open(path + ".tmp", "wb") as f:
                while chunk := resp.read(1 << 20):
                    digest.update(chunk)
                    f.write(chunk)
            assert "sha256:" + digest.hexdigest() == layer["digest"], f"{layer['digest']} corrupt"
            os.rename(path + ".tmp", path)
        paths.append(path)
    return paths


def _layout_layers(directory: str, tag: str | None) -> list[str]:
    with open(os.path.join(directory, "index.json")) as f:
        entries = json.load(f)["manifests"]
    entry = next(m for m in entries if tag is None or
                 (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag)
    with open(os.path.join(directory, "blobs", "sha256", entry["digest"].split(":")[1])) as f:
        manifest = json.load(f)
    return [os.path.join(directory, "blobs", "sha256", layer["digest"].split(":")[1]) for layer in manifest["layers"]]


def _synthetic(work: str, scale: float) -> str:
    """Two layers: 100k small files (tar-header bound), and a few large files (byte bound)."""
    from analyzerd.testing import Member, build_image, make_layer, write_oci_layout

    directory = os.path.join(work, f"synthetic-{scale:g}")
    if os.path.exists(os.path.join(directory, "index.json")):
        return directory
    rng = random.Random(1)
    words = [rng.randbytes(8).hex().encode() for _ in range(4096)]

    def text(size: int) -> bytes:  # compressible like real files, not like random bytes
        out = bytearray()
        while len(out) < size:
            out += b" ".join(rng.choices(words, k=64)) + b"\n"
        return bytes(out[:size])

    count = int(100_000 * scale)
    small = [Member(f"usr/share/small/d{i // 1000}/f{i}.txt", text(rng.randint(0, 2000))) for i in range(count)]
    large = [Member(f"opt/large/blob{i}.bin", text(int(64_000_000 * scale))) for i in range(8)]
    image = build_image([make_layer(small, "gnu"), make_layer(large, "gnu")], compression="gzip")
    write_oci_layout(directory, {"1": image})
    return directory


def prepare_image(spec: str, work: str, scale: float = 1.0) -> BenchImage:
    blobs = os.path.join(work, "blobs")
    os.makedirs(blobs, exist_ok=True)
    if spec == "synthetic":
        directory = _synthetic(work, scale)
        paths = _layout_layers(directory, "1")
        name, reference, syft_source = "synthetic", f"oci:{directory}:1", f"oci-dir:{directory}"
    else:
        ref = parse_reference(spec)
        if isinstance(ref, LocalRef):
            paths = _layout_layers(ref.path, ref.tag)
            name, reference, syft_source = os.path.basename(ref.path.rstrip("/")), spec, f"oci-dir:{ref.path}"
        else:
            paths = _fetch_registry(ref, blobs)
            name, reference, syft_source = ref.repository.split("/")[-1] + ":" + (ref.tag or "?"), spec, f"registry:{spec}"
    sizes_file = os.path.join(work, "uncompressed-sizes.json")
    sizes = json.load(open(sizes_file)) if os.path.exists(sizes_file) else {}
    key = "|".join(paths)
    if key not in sizes:
        sizes[key] = kernel_limit(paths)[2]
        with open(sizes_file, "w") as f:
            json.dump(sizes, f)
    return BenchImage(name, reference, syft_source, paths, sum(os.path.getsize(p) for p in paths), sizes[key])
