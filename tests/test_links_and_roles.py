"""Problem rows link to Drive (contract §4), and the emulators' roles: a reader's rename is
refused with 403 insufficientFilePermissions, a reader's sheet write with 403
PERMISSION_DENIED. Real clients over HTTP, the sample drive, an in-process MongoDB."""

from __future__ import annotations

import json
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
from backtest_compilation.report import drive_link
from backtest_compilation.settings import Settings
from backtest_compilation.store import Store
from emulators.drive import DriveEmulator
from emulators.sheets import SheetsEmulator
from tests.support.fixtures_faults import FaultWorld

KEY = "1LinksSheet_0123456789"
COPIES = "Physical Copies of Backtests"
ERRORS = "Errors in Drive"
NOW = datetime(2026, 11, 21, 15, 2, tzinfo=UTC)


@pytest.fixture
def world(
    tmp_path: Path, drive_emulator: DriveEmulator, sheets_emulator: SheetsEmulator
) -> Iterator[dict[str, Any]]:
    tree = LocalFolderSource(sample.SAMPLE_DRIVE).read()
    drive_id = drive_emulator.add_drive("Backtests")
    drive_emulator.seed_tree(drive_id, tree)
    sheets_emulator.add_spreadsheet(KEY, tabs={COPIES: [["Course"], ["CSCI-1200 Data Structures"]]})
    config = replace(
        Settings(),
        folder_id=drive_id,
        cache_dir=tmp_path / "cache",
        mongo_uri="mongomock://links",
        sheet_url=f"https://docs.google.com/spreadsheets/d/{KEY}/edit",
        drive_api_endpoint=drive_emulator.url,
        sheets_api_endpoint=sheets_emulator.url,
    )
    with Store.connect(config.mongo_uri, config.mongo_db) as store:
        yield {
            "settings": config,
            "store": store,
            "drive": drive_emulator,
            "sheets": sheets_emulator,
        }


def run(world: dict[str, Any]) -> pipeline.RunSummary:
    """One run a quota window after the last; waits pass on the emulators' quota clock."""
    config = world["settings"]
    clock = world["drive"].clock
    clock.between_runs()
    source = DriveSource(
        config.folder_id,
        credentials=AnonymousCredentials(),
        endpoint=config.drive_api_endpoint,
        allow_renames=True,
        sleep=clock.sleep,
    )
    services = pipeline.Services(
        sources.DriveTree(source),
        world["store"],
        adapters.connect_sheet(config, sleep=clock.sleep),
        clock=lambda: NOW,
    )
    return pipeline.run(run_config(config), pipeline.Options(), services)


def test_every_problem_row_links_to_its_item_in_drive(world: dict[str, Any]) -> None:
    emu: SheetsEmulator = world["sheets"]
    outcome = run(world)
    assert outcome.exit_code == 0
    assert emu.calls("spreadsheets.batchUpdate") == 1  # links ride in the one batched write
    problems = {p["message"]: p["id"] for p in outcome.summary["problems"]}
    assert len(problems) == 14
    rows = [r[0] if r else "" for r in emu.values(KEY, ERRORS)]
    linked = 0
    for n, text in enumerate(rows, start=1):
        link = emu.cell_format(KEY, ERRORS, f"A{n}").get("textFormat", {}).get("link")
        if text in problems:
            # The cell's text is the message, unchanged; the link opens the item.
            assert link == {"uri": f"https://drive.google.com/open?id={problems[text]}"}, text
            linked += 1
        else:  # headings, blank rows, crosslisted lines
            assert link is None, text
    assert linked == len(problems)


def test_links_only_for_drive_ids() -> None:
    assert drive_link("1DriveLikeId000000000000000000042") == (
        "https://drive.google.com/open?id=1DriveLikeId000000000000000000042"
    )
    # A local source's ids are paths, or short department folder names.
    for local in ("CSCI/CSCI-1200 Data Structures/x.pdf", "Misc", "1 CSCI", "syllabus.pdf"):
        assert drive_link(local) is None


