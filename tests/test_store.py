"""`Store` against mongomock AND the real MongoDB-wire server (SecantusDB).

Every test here runs twice: `[mongomock]` (in process; what `demo` uses) and
`[server]` (marked `mongo_server`: a real pymongo connection, command monitoring,
ordered bulk writes on the wire). What a visitor sees is read the website's way
(`tests/support/website.py`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient, monitoring

from backtest_compilation.catalog import Catalog
from backtest_compilation.errors import ConfigError, ServiceError
from backtest_compilation.report import mongo_block
from backtest_compilation.settings import Settings
from backtest_compilation.store import (
    BACKTESTS,
    CODES,
    COURSES,
    ApplyFailed,
    RoundTrips,
    Store,
    write_phases,
)
from backtest_compilation.website import Applied, Plan, plan
from tests.support.fixtures_mongo import MongoServer
from tests.support.plan_cases import CASES, Case
from tests.support.store_data import big_catalog, catalog, course
from tests.support.website import NOT_FOUND, expected_view, visit, visit_async, without_ids

DS = "CSCI-1200 Data Structures"
CALC = "MATH-1010 Calculus I"
E1 = {"Exam 1": ["Fall 2022", "Spring 2021"]}
SECRET = "pa55-w0rd-Secret"

BACKENDS = ["mongomock", pytest.param("server", marks=pytest.mark.mongo_server)]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, mongo_db_name: str) -> Iterator[Store]:
    """An empty database, on each backend."""
    if request.param == "mongomock":
        uri = "mongomock://localhost"
    else:
        server: MongoServer = request.getfixturevalue("mongo_server")
        uri = server.uri
    with Store.connect(uri, mongo_db_name) as s:
        yield s


def publish(store: Store, cat: Catalog) -> tuple[Plan, Applied]:
    p = plan(cat, store.read_current())
    return p, store.apply(p)


def visible(store: Store) -> dict[str, list[tuple[str, Any]]]:
    return without_ids(visit(store.database))


def ids_by_name(store: Store) -> dict[str, Any]:
    return {d["name"]: d["_id"] for d in store.database[COURSES].find()}


def assert_in_sync(store: Store, cat: Catalog) -> None:
    """A visitor sees exactly the catalog, and one more run would write nothing."""
    assert visible(store) == expected_view(cat)
    assert plan(cat, store.read_current()).is_empty
    assert store.database[BACKTESTS].count_documents({}) == len(cat.courses)


CATALOG = catalog(
    course(DS, "f1", E1),
    course(
        "CSCI-2300 Intro to Algorithms", "f2", {"Quiz": ["Fall 2020"], "Midterm": ["Fall 2019"]}
    ),
    course(CALC, "f3"),
)


def test_cold_publish_shows_the_catalog_in_few_round_trips(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="backtest_compilation.store"):
        p = plan(CATALOG, store.read_current())
        before = store.api_calls
        applied = store.apply(p)
        spent = store.api_calls - before
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert info[0].startswith("mongo read: 0 codes, 0 courses, 0 backtests in ")
    assert info[1].startswith("mongo apply: 8 inserted, 0 updated, 0 deleted in ")
    assert "mongo plan: + course CSCI-1200 Data Structures" in caplog.text
    assert (applied.inserted, applied.updated, applied.deleted) == (3 + 3 + 2, 0, 0)
    assert (p.inserts, p.updates, p.deletes) == (8, 0, 0)
    assert_in_sync(store, CATALOG)
    # 3 indexes + 3 insert phases; the reads come on top.
    assert spent == 6
    names = {
        d["name"]
        for name in (CODES, COURSES, BACKTESTS)
        for d in store.database[name].list_indexes()
    }
    assert {"course_code_1", "course_ids_1"} <= names
    assert {d["folder_id"] for d in store.database[COURSES].find()} == {"f1", "f2", "f3"}


def test_round_trips_do_not_grow_with_the_number_of_courses(store: Store) -> None:
    big = big_catalog(400, 5)
    before = store.api_calls
    _, applied = publish(store, big)
    assert store.api_calls - before == 3 + 6
    assert applied.inserted == 400 + 400 + len(big.course_codes)
    before = store.api_calls
    p, again = publish(store, big)
    assert p.is_empty
    assert again == Applied()
    assert store.api_calls - before == 3  # three reads, no writes


def test_unchanged_republish_reads_three_times_and_writes_nothing(store: Store) -> None:
    publish(store, CATALOG)
    before = store.round_trips.copy()
    p, applied = publish(store, CATALOG)
    assert p.is_empty
    assert applied == Applied()
    spent = store.round_trips - before
    assert dict(spent) == {"find": 3}


def test_renamed_title_keeps_the_id_and_costs_one_write(store: Store) -> None:
    publish(store, CATALOG)
    old_ids = ids_by_name(store)
    renamed = catalog(
        course("CSCI-1200 Data Structures and Algorithms", "f1", E1), *CATALOG.courses[1:]
    )
    before = store.round_trips.copy()
    p, applied = publish(store, renamed)
    spent = store.round_trips - before
    assert [u.name for u in p.courses_to_update] == ["CSCI-1200 Data Structures and Algorithms"]
    assert (applied.inserted, applied.updated, applied.deleted) == (0, 1, 0)
    assert spent["insert"] + spent["update"] + spent["delete"] == 1
    new_ids = ids_by_name(store)
    assert new_ids["CSCI-1200 Data Structures and Algorithms"] == old_ids[DS]
    assert_in_sync(store, renamed)


def test_removed_courses_go_with_their_backtests_and_codes(store: Store) -> None:
    publish(store, CATALOG)
    calc_id = ids_by_name(store)[CALC]
    smaller = catalog(*CATALOG.courses[:2])
    _, applied = publish(store, smaller)
    assert (applied.inserted, applied.updated, applied.deleted) == (0, 0, 3)
    assert_in_sync(store, smaller)
    assert store.database[BACKTESTS].find_one({"course_ids": {"$in": [calc_id]}}) is None
    assert sorted(store.database[CODES].distinct("course_code")) == ["CSCI"]


def test_changed_tests_update_the_backtest_in_place(store: Store) -> None:
    publish(store, CATALOG)
    backtest_id = store.database[BACKTESTS].find_one({"course_ids": ids_by_name(store)[DS]})["_id"]
    more = catalog(course(DS, "f1", {"Exam 1": ["Fall 2023", *E1["Exam 1"]]}), *CATALOG.courses[1:])
    p, applied = publish(store, more)
    assert applied.updated == 1
    assert [b.id for b in p.backtests_to_update] == [backtest_id]
    assert_in_sync(store, more)


def _seed_many(store: Store, n: int) -> Catalog:
    cat = catalog(*(course(f"CSCI-{1000 + i} Course {i}", f"f{i}") for i in range(n)))
    publish(store, cat)
    return cat


# The mass-delete guard is decided before `apply` (`website.guard_refusal`, tested in
# test_website.py and end to end in test_guard_e2e.py): `apply` writes what it is given.
def test_a_mass_delete_given_to_apply_is_written(store: Store) -> None:
    cat = _seed_many(store, 40)
    survivors = catalog(*cat.courses[:20])
    _, applied = publish(store, survivors)
    assert applied.deleted == 20 + 20  # courses and their backtests; CSCI stays
    assert_in_sync(store, survivors)


def test_an_empty_catalog_given_to_apply_empties_the_website(store: Store) -> None:
    _seed_many(store, 3)
    publish(store, Catalog())
    assert visible(store) == {}
    assert all(store.database[c].count_documents({}) == 0 for c in (CODES, COURSES, BACKTESTS))


def test_hand_edited_drift_is_repaired_and_ids_are_kept(store: Store) -> None:
    publish(store, CATALOG)
    db = store.database
    ids = ids_by_name(store)
    algo = ids["CSCI-2300 Intro to Algorithms"]
    # Someone "fixed" things by hand in the database:
    db[COURSES].update_one({"_id": ids[DS]}, {"$set": {"name": "CSCI-1200 Data Struct"}})
    db[BACKTESTS].delete_one({"course_ids": ids[CALC]})
    db[BACKTESTS].update_one({"course_ids": algo}, {"$set": {"tests": []}})
    db[BACKTESTS].insert_one({"course_ids": [algo], "tests": [{"type": "Exam 9"}]})
    db[BACKTESTS].insert_one({"course_ids": [ObjectId()], "tests": []})
    db[CODES].insert_many([{"course_code": "PHYS"}, {"course_code": "CSCI"}])
    db[CODES].delete_one({"course_code": "MATH"})
    db[COURSES].insert_one({"name": CALC, "course_code": "MATH"})  # a newer duplicate
    p, _ = publish(store, CATALOG)
    assert not p.is_empty
    assert_in_sync(store, CATALOG)
    assert ids_by_name(store) == ids
    assert db[CODES].count_documents({}) == 2


def test_a_database_built_by_the_previous_tool_is_adopted(store: Store) -> None:
    """The previous tool stored `{name, course_code}` courses (no folder id), could
    leave a course without backtest and left orphan backtests behind (it looked up the
    ids of removed courses after deleting them)."""
    db = store.database
    db[CODES].insert_many([{"course_code": c} for c in ("CSCI", "MATH", "PHYS")])
    legacy = (
        db[COURSES]
        .insert_many(
            [
                {"name": DS, "course_code": "CSCI"},
                {"name": "CSCI-2300 Intro to Algorithms", "course_code": "CSCI"},
                {"name": CALC, "course_code": "MATH"},
                {"name": "PHYS-1100 Physics I", "course_code": "PHYS"},
            ]
        )
        .inserted_ids
    )
    db[BACKTESTS].insert_many(
        [
            {"course_ids": [legacy[0]], "tests": [{"type": "Exam 1", "tests": ["Fall 2022"]}]},
            {"course_ids": [legacy[1]], "tests": []},
            # CALC has none (a crash between the two inserts); PHYS's is fine for now.
            {"course_ids": [legacy[3]], "tests": [{"type": "Quiz", "tests": ["Spring 2019"]}]},
            {"course_ids": [ObjectId()], "tests": [{"type": "Exam 2", "tests": ["Fall 2015"]}]},
        ]
    )
    p, _ = publish(store, CATALOG)
    assert {u.name for u in p.courses_to_update} == {u.name for u in CATALOG.courses}
    assert len(p.courses_to_remove) == 1
    assert_in_sync(store, CATALOG)
    ids = ids_by_name(store)
    assert [ids[DS], ids["CSCI-2300 Intro to Algorithms"], ids[CALC]] == list(legacy[:3])
    assert {d.get("folder_id") for d in db[COURSES].find()} == {"f1", "f2", "f3"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_diff_and_repair_case_through_the_store(store: Store, case: Case) -> None:
    """The pure plan's table (tests/support/plan_cases.py), seeded into a real database:
    the store reads the same plan and one publish repairs everything."""
    for name, key in ((CODES, "codes"), (COURSES, "courses"), (BACKTESTS, "backtests")):
        if case.docs.get(key):
            store.database[name].insert_many(copy.deepcopy(case.docs[key]))
    p, _ = publish(store, case.catalog)
    case.expect(p)
    assert_in_sync(store, case.catalog)


def test_a_course_the_website_cannot_link_is_replaced(store: Store) -> None:
    db = store.database
    db[COURSES].insert_one({"_id": "csci-1200", "name": DS, "course_code": "CSCI"})
    db[BACKTESTS].insert_one({"course_ids": ["csci-1200"], "tests": []})
    publish(store, CATALOG)
    assert_in_sync(store, CATALOG)
    assert isinstance(ids_by_name(store)[DS], ObjectId)


def test_odd_names_are_data(store: Store) -> None:
    odd = catalog(
        course('CSCI-1200 C++ (Intro) "quoted" \\ back\\slash .*$ [x] {y} 🎓', "f'1\"", E1),
        course("MATH-1010 " + "Ä" * 490, "f$2.x"),
        course("ECSE-2010 $where: {'$ne': 1}", "f.3", {"Quiz 1": ["Summer 2019"]}),
    )
    publish(store, odd)
    assert_in_sync(store, odd)
    renamed = catalog(course("CSCI-1200 ^(?:a|b)+$ 🙂", "f'1\""), *odd.courses[1:])
    ids = ids_by_name(store)
    publish(store, renamed)
    assert_in_sync(store, renamed)
    assert ids_by_name(store)["CSCI-1200 ^(?:a|b)+$ 🙂"] == ids[odd.courses[0].name]


def test_writes_follow_the_visitor_safe_order() -> None:
    """Inserts bottom-up, then updates, then deletes top-down (checked on the plan's
    phases; the wire order is checked against the real server below)."""
    p = Plan(
        codes_to_add=("A",),
        existing_courses=0,
    )
    assert [name for name, _, _ in write_phases(p)] == [
        "insert backtests",
        "insert courses",
        "insert codes",
        "update courses",
        "update backtests",
        "delete codes",
        "delete courses",
        "delete backtests",
    ]


class _Commands(monitoring.CommandListener):
    """Records (command, collection) in the order they reach the server."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen.append((event.command_name, str(event.command.get(event.command_name))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.mark.mongo_server
