"""Start and stop SecantusDB (the MongoDB-wire test server) as a child process.

Used by the pytest fixtures (`tests/support/fixtures_mongo.py`) and by `bench/store.py`. The
server is GPL-2.0 and lives in its own virtual environment: it is run, never imported.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0
INSTALL_HINT = (
    "set SECANTUSD or run `uv venv .ci-tools/secantus && uv pip install "
    "--python .ci-tools/secantus/bin/python secantusdb==0.7.0b3`"
)


@dataclass(frozen=True)
class MongoServer:
    """A running server: `uri` has no credentials; `port` is on 127.0.0.1."""

    uri: str
    port: int


class ServerUnavailable(RuntimeError):
    """The server is not installed or did not start."""


def executable() -> Path | None:
    """`$SECANTUSD`, else `.ci-tools/secantus/bin/secantusd-py`, if it exists."""
    configured = os.environ.get("SECANTUSD")
    candidate = Path(configured) if configured else ROOT / ".ci-tools/secantus/bin/secantusd-py"
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping(uri: str) -> bool:
    """Whether a server answers `ping` at `uri` within half a second."""
    client: MongoClient[dict[str, object]] = MongoClient(uri, serverSelectionTimeoutMS=500)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


@contextmanager
def running_server(*extra_args: str) -> Iterator[MongoServer]:
    """Start `secantusd-py` in memory on a free 127.0.0.1 port, wait for ping (at most
    60 s), and stop it with SIGTERM at the end. Raises `ServerUnavailable`."""
    found = executable()
    if found is None:
        raise ServerUnavailable(f"SecantusDB is not installed: {INSTALL_HINT}")
    port = free_port()
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    command = [str(found), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--storage-path", ":memory:", "--log-level", "WARNING", *extra_args]
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not ping(uri):
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr.seek(0)
                    tail = stderr.read()[-2000:].decode(errors="replace")
                    raise ServerUnavailable(f"SecantusDB did not start on port {port}:\n{tail}")
                time.sleep(0.2)
            yield MongoServer(uri, port)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
