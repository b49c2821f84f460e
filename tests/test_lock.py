"""The run lock, with real processes: a second run gives up at once; a killed one's is taken."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backtest_compilation import lock
from backtest_compilation.errors import Locked, RunError
from tests.support.isolation import environment

# Holds the lock, says so on stdout, then waits for stdin to close (or to be killed).
HOLDER = """
import sys
from pathlib import Path
from backtest_compilation import lock
from tests.support.isolation import environment
with lock.hold(Path(sys.argv[1])) as me:
    print(me.pid, flush=True)
    sys.stdin.read()
"""


def start_holder(cache: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(cache)],
        cwd=cache,
        env=environment(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the lock is held
    assert line.strip() == str(proc.pid)
    return proc


def test_a_second_run_gets_locked_at_once_naming_the_holder(tmp_path: Path) -> None:
    holder = start_holder(tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(Locked) as info, lock.hold(tmp_path):
            pytest.fail("the lock must not be granted twice")
        assert time.monotonic() - started < 1.0
        assert info.value.exit_code == 4
        assert f"pid {holder.pid}" in str(info.value)
    finally:
        holder.communicate("")
    assert holder.returncode == 0
    # A clean release leaves the lock free and names no holder (only the last start).
    assert "pid" not in json.loads(lock.path_in(tmp_path).read_text())
    with lock.hold(tmp_path) as me:
        assert me.pid == os.getpid()


def test_a_lock_left_by_a_killed_run_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = start_holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert str(holder.pid) in lock.path_in(tmp_path).read_text()  # left behind
    with caplog.at_level(logging.WARNING), lock.hold(tmp_path) as me:
        assert me.pid == os.getpid()
        assert str(os.getpid()) in lock.path_in(tmp_path).read_text()
    assert f"left by pid {holder.pid}" in caplog.text


def test_a_second_holder_in_a_subprocess_exits_while_we_hold_it(tmp_path: Path) -> None:
    with lock.hold(tmp_path) as me:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from backtest_compilation import lock\n"
                "from backtest_compilation.errors import Locked\n"
                "try:\n"
                "    with lock.hold(Path(sys.argv[1])): pass\n"
                "except Locked as e:\n"
                "    print(e); sys.exit(e.exit_code)\n",
                str(tmp_path),
            ],
            cwd=tmp_path,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert out.returncode == 4
    assert f"pid {me.pid}" in out.stdout


def test_the_lock_is_released_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), lock.hold(tmp_path):
        1 / 0  # noqa: B018
    with lock.hold(tmp_path):
        pass


def test_garbage_in_the_lock_file_does_not_matter(tmp_path: Path) -> None:
    lock.path_in(tmp_path).write_bytes(b"\xff\xfe not json")
    with lock.hold(tmp_path) as me:
        assert me.pid == os.getpid()


def test_an_unusable_cache_dir_is_a_run_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(RunError, match="cannot open the run lock") as info, lock.hold(blocked):
        pass
    assert info.value.exit_code == 1


def test_a_full_cache_dir_is_said_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lock.os, "pwrite", full)
    with pytest.raises(RunError) as info, lock.hold(tmp_path):
        pass
    assert info.value.exit_code == 1
    assert f"CACHE_DIR {str(tmp_path)!r} is full (No space left on device)" in str(info.value)
    monkeypatch.undo()
    with lock.hold(tmp_path):  # released: the next run takes it
        pass
