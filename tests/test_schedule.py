"""The scheduler: cron on New York wall time (DST included), catch-up, failures, heartbeat,
signals. Driven by a fake clock and sleep; one test runs the real thing in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from backtest_compilation import schedule
from backtest_compilation.schedule import Heartbeat
from tests.support.isolation import environment

NY = ZoneInfo("America/New_York")
DEFAULT = "2 9-19/2 * * *"


def ny(y: int, mo: int, d: int, h: int, mi: int, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=NY, fold=fold).astimezone(UTC)


# 2026: DST starts Sunday March 8 (02:00 EST → 03:00 EDT), ends Sunday November 1
# (02:00 EDT → 01:00 EST).
NEXT_RUN = [
    ("first slot of the day", DEFAULT, ny(2026, 3, 9, 8, 0), ny(2026, 3, 9, 9, 2)),
    ("a slot is strictly after", DEFAULT, ny(2026, 3, 9, 9, 2), ny(2026, 3, 9, 11, 2)),
    ("after the last slot comes tomorrow's first", DEFAULT, ny(2026, 3, 9, 19, 2),
     ny(2026, 3, 10, 9, 2)),
    ("spring forward keeps 9:02 local", DEFAULT, ny(2026, 3, 7, 19, 2), ny(2026, 3, 8, 9, 2)),
    ("fall back keeps 9:02 local", DEFAULT, ny(2026, 10, 31, 19, 2), ny(2026, 11, 1, 9, 2)),
    ("a skipped wall time runs just after the jump", "30 2 * * *", ny(2026, 3, 8, 0, 0),
     datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),
    ("the day after a skipped time is normal again", "30 2 * * *",
     datetime(2026, 3, 8, 7, 30, tzinfo=UTC), ny(2026, 3, 9, 2, 30)),
    ("a repeated wall time runs at its first occurrence", "30 1 * * *", ny(2026, 11, 1, 0, 0),
     datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
    ("a repeated wall time does not run twice", "30 1 * * *",
     datetime(2026, 11, 1, 5, 30, tzinfo=UTC), ny(2026, 11, 2, 1, 30)),
    ("from inside the repeated hour, the next day", "30 1 * * *",
     ny(2026, 11, 1, 1, 10, fold=1), ny(2026, 11, 2, 1, 30)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "cron", "after", "expected"), NEXT_RUN, ids=[c[0] for c in NEXT_RUN]
)
def test_next_run(case: str, cron: str, after: datetime, expected: datetime) -> None:
    assert schedule.next_run(cron, NY, after) == expected


def test_daylight_saving_moves_the_utc_time_not_the_local_time() -> None:
    winter = schedule.next_run(DEFAULT, NY, ny(2026, 3, 7, 8, 0))
    summer = schedule.next_run(DEFAULT, NY, ny(2026, 3, 8, 8, 0))
    assert (winter.hour, summer.hour) == (14, 13)


MISSED = [
    ("nothing ever ran", None, ny(2026, 3, 9, 8, 0), True),
    ("last run after the latest slot", ny(2026, 3, 9, 9, 2), ny(2026, 3, 9, 10, 0), False),
    ("down over one slot", ny(2026, 3, 9, 9, 2), ny(2026, 3, 9, 11, 30), True),
    ("a slot exactly now counts", ny(2026, 3, 9, 9, 3), ny(2026, 3, 9, 11, 2), True),
    ("a minute before the slot it is not due", ny(2026, 3, 9, 9, 3), ny(2026, 3, 9, 11, 1), False),
    ("down overnight, before the first slot", ny(2026, 3, 9, 19, 2), ny(2026, 3, 10, 8, 0), False),
    ("down over a whole weekend", ny(2026, 3, 6, 19, 2), ny(2026, 3, 9, 8, 0), True),
]


@pytest.mark.parametrize(("case", "last", "now", "expected"), MISSED, ids=[c[0] for c in MISSED])
def test_missed(case: str, last: datetime | None, now: datetime, expected: bool) -> None:
    assert schedule.missed(DEFAULT, NY, last, now) is expected


@dataclass
class World:
    """A fake clock and sleep; `sleep` advances the clock and checks the heartbeat."""

    now: datetime
    heartbeat: Path
    stop: threading.Event = field(default_factory=threading.Event)
    until: datetime | None = None
    sleeps: list[float] = field(default_factory=list)
    runs: list[datetime] = field(default_factory=list)
    running: int = 0

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert 0 < seconds <= schedule.HEARTBEAT_EVERY_S
        # The heartbeat is fresh whenever the loop waits.
        beat = schedule.read_heartbeat(self.heartbeat)
        assert beat is not None and beat.at == self.now
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)
        if self.until is not None and self.now >= self.until:
            self.stop.set()

    def job(self, duration: timedelta = timedelta(seconds=10), code: int = 0):
        def run() -> int:
            assert self.running == 0, "runs overlap"
            self.running += 1
            self.runs.append(self.now)
            self.now += duration
            self.running -= 1
            return code

        return run

    def loop(self, job, last_run: datetime | None = None, **kwargs) -> int:
        if last_run is not None:  # what the scheduler's last heartbeat said
            schedule.write_heartbeat(self.heartbeat, Heartbeat(at=last_run, last_run=last_run))
        return schedule.run_forever(
            job,
            schedule=kwargs.pop("cron", DEFAULT),
            zone=NY,
            clock=self.clock,
            sleep=self.sleep,
            stop=self.stop,
            heartbeat=self.heartbeat,
            **kwargs,
        )


def test_a_fresh_start_runs_at_once_then_on_every_slot(tmp_path: Path) -> None:
    w = World(
        now=ny(2026, 3, 9, 8, 0), heartbeat=tmp_path / "hb.json", until=ny(2026, 3, 10, 10, 0)
    )
    assert w.loop(w.job()) == 0
    slots = [ny(2026, 3, day, hour, 2) for day in (9, 10) for hour in range(9, 20, 2)]
    assert w.runs == [ny(2026, 3, 9, 8, 0), *slots[:7]]


def test_a_restart_without_a_missed_slot_waits_for_the_next_one(tmp_path: Path) -> None:
    hb = tmp_path / "hb.json"
    schedule.write_heartbeat(hb, Heartbeat(at=ny(2026, 3, 9, 9, 5), last_run=ny(2026, 3, 9, 9, 2)))
    w = World(now=ny(2026, 3, 9, 10, 0), heartbeat=hb, until=ny(2026, 3, 9, 12, 0))
    w.loop(w.job())
    assert w.runs == [ny(2026, 3, 9, 11, 2)]


def test_a_restart_after_missing_a_slot_runs_at_once(tmp_path: Path) -> None:
    hb = tmp_path / "hb.json"
    schedule.write_heartbeat(hb, Heartbeat(at=ny(2026, 3, 9, 9, 5), last_run=ny(2026, 3, 9, 9, 2)))
    w = World(now=ny(2026, 3, 9, 12, 30), heartbeat=hb, until=ny(2026, 3, 9, 13, 30))
    w.loop(w.job())
    assert w.runs == [ny(2026, 3, 9, 12, 30), ny(2026, 3, 9, 13, 2)]


def test_failing_runs_are_logged_and_the_schedule_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    w = World(
        now=ny(2026, 3, 9, 8, 0), heartbeat=tmp_path / "hb.json", until=ny(2026, 3, 9, 13, 30)
    )
    outcomes = iter([RuntimeError("MongoDB unreachable"), 1, 0, 3])

    def job() -> int:
        w.runs.append(w.now)
        outcome = next(outcomes)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    w.loop(job)
    assert len(w.runs) == 4
    assert "scheduled run failed: RuntimeError" in caplog.text
    beat = schedule.read_heartbeat(w.heartbeat)
    assert beat is not None and beat.last_exit_code == 3 and beat.last_run == ny(2026, 3, 9, 13, 2)


def test_a_run_longer_than_a_slot_skips_the_slots_it_covered(tmp_path: Path) -> None:
    w = World(now=ny(2026, 3, 9, 9, 0), heartbeat=tmp_path / "hb.json", until=ny(2026, 3, 9, 16, 0))
    w.loop(w.job(duration=timedelta(hours=4, minutes=30)), last_run=ny(2026, 3, 9, 8, 0))
    # 9:02 runs until 13:32: 11:02 and 13:02 are skipped, not run back to back.
    assert w.runs == [ny(2026, 3, 9, 9, 2), ny(2026, 3, 9, 15, 2)]


def test_runs_across_spring_forward_stay_at_local_slot_times(tmp_path: Path) -> None:
    w = World(
        now=ny(2026, 3, 7, 18, 0), heartbeat=tmp_path / "hb.json", until=ny(2026, 3, 8, 10, 0)
    )
    w.loop(w.job(), last_run=ny(2026, 3, 7, 17, 2))
    assert [r.astimezone(NY).strftime("%d %H:%M %Z") for r in w.runs] == [
        "07 19:02 EST",
        "08 09:02 EDT",
    ]


def test_the_heartbeat_is_written_at_least_every_minute_while_waiting(tmp_path: Path) -> None:
    w = World(now=ny(2026, 3, 9, 9, 3), heartbeat=tmp_path / "hb.json", until=ny(2026, 3, 9, 11, 0))
    w.loop(w.job(), last_run=ny(2026, 3, 9, 9, 2))
    assert len(w.sleeps) >= 117 and max(w.sleeps) <= 60  # checked fresh before each sleep
    doc = json.loads(w.heartbeat.read_text())
    assert doc["at"] == ny(2026, 3, 9, 11, 0).isoformat() and doc["pid"] == os.getpid()


def test_a_stop_while_waiting_ends_the_loop_without_running(tmp_path: Path) -> None:
    w = World(now=ny(2026, 3, 9, 9, 3), heartbeat=tmp_path / "hb.json", until=ny(2026, 3, 9, 9, 4))
    assert w.loop(w.job(), last_run=ny(2026, 3, 9, 9, 2)) == 0
    assert w.runs == [] and w.now == ny(2026, 3, 9, 9, 4)


def test_a_stop_during_a_run_lets_it_finish_and_then_ends(tmp_path: Path) -> None:
    w = World(now=ny(2026, 3, 9, 8, 0), heartbeat=tmp_path / "hb.json")
    finished: list[bool] = []

    def job() -> int:
        w.stop.set()  # as the SIGTERM handler would, mid-run
        finished.append(True)
        return 0

    assert w.loop(job) == 0
    assert finished == [True] and w.sleeps == []


def test_an_unreadable_heartbeat_counts_as_never_run(tmp_path: Path) -> None:
    hb = tmp_path / "hb.json"
    hb.write_text("{not json")
    assert schedule.read_heartbeat(hb) is None
    w = World(now=ny(2026, 3, 9, 10, 0), heartbeat=hb, until=ny(2026, 3, 9, 10, 1))
    w.loop(w.job())
    assert w.runs == [ny(2026, 3, 9, 10, 0)]


def test_an_unwritable_heartbeat_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("x")
    schedule.write_heartbeat(blocked / "hb.json", Heartbeat(at=ny(2026, 3, 9, 10, 0)))
    assert "cannot write the heartbeat" in caplog.text


SERVE = """
import sys
from pathlib import Path
from backtest_compilation import schedule
from tests.support.isolation import environment
out = Path(sys.argv[1])
def job():
    with (out / "runs.txt").open("a") as f:
        f.write("ran\\n")
    return 0
