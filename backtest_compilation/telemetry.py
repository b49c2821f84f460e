"""Error reporting to Sentry (contract §6 `SENTRY_DSN`): off unless a DSN is set.

What is sent: runtime failures (exception type, message, stack without local
variables), the run summary's counts and timings, and INFO log lines as breadcrumbs.
What is never sent: PII (`send_default_pii` stays off), local variables (they could hold
settings or file contents), request bodies, and anything that looks like a secret:
every event and breadcrumb goes through `scrub` before it leaves the process.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

MASK: Final = "***"
# Values under keys containing one of these words are dropped whatever they look like.
_SECRET_KEYS: Final = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "private_key",
    "privatekey",
    "api_key",
    "apikey",
    "dsn",
    "cookie",
    "credential",
)
_PATTERNS: Final = (
    # Passwords in URLs: mongodb://user:secret@host, https://user:secret@host
    # (the lookbehind keeps this linear on long runs of letters)
    (
        re.compile(r"(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*://[^\s:/?#@]*:)[^\s@/]*@", re.IGNORECASE),
        r"\1" + MASK + "@",
    ),
    # PEM blocks (service-account keys); also a block cut off before its END line.
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
        "[private key removed]",
    ),
    # A service-account JSON quoted in a message.
    (re.compile(r'("private_key(?:_id)?"\s*:\s*)"[^"]*"'), r'\1"' + MASK + '"'),
    # Authorization header values and Google access tokens.
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1 " + MASK),
    (re.compile(r"\bya29\.[A-Za-z0-9._-]+"), MASK),
    # Query-string secrets: ?password=..., &access_token=...
    (
        re.compile(r"([?&][a-z_]*(?:password|passwd|secret|token|key)=)[^&#\s\"']+", re.IGNORECASE),
        r"\1" + MASK,
    ),
)
_MAX_DEPTH: Final = 30


def secrets_of(*, sentry_dsn: str = "", mongo_uri: str = "") -> tuple[str, ...]:
    """The literal secret strings to mask: the DSN and its key, and the MongoDB URI and
    its password when it has one."""
    found: set[str] = set()

    def split(value: str) -> Any:
        try:
            return urlsplit(value)
        except ValueError:
            return None

    def add_piece(piece: str | None) -> None:
        # Very short pieces would mask ordinary text everywhere; URL patterns catch them.
        if piece and len(piece) >= 4:
            found.update({piece, unquote(piece)})

    if sentry_dsn:
        found.add(sentry_dsn)
        dsn = split(sentry_dsn)
        add_piece(dsn.username if dsn else None)
    mongo = split(mongo_uri)
    if mongo is not None and mongo.password:
        found.add(mongo_uri)
        add_piece(mongo.password)
    # Longest first, so a URI is masked whole before its password is.
    return tuple(sorted(set(found), key=len, reverse=True))


def scrub_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with known secrets and secret-looking parts replaced by `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub(value: Any, secrets: tuple[str, ...] = (), _depth: int = 0) -> Any:
    """A copy of `value` (an event, a breadcrumb, any JSON-like data) safe to send."""
    if _depth > _MAX_DEPTH:
        return MASK
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and any(word in key.lower() for word in _SECRET_KEYS):
                out[key] = MASK if item not in (None, "", [], {}) else item
            else:
                out[key] = scrub(item, secrets, _depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [scrub(item, secrets, _depth + 1) for item in value]
    return value


# Fields of the contract §8 summary sent as they are; everything else is reduced to counts, so
# course names, paths and problem messages stay out of Sentry.
_SUMMARY_FIELDS: Final = ("mode", "ok", "exit_code", "mongo", "api_calls", "timings_s")


def summary_for_sentry(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a run summary (contract §8) worth sending: outcome, counts, timings.

    At most ten keys per level: Sentry trims wider dictionaries."""
    out: dict[str, Any] = {key: summary[key] for key in _SUMMARY_FIELDS if key in summary}
    counts: dict[str, Any] = {}
    catalog = summary.get("catalog")
    if isinstance(catalog, Mapping):
        counts["courses"] = len(catalog.get("courses") or ())
        counts["course_codes"] = len(catalog.get("course_codes") or ())
    problems = summary.get("problems")
    if isinstance(problems, list):
        per_category = Counter(str(p.get("category")) for p in problems if isinstance(p, Mapping))
        counts["problems"] = len(problems)
        # One string, not a dict: twelve categories would exceed Sentry's breadth limit.
        counts["problems_by_category"] = ", ".join(
            f"{category} {n}" for category, n in sorted(per_category.items())
        )
    renames = summary.get("renames")
    if isinstance(renames, list):
        counts["renames"] = len(renames)
        counts["renames_applied"] = sum(
            1 for r in renames if isinstance(r, Mapping) and r.get("applied")
        )
    sheet = summary.get("sheet")
    if isinstance(sheet, Mapping):
        counts["sheet_written"] = bool(sheet.get("written"))
    if counts:
        out["counts"] = counts
    return out


