"""DriveSource against the Drive v3 emulator over HTTP: listing, changes feed, renames,
retries and a bad root (issue #3, contract §2, §5 steps 3 and 7)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from google.auth.credentials import AnonymousCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest_compilation import tree
from backtest_compilation.catalog import Category, Rename
from backtest_compilation.drive import DriveRead, DriveSnapshot, DriveSource
from backtest_compilation.errors import ServiceError
from backtest_compilation.tree import FOLDER_MIME, Node, file, folder
from emulators.drive import DriveEmulator
from tests.support.trees import count, flatten

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Make = Callable[..., DriveSource]

ODD_NAMES = [
    'it\'s "quoted".pdf',
    "back\\slash\\.pdf",
    "emoji 📚 E1F22.pdf",
    "regex (.*)+[a-z]?$^.pdf",
    "x" * 500 + ".pdf",
    "' in parents or 'x",
]


def sample() -> list[Node]:
    """A small drive with every shape the catalog cares about, odd names included."""
    return [
        folder(
            "dept-csci",
            "CSCI",
            folder(
                "c-1200",
                "CSCI-1200 Data Structures",
                file("t1", "CSCI-1200 E1F22.pdf"),
                file("t2", "csci-1200 e2 s21.pdf"),
                file("t3", "notes.docx", "application/msword"),
                *[file(f"odd{i}", name) for i, name in enumerate(ODD_NAMES)],
                folder("inner", "Old scans", file("t4", "M1F19.pdf")),
            ),
            folder("c-2300", "CSCI-2300 Intro to Algorithms"),
        ),
        folder(
            "dept-math",
            "MATH",
            folder("c-1010", "MATH-1010 Calculus I", file("t5", "Q3U20.pdf")),
        ),
        # Ids with quote and backslash must be escaped in breadth-first queries.
        folder("dept'q\\x", "1 ECSE", folder("c'e\\1", "ECSE-1200 Data Structures")),
        file("root-file", "README.pdf"),
    ]


def expected(root_id: str, root_name: str, children: list[Node]) -> Node:
    """The tree `tree.assemble` gives for the seeded nodes (the oracle)."""
    return tree.assemble(
        root_id, root_name, flatten(Node(root_id, root_name, FOLDER_MIME, tuple(children)))
    )


def shared_drive(emu: DriveEmulator) -> str:
    drive = emu.add_drive("Backtests", "0Adrive")
    emu.seed(drive, sample())
    return drive


def my_drive_folder(emu: DriveEmulator) -> str:
    root = emu.add_folder("root", "Backtests", "folder-root")
    emu.seed(root, sample())
    return root


def folder_in_shared_drive(emu: DriveEmulator) -> str:
    drive = emu.add_drive("Everything", "0Aeverything")
    sibling = emu.add_folder(drive, "Other stuff", "sibling")
    emu.add_file(sibling, "E1F22.pdf", file_id="sibling-file")
    root = emu.add_folder(drive, "Backtests", "folder-root")
    emu.seed(root, sample())
    return root


ROOTS = {
    "shared drive": shared_drive,
    "ordinary folder": my_drive_folder,
    "folder in a shared drive": folder_in_shared_drive,
}


@pytest.fixture(params=list(ROOTS))
def seeded(request: pytest.FixtureRequest, drive_emulator: DriveEmulator) -> str:
    """The sample drive, once as a shared drive and once as a My Drive folder."""
    return ROOTS[request.param](drive_emulator)


def test_full_listing_gives_exactly_the_seeded_tree(seeded: str, drive_source: Make) -> None:
    got = drive_source(seeded).read(None, now=NOW)
    assert got.full and got.changed
    assert got.tree == expected(seeded, "Backtests", sample())
    snap = got.snapshot
    assert tree.assemble(snap.root_id, snap.root_name, snap.items) == got.tree
    assert got.snapshot.page_token and got.snapshot.listed_at == NOW


def test_both_root_modes_give_identical_trees(
    drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    drive = drive_emulator.add_drive("Everything")
    top = drive_emulator.add_folder(drive, "Backtests", "top")
    drive_emulator.seed(top, sample())
    whole = drive_source(drive).read(None, now=NOW).tree
    as_folder = drive_source(top).read(None, now=NOW)
    assert as_folder.snapshot.root_id == top and as_folder.snapshot.drive_id == drive
    (subtree,) = [n for n in whole.children if n.id == top]
    assert as_folder.tree == subtree


def test_shared_drive_is_read_in_pages_of_1000(
    drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    drive = drive_emulator.add_drive("Big")
    course = drive_emulator.add_folder(drive, "CSCI-1200 Big")
    for i in range(2500):
        drive_emulator.add_file(course, f"E1F{i % 90:02d} {i}.pdf")
    source = drive_source(drive)
    got = source.read(None, now=NOW)
    assert count(got.tree) == (1, 2500)
    # The root's one child, then its 2,500 files in pages of 1,000.
    assert drive_emulator.stats.by_method["files.list"] == 1 + 3
    assert source.requests == drive_emulator.stats.requests == 6


def test_folder_with_2500_files_is_read_completely_breadth_first(
    drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    root = drive_emulator.add_folder("root", "Backtests")
    dept = drive_emulator.add_folder(root, "CSCI")
    course = drive_emulator.add_folder(dept, "CSCI-1200 Big")
    names = {drive_emulator.add_file(course, f"file {i}.pdf") for i in range(2500)}
    got = drive_source(root).read(None, now=NOW)
    (dept_node,) = got.tree.children
    (course_node,) = dept_node.children
    assert {n.id for n in course_node.children} == names


def test_many_parents_share_one_query_and_long_queries_are_posted(
    drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    root = drive_emulator.add_folder("root", "Backtests")
    dept = drive_emulator.add_folder(root, "CSCI")
    long_id = "x" * 40
    for i in range(120):
        c = drive_emulator.add_folder(dept, f"CSCI-{1000 + i} C", f"{long_id}{i:03d}")
        drive_emulator.add_file(c, "E1F22.pdf")
    got = drive_source(root).read(None, now=NOW)
    assert count(got.tree) == (121, 120)
    # root, dept, then 120 courses in groups of at most 50: 3 queries.
    assert drive_emulator.stats.by_method["files.list"] == 1 + 1 + 3
    # The two groups of 50 long ids exceed 2,048 characters: sent as POST + override.
    assert drive_emulator.stats.method_overrides == 2


def test_long_queries_over_several_pages_list_every_file_once(
    drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    # 50 Google-shaped course ids make a query over 2,048 characters (sent as a POST
    # with the parameters in the body), and their 1,150 files need two pages of it.
    root = drive_emulator.add_folder("root", "Backtests")
    dept = drive_emulator.add_folder(root, "CSCI")
    files = set()
    for c in range(50):
        course = drive_emulator.add_folder(dept, f"CSCI-{1000 + c} C")
        files |= {drive_emulator.add_file(course, f"E1F{i:02d}.pdf") for i in range(23)}
    got = drive_source(root).read(None, now=NOW)
    assert {i.id for i in got.snapshot.items if i.mime_type != FOLDER_MIME} == files
    assert len(files) == 1150
    # root, dept, then the 50 courses' files in 2 pages of one long query.
    assert drive_emulator.stats.by_method["files.list"] == 1 + 1 + 2
    assert drive_emulator.stats.method_overrides == 2


def test_a_big_shared_drive_is_read_level_by_level(
    drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    drive = drive_emulator.add_drive("Big")
    files = set()
    for d in range(3):
        dept = drive_emulator.add_folder(drive, f"DEPT{d}")
        for c in range(60):
            course = drive_emulator.add_folder(dept, f"DEPT-{1000 + c} C")
            files |= {drive_emulator.add_file(course, f"E1F{i:02d}.pdf") for i in range(20)}
    got = drive_source(drive).read(None, now=NOW)
    assert {i.id for i in got.snapshot.items if i.mime_type != FOLDER_MIME} == files
    assert len(got.snapshot.items) == 3 + 180 + 3600
    # Root (1), departments (1 query of 3 parents, 1 page), courses (180 parents: 4
    # queries of at most 50, one page each, sent together).
    assert drive_emulator.stats.by_method["files.list"] == 1 + 1 + 4
    drive_emulator.reset_stats()
    drive_emulator.fail_every(3)  # the queries of one level retried in their threads
    source = drive_source(drive)
    stormy = source.read(None, now=NOW)
    assert stormy.snapshot.items == got.snapshot.items and stormy.tree == got.tree
    assert source.requests == drive_emulator.stats.requests


# ---------------------------------------------------------------- the changes feed


def _edits(emu: DriveEmulator, root: str) -> dict[str, Callable[[], None]]:
    outside = emu.add_folder("root", "Elsewhere", "outside")
    emu.add_drive("Other drive", "0Aother")

    def add_course_with_files() -> None:
        c = emu.add_folder("dept-math", "MATH-2010 Multivariable", "new-course")
        emu.add_file(c, "E1F23.pdf", file_id="new-file")

    def bring_folder_in() -> None:
        f = emu.add_folder(outside, "CSCI-4430 Networks", "moved-in")
        emu.add_file(f, "E1F21.pdf", file_id="moved-in-file")
        sub = emu.add_folder(f, "sub", "moved-in-sub")
        emu.add_file(sub, "x.pdf", file_id="moved-in-deep")
        emu.move(f, "dept-csci")

    def restore() -> None:
        emu.trash("c-1200")
        emu.trash("c-1200", False)

    return {
        "file added": lambda: emu.add_file("c-2300", "E1F22.pdf", file_id="added"),
        "folder with files added": add_course_with_files,
        "file renamed": lambda: emu.rename("t2", "CSCI-1200 E2S21.pdf"),
        "folder renamed": lambda: emu.rename("c-1200", "CSCI-1200 Data Structures II"),
        "file moved between courses": lambda: emu.move("t1", "c-2300"),
        "folder moved out of the root": lambda: emu.move("c-1200", outside),
        "folder moved in from outside": bring_folder_in,
        "file trashed": lambda: emu.trash("t1"),
        "folder trashed": lambda: emu.trash("dept-csci"),
        "folder trashed and restored": restore,
        "file deleted forever": lambda: emu.delete("t5"),
        "folder deleted forever": lambda: emu.delete("dept-math"),
        "odd name renamed to another odd name": lambda: emu.rename("odd0", "a'b\\c 📚 (.*).pdf"),
    }


EDITS = [
    "file added",
    "folder with files added",
    "file renamed",
    "folder renamed",
    "file moved between courses",
    "folder moved out of the root",
    "folder moved in from outside",
    "file trashed",
    "folder trashed",
    "folder trashed and restored",
    "file deleted forever",
    "folder deleted forever",
    "odd name renamed to another odd name",
]


@pytest.mark.parametrize("edit", EDITS)
def test_changes_feed_matches_a_fresh_full_listing(
    edit: str, seeded: str, drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    source = drive_source(seeded)
    first = source.read(None, now=NOW)
    edits = _edits(drive_emulator, seeded)
    edits[edit]()
    later = source.read(first.snapshot, now=NOW + timedelta(hours=1))
    fresh = drive_source(seeded).read(None, now=NOW)
    assert not later.full
    assert later.tree == fresh.tree
    assert later.changed == (fresh.tree != first.tree)
    assert later.snapshot.items == fresh.snapshot.items
    assert later.snapshot.listed_at == NOW  # the last *full* listing


def test_unchanged_drive_costs_one_request(
    seeded: str, drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    source = drive_source(seeded)
    first = source.read(None, now=NOW)
    drive_emulator.reset_stats()
    again = source.read(first.snapshot, now=NOW + timedelta(hours=2))
    assert not again.full and not again.changed
    assert again.tree == first.tree
    assert drive_emulator.stats.requests == 1


def test_changes_outside_the_root_are_ignored(
    seeded: str, drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    source = drive_source(seeded)
    first = source.read(None, now=NOW)
    other = drive_emulator.add_drive("Other", "0Aother")
    drive_emulator.add_file(other, "E1F22.pdf")
    elsewhere = drive_emulator.add_folder("root", "Elsewhere")
    drive_emulator.add_file(elsewhere, "E1F22.pdf")
    if "sibling" in drive_emulator.files:  # elsewhere in the same shared drive
        drive_emulator.add_file("sibling", "E2F22.pdf")
        drive_emulator.rename("sibling-file", "renamed.pdf")
        archive = drive_emulator.add_folder("0Aeverything", "Archive")
        drive_emulator.move("sibling", archive)
    later = source.read(first.snapshot, now=NOW)
    assert not later.full and not later.changed
    assert later.tree == first.tree


@pytest.mark.parametrize(
    "why",
    [
        "token expired",
        "--full-rescan",
        "FULL_RESCAN_HOURS elapsed",
        "no token saved",
        "FOLDER_ID changed",
    ],
)
def test_falls_back_to_a_full_listing(
    why: str, seeded: str, drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    source = drive_source(seeded, full_rescan_hours=24)
    first = source.read(None, now=NOW)
    drive_emulator.rename("t1", "renamed.pdf")
    previous, now, full_rescan = first.snapshot, NOW + timedelta(hours=1), False
    if why == "token expired":
        drive_emulator.expire_change_tokens()
    elif why == "--full-rescan":
        full_rescan = True
    elif why == "FULL_RESCAN_HOURS elapsed":
        now = NOW + timedelta(hours=24)
    elif why == "no token saved":
        previous = DriveSnapshot(**{**vars(previous), "page_token": None})
    else:
        previous = DriveSnapshot(**{**vars(previous), "root_id": "some-other-root"})
    got = source.read(previous, full_rescan=full_rescan, now=now)
    assert got.full and got.changed
    assert got.snapshot.listed_at == now
    assert got.tree == drive_source(seeded).read(None, now=NOW).tree


def test_incremental_runs_chain(
    seeded: str, drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    """Several runs in a row, each from the previous snapshot, stay exact."""
    source = drive_source(seeded)
    read: DriveRead = source.read(None, now=NOW)
    edits = _edits(drive_emulator, seeded)
    for name in [
        "file added",
        "folder moved out of the root",
        "file renamed",
        "folder moved in from outside",
    ]:
        edits[name]()
        saved = DriveSnapshot.from_header(read.snapshot.header())  # as the state keeps it
        read = source.read(replace(saved, items=read.snapshot.items), now=NOW)
        assert not read.full
        assert read.tree == drive_source(seeded).read(None, now=NOW).tree


# ---------------------------------------------------------------- faults and retries


def test_fault_storm_still_gives_the_exact_tree(
    seeded: str, drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    clean = drive_source(seeded).read(None, now=NOW)
    drive_emulator.fail_every(3)  # 429, 403 rate, 403 user rate, 500, 503, dropped connection
    source = drive_source(seeded)
    stormy = source.read(None, now=NOW)
    assert stormy.tree == clean.tree
    assert drive_emulator.stats.faults > 0
    drive_emulator.rename("t1", "after the storm.pdf")
    later = source.read(stormy.snapshot, now=NOW)
    assert not later.full and later.tree == drive_source(seeded).read(None, now=NOW).tree


def test_retry_after_is_honoured(
    seeded: str, drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    waits: list[float] = []
    drive_emulator.faults.retry_after = 7
    drive_emulator.fail_next("429")
    drive_source(seeded, sleep=waits.append).read(None, now=NOW)
    assert len(waits) == 1 and waits[0] >= 7


def test_backoff_grows_between_retries(
    seeded: str, drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    waits: list[float] = []
    drive_emulator.fail_next("503", "503", "503", "503")
    drive_source(seeded, sleep=waits.append).read(None, now=NOW)
    assert len(waits) == 4
    assert all(0 <= w <= 2 ** (n + 1) for n, w in enumerate(waits))


def test_persistent_failure_becomes_a_service_error(
    seeded: str, drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    drive_emulator.fail_every(1, ["503"])
    with pytest.raises(ServiceError, match="503") as info:
        drive_source(seeded, num_retries=2).read(None, now=NOW)
    assert info.value.exit_code == 1
    assert drive_emulator.stats.requests == 3


@pytest.mark.parametrize("kind", ["403-forbidden", "400"])
def test_other_client_errors_fail_at_once(
    kind: str, drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    drive = shared_drive(drive_emulator)
    # drives.get and the start token answer; the first files.list fails.
    drive_emulator.fail_next("ok", "ok", kind)
    with pytest.raises(ServiceError, match=rf"files\.list failed: {kind[:3]}"):
        drive_source(drive).read(None, now=NOW)
    assert drive_emulator.stats.requests == 3


def test_forbidden_changes_feed_is_not_mistaken_for_a_bad_token(
    seeded: str, drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    source = drive_source(seeded)
    first = source.read(None, now=NOW)
    drive_emulator.reset_stats()
    drive_emulator.fail_next("403-forbidden")
    with pytest.raises(ServiceError, match=r"changes\.list failed: 403"):
        source.read(first.snapshot, now=NOW)
    assert drive_emulator.stats.requests == 1


# ---------------------------------------------------------------- the root


@pytest.mark.parametrize("root", ["no-such-folder", "t1"])
def test_bad_root_stops_the_run_naming_folder_id_and_delegate(
    root: str, seeded: str, drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    with pytest.raises(ServiceError) as info:
        drive_source(root).read(None, now=NOW)
    message = str(info.value)
    assert f"FOLDER_ID {root!r}" in message
    assert "backtests@chapter.example.org" in message
    assert info.value.exit_code == 1
    assert drive_emulator.stats.by_method["files.list"] == 0


def test_trashed_root_folder_is_refused(drive_emulator: DriveEmulator, drive_source: Make) -> None:
    root = my_drive_folder(drive_emulator)
    drive_emulator.trash(root)
    with pytest.raises(ServiceError, match="trash"):
        drive_source(root).read(None, now=NOW)


# ---------------------------------------------------------------- renames


def _renames(ids: list[str]) -> list[Rename]:
    return [
        Rename(
            i,
            f"CSCI / CSCI-1200 Data Structures / {i}",
            "old",
            f"CSCI-1200 E1F{n % 90:02d} {i}.pdf",
        )
        for n, i in enumerate(ids)
    ]


def test_renames_go_in_batches_of_at_most_100(
    drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    drive = drive_emulator.add_drive("D")
    ids = [drive_emulator.add_file(drive, f"f{i}.pdf") for i in range(250)]
    drive_emulator.reset_stats()
    renames = _renames(ids)
    # A workspace whose quota allows 1,000 writes a second: NOT Google's (3 writes a
    # second, burst 3, where batches stay small: tests/test_quota.py and bench/quota.py).
    source = drive_source(drive, writes_per_s=1000.0)
    drive_emulator.limit_writes(1000.0, burst=250)
    result = source.rename(renames)
    assert result.applied == frozenset(ids) and not result.problems
    # Batches as big as the pacer's bucket, at most 100 (the emulator refuses more).
    assert drive_emulator.stats.requests == 3
    assert drive_emulator.stats.batch_parts == 250
    assert all(drive_emulator.files[r.id].name == r.new for r in renames)


def test_rename_failures_become_problems_naming_the_path(
    drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    drive = drive_emulator.add_drive("D")
    ok = drive_emulator.add_file(drive, "a.pdf")
    renames = _renames([ok, "gone"])
    result = drive_source(drive).rename(renames)
    assert result.applied == {ok}
    (problem,) = result.problems
    assert problem.category is Category.RENAME_FAILED
    assert problem.id == "gone" and problem.path == renames[1].path
    assert renames[1].path in problem.message and "404" in problem.message


def test_rate_limited_batch_parts_are_retried(
    drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    drive = drive_emulator.add_drive("D")
    ids = [drive_emulator.add_file(drive, f"f{i}.pdf") for i in range(120)]
    drive_emulator.faults.part_every = 4
    drive_emulator.fail_every(3)
    result = drive_source(drive).rename(_renames(ids))
    assert result.applied == frozenset(ids) and not result.problems
    assert drive_emulator.stats.faults > 0


def test_renames_that_keep_failing_are_reported(
    drive_emulator: DriveEmulator, drive_source: Make
) -> None:
    drive = drive_emulator.add_drive("D")
    ids = [drive_emulator.add_file(drive, f"f{i}.pdf") for i in range(3)]
    drive_emulator.fail_every(1, ["503"])
    result = drive_source(drive, num_retries=2).rename(_renames(ids))
    assert not result.applied
    assert sorted(p.id for p in result.problems) == sorted(ids)


def test_no_rename_when_renames_are_off(drive_emulator: DriveEmulator, drive_source: Make) -> None:
    drive = drive_emulator.add_drive("D")
    fid = drive_emulator.add_file(drive, "a.pdf")
    drive_emulator.reset_stats()
    result = drive_source(drive, allow_renames=False).rename(_renames([fid]))
    assert result.applied == frozenset() and result.problems == ()
    assert drive_emulator.stats.requests == 0
    assert drive_emulator.files[fid].name == "a.pdf"


def test_changes_feed_over_many_pages(drive_emulator: DriveEmulator, drive_source: Make) -> None:
    drive = shared_drive(drive_emulator)
    source = drive_source(drive)
    first = source.read(None, now=NOW)
    for i in range(2100):
        drive_emulator.add_file("c-2300", f"E1F{i % 90:02d} {i}.pdf")
    drive_emulator.reset_stats()
    later = source.read(first.snapshot, now=NOW)
    assert not later.full and drive_emulator.stats.by_method["changes.list"] == 3
    assert later.tree == drive_source(drive).read(None, now=NOW).tree


OPS = st.lists(
    st.tuples(
        st.sampled_from(["add file", "add folder", "rename", "move", "trash", "restore", "delete"]),
        st.integers(0, 10_000),
        st.integers(0, 10_000),
        st.sampled_from(["E1F22.pdf", "it's \\ odd 📚.pdf", "CSCI-1200 x", "(.*)"]),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=30, deadline=None)
@given(mode=st.sampled_from(sorted(ROOTS)), rounds=st.lists(OPS, min_size=1, max_size=3))
def test_any_edits_through_the_changes_feed_match_a_full_listing(
    mode: str, rounds: list[list[tuple[str, int, int, str]]]
) -> None:
    """Random adds, renames, moves (also out of and into the root), trash, restore and
    deletes, over several incremental runs: always the tree a fresh listing gives."""
    with DriveEmulator() as emu:
        root = ROOTS[mode](emu)
        outside = emu.add_folder("root", "Elsewhere", "outside")

        def make() -> DriveSource:
            return DriveSource(
                root, credentials=AnonymousCredentials(), endpoint=emu.url, sleep=lambda s: None
            )

        source = make()
        read = source.read(None, now=NOW)
        for ops in rounds:
            for op, a, b, name in ops:
                ids = sorted(emu.files)
                folders = [
                    root,
                    outside,
                    *(i for i in ids if emu.files[i].mime_type == FOLDER_MIME),
                ]
                target = ids[a % len(ids)] if ids else None
                where = folders[b % len(folders)]
                if op == "add file":
                    emu.add_file(where, name)
                elif op == "add folder":
                    emu.add_folder(where, name)
                elif target is None or target in (outside, root):
                    continue
                elif op == "rename":
                    emu.rename(target, name)
                elif op == "move" and where != target and where not in emu.descendants(target):
                    emu.move(target, where)
                elif op in ("trash", "restore"):
                    emu.trash(target, op == "trash")
                elif op == "delete":
                    emu.delete(target)
            read = source.read(read.snapshot, now=NOW)
            assert not read.full
            assert read.tree == make().read(None, now=NOW).tree


# ---------------------------------------------------------------- batch parts


def _drive_service(http: object) -> object:
    from googleapiclient.discovery import build

    return build(
        "drive",
        "v3",
        http=http,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": "http://127.0.0.1:9/drive/v3/"},
    )


def test_a_long_listing_logs_its_progress(
    seeded: str, drive_emulator: DriveEmulator, drive_source: Make, caplog: pytest.LogCaptureFixture
) -> None:
    """SPEC §5.9: a phase longer than about 10 s says how far it got. Drive holds the
    listing back (429, `Retry-After: 11`) on every query: each wait passes on the quota
    clock, and a line follows."""
    drive_emulator.faults.retry_after = 11
    drive_emulator.fail_every(2, ("429",))
    with caplog.at_level("INFO", logger="backtest_compilation.drive"):
        got = drive_source(seeded).read(None, now=NOW)
    assert got.tree == expected(seeded, "Backtests", sample())
    lines = [r for r in caplog.records if getattr(r, "progress", False)]
    assert lines and all("drive: listing: " in r.getMessage() for r in lines)
