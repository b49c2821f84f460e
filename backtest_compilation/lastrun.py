"""What the last syncs did, kept for people and monitors (contract §7), each file
replaced atomically, in the Drive source's `CACHE_DIR` (a local `--source` run keeps
its own, beside its state, in `folder`):

- `last-run.json`: contract §8's object of the last run that changed or failed
  something — the current state (problems, classes not found, pending renames) and
  what that run changed — plus when it started and ended (in `TZ`, with the offset);
- `report.html`: the same as a page (problems link to Drive), readable on a phone;
- `last-success.json`: a few hundred bytes of run facts (when, exit code, counts) of
  the last run that succeeded.

A run that finds the drive unchanged and writes nothing anywhere rewrites only
`last-success.json`: the other two still show the current state, and say when it last
changed. Writing them never fails a run: a cache that cannot be written is logged.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Final

from . import report, state
from .errors import RunError
from .files import write_atomic
from .outcome import RunSummary, count

log = logging.getLogger(__name__)

LAST_RUN: Final = "last-run.json"
LAST_SUCCESS: Final = "last-success.json"
REPORT: Final = "report.html"


def folder(cache_dir: Path, source: Path | None = None) -> Path:
    """Where a run's record goes: `CACHE_DIR` for the Drive source; a local `--source`
    keeps its own beside its state (`state.folder`), so a try-out never overwrites what
    `status` and the container's health check say about the Drive runs."""
    if source is None:
        return Path(cache_dir)
    return state.folder(cache_dir, state.source_key("local", os.path.abspath(source)))


def pending_renames(summary: dict[str, Any]) -> int:
    """Renames planned but not done that are not failures (they are tried next run)."""
    if isinstance(summary.get("renames_pending"), int):
        return int(summary["renames_pending"])
    problems = summary.get("problems") or []
    failed = {p.get("id") for p in problems if p.get("category") == "rename_failed"}
    renames = summary.get("renames") or []
    return sum(1 for r in renames if not r.get("applied") and r.get("id") not in failed)


def facts(
    summary: dict[str, Any], *, started: datetime, finished: datetime, zone: tzinfo = UTC
) -> dict[str, Any]:
    """The run facts of contract §8's `summary`: times, exit code, failures, counts."""
    mongo = summary.get("mongo") or {}
    counted = count(summary)
    return {
        "mode": summary.get("mode"),
        "ok": bool(summary.get("ok")),
        "exit_code": summary.get("exit_code"),
        "started_at": started.astimezone(zone).isoformat(timespec="seconds"),
        "finished_at": finished.astimezone(zone).isoformat(timespec="seconds"),
        "unchanged": bool(summary.get("unchanged")),
        "failed": summary.get("failed") or {},
        "counts": {
            **{k: counted[k] for k in ("departments", "courses", "problems", "renames_applied")},
            "mongo_inserted": mongo.get("inserted", 0),
            "mongo_updated": mongo.get("updated", 0),
            "mongo_deleted": mongo.get("deleted", 0),
            "sheet_written": bool((summary.get("sheet") or {}).get("written")),
        },
        "pending_renames": pending_renames(summary),
        "api_calls": summary.get("api_calls") or {},
    }


def wrote_nothing(summary: dict[str, Any]) -> bool:
    """A successful sync that found the drive unchanged and wrote nothing anywhere."""
    mongo = summary.get("mongo") or {}
    return (
        bool(summary.get("unchanged"))
        and bool(summary.get("ok"))
        and not (summary.get("sheet") or {}).get("written")
        and not any(mongo.get(k) for k in ("inserted", "updated", "deleted"))
    )


def save(
    directory: Path,
    run: RunSummary | dict[str, Any],
    *,
    started: datetime,
    finished: datetime,
    headline: str,
    mongo_lines: tuple[str, ...] | list[str] = (),
    error: str = "",
    zone: tzinfo = UTC,
) -> bool:
    """Record a sync (see the module docstring). Returns False (after a warning) when
    the files could not be written. Given a `RunSummary`, an unchanged run's catalog is
    not rendered (only `last-success.json` is written)."""
    summary = run.small if isinstance(run, RunSummary) else run
    small = facts(summary, started=started, finished=finished, zone=zone)
    directory = Path(directory)
    try:
        if not wrote_nothing(summary):
            summary = run.summary if isinstance(run, RunSummary) else run
            doc = {**summary, **{k: small[k] for k in ("started_at", "finished_at")}}
            doc.update(counts=small["counts"], pending_renames=small["pending_renames"])
            if error:
                doc["error"] = error
            when = finished.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
            page = report.html_page(
                doc,
                title=f"backtest-compilation: {doc.get('mode', 'sync')} of {when}",
                headline=headline,
                mongo_lines=list(mongo_lines),
                error=error,
            )
            write_atomic(directory / LAST_RUN, _dumps(doc))
            write_atomic(directory / REPORT, page)
        if small["ok"] and small["mode"] == "sync":
            write_atomic(directory / LAST_SUCCESS, json.dumps(small, ensure_ascii=False))
    except OSError as exc:
        log.warning("cannot write the run record in %s: %s", directory, exc.strerror or exc)
        return False
    return True


def failure_summary(mode: str, exit_code: int, error: str) -> dict[str, Any]:
    """Contract §8's object of a run that ended with `exit_code` before it knew
    anything (`RunSummary.failed`, the one way a failure is recorded)."""
    exc = RunError(error)
    exc.exit_code = exit_code
    return RunSummary(mode).failed("run", exc).summary


def _dumps(doc: dict[str, Any]) -> str:
    """`doc` as JSON, one field a line with each value compact: `indent=` would run the
    pure-Python encoder, several times slower on a large drive's record (issue 13)."""
    fields = (
        f"  {json.dumps(key, ensure_ascii=False)}: {json.dumps(value, ensure_ascii=False)}"
        for key, value in doc.items()
    )
    return "{\n" + ",\n".join(fields) + "\n}\n"


def load(path: Path) -> dict[str, Any] | None:
    """A record written by `save`, or None when it is missing or unreadable."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def when(doc: dict[str, Any] | None, key: str = "finished_at") -> datetime | None:
    """A time field of a record, or None."""
    try:
        return datetime.fromisoformat(str((doc or {})[key])).astimezone(UTC)
    except (KeyError, ValueError, TypeError):
        return None
