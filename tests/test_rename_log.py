"""Rename failures are problems, and problems are logged once: when new, and when
resolved (issue 11), across runs of the one sink loop."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials

from backtest_compilation import pipeline, sample, sources
from backtest_compilation.adapters import run_config
from backtest_compilation.drive import DriveSource
from backtest_compilation.local import LocalFolderSource
from backtest_compilation.settings import Settings
from backtest_compilation.store import Store
from emulators.drive import DriveEmulator

NOW = datetime(2026, 11, 21, 15, 2, tzinfo=UTC)


def test_rename_failures_are_logged_once_and_said_when_resolved(
    tmp_path: Path, drive_emulator: DriveEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    tree = LocalFolderSource(sample.SAMPLE_DRIVE).read()
    drive_id = drive_emulator.add_drive("Backtests")
    drive_emulator.seed_tree(drive_id, tree)
    settings = replace(
        Settings(), folder_id=drive_id, cache_dir=tmp_path / "cache", mongo_uri="mongomock://r"
    )
    caplog.set_level(logging.INFO, logger="backtest_compilation")

    def run() -> tuple[pipeline.RunSummary, list[str], list[str]]:
        caplog.clear()
        drive_emulator.clock.between_runs()  # type: ignore[attr-defined]
        source = DriveSource(
            drive_id,
            credentials=AnonymousCredentials(),
            endpoint=drive_emulator.url,
            allow_renames=True,
            sleep=drive_emulator.clock.sleep,  # type: ignore[attr-defined]
        )
        services = pipeline.Services(sources.DriveTree(source), store, clock=lambda: NOW)
        got = pipeline.run(run_config(settings), pipeline.Options(), services)
        lines = [r.getMessage() for r in caplog.records]
        new = [m for m in lines if m.startswith("problem: Rename failed")]
        resolved = [m for m in lines if m.startswith("resolved: Rename failed")]
        return got, new, resolved

    with Store.connect(settings.mongo_uri, settings.mongo_db) as store:
        drive_emulator.set_role("reader")  # every rename is refused, for good
        first, new, resolved = run()
        failed = [p for p in first.summary["problems"] if p["category"] == "rename_failed"]
        assert failed and len(new) == len(failed) and resolved == []
        second, new, resolved = run()
        assert len([p for p in second.summary["problems"] if p["category"] == "rename_failed"])
        assert new == [] and resolved == []  # the same failures: not logged again
        drive_emulator.set_role("writer")
        third, new, resolved = run()
        assert not [p for p in third.summary["problems"] if p["category"] == "rename_failed"]
        assert new == [] and len(resolved) == len(failed)
