"""What a run did, and how it is told (contract §8): the typed run summary that renders
the JSON object, the one summary line and the text for people, plus the log lines that
name each change (problems, renames, website courses) once.

Pure except for logging: the pipeline hands it values, nothing here talks to a service.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import report, website
from .catalog import Catalog, Category, Problem
from .errors import RunError

log = logging.getLogger("backtest_compilation.pipeline")

RENAME_FAILED = Category.RENAME_FAILED.value
# Longest list of changes or problems logged line by line; the rest is in `--json`.
LOG_LIST_LIMIT = 50
NOT_WRITTEN: Mapping[str, Any] = {"written": False, "not_found": [], "ambiguous": []}


@dataclass(frozen=True)
class RunSummary:
    """Everything contract §8's object says about one run, as values."""

    mode: str
    exit_code: int
    catalog: Catalog
    mongo: Mapping[str, Any]
    sheet: Mapping[str, Any]
    api_calls: Mapping[str, int]
    timings_s: Mapping[str, float]
    applied: frozenset[str] = frozenset()
    pending: frozenset[str] | None = None  # None: renames did not run (no count shown)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Contract §8's JSON object (plus a few added fields)."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "ok": self.exit_code == 0,
            "exit_code": self.exit_code,
            "catalog": report.catalog_block(self.catalog),
            "problems": report.problems_block(self.catalog),
            "renames": report.renames_block(self.catalog, self.applied),
            "mongo": dict(self.mongo),
            "sheet": dict(self.sheet),
            "api_calls": dict(self.api_calls),
            "timings_s": dict(self.timings_s),
            **self.extra,
        }
        if self.pending is not None:
            # Renames not reached this run (quota, RENAME_BUDGET_S): done next run; they
            # are not problems.
            for entry in out["renames"]:
                if entry["id"] in self.pending:
                    entry["pending"] = True
            out["renames_pending"] = len(self.pending)
        return out

    def line(self) -> str:
        """The one summary line (`summary_line` of `to_json()`)."""
        return summary_line(self.to_json())


def summary_line(summary: Mapping[str, Any]) -> str:
    """The one cron-readable line that ends every run (from contract §8's object)."""
    cat = summary["catalog"]
    mongo = summary["mongo"]
    calls = summary["api_calls"]
    timings = summary["timings_s"]
    renames = summary["renames"]
    failed = summary.get("failed") or {}
    phases = " ".join(f"{k} {v:.2f}s" for k, v in timings.items())
    pending = summary.get("renames_pending")
    return (
        f"summary: {summary['mode']} exit {summary['exit_code']}"
        f"{' (failed: ' + ', '.join(sorted(failed)) + ')' if failed else ''}; "
        f"{report.plural(len(cat['course_codes']), 'department')}, "
        f"{report.plural(len(cat['courses']), 'course')}, "
        f"{report.plural(len(summary['problems']), 'problem')}{_problem_changes(summary)}; "
        f"renames {sum(r['applied'] for r in renames)}/{len(renames)}"
        f"{f' ({pending} pending)' if pending else ''}; "
        f"mongo +{mongo['inserted']} ~{mongo['updated']} -{mongo['deleted']}"
        f"{_not_applied(mongo)}; "
        f"sheet {'written' if summary['sheet'].get('written') else 'not written'}; "
        f"api calls drive {calls['drive']} sheets {calls['sheets']} mongo {calls['mongo']}; "
        f"{phases}"
    )


def preview_text(
    mode: str,
    exit_code: int,
    built: Catalog,
    plan: website.Plan,
    *,
    refusal: str | None,
    sheet_skipped: str | None,
    sheet_in_sync: bool | None,
) -> str:
    """What `--dry-run` and `check` print for people."""
    lines = [report.catalog_text(built), "", report.plan_text(plan)]
    if refusal:
        lines.append(f"Mass-delete guard: {refusal}")
    if sheet_skipped is not None:
        lines.append(f"Sheet: {sheet_skipped}; the sheet step would be skipped")
    elif sheet_in_sync is not None:
        lines.append("Sheet: up to date" if sheet_in_sync else "Sheet: would be rewritten")
    if mode == "check":
        lines.append(
            "Check: in sync"
            if exit_code == 0
            else "Check: out of sync"
            if exit_code == 1
            else "Check: could not check"
        )
    return "\n".join(lines)


