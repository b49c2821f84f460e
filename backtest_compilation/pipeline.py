"""One run, top to bottom (contract §5): lock → state → read the drive → catalog →
MongoDB (plan, guard, apply) → renames → sheet → save.

A sink (MongoDB, renames, the sheet) that fails is recorded and the others still run;
the state is saved after each one that succeeded, so the next run retries exactly what
failed. A dry run and `check` stop after planning.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from bson import ObjectId

from . import catalog as catalog_mod
from . import google, lock, outcome, report, state, website
from .catalog import Catalog, RenameResult
from .errors import CHECK_FAILED, ConfigError, GuardRefused, RunError, ServiceError
from .outcome import Interrupted, RunSummary
from .sources import Reading, Source

if TYPE_CHECKING:
    from .sheet import SheetReport
    from .store import Store

log = logging.getLogger(__name__)

Mode = Literal["sync", "dry-run", "check"]
__all__ = ["Options", "RunConfig", "RunSummary", "Services", "run"]

# How long a removed course's `_id` is kept for its folder's return (links survive).
RETIRED_ID_DAYS = 30


@dataclass(frozen=True)
class Options:
    """What the command line asked for (only a sync applies renames)."""

    mode: Mode = "sync"
    rename: bool = True
    allow_mass_delete: bool = False
    full_rescan: bool = False


@dataclass(frozen=True)
class RunConfig:
    """The settings a run uses (`adapters.run_config` builds it)."""

    cache_dir: Path
    zone: tzinfo = UTC
    future_year_exempt: frozenset[str] = frozenset()
    rename_files: bool = True
    max_delete_fraction: float = 0.25
    run_timeout_s: float = 2700.0
    sheet_identity: tuple[str, ...] = ()


@dataclass
class Services:
    """The adapters a run talks to. `sheet` is None when `SHEET_URL` is unset."""

    source: Source
    store: Store
    sheet: SheetReport | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sheet_skipped: str = "SHEET_URL is not set"  # why `sheet` is None
    deadline: google.Deadline | None = None  # shared with the transports; None: RUN_TIMEOUT_S

    def calls(self) -> dict[str, int]:
        """API calls / round trips so far, per service (contract §8 `api_calls`)."""
        sheets = self.sheet.api_calls if self.sheet is not None else 0
        return {"drive": self.source.calls, "sheets": sheets, "mongo": self.store.api_calls}


@dataclass
class _Run:
    """One run's settings, adapters and record so far."""

    config: RunConfig
    options: Options
    services: Services
    blocks: dict[str, Any] = field(default_factory=dict)  # `RunSummary` fields
    failures: dict[str, BaseException] = field(default_factory=dict)
    stage: str = "lock"
    held: lock.Holder | None = None
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.mark, self.now = self.started, self.services.clock()
        self.calls_before = self.services.calls()  # services may outlive a run (the demo)
        self.deadline = self.services.deadline or google.Deadline(self.config.run_timeout_s)
        self.unchanged = False  # the drive is as the last fully successful run left it

    def step(self, stage: str) -> None:
        self.stage = stage
        if self.held is not None:
            self.held.note(phase=stage)

    def lap(self, phase: str) -> float:
        """Add the time since the last lap to `phase`'s timing; returns it."""
        now = time.perf_counter()
        self.timings[phase] = round(self.timings.get(phase, 0.0) + now - self.mark, 3)
        self.mark = now
        return self.timings[phase]

    def fingerprint(self, reading: Reading) -> str:
        """The tree, settings and year a sink's success was for (a new year: future files)."""
        return state.digest(
            {
                "tree": reading.fingerprint,
                "year": self.now.astimezone(self.config.zone).year,
                "future_year_exempt": sorted(self.config.future_year_exempt),
                "renames": self.options.rename and self.config.rename_files,
                "sheet_on": self.services.sheet is not None,
                "sheet": list(self.config.sheet_identity),
            }
        )

    def summary(self) -> RunSummary:
        now = self.services.calls()
        calls = {name: now[name] - self.calls_before[name] for name in now}
        timings = {**self.timings, "total": round(time.perf_counter() - self.started, 3)}
        blocks = {**self.blocks, "unchanged": self.unchanged, "failures": dict(self.failures)}
        return RunSummary(self.options.mode, **blocks, api_calls=calls, timings_s=timings)

    @contextlib.contextmanager
    def isolated(self, step: str) -> Iterator[None]:
        """A sink: a failure is recorded and logged (a bug with its traceback); the run goes on."""
        self.step(step)
        try:
            yield
        except Exception as exc:
            self.failures[step] = exc
            bug = not isinstance(exc, RunError)
            log.error("%s: %s", step, outcome.failure_text(exc), exc_info=bug)

    def save(self, remembered: state.State) -> state.State:
        """Save the state; a failure (a full disk) is the run's `state` failure."""
        with self.isolated("state"):
            return state.save(self.config.cache_dir, remembered)
        return remembered


