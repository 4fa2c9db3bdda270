"""A newcomer's first hour, scripted: the README's quick start in a new virtual environment,
then each command a first user runs, as they would run it (the installed `analyzerd`
script, no test extras, a database found by the documented rule)."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzerd.testing import Member, build_image, build_index, make_layer, push_blob, push_manifest

from .test_end_to_end import ROOT
from .test_packages import base_layer
from .test_secrets import aws_key_id, private_key_pem

#: The README's quick start: the fenced block after this marker.
QUICK_START_MARKER = "<!-- quick start: tests/integration/test_newcomer.py runs this block -->"


def quick_start_commands():
    text = (Path(ROOT) / "README.md").read_text()
    after = text.split(QUICK_START_MARKER, 1)[1]
    block = re.search(r"```sh\n(.*?)```", after, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory):
    """A fresh venv with analyzerd installed as the quick start installs it, in a home
    directory of its own. Offline: the venv sees the system's packages (what `pip install .`
    would fetch from PyPI is already there), and pip builds the checkout without the network."""
    home = tmp_path_factory.mktemp("home")
    work = home / "work"
    shutil.copytree(Path(ROOT) / "examples", work / "examples")
    env = {"HOME": str(home), "PATH": f"{home / 'venv' / 'bin'}:/usr/bin:/bin", "TMPDIR": str(home),
           "LANG": "C.UTF-8"}
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(home / "venv")], check=True)
    subprocess.run([str(home / "venv" / "bin" / "pip"), "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", str(ROOT)], check=True, env=env, timeout=600)

    def run(command, timeout=120):
        return subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=work, env=env,
                              timeout=timeout)
    run.home, run.work = home, work
    return run


#: What the fixture does instead, offline: make the venv, activate it, install the checkout.
SET_UP_STEPS = ("python3 -m venv ", ". ", "pip install ")


def test_the_quick_start_works_as_written(newcomer):
    lines = quick_start_commands()
    assert lines[0].startswith("python3 -m venv"), "the quick start begins by making a venv"
    steps = [step.strip() for line in lines for step in line.split(" && ")]
    assert [s for s in steps if s.startswith(SET_UP_STEPS)][-1] == "pip install ."
    for command in steps:
        if command.startswith(SET_UP_STEPS):
            continue
        proc = newcomer(command)
        assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
        # nothing but notes of files written: no warning, no log line, no error
        noise = [line for line in proc.stderr.splitlines() if not line.startswith("wrote ")]
        assert noise == [], f"{command} printed to stderr:\n{proc.stderr}"
    # the default database of a user with no config file
    assert (newcomer.home / ".local" / "share" / "analyzerd" / "analyzerd.db").exists()
    assert "sample" in newcomer("analyzerd images").stdout


def test_the_first_commands_are_short_quiet_and_findable(newcomer, registry):
    secrets_layer = make_layer([Member("root/.ssh/id_rsa", private_key_pem().encode()),
                                Member("app/.env", f"AWS_ACCESS_KEY_ID={aws_key_id()}\n".encode())])
    image = build_image([base_layer(), secrets_layer])
    for blob in image.blobs():
        push_blob(registry.url, "newcomer/app", blob)
    push_manifest(registry.url, "newcomer/app", "1", image.manifest)
    ref = f"{registry.host}/newcomer/app:1"

    first = newcomer(f"analyzerd analyze {ref}")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) <= 40 and first.stderr == ""
    assert any(line.startswith("packages") and "deb" in line for line in lines)
    assert any(line.startswith("secrets") and "CRITICAL" in line for line in lines)
    assert any(line.startswith("stored in") and "analyzerd.db" in line for line in lines)
    assert any("analyzerd show sha256:" in line for line in lines)  # what to run next

    quiet = newcomer(f"analyzerd analyze -q {ref} --force")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")

    # the digest prefix that the summary suggests works
    short = re.search(r"analyzerd show (sha256:[0-9a-f]+)", first.stdout).group(1)
    shown = newcomer(f"analyzerd show {short} --secrets")
    assert shown.returncode == 0 and "private-key" in shown.stdout and ref in shown.stdout

    # a CI gate, Trivy-style
    assert newcomer(f"analyzerd show {ref} --fail-on CRITICAL").returncode == 4
    assert newcomer(f"analyzerd show {ref} -q --fail-on critical").stdout == ""

    # one command from image to SBOM, Syft-style; global options after the command
    sbom = newcomer(f"analyzerd analyze {ref} -o cyclonedx=sbom.json -o syft=syft.json --log-level ERROR")
    assert sbom.returncode == 0 and (newcomer.work / "sbom.json").stat().st_size > 0
    assert (newcomer.work / "syft.json").stat().st_size > 0 and sbom.stdout == ""

    images = newcomer("analyzerd images")
    assert ref in images.stdout and image.manifest.digest[:19] in images.stdout

    unknown = newcomer("analyzerd show registry.example/never/analyzed:1")
    assert unknown.returncode == 3 and "analyzerd images" in unknown.stderr
    mismatch = newcomer(f"analyzerd analyze {ref} --platform arm64")
    assert mismatch.returncode == 3 and "error: platform-not-found" in mismatch.stderr
    bare = newcomer("analyzerd")
    assert bare.returncode == 0 and "COMMAND" in bare.stdout


def test_show_of_a_multi_platform_image_picks_the_default_platform(newcomer, registry):
    amd = build_image([make_layer([Member("etc/which", b"amd64\n")])])
    arm = build_image([make_layer([Member("etc/which", b"arm64\n")])], architecture="arm64", variant="v8")
    for image in (amd, arm):
        for blob in image.blobs():
            push_blob(registry.url, "newcomer/multi", blob)
        push_manifest(registry.url, "newcomer/multi", image.manifest.digest, image.manifest)
    push_manifest(registry.url, "newcomer/multi", "1", build_index([amd, arm], ["linux/amd64", "linux/arm64/v8"]))
    ref = f"{registry.host}/newcomer/multi:1"
    assert newcomer(f"analyzerd analyze -q {ref}").returncode == 0
    assert newcomer(f"analyzerd analyze -q {ref} --platform arm64").returncode == 0  # analyzed last
    default = newcomer(f"analyzerd show {ref}")
    assert "linux/amd64" in default.stdout and amd.manifest.digest in default.stdout
    arm64 = newcomer(f"analyzerd show {ref} --platform linux/arm64")
    assert arm.manifest.digest in arm64.stdout
    missing = newcomer(f"analyzerd show {ref} --platform s390x")
    assert missing.returncode == 3 and "linux/amd64, linux/arm64/v8" in missing.stderr


def test_submit_wait_without_a_daemon_says_so_and_gives_up(newcomer):
    started = time.monotonic()
    proc = newcomer("analyzerd submit --wait --timeout 12 oci:examples/sample-image:1", timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 5, proc.stderr
    assert "no daemon has claimed jobs" in proc.stderr
    assert str(newcomer.home / ".local" / "share" / "analyzerd" / "analyzerd.db") in proc.stderr
    assert "error: timeout" in proc.stderr and took < 40


def test_the_cli_finds_the_database_a_config_file_names(newcomer, tmp_path):
    """One documented rule: ./.analyzerd.yaml, else ~/.config/analyzerd/config.yaml, else
    /etc/analyzerd/config.yaml; its `database` is where every command reads and writes."""
    config_dir = newcomer.home / ".config" / "analyzerd"
    config_dir.mkdir(parents=True, exist_ok=True)
    database = tmp_path / "shared.db"
    (config_dir / "config.yaml").write_text(f"database: {database}\n")
    try:
        assert newcomer("analyzerd submit oci:examples/sample-image:1").returncode == 0
        assert database.exists()
        assert "oci:examples/sample-image:1" in newcomer("analyzerd jobs").stdout
        printed = newcomer("analyzerd config").stdout
        assert str(config_dir / "config.yaml") in printed and str(database) in printed
    finally:
        os.remove(config_dir / "config.yaml")
