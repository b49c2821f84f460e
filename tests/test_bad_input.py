"""Bad input corpus (issue #6 item 3): odd names and odd ids are data, never crashes.

Every case goes end to end through the pipeline: the Drive emulator over HTTP (a shared
drive and an ordinary folder, whose breadth-first queries quote ids), the real
client library, MongoDB (mongomock) and the Sheets emulator; and, where the file system
allows the name, a local folder (`--source`). Each case states the outcome contract §2
gives it: the problem it raises, the name it is renamed to, or the course it publishes.
The big drives (50,000 files in one course, 2,000 departments) check outcome and time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from backtest_compilation import adapters, pipeline, sheet, sources
from backtest_compilation.adapters import run_config
from backtest_compilation.catalog import Category
from backtest_compilation.drive import DriveSource
from backtest_compilation.errors import ConfigError, GuardRefused
from backtest_compilation.local import LocalFolderSource
from backtest_compilation.settings import Settings
from backtest_compilation.store import Store
from emulators.drive import PDF_MIME, DriveEmulator
from emulators.google import QuotaClock
from emulators.sheets import SheetsEmulator
from tests.support.website import expected_view, visit, without_ids

NOW = datetime(2026, 11, 21, 15, 2, tzinfo=UTC)
COPIES = "Physical Copies of Backtests"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
LONG = "x" * 520


@dataclass(frozen=True)
class Case:
    """One test file in `CSCI / CSCI-1200 Data Structures`: its name, mime type (in
    Drive) and what contract §2.3 makes of it: a problem category, a new name, or "kept"."""

    name: str
    expect: Category | str
    mime: str = PDF_MIME
    local: bool = True  # False when a local file system cannot hold the name

    @property
    def renamed(self) -> bool:
        return not isinstance(self.expect, Category) and self.expect != "kept"


KEPT = "kept"
CANONICAL = "CSCI-1200 {}.pdf"

FILES: dict[str, Case] = {
    "a canonical name is kept": Case("CSCI-1200 E1F22.pdf", KEPT),
    "quotes before the exam code: invalid filename": Case(
        'it\'s "E2F22".pdf', Category.INVALID_FILENAME
    ),
    "quotes in trailing text: renamed": Case('E2F21 it\'s "final".pdf', CANONICAL.format("E2F21")),
    "backslash before the exam code: invalid filename": Case(
        "\\E3F22.pdf", Category.INVALID_FILENAME
    ),
    "backslash in trailing text: renamed": Case("e3 s21\\scan.pdf", CANONICAL.format("E3S21")),
    "newline before the exam code: invalid filename": Case(
        "scan\nE4F22.pdf", Category.INVALID_FILENAME
    ),
    "newline in trailing text: renamed": Case("E4S21\n.pdf", CANONICAL.format("E4S21")),
    "zero-width space before the exam code: invalid filename": Case(
        "\u200bE5F22.pdf", Category.INVALID_FILENAME
    ),
    "zero-width space in trailing text: renamed": Case(
        "E5S21\u200b.pdf", CANONICAL.format("E5S21")
    ),
    "right-to-left override before the exam code: invalid filename": Case(
        "\u202eE6F22.pdf", Category.INVALID_FILENAME
    ),
    "right-to-left mark in trailing text: renamed": Case(
        "E6S21 \u200f\u05d0.pdf", CANONICAL.format("E6S21")
    ),
    "emoji before the exam code: invalid filename": Case("📚 E7F22.pdf", Category.INVALID_FILENAME),
    "emoji in trailing text: renamed": Case("E7S21 📚🎓.pdf", CANONICAL.format("E7S21")),
    "a 520-character name that is no test: invalid filename": Case(
        LONG + ".pdf", Category.INVALID_FILENAME, local=False
    ),
    "a 520-character trailing text: renamed": Case(
        "E8S21 " + LONG + ".pdf", CANONICAL.format("E8S21"), local=False
    ),
    "only whitespace: invalid filename": Case("   ", Category.INVALID_FILENAME, local=False),
    "only whitespace and .pdf: invalid filename": Case("   .pdf", Category.INVALID_FILENAME),
    ".pdf.pdf: renamed": Case("CSCI-1200 E9F22.pdf.pdf", CANONICAL.format("E9F22")),
    "mixed-case extension: renamed": Case("csci-1200 q1 f22.PdF", CANONICAL.format("Q1F22")),
    "regex characters in trailing text: renamed": Case(
        "Q2F22 (.*)+[a-z]?$^.pdf", CANONICAL.format("Q2F22")
    ),
    "regex characters instead of a name: invalid filename": Case(
        "(.*)+[a-z]?$^.pdf", Category.INVALID_FILENAME
    ),
    "a Word file with a test name: not a PDF": Case(
        "CSCI-1200 Q3F22.docx", Category.NOT_A_PDF, DOCX
    ),
    "a future year: invalid year": Case("CSCI-1200 Q4F99.pdf", Category.INVALID_YEAR),
    "another course's prefix: invalid filename": Case(
        "MATH-1010 Q5F22.pdf", Category.INVALID_FILENAME
    ),
    "the same test twice: duplicate": Case("csci-1200 e1 f22 (1).pdf", Category.DUPLICATE_TEST),
}


@dataclass(frozen=True)
class Folder:
    """A folder: under the root (a department) or under `CSCI` (a course)."""

    name: str
    expect: Category | str  # a problem, "published" or "ignored"
    level: str  # "department" or "course"
    local: bool = True  # False when a local file system cannot hold the name


PUBLISHED, IGNORED = "published", "ignored"
TITLE_ODD = 'It\'s "Data" \\ Structures 📚'
TITLE_REGEX = "C++ (Intro) [.*]+?"
TITLE_LONG = "Topics " + "T" * 500

FOLDERS: dict[str, Folder] = {
    "quotes, backslash and emoji in a title: published as written": Folder(
        f"CSCI-2100 {TITLE_ODD}", PUBLISHED, "course"
    ),
    "regex characters in a title: published, found literally in the sheet": Folder(
        f"CSCI-2200 {TITLE_REGEX}", PUBLISHED, "course"
    ),
    "a 500-character title: published": Folder(
        f"CSCI-2300 {TITLE_LONG}", PUBLISHED, "course", local=False
    ),
    "zero-width space inside a title: published": Folder(
        "CSCI-2350 Data\u200bBases", PUBLISHED, "course"
    ),
    "a title of only whitespace: invalid course": Folder(
        "CSCI-2400    ", Category.INVALID_COURSE, "course"
    ),
    "a newline inside a title: invalid course": Folder(
        "CSCI-2500 Data\nStructures", Category.INVALID_COURSE, "course"
    ),
    "a zero-width space inside the code: invalid course": Folder(
        "CS\u200bCI-2600 Systems", Category.INVALID_COURSE, "course"
    ),
    "a right-to-left override before the code: invalid course": Folder(
        "\u202eCSCI-2700 Systems", Category.INVALID_COURSE, "course"
    ),
    "a lower-case code: invalid course": Folder(
        "csci-2800 Systems", Category.INVALID_COURSE, "course"
    ),
    "a quote in a short root folder: invalid department": Folder(
        "C'SCI", Category.INVALID_DEPARTMENT, "department"
    ),
    "only whitespace at the root: invalid department": Folder(
        "   ", Category.INVALID_DEPARTMENT, "department"
    ),
    "a newline in a short root folder: invalid department": Folder(
        "MA\nTH", Category.INVALID_DEPARTMENT, "department"
    ),
    "an emoji before four capitals: a second CSCI department": Folder(
        "📚CSCI", Category.DUPLICATE_DEPARTMENT, "department"
    ),
    "a long root folder with quotes: ignored": Folder(
        'Scans "to" file \\ 📚', IGNORED, "department"
    ),
}

COPIES_ROWS = [
    ["Course", "Title", "", "", "Physical", "Digital"],
    ["CSCI-1200", "Data Structures", "", "", 2, ""],
    ["", TITLE_REGEX, "", "", 1, ""],
    ["", TITLE_ODD, "", "", 1, ""],
]


def seed_drive(emu: DriveEmulator, root: str, tag: str) -> dict[str, str]:
    """The corpus under `root`; ids carry quotes and backslashes. Returns case → id."""
    ids: dict[str, str] = {}
    csci = emu.add_folder(root, "CSCI", file_id=f"{tag}d'CSCI\\")
    course = emu.add_folder(csci, "CSCI-1200 Data Structures", file_id=f"{tag}c'1200\\\\")
    for n, (case_id, case) in enumerate(FILES.items()):
        ids[case_id] = emu.add_file(course, case.name, case.mime, file_id=f"{tag}f'{n}\\x")
    for n, (case_id, folder) in enumerate(FOLDERS.items()):
        parent = root if folder.level == "department" else csci
        ids[case_id] = emu.add_folder(parent, folder.name, file_id=f"{tag}F'{n}\\\"")
    # Something in each odd folder, so a wrongly published one would show.
    for case_id, folder in FOLDERS.items():
        if folder.level == "course":
            emu.add_file(ids[case_id], "E1F22.pdf", file_id=f"{ids[case_id]}/t'")
    emu.add_file(root, 'root "file".pdf', file_id=f"{tag}r'\\")
    return ids


def seed_local(root: Path) -> dict[str, str]:
    """The same corpus on disk (names a file system cannot hold are left out)."""
    ids: dict[str, str] = {}
    course = root / "CSCI" / "CSCI-1200 Data Structures"
    course.mkdir(parents=True)
    for case_id, case in FILES.items():
        if case.local:
            (course / case.name).write_bytes(b"%PDF-1.4\n")
            ids[case_id] = f"CSCI/CSCI-1200 Data Structures/{case.name}"
    for case_id, folder in FOLDERS.items():
        if not folder.local:
            continue
        parent = root if folder.level == "department" else root / "CSCI"
        (parent / folder.name).mkdir()
        if folder.level == "course":
            (parent / folder.name / "E1F22.pdf").write_bytes(b"%PDF-1.4\n")
        rel = folder.name if folder.level == "department" else f"CSCI/{folder.name}"
        ids[case_id] = rel
    return ids


@dataclass
class Ran:
    """One run on the corpus: what it returned and where to look afterwards."""

    outcome: pipeline.RunSummary
    ids: dict[str, str]
    names: dict[str, str]  # id → name in the drive after the run
    store: Store
    sheets: SheetsEmulator
    key: str
    kind: str
    emu: DriveEmulator
    root: str


def _settings(tmp: Path, sheets: SheetsEmulator, key: str) -> Settings:
    return replace(
        Settings(),
        cache_dir=tmp / "cache",
        sheet_url=f"https://docs.google.com/spreadsheets/d/{key}/edit",
        sheets_api_endpoint=sheets.url,
    )


def _drive_source(
    emu: DriveEmulator, root: str, renames: bool = True, **options: Any
) -> sources.DriveTree:
    """Waits are not slept but pass on the emulator's quota clock."""
    assert isinstance(emu.clock, QuotaClock)
    return sources.DriveTree(
        DriveSource(
            root,
            credentials=AnonymousCredentials(),
            endpoint=emu.url,
            allow_renames=renames,
            sleep=emu.clock.sleep,
            **options,
        )
    )