def _problem_changes(summary: Mapping[str, Any]) -> str:
    changes = summary.get("problem_changes") or {}
    new, resolved = changes.get("new", 0), changes.get("resolved", 0)
    return f" ({new} new, {resolved} resolved)" if new or resolved else ""


def _not_applied(mongo: Mapping[str, Any]) -> str:
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


# ---------------------------------------------------------------- a run in progress


class HasCalls(Protocol):
    def calls(self) -> dict[str, int]: ...


class Timer:
    """Phase timings for the summary (`timings_s`)."""

    def __init__(self, services: HasCalls) -> None:
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


@dataclass
class Progress:
    """What a run knows so far, so a run that stops early still reports it (contract §8)."""

    mode: str
    timer: Timer
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


# ---------------------------------------------------------------- change log lines

# Line breaks and other control characters a name may hold (newline, CR, NEL, U+2028).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """`text` as one log line: control characters shown escaped (`\\n`), so a file name
    cannot break a problem over lines or forge a line of its own."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def problem_key(problem: Problem) -> str:
    """One problem, as remembered between runs (its category and one-line message)."""
    return f"{problem.category.value}: {one_line(problem.message)}"


def log_list(
    label: str, lines: Sequence[str], *, level: int = logging.INFO, more: str = "see --json"
) -> None:
    """One log line per entry, at most `LOG_LIST_LIMIT`, then how many more there are."""
    for line in lines[:LOG_LIST_LIMIT]:
        log.log(level, "%s: %s", label, line)
    if len(lines) > LOG_LIST_LIMIT:
        log.log(level, "%s: … and %d more (%s)", label, len(lines) - LOG_LIST_LIMIT, more)


def log_problems(problems: Sequence[Problem], previous: Sequence[str] | None) -> dict[str, int]:
    """Log each problem once, not once per run: new ones since the last run at WARNING,
    resolved ones at INFO (the full list is in the sheet and the summary)."""
    keys = {problem_key(p): p for p in problems}
    before = set(previous or ())
    new = [one_line(p.message) for key, p in keys.items() if key not in before]
    # rename_failed is known only after the renames: not "resolved" before they ran.
    resolved = sorted(
        k.split(": ", 1)[-1] for k in before - keys.keys() if not k.startswith(f"{RENAME_FAILED}: ")
    )
    log_list("problem", new, level=logging.WARNING, more="the full list is in the sheet")
    log_list("resolved", resolved)
    if new or resolved:
        log.info(
            "problems: %d in all, %d new since the last run, %d resolved",
            len(keys),
            len(new),
            len(resolved),
        )
    return {"new": len(new), "resolved": len(resolved)}


def log_rename_problems(
    failed: Sequence[Problem], previous: Sequence[str] | None, *, renames_ran: bool
) -> dict[str, int]:
    """Rename failures are problems too: logged when new, and said when resolved."""
    failed_before = {k for k in previous or () if k.startswith(f"{RENAME_FAILED}: ")}
    failed_now = {problem_key(p): p for p in failed}
    log_list(
        "problem",
        [one_line(p.message) for k, p in failed_now.items() if k not in failed_before],
        level=logging.WARNING,
        more="the full list is in the sheet",
    )
    resolved = failed_before - failed_now.keys() if renames_ran else set()
    if renames_ran:
        log_list("resolved", sorted(k.split(": ", 1)[-1] for k in resolved))
    return {"new": len(failed_now.keys() - failed_before), "resolved": len(resolved)}


def website_changes(plan: website.Plan, applied: website.Applied | None) -> dict[str, Any]:
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


def log_website(website: Mapping[str, Any]) -> None:
    """Each course added, removed and renamed at INFO, then the counts."""
    log_list("website: added course", [one_line(n) for n in website["added"]])
    log_list("website: removed course", [one_line(n) for n in website["removed"]])
    log_list(
        "website: renamed course",
        [f"{one_line(r['from'])} → {one_line(r['to'])}" for r in website["renamed"]],
    )
    if website["added"] or website["removed"] or website["renamed"]:
        log.info(
            "website: %d courses added, %d removed, %d renamed",
            len(website["added"]),
            len(website["removed"]),
            len(website["renamed"]),
        )
