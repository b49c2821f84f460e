"""The Sheets v4 emulator answers real gspread (and plain HTTP) the way Google does."""

from __future__ import annotations

import time
from typing import Any

import gspread
import pytest
import requests

from backtest_compilation.sheet import session as sheets_session
from emulators.google import QuotaClock, parse_fields
from emulators.sheets import SheetsEmulator

KEY = "EmuKey123"


def client(emu: SheetsEmulator) -> gspread.Client:
    """gspread's own client over the product's anonymous session, which sends Google's
    URLs to the emulator (and straight to 127.0.0.1, whatever proxy CI sets)."""
    session = sheets_session(emu.url, None)
    assert session.trust_env is False
    return gspread.Client(auth=None, session=session)  # type: ignore[arg-type]


def http(method: str, url: str, **kwargs: Any) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False  # straight to 127.0.0.1, whatever proxy CI sets
        return session.request(method, url, timeout=10, **kwargs)


def api(emu: SheetsEmulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    return http(method, f"{emu.url}/v4/spreadsheets/{KEY}{path}", **kwargs)


@pytest.fixture
def emu(sheets_emulator: SheetsEmulator) -> SheetsEmulator:
    sheets_emulator.add_spreadsheet(
        KEY,
        tabs={
            "Sheet1": [["a", 1, True], ["b", 2.5]],
            "It's: odd!": [["x"]],
        },
    )
    return sheets_emulator


def test_gspread_reads_metadata_and_values(emu: SheetsEmulator) -> None:
    book = client(emu).open_by_url(f"https://docs.google.com/spreadsheets/d/{KEY}/edit")
    assert [ws.title for ws in book.worksheets()] == ["Sheet1", "It's: odd!"]
    ws = book.worksheet("Sheet1")
    assert ws.get_all_values() == [["a", "1", "TRUE"], ["b", "2.5", ""]]
    assert ws.col_values(2) == ["1", "2.5"]
    assert book.worksheet("It's: odd!").acell("A1").value == "x"


def test_ranges_are_echoed_quoted_and_clipped_to_the_grid(emu: SheetsEmulator) -> None:
    reply = api(
        emu,
        "GET",
        "/values:batchGet",
        params={
            "ranges": ["'It''s: odd!'", "Sheet1!B:B", "Sheet1!A2:C"],
            "valueRenderOption": "UNFORMATTED_VALUE",
        },
    ).json()
    ranges = [(v["range"], v.get("values")) for v in reply["valueRanges"]]
    assert ranges == [
        ("'It''s: odd!'!A1:Z1000", [["x"]]),
        ("Sheet1!B1:B1000", [[1], [2.5]]),
        ("Sheet1!A2:C1000", [["b", 2.5]]),
    ]


@pytest.mark.parametrize(
    "bad", ["Nope!A1", "'unclosed!A1", "Sheet1!A0", "Sheet1!:", "Sheet1!1A"], ids=str
)
def test_an_unparsable_range_is_google_s_400(emu: SheetsEmulator, bad: str) -> None:
    reply = api(emu, "GET", f"/values/{requests.utils.quote(bad, safe='')}")
    assert reply.status_code == 400
    assert reply.json() == {
        "error": {
            "code": 400,
            "message": f"Unable to parse range: {bad}",
            "status": "INVALID_ARGUMENT",
        }
    }


def test_raw_keeps_text_and_user_entered_parses_it(emu: SheetsEmulator) -> None:
    ws = client(emu).open_by_key(KEY).sheet1
    ws.update([["=1+1", "5", "'7"]], "A3", raw=True)
    ws.update([["=1+1", "5", "'7", "true"]], "A4", raw=False)
    assert [emu.entered(KEY, "Sheet1", c) for c in ("A3", "B3", "C3")] == [
        {"stringValue": "=1+1"},
        {"stringValue": "5"},
        {"stringValue": "'7"},
    ]
    assert [emu.entered(KEY, "Sheet1", c) for c in ("A4", "B4", "C4", "D4")] == [
        {"formulaValue": "=1+1"},
        {"numberValue": 5},
        {"stringValue": "7"},
        {"boolValue": True},
    ]


def test_values_writes_grow_the_grid_but_respect_a_bounded_range(emu: SheetsEmulator) -> None:
    body = {"values": [["x"], ["y"], ["z"]]}
    ok = api(emu, "PUT", "/values/Sheet1!AA999", params={"valueInputOption": "RAW"}, json=body)
    assert ok.json()["updatedRange"] == "Sheet1!AA999:AA1001"
    assert emu.grid_size(KEY, "Sheet1") == (1001, 27)
    too_small = api(
        emu, "PUT", "/values/Sheet1!A1:A2", params={"valueInputOption": "RAW"}, json=body
    )
    assert too_small.status_code == 400
    assert "tried writing to row [3]" in too_small.json()["error"]["message"]
    missing = api(emu, "PUT", "/values/Sheet1!A1", json=body)
    assert missing.json()["error"]["message"] == "'valueInputOption' is required but not specified"


def test_append_writes_after_the_last_row(emu: SheetsEmulator) -> None:
    ws = client(emu).open_by_key(KEY).sheet1
    reply = ws.append_rows([["c", 3], ["d", 4]], value_input_option="RAW")
    assert reply["updates"]["updatedRange"] == "Sheet1!A3:B4"
    assert emu.values(KEY, "Sheet1")[2:] == [["c", 3], ["d", 4]]


def test_format_masks_change_only_the_named_fields(emu: SheetsEmulator) -> None:
    ws = client(emu).open_by_key(KEY).sheet1
    ws.format("A1:B1", {"textFormat": {"bold": True}, "backgroundColor": {"red": 1}})
    ws.format(
        "A1", {"backgroundColor": {"green": 1}}
    )  # gspread: fields=userEnteredFormat(backgroundColor)
    assert emu.is_bold(KEY, "Sheet1", "A1") and emu.is_bold(KEY, "Sheet1", "B1")
    assert emu.background(KEY, "Sheet1", "A1") == (0, 1, 0)
    assert emu.background(KEY, "Sheet1", "B1") == (1, 0, 0)
    assert emu.value(KEY, "Sheet1", "A1") == "a"


def test_batch_update_is_atomic_and_rejects_unknown_requests(emu: SheetsEmulator) -> None:
    before = emu.snapshot(KEY)
    body = {
        "requests": [
            {"addSheet": {"properties": {"title": "New"}}},
            {
                "repeatCell": {
                    "range": {"sheetId": 0, "startRowIndex": 999, "endRowIndex": 1001},
                    "cell": {"userEnteredFormat": {"backgroundColor": {"red": 1}}},
                    "fields": "userEnteredFormat.backgroundColor",
                }
            },
        ]
    }
    reply = api(emu, "POST", ":batchUpdate", json=body)
    assert reply.status_code == 400
    assert "exceeds grid limits" in reply.json()["error"]["message"]
    assert emu.snapshot(KEY) == before  # the addSheet before it was not applied either
    unknown = api(emu, "POST", ":batchUpdate", json={"requests": [{"frobnicate": {}}]})
    assert unknown.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert 'Unknown name "frobnicate"' in unknown.json()["error"]["message"]
    empty = api(emu, "POST", ":batchUpdate", json={"requests": []})
    assert empty.status_code == 400


def test_add_sheet_names_are_unique_case_insensitively(emu: SheetsEmulator) -> None:
    book = client(emu).open_by_key(KEY)
    with pytest.raises(gspread.exceptions.APIError, match="already exists"):
        book.add_worksheet("SHEET1", rows=5, cols=5)
    ws = book.add_worksheet("Fresh", rows=5, cols=3)
    assert emu.grid_size(KEY, "Fresh") == (5, 3)
    ws.update([["1", "2"]], "A1")
    ws.clear()
    assert emu.values(KEY, "Fresh") == []


def test_update_cells_with_a_range_clears_what_it_gives_no_data(emu: SheetsEmulator) -> None:
    emu.set_format(KEY, "Sheet1", "C5", {"textFormat": {"bold": True}})
    body = {
        "requests": [
            {
                "updateCells": {
                    "range": {"sheetId": 0},
                    "rows": [{"values": [{"userEnteredValue": {"stringValue": "only"}}]}],
                    "fields": "userEnteredValue,userEnteredFormat",
                }
            }
        ]
    }
    assert api(emu, "POST", ":batchUpdate", json=body).status_code == 200
    assert emu.values(KEY, "Sheet1") == [["only"]]
    assert emu.cell_format(KEY, "Sheet1", "C5") == {}


def test_clear_keeps_formats_like_google(emu: SheetsEmulator) -> None:
    emu.set_format(KEY, "Sheet1", "A1", {"backgroundColor": {"red": 1}})
    reply = api(emu, "POST", "/values:batchClear", json={"ranges": ["Sheet1!A1:B1"]})
    assert reply.json()["clearedRanges"] == ["Sheet1!A1:B1"]
    assert emu.values(KEY, "Sheet1") == [[None, None, True], ["b", 2.5]]
    assert emu.background(KEY, "Sheet1", "A1") == (1, 0, 0)


def test_fields_mask_trims_the_answer(emu: SheetsEmulator) -> None:
    reply = api(emu, "GET", "", params={"fields": "sheets.properties(sheetId,title)"}).json()
    assert reply == {
        "sheets": [
            {"properties": {"sheetId": 0, "title": "Sheet1"}},
            {"properties": {"sheetId": 1, "title": "It's: odd!"}},
        ]
    }
    assert parse_fields("a,b(c,d/e),f.g") == {
        "a": {},
        "b": {"c": {}, "d": {"e": {}}},
        "f": {"g": {}},
    }


def test_grid_data_carries_values_and_formats(emu: SheetsEmulator) -> None:
    emu.set_format(KEY, "Sheet1", "B2", {"backgroundColor": {"green": 1}})
    reply = api(emu, "GET", "", params={"ranges": "Sheet1!A2:B2", "includeGridData": "true"}).json()
    (data,) = reply["sheets"][0]["data"]
    first, second = data["rowData"][0]["values"]
    assert first["formattedValue"] == "b"
    assert second["effectiveValue"] == {"numberValue": 2.5}
    assert second["userEnteredFormat"] == {"backgroundColor": {"green": 1}}
    assert data["startRow"] == 1


def test_unknown_and_unshared_spreadsheets(emu: SheetsEmulator) -> None:
    missing = http("GET", f"{emu.url}/v4/spreadsheets/Nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": 404,
        "message": "Requested entity was not found.",
        "status": "NOT_FOUND",
    }
    emu.share(KEY, False)
    denied = api(emu, "GET", "")
    assert denied.status_code == 403
    assert denied.json()["error"]["status"] == "PERMISSION_DENIED"
    assert http("GET", f"{emu.url}/v4/other").status_code == 404


def test_per_minute_quota_answers_429_until_the_minute_passes(
    sheets_emulator: SheetsEmulator,
) -> None:
    now = [1000.0]
    emu = sheets_emulator
    emu.clock = lambda: now[0]
    emu.quota_per_minute = 3
    emu.add_spreadsheet(KEY)
    statuses = [api(emu, "GET", "").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = api(emu, "GET", "").json()["error"]
    assert throttled["code"] == 429 and throttled["status"] == "RESOURCE_EXHAUSTED"
    assert "Quota exceeded" in throttled["message"]
    now[0] += 60
    assert api(emu, "GET", "").status_code == 200
    assert emu.throttled == 2
    assert emu.max_per_minute() == 5  # every request counts against the minute seen


def test_injected_failures_and_latency(sheets_emulator: SheetsEmulator) -> None:
    emu = sheets_emulator
    emu.add_spreadsheet(KEY)
    emu.fail_next("503")
    assert api(emu, "GET", "").json()["error"]["status"] == "UNAVAILABLE"
    emu.latency = 0.05
    started = time.monotonic()
    assert api(emu, "GET", "").status_code == 200
    assert time.monotonic() - started >= 0.05
    assert emu.calls() == 2 and emu.calls("spreadsheets.get") == 2


def test_token_endpoint_and_required_auth(sheets_emulator: SheetsEmulator) -> None:
    emu = sheets_emulator
    emu.require_auth = True
    emu.add_spreadsheet(KEY)
    assert api(emu, "GET", "").json()["error"]["status"] == "UNAUTHENTICATED"
    emu.reject_credentials = True
    refused = http("POST", emu.token_uri, data={"assertion": "a.e30.c"})
    assert refused.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid JWT Signature.",
    }


def test_a_spreadsheet_is_a_drive_file_whose_version_moves_on_every_write(
    emu: SheetsEmulator, drive_emulator: Any, drive_source: Any
) -> None:
    """Linked to the Drive emulator, a spreadsheet is a Drive file: every write through
    the Sheets API (or a person's edit) moves its `version`, and reads do not."""
    emu.add_spreadsheet("1LinkedSheetKey", tabs={"Copies": [["a"]]})
    emu.link_drive(drive_emulator)
    source = drive_source("root")
    first = source.file_version("1LinkedSheetKey")
    assert first is not None
    sheet = client(emu).open_by_key("1LinkedSheetKey")
    sheet.worksheet("Copies").get_all_values()  # a read
    assert source.file_version("1LinkedSheetKey") == first
    sheet.worksheet("Copies").update([["b"]], "A1")  # a write through the API
    second = source.file_version("1LinkedSheetKey")
    assert second is not None and int(second) > int(first)
    emu.delete_tab("1LinkedSheetKey", "Copies")  # a person's edit
    assert int(source.file_version("1LinkedSheetKey") or 0) > int(second)
    assert source.file_version("1NotADriveFileAtAll") is None  # cannot tell


def test_googles_quotas_are_on_by_default_reads_and_writes_apart(
    sheets_emulator: SheetsEmulator, quota_clock: QuotaClock
) -> None:
    """60 reads and 60 writes a minute per user (Google's), in separate buckets, on the
    test's quota clock: no test gets a kinder Sheets than Google's."""
    emu = sheets_emulator
    emu.add_spreadsheet(KEY, tabs={"Sheet1": [["a"]]})
    body = {"values": [["x"]]}
    reads = [api(emu, "GET", "").status_code for _ in range(61)]
    assert reads == [200] * 60 + [429]
    writes = [
        api(emu, "PUT", "/values/Sheet1!A1", params={"valueInputOption": "RAW"}, json=body)
        for _ in range(61)
    ]
    assert [w.status_code for w in writes] == [200] * 60 + [429]  # reads spent none of them
    assert "Write requests" in writes[-1].json()["error"]["message"]
    quota_clock.between_runs()  # a minute later both buckets are full again
    assert api(emu, "GET", "").status_code == 200
    again = api(emu, "PUT", "/values/Sheet1!A1", params={"valueInputOption": "RAW"}, json=body)
    assert again.status_code == 200 and emu.throttled == 2


def test_the_quotas_can_be_turned_off_for_benchmarks_of_our_own_overhead() -> None:
    with SheetsEmulator(read_quota_per_minute=None, write_quota_per_minute=None) as emu:
        emu.add_spreadsheet(KEY)
        assert {api(emu, "GET", "").status_code for _ in range(70)} == {200}
        assert emu.throttled == 0
