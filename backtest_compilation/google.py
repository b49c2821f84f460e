"""How this tool talks to Google (Drive and Sheets): credentials, what an answer means
(`answer_of`), the write pacer (after rclone's `lib/pacer`), `Transport.call`'s bounded
retries and the run's `Deadline`. No other module sleeps or decides whether to retry."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import google.auth.exceptions
from google.auth.credentials import Credentials

from .errors import ConfigError, ServiceError

log = logging.getLogger(__name__)

T = TypeVar("T")

REQUEST_TIMEOUT_S = 30.0  # one HTTP request; Google answers a healthy call in well under 5 s
CALL_BUDGET_S = 120.0  # all attempts of one call, waits included
MAX_RETRIES = 6
BACKOFF_BASE_S = 2.0
# A phase longer than this logs how far it got, at INFO, this often (SPEC §5.9).
PROGRESS_EVERY_S = 10.0
BACKOFF_CAP_S = 32.0
JITTER = 0.2  # waits are drawn from [1 - JITTER, 1] × the computed wait
BATCH_LIMIT = 100  # parts in one Drive batch (Google's limit)
MIN_RATE = 0.5  # writes a second: refusals never slow renames below this
RESERVE = 0.5  # of a write, kept in the bucket at least (see `Pacer.take`) …
RESERVE_SHARE = 0.05  # … or this share of the bucket


class Kind(Enum):
    """What an answer means for the caller."""

    OK = "ok"
    RATE_LIMIT = "rate-limit"  # slow down and send it again: never a failure of the work
    TRANSIENT = "transient"  # Google or the network hiccuped: retry with backoff
    PERMANENT = "permanent"  # retrying cannot help: not found, no permission, invalid


# Google's reason strings that mean "send it again": Drive v3 (`error.errors[].reason`)
# and Sheets v4 (`error.status`, `error.details[].reason`). A reason decides before the
# status does: Drive answers a rate limit as 403, and any other 4xx is permanent (also
# `dailyLimitExceeded`: waiting minutes will not lift a daily quota).
# fmt: off
REASONS: Mapping[str, Kind] = {
    **dict.fromkeys(("userRateLimitExceeded", "rateLimitExceeded", "sharingRateLimitExceeded",
                     "RATE_LIMIT_EXCEEDED", "RESOURCE_EXHAUSTED"), Kind.RATE_LIMIT),
    **dict.fromkeys(("backendError", "internalError", "transientError", "UNAVAILABLE",
                     "INTERNAL", "DEADLINE_EXCEEDED"), Kind.TRANSIENT),
}
# fmt: on


def _error(body: Any) -> Mapping[str, Any]:
    """The `error` object of Google's error JSON (`bytes`, `str` or parsed); {} if none."""
    try:
        parsed = json.loads(body) if isinstance(body, bytes | bytearray | str) else body
    except ValueError:
        return {}
    error = parsed.get("error") if isinstance(parsed, Mapping) else None
    return error if isinstance(error, Mapping) else {}


def reasons(body: Any) -> tuple[str, ...]:
    """The reason strings in Google's error JSON (`bytes`, `str` or parsed)."""
    error = _error(body)
    entries = [e for k in ("errors", "details") if isinstance(error.get(k), list) for e in error[k]]
    found = [e.get("reason") for e in entries if isinstance(e, Mapping)]
    return tuple(r for r in (*found, error.get("status")) if isinstance(r, str))


def classify(status: int, body: Any = None) -> Kind:
    """Rate-limit, transient or permanent, for an HTTP answer and its error JSON."""
    if 200 <= status < 400:
        return Kind.OK
    kinds = {REASONS.get(r) for r in reasons(body)}
    # The most hopeful wins: a rate limit next to "forbidden" is still a rate limit.
    if status == 429 or Kind.RATE_LIMIT in kinds:
        return Kind.RATE_LIMIT
    transient = Kind.TRANSIENT in kinds or status >= 500 or status == 408
    return Kind.TRANSIENT if transient else Kind.PERMANENT


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delay-seconds or an HTTP date
    (RFC 9110 §10.2.3); None when absent or unreadable. A date in the past is 0."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable


def message_of(status: int, body: Any) -> str:
    """`403 userRateLimitExceeded: User Rate Limit Exceeded`, from Google's error JSON."""
    found = reasons(body)
    text = str(_error(body).get("message", ""))[:300]
    names = ", ".join(dict.fromkeys(r for r in found if r and not r.isupper()) or found[:1])
    return f"{status} {names}: {text}" if names and text else f"{status} {names or text}".strip()


@dataclass(frozen=True)
class Answer:
    """One answer from Google as the pacer sees it."""

    kind: Kind
    status: int = 0  # 0: no HTTP answer (connection failed, timed out)
    message: str = ""
    retry_after: float | None = None
    reasons: tuple[str, ...] = ()  # Google's reason strings


