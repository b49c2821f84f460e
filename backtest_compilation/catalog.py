"""Drive tree → catalog: what the website should show, what to rename, what humans must fix.

`build` is pure: no I/O, no clock (today is passed in), no logging. Everything it
decides is in the returned `Catalog` (contract §2).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import NamedTuple

from . import naming
from .naming import CourseName, TestName
from .tree import FOLDER_MIME, PDF_MIME, SHORTCUT_MIME, Node

PATH_SEPARATOR = " / "


class Category(StrEnum):
    """Problem categories (contract §8); the values are stable and machine-readable."""

    INVALID_DEPARTMENT = "invalid_department"
    DUPLICATE_DEPARTMENT = "duplicate_department"
    NOT_A_COURSE_FOLDER = "not_a_course_folder"
    INVALID_COURSE = "invalid_course"
    DEPARTMENT_MISMATCH = "department_mismatch"
    DUPLICATE_COURSE = "duplicate_course"
    FOLDER_INSIDE_COURSE = "folder_inside_course"
    NOT_A_PDF = "not_a_pdf"
    INVALID_FILENAME = "invalid_filename"
    INVALID_YEAR = "invalid_year"
    DUPLICATE_TEST = "duplicate_test"
    RENAME_FAILED = "rename_failed"

    @property
    def is_about_files(self) -> bool:
        """Sheet section: `Invalid Filenames` for these, `Errors` for the folder problems."""
        return self in _FILE_CATEGORIES


_FILE_CATEGORIES = frozenset(
    {
        Category.NOT_A_PDF,
        Category.INVALID_FILENAME,
        Category.INVALID_YEAR,
        Category.DUPLICATE_TEST,
        Category.RENAME_FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something a human must fix in the drive. `message` names the full path."""

    category: Category
    message: str
    path: str
    id: str


@dataclass(frozen=True, slots=True)
class ExamEntry:
    """One element of a backtest document's `tests`: `Exam 1` → `Fall 2022`, `Spring 2021`."""

    type: str
    semesters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Course:
    """A published course, as the website will show it."""

    name: str
    code: str
    number: str
    title: str
    folder_id: str
    tests: tuple[ExamEntry, ...] = ()

    @property
    def digital_count(self) -> int:
        """Distinct (exam, semester) pairs."""
        return sum(len(entry.semesters) for entry in self.tests)

    @property
    def key(self) -> str:
        return f"{self.code}-{self.number}"


@dataclass(frozen=True, slots=True)
class Rename:
    """A valid test file whose name differs from its canonical name."""

    id: str
    path: str
    old: str
    new: str


@dataclass(frozen=True)
class RenameResult:
    """Ids renamed, and a `rename_failed` problem for each rename that failed."""

    applied: frozenset[str] = frozenset()
    problems: tuple[Problem, ...] = ()
    pending: frozenset[str] = frozenset()  # not reached this run (time or quota): next run


@dataclass(frozen=True, slots=True)
class Ignored:
    """A node that is not examined (listed at DEBUG level only)."""

    id: str
    path: str
    reason: str
    is_folder: bool


@dataclass(frozen=True)
class Catalog:
    """Everything the drive says, sorted deterministically (contract §8 orders)."""

    courses: tuple[Course, ...] = ()
    problems: tuple[Problem, ...] = ()
    renames: tuple[Rename, ...] = ()
    crosslisted: tuple[tuple[str, ...], ...] = ()
    ignored: tuple[Ignored, ...] = ()
    valid_file_ids: frozenset[str] = field(default_factory=frozenset)
    # Set when the root holds no department but looks like one (FOLDER_ID too deep).
    root_hint: str | None = None

    @property
    def course_codes(self) -> tuple[str, ...]:
        """Departments with at least one published course, sorted."""
        return tuple(sorted({course.code for course in self.courses}))


def join_path(*names: str) -> str:
    """`CSCI / CSCI-1200 Data Structures / x.docx`."""
    return PATH_SEPARATOR.join(names)


