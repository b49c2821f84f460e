"""One run, top to bottom: source → catalog → plan → apply → remember (contract §5).

The outside world arrives as `Services` (a tree source, the MongoDB store, the sheet
report, a clock), so tests hand in emulators and the demo hands in a local folder and
an in-process database. Each sink (renames, MongoDB, sheet) is applied independently:
one failing does not undo or stop the others, and only a sink that succeeded has its
part of the state file updated, so the next run retries exactly what failed.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from bson import ObjectId

from . import catalog as catalog_mod
from . import google, lock, report, state, website
from .catalog import Catalog, RenameResult
from .errors import CHECK_FAILED, ConfigError, GuardRefused, RunError
from .settings import Settings
from .sources import Reading, Source

if TYPE_CHECKING:
    from .sheet import SheetReport
    from .store import Store

log = logging.getLogger(__name__)

Mode = Literal["sync", "dry-run", "check"]


@dataclass(frozen=True)
class Options:
    """What the command line asked for."""

    mode: Mode = "sync"
    rename: bool = True
    allow_mass_delete: bool = False
    full_rescan: bool = False


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
    # The run's end (`RUN_TIMEOUT_S`), shared with the Google transports; None: from settings.
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
    """What a run did: the exit code, contract §8's summary, and text for people."""

    exit_code: int
    summary: dict[str, Any]
    text: str
    catalog: Catalog
    mongo_lines: tuple[str, ...] = ()
    renames_applied: frozenset[str] = frozenset()


class _Timer:
    """Phase timings for the summary (`timings_s`)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.calls_before = services.calls()
        self.started = time.perf_counter()
        self.mark = self.started
        self.phases: dict[str, float] = {}

    def lap(self, phase: str) -> float:
        now = time.perf_counter()
        self.phases[phase] = round(self.phases.get(phase, 0.0) + now - self.mark, 3)
        self.mark = now
        return self.phases[phase]

    def done(self) -> dict[str, float]:
        return {**self.phases, "total": round(time.perf_counter() - self.started, 3)}

    def calls(self) -> dict[str, int]:
        """Calls made by this run only (services may outlive a run, as in the demo)."""
        now = self.services.calls()
        return {name: now[name] - self.calls_before[name] for name in now}


# How long a removed course's `_id` is kept for its folder's return (item: links survive).
RETIRED_ID_DAYS = 30
RENAME_FAILED = catalog_mod.Category.RENAME_FAILED.value
# Longest list of changes or problems logged line by line; the rest is in `--json`.
LOG_LIST_LIMIT = 50


@dataclass
class _Progress:
    """What a run knows so far, so a run that stops early still reports it (contract §8)."""

    mode: str
    timer: _Timer
    stage: str = "lock"
    built: Catalog | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def failure_summary(self, exc: BaseException, exit_code: int) -> dict[str, Any]:
        """contract §8's object for a run that stopped at `self.stage` with `exc`."""
        why = str(exc) if isinstance(exc, RunError) else f"{type(exc).__name__}: {exc}"
        built = self.built
        return {
            "mode": self.mode,
            "ok": False,
            "exit_code": exit_code,
            "failed": {self.stage: why},
            "catalog": report.catalog_block(built) if built is not None else None,
            "problems": report.problems_block(built) if built is not None else None,
            "renames": report.renames_block(built) if built is not None else None,
            "mongo": None,
            "sheet": None,
            "api_calls": self.timer.calls(),
            "timings_s": self.timer.done(),
            **self.extra,
        }


def run(settings: Settings, options: Options, services: Services) -> Outcome:
    """One sync, dry run or check, under the run lock. Raises `RunError` subclasses for
    failures that stop the run before anything is written (exit 1, 2, 3 or 4); the
    error's `summary` then holds what was known (contract §8, `ok: false`)."""
    progress = _Progress(options.mode, _Timer(services))
    try:
        with lock.hold(settings.cache_dir):
            return _run(settings, options, services, progress)
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


