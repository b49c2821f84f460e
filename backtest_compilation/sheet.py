"""The Google Sheet report (contract §4) in a constant number of API calls.

Pure core: `Layout` (today's tab, column and cell names), `place` (which sheet row
belongs to which course), `build` (everything the report will say, with a stable
`digest`), `write_requests` (the one `spreadsheets.batchUpdate` body that writes it).

Thin shell: `SheetReport` reads the spreadsheet (metadata + one `values.batchGet`)
and writes it (one `batchUpdate`, atomic on Google's side), through `SheetsClient`,
gspread's `HTTPClient` with bounded retries and a call counter. `connect(settings)`
builds one: anonymous when `SHEETS_API_ENDPOINT` is set, else the service-account key
with domain-wide delegation and the spreadsheets scope.

Titles are text: matching is literal (`str` comparisons on case-folded, whitespace-
collapsed cells), never a regular expression, and values are written as typed cells
(a drive name starting with `=` stays text, never a formula).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import requests
from google.auth import exceptions as auth_exceptions
from google.auth.transport import requests as google_requests
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account
from gspread.exceptions import APIError
from gspread.http_client import HTTPClient

from . import google
from .catalog import Catalog, Course, Problem, crosslisted_message, normalise_title
from .errors import ConfigError, ServiceError
from .report import drive_link
from .settings import Settings

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/spreadsheets"
GOOGLE_ROOT = "https://sheets.googleapis.com"
CELL_LIMIT = 50_000  # Google rejects longer cell text
TAB_TITLE_LIMIT = 100
_DIGEST_VERSION = 1
_COLUMN = re.compile(r"[A-Z]{1,3}")
_CELL = re.compile(r"([A-Z]{1,3})([1-9][0-9]*)")
_METADATA_FIELDS = "sheets.properties(sheetId,title,gridProperties(rowCount,columnCount))"
_NUMERIC_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)\s*")


# ---------------------------------------------------------------- layout


@dataclass(frozen=True, slots=True)
class Colour:
    """An RGB colour as the Sheets API writes it (components 0–1)."""

    red: float = 0.0
    green: float = 0.0
    blue: float = 0.0

    def api(self) -> dict[str, float]:
        return {"red": self.red, "green": self.green, "blue": self.blue}


RED = Colour(1, 0, 0)
GREEN = Colour(0, 1, 0)
YELLOW = Colour(1, 1, 0)


@dataclass(frozen=True)
class Layout:
    """Every tab, heading, column and cell the report uses; defaults match today's sheet."""

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
    heading_colour: Colour = RED
    written_colour: Colour = GREEN
    stale_colour: Colour = YELLOW

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
        m = _CELL.fullmatch(self.stamp_cell)
        assert m is not None  # checked in __post_init__
        return int(m.group(2)) - 1, _column_index(m.group(1))


def _column_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def quote_tab(title: str) -> str:
    """A tab name as an A1 range of the whole tab: `'It''s'` (always quoted, quotes doubled)."""
    return "'" + title.replace("'", "''") + "'"


# ---------------------------------------------------------------- matching courses to rows

Grid = Sequence[Sequence[Any]]
TIERS = ("full name", "code", "title", "contained title")


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a course's row is: one row found, none (not found) or several (ambiguous).

    `rows` are 1-based sheet rows of the deciding tier (`TIERS`), sorted."""

    course: str
    rows: tuple[int, ...] = ()
    tier: str | None = None

    @property
    def found(self) -> bool:
        return len(self.rows) == 1

    @property
    def ambiguous(self) -> bool:
        return len(self.rows) > 1


def _cell_text(value: Any) -> str:
    """What a cell says, for matching: text as is, whole numbers without `.0`."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Index:
    """The searchable cells of a tab: exact lookups and one haystack for containment."""

    def __init__(self, grid: Grid, first_row: int, skip: frozenset[tuple[int, int]]) -> None:
        self.exact: dict[str, set[int]] = {}
        parts: list[str] = []
        self.starts: list[int] = []
        self.rows: list[int] = []
        offset = 0
        for r in range(first_row, len(grid)):
            for c, value in enumerate(grid[r]):
                if (r, c) in skip:
                    continue
                text = normalise_title(_cell_text(value))
                if not text:
                    continue
                self.exact.setdefault(text, set()).add(r + 1)
                self.starts.append(offset)
                self.rows.append(r + 1)
                parts.append(text)
                offset += len(text) + 1
        # Normalised text has no newlines, so a match never spans two cells.
        self.haystack = "\n".join(parts)

    def containing(self, needle: str) -> set[int]:
        """Rows with a cell containing `needle` as whole words (`Calculus I` ≠ `Calculus II`)."""
        found: set[int] = set()
        if not needle:
            return found
        hay, n = self.haystack, len(needle)
        pos = hay.find(needle)
        while pos != -1:
            before = hay[pos - 1] if pos > 0 else "\n"
            after = hay[pos + n] if pos + n < len(hay) else "\n"
            # A boundary is needed only where the title itself starts/ends with a word character.
            if not (needle[0].isalnum() and before.isalnum()) and not (
                needle[-1].isalnum() and after.isalnum()
            ):
                found.add(self.rows[bisect.bisect_right(self.starts, pos) - 1])
            pos = hay.find(needle, pos + 1)
        return found


