"""A fake Sentry ingest endpoint: what the SDK really sends, recorded for the tests."""

from __future__ import annotations

import gzip
import json
import queue
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes  # decompressed body
    items: list[tuple[dict[str, Any], Any]]  # (item header, payload)

    def of_type(self, kind: str) -> list[Any]:
        return [payload for header, payload in self.items if header.get("type") == kind]


def parse_envelope(body: bytes) -> list[tuple[dict[str, Any], Any]]:
    """Sentry envelope: a header line, then (item header line, payload) pairs."""
    _header, _, rest = body.partition(b"\n")
    items = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        header = json.loads(item_line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] + 1 :]
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((header, json.loads(payload) if payload.strip() else None))
    return items


class Endpoint:
    """A Sentry ingest endpoint on 127.0.0.1 that records every envelope it receives."""

    def __init__(self) -> None:
        self.received: queue.Queue[Received] = queue.Queue()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding:
                    raise AssertionError(f"unexpected Content-Encoding {encoding}")
                outer.received.put(
                    Received(self.path, dict(self.headers), body, parse_envelope(body))
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.dsn = f"http://public@127.0.0.1:{self.port}/1"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def all(self) -> list[Received]:
        out = []
        while not self.received.empty():
            out.append(self.received.get_nowait())
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
