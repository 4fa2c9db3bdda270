"""The registry client in this process (not through the CLI), against the real Distribution
registry, its token service and the fault proxy: token fetch and reuse, refusals, retries
with Retry-After, the retry budget, unknown manifests, resumed and corrupt downloads; and
against registries, token realms and storage hosts scripted in the test's event loop for the
answers a real registry gives only when something is wrong: odd statuses and error bodies,
refused tokens, redirects and the challenges of the hosts they lead to, dropped connections,
timeouts, TLS that must or must not be verified. In process, so the mutation run maps these
tests to the client's code (a subprocess's calls are invisible to it)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
import trustme
from multidict import CIMultiDict

from analyzerd.errors import AuthError, IntegrityError, ManifestError, NotFoundError, RegistryError
from analyzerd.oci import Descriptor
from analyzerd.reference import ImageRef, parse_reference
from analyzerd.registry import client as client_module
from analyzerd.registry.auth import Credentials, RegistrySettings
from analyzerd.registry.client import RegistryClient, RetryPolicy
from analyzerd.testing import Blob, Image, Member, build_image, make_layer, push_blob, push_image, push_manifest

from ..registry_modes import FaultProxy, TokenAuthRegistry

LAYER = make_layer([Member("etc/os-release", b"ID=test\n"), Member("opt/data.bin", bytes(range(256)) * 64)])


def run(client_work: Callable[[RegistryClient], Awaitable[Any]], *, credentials: Credentials | None = None,
        retry: RetryPolicy = RetryPolicy(attempts=3, backoff_seconds=0.01, max_backoff_seconds=0.5)) -> Any:
    async def scenario() -> Any:
        async with aiohttp.ClientSession() as session:
            client = RegistryClient(session, retry=retry,
                                    settings=lambda host: RegistrySettings(host=host, credentials=credentials))
            return await client_work(client)
    return asyncio.run(scenario())


async def manifest_and_layer(client: RegistryClient, reference: str) -> tuple[dict[str, Any], bytes]:
    ref = parse_reference(reference)
    body, _, _ = await client.get_manifest(ref, ref.tag or "latest")
    manifest = json.loads(body)
    layer = manifest["layers"][0]
    desc = Descriptor(media_type=layer["mediaType"], digest=layer["digest"], size=layer["size"])
    return manifest, await client.get_blob(ref, desc, limit=10 * 1024 * 1024)


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    pytest.importorskip("jwt")
    with TokenAuthRegistry(str(tmp_path_factory.mktemp("token")), token_ttl=300) as registry:
        registry.push("team/app", "1", build_image([LAYER], compression="none"))
        yield registry


def test_one_token_serves_the_manifest_and_blobs_of_a_repository(token_registry):
    token_registry.token_requests.clear()
    manifest, blob = run(lambda client: manifest_and_layer(client, f"{token_registry.host}/team/app:1"))
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == manifest["layers"][0]["digest"]
    pulls = [r for r in token_registry.token_requests if r["scope"] == "repository:team/app:pull"]
    assert len(pulls) == 1 and pulls[0]["user"] is None


def test_credentials_go_to_the_token_service_and_a_refusal_names_the_user_once(token_registry):
    good = Credentials(token_registry.username, token_registry.password)
    token_registry.token_requests.clear()
    run(lambda client: manifest_and_layer(client, f"{token_registry.host}/team/app:1"), credentials=good)
    assert [r["user"] for r in token_registry.token_requests] == [token_registry.username]
    token_registry.token_requests.clear()
    with pytest.raises(AuthError) as caught:
        run(lambda client: manifest_and_layer(client, f"{token_registry.host}/team/app:1"),
            credentials=Credentials(token_registry.username, "wrong-password"))
    assert caught.value.message == (f"unauthorized: {token_registry.host}/team/app:1: the token service refused "
                                    f"access for user {token_registry.username!r}")
    assert len(token_registry.token_requests) == 1  # refused once, not retried


def test_an_unknown_manifest_is_not_found_at_once(token_registry):
    token_registry.token_requests.clear()
    with pytest.raises(NotFoundError) as caught:
        run(lambda client: manifest_and_layer(client, f"{token_registry.host}/team/app:nope"))
    assert caught.value.message == f"manifest unknown: {token_registry.host}/team/app:nope"
    assert len(token_registry.token_requests) == 1  # a 404 is not a reason for a fresh token


@pytest.fixture
def proxied(registry):
    push_image(registry.url, "inproc/app", "1", build_image([LAYER], compression="gzip"))
    with FaultProxy(registry.url) as proxy:
        yield proxy


@pytest.mark.parametrize("bare", [False, True], ids=["registry-body", "bare"])
@pytest.mark.parametrize("where", ["/manifests/", "/blobs/"])
def test_429_with_retry_after_is_waited_for_then_retried(proxied, where, bare):
    """With the registry's TOOMANYREQUESTS body, or bare as a CDN or load balancer answers."""
    proxied.status_burst(429, times=1, retry_after=1, path_contains=where, bare=bare)
    manifest, blob = run(lambda client: manifest_and_layer(client, f"{proxied.host}/inproc/app:1"))
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == manifest["layers"][0]["digest"]
    tries = [r for r in proxied.requests if where in r.path and r.method == "GET"]
    # the server's Retry-After (1 s), not the policy's own backoff (0.01 s), spaced the tries
    assert len(tries) >= 2 and tries[1].received_at - tries[0].received_at >= 0.9


def test_503s_beyond_the_retry_budget_fail_saying_how_many_attempts(proxied):
    proxied.status_burst(503, times=50, path_contains="/manifests/")
    with pytest.raises(RegistryError) as caught:
        run(lambda client: manifest_and_layer(client, f"{proxied.host}/inproc/app:1"))
    assert caught.value.temporary and "after 3 attempts" in caught.value.message
    assert len([r for r in proxied.requests if "/manifests/" in r.path]) == 3


def test_the_backoff_doubles_up_to_its_cap_with_jitter_and_retry_after_is_bounded():
    policy = RetryPolicy(attempts=6, backoff_seconds=0.5, max_backoff_seconds=8.0)
    for attempt, base in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0)):
        delays = [policy.delay(attempt) for _ in range(200)]
        # jitter over the whole range from half the base to the base
        assert base / 2 <= min(delays) < base * 0.6 and base * 0.9 < max(delays) <= base
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.delay(1, retry_after=-2.0) == 0.0
    assert policy.delay(1, retry_after=3600.0) == 32.0  # never more than 4 times the longest backoff


# -- the token service's answers, from a real HTTP server in this process ----------------------

async def fetch_token_from(answer: Callable[[Any], Awaitable[Any]], *,
                           credentials: Credentials | None = None) -> tuple[tuple[str, float | None], list[Any]]:
    """What the client makes of the token service's answer; and the requests that service got."""
    from aiohttp import web

    from analyzerd.registry.auth import Challenge, TokenRealm
    from analyzerd.registry.client import _Host

    seen: list[Any] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        return await answer(request)

    app = web.Application()
    app.router.add_get("/token", handler)

    async def elsewhere(request: web.Request) -> web.StreamResponse:
        return web.json_response({"token": "from-a-redirect"})

    app.router.add_get("/elsewhere", elsewhere)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            settings = RegistrySettings(host="127.0.0.1:1", credentials=credentials)
            client = RegistryClient(session, settings=lambda host: settings)
            ref = parse_reference("127.0.0.1:1/team/app:1")
            host = _Host("http://127.0.0.1:1", False, Challenge("bearer", {}))
            realm = TokenRealm(url=f"http://127.0.0.1:{port}/token", on_registry_host=True)
            got = await client._fetch_token(ref, host, realm, "registry.example", "repository:team/app:pull", settings)
            return got, seen
    finally:
        await runner.cleanup()


def test_the_token_service_is_asked_for_the_scope_and_service_with_the_credentials():
    from aiohttp import web

    async def answer(request: Any) -> Any:
        return web.json_response({"token": "t-1", "access_token": "other", "expires_in": 120})
    (token, expires_in), seen = asyncio.run(fetch_token_from(answer, credentials=Credentials("me", "pw")))
    assert (token, expires_in) == ("t-1", 120.0)
    assert dict(seen[0].query) == {"scope": "repository:team/app:pull", "service": "registry.example"}
    assert seen[0].headers["Authorization"] == Credentials("me", "pw").basic()
    (token, expires_in), seen = asyncio.run(fetch_token_from(answer))
    assert "Authorization" not in seen[0].headers  # anonymous: no header at all


@pytest.mark.parametrize("body, expected", [
    ({"access_token": "oauth-style", "expires_in": 30}, ("oauth-style", 30.0)),  # OAuth2's field
    ({"token": "t", "expires_in": "300"}, ("t", None)),  # not a number: the default lifetime applies
    ({"token": "t"}, ("t", None)),
])
def test_token_answers_in_either_form(body, expected):
    from aiohttp import web

    async def answer(request: Any) -> Any:
        return web.json_response(body)
    got, _ = asyncio.run(fetch_token_from(answer))
    assert got == expected


