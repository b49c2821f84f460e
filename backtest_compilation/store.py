"""`Store`: the website's three MongoDB collections (contract §3), read in three queries,
written one ordered `bulk_write` per phase of a `website.Plan`. `mongomock://` is an
in-process store (the demo). Driver errors become `ServiceError` (exit 1) or `ConfigError`
(exit 2), without the password."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Any, Self

import pymongo
from pymongo import DeleteOne, InsertOne, MongoClient, UpdateMany, monitoring
from pymongo.database import Database

from . import website
from .catalog import ExamEntry, exam_documents
from .errors import ConfigError, ServiceError
from .google import NO_DEADLINE, Deadline
from .report import plan_lines
from .settings import redact_uri
from .telemetry import scrub_text, secrets_of
from .website import Applied, Current, Plan

log = logging.getLogger(__name__)

CODES = "backtest_course_code_collection"
COURSES = "backtest_courses_collection"
BACKTESTS = "backtest_collection"
DEFAULT_TIMEOUT_MS = 5_000
SOCKET_TIMEOUT_S = 60.0  # the longest the driver waits for a reply by itself
# The indexes the website's queries rely on.
INDEXES = ((CODES, "course_code"), (COURSES, "course_code"), (BACKTESTS, "course_ids"))


def parse_tests(raw: Any) -> tuple[ExamEntry, ...] | None:
    """A stored `tests` list as exam entries, or None if not exactly the website's shape."""
    try:
        entries = tuple(ExamEntry(item["type"], tuple(item["tests"])) for item in raw)
    except (KeyError, TypeError):
        return None
    texts = all(isinstance(s, str) for e in entries for s in (e.type, *e.semesters))
    return entries if texts and exam_documents(entries) == raw else None


def read_state(
    codes: Iterable[Mapping[str, Any]],
    courses: Iterable[Mapping[str, Any]],
    backtests: Iterable[Mapping[str, Any]],
) -> Current:
    """Typed view of the three collections' documents (any shape is accepted)."""

    def text(doc: Mapping[str, Any], key: str) -> str | None:
        return doc[key] if isinstance(doc.get(key), str) else None

    def backtest(doc: Mapping[str, Any]) -> website.BacktestDoc:
        ids = doc.get("course_ids")
        # A scalar still matches the website's `$in` query: it points at that course.
        as_tuple = tuple(ids) if isinstance(ids, list) else () if ids is None else (ids,)
        exact = isinstance(ids, list) and len(ids) == 1
        return website.BacktestDoc(doc.get("_id"), as_tuple, parse_tests(doc.get("tests")), exact)

    def oldest_first(docs: Iterable[Any]) -> tuple[Any, ...]:
        return tuple(sorted(docs, key=lambda d: website.id_order(d.id)))

    keys = ("name", "course_code", "folder_id")
    return Current(
        oldest_first(website.CodeDoc(d.get("_id"), text(d, "course_code")) for d in codes),
        oldest_first(website.CourseDoc(d.get("_id"), *(text(d, k) for k in keys)) for d in courses),
        oldest_first(backtest(d) for d in backtests),
    )


