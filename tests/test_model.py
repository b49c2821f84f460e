"""Model-based test (issue #6 item 2): random human edits of the drive interleaved with
runs; after every run the job has converged.

A hypothesis `RuleBasedStateMachine` edits the Drive emulator the way people edit the
real drive (add, rename, move, trash, restore and delete files and folders, valid and
invalid names alike) and now and then runs the pipeline — `sources.DriveTree` over
`DriveSource` talking HTTP to the emulator, a MongoDB store, the sheet report talking
HTTP to the Sheets emulator, and a state file that carries the changes-feed token from
run to run. After each run it checks, against a *fresh* run (new database, new state,
same drive, a copy of the sheet as it now stands):

- the website (every page a visitor can reach, ids left out) equals the fresh one and
  what the fresh catalog says; the problems equal the fresh problems;
- the drive needs no further rename (renames converge in one run);
- the sheet's three tabs equal what a fresh report on that sheet writes, and a fresh
  report finds nothing to change;
- every course whose Drive folder survived kept its `_id` (the website links to it);
- a refused mass delete wrote nothing, and `--allow-mass-delete` then proceeds.

The long version runs on mongomock (in-process, so many examples fit in the time
budget; the store's code paths are the same, and `test_store.py` proves both backends
agree); a shorter version runs on the real MongoDB-wire server (SecantusDB).
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from backtest_compilation import pipeline, sheet, sources
from backtest_compilation.adapters import run_config
from backtest_compilation.drive import DriveSource
from backtest_compilation.errors import ConfigError, GuardRefused
from backtest_compilation.settings import Settings
from backtest_compilation.store import COURSES, Store
from emulators.drive import FOLDER_MIME, PDF_MIME, DriveEmulator
from emulators.google import QuotaClock
from emulators.sheets import SheetsEmulator
from tests.support.fixtures_mongo import MongoServer
from tests.support.website import expected_view, visit, without_ids

NOW = datetime(2026, 11, 21, 15, 2, tzinfo=UTC)
COPIES = "Physical Copies of Backtests"
TABS = ("Errors in Drive", "Classes Not Found", COPIES)
DELEGATE = "backtests@chapter.example.org"

# The tab people maintain: rows the courses below can be found by (code, title,
# a containing cell), one ambiguous title, and one row no course matches.
COPIES_ROWS: list[list[Any]] = [
    ["Course", "Title", "", "", "Physical", "Digital"],
    ["CSCI-1200", "Data Structures", "", "", 2, 0],
    ["MATH-1010", "Calculus I", "", "", 1, 7],
    ["", "Intro to C++ (Intro) notes", "", "", 1, ""],
    ["", "Physics I", "", "", 1, 3],
    ["", "Physics I (old)", "", "", 1, 2],
    ["", "Old course nobody has", "", "", 1, 5],
]

DEPARTMENT_NAMES = ["CSCI", "MATH", "*CSCI", "1 ECSE", "PHYS", "BEAR", "Csci", "ABCDE", "Misc"]
TITLES = ["Data Structures", "Calculus I", "C++ (Intro)", "Physics I", "  Data  Structures "]
CODES = ["CSCI", "MATH", "ECSE", "PHYS", "BEAR"]
NUMBERS = ["1200", "1010", "101X", "4430"]
INVALID_COURSES = ["Data Structures", "CSCI 1200 Data Structures", "CSCI-12 x", "Old scans"]
ODD_NAMES = [
    'it\'s "quoted" E1F22.pdf',
    "back\\slash Q S21.pdf",
    "emoji 📚 M F19.pdf",
    "E1F22\u200b.pdf",
    "\u202eE2S21.pdf",
    "line\nbreak E3F20.pdf",
    "   ",
    "x" * 500 + ".pdf",
    "regex (.*)+[a-z]?$^.pdf",
]

course_names = st.one_of(
    st.builds(
        lambda star, code, number, title: f"{star}{code}-{number} {title}",
        st.sampled_from(["", "*"]),
        st.sampled_from(CODES),
        st.sampled_from(NUMBERS),
        st.sampled_from(TITLES),
    ),
    st.sampled_from(INVALID_COURSES),
)
test_names = st.one_of(
    st.builds(
        lambda prefix, sep, exam, space, sem, year, rest, ext: (
            f"{prefix}{sep}{exam}{space}{sem}{year}{rest}{ext}"
        ),
        st.sampled_from(["", "CSCI-1200", "csci 1200", "MATH1010", "ECSE-101X"]),
        st.sampled_from(["", " ", "_", " - "]),
        st.sampled_from(["E1", "e2", "M", "m1", "Q", "Q3", "q12"]),
        st.sampled_from(["", " "]),
        st.sampled_from(["F", "s", "U", "SU"]),
        st.sampled_from(["19", "22", "24", "26", "27", "99"]),
        st.sampled_from(["", " (1)", " copy", ".pdf"]),
        st.sampled_from([".pdf", ".PDF", ""]),
    ),
    st.sampled_from(["notes.pdf", "syllabus", "CSCI-1200 E1F22.pdf", *ODD_NAMES]),
)
any_names = st.one_of(st.sampled_from(DEPARTMENT_NAMES), course_names, test_names)
mime_types = st.sampled_from([PDF_MIME, PDF_MIME, PDF_MIME, "application/msword"])


class World:
    """The emulators and database shared by all examples of one test (each example
    gets its own shared drive, spreadsheets, database names and cache directories)."""

    def __init__(
        self,
        drive: DriveEmulator,
        sheets: SheetsEmulator,
        connect: Callable[[str], Store],
        tmp: Path,
    ) -> None:
        self.drive = drive
        self.sheets = sheets
        # Both emulators count Google's quotas on it; every wait of the code under test
        # passes on it instead of being slept, and each run starts a quota window later.
        assert isinstance(drive.clock, QuotaClock) and sheets.clock is drive.clock
        self.clock: QuotaClock = drive.clock
        self.connect = connect
        self.tmp = tmp
        self.serial = itertools.count(1)
        self.runs = 0  # runs checked, over all examples (the test fails if none ran)
        # Courses whose `_id` was compared across a run, and website codes checked: the
        # checks below loop over what happens to exist, so the test makes sure they ran.
        self.ids_compared = 0
        self.codes_visited = 0


class DriveEdits(RuleBasedStateMachine):
    """Human edits of one drive, and runs of the job on it."""

    world: World
    shared_drive = True

    def __init__(self) -> None:
        super().__init__()
        w = self.world
        n = next(w.serial)
        self.n = n
        if self.shared_drive:
            self.root = w.drive.add_drive(f"Backtests {n}")
        else:
            self.root = w.drive.add_folder("root", f"Backtests {n}")
        self.key = f"1Model{n}"
        w.sheets.add_spreadsheet(self.key, tabs={COPIES: COPIES_ROWS})
        self.cache = Path(tempfile.mkdtemp(prefix=f"model{n}-", dir=w.tmp))
        self.settings = replace(Settings(), cache_dir=self.cache / "cache")
        self.store = w.connect(f"m{n}")
        self.services = pipeline.Services(
            sources.DriveTree(self._source(renames=True)),
            self.store,
            sheet.open_report(self.key, endpoint=w.sheets.url, sleep=w.clock.sleep),
            clock=lambda: NOW,
        )
        self.runs = 0
        # A small drive to start from, so the first runs publish something.
        csci = w.drive.add_folder(self.root, "CSCI")
        course = w.drive.add_folder(csci, "CSCI-1200 Data Structures")
        w.drive.add_file(course, "csci-1200 e1 f22.pdf")
        w.drive.add_file(course, "E1F22.pdf")
        math = w.drive.add_folder(self.root, "MATH")
        w.drive.add_folder(math, "MATH-1010 Calculus I")

    def _source(self, *, renames: bool) -> DriveSource:
        return DriveSource(
            self.root,
            credentials=AnonymousCredentials(),
            endpoint=self.world.drive.url,
            delegate=DELEGATE,
            allow_renames=renames,
            sleep=self.world.clock.sleep,
        )

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.cache, ignore_errors=True)

    # ------------------------------------------------------------ the drive as it stands

    def _mine(self) -> dict[str, Any]:
        """Items below this example's root, trashed or not: (file, depth)."""
        files = self.world.drive.files
        out = {}
        for fid, f in files.items():
            node, depth = f, 1
            while node.parent != self.root and node.parent in files:
                node, depth = files[node.parent], depth + 1
            if node.parent == self.root:
                out[fid] = (f, depth)
        return out

    def _live(self) -> dict[str, Any]:
        """Items of this drive that are not trashed."""
        return {fid: fd for fid, fd in self._mine().items() if not fd[0].trashed}

    def _folders(self, depth: int | None = None) -> list[str]:
        live = self._live()
        return sorted(
            fid
            for fid, (f, d) in live.items()
            if f.mime_type == FOLDER_MIME and (depth is None or d == depth)
        )

    def _choose(self, data: st.DataObject, options: list[str], label: str) -> str | None:
        return data.draw(st.sampled_from(options), label=label) if options else None

    # ------------------------------------------------------------ human edits

    @rule(name=st.sampled_from(DEPARTMENT_NAMES))
    def add_department(self, name: str) -> None:
        self.world.drive.add_folder(self.root, name)

    @rule(data=st.data(), name=course_names)
    def add_course(self, data: st.DataObject, name: str) -> None:
        parent = self._choose(data, self._folders(1), "department") or self.root
        self.world.drive.add_folder(parent, name)

    @rule(data=st.data(), name=test_names, mime=mime_types)
    def add_test(self, data: st.DataObject, name: str, mime: str) -> None:
        parent = self._choose(data, self._folders(2), "course")
        if parent is not None:
            self.world.drive.add_file(parent, name, mime)

    @rule(data=st.data(), name=any_names, is_folder=st.booleans())
    def add_anywhere(self, data: st.DataObject, name: str, is_folder: bool) -> None:
        parent = self._choose(data, [self.root, *self._folders()], "parent")
        assert parent is not None
        mime = FOLDER_MIME if is_folder else PDF_MIME
        self.world.drive.add_file(parent, name, mime)

    @rule(data=st.data(), name=any_names)
    def rename(self, data: st.DataObject, name: str) -> None:
        item = self._choose(data, sorted(self._live()), "item")
        if item is not None:
            self.world.drive.rename(item, name)

    @rule(data=st.data())
    def move(self, data: st.DataObject) -> None:
        live = self._live()
        item = self._choose(data, sorted(live), "item")
        if item is None:
            return
        below = {item, *self.world.drive.descendants(item)}  # Drive refuses cycles
        targets = [self.root, *(f for f in self._folders() if f not in below)]
        self.world.drive.move(item, data.draw(st.sampled_from(targets), label="to"))

    @rule(data=st.data())
    def trash(self, data: st.DataObject) -> None:
        item = self._choose(data, sorted(self._live()), "item")
        if item is not None:
            self.world.drive.trash(item)

    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        trashed = sorted(fid for fid, (f, _depth) in self._mine().items() if f.trashed)
        item = self._choose(data, trashed, "trashed item")
        if item is not None:
            self.world.drive.trash(item, trashed=False)

    @rule(data=st.data())
    def delete_forever(self, data: st.DataObject) -> None:
        item = self._choose(data, sorted(self._live()), "item")
        if item is not None:
            self.world.drive.delete(item)

    # ------------------------------------------------------------ runs

    def _ids_by_folder(self) -> dict[str, Any]:
        return {
            d["folder_id"]: d["_id"]
            for d in self.store.database[COURSES].find({}, {"folder_id": 1})
        }

    @rule(full_rescan=st.booleans())
    def run(self, full_rescan: bool) -> None:
        before_ids = self._ids_by_folder()
        before_view = visit(self.store.database)
        options = pipeline.Options(full_rescan=full_rescan)
        self.world.clock.between_runs()
        outcome = pipeline.run(run_config(self.settings), options, self.services)
        if outcome.exit_code == ConfigError.exit_code:
            # A root holding course folders and no department: FOLDER_ID one level too
            # deep (contract §7), refused whatever the database holds; nothing written.
            assert "one level too deep" in outcome.summary["failed"]["catalog"]
            assert visit(self.store.database) == before_view
            return
        if outcome.exit_code == GuardRefused.exit_code:
            # Refused: nothing written; the people who run it allow it and run again.
            assert visit(self.store.database) == before_view
            outcome = pipeline.run(
                run_config(self.settings), replace(options, allow_mass_delete=True), self.services
            )
        self.runs += 1
        self.world.runs += 1
        assert outcome.exit_code == 0, outcome.summary.get("failed")
        self._check_converged(outcome)
        after_ids = self._ids_by_folder()
        for folder_id in before_ids.keys() & after_ids.keys():
            assert after_ids[folder_id] == before_ids[folder_id], f"_id changed: {folder_id}"
            self.world.ids_compared += 1

    # Runs are as likely as a few edits together: two more rules that just run.
    @rule()
    def run_after_edits(self) -> None:
        self.run(full_rescan=False)

    @rule()
    def run_again(self) -> None:
        self.run(full_rescan=False)

    def _check_converged(self, outcome: pipeline.RunSummary) -> None:
        """Compare with a fresh run: new database, new state, a copy of the sheet."""
        w = self.world
        fresh_key = f"{self.key}-fresh{self.runs}"
        w.sheets.add_spreadsheet(
            fresh_key, tabs={COPIES: w.sheets.values(self.key, COPIES) or [[""]]}
        )
        fresh_store = w.connect(f"m{self.n}f{self.runs}")
        fresh_cache = self.cache / f"fresh{self.runs}"
        w.clock.between_runs()
        try:
            fresh_services = pipeline.Services(
                sources.DriveTree(self._source(renames=False)),
                fresh_store,
                sheet.open_report(fresh_key, endpoint=w.sheets.url, sleep=w.clock.sleep),
                clock=lambda: NOW,
            )
            fresh = pipeline.run(
                run_config(replace(self.settings, cache_dir=fresh_cache)),
                pipeline.Options(rename=False),
                fresh_services,
            )
            assert fresh.exit_code == 0
            # Renames converge in one run: nothing is left to rename.
            assert fresh.catalog.renames == ()
            website = without_ids(visit(self.store.database))
            assert website == without_ids(visit(fresh_store.database))
            assert website == expected_view(fresh.catalog)
            assert outcome.summary["catalog"] == fresh.summary["catalog"]
            assert outcome.summary["problems"] == fresh.summary["problems"]
            for tab in TABS:
                assert w.sheets.values(self.key, tab) == w.sheets.values(fresh_key, tab), tab
            # And the sheet as the run left it is what a report would write now.
            assert fresh_services.sheet is not None
            assert fresh_services.sheet.plan(fresh.catalog).in_sync
            assert self.services.sheet is not None
            assert self.services.sheet.plan(fresh.catalog).in_sync
        finally:
            fresh_store.database.client.drop_database(fresh_store.database.name)
            fresh_store.close()

    @invariant()
    def website_never_points_nowhere(self) -> None:
        """Between runs too: no code without courses, no course without its backtest."""
        for rows in visit(self.store.database).values():
            assert rows, "a code with no course"
            assert all(not isinstance(tests, str) for _id, _name, tests in rows)
            self.world.codes_visited += 1