@pytest.mark.parametrize("status, body, error, message, temporary", [
    (401, b"{}", AuthError, "the token service refused access (anonymous)", False),
    (403, b"{}", AuthError, "the token service refused access (anonymous)", False),
    (503, b"{}", RegistryError, "token service answered HTTP 503", True),
    (404, b"{}", RegistryError, "token service answered HTTP 404", False),
    (200, b"not json", AuthError, "the token service returned no token", False),
    (200, b'["a list"]', AuthError, "the token service returned no token", False),
    (200, b'{"token": ""}', AuthError, "the token service returned no token", False),
    (200, b'{"token": 12345}', AuthError, "the token service returned no token", False),
    (302, b"", RegistryError, "token service answered HTTP 302", False),  # never followed
])
def test_token_refusals_and_failures_say_what_the_service_did(status, body, error, message, temporary):
    from aiohttp import web

    async def answer(request: Any) -> Any:
        headers = {"Location": "/elsewhere"} if status == 302 else {}
        return web.Response(status=status, body=body, headers=headers, content_type="application/json")
    with pytest.raises(error) as caught:
        asyncio.run(fetch_token_from(answer))
    assert message in caught.value.message and "127.0.0.1:1/team/app" in caught.value.message
    assert getattr(caught.value, "temporary", False) is temporary
    if status != 200:
        assert caught.value.status == status


# -- registries scripted in this process -------------------------------------------------------
#
# For the answers a real registry gives only when something is wrong (an odd status, an error
# body, a dropped connection, a refused token, a redirect to a storage host), an aiohttp server in
# the test's own event loop answers as scripted and records every request it receives. It serves
# a real image (built with analyzerd.testing) so that what the client returns can be checked.

IMAGE = build_image([LAYER], compression="none")
#: Three read sizes of a blob, so a download arrives in many chunks and can break in the middle.
BIG = random.Random(19).randbytes(3 * 1024 * 1024)
BIG_BLOB = Blob(BIG, "application/octet-stream")
BIG_DESC = Descriptor(media_type=BIG_BLOB.media_type, digest=BIG_BLOB.digest, size=len(BIG))
UNAUTHORIZED_BODY = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}


@dataclass(frozen=True, slots=True, kw_only=True)
class Waits(RetryPolicy):
    """The retry policy, its waits recorded instead of slept: (attempt, Retry-After) of each."""

    asked: list[tuple[int, float | None]] = field(default_factory=list)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        self.asked.append((attempt, retry_after))
        return 0.0


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    path: str  #: with the query string
    headers: CIMultiDict[str]


Respond = Callable[[web.Request], Awaitable[web.StreamResponse]]
NO_CONTENT_TYPE = web.RequestKey("no_content_type", bool)


class Host:
    """An HTTP(S) server on 127.0.0.1 in this event loop: ``respond`` answers, ``seen`` records.
    A handler that sets ``request[NO_CONTENT_TYPE]`` sends its answer without Content-Type."""

    def __init__(self, respond: Respond, *, tls: ssl.SSLContext | None = None) -> None:
        self.respond = respond
        self.tls = tls
        self.seen: list[Seen] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def paths(self, part: str = "") -> list[str]:
        return [s.path for s in self.seen if part in s.path]

    def headers(self, name: str, part: str = "") -> list[str | None]:
        return [s.headers.get(name) for s in self.seen if part in s.path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.method, request.path_qs, request.headers.copy()))
        return await self.respond(request)

    @staticmethod
    async def _strip_content_type(request: web.Request, response: web.StreamResponse) -> None:
        if request.get(NO_CONTENT_TYPE):
            response.headers.popall("Content-Type", None)

    async def __aenter__(self) -> Host:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_response_prepare.append(self._strip_content_type)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()


async def cut_short(request: web.Request, data: bytes, sent: int) -> web.StreamResponse:
    """Headers announcing all of ``data``, then ``sent`` bytes of it, then the connection closes."""
    resp = web.StreamResponse()
    resp.content_length = len(data)
    await resp.prepare(request)
    await resp.write(data[:sent])
    assert request.transport is not None
    request.transport.close()
    return resp


class Scripted:
    """Answers as a registry serving ``image`` (and ``blobs``) in ``repository``: /v2/ (200, or
    401 with ``challenge``), manifests by tag and digest, blobs (a Range answered with 206).
    With ``accepts``, a request whose Authorization it does not accept is answered 401 with the
    challenge. ``answer(request)``, when set, runs first: what it returns, if anything, is the
    answer."""

    def __init__(self, image: Image = IMAGE, *, repository: str = "team/app", tag: str = "1",
                 blobs: tuple[Blob, ...] = (BIG_BLOB,), challenge: str | None = None,
                 accepts: Callable[[str | None], bool] | None = None,
                 answer: Callable[[web.Request], Awaitable[web.StreamResponse | None]] | None = None) -> None:
        self.prefix = f"/v2/{repository}/"
        self.manifests = {tag: image.manifest, image.manifest.digest: image.manifest}
        self.blobs = {blob.digest: blob.data for blob in (*image.blobs(), *blobs)}
        self.challenge, self.accepts, self.answer = challenge, accepts, answer

    def refuse(self) -> web.Response:
        headers = {"WWW-Authenticate": self.challenge} if self.challenge else {}
        return web.json_response(UNAUTHORIZED_BODY, status=401, headers=headers)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if self.answer is not None:
            answered = await self.answer(request)
            if answered is not None:
                return answered
        if request.path == "/v2/":
            return self.refuse() if self.challenge else web.json_response({})
        if self.accepts is not None and not self.accepts(request.headers.get("Authorization")):
            return self.refuse()
        if not request.path.startswith(self.prefix):
            return web.Response(status=404, body=error_body("NAME_UNKNOWN", "repository name not known to registry"))
        kind, _, name = request.path[len(self.prefix):].partition("/")
        if kind == "manifests" and name in self.manifests:
            manifest = self.manifests[name]
            return web.Response(body=manifest.data, headers={"Content-Type": manifest.media_type})
        if kind == "blobs" and name in self.blobs:
            data = self.blobs[name]
            wanted = request.headers.get("Range", "")
            if wanted.startswith("bytes="):
                start = int(wanted.removeprefix("bytes=").rstrip("-"))
                return web.Response(status=206, body=data[start:], content_type="application/octet-stream",
                                    headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
            return web.Response(body=data, content_type="application/octet-stream")
        code = "MANIFEST_UNKNOWN" if kind == "manifests" else "BLOB_UNKNOWN"
        return web.Response(status=404, body=error_body(code, f"{kind[:-1]} unknown"))


def scenario(work: Callable[[], Awaitable[Any]]) -> Any:
    """Runs ``work`` in a new event loop; a client that loops where it should give up fails."""
    return asyncio.run(asyncio.wait_for(work(), 60))


@contextlib.asynccontextmanager
async def client_for(settings: Callable[[str], RegistrySettings] | None = None, *,
                     retry: RetryPolicy | None = None, resolver: AbstractResolver | None = None,
                     timeout: float = 30) -> AsyncIterator[RegistryClient]:
    connector = aiohttp.TCPConnector(resolver=resolver) if resolver else None
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        yield RegistryClient(session, settings=settings, retry=retry or Waits(attempts=1))


def only_for(host: str, **settings: Any) -> Callable[[str], RegistrySettings]:
    """Settings as config.yaml gives them: for that registry host, and for no other."""
    return lambda name: RegistrySettings(host=name, **settings) if name == host else RegistrySettings(host=name)


def ref_at(host: str, tag: str = "1") -> ImageRef:
    return parse_reference(f"{host}/team/app:{tag}")


# -- what the registry's errors become -----------------------------------------------------------

def test_unknown_manifests_and_blobs_are_not_found_with_the_registrys_code(registry):
    """Distribution's own answers: 404 with MANIFEST_UNKNOWN or BLOB_UNKNOWN and its message."""
    push_image(registry.url, "inproc/known", "1", IMAGE)
    ref = parse_reference(f"{registry.host}/inproc/known:1")
    missing = Descriptor(media_type="application/octet-stream", digest="sha256:" + "0" * 64, size=3)

    async def work() -> list[NotFoundError]:
        caught = []
        async with client_for() as client:
            for attempt in (client.get_manifest(ref, "nope"), client.get_blob(ref, missing, 10)):
                with pytest.raises(NotFoundError) as error:
                    await attempt
                caught.append(error.value)
        return caught
    manifest, blob = scenario(work)
    assert (manifest.message, manifest.code, manifest.status) == (f"manifest unknown: {ref}", "MANIFEST_UNKNOWN", 404)
    assert (blob.message, blob.code, blob.status) == (f"blob unknown to registry: {ref}", "BLOB_UNKNOWN", 404)


HUGE_ERROR = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "m", "detail": "x" * 70_000}]}).encode()


