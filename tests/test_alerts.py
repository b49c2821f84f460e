"""Alerts: healthcheck pings against a local listener (also one that never answers),
and Sentry Crons check-ins from `schedule` against a local Sentry endpoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from backtest_compilation import adapters, lock, sample, telemetry
from backtest_compilation.settings import Settings
from emulators.drive import DriveEmulator
from tests.support.scheduler import scheduler, stop, wait_for
from tests.support.sentry_ingest import Endpoint

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "main.py")


class Monitor:
    """A healthchecks.io stand-in: records (path, body) of every ping; answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.pings: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _ping(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                outer.pings.append((self.path, body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = _ping

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ping/abc-123"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [p for p, _ in self.pings]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    m = Monitor()
    yield m
    m.close()


@pytest.fixture
def silent() -> Iterator[str]:
    """A listener that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"http://127.0.0.1:{server.getsockname()[1]}/ping/abc-123"
    server.close()


def sync(tmp_path: Path, url: str, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    drive = tmp_path / "drive"
    if not drive.exists():
        drive = sample.copy_sample_drive(tmp_path)
    env = {
        "PATH": os.environ["PATH"],
        "MONGO_URI": "mongomock://alerts",
        "CACHE_DIR": str(tmp_path / "cache"),
        "HEALTHCHECK_URL": url,
    }
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, MAIN, "sync", "--source", str(extra[0] if extra else drive)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out, time.monotonic() - started


def test_a_good_sync_pings_start_then_success(tmp_path: Path, monitor: Monitor) -> None:
    out, _ = sync(tmp_path, monitor.url)
    assert out.returncode == 0, out.stderr
    assert monitor.paths() == ["/ping/abc-123/start", "/ping/abc-123"]
    assert monitor.pings[1][1].startswith("summary: sync exit 0")
    assert "abc-123" not in out.stderr  # the ping URL is the monitor's credential


def test_a_failed_sync_pings_fail(tmp_path: Path, monitor: Monitor) -> None:
    out, _ = sync(tmp_path, monitor.url, str(tmp_path / "no-such-drive"))
    assert out.returncode != 0
    assert monitor.paths() == ["/ping/abc-123/start", "/ping/abc-123/fail"]
    assert monitor.pings[1][1].startswith(f"exit {out.returncode}: ")


def test_a_monitor_that_never_answers_neither_fails_nor_holds_the_run(
    tmp_path: Path, monitor: Monitor, silent: str
) -> None:
    # The same run with a working monitor, for comparison.
    _, normal = sync(tmp_path / "a", monitor.url)
    out, elapsed = sync(tmp_path / "b", silent)
    assert out.returncode == 0, out.stderr
    # /start goes out in the background; only the last ping is waited for, briefly.
    assert elapsed < normal + telemetry.TIMEOUT_S + 2
    assert "healthcheck: the success ping was not delivered (ReadTimeout)" in out.stderr


def test_a_monitor_answering_an_error_is_a_warning(tmp_path: Path) -> None:
    broken = Monitor(status=500)
    try:
        out, _ = sync(tmp_path, broken.url)
    finally:
        broken.close()
    assert out.returncode == 0
    assert "healthcheck: the success ping was answered HTTP 500" in out.stderr


# ------------------------------------------------------------------ Sentry Crons


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint()
    yield ep
    ep.close()


def check_ins(endpoint: Endpoint) -> list[dict[str, Any]]:
    return [c for r in endpoint.all() for c in r.of_type("check_in")]


@pytest.mark.parametrize(
    ("code", "status"), [(0, "ok"), (1, "error"), (4, "ok")], ids=["ok", "failed", "locked"]
)
def test_a_scheduled_run_checks_in_around_the_job(
    endpoint: Endpoint, code: int, status: str
) -> None:
    config = Settings(sentry_dsn=endpoint.dsn, schedule="2 9-19/2 * * *", tz="Europe/Oslo")
    import sentry_sdk

    tel = adapters.start_telemetry(config)
    try:
        assert tel.checked_in(lambda: code, config.schedule, config.tz, 60) == code
        sentry_sdk.flush()
        got = check_ins(endpoint)
    finally:
        tel.close()
    assert [c["status"] for c in got] == ["in_progress", status]
    assert {c["monitor_slug"] for c in got} == {"backtest-compilation"}
    assert got[0]["check_in_id"] == got[1]["check_in_id"]
    assert got[0]["monitor_config"]["schedule"] == {"type": "crontab", "value": "2 9-19/2 * * *"}
    assert got[0]["monitor_config"]["timezone"] == "Europe/Oslo"
    assert got[1]["duration"] >= 0


def test_schedule_reports_to_sentry_crons_from_the_command_line(
    tmp_path: Path, endpoint: Endpoint, drive_emulator: DriveEmulator
) -> None:
    drive_id = drive_emulator.add_drive("Backtests")
    course = drive_emulator.add_folder(drive_emulator.add_folder(drive_id, "CSCI"), "CSCI-1200 DS")
    drive_emulator.add_file(course, "CSCI-1200 E1F22.pdf")
    cache = tmp_path / "cache"
    env = {
        "PATH": os.environ["PATH"],
        "FOLDER_ID": drive_id,
        "DRIVE_API_ENDPOINT": drive_emulator.url,
        "MONGO_URI": "mongomock://crons",
        "CACHE_DIR": str(cache),
        "SENTRY_DSN": endpoint.dsn,
        "SENTRY_MONITOR_SLUG": "chapter-backtests",
    }
    with scheduler(env, tmp_path) as child:
        wait_for(cache / "last-run.json", 60)
        assert (cache / "last-run.json").exists(), "the first scheduled run did not happen"
        stderr = stop(child, 30)
    assert child.returncode == 0, stderr
    got = [c for r in endpoint.all() for c in r.of_type("check_in")]
    assert [c["status"] for c in got] == ["in_progress", "ok"]
    assert {c["monitor_slug"] for c in got} == {"chapter-backtests"}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "HEALTHCHECK_URL",
            "hc-ping.com/0f1e-secret-uuid",
            "HEALTHCHECK_URL must be an http(s) URL like https://hc-ping.com/<uuid>",
        ),
        (
            "SENTRY_MONITOR_SLUG",
            "Backtest Compilation",
            "SENTRY_MONITOR_SLUG must be lower-case letters, digits, - and _ (at most 50), "
            "not 'Backtest Compilation'",
        ),
    ],
)
def test_alert_settings_are_checked(name: str, value: str, message: str) -> None:
    from backtest_compilation import settings
    from backtest_compilation.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        settings.load({"FOLDER_ID": "x", name: value}, needs_drive=False)
    assert caught.value.problems == [message]
    assert "secret" not in str(caught.value)


def test_the_ping_url_never_appears_in_settings_output() -> None:
    config = Settings(healthcheck_url="https://hc-ping.com/0f1e-secret-uuid")
    assert "secret" not in repr(config)


# ------------------------------------------------------------------ issue 17 item 6


def _slow_drive_env(drive: DriveEmulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    root = drive.add_drive("Backtests")
    course = drive.add_folder(drive.add_folder(root, "CSCI"), "CSCI-1200 Data Structures")
    drive.add_file(course, "csci-1200 e1 f22.pdf")
    return {
        "PATH": os.environ["PATH"],
        "FOLDER_ID": root,
        "DRIVE_API_ENDPOINT": drive.url,
        "MONGO_URI": "mongomock://interrupted",
        "CACHE_DIR": str(tmp_path / "cache"),
        **extra,
    }


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_sync_prints_its_json_records_itself_and_pings_fail(
    tmp_path: Path, monitor: Monitor, sig: signal.Signals, code: int
) -> None:
    cache = tmp_path / "cache"
    with DriveEmulator(latency=0.4) as drive:
        env = _slow_drive_env(drive, tmp_path, HEALTHCHECK_URL=monitor.url)
        child = subprocess.Popen(
            [sys.executable, MAIN, "sync", "--json"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not lock.peek(cache)["held"]:  # the run holds the lock: it is going
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        child.send_signal(sig)
        out, err = child.communicate(timeout=30)
    assert child.returncode == code, err
    summary = json.loads(out)
    assert (summary["ok"], summary["exit_code"]) == (False, code)
    assert "interrupted" in summary["failed"], summary["failed"]
    assert f"summary: sync exit {code}" in err
    record = json.loads((cache / "last-run.json").read_text())
    assert "interrupted" in record["failed"]
    assert monitor.paths()[-1] == "/ping/abc-123/fail"


def test_a_failed_one_off_sync_reports_to_sentry(tmp_path: Path, endpoint: Endpoint) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "MONGO_URI": "mongomock://sentry",
        "CACHE_DIR": str(tmp_path / "cache"),
        "SENTRY_DSN": endpoint.dsn,
    }
    out = subprocess.run(
        [sys.executable, MAIN, "sync", "--source", str(tmp_path / "gone")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr
    events = [e for r in endpoint.all() for e in r.of_type("event")]
    assert events and any(e.get("level") == "error" for e in events)
