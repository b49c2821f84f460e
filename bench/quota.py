"""Renames under Drive's per-user write limit (issues #10, #18).

The Drive v3 emulator with 100 ms latency on every request and a sustained write limit
(a token bucket, counted per batch part, a part over it answered 403
`userRateLimitExceeded`); `DriveSource.rename` renames files through the real
`google-api-python-client`, with real waits, with `DRIVE_WRITES_PER_S` at the limit
(Google's 3 a second, or a workspace's raised quota). Prints, per limit: wall time,
write attempts per rename (batch parts sent ÷ renames; target ≤ 1.3), and the achieved
rate ÷ the limit (target ≥ 0.9 at 3 a second, burst 3; ≥ 0.85 at 10 and 50, burst one
second's worth), and checks every rename was applied with none failed.

    uv run python bench/quota.py [--renames 1000] [--limits 10 50] [--latency 0.1]
        [--google 300]
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
from emulators.drive import WRITES_PER_SECOND, DriveEmulator


def rename(
    limit: float, renames: int, latency: float, retry_after: str | None, burst: float | None
) -> tuple[float, int, int, str]:
    """Rename `renames` files under the limit: (wall seconds, batch parts, batches, and
    what became of them, flagged unless every one was applied)."""
    with DriveEmulator(latency=latency) as drive:
        root = drive.add_drive("Backtests")
        course = drive.add_folder(root, "CSCI-1200 Data Structures")
        ids = [
            drive.add_file(course, f"csci-1200 e1 f{n % 90:02d} {n}.pdf") for n in range(renames)
        ]
        drive.limit_writes(limit, burst=burst, retry_after=retry_after)
        drive.reset_stats()
        source = DriveSource(
            root,
            credentials=AnonymousCredentials(),
            endpoint=drive.url,
            allow_renames=True,
            writes_per_s=limit,
        )
        plan = [
            Rename(i, f"CSCI / CSCI-1200 Data Structures / {n}", "x", f"CSCI-1200 E1F{n:04d}.pdf")
            for n, i in enumerate(ids)
        ]
        started = time.perf_counter()
        result = source.rename(plan)
        wall = time.perf_counter() - started
        ok = len(result.applied) == renames and not result.problems and not result.pending
        outcome = (
            f"{len(result.applied)} applied, {len(result.problems)} failed, "
            f"{len(result.pending)} pending{'' if ok else '  <-- NOT ALL APPLIED'}"
        )
        return wall, drive.stats.batch_parts, drive.stats.requests, outcome


def run(
    limit: float,
    renames: int,
    latency: float,
    retry_after: str | None,
    burst: float | None = None,
    target: float = 0.85,
) -> str:
    """One measurement, as a line."""
    wall, parts, batches, outcome = rename(limit, renames, latency, retry_after, burst)
    attempts = parts / renames
    achieved = renames / wall / limit
    met = achieved >= target and attempts <= 1.3
    return (
        f"limit {limit:g} writes/s: {wall:.1f} s wall (ideal {renames / limit:.1f} s), "
        f"{attempts:.2f} write attempts per rename, {batches} batches, "
        f"achieved rate {renames / wall:.1f}/s = {achieved:.2f} of the limit "
        f"(targets ≥ {target}, ≤ 1.3 attempts: {'ok' if met else 'MISSED'}); {outcome}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--renames", type=int, default=1000)
    parser.add_argument("--limits", type=float, nargs="+", default=[10, 50])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--retry-after", choices=["seconds", "date"], default=None)
    parser.add_argument("--google", type=int, default=300, help="renames at 3/s (0: skip)")
    parser.add_argument("-v", action="store_true", help="log the rename phase at DEBUG")
    args = parser.parse_args()
    if args.v:
        logging.basicConfig(level=logging.WARNING, format="%(relativeCreated)7.0f %(message)s")
        logging.getLogger("backtest_compilation.drive").setLevel(logging.DEBUG)
    print(
        f"{args.latency * 1000:.0f} ms latency per request, "
        f"Retry-After: {args.retry_after or 'none'}"
    )
    if args.google:
        print(
            f"Google's limit, burst 3: {args.google} renames: "
            + run(WRITES_PER_SECOND, args.google, args.latency, args.retry_after, 3.0, 0.9),
            flush=True,
        )
    for limit in args.limits:
        print(f"{args.renames} renames, bucket of one second's worth: ", end="")
        print(run(limit, args.renames, args.latency, args.retry_after), flush=True)


if __name__ == "__main__":
    main()
