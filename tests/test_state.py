"""The state: one folder per source with `state.json` and `snapshot.json`, round trip,
crashes at any point, bad files treated as absent, and cost following the changes
(contract §5.7, §5.10)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest_compilation import files, state
from backtest_compilation.errors import RunError
from backtest_compilation.state import State
from backtest_compilation.tree import FOLDER_MIME, PDF_MIME, Item
from tests.support.cache import state_path
from tests.support.fixtures_faults import FaultWorld
from tests.support.isolation import environment

T0 = datetime(2026, 3, 8, 14, 2, tzinfo=UTC)
KEY = state.source_key("drive", "0ABacktests")
ODD_NAMES = [
    'Bob\'s "final" exam\\v2.pdf',
    "CSCI-1200 E1F22 🎓.pdf",
    "(.*)+?[a-z]{3}$^|.pdf",
    "x" * 500,
    "bad \udce9 bytes.pdf",  # an undecodable byte from a local file system
    "",
]


def items(n: int, name: str = "CSCI-1200 E1F22.pdf") -> tuple[Item, ...]:
    folder = Item("f0", "CSCI", FOLDER_MIME, "0ABacktests")
    return (folder, *(Item(f"id{i:06}", name, PDF_MIME, "f0") for i in range(n)))


def full_state(things: tuple[Item, ...] | None = None, token: str = "12345") -> State:
    if things is None:
        things = tuple(Item(f"id{i}", n, PDF_MIME, "root") for i, n in enumerate(ODD_NAMES))
    drive = {"page_token": token, "fingerprint": "fp", "items": things}
    mongo = {"fingerprint": "fp", "catalog": [{"code": "CSCI"}], "problems": [{"p": 1}]}
    parts = {"renames": {"fingerprint": "fp"}, "mongo": mongo, "sheet": {"digest": "abc"}}
    return (
        State(source=KEY, drive=drive, **parts)
        .with_problems(["b", "a"])
        .with_retired({"folder-a": "64b000000000000000000001"}, T0, days=30)
        .succeeded(T0 + timedelta(seconds=4))
    )


def test_missing_state_is_an_empty_state_without_warning(tmp_path: Path) -> None:
    assert state.load(tmp_path, KEY) == (State(source=KEY), None)


def test_round_trip_keeps_every_part_and_odd_names(tmp_path: Path) -> None:
    original = full_state()
    state.save(tmp_path / "cache", original)
    loaded, warning = state.load(tmp_path / "cache", KEY)
    assert warning is None
    assert loaded == original
    assert [i.name for i in loaded.drive["items"]] == ODD_NAMES  # type: ignore[index]
    assert list(loaded.problems or ()) == ["a", "b"]


def test_each_source_has_a_folder_of_its_own(tmp_path: Path) -> None:
    """Saving one source's state leaves the others' as they were; a local path (any
    characters) gets a folder name that is safe on every file system."""
    local = state.source_key("local", "/tmp/a folder/with: odd ¿chars?")
    state.save(tmp_path, full_state())
    before = state_path(tmp_path, KEY).read_bytes()
    state.save(tmp_path, State(source=local, sheet={"skipped": True}))
    assert state_path(tmp_path, KEY).read_bytes() == before
    assert state.load(tmp_path, KEY) == (full_state(), None)
    other, _ = state.load(tmp_path, local)
    assert other.sheet == {"skipped": True}
    assert other.drive is None and other.retired_ids == {}
    assert state.folder(tmp_path, KEY).name == "drive-0ABacktests"
    assert state.folder(tmp_path, local).name.startswith("local-")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [state.folder(tmp_path, KEY).name, state.folder(tmp_path, local).name]
    )


def test_save_creates_the_cache_dir_and_leaves_no_temp_files(tmp_path: Path) -> None:
    cache = tmp_path / "deep" / "cache"
    state.save(cache, full_state())
    where = state.folder(cache, KEY)
    assert sorted(p.name for p in where.iterdir()) == ["snapshot.json", "state.json"]
    state.save(cache, State(source=KEY))  # nothing that grows with the drive: no snapshot
    assert sorted(p.name for p in where.iterdir()) == ["state.json"]
    assert state.load(cache, KEY) == (State(source=KEY), None)


def test_write_atomic_removes_the_temp_files_of_killed_writers_only(tmp_path: Path) -> None:
    """One helper replaces every file (state, last-run files, heartbeat): the temp file
    a killed process left is removed by the next write, a live writer's is not."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = tmp_path / "heartbeat.json"
    stale = tmp_path / f".heartbeat.json.{dead}.x1.tmp"
    live = tmp_path / f".heartbeat.json.{os.getppid()}.x2.tmp"
    stale.write_text("{")
    live.write_text("{")
    files.write_atomic(target, '{"at": 1}')
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, live.name])
    assert json.loads(target.read_text()) == {"at": 1}
    assert target.stat().st_mode & 0o777 == 0o644  # the health check reads it


