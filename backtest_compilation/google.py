"""The one way this tool talks to Google (Drive and Sheets alike).

It owns what both APIs share:

- credentials and scopes (`credentials`, `credentials_rejected`);
- the endpoint rule: an emulator endpoint on this machine is reached directly, every
  other address through the environment's HTTP(S) proxy (`direct`);
- the classification of every answer into *rate-limit*, *transient* or *permanent*, by
  Google's reason strings first and the HTTP status second (`REASONS`, `classify`,
  `answer_of`), and `Retry-After` in seconds or as an HTTP date (`retry_after`);
- call counting (`ApiCalls`);
- one pacer (`Pacer`) in the manner of rclone's `lib/pacer`: a minimum spacing between
  calls, multiplicative slow-down on rate-limit answers, gradual speed-up on success,
  `Retry-After` honoured, jittered waits, and for batched writes an adaptive batch size
  and number of batches in flight;
- time: a per-request timeout, a bounded retry time per call (`Transport.call`), and the
  run's `Deadline`.

No other module sleeps or decides whether to retry.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
BACKOFF_CAP_S = 32.0
PROBE_AFTER = 4  # whole batches at the size cap before trying one part more


# ---------------------------------------------------------------- classification


class Kind(Enum):
    """What an answer means for the caller."""

    OK = "ok"
    RATE_LIMIT = "rate-limit"  # slow down and send it again: never a failure of the work
    TRANSIENT = "transient"  # Google or the network hiccuped: retry with backoff
    PERMANENT = "permanent"  # retrying cannot help: not found, no permission, invalid


# Google's reason strings: Drive v3 (`error.errors[].reason`) and Sheets v4
# (`error.status`, `error.details[].reason`). A reason decides before the status does:
# Drive answers a rate limit as 403, and a 403 is otherwise permanent.
REASONS: Mapping[str, Kind] = {
    # rate limits
    "userRateLimitExceeded": Kind.RATE_LIMIT,
    "rateLimitExceeded": Kind.RATE_LIMIT,
    "sharingRateLimitExceeded": Kind.RATE_LIMIT,
    "RATE_LIMIT_EXCEEDED": Kind.RATE_LIMIT,
    "RESOURCE_EXHAUSTED": Kind.RATE_LIMIT,
    # transient
    "backendError": Kind.TRANSIENT,
    "internalError": Kind.TRANSIENT,
    "transientError": Kind.TRANSIENT,
    "UNAVAILABLE": Kind.TRANSIENT,
    "INTERNAL": Kind.TRANSIENT,
    "DEADLINE_EXCEEDED": Kind.TRANSIENT,
    # permanent
    "insufficientFilePermissions": Kind.PERMANENT,
    "insufficientPermissions": Kind.PERMANENT,
    "forbidden": Kind.PERMANENT,
    "domainPolicy": Kind.PERMANENT,
    "notFound": Kind.PERMANENT,
    "fileNotFound": Kind.PERMANENT,
    "invalid": Kind.PERMANENT,
    "badRequest": Kind.PERMANENT,
    "parseError": Kind.PERMANENT,
    "required": Kind.PERMANENT,
    "authError": Kind.PERMANENT,
    "dailyLimitExceeded": Kind.PERMANENT,  # a daily quota: waiting minutes will not help
    "storageQuotaExceeded": Kind.PERMANENT,
    "PERMISSION_DENIED": Kind.PERMANENT,
    "NOT_FOUND": Kind.PERMANENT,
    "INVALID_ARGUMENT": Kind.PERMANENT,
    "FAILED_PRECONDITION": Kind.PERMANENT,
    "UNAUTHENTICATED": Kind.PERMANENT,
}
_BY_STATUS = {429: Kind.RATE_LIMIT, 408: Kind.TRANSIENT}
# A reason of each kind in one answer: the most hopeful wins (Google lists the cause first,
# but a rate limit next to "forbidden" is still a rate limit).
_PRECEDENCE = (Kind.RATE_LIMIT, Kind.TRANSIENT, Kind.PERMANENT)


def reasons(body: Any) -> tuple[str, ...]:
    """The reason strings in Google's error JSON (`bytes`, `str` or parsed)."""
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return ()
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return ()
    found: list[str] = []
    for entry in (*_list(error.get("errors")), *_list(error.get("details"))):
        if isinstance(entry, Mapping) and isinstance(entry.get("reason"), str):
            found.append(entry["reason"])
    if isinstance(error.get("status"), str):
        found.append(error["status"])
    return tuple(found)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def classify(status: int, body: Any = None) -> Kind:
    """Rate-limit, transient or permanent, for an HTTP answer and its error JSON."""
    if 200 <= status < 400:
        return Kind.OK
    kinds = {REASONS[r] for r in reasons(body) if r in REASONS}
    for kind in _PRECEDENCE:
        if kind in kinds:
            return kind
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return Kind.TRANSIENT
    return Kind.PERMANENT


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delay-seconds or an HTTP date
    (RFC 9110 §10.2.3); None when absent or unreadable. A date in the past is 0."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def message_of(status: int, body: Any) -> str:
    """`403 userRateLimitExceeded: User Rate Limit Exceeded`, from Google's error JSON."""
    found = reasons(body)
    text = ""
    try:
        raw = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
        error = (json.loads(raw) if isinstance(raw, str) else raw)["error"]
        text = str(error.get("message", ""))[:300]
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    names = ", ".join(dict.fromkeys(r for r in found if r and not r.isupper()) or found[:1])
    if names and text:
        return f"{status} {names}: {text}"
    return f"{status} {names or text}".strip()


