"""Contract §2 naming rules, one named case per rule (the ids read as sentences)."""

from __future__ import annotations

import pytest

from backtest_compilation import naming
from backtest_compilation.naming import CourseName

DEPARTMENTS = [
    pytest.param("CSCI", "CSCI", id="four capitals are a department"),
    pytest.param("*CSCI", "CSCI", id="a leading star is allowed"),
    pytest.param("1 MATH", "MATH", id="a short prefix before the code is allowed"),
    pytest.param("**PHYS", "PHYS", id="a two-character prefix is allowed"),
    pytest.param("xyCSCI", "CSCI", id="lower-case prefix letters are allowed"),
    pytest.param("ACSCI", None, id="five capitals are not a department"),
    pytest.param("1ACSCI", None, id="a capital before the four letters is refused"),
    pytest.param("CSC", None, id="three capitals are not a department"),
    pytest.param("csci", None, id="lower-case code is not a department"),
    pytest.param("Csci", None, id="mixed-case code is not a department"),
    pytest.param("CSCI ", None, id="trailing space is not a department"),
    pytest.param("CSCI1", None, id="code must end the name"),
    pytest.param("", None, id="empty name is not a department"),
    pytest.param("ÅCSCI", "CSCI", id="a non-ASCII letter before the code is not a capital A-Z"),
    pytest.param("CSÇI", None, id="non-ASCII capitals are not code letters"),
    pytest.param("\nCSCI", "CSCI", id="a newline before the code is just a prefix character"),
]


@pytest.mark.parametrize(("name", "expected"), DEPARTMENTS)
def test_department_code(name: str, expected: str | None) -> None:
    assert naming.department_code(name) == expected


COURSES = [
    pytest.param(
        "CSCI-1200 Data Structures",
        CourseName("CSCI", "1200", "Data Structures"),
        id="a course folder gives code number and title",
    ),
    pytest.param(
        "*CSCI-1200 Data Structures",
        CourseName("CSCI", "1200", "Data Structures"),
        id="a leading star on a course is dropped",
    ),
    pytest.param(
        "CSCI-120X Special Topics",
        CourseName("CSCI", "120X", "Special Topics"),
        id="X is allowed as the last digit",
    ),
    pytest.param(
        "CSCI-1200   Data   Structures  ",
        CourseName("CSCI", "1200", "Data   Structures"),
        id="surrounding title whitespace is stripped and inner whitespace kept",
    ),
    pytest.param(
        "MATH-1010 C++ (Intro) [a-z]*",
        CourseName("MATH", "1010", "C++ (Intro) [a-z]*"),
        id="regex characters in a title are plain text",
    ),
    pytest.param(
        "ARTS-2000 Café ☕ Studies",
        CourseName("ARTS", "2000", "Café ☕ Studies"),
        id="unicode titles are kept",
    ),
    pytest.param("CSCI-12X0 Data", None, id="X only in the last position"),
    pytest.param("CSCI-120x Data", None, id="lower-case x is not a course number digit"),
    pytest.param("csci-1200 Data Structures", None, id="a lower-case course code is invalid"),
    pytest.param(
        "CSCI 1200 Data Structures", None, id="the dash between code and number is required"
    ),
    pytest.param("CSCI-1200", None, id="a course needs a title"),
    pytest.param("CSCI-1200 ", None, id="a blank title is invalid"),
    pytest.param("CSCI-120 Data", None, id="three digits are not a course number"),
    pytest.param("CSCI-12000 Data", None, id="five digits are not a course number"),
    pytest.param("**CSCI-1200 Data", None, id="only one leading star is allowed"),
    pytest.param("CSCI-1200 Data\nStructures", None, id="a newline in a title makes it invalid"),
    pytest.param("CSCI-١٢٠٠ Data", None, id="non-ASCII digits are not course numbers"),
]


@pytest.mark.parametrize(("name", "expected"), COURSES)
def test_parse_course(name: str, expected: CourseName | None) -> None:
    assert naming.parse_course(name) == expected


