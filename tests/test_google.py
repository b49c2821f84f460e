"""The Google transport: one classification of answers, Retry-After, the pacer, budgets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from backtest_compilation import google
from backtest_compilation.google import Clock, Kind, Pacer

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


def drive_error(status: int, reason: str, message: str = "m") -> bytes:
    return json.dumps(
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"domain": "usageLimits", "reason": reason, "message": message}],
            }
        }
    ).encode()


def sheets_error(status: int, grpc: str, reason: str | None = None) -> bytes:
    error: dict[str, object] = {"code": status, "message": "m", "status": grpc}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    return json.dumps({"error": error}).encode()


CLASSIFICATION = [
    pytest.param(200, b"{}", Kind.OK, id="a 200 is an answer, not an error"),
    pytest.param(
        403, drive_error(403, "userRateLimitExceeded"), Kind.RATE_LIMIT,
        id="Drive 403 userRateLimitExceeded is a rate limit",
    ),
    pytest.param(
        403, drive_error(403, "rateLimitExceeded"), Kind.RATE_LIMIT,
        id="Drive 403 rateLimitExceeded is a rate limit",
    ),
    pytest.param(
        403, drive_error(403, "sharingRateLimitExceeded"), Kind.RATE_LIMIT,
        id="Drive sharing rate limit is a rate limit",
    ),
    pytest.param(
        429, drive_error(429, "rateLimitExceeded"), Kind.RATE_LIMIT, id="Drive 429 is a rate limit"
    ),
    pytest.param(
        429, sheets_error(429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED"), Kind.RATE_LIMIT,
        id="Sheets 429 RATE_LIMIT_EXCEEDED is a rate limit",
    ),
    pytest.param(429, b"", Kind.RATE_LIMIT, id="a bare 429 is a rate limit"),
    pytest.param(
        500, drive_error(500, "backendError"), Kind.TRANSIENT, id="Drive backendError is transient"
    ),
    pytest.param(
        503, sheets_error(503, "UNAVAILABLE"), Kind.TRANSIENT, id="Sheets UNAVAILABLE is transient"
    ),
    pytest.param(502, b"<html>bad gateway</html>", Kind.TRANSIENT, id="a bare 502 is transient"),
    pytest.param(408, b"", Kind.TRANSIENT, id="a request timeout is transient"),
    pytest.param(
        403, drive_error(403, "insufficientFilePermissions"), Kind.PERMANENT,
        id="Drive insufficientFilePermissions is permanent",
    ),
    pytest.param(
        404, drive_error(404, "notFound"), Kind.PERMANENT, id="Drive notFound is permanent"
    ),
    pytest.param(
        400, drive_error(400, "invalid"), Kind.PERMANENT, id="Drive invalid is permanent"
    ),
    pytest.param(
        403, drive_error(403, "dailyLimitExceeded"), Kind.PERMANENT,
        id="a daily limit does not lift within a run: permanent",
    ),
    pytest.param(
        403, sheets_error(403, "PERMISSION_DENIED"), Kind.PERMANENT,
        id="Sheets PERMISSION_DENIED is permanent",
    ),
    pytest.param(403, b"", Kind.PERMANENT, id="a bare 403 is permanent"),
    pytest.param(401, drive_error(401, "authError"), Kind.PERMANENT, id="401 is permanent"),
    pytest.param(
        500, drive_error(500, "userRateLimitExceeded"), Kind.RATE_LIMIT,
        id="the reason decides before the status",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("status", "body", "kind"), CLASSIFICATION)
def test_every_google_answer_is_classified_by_one_table(
    status: int, body: bytes, kind: Kind
) -> None:
    assert google.classify(status, body) is kind


def test_messages_name_the_reason_and_never_the_whole_body() -> None:
    body = drive_error(403, "userRateLimitExceeded", "User Rate Limit Exceeded")
    assert google.message_of(403, body) == "403 userRateLimitExceeded: User Rate Limit Exceeded"
    assert google.message_of(502, b"<html>" + b"x" * 5000) == "502"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        pytest.param("7", 7.0, id="delay in seconds"),
        pytest.param("0", 0.0, id="zero seconds"),
        pytest.param(" 2.5 ", 2.5, id="fractional seconds with spaces"),
        pytest.param(format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0,
                     id="an HTTP date 30 s ahead"),
        pytest.param("Mon, 30 Nov 2026 12:01:00 GMT", 60.0, id="an HTTP date written by hand"),
        pytest.param(format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0,
                     id="an HTTP date in the past is now"),
        pytest.param("soon", None, id="unreadable"),
        pytest.param(None, None, id="absent"),
    ],
)  # fmt: skip
def test_retry_after_in_seconds_and_as_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    assert google.retry_after(header, NOW) == seconds


# ---------------------------------------------------------------- the pacer, on a fake clock


class FakeTime:
    """Monotonic seconds that only move when someone sleeps."""

    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Bucket:
    """Drive's write limit as a token bucket (the emulator's rule, without HTTP)."""

    rate: float
    burst: float
    tokens: float
    at: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def drive_writes(
    pacer: Pacer, fake: FakeTime, bucket: Bucket, parts: int, latency: float = 0.1
) -> tuple[int, float]:
    """Send `parts` writes in the pacer's batches, one batch at a time, re-sending the
    rate-limited ones; (attempts, seconds taken)."""
    started, attempts, left = fake.t, 0, parts
    while left:
        n = pacer.take(left)
        assert n is not None
        fake.sleep(latency)
        accepted = sum(bucket.take(fake.t) for _ in range(n))
        attempts += n
        left -= accepted
        if accepted < n:
            pacer.refused()
        else:
            pacer.accepted()
    return attempts, fake.t - started


def pacer_at(rate: float, fake: FakeTime) -> Pacer:
    return Pacer(rate, clock=Clock(fake.sleep, fake.monotonic))


@pytest.mark.parametrize("rate", [3, 10, 50])
def test_the_pacer_keeps_to_the_configured_rate(rate: float) -> None:
    """DRIVE_WRITES_PER_S as Drive allows (Google's 3, or a workspace's higher quota):
    the rate, all but no refused parts."""
    fake = FakeTime()
    bucket = Bucket(rate, burst=rate, tokens=rate, at=fake.t)
    attempts, seconds = drive_writes(pacer_at(rate, fake), fake, bucket, 60 * rate)
    assert 60 * rate / seconds >= 0.9 * rate
    assert attempts <= 1.05 * 60 * rate


@pytest.mark.parametrize("rate", [5, 10, 20, 50])
def test_the_pacer_finds_a_lower_limit_than_configured(rate: float) -> None:
    fake = FakeTime()
    pacer = pacer_at(2 * rate, fake)  # DRIVE_WRITES_PER_S set too high
    bucket = Bucket(rate, burst=rate, tokens=rate, at=fake.t)
    attempts, seconds = drive_writes(pacer, fake, bucket, 40 * rate)
    assert 40 * rate / seconds >= 0.6 * rate  # halving on refusals, climbing back
    assert attempts <= 1.3 * 40 * rate


def test_the_pacer_keeps_googles_rate_from_the_start() -> None:
    """Google's 3 writes a second, burst 3: the burst, then 3 a second, no refusal."""
    fake = FakeTime()
    pacer = pacer_at(3, fake)
    bucket = Bucket(3, burst=3, tokens=3, at=fake.t)
    attempts, seconds = drive_writes(pacer, fake, bucket, 10)
    assert attempts <= 15
    assert seconds <= (10 - 3) / 3 + 1.5  # the burst, then Google's rate
    assert pacer.rate == 3


