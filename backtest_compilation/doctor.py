"""`doctor`: check the whole set-up against the real services, one line per check (contract §7).

Every check says ✓ or ✗; each ✗ carries its fix and the README section to read. Only
reads are sent (token requests, `drives.get`/`files.get` with `capabilities`, Sheets
metadata, MongoDB `ping`/`connectionStatus`/`listCollections`), nothing anywhere is
written, and every call has a short timeout without retries, so the whole check ends
within a minute even when a server never answers: after the first call to a service
that does not answer, the later checks of that service are skipped.

Exit 0 when a sync would work, 2 otherwise.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO
from zoneinfo import ZoneInfo

from . import schedule, settings
from .adapters import sheet_layout
from .drive import SCOPE_READ, SCOPE_RENAME, DriveCallError, DriveSource
from .errors import ConfigError, RunError
from .naming import department_code, parse_course
from .sheet import SCOPE, open_report
from .sheet_contents import Layout
from .store import BACKTESTS, CODES, COURSES
from .tree import FOLDER_MIME

CALL_TIMEOUT_S: Final = 8.0
MONGO_TIMEOUT_MS: Final = 5000
SHEET_MIME: Final = "application/vnd.google-apps.spreadsheet"
# Built-in MongoDB roles that may insert, update and delete in a database's collections.
_WRITE_ROLES: Final = {"readWrite", "dbOwner", "root", "readWriteAnyDatabase", "__system"}
_ANY_DB_ROLES: Final = {"root", "readWriteAnyDatabase", "__system"}
COLLECTIONS: Final = (CODES, COURSES, BACKTESTS)

# README sections a fix points to.
README_CONFIG = 'README "Configuration"'
README_GOOGLE = 'README "Google set-up (once)"'
README_MONGO = 'README "MongoDB"'
README_SHEET = 'README "The sheet"'
README_OPERATING = 'README "Operating it"'
README_TROUBLE = 'README "Troubleshooting"'


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    skipped: bool = False  # not run because of another line's ✗: not a failure of its own

    def line(self) -> str:
        mark = "–" if self.skipped else "✓" if self.ok else "✗"
        text = f"{mark} {self.name}: {self.detail}"
        if not self.ok and self.fix:
            text += f"\n    fix: {self.fix}"
        return text


@dataclass
class _Unanswered:
    """Services that did not answer once: their later checks are skipped."""

    services: set[str] = field(default_factory=set)


def _ok(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def _bad(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)


def _skipped(name: str, detail: str) -> Check:
    return Check(name, False, detail, skipped=True)


# ---------------------------------------------------------------- local checks


def check_settings(env: Mapping[str, str]) -> tuple[settings.Settings | None, list[Check]]:
    """Settings load (`FOLDER_ID` required: doctor checks a Drive sync)."""
    try:
        config = settings.load(env, needs_drive=True)
    except ConfigError as exc:
        return None, [_bad("settings", line, f"see {README_CONFIG}") for line in exc.problems]
    return config, [_ok("settings", "all present and well-formed")]


def check_key_file(config: settings.Settings) -> Check:
    """The key file parses and is a service-account key (without quoting any of it)."""
    name = "key file"
    needed = [
        api
        for api, used, endpoint in (
            ("Drive", True, config.drive_api_endpoint),
            ("Sheets", bool(config.sheet_url), config.sheets_api_endpoint),
        )
        if used and not endpoint
    ]
    if not needed:
        return _ok(name, "not needed (DRIVE_API_ENDPOINT/SHEETS_API_ENDPOINT answer without one)")
    path = config.google_credentials_file
    fix = f"download a JSON key of the service account into {str(path)!r}; see {README_GOOGLE}"
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _bad(name, f"GOOGLE_CREDENTIALS_FILE {str(path)!r} does not exist", fix)
    except (OSError, ValueError) as exc:
        return _bad(name, f"{str(path)!r} is not readable JSON ({type(exc).__name__})", fix)
    if not isinstance(doc, dict) or doc.get("type") != "service_account":
        return _bad(
            name, f"{str(path)!r} is not a service-account key (type is not service_account)", fix
        )
    missing = [k for k in ("client_email", "private_key", "token_uri") if not doc.get(k)]
    if missing:
        return _bad(name, f"{str(path)!r} lacks {', '.join(missing)}", fix)
    try:
        from google.oauth2 import service_account

        service_account.Credentials.from_service_account_info(doc)
    except (ValueError, KeyError, TypeError) as exc:
        return _bad(name, f"{str(path)!r} holds no usable private key ({type(exc).__name__})", fix)
    return _ok(name, f"service account {doc['client_email']} ({', '.join(needed)})")


def check_cache_dir(config: settings.Settings) -> Check:
    """`CACHE_DIR` exists or can be created, and a file can be created in it (the probe
    file is removed at once; nothing else is touched)."""
    name = "CACHE_DIR"
    path = Path(config.cache_dir)
    fix = (
        f"make {str(path)!r} a writable directory for the user running the tool "
        f"(in the container, the cache volume); see {README_OPERATING}"
    )
    probe_dir = path
    while not probe_dir.exists():
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        return _bad(
            name, f"{str(probe_dir)!r} is not a directory, so {str(path)!r} cannot be created", fix
        )
    try:
        fd, tmp = tempfile.mkstemp(prefix=".doctor-", dir=probe_dir)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return _bad(name, f"{str(probe_dir)!r} is not writable ({exc.strerror or exc})", fix)
    if probe_dir != path:
        return _ok(name, f"{str(path)!r} does not exist yet; the first sync creates it")
    return _ok(name, f"{str(path)!r} is writable")


def check_sentry(config: settings.Settings) -> Check:
    """`SENTRY_DSN` is a DSN the SDK accepts (never printed)."""
    name = "SENTRY_DSN"
    if not config.sentry_dsn:
        return _ok(name, "not set: error reporting and Sentry Crons are off")
    try:
        from sentry_sdk.utils import BadDsn, Dsn
    except ImportError:  # pragma: no cover - a declared dependency
        return _ok(name, "set (the SDK is not installed to check it)")
    try:
        dsn = Dsn(config.sentry_dsn)
    except BadDsn as exc:
        return _bad(
            name,
            f"not a valid DSN ({str(exc).split(':')[0] or 'malformed'})",
            "copy the DSN from Sentry: Project settings → Client Keys (DSN); "
            f"see {README_OPERATING}",
        )
    return _ok(name, f"well-formed (host {dsn.host}); monitor slug {config.sentry_monitor_slug!r}")


def check_schedule(config: settings.Settings, now: datetime | None = None) -> Check:
    """The next three run times of `SCHEDULE` in `TZ`."""
    zone = ZoneInfo(config.tz)
    at = now or datetime.now(UTC)
    times = []
    for _ in range(3):
        at = schedule.next_run(config.schedule, zone, at)
        times.append(at.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z"))
    return _ok("SCHEDULE/TZ", f"{config.schedule!r} in {config.tz}: next {'; '.join(times)}")


def check_healthcheck(config: settings.Settings) -> Check:
    """Whether `HEALTHCHECK_URL` is set (it is not pinged: a ping is a write)."""
    if not config.healthcheck_url:
        return _ok("HEALTHCHECK_URL", "not set: no dead-man's-switch monitor is pinged")
    return _ok("HEALTHCHECK_URL", "set (not pinged by doctor: a ping would change the monitor)")


# ---------------------------------------------------------------- Google


def drive_scopes(config: settings.Settings) -> tuple[str, ...]:
    """The Drive scopes a sync asks for (renames on: read + metadata)."""
    return (SCOPE_READ, SCOPE_RENAME) if config.rename_files else (SCOPE_READ,)


def check_token(
    name: str, credentials: Any, scopes: Sequence[str], delegate: str, timeout_s: float
) -> Check:
    """Ask Google for a token of exactly `scopes` for `delegate` (a read: nothing changes)."""
    import google.auth.exceptions
    import httplib2
    from google_auth_httplib2 import Request

    listed = ", ".join(s.rsplit("/", 1)[-1] for s in scopes)
    fix = (
        f"in the Google Admin console → Security → API controls → Domain-wide delegation, "
        f"grant the service account's client id exactly these scopes: {', '.join(scopes)}; "
        f"see {README_GOOGLE}"
    )
    try:
        # google-auth's own transport waits up to 120 s; doctor must finish quickly.
        credentials.refresh(Request(httplib2.Http(timeout=timeout_s)))
    except google.auth.exceptions.RefreshError as exc:
        first = str(exc.args[0]) if exc.args else "refused"
        code = first.split(":", 1)[0].strip() or "refused"
        return _bad(name, f"Google refused a token for {listed} as {delegate!r}: {code}", fix)
    except google.auth.exceptions.TransportError as exc:
        return _bad(
            name,
            f"the token endpoint did not answer ({type(exc).__name__})",
            f"check the network connection to oauth2.googleapis.com; see {README_TROUBLE}",
        )
    return _ok(name, f"granted for {listed} as {delegate or 'the service account'}")


def _drive_silent(reason: str) -> Check:
    """The FOLDER_ID line when Drive gave no HTTP answer at all."""
    return _bad(
        "FOLDER_ID",
        f"Drive did not answer ({reason})",
        f"check the network connection to www.googleapis.com; see {README_TROUBLE}",
    )


def _who(config: settings.Settings) -> str:
    """Who the checks act as: `DELEGATE_EMAIL`, else the service account the key names
    (never "the account in use": the person fixing the share needs an address)."""
    if config.delegate_email:
        return config.delegate_email
    try:
        email = json.loads(Path(config.google_credentials_file).read_text(encoding="utf-8"))[
            "client_email"
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return "the service account (DELEGATE_EMAIL is not set)"
    return f"the service account {email} (DELEGATE_EMAIL is not set)"


def check_folder(
    config: settings.Settings, drive: DriveSource, dead: _Unanswered
) -> Iterator[Check]:
    """`FOLDER_ID` exists, is a shared drive or a folder that holds departments, and
    (renames on) the delegate may rename in it: Drive's `capabilities.canEdit`."""
    who = _who(config)
    caps = "capabilities(canEdit)"
    try:
        meta = drive.shared_drive(config.folder_id, f"id,name,{caps}")
        kind = "shared drive" if meta is not None else "folder"
        if meta is None:
            meta = drive.item(config.folder_id, f"id,name,mimeType,trashed,driveId,parents,{caps}")
    except DriveCallError as exc:
        if exc.status == 0:
            dead.services.add("drive")
            yield _drive_silent(exc.detail)
            return
        yield _bad(
            "FOLDER_ID",
            f"{config.folder_id!r} was not found by {who} (HTTP {exc.detail})",
            f"share the drive or folder with {who} (renames need Content manager / Editor), "
            f"or fix FOLDER_ID; see {README_GOOGLE}",
        )
        return
    if meta.get("mimeType", FOLDER_MIME) != FOLDER_MIME:
        yield _bad(
            "FOLDER_ID",
            f"{config.folder_id!r} is a file ({meta.get('mimeType')}), "
            "not a shared drive or folder",
            f"use the id of the backtest drive or its folder; see {README_CONFIG}",
        )
        return
    if meta.get("trashed"):
        yield _bad(
            "FOLDER_ID",
            f"folder {meta.get('name')!r} is in the trash",
            f"restore it from the trash in Drive, or fix FOLDER_ID; see {README_CONFIG}",
        )
        return
    title = meta.get("name", "")
    try:
        deep = _one_level_too_deep(drive, meta, kind == "shared drive")
    except RunError:  # a listing refused: the rights lines below say why
        deep = None
    if deep is None:
        yield _ok("FOLDER_ID", f"{kind} {title!r}, readable by {who}")
    else:
        courses, parent = deep
        use = f"set FOLDER_ID to {parent}" if parent else "set FOLDER_ID to the folder above it"
        yield _bad(
            "FOLDER_ID",
            f"{kind} {title!r} holds course folders ({courses}), not departments: "
            "it is one level too deep",
            f"{use}, the one that holds the department folders; see {README_CONFIG}",
        )
    yield _rename_rights(config, bool(meta.get("capabilities", {}).get("canEdit")), kind, who)