def test_full_name_and_key() -> None:
    course = CourseName("CSCI", "1200", "Data Structures")
    assert course.full_name == "CSCI-1200 Data Structures"
    assert course.key == "CSCI-1200"


DS = CourseName("CSCI", "1200", "Data Structures")

# A test name that parses but names another course (not this one's test).
OTHER_COURSE = "another course"

# name → canonical name in CSCI-1200, OTHER_COURSE, or None when the name is not a test
# name at all.
TEST_NAMES = [
    pytest.param("CSCI-1200 E1F22.pdf", "CSCI-1200 E1F22.pdf", id="a canonical name is unchanged"),
    pytest.param("csci-1200 e1 f22.pdf", "CSCI-1200 E1F22.pdf", id="names are case-insensitive"),
    pytest.param("E1F22.pdf", "CSCI-1200 E1F22.pdf", id="the prefix is optional"),
    pytest.param("E1F22", "CSCI-1200 E1F22.pdf", id="the .pdf extension is optional"),
    pytest.param("CSCI1200E1F22.pdf", "CSCI-1200 E1F22.pdf", id="the prefix dash is optional"),
    pytest.param(
        "CSCI 1200 E1F22.pdf", "CSCI-1200 E1F22.pdf", id="a space may separate code and number"
    ),
    pytest.param(
        "CSCI-1200_E1F22.pdf", "CSCI-1200 E1F22.pdf", id="an underscore may follow the prefix"
    ),
    pytest.param(
        "CSCI-1200 -_E1F22.pdf",
        "CSCI-1200 E1F22.pdf",
        id="up to three separators follow the prefix",
    ),
    pytest.param(
        "CSCI-1200 E1 F22.pdf", "CSCI-1200 E1F22.pdf", id="a space may precede the semester"
    ),
    pytest.param("M1S21.pdf", "CSCI-1200 MS21.pdf", id="M1 becomes M"),
    pytest.param("MS21.pdf", "CSCI-1200 MS21.pdf", id="M alone is the midterm"),
    pytest.param("E2SU19.pdf", "CSCI-1200 E2U19.pdf", id="SU becomes U"),
    pytest.param("E2U19.pdf", "CSCI-1200 E2U19.pdf", id="U is summer"),
    pytest.param("QF20.pdf", "CSCI-1200 QF20.pdf", id="an un-numbered quiz is valid"),
    pytest.param("Q3S20.pdf", "CSCI-1200 Q3S20.pdf", id="a numbered quiz is valid"),
    pytest.param("Q12F20.pdf", "CSCI-1200 Q12F20.pdf", id="a quiz number may have two digits"),
    pytest.param("E9F20.pdf", "CSCI-1200 E9F20.pdf", id="exam numbers go up to 9"),
    pytest.param("E1F22 (1).pdf", "CSCI-1200 E1F22.pdf", id="trailing text is dropped"),
    pytest.param(
        "E1F22 solutions.PDF", "CSCI-1200 E1F22.pdf", id="an upper-case extension is fine"
    ),
    pytest.param("E1F22.pdf.pdf", "CSCI-1200 E1F22.pdf", id="a doubled extension is trailing text"),
    pytest.param(
        "csci-120x e1f22.pdf", OTHER_COURSE, id="a prefix for another number is not this course"
    ),
    pytest.param("E0F22.pdf", None, id="exam zero is invalid"),
    pytest.param("E10F22.pdf", None, id="exam numbers have one digit"),
    pytest.param("Q123F22.pdf", None, id="quiz numbers have at most two digits"),
    pytest.param("E1W22.pdf", None, id="W is not a semester"),
    pytest.param("E1F2.pdf", None, id="the year needs two digits"),
    pytest.param("Exam 1 Fall 2022.pdf", None, id="spelled-out names are invalid"),
    pytest.param("Copy of E1F22.pdf", None, id="leading text is invalid"),
    pytest.param("E1  F22.pdf", None, id="only one space may precede the semester"),
    pytest.param("CSCI-1200 ----E1F22.pdf", None, id="four separators are too many"),
    pytest.param("", None, id="an empty name is invalid"),
    pytest.param("E1F٢٢.pdf", None, id="non-ASCII digits are not a year"),
    pytest.param("E1ſ22.pdf", None, id="a long s is not an S semester"),
]


