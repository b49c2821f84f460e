"""What the sheet says (contract §4), as pure functions: no I/O, no clock.

The `Layout` names every tab, heading, column and cell; `place` finds each course's row
of the physical-copies tab; `build` turns a catalog and that tab into a `Report` (with a
stable digest); `write_requests` turns a report and what the spreadsheet holds now
(`SheetState`) into the one `batchUpdate` that writes it. `sheet` does the talking."""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .catalog import Catalog, Course, crosslisted_message, normalise_title
from .errors import ConfigError, ServiceError
from .report import drive_link

Grid = Sequence[Sequence[Any]]  # a tab's cell values, rows from A1
Request = dict[str, Any]  # one request of a `batchUpdate`
TAB_TITLE_LIMIT = 100
CELL_LIMIT = 50_000  # Google rejects longer cell text
TIERS = ("full name", "code", "department and number", "title", "contained title")
_DIGEST_VERSION = 1
_COLUMN = re.compile(r"[A-Z]{1,3}")
_CELL = re.compile(r"([A-Z]{1,3})([1-9][0-9]*)")
_NUMERIC_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)\s*")

# ---------------------------------------------------------------- the layout


@dataclass(frozen=True, slots=True)
class Colour:
    """An RGB colour as the Sheets API writes it (components 0–1; `asdict` is its `Color`)."""

    red: float = 0.0
    green: float = 0.0
    blue: float = 0.0


@dataclass(frozen=True)
class Layout:
    """Every tab, heading, column and cell the report uses; defaults match today's sheet,
    each is configurable through the `SHEET_*` settings."""

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
    heading_colour: Colour = Colour(1, 0, 0)
    written_colour: Colour = Colour(0, 1, 0)
    stale_colour: Colour = Colour(1, 1, 0)

    def __post_init__(self) -> None:
        problems = []
        tabs = (self.errors_tab, self.copies_tab, self.not_found_tab)
        for tab in tabs:
            if not tab.strip() or len(tab) > TAB_TITLE_LIMIT:
                problems.append(f"sheet tab name must be 1–{TAB_TITLE_LIMIT} characters: {tab!r}")
        if len({t.casefold() for t in tabs}) != len(tabs):
            problems.append(f"sheet tab names must differ: {', '.join(map(repr, tabs))}")
        if not _COLUMN.fullmatch(self.count_column):
            problems.append(f"count column must be column letters like F: {self.count_column!r}")
        stamp = _CELL.fullmatch(self.stamp_cell)
        if not stamp:
            problems.append(f"time stamp cell must be a cell like P24: {self.stamp_cell!r}")
        elif stamp.group(1) == self.count_column:
            problems.append("the time stamp cell must not be in the count column")
        if self.header_rows < 0:
            problems.append(f"header rows must be 0 or more: {self.header_rows}")
        if problems:
            raise ConfigError(problems)

    @property
    def count_index(self) -> int:
        """0-based column index of the count column."""
        return _column_index(self.count_column)

    @property
    def stamp_position(self) -> tuple[int, int]:
        """(row, column), 0-based, of the time stamp cell."""
        letters, row = _CELL.fullmatch(self.stamp_cell).groups()  # type: ignore[union-attr]
        return int(row) - 1, _column_index(letters)


TODAYS_LAYOUT = Layout()


def _column_index(letters: str) -> int:
    return functools.reduce(lambda n, ch: n * 26 + ord(ch) - 64, letters, 0) - 1


def quote_tab(title: str) -> str:
    """A tab name as an A1 range of the whole tab: `'It''s'` (always quoted, quotes doubled)."""
    return "'" + title.replace("'", "''") + "'"