def _run(settings: Settings, options: Options, services: Services, progress: _Progress) -> Outcome:
    timer = progress.timer
    deadline = services.deadline or google.Deadline(settings.run_timeout_s)
    path = state.path_in(settings.cache_dir)
    progress.stage = "state"
    remembered, warning = state.load(path, services.source.key)
    if warning:
        log.warning("%s", warning)
    now = services.clock()

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
    if options.mode == "sync" and not reading.changed and not reading.full:
        fingerprint = _fingerprint(settings, options, reading, now, sheet_on=sheet_on)
        known = _known_catalog(remembered, fingerprint)
        if known is not None:
            progress.built = known
            progress.stage = "mongo"
            return _unchanged(
                settings, options, services, remembered, reading, known, timer, fingerprint
            )

    # 2. catalog
    progress.stage = "catalog"
    today = now.astimezone(settings.zone).date()
    built = catalog_mod.build(
        reading.tree, today=today, future_year_exempt=settings.future_year_exempt
    )
    progress.built = built
    previous_problems = remembered.problems
    problem_counts = _log_problems(built.problems, previous_problems)
    progress.extra["problem_changes"] = problem_counts
    for ignored in built.ignored:
        log.debug("ignored: %s (%s)", ignored.path, ignored.reason)
    log.info(
        "catalog: %d departments, %d courses, %d problems, %d renames, %.2f s",
        len(built.course_codes),
        len(built.courses),
        len(built.problems),
        len(built.renames),
        timer.lap("catalog"),
    )

    # 3. plan (reads MongoDB: an unreachable server stops the run before any write)
    progress.stage = "mongo"
    current = services.store.read_current()
    mongo_plan = website.plan(built, current, reuse=_reusable_ids(remembered, now))
    refusal = (
        None
        if options.allow_mass_delete
        else website.guard_refusal(
            mongo_plan, max_delete_fraction=settings.max_delete_fraction, hint=built.root_hint
        )
    )
    if built.root_hint and refusal is None:
        log.warning("%s", built.root_hint)
    renames = built.renames if (options.rename and settings.rename_files) else ()
    mongo_lines = tuple(report.plan_lines(mongo_plan))
    timer.lap("plan")

    if options.mode != "sync":
        progress.stage = "sheet"
        return _preview(
            settings, options, services, built, mongo_plan, refusal, renames, timer, progress
        )
    if refusal is not None:
        # Logged once, by whoever catches it (the CLI), not here as well.
        progress.stage = "guard"
        raise GuardRefused(f"mass-delete guard: {refusal}")

    # 4. apply — each sink on its own; 5. remember what each one did
    failures: dict[str, BaseException] = {}
    remembered = remembered.with_drive(reading.snapshot, now).with_problems(
        _problem_key(p) for p in built.problems
    )
    # Courses about to leave the website: their `_id`s are kept for a while, before the
    # write, so a folder that comes back even after an interrupted run gets its own back.
    remembered = remembered.with_retired(
        _retiring_ids(mongo_plan, current), now, days=RETIRED_ID_DAYS
    )
    # Saved before any sink writes: a state file that cannot be written stops the run
    # here (exit 1), before it changes anything the next run would not know about.
    progress.stage = "state"
    state.save(path, remembered)

    def isolated(sink: str, work: Callable[[], Any]) -> tuple[bool, Any]:
        return _isolated(sink, work, failures, services)

    ok, result = isolated("renames", lambda: services.source.rename(renames))
    if not ok:
        result = RenameResult()
    applied = [r for r in renames if r.id in result.applied]
    _log_list(
        "renamed",
        [f"{_one_line(r.path)} → {_one_line(r.new)}" for r in applied],
    )
    reading = services.source.after_renames(reading, applied)
    if applied:
        # Problems quote names (a duplicate names the file it duplicates): re-rendered
        # with the new names, so the sheet shows the names the drive has now.
        built = replace(built, problems=catalog_mod.problems_after_renames(built.problems, applied))
    if result.problems:
        built = replace(
            built,
            problems=tuple(sorted((*built.problems, *result.problems), key=_problem_order)),
        )
    # Rename failures are problems too: logged when new, and said when resolved.
    failed_before = {k for k in previous_problems or () if k.startswith(f"{RENAME_FAILED}: ")}
    failed_now = {_problem_key(p): p for p in result.problems}
    _log_list(
        "problem",
        [_one_line(p.message) for k, p in failed_now.items() if k not in failed_before],
        level=logging.WARNING,
        more="the full list is in the sheet",
    )
    if renames:
        _log_list(
            "resolved", sorted(k.split(": ", 1)[-1] for k in failed_before - failed_now.keys())
        )
    problem_counts = {
        "new": problem_counts["new"] + len(failed_now.keys() - failed_before),
        "resolved": problem_counts["resolved"]
        + (len(failed_before - failed_now.keys()) if renames else 0),
    }
    fingerprint = _fingerprint(settings, options, reading, now, sheet_on=sheet_on)
    remembered = remembered.with_drive(reading.snapshot, now).with_problems(
        _problem_key(p) for p in built.problems
    )
    if not result.problems and not result.pending and "renames" not in failures:
        remembered = remembered.with_sink("renames", {"fingerprint": fingerprint}, now)
    progress.stage = "state"
    state.save(path, remembered)
    skipped = len(built.renames) - len(renames)
    log.info(
        "renames: %d applied, %d failed, %d pending%s",
        len(applied),
        len(result.problems),
        len(result.pending),
        f", {skipped} not applied (renames are off)" if skipped else "",
    )

    ok, mongo_applied = isolated(
        "mongo",
        lambda: (
            _before(deadline, "renaming; MongoDB was not updated")
            or services.store.apply(
                mongo_plan,
                max_delete_fraction=settings.max_delete_fraction,
                allow_mass_delete=options.allow_mass_delete,
            )
        ),
    )
    if ok:
        remembered = remembered.with_sink("mongo", _mongo_part(built, fingerprint), now)
        state.save(path, remembered)
    else:
        # What was written before the failure (a `store.ApplyFailed`), if anything.
        mongo_applied = getattr(failures["mongo"], "applied", None)
    website_changes = _website_changes(mongo_plan, mongo_applied)
    _log_website(website_changes)

    sheet_block: dict[str, Any] = {"written": False, "not_found": [], "ambiguous": []}
    if services.sheet is None:
        log.warning("sheet: %s; the sheet step is skipped", services.sheet_skipped)
        remembered = remembered.with_sink(
            "sheet", {"fingerprint": fingerprint, "skipped": True}, now
        )
    else:
        sheet = services.sheet
        last = remembered.sheet.data.get("digest") if remembered.sheet else None
        ok, published = isolated(
            "sheet",
            lambda: (
                _before(deadline, "updating MongoDB; the sheet was not written")
                or sheet.publish(built, last, now, stamp_unchanged=True)
            ),
        )
        if ok:
            sheet_block = published.block()
            remembered = remembered.with_sink(
                "sheet",
                {
                    "fingerprint": fingerprint,
                    "digest": published.digest,
                    "version": _sheet_version(services),
                },
                now,
            )
    timer.lap("apply")

    if not failures:
        remembered = remembered.succeeded(now)
    progress.stage = "state"
    state.save(path, remembered)
    exit_code = _exit_code(failures)
    if mongo_applied is not None:
        mongo = report.mongo_block(mongo_plan, mongo_applied)
    else:
        # Failed before writing anything we know of: nothing of the plan was applied.
        mongo = {
            "inserted": 0,
            "updated": 0,
            "deleted": 0,
            "in_sync": False,
            "applied": False,
            "not_applied": {
                "inserted": mongo_plan.inserts,
                "updated": mongo_plan.updates,
                "deleted": mongo_plan.deletes,
            },
        }
    summary = _summary(
        "sync",
        exit_code,
        built,
        applied=frozenset(r.id for r in applied),
        mongo=mongo,
        sheet=sheet_block,
        timer=timer,
        extra={
            "drive": {"changed": reading.changed, "full": reading.full},
            "failed": {sink: _failure_text(exc) for sink, exc in failures.items()},
            "website": website_changes,
            "problem_changes": problem_counts,
        },
    )
    _mark_pending(summary, result.pending)
    log.info("%s", summary_line(summary))
    return Outcome(
        exit_code,
        summary,
        report.catalog_text(built),
        built,
        mongo_lines,
        frozenset(r.id for r in applied),
    )


