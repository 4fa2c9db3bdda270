"""PostgreSQL as many hosts use it: daemons in separate processes with separate tmp_dirs
sharing one queue, and `analyzerd migrate` from SQLite. (The store's and the exports'
suites run on both backends: tests/integration/test_store.py, test_export.py.)"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from analyzerd.testing import Member, build_image, make_layer, push_image
from tests.integration.test_end_to_end import ROOT
from tests.integration.test_soak import start
from tests.registry_modes import FaultProxy


def events(directory, event):
    """How many times each job id appears in ``event`` lines of the daemons' logs."""
    counts = {}
    for log in directory.glob("*.log"):
        for job in re.findall(rf"event={event} job=(\d+)", log.read_text()):
            counts[int(job)] = counts.get(int(job), 0) + 1
    return counts


def test_four_daemons_on_postgresql_take_each_of_100_jobs_once(registry, postgres, cli, tmp_path):
    """Four daemons, each with its own tmp_dir (hosts, as far as analyzerd can tell), on 100
    queued jobs: each job is taken exactly once; the daemon killed with SIGKILL mid-job
    leaves its job to another, which finishes it once the lease expires."""
    url = postgres.new_database()
    for i in range(24):
        layer = make_layer([Member(f"app/{i}/{j}", os.urandom(50_000)) for j in range(4)])
        push_image(registry.url, f"many/img{i}", "1", build_image([layer]))
    # the first job's image trickles for seconds through the proxy: the kill lands mid-job
    push_image(registry.url, "many/slow", "1", build_image([make_layer([Member("big", os.urandom(12 << 20))])]))
    proxy = FaultProxy(registry.url).start()
    proxy.slow_blobs(0.03)
    env = {"ANALYZERD_DB": url}
    jobs = [f"{proxy.host}/many/slow:1"] + [f"{proxy.host}/many/img{k % 24}:1" for k in range(99)]
    ids = [int(line.split("\t")[0]) for line in cli("submit", *jobs, env=env).stdout.splitlines()]
    logs = tmp_path / "logs"
    daemons = [start(url, logs, n, tmp_dir=tmp_path / f"host{n}") for n in range(4)]
    try:
        deadline = time.monotonic() + 60
        while True:  # whoever took the slow job dies with it
            slow = next(j for j in json.loads(cli("jobs", "--json", env=env).stdout)["jobs"] if j["id"] == ids[0])
            if slow["status"] == "running":
                break
            assert time.monotonic() < deadline, slow
            time.sleep(0.1)
        victim = next(d for d in daemons if f":{d.pid}:" in slow["worker"])
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        deadline = time.monotonic() + 240
        while True:
            final = json.loads(cli("jobs", "--json", env=env).stdout)["jobs"]
            if all(j["status"] in ("done", "failed") for j in final):
                break
            assert time.monotonic() < deadline, [j["status"] for j in final]
            time.sleep(0.5)
    finally:
        for daemon in daemons:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
        for daemon in daemons:
            daemon.wait(timeout=30)
        proxy.stop()
    assert sorted(j["id"] for j in final) == sorted(ids) and len(ids) == 100
    assert [j["status"] for j in final] == ["done"] * 100
    by_id = {j["id"]: j for j in final}
    slow_job = by_id[ids[0]]
    assert slow_job["attempts"] == 2 and f":{victim.pid}:" not in slow_job["worker"]
    assert all(by_id[i]["attempts"] == 1 for i in ids[1:])  # every other job taken exactly once
    started = events(logs, "job_started")
    assert started == {i: 2 if i == ids[0] else 1 for i in ids}
    assert events(logs, "job_done") == {i: 1 for i in ids}
    workers = {j["worker"] for j in final}
    assert len(workers) >= 2  # the work was shared


