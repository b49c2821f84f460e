"""The terminal text people read (issue 11 item 21): counts agree with their nouns."""

from __future__ import annotations

import re
from datetime import date

from backtest_compilation import catalog, report
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