def test_the_pacer_slowdown_is_bounded() -> None:
    fake = FakeTime()
    pacer = pacer_at(50, fake)
    for _ in range(200):  # Drive refuses everything, for a long time
        assert pacer.take(100)
        pacer.refused()
    assert pacer.rate == google.MIN_RATE
    before = fake.t
    pacer.take(100)
    assert fake.t - before <= (1 + google.RESERVE) / google.MIN_RATE
    single = Pacer(clock=Clock(fake.sleep, fake.monotonic), rand=lambda: 0.0)
    waits = [single.backoff(n) for n in range(1, 12)]
    assert waits == sorted(waits) and max(waits) == google.BACKOFF_CAP_S


def test_the_pacer_recovers_when_the_limit_lifts() -> None:
    fake = FakeTime()
    pacer = pacer_at(50, fake)
    slow = Bucket(2, burst=2, tokens=2, at=fake.t)
    attempts, seconds = drive_writes(pacer, fake, slow, 60)
    assert 60 / seconds >= 0.6 * 2  # tracking 2 writes a second
    fast = Bucket(50, burst=50, tokens=50, at=fake.t)
    drive_writes(pacer, fake, fast, 500)  # the limit lifts to 50/s
    attempts, seconds = drive_writes(pacer, fake, fast, 1000)
    assert 1000 / seconds >= 0.85 * 50
    assert attempts <= 1.3 * 1000


