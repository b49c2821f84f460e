"""Invariants of the naming core that a table of cases cannot enumerate (hypothesis)."""

from __future__ import annotations

import itertools
import random
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from backtest_compilation import catalog, naming
from backtest_compilation.tree import FOLDER_MIME, PDF_MIME, Node

TODAY = date(2026, 11, 21)

codes = st.sampled_from(["CSCI", "MATH", "ECSE", "BEAR", "PHYS"])
numbers = st.from_regex(r"[0-9]{3}[0-9X]", fullmatch=True)
titles = st.sampled_from(["Data Structures", "Calculus I", "Calculus II", "C++ (Intro)", "Ünï ☕"])
exams = st.from_regex(r"(M1?|E[1-9]|Q[0-9]{0,2})", fullmatch=True)
semesters = st.sampled_from(["F", "S", "U", "SU"])
years = st.integers(0, 99)

test_names = st.builds(
    lambda prefix, sep, exam, space, sem, year, rest, ext: (
        f"{prefix}{sep}{exam}{space}{sem}{year:02d}{rest}{ext}"
    ),
    st.sampled_from(["", "CSCI-1200", "csci 1200", "MATH1010"]),
    st.from_regex(r"[ _-]{0,3}", fullmatch=True),
    exams.map(lambda e: random.Random(e).choice([e, e.lower()])),
    st.sampled_from(["", " "]),
    semesters,
    years,
    st.text(max_size=8),
    st.sampled_from([".pdf", ".PDF", "", ".pdf.pdf"]),
)
any_name = st.one_of(st.text(max_size=30), test_names)


def test_arbitrary_names_never_raise() -> None:
    parsed_names = 0

    @given(any_name)
    def check(name: str) -> None:
        nonlocal parsed_names
        naming.department_code(name)
        naming.parse_course(name)
        parsed = naming.parse_test(name)
        if parsed is not None:
            course = naming.CourseName("CSCI", "1200", "Data Structures")
            assert parsed.canonical(course).endswith(".pdf")
            assert parsed.exam_entry[1] and parsed.semester_entry[1]
            parsed_names += 1

    check()
    # Some names must have parsed, or the checks on a parsed name never ran.
    assert parsed_names > 0


@given(codes, numbers, titles, exams, semesters, years)
def test_a_canonical_name_parses_back_to_itself(
    code: str, number: str, title: str, exam: str, semester: str, year: int
) -> None:
    course = naming.CourseName(code, number, title)
    parsed = naming.parse_test(f"{exam}{semester}{year:02d}")
    assert parsed is not None
    canonical = parsed.canonical(course)
    again = naming.parse_test(canonical)
    assert again is not None
    assert naming.prefix_matches(again, course)
    assert again.canonical(course) == canonical
    assert (again.exam_entry, again.semester_entry) == (parsed.exam_entry, parsed.semester_entry)


# Random drive trees: department → course → files, with valid and invalid names mixed.
dept_names = st.one_of(codes, codes.map(lambda c: "*" + c), st.text(max_size=8))
course_names = st.one_of(
    st.builds(lambda c, n, t: f"{c}-{n} {t}", codes, numbers, titles),
    st.text(max_size=20),
)
mimes = st.sampled_from([PDF_MIME, PDF_MIME, PDF_MIME, "text/plain", FOLDER_MIME])


# Short names a valid course's file can have that parse but are not canonical, so the
# catalog renames them (the random names above almost never make a valid test file).
loose_test_names = st.builds(
    lambda exam, space, sem, year: f"{exam}{space}{sem}{year:02d}.pdf",
    exams,
    st.sampled_from(["", " "]),
    semesters,
    st.integers(10, 25),
)
# A department whose courses carry its code: their files can be valid tests.
well_formed_departments = codes.flatmap(
    lambda code: st.tuples(
        st.just(code),
        st.lists(
            st.tuples(
                st.builds(lambda n, t: f"{code}-{n} {t}", numbers, titles),
                st.lists(st.tuples(st.one_of(loose_test_names, any_name), mimes), max_size=6),
            ),
            min_size=1,
            max_size=3,
        ),
    )
)
trees = st.lists(
    st.one_of(
        st.tuples(
            dept_names,
            st.lists(
                st.one_of(
                    st.tuples(course_names, st.lists(st.tuples(any_name, mimes), max_size=6)),
                    st.tuples(any_name, st.just(None)),  # a file directly in the department
                ),
                max_size=5,
            ),
        ),
        well_formed_departments,
    ),
    max_size=5,
)