def answer_of(exc: BaseException, now: datetime | None = None) -> Answer | None:
    """The answer an exception carries (googleapiclient, gspread, requests, httplib2,
    sockets, google-auth); None for an exception that is not about talking to Google."""
    import httplib2
    from googleapiclient.errors import HttpError

    # Only a process that loaded gspread can hold its error: a run without a sheet
    # must not import it (issue 13).
    api_error = getattr(sys.modules.get("gspread.exceptions"), "APIError", None)
    if isinstance(exc, HttpError):
        status, body, header = int(exc.resp.status), exc.content, exc.resp.get("retry-after")
    elif api_error is not None and isinstance(exc, api_error):
        response = exc.response
        status, body = int(response.status_code), response.content
        header = response.headers.get("Retry-After")
    elif isinstance(exc, google.auth.exceptions.RefreshError):
        return Answer(Kind.PERMANENT, 401, "credentials refused")
    elif isinstance(exc, OSError | httplib2.HttpLib2Error | google.auth.exceptions.TransportError):
        # requests' errors are OSErrors; httplib2's and google-auth's are not.
        return Answer(Kind.TRANSIENT, 0, f"cannot reach Google ({type(exc).__name__})")
    else:
        return None
    wait = retry_after(header, now)
    return Answer(classify(status, body), status, message_of(status, body), wait, reasons(body))


