"""The registry-mode harness itself works, checked with plain urllib/ssl/http.client only."""

import base64
import hashlib
import http.client
import json
import os
import ssl
import urllib.error
import urllib.request

import pytest

from analyzerd.testing import LocalRegistry, Member, build_image, make_layer, push_image

from ..registry_modes import (BlobMirror, FaultProxy, TlsAuthRegistry, TokenAuthRegistry, fetch_bearer_token,
                              http_request, parse_challenge)

LAYER = os.urandom(300_000)  # incompressible: the gzip blob is about as big
IMAGE = build_image([make_layer([Member("etc/", kind="dir", mode=0o755), Member("etc/data.bin", LAYER),
                                 Member("etc/hello", b"hello\n")])])
BLOB = IMAGE.layers[0]
MANIFEST_ACCEPT = {"Accept": IMAGE.manifest.media_type}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- TLS + htpasswd ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory):
    pytest.importorskip("trustme")
    pytest.importorskip("bcrypt")
    reg = TlsAuthRegistry(str(tmp_path_factory.mktemp("tls-registry"))).start()
    yield reg
    reg.stop()


def test_tls_registry_requires_auth_and_the_ca(tls_registry):
    ctx = ssl.create_default_context(cafile=tls_registry.ca_path)
    status, headers, _ = http_request("GET", f"{tls_registry.url}/v2/", context=ctx)
    assert status == 401
    assert parse_challenge(headers["WWW-Authenticate"])[0] == "basic"

    wrong = {"Authorization": "Basic " + base64.b64encode(b"analyzer:nope").decode()}
    assert http_request("GET", f"{tls_registry.url}/v2/", headers=wrong, context=ctx)[0] == 401

    with pytest.raises(urllib.error.URLError) as info:  # the system trust store does not know the test CA
        urllib.request.urlopen(f"{tls_registry.url}/v2/", timeout=10, context=ssl.create_default_context())
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)

    ok = {"Authorization": tls_registry.authorization}
    assert http_request("GET", f"{tls_registry.url}/v2/", headers=ok, context=ctx)[0] == 200
    # the certificate also names localhost
    assert http_request("GET", f"https://localhost:{tls_registry.port}/v2/", headers=ok, context=ctx)[0] == 200


def test_tls_registry_push_and_pull(tls_registry):
    digest = tls_registry.push("tls/app", "v1", IMAGE, chunk_size=100_000)
    assert digest == IMAGE.manifest.digest
    ctx = tls_registry.ssl_context()
    auth = {"Authorization": tls_registry.authorization}
    status, headers, body = http_request("GET", f"{tls_registry.url}/v2/tls/app/manifests/v1",
                                         headers={**auth, **MANIFEST_ACCEPT}, context=ctx)
    assert status == 200 and headers["Docker-Content-Digest"] == digest and body == IMAGE.manifest.data
    status, _, body = http_request("GET", f"{tls_registry.url}/v2/tls/app/blobs/{BLOB.digest}", headers=auth,
                                   context=ctx, follow_redirects=True)
    assert status == 200 and sha256(body) == BLOB.digest
    assert http_request("GET", f"{tls_registry.url}/v2/tls/app/manifests/v1", context=ctx)[0] == 401


# -- token auth --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    pytest.importorskip("jwt")
    pytest.importorskip("cryptography")
    reg = TokenAuthRegistry(str(tmp_path_factory.mktemp("token-registry"))).start()
    reg.push("tok/app", "v1", IMAGE)
    yield reg
    reg.stop()


