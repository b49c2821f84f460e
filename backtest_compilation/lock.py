"""The run lock (contract §5.2): one run at a time per `CACHE_DIR`. `fcntl.flock` on an
open file, which the kernel releases however its holder ends (a killed run's lock is
free). The file, never deleted (two runs could lock two files of one name), holds a
small JSON of the run (pid, start, mode, source, phase, progress) for `status` and for
the message a second run gives up with."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import Locked, cache_dir_error

log = logging.getLogger(__name__)


class Holder(logging.Handler):
    """This run, holding the lock (`held` until the `with` block ends). As a log handler
    it notes the progress lines a long phase logs (those with a `progress` extra)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd, self.pid, self.held = fd, os.getpid(), True
        self.started = datetime.now(UTC).isoformat(timespec="seconds")
        self.notes: dict[str, Any] = {}

    def note(self, **fields: Any) -> None:
        """Say what the run does (mode, phase, progress) for `status`; best effort."""
        self.notes.update(fields)
        if self.held:
            with contextlib.suppress(OSError):
                _write(self.fd, {"pid": self.pid, "started": self.started, **self.notes})

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "progress", None):
            self.note(progress=record.getMessage())


def path_in(cache_dir: Path) -> Path:
    """Where the lock file lives inside `CACHE_DIR`."""
    return Path(cache_dir) / "run.lock"


@contextlib.contextmanager
def hold(cache_dir: Path) -> Iterator[Holder]:
    """Hold the run lock for the `with` block, noting the run's progress. Raises `Locked`
    (exit 4) at once when another run holds it, `RunError` (exit 1) when `CACHE_DIR` is
    unusable."""
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
            last = _read(fd)
            who = f"pid {last['pid']}" if "pid" in last else "another process"
            since = f", started {last['started']}" if "started" in last else ""
            raise Locked(
                f"another run ({who}{since}) holds the lock {path!s}; "
                "this run gives up without changing anything"
            ) from None
        if "pid" in (last := _read(fd)):  # a clean release names no pid: the holder died
            log.warning("taking over the run lock left by pid %s, which died", last["pid"])
        me = Holder(fd)
        try:
            _write(fd, {"pid": me.pid, "started": me.started}, sync=True)
        except OSError as exc:  # a full disk: the state could not be saved either
            raise cache_dir_error(exc, path, "write the run lock") from None
        top = logging.getLogger("backtest_compilation")
        top.addHandler(me)
        try:
            yield me
        finally:
            top.removeHandler(me)
            me.held = False
            with contextlib.suppress(OSError):
                _write(fd, {"started": me.started, **me.notes})
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def peek(cache_dir: Path) -> dict[str, Any]:
    """What the lock file says, and `held`: whether a run holds it now (a shared,
    non-blocking probe that never keeps it)."""
    try:
        fd = os.open(path_in(cache_dir), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return {"held": False}
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)  # at once: a run starting now must get it
        return {**_read(fd), "held": False}
    except BlockingIOError:
        return {**_read(fd), "held": True}
    finally:
        os.close(fd)


def _read(fd: int) -> dict[str, Any]:
    try:
        doc = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write(fd: int, doc: dict[str, Any], *, sync: bool = False) -> None:
    # Overwritten in place, then cut: the file's block is already there, so a full disk
    # still takes the few bytes. Only taking the lock is flushed; notes are advice.
    data = json.dumps(doc).encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))
    if sync:
        os.fsync(fd)
