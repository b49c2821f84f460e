"""Contract §2 rules on whole trees: every problem category, publishing, renames, duplicates."""

from __future__ import annotations

from datetime import date

import pytest

from backtest_compilation import catalog
from backtest_compilation.catalog import Category, ExamEntry
from backtest_compilation.tree import Node, file, folder

TODAY = date(2026, 11, 21)
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def drive(*departments: Node) -> Node:
    return folder("root", "Backtests", *departments)


def build(root: Node, **kwargs: object) -> catalog.Catalog:
    return catalog.build(root, today=TODAY, **kwargs)  # type: ignore[arg-type]


def cs(*files: Node, name: str = "CSCI-1200 Data Structures", id: str = "c1") -> Node:
    return folder(id, name, *files)


def problems(result: catalog.Catalog) -> list[tuple[str, str]]:
    return [(p.category.value, p.id) for p in result.problems]


@pytest.mark.parametrize(
    ("name", "sized"),
    [
        pytest.param("ABCDEF", True, id="six characters may be a department"),
        pytest.param("Scans to file", False, id="a long folder name is not meant as a department"),
        pytest.param("ABCDEFG", False, id="seven characters are too long for a department"),
        pytest.param("😀😀😀😀😀😀", True, id="length counts characters, not bytes"),
    ],
)
def test_department_size(name: str, sized: bool) -> None:
    """A root folder of at most 6 characters is an invalid department; a longer one is ignored."""
    result = build(drive(folder("d1", name)))
    assert problems(result) == ([("invalid_department", "d1")] if sized else [])
    assert [i.id for i in result.ignored] == ([] if sized else ["d1"])


# (tree, expected problems as (category, node id)) — one row per problem rule of contract §2.
PROBLEM_CASES = [
    pytest.param(
        drive(folder("d1", "CSC", cs())),
        [("invalid_department", "d1")],
        id="a short root folder that is no department is an invalid department",
    ),
    pytest.param(
        drive(folder("d1", "ACSCI", cs())),
        [("invalid_department", "d1")],
        id="five capitals at the root are an invalid department",
    ),
    pytest.param(
        drive(folder("d1", "Scans to file", cs())),
        [],
        id="a long root folder is ignored without a problem",
    ),
    pytest.param(
        drive(file("f1", "stray.pdf"), folder("d1", "CSCI")),
        [],
        id="a file at the root is ignored without a problem",
    ),
    pytest.param(
        drive(
            folder("d1", "CSCI", cs(id="c1")),
            folder("d2", "*CSCI", cs(id="c2", name="CSCI-1100 X")),
        ),
        [("duplicate_department", "d2")],
        id="the same code twice is a duplicate department on the extra folder",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", cs(id="c1")), folder("d2", "*CSCI", cs(id="c2"))),
        [("duplicate_department", "d2"), ("duplicate_course", "c2")],
        id="the starred copy of a department is the extra one",
    ),
    pytest.param(
        drive(
            folder("d1", "1 CSCI", cs(id="c1", name="CSCI-1200 Data Structs")),
            folder("d2", "CSCI", cs(id="c2")),
        ),
        [("duplicate_department", "d1"), ("duplicate_course", "c1")],
        id="the copy in a department named otherwise than its code is the extra one, "
        "even when its name sorts first",
    ),
    pytest.param(
        drive(
            folder("d1", "*CSCI", cs(id="c1")),
            folder("d2", "1 CSCI", cs(id="c2", name="CSCI-1200 Data Structs")),
        ),
        [("duplicate_department", "d2"), ("duplicate_course", "c1")],
        id="when both departments are named otherwise, the later course name is the extra one",
    ),
    pytest.param(
        drive(
            folder("d1", "CSCI", cs(id="c1")),
            folder("d2", "CSCI", cs(id="c2", name="*CSCI-1200 Data Structures")),
        ),
        [("duplicate_department", "d2"), ("duplicate_course", "c1")],
        id="when both departments are named as their code, the later course name is the extra one",
    ),
    pytest.param(
        drive(folder("d1", "CSCI"), folder("d2", "*CSCI"), folder("d3", "1 CSCI")),
        [("duplicate_department", "d3"), ("duplicate_department", "d2")],
        id="each extra folder of a department gets its own problem",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", file("f1", "E1F22.pdf"))),
        [("not_a_course_folder", "f1")],
        id="a file directly in a department is not a course folder",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", folder("c1", "Data Structures"))),
        [("invalid_course", "c1")],
        id="a folder without code and number is an invalid course",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", folder("c1", "csci-1200 Data Structures"))),
        [("invalid_course", "c1")],
        id="a lower-case course folder is an invalid course",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", folder("c1", "MATH-1010 Calculus I", file("f1", "E1F22.pdf")))),
        [("department_mismatch", "c1")],
        id="a course of another department is a department mismatch and its files are not examined",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", cs(id="c1"), cs(id="c2", name="CSCI-1200 Data Structs"))),
        [("duplicate_course", "c1")],
        id="two folders with one number are a duplicate course",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", cs(id="c1"), cs(id="c2"))),
        [("duplicate_course", "c2")],
        id="two identically named course folders are still reported",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", cs(folder("x1", "Old", file("f1", "E1F22.pdf"))))),
        [("folder_inside_course", "x1")],
        id="a folder inside a course is a problem and its files are not examined",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", cs(file("f1", "E1F22.docx", DOCX)))),
        [("not_a_pdf", "f1")],
        id="a document that is not a PDF is not a PDF",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", cs(file("f1", "E1F22.pdf", "image/png")))),
        [("not_a_pdf", "f1")],
        id="the mime type decides, not the name",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", cs(file("f1", "scan0001")))),
        [("invalid_filename", "f1")],
        id="a PDF mime type without extension is examined as a PDF",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", cs(file("f1", "Exam one.pdf")))),
        [("invalid_filename", "f1")],
        id="an unreadable name is an invalid filename",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", cs(file("f1", "MATH-1010 E1F22.pdf")))),
        [("invalid_filename", "f1")],
        id="another course's prefix is an invalid filename",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", cs(file("f1", "E1F27.pdf")))),
        [("invalid_year", "f1")],
        id="a year after the current one is an invalid year",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", cs(file("f1", "E1F26.pdf")))),
        [],
        id="the current year is valid",
    ),
    pytest.param(
        drive(folder("d1", "BEAR", folder("c1", "BEAR-1000 Bears", file("f1", "E1F30.pdf")))),
        [],
        id="future years are allowed in an exempt department",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", cs(file("f1", "E1F22.pdf"), file("f2", "e1f22 (1).pdf")))),
        [("duplicate_test", "f2")],
        id="two files of one test are a duplicate test",
    ),
]