def _before(deadline: google.Deadline, what: str) -> None:
    """Raise `RunTimedOut` when the run is past `RUN_TIMEOUT_S`: no sink starts then."""
    if deadline.expired:
        raise deadline.error(what)


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


def _unchanged(
    settings: Settings,
    options: Options,
    services: Services,
    remembered: state.State,
    reading: Reading,
    known: Catalog,
    timer: _Timer,
    fingerprint: str,
) -> Outcome:
    """The drive is as the last successful run left it: skip the catalog and the sheet,
    but repair MongoDB if someone edited it by hand, and rewrite the report if someone
    else wrote to the spreadsheet (its Drive `version` moved; contract §5.8)."""
    now = services.clock()
    path = state.path_in(settings.cache_dir)
    failures: dict[str, BaseException] = {}
    current = services.store.read_current()
    mongo_plan = website.plan(known, current, reuse=_reusable_ids(remembered, now))
    timer.lap("plan")
    if not mongo_plan.is_empty:
        log.warning("mongo: drifted from the drive since the last run; repairing")
        remembered = remembered.with_retired(
            _retiring_ids(mongo_plan, current), now, days=RETIRED_ID_DAYS
        )
        state.save(path, remembered)
    ok, applied = _isolated(
        "mongo",
        lambda: services.store.apply(
            mongo_plan,
            max_delete_fraction=settings.max_delete_fraction,
            allow_mass_delete=options.allow_mass_delete,
        ),
        failures,
        services,
    )
    if not ok:
        applied = getattr(failures["mongo"], "applied", None) or website.Applied(complete=False)
    website_changes = _website_changes(mongo_plan, applied)
    _log_website(website_changes)

    sheet_block: dict[str, Any] = {"written": False, "not_found": [], "ambiguous": []}
    remembered, sheet_block = _repair_hand_edited_sheet(
        services, remembered, known, now, failures, sheet_block
    )
    timer.lap("apply")
    remembered = remembered.with_drive(reading.snapshot, now)
    if not failures:
        remembered = remembered.succeeded(now)
    state.save(path, remembered)
    exit_code = _exit_code(failures)
    summary = _summary(
        "sync",
        exit_code,
        known,
        applied=frozenset(),
        mongo=report.mongo_block(mongo_plan, applied),
        sheet=sheet_block,
        timer=timer,
        extra={
            "drive": {"changed": False, "full": False},
            "failed": {sink: _failure_text(exc) for sink, exc in failures.items()},
            "unchanged": True,
            "website": website_changes,
            "problem_changes": {"new": 0, "resolved": 0},
        },
    )
    log.info("%s", summary_line(summary))
    return Outcome(exit_code, summary, "The drive is unchanged since the last run.", known)


