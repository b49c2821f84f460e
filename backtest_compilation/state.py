"""The run's memory (contract §5.7): one versioned JSON file in `CACHE_DIR`, and the
one place the drive snapshot (`snapshot.DriveSnapshot`) becomes JSON and back.

It holds what the drive looked like (an opaque snapshot from the Drive source, with
the changes-feed token inside) and, per sink, what was last applied *successfully*.
All of that belongs to one source (`FOLDER_ID`, or a local `--source` path): the file
keeps one such record per source, so what one source's runs remember never short-cuts
another's. Files written before sources were told apart load as the record of the
source their drive snapshot names.
The pipeline replaces one part at a time, only after that part's work succeeded, and
saves atomically, so a crash at any point leaves the previous file intact.

Cost follows the changes (contract §5.10): the file is one JSON document written in two
lines. The first holds everything but the drive snapshot's `items` (tokens,
fingerprints, sink states, every source's record); the second holds the items. `load`
parses only the first line; the items are read when someone asks for them (a run
whose changes feed reported something). A save whose items were never read copies
that second line over byte for byte, without parsing or converting it.

A file that cannot be trusted (corrupt, truncated, wrong shape, another version) is
reported as a warning and treated as absent: the next run does a full rescan and
converges. It is never a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from .errors import cache_dir_error
from .snapshot import SNAPSHOT_VERSION, DriveSnapshot
from .tree import Item

log = logging.getLogger(__name__)

FORMAT: Final = "backtest-compilation-state"
VERSION: Final = 1
FILE_NAME: Final = "state.json"

Sink = Literal["renames", "mongo", "sheet"]
SINKS: Final[tuple[Sink, ...]] = ("renames", "mongo", "sheet")
PARTS: Final = ("drive", *SINKS)


class LazyItems(Mapping[str, Any]):
    """A drive part's data whose `items` stay on disk until asked for.

    Everything else (the header: token, fingerprint, roots) is in memory. Reading
    `items` parses the second line of the file it came from, once; a file damaged
    there raises ValueError (the drive source then lists the whole drive)."""

    def __init__(self, header: Mapping[str, Any], where: _Where) -> None:
        self.header = dict(header)
        self.where = where
        self._items: Any = _UNREAD

    @property
    def loaded(self) -> bool:
        return self._items is not _UNREAD

    def _load(self) -> Any:
        if self._items is _UNREAD:
            try:
                raw = self.raw()
                items = json.loads(raw)
            except (OSError, ValueError, RecursionError) as exc:
                raise ValueError(f"the saved drive items cannot be read ({exc})") from None
            if not isinstance(items, list):
                raise ValueError("the saved drive items are truncated")
            self._items = items
        return self._items

    def raw(self) -> bytes:
        """The items' JSON text as saved (for a save that did not change them)."""
        where = self.where
        with open(where.path, "rb") as f:
            if _stamp(where.path) != where.stamp:
                raise OSError(f"{where.path} was replaced by someone else during this run")
            f.seek(where.offset)
            raw = f.read(where.size)
        if len(raw) != where.size or raw[:1] != b"[" or raw[-1:] != b"]":
            raise OSError(f"{where.path} changed during this run")
        return raw

    def updated(self, **header: Any) -> LazyItems:
        """The same items under a header with `header`'s keys replaced."""
        out = LazyItems({**self.header, **header}, self.where)
        out._items = self._items
        return out

    def __getitem__(self, key: str) -> Any:
        if key == "items":
            return self._load()
        return self.header[key]

    def __iter__(self) -> Iterator[str]:
        yield from self.header
        yield "items"

    def __len__(self) -> int:
        return len(self.header) + 1

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LazyItems({self.header!r}, items at {self.where})"


@dataclass(slots=True)
class _Where:
    """Where a file's drive items are (shared by the copies of one `LazyItems`, and
    moved by `save`, which writes them at another offset)."""

    path: Path
    offset: int
    size: int
    # The file's identity when read (inode, size, mtime): another writer since is noticed.
    stamp: tuple[int, int, int] = (0, 0, 0)


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


_UNREAD: Final = object()