@dataclass(frozen=True)
class Telemetry:
    """Handle returned by `init`; every method is a no-op when Sentry is off."""

    enabled: bool
    secrets: tuple[str, ...] = ()
    monitor_slug: str = ""

    def report_failure(
        self, error: BaseException | None = None, *, exit_code: int = 1, message: str = ""
    ) -> None:
        """Send a runtime failure: the exception (with its stack), or `message` if none."""
        if not self.enabled:
            return
        import sentry_sdk

        with sentry_sdk.new_scope() as scope:
            scope.set_tag("exit_code", str(exit_code))
            if error is not None:
                sentry_sdk.capture_exception(error)
            else:
                sentry_sdk.capture_message(
                    message or f"run failed with exit code {exit_code}", level="error"
                )

    def report_exit(
        self, exit_code: int, error: BaseException | None = None, *, message: str = ""
    ) -> None:
        """A run (one-off or scheduled) failed with `exit_code`; `message` (its summary
        line) says how when there is no exception to send."""
        if exit_code == 4:  # another run holds the lock: expected now and then, not a fault
            return
        self.report_failure(error, exit_code=exit_code, message=message)

    def report_summary(self, summary: Mapping[str, Any], *, as_message: bool = False) -> None:
        """Record a run summary: a breadcrumb (sent with any later event) and the `run`
        context; with `as_message`, also an info event of its own."""
        if not self.enabled:
            return
        import sentry_sdk

        data = summary_for_sentry(summary)
        ok = bool(data.get("ok", True))
        sentry_sdk.add_breadcrumb(
            category="run", message="run summary", level="info" if ok else "error", data=data
        )
        sentry_sdk.get_isolation_scope().set_context("last_run", data)
        if as_message:
            sentry_sdk.capture_message(
                f"run {data.get('mode', 'sync')}: exit {data.get('exit_code', 0)}",
                level="info" if ok else "error",
            )

    def checkin_start(self, monitor: Mapping[str, Any]) -> str | None:
        """Sentry Crons: a scheduled run starts (`in_progress`); returns the check-in id.

        `monitor` is `monitor_config(...)`: Sentry creates or updates the monitor from
        it, so a run that never happens also alerts (contract §6 `SENTRY_MONITOR_SLUG`)."""
        if not self.enabled or not self.monitor_slug:
            return None
        from sentry_sdk.crons import capture_checkin

        return capture_checkin(
            monitor_slug=self.monitor_slug, status="in_progress", monitor_config=dict(monitor)
        )

    def checkin_finish(
        self, check_in_id: str | None, *, ok: bool, duration_s: float, monitor: Mapping[str, Any]
    ) -> None:
        """Sentry Crons: the run ended, `ok` or `error`."""
        if not self.enabled or not self.monitor_slug:
            return
        from sentry_sdk.crons import capture_checkin

        capture_checkin(
            monitor_slug=self.monitor_slug,
            check_in_id=check_in_id,
            status="ok" if ok else "error",
            duration=duration_s,
            monitor_config=dict(monitor),
        )

    def checked_in(self, job: Callable[[], int], monitor: Mapping[str, Any]) -> int:
        """Run `job` (it returns an exit code) between two Sentry Crons check-ins: in
        progress, then ok (exit 0) or error, so Sentry alerts on a failed run and on one
        that never happened. A check-in that fails is logged and never stops the run."""
        started = time.monotonic()
        check_in = None
        try:
            check_in = self.checkin_start(monitor)
        except Exception as exc:
            log.warning("sentry crons: check-in failed (%s)", type(exc).__name__)
        code = 1
        try:
            code = job()
            return code
        finally:
            try:
                self.checkin_finish(
                    check_in, ok=code == 0, duration_s=time.monotonic() - started, monitor=monitor
                )
            except Exception as exc:
                log.warning("sentry crons: check-in failed (%s)", type(exc).__name__)

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait (at most `timeout_s`) until queued events are sent."""
        if self.enabled:
            import sentry_sdk

            sentry_sdk.flush(timeout=timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued and switch reporting off."""
        if self.enabled:
            import sentry_sdk

            sentry_sdk.get_client().close(timeout=timeout_s)
            sentry_sdk.get_global_scope().set_client(None)


