"""The sheet report's pure core (contract §4): matching, report contents, digest, requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest_compilation import sheet_contents
from backtest_compilation.catalog import (
    Catalog,
    Category,
    Course,
    ExamEntry,
    Problem,
    normalise_title,
)
from backtest_compilation.errors import ConfigError


def course(name: str, *tests: tuple[str, tuple[str, ...]]) -> Course:
    key, title = name.split(" ", 1)
    code, number = key.split("-")
    return Course(name, code, number, title, f"id-{key}", tuple(ExamEntry(t, s) for t, s in tests))


def grid(*cells: str | list[object]) -> list[list[object]]:
    """Header row, then one row per argument (a bare string is column A)."""
    return [["Course", "Notes"]] + [[c] if isinstance(c, str) else list(c) for c in cells]


# Each case: course full name, the tab's rows (below the header), expected rows, tier.
MATCHING = [
    pytest.param(
        "CSCI-1200 Data Structures",
        ["Data Structures", "CSCI-1200 Data Structures"],
        (3,),
        "full name",
        id="the full name beats a title elsewhere",
    ),
    pytest.param(
        "CSCI-1200 Data Structures",
        ["Data Structures", ["Data Structures (old)", "CSCI-1200"]],
        (3,),
        "code",
        id="the course code beats an exact title",
    ),
    pytest.param(
        "BEAR-1681 Process Control and Society",
        [
            ["ECSE", "1681", "Process Control and Society"],
            ["BEAR", "1681", "Process Control and Society"],
        ],
        (3,),
        "department and number",
        id="crosslisted titles: the row with the department and number cells decides",
    ),
    pytest.param(
        "BEAR-1681 Process Control and Society",
        ["Process Control and Society", ["bear", 1681.0, "Process Control and Society (S)"]],
        (3,),
        "department and number",
        id="the number as a number cell, the title contained, beats an exact title",
    ),
    pytest.param(
        "BEAR-1681 Process Control and Society",
        [["BEAR", "1681", "Other Title"], "Process Control and Society"],
        (3,),
        "title",
        id="department and number cells without the title are not that course's row",
    ),
    pytest.param(
        "BEAR-1681 Process Control and Society",
        [["BEAR", "1681", "Process Control and Society"], ["BEAR-1681"]],
        (3,),
        "code",
        id="the course code beats department and number cells",
    ),
    pytest.param(
        "CSCI-1200 Data Structures",
        ["Advanced Data Structures", "data   STRUCTURES"],
        (3,),
        "title",
        id="an exact title beats a cell containing it; case and spaces do not matter",
    ),
    pytest.param(
        "MATH-1010 Calculus I",
        ["Calculus II (MATH 1020)", "Calculus I (MATH 1010)"],
        (3,),
        "contained title",
        id="Calculus I is not contained in Calculus II",
    ),
    pytest.param(
        "MATH-1020 Calculus II",
        ["Calculus I", "Calculus II"],
        (3,),
        "title",
        id="Calculus II finds its own row, not Calculus I",
    ),
    pytest.param(
        "CSCI-1100 C++ (Intro)",
        ["C (Intro)", "Cpp Intro", "Intro to C++ (Intro) lab"],
        (4,),
        "contained title",
        id="regex characters in a title are text",
    ),
    pytest.param(
        "CSCI-1100 Intro.*",
        ["Intro to Python", "Intro.* and more"],
        (3,),
        "contained title",
        id="a title that is a regex wildcard matches only itself",
    ),
    pytest.param(
        "CSCI-1100 [Lab] a|b \\d",
        ["Lab a", "b", "[lab] A|B \\D"],
        (4,),
        "title",
        id="brackets, pipes and backslashes are text",
    ),
    pytest.param(
        "PHYS-1100 Physics I",
        ["Physics I", ["Physics I", "", "", "", "", "", "Physics I"]],
        (2, 3),
        "title",
        id="two rows with the title are ambiguous",
    ),
    pytest.param(
        "PHYS-1100 Physics I",
        [["Physics I", "also Physics I"]],
        (2,),
        "title",
        id="two cells of one row are one row",
    ),
    pytest.param(
        "LANG-1100 Français 😀 Ünïcode",
        ["francais", "FRANÇAIS 😀 ÜNÏCODE"],
        (3,),
        "title",
        id="unicode and emoji compare case-insensitively",
    ),
    pytest.param(
        "ARTS-1000 \"Quoted\" 'Art'",
        ["\"quoted\" 'art'"],
        (2,),
        "title",
        id="quotes are text",
    ),
    pytest.param(
        "CSCI-9999 Nowhere",
        ["Somewhere", "Now here"],
        (),
        None,
        id="no row: not found",
    ),
    pytest.param(
        "CSCI-2000 Course",
        [],
        (),
        None,
        id="the header row is not searched",
    ),
]


@pytest.mark.parametrize(("name", "rows", "expected", "tier"), MATCHING)
def test_course_rows_are_found_by_the_first_matching_tier(
    name: str, rows: list[str | list[object]], expected: tuple[int, ...], tier: str | None
) -> None:
    (placement,) = sheet_contents.place([course(name)], grid(*rows), first_row=1)
    assert placement.rows == expected
    assert placement.tier == tier


def test_skipped_cells_are_not_searched() -> None:
    rows = grid(["x", "", "", "", "", "Data Structures"], "Data Structures")
    (placement,) = sheet_contents.place(
        [course("CSCI-1200 Data Structures")], rows, skip=frozenset({(1, 5)})
    )
    assert placement.rows == (3,)


def test_numbers_in_cells_compare_as_text() -> None:
    (placement,) = sheet_contents.place([course("MATH-1000 2001")], grid(["x", 2001.0]))
    assert (placement.rows, placement.tier) == ((2,), "title")


@settings(max_examples=200, deadline=None)
@given(
    title=st.text(min_size=1, max_size=60).filter(lambda t: t.strip()),
    noise=st.lists(st.text(max_size=30), max_size=8),
    position=st.integers(min_value=0, max_value=8),
)
def test_any_title_is_found_by_its_full_name_wherever_it_is(
    title: str, noise: list[str], position: int
) -> None:
    """Odd names never crash, and the full-name tier finds the one row that has it."""
    c = Course(f"CSCI-1200 {title.strip()}", "CSCI", "1200", title.strip(), "id")
    full = normalise_title(c.name)
    rows = [[n] for n in noise if normalise_title(n) != full]
    rows.insert(min(position, len(rows)), ["", c.name])
    (placement,) = sheet_contents.place([c], [["header"], *rows])
    assert placement.tier == "full name"
    assert placement.rows == (min(position, len(rows) - 1) + 2,)


@st.composite
def title_and_cells(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A title and a column of cells, some built from it so that rows do match."""
    title = draw(st.text(max_size=40))
    words = st.text(max_size=6)
    cell = st.one_of(
        st.text(max_size=40),
        st.builds(lambda a, b: f"{a}{title}{b}", words, words),
        st.sampled_from([title, f"ABCD-1000 {title}", "ABCD-1000"]),
    )
    return title, draw(st.lists(cell, max_size=10))


