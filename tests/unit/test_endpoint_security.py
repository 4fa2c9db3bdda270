"""The HTTP endpoint's defences, on their own: the failed-login limiter (a fake clock), the
client key, the dummy password hash, the TLS and limiter config keys, the job-request
validation that `submit` and POST /v1/jobs share, and the JSON error middleware."""

import asyncio
import base64

import pytest
from aiohttp import test_utils, web

from analyzerd.config import parse_config
from analyzerd.errors import ConfigError, InvalidJobError
from analyzerd.http import LoginLimiter, client_key, is_loopback, json_errors
from analyzerd.passwords import check_password_hash, dummy_hash, hash_password, verify_password
from analyzerd.submission import MAX_PLATFORM_LENGTH, validate_job_request


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def fail(limiter, client):
    assert limiter.acquire(client) is None
    return limiter.release(client, failed=True)


def test_limiter_refuses_after_the_limit_until_the_window_ends():
    clock = Clock()
    limiter = LoginLimiter(3, 60, clock=clock)
    assert [fail(limiter, "a") for _ in range(3)] == [False, False, True]
    assert limiter.acquire("a") == 60
    clock.now += 59.5
    assert limiter.acquire("a") == 1  # Retry-After is whole seconds, never 0
    assert limiter.acquire("b") is None  # another client is not affected
    limiter.release("b", failed=False)
    clock.now += 0.5
    assert limiter.acquire("a") is None
    limiter.release("a", failed=False)


def test_limiter_window_starts_at_the_first_failure_and_success_does_not_reset_it():
    clock = Clock()
    limiter = LoginLimiter(2, 10, clock=clock)
    fail(limiter, "a")
    clock.now += 8
    assert limiter.acquire("a") is None
    limiter.release("a", failed=False)  # a valid login in between
    fail(limiter, "a")
    assert limiter.acquire("a") == 2  # 10 s from the first failure


def test_limiter_counts_checks_under_way():
    limiter = LoginLimiter(3, 60, clock=Clock())
    assert [limiter.acquire("a") for _ in range(4)] == [None, None, None, 1]
    limiter.release("a", failed=False)
    assert limiter.acquire("a") is None


def test_limiter_tracks_a_bounded_number_of_clients():
    clock = Clock()
    limiter = LoginLimiter(1, 60, max_clients=100, clock=clock)
    for i in range(1000):
        fail(limiter, f"10.0.{i // 256}.{i % 256}")
        assert len(limiter) <= 100
    assert limiter.acquire("10.0.3.231") == 60  # the most recent are kept
    assert limiter.acquire("10.0.0.0") is None  # the oldest forgotten
    # successful clients take no room
    limiter = LoginLimiter(1, 60, max_clients=100, clock=clock)
    for i in range(1000):
        assert limiter.acquire(str(i)) is None
        limiter.release(str(i), failed=False)
    assert len(limiter) == 0


def test_limiter_release_of_a_forgotten_client_still_counts_its_failure():
    limiter = LoginLimiter(1, 60, max_clients=1, clock=Clock())
    assert limiter.acquire("a") is None
    assert limiter.acquire("b") is None  # "a" forgotten while its check runs
    assert limiter.release("a", failed=True) is True
    assert limiter.acquire("a") == 60


def test_client_key():
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key(None) == "-"


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.0.2.1", False), ("analyzer.example", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def shape(stored):
    _, n, r, p, salt, digest = stored.split(":")
    return n, r, p, len(base64.b64decode(salt)), len(base64.b64decode(digest))


def test_dummy_hash_has_the_users_parameters_and_matches_nothing():
    real = hash_password("pw")
    dummy = dummy_hash([real])
    assert shape(dummy) == shape(real) and dummy != dummy_hash([real])
    assert not verify_password("pw", dummy) and not verify_password("", dummy)
    assert check_password_hash("k", dummy) == dummy
    cheaper = "scrypt:1024:8:1:" + base64.b64encode(b"s" * 8).decode() + ":" + base64.b64encode(b"d" * 64).decode()
    assert shape(dummy_hash([cheaper, cheaper, real])) == ("1024", "8", "1", 8, 64)  # the most common
    assert shape(dummy_hash([])) == shape(real)


@pytest.mark.parametrize("stored, words", [
    ("hunter2", "not a password"),
    ("scrypt:16384:8:1:!!!:AAAA", "not a valid scrypt hash"),
    ("scrypt:1000:8:1:c2FsdA==:" + base64.b64encode(bytes(32)).decode(), "power of 2"),
    ("scrypt:16384:8:1:c2FsdA==:AAAA", "digest of 16 bytes"),
    ("scrypt:1048576:8:1:c2FsdA==:" + base64.b64encode(bytes(32)).decode(), "more than 64 MiB"),
])
def test_a_password_hash_scrypt_would_refuse_is_refused_at_load(stored, words):
    with pytest.raises(ConfigError, match=words) as info:
        check_password_hash("api_users.ops", stored)
    assert info.value.message.startswith("api_users.ops: ")


