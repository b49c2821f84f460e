"""`status` and the run record every sync leaves (`last-run.json`, `report.html`): after
good, failed and no runs, with a fresh or stale scheduler heartbeat, with the lock held."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from backtest_compilation import lastrun, lock, sample, schedule, state, status
from backtest_compilation.errors import RunError
from backtest_compilation.outcome import RunSummary
from tests.support.cache import state_path

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "main.py")
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, MAIN, *args],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "MONGO_URI": "mongomock://status", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def gather(cache: Path, now: datetime = NOW) -> dict[str, Any]:
    return status.gather(cache, now=now)


def summary(ok: bool = True, **extra: Any) -> dict[str, Any]:
    run = RunSummary("sync")
    return {**(run if ok else run.failed("sheet", RunError("HTTP 503"))).summary, **extra}


def test_no_run_yet(tmp_path: Path) -> None:
    info = gather(tmp_path / "cache")
    assert info["ok"] is False
    assert info["last_run"] is None and info["last_success"] is None
    assert info["reasons"] == [f"no run recorded in {tmp_path / 'cache' / 'last-run.json'}"]
    assert info["lock"] == {"held": False}
    assert not (tmp_path / "cache").exists()  # status changes nothing


def test_after_a_good_run(tmp_path: Path) -> None:
    renames = [
        {"id": "a", "from": "x.pdf", "to": "CSCI-1200 E1F22.pdf", "applied": True},
        {"id": "b", "from": "y.pdf", "to": "CSCI-1200 E2F22.pdf", "applied": False},
    ]
    lastrun.save(
        tmp_path,
        summary(renames=renames),
        started=NOW - timedelta(minutes=3),
        finished=NOW - timedelta(minutes=2),
        headline="summary",
    )
    info = gather(tmp_path)
    assert info["ok"] is True and info["reasons"] == []
    last = info["last_run"]
    assert last["finished_at"] == "2026-03-02T14:58:00+00:00"
    assert (last["mode"], last["exit_code"], last["pending_renames"]) == ("sync", 0, 1)
    assert last["counts"]["renames_applied"] == 1
    assert info["last_success"]["finished_at"] == last["finished_at"]
    text = status.text(info, tz="America/New_York", now=NOW)
    assert text.splitlines()[0] == "status: OK"
    assert "last run: 2026-03-02 09:58:00-05:00 (2 min ago), sync, exit 0" in text  # in TZ
    assert "renames 1 done, 1 pending" in text


def test_after_a_failed_run_the_last_success_is_kept(tmp_path: Path) -> None:
    lastrun.save(tmp_path, summary(), started=NOW, finished=NOW, headline="good")
    later = NOW + timedelta(hours=2)
    lastrun.save(tmp_path, summary(ok=False), started=later, finished=later, headline="bad")
    info = gather(tmp_path, later + timedelta(minutes=1))
    assert info["ok"] is False
    assert info["reasons"] == ["the last run failed with exit code 1"]
    assert list(info["last_run"]["failed"]) == ["sheet"]
    assert info["last_success"]["finished_at"] == NOW.isoformat()
    text = status.text(info, tz="America/New_York", now=later)
    assert "failed: sheet: HTTP 503" in text


def test_a_stale_heartbeat_is_unhealthy_a_fresh_one_is_not(tmp_path: Path) -> None:
    lastrun.save(tmp_path, summary(), started=NOW, finished=NOW, headline="good")
    beat = schedule.heartbeat_path(tmp_path)
    schedule.write_heartbeat(
        beat, schedule.Heartbeat(at=NOW, next_run=NOW + timedelta(hours=1, minutes=2))
    )
    os.utime(beat, (NOW.timestamp() - 30, NOW.timestamp() - 30))
    info = gather(tmp_path)
    assert info["ok"] is True
    assert info["scheduler"] == {
        "heartbeat_age_s": 30.0,
        "fresh": True,
        "next_run": "2026-03-02T16:02:00+00:00",
    }
    assert "next run 2026-03-02 11:02 EST" in status.text(info, tz="America/New_York", now=NOW)
    old = NOW.timestamp() - schedule.HEALTHY_WITHIN_S - 60
    os.utime(beat, (old, old))
    info = gather(tmp_path)
    assert info["ok"] is False
    assert "heartbeat is 16 min old" in info["reasons"][0]


def test_the_lock_holder_is_named_without_taking_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, json.dumps({"pid": 4242, "started": "2026-03-02T14:59:00+00:00"}).encode())
        assert gather(tmp_path)["lock"] == {
            "held": True,
            "pid": 4242,
            "started": "2026-03-02T14:59:00+00:00",
        }
    finally:
        os.close(fd)
    assert gather(tmp_path)["lock"] == {"held": False}


def test_status_on_the_command_line_good_failed_none(tmp_path: Path) -> None:
    env = {"CACHE_DIR": str(tmp_path / "cache")}
    none = cli("status", cwd=tmp_path, env=env)
    assert none.returncode == 1
    assert "last run: none recorded yet" in none.stdout

    # A local try-out keeps its own record (`status --source` shows it), never the
    # Drive source's.
    drive = sample.copy_sample_drive(tmp_path)
    run = cli("sync", "--source", str(drive), cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "cache" / "last-run.json").exists()
    assert cli("status", cwd=tmp_path, env=env).returncode == 1
    good = cli("status", "--json", "--source", str(drive), cwd=tmp_path, env=env)
    assert good.returncode == 0, good.stdout
    info = json.loads(good.stdout)
    assert info["last_run"]["counts"]["courses"] == 16
    assert info["last_run"]["counts"]["mongo_inserted"] == 37

    # A sync that fails (the local source is gone) is recorded too, and status says so.
    shutil.rmtree(drive)
    bad_run = cli("sync", "--source", str(drive), cwd=tmp_path, env=env)
    assert bad_run.returncode != 0
    bad = cli("status", "--source", str(drive), cwd=tmp_path, env=env)
    assert bad.returncode == 1
    assert f"the last run failed with exit code {bad_run.returncode}" in bad.stdout
    assert "last fully successful run: 20" in bad.stdout
    record = json.loads((lastrun.folder(tmp_path / "cache", drive) / "last-run.json").read_text())
    assert record["ok"] is False and record["failed"]


def test_every_sync_leaves_the_record_and_the_report(tmp_path: Path) -> None:
    env = {"CACHE_DIR": str(tmp_path / "cache")}
    drive = sample.copy_sample_drive(tmp_path)
    out = cli("sync", "--source", str(drive), "--json", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    cache = lastrun.folder(tmp_path / "cache", drive)  # a local source's own record
    record = json.loads((cache / "last-run.json").read_text())
    # The §8 object, plus when the run started and ended.
    assert {k: record[k] for k in printed if k != "timings_s"} == {
        k: v for k, v in printed.items() if k != "timings_s"
    }
    assert record["started_at"] <= record["finished_at"]
    page = (cache / "report.html").read_text()
    assert page.startswith("<!doctype html>")
    assert "MongoDB changes (37 added, 0 changed, 0 removed)" in page
    assert "+ course CSCI-1200 Data Structures" in page
    # No leftovers of the atomic replacement; one folder per source: the record sits
    # beside the source's state, and nothing of it lands in CACHE_DIR itself.
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    key = state.source_key("local", os.path.abspath(drive))
    assert state_path(tmp_path / "cache", key) == cache / "state.json"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        ["run.lock", cache.name]
    )
    # A dry run and a check leave no record: they change nothing anywhere.
    before = (cache / "last-run.json").stat().st_mtime_ns
    time.sleep(0.01)
    assert cli("sync", "--source", str(drive), "--dry-run", cwd=tmp_path, env=env).returncode == 0
    assert (cache / "last-run.json").stat().st_mtime_ns == before


def test_a_locked_sync_does_not_overwrite_the_record(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    lastrun.save(cache, summary(), started=NOW, finished=NOW, headline="good")
    before = (cache / "last-run.json").read_text()
    fd = os.open(cache / "run.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        drive = sample.copy_sample_drive(tmp_path)
        out = cli("sync", "--source", str(drive), cwd=tmp_path, env={"CACHE_DIR": str(cache)})
        assert out.returncode == 4
    finally:
        os.close(fd)
    assert (cache / "last-run.json").read_text() == before


@pytest.mark.parametrize("broken", ["SHEET_URL=https://example.org/not-a-sheet", "LOG_LEVEL=LOUD"])
def test_status_survives_unrelated_broken_settings(tmp_path: Path, broken: str) -> None:
    name, value = broken.split("=", 1)
    lastrun.save(tmp_path / "cache", summary(), started=NOW, finished=NOW, headline="good")
    out = cli("status", cwd=tmp_path, env={"CACHE_DIR": str(tmp_path / "cache"), name: value})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "configuration:" in out.stderr


def test_a_sync_that_started_and_left_no_record_is_not_ok(tmp_path: Path) -> None:
    """Issue 17 item 6: a full disk (or SIGKILL) after the start: the record is the run
    before; the lock file's last start says a later run began, so status is NOT OK."""
    lastrun.save(tmp_path, summary(), started=NOW, finished=NOW, headline="good")
    with lock.hold(tmp_path) as held:
        held.note(mode="dry-run", source="drive:x")
    assert gather(tmp_path)["ok"] is True  # a dry run leaves no record, by design
    with lock.hold(tmp_path) as held:
        held.note(mode="sync", source="drive:x")
    info = gather(tmp_path)
    assert info["ok"] is False
    assert "left no record" in info["reasons"][0]
    lastrun.save(tmp_path, summary(), started=NOW, finished=datetime.now(UTC), headline="ok")
    assert gather(tmp_path)["ok"] is True


