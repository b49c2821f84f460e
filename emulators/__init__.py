"""HTTP emulators of the Google APIs the product talks to, for tests and benchmarks.

Each listens on 127.0.0.1 only and answers like Google (paths, paging, partial
responses, error JSON), so the real client libraries are exercised over HTTP.
`drive` and `sheets` are the two APIs, `google` what they share (error JSON, field
masks, the token endpoint, fault injection), `secantus` starts the MongoDB-wire server.
The package sits outside `tests/` because `bench/` uses it too.
"""

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP server on a free 127.0.0.1 port, served from a daemon thread.

    A client that dies mid-request (the SIGKILL tests do that on purpose) is not an
    error of the emulator: its broken pipe is not printed as a traceback."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop serving, close the socket, wait for the serving thread."""
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class Emulator:
    """Lifecycle shared by the emulators: start on a free loopback port, stop, `with`."""

    _server: LoopbackServer | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class bound to this emulator."""
        raise NotImplementedError

    def start(self) -> Self:
        """Listen on a free port of 127.0.0.1 and serve in a background thread."""
        self._server = LoopbackServer(self._handler())
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Root URL, e.g. `http://127.0.0.1:40123` (the `*_API_ENDPOINT` value)."""
        assert self._server is not None, "start() the emulator first"
        return self._server.url
