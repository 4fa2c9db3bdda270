"""The soak run of the service-operations acceptance, against ../shared/realworld's registry:
N daemons on one database, JOBS jobs over the realworld images (repeats included), one daemon
killed with SIGKILL every KILL_EVERY seconds and restarted. Checks that every job ends done,
that no job was completed twice (daemon logs), and that each image's results equal a clean
run's (`show --files --packages --secrets --json`) on a SQLite database of its own. Each
daemon has its own tmp_dir, as daemons on separate hosts would; with ``--db`` pointing at an
empty PostgreSQL database, the run is the multi-host one.

    python tools/soak.py [--daemons 3] [--jobs 200] [--kill-every 20] [--registry 127.0.0.1:5000] [--force]
                         [--db postgresql://user@host/db]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

IMAGES = ["debian-base:bookworm", "polyglot:1", "polyglot:1-zstd", "polyglot:1-v2s2", "polyglot:1-uncompressed",
          "multiarch:1", "bigger:1"]


def analyzerd(db: str, *args: str, config: str | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--config", config] if config else []
    return subprocess.run([sys.executable, "-m", "analyzerd", *extra, "--db", db, *args], capture_output=True,
                          text=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--daemons", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--kill-every", type=float, default=20.0)
    parser.add_argument("--registry", default="127.0.0.1:5000")
    parser.add_argument("--force", action="store_true",
                        help="submit with --force: repeats are analyzed again (reusing stored layers), "
                             "so the run lasts long enough for kills every 20 s to land")
    parser.add_argument("--db", help="the shared database (default: a new SQLite file); an empty one")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="analyzerd-soak-")
    db = args.db or os.path.join(work, "soak.db")
    config = os.path.join(work, "config.yaml")
    # one fingerprint key for every daemon and the clean run, as hosts sharing a database need
    common = (f"secret_search:\n  fingerprint_key_file: {work}/fingerprint.key\n"
              "services:\n  analyzer:\n    cycle_timer_seconds: 0.5\n    port: 0\n    lease_seconds: 15\n")
    with open(config, "w") as f:
        f.write(common)
    refs = [f"{args.registry}/{image}" for image in IMAGES]
    jobs = [refs[i % len(refs)] for i in range(args.jobs)]
    analyzerd(db, "submit", *jobs, *(["--force"] if args.force else []), config=config)

    def start(n: int) -> subprocess.Popen[bytes]:
        host_config = os.path.join(work, f"host-{n}.yaml")
        with open(host_config, "w") as f:
            f.write(f"tmp_dir: {work}/host-{n}\n" + common)
        os.makedirs(os.path.join(work, f"host-{n}"), exist_ok=True)
        log = open(os.path.join(work, f"daemon-{n}-{time.monotonic_ns()}.log"), "wb")
        return subprocess.Popen([sys.executable, "-m", "analyzerd", "--config", host_config, "--db", db, "run"],
                                stdout=log, stderr=subprocess.STDOUT)

    daemons = [start(n) for n in range(args.daemons)]
    started, kills, last_kill = time.monotonic(), 0, time.monotonic()
    while True:
        states = [j["status"] for j in json.loads(analyzerd(db, "jobs", "--json").stdout)["jobs"]]
        if all(s in ("done", "failed") for s in states):
            break
        if time.monotonic() - last_kill >= args.kill_every:
            daemons[0].send_signal(signal.SIGKILL)
            daemons[0].wait()
            daemons[0] = start(0)
            kills, last_kill = kills + 1, time.monotonic()
        time.sleep(1)
    for daemon in daemons:
        daemon.send_signal(signal.SIGTERM)
    for daemon in daemons:
        daemon.wait(timeout=60)
    final = json.loads(analyzerd(db, "jobs", "--json").stdout)["jobs"]
    statuses = {s: sum(j["status"] == s for j in final) for s in ("done", "failed")}
    completions: dict[str, int] = {}
    for name in os.listdir(work):
        if name.endswith(".log"):
            with open(os.path.join(work, name)) as f:
                for job in re.findall(r"event=job_done job=(\d+)", f.read()):
                    completions[job] = completions.get(job, 0) + 1
    twice = sorted(j for j, n in completions.items() if n > 1)
    clean_db = os.path.join(work, "clean.db")
    differing = []
    for ref in refs:
        ours = json.loads(analyzerd(db, "show", ref, "--json").stdout)
        clean = json.loads(analyzerd(clean_db, "analyze", ref, "--json", config=config).stdout)
        for key in ("files", "packages", "secrets"):
            if ours.get(key) != clean.get(key):
                differing.append(f"{ref} {key}")
    print(f"{len(final)} jobs in {time.monotonic() - started:.0f} s with {kills} SIGKILLs: {statuses}; "
          f"completed twice: {twice or 'none'}; results differing from a clean run: {differing or 'none'}")
    print(f"logs and databases: {work}")
    return 0 if statuses["done"] == len(final) and not twice and not differing else 1


if __name__ == "__main__":
    sys.exit(main())
