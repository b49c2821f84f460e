"""Drive tree → catalog (contract §2): what the website shows, what to rename, what
humans must fix. `build` is pure (today is passed in): all it decides is in the `Catalog`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
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


# Listed under `Invalid Filenames` (the sheet, the page); the other problems are `Errors`.
ABOUT_FILES = ("not_a_pdf", "invalid_filename", "invalid_year", "duplicate_test", "rename_failed")


class Cited(NamedTuple):
    """The item a problem's explanation names: its id and full path."""

    id: str
    path: str


@dataclass(frozen=True, slots=True)
class Problem:
    """Something a human must fix in the drive: structured until printed, or its `text`."""

    category: Category
    label: str
    path: str
    id: str
    why: str = ""
    cited: Cited | None = None
    text: str = ""

    @property
    def message(self) -> str:
        """`{label}: {path} ({why})`; `({why} '{cited path}')` when it names another item."""
        if self.text:
            return self.text
        cited = f" '{self.cited.path}'" if self.cited else ""
        return f"{self.label}: {self.path}" + (f" ({self.why}{cited})" if self.why else "")

    @classmethod
    def from_text(cls, category: Category, message: str, path: str, id: str) -> Problem:
        """A problem known only by its printed message (a remembered catalog)."""
        return cls(category, "", path, id, text=message)


class ExamEntry(NamedTuple):
    """One element of a backtest document's `tests`: `Exam 1` → `Fall 2022`, `Spring 2021`."""

    type: str
    semesters: tuple[str, ...]


def exam_documents(tests: Iterable[ExamEntry]) -> list[dict[str, object]]:
    """The website's `tests` list (field order `type`, `tests`), as MongoDB and §8 show it."""
    return [{"type": entry.type, "tests": list(entry.semesters)} for entry in tests]


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


class Rename(NamedTuple):
    """A valid test file whose name differs from its canonical name."""

    id: str
    path: str
    old: str
    new: str


class RenameResult(NamedTuple):
    """Ids renamed, and a `rename_failed` problem for each rename that failed."""

    applied: frozenset[str] = frozenset()
    problems: tuple[Problem, ...] = ()
    pending: frozenset[str] = frozenset()  # not reached this run (time or quota): next run
    refused: str = ""  # why Drive refuses every rename (read-only access): the fix, one line


class Ignored(NamedTuple):
    """A node that is not examined (listed at DEBUG level only), in (path, id) order."""

    path: str
    id: str
    reason: str


@dataclass(frozen=True)
class Catalog:
    """Everything the drive says, sorted deterministically (contract §8 orders)."""

    courses: tuple[Course, ...] = ()
    problems: tuple[Problem, ...] = ()
    renames: tuple[Rename, ...] = ()
    crosslisted: tuple[tuple[str, ...], ...] = ()
    ignored: tuple[Ignored, ...] = ()
    departments: tuple[str, ...] = ()  # codes of the department folders, published or not
    root_too_deep: str | None = None  # why the root is a department folder (`too_deep_error`)
    root_hint: str | None = None  # why the root may be a level below the right one

    @property
    def course_codes(self) -> tuple[str, ...]:
        """Departments with at least one published course, sorted."""
        return tuple(sorted({course.code for course in self.courses}))