def crosslisted_message(group: tuple[str, ...]) -> str:
    """`Data Structures: CSCI-1200 and ECSE-1200` (the sheet's Crosslisted Classes line)."""
    keys = [name.split(" ", 1)[0] for name in group]
    title = group[0].split(" ", 1)[1]
    listed = keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + " and " + keys[-1]
    return f"{title}: {listed}"


@dataclass(frozen=True, slots=True)
class _Found:
    """A course folder that passed the department checks."""

    node: Node
    path: str
    course: CourseName


class _Valid(NamedTuple):
    node: Node
    entry: _Found
    test: TestName
    canonical: str


def _path(entry: _Found, child: Node) -> str:
    return entry.path + PATH_SEPARATOR + child.name


def _by_name(nodes: Iterable[Node]) -> list[Node]:
    """Listing order must not matter: everything is examined sorted by (name, id)."""
    return sorted(nodes, key=lambda n: (n.name, n.id))


def _below(node: Node, path: str, reason: str) -> Iterator[Ignored]:
    """`node` and everything under it, as ignored."""
    stack = [(node, path)]
    while stack:
        current, current_path = stack.pop()
        yield Ignored(current.id, current_path, reason, current.is_folder)
        for child in current.children:
            stack.append((child, current_path + PATH_SEPARATOR + child.name))


def _children_ignored(node: Node, path: str, reason: str) -> Iterator[Ignored]:
    for child in node.children:
        yield from _below(child, path + PATH_SEPARATOR + child.name, reason)


