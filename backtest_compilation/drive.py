"""`DriveSource`: the backtest drive read from Google Drive v3 (a breadth-first listing,
then the changes feed), and renames in it: a batch a call, paced by `renames`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import httplib2
from google.auth.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest, HttpRequest

from . import google, snapshot
from .catalog import Rename, RenameResult
from .errors import ServiceError
from .google import Answer, Kind
from .renames import Renames
from .snapshot import DriveSnapshot
from .tree import FOLDER_MIME, Item, Node, assemble

log = logging.getLogger(__name__)

# Listing needs drives.get (drive or drive.readonly); renaming needs files.update
# (drive or drive.metadata). Together these are narrower than the full `drive` scope.
SCOPE_READ = "https://www.googleapis.com/auth/drive.readonly"
SCOPE_RENAME = "https://www.googleapis.com/auth/drive.metadata"
# Google fails queries past ~120 OR-ed parents ("The query is too complex"); rclone groups 50.
MAX_PARENTS_PER_QUERY = 50


@dataclass(frozen=True)
class DriveRead:
    """The result of `DriveSource.read`."""

    tree: Node | None  # None: nothing changed and the saved items were not read
    snapshot: DriveSnapshot
    changed: bool  # anything differs from the previous snapshot (always True without one)
    full: bool  # a full listing (not the changes feed)


class DriveCallError(ServiceError):
    """A Drive call failed after retries; `detail` is Google's answer (`404 notFound: …`)."""

    def __init__(self, what: str, answer: Answer) -> None:
        super().__init__(f"Drive {what} failed: {answer.message}")
        self.status = answer.status
        self.detail = answer.message
        self.missing = answer.kind is Kind.PERMANENT and answer.status in (400, 403, 404)


