"""The Google Sheet adapter (contract §4): reads the report spreadsheet and writes it.

A plan costs two calls, gspread's `fetch_sheet_metadata` (every tab's id and size) and
one `values_batch_get` (the report's three tabs); a write is one `batch_update`, atomic
on Google's side. These are gspread's own `HTTPClient` methods: its `Spreadsheet` would
fetch the metadata once more in its constructor, and its `BackOffHTTPClient` retries a
lasting 429 forever. Each call goes through `google.Transport` instead (one pacer,
`Retry-After`, bounded retries, the run's deadline). What is written comes from
`sheet_contents`. gspread is imported on the first call: an unchanged run never loads it.
"""

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
from .errors import ConfigError, ServiceError
from .sheet_contents import TODAYS_LAYOUT, Layout, Report, SheetState

if TYPE_CHECKING:
    import requests
    from google.oauth2 import service_account
    from gspread.http_client import HTTPClient

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/spreadsheets"
GOOGLE_ROOT = "https://sheets.googleapis.com"  # hard-coded in gspread
_METADATA_FIELDS = "sheets.properties(sheetId,title,gridProperties(rowCount,columnCount))"
_TABS = ("errors_tab", "not_found_tab", "copies_tab")


@dataclass(frozen=True)
class SheetPlan:
    """The report and what the sheet holds now; `needs_write` answers "would the sheet change?"."""

    report: Report
    state: SheetState
    in_sync: bool

    def needs_write(self, last_digest: str | None) -> bool:
        """False only if the last successful run wrote this report and the sheet still shows it."""
        return not self.in_sync or last_digest != self.report.digest


@dataclass(frozen=True)
class SheetResult:
    """What `publish` did; `block()` is contract §8's `sheet` block."""

    written: bool
    digest: str
    not_found: tuple[str, ...]
    ambiguous: tuple[str, ...]
    api_calls: int

    def block(self) -> dict[str, Any]:
        """Contract §8's `sheet` block."""
        return {
            "written": self.written,
            "not_found": list(self.not_found),
            "ambiguous": list(self.ambiguous),
        }


