"""`main.py schedule` in a process of its own, for the tests that watch the scheduler."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

MAIN = str(Path(__file__).resolve().parents[2] / "main.py")


@contextmanager
def scheduler(env: Mapping[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """The scheduler running with `env`; killed on the way out, whatever happened."""
    child = subprocess.Popen(
        [sys.executable, MAIN, "schedule"],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield child
    finally:
        child.kill()


def wait_for(path: Path, seconds: float) -> None:
    """Return when `path` exists or after `seconds` (the caller asserts which)."""
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def stop(child: subprocess.Popen[str], seconds: float) -> str:
    """SIGTERM, as a container stop sends it; the scheduler's stderr once it exited."""
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=seconds)
    return stderr
