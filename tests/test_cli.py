"""The command line as an operator meets it: help, configuration errors, the lock,
the demo and the scheduler, each in a real subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from backtest_compilation import lock, sample, state
from emulators.drive import DriveEmulator
from tests.support.cache import state_path
from tests.support.scheduler import scheduler, stop, wait_for

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "main.py")


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 60):
    base = {"PATH": os.environ["PATH"], "MONGO_URI": "mongomock://cli"}
    return subprocess.run(
        [sys.executable, MAIN, *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_names_every_command_and_the_exit_codes() -> None:
    out = cli("--help")
    assert out.returncode == 0
    for word in ("sync", "check", "schedule", "demo", "3 mass-delete guard refused", "4 another"):
        assert word in out.stdout
    sync_help = cli("sync", "--help").stdout
    for flag in ("--dry-run", "--json", "--no-rename", "--allow-mass-delete", "--full-rescan"):
        assert flag in sync_help


def test_configuration_problems_exit_2_with_one_line_each(tmp_path: Path) -> None:
    out = cli(
        "sync",
        env={
            "MONGO_URI": "redis://user:hunter2@db",
            "LOG_LEVEL": "LOUD",
            "SCHEDULE": "sometimes",
            "GOOGLE_CREDENTIALS_FILE": str(tmp_path / "missing.json"),
        },
        cwd=tmp_path,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 5, lines  # FOLDER_ID, MONGO_URI, LOG_LEVEL, SCHEDULE, key file
    assert all(line.startswith("configuration: ") for line in lines)
    assert "Traceback" not in out.stderr and "hunter2" not in out.stderr


def test_a_second_run_exits_4_while_the_lock_is_held(tmp_path: Path) -> None:
    drive = sample.copy_sample_drive(tmp_path)
    cache = tmp_path / "cache"
    with lock.hold(cache):
        out = cli("sync", "--source", str(drive), env={"CACHE_DIR": str(cache)}, cwd=tmp_path)
    assert out.returncode == 4, out.stderr
    assert str(os.getpid()) in out.stderr
    assert not list(cache.glob("*/state.json"))
    assert sorted(p.name for p in drive.rglob("*")) == sorted(
        p.name for p in sample.SAMPLE_DRIVE.rglob("*")
    )


def test_sync_from_a_local_folder_prints_the_summary_as_json(tmp_path: Path) -> None:
    drive = sample.copy_sample_drive(tmp_path)
    out = cli(
        "--source", str(drive), "--json", env={"CACHE_DIR": str(tmp_path / "c")}, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["mode"] == "sync"
    assert summary["mongo"]["inserted"] > 0
    assert summary["sheet"]["written"] is False
    assert "SHEET_URL is not set" in out.stderr


def test_the_demo_runs_on_a_fresh_directory(tmp_path: Path) -> None:
    out = cli("demo", cwd=tmp_path, env={"MONGO_URI": "mongodb://must-not-be-used:1"})
    assert out.returncode == 0, out.stderr
    assert "What the website now shows:" in out.stdout
    assert "Second run: summary: sync exit 0" in out.stdout
    # The sample has courses with one test: "(1 test)", never "(1 tests)" (issue 11).
    assert "(1 test)" in out.stdout
    assert not re.search(r"\b1 (tests|courses|departments|problems|renames)\b", out.stdout)
    page = (tmp_path / "demo-report.html").read_text()
    assert page.startswith("<!doctype html>") and "Invalid Filenames" in page
    assert "<script" not in page  # self-contained and inert


def test_schedule_runs_at_once_beats_and_stops_on_sigterm(
    tmp_path: Path, drive_emulator: DriveEmulator
) -> None:
    drive_id = drive_emulator.add_drive("Backtests")
    dept = drive_emulator.add_folder(drive_id, "CSCI")
    course = drive_emulator.add_folder(dept, "CSCI-1200 Data Structures")
    drive_emulator.add_file(course, "csci-1200 e1 f22.pdf")
    cache = tmp_path / "cache"
    env = {
        "PATH": os.environ["PATH"],
        "FOLDER_ID": drive_id,
        "DRIVE_API_ENDPOINT": drive_emulator.url,
        "MONGO_URI": "mongomock://schedule",
        "CACHE_DIR": str(cache),
    }
    with scheduler(env, tmp_path) as child:
        saved = state_path(cache, state.source_key("drive", drive_id))
        wait_for(saved, 30)
        assert saved.exists(), "the missed slot was not run at once"
        assert (cache / "heartbeat.json").exists()
        stderr = stop(child, 20)
    assert child.returncode == 0, stderr
    assert "summary: sync exit 0" in stderr
    assert [f.name for f in drive_emulator.files.values() if f.parent == course] == [
        "CSCI-1200 E1F22.pdf"
    ]
    # Issue 19: once the scheduler stopped, status says so at once (not 15 min later).
    after = cli("status", env=env, cwd=tmp_path)
    assert after.returncode == 1, after.stdout
    assert "the scheduler has stopped" in after.stdout


def test_log_time_stamps_are_in_tz_with_the_offset(tmp_path: Path) -> None:
    """Issue 11 item 20: TZ from .env (the process has no TZ: the machine's zone is UTC)
    decides the log's time stamps, which carry their offset."""
    drive = sample.copy_sample_drive(tmp_path)
    (tmp_path / ".env").write_text("TZ=Asia/Kolkata\n")
    out = cli("--source", str(drive), env={"CACHE_DIR": str(tmp_path / "c")}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    stamp = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+05:30) (INFO|WARNING) ")
    lines = out.stderr.strip().splitlines()
    assert lines and all(stamp.match(line) for line in lines), lines[:3]
    first = stamp.match(lines[0])
    assert first is not None
    at = datetime.fromisoformat(first.group(1))
    assert abs(at - datetime.now(ZoneInfo("Asia/Kolkata"))) < timedelta(minutes=5)


def test_values_quoted_by_docker_env_file_exit_2_naming_each(tmp_path: Path) -> None:
    """Issue 11 item 11: `docker run --env-file` passes `X="v"` with its quotes."""
    out = cli(
        "sync",
        env={
            "MONGO_URI": '"mongodb://app:hunter2@db:27017"',
            "FOLDER_ID": "'0AbCdEf'",
            "DRIVE_API_ENDPOINT": "http://127.0.0.1:1",
        },
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"configuration: {name} is wrapped in quotes: remove the quotes "
        "(docker --env-file keeps them)"
        for name in ("FOLDER_ID", "MONGO_URI")
    ]
    assert "hunter2" not in out.stderr


def test_help_says_how_a_local_source_publishes_and_what_check_exits_with() -> None:
    sync_help = cli("sync", "--help").stdout
    assert "--publish" in sync_help and "renames files in PATH" in sync_help
    check_help = cli("check", "--help").stdout
    assert "5 could not check" in check_help


def test_json_is_printed_on_a_configuration_error_and_on_a_held_lock(tmp_path: Path) -> None:
    bad = cli("sync", "--json", env={"LOG_LEVEL": "LOUD"}, cwd=tmp_path)
    assert bad.returncode == 2
    summary = json.loads(bad.stdout)
    assert (summary["ok"], summary["exit_code"], list(summary["failed"])) == (
        False,
        2,
        ["settings"],
    )
    drive = sample.copy_sample_drive(tmp_path)
    cache = tmp_path / "cache"
    with lock.hold(cache):
        held = cli("check", "--json", "--source", str(drive), env={"CACHE_DIR": str(cache)})
    assert held.returncode == 4
    assert json.loads(held.stdout)["failed"]["lock"].startswith("another run")


def test_status_json_into_a_closed_pipe_ends_quietly_with_its_exit_code(tmp_path: Path) -> None:
    """Issue 20 item 2: `status --json | head` — the reader is gone before the write."""
    command = f'"{sys.executable}" "{MAIN}" status --json | true; exit "${{PIPESTATUS[0]}}"'
    out = subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "CACHE_DIR": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1  # no run recorded: NOT OK, said by the exit code alone
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr


def test_check_prints_its_verdict_and_the_differences_the_catalog_only_with_v(
    tmp_path: Path,
) -> None:
    drive = sample.copy_sample_drive(tmp_path)
    env = {"CACHE_DIR": str(tmp_path / "cache")}
    plain = cli("check", "--source", str(drive), env=env, cwd=tmp_path)
    assert plain.returncode == 1, plain.stderr  # nothing published yet: out of sync
    assert plain.stdout.strip().endswith("Check: out of sync")
    assert "Catalog:" not in plain.stdout and "+ course CSCI-1200" in plain.stdout
    assert "Renames pending" in plain.stdout
    verbose = cli("check", "-v", "--source", str(drive), env=env, cwd=tmp_path)
    assert verbose.returncode == 1 and "Catalog:" in verbose.stdout