def _repair_hand_edited_sheet(
    services: Services,
    remembered: state.State,
    known: Catalog,
    now: datetime,
    failures: dict[str, BaseException],
    sheet_block: dict[str, Any],
) -> tuple[state.State, dict[str, Any]]:
    """On an unchanged drive: one Drive `files.get` says whether anyone wrote to the
    spreadsheet since our last write; only then is the sheet read (and the report
    rewritten if it no longer shows it)."""
    sheet = services.sheet
    part = remembered.sheet
    if sheet is None or part is None or part.data.get("skipped"):
        return remembered, sheet_block
    before = part.data.get("version")
    if before is None:
        log.debug("sheet: no remembered Drive version; hand edits are noticed on a changed run")
        return remembered, sheet_block
    ok, version = _isolated(
        "sheet", lambda: services.source.sheet_version(sheet.key), failures, services
    )
    if not ok or version is None or version == before:
        if ok and version is None:
            log.info("sheet: Drive cannot see the spreadsheet; hand edits are not checked")
        return remembered, sheet_block
    log.warning(
        "sheet: written by someone else since the last run (Drive version %s → %s); "
        "checking the report",
        before,
        version,
    )
    ok, published = _isolated(
        "sheet",
        lambda: sheet.publish(known, part.data.get("digest"), now, stamp_unchanged=False),
        failures,
        services,
    )
    if not ok:
        return remembered, sheet_block
    after = _sheet_version(services) if published.written else version
    remembered = remembered.with_sink(
        "sheet", {**part.data, "digest": published.digest, "version": after}, now
    )
    return remembered, published.block()


