"""What the Drive and Sheets emulators share because Google shares it.

- `GoogleError`: an error answered as Google's JSON. Drive v3 keeps the older shape
  (`errors: [{message, domain, reason, …}]`), Sheets v4 the newer one (`status`, and
  `details` when there are any); `body()` writes whichever the error was built for.
- Field masks: `parse_fields` reads the partial-response syntax (`a,b(c,d/e),f.g`) into a
  nested dict, `apply_fields` keeps only what it names.
- The OAuth token endpoint: `token_claims` reads a JWT-bearer grant (the signature is
  not checked), `token_error` / `token_answer` write Google's answers.
- Fault injection with one API for both emulators (`FaultInjector`): `fail_next(*kinds)`
  scripts the next requests, `fail_every(n, kinds)` fails every n-th one; a kind is a
  key of `FAULTS` ("429", "403-rate", "503", …), "drop" (connection closed unanswered),
  "hang" (never answered) or "ok" (this request answers normally).
- `QuotaClock`: the time the emulators' quotas count on: real monotonic seconds plus
  whatever a test jumped (`advance`, or `sleep` handed to the code under test as its
  sleep), so many runs fit in little real time without the quotas being any kinder.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

# google.rpc.Code names, as the `status` of a v4 error body.
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    410: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class GoogleError(Exception):
    """An error answered with Google's error JSON.

    With a `reason` the body has Drive v3's `errors` list (plus `extra` keys such as
    `location`); with `status=True` it has the v4 `status` (and `details` if given)."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        domain: str = "global",
        *,
        status: bool = False,
        details: list[JSON] | None = None,
        **extra: str,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.with_status = status
        self.details = details
        self.extra = extra

    def body(self) -> JSON:
        """`{"error": {...}}` as Google sends it."""
        error: JSON = {"code": self.code, "message": self.message}
        if self.reason is not None:
            item = {"message": self.message, "domain": self.domain, "reason": self.reason}
            item.update(self.extra)
            error["errors"] = [item]
        if self.with_status:
            error["status"] = STATUS.get(self.code, HTTPStatus(self.code).name)
        if self.details:
            error["details"] = self.details
        return {"error": error}


# The injectable faults, as Drive v3 words them (`reason`, `domain`); a v4 API answers
# the same code with its own message and `status`.
FAULTS: dict[str, tuple[int, str, str, str, dict[str, str]]] = {
    "429": (429, "Rate Limit Exceeded", "rateLimitExceeded", "usageLimits", {}),
    "403-rate": (403, "Rate Limit Exceeded", "rateLimitExceeded", "usageLimits", {}),
    "403-user-rate": (403, "User Rate Limit Exceeded", "userRateLimitExceeded", "usageLimits", {}),
    "500": (500, "Internal Error", "internalError", "global", {}),
    "503": (503, "The service is currently unavailable.", "backendError", "global", {}),
    # Not retryable: a client must give up at once on these.
    "403-forbidden": (403, "The user does not have sufficient permissions.",
                      "insufficientFilePermissions", "global", {}),
    "400": (400, "Bad Request", "badRequest", "global", {}),
    # Credentials no longer accepted (a revoked token).
    "401": (401, "Request had invalid authentication credentials.", "authError", "global",
            {"location": "Authorization", "locationType": "header"}),
    # A page token the server no longer accepts.
    "410": (410, "The page token is no longer valid.", "gone", "global", {}),
}  # fmt: skip
# Faults that are not an answer: the connection is closed, or never answered.
SILENT = ("drop", "hang")
FAULT_KINDS = ("429", "403-rate", "403-user-rate", "500", "503", "drop")


