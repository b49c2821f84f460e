"""`SheetReport` against the Sheets v4 emulator over HTTP: what lands in the sheet, cell by
cell, and how many calls it takes (contract §4, §5.6, §8)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest_compilation import adapters, google, sheet, sheet_contents
from backtest_compilation import catalog as catalog_module
from backtest_compilation.catalog import Catalog, Category, Course, ExamEntry, Problem
from backtest_compilation.errors import ConfigError, ServiceError
from backtest_compilation.settings import Settings
from backtest_compilation.tree import OTHER_MIME, PDF_MIME, file, folder
from emulators.sheets import SheetsEmulator
from tests.support.fixtures_sheets import SHEET_KEY

COPIES = "Physical Copies of Backtests"
ERRORS = "Errors in Drive"
NOT_FOUND = "Classes Not Found"
NOW = datetime(2026, 11, 21, 22, 5, 9, tzinfo=UTC)  # 5:05:09 PM in New York
LONG_TITLE = "Very " + "long " * 98 + "title"  # 500 characters
GREEN, YELLOW, RED = (0, 1, 0), (1, 1, 0), (1, 0, 0)
GREY = {"red": 0.8, "green": 0.8, "blue": 0.8}

MakeReport = Callable[..., sheet.SheetReport]

# Assembled at run time so no file in the repository looks like key material.
FAKE_PEM_HEAD = "-----BEGIN " + "PRIVATE KEY-----"


def course_folder(fid: str, name: str, *files: str) -> Any:
    def mime(name: str) -> str:
        return PDF_MIME if name.endswith(".pdf") else OTHER_MIME

    return folder(fid, name, *(file(f"{fid}-{i}", f, mime(f)) for i, f in enumerate(files)))


def drive() -> Catalog:
    """A realistic drive, through the real catalog rules."""
    root = folder(
        "root",
        "Backtests",
        folder(
            "d-csci",
            "CSCI",
            course_folder(
                "c1100", "CSCI-1100 Computer Science I", "E1F22.pdf", "e2 f22.pdf", "MS21.pdf"
            ),
            course_folder("c1200", "CSCI-1200 Data Structures", "E1F22.pdf", "E1S21.pdf"),
            course_folder("c1300", "CSCI-1300 C++ (Intro)", "E1F21.pdf"),
            course_folder("c4000", "CSCI-4000 Regex .* [Special]"),
            course_folder("c2000", 'CSCI-2000 A "quoted" \\ name', "E1F22.pdf"),
            course_folder("c2001", f"CSCI-2001 {LONG_TITLE}"),
            folder("c-bad", "CSCI-12 bad"),
            file("stray", "stray.pdf"),
        ),
        folder(
            "d-ecse",
            "ECSE",
            course_folder("e1200", "ECSE-1200 Data Structures", "E1F22.pdf", "E1F20.pdf"),
        ),
        folder(
            "d-math",
            "MATH",
            course_folder("m1010", "MATH-1010 Calculus I", "QF22.pdf", "notes.docx"),
            course_folder("m1020", "MATH-1020 Calculus II", "Q1F22.pdf", "Q2F22.pdf"),
            course_folder("m2010", "MATH-2010 Multivariable Calculus", "E1U19.pdf"),
        ),
        folder(
            "d-phys",
            "PHYS",
            course_folder("p1100", "PHYS-1100 Physics I", "E1F22.pdf", "random scan.pdf"),
            course_folder("p1200", "PHYS-1200 Physics II"),
        ),
        folder("d-lang", "LANG", course_folder("l1100", "LANG-1100 Français 😀", "E1S22.pdf")),
    )
    return catalog_module.build(root, today=date(2026, 11, 21))


def row(a: str, b: Any = "", f: Any = "") -> list[Any]:
    return [a, b, "", "", "", f, "kept"]


# Row numbers (1-based) of the physical-copies tab, as people keep it today.
TAB = [
    ["Course", "Code", "Physical", "Shelf", "Notes", "Digital copies", "Other"],  # 1
    row("CSCI-1100 Computer Science I", f=1),  # 2: full name, stale count 1 → 3
    row("Data Structures", f=""),  # 3: title, shared by CSCI-1200 and ECSE-1200 → 3
    row("Calculus I", f=9),  # 4: exact title → 1
    row("Calculus II"),  # 5: exact title → 2
    row("Multivariable Calc (old name)", "MATH-2010"),  # 6: by code → 1
    row("Intro to C++ (Intro) — binder 3"),  # 7: contains the title → 1
    row("regex .* [special]"),  # 8: the title, literally → 0
    row("FRANÇAIS 😀", f=""),  # 9: unicode title → 1
    row("Physics I", f=2),  # 10: ambiguous with 11: untouched count turns yellow
    row("Physics I"),  # 11
    row("Retired Course", f=5),  # 12: nobody's row: stale
    row("Old seminar", f="3"),  # 13: a number typed as text: stale too
    row("Notes", f="n/a"),  # 14: not a number: left alone
]
EXPECTED_COUNTS = {2: 3, 3: 3, 4: 1, 5: 2, 6: 1, 7: 1, 8: 0, 9: 1}
EXPECTED_STALE = {10, 12, 13}
EXPECTED_NOT_FOUND = [
    'CSCI-2000 A "quoted" \\ name',
    f"CSCI-2001 {LONG_TITLE}",
    "PHYS-1200 Physics II",
]


def seed(emu: SheetsEmulator, **tabs: list[list[Any]]) -> None:
    emu.add_spreadsheet(SHEET_KEY, tabs={COPIES: TAB, **tabs})
    emu.set_format(
        SHEET_KEY, COPIES, "A1:G1", {"backgroundColor": GREY, "textFormat": {"bold": True}}
    )
    emu.set_format(SHEET_KEY, COPIES, "A3", {"textFormat": {"italic": True}})
    emu.set_format(
        SHEET_KEY, COPIES, "F2:F14", {"textFormat": {"bold": True}, "horizontalAlignment": "CENTER"}
    )
    emu.set_format(SHEET_KEY, COPIES, "F14", {"backgroundColor": {"blue": 1}})


def test_a_run_writes_counts_colours_sections_and_stamp_and_nothing_else(
    sheets_emulator: SheetsEmulator, make_report: MakeReport
) -> None:
    emu = sheets_emulator
    old_errors = [["Errors"], ["old problem"], [""], ["Invalid Filenames"]] + [
        [f"old {i}"] for i in range(30)
    ]
    seed(emu, **{ERRORS: old_errors})
    emu.set_format(
        SHEET_KEY, ERRORS, "A2", {"backgroundColor": {"red": 1}, "textFormat": {"bold": True}}
    )
    before = emu.snapshot(SHEET_KEY)[COPIES]["cells"]
    cat = drive()

    result = make_report().publish(cat, None, NOW)

    assert result.written
    assert result.not_found == tuple(EXPECTED_NOT_FOUND)
    assert result.ambiguous == ("PHYS-1100 Physics I",)
    assert result.api_calls == 3
    assert emu.calls("spreadsheets.get") == 1 and emu.calls("values.batchGet") == 1
    assert emu.calls("spreadsheets.batchUpdate") == 1 and emu.calls() == 3

    # Count column, cell by cell: value and colour; people's bold and alignment stay.
    for r in range(2, len(TAB) + 1):
        cell = f"F{r}"
        fmt = emu.cell_format(SHEET_KEY, COPIES, cell)
        if r in EXPECTED_COUNTS:
            assert emu.entered(SHEET_KEY, COPIES, cell) == {"numberValue": EXPECTED_COUNTS[r]}, cell
            assert emu.background(SHEET_KEY, COPIES, cell) == GREEN, cell
        elif r in EXPECTED_STALE:
            assert emu.value(SHEET_KEY, COPIES, cell) == TAB[r - 1][5], cell
            assert emu.background(SHEET_KEY, COPIES, cell) == YELLOW, cell
        else:
            assert emu.value(SHEET_KEY, COPIES, cell) == (TAB[r - 1][5] or None), cell
            assert emu.background(SHEET_KEY, COPIES, cell) in (None, (0, 0, 1)), cell
        assert fmt["textFormat"] == {"bold": True} and fmt["horizontalAlignment"] == "CENTER"
    assert emu.value(SHEET_KEY, COPIES, "F1") == "Digital copies"
    assert emu.background(SHEET_KEY, COPIES, "F1") == (0.8, 0.8, 0.8)
    assert emu.entered(SHEET_KEY, COPIES, "P24") == {"stringValue": "11/21/26 05:05:09 PM"}

    # Every other cell of the people's tab is exactly as it was.
    after = emu.snapshot(SHEET_KEY)[COPIES]["cells"]
    ours = {f"F{r}" for r in range(2, len(TAB) + 1)} | {"P24"}
    assert {k: v for k, v in after.items() if k not in ours} == {
        k: v for k, v in before.items() if k not in ours
    }

    # Errors in Drive: cleared and rewritten, headings bold on red, messages plain.
    errors = [r[0] if r else "" for r in emu.values(SHEET_KEY, ERRORS)]
    assert errors == [
        "Errors",
        "Invalid course: CSCI / CSCI-12 bad "
        "(a course folder is named like 'CSCI-1200 Data Structures')",
        "Not a course folder: CSCI / stray.pdf (files belong inside a course folder)",
        "",
        "Invalid Filenames",
        "Not a PDF: MATH / MATH-1010 Calculus I / notes.docx",
        "Invalid filename: PHYS / PHYS-1100 Physics I / random scan.pdf "
        "(expected a name like 'PHYS-1100 E1F22.pdf')",
        "",
        "Crosslisted Classes",
        "Data Structures: CSCI-1200 and ECSE-1200",
    ]
    for r, text in enumerate(errors, start=1):
        heading = text in ("Errors", "Invalid Filenames", "Crosslisted Classes")
        assert emu.is_bold(SHEET_KEY, ERRORS, f"A{r}") is heading, r
        assert emu.background(SHEET_KEY, ERRORS, f"A{r}") == (RED if heading else None), r
    assert emu.values(SHEET_KEY, ERRORS)[-1] == ["Data Structures: CSCI-1200 and ECSE-1200"]
    assert emu.cell_format(SHEET_KEY, ERRORS, "A30") == {}

    # Classes Not Found: created, heading, then not found, then ambiguous.
    assert emu.tab_titles(SHEET_KEY) == [COPIES, ERRORS, NOT_FOUND]
    assert [r[0] for r in emu.values(SHEET_KEY, NOT_FOUND)] == [
        "Classes Not Found",
        *EXPECTED_NOT_FOUND,
        "PHYS-1100 Physics I (ambiguous: rows 10, 11 all match)",
    ]
    assert emu.is_bold(SHEET_KEY, NOT_FOUND, "A1")
    assert emu.background(SHEET_KEY, NOT_FOUND, "A1") == RED
    assert not emu.is_bold(SHEET_KEY, NOT_FOUND, "A2")


def test_a_second_identical_run_writes_nothing(
    sheets_emulator: SheetsEmulator, make_report: MakeReport
) -> None:
    seed(sheets_emulator)
    cat = drive()
    first = make_report().publish(cat, None, NOW)
    snapshot = sheets_emulator.snapshot(SHEET_KEY)
    sheets_emulator.reset_log()

    second = make_report().publish(cat, first.digest, NOW.replace(hour=23))

    assert not second.written
    assert second.digest == first.digest
    assert second.api_calls == 2
    assert sheets_emulator.writes() == 0
    assert sheets_emulator.snapshot(SHEET_KEY) == snapshot


def test_an_unchanged_report_can_refresh_only_the_stamp(
    sheets_emulator: SheetsEmulator, make_report: MakeReport
) -> None:
    seed(sheets_emulator)
    cat = drive()
    first = make_report().publish(cat, None, NOW)
    before = sheets_emulator.snapshot(SHEET_KEY)

    again = make_report().publish(cat, first.digest, NOW.replace(hour=15), stamp_unchanged=True)

    assert not again.written and again.api_calls == 3
    after = sheets_emulator.snapshot(SHEET_KEY)
    assert after[COPIES]["cells"].pop("P24") == {
        "userEnteredValue": {"stringValue": "11/21/26 10:05:09 AM"}
    }
    before[COPIES]["cells"].pop("P24")
    assert after == before


def test_a_hand_edit_is_repaired_although_the_digest_matches(
    sheets_emulator: SheetsEmulator, make_report: MakeReport
) -> None:
    seed(sheets_emulator)
    cat = drive()
    first = make_report().publish(cat, None, NOW)
    sheets_emulator.set_values(SHEET_KEY, COPIES, "F4", [[42]])
    sheets_emulator.set_values(SHEET_KEY, ERRORS, "A2", [["someone typed here"]])

    again = make_report().publish(cat, first.digest, NOW)

    assert again.written
    assert sheets_emulator.value(SHEET_KEY, COPIES, "F4") == 1
    assert "someone typed here" not in str(sheets_emulator.values(SHEET_KEY, ERRORS))


def test_a_course_that_disappears_turns_its_count_yellow(
    sheets_emulator: SheetsEmulator, make_report: MakeReport
) -> None:
    seed(sheets_emulator)
    cat = drive()
    first = make_report().publish(cat, None, NOW)
    fewer = Catalog(
        courses=tuple(c for c in cat.courses if c.name != "MATH-1020 Calculus II"),
        problems=cat.problems,
        crosslisted=cat.crosslisted,
    )

    result = make_report().publish(fewer, first.digest, NOW)

    assert result.written and result.digest != first.digest
    assert sheets_emulator.value(SHEET_KEY, COPIES, "F5") == 2
    assert sheets_emulator.background(SHEET_KEY, COPIES, "F5") == YELLOW
    assert sheets_emulator.background(SHEET_KEY, COPIES, "F4") == GREEN


def test_missing_tabs_are_created(sheets_emulator: SheetsEmulator, make_report: MakeReport) -> None:
    """Only the tool's own tabs: the physical-copies tab belongs to people (contract §4)."""
    sheets_emulator.add_spreadsheet(SHEET_KEY, tabs={"Sheet1": [["unrelated"]], COPIES: []})
    report = make_report()

    result = report.publish(drive(), None, NOW)

    assert result.api_calls == 3  # metadata, the (empty) copies tab, the write
    assert sheets_emulator.tab_titles(SHEET_KEY) == ["Sheet1", COPIES, ERRORS, NOT_FOUND]
    assert len(result.not_found) == len(drive().courses)
    assert sheets_emulator.value(SHEET_KEY, COPIES, "P24") == "11/21/26 05:05:09 PM"
    assert sheets_emulator.values(SHEET_KEY, "Sheet1") == [["unrelated"]]
    assert not report.publish(drive(), result.digest, NOW).written


