"""Cost follows the changes (contract §5.10): an unchanged run neither parses nor converts the
saved drive items, and a file saved before this layout still loads."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from backtest_compilation import pipeline, sample, sources, state
from backtest_compilation.cli import run_config
from backtest_compilation.drive import DriveSource
from backtest_compilation.local import LocalFolderSource
from backtest_compilation.settings import Settings
from backtest_compilation.state import State
from backtest_compilation.store import Store
from emulators.drive import DriveEmulator

T0 = datetime(2026, 3, 8, 14, 2, tzinfo=UTC)
NOW = datetime(2026, 11, 21, 15, 2, tzinfo=UTC)


def test_items_are_read_only_when_asked_for_and_copied_unparsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    items = [[f"id{i}", f"name {i}", "application/pdf", "root"] for i in range(1000)]
    state.save(path, State().with_drive({"page_token": "7", "items": items}, T0))
    first_line = path.read_bytes().split(b"\n", 1)[0]
    assert len(first_line) < 300  # the header: no items in it
    loaded, warning = state.load(path)
    assert warning is None and loaded.drive is not None
    data = loaded.drive.data
    assert isinstance(data, state.LazyItems) and data["page_token"] == "7"

    def no_parsing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the items were parsed")

    # A save that changes only the header copies the items as they are.
    monkeypatch.setattr(state.json, "loads", no_parsing)
    again = loaded.with_drive(data.updated(page_token="8"), T0 + timedelta(hours=1))
    state.save(path, again)
    state.save(path, again.succeeded(T0 + timedelta(hours=1)))  # twice: the offset moved
    monkeypatch.undo()
    assert not data.loaded
    reread, warning = state.load(path)
    assert warning is None and reread.drive is not None
    assert reread.drive.data["page_token"] == "8"
    assert reread.drive.data["items"] == items


def test_damaged_items_are_a_value_error_when_read_not_a_failed_load(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state.save(path, State().with_drive({"items": [["a", "b", "c", "d"]] * 50}, T0))
    head, tail = path.read_bytes().split(b"\n", 1)
    path.write_bytes(head + b"\n" + tail.replace(b'"b"', b'"b', 1))
    loaded, warning = state.load(path)
    assert warning is None and loaded.drive is not None
    with pytest.raises(ValueError, match="cannot be read"):
        loaded.drive.data["items"]


def test_a_file_in_the_one_line_layout_is_read_and_rewritten_in_two(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    doc = json.loads(_one_line(tmp_path))
    path.write_text(json.dumps(doc))
    loaded, warning = state.load(path)
    assert warning is None and loaded.drive is not None
    assert loaded.drive.data["items"] == [["x", "y", "z", "w"]]
    state.save(path, loaded)
    assert path.read_bytes().count(b"\n") == 1
    assert state.load(path) == (loaded, None)


def _one_line(tmp_path: Path) -> str:
    return json.dumps(
        {
            "format": state.FORMAT,
            "version": 1,
            "saved_at": T0.isoformat(),
            "source": "drive:0AB",
            "last_success": T0.isoformat(),
            "drive": {"at": T0.isoformat(), "data": {"items": [["x", "y", "z", "w"]]}},
            "renames": None,
            "mongo": None,
            "sheet": None,
            "problems": None,
        }
    )


def test_an_unchanged_drive_run_leaves_the_saved_items_unread(
    tmp_path: Path, drive_emulator: DriveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = LocalFolderSource(sample.SAMPLE_DRIVE).read()
    drive_id = drive_emulator.add_drive("Backtests")
    drive_emulator.seed_tree(drive_id, tree)
    settings = replace(
        Settings(),
        folder_id=drive_id,
        cache_dir=tmp_path / "cache",
        mongo_uri="mongomock://cost",
        drive_api_endpoint=drive_emulator.url,
    )

    def run() -> pipeline.Outcome:
        drive_emulator.clock.between_runs()  # type: ignore[attr-defined]
        source = DriveSource(
            drive_id,
            credentials=AnonymousCredentials(),
            endpoint=drive_emulator.url,
            allow_renames=True,
            sleep=drive_emulator.clock.sleep,  # type: ignore[attr-defined]
        )
        services = pipeline.Services(sources.DriveTree(source), store, clock=lambda: NOW)
        return pipeline.run(run_config(settings), pipeline.Options(), services)

    with Store.connect(settings.mongo_uri, settings.mongo_db) as store:
        assert run().exit_code == 0  # cold: renames, so the next run sees changes
        assert run().exit_code == 0
        path = state.path_in(settings.cache_dir)
        items_before = path.read_bytes().split(b"\n", 1)[1]

        def unread(self: state.LazyItems) -> Any:
            raise AssertionError("an unchanged run read the saved drive items")

        monkeypatch.setattr(state.LazyItems, "_load", unread)
        unchanged = run()
        assert unchanged.exit_code == 0 and unchanged.summary.get("unchanged") is True
        assert path.read_bytes().split(b"\n", 1)[1] == items_before
        monkeypatch.undo()
        saved, warning = state.load(path)
        assert warning is None and saved.drive is not None
        assert len(saved.drive.data["items"]) == sum(1 for _ in saved.drive.data["items"]) > 50
