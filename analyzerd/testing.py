"""Test tools shipped with analyzerd: build layers and images in code, push them to a
real registry, write OCI layouts, and run a throwaway Distribution registry and PostgreSQL
cluster.

Used by the test suite and the benchmark harness; plain stdlib so it runs anywhere.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Blob",
    "LocalPostgres",
    "LocalRegistry",
    "Member",
    "analyze_layer",
    "build_image",
    "free_port",
    "make_layer",
    "push_image",
    "raw_header",
    "write_oci_layout",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


@dataclass
class Member:
    """One tar member to write. ``kind``: file dir symlink hardlink char block fifo."""

    name: str
    data: bytes = b""
    kind: str = "file"
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 1_700_000_000
    link: str = ""
    devmajor: int = 0
    devminor: int = 0
    uname: str = ""
    gname: str = ""


_TAR_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
              "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
              "fifo": tarfile.FIFOTYPE}
_FORMATS = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}


def make_layer(members: Iterable[Member], fmt: str = "pax") -> bytes:
    """An uncompressed layer tar written by Python's tarfile in the given format."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=_FORMATS[fmt]) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = _TAR_TYPES[m.kind]
            info.mode, info.uid, info.gid, info.mtime = m.mode, m.uid, m.gid, m.mtime
            info.linkname = m.link
            info.uname, info.gname = m.uname, m.gname
            info.devmajor, info.devminor = m.devmajor, m.devminor
            if m.kind == "file":
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def analyze_layer(members: Iterable[Member], **options: Any) -> Any:
    """An uncompressed layer of ``members`` through the layer analyzer in this process, whole;
    ``options``: LayerAnalyzer's (dispatch, secrets, limits, spool...). Its LayerResult."""
    from .analysis.layer import LayerAnalyzer  # not at import: analyzerd.testing serves tests of every part

    tar = make_layer(members)
    analyzer = LayerAnalyzer(digest="sha256:" + hashlib.sha256(tar).hexdigest(), size=len(tar),
                             media_type=LAYER_TYPES["none"], **options)
    analyzer.feed(tar)
    return analyzer.finish()


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def raw_header(name: bytes, *, size: int = 0, typeflag: bytes = b"0", mode: int = 0o644,
               uid: int | bytes = 0, gid: int = 0, mtime: int = 1_700_000_000, link: bytes = b"",
               magic: bytes = b"ustar\x0000", prefix: bytes = b"", checksum: int | None = None) -> bytes:
    """A tar header block built by hand, for what tarfile will not write: old-style
    headers without magic, base-256 numbers, bad checksums, prefix fields."""
    hdr = bytearray(512)
    hdr[0:len(name)] = name
    hdr[100:108] = _octal(mode, 8)
    hdr[108:116] = uid if isinstance(uid, bytes) else _octal(uid, 8)
    hdr[116:124] = _octal(gid, 8)
    hdr[124:136] = _octal(size, 12)
    hdr[136:148] = _octal(mtime, 12)
    hdr[156:157] = typeflag
    hdr[157:157 + len(link)] = link
    hdr[257:257 + len(magic)] = magic
    hdr[345:345 + len(prefix)] = prefix
    hdr[148:156] = b" " * 8
    value = sum(hdr) if checksum is None else checksum
    hdr[148:156] = b"%06o\0 " % value
    return bytes(hdr)


def raw_member(header: bytes, data: bytes = b"") -> bytes:
    return header + data + bytes(-len(data) % 512)


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if compression == "zstd":
        from backports import zstd
        return zstd.compress(data)
    return data


@dataclass
class Blob:
    data: bytes
    media_type: str
    algorithm: str = "sha256"  #: of the digest (OCI allows sha512 too)

    @property
    def digest(self) -> str:
        return f"{self.algorithm}:" + hashlib.new(self.algorithm, self.data).hexdigest()

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **extra}


@dataclass
class Image:
    manifest: Blob
    config: Blob
    layers: list[Blob]
    diff_ids: list[str] = field(default_factory=list)

    def blobs(self) -> list[Blob]:
        return [self.config, *self.layers]


def build_image(layer_tars: Sequence[bytes], *, compression: str | Sequence[str] = "gzip",
                os_name: str = "linux", architecture: str = "amd64", variant: str | None = None,
                docker: bool = False, config_extra: dict[str, Any] | None = None) -> Image:
    """An OCI (or Docker schema2) image from uncompressed layer tars."""
    kinds = [compression] * len(layer_tars) if isinstance(compression, str) else list(compression)
    layers = []
    for tar_bytes, kind in zip(layer_tars, kinds):
        media = LAYER_TYPES[kind]
        if docker:
            media = "application/vnd.docker.image.rootfs.diff.tar.gzip"
        layers.append(Blob(compress(tar_bytes, kind), media))
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in layer_tars]
    config_doc = {"architecture": architecture, "os": os_name, "created": "2024-01-01T00:00:00Z",
                  "config": {"Env": ["PATH=/usr/bin"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
                  **(config_extra or {})}
    if variant:
        config_doc["variant"] = variant
    config = Blob(json.dumps(config_doc).encode(), DOCKER_CONFIG if docker else OCI_CONFIG)
    manifest_doc = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
                    "config": config.descriptor(), "layers": [layer.descriptor() for layer in layers]}
    manifest = Blob(json.dumps(manifest_doc).encode(), manifest_doc["mediaType"])
    return Image(manifest, config, layers, diff_ids)


def build_index(images: Sequence[Image], platforms: Sequence[str]) -> Blob:
    entries = []
    for image, platform in zip(images, platforms):
        parts = platform.split("/")
        plat = {"os": parts[0], "architecture": parts[1]}
        if len(parts) > 2:
            plat["variant"] = parts[2]
        entries.append(image.manifest.descriptor(platform=plat))
    return Blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode(), OCI_INDEX)


