"""Fault injection end to end (issue #6, item 1): the real pipeline (in-process, or the CLI
in a subprocess where exit codes matter) on the Drive and Sheets emulators and the real
MongoDB-wire server. Every fault either heals within the run (retries) or stops it with
the right exit code having written nothing it should not, and the next run converges to
exactly what a fault-free run publishes. See docs/reliability.md for the table."""

from __future__ import annotations

import errno
import json
import logging
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient, monitoring

from backtest_compilation import pipeline, state
from backtest_compilation.errors import RunError, ServiceError
from backtest_compilation.store import RoundTrips, Store
from emulators import secantus
from emulators.secantus import MongoServer, free_port
from tests.support.cache import state_path
from tests.support.fixtures_faults import SHEET_KEY, FaultWorld, make_fault_world
from tests.support.website import without_ids

pytestmark = pytest.mark.mongo_server

RATE_AND_SERVER = ("429", "403-rate", "403-user-rate", "500", "503")


def edit(world: FaultWorld) -> None:
    """A person's edits between runs: a new test, a badly named one, a retitled course."""
    world.drive.add_file("c10", "MATH-1010 E3F23.pdf", file_id="n-new")
    world.drive.add_file("c11", "math-2010 q f21.pdf", file_id="n-rename")
    world.drive.rename("c02", "CSCI-2300 Algorithms")


def add_ignored_scans(world: FaultWorld, count: int) -> None:
    """A folder of loose scans at the root ("Scans to file" is not a department): listed
    with everything else, so the listing needs several pages of 1,000."""
    scans = world.drive.add_folder(world.root, "Scans to file", file_id="scans")
    for n in range(count):
        world.drive.add_file(scans, f"scan {n:04d}.pdf", file_id=f"s{n:05d}")


# ---------------------------------------------------------------- Drive


def test_a_drive_storm_of_rate_limits_and_server_errors_is_ridden_out(
    fault_world: FaultWorld, fault_twin: FaultWorld
) -> None:
    world = fault_world
    world.drive.fail_every(3, RATE_AND_SERVER)  # every third request, batches included
    world.drive.faults.part_every = 4  # and every fourth rename inside a batch
    first = world.run()
    reference = fault_twin.run()
    assert first.exit_code == 0, first.summary["failed"]
    assert world.drive.stats.faults >= 3
    assert world.published() == fault_twin.published()
    assert first.summary["api_calls"]["drive"] > reference.summary["api_calls"]["drive"]
    assert first.summary["renames"] == reference.summary["renames"]

    # The changes feed under the same storm.
    edit(world)
    edit(fault_twin)
    second = world.run()
    fault_twin.run()
    assert second.exit_code == 0
    assert second.summary["drive"]["full"] is False
    assert world.published() == fault_twin.published()


def test_renames_failing_past_retries_are_problems_and_are_retried_next_run(
    fault_world: FaultWorld, fault_twin: FaultWorld
) -> None:
    world = fault_world
    world.drive.faults.part_every = 1  # every rename inside every batch: rate-limited
    world.drive.faults.part_kinds = ("403-user-rate",)
    first = world.run()
    assert first.exit_code == 0  # a failed rename is a problem on the sheet, not a failure
    failed = [p for p in first.summary["problems"] if p["category"] == "rename_failed"]
    assert failed and len(failed) == len(first.summary["renames"])
    assert not any(r["applied"] for r in first.summary["renames"])
    assert "Rename failed" in str(world.sheets.values(SHEET_KEY, "Errors in Drive"))
    assert first.summary["mongo"]["inserted"] > 0  # the website does not wait for names

    world.drive.faults.part_every = 0
    second = world.run()  # the drive did not change, but the renames are owed
    fault_twin.run()
    assert second.exit_code == 0
    assert second.summary["renames"]
    assert all(r["applied"] for r in second.summary["renames"])
    assert not [p for p in second.summary["problems"] if p["category"] == "rename_failed"]
    assert world.published() == fault_twin.published()


def test_a_connection_dropped_in_the_middle_of_paging_is_retried(
    fault_world: FaultWorld, fault_twin: FaultWorld
) -> None:
    for w in (fault_world, fault_twin):
        add_ignored_scans(w, 1500)
    # drives.get, changes.getStartPageToken, the root's children and the first page of
    # theirs answer; the second page is cut twice (httplib2 retries a dropped connection
    # once by itself, then the transport retries).
    fault_world.drive.fail_next("ok", "ok", "ok", "ok", "drop", "drop")
    outcome = fault_world.run()
    fault_twin.run()
    assert outcome.exit_code == 0
    listed = fault_twin.drive.stats.by_method["files.list"]
    assert fault_world.drive.stats.by_method["files.list"] == listed  # no page twice
    assert fault_world.drive.stats.faults == 2
    assert fault_world.published() == fault_twin.published()


def test_a_listing_that_keeps_dropping_writes_nothing_anywhere(fault_world: FaultWorld) -> None:
    add_ignored_scans(fault_world, 1500)
    before = fault_world.everything()
    fault_world.drive.fail_next("ok", "ok", "ok", *["drop"] * 40)
    failed = fault_world.run()
    assert failed.exit_code == ServiceError.exit_code
    assert "cannot reach Google" in failed.summary["failed"]["drive"]
    assert fault_world.everything() == before
    # Healed: the next run publishes everything.
    fault_world.drive.faults.script.clear()
    assert fault_world.run().exit_code == 0
    assert fault_world.documents()["backtest_courses_collection"]


