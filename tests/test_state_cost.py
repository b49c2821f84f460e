"""Cost follows the changes (contract §5.10): an unchanged run neither reads nor writes the
saved drive items, a run with changes appends what changed, every save is crash-safe, and
files saved in the earlier layouts still load."""

from __future__ import annotations

import builtins
import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from backtest_compilation import pipeline, sample, sources, state
from backtest_compilation.cli import run_config
from backtest_compilation.drive import DriveSource
from backtest_compilation.local import LocalFolderSource
from backtest_compilation.settings import Settings
from backtest_compilation.state import State
from backtest_compilation.store import Store
from emulators.drive import DriveEmulator

T0 = datetime(2026, 3, 8, 14, 2, tzinfo=UTC)
NOW = datetime(2026, 11, 21, 15, 2, tzinfo=UTC)


def _items(n: int) -> list[list[str]]:
    """`n` items shaped like the Drive source's, in id order (as it keeps them)."""
    return [
        [f"1{i:032x}", f"CSCI-1200 E{i % 9 + 1}F22.pdf", "application/pdf", "0c"] for i in range(n)
    ]


def _snapshot_files(directory: Path) -> dict[str, tuple[int, int, int]]:
    """Each file of the state beside the header (drive snapshot, big sink parts) with its
    (inode, size, mtime): a read leaves them, a write does not."""
    return {
        p.name: (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.iterdir())
        if p.name.startswith("state-")
    }


def _header(path: Path) -> dict[str, Any]:
    return json.loads(path.read_bytes())