def run(config: RunConfig, options: Options, services: Services) -> RunSummary:
    """One sync, dry run or check under the run lock: its summary, however it ends."""
    it = _Run(config, options, services)
    try:
        with lock.hold(config.cache_dir) as held:
            it.held = held
            held.note(mode=options.mode, source=services.source.key)
            _run(it)
    except (Exception, KeyboardInterrupt, Interrupted) as exc:
        outcome.log_failure(exc)
        summary = it.summary().failed(it.stage, exc)
        if "interrupted" in summary.failures:
            log.warning("%s: the run stops here", summary.failures["interrupted"])
    else:
        summary = it.summary()
    if summary.mode == "check" and summary.exit_code == CHECK_FAILED:
        log.error("check: could not check (exit %d)", CHECK_FAILED)
    log.info("%s", summary.line())
    return summary


def _run(it: _Run) -> None:
    it.step("state")
    remembered, warning = state.load(it.config.cache_dir, it.services.source.key)
    if warning:
        log.warning("%s", warning)
    reading = _read(it, remembered)
    read_current = functools.cache(it.services.store.read_current)  # after the catalog
    built = _catalog(it, reading, remembered, read_current)
    it.step("mongo")
    current = read_current()
    plan = _plan_mongo(it, built, remembered, current)
    if it.options.mode != "sync":
        return _preview(it, built, plan)
    if it.blocks["refusal"] is not None:
        it.step("guard")
        raise GuardRefused(f"mass-delete guard: {it.blocks['refusal']}")
    remembered = _before_writes(it, remembered, plan, current, built)
    _write_mongo(it, plan)
    if not it.unchanged:
        reading, built, renames_ok = _rename(it, reading, built, remembered.problems)
        remembered = _remember(it, reading, built, remembered, renames_ok)
    remembered = _write_sheet(it, it.fingerprint(reading), built, remembered)
    remembered = replace(remembered, drive=reading.snapshot)
    if not it.failures:
        remembered = remembered.succeeded(it.now)
    it.save(remembered)
    it.lap("apply")


def _read(it: _Run, remembered: state.State) -> Reading:
    """1. The drive: its changes feed from the remembered token, or a full listing."""
    source = it.services.source
    it.step(source.name)
    reading = source.read(remembered.drive, full_rescan=it.options.full_rescan, now=it.now)
    how = "full listing" if reading.full else "changes feed"
    what = "changed" if reading.changed else "unchanged"
    log.info(
        "read: %s, %s, %.2f s (%d %s calls)", how, what, it.lap("read"), source.calls, source.name
    )
    it.blocks["drive"] = {"changed": reading.changed, "full": reading.full}
    return reading


def _catalog(
    it: _Run, reading: Reading, remembered: state.State, current: Callable[[], website.Current]
) -> Catalog:
    """2. The catalog; the one remembered if the drive is unchanged (`it.unchanged`)."""
    if it.options.mode == "sync" and not reading.changed and not reading.full:
        it.step("mongo")
        known = _known_catalog(remembered, it.fingerprint(reading), current())
        if known is not None:
            it.unchanged = True
            counts = known.data["counts"] if isinstance(known, Remembered) else None
            it.blocks.update(catalog=known, counts=counts)
            return known
    it.step("catalog")
    today = it.now.astimezone(it.config.zone).date()
    exempt = it.config.future_year_exempt
    built = catalog_mod.build(reading.tree, today=today, future_year_exempt=exempt)
    if built.root_too_deep:  # a configuration error whatever MongoDB holds (contract §7)
        setting = "FOLDER_ID" if it.services.source.name == "drive" else "--source"
        parent = it.services.source.root_parent()
        raise ConfigError(catalog_mod.too_deep_error(built, setting, parent))
    for ignored in built.ignored:
        log.debug("ignored: %s (%s)", ignored.path, ignored.reason)
    log.info(
        "catalog: %d departments, %d courses, %d problems, %d renames, %.2f s",
        *map(len, (built.course_codes, built.courses, built.problems, built.renames)),
        it.lap("catalog"),
    )
    changes = outcome.log_problems(built.problems, remembered.problems)
    it.blocks.update(catalog=built, problem_changes=changes)
    return built