@pytest.mark.parametrize("rejection", ["410", "expired"])
def test_a_rejected_changes_token_falls_back_to_a_full_rescan(
    fault_world: FaultWorld, fault_twin: FaultWorld, rejection: str
) -> None:
    world = fault_world
    world.run()
    fault_twin.run()
    edit(world)
    edit(fault_twin)
    if rejection == "410":
        world.drive.fail_next("410")  # the first request of a warm run is changes.list
    else:
        world.drive.expire_change_tokens()  # the emulator answers 400 invalid pageToken
    outcome = world.run()
    fault_twin.run()
    assert outcome.exit_code == 0
    assert outcome.summary["drive"] == {"changed": True, "full": True}
    assert world.published() == fault_twin.published()
    # The fresh token saved by the rescan works: the next run follows the feed again.
    third = world.run()
    assert third.summary.get("unchanged") is True


def _lose_the_shared_drive(world: FaultWorld) -> None:
    # Removed from the shared drive's members: Google answers 404 "Shared drive not found"
    # to drives.get, changes.list and files.list, and the root is no visible file.
    del world.drive.drives[world.root]


def _forbid_everything(world: FaultWorld) -> None:
    world.drive.fail_every(1, ["403-forbidden"])


@pytest.mark.parametrize(
    ("lose", "said"),
    [
        (_lose_the_shared_drive, "FOLDER_ID '0ABacktests' was not found"),
        (_forbid_everything, "403 insufficientFilePermissions"),
    ],
    ids=["404-root", "403-root"],
)
def test_permission_lost_on_the_root_writes_nothing_anywhere_and_exits_1(
    fault_world: FaultWorld, lose: object, said: str
) -> None:
    world = fault_world
    first = world.cli("--json")
    assert first.returncode == 0, first.stderr
    edit(world)  # pending work that must not be done
    before = world.everything()
    lose(world)  # type: ignore[operator]
    got = world.cli("--json")
    assert got.returncode == 1, got.stderr
    # One JSON object (contract §8), which claims nothing was done: failed at the drive.
    summary = json.loads(got.stdout)
    assert (summary["ok"], summary["exit_code"], list(summary["failed"])) == (False, 1, ["drive"])
    assert summary["catalog"] is None and summary["mongo"] is None and summary["sheet"] is None
    errors = [line for line in got.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and said in errors[0], got.stderr
    assert world.everything() == before


# ---------------------------------------------------------------- Sheets


def test_sheets_quota_exhausted_past_the_retry_budget_still_updates_mongo(
    fault_world: FaultWorld, fault_twin: FaultWorld
) -> None:
    world = fault_world
    world.sheets.quota_per_minute = 0  # every Sheets request answers 429 RATE_LIMIT_EXCEEDED
    waits: list[float] = []
    first = world.run(services=world.services(sheet_sleep=waits.append))
    reference = fault_twin.run()
    assert first.exit_code == 1
    assert first.summary["ok"] is False
    assert set(first.summary["failed"]) == {"sheet"}
    assert "429" in first.summary["failed"]["sheet"]
    assert first.summary["sheet"]["written"] is False
    assert first.summary["mongo"]["inserted"] > 0
    assert len(waits) == 6  # the whole retry budget was used, with backoff
    assert world.sheets.throttled == 7 and world.sheets.writes() == 0
    # MongoDB and the drive are done; only the sheet is owed.
    view, _, names = world.published()
    ref_view, ref_sheet, ref_names = fault_twin.published()
    assert (view, names) == (ref_view, ref_names)
    saved, _ = state.load(state_path(world.cache_dir))
    assert saved.mongo is not None and saved.sheet is None and saved.last_success is None

    world.sheets.quota_per_minute = None
    second = world.run()
    assert second.exit_code == 0
    assert second.summary["sheet"]["written"] is True
    assert second.summary["mongo"] == {**reference.summary["mongo"], "inserted": 0} | {
        "in_sync": True
    }
    assert world.sheet() == ref_sheet


def test_a_sheets_storm_of_server_errors_is_ridden_out(
    fault_world: FaultWorld, fault_twin: FaultWorld
) -> None:
    fault_world.sheets.fail_next("503", "503", "429", "429", "500")
    waits: list[float] = []
    outcome = fault_world.run(services=fault_world.services(sheet_sleep=waits.append))
    fault_twin.run()
    assert outcome.exit_code == 0, outcome.summary["failed"]
    assert len(waits) == 5 and waits == sorted(waits)  # backoff grows
    assert fault_world.published() == fault_twin.published()


# ---------------------------------------------------------------- MongoDB


def test_mongodb_unreachable_at_start_exits_1_and_writes_nothing(fault_world: FaultWorld) -> None:
    world = fault_world
    before = world.everything()
    dead = f"mongodb://backtests:s3cret-Pa55@127.0.0.1:{free_port()}/?directConnection=true"
    got = world.cli("--json", env=world.env(MONGO_URI=dead), fresh=True)
    assert got.returncode == 1, got.stderr
    assert "unreachable" in got.stderr
    assert "s3cret-Pa55" not in got.stderr + got.stdout
    assert world.everything() == before  # no rename, no sheet, no state
    assert world.drive.stats.renames == 0 and world.sheets.writes() == 0


def test_mongodb_unreachable_says_host_port_and_cause_in_one_line(fault_world: FaultWorld) -> None:
    """Issue 11 item 16: one line naming host, port and the likely cause; no topology dump
    cut mid-word, no password."""
    world = fault_world
    port = free_port()
    dead = f"mongodb://backtests:s3cret-Pa55@127.0.0.1:{port}/?directConnection=true"
    got = world.cli(env=world.env(MONGO_URI=dead), fresh=True)
    assert got.returncode == 1, got.stderr
    lines = [line for line in got.stderr.splitlines() if "unreachable" in line]
    assert len(lines) == 1, got.stderr
    assert f"127.0.0.1:{port} refused the connection: nothing listens there" in lines[0]
    assert "Topology" not in got.stderr and "s3cret-Pa55" not in got.stderr


def test_cli_summary_json_reports_a_failed_sheet(fault_world: FaultWorld, tmp_path: Path) -> None:
    """The CLI maps a failed sink to exit 1 and says which one in the JSON summary."""
    world = fault_world
    world.sheets.share(SHEET_KEY, False)  # 403: not retried, so the CLI answers quickly
    got = world.cli("--json")
    assert got.returncode == 1, got.stderr
    summary = json.loads(got.stdout)
    assert summary["exit_code"] == 1 and summary["ok"] is False
    assert list(summary["failed"]) == ["sheet"]
    assert summary["mongo"]["in_sync"] is True
    assert "failed: sheet" in got.stderr


# ---------------------------------------------------------------- state file and CACHE_DIR


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xff\xfe not json at all \x80" * 10)


def _older_version(path: Path) -> None:
    doc = json.loads(path.read_text())
    doc["version"] = 0
    path.write_text(json.dumps(doc))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _drive_part_malformed(path: Path) -> None:
    doc = json.loads(path.read_text())
    doc["drive"]["listed_at"] = "yesterday"
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "damage",
    [_truncate, _garbage, _older_version, _empty, _drive_part_malformed],
    ids=["truncated", "corrupted", "older-version", "empty", "drive-part-malformed"],
)
def test_a_damaged_state_file_is_a_warning_and_a_full_correct_run(
    fault_world: FaultWorld,
    fault_twin: FaultWorld,
    damage: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = fault_world
    world.run()
    fault_twin.run()
    edit(world)
    edit(fault_twin)
    path = state_path(world.cache_dir)
    damage(path)  # type: ignore[operator]
    caplog.clear()
    outcome = world.run()
    fault_twin.run()
    assert outcome.exit_code == 0
    assert outcome.summary["drive"]["full"] is True  # nothing trusted: the whole drive read
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        (("state file" in w or "snapshot" in w) and "ignoring" in w) or "unusable" in w
        for w in warnings
    ), warnings
    assert world.published() == fault_twin.published()
    # The file is whole again and trusted by the next run.
    saved, warning = state.load(path)
    assert warning is None and saved.last_success is not None
    assert world.run().summary.get("unchanged") is True


