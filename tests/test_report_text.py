"""The terminal text people read (issue 11 item 21): counts agree with their nouns."""

from __future__ import annotations

import re
from datetime import date

from backtest_compilation import catalog, outcome, report
from backtest_compilation.tree import file, folder

TODAY = date(2026, 11, 21)
WRONG_PLURAL = re.compile(r"\b1 (departments|courses|tests|digital tests|problems|renames)\b")


def test_one_of_each_is_singular() -> None:
    root = folder(
        "root",
        "Backtests",
        folder("d", "CSCI", folder("c", "CSCI-1200 Data Structures", file("f", "e1 f22.pdf"))),
        folder("m", "MA TH"),
    )
    text = report.catalog_text(catalog.build(root, today=TODAY))
    assert text.splitlines()[0] == (
        "Catalog: 1 department, 1 course, 1 digital test, 1 problem, 1 rename"
    )
    assert "  CSCI: 1 course" in text and "CSCI-1200 Data Structures  (1 test)" in text
    assert not WRONG_PLURAL.search(text)


def test_other_counts_are_plural() -> None:
    text = report.catalog_text(catalog.build(folder("root", "Backtests"), today=TODAY))
    assert text.splitlines()[0] == (
        "Catalog: 0 departments, 0 courses, 0 digital tests, 0 problems, 0 renames"
    )
    assert [report.plural(n, "course") for n in (0, 1, 2)] == ["0 courses", "1 course", "2 courses"]


def test_the_summary_line_is_singular_for_one() -> None:
    """The line that ends every run (and that the demo prints) agrees with its counts."""
    root = folder(
        "root",
        "Backtests",
        folder("d", "CSCI", folder("c", "CSCI-1200 Data Structures", file("f", "E1F22.pdf"))),
        folder("m", "MA TH"),
    )
    built = catalog.build(root, today=TODAY)
    summary = {
        "mode": "sync",
        "exit_code": 0,
        "catalog": report.catalog_block(built),
        "problems": report.problems_block(built),
        "renames": report.renames_block(built),
        "mongo": {"inserted": 3, "updated": 0, "deleted": 0},
        "sheet": {"written": False},
        "api_calls": {"drive": 0, "sheets": 0, "mongo": 0},
        "timings_s": {"total": 0.1},
    }
    line = outcome.summary_line(summary)
    assert "; 1 department, 1 course, 1 problem; " in line
    assert not WRONG_PLURAL.search(line)
