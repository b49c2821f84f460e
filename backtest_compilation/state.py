"""The run's memory (contract §5.7, §5.10): a folder per source in `CACHE_DIR`, holding
`state.json` (small) and `snapshot.json` (what grows with the drive, `APART`, and the
problem keys: a JSON line per value, read on first use, after a copy of the state).
A save writes `snapshot.json` when a value changed, then `state.json` naming it by
inode, size and mtime; a `snapshot.json` it does not name is from a save stopped in
between, and its copy is the state. Anything else unreadable is a warning and a rescan.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from .errors import cache_dir_error
from .files import write_atomic
from .snapshot import items_from_json, items_to_json

log = logging.getLogger(__name__)

FORMAT: Final = "backtest-compilation-state"
VERSION: Final = 2
FILE_NAME: Final = "state.json"
SNAPSHOT_NAME: Final = "snapshot.json"
Sink = Literal["renames", "mongo", "sheet"]
SINKS: Final[tuple[Sink, ...]] = ("renames", "mongo", "sheet")
PARTS: Final = ("drive", *SINKS)
APART: Final[Mapping[str, tuple[str, ...]]] = {
    "drive": ("items",),
    "mongo": ("catalog", "problems"),
}
_FOLDER: Final = re.compile(r"(drive|local|source)-[A-Za-z0-9_-]{1,100}")


@dataclass(frozen=True, slots=True)
class Part:
    """One remembered part: JSON-able `data` (the drive's `items` are `tree.Item`s) and
    when it was recorded (UTC). Read-only: states are replaced, never edited."""

    data: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class State:
    """Everything remembered between runs about one source (`source_key`); `None` means
    "nothing known, start afresh". `retired_ids` (folder id → `{"id", "at"}`) are the
    MongoDB `_id`s of courses removed from the website, so a folder that comes back soon
    gets its old `_id` (and the website its old links) back. `problems` holds the keys of
    the problems the last catalog found, so only new and resolved ones are logged."""

    drive: Part | None = None
    renames: Part | None = None
    mongo: Part | None = None
    sheet: Part | None = None
    last_success: datetime | None = None  # last run in which every sink succeeded
    source: str = ""
    problems: Sequence[str] | None = None
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
        """A copy that remembers `ids` (folder id → MongoDB `_id`) as removed from the
        website at `at`, and forgets those removed more than `days` ago."""
        at = _utc(at)
        kept = {f: e for f, e in self.retired_ids.items() if (at - _when(e)).days < days}
        kept.update({f: {"id": str(i), "at": at.isoformat()} for f, i in ids.items()})
        return replace(self, retired_ids=kept)

    def retired_id(self, folder_id: str) -> str | None:
        """The `_id` (as text) the course of `folder_id` had when it was removed, if known."""
        entry = self.retired_ids.get(folder_id)
        return entry.get("id") if isinstance(entry, Mapping) else None


def source_key(kind: str, where: str) -> str:
    """Whose state it is: `drive:<FOLDER_ID>` or `local:<absolute path>`."""
    return f"{kind}:{where}"


def folder(cache_dir: Path, source: str) -> Path:
    """`source`'s folder in `CACHE_DIR`: `drive-<FOLDER_ID>`, or a digest of a local path."""
    kind, _, where = source.partition(":")
    kind = kind if kind in ("drive", "local") else "source"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", where):
        where = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return Path(cache_dir) / f"{kind}-{where}"


def path_in(cache_dir: Path, source: str | None = None) -> Path:
    """`source`'s `state.json`; without `source` the one saved last in `CACHE_DIR`
    (`CACHE_DIR/state.json`, which is never written, when there is none)."""
    if source is not None:
        return folder(cache_dir, source) / FILE_NAME
    found = [p for p in Path(cache_dir).glob(f"*/{FILE_NAME}") if _FOLDER.fullmatch(p.parent.name)]
    return max(found, key=lambda p: p.stat().st_mtime_ns, default=Path(cache_dir) / FILE_NAME)


def digest(data: Any) -> str:
    """A stable fingerprint of JSON-able data (key order does not matter)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def replaced(data: Mapping[str, Any], **changes: Any) -> Mapping[str, Any]:
    """`data` with `changes`; its values in snapshot.json stay unread (and unwritten)."""
    if isinstance(data, _Lazy):
        return _Lazy({**data.small, **changes}, data.snap, data.part, data.apart)
    return {**data, **changes}


class _Snapshot:
    """One version of `snapshot.json` (`stamp`), one object per version in this process
    (`_LAST` holds the newest): read on first use, each value parsed when asked for."""

    def __init__(self, path: Path, stamp: list[int] | None, values: dict[str, Any] | None = None):
        self.path, self.stamp, self.values = path, stamp, values
        _LAST[path] = self

    def load(self) -> dict[str, Any]:
        """The lines by key, read now if not yet (ValueError when the file is another)."""
        if self.values is None:
            with self.path.open("rb") as f:
                if _stamp(f.fileno()) != self.stamp:
                    raise ValueError("it was replaced")
                lines = f.read().splitlines()
            self.values = {line[2 : line.index(b'"', 2)].decode(): line for line in lines}
        return self.values

    def get(self, key: str) -> Any:
        """The value of `key`; ValueError saying why when it cannot be read."""
        try:
            values = self.load()
            if type(value := values[key]) is bytes:  # not parsed yet
                value = json.loads(value)[key]
                values[key] = value = items_from_json(value) if key == "drive.items" else value
            return value
        except (OSError, ValueError, RecursionError, TypeError, KeyError) as exc:
            raise ValueError(f"{self.path} cannot be read ({exc})") from None


_LAST: dict[Path, _Snapshot] = {}


class _Lazy(Mapping[str, Any]):
    """A part's data whose `apart` values are in `snap` until asked for."""

    def __init__(self, small: dict[str, Any], snap: _Snapshot, part: str, apart: tuple[str, ...]):
        self.small, self.snap, self.part, self.apart = small, snap, part, apart

    def __getitem__(self, key: str) -> Any:
        return self.snap.get(f"{self.part}.{key}") if key in self.apart else self.small[key]

    def __iter__(self) -> Iterator[str]:
        return iter((*self.small, *self.apart))

    def __len__(self) -> int:
        return len(self.small) + len(self.apart)


class _Keys(Sequence[str]):
    """The problem keys in `snap`, read on first use (none when they cannot be)."""

    def __init__(self, snap: _Snapshot) -> None:
        self.snap = snap

    def _keys(self) -> Sequence[str]:
        try:
            return self.snap.get("problems")  # type: ignore[no-any-return]
        except ValueError as exc:
            log.warning("state: the saved problems are unusable (%s); all count as new", exc)
            return ()

    def __getitem__(self, i: Any) -> Any:
        return self._keys()[i]

    def __len__(self) -> int:
        return len(self._keys())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)


