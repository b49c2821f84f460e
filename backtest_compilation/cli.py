"""Command line: parse arguments, load settings, run, map errors to exit codes (contract §5, §7)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from . import __version__, lastrun, pipeline, schedule, settings, telemetry
from .adapters import build_services, run_config, start_telemetry
from .errors import ConfigError, Locked, RunError
from .outcome import Interrupted, RunSummary, log_failure

log = logging.getLogger("backtest_compilation")

DESCRIPTION = """\
Keep the backtest drive, the website's MongoDB collections and the tracking sheet in
agreement: normalise test file names, report naming problems to the sheet, publish exactly
what the drive holds. Settings come from the environment and .env (see README.md)."""

EPILOG = """\
exit codes: 0 success (drive problems are data), 1 runtime failure, 2 configuration,
3 mass-delete guard refused, 4 another run holds the lock; check: 0 in sync, 1 out of
sync, 5 could not check (a service unreachable or failing)"""

# name: (its line in the list of commands, its description, its epilog)
COMMANDS: dict[str, tuple[str, str, str | None]] = {
    "sync": (
        "one run: drive → MongoDB and sheet (the default)",
        "Read the drive, rename badly named test files, update MongoDB and the sheet; "
        "leave CACHE_DIR/last-run.json and report.html.",
        EPILOG,
    ),
    "check": (
        "exit 0 if MongoDB and the sheet already match the drive, 1 if not",
        "Plan without applying: exit 0 when MongoDB and the sheet match the drive and no "
        "rename is pending, 1 when not, 5 when it could not check. Changes nothing.",
        EPILOG,
    ),
    "schedule": (
        "run forever on SCHEDULE (the container's command)",
        "Run a sync at every time of SCHEDULE in TZ (at once if one was missed), keep "
        "CACHE_DIR/heartbeat.json fresh; on SIGTERM finish the current run and stop.",
        None,
    ),
    "demo": (
        "the whole pipeline on the bundled sample, no accounts",
        "Run the pipeline twice on a copy of the bundled sample drive and an in-process "
        "MongoDB; print the report, write demo-report.html. Needs no account or setting.",
        None,
    ),
    "doctor": (
        "check the whole set-up; say what to fix",
        "Check everything a sync needs (settings, key, token, FOLDER_ID and rename rights, "
        "spreadsheet, MongoDB, CACHE_DIR, SCHEDULE): one ✓/✗ line each, with its fix.",
        "exit codes: 0 a sync would work, 2 something must be fixed first (each ✗ line says how)",
    ),
    "status": (
        "the last run, the last success, the scheduler and the lock",
        "Say how the last run and the last success ended, the scheduler's next run and "
        "heartbeat age, and who holds the run lock. Reads only CACHE_DIR.",
        "exit codes: 0 the last run succeeded and the scheduler (if any) is alive, 1 not",
    ),
}

# The options of `sync`; `check` takes the first four.
RUN_OPTIONS = {
    "--json": "print one JSON summary on stdout",
    "--source": "read a local folder laid out like the drive instead of Google Drive (for "
    "trying things: writes no Google sheet and uses an in-process MongoDB unless --publish; "
    "without --dry-run it renames files in PATH)",
    "--publish": "with --source: also write the sheet at SHEET_URL and the database at "
    "MONGO_URI, as a Drive run would",
    "--full-rescan": "list the whole drive instead of following the changes feed",
    "--dry-run": "print the plan; change nothing anywhere",
    "--no-rename": "do not rename files in Drive",
    "--allow-mass-delete": "apply even when the plan deletes many courses (MAX_DELETE_FRACTION)",
}


def _add_options(p: argparse.ArgumentParser, options: dict[str, str]) -> None:
    """-v/-q and `options` (name: help); no default (SUPPRESS): one before the command stays."""
    for flag, help in (
        ("--verbose", "more log lines (DEBUG) for this run; LOG_LEVEL stays the default"),
        ("--quiet", "fewer log lines: -q warnings and errors, -qq errors only"),
    ):
        p.add_argument(flag[1:3], flag, action="count", default=argparse.SUPPRESS, help=help)
    for name, help in options.items():
        kind = {"type": Path, "metavar": "PATH"} if name == "--source" else {"action": "store_true"}
        p.add_argument(name, help=help, default=argparse.SUPPRESS, **kind)


def parse_args(argv: Sequence[str]) -> Request:
    """`argv` as a Request; `sync` is the default, its options also taken before the command."""
    parser = argparse.ArgumentParser(
        prog="main.py",
        description=DESCRIPTION,
        epilog=f"{settings.help_text()}\n\n{EPILOG}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_options(parser, dict.fromkeys(RUN_OPTIONS, argparse.SUPPRESS))
    options = {
        "sync": RUN_OPTIONS,
        "check": dict(list(RUN_OPTIONS.items())[:4]),
        "status": {
            "--json": "print the status as one JSON object",
            "--source": "the runs of a local --source PATH (they keep their own record)",
        },
    }
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (short, long, epilog) in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=short,
            description=textwrap.fill(long, 88),
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_options(sub, options.get(name, {}))
    args = vars(parser.parse_args(argv))
    return Request(**{**args, "command": args["command"] or "sync"})


def log_level(base: str, verbose: int, quiet: int) -> str:
    """`base` (LOG_LEVEL) moved one step down per -v and one step up per -q."""
    level = logging.getLevelNamesMapping().get(base, logging.INFO) + 10 * (quiet - verbose)
    return logging.getLevelName(min(max(level, logging.DEBUG), logging.CRITICAL))


def configure_logging(level: str, tz: str = settings.Settings.tz) -> None:
    """Plain lines on stderr (stdout is for --json and reports), stamped in `tz` with the
    offset (`2026-11-30 09:02:03.123-05:00`)."""
    zone = ZoneInfo(tz)

    class Zoned(logging.Formatter):
        def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
            at = datetime.fromtimestamp(record.created, zone)
            return at.isoformat(sep=" ", timespec="milliseconds")

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Zoned("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Client libraries' own INFO chatter (discovery, connection pools) is noise in cron logs.
    for noisy in ("googleapiclient", "urllib3", "pymongo", "gspread"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


@dataclass(frozen=True)
class Request:
    """What the command line asked for, read once from the parsed arguments."""

    command: str = "sync"
    verbose: int = 0
    quiet: int = 0
    json: bool = False
    dry_run: bool = False
    no_rename: bool = False
    allow_mass_delete: bool = False
    full_rescan: bool = False
    source: Path | None = None
    publish: bool = False

    @property
    def mode(self) -> pipeline.Mode:
        return "check" if self.command == "check" else "dry-run" if self.dry_run else "sync"

    @property
    def options(self) -> pipeline.Options:
        return pipeline.Options(
            self.mode, not self.no_rename, self.allow_mass_delete, self.full_rescan
        )


def main(argv: Sequence[str] | None = None, *, sleep: Callable[[float], None] = time.sleep) -> int:
    """Entry point: the one place where a failure becomes the exit code (and `--json`'s
    object). A run waits between Google calls with `sleep` (tests pass their quota clock's)."""
    request = parse_args(sys.argv[1:] if argv is None else argv)
    env = settings.read_env(Path(".env"))  # the working directory's; tests give their own
    if request.command == "doctor":
        from . import doctor

        configure_logging(log_level("WARNING", request.verbose, request.quiet))
        return doctor.main(env, out=sys.stdout)
    try:
        needs_drive = request.source is None and request.command not in ("demo", "status")
        config = settings.load(env, needs_drive=needs_drive)
    except ConfigError as exc:  # logging is not set up yet: one line each on stderr
        print("\n".join(f"configuration: {line}" for line in exc.problems), file=sys.stderr)
        if request.command != "status":
            if request.json:
                _print(RunSummary(request.mode).failed("settings", exc).summary)
            return exc.exit_code
        config = settings.Settings(cache_dir=Path(env.get("CACHE_DIR") or "cache"))
    if request.command == "status":  # a broken setting (said above) does not stop it
        from . import status

        info = status.gather(lastrun.folder(config.cache_dir, request.source))
        _print(info if request.json else status.text(info, tz=config.tz))
        return 0 if info["ok"] else 1
    if request.command == "demo":
        base = env.get("LOG_LEVEL", "").upper() or "ERROR"
        configure_logging(log_level(base, request.verbose, request.quiet), config.tz)
        from .demo import run_demo

        return run_demo(config)
    configure_logging(log_level(config.log_level, request.verbose, request.quiet), config.tz)
    tel = start_telemetry(config)
    try:
        if request.command == "schedule":
            return _schedule(config, tel)
        with _interrupts_raise() as settled:
            return _one_run(request, config, tel, settled, sleep)
    finally:
        tel.close()


@contextlib.contextmanager
def _interrupts_raise() -> Iterator[Callable[[], None]]:
    """A one-off run: SIGINT and SIGTERM end it like an error (recorded, exit 130 / 143).
    Once the run has ended (`settled()`) or a signal was taken, others wait for the record."""
    done = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        if not done.is_set():
            done.set()
            raise KeyboardInterrupt if signum == signal.SIGINT else Interrupted(signum)
        log.info("%s received: the run is being recorded", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield done.set
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _schedule(config: settings.Settings, tel: telemetry.Telemetry) -> int:
    """`schedule`: a one-off sync at every time of `SCHEDULE`; 130 / 143 if a run was aborted."""
    minutes = int(config.run_timeout_s // 60) + 15  # the longest run Sentry expects
    job = partial(_one_run, Request(), config, tel, lambda: None)
    return schedule.serve(
        lambda: tel.checked_in(job, config.schedule, config.tz, minutes),
        schedule=config.schedule,
        tz=config.tz,
        cache_dir=config.cache_dir,
        run_timeout_s=config.run_timeout_s,
    )


def _one_run(
    request: Request,
    config: settings.Settings,
    tel: telemetry.Telemetry,
    settled: Callable[[], None],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """One sync, dry run or check, whatever its end: a sync is recorded (unless it gave up on
    the lock) and pinged, a failure goes to Sentry, `--json` prints its object (contract §8)."""
    mode = request.mode
    ping = telemetry.Healthcheck(config.healthcheck_url if mode == "sync" else "")
    ping.start()
    started = datetime.now(UTC)
    try:
        services = build_services(
            config,
            source=request.source,
            options=request.options,
            publish=request.publish,
            sleep=sleep,
        )
        with services.store:
            run = pipeline.run(run_config(config), request.options, services)
            settled()  # a signal from here on waits for the record
    except (Exception, KeyboardInterrupt, Interrupted) as exc:  # building the adapters
        settled()
        log_failure(exc)
        run = RunSummary(mode).failed("setup", exc)
        log.info("%s", run.line())
    line, code = run.line(), run.exit_code
    if mode == "sync" and code != Locked.exit_code:
        lastrun.save(
            lastrun.folder(config.cache_dir, request.source),
            run,
            started=started,
            finished=datetime.now(UTC),
            headline=line,
            mongo_lines=run.mongo_lines,
            zone=ZoneInfo(config.tz),
        )
        why = "; ".join(f"{k}: {v}" for k, v in run.small["failed"].items())
        ping.finish(code, line if code == 0 else f"exit {code}: {why}\n{line}")
    _to_sentry(tel, run, line)
    if request.json:
        _print(run.summary)
    elif mode != "sync":
        _print(run.text_for(verbose=mode != "check" or request.verbose > 0))
    return code


def _to_sentry(tel: telemetry.Telemetry, run: RunSummary, line: str) -> None:
    """Each bug's traceback, and a failed run's exit code and line."""
    for exc in run.failures.values():
        if not isinstance(exc, RunError):
            tel.report_failure(exc, exit_code=1)
    if run.exit_code and not (run.mode == "check" and run.exit_code == 1):  # 1: out of sync
        tel.report_failure(exit_code=run.exit_code, message=line)


def _print(out: str | dict[str, Any]) -> None:
    """Text, or a dict as JSON, on stdout; a reader that went away (`| head`) ends it quietly."""
    text = out if isinstance(out, str) else json.dumps(out, ensure_ascii=False, indent=2)
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # later writes (and the last flush) go nowhere instead of failing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
