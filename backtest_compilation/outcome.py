"""What a run did, and how it is told (contract §8): the run summary, its JSON object,
summary line and text, and the log lines naming each change once. Pure except for logging."""

from __future__ import annotations

import logging
import re
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from . import report, website
from .catalog import Catalog, Category, Problem
from .errors import CHECK_FAILED, ConfigError, GuardRefused, RunError

log = logging.getLogger("backtest_compilation.pipeline")

# Longest list of changes or problems logged line by line; the rest is in `--json`.
LOG_LIST_LIMIT = 50
NOT_WRITTEN: Mapping[str, Any] = {"written": False, "not_found": [], "ambiguous": []}


class Interrupted(BaseException):
    """SIGTERM (or a second stop request): unwinds the run like `KeyboardInterrupt`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


def exit_code_of(exc: BaseException) -> int:
    """The exit code a failure means: the error's own (1-4), 130/143 for an interrupt."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return int(getattr(exc, "exit_code", RunError.exit_code))


@dataclass(frozen=True)
class RunSummary:
    """The one record of a sync, dry run or check, failed runs included; everything a
    user sees of a run renders from it. A block is None until its step ran."""

    mode: str
    catalog: Catalog | None = None
    plan: website.Plan | None = None  # the MongoDB operations planned
    mongo: Mapping[str, Any] | None = None
    sheet: Mapping[str, Any] | None = None
    api_calls: Mapping[str, int] = field(default_factory=dict)
    timings_s: Mapping[str, float] = field(default_factory=dict)
    drive: Mapping[str, bool] | None = None
    problem_changes: Mapping[str, int] = field(default_factory=lambda: {"new": 0, "resolved": 0})
    failures: Mapping[str, BaseException] = field(default_factory=dict)
    refusal: str | None = None  # the mass-delete guard's answer
    renames_planned: bool = False
    sheet_skipped: str | None = None  # why there is no sheet step
    unchanged: bool = False  # a sync that found the drive as the last run left it
    website: Mapping[str, Any] = field(default_factory=dict)  # a sync's course changes
    applied: frozenset[str] = frozenset()
    pending: frozenset[str] | None = None  # None: renames did not run (no count shown)
    # An unchanged run's remembered counts: its catalog is read only to be rendered.
    counts: Mapping[str, int] | None = None

    def failed(self, stage: str, exc: BaseException) -> RunSummary:
        """This record with `stage` failed with `exc` (an interrupt as `interrupted`)."""
        if isinstance(exc, KeyboardInterrupt | Interrupted):
            code = exit_code_of(exc)
            exc = RunError(f"{signal.Signals(code - 128).name} received during {stage}")
            exc.exit_code = code
            stage = "interrupted"
        return replace(self, failures={**self.failures, stage: exc})

    @property
    def exit_code(self) -> int:
        """Failures: the gravest one's code (interrupt > lock > guard > configuration >
        runtime; `check` says 5, could not check, for a runtime failure); else `check`:
        1 when out of sync; the guard's 3 when it would refuse."""
        if self.failures:
            code = max(exit_code_of(e) for e in self.failures.values())
            return CHECK_FAILED if self.mode == "check" and code == RunError.exit_code else code
        if self.refusal:
            return GuardRefused.exit_code
        if self.mode != "check":
            return 0
        in_sync = self.plan is not None and self.plan.is_empty and not self.renames_planned
        return 0 if in_sync and (self.sheet or {}).get("in_sync") is not False else 1

    @cached_property
    def summary(self) -> dict[str, Any]:
        """Contract §8's JSON object and a few added fields (~0.1 s at 6,000 courses)."""
        return self._json(self.catalog)

    @cached_property
    def small(self) -> dict[str, Any]:
        """`summary` without a remembered catalog's blocks (an unchanged run reads none)."""
        return self.summary if self.counts is None else self._json(None)

    def _json(self, built: Catalog | None) -> dict[str, Any]:
        exit_code = self.exit_code
        renames = report.renames_block(built, self.applied) if built is not None else None
        for entry in renames or ():
            if self.pending is not None and entry["id"] in self.pending:
                entry["pending"] = True  # not reached this run: done next run, not a problem
        out: dict[str, Any] = {
            "mode": self.mode,
            "ok": exit_code == 0,
            "exit_code": exit_code,
            "catalog": report.catalog_block(built) if built is not None else None,
            "problems": report.problems_block(built) if built is not None else None,
            "renames": renames,
            "mongo": dict(self.mongo) if self.mongo is not None else None,
            "sheet": dict(self.sheet) if self.sheet is not None else None,
            "api_calls": dict(self.api_calls),
            "timings_s": dict(self.timings_s),
            "drive": dict(self.drive) if self.drive is not None else None,
            "failed": {s: failure_text(e) for s, e in self.failures.items()},
            "problem_changes": dict(self.problem_changes),
        }
        if self.counts is not None and built is None:  # a remembered catalog has no renames
            out["counts"] = {**self.counts, "renames": 0, "renames_applied": 0}
        if self.mode == "sync":
            if self.unchanged:
                out["unchanged"] = True
            out["website"] = dict(self.website)
        else:
            out["guard"] = self.refusal
        if self.pending is not None and renames is not None:
            out["renames_pending"] = len(self.pending)
        return out

    def line(self) -> str:
        """The one cron-readable line that ends every run."""
        return summary_line(self.small)

    def text_for(self, *, verbose: bool) -> str:
        """The text for people: a sync's catalog; a preview's plan (and catalog if `verbose`)."""
        built = self.catalog or Catalog()
        if self.mode == "sync":
            return report.catalog_text(built)
        lines = [report.catalog_text(built), ""] if verbose else []
        if self.plan is not None:
            lines.append(report.plan_text(self.plan))
        if not verbose and self.renames_planned:
            lines.append(f"Renames pending ({len(built.renames)}):")
            lines.extend(f"  {r.path}  ->  {r.new}" for r in built.renames)
        if self.refusal:
            lines.append(f"Mass-delete guard: {self.refusal}")
        if self.sheet_skipped is not None:
            lines.append(f"Sheet: {self.sheet_skipped}; the sheet step would be skipped")
        elif (in_sync := (self.sheet or {}).get("in_sync")) is not None:
            lines.append("Sheet: up to date" if in_sync else "Sheet: would be rewritten")
        lines += [f"Failed: {stage}: {failure_text(e)}" for stage, e in self.failures.items()]
        if self.mode == "check":
            code = self.exit_code
            verdict = {0: "in sync", 1: "out of sync"}.get(code, f"could not check (exit {code})")
            lines.append(f"Check: {verdict}")
        return "\n".join(lines)

    @property
    def mongo_lines(self) -> tuple[str, ...]:
        """One line per planned MongoDB change (none on an unchanged sync)."""
        if self.unchanged or self.plan is None:
            return ()
        return tuple(report.plan_lines(self.plan))


