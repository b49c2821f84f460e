"""What the sheet will say (contract §4), with a stable digest of it.

`build` turns a catalog and the physical-copies tab into a `Report`: the `Errors in
Drive` and `Classes Not Found` lines, the digital counts per row and the stale rows.
Pure: no I/O, no clock (the time stamp is formatted from a given `now`)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .catalog import Catalog, Problem, crosslisted_message
from .report import drive_link
from .row_matching import Grid, Placement, place
from .sheet_layout import TODAYS_LAYOUT, Layout

_DIGEST_VERSION = 1
_NUMERIC_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)\s*")


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


def build(catalog: Catalog, copies: Grid, layout: Layout = TODAYS_LAYOUT) -> Report:
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