def _rename_rights(config: settings.Settings, can_edit: bool, kind: str, who: str) -> Check:
    if not config.rename_files:
        return _ok("rename rights", "renames are off (RENAME_FILES=false): reading is enough")
    if can_edit:
        return _ok("rename rights", f"{who} may rename files in the {kind}")
    return _bad(
        "rename rights",
        f"{who} may only read the {kind} (Drive capabilities.canEdit is false)",
        f"give {who} the Content manager role on the shared drive (Editor on a folder), "
        f"or set RENAME_FILES=false; see {README_GOOGLE}",
    )


def _one_level_too_deep(
    drive: DriveSource, meta: Mapping[str, Any], shared: bool
) -> tuple[str, str] | None:
    """When the root's child folders look like course folders (`DEPT-NNNN Title`) and
    none like a department: (a few of their names, its parent `'name' (id)` when the
    account can see it, else ""). None when the root looks right."""
    drive_id = meta["id"] if shared else meta.get("driveId")
    names = drive.child_folders(meta["id"], drive_id)
    courses = sorted(n for n in names if parse_course(n))
    if not courses or any(department_code(n) for n in names):
        return None
    shown = ", ".join(map(repr, courses[:2])) + (", …" if len(courses) > 2 else "")
    parent = (meta.get("parents") or [""])[0]
    try:  # a folder at the top of a shared drive has the drive as its parent
        above = drive.shared_drive(parent) if parent == drive_id else drive.item(parent, "name")
    except RunError:
        above = None
    if not parent or above is None:  # a shared drive, or a parent the account cannot see
        return shown, ""
    return shown, f"{above.get('name', '')!r} ({parent})"


