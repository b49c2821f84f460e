"""Command line: parse arguments, load settings, run, map errors to exit codes (contract §5, §7).

Everything here is thin; the work is done by functions that can be called from Python.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from . import pipeline, schedule, settings, sources, telemetry
from .errors import CHECK_FAILED, ConfigError, Locked, RunError
from .local import LocalFolderSource

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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; `sync` is the default command."""
    parser = argparse.ArgumentParser(
        prog="main.py",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

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

    sync = commands.add_parser(
        "sync", help="one run: drive → MongoDB and sheet (the default)", epilog=EPILOG
    )
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
    check = commands.add_parser(
        "check",
        help="exit 0 if MongoDB and the sheet already match the drive, 1 if not, "
        "5 if it could not check",
        epilog=EPILOG,
    )
    run_options(check)
    commands.add_parser("schedule", help="run forever on SCHEDULE (the container's command)")
    commands.add_parser("demo", help="the whole pipeline on the bundled sample, no accounts")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse `argv`; with no command (or only options), `sync` is meant."""
    parser = build_parser()
    argv = list(argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["sync", *argv]
    return parser.parse_args(argv)


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
    env = settings.read_env()
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
        configure_logging(env.get("LOG_LEVEL", "").upper() or "ERROR", config.tz)
        from .demo import run_demo

        return _guarded(lambda: run_demo(config), None)
    configure_logging(config.log_level, config.tz)
    tel = telemetry.init(config)
    try:
        if command == "schedule":
            return schedule.serve(
                lambda: _guarded(lambda: _run_once(args, config, tel, "sync"), tel),
                schedule=config.schedule,
                tz=config.tz,
                cache_dir=config.cache_dir,
                on_failure=tel.report_exit,
            )
        return _guarded(lambda: _run_once(args, config, tel, command), tel)
    except KeyboardInterrupt:
        return 130
    finally:
        tel.close()


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
    try:
        services = build_services(
            config,
            source=getattr(args, "source", None),
            options=options,
            publish=getattr(args, "publish", False),
        )
        services.report_error = lambda exc: tel.report_failure(exc, exit_code=1)
        try:
            outcome = pipeline.run(config, options, services)
        finally:
            services.store.close()
    except BaseException as exc:
        # Every exit path prints its one JSON object (contract §8), and `check` says
        # "could not check" (5) rather than "out of sync" (1).
        code = exc.exit_code if isinstance(exc, RunError) else 1
        if mode == "check" and code == RunError.exit_code:
            code = CHECK_FAILED
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
    from .store import Store

    renames = options.rename and config.rename_files and options.mode == "sync"
    tree_source: sources.Source
    trying = source is not None and not publish and options.mode == "sync"
    if source is not None:
        tree_source = sources.LocalTree(LocalFolderSource(source), allow_renames=renames)
    else:
        from .drive import DriveSource

        tree_source = sources.DriveTree(DriveSource.from_settings(config, renames=renames))
    sheet_report = None
    skipped = "SHEET_URL is not set"
    if config.sheet_url and trying:
        skipped = "a local --source writes no sheet (add --publish to write SHEET_URL's)"
    elif config.sheet_url:
        from .sheet import connect as sheet_connect

        sheet_report = sheet_connect(config)
    if trying and not config.mongo_uri.startswith("mongomock:"):
        log.warning(
            "a local --source uses an in-process MongoDB, not MONGO_URI "
            "(add --publish to write MONGO_URI's database)"
        )
        store = Store.connect("mongomock://", config.mongo_db)
    else:
        store = Store.from_settings(config)
    return pipeline.Services(tree_source, store, sheet_report, sheet_skipped=skipped)
