"""The catalog's rules about the root, end to end: the CLI in a process of its own on the
Drive and Sheets emulators and the real MongoDB-wire server (issue 17, items 2 and 6).

A `FOLDER_ID` one level too deep (a department folder: its children are course folders)
is a configuration error whatever the database holds: `sync` and `check` exit 2, name
the folder to use instead, and change nothing anywhere."""

from __future__ import annotations

import json

import pytest

from tests.support.fixtures_faults import FaultWorld

pytestmark = pytest.mark.mongo_server

COURSES = "backtest_courses_collection"
TOO_DEEP = (
    "FOLDER_ID points one level too deep: 'CSCI' holds course folders like "
    "'CSCI-1100 Computer Science I' and no department folders."
)


def assert_too_deep(world: FaultWorld, folder_id: str, fix: str) -> None:
    """`sync --json`, `sync` and `check` all exit 2 with one message; nothing changes."""
    before = world.everything()
    env = world.env(FOLDER_ID=folder_id)
    got = world.cli("--json", env=env)
    assert got.returncode == 2, got.stderr
    summary = json.loads(got.stdout)
    assert (summary["ok"], summary["exit_code"]) == (False, 2)
    assert summary["mongo"] is None and summary["sheet"] is None
    for run in (got, world.cli(env=env), world.cli("check", env=env)):
        assert run.returncode == 2, run.stderr
        assert f"{TOO_DEEP} {fix}. Nothing was written." in run.stderr
        assert "mass-delete guard" not in run.stderr
    assert world.everything() == before


@pytest.mark.parametrize("populated", [False, True], ids=["empty database", "populated database"])
def test_a_department_as_folder_id_is_a_configuration_error(
    fault_world: FaultWorld, populated: bool
) -> None:
    world = fault_world
    if populated:
        assert world.cli("--json").returncode == 0
        assert world.db[COURSES].count_documents({}) == 10
    # d0 is the CSCI department of the shared drive "Backtests".
    assert_too_deep(
        world, "d0", "Set FOLDER_ID to the folder that holds it: 0ABacktests ('Backtests')"
    )


def test_a_too_deep_folder_whose_parent_is_hidden_says_what_to_look_for(
    fault_world: FaultWorld,
) -> None:
    world = fault_world
    # A CSCI folder in someone's My Drive: its parent is that My Drive, which the
    # account cannot open.
    mine = world.drive.add_folder("root", "CSCI", file_id="my-csci")
    world.drive.add_folder(mine, "CSCI-1100 Computer Science I")
    fix = "Set FOLDER_ID to the shared drive or folder that holds the department folders"
    assert_too_deep(world, mine, fix)


def test_every_department_gone_says_so_not_that_folder_id_is_wrong(
    fault_world: FaultWorld,
) -> None:
    """Issue 17 item 6: FOLDER_ID is right; only a test file is left at the root."""
    world = fault_world
    assert world.cli("--json").returncode == 0
    for department in ("d0", "d1", "d2"):
        world.drive.trash(department)
    world.drive.add_file(world.root, "CSCI-1200 E1F22.pdf", file_id="stray")
    got = world.cli()
    assert got.returncode == 3, got.stderr
    assert "too deep" not in got.stderr
    assert (
        "The root held the departments CSCI, ECSE and MATH at the last run and holds none now"
        in got.stderr
    )