def _preview(
    settings: Settings,
    options: Options,
    services: Services,
    built: Catalog,
    mongo_plan: website.Plan,
    refusal: str | None,
    renames: tuple[catalog_mod.Rename, ...],
    timer: _Timer,
    progress: _Progress,
) -> Outcome:
    """`--dry-run` and `check`: say what a sync would do; change nothing anywhere."""
    sheet_in_sync: bool | None = None
    sheet_block: dict[str, Any] = {"written": False, "not_found": [], "ambiguous": []}
    failures: dict[str, BaseException] = {}
    if services.sheet is not None:
        sheet = services.sheet
        ok, sheet_plan = _isolated("sheet", lambda: sheet.plan(built), failures, services)
        if ok:
            sheet_in_sync = sheet_plan.in_sync
            sheet_block = {
                "written": False,
                "in_sync": sheet_in_sync,
                "not_found": list(sheet_plan.report.not_found),
                "ambiguous": list(sheet_plan.report.ambiguous),
            }
    timer.lap("plan")
    if failures:
        exit_code = _exit_code(failures)
        if options.mode == "check" and exit_code == RunError.exit_code:
            exit_code = CHECK_FAILED  # could not check, which is not "out of sync"
    elif options.mode == "check":
        in_sync = mongo_plan.is_empty and sheet_in_sync is not False and not renames
        exit_code = 0 if in_sync else 1
    else:
        exit_code = GuardRefused.exit_code if refusal else 0
    summary = _summary(
        options.mode,
        exit_code,
        built,
        applied=frozenset(),
        mongo=report.mongo_block(mongo_plan),
        sheet=sheet_block,
        timer=timer,
        extra={
            **progress.extra,
            "failed": {s: _failure_text(e) for s, e in failures.items()},
            "guard": refusal,
        },
    )
    lines = [report.catalog_text(built), "", report.plan_text(mongo_plan)]
    if refusal:
        lines.append(f"Mass-delete guard: {refusal}")
    if services.sheet is None:
        lines.append(f"Sheet: {services.sheet_skipped}; the sheet step would be skipped")
    elif sheet_in_sync is not None:
        lines.append("Sheet: up to date" if sheet_in_sync else "Sheet: would be rewritten")
    if options.mode == "check":
        lines.append(
            "Check: in sync"
            if exit_code == 0
            else "Check: out of sync"
            if exit_code == 1
            else "Check: could not check"
        )
    log.info("%s", summary_line(summary))
    return Outcome(
        exit_code,
        summary,
        "\n".join(lines),
        built,
        tuple(report.plan_lines(mongo_plan)),
    )


# Line breaks and other control characters a name may hold (newline, CR, NEL, U+2028).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(text: str) -> str:
    """`text` as one log line: control characters shown escaped (`\\n`), so a file name
    cannot break a problem over lines or forge a line of its own."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _problem_order(p: catalog_mod.Problem) -> tuple[str, str, str]:
    return (p.path, p.category.value, p.id)


def _fingerprint(
    settings: Settings, options: Options, reading: Reading, now: datetime, *, sheet_on: bool
) -> str:
    """What a sink's success was for: this tree, read with these settings.

    Settings that change the catalog or a sink's output are part of it, so that turning
    renames on, pointing at another sheet or exempting a department is never skipped as
    "unchanged". The year is too: on New Year's Day last year's future files turn valid."""
    return state.digest(
        {
            "tree": reading.fingerprint,
            "year": now.astimezone(settings.zone).year,
            "future_year_exempt": sorted(settings.future_year_exempt),
            "renames": options.rename and settings.rename_files,
            "sheet_on": sheet_on,
            "sheet": [
                settings.sheet_key,
                settings.sheet_errors_tab,
                settings.sheet_copies_tab,
                settings.sheet_not_found_tab,
                settings.sheet_count_column,
                settings.sheet_stamp_cell,
            ],
        }
    )


def _exit_code(failures: Mapping[str, BaseException]) -> int:
    if not failures:
        return 0
    if any(isinstance(exc, ConfigError) for exc in failures.values()):
        return ConfigError.exit_code
    return RunError.exit_code


def _failure_text(exc: BaseException) -> str:
    """A sink's failure for `failed`: the message, or the type of an unexpected error."""
    if isinstance(exc, RunError):
        return str(exc)
    return f"unexpected failure: {type(exc).__name__}: {exc}"