@pytest.mark.parametrize("status, reason, body, error, message, code", [
    # a bare status (a proxy or load balancer answered): its reason phrase, or the status itself
    (404, None, b"", NotFoundError, "Not Found: {ref}", None),
    (404, "", b"", NotFoundError, "HTTP 404: {ref}", None),
    (401, None, b"", AuthError, "Unauthorized: {ref}", None),
    (403, None, b"not json", AuthError, "unauthorized: Forbidden: {ref}", None),
    # the distribution spec's codes decide, whatever the status
    (400, None, error_body("MANIFEST_UNKNOWN", "manifest unknown"), NotFoundError, "manifest unknown: {ref}",
     "MANIFEST_UNKNOWN"),
    (400, None, error_body("BLOB_UNKNOWN", "blob unknown"), NotFoundError, "blob unknown: {ref}", "BLOB_UNKNOWN"),
    (400, None, error_body("NAME_UNKNOWN", "no such repository"), NotFoundError, "no such repository: {ref}",
     "NAME_UNKNOWN"),
    (400, None, error_body("UNAUTHORIZED", "authentication required"), AuthError,
     "unauthorized: authentication required: {ref}", "UNAUTHORIZED"),
    (400, None, error_body("DENIED", "requested access to the resource is denied"), AuthError,
     "unauthorized: requested access to the resource is denied: {ref}", "DENIED"),
    # a message that already says so is not said twice
    (401, None, error_body("UNAUTHORIZED", "Unauthorized: login first"), AuthError, "Unauthorized: login first: {ref}",
     "UNAUTHORIZED"),
    # anything else: what was asked, the status and the registry's message, or the reason phrase
    (400, None, error_body("SIZE_INVALID", "size invalid"), RegistryError, "manifest {ref}: HTTP 400: size invalid",
     "SIZE_INVALID"),
    (400, None, b'{"errors": []}', RegistryError, "manifest {ref}: HTTP 400: Bad Request", None),
    # an error body past 64 KiB is not read whole, so not believed
    (400, None, HUGE_ERROR, RegistryError, "manifest {ref}: HTTP 400: Bad Request", None),
])
def test_a_registry_error_is_classified_by_status_and_code_naming_the_image(status, reason, body, error, message, code):
    async def answer(request: web.Request) -> web.StreamResponse | None:
        if "/manifests/" in request.path:
            return web.Response(status=status, reason=reason, body=body, content_type="application/json")
        return None

    async def work() -> tuple[RegistryError, Host]:
        async with Host(Scripted(answer=answer)) as registry, client_for() as client:
            with pytest.raises(RegistryError) as caught:
                await client.get_manifest(ref_at(registry.host), "1")
            return caught.value, registry
    caught, registry = scenario(work)
    assert type(caught) is error
    assert (caught.message, caught.code, caught.status) == (message.format(ref=ref_at(registry.host)), code, status)
    assert not caught.temporary


@pytest.mark.parametrize("code, temporary", [("TOOMANYREQUESTS", True), ("UNSUPPORTED", False)])
def test_the_toomanyrequests_code_is_temporary_whatever_the_status(code, temporary):
    async def answer(request: web.Request) -> web.StreamResponse | None:
        if "/blobs/" in request.path:
            return web.Response(status=400, body=error_body(code, "slow down"))
        return None

    async def work() -> tuple[RegistryError, Host]:
        async with Host(Scripted(answer=answer)) as registry, client_for() as client:
            with pytest.raises(RegistryError) as caught:
                await client.get_blob(ref_at(registry.host), BIG_DESC, len(BIG))
            return caught.value, registry
    caught, registry = scenario(work)
    assert caught.temporary is temporary and caught.code == code
    assert caught.message == f"blob {ref_at(registry.host)}: HTTP 400: slow down"


@pytest.mark.parametrize("attempts, suffix", [(1, ""), (2, " (after 2 attempts)"), (3, " (after 3 attempts)")])
def test_a_temporary_error_is_tried_as_often_as_the_policy_says_and_the_error_says_how_often(attempts, suffix):
    async def answer(request: web.Request) -> web.StreamResponse | None:
        return web.Response(status=503) if "/manifests/" in request.path else None

    async def work() -> tuple[RegistryError, Host, Waits]:
        retry = Waits(attempts=attempts)
        async with Host(Scripted(answer=answer)) as registry, client_for(retry=retry) as client:
            with pytest.raises(RegistryError) as caught:
                await client.get_manifest(ref_at(registry.host), "1")
            return caught.value, registry, retry
    caught, registry, retry = scenario(work)
    assert caught.message == f"manifest {ref_at(registry.host)}: HTTP 503: Service Unavailable{suffix}"
    assert caught.temporary and len(registry.paths("/manifests/")) == attempts
    assert retry.asked == [(n, None) for n in range(1, attempts)]


def test_a_permanent_error_after_a_retry_is_reported_as_it_is():
    statuses = [503, 404]

    async def answer(request: web.Request) -> web.StreamResponse | None:
        return web.Response(status=statuses.pop(0)) if "/manifests/" in request.path else None

    async def work() -> tuple[RegistryError, Host]:
        async with Host(Scripted(answer=answer)) as registry, client_for(retry=Waits(attempts=3)) as client:
            with pytest.raises(NotFoundError) as caught:
                await client.get_manifest(ref_at(registry.host), "1")
            return caught.value, registry
    caught, registry = scenario(work)
    assert caught.message == f"Not Found: {ref_at(registry.host)}"  # no "(after 2 attempts)": not temporary


@pytest.mark.parametrize("status, honoured", [(429, True), (503, True), (500, False), (504, False)])
def test_retry_after_is_honoured_where_the_http_spec_gives_it_meaning(status, honoured):
    """429 and 503 say when to come back; on another status, Retry-After is not the server's
    answer to this request's failure, and the policy's own backoff applies."""
    statuses = [status]

    async def answer(request: web.Request) -> web.StreamResponse | None:
        if "/manifests/" in request.path and statuses:
            return web.Response(status=statuses.pop(0), headers={"Retry-After": "7"})
        return None

    async def work() -> tuple[tuple[bytes, str, str], Waits]:
        retry = Waits(attempts=2)
        async with Host(Scripted(answer=answer)) as registry, client_for(retry=retry) as client:
            return await client.get_manifest(ref_at(registry.host), "1"), retry
    (body, _, _), retry = scenario(work)
    assert body == IMAGE.manifest.data
    assert retry.asked == [(1, 7.0 if honoured else None)]


# -- redirects: to storage hosts, back, and too many ---------------------------------------------

CREDS = Credentials("analyzer", "s3cret")


def basic_registry(**kwargs: Any) -> Scripted:
    """A registry with Basic auth that accepts CREDS."""
    return Scripted(challenge='Basic realm="scripted"', accepts=lambda value: value == CREDS.basic(), **kwargs)


def redirecting_blobs_to(storage: Callable[[], str]) -> Callable[[web.Request], Awaitable[web.StreamResponse | None]]:
    async def answer(request: web.Request) -> web.StreamResponse | None:
        if "/blobs/" in request.path and request.headers.get("Authorization") == CREDS.basic():
            return web.Response(status=307, headers={"Location": f"{storage()}/store/{request.path.rsplit('/', 1)[1]}"})
        return None
    return answer


@pytest.mark.parametrize("status, error, temporary, tries", [
    (404, NotFoundError, False, 1), (403, AuthError, False, 1), (500, RegistryError, True, 2),
    (400, RegistryError, False, 1)])
def test_an_error_from_the_host_a_blob_was_redirected_to_is_named_as_that_hosts(status, error, temporary, tries):
    """Its body is the storage's own format (S3's XML), not the registry's: not read into the message."""
    async def storage_answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=b"<Error><Code>NoSuchKey</Code></Error>",
                            content_type="application/xml")

    async def work() -> tuple[RegistryError, Host, Host]:
        async with Host(storage_answer) as storage, \
                Host(basic_registry(answer=redirecting_blobs_to(lambda: storage.url))) as registry, \
                client_for(only_for(registry.host, credentials=CREDS), retry=Waits(attempts=2)) as client:
            with pytest.raises(RegistryError) as caught:
                await client.get_blob(ref_at(registry.host), BIG_DESC, len(BIG))
            return caught.value, registry, storage
    caught, registry, storage = scenario(work)
    text = (f"blob {ref_at(registry.host)}: {storage.host}, where registry {registry.host} redirected the download, "
            f"answered HTTP {status}")
    expected = f"unauthorized: {text}" if status == 403 else text
    assert type(caught) is error and caught.message == expected + (" (after 2 attempts)" if temporary else "")
    assert caught.status == status and caught.temporary is temporary
    assert len(storage.seen) == tries and storage.headers("Authorization") == [None] * tries


@pytest.mark.parametrize("status, challenge", [
    (401, 'Bearer realm="http://{host}/steal",service="storage"'),  # the confirmed attack's answer
    (401, None),
    (403, 'Basic realm="storage"'),
])
def test_a_challenge_from_the_host_a_blob_was_redirected_to_is_an_error_and_gets_no_credentials(status, challenge):
    async def storage_answer(request: web.Request) -> web.StreamResponse:
        if request.path == "/steal":
            return web.json_response({"token": "stolen"})
        headers = {"WWW-Authenticate": challenge.format(host=request.host)} if challenge else {}
        return web.Response(status=status, headers=headers)

    async def work() -> tuple[AuthError, Host, Host]:
        async with Host(storage_answer) as storage, \
                Host(basic_registry(answer=redirecting_blobs_to(lambda: storage.url))) as registry, \
                client_for(only_for(registry.host, credentials=CREDS), retry=Waits(attempts=3)) as client:
            with pytest.raises(AuthError) as caught:
                await client.get_blob(ref_at(registry.host), BIG_DESC, len(BIG))
            return caught.value, registry, storage
    caught, registry, storage = scenario(work)
    assert caught.message == (
        f"unauthorized: blob {ref_at(registry.host)}: {storage.host}, where registry {registry.host} redirected the "
        f"download, asked for credentials (HTTP {status}); credentials go only to {registry.host} and its token "
        "realm, so none were sent")
    assert caught.status == status and not caught.temporary
    assert storage.paths() == [f"/store/{BIG_BLOB.digest}"]  # once, and its realm never
    assert storage.headers("Authorization") == [None]


