"""gspread's HTTP client for the Sheets adapter, every request sent through
`google.Transport` (one classification of Google's answers, one pacer, bounded retries).

Imported only when the sheet is actually read or written: an unchanged run, which only
asks Drive for the spreadsheet's version, never loads gspread or requests."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests
from google.auth.transport import requests as google_requests
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account
from gspread.http_client import HTTPClient

from . import google

log = logging.getLogger("backtest_compilation.sheet")

GOOGLE_ROOT = "https://sheets.googleapis.com"


class SheetsClient(HTTPClient):
    """gspread's HTTP client, each request sent through `google.Transport` (one
    classification of Google's answers, one pacer, `Retry-After`, jittered backoff,
    bounded retries and time). gspread's `BackOffHTTPClient` is not used: it retries a
    lasting 429 forever. `calls` counts every HTTP request sent, retries included: that
    is what Google's quota counts."""

    def __init__(
        self,
        session: requests.Session,
        *,
        retries: int = google.MAX_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = google.REQUEST_TIMEOUT_S,
        call_budget_s: float = google.CALL_BUDGET_S,
        deadline: google.Deadline = google.NO_DEADLINE,
    ) -> None:
        super().__init__(auth=None, session=session)  # type: ignore[arg-type]
        # gspread passes `self.timeout` to every `requests` call.
        self.request_timeout = timeout
        self.deadline = deadline
        self.set_timeout(timeout)
        self.counter = google.ApiCalls()
        self.transport = google.Transport(
            "sheets",
            pacer=google.Pacer(clock=google.Clock(sleep)),
            calls=self.counter,
            retries=retries,
            call_budget_s=call_budget_s,
            deadline=deadline,
            logger=log,
        )

    @property
    def calls(self) -> int:
        return self.counter.requests

    @property
    def retried(self) -> int:
        return self.counter.retries

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        def once() -> requests.Response:
            self.counter.request()
            # No request outlives the run: its timeout ends at the run's deadline.
            self.set_timeout(min(self.request_timeout, max(0.1, self.deadline.left())))
            return super(SheetsClient, self).request(*args, **kwargs)

        what = f"{kwargs.get('method') or (args[0] if args else '')} request".strip()
        return self.transport.call(what, once)


class _Redirect:
    """Sends gspread's hard-coded `https://sheets.googleapis.com` URLs to `endpoint`."""

    endpoint = ""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        if self.endpoint and url.startswith(GOOGLE_ROOT):
            url = self.endpoint + url[len(GOOGLE_ROOT) :]
        return super().request(method, url, *args, **kwargs)  # type: ignore[misc]


class _AnonymousSession(_Redirect, requests.Session):
    pass


class _AuthorizedSession(_Redirect, AuthorizedSession):
    pass


def sheets_client(
    endpoint: str,
    credentials: service_account.Credentials | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    retries: int = google.MAX_RETRIES,
    deadline: google.Deadline = google.NO_DEADLINE,
    timeout: float = google.REQUEST_TIMEOUT_S,
) -> SheetsClient:
    """A client with `credentials` (OAuth), else anonymous; requests go to `endpoint`
    when set (an emulator), else to Google."""
    local = google.direct(endpoint)
    if credentials is not None:
        token_session = requests.Session()
        token_session.trust_env = not local
        session: requests.Session = _AuthorizedSession(
            credentials, auth_request=google_requests.Request(token_session)
        )
    else:
        session = _AnonymousSession()
    session.trust_env = not local
    session.endpoint = endpoint.rstrip("/")  # type: ignore[attr-defined]
    return SheetsClient(session, sleep=sleep, retries=retries, deadline=deadline, timeout=timeout)
