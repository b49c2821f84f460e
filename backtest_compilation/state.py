"""The run's memory (contract §5.7): a small header file in `CACHE_DIR` with the drive
snapshot's items kept apart, and the one place the drive snapshot
(`snapshot.DriveSnapshot`) becomes JSON and back.

It holds what the drive looked like (an opaque snapshot from the Drive source, with
the changes-feed token inside) and, per sink, what was last applied *successfully*.
All of that belongs to one source (`FOLDER_ID`, or a local `--source` path): the file
keeps one such record per source, so what one source's runs remember never short-cuts
another's. Files written before sources were told apart load as the record of the
source their drive snapshot names.
The pipeline replaces one part at a time, only after that part's work succeeded, and
saves atomically, so a crash at any point leaves the previous state intact.

Cost follows the changes (contract §5.10). The files, all in `CACHE_DIR`:

- `state.json`, the header and the one commit point: tokens, fingerprints, the sink
  parts, every source's record and, for a drive snapshot with items, which generation
  of snapshot files holds them, the base file's size and SHA-256, and how many bytes
  of the journal are committed. Replaced atomically (temp file, fsync, rename) by
  every save.
- `state-drive-<gen>.json`, the base: a snapshot's items as one JSON list, written
  once (atomically) and never changed.
- `state-drive-<gen>.changes`, the journal: one line per saved change set,
  `{"put": [items], "del": [ids]}`, appended and fsynced before the header that
  counts it replaces the previous one.
- `state-<part>-<digest>.json`: a sink part or problem list too big for the header
  (the remembered catalog of a large drive), named by its content and written once.

An unchanged run reads and rewrites only the header (and reads the big parts it needs,
without converting or rewriting them): the items stay on disk (`LazyItems`) and their
files are neither read nor written. A run with changes
appends one record the size of what changed. After a full listing, or when the
journal would outgrow a quarter of the base, a new generation's base is written
instead, the header switched to it, and the old generation's files deleted. Journal
bytes past the committed length (a crash between append and header) are ignored, and
cut off before the next append; files no header names (an interrupted save's) are
deleted by the next save.

A header (or a part's file) that cannot be trusted (corrupt, truncated, wrong shape,
another version) is reported as a warning and treated as absent: the next run does a full rescan and
converges. Snapshot files missing or not matching the header make reading the items a
ValueError, which the Drive source reports as a warning before listing the whole drive.
It is never a crash. Files of the earlier layouts (everything in `state.json`, on one
line or with the items on a second line) load, and the next save writes this layout.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
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
# The journal may grow to this fraction of its base before a new base is written.
COMPACT_FRACTION: Final = 0.25
# A sink part or problem list at least this big (the remembered catalog, the problems
# of a large drive) is kept in a file of its own.
SIDE_BYTES: Final = 16_384

Sink = Literal["renames", "mongo", "sheet"]
SINKS: Final[tuple[Sink, ...]] = ("renames", "mongo", "sheet")
PARTS: Final = ("drive", *SINKS)
_SIDES: Final = (*SINKS, "problems")  # what may live in a file of its own


@dataclass(frozen=True, slots=True)
class _Ref:
    """A snapshot's items on disk, as the header names them (its `drive.items`)."""

    gen: int  # the generation: names the base and journal files
    size: int  # of the base file
    sha256: str  # of the base file
    journal: int  # bytes of the journal that are committed
    by_id: bool  # the items are in id order (the Drive source's), not in journal order

    def to_json(self) -> dict[str, Any]:
        return {
            "gen": self.gen,
            "size": self.size,
            "sha256": self.sha256,
            "journal": self.journal,
            "by_id": self.by_id,
        }

    @classmethod
    def from_json(cls, raw: Any) -> _Ref:
        """The reference `to_json` wrote; ValueError otherwise."""
        if not isinstance(raw, dict):
            raise ValueError("not an object")
        gen, size, sha, journal, by_id = (
            raw.get(k) for k in ("gen", "size", "sha256", "journal", "by_id")
        )
        counts = (gen, size, journal)
        if not (
            all(type(n) is int and n >= 0 for n in counts)
            and isinstance(sha, str)
            and len(sha) == 64
            and isinstance(by_id, bool)
        ):
            raise ValueError("not a reference to snapshot files")
        return cls(gen, size, sha, journal, by_id)  # type: ignore[arg-type]