def load(path: Path, source: str | None = None) -> tuple[State, str | None]:
    """`source`'s state (`path`: `CACHE_DIR` or a `state.json` in it; without `source`,
    the one saved last) and a warning. Nothing saved: an empty state, no warning.
    Unreadable, corrupt, another layout or version: an empty state and a one-line
    warning saying why (the run then rescans everything). Never raises for bad content."""
    cache = _cache_of(path)
    file = path_in(cache, source)
    empty = State(source=source or "")
    try:
        return _from_doc(*_read(file)), None
    except FileNotFoundError:
        old = cache / FILE_NAME
        return empty, _warning(old, "has an earlier layout") if old.is_file() else None
    except OSError as exc:
        return empty, _warning(file, f"cannot be read: {exc.strerror or exc}")
    except (ValueError, RecursionError, TypeError, KeyError, AttributeError) as exc:
        return empty, _warning(file, f"is corrupt or of another version ({exc})")


def _read(file: Path) -> tuple[dict[str, Any], _Snapshot | None]:
    """state.json and its snapshot.json (or snapshot.json's copy of the state)."""
    try:
        doc = _ours(json.loads(file.read_bytes()))
    except FileNotFoundError:
        doc = None
    snap_file = file.with_name(SNAPSHOT_NAME)
    stamp, named = _stamp(snap_file), doc and doc.get("snapshot")
    if stamp is None and named:
        raise ValueError(f"the {SNAPSHOT_NAME} it names is missing")
    last = _LAST.get(snap_file)
    snap = last if last and last.stamp == stamp else _Snapshot(snap_file, stamp) if stamp else None
    if snap and named != stamp:  # a save stopped after snapshot.json, or a copied one
        return _ours(snap.get("state")), snap
    if doc is None:
        raise FileNotFoundError(file)
    return doc, snap


def _ours(doc: dict[str, Any]) -> dict[str, Any]:
    if (doc.get("format"), doc.get("version")) != (FORMAT, VERSION):
        raise ValueError(f"it is not {FORMAT} version {VERSION}")
    return doc


def _from_doc(doc: dict[str, Any], snap: _Snapshot | None) -> State:
    parts: dict[str, Any] = {}
    for name in PARTS:
        if (raw := doc[name]) is None:
            parts[name] = None
            continue
        data, apart = dict(raw["data"]), tuple(raw.get("apart", ()))
        if apart and (snap is None or not set(apart) <= set(APART.get(name, ()))):
            raise ValueError(f"its '{name}' part is malformed")
        parts[name] = Part(_Lazy(data, snap, name, apart) if apart else data, _time(raw["at"]))  # type: ignore[arg-type]
    if doc["problems"] is not None and snap is None:
        raise ValueError("its problems are missing")
    return State(
        **parts,
        last_success=None if doc["last_success"] is None else _time(doc["last_success"]),
        source=str(doc["source"]),
        problems=None if doc["problems"] is None else _Keys(snap),  # type: ignore[arg-type]
        retired_ids=dict(doc["retired_course_ids"]),
    )


