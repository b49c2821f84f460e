"""The naming rules of contract §2: departments, course folders, test file names, labels.

Pure functions over strings. Every pattern is ASCII-only on purpose: with Unicode
case folding `[A-Z]` would also match the Kelvin sign or a long s, and `\\d` would
match Arabic-Indic digits, none of which belong in a canonical name.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import NamedTuple

_DEPARTMENT = re.compile(r"(?s)(.{0,2})([A-Z]{4})", re.ASCII)
_COURSE = re.compile(r"\*?([A-Z]{4})-([0-9]{3}[0-9X]) (.+)", re.ASCII)
_TEST = re.compile(
    r"""
    (?:(?P<dept>[A-Z]{4})[- ]?(?P<num>[0-9]{3}[0-9X]))?   # optional DEPT-NUM prefix
    [ _-]{0,3}
    (?P<exam>M1?|E[1-9]|Q[0-9]{0,2})
    [ ]?
    (?P<sem>SU|F|S|U)
    (?P<year>[0-9]{2})
    (?P<rest>.*)                                          # trailing text, .pdf included
    """,
    re.ASCII | re.IGNORECASE | re.VERBOSE | re.DOTALL,
)

MAX_DEPARTMENT_NAME = 6

_SEMESTER_LABEL = {"F": "Fall", "S": "Spring", "U": "Summer"}
# Newest first within a year: Fall, then Summer, then Spring (contract §3).
_SEMESTER_RANK = {"F": 0, "U": 1, "S": 2}
_EXAM_KIND = {"Q": ("Quiz", 0), "E": ("Exam", 1), "M": ("Midterm", 2)}


def department_code(name: str) -> str | None:
    """The department code of a root child folder named `name`, or None.

    At most 6 characters, ending in exactly four capitals not preceded by another
    capital: `CSCI`, `*CSCI`, `1 MATH` → the four letters.
    """
    if len(name) > MAX_DEPARTMENT_NAME:
        return None
    m = _DEPARTMENT.fullmatch(name)
    if m is None or (m.group(1) and "A" <= m.group(1)[-1] <= "Z"):
        return None
    return m.group(2)


def is_department_sized(name: str) -> bool:
    """Root folders longer than this are not meant as departments and are ignored."""
    return len(name) <= MAX_DEPARTMENT_NAME


@dataclass(frozen=True, slots=True)
class CourseName:
    code: str
    number: str
    title: str

    @property
    def full_name(self) -> str:
        return f"{self.code}-{self.number} {self.title}"

    @property
    def key(self) -> str:
        """`CSCI-1200`: how sheets and files refer to the course."""
        return f"{self.code}-{self.number}"


def parse_course(name: str) -> CourseName | None:
    """Read a course folder name (`*CSCI-1200 Data Structures`), or None if it is invalid."""
    m = _COURSE.fullmatch(name)
    if m is None:
        return None
    title = m.group(3).strip()
    if not title:
        return None
    return CourseName(m.group(1), m.group(2), title)


class TestName(NamedTuple):
    """A test file name as read: exam code (`E1`, `M`, `Q`, `Q3`), semester (`F`/`S`/`U`),
    two-digit year, and the DEPT/NUM prefix when the name had one (upper-cased).

    A NamedTuple rather than a frozen dataclass: one is made per file, and tuple
    construction is several times cheaper on a 100,000-file drive."""

    exam: str
    semester: str
    year: int
    prefix_code: str | None = None
    prefix_number: str | None = None

    def canonical(self, course: CourseName) -> str:
        """`CSCI-1200 E1F22.pdf`: code and number from the folder, no trailing text."""
        return f"{course.key} {self.exam}{self.semester}{self.year:02d}.pdf"

    @property
    def exam_label(self) -> str:
        """`Quiz`, `Quiz 3`, `Exam 2`, `Midterm`."""
        return exam_facts(self.exam)[0]

    @property
    def exam_number(self) -> int | None:
        digits = self.exam[1:]
        return int(digits) if digits else None

    @property
    def semester_label(self) -> str:
        """`Fall 2022`; years are always 20YY."""
        return semester_facts(self.semester, self.year)[0]

    @property
    def exam_sort_key(self) -> tuple[int, int]:
        """Quiz, Exam, Midterm; un-numbered first, then by number (contract §3)."""
        return exam_facts(self.exam)[1]

    @property
    def semester_sort_key(self) -> tuple[int, int]:
        """Newest first: year descending, then Fall, Summer, Spring."""
        return semester_facts(self.semester, self.year)[1]


# A few hundred distinct values at most: cached so 100,000 files cost one lookup each.
@functools.cache
def exam_facts(exam: str) -> tuple[str, tuple[int, int]]:
    """(label, sort key) of a normalised exam code: `Q3` → (`Quiz 3`, (0, 3))."""
    kind, rank = _EXAM_KIND[exam[0]]
    digits = exam[1:]
    if not digits:
        return kind, (rank, -1)
    return f"{kind} {int(digits)}", (rank, int(digits))


@functools.cache
def semester_facts(semester: str, year: int) -> tuple[str, tuple[int, int]]:
    """(label, sort key) of a semester: (`F`, 22) → (`Fall 2022`, (-22, 0))."""
    return f"{_SEMESTER_LABEL[semester]} {2000 + year}", (-year, _SEMESTER_RANK[semester])


def parse_test(name: str) -> TestName | None:
    """Read a test file name case-insensitively (`csci-1200 e1 f22 (1).pdf`), or None."""
    m = _TEST.match(name)
    if m is None:
        return None
    dept, num, exam, semester, year, _rest = m.groups()
    exam = exam.upper()
    if exam == "M1":
        exam = "M"
    semester = semester.upper()
    if semester == "SU":
        semester = "U"
    return TestName(
        exam,
        semester,
        int(year),
        dept.upper() if dept else None,
        num.upper() if num else None,
    )


def prefix_matches(test: TestName, course: CourseName) -> bool:
    """A prefix, when present, must name this course's own department and number."""
    if test.prefix_code is None:
        return True
    return test.prefix_code == course.code and test.prefix_number == course.number
