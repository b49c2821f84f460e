"""What the last syncs did, for people and monitors (contract §7), each file replaced
atomically in the Drive source's `CACHE_DIR` (a `--source` run keeps its own, `folder`):
`last-run.json` (contract §8's object of the last run that changed or failed something,
with its start and end in `TZ`), `report.html` (the same as a page) and
`last-success.json` (a few hundred bytes of facts of the last successful run). An
unchanged run rewrites only `last-success.json`. Writing them never fails a run.
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
    """Where a run's record goes: `CACHE_DIR`, or a local `--source`'s own state folder
    (a try-out never overwrites what `status` says about the Drive runs)."""
    if source is None:
        return Path(cache_dir)
    return state.folder(cache_dir, state.source_key("local", os.path.abspath(source)))


def _pending_renames(summary: dict[str, Any]) -> int:
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
    at = {"started_at": started, "finished_at": finished}
    return {
        "mode": summary.get("mode"),
        "ok": bool(summary.get("ok")),
        "exit_code": summary.get("exit_code"),
        **{k: t.astimezone(zone).isoformat(timespec="seconds") for k, t in at.items()},
        "unchanged": bool(summary.get("unchanged")),
        "failed": summary.get("failed") or {},
        "counts": {
            **{k: counted[k] for k in ("departments", "courses", "problems", "renames_applied")},
            **{f"mongo_{k}": mongo.get(k, 0) for k in ("inserted", "updated", "deleted")},
            "sheet_written": bool((summary.get("sheet") or {}).get("written")),
        },
        "pending_renames": _pending_renames(summary),
        "api_calls": summary.get("api_calls") or {},
    }


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
    """Record a sync (see the module docstring); False (after a warning) when the files
    could not be written."""
    summary = run.small if isinstance(run, RunSummary) else run
    small = facts(summary, started=started, finished=finished, zone=zone)
    c = small["counts"]
    wrote = c["sheet_written"] or c["mongo_inserted"] or c["mongo_updated"] or c["mongo_deleted"]
    directory = Path(directory)
    try:
        if not (small["unchanged"] and small["ok"]) or wrote:
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
    """Contract §8's object of a run that failed with `exit_code` before it knew anything."""
    exc = RunError(error)
    exc.exit_code = exit_code
    return RunSummary(mode).failed("run", exc).summary


def _dumps(doc: dict[str, Any]) -> str:
    """`doc` as JSON, one field a line (`indent=` runs the slow pure-Python encoder)."""
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