@pytest.fixture
def analyzed_sqlite(registry, cli, db_path, tmp_path):
    """A SQLite database with two analyzed images that share a layer (packages, a secret,
    files), a failed job and a queued one: what a single-host installation has."""
    from tests.integration.test_packages import base_layer
    from tests.integration.test_secrets import private_key_pem
    app = make_layer([
        Member("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
               b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n"),
        Member("root/.ssh/id_rsa", private_key_pem().encode(), mode=0o600),
        Member("srv/app/caf\u00e9 menu.txt", b"non-ASCII name\n")])
    push_image(registry.url, "migrate/app", "1", build_image([base_layer(), app]))
    push_image(registry.url, "migrate/base", "1", build_image([base_layer()]))
    refs = [f"{registry.host}/migrate/app:1", f"{registry.host}/migrate/base:1"]
    cli("submit", *refs, f"{registry.host}/migrate/absent:1")
    daemon = start(db_path, tmp_path / "logs", 0)
    try:
        assert cli("submit", "--wait", "--timeout", "60", *refs, check=False).returncode == 0
        deadline = time.monotonic() + 60
        while any(j["status"] != "done" and j["status"] != "failed"
                  for j in json.loads(cli("jobs", "--json").stdout)["jobs"]):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    cli("submit", f"{registry.host}/migrate/later:1")  # stays queued: no daemon runs now
    statuses = [j["status"] for j in json.loads(cli("jobs", "--json").stdout)["jobs"]]
    assert statuses == ["done", "done", "failed", "done", "done", "queued"]
    return refs


def snapshot(cli, refs, env=None):
    """What users read: the job list and, per image, show --json and every export."""
    out = {"jobs": [{k: v for k, v in j.items() if k != "progress"}
                    for j in json.loads(cli("jobs", "--json", env=env).stdout)["jobs"]]}
    for ref in refs:
        out[ref] = {"show": json.loads(cli("show", ref, "--json", env=env).stdout)}
        for fmt in ("cyclonedx-json", "spdx-json", "syft-json", "anchore-json"):
            document = json.loads(cli("export", ref, "--format", fmt, env=env).stdout)
            for section in (document.get("metadata"), document.get("creationInfo")):
                if section:  # the export's own time
                    section.pop("timestamp", None)
                    section.pop("created", None)
            out[ref][fmt] = document
    return out


def test_migrate_moves_jobs_and_results_into_postgresql(analyzed_sqlite, postgres, cli, db_path):
    url = postgres.new_database()
    env = {"ANALYZERD_DB": url}
    before = snapshot(cli, analyzed_sqlite)
    proc = cli("migrate", db_path, env=env)
    copied = dict(re.findall(r"^(\w+)\s+([\d,]+) rows$", proc.stdout, re.MULTILINE))
    assert copied["jobs"] == "6" and copied["images"] == "2" and int(copied["files"].replace(",", "")) > 10
    assert snapshot(cli, analyzed_sqlite, env=env) == before
    # ids continue after the copied ones; the queued job is claimable there
    assert cli("submit", "example.invalid/next:1", env=env).stdout.split("\t")[0] == "7"
    # the secret is found there as it was here, fingerprint included
    secrets = json.loads(cli("show", analyzed_sqlite[0], "--secrets", "--json", env=env).stdout)["secrets"]
    assert [s["path"] for s in secrets] == ["/root/.ssh/id_rsa"]

    again = cli("migrate", db_path, env=env, check=False)
    assert again.returncode != 0 and "already has rows in jobs" in again.stderr
    assert len(json.loads(cli("jobs", "--json", env=env).stdout)["jobs"]) == 7  # nothing lost or doubled


def test_migrate_refuses_what_it_cannot_do(postgres, cli, tmp_path, db_path):
    url = postgres.new_database()
    missing = cli("migrate", str(tmp_path / "absent.db"), env={"ANALYZERD_DB": url}, check=False)
    assert missing.returncode != 0 and "no SQLite database at" in missing.stderr
    to_sqlite = cli("migrate", str(tmp_path / "absent.db"), check=False)
    assert to_sqlite.returncode != 0 and "destination must be a postgresql://" in to_sqlite.stderr


def test_the_password_comes_from_the_environment_or_a_file_and_is_never_printed(postgres, cli, tmp_path):
    url = postgres.new_database()
    bare = url.replace(f":{postgres.PASSWORD}@", "@")
    assert bare != url
    refused = cli("--db", bare, "jobs", check=False, env={"PGPASSWORD": "", "PGPASSFILE": "/nonexistent"})
    assert refused.returncode != 0 and "password" in refused.stderr and bare.split("@")[1] in refused.stderr

    assert cli("--db", bare, "submit", "example.invalid/a:1",
               env={"ANALYZERD_DATABASE_PASSWORD": postgres.PASSWORD}).returncode == 0
    secret = tmp_path / "db-password"
    secret.write_text(postgres.PASSWORD + "\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"database: {bare}\ndatabase_password_file: {secret}\n")
    jobs = json.loads(cli("--config", str(config), "jobs", "--json", env={"ANALYZERD_DB": ""}).stdout)["jobs"]
    assert [j["reference"] for j in jobs] == ["example.invalid/a:1"]

    config.write_text(f"database: {url}\n")
    shown = cli("--config", str(config), "config", "--json", env={"ANALYZERD_DB": ""}).stdout
    assert postgres.PASSWORD not in shown and json.loads(shown)["database"] == url.replace(postgres.PASSWORD, "***")
    shown = cli("--config", str(config), "config", env={"ANALYZERD_DB": ""}).stdout
    assert postgres.PASSWORD not in shown and "database: " + url.replace(":" + postgres.PASSWORD, "") in shown
    wrong = cli("--db", url.replace(postgres.PASSWORD, "not-the-password"), "jobs", check=False)
    assert wrong.returncode != 0 and "not-the-password" not in wrong.stderr


def test_a_layer_analyzed_on_one_host_is_reused_on_another(registry, postgres, tmp_path):
    """Two hosts (separate processes and tmp_dirs) on one PostgreSQL database: the second
    image's base layer, analyzed by the first host, is neither downloaded nor analyzed again."""
    base = make_layer([Member(f"base/{j}", os.urandom(100_000)) for j in range(5)])
    first = build_image([base, make_layer([Member("app/one", b"one")])])
    second = build_image([base, make_layer([Member("app/two", b"two")])])
    push_image(registry.url, "shared/one", "1", first)
    push_image(registry.url, "shared/two", "1", second)
    proxy = FaultProxy(registry.url).start()
    url = postgres.new_database()
    try:
        outputs = []
        for host, name in (("a", "one"), ("b", "two")):
            config = tmp_path / f"{host}.yaml"
            config.write_text(f"tmp_dir: {tmp_path / host}\n")
            (tmp_path / host).mkdir()
            outputs.append(subprocess.run(
                [sys.executable, "-m", "analyzerd", "--config", str(config), "--db", url, "--log-level", "INFO",
                 "analyze", f"{proxy.host}/shared/{name}:1", "--json"], capture_output=True, text=True, cwd=ROOT, check=True))
        base_digest = first.layers[0].digest
        assert f"event=layer_reused layer={base_digest}" in outputs[1].stderr
        fetched = [r.path for r in proxy.blob_requests("GET")]
        assert sum(base_digest in path for path in fetched) == 1
        files = {f["path"] for f in json.loads(outputs[1].stdout)["files"]}
        assert {"/base/0", "/app/two"} <= files
    finally:
        proxy.stop()


def test_a_host_with_another_fingerprint_key_is_refused(registry, postgres, tmp_path):
    """Hosts sharing a database must share the secret-fingerprint key: the second host's own
    key would make every layer the first stored look stale to it, and its fingerprints
    incomparable. It is refused with the key file named; the same key works."""
    push_image(registry.url, "keys/app", "1", build_image([make_layer([Member("etc/app.conf", b"x=1\n")])]))
    url = postgres.new_database()

    def analyze(host, key):
        config = tmp_path / f"{host}.yaml"
        config.write_text(f"tmp_dir: {tmp_path}\nsecret_search:\n  fingerprint_key_file: {key}\n")
        return subprocess.run([sys.executable, "-m", "analyzerd", "--config", str(config), "--db", url, "analyze",
                               f"{registry.host}/keys/app:1", "--quiet"], capture_output=True, text=True, cwd=ROOT)

    assert analyze("a", tmp_path / "a.key").returncode == 0
    refused = analyze("b", tmp_path / "b.key")
    assert refused.returncode == 2
    assert f"{tmp_path / 'b.key'} is not the key the database" in refused.stderr and "hint: copy the key file" in refused.stderr
    (tmp_path / "c.key").write_bytes((tmp_path / "a.key").read_bytes())
    assert analyze("c", tmp_path / "c.key").returncode == 0