def place(
    courses: Iterable[Course],
    grid: Grid,
    *,
    first_row: int = 1,
    skip: frozenset[tuple[int, int]] = frozenset(),
) -> tuple[Placement, ...]:
    """Find each course's row in `grid` (rows of cell values from A1), contract §4.

    Tiers in order: a cell equal to the full name, to the code (`CSCI-1200`), to the
    title, then a cell containing the title; the first tier that matches anything
    decides. Comparisons are case-insensitive, whitespace-normalised and literal.
    Rows above `first_row` (0-based; the header) and the cells in `skip` (the report's
    own count and stamp cells) are not searched."""
    index = _Index(grid, first_row, skip)
    placements = []
    for course in courses:
        placement = Placement(course.name)
        for tier in TIERS:
            rows = _lookup(index, course, tier)
            if rows:
                placement = Placement(course.name, tuple(sorted(rows)), tier)
                break
        placements.append(placement)
    return tuple(placements)


def _lookup(index: _Index, course: Course, tier: str) -> set[int]:
    if tier == "full name":
        return index.exact.get(normalise_title(course.name), set())
    if tier == "code":
        return index.exact.get(normalise_title(course.key), set())
    if tier == "title":
        return index.exact.get(normalise_title(course.title), set())
    return index.containing(normalise_title(course.title))


# ---------------------------------------------------------------- the report (pure)


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


def error_lines(catalog: Catalog, layout: Layout = Layout()) -> tuple[Line, ...]:
    """The `Errors in Drive` tab: three sections, each a heading, its messages, a blank row."""

    def problem(p: Problem) -> Line:
        return Line(p.message, link=drive_link(p.id) or "")

    folder = [problem(p) for p in catalog.problems if not p.category.is_about_files]
    files = [problem(p) for p in catalog.problems if p.category.is_about_files]
    crosslisted = [Line(crosslisted_message(group)) for group in catalog.crosslisted]
    lines: list[Line] = []
    for heading, messages in (
        (layout.errors_heading, folder),
        (layout.filenames_heading, files),
        (layout.crosslisted_heading, crosslisted),
    ):
        lines.append(Line(heading, heading=True))
        lines.extend(messages)
        lines.append(Line(""))
    return tuple(lines)


def _is_numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) or (
        isinstance(value, str) and bool(_NUMERIC_TEXT.fullmatch(value))
    )


def build(catalog: Catalog, copies: Grid, layout: Layout = Layout()) -> Report:
    """The report for `catalog`, given the values of the physical-copies tab (from A1)."""
    col = layout.count_index
    stamp = layout.stamp_position
    skip = frozenset({stamp} | {(r, col) for r in range(len(copies))})
    placements = place(catalog.courses, copies, first_row=layout.header_rows, skip=skip)

    # Courses that land on the same row (crosslisted titles) share it: count the
    # distinct (exam, semester) pairs over all of them.
    pairs: dict[int, set[tuple[str, str]]] = {}
    by_name = {c.name: c for c in catalog.courses}
    for p in placements:
        if p.found:
            course = by_name[p.course]
            pairs.setdefault(p.rows[0], set()).update(
                (entry.type, semester) for entry in course.tests for semester in entry.semesters
            )
    counts = tuple(sorted((row, len(found)) for row, found in pairs.items()))
    written = {row for row, _ in counts}
    stale = tuple(
        r + 1
        for r in range(layout.header_rows, len(copies))
        if col < len(copies[r]) and _is_numeric(copies[r][col]) and r + 1 not in written
    )
    not_found = tuple(p.course for p in placements if not p.rows)
    ambiguous = tuple(p.course for p in placements if p.ambiguous)
    lines = [Line(layout.not_found_heading, heading=True)]
    lines.extend(Line(name) for name in not_found)
    lines.extend(
        Line(f"{p.course} (ambiguous: rows {', '.join(map(str, p.rows))} all match)")
        for p in placements
        if p.ambiguous
    )
    report = Report(
        errors=error_lines(catalog, layout),
        not_found_lines=tuple(lines),
        counts=counts,
        stale=stale,
        not_found=not_found,
        ambiguous=ambiguous,
        placements=placements,
    )
    return _with_digest(report, layout)


