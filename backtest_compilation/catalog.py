"""Drive tree → catalog: what the website should show, what to rename, what humans must fix.

`build` is pure: no I/O, no clock (today is passed in), no logging. Everything it
decides is in the returned `Catalog` (contract §2).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
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
    """Something a human must fix in the drive, kept structured until it is printed.

    `message` renders it: `{label}: {path}`, then `({why})`, or `({why} '{cited path}')`
    when it names another item (a duplicate names its original). Renames re-render it
    through `problems_after_renames`, without rebuilding the catalog. `text` is set only
    for a problem known by its printed message alone (`from_text`)."""

    category: Category
    label: str
    path: str
    id: str
    why: str = ""
    cited: Cited | None = None
    text: str = ""

    @property
    def message(self) -> str:
        """The problem as one line of text (log, sheet, JSON `message`, HTML)."""
        if self.text:
            return self.text
        if self.cited is not None:
            return f"{self.label}: {self.path} ({self.why} '{self.cited.path}')"
        return f"{self.label}: {self.path}" + (f" ({self.why})" if self.why else "")

    @classmethod
    def from_text(cls, category: Category, message: str, path: str, id: str) -> Problem:
        """A problem known only by its printed message (a remembered catalog)."""
        return cls(category, "", path, id, text=message)


@dataclass(frozen=True, slots=True)
class Cited:
    """The item a problem's explanation names: its id and full path."""

    id: str
    path: str


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
    refused: str = ""  # why Drive refuses every rename (read-only access): the fix, one line


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
    # The codes of the department folders at the root, published or not.
    departments: tuple[str, ...] = ()
    # Set when the root holds course folders and no department: it is a department
    # folder, a configuration error (contract §7; `too_deep_error` says it).
    root_too_deep: str | None = None
    # Set when the root holds no department but looks like a level below the right one.
    root_hint: str | None = None

    @property
    def course_codes(self) -> tuple[str, ...]:
        """Departments with at least one published course, sorted."""
        return tuple(sorted({course.code for course in self.courses}))


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
    department: str  # the name of the department folder it is in


class _Valid(NamedTuple):
    node: Node
    entry: _Found
    test: TestName
    canonical: str


@dataclass(frozen=True)
class Findings:
    """What one phase of `build` found besides its result: problems and ignored nodes."""

    problems: tuple[Problem, ...] = ()
    ignored: tuple[Ignored, ...] = ()


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
    """Interpret the drive tree under `root` by the rules of contract §2, phase by phase:
    departments, course folders, duplicate courses, then per course its test files,
    duplicate tests and renames; crosslisting falls out of the courses."""
    departments, found = find_departments(root)
    folders, in_departments = find_course_folders(departments)
    groups, duplicates = group_courses(folders)
    problems = [*found.problems, *in_departments.problems, *duplicates.problems]
    ignored = [*found.ignored, *in_departments.ignored]
    current_year = today.year % 100
    courses: list[Course] = []
    renames: list[Rename] = []
    valid_ids: set[str] = set()
    for full_name in sorted(groups):
        entries = groups[full_name]
        exempt = entries[0].course.code in future_year_exempt
        valid, in_course = examine_tests(entries, current_year, exempt)
        kept, course_renames, duplicate_tests = deduplicate_tests(valid)
        problems += (*in_course.problems, *duplicate_tests.problems)
        ignored += in_course.ignored
        renames += course_renames
        valid_ids.update(v.node.id for v in kept)
        courses.append(_course(full_name, entries, valid))
    too_deep = None if departments else _courses_at(root)
    return Catalog(
        courses=tuple(courses),
        problems=tuple(sorted(problems, key=problem_order)),
        renames=tuple(sorted(renames, key=lambda r: (r.path, r.id))),
        crosslisted=_crosslisted(courses),
        ignored=tuple(sorted(ignored, key=lambda i: (i.path, i.id))),
        valid_file_ids=frozenset(valid_ids),
        departments=tuple(sorted(departments)),
        root_too_deep=too_deep,
        root_hint=None if departments or too_deep else too_deep_hint(root),
    )


def problem_order(p: Problem) -> tuple[str, str, str]:
    """Problems are listed by path (contract §8), then category and id."""
    return (p.path, p.category.value, p.id)


