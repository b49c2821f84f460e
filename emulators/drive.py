"""A Drive v3 emulator: an HTTP server on 127.0.0.1 that answers like Google Drive.

The real `google-api-python-client` talks to it through `DRIVE_API_ENDPOINT`
(`client_options={"api_endpoint": emulator.url + "/drive/v3/"}`). It implements what
the product uses, with Google's rules:

- `files.list`: the `q` subset (`'id' in parents`, `trashed`, `mimeType`, `name`,
  `and`/`or`/`not`, parentheses, `\\'` and `\\\\` escapes), `pageSize` 1..1000 (default
  100), opaque `pageToken`, `fields` partial responses, `corpora=user|drive|allDrives`
  with `driveId`/`includeItemsFromAllDrives`/`supportsAllDrives` checks; long queries
  sent as `POST` + `X-HTTP-Method-Override: GET`; over-long/over-complex queries
  are refused as Google does ("The query is too complex.");
- `files.get`, `files.update` (rename), `drives.get`;
- `changes.getStartPageToken`, `changes.list` (coalesced per file, paged, tokens
  that can be expired with `expire_change_tokens`);
- `/batch/drive/v3` multipart batches as `BatchHttpRequest` sends them (at most 100);
- `/token`: an OAuth token endpoint for service-account JWTs (domain-wide delegation
  can be granted or refused per delegate and scope);
- roles: `role` (the caller's role everywhere: `reader`, `writer` or `organizer`),
  `set_role(role, item=…, delegate=…)` for one shared drive, folder or file (inherited
  by what lies below it) or one impersonated user; `capabilities` in `files.get` and
  `drives.get` follow the role, and a reader's rename is refused with 403
  `insufficientFilePermissions` as Google does;
- faults: injectable latency, 429 (with `Retry-After`), 403 `rateLimitExceeded` /
  `userRateLimitExceeded`, 500/503, dropped connections and requests that never
  answer ("hang"), every Nth request or scripted; counters of requests per method;
- a per-user sustained write limit, ON by default at Google's figure: 3 writes a second
  (Google Workspace's Drive best practices, support.google.com/a/answer/10445916: "avoid
  exceeding 3 requests per second of sustained write or insert requests, per account";
  it cannot be raised) with a burst of one second's worth (3). A token bucket counted
  per batch part, a part over it answered 403 `userRateLimitExceeded` (or
  `rateLimitExceeded`, or 429), optionally with `Retry-After` in seconds or as an HTTP
  date. `limit_writes` changes it; `DriveEmulator(write_limit=None)` turns it off (only
  for benchmarks of our own overhead). The bucket refills on `clock` (real monotonic
  time by default): tests pass an `emulators.google.QuotaClock` and hand its `sleep` to
  the code under test, so waits are counted, not slept;
- ids shaped like Google's: 33-character file and folder ids, shared-drive ids like
  `0AHtu6R3nkhtXUk9PVA`, so googleapiclient folds a batch part's `Content-ID` header
  (RFC 5322), which the emulator unfolds as Google does.

Seed and edit the drive from Python (`add_drive`, `add_folder`, `add_file`, `rename`,
`move`, `trash`, `delete`); every edit is recorded in the changes feed.
"""

from __future__ import annotations

import base64
import email.parser
import email.utils
import hashlib
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from emulators import Emulator
from emulators.google import (
    FAULTS,
    SILENT,
    FaultInjector,
    GoogleError,
    Unanswered,
    apply_fields,
    fault_error,
    token_answer,
    token_claims,
    token_error,
)
from emulators.google import parse_fields as google_fields

if TYPE_CHECKING:
    from backtest_compilation.tree import Node

FOLDER_MIME = "application/vnd.google-apps.folder"
PDF_MIME = "application/pdf"

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_BATCH_PARTS = 100
# Google documents no exact limit; field reports show 413s / "The query is too complex"
# somewhere past ~120 OR-ed parents. The emulator refuses past these bounds.
MAX_QUERY_TERMS = 100
MAX_QUERY_CHARS = 8000

# What Google answers when `fields` is not given: notably no `parents`.
_FILE_DEFAULT = "kind,id,name,mimeType"
DEFAULT_FIELDS = {
    "files.list": f"kind,nextPageToken,incompleteSearch,files({_FILE_DEFAULT})",
    "files.get": _FILE_DEFAULT,
    "files.update": _FILE_DEFAULT,
    "changes.list": "kind,nextPageToken,newStartPageToken,"
    f"changes(kind,changeType,time,removed,fileId,driveId,file({_FILE_DEFAULT}))",
}

# Drive's roles, weakest first (`writer` is a shared drive's Contributor, `organizer` its
# Manager); a reader may list and read but not rename.
ROLES = ("reader", "writer", "organizer")

ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
FILE_ID_LENGTH = 33
_SORTABLE = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # ASCII order


def _sortable(n: int, width: int) -> str:
    """`n` in base 62 with digits in ASCII order, so ids sort as they were made."""
    out = ""
    for _ in range(width):
        n, digit = divmod(n, 62)
        out = _SORTABLE[digit] + out
    return out