@dataclass(frozen=True, slots=True)
class Part:
    """One remembered part: JSON-able `data` (opaque here) and when it was recorded (UTC).

    Treat `data` as read-only: states are shared, replaced, never edited in place."""

    data: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class State:
    """Everything remembered between runs about one source (`source`, see `source_key`);
    `None` means "nothing known, start afresh".

    `others` carries the other sources' records through unread, so saving one source's
    state keeps theirs. `retired_ids` (folder id → `{"id", "at"}`) is shared by all
    sources: the MongoDB `_id` of each course removed from the website, so a folder that
    comes back soon gets its old `_id` (and the website its old links) back.
    `problems` holds the keys of the problems the last catalog found, so only new and
    resolved ones are logged."""

    drive: Part | None = None
    renames: Part | None = None
    mongo: Part | None = None
    sheet: Part | None = None
    last_success: datetime | None = None  # last run in which every sink succeeded
    source: str = ""
    problems: tuple[str, ...] | None = None
    others: Mapping[str, Any] = field(default_factory=dict)
    retired_ids: Mapping[str, Any] = field(default_factory=dict)

    def with_drive(self, data: Mapping[str, Any], at: datetime) -> State:
        """A copy with a new drive snapshot (after a successful read)."""
        return replace(self, drive=Part(data, _utc(at)))

    def with_sink(self, sink: Sink, data: Mapping[str, Any], at: datetime) -> State:
        """A copy recording what `sink` applied successfully at `at`."""
        if sink not in SINKS:
            raise ValueError(f"unknown sink {sink!r}; expected one of {', '.join(SINKS)}")
        return replace(self, **{sink: Part(data, _utc(at))})

    def without(self, part: str) -> State:
        """A copy that forgets `part` (`drive` or a sink), e.g. after its token was rejected."""
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; expected one of {', '.join(PARTS)}")
        return replace(self, **{part: None})

    def succeeded(self, at: datetime) -> State:
        """A copy noting a fully successful run at `at`."""
        return replace(self, last_success=_utc(at))

    def with_problems(self, keys: Iterable[str]) -> State:
        """A copy remembering the problems (by key) this run's catalog found."""
        return replace(self, problems=tuple(sorted(set(keys))))

    def with_retired(self, ids: Mapping[str, Any], at: datetime, *, days: float) -> State:
        """A copy that remembers `ids` (folder id → MongoDB `_id` as text) as removed
        from the website at `at`, and forgets those removed more than `days` ago."""
        at = _utc(at)
        kept = {
            folder: entry
            for folder, entry in self.retired_ids.items()
            if (when := _entry_time(entry)) is not None and (at - when).days < days
        }
        kept.update({folder: {"id": str(i), "at": at.isoformat()} for folder, i in ids.items()})
        return replace(self, retired_ids=kept)

    def retired_id(self, folder_id: str) -> str | None:
        """The `_id` (as text) the course of `folder_id` had when it was removed, if known."""
        entry = self.retired_ids.get(folder_id)
        return entry.get("id") if isinstance(entry, Mapping) else None

    @property
    def is_empty(self) -> bool:
        return self == State()


def source_key(kind: str, where: str) -> str:
    """The key a source's record is kept under: `drive:<FOLDER_ID>` or `local:<path>`."""
    return f"{kind}:{where}"


def _entry_time(entry: Any) -> datetime | None:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("at"), str):
        return None
    try:
        when = datetime.fromisoformat(entry["at"])
    except ValueError:
        return None
    return when.astimezone(UTC) if when.tzinfo else None


def path_in(cache_dir: Path) -> Path:
    """Where the state file lives inside `CACHE_DIR`."""
    return Path(cache_dir) / FILE_NAME