def test_retry_after_holds_the_next_batch_then_lets_it_go() -> None:
    fake = FakeTime()
    pacer = Pacer(3, clock=Clock(fake.sleep, fake.monotonic), rand=lambda: 0.0)
    wait = pacer.refused(retry_after=12.0)
    assert 12.0 <= wait <= 13.0
    assert pacer.rate == 3  # waited out, not halved
    before = fake.t
    assert pacer.take(10) == 2  # what the bucket refilled during the wait, half a write kept
    assert fake.t - before == pytest.approx(wait)


def test_jitter_spreads_waits_below_the_computed_backoff() -> None:
    fake = FakeTime()
    clock = Clock(fake.sleep, fake.monotonic)
    low = Pacer(clock=clock, rand=lambda: 1.0).backoff(3)
    high = Pacer(clock=clock, rand=lambda: 0.0).backoff(3)
    assert high == 8.0 and low == pytest.approx(8.0 * 0.8)


def test_a_clock_counts_the_time_an_injected_sleep_skipped() -> None:
    fake = FakeTime()
    clock = Clock(lambda _s: None, fake.monotonic)
    clock.sleep(30)
    assert clock.now() == fake.t + 30


# ---------------------------------------------------------------- one call


def test_a_call_gives_up_when_its_retry_budget_is_spent() -> None:
    from googleapiclient.errors import HttpError
    from httplib2 import Response

    fake = FakeTime()
    transport = google.Transport(
        "drive",
        pacer=Pacer(clock=Clock(fake.sleep, fake.monotonic)),
        retries=100,
        call_budget_s=20.0,
    )
    started, attempts = fake.t, []

    def busy() -> None:
        attempts.append(fake.t)
        raise HttpError(Response({"status": 503}), drive_error(503, "backendError"))

    with pytest.raises(google.CallFailed) as failed:
        transport.call("files.list", busy)
    assert failed.value.answer.kind is Kind.TRANSIENT
    assert fake.t - started <= 20.0
    assert len(attempts) >= 3


def test_a_call_stops_at_the_runs_deadline() -> None:
    fake = FakeTime()
    deadline = google.Deadline(5.0, fake.monotonic)
    transport = google.Transport(
        "sheets",
        pacer=Pacer(clock=Clock(fake.sleep, fake.monotonic)),
        deadline=deadline,
    )
    fake.t += 6.0
    with pytest.raises(google.RunTimedOut, match="RUN_TIMEOUT_S"):
        transport.call("read", lambda: None)


@pytest.mark.parametrize(
    ("endpoint", "direct"),
    [
        ("", False),
        ("http://127.0.0.1:8080", True),
        ("http://localhost:9", True),
        ("https://drive.example.org", False),
    ],
)
def test_only_an_endpoint_on_this_machine_bypasses_the_proxy(endpoint: str, direct: bool) -> None:
    assert google.direct(endpoint) is direct


def _exceptions_without_an_http_answer() -> list[object]:

    import google.auth.exceptions
    import httplib2
    import requests

    return [
        pytest.param(requests.ConnectionError("refused"), Kind.TRANSIENT, id="requests: refused"),
        pytest.param(requests.ReadTimeout("slow"), Kind.TRANSIENT, id="requests: read timeout"),
        pytest.param(httplib2.ServerNotFoundError("dns"), Kind.TRANSIENT, id="httplib2: no host"),
        pytest.param(TimeoutError("slow"), Kind.TRANSIENT, id="a socket timed out"),
        pytest.param(
            google.auth.exceptions.TransportError("down"), Kind.TRANSIENT, id="token endpoint down"
        ),
        pytest.param(
            google.auth.exceptions.RefreshError("invalid_grant: x"),
            Kind.PERMANENT,
            id="credentials refused",
        ),
        pytest.param(ValueError("a bug of ours"), None, id="not about Google: passes through"),
    ]


@pytest.mark.parametrize(("exc", "kind"), _exceptions_without_an_http_answer())
def test_errors_without_an_http_answer_are_classified(
    exc: BaseException, kind: Kind | None
) -> None:
    answer = google.answer_of(exc)
    assert (answer and answer.kind) == kind
    if kind is Kind.TRANSIENT:
        assert answer is not None and answer.status == 0
        assert answer.message == f"cannot reach Google ({type(exc).__name__})"
