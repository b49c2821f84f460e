"""The HTML page of a run, pinned byte for byte on fixed summaries.

The golden files under `tests/golden/` hold the page without its CSS (that lives once, in
`report_page.html`); any other change to the page shows here as a diff. To accept an
intended change, run once with `UPDATE_GOLDEN=1` (which rewrites them and fails, so it
never passes by itself) and review the diff of the golden files."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from backtest_compilation import report

GOLDEN = Path(__file__).resolve().parent / "golden"

CSCI_DS = "CSCI-1200 Data Structures"
ECSE_DS = "ECSE-1200 Data Structures"

EVERYTHING: dict[str, Any] = {
    "catalog": {
        "course_codes": ["CSCI", "ECSE"],
        "courses": [
            {
                "name": CSCI_DS,
                "course_code": "CSCI",
                "folder_id": "1FolderCsci1200abcdefghij",
                "digital_count": 3,
                "tests": [
                    {"type": "Exam 1", "tests": ["Fall 2022", "Spring 2023"]},
                    {"type": "Quiz", "tests": ["Fall 2021"]},
                ],
            },
            {
                "name": "CSCI-2300 <Algorithms> & Co",
                "course_code": "CSCI",
                "folder_id": "CSCI/CSCI-2300 <Algorithms> & Co",
                "digital_count": 0,
                "tests": [],
            },
            {
                "name": ECSE_DS,
                "course_code": "ECSE",
                "folder_id": "1FolderEcse1200abcdefghij",
                "digital_count": 1,
                "tests": [{"type": "Final", "tests": ["Summer 2020"]}],
            },
        ],
        "crosslisted": [[CSCI_DS, ECSE_DS]],
    },
    "problems": [
        {
            "category": "invalid_course",
            "message": "Invalid course: CSCI/CSCI-12 Bad",
            "path": "CSCI/CSCI-12 Bad",
            "id": "1ProblemFolder0123456789",
        },
        {
            "category": "not_a_pdf",
            "message": "Not a PDF: CSCI/CSCI-1200 Data Structures/notes.docx",
            "path": "CSCI/CSCI-1200 Data Structures/notes.docx",
            "id": "CSCI/CSCI-1200 Data Structures/notes.docx",
        },
        {
            "category": "invalid_year",
            "message": "Invalid year: CSCI/CSCI-1200 Data Structures/CSCI-1200_Exam1_F99.pdf",
            "path": "CSCI/CSCI-1200 Data Structures/CSCI-1200_Exam1_F99.pdf",
            "id": "1ProblemFile0123456789ab",
        },
        {"category": "no_such_category", "message": "kept as an error", "path": "x", "id": ""},
    ],
    "renames": [
        {
            "id": "1RenameFile0123456789abc",
            "from": "csci-1200_exam1_fall2022.pdf",
            "to": "CSCI-1200_Exam 1_Fall 2022.pdf",
            "applied": True,
        },
        {
            "id": "ECSE/x.pdf",
            "from": "ecse_final_su20.pdf",
            "to": "ECSE-1200_Final_Summer 2020.pdf",
            "applied": False,
        },
    ],
    "mongo": {"inserted": 3, "updated": 1, "deleted": 2, "in_sync": False},
    "sheet": {"written": True, "not_found": [ECSE_DS], "ambiguous": ["CSCI-2300 Algorithms"]},
    "failed": {"sheet": "Sheets API answered 503", "mongo": "MongoDB at x is unreachable"},
}

CASES = [
    pytest.param(
        EVERYTHING,
        {
            "error": "the run stopped: <boom> & more",
            "mongo_lines": ["+ code ECSE", "- course CSCI-9999 Old (gone)", "~ course x", "? odd"],
            "website": ["CSCI: 2 courses", "ECSE: 1 course <b>"],
        },
        "report_everything.html",
        id="every section filled, failed, links to Drive only for Drive ids",
    ),
    pytest.param({}, {}, "report_empty.html", id="an empty summary (a run that failed at once)"),
    pytest.param(
        {
            **EVERYTHING,
            "problems": [],
            "renames": [],
            "failed": {},
            "mongo": {"inserted": 0, "updated": 0, "deleted": 0, "in_sync": True},
            "sheet": {"written": True, "not_found": [], "ambiguous": []},
            "catalog": {**EVERYTHING["catalog"], "crosslisted": []},
        },
        {},
        "report_in_sync.html",
        id="nothing to fix: sheet written, MongoDB in sync",
    ),
]


@pytest.mark.parametrize(("summary", "extra", "golden"), CASES)
def test_the_page_is_byte_identical_to_its_golden_file(
    summary: dict[str, Any], extra: dict[str, Any], golden: str
) -> None:
    page = report.html_page(summary, title="Backtest <sync>", headline="sync: ok & done", **extra)
    (css,) = re.findall(r"<style>(.*?)</style>", page, flags=re.S)
    assert css in report.PAGE.read_text(encoding="utf-8")  # the template's, once
    page = page.replace(css, "")
    path = GOLDEN / golden
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(page, encoding="utf-8")
        pytest.fail(f"{golden} rewritten: review its diff, then run without UPDATE_GOLDEN")
    assert page == path.read_text(encoding="utf-8")
