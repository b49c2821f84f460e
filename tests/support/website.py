"""What a visitor of the website sees: its backend's three reads, sync and async.

The website (a FastAPI app on motor/pymongo) navigates code → courses of the code →
backtest of a course id. These helpers do exactly those reads so tests can compare
what a visitor would see with what the catalog says.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.database import Database

from backtest_compilation.catalog import Catalog, exam_documents
from backtest_compilation.store import BACKTESTS, CODES, COURSES

NOT_FOUND = "404 Backtest not found"

# code → [(course id, course name, tests as served or NOT_FOUND)]
View = dict[str, list[tuple[str, str, Any]]]


def expected_view(catalog: Catalog) -> dict[str, list[tuple[str, Any]]]:
    """What the website must show for `catalog` (ids left out: they are the store's)."""
    return {
        code: [(c.name, exam_documents(c.tests)) for c in catalog.courses if c.code == code]
        for code in catalog.course_codes
    }


def without_ids(view: View) -> dict[str, list[tuple[str, Any]]]:
    return {code: [(name, tests) for _id, name, tests in rows] for code, rows in view.items()}


def visit(db: Database[Any]) -> View:
    """Every page a visitor can reach, read the website's way (synchronous client)."""
    view: View = {}
    for code in sorted(db[CODES].distinct("course_code")):
        courses = sorted(
            (
                {"id": str(c["_id"]), "name": c["name"]}
                for c in db[COURSES].find({"course_code": code})
            ),
            key=lambda c: c["name"],
        )
        rows = []
        for course in courses:
            backtest = db[BACKTESTS].find_one({"course_ids": {"$in": [ObjectId(course["id"])]}})
            rows.append(
                (course["id"], course["name"], backtest["tests"] if backtest else NOT_FOUND)
            )
        view[code] = rows
    return view


async def visit_async(uri: str, db_name: str) -> View:
    """The same reads with pymongo's async client, as the website's backend does them."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        db = client[db_name]
        view: View = {}
        for code in sorted(await db[CODES].distinct("course_code")):
            cursor = db[COURSES].find({"course_code": code})
            courses = sorted(
                [{"id": str(c["_id"]), "name": c["name"]} async for c in cursor],
                key=lambda c: c["name"],
            )
            rows = []
            for course in courses:
                backtest = await db[BACKTESTS].find_one(
                    {"course_ids": {"$in": [ObjectId(course["id"])]}}
                )
                rows.append(
                    (course["id"], course["name"], backtest["tests"] if backtest else NOT_FOUND)
                )
            view[code] = rows
        return view
    finally:
        await client.close()