def find_departments(root: Node) -> tuple[dict[str, list[Node]], Findings]:
    """Contract §2.1: department folders of the root by code, and what is wrong or ignored."""
    departments: dict[str, list[Node]] = defaultdict(list)
    problems: list[Problem] = []
    ignored: list[Ignored] = []
    for child in _by_name(root.children):
        if child.mime_type == SHORTCUT_MIME and naming.is_department_sized(child.name):
            problems.append(
                Problem(
                    Category.INVALID_DEPARTMENT,
                    "Shortcut, not a department folder",
                    child.name,
                    child.id,
                    "a shortcut to a folder or file; the real department folder belongs here",
                )
            )
        elif not child.is_folder:
            ignored.append(Ignored(child.id, child.name, "file at the root", False))
        elif not naming.is_department_sized(child.name):
            ignored.extend(_below(child, child.name, "root folder is not a department"))
        elif (code := naming.department_code(child.name)) is None:
            problems.append(
                Problem(
                    Category.INVALID_DEPARTMENT,
                    "Invalid department",
                    child.name,
                    child.id,
                    "a department folder name ends in four capital letters, like CSCI",
                )
            )
            ignored.extend(_children_ignored(child, child.name, "inside an invalid department"))
        else:
            departments[code].append(child)
    return departments, Findings(tuple(problems), tuple(ignored))


def duplicate_departments(code: str, folders: list[Node]) -> tuple[list[Node], list[Problem]]:
    """Contract §2.1: the folders of one code, the original (named exactly like the code)
    first, and a duplicate-department problem for each other one."""
    folders = sorted(folders, key=lambda n: (n.name != code, n.name, n.id))
    first = folders[0]
    problems = [
        Problem(
            Category.DUPLICATE_DEPARTMENT,
            "Duplicate department",
            extra.name,
            extra.id,
            f"'{extra.name}' and '{first.name}' are both {code}",
        )
        for extra in folders[1:]
    ]
    return folders, problems


def find_course_folders(
    departments: dict[str, list[Node]],
) -> tuple[dict[tuple[str, str], list[_Found]], Findings]:
    """Contract §2.1–2.2: course folders per (code, number), over all folders of a code."""
    found: dict[tuple[str, str], list[_Found]] = defaultdict(list)
    problems: list[Problem] = []
    ignored: list[Ignored] = []
    for code, unordered in sorted(departments.items()):
        folders, duplicates = duplicate_departments(code, unordered)
        problems += duplicates
        for dept in folders:
            for child in _by_name(dept.children):
                course, more = course_folder(code, dept.name, child)
                problems += more.problems
                ignored += more.ignored
                if course is not None:
                    found[(course.course.code, course.course.number)].append(course)
    return found, Findings(tuple(problems), tuple(ignored))


def course_folder(code: str, department: str, child: Node) -> tuple[_Found | None, Findings]:
    """Contract §2.2: one child of the department folder named `department` (of `code`)
    as a course folder, or why it is not."""
    path = department + PATH_SEPARATOR + child.name

    def bad(category: Category, label: str, why: str, ignored: str = "") -> Findings:
        below = tuple(_children_ignored(child, path, ignored)) if ignored else ()
        return Findings((Problem(category, label, path, child.id, why),), below)

    if child.mime_type == SHORTCUT_MIME:
        why = "a shortcut to a folder or file; the real course folder belongs here"
        return None, bad(Category.NOT_A_COURSE_FOLDER, "Shortcut, not a course folder", why)
    if not child.is_folder:
        why = "files belong inside a course folder"
        return None, bad(Category.NOT_A_COURSE_FOLDER, "Not a course folder", why)
    course = naming.parse_course(child.name)
    if course is None:
        why = "a course folder is named like 'CSCI-1200 Data Structures'"
        return None, bad(Category.INVALID_COURSE, "Invalid course", why, "inside an invalid course")
    if course.code != code:
        why = f"{course.code} course inside the {code} department; not published"
        ignored = "inside a mismatched course"
        return None, bad(Category.DEPARTMENT_MISMATCH, "Department mismatch", why, ignored)
    return _Found(child, path, course, department), Findings()


