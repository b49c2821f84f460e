"""What the last sync did, kept in `CACHE_DIR` for people and monitors (contract §7).

- `last-run.json`: the run's §8 object plus when it started and ended;
- `last-success.json`: the same for the last run that succeeded completely;
- `report.html`: the run as a page (problems link to Drive), readable on a phone.

Each file is replaced atomically (temporary file + rename), so a reader never sees
half a file. Writing them never fails a run: a cache that cannot be written is
logged, and the run's exit code stands.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from . import report

log = logging.getLogger(__name__)

LAST_RUN: Final = "last-run.json"
LAST_SUCCESS: Final = "last-success.json"
REPORT: Final = "report.html"


def _remove_stale_temps(path: Path) -> None:
    """Temporary files of `path` left by a process killed while writing (its pid is in
    the name); those of a live process are left alone."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            with contextlib.suppress(OSError):
                tmp.unlink()
        except PermissionError:
            pass  # alive, another user's


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step (temporary file in the same directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def pending_renames(summary: dict[str, Any]) -> int:
    """Renames planned but not done that are not failures (they are tried next run)."""
    if isinstance(summary.get("renames_pending"), int):
        return int(summary["renames_pending"])
    problems = summary.get("problems") or []
    failed = {p.get("id") for p in problems if p.get("category") == "rename_failed"}
    renames = summary.get("renames") or []
    return sum(1 for r in renames if not r.get("applied") and r.get("id") not in failed)


def record(
    summary: dict[str, Any], *, started: datetime, finished: datetime, error: str = ""
) -> dict[str, Any]:
    """The `last-run.json` object: contract §8's `summary` plus times and, for a run that
    stopped before it had a summary, the error that stopped it."""
    out = dict(summary)
    out["started_at"] = started.astimezone(UTC).isoformat(timespec="seconds")
    out["finished_at"] = finished.astimezone(UTC).isoformat(timespec="seconds")
    out["pending_renames"] = pending_renames(summary)
    if error:
        out["error"] = error
    return out


def failure_summary(mode: str, exit_code: int, error: str) -> dict[str, Any]:
    """A §8-shaped object for a run that ended before the pipeline returned one."""
    return {
        "mode": mode,
        "ok": False,
        "exit_code": exit_code,
        "catalog": {"course_codes": [], "courses": [], "crosslisted": []},
        "problems": [],
        "renames": [],
        "mongo": {"inserted": 0, "updated": 0, "deleted": 0, "in_sync": False},
        "sheet": {"written": False, "not_found": [], "ambiguous": []},
        "api_calls": {},
        "timings_s": {},
        "failed": {"run": error},
    }


def save(
    cache_dir: Path,
    summary: dict[str, Any],
    *,
    started: datetime,
    finished: datetime,
    headline: str,
    mongo_lines: tuple[str, ...] | list[str] = (),
    error: str = "",
) -> bool:
    """Write `last-run.json`, `report.html` and, for a complete success,
    `last-success.json`. Returns False (after a warning) when they could not be written."""
    doc = record(summary, started=started, finished=finished, error=error)
    text = _dumps(doc)
    when = finished.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    page = report.html_page(
        doc,
        title=f"backtest-compilation: {doc.get('mode', 'sync')} of {when} UTC",
        headline=headline,
        mongo_lines=list(mongo_lines),
        error=error,
    )
    directory = Path(cache_dir)
    try:
        write_atomically(directory / LAST_RUN, text)
        if doc.get("ok") and doc.get("mode") == "sync":
            write_atomically(directory / LAST_SUCCESS, text)
        write_atomically(directory / REPORT, page)
    except OSError as exc:
        log.warning("cannot write the run record in %s: %s", directory, exc.strerror or exc)
        return False
    log.info("run record: %s and %s written in CACHE_DIR", LAST_RUN, REPORT)
    return True


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


def when(doc: dict[str, Any], key: str = "finished_at") -> datetime | None:
    """A time field of a record, or None."""
    try:
        return datetime.fromisoformat(str(doc[key])).astimezone(UTC)
    except (KeyError, ValueError, TypeError):
        return None
