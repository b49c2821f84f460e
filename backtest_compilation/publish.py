"""Catalog → MongoDB plan: what the website's three collections must gain, change and lose.

Pure code over frozen dataclasses (contract §3): `read_state` turns the documents the store
read into a typed `Current`; `plan` diffs a `Catalog` against it; `guard_refusal` and
`check_guard` implement the mass-delete guard; `plan_lines` and `mongo_block` say what a
plan does, for people (`--dry-run`) and machines (contract §8 `mongo`). No I/O here: `store.py`
reads and applies.

Identity rules. The website links to a course by its `_id`, so a course document is
matched to a catalog course by Drive folder id first, then by full name (oldest `_id`
first), and keeps its `_id` when its title changes. Each kept course owns exactly one
backtest document, `{course_ids: [its _id], tests: [...]}`. Everything else the tool
owns and the drive does not explain (orphans, duplicates, stale codes) is removed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bson import ObjectId

from .catalog import Catalog, Course, ExamEntry
from .errors import GuardRefused

CODES = "backtest_course_code_collection"
COURSES = "backtest_courses_collection"
BACKTESTS = "backtest_collection"

# Only these fields are read: the plan needs nothing else.
CODE_FIELDS = {"course_code": 1}
COURSE_FIELDS = {"name": 1, "course_code": 1, "folder_id": 1}
BACKTEST_FIELDS = {"course_ids": 1, "tests": 1}

# The guard never fires for a handful of deletions, whatever the fraction (contract §3).
GUARD_MIN_DELETIONS = 10

Document = Mapping[str, Any]


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class CodeDoc:
    """A document of the course-code collection; `code` is None when malformed."""

    id: Any
    code: str | None


@dataclass(frozen=True, slots=True)
class CourseDoc:
    """A document of the courses collection, as read (fields may be missing or odd)."""

    id: Any
    name: str | None
    code: str | None
    folder_id: str | None


@dataclass(frozen=True, slots=True)
class BacktestDoc:
    """A backtest document. `tests` is None when it is not the website's shape;
    `exact` tells whether `course_ids` is exactly a one-element list."""

    id: Any
    course_ids: tuple[Any, ...]
    tests: tuple[ExamEntry, ...] | None
    exact: bool


@dataclass(frozen=True)
class Current:
    """What MongoDB holds now, oldest `_id` first in each collection."""

    codes: tuple[CodeDoc, ...] = ()
    courses: tuple[CourseDoc, ...] = ()
    backtests: tuple[BacktestDoc, ...] = ()


def id_order(value: Any) -> tuple[int, bytes | str]:
    """Sort key for `_id`s: ObjectIds by creation (oldest first), then anything else.

    Hand-made documents may carry string or integer ids; they must sort, not crash."""
    if isinstance(value, ObjectId):
        return (0, value.binary)
    return (1, f"{type(value).__name__}:{value!r}")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_tests(raw: Any) -> tuple[ExamEntry, ...] | None:
    """The stored `tests` list as exam entries, or None if it is not exactly the
    website's shape (`[{type: str, tests: [str, …]}, …]`) and must be rewritten."""
    if not isinstance(raw, list):
        return None
    entries: list[ExamEntry] = []
    for item in raw:
        if not isinstance(item, Mapping) or set(item) != {"type", "tests"}:
            return None
        kind, semesters = item["type"], item["tests"]
        if not isinstance(kind, str) or not isinstance(semesters, list):
            return None
        if not all(isinstance(s, str) for s in semesters):
            return None
        entries.append(ExamEntry(kind, tuple(semesters)))
    return tuple(entries)


