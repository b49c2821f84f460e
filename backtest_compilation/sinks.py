"""The three sinks a run writes to — renames in Drive, MongoDB, the sheet — in one shape.

Each sink `plan`s from the run's `Context` (writing nothing, for `--dry-run` and
`check` as much as for a sync), `apply`s that plan, and `remember`s, in the state, the
part it owns once its apply succeeded. The pipeline is a loop over them; it never knows
which one it is talking to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from bson import ObjectId

from . import outcome, report, state, website
from .background import Background
from .catalog import Catalog, Rename, RenameResult, guard_hint, problems_after_renames
from .errors import RunError
from .sources import Reading, Source

if TYPE_CHECKING:
    from .sheet import SheetPlan, SheetReport
    from .store import Store

log = logging.getLogger("backtest_compilation.pipeline")

# How long a removed course's `_id` is kept for its folder's return (item: links survive).
RETIRED_ID_DAYS = 30

P = TypeVar("P")
R = TypeVar("R")


@dataclass
class Context:
    """What the sinks plan from, and what the renames change for the sinks after them:
    the catalog (its problems quote names), the reading and its fingerprint."""

    built: Catalog
    reading: Reading
    remembered: state.State  # as the run found it (what the last runs left)
    now: datetime
    fingerprint: Callable[[Reading], str]
    unchanged: bool = False  # the drive is as the last fully successful run left it
    renames_on: bool = True
    # Failed sinks so far (name → error), and what sinks noted for the summary.
    failures: dict[str, BaseException] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


class Sink(Protocol, Generic[P, R]):
    """One place a run writes to."""

    name: str

    def plan(self, ctx: Context) -> P:
        """What `apply` would do, reading but writing nothing."""
        ...

    def apply(self, plan: P, ctx: Context) -> R:
        """Do it; raises on failure (the pipeline isolates each sink)."""
        ...

    def remember(
        self, remembered: state.State, plan: P, result: R | None, ctx: Context
    ) -> state.State:
        """The state with this sink's part updated; `result` None: its apply failed."""
        ...


# ---------------------------------------------------------------- renames


class Renames:
    """File names normalised in Drive (or on disk)."""

    name = "renames"

    def __init__(self, source: Source) -> None:
        self.source = source

    def plan(self, ctx: Context) -> tuple[Rename, ...]:
        return ctx.built.renames if ctx.renames_on and not ctx.unchanged else ()

    def apply(self, plan: tuple[Rename, ...], ctx: Context) -> RenameResult:
        return self.source.rename(plan)

    def remember(
        self,
        remembered: state.State,
        plan: tuple[Rename, ...],
        result: RenameResult | None,
        ctx: Context,
    ) -> state.State:
        """Fold the applied renames into the reading and the catalog (the sinks after
        this one show the names the drive has now), log what changed, and remember the
        drive and the problems."""
        if ctx.unchanged:
            return remembered
        failed = result is None
        result = result or RenameResult()
        applied = [r for r in plan if r.id in result.applied]
        outcome.log_list(
            "renamed", [f"{outcome.one_line(r.path)} → {outcome.one_line(r.new)}" for r in applied]
        )
        ctx.reading = self.source.after_renames(ctx.reading, applied)
        built = ctx.built
        if applied:
            # Problems quote names (a duplicate names the file it duplicates): re-rendered
            # with the new names, so the sheet shows the names the drive has now.
            built = replace(built, problems=problems_after_renames(built.problems, applied))
        if result.problems:
            built = replace(
                built,
                problems=tuple(
                    sorted(
                        (*built.problems, *result.problems),
                        key=lambda p: (p.path, p.category.value, p.id),
                    )
                ),
            )
        ctx.built = built
        counts = outcome.log_rename_problems(
            result.problems, ctx.remembered.problems, renames_ran=bool(plan)
        )
        before = ctx.notes.get("problem_changes", {"new": 0, "resolved": 0})
        ctx.notes["problem_changes"] = {k: before[k] + counts[k] for k in ("new", "resolved")}
        ctx.notes["renames_applied"] = frozenset(r.id for r in applied)
        ctx.notes["renames_pending"] = result.pending
        remembered = remembered.with_drive(ctx.reading.snapshot, ctx.now).with_problems(
            outcome.problem_key(p) for p in built.problems
        )
        if not result.problems and not result.pending and not failed:
            remembered = remembered.with_sink(
                "renames", {"fingerprint": ctx.fingerprint(ctx.reading)}, ctx.now
            )
        skipped = len(ctx.built.renames) - len(plan)
        log.info(
            "renames: %d applied, %d failed, %d pending%s",
            len(applied),
            len(result.problems),
            len(result.pending),
            f", {skipped} not applied (renames are off)" if skipped else "",
        )
        return remembered