def init(
    dsn: str,
    *,
    trace_rate: float = 1.0,
    monitor_slug: str = "",
    secrets: tuple[str, ...] = (),
    release: str | None = None,
) -> Telemetry:
    """Start Sentry when `dsn` is set (else a disabled handle); call once per process.

    `secrets` (`secrets_of`) are masked wherever they appear in what is sent, as is the
    DSN itself, on top of everything that looks like a secret; `cli.start_telemetry`
    builds the arguments from the settings."""
    if not dsn:
        log.debug("SENTRY_DSN not set: error reporting off")
        return Telemetry(enabled=False)
    # Imported here: the SDK costs ~0.2 s to import, which a run without Sentry need not pay.
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration

    # Longest first, so a URI is masked whole before its password is.
    secrets = tuple(sorted({*secrets, *secrets_of(sentry_dsn=dsn)}, key=len, reverse=True))

    def before_send(event: Any, hint: Any) -> Any:
        event = scrub(event, secrets)
        request = event.get("request")
        if isinstance(request, dict):
            request.pop("data", None)  # bodies could be file contents
        return event

    def before_breadcrumb(crumb: Any, hint: Any) -> Any:
        return scrub(crumb, secrets)

    sentry_sdk.init(
        dsn=dsn,
        traces_sample_rate=trace_rate,
        # send_default_pii is left at its default (False): passing it is deprecated in
        # recent SDKs; a test asserts the client does not send PII.
        include_local_variables=False,
        max_request_body_size="never",
        release=release,
        server_name="backtest-compilation",  # not the host name
        auto_enabling_integrations=False,  # no driver-level hooks that could see documents
        integrations=[LoggingIntegration(level=logging.INFO, event_level=None)],
        before_send=before_send,
        before_send_transaction=before_send,
        before_breadcrumb=before_breadcrumb,
    )
    log.info("error reporting to Sentry on")
    return Telemetry(enabled=True, secrets=secrets, monitor_slug=monitor_slug)


def monitor_config(schedule: str, tz: str, *, max_runtime_min: int = 60) -> dict[str, Any]:
    """Sentry Crons' monitor config for `SCHEDULE` in `TZ`: a check-in later than 30
    minutes after a slot, or a run longer than `max_runtime_min`, is an alert."""
    return {
        "schedule": {"type": "crontab", "value": schedule},
        "timezone": tz,
        "checkin_margin": 30,
        "max_runtime": max_runtime_min,
        "failure_issue_threshold": 1,
        "recovery_threshold": 1,
    }
