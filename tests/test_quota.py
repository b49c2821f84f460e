"""Google's quotas (contract §5.9): renames under Drive's write limit, the sheet under the
Sheets quota, and the time budgets — against the emulators over HTTP.

Rename phases run on the source's clock (real time plus every wait an injected sleep
skipped), and the Drive emulator's write limit counts on the same clock: a run that
would take a minute takes a second, and the limit is met exactly as with real waits."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httplib2
import pytest
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build
from googleapiclient.http import BatchHttpRequest

from backtest_compilation import google, sheet, state
from backtest_compilation.catalog import Category, Rename
from backtest_compilation.drive import DriveCallError, DriveSource
from backtest_compilation.errors import ServiceError
from emulators.drive import WRITES_PER_SECOND, DriveEmulator
from emulators.google import BETWEEN_RUNS_S, QuotaClock
from emulators.sheets import SheetsEmulator
from tests.support.cache import state_path
from tests.support.fixtures_faults import SHEET_KEY, FaultWorld

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
COPIES = "Physical Copies of Backtests"


def source_for(emu: DriveEmulator, root: str, **options: object) -> DriveSource:
    """A source whose waits are not slept but counted, sharing its clock with `emu`."""
    options.setdefault("sleep", lambda _s: None)
    source = DriveSource(
        root,
        credentials=AnonymousCredentials(),
        endpoint=emu.url,
        allow_renames=True,
        **options,  # type: ignore[arg-type]
    )
    emu.clock = source.clock.now
    return source


def misnamed(emu: DriveEmulator, count: int) -> tuple[str, list[Rename]]:
    root = emu.add_drive("Backtests")
    course = emu.add_folder(root, "CSCI-1200 Data Structures")
    renames = []
    for n in range(count):
        fid = emu.add_file(course, f"csci-1200 e1 f22 {n}.pdf")
        renames.append(
            Rename(
                fid,
                f"CSCI / CSCI-1200 Data Structures / {n}",
                f"csci-1200 e1 f22 {n}.pdf",
                f"CSCI-1200 E1F{n}.pdf",
            )
        )
    return root, renames


@pytest.mark.parametrize(
    ("per_second", "answer"),
    [
        pytest.param(5, "403-user-rate", id="5 writes/s, 403 userRateLimitExceeded"),
        pytest.param(20, "403-user-rate", id="20 writes/s, 403 userRateLimitExceeded"),
        pytest.param(5, "429", id="5 writes/s, 429"),
        pytest.param(20, "403-rate", id="20 writes/s, 403 rateLimitExceeded"),
    ],
)
def test_every_rename_is_applied_in_one_run_under_a_write_limit(
    per_second: float, answer: str
) -> None:
    with DriveEmulator() as emu:
        root, renames = misnamed(emu, 400)
        emu.reset_stats()
        # DRIVE_WRITES_PER_S set above Drive's limit: the pacer finds the limit.
        source = source_for(emu, root, writes_per_s=2 * per_second)
        emu.limit_writes(per_second, answer=answer)
        result = source.rename(renames)
        assert result.applied == {r.id for r in renames}
        assert not result.problems and not result.pending
        assert all(emu.files[r.id].name == r.new for r in renames)
        assert emu.write_limit is not None and emu.write_limit.refused > 0  # it was hit
        assert emu.stats.batch_parts <= 1.3 * len(renames)


@pytest.mark.parametrize(
    ("count", "most_batches", "most_attempts"),
    [
        pytest.param(10, 8, 15, id="10 renames"),
        pytest.param(90, 65, 117, id="90 renames"),
    ],
)
def test_renames_settle_at_googles_rate_at_once(
    count: int, most_batches: int, most_attempts: int
) -> None:
    """At Google's 3 writes a second (burst 3), the pacer's first refusal sets about the
    right spacing: a few batches and few refused parts, not a slow climb from 10 ms a
    write; and the rate it settles at is Google's, not below it."""
    with DriveEmulator() as emu:
        root, renames = misnamed(emu, count)
        emu.reset_stats()
        source = source_for(emu, root)
        emu.limit_writes(WRITES_PER_SECOND, burst=3.0)  # Google's, on the source's clock
        started = source.clock.now()
        result = source.rename(renames)
        took = source.clock.now() - started
        assert result.applied == {r.id for r in renames}
        assert not result.problems and not result.pending
        assert emu.stats.requests <= most_batches
        assert emu.stats.batch_parts <= most_attempts
        # Drive's burst of 3, then 3 a second: no faster is possible, and not much slower.
        assert (count - 3) / WRITES_PER_SECOND <= took <= count / WRITES_PER_SECOND / 0.9 + 1.0