def test_tabs_are_found_whatever_their_case_and_grids_grow(
    sheets_emulator: SheetsEmulator, make_report: MakeReport
) -> None:
    sheets_emulator.add_spreadsheet(
        SHEET_KEY, tabs={"errors in drive": [], COPIES: [["Course"]]}, rows=3, columns=4
    )
    problems = tuple(
        Problem.from_text(Category.INVALID_FILENAME, f"Invalid filename: {i}", f"p{i}", str(i))
        for i in range(12)
    )

    make_report().publish(Catalog(problems=problems), None, NOW)

    assert sheets_emulator.tab_titles(SHEET_KEY) == ["errors in drive", COPIES, NOT_FOUND]
    assert len(sheets_emulator.values(SHEET_KEY, "errors in drive")) == 17
    assert sheets_emulator.grid_size(SHEET_KEY, COPIES) == (24, 16)  # room for P24


def test_every_name_and_cell_is_configurable(
    sheets_emulator: SheetsEmulator, make_report: MakeReport
) -> None:
    layout = sheet_contents.Layout(
        errors_tab="Problems",
        errors_heading="Folders",
        filenames_heading="Files",
        crosslisted_heading="Same title",
        copies_tab="Binders",
        count_column="C",
        header_rows=2,
        stamp_cell="A1",
        not_found_tab="Missing",
        not_found_heading="No row",
        written_colour=(0.5, 1, 0.5),
    )
    sheets_emulator.add_spreadsheet(
        SHEET_KEY, tabs={"Binders": [["Updated:"], ["Course", "", "Count"], ["Calculus II", "", 7]]}
    )
    cat = drive()

    make_report(layout=layout).publish(cat, None, NOW)

    assert sheets_emulator.value(SHEET_KEY, "Binders", "C3") == 2
    assert sheets_emulator.background(SHEET_KEY, "Binders", "C3") == (0.5, 1, 0.5)
    assert sheets_emulator.value(SHEET_KEY, "Binders", "A1") == "11/21/26 05:05:09 PM"
    assert sheets_emulator.value(SHEET_KEY, "Problems", "A1") == "Folders"
    assert sheets_emulator.value(SHEET_KEY, "Missing", "A1") == "No row"


