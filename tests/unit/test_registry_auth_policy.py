"""Where a registry's credentials may go: the pure policy in ``analyzerd.registry.auth``.

The challenges are written as Distribution, Docker Hub and a hostile storage host write
them, and parsed by the same ``parse_challenge`` the client uses. (The end-to-end tests with
real servers are in tests/integration/test_registry_auth_policy.py.)"""

from __future__ import annotations

import base64
import json

import pytest

from analyzerd.errors import AuthError
from analyzerd.registry.auth import (Challenge, Credentials, RegistrySettings, TokenCache, TokenKey,
                                     parse_challenge, sends_authorization, token_realm)

CREDS = Credentials("analyzer", "s3cret")


def bearer(realm: str, service: str = "registry") -> Challenge:
    return parse_challenge(f'Bearer realm="{realm}",service="{service}",scope="repository:team/app:pull"')


def settings(host: str, *, insecure: bool = False) -> RegistrySettings:
    return RegistrySettings(host=host, credentials=CREDS, insecure=insecure)


@pytest.mark.parametrize(("registry", "realm", "insecure"), [
    ("registry-1.docker.io", "https://auth.docker.io/token", False),  # Docker Hub: https elsewhere
    ("registry.example:5000", "https://registry.example:5000/auth", False),
    ("registry.example:5000", "http://registry.example:5001/token", True),  # insecure: its own host
    ("127.0.0.1:5000", "http://127.0.0.1:5001/token", False),  # loopback registry, loopback realm
    ("localhost:5000", "http://127.0.0.2:5001/token", False),
    ("[::1]:5000", "http://[::1]:5001/token", False),
])
def test_allowed_realms(registry: str, realm: str, insecure: bool) -> None:
    assert token_realm(bearer(realm), settings(registry, insecure=insecure), registry).url == realm


@pytest.mark.parametrize(("registry", "realm", "insecure"), [
    # cleartext to a registry that is neither insecure nor on loopback
    ("registry.example", "http://registry.example/token", False),
    ("registry.example", "http://auth.example/token", False),
    ("registry.example", "http://127.0.0.1:5001/token", False),
    ("registry.example", "HTTP://auth.example/token", False),
    # insecure covers the registry's own host, not a realm elsewhere
    ("registry.example:5000", "http://auth.example/token", True),
    ("registry.example:5000", "http://127.0.0.1:5001/token", True),
    # a loopback registry's realm must be on loopback too, or the password leaves the machine
    ("127.0.0.1:5000", "http://auth.example/token", False),
])
def test_plain_http_realms_are_refused_naming_registry_and_realm(registry: str, realm: str,
                                                                  insecure: bool) -> None:
    with pytest.raises(AuthError) as caught:
        token_realm(bearer(realm), settings(registry, insecure=insecure), registry)
    assert registry in caught.value.message and repr(realm) in caught.value.message
    assert "plain http" in caught.value.message and caught.value.hint


@pytest.mark.parametrize("realm", [
    "", "/token", "ftp://auth.example/token", "file:///etc/passwd", "https://user:pw@auth.example/token",
    "https://auth.example:notaport/token", "https://[::1/token", "https:///token",
])
def test_realms_that_are_not_plain_http_urls_of_a_host_are_refused(realm: str) -> None:
    with pytest.raises(AuthError, match="registry.example"):
        token_realm(bearer(realm), settings("registry.example"), "registry.example")


def test_a_challenge_without_realm_is_refused() -> None:
    with pytest.raises(AuthError, match="no realm"):
        token_realm(parse_challenge('Bearer service="registry"'), settings("registry.example"), "registry.example")


def test_a_realm_on_the_registrys_host_gets_the_registrys_tls_settings_and_only_there() -> None:
    same = token_realm(bearer("https://registry.example:5001/token"), settings("registry.example:5000"),
                       "registry.example:5000")
    elsewhere = token_realm(bearer("https://registry.example.evil/token"), settings("registry.example:5000"),
                            "registry.example:5000")
    assert same.on_registry_host and not elsewhere.on_registry_host