@pytest.mark.parametrize("form", ["seconds", "date"])
def test_renames_honour_retry_after_in_both_forms(form: str) -> None:
    with DriveEmulator() as emu:
        root, renames = misnamed(emu, 60)
        source = source_for(emu, root, writes_per_s=20)  # above Drive's limit
        clock = source.clock
        sent: list[float] = []  # when each batch arrived
        emu.on_batch = lambda: sent.append(clock.now())
        emu.limit_writes(10, retry_after=form)
        result = source.rename(renames)
        assert result.applied == {r.id for r in renames} and not result.problems
        refusals = emu.stats.retry_afters  # (when, Retry-After in seconds)
        assert refusals  # Drive refused some parts, each time with a Retry-After …
        for at, wait in refusals:
            assert wait >= 0.9  # whole seconds / a date
            later = [t for t in sent if t > at]
            # … which held the next batch back at least that long.
            assert not later or later[0] - at >= wait - 0.01


def test_a_permanent_answer_among_rate_limits_is_exactly_one_problem() -> None:
    with DriveEmulator() as emu:
        root, renames = misnamed(emu, 80)
        gone = renames[37]
        emu.delete(gone.id)  # someone deleted it after the listing: 404 notFound
        source = source_for(emu, root)
        emu.limit_writes(5)
        result = source.rename(renames)
        (problem,) = result.problems
        assert problem.category is Category.RENAME_FAILED and problem.id == gone.id
        assert "404" in problem.message and gone.path in problem.message
        assert result.applied == {r.id for r in renames} - {gone.id}
        assert not result.pending


def test_nothing_succeeding_for_rename_stall_s_makes_rename_failed() -> None:
    with DriveEmulator() as emu:
        root, renames = misnamed(emu, 30)
        emu.faults.part_every = 1  # every part, for ever: 403 userRateLimitExceeded
        emu.faults.part_kinds = ("403-user-rate",)
        source = source_for(emu, root, rename_stall_s=120.0)
        started = source.clock.now()
        result = source.rename(renames)
        took = source.clock.now() - started
        assert not result.applied and not result.pending
        assert sorted(p.id for p in result.problems) == sorted(r.id for r in renames)
        assert all("RENAME_STALL_S" in p.message for p in result.problems)
        assert 120.0 <= took <= 120.0 + 2 * 2.0 * 100  # at most one slow batch past it
        assert emu.stats.requests < 200


def test_a_stall_shorter_than_rename_stall_s_is_ridden_out() -> None:
    with DriveEmulator() as emu:
        root, renames = misnamed(emu, 30)
        emu.faults.part_every = 1
        emu.faults.part_kinds = ("403-user-rate",)
        source = source_for(emu, root, rename_stall_s=300.0)
        clock = source.clock
        lift_at = clock.now() + 100.0
        emu.faults.part_while = lambda: clock.now() < lift_at
        result = source.rename(renames)
        assert result.applied == {r.id for r in renames} and not result.problems
        assert emu.stats.faults > 0  # there was a stall to ride out


def test_renames_past_rename_budget_s_are_pending_not_failed() -> None:
    with DriveEmulator() as emu:
        root, renames = misnamed(emu, 100)
        source = source_for(emu, root, rename_budget_s=10.0)
        emu.limit_writes(1.0)
        result = source.rename(renames)
        assert 5 <= len(result.applied) <= 25
        assert not result.problems
        assert result.pending == {r.id for r in renames} - result.applied
        # The next run does the rest, at Google's rate again (the bucket on its clock).
        rest = [r for r in renames if r.id in result.pending]
        next_run = source_for(emu, root)
        emu.limit_writes(WRITES_PER_SECOND)
        again = next_run.rename(rest)
        assert again.applied == result.pending and not again.pending


