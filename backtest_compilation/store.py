"""`Store`: the MongoDB adapter (pymongo, synchronous) for the website's three collections.

Thin shell around `website` (the pure plan), and the wire format: collection names,
documents read (`read_state`) and written: `read_current` reads the state in three
queries, `apply` writes a `Plan` in the order of contract §3, one `bulk_write` per phase.
`mongomock://` selects an in-process store (the `demo`); every write path works there
too. Errors become `ServiceError` (unreachable, failed: exit 1) or `ConfigError`
(credentials rejected, bad URI: exit 2), with the URI's password masked.

Round trips are counted with pymongo's command monitoring (`RoundTrips`), so the run
summary can report them as `api_calls.mongo`.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple, Self
from urllib.parse import unquote, urlsplit

import pymongo
from pymongo import DeleteMany, InsertOne, MongoClient, UpdateMany, monitoring
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
)

from .catalog import ExamEntry
from .errors import ConfigError, ServiceError
from .report import plan_lines
from .settings import REDACTED, redact_uri
from .website import (
    Applied,
    BacktestDoc,
    CodeDoc,
    CourseDoc,
    CourseInsert,
    CourseUpdate,
    Current,
    Plan,
    id_order,
)

if TYPE_CHECKING:
    from .google import Deadline

log = logging.getLogger(__name__)

# ---- the wire format: collection names, fields read, documents written

CODES = "backtest_course_code_collection"
COURSES = "backtest_courses_collection"
BACKTESTS = "backtest_collection"

# Only these fields are read: the plan needs nothing else.
CODE_FIELDS = {"course_code": 1}
COURSE_FIELDS = {"name": 1, "course_code": 1, "folder_id": 1}
BACKTEST_FIELDS = {"course_ids": 1, "tests": 1}

Document = Mapping[str, Any]


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_tests(raw: Any) -> tuple[ExamEntry, ...] | None:
    """The stored `tests` list as exam entries, or None if it is not exactly the
    website's shape (`[{type: str, tests: [str, …]}, …]`) and must be rewritten."""
    if not isinstance(raw, list):
        return None
    entries: list[ExamEntry] = []
    for item in raw:
        if not isinstance(item, Mapping) or set(item) != {"type", "tests"}:
            return None
        kind, semesters = item["type"], item["tests"]
        if not isinstance(kind, str) or not isinstance(semesters, list):
            return None
        if not all(isinstance(s, str) for s in semesters):
            return None
        entries.append(ExamEntry(kind, tuple(semesters)))
    return tuple(entries)


def read_state(
    codes: Iterable[Document], courses: Iterable[Document], backtests: Iterable[Document]
) -> Current:
    """Typed view of the three collections' documents (any shape is accepted)."""
    code_docs = [CodeDoc(d.get("_id"), _str(d.get("course_code"))) for d in codes]
    course_docs = [
        CourseDoc(
            d.get("_id"),
            _str(d.get("name")),
            _str(d.get("course_code")),
            _str(d.get("folder_id")),
        )
        for d in courses
    ]
    backtest_docs = []
    for d in backtests:
        raw_ids = d.get("course_ids")
        if isinstance(raw_ids, list):
            ids = tuple(raw_ids)
        elif raw_ids is None:
            ids = ()
        else:
            # A scalar still matches the website's `$in` query: it points at that course.
            ids = (raw_ids,)
        exact = isinstance(raw_ids, list) and len(raw_ids) == 1
        backtest_docs.append(BacktestDoc(d.get("_id"), ids, parse_tests(d.get("tests")), exact))
    return Current(
        codes=tuple(sorted(code_docs, key=lambda c: id_order(c.id))),
        courses=tuple(sorted(course_docs, key=lambda c: id_order(c.id))),
        backtests=tuple(sorted(backtest_docs, key=lambda b: id_order(b.id))),
    )


def exam_documents(tests: Iterable[ExamEntry]) -> list[dict[str, Any]]:
    """The website's `tests` list (field order `type`, `tests`)."""
    return [{"type": entry.type, "tests": list(entry.semesters)} for entry in tests]


def course_document(course: CourseInsert | CourseUpdate) -> dict[str, Any]:
    """The course fields the tool owns (`_id` excluded)."""
    return {"name": course.name, "course_code": course.code, "folder_id": course.folder_id}


