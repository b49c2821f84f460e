"""The Google Sheet adapter: reads and writes the report spreadsheet (contract §4).

`SheetReport` reads the spreadsheet (metadata + one `values.batchGet`) and writes it
(one `batchUpdate`, atomic on Google's side), through `sheets_http.SheetsClient`, built
on first use so that a run that never reads the sheet never imports gspread. What is
written comes from the pure modules: `sheet_layout`, `row_matching`, `sheet_contents`,
`sheet_requests`. `open_report` takes explicit arguments; `cli` builds it from settings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import google
from .catalog import Catalog
from .errors import ConfigError, ServiceError
from .row_matching import Grid
from .sheet_contents import Report, build, stamp_text
from .sheet_layout import TODAYS_LAYOUT, Layout, quote_tab
from .sheet_requests import (
    SheetState,
    TabInfo,
    in_sync,
    missing_copies_tab,
    stamp_requests,
    write_requests,
)

if TYPE_CHECKING:
    from google.oauth2 import service_account

    from .sheets_http import SheetsClient

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/spreadsheets"
_METADATA_FIELDS = "sheets.properties(sheetId,title,gridProperties(rowCount,columnCount))"


@dataclass(frozen=True)
class SheetPlan:
    """The report and what the sheet holds now; `needs_write` answers "would the sheet change?"."""

    report: Report
    state: SheetState
    in_sync: bool

    def needs_write(self, last_digest: str | None) -> bool:
        """False only if the last successful run wrote this report and the sheet still shows it."""
        return not self.in_sync or last_digest != self.report.digest

    def summary(self, layout: Layout, last_digest: str | None) -> dict[str, Any]:
        """What a run would do to the sheet, as plain data (for `--dry-run`, `--json`, `check`)."""
        titles = (layout.errors_tab, layout.not_found_tab, layout.copies_tab)
        return {
            "would_write": self.needs_write(last_digest),
            "missing_tabs": [t for t in titles if self.state.tab(t) is None],
            "counts": len(self.report.counts),
            "stale": len(self.report.stale),
            "error_rows": len(self.report.errors),
            "not_found": list(self.report.not_found),
            "ambiguous": list(self.report.ambiguous),
        }


@dataclass(frozen=True)
class SheetResult:
    """What `publish` did; `block()` is contract §8's `sheet` block."""

    written: bool
    digest: str
    not_found: tuple[str, ...]
    ambiguous: tuple[str, ...]
    api_calls: int

    def block(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "not_found": list(self.not_found),
            "ambiguous": list(self.ambiguous),
        }