@pytest.mark.parametrize(("tree", "expected"), PROBLEM_CASES)
def test_problem_rules(tree: Node, expected: list[tuple[str, str]]) -> None:
    assert sorted(problems(build(tree))) == sorted(expected)


def test_every_problem_names_its_full_path_in_its_message() -> None:
    tree = drive(folder("d1", "CSCI", cs(file("f1", "notes.txt", "text/plain"))))
    (problem,) = build(tree).problems
    assert problem.path == "CSCI / CSCI-1200 Data Structures / notes.txt"
    assert problem.path in problem.message
    assert problem.category is Category.NOT_A_PDF


def test_duplicate_department_message_names_both_folders() -> None:
    tree = drive(folder("d1", "CSCI"), folder("d2", "*CSCI"))
    (problem,) = build(tree).problems
    assert "'*CSCI'" in problem.message and "'CSCI'" in problem.message


def test_duplicate_course_message_names_both_copies() -> None:
    tree = drive(folder("d1", "CSCI", cs(id="c1")), folder("d2", "1 CSCI", cs(id="c2")))
    (problem,) = [p for p in build(tree).problems if p.category is Category.DUPLICATE_COURSE]
    assert (problem.id, problem.path) == ("c2", "1 CSCI / CSCI-1200 Data Structures")
    assert problem.message == (
        "Duplicate course: 1 CSCI / CSCI-1200 Data Structures "
        "(same number as 'CSCI / CSCI-1200 Data Structures')"
    )


def test_the_courses_of_both_duplicate_departments_are_used() -> None:
    tree = drive(
        folder("d1", "CSCI", cs(id="c1")),
        folder("d2", "*CSCI", folder("c2", "CSCI-2300 Algorithms")),
    )
    assert [c.name for c in build(tree).courses] == [
        "CSCI-1200 Data Structures",
        "CSCI-2300 Algorithms",
    ]