# ---------------------------------------------------------------- which row is which course


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a course's row is: one row found, none (not found) or several (ambiguous);
    `rows` are the 1-based sheet rows of the deciding tier (`TIERS`), sorted."""

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


class _Index:
    """The searchable cells of a tab: exact lookups, and one haystack for containment."""

    def __init__(self, grid: Grid, first_row: int, skip: frozenset[tuple[int, int]]) -> None:
        self.exact: dict[str, set[int]] = {}
        self.starts: list[int] = []  # where each cell starts in the haystack …
        self.rows: list[int] = []  # … and its row
        parts: list[str] = []
        offset = 0
        for r in range(first_row, len(grid)):
            for c, value in enumerate(grid[r]):
                text = "" if (r, c) in skip else normalise_title(_cell_text(value))
                if text:
                    self.exact.setdefault(text, set()).add(r + 1)
                    self.starts.append(offset)
                    self.rows.append(r + 1)
                    parts.append(text)
                    offset += len(text) + 1
        # Normalised text has no newlines, so a match never spans two cells.
        self.haystack = "\n".join(parts)

    def equal(self, text: str) -> set[int]:
        """Rows with a cell equal to `text` (normalised)."""
        return self.exact.get(normalise_title(text), set())

    def containing(self, text: str) -> set[int]:
        """Rows with a cell containing `text` as whole words (`Calculus I` ≠ `Calculus II`)."""
        needle, hay, found = normalise_title(text), self.haystack, set()
        pos = hay.find(needle) if needle else -1
        while pos != -1:
            end = pos + len(needle)
            before, after = hay[pos - 1 : pos] or "\n", hay[end : end + 1] or "\n"
            # A boundary is needed only where the title itself starts/ends with a word character.
            if not (needle[0].isalnum() and before.isalnum()) and not (
                needle[-1].isalnum() and after.isalnum()
            ):
                found.add(self.rows[bisect.bisect_right(self.starts, pos) - 1])
            pos = hay.find(needle, pos + 1)
        return found

    def tier(self, course: Course, tier: str) -> set[int]:
        """The rows `tier` finds for `course`."""
        if tier == "full name":
            return self.equal(course.name)
        if tier == "code":
            return self.equal(course.key)
        if tier == "department and number":
            rows = self.equal(course.code) & self.equal(course.number)
            return rows & self.containing(course.title) if rows else rows
        if tier == "title":
            return self.equal(course.title)
        return self.containing(course.title)


def place(
    courses: Iterable[Course],
    grid: Grid,
    *,
    first_row: int = 1,
    skip: frozenset[tuple[int, int]] = frozenset(),
) -> tuple[Placement, ...]:
    """Find each course's row in `grid`, contract §4.

    Tiers in order: a cell equal to the full name, to the code (`CSCI-1200`), a row
    with cells equal to the department code (`CSCI`) and to the number (`1200`) and a
    cell containing the title, a cell equal to the title, then a cell containing the
    title; the first tier that matches anything decides. Comparisons are
    case-insensitive, whitespace-normalised and literal (never a pattern). Rows above
    `first_row` (0-based; the header) and the cells in `skip` (the report's own count
    and stamp cells) are not searched."""
    index = _Index(grid, first_row, skip)
    placements = []
    for course in courses:
        found = ((tier, index.tier(course, tier)) for tier in TIERS)
        tier, rows = next(((t, r) for t, r in found if r), (None, set()))
        placements.append(Placement(course.name, tuple(sorted(rows)), tier))
    return tuple(placements)


# ---------------------------------------------------------------- what the sheet says


@dataclass(frozen=True, slots=True)
class Line:
    """One row of a report tab; headings are bold on the heading colour. `""` is a blank row."""

    text: str
    heading: bool = False
    link: str = ""  # a problem row's Drive URL (contract §4), set as the cell's rich-text link


@dataclass(frozen=True)
class Report:
    """Everything the sheet will say (the time stamp aside)."""

    errors: tuple[Line, ...]
    not_found_lines: tuple[Line, ...]
    counts: tuple[tuple[int, int], ...]  # (1-based row, digital count), rows ascending
    stale: tuple[int, ...]  # 1-based rows of numeric count cells not written this run
    not_found: tuple[str, ...]
    ambiguous: tuple[str, ...]
    placements: tuple[Placement, ...] = field(repr=False, default=())
    digest: str = ""


def error_lines(catalog: Catalog, layout: Layout = TODAYS_LAYOUT) -> tuple[Line, ...]:
    """The `Errors in Drive` tab: three sections, each a heading, its messages, a blank row."""

    def problems(about_files: bool) -> list[Line]:
        return [
            Line(p.message, link=drive_link(p.id) or "")
            for p in catalog.problems
            if p.category.is_about_files is about_files
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


def _is_numeric(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_NUMERIC_TEXT.fullmatch(value))
    return isinstance(value, int | float) and not isinstance(value, bool)


def build(catalog: Catalog, copies: Grid, layout: Layout = TODAYS_LAYOUT) -> Report:
    """The report for `catalog`, given the values of the physical-copies tab (from A1)."""
    col = layout.count_index
    skip = frozenset({layout.stamp_position} | {(r, col) for r in range(len(copies))})
    placements = place(catalog.courses, copies, first_row=layout.header_rows, skip=skip)

    # Courses that land on the same row (crosslisted titles) share it: count the
    # distinct (exam, semester) pairs over all of them.
    pairs: dict[int, set[tuple[str, str]]] = {}
    by_name = {c.name: c for c in catalog.courses}
    for p in placements:
        if len(p.rows) == 1:
            pairs.setdefault(p.rows[0], set()).update(
                (entry.type, semester)
                for entry in by_name[p.course].tests
                for semester in entry.semesters
            )
    counts = tuple(sorted((row, len(found)) for row, found in pairs.items()))
    stale = tuple(
        r + 1
        for r in range(layout.header_rows, len(copies))
        if col < len(copies[r]) and _is_numeric(copies[r][col]) and r + 1 not in pairs
    )
    not_found = tuple(p.course for p in placements if not p.rows)
    ambiguous = [p for p in placements if len(p.rows) > 1]
    lines = (
        Line(layout.not_found_heading, heading=True),
        *(Line(name) for name in not_found),
        *(
            Line(f"{p.course} (ambiguous: rows {', '.join(map(str, p.rows))} all match)")
            for p in ambiguous
        ),
    )
    names = tuple(p.course for p in ambiguous)
    report = Report(
        error_lines(catalog, layout), lines, counts, stale, not_found, names, placements
    )
    return replace(report, digest=_digest(report, layout))


def _digest(report: Report, layout: Layout) -> str:
    """A stable digest of what would be written (layout included, time stamp excluded)."""
    content = {
        "version": _DIGEST_VERSION,
        "layout": asdict(layout),
        "errors": [
            [line.text, line.heading] + ([line.link] if line.link else []) for line in report.errors
        ],
        "not_found": [[line.text, line.heading] for line in report.not_found_lines],
        "counts": report.counts,
        "stale": report.stale,
    }
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def stamp_text(now: datetime, tz: str | ZoneInfo) -> str:
    """`M/D/YY hh:mm:ss AM` in `tz`, the format of today's sheet (locale-independent)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    t = now.astimezone(ZoneInfo(tz) if isinstance(tz, str) else tz)
    return f"{t.month}/{t.day}/{t:%y} {t:%I:%M:%S} {'AM' if t.hour < 12 else 'PM'}"


