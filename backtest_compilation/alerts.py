"""Dead-man's-switch pings (contract §6 `HEALTHCHECK_URL`, healthchecks.io convention):
`URL/start` when a run starts, `URL` when it succeeds, `URL/fail` when it fails, so the
monitor alerts someone when a ping is late or says failure.

A monitor that is down never fails a run and holds it at most `TIMEOUT_S`: the start ping
goes from a background thread, and a failed ping is one WARNING line. The URL is never
logged (it is the monitor's only credential).
"""

from __future__ import annotations

import logging
import threading
from typing import Final

log = logging.getLogger(__name__)

TIMEOUT_S: Final = 3.0  # connect and read each; a monitor slower than this is "down"


class Healthcheck:
    """Pings one monitor URL; with no URL it does nothing."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def start(self) -> None:
        """The run starts (lets the monitor measure how long runs take); not waited for."""
        if self.url:
            import requests  # noqa: F401  (loaded here, not in a thread racing the exit)

            threading.Thread(target=self._send, args=("/start", ""), daemon=True).start()

    def finish(self, exit_code: int, message: str) -> None:
        """The run ended: success for exit 0, else failure; `message` is the ping's body."""
        if self.url:
            self._send("" if exit_code == 0 else "/fail", message)

    def _send(self, suffix: str, body: str) -> None:
        import requests  # only with HEALTHCHECK_URL set

        what = suffix.lstrip("/") or "success"
        try:
            answer = requests.post(self.url + suffix, data=body.encode(), timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            log.warning("healthcheck: the %s ping was not delivered (%s)", what, type(exc).__name__)
            return
        if answer.status_code >= 400:
            log.warning("healthcheck: the %s ping was answered HTTP %d", what, answer.status_code)
