"""Renames under Drive's per-user write limit (issue #10).

The Drive v3 emulator with 100 ms latency on every request and a sustained write limit
(a token bucket of one second's worth, counted per batch part, a part over it answered
403 `userRateLimitExceeded`); `DriveSource.rename` renames 1,000 files through the real
`google-api-python-client`, with real waits. Prints, per limit: wall time, write attempts
per rename (batch parts sent ÷ renames), and the achieved rate ÷ the limit (target
≥ 0.85 at every limit), and checks every rename was applied with none failed.

    uv run python bench/quota.py [--renames 1000] [--limits 10 20 50] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from google.auth.credentials import AnonymousCredentials

from backtest_compilation.catalog import Rename
from backtest_compilation.drive import DriveSource
from emulators.drive import DriveEmulator


def run(limit: float, renames: int, latency: float, retry_after: str | None) -> str:
    with DriveEmulator(latency=latency) as drive:
        root = drive.add_drive("Backtests")
        course = drive.add_folder(root, "CSCI-1200 Data Structures")
        ids = [
            drive.add_file(course, f"csci-1200 e1 f{n % 90:02d} {n}.pdf") for n in range(renames)
        ]
        drive.limit_writes(limit, retry_after=retry_after)
        drive.reset_stats()
        source = DriveSource(
            root, credentials=AnonymousCredentials(), endpoint=drive.url, allow_renames=True
        )
        plan = [
            Rename(i, f"CSCI / CSCI-1200 Data Structures / {n}", "x", f"CSCI-1200 E1F{n:04d}.pdf")
            for n, i in enumerate(ids)
        ]
        started = time.perf_counter()
        result = source.rename(plan)
        wall = time.perf_counter() - started
        ok = (
            len(result.applied) == renames
            and not result.problems
            and not getattr(result, "pending", ())
        )
        attempts = drive.stats.batch_parts / renames
        achieved = renames / wall / limit
        return (
            f"limit {limit:g} writes/s: {wall:.1f} s wall (ideal {renames / limit:.1f} s), "
            f"{attempts:.2f} write attempts per rename, {drive.stats.requests} batches, "
            f"achieved rate {renames / wall:.1f}/s = {achieved:.2f} of the limit "
            f"(target ≥ 0.85: {'ok' if achieved >= 0.85 else 'MISSED'}); "
            f"{len(result.applied)} applied, {len(result.problems)} failed, "
            f"{len(getattr(result, 'pending', ()))} pending{'' if ok else '  <-- NOT ALL APPLIED'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--renames", type=int, default=1000)
    parser.add_argument("--limits", type=float, nargs="+", default=[10, 20, 50])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--retry-after", choices=["seconds", "date"], default=None)
    parser.add_argument("-v", action="store_true", help="log the rename phase at INFO")
    args = parser.parse_args()
    if args.v:
        logging.basicConfig(level=logging.WARNING, format="%(relativeCreated)7.0f %(message)s")
        logging.getLogger("backtest_compilation.drive").setLevel(logging.DEBUG)
    print(
        f"{args.renames} renames, {args.latency * 1000:.0f} ms latency per request, "
        f"bucket of one second's worth, Retry-After: {args.retry_after or 'none'}"
    )
    for limit in args.limits:
        print(run(limit, args.renames, args.latency, args.retry_after), flush=True)


if __name__ == "__main__":
    main()