# ---------------------------------------------------------------- the sheet now, and the write


@dataclass(frozen=True, slots=True)
class TabInfo:
    """A tab's id and grid size."""

    sheet_id: int
    title: str
    rows: int
    columns: int


@dataclass(frozen=True)
class SheetState:
    """What one read of the spreadsheet returned: every tab, and the values of the report's tabs."""

    tabs: tuple[TabInfo, ...] = ()
    errors: Grid = ()
    not_found: Grid = ()
    copies: Grid = ()

    def tab(self, title: str) -> TabInfo | None:
        """The tab called `title`, whatever its case (as Google compares tab names)."""
        return next((t for t in self.tabs if t.title.casefold() == title.casefold()), None)


def _trimmed(grid: Iterable[Iterable[Any]]) -> list[list[Any]]:
    """`grid` without trailing blank cells and rows (the API leaves them out)."""
    return _rstrip([_rstrip(["" if v is None else v for v in row], "") for row in grid], [])


def _rstrip(values: list[Any], blank: Any) -> list[Any]:
    while values and values[-1] == blank:
        values.pop()
    return values


def in_sync(report: Report, state: SheetState, layout: Layout = TODAYS_LAYOUT) -> bool:
    """Whether the sheet already shows `report`'s values (formats are covered by the digest)."""
    if any(
        state.tab(t) is None for t in (layout.errors_tab, layout.not_found_tab, layout.copies_tab)
    ):
        return False
    for lines, grid in ((report.errors, state.errors), (report.not_found_lines, state.not_found)):
        if _trimmed([[_limited(line.text)] for line in lines]) != _trimmed(grid):
            return False
    col = layout.count_index
    for row, count in report.counts:
        cells = state.copies[row - 1] if row - 1 < len(state.copies) else ()
        value = cells[col] if col < len(cells) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != count:
            return False
    return True