def snapshot_files(path: Path, gen: int) -> tuple[Path, Path]:
    """The base and journal files of generation `gen` next to the header `path`."""
    path = Path(path)
    stem = path.parent / f"{path.stem}-drive-{gen}"
    return stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".changes")


def _owned(path: Path) -> re.Pattern[str]:
    """The names of the snapshot files (group 1: generation) and temp files that belong
    to the header `path`."""
    stem, name = re.escape(path.stem), re.escape(path.name)
    sides = "|".join(_SIDES)
    return re.compile(
        rf"{stem}-(?:{sides})-[0-9a-f]{{16}}\.json|\.{stem}-(?:{sides})-[0-9a-f]{{16}}\.json\..*\.tmp|"
        rf"{stem}-drive-(\d+)\.(?:json|changes)|\.(?:{name}|{stem}-drive-\d+\.json)\..*\.tmp"
    )


@dataclass(slots=True, eq=False)
class _Disk:
    """What this process knows of one source's snapshot files at the header `path`: the
    reference the header on disk holds, and once read or written here, those items by
    id (`rows`), so the next save can append only what changed. One per `load`, shared
    by every state derived from it, updated by each save."""

    path: Path
    ref: _Ref | None = None
    listed_at: Any = None  # the saved snapshot's last full listing
    rows: dict[str, Any] | None = None
    items: list[Any] | None = None  # the list `rows` came from (the same object: unchanged)
    stamp: tuple[int, int, int] | None = None  # the base file's when read or written
    # Sink parts kept in files of their own: part → (its data as read or saved, the file's
    # reference); the same data object again needs neither converting nor writing.
    sides: dict[str, tuple[Any, dict[str, Any]]] = field(default_factory=dict)

    def forget(self, ref: _Ref | None, listed_at: Any) -> None:
        self.ref, self.listed_at = ref, listed_at
        self.rows = self.items = self.stamp = None


@dataclass(slots=True, eq=False)
class _Where:
    """Where a `LazyItems`'s items are: the snapshot files `ref` of the header `path`, or
    the second line of a state file in the earlier layout (`legacy`: path, offset, size,
    the file's stamp when read). Shared by the copies of one `LazyItems`; a save that
    moves the items (same content, a new place) updates it."""

    path: Path
    ref: _Ref | None = None
    disk: _Disk | None = None
    legacy: tuple[Path, int, int, tuple[int, int, int]] | None = None


class LazyItems(Mapping[str, Any]):
    """A drive part's data whose `items` stay on disk until asked for.

    Everything else (the header: token, fingerprint, roots) is in memory. Reading
    `items` reads the snapshot files (or an earlier-layout file's second line), once;
    files missing, damaged or not the ones the header names raise ValueError (the drive
    source then lists the whole drive)."""

    def __init__(self, header: Mapping[str, Any], where: _Where) -> None:
        self.header = dict(header)
        self.where = where
        self._items: Any = _UNREAD

    @property
    def loaded(self) -> bool:
        return self._items is not _UNREAD

    def _load(self) -> Any:
        if self._items is _UNREAD:
            where = self.where
            try:
                if where.ref is not None:
                    items, rows, stamp = _read_files(where.path, where.ref)
                else:
                    items, rows, stamp = json.loads(self.raw()), None, None
            except (OSError, ValueError, RecursionError) as exc:
                raise ValueError(f"the saved drive items cannot be read ({exc})") from None
            if not isinstance(items, list):
                raise ValueError("the saved drive items are truncated")
            self._items = items
            disk = where.disk
            if disk is not None and where.ref is not None and disk.ref == where.ref:
                disk.rows, disk.items, disk.stamp = rows, items, stamp
        return self._items

    def raw(self) -> bytes:
        """The items' JSON text as a file in the earlier layout saved them (a save moves
        it into a base file as it is, unparsed)."""
        if self.where.legacy is None:
            raise OSError("the saved drive items are not in the state file")
        path, offset, size, stamp = self.where.legacy
        with open(path, "rb") as f:
            if _stamp(path) != stamp:
                raise OSError(f"{path} was replaced by someone else during this run")
            f.seek(offset)
            raw = f.read(size)
        if len(raw) != size or raw[:1] != b"[" or raw[-1:] != b"]":
            raise OSError(f"{path} changed during this run")
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


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _stamp_if(path: Path) -> tuple[int, int, int] | None:
    """`path`'s stamp, None if it cannot be had (then the next save writes a new base)."""
    try:
        return _stamp(path)
    except OSError:
        return None