def test_a_missing_cache_dir_is_created(fault_world: FaultWorld) -> None:
    world = fault_world
    deep = world.workdir / "not" / "yet" / "there"
    got = world.cli("--json", env=world.env(CACHE_DIR=str(deep)))
    assert got.returncode == 0, got.stderr
    saved, warning = state.load(state_path(deep))
    assert warning is None and saved.last_success is not None


@pytest.mark.parametrize("where", ["is-a-file", "under-a-file"])
def test_an_unusable_cache_dir_exits_1_with_a_clear_message_and_writes_nothing(
    fault_world: FaultWorld, where: str
) -> None:
    world = fault_world
    blocker = world.workdir / "cache-file"
    blocker.write_text("I am a file, not a directory\n")
    cache = blocker if where == "is-a-file" else blocker / "cache"
    before = world.everything()
    got = world.cli("--json", env=world.env(CACHE_DIR=str(cache)))
    assert got.returncode == 1, got.stderr
    assert "CACHE_DIR" in got.stderr and str(blocker) in got.stderr
    assert "Traceback" not in got.stderr
    assert world.everything() == before
    assert world.drive.stats.requests == 0  # stopped before reading anything


def test_an_unwritable_state_file_exits_1_and_writes_nothing(fault_world: FaultWorld) -> None:
    """The state file's place is taken by a directory (a file that cannot be replaced):
    the run cannot remember what it does, so it must not do it."""
    world = fault_world
    state_path(world.cache_dir, state.source_key("drive", world.root)).mkdir(parents=True)
    before = world.everything()
    got = world.cli("--json")
    assert got.returncode == 1, got.stderr
    assert "state file" in got.stderr and "CACHE_DIR" in got.stderr
    assert "Traceback" not in got.stderr
    assert world.everything() == before


# ---------------------------------------------------------------- MongoDB lost mid-apply


class _Server:
    """A SecantusDB of this test's own, on disk, so it can be stopped and restarted
    with its data (the session-wide server is never touched)."""

    def __init__(self, storage: Path) -> None:
        found = secantus.executable()
        if found is None:
            pytest.skip(f"SecantusDB is not installed: {secantus.INSTALL_HINT}")
        self.command = [str(found), "--host", "127.0.0.1", "--port", str(secantus.free_port())]
        self.command += ["--storage-path", str(storage), "--log-level", "WARNING"]
        self.port = int(self.command[4])
        self.uri = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + secantus.START_TIMEOUT_S
        while not secantus.ping(self.uri):
            assert self.process.poll() is None, "SecantusDB exited at start"
            assert time.monotonic() < deadline, "SecantusDB did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