@pytest.fixture(scope="module", params=["shared drive", "folder", "local"])
def ran(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    """The corpus run once per source kind (the cases below only look at the result)."""
    kind: str = request.param
    tmp = tmp_path_factory.mktemp(kind.replace(" ", "-"))
    clock = QuotaClock()
    with DriveEmulator(clock=clock) as emu, SheetsEmulator(clock=clock) as sheets:
        key = "1BadInput"
        sheets.add_spreadsheet(key, tabs={COPIES: COPIES_ROWS})
        settings = _settings(tmp, sheets, key)
        source: sources.Source
        root = ""
        if kind == "local":
            ids = seed_local(tmp / "drive")
            source = sources.LocalTree(LocalFolderSource(tmp / "drive"))
        else:
            root = emu.add_drive("Backtests", "0A'drive\\") if kind == "shared drive" else "root"
            if kind == "folder":
                root = emu.add_folder("root", "Backtests", file_id="root'folder\\")
            ids = seed_drive(emu, root, "s" if kind == "shared drive" else "o")
            source = _drive_source(emu, root)
        store = Store.connect("mongomock://bad", "apo_main")
        report = adapters.connect_sheet(settings, sleep=clock.sleep)
        outcome = pipeline.run(
            run_config(settings),
            pipeline.Options(),
            pipeline.Services(source, store, report, lambda: NOW),
        )
        if kind == "local":
            names = {str(p.relative_to(tmp / "drive")): p.name for p in (tmp / "drive").rglob("*")}
        else:
            names = {fid: f.name for fid, f in emu.files.items()}
        yield Ran(outcome, ids, names, store, sheets, key, kind, emu, root)
        store.close()


def _problems(ran: Ran) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for p in ran.outcome.summary["problems"]:
        out.setdefault(p["id"], set()).add(p["category"])
    return out


def test_the_run_succeeds_and_the_website_shows_the_catalog(ran: Ran) -> None:
    assert ran.outcome.exit_code == 0, ran.outcome.summary.get("failed")
    assert without_ids(visit(ran.store.database)) == expected_view(ran.outcome.catalog)
    assert ran.outcome.summary["sheet"]["written"] is True


@pytest.mark.parametrize("case_id", list(FILES))
def test_file_name(ran: Ran, case_id: str) -> None:
    case = FILES[case_id]
    if case_id not in ran.ids:
        pytest.skip("a local file system cannot hold this name")
    file_id = ran.ids[case_id]
    problems = _problems(ran)
    renames = {r["id"]: r for r in ran.outcome.summary["renames"]}
    if isinstance(case.expect, Category):
        assert problems.get(file_id) == {case.expect.value}
        assert file_id not in renames
    elif case.expect == KEPT:
        assert file_id not in problems and file_id not in renames
    else:
        assert file_id not in problems
        assert renames[file_id] == {
            "id": file_id,
            "from": case.name,
            "to": case.expect,
            "applied": True,
        }
        if ran.kind == "local":
            new_id = file_id.rsplit("/", 1)[0] + "/" + case.expect
            assert ran.names[new_id] == case.expect
        else:
            assert ran.names[file_id] == case.expect


@pytest.mark.parametrize("case_id", list(FOLDERS))
def test_folder_name(ran: Ran, case_id: str) -> None:
    folder = FOLDERS[case_id]
    if case_id not in ran.ids:
        pytest.skip("a local file system cannot hold this name")
    folder_id = ran.ids[case_id]
    problems = _problems(ran)
    published = {c["folder_id"]: c["name"] for c in ran.outcome.summary["catalog"]["courses"]}
    if isinstance(folder.expect, Category):
        assert folder.expect.value in problems.get(folder_id, set())
        assert folder_id not in published
    elif folder.expect == PUBLISHED:
        assert folder_id not in problems
        name = folder.name.lstrip("*")
        assert published[folder_id] == name
        # The website serves the name exactly, with its one test.
        doc = ran.store.database["backtest_courses_collection"].find_one({"name": name})
        assert doc is not None and doc["folder_id"] == folder_id
    else:
        assert folder_id not in problems and folder_id not in published


def test_odd_titles_are_found_literally_in_the_sheet(ran: Ran) -> None:
    values = ran.sheets.values(ran.key, COPIES)
    counts = {row[1]: row[5] for row in values[1:] if len(row) > 5 and row[1]}
    tests = {
        case.name if case.expect == KEPT else case.expect
        for case in FILES.values()
        if (case.expect == KEPT or case.renamed) and (case.local or ran.kind != "local")
    }
    assert counts == {"Data Structures": len(tests), TITLE_REGEX: 1, TITLE_ODD: 1}
    not_found = ran.sheets.values(ran.key, "Classes Not Found")
    assert ["CSCI-2350 Data\u200bBases"] in not_found
    assert [f"CSCI-2100 {TITLE_ODD}"] not in not_found


def test_problem_messages_reach_the_sheet_unaltered(ran: Ran) -> None:
    errors = [row[0] for row in ran.sheets.values(ran.key, "Errors in Drive") if row]
    assert ran.outcome.summary["problems"]
    for p in ran.outcome.summary["problems"]:
        assert p["message"] in errors


def test_a_second_run_changes_nothing(ran: Ran, tmp_path: Path) -> None:
    """Renamed names are stable: the next run has nothing to rename, insert or write."""
    if ran.kind == "local":
        pytest.skip("the local source's second run is covered by test_pipeline")
    assert isinstance(ran.emu.clock, QuotaClock)
    ran.emu.clock.between_runs()
    check = pipeline.run(
        run_config(_settings(tmp_path, ran.sheets, ran.key)),
        pipeline.Options(mode="check", rename=True),
        pipeline.Services(
            _drive_source(ran.emu, ran.root, renames=False),
            ran.store,
            sheet.open_report(ran.key, endpoint=ran.sheets.url, sleep=ran.emu.clock.sleep),
            lambda: NOW,
        ),
    )
    assert check.exit_code == 0, check.text_for(verbose=True)


# ---------------------------------------------------------------- empty and huge drives


@pytest.fixture
def drive_world(
    tmp_path: Path,
    drive_emulator: DriveEmulator,
    sheets_emulator: SheetsEmulator,
    quota_clock: QuotaClock,
) -> Iterator[tuple[Settings, pipeline.Services, str]]:
    """An empty shared drive, an empty database and a sheet with only its copies tab."""
    sheets_emulator.add_spreadsheet("1Big", tabs={COPIES: COPIES_ROWS})
    settings = _settings(tmp_path, sheets_emulator, "1Big")
    root = drive_emulator.add_drive("Backtests")
    store = Store.connect("mongomock://big", "apo_main")
    services = pipeline.Services(
        _drive_source(drive_emulator, root),
        store,
        adapters.connect_sheet(settings, sleep=quota_clock.sleep),
        lambda: NOW,
    )
    yield settings, services, root
    store.close()


def test_a_drive_of_zero_items_publishes_nothing(
    drive_world: tuple[Settings, pipeline.Services, str], sheets_emulator: SheetsEmulator
) -> None:
    settings, services, _root = drive_world
    outcome = pipeline.run(run_config(settings), pipeline.Options(), services)
    assert outcome.exit_code == 0
    assert outcome.summary["catalog"] == {"course_codes": [], "courses": [], "crosslisted": []}
    assert outcome.summary["problems"] == []
    assert visit(services.store.database) == {}
    assert outcome.summary["sheet"]["written"] is True
    assert ["Errors"] in sheets_emulator.values("1Big", "Errors in Drive")


def test_a_drive_emptied_of_everything_is_refused_by_the_guard(
    drive_world: tuple[Settings, pipeline.Services, str], drive_emulator: DriveEmulator
) -> None:
    settings, services, root = drive_world
    dept = drive_emulator.add_folder(root, "CSCI")
    drive_emulator.add_folder(dept, "CSCI-1200 Data Structures")
    assert pipeline.run(run_config(settings), pipeline.Options(), services).exit_code == 0
    before = visit(services.store.database)
    drive_emulator.trash(dept)
    refused = pipeline.run(run_config(settings), pipeline.Options(), services)
    assert refused.exit_code == GuardRefused.exit_code
    assert "no courses" in refused.summary["failed"]["guard"]
    assert visit(services.store.database) == before


def _distinct_tests() -> list[str]:
    """Every distinct canonical test of one course: 111 exam codes x 81 semesters."""
    exams = ["Q", *(f"Q{n}" for n in range(100)), *(f"E{n}" for n in range(1, 10)), "M"]
    semesters = [f"{s}{y:02d}" for y in range(27) for s in "FSU"]
    return [f"CSCI-1200 {e}{s}.pdf" for e in exams for s in semesters]


def test_50000_files_in_one_course_folder(
    drive_world: tuple[Settings, pipeline.Services, str], drive_emulator: DriveEmulator
) -> None:
    """Every distinct test once (8,991), and the rest of the 50,000 files duplicates of
    them under the very same name: nothing to rename, one duplicate problem each."""
    settings, services, root = drive_world
    course = drive_emulator.add_folder(
        drive_emulator.add_folder(root, "CSCI"), "CSCI-1200 Data Structures"
    )
    names = _distinct_tests()
    for n in range(50_000):
        drive_emulator.add_file(course, names[n % len(names)], file_id=f"t{n:05d}")
    started = time.perf_counter()
    outcome = pipeline.run(run_config(settings), pipeline.Options(), services)
    elapsed = time.perf_counter() - started
    assert outcome.exit_code == 0
    (published,) = outcome.summary["catalog"]["courses"]
    assert published["digital_count"] == len(names) == 8_991
    problems = outcome.summary["problems"]
    assert len(problems) == 50_000 - len(names)
    assert {p["category"] for p in problems} == {"duplicate_test"}
    # The keeper of each name is the first by id: the first 8,991 files.
    assert {p["id"] for p in problems} == {f"t{n:05d}" for n in range(len(names), 50_000)}
    assert outcome.summary["renames"] == []
    assert without_ids(visit(services.store.database)) == expected_view(outcome.catalog)
    assert outcome.summary["api_calls"]["drive"] <= 60  # 50 pages of 1,000 and a few more
    assert elapsed < 60, f"{elapsed:.1f} s"


def _view_in_three_reads(db: Any) -> dict[str, list[tuple[str, Any]]]:
    """What `website.visit` sees (ids left out), read in three queries: a visit of 2,000
    courses, one `find_one` each, is quadratic on mongomock."""
    backtests = {b["course_ids"][0]: b["tests"] for b in db["backtest_collection"].find()}
    by_code: dict[str, list[tuple[str, Any]]] = {}
    for c in db["backtest_courses_collection"].find():
        by_code.setdefault(c["course_code"], []).append((c["name"], backtests.get(c["_id"])))
    codes = sorted(db["backtest_course_code_collection"].distinct("course_code"))
    return {code: sorted(by_code.get(code, [])) for code in codes}


def _code(n: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "".join(letters[n // 26**k % 26] for k in (3, 2, 1, 0))


def test_2000_departments(
    drive_world: tuple[Settings, pipeline.Services, str], drive_emulator: DriveEmulator
) -> None:
    """2,000 departments, one course and one test each: all published, codes included."""
    settings, services, root = drive_world
    codes = [_code(n * 7 + 3) for n in range(2_000)]
    assert len(set(codes)) == 2_000
    for code in codes:
        dept = drive_emulator.add_folder(root, code)
        course = drive_emulator.add_folder(dept, f"{code}-1000 Intro to {code}")
        drive_emulator.add_file(course, "e1 f22.pdf")
    # At Google's 3 writes a second 2,000 renames take 11 minutes, more than a run's
    # RENAME_BUDGET_S (600 s: the rest would be pending until the next run).
    services = replace(services, source=_drive_source(drive_emulator, root, rename_budget_s=900))
    started = time.perf_counter()
    outcome = pipeline.run(run_config(settings), pipeline.Options(), services)
    elapsed = time.perf_counter() - started
    assert outcome.exit_code == 0
    assert outcome.summary["catalog"]["course_codes"] == sorted(codes)
    assert len(outcome.summary["catalog"]["courses"]) == 2_000
    assert outcome.summary["problems"] == []
    assert sum(r["applied"] for r in outcome.summary["renames"]) == 2_000
    assert _view_in_three_reads(services.store.database) == expected_view(outcome.catalog)
    assert elapsed < 60, f"{elapsed:.1f} s"


def test_a_name_cannot_forge_log_lines(
    drive_world: tuple[Settings, pipeline.Services, str],
    drive_emulator: DriveEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Problems are logged one line each (cron logs are read line by line): a newline or
    carriage return in a name is shown escaped, not as a line that looks like our own."""
    settings, services, root = drive_world
    course = drive_emulator.add_folder(
        drive_emulator.add_folder(root, "CSCI"), "CSCI-1200 Data Structures"
    )
    forged = "x.pdf\n2026-11-21 15:02:00,000 ERROR summary: sync exit 0\r"
    drive_emulator.add_file(course, forged)
    caplog.set_level(logging.WARNING)
    outcome = pipeline.run(run_config(settings), pipeline.Options(), services)
    assert outcome.exit_code == 0
    # The data keeps the name as it is; only the log line escapes it.
    assert any(forged in p["path"] for p in outcome.summary["problems"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("Invalid filename" in w for w in warnings)
    assert all("\n" not in w and "\r" not in w for w in warnings), warnings


# ---------------------------------------------------------------- issue 11: misleading messages

SHORTCUT = "application/vnd.google-apps.shortcut"


@pytest.mark.parametrize("kind", ["shared drive", "folder"])
def test_shortcuts_are_reported_as_shortcuts(
    kind: str,
    tmp_path: Path,
    drive_emulator: DriveEmulator,
    sheets_emulator: SheetsEmulator,
    quota_clock: QuotaClock,
) -> None:
    """A shortcut named like a department, a course or a test is neither: each is a
    problem saying it is a shortcut and that the real folder or file belongs there."""
    sheets_emulator.add_spreadsheet("1Short", tabs={COPIES: COPIES_ROWS})
    settings = _settings(tmp_path, sheets_emulator, "1Short")
    root = (
        drive_emulator.add_drive("Backtests")
        if kind == "shared drive"
        else drive_emulator.add_folder("root", "Backtests")
    )
    csci = drive_emulator.add_folder(root, "CSCI")
    course = drive_emulator.add_folder(csci, "CSCI-1200 Data Structures")
    drive_emulator.add_file(course, "CSCI-1200 E1F22.pdf")
    ids = {
        "department": drive_emulator.add_file(root, "MATH", SHORTCUT),
        "course": drive_emulator.add_file(csci, "CSCI-1300 Systems", SHORTCUT),
        "test": drive_emulator.add_file(course, "csci-1200 e2 f22.pdf", SHORTCUT),
    }
    with Store.connect("mongomock://shortcuts", "apo_main") as store:
        outcome = pipeline.run(
            run_config(settings),
            pipeline.Options(),
            pipeline.Services(
                _drive_source(drive_emulator, root),
                store,
                adapters.connect_sheet(settings, sleep=quota_clock.sleep),
                lambda: NOW,
            ),
        )
    assert outcome.exit_code == 0
    by_id = {p["id"]: p for p in outcome.summary["problems"]}
    expected = {
        "department": ("invalid_department", "Shortcut, not a department folder: MATH"),
        "course": ("not_a_course_folder", "Shortcut, not a course folder: CSCI / CSCI-1300"),
        "test": ("not_a_pdf", "Shortcut, not a PDF: CSCI / CSCI-1200 Data Structures / csci"),
    }
    for what, (category, start) in expected.items():
        problem = by_id[ids[what]]
        assert problem["category"] == category
        assert problem["message"].startswith(start)
        assert "belongs here" in problem["message"]
    assert outcome.summary["renames"] == []  # a shortcut is never renamed
    assert [c["name"] for c in outcome.summary["catalog"]["courses"]] == [
        "CSCI-1200 Data Structures"
    ]
    errors = [row[0] for row in sheets_emulator.values("1Short", "Errors in Drive") if row]
    assert by_id[ids["course"]]["message"] in errors


def test_folder_id_one_level_too_deep_is_a_configuration_error_on_a_fresh_database(
    drive_world: tuple[Settings, pipeline.Services, str],
    drive_emulator: DriveEmulator,
    sheets_emulator: SheetsEmulator,
) -> None:
    """Issue 17 item 2: nothing to protect, yet nothing is written (exit 2), and the
    message names the folder FOLDER_ID should be."""
    settings, services, root = drive_world
    dept = drive_emulator.add_folder(root, "CSCI")
    course = drive_emulator.add_folder(dept, "CSCI-1200 Data Structures")
    drive_emulator.add_file(course, "CSCI-1200 E1F22.pdf")
    services.source = _drive_source(drive_emulator, dept)
    sheet_before = sheets_emulator.snapshot("1Big")
    refused = pipeline.run(run_config(settings), pipeline.Options(), services)
    assert refused.exit_code == ConfigError.exit_code == 2
    message = refused.summary["failed"]["catalog"]
    assert message.startswith("FOLDER_ID points one level too deep: 'CSCI'")
    assert f"Set FOLDER_ID to the folder that holds it: {root} ('Backtests')" in message
    assert len(visit(services.store.database)) == 0
    assert sheets_emulator.snapshot("1Big") == sheet_before


def test_folder_id_named_like_a_department_is_in_the_guard_message(
    drive_world: tuple[Settings, pipeline.Services, str], drive_emulator: DriveEmulator
) -> None:
    settings, services, root = drive_world
    dept = drive_emulator.add_folder(root, "CSCI")
    drive_emulator.add_folder(dept, "CSCI-1200 Data Structures")
    assert pipeline.run(run_config(settings), pipeline.Options(), services).exit_code == 0
    # No course folder in it (a course folder would be a configuration error).
    math = drive_emulator.add_folder(root, "MATH")
    drive_emulator.add_folder(math, "Old stuff")
    services.source = _drive_source(drive_emulator, math)
    refused = pipeline.run(run_config(settings), pipeline.Options(), services)
    assert refused.exit_code == GuardRefused.exit_code
    message = refused.summary["failed"]["guard"]
    assert message.startswith("mass-delete guard: The drive listing yielded no courses")
    assert "FOLDER_ID seems to point one level too deep: 'MATH'" in message


# ---------------------------------------------------------------- issue 11: a sheet edited by hand


def test_a_renamed_copies_tab_is_reported_not_replaced(
    drive_world: tuple[Settings, pipeline.Services, str],
    drive_emulator: DriveEmulator,
    sheets_emulator: SheetsEmulator,
) -> None:
    settings, services, root = drive_world
    dept = drive_emulator.add_folder(root, "CSCI")
    drive_emulator.add_folder(dept, "CSCI-1200 Data Structures")
    sheets_emulator.rename_tab("1Big", COPIES, "Copies 2026 ✓")
    outcome = pipeline.run(run_config(settings), pipeline.Options(), services)
    assert outcome.exit_code == 1
    why = outcome.summary["failed"]["sheet"]
    assert f"no tab {COPIES!r} (named by SHEET_COPIES_TAB)" in why
    assert "'Copies 2026 ✓'" in why
    assert sheets_emulator.tab_titles("1Big") == ["Copies 2026 ✓"]  # nothing created
    assert len(visit(services.store.database)) == 1  # MongoDB was still published


def test_a_deleted_report_tab_is_put_back_on_an_unchanged_drive(
    drive_world: tuple[Settings, pipeline.Services, str],
    drive_emulator: DriveEmulator,
    sheets_emulator: SheetsEmulator,
) -> None:
    settings, services, root = drive_world
    sheets_emulator.link_drive(drive_emulator)
    dept = drive_emulator.add_folder(root, "CSCI")
    course = drive_emulator.add_folder(dept, "CSCI-1200 Data Structures")
    drive_emulator.add_file(course, "scan.pdf")  # a problem for the Errors tab
    assert pipeline.run(run_config(settings), pipeline.Options(), services).exit_code == 0
    errors = sheets_emulator.values("1Big", "Errors in Drive")
    sheets_emulator.delete_tab("1Big", "Errors in Drive")
    again = pipeline.run(run_config(settings), pipeline.Options(), services)
    assert again.summary["unchanged"] is True and again.summary["sheet"]["written"] is True
    assert sheets_emulator.values("1Big", "Errors in Drive") == errors