_UNREAD: Final = object()


def _key(row: Any) -> str | None:
    """An item's id: a list row's first value (the Drive source's `[id, name, mime,
    parent]`) or a row's `"id"`; None when it has none (then no journal: whole bases)."""
    if type(row) is list:
        return row[0] if row and type(row[0]) is str else None
    if type(row) is dict:
        key = row.get("id")
        return key if type(key) is str else None
    return None


def _by_id(items: list[Any]) -> dict[str, Any] | None:
    """`items` by id; None when some item has no id or two share one."""
    rows: dict[str, Any] = {}
    for row in items:
        key = _key(row)
        if key is None:
            return None
        rows[key] = row
    return rows if len(rows) == len(items) else None


def _apply(rows: dict[str, Any], record: Any) -> None:
    """One journal record applied to `rows`: ids in `del` removed, `put` upserted (a new
    id goes last, an existing one keeps its place)."""
    if not (
        isinstance(record, dict)
        and isinstance(record.get("put"), list)
        and isinstance(record.get("del"), list)
    ):
        raise ValueError("a journal record is malformed")
    for key in record["del"]:
        if not isinstance(key, str):
            raise ValueError("a journal record is malformed")
        rows.pop(key, None)
    for row in record["put"]:
        key = _key(row)
        if key is None:
            raise ValueError("a journal record is malformed")
        rows[key] = row


def _read_files(path: Path, ref: _Ref) -> tuple[list[Any], dict[str, Any] | None, Any]:
    """The items `ref` names: (items, the same by id or None, the base file's stamp)."""
    base, journal = snapshot_files(path, ref.gen)
    with open(base, "rb") as f:
        raw = f.read(ref.size + 1)
        st = os.fstat(f.fileno())
    if len(raw) != ref.size or hashlib.sha256(raw).hexdigest() != ref.sha256:
        raise ValueError(f"{base.name} is not the file the state names")
    items = json.loads(raw)
    if not isinstance(items, list):
        raise ValueError(f"{base.name} is not a list of items")
    rows = _by_id(items)
    if ref.journal:
        with open(journal, "rb") as f:
            text = f.read(ref.journal)  # bytes past it were never committed
        if len(text) != ref.journal or not text.endswith(b"\n"):
            raise ValueError(f"{journal.name} is shorter than the state says")
        if rows is None:
            raise ValueError(f"{journal.name} changes items that have no ids")
        for line in text.split(b"\n")[:-1]:
            _apply(rows, json.loads(line))
        items = list(rows.values())
        if ref.by_id:
            items.sort(key=_key)  # type: ignore[arg-type]
    return items, rows, (st.st_ino, st.st_size, st.st_mtime_ns)


def _in_id_order(items: list[Any]) -> bool:
    keys = [_key(row) for row in items]
    return all(a < b for a, b in itertools.pairwise(keys))  # type: ignore[operator]