def test_matching_is_literal() -> None:
    """A row matches only if one of its cells literally equals or contains the title."""
    rows_checked = 0

    @settings(max_examples=200, deadline=None)
    @given(title_and_cells())
    def check(title_cells: tuple[str, list[str]]) -> None:
        nonlocal rows_checked
        title, cells = title_cells
        c = Course(f"ABCD-1000 {title}", "ABCD", "1000", title, "id")
        (placement,) = sheet_contents.place([c], [["h"]] + [[cell] for cell in cells])
        wanted = normalise_title(title)
        # Each tier's own literal rule (an empty title is contained in every text).
        literal = {
            "full name": lambda text: text == normalise_title(c.name),
            "code": lambda text: text == normalise_title(c.key),
            "department and number": lambda text: wanted in text,
            "title": lambda text: text == wanted,
            "contained title": lambda text: wanted != "" and wanted in text,
        }
        for row in placement.rows:
            text = normalise_title(cells[row - 2])
            assert literal[placement.tier](text), (placement.tier, text)
            rows_checked += 1

    check()
    assert rows_checked > 0


# ---------------------------------------------------------------- report contents

DS = course("CSCI-1200 Data Structures", ("Exam 1", ("Fall 2022", "Spring 2021")))
DS_ECSE = course("ECSE-1200 Data Structures", ("Exam 1", ("Fall 2022", "Fall 2020")))
CALC = course("MATH-1010 Calculus I", ("Quiz", ("Fall 2022",)))
LOST = course("MATH-9999 Lost Course")
PROBLEMS = (
    Problem.from_text(
        Category.NOT_A_PDF, "Not a PDF: CSCI / CSCI-1200 Data Structures / a.docx", "p1", "1"
    ),
    Problem.from_text(Category.INVALID_COURSE, "Invalid course: CSCI / bad", "p2", "2"),
    Problem.from_text(Category.INVALID_FILENAME, "Invalid filename: x", "p3", "3"),
    Problem.from_text(Category.DUPLICATE_DEPARTMENT, "Duplicate department: *CSCI", "p4", "4"),
)
CATALOG = Catalog(
    courses=(DS, DS_ECSE, CALC, LOST),
    problems=PROBLEMS,
    crosslisted=(("CSCI-1200 Data Structures", "ECSE-1200 Data Structures"),),
)
COPIES = [
    ["Course", "", "", "", "", "Digital", "Physical"],
    ["Data Structures", "", "", "", "", 1, 2],
    ["Calculus I", "", "", "", "", "", 1],
    ["Retired course", "", "", "", "", 5, 0],
    ["Another retired", "", "", "", "", "7", 0],
    ["Notes row", "", "", "", "", "n/a"],
]