def test_odd_text_is_written_as_text(
    sheets_emulator: SheetsEmulator, make_report: MakeReport
) -> None:
    sheets_emulator.add_spreadsheet(SHEET_KEY, tabs={COPIES: [["Course"]]})
    messages = ['=HYPERLINK("http://evil")', "+1", "tab\there 'q' \"qq\" \\ 😀", "x" * 60_000]
    problems = tuple(
        Problem.from_text(Category.INVALID_FILENAME, m, f"p{i}", str(i))
        for i, m in enumerate(messages)
    )

    make_report().publish(Catalog(problems=problems), None, NOW)

    cells = [sheets_emulator.entered(SHEET_KEY, ERRORS, f"A{r}") for r in range(4, 8)]
    assert cells[:3] == [{"stringValue": m} for m in messages[:3]]
    assert len(cells[3]["stringValue"]) == sheet_contents.CELL_LIMIT  # cut to what a cell holds


def test_a_1500_course_report_never_exceeds_60_requests_a_minute(
    sheets_emulator: SheetsEmulator, make_report: MakeReport
) -> None:
    sheets_emulator.quota_per_minute = 60
    courses = tuple(
        Course(
            f"C{i // 100:03d}-{1000 + i} Course number {i}",
            "ABCD",
            str(1000 + i),
            f"Course number {i}",
            f"f{i}",
            (ExamEntry("Exam 1", ("Fall 2022",) * (i % 3)),),
        )
        for i in range(1500)
    )
    tab = [["Course"]] + [[c.name, "", "", "", "", i % 4] for i, c in enumerate(courses) if i % 10]
    problems = tuple(
        Problem.from_text(Category.NOT_A_PDF, f"Not a PDF: {i}", f"p{i}", str(i))
        for i in range(300)
    )
    sheets_emulator.add_spreadsheet(SHEET_KEY, tabs={COPIES: tab})
    cat = Catalog(courses=courses, problems=problems)
    report = make_report()

    first = report.publish(cat, None, NOW)
    second = report.publish(cat, first.digest, NOW)

    assert (first.written, second.written) == (True, False)
    assert (first.api_calls, second.api_calls) == (3, 2)
    assert sheets_emulator.throttled == 0
    assert sheets_emulator.max_per_minute() <= 60
    assert len(first.not_found) == 150
    assert sheets_emulator.value(SHEET_KEY, COPIES, "F3") == 1