def test_a_running_sync_shows_its_phase_and_rename_progress(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 17 item 7: while a run goes on, status says what it does: its phase from its
    notes, its progress from the progress lines it logs."""
    caplog.set_level(logging.INFO, logger="backtest_compilation")
    line = "renames: 1,200 of 6,700 applied, 3.1/s, about 29 min left"
    drive = logging.getLogger("backtest_compilation.drive")
    with lock.hold(tmp_path) as held:
        drive.info("drive listing: 20,000 items listed", extra={"progress": {"what": "x"}})
        held.note(mode="sync", phase="renames")
        before = status.text(gather(tmp_path), tz="UTC", now=NOW)
        assert "phase renames" in before and "drive listing" not in before  # a past phase's
        drive.info("%s", line, extra={"progress": {"what": "renames"}})
        info = gather(tmp_path)
        assert info["lock"]["phase"] == "renames"
        text = status.text(info, tz="America/New_York", now=NOW)
        assert f"phase renames ({line})" in text


def test_a_heartbeat_naming_no_next_run_is_a_stopped_scheduler(tmp_path: Path) -> None:
    """Issue 19: after SIGTERM the scheduler's last heartbeat says `next_run: null`;
    status says it stopped at once, not when the heartbeat turns stale. During a run the
    heartbeat names the next slot: that is not a stop."""
    lastrun.save(tmp_path, summary(), started=NOW, finished=NOW, headline="good")
    stop, during = threading.Event(), []

    def job() -> int:
        during.append(status.gather(tmp_path))
        stop.set()
        return 0

    zone = ZoneInfo("UTC")
    heartbeat = schedule.heartbeat_path(tmp_path)
    clock = partial(datetime.now, UTC)
    cron = "2 9 * * *"
    schedule.run_forever(
        job, schedule=cron, zone=zone, clock=clock, sleep=stop.wait, stop=stop, heartbeat=heartbeat
    )
    [running] = during
    assert running["ok"] is True, running["reasons"]
    upcoming = schedule.next_run(cron, zone, clock()).isoformat(timespec="seconds")
    assert running["scheduler"]["next_run"] == upcoming
    info = status.gather(tmp_path)
    assert info["ok"] is False
    assert info["reasons"] == ["the scheduler has stopped (its heartbeat names no next run)"]


def test_a_long_scheduled_run_within_its_time_keeps_the_scheduler_healthy(
    tmp_path: Path,
) -> None:
    """During a run the heartbeat is not rewritten: it names when the run must have
    ended. Until then, while the run holds the lock, an old heartbeat is still fresh."""
    lastrun.save(tmp_path, summary(), started=NOW, finished=NOW, headline="good")
    started = NOW - timedelta(minutes=30)
    beat = schedule.Heartbeat(
        at=started, next_run=NOW + timedelta(hours=1), busy_until=NOW + timedelta(minutes=16)
    )
    schedule.write_heartbeat(schedule.heartbeat_path(tmp_path), beat)
    os.utime(schedule.heartbeat_path(tmp_path), (started.timestamp(), started.timestamp()))
    assert gather(tmp_path)["ok"] is False  # no run going: the scheduler died mid-run
    with lock.hold(tmp_path):
        info = gather(tmp_path)
        assert info["ok"] is True and info["scheduler"]["fresh"] is True
        hung = gather(tmp_path, NOW + timedelta(minutes=17))
        assert hung["ok"] is False and "heartbeat is 47 min old" in hung["reasons"][0]
