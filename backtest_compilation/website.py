"""Catalog → MongoDB plan: what the website's three collections must gain, change and lose.

Named after its subject: the documents the website reads (contract §3). Pure code over
frozen dataclasses: `Current` is what MongoDB holds (typed by `store.read_state`, which
owns the wire format); `plan` diffs a `Catalog` against it, phase by phase (match
courses, courses, backtests, codes); `guard_refusal` is the
mass-delete guard. No I/O here: `store` reads and applies, `report` says what a plan does.

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

# The guard never fires for a handful of deletions, whatever the fraction (contract §3).
GUARD_MIN_DELETIONS = 10


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
    desired = sorted(catalog.courses, key=lambda c: c.name)
    matched = match_courses(desired, current.courses)
    courses = plan_courses(desired, matched, current.courses, new_id=new_id, reuse=reuse or {})
    backtests = plan_backtests(desired, courses, current)
    codes_to_add, codes_to_remove = plan_codes(set(catalog.course_codes), current.codes)
    return Plan(
        codes_to_add=codes_to_add,
        codes_to_remove=codes_to_remove,
        courses_to_add=courses.to_add,
        courses_to_update=courses.to_update,
        courses_to_remove=courses.to_remove,
        backtests_to_add=backtests.to_add,
        backtests_to_update=backtests.to_update,
        backtests_to_remove=backtests.to_remove,
        existing_courses=len(current.courses),
        desired_courses=len(desired),
        course_id_of=MappingProxyType(courses.id_of),
    )


def match_courses(desired: Iterable[Course], docs: Iterable[CourseDoc]) -> dict[str, CourseDoc]:
    """Course name → the document it keeps: by folder id, then by name; the oldest
    `_id` wins among candidates, and each document goes to one course at most."""
    desired = list(desired)
    by_folder: dict[str, list[CourseDoc]] = defaultdict(list)
    by_name: dict[str, list[CourseDoc]] = defaultdict(list)
    for doc in docs:
        if not isinstance(doc.id, ObjectId):
            # The website turns the id in its URLs into an ObjectId: no link can reach
            # a course with any other `_id`, so it is replaced rather than adopted.
            continue
        if doc.folder_id is not None:
            by_folder[doc.folder_id].append(doc)
        if doc.name is not None:
            by_name[doc.name].append(doc)
    claimed: set[Any] = set()
    matched: dict[str, CourseDoc] = {}
    for candidates_of in (
        lambda c: by_folder.get(c.folder_id, []),
        lambda c: by_name.get(c.name, []),
    ):
        for course in desired:
            if course.name in matched:
                continue
            free = [d for d in candidates_of(course) if _hashable(d.id) not in claimed]
            if free:
                claimed.add(_hashable(free[0].id))
                matched[course.name] = free[0]
    return matched


@dataclass(frozen=True)
class CourseWrites:
    """The course collection's part of a plan, and each kept course's `_id`."""

    to_add: tuple[CourseInsert, ...]
    to_update: tuple[CourseUpdate, ...]
    to_remove: tuple[CourseRemoval, ...]
    id_of: dict[str, Any]  # full course name → `_id` once applied


def plan_courses(
    desired: Iterable[Course],
    matched: Mapping[str, CourseDoc],
    docs: Iterable[CourseDoc],
    *,
    new_id: Callable[[], ObjectId],
    reuse: Mapping[str, ObjectId],
) -> CourseWrites:
    """Insert the unmatched courses (reusing a returning folder's old `_id`), update the
    matched ones that differ, remove the documents no course kept."""
    docs = list(docs)
    taken = {_hashable(doc.id) for doc in docs}
    to_add: list[CourseInsert] = []
    to_update: list[CourseUpdate] = []
    id_of: dict[str, Any] = {}
    for course in desired:
        doc = matched.get(course.name)
        if doc is None:
            old = reuse.get(course.folder_id)
            if old is not None and _hashable(old) not in taken:
                taken.add(_hashable(old))
                chosen = old
            else:
                chosen = new_id()
            to_add.append(CourseInsert(chosen, course.name, course.code, course.folder_id))
            id_of[course.name] = chosen
            continue
        id_of[course.name] = doc.id
        if (doc.name, doc.code, doc.folder_id) != (course.name, course.code, course.folder_id):
            to_update.append(
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
    to_remove = course_removals(docs, matched, set(id_of))
    return CourseWrites(tuple(to_add), tuple(to_update), to_remove, id_of)


def course_removals(
    docs: Iterable[CourseDoc], matched: Mapping[str, CourseDoc], kept_names: set[str]
) -> tuple[CourseRemoval, ...]:
    """The course documents no course kept: duplicates, unlinkable ids, gone folders."""
    kept = {_hashable(doc.id) for doc in matched.values()}
    return tuple(
        CourseRemoval(doc.id, doc.name, _removal_reason(doc, kept_names))
        for doc in docs
        if _hashable(doc.id) not in kept
    )


@dataclass(frozen=True)
class BacktestWrites:
    """The backtest collection's part of a plan."""

    to_add: tuple[BacktestInsert, ...]
    to_update: tuple[BacktestUpdate, ...]
    to_remove: tuple[BacktestRemoval, ...]


def plan_backtests(
    desired: Iterable[Course], courses: CourseWrites, current: Current
) -> BacktestWrites:
    """Each kept course keeps one backtest document (one pointing only at it first,
    then the oldest); every other document is a duplicate or an orphan."""
    new_ids = {_hashable(c.id) for c in courses.to_add}
    by_course: dict[Any, list[BacktestDoc]] = defaultdict(list)
    for bt in current.backtests:
        for cid in bt.course_ids:
            by_course[_hashable(cid)].append(bt)
    kept: set[Any] = set()
    to_add: list[BacktestInsert] = []
    to_update: list[BacktestUpdate] = []
    for course in desired:
        cid = courses.id_of[course.name]
        key = _hashable(cid)
        candidates = (
            []
            if key in new_ids
            else [b for b in by_course.get(key, []) if _hashable(b.id) not in kept]
        )
        if not candidates:
            reason = "new course" if key in new_ids else "course had no backtest document"
            to_add.append(BacktestInsert(cid, course.name, course.tests, reason))
            continue
        bt = min(candidates, key=lambda b: (not b.exact, id_order(b.id)))
        kept.add(_hashable(bt.id))
        set_tests, fix_ids = bt.tests != course.tests, not bt.exact
        if set_tests or fix_ids:
            to_update.append(
                BacktestUpdate(bt.id, cid, course.name, bt.tests, course.tests, set_tests, fix_ids)
            )
    to_remove = backtest_removals(current, kept, courses.id_of)
    return BacktestWrites(tuple(to_add), tuple(to_update), to_remove)


def backtest_removals(
    current: Current, kept: set[Any], id_of: Mapping[str, Any]
) -> tuple[BacktestRemoval, ...]:
    """The backtest documents no kept course owns, each labelled by a course it names."""
    name_of = {_hashable(cid): name for name, cid in id_of.items()}
    old_name_of = {_hashable(doc.id): doc.name for doc in current.courses}
    removals: list[BacktestRemoval] = []
    for bt in current.backtests:
        if _hashable(bt.id) in kept:
            continue
        owners = [name_of[_hashable(c)] for c in bt.course_ids if _hashable(c) in name_of]
        if owners:
            removals.append(BacktestRemoval(bt.id, owners[0], "duplicate"))
        else:
            olds = [old_name_of.get(_hashable(c)) for c in bt.course_ids]
            label = next((n for n in olds if n), None)
            reason = "course removed" if label else "points at no course"
            removals.append(BacktestRemoval(bt.id, label, reason))
    return tuple(removals)


def plan_codes(
    wanted: set[str], docs: Iterable[CodeDoc]
) -> tuple[tuple[str, ...], tuple[CodeRemoval, ...]]:
    """One code document per department that has a published course: (to add, to remove)."""
    seen: set[str] = set()
    to_remove: list[CodeRemoval] = []
    for doc in docs:
        if doc.code is None:
            to_remove.append(CodeRemoval(doc.id, None, "no course_code"))
        elif doc.code not in wanted:
            to_remove.append(CodeRemoval(doc.id, doc.code, "no published course"))
        elif doc.code in seen:
            to_remove.append(CodeRemoval(doc.id, doc.code, "duplicate"))
        else:
            seen.add(doc.code)
    return tuple(sorted(wanted - seen)), tuple(to_remove)


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
