"""The `analyzerd` command: run | submit | jobs | images | show | analyze | export | diff |
cache | migrate | config | hash-password."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, Final, NoReturn

from . import __version__
from .config import Config, database_location_from, describe, load_config, redact
from .errors import (AnalyzerError, ConfigError, InvalidArgumentError, InvalidJobError, InvalidReferenceError,
                     NotFoundError, PlatformNotFoundError)
from .memory import tune_allocator
from .model import JobStatus, Platform
from .submission import validate_job_request

__all__ = ["main"]

# Exit codes, by name.
SUCCESS: Final = 0
FAILED: Final = 1  #: an analysis or job failed
USAGE: Final = 2  #: bad arguments or configuration
NOT_FOUND: Final = 3  #: nothing matches: no such image (stored or in the registry), or no such platform
SECRETS_FOUND: Final = 4  #: --fail-on: a secret at that severity or above was found
TIMED_OUT: Final = 5  #: submit --wait --timeout: the jobs had not ended
INTERRUPTED: Final = 130

#: Output formats (`-o FORMAT[=FILE]`, `export --format`) and their short names.
OUTPUT_FORMATS: Final = ("table", "json", "cyclonedx-json", "spdx-json", "syft-json", "anchore-json")
FORMAT_ALIASES: Final = {"cyclonedx": "cyclonedx-json", "spdx": "spdx-json", "syft": "syft-json",
                         "anchore": "anchore-json"}
#: `submit --wait` says so when no daemon has claimed its jobs after this long.
NO_DAEMON_NOTICE_SECONDS: Final = 10.0

log = logging.getLogger("analyzerd")


class _Parser(argparse.ArgumentParser):
    """Argument errors are analyzerd errors (``invalid-argument``, exit 2), with a hint."""

    def error(self, message: str) -> NoReturn:
        raise InvalidArgumentError(f"{self.prog}: {message}", hint=f"`{self.prog} --help` lists what it takes")


def _global_options(top: bool) -> argparse.ArgumentParser:
    """Options every command takes, before or after its name (``analyzerd show X --db D``).
    Given after the command they are not defaulted again, so they do not undo the ones before."""
    unset = None if top else argparse.SUPPRESS
    p = _Parser(add_help=False)
    p.add_argument("--config", metavar="PATH", default=unset,
                   help="config file (default: $ANALYZERD_CONFIG, else ./.analyzerd.yaml, "
                        "~/.config/analyzerd/config.yaml or /etc/analyzerd/config.yaml, else built-in)")
    p.add_argument("--db", metavar="PATH|URL", default=unset,
                   help="SQLite path or postgresql://user@host/db (default: $ANALYZERD_DB, else the config's "
                        "'database')")
    p.add_argument("--log-level", metavar="LEVEL", default=unset,
                   help="DEBUG, INFO, WARNING or ERROR (default: WARNING; `run`: the config's log_level)")
    p.add_argument("-q", "--quiet", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="print nothing but errors")
    return p


def _output_spec(text: str) -> tuple[str, str | None]:
    """``FORMAT[=FILE]`` -> (format, file or None for stdout)."""
    name, _, path = text.partition("=")
    fmt = FORMAT_ALIASES.get(name.strip(), name.strip())
    if fmt not in OUTPUT_FORMATS:
        raise argparse.ArgumentTypeError(
            f"unknown format {name!r}: one of {', '.join(OUTPUT_FORMATS)} (or {', '.join(FORMAT_ALIASES)})")
    return fmt, path or None


def _severity(text: str) -> str:
    from .secrets.rules import SEVERITIES
    if text.upper() not in SEVERITIES:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(SEVERITIES)}")
    return text.upper()


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="analyzerd", description="Streaming container-image analyzer.",
                     parents=[_global_options(True)],
                     epilog="Exit codes: 0 ok, 1 an analysis or job failed, 2 bad arguments or configuration, "
                            "3 nothing matches, 4 --fail-on found secrets, 5 submit --wait timed out.")
    parser.add_argument("--version", action="version", version=f"analyzerd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = [_global_options(False)]

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, parents=common)

    command("run", "run the daemon: claim queued jobs and analyze them")

    p = command("submit", "queue images for the daemon")
    p.add_argument("references", nargs="+", metavar="REF")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                   help="platform to pick from multi-platform images (an architecture alone means linux/ARCH)")
    p.add_argument("--wait", action="store_true", help="wait until the jobs end; exit 1 if any failed")
    p.add_argument("--force", action="store_true", help="analyze again even if the image was analyzed")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="with --wait: give up after this long (exit 5)")

    p = command("jobs", "list jobs")
    p.add_argument("--json", action="store_true", help="one JSON document")

    p = command("images", "list the analyzed images")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.add_argument("--limit", type=int, default=1000, metavar="N", help="at most N, newest first (default 1000)")

    for name, text in (("show", "print an analyzed image's results"),
                       ("analyze", "analyze one image in the foreground (no daemon) and store it")):
        p = command(name, text)
        p.add_argument("reference", metavar="REF" if name == "analyze" else "REF|DIGEST")
        p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                       help="the platform (default: the config's default_platform; an architecture alone means "
                            "linux/ARCH)")
        p.add_argument("--json", action="store_true", help="the whole result as one JSON document")
        p.add_argument("--files", action="store_true", help="add the files table")
        p.add_argument("--packages", action="store_true", help="add the packages table")
        p.add_argument("--secrets", action="store_true",
                       help="add the secrets table (redacted; DELETED: hidden by an upper layer)")
        p.add_argument("-o", "--output", action="append", type=_output_spec, metavar="FORMAT[=FILE]",
                       help="write this format to FILE, or to stdout; repeatable. Formats: "
                            f"{', '.join(OUTPUT_FORMATS)}; short: {', '.join(FORMAT_ALIASES)}")
        p.add_argument("--fail-on", type=_severity, metavar="SEVERITY",
                       help="exit 4 when a secret of this severity or above is found (CRITICAL, HIGH, MEDIUM, LOW)")
        if name == "show":
            p.add_argument("--summary", action="store_true",
                           help="also the largest, setuid/setgid and world-writable files")
        if name == "analyze":
            p.add_argument("--force", action="store_true", help="analyze again even if the image was analyzed")

    p = command("export", "an SBOM of an analyzed image: CycloneDX, SPDX or Syft JSON")
    p.add_argument("reference", metavar="REF|DIGEST")
    p.add_argument("--format", type=_output_spec, metavar="FORMAT",
                   help=f"{', '.join(OUTPUT_FORMATS[2:])} (short: {', '.join(FORMAT_ALIASES)})")
    p.add_argument("-o", "--output", metavar="FILE|FORMAT[=FILE]",
                   help="a file to write (with --format), or FORMAT[=FILE] as `analyze -o` takes it")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="the platform (default: default_platform)")
    p.add_argument("--files", action="store_true", help="CycloneDX: every file as a component with its digests")

    p = command("diff", "what changed from one analyzed image to another: packages, files, secrets")
    p.add_argument("first", metavar="REF_A|DIGEST")
    p.add_argument("second", metavar="REF_B|DIGEST")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="the platform (default: default_platform)")
    p.add_argument("--json", action="store_true", help="one JSON document")

    p = command("cache", "the layer blob cache: stats, prune (evict to the limit), clear")
    p.add_argument("action", choices=("stats", "prune", "clear"))
    p.add_argument("--json", action="store_true", help="one JSON document")

    p = command("migrate", "copy a SQLite database (jobs and results) into the configured "
                           "PostgreSQL database, which must be empty")
    p.add_argument("source", metavar="SQLITE_PATH", help="the SQLite database (a path or sqlite:///path)")

    p = command("config", "print the effective configuration, as YAML the config file takes")
    p.add_argument("--json", action="store_true", help="the settings as analyzerd holds them, as JSON")
    command("hash-password", "read a password (stdin, or a prompt) and print its hash for api_users in config.yaml")
    return parser


def _setup_logging(args: argparse.Namespace, config: Config) -> None:
    """The daemon logs at the config's level; other commands print their results, and log
    only warnings unless asked (--log-level); --quiet: errors only."""
    from .logformat import configure
    if args.quiet:
        level = "ERROR"
    elif args.log_level:
        level = args.log_level
    else:
        level = config.log_level if args.command == "run" else "WARNING"
    configure(level.upper(), config.log_format)


def _load(args: argparse.Namespace) -> tuple[Config, str]:
    from .config import discover_config_path
    config = load_config(discover_config_path(args.config))
    database = args.db or os.environ.get("ANALYZERD_DB")
    return config, database_location_from(database) if database else config.database_location


def _tables(args: argparse.Namespace) -> tuple[str, ...]:
    from .report import SECTIONS
    return tuple(name for name in SECTIONS if getattr(args, name, False))


def _print_json(document: Any) -> None:
    sys.stdout.write(_json_text(document))


def _json_text(document: Any) -> str:
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def _say(args: argparse.Namespace, text: str) -> None:
    """A note for the person at the terminal (stderr), unless --quiet."""
    if not args.quiet:
        print(text, file=sys.stderr)


async def _cmd_submit(args: argparse.Namespace, config: Config, database: str) -> int:
    from .store import open_store

    # refuse a bad reference or platform now, not in the daemon; POST /v1/jobs checks the same
    request = validate_job_request(args.references, args.platform, references_field="REF",
                                   platform_field="--platform")
    async with await open_store(config, database) as store:
        ids = await store.enqueue(list(request.references), request.platform, force=args.force)
        if not args.quiet:
            for job_id, reference in zip(ids, request.references):
                print(f"{job_id}\t{reference}")
        if not args.wait:
            return SUCCESS
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + args.timeout if args.timeout else None
        pending = set(ids)
        failed = 0
        claimed = noticed = False
        progress_line = _ProgressLine(sys.stderr, enabled=not args.quiet)
        while pending:
            running = []
            for job_id in sorted(pending):
                job = await store.get_job(job_id)
                if job is not None and job.status is not JobStatus.QUEUED:
                    claimed = True
                if job is not None and job.status is JobStatus.RUNNING and job.progress:
                    running.append(job)
                if job is None or job.status in (JobStatus.DONE, JobStatus.FAILED):
                    progress_line.clear()
                    pending.discard(job_id)
                    if job is not None and job.status is JobStatus.FAILED:
                        failed += 1
                        print(f"job {job.id} {job.reference} failed: {job.error}", file=sys.stderr)
                    elif job is not None:
                        _say(args, f"job {job.id} {job.reference} done: {job.image_digest}")
            progress_line.show("; ".join(_job_progress(job) for job in running)[:200])
            if not pending:
                break
            waited = loop.time() - started
            if not claimed and not noticed and waited >= NO_DAEMON_NOTICE_SECONDS:
                noticed = True
                progress_line.clear()
                _say(args, f"note: no daemon has claimed jobs {sorted(pending)} in {waited:.0f} s. They are queued "
                           f"in {redact(database)}; a daemon analyzes them: `analyzerd --db {redact(database)} run`, "
                           "or the analyzerd service with this database.")
            if deadline is not None and loop.time() > deadline:
                progress_line.clear()
                print(f"error: timeout\ngave up after {args.timeout:g} s waiting for jobs {sorted(pending)} "
                      f"in {redact(database)}", file=sys.stderr)
                if not claimed:
                    print("hint: no daemon claimed them; is `analyzerd run` running with this database?",
                          file=sys.stderr)
                return TIMED_OUT
            await asyncio.sleep(min(config.analyzer.cycle_timer_seconds, 0.5))
        return FAILED if failed else SUCCESS


async def _cmd_jobs(args: argparse.Namespace, config: Config, database: str) -> int:
    from .report import _when
    from .store import open_store

    async with await open_store(config, database) as store:
        jobs = await store.list_jobs()
    if args.json:
        _print_json({"jobs": [job.as_dict() for job in jobs]})
        return SUCCESS
    if not jobs:
        print(f"no jobs in {redact(database)}: `analyzerd submit REF` queues one")
        return SUCCESS
    print(f"{'ID':>5}  {'STATUS':<8} {'TRIES':>5}  {'PLATFORM':<14} {'FINISHED':<16} {'DIGEST':<19}  REFERENCE / ERROR")
    for job in jobs:
        digest = (job.image_digest or "-")[:19]
        print(f"{job.id:>5}  {job.status.value:<8} {job.attempts:>5}  {job.platform or 'default':<14} "
              f"{_when(job.finished_at):<16} {digest:<19}  {job.reference}")
        if job.error:
            print(f"{'':>7}{job.error}")
    return SUCCESS


async def _cmd_images(args: argparse.Namespace, config: Config, database: str) -> int:
    from .report import image_row, render_images
    from .store import open_store

    if args.limit < 1:
        raise InvalidArgumentError(f"images: --limit must be at least 1, not {args.limit}")
    async with await open_store(config, database) as store:
        rows = await store.list_images(args.limit)
    if args.json:
        _print_json({"database": redact(database), "images": [image_row(row) for row in rows]})
    else:
        print(render_images(rows))
    return SUCCESS


async def _write_outputs(args: argparse.Namespace, config: Config, store: Any, key: str, database: str) -> int:
    """What `show` and `analyze` print: the summary table with the tables asked for, the
    JSON document, or each ``-o FORMAT[=FILE]``; then the --fail-on verdict."""
    from .report import SECTIONS, SUMMARY_SECTIONS, image_document, render_summary, render_table, summary

    outputs: list[tuple[str, str | None]] = list(args.output or [])
    if not outputs:
        outputs = [("json" if args.json else "table", None)]
    if sum(1 for _, path in outputs if path is None) > 1:
        raise InvalidArgumentError("-o: more than one format to stdout; give all but one a file (FORMAT=FILE)")
    tables = _tables(args)
    review = getattr(args, "summary", False)
    needs_all = any(fmt != "table" for fmt, _ in outputs) or review
    sections = SECTIONS if needs_all else tuple(dict.fromkeys(SUMMARY_SECTIONS + tables))
    platform = args.platform
    document = await image_document(store, key, sections, platform=platform,
                                    default_platform=config.default_platform)
    owned = None
    if any(fmt == "spdx-json" for fmt, _ in outputs):
        [row] = await store.images_for(document["image"]["manifest_digest"], limit=1)
        owned = await store.package_file_paths(row["id"])
    for fmt, path in outputs:
        if fmt == "table":
            text = (render_summary(document, summary(document)) if review else
                    render_table(document, tables=tables, database=redact(database))) + "\n"
        elif fmt == "json":
            text = _json_text({"image": document["image"], "summary": summary(document)} if review and not tables
                              else {k: v for k, v in document.items() if k == "image" or not tables or k in tables})
        else:
            from .export import export
            text = _json_text(export(document, fmt, files=getattr(args, "files", False), owned_files=owned))
        _emit(args, text, fmt, path)
    return _verdict(args, document)


def _emit(args: argparse.Namespace, text: str, fmt: str, path: str | None) -> None:
    if path is None:
        if not args.quiet:
            sys.stdout.write(text)
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise InvalidArgumentError(f"-o {fmt}={path}: cannot write: {exc.strerror}") from None
    _say(args, f"wrote {fmt} to {path}")


def _verdict(args: argparse.Namespace, document: dict[str, Any]) -> int:
    """--fail-on: SECRETS_FOUND when a secret at that severity or above is in the image."""
    if not args.fail_on:
        return SUCCESS
    from .secrets.rules import SEVERITIES
    worst = SEVERITIES.index(args.fail_on)
    found = [s for s in document.get("secrets") or [] if SEVERITIES.index(s["severity"]) <= worst]
    if found:
        print(f"fail-on: {len(found)} secrets of severity {args.fail_on} or above "
              f"(`analyzerd show {document['image']['manifest_digest'][:19]} --secrets` lists them)", file=sys.stderr)
        return SECRETS_FOUND
    return SUCCESS


async def _cmd_export(args: argparse.Namespace, config: Config, database: str) -> int:
    from .store import open_store

    fmt = args.format[0] if args.format else None
    path = args.output
    if path is not None and fmt is None:
        # Syft's -o FORMAT[=FILE]; a plain file name (the older -o FILE) needs --format
        try:
            fmt, path = _output_spec(path)
        except argparse.ArgumentTypeError:
            raise InvalidArgumentError(f"export: -o {path}: give --format, or -o FORMAT=FILE") from None
    if fmt is None:
        raise InvalidArgumentError("export: which format? --format FORMAT, or -o FORMAT[=FILE] "
                                   f"({', '.join(OUTPUT_FORMATS[2:])})")
    args.output, args.json, args.fail_on = [(fmt, path)], False, None
    async with await open_store(config, database) as store:
        return await _write_outputs(args, config, store, args.reference, database)


async def _cmd_diff(args: argparse.Namespace, config: Config, database: str) -> int:
    from .diff import diff_documents
    from .report import image_document
    from .store import open_store

    async with await open_store(config, database) as store:
        first = await image_document(store, args.first, platform=args.platform,
                                     default_platform=config.default_platform)
        second = await image_document(store, args.second, platform=args.platform,
                                      default_platform=config.default_platform)
    result = diff_documents(first, second)
    if args.json:
        _print_json(result)
        return SUCCESS
    lines = [f"from {result['from']}", f"to   {result['to']}"]
    packages, files = result["packages"], result["files"]
    lines.append(f"packages: {len(packages['added'])} added, {len(packages['removed'])} removed, "
                 f"{len(packages['changed'])} changed")
    lines += [f"  + {p['type']} {p['name']} {p['version']}" for p in packages["added"]]
    lines += [f"  - {p['type']} {p['name']} {p['version']}" for p in packages["removed"]]
    lines += [f"  ~ {p['type']} {p['name']} {p['from_version']} -> {p['version']}" for p in packages["changed"]]
    lines.append(f"files: {len(files['added'])} added, {len(files['removed'])} removed, "
                 f"{len(files['changed'])} changed")
    lines += [f"  + {path}" for path in files["added"]]
    lines += [f"  - {path}" for path in files["removed"]]
    lines += [f"  ~ {f['path']} ({', '.join(f['changed'])})" for f in files["changed"]]
    lines.append(f"new secrets: {len(result['secrets']['new'])}")
    lines += [f"  ! {s['severity']} {s['rule']} {s['match']} {s['path']}:{s['line']}" for s in result["secrets"]["new"]]
    print("\n".join(lines))
    return SUCCESS


async def _cmd_show(args: argparse.Namespace, config: Config, database: str) -> int:
    from .store import open_store

    async with await open_store(config, database) as store:
        return await _write_outputs(args, config, store, args.reference, database)


async def _cmd_analyze(args: argparse.Namespace, config: Config, database: str) -> int:
    from .analyze import PROGRESS, Progress
    from .daemon import services
    from .reference import canonical_source

    reference = canonical_source(args.reference)
    async with services(config, database) as svc:
        progress = Progress()
        PROGRESS.set(progress)
        line = _ProgressLine(sys.stderr, enabled=not args.quiet)
        reporter = asyncio.create_task(_report_progress(progress, line), name="progress")
        try:
            outcome = await svc.analyze_and_store(reference, args.platform, force=args.force)
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            line.finish(_progress_text(progress))
        return await _write_outputs(args, config, svc.store, outcome.manifest_digest, database)


class _ProgressLine:
    """One line of progress on a terminal, rewritten in place; nothing when stderr is not a
    terminal. Log records clear it first (the next tick draws it again), so none is torn."""

    active: _ProgressLine | None = None

    def __init__(self, stream: Any, *, enabled: bool = True) -> None:
        self._stream = stream
        self._enabled = enabled and stream.isatty()
        self._shown = False

    def show(self, text: str) -> None:
        if not self._enabled or not text:
            return
        self._stream.write("\r\x1b[K" + text)
        self._stream.flush()
        self._shown = True
        _ProgressLine.active = self

    def finish(self, text: str) -> None:
        """The last figures, left on their own line."""
        self.show(text)
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()
            self._shown = False
        self.clear()

    def clear(self) -> None:
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False
        if _ProgressLine.active is self:
            _ProgressLine.active = None


class _ClearProgress(logging.Filter):
    """Installed on the log handlers: a record is written on a line of its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _ProgressLine.active is not None:
            _ProgressLine.active.clear()
        return True