def _changes(
    old: dict[str, Any], items: list[Any]
) -> tuple[dict[str, Any], dict[str, Any], bool] | None:
    """What turns the items `old` into `items`: (the journal record, `items` by id,
    whether `items` are in id order); None when no record can (an item without id, a
    duplicate, or an order that replaying the record would not give back)."""
    new = _by_id(items)
    if new is None:
        return None
    put = [row for key, row in new.items() if old.get(key, _UNREAD) != row]
    gone = [key for key in old if key not in new]
    by_id = _in_id_order(items)
    if not by_id:
        after = dict(old)
        _apply(after, {"put": put, "del": gone})
        if list(after.values()) != items:
            return None
    return {"put": put, "del": gone}, new, by_id


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
    # What this run knows of the snapshot files (see `_Disk`): not part of the state.
    disk: _Disk | None = field(default=None, compare=False, repr=False)

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

    Only the header is read: a drive snapshot's items stay in their files until asked
    for (`LazyItems`). Missing → empty state, no warning. Unreadable, corrupt,
    truncated, wrong shape or another version → empty state and a one-line warning
    saying why (the caller logs it; the run then rescans everything). Never raises for
    bad content.
    """
    path = Path(path)
    disk = _Disk(_absolute(path))
    empty = State(source=source or "", disk=disk)
    try:
        doc, legacy = _read(path)
    except FileNotFoundError:
        return empty, None
    except OSError as exc:
        return empty, _warning(path, f"cannot be read: {exc.strerror or exc}")
    except (ValueError, RecursionError):
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; truncation lands here.
        return empty, _warning(path, "is not valid JSON (corrupt or truncated)")
    try:
        return _from_doc(doc, source, legacy, disk), None
    except _Invalid as exc:
        return empty, _warning(path, str(exc))


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


# The end of the first line of a file in the two-line layout: the items follow.
_SPLIT: Final = b'"items":\n'
_CLOSE: Final = b"}}}"


def _read(path: Path) -> tuple[Any, tuple[Path, int, int, tuple[int, int, int]] | None]:
    """The header document. A file in the earlier two-line layout has the top record's
    drive items on its second line: they are left there (`None` in the document, and
    where they are)."""
    with open(path, "rb") as f:
        first = f.readline()
        if not first.endswith(_SPLIT):
            return json.loads(first + f.read()), None
        offset = f.tell()
        size = os.fstat(f.fileno()).st_size - offset - len(_CLOSE)
        f.seek(offset + max(size, 0))
        if size < 2 or f.read() != _CLOSE:
            raise ValueError("truncated")
    legacy = (_absolute(path), offset, size, _stamp(path))
    return json.loads(first[:-1] + b"null" + _CLOSE), legacy


def save(path: Path, state: State, *, now: datetime | None = None) -> None:
    """Write `state`: the drive items' change set appended to the journal (or a new
    base written), then the header replaced atomically (a temp file in the same
    directory, fsync, `os.replace`); files no longer named are then deleted.

    Creates the directory if missing. Raises `RunError` (exit 1) with a clear message
    when it cannot be written; the previous state is then left as it was.
    """
    given = Path(path)
    path = _absolute(given)
    # Plan first: data that is not JSON-able is a programming error, and must not cost
    # the previous state. Reading the old items to move them may fail: see `_Saving`.
    saving = _Saving(path)
    disk = state.disk if state.disk is not None and state.disk.path == path else _Disk(path)
    drive = saving.top_drive(state.drive, disk)
    sinks = {name: saving.sink_part(name, getattr(state, name), disk) for name in SINKS}
    sinks["problems"] = saving.problems(state.problems, disk)
    others = {
        key: saving.other_record(record)
        for key, record in state.others.items()
        if key != state.source
    }
    header = _dumps(_to_doc(state, now or datetime.now(UTC), {**sinks, "drive": drive}, others))
    header = header.encode("ascii")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for write in saving.writes:
            write()
        _write_header(path, header)
        for done in saving.done:
            done()
        _remove_stale(path, saving.named)
    except OSError as exc:
        raise cache_dir_error(exc, given, "write the state file") from None
    log.debug("state saved to %s (%d bytes; %s)", given, len(header), saving.note or "header only")


class _Saving:
    """One save's plan: the snapshot files to write before the header (`writes`), what
    this process then knows (`done`), and the files the new header names (`named`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writes: list[Callable[[], None]] = []
        self.done: list[Callable[[], None]] = []
        self.named: set[str] = set()
        self.note = ""
        self._last_gen: int | None = None

    def name(self, ref: _Ref) -> dict[str, Any]:
        """`ref` as the header keeps it; its files are kept."""
        base, journal = snapshot_files(self.path, ref.gen)
        self.named.add(base.name)
        if ref.journal:
            self.named.add(journal.name)
        return ref.to_json()

    def top_drive(self, part: Part | None, disk: _Disk) -> dict[str, Any] | None:
        """The saved source's drive part as the header keeps it, planning the writes of
        its items: none (unchanged), one journal record, or a new base."""
        if part is None:
            return None
        at = part.at.isoformat()
        data = part.data
        if isinstance(data, LazyItems):
            where = data.where
            ref = where.ref
            if (
                ref is not None
                and where.path == self.path
                and (disk.ref is None or disk.ref.gen == ref.gen)
            ):
                if disk.ref != ref:  # another state's items: this process knows nothing of them
                    self.done.append(lambda: disk.forget(ref, data.get("listed_at")))
                return {"at": at, "data": data.header, "items": self.name(ref)}
            if where.legacy is not None:
                return self._moved(at, data, disk)
            items = self._old_items(data)
            if items is None:
                return None
            data = {**data.header, "items": items}
        items = data.get("items")
        if not isinstance(items, list):
            return {"at": at, "data": data}
        head = {k: v for k, v in data.items() if k != "items"}
        return {"at": at, "data": head, "items": self.name(self._items(head, items, disk))}

    def _items(self, head: Mapping[str, Any], items: list[Any], disk: _Disk) -> _Ref:
        """Where `items` will be: the committed files with a journal record appended when
        that can be done, else a new generation's base."""
        old = disk.ref
        if old is not None and disk.items is items and disk.stamp is not None:
            return old  # the same list the files hold (a later save of the same run)
        if old is not None and self._appendable(disk, head):
            assert disk.rows is not None
            found = _changes(disk.rows, items)
            if found is not None:
                record, rows, by_id = found
                if not record["put"] and not record["del"]:
                    ref = replace(old, by_id=by_id)
                    self.done.append(lambda: _known(disk, ref, head, rows, items, disk.stamp))
                    return ref
                text = (_dumps(record) + "\n").encode("ascii")
                if old.journal + len(text) <= old.size * COMPACT_FRACTION:
                    ref = replace(old, journal=old.journal + len(text), by_id=by_id)
                    journal = snapshot_files(self.path, old.gen)[1]
                    self.writes.append(lambda: _append(journal, old.journal, text))
                    self.done.append(lambda: _known(disk, ref, head, rows, items, disk.stamp))
                    self.note = f"{len(text)} bytes appended to {journal.name}"
                    return ref
        rows = _by_id(items)
        raw = _dumps(items).encode("ascii")
        ref = self._base(raw, rows is not None and _in_id_order(items))
        base = snapshot_files(self.path, ref.gen)[0]
        self.done.append(lambda: _known(disk, ref, head, rows, items, _stamp_if(base)))
        return ref

    def _appendable(self, disk: _Disk, head: Mapping[str, Any]) -> bool:
        """Whether a record can go on the committed journal: its items known here, its
        files as this process left them, and no full listing since (which gets a new
        base: the journal starts afresh)."""
        if disk.ref is None or disk.rows is None or head.get("listed_at") != disk.listed_at:
            return False
        base, journal = snapshot_files(self.path, disk.ref.gen)
        try:
            if _stamp(base) != disk.stamp:
                return False
            return journal.stat().st_size >= disk.ref.journal
        except FileNotFoundError:
            return disk.ref.journal == 0 and base.exists()
        except OSError:
            return False

    def _moved(self, at: str, data: LazyItems, disk: _Disk | None) -> dict[str, Any] | None:
        """A part whose items are on the second line of a file in the earlier layout:
        they move, unparsed, into a base file."""
        try:
            raw = data.raw()
        except OSError as exc:
            log.warning("state: the saved drive items cannot be moved (%s); forgetting them", exc)
            return None
        ref = self._base(raw, False)
        where = data.where

        def moved() -> None:
            where.path, where.ref, where.legacy = self.path, ref, None
            if disk is not None:
                where.disk = disk
                disk.forget(ref, data.get("listed_at"))

        self.done.append(moved)
        return {"at": at, "data": data.header, "items": self.name(ref)}

    def _old_items(self, data: LazyItems) -> list[Any] | None:
        try:
            return data["items"]
        except ValueError as exc:
            log.warning("state: %s; forgetting them (the next read lists the drive)", exc)
            return None

    def _base(self, raw: bytes, by_id: bool) -> _Ref:
        """A new generation's base holding `raw`, written before the header."""
        if self._last_gen is None:
            self._last_gen = max(_generations(self.path), default=0)
        self._last_gen += 1
        ref = _Ref(self._last_gen, len(raw), hashlib.sha256(raw).hexdigest(), 0, by_id)
        base = snapshot_files(self.path, ref.gen)[0]
        self.writes.append(lambda: _write_base(base, raw))
        self.note = f"{len(raw)} bytes in a new base {base.name}"
        return ref

    def sink_part(self, name: str, part: Part | None, disk: _Disk) -> dict[str, Any] | None:
        """A sink's part as the header keeps it: its data inline, or when big (the
        remembered catalog) in a file of its own, named by its content and written only
        when new: an unchanged run neither converts nor rewrites it."""
        if part is None:
            return None
        at = part.at.isoformat()
        known = disk.sides.get(name)
        if known is not None and known[0] is part.data:
            return {"at": at, "file": self.side(name, known[1])}
        text = _dumps(part.data).encode("ascii")
        if len(text) < SIDE_BYTES:
            return {"at": at, "data": part.data}
        ref = self._side_file(name, text)
        data = part.data
        self.done.append(lambda: disk.sides.__setitem__(name, (data, ref)))
        return {"at": at, "file": ref}

    def _side_file(self, name: str, text: bytes) -> dict[str, Any]:
        """The reference to a file holding `text`, written first if not there yet."""
        ref = {"sha256": hashlib.sha256(text).hexdigest(), "size": len(text)}
        file = _side_file(self.path, name, ref["sha256"])
        try:
            there = file.stat().st_size == len(text)
        except OSError:
            there = False
        if not there:
            self.writes.append(lambda: _replace(file, text))
        return dict(self.side(name, ref))

    def problems(self, keys: tuple[str, ...] | None, disk: _Disk) -> Any:
        """The problem keys as the header keeps them: a list, or when long a file of
        their own, written only when new."""
        if keys is None:
            return None
        known = disk.sides.get("problems")
        if known is not None and known[0] is keys:
            return {"file": self.side("problems", known[1])}
        text = _dumps(list(keys)).encode("ascii")
        if len(text) < SIDE_BYTES:
            return list(keys)
        ref = self._side_file("problems", text)
        self.done.append(lambda: disk.sides.__setitem__("problems", (keys, ref)))
        return {"file": ref}

    def side(self, name: str, ref: Mapping[str, Any]) -> Mapping[str, Any]:
        """A sink part's file reference; the file is kept."""
        if isinstance(ref.get("sha256"), str):
            self.named.add(_side_file(self.path, name, ref["sha256"]).name)
        return ref

    def other_record(self, record: Any) -> Any:
        """Another source's record as the header keeps it: carried as it is, its items
        left in their files (those moved when they were on an earlier layout's line)."""
        if not isinstance(record, Mapping):
            return record
        problems = record.get("problems")
        if isinstance(problems, Mapping) and isinstance(problems.get("file"), Mapping):
            self.side("problems", problems["file"])
        elif isinstance(problems, list):
            text = _dumps(problems).encode("ascii")
            if len(text) >= SIDE_BYTES:
                record = {**record, "problems": {"file": self._side_file("problems", text)}}
        for name in SINKS:
            part = record.get(name)
            if isinstance(part, Mapping) and isinstance(part.get("file"), Mapping):
                self.side(name, part["file"])
            elif isinstance(part, Mapping) and isinstance(part.get("data"), Mapping):
                # The record saved last, of another source now: its big parts stay apart.
                text = _dumps(part["data"]).encode("ascii")
                if len(text) >= SIDE_BYTES:
                    file = {"at": part.get("at"), "file": self._side_file(name, text)}
                    record = {**record, name: file}
        drive = record.get("drive")
        if not isinstance(drive, Mapping):
            return record
        data = drive.get("data")
        if isinstance(data, LazyItems):
            where = data.where
            at = str(drive.get("at"))
            if where.ref is not None and where.path == self.path:
                part = {"at": at, "data": data.header, "items": self.name(where.ref)}
            elif where.legacy is not None:
                part = self._moved(at, data, None)
            else:
                items = self._old_items(data)
                part = (
                    None if items is None else {"at": at, "data": {**data.header, "items": items}}
                )
            return {**record, "drive": part}
        with contextlib.suppress(ValueError):
            if "items" in drive:
                self.name(_Ref.from_json(drive["items"]))
        return record


def _known(
    disk: _Disk,
    ref: _Ref,
    head: Mapping[str, Any],
    rows: dict[str, Any] | None,
    items: list[Any],
    stamp: tuple[int, int, int] | None,
) -> None:
    """After a save: the header on disk names `ref`, which holds `items`."""
    disk.ref, disk.listed_at, disk.rows, disk.items, disk.stamp = (
        ref,
        head.get("listed_at"),
        rows,
        items if rows is not None else None,
        stamp,
    )


def _generations(path: Path) -> Iterator[int]:
    """The generations of snapshot files next to `path` (named or not)."""
    owned = _owned(path)
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            match = owned.fullmatch(entry.name)
            if match and match.group(1):
                yield int(match.group(1))


def _write_base(base: Path, raw: bytes) -> None:
    """A base file, whole or not at all (temp file, fsync, rename)."""
    _replace(base, raw)


def _append(journal: Path, committed: int, text: bytes) -> None:
    """`text` appended to `journal` at `committed` (cutting off what a crash left past
    it), fsynced."""
    fd = os.open(journal, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        created = os.fstat(fd).st_size == 0 and committed == 0
        os.ftruncate(fd, committed)
        os.lseek(fd, committed, os.SEEK_SET)
        view = memoryview(text)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(journal.parent)


def _write_header(path: Path, text: bytes) -> None:
    """The commit point: the header replaced atomically."""
    _replace(path, text)


def _replace(path: Path, data: bytes) -> None:
    tmp_name = ""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
        tmp_name = ""
        _fsync_dir(path.parent)
    finally:
        if tmp_name:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def _remove_stale(path: Path, named: set[str]) -> None:
    """Snapshot files the header at `path` no longer names (older generations, a
    journal with nothing committed) and temp files of saves a killed run left behind
    (runs hold the lock: none is another's)."""
    owned = _owned(path)
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if entry.name not in named and owned.fullmatch(entry.name):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _dumps(data: Any) -> str:
    return json.dumps(
        data,
        ensure_ascii=True,  # lone surrogates from odd file names survive as \udcxx escapes
        allow_nan=False,
        separators=(",", ":"),
        default=_plain,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


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


def _record(state: State, parts: Any = _UNREAD) -> dict[str, Any]:
    """One source's record as JSON: its parts, last success and problem keys (`parts`,
    when given, are the parts as the header keeps them)."""
    doc: dict[str, Any] = {
        "last_success": state.last_success.isoformat() if state.last_success else None,
        "problems": None if state.problems is None else list(state.problems),
    }
    for name in (*SINKS, "drive"):
        part: Part | None = getattr(state, name)
        doc[name] = None if part is None else {"at": part.at.isoformat(), "data": part.data}
    if parts is not _UNREAD:
        doc.update(parts)
    return doc


def _to_doc(
    state: State, saved_at: datetime, parts: Mapping[str, Any], others: Mapping[str, Any]
) -> dict[str, Any]:
    # The saved source's record stays at the top level, where files without sources
    # kept it; the other sources' records ride along under "sources".
    return {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": _utc(saved_at).isoformat(),
        "source": state.source,
        "sources": dict(others),
        "retired_course_ids": dict(state.retired_ids),
        **_record(state, parts),
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
    raw: Mapping[str, Any],
    source: str,
    where: str,
    path: Path,
    disk: _Disk | None = None,
    legacy: tuple[Path, int, int, tuple[int, int, int]] | None = None,
) -> State:
    parts: dict[str, Part | None] = {}
    for name in PARTS:
        value = raw.get(name)
        if value is None:
            parts[name] = None
            continue
        if isinstance(value, dict) and name != "drive" and "file" in value:
            value = {**value, "data": _side(path, name, value["file"], disk, where)}
        if not isinstance(value, dict) or not isinstance(value.get("data"), dict):
            raise _Invalid(f"has a malformed '{name}' part{where}")
        data = value["data"]
        if name == "drive" and legacy is not None:
            header = {k: v for k, v in data.items() if k != "items"}
            data = LazyItems(header, _Where(path, disk=disk, legacy=legacy))
        elif name == "drive" and "items" in value:
            try:
                ref = _Ref.from_json(value["items"])
            except ValueError:
                raise _Invalid(f"has a malformed 'drive' part{where}") from None
            if "items" in data:
                raise _Invalid(f"has a malformed 'drive' part{where}")
            data = LazyItems(data, _Where(path, ref=ref, disk=disk))
            if disk is not None:
                disk.forget(ref, data.get("listed_at"))
        parts[name] = Part(data, _time(value.get("at"), f"'{name}'{where}"))
    last = raw.get("last_success")
    problems = raw.get("problems")
    problems_file = None
    if isinstance(problems, dict) and "file" in problems:
        problems_file = problems["file"]
        problems = _side(path, "problems", problems_file, None, where)
    if problems is not None and not (
        isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    ):
        raise _Invalid(f"has a malformed 'problems' list{where}")
    keys = None if problems is None else tuple(problems)
    if disk is not None and keys is not None and problems_file is not None:
        disk.sides["problems"] = (keys, problems_file)
    return State(
        last_success=None if last is None else _time(last, f"'last_success'{where}"),
        source=source,
        problems=keys,
        **parts,  # type: ignore[arg-type]
    )


def _side_file(path: Path, part: str, sha256: str) -> Path:
    """The file holding a sink part's data (named by its content)."""
    return path.parent / f"{path.stem}-{part}-{sha256[:16]}.json"


def _side(path: Path, part: str, ref: Any, disk: _Disk | None, where: str) -> Any:
    """A sink part's data read from its own file (`_Invalid` when it is not the file the
    header names: the whole state is then ignored, as a damaged header would be)."""
    if not (
        isinstance(ref, dict)
        and isinstance(ref.get("sha256"), str)
        and re.fullmatch(r"[0-9a-f]{64}", ref["sha256"])
        and type(ref.get("size")) is int
    ):
        raise _Invalid(f"has a malformed '{part}' part{where}")
    file = _side_file(path, part, ref["sha256"])
    try:
        with open(file, "rb") as f:
            raw = f.read(ref["size"] + 1)
        if len(raw) != ref["size"] or hashlib.sha256(raw).hexdigest() != ref["sha256"]:
            raise ValueError("it is not the file the state names")
        data = json.loads(raw)
    except (OSError, ValueError, RecursionError) as exc:
        raise _Invalid(
            f"has a '{part}' part{where} whose file {file.name} is unusable ({exc})"
        ) from None
    if disk is not None and isinstance(data, dict):
        disk.sides[part] = (data, ref)
    return data


def _from_doc(
    doc: Any,
    source: str | None,
    legacy: tuple[Path, int, int, tuple[int, int, int]] | None,
    disk: _Disk,
) -> State:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _Invalid("is not a backtest-compilation state file")
    version = doc.get("version")
    if version != VERSION:
        raise _Invalid(f"has version {version!r}, this program reads version {VERSION}")
    top_source = doc["source"] if isinstance(doc.get("source"), str) else _migrated_source(doc)
    if legacy is not None and not (
        isinstance(doc.get("drive"), dict) and isinstance(doc["drive"].get("data"), dict)
    ):
        raise _Invalid("has a malformed 'drive' part")
    mine = source is None or source == top_source
    top = _from_record(doc, top_source, "", disk.path, disk if mine else None, legacy)
    others = doc.get("sources") or {}
    if not isinstance(others, dict) or not all(isinstance(v, dict) for v in others.values()):
        raise _Invalid("has a malformed 'sources' part")
    retired = doc.get("retired_course_ids") or {}
    if not isinstance(retired, dict):
        raise _Invalid("has a malformed 'retired_course_ids' part")
    records = {**others, top_source: _record(top)}
    if mine:
        chosen = top
    elif source in others:
        chosen = _from_record(others[source], source, f" of source {source!r}", disk.path, disk)
    else:
        chosen = State(source=source)
    rest = {k: v for k, v in records.items() if k != chosen.source and k}
    return replace(chosen, others=rest, retired_ids=retired, disk=disk)


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