def test_the_storage_hosts_steal_challenge_is_refused_for_a_registry_elsewhere() -> None:
    # what the confirmed attack's storage host answered; even were it taken for the
    # registry's own, its http realm is refused
    storage = parse_challenge('Bearer realm="http://storage.example/steal",service="x",scope="y"')
    with pytest.raises(AuthError, match="storage.example/steal"):
        token_realm(storage, settings("registry.example"), "registry.example")


@pytest.mark.parametrize(("url", "left", "sent"), [
    ("https://registry.example/v2/team/app/blobs/x", False, True),
    ("https://REGISTRY.example/v2/team/app/blobs/x", False, True),
    ("https://registry.example/v2/other/private/blobs/x", True, False),  # back after a redirect
    ("http://registry.example/v2/team/app/blobs/x", False, False),  # scheme downgrade
    ("https://registry.example:444/v2/team/app/blobs/x", False, False),
    ("https://storage.example/blob?sig=1", True, False),
    ("https://registry.example.storage.example/x", True, False),
])
def test_authorization_goes_only_to_the_registrys_origin_before_any_redirect_left_it(
        url: str, left: bool, sent: bool) -> None:
    assert sends_authorization(url, "https://registry.example", left_registry=left) is sent


def test_tokens_are_kept_per_registry_realm_service_and_scope() -> None:
    now = [0.0]
    cache = TokenCache(clock=lambda: now[0])
    key = TokenKey("registry.example", "https://auth.example/token", "registry", "repository:team/app:pull")
    cache.put(key, "token-a", 300)
    assert cache.get(key) == "token-a"
    for other in (key._replace(registry="other.example"), key._replace(realm="https://evil.example/token"),
                  key._replace(service="storage"), key._replace(scope="repository:other/private:pull")):
        assert cache.get(other) is None
    now[0] = 295.0  # within the margin of expiry
    assert cache.get(key) is None


@pytest.mark.parametrize("expires_in, lifetime", [(300, 300), (1, 1), (None, 60), (0, 60), (-5, 60)])
def test_a_token_is_kept_for_its_lifetime_less_the_margin(expires_in: float | None, lifetime: float) -> None:
    """expires_in as the token service gave it; none, zero or negative means the default 60 s
    (the Distribution token spec's); a token is not reused in its last 10 seconds."""
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    key = TokenKey("registry.example", "https://auth.example/token", "registry", "repository:team/app:pull")
    cache.put(key, "token-a", expires_in)
    if lifetime > 10:
        now[0] = 1000.0 + lifetime - 10 - 0.001
        assert cache.get(key) == "token-a"
        now[0] = 1000.0 + lifetime - 10
    assert cache.get(key) is None  # a token shorter-lived than the margin is never reused
    cache.put(key, "token-b", expires_in)
    cache.drop(key)
    assert cache.get(key) is None
    cache.drop(key)  # dropping what is not there (any more) is no error


def test_refusals_say_what_was_refused_and_quote_the_realm_bounded() -> None:
    long_realm = "ftp://auth.example/" + "a" * 500
    with pytest.raises(AuthError) as caught:
        token_realm(bearer(long_realm), settings("registry.example"), "registry.example")
    message = caught.value.message
    assert "not an http(s) URL of a host without user info: no credentials sent" in message
    assert repr(long_realm[:200]) + "..." in message and long_realm not in message
    short_realm = "http://auth.example/" + "b" * 180  # exactly 200 characters: quoted whole
    assert len(short_realm) == 200
    with pytest.raises(AuthError) as caught:
        token_realm(bearer(short_realm), settings("registry.example"), "registry.example")
    assert f"{short_realm!r} over plain http: refusing to send credentials in cleartext" in caught.value.message
    assert caught.value.hint == ("The token realm must be https, unless it is on the host of a registry configured "
                                 "'insecure: true' (or both are on loopback).")


