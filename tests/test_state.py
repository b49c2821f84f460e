"""The state file: round trip, atomic replace, and bad files treated as absent (contract §5.7)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest_compilation import state
from backtest_compilation.errors import RunError
from backtest_compilation.state import Part, State
from tests.support.isolation import environment

T0 = datetime(2026, 3, 8, 14, 2, tzinfo=UTC)
ODD_NAMES = [
    'Bob\'s "final" exam\\v2.pdf',
    "CSCI-1200 E1F22 🎓.pdf",
    "(.*)+?[a-z]{3}$^|.pdf",
    "x" * 500,
    "bad \udce9 bytes.pdf",  # an undecodable byte from a local file system
    "",
]


def full_state() -> State:
    snapshot = {
        "token": "12345",
        "items": [
            {"id": f"id{i}", "name": name, "parent": "root"} for i, name in enumerate(ODD_NAMES)
        ],
    }
    return (
        State()
        .with_drive(snapshot, T0)
        .with_sink("renames", {"done": ["id1"]}, T0 + timedelta(seconds=1))
        .with_sink("mongo", {"digest": state.digest({"a": 1})}, T0 + timedelta(seconds=2))
        .with_sink("sheet", {"digest": "abc"}, T0 + timedelta(seconds=3))
        .succeeded(T0 + timedelta(seconds=4))
    )


def test_missing_file_is_an_empty_state_without_warning(tmp_path: Path) -> None:
    assert state.load(tmp_path / "state.json") == (State(), None)


def test_round_trip_keeps_every_part_and_odd_names(tmp_path: Path) -> None:
    path = state.path_in(tmp_path / "cache")
    original = full_state()
    state.save(path, original, now=T0)
    loaded, warning = state.load(path)
    assert warning is None
    assert loaded == original
    assert [i["name"] for i in loaded.drive.data["items"]] == ODD_NAMES  # type: ignore[union-attr]


def test_save_creates_the_cache_dir_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "cache" / "state.json"
    state.save(path, full_state())
    state.save(path, State())
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]
    assert state.load(path) == (State(), None)


def test_times_are_stored_in_utc_whatever_zone_they_came_in() -> None:
    eastern = timezone(timedelta(hours=-5))
    s = State().succeeded(datetime(2026, 1, 1, 9, 2, tzinfo=eastern))
    assert s.last_success == datetime(2026, 1, 1, 14, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        State().succeeded(datetime(2026, 1, 1, 9, 2))


def test_replacing_one_sink_leaves_the_others_and_the_original_untouched() -> None:
    before = full_state()
    after = before.with_sink("sheet", {"digest": "new"}, T0 + timedelta(hours=1))
    assert after.sheet == Part({"digest": "new"}, T0 + timedelta(hours=1))
    assert (after.drive, after.renames, after.mongo) == (before.drive, before.renames, before.mongo)
    assert before.sheet == Part({"digest": "abc"}, T0 + timedelta(seconds=3))
    assert after.without("drive").drive is None
    with pytest.raises(ValueError, match="unknown sink"):
        before.with_sink("website", {}, T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown part"):
        before.without("sheets")


def test_digest_ignores_key_order_and_sees_every_change() -> None:
    assert state.digest({"a": 1, "b": [1, 2]}) == state.digest({"b": [1, 2], "a": 1})
    assert state.digest({"a": 1, "b": [1, 2]}) != state.digest({"a": 1, "b": [2, 1]})


def _good_doc(tmp_path: Path) -> dict:
    path = tmp_path / "good.json"
    state.save(path, full_state())
    return json.loads(path.read_text())


BAD_FILES = {
    "empty file": lambda doc, text: "",
    "truncated in the middle": lambda doc, text: text[: len(text) // 2],
    "not JSON at all": lambda doc, text: "\x00\x01garbage",
    "not UTF-8": lambda doc, text: "\udcff",
    "a JSON list": lambda doc, text: "[1, 2, 3]",
    "another program's JSON": lambda doc, text: '{"hello": "world"}',
    "an older version": lambda doc, text: json.dumps({**doc, "version": 0}),
    "a newer version": lambda doc, text: json.dumps({**doc, "version": 2}),
    "a version that is a string": lambda doc, text: json.dumps({**doc, "version": "1"}),
    "a part that is a list": lambda doc, text: json.dumps({**doc, "mongo": []}),
    "a part without data": lambda doc, text: json.dumps({**doc, "sheet": {"at": doc["saved_at"]}}),
    "a part with a bad time": lambda doc, text: json.dumps(
        {**doc, "drive": {**doc["drive"], "at": "yesterday"}}
    ),
    "a naive time": lambda doc, text: json.dumps({**doc, "last_success": "2026-01-01T00:00:00"}),
    "deeply nested": lambda doc, text: "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_is_reported_and_treated_as_absent(tmp_path: Path, case: str) -> None:
    doc = _good_doc(tmp_path)
    text = json.dumps(doc)
    path = tmp_path / "state.json"
    content = BAD_FILES[case](doc, text)
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    loaded, warning = state.load(path)
    assert loaded == State()
    assert warning is not None and str(path) in warning and "rescans" in warning


def test_an_unreadable_path_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "state.json").mkdir()
    loaded, warning = state.load(tmp_path / "state.json")
    assert loaded == State()
    assert warning is not None and "cannot be read" in warning


def test_an_unwritable_cache_dir_is_a_run_error_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "state.json"
    state.save(path, full_state())
    before = path.read_bytes()
    # A directory where the temp file would go is replaced by a file: writing must fail.
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")
    with pytest.raises(RunError, match="cannot write the state file") as info:
        state.save(blocked / "state.json", full_state())
    assert info.value.exit_code == 1
    if os.geteuid() != 0:  # root ignores permission bits
        path.parent.chmod(0o500)
        try:
            with pytest.raises(RunError, match="CACHE_DIR"):
                state.save(path, State())
        finally:
            path.parent.chmod(0o700)
    assert path.read_bytes() == before


def test_data_that_is_not_json_fails_before_touching_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state.save(path, full_state())
    before = path.read_bytes()
    with pytest.raises(TypeError):
        state.save(path, State().with_drive({"when": object()}, T0))
    with pytest.raises(ValueError):
        state.save(path, State().with_drive({"x": float("nan")}, T0))
    assert path.read_bytes() == before
    # The drive items live in a file of their own (contract §5.10), named by the header.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state-drive-1.json", "state.json"]


def test_a_crash_during_the_write_leaves_the_previous_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    state.save(path, full_state())

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state.os, "replace", crash)
    with pytest.raises(RunError, match="No space left"):
        state.save(path, State())
    monkeypatch.undo()
    assert state.load(path) == (full_state(), None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state-drive-1.json", "state.json"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(
    drive=st.dictionaries(st.text(), json_values, max_size=5),
    sheet=st.none() | st.dictionaries(st.text(), json_values, max_size=5),
    seconds=st.integers(min_value=0, max_value=10**9),
)
def test_any_json_data_round_trips(tmp_path_factory, drive, sheet, seconds) -> None:
    path = tmp_path_factory.mktemp("prop") / "state.json"
    at = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    s = State().with_drive(drive, at)
    if sheet is not None:
        s = s.with_sink("sheet", sheet, at)
    state.save(path, s)
    assert state.load(path) == (s, None)


WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from backtest_compilation import state
path = Path(sys.argv[1])
at = datetime(2026, 1, 1, tzinfo=UTC)
big = {"items": [{"id": str(i), "name": "x" * 40} for i in range(20_000)]}
states = [state.State().with_drive({**big, "token": t}, at) for t in ("A", "B")]
print("ready", flush=True)
for i in range(100_000):
    state.save(path, states[i % 2])
"""