def test_a_download_redirected_to_storage_resumes_there_with_a_range_and_without_credentials():
    sent = []

    async def storage_answer(request: web.Request) -> web.StreamResponse:
        wanted = request.headers.get("Range")
        if wanted is None:
            sent.append(1)
            return await cut_short(request, BIG, 1024 * 1024)
        start = int(wanted.removeprefix("bytes=").rstrip("-"))
        return web.Response(status=206, body=BIG[start:], headers={
            "Content-Range": f"bytes {start}-{len(BIG) - 1}/{len(BIG)}"})

    async def work() -> tuple[bytes, Host, Host]:
        async with Host(storage_answer) as storage, \
                Host(basic_registry(answer=redirecting_blobs_to(lambda: storage.url))) as registry, \
                client_for(only_for(registry.host, credentials=CREDS), retry=Waits(attempts=2)) as client:
            return await client.get_blob(ref_at(registry.host), BIG_DESC, len(BIG)), registry, storage
    body, registry, storage = scenario(work)
    assert body == BIG
    assert storage.headers("Range") == [None, "bytes=1048576-"] and storage.headers("Authorization") == [None, None]
    assert registry.headers("Authorization", "/blobs/") == [CREDS.basic()] * 2


def test_a_storage_host_that_redirects_back_to_the_registry_gets_no_request_with_credentials_there():
    """Back at the registry, at a path the storage host chose (another repository's blob): no
    Authorization, and the registry's refusal is an error, not a challenge to answer."""
    async def work() -> tuple[AuthError, Host]:
        registry = Host(basic_registry())

        async def storage_answer(request: web.Request) -> web.StreamResponse:
            return web.Response(status=307, headers={
                "Location": f"{registry.url}/v2/other/private/blobs/{IMAGE.config.digest}"})
        async with Host(storage_answer) as storage, registry, \
                client_for(only_for(registry.host, credentials=CREDS)) as client:
            registry.respond.answer = redirecting_blobs_to(lambda: storage.url)
            with pytest.raises(AuthError, match="asked for credentials") as caught:
                await client.get_blob(ref_at(registry.host), BIG_DESC, len(BIG))
            return caught.value, registry
    caught, registry = scenario(work)
    assert f": {registry.host}, where registry {registry.host} redirected" in caught.message
    assert registry.headers("Authorization", "/other/") == [None]


@pytest.mark.parametrize("hops, fails", [(5, False), (6, True)])
def test_redirects_are_followed_up_to_five_hops(hops, fails):
    """Relative Locations, as a registry's own front end gives them; the sixth is one too many."""
    async def answer(request: web.Request) -> web.StreamResponse | None:
        if "/blobs/" in request.path:
            return web.Response(status=302, headers={"Location": "/hop/1"})
        if request.path.startswith("/hop/"):
            hop = int(request.path.rsplit("/", 1)[1])
            if hop < hops:
                return web.Response(status=307, headers={"Location": f"{hop + 1}"})
            return web.Response(body=IMAGE.config.data)
        return None

    async def work() -> Any:
        async with Host(Scripted(answer=answer)) as registry, client_for(retry=Waits(attempts=3)) as client:
            desc = Descriptor(media_type=IMAGE.config.media_type, digest=IMAGE.config.digest,
                              size=len(IMAGE.config.data))
            try:
                return await client.get_blob(ref_at(registry.host), desc, 1 << 20), registry
            except RegistryError as exc:
                return exc, registry
    got, registry = scenario(work)
    if fails:
        assert isinstance(got, RegistryError) and got.message == "more than 5 redirects fetching /hop/6"
        assert registry.paths("/hop/") == [f"/hop/{n}" for n in range(1, 6)]  # and not retried
    else:
        assert got == IMAGE.config.data


def test_a_redirect_status_without_location_is_the_registrys_answer():
    async def answer(request: web.Request) -> web.StreamResponse | None:
        return web.Response(status=302) if "/blobs/" in request.path else None

    async def work() -> tuple[RegistryError, Host]:
        async with Host(Scripted(answer=answer)) as registry, client_for() as client:
            with pytest.raises(RegistryError) as caught:
                await client.get_blob(ref_at(registry.host), BIG_DESC, len(BIG))
            return caught.value, registry
    caught, registry = scenario(work)
    assert caught.message == f"blob {ref_at(registry.host)}: HTTP 302: Found" and caught.status == 302


# -- bearer tokens: which realm, which service, how long, and a fresh one once --------------------

class TokenService:
    """A token realm: answers ``/PATH`` with the token ``PATH-N`` (N counts every token issued,
    from 1) valid ``expires_in`` seconds."""

    def __init__(self, expires_in: int = 300) -> None:
        self.expires_in = expires_in
        self.issued = 0

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self.issued += 1
        return web.json_response({"token": f"{request.path.strip('/')}-{self.issued}", "expires_in": self.expires_in})


def bearer(realm: Host, path: str = "token", *, service: str | None = "scripted", name: str = "localhost") -> str:
    """A Bearer challenge naming ``realm`` by ``name`` (localhost: elsewhere than the registry's 127.0.0.1)."""
    return f'Bearer realm="http://{name}:{realm.port}/{path}"' + (f',service="{service}"' if service else "")


@pytest.mark.parametrize("realm_name", ["localhost", "127.0.0.1"])  # elsewhere; on the registry's host
def test_a_token_the_registry_refuses_is_replaced_once_by_a_fresh_one(realm_name):
    async def work() -> tuple[bytes, Host, Host]:
        async with Host(TokenService()) as realm, \
                Host(Scripted(accepts=lambda value: value == "Bearer token-2")) as registry, \
                client_for(only_for(registry.host, credentials=CREDS)) as client:
            registry.respond.challenge = bearer(realm, name=realm_name)
            body, _, _ = await client.get_manifest(ref_at(registry.host), "1")
            return body, registry, realm
    body, registry, realm = scenario(work)
    assert body == IMAGE.manifest.data
    assert registry.headers("Authorization", "/manifests/") == ["Bearer token-1", "Bearer token-2"]
    assert realm.headers("Authorization") == [CREDS.basic()] * 2


def test_a_registry_that_refuses_every_token_is_asked_with_one_fresh_token_then_refused():
    async def work() -> tuple[AuthError, Host, Host]:
        async with Host(TokenService()) as realm, Host(Scripted(accepts=lambda value: False)) as registry, \
                client_for(retry=Waits(attempts=3)) as client:
            registry.respond.challenge = bearer(realm)
            with pytest.raises(AuthError) as caught:
                await client.get_manifest(ref_at(registry.host), "1")
            return caught.value, registry, realm
    caught, registry, realm = scenario(work)
    assert caught.message == f"unauthorized: authentication required: {ref_at(registry.host)}"
    assert registry.headers("Authorization", "/manifests/") == ["Bearer token-1", "Bearer token-2"]


@pytest.mark.parametrize("refusal, realms", [
    ('Bearer realm="http://localhost:{port}/other",service="scripted",error="insufficient_scope"', ["token", "other"]),
    ('Bearer error="insufficient_scope"', ["token", "token"]),  # no realm: the one /v2/ named
    ('Basic realm="scripted"', ["token", "token"]),  # not a Bearer challenge: not an answer to ours
    (None, ["token", "token"]),
])
def test_the_fresh_token_is_asked_where_the_registrys_own_refusal_says(refusal, realms):
    """The realm of the registry's own 401, if it names one, else the realm /v2/ named."""
    async def work() -> tuple[Host, Host]:
        async with Host(TokenService()) as realm:
            async def answer(request: web.Request) -> web.StreamResponse | None:
                if "/manifests/" in request.path and request.headers.get("Authorization", "").endswith("-1"):
                    headers = {"WWW-Authenticate": refusal.format(port=realm.port)} if refusal else {}
                    return web.json_response(UNAUTHORIZED_BODY, status=401, headers=headers)
                return None
            async with Host(Scripted(answer=answer, challenge=bearer(realm))) as registry, \
                    client_for(only_for(registry.host, credentials=CREDS)) as client:
                await client.get_manifest(ref_at(registry.host), "1")
                return registry, realm
    registry, realm = scenario(work)
    assert [path.split("?")[0].strip("/") for path in realm.paths()] == realms
    assert registry.headers("Authorization", "/manifests/") == [f"Bearer {realms[0]}-1", f"Bearer {realms[1]}-2"]


@pytest.mark.parametrize("refusal", [
    'Bearer realm="http://localhost:{port}/other",service="scripted"',
    'Bearer realm="http://localhost:{port}/token",service="other-service"'])
def test_a_token_is_used_only_for_the_realm_and_service_it_was_issued_for(refusal):
    """The manifest's 401 named another realm (or service): its fresh token served the manifest;
    the blob, answered to the challenge of /v2/, gets the token issued for that one."""
    async def work() -> Host:
        async with Host(TokenService()) as realm:
            async def answer(request: web.Request) -> web.StreamResponse | None:
                if "/manifests/" in request.path and request.headers.get("Authorization") != "Bearer " + fresh:
                    headers = {"WWW-Authenticate": refusal.format(port=realm.port)}
                    return web.json_response(UNAUTHORIZED_BODY, status=401, headers=headers)
                return None
            fresh = "other-2" if "/other" in refusal else "token-2"
            async with Host(Scripted(answer=answer, challenge=bearer(realm))) as registry, client_for() as client:
                await client.get_manifest(ref_at(registry.host), "1")
                await client.get_blob(ref_at(registry.host), BIG_DESC, len(BIG))
                return registry
    registry = scenario(work)
    fresh = "other-2" if "/other" in refusal else "token-2"
    assert registry.headers("Authorization", "/team/app/") == ["Bearer token-1", f"Bearer {fresh}", "Bearer token-1"]