def _with_digest(report: Report, layout: Layout) -> Report:
    """A stable digest of what would be written (layout included, time stamp excluded)."""
    content = {
        "version": _DIGEST_VERSION,
        "layout": asdict(layout),
        "errors": [
            [line.text, line.heading, line.link] if line.link else [line.text, line.heading]
            for line in report.errors
        ],
        "not_found": [[line.text, line.heading] for line in report.not_found_lines],
        "counts": report.counts,
        "stale": report.stale,
    }
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return replace(report, digest=digest)


def stamp_text(now: datetime, tz: str | ZoneInfo) -> str:
    """`M/D/YY hh:mm:ss AM` in `tz`, the format of today's sheet (locale-independent)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    t = now.astimezone(ZoneInfo(tz) if isinstance(tz, str) else tz)
    return f"{t.month}/{t.day}/{t:%y} {t:%I:%M:%S} {'AM' if t.hour < 12 else 'PM'}"


# ---------------------------------------------------------------- what the sheet holds now


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
        """The tab called `title`; Google compares tab names case-insensitively."""
        exact = [t for t in self.tabs if t.title == title]
        folded = [t for t in self.tabs if t.title.casefold() == title.casefold()]
        return (exact or folded or [None])[0]


def _trimmed(grid: Iterable[Iterable[Any]]) -> list[list[Any]]:
    rows = []
    for row in grid:
        cells = ["" if v is None else v for v in row]
        while cells and cells[-1] == "":
            cells.pop()
        rows.append(cells)
    while rows and not rows[-1]:
        rows.pop()
    return rows


def in_sync(report: Report, state: SheetState, layout: Layout = Layout()) -> bool:
    """Whether the sheet already shows `report`'s values (formats are covered by the digest)."""
    if any(state.tab(t) is None for t in (layout.errors_tab, layout.not_found_tab)):
        return False
    if state.tab(layout.copies_tab) is None:
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


# ---------------------------------------------------------------- the write (pure)


def _limited(text: str) -> str:
    return text if len(text) <= CELL_LIMIT else text[: CELL_LIMIT - 1] + "…"


def _runs(rows: Iterable[int]) -> list[list[int]]:
    """Consecutive rows grouped: [1, 2, 3, 7] → [[1, 2, 3], [7]]."""
    runs: list[list[int]] = []
    for row in sorted(rows):
        if runs and runs[-1][-1] == row - 1:
            runs[-1].append(row)
        else:
            runs.append([row])
    return runs


def _text_tab(sheet_id: int, lines: Sequence[Line], layout: Layout) -> dict[str, Any]:
    """Clear the whole tab (values and formats) and write `lines` into column A."""
    heading = {
        "backgroundColor": layout.heading_colour.api(),
        "textFormat": {"bold": True},
    }
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
    return {
        "updateCells": {
            "range": {"sheetId": sheet_id},
            "rows": rows,
            "fields": "userEnteredValue,userEnteredFormat",
        }
    }


def _grow(tab: TabInfo, rows: int, columns: int) -> list[dict[str, Any]]:
    if rows <= tab.rows and columns <= tab.columns:
        return []
    grid = {"rowCount": max(rows, tab.rows), "columnCount": max(columns, tab.columns)}
    return [
        {
            "updateSheetProperties": {
                "properties": {"sheetId": tab.sheet_id, "gridProperties": grid},
                "fields": "gridProperties(rowCount,columnCount)",
            }
        }
    ]


