"""The pure parts of the Drive module (snapshot JSON, query building, applying changes)
and the emulator's own strictness (it must refuse what Google refuses)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest_compilation.drive import MAX_PARENTS_PER_QUERY, parent_queries, quote
from backtest_compilation.snapshot import (
    DriveSnapshot,
    apply_changes,
    items_from_json,
    items_to_json,
    reachable,
)
from backtest_compilation.tree import FOLDER_MIME, PDF_MIME, Item
from emulators.drive import DriveEmulator, DriveFile, parse_query

SNAP = DriveSnapshot(
    root_id="0Adrive",
    root_name="Backtests",
    drive_id="0Adrive",
    items=(Item("a", "CSCI", FOLDER_MIME, "0Adrive"), Item("b", "x'\\📚.pdf", PDF_MIME, "a")),
    page_token="42",
    listed_at=datetime(2026, 3, 1, 12, tzinfo=UTC),
)

names = st.text(min_size=1, max_size=60)


@given(names, st.lists(st.tuples(names, names, names, names), max_size=8), st.none() | names)
def test_snapshot_survives_json(
    root_name: str, rows: list[tuple[str, ...]], token: str | None
) -> None:
    """As the state keeps it: the header, and the items a column per field."""
    items = tuple(Item(*r) for r in rows)
    snap = DriveSnapshot("r", root_name, None, items, token, SNAP.listed_at)
    header = DriveSnapshot.from_header(json.loads(json.dumps(snap.header())))
    assert (
        replace(header, items=items_from_json(json.loads(json.dumps(items_to_json(items))))) == snap
    )


@pytest.mark.parametrize(
    "data",
    [
        pytest.param([], id="not an object"),
        pytest.param({"root_name": "Backtests"}, id="fields missing"),
        pytest.param({**SNAP.header(), "listed_at": "yesterday"}, id="time not ISO"),
    ],
)
def test_malformed_snapshot_is_a_value_error(data: Any) -> None:
    with pytest.raises(ValueError, match="snapshot"):
        DriveSnapshot.from_header(data)


# ---------------------------------------------------------------- queries


def _file(parent: str) -> DriveFile:
    return DriveFile("x", "x.pdf", PDF_MIME, parent, None)


@settings(max_examples=200)
@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=120, unique=True))
def test_parent_queries_select_exactly_the_given_parents(ids: list[str]) -> None:
    """Any id (quotes, backslashes, `or`, emoji) is a literal: each query matches its
    own parents and nothing else, and no query exceeds Google's limits."""
    queries = list(parent_queries(ids))
    covered: list[str] = []
    for q in queries:
        pred, bound = parse_query(q)
        assert bound is not None and len(bound) <= MAX_PARENTS_PER_QUERY
        covered.extend(bound)
        assert all(pred(_file(p)) for p in bound)
        assert not pred(_file("\x00never an id"))
    assert sorted(covered) == sorted(ids)


def test_quote_escapes_backslash_before_quote() -> None:
    assert quote("a'b\\c") == "'a\\'b\\\\c'"


# ---------------------------------------------------------------- changes


def test_apply_changes_table() -> None:
    items = {i.id: i for i in SNAP.items}

    def change(fid: str, **file: Any) -> dict[str, Any]:
        return {"changeType": "file", "fileId": fid, "removed": False, "file": {"id": fid, **file}}

    out = apply_changes(
        items,
        [
            change("n", name="new.pdf", mimeType=PDF_MIME, parents=["a"]),
            change("b", name="b.pdf", mimeType=PDF_MIME, parents=["a"], trashed=True),
            {"changeType": "drive", "driveId": "0Aother"},
            {"changeType": "file", "fileId": "gone", "removed": True},
        ],
    )
    assert set(out) == {"a", "n"}
    assert reachable("0Adrive", out) == out
    assert reachable("elsewhere", out) == {}


# ---------------------------------------------------------------- the emulator is strict


@pytest.fixture
def service(drive_emulator: DriveEmulator) -> Any:
    return build(
        "drive",
        "v3",
        credentials=AnonymousCredentials(),
        static_discovery=True,
        client_options={"api_endpoint": drive_emulator.url + "/drive/v3/"},
    )


def _status(request: Any) -> tuple[int, str]:
    with pytest.raises(HttpError) as info:
        request.execute()
    body = json.loads(info.value.content)
    return info.value.status_code, body["error"]["errors"][0]["reason"]


def test_emulator_refuses_what_google_refuses(drive_emulator: DriveEmulator, service: Any) -> None:
    drive = drive_emulator.add_drive("D")
    f = drive_emulator.add_file(drive, "a.pdf")
    files = service.files()
    assert _status(files.list(pageSize=1001)) == (400, "invalid")
    assert _status(files.list(q="'a' in parents or")) == (400, "invalid")
    assert _status(files.list(fields="files(nope)")) == (400, "invalid")
    assert _status(files.list(corpora="drive", driveId=drive, supportsAllDrives=True)) == (
        400,
        "invalid",
    )
    # Shared-drive items are invisible without supportsAllDrives.
    assert _status(files.get(fileId=f)) == (404, "notFound")
    assert files.get(fileId=f, supportsAllDrives=True).execute()["name"] == "a.pdf"
    too_complex = " or ".join(f"'{n}' in parents" for n in range(101))
    assert _status(files.list(q=too_complex)) == (400, "invalid")
    assert _status(service.changes().list(pageToken="nonsense")) == (400, "invalid")


def test_emulator_default_fields_leave_out_parents(
    drive_emulator: DriveEmulator, service: Any
) -> None:
    drive_emulator.add_file("root", "a.pdf")
    page = service.files().list().execute()
    assert set(page["files"][0]) == {"kind", "id", "name", "mimeType"}
    partial = service.files().list(fields="files(id,name)").execute()
    assert set(partial) == {"files"} and set(partial["files"][0]) == {"id", "name"}


def test_emulator_batches_hold_at_most_100(drive_emulator: DriveEmulator, service: Any) -> None:
    batch = BatchHttpRequest(batch_uri=drive_emulator.url + "/batch/drive/v3")
    for n in range(101):
        batch.add(service.files().get(fileId=f"id{n}"))
    with pytest.raises(HttpError) as info:
        batch.execute()
    assert info.value.status_code == 400
