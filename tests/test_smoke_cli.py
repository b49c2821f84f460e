"""The CLI reads a local tree end to end (the foundation's done-when)."""

import json
import subprocess
import sys
from pathlib import Path

from tests.support.isolation import MAIN, environment


def test_sync_source_json_prints_catalog_problems_and_renames(tmp_path: Path) -> None:
    course = tmp_path / "CSCI" / "CSCI-1200 Data Structures"
    course.mkdir(parents=True)
    (course / "csci-1200 e1 f22.pdf").write_bytes(b"%PDF")
    (course / "notes.docx").write_bytes(b"x")
    work = tmp_path.parent / f"{tmp_path.name}-work"  # not inside the drive it reads
    work.mkdir()
    out = subprocess.run(
        [sys.executable, MAIN, "sync", "--source", str(tmp_path), "--dry-run", "--json"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
        env=environment(MONGO_URI="mongomock://localhost"),
    )
    result = json.loads(out.stdout)
    assert result["catalog"]["course_codes"] == ["CSCI"]
    assert [c["name"] for c in result["catalog"]["courses"]] == ["CSCI-1200 Data Structures"]
    assert [p["category"] for p in result["problems"]] == ["not_a_pdf"]
    assert result["renames"][0]["to"] == "CSCI-1200 E1F22.pdf"
