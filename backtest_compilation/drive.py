"""`DriveSource`: the backtest drive read from Google Drive v3, completely and in few calls.

- Shared drive root: the whole drive in pages of 1,000 (`corpora=drive`), only the
  fields needed, assembled into the tree locally.
- Ordinary folder root: breadth-first, many parents OR-ed into one query.
- Later runs: the changes feed from the saved page token, applied to the saved
  snapshot; a full listing when the token is missing or rejected, when asked, and
  every `FULL_RESCAN_HOURS`.
- Renames in batches of at most 100 (`BatchHttpRequest`).

Every HTTP call goes through one counting transport and one retry policy: the client
library's `execute(num_retries=…)` (429, 5xx, 403 rate-limit reasons, dropped
connections, exponential backoff with jitter) with its sleep replaced by a `Pacer`
that also honours `Retry-After`. Batches are retried part by part by the same pacer.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import google.auth.exceptions
import httplib2
from google.auth.credentials import AnonymousCredentials, Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest, HttpRequest, _should_retry_response

from .catalog import Category, Problem, Rename, RenameResult
from .errors import ConfigError, ServiceError
from .settings import Settings
from .tree import FOLDER_MIME, Item, Node, assemble, flatten

log = logging.getLogger(__name__)

GOOGLE_ROOT = "https://www.googleapis.com"
# Listing needs drives.get (drive or drive.readonly); renaming needs files.update
# (drive or drive.metadata). Together these are narrower than the full `drive` scope.
SCOPE_READ = "https://www.googleapis.com/auth/drive.readonly"
SCOPE_RENAME = "https://www.googleapis.com/auth/drive.metadata"
PAGE_SIZE = 1000
BATCH_LIMIT = 100
RENAME_WORKERS = 4  # batches in flight at once
# Google documents no limit on `q`; field reports show failures past ~120 OR-ed parents
# ("The query is too complex", 413). rclone groups 50; so do we, and cap the length.
MAX_PARENTS_PER_QUERY = 50
MAX_QUERY_CHARS = 4000
NUM_RETRIES = 6
FILE_FIELDS = "id,name,mimeType,parents"
LIST_FIELDS = f"nextPageToken,incompleteSearch,files({FILE_FIELDS})"
CHANGE_FIELDS = (
    "nextPageToken,newStartPageToken,"
    f"changes(changeType,fileId,removed,file({FILE_FIELDS},trashed))"
)
SNAPSHOT_VERSION = 1


# ---------------------------------------------------------------- plain data


@dataclass(frozen=True)
class DriveSnapshot:
    """What one read of the drive saw, persisted between runs (by the state module).

    `drive_id` is the shared drive holding the root (the root itself for a shared-drive
    root), `None` for a folder in My Drive. `listed_at` is the last *full* listing.
    """

    root_id: str
    root_name: str
    drive_id: str | None
    is_shared_drive: bool
    items: tuple[Item, ...]
    page_token: str | None
    listed_at: datetime

    def tree(self) -> Node:
        """The tree these items make (`tree.assemble`)."""
        return assemble(self.root_id, self.root_name, self.items)

    def to_json(self) -> dict[str, Any]:
        """A plain JSON-able dict (`from_json` reads it back)."""
        return {
            "version": SNAPSHOT_VERSION,
            "root_id": self.root_id,
            "root_name": self.root_name,
            "drive_id": self.drive_id,
            "is_shared_drive": self.is_shared_drive,
            "page_token": self.page_token,
            "listed_at": self.listed_at.isoformat(),
            "items": [[i.id, i.name, i.mime_type, i.parent] for i in self.items],
        }

    @classmethod
    def from_json(cls, data: Any) -> DriveSnapshot:
        """The snapshot `to_json` wrote; ValueError naming what is wrong otherwise."""
        if not isinstance(data, Mapping):
            raise ValueError("drive snapshot is not a JSON object")
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"drive snapshot version {data.get('version')!r} is not supported")

        def text(key: str, optional: bool = False) -> Any:
            value = data.get(key)
            if value is None and optional:
                return None
            if not isinstance(value, str):
                raise ValueError(f"drive snapshot field {key!r} must be a string")
            return value

        try:
            listed_at = datetime.fromisoformat(text("listed_at"))
        except ValueError:
            raise ValueError("drive snapshot field 'listed_at' is not an ISO time") from None
        if listed_at.tzinfo is None:
            raise ValueError("drive snapshot field 'listed_at' has no time zone")
        shared = data.get("is_shared_drive")
        if not isinstance(shared, bool):
            raise ValueError("drive snapshot field 'is_shared_drive' must be true or false")
        raw_items = data.get("items")
        if not isinstance(raw_items, list):
            raise ValueError("drive snapshot field 'items' must be a list")
        items = []
        for n, row in enumerate(raw_items):
            if not (
                isinstance(row, list) and len(row) == 4 and all(isinstance(v, str) for v in row)
            ):
                raise ValueError(f"drive snapshot item {n} is not [id, name, mimeType, parent]")
            items.append(Item(*row))
        return cls(
            root_id=text("root_id"),
            root_name=text("root_name"),
            drive_id=text("drive_id", optional=True),
            is_shared_drive=shared,
            items=tuple(items),
            page_token=text("page_token", optional=True),
            listed_at=listed_at,
        )


@dataclass(frozen=True)
class DriveRead:
    """The result of `DriveSource.read`."""

    tree: Node
    snapshot: DriveSnapshot
    changed: bool  # anything differs from the previous snapshot (always True without one)
    full: bool  # a full listing (not the changes feed)


@dataclass
class ApiCalls:
    """HTTP round trips to Drive (a batch counts once; retries count), for contract §8.

    Renames send batches from a few threads at once, hence the lock."""

    requests: int = 0
    retries: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, kind: str) -> None:
        with self._lock:
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    def request(self) -> None:
        with self._lock:
            self.requests += 1

    def retry(self) -> None:
        with self._lock:
            self.retries += 1


class DriveCallError(ServiceError):
    """A Drive call failed after retries; `status` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Root:
    id: str
    name: str
    drive_id: str | None
    is_shared_drive: bool