def test_error_tab_has_three_sections_each_with_a_heading_and_a_blank_row() -> None:
    lines = sheet_contents.error_lines(CATALOG)
    assert [(line.text, line.heading) for line in lines] == [
        ("Errors", True),  # messages in the catalog's order (by path)
        ("Invalid course: CSCI / bad", False),
        ("Duplicate department: *CSCI", False),
        ("", False),
        ("Invalid Filenames", True),
        ("Not a PDF: CSCI / CSCI-1200 Data Structures / a.docx", False),
        ("Invalid filename: x", False),
        ("", False),
        ("Crosslisted Classes", True),
        ("Data Structures: CSCI-1200 and ECSE-1200", False),
        ("", False),
    ]


def test_empty_sections_keep_their_headings() -> None:
    texts = [line.text for line in sheet_contents.error_lines(Catalog())]
    assert texts == ["Errors", "", "Invalid Filenames", "", "Crosslisted Classes", ""]


def test_report_counts_stale_rows_and_classes_not_found() -> None:
    report = sheet_contents.build(CATALOG, COPIES)
    # Both Data Structures courses land on row 2: distinct (exam, semester) pairs of both.
    assert report.counts == ((2, 3), (3, 1))
    assert report.stale == (4, 5)  # numeric (also as text) and not written; "n/a" is not
    assert report.not_found == ("MATH-9999 Lost Course",)
    assert report.ambiguous == ()
    assert [line.text for line in report.not_found_lines] == [
        "Classes Not Found",
        "MATH-9999 Lost Course",
    ]
    assert report.not_found_lines[0].heading


def test_ambiguous_courses_are_listed_and_get_no_count() -> None:
    copies = [
        *COPIES,
        ["Calculus I (honors)", "", "", "", "", 9],
        ["Calculus I", "", "", "", "", 4],
    ]
    report = sheet_contents.build(CATALOG, copies)
    assert report.ambiguous == ("MATH-1010 Calculus I",)
    assert all(row not in (3, 8) for row, _ in report.counts)
    assert 8 in report.stale  # its old number is no longer vouched for
    assert (
        report.not_found_lines[-1].text == "MATH-1010 Calculus I (ambiguous: rows 3, 8 all match)"
    )


