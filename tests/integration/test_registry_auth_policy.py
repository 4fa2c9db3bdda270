"""Where registry credentials may go, checked against real servers on loopback.

The registry is Distribution (``docker-registry``) with token auth; with its ``redirect``
storage middleware it sends blob downloads to another host, as registries send them to
object storage. That host, and the token realms the tests name, are aiohttp servers that
record every request they receive, so each test can assert what each host was sent."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from analyzerd.errors import AuthError, ManifestError, RegistryError
from analyzerd.model import Descriptor
from analyzerd.oci import Manifest, parse_manifest
from analyzerd.reference import ImageRef
from analyzerd.registry.auth import Credentials, RegistrySettings
from analyzerd.registry.client import RegistryClient, RetryPolicy
from analyzerd.testing import Member, build_image, make_layer

from ..registry_modes import TokenAuthRegistry, basic_auth, http_request, parse_challenge

pytest.importorskip("jwt")

Respond = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: the `cli` fixture: runs `analyzerd ARGS...` in a subprocess
Cli = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str  #: with the query string, as sent
    headers: dict[str, str]
    body: bytes


class RecordingServer:
    """An aiohttp server in a thread of its own that records every request it receives and
    answers with ``respond``. It listens on 127.0.0.1; ``name`` is the host name its URL
    gives (``localhost`` reaches it too)."""

    def __init__(self, respond: Respond, *, name: str = "127.0.0.1",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.respond = respond
        self.requests: list[Received] = []
        self._name = name
        self._ssl = ssl_context
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="recording-server", daemon=True)
        self.port = 0

    @property
    def host(self) -> str:
        return f"{self._name}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://{self.host}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Received(request.method, request.path_qs, dict(request.headers),
                                      await request.read()))
        return await self.respond(request)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def everything_received(self) -> bytes:
        """Every byte of every request line, header and body, for leak checks."""
        parts = []
        for r in self.requests:
            parts.append(f"{r.method} {r.path}\n".encode())
            parts += [f"{k}: {v}\n".encode() for k, v in r.headers.items()]
            parts.append(r.body)
        return b"".join(parts)


class PolicyRegistry(TokenAuthRegistry):
    """The tests' token-auth registry, plus: the tokens it issued (to look for them elsewhere),
    a realm other than its token server's (``realm``), and blob downloads redirected to
    another host by Distribution's own ``redirect`` storage middleware (``redirect_to``)."""

    def __init__(self, root: str, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.tokens: list[str] = []
        self.realm: str | None = None
        self.redirect_to: str | None = None

    def issue_token(self, *args: Any, **kwargs: Any) -> str:
        token: str = super().issue_token(*args, **kwargs)
        self.tokens.append(token)
        return token

    def _extra_config(self) -> str:
        text: str = super()._extra_config()
        if self.realm is not None:
            text = text.replace(f"realm: {self.token_url}\n", f"realm: {self.realm}\n")
        if self.redirect_to is not None:
            text += f"""middleware:
  storage:
    - name: redirect
      options:
        baseurl: {self.redirect_to}
"""
        return text

    def relaunch(self) -> None:
        """Start the registry process again (same port, storage and token server) with the
        current ``realm`` and ``redirect_to``."""
        super(TokenAuthRegistry, self).stop()  # the registry process only; the token server stays
        self._launch()

    def blob_file(self, storage_path: str) -> str:
        """Where the redirect middleware's storage path is on disk."""
        return os.path.join(self.root, "storage", storage_path.lstrip("/"))

    def secrets(self) -> list[bytes]:
        """What no other host may see: the password, its Basic form, every token issued."""
        basic = base64.b64encode(f"{self.username}:{self.password}".encode())
        return [self.password.encode(), basic, *(t.encode() for t in self.tokens)]


IMAGE = build_image([make_layer([Member("etc/os-release", b"ID=policy\n")]),
                     make_layer([Member("opt/data.bin", os.urandom(300_000))])], compression=["gzip", "none"])


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[PolicyRegistry]:
    registry = PolicyRegistry(str(tmp_path / "registry"), anonymous_pull=False)
    registry.start()
    try:
        registry.push("team/app", "1", IMAGE)
        yield registry
    finally:
        registry.stop()


def config_for(tmp_path: Path, registry: PolicyRegistry, extra: str = "") -> str:
    path = tmp_path / "config.yaml"
    path.write_text(f"""
registry_retries: 1
registries:
  - host: {registry.host}
    username: {registry.username}
    password: '{registry.password}'
{extra}""")
    return str(path)


def pull_token_requests(registry: PolicyRegistry) -> list[dict[str, Any]]:
    """The token requests analyzerd made (the others are the tests' pushes)."""
    return [r for r in registry.token_requests if r["scope"] == "repository:team/app:pull"]


def assert_nothing_secret(server: RecordingServer, registry: PolicyRegistry) -> None:
    received = server.everything_received()
    assert registry.tokens, "the registry issued no token: the test did not run its course"
    for secret in registry.secrets():
        assert secret not in received
    assert all("authorization" not in {k.lower() for k in r.headers} for r in server.requests)


# -- redirect targets ----------------------------------------------------------------------

def test_a_storage_hosts_challenge_is_an_error_and_gets_no_credentials(registry: PolicyRegistry, cli: Cli, tmp_path: Path) -> None:
    """The confirmed attack: the storage host answers the redirected blob GET with a Bearer
    challenge whose realm is its own. Before, analyzerd merged it into the registry's
    challenge, sent the registry's username and password to that realm, and sent the
    "token" it got back to the registry."""
    stolen_token = "storage-host-token-0123456789"

    async def storage(request: web.Request) -> web.StreamResponse:
        if request.path == "/steal":
            return web.json_response({"token": stolen_token, "expires_in": 300})
        realm = f"http://{request.host}/steal"
        return web.Response(status=401, headers={
            "WWW-Authenticate": f'Bearer realm="{realm}",service="storage",scope="repository:team/app:pull"'})

    with RecordingServer(storage) as storage_host:
        registry.redirect_to = storage_host.url
        registry.relaunch()
        proc = cli("--config", config_for(tmp_path, registry), "analyze", f"{registry.host}/team/app:1",
                   check=False)
    assert proc.returncode == 1
    assert "unauthorized" in proc.stderr and storage_host.host in proc.stderr and "redirected" in proc.stderr
    assert storage_host.requests, "the blob was not redirected to the storage host"
    assert not [r for r in storage_host.requests if r.path.startswith("/steal")]
    assert_nothing_secret(storage_host, registry)
    # the registry's token server was asked only as the registry's challenge says
    assert {r["service"] for r in registry.token_requests} == {registry.service}
    assert stolen_token not in registry.read_log()


def test_a_storage_hosts_challenge_changes_nothing_that_lasts(registry: PolicyRegistry, tmp_path: Path) -> None:
    """In one process: after the refused blob, the registry's own challenge still holds (the
    realm and token the manifest was fetched with are used again, the storage host's never)."""

    async def storage(request: web.Request) -> web.StreamResponse:
        return web.Response(status=401, headers={
            "WWW-Authenticate": f'Bearer realm="http://{request.host}/steal",service="storage"'})

    async def pull(client: RegistryClient, ref: ImageRef) -> None:
        body, media_type, _ = await client.get_manifest(ref, "1")
        manifest = parse_manifest(body, media_type, str(ref))
        assert isinstance(manifest, Manifest)
        with pytest.raises(AuthError, match="redirected"):
            await client.get_blob(ref, manifest.config, 1 << 20)
        await client.get_manifest(ref, "1")  # the registry again, after the refusal

    settings = RegistrySettings(host=registry.host, credentials=Credentials(registry.username, registry.password))
    with RecordingServer(storage) as storage_host:
        registry.redirect_to = storage_host.url
        registry.relaunch()
        asyncio.run(_with_client(lambda client: pull(client, ImageRef(registry.host, "team/app", "1")),
                                 settings))
    assert len(storage_host.requests) == 1 and storage_host.requests[0].path.endswith("/data")
    assert_nothing_secret(storage_host, registry)
    assert len(pull_token_requests(registry)) == 1  # one token, from the registry's realm, used for all


def test_redirected_blobs_are_fetched_without_credentials(registry: PolicyRegistry, cli: Cli, tmp_path: Path) -> None:
    """The ordinary case: the storage host serves the blobs; it is sent no credential, and the
    image is analyzed."""

    async def storage(request: web.Request) -> web.StreamResponse:
        path = registry.blob_file(request.path)
        if not os.path.isfile(path):
            return web.Response(status=404)
        with open(path, "rb") as f:
            return web.Response(body=f.read(), content_type="application/octet-stream")

    with RecordingServer(storage) as storage_host:
        registry.redirect_to = storage_host.url
        registry.relaunch()
        proc = cli("--config", config_for(tmp_path, registry), "analyze", f"{registry.host}/team/app:1", "--json")
    assert '"/opt/data.bin"' in proc.stdout
    assert len(storage_host.requests) == 3  # the config and two layers
    assert_nothing_secret(storage_host, registry)


def test_a_storage_host_that_redirects_back_to_the_registry_gets_no_credentials_sent_there(registry: PolicyRegistry, tmp_path: Path) -> None:
    """A redirect chain that leaves the registry and comes back to it at a path the storage
    host chose (another repository's blob) carries no Authorization: the registry refuses it,
    and that refusal is an error, not a challenge to answer."""
    other = build_image([make_layer([Member("secret", b"other team's file\n")])])
    registry.push("other/private", "1", other)
    other_config = other.config.digest

    async def storage(request: web.Request) -> web.StreamResponse:
        target = f"{registry.url}/v2/other/private/blobs/{other_config}"
        return web.Response(status=307, headers={"Location": target})

    async def pull(client: RegistryClient, ref: ImageRef) -> None:
        desc = Descriptor(media_type="application/octet-stream", digest=IMAGE.config.digest,
                          size=len(IMAGE.config.data))
        with pytest.raises(AuthError, match="redirected"):
            await client.get_blob(ref, desc, 1 << 20)

    settings = RegistrySettings(host=registry.host, credentials=Credentials(registry.username, registry.password))
    with RecordingServer(storage) as storage_host:
        registry.redirect_to = storage_host.url
        registry.relaunch()
        before = len(registry.read_log())
        asyncio.run(_with_client(lambda client: pull(client, ImageRef(registry.host, "team/app", "1")), settings))
    assert_nothing_secret(storage_host, registry)
    # the registry was asked for the other repository's blob with no token at all (it says
    # so), and no fresh token was asked for to answer its refusal
    log = registry.read_log()[before:]
    assert '"GET /v2/other/private/blobs/' in log and "authorization token required" in log
    assert "insufficient" not in log and "invalid token" not in log
    assert len(pull_token_requests(registry)) == 1


# -- token realms --------------------------------------------------------------------------

class _Resolve(AbstractResolver):
    """Resolves every name to 127.0.0.1: lets a real server on loopback be reached under a
    name that is not loopback, as a registry elsewhere would be."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        pass


async def _with_client(body: Callable[[RegistryClient], Awaitable[None]], settings: RegistrySettings, *,
                       resolver: AbstractResolver | None = None) -> None:
    connector = aiohttp.TCPConnector(resolver=resolver) if resolver else aiohttp.TCPConnector()
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        client = RegistryClient(session, settings=lambda host: settings, retry=RetryPolicy(attempts=1))
        await body(client)


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[tuple[PolicyRegistry, str]]:
    """A token-auth registry over TLS whose certificate names ``registry.test`` (reached at
    127.0.0.1 through ``_Resolve``); its token realm stays plain http on 127.0.0.1."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    root = tmp_path / "tls-registry"
    root.mkdir()
    ca_path, cert_path, key_path = root / "ca.pem", root / "server.pem", root / "server-key.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    leaf = ca.issue_cert("registry.test", "127.0.0.1")
    cert_path.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key_path))

    class TlsPolicyRegistry(PolicyRegistry):
        def _http_config(self) -> str:
            return f"  tls:\n    certificate: {cert_path}\n    key: {key_path}\n"

        def _probe_context(self) -> ssl.SSLContext:
            return ssl.create_default_context(cafile=str(ca_path))

    registry = TlsPolicyRegistry(str(root))
    registry.url = f"https://{registry.host}"
    with registry:
        yield registry, str(ca_path)