class DriveApiError(GoogleError):
    """An error answered with Drive v3's error JSON (an `errors` list with a `reason`)."""

    def __init__(
        self, code: int, message: str, reason: str, domain: str = "global", **extra: str
    ) -> None:
        super().__init__(code, message, reason, domain, **extra)


def _invalid(location: str, message: str = "Invalid Value") -> DriveApiError:
    return DriveApiError(400, message, "invalid", location=location, locationType="parameter")


def _not_found(file_id: str) -> DriveApiError:
    return DriveApiError(
        404, f"File not found: {file_id}.", "notFound", location="fileId",
        locationType="parameter",
    )  # fmt: skip


FAULT_ERRORS = {kind: fault_error(kind) for kind in FAULTS}


@dataclass
class DriveFile:
    """One file or folder as the emulator stores it."""

    id: str
    name: str
    mime_type: str
    parent: str
    drive_id: str | None
    trashed: bool = False
    modified: float = 0.0
    # Like Drive's `version`: grows on every change to the file, whoever makes it.
    version: int = 1

    def resource(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime_type,
            "parents": [self.parent],
            "trashed": self.trashed,
            "modifiedTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(self.modified)),
            "version": str(self.version),  # int64 travels as a string in Drive's JSON
        }
        if self.drive_id:
            out["driveId"] = self.drive_id
        return out


# Google's per-user sustained write rate for Drive (see the module docstring); the
# burst is one second's worth.
WRITES_PER_SECOND = 3.0


@dataclass
class WriteLimit:
    """Drive's per-user sustained write rate: a token bucket of `burst` tokens refilled
    at `per_second`; every write (each batch part) takes one. A write without a token is
    answered `answer` ("403-user-rate", "403-rate" or "429"), with `Retry-After` (the
    seconds until a token is back, rounded up) when `retry_after` is "seconds" or "date"."""

    per_second: float
    burst: float
    answer: str = "403-user-rate"
    retry_after: str | None = None
    tokens: float = 0.0
    at: float = 0.0
    accepted: int = 0
    refused: int = 0


@dataclass
class Stats:
    """What the emulator was asked: HTTP requests (a batch counts once), per method."""

    requests: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    batch_parts: int = 0
    faults: int = 0
    renames: int = 0
    rate_limited: int = 0  # writes refused by the write limit
    # Each `retry_after_header` written: (clock time, the seconds it means).
    retry_afters: list[tuple[float, float]] = field(default_factory=list)
    method_overrides: int = 0
    max_concurrent: int = 0  # the most HTTP requests being answered at one time


# ---------------------------------------------------------------- queries

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<op>!=|<=|>=|=|<|>)|(?P<lp>\()|(?P<rp>\))"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)