def read_state(
    codes: Iterable[Document], courses: Iterable[Document], backtests: Iterable[Document]
) -> Current:
    """Typed view of the three collections' documents (any shape is accepted)."""
    code_docs = [CodeDoc(d.get("_id"), _str(d.get("course_code"))) for d in codes]
    course_docs = [
        CourseDoc(
            d.get("_id"),
            _str(d.get("name")),
            _str(d.get("course_code")),
            _str(d.get("folder_id")),
        )
        for d in courses
    ]
    backtest_docs = []
    for d in backtests:
        raw_ids = d.get("course_ids")
        if isinstance(raw_ids, list):
            ids = tuple(raw_ids)
        elif raw_ids is None:
            ids = ()
        else:
            # A scalar still matches the website's `$in` query: it points at that course.
            ids = (raw_ids,)
        exact = isinstance(raw_ids, list) and len(raw_ids) == 1
        backtest_docs.append(BacktestDoc(d.get("_id"), ids, parse_tests(d.get("tests")), exact))
    return Current(
        codes=tuple(sorted(code_docs, key=lambda c: id_order(c.id))),
        courses=tuple(sorted(course_docs, key=lambda c: id_order(c.id))),
        backtests=tuple(sorted(backtest_docs, key=lambda b: id_order(b.id))),
    )


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class CourseInsert:
    """A new course document; `id` is chosen in advance so its backtest can point at it."""

    id: ObjectId
    name: str
    code: str
    folder_id: str


@dataclass(frozen=True, slots=True)
class CourseUpdate:
    """An existing course document rewritten in place (same `_id`)."""

    id: Any
    old_name: str | None
    old_code: str | None
    old_folder_id: str | None
    name: str
    code: str
    folder_id: str


@dataclass(frozen=True, slots=True)
class CourseRemoval:
    id: Any
    name: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class BacktestInsert:
    course_id: Any
    course_name: str
    tests: tuple[ExamEntry, ...]
    reason: str = "new course"


@dataclass(frozen=True, slots=True)
class BacktestUpdate:
    """`old_tests` None means the stored list was malformed; `fix_ids` rewrites
    `course_ids` to exactly `[course_id]`."""

    id: Any
    course_id: Any
    course_name: str
    old_tests: tuple[ExamEntry, ...] | None
    tests: tuple[ExamEntry, ...]
    set_tests: bool
    fix_ids: bool


@dataclass(frozen=True, slots=True)
class BacktestRemoval:
    id: Any
    course_name: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class CodeRemoval:
    id: Any
    code: str | None
    reason: str


@dataclass(frozen=True)
class Plan:
    """Everything to write, by collection and kind. Empty when MongoDB already matches."""

    codes_to_add: tuple[str, ...] = ()
    codes_to_remove: tuple[CodeRemoval, ...] = ()
    courses_to_add: tuple[CourseInsert, ...] = ()
    courses_to_update: tuple[CourseUpdate, ...] = ()
    courses_to_remove: tuple[CourseRemoval, ...] = ()
    backtests_to_add: tuple[BacktestInsert, ...] = ()
    backtests_to_update: tuple[BacktestUpdate, ...] = ()
    backtests_to_remove: tuple[BacktestRemoval, ...] = ()
    existing_courses: int = 0
    desired_courses: int = 0
    # Full course name → its `_id` once the plan is applied (new ones chosen in advance).
    course_id_of: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def inserts(self) -> int:
        return len(self.codes_to_add) + len(self.courses_to_add) + len(self.backtests_to_add)

    @property
    def updates(self) -> int:
        return len(self.courses_to_update) + len(self.backtests_to_update)

    @property
    def deletes(self) -> int:
        return (
            len(self.codes_to_remove) + len(self.courses_to_remove) + len(self.backtests_to_remove)
        )

    @property
    def is_empty(self) -> bool:
        """True when MongoDB already shows exactly what the drive holds."""
        return self.inserts == 0 and self.updates == 0 and self.deletes == 0