def check_spreadsheet(
    config: settings.Settings,
    drive: DriveSource,
    sheets_credentials: Any,
    dead: _Unanswered,
    timeout_s: float,
) -> Iterator[Check]:
    """The spreadsheet is reachable, editable by the delegate (Drive's
    `capabilities.canEdit` for its id), has the people's tab, and the tool's tabs exist or
    can be created."""
    who = _who(config)
    if not config.sheet_url:
        yield _ok("spreadsheet", "SHEET_URL is not set: syncs skip the sheet (with a warning)")
        return
    share_fix = f"share the spreadsheet with {who} as Editor, or fix SHEET_URL; see {README_SHEET}"
    key = config.sheet_key
    if "drive" in dead.services:
        yield _skipped("spreadsheet", "not checked: Drive did not answer")
        return
    try:
        meta = drive.item(key, "id,name,mimeType,capabilities(canEdit)")
    except DriveCallError as exc:
        detail = f"HTTP {exc.detail}" if exc.status else exc.detail
        yield _bad("spreadsheet", f"{key} is not visible to {who} in Drive ({detail})", share_fix)
        return
    if meta.get("mimeType") != SHEET_MIME:
        yield _bad(
            "spreadsheet",
            f"{key} is a {meta.get('mimeType')}, not a Google Sheet",
            f"use the URL of the tracking spreadsheet; see {README_SHEET}",
        )
        return
    editable = bool(meta.get("capabilities", {}).get("canEdit"))
    if editable:
        yield _ok("spreadsheet", f"{meta.get('name')!r} reachable and editable by {who}")
    else:
        yield _bad(
            "spreadsheet",
            f"{meta.get('name')!r} is reachable but {who} may not edit "
            "it (Drive capabilities.canEdit is false)",
            share_fix,
        )
    layout = sheet_layout(config)
    report = open_report(
        key,
        endpoint=config.sheets_api_endpoint,
        credentials=sheets_credentials,
        layout=layout,
        retries=0,
        who=who,
        timeout=timeout_s,
    )
    try:
        titles = [tab.title for tab in report.read().tabs]
    except RunError as exc:
        yield _bad("sheet tabs", f"Sheets could not read the tabs: {exc}", share_fix)
        return
    yield from _tabs(layout, titles, editable, who, share_fix)


