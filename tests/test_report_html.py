"""`report.html` (every sync) and the demo's page: the same sections as the terminal,
problems linking to Drive, and — rendered by a real headless Chromium — no sideways
scrolling at 1,280 px or on a phone, long names wrapped."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from backtest_compilation import lastrun, report, sample

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "main.py")
LONG_NAME = "CSCI-1200_" + "x" * 240 + ".pdf"  # one unbreakable word, far wider than a screen


def sync_summary(tmp_path: Path) -> dict[str, Any]:
    """A real sync of the sample drive (plus one absurdly long file name), as recorded."""
    drive = sample.copy_sample_drive(tmp_path)
    course = next(drive.glob("CSCI/CSCI-1200*"))
    (course / LONG_NAME).write_bytes(b"%PDF-1.4\n")
    env = {
        "PATH": os.environ["PATH"],
        "MONGO_URI": "mongomock://report",
        "CACHE_DIR": str(tmp_path / "cache"),
    }
    out = subprocess.run(
        [sys.executable, MAIN, "sync", "--source", str(drive)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    # A local --source run keeps its own record (lastrun.folder), never the Drive source's.
    return json.loads((lastrun.folder(tmp_path / "cache", drive) / "last-run.json").read_text())


def drive_ids(summary: dict[str, Any]) -> dict[str, Any]:
    """The same run as if read from Drive: every problem id a Drive-shaped id."""
    problems = [{**p, "id": f"1DrvProblem{n:06d}"} for n, p in enumerate(summary["problems"])]
    return {**summary, "problems": problems}


def test_the_page_has_the_terminals_sections_and_links(tmp_path: Path) -> None:
    summary = drive_ids(sync_summary(tmp_path))
    page = report.html_page(summary, title="t", headline="h", mongo_lines=["+ code CSCI"])
    headings = re.findall(r"<h2>([^<(]+)", page)
    assert [h.strip() for h in headings] == [
        "Errors",
        "Invalid Filenames",
        "Crosslisted classes",
        "Classes not found in the sheet",
        "Renames",
        "MongoDB changes",
        "What the website shows",
    ]
    assert summary["problems"]
    for p in summary["problems"]:
        url = f"https://drive.google.com/open?id={p['id']}"
        assert f'<a href="{url}" rel="noreferrer" target="_blank">' in page
    assert "<script" not in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page


def test_the_demo_page_shows_what_the_terminal_shows(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, MAIN, "demo"],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "demo-report.html").read_text()
    terminal = out.stdout
    website = terminal.split("What the website now shows:\n", 1)[1].split("\n\n", 1)[0]
    assert website.splitlines()
    for line in website.splitlines():
        assert f"<li>{line.strip()}</li>" in page.replace("&#x27;", "'")
    listed = [line for line in terminal.splitlines() if line.startswith(("  + ", "    Invalid "))]
    assert listed
    for line in listed:
        assert line.strip().replace("'", "&#x27;") in page
    assert "First run: summary: sync exit 0" in page and "Second run: summary: sync" in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MEASURE = (
    "<script>document.title = JSON.stringify({"
    "scroll: document.documentElement.scrollWidth, width: window.innerWidth,"
    "links: document.querySelectorAll('a[href^=\"https://drive.google.com/\"]').length,"
    "sections: document.querySelectorAll('h2').length,"
    "font: parseFloat(getComputedStyle(document.body).fontSize)})</script>"
)


def render(page: Path, width: int, height: int, profile: Path) -> dict[str, Any]:
    assert CHROMIUM is not None
    out = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    m = re.search(r"<title>(\{.*?\})</title>", out.stdout)
    assert m, out.stdout[:500]
    return json.loads(m.group(1).replace("&quot;", '"'))


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)
@pytest.mark.parametrize(
    ("device", "width", "height"), [("laptop", 1280, 800), ("phone", 390, 844)]
)
def test_headless_chromium_renders_it_without_sideways_scrolling(
    tmp_path: Path, device: str, width: int, height: int
) -> None:
    summary = drive_ids(sync_summary(tmp_path))
    html = report.html_page(summary, title="backtest-compilation", headline="h")
    assert LONG_NAME in html
    page = tmp_path / "report-measured.html"
    # The measuring script goes into a copy: the report itself has no scripts.
    page.write_text(html.replace("</body>", MEASURE + "</body>"))
    got = render(page, width, height, tmp_path / f"profile-{device}")
    assert got["scroll"] <= got["width"], got  # long lines wrap instead of overflowing
    assert got["links"] == len(summary["problems"])
    assert got["sections"] == 7
    assert got["font"] >= 14  # readable without zooming
