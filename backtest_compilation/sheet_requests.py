"""What the spreadsheet holds now, and the one `batchUpdate` body that writes a report.

Pure: `SheetState` is what one read returned; `write_requests` and `stamp_requests`
build request bodies from it. Values are written as typed cells (a drive name starting
with `=` stays text, never a formula)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ServiceError
from .row_matching import Grid
from .sheet_contents import Line, Report
from .sheet_layout import TODAYS_LAYOUT, Layout

CELL_LIMIT = 50_000  # Google rejects longer cell text


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


def in_sync(report: Report, state: SheetState, layout: Layout = TODAYS_LAYOUT) -> bool:
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
    report: Report, state: SheetState, layout: Layout = TODAYS_LAYOUT, stamp: str | None = None
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

    out += _count_requests(report, copies, layout)
    if stamp is not None:
        out.append(_stamp_request(copies, layout, stamp))
    return out


def _count_requests(report: Report, copies: TabInfo, layout: Layout) -> list[dict[str, Any]]:
    """The count column: written counts (value and green background), stale cells yellow."""
    col = layout.count_index
    out: list[dict[str, Any]] = []
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
    return out


def stamp_requests(state: SheetState, layout: Layout, stamp: str) -> list[dict[str, Any]]:
    """Only the time stamp (for an unchanged report, when the caller wants it refreshed)."""
    copies = _copies_tab(state, layout)
    row, col = layout.stamp_position
    out = _grow(copies, row + 1, col + 1)
    out.append(_stamp_request(copies, layout, stamp))
    return out
