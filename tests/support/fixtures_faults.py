"""End-to-end worlds for the fault, guard and concurrency tests (issue #6).

A `FaultWorld` is the whole product's outside world on 127.0.0.1: the Drive v3 emulator
holding a small backtest drive (a shared drive: 3 departments, 10 courses, 60 files,
some needing renames, some invalid), the Sheets v4 emulator with the physical-copies
tab, and a database of its own on the real MongoDB-wire server (SecantusDB). It runs
the real `pipeline.run` in-process (`run`) or the CLI in a subprocess (`cli`), reads back
what a visitor, the sheet and the drive show, and says what a fresh run would publish.
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from backtest_compilation import adapters, pipeline, settings, sources
from backtest_compilation.adapters import drive_source, run_config
from backtest_compilation.store import Store
from backtest_compilation.tree import Node, file, folder
from emulators.drive import DriveEmulator
from emulators.google import QuotaClock
from emulators.secantus import MongoServer
from emulators.sheets import SheetsEmulator
from tests.support.cache import state_path
from tests.support.forkserver import ForkServer
from tests.support.forkserver import command as forkserver_command
from tests.support.website import View, visit, without_ids

ROOT = Path(__file__).resolve().parents[2]
SHEET_KEY = "1FaultsSheetKey"
COPIES_TAB = "Physical Copies of Backtests"
STAMP_CELL = "P24"
DOC = "application/msword"

__all__ = [
    "FaultWorld",
    "backtest_drive",
    "fault_twin",
    "fault_world",
    "fork_server",
    "make_fault_world",
]


def backtest_drive() -> list[Node]:
    """3 departments, 10 courses, 60 files: canonical names, names needing a rename
    (some of them duplicates), invalid names, future years, a non-PDF, a folder inside a
    course, a department mismatch, a crosslisted title. Ids are fixed, so two emulators
    seeded with it hold the same drive."""
    courses = {
        "CSCI": [
            ("1100", "Computer Science I"),
            ("1200", "Data Structures"),
            ("2300", "Intro to Algorithms"),
            ("4430", "Programming Languages"),
        ],
        "MATH": [
            ("1010", "Calculus I"),
            ("2010", "Multivariable Calculus"),
            ("4100", "Linear Algebra"),
        ],
        "ECSE": [
            ("1200", "Data Structures"),
            ("2010", "Electric Circuits"),
            ("2610", "Computer Components"),
        ],
    }
    names = [
        "{d}-{n} E1F22.pdf",
        "{d}-{n} E2S21.pdf",
        "{dl}-{n} m1 u19.pdf",  # renamed to {d}-{n} MU19.pdf
        "q3f20.pdf",  # renamed to {d}-{n} Q3F20.pdf
        "{d}-{n} E1F22 (1).pdf",  # duplicate of the first
        "scan 0042.pdf",  # invalid filename
    ]
    depts = []
    for d_index, (dept, rows) in enumerate(courses.items()):
        course_nodes = []
        for c_index, (number, title) in enumerate(rows):
            kids = [
                file(
                    f"f{d_index}{c_index}{k}",
                    pattern.format(d=dept, dl=dept.lower(), n=number),
                )
                for k, pattern in enumerate(names)
            ]
            course_nodes.append(folder(f"c{d_index}{c_index}", f"{dept}-{number} {title}", *kids))
        depts.append(folder(f"d{d_index}", dept, *course_nodes))
    # Odd corners: a non-PDF, a future year, a folder inside a course, a misplaced course.
    extra = [
        file("x-doc", "CSCI-1200 E3F22.docx", DOC),
        file("x-future", "CSCI-1200 E1F99.pdf"),
        folder("x-inner", "Old scans", file("x-inner-f", "E1F10.pdf")),
    ]
    csci = depts[0]
    first = csci.children[1]
    depts[0] = folder(
        csci.id,
        csci.name,
        *[
            folder(c.id, c.name, *c.children, *extra) if c.id == first.id else c
            for c in csci.children
        ],
        folder("x-mismatch", "MATH-9999 Misplaced"),
    )
    return depts


COPIES = [
    ["Course", "Title", "", "", "Physical", "Digital"],
    ["CSCI-1200", "Data Structures", "", "", 2, 0],
    ["MATH-1010", "Calculus I", "", "", 1, 7],
    ["", "Linear Algebra", "", "", 1, 1],
    ["", "Old course nobody has", "", "", 1, 5],
]


@dataclass
class FaultWorld:
    """Emulators + a database for one test; see the module docstring."""

    drive: DriveEmulator
    sheets: SheetsEmulator
    mongo: MongoServer
    db_name: str
    cache_dir: Path
    root: str
    workdir: Path
    forks: ForkServer | None = None
    # The time both emulators' quotas (Google's) count on; see `run` and `cli`.
    clock: QuotaClock = field(default_factory=QuotaClock)
    client: MongoClient[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.client = MongoClient(self.mongo.uri, serverSelectionTimeoutMS=5000)

    # ------------------------------------------------------------ running

    def env(self, **extra: str) -> dict[str, str]:
        """The environment the CLI needs to talk to the emulators and the database."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(ROOT),
            "FOLDER_ID": self.root,
            "DRIVE_API_ENDPOINT": self.drive.url,
            "SHEETS_API_ENDPOINT": self.sheets.url,
            "SHEET_URL": f"https://docs.google.com/spreadsheets/d/{SHEET_KEY}/edit",
            "MONGO_URI": self.mongo.uri,
            "MONGO_DB": self.db_name,
            "CACHE_DIR": str(self.cache_dir),
            "LOG_LEVEL": "INFO",
        }
        env.update(extra)
        return env

    def settings(self, **extra: str) -> settings.Settings:
        env = self.env(**extra)
        return settings.load({name: env[name] for name in env if name in settings.TABLE})

    def services(
        self,
        config: settings.Settings | None = None,
        *,
        store: Store | None = None,
        sheet_sleep: Callable[[float], None] = lambda _s: None,
    ) -> pipeline.Services:
        """The real adapters, as the CLI builds them, but with waits not slept: each
        passes on the quota clock, as a real wait would; the sheet's are also handed to
        `sheet_sleep` (tests count them; Drive's depend on its write limit)."""
        config = config or self.settings()

        def sheet_wait(seconds: float) -> None:
            sheet_sleep(seconds)
            self.clock.sleep(seconds)

        source = drive_source(config, renames=True, sleep=self.clock.sleep)
        return pipeline.Services(
            sources.DriveTree(source),
            store or Store.connect(config.mongo_uri, config.mongo_db, timeout_ms=2000),
            adapters.connect_sheet(config, sleep=sheet_wait),
        )

    def run(
        self,
        config: settings.Settings | None = None,
        *,
        services: pipeline.Services | None = None,
        **options: Any,
    ) -> pipeline.RunSummary:
        """One `pipeline.run` in-process, a quota window after the last run (runs are
        hours apart in production); raises what the run raises."""
        self.clock.between_runs()
        config = config or self.settings()
        services = services or self.services(config)
        try:
            return pipeline.run(run_config(config), pipeline.Options(**options), services)
        finally:
            services.store.close()

    def cli(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
        fresh: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """The CLI with ARGS in a process of its own (exit codes are real): a child of the
        fork server when there is one (no interpreter start-up), else, or with `fresh`, a
        fresh interpreter (`forkserver.command`). It starts a quota window after the last
        run, and counts its waits on the quota clock instead of sleeping them."""
        self.clock.between_runs()
        env = dict(env if env is not None else self.env())
        if self.forks is not None and not fresh:
            _pid, out, err = self.forks.start(list(args), env, self.workdir, self.clock.path)
            status = self.forks.wait()
            return subprocess.CompletedProcess(list(args), status, out.read_text(), err.read_text())
        return subprocess.run(
            self.command(*args),
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def command(self, *args: str) -> list[str]:
        """`python … ARGS` for a CLI run in a fresh interpreter (with `env()`, in
        `workdir`) that counts its waits on this world's quota clock."""
        assert self.clock.path is not None
        return forkserver_command(self.clock.path, list(args))

    # ------------------------------------------------------------ looking

    @property
    def db(self) -> Any:
        return self.client[self.db_name]

    def view(self) -> View:
        """What a visitor of the website sees (with course ids)."""
        return visit(self.db)

    def documents(self) -> dict[str, list[dict[str, Any]]]:
        """Every document of the three collections, ids included (for "nothing written")."""
        return {
            name: sorted(self.db[name].find({}), key=lambda d: str(d["_id"]))
            for name in sorted(self.db.list_collection_names())
        }

    def course_ids(self) -> dict[str, Any]:
        """Course folder id → the `_id` the website links to."""
        return {d["folder_id"]: d["_id"] for d in self.db["backtest_courses_collection"].find()}

    def drive_names(self) -> dict[str, str]:
        """Every live drive item's id → name."""
        return {f.id: f.name for f in self.drive.files.values() if not f.trashed}

    def sheet(self) -> dict[str, Any]:
        """The whole spreadsheet (values and formats), without the run's time stamp."""
        snap = copy.deepcopy(self.sheets.snapshot(SHEET_KEY))
        snap.get(COPIES_TAB, {}).get("cells", {}).pop(STAMP_CELL, None)
        return snap

    def state_bytes(self) -> bytes | None:
        path = state_path(self.cache_dir)
        return path.read_bytes() if path.is_file() else None

    def published(self) -> tuple[Any, Any, dict[str, str]]:
        """(website view without ids, sheet, drive names): what two runs must agree on."""
        return without_ids(self.view()), self.sheet(), self.drive_names()

    def everything(self) -> dict[str, Any]:
        """Database documents, sheet, drive names and state file: equal means untouched."""
        return {
            "mongo": self.documents(),
            "sheet": self.sheet(),
            "drive": self.drive_names(),
            "state": self.state_bytes(),
        }


def make_fault_world(
    stack: Any,
    mongo: MongoServer,
    tmp: Path,
    name: str,
    *,
    drive_latency: float = 0.0,
    forks: ForkServer | None = None,
) -> FaultWorld:
    """A seeded world (see the module docstring); `stack` closes the emulators."""
    workdir = tmp / name
    workdir.mkdir(parents=True, exist_ok=True)
    clock = QuotaClock(path=workdir / "quota.clock")  # shared with forked CLI runs
    drive = stack.enter_context(DriveEmulator(latency=drive_latency, clock=clock))
    sheets = stack.enter_context(SheetsEmulator(clock=clock))
    root = drive.add_drive("Backtests", "0ABacktests")
    drive.seed(root, backtest_drive())
    sheets.add_spreadsheet(SHEET_KEY, tabs={COPIES_TAB: COPIES})
    sheets.link_drive(drive)  # the spreadsheet is a Drive file whose version moves
    db_name = f"f_{name}_{uuid.uuid4().hex[:12]}"
    world = FaultWorld(
        drive, sheets, mongo, db_name, workdir / "cache", root, workdir, forks, clock
    )
    stack.callback(world.client.close)
    stack.callback(_drop, world)
    return world


def _drop(world: FaultWorld) -> None:
    # The server may be down when a test failed while it was stopped.
    with contextlib.suppress(PyMongoError):
        world.client.drop_database(world.db_name)


@pytest.fixture(scope="session")
def fork_server() -> Iterator[ForkServer]:
    """One fork server for the session: CLI runs without interpreter start-up."""
    with ForkServer() as server:
        yield server


@pytest.fixture
def fault_world(
    mongo_server: MongoServer, tmp_path: Path, fork_server: ForkServer
) -> Iterator[FaultWorld]:
    """One seeded world per test (see `FaultWorld`); its `cli` uses the fork server."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield make_fault_world(stack, mongo_server, tmp_path, "w", forks=fork_server)


@pytest.fixture
def fault_twin(mongo_server: MongoServer, tmp_path: Path) -> Iterator[FaultWorld]:
    """A second, independent world seeded identically: the fault-free reference."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield make_fault_world(stack, mongo_server, tmp_path, "twin")