def digest(data: Any) -> str:
    """A stable fingerprint of JSON-able data (key order does not matter).

    Sinks can remember `digest(what_was_applied)` instead of the whole content."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def load(path: Path, source: str | None = None) -> tuple[State, str | None]:
    """Read the state file: `(state, warning)`, the state being `source`'s record
    (`source_key`), or the record saved last when `source` is None.

    Missing → empty state, no warning. Unreadable, corrupt, truncated, wrong shape or
    another version → empty state and a one-line warning saying why (the caller logs
    it; the run then rescans everything). Never raises for bad content.
    """
    try:
        doc, lazy = _read(Path(path))
    except FileNotFoundError:
        return State(source=source or ""), None
    except OSError as exc:
        return State(source=source or ""), _warning(path, f"cannot be read: {exc.strerror or exc}")
    except (ValueError, RecursionError):
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; truncation lands here.
        return State(source=source or ""), _warning(
            path, "is not valid JSON (corrupt or truncated)"
        )
    try:
        return _from_doc(doc, source, lazy), None
    except _Invalid as exc:
        return State(source=source or ""), _warning(path, str(exc))


# The end of the first line of a two-line file: the drive items follow on the second.
_SPLIT: Final = b'"items":\n'
_CLOSE: Final = b"}}}"


def _read(path: Path) -> tuple[Any, _Where | None]:
    """The document, with the top record's drive items left on disk when the file has
    them on a line of their own (then `None` in the document, and where they are)."""
    with open(path, "rb") as f:
        first = f.readline()
        if not first.endswith(_SPLIT):
            return json.loads(first + f.read()), None
        offset = f.tell()
        size = os.fstat(f.fileno()).st_size - offset - len(_CLOSE)
        f.seek(offset + max(size, 0))
        if size < 2 or f.read() != _CLOSE:
            raise ValueError("truncated")
    where = _Where(path, offset, size, _stamp(path))
    return json.loads(first[:-1] + b"null" + _CLOSE), where


def save(path: Path, state: State, *, now: datetime | None = None) -> None:
    """Write `state` atomically: a temp file in the same directory, fsync, `os.replace`.

    Creates the directory if missing. Raises `RunError` (exit 1) with a clear message
    when it cannot be written; the previous file is then left as it was.
    """
    path = Path(path)
    # Serialise first: data that is not JSON-able is a programming error, and must not
    # cost the previous file.
    head, items = _serialised(state, now or datetime.now(UTC))
    tmp_name = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(head)
            if items is not None:
                out.write(items)
                out.write(_CLOSE)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
        if items is not None and state.drive is not None:
            where = getattr(state.drive.data, "where", None)
            if where is not None:  # the items now live in the new file
                where.path, where.offset, where.size = path, len(head), len(items)
                where.stamp = _stamp(path)
        tmp_name = ""
        _fsync_dir(path.parent)
        _remove_stale_temps(path)
    except OSError as exc:
        raise cache_dir_error(exc, path, "write the state file") from None
    finally:
        if tmp_name:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
    log.debug("state saved to %s (%d + %d bytes)", path, len(head), len(items or b""))


def _dumps(data: Any) -> str:
    return json.dumps(
        data,
        ensure_ascii=True,  # lone surrogates from odd file names survive as \udcxx escapes
        allow_nan=False,
        separators=(",", ":"),
        default=_plain,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):  # a LazyItems of another source, carried along
        return dict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_last_items: list[Any] = []  # [items, their JSON]: the saves of one run share them


def _encoded_items(items: Any) -> bytes:
    """`items` as JSON, encoded once however many saves of a run write them (states are
    never edited in place, so the same list object means the same items)."""
    if _last_items and _last_items[0] is items:
        return _last_items[1]
    encoded = _dumps(items).encode("ascii")
    _last_items[:] = [items, encoded]
    return encoded


def _serialised(state: State, saved_at: datetime) -> tuple[bytes, bytes | None]:
    """The file's bytes: the whole document, or its first line and the drive items
    (which end the document) when the drive part has a list of items."""
    doc = _to_doc(state, saved_at)
    data = state.drive.data if state.drive is not None else None
    lazy = data if isinstance(data, LazyItems) else None
    if data is None or (lazy is None and not isinstance(data.get("items"), list)):
        return _dumps(doc).encode("ascii"), None
    if lazy is not None and not lazy.loaded:
        header: Mapping[str, Any] = lazy.header
        items = lazy.raw()  # unchanged: copied as saved, not parsed
    else:
        header = {k: v for k, v in data.items() if k != "items"}
        items = _encoded_items(data["items"])
    doc["drive"] = {"at": doc["drive"]["at"], "data": header}  # last key: ends the text
    text = _dumps(doc).encode("ascii")
    assert text.endswith(_CLOSE)
    head = text[: -len(_CLOSE)] + (b"," if header else b"") + _SPLIT
    return head, items


def _remove_stale_temps(path: Path) -> None:
    """Temp files of saves a killed run left behind (runs hold the lock: none is ours)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _warning(path: Path, why: str) -> str:
    return f"state file {str(path)!r} {why}; ignoring it (this run rescans the whole drive)"