class RoundTrips(Counter[str], monitoring.CommandListener):
    """Commands sent to the server, by name: one command is one round trip."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self[event.command_name] += 1

    def succeeded(self, event: object) -> None:
        pass

    failed = succeeded


class ApplyFailed(ServiceError):
    """`Store.apply` stopped part-way (exit 1); `applied` says what was written before."""

    def __init__(self, message: str, applied: Applied) -> None:
        super().__init__(message)
        self.applied = applied


class Store:
    """The collections in database `db_name` (`Store.connect`, then close); no operation
    outlives `deadline`."""

    def __init__(
        self,
        client: Any,  # pymongo's MongoClient, or mongomock's
        db_name: str,
        *,
        round_trips: RoundTrips,  # listening to `client` (mongomock: counted by hand)
        uri: str = "",
        deadline: Deadline | None = None,
    ) -> None:
        self.database: Database[Any] = client[db_name]  # for tests, doctor and the demo
        self.round_trips = round_trips
        self.deadline = deadline or NO_DEADLINE
        self._where = redact_uri(uri) if uri else "MongoDB"
        self._scrub = partial(scrub_text, secrets=secrets_of(mongo_uri=uri))

    @classmethod
    def connect(
        cls,
        uri: str,
        db_name: str,
        *,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        deadline: Deadline | None = None,
    ) -> Self:
        """A store for `uri` (`mongodb://`, `mongodb+srv://`, `mongomock://`), connected lazily."""
        counter = RoundTrips()
        if uri.startswith("mongomock:"):
            import mongomock  # only here: a real deployment never loads it

            return cls(mongomock.MongoClient(), db_name, round_trips=counter)
        try:
            client: MongoClient[Any] = MongoClient(
                uri,
                serverSelectionTimeoutMS=timeout_ms,
                connectTimeoutMS=timeout_ms,
                socketTimeoutMS=SOCKET_TIMEOUT_S * 1000,
                event_listeners=[counter],
                appname="backtest-compilation",
            )
        except (pymongo.errors.ConfigurationError, ValueError, TypeError) as exc:
            message = scrub_text(str(exc), secrets_of(mongo_uri=uri))
            raise ConfigError(f"MONGO_URI {redact_uri(uri)!r} is not usable: {message}") from None
        return cls(client, db_name, round_trips=counter, uri=uri, deadline=deadline)

    def close(self) -> None:
        """Release the connection pool."""
        self.database.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def api_calls(self) -> int:
        """Round trips to the server so far (contract §8 `api_calls.mongo`)."""
        return self.round_trips.total()

    def read_current(self) -> Current:
        """The three collections, one query each, one reply (up to 16 MiB) each."""
        started, before = time.perf_counter(), self.api_calls
        docs: list[list[dict[str, Any]]] = []
        for name in (CODES, COURSES, BACKTESTS):
            with self._talking("reading the current state", "find"):
                docs.append(list(self.database[name].find().batch_size(1_000_000)))
        current = read_state(*docs)
        counts = len(current.codes), len(current.courses), len(current.backtests)
        self._log(started, before, "mongo read: %d codes, %d courses, %d backtests", *counts)
        return current

    def apply(self, plan: Plan) -> Applied:
        """Write `plan`, one ordered `bulk_write` per phase; `ApplyFailed` says what was
        written before a failure (the next run converges)."""
        if plan.is_empty:
            log.info("mongo apply: in sync, nothing written")
            return Applied()
        started, before = time.perf_counter(), self.api_calls
        for line in plan_lines(plan):
            log.debug("mongo plan: %s", line)
        phases = [phase for phase in write_phases(plan) if phase[2]]
        done: dict[str, int] = {}  # phase → documents the server confirmed
        try:
            for collection, key in INDEXES:  # creating an existing one is a no-op
                with self._talking("creating indexes", "createIndexes"):
                    self.database[collection].create_index(key)
            for name, collection, operations in phases:
                with self._talking(f"writing ({name})", name.split()[0]):
                    try:
                        result = self.database[collection].bulk_write(operations, ordered=True)
                    except pymongo.errors.BulkWriteError as exc:  # ordered: the ones before went
                        done[name] = _confirmed(exc.details)
                        raise
                done[name] = _confirmed(result.bulk_api_result)
        except ServiceError as exc:
            progress = tuple((name, len(ops), done.get(name, 0)) for name, _, ops in phases)
            raise ApplyFailed(str(exc), _applied(done, progress)) from None
        applied = _applied(done)
        counts = applied.inserted, applied.updated, applied.deleted
        self._log(started, before, "mongo apply: %d inserted, %d updated, %d deleted", *counts)
        return applied

    def _log(self, started: float, before: int, message: str, *counts: int) -> None:
        """`message` with the time and round trips since `started`."""
        took, calls = time.perf_counter() - started, self.api_calls - before
        log.info(f"{message} in %.2f s (%d round trips)", *counts, took, calls)

    @contextmanager
    def _talking(self, doing: str, command: str) -> Iterator[None]:
        """One `command`, within the run's remaining time; driver errors become the run's."""
        if not isinstance(self.database.client, MongoClient):  # mongomock: no command events
            self.round_trips[command] += 1
        # Only when the deadline is nearer than the driver's own limits: under
        # `pymongo.timeout`, server selection waits all of it, not serverSelectionTimeoutMS.
        left = self.deadline.left()
        try:
            with pymongo.timeout(max(left, 0.001)) if left < SOCKET_TIMEOUT_S else nullcontext():
                yield
        except pymongo.errors.PyMongoError as exc:
            # A server that stops answering is cut off at the run's end, not the socket's.
            if exc.timeout and self.deadline.left() < 1.0:
                where = f"{doing} (MongoDB at {self._where} did not answer in time)"
                raise self.deadline.error(where) from None
            raise self._error(exc, doing) from None

    def _error(self, exc: pymongo.errors.PyMongoError, doing: str) -> ServiceError | ConfigError:
        where = f"MongoDB at {self._where}"
        if isinstance(exc, pymongo.errors.OperationFailure) and exc.code in AUTH_ERROR_CODES:
            return ConfigError(
                f"{where} rejected the credentials while {doing}: "
                "check the user, password and authSource in MONGO_URI"
            )
        if isinstance(exc, pymongo.errors.ConfigurationError):
            return ConfigError(f"MONGO_URI {self._where} is not usable: {self._scrub(str(exc))}")
        if isinstance(exc, pymongo.errors.BulkWriteError) and exc.details.get("writeErrors"):
            first = exc.details["writeErrors"][0].get("errmsg", "")
            return ServiceError(f"{where} refused a write while {doing}: {self._scrub(first)}")
        if not isinstance(exc, pymongo.errors.ConnectionFailure):
            return ServiceError(f"{where} failed while {doing}: {self._scrub(_brief(exc))}")
        # One clause per server (`127.0.0.1:27017 refused the connection …`), no topology dump.
        servers = self.database.client.topology_description.server_descriptions()
        errors = {f"{h}:{p}": self._scrub(str(servers[h, p].error or "")) for h, p in servers}
        if not any(errors.values()):
            # No primary, or a connection dropped mid-command: the exception says which.
            errors = {", ".join(errors) or "the server": self._scrub(_brief(exc))}
        causes = (
            f"{at} {_cause(e) if e else 'did not answer'}" for at, e in sorted(errors.items())
        )
        return ServiceError(f"{where} is unreachable while {doing}: {'; '.join(causes)}")


def write_phases(plan: Plan) -> list[tuple[str, str, list[Any]]]:
    """(phase, collection, operations) of `plan` in an order where a visitor never sees a
    gap (contract §3). `UpdateMany` on `_id`: mongomock 4.3 cannot take pymongo's `UpdateOne`."""

    def course(c: website.CourseDoc) -> dict[str, Any]:
        return {"name": c.name, "course_code": c.code, "folder_id": c.folder_id}

    def backtest(b: website.BacktestInsert) -> dict[str, Any]:
        return {"course_ids": [b.course_id], "tests": exam_documents(b.tests)}

    def update(docs: Iterable[Any], fields: Callable[[Any], dict[str, Any]]) -> list[Any]:
        return [UpdateMany({"_id": d.id}, {"$set": fields(d)}) for d in docs]

    def delete(removals: Iterable[website.Removal]) -> list[Any]:
        return [DeleteOne({"_id": r.id}) for r in removals]

    courses = [InsertOne({"_id": c.id, **course(c)}) for c in plan.courses_to_add]
    return [
        ("insert backtests", BACKTESTS, [InsertOne(backtest(b)) for b in plan.backtests_to_add]),
        ("insert courses", COURSES, courses),
        ("insert codes", CODES, [InsertOne({"course_code": c}) for c in plan.codes_to_add]),
        ("update courses", COURSES, update(plan.courses_to_update, course)),
        ("update backtests", BACKTESTS, update(plan.backtests_to_update, backtest)),
        ("delete codes", CODES, delete(plan.codes_to_remove)),
        ("delete courses", COURSES, delete(plan.courses_to_remove)),
        ("delete backtests", BACKTESTS, delete(plan.backtests_to_remove)),
    ]