class Clock:
    """Monotonic seconds plus any time an injected `sleep` skipped: with a test's instant
    sleep, the pacer, the stall rule and the budgets behave as with real waits."""

    def __init__(
        self,
        sleep: Callable[[float], object] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sleep, self._monotonic, self._skipped = sleep, monotonic, 0.0

    def now(self) -> float:
        return self._monotonic() + self._skipped

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            before = self._monotonic()
            self._sleep(seconds)
            skipped = max(0.0, seconds - (self._monotonic() - before))
            self._skipped += skipped  # whole, also from the listing's threads


class RunTimedOut(ServiceError):
    """The run reached `RUN_TIMEOUT_S` (exit 1); what completed before is kept."""


class Deadline:
    """The end of the run (`RUN_TIMEOUT_S` after it started), on real monotonic time."""

    def __init__(
        self, seconds: float | None, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds, self._monotonic = seconds, monotonic
        self._end = None if seconds is None else monotonic() + seconds

    def left(self) -> float:
        """Seconds left (infinite without a deadline); never negative."""
        return float("inf") if self._end is None else max(0.0, self._end - self._monotonic())

    @property
    def expired(self) -> bool:
        return self.left() <= 0.0

    def error(self, what: str) -> RunTimedOut:
        return RunTimedOut(
            f"the run stopped after RUN_TIMEOUT_S ({self.seconds:g} s) while {what}; "
            "what completed is kept and the rest is done next run"
        )


NO_DEADLINE = Deadline(None)


class Pacer:
    """When the next call may go, after rclone's `lib/pacer` for Google Drive.

    Writes (a `rate`) take tokens from a bucket that refills at the rate and holds one
    second of writes, as Google's does. Each refusal halves the rate, or waits out Drive's
    `Retry-After`; each batch taken whole climbs back by a step, up to the configured
    rate. Reads and Sheets (no `rate`) are not spaced; their retries wait 2, 4, 8 … 32 s
    (or `Retry-After`), jittered."""

    def __init__(
        self,
        rate: float | None = None,
        *,
        clock: Clock | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.clock = clock or Clock()
        self.max_rate = self.rate = rate or 0.0
        self._step = self.max_rate / 10
        self._tokens = self.burst  # Google's bucket starts full as well
        self._at = self._hold = self.clock.now()
        self._rand = rand

    @property
    def burst(self) -> float:
        """What the bucket holds: one second of writes at the current rate."""
        return min(float(BATCH_LIMIT), max(1.0, self.rate))

    def jittered(self, seconds: float) -> float:
        """`seconds` scaled into [1 - JITTER, 1]: retries of many clients spread out."""
        return seconds * (1.0 - JITTER * self._rand())

    def backoff(self, attempt: int) -> float:
        """The wait before retry `attempt` (1, 2, …): exponential, capped, jittered."""
        return self.jittered(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))

    def hold(self, seconds: float) -> None:
        """Nobody sends for `seconds` from now (a backoff or a `Retry-After`)."""
        self._hold = max(self._hold, self.clock.now() + seconds)

    def take(self, most: int, *, latest: float | None = None) -> int | None:
        """Wait until the bucket holds a batch of up to `most` writes and take it: its
        size, or None (without waiting) when it would go after clock time `latest`."""
        # Some writes kept back (5 % of the bucket, half a write at least): Google's
        # bucket fills by its own clock, and a request may arrive early or late.
        keep = max(RESERVE, RESERVE_SHARE * self.burst)
        want = max(1, min(most, int(self.burst - keep)))
        keep = min(keep, self.burst - want)
        now = self.clock.now()
        start = max(now, self._hold)
        have = min(self.burst, self._tokens + (start - self._at) * self.rate)
        start += max(0.0, want + keep - have) / self.rate
        if latest is not None and start > latest:
            return None
        self._tokens, self._at = max(have, want + keep) - want, start
        self.clock.sleep(start - now)
        return want

    def accepted(self) -> None:
        """A batch went through whole: climb back towards the configured rate."""
        self.rate = min(self.max_rate, self.rate + self._step)

    def refused(self, retry_after: float | None = None) -> float:
        """Drive refused writes for its rate, so its bucket is empty: halve the rate, or
        wait out its `Retry-After`. Returns the pause ordered."""
        now = self.clock.now()
        self._tokens, self._at = 0.0, now
        if retry_after is None:
            # Climbing back, per batch: a tenth of the rate refused (a twentieth of the
            # configured one at least, so a lifted limit is found again soon).
            self._step = max(self.rate / 10, self.max_rate / 20)
            self.rate = max(min(MIN_RATE, self.max_rate), self.rate / 2)
            return 0.0
        pause = max(retry_after, retry_after + self.jittered(min(1.0, 0.1 * retry_after + 0.05)))
        self._hold = max(self._hold, now + pause)
        return pause


class CallFailed(Exception):
    """A call that did not succeed: `answer` says why, `cause` is the last exception."""

    def __init__(self, answer: Answer, cause: BaseException) -> None:
        super().__init__(answer.message)
        self.answer, self.cause = answer, cause


@dataclass
class Transport:
    """Sends calls of one API with bounded retries (its pacer's backoff). Rate limits are
    waited out until the run's `deadline`; other answers (and rate limits without a
    deadline) until `retries` or `call_budget_s` are spent. Permanent answers and spent
    budgets raise `CallFailed`; other exceptions pass through."""

    name: str
    _: KW_ONLY
    pacer: Pacer
    retries: int = MAX_RETRIES
    call_budget_s: float = CALL_BUDGET_S
    deadline: Deadline = NO_DEADLINE
    logger: logging.Logger = log

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """`fn()`, retried as the class says."""
        clock, started, attempt = self.pacer.clock, self.pacer.clock.now(), 0
        while True:
            if self.deadline.expired:
                raise self.deadline.error(f"calling {self.name} ({what})")
            try:
                return fn()
            except Exception as exc:
                answer = answer_of(exc)
                if answer is None:
                    raise
                if answer.kind is Kind.PERMANENT:
                    raise CallFailed(answer, exc) from exc
                error: Exception = exc
            attempt += 1
            limited = answer.kind is Kind.RATE_LIMIT
            wait = self.pacer.backoff(attempt)
            if answer.retry_after is not None:
                wait = max(answer.retry_after, self.pacer.jittered(answer.retry_after + 1))
            if wait >= self.deadline.left():
                raise self.deadline.error(f"waiting to call {self.name} again ({what})") from None
            patient = limited and self.deadline.seconds is not None
            spent = clock.now() - started
            if not patient and (attempt > self.retries or spent + wait > self.call_budget_s):
                raise CallFailed(answer, error) from error
            clock.sleep(wait)
            self.logger.info(
                "%s: %s, retry %d/%s in %.1f s (%s)",
                self.name,
                f"HTTP {answer.status}" if answer.status else answer.message,
                attempt,
                "until the run's end" if patient else self.retries,
                wait,
                what,
            )


def direct(endpoint: str) -> bool:
    """True when `endpoint` is on this machine (an emulator): reached without HTTP(S)_PROXY."""
    return bool(endpoint) and urlsplit(endpoint).hostname in ("127.0.0.1", "localhost", "::1")


def credentials(path: Path | str, delegate: str, scopes: Sequence[str]) -> Credentials:
    """The service-account key at `path` acting as `delegate` with `scopes`; a missing or
    malformed key is a `ConfigError` naming the file, never quoting it."""
    from google.oauth2 import service_account

    try:
        creds = service_account.Credentials.from_service_account_file(
            str(path), scopes=list(scopes)
        )
    except FileNotFoundError:
        raise ConfigError(f"GOOGLE_CREDENTIALS_FILE {str(path)!r} does not exist") from None
    except (ValueError, KeyError, TypeError, OSError) as exc:
        # The library's messages can quote the file; say only what kind of problem it is.
        raise ConfigError(
            f"GOOGLE_CREDENTIALS_FILE {str(path)!r} is not a service-account key "
            f"(JSON with client_email, private_key and token_uri; {type(exc).__name__})"
        ) from None
    return creds.with_subject(delegate) if delegate else creds


def credentials_rejected(
    exc: BaseException, api: str, who: str, scopes: Iterable[str]
) -> ConfigError:
    """Google refused the key or the delegation: a `ConfigError` naming `who` the key
    acts as, with only the OAuth error code (never the response, never the key)."""
    code = "rejected"
    if isinstance(exc, google.auth.exceptions.RefreshError) and exc.args:
        code = str(exc.args[0]).split(":", 1)[0].strip()[:200] or code
    return ConfigError(
        f"Google rejected the service-account key in GOOGLE_CREDENTIALS_FILE for {api} "
        f"(acting as {who}): {code}. Check the key, and that domain-wide delegation grants "
        f"the scopes {', '.join(scopes)}."
    )