def plan(
    catalog: Catalog,
    current: Current,
    *,
    new_id: Callable[[], ObjectId] = ObjectId,
    reuse: Mapping[str, ObjectId] | None = None,
) -> Plan:
    """The smallest set of writes that makes `current` show `catalog` (contract §3).

    `new_id` makes the `_id`s of new courses (injected so tests are deterministic).
    `reuse` (folder id → `_id`) gives a course folder that comes back the `_id` its
    course had before it was removed, so the website's links to it work again; an `_id`
    still present in MongoDB is never reused.
    """
    reuse = reuse or {}
    taken = {_hashable(doc.id) for doc in current.courses}
    desired = sorted(catalog.courses, key=lambda c: c.name)

    # Courses: by folder id, then by name; oldest `_id` wins among candidates.
    by_folder: dict[str, list[CourseDoc]] = defaultdict(list)
    by_name: dict[str, list[CourseDoc]] = defaultdict(list)
    for doc in current.courses:
        if not isinstance(doc.id, ObjectId):
            # The website turns the id in its URLs into an ObjectId: no link can reach
            # a course with any other `_id`, so it is replaced rather than adopted.
            continue
        if doc.folder_id is not None:
            by_folder[doc.folder_id].append(doc)
        if doc.name is not None:
            by_name[doc.name].append(doc)
    claimed: dict[Any, Course] = {}  # doc id → course
    matched: dict[str, CourseDoc] = {}  # course name → doc

    def claim(course: Course, candidates: list[CourseDoc]) -> None:
        for doc in candidates:
            if _hashable(doc.id) not in claimed:
                claimed[_hashable(doc.id)] = course
                matched[course.name] = doc
                return

    for course in desired:
        claim(course, by_folder.get(course.folder_id, []))
    for course in desired:
        if course.name not in matched:
            claim(course, by_name.get(course.name, []))

    courses_to_add: list[CourseInsert] = []
    courses_to_update: list[CourseUpdate] = []
    course_id_of: dict[str, Any] = {}
    for course in desired:
        doc = matched.get(course.name)
        if doc is None:
            old = reuse.get(course.folder_id)
            if old is not None and _hashable(old) not in taken:
                taken.add(_hashable(old))
                chosen = old
            else:
                chosen = new_id()
            insert = CourseInsert(chosen, course.name, course.code, course.folder_id)
            courses_to_add.append(insert)
            course_id_of[course.name] = insert.id
            continue
        course_id_of[course.name] = doc.id
        if (doc.name, doc.code, doc.folder_id) != (course.name, course.code, course.folder_id):
            courses_to_update.append(
                CourseUpdate(
                    doc.id,
                    doc.name,
                    doc.code,
                    doc.folder_id,
                    course.name,
                    course.code,
                    course.folder_id,
                )
            )

    kept_names = set(course_id_of)
    courses_to_remove = [
        CourseRemoval(doc.id, doc.name, _removal_reason(doc, kept_names))
        for doc in current.courses
        if _hashable(doc.id) not in claimed
    ]

    # Backtests: each kept course keeps one document (one pointing only at it first,
    # then the oldest); every other document is a duplicate or an orphan.
    new_ids = {_hashable(c.id) for c in courses_to_add}
    by_course: dict[Any, list[BacktestDoc]] = defaultdict(list)
    for bt in current.backtests:
        for cid in bt.course_ids:
            by_course[_hashable(cid)].append(bt)
    kept_backtests: set[Any] = set()
    backtests_to_add: list[BacktestInsert] = []
    backtests_to_update: list[BacktestUpdate] = []
    for course in desired:
        cid = course_id_of[course.name]
        key = _hashable(cid)
        candidates = (
            []
            if key in new_ids
            else [b for b in by_course.get(key, []) if _hashable(b.id) not in kept_backtests]
        )
        if not candidates:
            reason = "new course" if key in new_ids else "course had no backtest document"
            backtests_to_add.append(BacktestInsert(cid, course.name, course.tests, reason))
            continue
        candidates.sort(key=lambda b: (not b.exact, id_order(b.id)))
        bt = candidates[0]
        kept_backtests.add(_hashable(bt.id))
        set_tests = bt.tests != course.tests
        fix_ids = not bt.exact
        if set_tests or fix_ids:
            backtests_to_update.append(
                BacktestUpdate(bt.id, cid, course.name, bt.tests, course.tests, set_tests, fix_ids)
            )

    name_of = {_hashable(cid): name for name, cid in course_id_of.items()}
    old_name_of = {_hashable(doc.id): doc.name for doc in current.courses}
    backtests_to_remove: list[BacktestRemoval] = []
    for bt in current.backtests:
        if _hashable(bt.id) in kept_backtests:
            continue
        owners = [name_of[_hashable(c)] for c in bt.course_ids if _hashable(c) in name_of]
        if owners:
            backtests_to_remove.append(BacktestRemoval(bt.id, owners[0], "duplicate"))
        else:
            olds = [old_name_of.get(_hashable(c)) for c in bt.course_ids]
            label = next((n for n in olds if n), None)
            reason = "course removed" if label else "points at no course"
            backtests_to_remove.append(BacktestRemoval(bt.id, label, reason))

    # Codes: one document per department that has a published course.
    wanted = set(catalog.course_codes)
    seen: set[str] = set()
    codes_to_remove: list[CodeRemoval] = []
    for doc in current.codes:
        if doc.code is None:
            codes_to_remove.append(CodeRemoval(doc.id, None, "no course_code"))
        elif doc.code not in wanted:
            codes_to_remove.append(CodeRemoval(doc.id, doc.code, "no published course"))
        elif doc.code in seen:
            codes_to_remove.append(CodeRemoval(doc.id, doc.code, "duplicate"))
        else:
            seen.add(doc.code)
    codes_to_add = tuple(sorted(wanted - seen))

    return Plan(
        codes_to_add=codes_to_add,
        codes_to_remove=tuple(codes_to_remove),
        courses_to_add=tuple(courses_to_add),
        courses_to_update=tuple(courses_to_update),
        courses_to_remove=tuple(courses_to_remove),
        backtests_to_add=tuple(backtests_to_add),
        backtests_to_update=tuple(backtests_to_update),
        backtests_to_remove=tuple(backtests_to_remove),
        existing_courses=len(current.courses),
        desired_courses=len(desired),
        course_id_of=MappingProxyType(course_id_of),
    )