def quote(value: str) -> str:
    """`value` as a Drive query string literal: backslashes and quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parent_queries(parent_ids: Sequence[str]) -> Iterator[str]:
    """Queries for the children of `parent_ids`, `MAX_PARENTS_PER_QUERY` parents each."""
    for start in range(0, len(parent_ids), MAX_PARENTS_PER_QUERY):
        group = parent_ids[start : start + MAX_PARENTS_PER_QUERY]
        yield "(" + " or ".join(f"{quote(p)} in parents" for p in group) + ") and trashed = false"


class DriveSource:
    """Reads the backtest drive under `folder_id` and renames files in it."""

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
        num_retries: int = google.MAX_RETRIES,
        timeout: float = google.REQUEST_TIMEOUT_S,
        call_budget_s: float = google.CALL_BUDGET_S,
        rename_stall_s: float = 300.0,
        rename_budget_s: float = 600.0,
        writes_per_s: float = 3.0,
        deadline: google.Deadline = google.NO_DEADLINE,
    ) -> None:
        self.folder_id = folder_id
        self.scopes = tuple(scopes)
        self.allow_renames = allow_renames
        self.full_rescan_hours = full_rescan_hours
        self.rename_stall_s = rename_stall_s
        self.rename_budget_s = rename_budget_s
        self.requests = 0  # HTTP requests sent (a batch counts once; retries count), §8
        self.clock = google.Clock(sleep)
        # Reads and writes have separate quotas at Google: reads are never slowed by writes.
        self.write_pacer = google.Pacer(writes_per_s, clock=self.clock)
        self.transport = google.Transport(
            "drive",
            pacer=google.Pacer(clock=self.clock),
            retries=num_retries,
            call_budget_s=call_budget_s,
            deadline=deadline,
            logger=log,
        )
        email = getattr(credentials, "service_account_email", "")  # none: an emulator
        self.who = f"the service account {email} (DELEGATE_EMAIL is not set)"  # whom Drive sees
        if delegate or not email:
            self.who = f"DELEGATE_EMAIL {delegate!r}" if delegate else "anonymous access"
        root = endpoint.rstrip("/") if endpoint else "https://www.googleapis.com"
        self._batch_uri = f"{root}/batch/drive/v3"
        proxy = None if google.direct(endpoint) else httplib2.proxy_info_from_environment
        self._new_http = lambda: AuthorizedHttp(
            credentials, httplib2.Http(timeout=timeout, proxy_info=proxy)
        )
        self._local = threading.local()  # a client per thread: httplib2's are not thread-safe
        api = {"api_endpoint": f"{root}/drive/v3/"} if endpoint else None
        self._service = build(
            "drive", "v3", http=self._new_http(), static_discovery=True, client_options=api
        )
        self._feed: tuple[str, str | None] | None = None  # the feed at the listing (renames)

    def _client(self) -> AuthorizedHttp:
        """This thread's client for one more request (counted), ending by the run's deadline."""
        self.requests += 1  # whole under CPython's GIL, also from the listing's threads
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = self._new_http()
        left = self.transport.deadline.left()
        if left < http.http.timeout:
            http.http.timeout = max(0.1, left)
            http.http.close()  # kept-alive connections keep their old timeout
        return http

    def _call(self, request: HttpRequest, what: str) -> dict[str, Any]:
        """One call through the transport (retries, budgets); errors become the tool's."""
        try:
            return self.transport.call(what, lambda: request.execute(http=self._client()))
        except google.CallFailed as exc:
            if exc.answer.status != 401:  # 401: also a refused token (`google.answer_of`)
                raise DriveCallError(what, exc.answer) from None
            raise google.credentials_rejected(exc.cause, "Drive", self.who, self.scopes) from None

    def _found(self, get: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        """`get()`, or None when Drive says the item is not there (for this account)."""
        try:
            return get()
        except DriveCallError as exc:
            if exc.missing:
                return None
            raise

    def _pages(self, what: str, drive_id: str | None, **params: Any) -> list[dict[str, Any]]:
        """Every page of a `files.list`/`changes.list` call in `drive_id` (or My Drive)."""
        resource = self._service.files() if what == "files.list" else self._service.changes()
        params.update(pageSize=1000, supportsAllDrives=True)
        if drive_id:
            params.update(driveId=drive_id, includeItemsFromAllDrives=True)
        pages, request = [], resource.list(**params)
        while request is not None:
            pages.append(self._call(request, what))
            # Not `list_next`: it puts the token in the URL of a long query sent as a POST.
            token = pages[-1].get("nextPageToken")
            request = resource.list(**{**params, "pageToken": token}) if token else None
        return pages

    def _query(self, drive_id: str | None, q: str) -> list[Item]:
        """The items `files.list` finds for `q` in the shared drive `drive_id` (or My Drive)."""
        fields = "nextPageToken,files(id,name,mimeType,parents)"
        where = {"corpora": "drive"} if drive_id else {}
        pages = self._pages("files.list", drive_id, q=q, fields=fields, **where)
        files = (f for page in pages for f in page.get("files", []))
        return list(filter(None, map(snapshot.to_item, files)))

    def _list_below(self, drive_id: str | None, folder_ids: Sequence[str]) -> dict[str, Item]:
        """Everything under `folder_ids` by id, a level's queries at once, in query order."""
        found: dict[str, Item] = {}
        # 8 queries in flight: far below Drive's 12,000 reads a minute.
        frontier, pool = list(folder_ids), ThreadPoolExecutor(8)
        started = last_line = self.clock.now()
        try:
            while frontier:
                queries = parent_queries(frontier)
                frontier = []
                for items in pool.map(lambda q: self._query(drive_id, q), queries):
                    for item in items:
                        if item.mime_type == FOLDER_MIME and item.id not in found:
                            frontier.append(item.id)
                        found[item.id] = item
                    if (now := self.clock.now()) - last_line >= google.PROGRESS_EVERY_S:
                        last_line, rate = now, len(found) / (now - started)
                        line = "drive: listing: %d items so far (%.0f/s), %d folders found to read"
                        log.info(line, len(found), rate, len(frontier), extra={"progress": True})
        finally:  # a failed query or a signal: the level's queued queries are not sent
            pool.shutdown(cancel_futures=True)
        return found

    def _root(self, now: datetime) -> DriveSnapshot:
        """The root (a shared drive or a folder) as a snapshot without items, or an error."""
        drive = self.shared_drive(self.folder_id)
        if drive is not None:
            return DriveSnapshot(drive["id"], drive["name"], drive["id"], (), None, now)
        meta = self._found(lambda: self.item(self.folder_id, "id,name,mimeType,driveId,trashed"))
        if meta is not None and meta.get("mimeType") != FOLDER_MIME:
            raise ServiceError(
                f"FOLDER_ID {self.folder_id!r} is a file ({meta.get('mimeType')}) that "
                f"{self.who} can open, not a folder: FOLDER_ID must be the shared drive or "
                "the top folder that holds the department folders. Nothing was written."
            )
        if meta is None or meta.get("trashed"):
            raise ServiceError(
                f"FOLDER_ID {self.folder_id!r} {'is in the trash' if meta else 'was not found'}"
                f": it does not exist or is not shared with {self.who}. Share the drive or "
                f"folder with {self.who}, or fix FOLDER_ID. Nothing was written."
            )
        return DriveSnapshot(meta["id"], meta["name"], meta.get("driveId"), (), None, now)

    def _full(self, now: datetime) -> DriveSnapshot:
        """Everything under the root, and the changes token to follow it from."""
        root = self._root(now)
        # The token is taken before listing so that nothing changed meanwhile is missed.
        where = {"driveId": root.drive_id} if root.drive_id else {}
        request = self._service.changes().getStartPageToken(supportsAllDrives=True, **where)
        token = self._call(request, "changes.getStartPageToken")["startPageToken"]
        under = snapshot.reachable(root.root_id, self._list_below(root.drive_id, [root.root_id]))
        return replace(root, items=snapshot.sorted_items(list(under.values())), page_token=token)

    def _feed_since(self, previous: DriveSnapshot) -> tuple[list[dict[str, Any]], str] | None:
        """The changes since `previous` and the new token; None if the feed cannot be used."""
        try:
            changes, token = self._changes(previous.page_token or "", previous.drive_id)
        except DriveCallError as exc:
            if exc.status not in (400, 404, 410):
                raise
            log.info("drive: changes token rejected (%s), listing the whole drive", exc)
            return None
        root_changed = (c.get("fileId") == previous.root_id for c in changes)
        if any(root_changed) or any(c.get("changeType", "file") != "file" for c in changes):
            log.info("drive: the root itself changed, listing the whole drive")
            return None
        return changes, token

    def _apply(
        self, previous: DriveSnapshot, changes: list[dict[str, Any]], token: str
    ) -> DriveSnapshot:
        """`previous` with the changes feed applied."""
        after = snapshot.apply_changes({i.id: i for i in previous.items}, changes)
        under = snapshot.reachable(previous.root_id, after)
        # A folder that appears under the root (moved in, restored) brings contents the
        # feed does not list: read those subtrees now.
        old = {i.id for i in previous.items if i.mime_type == FOLDER_MIME}
        arrived = sorted(k for k, i in under.items() if i.mime_type == FOLDER_MIME and k not in old)
        if arrived:
            after.update(self._list_below(previous.drive_id, arrived))
            under = snapshot.reachable(previous.root_id, after)
        items = snapshot.sorted_items(list(under.values()))
        return replace(previous, items=items, page_token=token)

    def read(
        self,
        previous: DriveSnapshot | None,
        *,
        full_rescan: bool = False,
        now: datetime,
        load_items: Callable[[], tuple[Item, ...]] | None = None,
    ) -> DriveRead:
        """The drive now: the changes feed applied to `previous` when possible, else a full
        listing (`full_reason`). With `load_items`, `previous` is a header and its items
        are loaded only if something changed (else `tree` is None)."""
        started = time.monotonic()
        reason = snapshot.full_reason(
            previous, self.folder_id, full_rescan, now, self.full_rescan_hours
        )
        feed = None if previous is None or reason else self._feed_since(previous)
        if previous is not None and feed is not None and load_items and not feed[0]:
            # Cost follows the changes (contract §5.10): the saved items stay unread.
            got = DriveRead(None, replace(previous, page_token=feed[1]), False, full=False)
            how = "no changes in the feed"
        else:
            if previous is not None and load_items is not None:
                try:  # the saved items: what the feed applies to, or the listing differs from
                    previous = replace(previous, items=load_items())
                except ValueError as exc:
                    log.warning("drive: saved snapshot unusable (%s)", exc)
                    previous = feed = None
            if previous is not None and feed is not None:
                new, how = self._apply(previous, *feed), f"{len(feed[0])} changes applied"
            else:
                new = self._full(now)
                how = f"full listing ({reason or 'the changes feed cannot be used'})"
            tree = assemble(new.root_id, new.root_name, new.items)
            got = DriveRead(tree, new, snapshot.differs(previous, new), full=feed is None)
            how += f", {len(new.items)} items" + ("" if got.changed else ", none changed")
        log.info("drive: %s of %r, %.2f s", how, got.snapshot.root_name, time.monotonic() - started)
        self._feed = (got.snapshot.page_token or "", got.snapshot.drive_id)
        return got

    def shared_drive(self, drive_id: str, fields: str = "id,name") -> dict[str, Any] | None:
        """`drives.get` of `drive_id`; None when it is no shared drive this account sees."""
        request = self._service.drives().get(driveId=drive_id, fields=fields)
        return self._found(lambda: self._call(request, "drives.get"))

    def item(self, file_id: str, fields: str) -> dict[str, Any]:
        """`files.get` of `file_id` with `fields`; a failure raises `DriveCallError`."""
        request = self._service.files().get(fileId=file_id, fields=fields, supportsAllDrives=True)
        return self._call(request, "files.get")

    def child_folders(self, folder_id: str, drive_id: str | None) -> list[str]:
        """Names of the folders in `folder_id`."""
        children = self._query(drive_id, next(parent_queries([folder_id])))
        return [i.name for i in children if i.mime_type == FOLDER_MIME]

    def root_parent(self) -> tuple[str, str] | None:
        """The id and name of the folder (or shared drive) holding FOLDER_ID, if visible."""
        try:
            parents = self.item(self.folder_id, "parents").get("parents") or []
            got = parents and (self.shared_drive(parents[0]) or self.item(parents[0], "id,name"))
        except ServiceError:
            return None  # a message without the parent's name, not a failed run
        return (str(got["id"]), str(got["name"])) if got else None

    def file_version(self, file_id: str) -> str | None:
        """`file_id`'s Drive `version` (it grows on every write, by anyone); None if unseen."""
        meta = self._found(lambda: self.item(file_id, "version"))
        return None if meta is None else str(meta["version"])

    def _changes(self, token: str, drive_id: str | None) -> tuple[list[dict[str, Any]], str]:
        """Every change since `token`, and the token to follow the feed from next time."""
        fields = "changeType,fileId,removed,file(id,name,mimeType,parents,trashed)"
        fields = f"nextPageToken,newStartPageToken,changes({fields})"
        pages = self._pages("changes.list", drive_id, pageToken=token, fields=fields)
        return [c for p in pages for c in p.get("changes", [])], pages[-1]["newStartPageToken"]

    def changed_since_listing(self) -> set[str] | None:
        """Ids changed since the listing (or the last call); None if the feed cannot tell."""
        if self._feed is None:
            return set()
        try:
            changes, token = self._changes(*self._feed)
        except DriveCallError as exc:
            log.warning("drive: renames stopped, the rest next run: %s", exc)
            return None
        self._feed = (token, self._feed[1])
        return {c.get("fileId", "") for c in changes}

    def rename(self, renames: Sequence[Rename]) -> RenameResult:
        """Apply `renames` at the write pacer's rate (contract §5.9), unless renames are off."""
        if not renames or not self.allow_renames:
            return RenameResult()
        return Renames(self, renames).run()

    def send_batch(self, chunk: Sequence[Rename]) -> dict[str, Answer]:
        """One rename batch: id → Google's answer to that part."""
        answers: dict[str, Answer] = {}

        def done(request_id: str, _response: Any, exc: HttpError | None) -> None:
            answer = Answer(Kind.OK, 200) if exc is None else google.answer_of(exc)
            answers[request_id] = answer or Answer(Kind.PERMANENT)

        batch = BatchHttpRequest(callback=done, batch_uri=self._batch_uri)
        files = self._service.files()  # 1.6 ms to make: once a batch, not once a part
        for r in chunk:
            update = files.update(fileId=r.id, body={"name": r.new}, supportsAllDrives=True)
            batch.add(update, request_id=r.id)
        try:
            batch.execute(http=self._client())
        except Exception as exc:
            answer = google.answer_of(exc)
            if answer is None:
                raise
            if answer.status == 401:
                raise google.credentials_rejected(exc, "Drive", self.who, self.scopes) from None
            return dict.fromkeys((r.id for r in chunk), answer)
        return answers  # the library calls `done` for every part, or raises
