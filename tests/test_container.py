"""`run.sh` for real (with stand-ins for the interpreter) and the Dockerfile's health check."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backtest_compilation import lastrun, schedule
from backtest_compilation.errors import RunError
from backtest_compilation.outcome import RunSummary
from backtest_compilation.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()

# Records how it was started, then waits (bounded) for SIGTERM, which it reports. The
# trap comes first: the test signals as soon as the record appears (issue 17 item 7).
STAND_IN = """#!/bin/sh
trap 'echo TERM >> "$RECORD"; exit 0' TERM
printf '%s\\n' "$$" "$(pwd)" "$*" > "$RECORD.tmp" && mv "$RECORD.tmp" "$RECORD"
i=0
while [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
exit 9
"""


def install_app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy2(ROOT / "run.sh", app / "run.sh")
    return app


def stand_in(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STAND_IN)
    path.chmod(0o755)


def start_and_stop(
    app: Path, tmp_path: Path, env_path: str, args: tuple[str, ...] = ("--verbose",)
) -> tuple[list[str], int, str]:
    record = tmp_path / "record.txt"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    record.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [str(app / "run.sh"), *args],
        cwd=elsewhere,  # run.sh must find its own directory
        env={"PATH": env_path, "RECORD": str(record)},
    )
    try:
        deadline = time.monotonic() + 10
        while not record.exists():
            assert proc.poll() is None, "run.sh ended early"
            assert time.monotonic() < deadline, "the stand-in never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = record.read_text().splitlines()
    return lines, code, str(proc.pid)


def test_run_sh_execs_the_environments_python_with_schedule(tmp_path: Path) -> None:
    app = install_app(tmp_path)
    stand_in(app / ".venv" / "bin" / "python")
    lines, code, pid = start_and_stop(app, tmp_path, "/usr/bin:/bin")
    pid_seen, cwd, args, *rest = lines
    assert pid_seen == pid  # exec: the scheduler is the process docker signals
    assert Path(cwd).resolve() == app.resolve()
    assert args == "main.py schedule --verbose"
    assert rest == ["TERM"] and code == 0  # SIGTERM reached it, it stopped cleanly


def test_run_sh_falls_back_to_uv_run_without_an_environment(tmp_path: Path) -> None:
    app = install_app(tmp_path)
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir / "uv")
    lines, code, pid = start_and_stop(app, tmp_path, f"{bin_dir}:/usr/bin:/bin")
    assert lines[0] == pid
    assert lines[2] == "run --frozen --no-dev main.py schedule --verbose"
    assert lines[3:] == ["TERM"] and code == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("doctor",), "main.py doctor"),
        (("status", "--json"), "main.py status --json"),
        (("sync", "--dry-run", "--no-rename"), "main.py sync --dry-run --no-rename"),
        (("check", "-v"), "main.py check -v"),
        (("schedule",), "main.py schedule"),  # the image's CMD
        ((), "main.py schedule"),  # no command at all
    ],
)
def test_run_sh_runs_the_command_it_is_given(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    app = install_app(tmp_path)
    stand_in(app / ".venv" / "bin" / "python")
    lines, code, pid = start_and_stop(app, tmp_path, "/usr/bin:/bin", args)
    assert lines[0] == pid and lines[2] == expected
    assert code == 0


def test_the_image_runs_schedule_unless_given_a_command() -> None:
    instructions = dict(
        line.split(None, 1) for line in DOCKERFILE.splitlines() if line[:1].isupper()
    )
    assert json.loads(instructions["ENTRYPOINT"]) == ["/app/run.sh"]
    assert json.loads(instructions["CMD"]) == ["schedule"]


def test_run_sh_is_executable_posix_sh() -> None:
    run_sh = ROOT / "run.sh"
    assert os.access(run_sh, os.X_OK)
    assert run_sh.read_text().startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n", str(run_sh)], check=True)


def healthcheck_command() -> list[str]:
    m = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])$", DOCKERFILE, re.MULTILINE | re.DOTALL)
    assert m, "no HEALTHCHECK ... CMD [...] in the Dockerfile"
    command = json.loads(m.group(1))
    assert command[:3] == ["/app/.venv/bin/python", "/app/main.py", "status"]
    # The image's /app is this repository.
    return [sys.executable, str(ROOT / "main.py"), *command[2:]]


def good_run(cache: Path) -> None:
    now = datetime.now(UTC)
    lastrun.save(cache, RunSummary("sync"), started=now, finished=now, headline="good")


@pytest.mark.parametrize(
    ("case", "age_s", "healthy"),
    [
        ("fresh heartbeat", 5, True),
        ("heartbeat older than the limit", schedule.HEALTHY_WITHIN_S + 60, False),
        ("no heartbeat at all", None, True),  # a one-off container: the last run decides
    ],
)
def test_the_health_check_reads_the_heartbeat_age(
    tmp_path: Path, case: str, age_s: float | None, healthy: bool
) -> None:
    cache = tmp_path / "state-volume"
    good_run(cache)
    if age_s is not None:
        beat = schedule.heartbeat_path(cache)
        at = datetime.now(UTC)  # a scheduler alive names its next run
        schedule.write_heartbeat(beat, schedule.Heartbeat(at=at, next_run=at + timedelta(hours=1)))
        then = time.time() - age_s
        os.utime(beat, (then, then))
    env = {"PATH": "/usr/bin:/bin", "CACHE_DIR": str(cache)}
    result = subprocess.run(healthcheck_command(), cwd=tmp_path, env=env, timeout=30)
    assert (result.returncode == 0) is healthy


def test_the_health_check_fails_after_a_failed_run_or_none(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    assert subprocess.run(healthcheck_command(), cwd=tmp_path, env=env).returncode == 1
    now = datetime.now(UTC)
    failed = RunSummary("sync").failed("run", RunError("Drive unreachable"))
    lastrun.save(tmp_path / "cache", failed, started=now, finished=now, headline="bad")
    assert subprocess.run(healthcheck_command(), cwd=tmp_path, env=env).returncode == 1


def test_the_health_check_defaults_to_cache_in_the_workdir(tmp_path: Path) -> None:
    good_run(tmp_path / "cache")
    at = datetime.now(UTC)  # a scheduler alive names its next run
    beat = schedule.Heartbeat(at=at, next_run=at + timedelta(hours=1))
    schedule.write_heartbeat(schedule.heartbeat_path(tmp_path / "cache"), beat)
    env = {"PATH": "/usr/bin:/bin"}
    assert subprocess.run(healthcheck_command(), cwd=tmp_path, env=env).returncode == 0
    assert schedule.HEARTBEAT_FILE == "heartbeat.json"


def test_the_dockerfile_is_slim_frozen_non_root_with_volumes() -> None:
    instructions = [line.split(None, 1) for line in DOCKERFILE.splitlines() if line[:1].isupper()]
    by_name: dict[str, list[str]] = {}
    for name, rest in instructions:
        by_name.setdefault(name, []).append(rest)
    assert by_name["FROM"] == ["python:3.11-slim"]
    assert "uv sync --frozen --no-dev" in DOCKERFILE
    assert "--from=ghcr.io/astral-sh/uv:" in DOCKERFILE
    assert by_name["USER"] == ["app"]
    assert json.loads(by_name["VOLUME"][0]) == ["/app/config", "/app/cache"]
    assert json.loads(by_name["ENTRYPOINT"][0]) == ["/app/run.sh"]
    assert "UV_NO_CACHE=1" in DOCKERFILE  # the image keeps no uv cache


def test_dockerignore_keeps_secrets_and_state_out_of_the_image() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in (".env", "config/*.json", "cache/", ".venv/", ".git"):
        assert entry in ignored


COMPOSE = (ROOT / "compose.yaml").read_text()


def test_compose_runs_the_job_with_mongodb() -> None:
    services_part = COMPOSE.split("\nservices:\n")[1].split("\nvolumes:\n")[0]
    services = re.findall(r"^  ([a-z-]+):$", services_part, re.MULTILINE)
    assert services == ["job", "mongo"]
    assert re.findall(r"^  ([a-z-]+):$", COMPOSE.split("\nvolumes:\n")[1], re.MULTILINE) == [
        "cache",
        "mongo-data",
    ]
    job = COMPOSE.split("\n  mongo:")[0]
    assert "build: ." in job and "env_file: .env" in job
    assert "restart: unless-stopped" in job
    assert "./config:/app/config:ro" in job and "cache:/app/cache" in job
    grace = re.search(r"stop_grace_period: (\d+)m", job)
    assert grace and int(grace.group(1)) * 60 > 2700  # longer than RUN_TIMEOUT_S
    assert "depends_on:" in job and "- mongo" in job
    assert "image: mongo:" in COMPOSE and "mongo-data:/data/db" in COMPOSE
    assert "MONGO_URI=mongodb://mongo:27017" in (ROOT / ".env.example").read_text()


def test_the_stop_timeout_lets_a_whole_run_finish() -> None:
    """Issue 20: the Dockerfile's example said --stop-timeout 120, which kills a rename phase;
    the Dockerfile, the README and compose.yaml now give the same time, a minute more than
    the longest run (RUN_TIMEOUT_S)."""
    readme = (ROOT / "README.md").read_text()
    timeouts = {int(t) for t in re.findall(r"--stop-timeout (\d+)", DOCKERFILE + readme)}
    grace = re.search(r"stop_grace_period: (\d+)m", COMPOSE)
    assert grace
    assert timeouts == {int(grace.group(1)) * 60}
    assert timeouts.pop() >= Settings().run_timeout_s + 60
