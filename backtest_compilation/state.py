"""The run's memory (contract §5.7, §5.10): per source, a folder in `CACHE_DIR` with
`state.json` and `snapshot.json` (the `BIG` values, read on first use). A save rewrites
snapshot.json (with a copy of the state) only when one of those changed, then state.json
naming it by inode, size and mtime; one it does not name is from a save stopped in
between, and its copy is the state. Anything unreadable is a warning and a full rescan."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections import UserDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from .errors import cache_dir_error
from .files import write_atomic
from .snapshot import items_from_json, items_to_json

FORMAT: Final = "backtest-compilation-state"
VERSION: Final = 4
FILE_NAME: Final = "state.json"
SNAPSHOT_NAME: Final = "snapshot.json"
PARTS: Final = ("drive", "renames", "mongo", "sheet", "catalog", "retired_ids")
# The parts' values that grow with the drive (each key names one value in snapshot.json).
BIG: Final = {"drive": ("items",), "mongo": ("catalog", "problems"), "catalog": ("keys",)}


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
                if "items" in values:  # `tree.Item`s in memory, a column per field in the file
                    values["items"] = items_from_json(values["items"])
                self.values = values
            return self.values[key]
        except (OSError, ValueError, RecursionError, TypeError, KeyError) as exc:
            raise ValueError(f"{self.path} cannot be read ({exc})") from None

    def holds(self, key: str, value: Any) -> bool:
        """Whether `value` (this snapshot: its own, unread) is `key`'s value here."""
        there = (self.values or {}).get(key, self)
        return value is self or (there is not self and (there is value or there == value))


class _Lazy(UserDict[str, Any]):
    """A part whose values that are a `_Snapshot` are read from it when asked for."""

    def __getitem__(self, key: str) -> Any:
        value = self.data[key]
        return value.get(key) if isinstance(value, _Snapshot) else value


@dataclass(frozen=True, slots=True)
class State:
    """What one source (`source_key`) remembers between runs; `None`: nothing known.
    `drive`: its last reading; `renames`, `mongo`, `sheet`: what each sink did when it
    last succeeded; `catalog`: what the last catalog found; `retired_ids`: see
    `with_retired`. `snap`: the snapshot.json it was loaded from or saved to."""

    drive: Mapping[str, Any] | None = None
    renames: Mapping[str, Any] | None = None
    mongo: Mapping[str, Any] | None = None
    sheet: Mapping[str, Any] | None = None
    catalog: Mapping[str, Any] | None = None
    last_success: datetime | None = None  # last run in which every sink succeeded
    source: str = ""
    retired_ids: Mapping[str, Any] = field(default_factory=dict)
    snap: _Snapshot | None = field(default=None, compare=False, repr=False)

    @property
    def problems(self) -> Sequence[str] | None:
        """The keys of the last catalog's problems (`outcome.problem_key`), if known."""
        return None if self.catalog is None else self.catalog["keys"]

    def with_problems(self, keys: Iterable[str]) -> State:
        """A copy remembering the problems (by key) this run's catalog found."""
        return replace(self, catalog={"keys": sorted(set(keys))})

    def succeeded(self, at: datetime) -> State:
        """A copy noting a fully successful run at `at`."""
        return replace(self, last_success=_utc(at))

    def with_retired(self, ids: Mapping[str, Any], at: datetime, *, days: float) -> State:
        """A copy remembering `ids` (folder id → MongoDB `_id`) as removed from the website
        at `at`, for a folder that returns within `days`; older ones are forgotten."""
        at = _utc(at)
        kept = {f: e for f, e in self.retired_ids.items() if (at - _utc(e["at"])).days < days}
        kept.update({f: {"id": str(i), "at": at.isoformat()} for f, i in ids.items()})
        return replace(self, retired_ids=kept)


def source_key(kind: str, where: str) -> str:
    """Whose state it is: `drive:<FOLDER_ID>` or `local:<absolute path>`."""
    return f"{kind}:{where}"


def folder(cache_dir: Path, source: str) -> Path:
    """`source`'s folder in `CACHE_DIR`: `drive-<FOLDER_ID>`, or a digest of a local path."""
    kind, _, where = source.partition(":")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", where):
        where = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return Path(cache_dir) / f"{kind}-{where}"


def digest(value: Any) -> str:
    """A fingerprint of plain data or frozen dataclasses of it (a tree, its items)."""
    return hashlib.sha256(repr(value).encode()).hexdigest()  # repr escapes surrogates


