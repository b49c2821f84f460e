"""A Google Sheets API v4 emulator on 127.0.0.1, for tests and benchmarks.

Real clients (gspread, google-auth) talk HTTP to it through `SHEETS_API_ENDPOINT`
(see contract §6): spreadsheet metadata with `fields` masks and grid data,
`values.get`/`batchGet`/`update`/`batchUpdate`/`clear`/`batchClear`/`append`,
`spreadsheets.batchUpdate` (addSheet, deleteSheet, updateSheetProperties,
appendDimension, repeatCell, updateCells), A1 ranges with quoted tab names, Google's
error JSON, an OAuth token endpoint for service-account keys, a per-minute
quota answering 429 like `sheets.googleapis.com`, and a role per spreadsheet
(`set_role`): a reader's writes are refused with 403 PERMISSION_DENIED.

Tests seed tabs and read values and formats back cell by cell through the Python
API (`set_values`, `value`, `background`, `is_bold`, ...). Known simplifications:
formulas are stored, not evaluated; `USER_ENTERED` parses numbers, booleans,
formulas and a leading apostrophe, not dates.

Quotas are ON by default at Google's figures: 60 read requests and 60 write requests per
minute per user, in separate buckets (developers.google.com/sheets/api/limits: "Read
requests … Per minute per user per project: 60", "Write requests … Per minute per user
per project: 60"; the emulator serves one user). `read_quota_per_minute` and
`write_quota_per_minute` change them (None: no limit, for benchmarks of our own overhead
only); `quota_per_minute` adds one bucket for both (stricter). A request over a quota is
answered 429 `RESOURCE_EXHAUSTED` (`RATE_LIMIT_EXCEEDED`), with `Retry-After` in seconds
or as an HTTP date when `retry_after` says so. The windows run on `clock` (real
monotonic time by default): tests pass an `emulators.google.QuotaClock`, hand its
`sleep` to the code under test and call its `between_runs` between runs, so many runs
fit in a few real seconds.

    with SheetsEmulator() as emu:
        emu.add_spreadsheet("KEY", tabs={"Sheet1": [["a", 1]]})
        ...  # SHEETS_API_ENDPOINT=emu.url
"""

from __future__ import annotations

import copy
import email.utils
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from emulators import Emulator, google
from emulators.google import FAULTS, SILENT, FaultInjector, GoogleError, Unanswered

JSON = dict[str, Any]
SPREADSHEET_MIME = "application/vnd.google-apps.spreadsheet"
# Requests that read; every other one writes (and moves the file's Drive version).
_READS = frozenset({"spreadsheets.get", "values.get", "values.batchGet"})
DEFAULT_ROWS = 1000
DEFAULT_COLUMNS = 26
_PREFIX = "/v4/spreadsheets/"
# Google's per-minute, per-user quota of read requests and, separately, of write requests.
PER_MINUTE = 60

_WRITE_KINDS = frozenset(
    {
        "spreadsheets.batchUpdate",
        "values.update",
        "values.batchUpdate",
        "values.clear",
        "values.batchClear",
        "values.append",
    }
)
_QUOTA_MESSAGE = (
    "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute per user' "
    "of service 'sheets.googleapis.com' for consumer 'project_number:000000000000'."
)


class ApiError(GoogleError):
    """An error answered as Google's v4 JSON: `{"error": {"code", "message", "status"}}`."""

    def __init__(self, code: int, message: str, details: list[JSON] | None = None) -> None:
        super().__init__(code, message, status=True, details=details)


def _retry_after(seconds: float, form: str) -> dict[str, str]:
    """`Retry-After` in whole seconds, or as an HTTP date that far ahead."""
    whole = max(1, math.ceil(seconds))
    if form == "date":
        return {"Retry-After": email.utils.formatdate(time.time() + whole + 1, usegmt=True)}
    return {"Retry-After": str(whole)}


class QuotaError(ApiError):
    """429 RESOURCE_EXHAUSTED / RATE_LIMIT_EXCEEDED, as sheets.googleapis.com answers it;
    `wait` is the seconds until the quota window has room again."""

    def __init__(self, wait: float, metric: str = "Requests") -> None:
        message = _QUOTA_MESSAGE.replace("'Requests'", f"'{metric}'").replace(
            "'Requests per minute", f"'{metric} per minute"
        )
        super().__init__(
            429,
            message,
            [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "RATE_LIMIT_EXCEEDED",
                    "domain": "googleapis.com",
                    "metadata": {"service": "sheets.googleapis.com"},
                }
            ],
        )
        self.wait = wait


# ---------------------------------------------------------------- A1 notation