class Unanswered(Exception):
    """A "drop" or "hang" fault: the request gets no answer at all."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind

    def leave_unanswered(self, handler: BaseHTTPRequestHandler, hang_s: float) -> None:
        """Drop: close the connection at once (the client sees a reset or an empty
        reply). Hang: answer nothing for `hang_s`, then close."""
        if self.kind == "hang":
            time.sleep(hang_s)
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)


def fault_error(kind: str) -> GoogleError:
    """The Drive-v3-shaped error of one fault kind."""
    code, message, reason, domain, extra = FAULTS[kind]
    return GoogleError(code, message, reason, domain, **extra)


@dataclass
class FaultPlan:
    """Which requests fail: every `every`-th HTTP request (cycling through `kinds`),
    plus any scripted faults (consumed first), plus every `part_every`-th batch part."""

    every: int = 0
    kinds: tuple[str, ...] = FAULT_KINDS
    part_every: int = 0
    part_kinds: tuple[str, ...] = ("403-user-rate", "429", "503")
    retry_after: float | None = None
    retry_after_form: str = "seconds"  # or "date": an HTTP date that many seconds ahead
    hang_s: float = 3600.0  # how long a "hang" fault keeps the request unanswered
    # Batch-part faults happen only while this answers True (None: always), e.g. a
    # rate limit that lifts at a given clock time.
    part_while: Callable[[], bool] | None = None
    script: deque[str] = field(default_factory=deque)


class FaultInjector:
    """Fault injection, the same for every emulator: `faults` (a `FaultPlan`),
    `fail_next`, `fail_every`, and `next_fault()` called once per HTTP request."""

    faults: FaultPlan
    _fault_lock: threading.Lock
    _fault_requests: int

    def _init_faults(self, kinds: Iterable[str] = (*FAULTS, *SILENT)) -> None:
        self.faults = FaultPlan()
        self._fault_lock = threading.Lock()
        self._fault_requests = 0
        self._fault_known = frozenset(kinds)

    def _check(self, kinds: Iterable[str]) -> tuple[str, ...]:
        out = tuple(kinds)
        unknown = [k for k in out if k != "ok" and k not in self._fault_known]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {sorted(self._fault_known)}")
        return out

    def fail_every(self, n: int, kinds: Iterable[str] | None = None) -> None:
        """Every n-th HTTP request fails with the next kind in `kinds` (0 = never);
        by default `FAULT_KINDS`, those this emulator can answer."""
        if kinds is None:
            kinds = [k for k in FAULT_KINDS if k in self._fault_known]
        self.faults.kinds = self._check(kinds)
        self.faults.every = n

    def fail_next(self, *kinds: str) -> None:
        """The next requests fail with these kinds, in order ("ok": this one answers)."""
        self.faults.script.extend(self._check(kinds))

    def next_fault(self) -> str | None:
        """The fault for the request being answered now, or None."""
        with self._fault_lock:
            self._fault_requests += 1
            if self.faults.script:
                kind = self.faults.script.popleft()
                return None if kind == "ok" else kind
            n, every = self._fault_requests, self.faults.every
            if every and n % every == 0:
                kinds = self.faults.kinds
                return kinds[(n // every - 1) % len(kinds)]
            return None


# ---------------------------------------------------------------- quota time


class QuotaClock:
    """Monotonic seconds for quota windows and buckets: `base()` (real time by default)
    plus every jump made with `advance`. Tests hand `sleep` to the code under test as
    its sleep (the wait is not slept, but the quotas see it pass, as Google would) and
    call `between_runs` between runs (runs are hours apart in production).

    With `path`, the jumps are kept in that file, so a CLI run in another process can
    count its waits on the same clock (`tests/support/forkserver.py`); the processes
    must share `base` (`time.monotonic` is system-wide). Thread- and process-safe."""

    def __init__(
        self, base: Callable[[], float] = time.monotonic, path: Path | None = None
    ) -> None:
        self._base = base
        self._offset = 0.0
        self._lock = threading.Lock()
        self.path = path
        if path is not None and not path.exists():
            path.write_bytes(struct.pack("<d", 0.0))

    def _shared(self, add: float) -> float:
        """The jumps so far in the shared file, after adding `add` to them."""
        assert self.path is not None
        with self.path.open("r+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            offset = struct.unpack("<d", f.read(8))[0] + add
            if add:
                f.seek(0)
                f.write(struct.pack("<d", offset))
            return offset

    def __call__(self) -> float:
        with self._lock:
            offset = self._offset if self.path is None else self._shared(0.0)
            return self._base() + offset

    def advance(self, seconds: float) -> None:
        """Move this clock `seconds` ahead at once."""
        if seconds > 0:
            with self._lock:
                if self.path is None:
                    self._offset += seconds
                else:
                    self._shared(seconds)

    sleep = advance  # a wait that is not slept, but counted

    def between_runs(self) -> None:
        """Jump past every quota window (a minute and a second): scheduled runs are
        hours apart, so each starts with Google's quotas unspent."""
        self.advance(BETWEEN_RUNS_S)


# Longer than Sheets' one-minute window; Drive's bucket refills within a second.
BETWEEN_RUNS_S = 61.0


# ---------------------------------------------------------------- field masks

_FIELD = re.compile(r"\s*([A-Za-z0-9_*]+(?:[./][A-Za-z0-9_*]+)*)\s*")


def parse_fields(text: str, known: frozenset[str] | set[str] | None = None) -> JSON:
    """Google's partial-response syntax `a,b(c,d/e),f.g` → a nested dict of paths (a leaf
    is `{}`). ValueError("Invalid field selection …") on bad syntax or, when `known` is
    given, a name outside it."""
    pos = 0

    def parse_list(end: str | None) -> JSON:
        nonlocal pos
        tree: JSON = {}
        while True:
            m = _FIELD.match(text, pos)
            if not m:
                raise ValueError(f"Invalid field selection {text}")
            pos = m.end()
            parts = re.split(r"[./]", m.group(1))
            if known is not None:
                for part in parts:
                    if part != "*" and part not in known:
                        raise ValueError(f"Invalid field selection {part}")
            node = tree
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            leaf = node.setdefault(parts[-1], {})
            if pos < len(text) and text[pos] == "(":
                pos += 1
                leaf.update(parse_list(")"))
            while pos < len(text) and text[pos] == " ":
                pos += 1
            if pos >= len(text):
                if end is not None:
                    raise ValueError(f"Invalid field selection {text}")
                return tree
            if text[pos] == ",":
                pos += 1
                continue
            if end is not None and text[pos] == end:
                pos += 1
                return tree
            raise ValueError(f"Invalid field selection {text}")

    return parse_list(None)


def apply_fields(obj: Any, tree: Mapping[str, Any]) -> Any:
    """Keep only the fields `tree` names (lists are filtered element by element)."""
    if not tree or "*" in tree:
        return obj
    if isinstance(obj, list):
        return [apply_fields(item, tree) for item in obj]
    if not isinstance(obj, dict):
        return obj
    return {k: apply_fields(v, tree[k]) for k, v in obj.items() if k in tree}


# ---------------------------------------------------------------- OAuth token endpoint


def token_claims(assertion: str) -> JSON | None:
    """The claims of a JWT-bearer `assertion` (signature not verified), None if unreadable."""
    try:
        payload = assertion.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def token_error(error: str, description: str) -> JSON:
    """An OAuth error body, e.g. `invalid_grant` / `Invalid JWT.`."""
    return {"error": error, "error_description": description}


def token_answer(token: str, expires_in: int = 3599) -> JSON:
    """A granted access token."""
    return {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}