def _ensure_tabs(
    state: SheetState, titles: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, TabInfo]]:
    """addSheet requests for the missing tabs (ids chosen here), and every tab's info."""
    requests_: list[dict[str, Any]] = []
    tabs: dict[str, TabInfo] = {}
    next_id = max((t.sheet_id for t in state.tabs), default=0) + 1
    for title in titles:
        found = state.tab(title)
        if found is None:
            found = TabInfo(next_id, title, 1000, 26)
            next_id += 1
            requests_.append(
                {
                    "addSheet": {
                        "properties": {
                            "sheetId": found.sheet_id,
                            "title": title,
                            "gridProperties": {
                                "rowCount": found.rows,
                                "columnCount": found.columns,
                            },
                        }
                    }
                }
            )
        tabs[title] = found
    return requests_, tabs


def missing_copies_tab(state: SheetState, layout: Layout, where: str = "the spreadsheet") -> str:
    """Why the physical-copies tab cannot be used: it is not there. People own that tab
    (contract §4), so the tool never creates an empty one in its place."""
    tabs = ", ".join(repr(t.title) for t in state.tabs) or "none"
    return (
        f"Sheets: {where} has no tab {layout.copies_tab!r} (named by SHEET_COPIES_TAB); "
        f"its tabs are: {tabs}. That tab is kept by people and never created by this tool: "
        "rename the tab back, or set SHEET_COPIES_TAB to its name"
    )


def _copies_tab(state: SheetState, layout: Layout) -> TabInfo:
    found = state.tab(layout.copies_tab)
    if found is None:
        raise ServiceError(missing_copies_tab(state, layout))
    return found


def _stamp_request(tab: TabInfo, layout: Layout, stamp: str) -> dict[str, Any]:
    row, col = layout.stamp_position
    return {
        "updateCells": {
            "start": {"sheetId": tab.sheet_id, "rowIndex": row, "columnIndex": col},
            "rows": [{"values": [{"userEnteredValue": {"stringValue": stamp}}]}],
            "fields": "userEnteredValue",
        }
    }


def write_requests(
    report: Report, state: SheetState, layout: Layout = Layout(), stamp: str | None = None
) -> list[dict[str, Any]]:
    """The `spreadsheets.batchUpdate` requests that write the whole report, in one call.

    Missing tabs are added; grids grow where needed; `Errors in Drive` and
    `Classes Not Found` are cleared and rewritten; in the physical-copies tab only the
    count column (value + background) and the stamp cell are touched."""
    copies = _copies_tab(state, layout)
    titles = (layout.errors_tab, layout.not_found_tab)
    out, tabs = _ensure_tabs(state, titles)
    errors, not_found = (tabs[t] for t in titles)
    col = layout.count_index
    stamp_row, stamp_col = layout.stamp_position
    last_row = max([stamp_row + 1, *(row for row, _ in report.counts), *report.stale])
    out += _grow(errors, len(report.errors), 1)
    out += _grow(not_found, len(report.not_found_lines), 1)
    out += _grow(copies, last_row, max(col, stamp_col) + 1)
    out.append(_text_tab(errors.sheet_id, report.errors, layout))
    out.append(_text_tab(not_found.sheet_id, report.not_found_lines, layout))

    counts = dict(report.counts)
    written = {"backgroundColor": layout.written_colour.api()}
    for run in _runs(counts):
        out.append(
            {
                "updateCells": {
                    "start": {
                        "sheetId": copies.sheet_id,
                        "rowIndex": run[0] - 1,
                        "columnIndex": col,
                    },
                    "rows": [
                        {
                            "values": [
                                {
                                    "userEnteredValue": {"numberValue": counts[row]},
                                    "userEnteredFormat": written,
                                }
                            ]
                        }
                        for row in run
                    ],
                    # Only the background: people's fonts and borders in the column stay.
                    "fields": "userEnteredValue,userEnteredFormat.backgroundColor",
                }
            }
        )
    for run in _runs(report.stale):
        out.append(
            {
                "repeatCell": {
                    "range": {
                        "sheetId": copies.sheet_id,
                        "startRowIndex": run[0] - 1,
                        "endRowIndex": run[-1],
                        "startColumnIndex": col,
                        "endColumnIndex": col + 1,
                    },
                    "cell": {"userEnteredFormat": {"backgroundColor": layout.stale_colour.api()}},
                    "fields": "userEnteredFormat.backgroundColor",
                }
            }
        )
    if stamp is not None:
        out.append(_stamp_request(copies, layout, stamp))
    return out