def make_tree(spec: list, shuffle: random.Random | None = None) -> Node:
    ids = itertools.count()

    def nid() -> str:
        return f"id{next(ids)}"

    def order(nodes: list[Node]) -> tuple[Node, ...]:
        if shuffle is not None:
            shuffle.shuffle(nodes)
        return tuple(nodes)

    depts = []
    for dept_name, children in spec:
        kids = []
        for child_name, files in children:
            if files is None:
                kids.append(Node(nid(), child_name, PDF_MIME))
                continue
            leaves = []
            for file_name, mime in files:
                if mime == FOLDER_MIME:
                    leaves.append(
                        Node(nid(), file_name, FOLDER_MIME, (Node(nid(), "E1F22.pdf", PDF_MIME),))
                    )
                else:
                    leaves.append(Node(nid(), file_name, mime))
            kids.append(Node(nid(), child_name, FOLDER_MIME, order(leaves)))
        depts.append(Node(nid(), dept_name, FOLDER_MIME, order(kids)))
    return Node("root", "Backtests", FOLDER_MIME, order(depts))


@settings(max_examples=150, deadline=None)
@given(trees, st.randoms(use_true_random=False))
def test_catalog_is_deterministic_and_independent_of_listing_order(
    spec: list, rnd: random.Random
) -> None:
    straight = catalog.build(make_tree(spec), today=TODAY)
    shuffled = catalog.build(make_tree(spec, shuffle=rnd), today=TODAY)
    assert straight == shuffled
    assert catalog.build(make_tree(spec), today=TODAY) == straight


def _files(node: Node) -> list[Node]:
    out, stack = [], [node]
    while stack:
        current = stack.pop()
        for child in current.children:
            (stack if child.is_folder else out).append(child)
    return out


def test_every_file_is_exactly_once_valid_problem_or_ignored() -> None:
    files_checked = 0

    @settings(max_examples=150, deadline=None)
    @given(trees)
    def check(spec: list) -> None:
        nonlocal files_checked
        tree = make_tree(spec)
        result = catalog.build(tree, today=TODAY)
        problem_ids = [p.id for p in result.problems]
        ignored_ids = [i.id for i in result.ignored]  # folder ids are no file ids
        valid = 0
        for f in _files(tree):
            places = problem_ids.count(f.id) + ignored_ids.count(f.id)
            assert places <= 1, f
            if places == 0:  # neither a problem nor ignored: a valid test PDF
                assert f.is_pdf and naming.parse_test(f.name) is not None, f
                valid += 1
            files_checked += 1
        # and every published course's count is what its valid files say
        assert sum(c.digital_count for c in result.courses) <= valid

    check()
    # The trees can be empty: the property must have met files, not only empty drives.
    assert files_checked > 0


def test_renames_target_canonical_names_of_valid_files() -> None:
    renames_checked = 0

    @settings(max_examples=100, deadline=None)
    @given(trees)
    def check(spec: list) -> None:
        nonlocal renames_checked
        result = catalog.build(make_tree(spec), today=TODAY)
        problem_ids = {p.id for p in result.problems}
        for rename in result.renames:
            assert rename.id not in problem_ids
            parsed = naming.parse_test(rename.new)
            assert parsed is not None and rename.new != rename.old
            renames_checked += 1

    check()
    # Most trees need no rename: the property must have met some that do.
    assert renames_checked > 0