def group_courses(
    found: dict[tuple[str, str], list[_Found]],
) -> tuple[dict[str, list[_Found]], Findings]:
    """Contract §2.2 duplicates: one problem per extra folder with a number already used;
    folders are grouped by full name (distinct names published, equal ones merged)."""
    groups: dict[str, list[_Found]] = {}
    problems: list[Problem] = []
    for (code, _number), unordered in sorted(found.items()):
        # The problem is about the copy a person should look at: one in a department
        # folder not named exactly as its code (`*CSCI`, `1 CSCI`), else the later one.
        entries = sorted(unordered, key=lambda f: (f.department != code, f.node.name, f.node.id))
        first = entries[0]
        problems.extend(
            Problem(
                Category.DUPLICATE_COURSE,
                "Duplicate course",
                extra.path,
                extra.node.id,
                "same number as",
                Cited(first.node.id, first.path),
            )
            for extra in entries[1:]
        )
        for entry in entries:
            groups.setdefault(entry.course.full_name, []).append(entry)
    return groups, Findings(tuple(problems))


def examine_tests(
    entries: list[_Found], current_year: int, exempt: bool
) -> tuple[list[_Valid], Findings]:
    """Contract §2.3: the valid test PDFs of one course's folders, and what is wrong."""
    course = entries[0].course
    valid: list[_Valid] = []
    problems: list[Problem] = []
    ignored: list[Ignored] = []
    for entry in entries:
        # Hot loop (100,000 files): paths are only built for problems and renames.
        for child in entry.node.children:
            if child.mime_type != PDF_MIME:
                more = _not_a_test(entry, child)
                problems += more.problems
                ignored += more.ignored
                continue
            test = naming.parse_test(child.name)
            why = _test_problem(test, course, current_year, exempt)
            if why is None and test is not None:
                valid.append(_Valid(child, entry, test, test.canonical(course)))
            elif why is not None:
                category, label, text = why
                problems.append(Problem(category, label, _path(entry, child), child.id, text))
    return valid, Findings(tuple(problems), tuple(ignored))


def _test_problem(
    test: TestName | None, course: CourseName, current_year: int, exempt: bool
) -> tuple[Category, str, str] | None:
    """Why a PDF's name is not a valid test name of `course` (category, label, why)."""
    if test is None:
        return (
            Category.INVALID_FILENAME,
            "Invalid filename",
            f"expected a name like '{course.key} E1F22.pdf'",
        )
    if not naming.prefix_matches(test, course):
        why = f"the name says {test.prefix_code}-{test.prefix_number}, the folder is {course.key}"
        return Category.INVALID_FILENAME, "Invalid filename", why
    if test.year > current_year and not exempt:
        return Category.INVALID_YEAR, "Invalid year", f"20{test.year:02d} is in the future"
    return None


def _not_a_test(entry: _Found, child: Node) -> Findings:
    """Contract §2.3: a folder or a non-PDF inside a course."""
    path = _path(entry, child)
    if child.mime_type == FOLDER_MIME:
        why = "a course folder holds only test PDFs"
        problem = Problem(
            Category.FOLDER_INSIDE_COURSE, "Folder inside course", path, child.id, why
        )
        return Findings(
            (problem,), tuple(_children_ignored(child, path, "inside a folder in a course"))
        )
    if child.mime_type == SHORTCUT_MIME:
        why = "a shortcut to a file; the real PDF belongs here"
        return Findings((Problem(Category.NOT_A_PDF, "Shortcut, not a PDF", path, child.id, why),))
    return Findings((Problem(Category.NOT_A_PDF, "Not a PDF", path, child.id),))


def deduplicate_tests(valid: list[_Valid]) -> tuple[list[_Valid], list[Rename], Findings]:
    """Contract §2.3 duplicates and renames: per canonical name one file is kept (one that
    already has the name, else the first by (name, id)) and renamed if needed; every other
    file of the group is a duplicate-test problem."""
    by_canonical: dict[str, list[_Valid]] = defaultdict(list)
    for v in valid:
        by_canonical[v.canonical].append(v)
    kept: list[_Valid] = []
    renames: list[Rename] = []
    problems: list[Problem] = []
    for canonical, group in by_canonical.items():
        same = group
        if len(group) > 1:
            same = sorted(group, key=lambda v: (v.node.name != canonical, v.node.name, v.node.id))
        keeper = same[0]
        kept.append(keeper)
        keeper_path = _path(keeper.entry, keeper.node)
        if keeper.node.name != canonical:
            renames.append(Rename(keeper.node.id, keeper_path, keeper.node.name, canonical))
        problems.extend(
            Problem(
                Category.DUPLICATE_TEST,
                "Duplicate test",
                _path(other.entry, other.node),
                other.node.id,
                "same test as",
                Cited(keeper.node.id, keeper_path),
            )
            for other in same[1:]
        )
    return kept, renames, Findings(tuple(problems))


