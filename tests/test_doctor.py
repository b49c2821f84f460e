"""`doctor` against the emulators and the real wire server: a working set-up passes
(exit 0), each broken one is named with its fix (exit 2), nothing is ever written, and
a server that never answers cannot hold it for a minute."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from backtest_compilation import doctor
from backtest_compilation.drive import SCOPE_READ, SCOPE_RENAME
from backtest_compilation.sheet import SCOPE as SHEETS_SCOPE
from backtest_compilation.store import BACKTESTS, CODES, COURSES
from emulators.drive import DriveEmulator
from emulators.sheets import SheetsEmulator
from tests.support.fixtures_mongo import MongoServer

ROOT = Path(__file__).resolve().parent.parent
KEY = "1DoctorSheetKey_0123456789abcdefghijkl"
DELEGATE = "chair@chapter.example.org"
SHEET_MIME = "application/vnd.google-apps.spreadsheet"
COPIES = "Physical Copies of Backtests"


class SetUp:
    """A complete set-up on the emulators: a shared drive with one course, the tracking
    spreadsheet (visible in Drive too), an empty cache directory."""

    def __init__(self, drive: DriveEmulator, sheets: SheetsEmulator, tmp: Path) -> None:
        self.drive, self.sheets = drive, sheets
        self.root = drive.add_drive("Backtests")
        course = drive.add_folder(drive.add_folder(self.root, "CSCI"), "CSCI-1200 Data Structures")
        drive.add_file(course, "csci-1200 e1 f22.pdf")
        drive.add_file("root", "Backtest tracking", SHEET_MIME, KEY)
        sheets.add_spreadsheet(KEY, tabs={COPIES: [["Course", "", "", "", "", "Digital"]]})
        self.cache = tmp / "cache"
        self.cache.mkdir()
        self.env: dict[str, str] = {
            "FOLDER_ID": self.root,
            "DELEGATE_EMAIL": DELEGATE,
            "DRIVE_API_ENDPOINT": drive.url,
            "SHEETS_API_ENDPOINT": sheets.url,
            "SHEET_URL": f"https://docs.google.com/spreadsheets/d/{KEY}/edit",
            "MONGO_URI": "mongomock://doctor",
            "CACHE_DIR": str(self.cache),
        }

    def run(self, **overrides: str) -> tuple[int, str]:
        out = io.StringIO()
        code = doctor.main({**self.env, **overrides}, out=out)
        return code, out.getvalue()


@pytest.fixture
def setup(drive_emulator: DriveEmulator, sheets_emulator: SheetsEmulator, tmp_path: Path) -> SetUp:
    return SetUp(drive_emulator, sheets_emulator, tmp_path)


def failed(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("✗")]


def assert_nothing_written(s: SetUp) -> None:
    assert s.sheets.writes() == 0
    assert s.drive.stats.renames == 0
    assert s.drive.stats.by_method["files.update"] == 0
    assert sorted(p.name for p in s.cache.iterdir()) == []


def test_a_working_set_up_passes_and_writes_nothing(setup: SetUp) -> None:
    code, text = setup.run()
    assert code == 0, text
    assert failed(text) == []
    assert "✓ rename rights: chair@chapter.example.org may rename files in the shared drive" in text
    assert "✓ people's tab: 'Physical Copies of Backtests' present" in text
    assert "'Errors in Drive' missing; the first sync creates it" in text
    assert text.count("EST") + text.count("EDT") == 3  # the next three run times, in TZ
    assert "a sync would work" in text
    assert_nothing_written(setup)


@pytest.mark.mongo_server
def test_a_working_set_up_with_the_wire_server(
    setup: SetUp, mongo_server: MongoServer, mongo_db_name: str
) -> None:
    code, text = setup.run(MONGO_URI=mongo_server.uri, MONGO_DB=mongo_db_name)
    assert code == 0, text
    assert "✓ MongoDB: mongodb://127.0.0.1:" in text
    assert "✓ MongoDB rights: no authentication required" in text
    client: MongoClient[Any] = MongoClient(mongo_server.uri)
    try:
        assert mongo_db_name not in client.list_database_names()  # nothing created
    finally:
        client.close()


def test_a_missing_folder(setup: SetUp) -> None:
    code, text = setup.run(FOLDER_ID="0AmissingDriveId_0123456789abcd")
    assert code == 2
    assert failed(text) == [
        "✗ FOLDER_ID: '0AmissingDriveId_0123456789abcd' was not found by "
        "chair@chapter.example.org (HTTP 404 notFound: File not found: "
        "0AmissingDriveId_0123456789abcd.)"
    ]
    assert "fix: share the drive or folder with chair@chapter.example.org" in text
    assert_nothing_written(setup)


def test_a_file_is_not_a_folder(setup: SetUp) -> None:
    code, text = setup.run(FOLDER_ID=KEY)
    assert code == 2
    assert "is a file (application/vnd.google-apps.spreadsheet), not a shared drive" in text


def test_a_delegate_who_may_only_read_the_drive(setup: SetUp) -> None:
    setup.drive.set_role("reader", item=setup.root)
    code, text = setup.run()
    assert code == 2
    assert failed(text) == [
        "✗ rename rights: chair@chapter.example.org may only read the shared drive "
        "(Drive capabilities.canEdit is false)"
    ]
    assert "or set RENAME_FILES=false" in text
    # ... which is enough when renames are off.
    code, text = setup.run(RENAME_FILES="false")
    assert code == 0, text
    assert "✓ rename rights: renames are off" in text


def test_a_reader_in_an_ordinary_folder(setup: SetUp) -> None:
    folder = setup.drive.add_folder("root", "Backtests (folder)")
    setup.drive.set_role("reader", item=folder)
    code, text = setup.run(FOLDER_ID=folder)
    assert code == 2
    assert "may only read the folder" in text


def test_a_sheet_it_cannot_edit(setup: SetUp) -> None:
    setup.drive.set_role("reader", item=KEY)
    setup.sheets.set_role(KEY, "reader")
    code, text = setup.run()
    assert code == 2
    assert failed(text)[0] == (
        "✗ spreadsheet: 'Backtest tracking' is reachable but chair@chapter.example.org may "
        "not edit it (Drive capabilities.canEdit is false)"
    )
    # The tool's tabs are missing and cannot be created by a reader.
    assert "✗ tool's tab: 'Errors in Drive' missing and chair@chapter.example.org cannot" in text
    assert_nothing_written(setup)


def test_a_sheet_without_the_peoples_tab(setup: SetUp) -> None:
    code, text = setup.run(SHEET_COPIES_TAB="Copies")
    assert code == 2
    assert failed(text) == [
        f"✗ people's tab: 'Copies' is missing; the tabs are '{COPIES}'",
    ]
    assert "set SHEET_COPIES_TAB to its name" in text


def test_a_sheet_that_does_not_exist(setup: SetUp) -> None:
    code, text = setup.run(
        SHEET_URL="https://docs.google.com/spreadsheets/d/1NoSuchSheet_abcdefghij/e"
    )
    assert code == 2
    assert "✗ spreadsheet: 1NoSuchSheet_abcdefghij is not visible to chair@" in text


def test_mongodb_down(setup: SetUp) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    code, text = setup.run(MONGO_URI=f"mongodb://127.0.0.1:{port}/?directConnection=true")
    assert code == 2
    assert time.monotonic() - started < 20
    assert failed(text) == [
        f"✗ MongoDB: mongodb://127.0.0.1:{port}/?directConnection=true did not answer within "
        "5 s (ServerSelectionTimeoutError)"
    ]


@pytest.mark.mongo_server
def test_a_wrong_mongodb_password(setup: SetUp, mongo_auth_server: MongoServer) -> None:
    uri = mongo_auth_server.uri.replace("mongodb://", "mongodb://chair:wrong-Pa55word@")
    code, text = setup.run(MONGO_URI=uri)
    assert code == 2
    assert "✗ MongoDB: mongodb://chair:***@127.0.0.1:" in text
    assert "refused the credentials" in text
    assert "wrong-Pa55word" not in text


def _status(roles: list[dict[str, str]], privileges: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "authInfo": {
            "authenticatedUsers": [{"user": "web", "db": "admin"}],
            "authenticatedUserRoles": roles,
            "authenticatedUserPrivileges": privileges,
        }
    }


def _on(collection: str, *actions: str, db: str = "apo") -> dict[str, Any]:
    return {"resource": {"db": db, "collection": collection}, "actions": list(actions)}


READ_ONLY = [{"role": "read", "db": "apo"}]
WRITE_RIGHTS_CASES = [
    pytest.param(
        _status(READ_ONLY, []),
        (False, "roles read@apo do not allow writing to apo"),
        id="a user who may only read is refused, naming the roles",
    ),
    pytest.param(
        _status([], []),
        (False, "roles none do not allow writing to apo"),
        id="a user without roles is refused",
    ),
    pytest.param(
        _status([{"role": "readWrite", "db": "apo"}], []),
        (True, "role readWrite on apo"),
        id="readWrite on the database allows it",
    ),
    pytest.param(
        _status([{"role": "readWrite", "db": "other"}], []),
        (False, "roles readWrite@other do not allow writing to apo"),
        id="readWrite on another database does not",
    ),
    pytest.param(
        _status([{"role": "readWriteAnyDatabase", "db": "admin"}], []),
        (True, "role readWriteAnyDatabase on admin"),
        id="a role that writes any database allows it",
    ),
    # With privileges listed (as mongod does), they decide.
    pytest.param(
        _status(READ_ONLY, [_on("", "find", "insert")]),
        (False, "no remove, update on apo.backtest_course_code_collection"),
        id="privileges decide: insert alone is not enough",
    ),
    pytest.param(
        _status(READ_ONLY, [_on("", "find", "insert", "update", "remove")]),
        (True, "insert, update and remove on the three collections"),
        id="privileges decide: the three actions on the whole database",
    ),
    pytest.param(
        _status(
            READ_ONLY,
            [_on(name, "insert", "update", "remove") for name in (CODES, COURSES, BACKTESTS)],
        ),
        (True, "insert, update and remove on the three collections"),
        id="privileges decide: the three actions on each collection",
    ),
    pytest.param(
        _status(
            READ_ONLY,
            [_on(name, "insert", "update", "remove") for name in (CODES, COURSES)],
        ),
        (False, "no insert, remove, update on apo.backtest_collection"),
        id="privileges decide: a collection without them is named",
    ),
    pytest.param(
        _status(
            [], [{"resource": {"anyResource": True}, "actions": ["insert", "update", "remove"]}]
        ),
        (True, "insert, update and remove on the three collections"),
        id="the three actions on any resource allow it",
    ),
    pytest.param(
        _status(
            [{"role": "root", "db": "admin"}],
            [{"resource": {"anyResource": True}, "actions": ["anyAction"]}],
        ),
        (True, "insert, update and remove on the three collections"),
        id="anyAction on anyResource (the root role's privilege) allows it",
    ),
    pytest.param(
        _status(READ_ONLY, [_on("", "anyAction", db="other")]),
        (False, "no insert, remove, update on apo.backtest_course_code_collection"),
        id="anyAction on another database does not",
    ),
    pytest.param(
        _status(
            [{"role": "readWrite", "db": "apo"}],
            [_on("", "insert", "update", "remove", db="other")],
        ),
        (False, "no insert, remove, update on apo.backtest_course_code_collection"),
        id="privileges on another database do not, whatever the roles say",
    ),
]


@pytest.mark.parametrize(("status", "expected"), WRITE_RIGHTS_CASES)
def test_mongodb_write_rights(status: dict[str, Any], expected: tuple[bool, str]) -> None:
    assert doctor.can_write_collections(status, "apo") == expected


@pytest.mark.mongo_server
def test_a_mongodb_user_with_read_write_passes(
    setup: SetUp, mongo_server: MongoServer, mongo_db_name: str
) -> None:
    # A real authenticated user with readWrite, on the wire server.
    admin: MongoClient[Any] = MongoClient(mongo_server.uri)
    user = f"u{mongo_db_name}"
    try:
        admin.admin.command(
            "createUser", user, pwd="s3cret-pw", roles=[{"role": "readWrite", "db": mongo_db_name}]
        )
    finally:
        admin.close()
    uri = mongo_server.uri.replace("mongodb://", f"mongodb://{user}:s3cret-pw@")
    code, text = setup.run(MONGO_URI=uri, MONGO_DB=mongo_db_name)
    assert code == 0, text
    assert f"✓ MongoDB rights: user '{user}': role readWrite on {mongo_db_name}" in text


def test_an_unwritable_cache(setup: SetUp, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, text = setup.run(CACHE_DIR=str(blocker / "cache"))
    assert code == 2
    assert failed(text) == [
        f"✗ CACHE_DIR: {str(blocker)!r} is not a directory, so "
        f"{str(blocker / 'cache')!r} cannot be created"
    ]


def test_broken_settings_stop_before_any_call(setup: SetUp) -> None:
    code, text = setup.run(FOLDER_ID="", SCHEDULE="every day")
    assert code == 2
    assert "✗ settings: FOLDER_ID is not set" in text
    assert "✗ settings: SCHEDULE is not a valid cron expression: 'every day'" in text
    assert sum(setup.drive.stats.by_method.values()) == 0
    assert setup.sheets.calls() == 0


def test_a_malformed_sentry_dsn_is_named_but_not_printed(setup: SetUp) -> None:
    code, text = setup.run(SENTRY_DSN="https://public-key-123@/")
    assert code == 2
    assert "✗ SENTRY_DSN: not a valid DSN" in text
    assert "public-key-123" not in text


# ------------------------------------------------------------------ key and token


@pytest.fixture
def key_file(service_account_key: Callable[..., Path], drive_emulator: DriveEmulator) -> Path:
    return service_account_key(
        drive_emulator.url + "/token", client_email="sync@test.iam.gserviceaccount.com"
    )


def test_the_token_is_asked_for_exactly_the_sync_scopes(
    drive_emulator: DriveEmulator, key_file: Path
) -> None:
    scopes = (SCOPE_READ, SCOPE_RENAME)
    drive_emulator.grant(DELEGATE, SCOPE_READ)  # the rename scope is missing
    check = doctor.check_token("Drive token", key_file, scopes, DELEGATE)
    assert check.fix
    assert check.detail == (
        f"Google refused a token for drive.readonly, drive.metadata as {DELEGATE!r}: "
        "unauthorized_client"
    )
    assert SCOPE_RENAME in check.fix and "Domain-wide delegation" in check.fix
    drive_emulator.grant(DELEGATE, SCOPE_READ, SCOPE_RENAME)
    assert doctor.check_token("Drive token", key_file, scopes, DELEGATE).fix == ""


def test_key_file_checks(setup: SetUp, tmp_path: Path, key_file: Path) -> None:
    from backtest_compilation import settings

    def check(path: Path) -> doctor.Check:
        env = {**setup.env, "GOOGLE_CREDENTIALS_FILE": str(path), "DRIVE_API_ENDPOINT": ""}
        return doctor.check_key_file(settings.load(env))

    assert check(key_file).fix == ""
    assert check(key_file).detail.startswith("service account sync@test.iam")
    not_json = tmp_path / "not.json"
    not_json.write_text("-----BEGIN nothing")
    assert "is not readable JSON" in check(not_json).detail
    user_key = tmp_path / "user.json"
    user_key.write_text(json.dumps({"type": "authorized_user", "client_id": "x"}))
    assert "is not a service-account key" in check(user_key).detail
    for c in (check(not_json), check(user_key)):
        assert c.fix and 'README "Google set-up (once)"' in c.fix
    assert SHEETS_SCOPE.endswith("/spreadsheets")


# ------------------------------------------------------------------ never answering


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def test_servers_that_never_answer_cannot_hold_it_for_a_minute(
    setup: SetUp, silent_server: str
) -> None:
    started = time.monotonic()
    code, text = setup.run(
        DRIVE_API_ENDPOINT=f"http://{silent_server}",
        SHEETS_API_ENDPOINT=f"http://{silent_server}",
        MONGO_URI=f"mongodb://{silent_server}/?directConnection=true",
    )
    elapsed = time.monotonic() - started
    assert code == 2
    assert elapsed < 60, text
    assert "✗ FOLDER_ID: Drive did not answer" in text
    assert "– spreadsheet: not checked: Drive did not answer" in text  # skipped, not failed
    assert "✗ MongoDB:" in text and "did not answer within 5 s" in text


def test_doctor_from_the_command_line(setup: SetUp, tmp_path: Path) -> None:
    import os

    env = {"PATH": os.environ["PATH"], **setup.env}
    out = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "doctor"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[0].startswith("backtest-compilation doctor")
    setup.drive.set_role("reader")
    out = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "doctor"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2


def test_every_fix_points_to_a_readme_section(setup: SetUp, silent_server: str) -> None:
    readme = (ROOT / "README.md").read_text()
    sections = set(re_findall_headings(readme))
    texts = [
        setup.run(FOLDER_ID="0AmissingDriveId_0123456789abcd")[1],
        setup.run(FOLDER_ID="", SCHEDULE="every day")[1],
        setup.run(DRIVE_API_ENDPOINT=f"http://{silent_server}", CACHE_DIR="/dev/null/cache")[1],
    ]
    fixes = [line for text in texts for line in text.splitlines() if line.startswith("    fix:")]
    assert len(fixes) >= 5
    for fix in fixes:
        assert 'see README "' in fix, fix
        named = fix.split('see README "', 1)[1].split('"', 1)[0]
        assert named in sections, fix


def re_findall_headings(text: str) -> list[str]:
    import re

    return re.findall(r"^#{2,3} (.+)$", text, re.MULTILINE)


def test_without_a_delegate_the_service_account_is_named(setup: SetUp, tmp_path: Path) -> None:
    # With no DELEGATE_EMAIL, the person fixing a share needs the key's address, not
    # "the account in use" (issue 11, item 15). Only client_email is read from the key.
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"client_email": "sync@chapter-project.iam.example"}))
    code, text = setup.run(
        DELEGATE_EMAIL="",
        GOOGLE_CREDENTIALS_FILE=str(key),
        FOLDER_ID="0AmissingDriveId_0123456789abcd",
    )
    assert code == 2
    assert failed(text)[0].startswith(
        "✗ FOLDER_ID: '0AmissingDriveId_0123456789abcd' was not found by the service account "
        "sync@chapter-project.iam.example (DELEGATE_EMAIL is not set)"
    )
    assert "the account in use" not in text


def test_a_skipped_check_is_not_counted_as_failed(setup: SetUp, silent_server: str) -> None:
    """Issue 20: only Drive is down; the spreadsheet check is skipped for it, and the
    summary counts one failure and one skipped check, not two failures."""
    code, text = setup.run(DRIVE_API_ENDPOINT=f"http://{silent_server}")
    assert code == 2
    assert [line.split(" (")[0] for line in failed(text)] == ["✗ FOLDER_ID: Drive did not answer"]
    assert "– spreadsheet: not checked: Drive did not answer" in text
    summary = text.splitlines()[-1]
    assert summary.startswith("1 of ") and " checks failed, 1 skipped (" in summary


def test_a_root_one_level_too_deep_names_the_parent(setup: SetUp) -> None:
    """Issue 17 item 2: FOLDER_ID set to a department (its children are course folders)."""
    dept = next(f.id for f in setup.drive.files.values() if f.name == "CSCI")
    code, text = setup.run(FOLDER_ID=dept)
    assert code == 2
    assert failed(text) == [
        "✗ FOLDER_ID: folder 'CSCI' holds course folders ('CSCI-1200 Data Structures'), "
        "not departments: it is one level too deep"
    ]
    assert f"fix: set FOLDER_ID to 'Backtests' ({setup.root}), the one that holds" in text
    # In an ordinary folder, the parent folder is named the same way.
    top = setup.drive.add_folder("root", "Backtests (folder)")
    math = setup.drive.add_folder(setup.drive.add_folder(top, "MATH"), "MATH-1010 Calculus I")
    setup.drive.add_folder(setup.drive.files[math].parent, "MATH-1020 Calculus II")
    code, text = setup.run(FOLDER_ID=setup.drive.files[math].parent)
    assert code == 2
    assert "'MATH-1010 Calculus I', 'MATH-1020 Calculus II'" in text
    assert f"fix: set FOLDER_ID to 'Backtests (folder)' ({top})" in text
    # The right root passes.
    code, text = setup.run(FOLDER_ID=top)
    assert "✓ FOLDER_ID: folder 'Backtests (folder)'" in text