def test_a_fresh_token_does_not_use_up_a_retry_nor_add_one():
    """attempts=2: the refused token, then two 503s (the budget), never the 200 after them."""
    statuses = [401, 503, 503]

    async def work() -> tuple[RegistryError, Host]:
        async with Host(TokenService()) as realm:
            async def answer(request: web.Request) -> web.StreamResponse | None:
                if "/manifests/" in request.path and statuses:
                    status = statuses.pop(0)
                    return web.Response(status=status, headers={"WWW-Authenticate": bearer(realm)})
                return None
            async with Host(Scripted(answer=answer, challenge=bearer(realm))) as registry, \
                    client_for(retry=Waits(attempts=2)) as client:
                with pytest.raises(RegistryError) as caught:
                    await client.get_manifest(ref_at(registry.host), "1")
                return caught.value, registry
    caught, registry = scenario(work)
    assert caught.message == f"manifest {ref_at(registry.host)}: HTTP 503: Service Unavailable (after 2 attempts)"
    assert len(registry.paths("/manifests/")) == 3


@pytest.mark.parametrize("service", ["scripted", None])
def test_the_token_is_asked_for_the_service_the_registry_names_and_reused(service):
    async def work() -> tuple[Host, Host]:
        async with Host(TokenService()) as realm, Host(Scripted()) as registry, \
                client_for(only_for(registry.host, credentials=CREDS)) as client:
            registry.respond.challenge = bearer(realm, service=service)
            ref = ref_at(registry.host)
            await client.get_manifest(ref, "1")
            await client.get_blob(ref, BIG_DESC, len(BIG))
            return registry, realm
    registry, realm = scenario(work)
    expected = {"scope": "repository:team/app:pull"} | ({"service": service} if service else {})
    assert [dict(parse_qsl(urlsplit(path).query)) for path in realm.paths()] == [expected]
    assert realm.headers("Authorization") == [CREDS.basic()]
    assert registry.headers("Authorization", "/team/app/") == ["Bearer token-1"] * 2


def test_a_token_is_not_reused_in_its_last_seconds():
    """expires_in 5: less than the 10 s margin, so each request asks for a token of its own."""
    async def work() -> Host:
        async with Host(TokenService(expires_in=5)) as realm, Host(Scripted()) as registry, \
                client_for() as client:
            registry.respond.challenge = bearer(realm)
            await client.get_manifest(ref_at(registry.host), "1")
            await client.get_manifest(ref_at(registry.host), "1")
            return realm
    assert len(scenario(work).seen) == 2


def test_each_registry_gets_a_token_of_its_own_from_a_shared_realm():
    async def work() -> tuple[Host, Host, Host]:
        async with Host(TokenService()) as realm, Host(Scripted()) as first, Host(Scripted()) as second, \
                client_for() as client:
            first.respond.challenge = second.respond.challenge = bearer(realm)
            await client.get_manifest(ref_at(first.host), "1")
            await client.get_manifest(ref_at(second.host), "1")
            return realm, first, second
    realm, first, second = scenario(work)
    assert len(realm.seen) == 2
    assert first.headers("Authorization", "/manifests/") == ["Bearer token-1"]
    assert second.headers("Authorization", "/manifests/") == ["Bearer token-2"]


def test_a_basic_registry_gets_the_credentials_configured_for_its_host():
    async def work() -> tuple[bytes, Host]:
        async with Host(basic_registry()) as registry, \
                client_for(only_for(registry.host, credentials=CREDS)) as client:
            body, _, _ = await client.get_manifest(ref_at(registry.host), "1")
            return body, registry
    body, registry = scenario(work)
    assert body == IMAGE.manifest.data and registry.headers("Authorization", "/manifests/") == [CREDS.basic()]


def test_a_basic_registry_without_credentials_says_where_to_configure_them():
    async def work() -> tuple[AuthError, Host]:
        async with Host(basic_registry()) as registry, \
                client_for(only_for("elsewhere.example", credentials=CREDS)) as client:
            with pytest.raises(AuthError) as caught:
                await client.get_manifest(ref_at(registry.host), "1")
            return caught.value, registry
    caught, registry = scenario(work)
    assert caught.message == f"unauthorized: {ref_at(registry.host)}: the registry requires credentials"
    assert caught.hint == "Add them under 'registries:' in config.yaml, or `docker login`."
    assert registry.paths() == ["/v2/"]  # nothing asked without them


# -- reaching the registry: /v2/, connections, timeouts ------------------------------------------

def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_registry_that_cannot_be_reached_is_named_with_each_scheme_tried():
    port = closed_port()
    ref = ref_at(f"127.0.0.1:{port}")

    async def work() -> tuple[RegistryError, Waits]:
        retry = Waits(attempts=2)
        async with client_for(retry=retry) as client:
            with pytest.raises(RegistryError) as caught:
                await client.get_manifest(ref, "1")
            return caught.value, retry
    caught, retry = scenario(work)
    message = caught.message
    assert message.startswith(f"cannot reach 127.0.0.1:{port} for {ref}: https: Cannot connect to host "
                              f"127.0.0.1:{port}")
    assert f"; http: Cannot connect to host 127.0.0.1:{port}" in message and message.endswith(" (after 2 attempts)")
    assert caught.temporary and retry.asked == [(1, None)]


@pytest.mark.parametrize("status, attempts, suffix", [(500, 3, " (after 3 attempts)"), (429, 1, ""),
                                                      (503, 2, " (after 2 attempts)")])
def test_a_registry_whose_v2_fails_is_retried_then_named(status, attempts, suffix):
    async def answer(request: web.Request) -> web.StreamResponse | None:
        return web.Response(status=status) if request.path == "/v2/" else None

    async def work() -> tuple[RegistryError, Host, Waits]:
        retry = Waits(attempts=attempts)
        async with Host(Scripted(answer=answer)) as registry, client_for(retry=retry) as client:
            with pytest.raises(RegistryError) as caught:
                await client.get_manifest(ref_at(registry.host), "1")
            return caught.value, registry, retry
    caught, registry, retry = scenario(work)
    assert caught.message.startswith(f"cannot reach {registry.host} for {ref_at(registry.host)}: https: ")
    assert caught.message.endswith(f"; {registry.url}/v2/ answered HTTP {status}{suffix}")
    assert caught.temporary and registry.paths() == ["/v2/"] * attempts
    assert retry.asked == [(n, None) for n in range(1, attempts)]


def test_a_registry_whose_v2_fails_briefly_is_used_once_it_answers():
    statuses = [503, 429]

    async def answer(request: web.Request) -> web.StreamResponse | None:
        return web.Response(status=statuses.pop(0)) if request.path == "/v2/" and statuses else None

    async def work() -> tuple[bytes, Host, Waits]:
        retry = Waits(attempts=3)
        async with Host(Scripted(answer=answer)) as registry, client_for(retry=retry) as client:
            body, _, _ = await client.get_manifest(ref_at(registry.host), "1")
            return body, registry, retry
    body, registry, retry = scenario(work)
    assert body == IMAGE.manifest.data and registry.paths("/v2/") == ["/v2/"] * 3 + ["/v2/team/app/manifests/1"]
    assert retry.asked == [(1, None), (2, None)]


def test_a_401_at_v2_without_a_challenge_gets_no_credentials():
    async def answer(request: web.Request) -> web.StreamResponse | None:
        return web.Response(status=401)

    async def work() -> tuple[AuthError, Host]:
        async with Host(Scripted(answer=answer)) as registry, \
                client_for(only_for(registry.host, credentials=CREDS)) as client:
            with pytest.raises(AuthError) as caught:
                await client.get_manifest(ref_at(registry.host), "1")
            return caught.value, registry
    caught, registry = scenario(work)
    assert caught.message == f"Unauthorized: {ref_at(registry.host)}" and caught.status == 401
    assert registry.headers("Authorization") == [None, None]


def test_a_redirect_at_v2_is_not_followed_to_another_hosts_challenge():
    """/v2/ answered with a redirect is an answer (no auth needed); the challenge of the host it
    points to is never taken for the registry's, so its realm never sees the credentials."""
    async def elsewhere(request: web.Request) -> web.StreamResponse:
        if request.path == "/token":
            return web.json_response({"token": "stolen"})
        return web.Response(status=401, headers={"WWW-Authenticate": f'Bearer realm="http://{request.host}/token"'})

    async def work() -> tuple[bytes, Host, Host]:
        async with Host(elsewhere) as other:
            async def answer(request: web.Request) -> web.StreamResponse | None:
                if request.path == "/v2/":
                    return web.Response(status=302, headers={"Location": f"http://localhost:{other.port}/v2/"})
                return None
            async with Host(Scripted(answer=answer)) as registry, \
                    client_for(only_for(registry.host, credentials=CREDS)) as client:
                body, _, _ = await client.get_manifest(ref_at(registry.host), "1")
                return body, registry, other
    body, registry, other = scenario(work)
    assert body == IMAGE.manifest.data and other.seen == []
    assert registry.headers("Authorization", "/manifests/") == [None]