def _tabs(
    layout: Layout, titles: list[str], editable: bool, who: str, share_fix: str
) -> Iterator[Check]:
    """The people's tab is there; the tool's tabs are, or can be created."""
    folded = {t.casefold() for t in titles}
    if layout.copies_tab.casefold() in folded:
        yield _ok("people's tab", f"{layout.copies_tab!r} present")
    else:
        yield _bad(
            "people's tab",
            f"{layout.copies_tab!r} is missing; the tabs are {', '.join(map(repr, titles))}",
            f"rename the tab back, or set SHEET_COPIES_TAB to its name; see {README_SHEET}",
        )
    for tab in (layout.errors_tab, layout.not_found_tab):
        if tab.casefold() in folded:
            yield _ok("tool's tab", f"{tab!r} present")
        elif editable:
            yield _ok("tool's tab", f"{tab!r} missing; the first sync creates it")
        else:
            yield _bad("tool's tab", f"{tab!r} missing and {who} cannot create it", share_fix)


# ---------------------------------------------------------------- MongoDB


def can_write_collections(status: Mapping[str, Any], db: str) -> tuple[bool, str]:
    """Whether the user of a `connectionStatus` answer (asked with `showPrivileges`) may
    insert, update and remove in the three collections of database `db`, and why.

    The privileges decide when the server lists them (mongod does); otherwise the
    roles: a write role on `db`, or one that writes any database. The reason is the
    line doctor prints: the rights found, or what is missing."""
    info = status.get("authInfo", {})
    privileges = info.get("authenticatedUserPrivileges") or []
    needed = {"insert", "update", "remove"}
    if privileges:
        for name in COLLECTIONS:
            allowed: set[str] = set()
            for p in privileges:
                res = p.get("resource", {})
                if res.get("anyResource") or (
                    res.get("db") in (db, "") and res.get("collection") in (name, "")
                ):
                    allowed.update(p.get("actions", []))
            if "anyAction" in allowed:  # MongoDB's superuser action: every action
                continue
            if not needed <= allowed:
                return False, f"no {', '.join(sorted(needed - allowed))} on {db}.{name}"
        return True, "insert, update and remove on the three collections"
    roles = info.get("authenticatedUserRoles") or []
    for role in roles:
        if role.get("role") in _ANY_DB_ROLES or (
            role.get("role") in _WRITE_ROLES and role.get("db") == db
        ):
            return True, f"role {role.get('role')} on {role.get('db')}"
    names = ", ".join(f"{r.get('role')}@{r.get('db')}" for r in roles) or "none"
    return False, f"roles {names} do not allow writing to {db}"


