"""The run's memory (contract §5.7): one versioned JSON file in `CACHE_DIR`.

It holds what the drive looked like (an opaque snapshot from the Drive source, with
the changes-feed token inside) and, per sink, what was last applied *successfully*.
The pipeline replaces one part at a time, only after that part's work succeeded, and
saves atomically, so a crash at any point leaves the previous file intact.

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
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from .errors import RunError

log = logging.getLogger(__name__)

FORMAT: Final = "backtest-compilation-state"
VERSION: Final = 1
FILE_NAME: Final = "state.json"

Sink = Literal["renames", "mongo", "sheet"]
SINKS: Final[tuple[Sink, ...]] = ("renames", "mongo", "sheet")
PARTS: Final = ("drive", *SINKS)


@dataclass(frozen=True, slots=True)
class Part:
    """One remembered part: JSON-able `data` (opaque here) and when it was recorded (UTC).

    Treat `data` as read-only: states are shared, replaced, never edited in place."""

    data: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class State:
    """Everything remembered between runs; `None` means "nothing known, start afresh"."""

    drive: Part | None = None
    renames: Part | None = None
    mongo: Part | None = None
    sheet: Part | None = None
    last_success: datetime | None = None  # last run in which every sink succeeded

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

    @property
    def is_empty(self) -> bool:
        return self == State()


def path_in(cache_dir: Path) -> Path:
    """Where the state file lives inside `CACHE_DIR`."""
    return Path(cache_dir) / FILE_NAME


def digest(data: Any) -> str:
    """A stable fingerprint of JSON-able data (key order does not matter).

    Sinks can remember `digest(what_was_applied)` instead of the whole content."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def load(path: Path) -> tuple[State, str | None]:
    """Read the state file: `(state, warning)`.

    Missing → empty state, no warning. Unreadable, corrupt, truncated, wrong shape or
    another version → empty state and a one-line warning saying why (the caller logs
    it; the run then rescans everything). Never raises for bad content.
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return State(), None
    except OSError as exc:
        return State(), _warning(path, f"cannot be read: {exc.strerror or exc}")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; truncation lands here.
        return State(), _warning(path, "is not valid JSON (corrupt or truncated)")
    try:
        return _from_doc(doc), None
    except _Invalid as exc:
        return State(), _warning(path, str(exc))


def save(path: Path, state: State, *, now: datetime | None = None) -> None:
    """Write `state` atomically: a temp file in the same directory, fsync, `os.replace`.

    Creates the directory if missing. Raises `RunError` (exit 1) with a clear message
    when it cannot be written; the previous file is then left as it was.
    """
    path = Path(path)
    # Serialise first: data that is not JSON-able is a programming error, and must not
    # cost the previous file.
    text = json.dumps(
        _to_doc(state, now or datetime.now(UTC)),
        ensure_ascii=True,  # lone surrogates from odd file names survive as \udcxx escapes
        allow_nan=False,
        separators=(",", ":"),
    )
    tmp_name = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
        tmp_name = ""
        _fsync_dir(path.parent)
        _remove_stale_temps(path)
    except OSError as exc:
        raise RunError(
            f"cannot write the state file {str(path)!r}: {exc.strerror or exc} "
            "(check that CACHE_DIR exists and is writable)"
        ) from None
    finally:
        if tmp_name:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
    log.debug("state saved to %s (%d bytes)", path, len(text))


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


def _to_doc(state: State, saved_at: datetime) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": _utc(saved_at).isoformat(),
        "last_success": state.last_success.isoformat() if state.last_success else None,
    }
    for name in PARTS:
        part: Part | None = getattr(state, name)
        doc[name] = None if part is None else {"at": part.at.isoformat(), "data": part.data}
    return doc


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


def _from_doc(doc: Any) -> State:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _Invalid("is not a backtest-compilation state file")
    version = doc.get("version")
    if version != VERSION:
        raise _Invalid(f"has version {version!r}, this program reads version {VERSION}")
    parts: dict[str, Part | None] = {}
    for name in PARTS:
        raw = doc.get(name)
        if raw is None:
            parts[name] = None
            continue
        if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
            raise _Invalid(f"has a malformed '{name}' part")
        parts[name] = Part(raw["data"], _time(raw.get("at"), f"'{name}'"))
    last = doc.get("last_success")
    return State(
        last_success=None if last is None else _time(last, "'last_success'"),
        **parts,  # type: ignore[arg-type]
    )