def build(
    root: Node,
    *,
    today: date,
    future_year_exempt: frozenset[str] = frozenset({"BEAR"}),
) -> Catalog:
    """Interpret the drive tree under `root` by the rules of contract §2."""
    problems: list[Problem] = []
    ignored: list[Ignored] = []

    def problem(category: Category, label: str, path: str, node_id: str, why: str = "") -> None:
        message = f"{label}: {path}" + (f" ({why})" if why else "")
        problems.append(Problem(category, message, path, node_id))

    # contract §2.1: departments
    departments: dict[str, list[Node]] = defaultdict(list)
    for child in _by_name(root.children):
        if child.mime_type == SHORTCUT_MIME and naming.is_department_sized(child.name):
            problem(
                Category.INVALID_DEPARTMENT,
                "Shortcut, not a department folder",
                child.name,
                child.id,
                "a shortcut to a folder or file; the real department folder belongs here",
            )
            continue
        if not child.is_folder:
            ignored.append(Ignored(child.id, child.name, "file at the root", False))
            continue
        if not naming.is_department_sized(child.name):
            ignored.extend(_below(child, child.name, "root folder is not a department"))
            continue
        code = naming.department_code(child.name)
        if code is None:
            problem(
                Category.INVALID_DEPARTMENT,
                "Invalid department",
                child.name,
                child.id,
                "a department folder name ends in four capital letters, like CSCI",
            )
            ignored.extend(_children_ignored(child, child.name, "inside an invalid department"))
            continue
        departments[code].append(child)

    # contract §2.2: courses, collected per department code over all its folders
    found: dict[tuple[str, str], list[_Found]] = defaultdict(list)
    for code, folders in sorted(departments.items()):
        # The folder named exactly like the code is the original; others are extras.
        folders.sort(key=lambda n: (n.name != code, n.name, n.id))
        first = folders[0]
        for extra in folders[1:]:
            problem(
                Category.DUPLICATE_DEPARTMENT,
                "Duplicate department",
                extra.name,
                extra.id,
                f"'{extra.name}' and '{first.name}' are both {code}",
            )
        for dept in folders:
            for child in _by_name(dept.children):
                path = dept.name + PATH_SEPARATOR + child.name
                if child.mime_type == SHORTCUT_MIME:
                    problem(
                        Category.NOT_A_COURSE_FOLDER,
                        "Shortcut, not a course folder",
                        path,
                        child.id,
                        "a shortcut to a folder or file; the real course folder belongs here",
                    )
                    continue
                if not child.is_folder:
                    problem(
                        Category.NOT_A_COURSE_FOLDER,
                        "Not a course folder",
                        path,
                        child.id,
                        "files belong inside a course folder",
                    )
                    continue
                course = naming.parse_course(child.name)
                if course is None:
                    problem(
                        Category.INVALID_COURSE,
                        "Invalid course",
                        path,
                        child.id,
                        "a course folder is named like 'CSCI-1200 Data Structures'",
                    )
                    ignored.extend(_children_ignored(child, path, "inside an invalid course"))
                    continue
                if course.code != code:
                    problem(
                        Category.DEPARTMENT_MISMATCH,
                        "Department mismatch",
                        path,
                        child.id,
                        f"{course.code} course inside the {code} department; not published",
                    )
                    ignored.extend(_children_ignored(child, path, "inside a mismatched course"))
                    continue
                found[(course.code, course.number)].append(_Found(child, path, course))

    # Duplicate course numbers: reported; distinct full names published, equal ones merged.
    groups: dict[str, list[_Found]] = {}
    for (_code, _number), entries in sorted(found.items()):
        # An unstarred folder is the original; a `*` copy is the extra.
        entries.sort(key=lambda f: (f.node.name.startswith("*"), f.node.name, f.node.id))
        first = entries[0]
        for extra in entries[1:]:
            problem(
                Category.DUPLICATE_COURSE,
                "Duplicate course",
                extra.path,
                extra.node.id,
                f"same number as '{first.path}'",
            )
        for entry in entries:
            groups.setdefault(entry.course.full_name, []).append(entry)

    courses: list[Course] = []
    renames: list[Rename] = []
    valid_ids: set[str] = set()
    current_year = today.year % 100
    for full_name in sorted(groups):
        entries = groups[full_name]
        course = entries[0].course
        exempt = course.code in future_year_exempt
        valid: list[_Valid] = []
        for entry in entries:
            # Hot loop (100,000 files): paths are only built for problems and renames.
            for child in entry.node.children:
                mime = child.mime_type
                if mime == FOLDER_MIME:
                    path = entry.path + PATH_SEPARATOR + child.name
                    problem(
                        Category.FOLDER_INSIDE_COURSE,
                        "Folder inside course",
                        path,
                        child.id,
                        "a course folder holds only test PDFs",
                    )
                    ignored.extend(_children_ignored(child, path, "inside a folder in a course"))
                    continue
                if mime != PDF_MIME:
                    if mime == SHORTCUT_MIME:
                        problem(
                            Category.NOT_A_PDF,
                            "Shortcut, not a PDF",
                            _path(entry, child),
                            child.id,
                            "a shortcut to a file; the real PDF belongs here",
                        )
                    else:
                        problem(Category.NOT_A_PDF, "Not a PDF", _path(entry, child), child.id)
                    continue
                test = naming.parse_test(child.name)
                if test is None:
                    problem(
                        Category.INVALID_FILENAME,
                        "Invalid filename",
                        _path(entry, child),
                        child.id,
                        f"expected a name like '{course.key} E1F22.pdf'",
                    )
                elif not naming.prefix_matches(test, course):
                    problem(
                        Category.INVALID_FILENAME,
                        "Invalid filename",
                        _path(entry, child),
                        child.id,
                        f"the name says {test.prefix_code}-{test.prefix_number}, "
                        f"the folder is {course.key}",
                    )
                elif test.year > current_year and not exempt:
                    problem(
                        Category.INVALID_YEAR,
                        "Invalid year",
                        _path(entry, child),
                        child.id,
                        f"20{test.year:02d} is in the future",
                    )
                else:
                    valid.append(_Valid(child, entry, test, test.canonical(course)))

        by_canonical: dict[str, list[_Valid]] = defaultdict(list)
        for v in valid:
            by_canonical[v.canonical].append(v)
        for canonical, same in by_canonical.items():
            keeper = same[0]
            if len(same) > 1:
                # Keep a file that already has the name; else the first by (name, id).
                same.sort(key=lambda v: (v.node.name != canonical, v.node.name, v.node.id))
                keeper = same[0]
            valid_ids.add(keeper.node.id)
            if keeper.node.name != canonical:
                renames.append(
                    Rename(
                        keeper.node.id,
                        _path(keeper.entry, keeper.node),
                        keeper.node.name,
                        canonical,
                    )
                )
            for other in same[1:]:
                problem(
                    Category.DUPLICATE_TEST,
                    "Duplicate test",
                    _path(other.entry, other.node),
                    other.node.id,
                    f"same test as '{_path(keeper.entry, keeper.node)}'",
                )

        courses.append(
            Course(
                name=full_name,
                code=course.code,
                number=course.number,
                title=course.title,
                folder_id=min(entry.node.id for entry in entries),
                tests=_exam_entries(v.test for v in valid),
            )
        )

    problems.sort(key=lambda p: (p.path, p.category.value, p.id))
    renames.sort(key=lambda r: (r.path, r.id))
    ignored.sort(key=lambda i: (i.path, i.id))
    return Catalog(
        courses=tuple(courses),
        problems=tuple(problems),
        renames=tuple(renames),
        crosslisted=_crosslisted(courses),
        ignored=tuple(ignored),
        valid_file_ids=frozenset(valid_ids),
        root_hint=None if departments else too_deep_hint(root),
    )