def _sheet_version(services: Services) -> str | None:
    """The spreadsheet's Drive `version` right after our write (None: cannot tell)."""
    if services.sheet is None:
        return None
    try:
        return services.source.sheet_version(services.sheet.key)
    except RunError as exc:
        log.warning("sheet: cannot read the spreadsheet's Drive version (%s)", exc)
        return None


def _problem_key(problem: catalog_mod.Problem) -> str:
    """One problem, as remembered between runs (its category and one-line message)."""
    return f"{problem.category.value}: {_one_line(problem.message)}"


def _log_problems(
    problems: Sequence[catalog_mod.Problem], previous: Sequence[str] | None
) -> dict[str, int]:
    """Log each problem once, not once per run: new ones since the last run at WARNING,
    resolved ones at INFO (the full list is in the sheet and the summary)."""
    keys = {_problem_key(p): p for p in problems}
    before = set(previous or ())
    new = [_one_line(p.message) for key, p in keys.items() if key not in before]
    # rename_failed is known only after the renames: not "resolved" before they ran.
    resolved = sorted(
        k.split(": ", 1)[-1] for k in before - keys.keys() if not k.startswith(f"{RENAME_FAILED}: ")
    )
    _log_list("problem", new, level=logging.WARNING, more="the full list is in the sheet")
    _log_list("resolved", resolved)
    if new or resolved:
        log.info(
            "problems: %d in all, %d new since the last run, %d resolved",
            len(keys),
            len(new),
            len(resolved),
        )
    return {"new": len(new), "resolved": len(resolved)}


def _log_list(
    label: str, lines: Sequence[str], *, level: int = logging.INFO, more: str = "see --json"
) -> None:
    """One log line per entry, at most `LOG_LIST_LIMIT`, then how many more there are."""
    for line in lines[:LOG_LIST_LIMIT]:
        log.log(level, "%s: %s", label, line)
    if len(lines) > LOG_LIST_LIMIT:
        log.log(level, "%s: … and %d more (%s)", label, len(lines) - LOG_LIST_LIMIT, more)


def _website_changes(plan: website.Plan, applied: website.Applied | None) -> dict[str, Any]:
    """Courses added to, removed from and renamed on the website by this run, by name.

    Only what was applied: a phase that did not run changed nothing a visitor sees."""
    done = dict.fromkeys(
        ("insert courses", "update courses", "delete courses"), applied is not None
    )
    if applied is not None and not applied.complete:
        finished = {name for name, planned, count in applied.phases if count >= planned}
        done = {phase: phase in finished for phase in done}
    renamed = [
        {"from": u.old_name, "to": u.name}
        for u in plan.courses_to_update
        if u.old_name is not None and u.old_name != u.name
    ]
    return {
        "added": [c.name for c in plan.courses_to_add] if done["insert courses"] else [],
        "removed": [c.name if c.name is not None else str(c.id) for c in plan.courses_to_remove]
        if done["delete courses"]
        else [],
        "renamed": renamed if done["update courses"] else [],
    }


def _log_website(website: Mapping[str, Any]) -> None:
    """Each course added, removed and renamed at INFO, then the counts."""
    _log_list("website: added course", [_one_line(n) for n in website["added"]])
    _log_list("website: removed course", [_one_line(n) for n in website["removed"]])
    _log_list(
        "website: renamed course",
        [f"{_one_line(r['from'])} → {_one_line(r['to'])}" for r in website["renamed"]],
    )
    if website["added"] or website["removed"] or website["renamed"]:
        log.info(
            "website: %d courses added, %d removed, %d renamed",
            len(website["added"]),
            len(website["removed"]),
            len(website["renamed"]),
        )


