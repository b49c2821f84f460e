"""What the sheet says (contract §4), as pure functions: `place` finds each course's row,
`build` makes the `Report`, `write_requests` the one `batchUpdate` that writes it."""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from .catalog import ABOUT_FILES, Catalog, Course, crosslisted_message, normalise_title
from .errors import ConfigError, ServiceError
from .report import drive_link

Grid = Sequence[Sequence[Any]]  # a tab's cell values, rows from A1
Request = dict[str, Any]  # one request of a `batchUpdate`
CELL_LIMIT = 50_000  # Google rejects longer cell text
_CELL = re.compile(r"([A-Z]{1,3})([1-9][0-9]*)")
Colour = tuple[float, float, float]  # red, green, blue, each 0–1


@dataclass(frozen=True)
class Layout:
    """Every tab, heading, column and cell of the report: today's sheet, or `SHEET_*`'s."""

    errors_tab: str = "Errors in Drive"
    errors_heading: str = "Errors"
    filenames_heading: str = "Invalid Filenames"
    crosslisted_heading: str = "Crosslisted Classes"
    copies_tab: str = "Physical Copies of Backtests"
    count_column: str = "F"
    header_rows: int = 1
    stamp_cell: str = "P24"
    not_found_tab: str = "Classes Not Found"
    not_found_heading: str = "Classes Not Found"
    heading_colour: Colour = (1, 0, 0)
    written_colour: Colour = (0, 1, 0)
    stale_colour: Colour = (1, 1, 0)

    def __post_init__(self) -> None:
        tabs = (self.errors_tab, self.copies_tab, self.not_found_tab)
        problems = [
            f"sheet tab name must be 1–100 characters: {tab!r}"
            for tab in tabs
            if not tab.strip() or len(tab) > 100
        ]
        if len({t.casefold() for t in tabs}) != len(tabs):
            problems.append(f"sheet tab names must differ: {', '.join(map(repr, tabs))}")
        # The forms of the count column and the stamp cell are the settings' to check.
        if self.stamp_cell.rstrip("0123456789") == self.count_column:
            problems.append("the time stamp cell must not be in the count column")
        if self.header_rows < 0:
            problems.append(f"header rows must be 0 or more: {self.header_rows}")
        if problems:
            raise ConfigError(problems)

    @property
    def count_index(self) -> int:
        """0-based index of the count column."""
        return _position(self.count_column + "1")[1]

    @property
    def stamp_position(self) -> tuple[int, int]:
        """(row, column), 0-based, of the time stamp cell."""
        return _position(self.stamp_cell)


TODAYS_LAYOUT = Layout()


def _position(cell: str) -> tuple[int, int]:
    letters, row = _CELL.fullmatch(cell).groups()  # type: ignore[union-attr]
    return int(row) - 1, functools.reduce(lambda n, ch: n * 26 + ord(ch) - 64, letters, 0) - 1


@dataclass(frozen=True, slots=True)
class Placement:
    """A course's rows (1-based, sorted) by the deciding tier: one, none or several."""

    course: str
    rows: tuple[int, ...] = ()
    tier: str | None = None