def test_a_registry_that_drops_the_connection_is_retried_then_named():
    async def answer(request: web.Request) -> web.StreamResponse | None:
        if "/manifests/" in request.path:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return None

    async def work() -> tuple[RegistryError, Host, Waits]:
        retry = Waits(attempts=2)
        async with Host(Scripted(answer=answer)) as registry, client_for(retry=retry) as client:
            with pytest.raises(RegistryError) as caught:
                await client.get_manifest(ref_at(registry.host), "1")
            return caught.value, registry, retry
    caught, registry, retry = scenario(work)
    assert caught.message == (f"manifest {ref_at(registry.host)}: cannot reach {registry.host}: Server disconnected "
                              "(after 2 attempts)")
    assert caught.temporary and retry.asked == [(1, None)]


@pytest.mark.parametrize("where", ["/v2/", "/token", "/manifests/"])
def test_a_host_that_never_answers_is_named_with_the_timeout(where):
    """A timeout's exception has no message of its own: its name stands in."""
    tokens = TokenService()

    async def work() -> tuple[RegistryError, Host, Host]:
        give_up = asyncio.Event()

        async def stall(request: web.Request) -> web.StreamResponse | None:
            if where in request.path:
                await give_up.wait()
            return None

        async def token(request: web.Request) -> web.StreamResponse:
            await stall(request)
            return await tokens(request)
        async with Host(token) as realm, Host(Scripted(answer=stall, challenge=bearer(realm))) as registry:
            try:
                async with client_for(timeout=0.5) as client:
                    with pytest.raises(RegistryError) as caught:
                        await client.get_manifest(ref_at(registry.host), "1")
                    return caught.value, registry, realm
            finally:
                give_up.set()
    caught, registry, realm = scenario(work)
    ref = ref_at(registry.host)
    expected = {"/v2/": f"cannot reach {registry.host} for {ref}: https: ",
                "/token": f"{ref}: token service http://localhost:{realm.port}/token unreachable: TimeoutError",
                "/manifests/": f"manifest {ref}: cannot reach {registry.host}: TimeoutError"}[where]
    assert caught.message.startswith(expected) and caught.temporary
    if where == "/v2/":
        assert caught.message.endswith("; http: TimeoutError")


# -- TLS: whose certificate is checked, against what ---------------------------------------------

class ToLoopback(AbstractResolver):
    """Every name is 127.0.0.1 (at ``port``, if given): a server here, reached under the name of
    a host elsewhere, as a registry elsewhere would be."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host="127.0.0.1", port=self.port or port, family=socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[ssl.SSLContext, str]:
    """A server context whose certificate (for registry.test, auth.test, localhost and
    127.0.0.1) comes from a CA no one trusts; and that CA's file, for a registry's ca_cert."""
    ca = trustme.CA()
    leaf = ca.issue_cert("registry.test", "auth.test", "localhost", "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    ca_path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return context, str(ca_path)


def bearer_on_itself(name: str, tokens: TokenService) -> Scripted:
    """A registry whose token realm is https://NAME:PORT/token on its own server."""
    async def answer(request: web.Request) -> web.StreamResponse | None:
        return await tokens(request) if request.path == "/token" else None
    scripted = Scripted(answer=answer, accepts=lambda value: (value or "").startswith("Bearer token-"))
    scripted.challenge = f'Bearer realm="https://{name}/token",service="scripted"'
    return scripted


@pytest.mark.parametrize("auth", [None, "bearer"])
def test_a_loopback_registry_is_used_over_https_without_verification_as_docker_does(tls, auth):
    """With no auth, or with its token realm on its own host too; no settings at all (the client's default)."""
    context, _ = tls

    async def work() -> tuple[bytes, bytes, Host]:
        registry = Host(Scripted(), tls=context)
        async with registry, client_for(None) as client:
            if auth:
                registry.respond = bearer_on_itself(registry.host, TokenService())
            ref = ref_at(registry.host)
            body, _, _ = await client.get_manifest(ref, "1")
            return body, await client.get_blob(ref, BIG_DESC, len(BIG)), registry
    manifest, blob, registry = scenario(work)
    assert (manifest, blob) == (IMAGE.manifest.data, BIG)
    assert registry.headers("Authorization", "/blobs/") == (["Bearer token-1"] if auth else [None])


def test_the_host_a_loopback_registry_redirects_to_is_verified(tls):
    """``insecure`` (and loopback's leniency) cover the registry's own host, not storage elsewhere."""
    context, _ = tls

    async def work() -> tuple[RegistryError, Host, Host]:
        async with Host(Scripted(), tls=context) as storage, \
                Host(basic_registry(answer=redirecting_blobs_to(lambda: f"https://localhost:{storage.port}")),
                     tls=context) as registry, \
                client_for(only_for(registry.host, credentials=CREDS, insecure=True)) as client:
            with pytest.raises(RegistryError) as caught:
                await client.get_blob(ref_at(registry.host), BIG_DESC, len(BIG))
            return caught.value, registry, storage
    caught, registry, storage = scenario(work)
    assert caught.message.startswith(f"blob {ref_at(registry.host)}: cannot reach {registry.host}: ")
    assert f"localhost:{storage.port}" in caught.message and "certificate verify failed" in caught.message
    assert storage.seen == []


@pytest.mark.parametrize("settings", ["ca_cert", "none", "insecure"])
def test_a_registry_elsewhere_is_verified_against_its_ca_and_its_realm_elsewhere_too(tls, settings):
    """registry.test, its token realm on auth.test, both with certificates from a private CA:
    with ``ca_cert`` both are verified against it; without, the registry is refused; with
    ``insecure`` the registry is not verified, but its realm elsewhere still is, and refused."""
    context, ca_path = tls
    extra = {"ca_cert": {"ca_cert": ca_path}, "none": {}, "insecure": {"insecure": True}}[settings]

    async def work() -> tuple[Any, Host]:
        registry = Host(Scripted(), tls=context)
        async with registry:
            name = f"registry.test:{registry.port}"
            registry.respond = bearer_on_itself(f"auth.test:{registry.port}", TokenService())
            async with client_for(only_for(name, credentials=CREDS, **extra), resolver=ToLoopback()) as client:
                try:
                    return await client.get_manifest(ref_at(name), "1"), registry
                except RegistryError as exc:
                    return exc, registry
    got, registry = scenario(work)
    name = f"registry.test:{registry.port}"
    if settings == "ca_cert":
        assert got[0] == IMAGE.manifest.data
        assert registry.headers("Authorization", "/token") == [CREDS.basic()]
    elif settings == "none":
        assert got.message.startswith(f"cannot reach {name} for {ref_at(name)}: https: Cannot connect to host {name}")
        assert "certificate verify failed" in got.message and registry.seen == []
    else:
        assert got.message.startswith(f"{ref_at(name)}: token service https://auth.test:{registry.port}/token "
                                      "unreachable: Cannot connect to host auth.test")
        assert "certificate verify failed" in got.message and registry.paths() == ["/v2/"]


def test_docker_hub_references_are_fetched_from_registry_1_docker_io():
    async def work() -> tuple[bytes, NotFoundError, Host]:
        async with Host(Scripted()) as registry, \
                client_for(lambda name: RegistrySettings(host=name, insecure=True),
                           resolver=ToLoopback(registry.port)) as client:
            ref = parse_reference("team/app:1")
            body, _, _ = await client.get_manifest(ref, "1")
            with pytest.raises(NotFoundError) as caught:
                await client.get_manifest(ref, "nope")
            return body, caught.value, registry
    body, caught, registry = scenario(work)
    assert body == IMAGE.manifest.data and caught.message == "manifest unknown: docker.io/team/app:1"
    assert {seen.headers["Host"] for seen in registry.seen} == {"registry-1.docker.io"}


# -- blob downloads: resumed, restarted, short, long, corrupt ------------------------------------

@pytest.fixture
def big_proxied(registry):
    push_blob(registry.url, "inproc/big", BIG_BLOB)
    with FaultProxy(registry.url) as proxy:
        yield proxy


def test_a_broken_download_resumes_with_a_range_request(big_proxied):
    """Distribution answers the Range with 206: each try asks only for what is missing."""
    big_proxied.drop_after(1024 * 1024, times=2)
    ref = parse_reference(f"{big_proxied.host}/inproc/big:1")

    async def work() -> tuple[bytes, Waits]:
        retry = Waits(attempts=3)
        async with client_for(retry=retry) as client:
            return await client.get_blob(ref, BIG_DESC, len(BIG)), retry
    body, retry = scenario(work)
    assert body == BIG and retry.asked == [(1, None), (2, None)]
    assert [r.headers.get("Range") for r in big_proxied.blob_requests()] == [None, "bytes=1048576-", "bytes=2097152-"]


def test_a_download_that_breaks_as_often_as_the_policy_allows_fails_saying_how_far_it_got(big_proxied):
    big_proxied.drop_after(512 * 1024, times=3)
    ref = parse_reference(f"{big_proxied.host}/inproc/big:1")

    async def work() -> tuple[RegistryError, Waits]:
        retry = Waits(attempts=3)
        async with client_for(retry=retry) as client:
            with pytest.raises(RegistryError) as caught:
                await client.get_blob(ref, BIG_DESC, len(BIG))
            return caught.value, retry
    caught, retry = scenario(work)
    assert caught.message.startswith(f"blob {BIG_BLOB.digest} of {ref}: download broke after 1572864 of 3145728 "
                                     "bytes, 3 times: Response payload is not completed")
    assert caught.temporary and retry.asked == [(1, None), (2, None)] and len(big_proxied.blob_requests()) == 3


