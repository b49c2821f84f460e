"""The Google Sheet adapter (contract §4): reading is gspread's `fetch_sheet_metadata` and
`values_batch_get`, writing one `batch_update` (atomic at Google), through `google.Transport`.
gspread is imported on the first call, which an unchanged run never makes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import google
from . import sheet_contents as contents
from .catalog import Catalog
from .errors import ServiceError
from .sheet_contents import TODAYS_LAYOUT, Layout, Report, Tab

if TYPE_CHECKING:
    import requests
    from google.oauth2 import service_account
    from gspread.http_client import HTTPClient

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/spreadsheets"
GOOGLE_ROOT = "https://sheets.googleapis.com"  # hard-coded in gspread


@dataclass(frozen=True)
class SheetPlan:
    """The report, and what the sheet holds now."""

    report: Report
    tabs: tuple[Tab, ...]  # the spreadsheet now
    in_sync: bool  # the sheet shows the report's values

    def needs_write(self, last_digest: str | None) -> bool:
        """False only if the last successful run wrote this report and the sheet still shows it."""
        return not self.in_sync or last_digest != self.report.digest


@dataclass(frozen=True)
class SheetResult:
    """What `publish` did."""

    written: bool
    digest: str
    not_found: tuple[str, ...]
    ambiguous: tuple[str, ...]
    api_calls: int

    def block(self) -> dict[str, Any]:
        """Contract §8's `sheet` block."""
        ambiguous, not_found = list(self.ambiguous), list(self.not_found)
        return {"written": self.written, "not_found": not_found, "ambiguous": ambiguous}


def session(endpoint: str, credentials: service_account.Credentials | None) -> requests.Session:
    """A session with `credentials` (else anonymous) that sends gspread's Google URLs to
    `endpoint` when set (an emulator, reached without the environment's proxy)."""
    import requests
    from google.auth.credentials import AnonymousCredentials
    from google.auth.transport import requests as google_requests

    class Redirected(google_requests.AuthorizedSession):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if endpoint and url.startswith(GOOGLE_ROOT):
                url = endpoint.rstrip("/") + url[len(GOOGLE_ROOT) :]
            return super().request(method, url, *args, **kwargs)

    tokens = requests.Session()
    made = Redirected(
        credentials or AnonymousCredentials(),
        # Anonymous credentials cannot be refreshed: a 401 is the answer, not a retry.
        refresh_status_codes=() if credentials is None else (401,),
        auth_request=google_requests.Request(tokens),
    )
    made.trust_env = tokens.trust_env = not google.direct(endpoint)
    return made


