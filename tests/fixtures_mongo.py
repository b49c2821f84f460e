"""The real MongoDB-wire server (SecantusDB) for integration tests.

`mongo_server` starts one `secantusd-py` per session on a free 127.0.0.1 port, in
memory, and stops it with SIGTERM at the end. It is found through `SECANTUSD` (set by
`.ci/run`) or `.ci-tools/secantus/bin/secantusd-py`; when it is missing the tests that
need it are skipped locally and FAIL in CI (`CI=true`). Each test gets its own
database name from `mongo_db_name`. Mark such tests `@pytest.mark.mongo_server`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class MongoServer:
    """A running server: `uri` has no credentials; `port` is on 127.0.0.1."""

    uri: str
    port: int


def _executable() -> Path | None:
    configured = os.environ.get("SECANTUSD")
    candidate = Path(configured) if configured else ROOT / ".ci-tools/secantus/bin/secantusd-py"
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(uri: str) -> bool:
    client: MongoClient[dict[str, object]] = MongoClient(uri, serverSelectionTimeoutMS=500)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def _skip_or_fail(reason: str) -> None:
    """Missing server: skip on a developer machine, fail in CI (it must run there)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the integration tests must run)", pytrace=False)
    pytest.skip(reason)


@contextmanager
def running_server(*extra_args: str) -> Iterator[MongoServer]:
    """Start `secantusd-py` in memory on a free port, wait for ping, SIGTERM at the end."""
    executable = _executable()
    if executable is None:
        _skip_or_fail(
            "SecantusDB not installed: set SECANTUSD or run "
            "`uv venv .ci-tools/secantus && uv pip install --python "
            ".ci-tools/secantus/bin/python secantusdb==0.7.0b3`"
        )
        raise AssertionError("unreachable")
    port = _free_port()
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [
                str(executable),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                ":memory:",
                "--log-level",
                "WARNING",
                *extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _ping(uri):
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr.seek(0)
                    tail = stderr.read()[-2000:].decode(errors="replace")
                    pytest.fail(f"SecantusDB did not start on port {port}:\n{tail}")
                time.sleep(0.2)
            yield MongoServer(uri, port)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoServer]:
    """One real MongoDB-wire server for the whole session."""
    with running_server() as server:
        yield server


@pytest.fixture(scope="session")
def mongo_auth_server() -> Iterator[MongoServer]:
    """A second server that requires authentication and knows no user: every
    credential is rejected, as a wrong password is by a real deployment."""
    with running_server("--auth") as server:
        yield server


@pytest.fixture
def mongo_db_name() -> str:
    """A database name of its own for each test (the server is shared)."""
    return f"t_{uuid.uuid4().hex[:16]}"
