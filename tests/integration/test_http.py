"""The daemon's HTTP endpoint, over real HTTP: /health without auth, /status and /metrics
behind Basic auth (a hashed password in config), and POST /v1/jobs queuing an image the
daemon then analyzes."""

import base64
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from analyzerd.passwords import hash_password
from tests.integration.test_end_to_end import ROOT


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, *, auth=None, data=None):
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode(), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def test_health_status_metrics_and_submit_with_basic_auth(tmp_path, db_path):
    port = free_port()
    config = tmp_path / "daemon.yaml"
    config.write_text(
        f"api_users:\n  ops: '{hash_password('correct horse')}'\n"
        f"services:\n  analyzer:\n    cycle_timer_seconds: 0.2\n    require_auth: true\n"
        f"    listen: 127.0.0.1\n    port: {port}\n")
    log = open(tmp_path / "daemon.log", "wb")
    daemon = subprocess.Popen([sys.executable, "-m", "analyzerd", "--config", str(config), "--db", db_path, "run"],
                              stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body, _ = request(base + "/health")
                break
            except OSError:
                assert time.monotonic() < deadline and daemon.poll() is None
                time.sleep(0.1)
        assert status == 200 and json.loads(body)["status"] == "ok"

        for path in ("/status", "/metrics"):
            status, _, headers = request(base + path)
            assert status == 401 and "Basic" in headers["WWW-Authenticate"]
            assert request(base + path, auth=("ops", "wrong"))[0] == 401
            assert request(base + path, auth=("nobody", "correct horse"))[0] == 401
        assert request(base + "/v1/jobs", data={"images": ["oci:examples/sample-image:1"]})[0] == 401

        auth = ("ops", "correct horse")
        status, body, _ = request(base + "/v1/jobs", auth=auth, data={"images": ["oci:examples/sample-image:1"]})
        assert status == 201, body
        job_id = json.loads(body)["jobs"][0]
        assert request(base + "/v1/jobs", auth=auth, data={"images": ["not a reference!"]})[0] == 400
        assert request(base + "/v1/jobs", auth=auth, data=["x"])[0] == 400

        # the job is followed over HTTP, by its id, until the daemon is done with it
        for path in (f"/v1/jobs/{job_id}", "/v1/jobs?status=done"):
            status, body, headers = request(base + path)
            assert status == 401 and json.loads(body)["error"] == "unauthorized" and "Basic" in headers["WWW-Authenticate"]
        seen = []
        deadline = time.monotonic() + 60
        while True:
            status, body, headers = request(f"{base}/v1/jobs/{job_id}", auth=auth)
            assert status == 200 and headers["Content-Type"].startswith("application/json"), body
            job = json.loads(body)
            seen.append(job["status"])
            if job["status"] == "done":
                break
            assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
            time.sleep(0.1)
        assert seen[-1] == "done" and set(seen) <= {"queued", "running", "done"}
        assert job["id"] == job_id and job["reference"] == "oci:examples/sample-image:1"
        assert job["image_digest"].startswith("sha256:") and job["error"] is None and job["finished_at"]
        _, body, _ = request(base + "/v1/jobs?status=done", auth=auth)
        assert json.loads(body)["jobs"] == [job]
        for other in ("queued", "running", "failed"):
            assert json.loads(request(f"{base}/v1/jobs?status={other}", auth=auth)[1])["jobs"] == [], other
        # the same document as the CLI's (one serializer: Job.as_dict)
        cli = subprocess.run([sys.executable, "-m", "analyzerd", "--db", db_path, "jobs", "--json"],
                             capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
        assert json.loads(cli.stdout)["jobs"] == [job]

        status, body, _ = request(base + "/status", auth=auth)
        document = json.loads(body)
        assert document["jobs"] == {"done": 1}
        assert document["running"] == [] and document["version"]

        status, text, headers = request(base + "/metrics", auth=auth)
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        # parsed by the Prometheus client library's own exposition-format parser
        from prometheus_client.parser import text_string_to_metric_families
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["analyzerd_analysis_seconds"].type == "histogram"
        assert families["analyzerd_images"].type == "counter" and families["analyzerd_jobs"].type == "gauge"
        values = {}
        for family in families.values():
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                values[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
        assert values['analyzerd_jobs{status="done"}'] == 1
        assert values['analyzerd_images_total{result="analyzed"}'] == 1
        assert values["analyzerd_files_processed_total"] > 0
        assert values['analyzerd_analysis_seconds_bucket{le="+Inf"}'] == 1
        assert values["analyzerd_analysis_seconds_count"] == 1
        assert job_id == 1
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    assert b"correct horse" not in (tmp_path / "daemon.log").read_bytes()


def test_a_plain_password_in_config_is_refused(tmp_path, db_path):
    config = tmp_path / "bad.yaml"
    config.write_text("api_users:\n  ops: hunter2\n")
    proc = subprocess.run([sys.executable, "-m", "analyzerd", "--config", str(config), "config"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and "api_users.ops: expected a hash" in proc.stderr


# -- hardening: the endpoint in this process (a real server and a real aiohttp client), so a
# test can see which password checks ran; and the daemon itself for TLS ---------------------

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import ssl  # noqa: E402
import threading  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import aiohttp  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from aiohttp import web  # noqa: E402

import analyzerd.http  # noqa: E402
from analyzerd.config import parse_config  # noqa: E402
from analyzerd.http import Metrics, make_app, serve  # noqa: E402
from analyzerd.passwords import verify_password  # noqa: E402
from analyzerd.store import open_store  # noqa: E402

PASSWORD = "correct horse"
OPS_HASH = hash_password(PASSWORD)


@contextlib.asynccontextmanager
async def endpoint(db_path, analyzer_section="", users=None):
    """make_app over a real store, served on 127.0.0.1; yields its base URL."""
    users = {"ops": OPS_HASH} if users is None else users
    port = free_port()
    document = yaml.safe_load(f"services:\n  analyzer:\n    require_auth: true\n    port: {port}\n"
                              + "".join(f"    {line}\n" for line in analyzer_section.splitlines()))
    document["api_users"] = users
    config = parse_config(document)
    store = await open_store(config, db_path)
    svc = SimpleNamespace(config=config, metrics=Metrics(), store=store,
                          analyzer=SimpleNamespace(cache_stats=lambda: None))
    runner = web.AppRunner(make_app(svc, SimpleNamespace(id="test")))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await store.close()


def basic(user, password):
    return {"Authorization": aiohttp.encode_basic_auth(user, password)}


@pytest.fixture
def checks(monkeypatch):
    """Every password check the endpoint runs: (password, stored hash), in order."""
    ran = []

    def recording(password, stored):
        ran.append((password, stored))
        return verify_password(password, stored)

    monkeypatch.setattr(analyzerd.http, "verify_password", recording)
    return ran


def scrypt_parameters(stored):
    scheme, n, r, p, salt, digest = stored.split(":")
    return scheme, n, r, p, len(base64.b64decode(salt)), len(base64.b64decode(digest))


def test_an_unknown_user_costs_the_same_scrypt_check_as_a_known_one(db_path, checks):
    async def scenario():
        async with endpoint(db_path) as base, aiohttp.ClientSession() as http:
            async with http.get(base + "/status", headers=basic("nobody", "guess")) as resp:
                assert resp.status == 401
            assert len(checks) == 1  # before: an unknown user was refused with no check at all
            password, stored = checks[0]
            assert password == "guess" and stored != OPS_HASH
            assert scrypt_parameters(stored) == scrypt_parameters(OPS_HASH)

            async with http.get(base + "/status", headers=basic("ops", "guess")) as resp:
                assert resp.status == 401
            assert checks[1] == ("guess", OPS_HASH)
            async with http.get(base + "/status", headers=basic("ops", PASSWORD)) as resp:
                assert resp.status == 200
    asyncio.run(scenario())


def test_failed_logins_are_limited_per_client_then_allowed_again(db_path, checks, caplog):
    async def scenario():
        async with endpoint(db_path, "auth_failure_limit: 3\nauth_failure_window_seconds: 2") as base, \
                aiohttp.ClientSession() as http:
            for _ in range(3):
                async with http.get(base + "/status", headers=basic("ops", "wrong")) as resp:
                    assert resp.status == 401
            async with http.get(base + "/status", headers=basic("ops", "wrong")) as resp:
                assert resp.status == 429  # before: 401, and one more scrypt check, forever
                retry_after = int(resp.headers["Retry-After"])
                assert 1 <= retry_after <= 2
            # the right password waits too (else guesses could go on for free), without a check
            async with http.get(base + "/status", headers=basic("ops", PASSWORD)) as resp:
                assert resp.status == 429 and "Retry-After" in resp.headers
            async with http.get(base + "/health") as resp:
                assert resp.status == 200
            assert len(checks) == 3
            await asyncio.sleep(retry_after + 0.1)
            async with http.get(base + "/status", headers=basic("ops", PASSWORD)) as resp:
                assert resp.status == 200
    with caplog.at_level(logging.WARNING, logger="analyzerd.http"):
        asyncio.run(scenario())
    assert "event=http_login_limited client=127.0.0.1 failures=3" in caplog.text


def test_a_burst_of_failed_logins_starts_no_more_checks_than_tries_left(db_path, checks):
    async def scenario():
        async with endpoint(db_path, "auth_failure_limit: 5") as base, aiohttp.ClientSession() as http:
            async def attempt():
                async with http.get(base + "/status", headers=basic("nobody", "wrong")) as resp:
                    return resp.status
            statuses = await asyncio.gather(*(attempt() for _ in range(40)))
            assert sorted(set(statuses)) == [401, 429] and statuses.count(401) == 5
            assert len(checks) == 5
    asyncio.run(scenario())


def test_waiting_password_checks_are_bounded(db_path, monkeypatch):
    """Slow checks (scrypt under load) do not pile up: past the bound, 503 at once."""
    release = threading.Event()

    def slow(password, stored):
        release.wait(30)
        return False

    monkeypatch.setattr(analyzerd.http, "verify_password", slow)
    bound = analyzerd.http.MAX_CONCURRENT_PASSWORD_CHECKS + analyzerd.http.MAX_QUEUED_PASSWORD_CHECKS

    async def scenario():
        async with endpoint(db_path, "auth_failure_limit: 1000") as base, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            async def attempt():
                async with http.get(base + "/status", headers=basic("nobody", "wrong")) as resp:
                    return resp.status, resp.headers.get("Retry-After")
            tasks = [asyncio.ensure_future(attempt()) for _ in range(bound + 6)]
            done, _ = await asyncio.wait(tasks, timeout=20, return_when=asyncio.FIRST_COMPLETED)
            while sum(t.done() for t in tasks) < 6:
                await asyncio.sleep(0.05)
            early = [t.result() for t in tasks if t.done()]
            release.set()
            results = await asyncio.gather(*tasks)
            assert early == [(503, "1")] * 6
            assert sorted(results).count((401, None)) == bound
    try:
        asyncio.run(scenario())
    finally:
        release.set()


def test_submit_needs_a_json_content_type(db_path):
    body = json.dumps({"images": ["oci:examples/sample-image:1"]})

    async def scenario():
        async with endpoint(db_path) as base, aiohttp.ClientSession(headers=basic("ops", PASSWORD)) as http:
            # what a cross-site <form> or fetch() without a preflight can send
            for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
                async with http.post(base + "/v1/jobs", data=body, headers={"Content-Type": content_type}) as resp:
                    assert resp.status == 415, content_type  # before: 201, the job queued
                    assert resp.headers["Accept"] == "application/json"
            async with http.post(base + "/v1/jobs", data=body.encode()) as resp:  # no Content-Type
                assert resp.status == 415
            async with http.post(base + "/v1/jobs", data=body,
                                 headers={"Content-Type": "application/json; charset=utf-8"}) as resp:
                assert resp.status == 201 and (await resp.json())["jobs"] == [1]
    asyncio.run(scenario())


@pytest.mark.parametrize("body, field, words", [
    ({"images": ["oci:examples/sample-image:1", "not a reference!"]}, "images[1]", "invalid image reference"),
    ({"images": ["oci:x:1"], "platform": "linux"}, "platform", "os/architecture"),
    ({"images": ["oci:x:1"], "platform": 64}, "platform", "a string"),
    ({"images": []}, "images", "one or more"),
    ({"images": ["oci:x:1"] * 1001}, "images", "at most 1000"),
    ({"image": 7}, "image", "a string"),
    ({"images": ["oci:x:1"], "force": "false"}, "force", "true or false"),
    ({"images": ["oci:x:1"], "platfrom": "linux/arm64"}, "platfrom", "unknown field"),
])
def test_a_bad_submission_is_refused_naming_the_field(db_path, body, field, words):
    async def scenario():
        async with endpoint(db_path) as base, aiohttp.ClientSession(headers=basic("ops", PASSWORD)) as http:
            async with http.post(base + "/v1/jobs", json=body) as resp:
                document = await resp.json()
                assert resp.status == 400, document
                assert document["field"] == field and document["message"].startswith(f"{field}: ")
                assert words in document["message"]
                assert document["error"] == ("invalid-reference" if field == "images[1]" else "invalid-job")
    asyncio.run(scenario())


def test_cli_submit_refuses_what_the_endpoint_refuses(cli):
    proc = cli("submit", "--platform", "linux", "oci:examples/sample-image:1", check=False)
    assert proc.returncode == 2 and "error: invalid-job\n--platform: platform 'linux'" in proc.stderr
    proc = cli("submit", "oci:examples/sample-image:1", "not a reference!", check=False)
    assert proc.returncode == 2 and "error: invalid-reference\nREF[1]: invalid image reference" in proc.stderr
    proc = cli("submit", "--platform", "linux/arm64/v8", "oci:examples/sample-image:1")
    assert proc.stdout.startswith("1\t")


@pytest.mark.parametrize("require_auth, listen, expected", [
    (False, "0.0.0.0", "event=http_auth_disabled"),
    (True, "0.0.0.0", "event=http_cleartext"),
    (False, "127.0.0.1", None),
    (True, "127.0.0.1", None),
])
def test_an_endpoint_open_to_the_network_is_warned_about(db_path, caplog, require_auth, listen, expected):
    port = free_port()
    config = parse_config({"services": {"analyzer": {"require_auth": require_auth, "listen": listen,
                                                     "port": port}}})

    async def scenario():
        svc = SimpleNamespace(config=config, metrics=Metrics(), store=None, analyzer=None)
        runner = await serve(make_app(svc, SimpleNamespace(id="test")), config.analyzer)
        try:
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/health") as resp:
                assert resp.status == 200
        finally:
            await runner.cleanup()
    with caplog.at_level(logging.WARNING, logger="analyzerd.http"):
        asyncio.run(scenario())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if expected is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warnings[0].startswith(f"{expected} address={listen}:{port}")


def self_signed(directory, name="localhost"):
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def test_the_daemon_serves_tls_with_anchores_keys(tmp_path, db_path):
    cert, key = self_signed(tmp_path)
    port = free_port()
    config = tmp_path / "daemon.yaml"
    config.write_text(
        f"api_users:\n  ops: '{OPS_HASH}'\n"
        f"services:\n  analyzer:\n    cycle_timer_seconds: 0.2\n    require_auth: true\n"
        f"    listen: 127.0.0.1\n    port: {port}\n"
        f"    ssl_enable: true\n    ssl_cert: {cert}\n    ssl_key: {key}\n")
    log_path = tmp_path / "daemon.log"
    daemon = subprocess.Popen([sys.executable, "-m", "analyzerd", "--config", str(config), "--db", db_path, "run"],
                              stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, cwd=ROOT)
    trusted = ssl.create_default_context(cafile=str(cert))

    async def scenario():
        async with aiohttp.ClientSession(headers=basic("ops", PASSWORD)) as http:
            deadline = time.monotonic() + 30
            while b"event=http_listening" not in log_path.read_bytes():
                assert time.monotonic() < deadline and daemon.poll() is None, log_path.read_text()
                await asyncio.sleep(0.1)
            base = f"https://127.0.0.1:{port}"
            async with http.get(base + "/health", ssl=trusted) as resp:
                assert resp.status == 200 and resp.url.scheme == "https"
                assert resp.connection is None or resp.connection.transport.get_extra_info("ssl_object")
            async with http.post(base + "/v1/jobs", json={"images": ["oci:examples/sample-image:1"]},
                                 ssl=trusted) as resp:
                assert resp.status == 201, await resp.text()
            async with http.get(base + "/status", ssl=trusted) as resp:
                assert resp.status == 200 and (await resp.json())["version"]
            # a client that does not trust the certificate stops at the handshake
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with http.get(base + "/health"):
                    pass
            # and plain HTTP gets no answer
            with pytest.raises(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/health"):
                    pass
    try:
        asyncio.run(scenario())
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    assert b"event=http_listening address=127.0.0.1:%d tls=on" % port in log_path.read_bytes()


def test_a_certificate_that_does_not_fit_its_key_stops_the_daemon_naming_the_keys(tmp_path, db_path):
    cert, _ = self_signed(tmp_path, "one")
    _, other_key = self_signed(tmp_path, "two")
    config = tmp_path / "daemon.yaml"
    config.write_text(f"services:\n  analyzer:\n    listen: 127.0.0.1\n    port: {free_port()}\n"
                      f"    ssl_enable: true\n    ssl_cert: {cert}\n    ssl_key: {other_key}\n")
    proc = subprocess.run([sys.executable, "-m", "analyzerd", "--config", str(config), "--db", db_path, "run"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert "error: invalid-config\nservices.analyzer.ssl_cert, ssl_key: cannot use" in proc.stderr


def test_jobs_are_read_back_by_id_and_by_status(db_path):
    """GET /v1/jobs/{id} gives what `analyzerd jobs --json` gives for the job; GET /v1/jobs
    lists the newest first, of one status if asked; both need credentials."""
    async def scenario():
        async with endpoint(db_path) as base, aiohttp.ClientSession(headers=basic("ops", PASSWORD)) as http:
            async with http.post(base + "/v1/jobs", json={"images": ["oci:examples/sample-image:1", "alpine:3.20"],
                                                          "platform": "arm64"}) as resp:
                first, second = (await resp.json())["jobs"]
            async with http.get(f"{base}/v1/jobs/{second}") as resp:
                job = await resp.json()
                assert resp.status == 200
                assert (job["id"], job["reference"], job["status"], job["platform"]) == \
                    (second, "alpine:3.20", "queued", "linux/arm64")
            async with http.get(base + "/v1/jobs") as resp:
                assert [j["id"] for j in (await resp.json())["jobs"]] == [second, first]
            async with http.get(base + "/v1/jobs?status=queued&limit=1") as resp:
                assert [j["id"] for j in (await resp.json())["jobs"]] == [second]
            async with http.get(base + "/v1/jobs?status=done") as resp:
                assert (await resp.json())["jobs"] == []
            async with aiohttp.ClientSession() as anonymous:
                for path in (f"/v1/jobs/{first}", "/v1/jobs"):
                    async with anonymous.get(base + path) as resp:
                        assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"
                        assert resp.headers["WWW-Authenticate"] == 'Basic realm="analyzerd"'
            async with http.get(base + "/v1/jobs", headers=basic("ops", "wrong")) as resp:
                assert resp.status == 401
    asyncio.run(scenario())


BIG_BODY = b'{"images": ["' + b"a" * (2 * 1024 * 1024) + b'"]}'


@pytest.mark.parametrize("method, path, body, status, code, words", [
    ("GET", "/v1/jobs/999", None, 404, "not-found", "there is no job 999"),
    ("GET", "/v1/jobs/0999", None, 404, "not-found", "there is no job 999"),
    ("GET", "/v1/jobs/" + "9" * 19, None, 404, "not-found", "there is no job 9999999999999999999"),  # > 2**63-1
    ("GET", "/v1/jobs/" + "9" * 5000, None, 404, "not-found", "there is no job 99999"),
    ("GET", "/v1/jobs/abc", None, 400, "invalid-argument", "id: expected a job id (a number), got 'abc'"),
    ("GET", "/v1/jobs/-1", None, 400, "invalid-argument", "id: expected a job id"),
    ("GET", "/v1/jobs/%C2%B2", None, 400, "invalid-argument", "id: expected a job id"),  # '²' is a digit to Python
    ("GET", "/v1/jobs?status=finished", None, 400, "invalid-argument",
     "status: expected one of queued, running, done, failed, got 'finished'"),
    ("GET", "/v1/jobs?status=", None, 400, "invalid-argument", "status: expected one of"),
    ("GET", "/v1/jobs?limit=0", None, 400, "invalid-argument", "limit: expected 1 to 1000, got '0'"),
    ("GET", "/v1/jobs?limit=1001", None, 400, "invalid-argument", "limit: expected 1 to 1000"),
    ("GET", "/v1/jobs?limit=ten", None, 400, "invalid-argument", "limit: expected 1 to 1000"),
    ("GET", "/v1/jobs?limit=" + "1" * 5000, None, 400, "invalid-argument", "limit: expected 1 to 1000"),
    ("GET", "/v1/jobs?stauts=failed", None, 400, "invalid-argument", "stauts: unknown parameter"),
    ("GET", "/v1/nothing-here", None, 404, "not-found", "no such endpoint: GET /v1/nothing-here"),
    ("GET", "/", None, 404, "not-found", "no such endpoint: GET /"),
    ("POST", "/v1/jobs/", b"{}", 404, "not-found", "no such endpoint: POST /v1/jobs/"),
    ("DELETE", "/v1/jobs", None, 405, "method-not-allowed", "method not allowed: DELETE /v1/jobs"),
    ("PUT", "/v1/jobs/1", b"{}", 405, "method-not-allowed", "method not allowed: PUT /v1/jobs/1"),
    ("POST", "/v1/jobs", BIG_BODY, 413, "payload-too-large", "the request body is over 1 MiB"),
    ("POST", "/v1/jobs", b"{not json", 400, "invalid-job", "the body is not JSON"),
])
def test_every_error_is_a_json_body_with_a_code(db_path, method, path, body, status, code, words):
    async def scenario():
        async with endpoint(db_path) as base, aiohttp.ClientSession(headers=basic("ops", PASSWORD)) as http:
            headers = {"Content-Type": "application/json"} if body is not None else None
            async with http.request(method, base + path, data=body, headers=headers) as resp:
                assert resp.status == status
                assert resp.content_type == "application/json", await resp.text()
                document = await resp.json()
                assert document["error"] == code and words in document["message"], document
                assert set(document) <= {"error", "message", "field"}
                if status == 400 and code == "invalid-argument":
                    assert document["message"].startswith(document["field"] + ": ")
                if status == 405:
                    assert "GET" in resp.headers["Allow"] and resp.headers["Allow"] in document["message"]
    asyncio.run(scenario())


def test_auth_and_limit_errors_are_json_and_keep_their_headers(db_path):
    """401, 429, 415 and 503 answer in JSON too, with WWW-Authenticate, Retry-After, Accept."""
    async def scenario():
        async with endpoint(db_path, "auth_failure_limit: 1") as base, aiohttp.ClientSession() as http:
            async with http.get(base + "/v1/jobs") as resp:
                assert resp.status == 401 and resp.content_type == "application/json"
                assert resp.headers["WWW-Authenticate"] == 'Basic realm="analyzerd"'
                assert await resp.json() == {"error": "unauthorized", "message": "unauthorized"}
            async with http.get(base + "/no-such-route") as resp:  # routes are not told to strangers
                assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"
            async with http.get(base + "/v1/jobs", headers=basic("ops", "wrong")) as resp:
                assert resp.status == 401
            async with http.get(base + "/v1/jobs/1", headers=basic("ops", "wrong")) as resp:
                assert resp.status == 429 and resp.content_type == "application/json"
                assert int(resp.headers["Retry-After"]) >= 1
                document = await resp.json()
                assert document["error"] == "too-many-requests" and "retry after" in document["message"]
        async with endpoint(db_path) as base, aiohttp.ClientSession(headers=basic("ops", PASSWORD)) as http:
            async with http.post(base + "/v1/jobs", data="{}", headers={"Content-Type": "text/plain"}) as resp:
                assert resp.status == 415 and resp.headers["Accept"] == "application/json"
                assert (await resp.json())["error"] == "unsupported-media-type"
    asyncio.run(scenario())


def test_an_unexpected_error_is_a_json_500_that_tells_nothing_more(db_path, monkeypatch, caplog):
    from analyzerd.store import Store

    async def broken(self, job_id):
        raise RuntimeError("secret detail /var/lib/analyzerd")

    monkeypatch.setattr(Store, "get_job", broken)

    async def scenario():
        async with endpoint(db_path) as base, aiohttp.ClientSession(headers=basic("ops", PASSWORD)) as http:
            for accept in ("application/json", "text/html"):
                async with http.get(base + "/v1/jobs/1", headers={"Accept": accept}) as resp:
                    assert resp.status == 500 and resp.content_type == "application/json"
                    text = await resp.text()
                    assert json.loads(text)["error"] == "internal-error" and "secret detail" not in text
            async with http.get(base + "/v1/jobs") as resp:  # the endpoint goes on
                assert resp.status == 200
    with caplog.at_level(logging.ERROR, logger="analyzerd.http"):
        asyncio.run(scenario())
    assert "event=http_internal_error path=/v1/jobs/1 error=RuntimeError('secret detail" in caplog.text


def test_jobs_are_listed_newest_first_within_the_limit(db_path):
    async def scenario():
        async with endpoint(db_path) as base, aiohttp.ClientSession(headers=basic("ops", PASSWORD)) as http:
            async with http.post(base + "/v1/jobs", json={"images": [f"oci:x:{i}" for i in range(105)]}) as resp:
                ids = (await resp.json())["jobs"]
            async with http.get(base + "/v1/jobs") as resp:
                listed = [j["id"] for j in (await resp.json())["jobs"]]
                assert listed == ids[::-1][:100]  # DEFAULT_JOB_LIST
            async with http.get(base + "/v1/jobs?limit=1000&status=queued") as resp:
                assert [j["id"] for j in (await resp.json())["jobs"]] == ids[::-1]
            async with http.get(base + "/v1/jobs?limit=3") as resp:
                assert [j["id"] for j in (await resp.json())["jobs"]] == ids[::-1][:3]
    asyncio.run(scenario())