def _removal_reason(doc: CourseDoc, kept_names: set[str]) -> str:
    if not isinstance(doc.id, ObjectId):
        return "its _id is not an ObjectId, the website cannot link it"
    return "duplicate of a kept course" if doc.name in kept_names else "not in the drive"


def _hashable(value: Any) -> Any:
    """`_id`s as dictionary keys; hand-made ids may be unhashable (lists, dicts)."""
    try:
        hash(value)
    except TypeError:
        return ("unhashable", repr(value))
    return value


# --------------------------------------------------------------------------- documents


def exam_documents(tests: Iterable[ExamEntry]) -> list[dict[str, Any]]:
    """The website's `tests` list (field order `type`, `tests`)."""
    return [{"type": entry.type, "tests": list(entry.semesters)} for entry in tests]


def course_document(course: CourseInsert | CourseUpdate) -> dict[str, Any]:
    """The course fields the tool owns (`_id` excluded)."""
    return {"name": course.name, "course_code": course.code, "folder_id": course.folder_id}


# --------------------------------------------------------------------------- guard


def guard_refusal(plan: Plan, *, max_delete_fraction: float, hint: str | None = None) -> str | None:
    """Why the mass-delete guard refuses `plan` (contract §3), or None if it may be applied.
    `hint` (the catalog's guess at what is wrong with FOLDER_ID) is said before the way out."""
    existing = plan.existing_courses
    deleting = len(plan.courses_to_remove)
    override = (
        "Nothing was applied. If the drive really lost them, run again with --allow-mass-delete."
    )
    if hint:
        override = f"{hint} {override}"
    if plan.desired_courses == 0 and existing > 0:
        return (
            f"The drive listing yielded no courses while MongoDB has {existing}; "
            f"publishing would delete all {existing} courses from the website. {override}"
        )
    if deleting > GUARD_MIN_DELETIONS and deleting > max_delete_fraction * existing:
        return (
            f"The plan would delete {deleting} of {existing} courses "
            f"({deleting / existing:.0%}), more than MAX_DELETE_FRACTION "
            f"({max_delete_fraction:.0%}) and more than {GUARD_MIN_DELETIONS}. {override}"
        )
    return None


def check_guard(plan: Plan, *, max_delete_fraction: float, allow_mass_delete: bool) -> None:
    """Raise `GuardRefused` (exit 3) when the guard refuses and no override was given."""
    if allow_mass_delete:
        return
    reason = guard_refusal(plan, max_delete_fraction=max_delete_fraction)
    if reason is not None:
        raise GuardRefused(f"mass-delete guard: {reason}")


# --------------------------------------------------------------------------- output


def _tests_text(tests: tuple[ExamEntry, ...]) -> str:
    if not tests:
        return "no tests"
    return "; ".join(f"{e.type} {', '.join(e.semesters)}" for e in tests)


