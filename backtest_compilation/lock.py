"""The run lock (contract §5.2): one run at a time per `CACHE_DIR`.

`fcntl.flock` on an open file: the kernel releases it when the holder's process ends,
however it ends, so a lock left by a killed run is simply free for the next one. The
file holds the holder's pid and start time, only to name it in the message a second
run gives up with. The file is never deleted: deleting it would let two runs lock two
different files of the same name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from .errors import Locked, cache_dir_error

log = logging.getLogger(__name__)

FILE_NAME: Final = "run.lock"


@dataclass(slots=True)
class Holder:
    """Who holds (or last held) the lock, as written in the lock file."""

    pid: int | None
    started: str | None
    notes: dict[str, Any] = field(default_factory=dict)
    fd: int = -1  # the open lock file, while held

    def note(self, **fields: Any) -> None:
        """Say what the run is doing (its mode, phase, progress), for `status`; a file
        that cannot be written loses the note, never the run."""
        self.notes.update(fields)
        if self.fd >= 0:
            doc = {"pid": self.pid, "started": self.started, **self.notes}
            with contextlib.suppress(OSError):
                _write(self.fd, json.dumps(doc), sync=False)


def path_in(cache_dir: Path) -> Path:
    """Where the lock file lives inside `CACHE_DIR`."""
    return Path(cache_dir) / FILE_NAME


@contextlib.contextmanager
def hold(cache_dir: Path, *, now: datetime | None = None) -> Iterator[Holder]:
    """Hold the run lock for the `with` block; yields this run's `Holder`.

    Raises `Locked` (exit 4) at once, without waiting, when another run holds it, and
    `RunError` (exit 1) when `CACHE_DIR` cannot be created or the file opened.
    """
    path = path_in(cache_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise cache_dir_error(exc, path, "open the run lock") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            who = f"pid {holder.pid}" if holder.pid is not None else "another process"
            since = f", started {holder.started}" if holder.started else ""
            raise Locked(
                f"another run ({who}{since}) holds the lock {path!s}; "
                "this run gives up without changing anything"
            ) from None
        previous = _read(fd)
        if previous.pid is not None:
            # A clean release empties the file, so content means the last holder died.
            log.warning(
                "taking over the run lock left by pid %s (started %s), which ended "
                "without releasing it",
                previous.pid,
                previous.started,
            )
        me = Holder(os.getpid(), (now or datetime.now(UTC)).isoformat(timespec="seconds"), fd=fd)
        try:
            _write(fd, json.dumps({"pid": me.pid, "started": me.started}))
        except OSError as exc:
            # A full CACHE_DIR: the lock is held all the same (flock needs no space),
            # but the state file could not be saved either, so stop here, cleanly.
            raise cache_dir_error(exc, path, "write the run lock") from None
        log.debug("run lock %s taken by pid %s", path, me.pid)
        try:
            yield me
        finally:
            me.fd = -1
            # No pid: a clean end (the next holder does not warn); the start and mode stay.
            with contextlib.suppress(OSError):
                _write(fd, json.dumps({"started": me.started, **me.notes}), sync=False)
    finally:
        os.close(fd)  # closing the descriptor releases the flock


@contextlib.contextmanager
def noting_progress(held: Holder) -> Iterator[None]:
    """The progress lines of a long phase (renames: done of total, rate) also go to the
    lock file's notes, so `status` shows them while the run goes on."""

    class Noting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            progress = getattr(record, "progress", None)
            if isinstance(progress, dict):
                held.note(progress=progress)

    handler = Noting()
    top = logging.getLogger("backtest_compilation")
    top.addHandler(handler)
    try:
        yield
    finally:
        top.removeHandler(handler)


def _read(fd: int) -> Holder:
    try:
        raw = os.pread(fd, 4096, 0)
        doc = json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return Holder(None, None)
    if not isinstance(doc, dict):
        return Holder(None, None)
    pid, started = doc.get("pid"), doc.get("started")
    return Holder(
        pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        started if isinstance(started, str) else None,
    )


def peek(cache_dir: Path) -> dict[str, Any]:
    """What the lock file says — the latest run's `started`, `mode`, `source` and, while
    it runs (or when it died holding the lock), its `pid`, `phase` and `progress` — and
    `held`: whether a run holds it now. A shared, non-blocking probe: never takes it."""
    try:
        fd = os.open(path_in(cache_dir), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return {"held": False}
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            held = False
        except BlockingIOError:
            held = True
        try:
            doc = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except (OSError, ValueError):
            doc = {}
    finally:
        os.close(fd)
    return {**(doc if isinstance(doc, dict) else {}), "held": held}


def _write(fd: int, text: str, *, sync: bool = True) -> None:
    # Overwritten in place, then cut: the file's block is already there, so a full disk
    # still takes the few bytes.
    data = text.encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))
    if sync:  # notes are advice for `status`: not worth a disk flush each
        os.fsync(fd)