def stamp_requests(state: SheetState, layout: Layout, stamp: str) -> list[dict[str, Any]]:
    """Only the time stamp (for an unchanged report, when the caller wants it refreshed)."""
    copies = _copies_tab(state, layout)
    row, col = layout.stamp_position
    out = _grow(copies, row + 1, col + 1)
    out.append(_stamp_request(copies, layout, stamp))
    return out


# ---------------------------------------------------------------- HTTP client


class SheetsClient(HTTPClient):
    """gspread's HTTP client, each request sent through `google.Transport` (one
    classification of Google's answers, one pacer, `Retry-After`, jittered backoff,
    bounded retries and time). gspread's `BackOffHTTPClient` is not used: it retries a
    lasting 429 forever. `calls` counts every HTTP request sent, retries included: that
    is what Google's quota counts."""

    def __init__(
        self,
        session: requests.Session,
        *,
        retries: int = google.MAX_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = google.REQUEST_TIMEOUT_S,
        call_budget_s: float = google.CALL_BUDGET_S,
        deadline: google.Deadline = google.NO_DEADLINE,
    ) -> None:
        super().__init__(auth=None, session=session)  # type: ignore[arg-type]
        # gspread passes `self.timeout` to every `requests` call.
        self.request_timeout = timeout
        self.deadline = deadline
        self.set_timeout(timeout)
        self.counter = google.ApiCalls()
        self.transport = google.Transport(
            "sheets",
            pacer=google.Pacer(google.SINGLE_CALLS, clock=google.Clock(sleep)),
            calls=self.counter,
            retries=retries,
            call_budget_s=call_budget_s,
            deadline=deadline,
            logger=log,
        )

    @property
    def calls(self) -> int:
        return self.counter.requests

    @property
    def retried(self) -> int:
        return self.counter.retries

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        def once() -> requests.Response:
            self.counter.request()
            # No request outlives the run: its timeout ends at the run's deadline.
            self.set_timeout(min(self.request_timeout, max(0.1, self.deadline.left())))
            return super(SheetsClient, self).request(*args, **kwargs)

        what = f"{kwargs.get('method') or (args[0] if args else '')} request".strip()
        return self.transport.call(what, once)


class _Redirect:
    """Sends gspread's hard-coded `https://sheets.googleapis.com` URLs to `endpoint`."""

    endpoint = ""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        if self.endpoint and url.startswith(GOOGLE_ROOT):
            url = self.endpoint + url[len(GOOGLE_ROOT) :]
        return super().request(method, url, *args, **kwargs)  # type: ignore[misc]


class _AnonymousSession(_Redirect, requests.Session):
    pass


class _AuthorizedSession(_Redirect, AuthorizedSession):
    pass


# ---------------------------------------------------------------- the adapter


@dataclass(frozen=True)
class SheetPlan:
    """The report and what the sheet holds now; `needs_write` answers "would the sheet change?"."""

    report: Report
    state: SheetState
    in_sync: bool

    def needs_write(self, last_digest: str | None) -> bool:
        """False only if the last successful run wrote this report and the sheet still shows it."""
        return not self.in_sync or last_digest != self.report.digest

    def summary(self, layout: Layout, last_digest: str | None) -> dict[str, Any]:
        """What a run would do to the sheet, as plain data (for `--dry-run`, `--json`, `check`)."""
        titles = (layout.errors_tab, layout.not_found_tab, layout.copies_tab)
        return {
            "would_write": self.needs_write(last_digest),
            "missing_tabs": [t for t in titles if self.state.tab(t) is None],
            "counts": len(self.report.counts),
            "stale": len(self.report.stale),
            "error_rows": len(self.report.errors),
            "not_found": list(self.report.not_found),
            "ambiguous": list(self.report.ambiguous),
        }


@dataclass(frozen=True)
class SheetResult:
    """What `publish` did; `block()` is contract §8's `sheet` block."""

    written: bool
    digest: str
    not_found: tuple[str, ...]
    ambiguous: tuple[str, ...]
    api_calls: int

    def block(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "not_found": list(self.not_found),
            "ambiguous": list(self.ambiguous),
        }