def test_wire_order_of_a_mixed_publish(mongo_server: MongoServer, mongo_db_name: str) -> None:
    commands, counter = _Commands(), RoundTrips()
    client: MongoClient[Any] = MongoClient(mongo_server.uri, event_listeners=[commands, counter])
    with Store(client, mongo_db_name, round_trips=counter) as store:
        publish(store, CATALOG)
        commands.seen.clear()
        # Everything at once: a new department and course, a rename, a tests change,
        # a removed course whose department goes too.
        mixed = catalog(
            course("CSCI-1200 Data Structures II", "f1", {"Exam 1": ["Fall 2023"]}),
            course("CSCI-2300 Intro to Algorithms", "f2", {"Quiz": ["Fall 2020"]}),
            course("PHYS-1100 Physics I", "f4"),
        )
        publish(store, mixed)
        assert commands.seen == [
            ("find", CODES),
            ("find", COURSES),
            ("find", BACKTESTS),
            ("createIndexes", CODES),
            ("createIndexes", COURSES),
            ("createIndexes", BACKTESTS),
            ("insert", BACKTESTS),
            ("insert", COURSES),
            ("insert", CODES),
            ("update", COURSES),
            ("update", BACKTESTS),
            ("delete", CODES),
            ("delete", COURSES),
            ("delete", BACKTESTS),
        ]
        assert counter.total() >= len(commands.seen)
        assert_in_sync(store, mixed)