def _job_progress(job: Any) -> str:
    p = job.progress
    return (f"job {job.id}: layers {p.get('layers_done', 0)}/{p.get('layers_total') or '?'} "
            f"{p.get('bytes', 0) / 1e6:,.1f} MB {p.get('files', 0):,} files")


def _progress_text(progress: Any) -> str:
    seconds = max(time.monotonic() - progress.started, 1e-3)
    return (f"layers {progress.layers_done}/{progress.layers_total or '?'}  "
            f"{progress.bytes / 1e6:,.1f} MB received  {progress.files:,} files  "
            f"{progress.files / seconds:,.0f} files/s")


async def _report_progress(progress: Any, line: _ProgressLine) -> None:
    while True:
        await asyncio.sleep(0.2)
        line.show(_progress_text(progress))


def _cmd_cache(args: argparse.Namespace, config: Config) -> int:
    from dataclasses import asdict

    from .cache import LayerCache

    section = config.analyzer
    cache = LayerCache(config.tmp_dir, int(section.layer_cache_max_gigabytes * 1000**3))
    if args.action == "prune":
        print(f"evicted {cache.prune()} blobs")
    elif args.action == "clear":
        print(f"removed {cache.clear()} blobs")
    stats = cache.stats()
    if args.json:
        _print_json(dict(asdict(stats), directory=cache.root, enabled=section.layer_cache_enable))
    elif args.action == "stats":
        state = "enabled" if section.layer_cache_enable else "disabled in the configuration"
        print(f"layer cache {cache.root} ({state})\n"
              f"entries    {stats.entries}\n"
              f"bytes      {stats.bytes:,} of {stats.max_bytes:,}\n"
              f"hits       {stats.hits}\nmisses     {stats.misses}\nevictions  {stats.evictions}\n"
              f"writing    {stats.in_progress}")
    return SUCCESS


