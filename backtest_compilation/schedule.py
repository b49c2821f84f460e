"""`schedule`: run the sync forever at the times of `SCHEDULE` in `TZ` (contract §7).

Two layers:
- pure time logic (`next_run`, `last_slot`, `missed`), cron evaluated on the wall
  clock of `TZ` so "9:02 New York time" stays 9:02 across daylight-saving changes;
- `run_forever`, the loop, with the clock, the sleep and the stop event passed in so
  tests drive it with a fake clock instead of sleeping.

`serve` wires the real clock, signals and heartbeat file for the container.
Runs never overlap: the job runs in the loop's own thread, and slots that pass while
it runs are skipped, not queued.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Final, Protocol
from zoneinfo import ZoneInfo

from croniter import croniter

from .files import write_atomic
from .outcome import Interrupted, exit_code_of

log = logging.getLogger(__name__)

DEFAULT_SCHEDULE: Final = "2 9-19/2 * * *"
DEFAULT_TZ: Final = "America/New_York"
HEARTBEAT_FILE: Final = "heartbeat.json"
HEARTBEAT_EVERY_S: Final = 60.0
# The container health check calls the scheduler unhealthy when the heartbeat file is
# older than this; a run longer than it (a hung service) shows up as unhealthy.
HEALTHY_WITHIN_S: Final = 900

# Exit codes of a run aborted by a signal (SIGINT, SIGTERM).
ABORTED: Final = (130, 143)

Job = Callable[[], int]
# Told about every run that failed: its exit code, and the exception if it raised one.
FailureReport = Callable[[int, BaseException | None], None]


class Clock(Protocol):
    def __call__(self) -> datetime:
        """The current time, timezone-aware."""
        ...


def system_clock() -> datetime:
    """The real clock (UTC)."""
    return datetime.now(UTC)


# --- pure time logic --------------------------------------------------------------


def _wall(at: datetime, zone: ZoneInfo) -> datetime:
    """`at` as naive wall-clock time in `zone` (what cron fields talk about)."""
    return at.astimezone(zone).replace(tzinfo=None)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in `zone` as a UTC instant.

    fold=0: a repeated hour (autumn) fires once, at its first occurrence; a skipped
    hour (spring) fires at the equivalent instant just after the jump, as cron does."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def next_run(schedule: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first scheduled instant strictly after `after` (UTC)."""
    it = croniter(schedule, _wall(after, zone))
    for _ in range(1000):  # bounded: gaps/folds can map a wall time to or before `after`
        candidate = _instant(it.get_next(datetime), zone)
        if candidate > after:
            return candidate
    raise ValueError(f"schedule {schedule!r} has no time after {after.isoformat()}")


