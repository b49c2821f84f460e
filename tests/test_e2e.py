"""End to end with every real part: the Drive v3 emulator and the Sheets v4 emulator over
HTTP (real google-api-python-client and gspread), and the real MongoDB-wire server.

Cold run, warm unchanged run (no writes), a drive change (exactly the delta), a course
renamed in Drive (same website `_id`), a crash between two sinks (converges next run),
dry-run and check (nothing changes anywhere), and the CLI's exit codes and JSON.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from backtest_compilation import adapters, pipeline, sample, sources
from backtest_compilation.adapters import run_config
from backtest_compilation.drive import DriveSource
from backtest_compilation.local import LocalFolderSource
from backtest_compilation.settings import Settings
from backtest_compilation.store import Store
from emulators.drive import DriveEmulator
from emulators.sheets import SheetsEmulator
from tests.support.fixtures_mongo import MongoServer
from tests.support.forkserver import command
from tests.support.isolation import environment
from tests.support.website import expected_view, visit, without_ids

pytestmark = pytest.mark.mongo_server

KEY = "1EndToEndSheet"
COPIES = "Physical Copies of Backtests"
NOW = datetime(2026, 11, 21, 15, 2, tzinfo=UTC)


@pytest.fixture
def shared_drive(drive_emulator: DriveEmulator) -> str:
    """A shared drive holding the bundled sample drive; returns its id."""
    tree = LocalFolderSource(sample.SAMPLE_DRIVE).read()
    drive_id = drive_emulator.add_drive("Backtests")
    drive_emulator.seed_tree(drive_id, tree)
    return drive_id


@pytest.fixture
def sheet_key(sheets_emulator: SheetsEmulator) -> str:
    sheets_emulator.add_spreadsheet(KEY)
    sheets_emulator.add_tab(KEY, COPIES)
    sheets_emulator.set_values(
        KEY,
        COPIES,
        "A1",
        [
            ["Course", "Title", "", "", "Physical", "Digital"],
            ["CSCI-1200 Data Structures", "", "", "", 2, 9],
            ["", "Calculus I", "", "", 1, 0],
            ["PHYS-1100", "Physics I", "", "", 3, 1],
        ],
    )
    return KEY


@pytest.fixture
def world(
    tmp_path: Path,
    shared_drive: str,
    sheet_key: str,
    drive_emulator: DriveEmulator,
    sheets_emulator: SheetsEmulator,
    mongo_server: MongoServer,
    mongo_db_name: str,
) -> Iterator[dict[str, Any]]:
    settings = replace(
        Settings(),
        folder_id=shared_drive,
        cache_dir=tmp_path / "cache",
        mongo_uri=mongo_server.uri,
        mongo_db=mongo_db_name,
        sheet_url=f"https://docs.google.com/spreadsheets/d/{sheet_key}/edit",
        drive_api_endpoint=drive_emulator.url,
        sheets_api_endpoint=sheets_emulator.url,
    )
    sheets_emulator.link_drive(drive_emulator)  # the spreadsheet is a Drive file too
    store = Store.connect(settings.mongo_uri, settings.mongo_db)
    yield {
        "settings": settings,
        "store": store,
        "drive": drive_emulator,
        "sheets": sheets_emulator,
        "drive_id": shared_drive,
    }
    store.close()


def services(world: dict[str, Any], *, renames: bool = True) -> pipeline.Services:
    """The CLI's adapters; their waits pass on the emulators' quota clock, not slept."""
    clock = world["drive"].clock
    drive = DriveSource(
        world["settings"].folder_id,
        credentials=AnonymousCredentials(),
        endpoint=world["settings"].drive_api_endpoint,
        allow_renames=renames,
        sleep=clock.sleep,
    )
    return pipeline.Services(
        sources.DriveTree(drive),
        world["store"],
        adapters.connect_sheet(world["settings"], sleep=clock.sleep),
        clock=lambda: NOW,
    )


def run(world: dict[str, Any], **options: Any) -> pipeline.RunSummary:
    world["drive"].clock.between_runs()  # runs are hours apart
    renames = options.get("rename", True) and options.get("mode", "sync") == "sync"
    return pipeline.run(
        run_config(world["settings"]), pipeline.Options(**options), services(world, renames=renames)
    )


def drive_names(emulator: DriveEmulator) -> dict[str, str]:
    return {f.id: f.name for f in emulator.files.values()}


def test_cold_run_publishes_and_warm_run_writes_nothing(world: dict[str, Any]) -> None:
    drive: DriveEmulator = world["drive"]
    sheets: SheetsEmulator = world["sheets"]
    cold = run(world)
    assert cold.exit_code == 0, cold.summary.get("failed")
    db = world["store"].database
    assert without_ids(visit(db)) == expected_view(cold.catalog)
    assert cold.summary["renames"]
    assert all(r["applied"] for r in cold.summary["renames"])
    names = set(drive_names(drive).values())
    assert {r["to"] for r in cold.summary["renames"]} <= names
    # Reading the drive takes a few calls (the root, the start token, one query per level
    # of the tree); the 10 renames as many batches as Drive's write
    # limit (3 a second, burst 3: Google's) makes them, each refused part tried again, and
    # before each batch one read of the changes feed (issue 18: a person's change wins).
    batches = drive.stats.by_method["batch"]
    assert cold.summary["api_calls"]["drive"] - 2 * batches <= 7
    assert drive.stats.batch_parts <= 5 * len(cold.summary["renames"])
    assert sheets.value(KEY, COPIES, "F2") == 2  # CSCI-1200 by full name
    assert sheets.value(KEY, COPIES, "F4") == 4  # PHYS-1100 by code

    drive.reset_stats()
    writes = sheets.writes()
    warm = run(world)
    assert warm.exit_code == 0
    assert warm.summary["unchanged"] is True
    assert warm.summary["api_calls"]["drive"] <= 2
    assert warm.summary["api_calls"]["sheets"] == 0
    assert warm.summary["api_calls"]["mongo"] == 3  # the drift check's three reads
    assert warm.summary["mongo"] == {"inserted": 0, "updated": 0, "deleted": 0, "in_sync": True}
    assert sheets.writes() == writes
    assert drive.stats.renames == 0


def test_a_drive_change_applies_exactly_the_delta(world: dict[str, Any]) -> None:
    run(world)
    drive: DriveEmulator = world["drive"]
    physics = next(f.id for f in drive.files.values() if f.name == "PHYS-1100 Physics I")
    drive.add_file(physics, "PHYS-1100 E4F23.pdf")
    outcome = run(world)
    assert outcome.summary["drive"] == {"changed": True, "full": False}
    assert outcome.mongo_lines == ("~ backtest PHYS-1100 Physics I: Exam 4 +Fall 2023",)
    assert outcome.summary["mongo"] == {"inserted": 0, "updated": 1, "deleted": 0, "in_sync": True}
    assert world["sheets"].value(KEY, COPIES, "F4") == 5


def test_a_course_renamed_in_drive_keeps_its_id(world: dict[str, Any]) -> None:
    run(world)
    drive: DriveEmulator = world["drive"]
    db = world["store"].database
    folder = next(f for f in drive.files.values() if f.name == "MATH-4100 Linear Algebra")
    before = db["backtest_courses_collection"].find_one({"folder_id": folder.id})["_id"]
    drive.rename(folder.id, "MATH-4100 Linear Algebra and Matrices")
    outcome = run(world)
    assert outcome.mongo_lines[0].startswith("~ course MATH-4100 Linear Algebra and Matrices")
    after = db["backtest_courses_collection"].find_one({"folder_id": folder.id})
    assert after["_id"] == before and after["name"] == "MATH-4100 Linear Algebra and Matrices"


class Killed(BaseException):
    """Stands in for the process dying: not an error any sink would catch."""


def test_a_crash_between_two_sinks_converges_on_the_next_run(world: dict[str, Any]) -> None:
    crashing = services(world)
    assert crashing.sheet is not None

    def die(*_args: Any, **_kwargs: Any) -> Any:
        raise Killed

    crashing.sheet.publish = die  # type: ignore[method-assign]
    with pytest.raises(Killed):
        pipeline.run(run_config(world["settings"]), pipeline.Options(), crashing)
    db = world["store"].database
    ids = {d["name"]: d["_id"] for d in db["backtest_courses_collection"].find()}
    assert ids  # MongoDB was applied before the "kill"
    again = run(world)
    assert again.exit_code == 0
    assert again.summary["sheet"]["written"] is True
    assert again.summary["mongo"]["inserted"] == again.summary["mongo"]["deleted"] == 0
    assert {d["name"]: d["_id"] for d in db["backtest_courses_collection"].find()} == ids
    assert without_ids(visit(db)) == expected_view(again.catalog)


@pytest.mark.parametrize("mode", ["dry-run", "check"])
def test_dry_run_and_check_change_nothing_anywhere(world: dict[str, Any], mode: str) -> None:
    drive: DriveEmulator = world["drive"]
    sheets: SheetsEmulator = world["sheets"]
    names, sheet_before = drive_names(drive), sheets.snapshot(KEY)
    outcome = run(world, mode=mode, rename=False)
    assert outcome.exit_code == (1 if mode == "check" else 0)
    assert drive_names(drive) == names
    assert drive.stats.renames == 0
    assert sheets.snapshot(KEY) == sheet_before
    assert world["store"].database.list_collection_names() == []
    assert not list(world["settings"].cache_dir.glob("*/state.json"))


def cli(world: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh interpreter, a quota window after the last run; its waits
    pass on the emulators' quota clock instead of being slept (`forkserver.command`)."""
    s: Settings = world["settings"]
    clock = world["drive"].clock
    clock.between_runs()
    env = environment(
        FOLDER_ID=s.folder_id,
        DRIVE_API_ENDPOINT=s.drive_api_endpoint,
        SHEETS_API_ENDPOINT=s.sheets_api_endpoint,
        SHEET_URL=s.sheet_url,
        MONGO_URI=s.mongo_uri,
        MONGO_DB=s.mongo_db,
        CACHE_DIR=str(s.cache_dir),
    )
    return subprocess.run(
        command(clock.path, list(args)),
        cwd=s.cache_dir.parent,  # the test's tmp_path: no .env there
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_syncs_checks_and_prints_one_json_object(world: dict[str, Any]) -> None:
    before = cli(world, "check")
    assert before.returncode == 1, before.stderr
    first = cli(world, "sync", "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["mode"] == "sync" and summary["ok"] is True
    assert "summary: sync exit 0" in first.stderr
    after = cli(world, "check", "--json")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["mongo"]["in_sync"] is True
