"""`status`: did the last run work, when is the next, is anyone running now (contract §7).

Reads only files in `CACHE_DIR` (the run record, the heartbeat, the lock) and changes
nothing, so it is cheap enough to be the container's health check: exit 0 when the last
run succeeded (and, when a scheduler has been running here, its heartbeat is fresh),
1 otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from . import lastrun, lock, schedule


def _lock_holder(cache_dir: Path) -> dict[str, Any]:
    """Who holds the run lock; a shared, non-blocking probe that never takes it over."""
    path = lock.path_in(cache_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return {"held": False}
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            held = True
        else:
            held = False
            fcntl.flock(fd, fcntl.LOCK_UN)
        if not held:
            return {"held": False}
        try:
            doc = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except (OSError, ValueError):
            doc = {}
        return {"held": True, "pid": doc.get("pid"), "started": doc.get("started")}
    finally:
        os.close(fd)


def _run_view(doc: dict[str, Any]) -> dict[str, Any]:
    catalog = doc.get("catalog") or {}
    mongo = doc.get("mongo") or {}
    renames = doc.get("renames") or []
    return {
        "started_at": doc.get("started_at"),
        "finished_at": doc.get("finished_at"),
        "mode": doc.get("mode"),
        "ok": bool(doc.get("ok")),
        "exit_code": doc.get("exit_code"),
        "counts": {
            "departments": len(catalog.get("course_codes") or []),
            "courses": len(catalog.get("courses") or []),
            "problems": len(doc.get("problems") or []),
            "renames_applied": sum(1 for r in renames if r.get("applied")),
            "mongo_inserted": mongo.get("inserted", 0),
            "mongo_updated": mongo.get("updated", 0),
            "mongo_deleted": mongo.get("deleted", 0),
            "sheet_written": bool((doc.get("sheet") or {}).get("written")),
        },
        "failed_sinks": sorted((doc.get("failed") or {}).keys()),
        "failures": doc.get("failed") or {},
        "pending_renames": doc.get("pending_renames", lastrun.pending_renames(doc)),
        "error": doc.get("error", ""),
    }


def gather(
    cache_dir: Path,
    *,
    schedule_expr: str,
    tz: str,
    now: datetime | None = None,
    healthy_within_s: float = schedule.HEALTHY_WITHIN_S,
) -> dict[str, Any]:
    """Everything `status` says, as plain data (what `status --json` prints)."""
    now = now or datetime.now(UTC)
    cache_dir = Path(cache_dir)
    last = lastrun.load(cache_dir / lastrun.LAST_RUN)
    success = lastrun.load(cache_dir / lastrun.LAST_SUCCESS)
    reasons: list[str] = []
    if last is None:
        reasons.append(f"no run recorded in {cache_dir / lastrun.LAST_RUN}")
    elif not last.get("ok"):
        reasons.append(f"the last run failed with exit code {last.get('exit_code')}")

    beat_path = schedule.heartbeat_path(cache_dir)
    beat = schedule.read_heartbeat(beat_path)
    scheduler: dict[str, Any] | None = None
    if beat is not None:
        try:
            age = max(0.0, now.timestamp() - os.stat(beat_path).st_mtime)
        except OSError:
            age = float("inf")
        fresh = age <= healthy_within_s
        upcoming = beat.next_run
        if upcoming is None or upcoming < now:
            with contextlib.suppress(ValueError, KeyError):
                upcoming = schedule.next_run(schedule_expr, ZoneInfo(tz), now)
        scheduler = {
            "heartbeat_age_s": round(age, 1) if age != float("inf") else None,
            "fresh": fresh,
            "next_run": upcoming.astimezone(UTC).isoformat(timespec="seconds")
            if upcoming
            else None,
        }
        if not fresh:
            reasons.append(
                f"the scheduler's heartbeat is {age / 60:.0f} min old "
                f"(more than {healthy_within_s / 60:.0f}): it has stopped or hangs"
            )
    return {
        "ok": not reasons,
        "reasons": reasons,
        "last_run": _run_view(last) if last is not None else None,
        "last_success": _run_view(success) if success is not None else None,
        "scheduler": scheduler,
        "lock": _lock_holder(cache_dir),
        "report": str(cache_dir / lastrun.REPORT)
        if (cache_dir / lastrun.REPORT).exists()
        else None,
    }


def _ago(iso: str | None, now: datetime) -> str:
    if not iso:
        return "never"
    try:
        then = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    minutes = (now - then).total_seconds() / 60
    if minutes < 90:
        ago = f"{minutes:.0f} min ago"
    elif minutes < 60 * 48:
        ago = f"{minutes / 60:.1f} h ago"
    else:
        ago = f"{minutes / 1440:.0f} days ago"
    return f"{iso.replace('T', ' ')} ({ago})"


def text(info: dict[str, Any], *, tz: str, now: datetime | None = None) -> str:
    """`status` for people: a few lines, the verdict first."""
    now = now or datetime.now(UTC)
    lines = ["status: OK" if info["ok"] else "status: NOT OK — " + "; ".join(info["reasons"])]
    last = info["last_run"]
    if last is None:
        lines.append("last run: none recorded yet")
    else:
        c = last["counts"]
        lines.append(
            f"last run: {_ago(last['finished_at'], now)}, {last['mode']}, exit {last['exit_code']}"
        )
        lines.append(
            f"  {c['departments']} departments, {c['courses']} courses, {c['problems']} problems; "
            f"renames {c['renames_applied']} done, {last['pending_renames']} pending; "
            f"mongo +{c['mongo_inserted']} ~{c['mongo_updated']} -{c['mongo_deleted']}; "
            f"sheet {'written' if c['sheet_written'] else 'not written'}"
        )
        for sink, why in sorted(last["failures"].items()):
            lines.append(f"  failed: {sink}: {why}")
        if last["error"] and "run" not in last["failures"]:
            lines.append(f"  error: {last['error']}")
    success = info["last_success"]
    lines.append(
        f"last fully successful run: {_ago(success['finished_at'] if success else None, now)}"
    )
    sched = info["scheduler"]
    if sched is None:
        lines.append("scheduler: no heartbeat here (not running `schedule` with this CACHE_DIR)")
    else:
        nxt = sched["next_run"]
        local = (
            datetime.fromisoformat(nxt).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")
            if nxt
            else "unknown"
        )
        age = sched["heartbeat_age_s"]
        lines.append(
            f"scheduler: heartbeat {'unknown' if age is None else f'{age:.0f} s'} old "
            f"({'fresh' if sched['fresh'] else 'STALE'}), next run {local}"
        )
    held = info["lock"]
    if held.get("held"):
        lines.append(f"running now: pid {held.get('pid')}, started {held.get('started')}")
    else:
        lines.append("running now: no (the run lock is free)")
    if info["report"]:
        lines.append(f"report: {info['report']}")
    return "\n".join(lines)