def last_slot(schedule: str, zone: ZoneInfo, at: datetime) -> datetime:
    """The latest scheduled instant at or before `at` (UTC)."""
    # croniter's get_prev is strictly before its start: start a minute later, at whole
    # seconds, so a slot equal to `at` counts.
    start = _wall(at, zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
    it = croniter(schedule, start)
    for _ in range(1000):
        candidate = _instant(it.get_prev(datetime), zone)
        if candidate <= at:
            return candidate
    raise ValueError(f"schedule {schedule!r} has no time before {at.isoformat()}")


def missed(schedule: str, zone: ZoneInfo, last_run: datetime | None, now: datetime) -> bool:
    """Was a scheduled run due while nothing ran? True when nothing ever ran (fresh start)."""
    if last_run is None:
        return True
    return last_slot(schedule, zone, now) > last_run


# --- heartbeat ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What the heartbeat file says: when the scheduler was last alive, and its last run."""

    at: datetime
    last_run: datetime | None = None
    last_exit_code: int | None = None
    next_run: datetime | None = None
    running: bool = False  # a run is going on (`next_run` is then None, and not "stopped")


def heartbeat_path(cache_dir: Path) -> Path:
    """Where the heartbeat lives inside `CACHE_DIR` (the Dockerfile's health check reads it)."""
    return Path(cache_dir) / HEARTBEAT_FILE


def write_heartbeat(path: Path, beat: Heartbeat) -> None:
    """Replace the heartbeat file atomically; a failure is logged, never fatal."""

    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.astimezone(UTC).isoformat()

    text = json.dumps(
        {
            "at": iso(beat.at),
            "last_run": iso(beat.last_run),
            "last_exit_code": beat.last_exit_code,
            "next_run": iso(beat.next_run),
            "running": beat.running,
            "pid": os.getpid(),
        }
    )
    try:
        write_atomic(path, text)
    except OSError as exc:
        log.warning("cannot write the heartbeat file %s: %s", path, exc.strerror or exc)


def read_heartbeat(path: Path) -> Heartbeat | None:
    """The heartbeat file's content, or None when it is missing or unreadable."""
    try:
        doc = json.loads(Path(path).read_text())

        def when(key: str) -> datetime | None:
            value = doc.get(key)
            return None if value is None else datetime.fromisoformat(value).astimezone(UTC)

        code = doc.get("last_exit_code")
        return Heartbeat(
            at=when("at") or datetime.min.replace(tzinfo=UTC),
            last_run=when("last_run"),
            last_exit_code=code if isinstance(code, int) else None,
            next_run=when("next_run"),
            running=doc.get("running") is True,
        )
    except (OSError, ValueError, TypeError, AttributeError):
        return None


# --- the loop -------------------------------------------------------------------


def run_forever(
    job: Job,
    *,
    schedule: str = DEFAULT_SCHEDULE,
    zone: ZoneInfo | None = None,
    clock: Clock = system_clock,
    sleep: Callable[[float], object],
    stop: threading.Event,
    heartbeat: Path,
    last_run: datetime | None = None,
    on_failure: FailureReport | None = None,
    beat_every_s: float = HEARTBEAT_EVERY_S,
    run_timeout_s: float | None = None,
) -> int:
    """Run `job` at every slot of `schedule` until `stop` is set; returns 0, or the
    interrupted run's 130 / 143 when a second stop request aborted it.

    On start, runs at once if a slot was missed since `last_run` (default: the last
    run recorded in the `heartbeat` file; none recorded counts as missed). A job that
    raises or returns non-zero is logged and passed to `on_failure`; the loop then
    waits for the next slot. `sleep(seconds)` must return early once `stop` is set
    (the real one is `stop.wait`). The heartbeat file is rewritten every
    `beat_every_s` while waiting, during a run (so a long run is not taken for a dead
    scheduler) and after each run; a run still going `run_timeout_s` plus a grace
    period after it started stops refreshing it, so a hung run is noticed.
    """
    zone = zone or ZoneInfo(DEFAULT_TZ)
    if last_run is None:
        previous = read_heartbeat(heartbeat)
        last_run = previous.last_run if previous else None
    last_code: int | None = None

    def beat(upcoming: datetime | None, running: bool = False) -> None:
        write_heartbeat(heartbeat, Heartbeat(clock(), last_run, last_code, upcoming, running))

    def run_once(why: str) -> None:
        nonlocal last_run, last_code
        started = clock()
        log.info("scheduled run starting (%s)", why)
        running = threading.Event()
        running.set()
        beater = threading.Thread(
            target=beat_while_running,
            args=(running, lambda: beat(None, True), beat_every_s, run_timeout_s),
            name="heartbeat",
            daemon=True,
        )
        beater.start()
        try:
            code = _attempt(job, stop, on_failure)
        finally:
            running.clear()
            beater.join(timeout=5)
        last_run, last_code = started, code
        elapsed = (clock() - started).total_seconds()
        log.log(
            logging.INFO if code == 0 else logging.ERROR,
            "scheduled run finished: exit %d in %.1f s",
            code,
            elapsed,
        )

    now = clock()
    log.info(
        "scheduler started: %r in %s, next run %s",
        schedule,
        zone.key,
        _local(next_run(schedule, zone, now), zone),
    )
    beat(None)
    if missed(schedule, zone, last_run, now):
        run_once("catching up: a scheduled run was missed" if last_run else "first run")
    while not stop.is_set():
        due = next_run(schedule, zone, clock())
        beat(due)
        log.info("next run at %s", _local(due, zone))
        while not stop.is_set():
            left = (due - clock()).total_seconds()
            if left <= 0:
                break
            sleep(min(beat_every_s, left))
            beat(due)
        if stop.is_set():
            break
        run_once(f"slot {_local(due, zone)}")
    beat(None)
    log.info("scheduler stopped")
    return last_code if last_code in ABORTED else 0


def _attempt(job: Job, stop: threading.Event, on_failure: FailureReport | None) -> int:
    """Run `job` once: its exit code; a failure is passed to `on_failure` and never ends
    the scheduler, but a second stop request (an interrupt) ends it after this run."""
    error: BaseException | None = None
    try:
        code = job()
    except (KeyboardInterrupt, Interrupted) as exc:
        code, error = exit_code_of(exc), exc
        stop.set()
    except Exception as exc:
        log.exception("scheduled run failed: %s", type(exc).__name__)
        code, error = 1, exc
    if code != 0 and on_failure is not None:
        try:
            on_failure(code, error)
        except Exception:
            log.exception("reporting the failed run failed too")
    return code


def beat_while_running(
    running: threading.Event,
    beat: Callable[[], None],
    every_s: float,
    run_timeout_s: float | None,
    grace_s: float = 60.0,
) -> None:
    """Call `beat` every `every_s` while `running` is set, for at most `run_timeout_s`
    plus `grace_s` (a run stops itself at its timeout; one still going is hung, and a
    heartbeat left to go stale lets the container's health check say so).

    `run_forever` runs it in a thread beside each run; it returns soon after `running`
    is cleared."""
    started = time.monotonic()
    limit = None if run_timeout_s is None else run_timeout_s + grace_s
    while running.is_set():
        if limit is not None and time.monotonic() - started > limit:
            log.error("the run has gone past RUN_TIMEOUT_S: heartbeat no longer refreshed")
            return
        beat()
        # Event.wait with the flag inverted: wake at once when the run ends.
        deadline = time.monotonic() + every_s
        while running.is_set() and time.monotonic() < deadline:
            time.sleep(min(0.05, every_s))


def _local(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


# --- the real thing ---------------------------------------------------------------


# The same signal again within this many seconds is the same request: `uv run` forwards
# the SIGTERM systemd sends to the whole process group, so the scheduler gets it twice.
SAME_REQUEST_S: Final = 1.0


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """Within the block, SIGTERM and SIGINT set `stop` (the current run finishes, then the
    loop ends). A second request aborts the current run: it is interrupted (recorded,
    exit 130 / 143); the same signal again within `SAME_REQUEST_S` is not a second one."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    first: dict[int, float] = {}

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not stop.is_set():
            log.info("%s received: stopping after the current run", name)
            first[signum] = time.monotonic()
            stop.set()
            return
        if signum in first and time.monotonic() - first[signum] < SAME_REQUEST_S:
            log.debug("%s again within a second: the same request to stop", name)
            return
        log.warning("%s received again: aborting the current run", name)
        raise KeyboardInterrupt if signum == signal.SIGINT else Interrupted(signum)

    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(
    job: Job,
    *,
    schedule: str,
    tz: str,
    cache_dir: Path,
    on_failure: FailureReport | None = None,
    last_run: datetime | None = None,
    run_timeout_s: float | None = None,
) -> int:
    """`main.py schedule`: run `job` on `schedule` in `tz` until SIGTERM/SIGINT; returns 0
    (130 / 143 when a second request aborted a run).

    Must be called from the main thread (signal handlers). The heartbeat goes to
    `CACHE_DIR/heartbeat.json`."""
    stop = threading.Event()
    with stop_on_signals(stop):
        return run_forever(
            job,
            schedule=schedule,
            zone=ZoneInfo(tz),
            clock=system_clock,
            sleep=stop.wait,
            stop=stop,
            heartbeat=heartbeat_path(cache_dir),
            last_run=last_run,
            on_failure=on_failure,
            run_timeout_s=run_timeout_s,
        )


def is_healthy(
    path: Path, *, max_age_s: float = HEALTHY_WITHIN_S, now: float | None = None
) -> bool:
    """The health check's rule: the heartbeat file was written within `max_age_s`."""
    try:
        age = (time.time() if now is None else now) - os.stat(path).st_mtime
    except OSError:
        return False
    return age <= max_age_s
