"""Who hears about runs (contract §6): Sentry (`SENTRY_DSN`: failures, with INFO log lines
as breadcrumbs, and Crons check-ins) and a dead-man's-switch monitor (`HEALTHCHECK_URL`:
`/start`, then bare on success or `/fail`). PII, local variables and values under secret
key names are left out by the SDK, secrets inside text by `scrub`. A monitor that is down
never fails a run; its URL, its only credential, is never logged."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from .errors import Locked

log = logging.getLogger(__name__)

TIMEOUT_S: Final = 3.0  # a healthcheck monitor slower than this (connect, read) is "down"
MASK: Final = "***"
_PATTERNS: Final = [
    (re.compile(pattern, re.IGNORECASE | re.DOTALL), replacement)
    for pattern, replacement in (
        # Passwords in URLs (the lookbehind keeps this linear on long runs of letters).
        (r"(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*://[^\s:/?#@]*:)[^\s@/]*@", rf"\1{MASK}@"),
        # PEM blocks (service-account keys), also one cut off before its END line.
        (
            r"-----BEGIN [A-Z ]*PRIVATE KEY.*?(?:END [A-Z ]*PRIVATE KEY-----|\Z)",
            "[private key removed]",
        ),
        # A service-account JSON quoted in a message.
        (r'("private_key(?:_id)?"\s*:\s*)"[^"]*"', rf'\1"{MASK}"'),
        # Authorization header values, Google access tokens, secrets in a query string.
        (r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", rf"\1 {MASK}"),
        (r"\bya29\.[A-Za-z0-9._-]+", MASK),
        (r"([?&][a-z_]*(?:password|passwd|secret|token|key)=)[^&#\s\"']+", rf"\1{MASK}"),
    )
]


def _part(uri: str, name: str) -> str:
    try:
        return getattr(urlsplit(uri), name) or ""
    except ValueError:
        return ""


def secrets_of(*, sentry_dsn: str = "", mongo_uri: str = "") -> tuple[str, ...]:
    """The literal secrets to mask, longest first: the DSN, its key and the MongoDB
    password. Pieces under 4 characters would mask ordinary text; in a URI the URL
    pattern masks them."""
    pieces = (_part(sentry_dsn, "username"), _part(mongo_uri, "password"))
    found = {sentry_dsn, *pieces, *map(unquote, pieces)}
    return tuple(sorted((s for s in found if len(s) >= 4), key=len, reverse=True))


def scrub_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with known secrets and secret-looking parts replaced by `***`."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub(value: Any, secrets: tuple[str, ...] = ()) -> Any:
    """A copy of `value` (an event, a breadcrumb) with every string scrubbed."""
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, Mapping):
        return {key: scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item, secrets) for item in value]
    return value


@dataclass(frozen=True)
class Telemetry:
    """Handle returned by `init`; every method does nothing when Sentry is off."""

    enabled: bool
    monitor_slug: str = ""

    def report_failure(
        self, error: BaseException | None = None, *, exit_code: int = 1, message: str = ""
    ) -> None:
        """A run failed with `exit_code`: send `error` with its stack, else `message` (the
        summary line). Exit 4, another run holds the lock, is expected now and then."""
        if not self.enabled or exit_code == Locked.exit_code:
            return
        import sentry_sdk

        with sentry_sdk.new_scope() as scope:
            scope.set_tag("exit_code", str(exit_code))
            if error is not None:
                sentry_sdk.capture_exception(error)
            else:
                text = message or f"run failed with exit code {exit_code}"
                sentry_sdk.capture_message(text, level="error")

    def checked_in(self, job: Callable[[], int], schedule: str, tz: str, max_min: int) -> int:
        """Run `job` (it returns an exit code) between two Sentry Crons check-ins, in
        progress then ok or error. They carry the monitor (`SCHEDULE` in `TZ`): Sentry
        alerts on a failed run, one more than 30 minutes late, or one over `max_min`."""
        if not (self.enabled and self.monitor_slug):
            return job()
        from sentry_sdk.crons import capture_checkin

        monitor = {
            "schedule": {"type": "crontab", "value": schedule},
            "timezone": tz,
            "checkin_margin": 30,
            "max_runtime": max_min,
            "failure_issue_threshold": 1,
            "recovery_threshold": 1,
        }
        checkin = partial(capture_checkin, self.monitor_slug, monitor_config=monitor)
        started = time.monotonic()
        check_in_id = checkin(status="in_progress")
        code = 1
        try:
            code = job()
            return code
        finally:
            duration = time.monotonic() - started
            # Another run holding the lock (exit 4) is expected now and then, not an outage.
            ok = code in (0, Locked.exit_code)
            checkin(check_in_id=check_in_id, status="ok" if ok else "error", duration=duration)

    def close(self) -> None:
        """Send what is queued (at most 5 s) and switch reporting off."""
        if self.enabled:
            import sentry_sdk

            sentry_sdk.get_client().close(timeout=5.0)
            sentry_sdk.get_global_scope().set_client(None)  # a closed client still records


def init(
    dsn: str,
    *,
    monitor_slug: str = "",
    secrets: tuple[str, ...] = (),
    release: str | None = None,
    trace_rate: float = 1.0,
) -> Telemetry:
    """Start Sentry when `dsn` is set (else a disabled handle); call once per process.
    `secrets` (`secrets_of`) and the DSN are masked wherever they appear in what is sent."""
    if not dsn:
        return Telemetry(enabled=False)
    # Imported here: the SDK costs ~0.2 s to import, which a run without Sentry need not pay.
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration

    secrets = tuple(sorted({*secrets, *secrets_of(sentry_dsn=dsn)}, key=len, reverse=True))
    sentry_sdk.init(
        dsn=dsn,
        include_local_variables=False,  # they could hold settings or file contents
        release=release,
        traces_sample_rate=trace_rate,  # SENTRY_TRACE_RATE (SPEC §6)
        server_name="backtest-compilation",  # not the host name
        auto_enabling_integrations=False,  # no driver-level hooks that could see documents
        integrations=[LoggingIntegration(level=logging.INFO, event_level=None)],
        before_send=lambda event, _hint: scrub(event, secrets),
        before_breadcrumb=lambda crumb, _hint: scrub(crumb, secrets),
    )
    log.info("error reporting to Sentry on")
    return Telemetry(enabled=True, monitor_slug=monitor_slug)


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
