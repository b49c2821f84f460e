"""`DriveSource`: the backtest drive read from Google Drive v3, and renames in it.

A full listing goes breadth-first, many parents to a query; later runs follow the changes
feed. Renames go as googleapiclient's `BatchHttpRequest`, one batch at a time, as big as
the write pacer's bucket allows (contract §5.9).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import httplib2
from google.auth.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest, HttpRequest

from . import google
from .catalog import Category, Problem, Rename, RenameResult
from .errors import ServiceError
from .google import Answer, ApiCalls, Kind
from .snapshot import (
    DriveSnapshot,
    apply_changes,
    differs,
    full_reason,
    reachable,
    sorted_items,
    to_item,
)
from .tree import FOLDER_MIME, Item, Node

log = logging.getLogger(__name__)

GOOGLE_ROOT = "https://www.googleapis.com"
# Listing needs drives.get (drive or drive.readonly); renaming needs files.update
# (drive or drive.metadata). Together these are narrower than the full `drive` scope.
SCOPE_READ = "https://www.googleapis.com/auth/drive.readonly"
SCOPE_RENAME = "https://www.googleapis.com/auth/drive.metadata"
PAGE_SIZE = 1000
PROGRESS_EVERY_S = 10.0
# Google fails queries past ~120 OR-ed parents ("The query is too complex"); rclone
# groups 50, and so do we.
MAX_PARENTS_PER_QUERY = 50
FILE_FIELDS = "id,name,mimeType,parents"
LIST_FIELDS = f"nextPageToken,files({FILE_FIELDS})"
CHANGE_FIELDS = (
    "nextPageToken,newStartPageToken,"
    f"changes(changeType,fileId,removed,file({FILE_FIELDS},trashed))"
)
READ_ONLY = "insufficientFilePermissions"  # Drive's reason when the account may only read


@dataclass(frozen=True)
class DriveRead:
    """The result of `DriveSource.read`."""

    tree: Node | None  # None: nothing changed and the saved items were not read
    snapshot: DriveSnapshot
    changed: bool  # anything differs from the previous snapshot (always True without one)
    full: bool  # a full listing (not the changes feed)


class DriveCallError(ServiceError):
    """A Drive call failed after retries: `status` is the HTTP status (0: no answer),
    `detail` Google's answer (`404 notFound: File not found: …`)."""

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
    """Reads the backtest drive under `folder_id` and renames files in it.

    `adapters.drive_source` builds it from the settings; tests pass an emulator `endpoint`
    and a `sleep`.
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
        self.deadline = deadline
        self.calls = ApiCalls()
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
        root = endpoint.rstrip("/") if endpoint else GOOGLE_ROOT
        self._batch_uri = f"{root}/batch/drive/v3"
        email = getattr(credentials, "service_account_email", "")
        # Whom Drive sees, for messages: the delegated user, else the service account.
        self.who = (
            f"DELEGATE_EMAIL {delegate!r}"
            if delegate
            else f"the service account {email} (DELEGATE_EMAIL is not set)"
            if email
            else "anonymous access"  # an emulator endpoint, no key
        )
        proxy = None if google.direct(endpoint) else httplib2.proxy_info_from_environment
        self._http = AuthorizedHttp(credentials, httplib2.Http(timeout=timeout, proxy_info=proxy))
        api = {"api_endpoint": f"{root}/drive/v3/"} if endpoint else None
        self._service = build(
            "drive", "v3", http=self._http, static_discovery=True, client_options=api
        )
        # Where the changes feed stood at the listing: renames check it (`_Renames`).
        self._feed: tuple[str, str | None] | None = None

    def _client(self) -> AuthorizedHttp:
        """The HTTP client for one more request: counted (Google's quota counts requests),
        and its timeout never past the run's deadline."""
        self.calls.requests += 1
        left = self.deadline.left()
        if left < self._http.http.timeout:
            self._http.http.timeout = max(0.1, left)
            self._http.http.close()  # kept-alive connections keep their old timeout
        return self._http

    def _call(self, request: HttpRequest, what: str) -> dict[str, Any]:
        """One call through the transport (retries, budgets); errors become the tool's."""
        try:
            return self.transport.call(what, lambda: request.execute(http=self._client()))
        except google.CallFailed as exc:
            if exc.answer.status == 401:  # also a refused token (`google.answer_of`)
                raise self._rejected(exc.cause) from None
            raise DriveCallError(what, exc.answer) from None

    def _rejected(self, exc: BaseException) -> Exception:
        return google.credentials_rejected(exc, "Drive", self.who, self.scopes)

    def _found(self, get: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        """`get()`, or None when Drive says the item is not there (for this account)."""
        try:
            return get()
        except DriveCallError as exc:
            if exc.missing:
                return None
            raise

    def _pages(self, what: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every page of a `files.list`/`changes.list` call, following tokens to the end."""
        resource = self._service.files() if what == "files.list" else self._service.changes()
        request = resource.list(**params)
        while request is not None:
            page = self._call(request, what)
            yield page
            # Not `list_next`: it puts the token in the URL of a long query sent as a POST.
            token = page.get("nextPageToken")
            request = resource.list(**{**params, "pageToken": token}) if token else None

    def _root_error(self, detail: str) -> ServiceError:
        who = self.who
        return ServiceError(
            f"FOLDER_ID {self.folder_id!r} {detail}: it does not exist or is not shared with "
            f"{who}. Share the drive or folder with {who}, or fix FOLDER_ID. Nothing was written."
        )

    def _root(self, now: datetime) -> DriveSnapshot:
        """The root, as a snapshot without items: a shared drive or an ordinary folder.
        Stops the run if neither is reachable."""
        drive = self.shared_drive(self.folder_id)
        if drive is not None:
            return DriveSnapshot(drive["id"], drive["name"], drive["id"], True, (), None, now)
        fields = "id,name,mimeType,driveId,trashed"
        meta = self._found(lambda: self.item(self.folder_id, fields))
        if meta is None:
            raise self._root_error("was not found")
        if meta.get("mimeType") != FOLDER_MIME:
            raise ServiceError(
                f"FOLDER_ID {self.folder_id!r} is a file ({meta.get('mimeType')}) that "
                f"{self.who} can open, not a folder: FOLDER_ID must be the shared drive or "
                "the top folder that holds the department folders. Nothing was written."
            )
        if meta.get("trashed"):
            raise self._root_error("is in the trash")
        return DriveSnapshot(meta["id"], meta["name"], meta.get("driveId"), False, (), None, now)

    @staticmethod
    def _where(drive_id: str | None) -> dict[str, Any]:
        """The `files.list` parameters that search one shared drive (or My Drive)."""
        shared = {"corpora": "drive", "driveId": drive_id, "includeItemsFromAllDrives": True}
        return {"supportsAllDrives": True, **(shared if drive_id else {})}

    def _list_below(self, drive_id: str | None, folder_ids: Sequence[str]) -> list[Item]:
        """Everything under `folder_ids`, breadth-first, many parents per query."""
        items: list[Item] = []
        seen, frontier = set(folder_ids), list(folder_ids)
        progress = Progress("drive listing", 0, self.clock)
        while frontier:
            parents, frontier = frontier, []
            for q in parent_queries(parents):
                fields = {"pageSize": PAGE_SIZE, "fields": LIST_FIELDS, **self._where(drive_id)}
                for page in self._pages("files.list", q=q, **fields):
                    for item in filter(None, map(to_item, page.get("files", []))):
                        if item.id not in seen:
                            seen.add(item.id)
                            items.append(item)
                            if item.mime_type == FOLDER_MIME:
                                frontier.append(item.id)
                    progress.tick(len(items), verb="items listed")
        return items

    def _full(self, previous: DriveSnapshot | None, now: datetime) -> DriveRead:
        started, calls_before = time.monotonic(), self.calls.requests
        root = self._root(now)
        # The token is taken before listing so that nothing changed meanwhile is missed.
        where = {"driveId": root.drive_id} if root.drive_id else {}
        request = self._service.changes().getStartPageToken(supportsAllDrives=True, **where)
        token = self._call(request, "changes.getStartPageToken")["startPageToken"]
        listed = self._list_below(root.drive_id, [root.root_id])
        # Only what lies under the root, in id order: the snapshot's one shape.
        under = reachable(root.root_id, {i.id: i for i in listed})
        snapshot = replace(root, items=sorted_items(list(under.values())), page_token=token)
        kind = "shared drive" if root.is_shared_drive else "folder"
        log.info(
            "drive: full listing of %s %r: %d items in %d requests, %.2f s",
            kind,
            root.root_name,
            len(snapshot.items),
            self.calls.requests - calls_before,
            time.monotonic() - started,
        )
        return DriveRead(snapshot.tree(), snapshot, differs(previous, snapshot), full=True)

    def _incremental(
        self, previous: DriveSnapshot, load_items: Callable[[], tuple[Item, ...]] | None
    ) -> DriveRead | None:
        """Apply the changes feed to `previous`; None when a full listing is needed.

        With `load_items`, `previous` holds no items yet: they are loaded only when the
        feed reports a change; when it reports none the read says so without a tree."""
        started = time.monotonic()
        try:
            changes, token = self._changes(previous.page_token or "", previous.drive_id)
        except DriveCallError as exc:
            if exc.status not in (400, 404, 410):
                raise
            log.info("drive: changes token rejected (%s), listing the whole drive", exc)
            return None
        if any(
            c.get("fileId") == previous.root_id or c.get("changeType", "file") != "file"
            for c in changes
        ):
            log.info("drive: the root itself changed, listing the whole drive")
            return None
        if load_items is not None:
            if not changes:
                # Cost follows the changes (contract §5.10): the saved items stay unread.
                log.info("drive: changes feed: no changes, %.2f s", time.monotonic() - started)
                return DriveRead(None, replace(previous, page_token=token), False, full=False)
            try:
                previous = replace(previous, items=load_items())
            except ValueError as exc:
                log.warning("drive: saved snapshot unusable (%s); listing the whole drive", exc)
                return None
        after = apply_changes({i.id: i for i in previous.items}, changes)
        under = reachable(previous.root_id, after)
        # A folder that appears under the root (moved in, restored) brings contents the
        # feed does not list: read those subtrees now.
        old = {i.id for i in previous.items if i.mime_type == FOLDER_MIME}
        arrived = sorted(
            i for i, it in under.items() if it.mime_type == FOLDER_MIME and i not in old
        )
        if arrived:
            after.update((i.id, i) for i in self._list_below(previous.drive_id, arrived))
            under = reachable(previous.root_id, after)
        snapshot = replace(previous, items=sorted_items(list(under.values())), page_token=token)
        changed = differs(previous, snapshot)
        log.info(
            "drive: changes feed: %d changes (%s), %d new folders listed, %d items, %.2f s",
            len(changes),
            "drive changed" if changed else "nothing under the root changed",
            len(arrived),
            len(snapshot.items),
            time.monotonic() - started,
        )
        return DriveRead(snapshot.tree(), snapshot, changed, full=False)

    def read(
        self,
        previous: DriveSnapshot | None,
        *,
        full_rescan: bool = False,
        now: datetime,
        load_items: Callable[[], tuple[Item, ...]] | None = None,
    ) -> DriveRead:
        """The drive tree now: from the changes feed applied to `previous` when possible,
        otherwise from a full listing (no or unusable snapshot, `full_rescan`, other root,
        or the last full listing at least `FULL_RESCAN_HOURS` ago).

        `load_items`: `previous` is a header (`DriveSnapshot.header_from_json`) and this
        loads its items, only if the feed reports changes (then `tree` may be None)."""
        reason = full_reason(previous, self.folder_id, full_rescan, now, self.full_rescan_hours)
        got = None
        if previous is not None and reason is None:
            got = self._incremental(previous, load_items)
        if got is None:
            log.debug("drive: full listing because %s", reason or "the feed cannot be followed")
            if previous is not None and load_items is not None and not previous.items:
                try:  # to say whether the listing differs from what was saved
                    previous = replace(previous, items=load_items())
                except ValueError:
                    previous = None
            got = self._full(previous, now)
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
        """Names of the folders in `folder_id` (one page of 100: enough to judge a root)."""
        q = f"{quote(folder_id)} in parents and trashed = false and mimeType = '{FOLDER_MIME}'"
        request = self._service.files().list(
            q=q, pageSize=100, fields="files(name)", **self._where(drive_id)
        )
        return [f.get("name", "") for f in self._call(request, "files.list").get("files", [])]

    def root_parent(self) -> tuple[str, str] | None:
        """The id and name of the folder (or shared drive) that holds FOLDER_ID, for the
        message that FOLDER_ID is one level too deep; None when the account cannot see it."""
        try:
            meta = self.item(self.folder_id, "parents,driveId")
            parent = (meta.get("parents") or [None])[0]
            if parent is None:
                return None
            shared = parent == meta.get("driveId")
            got = self.shared_drive(parent) if shared else self.item(parent, "id,name")
        except ServiceError:
            return None  # a message without the parent's name, not a failed run
        return (str(got["id"]), str(got["name"])) if got else None

    def file_version(self, file_id: str) -> str | None:
        """The Drive `version` of `file_id` (e.g. the report spreadsheet), in one
        `files.get`: it grows on every write to the file, whoever made it. None when the
        file cannot be seen (not found, not shared): the caller then cannot tell."""
        meta = self._found(lambda: self.item(file_id, "version,modifiedTime")) or {}
        version = meta.get("version") or meta.get("modifiedTime")
        return None if version is None else str(version)

    def rename(self, renames: Sequence[Rename]) -> RenameResult:
        """Apply `renames` at the write pacer's rate (contract §5.9); nothing when renames
        are off. Rate-limited parts are sent again; a permanent answer, or nothing
        succeeding for `rename_stall_s`, is a `rename_failed` problem; read-only access
        stops the renames (`refused`). Renames past `rename_budget_s` (or half the run's
        time left), and of files someone else changed since the listing, are `pending`."""
        if renames and not self.allow_renames:
            log.info("drive: %d renames not applied (renames are off)", len(renames))
        if not renames or not self.allow_renames:
            return RenameResult()
        return _Renames(self, renames).run()

    def _send_batch(self, chunk: Sequence[Rename]) -> dict[str, Answer]:
        """One rename batch: id → Google's answer to that part."""
        answers: dict[str, Answer] = {}

        def done(request_id: str, _response: Any, exc: HttpError | None) -> None:
            answer = Answer(Kind.OK, 200) if exc is None else google.answer_of(exc)
            answers[request_id] = answer or Answer(Kind.PERMANENT)

        batch = BatchHttpRequest(callback=done, batch_uri=self._batch_uri)
        for r in chunk:
            update = self._service.files().update(
                fileId=r.id, body={"name": r.new}, supportsAllDrives=True
            )
            batch.add(update, request_id=r.id)
        try:
            batch.execute(http=self._client())
        except Exception as exc:
            answer = google.answer_of(exc)
            if answer is None:
                raise
            if answer.status == 401:
                raise self._rejected(exc) from None
            return dict.fromkeys((r.id for r in chunk), answer)
        unanswered = Answer(Kind.TRANSIENT, 0, "no answer in the batch response")
        return {r.id: answers.get(r.id, unanswered) for r in chunk}

    def _changes(
        self, token: str, drive_id: str | None, fields: str = CHANGE_FIELDS
    ) -> tuple[list[dict[str, Any]], str]:
        """Every change since `token`, and the token to follow the feed from next time."""
        params: dict[str, Any] = {"pageToken": token, "pageSize": PAGE_SIZE, "fields": fields}
        if drive_id:
            params.update(driveId=drive_id, includeItemsFromAllDrives=True)
        changes: list[dict[str, Any]] = []
        for page in self._pages("changes.list", supportsAllDrives=True, **params):
            changes.extend(page.get("changes", []))
            token = page.get("newStartPageToken") or token
        return changes, token

    def _changed_since_listing(self) -> set[str]:
        """Ids of the files the changes feed reports changed since the listing (one
        cheap read; the feed's position moves on). Empty before any `read`."""
        if self._feed is None:
            return set()
        ids_only = "nextPageToken,newStartPageToken,changes(fileId)"
        changes, token = self._changes(*self._feed, ids_only)
        self._feed = (token, self._feed[1])
        return {c.get("fileId", "") for c in changes}


class _Renames:
    """One run's renames: a queue sent one batch at a time as the write pacer allows,
    with the stall rule, the time budget, the changes-feed check and progress lines."""

    def __init__(self, source: DriveSource, renames: Sequence[Rename]) -> None:
        self.source = source
        self.by_id = {r.id: r for r in renames}
        self.queue: deque[str] = deque(self.by_id)
        self.applied: set[str] = set()
        self.failed: dict[str, str] = {}
        self.dropped: set[str] = set()  # files someone else changed, or the feed unread
        self.changed: set[str] = set()  # files someone else changed since the listing
        self.refused = ""
        self.sent_parts = self.limited = self.failing = 0
        self.last_limit = ""

    def run(self) -> RenameResult:
        source, clock = self.source, self.source.clock
        started = last_success = clock.now()
        # Renames never hold back MongoDB and the sheet: they stop at their own budget,
        # and well before the run's deadline.
        budget = min(source.rename_budget_s, source.deadline.left() * 0.5)
        progress = Progress("renames", len(self.by_id), clock)
        while self.queue and not self.refused:
            most = min(len(self.queue), google.BATCH_LIMIT)
            n = source.write_pacer.take(most, latest=started + budget)
            if n is None:
                break  # out of time: the rest is pending
            chunk = self._unchanged([self.queue.popleft() for _ in range(n)])
            if chunk and self._take(chunk, source._send_batch([self.by_id[i] for i in chunk])):
                last_success = clock.now()
            progress.tick(len(self.applied), f"{self.limited:,} rate-limit answers")
            if self.queue and clock.now() - last_success >= source.rename_stall_s:
                why = (
                    f"no rename succeeded for {source.rename_stall_s:g} s (RENAME_STALL_S); "
                    f"Drive kept answering {self.last_limit or 'errors'}"
                )
                self.failed.update(dict.fromkeys(self.queue, why))
                self.queue.clear()
        return self._result(frozenset(self.queue) | self.dropped, clock.now() - started, budget)

    def _unchanged(self, chunk: list[str]) -> list[str]:
        """`chunk` without the files someone else renamed, moved or trashed since the
        listing: renaming them would overwrite what a person did."""
        try:
            # Our own renames come back through the feed too: only others' changes count.
            self.changed |= self.source._changed_since_listing() - self.applied
        except DriveCallError as exc:  # e.g. the token expired: what changed is unknown
            log.warning("drive: renames stopped, the rest next run: %s", exc)
            self.dropped.update(chunk, self.queue)
            self.queue.clear()
            return []
        dropped = [i for i in chunk if i in self.changed]
        if dropped:
            log.info(
                "drive: %d files changed in Drive during the run, renamed next run", len(dropped)
            )
            self.dropped.update(dropped)
        return [i for i in chunk if i not in self.changed]

    def _take(self, chunk: list[str], answers: dict[str, Answer]) -> bool:
        """Fold one batch's answers in; True when at least one part was renamed."""
        accepted = transient = limited = 0
        waits = [a.retry_after for a in answers.values() if a.retry_after is not None]
        again: list[str] = []
        for rid in chunk:
            answer = answers[rid]
            if answer.kind is Kind.OK:
                accepted += 1
                self.applied.add(rid)
            elif READ_ONLY in answer.reasons:
                self.failed[rid] = self._read_only()
            elif answer.kind is Kind.PERMANENT:
                self.failed[rid] = answer.message or f"HTTP {answer.status}"
            else:
                limited += answer.kind is Kind.RATE_LIMIT
                transient += answer.kind is Kind.TRANSIENT
                self.last_limit = answer.message if limited else self.last_limit or answer.message
                again.append(rid)
        self.sent_parts += len(chunk)
        self.limited += limited
        if again:
            # Back at the front: the oldest work goes first, and the order stays stable.
            self.queue.extendleft(reversed(again))
        pacer = self.source.write_pacer
        # Backoff after errors grows with consecutive failing batches, not with the total.
        self.failing = 0 if accepted or not transient else self.failing + 1
        if limited:
            pacer.refused(max(waits, default=None))
        elif self.failing:
            pacer.hold(max(waits) if waits else pacer.backoff(self.failing))
        else:
            pacer.accepted()
        return accepted > 0

    def _read_only(self) -> str:
        """Why a refused rename failed, and the fix; the first such answer stops renames."""
        who = self.source.who
        fix = (
            f"give {who} the Content manager role on the shared drive (or edit access to "
            "the folder), or set RENAME_FILES=false"
        )
        self.refused = self.refused or f"renames stopped: {who} may only read the drive; {fix}"
        return f"{who} may only read the drive: {fix}"

    def _result(self, pending: frozenset[str], elapsed: float, budget: float) -> RenameResult:
        by_id = self.by_id
        problems = tuple(
            Problem(
                Category.RENAME_FAILED,
                "Rename failed",
                by_id[rid].path,
                rid,
                f"to {by_id[rid].new!r}: {why}",
            )
            for rid, why in sorted(self.failed.items(), key=lambda kv: (by_id[kv[0]].path, kv[0]))
        )
        out_of_time = f": RENAME_BUDGET_S or the run's time ({budget:.0f} s) ran out"
        log.info(
            "drive: renamed %d of %d files (%d failed, %d pending%s), %d write attempts, "
            "%d rate-limit answers, %.2f s",
            len(self.applied),
            len(by_id),
            len(problems),
            len(pending),
            out_of_time if pending - self.dropped else "",
            self.sent_parts,
            self.limited,
            elapsed,
        )
        return RenameResult(frozenset(self.applied), problems, pending, self.refused)


class Progress:
    """An INFO line about every `every` seconds while a long phase runs:
    `renames: 1,200 of 6,700 applied, 3.1/s, about 29 min left (…)`."""

    def __init__(
        self, what: str, total: int, clock: google.Clock, every: float = PROGRESS_EVERY_S
    ) -> None:
        self.what, self.total, self.clock, self.every = what, total, clock, every
        self.started = clock.now()
        self.next = self.started + every

    def tick(self, done: int, note: str = "", verb: str = "applied") -> None:
        """Log the line if it is time to."""
        now = self.clock.now()
        if now < self.next:
            return
        self.next = now + self.every
        rate = done / max(now - self.started, 1e-9)
        line = f"{self.what}: {done:,}" + (f" of {self.total:,}" if self.total else "")
        line += f" {verb}, {rate:.1f}/s"
        if self.total and rate > 0:
            left = (self.total - done) / rate
            when = f"{left:.0f} s" if left < 90 else f"{left / 60:.0f} min"
            line += f", about {when if left < 5400 else f'{left / 3600:.1f} h'} left"
        # `extra`: for `status` while the run goes on (pipeline notes it in the lock file).
        progress = {"what": self.what, "done": done, "total": self.total, "rate": round(rate, 2)}
        log.info("%s%s", line, f" ({note})" if note else "", extra={"progress": progress})
