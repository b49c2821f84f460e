"""One run, top to bottom: source → catalog → plan → apply → remember (contract §5).

The outside world arrives as `Services` (a tree source, the MongoDB store, the sheet
report, a clock), so tests hand in emulators and the demo hands in a local folder and
an in-process database; the settings arrive as a `RunConfig` of plain values. The three
sinks (`sinks.Renames`, `sinks.Mongo`, `sinks.Sheet`) have one shape, so `sync`,
`--dry-run` and `check` are one loop whose mode decides, per sink, whether it is only
planned (compared) or applied (a sync) — each on its own: one failing does not undo or
stop the others — saving the state after each, so the next run retries exactly what
failed. `outcome.RunSummary` says what happened and decides the exit code.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import catalog as catalog_mod
from . import google, lock, outcome, report, state
from .background import Background
from .catalog import Catalog
from .errors import ConfigError, GuardRefused, RunError
from .outcome import Progress, RunSummary, Timer, summary_line
from .sinks import Context, Mongo, MongoPlan, Renames, Sheet
from .sources import Reading, Source

if TYPE_CHECKING:
    from .sheet import SheetPlan, SheetReport
    from .store import Store

log = logging.getLogger(__name__)

Mode = Literal["sync", "dry-run", "check"]
__all__ = ["Options", "Outcome", "RunConfig", "Services", "run", "summary_line"]


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


@dataclass(frozen=True)
class Outcome:
    """What a run did: its typed summary, and contract §8's object rendered from it."""

    run: RunSummary
    summary: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "summary", self.run.to_json())

    @property
    def exit_code(self) -> int:
        return self.run.exit_code

    @property
    def text(self) -> str:
        """What the run says to people (contract §8's text output)."""
        return self.run.text()

    @property
    def catalog(self) -> Catalog:
        return self.run.catalog

    @property
    def mongo_lines(self) -> tuple[str, ...]:
        return self.run.mongo_lines()

    @property
    def renames_applied(self) -> frozenset[str]:
        return self.run.applied


def run(config: RunConfig, options: Options, services: Services) -> Outcome:
    """One sync, dry run or check, under the run lock. Raises `RunError` subclasses for
    failures that stop the run before anything is written (exit 1, 2, 3 or 4); the
    error's `summary` then holds what was known (contract §8, `ok: false`)."""
    progress = Progress(options.mode, Timer(services))
    try:
        with lock.hold(config.cache_dir):
            return _run(config, options, services, progress)
    except RunError as exc:
        if exc.summary is None:
            exc.summary = progress.failure_summary(exc, exc.exit_code)
        raise
    except Exception as exc:
        # A bug outside the sinks: the CLI logs it with its traceback; the summary
        # still says how far the run got.
        with contextlib.suppress(Exception):
            exc.summary = progress.failure_summary(exc, RunError.exit_code)  # type: ignore[attr-defined]
        raise


