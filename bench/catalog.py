"""Catalog build time and peak memory on a 100,000-file drive (target: < 1.0 s, < 300 MB).

Run: uv run python bench/catalog.py [--files N]
Generates ~120 departments / 6,000 courses in memory (a mix of canonical, renameable,
invalid and duplicate names, like a real drive), then times `catalog.build` alone.
Peak memory is the process's maximum resident set size, tree included.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
import tracemalloc
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtest_compilation import catalog
from backtest_compilation.tree import FOLDER_MIME, PDF_MIME, Node

EXAMS = ["E1", "E2", "E3", "M", "M1", "Q", "Q1", "Q2", "Q10"]
SEMESTERS = ["F", "S", "U", "SU"]


def generate(files: int, departments: int = 120, courses: int = 6000, seed: int = 7) -> Node:
    """A deterministic drive tree of about `files` files."""
    rnd = random.Random(seed)
    per_course, extra = divmod(files, courses)
    codes = sorted(
        {"".join(rnd.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ", k=4)) for _ in range(departments * 2)}
    )
    codes = codes[:departments]
    next_id = 0

    def nid() -> str:
        nonlocal next_id
        next_id += 1
        return f"1{next_id:032d}"  # Drive ids are ~33 characters

    depts = []
    for d, code in enumerate(codes):
        course_nodes = []
        for c in range(courses // departments):
            number = f"{1000 + c * 10 + d % 10:04d}"
            key = f"{code}-{number}"
            leaves = []
            count = per_course + (1 if len(depts) * (courses // departments) + c < extra else 0)
            for f in range(count):
                exam = rnd.choice(EXAMS)
                sem = rnd.choice(SEMESTERS)
                year = rnd.randint(5, 26)
                style = rnd.random()
                if style < 0.7:
                    name = f"{key} {exam}{sem}{year:02d}.pdf"
                elif style < 0.9:
                    name = f"{key.lower()} {exam.lower()} {sem}{year:02d} ({f}).pdf"
                elif style < 0.97:
                    name = f"scan {f:04d}.pdf"
                else:
                    name = f"{exam}{sem}{year + 50:02d}.pdf"
                leaves.append(Node(nid(), name, PDF_MIME))
            course_nodes.append(Node(nid(), f"{key} Course Title {c}", FOLDER_MIME, tuple(leaves)))
        depts.append(Node(nid(), code, FOLDER_MIME, tuple(course_nodes)))
    return Node("root", "Backtests", FOLDER_MIME, tuple(depts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    started = time.perf_counter()
    root = generate(args.files)
    generated_s = time.perf_counter() - started
    today = date(2026, 11, 21)

    timings = []
    result = None
    for _ in range(args.repeat):
        started = time.perf_counter()
        result = catalog.build(root, today=today)
        timings.append(time.perf_counter() - started)
    assert result is not None

    tracemalloc.start()
    catalog.build(root, today=today)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    files = sum(len(course.children) for dept in root.children for course in dept.children)
    print(
        f"tree: {len(root.children)} departments, {sum(len(d.children) for d in root.children)} "
        f"courses, {files} files (generated in {generated_s:.2f} s)"
    )
    print(
        f"catalog: {len(result.courses)} courses, {len(result.problems)} problems, "
        f"{len(result.renames)} renames"
    )
    print(
        f"build time: best {min(timings):.3f} s, median {sorted(timings)[len(timings) // 2]:.3f} s "
        f"over {args.repeat} runs (target < 1.0 s)"
    )
    print(
        f"peak memory: {rss_mb:.0f} MB process RSS, tree included; "
        f"{traced_peak / 2**20:.0f} MB allocated by one build (target < 300 MB)"
    )


if __name__ == "__main__":
    main()