@pytest.mark.mongo_server
def test_website_contract_sync_and_async(mongo_server: MongoServer, mongo_db_name: str) -> None:
    """After a publish, every page a visitor can reach shows the catalog, read with
    both the synchronous and the async pymongo client, by the website's queries."""
    with Store.connect(mongo_server.uri, mongo_db_name) as store:
        publish(store, CATALOG)
        sync_view = visit(store.database)
    async_view = asyncio.run(visit_async(mongo_server.uri, mongo_db_name))
    assert sync_view == async_view
    assert without_ids(sync_view) == expected_view(CATALOG)
    assert all(tests != NOT_FOUND for rows in sync_view.values() for _, _, tests in rows)
    assert [name for _, name, _ in sync_view["CSCI"]] == [DS, "CSCI-2300 Intro to Algorithms"]


def test_website_contract_on_mongomock(mongo_db_name: str) -> None:
    """The `demo` store answers the website's reads the same way."""
    with Store.connect("mongomock://localhost", mongo_db_name) as store:
        publish(store, CATALOG)
        view = visit(store.database)
    assert without_ids(view) == expected_view(CATALOG)


def test_updates_work_in_mongomock_with_this_pymongo(mongo_db_name: str) -> None:
    """mongomock 4.3 cannot take pymongo ≥ 4.11's `UpdateOne` in `bulk_write`; the
    store's update path must still work there (it sends `UpdateMany` on `_id`)."""
    with Store.connect("mongomock://localhost", mongo_db_name) as store:
        publish(store, CATALOG)
        changed = catalog(course("CSCI-1200 Renamed", "f1"), *CATALOG.courses[1:])
        _, applied = publish(store, changed)
        assert applied.updated == 2  # the course's name, its backtest's tests
        assert_in_sync(store, changed)