def test_times_are_stored_in_utc_whatever_zone_they_came_in() -> None:
    eastern = timezone(timedelta(hours=-5))
    s = State().succeeded(datetime(2026, 1, 1, 9, 2, tzinfo=eastern))
    assert s.last_success == datetime(2026, 1, 1, 14, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        State().succeeded(datetime(2026, 1, 1, 9, 2))


def test_digest_sees_every_change() -> None:
    assert state.digest({"a": 1, "b": [1, 2]}) == state.digest({"a": 1, "b": [1, 2]})
    assert state.digest({"a": 1, "b": [1, 2]}) != state.digest({"a": 1, "b": [2, 1]})
    assert state.digest("bad \udce9") != state.digest("bad \udce8")


def test_retired_ids_are_forgotten_after_their_time() -> None:
    s = State().with_retired({"folder-a": "64b000000000000000000001"}, T0, days=30)
    assert s.retired_ids["folder-a"]["id"] == "64b000000000000000000001"
    later = s.with_retired({}, T0 + timedelta(days=29), days=30)
    assert later.retired_ids["folder-a"]["id"] == "64b000000000000000000001"
    gone = s.with_retired({}, T0 + timedelta(days=31), days=30)
    assert "folder-a" not in gone.retired_ids


# ---------------------------------------------------------------- bad and foreign states


def _doc(tmp_path: Path) -> dict[str, Any]:
    state.save(tmp_path, full_state())
    return json.loads(state_path(tmp_path, KEY).read_text())


BAD_FILES = {
    "empty file": lambda doc, text: "",
    "truncated in the middle": lambda doc, text: text[: len(text) // 2],
    "not JSON at all": lambda doc, text: "\x00\x01garbage",
    "not UTF-8": lambda doc, text: "\udcff",
    "a JSON list": lambda doc, text: "[1, 2, 3]",
    "another program's JSON": lambda doc, text: '{"hello": "world"}',
    "an older version": lambda doc, text: json.dumps({**doc, "version": state.VERSION - 1}),
    "a newer version": lambda doc, text: json.dumps({**doc, "version": state.VERSION + 1}),
    "a version that is a string": lambda doc, text: json.dumps({**doc, "version": "4"}),
    "a part that is a list": lambda doc, text: json.dumps({**doc, "mongo": []}),
    "a part that is text": lambda doc, text: json.dumps({**doc, "sheet": "digest"}),
    "a bad time": lambda doc, text: json.dumps({**doc, "last_success": "yesterday"}),
    "a naive time": lambda doc, text: json.dumps({**doc, "last_success": "2026-01-01T00:00:00"}),
    "no snapshot named": lambda doc, text: json.dumps({**doc, "snapshot": None}),
    "deeply nested": lambda doc, text: "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_state_is_a_warning_and_a_fresh_start(tmp_path: Path, case: str) -> None:
    doc = _doc(tmp_path)
    path = state_path(tmp_path, KEY)
    path.write_bytes(BAD_FILES[case](doc, json.dumps(doc)).encode("utf-8", "surrogateescape"))
    loaded, warning = state.load(tmp_path, KEY)
    assert loaded == State(source=KEY)
    assert warning is not None and str(path) in warning and "rescans" in warning


@pytest.mark.parametrize("damage", ["missing", "garbage", "another drive's"])
def test_a_bad_snapshot_is_a_warning_and_a_fresh_start(tmp_path: Path, damage: str) -> None:
    state.save(tmp_path, full_state())
    snapshot = state.folder(tmp_path, KEY) / "snapshot.json"
    if damage == "missing":
        snapshot.unlink()
    elif damage == "garbage":
        snapshot.write_bytes(b'{"state": trunc')
    else:
        state.save(tmp_path / "other", full_state(items(3)))
        os.replace(state.folder(tmp_path / "other", KEY) / "snapshot.json", snapshot)
    loaded, warning = state.load(tmp_path, KEY)
    if damage == "another drive's":  # a whole state of its own, never a mix of two
        assert warning is None and loaded == full_state(items(3))
    else:
        assert loaded == State(source=KEY)
        assert warning is not None and "rescans" in warning


def test_an_unreadable_state_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    state_path(tmp_path, KEY).mkdir(parents=True)
    loaded, warning = state.load(tmp_path, KEY)
    assert loaded == State(source=KEY)
    assert warning is not None and "cannot be read" in warning


def test_an_unwritable_cache_dir_is_a_run_error_and_keeps_the_old_state(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    state.save(cache, full_state())
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")
    with pytest.raises(RunError, match="cannot write the state file") as info:
        state.save(blocked, full_state())
    assert info.value.exit_code == 1
    if os.geteuid() != 0:  # root ignores permission bits
        state.folder(cache, KEY).chmod(0o500)
        try:
            with pytest.raises(RunError, match="CACHE_DIR"):
                state.save(cache, full_state(items(2)))
        finally:
            state.folder(cache, KEY).chmod(0o700)
    assert state.load(cache, KEY) == (full_state(), None)


def test_data_that_is_not_json_fails_before_touching_the_files(tmp_path: Path) -> None:
    state.save(tmp_path, full_state())
    where = state.folder(tmp_path, KEY)
    before = {p.name: p.read_bytes() for p in where.iterdir()}
    with pytest.raises(TypeError):
        state.save(tmp_path, replace(full_state(), sheet={"when": object()}))
    with pytest.raises(ValueError):
        state.save(tmp_path, replace(full_state(items(2)), sheet={"x": float("nan")}))
    assert {p.name: p.read_bytes() for p in where.iterdir()} == before


# ---------------------------------------------------------------- crashes


class _Crash(BaseException):
    """The process dies here."""


def _dying(real: Any, step: Any) -> Any:
    return lambda *args, **kwargs: step(lambda: real(*args, **kwargs))


def test_a_crash_at_every_point_of_a_save_leaves_the_old_or_the_new_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file system step of a save that changes both files (temp file, write,
    fsync, rename, directory fsync; snapshot.json, then state.json) is a place to die."""
    old, new = full_state(items(50), "old"), full_state(items(60, "renamed.pdf"), "new")
    seen = []
    for at in range(100):
        cache = tmp_path / str(at)
        state.save(cache, old)
        steps = [0]

        def step(real: Any, at: int = at, steps: list[int] = steps) -> Any:
            steps[0] += 1
            if steps[0] > at:
                raise _Crash
            return real()

        for module, name in [
            (files.tempfile, "mkstemp"),
            (files.os, "fsync"),
            (files.os, "replace"),
        ]:
            monkeypatch.setattr(module, name, _dying(getattr(module, name), step))
        crashed = True
        try:
            state.save(cache, new)
            crashed = False
        except _Crash:
            pass
        monkeypatch.undo()
        loaded, warning = state.load(cache, KEY)
        assert warning is None
        assert loaded in (old, new), at
        seen.append(loaded == new)
        if not crashed:
            break
    assert seen[0] is False and seen[-1] is True and len(seen) > 8


WRITER = """
import sys
from backtest_compilation import state
from backtest_compilation.tree import Item
def of(token):
    items = tuple(Item(str(i), token * 40, "application/pdf", "root") for i in range(20_000))
    drive = {"page_token": token, "items": items}
    mongo = {"page_token": token, "catalog": [token] * 20_000}
    return state.State(source="drive:x", drive=drive, mongo=mongo)
states = [of("A"), of("B")]
print("ready", flush=True)
for i in range(100_000):
    state.save(sys.argv[1], states[i % 2])
"""


def test_a_process_killed_while_saving_leaves_a_whole_state(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    path = state_path(tmp_path, "drive:x")
    deadline = time.monotonic() + 20
    while not path.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.3)  # somewhere in the middle of a save
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    loaded, warning = state.load(tmp_path, "drive:x")
    assert warning is None and loaded.drive is not None and loaded.mongo is not None
    token = loaded.drive["page_token"]
    assert token in ("A", "B") and loaded.mongo["page_token"] == token
    assert {i.name for i in loaded.drive["items"]} == {token * 40}  # never a mix
    assert len(loaded.drive["items"]) == 20_000


# ---------------------------------------------------------------- cost follows the changes


def _io() -> tuple[int, int]:
    """Bytes this process read and wrote through the file system so far (Linux)."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["rchar"]), int(fields["wchar"])


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="Linux only")
def test_an_unchanged_run_reads_and_writes_only_the_small_file(tmp_path: Path) -> None:
    """Load, note the new changes token, save: the bytes read and written through the
    file system are state.json's, whatever the size of snapshot.json."""
    state.save(tmp_path, full_state(items(20_000)))
    where = state.folder(tmp_path, KEY)
    big = (where / "snapshot.json").stat()
    small = (where / "state.json").stat().st_size
    assert big.st_size > 100 * small
    read0, written0 = _io()
    loaded, _ = state.load(tmp_path, KEY)
    assert loaded.drive is not None
    drive = state.replaced(loaded.drive, page_token="67890")
    state.save(tmp_path, replace(loaded, drive=drive))
    read, written = _io()
    assert read - read0 < 2 * small + 4096, "snapshot.json was read"
    assert written - written0 < 2 * small + 4096, "snapshot.json was written"
    after = (where / "snapshot.json").stat()
    assert (after.st_ino, after.st_mtime_ns) == (big.st_ino, big.st_mtime_ns)
    again, _ = state.load(tmp_path, KEY)
    assert again.drive is not None and again.drive["page_token"] == "67890"
    assert again == replace(full_state(items(20_000)), drive={**again.drive})


def test_a_changed_run_writes_the_snapshot_once(tmp_path: Path) -> None:
    """The same values saved again (the saves after each step of one run, each given
    the state the last one returned) do not rewrite snapshot.json."""
    state.save(tmp_path, full_state(items(100)))
    snapshot = state.folder(tmp_path, KEY) / "snapshot.json"
    changed = state.save(tmp_path, full_state(items(200)))
    stamp = snapshot.stat()
    state.save(tmp_path, replace(changed, sheet={"digest": "new"}))
    state.save(tmp_path, changed.with_problems(["a", "b"]))  # equal, not the same object
    state.save(tmp_path, changed.succeeded(T0 + timedelta(days=1)))
    after = snapshot.stat()
    assert (after.st_ino, after.st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)
    assert state.load(tmp_path, KEY)[0] == changed.succeeded(T0 + timedelta(days=1))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(
    drive=st.dictionaries(st.text(), json_values, max_size=5),
    sheet=st.none() | st.dictionaries(st.text(), json_values, max_size=5),
    names=st.lists(st.text(), max_size=5),
    seconds=st.integers(min_value=0, max_value=10**9),
)
def test_any_json_data_round_trips(tmp_path_factory, drive, sheet, names, seconds) -> None:
    cache = tmp_path_factory.mktemp("prop")
    at = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    things = tuple(Item(f"i{n}", name, PDF_MIME, "root") for n, name in enumerate(names))
    s = State(source=KEY, drive={**drive, "items": things}, sheet=sheet).succeeded(at)
    state.save(cache, s)
    assert state.load(cache, KEY) == (s, None)


_OPENED: list[tuple[str, int]] = []  # (path, flags) of the files this process opens


def _note_open(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and isinstance(args[0], str | Path):
        _OPENED.append((str(args[0]), args[2] if isinstance(args[2], int) else 0))


sys.addaudithook(_note_open)


def _opened(world: FaultWorld, **options: Any) -> tuple[Any, list[str], list[str]]:
    """A run, and the state files it opened to read and (as temp files) to write."""
    del _OPENED[:]
    outcome = world.run(**options)
    where = str(state_path(world.cache_dir).parent)
    mine = [(os.path.basename(p), f) for p, f in _OPENED if os.path.dirname(p) == where]
    read = [n for n, f in mine if f & (os.O_WRONLY | os.O_RDWR) == 0 and n.endswith(".json")]
    written = [n.split(".")[1] for n, f in mine if n.endswith(".tmp")]
    return outcome, read, written


@pytest.mark.mongo_server
def test_an_unchanged_run_rewrites_only_the_small_file(fault_world: FaultWorld) -> None:
    """Through `pipeline.run` on the Drive emulator: a run with changes writes
    snapshot.json once (after MongoDB and the renames); the unchanged run after it
    replaces state.json (the new changes token) and leaves snapshot.json as it was."""
    world = fault_world
    _, _, written = _opened(world)
    assert written.count("snapshot") == 1, written
    _, _, written = _opened(world)  # the changes feed reports the first run's renames
    assert written.count("snapshot") <= 1, written  # none: they were remembered
    where = state_path(world.cache_dir).parent
    before = {p.name: p.stat() for p in where.iterdir()}
    assert sorted(before) == ["snapshot.json", "state.json"]
    outcome, read, written = _opened(world)
    assert outcome.summary.get("unchanged") is True
    assert (read, written) == (["state.json"], ["state"])
    outcome, read, written = _opened(world)
    assert outcome.summary.get("unchanged") is True
    assert (read, written) == (["state.json"], ["state"])
    after = {p.name: p.stat() for p in where.iterdir()}
    stamp = lambda s: (s.st_ino, s.st_size, s.st_mtime_ns)  # noqa: E731
    assert stamp(after["snapshot.json"]) == stamp(before["snapshot.json"])
    assert stamp(after["state.json"]) != stamp(before["state.json"])
    world.drive.trash(next(i for i, f in world.drive.files.items() if f.name.endswith(".pdf")))
    outcome, _, written = _opened(world)
    assert "unchanged" not in outcome.summary and written.count("snapshot") == 1, written
    assert stamp((where / "snapshot.json").stat()) != stamp(after["snapshot.json"])