# ---------------------------------------------------------------- pure helpers


def quote(value: str) -> str:
    """`value` as a Drive query string literal: backslashes and quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parent_queries(
    parent_ids: Sequence[str],
    *,
    max_parents: int = MAX_PARENTS_PER_QUERY,
    max_chars: int = MAX_QUERY_CHARS,
) -> Iterator[str]:
    """Queries for the children of `parent_ids`, as few as Google's limits allow."""
    suffix = ") and trashed = false"
    group: list[str] = []
    length = len(suffix) + 1
    for pid in parent_ids:
        term = f"{quote(pid)} in parents"
        extra = len(term) + (4 if group else 0)
        if group and (len(group) >= max_parents or length + extra > max_chars):
            yield "(" + " or ".join(group) + suffix
            group, length = [], len(suffix) + 1
            extra = len(term)
        group.append(term)
        length += extra
    if group:
        yield "(" + " or ".join(group) + suffix


def to_item(resource: Mapping[str, Any]) -> Item | None:
    """A Drive file resource as an `Item`; None when it has no parent (a drive root)."""
    parents = resource.get("parents") or []
    if not parents:
        return None
    return Item(resource["id"], resource["name"], resource["mimeType"], parents[0])


def apply_changes(
    items: Mapping[str, Item], changes: Sequence[Mapping[str, Any]]
) -> dict[str, Item]:
    """The items after the changes feed: adds, renames and moves upserted; trashed and
    removed items dropped. Items outside the root are kept here and pruned later."""
    out = dict(items)
    for change in changes:
        if change.get("changeType", "file") != "file":
            continue
        fid = change["fileId"]
        resource = change.get("file")
        item = None if change.get("removed") or not resource else to_item(resource)
        if item is None or resource is None or resource.get("trashed"):
            out.pop(fid, None)
        else:
            out[fid] = item
    return out


