"""Daemons on one database (SQLite and PostgreSQL), killed with SIGKILL mid-job: every job
ends done, no job is completed twice, and the results equal a clean run's. (The full-size
run over ../shared/realworld is tools/soak.py.)"""

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
from tests.registry_modes import FaultProxy

CONFIG = ("services:\n  analyzer:\n    cycle_timer_seconds: 0.1\n    port: 0\n    lease_seconds: 5\n"
          "    shutdown_grace_seconds: 1\n")


@pytest.fixture
def cli_database(database):
    """The soak runs on both backends."""
    return database


def start(db_path, directory, n, tmp_dir=None):
    directory.mkdir(exist_ok=True)
    config = directory / f"daemon-{n}.yaml"
    config.write_text(CONFIG + (f"tmp_dir: {tmp_dir}\n" if tmp_dir else ""))
    log = open(directory / f"daemon-{n}-{time.monotonic_ns()}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "analyzerd", "--config", str(config), "--db", db_path, "run"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def test_three_daemons_with_one_killed_repeatedly_finish_every_job_once(registry, cli, cli_database, tmp_path):
    db_path = cli_database
    base = make_layer([Member(f"base/{j}", os.urandom(200_000)) for j in range(5)])  # shared by all
    for i in range(12):
        layers = [base, make_layer([Member(f"app/{i}/{j}", os.urandom(200_000)) for j in range(10)])]
        push_image(registry.url, f"soak/img{i}", "1", build_image(layers))
    proxy = FaultProxy(registry.url).start()
    proxy.slow_blobs(0.03)  # each image takes a second or two: kills land on running jobs
    refs = [f"{proxy.host}/soak/img{i}:1" for i in range(12)]
    jobs = [refs[k % len(refs)] for k in range(48)]  # repeats included
    cli("submit", *jobs)
    daemons = [start(db_path, tmp_path / "logs", n) for n in range(3)]
    kills = 0
    try:
        deadline = time.monotonic() + 240
        while True:
            states = [j["status"] for j in json.loads(cli("jobs", "--json").stdout)["jobs"]]
            if all(s in ("done", "failed") for s in states):
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.5)
            daemons[0].send_signal(signal.SIGKILL)  # power loss for one daemon, again and again
            daemons[0].wait()
            kills += 1
            daemons[0] = start(db_path, tmp_path / "logs", 0)
    finally:
        for daemon in daemons:
            daemon.send_signal(signal.SIGTERM)
        for daemon in daemons:
            daemon.wait(timeout=30)
        proxy.slow_blobs(0)
    assert kills >= 2
    final = json.loads(cli("jobs", "--json").stdout)["jobs"]
    assert [j["status"] for j in final] == ["done"] * len(jobs)
    completions = {}
    for log in (tmp_path / "logs").glob("*.log"):
        for job in re.findall(r"event=job_done job=(\d+)", log.read_text()):
            completions[job] = completions.get(job, 0) + 1
    assert sorted(completions) == sorted(str(j["id"]) for j in final)
    assert max(completions.values()) == 1  # no job completed twice

    # the results equal a clean run's
    proxy.stop()
    refs = [ref.replace(proxy.host, registry.host) for ref in refs]
    clean_db = str(tmp_path / "clean.db")
    for ref in refs:
        ours = json.loads(cli("show", ref.replace(registry.host, proxy.host), "--files", "--packages",
                              "--json").stdout)
        clean = json.loads(subprocess.run(
            [sys.executable, "-m", "analyzerd", "--db", clean_db, "analyze", ref, "--files", "--packages", "--json"],
            capture_output=True, text=True, cwd=ROOT, check=True).stdout)
        assert ours["files"] == clean["files"] and ours["packages"] == clean["packages"]
        assert ours["image"]["manifest_digest"] == clean["image"]["manifest_digest"]

