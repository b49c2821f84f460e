"""Problems stay structured until printed: renames re-render them without a rebuild."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from backtest_compilation import catalog
from backtest_compilation.catalog import Category, Problem
from backtest_compilation.tree import Node, file, folder

TODAY = date(2026, 11, 21)
# Names that parse to few canonical names, so duplicates and renames are common.
NAMES = [
    "CSCI-1200 E1F22.pdf",
    "csci-1200 e1 f22.pdf",
    "e1f22 scan.pdf",
    "E1 F22.pdf",
    "Q2S21.pdf",
    "q2s21 (1).pdf",
    "CSCI-1200 Q2S21.pdf",
    "notes.pdf",
    "MF23.pdf",
    "m1 f23.pdf",
]


def renamed(node: Node, new_names: dict[str, str]) -> Node:
    """`node` with the files in `new_names` renamed (what Drive holds after the renames)."""
    children = tuple(renamed(child, new_names) for child in node.children)
    return replace(node, name=new_names.get(node.id, node.name), children=children)


def drive(files: list[str], twin: list[str]) -> Node:
    """One course, and a starred duplicate folder of it (two folders, one course)."""
    course = folder(
        "c1", "CSCI-1200 Data Structures", *(file(f"f{i}", n) for i, n in enumerate(files))
    )
    extra = folder(
        "c2", "*CSCI-1200 Data Structures", *(file(f"g{i}", n) for i, n in enumerate(twin))
    )
    return folder("root", "Backtests", folder("d1", "CSCI", course, extra))


@settings(max_examples=150, deadline=None)
@given(
    files=st.lists(st.sampled_from(NAMES), max_size=8),
    twin=st.lists(st.sampled_from(NAMES), max_size=4),
    applied=st.data(),
)
def test_problems_after_renames_equal_a_rebuild_of_the_renamed_drive(
    files: list[str], twin: list[str], applied: st.DataObject
) -> None:
    root = drive(files, twin)
    built = catalog.build(root, today=TODAY)
    # Any subset of the renames may have been applied (others failed or are pending).
    done = [r for r in built.renames if applied.draw(st.booleans())]
    rebuilt = catalog.build(renamed(root, {r.id: r.new for r in done}), today=TODAY)
    after = catalog.problems_after_renames(built.problems, done)
    assert [p.message for p in after] == [p.message for p in rebuilt.problems]
    assert [(p.category, p.path, p.id) for p in after] == [
        (p.category, p.path, p.id) for p in rebuilt.problems
    ]


def test_a_duplicate_quotes_its_original_by_the_new_name() -> None:
    root = drive(["csci-1200 e1 f22.pdf", "e1f22 scan.pdf"], [])
    built = catalog.build(root, today=TODAY)
    (rename,) = built.renames
    (duplicate,) = [p for p in built.problems if p.category is Category.DUPLICATE_TEST]
    assert duplicate.message == (
        "Duplicate test: CSCI / CSCI-1200 Data Structures / e1f22 scan.pdf "
        "(same test as 'CSCI / CSCI-1200 Data Structures / csci-1200 e1 f22.pdf')"
    )
    (after,) = [
        p
        for p in catalog.problems_after_renames(built.problems, [rename])
        if p.category is Category.DUPLICATE_TEST
    ]
    assert after.message == (
        "Duplicate test: CSCI / CSCI-1200 Data Structures / e1f22 scan.pdf "
        "(same test as 'CSCI / CSCI-1200 Data Structures / CSCI-1200 E1F22.pdf')"
    )
    assert after.cited is not None and after.cited.id == rename.id


def test_a_problem_known_only_by_its_text_prints_that_text() -> None:
    p = Problem.from_text(Category.NOT_A_PDF, "Not a PDF: a / b", "a / b", "x")
    assert p.message == "Not a PDF: a / b"
    assert catalog.problems_after_renames([p], []) == (p,)