def reachable(root_id: str, items: Mapping[str, Item]) -> dict[str, Item]:
    """The items whose parent chain reaches `root_id`."""
    children: dict[str, list[Item]] = {}
    for item in items.values():
        children.setdefault(item.parent, []).append(item)
    out: dict[str, Item] = {}
    stack = [root_id]
    while stack:
        for kid in children.get(stack.pop(), ()):
            if kid.id not in out and kid.id != root_id:
                out[kid.id] = kid
                if kid.mime_type == FOLDER_MIME:
                    stack.append(kid.id)
    return out


# ---------------------------------------------------------------- transport and retries


class Pacer:
    """The one place that waits before a retry: the library's exponential backoff with
    jitter, stretched to a server's `Retry-After` when it gave one, capped."""

    def __init__(
        self,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 64.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._sleep = sleep
        self._rand = rand
        self.max_wait = max_wait
        self.retry_after: float | None = None
        self.waited = 0.0

    def note_response(self, resp: httplib2.Response) -> None:
        raw = resp.get("retry-after")
        if raw is not None and resp.status in (429, 503):
            try:
                self.retry_after = float(raw)
            except ValueError:
                self.retry_after = None  # an HTTP date: fall back to our backoff

    def sleep(self, seconds: float) -> None:
        wait = max(seconds, self.retry_after or 0.0)
        self.retry_after = None
        wait = min(wait, self.max_wait)
        self.waited += wait
        self._sleep(wait)

    def backoff(self, attempt: int) -> None:
        """Wait before retry `attempt` (1, 2, …) of something the library does not retry."""
        self.sleep(self._rand() * 2**attempt)


class _CountingHttp:
    """Wraps the authorised httplib2 object: counts round trips, notes Retry-After."""

    def __init__(self, inner: Any, calls: ApiCalls, pacer: Pacer) -> None:
        self._inner = inner
        self._calls = calls
        self._pacer = pacer

    def request(self, uri: str, method: str = "GET", *args: Any, **kwargs: Any) -> Any:
        self._calls.request()
        resp, content = self._inner.request(uri, method, *args, **kwargs)
        self._pacer.note_response(resp)
        if resp.status >= 400 and _should_retry_response(resp.status, content):
            self._calls.retry()
        return resp, content

    def __getattr__(self, name: str) -> Any:
        # googleapiclient reads `credentials`, `timeout`, … from the http object.
        return getattr(self._inner, name)


def _request_builder(pacer: Pacer) -> type[HttpRequest]:
    class PacedRequest(HttpRequest):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._sleep = pacer.sleep

    return PacedRequest


def _reason(exc: HttpError) -> str:
    """`403 userRateLimitExceeded: User Rate Limit Exceeded` from Google's error JSON."""
    try:
        error = json.loads(exc.content.decode("utf-8"))["error"]
        reasons = ", ".join(e.get("reason", "") for e in error.get("errors", []) if e.get("reason"))
        message = str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"{exc.status_code} {exc.reason or ''}".strip()
    return f"{exc.status_code} {reasons}: {message}" if reasons else f"{exc.status_code} {message}"


def _credentials_rejected(exc: Exception, who: str, scopes: Sequence[str]) -> ConfigError:
    # Only the OAuth error code goes into the message, never the response or key.
    code = "rejected"
    if isinstance(exc, google.auth.exceptions.RefreshError) and exc.args:
        first = str(exc.args[0])
        code = first.split(":", 1)[0].strip() or code
    elif isinstance(exc, HttpError):
        code = f"HTTP {exc.status_code}"
    return ConfigError(
        f"Google rejected the service-account credentials (GOOGLE_CREDENTIALS_FILE) acting as "
        f"{who}: {code}. Check the key, and that domain-wide delegation "
        f"grants the scopes {', '.join(scopes)}."
    )


def load_credentials(path: Any, delegate: str, scopes: Sequence[str]) -> Credentials:
    """Service-account credentials from the key file, acting as `delegate` (DWD)."""
    from google.oauth2 import service_account

    try:
        creds = service_account.Credentials.from_service_account_file(
            str(path), scopes=list(scopes)
        )
    except FileNotFoundError as exc:
        raise ConfigError(f"GOOGLE_CREDENTIALS_FILE {str(path)!r} does not exist") from exc
    except (ValueError, KeyError, TypeError) as exc:
        # The library's messages can quote the file; say only what kind of problem it is.
        raise ConfigError(
            f"GOOGLE_CREDENTIALS_FILE {str(path)!r} is not a valid service-account key "
            f"({type(exc).__name__})"
        ) from None
    return creds.with_subject(delegate) if delegate else creds


# ---------------------------------------------------------------- the source


class DriveSource:
    """Reads the backtest drive under `folder_id` and renames files in it.

    Build it with `from_settings`; tests pass an emulator `endpoint` and a `sleep`.
    """

    def __init__(
        self,
        folder_id: str,
        *,
        credentials: Credentials,
        endpoint: str = "",
        delegate: str = "",
        scopes: Sequence[str] = (SCOPE_READ,),
        allow_renames: bool = False,
        full_rescan_hours: float = 24.0,
        sleep: Callable[[float], None] = time.sleep,
        num_retries: int = NUM_RETRIES,
        timeout: float = 60.0,
    ) -> None:
        self.folder_id = folder_id
        self.delegate = delegate
        self.scopes = tuple(scopes)
        self.allow_renames = allow_renames
        self.full_rescan_hours = full_rescan_hours
        self.num_retries = num_retries
        self.calls = ApiCalls()
        self.pacer = Pacer(sleep)
        root = endpoint.rstrip("/") if endpoint else GOOGLE_ROOT
        self._batch_uri = f"{root}/batch/drive/v3"
        self._credentials = credentials
        self._timeout = timeout
        # An emulator endpoint is reached directly, whatever HTTP(S)_PROXY says (httplib2
        # would need PySocks for a proxy, and a local emulator is never behind one).
        self._proxy: Any = None if endpoint else httplib2.proxy_info_from_environment
        self._http = self._new_http()
        self._service = build(
            "drive",
            "v3",
            http=self._http,
            requestBuilder=_request_builder(self.pacer),
            static_discovery=True,
            cache_discovery=False,
            client_options={"api_endpoint": f"{root}/drive/v3/"} if endpoint else None,
        )

    def _new_http(self) -> _CountingHttp:
        """An authorised, counting httplib2 client (one per thread: httplib2 is not
        thread-safe)."""
        return _CountingHttp(
            AuthorizedHttp(
                self._credentials, http=httplib2.Http(timeout=self._timeout, proxy_info=self._proxy)
            ),
            self.calls,
            self.pacer,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        renames: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> DriveSource:
        """The source for `settings`. `renames=False` for `--no-rename`/`--dry-run`/`check`:
        with renames off (here or `RENAME_FILES=false`) only the read-only scope is asked."""
        allow = settings.rename_files and renames
        scopes = (SCOPE_READ, SCOPE_RENAME) if allow else (SCOPE_READ,)
        if settings.drive_api_endpoint:
            creds: Credentials = AnonymousCredentials()
        else:
            creds = load_credentials(
                settings.google_credentials_file, settings.delegate_email, scopes
            )
        return cls(
            settings.folder_id,
            credentials=creds,
            endpoint=settings.drive_api_endpoint,
            delegate=settings.delegate_email,
            scopes=scopes,
            allow_renames=allow,
            full_rescan_hours=settings.full_rescan_hours,
            sleep=sleep,
        )

    # ------------------------------------------------------------ calling Drive

    def _execute(
        self, request: HttpRequest, what: str, passthrough: tuple[int, ...] = ()
    ) -> dict[str, Any]:
        """One call with the retry policy; errors become the tool's errors, except the
        HTTP statuses in `passthrough`, re-raised as `HttpError` for the caller."""
        try:
            return request.execute(num_retries=self.num_retries)
        except HttpError as exc:
            retryable = _should_retry_response(exc.status_code, exc.content)
            if exc.status_code in passthrough and not retryable:
                raise
            raise self._wrap(exc, what) from None
        except google.auth.exceptions.RefreshError as exc:
            raise _credentials_rejected(exc, self._who(), self.scopes) from None
        except (OSError, httplib2.HttpLib2Error, google.auth.exceptions.TransportError) as exc:
            raise DriveCallError(
                f"Drive {what} failed: cannot reach Google ({type(exc).__name__})", 0
            ) from None

    def _pages(self, what: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every page of a `files.list`/`changes.list` call, following tokens to the end."""
        resource = self._service.files() if what == "files.list" else self._service.changes()
        request = resource.list(**params)
        while request is not None:
            self.calls.count(what)
            page = self._execute(request, what)
            if page.get("incompleteSearch"):
                # Only `corpora=allDrives` should do this, and it is never used here.
                log.warning("drive: Google reports an incomplete search for %s", what)
            yield page
            if what != "files.list":
                token = page.get("nextPageToken")
                request = resource.list(**{**params, "pageToken": token}) if token else None
            else:
                request = resource.list_next(request, page)

    def _who(self) -> str:
        """Whom Drive sees: the delegated user, else the service account itself."""
        if self.delegate:
            return f"DELEGATE_EMAIL {self.delegate!r}"
        email = getattr(self._credentials, "service_account_email", "")
        if email:
            return f"the service account {email} (DELEGATE_EMAIL is not set)"
        return "anonymous access"  # an emulator endpoint, no key

    def _root_error(self, detail: str) -> ServiceError:
        who = self._who()
        return ServiceError(
            f"FOLDER_ID {self.folder_id!r} {detail}: it does not exist or is not shared with "
            f"{who}. Share the drive or folder with {who}, or fix FOLDER_ID. Nothing was written."
        )

    def _resolve_root(self) -> _Root:
        """Shared drive or ordinary folder? Stops the run if neither is reachable."""
        self.calls.count("drives.get")
        request = self._service.drives().get(driveId=self.folder_id, fields="id,name")
        try:
            drive = self._execute(request, "drives.get", passthrough=(400, 403, 404))
            return _Root(drive["id"], drive["name"], drive["id"], True)
        except HttpError:
            pass  # not a shared drive (or not one we can see): try it as a folder
        self.calls.count("files.get")
        request = self._service.files().get(
            fileId=self.folder_id, fields="id,name,mimeType,driveId,trashed", supportsAllDrives=True
        )
        try:
            meta = self._execute(request, "files.get", passthrough=(403, 404))
        except HttpError:
            raise self._root_error("was not found") from None
        if meta.get("mimeType") != FOLDER_MIME:
            raise ServiceError(
                f"FOLDER_ID {self.folder_id!r} is a file ({meta.get('mimeType')}) that "
                f"{self._who()} can open, not a folder: FOLDER_ID must be the shared drive or "
                "the top folder that holds the department folders. Nothing was written."
            )
        if meta.get("trashed"):
            raise self._root_error("is in the trash")
        return _Root(meta["id"], meta["name"], meta.get("driveId"), False)

    def _wrap(self, exc: HttpError, what: str) -> Exception:
        if exc.status_code == 401:
            return _credentials_rejected(exc, self._who(), self.scopes)
        return DriveCallError(f"Drive {what} failed: {_reason(exc)}", exc.status_code)

    def _drive_params(self, root: _Root) -> dict[str, Any]:
        if root.drive_id:
            return {
                "corpora": "drive",
                "driveId": root.drive_id,
                "includeItemsFromAllDrives": True,
                "supportsAllDrives": True,
            }
        return {"supportsAllDrives": True}

    def _start_token(self, root: _Root) -> str:
        self.calls.count("changes.getStartPageToken")
        params: dict[str, Any] = {"supportsAllDrives": True}
        if root.drive_id:
            params["driveId"] = root.drive_id
        got = self._execute(
            self._service.changes().getStartPageToken(**params), "changes.getStartPageToken"
        )
        return got["startPageToken"]

    # ------------------------------------------------------------ listing

    def _list_drive(self, root: _Root) -> list[Item]:
        """Every item of the shared drive, 1,000 per page."""
        items = []
        for page in self._pages(
            "files.list",
            q="trashed = false",
            pageSize=PAGE_SIZE,
            fields=LIST_FIELDS,
            **self._drive_params(root),
        ):
            items.extend(i for i in map(to_item, page.get("files", [])) if i is not None)
        return items

    def _list_below(self, root: _Root, folder_ids: Sequence[str]) -> list[Item]:
        """Everything under `folder_ids`, breadth-first, many parents per query."""
        items: list[Item] = []
        seen = set(folder_ids)
        frontier = list(folder_ids)
        while frontier:
            next_frontier: list[str] = []
            for q in parent_queries(frontier):
                for page in self._pages(
                    "files.list",
                    q=q,
                    pageSize=PAGE_SIZE,
                    fields=LIST_FIELDS,
                    **self._drive_params(root),
                ):
                    for item in map(to_item, page.get("files", [])):
                        if item is None or item.id in seen:
                            continue
                        seen.add(item.id)
                        items.append(item)
                        if item.mime_type == FOLDER_MIME:
                            next_frontier.append(item.id)
            frontier = next_frontier
        return items

    def _full(self, previous: DriveSnapshot | None, now: datetime) -> DriveRead:
        started, calls_before = time.monotonic(), self.calls.requests
        root = self._resolve_root()
        # The token is taken before listing so that nothing changed meanwhile is missed.
        token = self._start_token(root)
        items = (
            self._list_drive(root) if root.is_shared_drive else self._list_below(root, [root.id])
        )
        tree = assemble(root.id, root.name, items)
        snapshot = DriveSnapshot(
            root_id=root.id,
            root_name=root.name,
            drive_id=root.drive_id,
            is_shared_drive=root.is_shared_drive,
            items=_sorted_items(flatten(tree)),
            page_token=token,
            listed_at=now,
        )
        log.info(
            "drive: full listing of %s %r: %d items in %d requests, %.2f s",
            "shared drive" if root.is_shared_drive else "folder",
            root.name,
            len(snapshot.items),
            self.calls.requests - calls_before,
            time.monotonic() - started,
        )
        return DriveRead(tree, snapshot, _differs(previous, snapshot), full=True)

    def _incremental(self, previous: DriveSnapshot, now: datetime) -> DriveRead | None:
        """Apply the changes feed to `previous`; None when a full listing is needed."""
        started = time.monotonic()
        root = _Root(
            previous.root_id, previous.root_name, previous.drive_id, previous.is_shared_drive
        )
        params: dict[str, Any] = {
            "pageToken": previous.page_token,
            "pageSize": PAGE_SIZE,
            "fields": CHANGE_FIELDS,
            "supportsAllDrives": True,
        }
        if root.drive_id:
            params.update(driveId=root.drive_id, includeItemsFromAllDrives=True)
        changes: list[dict[str, Any]] = []
        token = previous.page_token
        try:
            for page in self._pages("changes.list", **params):
                changes.extend(page.get("changes", []))
                token = page.get("newStartPageToken") or token
        except DriveCallError as exc:
            if exc.status not in (400, 404, 410):
                raise
            log.info("drive: changes token rejected (%s), listing the whole drive", exc)
            return None
        if any(
            c.get("fileId") == root.id or c.get("changeType", "file") != "file" for c in changes
        ):
            log.info("drive: the root itself changed, listing the whole drive")
            return None
        before = {i.id: i for i in previous.items}
        after = apply_changes(before, changes)
        under = reachable(root.id, after)
        old_folders = {i.id for i in previous.items if i.mime_type == FOLDER_MIME}
        # A folder that appears under the root (moved in, restored) brings contents the
        # feed does not list: read those subtrees now.
        arrived = sorted(
            i.id for i in under.values() if i.mime_type == FOLDER_MIME and i.id not in old_folders
        )
        if arrived:
            for item in self._list_below(root, arrived):
                after[item.id] = item
            under = reachable(root.id, after)
        tree = assemble(root.id, root.name, under.values())
        snapshot = replace(previous, items=_sorted_items(flatten(tree)), page_token=token)
        changed = _differs(previous, snapshot)
        log.info(
            "drive: changes feed: %d changes (%s), %d new folders listed, %d items, %.2f s",
            len(changes),
            "drive changed" if changed else "nothing under the root changed",
            len(arrived),
            len(snapshot.items),
            time.monotonic() - started,
        )
        return DriveRead(tree, snapshot, changed, full=False)

    def read(
        self, previous: DriveSnapshot | None, *, full_rescan: bool = False, now: datetime
    ) -> DriveRead:
        """The drive tree now: from the changes feed applied to `previous` when possible,
        otherwise from a full listing (no or unusable snapshot, `full_rescan`, other root,
        or the last full listing at least `FULL_RESCAN_HOURS` ago)."""
        if now.tzinfo is None:
            raise ValueError("now must be time-zone aware")
        reason = _full_reason(previous, self.folder_id, full_rescan, now, self.full_rescan_hours)
        if reason is None and previous is not None:
            got = self._incremental(previous, now)
            if got is not None:
                return got
            reason = "changes token rejected"
        log.debug("drive: full listing because %s", reason)
        return self._full(previous, now)

    def file_version(self, file_id: str) -> str | None:
        """The Drive `version` of `file_id` (e.g. the report spreadsheet), in one
        `files.get`: it grows on every write to the file, whoever made it. None when the
        file cannot be seen (not found, not shared): the caller then cannot tell."""
        self.calls.count("files.get")
        request = self._service.files().get(
            fileId=file_id, fields="version,modifiedTime", supportsAllDrives=True
        )
        try:
            meta = self._execute(request, "files.get", passthrough=(403, 404))
        except HttpError:
            return None
        version = meta.get("version") or meta.get("modifiedTime")
        return str(version) if version is not None else None

    # ------------------------------------------------------------ renames

    def rename(self, renames: Sequence[Rename]) -> RenameResult:
        """Apply `renames` in batches of at most 100; each failure becomes a
        `rename_failed` problem (retried on the next run). Does nothing, and sends
        nothing, when renames are off."""
        if not renames:
            return RenameResult()
        if not self.allow_renames:
            log.info("drive: %d renames not applied (renames are off)", len(renames))
            return RenameResult()
        started = time.monotonic()
        by_id = {r.id: r for r in renames}
        applied: set[str] = set()
        failed: dict[str, str] = {}
        pending = list(by_id)
        attempt = 0
        local = threading.local()

        def send(chunk: list[str]) -> dict[str, tuple[bool, str, bool]]:
            if not hasattr(local, "http"):
                local.http = self._new_http()
            return self._rename_batch([by_id[i] for i in chunk], local.http)

        while pending:
            retry: list[str] = []
            chunks = [
                pending[start : start + BATCH_LIMIT]
                for start in range(0, len(pending), BATCH_LIMIT)
            ]
            # A few batches in flight at once hide the round-trip latency; Drive's
            # per-user quota is far above 4 concurrent batches of 100.
            with ThreadPoolExecutor(max_workers=RENAME_WORKERS) as pool:
                outcomes = list(pool.map(send, chunks))
            for outcome in outcomes:
                for rid, (ok, err, retryable) in outcome.items():
                    if ok:
                        applied.add(rid)
                    elif retryable and attempt < self.num_retries:
                        retry.append(rid)
                    else:
                        failed[rid] = err
            pending = retry
            if pending:
                attempt += 1
                self.calls.retry()
                self.pacer.backoff(attempt)
        problems = tuple(
            Problem(
                Category.RENAME_FAILED,
                f"Rename failed: {by_id[rid].path} (to {by_id[rid].new!r}: {why})",
                by_id[rid].path,
                rid,
            )
            for rid, why in sorted(failed.items(), key=lambda kv: (by_id[kv[0]].path, kv[0]))
        )
        for p in problems:
            log.warning("%s", p.message)
        log.info(
            "drive: renamed %d of %d files (%d failed), %.2f s",
            len(applied),
            len(renames),
            len(problems),
            time.monotonic() - started,
        )
        return RenameResult(frozenset(applied), problems)

    def _rename_batch(
        self, chunk: Sequence[Rename], http: _CountingHttp
    ) -> dict[str, tuple[bool, str, bool]]:
        """One batch: id → (renamed, error, worth retrying)."""
        results: dict[str, tuple[bool, str, bool]] = {}

        def done(request_id: str, response: Any, exc: HttpError | None) -> None:
            if exc is None:
                results[request_id] = (True, "", False)
            else:
                retry = _should_retry_response(exc.status_code, exc.content)
                results[request_id] = (False, _reason(exc), retry)

        batch = BatchHttpRequest(callback=done, batch_uri=self._batch_uri)
        # `service.files()` builds the whole resource from discovery (~6 ms): once a batch.
        files = self._service.files()
        for r in chunk:
            batch.add(
                files.update(
                    fileId=r.id, body={"name": r.new}, fields="id,name", supportsAllDrives=True
                ),
                request_id=r.id,
            )
        self.calls.count("batch")
        try:
            batch.execute(http=http)
        except HttpError as exc:
            if exc.status_code == 401:
                raise _credentials_rejected(exc, self._who(), self.scopes) from None
            retry = _should_retry_response(exc.status_code, exc.content)
            return {r.id: (False, _reason(exc), retry) for r in chunk}
        except google.auth.exceptions.RefreshError as exc:
            raise _credentials_rejected(exc, self._who(), self.scopes) from None
        except (OSError, httplib2.HttpLib2Error, google.auth.exceptions.TransportError) as exc:
            return {r.id: (False, f"connection failed ({type(exc).__name__})", True) for r in chunk}
        for r in chunk:
            results.setdefault(r.id, (False, "no answer in the batch response", True))
        return results


def _sorted_items(items: Sequence[Item]) -> tuple[Item, ...]:
    return tuple(sorted(items, key=lambda i: i.id))


def _differs(previous: DriveSnapshot | None, snapshot: DriveSnapshot) -> bool:
    if previous is None:
        return True
    return (
        previous.root_id != snapshot.root_id
        or previous.root_name != snapshot.root_name
        or set(previous.items) != set(snapshot.items)
    )


def _full_reason(
    previous: DriveSnapshot | None,
    folder_id: str,
    full_rescan: bool,
    now: datetime,
    hours: float,
) -> str | None:
    """Why this read must list everything, or None when the changes feed will do."""
    if previous is None:
        return "there is no saved snapshot"
    if full_rescan:
        return "--full-rescan was given"
    if previous.root_id != folder_id:
        return "FOLDER_ID changed"
    if not previous.page_token:
        return "there is no saved changes token"
    if now - previous.listed_at >= timedelta(hours=hours):
        return f"the last full listing is older than FULL_RESCAN_HOURS ({hours:g})"
    return None


__all__ = [
    "ApiCalls",
    "DriveCallError",
    "DriveRead",
    "DriveSnapshot",
    "DriveSource",
    "Pacer",
    "RenameResult",
    "apply_changes",
    "load_credentials",
    "parent_queries",
    "quote",
    "reachable",
]