def test_docker_config_credentials_by_registry_host() -> None:
    """config.json's auths as `docker login` writes them: base64 user:password (the password may
    hold colons) or username/password fields, keyed by host, URL or Docker Hub's legacy names;
    entries without credentials (a credential helper's) and odd entries are passed over."""
    from analyzerd.registry.auth import docker_config_credentials

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()
    config = {"auths": {
        "helper.example": {},  # credsStore keeps it elsewhere
        "odd.example": "not an object",
        "half.example": {"username": "carol"},  # no password: not credentials
        "registry.example:5000": {"auth": b64("alice:pa:ss")},
        "https://other.example/v1/": {"username": "bob", "password": "secret"},
        "http://plain.example:5000/v2/": {"auth": b64("dave:pw")},
        "https://deep.example/a/b/": {"auth": b64("erin:pw")},
        "https://index.docker.io/v1/": {"auth": b64("hubuser:hubpass")},
        "empty.example": {"auth": ""},
    }}
    found = docker_config_credentials(json.dumps(config), "/root/.docker/config.json")
    assert {host: (c.username, c.password) for host, c in found.items()} == {
        "registry.example:5000": ("alice", "pa:ss"), "other.example": ("bob", "secret"),
        "plain.example:5000": ("dave", "pw"), "deep.example": ("erin", "pw"), "docker.io": ("hubuser", "hubpass")}
    assert docker_config_credentials('{"credsStore": "desktop"}', "c.json") == {}
    assert docker_config_credentials('["not", "an", "object"]', "c.json") == {}
    assert Credentials("u", "p").basic() == "Basic dTpw"


@pytest.mark.parametrize("key", ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io",
                                 "https://registry-1.docker.io", "https://index.docker.io/v1/access-token"])
def test_docker_hubs_spellings_in_a_docker_config_are_docker_io(key: str) -> None:
    from analyzerd.registry.auth import docker_config_credentials
    config = {"auths": {key: {"username": "hubuser", "password": "hubpass"}}}
    assert list(docker_config_credentials(json.dumps(config), "c.json")) == ["docker.io"]


@pytest.mark.parametrize("text, message", [
    ("{not json", "docker config /c.json is not valid JSON"),
    ('{"auths": {"r.example": {"auth": "abc"}}}',  # bad padding
     "docker config /c.json: auths['r.example']: 'auth' is not base64 of user:password"),
    ('{"auths": {"r.example": {"auth": "' + base64.b64encode(b"\xff:\xfe").decode() + '"}}}',  # not UTF-8
     "docker config /c.json: auths['r.example']: 'auth' is not base64 of user:password"),
    ('{"auths": {"r.example": {"auth": "%%%"}}}', "docker config /c.json: auths['r.example']: 'auth' is not base64"),
    ('{"auths": {"r.example": {"auth": "' + base64.b64encode(b"no-colon").decode() + '"}}}',
     "docker config /c.json: auths['r.example']: 'auth' is not base64 of user:password"),
])
def test_a_broken_docker_config_is_refused_naming_file_and_entry(text: str, message: str) -> None:
    from analyzerd.errors import ConfigError
    from analyzerd.registry.auth import docker_config_credentials
    with pytest.raises(ConfigError) as caught:
        docker_config_credentials(text, "/c.json")
    assert message in caught.value.message


def test_a_redirect_targets_challenge_is_an_error_naming_that_host_or_quoting_its_url() -> None:
    from analyzerd.registry.auth import redirect_challenge_error
    error = redirect_challenge_error("blob r.example/team/app:1", "https://storage.example:8443/blob?sig=1",
                                     "r.example", 401)
    assert error.message == (
        "unauthorized: blob r.example/team/app:1: storage.example:8443, where registry r.example redirected the "
        "download, asked for credentials (HTTP 401); credentials go only to r.example and its token realm, so none "
        "were sent") and error.status == 401
    assert ": '/relative', where registry" in redirect_challenge_error("blob x", "/relative", "r.example", 403).message
