"""The process killed (SIGKILL) at random points of a run, 30 times, each followed by a
clean run: the drive names, the website and the sheet then equal those of a twin world
that saw the same human edits and only uninterrupted runs (issue #6, item 1).

The killed runs are the real CLI (`cli.main`) in child processes of a fork server
(tests/support/forkserver.py), on the Drive and Sheets emulators (with a little latency, so the
kill points spread over the phases) and the real MongoDB-wire server. Kill delays come
from a seeded RNG, so a failure can be replayed."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from backtest_compilation import state
from emulators.secantus import MongoServer
from tests.support.cache import state_path
from tests.support.fixtures_faults import FaultWorld, make_fault_world
from tests.support.forkserver import ForkServer

pytestmark = pytest.mark.mongo_server

SEED = 20261121
TRIALS = 30
COURSES = {  # course folder id → (code, number), as seeded by `backtest_drive`
    "c00": ("CSCI", "1100"),
    "c01": ("CSCI", "1200"),
    "c02": ("CSCI", "2300"),
    "c03": ("CSCI", "4430"),
    "c10": ("MATH", "1010"),
    "c11": ("MATH", "2010"),
    "c12": ("MATH", "4100"),
    "c20": ("ECSE", "1200"),
    "c21": ("ECSE", "2010"),
    "c22": ("ECSE", "2610"),
}


def human_edit(rng: random.Random, trial: int, worlds: tuple[FaultWorld, ...]) -> str:
    """One random edit someone might make, applied identically to every world."""
    course = rng.choice(sorted(COURSES))
    code, number = COURSES[course]
    exam = rng.choice(["E1", "e2", "M", "m1", "Q", "Q3", "q12"])
    semester = rng.choice(["F", "S", "U", "SU", "su"])
    year = rng.randint(10, 25)
    kind = rng.choice(["add-messy", "add-canonical", "retitle", "trash", "move", "invalid"])
    files = sorted(
        f.id
        for f in worlds[0].drive.files.values()
        if f.parent in COURSES and not f.trashed and f.mime_type == "application/pdf"
    )
    victim = rng.choice(files)
    new_id = f"k{trial:02d}"
    for w in worlds:
        d = w.drive
        if kind == "add-messy":
            d.add_file(
                course, f"{code.lower()}-{number} {exam} {semester}{year}.pdf", file_id=new_id
            )
        elif kind == "add-canonical":
            d.add_file(
                course,
                f"{code}-{number} {exam.upper()}{semester.upper()}{year}.pdf",
                file_id=new_id,
            )
        elif kind == "retitle":
            d.rename(course, f"{code}-{number} Title {trial}")
        elif kind == "trash":
            d.trash(victim)
        elif kind == "move":
            d.move(victim, course)
        else:
            d.rename(victim, f"scan {trial} — ünïcödé 📄.pdf")
    return kind


def _last_phase(log: str) -> str:
    """The last phase a killed run logged at INFO ("start" if none)."""
    phases = [
        line.split(" INFO ", 1)[1].split(":")[0] for line in log.splitlines() if " INFO " in line
    ]
    return phases[-1] if phases else "start"


def test_sigkill_at_random_points_then_a_clean_run_equals_an_uninterrupted_run(
    mongo_server: MongoServer, tmp_path: Path, fork_server: ForkServer
) -> None:
    server = fork_server
    rng = random.Random(SEED)
    with ExitStack() as stack:
        world = make_fault_world(stack, mongo_server, tmp_path, "killed", drive_latency=0.01)
        world.sheets.latency = 0.01
        twin = make_fault_world(stack, mongo_server, tmp_path, "calm")

        def start() -> tuple[int, Path, Path]:
            # A quota window after the last run; waits count on the emulators' clock.
            world.clock.between_runs()
            return server.start(["sync", "--json"], world.env(), world.workdir, world.clock.path)

        def clean_run() -> float:
            started = time.monotonic()
            _pid, _out, err = start()
            status = server.wait()
            assert status == 0, err.read_text()[-3000:]
            return time.monotonic() - started

        # The first run is interrupted too: a kill during a cold run.
        duration = 1.0
        statuses: list[int] = []
        kinds: list[str] = []
        ids: dict[str, Any] = {}
        reached: list[str] = []
        for trial in range(TRIALS + 1):
            if trial:
                kinds.append(human_edit(rng, trial, (world, twin)))
            pid, _out, err = start()
            time.sleep(rng.uniform(0.0, duration))
            with contextlib.suppress(ProcessLookupError):  # it may have ended already
                os.kill(pid, signal.SIGKILL)
            statuses.append(server.wait())
            reached.append(_last_phase(err.read_text()))
            duration = clean_run()
            twin.run()
            assert world.published() == twin.published(), f"trial {trial} ({kinds[-1:]})"
            now = world.course_ids()
            kept = {f: i for f, i in ids.items() if f in now}
            assert {f: now[f] for f in kept} == kept, (
                f"trial {trial}: a surviving course's _id changed"
            )
            ids = now

        killed = statuses.count(-signal.SIGKILL)
        print("kill points (last phase logged):", Counter(reached))
        # They spread over the run: reading, planning, writing, the end.
        assert len(set(reached)) >= 4, Counter(reached)
        # Most kills must land inside a run, not after it ended.
        assert killed >= TRIALS * 2 // 3, statuses
        saved, warning = state.load(state_path(world.cache_dir))
        assert warning is None and saved.last_success is not None
        # Kills during a save leave no litter behind once a run has saved again (the run
        # record every sync leaves, contract §7, is not litter): the source's folder holds
        # its state and its snapshot, nothing else (contract §5.10).
        where = state_path(world.cache_dir).parent
        assert sorted(p.name for p in where.iterdir()) == ["snapshot.json", "state.json"]
        assert sorted(p.name for p in world.cache_dir.iterdir()) == sorted(
            ["last-run.json", "last-success.json", "report.html", "run.lock", where.name]
        )