def _tokenize(q: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(q):
        if q[pos:].strip() == "":
            break
        m = _TOKEN.match(q, pos)
        if not m:
            raise _invalid("q")
        kind = m.lastgroup or ""
        text = m.group(kind)
        if kind == "str":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        out.append((kind, text))
        pos = m.end()
    return out


Predicate = Callable[[DriveFile], bool]
# A predicate plus, when known, the set of parent ids every match must have (an index hint).
Bounded = tuple[Predicate, frozenset[str] | None]


class _Parser:
    """Recursive descent over the Drive query subset; `and` binds tighter than `or`."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.terms = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.pos += 1
        return tok

    def word(self, text: str) -> bool:
        kind, value = self.peek()
        if kind == "word" and value.lower() == text:
            self.pos += 1
            return True
        return False

    def parse(self) -> Bounded:
        pred = self.expr()
        if self.peek()[0] != "end":
            raise _invalid("q")
        return pred

    def expr(self) -> Bounded:
        parts = [self.conj()]
        while self.word("or"):
            parts.append(self.conj())
        if len(parts) == 1:
            return parts[0]
        preds = [p for p, _ in parts]
        bounds = [b for _, b in parts]
        bound = None if any(b is None for b in bounds) else frozenset().union(*bounds)  # type: ignore[arg-type]
        return (lambda f: any(p(f) for p in preds)), bound

    def conj(self) -> Bounded:
        parts = [self.unary()]
        while self.word("and"):
            parts.append(self.unary())
        if len(parts) == 1:
            return parts[0]
        preds = [p for p, _ in parts]
        known = [b for _, b in parts if b is not None]
        bound = frozenset.intersection(*known) if known else None
        return (lambda f: all(p(f) for p in preds)), bound

    def unary(self) -> Bounded:
        if self.word("not"):
            inner, _ = self.unary()
            return (lambda f: not inner(f)), None
        if self.peek()[0] == "lp":
            self.take()
            inner = self.expr()
            if self.take()[0] != "rp":
                raise _invalid("q")
            return inner
        return self.term()

    def term(self) -> Bounded:
        self.terms += 1
        kind, value = self.take()
        if kind == "str":
            if not self.word("in"):
                raise _invalid("q")
            k2, v2 = self.take()
            if k2 != "word" or v2 != "parents":
                raise _invalid("q")
            return (lambda f: f.parent == value), frozenset({value})
        if kind != "word":
            raise _invalid("q")
        if value == "trashed":
            op, lit = self.take(), self.take()
            if op[1] not in ("=", "!=") or lit[1] not in ("true", "false"):
                raise _invalid("q")
            want = (lit[1] == "true") == (op[1] == "=")
            return (lambda f: f.trashed == want), None
        if value in ("mimeType", "name"):
            attr = "mime_type" if value == "mimeType" else "name"
            op = self.take()
            lit = self.take()
            if lit[0] != "str":
                raise _invalid("q")
            text = lit[1]
            if op[1] == "=":
                return (lambda f: getattr(f, attr) == text), None
            if op[1] == "!=":
                return (lambda f: getattr(f, attr) != text), None
            if op == ("word", "contains"):
                return (lambda f: text.lower() in getattr(f, attr).lower()), None
            raise _invalid("q")
        raise _invalid("q")


def parse_query(q: str) -> Bounded:
    """(predicate, parent-id bound) for `q`, or DriveApiError(400) as Google answers."""
    if len(q) > MAX_QUERY_CHARS:
        raise DriveApiError(400, "The query is too complex.", "invalid", location="q")
    parser = _Parser(_tokenize(q))
    bounded = parser.parse()
    if parser.terms > MAX_QUERY_TERMS:
        raise DriveApiError(400, "The query is too complex.", "invalid", location="q")
    return bounded


# ---------------------------------------------------------------- partial responses

_KNOWN_FIELDS = {
    "kind", "id", "name", "mimeType", "parents", "trashed", "driveId", "modifiedTime",
    "nextPageToken", "newStartPageToken", "incompleteSearch", "files", "changes", "fileId",
    "removed", "changeType", "time", "file", "drive", "startPageToken", "createdTime",
    "explicitlyTrashed", "version",
    "capabilities", "canEdit", "canRename", "canListChildren", "canAddChildren", "canDelete",
}  # fmt: skip

KNOWN_FIELDS = frozenset(_KNOWN_FIELDS)


def parse_fields(spec: str) -> dict[str, Any]:
    """`nextPageToken,files(id,name)` / `files/id` → nested selection; 400 on unknown."""
    try:
        return google_fields(spec, KNOWN_FIELDS)
    except ValueError as exc:
        raise _invalid("fields", str(exc)) from None


# ---------------------------------------------------------------- the emulator


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _unb64(token: str) -> dict[str, Any]:
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, json.JSONDecodeError) as exc:
        raise _invalid("pageToken") from exc


def _flag(params: dict[str, str], name: str) -> bool:
    return params.get(name, "false").lower() == "true"


class DriveEmulator(FaultInjector, Emulator):
    """The emulated Drive: state, faults and counters, plus the HTTP server around them.

    Use as a context manager or call `start()`/`stop()`; `url` is the root URL to give
    as `DRIVE_API_ENDPOINT`. `write_limit`: sustained writes per second per user
    (`WRITES_PER_SECOND`, Google's; None: no limit, for benchmarks of our own overhead
    only). `clock`: monotonic seconds the write bucket refills on.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        write_limit: float | None = WRITES_PER_SECOND,
    ) -> None:
        self.latency = latency
        self.clock = clock
        self._init_faults()
        self.write_limit: WriteLimit | None = None
        self.stats = Stats()
        self.files: dict[str, DriveFile] = {}
        self.drives: dict[str, str] = {}
        # Changes log: (seq, file id, drive id or None); tombstones keep removed files' drives.
        self._log: list[tuple[int, str, str | None]] = []
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._expired_before = 0
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._in_flight = 0
        # OAuth: delegate e-mail → scopes granted; None means "any token accepted".
        self.grants: dict[str, frozenset[str]] | None = None
        self._tokens: set[str] = set()
        # Roles: the default for every caller, per item (inherited below it), per delegate.
        self.role = "organizer"
        self.item_roles: dict[str, str] = {}
        self.delegate_roles: dict[str, str] = {}
        self._token_subjects: dict[str, str] = {}
        self._caller: threading.local = threading.local()
        # Called as each batch arrives, before its parts are answered: a test's person
        # acting in Drive while renames go on.
        self.on_batch: Callable[[], None] | None = None
        self.limit_writes(write_limit)

    # ------------------------------------------------------------ lifecycle

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(_Handler):
            drive = emulator

        return Handler

    def reset_stats(self) -> None:
        """Zero the request counters (faults and contents are kept)."""
        self.stats = Stats()
        self._fault_requests = 0  # "every n-th request" counts from here, as before

    # ------------------------------------------------------------ seeding and editing

    def new_id(self, prefix: str = "") -> str:
        """A fresh, unique file or folder id shaped like Google's: 33 characters of
        `[A-Za-z0-9_-]`. Deterministic, and sorted in creation order (a counter leads),
        so runs and property-test replays are reproducible."""
        n = next(self._ids)
        digest = hashlib.sha256(f"{prefix}{n}".encode()).digest()
        tail = "".join(ID_ALPHABET[b % 64] for b in digest)
        return ("1" + _sortable(n, 6) + tail)[:FILE_ID_LENGTH]

    def new_drive_id(self) -> str:
        """A fresh shared-drive id shaped like Google's: `0A`, 11 characters, `Uk9PVA`."""
        n = next(self._ids)
        digest = hashlib.sha256(f"drive{n}".encode()).digest()
        return "0A" + _sortable(n, 6) + "".join(_SORTABLE[b % 62] for b in digest[:5]) + "Uk9PVA"

    def limit_writes(
        self,
        per_second: float | None,
        *,
        burst: float | None = None,
        answer: str = "403-user-rate",
        retry_after: str | None = None,
    ) -> None:
        """Sustain at most `per_second` writes (each batch part counts) with bursts of
        `burst` (default: one second's worth); None lifts the limit. The bucket starts
        full."""
        with self._lock:
            if per_second is None:
                self.write_limit = None
                return
            size = max(1.0, per_second if burst is None else burst)
            self.write_limit = WriteLimit(
                per_second, size, answer, retry_after, tokens=size, at=self.clock()
            )

    def _take_write(self) -> tuple[str, float] | None:
        """Spend a write token; (fault kind, seconds until the next token) when none is left."""
        with self._lock:
            limit = self.write_limit
            if limit is None:
                return None
            now = self.clock()
            limit.tokens = min(limit.burst, limit.tokens + (now - limit.at) * limit.per_second)
            limit.at = now
            if limit.tokens >= 1.0:
                limit.tokens -= 1.0
                limit.accepted += 1
                return None
            limit.refused += 1
            self.stats.rate_limited += 1
            return limit.answer, (1.0 - limit.tokens) / limit.per_second

    def retry_after_header(self, seconds: float, form: str | None) -> dict[str, str]:
        """`Retry-After` as Google may send it: whole seconds, or an HTTP date."""
        if form is None:
            return {}
        whole = max(1, math.ceil(seconds))
        if form == "date":
            now = time.time()
            self.stats.retry_afters.append((self.clock(), int(now + whole + 1) - now))
            return {"Retry-After": email.utils.formatdate(now + whole + 1, usegmt=True)}
        self.stats.retry_afters.append((self.clock(), whole))
        return {"Retry-After": str(whole)}

    def _record(self, file_id: str, drive_id: str | None) -> None:
        seq = next(self._seq)
        self._last_seq = seq
        self._log.append((seq, file_id, drive_id))

    def add_drive(self, name: str, drive_id: str | None = None) -> str:
        """A shared drive; its id is also the parent id of its top-level items."""
        with self._lock:
            drive_id = drive_id or self.new_drive_id()
            self.drives[drive_id] = name
            return drive_id

    def _add(self, parent: str, name: str, mime: str, file_id: str | None) -> str:
        with self._lock:
            file_id = file_id or self.new_id()
            if file_id in self.files or file_id in self.drives:
                raise ValueError(f"id {file_id!r} exists")
            self.files[file_id] = DriveFile(
                file_id, name, mime, parent, self._drive_of(parent), modified=time.time()
            )
            self._record(file_id, self.files[file_id].drive_id)
            return file_id

    def _drive_of(self, parent: str) -> str | None:
        if parent in self.drives:
            return parent
        if parent in self.files:
            return self.files[parent].drive_id
        return None  # My Drive (parent may be a My Drive root id like "root")

    def add_folder(self, parent: str, name: str, file_id: str | None = None) -> str:
        """A folder under `parent` (a folder, a shared drive id, or "root" for My Drive)."""
        return self._add(parent, name, FOLDER_MIME, file_id)

    def add_file(
        self, parent: str, name: str, mime: str = PDF_MIME, file_id: str | None = None
    ) -> str:
        """A file under `parent`, a PDF unless told otherwise; returns its id."""
        return self._add(parent, name, mime, file_id)

    def rename(self, file_id: str, name: str) -> None:
        """Rename an item, as someone editing the drive would."""
        with self._lock:
            f = self.files[file_id]
            f.name, f.modified = name, time.time()
            f.version += 1
            self._record(file_id, f.drive_id)

    def touch(self, file_id: str) -> None:
        """The content of `file_id` was written (e.g. a spreadsheet through the Sheets
        API): its `version` and `modifiedTime` move and the changes feed says so. A
        file this emulator does not hold is ignored."""
        with self._lock:
            f = self.files.get(file_id)
            if f is None:
                return
            f.modified = time.time()
            f.version += 1
            self._record(file_id, f.drive_id)

    def move(self, file_id: str, new_parent: str) -> None:
        """Move (and, like Drive, only the moved item gets a change, not its contents)."""
        with self._lock:
            f = self.files[file_id]
            old_drive = f.drive_id
            f.parent, f.modified = new_parent, time.time()
            f.version += 1
            f.drive_id = self._drive_of(new_parent)
            if old_drive != f.drive_id:
                # The drive it left sees it as removed (see `_changes_list`).
                self._record(file_id, old_drive)
            self._record(file_id, f.drive_id)

    def trash(self, file_id: str, trashed: bool = True) -> None:
        """Trash (or restore) an item and, as Drive does, everything below it."""
        with self._lock:
            for fid in [file_id, *self.descendants(file_id)]:
                f = self.files[fid]
                f.trashed = trashed
                self._record(fid, f.drive_id)

    def delete(self, file_id: str) -> None:
        """Delete forever: the item and everything below it are gone (changes say removed)."""
        with self._lock:
            for fid in [file_id, *self.descendants(file_id)]:
                f = self.files.pop(fid)
                self._record(fid, f.drive_id)

    def descendants(self, file_id: str) -> list[str]:
        """The ids of everything below `file_id` (Drive refuses to move a folder there)."""
        out: list[str] = []
        frontier = [file_id]
        while frontier:
            kids = [f.id for f in self.files.values() if f.parent in set(frontier)]
            out.extend(kids)
            frontier = kids
        return out

    def seed(self, parent: str, children: Iterable[Node]) -> None:
        """Create `children` (tree nodes, with their ids) under `parent`, recursively."""
        stack = [(parent, node) for node in children]
        while stack:
            where, node = stack.pop()
            self._add(where, node.name, node.mime_type, node.id)
            stack.extend((node.id, kid) for kid in node.children)

    def seed_tree(self, parent: str, root: Node) -> None:
        """Create `root`'s children under `parent`, recursively, each with a fresh id
        shaped like Google's (a local tree's path ids would be kinder than Drive's)."""
        stack = [(parent, node) for node in root.children]
        while stack:
            where, node = stack.pop()
            new = self.new_id()
            self._add(where, node.name, node.mime_type, new)
            stack.extend((new, kid) for kid in node.children)

    def expire_change_tokens(self) -> None:
        """Every page token handed out so far is rejected from now on."""
        with self._lock:
            self._expired_before = self._last_seq + 1

    # ------------------------------------------------------------ faults

    def _fault_for_request(self) -> str | None:
        with self._lock:
            self.stats.requests += 1
        return self.next_fault()

    def _fault_for_part(self) -> str | None:
        with self._lock:
            self.stats.batch_parts += 1
            n = self.stats.batch_parts
            lifted = self.faults.part_while is not None and not self.faults.part_while()
            if self.faults.part_every and n % self.faults.part_every == 0 and not lifted:
                kinds = self.faults.part_kinds
                return kinds[(n // self.faults.part_every - 1) % len(kinds)]
            return None

    # ------------------------------------------------------------ the API

    # ------------------------------------------------------------ roles

    def set_role(self, role: str, *, item: str | None = None, delegate: str | None = None) -> None:
        """`role` (reader / writer / organizer) for one item and everything below it, or
        for one impersonated user everywhere, or (neither given) for every caller."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        with self._lock:
            if item is not None:
                self.item_roles[item] = role
            elif delegate is not None:
                self.delegate_roles[delegate] = role
            else:
                self.role = role

    def role_for(self, item_id: str) -> str:
        """The calling user's role on `item_id`: the nearest item role on the way up to
        the root, else the caller's own role, else the default."""
        current: str | None = item_id
        seen: set[str] = set()
        while current is not None and current not in seen:
            seen.add(current)
            if current in self.item_roles:
                return self.item_roles[current]
            f = self.files.get(current)
            current = f.parent if f is not None else None
        who = getattr(self._caller, "subject", None)
        return self.delegate_roles.get(who or "", self.role)

    def capabilities(self, item_id: str) -> dict[str, bool]:
        """Drive's `capabilities` for the caller on `item_id` (the fields the tool reads)."""
        role = self.role_for(item_id)
        can_edit = ROLES.index(role) >= ROLES.index("writer")
        return {
            "canEdit": can_edit,
            "canRename": can_edit,
            "canListChildren": True,
            "canAddChildren": can_edit,
            "canDelete": role == "organizer",
        }

    def call(
        self, method: str, path: str, params: dict[str, str], body: bytes, auth: str | None
    ) -> tuple[int, dict[str, Any]]:
        """One API call (also used for each part of a batch): (status, JSON body)."""
        try:
            self._check_auth(auth)
            token = (auth or "").removeprefix("Bearer ").strip()
            self._caller.subject = self._token_subjects.get(token)
            name, result = self._dispatch(method, path, params, body)
            self.stats.by_method[name] += 1
            spec = params.get("fields") or DEFAULT_FIELDS.get(name)
            if spec:
                result = apply_fields(result, parse_fields(spec))
            return 200, result
        except DriveApiError as exc:
            return exc.code, exc.body()

    def _check_auth(self, auth: str | None) -> None:
        if self.grants is None:
            return
        token = (auth or "").removeprefix("Bearer ").strip()
        if token not in self._tokens:
            raise DriveApiError(
                401, "Request is missing required authentication credential.", "required",
                location="Authorization", locationType="header",
            )  # fmt: skip

    def _dispatch(
        self, method: str, path: str, params: dict[str, str], body: bytes
    ) -> tuple[str, dict[str, Any]]:
        parts = [unquote(p) for p in path.removeprefix("/drive/v3/").split("/")]
        with self._lock:
            if method == "GET" and parts == ["files"]:
                return "files.list", self._files_list(params)
            if method == "GET" and len(parts) == 2 and parts[0] == "files":
                resource = self._visible(parts[1], params).resource()
                resource["capabilities"] = self.capabilities(parts[1])
                return "files.get", resource
            if method == "PATCH" and len(parts) == 2 and parts[0] == "files":
                return "files.update", self._files_update(parts[1], params, body)
            if method == "GET" and len(parts) == 2 and parts[0] == "drives":
                if parts[1] not in self.drives:
                    raise DriveApiError(
                        404, f"Shared drive not found: {parts[1]}", "notFound",
                        location="driveId", locationType="parameter",
                    )  # fmt: skip
                return "drives.get", {
                    "kind": "drive#drive", "id": parts[1], "name": self.drives[parts[1]],
                    "capabilities": self.capabilities(parts[1]),
                }  # fmt: skip
            if method == "GET" and parts == ["changes", "startPageToken"]:
                self._check_drive_param(params)
                return "changes.getStartPageToken", {
                    "kind": "drive#startPageToken",
                    "startPageToken": str(self._last_seq + 1),
                }
            if method == "GET" and parts == ["changes"]:
                return "changes.list", self._changes_list(params)
        raise DriveApiError(404, "Not Found", "notFound")

    def _visible(self, file_id: str, params: dict[str, str]) -> DriveFile:
        f = self.files.get(file_id)
        if f is None or (f.drive_id and not _flag(params, "supportsAllDrives")):
            raise _not_found(file_id)
        return f

    def _check_drive_param(self, params: dict[str, str]) -> None:
        drive_id = params.get("driveId")
        if drive_id is not None:
            if not _flag(params, "supportsAllDrives"):
                raise _invalid(
                    "supportsAllDrives", "The driveId parameter requires supportsAllDrives."
                )
            if drive_id not in self.drives:
                raise DriveApiError(404, f"Shared drive not found: {drive_id}", "notFound",
                                    location="driveId", locationType="parameter")  # fmt: skip

    def _page_size(self, params: dict[str, str]) -> int:
        raw = params.get("pageSize", str(DEFAULT_PAGE_SIZE))
        try:
            size = int(raw)
        except ValueError as exc:
            raise _invalid("pageSize") from exc
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise _invalid(
                "pageSize", f"Invalid value '{raw}'. Values must be within the range: [1, 1000]"
            )
        return size

    def _files_list(self, params: dict[str, str]) -> dict[str, Any]:
        corpora = params.get("corpora", "user")
        all_drives = _flag(params, "includeItemsFromAllDrives")
        drive_id = params.get("driveId")
        if all_drives and not _flag(params, "supportsAllDrives"):
            raise _invalid(
                "includeItemsFromAllDrives",
                "The includeItemsFromAllDrives parameter requires supportsAllDrives.",
            )
        if corpora == "drive":
            if not drive_id or not all_drives:
                raise _invalid(
                    "driveId",
                    "The driveId parameter must be specified if and only if corpora is set "
                    "to drive, and includeItemsFromAllDrives must be true.",
                )
            self._check_drive_param(params)
        elif drive_id:
            raise _invalid("corpora", "The driveId parameter requires corpora=drive.")
        elif corpora not in ("user", "allDrives", "domain"):
            raise _invalid("corpora")
        if corpora == "allDrives" and not all_drives:
            raise _invalid("includeItemsFromAllDrives")
        size = self._page_size(params)
        q = params.get("q", "")
        pred, bound = parse_query(q) if q.strip() else ((lambda f: True), None)
        scope_key = json.dumps([q, corpora, drive_id, all_drives])
        offset = 0
        if "pageToken" in params:
            token = _unb64(params["pageToken"])
            if token.get("k") != scope_key:
                raise _invalid("pageToken")
            offset = int(token.get("o", 0))

        def in_corpus(f: DriveFile) -> bool:
            if corpora == "drive":
                return f.drive_id == drive_id
            if corpora == "allDrives":
                return True
            return f.drive_id is None

        # Ordered by id so pages are stable; Google's default order is not promised either.
        candidates: Iterable[DriveFile] = self.files.values()
        if bound is not None:
            candidates = [f for f in candidates if f.parent in bound]
        matches = [f for f in sorted(candidates, key=lambda f: f.id) if in_corpus(f) and pred(f)]
        page = matches[offset : offset + size]
        out: dict[str, Any] = {
            "kind": "drive#fileList",
            "incompleteSearch": False,
            "files": [f.resource() for f in page],
        }
        if offset + size < len(matches):
            out["nextPageToken"] = _b64({"k": scope_key, "o": offset + size})
        return out

    def _files_update(self, file_id: str, params: dict[str, str], body: bytes) -> dict[str, Any]:
        f = self._visible(file_id, params)
        if not self.capabilities(file_id)["canEdit"]:
            raise DriveApiError(
                403, "The user does not have sufficient permissions for this file.",
                "insufficientFilePermissions",
            )  # fmt: skip
        try:
            patch = json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            raise DriveApiError(400, "Invalid JSON payload received.", "parseError") from exc
        if not isinstance(patch, dict):
            raise DriveApiError(400, "Invalid JSON payload received.", "parseError")
        if "name" in patch:
            if not isinstance(patch["name"], str) or not patch["name"]:
                raise _invalid("name")
            f.name = patch["name"]
        f.modified = time.time()
        f.version += 1
        self.stats.renames += 1
        self._record(f.id, f.drive_id)
        return f.resource()

    def _changes_list(self, params: dict[str, str]) -> dict[str, Any]:
        self._check_drive_param(params)
        raw = params.get("pageToken")
        if raw is None:
            raise DriveApiError(400, "Required parameter: pageToken", "required",
                                location="pageToken", locationType="parameter")  # fmt: skip
        try:
            start = int(raw)
        except ValueError as exc:
            raise _invalid("pageToken") from exc
        if start < max(1, self._expired_before) or start > self._last_seq + 1:
            raise _invalid("pageToken")
        size = self._page_size(params)
        drive_id = params.get("driveId")
        all_drives = _flag(params, "includeItemsFromAllDrives")

        def visible(item_drive: str | None) -> bool:
            if drive_id is not None:
                return item_drive == drive_id
            return item_drive is None or all_drives

        latest: dict[str, int] = {}
        for seq, fid, item_drive in self._log:
            if seq >= start and visible(item_drive):
                latest[fid] = seq
        ordered = sorted(latest.items(), key=lambda kv: kv[1])
        page, rest = ordered[:size], ordered[size:]
        changes = []
        for fid, _seq in page:
            f = self.files.get(fid)
            if f is not None and not visible(f.drive_id):
                f = None  # moved to a drive this feed does not cover: removed from it
            change: dict[str, Any] = {
                "kind": "drive#change",
                "changeType": "file",
                "time": "1970-01-01T00:00:00.000Z",
                "removed": f is None,
                "fileId": fid,
            }
            if f is not None:
                change["file"] = f.resource()
                if f.drive_id:
                    change["driveId"] = f.drive_id
            changes.append(change)
        out: dict[str, Any] = {"kind": "drive#changeList", "changes": changes}
        if rest:
            out["nextPageToken"] = str(rest[0][1])
        else:
            out["newStartPageToken"] = str(self._last_seq + 1)
        return out

    # ------------------------------------------------------------ OAuth

    def grant(self, delegate: str, *scopes: str) -> None:
        """Domain-wide delegation: `delegate` may be impersonated for `scopes`; once any
        grant exists, every Drive call needs a token from `/token`."""
        if self.grants is None:
            self.grants = {}
        self.grants[delegate] = frozenset(scopes)

    @property
    def access_tokens(self) -> list[str]:
        """Every access token `/token` handed out."""
        return sorted(self._tokens)

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The OAuth token endpoint for the JWT-bearer grant (signature not verified)."""
        self.stats.by_method["oauth.token"] += 1
        claims = token_claims(form.get("assertion", ""))
        if claims is None:
            return 400, token_error("invalid_grant", "Invalid JWT.")
        # Without `sub` the service account acts as itself (no delegation), as with Google.
        granted = (self.grants or {}).get(claims.get("sub") or claims.get("iss", ""))
        if granted is None or not set(claims.get("scope", "").split()) <= granted:
            return 401, token_error(
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or "
                "client not authorized for any of the scopes requested.",
            )
        token = uuid.uuid4().hex
        self._tokens.add(token)
        self._token_subjects[token] = claims.get("sub", "")
        return 200, token_answer(token, expires_in=3600)


class _Handler(BaseHTTPRequestHandler):
    """HTTP front: faults, latency, method override, batches; `drive` is set per server."""

    drive: DriveEmulator
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle + delayed ACK
    # add ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    # An idle keep-alive connection is closed after this many seconds (bounded loops).
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: dict[str, Any], extra: dict[str, str] | None = None):
        self._send(status, json.dumps(obj).encode(), "application/json; charset=UTF-8", extra)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        drive = self.drive
        with drive._lock:
            drive._in_flight += 1
            drive.stats.max_concurrent = max(drive.stats.max_concurrent, drive._in_flight)
        try:
            self._answer(method)
        finally:
            with drive._lock:
                drive._in_flight -= 1

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        drive = self.drive
        fault = drive._fault_for_request()
        if drive.latency:
            time.sleep(drive.latency)
        if fault is not None:
            drive.stats.faults += 1
            if fault in SILENT:
                Unanswered(fault).leave_unanswered(self, drive.faults.hang_s)
                return
            err = FAULT_ERRORS[fault]
            extra = {}
            if fault == "429" and drive.faults.retry_after is not None:
                if drive.faults.retry_after_form == "date":
                    extra = drive.retry_after_header(drive.faults.retry_after, "date")
                else:
                    extra["Retry-After"] = f"{drive.faults.retry_after:g}"
            self._json(err.code, err.body(), extra)
            return
        url = urlsplit(self.path)
        if method == "POST" and url.path == "/token":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            status, obj = drive.token(form)
            self._json(status, obj)
            return
        if method == "POST" and url.path == "/batch/drive/v3":
            self._batch(body)
            return
        if method == "POST" and self.headers.get("X-HTTP-Method-Override"):
            # googleapiclient sends GETs longer than 2,048 characters like this.
            method = self.headers["X-HTTP-Method-Override"].upper()
            drive.stats.method_overrides += 1
            query, body = body.decode(), b""
        else:
            query = url.query
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if not url.path.startswith("/drive/v3/"):
            self._json(404, DriveApiError(404, "Not Found", "notFound").body())
            return
        if method == "PATCH":
            limited = drive._take_write()
            if limited is not None:
                kind, wait = limited
                err = FAULT_ERRORS[kind]
                limit = drive.write_limit
                form = limit.retry_after if limit else None
                self._json(err.code, err.body(), drive.retry_after_header(wait, form))
                return
        status, obj = drive.call(method, url.path, params, body, self.headers.get("Authorization"))
        self._json(status, obj)

    def _batch(self, body: bytes) -> None:
        drive = self.drive
        drive.stats.by_method["batch"] += 1
        if drive.on_batch is not None:
            drive.on_batch()
        ctype = self.headers.get("Content-Type", "")
        msg = email.parser.BytesParser().parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
        )
        parts = msg.get_payload() if msg.is_multipart() else None
        if not isinstance(parts, list) or not parts:
            self._json(400, DriveApiError(400, "Invalid multipart request.", "badRequest").body())
            return
        if len(parts) > MAX_BATCH_PARTS:
            self._json(
                400,
                DriveApiError(
                    400, f"A batch may hold at most {MAX_BATCH_PARTS} calls.", "batchSizeTooLarge"
                ).body(),
            )
            return
        boundary = "batch_" + uuid.uuid4().hex
        out: list[str] = []
        for part in parts:
            content_id = unfold(str(part.get("Content-ID", "")))
            raw = part.get_payload(decode=False)
            status, obj, headers = self._batch_part(str(raw))
            reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
                      404: "Not Found", 429: "Too Many Requests"}.get(status, "Error")  # fmt: skip
            inner = json.dumps(obj)
            extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            out.append(
                f"--{boundary}\r\nContent-Type: application/http\r\n"
                f"Content-ID: <response-{content_id.strip().strip('<>')}>\r\n\r\n"
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=UTF-8\r\n"
                f"{extra}Content-Length: {len(inner.encode())}\r\n\r\n{inner}\r\n"
            )
        out.append(f"--{boundary}--\r\n")
        self._send(200, "".join(out).encode(), f"multipart/mixed; boundary={boundary}")

    def _batch_part(self, raw: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        head, _, part_body = raw.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            return 400, DriveApiError(400, "Invalid batch part.", "badRequest").body(), {}
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        fault = self.drive._fault_for_part()
        if fault is not None and fault not in SILENT:
            self.drive.stats.faults += 1
            err = FAULT_ERRORS[fault]
            return err.code, err.body(), {}
        if method != "GET":
            limited = self.drive._take_write()
            if limited is not None:
                kind, wait = limited
                err = FAULT_ERRORS[kind]
                limit = self.drive.write_limit
                form = limit.retry_after if limit else None
                return err.code, err.body(), self.drive.retry_after_header(wait, form)
        url = urlsplit(target)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        status, obj = self.drive.call(
            method, url.path, params, part_body.strip().encode(), headers.get("authorization")
        )
        return status, obj, {}


def unfold(value: str) -> str:
    """A header value unfolded as RFC 5322 §2.2.3 says: every CRLF that is followed by
    white space is removed (the white space stays). googleapiclient folds a long
    `Content-ID` (`<uuid+33-character id>`) after its `+`; Google unfolds it."""
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def sample_drive(departments: int, courses: int, files: int, *, seed: int = 1) -> list[Node]:
    """A drive shaped like the real one: `departments` folders holding `courses` course
    folders in all, holding `files` test files in all (mostly PDFs, some badly named,
    some not PDFs). Deterministic for a given `seed`; ids are unique."""
    import random

    from backtest_compilation.tree import file, folder

    rng = random.Random(seed)
    codes = [f"{chr(65 + i // 26 % 26)}{chr(65 + i % 26)}X{chr(65 + i // 676 % 26)}"
             for i in range(departments)]  # fmt: skip
    per_course = [files // courses + (1 if c < files % courses else 0) for c in range(courses)]
    depts = []
    course_no = 0
    for d, code in enumerate(codes):
        n_courses = courses // departments + (1 if d < courses % departments else 0)
        course_nodes = []
        for _ in range(n_courses):
            number = 1000 + course_no
            kids = []
            for k in range(per_course[course_no]):
                exam = rng.choice(["E1", "E2", "M", "Q3", "e1 ", "M1"])
                sem = rng.choice(["F", "S", "U"])
                year = rng.randint(10, 24)
                name = f"{code}-{number} {exam}{sem}{year}.pdf" if k % 7 else f"{exam}{sem}{year}"
                mime = PDF_MIME if k % 29 else "application/msword"
                kids.append(file(f"f{course_no:05d}x{k:04d}", name, mime))
            title = f"{code}-{number} Course {number}"
            course_nodes.append(folder(f"c{course_no:05d}", title, *kids))
            course_no += 1
        depts.append(folder(f"d{d:04d}", code, *course_nodes))
    return depts