def _run_machine(
    drive: DriveEmulator,
    sheets: SheetsEmulator,
    connect: Callable[[str], Store],
    tmp: Path,
    *,
    shared_drive: bool,
    examples: int,
    steps: int,
) -> None:
    class Machine(DriveEdits):
        pass

    world = World(drive, sheets, connect, tmp)
    Machine.world = world
    Machine.shared_drive = shared_drive
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    assert world.runs >= examples, f"only {world.runs} runs were checked"
    assert world.ids_compared > 0, "no course outlived a run: its _id was never compared"
    assert world.codes_visited > 0, "the website never showed a code to check"


def test_random_edits_and_runs_converge_on_mongomock(
    drive_emulator: DriveEmulator, sheets_emulator: SheetsEmulator, tmp_path: Path
) -> None:
    """Shared-drive root; mongomock keeps each run in-process so ~20 examples fit."""
    _run_machine(
        drive_emulator,
        sheets_emulator,
        lambda name: Store.connect("mongomock://model", name),
        tmp_path,
        shared_drive=True,
        examples=20,
        steps=20,
    )


@pytest.mark.mongo_server
def test_random_edits_and_runs_converge_on_the_wire_server(
    drive_emulator: DriveEmulator,
    sheets_emulator: SheetsEmulator,
    tmp_path: Path,
    mongo_server: MongoServer,
    mongo_db_name: str,
) -> None:
    """Ordinary-folder root (breadth-first listing), the real MongoDB-wire server."""
    _run_machine(
        drive_emulator,
        sheets_emulator,
        lambda name: Store.connect(mongo_server.uri, f"{mongo_db_name}_{name}"),
        tmp_path,
        shared_drive=False,
        examples=6,
        steps=15,
    )