def save(path: Path, state: State, *, now: datetime | None = None) -> None:
    """Write `state` into its source's folder (`path`: `CACHE_DIR` or a `state.json` in
    it). Raises `RunError` (exit 1) naming the folder when it cannot be written; the
    previous state is then left as it was."""
    where = folder(_cache_of(path), state.source)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "source": state.source,
        "saved_at": _utc(now or datetime.now(UTC)).isoformat(),
        "last_success": state.last_success.isoformat() if state.last_success else None,
        "retired_course_ids": dict(state.retired_ids),
        "problems": None if state.problems is None else "apart",
    }
    apart: dict[str, Any] = {}  # snapshot.json's values (a `_Snapshot`: its, maybe unread)
    for name in PARTS:
        part = getattr(state, name)
        doc[name] = None if part is None else _split(name, part, apart)
    if (keys := state.problems) is not None:
        apart["problems"] = keys.snap if isinstance(keys, _Keys) else keys
    snap_file, file = where / SNAPSHOT_NAME, where / FILE_NAME
    try:
        doc["snapshot"] = _save_apart(snap_file, doc, apart) if apart else None
        write_atomic(file, _dumps(doc))
        if not apart:
            snap_file.unlink(missing_ok=True)
        leftovers = [p for n in (FILE_NAME, SNAPSHOT_NAME) for p in where.glob(f".{n}.*.tmp")]
        for stale in (*leftovers, *where.parent.glob("state*")):  # killed saves, old layouts
            with contextlib.suppress(OSError):
                stale.unlink()
    except OSError as exc:
        raise cache_dir_error(exc, where, "write the state file in") from None


def _split(name: str, part: Part, apart: dict[str, Any]) -> dict[str, Any]:
    """The part as state.json keeps it; its values that grow with the drive go to `apart`."""
    data = part.data
    if isinstance(data, _Lazy):
        small, kept = data.small, data.apart
        apart.update({f"{name}.{k}": data.snap for k in kept})
    else:
        kept = tuple(k for k in APART.get(name, ()) if k in data)
        small = {k: v for k, v in data.items() if k not in kept}
        apart.update({f"{name}.{k}": data[k] for k in kept})
    return {"at": part.at.isoformat(), "data": small, **({"apart": kept} if kept else {})}


def _save_apart(file: Path, doc: dict[str, Any], apart: dict[str, Any]) -> list[int] | None:
    """snapshot.json's stamp; the file is rewritten when a value is not the one there."""
    last = _LAST.get(file)
    if last and last.stamp == _stamp(file):
        if all(_same(last, k, v) for k, v in apart.items()):
            return last.stamp
        with contextlib.suppress(OSError, ValueError):  # states read from it keep its values
            last.load()
    values = {"state": {**doc}}  # the state, should state.json not be written after it
    for key, value in apart.items():
        try:
            values[key] = value.get(key) if isinstance(value, _Snapshot) else value
        except ValueError as exc:  # the next read says so, and rescans
            log.warning("state: %s; it is not saved again", exc)
    body = {k: items_to_json(v) if k == "drive.items" else v for k, v in values.items()}
    write_atomic(file, b"\n".join(_dumps({k: v}) for k, v in body.items()))
    return _Snapshot(file, _stamp(file), values).stamp


def _same(last: _Snapshot, key: str, value: Any) -> bool:
    """Whether `value` (a `_Snapshot`: its value) is `key`'s in `last`, known without
    reading; equal is enough, and costs less than rewriting."""
    if value is last:
        return True
    there = (last.values or {}).get(key, ...)  # bytes: not parsed yet
    value = (value.values or {}).get(key) if isinstance(value, _Snapshot) else value
    return there is not ... and type(there) is not bytes and (there is value or there == value)


def _stamp(file: Path | int) -> list[int] | None:
    """Which file `file` (a path or an open descriptor) is: inode, size, mtime (None: none)."""
    with contextlib.suppress(FileNotFoundError):
        st = os.stat(file)
        return [st.st_ino, st.st_size, st.st_mtime_ns]
    return None


def _cache_of(path: Path) -> Path:
    """`CACHE_DIR` from `path`: it, or a `state.json` in it or in a source's folder."""
    path = Path(path)
    if path.name != FILE_NAME:
        return path
    return path.parent.parent if _FOLDER.fullmatch(path.parent.name) else path.parent


def _dumps(data: Any) -> bytes:
    # ensure_ascii: lone surrogates from odd file names survive as \udcxx escapes.
    return json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def _warning(path: Path, why: str) -> str:
    return f"state file {str(path)!r} {why}; ignoring it (this run rescans the whole drive)"


def _when(entry: Any) -> datetime:
    """When a retired id was recorded; long ago when that cannot be told."""
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        return _time(entry["at"])
    return datetime.min.replace(tzinfo=UTC)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("state times must be timezone-aware")
    return at.astimezone(UTC)


def _time(value: str) -> datetime:
    return _utc(datetime.fromisoformat(value))
