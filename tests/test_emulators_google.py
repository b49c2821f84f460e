"""The pieces both emulators share (`emulators/google.py`): one fault API, one field-mask
parser, one error JSON, one token endpoint, seen through each emulator over HTTP."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from emulators.drive import DriveEmulator
from emulators.google import GoogleError, apply_fields, parse_fields
from emulators.sheets import SheetsEmulator

KEY = "SharedPiecesKey"


def get(url: str, timeout: float = 10, **kwargs: Any) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False  # straight to 127.0.0.1, whatever proxy CI sets
        return session.get(url, timeout=timeout, **kwargs)


def post(url: str, **kwargs: Any) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        return session.post(url, timeout=10, **kwargs)


def drive_get(emu: DriveEmulator, file_id: str) -> requests.Response:
    return get(f"{emu.url}/drive/v3/files/{file_id}", params={"supportsAllDrives": "true"})


def sheets_get(emu: SheetsEmulator) -> requests.Response:
    return get(f"{emu.url}/v4/spreadsheets/{KEY}")


def test_both_emulators_fail_the_same_way_on_the_same_calls(
    drive_emulator: DriveEmulator, sheets_emulator: SheetsEmulator
) -> None:
    folder = drive_emulator.add_folder("root", "x")
    sheets_emulator.add_spreadsheet(KEY)
    for emu, call in ((drive_emulator, drive_get), (sheets_emulator, sheets_get)):
        target: Any = folder if emu is drive_emulator else None

        def ask(emu: Any = emu, call: Any = call, target: Any = target) -> int:
            return (call(emu, target) if target else call(emu)).status_code

        emu.fail_next("ok", "503", "429")
        assert [ask(), ask(), ask(), ask()] == [200, 503, 429, 200]
        emu.fail_every(2, ["500"])
        assert [ask(), ask(), ask(), ask()] == [200, 500, 200, 500]
        emu.fail_every(0)
        assert ask() == 200
        with pytest.raises(ValueError, match="unknown fault kinds"):
            emu.fail_next("418")


def test_both_emulators_can_leave_a_request_unanswered(
    drive_emulator: DriveEmulator, sheets_emulator: SheetsEmulator
) -> None:
    folder = drive_emulator.add_folder("root", "x")
    sheets_emulator.add_spreadsheet(KEY)
    urls = {
        drive_emulator: f"{drive_emulator.url}/drive/v3/files/{folder}",
        sheets_emulator: f"{sheets_emulator.url}/v4/spreadsheets/{KEY}",
    }
    for emu, url in urls.items():
        emu.faults.hang_s = 3.0
        emu.fail_next("drop", "hang")
        with pytest.raises(requests.ConnectionError):
            get(url)
        with pytest.raises(requests.ReadTimeout):
            get(url, timeout=0.5)
        assert get(url).status_code == 200


def test_error_bodies_keep_each_api_s_shape(
    drive_emulator: DriveEmulator, sheets_emulator: SheetsEmulator
) -> None:
    sheets_emulator.add_spreadsheet(KEY)
    drive_emulator.fail_next("503")
    sheets_emulator.fail_next("503")
    drive = drive_get(drive_emulator, "nothing").json()["error"]
    sheets = sheets_get(sheets_emulator).json()["error"]
    assert drive == {
        "code": 503,
        "message": "The service is currently unavailable.",
        "errors": [
            {
                "message": "The service is currently unavailable.",
                "domain": "global",
                "reason": "backendError",
            }
        ],
    }
    assert sheets == {
        "code": 503,
        "message": "The service is currently unavailable.",
        "status": "UNAVAILABLE",
    }
    both = GoogleError(429, "slow down", "rateLimitExceeded", "usageLimits", status=True)
    assert both.body()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert both.body()["error"]["errors"][0]["reason"] == "rateLimitExceeded"


def test_one_field_mask_parser_for_both() -> None:
    tree = parse_fields("nextPageToken,files(id,name),sheets/properties.title")
    assert tree == {
        "nextPageToken": {},
        "files": {"id": {}, "name": {}},
        "sheets": {"properties": {"title": {}}},
    }
    doc = {"nextPageToken": "t", "kind": "k", "files": [{"id": "1", "name": "a", "x": 0}]}
    assert apply_fields(doc, parse_fields("files(id)")) == {"files": [{"id": "1"}]}
    assert apply_fields(doc, parse_fields("*")) == doc
    with pytest.raises(ValueError, match="Invalid field selection nope"):
        parse_fields("files(nope)", known={"files", "id"})
    for bad in ("files(id", "a,,b", "a)"):
        with pytest.raises(ValueError, match="Invalid field selection"):
            parse_fields(bad)


def _assertion(claims: dict[str, str]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"e30.{body}.signature"


def test_one_token_endpoint_shape(
    drive_emulator: DriveEmulator, sheets_emulator: SheetsEmulator
) -> None:
    drive_emulator.grant("a@example.org", "scope")
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}
    for emu in (drive_emulator, sheets_emulator):
        bad = post(f"{emu.url}/token", data={**form, "assertion": "not-a-jwt"})
        assert (bad.status_code, bad.json()) == (
            400,
            {"error": "invalid_grant", "error_description": "Invalid JWT."},
        )
        good = post(
            f"{emu.url}/token",
            data={**form, "assertion": _assertion({"sub": "a@example.org", "scope": "scope"})},
        )
        assert good.status_code == 200, good.text
        answer = good.json()
        assert answer["token_type"] == "Bearer" and answer["expires_in"] > 0
        assert emu.access_tokens == [answer["access_token"]]