def _run(config: RunConfig, options: Options, services: Services, progress: Progress) -> Outcome:
    timer = progress.timer
    path = state.path_in(config.cache_dir)
    progress.stage = "state"
    remembered, warning = state.load(path, services.source.key)
    if warning:
        log.warning("%s", warning)
    now = services.clock()
    mongo = Mongo(
        services.store,
        max_delete_fraction=config.max_delete_fraction,
        allow_mass_delete=options.allow_mass_delete,
    )
    # MongoDB is read while the drive is: neither waits for the other (it is planned in 3).
    mongo.start_reading()

    # 1. source
    progress.stage = services.source.name
    reading = services.source.read(
        remembered.drive.data if remembered.drive else None,
        full_rescan=options.full_rescan,
        now=now,
    )
    log.info(
        "read: %s, %s, %.2f s (%d %s calls)",
        "full listing" if reading.full else "changes feed",
        "changed" if reading.changed else "unchanged",
        timer.lap("read"),
        services.source.calls,
        services.source.name,
    )
    progress.extra["drive"] = {"changed": reading.changed, "full": reading.full}
    sheet_on = services.sheet is not None
    today = now.astimezone(config.zone).date()

    def build(got: Reading) -> Catalog:
        return catalog_mod.build(
            got.tree, today=today, future_year_exempt=config.future_year_exempt
        )

    ctx = Context(
        built=Catalog(),
        reading=reading,
        remembered=remembered,
        now=now,
        fingerprint=lambda got: _fingerprint(config, options, got, now, sheet_on=sheet_on),
        renames_on=options.renames_planned(config.rename_files),
    )

    # 2. catalog: remembered when the drive is as the last successful run left it
    known = None
    if options.mode == "sync" and not reading.changed and not reading.full:
        known = _known_catalog(remembered, ctx.fingerprint(reading))
    if known is not None:
        ctx.built, ctx.unchanged = known, True
        ctx.notes["problem_changes"] = {"new": 0, "resolved": 0}
    else:
        progress.stage = "catalog"
        ctx.built = build(reading)
        if ctx.built.root_too_deep:  # a configuration error whatever MongoDB holds (§7)
            setting = "FOLDER_ID" if services.source.name == "drive" else "--source"
            parent = services.source.root_parent()
            raise ConfigError(catalog_mod.too_deep_error(ctx.built, setting, parent))
        progress.built = ctx.built
        ctx.notes["problem_changes"] = outcome.log_problems(ctx.built.problems, remembered.problems)
        progress.extra["problem_changes"] = ctx.notes["problem_changes"]
        for ignored in ctx.built.ignored:
            log.debug("ignored: %s (%s)", ignored.path, ignored.reason)
        log.info(
            "catalog: %d departments, %d courses, %d problems, %d renames, %.2f s",
            len(ctx.built.course_codes),
            len(ctx.built.courses),
            len(ctx.built.problems),
            len(ctx.built.renames),
            timer.lap("catalog"),
        )
    progress.built = ctx.built

    # 3. plan every sink (MongoDB is read: an unreachable server stops the run here)
    renames = Renames(services.source)
    sheet = Sheet(services.sheet, services.source, services.sheet_skipped)
    progress.stage = "mongo"
    # The sheet is planned in the loop: a sync plans it in `apply`, after the renames.
    plans: dict[str, Any] = {"renames": renames.plan(ctx), "mongo": mongo.plan(ctx)}
    timer.lap("plan")
    refusal = plans["mongo"].refusal
    applying = options.mode == "sync"
    if applying and refusal is not None:
        # Logged once, by whoever catches it (the CLI), not here as well.
        progress.stage = "guard"
        raise GuardRefused(f"mass-delete guard: {refusal}")
    remembered = ctx.remembered
    if applying:
        remembered = _before_writes(ctx, plans["mongo"], mongo, path, progress)
    deadline = services.deadline or google.Deadline(config.run_timeout_s)

    # 4. each sink on its own: a sync applies it and remembers what it did (saving the
    # state after each); a dry run and `check` only plan (compare) what is left.
    results: dict[str, Any] = {}

    def work(sink: Any) -> Callable[[], tuple[bool, Any]]:
        def apply() -> Any:
            if sink.name in _AFTER and not ctx.unchanged and deadline.expired:
                raise deadline.error(_AFTER[sink.name])  # RUN_TIMEOUT_S: no sink starts
            return sink.apply(plans.get(sink.name), ctx)

        return lambda: _isolated(sink.name, apply, ctx.failures, services)

    # MongoDB's plan does not depend on the renames (the sheet's does): it is written
    # while they run, in a thread of its own, and remembered after them in the usual order.
    early = Background(work(mongo), "mongo-write") if applying and plans["renames"] else None
    for sink in (renames, mongo, sheet):
        plan = plans.get(sink.name)
        if not applying:
            progress.stage = sink.name
            if sink.name not in plans:
                _, plans[sink.name] = _isolated(
                    sink.name, lambda s=sink: s.plan(ctx), ctx.failures, services
                )
            continue
        ok, results[sink.name] = early.result() if sink is mongo and early else work(sink)()
        remembered = sink.remember(remembered, plan, results[sink.name] if ok else None, ctx)
        # The sheet's part is saved with the run's end, just below.
        if not ctx.unchanged and sink is not sheet and (ok or sink is renames):
            progress.stage = "state"
            state.save(path, remembered)
    timer.lap("apply" if applying else "plan")

    # 5. remember the run (a sync), and say what happened
    if applying:
        remembered = remembered.with_drive(ctx.reading.snapshot, now)
        if not ctx.failures:
            remembered = remembered.succeeded(now)
        progress.stage = "state"
        state.save(path, remembered)
    sheet_plan = plans.get("sheet")
    sheet_result = results.get("sheet")
    summary = RunSummary(
        options.mode,
        ctx.built,
        plans["mongo"].plan,
        mongo=ctx.notes["mongo"] if applying else report.mongo_block(plans["mongo"].plan),
        sheet=sheet_result.block
        if sheet_result is not None
        else _compared(sheet_plan)
        if sheet_plan is not None
        else dict(outcome.NOT_WRITTEN),
        api_calls=timer.calls(),
        timings_s=timer.done(),
        drive={"changed": ctx.reading.changed, "full": ctx.reading.full},
        problem_changes=ctx.notes["problem_changes"],
        failures=ctx.failures,
        refusal=refusal,
        renames_planned=bool(plans["renames"]),
        sheet_in_sync=sheet_plan.in_sync if sheet_plan is not None else None,
        sheet_skipped=services.sheet_skipped if services.sheet is None else None,
        unchanged=ctx.unchanged,
        website=ctx.notes.get("website", {}),
        applied=ctx.notes.get("renames_applied", frozenset()),
        pending=ctx.notes.get("renames_pending", frozenset())
        if applying and not ctx.unchanged
        else None,
    )
    done = Outcome(summary)
    # From the object already rendered: at 6,000 courses each rendering is ~0.1 s.
    log.info("%s", summary_line(done.summary))
    return done


