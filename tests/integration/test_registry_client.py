"""The pull side against real registries: TLS with Basic auth, token auth with real JWTs,
and faults injected by a real proxy in front of the registry."""

import json
import os
import sqlite3

import pytest

from analyzerd.testing import Member, build_image, make_layer, push_image

from ..registry_modes import BlobMirror, FaultProxy, TlsAuthRegistry, TokenAuthRegistry

BIG = os.urandom(2 * 1024 * 1024)


def image_with_big_layer(tag_bytes=b""):
    return build_image([make_layer([Member("etc/os-release", b"ID=test\n" + tag_bytes)]),
                        make_layer([Member("opt/big.bin", BIG)])], compression=["gzip", "none"])


def write_config(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def files_of(proc):
    return {f["path"]: f for f in json.loads(proc.stdout)["files"]}


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory):
    pytest.importorskip("trustme")
    with TlsAuthRegistry(str(tmp_path_factory.mktemp("tls"))) as registry:
        registry.push("team/app", "1", image_with_big_layer())
        yield registry


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    pytest.importorskip("jwt")
    with TokenAuthRegistry(str(tmp_path_factory.mktemp("token")), token_ttl=300) as registry:
        registry.push("team/app", "1", image_with_big_layer(b"token"))
        yield registry


def test_tls_with_basic_auth_from_config(tls_registry, cli, tmp_path, db_path):
    config = write_config(tmp_path, f"""
registries:
  - host: {tls_registry.host}
    username: {tls_registry.username}
    password_env: TEST_REGISTRY_PASSWORD
    ca_cert: {tls_registry.ca_path}
""")
    env = {"TEST_REGISTRY_PASSWORD": tls_registry.password}
    proc = cli("--config", config, "--log-level", "DEBUG", "analyze", f"{tls_registry.host}/team/app:1", "--json",
               env=env)
    assert files_of(proc)["/opt/big.bin"]["size"] == len(BIG)
    # the password is nowhere: not in logs, output or the database
    assert tls_registry.password not in proc.stderr + proc.stdout
    with open(db_path, "rb") as f:
        assert tls_registry.password.encode() not in f.read()
    shown = cli("--config", config, "config", env=env).stdout
    assert tls_registry.password not in shown and "its password are not printed" in shown
    shown = cli("--config", config, "config", "--json", env=env).stdout
    assert tls_registry.password not in shown and "<hidden>" in shown


def test_tls_credentials_from_docker_config(tls_registry, cli, tmp_path):
    import base64
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    auth = base64.b64encode(f"{tls_registry.username}:{tls_registry.password}".encode()).decode()
    (docker_dir / "config.json").write_text(json.dumps({"auths": {f"https://{tls_registry.host}": {"auth": auth}}}))
    config = write_config(tmp_path, f"registries:\n  - host: {tls_registry.host}\n    ca_cert: {tls_registry.ca_path}\n")
    proc = cli("--config", config, "analyze", f"{tls_registry.host}/team/app:1", "--json",
               env={"DOCKER_CONFIG": str(docker_dir)})
    assert "/opt/big.bin" in files_of(proc)


def test_tls_is_verified_unless_insecure(tls_registry, cli, tmp_path):
    config = write_config(tmp_path, f"""
registries:
  - host: {tls_registry.host}
    username: {tls_registry.username}
    password: '{tls_registry.password}'
""")
    proc = cli("--config", config, "analyze", f"{tls_registry.host}/team/app:1", check=False)
    # a loopback host is tried over unverified HTTPS then HTTP, as Docker does: it works
    assert proc.returncode == 0, proc.stderr
    remote_like = write_config(tmp_path, f"""
registries:
  - host: {tls_registry.host}
    username: {tls_registry.username}
    password: '{tls_registry.password}'
    insecure: true
""", "insecure.yaml")
    assert cli("--config", remote_like, "analyze", f"{tls_registry.host}/team/app:1", check=False).returncode == 0


def test_wrong_password_fails_once_without_a_retry_storm(tls_registry, cli, tmp_path):
    before = tls_registry.read_log().count('"GET /v2/team/app/manifests/1')
    config = write_config(tmp_path, f"""
registries:
  - host: {tls_registry.host}
    username: {tls_registry.username}
    password: not-the-password
    ca_cert: {tls_registry.ca_path}
""")
    proc = cli("--config", config, "analyze", f"{tls_registry.host}/team/app:1", check=False)
    assert proc.returncode == 1
    assert "unauthorized" in proc.stderr.lower() and f"{tls_registry.host}/team/app:1" in proc.stderr
    assert "not-the-password" not in proc.stderr
    after = tls_registry.read_log().count('"GET /v2/team/app/manifests/1')
    assert after - before <= 1


def test_missing_credentials_say_how_to_add_them(tls_registry, cli, tmp_path):
    config = write_config(tmp_path, f"registries:\n  - host: {tls_registry.host}\n    ca_cert: {tls_registry.ca_path}\n")
    proc = cli("--config", config, "analyze", f"{tls_registry.host}/team/app:1", check=False,
               env={"DOCKER_CONFIG": str(tmp_path)})
    assert proc.returncode == 1 and "requires credentials" in proc.stderr and "hint:" in proc.stderr


def test_token_auth_anonymous_pull_caches_the_token(token_registry, cli):
    token_registry.token_requests.clear()
    proc = cli("analyze", f"{token_registry.host}/team/app:1", "--json")
    assert "/opt/big.bin" in files_of(proc)
    pulls = [r for r in token_registry.token_requests if r["scope"] == "repository:team/app:pull"]
    assert len(pulls) == 1 and pulls[0]["user"] is None  # one token for manifest, config and both layers