def test_token_server_and_bearer_flow(token_registry):
    reg = token_registry
    url = f"{reg.url}/v2/tok/app/manifests/v1"
    status, headers, _ = http_request("GET", url, headers=MANIFEST_ACCEPT)
    assert status == 401
    scheme, params = parse_challenge(headers["WWW-Authenticate"])
    assert scheme == "bearer"
    assert params == {"realm": reg.token_url, "service": reg.service, "scope": "repository:tok/app:pull"}

    before = len(reg.token_requests)
    token = fetch_bearer_token(headers["WWW-Authenticate"])  # anonymous pull
    assert reg.token_requests[before] == {"scope": "repository:tok/app:pull", "scopes": ["repository:tok/app:pull"],
                                          "service": reg.service, "user": None, "status": 200,
                                          "account": None, "method": "GET"}
    status, headers, body = http_request("GET", url, headers={**MANIFEST_ACCEPT, "Authorization": f"Bearer {token}"})
    assert status == 200 and body == IMAGE.manifest.data
    status, _, _ = http_request("HEAD", f"{reg.url}/v2/tok/app/blobs/{BLOB.digest}",
                                headers={"Authorization": f"Bearer {token}"})
    assert status == 200

    # an anonymous token does not allow pushing
    status, headers, _ = http_request("POST", f"{reg.url}/v2/tok/app/blobs/uploads/", b"",
                                      headers={"Authorization": f"Bearer {token}"})
    assert status == 401 and "insufficient_scope" in headers["WWW-Authenticate"]

    # the token response has the documented shape
    status, _, body = http_request("GET", f"{reg.token_url}?service={reg.service}&scope=repository:tok/app:pull",
                                   headers={"Authorization": reg.authorization})
    doc = json.loads(body)
    assert status == 200 and doc["token"] == doc["access_token"] and doc["expires_in"] == reg.token_ttl
    assert doc["issued_at"].endswith("Z") and reg.token_requests[-1]["user"] == reg.username


def test_token_server_rejects_a_wrong_password(token_registry):
    reg = token_registry
    status, headers, _ = http_request("GET", f"{reg.url}/v2/tok/app/manifests/v1")
    with pytest.raises(PermissionError, match="401"):
        fetch_bearer_token(headers["WWW-Authenticate"], reg.username, "wrong")
    assert reg.token_requests[-1]["status"] == 401 and reg.token_requests[-1]["user"] == reg.username
    # a token for another audience is refused by the registry
    bad = reg.issue_token([{"type": "repository", "name": "tok/app", "actions": ["pull"]}], audience="other")
    assert http_request("GET", f"{reg.url}/v2/tok/app/manifests/v1",
                        headers={**MANIFEST_ACCEPT, "Authorization": f"Bearer {bad}"})[0] == 401


def test_token_registry_without_anonymous_pull(tmp_path):
    pytest.importorskip("jwt")
    with TokenAuthRegistry(str(tmp_path), anonymous_pull=False) as reg:
        reg.push("private/app", "v1", IMAGE)
        status, headers, _ = http_request("GET", f"{reg.url}/v2/private/app/manifests/v1")
        assert status == 401
        with pytest.raises(PermissionError, match="401"):
            fetch_bearer_token(headers["WWW-Authenticate"])
        token = fetch_bearer_token(headers["WWW-Authenticate"], reg.username, reg.password)
        assert http_request("GET", f"{reg.url}/v2/private/app/manifests/v1",
                            headers={**MANIFEST_ACCEPT, "Authorization": f"Bearer {token}"})[0] == 200


# -- fault proxy -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory):
    reg = LocalRegistry(str(tmp_path_factory.mktemp("plain-registry"))).start()
    push_image(reg.url, "proxied/app", "v1", IMAGE)
    yield reg
    reg.stop()


@pytest.fixture
def proxy(plain_registry):
    p = FaultProxy(plain_registry.url).start()
    yield p
    p.stop()


