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


@pytest.mark.parametrize("where", ["/manifests/", "/blobs/"])
def test_429_with_retry_after_is_waited_for_then_retried(proxied, where):
    proxied.status_burst(429, times=1, retry_after=1, path_contains=where)
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