# ---------------------------------------------------------------- MongoDB


@dataclass(frozen=True)
class MongoPlan:
    """The MongoDB operations, what MongoDB held when planned, and the guard's answer."""

    plan: website.Plan
    current: website.Current
    refusal: str | None


class Mongo:
    """What the website reads. The mass-delete guard is decided here, once, in `plan`."""

    name = "mongo"

    def __init__(
        self, store: Store, *, max_delete_fraction: float, allow_mass_delete: bool
    ) -> None:
        self.store = store
        self.max_delete_fraction = max_delete_fraction
        self.allow_mass_delete = allow_mass_delete
        self._reading: Background[website.Current] | None = None

    def start_reading(self) -> None:
        """Read MongoDB now, in the background (while the drive is read); `plan` takes it."""
        self._reading = Background(self.store.read_current, "mongo-read")

    def plan(self, ctx: Context) -> MongoPlan:
        # Reads MongoDB: an unreachable server stops the run before any write.
        reading, self._reading = self._reading, None
        current = reading.result() if reading is not None else self.store.read_current()
        plan = website.plan(ctx.built, current, reuse=reusable_ids(ctx.remembered, ctx.now))
        hint = guard_hint(ctx.built, _published_codes(ctx.remembered))
        refusal = (
            None
            if self.allow_mass_delete
            else website.guard_refusal(
                plan, max_delete_fraction=self.max_delete_fraction, hint=hint
            )
        )
        if hint and refusal is None:
            log.warning("%s", hint)
        return MongoPlan(plan, current, refusal)

    def apply(self, plan: MongoPlan, ctx: Context) -> website.Applied:
        # The guard was decided by `plan`; the run stopped before any sink if it refused.
        return self.store.apply(plan.plan)

    def retire(self, remembered: state.State, plan: MongoPlan, now: datetime) -> state.State:
        """Courses about to leave the website: their `_id`s are kept for a while, before
        the write, so a folder that comes back even after an interrupted run gets its own
        back."""
        return remembered.with_retired(
            retiring_ids(plan.plan, plan.current), now, days=RETIRED_ID_DAYS
        )

    def remember(
        self,
        remembered: state.State,
        plan: MongoPlan,
        result: website.Applied | None,
        ctx: Context,
    ) -> state.State:
        """Log the courses the website gained, lost and renamed; note the summary's
        `mongo` block; remember what MongoDB now shows (a changed drive only)."""
        failure = ctx.failures.get(self.name)
        applied = result if failure is None else getattr(failure, "applied", None)
        if failure is not None and applied is None and ctx.unchanged:
            applied = website.Applied(complete=False)
        changes = outcome.website_changes(plan.plan, applied)
        outcome.log_website(changes)
        ctx.notes["website"] = changes
        ctx.notes["mongo"] = (
            report.mongo_block(plan.plan, applied)
            if applied is not None
            else _nothing_applied(plan.plan)
        )
        if result is None or ctx.unchanged:
            return remembered
        # What MongoDB was made to show, kept so an unchanged drive needs no catalog.
        data = {
            "fingerprint": ctx.fingerprint(ctx.reading),
            "catalog": report.catalog_block(ctx.built),
            "problems": report.problems_block(ctx.built),
        }
        return remembered.with_sink("mongo", data, ctx.now)


def _published_codes(remembered: state.State) -> list[str]:
    """The departments the website showed after the last run this source's state knows."""
    catalog = remembered.mongo.data.get("catalog") if remembered.mongo is not None else None
    codes = catalog.get("course_codes") if isinstance(catalog, dict) else None
    return [c for c in codes if isinstance(c, str)] if isinstance(codes, list) else []


def _nothing_applied(plan: website.Plan) -> dict[str, Any]:
    """The `mongo` block of an apply that failed before writing anything we know of."""
    return {
        "inserted": 0,
        "updated": 0,
        "deleted": 0,
        "in_sync": False,
        "applied": False,
        "not_applied": {"inserted": plan.inserts, "updated": plan.updates, "deleted": plan.deletes},
    }