sys.exit(schedule.serve(job, schedule="0 0 1 1 *", tz="America/New_York", cache_dir=out))
"""


def python_in(where: Path, code: str) -> subprocess.Popen[str]:
    """`python -c code where`, isolated: its own directory and environment (issue 17)."""
    return subprocess.Popen(
        [sys.executable, "-c", code, str(where)],
        cwd=where,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_real_scheduler_stops_cleanly_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    proc = python_in(tmp_path, SERVE)
    try:
        runs = tmp_path / "runs.txt"
        deadline = time.monotonic() + 20
        # No heartbeat yet: the first start runs at once, then waits for New Year.
        while not (runs.exists() and schedule.read_heartbeat(tmp_path / "heartbeat.json")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        # A signal at any point from here (during the run or its wait) stops it cleanly.
        sent = time.monotonic()
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=10)
        assert time.monotonic() - sent < 3
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert runs.read_text() == "ran\n"
    beat = schedule.read_heartbeat(tmp_path / "heartbeat.json")
    assert beat is not None and beat.last_exit_code == 0 and beat.next_run is None


def test_a_run_starts_with_a_heartbeat_naming_when_it_must_have_ended(tmp_path: Path) -> None:
    """A run does not rewrite the heartbeat: it says, as the run starts, until when the run
    may go on (`RUN_TIMEOUT_S` and a minute's grace), and `status` counts on that."""
    w = World(now=ny(2026, 3, 9, 8, 0), heartbeat=tmp_path / "hb.json")
    seen: list[Heartbeat | None] = []

    def job() -> int:
        seen.append(schedule.read_heartbeat(w.heartbeat))
        w.stop.set()
        return 0

    w.loop(job, run_timeout_s=2700)
    [beat] = seen
    assert beat is not None and beat.at == ny(2026, 3, 9, 8, 0)
    assert beat.busy_until == ny(2026, 3, 9, 8, 46) and beat.next_run == ny(2026, 3, 9, 9, 2)
    after = schedule.read_heartbeat(w.heartbeat)
    assert after is not None and after.busy_until is None and after.next_run is None


SLOW_JOB = """
import sys, time
from pathlib import Path
from backtest_compilation import schedule
out = Path(sys.argv[1])
def job():
    (out / "started").write_text("")
    time.sleep(4)
    (out / "finished").write_text("")
    return 0
sys.exit(schedule.serve(job, schedule="0 0 1 1 *", tz="America/New_York", cache_dir=out))
"""


@pytest.mark.parametrize(("gap", "code"), [(0.02, 0), (1.5, 143)], ids=["same-request", "abort"])
def test_the_same_signal_twice_within_a_second_is_one_stop_request(
    tmp_path: Path, gap: float, code: int
) -> None:
    """Issue 17 item 6: systemd's SIGTERM to the process group reaches the scheduler
    twice (`uv` forwards it): the run still finishes. A second request later aborts it."""
    proc = python_in(tmp_path, SLOW_JOB)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "started").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        time.sleep(gap)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert (tmp_path / "finished").exists() is (code == 0)
