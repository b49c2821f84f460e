"""The three places a sync writes to — MongoDB, file names in Drive, the sheet — as
functions over values: each takes what it needs, does one thing, and returns what it
did; `pipeline.run` calls them in order and saves the state after each.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from bson import ObjectId

from . import outcome, report, state, website
from .catalog import Catalog, Rename, RenameResult, guard_hint, problems_after_renames
from .errors import RunError
from .sources import Reading, Source

if TYPE_CHECKING:
    from .sheet import SheetPlan, SheetReport
    from .store import Store

log = logging.getLogger("backtest_compilation.pipeline")

# How long a removed course's `_id` is kept for its folder's return (item: links survive).
RETIRED_ID_DAYS = 30


# ---------------------------------------------------------------- MongoDB


@dataclass(frozen=True)
class MongoPlan:
    """The MongoDB operations, what MongoDB held when planned, and the guard's answer."""

    plan: website.Plan
    current: website.Current
    refusal: str | None


def plan_mongo(
    current: website.Current,
    built: Catalog,
    remembered: state.State,
    now: datetime,
    *,
    max_delete_fraction: float,
    allow_mass_delete: bool,
) -> MongoPlan:
    """Plan the writes that make MongoDB (`current`) show `built`; the mass-delete
    guard is decided here, once."""
    if isinstance(built, Remembered):  # MongoDB is as an earlier unchanged run found it
        return MongoPlan(website.Plan(existing_courses=len(current.courses)), current, None)
    plan = website.plan(built, current, reuse=reusable_ids(remembered, now))
    # The departments of the last run matter only to an empty catalog (and are big).
    had = () if built.departments or built.courses else _published_codes(remembered)
    hint = guard_hint(built, had)
    refusal = None
    if not allow_mass_delete:
        refusal = website.guard_refusal(plan, max_delete_fraction=max_delete_fraction, hint=hint)
    if hint and refusal is None:
        log.warning("%s", hint)
    return MongoPlan(plan, current, refusal)


def _published_codes(remembered: state.State) -> list[str]:
    """The departments the website showed after the last run this source's state knows."""
    catalog = remembered.mongo.data.get("catalog") if remembered.mongo is not None else None
    codes = catalog.get("course_codes") if isinstance(catalog, dict) else None
    return [c for c in codes if isinstance(c, str)] if isinstance(codes, list) else []


def apply_mongo(store: Store, planned: MongoPlan) -> website.Applied:
    """Write the plan (the guard was decided by `plan_mongo`)."""
    return store.apply(planned.plan)


