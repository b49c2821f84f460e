"""Command line: parse arguments, load settings, run, map errors to exit codes (SPEC §5, §7).

Everything here is thin; the work is done by functions that can be called from Python.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from . import catalog as catalog_mod
from . import report, settings
from .errors import ConfigError, RunError
from .local import LocalFolderSource

log = logging.getLogger("backtest_compilation")

DESCRIPTION = """\
Keep the backtest drive, the website's MongoDB collections and the tracking sheet in
agreement. Reads the drive, normalises test file names, reports naming problems to the
sheet and publishes exactly what the drive holds. Settings come from the environment
and .env (see README.md)."""

EPILOG = """\
exit codes: 0 success (drive problems are data), 1 runtime failure, 2 configuration,
3 mass-delete guard refused, 4 another run holds the lock"""


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
            help="read a local folder laid out like the drive instead of Google Drive",
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
        help="exit 0 if MongoDB and the sheet already match the drive, 1 if not",
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


def configure_logging(level: str) -> None:
    """Plain lines on stderr, cron-readable; stdout is kept for --json."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
        force=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the process exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        env = settings.read_env()
        source = getattr(args, "source", None)
        config = settings.load(env, needs_drive=source is None and args.command != "demo")
        configure_logging(config.log_level)
        if args.command == "sync" and source is not None:
            return _sync_local(args, config)
        raise ConfigError(f"'{args.command}' without --source arrives with the pipeline")
    except ConfigError as exc:
        for line in exc.problems:
            print(f"configuration: {line}", file=sys.stderr)
        return exc.exit_code
    except RunError as exc:
        log.error("%s", exc)
        return exc.exit_code


def _sync_local(args: argparse.Namespace, config: settings.Settings) -> int:
    tree = LocalFolderSource(args.source).read()
    built = catalog_mod.build(
        tree, today=date.today(), future_year_exempt=config.future_year_exempt
    )
    for p in built.problems:
        log.warning("%s", p.message)
    if args.json:
        out = {
            "mode": "dry-run" if args.dry_run else "sync",
            "ok": True,
            "exit_code": 0,
            "catalog": report.catalog_block(built),
            "problems": report.problems_block(built),
            "renames": report.renames_block(built),
        }
        json.dump(out, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(report.catalog_text(built))
    return 0