def test_digest_is_stable_and_follows_the_contents() -> None:
    first = sheet_contents.build(CATALOG, COPIES)
    assert first.digest == sheet_contents.build(CATALOG, [list(r) for r in COPIES]).digest
    assert len(first.digest) == 64
    more = Catalog(courses=CATALOG.courses, problems=PROBLEMS[:1], crosslisted=CATALOG.crosslisted)
    assert sheet_contents.build(more, COPIES).digest != first.digest
    moved = [*COPIES[:2], COPIES[3], COPIES[2], *COPIES[4:]]
    assert sheet_contents.build(CATALOG, moved).digest != first.digest
    renamed = sheet_contents.Layout(errors_heading="Folder errors")
    assert sheet_contents.build(CATALOG, COPIES, renamed).digest != first.digest


def test_a_custom_layout_renames_everything() -> None:
    layout = sheet_contents.Layout(
        errors_heading="E",
        filenames_heading="F",
        crosslisted_heading="X",
        not_found_heading="Missing",
        count_column="B",
        header_rows=2,
    )
    copies = [["title"], ["Calculus I", 3], ["Calculus I", 4], ["Data Structures"]]
    report = sheet_contents.build(CATALOG, copies, layout)
    assert [line.text for line in report.errors if line.heading] == ["E", "F", "X"]
    assert report.not_found_lines[0].text == "Missing"
    assert report.counts == ((3, 1), (4, 3))  # row 2 is a header row now
    assert report.stale == ()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        pytest.param({"stamp_cell": "F3"}, "count column", id="stamp outside the count column"),
        pytest.param({"copies_tab": "errors in drive"}, "must differ", id="tab names differ"),
        pytest.param({"errors_tab": " "}, "tab name", id="tab names are not blank"),
        pytest.param({"not_found_tab": "x" * 101}, "tab name", id="tab names fit Google"),
        pytest.param({"header_rows": -1}, "header rows", id="header rows are not negative"),
    ],
)
def test_a_bad_layout_is_a_config_error(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        sheet_contents.Layout(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("when", "text"),
    [
        pytest.param(datetime(2026, 11, 21, 22, 5, 9, tzinfo=UTC), "11/21/26 05:05:09 PM", id="pm"),
        pytest.param(datetime(2026, 7, 4, 13, 0, tzinfo=UTC), "7/4/26 09:00:00 AM", id="summer"),
        pytest.param(datetime(2026, 1, 1, 5, 30, tzinfo=UTC), "1/1/26 12:30:00 AM", id="midnight"),
        pytest.param(
            datetime(2026, 3, 2, 12, 0, tzinfo=timezone(timedelta(hours=-5))),
            "3/2/26 12:00:00 PM",
            id="noon",
        ),
    ],
)
def test_time_stamp_is_written_in_the_sheet_time_zone(when: datetime, text: str) -> None:
    assert sheet_contents.stamp_text(when, "America/New_York") == text


def test_time_stamp_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        sheet_contents.stamp_text(datetime(2026, 1, 1), "America/New_York")


# ---------------------------------------------------------------- what is written


def test_write_requests_touch_only_the_count_column_and_the_stamp() -> None:
    tabs = (sheet_contents.Tab(0, "Physical Copies of Backtests", 10, 7, COPIES),)
    report = sheet_contents.build(CATALOG, COPIES)
    requests = sheet_contents.write_requests(report, tabs, stamp="1/1/26 12:00:00 AM")
    kinds = [next(iter(r)) for r in requests]
    # Two tabs added with fresh ids, the copies tab grown to hold P24, both text tabs rewritten.
    added = [r["addSheet"]["properties"] for r in requests if "addSheet" in r]
    assert [(p["title"], p["sheetId"]) for p in added] == [
        ("Errors in Drive", 1),
        ("Classes Not Found", 2),
    ]
    assert kinds.count("updateSheetProperties") == 1
    copies_id = 0
    cell_writes = stale = 0
    for r in requests:
        body = next(iter(r.values()))
        target = body.get("start") or body.get("range") or body.get("properties")
        if target.get("sheetId") == copies_id and "updateCells" in r:
            assert body["start"]["columnIndex"] in (5, 15)
            cell_writes += 1
            stale += body["fields"] == "userEnteredFormat.backgroundColor"  # only the colour
    assert cell_writes and stale  # both kinds were there to check


def test_values_are_typed_so_text_never_becomes_a_formula() -> None:
    problems = (Problem.from_text(Category.INVALID_FILENAME, '=IMPORTXML("http://x")', "p", "1"),)
    report = sheet_contents.build(Catalog(problems=problems), [])
    copies = (sheet_contents.Tab(0, "Physical Copies of Backtests", 10, 7),)
    requests = sheet_contents.write_requests(report, copies)
    cells = [
        cell
        for r in requests
        if "updateCells" in r
        for row in r["updateCells"].get("rows", [])
        for cell in row["values"]
    ]
    assert {"userEnteredValue": {"stringValue": '=IMPORTXML("http://x")'}} in cells
    assert not any("formulaValue" in c.get("userEnteredValue", {}) for c in cells)


def test_in_sync_compares_the_sheet_with_the_report() -> None:
    report = sheet_contents.build(CATALOG, COPIES)
    written = [list(r) for r in COPIES]
    written[1][5], written[2][5] = 3, 1
    errors = sheet_contents.Tab(0, "Errors in Drive", 100, 26, [[x.text] for x in report.errors])
    tabs = (
        errors,
        sheet_contents.Tab(
            1, "Classes Not Found", 100, 26, [[x.text] for x in report.not_found_lines]
        ),
        sheet_contents.Tab(2, "Physical Copies of Backtests", 100, 26, written),
    )
    assert sheet_contents.in_sync(report, tabs)
    written[2][5] = 2
    assert not sheet_contents.in_sync(report, tabs)
    written[2][5] = 1
    assert not sheet_contents.in_sync(report, tabs[1:])
    edited = sheet_contents.Tab(0, "Errors in Drive", 100, 26, [["x"]])
    assert not sheet_contents.in_sync(report, (edited, *tabs[1:]))


def grid_requests(errors_rows: int | None, problems: int) -> list[tuple[str, str, int, int]]:
    """(kind, tab, rows, columns) of the requests that add or grow tabs, for a report with
    `problems` file problems; `errors_rows`: the size of `Errors in Drive` (None: missing)."""
    tabs = [sheet_contents.Tab(0, "Physical Copies of Backtests", 30, 20)]
    tabs.append(sheet_contents.Tab(1, "Classes Not Found", 100, 26))
    if errors_rows is not None:
        tabs.append(sheet_contents.Tab(2, "Errors in Drive", errors_rows, 1))
    found = tuple(
        Problem.from_text(Category.INVALID_FILENAME, f"Invalid filename: {i}", f"p{i}", str(i))
        for i in range(problems)
    )
    report = sheet_contents.build(Catalog(problems=found), [])
    titles = {0: "Physical Copies of Backtests", 1: "Classes Not Found", 2: "Errors in Drive"}
    out = []
    for r in sheet_contents.write_requests(report, tabs):
        kind, body = next(iter(r.items()))
        if kind in ("addSheet", "updateSheetProperties"):
            p = body["properties"]
            size = p["gridProperties"]
            out.append((kind, titles[p["sheetId"]], size["rowCount"], size["columnCount"]))
    return out


@pytest.mark.parametrize(
    ("errors_rows", "problems", "expected"),
    [
        pytest.param(50, 3, [], id="tabs big enough are left as they are"),
        pytest.param(
            5,
            12,
            [("updateSheetProperties", "Errors in Drive", 18, 1)],
            id="a tab too small grows to hold every line, no more",
        ),
        pytest.param(
            None, 3, [("addSheet", "Errors in Drive", 1000, 26)], id="a missing tab is added"
        ),
        pytest.param(
            None,
            1200,
            [("addSheet", "Errors in Drive", 1206, 26)],
            id="a missing tab is added big enough for every line",
        ),
    ],
)
def test_tabs_are_added_or_grown_only_as_needed(
    errors_rows: int | None, problems: int, expected: list[tuple[str, str, int, int]]
) -> None:
    assert grid_requests(errors_rows, problems) == expected
