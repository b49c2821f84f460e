"""The README's command and option tables match `--help`, so they cannot drift apart;
every subcommand has a description; the top-level help summarises the settings."""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import backtest_compilation
from backtest_compilation import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def table_after(heading: str) -> list[list[str]]:
    """The rows (cells) of the first Markdown table after the line `heading`."""
    text = README.split(heading, 1)[1]
    rows = []
    started = False
    for line in text.splitlines():
        if line.startswith("|"):
            started = True
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not set("".join(cells)) <= set("- "):
                rows.append(cells)
        elif started:
            break
    return rows[1:]  # without the header row


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def options(parser: argparse.ArgumentParser) -> set[str]:
    shown = [a for a in parser._actions if a.help != argparse.SUPPRESS]  # as --help shows
    return {s for a in shown for s in a.option_strings if s not in ("-h", "--help")}


def test_the_commands_table_lists_exactly_the_subcommands() -> None:
    rows = table_after("## Commands")
    documented = set()
    for first, *_ in rows:
        documented.update(re.findall(r"`uv run main\.py ([a-z]+)`", first))
    assert documented == set(subparsers())


def test_the_option_tables_match_the_parsers() -> None:
    subs = subparsers()
    run_rows = table_after("Options of `sync` (and, where they make sense, `check`):")
    every_rows = table_after("Options of every command:")
    run_documented = {o for row in run_rows for o in re.findall(r"`(-[-a-z]+)", row[0])}
    every_documented = {
        o
        for row in every_rows
        for o in re.findall(r"`(-[-a-z]+)", row[0])
        if "status" not in row[0]
    }
    common = {"-v", "--verbose", "-q", "--quiet"}
    assert run_documented == options(subs["sync"]) - common
    assert options(subs["check"]) - common <= run_documented
    assert every_documented == common | {"--version"}
    for name, sub in subs.items():
        assert common <= options(sub), name
    assert options(cli.build_parser()) == common | {"--version"}
    assert "`status --json`" in str(every_rows) and "--json" in options(subs["status"])


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_subcommand_has_a_description(command: str) -> None:
    sub = subparsers()[command]
    assert sub.description and len(sub.description) > 40
    help_text = sub.format_help()
    assert sub.description.split()[0] in help_text


def test_the_top_level_help_summarises_the_settings() -> None:
    text = cli.build_parser().format_help()
    for name in ("FOLDER_ID", "DELEGATE_EMAIL", "SHEET_URL", "MONGO_URI", "CACHE_DIR",
                 "SCHEDULE", "HEALTHCHECK_URL", "SENTRY_DSN", "LOG_LEVEL"):  # fmt: skip
        assert re.search(rf"^  {name}\b", text, re.MULTILINE), name
    assert cli.COMMANDS
    for command in cli.COMMANDS:
        assert re.search(rf"^    {command} ", text, re.MULTILINE), command


def test_version_matches_the_project() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE)
    assert version and backtest_compilation.__version__ == version.group(1)
    out = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == f"main.py {version.group(1)}"


@pytest.mark.parametrize(
    ("argv", "command", "level"),
    [
        ([], "sync", "INFO"),
        (["-v"], "sync", "DEBUG"),
        (["-q", "check"], "check", "WARNING"),
        (["sync", "-qq", "--dry-run"], "sync", "ERROR"),
        (["--source", "x", "-v"], "sync", "DEBUG"),
        (["status", "--json"], "status", "INFO"),
    ],
)
def test_verbosity_and_the_default_command(argv: list[str], command: str, level: str) -> None:
    args = cli.parse_args(argv)
    assert args.command == command
    assert cli.log_level("INFO", args.verbose, args.quiet) == level


def test_declared_dependencies_cover_what_the_code_imports() -> None:
    from importlib.metadata import packages_distributions

    pyproject = (ROOT / "pyproject.toml").read_text()
    block = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    declared = {
        re.split(r"[<>=~ ]", d.strip().strip('",'))[0].lower()
        for d in block.split("\n")
        if d.strip()
    }
    dists = packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    imported = set()
    for path in (ROOT / "backtest_compilation").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            imported.update(n.split(".")[0] for n in names if n.split(".")[0] not in stdlib)
    assert imported
    for name in sorted(imported):
        owners = {d.lower() for d in dists.get(name, [])}
        assert owners & declared, (
            f"{name} is imported but {owners or 'its package'} is not declared"
        )
    assert "tzdata" in declared  # zoneinfo on slim images without system time zones


def test_mongomock_is_imported_only_for_mongomock_uris() -> None:
    code = (
        "import sys; from backtest_compilation import cli, pipeline, store, doctor, status; "
        "from backtest_compilation.store import Store; "
        "assert 'mongomock' not in sys.modules, 'imported too early'; "
        "Store.connect('mongomock://x', 'db').close(); "
        "assert 'mongomock' in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
