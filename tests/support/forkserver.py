"""A fork server for tests that kill the CLI: it imports the CLI once, then forks one
child process per request, which runs `cli.main(argv)` with the given environment and
working directory and exits with its code. Each child is a real process that a test can
SIGKILL at any point, without paying the interpreter's start-up (~0.8 s) every time.

With `quota_clock` (the file of an `emulators.google.QuotaClock`), the child's waits
between Google calls are not slept but pass on that clock, which the emulators' quotas
count on: a run that Google's quotas would hold for a minute takes a fraction of a
second, and meets the quotas exactly as with real waits.

`command(quota_clock, argv)` is the same for one run in a fresh interpreter
(`python -m tests.support.forkserver --quota-clock PATH ARGS`).

Run as `python -m tests.support.forkserver`. Protocol, one JSON object per line:
stdin `{"argv": [...], "env": {...}, "cwd": "...", "stdout": path, "stderr": path,
"quota_clock": path or null}`;
stdout `{"pid": N}` once the child runs, then `{"pid": N, "status": S}` when it ended
(`S` is the exit code, or minus the signal that killed it). One child at a time.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.isolation import environment

ROOT = Path(__file__).resolve().parents[2]


def _sleep(quota_clock: str | None) -> Callable[[float], None]:
    """How the CLI waits between Google calls: on the QuotaClock file `quota_clock`
    (counted, not slept), else for real."""
    from emulators.google import QuotaClock

    return QuotaClock(path=Path(quota_clock)).sleep if quota_clock else time.sleep


def _child(request: dict[str, Any]) -> int:
    from backtest_compilation import cli

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    try:
        return cli.main(request["argv"], sleep=_sleep(request.get("quota_clock")))
    except BaseException:
        traceback.print_exc()
        return 70
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def serve() -> None:
    """Read requests from stdin until it closes; fork and wait for each."""
    # Imported before any fork, so children start at once.
    from backtest_compilation import cli, drive, pipeline, sheet, store  # noqa: F401

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os._exit(_child(request))
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"pid": pid, "status": os.waitstatus_to_exitcode(status)}), flush=True)


class ForkServer:
    """The test side: start the server, run the CLI in forked children, stop it."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        # Each child gets its own environment and directory; the server none of ours.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forkserver"],
            cwd=tempfile.gettempdir(),
            env=environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self._selector.register(self.process.stdout, selectors.EVENT_READ)

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        if not self._selector.select(self.timeout):
            raise TimeoutError(f"fork server gave no answer in {self.timeout} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("fork server ended")
        return json.loads(line)

    def start(
        self, argv: list[str], env: dict[str, str], cwd: Path, quota_clock: Path | None = None
    ) -> tuple[int, Path, Path]:
        """Fork a child running the CLI (its waits counted on the QuotaClock file
        `quota_clock`, if given, not slept); returns (pid, stdout file, stderr file)."""
        out, err = cwd / "cli.stdout", cwd / "cli.stderr"
        request = {
            "argv": argv,
            "env": env,
            "cwd": str(cwd),
            "stdout": str(out),
            "stderr": str(err),
            "quota_clock": None if quota_clock is None else str(quota_clock),
        }
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return int(self._read()["pid"]), out, err

    def wait(self) -> int:
        """The exit status of the last child (minus the signal number if killed)."""
        return int(self._read()["status"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self._selector.close()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def command(quota_clock: Path, argv: list[str]) -> list[str]:
    """The command line of one CLI run in a fresh interpreter whose waits between Google
    calls pass on the QuotaClock file `quota_clock` instead of being slept."""
    return [
        sys.executable,
        "-m",
        "tests.support.forkserver",
        "--quota-clock",
        str(quota_clock),
        *argv,
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--quota-clock"]:
        from backtest_compilation import cli

        sys.exit(cli.main(sys.argv[3:], sleep=_sleep(sys.argv[2])))
    serve()