DEFAULT_TIMEOUT_MS = 5_000
# One `find` answers the whole collection (the server still caps a batch at 16 MiB).
READ_BATCH = 1_000_000
# `_id`s per DeleteMany: keeps each operation far below the 16 MiB document limit;
# all chunks still travel in one bulk_write round trip.
DELETE_CHUNK = 10_000
WRITE_COMMANDS = frozenset({"insert", "update", "delete"})
# Indexes the website's queries (and our updates' filters, by `_id`) rely on.
INDEXES = ((CODES, "course_code"), (COURSES, "course_code"), (BACKTESTS, "course_ids"))
# Server error codes meaning "these credentials are not accepted".
AUTH_ERROR_CODES = frozenset({13, 18})


class RoundTrips(monitoring.CommandListener):
    """Counts commands sent to the server (one command = one round trip).

    Registered as a pymongo command listener; for mongomock, which has no wire, the
    store records its calls here itself."""

    def __init__(self) -> None:
        self.by_command: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.by_command.values())

    @property
    def writes(self) -> int:
        """Round trips that carried inserts, updates or deletes."""
        return sum(n for name, n in self.by_command.items() if name in WRITE_COMMANDS)

    def record(self, command_name: str) -> None:
        self.by_command[command_name] += 1

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.record(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _password(uri: str) -> str | None:
    try:
        return urlsplit(uri).password
    except ValueError:
        return None


class Store:
    """The website's collections in database `db_name`, reached through `client`.

    Use `Store.connect` (`cli.connect_store` reads the settings); close it (or use `with`)."""

    def __init__(
        self,
        client: Any,  # a pymongo MongoClient, or mongomock's for mongomock://
        db_name: str,
        *,
        round_trips: RoundTrips,
        monitored: bool,
        uri: str = "",
        deadline: Deadline | None = None,
        patience_s: float = float("inf"),
    ) -> None:
        self._client = client
        # The run's end (RUN_TIMEOUT_S): no operation outlives it. `patience_s` is the
        # longest the driver waits by itself (its socket timeout): a farther deadline
        # leaves the driver's own, shorter limits in force.
        self.deadline = deadline
        self._patience_s = patience_s
        self._db: Database[Any] = client[db_name]
        self.round_trips = round_trips
        # False for mongomock: no command events, so calls are recorded by hand.
        self._monitored = monitored
        self._where = redact_uri(uri) if uri else "MongoDB"
        self._secret = _password(uri)

    @classmethod
    def connect(
        cls,
        uri: str,
        db_name: str,
        *,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        deadline: Deadline | None = None,
    ) -> Self:
        """A store for `uri` (`mongodb://`, `mongodb+srv://` or `mongomock://`).

        Connecting is lazy: an unreachable server shows at the first read, after
        `timeout_ms`, as `ServiceError`. Every operation ends by `deadline` (the run's)."""
        counter = RoundTrips()
        if uri.startswith("mongomock:"):
            # Imported only here: a real deployment never loads the in-process store.
            import mongomock

            return cls(mongomock.MongoClient(), db_name, round_trips=counter, monitored=False)
        socket_ms = max(timeout_ms * 12, 60_000)
        try:
            client: MongoClient[Any] = MongoClient(
                uri,
                serverSelectionTimeoutMS=timeout_ms,
                connectTimeoutMS=timeout_ms,
                socketTimeoutMS=socket_ms,
                event_listeners=[counter],
                appname="backtest-compilation",
            )
        except (ConfigurationError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"MONGO_URI {redact_uri(uri)!r} is not usable: {_scrub(str(exc), _password(uri))}"
            ) from None
        return cls(
            client,
            db_name,
            round_trips=counter,
            monitored=True,
            uri=uri,
            deadline=deadline,
            patience_s=socket_ms / 1000,
        )

    def close(self) -> None:
        """Release the connection pool (nothing to do for mongomock)."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def api_calls(self) -> int:
        """Round trips to the server so far (contract §8 `api_calls.mongo`)."""
        return self.round_trips.total

    @property
    def database(self) -> Database[Any]:
        """The underlying database (for tests and the demo's website view)."""
        return self._db

    # ----------------------------------------------------------------- errors

    @contextmanager
    def _talking(self, doing: str) -> Iterator[None]:
        """Within the run's remaining time, turn driver errors into the run's errors,
        without the password."""
        try:
            with self._within_deadline():
                yield
        except PyMongoError as exc:
            # A server that stops answering is cut off at the run's end, not the socket's.
            if exc.timeout and self.deadline is not None and self.deadline.left() < 1.0:
                where = f"{doing} (MongoDB at {self._where} did not answer in time)"
                raise self.deadline.error(where) from None
            raise self._error(exc, doing) from None

    def _within_deadline(self) -> AbstractContextManager[None]:
        # Under `pymongo.timeout` the driver waits for a server as long as the limit allows
        # (not serverSelectionTimeoutMS): it is set only once the deadline is the nearer.
        left = self.deadline.left() if self.deadline is not None else float("inf")
        return pymongo.timeout(max(left, 0.001)) if left < self._patience_s else nullcontext()

    def _error(self, exc: PyMongoError, doing: str) -> ServiceError | ConfigError:
        if isinstance(exc, OperationFailure) and exc.code in AUTH_ERROR_CODES:
            return ConfigError(
                f"MongoDB at {self._where} rejected the credentials while {doing}: "
                "check the user, password and authSource in MONGO_URI"
            )
        if isinstance(exc, ConnectionFailure):
            # ServerSelectionTimeoutError, AutoReconnect, NetworkTimeout …: one line naming
            # each host and port and what most likely went wrong, not pymongo's topology dump.
            return ServiceError(
                f"MongoDB at {self._where} is unreachable while {doing}: "
                f"{self._unreachable_cause(exc)}"
            )
        if isinstance(exc, ConfigurationError):
            return ConfigError(f"MONGO_URI {self._where} is not usable: {self._scrub(str(exc))}")
        return ServiceError(
            f"MongoDB at {self._where} failed while {doing}: {self._scrub(_brief(exc))}"
        )

    def _scrub(self, text: str) -> str:
        return _scrub(text, self._secret)

    def _unreachable_cause(self, exc: ConnectionFailure) -> str:
        """`127.0.0.1:27017 refused the connection (…)`, one clause per server tried."""
        errors: dict[str, str] = {}
        try:
            servers = self._client.topology_description.server_descriptions()
        except AttributeError:  # mongomock has no topology
            servers = {}
        for (host, port), server in sorted(servers.items(), key=lambda kv: str(kv[0])):
            errors[f"{host}:{port}"] = "" if server.error is None else str(server.error)
        if not errors or not any(errors.values()):
            # Reached the servers but none could serve (no primary), or a connection
            # dropped in the middle of a command: the exception's first line says which.
            first = str(exc).split(", Timeout:", 1)[0]
            first = first.split("Topology Description:", 1)[0]
            where = ", ".join(errors) or "the server"
            return f"{where} {_connection_cause(first.strip(' ,'), self._scrub)}"
        return "; ".join(
            f"{address} {_connection_cause(error, self._scrub)}"
            if error
            else f"{address} did not answer"
            for address, error in errors.items()
        )

    def _by_hand(self, command_name: str) -> None:
        if not self._monitored:
            self.round_trips.record(command_name)

    # ----------------------------------------------------------------- reads

    def read_current(self) -> Current:
        """The three collections, one query each, only the fields the plan needs."""
        started = time.perf_counter()
        before = self.round_trips.total
        docs: list[list[dict[str, Any]]] = []
        with self._talking("reading the current state"):
            for name, fields in ((CODES, CODE_FIELDS), (COURSES, COURSE_FIELDS)):
                docs.append(list(self._db[name].find({}, fields).batch_size(READ_BATCH)))
                self._by_hand("find")
            docs.append(list(self._db[BACKTESTS].find({}, BACKTEST_FIELDS).batch_size(READ_BATCH)))
            self._by_hand("find")
        current = read_state(*docs)
        log.info(
            "mongo read: %d codes, %d courses, %d backtests in %.2f s (%d round trips)",
            len(current.codes),
            len(current.courses),
            len(current.backtests),
            time.perf_counter() - started,
            self.round_trips.total - before,
        )
        return current

    # ----------------------------------------------------------------- writes

    def ensure_indexes(self) -> None:
        """The three single-field indexes; creating an existing index is a no-op."""
        with self._talking("creating indexes"):
            for collection, key in INDEXES:
                self._db[collection].create_index(key)
                self._by_hand("createIndexes")

    def apply(self, plan: Plan) -> Applied:
        """Write `plan`: inserts bottom-up, then updates, then deletes top-down (contract §3).

        The mass-delete guard was decided before (`website.guard_refusal`). A plan with
        nothing to do sends nothing. Otherwise the indexes are ensured and each non-empty
        phase is one ordered `bulk_write`. A failure stops at that phase (`ApplyFailed`, a
        `ServiceError`, with what was written before it); the next run reads the state
        again and converges."""
        if plan.is_empty:
            log.info("mongo apply: in sync, nothing written")
            return Applied()
        started = time.perf_counter()
        before = self.round_trips.total
        if log.isEnabledFor(logging.DEBUG):
            for line in plan_lines(plan):
                log.debug("mongo plan: %s", line)
        phases = [phase for phase in write_phases(plan) if phase.operations]
        done, error = self._write_phases(phases)

        def total(kind: str) -> int:
            return sum(n for name, n in done.items() if name.startswith(kind))

        applied = Applied(
            inserted=total("insert"),
            updated=total("update"),
            deleted=total("delete"),
            round_trips=self.round_trips.total - before,
            seconds=time.perf_counter() - started,
        )
        if error is not None:
            # What the server confirmed so far; every later phase is not applied.
            per_phase = tuple(
                (phase.name, phase.documents, done.get(phase.name, 0)) for phase in phases
            )
            raise ApplyFailed(
                str(error), replace(applied, complete=False, phases=per_phase)
            ) from None
        log.info(
            "mongo apply: %d inserted, %d updated, %d deleted in %.2f s (%d round trips)",
            applied.inserted,
            applied.updated,
            applied.deleted,
            applied.seconds,
            applied.round_trips,
        )
        return applied

    def _write_phases(self, phases: list[WritePhase]) -> tuple[dict[str, int], ServiceError | None]:
        """The indexes, then each phase in order, until one fails: the documents the server
        confirmed per phase, and the error that stopped the writes (None when all went)."""
        done: dict[str, int] = {}
        try:
            self.ensure_indexes()
        except ServiceError as exc:
            return done, exc
        for phase in phases:
            done[phase.name], error = self._write_phase(phase)
            if error is not None:
                return done, error
        return done, None

    def _write_phase(self, write: WritePhase) -> tuple[int, ServiceError | None]:
        """One ordered `bulk_write`: the documents it confirmed, and the error if it stopped."""
        phase, kind = write.name, write.name.split()[0]
        try:
            with self._talking(f"writing ({phase})"):
                try:
                    result = self._db[write.collection].bulk_write(write.operations, ordered=True)
                except BulkWriteError as exc:
                    # Ordered: the operations before the failing one were applied.
                    errors = exc.details.get("writeErrors", [])
                    first = errors[0].get("errmsg", "") if errors else str(exc)
                    refused = ServiceError(
                        f"MongoDB at {self._where} refused a write while writing ({phase}): "
                        f"{self._scrub(first[:300])}"
                    )
                    return _confirmed(phase, exc.details), refused
        except ServiceError as exc:  # `_talking`'s: the driver failed, nothing confirmed
            return 0, exc
        self._by_hand(kind)
        log.debug("mongo %s: %d operations", phase, len(write.operations))
        counts = {
            "insert": result.inserted_count,
            "update": result.modified_count,
            "delete": result.deleted_count,
        }
        return counts[kind], None


class WritePhase(NamedTuple):
    """One phase of an apply: its name (`insert courses`), its collection, the pymongo
    operations of its one `bulk_write`, and how many documents they stand for (a delete
    chunk holds many `_id`s)."""

    name: str
    collection: str
    operations: list[Any]
    documents: int


def write_phases(plan: Plan) -> list[WritePhase]:
    """The wire form of `plan`, phase by phase, in the order in which a visitor never
    sees a gap (contract §3); `Store.apply` sends each non-empty phase as one ordered
    `bulk_write`. Deletes go in chunks of `DELETE_CHUNK` `_id`s.

    Updates filter on the unique `_id`, so `UpdateMany` touches one document exactly
    like `UpdateOne` — and, unlike `UpdateOne`, works in mongomock 4.3 with pymongo
    ≥ 4.11 (whose `UpdateOne` passes a `sort` argument mongomock does not accept)."""
    course_updates = [
        UpdateMany({"_id": u.id}, {"$set": course_document(u)}) for u in plan.courses_to_update
    ]
    backtest_updates = []
    for b in plan.backtests_to_update:
        changes: dict[str, Any] = {}
        if b.set_tests:
            changes["tests"] = exam_documents(b.tests)
        if b.fix_ids:
            changes["course_ids"] = [b.course_id]
        backtest_updates.append(UpdateMany({"_id": b.id}, {"$set": changes}))
    return [
        _one_each(
            "insert backtests",
            BACKTESTS,
            [
                InsertOne({"course_ids": [b.course_id], "tests": exam_documents(b.tests)})
                for b in plan.backtests_to_add
            ],
        ),
        _one_each(
            "insert courses",
            COURSES,
            [InsertOne({"_id": c.id, **course_document(c)}) for c in plan.courses_to_add],
        ),
        _one_each(
            "insert codes", CODES, [InsertOne({"course_code": c}) for c in plan.codes_to_add]
        ),
        _one_each("update courses", COURSES, course_updates),
        _one_each("update backtests", BACKTESTS, backtest_updates),
        _deleting("delete codes", CODES, [c.id for c in plan.codes_to_remove]),
        _deleting("delete courses", COURSES, [c.id for c in plan.courses_to_remove]),
        _deleting("delete backtests", BACKTESTS, [b.id for b in plan.backtests_to_remove]),
    ]


def _one_each(name: str, collection: str, operations: list[Any]) -> WritePhase:
    return WritePhase(name, collection, operations, len(operations))


def _deleting(name: str, collection: str, ids: list[Any]) -> WritePhase:
    return WritePhase(name, collection, _delete_ops(ids), len(ids))


class ApplyFailed(ServiceError):
    """`Store.apply` stopped part-way (exit 1); `applied` says what was written before."""

    def __init__(self, message: str, applied: Applied) -> None:
        super().__init__(message)
        self.applied = applied


def _confirmed(phase: str, details: dict[str, Any]) -> int:
    key = {"insert": "nInserted", "update": "nModified", "delete": "nRemoved"}[phase.split()[0]]
    value = details.get(key, 0)
    return value if isinstance(value, int) else 0


def _delete_ops(ids: Iterable[Any]) -> list[DeleteMany]:
    all_ids = list(ids)
    return [
        DeleteMany({"_id": {"$in": all_ids[i : i + DELETE_CHUNK]}})
        for i in range(0, len(all_ids), DELETE_CHUNK)
    ]


# What a socket error says → what to check, for the one line an operator reads.
_CAUSES = (
    (
        ("connection refused",),
        "refused the connection: nothing listens there (is the server running? "
        "is the port in MONGO_URI right?)",
    ),
    (
        (
            "name or service not known",
            "nodename nor servname",
            "temporary failure in name resolution",
            "no address associated",
            "getaddrinfo failed",
            "name does not resolve",
        ),
        "is a host name that does not resolve (check the host in MONGO_URI, or DNS)",
    ),
    (
        ("timed out", "timeout"),
        "did not answer in time (a firewall or an IP access list in the way, or the server "
        "is down)",
    ),
    (
        ("ssl", "certificate", "tls"),
        "failed the TLS handshake (check the tls options in MONGO_URI and the certificates)",
    ),
    (
        ("no replica set members", "replicasetnoprimary", "no primary", "not primary"),
        "has no primary to write to (a replica set electing, or a wrong replicaSet option)",
    ),
    (
        ("connection closed", "connection reset", "broken pipe", "eof"),
        "closed the connection (the server stopped or restarted)",
    ),
    (
        ("got response id", "unexpected message", "invalid message size"),
        "answered, but not as MongoDB (is the port in MONGO_URI right?)",
    ),
    (
        ("network is unreachable", "no route to host"),
        "cannot be reached from this machine (no network route)",
    ),
)


def _connection_cause(error: str, scrub: Callable[[str], str]) -> str:
    """What a driver's socket error most likely means, in words; the error itself (its
    first 120 characters, passed through `scrub`) when it is none of the known kinds."""
    error = error.split(" (configured timeouts", 1)[0]
    lowered = error.lower()
    for needles, cause in _CAUSES:
        if any(n in lowered for n in needles):
            return cause
    # `host:port: [Errno 99] …` → the part after the address.
    detail = error.split(": ", 1)[1] if re.match(r"^\S+:\d+: ", error) else error
    return f"failed: {scrub(detail)[:120]}"


def _brief(exc: PyMongoError) -> str:
    """The first line of a driver error without its topology dump, bounded at a word."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = text.split(", Timeout:", 1)[0].split("Topology Description:", 1)[0].strip(" ,")
    if len(text) > 300:
        text = text[:300].rsplit(" ", 1)[0] + " …"
    return text


def _scrub(text: str, secret: str | None) -> str:
    """Mask the password wherever a driver message might echo it."""
    if not secret:
        return text
    for form in {secret, unquote(secret)}:
        if form:
            text = text.replace(form, REDACTED)
    return text