@pytest.mark.parametrize("insecure", [False, True], ids=["verified", "insecure"])
def test_an_http_realm_of_a_registry_elsewhere_gets_no_credentials(tls_registry: tuple[PolicyRegistry, str], insecure: bool) -> None:
    """registry.test is not loopback; its challenge names a token realm over plain http on
    another host. The password would cross the network in cleartext: refused, naming the
    registry and the realm, and the realm is never asked. ``insecure`` does not change that:
    it covers the registry's own host, and the realm is elsewhere."""
    registry, ca_path = tls_registry
    name = f"registry.test:{registry.port}"
    settings = RegistrySettings(host=name, credentials=Credentials(registry.username, registry.password),
                                ca_cert=ca_path, insecure=insecure)

    async def pull(client: RegistryClient) -> None:
        with pytest.raises(AuthError) as caught:
            await client.get_manifest(ImageRef(name, "team/app", "1"), "1")
        message = caught.value.message
        assert name in message and registry.token_url in message and "plain http" in message

    asyncio.run(_with_client(pull, settings, resolver=_Resolve()))
    assert registry.token_requests == []


def test_insecure_does_not_switch_off_tls_checks_for_a_realm_elsewhere(registry: PolicyRegistry, tmp_path: Path) -> None:
    """An ``insecure`` registry whose realm is https on another host, with a certificate no
    one trusts: the token request fails the TLS check, so the realm never sees a request
    (before, ``insecure`` switched verification off for the realm too)."""
    trustme = pytest.importorskip("trustme")
    leaf = trustme.CA().issue_cert("localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)

    async def realm(request: web.Request) -> web.StreamResponse:
        return web.json_response({"token": "from-the-untrusted-realm"})

    settings = RegistrySettings(host=registry.host, credentials=Credentials(registry.username, registry.password),
                                insecure=True)

    async def pull(client: RegistryClient) -> None:
        with pytest.raises(RegistryError, match="token service https://localhost"):
            await client.get_manifest(ImageRef(registry.host, "team/app", "1"), "1")

    with RecordingServer(realm, name="localhost", ssl_context=context) as realm_host:
        registry.realm = f"https://localhost:{realm_host.port}/token"
        registry.relaunch()
        asyncio.run(_with_client(pull, settings))
    assert realm_host.requests == []


# -- digests -------------------------------------------------------------------------------

def test_a_crafted_digest_never_becomes_a_url(registry: PolicyRegistry, tmp_path: Path) -> None:
    """A descriptor digest that a URL library would normalize into another repository's
    path (``sha256:/../../other/private/...``) is refused before any request is made."""
    other = build_image([make_layer([Member("secret", b"other team's file\n")])])
    registry.push("other/private", "1", other)
    crafted = f"sha256:/../../other/private/blobs/{other.config.digest}"
    desc = Descriptor(media_type="application/octet-stream", digest=crafted, size=len(other.config.data))
    settings = RegistrySettings(host=registry.host, credentials=Credentials(registry.username, registry.password))

    async def pull(client: RegistryClient) -> None:
        ref = ImageRef(registry.host, "team/app", "1")
        with pytest.raises(ManifestError, match="invalid digest") as caught:
            await client.get_blob(ref, desc, 1 << 20)
        assert "other/private" in caught.value.message and str(ref) in caught.value.message
        with pytest.raises(ManifestError, match="invalid digest"):
            await client.get_manifest(ref, crafted)

    before = registry.read_log().count("/v2/other/private/")
    asyncio.run(_with_client(pull, settings))
    assert registry.read_log().count("/v2/other/private/") == before
    assert pull_token_requests(registry) == []  # not even the registry was asked


def test_the_test_registry_answers_as_assumed(registry: PolicyRegistry) -> None:
    """The policy tests rest on these: the registry's challenge names its http realm on
    loopback, and a request without credentials is refused."""
    status, headers, _ = http_request("GET", f"{registry.url}/v2/")
    scheme, params = parse_challenge(headers["WWW-Authenticate"])
    assert (status, scheme, params["realm"]) == (401, "bearer", registry.token_url)
    status, _, _ = http_request("GET", f"{registry.url}/v2/team/app/manifests/1",
                                headers={"Authorization": basic_auth(registry.username, registry.password)})
    assert status == 401
