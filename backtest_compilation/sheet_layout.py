"""The sheet's layout (contract §4): every tab, heading, column and cell the report uses.

Defaults match the sheet in use today; each is configurable through the `SHEET_*` settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

TAB_TITLE_LIMIT = 100
_COLUMN = re.compile(r"[A-Z]{1,3}")
_CELL = re.compile(r"([A-Z]{1,3})([1-9][0-9]*)")


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


TODAYS_LAYOUT = Layout()  # the sheet in use today


def _column_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def quote_tab(title: str) -> str:
    """A tab name as an A1 range of the whole tab: `'It''s'` (always quoted, quotes doubled)."""
    return "'" + title.replace("'", "''") + "'"


def layout_of(config: Any) -> Layout:
    """The layout named by the `SHEET_*` settings of `config` (today's sheet by default)."""
    return Layout(
        errors_tab=config.sheet_errors_tab,
        copies_tab=config.sheet_copies_tab,
        not_found_tab=config.sheet_not_found_tab,
        count_column=config.sheet_count_column,
        stamp_cell=config.sheet_stamp_cell,
    )
