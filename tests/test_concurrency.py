"""Concurrency (issue #6, item 5): two CLI processes started together on the same
CACHE_DIR — exactly one works, the other exits 4 at once having touched nothing; a lock
left by a killed run is taken over by the next one. Real processes (fresh interpreters
running the CLI, `FaultWorld.command`), the Drive and Sheets emulators, the real
MongoDB-wire server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from backtest_compilation import lock
from tests.support.fixtures_faults import FaultWorld
from tests.support.website import expected_view, without_ids

pytestmark = pytest.mark.mongo_server


def start(world: FaultWorld, *args: str) -> subprocess.Popen[str]:
    """The CLI in a fresh interpreter; its waits count on the world's quota clock."""
    world.clock.between_runs()
    return subprocess.Popen(
        world.command(*args),
        cwd=world.workdir,
        env=world.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_runs_started_together_one_works_the_other_exits_4(
    fault_world: FaultWorld, fault_twin: FaultWorld
) -> None:
    world = fault_world
    # Each Drive request takes 0.4 s, so the winner holds the lock for about two seconds
    # after taking it: long enough for the other to find it taken.
    world.drive.latency = 0.4
    procs = [start(world, "--json"), start(world, "--json")]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        results.append((p.returncode, out, err))
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 4], [(c, e[-2000:]) for c, _, e in results]
    (_, won_out, _), (_, lost_out, lost_err) = sorted(results, key=lambda r: r[0])
    lost = json.loads(lost_out)  # one JSON object saying the loser did nothing
    assert (lost["ok"], lost["exit_code"], list(lost["failed"])) == (False, 4, ["lock"])
    assert lost["catalog"] is None and lost["api_calls"]["drive"] == 0
    assert "holds the lock" in lost_err and "without changing anything" in lost_err
    assert "Traceback" not in lost_err
    # Only one run read the drive and renamed files; what it published is right.
    assert world.drive.stats.by_method["changes.getStartPageToken"] == 1
    reference = fault_twin.run()
    assert json.loads(won_out)["renames"] == reference.summary["renames"]
    assert world.published() == fault_twin.published()


def test_a_lock_left_by_a_killed_run_is_taken_over(
    fault_world: FaultWorld, fault_twin: FaultWorld
) -> None:
    world = fault_world
    world.drive.latency = 0.25
    victim = start(world, "--json")
    path = lock.path_in(world.cache_dir)
    deadline = time.monotonic() + 30
    # Wait until it holds the lock (the lock file names it), then kill it mid-run.
    while not (path.is_file() and f'"pid": {victim.pid}' in path.read_text()):
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "the run never took the lock"
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL

    world.drive.latency = 0.0
    got = world.cli("--json", fresh=True)
    assert got.returncode == 0, got.stderr
    assert f"taking over the run lock left by pid {victim.pid}" in got.stderr
    reference = fault_twin.run()
    assert without_ids(world.view()) == expected_view(reference.catalog)
    assert world.published() == fault_twin.published()
    assert "pid" not in json.loads(path.read_text())  # released cleanly: no holder named


def test_a_stale_lock_file_naming_a_dead_process_is_taken_over(fault_world: FaultWorld) -> None:
    world = fault_world
    path = lock.path_in(world.cache_dir)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": 999999, "started": "2026-11-20T09:02:00+00:00"}))
    got = world.cli("--json")
    assert got.returncode == 0, got.stderr
    assert "taking over the run lock left by pid 999999" in got.stderr
    assert json.loads(got.stdout)["ok"] is True
