"""End-to-end benchmark (issues #5, #13): the real CLI, cold and warm, on a large drive.

The Drive v3 and Sheets v4 emulators run in this process with 100 ms latency on every
Google call; MongoDB is the real wire server (SecantusDB, see emulators/secantus.py). Each
run is `python main.py sync --json` in a fresh process, so the wall time includes the
interpreter start. Prints wall time, API calls per service, the child's peak RSS and the
1-minute load average (the machine is shared). The first run after the cold one is shown
too: the changes feed then reports the files the cold run renamed.

Targets: issue #5 (20,000 files): cold < 10 s, unchanged < 2 s; issue #13 (100,000 files,
6,000 courses): cold ≤ 18 s, unchanged ≤ 2.0 s, peak RSS ≤ 300 MB, and the 20,000-file
unchanged run ≤ 1.0 s (issue #19). The last run follows 100 files trashed in Drive: what a
run with changes costs. Renames are bounded by Drive's write quota (`DRIVE_WRITES_PER_S`,
at most 100 a second: 36,526 renames need ≥ 365 s), so the cold target is for a cold run
without renames: `--no-rename` (RENAME_FILES=false).

    uv run python bench/e2e.py [--files 20000] [--latency 0.1] [--no-rename]
    uv run python bench/e2e.py --files 100000 --courses 6000 --no-rename
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulators.drive import DriveEmulator, sample_drive
from emulators.secantus import running_server
from emulators.sheets import SheetsEmulator

ROOT = Path(__file__).resolve().parent.parent

KEY = "1BenchmarkSheet"
COPIES = "Physical Copies of Backtests"


def run_cli(env: dict[str, str], profile: Path | None = None) -> tuple[float, float, float, dict]:
    """(wall seconds, peak RSS in MB, CPU seconds, JSON summary) of one `main.py sync --json`;
    with `profile`, the child runs under cProfile and writes its statistics there."""
    started = time.perf_counter()
    under = [] if profile is None else ["-m", "cProfile", "-o", str(profile)]
    child = subprocess.Popen(
        [sys.executable, *under, str(ROOT / "main.py"), "sync", "--json"],
        cwd=Path(env["CACHE_DIR"]).parent,  # not the repository: its .env names real services
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert child.stdout is not None
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    summary = json.loads(out)
    if child.returncode != 0:
        raise SystemExit(f"run failed with exit {child.returncode}: {summary.get('failed')}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--folders", type=int, default=1_600)
    parser.add_argument(
        "--courses", type=int, default=None, help="course folders (overrides --folders)"
    )
    parser.add_argument("--departments", type=int, default=60)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="directory: each run's cProfile statistics go there (timings are then inflated)",
    )
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument(
        "--google-quotas",
        type=float,
        metavar="RENAME_BUDGET_S",
        default=None,
        help="keep the emulators' Google quotas (Drive 3 writes/s, Sheets 60 + 60 a minute) "
        "and give renames this budget: the cold run then leaves most renames pending",
    )
    parser.add_argument(
        "--no-rename",
        action="store_true",
        help="RENAME_FILES=false: the cold run without renames (their cost is Drive's quota)",
    )
    args = parser.parse_args()

    departments = args.departments
    courses = args.courses if args.courses is not None else args.folders - departments
    args.folders = departments + courses
    # By default the figures are our own overhead: Google's write limit alone (3 writes a
    # second, every batch part counted) would spread 36,000 renames over 3.4 hours of runs.
    quotas = args.google_quotas is not None
    limits: dict[str, Any] = {} if quotas else {"write_limit": None}
    sheet_limits: dict[str, Any] = (
        {} if quotas else {"read_quota_per_minute": None, "write_quota_per_minute": None}
    )
    with (
        DriveEmulator(latency=args.latency, **limits) as drive,
        SheetsEmulator(latency=args.latency, **sheet_limits) as sheets,
        running_server() as mongo,
        tempfile.TemporaryDirectory() as tmp,
    ):
        drive_id = drive.add_drive("Backtests")
        tree = sample_drive(departments, courses, args.files)
        drive.seed(drive_id, tree)
        course_names = [c.name for d in tree for c in d.children]
        sheets.add_spreadsheet(KEY)
        sheets.add_tab(KEY, COPIES)
        rows = [["Course", "", "", "", "Physical", "Digital"]]
        rows += [[name.split(" ", 1)[0], "", "", "", 1, 0] for name in course_names[::2]]
        sheets.set_values(KEY, COPIES, "A1", rows)
        sheets.link_drive(drive)  # the spreadsheet is a Drive file: its version is checked

        env = {
            "PATH": os.environ["PATH"],
            "FOLDER_ID": drive_id,
            "DRIVE_API_ENDPOINT": drive.url,
            "SHEETS_API_ENDPOINT": sheets.url,
            "SHEET_URL": f"https://docs.google.com/spreadsheets/d/{KEY}/edit",
            "MONGO_URI": mongo.uri,
            "MONGO_DB": "bench",
            "CACHE_DIR": str(Path(tmp) / "cache"),
            "LOG_LEVEL": "WARNING",
        }
        if args.no_rename:
            env["RENAME_FILES"] = "false"
        if quotas:
            env["RENAME_BUDGET_S"] = f"{args.google_quotas:g}"
        else:  # no emulator write limit: renames as fast as settings allow
            env["DRIVE_WRITES_PER_S"] = "100"  # the most settings allow
        print(
            f"drive: {args.files} files in {args.folders} folders; "
            f"{args.latency * 1000:.0f} ms latency on every Drive and Sheets call; "
            f"sheet rows for {len(rows) - 1} courses; MongoDB: SecantusDB; "
            + (
                f"Google's quotas on, RENAME_BUDGET_S={args.google_quotas:g}"
                if quotas
                else "no Drive write limit or Sheets quota (our own overhead)"
            )
            + ("; renames off (RENAME_FILES=false)" if args.no_rename else "")
        )
        large = args.files >= 100_000
        runs = (
            ("cold", "≤ 18 s" if large else "< 10 s"),
            (
                "warm, the first after the cold run"
                + ("" if args.no_rename else " (the changes feed reports its renames)"),
                "—",
            ),
            ("warm, unchanged drive", "≤ 2.0 s" if large else "≤ 1.0 s"),
            ("warm, 100 files trashed before it (a changed run)", "—"),
        )
        if quotas:  # the targets are for our overhead; here the pending renames go on
            runs = (
                ("cold", "—"),
                ("next run (pending renames go on)", "—"),
                ("the run after (pending renames go on)", "—"),
            )
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        for n, (label, target) in enumerate(runs, 1):
            if label.startswith("warm, 100 files"):
                pdfs = sorted(i for i, f in drive.files.items() if f.name.endswith(".pdf"))
                for file_id in pdfs[:: max(1, len(pdfs) // 100)][:100]:
                    drive.trash(file_id)
            load = os.getloadavg()[0]
            # The emulators run in this process: their CPU competes with the CLI's.
            mine = resource.getrusage(resource.RUSAGE_SELF)
            profile = args.profile / f"run{n}.prof" if args.profile else None
            wall, rss, cpu, summary = run_cli(env, profile)
            after = resource.getrusage(resource.RUSAGE_SELF)
            emulated = (after.ru_utime + after.ru_stime) - (mine.ru_utime + mine.ru_stime)
            calls = summary["api_calls"]
            timings = " ".join(f"{k} {v:.2f}" for k, v in summary["timings_s"].items())
            print(
                f"{label}: {wall:.2f} s wall incl. interpreter start (target {target}); "
                f"api calls drive {calls['drive']}, sheets {calls['sheets']}, "
                f"mongo {calls['mongo']}; peak RSS {rss:.0f} MB (target ≤ 300 MB); "
                f"{len(summary['catalog']['courses'])} courses, "
                f"{len(summary['problems'])} problems, "
                f"{sum(r['applied'] for r in summary['renames'])} renames"
                f"{f' ({p} pending)' if (p := summary.get('renames_pending')) else ''}; "
                f"load (1 min) {load:.2f} before, {os.getloadavg()[0]:.2f} after; "
                f"CPU s: CLI {cpu:.2f}, emulators {emulated:.2f}; "
                f"phases (s): {timings}"
            )


if __name__ == "__main__":
    main()