@dataclass(frozen=True)
class Answer:
    """One answer from Google as the pacer sees it."""

    kind: Kind
    status: int = 0  # 0: no HTTP answer (connection failed, timed out)
    message: str = ""
    retry_after: float | None = None


def answer_of(exc: BaseException, now: datetime | None = None) -> Answer | None:
    """The answer an exception carries (googleapiclient, gspread, requests, httplib2,
    sockets, google-auth); None for an exception that is not about talking to Google."""
    from googleapiclient.errors import HttpError

    # Only a process that loaded gspread can hold its error: a run without a sheet
    # classifying Drive's rate-limit answers must not import it (issue 13).
    gspread_errors = sys.modules.get("gspread.exceptions")
    api_error = getattr(gspread_errors, "APIError", None)

    if isinstance(exc, HttpError):
        status = int(exc.resp.status)
        header = exc.resp.get("retry-after")
        return Answer(
            classify(status, exc.content),
            status,
            message_of(status, exc.content),
            retry_after(header, now),
        )
    if api_error is not None and isinstance(exc, api_error):
        response = exc.response
        status = int(response.status_code)
        return Answer(
            classify(status, response.content),
            status,
            message_of(status, response.content),
            retry_after(response.headers.get("Retry-After"), now),
        )
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return Answer(Kind.PERMANENT, 401, "credentials refused")
    if _is_connection_error(exc):
        return Answer(Kind.TRANSIENT, 0, f"cannot reach Google ({type(exc).__name__})")
    return None


def _is_connection_error(exc: BaseException) -> bool:
    import httplib2

    kinds: tuple[type[BaseException], ...] = (
        OSError,
        TimeoutError,
        httplib2.HttpLib2Error,
        google.auth.exceptions.TransportError,
    )
    # As for gspread above: requests' errors exist only where requests was loaded.
    requests = sys.modules.get("requests")
    if requests is not None:
        kinds += (requests.ConnectionError, requests.Timeout)
    return isinstance(exc, kinds)


# ---------------------------------------------------------------- time