def _confirmed(result: Mapping[str, Any]) -> int:
    """The documents a one-kind `bulk_write` inserted, changed or deleted."""
    return sum(result.get(key, 0) for key in ("nInserted", "nModified", "nRemoved"))


def _applied(done: Mapping[str, int], phases: tuple[tuple[str, int, int], ...] = ()) -> Applied:
    """`done` (phase → documents) as counts by kind; `phases` only when it stopped early."""
    inserted, updated, deleted = (
        sum(n for name, n in done.items() if name.startswith(kind))
        for kind in ("insert", "update", "delete")
    )
    return Applied(inserted, updated, deleted, complete=not phases, phases=phases)


# Unauthorized, AuthenticationFailed: the credentials, not the server.
AUTH_ERROR_CODES = frozenset({13, 18})
# What a driver's socket error says (a pattern) → what to check, in one line.
_CAUSES = {
    "connection refused": "refused the connection: nothing listens there (is it running?)",
    "not known|name resolution|nodename|getaddrinfo": "is a host name that does not resolve",
    "timed out": "did not answer in time (a firewall, an IP access list, or the server down)",
    "ssl|certificate": "failed the TLS handshake (check the tls options in MONGO_URI)",
}


def _cause(error: str) -> str:
    """What a socket error most likely means, or the error itself (after the address)."""
    error = error.split(" (configured timeouts", 1)[0]
    found = (cause for pattern, cause in _CAUSES.items() if re.search(pattern, error, re.I))
    return next(found, "failed: " + re.sub(r"^\S+:\d+: ", "", error)[:120])  # `host:port: …`


def _brief(exc: pymongo.errors.PyMongoError) -> str:
    """The first line of a driver error without its topology dump, at most 300 characters."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.split(r", Timeout:|Topology Description:", text, maxsplit=1)[0].strip(" ,")[:300]