def _forbid_snapshot_io(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, opening a snapshot file (base, journal or their temp files) to read
    or to write fails; the list returned collects the attempts."""
    tried: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def guard(file: Any) -> None:
        if isinstance(file, (str, bytes, os.PathLike)):
            name = os.fsdecode(file)
            if "-drive-" in os.path.basename(name):
                tried.append(name)
                raise AssertionError(f"a snapshot file was opened: {name}")

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        guard(file)
        return real_open(file, *args, **kwargs)

    def guarded_os_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        guard(file)
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    return tried


def test_items_are_read_only_when_asked_for_and_copied_unparsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    items = [[f"id{i}", f"name {i}", "application/pdf", "root"] for i in range(1000)]
    state.save(path, State().with_drive({"page_token": "7", "items": items}, T0))
    header = path.read_bytes()
    # The header: no items in it, only the reference to their files.
    assert len(header) < 500 and b"name 1" not in header
    loaded, warning = state.load(path)
    assert warning is None and loaded.drive is not None
    data = loaded.drive.data
    assert isinstance(data, state.LazyItems) and data["page_token"] == "7"

    def no_parsing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the items were parsed")

    # A save that changes only the header leaves the items where they are.
    files = _snapshot_files(tmp_path)
    monkeypatch.setattr(state.json, "loads", no_parsing)
    again = loaded.with_drive(data.updated(page_token="8"), T0 + timedelta(hours=1))
    state.save(path, again)
    state.save(path, again.succeeded(T0 + timedelta(hours=1)))  # twice: nothing moved
    monkeypatch.undo()
    assert not data.loaded
    assert _snapshot_files(tmp_path) == files
    reread, warning = state.load(path)
    assert warning is None and reread.drive is not None
    assert reread.drive.data["page_token"] == "8"
    assert reread.drive.data["items"] == items


def test_damaged_items_are_a_value_error_when_read_not_a_failed_load(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state.save(path, State().with_drive({"items": [["a", "b", "c", "d"]] * 50}, T0))
    base = tmp_path / "state-drive-1.json"
    base.write_bytes(base.read_bytes().replace(b'"b"', b'"b', 1))
    loaded, warning = state.load(path)
    assert warning is None and loaded.drive is not None
    with pytest.raises(ValueError, match="cannot be read"):
        loaded.drive.data["items"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda base, journal: base.unlink(),
        lambda base, journal: base.write_bytes(base.read_bytes()[:-5] + b"]]]]]"),
        lambda base, journal: base.write_bytes(base.read_bytes() + b" "),
        lambda base, journal: journal.unlink(),
        lambda base, journal: journal.write_bytes(journal.read_bytes()[:-3]),
        lambda base, journal: journal.write_bytes(b"x" * journal.stat().st_size),
    ],
    ids=[
        "base-missing",
        "base-altered",
        "base-longer",
        "journal-missing",
        "journal-short",
        "journal-garbage",
    ],
)
def test_damaged_or_missing_snapshot_files_are_a_value_error_never_a_mix(
    tmp_path: Path, damage: Any
) -> None:
    path = tmp_path / "state.json"
    items = _items(400)
    state.save(path, State().with_drive({"items": items}, T0))
    loaded, _ = state.load(path)
    assert loaded.drive is not None and loaded.drive.data["items"] == items
    changed = [*items[1:], ["2new", "n.pdf", "application/pdf", "0c"]]
    state.save(path, loaded.with_drive({"items": changed}, T0))
    assert (tmp_path / "state-drive-1.changes").stat().st_size > 0
    damage(tmp_path / "state-drive-1.json", tmp_path / "state-drive-1.changes")
    reread, warning = state.load(path)
    assert warning is None and reread.drive is not None
    with pytest.raises(ValueError, match="cannot be read"):
        reread.drive.data["items"]


def test_a_file_in_the_one_line_layout_is_read_and_rewritten_in_two(tmp_path: Path) -> None:
    """Rewritten in the current layout: a header of one line and the items' base file."""
    path = tmp_path / "state.json"
    doc = json.loads(_one_line(tmp_path))
    path.write_text(json.dumps(doc))
    loaded, warning = state.load(path)
    assert warning is None and loaded.drive is not None
    assert loaded.drive.data["items"] == [["x", "y", "z", "w"]]
    state.save(path, loaded)
    assert path.read_bytes().count(b"\n") == 0 and b'"x"' not in path.read_bytes()
    assert json.loads((tmp_path / "state-drive-1.json").read_bytes()) == [["x", "y", "z", "w"]]
    assert state.load(path) == (loaded, None)


def _one_line(tmp_path: Path) -> str:
    return json.dumps(
        {
            "format": state.FORMAT,
            "version": 1,
            "saved_at": T0.isoformat(),
            "source": "drive:0AB",
            "last_success": T0.isoformat(),
            "drive": {"at": T0.isoformat(), "data": {"items": [["x", "y", "z", "w"]]}},
            "renames": None,
            "mongo": None,
            "sheet": None,
            "problems": None,
        }
    )


def _two_lines(items: list[Any], **header: Any) -> bytes:
    """A state file as the previous version wrote it: the drive items on a second line."""
    doc = json.loads(_one_line(Path()))
    drive = doc.pop("drive")
    doc["drive"] = {**drive, "data": header}  # the last key: the items end the file
    text = json.dumps(doc, separators=(",", ":")).encode()
    assert text.endswith(b"}}}")
    items_text = json.dumps(items, separators=(",", ":")).encode()
    return text[:-3] + (b"," if header else b"") + b'"items":\n' + items_text + b"}}}"


def test_a_file_in_the_two_line_layout_moves_its_items_unparsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    items = _items(300)
    path.write_bytes(_two_lines(items, page_token="5"))
    loaded, warning = state.load(path)
    assert warning is None and loaded.drive is not None
    assert loaded.drive.data["page_token"] == "5"

    def no_parsing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the items were parsed")

    monkeypatch.setattr(state.json, "loads", no_parsing)
    state.save(path, loaded.with_drive(loaded.drive.data.updated(page_token="6"), T0))  # type: ignore[union-attr]
    state.save(path, loaded.succeeded(T0))  # the same items, already moved
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state-drive-1.json", "state.json"]
    assert path.read_bytes().count(b"\n") == 0
    reread, warning = state.load(path)
    assert warning is None and reread.drive is not None and reread.last_success == T0
    assert reread.drive.data["items"] == items


def test_a_truncated_two_line_file_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(_two_lines(_items(10))[:-40])
    loaded, warning = state.load(path)
    assert loaded == State() and warning is not None and "rescans" in warning


# ---------------------------------------------------------------- cost of a save


def test_an_unchanged_save_neither_reads_nor_writes_the_snapshot_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    items = _items(5000)
    state.save(path, State().with_drive({"page_token": "1", "items": items}, T0))
    loaded, _ = state.load(path)
    assert loaded.drive is not None
    loaded.drive.data["items"]
    state.save(path, loaded.with_drive({"page_token": "2", "items": items[1:]}, T0))
    files = _snapshot_files(tmp_path)
    assert sorted(files) == ["state-drive-1.changes", "state-drive-1.json"]
    header_size = path.stat().st_size
    tried = _forbid_snapshot_io(monkeypatch)
    loaded, warning = state.load(path)
    assert warning is None and loaded.drive is not None
    later = T0 + timedelta(hours=1)
    again = loaded.with_drive(loaded.drive.data.updated(page_token="3"), later)  # type: ignore[attr-defined]
    state.save(path, again)
    for sink in state.SINKS:
        again = again.with_sink(sink, {"fingerprint": "f"}, later)
        state.save(path, again)
    monkeypatch.undo()
    assert tried == []
    assert _snapshot_files(tmp_path) == files  # same inodes, sizes and times
    assert path.stat().st_size < header_size + 200  # the header: small, whatever the drive
    reread, warning = state.load(path)
    assert warning is None and reread == again
    assert reread.drive is not None and reread.drive.data["items"] == items[1:]


def test_a_save_with_n_changes_appends_bytes_in_proportion_to_n(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    items = _items(20_000)
    state.save(path, State().with_drive({"page_token": "1", "items": items}, T0))
    base = tmp_path / "state-drive-1.json"
    journal = tmp_path / "state-drive-1.changes"
    base_before = _snapshot_files(tmp_path)[base.name]
    growth = []
    for n in (1, 10, 100):
        loaded, _ = state.load(path)
        assert loaded.drive is not None
        old = loaded.drive.data["items"]
        new = [
            [row[0], f"v{n:03d} {items[i][1]}", *row[2:]] if i % 97 == 0 and i // 97 < n else row
            for i, row in enumerate(old)
        ]
        assert sum(a != b for a, b in zip(old, new, strict=True)) == n
        before = journal.stat().st_size if journal.exists() else 0
        state.save(path, loaded.with_drive({"page_token": str(n), "items": new}, T0))
        growth.append(journal.stat().st_size - before)
        reread, _ = state.load(path)
        assert reread.drive is not None and reread.drive.data["items"] == new
        assert reread.drive.data["page_token"] == str(n)
    # The base is never rewritten; the journal grows by about one item per change.
    assert _snapshot_files(tmp_path)[base.name] == base_before
    # One record: `{"put":[...],"del":[]}` and a newline around the changed items, each
    # a little longer than the original ("v001 ").
    per_item = len(json.dumps(items[0], separators=(",", ":"))) + len("v001 ") + 1
    assert [g - 19 for g in growth] == [n * per_item for n in (1, 10, 100)], growth
    assert growth[2] * 50 < base.stat().st_size  # 100 changes: a small fraction of the base
    # Additions and removals are change records too.
    loaded, _ = state.load(path)
    assert loaded.drive is not None
    current = loaded.drive.data["items"]
    fewer = [row for row in current if row[0] != current[5][0]] + [
        ["2" + "f" * 32, "new.pdf", "application/pdf", "0c"]
    ]
    before = journal.stat().st_size
    state.save(path, loaded.with_drive({"page_token": "x", "items": fewer}, T0))
    assert journal.stat().st_size - before < 2 * per_item + 40  # one added, one id removed
    assert state.load(path)[0].drive.data["items"] == fewer  # type: ignore[union-attr]


def test_the_saves_of_one_run_append_a_change_set_once(tmp_path: Path) -> None:
    """The pipeline saves the same snapshot after each sink: only the first appends."""
    path = tmp_path / "state.json"
    state.save(path, State().with_drive({"items": _items(1000)}, T0))
    loaded, _ = state.load(path)
    assert loaded.drive is not None
    new = [*loaded.drive.data["items"][:-1], ["2" + "0" * 32, "added.pdf", "application/pdf", "0c"]]
    after = loaded.with_drive({"items": new}, T0)
    journal = tmp_path / "state-drive-1.changes"
    state.save(path, after)
    size = journal.stat().st_size
    for sink in state.SINKS:
        after = after.with_sink(sink, {"ok": True}, T0)
        state.save(path, after)
    assert journal.stat().st_size == size
    assert state.load(path)[0] == after


def test_a_journal_past_a_quarter_of_its_base_is_compacted_into_a_new_generation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    items = _items(200)
    state.save(path, State().with_drive({"items": items}, T0))
    base_size = (tmp_path / "state-drive-1.json").stat().st_size
    saves = 0
    while True:
        loaded, _ = state.load(path)
        assert loaded.drive is not None
        items = [
            [row[0], row[1] + "x", *row[2:]] if i == saves % 200 else row
            for i, row in enumerate(loaded.drive.data["items"])
        ]
        state.save(path, loaded.with_drive({"items": items}, T0))
        saves += 1
        names = sorted(p.name for p in tmp_path.iterdir())
        if "state-drive-2.json" in names:
            break
        assert names == ["state-drive-1.changes", "state-drive-1.json", "state.json"]
        assert (
            tmp_path / "state-drive-1.changes"
        ).stat().st_size <= base_size * state.COMPACT_FRACTION
    # The old generation is gone once the header names the new one.
    assert names == ["state-drive-2.json", "state.json"]
    assert saves > 5
    assert state.load(path)[0].drive.data["items"] == items  # type: ignore[union-attr]


def test_a_full_listing_starts_a_new_generation(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state.save(path, State().with_drive({"listed_at": "a", "items": _items(100)}, T0))
    loaded, _ = state.load(path)
    assert loaded.drive is not None
    items = loaded.drive.data["items"]
    state.save(path, loaded.with_drive({"listed_at": "a", "items": items[1:]}, T0))
    assert (tmp_path / "state-drive-1.changes").exists()
    state.save(path, loaded.with_drive({"listed_at": "b", "items": items[2:]}, T0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state-drive-2.json", "state.json"]
    assert state.load(path)[0].drive.data == {"listed_at": "b", "items": items[2:]}  # type: ignore[union-attr]


def test_items_in_no_particular_order_round_trip(tmp_path: Path) -> None:
    """Items not in id order (and without ids) round-trip exactly, order included."""
    path = tmp_path / "state.json"
    rows = [[f"id{i}", "n", "m", "p"] for i in (5, 3, 9, 1)]
    state.save(path, State().with_drive({"items": rows}, T0))
    for new in (
        [rows[1], rows[0], rows[2], rows[3]],  # reordered
        [*rows[:3], ["id0", "x", "m", "p"]],  # an id that replaying would put last
        [["id0", "x", "m", "p"], *rows],  # ... or first
        [{"name": "no id"}, 3, "text"],  # no ids at all
        [rows[0], rows[0]],  # a duplicate
        [],
    ):
        loaded, _ = state.load(path)
        assert loaded.drive is not None
        loaded.drive.data["items"]
        state.save(path, loaded.with_drive({"items": new}, T0))
        assert state.load(path)[0].drive.data["items"] == new  # type: ignore[union-attr]


# ---------------------------------------------------------------- crashes inside a save


class Crash(BaseException):
    """The process dying at this point (not an error the save could handle)."""


def _crash_after(monkeypatch: pytest.MonkeyPatch, step: str, *, before: bool = False) -> None:
    real = getattr(state, step)

    def dying(*args: Any) -> None:
        if not before:
            real(*args)
        raise Crash(step)

    monkeypatch.setattr(state, step, dying)


def _world(tmp_path: Path) -> tuple[Path, list[Any]]:
    path = tmp_path / "state.json"
    items = _items(400)
    state.save(path, State().with_drive({"page_token": "1", "items": items}, T0))
    return path, items


@pytest.mark.parametrize(
    ("step", "before", "compacting", "survivor"),
    [
        ("_append", True, False, "old"),  # dies before the record is whole
        ("_append", False, False, "old"),  # record fsynced, header not replaced
        ("_write_base", True, True, "old"),  # dies writing the new base
        ("_write_base", False, True, "old"),  # new base written, header not switched
        ("_write_header", True, False, "old"),
        ("_write_header", True, True, "old"),
        ("_write_header", False, False, "new"),  # header replaced, nothing after it
        ("_write_header", False, True, "new"),  # header switched, old generation still there
        ("_remove_stale", True, True, "new"),
    ],
)
def test_a_crash_at_any_step_of_a_save_leaves_the_old_or_the_new_state_and_converges(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    before: bool,
    compacting: bool,
    survivor: str,
) -> None:
    path, items = _world(tmp_path)
    old = state.load(path)[0]
    assert old.drive is not None
    if compacting:  # a new listing: a new base
        new_items = items[100:]
        new = old.with_drive({"page_token": "2", "listed_at": "now", "items": new_items}, T0)
    else:
        new_items = [*items[:7], *items[8:], ["2" + "0" * 32, "z.pdf", "application/pdf", "0c"]]
        old.drive.data["items"]
        new = old.with_drive({"page_token": "2", "items": new_items}, T0)
    _crash_after(monkeypatch, step, before=before)
    with pytest.raises(Crash):
        state.save(path, new.succeeded(T0))
    monkeypatch.undo()
    loaded, warning = state.load(path)
    assert warning is None and loaded.drive is not None
    expected = (items, "1", None) if survivor == "old" else (new_items, "2", T0)
    assert (
        loaded.drive.data["items"],
        loaded.drive.data["page_token"],
        loaded.last_success,
    ) == expected
    # The next run converges: its save is whole, and it leaves exactly the named files.
    latest = [*expected[0][3:], ["3" + "0" * 32, "y.pdf", "application/pdf", "0c"]]
    state.save(path, loaded.with_drive({"page_token": "3", "items": latest}, T0))
    again, warning = state.load(path)
    assert warning is None and again.drive is not None
    assert again.drive.data["items"] == latest
    ref = _header(path)["drive"]["items"]
    named = {f"state-drive-{ref['gen']}.json"} | (
        {f"state-drive-{ref['gen']}.changes"} if ref["journal"] else set()
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"state.json", *named})


def test_journal_bytes_past_the_committed_length_are_ignored_then_cut_off(
    tmp_path: Path,
) -> None:
    path, items = _world(tmp_path)
    loaded, _ = state.load(path)
    assert loaded.drive is not None
    loaded.drive.data["items"]
    state.save(path, loaded.with_drive({"items": items[1:]}, T0))
    journal = tmp_path / "state-drive-1.changes"
    committed = journal.read_bytes()
    # A crash half-way through the next append: a torn record.
    journal.write_bytes(committed + b'{"put":[["1x","broken')
    loaded, warning = state.load(path)
    assert warning is None and loaded.drive is not None
    assert loaded.drive.data["items"] == items[1:]
    state.save(path, loaded.with_drive({"items": items[2:]}, T0))
    text = journal.read_bytes()
    assert text.startswith(committed) and b"broken" not in text
    assert state.load(path)[0].drive.data["items"] == items[2:]  # type: ignore[union-attr]


def test_a_stale_generation_and_temp_files_go_with_the_next_save(tmp_path: Path) -> None:
    path, _ = _world(tmp_path)
    for litter in (
        "state-drive-7.json",
        "state-drive-0.changes",
        ".state.json.abc.tmp",
        ".state-drive-3.json.x.tmp",
    ):
        (tmp_path / litter).write_bytes(b"[]")
    (tmp_path / "run.lock").write_bytes(b"")
    (tmp_path / "other-drive-1.json").write_bytes(b"[]")  # not ours
    loaded, _ = state.load(path)
    state.save(path, loaded.succeeded(T0))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other-drive-1.json",
        "run.lock",
        "state-drive-1.json",
        "state.json",
    ]
    # A new generation never takes the number of a file already there.
    loaded, _ = state.load(path)
    (tmp_path / "state-drive-9.json").write_bytes(b"[]")
    state.save(path, loaded.with_drive({"listed_at": "x", "items": _items(3)}, T0))
    assert _header(path)["drive"]["items"]["gen"] == 10


def test_another_sources_items_stay_in_their_files(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    one, two = state.source_key("drive", "0A"), state.source_key("drive", "0B")
    state.save(path, replace(State(), source=one).with_drive({"items": _items(50)}, T0))
    theirs, _ = state.load(path, two)
    state.save(path, theirs.with_drive({"items": _items(20)}, T0))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "state-drive-1.json",
        "state-drive-2.json",
        "state.json",
    ]
    assert b'"name"' not in path.read_bytes()
    mine, _ = state.load(path, one)
    assert mine.drive is not None and mine.drive.data["items"] == _items(50)
    state.save(path, mine)
    assert state.load(path, two)[0].drive.data["items"] == _items(20)  # type: ignore[union-attr]


# ---------------------------------------------------------------- runs of the pipeline


def _drive_world(tmp_path: Path, drive_emulator: DriveEmulator) -> Settings:
    tree = LocalFolderSource(sample.SAMPLE_DRIVE).read()
    drive_id = drive_emulator.add_drive("Backtests")
    drive_emulator.seed_tree(drive_id, tree)
    settings = replace(
        Settings(),
        folder_id=drive_id,
        cache_dir=tmp_path / "cache",
        mongo_uri="mongomock://cost",
        drive_api_endpoint=drive_emulator.url,
    )
    return settings


def _runner(settings: Settings, drive_emulator: DriveEmulator, store: Store) -> Any:
    def run() -> pipeline.Outcome:
        drive_emulator.clock.between_runs()  # type: ignore[attr-defined]
        source = DriveSource(
            settings.folder_id,
            credentials=AnonymousCredentials(),
            endpoint=drive_emulator.url,
            allow_renames=True,
            sleep=drive_emulator.clock.sleep,  # type: ignore[attr-defined]
        )
        services = pipeline.Services(sources.DriveTree(source), store, clock=lambda: NOW)
        return pipeline.run(run_config(settings), pipeline.Options(), services)

    return run


def test_an_unchanged_drive_run_leaves_the_saved_items_unread(
    tmp_path: Path, drive_emulator: DriveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _drive_world(tmp_path, drive_emulator)
    with Store.connect(settings.mongo_uri, settings.mongo_db) as store:
        run = _runner(settings, drive_emulator, store)
        assert run().exit_code == 0  # cold: renames, so the next run sees changes
        assert run().exit_code == 0
        path = state.path_in(settings.cache_dir)
        files_before = _snapshot_files(settings.cache_dir)
        assert files_before  # the items are in snapshot files
        items_before = {n: (settings.cache_dir / n).read_bytes() for n in files_before}

        def unread(self: state.LazyItems) -> Any:
            raise AssertionError("an unchanged run read the saved drive items")

        monkeypatch.setattr(state.LazyItems, "_load", unread)
        opened = _forbid_snapshot_io(monkeypatch)
        header_before = path.stat().st_mtime_ns
        unchanged = run()
        monkeypatch.undo()
        assert unchanged.exit_code == 0 and unchanged.summary.get("unchanged") is True
        assert opened == []  # no snapshot file opened, to read or to write
        assert _snapshot_files(settings.cache_dir) == files_before  # same inodes, sizes, times
        assert {n: (settings.cache_dir / n).read_bytes() for n in files_before} == items_before
        assert path.stat().st_mtime_ns != header_before  # the header alone was rewritten
        saved, warning = state.load(path)
        assert warning is None and saved.drive is not None
        assert len(saved.drive.data["items"]) == sum(1 for _ in saved.drive.data["items"]) > 50


def test_a_drive_run_with_changes_appends_them_to_the_journal(
    tmp_path: Path, drive_emulator: DriveEmulator
) -> None:
    settings = _drive_world(tmp_path, drive_emulator)
    with Store.connect(settings.mongo_uri, settings.mongo_db) as store:
        run = _runner(settings, drive_emulator, store)
        assert run().exit_code == 0
        assert run().exit_code == 0
        path = state.path_in(settings.cache_dir)
        ref = _header(path)["drive"]["items"]
        base = settings.cache_dir / f"state-drive-{ref['gen']}.json"
        stamp = _snapshot_files(settings.cache_dir)[base.name]
        course = next(f.id for f in drive_emulator.files.values() if f.name.startswith("CSCI-1100"))
        drive_emulator.add_file(course, "CSCI-1100 E1F21.pdf")
        changed = run()
        assert changed.exit_code == 0 and changed.summary["drive"]["changed"] is True
        after = _header(path)["drive"]["items"]
        assert after["gen"] == ref["gen"]  # the same base, untouched
        assert _snapshot_files(settings.cache_dir)[base.name] == stamp
        growth = after["journal"] - ref["journal"]
        assert 0 < growth < 400, growth  # one item's worth, not the drive's
        assert run().summary.get("unchanged") is True


def test_a_missing_snapshot_file_is_a_warning_and_a_full_run(
    tmp_path: Path, drive_emulator: DriveEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _drive_world(tmp_path, drive_emulator)
    with Store.connect(settings.mongo_uri, settings.mongo_db) as store:
        run = _runner(settings, drive_emulator, store)
        assert run().exit_code == 0
        assert run().exit_code == 0
        for name in _snapshot_files(settings.cache_dir):
            (settings.cache_dir / name).unlink()
        course = next(f.id for f in drive_emulator.files.values() if f.name.startswith("CSCI-1100"))
        drive_emulator.add_file(course, "CSCI-1100 E2F21.pdf")
        caplog.clear()
        outcome = run()
        assert outcome.exit_code == 0 and outcome.summary["drive"]["full"] is True
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any("unusable" in w and "cannot be read" in w for w in warnings), warnings
        assert run().summary.get("unchanged") is True


# ---------------------------------------------------------------- big sink parts


def _catalog(courses: int, tag: str = "") -> dict[str, Any]:
    """A MongoDB part shaped like the pipeline's: the remembered catalog is big."""
    return {
        "fingerprint": "f" * 64,
        "catalog": [{"code": f"CSCI-{i:04d}", "title": f"Course {i}{tag}"} for i in range(courses)],
        "problems": [],
    }


def test_a_big_sink_part_lives_in_a_file_neither_converted_nor_rewritten_when_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    mongo = _catalog(2000)
    first = State().with_drive({"items": _items(10)}, T0).with_sink("mongo", mongo, T0)
    state.save(path, first.with_sink("sheet", {"digest": "abc"}, T0))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3 and names[0].startswith("state-drive-1") and "-mongo-" in names[1]
    assert path.stat().st_size < 1000 and b"Course 1" not in path.read_bytes()
    assert _header(path)["sheet"]["data"] == {"digest": "abc"}  # small parts stay inline
    loaded, warning = state.load(path)
    assert warning is None and loaded.mongo is not None and loaded.mongo.data == mongo
    files = _snapshot_files(tmp_path)
    written: list[int] = []
    real_dumps = state.json.dumps

    def measured(*args: Any, **kwargs: Any) -> str:
        text = real_dumps(*args, **kwargs)
        written.append(len(text))
        return text

    monkeypatch.setattr(state.json, "dumps", measured)
    again = loaded.succeeded(T0).with_sink("renames", {"done": []}, T0)
    state.save(path, again)
    monkeypatch.undo()
    assert written and max(written) < state.SIDE_BYTES  # the catalog was not serialised
    assert _snapshot_files(tmp_path) == files
    assert state.load(path) == (again, None)
    # A changed catalog is a new file (named by its content); the old one goes.
    changed = again.with_sink("mongo", _catalog(2000, "x"), T0)
    state.save(path, changed)
    now = sorted(p.name for p in tmp_path.iterdir() if "-mongo-" in p.name)
    assert len(now) == 1 and now[0] not in files
    assert state.load(path) == (changed, None)


@pytest.mark.parametrize("damage", ["missing", "altered"])
def test_a_damaged_sink_part_file_is_a_warning_and_an_empty_state(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "state.json"
    state.save(path, State().with_sink("mongo", _catalog(2000), T0))
    (side,) = tmp_path.glob("state-mongo-*.json")
    if damage == "missing":
        side.unlink()
    else:
        side.write_bytes(side.read_bytes().replace(b"Course 7", b"Course 8", 1))
    loaded, warning = state.load(path)
    assert loaded == State()
    assert warning is not None and side.name in warning and "rescans" in warning


def test_another_sources_big_parts_stay_in_their_files(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    one, two = state.source_key("drive", "0A"), state.source_key("local", "/x")
    mine = replace(State(), source=one).with_sink("mongo", _catalog(2000), T0)
    state.save(path, mine)
    theirs, _ = state.load(path, two)
    state.save(path, theirs.with_sink("mongo", _catalog(1500, "y"), T0))
    assert path.stat().st_size < 1500
    assert len(list(tmp_path.glob("state-mongo-*.json"))) == 2
    back, warning = state.load(path, one)
    assert warning is None and back.mongo is not None and back.mongo.data == mine.mongo.data  # type: ignore[union-attr]
    state.save(path, back)
    assert state.load(path, two)[0].mongo.data == _catalog(1500, "y")  # type: ignore[union-attr]
    assert len(list(tmp_path.glob("state-mongo-*.json"))) == 2


def test_a_long_problem_list_lives_in_a_file_untouched_when_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    keys = [f"invalid_filename: CSCI / CSCI-{i:04d} / scan {i}.pdf" for i in range(1000)]
    state.save(path, State().with_problems(keys))
    (side,) = tmp_path.glob("state-problems-*.json")
    assert path.stat().st_size < 1000
    loaded, warning = state.load(path)
    assert warning is None and loaded.problems == tuple(sorted(keys))
    stamp = _snapshot_files(tmp_path)
    state.save(path, loaded.succeeded(T0))
    assert _snapshot_files(tmp_path) == stamp
    fewer = loaded.with_problems(keys[1:])
    state.save(path, fewer)
    assert not side.exists() and state.load(path) == (fewer, None)
    state.save(path, fewer.with_problems(keys[:3]))  # short again: back in the header
    assert list(tmp_path.glob("state-problems-*.json")) == []
    assert _header(path)["problems"] == sorted(keys[:3])


def test_a_state_file_of_the_previous_layout_gives_an_unchanged_run_and_is_migrated(
    tmp_path: Path, drive_emulator: DriveEmulator
) -> None:
    """Upgrading: the previous version's two-line `state.json` (items on line 2, parts
    inline) is trusted as it is; the unchanged run moves its items into a base file."""
    settings = _drive_world(tmp_path, drive_emulator)
    with Store.connect(settings.mongo_uri, settings.mongo_db) as store:
        run = _runner(settings, drive_emulator, store)
        assert run().exit_code == 0
        assert run().exit_code == 0
        path = state.path_in(settings.cache_dir)
        saved, _ = state.load(path)
        assert saved.drive is not None
        items = saved.drive.data["items"]
        # The same state as the previous version wrote it.
        doc = _header(path)
        for part in (*state.SINKS, "problems"):
            if isinstance(doc[part], dict) and "file" in doc[part]:
                value = getattr(saved, part)
                doc[part] = list(value) if part == "problems" else {**doc[part], "data": value.data}
                del doc[part]["file"]
        drive = doc.pop("drive")
        doc["drive"] = {"at": drive["at"], "data": drive["data"]}
        text = json.dumps(doc, separators=(",", ":")).encode()
        items_text = json.dumps(items, separators=(",", ":")).encode()
        for old in settings.cache_dir.glob("state-*"):
            old.unlink()
        path.write_bytes(text[:-3] + b',"items":\n' + items_text + b"}}}")
        assert state.load(path)[1] is None
        unchanged = run()
        assert unchanged.exit_code == 0 and unchanged.summary.get("unchanged") is True
        assert path.read_bytes().count(b"\n") == 0
        ref = _header(path)["drive"]["items"]
        base = settings.cache_dir / f"state-drive-{ref['gen']}.json"
        assert base.read_bytes() == items_text  # moved as it was
        again, warning = state.load(path)
        assert warning is None and again.drive is not None and again.drive.data["items"] == items
        assert run().summary.get("unchanged") is True