# --------------------------------------------------------------------------- errors


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_a_service_error_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    uri = f"mongodb://app:{SECRET}@127.0.0.1:{_closed_port()}/?authSource=admin"
    started = time.monotonic()
    with (
        Store.connect(uri, "apo_main", timeout_ms=300) as store,
        pytest.raises(ServiceError) as exc,
    ):
        store.read_current()
    assert time.monotonic() - started < 5
    message = str(exc.value)
    assert exc.value.exit_code == 1
    assert "unreachable" in message
    assert "app:***@127.0.0.1" in message
    assert SECRET not in message
    assert SECRET not in caplog.text


@pytest.mark.mongo_server
def test_rejected_credentials_are_a_config_error_without_the_password(
    mongo_auth_server: MongoServer, caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"mongodb://app:{SECRET}@127.0.0.1:{mongo_auth_server.port}/?authSource=admin"
    settings = Settings(mongo_uri=uri, mongo_db="apo_main")
    with (
        Store.connect(settings.mongo_uri, settings.mongo_db) as store,
        pytest.raises(ConfigError) as exc,
    ):
        store.read_current()
    assert exc.value.exit_code == 2
    assert "rejected the credentials" in str(exc.value)
    assert SECRET not in str(exc.value)
    assert SECRET not in caplog.text


def test_removing_many_courses_costs_one_delete_per_collection(store: Store) -> None:
    big = big_catalog(400, 5)
    publish(store, big)
    before = store.round_trips.copy()
    _, applied = publish(store, Catalog())
    assert applied.deleted == 400 + 400 + len(big.course_codes)
    spent = store.round_trips - before
    assert (spent["delete"], spent["insert"], spent["update"]) == (3, 0, 0)


def test_an_unusable_uri_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as exc:
        Store.connect(f"mongodb://app:{SECRET}@127.0.0.1:notaport/", "apo_main")
    assert SECRET not in str(exc.value)


@pytest.mark.parametrize(
    ("host", "cause"),
    [
        pytest.param("127.0.0.1:{port}", "refused the connection", id="nothing listens"),
        pytest.param(
            "no-such-host.invalid:27017",
            "is a host name that does not resolve",
            id="a host name that does not resolve",
        ),
    ],
)
def test_unreachable_server_is_one_line_naming_host_port_and_cause(host: str, cause: str) -> None:
    """Issue 11 item 16: not pymongo's topology description cut mid-word."""
    address = host.format(port=_closed_port())
    uri = f"mongodb://app:{SECRET}@{address}/?authSource=admin"
    with (
        Store.connect(uri, "apo_main", timeout_ms=300) as store,
        pytest.raises(ServiceError) as exc,
    ):
        store.read_current()
    message = str(exc.value)
    assert "\n" not in message and len(message) < 400, message
    assert f"{address} {cause}" in message
    assert "Topology" not in message and "ServerSelectionTimeoutError" not in message
    assert "configured timeouts" not in message
    assert SECRET not in message


def test_an_apply_stopped_part_way_reports_what_was_written(store: Store) -> None:
    """A write refused in the middle (here: someone inserted a course with the `_id`
    the plan chose, between plan and apply) stops the apply; the error says what was
    written before it, per phase, and everything after is not applied."""
    publish(store, catalog(course(DS, tests=E1)))
    p = plan(catalog(course(DS, tests=E1), course(CALC, tests=E1)), store.read_current())
    store.database[COURSES].insert_one({"_id": p.courses_to_add[0].id, "name": "squatter"})
    with pytest.raises(ApplyFailed) as info:
        store.apply(p)
    applied = info.value.applied
    assert not applied.complete
    assert (applied.inserted, applied.updated, applied.deleted) == (1, 0, 0)
    assert applied.phases == (
        ("insert backtests", 1, 1),
        ("insert courses", 1, 0),
        ("insert codes", 1, 0),
    )
    assert store.database[BACKTESTS].count_documents({}) == 2  # the one it said
    block = mongo_block(p, applied)
    assert block["in_sync"] is False and block["applied"] is False
    assert block["not_applied"] == {"inserted": 2, "updated": 0, "deleted": 0}