def too_deep_hint(root: Node) -> str | None:
    """Why `root` (holding no department) looks like a level below the right one: its
    folders are named like courses, its files like tests, or its own name is a
    department's. None when it looks like nothing in particular."""
    courses = sorted(c.name for c in root.children if c.is_folder and naming.parse_course(c.name))
    tests = [c.name for c in root.children if c.is_pdf and naming.parse_test(c.name)]
    if courses or naming.department_code(root.name):
        seen = (
            f"it holds course folders like {courses[0]!r}"
            if courses
            else "it is named like a department"
        )
        return (
            f"FOLDER_ID seems to point one level too deep: {root.name!r} holds no department "
            f"folders, and {seen}. Set FOLDER_ID to the shared drive or folder that holds the "
            "department folders."
        )
    if tests:
        return (
            f"FOLDER_ID seems to point two levels too deep: {root.name!r} holds no department "
            f"folders but test files like {sorted(tests)[0]!r} (a course folder?). Set FOLDER_ID "
            "to the shared drive or folder that holds the department folders."
        )
    return None


def _exam_entries(tests: Iterable[TestName]) -> tuple[ExamEntry, ...]:
    """Website `tests` list: types in Quiz/Exam/Midterm order, semesters newest first.

    Two files for the same exam and semester count once."""
    by_type: dict[tuple[tuple[int, int], str], set[tuple[tuple[int, int], str]]] = {}
    for exam, semester, year in {(t.exam, t.semester, t.year) for t in tests}:
        label, exam_key = naming.exam_facts(exam)
        semester_label, semester_key = naming.semester_facts(semester, year)
        by_type.setdefault((exam_key, label), set()).add((semester_key, semester_label))
    return tuple(
        ExamEntry(label, tuple(semester for _, semester in sorted(semesters)))
        for (_, label), semesters in sorted(by_type.items())
    )


def normalise_title(title: str) -> str:
    """Titles compare case-insensitively with whitespace runs collapsed."""
    return " ".join(title.split()).casefold()


def _crosslisted(courses: list[Course]) -> tuple[tuple[str, ...], ...]:
    by_title: dict[str, list[Course]] = defaultdict(list)
    for course in courses:
        by_title[normalise_title(course.title)].append(course)
    groups = [
        tuple(sorted(c.name for c in same))
        for same in by_title.values()
        if len({c.code for c in same}) > 1
    ]
    return tuple(sorted(groups))