def test_duplicate_course_with_different_names_publishes_both() -> None:
    tree = drive(folder("d1", "CSCI", cs(id="c1"), cs(id="c2", name="CSCI-1200 Data Structs")))
    assert [c.name for c in build(tree).courses] == [
        "CSCI-1200 Data Structs",
        "CSCI-1200 Data Structures",
    ]


def test_identical_course_names_merge_their_files_under_the_smallest_id() -> None:
    tree = drive(
        folder(
            "d1",
            "CSCI",
            cs(file("f1", "E1F22.pdf"), id="c9"),
            cs(file("f2", "E2F22.pdf"), id="c3"),
        )
    )
    (course,) = build(tree).courses
    assert course.folder_id == "c3"
    assert course.tests == (
        ExamEntry("Exam 1", ("Fall 2022",)),
        ExamEntry("Exam 2", ("Fall 2022",)),
    )


def test_a_mismatched_course_is_not_published() -> None:
    tree = drive(folder("d1", "CSCI", folder("c1", "MATH-1010 Calculus I")))
    assert build(tree).courses == ()


def test_a_department_without_valid_courses_publishes_no_code() -> None:
    tree = drive(folder("d1", "CSCI", folder("c1", "Junk")), folder("d2", "MATH"))
    assert build(tree).course_codes == ()


def test_course_codes_come_from_published_courses() -> None:
    tree = drive(
        folder("d1", "MATH", folder("c1", "MATH-1010 Calculus I")), folder("d2", "CSCI", cs())
    )
    assert build(tree).course_codes == ("CSCI", "MATH")


def test_a_course_with_no_tests_is_published_with_an_empty_list() -> None:
    (course,) = build(drive(folder("d1", "CSCI", cs()))).courses
    assert course.tests == () and course.digital_count == 0


def test_exam_and_semester_order_follow_the_website_rules() -> None:
    names = ["MF22", "E1S21", "E1F22", "QF20", "Q2S20", "E1U22", "M1F21", "E2F22"]
    tree = drive(folder("d1", "CSCI", cs(*(file(f"f{i}", n) for i, n in enumerate(names)))))
    (course,) = build(tree).courses
    assert course.tests == (
        ExamEntry("Quiz", ("Fall 2020",)),
        ExamEntry("Quiz 2", ("Spring 2020",)),
        ExamEntry("Exam 1", ("Fall 2022", "Summer 2022", "Spring 2021")),
        ExamEntry("Exam 2", ("Fall 2022",)),
        ExamEntry("Midterm", ("Fall 2022", "Fall 2021")),
    )


def test_two_files_of_one_exam_and_semester_count_once() -> None:
    tree = drive(folder("d1", "CSCI", cs(file("f1", "E1F22.pdf"), file("f2", "E1 F22 v2.pdf"))))
    (course,) = build(tree).courses
    assert course.digital_count == 1


def test_digital_count_is_distinct_exam_semester_pairs() -> None:
    names = ["E1F22.pdf", "E1S22.pdf", "E2F22.pdf", "MF22.pdf", "M1F22 key.pdf"]
    tree = drive(folder("d1", "CSCI", cs(*(file(f"f{i}", n) for i, n in enumerate(names)))))
    (course,) = build(tree).courses
    assert course.digital_count == 4


def test_invalid_files_do_not_count() -> None:
    tree = drive(folder("d1", "CSCI", cs(file("f1", "E1F30.pdf"), file("f2", "junk.pdf"))))
    (course,) = build(tree).courses
    assert course.digital_count == 0


RENAME_CASES = [
    pytest.param(
        [("f1", "csci-1200 e1 f22.pdf")],
        [("f1", "CSCI-1200 E1F22.pdf")],
        [],
        id="a valid badly named file is renamed to its canonical name",
    ),
    pytest.param(
        [("f1", "CSCI-1200 E1F22.pdf")],
        [],
        [],
        id="a canonical file is not renamed",
    ),
    pytest.param(
        [("f1", "CSCI-1200 E1F22.pdf"), ("f2", "e1f22.pdf")],
        [],
        ["f2"],
        id="when one duplicate already has the name no other is renamed",
    ),
    pytest.param(
        [("f2", "e1f22 b.pdf"), ("f1", "e1f22 a.pdf")],
        [("f1", "CSCI-1200 E1F22.pdf")],
        ["f2"],
        id="otherwise only the duplicate whose name sorts first is renamed",
    ),
    pytest.param(
        [("f2", "E1F22.pdf"), ("f1", "E1F22.pdf")],
        [("f1", "CSCI-1200 E1F22.pdf")],
        ["f2"],
        id="equal names are ordered by id",
    ),
    pytest.param(
        [("f1", "MATH-1010 E1F22.pdf")],
        [],
        [],
        id="an invalid file is never renamed",
    ),
    pytest.param(
        [("f1", "E1F30.pdf")],
        [],
        [],
        id="a file with an invalid year is never renamed",
    ),
    pytest.param(
        [("f1", "E1F22.pdf"), ("f2", "E1S22.pdf")],
        [("f1", "CSCI-1200 E1F22.pdf"), ("f2", "CSCI-1200 E1S22.pdf")],
        [],
        id="different tests are renamed independently",
    ),
]