def _cell_text(value: Any) -> str:
    """What a cell says, for matching: text as is, whole numbers without `.0`."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def place(
    courses: Iterable[Course],
    grid: Grid,
    *,
    first_row: int = 1,
    skip: frozenset[tuple[int, int]] = frozenset(),
) -> tuple[Placement, ...]:
    """Each course's row in `grid` (contract §4): the first of these tiers that matches
    decides: a cell equal to the full name; to the code (`CSCI-1200`); cells equal to the
    department and the number and one containing the title; a cell equal to the title;
    one containing it. Case-insensitive, whitespace-normalised, literal. Rows above
    `first_row` (0-based) and the cells in `skip` (the report's own) are not searched."""
    rows_of: dict[str, set[int]] = {}
    for r in range(first_row, len(grid)):
        for c, value in enumerate(grid[r]):
            if (r, c) not in skip and (text := normalise_title(_cell_text(value))):
                rows_of.setdefault(text, set()).add(r + 1)
    texts = list(rows_of)  # each distinct text once, a line each: a search is one scan
    starts = list(itertools.accumulate((len(t) + 1 for t in texts), initial=0))
    haystack = "\n".join(texts)

    def equal(text: str) -> set[int]:
        return rows_of.get(normalise_title(text), set())

    def containing(text: str) -> set[int]:
        """Rows with a cell containing `text` as whole words (`Calculus I` ≠ `Calculus II`)."""
        needle, found, pos = normalise_title(text), set[int](), -1
        # `str.find`, not a regex: a lookbehind makes `re` try every position (10× slower).
        while needle and (pos := haystack.find(needle, pos + 1)) != -1:
            end = pos + len(needle)
            before, after = haystack[pos - 1 : pos], haystack[end : end + 1]
            # A boundary matters only where the title starts (ends) with a letter or digit.
            if not (needle[0].isalnum() and before.isalnum()) and not (
                needle[-1].isalnum() and after.isalnum()
            ):
                found |= rows_of[texts[bisect.bisect(starts, pos) - 1]]
        return found

    def department_and_number(course: Course) -> set[int]:
        rows = equal(course.code) & equal(course.number)
        return rows & containing(course.title) if rows else rows

    tiers = {
        "full name": lambda course: equal(course.name),
        "code": lambda course: equal(course.key),
        "department and number": department_and_number,
        "title": lambda course: equal(course.title),
        "contained title": lambda course: containing(course.title),
    }
    placements = []
    for course in courses:
        found = ((tier, rows) for tier, rule in tiers.items() if (rows := rule(course)))
        tier, rows = next(found, (None, set()))
        placements.append(Placement(course.name, tuple(sorted(rows)), tier))
    return tuple(placements)


@dataclass(frozen=True, slots=True)
class Line:
    """One row of a report tab; headings are bold on the heading colour. `""` is a blank row."""

    text: str
    heading: bool = False
    link: str = ""  # a problem's Drive URL, the cell's rich-text link (contract §4)


@dataclass(frozen=True)
class Report:
    """Everything the sheet will say (the time stamp aside), and where."""

    layout: Layout
    errors: tuple[Line, ...]
    not_found_lines: tuple[Line, ...]
    counts: tuple[tuple[int, int], ...]  # (1-based row, digital count), rows ascending
    stale: tuple[int, ...]  # 1-based rows of numeric count cells not written this run
    not_found: tuple[str, ...]
    ambiguous: tuple[str, ...]

    @functools.cached_property
    def digest(self) -> str:
        """A stable digest of all the report writes (its layout included)."""
        return hashlib.sha256(json.dumps(asdict(self)).encode()).hexdigest()


def error_lines(catalog: Catalog, layout: Layout = TODAYS_LAYOUT) -> tuple[Line, ...]:
    """The `Errors in Drive` tab: three sections, each a heading, its messages, a blank row."""

    def problems(about_files: bool) -> list[Line]:
        return [
            Line(p.message, link=drive_link(p.id) or "")
            for p in catalog.problems
            if (p.category in ABOUT_FILES) is about_files
        ]

    sections = (
        (layout.errors_heading, problems(False)),
        (layout.filenames_heading, problems(True)),
        (layout.crosslisted_heading, [Line(crosslisted_message(g)) for g in catalog.crosslisted]),
    )
    return tuple(
        line
        for heading, messages in sections
        for line in (Line(heading, heading=True), *messages, Line(""))
    )


def _is_number(value: Any) -> bool:
    if isinstance(value, str):
        return bool(re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)\s*", value))
    return isinstance(value, int | float) and not isinstance(value, bool)


def build(catalog: Catalog, copies: Grid, layout: Layout = TODAYS_LAYOUT) -> Report:
    """The report for `catalog`, given the values of the physical-copies tab (from A1)."""
    col = layout.count_index
    skip = frozenset({layout.stamp_position} | {(r, col) for r in range(len(copies))})
    placements = place(catalog.courses, copies, first_row=layout.header_rows, skip=skip)
    # Courses on the same row (crosslisted titles) share it: count the distinct
    # (exam, semester) pairs of all of them.
    pairs: defaultdict[int, set[tuple[str, str]]] = defaultdict(set)
    for course, p in zip(catalog.courses, placements, strict=True):
        if len(p.rows) == 1:
            pairs[p.rows[0]] |= {
                (t.type, semester) for t in course.tests for semester in t.semesters
            }
    stale = tuple(
        r + 1
        for r in range(layout.header_rows, len(copies))
        if col < len(copies[r]) and _is_number(copies[r][col]) and r + 1 not in pairs
    )
    not_found = tuple(p.course for p in placements if not p.rows)
    ambiguous = [p for p in placements if len(p.rows) > 1]
    lines = (
        Line(layout.not_found_heading, heading=True),
        *map(Line, not_found),
        *(
            Line(f"{p.course} (ambiguous: rows {', '.join(map(str, p.rows))} all match)")
            for p in ambiguous
        ),
    )
    counts = tuple(sorted((row, len(found)) for row, found in pairs.items()))
    names = tuple(p.course for p in ambiguous)
    return Report(layout, error_lines(catalog, layout), lines, counts, stale, not_found, names)


def stamp_text(now: datetime, tz: str) -> str:
    """`M/D/YY hh:mm:ss AM` in `tz`, the format of today's sheet (locale-independent)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    t = now.astimezone(ZoneInfo(tz))
    return f"{t.month}/{t.day}/{t:%y} {t:%I:%M:%S} {'AM' if t.hour < 12 else 'PM'}"


class Tab(NamedTuple):
    """A tab: its id, title and grid size, and (the report's tabs) its values from A1."""

    sheet_id: int
    title: str
    rows: int
    columns: int
    values: Grid = ()


def find(tabs: Iterable[Tab], title: str) -> Tab | None:
    """The tab called `title`, whatever its case (as Google compares tab names)."""
    return next((t for t in tabs if t.title.casefold() == title.casefold()), None)


def _trimmed(grid: Iterable[Iterable[Any]]) -> list[list[Any]]:
    """`grid` without trailing blank cells and rows (the API leaves them out)."""
    return _rstrip([_rstrip(["" if v is None else v for v in row], "") for row in grid], [])


def _rstrip(values: list[Any], blank: Any) -> list[Any]:
    while values and values[-1] == blank:
        values.pop()
    return values


def in_sync(report: Report, tabs: Sequence[Tab]) -> bool:
    """Whether the sheet already shows `report`'s values (formats are covered by the digest)."""
    layout, col = report.layout, report.layout.count_index
    found = [find(tabs, t) for t in (layout.errors_tab, layout.not_found_tab, layout.copies_tab)]
    if None in found:
        return False
    errors, not_found, copies = (tab.values for tab in found if tab)
    shown = {r + 1: row[col] for r, row in enumerate(copies) if col < len(row)}
    texts = ((report.errors, errors), (report.not_found_lines, not_found))
    return all(
        _trimmed([[_limited(x.text)] for x in lines]) == _trimmed(g) for lines, g in texts
    ) and all(  # a number cell: `True == 1` and `"1"` are not what the tool writes
        type(shown.get(row)) in (int, float) and shown[row] == n for row, n in report.counts
    )


def copies_tab(tabs: Sequence[Tab], layout: Layout, where: str = "the spreadsheet") -> Tab:
    """The physical-copies tab. People own it (contract §4): when it is missing, the error
    names the tabs there are, and the tool never creates an empty one in its place."""
    found = find(tabs, layout.copies_tab)
    if found is None:
        titles = ", ".join(repr(t.title) for t in tabs) or "none"
        raise ServiceError(
            f"Sheets: {where} has no tab {layout.copies_tab!r} (named by SHEET_COPIES_TAB); "
            f"its tabs are: {titles}. That tab is kept by people and never created by this "
            "tool: rename the tab back, or set SHEET_COPIES_TAB to its name"
        )
    return found


def _limited(text: str) -> str:
    return text if len(text) <= CELL_LIMIT else text[: CELL_LIMIT - 1] + "…"


def _rgb(colour: Colour) -> dict[str, float]:
    return dict(zip(("red", "green", "blue"), colour, strict=True))


def _grow(tab: Tab, rows: int, columns: int) -> list[Request]:
    """The request that grows `tab` to hold `rows` × `columns`, if it is smaller."""
    if rows <= tab.rows and columns <= tab.columns:
        return []
    grid = {"rowCount": max(rows, tab.rows), "columnCount": max(columns, tab.columns)}
    properties = {"sheetId": tab.sheet_id, "gridProperties": grid}
    fields = "gridProperties(rowCount,columnCount)"
    return [{"updateSheetProperties": {"properties": properties, "fields": fields}}]


def _text_tab(tab: Tab, lines: Sequence[Line], layout: Layout) -> Request:
    """Clear the whole tab (values and formats) and write `lines` into column A."""
    heading = {"backgroundColor": _rgb(layout.heading_colour), "textFormat": {"bold": True}}
    rows = []
    for line in lines:
        cell: dict[str, Any] = {}
        if line.text:
            cell["userEnteredValue"] = {"stringValue": _limited(line.text)}
        if line.heading:
            cell["userEnteredFormat"] = heading
        elif line.link:  # the whole cell is the link; its text stays the message
            cell["userEnteredFormat"] = {"textFormat": {"link": {"uri": line.link}}}
        rows.append({"values": [cell]})
    # With a `range`, updateCells also clears the masked fields of every cell it gives no data.
    fields = "userEnteredValue,userEnteredFormat"
    return {"updateCells": {"range": {"sheetId": tab.sheet_id}, "rows": rows, "fields": fields}}


def _cell(tab: Tab, row: int, col: int, cell: dict[str, Any], fields: str) -> Request:
    """Write one cell at (`row`, `col`), 0-based; only `fields` are touched."""
    start = {"sheetId": tab.sheet_id, "rowIndex": row, "columnIndex": col}
    return {"updateCells": {"start": start, "rows": [{"values": [cell]}], "fields": fields}}


def write_requests(report: Report, tabs: Sequence[Tab], stamp: str | None = None) -> list[Request]:
    """The `spreadsheets.batchUpdate` requests that write the whole report, in one call.

    Missing tabs are added; grids grow where needed; `Errors in Drive` and
    `Classes Not Found` are cleared and rewritten; in the physical-copies tab only the
    count column (value + background) and the stamp cell are touched."""
    layout = report.layout
    copies = copies_tab(tabs, layout)
    col, (stamp_row, stamp_col) = layout.count_index, layout.stamp_position
    last_row = max([stamp_row + 1, *(row for row, _ in report.counts), *report.stale])
    out = _grow(copies, last_row, max(col, stamp_col) + 1)
    new_id = max(t.sheet_id for t in tabs)
    for title, lines in (
        (layout.errors_tab, report.errors),
        (layout.not_found_tab, report.not_found_lines),
    ):
        tab = find(tabs, title)
        if tab is None:  # added as Google adds a tab: 1000 × 26, or more if needed
            new_id += 1
            tab = Tab(new_id, title, max(len(lines), 1000), 26)
            grid = {"rowCount": tab.rows, "columnCount": tab.columns}
            properties = {"sheetId": new_id, "title": title, "gridProperties": grid}
            out.append({"addSheet": {"properties": properties}})
        out += [*_grow(tab, len(lines), 1), _text_tab(tab, lines, layout)]
    background = "userEnteredFormat.backgroundColor"  # only that: people's fonts stay
    green = {"backgroundColor": _rgb(layout.written_colour)}
    for row, count in report.counts:
        cell = {"userEnteredValue": {"numberValue": count}, "userEnteredFormat": green}
        out.append(_cell(copies, row - 1, col, cell, f"userEnteredValue,{background}"))
    yellow = {"userEnteredFormat": {"backgroundColor": _rgb(layout.stale_colour)}}
    out += [_cell(copies, row - 1, col, yellow, background) for row in report.stale]
    if stamp is not None:
        out += stamp_requests(tabs, layout, stamp)[-1:]
    return out


def stamp_requests(tabs: Sequence[Tab], layout: Layout, stamp: str) -> list[Request]:
    """Only the time stamp (for an unchanged report, when the caller wants it refreshed)."""
    copies, (row, col) = copies_tab(tabs, layout), layout.stamp_position
    value = {"userEnteredValue": {"stringValue": stamp}}
    return [*_grow(copies, row + 1, col + 1), _cell(copies, row, col, value, "userEnteredValue")]