class Clock:
    """Monotonic seconds plus any time an injected `sleep` skipped, so that a test's
    instant sleep still moves time on: the pacer, the stall rule and the budgets then
    behave as they would with real waits."""

    def __init__(
        self,
        sleep: Callable[[float], object] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sleep = sleep
        self._monotonic = monotonic
        self._skipped = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._monotonic() + self._skipped

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        before = self._monotonic()
        self._sleep(seconds)
        really = self._monotonic() - before
        if really < seconds:
            with self._lock:
                self._skipped += seconds - really


class RunTimedOut(ServiceError):
    """The run reached `RUN_TIMEOUT_S` (exit 1); what completed before is kept."""


class Deadline:
    """The end of the run (`RUN_TIMEOUT_S` after it started), on real monotonic time."""

    def __init__(
        self, seconds: float | None, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self._monotonic = monotonic
        self._end = None if seconds is None else monotonic() + seconds

    def left(self) -> float:
        """Seconds left (infinite without a deadline); never negative."""
        if self._end is None:
            return float("inf")
        return max(0.0, self._end - self._monotonic())

    @property
    def expired(self) -> bool:
        return self.left() <= 0.0

    def error(self, what: str) -> RunTimedOut:
        return RunTimedOut(
            f"the run stopped after RUN_TIMEOUT_S ({self.seconds:g} s) while {what}; "
            "what completed is kept and the rest is done next run"
        )


NO_DEADLINE = Deadline(None)


# ---------------------------------------------------------------- counting


@dataclass
class ApiCalls:
    """HTTP round trips to one API (a batch counts once; retries count), for contract §8,
    and the answers that asked us to slow down. Thread-safe."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, kind: str) -> None:
        with self._lock:
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    def request(self) -> None:
        with self._lock:
            self.requests += 1

    def retry(self) -> None:
        with self._lock:
            self.retries += 1

    def limited(self, n: int = 1) -> None:
        with self._lock:
            self.rate_limited += n


# ---------------------------------------------------------------- the pacer


@dataclass(frozen=True)
class PacerSettings:
    """How one pacer behaves. Spacing is per unit of cost (a batch of n parts costs n)."""

    min_interval: float = 0.0  # seconds per unit at full speed
    start_interval: float = 0.0
    # The interval a first rate-limit answer raises a zero interval to.
    floor_interval: float = 0.0
    max_interval: float = 10.0
    # On a rate-limit answer the interval grows: × the batch's parts sent ÷ parts
    # accepted (the overshoot it measured) up to `max_attack` when the bucket was known
    # empty when it went; else × `attack`, or less, down to `min_attack`, when the rate
    # that got through since the last refusal says so.
    attack: float = 2.0
    min_attack: float = 2.0
    max_attack: float = 2.0
    # The first rate limit reads the rate that got through over at least this long
    # (Google counts writes per second: a shorter window only measures the burst).
    first_window: float = 0.0
    decay: float = 0.9  # interval × this per accepted unit, once a rate limit was seen
    start_decay: float = 0.9  # the same before any rate limit (a faster start)
    backoff_base: float = BACKOFF_BASE_S
    backoff_cap: float = BACKOFF_CAP_S
    jitter: float = 0.2  # waits are drawn from [1 - jitter, 1] × the computed wait
    # Batched writes: batch size and batches in flight start small and adapt.
    start_batch: int = 1
    max_batch: int = 1
    start_concurrency: int = 1
    max_concurrency: int = 1


# Drive writes: no spacing until Drive first says "slow down" (batches and concurrency
# start small and grow meanwhile). That first refusal sets the spacing from the writes
# that got through over at least a second (Google's 3 a second: 10 renames in about 4
# batches); later refusals grow it by the overshoot they measured (×1.1 to ×4) and
# accepted writes shrink it 2 % each, so it settles at the rate Drive sustains.
DRIVE_WRITES = PacerSettings(
    min_interval=0.0,
    start_interval=0.0,
    floor_interval=0.01,
    max_interval=2.0,  # never slower than a write every 2 s: Drive sustains more
    attack=1.25,
    min_attack=1.1,
    max_attack=4.0,
    first_window=1.0,
    decay=0.98,
    start_decay=0.9,
    start_batch=5,
    max_batch=100,
    start_concurrency=1,
    max_concurrency=8,
)
# Reads and Sheets: a handful of calls per run, far below the quotas; rate-limit answers
# are met with backoff and Retry-After, and the pause holds every caller of the pacer.
SINGLE_CALLS = PacerSettings()


class Pacer:
    """Decides when the next call may go, and how long to wait before a retry.

    `wait_turn(cost)` blocks until the caller may send (calls are spaced by
    `interval × cost`, and nobody sends before a pause ordered by `Retry-After` or a
    backoff ends). `answered(...)` feeds each answer back: rate limits slow the pacer
    down multiplicatively (and shrink batches and concurrency), successes speed it up
    again gradually (and grow them). Thread-safe; all time comes from `clock`."""

    def __init__(
        self,
        settings: PacerSettings = SINGLE_CALLS,
        *,
        clock: Clock | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self._rand = rand
        self._lock = threading.Lock()
        self.interval = settings.start_interval
        self.batch = settings.start_batch
        self.concurrency = settings.start_concurrency
        self._next = self.clock.now()
        self._limited_seen = False
        self.batch_cap = settings.max_batch
        self._batch_ok = 0  # the biggest batch Drive took whole
        self._first: float | None = None  # when the first call went
        self._accepted = 0
        self._limited_before = False
        self._at_cap = 0
        # Calls reserved and answers fed back so far, and the calls reserved when the
        # interval last grew by a measure: answers up to that count were sent before
        # it, at the old spacing.
        self._reserved = 0
        self._answers = 0
        self._stale_until = 0
        self._empty_at: float | None = None  # when a refusal last found the bucket empty
        self._was_limited = False  # the last answer had refused parts: the bucket was empty
        self._hold = self._next  # no call before this (a backoff or a Retry-After)
        self._cycle_from: float | None = None  # the last refusal (the bucket was empty) …
        self._cycle_accepted = 0  # … and the writes accepted since
        self._burst_cap = settings.max_batch
        self.waited = 0.0
        self.rate_limited = 0

    def jittered(self, seconds: float) -> float:
        """`seconds` scaled into [1 - jitter, 1]: retries of many clients spread out."""
        return seconds * (1.0 - self.settings.jitter * self._rand())

    def backoff(self, attempt: int) -> float:
        """The wait before retry `attempt` (1, 2, …): exponential, capped, jittered."""
        s = self.settings
        return self.jittered(min(s.backoff_cap, s.backoff_base * 2 ** (attempt - 1)))

    def reserve(self, cost: float = 1.0, *, latest: float | None = None) -> float | None:
        """Take the next slot for a call of `cost`; the seconds to wait for it, or None
        (nothing reserved) when the slot would start after clock time `latest`."""
        with self._lock:
            now = self.clock.now()
            slot = max(now, self._next)
            if self._empty_at is not None:
                # Drive's bucket was empty then: n writes need n intervals' refill.
                slot = max(slot, self._empty_at + cost * self.interval)
            if latest is not None and slot > latest:
                return None
            if self._first is None:
                self._first = slot
            self._empty_at = None
            self._reserved += 1
            self._next = slot + cost * self.interval
            return slot - now

    def turn(self, cost: float = 1.0, *, latest: float | None = None) -> float | None:
        """Wait for the next slot; the seconds waited (0.0: the slot was free), or None
        (without waiting) if the slot starts after `latest`."""
        wait = self.reserve(cost, latest=latest)
        if wait is None:
            return None
        if wait > 0:
            with self._lock:
                self.waited += wait
            self.clock.sleep(wait)
        return wait

    def wait_turn(self, cost: float = 1.0, *, latest: float | None = None) -> bool:
        """Wait for the next slot; False (without waiting) if it starts after `latest`."""
        return self.turn(cost, latest=latest) is not None

    def pause(self, seconds: float) -> None:
        """Nobody sends for `seconds` from now (a backoff or a `Retry-After`)."""
        with self._lock:
            self._hold = max(self._hold, self.clock.now() + seconds)
            self._next = max(self._next, self._hold)

    def answered(
        self,
        *,
        accepted: int = 0,
        rate_limited: int = 0,
        transient: int = 0,
        retry_after: float | None = None,
        attempt: int = 1,
    ) -> float:
        """Feed back one call's answer (a batch: its parts); returns the pause ordered
        (0 when the next call may follow at the normal spacing)."""
        s = self.settings
        pause = 0.0
        with self._lock:
            now = self.clock.now()
            self._accepted += accepted
            self._cycle_accepted += accepted
            self._answers += 1
            if rate_limited:
                self._empty_at = now
                if self._answers >= self._reserved:
                    # Nothing else in flight: refused parts took no writes from Drive's
                    # bucket, so their spacing is given back (the next call waits for
                    # the bucket to refill from now, above).
                    self._next = max(min(self._next, self._empty_at), self._hold)
                self.rate_limited += rate_limited
                self._limited_seen = True
                size = accepted + rate_limited + transient
                # Drive answers a batch's parts in order, so what got through is about
                # what its bucket held. A batch bigger than any that got through whole
                # was too big, not too fast: only the batch size shrinks then.
                too_big = accepted > 0 and size > self._batch_ok
                # An answer to a call sent before the interval last grew by a measure
                # measured the old spacing: it is no measure of the new one.
                stale = self._answers <= self._stale_until
                first_refusal = not self._limited_before
                if s.floor_interval and first_refusal:
                    # The first refusal, whatever the batch's size: start from the rate
                    # that got through, over at least `first_window` (a shorter window
                    # measures Drive's initial burst, not its rate).
                    self._limited_before = True
                    began = self._first if self._first is not None else self._empty_at
                    window = max(s.first_window, self._empty_at - began)
                    first = window / self._accepted if self._accepted else s.floor_interval
                    self.interval = min(s.max_interval, max(self.interval, s.floor_interval, first))
                    self.concurrency = max(1, self.concurrency // 2)
                    self._stale_until = self._reserved
                elif not too_big:
                    if stale:
                        # Sent at the old spacing, which the last growth measured
                        # already: `attack` only (with many batches in flight, as
                        # many nudges hold the rate back while the decay runs).
                        grown = self.interval * s.attack
                    elif self._was_limited:
                        # Sent after Drive's bucket was found empty, at the current
                        # spacing: what got through is the rate Drive sustains.
                        overshoot = size / max(accepted, 0.5)
                        grown = self.interval * min(s.max_attack, max(s.attack, overshoot))
                    elif self._cycle_from is not None and self._cycle_accepted:
                        # The bucket was empty at the last refusal and is again: what got
                        # through in between is the rate Drive sustains (up to a write).
                        # No slower than `attack` allows: tokens lost while we were slow
                        # would make it look lower.
                        measured = max(now - self._cycle_from, 1e-9) / self._cycle_accepted
                        grown = self.interval * s.min_attack
                        grown = min(self.interval * s.attack, max(grown, measured))
                    else:
                        grown = self.interval * s.attack
                    if not stale:
                        self._stale_until = self._reserved
                    self.interval = min(s.max_interval, max(grown, s.floor_interval))
                    self.concurrency = max(1, self.concurrency // 2)
                self._cycle_from, self._cycle_accepted = now, 0
                shrunk = max(1, accepted if accepted else self.batch // 2)
                self.batch_cap = max(1, min(self.batch_cap, shrunk if too_big else size))
                if first_refusal and too_big and self._answers >= self._reserved:
                    # What got through is what Drive's bucket held (its burst): a batch
                    # that size goes whole only when the bucket is full, and a full
                    # bucket wastes what it cannot hold. Batches stay one smaller.
                    self._burst_cap = max(1, accepted - 1)
                    self.batch_cap = min(self.batch_cap, self._burst_cap)
                self.batch = min(self.batch_cap, shrunk)
                self._at_cap = 0
            elif accepted:
                # Until the first rate limit, speed up fast (a slow start that doubles);
                # after it, gently, per accepted unit, so the rate hovers just under the
                # limit instead of sawing between it and half of it.
                decay = s.decay if self._limited_seen else s.start_decay
                self.interval = max(s.min_interval, self.interval * decay**accepted)
                if self.interval < 1e-4:
                    self.interval = s.min_interval
                if not transient:
                    self._batch_ok = max(self._batch_ok, accepted)
                    if self.batch >= self.batch_cap:
                        # Probe one bigger now and then: Drive's allowance may have grown.
                        self._at_cap += 1
                        if self._at_cap >= PROBE_AFTER:
                            # Past the burst seen only once Drive's rate proves it
                            # refills more than that in half a second.
                            full = self.interval * (self._burst_cap + 1) >= s.first_window / 2
                            most = self._burst_cap if full else s.max_batch
                            self.batch_cap = min(most, self.batch_cap + 1)
                            self._at_cap = 0
                    self.batch = min(self.batch_cap, self.batch * 2)
            self._was_limited = bool(rate_limited)
            if rate_limited or transient:
                if retry_after is not None:
                    pause = retry_after + self.jittered(min(1.0, 0.1 * retry_after + 0.05))
                    pause = max(pause, retry_after)
                elif rate_limited and s.floor_interval:
                    # Adaptive spacing already slowed us down; no extra pause needed.
                    pause = 0.0
                else:
                    pause = self.backoff(attempt)
                self._hold = max(self._hold, self.clock.now() + pause)
                self._next = max(self._next, self._hold)
        return pause

    def grow_concurrency(self) -> None:
        """One more batch in flight: the pacer is waiting on round trips, not on spacing."""
        with self._lock:
            self.concurrency = min(self.settings.max_concurrency, self.concurrency + 1)


# ---------------------------------------------------------------- one call


class CallFailed(Exception):
    """A call that did not succeed: `answer` says why, `cause` is the last exception."""

    def __init__(self, answer: Answer, cause: BaseException) -> None:
        super().__init__(answer.message)
        self.answer = answer
        self.cause = cause


class Transport:
    """Sends calls of one API through one pacer, with bounded retries.

    `call(what, fn)` runs `fn` (one HTTP request, already built), retrying rate-limit and
    transient answers until it succeeds, `retries` are spent, the next wait would pass
    `call_budget_s` for this call, or the run's `deadline` is near. Permanent answers and
    spent budgets raise `CallFailed`; exceptions that are not about Google pass through."""

    def __init__(
        self,
        name: str,
        *,
        pacer: Pacer,
        calls: ApiCalls,
        retries: int = MAX_RETRIES,
        call_budget_s: float = CALL_BUDGET_S,
        deadline: Deadline = NO_DEADLINE,
        logger: logging.Logger = log,
        rate_limit_level: int = logging.INFO,
    ) -> None:
        self.name = name
        # Where many calls run (Drive listings), rate-limit answers are counted in
        # `calls.rate_limited` and summarised in progress lines instead.
        self.rate_limit_level = rate_limit_level
        self.pacer = pacer
        self.calls = calls
        self.retries = retries
        self.call_budget_s = call_budget_s
        self.deadline = deadline
        self.log = logger

    @property
    def clock(self) -> Clock:
        return self.pacer.clock

    def call(self, what: str, fn: Callable[[], T]) -> T:
        started = self.clock.now()
        attempt = 0
        while True:
            if self.deadline.expired:
                raise self.deadline.error(f"calling {self.name} ({what})")
            self.pacer.wait_turn()
            try:
                result = fn()
            except Exception as exc:
                error: Exception = exc
                answer = answer_of(exc)
                if answer is None:
                    raise
                if answer.kind is not Kind.PERMANENT and self.deadline.expired:
                    raise self.deadline.error(f"calling {self.name} ({what})") from None
            else:
                self.pacer.answered(accepted=1)
                return result
            if answer.kind is Kind.PERMANENT:
                raise CallFailed(answer, error) from error
            attempt += 1
            if answer.kind is Kind.RATE_LIMIT:
                self.calls.limited()
            wait = self.pacer.answered(
                rate_limited=int(answer.kind is Kind.RATE_LIMIT),
                transient=int(answer.kind is Kind.TRANSIENT),
                retry_after=answer.retry_after,
                attempt=attempt,
            )
            spent = self.clock.now() - started
            if wait >= self.deadline.left():
                raise self.deadline.error(f"waiting to call {self.name} again ({what})") from None
            if attempt > self.retries or spent + wait > self.call_budget_s:
                raise CallFailed(answer, error) from error
            self.calls.retry()
            self.log.log(
                self.rate_limit_level if answer.kind is Kind.RATE_LIMIT else logging.INFO,
                "%s: %s, retry %d/%d in %.1f s (%s)",
                self.name,
                f"HTTP {answer.status}" if answer.status else answer.message,
                attempt,
                self.retries,
                wait,
                what,
            )


# ---------------------------------------------------------------- endpoints and keys


def direct(endpoint: str) -> bool:
    """True when `endpoint` is on this machine (an emulator): reached without the
    environment's HTTP(S)_PROXY. Google itself is reached through the proxy, if any."""
    if not endpoint:
        return False
    return urlsplit(endpoint).hostname in ("127.0.0.1", "localhost", "::1")


def credentials(path: Path | str, delegate: str, scopes: Sequence[str]) -> Credentials:
    """Service-account credentials from the key file at `path`, acting as `delegate`
    (domain-wide delegation) with `scopes`. A missing or malformed key is a
    `ConfigError` naming the file, never quoting it."""
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
        first = str(exc.args[0])
        code = first.split(":", 1)[0].strip()[:200] or code
    elif isinstance(exc, CallFailed) and exc.answer.status:
        code = f"HTTP {exc.answer.status}"
    return ConfigError(
        f"Google rejected the service-account key in GOOGLE_CREDENTIALS_FILE for {api} "
        f"(acting as {who}): {code}. Check the key, and that domain-wide delegation grants "
        f"the scopes {', '.join(scopes)}."
    )


__all__ = [
    "CALL_BUDGET_S",
    "DRIVE_WRITES",
    "REASONS",
    "REQUEST_TIMEOUT_S",
    "SINGLE_CALLS",
    "Answer",
    "ApiCalls",
    "CallFailed",
    "Clock",
    "Deadline",
    "Kind",
    "Pacer",
    "PacerSettings",
    "RunTimedOut",
    "Transport",
    "answer_of",
    "classify",
    "credentials",
    "credentials_rejected",
    "direct",
    "message_of",
    "reasons",
    "retry_after",
]
