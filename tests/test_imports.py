"""An unchanged run imports nothing it does not use (issue 13): checked on a real CLI
process with `python -X importtime`, which lists every module the process imported (the
process counts its waits on the emulators' quota clock: `forkserver.command`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from backtest_compilation import sample
from backtest_compilation.local import LocalFolderSource
from emulators.drive import DriveEmulator
from emulators.google import QuotaClock
from emulators.sheets import SheetsEmulator
from tests.support.forkserver import command
from tests.support.isolation import environment

# Modules a run loads only when the setting that needs them is set.
OPTIONAL = ("gspread", "requests", "mongomock", "sentry_sdk")
KEY = "1ImportsSheet"
COPIES = "Physical Copies of Backtests"


def imported(stderr: str) -> set[str]:
    """Top-level packages named by `-X importtime` lines (`import time: … | pkg.mod`)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.mongo_server
@pytest.mark.parametrize("with_sheet", [False, True], ids=["no sheet", "sheet configured"])
def test_an_unchanged_run_imports_no_optional_module(
    tmp_path: Path,
    drive_emulator: DriveEmulator,
    sheets_emulator: SheetsEmulator,
    mongo_server: Any,  # tests' MongoServer: only its `uri` is used
    mongo_db_name: str,
    with_sheet: bool,
    quota_clock: QuotaClock,
) -> None:
    tree = LocalFolderSource(sample.SAMPLE_DRIVE).read()
    drive_id = drive_emulator.add_drive("Backtests")
    drive_emulator.seed_tree(drive_id, tree)
    env = environment(
        FOLDER_ID=drive_id,
        DRIVE_API_ENDPOINT=drive_emulator.url,
        MONGO_URI=mongo_server.uri,
        MONGO_DB=mongo_db_name,
        CACHE_DIR=str(tmp_path / "cache"),
    )
    if with_sheet:
        sheets_emulator.add_spreadsheet(KEY)
        sheets_emulator.add_tab(KEY, COPIES)
        sheets_emulator.link_drive(drive_emulator)
        env["SHEET_URL"] = f"https://docs.google.com/spreadsheets/d/{KEY}/edit"
        env["SHEETS_API_ENDPOINT"] = sheets_emulator.url

    def sync() -> subprocess.CompletedProcess[str]:
        # The CLI's waits pass on the emulators' quota clock instead of being slept.
        quota_clock.between_runs()
        assert quota_clock.path is not None
        return subprocess.run(
            [sys.executable, "-X", "importtime", *command(quota_clock.path, ["sync"])[1:]],
            cwd=tmp_path,  # issue 17: the repository's .env once sent this run to a real sheet
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    cold = sync()
    assert cold.returncode == 0, cold.stderr[-3000:]
    # The cold run does use the sheet: the check below would catch a module never imported.
    assert ("gspread" in imported(cold.stderr)) is with_sheet
    unchanged = sync()
    assert unchanged.returncode == 0, unchanged.stderr[-3000:]
    assert "unchanged" in unchanged.stderr
    loaded = imported(unchanged.stderr)
    assert "backtest_compilation" in loaded
    assert sorted(m for m in OPTIONAL if m in loaded) == []