def _course(full_name: str, entries: list[_Found], valid: list[_Valid]) -> Course:
    """The published course: merged folders take the smallest folder id (contract §8)."""
    course = entries[0].course
    return Course(
        name=full_name,
        code=course.code,
        number=course.number,
        title=course.title,
        folder_id=min(entry.node.id for entry in entries),
        tests=_exam_entries(v.test for v in valid),
    )


def problems_after_renames(
    problems: Iterable[Problem], applied: Iterable[Rename]
) -> tuple[Problem, ...]:
    """`problems` as a build of the renamed drive would state them: every path of a
    renamed file, its own or cited, says its new name. Pure; no rebuild needed."""
    new_path = {
        r.id: r.path[: len(r.path) - len(r.old)] + r.new for r in applied if r.path.endswith(r.old)
    }
    if not new_path:
        return tuple(problems)
    out = []
    for p in problems:
        if p.id in new_path and not p.text:
            p = replace(p, path=new_path[p.id])
        if p.cited is not None and p.cited.id in new_path:
            p = replace(p, cited=Cited(p.cited.id, new_path[p.cited.id]))
        out.append(p)
    return tuple(sorted(out, key=problem_order))


_HOLDS_DEPARTMENTS = "the shared drive or folder that holds the department folders"


def _courses_at(root: Node) -> str | None:
    """Why `root`, holding no department, is itself a department folder (contract §7):
    it holds folders named like courses. None when it holds none."""
    courses = sorted(c.name for c in root.children if c.is_folder and naming.parse_course(c.name))
    if not courses:
        return None
    return f"{root.name!r} holds course folders like {courses[0]!r} and no department folders"


def too_deep_error(catalog: Catalog, setting: str, parent: tuple[str, str] | None) -> str:
    """The configuration error of a root that is a department folder: `setting` names the
    root (`FOLDER_ID`, `--source`); `parent` is the (id, name) of the folder that holds
    it, when the account can see it."""
    fix = f"Set {setting} to {_HOLDS_DEPARTMENTS}"
    if parent is not None:
        where = repr(parent[1]) if parent[0] == parent[1] else f"{parent[0]} ({parent[1]!r})"
        fix = f"Set {setting} to the folder that holds it: {where}"
    return (
        f"{setting} points one level too deep: {catalog.root_too_deep}. {fix}. Nothing was written."
    )


def too_deep_hint(root: Node) -> str | None:
    """Why `root` (holding no department and no course folder) may be the wrong folder:
    its own name is a department's, or it holds files named like tests."""
    tests = sorted(c.name for c in root.children if c.is_pdf and naming.parse_test(c.name))
    none = f"{root.name!r} holds no department folders"
    if naming.department_code(root.name):
        seen = f"one level too deep: {none}, and it is named like a department"
    elif tests:
        seen = f"two levels too deep: {none} but test files like {tests[0]!r} (a course folder?)"
    else:
        return None
    return f"FOLDER_ID seems to point {seen}. Set FOLDER_ID to {_HOLDS_DEPARTMENTS}."


def guard_hint(catalog: Catalog, had: Iterable[str]) -> str | None:
    """What the mass-delete guard (or a fresh database's warning) says may be wrong with
    the root. `had`: the departments it held at the last run; when it holds none now,
    they are gone (FOLDER_ID is right: no guess about it)."""
    gone = sorted(had)
    if catalog.departments or catalog.courses or not gone:
        return catalog.root_hint
    listed = gone[0] if len(gone) == 1 else ", ".join(gone[:-1]) + " and " + gone[-1]
    return (
        f"The root held the departments {listed} at the last run and holds none now: they "
        "were trashed, deleted, moved, or are no longer shared with the account."
    )


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