def test_a_process_killed_while_saving_leaves_a_whole_state(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "state.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 20
    while not path.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.3)  # somewhere in the middle of a save
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    loaded, warning = state.load(path)
    assert warning is None
    assert loaded.drive is not None and loaded.drive.data["token"] in ("A", "B")
    assert len(loaded.drive.data["items"]) == 20_000


# ---------------------------------------------------------------- one record per source


def test_each_source_has_its_own_record_and_saving_one_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    drive_key = state.source_key("drive", "0ABacktests")
    local_key = state.source_key("local", "/tmp/try")
    drive = replace(full_state(), source=drive_key)
    state.save(path, drive)
    local, warning = state.load(path, local_key)
    assert warning is None and local.drive is None and local.mongo is None  # nothing known
    state.save(path, local.with_sink("sheet", {"skipped": True}, T0))
    again, _ = state.load(path, drive_key)
    assert replace(again, others={}) == drive  # the Drive source's memory is intact
    other, _ = state.load(path, local_key)
    assert other.sheet is not None and other.sheet.data == {"skipped": True}


def test_a_file_from_before_sources_loads_as_the_record_of_its_drive(tmp_path: Path) -> None:
    """State files written before sources were told apart still load (migrated)."""
    path = tmp_path / "state.json"
    doc = {
        "format": state.FORMAT,
        "version": 1,
        "saved_at": T0.isoformat(),
        "last_success": T0.isoformat(),
        "drive": {"at": T0.isoformat(), "data": {"root_id": "0ABacktests", "items": []}},
        "renames": None,
        "mongo": {"at": T0.isoformat(), "data": {"fingerprint": "x"}},
        "sheet": None,
    }
    path.write_text(json.dumps(doc))
    mine, warning = state.load(path, state.source_key("drive", "0ABacktests"))
    assert warning is None and mine.mongo is not None and mine.last_success == T0
    theirs, _ = state.load(path, state.source_key("drive", "1SomeOtherFolder"))
    assert theirs.mongo is None and theirs.last_success is None


def test_retired_ids_are_forgotten_after_their_time() -> None:
    s = State().with_retired({"folder-a": "64b000000000000000000001"}, T0, days=30)
    assert s.retired_id("folder-a") == "64b000000000000000000001"
    later = s.with_retired({}, T0 + timedelta(days=29), days=30)
    assert later.retired_id("folder-a") == "64b000000000000000000001"
    gone = s.with_retired({}, T0 + timedelta(days=31), days=30)
    assert gone.retired_id("folder-a") is None
