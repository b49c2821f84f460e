"""One run, top to bottom: source → catalog → plan → apply → remember (contract §5).

The outside world arrives as `Services` (a tree source, the MongoDB store, the sheet
report, a clock), so tests hand in emulators and the demo hands in a local folder and
an in-process database. Each sink (renames, MongoDB, sheet) is applied independently:
one failing does not undo or stop the others, and only a sink that succeeded has its
part of the state file updated, so the next run retries exactly what failed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from . import catalog as catalog_mod
from . import lock, publish, report, state
from .catalog import Catalog
from .errors import ConfigError, GuardRefused, RunError
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


def run(settings: Settings, options: Options, services: Services) -> Outcome:
    """One sync, dry run or check, under the run lock. Raises `RunError` subclasses for
    failures that stop the run before anything is written (exit 1, 2, 3 or 4)."""
    with lock.hold(settings.cache_dir):
        return _run(settings, options, services)


def _run(settings: Settings, options: Options, services: Services) -> Outcome:
    timer = _Timer(services)
    path = state.path_in(settings.cache_dir)
    remembered, warning = state.load(path)
    if warning:
        log.warning("%s", warning)
    now = services.clock()

    # 1. source
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

    if options.mode == "sync" and not reading.changed and not reading.full:
        known = _known_catalog(remembered, _fingerprint(settings, options, reading, now))
        if known is not None:
            return _unchanged(settings, options, services, remembered, reading, known, timer)

    # 2. catalog
    today = now.astimezone(settings.zone).date()
    built = catalog_mod.build(
        reading.tree, today=today, future_year_exempt=settings.future_year_exempt
    )
    for problem in built.problems:
        log.warning("%s", _one_line(problem.message))
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
    current = services.store.read_current()
    mongo_plan = publish.plan(built, current)
    refusal = (
        None
        if options.allow_mass_delete
        else publish.guard_refusal(
            mongo_plan, max_delete_fraction=settings.max_delete_fraction, hint=built.root_hint
        )
    )
    if built.root_hint and refusal is None:
        log.warning("%s", built.root_hint)
    renames = built.renames if (options.rename and settings.rename_files) else ()
    mongo_lines = tuple(publish.plan_lines(mongo_plan))
    timer.lap("plan")

    if options.mode != "sync":
        return _preview(settings, options, services, built, mongo_plan, refusal, renames, timer)
    if refusal is not None:
        # Logged once, by whoever catches it (the CLI), not here as well.
        raise GuardRefused(f"mass-delete guard: {refusal}")

    # 4. apply — each sink on its own; 5. remember what each one did
    failures: dict[str, RunError] = {}
    remembered = remembered.with_drive(reading.snapshot, now)
    # Saved before any sink writes: a state file that cannot be written stops the run
    # here (exit 1), before it changes anything the next run would not know about.
    state.save(path, remembered)

    result = services.source.rename(renames)
    applied = [r for r in renames if r.id in result.applied]
    reading = services.source.after_renames(reading, applied)
    if applied:
        # Problems quote names (a duplicate names the file it duplicates): rebuilt from
        # the renamed tree, so the sheet shows the names the drive has now, not stale ones.
        renamed = catalog_mod.build(
            reading.tree, today=today, future_year_exempt=settings.future_year_exempt
        )
        built = replace(built, problems=renamed.problems)
    if result.problems:
        built = replace(
            built,
            problems=tuple(sorted((*built.problems, *result.problems), key=_problem_order)),
        )
        for problem in result.problems:
            log.warning("%s", _one_line(problem.message))
    fingerprint = _fingerprint(settings, options, reading, now)
    remembered = remembered.with_drive(reading.snapshot, now)
    if not result.problems:
        remembered = remembered.with_sink("renames", {"fingerprint": fingerprint}, now)
    state.save(path, remembered)
    skipped = len(built.renames) - len(renames)
    log.info(
        "renames: %d applied, %d failed%s",
        len(applied),
        len(result.problems),
        f", {skipped} not applied (renames are off)" if skipped else "",
    )

    mongo_applied: publish.Applied | None = None
    try:
        mongo_applied = services.store.apply(
            mongo_plan,
            max_delete_fraction=settings.max_delete_fraction,
            allow_mass_delete=options.allow_mass_delete,
        )
    except GuardRefused:
        raise  # checked above already; only a concurrent edit could make it refuse now
    except RunError as exc:
        failures["mongo"] = exc
        log.error("mongo: %s", exc)
    else:
        remembered = remembered.with_sink("mongo", _mongo_part(built, fingerprint), now)
        state.save(path, remembered)

    sheet_block: dict[str, Any] = {"written": False, "not_found": [], "ambiguous": []}
    if services.sheet is None:
        log.warning("sheet: SHEET_URL is not set; the sheet step is skipped")
        remembered = remembered.with_sink(
            "sheet", {"fingerprint": fingerprint, "skipped": True}, now
        )
    else:
        last = remembered.sheet.data.get("digest") if remembered.sheet else None
        try:
            published = services.sheet.publish(built, last, now, stamp_unchanged=True)
        except RunError as exc:
            failures["sheet"] = exc
            log.error("sheet: %s", exc)
        else:
            sheet_block = published.block()
            remembered = remembered.with_sink(
                "sheet", {"fingerprint": fingerprint, "digest": published.digest}, now
            )
    timer.lap("apply")

    if not failures:
        remembered = remembered.succeeded(now)
    state.save(path, remembered)
    exit_code = _exit_code(failures)
    summary = _summary(
        "sync",
        exit_code,
        built,
        applied=frozenset(r.id for r in applied),
        mongo=publish.mongo_block(mongo_plan, mongo_applied)
        if mongo_applied is not None
        else {**publish.mongo_block(mongo_plan), "in_sync": False},
        sheet=sheet_block,
        timer=timer,
        extra={
            "drive": {"changed": reading.changed, "full": reading.full},
            "failed": {sink: str(exc) for sink, exc in failures.items()},
        },
    )
    log.info("%s", summary_line(summary))
    return Outcome(
        exit_code,
        summary,
        report.catalog_text(built),
        built,
        mongo_lines,
        frozenset(r.id for r in applied),
    )


def _unchanged(
    settings: Settings,
    options: Options,
    services: Services,
    remembered: state.State,
    reading: Reading,
    known: Catalog,
    timer: _Timer,
) -> Outcome:
    """The drive is as the last successful run left it: skip the catalog and the sheet,
    but repair MongoDB if someone edited it by hand (contract §5.8)."""
    now = services.clock()
    current = services.store.read_current()
    mongo_plan = publish.plan(known, current)
    timer.lap("plan")
    if not mongo_plan.is_empty:
        log.warning("mongo: drifted from the drive since the last run; repairing")
    applied = services.store.apply(
        mongo_plan,
        max_delete_fraction=settings.max_delete_fraction,
        allow_mass_delete=options.allow_mass_delete,
    )
    timer.lap("apply")
    remembered = remembered.with_drive(reading.snapshot, now).succeeded(now)
    state.save(state.path_in(settings.cache_dir), remembered)
    summary = _summary(
        "sync",
        0,
        known,
        applied=frozenset(),
        mongo=publish.mongo_block(mongo_plan, applied),
        sheet={"written": False, "not_found": [], "ambiguous": []},
        timer=timer,
        extra={"drive": {"changed": False, "full": False}, "failed": {}, "unchanged": True},
    )
    log.info("%s", summary_line(summary))
    return Outcome(0, summary, "The drive is unchanged since the last run.", known)


def _preview(
    settings: Settings,
    options: Options,
    services: Services,
    built: Catalog,
    mongo_plan: publish.Plan,
    refusal: str | None,
    renames: tuple[catalog_mod.Rename, ...],
    timer: _Timer,
) -> Outcome:
    """`--dry-run` and `check`: say what a sync would do; change nothing anywhere."""
    sheet_in_sync: bool | None = None
    sheet_block: dict[str, Any] = {"written": False, "not_found": [], "ambiguous": []}
    failures: dict[str, RunError] = {}
    if services.sheet is not None:
        try:
            sheet_plan = services.sheet.plan(built)
        except RunError as exc:
            failures["sheet"] = exc
            log.error("sheet: %s", exc)
        else:
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
        mongo=publish.mongo_block(mongo_plan),
        sheet=sheet_block,
        timer=timer,
        extra={"failed": {s: str(e) for s, e in failures.items()}, "guard": refusal},
    )
    lines = [report.catalog_text(built), "", publish.plan_text(mongo_plan)]
    if refusal:
        lines.append(f"Mass-delete guard: {refusal}")
    if services.sheet is None:
        lines.append("Sheet: SHEET_URL is not set; the sheet step would be skipped")
    elif sheet_in_sync is not None:
        lines.append("Sheet: up to date" if sheet_in_sync else "Sheet: would be rewritten")
    if options.mode == "check":
        lines.append("Check: in sync" if exit_code == 0 else "Check: out of sync")
    log.info("%s", summary_line(summary))
    return Outcome(
        exit_code,
        summary,
        "\n".join(lines),
        built,
        tuple(publish.plan_lines(mongo_plan)),
    )


# Line breaks and other control characters a name may hold (newline, CR, NEL, U+2028).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(text: str) -> str:
    """`text` as one log line: control characters shown escaped (`\\n`), so a file name
    cannot break a problem over lines or forge a line of its own."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _problem_order(p: catalog_mod.Problem) -> tuple[str, str, str]:
    return (p.path, p.category.value, p.id)


def _fingerprint(settings: Settings, options: Options, reading: Reading, now: datetime) -> str:
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


def _exit_code(failures: dict[str, RunError]) -> int:
    if not failures:
        return 0
    if any(isinstance(exc, ConfigError) for exc in failures.values()):
        return ConfigError.exit_code
    return RunError.exit_code


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
        f"{report.plural(len(summary['problems']), 'problem')}; "
        f"renames {sum(r['applied'] for r in renames)}/{len(renames)}; "
        f"mongo +{mongo['inserted']} ~{mongo['updated']} -{mongo['deleted']}; "
        f"sheet {'written' if summary['sheet'].get('written') else 'not written'}; "
        f"api calls drive {calls['drive']} sheets {calls['sheets']} mongo {calls['mongo']}; "
        f"{phases}"
    )