def test_a_blob_whose_bytes_do_not_hash_to_its_digest_is_refused_naming_both(big_proxied):
    big_proxied.corrupt(times=1)
    ref = parse_reference(f"{big_proxied.host}/inproc/big:1")
    flipped = bytearray(BIG)
    flipped[len(BIG) // 2] ^= 0xFF

    async def work() -> IntegrityError:
        async with client_for() as client:
            with pytest.raises(IntegrityError) as caught:
                await client.get_blob(ref, BIG_DESC, len(BIG))
            return caught.value
    assert scenario(work).message == (f"blob {BIG_BLOB.digest} of {ref}: digest mismatch, the bytes received hash to "
                                      f"sha256:{hashlib.sha256(flipped).hexdigest()} ({len(BIG)} bytes)")


def test_a_registry_that_sends_more_than_the_descriptor_declares_is_refused(registry):
    push_image(registry.url, "inproc/known", "1", IMAGE)
    ref = parse_reference(f"{registry.host}/inproc/known:1")
    declared = len(IMAGE.config.data) - 10
    desc = Descriptor(media_type=IMAGE.config.media_type, digest=IMAGE.config.digest, size=declared)

    async def work() -> IntegrityError:
        async with client_for() as client:
            with pytest.raises(IntegrityError) as caught:
                await client.get_blob(ref, desc, 1 << 20)
            return caught.value
    assert scenario(work).message == (f"blob {IMAGE.config.digest} of {ref}: the registry sent more than the "
                                      f"{declared} bytes its descriptor declares")


@pytest.mark.parametrize("resumed", ["200", "206 from the start", "206 without Content-Range", "200 broken again"])
def test_a_resumed_download_answered_from_the_start_skips_what_was_delivered(resumed):
    """A registry without Range support (or one that answers another range) sends the blob
    from its first byte: what was delivered is skipped, so the consumer sees each byte once."""
    answers = {
        "200": [web.Response(body=BIG)],
        "206 from the start": [web.Response(status=206, body=BIG, headers={
            "Content-Range": f"bytes 0-{len(BIG) - 1}/{len(BIG)}"})],
        "206 without Content-Range": [web.Response(status=206, body=BIG)],
        "200 broken again": [1024 * 1024, web.Response(body=BIG)]}[resumed]
    delivered = 2621440

    async def answer(request: web.Request) -> web.StreamResponse | None:
        if "/blobs/" not in request.path:
            return None
        if len(registry.paths("/blobs/")) == 1:
            return await cut_short(request, BIG, delivered)
        then = answers.pop(0)
        return await cut_short(request, BIG, then) if isinstance(then, int) else then

    registry = Host(Scripted(answer=answer))

    async def work() -> tuple[list[bytes], Waits]:
        retry = Waits(attempts=3)
        async with registry, client_for(retry=retry) as client:
            return [chunk async for chunk in client.blob_chunks(ref_at(registry.host), BIG_DESC)], retry
    chunks, retry = scenario(work)
    assert b"".join(chunks) == BIG
    assert registry.headers("Range", "/blobs/")[1:] == [f"bytes={delivered}-"] * (len(retry.asked))
    assert len(retry.asked) == (2 if resumed == "200 broken again" else 1)


def test_a_blob_shorter_than_its_descriptor_is_tried_again_then_reported():
    async def answer(request: web.Request) -> web.StreamResponse | None:
        return web.Response(body=BIG[:-100]) if "/blobs/" in request.path else None

    async def work() -> tuple[RegistryError, Host]:
        async with Host(Scripted(answer=answer)) as registry, client_for(retry=Waits(attempts=2)) as client:
            with pytest.raises(RegistryError) as caught:
                await client.get_blob(ref_at(registry.host), BIG_DESC, len(BIG))
            return caught.value, registry
    caught, registry = scenario(work)
    assert caught.message == (f"blob {BIG_BLOB.digest} of {ref_at(registry.host)}: download broke after "
                              f"{len(BIG) - 100} of {len(BIG)} bytes, 2 times: connection closed early")
    assert caught.temporary and len(registry.paths("/blobs/")) == 2


def test_a_blob_larger_than_the_callers_limit_is_not_downloaded():
    async def work() -> tuple[bytes, RegistryError, Host]:
        async with Host(Scripted()) as registry, client_for() as client:
            ref = ref_at(registry.host)
            whole = await client.get_blob(ref, BIG_DESC, len(BIG))  # exactly at the limit
            with pytest.raises(RegistryError) as caught:
                await client.get_blob(ref, BIG_DESC, len(BIG) - 1)
            return whole, caught.value, registry
    whole, caught, registry = scenario(work)
    assert whole == BIG and len(registry.paths("/blobs/")) == 1
    assert caught.message == (f"blob {BIG_BLOB.digest} of {ref_at(registry.host)}: {len(BIG)} bytes exceed the limit "
                              f"of {len(BIG) - 1}")


# -- manifests: verified by digest, media type, size limit ---------------------------------------

def test_a_manifest_by_tag_or_digest_comes_with_its_media_type_and_digest(registry):
    push_image(registry.url, "inproc/known", "1", IMAGE)
    ref = parse_reference(f"{registry.host}/inproc/known:1")

    async def work() -> list[tuple[bytes, str, str]]:
        async with client_for() as client:
            return [await client.get_manifest(ref, "1"), await client.get_manifest(ref, IMAGE.manifest.digest)]
    assert scenario(work) == [(IMAGE.manifest.data, IMAGE.manifest.media_type, IMAGE.manifest.digest)] * 2


def test_a_manifest_by_digest_whose_bytes_hash_otherwise_is_refused():
    served = IMAGE.manifest.data + b" "

    async def answer(request: web.Request) -> web.StreamResponse | None:
        if "/manifests/" in request.path:
            return web.Response(body=served, headers={"Content-Type": IMAGE.manifest.media_type})
        return None

    async def work() -> tuple[IntegrityError, tuple[bytes, str, str], Host]:
        async with Host(Scripted(answer=answer)) as registry, client_for() as client:
            with pytest.raises(IntegrityError) as caught:
                await client.get_manifest(ref_at(registry.host), IMAGE.manifest.digest)
            return caught.value, await client.get_manifest(ref_at(registry.host), "1"), registry
    caught, by_tag, registry = scenario(work)
    digest = "sha256:" + hashlib.sha256(served).hexdigest()
    assert caught.message == f"manifest {ref_at(registry.host)}: the registry served bytes hashing to {digest}"
    assert by_tag == (served, IMAGE.manifest.media_type, digest)  # by tag: what was served, named by its hash


@pytest.mark.parametrize("reference, message", [
    ("sha256:xyz", "manifest {ref}: invalid digest 'sha256:xyz': sha256 needs exactly 64 lowercase hex digits"),
    ("a" * 300, "manifest {ref}: invalid tag '" + "a" * 200 + "'"),
    ("../blobs/x", "manifest {ref}: invalid tag '../blobs/x'"),
])
def test_a_malformed_tag_or_digest_is_refused_before_any_request(reference, message):
    async def work() -> tuple[ManifestError, Host]:
        async with Host(Scripted()) as registry, client_for() as client:
            with pytest.raises(ManifestError) as caught:
                await client.get_manifest(ref_at(registry.host), reference)
            return caught.value, registry
    caught, registry = scenario(work)
    assert caught.message == message.format(ref=ref_at(registry.host)) and registry.seen == []


def test_a_malformed_blob_digest_is_refused_before_any_request():
    crafted = Descriptor(media_type="application/octet-stream", digest="sha256:/../../other/private", size=1)

    async def work() -> tuple[ManifestError, Host]:
        async with Host(Scripted()) as registry, client_for() as client:
            with pytest.raises(ManifestError) as caught:
                await client.get_blob(ref_at(registry.host), crafted, 10)
            return caught.value, registry
    caught, registry = scenario(work)
    assert caught.message.startswith(f"blob of {ref_at(registry.host)}: invalid digest 'sha256:/../../other/private'")
    assert registry.seen == []


@pytest.mark.parametrize("content_type, media_type", [
    ("application/vnd.oci.image.manifest.v1+json; charset=utf-8", "application/vnd.oci.image.manifest.v1+json"),
    (None, ""),  # none said: the manifest parser goes by the document's own mediaType
])
def test_the_manifests_media_type_is_its_content_type_without_parameters(content_type, media_type):
    async def answer(request: web.Request) -> web.StreamResponse | None:
        if "/manifests/" not in request.path:
            return None
        if content_type is None:
            request[NO_CONTENT_TYPE] = True
        return web.Response(body=IMAGE.manifest.data, headers={"Content-Type": content_type or "x/y"})

    async def work() -> tuple[bytes, str, str]:
        async with Host(Scripted(answer=answer)) as registry, client_for() as client:
            return await client.get_manifest(ref_at(registry.host), "1")
    assert scenario(work) == (IMAGE.manifest.data, media_type, IMAGE.manifest.digest)


@pytest.mark.parametrize("extra, length_known, message", [
    (b"", True, None), (b"", False, None),
    (b" ", True, "manifest {ref}: {size} bytes exceed the limit of {limit}"),
    (b" ", False, "manifest {ref}: larger than the limit of {limit} bytes"),
])
def test_a_manifest_is_accepted_up_to_exactly_the_size_limit(monkeypatch, extra, length_known, message):
    """The limit (4 MiB) lowered to this manifest's size: a Content-Length over it is refused
    before reading; a body sent without one is read only one byte past it."""
    limit = len(IMAGE.manifest.data)
    monkeypatch.setattr(client_module, "MAX_MANIFEST_SIZE", limit)
    served = IMAGE.manifest.data + extra

    async def answer(request: web.Request) -> web.StreamResponse | None:
        if "/manifests/" not in request.path:
            return None
        if length_known:
            return web.Response(body=served, headers={"Content-Type": IMAGE.manifest.media_type})
        resp = web.StreamResponse(headers={"Content-Type": IMAGE.manifest.media_type})  # chunked
        await resp.prepare(request)
        await resp.write(served)
        await resp.write_eof()
        return resp

    async def work() -> tuple[Any, Host]:
        async with Host(Scripted(answer=answer)) as registry, client_for() as client:
            try:
                return await client.get_manifest(ref_at(registry.host), "1"), registry
            except RegistryError as exc:
                return exc, registry
    got, registry = scenario(work)
    if message is None:
        assert got == (IMAGE.manifest.data, IMAGE.manifest.media_type, IMAGE.manifest.digest)
    else:
        assert isinstance(got, RegistryError) and not got.temporary
        assert got.message == message.format(ref=ref_at(registry.host), size=len(served), limit=limit)


def test_a_manifest_download_that_breaks_is_a_temporary_error():
    async def answer(request: web.Request) -> web.StreamResponse | None:
        if "/manifests/" in request.path:
            return await cut_short(request, IMAGE.manifest.data, 10)
        return None

    async def work() -> tuple[RegistryError, Host]:
        async with Host(Scripted(answer=answer)) as registry, client_for() as client:
            with pytest.raises(RegistryError) as caught:
                await client.get_manifest(ref_at(registry.host), "1")
            return caught.value, registry
    caught, registry = scenario(work)
    assert caught.message.startswith(f"manifest {ref_at(registry.host)}: download failed: Response payload is not "
                                     "completed") and caught.temporary


def test_a_manifest_larger_than_one_read_arrives_whole(registry):
    """1 MiB of annotations: the body comes in many reads, and all of them make the manifest."""
    document = json.loads(IMAGE.manifest.data)
    document["annotations"] = {"org.example.padding": "x" * (1 << 20)}
    big = Blob(json.dumps(document).encode(), IMAGE.manifest.media_type)
    push_image(registry.url, "inproc/known", "1", IMAGE)
    push_manifest(registry.url, "inproc/known", "padded", big)
    ref = parse_reference(f"{registry.host}/inproc/known:padded")

    async def work() -> list[tuple[bytes, str, str]]:
        async with client_for() as client:
            return [await client.get_manifest(ref, "padded"), await client.get_manifest(ref, big.digest)]
    assert scenario(work) == [(big.data, big.media_type, big.digest)] * 2


# -- foreign layers: from a URL of their descriptor ----------------------------------------------

@pytest.mark.parametrize("answer, error, temporary", [
    ("whole", None, False), ("404", "answered HTTP 404", False), ("503", "answered HTTP 503", True),
    ("broken", "download from {url} failed: Response payload is not completed", True)])
def test_a_foreign_layer_comes_from_its_url_without_the_registrys_credentials(answer, error, temporary):
    async def serve(request: web.Request) -> web.StreamResponse:
        if answer == "broken":
            return await cut_short(request, BIG, 1024 * 1024)
        return web.Response(body=BIG) if answer == "whole" else web.Response(status=int(answer))

    async def work() -> tuple[Any, Host]:
        settings = lambda name: RegistrySettings(host=name, credentials=CREDS)  # noqa: E731
        async with Host(serve) as foreign, client_for(settings) as client:
            try:
                chunks = [chunk async for chunk in client.url_chunks(f"{foreign.url}/layer.tar.gz", BIG_DESC)]
                return b"".join(chunks), foreign
            except RegistryError as exc:
                return exc, foreign
    got, foreign = scenario(work)
    assert foreign.headers("Authorization") == [None]
    if error is None:
        assert got == BIG
    else:
        url = f"{foreign.url}/layer.tar.gz"
        expected = f"layer {BIG_BLOB.digest}: " + (error.format(url=url) if answer == "broken" else f"{url} {error}")
        assert isinstance(got, RegistryError) and got.message.startswith(expected) and got.temporary is temporary


@pytest.mark.parametrize("where", ["loopback", "elsewhere, with its CA"])
def test_an_https_registry_whose_v2_fails_is_named_by_its_https_url(tls, where):
    context, ca_path = tls

    async def answer(request: web.Request) -> web.StreamResponse | None:
        return web.Response(status=503) if request.path == "/v2/" else None

    async def work() -> tuple[RegistryError, str]:
        async with Host(Scripted(answer=answer), tls=context) as registry:
            name = registry.host if where == "loopback" else f"registry.test:{registry.port}"
            async with client_for(only_for(name, ca_cert=ca_path), resolver=ToLoopback()) as client:
                with pytest.raises(RegistryError) as caught:
                    await client.get_manifest(ref_at(name), "1")
                return caught.value, name
    caught, name = scenario(work)
    assert caught.message.startswith(f"cannot reach {name} for {ref_at(name)}: https://{name}/v2/ answered HTTP 503")


# Mutation survivors that cannot matter (tools/mutation.sh registry):
# - Header names in another case: HTTP header names are case-insensitive, aiohttp looks them up in a
#   CIMultiDict and the servers read them so: `"www-authenticate"`/`"WWW-AUTHENTICATE"` in _ping and in both
#   lookups of _request, `"location"`/`"LOCATION"` in both of _get, `"retry-after"`/`"RETRY-AFTER"` in _retry_after,
#   `"content-type"`/`"CONTENT-TYPE"` in get_manifest, `"content-range"`/`"CONTENT-RANGE"` in blob_chunks; and the
#   ones sent: `"authorization"`/`"AUTHORIZATION"` in _request (_get strips it by k.lower() either way) and
#   _fetch_token, `"accept"`/`"ACCEPT"` in get_manifest, `"range"`/`"RANGE"` in blob_chunks.
# - client _network_host: `"REGISTRY-1.DOCKER.IO"`: host names are case-insensitive; yarl lowercases it before it
#   is resolved or sent as Host.
# - client _digest_of: `like.rpartition(":")`: a digest validate_digest accepted has exactly one colon.
# - client _read_at_most: `size <= limit`: at the limit it asks read(0), which returns b"" and ends the loop.
# - client _candidates: `("http", True)`: ssl= applies to TLS; a plain http request ignores it.
# - client _host: `known = None`, `self._hosts.get(None)`: every call goes through the lock, which finds the host
#   already pinged, so one ping per host all the same; `setdefault(None, ...)`: one lock for all hosts, so pings of
#   two registries wait for each other, none is repeated or lost.
# - client _ping, _fetch_token, _get: `allow_redirects=None`: aiohttp follows redirects only when it is truthy.
# - client _ping, _redirect_target_error: `resp.content.read(None)`: read() returns b"" for a falsy size, so the
#   drain of a body that is thrown away is skipped; the response is released either way.
# - client _ping: `.get("WWW-Authenticate", "XXXX")`, `Challenge(None, {})`, `Challenge("XXXX", {})`,
#   `Challenge("", None)`: a scheme that is neither basic nor bearer sends no credentials, as the empty one does,
#   and the params are read only for bearer.
# - client _authorization: `.get("service", None)`, `.get("service", )`: without a service in the challenge, None
#   and "" are both falsy (no service= is asked for) and key the token cache alike.
# - client _get: `left_registry = None`: falsy like False, and `None or x` is x.
# - client _request: `refreshed = None`: falsy like False until the refresh sets it True;
#   `.get("WWW-Authenticate", "XXXX")`: a 401 without a challenge parses to scheme "xxxx", not bearer, so the
#   challenge kept is the same as for "".
# - client get_manifest: `(resp.content_length or 1)`: only without Content-Length, and 1 byte is never over the
#   limit; `_read_at_most(resp, MAX_MANIFEST_SIZE + 2)`: one more byte read of a body refused as over the limit.
# - client blob_chunks: `skip = None`: falsy like 0, and only tested for truth until it is set;
#   `.get("Content-Range", "XXXX")`: without Content-Range, "" and "XXXX" both fail the `bytes N-` check, so the
#   download restarts the same; `len(chunk) < skip`: a chunk exactly as long as what is left to skip then yields an
#   empty chunk, no byte more or less (and where a read ends is the network's choice, not a test's).
# - auth Credentials.basic, _decode_auth: `decode("ASCII")`, `decode("UTF-8")`: codec names are case-insensitive.
# - auth _normalize_key: `split("/", )`, `split("/", 2)`: only the part before the first "/" is kept either way;
#   `rstrip(None)`: the key was stripped of whitespace first, and a trailing "/" never reaches that first part;
#   `lstrip("/")`: after the scheme no key starts with "/"; `rstrip("XX/XX")`: strips a trailing capital X too,
#   which a host name as Docker writes it (lowercase) does not end with.
# - auth _origin: `scheme.upper()`, `netloc.upper()`: applied to both origins compared, which are equal exactly
#   when their lowercased forms are.
# - auth _hostname: `or "XXXX"`: only for a registry host without a host name, which a parsed reference never has.
# - auth token_realm: `.get("realm", None)`, `.get("realm", )`: a missing realm is refused as "" is;
#   `"XXXX", "", False`, `"", "XXXX", False`, `"", "", True` for a URL that does not parse: each still fails the
#   check (an empty scheme or host, or user info, alone refuses the realm).
# - auth TokenCache.put: `expires_in >= 0`: 0 is falsy, so `expires_in and ...` already gives it the default.