def session(endpoint: str, credentials: service_account.Credentials | None) -> requests.Session:
    """A session with `credentials` (OAuth), else anonymous, that sends gspread's
    `https://sheets.googleapis.com` URLs to `endpoint` when set (an emulator, reached
    without the environment's proxy), else to Google. Imports `requests` when called."""
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
    """Reads and writes the report spreadsheet `key` in a constant number of API calls.

    `plan` costs 2 calls (metadata, one `values_batch_get`; 1 when no report tab
    exists yet), `publish` one more `batch_update` when something changed. Made with
    `credentials` (OAuth), else anonymous; requests go to `endpoint` when set (an
    emulator), else to Google. `who` names the account in "not shared with ..." errors
    (default: the key's e-mail). Makes no call until the sheet is first read."""

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
        self.calls = google.ApiCalls()
        self.transport = google.Transport(
            "sheets",
            pacer=google.Pacer(clock=google.Clock(sleep)),
            retries=retries,
            deadline=deadline,
            logger=log,
        )
        self._http: HTTPClient | None = None

    @property
    def api_calls(self) -> int:
        """HTTP requests sent to the Sheets API so far (retries included)."""
        return self.calls.requests

    def read(self) -> SheetState:
        """Every tab's id and size, and the values of the report's three tabs."""
        meta = self._call(
            "read the spreadsheet",
            lambda http: http.fetch_sheet_metadata(self.key, params={"fields": _METADATA_FIELDS}),
        )
        state = SheetState(
            tabs=tuple(
                contents.TabInfo(
                    p.get("sheetId", 0),  # proto3 JSON may omit a 0
                    p.get("title", ""),
                    p.get("gridProperties", {}).get("rowCount", 0),
                    p.get("gridProperties", {}).get("columnCount", 0),
                )
                for p in (s.get("properties", {}) for s in meta.get("sheets", []))
            )
        )
        present = {name: tab for name in _TABS if (tab := state.tab(getattr(self.layout, name)))}
        if not present:
            return state
        ranges = [contents.quote_tab(tab.title) for tab in present.values()]
        params = {"valueRenderOption": "UNFORMATTED_VALUE", "majorDimension": "ROWS"}
        reply = self._call(
            "read the report tabs",
            lambda http: http.values_batch_get(self.key, ranges, params=params),
        )
        grids = {
            name.removesuffix("_tab"): tuple(tuple(row) for row in values.get("values", []))
            for name, values in zip(present, reply.get("valueRanges", []), strict=False)
        }
        return SheetState(tabs=state.tabs, **grids)

    def plan(self, catalog: Catalog) -> SheetPlan:
        """Read the sheet and compute the report; writes nothing (for `--dry-run` and `check`)."""
        state = self.read()
        contents.copies_tab(state, self.layout, f"spreadsheet {self.key} (SHEET_URL)")
        report = contents.build(catalog, state.copies, self.layout)
        for p in report.placements:
            log.debug("sheet: %s → rows %s (%s)", p.course, list(p.rows), p.tier or "not found")
        return SheetPlan(report, state, contents.in_sync(report, state, self.layout))

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
        started, calls = time.monotonic(), self.api_calls
        plan = self.plan(catalog)
        report, stamp = plan.report, contents.stamp_text(now, self.tz)
        written = plan.needs_write(last_digest)
        if written or stamp_unchanged:
            body = {
                "requests": contents.write_requests(report, plan.state, self.layout, stamp)
                if written
                else contents.stamp_requests(plan.state, self.layout, stamp)
            }
            self._call("write the report", lambda http: http.batch_update(self.key, body))
        result = SheetResult(
            written, report.digest, report.not_found, report.ambiguous, self.api_calls - calls
        )
        log.info(
            "sheet: %s: %d counts, %d stale, %d error rows, %d not found, %d ambiguous "
            "in %.2f s (%d API calls)",
            "written" if written else "unchanged, nothing written",
            *map(
                len,
                (report.counts, report.stale, report.errors, result.not_found, result.ambiguous),
            ),
            time.monotonic() - started,
            result.api_calls,
        )
        return result

    def _call(self, what: str, fn: Callable[[HTTPClient], Any]) -> Any:
        """`fn(gspread's client)` through the transport; Google's answers become the tool's
        errors (never with secrets)."""
        if self._http is None:
            from gspread.http_client import HTTPClient

            made = session(self.endpoint, self.credentials)
            self._http = HTTPClient(auth=None, session=made)  # type: ignore[arg-type]
        http = self._http

        def once() -> Any:
            self.calls.requests += 1  # one HTTP request: what Google's quota counts
            # No request outlives the run: its timeout ends at the run's deadline.
            http.set_timeout(min(self.timeout, max(0.1, self.transport.deadline.left())))
            return fn(http)

        try:
            return self.transport.call(what, once)
        except google.CallFailed as failed:
            raise self._error(what, failed.cause) from None

    def _error(self, what: str, cause: BaseException) -> Exception:
        """The tool's error for a call that failed with `cause`."""
        from google.auth import exceptions as auth_exceptions
        from gspread.exceptions import APIError

        sheet = f"spreadsheet {self.key} (SHEET_URL)"
        if isinstance(cause, auth_exceptions.RefreshError):
            return google.credentials_rejected(cause, "Sheets", self.who, (SCOPE,))
        if not isinstance(cause, APIError):
            return ServiceError(
                f"Sheets API unreachable while trying to {what} ({type(cause).__name__})"
            )
        code, message = cause.code, str(cause.error.get("message", ""))[:300]
        if code == 404:
            return ServiceError(
                f"Sheets: {sheet} was not found: check SHEET_URL, and that the sheet "
                f"is shared with {self.who}"
            )
        if code == 403:
            return ServiceError(
                f"Sheets: {sheet} is not shared with {self.who} (it needs edit access): {message}"
            )
        if code == 401:
            return ConfigError(f"Sheets API rejected the credentials: {message}")
        return ServiceError(f"Sheets: could not {what} of {sheet}: HTTP {code}: {message}")


open_report = SheetReport  # what callers say: `open_report(key, endpoint=…, …)`
