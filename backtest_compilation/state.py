"""The run's memory (contract §5.7, §5.10): a folder per source in `CACHE_DIR` with
`state.json` (small) and `snapshot.json` (what grows with the drive: `APART` and the
problem keys, read on first use). A save rewrites snapshot.json (with a copy of the
state) only when a value in it changed, then state.json naming it by inode, size and
mtime: a snapshot.json it does not name is from a save stopped in between, and its copy
is the state. Anything unreadable is a warning and a full rescan.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
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

FORMAT: Final = "backtest-compilation-state"
VERSION: Final = 3
FILE_NAME: Final = "state.json"
SNAPSHOT_NAME: Final = "snapshot.json"
Sink = Literal["renames", "mongo", "sheet"]
PARTS: Final = ("drive", "renames", "mongo", "sheet")
APART: Final = {"drive": ("items",), "mongo": ("catalog", "problems")}
ITEMS: Final = "drive.items"  # `tree.Item`s in memory, a column per field in the file


class _Snapshot:
    """snapshot.json as it is now (`stamp`): read whole on first use."""

    def __init__(self, path: Path, values: dict[str, Any] | None = None) -> None:
        self.path, self.stamp, self.values = path, _stamp(path), values

    def get(self, key: str) -> Any:
        """The value of `key`; ValueError saying why when it cannot be read."""
        try:
            if self.values is None:
                with self.path.open("rb") as f:
                    if _stamp(f.fileno()) != self.stamp:
                        raise ValueError("it was replaced")
                    values = json.loads(f.read())
                if ITEMS in values:
                    values[ITEMS] = items_from_json(values[ITEMS])
                self.values = values
            return self.values[key]
        except (OSError, ValueError, RecursionError, TypeError, KeyError) as exc:
            raise ValueError(f"{self.path} cannot be read ({exc})") from None

    def holds(self, key: str, value: Any) -> bool:
        """Whether `value` (this snapshot: its own) is `key`'s value here."""
        there = (self.values or {}).get(key, self)
        return value is self or (there is not self and (there is value or there == value))


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

    def __contains__(self, key: object) -> bool:
        return key in self.small or key in self.apart


