"""Benchmark of the operational parts: state file, run lock, scheduler arithmetic, imports.

The warm run's budget (under 2 s including interpreter start, issue #5) pays for
loading and saving the state file with a 20,000-file drive snapshot, taking the lock,
and importing these modules; this prints what each costs.

    uv run python bench/ops.py [--files 20000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtest_compilation import lock, schedule, state, telemetry


def snapshot(files: int) -> dict:
    """A drive snapshot shaped like the Drive source's: every item with id, name, mime, parent."""
    items = []
    per_course = 20
    for i in range(files):
        course = i // per_course
        items.append(
            {
                "id": f"1{i:032x}",
                "name": f"CSCI-{1000 + course % 9000:04d} E{i % 9 + 1}F{i % 30:02d}.pdf",
                "mimeType": "application/pdf",
                "parent": f"0{course:032x}",
            }
        )
    return {"token": "1234567", "root": "0AbCdEfGhIjK", "items": items}


def timed(fn, repeat: int) -> float:
    """Median wall time of `fn()` in milliseconds."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20_000)
    args = parser.parse_args()
    now = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
    data = snapshot(args.files)
    full = (
        state.State()
        .with_drive(data, now)
        .with_sink("renames", {"digest": state.digest([])}, now)
        .with_sink("mongo", {"digest": "x" * 64}, now)
        .with_sink("sheet", {"digest": "y" * 64}, now)
        .succeeded(now)
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = state.path_in(Path(tmp))
        save_ms = timed(lambda: state.save(path, full), 5)
        load_ms = timed(lambda: state.load(path), 5)
        size_mb = path.stat().st_size / 1e6
        tracemalloc.start()
        loaded, warning = state.load(path)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert warning is None and loaded == full

        def take_lock() -> None:
            with lock.hold(Path(tmp)):
                pass

        lock_ms = timed(take_lock, 200)

    zone = ZoneInfo("America/New_York")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    next_us = (
        timed(
            lambda: [
                schedule.next_run(schedule.DEFAULT_SCHEDULE, zone, start + timedelta(hours=h))
                for h in range(1000)
            ],
            3,
        )
        / 1000
        * 1000
    )
    event = {"exception": {"values": [{"value": "x" * 2000, "stacktrace": {"frames": [{}] * 30}}]}}
    scrub_us = (
        timed(lambda: [telemetry.scrub(event, ("secret-password",)) for _ in range(100)], 3) * 10
    )

    imports = (
        "import backtest_compilation.state, backtest_compilation.lock, "
        "backtest_compilation.schedule, backtest_compilation.telemetry"
    )
    starts = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", imports], check=True, cwd=Path(__file__).parent.parent
        )
        starts.append(time.perf_counter() - started)

    print(f"state file, {args.files:,} files in the drive snapshot: {size_mb:.1f} MB")
    print(f"  save (serialise + fsync + rename): {save_ms:.0f} ms (median of 5)")
    print(f"  load (read + parse + validate):    {load_ms:.0f} ms (median of 5)")
    print(f"  peak memory while loading:         {peak / 1e6:.0f} MB")
    print(f"run lock take + release:             {lock_ms:.2f} ms (median of 200)")
    print(f"schedule.next_run:                   {next_us:.0f} µs per call")
    print(f"telemetry.scrub of a 30-frame event: {scrub_us:.0f} µs")
    print(
        f"interpreter start + import of state, lock, schedule, telemetry: "
        f"{statistics.median(starts) * 1000:.0f} ms (median of 5)"
    )


if __name__ == "__main__":
    main()
