"""`status`: did the last run work, when is the next, is anyone running now (contract §7).

Reads only files in `CACHE_DIR` and changes nothing: cheap enough to be the container's
health check (exit 0 when the last run succeeded and a scheduler's heartbeat is fresh)."""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from . import lastrun, lock, schedule


def _doing(held: dict[str, Any]) -> str:
    """`, phase renames: 1,200 of 6,700 done, 3.1/s` from the running run's notes."""
    out = f", phase {held['phase']}" if held.get("phase") else ""
    progress = held.get("progress")
    if isinstance(progress, dict) and str(progress.get("what")).startswith(held.get("phase", "")):
        total = progress.get("total") or 0
        out += f": {progress.get('done', 0):,}{f' of {total:,}' if total else ''} done"
        out += f", {progress.get('rate', 0):.1f}/s"
    return out


def _holder(peeked: dict[str, Any]) -> dict[str, Any]:
    """Who holds the run lock now, and what the run is doing."""
    if not peeked["held"]:
        return {"held": False}
    doing = {k: peeked[k] for k in ("phase", "progress") if k in peeked}
    return {"held": True, "pid": peeked.get("pid"), "started": peeked.get("started"), **doing}


def _run_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A run record (`last-run.json` or `last-success.json`) as `status` shows it."""
    failed = doc.get("failed") or {}
    return {
        **{k: doc.get(k) for k in ("started_at", "finished_at", "mode")},
        "ok": bool(doc.get("ok")),
        "exit_code": doc.get("exit_code"),
        "counts": doc.get("counts") or {},
        "failed_sinks": sorted(failed),
        "failures": failed,
        "pending_renames": doc.get("pending_renames", 0),
        "error": doc.get("error", ""),
    }


def _unrecorded(start: dict[str, Any], latest: dict[str, Any] | None) -> str | None:
    """Why the last start has no record: a sync of the drive that started (the lock file
    keeps its start) after the last record ended — killed, or unable to write it."""
    local = str(start.get("source", "")).startswith("local:")
    if start["held"] or start.get("mode") != "sync" or local:
        return None
    begun, ended = lastrun.when(start, "started"), lastrun.when(latest)
    if begun is None or (ended is not None and begun <= ended):
        return None
    return (
        f"the run started at {start['started']} left no record "
        "(it was killed, or could not write CACHE_DIR)"
    )


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
    # An unchanged run records only its facts (last-success.json): the later one is the
    # last run.
    never = datetime.min.replace(tzinfo=UTC)
    recorded = (d for d in (last, success) if d is not None)
    latest = max(recorded, key=lambda d: lastrun.when(d) or never, default=None)
    peeked = lock.peek(cache_dir)
    holder = _holder(peeked)
    reasons: list[str] = []
    if latest is None:
        reasons.append(f"no run recorded in {cache_dir / lastrun.LAST_RUN}")
    elif not latest.get("ok"):
        reasons.append(f"the last run failed with exit code {latest.get('exit_code')}")
    if why := _unrecorded(peeked, latest):
        reasons.append(why)
    scheduler = _scheduler(cache_dir, schedule_expr, tz, now, healthy_within_s, holder, reasons)
    page = cache_dir / lastrun.REPORT
    return {
        "ok": not reasons,
        "reasons": reasons,
        "last_run": _run_view(latest) if latest is not None else None,
        "last_success": _run_view(success) if success is not None else None,
        "scheduler": scheduler,
        "lock": holder,
        "report": str(page) if page.exists() else None,
    }


def _scheduler(
    cache_dir: Path,
    schedule_expr: str,
    tz: str,
    now: datetime,
    healthy_within_s: float,
    holder: dict[str, Any],
    reasons: list[str],
) -> dict[str, Any] | None:
    """The heartbeat's age and the next run; a stale heartbeat, or one naming no next run
    while no run is going (the scheduler stopped), is a reason for NOT OK."""
    beat_path = schedule.heartbeat_path(cache_dir)
    beat = schedule.read_heartbeat(beat_path)
    if beat is None:
        return None
    try:
        age = max(0.0, now.timestamp() - os.stat(beat_path).st_mtime)
    except OSError:
        age = float("inf")
    fresh = age <= healthy_within_s
    upcoming = beat.next_run
    if upcoming is None and not beat.running and not holder["held"]:
        reasons.append("the scheduler has stopped (its heartbeat names no next run)")
    elif upcoming is None or upcoming < now:
        with contextlib.suppress(ValueError, KeyError):
            upcoming = schedule.next_run(schedule_expr, ZoneInfo(tz), now)
    if not fresh:
        reasons.append(
            f"the scheduler's heartbeat is {age / 60:.0f} min old "
            f"(more than {healthy_within_s / 60:.0f}): it has stopped or hangs"
        )
    return {
        "heartbeat_age_s": round(age, 1) if age != float("inf") else None,
        "fresh": fresh,
        "next_run": upcoming.astimezone(UTC).isoformat(timespec="seconds") if upcoming else None,
    }


def _ago(iso: str | None, now: datetime, zone: ZoneInfo) -> str:
    if not iso:
        return "never"
    try:
        then = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    iso = then.astimezone(zone).isoformat(sep=" ", timespec="seconds")
    minutes = (now - then).total_seconds() / 60
    if minutes < 90:
        return f"{iso} ({minutes:.0f} min ago)"
    if minutes < 60 * 48:
        return f"{iso} ({minutes / 60:.1f} h ago)"
    return f"{iso} ({minutes / 1440:.0f} days ago)"


def text(info: dict[str, Any], *, tz: str, now: datetime | None = None) -> str:
    """`status` for people: a few lines, the verdict first."""
    now = now or datetime.now(UTC)
    zone = ZoneInfo(tz)
    lines = ["status: OK" if info["ok"] else "status: NOT OK — " + "; ".join(info["reasons"])]
    last = info["last_run"]
    if last is None:
        lines.append("last run: none recorded yet")
    else:
        c = last["counts"]
        ended = _ago(last["finished_at"], now, zone)
        lines.append(f"last run: {ended}, {last['mode']}, exit {last['exit_code']}")
        lines.append(
            f"  {c['departments']} departments, {c['courses']} courses, {c['problems']} problems; "
            f"renames {c['renames_applied']} done, {last['pending_renames']} pending; "
            f"mongo +{c['mongo_inserted']} ~{c['mongo_updated']} -{c['mongo_deleted']}; "
            f"sheet {'written' if c['sheet_written'] else 'not written'}"
        )
        lines += [f"  failed: {sink}: {why}" for sink, why in sorted(last["failures"].items())]
        if last["error"] and "run" not in last["failures"]:
            lines.append(f"  error: {last['error']}")
    success = (info["last_success"] or {}).get("finished_at")
    lines.append(f"last fully successful run: {_ago(success, now, zone)}")
    sched = info["scheduler"]
    if sched is None:
        lines.append("scheduler: no heartbeat here (not running `schedule` with this CACHE_DIR)")
    else:
        nxt = sched["next_run"]
        at = datetime.fromisoformat(nxt).astimezone(zone) if nxt else None
        local = f"{at:%Y-%m-%d %H:%M %Z}" if at else "unknown"
        age = sched["heartbeat_age_s"]
        lines.append(
            f"scheduler: heartbeat {'unknown' if age is None else f'{age:.0f} s'} old "
            f"({'fresh' if sched['fresh'] else 'STALE'}), next run {local}"
        )
    held = info["lock"]
    started = _ago(held.get("started"), now, zone)
    running = f"pid {held.get('pid')}, started {started}{_doing(held)}"
    lines.append(f"running now: {running if held.get('held') else 'no (the run lock is free)'}")
    if info["report"]:
        lines.append(f"report: {info['report']}")
    return "\n".join(lines)