def log_failure(exc: BaseException) -> None:
    """A failure that stopped a run, logged once (a bug with its traceback)."""
    if isinstance(exc, ConfigError):
        for line in exc.problems:
            log.error("configuration: %s", line)
    elif isinstance(exc, Exception):
        log.error("%s", failure_text(exc), exc_info=not isinstance(exc, RunError))


def failure_text(exc: BaseException) -> str:
    """A failure in one line (a bug says so and names its type)."""
    if isinstance(exc, RunError):
        return str(exc)
    return f"unexpected failure: {type(exc).__name__}: {exc}"


def count(summary: Mapping[str, Any]) -> dict[str, int]:
    """What the summary's catalog, problems and renames hold (its `counts`, if given)."""
    if summary.get("counts"):
        return dict(summary["counts"])
    cat = summary["catalog"] or {"course_codes": [], "courses": []}
    renames = summary["renames"] or []
    return {
        "departments": len(cat["course_codes"]),
        "courses": len(cat["courses"]),
        "problems": len(summary["problems"] or ()),
        "renames": len(renames),
        "renames_applied": sum(1 for r in renames if r.get("applied")),
    }


def summary_line(summary: Mapping[str, Any]) -> str:
    """The one cron-readable line that ends every run (from contract §8's object)."""
    counts = count(summary)
    mongo = summary["mongo"] or {"inserted": 0, "updated": 0, "deleted": 0}
    calls = {"drive": 0, "sheets": 0, "mongo": 0} | dict(summary["api_calls"])
    failed = summary.get("failed") or {}
    phases = " ".join(f"{k} {v:.2f}s" for k, v in summary["timings_s"].items())
    pending = summary.get("renames_pending")
    changes = summary.get("problem_changes") or {}
    new, resolved = changes.get("new", 0), changes.get("resolved", 0)
    rest = mongo.get("not_applied") or {}
    signs = (("+", "inserted"), ("~", "updated"), ("-", "deleted"))
    undone = " ".join(f"{sign}{rest[key]}" for sign, key in signs if rest.get(key))
    return (
        f"summary: {summary['mode']} exit {summary['exit_code']}"
        f"{' (failed: ' + ', '.join(sorted(failed)) + ')' if failed else ''}; "
        f"{report.plural(counts['departments'], 'department')}, "
        f"{report.plural(counts['courses'], 'course')}, "
        f"{report.plural(counts['problems'], 'problem')}"
        f"{f' ({new} new, {resolved} resolved)' if new or resolved else ''}; "
        f"renames {counts['renames_applied']}/{counts['renames']}"
        f"{f' ({pending} pending)' if pending else ''}; "
        f"mongo +{mongo['inserted']} ~{mongo['updated']} -{mongo['deleted']}"
        f"{f' (not applied: {undone})' if undone else ''}; "
        f"sheet {'written' if (summary['sheet'] or {}).get('written') else 'not written'}; "
        f"api calls drive {calls['drive']} sheets {calls['sheets']} mongo {calls['mongo']}; "
        f"{phases}"
    )


