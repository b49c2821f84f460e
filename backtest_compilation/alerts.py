"""Dead-man's-switch pings (contract §6 `HEALTHCHECK_URL`, healthchecks.io convention).

`URL/start` when a run starts, `URL` when it succeeds, `URL/fail` when it fails; the
monitor alerts someone when a ping is late or says failure, so a scheduler that
stopped is noticed too. A monitor that is down must never fail or slow a run: every
ping has a short timeout, is sent from a background thread, and a failed ping is
one WARNING line. The URL is never logged (it is the monitor's only credential).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

log = logging.getLogger(__name__)

TIMEOUT_S: Final = 3.0  # connect and read each; a monitor slower than this is "down"
BODY_LIMIT: Final = 10_000  # healthchecks.io keeps the first 100 kB of a ping body


class Healthcheck:
    """Pings one monitor URL; with no URL every method does nothing."""

    def __init__(self, url: str, *, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._threads: list[threading.Thread] = []
        self.sent: list[str] = []  # which pings got an answer (for logs and tests)

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def start(self) -> None:
        """The run starts (lets the monitor measure how long runs take)."""
        self._ping("/start", "")

    def success(self, message: str = "") -> None:
        """The run succeeded; `message` (the summary line) is the ping's body."""
        self._ping("", message)

    def fail(self, message: str = "") -> None:
        """The run failed; `message` says why."""
        self._ping("/fail", message)

    def finish(self, exit_code: int, message: str = "") -> None:
        """`success` for exit 0, `fail` otherwise."""
        if exit_code == 0:
            self.success(message)
        else:
            self.fail(message or f"exit code {exit_code}")

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait (at most `timeout_s`, default one ping's timeout) for pings in flight,
        so a process about to exit still sends its last one."""
        deadline = time.monotonic() + (self.timeout_s + 0.5 if timeout_s is None else timeout_s)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]

    def _ping(self, suffix: str, body: str) -> None:
        if not self.url:
            return
        # Imported here, in the calling thread: a run without HEALTHCHECK_URL never loads it.
        import requests  # noqa: F401

        thread = threading.Thread(
            target=self._send, args=(suffix, body[:BODY_LIMIT]), daemon=True, name="healthcheck"
        )
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _send(self, suffix: str, body: str) -> None:
        import requests  # already loaded by `_ping`

        what = suffix.lstrip("/") or "success"
        try:
            response = requests.post(
                self.url + suffix,
                data=body.encode("utf-8"),
                timeout=(self.timeout_s, self.timeout_s),
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
        except requests.RequestException as exc:
            log.warning("healthcheck: the %s ping was not delivered (%s)", what, type(exc).__name__)
            return
        if response.status_code >= 400:
            log.warning("healthcheck: the %s ping was answered HTTP %d", what, response.status_code)
            return
        self.sent.append(what)
        log.debug("healthcheck: %s ping sent", what)