def analyzer(text, tmp_path=None):
    return parse_config({"services": {"analyzer": text}}).analyzer


def test_tls_and_limiter_keys(tmp_path):
    section = analyzer({})
    assert (section.ssl_enable, section.ssl_cert, section.ssl_key) == (False, "", "")
    assert (section.auth_failure_limit, section.auth_failure_window_seconds) == (10, 300)
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    section = analyzer({"ssl_enable": "true", "ssl_cert": str(cert), "ssl_key": str(key),
                        "auth_failure_limit": 5, "auth_failure_window_seconds": 30})
    assert (section.ssl_enable, section.ssl_cert, section.ssl_key) == (True, str(cert), str(key))
    assert (section.auth_failure_limit, section.auth_failure_window_seconds) == (5, 30)
    # Anchore's disabled TLS with paths left in place is fine
    assert analyzer({"ssl_enable": False, "ssl_cert": "/nowhere"}).ssl_enable is False


@pytest.mark.parametrize("values, error", [
    ({"ssl_enable": True}, "services.analyzer.ssl_cert: required when ssl_enable is true"),
    ({"ssl_enable": True, "ssl_cert": "CERT"}, "services.analyzer.ssl_key: required when ssl_enable is true"),
    ({"ssl_enable": True, "ssl_cert": "/nowhere.pem", "ssl_key": "KEY"},
     "services.analyzer.ssl_cert: /nowhere.pem does not exist"),
    ({"ssl_enable": "maybe"}, "services.analyzer.ssl_enable: expected true or false"),
    ({"auth_failure_limit": 0}, "services.analyzer.auth_failure_limit: must be at least 1"),
    ({"auth_failure_window_seconds": 0}, "services.analyzer.auth_failure_window_seconds: must be more than 0"),
])
def test_bad_tls_and_limiter_keys_are_refused_by_name(tmp_path, values, error):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    values = {k: str(cert) if v == "CERT" else v for k, v in values.items()}
    with pytest.raises(ConfigError) as info:
        analyzer(values)
    assert info.value.message.startswith(error)


def test_job_request_validation():
    job = validate_job_request(["oci:x:1", "registry.example/a/b:1"], " linux/arm64/v8 ")
    assert job.references == ("oci:x:1", "registry.example/a/b:1") and job.platform == "linux/arm64/v8"
    assert validate_job_request(("oci:x:1",)).platform is None
    cases = [
        (("oci:x:1",), "linux/", "platform"),
        (("oci:x:1",), "a/" + "b" * MAX_PLATFORM_LENGTH, "platform"),
        (("oci:x:1", ""), None, "images[1]"),
        (("oci:x:1", None), None, "images[1]"),
        ("oci:x:1", None, "images"),
        ((), None, "images"),
    ]
    for references, platform, field in cases:
        with pytest.raises(InvalidJobError) as info:
            validate_job_request(references, platform)
        assert info.value.field == field and info.value.message.startswith(f"{field}: ")
    with pytest.raises(InvalidJobError, match="^images: at most 2 images"):
        validate_job_request(["oci:x:1"] * 3, max_references=2)
    with pytest.raises(InvalidJobError, match=r"^REF\[0\]: invalid image reference") as info:
        validate_job_request(["no such thing!"], references_field="REF")
    assert info.value.hint and info.value.reference == "invalid-reference"  # the documented code for a bad reference


class Teapot(web.HTTPClientError):
    status_code = 418  # a status the endpoint has no code of its own for


def test_json_errors_answers_any_http_error_in_json_and_keeps_its_headers():
    async def raising(request):
        raise {"busy": web.HTTPServiceUnavailable(headers={"Retry-After": "7", "X-Other": "dropped"}),
               "teapot": Teapot(), "moved": web.HTTPFound("/elsewhere"),
               "headers": web.HTTPRequestHeaderFieldsTooLarge()}[request.match_info["what"]]

    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/{what}", raising)

    async def scenario():
        async with test_utils.TestClient(test_utils.TestServer(app)) as client:
            resp = await client.get("/busy")
            assert resp.status == 503 and resp.content_type == "application/json"
            assert resp.headers["Retry-After"] == "7" and "X-Other" not in resp.headers
            assert await resp.json() == {"error": "unavailable", "message": "Service Unavailable"}
            resp = await client.get("/headers")
            assert (await resp.json())["error"] == "request-header-fields-too-large"
            resp = await client.get("/teapot")
            assert resp.status == 418 and (await resp.json())["error"] == "im-a-teapot"
            resp = await client.get("/moved", allow_redirects=False)  # not an error: left alone
            assert resp.status == 302 and resp.headers["Location"] == "/elsewhere"
    asyncio.run(scenario())
