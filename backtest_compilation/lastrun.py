"""What the last syncs did (contract §7), in the source's own `folder`: `last-run.json` and
`report.html` (§8's object and facts, and as a page) of the last sync that changed or failed
something, `last-success.json` (facts only) of the last successful one."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Final

from . import report, state
from .files import write_atomic
from .outcome import RunSummary, count

log = logging.getLogger(__name__)

LAST_RUN: Final = "last-run.json"
LAST_SUCCESS: Final = "last-success.json"
REPORT: Final = "report.html"


def folder(cache_dir: Path, source: Path | None = None) -> Path:
    """Where a run's record goes: `CACHE_DIR`, or a local `--source`'s own (never the former)."""
    if source is None:
        return Path(cache_dir)
    return state.folder(cache_dir, state.source_key("local", os.path.abspath(source)))


def save(
    directory: Path,
    run: RunSummary | dict[str, Any],
    *,
    started: datetime,
    finished: datetime,
    headline: str,
    mongo_lines: tuple[str, ...] = (),
    zone: tzinfo = UTC,
) -> None:
    """Record a sync, or §8's object of one; never fails it (a warning says what failed)."""
    summary = run.small if isinstance(run, RunSummary) else run
    started, finished = started.astimezone(zone), finished.astimezone(zone)
    mongo, counted = summary.get("mongo") or {}, count(summary)
    unapplied = sum(1 for r in summary.get("renames") or () if not r.get("applied"))
    facts = {  # what `status` shows: times in `zone`, exit code, failures, counts
        **{k: summary[k] for k in ("mode", "ok", "exit_code")},
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "failed": summary.get("failed") or {},
        "counts": {
            **{k: counted[k] for k in ("departments", "courses", "problems", "renames_applied")},
            **{f"mongo_{k}": mongo.get(k, 0) for k in ("inserted", "updated", "deleted")},
            "sheet_written": bool((summary.get("sheet") or {}).get("written")),
        },
        "pending_renames": summary.get("renames_pending", unapplied),  # renames that ran
    }
    wrote = any(v for k, v in facts["counts"].items() if k.startswith(("mongo_", "sheet_")))
    try:
        if not (summary.get("unchanged") and facts["ok"]) or wrote:
            doc = {**(run.summary if isinstance(run, RunSummary) else run), **facts}
            title = f"backtest-compilation: {doc['mode']} of {finished:%Y-%m-%d %H:%M %Z}"
            page = report.html_page(doc, title=title, headline=headline, mongo_lines=mongo_lines)
            write_atomic(Path(directory) / LAST_RUN, json.dumps(doc, ensure_ascii=False))
            write_atomic(Path(directory) / REPORT, page)
        if facts["ok"]:
            write_atomic(Path(directory) / LAST_SUCCESS, json.dumps(facts, ensure_ascii=False))
    except OSError as exc:
        log.warning("cannot write the run record in %s: %s", directory, exc.strerror or exc)