# -- pushing over the distribution API ---------------------------------------------------

def _request(method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
             context: ssl.SSLContext | None = None, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def push_blob(base: str, repo: str, blob: Blob, *, chunk_size: int | None = None) -> None:
    """Monolithic upload (POST then PUT), or chunked (POST, PATCH..., PUT)."""
    status, headers, _ = _request("HEAD", f"{base}/v2/{repo}/blobs/{blob.digest}")
    if status == 200:
        return
    status, headers, body = _request("POST", f"{base}/v2/{repo}/blobs/uploads/")
    assert status == 202, (status, body)
    location = headers["Location"]
    if not location.startswith("http"):
        location = base + location
    if chunk_size:
        offset = 0
        while offset < len(blob.data):
            piece = blob.data[offset:offset + chunk_size]
            status, headers, body = _request("PATCH", location, piece, {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(piece) - 1}"})
            assert status == 202, (status, body)
            location = headers["Location"] if headers["Location"].startswith("http") else base + headers["Location"]
            offset += len(piece)
        data = b""
    else:
        data = blob.data
    sep = "&" if "?" in location else "?"
    status, _, body = _request("PUT", f"{location}{sep}digest={blob.digest}", data,
                               {"Content-Type": "application/octet-stream"})
    assert status == 201, (status, body)


def push_manifest(base: str, repo: str, reference: str, manifest: Blob) -> None:
    status, _, body = _request("PUT", f"{base}/v2/{repo}/manifests/{reference}", manifest.data,
                               {"Content-Type": manifest.media_type})
    assert status == 201, (status, body)


def push_image(base: str, repo: str, tag: str, image: Image, *, chunk_size: int | None = None) -> str:
    """Push blobs and manifest; returns the manifest digest."""
    for blob in image.blobs():
        push_blob(base, repo, blob, chunk_size=chunk_size)
    push_manifest(base, repo, tag, image.manifest)
    return image.manifest.digest


def write_oci_layout(directory: str, images: dict[str, Image]) -> None:
    """An OCI image layout with each image tagged (org.opencontainers.image.ref.name)."""
    blobs_dir = os.path.join(directory, "blobs", "sha256")
    os.makedirs(blobs_dir, exist_ok=True)
    manifests = []
    for tag, image in images.items():
        for blob in (image.manifest, *image.blobs()):
            with open(os.path.join(blobs_dir, blob.digest.split(":")[1]), "wb") as f:
                f.write(blob.data)
        manifests.append(image.manifest.descriptor(annotations={"org.opencontainers.image.ref.name": tag}))
    with open(os.path.join(directory, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(directory, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}, f, indent=1)


# -- a throwaway registry ----------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


REGISTRY_BINARIES = ("docker-registry", "registry")


class LocalRegistry:
    """The CNCF Distribution registry (Debian's ``docker-registry``) on 127.0.0.1, plain HTTP
    and anonymous. Subclasses (the tests' TLS and token-auth registries) add configuration
    through ``_http_config`` and ``_extra_config``; a context manager, started on entry."""

    def __init__(self, root: str | None = None) -> None:
        self.binary = next((shutil.which(b) for b in REGISTRY_BINARIES if shutil.which(b)), None)
        if self.binary is None:
            raise RuntimeError("no registry server: apt-get install docker-registry")
        self.root = os.path.abspath(root or tempfile.mkdtemp(prefix="analyzerd-registry-"))
        os.makedirs(self.root, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.log_path = os.path.join(self.root, "registry.log")
        self.config_path = os.path.join(self.root, "config.yml")
        self._proc: subprocess.Popen[bytes] | None = None

    def _http_config(self) -> str:
        """More keys under ``http:`` (indented two spaces)."""
        return ""

    def _extra_config(self) -> str:
        """More top-level keys. Here: foreign-layer URLs on loopback are allowed."""
        return """validation:
  manifests:
    urls:
      allow: ['^http://127\\.0\\.0\\.1']
"""

    def _probe_context(self) -> ssl.SSLContext | None:
        return None

    def start(self) -> LocalRegistry:
        self._launch()
        return self

    def _launch(self) -> None:
        with open(self.config_path, "w") as f:
            f.write(f"""version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {self.root}/storage
  delete:
    enabled: true
http:
  addr: {self.host}
{self._http_config()}{self._extra_config()}""")
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen([self.binary, "serve", self.config_path], stdout=log, stderr=log,
                                          stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"registry exited: {self.read_log()[-3000:]}")
            try:
                status, _, _ = _request("GET", f"{self.url}/v2/", context=self._probe_context(), timeout=5)
                if status in (200, 401):  # up; 401: up, and asking for credentials
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"registry did not start within 30 s: {self.read_log()[-3000:]}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._proc = None

    def read_log(self) -> str:
        return _read_text(self.log_path)

    def blob_gets(self) -> int:
        """GET requests for blobs served so far, from the access log."""
        return sum(1 for line in self.read_log().splitlines() if '"GET /v2/' in line and "/blobs/sha256:" in line)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_docker_archive(path: str, image: Image, layer_tars: Sequence[bytes], repo_tag: str,
                         *, oci: bool = False) -> None:
    """A ``docker save`` tarball: the legacy layout (``<id>/layer.tar`` + manifest.json),
    or Docker 25's (an OCI layout plus manifest.json)."""

    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        if oci:
            # Docker 25 stores uncompressed layers as blobs; rebuild the image that way.
            plain = build_image(layer_tars, compression="none")
            blobs = [plain.manifest, plain.config, *plain.layers]
            for blob in blobs:
                add(tar, f"blobs/sha256/{blob.digest.split(':')[1]}", blob.data)
            add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [plain.manifest.descriptor(
                annotations={"io.containerd.image.name": f"docker.io/library/{repo_tag}",
                             "org.opencontainers.image.ref.name": repo_tag.rsplit(":", 1)[1]})]}
            add(tar, "index.json", json.dumps(index).encode())
            manifest = [{"Config": f"blobs/sha256/{plain.config.digest.split(':')[1]}", "RepoTags": [repo_tag],
                         "Layers": [f"blobs/sha256/{b.digest.split(':')[1]}" for b in plain.layers]}]
        else:
            layer_names = []
            for i, layer in enumerate(layer_tars):
                name = f"{hashlib.sha256(layer + bytes([i])).hexdigest()}/layer.tar"
                add(tar, name, layer)
                layer_names.append(name)
            config_name = image.config.digest.split(":")[1] + ".json"
            add(tar, config_name, image.config.data)
            manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names}]
        add(tar, "manifest.json", json.dumps(manifest).encode())


class LocalPostgres:
    """A throwaway PostgreSQL cluster (Debian's ``postgresql``): ``initdb`` in a temporary
    directory and ``pg_ctl start`` on a free loopback port, with password authentication
    over TCP as a real server has. Run as the ``postgres`` user when started by root
    (initdb refuses root). A context manager, started on entry."""

    USER = "postgres"
    PASSWORD = "analyzerd-test-password"

    def __init__(self, root: str | None = None) -> None:
        self.bindir = _postgres_bindir()
        self.root = os.path.abspath(root or tempfile.mkdtemp(prefix="analyzerd-postgres-"))
        os.makedirs(self.root, exist_ok=True)
        self.data = os.path.join(self.root, "data")
        self.log_path = os.path.join(self.root, "postgres.log")
        self.port = free_port()
        self._databases = 0

    def _run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root,
                              env=dict(os.environ, **(env or {})))
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return proc

    def start(self) -> LocalPostgres:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        password_file = os.path.join(self.root, "pwfile")
        with open(password_file, "w") as f:
            f.write(self.PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(password_file, "postgres", "postgres")
        self._run(os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", self.USER, "--pwfile", password_file,
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log_path, "-w", "-t", "60",
                  "-o", options, "start")
        return self

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        secret = f":{self.PASSWORD}" if password else ""
        return f"postgresql://{self.USER}{secret}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run a statement with psql over TCP; what it printed (unaligned, tuples only)."""
        proc = subprocess.run([os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                               "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER, "-d", database,
                               "-c", statement], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PGPASSWORD=self.PASSWORD))
        if proc.returncode != 0:
            raise RuntimeError(f"psql: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def new_database(self) -> str:
        """A new empty database; its URL. Its collation is ICU's en-US, as a server's usually
        is something other than byte order ('/usr/B' after '/usr/b'): a query whose order
        depends on it shows."""
        self._databases += 1
        name = f"analyzerd_{os.getpid()}_{self._databases}"
        self.sql(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                 "LOCALE 'C.UTF-8'")
        return self.url(name)

    def read_log(self) -> str:
        return _read_text(self.log_path)

    def stop(self) -> None:
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_text(path: str) -> str:
    """A server's log so far ("" before it has one)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _postgres_bindir() -> str:
    """Debian keeps the server programs in /usr/lib/postgresql/VERSION/bin, off PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if candidates:
        return os.path.dirname(candidates[-1])
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("no PostgreSQL server: apt-get install postgresql")
    return os.path.dirname(os.path.realpath(initdb))
