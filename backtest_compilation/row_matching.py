"""Which row of the physical-copies tab belongs to which course (contract §4).

Tiers in order: a cell equal to the full name, to the code, then a row with a cell equal
to the department code, one equal to the number and one containing the title, then a
cell equal to the title, then a cell containing the title. Titles are text: matching is
literal (`str` comparisons on case-folded, whitespace-collapsed cells), never a regular
expression."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .catalog import Course, normalise_title

Grid = Sequence[Sequence[Any]]
TIERS = ("full name", "code", "department and number", "title", "contained title")


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

    Tiers in order: a cell equal to the full name, to the code (`CSCI-1200`), a row
    with cells equal to the department code (`CSCI`) and to the number (`1200`) and a
    cell containing the title, a cell equal to the title, then a cell containing the
    title; the first tier that matches anything
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
    if tier == "department and number":
        rows = index.exact.get(normalise_title(course.code), set())
        rows = rows & index.exact.get(normalise_title(course.number), set())
        return rows & index.containing(normalise_title(course.title)) if rows else rows
    if tier == "title":
        return index.exact.get(normalise_title(course.title), set())
    return index.containing(normalise_title(course.title))
