"""Catalog → MongoDB plan (contract §3, pure): `plan` diffs a `Catalog` against `Current`
(what `store` read); `guard_refusal` is the mass-delete guard. The website links to a
course by its `_id`, so a course keeps its document (matched by folder id, then by name)
when its title changes; each kept course owns one backtest; what the drive lacks goes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from .catalog import Catalog, Course, ExamEntry

# The guard never fires for a handful of deletions, whatever the fraction (contract §3).
GUARD_MIN_DELETIONS = 10


@dataclass(frozen=True, slots=True)
class CodeDoc:
    """A document of the course-code collection; `code` is None when malformed."""

    id: Any
    code: str | None


@dataclass(frozen=True, slots=True)
class CourseDoc:
    """A course document as read (a field not a string is None), or a new one."""

    id: Any
    name: str | None
    code: str | None
    folder_id: str | None


@dataclass(frozen=True, slots=True)
class BacktestDoc:
    """`tests` is None when not the website's shape; `exact`: `course_ids` is a one-element list."""

    id: Any
    course_ids: tuple[Any, ...]
    tests: tuple[ExamEntry, ...] | None
    exact: bool


@dataclass(frozen=True)
class Current:
    """What MongoDB holds now, oldest `_id` first in each collection."""

    codes: tuple[CodeDoc, ...]
    courses: tuple[CourseDoc, ...]
    backtests: tuple[BacktestDoc, ...]


def id_order(value: Any) -> tuple[int, bytes | str]:
    """Sort and dict key for any `_id` (even a document): ObjectIds first, oldest first."""
    if isinstance(value, ObjectId):
        return (0, value.binary)
    return (1, f"{type(value).__name__}:{value!r}")


@dataclass(frozen=True, slots=True)
class CourseUpdate(CourseDoc):
    """A course document rewritten in place (same `_id`); `old` is how it was."""

    old: CourseDoc


@dataclass(frozen=True, slots=True)
class BacktestInsert:
    course_id: Any
    course_name: str
    tests: tuple[ExamEntry, ...]


@dataclass(frozen=True, slots=True)
class BacktestUpdate(BacktestInsert):
    """Rewrites document `id`; `old_tests` None: malformed; `fix_ids`: bad `course_ids`."""

    id: Any
    old_tests: tuple[ExamEntry, ...] | None
    set_tests: bool
    fix_ids: bool


