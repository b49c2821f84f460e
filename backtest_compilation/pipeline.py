"""One run, top to bottom (contract §5): lock → state → read the drive → catalog →
MongoDB (plan, guard, apply) → renames → sheet → save.

The outside world arrives as `Services` (a tree source, the MongoDB store, the sheet
report, a clock), so tests hand in emulators and the demo a local folder and an
in-process database; the settings arrive as a `RunConfig` of plain values. Each step is
a function over values (`sinks`); a step that fails is recorded and the others still
run, and the state is saved after each step that succeeded, so the next run retries
exactly what failed. A dry run and `check` stop after planning. Whatever happens, the
run ends with one `outcome.RunSummary` and its `summary:` line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import catalog as catalog_mod
from . import google, lock, report, sinks, state, website
from .catalog import Catalog, RenameResult
from .errors import CHECK_FAILED, ConfigError, GuardRefused, RunError, ServiceError
from .outcome import (
    NO_CHANGES,
    NOT_WRITTEN,
    RunSummary,
    Timer,
    log_failure,
    log_problems,
    problem_key,
)
from .sources import Reading, Source

if TYPE_CHECKING:
    from .sheet import SheetReport
    from .store import Store

log = logging.getLogger(__name__)

Mode = Literal["sync", "dry-run", "check"]
__all__ = ["Options", "RunConfig", "RunSummary", "Services", "run"]


@dataclass(frozen=True)
class Options:
    """What the command line asked for."""

    mode: Mode = "sync"
    rename: bool = True
    allow_mass_delete: bool = False
    full_rescan: bool = False

    def renames_planned(self, rename_files: bool) -> bool:
        """Are renames on? `RENAME_FILES` and no `--no-rename` (the one place this is
        decided; a dry run and `check` plan them, only a sync applies them)."""
        return self.rename and rename_files

    def renames_applied(self, rename_files: bool) -> bool:
        """Does this run rename files (and so need the rights to)?"""
        return self.renames_planned(rename_files) and self.mode == "sync"


@dataclass(frozen=True)
class RunConfig:
    """The settings a run uses, as plain values (`cli.run_config` builds it)."""

    cache_dir: Path
    zone: tzinfo = UTC
    future_year_exempt: frozenset[str] = frozenset()
    rename_files: bool = True
    max_delete_fraction: float = 0.25
    run_timeout_s: float = 2700.0
    # What names the report (SHEET_URL's key, tabs, cells): part of the fingerprint.
    sheet_identity: tuple[str, ...] = ()


@dataclass
class Services:
    """The adapters a run talks to. `sheet` is None when `SHEET_URL` is unset."""

    source: Source
    store: Store
    sheet: SheetReport | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Why `sheet` is None, for the log line and the text report.
    sheet_skipped: str = "SHEET_URL is not set"
    # Where unexpected failures of a sink go besides the log (Sentry, from the CLI).
    report_error: Callable[[BaseException], None] = field(default=lambda exc: None)
    # The run's end (`RUN_TIMEOUT_S`), shared with the Google transports; None: from config.
    deadline: google.Deadline | None = None

    def calls(self) -> dict[str, int]:
        """API calls / round trips so far, per service (contract §8 `api_calls`)."""
        return {
            "drive": self.source.calls,
            "sheets": self.sheet.api_calls if self.sheet is not None else 0,
            "mongo": self.store.api_calls,
        }


@dataclass
class _Run:
    """What every step of one run is given (settings, adapters, the run's time, the
    state file), and its record so far: a run that stops early still reports it."""

    config: RunConfig
    options: Options
    services: Services
    timer: Timer
    summary: RunSummary
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    stage: str = "lock"
    held: lock.Holder | None = None

    def step(self, stage: str) -> None:
        self.stage = stage
        if self.held is not None:
            self.held.note(phase=stage)

    def done(self, **blocks: Any) -> None:
        self.summary = replace(self.summary, **blocks)

    def fingerprint(self, reading: Reading) -> str:
        """What a step's success was for: this tree, read with these settings.

        Settings that change the catalog or a step's output are part of it, so that
        turning renames on, pointing at another sheet or exempting a department is never
        skipped as "unchanged". The year is too: on New Year's Day last year's future
        files turn valid."""
        config = self.config
        return state.digest(
            {
                "tree": reading.fingerprint,
                "year": self.now.astimezone(config.zone).year,
                "future_year_exempt": sorted(config.future_year_exempt),
                "renames": self.options.renames_planned(config.rename_files),
                "sheet_on": self.services.sheet is not None,
                "sheet": list(config.sheet_identity),
            }
        )

    def finished(self) -> RunSummary:
        return replace(self.summary, api_calls=self.timer.calls(), timings_s=self.timer.done())

    def isolated(self, step: str, work: Callable[[], Any]) -> tuple[bool, Any]:
        """Run one step; a failure is recorded and logged, and the run goes on to the
        other steps. An expected failure (`RunError`) is logged as one line; anything
        else is a bug: logged at ERROR with its traceback (something to paste into a bug
        report) and sent to Sentry."""
        self.step(step)
        try:
            return True, work()
        except GuardRefused:
            raise  # decided before any step; only a concurrent edit could make it refuse
        except RunError as exc:
            log.error("%s: %s", step, exc)
            self.summary = self.summary.failed(step, exc)
        except Exception as exc:
            log.error(
                "%s: unexpected failure: %s: %s", step, type(exc).__name__, exc, exc_info=True
            )
            self.summary = self.summary.failed(step, exc)
            with contextlib.suppress(Exception):
                self.services.report_error(exc)
        return False, None

    def save(self, remembered: state.State) -> state.State:
        """Save the state after a step; a failure (a full disk) is the run's `state`
        failure, and the steps after still run and are reported."""
        try:
            return state.save(self.config.cache_dir, remembered)
        except RunError as exc:
            log.error("state: %s", exc)
            self.summary = self.summary.failed("state", exc)
        return remembered


def run(config: RunConfig, options: Options, services: Services) -> RunSummary:
    """One sync, dry run or check, under the run lock; returns its summary (failed
    steps included). A failure that stops the run before anything is written (the
    lock, the drive, MongoDB's read, the guard, the state file) or an interrupt is
    raised, with the run's record attached: `run` (the `RunSummary`) and `summary`
    (contract §8's object of what was done)."""
    it = _Run(config, options, services, Timer(services), RunSummary(options.mode))
    try:
        with lock.hold(config.cache_dir) as held, lock.noting_progress(held):
            it.held = held
            held.note(mode=options.mode, source=services.source.key)
            it.summary = _run(it)
    except BaseException as exc:
        summary = _stopped(it, exc)
        with contextlib.suppress(Exception):
            exc.summary = summary.summary  # type: ignore[attr-defined]
            exc.run = summary  # type: ignore[attr-defined]
        raise
    _end(it.summary)
    return it.summary


def _stopped(it: _Run, exc: BaseException) -> RunSummary:
    """The record of a run stopped by `exc` (logged once, here), ended by its line."""
    log_failure(exc)
    if isinstance(exc, Exception) and not isinstance(exc, RunError):  # a bug: to Sentry
        with contextlib.suppress(Exception):
            it.services.report_error(exc)
    summary = it.finished().failed(it.stage, exc)
    if "interrupted" in summary.failures:
        log.warning("%s: the run stops here", summary.failures["interrupted"])
    _end(summary)
    return summary


def _end(summary: RunSummary) -> None:
    """Every run ends with its `summary:` line."""
    if summary.mode == "check" and summary.exit_code == CHECK_FAILED:
        log.error("check: could not check (exit %d)", CHECK_FAILED)
    log.info("%s", summary.line())


def _run(it: _Run) -> RunSummary:
    """read the drive → catalog → MongoDB (plan, guard, apply) → renames → sheet → save."""
    it.step("state")
    remembered, warning = state.load(it.config.cache_dir, it.services.source.key)
    if warning:
        log.warning("%s", warning)
    it.now = it.services.clock()
    previous = remembered.problems
    # MongoDB is read while the drive is: neither waits for the other.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mongo-read")
    try:
        current = pool.submit(it.services.store.read_current)
        reading = _read(it, remembered)
        built, unchanged = _catalog(it, reading, remembered, current.result)
        planned = _plan_mongo(it, built, remembered, unchanged, current.result)
    finally:
        pool.shutdown(wait=False)
    if it.options.mode != "sync":
        return _preview(it, built, planned)
    if planned.refusal is not None:
        it.step("guard")
        raise GuardRefused(f"mass-delete guard: {planned.refusal}")
    remembered = _before_writes(it, remembered, planned, built, unchanged)
    deadline = it.services.deadline or google.Deadline(it.config.run_timeout_s)
    mongo_ok = _write_mongo(it, planned, deadline, unchanged)
    if not unchanged:
        reading, built, remembered = _rename(it, reading, built, remembered, previous, mongo_ok)
    remembered = _write_sheet(it, reading, built, remembered, deadline, unchanged)
    remembered = remembered.with_drive(reading.snapshot, it.now)
    if not it.summary.failures:
        remembered = remembered.succeeded(it.now)
    it.step("state")
    it.save(remembered)
    it.timer.lap("apply")
    return it.finished()


def _read(it: _Run, remembered: state.State) -> Reading:
    """1. The drive: its changes feed from the remembered token, or a full listing."""
    source = it.services.source
    it.step(source.name)
    reading = source.read(
        remembered.drive.data if remembered.drive else None,
        full_rescan=it.options.full_rescan,
        now=it.now,
    )
    log.info(
        "read: %s, %s, %.2f s (%d %s calls)",
        "full listing" if reading.full else "changes feed",
        "changed" if reading.changed else "unchanged",
        it.timer.lap("read"),
        source.calls,
        source.name,
    )
    it.done(drive={"changed": reading.changed, "full": reading.full})
    return reading


def _catalog(
    it: _Run,
    reading: Reading,
    remembered: state.State,
    current: Callable[[], website.Current],
) -> tuple[Catalog, bool]:
    """2. The catalog, and whether the drive is as the last fully successful run left
    it (then the catalog is the one remembered, not rebuilt)."""
    if it.options.mode == "sync" and not reading.changed and not reading.full:
        it.step("mongo")
        known = sinks.known_catalog(remembered, it.fingerprint(reading), current())
        if known is not None:
            lazy = isinstance(known, sinks.Remembered) and remembered.mongo is not None
            counts = remembered.mongo.data["counts"] if lazy else None  # type: ignore[union-attr]
            it.done(catalog=known, unchanged=True, counts=counts)
            return known, True
    it.step("catalog")
    built = catalog_mod.build(
        reading.tree,
        today=it.now.astimezone(it.config.zone).date(),
        future_year_exempt=it.config.future_year_exempt,
    )
    if built.root_too_deep:  # a configuration error whatever MongoDB holds (contract §7)
        setting = "FOLDER_ID" if it.services.source.name == "drive" else "--source"
        parent = it.services.source.root_parent()
        raise ConfigError(catalog_mod.too_deep_error(built, setting, parent))
    for ignored in built.ignored:
        log.debug("ignored: %s (%s)", ignored.path, ignored.reason)
    log.info(
        "catalog: %d departments, %d courses, %d problems, %d renames, %.2f s",
        len(built.course_codes),
        len(built.courses),
        len(built.problems),
        len(built.renames),
        it.timer.lap("catalog"),
    )
    it.done(catalog=built, problem_changes=log_problems(built.problems, remembered.problems))
    return built, False


def _plan_mongo(
    it: _Run,
    built: Catalog,
    remembered: state.State,
    unchanged: bool,
    current: Callable[[], website.Current],
) -> sinks.MongoPlan:
    """3. MongoDB's plan and the guard's answer (an unreachable server stops the run
    here, before any write)."""
    it.step("mongo")
    planned = sinks.plan_mongo(
        current(),
        built,
        remembered,
        it.now,
        max_delete_fraction=it.config.max_delete_fraction,
        allow_mass_delete=it.options.allow_mass_delete,
    )
    renames_on = it.options.renames_planned(it.config.rename_files)
    it.done(
        plan=planned.plan,
        refusal=planned.refusal,
        renames_planned=bool(renames_on and not unchanged and built.renames),
        sheet_skipped=it.services.sheet_skipped if it.services.sheet is None else None,
    )
    it.timer.lap("plan")
    return planned


def _preview(it: _Run, built: Catalog, planned: sinks.MongoPlan) -> RunSummary:
    """A dry run or `check`: compare the sheet too, write nothing anywhere."""
    sheet = it.services.sheet
    _, sheet_plan = it.isolated("sheet", lambda: sheet.plan(built) if sheet else None)
    it.done(
        mongo=report.mongo_block(planned.plan),
        sheet=sinks.sheet_compared(sheet_plan) if sheet_plan is not None else dict(NOT_WRITTEN),
        sheet_in_sync=sheet_plan.in_sync if sheet_plan is not None else None,
    )
    it.timer.lap("plan")
    return it.finished()


def _before_writes(
    it: _Run,
    remembered: state.State,
    planned: sinks.MongoPlan,
    built: Catalog,
    unchanged: bool,
) -> state.State:
    """The state saved before any write: a state file that cannot be written stops the
    run here (exit 1), before it changes anything the next run would not know about."""
    if unchanged and planned.plan.is_empty:
        if isinstance(built, sinks.Remembered):
            return remembered
        return sinks.seen_in_sync(remembered, planned.current)
    if unchanged:
        log.warning("mongo: drifted from the drive since the last run; repairing")
    # Only small facts (retired ids): snapshot.json is written once, after the renames.
    remembered = sinks.retire(remembered, planned, it.now)
    it.step("state")
    return state.save(it.config.cache_dir, remembered)


# What a step that the run's deadline stops says was not done.
_AFTER = {
    "mongo": "reading the drive; MongoDB was not updated",
    "sheet": "updating MongoDB; the sheet was not written",
}


def _in_time(deadline: google.Deadline, step: str, unchanged: bool) -> None:
    """`RUN_TIMEOUT_S`: no step starts once it passed (an unchanged run has no budget)."""
    if not unchanged and deadline.expired:
        raise deadline.error(_AFTER[step])


def _write_mongo(
    it: _Run, planned: sinks.MongoPlan, deadline: google.Deadline, unchanged: bool
) -> bool:
    """4. MongoDB: apply the plan; the `mongo` and `website` blocks say what it did."""
    store = it.services.store
    ok, applied = it.isolated(
        "mongo",
        lambda: _in_time(deadline, "mongo", unchanged) or sinks.apply_mongo(store, planned),
    )
    failure = it.summary.failures.get("mongo")
    website, block = sinks.mongo_told(planned, applied, failure, unchanged=unchanged)
    it.done(website=website, mongo=block)
    return ok


def _rename(
    it: _Run,
    reading: Reading,
    built: Catalog,
    remembered: state.State,
    previous: tuple[str, ...] | None,
    mongo_ok: bool,
) -> tuple[Reading, Catalog, state.State]:
    """5. Renames, then what they changed: the drive's names and the problems' messages
    (the sheet shows the names the drive has now); MongoDB's part is remembered with
    them (its plan did not depend on them)."""
    plan = built.renames if it.summary.renames_planned else ()
    done, got = it.isolated("renames", lambda: it.services.source.rename(plan))
    got = got or RenameResult()
    if got.refused:
        # The account may only read: the run fails (exit 1), said once, while MongoDB
        # and the sheet are still written with what the renames did.
        log.error("renames: %s", got.refused)
        it.summary = it.summary.failed("renames", ServiceError(got.refused))
    after = sinks.after_renames(it.services.source, reading, built, plan, got)
    reading, built = after.reading, after.built
    failed = log_problems(got.problems, previous, kinds="renames") if plan else NO_CHANGES
    changes = it.summary.problem_changes
    it.done(
        catalog=built,
        applied=frozenset(r.id for r in after.applied),
        pending=got.pending,
        problem_changes={k: changes[k] + failed[k] for k in NO_CHANGES},
    )
    key = it.fingerprint(reading)
    remembered = remembered.with_drive(reading.snapshot, it.now).with_problems(
        problem_key(p) for p in built.problems
    )
    if done and not got.problems and not got.pending:
        remembered = remembered.with_sink("renames", {"fingerprint": key}, it.now)
    if mongo_ok:
        remembered = remembered.with_sink("mongo", sinks.mongo_part(built, key), it.now)
    return reading, built, it.save(remembered)


def _write_sheet(
    it: _Run,
    reading: Reading,
    built: Catalog,
    remembered: state.State,
    deadline: google.Deadline,
    unchanged: bool,
) -> state.State:
    """6. The sheet (on an unchanged drive, only when someone else wrote to it)."""
    services = it.services
    ok, wrote = it.isolated(
        "sheet",
        lambda: (
            _in_time(deadline, "sheet", unchanged)
            or sinks.write_sheet(
                services.sheet,
                services.source,
                built,
                remembered.sheet,
                it.now,
                unchanged=unchanged,
                skipped=services.sheet_skipped,
            )
        ),
    )
    it.done(sheet=wrote.block if ok else dict(NOT_WRITTEN))
    if not ok or wrote.part is None:
        return remembered
    part = wrote.part if unchanged else {"fingerprint": it.fingerprint(reading), **wrote.part}
    return remembered.with_sink("sheet", part, it.now)