@pytest.mark.parametrize(("name", "canonical"), TEST_NAMES)
def test_parse_and_canonical(name: str, canonical: str | None) -> None:
    test = naming.parse_test(name)
    if canonical is None:
        assert test is None
    elif canonical is OTHER_COURSE:
        assert test is not None and not naming.prefix_matches(test, DS)
    else:
        assert test is not None
        assert naming.prefix_matches(test, DS)
        assert test.canonical(DS) == canonical


@pytest.mark.parametrize(
    ("name", "matches"),
    [
        pytest.param("CSCI-1200 E1F22.pdf", True, id="its own prefix matches"),
        pytest.param("E1F22.pdf", True, id="no prefix always matches"),
        pytest.param("MATH-1200 E1F22.pdf", False, id="another department's prefix does not match"),
        pytest.param("CSCI-1100 E1F22.pdf", False, id="another number's prefix does not match"),
        pytest.param("csci-1200 e1f22.pdf", True, id="a lower-case prefix matches"),
    ],
)
def test_prefix_must_be_this_course(name: str, matches: bool) -> None:
    test = naming.parse_test(name)
    assert test is not None
    assert naming.prefix_matches(test, DS) is matches


LABELS = [
    pytest.param("QF22", "Quiz", "Fall 2022", id="Q is Quiz"),
    pytest.param("Q3F22", "Quiz 3", "Fall 2022", id="Q3 is Quiz 3"),
    pytest.param("Q03F22", "Quiz 3", "Fall 2022", id="Q03 is Quiz 3 too"),
    pytest.param("E2S21", "Exam 2", "Spring 2021", id="E2 is Exam 2 and S is Spring"),
    pytest.param("MF22", "Midterm", "Fall 2022", id="M is Midterm and F is Fall"),
    pytest.param("M1U19", "Midterm", "Summer 2019", id="M1 is Midterm and U is Summer"),
    pytest.param("E1SU19", "Exam 1", "Summer 2019", id="SU is Summer"),
    pytest.param("E1F99", "Exam 1", "Fall 2099", id="years are always 20YY"),
    pytest.param("E1F00", "Exam 1", "Fall 2000", id="year 00 is 2000"),
]


@pytest.mark.parametrize(("name", "exam", "semester"), LABELS)
def test_labels(name: str, exam: str, semester: str) -> None:
    test = naming.parse_test(name)
    assert test is not None
    assert (test.exam_entry[1], test.semester_entry[1]) == (exam, semester)


def test_exam_order_is_quiz_exam_midterm_unnumbered_first() -> None:
    names = ["MF22", "E2F22", "Q2F22", "E1F22", "QF22", "Q10F22"]
    tests = [naming.parse_test(n) for n in names]
    ordered = sorted((t for t in tests if t), key=lambda t: t.exam_entry)
    assert [t.exam_entry[1] for t in ordered] == [
        "Quiz",
        "Quiz 2",
        "Quiz 10",
        "Exam 1",
        "Exam 2",
        "Midterm",
    ]


def test_semester_order_is_newest_first_fall_summer_spring() -> None:
    names = ["E1S22", "E1F21", "E1U22", "E1F22", "E1S21"]
    tests = [naming.parse_test(n) for n in names]
    ordered = sorted((t for t in tests if t), key=lambda t: t.semester_entry)
    assert [t.semester_entry[1] for t in ordered] == [
        "Fall 2022",
        "Summer 2022",
        "Spring 2022",
        "Fall 2021",
        "Spring 2021",
    ]