async def _cmd_migrate(args: argparse.Namespace, config: Config, database: str) -> int:
    from .migrate import migrate

    counts = await migrate(database_location_from(args.source), database, password=config.database_password(),
                           progress=lambda table, rows: print(f"{table:<18} {rows:>12,} rows", flush=True))
    print(f"copied {sum(counts.values()):,} rows of {len(counts)} tables", flush=True)
    return SUCCESS


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except InvalidArgumentError as exc:
        return _fail(exc, USAGE)
    if args.command is None:  # bare `analyzerd`
        parser.print_help()
        return SUCCESS
    tune_allocator()
    # Results hold ~10^5 small objects per image and none of them form cycles: collect
    # garbage less often than every 700 allocations.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        if getattr(args, "platform", None) and args.command != "submit":  # submit: as POST /v1/jobs checks it
            args.platform = _platform_argument(args.platform)
        config, database = _load(args)
        _setup_logging(args, config)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_ClearProgress())
        if args.command == "config":
            from .config import config_yaml, discover_config_path
            if args.json:
                _print_json(describe(config))
            else:
                sys.stdout.write(config_yaml(config, discover_config_path(args.config)))
            return SUCCESS
        if args.command == "hash-password":
            import getpass

            from .passwords import hash_password
            password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
            if not password:
                raise ConfigError("hash-password: empty password")
            print(hash_password(password))
            return SUCCESS
        if args.command == "cache":
            return _cmd_cache(args, config)
        from .daemon import run_async, run_daemon

        if args.command == "run":
            run_async(lambda: run_daemon(config, database))
            return SUCCESS
        commands = {"submit": _cmd_submit, "jobs": _cmd_jobs, "images": _cmd_images, "show": _cmd_show,
                    "export": _cmd_export, "diff": _cmd_diff, "analyze": _cmd_analyze, "migrate": _cmd_migrate}
        handler = commands[args.command]
        return run_async(lambda: handler(args, config, database))
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:  # the reader went away (analyzerd show | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SUCCESS
    except AnalyzerError as exc:
        return _fail(exc, _exit_code(exc))


def _platform_argument(text: str) -> str:
    """--platform, normalized (``arm64`` is ``linux/arm64``), or an invalid-argument error."""
    try:
        return str(Platform.parse(text))
    except ValueError as exc:
        raise InvalidArgumentError(f"--platform: {exc}", hint="for example linux/amd64, linux/arm64/v8 or arm64") \
            from None


def _exit_code(exc: AnalyzerError) -> int:
    if isinstance(exc, (NotFoundError, PlatformNotFoundError)):
        return NOT_FOUND
    if isinstance(exc, (ConfigError, InvalidArgumentError, InvalidReferenceError, InvalidJobError)):
        return USAGE
    return FAILED


def _fail(exc: AnalyzerError, code: int) -> int:
    print(f"error: {exc.reference}\n{exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)
    return code


def run() -> None:
    """The console script: main(), then a prompt exit.

    Everything main() opened is closed by the time it returns (database, sessions, worker
    threads). What is left is the interpreter's teardown, which frees every object of the
    analysis one by one: measured at ~80 ms after analyzing a 1 GB image. Output is flushed,
    then the process ends without it.
    """
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a closed pipe (analyzerd show | head): nothing left to say
            pass
    os._exit(code)