def column_index(letters: str) -> int:
    """`A` → 0, `Z` → 25, `AA` → 26."""
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def column_letters(index: int) -> str:
    """0 → `A`, 26 → `AA`."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def quote_title(title: str) -> str:
    """A tab name as Google echoes it in ranges: bare when simple, else quoted."""
    simple = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", title) and not re.fullmatch(
        r"[A-Za-z]{1,3}[0-9]+", title
    )
    return title if simple else "'" + title.replace("'", "''") + "'"


_CELLS = re.compile(r"([A-Za-z]{0,3})([0-9]*)(?::([A-Za-z]{0,3})([0-9]*))?")


@dataclass(frozen=True)
class Box:
    """Rows and columns, 0-based, end exclusive; `None` ends are unbounded."""

    r0: int = 0
    c0: int = 0
    r1: int | None = None
    c1: int | None = None

    @property
    def is_single_cell(self) -> bool:
        return self.r1 == self.r0 + 1 and self.c1 == self.c0 + 1


def _split_sheet(text: str) -> tuple[str | None, str | None]:
    """`'It''s'!A1` → (`It's`, `A1`); `Tab` → (`Tab`, None) when it may be a tab name."""
    if text.startswith("'"):
        i, name = 1, []
        while i < len(text):
            if text[i] == "'":
                if text[i + 1 : i + 2] == "'":
                    name.append("'")
                    i += 2
                    continue
                rest = text[i + 1 :]
                if rest == "":
                    return "".join(name), None
                if rest.startswith("!"):
                    return "".join(name), rest[1:]
                raise ValueError(text)
            name.append(text[i])
            i += 1
        raise ValueError(text)
    if "!" in text:
        sheet, _, cells = text.rpartition("!")
        return sheet, cells
    return None, text


def _parse_cells(cells: str) -> Box:
    m = _CELLS.fullmatch(cells.strip())
    if not m or cells.strip() == "":
        raise ValueError(cells)
    c_a, r_a, c_b, r_b = m.groups()
    if not c_a and not r_a:
        raise ValueError(cells)
    if m.group(3) is None and m.group(4) is None:  # one cell, or a bare column/row
        if c_a and r_a:
            r, c = int(r_a) - 1, column_index(c_a)
            if r < 0:
                raise ValueError(cells)
            return Box(r, c, r + 1, c + 1)
        raise ValueError(cells)
    if not c_b and not r_b:
        raise ValueError(cells)
    rows = [int(r_a) - 1 if r_a else None, int(r_b) - 1 if r_b else None]
    cols = [column_index(c_a) if c_a else None, column_index(c_b) if c_b else None]
    if any(r is not None and r < 0 for r in rows):
        raise ValueError(cells)
    if None not in rows and rows[0] > rows[1]:  # Google normalises B2:A1 to A1:B2
        rows.reverse()
    if None not in cols and cols[0] > cols[1]:
        cols.reverse()
    return Box(
        rows[0] or 0,
        cols[0] or 0,
        None if rows[1] is None else rows[1] + 1,
        None if cols[1] is None else cols[1] + 1,
    )


# ---------------------------------------------------------------- field masks


def _copy_masked(target: JSON, source: Mapping[str, Any], tree: Mapping[str, Any]) -> None:
    """Set the masked fields of `target` from `source`; fields absent in `source` are cleared."""
    if "*" in tree:
        target.clear()
        target.update(copy.deepcopy(dict(source)))
        return
    for key, sub in tree.items():
        if not sub:
            if key in source:
                target[key] = copy.deepcopy(source[key])
            else:
                target.pop(key, None)
            continue
        source_child = source.get(key)
        child = target.get(key)
        child = child if isinstance(child, dict) else {}
        _copy_masked(child, source_child if isinstance(source_child, dict) else {}, sub)
        if child:
            target[key] = child
        else:
            target.pop(key, None)


# ---------------------------------------------------------------- cell values

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _entered(value: Any, option: str) -> JSON | None:
    """A JSON value from `values.update` → the cell's `userEnteredValue` (None clears)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int | float):
        return {"numberValue": value}
    if not isinstance(value, str):
        raise ApiError(400, f"Invalid values: {json.dumps(value)[:100]}")
    _check_length(value)
    if value == "":
        return None
    if option == "RAW":
        return {"stringValue": value}
    if value.startswith("="):
        return {"formulaValue": value}
    if value.startswith("'"):
        return {"stringValue": value[1:]}
    if value.upper() in ("TRUE", "FALSE"):
        return {"boolValue": value.upper() == "TRUE"}
    if _NUMBER.fullmatch(value.strip()):
        number = float(value)
        return {"numberValue": int(number) if number.is_integer() else number}
    return {"stringValue": value}


CELL_LIMIT = 50_000


def _check_length(text: str) -> None:
    if len(text) > CELL_LIMIT:
        raise ApiError(
            400,
            f"Your input contains more than the maximum of {CELL_LIMIT} characters "
            "in a single cell.",
        )


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def _python(entered: Mapping[str, Any] | None, render: str = "UNFORMATTED_VALUE") -> Any:
    """A cell's value as `values.get` answers it for `render`."""
    if not entered:
        return None
    if "formulaValue" in entered:
        return entered["formulaValue"]  # not evaluated (see module docstring)
    if "numberValue" in entered:
        n = _number(entered["numberValue"])
        return n if render != "FORMATTED_VALUE" else _formatted_number(n)
    if "boolValue" in entered:
        b = entered["boolValue"]
        return b if render != "FORMATTED_VALUE" else ("TRUE" if b else "FALSE")
    if "errorValue" in entered:
        return "#ERROR!"
    return entered.get("stringValue", "")


def _formatted_number(n: int | float) -> str:
    return str(n) if isinstance(n, int) else f"{n:.10g}"


# ---------------------------------------------------------------- the model


@dataclass
class Tab:
    """One sheet (tab): grid size and sparse `CellData` dicts keyed by (row, column)."""

    sheet_id: int
    title: str
    rows: int = DEFAULT_ROWS
    columns: int = DEFAULT_COLUMNS
    frozen_rows: int = 0
    cells: dict[tuple[int, int], JSON] = field(default_factory=dict)

    def properties(self, index: int) -> JSON:
        grid: JSON = {"rowCount": self.rows, "columnCount": self.columns}
        if self.frozen_rows:
            grid["frozenRowCount"] = self.frozen_rows
        return {
            "sheetId": self.sheet_id,
            "title": self.title,
            "index": index,
            "sheetType": "GRID",
            "gridProperties": grid,
        }

    def extent(self) -> tuple[int, int]:
        """Rows and columns up to the last cell with a value."""
        used = [rc for rc, cell in self.cells.items() if cell.get("userEnteredValue")]
        if not used:
            return 0, 0
        return max(r for r, _ in used) + 1, max(c for _, c in used) + 1

    def a1(self, box: Box) -> str:
        """The range as Google echoes it: clipped to the grid, tab name quoted."""
        r1 = min(self.rows if box.r1 is None else box.r1, self.rows)
        c1 = min(self.columns if box.c1 is None else box.c1, self.columns)
        start = f"{column_letters(box.c0)}{box.r0 + 1}"
        end = f"{column_letters(max(c1 - 1, box.c0))}{max(r1, box.r0 + 1)}"
        return f"{quote_title(self.title)}!{start}" + ("" if start == end else f":{end}")


