"""The plan's table of diff and repair cases, shared by the pure plan's tests
(`tests/test_website.py`) and the store's (`tests/test_store.py`, on a real database)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from backtest_compilation.catalog import Catalog
from backtest_compilation.website import Plan
from tests.support.store_data import catalog, course

DS = "CSCI-1200 Data Structures"
CALC = "MATH-1010 Calculus I"
E1 = {"Exam 1": ["Fall 2022", "Spring 2021"]}
E1_DOC = [{"type": "Exam 1", "tests": ["Fall 2022", "Spring 2021"]}]


def oid(n: int) -> ObjectId:
    """Readable ObjectIds ordered by `n` (smaller = older)."""
    return ObjectId(f"{0x64000000 + n:08x}" + "0" * 16)


def synced(*courses_: tuple[int, str, str, dict[str, list[str]]]) -> dict[str, list[dict]]:
    """Documents of a database that already shows these (id, name, folder, tests)."""
    codes = sorted({name.split("-")[0] for _, name, _, _ in courses_})
    return {
        "codes": [{"_id": oid(900 + i), "course_code": c} for i, c in enumerate(codes)],
        "courses": [
            {"_id": oid(n), "name": name, "course_code": name[:4], "folder_id": folder}
            for n, name, folder, _ in courses_
        ],
        "backtests": [
            {
                "_id": oid(500 + n),
                "course_ids": [oid(n)],
                "tests": [{"type": t, "tests": s} for t, s in tests.items()],
            }
            for n, _, _, tests in courses_
        ],
    }


@dataclass(frozen=True)
class Case:
    """One row of the plan's table: a catalog, the documents already stored, and what
    the plan must hold (`expect`)."""

    id: str
    catalog: Catalog
    docs: dict[str, list[dict[str, Any]]]
    expect: Callable[[Plan], None]


def plan_summary(p: Plan) -> dict[str, Any]:
    """The plan's parts as plain values, keyed `codes+`, `courses~`, `backtests-` …"""
    return {
        "codes+": list(p.codes_to_add),
        "codes-": [(c.name, c.reason) for c in p.codes_to_remove],
        "courses+": [c.name for c in p.courses_to_add],
        "courses~": [(u.id, u.name) for u in p.courses_to_update],
        "courses-": [(c.id, c.reason) for c in p.courses_to_remove],
        "backtests+": [b.course_name for b in p.backtests_to_add],
        "backtests~": [(b.id, b.set_tests, b.fix_ids) for b in p.backtests_to_update],
        "backtests-": [(b.id, b.reason) for b in p.backtests_to_remove],
    }


def expect(**wanted: Any) -> Callable[[Plan], None]:
    """Check the listed parts of the plan summary; every part not listed must be empty."""

    def check(p: Plan) -> None:
        got = plan_summary(p)
        assert set(wanted) <= set(got), sorted(set(wanted) - set(got))  # no misspelt part
        for part, value in got.items():
            assert value == wanted.get(part, []), part

    return check


