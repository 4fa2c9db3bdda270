"""End to end against a real Distribution registry: push images built in code, analyze
them with the CLI and the daemon, and check every file against independent oracles."""

import glob
import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from analyzerd.testing import (Member, build_image, build_index, free_port, make_layer, push_blob,
                               push_image, push_manifest, raw_header, raw_member)

from ..helpers import filesystem_merge

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIG = os.urandom(3 * 1024 * 1024 + 17)  # spans many chunks


def hand_made_layer() -> bytes:
    """Headers tarfile does not write: v7 (no magic), base-256 uid, no end marker."""
    return b"".join([
        raw_member(raw_header(b"handmade/", magic=b"", mode=0o750, typeflag=b"5")),
        raw_member(raw_header(b"handmade/v7-file", size=11, magic=b""), b"v7 content\n"),
        raw_member(raw_header(b"handmade/base256-uid", size=3, uid=b"\x80" + (3_000_000).to_bytes(7, "big")), b"big"),
    ])


LAYER_MEMBERS = [
    ("gnu", [
        Member("etc/", kind="dir", mode=0o755), Member("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        Member("etc/old.conf", b"to be deleted"), Member("usr/", kind="dir"), Member("usr/lib/", kind="dir"),
        Member("usr/lib/plugins/", kind="dir"), Member("usr/lib/plugins/a.so", b"A" * 5000),
        Member("usr/lib/plugins/b.so", b"B" * 5000), Member("var/", kind="dir"), Member("var/cache/", kind="dir"),
        Member("var/cache/stale", b"stale"), Member("big.bin", BIG, mode=0o600, uid=1000, gid=1000),
        Member("usr/bin/", kind="dir"), Member("usr/bin/sudo", b"\x7fELF", mode=0o4755),
        Member("usr/bin/wall", b"\x7fELF", mode=0o2755, gid=5), Member("tmp/", kind="dir", mode=0o1777),
        Member("dev/", kind="dir"), Member("dev/null", kind="char", mode=0o666, devmajor=1, devminor=3),
        Member("dev/loop0", kind="block", mode=0o660, devmajor=7, devminor=0),
        Member("run/", kind="dir"), Member("run/fifo", kind="fifo", mode=0o600),
    ]),
    ("pax", [
        Member("etc/.wh.old.conf"), Member("usr/lib/plugins/.wh..wh..opq"), Member("usr/lib/plugins/c.so", b"C"),
        Member("srv/", kind="dir"), Member("srv/" + "long-directory-name/" * 8 + "file", b"long path"),
        Member("srv/caf\u00e9.txt", b"utf-8", uid=3_000_000, gid=3_000_000),
        Member("srv/link-to-big", kind="hardlink", link="big.bin"),
        Member("srv/dangling", kind="symlink", link="/nowhere/" + "x" * 150),
        Member("var/.wh.cache"),
    ]),
    ("ustar", [
        Member("usr/lib/plugins/.wh.c.so"), Member("opt/", kind="dir"), Member("opt/app.py", b"print('hi')\n"),
        Member("var/cache/", kind="dir", mode=0o700), Member("var/cache/fresh", b"new"),
    ]),
    ("raw", None),
]


def layer_tars():
    return [hand_made_layer() if fmt == "raw" else make_layer(members, fmt) for fmt, members in LAYER_MEMBERS]


def analyze_json(cli, ref, *extra):
    proc = cli("analyze", ref, "--json", *extra)
    return json.loads(proc.stdout)


def assert_matches_merge(document, tars, tmp_path):
    expected = filesystem_merge(tars, str(tmp_path / "merge"))
    files = {f["path"]: f for f in document["files"]}
    got = {}
    for path, f in files.items():
        if f["type"] in ("file", "hardlink"):
            got[path] = ("file", f["sha256"])
        elif f["type"] in ("dir", "symlink"):
            got[path] = (f["type"], f["link"] if f["type"] == "symlink" else None)
    assert got == expected
    return files


@pytest.mark.parametrize("compression, chunked", [("gzip", False), ("none", True), ("zstd", False),
                                                  (["gzip", "none", "zstd", "gzip"], True)])
def test_every_file_digest_and_attribute(registry, cli, tmp_path, compression, chunked):
    tars = layer_tars()
    image = build_image(tars, compression=compression)
    repo = f"e2e/flavours-{hashlib.sha1(repr(compression).encode()).hexdigest()[:8]}"
    digest = push_image(registry.url, repo, "1", image, chunk_size=1 << 20 if chunked else None)
    document = analyze_json(cli, f"{registry.host}/{repo}:1")
    assert document["image"]["manifest_digest"] == digest
    assert [layer["digest"] for layer in document["image"]["layers"]] == [b.digest for b in image.layers]
    assert [layer["diff_id"] for layer in document["image"]["layers"]] == image.diff_ids

    files = assert_matches_merge(document, tars, tmp_path)
    big = files["/big.bin"]
    assert (big["md5"], big["sha1"], big["sha256"]) == (
        hashlib.md5(BIG).hexdigest(), hashlib.sha1(BIG).hexdigest(), hashlib.sha256(BIG).hexdigest())
    assert (big["mode"], big["uid"], big["gid"], big["size"]) == ("0600", 1000, 1000, len(BIG))
    assert big["layer"] == image.layers[0].digest
    hard = files["/srv/link-to-big"]
    assert hard["type"] == "hardlink" and hard["link"] == "/big.bin" and hard["sha256"] == big["sha256"]
    assert hard["layer"] == image.layers[1].digest
    assert files["/usr/bin/sudo"]["mode"] == "4755" and files["/usr/bin/wall"]["mode"] == "2755"
    assert files["/tmp"]["mode"] == "1777"
    assert files["/dev/null"]["type"] == "char" and files["/dev/loop0"]["type"] == "block"
    assert files["/run/fifo"]["type"] == "fifo"
    assert files["/srv/caf\u00e9.txt"]["uid"] == 3_000_000
    assert files["/srv/dangling"]["link"] == "/nowhere/" + "x" * 150
    assert files["/handmade/base256-uid"]["uid"] == 3_000_000
    assert files["/handmade/v7-file"]["md5"] == hashlib.md5(b"v7 content\n").hexdigest()
    # whiteouts: deleted paths and whiteout markers are gone; opaque dir keeps only new entries
    assert "/etc/old.conf" not in files and "/var/cache/stale" not in files
    assert sorted(p for p in files if p.startswith("/usr/lib/plugins/")) == []
    assert files["/var/cache"]["mode"] == "0700" and "/var/cache/fresh" in files
    assert not any("/.wh." in p for p in files)

    # `show` prints what `analyze` stored, by reference and by digest
    shown = json.loads(cli("show", f"{registry.host}/{repo}:1", "--files", "--json").stdout)
    assert shown["files"] == document["files"]
    by_digest = json.loads(cli("show", digest, "--json").stdout)
    assert by_digest["files"] == document["files"]


def test_docker_schema2_and_multi_platform_index(registry, cli):
    amd = build_image([make_layer([Member("etc/image-platform", b"amd64\n")])], docker=True)
    arm = build_image([make_layer([Member("etc/image-platform", b"arm64\n")])], architecture="arm64",
                      variant="v8", docker=True)
    for image in (amd, arm):
        for blob in image.blobs():
            push_blob(registry.url, "e2e/multi", blob)
        push_manifest(registry.url, "e2e/multi", image.manifest.digest, image.manifest)
    index = build_index([amd, arm], ["linux/amd64", "linux/arm64/v8"])
    push_manifest(registry.url, "e2e/multi", "1", index)
    ref = f"{registry.host}/e2e/multi:1"

    default = analyze_json(cli, ref)
    assert default["image"]["platform"] == "linux/amd64"
    assert default["image"]["manifest_digest"] == amd.manifest.digest
    assert default["image"]["index_digest"] == index.digest
    marker = {f["path"]: f for f in default["files"]}["/etc/image-platform"]
    assert marker["sha256"] == hashlib.sha256(b"amd64\n").hexdigest()

    arm_doc = analyze_json(cli, ref, "--platform", "linux/arm64/v8")
    assert arm_doc["image"]["platform"] == "linux/arm64/v8"
    marker = {f["path"]: f for f in arm_doc["files"]}["/etc/image-platform"]
    assert marker["sha256"] == hashlib.sha256(b"arm64\n").hexdigest()

    missing = cli("analyze", ref, "--platform", "linux/s390x", check=False)
    assert missing.returncode == 3  # nothing matches
    assert "no image for platform linux/s390x" in missing.stderr and "linux/arm64/v8" in missing.stderr


def test_pinned_digest(registry, cli):
    image = build_image([make_layer([Member("pinned", b"by digest")])])
    digest = push_image(registry.url, "e2e/pinned", "1", image)
    document = analyze_json(cli, f"{registry.host}/e2e/pinned@{digest}")
    assert document["image"]["manifest_digest"] == digest


def test_oci_layout_source(cli):
    document = analyze_json(cli, "oci:examples/sample-image:1")
    files = {f["path"]: f for f in document["files"]}
    assert "/usr/bin/old-tool" not in files  # whited out by the second layer
    assert files["/usr/bin/hello-again"]["sha256"] == files["/usr/bin/hello"]["sha256"]
    assert files["/usr/bin/su-helper"]["mode"] == "4755"


def test_unknown_repository_and_tag(registry, cli):
    image = build_image([make_layer([Member("x", b"x")])])
    push_image(registry.url, "e2e/known", "1", image)
    ref = f"{registry.host}/e2e/known:nope"
    proc = cli("analyze", ref, check=False)
    assert proc.returncode == 3  # nothing matches
    assert f"manifest unknown: {ref}" in proc.stderr
    proc = cli("analyze", f"{registry.host}/e2e/never-pushed:1", check=False)
    assert proc.returncode == 3 and f"{registry.host}/e2e/never-pushed:1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_registry_fails_after_bounded_retries(cli, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("registry_retries: 2\n")
    ref = f"127.0.0.1:{free_port()}/nothing/here:1"
    started = time.monotonic()
    proc = cli("--config", str(config), "analyze", ref, check=False)
    assert proc.returncode == 1
    assert "cannot reach 127.0.0.1" in proc.stderr and "after 2 attempts" in proc.stderr and ref in proc.stderr
    assert time.monotonic() - started < 30


def test_truncated_gzip_layer_names_the_layer(registry, cli):
    tar = make_layer([Member("data", os.urandom(200_000))])
    image = build_image([tar])
    blob = image.layers[0]
    blob.data = blob.data[: len(blob.data) // 2]  # a valid blob whose content is a cut gzip
    image = build_image([tar])
    image.layers[0].data = blob.data
    manifest = json.loads(image.manifest.data)
    manifest["layers"][0].update(digest=image.layers[0].digest, size=len(blob.data))
    image.manifest.data = json.dumps(manifest).encode()
    push_image(registry.url, "e2e/truncated", "1", image)
    proc = cli("analyze", f"{registry.host}/e2e/truncated:1", check=False)
    assert proc.returncode == 1
    assert f"layer {image.layers[0].digest}: gzip stream truncated" in proc.stderr


def corrupt_stored_blob(registry, digest):
    """Flip a byte of the blob in the registry's storage: it serves it unverified."""
    hex_ = digest.split(":")[1]
    path, = glob.glob(os.path.join(registry.root, "storage", "**", "blobs", "sha256", hex_[:2], hex_, "data"),
                      recursive=True)
    with open(path, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))


def start_daemon(db_path, tmp_path, config_text="services:\n  analyzer:\n    cycle_timer_seconds: 0.2\n    port: 0\n"):
    config = tmp_path / "daemon.yaml"
    config.write_text(config_text)
    log = open(tmp_path / "daemon.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "analyzerd", "--config", str(config), "--db", db_path, "run"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return proc


def test_daemon_fails_a_corrupt_layer_and_serves_the_next_jobs(registry, cli, db_path, tmp_path):
    good = build_image([make_layer([Member("good", b"fine")])])
    bad = build_image([make_layer([Member("bad", os.urandom(100_000))])])
    push_image(registry.url, "e2e/daemon-good", "1", good)
    push_image(registry.url, "e2e/daemon-bad", "1", bad)
    corrupt_stored_blob(registry, bad.layers[0].digest)

    daemon = start_daemon(db_path, tmp_path)
    try:
        refs = [f"{registry.host}/e2e/daemon-bad:1", f"{registry.host}/e2e/daemon-good:1", "oci:examples/sample-image:1"]
        proc = cli("submit", "--wait", "--timeout", "60", *refs, check=False)
        assert proc.returncode == 1, proc.stderr
        assert f"layer {bad.layers[0].digest}: digest mismatch" in proc.stderr
        jobs = json.loads(cli("jobs", "--json").stdout)["jobs"]
        assert [j["status"] for j in jobs] == ["failed", "done", "done"]
        assert jobs[1]["image_digest"] == good.manifest.digest
        assert all(j["attempts"] == 1 for j in jobs)
        assert bad.layers[0].digest in jobs[0]["error"]
        # the failed image is recorded as such; the good one is queryable
        status = dict(sqlite3.connect(db_path).execute("SELECT manifest_digest, analysis_status FROM images"))
        assert status[bad.manifest.digest] == "analysis_failed" and status[good.manifest.digest] == "analyzed"
        shown = json.loads(cli("show", f"{registry.host}/e2e/daemon-good:1", "--json").stdout)
        assert [f["path"] for f in shown["files"]] == ["/good"]
        assert daemon.poll() is None, "the daemon must keep running"
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0


def test_submit_refuses_a_bad_reference(cli):
    proc = cli("submit", "Not A Reference", check=False)
    assert proc.returncode == 2 and "error: invalid-reference" in proc.stderr


def test_show_of_an_unknown_image(cli):
    proc = cli("show", "nothing:here", check=False)
    assert proc.returncode == 3 and "no analyzed image matches" in proc.stderr


def test_show_table(cli):
    cli("analyze", "oci:examples/sample-image:1", "--quiet")
    text = cli("show", "oci:examples/sample-image:1", "--files").stdout
    assert "/usr/bin/hello-again -> /usr/bin/hello" in text and "4755" in text


def test_diff_id_verification_is_opt_in(registry, cli, tmp_path):
    tar = make_layer([Member("f", b"content")])
    image = build_image([tar], config_extra={"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}})
    push_image(registry.url, "e2e/lying-config", "1", image)
    ref = f"{registry.host}/e2e/lying-config:1"
    document = analyze_json(cli, ref)  # blobs are verified by digest; diff_ids only on request
    assert document["image"]["layers"][0]["diff_id"] == "sha256:" + "0" * 64
    config = tmp_path / "strict.yaml"
    config.write_text("verify_diff_ids: true\n")
    proc = cli("--config", str(config), "--db", str(tmp_path / "fresh.db"), "analyze", ref, check=False)
    assert proc.returncode == 1
    assert f"layer {image.layers[0].digest}: uncompressed content hashes to" in proc.stderr


@pytest.mark.parametrize("oci", [False, True], ids=["legacy", "docker25-oci"])
def test_docker_archive_source(cli, tmp_path, oci):
    from analyzerd.testing import write_docker_archive
    tars = layer_tars()
    image = build_image(tars)
    archive = str(tmp_path / "image.tar")
    write_docker_archive(archive, image, tars, "app:1.0", oci=oci)
    document = analyze_json(cli, f"docker-archive:{archive}")
    assert_matches_merge(document, tars, tmp_path)
    named = analyze_json(cli, f"docker-archive:{archive}:app:1.0")
    assert named["files"] == document["files"]
    if not oci:  # no manifest in the legacy format: the image is known by its config digest
        assert document["image"]["manifest_digest"] == image.config.digest
    missing = cli("analyze", f"docker-archive:{archive}:other:2", check=False)
    assert missing.returncode == 3 and "no image" in missing.stderr


def test_docker_archive_with_a_tampered_layer(cli, tmp_path):
    from analyzerd.testing import write_docker_archive
    tars = [make_layer([Member("a", b"original")])]
    image = build_image(tars)
    tampered = [make_layer([Member("a", b"tampered")])]
    archive = str(tmp_path / "image.tar")
    write_docker_archive(archive, image, tampered, "app:1")  # config diff_ids are of the original
    proc = cli("analyze", f"docker-archive:{archive}", check=False)
    assert proc.returncode == 1 and "digest mismatch" in proc.stderr


def test_foreign_layers_are_skipped_with_a_warning_unless_allowed(registry, cli, tmp_path):
    base_tar = make_layer([Member("Windows/System32/kernel32.dll", b"MZ base layer")])
    app_tar = make_layer([Member("app/app.exe", b"MZ app")])
    image = build_image([base_tar, app_tar])
    foreign = image.layers[0]
    push_blob(registry.url, "e2e/foreign-store", foreign)  # where its URL points
    url = f"{registry.url}/v2/e2e/foreign-store/blobs/{foreign.digest}"
    manifest = json.loads(image.manifest.data)
    manifest["layers"][0].update(mediaType="application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", urls=[url])
    image.manifest.data = json.dumps(manifest).encode()
    for blob in (image.config, image.layers[1]):
        push_blob(registry.url, "e2e/foreign", blob)
    push_manifest(registry.url, "e2e/foreign", "1", image.manifest)
    ref = f"{registry.host}/e2e/foreign:1"

    document = analyze_json(cli, ref)
    assert [f["path"] for f in document["files"] if f["type"] == "file"] == ["/app/app.exe"]
    assert any(foreign.digest in w and "non-distributable" in w for w in document["image"]["warnings"])

    config = tmp_path / "foreign.yaml"
    config.write_text("allow_foreign_layers: true\n")
    document = json.loads(cli("--config", str(config), "analyze", ref, "--force", "--json").stdout)
    assert "/Windows/System32/kernel32.dll" in {f["path"] for f in document["files"]}
    assert document["image"]["warnings"] == []


def test_show_into_a_closed_pipe_is_quiet(cli, db_path, tmp_path):
    from analyzerd.testing import write_oci_layout
    many = build_image([make_layer([Member(f"f/{i:05d}", b"x") for i in range(3000)])])  # > a pipe's buffer
    write_oci_layout(str(tmp_path / "many"), {"1": many})
    ref = f"oci:{tmp_path / 'many'}:1"
    cli("analyze", ref, "--quiet")
    proc = subprocess.run(f"{sys.executable} -m analyzerd --db {db_path} show {ref} | head -1",
                          shell=True, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.stdout.startswith("image") and "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr


def test_sigterm_lets_jobs_finish_within_the_grace_period_then_gives_them_back(registry, cli, db_path, tmp_path):
    """A job still running when the grace period ends is stopped and queued again, for any
    daemon to take; the daemon exits 0. Another daemon then finishes it."""
    from tests.registry_modes import FaultProxy
    image = build_image([make_layer([Member("data", os.urandom(2_000_000))])])
    push_image(registry.url, "e2e/slow", "1", image)
    with FaultProxy(registry.url) as proxy:
        proxy.slow_blobs(0.5)  # ~15 s for the layer: still running when SIGTERM comes
        config = "services:\n  analyzer:\n    cycle_timer_seconds: 0.2\n    shutdown_grace_seconds: 1\n    port: 0\n"
        daemon = start_daemon(db_path, tmp_path, config)
        try:
            cli("submit", f"{proxy.host}/e2e/slow:1")
            deadline = time.monotonic() + 30
            while json.loads(cli("jobs", "--json").stdout)["jobs"][0]["status"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            # the daemon writes the running job's progress, for submit --wait and /status
            while not ((job := json.loads(cli("jobs", "--json").stdout)["jobs"][0])["progress"] or {}).get("bytes"):
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert job["progress"]["layers_total"] == 1 and job["progress"]["layers_done"] == 0
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
        job = json.loads(cli("jobs", "--json").stdout)["jobs"][0]
        assert job["status"] == "queued"
        log = (tmp_path / "daemon.log").read_text()
        assert "event=job_released" in log
        proxy.slow_blobs(0)
        (tmp_path / "second").mkdir()
        second = start_daemon(db_path, tmp_path / "second")
        try:
            proc = cli("submit", "--wait", "--timeout", "60", f"{proxy.host}/e2e/slow:1", check=False)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
    jobs = json.loads(cli("jobs", "--json").stdout)["jobs"]
    assert jobs[0]["status"] == "done" and jobs[0]["image_digest"] == image.manifest.digest, proc.stderr


def test_sighup_reloads_the_log_level_and_limits_and_names_what_needs_a_restart(cli, db_path, tmp_path):
    config_text = "log_level: INFO\nservices:\n  analyzer:\n    cycle_timer_seconds: 0.2\n    port: 0\n"
    daemon = start_daemon(db_path, tmp_path, config_text)
    log_path = tmp_path / "daemon.log"
    try:
        deadline = time.monotonic() + 30
        while b"event=worker_started" not in log_path.read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        (tmp_path / "daemon.yaml").write_text(
            "log_level: DEBUG\nlimits:\n  max_layer_entries: 3\n"
            "services:\n  analyzer:\n    cycle_timer_seconds: 0.5\n    port: 0\n")
        daemon.send_signal(signal.SIGHUP)
        while b"event=config_reloaded" not in log_path.read_bytes():
            assert time.monotonic() < deadline and daemon.poll() is None
            time.sleep(0.1)
        line = next(l for l in log_path.read_text().splitlines() if "event=config_reloaded" in l)
        assert "applied=limits.max_layer_entries,log_level" in line
        assert "needs_restart=analyzer.cycle_timer_seconds" in line
        # the new limit is in force: the sample image's layer has more than 3 entries
        proc = cli("submit", "--wait", "--timeout", "60", "oci:examples/sample-image:1", check=False)
        assert proc.returncode == 1 and "more than 3 entries" in proc.stderr
        (tmp_path / "daemon.yaml").write_text("limits: [not, a, mapping]\n")
        daemon.send_signal(signal.SIGHUP)
        while b"event=config_reload_failed" not in log_path.read_bytes():
            assert time.monotonic() < deadline and daemon.poll() is None
            time.sleep(0.1)
        assert daemon.poll() is None  # a bad file keeps the running configuration
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0


def test_a_transient_registry_failure_is_retried_with_backoff_a_permanent_one_is_not(registry, cli, db_path,
                                                                                     tmp_path):
    from tests.registry_modes import FaultProxy
    image = build_image([make_layer([Member("data", b"payload")])])
    push_image(registry.url, "e2e/flaky", "1", image)
    with FaultProxy(registry.url) as proxy:
        proxy.status_burst(503, times=1, all_paths=True)  # the first try's first request fails
        config = ("registry_retries: 1\nservices:\n  analyzer:\n    cycle_timer_seconds: 0.1\n    port: 0\n"
                  "    max_attempts: 3\n    retry_backoff_seconds: 0.5\n")
        daemon = start_daemon(db_path, tmp_path, config)
        try:
            proc = cli("submit", "--wait", "--timeout", "60", f"{proxy.host}/e2e/flaky:1",
                       f"{proxy.host}/e2e/missing:1", check=False)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
    jobs = {j["reference"].rsplit("/", 1)[1]: j for j in json.loads(cli("jobs", "--json").stdout)["jobs"]}
    assert jobs["flaky:1"]["status"] == "done" and jobs["flaky:1"]["attempts"] == 2, proc.stderr
    assert jobs["missing:1"]["status"] == "failed" and jobs["missing:1"]["attempts"] == 1
    log = (tmp_path / "daemon.log").read_text()
    assert "event=job_retry_scheduled" in log and "in_seconds=0.5" in log


def test_analyze_shows_progress_on_a_terminal_and_not_in_pipes(db_path, tmp_path):
    import pty
    main, secondary = pty.openpty()
    env = dict(os.environ, ANALYZERD_DB=db_path)
    proc = subprocess.run([sys.executable, "-m", "analyzerd", "--log-level", "WARNING", "analyze",
                           "oci:examples/sample-image:1"], stdin=secondary, stdout=secondary, stderr=secondary,
                          cwd=ROOT, env=env, timeout=120)
    os.close(secondary)
    output = b""
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the terminal is closed once the child is gone
            break
        if not data:
            break
        output += data
    os.close(main)
    assert proc.returncode == 0
    text = output.decode(errors="replace")
    assert "\r\x1b[Klayers 2/2" in text and "files/s" in text  # one line, rewritten in place
    piped = subprocess.run([sys.executable, "-m", "analyzerd", "--log-level", "WARNING", "analyze",
                            "oci:examples/sample-image:1", "--quiet", "--force"], capture_output=True, cwd=ROOT, env=env, timeout=120)
    assert b"\x1b[K" not in piped.stderr


def test_a_registry_gone_mid_job_is_retried_and_the_job_completes_when_it_is_back(registry, cli, db_path,
                                                                                   tmp_path):
    from tests.registry_modes import FaultProxy
    image = build_image([make_layer([Member("data", os.urandom(3_000_000))])])
    push_image(registry.url, "e2e/outage", "1", image)
    proxy = FaultProxy(registry.url).start()
    port, host = proxy.port, proxy.host
    proxy.slow_blobs(0.2)
    config = ("registry_retries: 1\nservices:\n  analyzer:\n    cycle_timer_seconds: 0.1\n    port: 0\n"
              "    max_attempts: 3\n    retry_backoff_seconds: 2\n")
    daemon = start_daemon(db_path, tmp_path, config)
    back = None
    try:
        cli("submit", f"{host}/e2e/outage:1")
        deadline = time.monotonic() + 30
        while b"event=image_resolved" not in (tmp_path / "daemon.log").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)
        proxy.stop()  # the registry goes away in the middle of the layer download
        while b"event=job_retry_scheduled" not in (tmp_path / "daemon.log").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        back = FaultProxy(registry.url, port=port).start()  # and comes back at the same address
        while (first := json.loads(cli("jobs", "--json").stdout)["jobs"][0])["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline + 30
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        if back is not None:
            back.stop()
    assert first["status"] == "done" and first["attempts"] == 2, (tmp_path / "daemon.log").read_text()
    assert first["image_digest"] == image.manifest.digest


def test_a_full_disk_fails_the_job_cleanly_and_keeps_what_is_stored(registry, cli, db_path, tmp_path):
    """The database cannot grow (a file-size limit stands in for a full disk): the job fails
    with a database error, the daemon goes on, and the image stored before is intact."""
    import resource
    cli("analyze", "oci:examples/sample-image:1", "--quiet")
    before = json.loads(cli("show", "oci:examples/sample-image:1", "--json").stdout)
    many = build_image([make_layer([Member(f"f/{i}", os.urandom(64)) for i in range(20_000)])])
    push_image(registry.url, "e2e/huge-result", "1", many)
    limit = 4 * 1024 * 1024  # room for the job tables, not for 20,000 file rows

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    config = tmp_path / "daemon.yaml"
    config.write_text("services:\n  analyzer:\n    cycle_timer_seconds: 0.1\n    port: 0\n    max_attempts: 2\n"
                      "    retry_backoff_seconds: 0.1\n")
    daemon = subprocess.Popen([sys.executable, "-m", "analyzerd", "--config", str(config), "--db", db_path, "run"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, preexec_fn=small_disk)
    try:
        proc = cli("submit", "--wait", "--timeout", "120", f"{registry.host}/e2e/huge-result:1", check=False)
        assert proc.returncode == 1 and "database" in proc.stderr, proc.stderr
        # the real cause, naming the database file (not a rollback error that hides it)
        assert re.search(rf"database {re.escape(db_path)}: (storing sha256:\w+|commit) failed: "
                         r"(database or disk is full|disk I/O error)", proc.stderr), proc.stderr
        assert daemon.poll() is None  # it keeps serving
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM images WHERE manifest_digest = ?",
                        (many.manifest.digest,)).fetchone()[0] in (0, 1)
    conn.close()
    assert json.loads(cli("show", "oci:examples/sample-image:1", "--json").stdout) == before