@pytest.fixture(scope="module")
def restartable_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    """One on-disk server for this module's tests; each test may stop and restart it."""
    server = _Server(tmp_path_factory.mktemp("mongo-data"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class _StopServerAtWrite(monitoring.CommandListener):
    """Stops the server just before the `at`-th write command (insert/update/delete) of
    the store goes out: the connection is lost between two phases of the plan."""

    def __init__(self, at: int, server: _Server) -> None:
        self.at = at
        self.server = server
        self.writes = 0
        self.fired = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("insert", "update", "delete"):
            self.writes += 1
            if self.writes == self.at and not self.fired:
                self.fired = True
                self.server.stop()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def big_edit(world: FaultWorld) -> None:
    """Edits whose plan has every phase: inserts (a new department too), updates and
    deletes (a whole department), staying under the mass-delete guard."""
    d = world.drive
    d.add_file(d.add_folder("d0", "CSCI-4960 Special Topics", "n-c"), "CSCI-4960 E1F23.pdf", "n-f1")
    phys = d.add_folder(world.root, "PHYS", "n-d")
    d.add_file(d.add_folder(phys, "PHYS-1100 Physics I", "n-pc"), "PHYS-1100 Q1S24.pdf", "n-f2")
    d.rename("c02", "CSCI-2300 Algorithms")
    d.add_file("c10", "MATH-1010 E3F23.pdf", file_id="n-f3")
    d.trash("d2")  # ECSE: its code and three courses go


@pytest.mark.parametrize(
    "at", [2, 4, 6], ids=["after-backtest-inserts", "before-updates", "mid-deletes"]
)
def test_mongodb_lost_in_the_middle_of_a_plan_converges_on_the_next_run_keeping_ids(
    tmp_path: Path, fault_twin: FaultWorld, restartable_server: _Server, at: int
) -> None:
    server = restartable_server
    with ExitStack() as stack:
        world = make_fault_world(stack, MongoServer(server.uri, server.port), tmp_path, "lost")
        world.run()
        fault_twin.run()
        ids_before = world.course_ids()
        remembered, _ = state.load(state_path(world.cache_dir))
        assert remembered.mongo is not None and remembered.mongo["catalog"]  # read it now:
        # the run replaces snapshot.json, whose values a loaded state reads on first use.
        big_edit(world)
        big_edit(fault_twin)

        counter = RoundTrips()
        killer = _StopServerAtWrite(at, server)
        client: MongoClient[Any] = MongoClient(
            server.uri, serverSelectionTimeoutMS=1500, event_listeners=[counter, killer]
        )
        store = Store(client, world.db_name, round_trips=counter, uri=server.uri)
        broken = world.run(services=world.services(store=store))
        assert killer.fired
        assert broken.exit_code == 1
        assert set(broken.summary["failed"]) == {"mongo"}
        assert "unreachable" in broken.summary["failed"]["mongo"]
        saved, _ = state.load(state_path(world.cache_dir))
        # MongoDB's part of the state still says what the first run published.
        assert saved.mongo == remembered.mongo and saved.last_success == remembered.last_success

        server.start()  # same port, same data: whatever the phases before the loss wrote
        half_way = world.course_ids()
        healed = world.run()
        fault_twin.run()
        assert healed.exit_code == 0, healed.summary["failed"]
        assert world.published() == fault_twin.published()
        after = world.course_ids()
        # Every course that survived keeps the `_id` the website links to: those of the
        # first run, and those the interrupted run had already inserted.
        kept = {f: _id for f, _id in {**ids_before, **half_way}.items() if f in after}
        assert kept  # some courses survived: there is something to compare
        for folder_id, _id in kept.items():
            assert after[folder_id] == _id, folder_id
        assert set(after) == set(fault_twin.course_ids())


# ---------------------------------------------------------------- issue 11: each sink alone


def test_a_401_on_rename_batch_parts_leaves_mongo_and_the_sheet_applied(
    fault_world: FaultWorld, fault_twin: FaultWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure inside the rename step (here the client library cannot refresh
    anonymous credentials after a 401 on a batch part) stops only the renames: MongoDB
    and the sheet are applied, the traceback is logged at ERROR and kept for Sentry."""
    world = fault_world
    world.drive.faults.part_every = 1
    world.drive.faults.part_kinds = ("401",)
    with caplog.at_level(logging.INFO):
        got = world.run()
    assert got.exit_code == 1
    assert list(got.summary["failed"]) == ["renames"]
    assert "unexpected failure" in got.summary["failed"]["renames"]
    assert got.summary["mongo"]["in_sync"] is True and got.summary["sheet"]["written"] is True
    assert not isinstance(got.failures["renames"], RunError)  # a bug: the CLI reports it
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert errors and "renames: unexpected failure" in errors[0].getMessage()
    # The website shows what a fault-free run publishes; only the renames are pending.
    reference = fault_twin.run()
    assert without_ids(world.view()) == without_ids(fault_twin.view())
    assert got.summary["renames"]
    assert not any(r["applied"] for r in got.summary["renames"])
    world.drive.faults.part_every = 0
    healed = world.run()
    assert healed.exit_code == 0, healed.summary["failed"]
    assert world.published() == fault_twin.published()
    assert reference.exit_code == 0


def test_a_library_error_in_the_mongo_sink_leaves_the_sheet_written(
    fault_world: FaultWorld,
) -> None:
    """An unexpected error inside one sink (a bug, not a service failure) is that sink's
    failure: logged with its traceback, reported, exit 1, the other sinks still run."""
    world = fault_world
    services = world.services()

    class Broken(type(services.store)):  # type: ignore[misc]
        def apply(self, *args: Any, **kwargs: Any) -> Any:
            raise KeyError("writeErrors")

    services.store.__class__ = Broken
    got = world.run(services=services)
    assert got.exit_code == 1
    assert got.summary["failed"] == {"mongo": "unexpected failure: KeyError: 'writeErrors'"}
    assert got.summary["sheet"]["written"] is True
    assert got.summary["mongo"]["applied"] is False and got.summary["mongo"]["in_sync"] is False
    assert [type(e) for e in got.failures.values()] == [KeyError]
    assert "failed: mongo" in got.line()


# ---------------------------------------------------------------- issue 11: --json, exit codes


def test_mongodb_unreachable_still_prints_one_json_object(fault_world: FaultWorld) -> None:
    world = fault_world
    dead = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    env = world.env(MONGO_URI=dead)
    got = world.cli("--json", env=env)
    assert got.returncode == 1, got.stderr
    summary = json.loads(got.stdout)
    assert (summary["ok"], summary["exit_code"], list(summary["failed"])) == (False, 1, ["mongo"])
    assert "unreachable" in summary["failed"]["mongo"]
    # What was known: the catalog was built before MongoDB was asked.
    assert len(summary["catalog"]["courses"]) == 10 and summary["problems"]
    assert summary["api_calls"]["drive"] >= 1
    check = world.cli("check", "--json", env=env)
    assert check.returncode == 5, check.stderr  # could not check, not "out of sync"
    assert json.loads(check.stdout)["exit_code"] == 5
    assert "could not check" in check.stderr


def test_check_says_out_of_sync_with_1_and_could_not_check_with_5(
    fault_world: FaultWorld,
) -> None:
    world = fault_world
    assert world.cli("check").returncode == 1  # nothing published yet: out of sync
    assert world.cli("--json").returncode == 0
    assert world.cli("check").returncode == 0
    world.sheets.share(SHEET_KEY, False)
    got = world.cli("check", "--json")
    assert got.returncode == 5, got.stderr
    summary = json.loads(got.stdout)
    assert list(summary["failed"]) == ["sheet"] and summary["exit_code"] == 5
    world.sheets.share(SHEET_KEY, True)
    world.drive.add_file("c10", "MATH-1010 E3F23.pdf", file_id="n-new")
    assert world.cli("check").returncode == 1


def test_a_settings_error_with_json_prints_one_object(fault_world: FaultWorld) -> None:
    got = fault_world.cli("--json", env=fault_world.env(MAX_DELETE_FRACTION="lots"))
    assert got.returncode == 2
    summary = json.loads(got.stdout)
    assert (summary["ok"], summary["exit_code"], list(summary["failed"])) == (
        False,
        2,
        ["settings"],
    )
    assert "MAX_DELETE_FRACTION" in summary["failed"]["settings"]


# ---------------------------------------------------------------- issue 11: partial MongoDB apply


def test_a_mongo_apply_cut_part_way_reports_what_was_applied(
    tmp_path: Path, restartable_server: _Server
) -> None:
    server = restartable_server
    with ExitStack() as stack:
        world = make_fault_world(stack, MongoServer(server.uri, server.port), tmp_path, "cut")
        world.run()
        before = world.documents()
        big_edit(world)
        counter = RoundTrips()
        killer = _StopServerAtWrite(2, server)  # the backtests go in, then the server dies
        client: MongoClient[Any] = MongoClient(
            server.uri, serverSelectionTimeoutMS=1500, event_listeners=[counter, killer]
        )
        store = Store(client, world.db_name, round_trips=counter, uri=server.uri)
        broken = world.run(services=world.services(store=store))
        server.start()
        mongo = broken.summary["mongo"]
        after = world.documents()
        new_docs = sum(
            len({d["_id"] for d in after[c]} - {d["_id"] for d in before.get(c, [])}) for c in after
        )
        # The counts are what the database really got, not the plan.
        assert mongo["inserted"] == new_docs == 2  # the two new courses' backtests
        assert (mongo["updated"], mongo["deleted"]) == (0, 0)
        assert mongo["applied"] is False and mongo["in_sync"] is False
        assert mongo["not_applied"] == {"inserted": 3, "updated": 2, "deleted": 7}
        phases = {p["phase"]: (p["planned"], p["applied"]) for p in mongo["phases"]}
        assert phases["insert backtests"] == (2, 2) and phases["insert courses"] == (2, 0)
        line = broken.line()
        assert "mongo +2 ~0 -0 (not applied: +3 ~2 -7)" in line
        # Nothing the website shows changed: the new backtests point at no course yet.
        assert broken.summary["website"] == {"added": [], "removed": [], "renamed": []}


# ---------------------------------------------------------------- issue 11: the sheet


def test_sync_repairs_a_deleted_report_tab_on_an_unchanged_drive(fault_world: FaultWorld) -> None:
    """What `check` finds in the sheet, `sync` repairs, also when the drive is unchanged:
    the spreadsheet's Drive `version` tells that someone else wrote to it."""
    world = fault_world
    assert world.cli("--json").returncode == 0
    published = world.sheet()
    # Unchanged and untouched: at most 2 Drive calls, no Sheets call, nothing written.
    world.sheets.reset_log()
    quiet = json.loads(world.cli("--json").stdout)
    assert quiet["unchanged"] is True
    assert quiet["api_calls"]["drive"] <= 2 and quiet["api_calls"]["sheets"] == 0
    assert world.sheets.calls() == 0

    world.sheets.delete_tab(SHEET_KEY, "Errors in Drive")  # a person's edit
    assert world.cli("check").returncode == 1
    repaired = world.cli("--json")
    assert repaired.returncode == 0, repaired.stderr
    summary = json.loads(repaired.stdout)
    assert summary["unchanged"] is True and summary["sheet"]["written"] is True
    assert summary["api_calls"]["drive"] <= 3  # changes, version, version after the write
    without_tab_ids = {k: v for k, v in world.sheet().items() if k != "_"}
    assert without_tab_ids == {k: v for k, v in published.items() if k != "_"}
    assert world.cli("check").returncode == 0
    # Our own write is not mistaken for someone else's on the next run.
    world.sheets.reset_log()
    after = json.loads(world.cli("--json").stdout)
    assert after["api_calls"]["sheets"] == 0 and world.sheets.calls() == 0


def test_a_hand_edit_outside_the_report_reads_the_sheet_once_and_writes_nothing(
    fault_world: FaultWorld,
) -> None:
    world = fault_world
    assert world.cli("--json").returncode == 0
    world.sheets.set_values(SHEET_KEY, "Physical Copies of Backtests", "E2", [[3]])
    world.sheets.reset_log()
    got = json.loads(world.cli("--json").stdout)
    assert got["sheet"]["written"] is False and world.sheets.writes() == 0
    world.sheets.reset_log()
    json.loads(world.cli("--json").stdout)
    assert world.sheets.calls() == 0  # the new version was remembered


def test_a_renamed_copies_tab_fails_the_sheet_step_and_is_never_recreated(
    fault_world: FaultWorld,
) -> None:
    world = fault_world
    world.sheets.rename_tab(SHEET_KEY, "Physical Copies of Backtests", "Copies (old)")
    got = world.cli("--json")
    assert got.returncode == 1, got.stderr
    summary = json.loads(got.stdout)
    assert list(summary["failed"]) == ["sheet"]
    why = summary["failed"]["sheet"]
    assert "'Physical Copies of Backtests'" in why and "SHEET_COPIES_TAB" in why
    assert "'Copies (old)'" in why  # the tabs that do exist
    assert summary["mongo"]["in_sync"] is True  # MongoDB was still applied
    assert "Physical Copies of Backtests" not in world.sheets.tab_titles(SHEET_KEY)
    assert world.sheets.writes() == 0
    fixed = world.cli("--json", env=world.env(SHEET_COPIES_TAB="Copies (old)"))
    assert fixed.returncode == 0, fixed.stderr
    assert world.sheets.value(SHEET_KEY, "Copies (old)", "F3") == 4  # MATH-1010's count


# ---------------------------------------------------------------- issue 11: a full CACHE_DIR


@pytest.mark.parametrize("where", ["lock", "state"])
def test_a_full_cache_dir_is_said_as_such_and_keeps_the_state(
    fault_world: FaultWorld, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """ENOSPC while writing the lock or the state file: one clear message naming
    CACHE_DIR and its path; the state file is the previous one; nothing else written."""
    from backtest_compilation import files
    from backtest_compilation import lock as lock_mod

    world = fault_world
    world.run()
    edit(world)
    before = world.everything()

    def full(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "lock":
        monkeypatch.setattr(lock_mod.os, "pwrite", full)
    else:
        monkeypatch.setattr(files.tempfile, "mkstemp", full)
    failed = world.run()
    monkeypatch.undo()
    assert failed.exit_code == RunError.exit_code
    (message,) = failed.summary["failed"].values()
    assert f"CACHE_DIR {str(world.cache_dir)!r} is full" in message
    assert "No space left on device" in message and "previous state is kept" in message
    assert failed.summary["failed"] == {("lock" if where == "lock" else "state"): message}
    assert world.everything() == before
    assert world.run().exit_code == 0  # space again: the run converges


# ---------------------------------------------------------------- issue 11: ids come back


def test_a_course_folder_that_comes_back_within_30_days_gets_its_id_back(
    fault_world: FaultWorld,
) -> None:
    world = fault_world
    config = world.settings()
    clock = [datetime(2026, 11, 20, 14, 2, tzinfo=UTC)]

    def run() -> pipeline.RunSummary:
        services = world.services(config)
        services.clock = lambda: clock[0]
        return world.run(config, services=services)

    assert run().exit_code == 0
    ids = world.course_ids()
    world.drive.add_folder(world.root, "Archive 2019", file_id="x-away")
    world.drive.move("c10", "x-away")  # MATH-1010 leaves the tree…
    gone = run()
    assert gone.summary["website"]["removed"] == ["MATH-1010 Calculus I"]
    assert "c10" not in world.course_ids()
    clock[0] += timedelta(days=29)
    world.drive.move("c10", "d1")  # … and comes back
    back = run()
    assert back.summary["website"]["added"] == ["MATH-1010 Calculus I"]
    assert world.course_ids()["c10"] == ids["c10"]
    assert world.course_ids() == ids
    # Away longer than 30 days: a new `_id` (the old one is forgotten).
    world.drive.move("c11", "x-away")
    run()
    clock[0] += timedelta(days=31)
    world.drive.move("c11", "d1")
    run()
    assert world.course_ids()["c11"] != ids["c11"]


# ---------------------------------------------------------------- issue 11: what changed, by name


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_each_change_is_logged_by_name_and_long_lists_are_capped(
    fault_world: FaultWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world = fault_world
    world.run()
    for n in range(60):  # 60 renames: more than the 50 lines a list may take
        name = f"math-4100 q{n:02d} f{n % 20 + 1:02d}.pdf"
        world.drive.add_file("c12", name, file_id=f"r{n:02d}")
    world.drive.rename("c02", "CSCI-2300 Algorithms")
    world.drive.trash("c21")  # ECSE-2010 leaves the website
    world.drive.add_folder("d1", "MATH-4960 Topology", "n-topo")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        got = world.run()
    info = _messages(caplog, logging.INFO)
    renamed = [m for m in info if m.startswith("renamed: ")]
    assert len(renamed) == 51 and renamed[-1] == "renamed: … and 10 more (see --json)"
    assert (
        "renamed: MATH / MATH-4100 Linear Algebra / math-4100 q00 f01.pdf → MATH-4100 Q00F01.pdf"
        in info
    )
    assert "website: added course: MATH-4960 Topology" in info
    assert "website: removed course: ECSE-2010 Electric Circuits" in info
    assert "website: renamed course: CSCI-2300 Intro to Algorithms → CSCI-2300 Algorithms" in info
    assert "website: 1 courses added, 1 removed, 1 renamed" in info
    # The full lists are in the summary (--json, last-run.json).
    assert sum(r["applied"] for r in got.summary["renames"]) == 60
    assert got.summary["website"] == {
        "added": ["MATH-4960 Topology"],
        "removed": ["ECSE-2010 Electric Circuits"],
        "renamed": [{"from": "CSCI-2300 Intro to Algorithms", "to": "CSCI-2300 Algorithms"}],
    }


def test_problems_are_logged_once_when_new_and_once_when_resolved(
    fault_world: FaultWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world = fault_world
    with caplog.at_level(logging.INFO):
        first = world.run()
    total = len(first.summary["problems"])
    assert (
        len([m for m in _messages(caplog, logging.WARNING) if m.startswith("problem: ")]) == total
    )
    # The drive changes, but none of its problems: not one of them is logged again.
    world.drive.add_file("c10", "MATH-1010 E3F23.pdf", file_id="n-new")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = world.run()
    assert not [m for m in _messages(caplog, logging.WARNING) if m.startswith("problem")]
    assert second.summary["problem_changes"] == {"new": 0, "resolved": 0}
    # One new problem, one resolved.
    world.drive.add_file("c10", "notes.txt", "text/plain", file_id="n-txt")
    world.drive.delete("f105")  # MATH-1010's "scan 0042.pdf"
    caplog.clear()
    with caplog.at_level(logging.INFO):
        third = world.run()
    warnings = [m for m in _messages(caplog, logging.WARNING) if m.startswith("problem")]
    assert warnings == ["problem: Not a PDF: MATH / MATH-1010 Calculus I / notes.txt"]
    resolved = [m for m in _messages(caplog, logging.INFO) if m.startswith("resolved: ")]
    assert len(resolved) == 1 and "MATH-1010 Calculus I / scan 0042.pdf" in resolved[0]
    assert third.summary["problem_changes"] == {"new": 1, "resolved": 1}
    line = third.line()
    assert f"{total} problems (1 new, 1 resolved)" in line


def test_problems_are_counted_by_kind_and_drive_id(
    fault_world: FaultWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 17 item 7: two same-named files are two problems, everywhere; retitling a
    course changes its problems' messages, not which problems there are."""
    world = fault_world
    world.drive.add_file("c10", "notes.txt", "text/plain", file_id="n-a")
    world.drive.add_file("c10", "notes.txt", "text/plain", file_id="n-b")
    with caplog.at_level(logging.INFO):
        first = world.run()
    total = len(first.summary["problems"])
    said = [m for m in _messages(caplog, logging.INFO) if m.startswith("problems: ")]
    assert said == [f"problems: {total} in all, {total} new since the last run, 0 resolved"]
    assert first.summary["problem_changes"] == {"new": total, "resolved": 0}
    world.drive.rename("c10", "MATH-1010 Calculus One")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = world.run()
    assert second.summary["problem_changes"] == {"new": 0, "resolved": 0}
    assert not [m for m in _messages(caplog, logging.INFO) if m.startswith(("problem", "resolved"))]
    assert any("Calculus One / notes.txt" in p["message"] for p in second.summary["problems"])


def test_a_full_disk_after_the_writes_still_reports_what_was_done(
    fault_world: FaultWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17 item 6: the state cannot be saved after MongoDB and the renames wrote:
    the run fails (exit 1, `failed.state`) and every block says what was done."""
    from backtest_compilation.errors import cache_dir_error

    world = fault_world
    world.run()
    edit(world)
    saves = {"n": 0}
    real = pipeline.state.save

    def full_after_the_first(path: Path, *args: Any, **kwargs: Any) -> Any:
        saves["n"] += 1
        if saves["n"] > 1:  # the save before any write works; the ones after do not
            raise cache_dir_error(OSError(errno.ENOSPC, "No space left on device"), path, "x")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pipeline.state, "save", full_after_the_first)
    got = world.run()
    summary = got.summary
    assert (got.exit_code, list(summary["failed"])) == (1, ["state"])
    assert "is full" in summary["failed"]["state"]
    assert summary["mongo"]["inserted"] + summary["mongo"]["updated"] >= 2
    assert summary["website"]["renamed"] == [
        {"from": "CSCI-2300 Intro to Algorithms", "to": "CSCI-2300 Algorithms"}
    ]
    renamed = {r["id"]: r["applied"] for r in summary["renames"]}
    assert renamed["n-rename"] is True and world.drive_names()["n-rename"] == "MATH-2010 QF21.pdf"
    assert summary["sheet"]["written"] is True
    monkeypatch.undo()
    assert world.run().exit_code == 0  # space again: the run converges


# ---------------------------------------------------------------- issue 11: a local --source


def _local_drive(tmp_path: Path) -> Path:
    from backtest_compilation import sample

    copy = tmp_path / "local-drive"
    shutil.copytree(sample.SAMPLE_DRIVE, copy)
    return copy


def test_a_local_source_writes_no_sheet_and_no_real_database(
    fault_world: FaultWorld, tmp_path: Path
) -> None:
    world = fault_world
    assert world.cli("--json").returncode == 0
    before = {k: v for k, v in world.everything().items() if k != "state"}
    got = world.cli("--json", "--source", str(_local_drive(tmp_path)))
    assert got.returncode == 0, got.stderr
    summary = json.loads(got.stdout)
    assert summary["sheet"]["written"] is False and summary["mongo"]["inserted"] > 0
    assert "in-process MongoDB" in got.stderr and "--publish" in got.stderr
    assert "a local --source writes no sheet" in got.stderr
    assert {k: v for k, v in world.everything().items() if k != "state"} == before
    # And the Drive source's memory was not touched: its next run is an unchanged one.
    again = json.loads(world.cli("--json").stdout)
    assert again["unchanged"] is True and again["mongo"]["in_sync"] is True


def test_a_local_dry_run_compares_with_the_database_the_real_run_would_use(
    fault_world: FaultWorld, tmp_path: Path
) -> None:
    """Issue 17 item 3: `--source DIR --dry-run` without `--publish` shows what the same
    command without `--dry-run` does: inserts into an empty in-process database, never
    "would delete" what MONGO_URI's website holds."""
    world = fault_world
    assert world.cli("--json").returncode == 0
    before = {k: v for k, v in world.everything().items() if k != "state"}
    drive = _local_drive(tmp_path)
    got = world.cli("--json", "--dry-run", "--source", str(drive))
    assert got.returncode == 0, got.stderr
    mongo = json.loads(got.stdout)["mongo"]
    assert mongo["inserted"] > 0 and mongo["deleted"] == 0 and mongo["updated"] == 0
    assert "would delete" not in got.stderr and "course removed" not in got.stderr
    real = json.loads(world.cli("--json", "--source", str(drive)).stdout)["mongo"]
    assert real["inserted"] == mongo["inserted"] and real["deleted"] == 0
    assert {k: v for k, v in world.everything().items() if k != "state"} == before


def test_a_published_local_run_never_short_cuts_the_next_drive_run(
    fault_world: FaultWorld, tmp_path: Path
) -> None:
    """The issue's case: a local source written to the real sheet and database; the next
    Drive run must put back what the drive holds (not say "sheet not written")."""
    world = fault_world
    assert world.cli("--json").returncode == 0
    published = world.published()
    local = world.cli("--json", "--source", str(_local_drive(tmp_path)), "--publish")
    assert local.returncode == 0, local.stderr
    assert world.published() != published  # the try-out really wrote both
    assert world.cli("check").returncode == 1
    healed = world.cli("--json")
    assert healed.returncode == 0, healed.stderr
    summary = json.loads(healed.stdout)
    assert summary["sheet"]["written"] is True
    assert world.published()[:2] == published[:2]  # website and sheet as the drive says
    assert world.cli("check").returncode == 0


# ---------------------------------------------------------------- issue 19: one run record


def test_after_an_unchanged_run_the_record_and_the_report_show_the_current_state(
    fault_world: FaultWorld,
) -> None:
    """An unchanged run rewrites only a few hundred bytes of run facts: `last-run.json`
    and `report.html` still show the problems, classes not found and renames of the
    state the drive is in, and `status` names the unchanged run as the last one."""
    world = fault_world
    cache = world.cache_dir
    first = world.cli("--json")
    assert first.returncode == 0, first.stderr
    not_found = json.loads(first.stdout)["sheet"]["not_found"]
    assert not_found
    record, page = (cache / "last-run.json").read_text(), (cache / "report.html").read_text()
    second = world.cli("--json")
    assert second.returncode == 0 and json.loads(second.stdout)["unchanged"] is True
    assert (cache / "last-run.json").read_text() == record
    assert (cache / "report.html").read_text() == page
    assert f"Classes not found in the sheet ({len(not_found)})" in page
    assert "MATH-2010 QF21.pdf" not in page or "Renames" in page
    facts = (cache / "last-success.json").read_bytes()
    assert len(facts) < 1000
    status = json.loads(world.cli("status", "--json").stdout)
    assert status["ok"] is True
    assert status["last_run"]["finished_at"] == json.loads(facts)["finished_at"]
    assert status["last_run"]["finished_at"] >= json.loads(record)["finished_at"]


def test_a_local_source_leaves_the_drive_runs_record_untouched(
    fault_world: FaultWorld, tmp_path: Path
) -> None:
    world = fault_world
    assert world.cli("--json").returncode == 0
    files = ("last-run.json", "last-success.json", "report.html")
    before = {name: (world.cache_dir / name).read_bytes() for name in files}
    local = world.cli("--json", "--source", str(_local_drive(tmp_path)))
    assert local.returncode == 0, local.stderr
    assert {name: (world.cache_dir / name).read_bytes() for name in files} == before
    assert json.loads(world.cli("status", "--json").stdout)["last_run"]["counts"]["courses"] == 10


def test_every_run_ends_with_its_summary_line_failed_ones_too(fault_world: FaultWorld) -> None:
    world = fault_world
    dead = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    for args, env in (
        (("--json",), world.env(MONGO_URI=dead)),  # MongoDB unreachable: exit 1
        (("check",), world.env(MONGO_URI=dead)),  # could not check: exit 5
        (("--json",), world.env(SHEETS_API_ENDPOINT="http://127.0.0.1:9")),  # a sink fails
    ):
        got = world.cli(*args, env=env)
        assert got.returncode != 0
        last = got.stderr.strip().splitlines()[-1]
        assert " summary: " in last and f"exit {got.returncode}" in last, got.stderr
