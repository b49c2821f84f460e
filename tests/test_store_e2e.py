"""A MongoDB that stops answering never outlasts `RUN_TIMEOUT_S` (issue 17 item 6): the CLI
in a process of its own, on the emulators, talks to the real MongoDB-wire server through
a TCP proxy that forwards everything except the commands it is told to swallow — those it
reads and never answers, as a server that hangs does."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.fixtures_faults import FaultWorld

pytestmark = pytest.mark.mongo_server

OP_MSG = 2013
RUN_TIMEOUT_S = 6


class StallingProxy:
    """127.0.0.1:port → `upstream`; a command named in `swallow` (an OP_MSG whose first
    field is that name) is read and dropped: its connection never answers again."""

    def __init__(self, upstream: tuple[str, int], swallow: frozenset[str]) -> None:
        self.upstream, self.swallow = upstream, swallow
        self.swallowed: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._requests, args=(client, server), daemon=True).start()
            threading.Thread(target=self._copy, args=(server, client), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket) -> None:
        stalled = False
        try:
            while header := _read(client, 16):
                length, _, _, opcode = struct.unpack("<iiii", header)
                body = _read(client, length - 16)
                if opcode == OP_MSG and body[4] == 0:  # flags, then a kind-0 section
                    name = body[10 : body.index(b"\0", 10)].decode()  # after size, type
                    if name in self.swallow:
                        self.swallowed.append(name)
                        stalled = True
                if not stalled:
                    server.sendall(header + body)
        except OSError:
            pass
        finally:
            client.close()
            server.close()

    @staticmethod
    def _copy(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


@pytest.fixture
def proxy(fault_world: FaultWorld, request: pytest.FixtureRequest) -> Iterator[StallingProxy]:
    host, port = fault_world.client.address
    proxy = StallingProxy((host, port), frozenset(request.param))
    yield proxy
    proxy.close()


@pytest.mark.parametrize(
    "proxy",
    [
        pytest.param(("find",), id="reads stall"),
        pytest.param(("insert", "update", "delete"), id="writes stall"),
    ],
    indirect=True,
)
def test_a_stalled_mongodb_ends_the_run_at_run_timeout_s(
    fault_world: FaultWorld, proxy: StallingProxy
) -> None:
    world = fault_world
    uri = f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true"
    started = time.monotonic()
    got = world.cli("--json", env=world.env(MONGO_URI=uri, RUN_TIMEOUT_S=str(RUN_TIMEOUT_S)))
    took = time.monotonic() - started
    assert got.returncode == 1, got.stderr
    assert proxy.swallowed, "the proxy stalled nothing"
    # It used to wait for the driver's 60 s socket timeout (twice when reads stalled).
    assert took < RUN_TIMEOUT_S + 10, (took, got.stderr)
    summary = json.loads(got.stdout)
    assert (summary["ok"], summary["exit_code"]) == (False, 1)
    assert f"RUN_TIMEOUT_S ({RUN_TIMEOUT_S} s)" in json.dumps(summary["failed"])
    assert "did not answer in time" in got.stderr