class SheetReport:
    """Reads and writes the report spreadsheet `key` in a constant number of API calls.

    `plan` costs 2 calls (metadata, one `values.batchGet`; 1 when no report tab
    exists yet), `publish` one more `batchUpdate` when something changed."""

    def __init__(
        self,
        client: SheetsClient,
        key: str,
        layout: Layout = Layout(),
        *,
        tz: str = "America/New_York",
        who: str = "the service account",
    ) -> None:
        self.client = client
        self.key = key
        self.layout = layout
        self.tz = tz
        self.who = who

    @property
    def api_calls(self) -> int:
        """HTTP requests sent to the Sheets API so far (retries included)."""
        return self.client.calls

    def read(self) -> SheetState:
        """Every tab's id and size, and the values of the report's three tabs."""
        meta = self._call(
            "read the spreadsheet",
            lambda: self.client.fetch_sheet_metadata(
                self.key,
                params={"fields": _METADATA_FIELDS},
            ),
        )
        tabs = tuple(
            TabInfo(
                p.get("sheetId", 0),  # proto3 JSON may omit a 0
                p.get("title", ""),
                p.get("gridProperties", {}).get("rowCount", 0),
                p.get("gridProperties", {}).get("columnCount", 0),
            )
            for p in (s.get("properties", {}) for s in meta.get("sheets", []))
        )
        state = SheetState(tabs=tabs)
        wanted = {
            name: state.tab(getattr(self.layout, name))
            for name in ("errors_tab", "not_found_tab", "copies_tab")
        }
        present = {name: tab for name, tab in wanted.items() if tab is not None}
        grids: dict[str, Grid] = {}
        if present:
            reply = self._call(
                "read the report tabs",
                lambda: self.client.values_batch_get(
                    self.key,
                    [quote_tab(tab.title) for tab in present.values()],
                    params={"valueRenderOption": "UNFORMATTED_VALUE", "majorDimension": "ROWS"},
                ),
            )
            for name, value_range in zip(present, reply.get("valueRanges", []), strict=False):
                grids[name] = tuple(tuple(row) for row in value_range.get("values", []))
        return SheetState(
            tabs=tabs,
            errors=grids.get("errors_tab", ()),
            not_found=grids.get("not_found_tab", ()),
            copies=grids.get("copies_tab", ()),
        )

    def plan(self, catalog: Catalog) -> SheetPlan:
        """Read the sheet and compute the report; writes nothing (for `--dry-run` and `check`)."""
        started = time.monotonic()
        calls = self.api_calls
        state = self.read()
        if state.tab(self.layout.copies_tab) is None:
            raise ServiceError(
                missing_copies_tab(state, self.layout, f"spreadsheet {self.key} (SHEET_URL)")
            )
        report = build(catalog, state.copies, self.layout)
        plan = SheetPlan(report, state, in_sync(report, state, self.layout))
        log.info(
            "sheet: read %d tabs (%d rows in %r), %d rows found, %d not found, %d ambiguous "
            "in %.2f s (%d API calls)",
            len(state.tabs),
            len(state.copies),
            self.layout.copies_tab,
            len(report.counts),
            len(report.not_found),
            len(report.ambiguous),
            time.monotonic() - started,
            self.api_calls - calls,
        )
        for p in report.placements:
            log.debug("sheet: %s → rows %s (%s)", p.course, list(p.rows), p.tier or "not found")
        return plan

    def write(self, plan: SheetPlan, now: datetime) -> None:
        """Write `plan.report` and the time stamp in one atomic `batchUpdate`."""
        stamp = stamp_text(now, self.tz)
        body = {"requests": write_requests(plan.report, plan.state, self.layout, stamp)}
        self._call("write the report", lambda: self.client.batch_update(self.key, body))

    def publish(
        self,
        catalog: Catalog,
        last_digest: str | None,
        now: datetime,
        *,
        stamp_unchanged: bool = False,
    ) -> SheetResult:
        """Bring the sheet up to date with `catalog` (contract §4).

        Writes nothing when the report equals what the last successful run wrote
        (`last_digest`, from the state file) and the sheet still shows it; with
        `stamp_unchanged` the time stamp is refreshed then (one call). The caller keeps
        the returned `digest` in the state file only after this returns."""
        started = time.monotonic()
        calls = self.api_calls
        plan = self.plan(catalog)
        report = plan.report
        written = plan.needs_write(last_digest)
        if written:
            self.write(plan, now)
        elif stamp_unchanged:
            body = {"requests": stamp_requests(plan.state, self.layout, stamp_text(now, self.tz))}
            self._call("write the time stamp", lambda: self.client.batch_update(self.key, body))
        log.info(
            "sheet: %s: %d counts, %d stale, %d error rows, %d not found, %d ambiguous "
            "in %.2f s (%d API calls)",
            "written" if written else "unchanged, nothing written",
            len(report.counts),
            len(report.stale),
            len(report.errors),
            len(report.not_found),
            len(report.ambiguous),
            time.monotonic() - started,
            self.api_calls - calls,
        )
        return SheetResult(
            written=written,
            digest=report.digest,
            not_found=report.not_found,
            ambiguous=report.ambiguous,
            api_calls=self.api_calls - calls,
        )

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one API call; Google's answers become the tool's errors (never with secrets)."""
        sheet = f"spreadsheet {self.key} (SHEET_URL)"
        try:
            return fn()
        except google.CallFailed as failed:
            if isinstance(failed.cause, auth_exceptions.RefreshError):
                raise google.credentials_rejected(
                    failed.cause, "Sheets", self.who, (SCOPE,)
                ) from None
            if not isinstance(failed.cause, APIError):
                raise ServiceError(
                    f"Sheets API unreachable while trying to {what} ({type(failed.cause).__name__})"
                ) from None
            err = failed.cause
            code, message = err.code, str(err.error.get("message", ""))[:300]
            if code == 404:
                raise ServiceError(
                    f"Sheets: {sheet} was not found: check SHEET_URL, and that the sheet "
                    f"is shared with {self.who}"
                ) from None
            if code == 403:
                raise ServiceError(
                    f"Sheets: {sheet} is not shared with {self.who} (it needs edit access): "
                    f"{message}"
                ) from None
            if code == 401:
                raise ConfigError(f"Sheets API rejected the credentials: {message}") from None
            raise ServiceError(
                f"Sheets: could not {what} of {sheet}: HTTP {code}: {message}"
            ) from None


def open_report(
    key: str,
    *,
    endpoint: str = "",
    credentials: service_account.Credentials | None = None,
    layout: Layout = Layout(),
    tz: str = "America/New_York",
    sleep: Callable[[float], None] = time.sleep,
    retries: int = google.MAX_RETRIES,
    who: str = "",
    deadline: google.Deadline = google.NO_DEADLINE,
    timeout: float = google.REQUEST_TIMEOUT_S,
) -> SheetReport:
    """A `SheetReport` for spreadsheet `key`: with `credentials` (OAuth), else anonymous;
    requests go to `endpoint` when set (an emulator), else to Google. `who` names the
    account in "not shared with ..." errors (default: the key's e-mail)."""
    local = google.direct(endpoint)
    if credentials is not None:
        token_session = requests.Session()
        token_session.trust_env = not local
        session: requests.Session = _AuthorizedSession(
            credentials, auth_request=google_requests.Request(token_session)
        )
        who = who or credentials.service_account_email
    else:
        session = _AnonymousSession()
        who = who or (f"anonymous access at {endpoint}" if endpoint else "anonymous access")
    session.trust_env = not local
    session.endpoint = endpoint.rstrip("/")  # type: ignore[attr-defined]
    client = SheetsClient(session, sleep=sleep, retries=retries, deadline=deadline, timeout=timeout)
    return SheetReport(client, key, layout, tz=tz, who=who)


def layout_from(settings: Settings) -> Layout:
    """The layout named by the `SHEET_*` settings (today's sheet by default)."""
    return Layout(
        errors_tab=settings.sheet_errors_tab,
        copies_tab=settings.sheet_copies_tab,
        not_found_tab=settings.sheet_not_found_tab,
        count_column=settings.sheet_count_column,
        stamp_cell=settings.sheet_stamp_cell,
    )


def connect(
    settings: Settings,
    layout: Layout | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    deadline: google.Deadline = google.NO_DEADLINE,
) -> SheetReport:
    """The report for `settings.sheet_url`: anonymous when `SHEETS_API_ENDPOINT` is set,
    else the service-account key with delegation to `DELEGATE_EMAIL`. Makes no call yet.
    `layout` defaults to the one the `SHEET_*` settings name."""
    layout = layout_from(settings) if layout is None else layout
    if not settings.sheet_key:
        raise ConfigError("SHEET_URL is not set: the sheet report needs the spreadsheet URL")
    credentials = None
    if not settings.sheets_api_endpoint:
        credentials = google.credentials(
            settings.google_credentials_file, settings.delegate_email, (SCOPE,)
        )
    return open_report(
        settings.sheet_key,
        endpoint=settings.sheets_api_endpoint,
        credentials=credentials,
        layout=layout,
        tz=settings.tz,
        sleep=sleep,
        who=settings.delegate_email,
        deadline=deadline,
    )