CASES = [
    Case(
        "an empty database gets every code, course and backtest",
        catalog(course(DS, "f1", E1), course(CALC, "f2")),
        {},
        expect(
            **{
                "codes+": ["CSCI", "MATH"],
                "courses+": [DS, CALC],
                "backtests+": [DS, CALC],
            }
        ),
    ),
    Case(
        "a database that already matches needs nothing",
        catalog(course(DS, "f1", E1), course(CALC, "f2")),
        synced((1, DS, "f1", E1), (2, CALC, "f2", {})),
        expect(),
    ),
    Case(
        "a title renamed in Drive keeps the _id and changes the name",
        catalog(course("CSCI-1200 Data Structures and Algorithms", "f1", E1)),
        synced((1, DS, "f1", E1)),
        expect(**{"courses~": [(oid(1), "CSCI-1200 Data Structures and Algorithms")]}),
    ),
    Case(
        "a course without folder id is adopted by name and keeps its _id",
        catalog(course(DS, "f1", E1)),
        {
            **synced((1, DS, "f1", E1)),
            "courses": [{"_id": oid(1), "name": DS, "course_code": "CSCI"}],
        },
        expect(**{"courses~": [(oid(1), DS)]}),
    ),
    Case(
        "a folder recreated under the same name is adopted by name",
        catalog(course(DS, "f-new", E1)),
        synced((1, DS, "f-old", E1)),
        expect(**{"courses~": [(oid(1), DS)]}),
    ),
    Case(
        "folder id wins over name when a title moves to another folder",
        catalog(course(DS, "f2", E1), course("CSCI-1200 Old Structures", "f1")),
        synced((1, DS, "f1", E1)),
        expect(
            **{
                "courses~": [(oid(1), "CSCI-1200 Old Structures")],
                "courses+": [DS],
                "backtests+": [DS],
                "backtests~": [(oid(501), True, False)],
            }
        ),
    ),
    Case(
        "a course moved to another department changes its code and the code list",
        catalog(course("MATH-1200 Data Structures", "f1", E1)),
        synced((1, DS, "f1", E1)),
        expect(
            **{
                "codes+": ["MATH"],
                "codes-": [("CSCI", "no published course")],
                "courses~": [(oid(1), "MATH-1200 Data Structures")],
            }
        ),
    ),
    Case(
        "a course without a backtest document gets one",
        catalog(course(DS, "f1", E1)),
        {**synced((1, DS, "f1", E1)), "backtests": []},
        expect(**{"backtests+": [DS]}),
    ),
    Case(
        "several backtest documents for one course collapse to the oldest",
        catalog(course(DS, "f1", E1)),
        {
            **synced((1, DS, "f1", E1)),
            "backtests": [
                {"_id": oid(503), "course_ids": [oid(1)], "tests": []},
                {"_id": oid(502), "course_ids": [oid(1)], "tests": E1_DOC},
            ],
        },
        expect(**{"backtests-": [(oid(503), "duplicate")]}),
    ),
    Case(
        "the kept duplicate gets the right tests when the oldest is stale",
        catalog(course(DS, "f1", E1)),
        {
            **synced((1, DS, "f1", E1)),
            "backtests": [
                {"_id": oid(502), "course_ids": [oid(1)], "tests": []},
                {"_id": oid(503), "course_ids": [oid(1)], "tests": E1_DOC},
            ],
        },
        expect(
            **{
                "backtests~": [(oid(502), True, False)],
                "backtests-": [(oid(503), "duplicate")],
            }
        ),
    ),
    Case(
        "a backtest pointing at no course is removed",
        catalog(course(DS, "f1", E1)),
        {
            **synced((1, DS, "f1", E1)),
            "backtests": [
                *synced((1, DS, "f1", E1))["backtests"],
                {"_id": oid(600), "course_ids": [oid(77)], "tests": E1_DOC},
                {"_id": oid(601), "tests": []},
            ],
        },
        expect(
            **{
                "backtests-": [
                    (oid(600), "points at no course"),
                    (oid(601), "points at no course"),
                ]
            }
        ),
    ),
    Case(
        "duplicate course documents with one name collapse to the oldest _id",
        catalog(course(DS, "f1", E1)),
        {
            "codes": [{"_id": oid(900), "course_code": "CSCI"}],
            "courses": [
                {"_id": oid(3), "name": DS, "course_code": "CSCI"},
                {"_id": oid(1), "name": DS, "course_code": "CSCI"},
            ],
            "backtests": [
                {"_id": oid(501), "course_ids": [oid(1)], "tests": E1_DOC},
                {"_id": oid(503), "course_ids": [oid(3)], "tests": E1_DOC},
            ],
        },
        expect(
            **{
                "courses~": [(oid(1), DS)],
                "courses-": [(oid(3), "duplicate of a kept course")],
                "backtests-": [(oid(503), "course removed")],
            }
        ),
    ),
    Case(
        "changed tests update the backtest document in place",
        catalog(course(DS, "f1", {"Exam 1": ["Fall 2023", "Fall 2022", "Spring 2021"]})),
        synced((1, DS, "f1", E1)),
        expect(**{"backtests~": [(oid(501), True, False)]}),
    ),
    Case(
        "malformed tests (missing, wrong shape, extra field) are rewritten",
        catalog(course(DS, "f1", E1), course(CALC, "f2", E1), course("PHYS-1100 Physics", "f3")),
        {
            **synced((1, DS, "f1", E1), (2, CALC, "f2", E1), (3, "PHYS-1100 Physics", "f3", {})),
            "backtests": [
                {"_id": oid(501), "course_ids": [oid(1)]},
                {"_id": oid(502), "course_ids": [oid(2)], "tests": [{**E1_DOC[0], "x": 1}]},
                {"_id": oid(503), "course_ids": [oid(3)], "tests": "none"},
            ],
        },
        expect(
            **{
                "backtests~": [
                    (oid(501), True, False),
                    (oid(502), True, False),
                    (oid(503), True, False),
                ]
            }
        ),
    ),
    Case(
        "a scalar or multi-course course_ids is repaired to exactly [course _id]",
        catalog(course(DS, "f1", E1), course(CALC, "f2")),
        {
            **synced((1, DS, "f1", E1), (2, CALC, "f2", {})),
            "backtests": [
                {"_id": oid(501), "course_ids": oid(1), "tests": E1_DOC},
                {"_id": oid(502), "course_ids": [oid(2), oid(1)], "tests": []},
            ],
        },
        expect(**{"backtests~": [(oid(501), False, True), (oid(502), False, True)]}),
    ),
    Case(
        "a backtest shared by two courses is kept by one; the other gets its own",
        catalog(course(DS, "f1", E1), course("ECSE-1200 Data Structures", "f2", E1)),
        {
            **synced((1, DS, "f1", E1), (2, "ECSE-1200 Data Structures", "f2", E1)),
            "backtests": [{"_id": oid(501), "course_ids": [oid(1), oid(2)], "tests": E1_DOC}],
        },
        expect(
            **{
                "backtests+": ["ECSE-1200 Data Structures"],
                "backtests~": [(oid(501), False, True)],
            }
        ),
    ),
    Case(
        "duplicate and stale code documents are removed, missing ones added",
        catalog(course(DS, "f1", E1), course(CALC, "f2")),
        {
            **synced((1, DS, "f1", E1), (2, CALC, "f2", {})),
            "codes": [
                {"_id": oid(900), "course_code": "CSCI"},
                {"_id": oid(901), "course_code": "CSCI"},
                {"_id": oid(902), "course_code": "PHYS"},
                {"_id": oid(903)},
            ],
        },
        expect(
            **{
                "codes+": ["MATH"],
                "codes-": [
                    ("CSCI", "duplicate"),
                    ("PHYS", "no published course"),
                    (None, "no course_code"),
                ],
            }
        ),
    ),
    Case(
        "a course gone from the drive loses course, backtest and, if last, its code",
        catalog(course(DS, "f1", E1)),
        synced((1, DS, "f1", E1), (2, CALC, "f2", {})),
        expect(
            **{
                "codes-": [("MATH", "no published course")],
                "courses-": [(oid(2), "not in the drive")],
                "backtests-": [(oid(502), "course removed")],
            }
        ),
    ),
    Case(
        "hand-made documents with odd ids and fields do not crash the diff",
        catalog(course(DS, "f1", E1)),
        {
            "codes": [{"_id": "CSCI", "course_code": "CSCI"}, {"_id": 7, "course_code": 5}],
            "courses": [
                {"_id": "by-hand", "name": DS, "course_code": "CSCI", "folder_id": "f1"},
                {"_id": 12, "name": None},
                {"_id": oid(4), "name": ["x"], "course_code": {"a": 1}},
            ],
            "backtests": [
                {"_id": "bt", "course_ids": ["by-hand"], "tests": E1_DOC},
                {"_id": 3.5, "course_ids": [[1, 2]], "tests": None},
            ],
        },
        expect(
            **{
                "codes-": [(None, "no course_code")],
                "courses+": [DS],
                "courses-": [
                    (oid(4), "not in the drive"),
                    (12, "its _id is not an ObjectId, the website cannot link it"),
                    ("by-hand", "its _id is not an ObjectId, the website cannot link it"),
                ],
                "backtests+": [DS],
                "backtests-": [(3.5, "points at no course"), ("bt", "course removed")],
            }
        ),
    ),
]
