"""Command line: parse arguments, load settings, run, map errors to exit codes (contract §5, §7).

Everything here is thin; the work is done by functions that can be called from Python.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from . import __version__, alerts, lastrun, pipeline, schedule, settings, sources, telemetry
from . import outcome as outcome_mod
from .errors import CHECK_FAILED, ConfigError, Locked, RunError
from .local import LocalFolderSource

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

    from .drive import DriveSource
    from .google import Deadline
    from .sheet import SheetReport
    from .sheet_layout import Layout as SheetLayout
    from .store import Store

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

ENVIRONMENT = """\
settings (environment or .env; README.md "Configuration" has them all):
  FOLDER_ID              shared drive or folder id of the backtest drive
  DELEGATE_EMAIL         user the service account acts as
  SHEET_URL              the tracking spreadsheet (unset: sheet step skipped)
  GOOGLE_CREDENTIALS_FILE  service-account key (config/service-credentials.json)
  MONGO_URI / MONGO_DB   the website's database (mongodb://localhost:27017 / apo_main)
  CACHE_DIR              state, lock, last-run.json, report.html (cache)
  SCHEDULE / TZ          cron expression and time zone of `schedule`
  RENAME_FILES           normalise file names in Drive (true)
  HEALTHCHECK_URL        dead-man's-switch monitor pinged by every sync
  SENTRY_DSN             error reporting and, under `schedule`, Sentry Crons
  LOG_LEVEL              DEBUG, INFO, WARNING, ERROR (INFO; -v/-q change it)"""

STATUS_EPILOG = """\
exit codes: 0 the last run succeeded (and, under `schedule`, the heartbeat is fresh),
1 otherwise (the container's HEALTHCHECK uses this)"""

DOCTOR_EPILOG = """\
exit codes: 0 a sync would work, 2 something must be fixed first (each ✗ line says how)"""


def _verbosity(p: argparse.ArgumentParser, *, default: object = 0) -> None:
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="more log lines (DEBUG) for this run; LOG_LEVEL stays the default",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=default,
        help="fewer log lines: -q warnings and errors, -qq errors only",
    )


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; `sync` is the default command."""
    parser = argparse.ArgumentParser(
        prog="main.py",
        description=DESCRIPTION,
        epilog=f"{ENVIRONMENT}\n\n{EPILOG}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _verbosity(parser)
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

    def run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
        p.add_argument(
            "--source",
            type=Path,
            metavar="PATH",
            help="read a local folder laid out like the drive instead of Google Drive "
            "(for trying things: writes no Google sheet and uses an in-process MongoDB "
            "unless --publish; without --dry-run it renames files in PATH)",
        )
        p.add_argument(
            "--publish",
            action="store_true",
            help="with --source: also write the sheet at SHEET_URL and the database at "
            "MONGO_URI, as a Drive run would",
        )
        p.add_argument(
            "--full-rescan",
            action="store_true",
            help="list the whole drive instead of following the changes feed",
        )

    sync = add("sync")
    run_options(sync)
    sync.add_argument(
        "--dry-run", action="store_true", help="print the plan; change nothing anywhere"
    )
    sync.add_argument("--no-rename", action="store_true", help="do not rename files in Drive")
    sync.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="apply even when the plan deletes many courses (see MAX_DELETE_FRACTION)",
    )
    check = add("check")
    run_options(check)
    add("schedule", None)
    add("demo", None)
    add("doctor", DOCTOR_EPILOG)
    status_cmd = add("status", STATUS_EPILOG)
    status_cmd.add_argument(
        "--json", action="store_true", help="print the status as one JSON object on stdout"
    )
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse `argv`; with no command (or only options), `sync` is meant."""
    parser = build_parser()
    argv = list(argv)
    # Leading -v/-q may come before the command; anything else that is an option means sync.
    lead = 0
    while lead < len(argv) and argv[lead] in ("-v", "-vv", "-q", "-qq", "--verbose", "--quiet"):
        lead += 1
    rest = argv[lead:]
    if not rest or (rest[0].startswith("-") and rest[0] not in ("-h", "--help", "--version")):
        argv = [*argv[:lead], "sync", *rest]
    return parser.parse_args(argv)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the process exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = args.command or "sync"
    verbose, quiet = getattr(args, "verbose", 0), getattr(args, "quiet", 0)
    env = settings.read_env()
    if command == "doctor":
        from . import doctor

        configure_logging(log_level("WARNING", verbose, quiet))
        return doctor.main(env, out=sys.stdout)
    if command == "status":
        return _status(args, env)
    try:
        source = getattr(args, "source", None)
        needs_drive = source is None and command != "demo"
        config = settings.load(env, needs_drive=needs_drive)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"configuration: {line}", file=sys.stderr)
        if getattr(args, "json", False):
            _print_json(_failure(command, args, exc.exit_code, {"settings": str(exc)}))
        return exc.exit_code
    if command == "demo":
        base = env.get("LOG_LEVEL", "").upper() or "ERROR"
        configure_logging(log_level(base, verbose, quiet), config.tz)
        from .demo import run_demo

        return _guarded(lambda: run_demo(partial(demo_config, config), config.mongo_db), None)
    configure_logging(log_level(config.log_level, verbose, quiet), config.tz)
    tel = start_telemetry(config)
    try:
        if command == "schedule":
            monitor = telemetry.monitor_config(
                config.schedule,
                config.tz,
                max_runtime_min=int(getattr(config, "run_timeout_s", 2700) // 60) + 15,
            )
            return schedule.serve(
                lambda: tel.checked_in(
                    lambda: _guarded(lambda: _run_once(args, config, tel, "sync"), tel), monitor
                ),
                schedule=config.schedule,
                tz=config.tz,
                cache_dir=config.cache_dir,
                on_failure=tel.report_exit,
                run_timeout_s=config.run_timeout_s,
            )
        return _guarded(lambda: _run_once(args, config, tel, command), tel)
    except KeyboardInterrupt:
        return 130
    finally:
        tel.close()


def _status(args: argparse.Namespace, env: dict[str, str]) -> int:
    """`status` (`--json`): exit 0 when the last run succeeded and the scheduler is alive.

    It needs only CACHE_DIR, SCHEDULE and TZ: another broken setting is mentioned on
    stderr but does not stop it (the health check must still say what the last run did)."""
    from . import status

    try:
        config = settings.load(env, needs_drive=False)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"configuration: {line}", file=sys.stderr)
        config = settings.Settings(cache_dir=Path(env.get("CACHE_DIR") or "cache"))
    info = status.gather(config.cache_dir, schedule_expr=config.schedule, tz=config.tz)
    if getattr(args, "json", False):
        json.dump(info, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(status.text(info, tz=config.tz))
    return 0 if info["ok"] else 1


def _guarded(job: Callable[[], int], tel: telemetry.Telemetry | None) -> int:
    """Run `job`, mapping the run's errors to exit codes (contract §5.11)."""
    try:
        return job()
    except ConfigError as exc:
        for line in exc.problems:
            log.error("configuration: %s", line)
        return exc.exit_code
    except RunError as exc:
        log.error("%s", exc)
        if tel is not None and not isinstance(exc, Locked):
            tel.report_failure(exc, exit_code=exc.exit_code)
        return exc.exit_code
    except Exception as exc:  # a bug: logged with its traceback, for the bug report
        log.error("unexpected failure: %s: %s", type(exc).__name__, exc, exc_info=True)
        if tel is not None:
            tel.report_failure(exc, exit_code=1)
        return 1


def _run_once(
    args: argparse.Namespace, config: settings.Settings, tel: telemetry.Telemetry, command: str
) -> int:
    """One sync, dry run or check with the real adapters."""
    dry_run = getattr(args, "dry_run", False)
    mode: pipeline.Mode = "check" if command == "check" else "dry-run" if dry_run else "sync"
    options = pipeline.Options(
        mode=mode,
        # In a dry run or check, renames are planned (and pending ones make check fail)
        # but never applied: the source is built without rename rights below.
        rename=not getattr(args, "no_rename", False),
        allow_mass_delete=getattr(args, "allow_mass_delete", False),
        full_rescan=getattr(args, "full_rescan", False),
    )
    as_json = getattr(args, "json", False)

    def execute() -> pipeline.Outcome:
        services = build_services(
            config,
            source=getattr(args, "source", None),
            options=options,
            publish=getattr(args, "publish", False),
        )
        services.report_error = lambda exc: tel.report_failure(exc, exit_code=1)
        try:
            return pipeline.run(run_config(config), options, services)
        finally:
            services.store.close()

    try:
        # A sync is recorded (last-run.json, report.html) and pinged whatever its end.
        outcome = _recorded_sync(config, execute) if mode == "sync" else execute()
    except BaseException as exc:
        # Every exit path prints its one JSON object (contract §8), and `check` says
        # "could not check" (5) rather than "out of sync" (1).
        code = outcome_mod.failure_exit_code(
            mode, exc.exit_code if isinstance(exc, RunError) else RunError.exit_code
        )
        if as_json and isinstance(exc, Exception):
            summary = getattr(exc, "summary", None)
            if not isinstance(summary, dict):
                stage = "lock" if isinstance(exc, Locked) else "setup"
                why = str(exc) if isinstance(exc, RunError) else f"{type(exc).__name__}: {exc}"
                summary = _failure(mode, args, code, {stage: why})
            _print_json({**summary, "ok": False, "exit_code": code})
        if mode == "check" and code == CHECK_FAILED and isinstance(exc, Exception):
            if isinstance(exc, RunError):
                log.error("%s", exc)
            else:  # a bug: with its traceback, for the bug report
                log.error("unexpected failure: %s: %s", type(exc).__name__, exc, exc_info=True)
            log.error("check: could not check (exit %d)", CHECK_FAILED)
            tel.report_failure(exc, exit_code=code)
            return code
        raise
    tel.report_summary(outcome.summary)
    if as_json:
        _print_json(outcome.summary)
    elif mode != "sync":
        print(outcome.text)
    return outcome.exit_code


def _recorded_sync(
    config: settings.Settings, execute: Callable[[], pipeline.Outcome]
) -> pipeline.Outcome:
    """`execute` (a sync) between healthcheck pings, leaving `last-run.json` and
    `report.html` in CACHE_DIR whatever its end (contract §7); a run that raised is
    recorded, then re-raised."""
    ping = alerts.Healthcheck(config.healthcheck_url)
    ping.start()
    started = datetime.now(UTC)
    try:
        outcome = execute()
    except Locked:
        raise  # the run holding the lock records itself; this one changed nothing
    except Exception as exc:
        code = exc.exit_code if isinstance(exc, RunError) else 1
        why = str(exc) if isinstance(exc, RunError) else f"unexpected failure: {type(exc).__name__}"
        summary = getattr(exc, "summary", None)
        if not isinstance(summary, dict):
            summary = lastrun.failure_summary("sync", code, why)
        summary = {**summary, "ok": False, "exit_code": code}
        lastrun.save(
            config.cache_dir,
            summary,
            started=started,
            finished=datetime.now(UTC),
            headline=f"sync failed with exit code {code}: {why}",
            error=why,
        )
        ping.fail(f"exit {code}: {why}")
        ping.wait()
        raise
    line = outcome_mod.summary_line(outcome.summary)
    lastrun.save(
        config.cache_dir,
        outcome.summary,
        started=started,
        finished=datetime.now(UTC),
        headline=line,
        mongo_lines=outcome.mongo_lines,
    )
    ping.finish(outcome.exit_code, line)
    ping.wait()
    return outcome


def _print_json(summary: dict[str, object]) -> None:
    json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()


def _failure(
    command: str, args: argparse.Namespace, exit_code: int, failed: dict[str, str]
) -> dict[str, object]:
    """contract §8's object for a run that stopped before it knew anything else."""
    mode = (
        command
        if command in ("check", "dry-run")
        else "dry-run"
        if getattr(args, "dry_run", False)
        else "sync"
    )
    return {
        "mode": mode,
        "ok": False,
        "exit_code": exit_code,
        "failed": failed,
        "catalog": None,
        "problems": None,
        "renames": None,
        "mongo": None,
        "sheet": None,
        "api_calls": {"drive": 0, "sheets": 0, "mongo": 0},
        "timings_s": {},
    }


def run_config(config: settings.Settings) -> pipeline.RunConfig:
    """The values a run uses from `config` (the pipeline never reads `Settings`)."""
    return pipeline.RunConfig(
        cache_dir=config.cache_dir,
        zone=config.zone,
        future_year_exempt=frozenset(config.future_year_exempt),
        rename_files=config.rename_files,
        max_delete_fraction=config.max_delete_fraction,
        run_timeout_s=config.run_timeout_s,
        sheet_identity=(
            config.sheet_key,
            config.sheet_errors_tab,
            config.sheet_copies_tab,
            config.sheet_not_found_tab,
            config.sheet_count_column,
            config.sheet_stamp_cell,
        ),
    )


def demo_config(config: settings.Settings, cache_dir: Path) -> pipeline.RunConfig:
    """The demo's run: only harmless settings are taken from the environment (time zone,
    exempt departments), so it never talks to a real database, drive or sheet,
    whatever .env says."""
    demo = dataclasses.replace(
        settings.Settings(),
        cache_dir=cache_dir,
        tz=config.tz,
        future_year_exempt=config.future_year_exempt,
    )
    return run_config(demo)


def drive_source(
    config: settings.Settings,
    *,
    renames: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    deadline: Deadline | None = None,
) -> DriveSource:
    """The Drive adapter for `config`. `renames=False` for `--no-rename`/`--dry-run`/`check`:
    with renames off (here or `RENAME_FILES=false`) only the read-only scope is asked."""
    from . import google
    from .drive import SCOPE_READ, SCOPE_RENAME, DriveSource

    allow = pipeline.Options(rename=renames).renames_planned(config.rename_files)
    scopes = (SCOPE_READ, SCOPE_RENAME) if allow else (SCOPE_READ,)
    if config.drive_api_endpoint:
        from google.auth.credentials import AnonymousCredentials

        creds: Credentials = AnonymousCredentials()
    else:
        creds = google.credentials(config.google_credentials_file, config.delegate_email, scopes)
    return DriveSource(
        config.folder_id,
        credentials=creds,
        endpoint=config.drive_api_endpoint,
        delegate=config.delegate_email,
        scopes=scopes,
        allow_renames=allow,
        full_rescan_hours=config.full_rescan_hours,
        sleep=sleep,
        rename_stall_s=config.rename_stall_s,
        rename_budget_s=config.rename_budget_s,
        deadline=deadline or google.NO_DEADLINE,
    )


def build_services(
    config: settings.Settings,
    *,
    source: Path | None,
    options: pipeline.Options,
    publish: bool = False,
) -> pipeline.Services:
    """The real adapters for `config`: Drive (or a local folder), MongoDB, the sheet.

    A local `source` is for trying things: unless `publish`, a sync from it writes no
    Google sheet and uses an in-process MongoDB instead of a real one, so a try-out never
    overwrites what the website and the tracking sheet show. (`--dry-run` and `check`
    write nothing anywhere, so they compare with the real ones.)"""
    from .google import Deadline
    from .store import Store

    deadline = Deadline(config.run_timeout_s)
    renames = options.renames_applied(config.rename_files)
    tree_source: sources.Source
    trying = source is not None and not publish and options.mode == "sync"
    if source is not None:
        tree_source = sources.LocalTree(LocalFolderSource(source), allow_renames=renames)
    else:
        tree_source = sources.DriveTree(drive_source(config, renames=renames, deadline=deadline))
    sheet_report = None
    skipped = "SHEET_URL is not set"
    if config.sheet_url and trying:
        skipped = "a local --source writes no sheet (add --publish to write SHEET_URL's)"
    elif config.sheet_url:
        sheet_report = connect_sheet(config, deadline=deadline)
    if trying and not config.mongo_uri.startswith("mongomock:"):
        log.warning(
            "a local --source uses an in-process MongoDB, not MONGO_URI "
            "(add --publish to write MONGO_URI's database)"
        )
        store = Store.connect("mongomock://", config.mongo_db)
    else:
        store = connect_store(config, deadline=deadline)
    return pipeline.Services(
        tree_source, store, sheet_report, sheet_skipped=skipped, deadline=deadline
    )


# ---------------------------------------------------------------- adapters from settings
# The one place that turns `Settings` into adapter arguments: the adapters themselves
# take explicit values, and their modules are imported only when configured.


def sheet_layout(config: settings.Settings) -> SheetLayout:
    """The layout named by the `SHEET_*` settings (today's sheet by default)."""
    from .sheet_layout import Layout

    return Layout(
        errors_tab=config.sheet_errors_tab,
        copies_tab=config.sheet_copies_tab,
        not_found_tab=config.sheet_not_found_tab,
        count_column=config.sheet_count_column,
        stamp_cell=config.sheet_stamp_cell,
    )


def connect_sheet(
    config: settings.Settings,
    layout: SheetLayout | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    deadline: Deadline | None = None,
) -> SheetReport:
    """The report for `SHEET_URL`: anonymous when `SHEETS_API_ENDPOINT` is set, else the
    service-account key with delegation to `DELEGATE_EMAIL`. Makes no call yet.
    `layout` defaults to the one the `SHEET_*` settings name."""
    from . import google
    from .sheet import SCOPE, open_report

    layout = sheet_layout(config) if layout is None else layout
    if not config.sheet_key:
        raise ConfigError("SHEET_URL is not set: the sheet report needs the spreadsheet URL")
    credentials = None
    if not config.sheets_api_endpoint:
        credentials = google.credentials(
            config.google_credentials_file, config.delegate_email, (SCOPE,)
        )
    return open_report(
        config.sheet_key,
        endpoint=config.sheets_api_endpoint,
        credentials=credentials,
        layout=layout,
        tz=config.tz,
        sleep=sleep,
        who=config.delegate_email,
        deadline=google.NO_DEADLINE if deadline is None else deadline,
    )


def start_telemetry(config: settings.Settings) -> telemetry.Telemetry:
    """Sentry for `SENTRY_DSN` (a disabled handle without one), masking the DSN and the
    MongoDB password in everything it sends."""
    return telemetry.init(
        config.sentry_dsn,
        trace_rate=config.sentry_trace_rate,
        monitor_slug=config.sentry_monitor_slug,
        secrets=telemetry.secrets_of(sentry_dsn=config.sentry_dsn, mongo_uri=config.mongo_uri),
        release=__version__,
    )


def connect_store(
    config: settings.Settings, *, timeout_ms: int | None = None, deadline: Deadline | None = None
) -> Store:
    """The MongoDB store at `MONGO_URI`, database `MONGO_DB`; no operation outlives
    `deadline` (the run's)."""
    from .store import DEFAULT_TIMEOUT_MS, Store

    return Store.connect(
        config.mongo_uri,
        config.mongo_db,
        timeout_ms=DEFAULT_TIMEOUT_MS if timeout_ms is None else timeout_ms,
        deadline=deadline,
    )