@pytest.mark.parametrize(("files", "renames", "duplicates"), RENAME_CASES)
def test_renames_and_the_duplicate_rule(
    files: list[tuple[str, str]], renames: list[tuple[str, str]], duplicates: list[str]
) -> None:
    tree = drive(folder("d1", "CSCI", cs(*(file(i, n) for i, n in files))))
    result = build(tree)
    assert sorted((r.id, r.new) for r in result.renames) == sorted(renames)
    assert sorted(p.id for p in result.problems if p.category is Category.DUPLICATE_TEST) == sorted(
        duplicates
    )


def test_non_pdf_files_are_never_renamed() -> None:
    tree = drive(folder("d1", "CSCI", cs(file("f1", "e1f22.docx", DOCX))))
    assert build(tree).renames == ()


def test_canonical_name_uses_the_folder_code_not_the_prefix_case() -> None:
    tree = drive(folder("d1", "CSCI", cs(file("f1", "cScI 1200 -e1f22.pdf"), name="CSCI-1200 DS")))
    (rename,) = build(tree).renames
    assert rename.new == "CSCI-1200 E1F22.pdf"
    assert rename.old == "cScI 1200 -e1f22.pdf"


CROSSLIST_CASES = [
    pytest.param(
        [("CSCI", "CSCI-1200 Data Structures"), ("ECSE", "ECSE-1200 Data Structures")],
        [("CSCI-1200 Data Structures", "ECSE-1200 Data Structures")],
        id="the same title in two departments is crosslisted",
    ),
    pytest.param(
        [("CSCI", "CSCI-1200 Data Structures"), ("CSCI", "CSCI-1300 Data Structures")],
        [],
        id="the same title twice in one department is not crosslisted",
    ),
    pytest.param(
        [
            ("CSCI", "CSCI-4000 Robotics"),
            ("ECSE", "ECSE-4000 Robotics"),
            ("MANE", "MANE-4000 Robotics"),
        ],
        [("CSCI-4000 Robotics", "ECSE-4000 Robotics", "MANE-4000 Robotics")],
        id="a crosslisted group holds every department's course",
    ),
    pytest.param(
        [("CSCI", "CSCI-1200 Data  structures"), ("ECSE", "ECSE-1200 DATA STRUCTURES")],
        [("CSCI-1200 Data  structures", "ECSE-1200 DATA STRUCTURES")],
        id="titles compare case-insensitively with whitespace normalised",
    ),
    pytest.param(
        [("CSCI", "CSCI-1200 Calculus I"), ("MATH", "MATH-1200 Calculus II")],
        [],
        id="different titles are not crosslisted",
    ),
]


@pytest.mark.parametrize(("courses", "expected"), CROSSLIST_CASES)
def test_crosslisted(courses: list[tuple[str, str]], expected: list[tuple[str, ...]]) -> None:
    departments: dict[str, list[Node]] = {}
    for i, (code, name) in enumerate(courses):
        departments.setdefault(code, []).append(folder(f"c{i}", name))
    tree = drive(*(folder(f"d{code}", code, *kids) for code, kids in departments.items()))
    result = build(tree)
    assert list(result.crosslisted) == expected
    assert all(p.category is not Category.DUPLICATE_COURSE for p in result.problems)


def test_crosslisted_message_reads_like_the_sheet_line() -> None:
    assert (
        catalog.crosslisted_message(("CSCI-1200 Data Structures", "ECSE-1200 Data Structures"))
        == "Data Structures: CSCI-1200 and ECSE-1200"
    )
    assert (
        catalog.crosslisted_message(
            ("CSCI-4000 Robotics", "ECSE-4000 Robotics", "MANE-4000 Robotics")
        )
        == "Robotics: CSCI-4000, ECSE-4000 and MANE-4000"
    )