class _Invalid(ValueError):
    """The document parsed but is not a state file this version understands."""


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("state times must be timezone-aware")
    return at.astimezone(UTC)


def _record(state: State) -> dict[str, Any]:
    """One source's record as JSON: its parts, last success and problem keys."""
    doc: dict[str, Any] = {
        "last_success": state.last_success.isoformat() if state.last_success else None,
        "problems": None if state.problems is None else list(state.problems),
    }
    for name in (*SINKS, "drive"):
        part: Part | None = getattr(state, name)
        doc[name] = None if part is None else {"at": part.at.isoformat(), "data": part.data}
    return doc


def _to_doc(state: State, saved_at: datetime) -> dict[str, Any]:
    # The saved source's record stays at the top level, where files without sources
    # kept it; the other sources' records ride along under "sources".
    others = {k: v for k, v in state.others.items() if k != state.source}
    return {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": _utc(saved_at).isoformat(),
        "source": state.source,
        "sources": others,
        "retired_course_ids": dict(state.retired_ids),
        **_record(state),  # the drive part last: its items end the file (see `save`)
    }


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise _Invalid(f"has no valid time in {where}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Invalid(f"has no valid time in {where}") from None
    if parsed.tzinfo is None:
        raise _Invalid(f"has a time without time zone in {where}")
    return parsed.astimezone(UTC)


def _migrated_source(doc: Mapping[str, Any]) -> str:
    """The source a file written before sources were told apart belongs to: the one its
    drive snapshot names (a local folder's root, or a Drive root id)."""
    drive = doc.get("drive")
    data = drive.get("data") if isinstance(drive, Mapping) else None
    if not isinstance(data, Mapping):
        return ""
    if data.get("kind") == "local" and isinstance(data.get("root"), str):
        return source_key("local", os.path.abspath(data["root"]))
    if isinstance(data.get("root_id"), str):
        return source_key("drive", data["root_id"])
    return ""


def _from_record(
    raw: Mapping[str, Any], source: str, where: str, lazy: _Where | None = None
) -> State:
    parts: dict[str, Part | None] = {}
    for name in PARTS:
        value = raw.get(name)
        if value is None:
            parts[name] = None
            continue
        if not isinstance(value, dict) or not isinstance(value.get("data"), dict):
            raise _Invalid(f"has a malformed '{name}' part{where}")
        data = value["data"]
        if name == "drive" and lazy is not None:
            data = LazyItems({k: v for k, v in data.items() if k != "items"}, lazy)
        parts[name] = Part(data, _time(value.get("at"), f"'{name}'{where}"))
    last = raw.get("last_success")
    problems = raw.get("problems")
    if problems is not None and not (
        isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    ):
        raise _Invalid(f"has a malformed 'problems' list{where}")
    return State(
        last_success=None if last is None else _time(last, f"'last_success'{where}"),
        source=source,
        problems=None if problems is None else tuple(problems),
        **parts,  # type: ignore[arg-type]
    )


def _from_doc(doc: Any, source: str | None = None, lazy: _Where | None = None) -> State:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _Invalid("is not a backtest-compilation state file")
    version = doc.get("version")
    if version != VERSION:
        raise _Invalid(f"has version {version!r}, this program reads version {VERSION}")
    top_source = doc["source"] if isinstance(doc.get("source"), str) else _migrated_source(doc)
    if lazy is not None and not (
        isinstance(doc.get("drive"), dict) and isinstance(doc["drive"].get("data"), dict)
    ):
        raise _Invalid("has a malformed 'drive' part")
    top = _from_record(doc, top_source, "", lazy)
    others = doc.get("sources") or {}
    if not isinstance(others, dict) or not all(isinstance(v, dict) for v in others.values()):
        raise _Invalid("has a malformed 'sources' part")
    retired = doc.get("retired_course_ids") or {}
    if not isinstance(retired, dict):
        raise _Invalid("has a malformed 'retired_course_ids' part")
    records = {**others, top_source: _record(top)}
    if source is None or source == top_source:
        chosen = top
    elif source in others:
        chosen = _from_record(others[source], source, f" of source {source!r}")
    else:
        chosen = State(source=source)
    rest = {k: v for k, v in records.items() if k != chosen.source and k}
    return replace(chosen, others=rest, retired_ids=retired)


# ---------------------------------------------------------------- the drive snapshot
# The snapshot is one shape in memory (`snapshot.DriveSnapshot`); it becomes JSON here,
# and only here, where the state file is written and read.


def snapshot_to_json(snapshot: DriveSnapshot, fingerprint: str | None = None) -> dict[str, Any]:
    """The drive part's data: a plain JSON-able dict (`snapshot_from_json` reads it
    back), with the tree's `fingerprint` when known, so an unchanged run need not read
    the items to know it."""
    out: dict[str, Any] = {
        "version": SNAPSHOT_VERSION,
        "root_id": snapshot.root_id,
        "root_name": snapshot.root_name,
        "drive_id": snapshot.drive_id,
        "is_shared_drive": snapshot.is_shared_drive,
        "page_token": snapshot.page_token,
        "listed_at": snapshot.listed_at.isoformat(),
    }
    if fingerprint is not None:
        out["fingerprint"] = fingerprint
    out["items"] = [[i.id, i.name, i.mime_type, i.parent] for i in snapshot.items]
    return out


def snapshot_from_json(data: Any) -> DriveSnapshot:
    """The snapshot `snapshot_to_json` wrote; ValueError naming what is wrong otherwise."""
    header = snapshot_header(data)
    return replace(header, items=snapshot_items(data.get("items")))


def snapshot_header(data: Any) -> DriveSnapshot:
    """The snapshot without its items (`items` is empty): all a read needs to ask the
    changes feed whether anything changed. Never touches `data["items"]`, which may
    still be on disk (`LazyItems`)."""
    if not isinstance(data, Mapping):
        raise ValueError("drive snapshot is not a JSON object")
    if data.get("version") != SNAPSHOT_VERSION:
        raise ValueError(f"drive snapshot version {data.get('version')!r} is not supported")

    def text(key: str, optional: bool = False) -> Any:
        value = data.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise ValueError(f"drive snapshot field {key!r} must be a string")
        return value

    try:
        listed_at = datetime.fromisoformat(text("listed_at"))
    except ValueError:
        raise ValueError("drive snapshot field 'listed_at' is not an ISO time") from None
    if listed_at.tzinfo is None:
        raise ValueError("drive snapshot field 'listed_at' has no time zone")
    shared = data.get("is_shared_drive")
    if not isinstance(shared, bool):
        raise ValueError("drive snapshot field 'is_shared_drive' must be true or false")
    return DriveSnapshot(
        root_id=text("root_id"),
        root_name=text("root_name"),
        drive_id=text("drive_id", optional=True),
        is_shared_drive=shared,
        items=(),
        page_token=text("page_token", optional=True),
        listed_at=listed_at,
    )


def snapshot_items(raw_items: Any) -> tuple[Item, ...]:
    """A snapshot's `items` as `snapshot_to_json` wrote them; ValueError otherwise."""
    if not isinstance(raw_items, list):
        raise ValueError("drive snapshot field 'items' must be a list")
    items = []
    for n, row in enumerate(raw_items):
        if not (isinstance(row, list) and len(row) == 4 and all(isinstance(v, str) for v in row)):
            raise ValueError(f"drive snapshot item {n} is not [id, name, mimeType, parent]")
        items.append(Item(*row))
    return tuple(items)
