"""`status` (contract §7): did the last run work, when is the next, is one running now, as
the run record, the lock file and the heartbeat say. It changes nothing (a health check)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from . import lastrun, lock, schedule

RUN_FIELDS = ("started_at", "finished_at", "mode", "ok", "exit_code", "failed", "counts")


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _when(doc: dict[str, Any], key: str = "finished_at") -> datetime:
    return datetime.fromisoformat(doc[key])


def _run_view(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """What `status --json` shows of a run's facts (`lastrun.save`), as recorded."""
    return None if doc is None else {k: doc[k] for k in (*RUN_FIELDS, "pending_renames")}


def gather(cache_dir: Path, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything `status` says, as plain data (what `status --json` prints)."""
    now = now or datetime.now(UTC)
    last, success = (_load(cache_dir / name) for name in (lastrun.LAST_RUN, lastrun.LAST_SUCCESS))
    # An unchanged run records only its facts (last-success.json): the later is the last run.
    latest = max(filter(None, (last, success)), key=_when, default=None)
    held = lock.peek(cache_dir)
    reasons: list[str] = []
    if latest is None:
        reasons.append(f"no run recorded in {cache_dir / lastrun.LAST_RUN}")
    elif not latest["ok"]:
        reasons.append(f"the last run failed with exit code {latest['exit_code']}")
    # The lock file keeps the last start: a sync of the drive after the last record has none.
    drive_sync = held.get("mode") == "sync" and not held.get("source", "").startswith("local:")
    if drive_sync and not held["held"] and (not latest or _when(held, "started") > _when(latest)):
        why = "it was killed, or could not write CACHE_DIR"
        reasons.append(f"the run started at {held['started']} left no record ({why})")
    scheduler = _scheduler(cache_dir, now, held["held"])
    if scheduler and scheduler["next_run"] is None:
        reasons.append("the scheduler has stopped (its heartbeat names no next run)")
    if scheduler and not scheduler["fresh"]:
        age = scheduler["heartbeat_age_s"] / 60
        reasons.append(f"the scheduler's heartbeat is {age:.0f} min old: it has stopped or hangs")
    page = cache_dir / lastrun.REPORT
    return {
        "ok": not reasons,
        "reasons": reasons,
        "last_run": _run_view(latest),
        "last_success": _run_view(success),
        "scheduler": scheduler,
        "lock": held if held["held"] else {"held": False},
        "report": str(page) if page.exists() else None,
    }


def _scheduler(cache_dir: Path, now: datetime, running: bool) -> dict[str, Any] | None:
    """The heartbeat's age and next run; fresh when young or during a run within its time."""
    path = schedule.heartbeat_path(cache_dir)
    if (beat := schedule.read_heartbeat(path)) is None:
        return None
    age = max(0.0, now.timestamp() - path.stat().st_mtime)
    busy = running and beat.busy_until is not None and now <= beat.busy_until
    return {
        "heartbeat_age_s": round(age, 1),
        "fresh": age <= schedule.HEALTHY_WITHIN_S or busy,
        "next_run": beat.next_run.isoformat(timespec="seconds") if beat.next_run else None,
    }


def _ago(iso: str | None, now: datetime, zone: ZoneInfo) -> str:
    """`2026-03-02 09:58:00-05:00 (2 min ago)`: a recorded time in `TZ`, with its offset."""
    if not iso:
        return "never"
    then = datetime.fromisoformat(iso)
    minutes = (now - then).total_seconds() / 60
    ago = f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"
    return f"{then.astimezone(zone).isoformat(sep=' ', timespec='seconds')} ({ago} ago)"


def text(info: dict[str, Any], *, tz: str, now: datetime | None = None) -> str:
    """`status` for people: a few lines, the verdict first."""
    now, zone = now or datetime.now(UTC), ZoneInfo(tz)
    lines = ["status: OK" if info["ok"] else "status: NOT OK — " + "; ".join(info["reasons"])]
    if (last := info["last_run"]) is None:
        lines.append("last run: none recorded yet")
    else:
        c = last["counts"]
        lines += [
            f"last run: {_ago(last['finished_at'], now, zone)}, {last['mode']}, "
            f"exit {last['exit_code']}",
            f"  {c['departments']} departments, {c['courses']} courses, {c['problems']} problems; "
            f"renames {c['renames_applied']} done, {last['pending_renames']} pending; "
            f"mongo +{c['mongo_inserted']} ~{c['mongo_updated']} -{c['mongo_deleted']}; "
            f"sheet {'written' if c['sheet_written'] else 'not written'}",
            *(f"  failed: {sink}: {why}" for sink, why in sorted(last["failed"].items())),
        ]
    success = (info["last_success"] or {}).get("finished_at")
    lines.append(f"last fully successful run: {_ago(success, now, zone)}")
    if (sched := info["scheduler"]) is None:
        lines.append("scheduler: no heartbeat here (not running `schedule` with this CACHE_DIR)")
    else:
        nxt = sched["next_run"]
        at = f"{datetime.fromisoformat(nxt).astimezone(zone):%Y-%m-%d %H:%M %Z}" if nxt else "none"
        lines.append(
            f"scheduler: heartbeat {sched['heartbeat_age_s']:.0f} s old "
            f"({'fresh' if sched['fresh'] else 'STALE'}), next run {at}"
        )
    held = info["lock"]  # its notes: the phase, and the last progress line logged
    phase, progress = held.get("phase", ""), str(held.get("progress") or "")
    doing = f", phase {phase}" if phase else ""
    doing += f" ({progress})" if progress and progress.startswith(phase) else ""  # this phase's
    running = f"pid {held.get('pid')}, started {_ago(held.get('started'), now, zone)}{doing}"
    lines.append(f"running now: {running if held['held'] else 'no (the run lock is free)'}")
    if info["report"]:
        lines.append(f"report: {info['report']}")
    return "\n".join(lines)