def test_exempt_departments_are_configurable() -> None:
    tree = drive(folder("d1", "CSCI", cs(file("f1", "E1F30.pdf"))))
    result = build(tree, future_year_exempt=frozenset({"CSCI"}))
    assert result.problems == ()
    assert result.courses[0].digital_count == 1


def test_the_year_rule_follows_the_given_day() -> None:
    tree = drive(folder("d1", "CSCI", cs(file("f1", "E1F27.pdf"))))
    assert catalog.build(tree, today=date(2027, 1, 1)).problems == ()


def test_ignored_nodes_are_listed_with_a_reason() -> None:
    tree = drive(
        file("f0", "readme.txt", "text/plain"), folder("d1", "Scans to file", file("f1", "a"))
    )
    ignored = {i.id: i.reason for i in build(tree).ignored}
    assert ignored == {
        "f0": "file at the root",
        "d1": "root folder is not a department",
        "f1": "root folder is not a department",
    }


def test_problems_are_sorted_by_path() -> None:
    tree = drive(
        folder("d2", "MATH", file("f2", "b.pdf")),
        folder("d1", "CSCI", file("f1", "z.pdf"), file("f3", "a.pdf")),
    )
    assert [p.path for p in build(tree).problems] == [
        "CSCI / a.pdf",
        "CSCI / z.pdf",
        "MATH / b.pdf",
    ]


def test_odd_names_are_data() -> None:
    weird = [
        'quote"s.pdf',
        "back\\slash.pdf",
        "emoji 😀.pdf",
        "(.*)+?.pdf",
        "x" * 500,
        "\u200b",
        " ",
    ]
    tree = drive(folder("d1", "CSCI", cs(*(file(f"f{i}", n) for i, n in enumerate(weird)))))
    result = build(tree)
    assert {p.category for p in result.problems} == {Category.INVALID_FILENAME}
    assert len(result.problems) == len(weird)


# Issue 11 item 17: shortcuts say they are shortcuts, wherever they stand.
SHORTCUT = "application/vnd.google-apps.shortcut"

SHORTCUT_CASES = [
    pytest.param(
        drive(file("s1", "MATH", SHORTCUT), folder("d1", "CSCI", cs(file("f1", "E1F22.pdf")))),
        ("invalid_department", "s1", "Shortcut, not a department folder: MATH"),
        "the real department folder belongs here",
        id="a shortcut named like a department is a problem, not ignored",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", file("s1", "CSCI-1300 Systems", SHORTCUT))),
        ("not_a_course_folder", "s1", "Shortcut, not a course folder: CSCI / CSCI-1300 Systems"),
        "the real course folder belongs here",
        id="a shortcut named like a course says it is a shortcut",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", cs(file("s1", "CSCI-1200 E1F22.pdf", SHORTCUT)))),
        (
            "not_a_pdf",
            "s1",
            "Shortcut, not a PDF: CSCI / CSCI-1200 Data Structures / CSCI-1200 E1F22.pdf",
        ),
        "the real PDF belongs here",
        id="a shortcut named like a test says it is a shortcut",
    ),
]


@pytest.mark.parametrize(("tree", "expected", "advice"), SHORTCUT_CASES)
def test_shortcuts_are_named_as_shortcuts(
    tree: Node, expected: tuple[str, str, str], advice: str
) -> None:
    result = build(tree)
    found = [(p.category.value, p.id, p.message) for p in result.problems if p.id == "s1"]
    assert len(found) == 1
    category, node_id, message = found[0]
    assert (category, node_id) == expected[:2]
    assert message.startswith(expected[2]) and advice in message
    assert "s1" not in {r.id for r in result.renames}
    assert all(c.folder_id != "s1" for c in result.courses)


def test_a_long_named_shortcut_at_the_root_is_ignored_like_a_file() -> None:
    result = build(drive(file("s1", "Scans to file", SHORTCUT)))
    assert result.problems == () and [i.id for i in result.ignored] == ["s1"]