# ---------------------------------------------------------------- change log lines

# Line breaks and other control characters a name may hold (newline, CR, NEL, U+2028).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """`text` with control characters escaped (`\\n`): a file name cannot forge a log line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def problem_key(problem: Problem) -> str:
    """A problem as remembered between runs: `kind<TAB>Drive id<TAB>message`, known by kind
    and id (a renamed course is not a new problem); the message says what was resolved."""
    return f"{problem.category.value}\t{one_line(problem.id)}\t{one_line(problem.message)}"


def log_list(label: str, lines: Sequence[str], *, level: int = logging.INFO) -> None:
    """One log line per entry, at most `LOG_LIST_LIMIT`, then how many more there are."""
    for line in lines[:LOG_LIST_LIMIT]:
        log.log(level, "%s: %s", label, line)
    if len(lines) > LOG_LIST_LIMIT:
        log.log(level, "%s: … and %d more (see --json)", label, len(lines) - LOG_LIST_LIMIT)


def log_problems(
    problems: Sequence[Problem], previous: Sequence[str] | None, *, kinds: str = "catalog"
) -> dict[str, int]:
    """Log each problem once, not once per run: new ones at WARNING, resolved ones at
    INFO. `kinds`: "catalog" compares every kind but `rename_failed` (known only after
    the renames), "renames" only `rename_failed`."""
    before: dict[tuple[str, str], str] = {}
    for key in previous or ():
        kind, ident, message = key.split("\t", 2)  # `one_line` escaped their tabs
        if (kind == Category.RENAME_FAILED.value) == (kinds == "renames"):
            before[kind, ident] = message
    now = {(p.category.value, one_line(p.id)): p for p in problems}
    new = [one_line(p.message) for key, p in now.items() if key not in before]
    resolved = sorted(message for key, message in before.items() if key not in now)
    log_list("problem", new, level=logging.WARNING)
    log_list("resolved", resolved)
    if (new or resolved) and kinds == "catalog":
        counts = (len(problems), len(new), len(resolved))
        log.info("problems: %d in all, %d new since the last run, %d resolved", *counts)
    return {"new": len(new), "resolved": len(resolved)}


def website_changes(plan: website.Plan, applied: website.Applied) -> dict[str, Any]:
    """Courses added, removed and renamed on the website by this run (only phases
    applied), each logged at INFO, then the counts."""
    finished = {p for p, m, n in applied.phases if n >= m}

    def done(phase: str, changes: list[Any]) -> list[Any]:
        return changes if applied.complete or phase in finished else []

    added = done("insert courses", [c.name for c in plan.courses_to_add])
    gone = [c.name if c.name is not None else str(c.id) for c in plan.courses_to_remove]
    removed = done("delete courses", gone)
    updates = plan.courses_to_update
    moved = [(u.old.name, u.name) for u in updates if u.old.name not in (None, u.name)]
    renamed = done("update courses", moved)
    log_list("website: added course", [one_line(n) for n in added])
    log_list("website: removed course", [one_line(n) for n in removed])
    log_list("website: renamed course", [f"{one_line(a)} → {one_line(b)}" for a, b in renamed])
    if added or removed or renamed:
        counts = (len(added), len(removed), len(renamed))
        log.info("website: %d courses added, %d removed, %d renamed", *counts)
    return {
        "added": added,
        "removed": removed,
        "renamed": [{"from": a, "to": b} for a, b in renamed],
    }
