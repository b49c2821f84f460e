"""Benchmark of the operational parts: state file, run lock, scheduler arithmetic, imports.

The warm run's budget (issues #5, #13) pays for loading and saving the state with a
20,000- or 100,000-file drive snapshot, taking the lock, and importing these modules;
this prints what each costs. Contract §5.10: an unchanged run's load and save must not
grow with the drive (only state.json is read and written); a save with changes rewrites
snapshot.json once.

    uv run python bench/ops.py [--files 20000 100000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtest_compilation import lock, schedule, state, telemetry
from backtest_compilation.tree import Item


def snapshot(files: int) -> dict:
    """A drive snapshot shaped like the Drive source's: its header and `Item`s in id order."""
    items = []
    per_course = 20
    for i in range(files):
        course = i // per_course
        name = f"CSCI-{1000 + course % 9000:04d} E{i % 9 + 1}F{i % 30:02d}.pdf"
        items.append(Item(f"1{i:032x}", name, "application/pdf", f"0{course:032x}"))
    return {"page_token": "1234567", "root_id": "0AbCdEfGhIjK", "items": tuple(items)}


def timed(fn, repeat: int) -> float:
    """Median wall time of `fn()` in milliseconds."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def state_costs(files: int, now: datetime) -> list[str]:
    """The state's costs with a `files`-item drive snapshot, as lines to print."""
    data = snapshot(files)
    key = state.source_key("drive", "0AbCdEfGhIjK")
    full = state.State(
        source=key,
        drive=data,
        renames={"digest": state.digest([])},
        mongo={"digest": "x" * 64},
        sheet={"digest": "y" * 64},
    ).succeeded(now)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        where = state.folder(cache, key)
        first_ms = timed(lambda: state.save(cache, replace(full, source=key)), 1)
        snapshot_mb = (where / "snapshot.json").stat().st_size / 1e6
        header_b = (where / "state.json").stat().st_size
        load_ms = timed(lambda: state.load(cache, key), 5)
        tracemalloc.start()
        loaded, warning = state.load(cache, key)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert warning is None and loaded == full

        def unchanged_run() -> None:
            """What an unchanged run does with the state: load, a new token, save."""
            got, _ = state.load(cache, key)
            assert got.drive is not None
            state.save(cache, replace(got, drive=state.replaced(got.drive, page_token="2")))

        unchanged_ms = timed(unchanged_run, 5)
        items_ms = timed(lambda: state.load(cache, key)[0].drive["items"], 5)  # type: ignore[union-attr]

        saves = []
        for round_ in range(5):
            got, _ = state.load(cache, key)
            assert got.drive is not None
            items = list(got.drive["items"])
            for k in range(100):  # 100 renames spread over the drive
                i = (k * files) // 100
                items[i] = replace(items[i], name=f"r{round_} {items[i].name}")
            changed = replace(got, drive={**data, "items": tuple(items)})
            started = time.perf_counter()
            state.save(cache, changed)
            saves.append((time.perf_counter() - started) * 1000)
        again, _ = state.load(cache, key)
        assert again.drive is not None and list(again.drive["items"]) == items
    return [
        f"state, {files:,} files in the drive snapshot: snapshot.json {snapshot_mb:.1f} MB, "
        f"state.json {header_b} bytes",
        f"  first save (serialise + fsync + rename): {first_ms:.0f} ms",
        f"  load (state.json only):              {load_ms:.1f} ms (median of 5)",
        f"  peak memory while loading:           {peak / 1e6:.2f} MB",
        f"  unchanged run (load + state.json):   {unchanged_ms:.1f} ms (median of 5)",
        f"  read the items (a run with changes): {items_ms:.0f} ms (median of 5)",
        f"  save with 100 changes (snapshot.json rewritten): "
        f"{statistics.median(saves):.0f} ms (median of 5)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, nargs="+", default=[20_000, 100_000])
    args = parser.parse_args()
    now = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
    lines = [line for files in args.files for line in state_costs(files, now)]
    with tempfile.TemporaryDirectory() as tmp:

        def take_lock() -> None:
            with lock.hold(Path(tmp)):
                pass

        lock_ms = timed(take_lock, 200)

    zone = ZoneInfo("America/New_York")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    next_us = (
        timed(
            lambda: [
                schedule.next_run("*/10 * * * *", zone, start + timedelta(hours=h))
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

    print("\n".join(lines))
    print(f"run lock take + release:             {lock_ms:.2f} ms (median of 200)")
    print(f"schedule.next_run:                   {next_us:.0f} µs per call")
    print(f"telemetry.scrub of a 30-frame event: {scrub_us:.0f} µs")
    print(
        f"interpreter start + import of state, lock, schedule, telemetry: "
        f"{statistics.median(starts) * 1000:.0f} ms (median of 5)"
    )


if __name__ == "__main__":
    main()