def test_a_request_that_never_answers_ends_within_its_budget() -> None:
    with DriveEmulator() as emu:
        root = emu.add_drive("Backtests")
        emu.faults.hang_s = 4.0
        emu.fail_every(1, ["hang"])
        source = DriveSource(
            root,
            credentials=AnonymousCredentials(),
            endpoint=emu.url,
            timeout=0.5,
            call_budget_s=3.0,
        )
        started = time.monotonic()
        with pytest.raises(DriveCallError, match="cannot reach Google"):
            source.read(None, now=NOW)
        took = time.monotonic() - started
        # Attempts of 0.5 s (httplib2 may reconnect once inside one) and jittered waits,
        # never starting a wait that would pass the 3 s budget.
        assert took <= 3.0 + 2 * 0.5 + 0.5
        assert 2 <= emu.stats.requests <= 6


# ---------------------------------------------------------------- Sheets


@pytest.mark.parametrize("form", [None, "seconds", "date"])
def test_the_sheet_is_written_under_the_sheets_quota(form: str | None) -> None:
    with SheetsEmulator(
        read_quota_per_minute=60, write_quota_per_minute=60, retry_after=form
    ) as emu:
        emu.add_spreadsheet(SHEET_KEY, tabs={COPIES: [["Course"]]})
        report = sheet.open_report(SHEET_KEY, endpoint=emu.url, sleep=lambda _s: None)
        emu.clock = report.transport.pacer.clock.now
        from backtest_compilation.catalog import Catalog

        # 45 publishes: 90 reads and 45 writes, past 60 reads in the first minute.
        for n in range(45):
            result = report.publish(Catalog(), None if n % 2 else "x", NOW)
            assert result.digest
        assert emu.throttled > 0  # the quota was met …
        assert emu.throttled <= 8  # … and waited out, not hammered
        assert emu.writes() == 45


# ---------------------------------------------------------------- whole runs


def test_pending_renames_are_reported_done_next_run_and_never_on_the_sheet(
    fault_world: FaultWorld,
) -> None:
    world = fault_world
    world.drive.limit_writes(0.5)
    first = world.run(world.settings(RENAME_BUDGET_S="3"))
    assert first.exit_code == 0
    pending = [r for r in first.summary["renames"] if r.get("pending")]
    assert pending and first.summary["renames_pending"] == len(pending)
    assert not any(r["applied"] for r in pending)
    assert not [p for p in first.summary["problems"] if p["category"] == "rename_failed"]
    assert "Rename failed" not in json.dumps(world.sheets.values(SHEET_KEY, "Errors in Drive"))
    assert first.summary["mongo"]["inserted"] > 0  # MongoDB did not wait for the renames
    saved, _ = state.load(state_path(world.cache_dir))
    assert saved.renames is None  # owed: the next run renames

    world.drive.limit_writes(WRITES_PER_SECOND)  # Google's again
    second = world.run()
    assert second.exit_code == 0 and second.summary["renames_pending"] == 0
    owed = {p["id"] for p in pending}
    done = [r for r in second.summary["renames"] if r["id"] in owed]
    assert {r["id"] for r in done} == owed  # every owed rename was tried …
    assert all(r["applied"] for r in done)  # … and applied


def test_a_run_past_run_timeout_s_stops_cleanly_and_keeps_what_it_completed(
    fault_world: FaultWorld,
) -> None:
    world = fault_world
    world.sheets.latency = 30.0  # the sheet never answers in time
    started = time.monotonic()
    got = world.cli("--json", env=world.env(RUN_TIMEOUT_S="6"))
    took = time.monotonic() - started
    assert got.returncode == 1, got.stderr
    summary = json.loads(got.stdout)
    assert summary["exit_code"] == 1 and set(summary["failed"]) == {"sheet"}
    assert "RUN_TIMEOUT_S" in summary["failed"]["sheet"]
    assert "RUN_TIMEOUT_S" in got.stderr
    assert took < 6 + 6  # the timeout plus the interpreter's start and exit
    saved, _ = state.load(state_path(world.cache_dir))
    assert saved.mongo is not None and saved.sheet is None  # MongoDB's part is kept