@dataclass
class Spreadsheet:
    key: str
    title: str
    tabs: list[Tab]
    shared: bool = True
    time_zone: str = "America/New_York"
    locale: str = "en_US"

    def tab(self, title: str) -> Tab:
        for t in self.tabs:
            if t.title == title:
                return t
        for t in self.tabs:  # Google matches tab names case-insensitively
            if t.title.casefold() == title.casefold():
                return t
        raise KeyError(title)

    def by_id(self, sheet_id: int, where: str) -> Tab:
        for t in self.tabs:
            if t.sheet_id == sheet_id:
                return t
        raise ApiError(400, f"Invalid {where}: No grid with id: {sheet_id}")

    def resolve(self, text: str) -> tuple[Tab, Box]:
        """An A1 range → (tab, box); 400 `Unable to parse range` like Google."""
        try:
            sheet, cells = _split_sheet(text)
            if cells is None:
                return self.tab(sheet or ""), Box()
            if sheet is None:
                try:  # a bare word is a tab name first, then a range on the first tab
                    return self.tab(cells), Box()
                except KeyError:
                    return self.tabs[0], _parse_cells(cells)
            return self.tab(sheet), _parse_cells(cells)
        except (KeyError, ValueError, IndexError):
            raise ApiError(400, f"Unable to parse range: {text}") from None


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request the emulator answered (token requests included, kind `token`)."""

    method: str
    path: str
    kind: str
    status: int
    subject: str | None


# ---------------------------------------------------------------- the emulator


class SheetsEmulator(FaultInjector, Emulator):
    """The server and its state. Thread-safe; start/stop it or use it as a context manager.

    `read_quota_per_minute` / `write_quota_per_minute`: read / write requests allowed
    in any 60 s window, else 429 (`PER_MINUTE`, Google's, by default; None: no limit).
    `quota_per_minute`: one more window for both together (None by default).
    `latency`: seconds each request waits before it is answered. `clock`: monotonic
    seconds the quota windows run on (tests pass a `QuotaClock`). `require_auth`:
    answer 401 unless the request carries a bearer token issued by `/token`;
    `reject_credentials`: `/token` refuses every key (`invalid_grant`), like Google for
    a revoked or deleted key.
    """

    def __init__(
        self,
        *,
        quota_per_minute: int | None = None,
        read_quota_per_minute: int | None = PER_MINUTE,
        write_quota_per_minute: int | None = PER_MINUTE,
        retry_after: str | None = None,
        latency: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        require_auth: bool = False,
        reject_credentials: bool = False,
    ) -> None:
        self.quota_per_minute = quota_per_minute
        self.read_quota_per_minute = read_quota_per_minute
        self.write_quota_per_minute = write_quota_per_minute
        self.retry_after = retry_after  # None, "seconds" or "date"
        self._read_window: deque[float] = deque()
        self._answer = threading.local()  # extra headers of the answer being built
        self._write_window: deque[float] = deque()
        self.latency = latency
        self.clock = clock
        self.require_auth = require_auth
        self.reject_credentials = reject_credentials
        self.log: list[RequestRecord] = []
        self.throttled = 0
        self.token_claims: list[JSON] = []
        self._times: list[float] = []
        self._spreadsheets: dict[str, Spreadsheet] = {}
        self._tokens: dict[str, str | None] = {}
        self._window: deque[float] = deque()
        self._init_faults()
        self._lock = threading.RLock()
        # Spreadsheet key → the caller's role (`reader`, `writer`, `organizer`); writer if unset.
        self.roles: dict[str, str] = {}
        # Called with a spreadsheet's key after every write to it: a spreadsheet is a
        # Drive file, and `link_drive` makes its Drive `version` move as Google's does.
        self._on_write: list[Callable[[str], None]] = []
        self._drive_link: tuple[Any, str] | None = None

    def link_drive(self, drive: Any, parent: str = "root") -> None:
        """Make every spreadsheet a file of the Drive emulator `drive` (under `parent`,
        My Drive by default) whose `version` grows on each write through this emulator
        or its Python API (a person's edit)."""
        with self._lock:
            for key, book in self._spreadsheets.items():
                if key not in drive.files:
                    drive.add_file(parent, book.title, SPREADSHEET_MIME, file_id=key)
            self._on_write.append(drive.touch)
            self._drive_link = (drive, parent)

    def _written(self, key: str) -> None:
        for hook in self._on_write:
            hook(key)

    # -- lifecycle

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        class Handler(_Handler):
            pass

        Handler.emulator = self
        return Handler

    @property
    def token_uri(self) -> str:
        """Where a test service-account key sends its JWT (`token_uri`)."""
        return self.url + "/token"

    # -- seeding and reading back (Python API for tests)

    def add_spreadsheet(
        self,
        key: str,
        *,
        title: str = "Backtests",
        tabs: Mapping[str, Sequence[Sequence[Any]]] | None = None,
        shared: bool = True,
        rows: int = DEFAULT_ROWS,
        columns: int = DEFAULT_COLUMNS,
    ) -> None:
        """A spreadsheet with `tabs` (title → rows of values from A1); `Sheet1` if none."""
        with self._lock:
            book = Spreadsheet(key, title, [], shared=shared)
            self._spreadsheets[key] = book
            link = self._drive_link
            if link is not None and key not in link[0].files:
                link[0].add_file(link[1], title, SPREADSHEET_MIME, file_id=key)
            for tab_title, values in (tabs or {"Sheet1": []}).items():
                self.add_tab(key, tab_title, rows=max(rows, len(values)), columns=columns)
                if values:
                    self.set_values(key, tab_title, "A1", values)

    def add_tab(
        self, key: str, title: str, *, rows: int = DEFAULT_ROWS, columns: int = DEFAULT_COLUMNS
    ) -> int:
        with self._lock:
            book = self._spreadsheets[key]
            sheet_id = 0 if not book.tabs else max(t.sheet_id for t in book.tabs) + 1
            book.tabs.append(Tab(sheet_id, title, rows, columns))
            self._written(key)
            return sheet_id

    def delete_tab(self, key: str, title: str) -> None:
        """Delete a tab, as a person would in the browser."""
        with self._lock:
            book = self._spreadsheets[key]
            book.tabs.remove(book.tab(title))
            self._written(key)

    def rename_tab(self, key: str, title: str, new_title: str) -> None:
        """Rename a tab, as a person would in the browser."""
        with self._lock:
            self._spreadsheets[key].tab(title).title = new_title
            self._written(key)

    def share(self, key: str, shared: bool) -> None:
        with self._lock:
            self._spreadsheets[key].shared = shared

    def set_role(self, key: str, role: str) -> None:
        """The caller's role on spreadsheet `key`: a `reader`'s writes are refused with
        Google's 403 PERMISSION_DENIED; `writer` and `organizer` may write."""
        if role not in ("reader", "writer", "organizer"):
            raise ValueError(f"unknown role {role!r}")
        with self._lock:
            self.roles[key] = role

    def set_values(self, key: str, tab: str, start: str, values: Sequence[Sequence[Any]]) -> None:
        """Write Python values (str, int, float, bool; None skips) as RAW from `start`."""
        with self._lock:
            book = self._spreadsheets[key]
            sheet, box = book.resolve(f"{quote_title(tab)}!{start}")
            self._write(sheet, box, [list(r) for r in values], "RAW", strict=False)
            self._written(key)

    def set_format(self, key: str, tab: str, cells: str, fmt: Mapping[str, Any]) -> None:
        """Merge `fmt` (a `CellFormat`, e.g. `{"backgroundColor": {...}}`) into each cell."""
        with self._lock:
            sheet, box = self._spreadsheets[key].resolve(f"{quote_title(tab)}!{cells}")
            for r, c in self._cells_of(sheet, box):
                cell = sheet.cells.setdefault((r, c), {})
                merged = cell.setdefault("userEnteredFormat", {})
                _deep_merge(merged, copy.deepcopy(dict(fmt)))
            self._written(key)

    def value(self, key: str, tab: str, cell: str) -> Any:
        """The cell's value as Python (number, bool, str; a formula as its text), None if empty."""
        with self._lock:
            sheet, box = self._spreadsheets[key].resolve(f"{quote_title(tab)}!{cell}")
            return _python(sheet.cells.get((box.r0, box.c0), {}).get("userEnteredValue"))

    def entered(self, key: str, tab: str, cell: str) -> JSON:
        """A copy of the cell's `userEnteredValue` as stored (`{"stringValue": ...}`, ...)."""
        with self._lock:
            sheet, box = self._spreadsheets[key].resolve(f"{quote_title(tab)}!{cell}")
            return copy.deepcopy(sheet.cells.get((box.r0, box.c0), {}).get("userEnteredValue", {}))

    def cell_format(self, key: str, tab: str, cell: str) -> JSON:
        """A copy of the cell's `userEnteredFormat` ({} when none)."""
        with self._lock:
            sheet, box = self._spreadsheets[key].resolve(f"{quote_title(tab)}!{cell}")
            return copy.deepcopy(sheet.cells.get((box.r0, box.c0), {}).get("userEnteredFormat", {}))

    def background(self, key: str, tab: str, cell: str) -> tuple[float, float, float] | None:
        """(red, green, blue) of the cell's background, None when unset (Google omits zeros)."""
        colour = self.cell_format(key, tab, cell).get("backgroundColor")
        if colour is None:
            return None
        return (colour.get("red", 0.0), colour.get("green", 0.0), colour.get("blue", 0.0))

    def is_bold(self, key: str, tab: str, cell: str) -> bool:
        return bool(self.cell_format(key, tab, cell).get("textFormat", {}).get("bold", False))

    def values(self, key: str, tab: str) -> list[list[Any]]:
        """The tab's values as Python, trimmed like `values.get` (empty cells are None)."""
        with self._lock:
            sheet = self._spreadsheets[key].tab(tab)
            rows, cols = sheet.extent()
            grid = [
                [_python(sheet.cells.get((r, c), {}).get("userEnteredValue")) for c in range(cols)]
                for r in range(rows)
            ]
            for row in grid:
                while row and row[-1] is None:
                    row.pop()
            return grid

    def tab_titles(self, key: str) -> list[str]:
        with self._lock:
            return [t.title for t in self._spreadsheets[key].tabs]

    def grid_size(self, key: str, tab: str) -> tuple[int, int]:
        with self._lock:
            t = self._spreadsheets[key].tab(tab)
            return t.rows, t.columns

    def snapshot(self, key: str) -> JSON:
        """Everything stored for `key` (values and formats of every tab), for equality checks."""
        with self._lock:
            book = self._spreadsheets[key]
            return {
                t.title: {
                    "grid": (t.rows, t.columns),
                    "cells": {f"{column_letters(c)}{r + 1}": v for (r, c), v in t.cells.items()},
                }
                for t in book.tabs
            } | {"_": copy.deepcopy([t.sheet_id for t in book.tabs])}

    # -- fault injection and counters

    def calls(self, kind: str | None = None) -> int:
        """API requests answered (any status), optionally of one kind, e.g. `values.batchGet`."""
        with self._lock:
            return sum(1 for r in self.log if r.kind != "token" and kind in (None, r.kind))

    def writes(self) -> int:
        """Answered requests that may change the spreadsheet."""
        with self._lock:
            return sum(1 for r in self.log if r.kind in _WRITE_KINDS)

    def answer_headers(self) -> dict[str, str]:
        """Extra headers (`Retry-After`) of the answer this thread just built."""
        return getattr(self._answer, "headers", {})

    def max_per_minute(self) -> int:
        """Most API requests seen in any 60-second window (by `clock`)."""
        with self._lock:
            times = sorted(self._times)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= 60:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()
            self._times.clear()
            self.throttled = 0

    # -- request handling (called by the HTTP handler threads)

    def handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, JSON | str]:
        """Answer one HTTP request: (status, JSON body or HTML text)."""
        self._answer.headers = {}
        if self.latency:
            time.sleep(self.latency)
        split = urlsplit(raw_path)
        query = parse_qs(split.query, keep_blank_values=True)
        override = headers.get("X-HTTP-Method-Override")
        if method == "POST" and override and body:
            query.update(parse_qs(body.decode(), keep_blank_values=True))
            method, body = override.upper(), b""
        if split.path == "/token" and method == "POST":
            return self._token(body)
        with self._lock:
            kind, route = _route(method, split.path)
            subject = None
            try:
                if kind == "unknown":
                    status, payload = 404, _NOT_FOUND_HTML
                    return status, payload
                subject = self._authorise(headers)
                self._take_quota(kind)
                fault = self.next_fault()
                if fault in SILENT:
                    raise Unanswered(fault)  # out of the lock: a hang must not block others
                if fault is not None:
                    code = FAULTS[fault][0]
                    raise ApiError(code, _default_message(code))
                if kind in _WRITE_KINDS and self.roles.get(route.get("key", "")) == "reader":
                    self._book(route["key"])  # a missing sheet is still 404
                    raise ApiError(403, "The caller does not have permission")
                status, payload = 200, self._dispatch(kind, route, query, body)
                if kind not in _READS:
                    self._written(route["key"])
                if "fields" in query and query["fields"][0]:
                    payload = google.apply_fields(payload, _mask(query["fields"][0]))
            except ApiError as err:
                if err.code == 429:
                    self.throttled += 1
                status, payload = err.code, err.body()
                if isinstance(err, QuotaError) and self.retry_after:
                    self._answer.headers = _retry_after(err.wait, self.retry_after)
            self.log.append(RequestRecord(method, split.path, kind, status, subject))
            return status, payload

    def _authorise(self, headers: Mapping[str, str]) -> str | None:
        auth = headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token is not None and token in self._tokens:
            return self._tokens[token]
        if self.require_auth:
            raise ApiError(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 "
                "access token, login cookie or other valid authentication credential.",
            )
        return None

    def _take_quota(self, kind: str = "") -> None:
        now = self.clock()
        self._times.append(now)
        write = kind in _WRITE_KINDS
        buckets = [(self.quota_per_minute, self._window, "Requests")]
        if write:
            buckets.append((self.write_quota_per_minute, self._write_window, "Write requests"))
        else:
            buckets.append((self.read_quota_per_minute, self._read_window, "Read requests"))
        for limit, window, metric in buckets:
            if limit is None:
                continue
            while window and now - window[0] >= 60:
                window.popleft()
            if len(window) >= limit:
                wait = 60 - (now - window[0]) if window else 60.0
                raise QuotaError(wait, metric)
        for limit, window, _metric in buckets:
            if limit is not None:
                window.append(now)

    @property
    def access_tokens(self) -> list[str]:
        """Every access token `/token` handed out."""
        with self._lock:
            return list(self._tokens)

    def _token(self, body: bytes) -> tuple[int, JSON]:
        form = parse_qs(body.decode(), keep_blank_values=True)
        claims = google.token_claims(form.get("assertion", [""])[0])
        if claims is None:
            return 400, google.token_error("invalid_grant", "Invalid JWT.")
        with self._lock:
            self.token_claims.append(claims)
            self.log.append(RequestRecord("POST", "/token", "token", 200, claims.get("sub")))
            if self.reject_credentials:
                return 400, google.token_error("invalid_grant", "Invalid JWT Signature.")
            token = f"emu-token-{len(self._tokens) + 1}"
            self._tokens[token] = claims.get("sub")
        return 200, google.token_answer(token, expires_in=3599)

    def _book(self, key: str) -> Spreadsheet:
        book = self._spreadsheets.get(key)
        if book is None:
            raise ApiError(404, "Requested entity was not found.")
        if not book.shared:
            raise ApiError(403, "The caller does not have permission")
        return book

    def _dispatch(
        self, kind: str, route: JSON, query: Mapping[str, list[str]], body: bytes
    ) -> JSON:
        book = self._book(route["key"])
        data = _json_body(body) if body else {}
        first = {k: v[0] for k, v in query.items() if v}
        if kind == "spreadsheets.get":
            return self._get_spreadsheet(book, query)
        if kind == "spreadsheets.batchUpdate":
            return self._batch_update(book, data)
        if kind == "values.get":
            return self._get_values(book, route["range"], first)
        if kind == "values.batchGet":
            return {
                "spreadsheetId": book.key,
                "valueRanges": [self._get_values(book, r, first) for r in query.get("ranges", [])],
            }
        if kind == "values.update":
            option = _input_option(first.get("valueInputOption"))
            reply = self._update_values(book, route["range"], data, option)
            return {"spreadsheetId": book.key, **reply}
        if kind == "values.batchUpdate":
            option = _input_option(data.get("valueInputOption"))
            staged = copy.deepcopy(book.tabs)  # all or nothing, like Google
            try:
                replies = [
                    self._update_values(book, d.get("range", ""), d, option)
                    for d in data.get("data", [])
                ]
            except ApiError:
                book.tabs = staged
                raise
            return {
                "spreadsheetId": book.key,
                "totalUpdatedRows": sum(r.get("updatedRows", 0) for r in replies),
                "totalUpdatedColumns": sum(r.get("updatedColumns", 0) for r in replies),
                "totalUpdatedCells": sum(r.get("updatedCells", 0) for r in replies),
                "totalUpdatedSheets": len({r["updatedRange"].rpartition("!")[0] for r in replies}),
                "responses": [{"spreadsheetId": book.key, **r} for r in replies],
            }
        if kind == "values.clear":
            return {"spreadsheetId": book.key, "clearedRange": self._clear(book, route["range"])}
        if kind == "values.batchClear":
            ranges = data.get("ranges", [])
            for r in ranges:  # validate all before clearing any
                book.resolve(r)
            return {
                "spreadsheetId": book.key,
                "clearedRanges": [self._clear(book, r) for r in ranges],
            }
        if kind == "values.append":
            return self._append(book, route["range"], data, first)
        raise ApiError(404, "Requested entity was not found.")  # pragma: no cover

    # -- spreadsheets.get

    def _get_spreadsheet(self, book: Spreadsheet, query: Mapping[str, list[str]]) -> JSON:
        with_data = query.get("includeGridData", ["false"])[0].lower() == "true"
        ranges = query.get("ranges", [])
        wanted: dict[int, list[Box]] = {}
        for text in ranges:
            tab, box = book.resolve(text)
            wanted.setdefault(tab.sheet_id, []).append(box)
        sheets = []
        for index, tab in enumerate(book.tabs):
            if ranges and tab.sheet_id not in wanted:
                continue
            entry: JSON = {"properties": tab.properties(index)}
            if with_data:
                entry["data"] = [
                    self._grid_data(tab, box) for box in wanted.get(tab.sheet_id, [Box()])
                ]
            sheets.append(entry)
        return {
            "spreadsheetId": book.key,
            "properties": {
                "title": book.title,
                "locale": book.locale,
                "autoRecalc": "ON_CHANGE",
                "timeZone": book.time_zone,
            },
            "sheets": sheets,
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{book.key}/edit",
        }

    def _grid_data(self, tab: Tab, box: Box) -> JSON:
        r1 = min(tab.rows, box.r1 or tab.rows)
        c1 = min(tab.columns, box.c1 or tab.columns)
        rows = []
        for r in range(box.r0, r1):
            values = []
            for c in range(box.c0, c1):
                cell = copy.deepcopy(tab.cells.get((r, c), {}))
                entered = cell.get("userEnteredValue")
                if entered:
                    shown = _python(entered, "FORMATTED_VALUE")
                    cell["effectiveValue"] = (
                        {"stringValue": shown} if "formulaValue" in entered else dict(entered)
                    )
                    cell["formattedValue"] = shown
                if "userEnteredFormat" in cell:
                    cell["effectiveFormat"] = copy.deepcopy(cell["userEnteredFormat"])
                values.append(cell)
            while values and not values[-1]:
                values.pop()
            rows.append({"values": values} if values else {})
        while rows and not rows[-1]:
            rows.pop()
        data: JSON = {"rowData": rows}
        if box.r0:
            data["startRow"] = box.r0
        if box.c0:
            data["startColumn"] = box.c0
        return data

    # -- values

    def _get_values(self, book: Spreadsheet, text: str, params: Mapping[str, str]) -> JSON:
        tab, box = book.resolve(text)
        render = params.get("valueRenderOption", "FORMATTED_VALUE")
        if render not in ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"):
            raise ApiError(400, f"Invalid value at 'value_render_option' ({render})")
        major = params.get("majorDimension", "ROWS")
        r1 = min(tab.rows, tab.rows if box.r1 is None else box.r1)
        c1 = min(tab.columns, tab.columns if box.c1 is None else box.c1)
        grid: list[list[Any]] = []
        for r in range(box.r0, r1):
            row = []
            for c in range(box.c0, c1):
                v = _python(tab.cells.get((r, c), {}).get("userEnteredValue"), render)
                row.append("" if v is None else v)
            while row and row[-1] == "":
                row.pop()
            grid.append(row)
        while grid and not grid[-1]:
            grid.pop()
        if major == "COLUMNS":
            width = max((len(r) for r in grid), default=0)
            grid = [[r[c] if c < len(r) else "" for r in grid] for c in range(width)]
            for col in grid:
                while col and col[-1] == "":
                    col.pop()
            while grid and not grid[-1]:
                grid.pop()
        out: JSON = {"range": tab.a1(box), "majorDimension": major}
        if grid:
            out["values"] = grid
        return out

    def _update_values(
        self, book: Spreadsheet, text: str, data: Mapping[str, Any], option: str
    ) -> JSON:
        tab, box = book.resolve(text)
        values = data.get("values", [])
        if not isinstance(values, list) or not all(isinstance(r, list) for r in values):
            raise ApiError(400, "Invalid JSON payload received. 'values' must be a list of lists.")
        if data.get("majorDimension", "ROWS") == "COLUMNS":
            width = max((len(c) for c in values), default=0)
            values = [[c[r] if r < len(c) else None for c in values] for r in range(width)]
        return self._write(tab, box, values, option, strict=True)

    def _write(
        self, tab: Tab, box: Box, values: list[list[Any]], option: str, *, strict: bool
    ) -> JSON:
        height = len(values)
        width = max((len(r) for r in values), default=0)
        if strict and not box.is_single_cell:  # a single cell is the anchor of the block
            if box.r1 is not None and box.r0 + height > box.r1:
                raise ApiError(
                    400,
                    f"Requested writing within range [{tab.a1(box)}], but tried writing to row "
                    f"[{box.r0 + height}]",
                )
            if box.c1 is not None and box.c0 + width > box.c1:
                raise ApiError(
                    400,
                    f"Requested writing within range [{tab.a1(box)}], but tried writing to "
                    f"column [{column_letters(box.c0 + width - 1)}]",
                )
        # values writes grow the grid as needed
        tab.rows = max(tab.rows, box.r0 + height)
        tab.columns = max(tab.columns, box.c0 + width)
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                if value is None:
                    continue  # null means "leave this cell as it is"
                entered = _entered(value, option)
                cell = tab.cells.setdefault((box.r0 + i, box.c0 + j), {})
                if entered is None:
                    cell.pop("userEnteredValue", None)
                else:
                    cell["userEnteredValue"] = entered
                if not cell:
                    del tab.cells[(box.r0 + i, box.c0 + j)]
        if not height or not width:
            return {"updatedRange": tab.a1(Box(box.r0, box.c0, box.r0 + 1, box.c0 + 1))}
        written = Box(box.r0, box.c0, box.r0 + height, box.c0 + width)
        return {
            "updatedRange": tab.a1(written),
            "updatedRows": height,
            "updatedColumns": width,
            "updatedCells": sum(1 for row in values for v in row if v is not None),
        }

    def _clear(self, book: Spreadsheet, text: str) -> str:
        tab, box = book.resolve(text)
        for rc in self._cells_of(tab, box):
            cell = tab.cells.get(rc)
            if cell is not None:
                cell.pop("userEnteredValue", None)  # formats stay, like Google
                if not cell:
                    del tab.cells[rc]
        return tab.a1(box)

    def _append(
        self, book: Spreadsheet, text: str, data: Mapping[str, Any], params: Mapping[str, str]
    ) -> JSON:
        option = _input_option(params.get("valueInputOption"))
        tab, box = book.resolve(text)
        rows, _ = tab.extent()
        start = Box(max(rows, box.r0), box.c0, max(rows, box.r0) + 1, box.c0 + 1)
        if params.get("insertDataOption") == "INSERT_ROWS":
            height = len(data.get("values", []))
            shifted = {}
            for (r, c), cell in tab.cells.items():
                shifted[(r + height if r >= start.r0 else r, c)] = cell
            tab.cells = shifted
            tab.rows += height
        reply = self._write(tab, start, data.get("values", []), option, strict=False)
        return {
            "spreadsheetId": book.key,
            "tableRange": tab.a1(Box(0, box.c0, max(rows, 1), box.c0 + 1)),
            "updates": {"spreadsheetId": book.key, **reply},
        }

    # -- spreadsheets.batchUpdate

    def _batch_update(self, book: Spreadsheet, data: Mapping[str, Any]) -> JSON:
        requests = data.get("requests")
        if not requests:
            raise ApiError(400, "Must specify at least one request.")
        staged = copy.deepcopy(book.tabs)  # applied atomically: all requests or none
        replies = []
        try:
            for i, request in enumerate(requests):
                if not isinstance(request, dict) or len(request) != 1:
                    raise ApiError(
                        400, f"Invalid requests[{i}]: exactly one kind of request expected"
                    )
                ((name, body),) = request.items()
                handler = _REQUESTS.get(name)
                if handler is None:
                    raise ApiError(
                        400,
                        f'Invalid JSON payload received. Unknown name "{name}" at '
                        f"'requests[{i}]': Cannot find field.",
                    )
                replies.append(handler(self, book, body, f"requests[{i}].{name}"))
        except ApiError:
            book.tabs = staged
            raise
        return {"spreadsheetId": book.key, "replies": replies}

    def _add_sheet(self, book: Spreadsheet, body: JSON, where: str) -> JSON:
        props = body.get("properties", {})
        title = props.get("title") or f"Sheet{len(book.tabs) + 1}"
        if any(t.title.casefold() == title.casefold() for t in book.tabs):
            raise ApiError(
                400,
                f'Invalid {where}: A sheet with the name "{title}" already exists. '
                "Please enter another name.",
            )
        sheet_id = props.get("sheetId")
        if sheet_id is None:
            sheet_id = max((t.sheet_id for t in book.tabs), default=0) + 1
        elif any(t.sheet_id == sheet_id for t in book.tabs) or sheet_id < 0:
            raise ApiError(400, f"Invalid {where}: Sheet with id {sheet_id} already exists")
        grid = props.get("gridProperties", {})
        tab = Tab(
            sheet_id,
            title,
            grid.get("rowCount", DEFAULT_ROWS),
            grid.get("columnCount", DEFAULT_COLUMNS),
        )
        tab.frozen_rows = grid.get("frozenRowCount", 0)
        index = props.get("index", len(book.tabs))
        book.tabs.insert(min(index, len(book.tabs)), tab)
        return {"addSheet": {"properties": tab.properties(book.tabs.index(tab))}}

    def _delete_sheet(self, book: Spreadsheet, body: JSON, where: str) -> JSON:
        tab = book.by_id(body.get("sheetId", 0), where)
        if len(book.tabs) == 1:
            raise ApiError(400, f"Invalid {where}: You can't remove all the sheets in a document.")
        book.tabs.remove(tab)
        return {}

    def _update_sheet_properties(self, book: Spreadsheet, body: JSON, where: str) -> JSON:
        props = body.get("properties", {})
        fields = body.get("fields")
        if not fields:
            raise ApiError(400, f"Invalid {where}: At least one field must be specified.")
        tab = book.by_id(props.get("sheetId", 0), where)
        mask = _mask(fields)
        current = {
            "title": tab.title,
            "gridProperties": {
                "rowCount": tab.rows,
                "columnCount": tab.columns,
                "frozenRowCount": tab.frozen_rows,
            },
        }
        _copy_masked(current, props, mask)
        grid = current.get("gridProperties", {})
        if "title" in mask and not current.get("title"):
            raise ApiError(400, f"Invalid {where}: The sheet name cannot be empty.")
        tab.title = current.get("title", tab.title)
        tab.rows = grid.get("rowCount", tab.rows)
        tab.columns = grid.get("columnCount", tab.columns)
        tab.frozen_rows = grid.get("frozenRowCount", 0)
        for r, c in list(tab.cells):  # shrinking the grid drops what falls outside
            if r >= tab.rows or c >= tab.columns:
                del tab.cells[(r, c)]
        return {}

    def _append_dimension(self, book: Spreadsheet, body: JSON, where: str) -> JSON:
        tab = book.by_id(body.get("sheetId", 0), where)
        length = int(body.get("length", 0))
        if length <= 0:
            raise ApiError(400, f"Invalid {where}: length must be positive")
        if body.get("dimension") == "COLUMNS":
            tab.columns += length
        elif body.get("dimension") == "ROWS":
            tab.rows += length
        else:
            raise ApiError(400, f"Invalid {where}: dimension must be ROWS or COLUMNS")
        return {}

    def _grid_range(self, book: Spreadsheet, grid: JSON, where: str) -> tuple[Tab, Box]:
        tab = book.by_id(grid.get("sheetId", 0), where)
        box = Box(
            grid.get("startRowIndex", 0),
            grid.get("startColumnIndex", 0),
            grid.get("endRowIndex"),
            grid.get("endColumnIndex"),
        )
        self._check_grid(tab, box, where)
        return tab, box

    def _check_grid(self, tab: Tab, box: Box, where: str) -> None:
        r1 = tab.rows if box.r1 is None else box.r1
        c1 = tab.columns if box.c1 is None else box.c1
        if (
            min(box.r0, box.c0) < 0
            or r1 > tab.rows
            or c1 > tab.columns
            or box.r0 > r1
            or box.c0 > c1
        ):
            raise ApiError(
                400,
                f"Invalid {where}: Range ({tab.a1(box)}) exceeds grid limits. "
                f"Max rows: {tab.rows}, max columns: {tab.columns}",
            )

    def _repeat_cell(self, book: Spreadsheet, body: JSON, where: str) -> JSON:
        fields = body.get("fields")
        if not fields:
            raise ApiError(400, f"Invalid {where}: At least one field must be specified.")
        tab, box = self._grid_range(book, body.get("range", {}), where)
        mask = _mask(fields)
        source = body.get("cell", {})
        for rc in self._cells_of(tab, box):
            cell = tab.cells.setdefault(rc, {})
            _copy_masked(cell, source, mask)
            if not cell:
                del tab.cells[rc]
        return {}

    def _update_cells(self, book: Spreadsheet, body: JSON, where: str) -> JSON:
        fields = body.get("fields")
        if not fields:
            raise ApiError(400, f"Invalid {where}: At least one field must be specified.")
        mask = _mask(fields)
        rows = body.get("rows", [])
        if "start" in body:
            start = body["start"]
            tab = book.by_id(start.get("sheetId", 0), where)
            r0, c0 = start.get("rowIndex", 0), start.get("columnIndex", 0)
            width = max((len(r.get("values", [])) for r in rows), default=0)
            self._check_grid(tab, Box(r0, c0, r0 + len(rows), c0 + width), where)
            targets = [
                ((r0 + i, c0 + j), cell)
                for i, row in enumerate(rows)
                for j, cell in enumerate(row.get("values", []))
            ]
        elif "range" in body:
            tab, box = self._grid_range(book, body["range"], where)
            # Every cell of the range is set; cells with no data given are cleared.
            given = {
                (box.r0 + i, box.c0 + j): cell
                for i, row in enumerate(rows)
                for j, cell in enumerate(row.get("values", []))
            }
            r1 = tab.rows if box.r1 is None else box.r1
            c1 = tab.columns if box.c1 is None else box.c1
            if any(not (r < r1 and c < c1) for r, c in given):
                raise ApiError(400, f"Invalid {where}: the rows do not fit in the range")
            cleared = {rc: {} for rc in self._cells_of(tab, box) if rc not in given}
            targets = list(given.items()) + list(cleared.items())
        else:
            raise ApiError(400, f"Invalid {where}: one of start or range must be set")
        for rc, source in targets:
            entered = (source or {}).get("userEnteredValue", {})
            _check_length(str(entered.get("stringValue", entered.get("formulaValue", ""))))
            cell = tab.cells.setdefault(rc, {})
            _copy_masked(cell, source or {}, mask)
            if not cell:
                del tab.cells[rc]
        return {}

    def _cells_of(self, tab: Tab, box: Box) -> Iterator[tuple[int, int]]:
        r1 = tab.rows if box.r1 is None else min(box.r1, tab.rows)
        c1 = tab.columns if box.c1 is None else min(box.c1, tab.columns)
        if (r1 - box.r0) * (c1 - box.c0) > 4 * len(tab.cells) + 10_000:
            # Large range over a sparse grid: visit only stored cells (same result).
            for r, c in list(tab.cells):
                if box.r0 <= r < r1 and box.c0 <= c < c1:
                    yield r, c
            return
        for r in range(box.r0, r1):
            for c in range(box.c0, c1):
                yield r, c


_REQUESTS: dict[str, Callable[[SheetsEmulator, Spreadsheet, JSON, str], JSON]] = {
    "addSheet": SheetsEmulator._add_sheet,
    "deleteSheet": SheetsEmulator._delete_sheet,
    "updateSheetProperties": SheetsEmulator._update_sheet_properties,
    "appendDimension": SheetsEmulator._append_dimension,
    "repeatCell": SheetsEmulator._repeat_cell,
    "updateCells": SheetsEmulator._update_cells,
}


def _deep_merge(target: JSON, source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value


def _mask(text: str) -> dict[str, Any]:
    try:
        return google.parse_fields(text)
    except ValueError as err:
        raise ApiError(400, str(err)) from None


def _input_option(option: str | None) -> str:
    if option is None:
        raise ApiError(400, "'valueInputOption' is required but not specified")
    if option not in ("RAW", "USER_ENTERED"):
        raise ApiError(400, f"Invalid value at 'value_input_option' ({option})")
    return option


def _json_body(body: bytes) -> JSON:
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(400, "Invalid JSON payload received.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "Invalid JSON payload received. Expected an object.")
    return data


def _default_message(status: int) -> str:
    return {
        429: _QUOTA_MESSAGE,
        500: "Internal error encountered.",
        503: "The service is currently unavailable.",
        401: "Request had invalid authentication credentials.",
        403: "The caller does not have permission",
        404: "Requested entity was not found.",
    }.get(status, HTTPStatus(status).phrase)


_ROUTE = re.compile(r"/v4/spreadsheets/([A-Za-z0-9_-]+)(.*)", re.DOTALL)
_NOT_FOUND_HTML = (
    "<!DOCTYPE html><html><title>Error 404 (Not Found)!!1</title>"
    "<p>The requested URL was not found on this server.</p></html>"
)


def _route(method: str, path: str) -> tuple[str, JSON]:
    """(kind, {key, range}) for a raw (still percent-encoded) path."""
    m = _ROUTE.fullmatch(path)
    if not m:
        return "unknown", {}
    key, rest = m.group(1), m.group(2)
    route: JSON = {"key": key}
    table = {
        ("GET", ""): "spreadsheets.get",
        ("POST", ":batchUpdate"): "spreadsheets.batchUpdate",
        ("GET", "/values:batchGet"): "values.batchGet",
        ("POST", "/values:batchUpdate"): "values.batchUpdate",
        ("POST", "/values:batchClear"): "values.batchClear",
    }
    if (method, rest) in table:
        return table[(method, rest)], route
    if rest.startswith("/values/"):
        encoded = rest[len("/values/") :]
        for suffix, kind in ((":append", "values.append"), (":clear", "values.clear")):
            if method == "POST" and encoded.endswith(suffix):
                route["range"] = unquote(encoded[: -len(suffix)])
                return kind, route
        route["range"] = unquote(encoded)
        if method == "GET":
            return "values.get", route
        if method == "PUT":
            return "values.update", route
    return "unknown", {}


class _Handler(BaseHTTPRequestHandler):
    """Bounded: one request per call, keep-alive connections time out after 10 s idle."""

    emulator: SheetsEmulator
    protocol_version = "HTTP/1.1"
    timeout = 10
    disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (~40 ms)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, payload = self.emulator.handle(self.command, self.path, self.headers, body)
        except Unanswered as fault:
            fault.leave_unanswered(self, self.emulator.faults.hang_s)
            return
        if isinstance(payload, str):
            data, ctype = payload.encode(), "text/html; charset=UTF-8"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json; charset=UTF-8"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for key, value in self.emulator.answer_headers().items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `log`
        pass