def test_a_reader_may_not_rename(world: dict[str, Any]) -> None:
    """Renames stop at Drive's first permission refusal; its rows say the fix, not a raw
    403; the rest are pending; MongoDB and the sheet are still written; exit 1."""
    drive: DriveEmulator = world["drive"]
    drive.set_role("reader")
    names = {f.id: f.name for f in drive.files.values()}
    outcome = run(world)
    assert outcome.exit_code == 1 and list(outcome.summary["failed"]) == ["renames"]
    failed = [p for p in outcome.summary["problems"] if p["category"] == "rename_failed"]
    assert 1 <= len(failed) <= 3  # the first batch's parts, no more
    for p in failed:
        assert "Content manager" in p["message"] and "RENAME_FILES=false" in p["message"]
        assert "403" not in p["message"]
    assert outcome.summary["renames_pending"] == 10 - len(failed)
    assert {f.id: f.name for f in drive.files.values()} == names
    assert drive.stats.renames == 0
    assert outcome.summary["mongo"]["inserted"] > 0
    sheets: SheetsEmulator = world["sheets"]
    assert "Content manager" in str(sheets.values(KEY, ERRORS))


def test_a_reader_through_the_cli_is_one_line_exit_1_and_status_not_ok(
    fault_world: FaultWorld,
) -> None:
    world = fault_world
    world.drive.set_role("reader")
    got = world.cli("--json")
    assert got.returncode == 1, got.stderr
    errors = [line for line in got.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, got.stderr
    assert "may only read" in errors[0] and "Content manager" in errors[0]
    assert "RENAME_FILES=false" in errors[0]
    summary = json.loads(got.stdout)
    assert summary["exit_code"] == 1 and list(summary["failed"]) == ["renames"]
    assert summary["mongo"]["inserted"] > 0 and summary["sheet"]["written"]
    status = world.cli("status")
    assert status.returncode == 1, status.stdout


def test_a_reader_may_not_write_the_sheet(world: dict[str, Any]) -> None:
    emu: SheetsEmulator = world["sheets"]
    emu.set_role(KEY, "reader")
    before = emu.snapshot(KEY)
    outcome = run(world)
    assert outcome.exit_code == 1
    assert "is not shared with" in outcome.summary["failed"]["sheet"]
    refused = [r for r in emu.log if r.kind == "spreadsheets.batchUpdate"]
    assert [r.status for r in refused] == [403]
    assert emu.snapshot(KEY) == before
    # A writer's write goes through.
    emu.set_role(KEY, "writer")
    assert run(world).exit_code == 0


def test_the_emulators_answer_as_google_does(world: dict[str, Any]) -> None:
    import requests

    drive: DriveEmulator = world["drive"]
    emu: SheetsEmulator = world["sheets"]
    file_id = next(f.id for f in drive.files.values() if f.name.endswith(".pdf"))
    drive.set_role("reader")
    answer = requests.patch(
        f"{drive.url}/drive/v3/files/{file_id}?supportsAllDrives=true",
        json={"name": "x.pdf"},
        timeout=10,
    )
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["errors"][0]["reason"] == "insufficientFilePermissions"
    got = requests.get(
        f"{drive.url}/drive/v3/files/{file_id}",
        params={"supportsAllDrives": "true", "fields": "id,capabilities(canEdit,canRename)"},
        timeout=10,
    ).json()
    assert got == {"id": file_id, "capabilities": {"canEdit": False, "canRename": False}}
    drive.set_role("organizer", item=file_id)  # an item's own role wins over the default
    got = requests.get(
        f"{drive.url}/drive/v3/files/{file_id}",
        params={"supportsAllDrives": "true", "fields": "capabilities/canEdit"},
        timeout=10,
    ).json()
    assert got == {"capabilities": {"canEdit": True}}

    emu.set_role(KEY, "reader")
    answer = requests.post(
        f"{emu.url}/v4/spreadsheets/{KEY}:batchUpdate", json={"requests": []}, timeout=10
    )
    assert answer.status_code == 403
    assert answer.json() == {
        "error": {
            "code": 403,
            "message": "The caller does not have permission",
            "status": "PERMISSION_DENIED",
        }
    }
    # Reads stay allowed.
    assert requests.get(f"{emu.url}/v4/spreadsheets/{KEY}", timeout=10).status_code == 200