def test_the_timeout_error_says_so() -> None:
    from backtest_compilation.google import Deadline, RunTimedOut

    err = Deadline(5).error("writing the sheet")
    assert isinstance(err, RunTimedOut) and isinstance(err, ServiceError)
    assert "RUN_TIMEOUT_S (5 s)" in str(err) and err.exit_code == 1


def test_a_long_rename_phase_logs_progress_and_summarises_rate_limits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    caplog.set_level(logging.INFO)
    with DriveEmulator() as emu:
        root, renames = misnamed(emu, 300)
        source = source_for(emu, root, writes_per_s=10)  # above Drive's limit
        emu.limit_writes(5)
        source.rename(renames)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("renames: ")]
    # 300 renames at 5/s: about a minute of (skipped) waiting, a line every 10 s or so.
    assert 4 <= len(lines) <= 8
    assert all(" of 300 applied, " in line and "/s" in line for line in lines)
    assert any("left" in line and "rate-limit answers" in line for line in lines)
    # No line per rate-limit answer.
    assert not [r for r in caplog.records if "userRateLimitExceeded" in r.getMessage()]


# ---------------------------------------------------------------- the emulators are strict


def test_emulator_ids_are_shaped_like_googles() -> None:
    import re

    with DriveEmulator() as emu:
        drive = emu.add_drive("D")
        folder = emu.add_folder(drive, "F")
        file_id = emu.add_file(folder, "x.pdf")
    assert re.fullmatch(r"0A[0-9A-Za-z]{11}Uk9PVA", drive)
    assert all(re.fullmatch(r"[0-9A-Za-z_-]{33}", i) for i in (folder, file_id))


def test_a_folded_content_id_is_unfolded_as_rfc_5322_says() -> None:
    from emulators.drive import unfold

    folded = "<0b7a2c5e-1f1e-4c8e-9d1a-3c1f1b2a9e77 +\r\n 1AbCdEfGhIjKlMnOpQrStUvWxYz012345>"
    assert unfold(folded) == (
        "<0b7a2c5e-1f1e-4c8e-9d1a-3c1f1b2a9e77 + 1AbCdEfGhIjKlMnOpQrStUvWxYz012345>"
    )
    assert unfold("a\n\tb") == "a\tb" and unfold("a\r\nb") == "a\r\nb"


def test_the_write_limit_answers_each_part_over_it() -> None:
    with DriveEmulator() as emu:
        _, renames = misnamed(emu, 12)
        emu.limit_writes(1.0, burst=4, retry_after="seconds")
        emu.reset_stats()
        answers = send_batch(emu, renames)  # one batch of 12
    kinds = [answers[r.id].kind.value for r in renames]
    assert kinds[:4] == ["ok"] * 4 and kinds[4:] == ["rate-limit"] * 8
    limited = answers[renames[-1].id]
    assert limited.status == 403 and "userRateLimitExceeded" in limited.message
    assert limited.retry_after is not None and limited.retry_after >= 1
    assert emu.stats.requests == 1 and emu.stats.rate_limited == 8


def send_batch(emu: DriveEmulator, renames: list[Rename]) -> dict[str, google.Answer]:
    """One batch of `renames` through googleapiclient itself: the answer to each part."""
    files = build(
        "drive",
        "v3",
        http=httplib2.Http(),
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": f"{emu.url}/drive/v3/"},
    ).files()
    answers: dict[str, google.Answer] = {}

    def done(request_id: str, response: Any, exc: Exception | None) -> None:
        answers[request_id] = google.answer_of(exc) if exc else google.Answer(google.Kind.OK, 200)

    batch = BatchHttpRequest(callback=done, batch_uri=f"{emu.url}/batch/drive/v3")
    for r in renames:
        batch.add(
            files.update(fileId=r.id, body={"name": r.new}, supportsAllDrives=True),
            request_id=r.id,
        )
    batch.execute()
    return answers


