"""The mass-delete guard end to end (issue #6, item 4): the CLI in a subprocess on the
Drive and Sheets emulators and the real MongoDB-wire server. A drive that suddenly shows
(almost) nothing deletes nothing and exits 3 with a clear message; `--allow-mass-delete`
proceeds; an ordinary small deletion is not stopped."""

from __future__ import annotations

import json

import pytest

from tests.support.fixtures_faults import FaultWorld

pytestmark = pytest.mark.mongo_server

COURSES = "backtest_courses_collection"


def published_first(world: FaultWorld) -> int:
    got = world.cli("--json")
    assert got.returncode == 0, got.stderr
    return world.db[COURSES].count_documents({})


def assert_refused_then_allowed(world: FaultWorld, env: dict[str, str], *, left: int) -> None:
    """Exit 3 changing nothing anywhere; then `--allow-mass-delete` leaves `left` courses."""
    before = world.everything()
    dry = world.cli("--dry-run", env=env)
    assert dry.returncode == 3, dry.stderr
    assert "Mass-delete guard:" in dry.stdout
    got = world.cli("--json", env=env)
    assert got.returncode == 3, got.stderr
    refused = json.loads(got.stdout)  # one JSON object, claiming nothing was applied
    assert (refused["ok"], refused["exit_code"], list(refused["failed"])) == (False, 3, ["guard"])
    assert "--allow-mass-delete" in refused["failed"]["guard"]
    assert refused["mongo"] is None and refused["sheet"] is None
    assert "mass-delete guard" in got.stderr and "--allow-mass-delete" in got.stderr
    assert "Nothing was applied" in got.stderr
    assert world.everything() == before  # no delete, no rename, no sheet, no state
    again = world.cli("--json", env=env)  # refused again: nothing was remembered
    assert again.returncode == 3
    allowed = world.cli("--json", "--allow-mass-delete", env=env)
    assert allowed.returncode == 0, allowed.stderr
    summary = json.loads(allowed.stdout)
    assert summary["mongo"]["deleted"] > 0
    assert world.db[COURSES].count_documents({}) == left


def test_an_emptied_drive_deletes_nothing_and_exits_3(fault_world: FaultWorld) -> None:
    world = fault_world
    assert published_first(world) == 10
    for department in ("d0", "d1", "d2"):
        world.drive.trash(department)
    assert_refused_then_allowed(world, world.env(), left=0)
    assert world.db["backtest_course_code_collection"].count_documents({}) == 0


def test_a_root_switched_to_the_wrong_folder_deletes_nothing_and_exits_3(
    fault_world: FaultWorld,
) -> None:
    world = fault_world
    assert published_first(world) == 10
    # FOLDER_ID now names an ordinary folder of someone's My Drive: no departments in it.
    wrong = world.drive.add_folder("root", "Meeting notes", file_id="wrong-folder")
    world.drive.add_file(wrong, "agenda.pdf", file_id="agenda")
    world.drive.add_folder(wrong, "Photos 2024", file_id="photos")
    assert_refused_then_allowed(world, world.env(FOLDER_ID=wrong), left=0)
    assert world.drive_names()["agenda"] == "agenda.pdf"


def _bigger_drive(world: FaultWorld) -> None:
    """30 more courses in a fourth department: 40 in all."""
    phys = world.drive.add_folder(world.root, "PHYS", file_id="d3")
    for n in range(30):
        course = world.drive.add_folder(phys, f"PHYS-{1000 + n} Physics {n}", file_id=f"p{n:02d}")
        world.drive.add_file(course, f"PHYS-{1000 + n} E1F22.pdf", file_id=f"pf{n:02d}")


def test_a_permissions_change_hiding_most_folders_deletes_nothing_and_exits_3(
    fault_world: FaultWorld,
) -> None:
    world = fault_world
    _bigger_drive(world)
    assert published_first(world) == 40
    # The account lost access to three of the four departments: to Drive they are gone
    # (the changes feed reports them removed), 37 of 40 courses would leave the website.
    for department in ("d0", "d2", "d3"):
        world.drive.delete(department)
    assert_refused_then_allowed(world, world.env(), left=3)


def test_a_small_deletion_is_not_stopped_by_the_guard(fault_world: FaultWorld) -> None:
    world = fault_world
    _bigger_drive(world)
    assert published_first(world) == 40
    world.drive.trash("d2")  # ECSE: 3 of 40 courses
    got = world.cli("--json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["mongo"]["deleted"] >= 3
    assert world.db[COURSES].count_documents({}) == 37


def test_max_delete_fraction_is_honoured(fault_world: FaultWorld) -> None:
    """15 of 40 courses (37 %) pass the default 25 %? No: refused; with 0.5 allowed."""
    world = fault_world
    _bigger_drive(world)
    assert published_first(world) == 40
    for n in range(15):
        world.drive.trash(f"p{n:02d}")
    refused = world.cli("--json")
    assert refused.returncode == 3, refused.stderr
    assert "15 of 40" in refused.stderr
    got = world.cli("--json", env=world.env(MAX_DELETE_FRACTION="0.5"))
    assert got.returncode == 0, got.stderr
    assert world.db[COURSES].count_documents({}) == 25


def test_folder_id_one_level_too_deep_is_said_once_with_a_hint(fault_world: FaultWorld) -> None:
    """Issue 11 item 14, then issue 17 item 2: FOLDER_ID names the CSCI department
    folder. It is a configuration error before the guard (exit 2), said once, naming
    the folder to use; nothing is written."""
    world = fault_world
    assert published_first(world) == 10
    before = world.everything()
    got = world.cli(env=world.env(FOLDER_ID="d0"))
    assert got.returncode == 2, got.stderr
    assert "mass-delete guard" not in got.stderr
    assert got.stderr.count("FOLDER_ID points one level too deep: 'CSCI' holds course") == 1
    assert "Nothing was written" in got.stderr
    assert world.everything() == before
