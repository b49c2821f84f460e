"""The tree model and the local folder source."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtest_compilation import tree
from backtest_compilation.local import LocalFolderSource, SourceError
from backtest_compilation.tree import FOLDER_MIME, PDF_MIME, Item
from tests.support.trees import count, flatten


def test_assemble_builds_only_what_hangs_under_the_root() -> None:
    items = [
        Item("d1", "CSCI", FOLDER_MIME, "root"),
        Item("c1", "CSCI-1200 DS", FOLDER_MIME, "d1"),
        Item("f2", "b.pdf", PDF_MIME, "c1"),
        Item("f1", "a.pdf", PDF_MIME, "c1"),
        Item("x1", "elsewhere.pdf", PDF_MIME, "some-other-folder"),
    ]
    root = tree.assemble("root", "Backtests", items)
    (dept,) = root.children
    (course,) = dept.children
    assert [f.name for f in course.children] == ["a.pdf", "b.pdf"]
    assert count(root) == (2, 2)


def test_assemble_and_flatten_are_inverse() -> None:
    root = tree.folder("root", "R", tree.folder("d", "CSCI", tree.file("f", "x.pdf")))
    assert tree.assemble("root", "R", flatten(root)) == root


def test_assemble_ignores_order_and_survives_a_cycle() -> None:
    items = [
        Item("a", "A", FOLDER_MIME, "b"),
        Item("b", "B", FOLDER_MIME, "a"),
        Item("d", "CSCI", FOLDER_MIME, "root"),
    ]
    assert tree.assemble("root", "R", items) == tree.assemble("root", "R", list(reversed(items)))
    assert [n.id for n in tree.assemble("root", "R", items).children] == ["d"]


def test_a_deep_tree_does_not_hit_the_recursion_limit() -> None:
    items = [Item(f"n{i}", f"n{i}", FOLDER_MIME, f"n{i - 1}" if i else "root") for i in range(5000)]
    root = tree.assemble("root", "R", items)
    assert count(root) == (5000, 0)


def test_local_source_reads_a_drive_like_directory(tmp_path: Path) -> None:
    course = tmp_path / "CSCI" / "CSCI-1200 Data Structures"
    course.mkdir(parents=True)
    (course / "E1F22.PDF").write_bytes(b"%PDF")
    (course / "notes.txt").write_text("x")
    (course / ".DS_Store").write_text("x")
    root = LocalFolderSource(tmp_path).read()
    (dept,) = root.children
    (c,) = dept.children
    assert [(n.name, n.mime_type) for n in c.children] == [
        ("E1F22.PDF", PDF_MIME),
        ("notes.txt", "application/octet-stream"),
    ]
    assert c.children[0].id == "CSCI/CSCI-1200 Data Structures/E1F22.PDF"


def test_local_source_renames_on_disk_and_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"1")
    (tmp_path / "b.pdf").write_bytes(b"2")
    source = LocalFolderSource(tmp_path)
    with pytest.raises(FileExistsError):
        source.rename("a.pdf", "b.pdf")
    source.rename("a.pdf", "c.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.pdf", "c.pdf"]


def test_a_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is not a directory"):
        LocalFolderSource(tmp_path / "nope").read()