def test_drives_write_limit_is_googles_by_default() -> None:
    """3 writes a second per user, burst 3, each batch part counting (Google's): a batch
    of 5 renames gets 3 through; a second later 3 more; no test gets a kinder Drive."""
    clock = QuotaClock()
    with DriveEmulator(clock=clock) as emu:
        assert emu.write_limit is not None
        assert (emu.write_limit.per_second, emu.write_limit.burst) == (WRITES_PER_SECOND, 3.0)
        _, renames = misnamed(emu, 8)
        first = send_batch(emu, renames[:5])
        assert [first[r.id].kind.value for r in renames[:5]] == ["ok"] * 3 + ["rate-limit"] * 2
        assert "userRateLimitExceeded" in first[renames[4].id].message
        clock.advance(1.0)  # three tokens back, no more
        second = send_batch(emu, renames[4:])
        assert [second[r.id].kind.value for r in renames[4:]] == ["ok"] * 3 + ["rate-limit"]
        assert emu.stats.batch_parts == 9 and emu.stats.rate_limited == 3


def test_drives_write_limit_can_be_turned_off_for_benchmarks_of_our_own_overhead() -> None:
    with DriveEmulator(write_limit=None) as emu:
        assert emu.write_limit is None
        _, renames = misnamed(emu, 20)
        answers = send_batch(emu, renames)
        assert {a.kind.value for a in answers.values()} == {"ok"}


def test_a_quota_clock_file_is_one_clock_for_every_process(tmp_path: Path) -> None:
    """What a forked CLI run's waits add, the emulators' clock in the test process sees."""
    base = [100.0]
    here = QuotaClock(lambda: base[0], path=tmp_path / "quota.clock")
    there = QuotaClock(lambda: base[0], path=tmp_path / "quota.clock")  # another process
    there.sleep(2.5)
    here.between_runs()
    assert here() == there() == 100.0 + 2.5 + 61.0
    base[0] = 110.0  # real time goes on under both
    assert here() == 110.0 + 63.5


def test_sheets_reads_and_writes_have_their_own_quota() -> None:
    now = [0.0]
    with SheetsEmulator(
        read_quota_per_minute=3, write_quota_per_minute=1, clock=lambda: now[0]
    ) as emu:
        emu.add_spreadsheet(SHEET_KEY, tabs={COPIES: [["Course"]]})
        report = sheet.open_report(SHEET_KEY, endpoint=emu.url, retries=0)
        report.read()  # metadata and one values.batchGet: two reads
        with pytest.raises(ServiceError, match="429"):
            report.read()  # the fourth read in a minute
        from backtest_compilation.catalog import Catalog

        now[0] = 61.0
        report.publish(Catalog(), None, NOW)  # reads and one write: within both buckets
        assert emu.writes() == 1 and emu.throttled == 1


def test_a_hung_drive_request_ends_at_the_runs_deadline() -> None:
    from backtest_compilation.google import Deadline, RunTimedOut

    with DriveEmulator() as emu:
        root = emu.add_drive("Backtests")
        emu.faults.hang_s = 6.0
        emu.fail_every(1, ["hang"])
        source = DriveSource(
            root,
            credentials=AnonymousCredentials(),
            endpoint=emu.url,
            deadline=Deadline(1.5),  # the run's end; the request timeout is 30 s
        )
        started = time.monotonic()
        with pytest.raises(RunTimedOut, match="RUN_TIMEOUT_S"):
            source.read(None, now=NOW)
        assert time.monotonic() - started <= 1.5 + 2 * 1.5


