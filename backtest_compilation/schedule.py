"""`schedule`: run the sync forever at the times of `SCHEDULE` in `TZ` (contract §7), on
the wall clock of `TZ` (9:02 New York time stays 9:02 across daylight-saving changes).
Runs never overlap: slots that pass while a run goes on are skipped, not queued."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Final
from zoneinfo import ZoneInfo

from croniter import croniter

from .files import write_atomic
from .outcome import Interrupted, exit_code_of

log = logging.getLogger(__name__)

HEARTBEAT_FILE: Final = "heartbeat.json"
HEARTBEAT_EVERY_S: Final = 60.0
# `status` calls a scheduler whose heartbeat file is older than this stopped or hung
# (unless a run it started is going on and within its time).
HEALTHY_WITHIN_S: Final = 900
# The same signal again within this many seconds is the same request: `uv run` forwards
# the SIGTERM systemd sends to the whole process group, so the scheduler gets it twice.
SAME_REQUEST_S: Final = 1.0

Job = Callable[[], int]


def _instants(schedule: str, zone: ZoneInfo, at: datetime, *, back: bool) -> Iterator[datetime]:
    """Cron's times after (or before) `at` on the wall clock of `zone`, as UTC instants:
    a repeated hour fires once (fold=0), a skipped one just after the jump, as cron does."""
    it = croniter(schedule, at.astimezone(zone).replace(tzinfo=None))
    walls = it.all_prev(datetime) if back else it.all_next(datetime)
    return (wall.replace(tzinfo=zone, fold=0).astimezone(UTC) for wall in walls)


def next_run(schedule: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first scheduled instant strictly after `after` (UTC)."""
    # A repeated hour can map the next wall time to an instant before `after`.
    return next(t for t in _instants(schedule, zone, after, back=False) if t > after)


def missed(schedule: str, zone: ZoneInfo, last_run: datetime | None, now: datetime) -> bool:
    """Was a run due while nothing ran? True when nothing ever ran (a fresh start)."""
    if last_run is None:
        return True
    # Cron's previous time is strictly before its start: start a minute later, at whole
    # seconds, so a slot at `now` counts.
    start = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return next(t for t in _instants(schedule, zone, start, back=True) if t <= now) > last_run


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What the heartbeat file says: when the scheduler was last alive, its last run, the
    next slot (None once it stopped) and, during a run, when it must have ended."""

    at: datetime
    last_run: datetime | None = None
    last_exit_code: int | None = None
    next_run: datetime | None = None
    busy_until: datetime | None = None


def heartbeat_path(cache_dir: Path) -> Path:
    """Where the heartbeat lives inside `CACHE_DIR`."""
    return Path(cache_dir) / HEARTBEAT_FILE


def write_heartbeat(path: Path, beat: Heartbeat) -> None:
    """Replace the heartbeat file atomically; a failure is logged, never fatal."""
    doc = {**asdict(beat), "pid": os.getpid()}
    try:
        write_atomic(path, json.dumps(doc, default=lambda t: t.astimezone(UTC).isoformat()))
    except OSError as exc:
        log.warning("cannot write the heartbeat file %s: %s", path, exc.strerror or exc)


def read_heartbeat(path: Path) -> Heartbeat | None:
    """The heartbeat file's content, or None when it is missing or unreadable."""
    try:
        doc = json.loads(Path(path).read_text())
        at, last, upcoming, until = (
            datetime.fromisoformat(doc[k]).astimezone(UTC) if doc.get(k) else None
            for k in ("at", "last_run", "next_run", "busy_until")
        )
        return Heartbeat(at, last, doc["last_exit_code"], upcoming, until)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def run_forever(
    job: Job,
    *,
    schedule: str,
    zone: ZoneInfo,
    clock: Callable[[], datetime],
    sleep: Callable[[float], object],
    stop: threading.Event,
    heartbeat: Path,
    run_timeout_s: float | None = None,
) -> int:
    """Run `job` at every slot of `schedule` until `stop` is set; returns 0, or the
    interrupted run's 130 / 143 when a second stop request aborted it.

    Runs at once if a slot was missed since the last run the `heartbeat` file names, or
    none is named. `sleep(seconds)` returns early once `stop` is set (`stop.wait`). The
    heartbeat is rewritten every `HEARTBEAT_EVERY_S` while waiting, and as a run starts
    with the time it must have ended by (`run_timeout_s` and a minute's grace)."""
    last_run = getattr(read_heartbeat(heartbeat), "last_run", None)
    last_code: int | None = None

    def beat(alive: bool = True, busy_s: float | None = None) -> None:
        now = clock()
        upcoming = next_run(schedule, zone, now) if alive else None
        until = now + timedelta(seconds=busy_s + 60) if busy_s is not None else None
        write_heartbeat(heartbeat, Heartbeat(now, last_run, last_code, upcoming, until))

    def run(why: str) -> None:
        nonlocal last_run, last_code
        log.info("scheduled run starting (%s)", why)  # it ends with its summary line
        started = clock()
        beat(busy_s=run_timeout_s)
        last_code = _run_once(job, stop)
        last_run = started

    log.info("scheduler started: %r in %s", schedule, zone.key)
    beat()
    if missed(schedule, zone, last_run, clock()):
        run("catching up: a scheduled run was missed" if last_run else "first run")
    while not stop.is_set():
        due = next_run(schedule, zone, clock())
        log.info("next run at %s", f"{due.astimezone(zone):%Y-%m-%d %H:%M %Z}")
        while not stop.is_set() and (left := (due - clock()).total_seconds()) > 0:
            beat()
            sleep(min(HEARTBEAT_EVERY_S, left))
        if not stop.is_set():
            run(f"slot {due.astimezone(zone):%Y-%m-%d %H:%M %Z}")
    beat(alive=False)
    log.info("scheduler stopped")
    return last_code if last_code in (130, 143) else 0  # a run aborted by SIGINT, SIGTERM


def _run_once(job: Job, stop: threading.Event) -> int:
    """Run `job` once: its exit code. A failure never ends the scheduler; a second stop
    request (an interrupt) ends it after this run."""
    try:
        return job()
    except (KeyboardInterrupt, Interrupted) as exc:
        stop.set()
        return exit_code_of(exc)
    except Exception as exc:
        log.exception("scheduled run failed: %s", type(exc).__name__)
        return 1


def serve(
    job: Job, *, schedule: str, tz: str, cache_dir: Path, run_timeout_s: float | None = None
) -> int:
    """`main.py schedule` (from the main thread): `run_forever` until SIGTERM or SIGINT,
    which let the current run finish (exit 0); a second request aborts it (exit 130 / 143)."""
    stop, first = threading.Event(), dict[int, float]()

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not stop.is_set():
            log.info("%s received: stopping after the current run", name)
            first[signum] = time.monotonic()
            stop.set()
        elif time.monotonic() - first.get(signum, -math.inf) >= SAME_REQUEST_S:
            log.warning("%s received again: aborting the current run", name)
            raise KeyboardInterrupt if signum == signal.SIGINT else Interrupted(signum)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return run_forever(
            job,
            schedule=schedule,
            zone=ZoneInfo(tz),
            clock=lambda: datetime.now(UTC),
            sleep=stop.wait,
            stop=stop,
            heartbeat=heartbeat_path(cache_dir),
            run_timeout_s=run_timeout_s,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