class SheetReport:
    """Reads and writes the report spreadsheet `key` in a constant number of API calls.

    `plan` costs 2 calls (metadata, one `values.batchGet`; 1 when no report tab
    exists yet), `publish` one more `batchUpdate` when something changed."""

    def __init__(
        self,
        client: SheetsClient | Callable[[], SheetsClient],
        key: str,
        layout: Layout = TODAYS_LAYOUT,
        *,
        tz: str = "America/New_York",
        who: str = "the service account",
    ) -> None:
        # A factory defers gspread's import to the first call that needs the sheet.
        self._client = None if callable(client) else client
        self._make_client = client if callable(client) else None
        self.key = key
        self.layout = layout
        self.tz = tz
        self.who = who

    @property
    def client(self) -> SheetsClient:
        """The HTTP client, built on first use."""
        if self._client is None:
            assert self._make_client is not None
            self._client = self._make_client()
        return self._client

    @property
    def api_calls(self) -> int:
        """HTTP requests sent to the Sheets API so far (retries included)."""
        return 0 if self._client is None else self._client.calls

    def read(self) -> SheetState:
        """Every tab's id and size, and the values of the report's three tabs."""
        meta = self._call(
            "read the spreadsheet",
            lambda: self.client.fetch_sheet_metadata(
                self.key,
                params={"fields": _METADATA_FIELDS},
            ),
        )
        tabs = tuple(
            TabInfo(
                p.get("sheetId", 0),  # proto3 JSON may omit a 0
                p.get("title", ""),
                p.get("gridProperties", {}).get("rowCount", 0),
                p.get("gridProperties", {}).get("columnCount", 0),
            )
            for p in (s.get("properties", {}) for s in meta.get("sheets", []))
        )
        state = SheetState(tabs=tabs)
        wanted = {
            name: state.tab(getattr(self.layout, name))
            for name in ("errors_tab", "not_found_tab", "copies_tab")
        }
        present = {name: tab for name, tab in wanted.items() if tab is not None}
        grids: dict[str, Grid] = {}
        if present:
            reply = self._call(
                "read the report tabs",
                lambda: self.client.values_batch_get(
                    self.key,
                    [quote_tab(tab.title) for tab in present.values()],
                    params={"valueRenderOption": "UNFORMATTED_VALUE", "majorDimension": "ROWS"},
                ),
            )
            for name, value_range in zip(present, reply.get("valueRanges", []), strict=False):
                grids[name] = tuple(tuple(row) for row in value_range.get("values", []))
        return SheetState(
            tabs=tabs,
            errors=grids.get("errors_tab", ()),
            not_found=grids.get("not_found_tab", ()),
            copies=grids.get("copies_tab", ()),
        )

    def plan(self, catalog: Catalog) -> SheetPlan:
        """Read the sheet and compute the report; writes nothing (for `--dry-run` and `check`)."""
        started = time.monotonic()
        calls = self.api_calls
        state = self.read()
        if state.tab(self.layout.copies_tab) is None:
            raise ServiceError(
                missing_copies_tab(state, self.layout, f"spreadsheet {self.key} (SHEET_URL)")
            )
        report = build(catalog, state.copies, self.layout)
        plan = SheetPlan(report, state, in_sync(report, state, self.layout))
        log.info(
            "sheet: read %d tabs (%d rows in %r), %d rows found, %d not found, %d ambiguous "
            "in %.2f s (%d API calls)",
            len(state.tabs),
            len(state.copies),
            self.layout.copies_tab,
            len(report.counts),
            len(report.not_found),
            len(report.ambiguous),
            time.monotonic() - started,
            self.api_calls - calls,
        )
        for p in report.placements:
            log.debug("sheet: %s → rows %s (%s)", p.course, list(p.rows), p.tier or "not found")
        return plan

    def write(self, plan: SheetPlan, now: datetime) -> None:
        """Write `plan.report` and the time stamp in one atomic `batchUpdate`."""
        stamp = stamp_text(now, self.tz)
        body = {"requests": write_requests(plan.report, plan.state, self.layout, stamp)}
        self._call("write the report", lambda: self.client.batch_update(self.key, body))

    def publish(
        self,
        catalog: Catalog,
        last_digest: str | None,
        now: datetime,
        *,
        stamp_unchanged: bool = False,
    ) -> SheetResult:
        """Bring the sheet up to date with `catalog` (contract §4).

        Writes nothing when the report equals what the last successful run wrote
        (`last_digest`, from the state file) and the sheet still shows it; with
        `stamp_unchanged` the time stamp is refreshed then (one call). The caller keeps
        the returned `digest` in the state file only after this returns."""
        started = time.monotonic()
        calls = self.api_calls
        plan = self.plan(catalog)
        report = plan.report
        written = plan.needs_write(last_digest)
        if written:
            self.write(plan, now)
        elif stamp_unchanged:
            body = {"requests": stamp_requests(plan.state, self.layout, stamp_text(now, self.tz))}
            self._call("write the time stamp", lambda: self.client.batch_update(self.key, body))
        log.info(
            "sheet: %s: %d counts, %d stale, %d error rows, %d not found, %d ambiguous "
            "in %.2f s (%d API calls)",
            "written" if written else "unchanged, nothing written",
            len(report.counts),
            len(report.stale),
            len(report.errors),
            len(report.not_found),
            len(report.ambiguous),
            time.monotonic() - started,
            self.api_calls - calls,
        )
        return SheetResult(
            written=written,
            digest=report.digest,
            not_found=report.not_found,
            ambiguous=report.ambiguous,
            api_calls=self.api_calls - calls,
        )

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one API call; Google's answers become the tool's errors (never with secrets)."""
        sheet = f"spreadsheet {self.key} (SHEET_URL)"
        try:
            return fn()
        except google.CallFailed as failed:
            from google.auth import exceptions as auth_exceptions
            from gspread.exceptions import APIError

            if isinstance(failed.cause, auth_exceptions.RefreshError):
                raise google.credentials_rejected(
                    failed.cause, "Sheets", self.who, (SCOPE,)
                ) from None
            if not isinstance(failed.cause, APIError):
                raise ServiceError(
                    f"Sheets API unreachable while trying to {what} ({type(failed.cause).__name__})"
                ) from None
            err = failed.cause
            code, message = err.code, str(err.error.get("message", ""))[:300]
            if code == 404:
                raise ServiceError(
                    f"Sheets: {sheet} was not found: check SHEET_URL, and that the sheet "
                    f"is shared with {self.who}"
                ) from None
            if code == 403:
                raise ServiceError(
                    f"Sheets: {sheet} is not shared with {self.who} (it needs edit access): "
                    f"{message}"
                ) from None
            if code == 401:
                raise ConfigError(f"Sheets API rejected the credentials: {message}") from None
            raise ServiceError(
                f"Sheets: could not {what} of {sheet}: HTTP {code}: {message}"
            ) from None


def open_report(
    key: str,
    *,
    endpoint: str = "",
    credentials: service_account.Credentials | None = None,
    layout: Layout = TODAYS_LAYOUT,
    tz: str = "America/New_York",
    sleep: Callable[[float], None] = time.sleep,
    retries: int = google.MAX_RETRIES,
    who: str = "",
    deadline: google.Deadline = google.NO_DEADLINE,
    timeout: float = google.REQUEST_TIMEOUT_S,
) -> SheetReport:
    """A `SheetReport` for spreadsheet `key`: with `credentials` (OAuth), else anonymous;
    requests go to `endpoint` when set (an emulator), else to Google. `who` names the
    account in "not shared with ..." errors (default: the key's e-mail). Makes no call,
    and builds the HTTP client only when the sheet is first read."""
    if credentials is not None:
        who = who or credentials.service_account_email
    else:
        who = who or (f"anonymous access at {endpoint}" if endpoint else "anonymous access")

    def client() -> SheetsClient:
        from .sheets_http import sheets_client

        return sheets_client(
            endpoint, credentials, sleep=sleep, retries=retries, deadline=deadline, timeout=timeout
        )

    return SheetReport(client, key, layout, tz=tz, who=who)