# Issue 17 item 2: a root that holds course folders and no department is a department
# folder: a configuration error, whatever else it holds or MongoDB holds.
ROOT_IS_A_DEPARTMENT = [
    pytest.param(
        folder("d1", "Computer Science", cs(file("f1", "E1F22.pdf"))),
        "'Computer Science' holds course folders like 'CSCI-1200 Data Structures'",
        id="course folders at the root",
    ),
    pytest.param(
        folder("d1", "CSCI", cs(id="c2", name="CSCI-2300 Algorithms"), cs(), folder("x", "Old")),
        "'CSCI' holds course folders like 'CSCI-1200 Data Structures'",
        id="a department folder as the root, with an odd folder in it",
    ),
]


@pytest.mark.parametrize(("root", "reason"), ROOT_IS_A_DEPARTMENT)
def test_a_root_holding_course_folders_is_too_deep(root: Node, reason: str) -> None:
    built = build(root)
    assert built.root_too_deep == f"{reason} and no department folders"
    assert built.root_hint is None
    error = catalog.too_deep_error(built, "FOLDER_ID", ("0ABacktests", "Backtests"))
    assert error == (
        f"FOLDER_ID points one level too deep: {reason} and no department folders. "
        "Set FOLDER_ID to the folder that holds it: 0ABacktests ('Backtests'). "
        "Nothing was written."
    )
    unseen = catalog.too_deep_error(built, "FOLDER_ID", None)
    assert "Set FOLDER_ID to the shared drive or folder that holds the department" in unseen


@pytest.mark.parametrize(
    "root",
    [
        pytest.param(drive(folder("d1", "CSCI", cs())), id="a drive with departments"),
        pytest.param(
            drive(folder("d1", "CSCI"), cs(id="c2")),
            id="a course folder next to a department",
        ),
        pytest.param(drive(), id="an empty drive"),
    ],
)
def test_a_root_with_departments_or_no_course_folder_is_not_too_deep(root: Node) -> None:
    assert build(root).root_too_deep is None


# Issue 11 item 14: a root that may be a department (or a course) folder says so.
TOO_DEEP = [
    pytest.param(
        folder("d1", "CSCI", folder("x", "Old stuff")),
        "one level too deep: 'CSCI' holds no department folders, and it is named like a department",
        id="a root named like a department",
    ),
    pytest.param(
        folder("c1", "CSCI-1200 Data Structures", file("f1", "CSCI-1200 E1F22.pdf")),
        "two levels too deep: 'CSCI-1200 Data Structures' holds no department folders but "
        "test files like 'CSCI-1200 E1F22.pdf'",
        id="a course folder as the root",
    ),
]


@pytest.mark.parametrize(("root", "hint"), TOO_DEEP)
def test_a_root_one_level_too_deep_gets_a_hint(root: Node, hint: str) -> None:
    got = build(root).root_hint
    assert got is not None and f"FOLDER_ID seems to point {hint}" in got


@pytest.mark.parametrize(
    "root",
    [
        pytest.param(drive(folder("d1", "CSCI", cs())), id="a drive with departments"),
        pytest.param(drive(), id="an empty drive"),
        pytest.param(
            folder("r", "Meeting notes", file("a", "agenda.pdf"), folder("p", "Photos 2024")),
            id="an unrelated folder",
        ),
    ],
)
def test_no_hint_when_the_root_looks_right_or_like_nothing(root: Node) -> None:
    assert build(root).root_hint is None


# Issue 17 item 6: with every department gone, the hint says so instead of guessing.
GONE = [
    pytest.param(
        drive(file("f1", "CSCI-1200 E1F22.pdf")),
        ["CSCI", "MATH"],
        "The root held the departments CSCI and MATH at the last run and holds none now",
        id="a test file left at the root: the departments are gone, not FOLDER_ID wrong",
    ),
    pytest.param(drive(), ["CSCI"], "The root held the departments CSCI at", id="an empty root"),
    pytest.param(
        drive(file("f1", "CSCI-1200 E1F22.pdf")),
        [],
        "FOLDER_ID seems to point two levels too deep",
        id="no department known from the last run: the guess about FOLDER_ID stays",
    ),
    pytest.param(
        drive(folder("d1", "CSCI", folder("c1", "Junk"))),
        ["CSCI", "MATH"],
        None,
        id="departments still there (without a course): no hint",
    ),
]


@pytest.mark.parametrize(("root", "had", "hint"), GONE)
def test_the_guard_hint_says_departments_are_gone(
    root: Node, had: list[str], hint: str | None
) -> None:
    got = catalog.guard_hint(build(root), had)
    if hint is None:
        assert got is None
    else:
        assert got is not None and got.startswith(hint)
        assert ("too deep" in got) == (not had)