def copies_tab(state: SheetState, layout: Layout, where: str = "the spreadsheet") -> TabInfo:
    """The physical-copies tab. People own it (contract §4): when it is missing, the error
    names the tabs there are, and the tool never creates an empty one in its place."""
    found = state.tab(layout.copies_tab)
    if found is None:
        tabs = ", ".join(repr(t.title) for t in state.tabs) or "none"
        raise ServiceError(
            f"Sheets: {where} has no tab {layout.copies_tab!r} (named by SHEET_COPIES_TAB); "
            f"its tabs are: {tabs}. That tab is kept by people and never created by this "
            "tool: rename the tab back, or set SHEET_COPIES_TAB to its name"
        )
    return found


def _limited(text: str) -> str:
    return text if len(text) <= CELL_LIMIT else text[: CELL_LIMIT - 1] + "…"


def _runs(rows: Iterable[int]) -> list[list[int]]:
    """Consecutive rows grouped: [1, 2, 3, 7] → [[1, 2, 3], [7]]."""
    runs = itertools.groupby(enumerate(sorted(rows)), lambda i_row: i_row[1] - i_row[0])
    return [[row for _, row in run] for _, run in runs]


def _sized(
    state: SheetState, title: str, rows: int, columns: int, new_id: int
) -> tuple[TabInfo, list[Request]]:
    """The tab `title`, and the request that adds it (as `new_id`) or grows it to hold
    `rows` × `columns`, if one is needed."""
    tab = state.tab(title)
    if tab is None:  # added as Google adds a tab: 1000 × 26, or more if needed
        tab = TabInfo(new_id, title, max(rows, 1000), max(columns, 26))
        grid = {"rowCount": tab.rows, "columnCount": tab.columns}
        properties = {"sheetId": new_id, "title": title, "gridProperties": grid}
        return tab, [{"addSheet": {"properties": properties}}]
    if rows <= tab.rows and columns <= tab.columns:
        return tab, []
    grid = {"rowCount": max(rows, tab.rows), "columnCount": max(columns, tab.columns)}
    properties = {"sheetId": tab.sheet_id, "gridProperties": grid}
    fields = "gridProperties(rowCount,columnCount)"
    return tab, [{"updateSheetProperties": {"properties": properties, "fields": fields}}]