def check_mongo(config: settings.Settings, *, timeout_ms: int = MONGO_TIMEOUT_MS) -> list[Check]:
    """MongoDB reachable, authenticated, and allowed to write the three collections."""
    from .settings import redact_uri

    where = redact_uri(config.mongo_uri)
    if config.uses_mongomock:
        return [_ok("MongoDB", "mongomock:// in-process store (nothing to check)")]
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure, PyMongoError

    fix_reach = (
        f"start MongoDB or fix the host in MONGO_URI ({where}); in compose, the `mongo` "
        f"service must be up; see {README_MONGO}"
    )
    client: Any = MongoClient(
        config.mongo_uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=timeout_ms,
        appname="backtest-compilation doctor",
    )
    try:
        try:
            client.admin.command("ping")
        except OperationFailure as exc:
            if exc.code in (18, 13):
                return [
                    _bad(
                        "MongoDB",
                        f"{where} refused the credentials (code {exc.code})",
                        f"fix the user or password in MONGO_URI; see {README_MONGO}",
                    )
                ]
            raise
        except PyMongoError as exc:
            text = str(exc).split(",")[0][:160]
            if "auth" in text.lower():
                return [
                    _bad(
                        "MongoDB",
                        f"{where} refused the credentials",
                        f"fix the user or password in MONGO_URI; see {README_MONGO}",
                    )
                ]
            return [
                _bad(
                    "MongoDB",
                    f"{where} did not answer within {timeout_ms / 1000:g} s ({type(exc).__name__})",
                    fix_reach,
                )
            ]
        return [_ok("MongoDB", f"{where} reachable"), _mongo_rights(client, config.mongo_db)]
    except PyMongoError as exc:
        return [_bad("MongoDB", f"{where}: {type(exc).__name__}", fix_reach)]
    finally:
        client.close()


