"""Benchmark: the sheet report for 1,500 courses and 300 problems over HTTP with 100 ms latency.

Target (issue #4): at most 6 Sheets API calls and under 3 s. Prints the figures.

    uv run python bench/sheet.py [--courses 1500] [--problems 300] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtest_compilation import sheet, sheet_contents
from backtest_compilation.catalog import Catalog, Category, Course, ExamEntry, Problem
from emulators.sheets import SheetsEmulator

KEY = "BenchSheet"
TAB = "Physical Copies of Backtests"
SEMESTERS = ("Fall 2022", "Spring 2022", "Fall 2021", "Spring 2021", "Summer 2020")


def catalog(n: int, n_problems: int) -> Catalog:
    courses = []
    for i in range(n):
        code = "ABCDEFGHIJ"[i % 10] * 4
        number = f"{1000 + i}"
        title = f"Topic {i} Seminar"
        tests = tuple(
            ExamEntry(f"Exam {k + 1}", SEMESTERS[: 1 + (i + k) % 5]) for k in range(i % 4)
        )
        courses.append(Course(f"{code}-{number} {title}", code, number, title, f"fid{i}", tests))
    problems = tuple(
        Problem.from_text(
            Category.INVALID_FILENAME if i % 2 else Category.INVALID_COURSE,
            f"Problem {i}: DEPT / COURSE {i} / file {i}.pdf",
            f"path {i:04d}",
            f"id{i}",
        )
        for i in range(n_problems)
    )
    return Catalog(courses=tuple(sorted(courses, key=lambda c: c.name)), problems=problems)


def copies_tab(cat: Catalog) -> list[list[object]]:
    """Rows as people keep them: mostly full names, some codes, titles, longer text, gaps."""
    rows: list[list[object]] = [["Course", "Code", "Physical", "Shelf", "Notes", "Digital"]]
    for i, c in enumerate(cat.courses):
        kind = i % 20
        if kind == 19:
            continue  # no row: not found
        if kind < 12:
            rows.append([c.name, "", 1, "A", "", i % 5])
        elif kind < 15:
            rows.append(["(old title)", c.key, 1, "B", "", ""])
        elif kind < 18:
            rows.append([c.title, "", 2, "C", "", i % 3])
        else:
            rows.append([f"{c.title} (binder)", "", 1, "D", "", ""])
    rows += [[f"Retired {i}", "", 1, "Z", "", 3] for i in range(40)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--courses", type=int, default=1500)
    parser.add_argument("--problems", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()

    cat = catalog(args.courses, args.problems)
    tab = copies_tab(cat)
    started = time.perf_counter()
    report = sheet_contents.build(cat, tab)
    build_s = time.perf_counter() - started

    with SheetsEmulator(latency=args.latency, quota_per_minute=60) as emu:
        emu.add_spreadsheet(KEY, tabs={TAB: tab})
        sr = sheet.open_report(KEY, endpoint=emu.url)
        now = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)

        started = time.perf_counter()
        first = sr.publish(cat, None, now)
        first_s = time.perf_counter() - started

        started = time.perf_counter()
        second = sr.publish(cat, first.digest, now)
        second_s = time.perf_counter() - started
        throttled = emu.throttled
        busiest = emu.max_per_minute()

    print(
        f"sheet benchmark: {args.courses} courses, {args.problems} problems, "
        f"{len(tab)} rows in the physical-copies tab, {args.latency * 1000:.0f} ms latency per call"
    )
    print(
        f"  pure build (matching + contents + digest): {build_s:.3f} s; "
        f"{len(report.counts)} rows written, {len(report.stale)} stale, "
        f"{len(report.not_found)} not found, {len(report.ambiguous)} ambiguous"
    )
    print(
        f"  first run (sheet changes):     {first.api_calls} API calls, {first_s:.2f} s, "
        f"written={first.written}"
    )
    print(
        f"  second run (nothing changed):  {second.api_calls} API calls, {second_s:.2f} s, "
        f"written={second.written}"
    )
    print(f"  quota: {busiest} requests in the busiest minute (limit 60), {throttled} answered 429")
    ok = first.api_calls <= 6 and first_s < 3.0 and second.api_calls <= 6 and throttled == 0
    print(f"  target (<= 6 calls, < 3 s): {'met' if ok else 'MISSED'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