@dataclass(frozen=True, slots=True)
class Removal:
    """A document to delete; `name` is its course code or the name of a course it names."""

    id: Any
    name: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything to write, by collection and kind. Empty when MongoDB already matches."""

    codes_to_add: tuple[str, ...] = ()
    codes_to_remove: tuple[Removal, ...] = ()
    courses_to_add: tuple[CourseDoc, ...] = ()
    courses_to_update: tuple[CourseUpdate, ...] = ()
    courses_to_remove: tuple[Removal, ...] = ()
    backtests_to_add: tuple[BacktestInsert, ...] = ()
    backtests_to_update: tuple[BacktestUpdate, ...] = ()
    backtests_to_remove: tuple[Removal, ...] = ()
    existing_courses: int = 0
    desired_courses: int = 0

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
        return self.inserts == 0 and self.updates == 0 and self.deletes == 0


def plan(
    catalog: Catalog,
    current: Current,
    *,
    new_id: Callable[[], ObjectId] = ObjectId,
    reuse: Mapping[str, ObjectId] | None = None,
) -> Plan:
    """The smallest set of writes that makes `current` show `catalog` (contract §3).
    `reuse` (folder id → `_id`) gives a returning course folder its old `_id`, if free."""
    desired = sorted(catalog.courses, key=lambda c: c.name)
    matched = match_courses(desired, current.courses)
    taken = {id_order(doc.id) for doc in current.courses}
    added: list[CourseDoc] = []
    updated: list[CourseUpdate] = []
    id_of: dict[str, Any] = {}  # course name → its `_id` once applied
    for c in desired:
        doc = matched.get(c.name)
        if doc is None:
            chosen = (reuse or {}).get(c.folder_id)
            if chosen is None or id_order(chosen) in taken:
                chosen = new_id()
            taken.add(id_order(chosen))
            doc = CourseDoc(chosen, c.name, c.code, c.folder_id)
            added.append(doc)
        elif (doc.name, doc.code, doc.folder_id) != (c.name, c.code, c.folder_id):
            updated.append(CourseUpdate(doc.id, c.name, c.code, c.folder_id, doc))
        id_of[c.name] = doc.id
    kept = {id_order(doc.id) for doc in matched.values()}
    removed = [_removal(doc, id_of) for doc in current.courses if id_order(doc.id) not in kept]
    codes = plan_codes(set(catalog.course_codes), current.codes)
    courses = tuple(added), tuple(updated), tuple(removed)
    backtests = plan_backtests(desired, id_of, current)
    return Plan(*codes, *courses, *backtests, len(current.courses), len(desired))


def _removal(doc: CourseDoc, kept_names: Mapping[str, Any]) -> Removal:
    if not isinstance(doc.id, ObjectId):
        return Removal(doc.id, doc.name, "its _id is not an ObjectId, the website cannot link it")
    reason = "duplicate of a kept course" if doc.name in kept_names else "not in the drive"
    return Removal(doc.id, doc.name, reason)


def match_courses(desired: list[Course], docs: tuple[CourseDoc, ...]) -> dict[str, CourseDoc]:
    """Course name → the document it keeps: by folder id, then by name, oldest first; only
    ObjectId `_id`s (the website's URLs hold ObjectIds)."""
    matched: dict[str, CourseDoc] = {}
    for field in ("folder_id", "name"):
        claimed = {doc.id for doc in matched.values()}
        free: dict[Any, list[CourseDoc]] = defaultdict(list)  # by the field's value
        for doc in docs:
            if isinstance(doc.id, ObjectId) and doc.id not in claimed:
                free[getattr(doc, field)].append(doc)
        for course in desired:
            if free[getattr(course, field)] and course.name not in matched:
                matched[course.name] = free[getattr(course, field)].pop(0)
    return matched


def plan_backtests(
    desired: list[Course], id_of: Mapping[str, Any], current: Current
) -> tuple[tuple[BacktestInsert, ...], tuple[BacktestUpdate, ...], tuple[Removal, ...]]:
    """(to add, to update, to remove): each course keeps one backtest document pointing at
    its `_id` (one pointing only at it first, then the oldest)."""
    by_course: dict[Any, list[BacktestDoc]] = defaultdict(list)
    for bt in current.backtests:
        for cid in bt.course_ids:
            by_course[id_order(cid)].append(bt)
    kept: set[Any] = set()
    to_add: list[BacktestInsert] = []
    to_update: list[BacktestUpdate] = []
    for course in desired:
        cid = id_of[course.name]
        free = [b for b in by_course[id_order(cid)] if id_order(b.id) not in kept]
        if not free:
            to_add.append(BacktestInsert(cid, course.name, course.tests))
            continue
        bt = min(free, key=lambda b: (not b.exact, id_order(b.id)))
        kept.add(id_order(bt.id))
        set_tests, fix_ids = bt.tests != course.tests, not bt.exact
        if set_tests or fix_ids:
            change = (bt.id, bt.tests, set_tests, fix_ids)
            to_update.append(BacktestUpdate(cid, course.name, course.tests, *change))
    name_of = {id_order(cid): name for name, cid in id_of.items()}
    old_name_of = {id_order(doc.id): doc.name for doc in current.courses}
    to_remove: list[Removal] = []
    for bt in current.backtests:
        if id_order(bt.id) not in kept:
            keys = [id_order(c) for c in bt.course_ids]
            owner = next(filter(None, map(name_of.get, keys)), None)
            label = owner or next(filter(None, map(old_name_of.get, keys)), None)
            reason = "duplicate" if owner else "course removed" if label else "points at no course"
            to_remove.append(Removal(bt.id, label, reason))
    return tuple(to_add), tuple(to_update), tuple(to_remove)


def plan_codes(
    wanted: set[str], docs: Iterable[CodeDoc]
) -> tuple[tuple[str, ...], tuple[Removal, ...]]:
    """One code document per department that has a published course: (to add, to remove)."""
    seen: set[str] = set()
    to_remove: list[Removal] = []
    for doc in docs:
        if doc.code is None:
            reason = "no course_code"
        elif doc.code not in wanted:
            reason = "no published course"
        elif doc.code in seen:
            reason = "duplicate"
        else:
            seen.add(doc.code)
            continue
        to_remove.append(Removal(doc.id, doc.code, reason))
    return tuple(sorted(wanted - seen)), tuple(to_remove)


def guard_refusal(plan: Plan, *, max_delete_fraction: float, hint: str | None = None) -> str | None:
    """Why the mass-delete guard refuses `plan` (contract §3), or None if it may be applied.
    `hint` (the catalog's guess at what is wrong with FOLDER_ID) is said before the way out."""
    existing, deleting = plan.existing_courses, len(plan.courses_to_remove)
    if plan.desired_courses == 0 and existing > 0:
        why = (
            f"The drive listing yielded no courses while MongoDB has {existing}; "
            f"publishing would delete all {existing} courses from the website."
        )
    elif deleting > GUARD_MIN_DELETIONS and deleting > max_delete_fraction * existing:
        why = (
            f"The plan would delete {deleting} of {existing} courses ({deleting / existing:.0%}), "
            f"more than MAX_DELETE_FRACTION ({max_delete_fraction:.0%}) and more than "
            f"{GUARD_MIN_DELETIONS}."
        )
    else:
        return None
    way_out = "If the drive really lost them, run again with --allow-mass-delete."
    return " ".join(filter(None, [why, hint, "Nothing was applied.", way_out]))


@dataclass(frozen=True, slots=True)
class Applied:
    """What `Store.apply` wrote; if it stopped part-way, `phases`: (name, planned, applied)."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    complete: bool = True
    phases: tuple[tuple[str, int, int], ...] = ()