def mongo_told(
    planned: MongoPlan,
    applied: website.Applied | None,
    failure: BaseException | None,
    *,
    unchanged: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(`website` changes, `mongo` block) of an apply: what it did, also when it failed
    part-way (the error then says what was confirmed); each course change is logged."""
    if failure is not None:
        applied = getattr(failure, "applied", None)
        if applied is None and unchanged:
            applied = website.Applied(complete=False)
    changes = outcome.website_changes(planned.plan, applied)
    outcome.log_website(changes)
    if applied is None:
        plan = planned.plan
        block = {
            "inserted": 0,
            "updated": 0,
            "deleted": 0,
            "in_sync": False,
            "applied": False,
            "not_applied": {
                "inserted": plan.inserts,
                "updated": plan.updates,
                "deleted": plan.deletes,
            },
        }
        return changes, block
    return changes, report.mongo_block(planned.plan, applied)


def retire(remembered: state.State, planned: MongoPlan, now: datetime) -> state.State:
    """Courses about to leave the website: their `_id`s are kept for a while, before the
    write, so a folder that comes back even after an interrupted run gets its own back."""
    return remembered.with_retired(
        retiring_ids(planned.plan, planned.current), now, days=RETIRED_ID_DAYS
    )


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


def mongo_part(built: Catalog, fingerprint: str) -> dict[str, Any]:
    """What MongoDB was made to show, kept so an unchanged drive needs no catalog (its
    counts are the summary line's, in state.json; the blocks go to snapshot.json)."""
    return {
        "fingerprint": fingerprint,
        "counts": {
            "departments": len(built.course_codes),
            "courses": len(built.courses),
            "problems": len(built.problems),
        },
        "catalog": report.catalog_block(built),
        "problems": report.problems_block(built),
    }


def website_digest(current: website.Current) -> str:
    """A fingerprint of what MongoDB holds (documents are frozen dataclasses of plain
    values and `ObjectId`s, listed in `_id` order: their text is stable)."""
    return hashlib.sha256(repr(current).encode("utf-8", "surrogatepass")).hexdigest()


class Remembered:
    """The catalog the last run published, read from snapshot.json on first use: an
    unchanged run that finds MongoDB as it left it needs only its counts."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data, self.built = data, None

    def load(self) -> Catalog:
        if self.built is None:
            self.built = report.catalog_from_blocks(self.data["catalog"], self.data["problems"])
        return self.built

    def __getattr__(self, name: str) -> Any:
        return getattr(self.load(), name)


def known_catalog(
    remembered: state.State, fingerprint: str, current: website.Current
) -> Catalog | None:
    """The catalog the last run published, if every sink succeeded for this very tree.
    While MongoDB holds what an earlier unchanged run found there, it is a `Remembered`
    (not read: MongoDB needs no plan, the summary line its counts)."""
    parts = (remembered.renames, remembered.mongo, remembered.sheet)
    if any(p is None or p.data.get("fingerprint") != fingerprint for p in parts):
        return None
    assert remembered.mongo is not None
    known = Remembered(remembered.mongo.data)
    if "counts" in known.data and known.data.get("website") == website_digest(current):
        return cast(Catalog, known)
    try:
        return known.load()
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("state: remembered catalog unusable (%s); rebuilding it", exc)
        return None


def seen_in_sync(remembered: state.State, current: website.Current) -> state.State:
    """Remember that MongoDB (`current`) shows the remembered catalog: the next unchanged
    run compares a digest instead of reading the catalog."""
    part = remembered.mongo
    if part is None or "counts" not in part.data:
        return remembered
    data = state.replaced(part.data, website=website_digest(current))
    return remembered.with_sink("mongo", data, part.at)


# ---------------------------------------------------------------- renames


@dataclass(frozen=True)
class Renamed:
    """The drive and the catalog after the renames (names as the drive has them now)."""

    reading: Reading
    built: Catalog
    result: RenameResult
    applied: tuple[Rename, ...]


def after_renames(
    source: Source, reading: Reading, built: Catalog, plan: tuple[Rename, ...], result: RenameResult
) -> Renamed:
    """Fold the applied renames into the reading and the catalog (problems quote names,
    and the sheet shows the names the drive has now); rename failures become problems."""
    applied = tuple(r for r in plan if r.id in result.applied)
    outcome.log_list(
        "renamed", [f"{outcome.one_line(r.path)} → {outcome.one_line(r.new)}" for r in applied]
    )
    problems = problems_after_renames(built.problems, applied) if applied else built.problems
    if result.problems:
        problems = tuple(
            sorted((*problems, *result.problems), key=lambda p: (p.path, p.category.value, p.id))
        )
    skipped = len(built.renames) - len(plan)
    log.info(
        "renames: %d applied, %d failed, %d pending%s",
        len(applied),
        len(result.problems),
        len(result.pending),
        f", {skipped} not applied (renames are off)" if skipped else "",
    )
    return Renamed(
        source.after_renames(reading, applied), replace(built, problems=problems), result, applied
    )


# ---------------------------------------------------------------- the sheet


@dataclass(frozen=True)
class SheetDone:
    """What the sheet step did: contract §8's `sheet` block and the part to remember."""

    block: dict[str, Any]
    part: dict[str, Any] | None = None  # None: nothing new to remember


def write_sheet(
    sheet: SheetReport | None,
    source: Source,
    built: Catalog,
    remembered: state.Part | None,
    now: datetime,
    *,
    unchanged: bool,
    skipped: str,
) -> SheetDone:
    """Write the report. On an unchanged drive, one Drive `files.get` says whether anyone
    wrote to the spreadsheet since our last write; only then is it read (and rewritten
    if it no longer shows the report) — contract §5.8."""
    nothing = SheetDone(dict(outcome.NOT_WRITTEN))
    if sheet is None:
        if unchanged:
            return nothing
        log.warning("sheet: %s; the sheet step is skipped", skipped)
        return SheetDone(dict(outcome.NOT_WRITTEN), {"skipped": True})
    last = remembered.data if remembered is not None else {}
    if not unchanged:
        published = sheet.publish(built, last.get("digest"), now, stamp_unchanged=True)
        version = sheet_version(sheet, source)
        return SheetDone(published.block(), {"digest": published.digest, "version": version})
    if last.get("skipped") or last.get("version") is None:
        if remembered is not None and not last.get("skipped"):
            log.debug("sheet: no remembered Drive version; hand edits are noticed on a changed run")
        return nothing
    version = source.sheet_version(sheet.key)
    if version is None or version == last["version"]:
        if version is None:
            log.info("sheet: Drive cannot see the spreadsheet; hand edits are not checked")
        return nothing
    log.warning(
        "sheet: written by someone else since the last run (Drive version %s → %s); "
        "checking the report",
        last["version"],
        version,
    )
    published = sheet.publish(built, last.get("digest"), now, stamp_unchanged=False)
    after = sheet_version(sheet, source) if published.written else version
    return SheetDone(published.block(), {**last, "digest": published.digest, "version": after})


def sheet_compared(sheet_plan: SheetPlan) -> dict[str, Any]:
    """A preview's `sheet` block: nothing written, and whether the sheet is up to date."""
    return {
        "written": False,
        "in_sync": sheet_plan.in_sync,
        "not_found": list(sheet_plan.report.not_found),
        "ambiguous": list(sheet_plan.report.ambiguous),
    }


def sheet_version(sheet: SheetReport, source: Source) -> str | None:
    """The spreadsheet's Drive `version` right after our write (None: cannot tell)."""
    try:
        return source.sheet_version(sheet.key)
    except RunError as exc:
        log.warning("sheet: cannot read the spreadsheet's Drive version (%s)", exc)
        return None