def _plan_mongo(
    it: _Run, built: Catalog, remembered: state.State, current: website.Current
) -> website.Plan:
    """3. The writes that make MongoDB show `built`; the mass-delete guard's answer."""
    refusal = None
    if isinstance(built, Remembered):  # MongoDB is as an earlier unchanged run found it
        plan = website.Plan(existing_courses=len(current.courses))
    else:
        kept = remembered.with_retired({}, it.now, days=RETIRED_ID_DAYS).retired_ids
        reuse = {f: ObjectId(e["id"]) for f, e in kept.items() if ObjectId.is_valid(e["id"])}
        plan = website.plan(built, current, reuse=reuse)  # a returning folder's old `_id`
        # The departments of the last run matter only to an empty catalog (and are big).
        published = remembered.mongo.get("catalog", {}) if remembered.mongo else {}
        had = () if built.departments or built.courses else published.get("course_codes", [])
        hint = catalog_mod.guard_hint(built, had)
        if not it.options.allow_mass_delete:
            fraction = it.config.max_delete_fraction
            refusal = website.guard_refusal(plan, max_delete_fraction=fraction, hint=hint)
        if hint and refusal is None:
            log.warning("%s", hint)
    renames = it.options.rename and it.config.rename_files and not it.unchanged
    it.blocks.update(plan=plan, refusal=refusal, renames_planned=bool(renames and built.renames))
    if it.services.sheet is None:
        it.blocks["sheet_skipped"] = it.services.sheet_skipped
    it.lap("plan")
    return plan


def _preview(it: _Run, built: Catalog, plan: website.Plan) -> None:
    """A dry run or `check`: compare the sheet too, write nothing anywhere."""
    sheet, block = it.services.sheet, dict(outcome.NOT_WRITTEN)
    with it.isolated("sheet"):
        if sheet is not None:
            got = sheet.plan(built)
            block.update(not_found=list(got.report.not_found), in_sync=got.in_sync)
            block["ambiguous"] = list(got.report.ambiguous)
    it.blocks.update(mongo=report.mongo_block(plan), sheet=block)
    it.lap("plan")


def _before_writes(
    it: _Run, remembered: state.State, plan: website.Plan, current: website.Current, built: Catalog
) -> state.State:
    """The state saved before any write (failing stops the run, exit 1). Courses leaving
    the website keep their `_id`s a while: a folder that comes back gets its own back."""
    if it.unchanged and plan.is_empty:
        part = remembered.mongo
        if isinstance(built, Remembered) or part is None:
            return remembered
        # MongoDB shows the remembered catalog: the next unchanged run compares a digest.
        return replace(remembered, mongo=state.replaced(part, website=_website_digest(current)))
    if it.unchanged:
        log.warning("mongo: drifted from the drive since the last run; repairing")
    kept = {c.folder_id for c in (*plan.courses_to_add, *plan.courses_to_update)}
    folder_of = {website.id_order(d.id): d.folder_id for d in current.courses}
    leaving = {folder_of.get(website.id_order(r.id)): r.id for r in plan.courses_to_remove}
    retiring = {f: i for f, i in leaving.items() if f and f not in kept and isinstance(i, ObjectId)}
    remembered = remembered.with_retired(retiring, it.now, days=RETIRED_ID_DAYS)
    it.step("state")
    return state.save(it.config.cache_dir, remembered)


def _write_mongo(it: _Run, plan: website.Plan) -> None:
    """4. MongoDB: apply the plan; the blocks say what it did, also if it failed part-way."""
    applied = website.Applied(complete=False)  # unless the store or its error says more
    with it.isolated("mongo"):
        if not it.unchanged and it.deadline.expired:  # an unchanged run has no deadline
            raise it.deadline.error("reading the drive; MongoDB was not updated")
        applied = it.services.store.apply(plan)
    applied = getattr(it.failures.get("mongo"), "applied", None) or applied
    changes = outcome.website_changes(plan, applied)
    it.blocks.update(website=changes, mongo=report.mongo_block(plan, applied))


def _rename(
    it: _Run, reading: Reading, built: Catalog, previous: Sequence[str] | None
) -> tuple[Reading, Catalog, bool]:
    """5. Renames; the drive's names and problems as they left them; True if all were done."""
    plan = built.renames if it.blocks["renames_planned"] else ()
    got = RenameResult()
    with it.isolated("renames"):
        got = it.services.source.rename(plan)
    done = "renames" not in it.failures and not got.problems and not got.pending
    if got.refused:
        # A read-only account: the run fails (exit 1); MongoDB and the sheet are still written.
        log.error("renames: %s", got.refused)
        it.failures["renames"] = ServiceError(got.refused)
    applied = tuple(r for r in plan if r.id in got.applied)
    renamed = [f"{outcome.one_line(r.path)} → {outcome.one_line(r.new)}" for r in applied]
    outcome.log_list("renamed", renamed)
    problems = catalog_mod.problems_after_renames((*built.problems, *got.problems), applied)
    built = replace(built, problems=problems)
    skipped = len(built.renames) - len(plan)
    off = f", {skipped} not applied (renames are off)" if skipped else ""
    counts = (len(applied), len(got.problems), len(got.pending))
    log.info("renames: %d applied, %d failed, %d pending%s", *counts, off)
    failed = outcome.log_problems(got.problems, previous, kinds="renames") if plan else {}
    changes = {k: n + failed.get(k, 0) for k, n in it.blocks["problem_changes"].items()}
    it.blocks.update(
        catalog=built, applied=got.applied, pending=got.pending, problem_changes=changes
    )
    return it.services.source.after_renames(reading, applied), built, done