class SheetReport:
    """The spreadsheet `key` at Google (or `endpoint`), with `credentials` (else anonymous);
    `who` is named in "not shared with" errors."""

    def __init__(
        self,
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
    ) -> None:
        self.key, self.layout, self.tz = key, layout, tz
        self.endpoint, self.credentials, self.timeout = endpoint, credentials, timeout
        if credentials is not None:
            who = who or credentials.service_account_email
        self.who = who or "anonymous access" + (f" at {endpoint}" if endpoint else "")
        self.requests = 0  # HTTP requests sent (retries count), contract §8
        pacer = google.Pacer(clock=google.Clock(sleep))
        self.transport = google.Transport(
            "sheets", pacer=pacer, retries=retries, deadline=deadline, logger=log
        )
        self.http: HTTPClient | None = None

    @property
    def api_calls(self) -> int:
        """HTTP requests sent to the Sheets API so far (retries included)."""
        return self.requests

    def read(self) -> tuple[Tab, ...]:
        """Every tab's id and size, and the values of the report's three tabs."""
        fields = {"fields": "sheets.properties(sheetId,title,gridProperties(rowCount,columnCount))"}
        meta = self._call(
            "read the spreadsheet", lambda h: h.fetch_sheet_metadata(self.key, fields)
        )
        tabs = [
            # proto3 JSON leaves out a 0 (the first tab's id), and a chart sheet has no grid.
            Tab(p.get("sheetId", 0), p["title"], g.get("rowCount", 0), g.get("columnCount", 0))
            for p in (s["properties"] for s in meta.get("sheets", []))
            for g in [p.get("gridProperties", {})]
        ]
        layout = self.layout
        names = {n.casefold() for n in (layout.errors_tab, layout.not_found_tab, layout.copies_tab)}
        ours = [t.title for t in tabs if t.title.casefold() in names]
        if not ours:
            return tuple(tabs)
        ranges = ["'" + title.replace("'", "''") + "'" for title in ours]  # whole tabs
        params = {"valueRenderOption": "UNFORMATTED_VALUE"}
        reply = self._call(
            "read the report tabs", lambda h: h.values_batch_get(self.key, ranges, params)
        )
        found = (r.get("values", []) for r in reply.get("valueRanges", []))
        values = dict(zip(ours, found, strict=True))
        return tuple(Tab(*t[:4], values.get(t.title, ())) for t in tabs)

    def plan(self, catalog: Catalog) -> SheetPlan:
        """Read the sheet and compute the report; writes nothing (for `--dry-run` and `check`)."""
        tabs = self.read()
        copies = contents.copies_tab(tabs, self.layout, f"spreadsheet {self.key} (SHEET_URL)")
        report = contents.build(catalog, copies.values, self.layout)
        return SheetPlan(report, tabs, contents.in_sync(report, tabs))

    def publish(
        self,
        catalog: Catalog,
        last_digest: str | None,
        now: datetime,
        *,
        stamp_unchanged: bool = False,
    ) -> SheetResult:
        """Bring the sheet up to date with `catalog`: nothing is written when the last run
        wrote this report (`last_digest`) and the sheet still shows it, except the time stamp
        with `stamp_unchanged`. The caller keeps the returned `digest` once this returns."""
        started, calls = time.monotonic(), self.api_calls
        plan = self.plan(catalog)
        report, stamp = plan.report, contents.stamp_text(now, self.tz)
        written = plan.needs_write(last_digest)
        requests = contents.write_requests(report, plan.tabs, stamp) if written else []
        if stamp_unchanged and not written:
            requests = contents.stamp_requests(plan.tabs, self.layout, stamp)
        if requests:
            body = {"requests": requests}
            self._call("write the report", lambda h: h.batch_update(self.key, body))
        result = SheetResult(
            written, report.digest, report.not_found, report.ambiguous, self.api_calls - calls
        )
        log.info(
            "sheet: %s: %d counts, %d stale, %d not found, %d ambiguous in %.2f s (%d API calls)",
            "written" if written else "unchanged, nothing written",
            *map(len, (report.counts, report.stale, report.not_found, report.ambiguous)),
            time.monotonic() - started,
            result.api_calls,
        )
        return result

    def _call(self, what: str, fn: Callable[[HTTPClient], Any]) -> Any:
        """`fn(gspread's client)` through the transport; a failure becomes our error."""
        if self.http is None:
            from gspread.http_client import HTTPClient

            made = session(self.endpoint, self.credentials)
            self.http = HTTPClient(auth=None, session=made)  # type: ignore[arg-type]
        http = self.http

        def once() -> Any:
            self.requests += 1  # one HTTP request: what Google's quota counts
            # No request outlives the run: its timeout ends at the run's deadline.
            http.set_timeout(min(self.timeout, max(0.1, self.transport.deadline.left())))
            return fn(http)

        try:
            return self.transport.call(what, once)
        except google.CallFailed as failed:
            raise self._error(what, failed) from None

    def _error(self, what: str, failed: google.CallFailed) -> Exception:
        """The tool's error for a call Google refused or never answered (no secrets)."""
        status, message = failed.answer.status, failed.answer.message
        cause = type(failed.cause).__name__
        if status == 401:
            return google.credentials_rejected(failed.cause, "Sheets", self.who, (SCOPE,))
        sheet = f"spreadsheet {self.key} (SHEET_URL)"
        return ServiceError(
            {
                0: f"Sheets API unreachable while trying to {what} ({cause})",
                403: f"Sheets: {sheet} is not shared with {self.who} (it needs edit access): "
                f"{message}",
                404: f"Sheets: {sheet} was not found: check SHEET_URL, and that the sheet is "
                f"shared with {self.who}",
            }.get(status, f"Sheets: could not {what} of {sheet}: HTTP {message}")
        )


open_report = SheetReport  # what callers say: `open_report(key, endpoint=…, …)`
