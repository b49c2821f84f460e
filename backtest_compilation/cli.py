"""Command line: parse arguments, load settings, run, map errors to exit codes (contract §5, §7).

Everything here is thin; the work is done by functions that can be called from Python.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from . import __version__, alerts, lastrun, pipeline, schedule, settings, telemetry
from .adapters import (
    build_services,
    run_config,
    start_telemetry,
)
from .errors import ConfigError, Locked, RunError
from .outcome import Interrupted, RunSummary, log_failure

log = logging.getLogger("backtest_compilation")


DESCRIPTION = """\
Keep the backtest drive, the website's MongoDB collections and the tracking sheet in
agreement. Reads the drive, normalises test file names, reports naming problems to the
sheet and publishes exactly what the drive holds. Settings come from the environment
and .env (see README.md)."""

EPILOG = """\
exit codes: 0 success (drive problems are data), 1 runtime failure, 2 configuration,
3 mass-delete guard refused, 4 another run holds the lock; check: 0 in sync, 1 out of
sync, 5 could not check (a service unreachable or failing)"""

ENVIRONMENT = settings.help_text()

STATUS_EPILOG = """\
exit codes: 0 the last run succeeded (and, under `schedule`, the heartbeat is fresh),
1 otherwise (the container's HEALTHCHECK uses this)"""

DOCTOR_EPILOG = """\
exit codes: 0 a sync would work, 2 something must be fixed first (each ✗ line says how)"""


def _verbosity(p: argparse.ArgumentParser, *, default: object = 0) -> None:
    for flag, help in (
        ("--verbose", "more log lines (DEBUG) for this run; LOG_LEVEL stays the default"),
        ("--quiet", "fewer log lines: -q warnings and errors, -qq errors only"),
    ):
        p.add_argument(flag[1:3], flag, action="count", default=default, help=help)


COMMANDS: dict[str, tuple[str, str]] = {
    "sync": (
        "one run: drive → MongoDB and sheet (the default)",
        "Read the drive, rename badly named test files, update MongoDB and the sheet, and "
        "leave CACHE_DIR/last-run.json and CACHE_DIR/report.html.",
    ),
    "check": (
        "exit 0 if MongoDB and the sheet already match the drive, 1 if not",
        "Build the plan without applying it: exit 0 when MongoDB and the sheet already "
        "match the drive and no rename is pending, 1 when not, 5 when it could not check. "
        "Changes nothing anywhere.",
    ),
    "schedule": (
        "run forever on SCHEDULE (the container's command)",
        "Run a sync at every time of SCHEDULE in TZ, at once if a run was missed; keep "
        "CACHE_DIR/heartbeat.json fresh; ping HEALTHCHECK_URL and report to Sentry Crons; "
        "on SIGTERM finish the current run and stop.",
    ),
    "demo": (
        "the whole pipeline on the bundled sample, no accounts",
        "Run the pipeline twice on a copy of the bundled sample drive with an in-process "
        "MongoDB; print the report and write demo-report.html. Needs no account or setting.",
    ),
    "doctor": (
        "check the whole set-up; say what to fix",
        "Check everything a sync needs, one ✓/✗ line each with the fix for each ✗: "
        "settings, the key file, a token for the sync's scopes, FOLDER_ID and the right to "
        "rename in it, the spreadsheet and its tabs, MongoDB and its write rights, "
        "CACHE_DIR, SENTRY_DSN, and the next three SCHEDULE times. Writes nothing anywhere.",
    ),
    "status": (
        "the last run, the last success, the scheduler and the lock",
        "Say when the last run ended and how (mode, exit code, counts, failed sinks, "
        "pending renames), when the last fully successful run was, the scheduler's next "
        "run and heartbeat age, and who holds the run lock. Reads only CACHE_DIR.",
    ),
}


# The options of `sync`; `check` takes those before `--dry-run`.
RUN_OPTIONS = (
    ("--json", "print one JSON summary on stdout"),
    (
        "--source PATH",
        "read a local folder laid out like the drive instead of Google Drive (for trying "
        "things: writes no Google sheet and uses an in-process MongoDB unless --publish; "
        "without --dry-run it renames files in PATH)",
    ),
    (
        "--publish",
        "with --source: also write the sheet at SHEET_URL and the database at MONGO_URI, "
        "as a Drive run would",
    ),
    ("--full-rescan", "list the whole drive instead of following the changes feed"),
    ("--dry-run", "print the plan; change nothing anywhere"),
    ("--no-rename", "do not rename files in Drive"),
    (
        "--allow-mass-delete",
        "apply even when the plan deletes many courses (see MAX_DELETE_FRACTION)",
    ),
)


def _run_options(p: argparse.ArgumentParser, *, check: bool, hidden: bool = False) -> None:
    """The options of `sync` or `check`. Without a value of their own (SUPPRESS), so one
    given before the command is not reset by it."""
    for flag, help in RUN_OPTIONS[: 4 if check else None]:
        name, _, metavar = flag.partition(" ")
        kind: dict[str, Any] = (
            {"type": Path, "metavar": metavar} if metavar else {"action": "store_true"}
        )
        shown = argparse.SUPPRESS if hidden else help
        p.add_argument(name, help=shown, default=argparse.SUPPRESS, **kind)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; `sync` is the default command: its options are also taken
    before any command (not shown there)."""
    parser = argparse.ArgumentParser(
        prog="main.py",
        description=DESCRIPTION,
        epilog=f"{ENVIRONMENT}\n\n{EPILOG}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _verbosity(parser)
    _run_options(parser, check=False, hidden=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, epilog: str | None = EPILOG) -> argparse.ArgumentParser:
        short, long = COMMANDS[name]
        sub = commands.add_parser(
            name,
            help=short,
            description=textwrap.fill(long, 88),
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # SUPPRESS: a -v given before the command is not reset by the subcommand's default.
        _verbosity(sub, default=argparse.SUPPRESS)
        return sub

    _run_options(add("sync"), check=False)
    _run_options(add("check"), check=True)
    add("schedule", None)
    add("demo", None)
    add("doctor", DOCTOR_EPILOG)
    status_cmd = add("status", STATUS_EPILOG)
    status_cmd.add_argument(
        "--json", action="store_true", help="print the status as one JSON object on stdout"
    )
    status_cmd.add_argument(
        "--source",
        type=Path,
        metavar="PATH",
        help="the runs of a local --source PATH (they keep their own record)",
    )
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse `argv`; with no command, `sync` is meant (`Request.of` reads it so)."""
    args = build_parser().parse_args(argv)
    args.command = args.command or "sync"
    return args


def log_level(base: str, verbose: int, quiet: int) -> str:
    """`base` (LOG_LEVEL) moved one step down per -v and one step up per -q."""
    order = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    index = order.index(base) if base in order else 1
    return order[max(0, min(len(order) - 1, index - verbose + quiet))]


class ZonedFormatter(logging.Formatter):
    """Time stamps in `TZ` with their offset (`2026-11-30 09:02:03.123-05:00`), so a log
    line reads like the schedule's messages whatever zone the machine is in."""

    def __init__(self, fmt: str, tz: str) -> None:
        super().__init__(fmt)
        self.zone = ZoneInfo(tz)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        at = datetime.fromtimestamp(record.created, self.zone)
        return at.isoformat(sep=" ", timespec="milliseconds")


def configure_logging(level: str, tz: str = settings.Settings.tz) -> None:
    """Plain lines on stderr, cron-readable; stdout is kept for --json and reports.
    Time stamps are in `tz` (the `TZ` setting) with the offset."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ZonedFormatter("%(asctime)s %(levelname)s %(message)s", tz))
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

    @classmethod
    def of(cls, args: argparse.Namespace) -> Request:
        given = vars(args)
        return cls(**{f.name: given[f.name] for f in fields(cls) if f.name in given})

    @property
    def mode(self) -> pipeline.Mode:
        return "check" if self.command == "check" else "dry-run" if self.dry_run else "sync"

    @property
    def options(self) -> pipeline.Options:
        # A dry run or check plans renames (pending ones make check fail), never applies
        # them: the source is built without rename rights.
        return pipeline.Options(
            self.mode, not self.no_rename, self.allow_mass_delete, self.full_rescan
        )


def main(argv: Sequence[str] | None = None, *, sleep: Callable[[float], None] = time.sleep) -> int:
    """Entry point: returns the process exit code. The one place where a command's
    failure becomes an exit code (and, with `--json`, its one JSON object). A run waits
    between Google calls with `sleep` (tests pass their quota clock's)."""
    request = Request.of(parse_args(sys.argv[1:] if argv is None else argv))
    env = settings.read_env(Path(".env"))  # the working directory's; tests give their own
    if request.command == "doctor":
        from . import doctor

        configure_logging(log_level("WARNING", request.verbose, request.quiet))
        return doctor.main(env, out=sys.stdout)
    if request.command == "status":
        return _status(request, env)
    try:
        needs_drive = request.source is None and request.command != "demo"
        config = settings.load(env, needs_drive=needs_drive)
    except ConfigError as exc:
        _say(exc)
        if request.json:
            _print_json(RunSummary(request.mode).failed("settings", exc).summary)
        return exc.exit_code
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
    """A one-off run: SIGINT and SIGTERM end it like an error (recorded, reported, its
    JSON printed, exit 130 / 143). Once the run has ended (the function yielded is
    called) or a signal has been taken, further signals wait for the record."""
    armed = True

    def settled() -> None:
        nonlocal armed
        armed = False

    def handle(signum: int, frame: FrameType | None) -> None:
        if armed:
            settled()
            raise KeyboardInterrupt if signum == signal.SIGINT else Interrupted(signum)
        log.info("%s received: the run is being recorded", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield settled
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _schedule(config: settings.Settings, tel: telemetry.Telemetry) -> int:
    """`schedule`: a sync at every time of `SCHEDULE` (each recorded and reported as a
    one-off sync is); exits 130 / 143 when a second stop request aborted a run, else 0."""
    minutes = int(config.run_timeout_s // 60) + 15  # the longest run Sentry expects
    job = partial(_one_run, Request(), config, tel, lambda: None)
    return schedule.serve(
        lambda: tel.checked_in(job, config.schedule, config.tz, minutes),
        schedule=config.schedule,
        tz=config.tz,
        cache_dir=config.cache_dir,
        run_timeout_s=config.run_timeout_s,
    )


def _status(request: Request, env: dict[str, str]) -> int:
    """`status` (`--json`): exit 0 when the last run succeeded and the scheduler is alive.

    It needs only CACHE_DIR, SCHEDULE and TZ: another broken setting is mentioned on
    stderr but does not stop it (the health check must still say what the last run did)."""
    from . import status

    try:
        config = settings.load(env, needs_drive=False)
    except ConfigError as exc:
        _say(exc)
        config = settings.Settings(cache_dir=Path(env.get("CACHE_DIR") or "cache"))
    where = lastrun.folder(config.cache_dir, request.source)
    info = status.gather(where, schedule_expr=config.schedule, tz=config.tz)
    if request.json:
        _print_json(info)
    else:
        _print(status.text(info, tz=config.tz))
    return 0 if info["ok"] else 1


def _one_run(
    request: Request,
    config: settings.Settings,
    tel: telemetry.Telemetry,
    settled: Callable[[], None],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """One sync, dry run or check with the real adapters, whatever its end: a sync is
    recorded (`lastrun`) and pinged (`HEALTHCHECK_URL`), a failure goes to Sentry, and
    `--json` prints the one JSON object (contract §8)."""
    ping = alerts.Healthcheck(config.healthcheck_url if request.mode == "sync" else "")
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
        try:
            run = pipeline.run(run_config(config), request.options, services)
            settled()  # a signal from here on waits for the record
        finally:
            services.store.close()
    except (Exception, KeyboardInterrupt, Interrupted) as exc:  # building the adapters
        settled()
        log_failure(exc)
        run = RunSummary(request.mode).failed("setup", exc)
        log.info("%s", run.line())
    _tell(request, config, tel, run, started, ping)
    return run.exit_code


def _tell(
    request: Request,
    config: settings.Settings,
    tel: telemetry.Telemetry,
    run: RunSummary,
    started: datetime,
    ping: alerts.Healthcheck,
) -> None:
    """Record a sync (unless it gave up on the lock: the run holding it records itself),
    ping the monitor, report to Sentry, print the JSON object or the text."""
    line, mode = run.line(), request.mode
    if mode == "sync" and run.exit_code != Locked.exit_code:
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
        ping.finish(run.exit_code, line if run.ok else f"exit {run.exit_code}: {why}\n{line}")
    if tel.enabled:  # rendering an unchanged run's whole summary reads its catalog
        tel.report_summary(run.summary)
    for exc in run.failures.values():
        if not isinstance(exc, RunError):  # a bug: its traceback to Sentry
            tel.report_failure(exc, exit_code=1)
    if run.exit_code and not (mode == "check" and run.exit_code == 1):  # 1: out of sync
        tel.report_failure(exit_code=run.exit_code, message=line)
    if request.json:
        _print_json(run.summary)
    elif mode != "sync":
        _print(run.text_for(verbose=mode != "check" or request.verbose > 0))


def _say(exc: ConfigError) -> None:
    """Configuration problems, one line each on stderr (logging is not set up yet)."""
    print("\n".join(f"configuration: {line}" for line in exc.problems), file=sys.stderr)


def _print(text: str) -> None:
    """`text` on stdout; a reader that went away (`| head`) ends the output quietly."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Later writes (and the interpreter's last flush) go nowhere instead of failing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _print_json(summary: dict[str, object]) -> None:
    _print(json.dumps(summary, ensure_ascii=False, indent=2))