def test_token_auth_with_credentials_and_a_wrong_password(token_registry, cli, tmp_path):
    good = write_config(tmp_path, f"""
registries:
  - host: {token_registry.host}
    username: {token_registry.username}
    password: '{token_registry.password}'
""")
    token_registry.token_requests.clear()
    cli("--config", good, "analyze", f"{token_registry.host}/team/app:1")
    assert [r["user"] for r in token_registry.token_requests] == [token_registry.username]

    bad = write_config(tmp_path, f"""
registries:
  - host: {token_registry.host}
    username: {token_registry.username}
    password: wrong
""", "bad.yaml")
    token_registry.token_requests.clear()
    proc = cli("--config", bad, "analyze", f"{token_registry.host}/team/app:1", check=False)
    assert proc.returncode == 1 and "unauthorized" in proc.stderr
    assert f"user {token_registry.username!r}" in proc.stderr and "wrong" not in proc.stderr.replace("wrong password", "")
    assert len(token_registry.token_requests) == 1  # refused once, not retried


def test_missing_image_fails_once_with_manifest_unknown(token_registry, cli):
    proc = cli("analyze", f"{token_registry.host}/team/app:nope", check=False)
    assert proc.returncode == 3  # nothing matches
    assert f"manifest unknown: {token_registry.host}/team/app:nope" in proc.stderr
    assert "attempts" not in proc.stderr


# -- faults through a real proxy ------------------------------------------------------------

@pytest.fixture
def proxied(registry):
    image = image_with_big_layer(b"proxied")
    push_image(registry.url, "faults/app", "1", image)
    with FaultProxy(registry.url) as proxy:
        yield proxy, image


def test_a_download_broken_mid_blob_is_resumed_and_still_verified(proxied, cli):
    proxy, image = proxied
    proxy.drop_after(1_000_000, times=3)  # the config and the small layer come first, whole
    proc = cli("analyze", f"{proxy.host}/faults/app:1", "--json", "--log-level", "INFO")
    big = files_of(proc)["/opt/big.bin"]
    import hashlib
    assert big["sha256"] == hashlib.sha256(BIG).hexdigest()
    ranges = [r.headers.get("Range") for r in proxy.requests if "/blobs/" in r.path and r.method == "GET"]
    assert any(r and r.startswith("bytes=") for r in ranges), ranges
    assert "event=blob_resume" in proc.stderr


def test_429_with_retry_after_and_503_bursts_are_retried(proxied, cli):
    proxy, _ = proxied
    proxy.status_burst(429, times=1, retry_after=1, all_paths=True)
    cli("analyze", f"{proxy.host}/faults/app:1")
    proxy.reset()
    proxy.status_burst(503, times=2)
    cli("analyze", f"{proxy.host}/faults/app:1")


def test_503_beyond_the_retry_budget_fails_with_the_count(proxied, cli, tmp_path):
    proxy, _ = proxied
    proxy.status_burst(503, times=50)
    config = write_config(tmp_path, "registry_retries: 2\n")
    proc = cli("--config", config, "analyze", f"{proxy.host}/faults/app:1", check=False)
    assert proc.returncode == 1 and "HTTP 503" in proc.stderr and "after 2 attempts" in proc.stderr


def test_bytes_corrupted_in_flight_fail_the_job_and_nothing_is_stored(proxied, cli, db_path):
    proxy, image = proxied
    proxy.corrupt(times=10)
    proc = cli("analyze", f"{proxy.host}/faults/app:1", check=False)
    assert proc.returncode == 1 and "digest mismatch" in proc.stderr
    rows = sqlite3.connect(db_path).execute("SELECT analysis_status, file_count FROM images").fetchall()
    assert rows in ([], [("analysis_failed", None)])  # the config blob may be the first one hit
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM files").fetchone()[0] == 0


def test_blob_redirects_do_not_carry_the_registry_credentials(token_registry, cli, tmp_path):
    with BlobMirror(token_registry.url) as mirror, FaultProxy(token_registry.url) as proxy:
        proxy.redirect_blobs_to(mirror.url)
        config = write_config(tmp_path, f"""
registries:
  - host: {proxy.host}
    username: {token_registry.username}
    password: '{token_registry.password}'
""")
        proc = cli("--config", config, "analyze", f"{proxy.host}/team/app:1", "--json")
        assert "/opt/big.bin" in files_of(proc)
        assert mirror.requests, "the blobs were not fetched from the other host"
        assert all("authorization" not in {k.lower() for k in headers} for headers in mirror.requests)
        registry_side = [r for r in proxy.requests if "/manifests/" in r.path]
        assert registry_side and all("Authorization" in r.headers for r in registry_side)


@pytest.mark.parametrize("bare", [False, True], ids=["registry-body", "no-body"])
@pytest.mark.parametrize("where", ["/manifests/", "/blobs/sha256:"])
def test_429_with_retry_after_on_a_manifest_or_a_blob_is_waited_for_and_retried(proxied, cli, where, bare):
    """A registry's rate limit answers the manifest or blob request itself (not only the /v2/
    ping), with the registry's TOOMANYREQUESTS body or none (a proxy in front of it): the
    request is tried again after Retry-After, and the analysis succeeds."""
    proxy, image = proxied
    proxy.status_burst(429, times=2, retry_after=1, path_contains=where, bare=bare)
    document = json.loads(cli("analyze", f"{proxy.host}/faults/app:1", "--json").stdout)
    assert document["image"]["manifest_digest"] == image.manifest.digest
    hits = [r for r in proxy.requests if where in r.path and r.method == "GET"]
    limited = [(fault, path) for fault, _, path in proxy.injected if fault == "status:429"]
    assert len(limited) == 2 and all(where in path for _, path in limited)
    assert len(hits) >= 3  # two refused, then served
    assert hits[2].received_at - hits[0].received_at >= 1.9  # Retry-After: 1, twice