def _and(items: list[str]) -> str:
    """`A`, `A and B`, `A, B and C`."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def crosslisted_message(group: tuple[str, ...]) -> str:
    """`Data Structures: CSCI-1200 and ECSE-1200` (the sheet's Crosslisted Classes line)."""
    return f"{group[0].split(' ', 1)[1]}: {_and([name.split(' ', 1)[0] for name in group])}"


Finding = Problem | Ignored | Rename | Course


class _Found(NamedTuple):
    """A course folder that passed the department checks."""

    node: Node
    path: str
    course: CourseName
    department: str  # the name of the department folder it is in


def _by_name(nodes: Iterable[Node]) -> list[Node]:
    """Listing order must not matter: everything is examined sorted by (name, id)."""
    return sorted(nodes, key=lambda n: (n.name, n.id))


def _ignored(node: Node, path: str, reason: str) -> Iterator[Ignored]:
    """Everything below `node`, as ignored (Drive nests at most 100 deep)."""
    for child in node.children:
        child_path = path + PATH_SEPARATOR + child.name
        yield Ignored(child_path, child.id, reason)
        yield from _ignored(child, child_path, reason)


def build(
    root: Node, *, today: date, future_year_exempt: frozenset[str] = frozenset({"BEAR"})
) -> Catalog:
    """Interpret the drive tree under `root` by the rules of contract §2."""
    departments: dict[str, list[Node]] = defaultdict(list)
    found: list[Finding] = []
    for child in _by_name(root.children):  # contract §2.1
        name, sized = child.name, len(child.name) <= 6  # longer: not meant as a department
        code = naming.department_code(name) if child.is_folder else None
        if code is not None:  # a code is at most 6 characters: department-sized
            departments[code].append(child)
        elif child.mime_type == SHORTCUT_MIME and sized:
            why = "a shortcut to a folder or file; the real department folder belongs here"
            label = "Shortcut, not a department folder"
            found.append(Problem(Category.INVALID_DEPARTMENT, label, name, child.id, why))
        elif not child.is_folder or not sized:
            reason = "root folder is not a department" if child.is_folder else "file at the root"
            found.append(Ignored(name, child.id, reason))
            found += _ignored(child, name, reason)
        else:
            why = "a department folder name ends in four capital letters, like CSCI"
            label = "Invalid department"
            found.append(Problem(Category.INVALID_DEPARTMENT, label, name, child.id, why))
            found += _ignored(child, name, "inside an invalid department")
    found += _courses(departments, today.year % 100, future_year_exempt)
    too_deep, hint = (None, None) if departments else _root_faults(root)
    courses = [f for f in found if isinstance(f, Course)]
    renames = [f for f in found if isinstance(f, Rename)]
    return Catalog(
        courses=tuple(courses),
        problems=tuple(sorted((f for f in found if isinstance(f, Problem)), key=problem_order)),
        renames=tuple(sorted(renames, key=lambda r: r.path)),  # one file per path renamed
        crosslisted=_crosslisted(courses),
        ignored=tuple(sorted(f for f in found if isinstance(f, Ignored))),
        departments=tuple(sorted(departments)),
        root_too_deep=too_deep,
        root_hint=hint,
    )


def problem_order(p: Problem) -> tuple[str, str, str]:
    """Problems are listed by path (contract §8), then category and id."""
    return (p.path, p.category.value, p.id)


def _courses(
    departments: dict[str, list[Node]], current_year: int, exempt: frozenset[str]
) -> Iterator[Finding]:
    """Contract §2.2: duplicate departments, each course folder, numbers used twice, courses."""
    by_key: dict[str, list[_Found]] = defaultdict(list)
    for code, unordered in sorted(departments.items()):
        folders = sorted(unordered, key=lambda n: (n.name != code, n.name, n.id))
        for extra in folders[1:]:
            why = f"'{extra.name}' and '{folders[0].name}' are both {code}"
            label = "Duplicate department"
            yield Problem(Category.DUPLICATE_DEPARTMENT, label, extra.name, extra.id, why)
        for dept in folders:
            for child in _by_name(dept.children):
                path = dept.name + PATH_SEPARATOR + child.name
                course = naming.parse_course(child.name) if child.is_folder else None
                if course is not None and course.code == code:
                    by_key[course.key].append(_Found(child, path, course, dept.name))
                else:
                    yield from _not_a_course(code, path, child)
    by_name: dict[str, list[_Found]] = defaultdict(list)
    for key, copies in sorted(by_key.items()):
        # The extra copies: those in a department folder not named as its code, the later.
        entries = sorted(copies, key=lambda f: (f.department != key[:4], f.node.name, f.node.id))
        first = Cited(entries[0].node.id, entries[0].path)
        for extra in entries[1:]:
            label, why = "Duplicate course", "same number as"
            yield Problem(Category.DUPLICATE_COURSE, label, extra.path, extra.node.id, why, first)
        for entry in entries:
            by_name[entry.course.full_name].append(entry)
    for _name, same in sorted(by_name.items()):
        yield from _course(same, current_year, same[0].course.code in exempt)


def _not_a_course(code: str, path: str, child: Node) -> Iterator[Finding]:
    """Contract §2.2: why a child of a department folder of `code` is not a course folder."""
    course = naming.parse_course(child.name)
    if child.mime_type == SHORTCUT_MIME:
        why = "a shortcut to a folder or file; the real course folder belongs here"
        category, label = Category.NOT_A_COURSE_FOLDER, "Shortcut, not a course folder"
    elif not child.is_folder:
        why = "files belong inside a course folder"
        category, label = Category.NOT_A_COURSE_FOLDER, "Not a course folder"
    elif course is None:
        why = "a course folder is named like 'CSCI-1200 Data Structures'"
        category, label = Category.INVALID_COURSE, "Invalid course"
    else:
        why = f"{course.code} course inside the {code} department; not published"
        category, label = Category.DEPARTMENT_MISMATCH, "Department mismatch"
    yield Problem(category, label, path, child.id, why)
    below = "inside an invalid course" if course is None else "inside a mismatched course"
    yield from _ignored(child, path, below)  # a file or shortcut has nothing below


def _course(entries: list[_Found], year: int, exempt: bool) -> Iterator[Finding]:
    """Contract §2.3: a course's test files, duplicates, renames; the course (smallest id)."""
    course = entries[0].course
    by_canonical: dict[str, list[tuple[Node, str, TestName]]] = defaultdict(list)
    for entry in entries:
        # Hot loop (100,000 files): paths are only built for problems and renames.
        for child in entry.node.children:
            test = naming.parse_test(child.name) if child.mime_type == PDF_MIME else None
            if test and naming.prefix_matches(test, course) and (exempt or test.year <= year):
                by_canonical[test.canonical(course)].append((child, entry.path, test))
            else:
                yield from _not_a_test(entry.path + PATH_SEPARATOR + child.name, child, course)
    for canonical, group in by_canonical.items():
        group.sort(key=lambda g: (g[0].name != canonical, g[0].name, g[0].id))
        keeper, folder, _ = group[0]
        cited = Cited(keeper.id, folder + PATH_SEPARATOR + keeper.name)
        if keeper.name != canonical:
            yield Rename(keeper.id, cited.path, keeper.name, canonical)
        for node, folder, _ in group[1:]:
            path, label = folder + PATH_SEPARATOR + node.name, "Duplicate test"
            yield Problem(Category.DUPLICATE_TEST, label, path, node.id, "same test as", cited)
    tests = _exam_entries(group[0][2] for group in by_canonical.values())
    yield Course(course.full_name, *course, min(entry.node.id for entry in entries), tests)


def _not_a_test(path: str, child: Node, course: CourseName) -> Iterator[Finding]:
    """Contract §2.3: why a child of a course folder is no valid test of `course`."""
    if child.mime_type == FOLDER_MIME:
        why = "a course folder holds only test PDFs"
        yield Problem(Category.FOLDER_INSIDE_COURSE, "Folder inside course", path, child.id, why)
        yield from _ignored(child, path, "inside a folder in a course")
    elif child.mime_type == SHORTCUT_MIME:
        why = "a shortcut to a file; the real PDF belongs here"
        yield Problem(Category.NOT_A_PDF, "Shortcut, not a PDF", path, child.id, why)
    elif child.mime_type != PDF_MIME:
        yield Problem(Category.NOT_A_PDF, "Not a PDF", path, child.id)
    elif (test := naming.parse_test(child.name)) is None:
        why = f"expected a name like '{course.key} E1F22.pdf'"
        yield Problem(Category.INVALID_FILENAME, "Invalid filename", path, child.id, why)
    elif not naming.prefix_matches(test, course):
        why = f"the name says {test.prefix}, the folder is {course.key}"
        yield Problem(Category.INVALID_FILENAME, "Invalid filename", path, child.id, why)
    else:
        why = f"20{test.year:02d} is in the future"
        yield Problem(Category.INVALID_YEAR, "Invalid year", path, child.id, why)


def problems_after_renames(
    problems: Iterable[Problem], applied: Iterable[Rename]
) -> tuple[Problem, ...]:
    """`problems` as a build of the renamed drive would state them, without a rebuild."""
    new = {r.id: r.path.removesuffix(r.old) + r.new for r in applied}
    out = []
    for p in problems:
        if p.id in new and not p.text:
            p = replace(p, path=new[p.id])
        if p.cited is not None and p.cited.id in new:
            p = replace(p, cited=Cited(p.cited.id, new[p.cited.id]))
        out.append(p)
    return tuple(sorted(out, key=problem_order))


_HOLDS_DEPARTMENTS = "the shared drive or folder that holds the department folders"


def _root_faults(root: Node) -> tuple[str | None, str | None]:
    """For a root without departments: why it is a department folder (§7), else a hint."""
    courses = sorted(c.name for c in root.children if c.is_folder and naming.parse_course(c.name))
    tests = sorted(c.name for c in root.children if c.is_pdf and naming.parse_test(c.name))
    none = f"{root.name!r} holds no department folders"
    if courses:
        deep = f"{root.name!r} holds course folders like {courses[0]!r} and no department folders"
        return deep, None
    if naming.department_code(root.name):
        seen = f"one level too deep: {none}, and it is named like a department"
    elif tests:
        seen = f"two levels too deep: {none} but test files like {tests[0]!r} (a course folder?)"
    else:
        return None, None
    return None, f"FOLDER_ID seems to point {seen}. Set FOLDER_ID to {_HOLDS_DEPARTMENTS}."


def too_deep_error(catalog: Catalog, setting: str, parent: tuple[str, str] | None) -> str:
    """The configuration error of a root that is a department folder. `setting` names the
    root (`FOLDER_ID`, `--source`); `parent`: (id, name) of its parent, if visible."""
    fix = f"Set {setting} to {_HOLDS_DEPARTMENTS}"
    if parent is not None:
        where = repr(parent[1]) if parent[0] == parent[1] else f"{parent[0]} ({parent[1]!r})"
        fix = f"Set {setting} to the folder that holds it: {where}"
    why = catalog.root_too_deep
    return f"{setting} points one level too deep: {why}. {fix}. Nothing was written."


def guard_hint(catalog: Catalog, had: Iterable[str]) -> str | None:
    """What the mass-delete guard (or a fresh database's warning) says may be wrong with
    the root; `had`: its departments at the last run (if it holds none now, they are gone)."""
    gone = sorted(had)
    if catalog.departments or catalog.courses or not gone:
        return catalog.root_hint
    return (
        f"The root held the departments {_and(gone)} at the last run and holds none now: they "
        "were trashed, deleted, moved, or are no longer shared with the account."
    )


def _exam_entries(tests: Iterable[TestName]) -> tuple[ExamEntry, ...]:
    """Website `tests`: by exam type, newest semester first; `Q1` and `Q01` count once."""
    by_type: dict[naming.Ordered, set[naming.Ordered]] = defaultdict(set)
    for t in tests:
        by_type[t.exam_entry].add(t.semester_entry)
    return tuple(
        ExamEntry(label, tuple(semester for _, semester in sorted(semesters)))
        for (_, label), semesters in sorted(by_type.items())
    )


def normalise_title(title: str) -> str:
    """Titles compare case-insensitively with whitespace runs collapsed."""
    return " ".join(title.split()).casefold()


def _crosslisted(courses: list[Course]) -> tuple[tuple[str, ...], ...]:
    """The names of each title's courses, for titles published by several departments."""
    by_title: dict[str, list[Course]] = defaultdict(list)
    for course in courses:
        by_title[normalise_title(course.title)].append(course)
    groups = [g for g in by_title.values() if len({c.code for c in g}) > 1]
    return tuple(sorted(tuple(sorted(c.name for c in g)) for g in groups))