def raw_get(host: str, path: str, headers=None):
    """GET with http.client: (status, headers, body, complete)."""
    conn = http.client.HTTPConnection(host, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        try:
            return resp.status, dict(resp.getheaders()), resp.read(), True
        except http.client.IncompleteRead as exc:
            return resp.status, dict(resp.getheaders()), exc.partial, False
    finally:
        conn.close()


def test_proxy_forwards_and_records(proxy):
    path = f"/v2/proxied/app/blobs/{BLOB.digest}"
    status, headers, body, complete = raw_get(proxy.host, path, {"Authorization": "Bearer abc"})
    assert (status, complete, sha256(body)) == (200, True, BLOB.digest)
    assert headers["Docker-Content-Digest"] == BLOB.digest and int(headers["Content-Length"]) == len(BLOB.data)
    assert proxy.requests[-1].method == "GET" and proxy.requests[-1].path == path
    assert proxy.requests[-1].headers["authorization"] == "Bearer abc"
    # manifests and HEAD go through too
    status, headers, body = http_request("GET", f"{proxy.url}/v2/proxied/app/manifests/v1", headers=MANIFEST_ACCEPT)
    assert status == 200 and body == IMAGE.manifest.data
    status, headers, body = http_request("HEAD", f"{proxy.url}{path}")
    assert status == 200 and body == b"" and headers["Content-Length"] == str(len(BLOB.data))


def test_proxy_drop_after_truncates_and_range_resumes(proxy):
    path = f"/v2/proxied/app/blobs/{BLOB.digest}"
    proxy.drop_after(1000)
    status, headers, body, complete = raw_get(proxy.host, path)
    assert status == 200 and not complete and len(body) == 1000
    assert int(headers["Content-Length"]) == len(BLOB.data)
    assert body == BLOB.data[:1000]
    # resume with a Range request: the 206 is relayed
    status, headers, rest, complete = raw_get(proxy.host, path, {"Range": "bytes=1000-"})
    assert status == 206 and complete
    assert headers["Content-Range"] == f"bytes 1000-{len(BLOB.data) - 1}/{len(BLOB.data)}"
    assert sha256(body + rest) == BLOB.digest
    assert proxy.injected == [("drop:1000", "GET", path)]


def test_proxy_corrupt_status_burst_and_reset(proxy):
    path = f"/v2/proxied/app/blobs/{BLOB.digest}"
    proxy.corrupt()
    status, _, body, complete = raw_get(proxy.host, path)
    assert status == 200 and complete and len(body) == len(BLOB.data) and sha256(body) != BLOB.digest
    assert sum(a != b for a, b in zip(body, BLOB.data)) == 1
    assert sha256(raw_get(proxy.host, path)[2]) == BLOB.digest  # only once

    proxy.status_burst(429, 2, retry_after=3)
    for _ in range(2):
        status, headers, body, _ = raw_get(proxy.host, path)
        assert status == 429 and headers["Retry-After"] == "3" and b"TOOMANYREQUESTS" in body
    assert raw_get(proxy.host, path)[0] == 200
    # manifests are untouched unless all_paths
    proxy.status_burst(503, 1)
    assert http_request("GET", f"{proxy.url}/v2/proxied/app/manifests/v1", headers=MANIFEST_ACCEPT)[0] == 200
    proxy.reset()
    assert raw_get(proxy.host, path)[0] == 200
    proxy.status_burst(503, 1, all_paths=True)
    assert http_request("GET", f"{proxy.url}/v2/proxied/app/manifests/v1", headers=MANIFEST_ACCEPT)[0] == 503


def test_proxy_redirects_blobs_to_a_mirror(proxy, plain_registry):
    with BlobMirror(plain_registry.url) as mirror:
        proxy.redirect_blobs_to(mirror.url)
        path = f"/v2/proxied/app/blobs/{BLOB.digest}"
        status, headers, _ = http_request("GET", f"{proxy.url}{path}", headers={"Authorization": "Bearer secret"})
        assert status == 307 and headers["Location"] == mirror.url + path
        # urllib drops Authorization when it follows a redirect to another host: the mirror sees none
        req = urllib.request.Request(f"{proxy.url}{path}")
        req.add_unredirected_header("Authorization", "Bearer secret")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert sha256(resp.read()) == BLOB.digest
        assert mirror.paths == [path] and "Authorization" not in mirror.requests[0]
        # ranges work at the mirror too
        status, headers, body = http_request("GET", mirror.url + path, headers={"Range": "bytes=0-9"})
        assert status == 206 and body == BLOB.data[:10]


def test_proxy_in_front_of_the_token_registry(token_registry):
    with FaultProxy(token_registry.url) as proxy:
        url = f"{proxy.url}/v2/tok/app/blobs/{BLOB.digest}"
        status, headers, _ = http_request("GET", url)
        assert status == 401 and f'realm="{token_registry.token_url}"' in headers["WWW-Authenticate"]
        token = fetch_bearer_token(headers["WWW-Authenticate"])
        status, _, body = http_request("GET", url, headers={"Authorization": f"Bearer {token}"})
        assert status == 200 and sha256(body) == BLOB.digest
        assert proxy.requests[-1].headers["Authorization"] == f"Bearer {token}"
