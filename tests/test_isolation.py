"""Issue 17 item 1: the tests never touch the user's services.

The guard in `conftest.py` keeps the developer's settings out of the test process, and
CI's tripwire (`.ci/tripwire.py`, started by `.ci/run` with its `.env` at the root)
records any connection to the services such a `.env` names."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from backtest_compilation import settings
from tests.support.isolation import MAIN, ROOT, environment


def test_the_tests_run_without_the_developers_settings() -> None:
    assert not [name for name in os.environ if name in settings.TABLE]
    assert Path.cwd().resolve() != ROOT.resolve()
    assert not Path(".env").exists()


def start_tripwire(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    env_file, log = tmp_path / ".env", tmp_path / "tripwire.log"
    log.touch()
    proc = subprocess.Popen([sys.executable, str(ROOT / ".ci" / "tripwire.py"), env_file, log])
    deadline = time.monotonic() + 10
    while not env_file.exists() or not env_file.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, "the tripwire never started"
        time.sleep(0.02)
    return proc, env_file, log


def wait_for_lines(log: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 10
    while len(lines := log.read_text().splitlines()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return lines


def test_the_tripwire_names_every_service_and_records_a_connection(tmp_path: Path) -> None:
    proc, env_file, log = start_tripwire(tmp_path)
    try:
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        services = {"DRIVE_API_ENDPOINT", "SHEETS_API_ENDPOINT", "SHEET_URL", "MONGO_URI"}
        assert services | {"HEALTHCHECK_URL", "SENTRY_DSN"} <= set(env)
        settings.load(env)  # well-formed: a run reading it would get as far as connecting
        assert log.read_text() == ""
        port = int(env["DRIVE_API_ENDPOINT"].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(b"GET /drive/v3/files HTTP/1.1\r\n\r\n")
        assert "GET /drive/v3/files" in wait_for_lines(log, 1)[0]
    finally:
        proc.kill()
        proc.wait()


def test_a_cli_run_that_reads_the_tripwire_env_is_caught(tmp_path: Path) -> None:
    """The proof `.ci/run` relies on: the CLI reads the `.env` of its working directory,
    and a run that does connects to the tripwire (here on purpose, via HEALTHCHECK_URL)."""
    proc, _env_file, log = start_tripwire(tmp_path)
    (tmp_path / "drive").mkdir()
    try:
        out = subprocess.run(
            [sys.executable, MAIN, "sync", "--source", str(tmp_path / "drive")],
            cwd=tmp_path,
            env=environment(MONGO_URI="mongomock://tripwire", CACHE_DIR=str(tmp_path / "c")),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode in (0, 1), out.stderr
        assert wait_for_lines(log, 1), "the run never connected to the tripwire"
    finally:
        proc.kill()
        proc.wait()
