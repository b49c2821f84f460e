"""The naming rules of contract §2: departments, course folders, test file names, labels.

The patterns are ASCII-only: with Unicode, `[A-Z]` would match the Kelvin sign and `\\d`
Arabic-Indic digits, none of which belong in a canonical name."""

from __future__ import annotations

import re
from typing import NamedTuple

# Up to two characters, the last not a capital, then the four-letter code.
_DEPARTMENT = re.compile(r"(?:.?[^A-Z])?([A-Z]{4})", re.ASCII | re.DOTALL)
_COURSE = re.compile(r"\*?([A-Z]{4})-([0-9]{3}[0-9X]) (.+)", re.ASCII)
_TEST = re.compile(
    r"""
    (?:([A-Z]{4})[- ]?([0-9]{3}[0-9X]))?   # optional DEPT-NUM prefix
    [ _-]{0,3}
    (M1?|E[1-9]|Q[0-9]{0,2})               # exam code
    [ ]?
    (SU|F|S|U)                             # semester
    ([0-9]{2})                             # year; any trailing text (.pdf included) follows
    """,
    re.ASCII | re.IGNORECASE | re.VERBOSE,
)
_EXAM_KINDS = {"Q": "Quiz", "E": "Exam", "M": "Midterm"}  # in website order (contract §3)
_SEMESTERS = {"F": "Fall", "U": "Summer", "S": "Spring"}  # newest first within a year
Ordered = tuple[tuple[int, int], str]  # a sort key and the label it orders


def department_code(name: str) -> str | None:
    """The code of a root folder named `name` (`CSCI`, `*CSCI`, `1 MATH`), or None."""
    m = _DEPARTMENT.fullmatch(name)
    return m.group(1) if m else None


class CourseName(NamedTuple):
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
    title = m.group(3).strip() if m else ""
    return CourseName(m.group(1), m.group(2), title) if m and title else None


class TestName(NamedTuple):
    """A test file name as read: exam code (`E1`, `M`, `Q`, `Q3`), semester (`F`/`S`/`U`),
    two-digit year, and its `CSCI-1200` prefix (upper-cased) when it had one."""

    exam: str
    semester: str
    year: int
    prefix: str | None = None

    def canonical(self, course: CourseName) -> str:
        """`CSCI-1200 E1F22.pdf`: code and number from the folder, no trailing text."""
        return f"{course.key} {self.exam}{self.semester}{self.year:02d}.pdf"

    @property
    def exam_entry(self) -> Ordered:
        """Sort key and label (`Quiz 3`): Quiz, Exam, Midterm, un-numbered first (§3)."""
        kind, number = self.exam[0], self.exam[1:]
        label = f"{_EXAM_KINDS[kind]} {int(number)}" if number else _EXAM_KINDS[kind]
        return (list(_EXAM_KINDS).index(kind), int(number or -1)), label

    @property
    def semester_entry(self) -> Ordered:
        """Sort key and label (`Fall 2022`; years are 20YY): newest first, Fall before Summer."""
        label = f"{_SEMESTERS[self.semester]} {2000 + self.year}"
        return (-self.year, list(_SEMESTERS).index(self.semester)), label


def parse_test(name: str) -> TestName | None:
    """Read a test file name case-insensitively (`csci-1200 e1 f22 (1).pdf`), or None."""
    if (m := _TEST.match(name)) is None:
        return None
    dept, number, exam, semester, year = m.groups()
    exam, semester = exam.upper(), semester.upper()
    prefix = f"{dept}-{number}".upper() if dept else None
    return TestName("M" if exam == "M1" else exam, semester[-1], int(year), prefix)


def prefix_matches(test: TestName, course: CourseName) -> bool:
    """A prefix, when present, must name this course's own department and number."""
    return test.prefix in (None, course.key)