def replaced(data: Mapping[str, Any], **changes: Any) -> Mapping[str, Any]:
    """`data` with `changes`; its values in snapshot.json stay unread (and unwritten)."""
    if isinstance(data, _Lazy):
        return _Lazy({**data.data, **changes})
    return {**data, **changes}


def load(path: Path, source: str | None = None) -> tuple[State, str | None]:
    """`source`'s state in `CACHE_DIR` `path` (no `source`: `path` is a state.json) and a
    warning; unreadable, corrupt or foreign, it is empty (the run rescans everything)."""
    file = Path(path) if source is None else folder(path, source) / FILE_NAME
    try:
        doc = json.loads(file.read_bytes())
        snap = doc.get("snapshot") and _Snapshot(file.with_name(SNAPSHOT_NAME))
        if snap and snap.stamp != doc["snapshot"]:  # a save stopped after snapshot.json
            doc = snap.get("state")
        if (doc.get("format"), doc.get("version")) != (FORMAT, VERSION):
            raise ValueError(f"it is not {FORMAT} version {VERSION}")
        return _from_doc(doc, snap), None
    except FileNotFoundError:
        return State(source=source or ""), None
    except (OSError, ValueError, RecursionError, TypeError, KeyError, AttributeError) as exc:
        why = f"state file {str(file)!r} cannot be read or is of another version ({exc})"
        return State(source=source or ""), f"{why}; ignoring it (this run rescans the whole drive)"


def _from_doc(doc: dict[str, Any], snap: _Snapshot | None) -> State:
    """The state `doc` (a state.json) describes; the values of its `BIG` keys are in `snap`."""
    parts: dict[str, Any] = {}
    for name in PARTS:
        if (data := doc[name]) is not None:
            keys = [k for k in BIG.get(name, ()) if k in data]
            if keys and snap is None:
                raise ValueError(f"it names no {SNAPSHOT_NAME}")
            data = _Lazy({**data, **dict.fromkeys(keys, snap)})
        parts[name] = data
    last = None if doc["last_success"] is None else _utc(doc["last_success"])
    return State(**parts, last_success=last, source=str(doc["source"]), snap=snap)


def save(path: Path, state: State) -> State:
    """Write `state` into its folder in `CACHE_DIR` `path` and return it as saved; a
    `RunError` (exit 1) naming the folder if it cannot be written (the old one stays)."""
    where, last = folder(path, state.source), state.last_success
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION, "source": state.source}
    doc["last_success"] = last and last.isoformat()
    apart: dict[str, Any] = {}  # snapshot.json's values (a `_Snapshot`: its own, maybe unread)
    for name in PARTS:
        if (data := getattr(state, name)) is not None:
            data = dict(data.data if isinstance(data, _Lazy) else data)
            for key in (k for k in BIG.get(name, ()) if k in data):
                apart[key], data[key] = data[key], None  # None: in snapshot.json
        doc[name] = data
    snap, snap_file = state.snap, where / SNAPSHOT_NAME
    try:
        if not apart:
            snap = None
        elif not (
            snap and snap.stamp == _stamp(snap_file) and all(map(snap.holds, apart, apart.values()))
        ):
            values = {k: v.get(k) if isinstance(v, _Snapshot) else v for k, v in apart.items()}
            body = {"state": doc, **values}
            if "items" in body:
                body["items"] = items_to_json(body["items"])
            write_atomic(snap_file, _dumps(body))
            snap = _Snapshot(snap_file, values)
        doc["snapshot"] = snap and snap.stamp
        write_atomic(where / FILE_NAME, _dumps(doc))
        if snap is None:
            snap_file.unlink(missing_ok=True)
    except OSError as exc:
        raise cache_dir_error(exc, where, "write the state file in") from None
    return _from_doc(doc, snap)


def _stamp(file: Path | int) -> list[int] | None:
    """Which file `file` (a path or an open descriptor) is: inode, size, mtime (None: none)."""
    with contextlib.suppress(FileNotFoundError):
        st = os.stat(file)
        return [st.st_ino, st.st_size, st.st_mtime_ns]
    return None


def _dumps(data: Any) -> bytes:
    # ensure_ascii: lone surrogates from odd file names survive as \udcxx escapes.
    return json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def _utc(at: datetime | str) -> datetime:
    at = datetime.fromisoformat(at) if isinstance(at, str) else at
    if at.tzinfo is None:
        raise ValueError("state times must be timezone-aware")
    return at.astimezone(UTC)
