"""The demo's sample drive keeps its teaching value: every mistake of contract §2 occurs in it."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path

from backtest_compilation import catalog
from backtest_compilation.catalog import Category
from backtest_compilation.local import LocalFolderSource
from backtest_compilation.sample import SAMPLE_DRIVE, copy_sample_drive

TODAY = date(2026, 11, 21)


def build(root: Path, today: date = TODAY) -> catalog.Catalog:
    return catalog.build(LocalFolderSource(root).read(), today=today)


def test_every_problem_category_occurs_except_rename_failed() -> None:
    for today in (TODAY, date.today()):
        found = {p.category for p in build(SAMPLE_DRIVE, today).problems}
        assert found == set(Category) - {Category.RENAME_FAILED}, today


def test_the_sample_shows_what_its_readme_promises() -> None:
    built = build(SAMPLE_DRIVE)
    names = [c.name for c in built.courses]
    assert len(names) == 16 and names == sorted(names)
    assert built.course_codes == ("BEAR", "CSCI", "ECSE", "MATH", "PHYS")
    assert "MATH-2010 Calc III" in names and "MATH-2010 Multivariable Calculus" in names
    assert built.crosslisted == (
        ("CSCI-2500 Computer Organization", "ECSE-2660 Computer Organization"),
    )
    merged = next(c for c in built.courses if c.name == "CSCI-1100 Computer Science I")
    assert {e.type for e in merged.tests} >= {"Exam 3"}  # from the "1 CSCI" copy
    # The problem is about the copy to delete: the one in "1 CSCI", not in "CSCI".
    copies = [p for p in built.problems if p.category is Category.DUPLICATE_COURSE]
    assert {p.path for p in copies} == {
        "1 CSCI / CSCI-1100 Computer Science I",
        "MATH / MATH-2010 Multivariable Calculus",
    }
    bear = next(c for c in built.courses if c.name.startswith("BEAR-1010"))
    assert "Fall 2092" in bear.tests[0].semesters  # exempt from the future-year rule
    assert {(r.old, r.new) for r in built.renames} == {
        ("csci-1100 e1 s23.pdf", "CSCI-1100 E1S23.pdf"),
        ("CSCI-1100 M1F21.pdf", "CSCI-1100 MF21.pdf"),
        ("CSCI-1200_E2SU21 final.pdf", "CSCI-1200 E2U21.pdf"),
        ("E1F23.pdf", "CSCI-2200 E1F23.pdf"),
        ("CSCI-2200 Q S22.pdf", "CSCI-2200 QS22.pdf"),
        ("CSCI-4430 M1 S23.pdf", "CSCI-4430 MS23.pdf"),
        ("math1010 q2 f20.pdf", "MATH-1010 Q2F20.pdf"),
        ("MATH-1010 M1 F21 v2.pdf", "MATH-1010 MF21.pdf"),
        ("ecse 2010 e3 f22.pdf", "ECSE-2010 E3F22.pdf"),
        ("BEAR-2010 Q S24.pdf", "BEAR-2010 QS24.pdf"),
    }
    ignored = {i.path for i in built.ignored}
    assert {"ABOUT THIS SAMPLE.txt", "Scans to file / scan0001.pdf"} <= ignored


def test_renaming_a_copy_converges_and_leaves_the_sample_untouched(tmp_path: Path) -> None:
    before = fingerprint(SAMPLE_DRIVE)
    copy = copy_sample_drive(tmp_path)
    first = build(copy)
    source = LocalFolderSource(copy)
    for rename in first.renames:
        source.rename(rename.id, rename.new)
    second = build(copy)
    assert second.renames == ()
    assert second.courses == first.courses
    assert [p.category for p in second.problems] == [p.category for p in first.problems]
    assert fingerprint(SAMPLE_DRIVE) == before


# Characters Windows and macOS cannot hold in a name, and Windows' reserved names.
_ILLEGAL = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])(\..*)?", re.IGNORECASE)


def test_every_name_is_legal_on_linux_macos_and_windows() -> None:
    assert any(SAMPLE_DRIVE.rglob("*"))
    for path in SAMPLE_DRIVE.rglob("*"):
        name = path.name
        assert not _ILLEGAL.search(name), name
        assert not _RESERVED.fullmatch(name), name
        assert name == name.strip() and not name.endswith("."), name
        assert not name.startswith("."), name  # hidden entries are skipped by the source
    for directory in [SAMPLE_DRIVE, *(p for p in SAMPLE_DRIVE.rglob("*") if p.is_dir())]:
        lowered = [p.name.casefold() for p in directory.iterdir()]
        assert len(lowered) == len(set(lowered)), f"case clash in {directory}"


def test_the_sample_is_small() -> None:
    files = [p for p in SAMPLE_DRIVE.rglob("*") if p.is_file()]
    assert 50 <= len(files) <= 80
    assert sum(p.stat().st_size for p in files) < 20_000


def fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()
