"""Small builders for catalogs and MongoDB documents used by the store tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence

from bson import ObjectId

from backtest_compilation.catalog import Catalog, Course, ExamEntry


def course(
    name: str,
    folder_id: str | None = None,
    tests: Mapping[str, Sequence[str]] | None = None,
) -> Course:
    """`course("CSCI-1200 Data Structures", "f1", {"Exam 1": ["Fall 2022"]})`."""
    key, title = name.split(" ", 1)
    code, number = key.split("-", 1)
    entries = tuple(ExamEntry(t, tuple(s)) for t, s in (tests or {}).items())
    return Course(
        name=name,
        code=code,
        number=number,
        title=title,
        folder_id=folder_id if folder_id is not None else f"folder:{name}",
        tests=entries,
    )


def catalog(*courses: Course) -> Catalog:
    """A catalog of `courses` (sorted by name, as `catalog.build` returns them)."""
    return Catalog(courses=tuple(sorted(courses, key=lambda c: c.name)))


def ids() -> Iterator[ObjectId]:
    """Increasing ObjectIds: later ones are 'newer', as ObjectIds made in order are."""
    for n in itertools.count(1):
        yield ObjectId(f"{0x65000000 + n:08x}" + "0" * 16)


def big_catalog(n_courses: int, tests_per_course: int) -> Catalog:
    """`n_courses` courses over 60 departments, each with `tests_per_course` tests."""
    kinds = ["Quiz", "Quiz 1", "Quiz 2", "Exam 1", "Exam 2", "Exam 3", "Midterm"]
    semesters = [f"{s} {y}" for y in range(2024, 1990, -1) for s in ("Fall", "Summer", "Spring")]
    courses = []
    for i in range(n_courses):
        code = "D" + chr(65 + (i // 100) % 26) + chr(65 + (i // 2600) % 26) + "X"
        name = f"{code}-{1000 + i % 9000:04d} Course number {i}"
        per_kind: dict[str, list[str]] = {}
        for t in range(tests_per_course):
            per_kind.setdefault(kinds[t % len(kinds)], []).append(
                semesters[(t // len(kinds)) % len(semesters)]
            )
        courses.append(course(name, f"folder{i:06d}", per_kind))
    return catalog(*courses)