def exams_change_text(old: tuple[ExamEntry, ...] | None, new: tuple[ExamEntry, ...]) -> str:
    """`Exam 1 +Fall 2023 -Spring 2019; Quiz -Fall 2020` (what a visitor will see change)."""
    if old is None:
        return f"rewritten (was malformed): {_tests_text(new)}"
    before = {e.type: e.semesters for e in old}
    after = {e.type: e.semesters for e in new}
    parts: list[str] = []
    for kind in [e.type for e in new] + [e.type for e in old if e.type not in after]:
        was, now = before.get(kind, ()), after.get(kind, ())
        changes = [f"+{s}" for s in now if s not in was] + [f"-{s}" for s in was if s not in now]
        if changes:
            parts.append(f"{kind} {' '.join(changes)}")
    # Same semesters, other order (or a type listed twice): say so rather than nothing.
    return "; ".join(parts) if parts else "reordered"


def plan_lines(plan: Plan) -> list[str]:
    """Human-readable lines for `--dry-run`, in the order they would be applied."""
    lines: list[str] = []
    lines += [f"+ backtest {b.course_name}: {_tests_text(b.tests)}" for b in plan.backtests_to_add]
    lines += [f"+ course {c.name}" for c in plan.courses_to_add]
    lines += [f"+ code {code}" for code in plan.codes_to_add]
    for u in plan.courses_to_update:
        changes = []
        if u.old_name != u.name:
            changes.append(f"renamed from {u.old_name!r}" if u.old_name else "name set")
        if u.old_code != u.code:
            changes.append(f"course code {u.old_code or '(none)'} → {u.code}")
        if u.old_folder_id != u.folder_id:
            changes.append("folder id recorded" if u.old_folder_id is None else "folder id changed")
        lines.append(f"~ course {u.name}: {', '.join(changes)}")
    for b in plan.backtests_to_update:
        changes = []
        if b.set_tests:
            changes.append(exams_change_text(b.old_tests, b.tests))
        if b.fix_ids:
            changes.append("course_ids repaired")
        lines.append(f"~ backtest {b.course_name}: {'; '.join(changes)}")
    lines += [
        f"- code {c.code if c.code is not None else c.id} ({c.reason})"
        for c in plan.codes_to_remove
    ]
    lines += [
        f"- course {c.name if c.name is not None else c.id} ({c.reason})"
        for c in plan.courses_to_remove
    ]
    lines += [
        f"- backtest {b.course_name if b.course_name is not None else b.id} ({b.reason})"
        for b in plan.backtests_to_remove
    ]
    return lines


def plan_text(plan: Plan) -> str:
    """`plan_lines` with a one-line header; says so when nothing is to be done."""
    if plan.is_empty:
        return "MongoDB: in sync, nothing to write"
    header = (
        f"MongoDB: {plan.inserts} to insert, {plan.updates} to update, {plan.deletes} to delete"
    )
    return "\n".join([header, *(f"  {line}" for line in plan_lines(plan))])


@dataclass(frozen=True, slots=True)
class Applied:
    """What `Store.apply` wrote, in documents, and the round trips it took.

    `complete` is False when the apply stopped part-way (see `store.ApplyFailed`): the
    counts are then what the server confirmed, and `phases` says, per phase, how many
    operations were planned and how many were applied."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    round_trips: int = 0
    seconds: float = 0.0
    complete: bool = True
    phases: tuple[tuple[str, int, int], ...] = ()


def mongo_block(plan: Plan, applied: Applied | None = None) -> dict[str, Any]:
    """The `mongo` block of contract §8.

    Without `applied` (dry run, check) the counts are what the plan would do and
    `in_sync` says whether MongoDB already matches the drive. With `applied` the counts
    are the documents written and `in_sync` is true: MongoDB matches the drive now —
    unless the apply stopped part-way: then `in_sync` is false, `applied` is false and
    `not_applied` holds what the plan still had to do (`phases` per phase)."""
    if applied is None:
        return {
            "inserted": plan.inserts,
            "updated": plan.updates,
            "deleted": plan.deletes,
            "in_sync": plan.is_empty,
        }
    block: dict[str, Any] = {
        "inserted": applied.inserted,
        "updated": applied.updated,
        "deleted": applied.deleted,
        "in_sync": applied.complete,
    }
    if not applied.complete:
        block["applied"] = False
        block["not_applied"] = {
            "inserted": max(plan.inserts - applied.inserted, 0),
            "updated": max(plan.updates - applied.updated, 0),
            "deleted": max(plan.deletes - applied.deleted, 0),
        }
        block["phases"] = [
            {"phase": name, "planned": planned, "applied": done}
            for name, planned, done in applied.phases
        ]
    return block