def test_plan_reads_but_never_writes(
    sheets_emulator: SheetsEmulator, make_report: MakeReport
) -> None:
    seed(sheets_emulator)
    report = make_report()
    plan = report.plan(drive())
    assert plan.needs_write(None) and plan.needs_write(plan.report.digest)  # sheet not written yet
    assert sheets_emulator.writes() == 0 and report.api_calls == 2
    assert [
        t for t in (ERRORS, NOT_FOUND, COPIES) if sheet_contents.find(plan.tabs, t) is None
    ] == [
        ERRORS,
        NOT_FOUND,
    ]
    assert dict(plan.report.counts) == EXPECTED_COUNTS
    assert set(plan.report.stale) == EXPECTED_STALE
    assert list(plan.report.not_found) == EXPECTED_NOT_FOUND
    written = report.publish(drive(), None, NOW)
    assert not report.plan(drive()).needs_write(written.digest)
    assert sheets_emulator.writes() == 1


# ---------------------------------------------------------------- failures


def jittered(waits: list[float], backoff: list[float]) -> bool:
    """The waits are the exponential backoff, each jittered down by at most 20 %."""
    return len(waits) == len(backoff) and all(
        0.8 * b <= w <= b for w, b in zip(waits, backoff, strict=True)
    )


def test_rate_limit_answers_are_retried_with_backoff(
    sheets_emulator: SheetsEmulator,
    make_report: MakeReport,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    seed(sheets_emulator)
    sheets_emulator.fail_next("429", "429")
    caplog.set_level(logging.INFO, logger="backtest_compilation.sheet")

    result = make_report().publish(drive(), None, NOW)

    assert result.written
    assert jittered(sleeps, [2.0, 4.0])
    assert result.api_calls == 5  # the two refused requests count: Google counted them too
    assert "HTTP 429, retry 1/6" in caplog.text


def test_a_lasting_failure_is_a_service_error(
    sheets_emulator: SheetsEmulator, make_report: MakeReport, sleeps: list[float]
) -> None:
    seed(sheets_emulator)
    sheets_emulator.fail_next(*["503"] * 10)
    with pytest.raises(ServiceError, match="HTTP 503") as err:
        make_report(retries=2).publish(drive(), None, NOW)
    assert SHEET_KEY in str(err.value)
    assert jittered(sleeps, [2.0, 4.0])
    assert sheets_emulator.writes() == 0


def test_a_missing_spreadsheet_is_a_clear_service_error(
    sheets_emulator: SheetsEmulator, make_report: MakeReport
) -> None:
    with pytest.raises(
        ServiceError, match=f"spreadsheet {SHEET_KEY} \\(SHEET_URL\\) was not found"
    ):
        make_report().publish(drive(), None, NOW)


def test_an_unshared_spreadsheet_names_who_needs_access(
    sheets_emulator: SheetsEmulator, make_report: MakeReport
) -> None:
    sheets_emulator.add_spreadsheet(SHEET_KEY, shared=False)
    with pytest.raises(ServiceError, match=re.escape("is not shared with robot@chapter.org")):
        make_report(who="robot@chapter.org").publish(drive(), None, NOW)


def test_an_unreachable_api_is_a_service_error(sleeps: list[float]) -> None:
    with SheetsEmulator() as emu:
        url = emu.url
    report = sheet.open_report(SHEET_KEY, endpoint=url, sleep=sleeps.append, retries=1)
    with pytest.raises(ServiceError, match="unreachable"):
        report.plan(drive())
    assert report.api_calls == 2 and jittered(sleeps, [2.0])


def test_the_service_account_acts_as_the_delegate_with_the_spreadsheets_scope(
    sheets_emulator: SheetsEmulator, service_account_key: Callable[[str], Path]
) -> None:
    sheets_emulator.require_auth = True
    seed(sheets_emulator)
    settings = Settings(
        sheet_url=f"https://docs.google.com/spreadsheets/d/{SHEET_KEY}/edit",
        google_credentials_file=service_account_key(sheets_emulator.token_uri),
        delegate_email="backtests@chapter.org",
    )
    credentials = google.credentials(
        settings.google_credentials_file, settings.delegate_email, (sheet.SCOPE,)
    )
    report = sheet.open_report(
        settings.sheet_key, endpoint=sheets_emulator.url, credentials=credentials
    )

    assert report.publish(drive(), None, NOW).written

    (claims,) = sheets_emulator.token_claims
    assert claims["sub"] == "backtests@chapter.org"
    assert claims["scope"] == "https://www.googleapis.com/auth/spreadsheets"
    assert claims["iss"] == "backtests@test-project.iam.gserviceaccount.com"
    assert {r.subject for r in sheets_emulator.log} == {"backtests@chapter.org"}


def test_a_rejected_key_is_a_config_error_without_key_material(
    sheets_emulator: SheetsEmulator, service_account_key: Callable[[str], Path]
) -> None:
    sheets_emulator.reject_credentials = True
    seed(sheets_emulator)
    path = service_account_key(sheets_emulator.token_uri)
    credentials = google.credentials(path, "someone@chapter.org", (sheet.SCOPE,))
    report = sheet.open_report(SHEET_KEY, endpoint=sheets_emulator.url, credentials=credentials)

    with pytest.raises(ConfigError, match="rejected the service-account key") as err:
        report.publish(drive(), None, NOW)

    assert "invalid_grant" in str(err.value)
    assert "PRIVATE KEY" not in str(err.value) and "MII" not in str(err.value)
    assert sheets_emulator.calls() == 0


def test_connect_is_anonymous_when_an_endpoint_is_set(sheets_emulator: SheetsEmulator) -> None:
    seed(sheets_emulator)
    settings = Settings(
        sheet_url=f"https://docs.google.com/spreadsheets/d/{SHEET_KEY}/edit#gid=0",
        google_credentials_file=Path("/nonexistent/key.json"),
        sheets_api_endpoint=sheets_emulator.url,
        tz="Europe/Paris",
    )
    report = adapters.connect_sheet(settings)
    assert report.publish(drive(), None, NOW).written
    assert sheets_emulator.value(SHEET_KEY, COPIES, "P24") == "11/21/26 11:05:09 PM"
    assert {r.subject for r in sheets_emulator.log} == {None}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "does not exist", id="no key file"),
        pytest.param(
            '{"private_key": "' + FAKE_PEM_HEAD + "\\nsecret",
            "not a service-account key",
            id="not JSON",
        ),
        pytest.param(
            '{"type": "service_account", "private_key": "secret"}',
            "not a service-account key",
            id="fields missing",
        ),
    ],
)
def test_connect_with_a_bad_key_file_is_a_config_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "key.json"
    if content is not None:
        path.write_text(content)
    settings = Settings(sheet_url=SHEET_KEY, google_credentials_file=path)
    with pytest.raises(ConfigError, match=message) as err:
        adapters.connect_sheet(settings)
    assert "secret" not in str(err.value)


def test_connect_without_a_sheet_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="SHEET_URL"):
        adapters.connect_sheet(Settings())


@settings(max_examples=30, deadline=None)
@given(
    title=st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40
    ).filter(lambda t: t.strip() and t.casefold() not in (ERRORS.casefold(), NOT_FOUND.casefold()))
)
def test_any_tab_name_round_trips_through_a1_ranges(title: str) -> None:
    """Quotes, `!`, `:`, emoji, spaces in a tab name are data: created, then read back."""
    layout = sheet_contents.Layout(copies_tab=title)
    cat = Catalog(courses=(Course("MATH-1010 Calculus I", "MATH", "1010", "Calculus I", "f"),))
    with SheetsEmulator() as emu:
        emu.add_spreadsheet(SHEET_KEY, tabs={title: []})
        report = sheet.open_report(SHEET_KEY, endpoint=emu.url, layout=layout)
        first = report.publish(cat, None, NOW)
        emu.set_values(SHEET_KEY, title, "A2", [["Calculus I"]])
        second = report.publish(cat, first.digest, NOW)
        third = report.publish(cat, second.digest, NOW)
        assert (first.written, second.written, third.written) == (True, True, False)
        assert emu.value(SHEET_KEY, title, "F2") == 0