def _retiring_ids(plan: website.Plan, current: website.Current) -> dict[str, ObjectId]:
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


def _reusable_ids(remembered: state.State, now: datetime) -> dict[str, ObjectId]:
    """The remembered `_id`s of courses removed less than `RETIRED_ID_DAYS` ago, by
    folder id."""
    out: dict[str, ObjectId] = {}
    for folder in remembered.with_retired({}, now, days=RETIRED_ID_DAYS).retired_ids:
        text = remembered.retired_id(folder)
        if isinstance(text, str) and ObjectId.is_valid(text):
            out[folder] = ObjectId(text)
    return out


def _mongo_part(built: Catalog, fingerprint: str) -> dict[str, Any]:
    """What MongoDB was made to show, kept so an unchanged drive needs no catalog."""
    return {
        "fingerprint": fingerprint,
        "catalog": report.catalog_block(built),
        "problems": report.problems_block(built),
    }


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


def _summary(
    mode: str,
    exit_code: int,
    built: Catalog,
    *,
    applied: frozenset[str],
    mongo: dict[str, Any],
    sheet: dict[str, Any],
    timer: _Timer,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Contract §8's JSON object (plus a few added fields)."""
    return {
        "mode": mode,
        "ok": exit_code == 0,
        "exit_code": exit_code,
        "catalog": report.catalog_block(built),
        "problems": report.problems_block(built),
        "renames": report.renames_block(built, applied),
        "mongo": mongo,
        "sheet": sheet,
        "api_calls": timer.calls(),
        "timings_s": timer.done(),
        **extra,
    }


def _pending(summary: dict[str, Any]) -> str:
    n = summary.get("renames_pending")
    return f" ({n} pending)" if n else ""


def _mark_pending(summary: dict[str, Any], pending: frozenset[str]) -> None:
    """Renames not reached this run (quota, RENAME_BUDGET_S): `"pending": true` on each,
    and their number as `renames_pending`. They are done next run; they are not problems."""
    for entry in summary["renames"]:
        if entry["id"] in pending:
            entry["pending"] = True
    summary["renames_pending"] = len(pending)


def summary_line(summary: dict[str, Any]) -> str:
    """The one cron-readable line that ends every run."""
    cat = summary["catalog"]
    mongo = summary["mongo"]
    calls = summary["api_calls"]
    timings = summary["timings_s"]
    renames = summary["renames"]
    failed = summary.get("failed") or {}
    phases = " ".join(f"{k} {v:.2f}s" for k, v in timings.items())
    return (
        f"summary: {summary['mode']} exit {summary['exit_code']}"
        f"{' (failed: ' + ', '.join(sorted(failed)) + ')' if failed else ''}; "
        f"{report.plural(len(cat['course_codes']), 'department')}, "
        f"{report.plural(len(cat['courses']), 'course')}, "
        f"{report.plural(len(summary['problems']), 'problem')}{_problem_changes(summary)}; "
        f"renames {sum(r['applied'] for r in renames)}/{len(renames)}"
        f"{_pending(summary)}; "
        f"mongo +{mongo['inserted']} ~{mongo['updated']} -{mongo['deleted']}"
        f"{_not_applied(mongo)}; "
        f"sheet {'written' if summary['sheet'].get('written') else 'not written'}; "
        f"api calls drive {calls['drive']} sheets {calls['sheets']} mongo {calls['mongo']}; "
        f"{phases}"
    )


def _problem_changes(summary: dict[str, Any]) -> str:
    changes = summary.get("problem_changes") or {}
    new, resolved = changes.get("new", 0), changes.get("resolved", 0)
    return f" ({new} new, {resolved} resolved)" if new or resolved else ""


def _not_applied(mongo: dict[str, Any]) -> str:
    """`(not applied: +126)`: what a failed MongoDB apply left undone."""
    rest = mongo.get("not_applied")
    if not rest:
        return ""
    parts = [
        f"{sign}{rest[key]}"
        for sign, key in (("+", "inserted"), ("~", "updated"), ("-", "deleted"))
        if rest.get(key)
    ]
    return f" (not applied: {' '.join(parts)})" if parts else ""
