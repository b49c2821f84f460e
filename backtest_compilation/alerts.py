"""Dead-man's-switch pings (contract §6 `HEALTHCHECK_URL`, healthchecks.io convention):
`URL/start` when a run starts, `URL` when it succeeds, `URL/fail` when it fails, so the
monitor alerts someone when a ping is late or says failure.

A monitor that is down never fails or slows a run: each ping has a short timeout and is
sent from a background thread; a failed ping is one WARNING line. The URL is never
logged (it is the monitor's only credential).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

log = logging.getLogger(__name__)

TIMEOUT_S: Final = 3.0  # connect and read each; a monitor slower than this is "down"


class Healthcheck:
    """Pings one monitor URL; with no URL it does nothing."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        """The run starts (lets the monitor measure how long runs take)."""
        self._ping("/start", "")

    def finish(self, exit_code: int, message: str) -> None:
        """The run ended: success for exit 0, else failure; `message` is the ping's body."""
        self._ping("" if exit_code == 0 else "/fail", message)

    def wait(self) -> None:
        """Wait (at most about one ping's timeout) for the pings in flight, so a process
        about to exit still sends its last one."""
        deadline = time.monotonic() + TIMEOUT_S + 0.5
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _ping(self, suffix: str, body: str) -> None:
        if not self.url:
            return
        # Imported in the calling thread (never in a thread racing the interpreter's exit),
        # and only here: a run without HEALTHCHECK_URL never loads it.
        import requests

        def send() -> None:
            what = suffix.lstrip("/") or "success"
            try:
                response = requests.post(
                    self.url + suffix,
                    data=body.encode("utf-8"),
                    timeout=(TIMEOUT_S, TIMEOUT_S),
                )
            except requests.RequestException as exc:
                log.warning(
                    "healthcheck: the %s ping was not delivered (%s)", what, type(exc).__name__
                )
                return
            if response.status_code >= 400:
                log.warning(
                    "healthcheck: the %s ping was answered HTTP %d", what, response.status_code
                )

        thread = threading.Thread(target=send, daemon=True, name="healthcheck")
        self.threads.append(thread)
        thread.start()
