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

        deadline = time.monotonic() + 60
        while True:
            status, body, _ = request(base + "/status", auth=auth)
            document = json.loads(body)
            if document["jobs"].get("done") == 1:
                break
            assert time.monotonic() < deadline, document
            time.sleep(0.2)
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