def _remember(
    it: _Run, reading: Reading, built: Catalog, remembered: state.State, renames_ok: bool
) -> state.State:
    """Save the drive as renamed, its problems, and what MongoDB was made to show: an
    unchanged drive then needs no catalog (counts in state.json, blocks in snapshot.json)."""
    key = it.fingerprint(reading)
    remembered = replace(remembered, drive=reading.snapshot)
    remembered = remembered.with_problems(outcome.problem_key(p) for p in built.problems)
    if renames_ok:
        remembered = replace(remembered, renames={"fingerprint": key})
    if "mongo" not in it.failures:  # MongoDB's plan did not depend on the renames
        counts = {"departments": len(built.course_codes), "courses": len(built.courses)}
        part = {
            "fingerprint": key,
            "counts": {**counts, "problems": len(built.problems)},
            "catalog": report.catalog_block(built),
            "problems": report.problems_block(built),
        }
        remembered = replace(remembered, mongo=part)
    return it.save(remembered)


def _write_sheet(it: _Run, key: str, built: Catalog, remembered: state.State) -> state.State:
    """6. The sheet. On an unchanged drive it is read (and rewritten if it no longer shows
    the report) only if Drive says someone wrote to it since our last write (§5.8)."""
    sheet, part, published = it.services.sheet, None, None
    last = dict(remembered.sheet or {})
    with it.isolated("sheet"):
        if not it.unchanged and it.deadline.expired:
            raise it.deadline.error("updating MongoDB; the sheet was not written")
        if sheet is None and not it.unchanged:
            log.warning("sheet: %s; the sheet step is skipped", it.services.sheet_skipped)
            part = {"skipped": True}
        elif sheet is not None and (not it.unchanged or _edited_by_hand(it, sheet, last)):
            stamp = not it.unchanged
            published = sheet.publish(built, last.get("digest"), it.now, stamp_unchanged=stamp)
            part = {"digest": published.digest, "version": None}  # None: Drive cannot tell
            try:  # Drive's version right after our write: not mistaken for a hand edit
                part["version"] = it.services.source.sheet_version(sheet.key)
            except RunError as exc:
                log.warning("sheet: cannot read the spreadsheet's Drive version (%s)", exc)
    ok = "sheet" not in it.failures
    it.blocks["sheet"] = published.block() if published and ok else dict(outcome.NOT_WRITTEN)
    if not (part and ok):
        return remembered
    return replace(remembered, sheet={**part, "fingerprint": key})


def _edited_by_hand(it: _Run, sheet: SheetReport, last: dict[str, Any]) -> bool:
    """Whether someone else wrote to the spreadsheet since our last write (Drive's version)."""
    if last.get("version") is None:  # skipped, or Drive could not tell
        return False
    version = it.services.source.sheet_version(sheet.key)
    if version is None:
        log.info("sheet: Drive cannot see the spreadsheet; hand edits are not checked")
    elif version != last["version"]:
        log.warning("sheet: written by someone else since the last run; checking the report")
    return version not in (None, last["version"])


def _website_digest(current: website.Current) -> str:
    """A digest of what MongoDB holds (frozen documents in `_id` order: their text is stable)."""
    return hashlib.sha256(repr(current).encode("utf-8", "surrogatepass")).hexdigest()


class Remembered:
    """The catalog the last run published, read from snapshot.json on first use (if ever)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data, self.built = data, None

    def load(self) -> Catalog:
        if self.built is None:
            self.built = report.catalog_from_blocks(self.data["catalog"], self.data["problems"])
        return self.built

    def __getattr__(self, name: str) -> Any:
        return getattr(self.load(), name)


def _known_catalog(remembered: state.State, key: str, current: website.Current) -> Catalog | None:
    """The catalog the last run published, if every sink succeeded for this very tree; a
    `Remembered` (not read) while MongoDB holds what an earlier unchanged run found."""
    parts = (remembered.renames, remembered.mongo, remembered.sheet)
    if any(p is None or p.get("fingerprint") != key for p in parts):
        return None
    known = Remembered(remembered.mongo or {})
    if known.data.get("website") == _website_digest(current):
        return cast(Catalog, known)
    try:
        return known.load()
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("state: remembered catalog unusable (%s); rebuilding it", exc)
        return None
