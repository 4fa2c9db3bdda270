"""The registry client in this process (not through the CLI), against the real Distribution
registry, its token service and the fault proxy: token fetch and reuse, refusals, retries
with Retry-After, the retry budget, unknown manifests. In process, so the mutation run maps
these tests to the client's code (a subprocess's calls are invisible to it)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from analyzerd.errors import AuthError, NotFoundError, RegistryError
from analyzerd.oci import Descriptor
from analyzerd.reference import parse_reference
from analyzerd.registry.auth import Credentials, RegistrySettings
from analyzerd.registry.client import RegistryClient, RetryPolicy
from analyzerd.testing import Member, build_image, make_layer, push_image

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
    assert f"the token service refused access for user {token_registry.username!r}" in caught.value.message
    assert len(token_registry.token_requests) == 1  # refused once, not retried


def test_an_unknown_manifest_is_not_found_at_once(token_registry):
    with pytest.raises(NotFoundError) as caught:
        run(lambda client: manifest_and_layer(client, f"{token_registry.host}/team/app:nope"))
    assert f"{token_registry.host}/team/app" in caught.value.message and "attempts" not in caught.value.message


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
        assert base / 2 <= min(delays) and max(delays) <= base and max(delays) - min(delays) > base / 10
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