class _Keys(Sequence[str]):
    """The problem keys in `snap`, read on first use."""

    def __init__(self, snap: _Snapshot) -> None:
        self.snap = snap

    def __getitem__(self, i: Any) -> Any:
        return self.snap.get("problems")[i]

    def __len__(self) -> int:
        return len(self.snap.get("problems"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)


@dataclass(frozen=True, slots=True)
class Part:
    """JSON-able `data` (the drive's `items` are `tree.Item`s), recorded `at` (UTC)."""

    data: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class State:
    """What one source (`source_key`) remembers between runs; `None`: nothing known.
    `retired_ids` (folder id → `{"id", "at"}`): `_id`s of courses removed from the
    website, given back to a folder that returns soon. `problems`: the keys of the last
    catalog's problems. `snap`: the snapshot.json it was loaded from or saved to."""

    drive: Part | None = None
    renames: Part | None = None
    mongo: Part | None = None
    sheet: Part | None = None
    last_success: datetime | None = None  # last run in which every sink succeeded
    source: str = ""
    problems: Sequence[str] | None = None
    retired_ids: Mapping[str, Any] = field(default_factory=dict)
    snap: _Snapshot | None = field(default=None, compare=False, repr=False)

    def with_drive(self, data: Mapping[str, Any], at: datetime) -> State:
        """A copy with a new drive snapshot (after a successful read)."""
        return replace(self, drive=Part(data, _utc(at)))

    def with_sink(self, sink: Sink, data: Mapping[str, Any], at: datetime) -> State:
        """A copy recording what `sink` applied successfully at `at`."""
        return replace(self, **{sink: Part(data, _utc(at))})

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
        kept = {f: e for f, e in self.retired_ids.items() if (at - _time(e["at"])).days < days}
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
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", where):
        where = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return Path(cache_dir) / f"{kind}-{where}"


def path_in(cache_dir: Path, source: str | None = None) -> Path:
    """`source`'s `state.json`; without `source` the one saved last in `CACHE_DIR`
    (`CACHE_DIR/state.json`, which is never written, when there is none)."""
    if source is not None:
        return folder(cache_dir, source) / FILE_NAME
    found = Path(cache_dir).glob(f"*/{FILE_NAME}")
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


def load(path: Path, source: str | None = None) -> tuple[State, str | None]:
    """`source`'s state in `CACHE_DIR` `path` (without `source`, `path` is a state.json)
    and a warning. Nothing saved: an empty state. Unreadable, corrupt or of another
    layout: an empty state and a warning saying why (the run then rescans everything)."""
    file = Path(path) if source is None else folder(path, source) / FILE_NAME
    empty = State(source=source or "")
    try:
        doc = _ours(json.loads(file.read_bytes()))
        snap = None if doc["snapshot"] is None else _Snapshot(file.with_name(SNAPSHOT_NAME))
        if snap and snap.stamp != doc["snapshot"]:  # a save stopped after snapshot.json
            doc = _ours(snap.get("state"))
        return _from_doc(doc, snap), None
    except FileNotFoundError:
        if not (source and (file := Path(path) / FILE_NAME).is_file()):
            return empty, None
        why = "has an earlier layout"
    except (OSError, ValueError, RecursionError, TypeError, KeyError, AttributeError) as exc:
        why = f"cannot be read or is of another version ({exc})"
    return empty, f"state file {str(file)!r} {why}; ignoring it (this run rescans the whole drive)"


def _ours(doc: dict[str, Any]) -> dict[str, Any]:
    if (doc.get("format"), doc.get("version")) != (FORMAT, VERSION):
        raise ValueError(f"it is not {FORMAT} version {VERSION}")
    return doc


def _from_doc(doc: dict[str, Any], snap: _Snapshot | None) -> State:
    parts: dict[str, Part | None] = {}
    for name in PARTS:
        if (raw := doc[name]) is None:
            parts[name] = None
            continue
        data, apart = dict(raw["data"]), tuple(raw["apart"])
        if apart and (snap is None or not set(apart) <= set(APART.get(name, ()))):
            raise ValueError(f"its '{name}' part is malformed")
        parts[name] = Part(_Lazy(data, snap, name, apart) if apart else data, _time(raw["at"]))
    return State(
        **parts,
        last_success=None if doc["last_success"] is None else _time(doc["last_success"]),
        source=str(doc["source"]),
        problems=_Keys(snap) if snap and doc["problems"] else None,
        retired_ids=dict(doc["retired_course_ids"]),
        snap=snap,
    )


def save(path: Path, state: State) -> State:
    """Write `state` into its source's folder in `CACHE_DIR` (`path`); returns it as
    saved (the next save then knows what snapshot.json holds). Raises `RunError` (exit
    1) naming the folder when it cannot be written; the previous state is then kept."""
    where = folder(path, state.source)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "source": state.source,
        "last_success": state.last_success.isoformat() if state.last_success else None,
        "retired_course_ids": dict(state.retired_ids),
        "problems": state.problems is not None,
    }
    apart: dict[str, Any] = {}  # snapshot.json's values (a `_Snapshot`: its own, maybe unread)
    for name in PARTS:
        doc[name] = None if (part := getattr(state, name)) is None else _split(name, part, apart)
    if (keys := state.problems) is not None:
        apart["problems"] = keys.snap if isinstance(keys, _Keys) else keys
    snap, snap_file = state.snap, where / SNAPSHOT_NAME
    try:
        if not apart:
            snap = None
        elif not (
            snap and snap.stamp == _stamp(snap_file) and all(map(snap.holds, apart, apart.values()))
        ):
            values = {k: v.get(k) if isinstance(v, _Snapshot) else v for k, v in apart.items()}
            body = {"state": doc, **values}
            if ITEMS in body:
                body[ITEMS] = items_to_json(body[ITEMS])
            write_atomic(snap_file, _dumps(body))
            snap = _Snapshot(snap_file, values)
        doc["snapshot"] = snap and snap.stamp
        write_atomic(where / FILE_NAME, _dumps(doc))
        if snap is None:
            snap_file.unlink(missing_ok=True)
    except OSError as exc:
        raise cache_dir_error(exc, where, "write the state file in") from None
    for old in where.parent.glob("state*"):  # an earlier layout
        with contextlib.suppress(OSError):
            old.unlink()
    return _from_doc(doc, snap)


def _split(name: str, part: Part, apart: dict[str, Any]) -> dict[str, Any]:
    """The part as state.json keeps it; its values that grow with the drive go to `apart`."""
    data, kept = part.data, tuple(k for k in APART.get(name, ()) if k in part.data)
    lazy = isinstance(data, _Lazy)
    apart.update({f"{name}.{k}": data.snap if lazy else data[k] for k in kept})
    small = data.small if lazy else data
    return {
        "at": part.at.isoformat(),
        "data": {k: v for k, v in small.items() if k not in kept},
        "apart": kept,
    }


def _stamp(file: Path | int) -> list[int] | None:
    """Which file `file` (a path or an open descriptor) is: inode, size, mtime (None: none)."""
    with contextlib.suppress(FileNotFoundError):
        st = os.stat(file)
        return [st.st_ino, st.st_size, st.st_mtime_ns]
    return None


def _dumps(data: Any) -> bytes:
    # ensure_ascii: lone surrogates from odd file names survive as \udcxx escapes.
    return json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("state times must be timezone-aware")
    return at.astimezone(UTC)


def _time(value: str) -> datetime:
    return _utc(datetime.fromisoformat(value))