def _text_tab(tab: TabInfo, lines: Sequence[Line], layout: Layout) -> Request:
    """Clear the whole tab (values and formats) and write `lines` into column A."""
    heading = {"backgroundColor": asdict(layout.heading_colour), "textFormat": {"bold": True}}
    rows = []
    for line in lines:
        cell: dict[str, Any] = {}
        if line.text:
            cell["userEnteredValue"] = {"stringValue": _limited(line.text)}
        if line.heading:
            cell["userEnteredFormat"] = heading
        elif line.link:
            # The whole cell is the link; its text stays the message (contract §4).
            cell["userEnteredFormat"] = {"textFormat": {"link": {"uri": line.link}}}
        rows.append({"values": [cell]})
    # With a `range`, updateCells also clears the masked fields of every cell it gives no data.
    fields = "userEnteredValue,userEnteredFormat"
    return {"updateCells": {"range": {"sheetId": tab.sheet_id}, "rows": rows, "fields": fields}}


def _cells(tab: TabInfo, row: int, col: int, cells: list[Any], fields: str) -> Request:
    """Write `cells` down from (`row`, `col`), 0-based; only `fields` are touched."""
    start = {"sheetId": tab.sheet_id, "rowIndex": row, "columnIndex": col}
    rows = [{"values": [cell]} for cell in cells]
    return {"updateCells": {"start": start, "rows": rows, "fields": fields}}


def write_requests(
    report: Report, state: SheetState, layout: Layout = TODAYS_LAYOUT, stamp: str | None = None
) -> list[Request]:
    """The `spreadsheets.batchUpdate` requests that write the whole report, in one call.

    Missing tabs are added; grids grow where needed; `Errors in Drive` and
    `Classes Not Found` are cleared and rewritten; in the physical-copies tab only the
    count column (value + background) and the stamp cell are touched."""
    copies = copies_tab(state, layout)
    new_id = max((t.sheet_id for t in state.tabs), default=0)
    errors, out = _sized(state, layout.errors_tab, len(report.errors), 1, new_id + 1)
    lines = report.not_found_lines
    not_found, added = _sized(state, layout.not_found_tab, len(lines), 1, new_id + 2)
    col, (stamp_row, stamp_col) = layout.count_index, layout.stamp_position
    last_row = max([stamp_row + 1, *(row for row, _ in report.counts), *report.stale])
    out += added + _sized(state, copies.title, last_row, max(col, stamp_col) + 1, 0)[1]
    out += [_text_tab(errors, report.errors, layout), _text_tab(not_found, lines, layout)]
    counts = dict(report.counts)
    written = {"backgroundColor": asdict(layout.written_colour)}
    for run in _runs(counts):
        cells = [
            {"userEnteredValue": {"numberValue": counts[row]}, "userEnteredFormat": written}
            for row in run
        ]
        # Only the background: people's fonts and borders in the column stay.
        fields = "userEnteredValue,userEnteredFormat.backgroundColor"
        out.append(_cells(copies, run[0] - 1, col, cells, fields))
    stale = {"backgroundColor": asdict(layout.stale_colour)}
    for run in _runs(report.stale):
        area = {"sheetId": copies.sheet_id, "startRowIndex": run[0] - 1, "endRowIndex": run[-1]}
        area |= {"startColumnIndex": col, "endColumnIndex": col + 1}
        fields = "userEnteredFormat.backgroundColor"
        out.append(
            {"repeatCell": {"range": area, "cell": {"userEnteredFormat": stale}, "fields": fields}}
        )
    if stamp is not None:
        out += stamp_requests(state, layout, stamp)[-1:]
    return out


def stamp_requests(state: SheetState, layout: Layout, stamp: str) -> list[Request]:
    """Only the time stamp (for an unchanged report, when the caller wants it refreshed)."""
    copies = copies_tab(state, layout)
    row, col = layout.stamp_position
    _, out = _sized(state, copies.title, row + 1, col + 1, 0)
    value = {"userEnteredValue": {"stringValue": stamp}}
    return [*out, _cells(copies, row, col, [value], "userEnteredValue")]
