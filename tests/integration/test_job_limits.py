"""Every job ends: a try that runs past image_analyze_timeout_seconds fails (and the daemon
goes on with the next job), and a job whose daemons keep dying is failed after max_attempts
instead of killing daemon after daemon. Real registry, proxy, databases, processes, SIGKILL."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from analyzerd import analyze
from analyzerd.analyze import ImageAnalyzer
from analyzerd.config import parse_config
from analyzerd.testing import Member, build_image, make_layer, push_image
from tests.integration.test_end_to_end import ROOT
from tests.integration.test_store import sql
from tests.registry_modes import FaultProxy

#: A layer that trickles through the proxy for seconds (192 pieces of 64 KiB, a pause before each).
SLOW_LAYER_BYTES = 12 << 20


def start_daemon(database, directory, name, settings):
    directory.mkdir(exist_ok=True)
    config = directory / f"{name}.yaml"
    config.write_text("services:\n  analyzer:\n    cycle_timer_seconds: 0.1\n    port: 0\n"
                      "    shutdown_grace_seconds: 1\n" + "".join(f"    {k}: {v}\n" for k, v in settings.items()))
    log = open(directory / f"{name}-{time.monotonic_ns()}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "analyzerd", "--config", str(config), "--db", database, "run"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def logs(directory):
    return "\n".join(path.read_text() for path in sorted(directory.glob("*.log")))


def wait_for_jobs_to_end(cli, ids, seconds, env=None):
    deadline = time.monotonic() + seconds
    while True:
        jobs = {j["id"]: j for j in json.loads(cli("jobs", "--json", env=env).stdout)["jobs"]}
        if all(jobs[i]["status"] in ("done", "failed") for i in ids):
            return jobs
        assert time.monotonic() < deadline, [jobs[i] for i in ids]
        time.sleep(0.3)


@pytest.fixture
def slow_image(registry):
    """A proxy in front of the registry that serves blobs slowly, and an image that takes
    seconds to download through it."""
    push_image(registry.url, "limits/slow", "1", build_image([make_layer([Member("big", os.urandom(SLOW_LAYER_BYTES))])]))
    proxy = FaultProxy(registry.url).start()
    proxy.slow_blobs(0.03)
    try:
        yield proxy, f"{proxy.host}/limits/slow:1"
    finally:
        proxy.stop()


def test_a_job_past_its_time_limit_fails_and_the_daemon_takes_the_next(registry, slow_image, cli, db_path, tmp_path):
    """One job slot: the second job can only run once the timed-out one has given its slot
    (and its layer thread's CPU slot) back."""
    _, slow_ref = slow_image
    push_image(registry.url, "limits/fast", "1", build_image([make_layer([Member("etc/app.conf", b"x=1\n")])]))
    fast_ref = f"{registry.host}/limits/fast:1"
    ids = [int(line.split("\t")[0]) for line in cli("submit", slow_ref, fast_ref).stdout.splitlines()]
    directory = tmp_path / "logs"
    daemon = start_daemon(db_path, directory, "daemon", {"max_threads": 1, "max_concurrent_jobs": 1,
                                                         "image_analyze_timeout_seconds": 1.5})
    try:
        jobs = wait_for_jobs_to_end(cli, ids, 60)
        assert daemon.poll() is None  # still serving
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    slow, fast = jobs[ids[0]], jobs[ids[1]]
    assert slow["status"] == "failed" and slow["attempts"] == 1, slow  # not retried: it would time out again
    assert slow["error"].startswith(f"{slow_ref}: the analysis ran past services.analyzer."
                                    "image_analyze_timeout_seconds (1.5 s) and was stopped after "), slow["error"]
    assert "layers done" in slow["error"] and "MB received" in slow["error"]
    assert fast["status"] == "done" and fast["attempts"] == 1, fast
    text = logs(directory)
    assert f"event=job_timed_out ref={slow_ref} limit_seconds=1.5" in text
    assert "layer_thread_abandoned" not in text  # the layer thread saw the stop between two chunks
    assert sql(db_path, "SELECT analysis_status, analysis_error FROM images ORDER BY id") == [
        ("analysis_failed", slow["error"]), ("analyzed", None)]


def test_analyze_in_the_foreground_honours_the_time_limit(slow_image, cli, tmp_path):
    _, slow_ref = slow_image
    config = tmp_path / "config.yaml"
    config.write_text("services:\n  analyzer:\n    image_analyze_timeout_seconds: 1\n")
    proc = cli("--config", str(config), "analyze", slow_ref, "--quiet", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "error: timeout\n" in proc.stderr
    assert "ran past services.analyzer.image_analyze_timeout_seconds (1 s) and was stopped after" in proc.stderr
    assert "hint: raise image_analyze_timeout_seconds" in proc.stderr


def test_a_thread_stuck_inside_one_call_is_left_behind_and_new_work_still_runs(monkeypatch):
    """Python cannot interrupt a thread inside one call (a parser chewing on hostile input).
    A stopped analysis waits a grace period for it, then leaves it to end on its own: the
    caller is free, and new work runs on a fresh executor though the only thread is busy."""
    monkeypatch.setattr(analyze, "THREAD_STOP_GRACE_SECONDS", 0.2)
    config = parse_config({"services": {"analyzer": {"max_threads": 1}}})

    async def go():
        analyzer = ImageAnalyzer(config, None, rule_set=None)  # type: ignore[arg-type]
        call_returns = threading.Event()
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await analyzer.in_thread(call_returns.wait)  # a call that does not return
            assert analyzer.abandoned_threads == 1
            assert await analyzer.in_thread(sum, [1, 2, 3]) == 6
        finally:
            call_returns.set()
        deadline = time.monotonic() + 30
        while analyzer.abandoned_threads:  # it ends when its call returns
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        analyzer.close()

    asyncio.run(go())


def test_a_job_whose_daemons_keep_dying_is_failed_after_max_attempts(registry, slow_image, database, cli, tmp_path):
    """Three daemons share a queue. Whichever daemon holds one particular job is SIGKILLed
    (as the OOM killer would), each time that job runs, and is started again. The job is
    tried max_attempts (3) times, then failed with its daemons' deaths as the error; every
    other job is done, each on its first try."""
    _, slow_ref = slow_image
    proxy_host = slow_ref.split("/")[0]
    for i in range(6):
        push_image(registry.url, f"limits/app{i}", "1",
                   build_image([make_layer([Member(f"app/{i}/{j}", os.urandom(20_000)) for j in range(5)])]))
    refs = [slow_ref] + [f"{proxy_host}/limits/app{i}:1" for i in range(6)]
    env = {"ANALYZERD_DB": database}
    ids = [int(line.split("\t")[0]) for line in cli("submit", *refs, env=env).stdout.splitlines()]
    poison = ids[0]
    directory = tmp_path / "logs"
    settings = {"lease_seconds": 5, "max_attempts": 3, "max_threads": 1}
    daemons = [start_daemon(database, directory, f"daemon-{n}", settings) for n in range(3)]
    killed = []  # the worker ids that held the poison job when their daemon was killed
    try:
        deadline = time.monotonic() + 90
        while True:
            [(status, worker, progress)] = sql(database, f"SELECT status, worker, progress FROM jobs WHERE id = {poison}")
            if status == "failed":
                break
            assert status != "done", "the job was meant to be killed each time it ran"
            downloading = status == "running" and json.loads(progress or "{}").get("bytes", 0) > 0
            if downloading and worker not in killed:  # mid-job: its layer is coming in
                n = next(n for n, d in enumerate(daemons) if f":{d.pid}:" in worker)
                daemons[n].send_signal(signal.SIGKILL)
                daemons[n].wait()
                killed.append(worker)
                daemons[n] = start_daemon(database, directory, f"daemon-{n}", settings)
            assert time.monotonic() < deadline, (status, worker, killed)
            time.sleep(0.05)
        jobs = wait_for_jobs_to_end(cli, ids, 60, env=env)
    finally:
        for daemon in daemons:
            daemon.send_signal(signal.SIGTERM)
        for daemon in daemons:
            daemon.wait(timeout=30)
    failed = jobs[poison]
    assert len(killed) == 3 and failed["attempts"] == 3 and failed["lease_expiries"] == 3, (failed, killed)
    assert failed["status"] == "failed" and failed["error"] == (
        f"the daemons analyzing this image died 3 times (lease expired each time); last worker {killed[-1]}")
    others = [jobs[i] for i in ids[1:]]
    assert [(j["status"], j["attempts"]) for j in others] == [("done", 1)] * len(others), logs(directory)
    assert f"event=job_failed job={poison} ref={slow_ref} attempts=3" in logs(directory)
