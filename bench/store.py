"""Benchmark: publishing to the real MongoDB-wire server (SecantusDB).

6,000 courses with 100,000 tests in all: a cold publish into an empty database, an
unchanged re-publish, and a re-publish after one course title was renamed. Round trips
are counted with pymongo's command monitoring (`RoundTrips`), writes are the insert /
update / delete commands among them. Also times the pure diff (`website.plan`).

Targets (issue #7): cold ≤ 12 round trips; unchanged = 3 reads and 0 writes; one
rename = 1 write; diff of 6,000 courses under 0.3 s.

Run: `uv run python bench/store.py` (needs SecantusDB, see emulators/secantus.py).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtest_compilation.catalog import Catalog, Course, ExamEntry
from backtest_compilation.store import Store
from backtest_compilation.website import Current, Plan, plan
from emulators.secantus import running_server

N_COURSES = 6_000
N_TESTS = 100_000
KINDS = ["Quiz", "Quiz 1", "Quiz 2", "Exam 1", "Exam 2", "Exam 3", "Midterm"]
SEMESTERS = [f"{s} {y}" for y in range(2025, 1990, -1) for s in ("Fall", "Summer", "Spring")]


def make_catalog() -> Catalog:
    """6,000 courses in 60 departments, 100,000 (exam, semester) pairs in all."""
    base, extra = divmod(N_TESTS, N_COURSES)
    courses = []
    for i in range(N_COURSES):
        n_tests = base + (1 if i < extra else 0)
        per_kind: dict[str, list[str]] = {}
        for t in range(n_tests):
            per_kind.setdefault(KINDS[t % len(KINDS)], []).append(
                SEMESTERS[(t // len(KINDS) + i) % len(SEMESTERS)]
            )
        code = "D" + chr(65 + (i // 100) % 26) + chr(65 + (i // 2600) % 26) + "X"
        number = f"{1000 + i % 9000:04d}"
        courses.append(
            Course(
                name=f"{code}-{number} Course {i} of the benchmark",
                code=code,
                number=number,
                title=f"Course {i} of the benchmark",
                folder_id=f"1FolderIdOfTheCourse{i:06d}xyz",
                tests=tuple(ExamEntry(k, tuple(v)) for k, v in per_kind.items()),
            )
        )
    courses.sort(key=lambda c: c.name)
    assert sum(c.digital_count for c in courses) == N_TESTS
    return Catalog(courses=tuple(courses))


def run(store: Store, catalog: Catalog, label: str) -> tuple[Plan, dict[str, Any]]:
    """One publish: read, plan, apply; its round trips, writes and timings."""
    before = store.round_trips.copy()
    started = time.perf_counter()
    current = store.read_current()
    read_s = time.perf_counter() - started
    t = time.perf_counter()
    p = plan(catalog, current)
    plan_s = time.perf_counter() - t
    t = time.perf_counter()
    applied = store.apply(p)
    apply_s = time.perf_counter() - t
    total_s = time.perf_counter() - started
    spent = store.round_trips - before
    writes = sum(n for name, n in spent.items() if name in ("insert", "update", "delete"))
    figures: dict[str, Any] = {
        "round_trips": sum(spent.values()),
        "reads": spent["find"] + spent["getMore"],
        "writes": writes,
        "commands": dict(sorted(spent.items())),
        "documents": f"+{applied.inserted} ~{applied.updated} -{applied.deleted}",
        "read_s": read_s,
        "plan_s": plan_s,
        "apply_s": apply_s,
        "total_s": total_s,
    }
    print(
        f"{label:<22} round trips {figures['round_trips']:>3}  reads {figures['reads']}  "
        f"writes {writes}  docs {figures['documents']:<22} read {read_s:6.3f} s  "
        f"plan {plan_s:6.3f} s  apply {apply_s:6.3f} s  total {total_s:6.3f} s"
    )
    print(f"{'':<22} commands {figures['commands']}")
    return p, figures


def time_diff(catalog: Catalog, store: Store, repeats: int = 7) -> tuple[float, float]:
    """Median seconds of `plan` on the published state (unchanged) and on an empty one."""
    current = store.read_current()
    unchanged, cold = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        plan(catalog, current)
        unchanged.append(time.perf_counter() - t)
        t = time.perf_counter()
        plan(catalog, Current((), (), ()))
        cold.append(time.perf_counter() - t)
    return statistics.median(unchanged), statistics.median(cold)


def main() -> None:
    t = time.perf_counter()
    catalog = make_catalog()
    print(
        f"catalog: {len(catalog.courses)} courses, {len(catalog.course_codes)} departments, "
        f"{sum(c.digital_count for c in catalog.courses)} tests "
        f"(built in {time.perf_counter() - t:.2f} s)"
    )
    with running_server() as server, Store.connect(server.uri, "bench") as store:
        _, cold = run(store, catalog, "cold publish")
        _, same = run(store, catalog, "unchanged re-publish")
        renamed_course = replace(
            catalog.courses[1234],
            name=catalog.courses[1234].name + " (renamed)",
            title=catalog.courses[1234].title + " (renamed)",
        )
        renamed = Catalog(
            courses=tuple(
                sorted(
                    (renamed_course if i == 1234 else c for i, c in enumerate(catalog.courses)),
                    key=lambda c: c.name,
                )
            )
        )
        rename_plan, one = run(store, renamed, "one title renamed")
        assert len(rename_plan.courses_to_update) == 1
        diff_same, diff_cold = time_diff(renamed, store)
        print(
            f"diff of {N_COURSES} courses (pure plan, median of 7): "
            f"unchanged {diff_same:.3f} s, against an empty database {diff_cold:.3f} s"
        )
        stored = Counter(
            {
                name: store.database[name].estimated_document_count()
                for name in (
                    "backtest_course_code_collection",
                    "backtest_courses_collection",
                    "backtest_collection",
                )
            }
        )
        print(f"stored documents: {dict(stored)}")

    checks = [
        ("cold ≤ 12 round trips", cold["round_trips"] <= 12),
        ("unchanged = 3 reads, 0 writes", same["round_trips"] == 3 and same["writes"] == 0),
        ("one rename = 1 write", one["writes"] == 1),
        ("diff of 6,000 courses < 0.3 s", diff_same < 0.3 and diff_cold < 0.3),
    ]
    for label, ok in checks:
        print(f"target {label}: {'met' if ok else 'MISSED'}")
    if not all(ok for _, ok in checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