# What a sink that the run's deadline stops says was not done.
_AFTER = {
    "mongo": "reading the drive; MongoDB was not updated",
    "sheet": "updating MongoDB; the sheet was not written",
}


def _before_writes(
    ctx: Context, planned: MongoPlan, mongo: Mongo, path: Path, progress: Progress
) -> state.State:
    """The state saved before any sink writes: a state file that cannot be written stops
    the run here (exit 1), before it changes anything the next run would not know about."""
    remembered = ctx.remembered
    if ctx.unchanged and not planned.plan.is_empty:
        log.warning("mongo: drifted from the drive since the last run; repairing")
    if not ctx.unchanged or not planned.plan.is_empty:
        if not ctx.unchanged:
            remembered = remembered.with_drive(ctx.reading.snapshot, ctx.now).with_problems(
                outcome.problem_key(p) for p in ctx.built.problems
            )
        remembered = mongo.retire(remembered, planned, ctx.now)
        progress.stage = "state"
        state.save(path, remembered)
    return remembered


def _compared(sheet_plan: SheetPlan) -> dict[str, Any]:
    """A preview's `sheet` block: nothing written, and whether the sheet is up to date."""
    return {
        "written": False,
        "in_sync": sheet_plan.in_sync,
        "not_found": list(sheet_plan.report.not_found),
        "ambiguous": list(sheet_plan.report.ambiguous),
    }


def _isolated(
    sink: str,
    work: Callable[[], Any],
    failures: dict[str, BaseException],
    services: Services,
) -> tuple[bool, Any]:
    """Run one sink; a failure is recorded in `failures` and logged, and the run goes on
    to the other sinks. An expected failure (`RunError`) is logged as one line; anything
    else is a bug: logged at ERROR with its traceback (something to paste into a bug
    report) and sent to Sentry."""
    try:
        return True, work()
    except GuardRefused:
        raise  # checked before any sink; only a concurrent edit could make it refuse now
    except RunError as exc:
        failures[sink] = exc
        log.error("%s: %s", sink, exc)
    except Exception as exc:
        failures[sink] = exc
        log.error("%s: unexpected failure: %s: %s", sink, type(exc).__name__, exc, exc_info=True)
        with contextlib.suppress(Exception):
            services.report_error(exc)
    return False, None


def _fingerprint(
    config: RunConfig, options: Options, reading: Reading, now: datetime, *, sheet_on: bool
) -> str:
    """What a sink's success was for: this tree, read with these settings.

    Settings that change the catalog or a sink's output are part of it, so that turning
    renames on, pointing at another sheet or exempting a department is never skipped as
    "unchanged". The year is too: on New Year's Day last year's future files turn valid."""
    return state.digest(
        {
            "tree": reading.fingerprint,
            "year": now.astimezone(config.zone).year,
            "future_year_exempt": sorted(config.future_year_exempt),
            "renames": options.renames_planned(config.rename_files),
            "sheet_on": sheet_on,
            "sheet": list(config.sheet_identity),
        }
    )


def _known_catalog(remembered: state.State, fingerprint: str) -> Catalog | None:
    """The catalog the last run published, if every sink succeeded for this very tree."""
    parts = (remembered.renames, remembered.mongo, remembered.sheet)
    if any(p is None or p.data.get("fingerprint") != fingerprint for p in parts):
        return None
    assert remembered.mongo is not None
    try:
        return report.catalog_from_blocks(
            remembered.mongo.data["catalog"], remembered.mongo.data.get("problems", [])
        )
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("state: remembered catalog unusable (%s); rebuilding it", exc)
        return None
