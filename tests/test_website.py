"""The pure diff: catalog × current MongoDB state → typed plan (contract §3), the guard, output.

The table of diff and repair cases is in `tests/support/plan_cases.py` (the store tests
run it against a real database too)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from bson import ObjectId

from backtest_compilation.catalog import ExamEntry
from backtest_compilation.report import exams_change_text, mongo_block, plan_lines, plan_text
from backtest_compilation.store import parse_tests, read_state
from backtest_compilation.website import Applied, Current, Plan, guard_refusal, plan
from tests.support.plan_cases import CALC, CASES, DS, E1, E1_DOC, Case, oid, synced
from tests.support.store_data import catalog, course, ids


def state(
    codes: list[dict[str, Any]] | None = None,
    courses: list[dict[str, Any]] | None = None,
    backtests: list[dict[str, Any]] | None = None,
) -> Current:
    return read_state(codes or [], courses or [], backtests or [])


def fresh_ids() -> Callable[[], ObjectId]:
    gen = ids()
    return lambda: next(gen)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan(case: Case) -> None:
    current = state(**case.docs)
    p = plan(case.catalog, current, new_id=fresh_ids())
    case.expect(p)
    assert p.existing_courses == len(case.docs.get("courses", []))
    assert p.desired_courses == len(case.catalog.courses)


def test_new_courses_and_their_backtests_share_the_id_chosen_in_advance() -> None:
    made = ids()
    first, second = next(made), next(made)
    p = plan(catalog(course(DS), course(CALC)), state(), new_id=fresh_ids())
    assert [c.id for c in p.courses_to_add] == [first, second]
    assert [b.course_id for b in p.backtests_to_add] == [first, second]


def test_update_writes_exactly_the_catalog_fields() -> None:
    docs = synced((1, DS, "f1", E1))
    docs["courses"][0]["course_code"] = "XXXX"
    p = plan(catalog(course(DS, "f1", E1)), state(**docs))
    (u,) = p.courses_to_update
    assert (u.name, u.code, u.folder_id, u.old.code) == (DS, "CSCI", "f1", "XXXX")


def test_plan_is_deterministic_given_the_id_factory() -> None:
    docs = synced((1, DS, "f1", E1), (2, CALC, "f2", {}))
    cat = catalog(course(DS, "f9"), course("PHYS-1100 Physics", "f3"))
    assert plan(cat, state(**docs), new_id=fresh_ids()) == plan(
        cat, state(**docs), new_id=fresh_ids()
    )


def test_reading_order_does_not_matter() -> None:
    docs = synced((1, DS, "f1", E1), (2, CALC, "f2", {}))
    reversed_docs = {k: list(reversed(v)) for k, v in docs.items()}
    assert state(**docs) == state(**reversed_docs)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ([], ()),
        (E1_DOC, (ExamEntry("Exam 1", ("Fall 2022", "Spring 2021")),)),
        ([{"tests": ["Fall 2022"], "type": "Quiz"}], (ExamEntry("Quiz", ("Fall 2022",)),)),
        (None, None),
        ("Exam 1", None),
        ([{"type": "Exam 1"}], None),
        ([{"type": "Exam 1", "tests": "Fall 2022"}], None),
        ([{"type": 1, "tests": []}], None),
        ([{"type": "Exam 1", "tests": [2022]}], None),
        (["Exam 1"], None),
    ],
    ids=[
        "empty list",
        "website shape",
        "field order does not matter",
        "missing",
        "a string",
        "entry without tests",
        "tests not a list",
        "type not a string",
        "semester not a string",
        "entry not a document",
    ],
)
def test_parse_tests(raw: Any, parsed: Any) -> None:
    assert parse_tests(raw) == parsed


# --------------------------------------------------------------------------- guard


def _plan_deleting(existing: int, keep: int) -> Plan:
    docs = synced(*((n, f"CSCI-{1000 + n} Course {n}", f"f{n}", {}) for n in range(existing)))
    kept = [course(f"CSCI-{1000 + n} Course {n}", f"f{n}") for n in range(keep)]
    return plan(catalog(*kept), state(**docs))


@pytest.mark.parametrize(
    ("existing", "keep", "fraction", "refused"),
    [
        (100, 74, 0.25, True),  # 26 deletions: > 25 % and > 10
        (100, 75, 0.25, False),  # exactly 25 %: not more than the fraction
        (40, 29, 0.25, True),  # 11 deletions, 27.5 %
        (40, 30, 0.25, False),  # 10 deletions is never "more than 10"
        (12, 1, 0.25, True),  # 11 deletions, 92 %
        (20, 0, 0.25, True),  # empty drive listing
        (3, 0, 0.25, True),  # empty drive listing, even for few courses
        (0, 0, 0.25, False),  # nothing anywhere
        (100, 50, 0.6, False),  # 50 % is within a raised MAX_DELETE_FRACTION
        (100, 50, 0.0, True),
    ],
    ids=[
        "26 of 100 is refused",
        "25 of 100 is allowed",
        "11 of 40 is refused",
        "10 of 40 is allowed",
        "11 of 12 is refused",
        "an empty drive is refused",
        "an empty drive is refused even with 3 courses",
        "nothing to delete",
        "a raised fraction allows half",
        "fraction 0 refuses more than 10",
    ],
)
def test_guard(existing: int, keep: int, fraction: float, refused: bool) -> None:
    p = _plan_deleting(existing, keep)
    reason = guard_refusal(p, max_delete_fraction=fraction)
    assert (reason is not None) == refused
    if refused:
        assert "--allow-mass-delete" in reason


def test_guard_message_says_how_many_courses_would_go() -> None:
    reason = guard_refusal(_plan_deleting(100, 60), max_delete_fraction=0.25)
    assert reason is not None
    assert "delete 40 of 100 courses (40%)" in reason
    assert "MAX_DELETE_FRACTION (25%)" in reason
    empty = guard_refusal(_plan_deleting(30, 0), max_delete_fraction=0.25)
    assert empty is not None
    assert "no courses while MongoDB has 30" in empty


# --------------------------------------------------------------------------- output


def test_plan_lines_say_what_a_visitor_will_see_change() -> None:
    docs = synced(
        (1, DS, "f1", E1),
        (2, CALC, "f2", {"Exam 1": ["Fall 2022"]}),
        (3, "PHYS-1100 Physics", "f3", {}),
    )
    docs["backtests"].append({"_id": oid(700), "course_ids": [oid(99)], "tests": []})
    cat = catalog(
        course("CSCI-1200 Data Structures and Algorithms", "f1", E1),
        course(CALC, "f2", {"Quiz": ["Spring 2020"], "Exam 1": ["Fall 2023", "Fall 2022"]}),
        course("CSCI-2300 Intro to Algorithms", "f4", {"Exam 2": ["Fall 2020"]}),
    )
    p = plan(cat, state(**docs), new_id=fresh_ids())
    assert plan_lines(p) == [
        "+ backtest CSCI-2300 Intro to Algorithms: Exam 2 Fall 2020",
        "+ course CSCI-2300 Intro to Algorithms",
        "~ course CSCI-1200 Data Structures and Algorithms: "
        "renamed from 'CSCI-1200 Data Structures'",
        "~ backtest MATH-1010 Calculus I: Quiz +Spring 2020; Exam 1 +Fall 2023",
        "- code PHYS (no published course)",
        "- course PHYS-1100 Physics (not in the drive)",
        "- backtest PHYS-1100 Physics (course removed)",
        f"- backtest {oid(700)} (points at no course)",
    ]
    text = plan_text(p)
    assert text.splitlines()[0] == "MongoDB: 2 to insert, 2 to update, 4 to delete"
    assert plan_text(plan(cat, state())).startswith("MongoDB: 8 to insert, 0 to update")


def test_plan_text_of_an_empty_plan() -> None:
    assert plan_text(Plan()) == "MongoDB: in sync, nothing to write"


@pytest.mark.parametrize(
    ("old", "new", "text"),
    [
        ({"Exam 1": ["Fall 2022"]}, {"Exam 1": ["Fall 2023", "Fall 2022"]}, "Exam 1 +Fall 2023"),
        ({"Exam 1": ["Fall 2022"]}, {}, "Exam 1 -Fall 2022"),
        ({"Quiz": ["Fall 2022"]}, {"Exam 1": ["Fall 2022"]}, "Exam 1 +Fall 2022; Quiz -Fall 2022"),
        (
            {"Exam 1": ["Spring 2021", "Fall 2022"]},
            {"Exam 1": ["Fall 2022", "Spring 2021"]},
            "reordered",
        ),
    ],
    ids=["a semester added", "a type gone", "type renamed", "only the order differs"],
)
def test_exams_change_text(old: dict[str, list[str]], new: dict[str, list[str]], text: str) -> None:
    def entries(d: dict[str, list[str]]) -> tuple[ExamEntry, ...]:
        return tuple(ExamEntry(k, tuple(v)) for k, v in d.items())

    assert exams_change_text(entries(old), entries(new)) == text


def test_malformed_tests_are_reported_as_rewritten() -> None:
    assert exams_change_text(None, ()) == "rewritten (was malformed): no tests"


def test_mongo_block_of_a_plan_and_of_an_applied_plan() -> None:
    p = plan(catalog(course(DS, "f1", E1)), state(**synced((2, CALC, "f2", {}))))
    assert mongo_block(p) == {"inserted": 3, "updated": 0, "deleted": 3, "in_sync": False}
    assert mongo_block(Plan()) == {"inserted": 0, "updated": 0, "deleted": 0, "in_sync": True}
    done = Applied(inserted=3, updated=0, deleted=3)
    assert mongo_block(p, done) == {"inserted": 3, "updated": 0, "deleted": 3, "in_sync": True}


def test_a_returning_folder_gets_its_remembered_id_unless_it_is_taken() -> None:
    back = course(CALC, "f-calc")
    p = plan(catalog(back), state(), new_id=fresh_ids(), reuse={"f-calc": oid(7)})
    assert [c.id for c in p.courses_to_add] == [oid(7)]
    assert p.backtests_to_add[0].course_id == oid(7)
    # The remembered `_id` is in use by another document: never reused (no clash).
    taken = state(courses=[{"_id": oid(7), "name": DS, "course_code": "CSCI"}])
    q = plan(catalog(back), taken, new_id=fresh_ids(), reuse={"f-calc": oid(7)})
    assert [c.id for c in q.courses_to_add] != [oid(7)]