def _mongo_rights(client: Any, db: str) -> Check:
    """Whether the user MONGO_URI names may write the three collections of `db`."""
    from pymongo.errors import OperationFailure

    name = "MongoDB rights"
    status = client.admin.command("connectionStatus", showPrivileges=True)
    users = status.get("authInfo", {}).get("authenticatedUsers") or []
    if not users:
        try:
            client[db].list_collection_names()
        except OperationFailure as exc:
            return _bad(
                name,
                f"not authenticated and the server requires it (code {exc.code})",
                f"put the user and password into MONGO_URI; see {README_MONGO}",
            )
        return _ok(name, f"no authentication required: any client may write {db}")
    allowed, why = can_write_collections(status, db)
    user = users[0].get("user", "?")
    if allowed:
        return _ok(name, f"user {user!r}: {why}")
    fix = f"grant the user readWrite on {db} (db.grantRolesToUser); see {README_MONGO}"
    return _bad(name, f"user {user!r}: {why}", fix)


# ---------------------------------------------------------------- all of it


def _google_checks(config: settings.Settings, key_ok: bool, timeout_s: float) -> Iterator[Check]:
    """Tokens of exactly the scopes a sync asks for, then Drive and the spreadsheet
    through the adapters a sync uses (one attempt per call: doctor must be quick)."""
    from google.auth.credentials import AnonymousCredentials

    from .google import credentials

    creds: dict[str, Any] = {}
    tokens_ok = key_ok
    for api, scopes, needed in (
        ("Drive", drive_scopes(config), not config.drive_api_endpoint),
        ("Sheets", (SCOPE,), bool(config.sheet_url) and not config.sheets_api_endpoint),
    ):
        if key_ok and needed:
            who = config.delegate_email
            creds[api] = credentials(config.google_credentials_file, who, scopes)
            check = check_token(f"{api} token", creds[api], scopes, who, timeout_s)
            tokens_ok = tokens_ok and check.ok
            yield check
    if config.drive_api_endpoint or config.sheets_api_endpoint:
        yield _ok("tokens", "not asked for the APIs with an endpoint set (no credentials used)")
    if not tokens_ok:
        yield _skipped("Drive and the spreadsheet", "not checked without a key and tokens")
        return
    drive = DriveSource(
        config.folder_id,
        credentials=creds.get("Drive") or AnonymousCredentials(),
        endpoint=config.drive_api_endpoint,
        delegate=config.delegate_email,
        num_retries=0,
        timeout=timeout_s,
        call_budget_s=timeout_s,
    )
    dead = _Unanswered()
    yield from check_folder(config, drive, dead)
    yield from check_spreadsheet(config, drive, creds.get("Sheets"), dead, timeout_s)


def run_checks(
    env: Mapping[str, str],
    *,
    timeout_s: float = CALL_TIMEOUT_S,
    mongo_timeout_ms: int = MONGO_TIMEOUT_MS,
    emit: Callable[[Check], None] = lambda c: None,
) -> list[Check]:
    """Every check in order; `emit` sees each as soon as it is known."""
    out: list[Check] = []

    def add(check: Check) -> None:
        out.append(check)
        emit(check)

    config, checks = check_settings(env)
    for c in checks:
        add(c)
    if config is None:
        add(_skipped("other checks", "skipped until the settings are fixed"))
        return out
    key = check_key_file(config)
    add(key)

    for check in _google_checks(config, key.ok, timeout_s):
        add(check)
    for check in check_mongo(config, timeout_ms=mongo_timeout_ms):
        add(check)
    add(check_cache_dir(config))
    add(check_sentry(config))
    add(check_healthcheck(config))
    add(check_schedule(config))
    return out


def main(env: Mapping[str, str], *, out: TextIO) -> int:
    """`main.py doctor`: print each check as it completes; 0 when a sync would work, else 2."""
    started = time.monotonic()
    print("backtest-compilation doctor: checking the set-up (nothing is changed)", file=out)

    def emit(check: Check) -> None:
        print(check.line(), file=out, flush=True)

    checks = run_checks(env, emit=emit)
    failed = [c for c in checks if not c.ok and not c.skipped]
    skipped = sum(c.skipped for c in checks)
    elapsed = time.monotonic() - started
    if failed or skipped:
        print(
            f"{len(failed)} of {len(checks) - skipped} checks failed"
            f"{f', {skipped} skipped' if skipped else ''} ({elapsed:.1f} s): fix the ✗ "
            "lines, then run doctor again.",
            file=out,
        )
        return 2
    print(
        f"all {len(checks)} checks passed ({elapsed:.1f} s): a sync would work. Next: "
        "`sync --dry-run`, then `sync --no-rename`, then `sync`.",
        file=out,
    )
    return 0