def test_300_renames_at_googles_rate_in_a_run_keep_to_it_and_none_fails(
    fault_world: FaultWorld,
) -> None:
    """Issue 18's acceptance: at Google's 3 writes a second, 300 renames finish within
    300 / 3 / 0.9 s of quota-clock time, and no sheet row says "Rename failed"."""
    world = fault_world
    course = next(f.id for f in world.drive.files.values() if f.name.startswith("CSCI-1200"))
    planned = len(world.run().summary["renames"])  # the sample drive's own first
    for n in range(300):
        world.drive.add_file(course, f"csci-1200 q{n % 100} f{10 + n // 100}.pdf")
    started = world.clock()
    got = world.run()
    took = world.clock() - started - BETWEEN_RUNS_S  # the run starts a quota window later
    renames = got.summary["renames"]
    assert planned and len(renames) == 300 and all(r["applied"] for r in renames)
    assert got.exit_code == 0 and got.summary["renames_pending"] == 0
    assert took <= 300 / WRITES_PER_SECOND / 0.9
    assert "Rename failed" not in json.dumps(world.sheets.values(SHEET_KEY, "Errors in Drive"))


def test_renames_never_overwrite_what_a_person_did_during_the_run() -> None:
    """8 s into a paced run (Google's 3 a second) a person renames one pending file,
    moves another into another course and trashes a third: the changes feed, read before
    each batch, drops those three renames (the next run plans them afresh)."""
    with DriveEmulator() as emu:
        root, renames = misnamed(emu, 60)
        other = emu.add_folder(root, "CSCI-2300 Algorithms")
        source = source_for(emu, root)
        source.read(None, now=NOW)  # the listing the renames were planned from
        renamed, moved, trashed = (r.id for r in renames[-3:])
        started = source.clock.now()
        done: list[bool] = []

        def person() -> None:
            if not done and source.clock.now() - started >= 8.0:
                done.append(True)
                emu.rename(renamed, "CSCI-1200 E9S05.pdf")
                emu.move(moved, other)
                emu.trash(trashed)

        emu.on_batch = person
        result = source.rename(renames)
        assert done  # the person acted while renames were still going
        assert result.pending == {renamed, moved, trashed} and not result.problems
        assert result.applied == {r.id for r in renames[:-3]}
        assert emu.files[renamed].name == "CSCI-1200 E9S05.pdf"
        assert emu.files[moved].name == renames[-2].old and emu.files[moved].parent == other
        assert emu.files[trashed].trashed and emu.files[trashed].name == renames[-1].old


def test_sheets_rate_limits_are_waited_out_until_the_runs_deadline() -> None:
    """Issue 18: eight Sheets 429s in a row ended a run (exit 1). Sheets' quota is per
    minute: within a run (a deadline), rate limits are waited out, not failed."""
    from backtest_compilation.catalog import Catalog

    with SheetsEmulator() as emu:
        emu.add_spreadsheet(SHEET_KEY, tabs={COPIES: [["Course"]]})
        waits: list[float] = []
        report = sheet.open_report(
            SHEET_KEY, endpoint=emu.url, sleep=waits.append, deadline=google.Deadline(2700)
        )
        emu.fail_next(*["429"] * 8)
        assert report.publish(Catalog(), None, NOW).digest
        assert len(waits) == 8 and emu.writes() == 1
        # Near the run's end, a wait that would pass it stops the run instead (exit 1).
        late = sheet.open_report(
            SHEET_KEY, endpoint=emu.url, sleep=waits.append, deadline=google.Deadline(5)
        )
        emu.fail_next(*["429"] * 8)
        with pytest.raises(google.RunTimedOut, match="RUN_TIMEOUT_S"):
            late.publish(Catalog(), "x", NOW)


def test_renames_stop_without_failing_when_the_changes_feed_cannot_be_read() -> None:
    """What changed since the listing is unknown: the rest is pending, nothing fails."""
    with DriveEmulator() as emu:
        root, renames = misnamed(emu, 20)
        source = source_for(emu, root)
        source.read(None, now=NOW)
        emu.on_batch = emu.expire_change_tokens  # the check before the next batch is refused
        result = source.rename(renames)
        assert result.applied and not result.problems
        assert result.pending == {r.id for r in renames} - result.applied