def retiring_ids(plan: website.Plan, current: website.Current) -> dict[str, ObjectId]:
    """Folder id → `_id` of each course the plan removes (only `ObjectId`s the website
    can link, and only folders not kept under another document)."""
    kept = {c.folder_id for c in plan.courses_to_add} | {
        c.folder_id for c in plan.courses_to_update
    }
    folder_of = {website.id_order(d.id): d.folder_id for d in current.courses}
    out: dict[str, ObjectId] = {}
    for removal in plan.courses_to_remove:
        folder = folder_of.get(website.id_order(removal.id))
        if isinstance(removal.id, ObjectId) and folder and folder not in kept:
            out[folder] = removal.id
    return out


def reusable_ids(remembered: state.State, now: datetime) -> dict[str, ObjectId]:
    """The remembered `_id`s of courses removed less than `RETIRED_ID_DAYS` ago, by
    folder id."""
    out: dict[str, ObjectId] = {}
    for folder in remembered.with_retired({}, now, days=RETIRED_ID_DAYS).retired_ids:
        text = remembered.retired_id(folder)
        if isinstance(text, str) and ObjectId.is_valid(text):
            out[folder] = ObjectId(text)
    return out


# ---------------------------------------------------------------- the sheet


@dataclass(frozen=True)
class SheetOutcome:
    """What the sheet sink did: contract §8's `sheet` block and the part to remember."""

    block: dict[str, Any]
    part: dict[str, Any] | None = None  # None: nothing new to remember


class Sheet:
    """The report spreadsheet. On an unchanged drive it is read only when its Drive
    `version` says someone else wrote to it (contract §5.8)."""

    name = "sheet"

    def __init__(self, report_: SheetReport | None, source: Source, skipped: str) -> None:
        self.report = report_
        self.source = source
        self.skipped = skipped

    def plan(self, ctx: Context) -> SheetPlan | None:
        """What the sheet holds against the report (previews only: a sync plans in
        `apply`, after the renames changed what the report says)."""
        return self.report.plan(ctx.built) if self.report is not None else None

    def apply(self, plan: SheetPlan | None, ctx: Context) -> SheetOutcome:
        sheet = self.report
        if sheet is None and ctx.unchanged:
            return SheetOutcome(dict(outcome.NOT_WRITTEN))
        if sheet is None:
            log.warning("sheet: %s; the sheet step is skipped", self.skipped)
            return SheetOutcome(dict(outcome.NOT_WRITTEN), {"skipped": True})
        if ctx.unchanged:
            return self._repair_if_edited(sheet, ctx)
        part = ctx.remembered.sheet
        last = part.data.get("digest") if part else None
        published = sheet.publish(ctx.built, last, ctx.now, stamp_unchanged=True)
        return SheetOutcome(
            published.block(), {"digest": published.digest, "version": self.version()}
        )

    def _repair_if_edited(self, sheet: SheetReport, ctx: Context) -> SheetOutcome:
        """One Drive `files.get` says whether anyone wrote to the spreadsheet since our
        last write; only then is the sheet read (and the report rewritten if it no
        longer shows it)."""
        part = ctx.remembered.sheet
        nothing = SheetOutcome(dict(outcome.NOT_WRITTEN))
        if part is None or part.data.get("skipped"):
            return nothing
        before = part.data.get("version")
        if before is None:
            log.debug("sheet: no remembered Drive version; hand edits are noticed on a changed run")
            return nothing
        version = self.source.sheet_version(sheet.key)
        if version is None or version == before:
            if version is None:
                log.info("sheet: Drive cannot see the spreadsheet; hand edits are not checked")
            return nothing
        log.warning(
            "sheet: written by someone else since the last run (Drive version %s → %s); "
            "checking the report",
            before,
            version,
        )
        published = sheet.publish(
            ctx.built, part.data.get("digest"), ctx.now, stamp_unchanged=False
        )
        after = self.version() if published.written else version
        return SheetOutcome(
            published.block(), {**part.data, "digest": published.digest, "version": after}
        )

    def version(self) -> str | None:
        """The spreadsheet's Drive `version` right after our write (None: cannot tell)."""
        if self.report is None:
            return None
        try:
            return self.source.sheet_version(self.report.key)
        except RunError as exc:
            log.warning("sheet: cannot read the spreadsheet's Drive version (%s)", exc)
            return None

    def remember(
        self,
        remembered: state.State,
        plan: SheetPlan | None,
        result: SheetOutcome | None,
        ctx: Context,
    ) -> state.State:
        if result is None or result.part is None:
            return remembered
        data = result.part
        if not ctx.unchanged:
            data = {"fingerprint": ctx.fingerprint(ctx.reading), **data}
        return remembered.with_sink("sheet", data, ctx.now)


__all__ = ["RETIRED_ID_DAYS", "Context", "Mongo", "MongoPlan", "Renames", "Sheet", "Sink"]
