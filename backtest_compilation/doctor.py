"""`doctor`: check the set-up against the real services, one line per check (contract §7).
Reads only, through a sync's adapters, one short try per call; each ✗ names its fix."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TextIO
from zoneinfo import ZoneInfo

import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google_auth_httplib2 import Request
from pymongo.errors import ConnectionFailure, PyMongoError
from sentry_sdk.utils import BadDsn, Dsn

from . import adapters, google, schedule, settings
from .drive import SCOPE_READ, SCOPE_RENAME, DriveCallError, DriveSource
from .errors import ConfigError, RunError
from .naming import department_code, parse_course
from .sheet import SCOPE
from .store import AUTH_ERROR_CODES, BACKTESTS, CODES, COURSES, Store
from .tree import FOLDER_MIME

TIMEOUT_S = 8.0  # one call to Google
MONGO_TIMEOUT_MS = 5000
SILENT = "Drive did not answer"
CONFIG, GOOGLE = 'see README "Configuration"', 'see README "Google set-up (once)"'
MONGO, SHEET = 'see README "MongoDB"', 'see README "The sheet"'
OPERATING, TROUBLE = 'see README "Operating it"', 'see README "Troubleshooting"'


class Check(NamedTuple):
    """One line of the report: a ✓, a ✗ (it has a fix), or – when skipped because of a ✗."""

    name: str
    detail: str
    fix: str = ""
    skipped: bool = False


def _keyed(config: settings.Settings) -> dict[str, tuple[str, ...]]:
    """The APIs a sync reaches with the key (no emulator endpoint), with the scopes it asks."""
    drive = (SCOPE_READ, SCOPE_RENAME) if config.rename_files else (SCOPE_READ,)
    sheets = bool(config.sheet_url) and not config.sheets_api_endpoint
    apis = {"Drive": (drive, not config.drive_api_endpoint), "Sheets": ((SCOPE,), sheets)}
    return {api: scopes for api, (scopes, keyed) in apis.items() if keyed}


def check_key_file(config: settings.Settings) -> Check:
    """The key file is a service-account key (without quoting any of it)."""
    name, path, needed = "key file", str(config.google_credentials_file), _keyed(config)
    if not needed:
        return Check(name, "not needed (DRIVE_API_ENDPOINT/SHEETS_API_ENDPOINT answer without one)")
    fix = f"download a JSON key of the service account into {path!r}; {GOOGLE}"
    try:
        if Path(path).is_file():  # else google.credentials says it does not exist
            json.loads(Path(path).read_text(encoding="utf-8"))
        email = google.credentials(path, "", ()).service_account_email
    except (OSError, ValueError) as exc:
        return Check(name, f"{path!r} is not readable JSON ({type(exc).__name__})", fix)
    except ConfigError as exc:
        return Check(name, str(exc), fix)
    return Check(name, f"service account {email} ({', '.join(needed)})")


def check_token(name: str, key: Path | str, scopes: Sequence[str], delegate: str) -> Check:
    """Ask Google for a token of exactly `scopes` for `delegate` with `key` (nothing changes)."""
    listed = ", ".join(s.rsplit("/", 1)[-1] for s in scopes)
    try:  # google-auth's own transport would wait up to 120 s
        google.credentials(key, delegate, scopes).refresh(Request(httplib2.Http(timeout=TIMEOUT_S)))
    except RefreshError as exc:
        code = str(exc.args[0] if exc.args else "").split(":", 1)[0].strip() or "refused"
        fix = "in the Google Admin console → Security → API controls → Domain-wide delegation, "
        fix += f"grant the service account's client id exactly these scopes: {', '.join(scopes)}"
        detail = f"Google refused a token for {listed} as {delegate!r}: {code}"
        return Check(name, detail, f"{fix}; {GOOGLE}")
    except TransportError as exc:
        fix = f"check the network connection to oauth2.googleapis.com; {TROUBLE}"
        return Check(name, f"the token endpoint did not answer ({type(exc).__name__})", fix)
    return Check(name, f"granted for {listed} as {delegate or 'the service account'}")


def check_folder(config: settings.Settings, drive: DriveSource, who: str) -> list[Check]:
    """`FOLDER_ID` is a drive or folder of departments that (renames on) `who` may edit."""
    folder, caps = config.folder_id, "capabilities(canEdit)"
    try:
        meta = drive.shared_drive(folder, f"id,name,{caps}")
        kind = "folder" if meta is None else "shared drive"
        meta = meta or drive.item(folder, f"id,name,mimeType,trashed,driveId,{caps}")
    except DriveCallError as exc:
        if exc.status == 0:
            fix = f"check the network connection to www.googleapis.com; {TROUBLE}"
            return [Check("FOLDER_ID", f"{SILENT} ({exc.detail})", fix)]
        fix = f"share the drive or folder with {who} (renames need Content manager / Editor)"
        detail = f"{folder!r} was not found by {who} (HTTP {exc.detail})"
        return [Check("FOLDER_ID", detail, f"{fix}, or fix FOLDER_ID; {GOOGLE}")]
    title, mime = meta.get("name", ""), meta.get("mimeType", FOLDER_MIME)
    if mime != FOLDER_MIME:
        detail = f"{folder!r} is a file ({mime}), not a shared drive or folder"
        fix = f"use the id of the backtest drive or its folder; {CONFIG}"
        return [Check("FOLDER_ID", detail, fix)]
    if meta.get("trashed"):
        fix = f"restore it from the trash in Drive, or fix FOLDER_ID; {CONFIG}"
        return [Check("FOLDER_ID", f"folder {title!r} is in the trash", fix)]
    top = _too_deep(drive, meta, kind) or Check("FOLDER_ID", f"{kind} {title!r}, readable by {who}")
    if not config.rename_files:
        rights = Check("rename rights", "renames are off (RENAME_FILES=false): reading is enough")
    elif meta.get("capabilities", {}).get("canEdit"):
        rights = Check("rename rights", f"{who} may rename files in the {kind}")
    else:
        detail = f"{who} may only read the {kind} (Drive capabilities.canEdit is false)"
        fix = f"give {who} the Content manager role on the shared drive (Editor on a folder)"
        rights = Check("rename rights", detail, f"{fix}, or set RENAME_FILES=false; {GOOGLE}")
    return [top, rights]


def _too_deep(drive: DriveSource, meta: Mapping[str, Any], kind: str) -> Check | None:
    """A ✗ when the root holds courses (`DEPT-NNNN Title`), no department: one level too deep."""
    try:
        drive_id = meta["id"] if kind == "shared drive" else meta.get("driveId")
        names = drive.child_folders(meta["id"], drive_id)
    except RunError:  # a listing refused: the rights line says why
        return None
    courses = sorted(n for n in names if parse_course(n))
    if not courses or any(department_code(n) for n in names):
        return None
    shown = ", ".join(map(repr, courses[:2])) + (", …" if len(courses) > 2 else "")
    above = drive.root_parent()
    use = f"{above[1]!r} ({above[0]})" if above else "the folder above it"
    detail = f"{kind} {meta.get('name', '')!r} holds course folders ({shown}), not departments"
    fix = f"set FOLDER_ID to {use}, the one that holds the department folders; {CONFIG}"
    return Check("FOLDER_ID", detail + ": it is one level too deep", fix)


def check_spreadsheet(config: settings.Settings, drive: DriveSource, who: str) -> Iterator[Check]:
    """`who` may edit the spreadsheet; it has the people's tab, and the tool's or may get them."""
    key, layout = config.sheet_key, adapters.sheet_layout(config)
    share = f"share the spreadsheet with {who} as Editor, or fix SHEET_URL; {SHEET}"
    try:
        meta = drive.item(key, "id,name,capabilities(canEdit)")
    except DriveCallError as exc:
        detail = f"HTTP {exc.detail}" if exc.status else exc.detail
        yield Check("spreadsheet", f"{key} is not visible to {who} in Drive ({detail})", share)
        return
    name, editable = meta.get("name"), bool(meta.get("capabilities", {}).get("canEdit"))
    yes = f"{name!r} reachable and editable by {who}"
    no = f"{name!r} is reachable but {who} may not edit it (Drive capabilities.canEdit is false)"
    yield Check("spreadsheet", yes) if editable else Check("spreadsheet", no, share)
    try:
        titles = [tab.title for tab in adapters.connect_sheet(config, one_try_s=TIMEOUT_S).read()]
    except RunError as exc:
        yield Check("sheet tabs", f"Sheets could not read the tabs: {exc}", share)
        return
    present = {t.casefold() for t in titles}
    if layout.copies_tab.casefold() in present:
        yield Check("people's tab", f"{layout.copies_tab!r} present")
    else:
        detail = f"{layout.copies_tab!r} is missing; the tabs are {', '.join(map(repr, titles))}"
        fix = f"rename the tab back, or set SHEET_COPIES_TAB to its name; {SHEET}"
        yield Check("people's tab", detail, fix)
    for tab in (layout.errors_tab, layout.not_found_tab):
        if tab.casefold() in present or editable:
            there = "present" if tab.casefold() in present else "missing; the first sync creates it"
            yield Check("tool's tab", f"{tab!r} {there}")
        else:
            yield Check("tool's tab", f"{tab!r} missing and {who} cannot create it", share)


def google_checks(config: settings.Settings, key_ok: bool) -> Iterator[Check]:
    """Tokens of exactly the scopes a sync asks for, then Drive and the spreadsheet."""
    delegate, path = config.delegate_email, config.google_credentials_file
    for api, scopes in _keyed(config).items() if key_ok else ():
        yield (token := check_token(f"{api} token", path, scopes, delegate))
        key_ok = key_ok and not token.fix
    if not key_ok:
        yield Check("Drive and the spreadsheet", "not checked without a key and tokens", "", True)
        return
    drive = adapters.drive_source(config, one_try_s=TIMEOUT_S)  # as a sync reads (and renames)
    who = delegate or "the service account (DELEGATE_EMAIL is not set)"  # to share with
    with suppress(OSError, ValueError, KeyError, TypeError):  # the key's address, when readable
        key = json.loads(Path(path).read_text(encoding="utf-8"))
        who = delegate or f"the service account {key['client_email']} (DELEGATE_EMAIL is not set)"
    folder = check_folder(config, drive, who)
    yield from folder
    if not config.sheet_url:
        yield Check("spreadsheet", "SHEET_URL is not set: syncs skip the sheet (with a warning)")
    elif folder[0].detail.startswith(SILENT):  # a server that did not answer is not asked again
        yield Check("spreadsheet", f"not checked: {SILENT}", skipped=True)
    else:
        yield from check_spreadsheet(config, drive, who)


def can_write_collections(status: Mapping[str, Any], db: str) -> tuple[bool, str]:
    """May a `connectionStatus` answer's user write the three collections of `db`, and why."""
    info, needed = status.get("authInfo", {}), {"insert", "update", "remove"}
    if privileges := info.get("authenticatedUserPrivileges"):  # mongod lists them: they decide
        for name in (CODES, COURSES, BACKTESTS):
            allowed = {
                action
                for p in privileges
                if (on := p.get("resource", {})).get("anyResource")
                or (on.get("db") in (db, "") and on.get("collection") in (name, ""))
                for action in p.get("actions", [])
            }
            if "anyAction" not in allowed and not needed <= allowed:  # anyAction: every action
                return False, f"no {', '.join(sorted(needed - allowed))} on {db}.{name}"
        return True, "insert, update and remove on the three collections"
    roles = info.get("authenticatedUserRoles") or []
    anywhere = {"root", "readWriteAnyDatabase", "__system"}  # built-in roles that write any db
    for role in roles:
        name, on = role.get("role"), role.get("db")
        if name in anywhere or (name in {"readWrite", "dbOwner"} and on == db):
            return True, f"role {name} on {on}"
    names = ", ".join(f"{r.get('role')}@{r.get('db')}" for r in roles) or "none"
    return False, f"roles {names} do not allow writing to {db}"


def check_mongo(config: settings.Settings) -> list[Check]:
    """MongoDB reachable, authenticated, and allowed to write the three collections."""
    if config.mongo_uri.startswith("mongomock:"):
        return [Check("MongoDB", "mongomock:// in-process store (nothing to check)")]
    where, db = settings.redact_uri(config.mongo_uri), config.mongo_db
    with Store.connect(config.mongo_uri, config.mongo_db, timeout_ms=MONGO_TIMEOUT_MS) as store:
        try:
            status = store.database.client.admin.command("connectionStatus", showPrivileges=True)
            if not (users := status.get("authInfo", {}).get("authenticatedUsers")):
                store.database.list_collection_names()  # refused where users must log in
        except PyMongoError as exc:
            code, name = getattr(exc, "code", None), type(exc).__name__
            if code in AUTH_ERROR_CODES or "auth" in str(exc).split(",")[0][:160].lower():
                said = "refused the credentials" if "@" in where else "requires a user and password"
                detail = f"{where} {said}" + (f" (code {code})" if code else "")
                fix = "fix the user or password in MONGO_URI"
            else:
                late = f" did not answer within {MONGO_TIMEOUT_MS / 1000:g} s ({name})"
                detail = where + (late if isinstance(exc, ConnectionFailure) else f": {name}")
                fix = f"start MongoDB or fix the host in MONGO_URI ({where}); in compose, the "
                fix += "`mongo` service must be up"
            return [Check("MongoDB", detail, f"{fix}; {MONGO}")]
    if not users:
        rights = Check("MongoDB rights", f"no authentication required: any client may write {db}")
    else:
        allowed, why = can_write_collections(status, db)
        fix = "" if allowed else f"grant the user readWrite on {db} (db.grantRolesToUser); {MONGO}"
        rights = Check("MongoDB rights", f"user {users[0].get('user', '?')!r}: {why}", fix)
    return [Check("MongoDB", f"{where} reachable"), rights]


def local_checks(config: settings.Settings) -> Iterator[Check]:
    """`CACHE_DIR` writable (or creatable), `SENTRY_DSN` well-formed, the monitor, the schedule."""
    path = Path(config.cache_dir)
    there = next((p for p in (path, *path.parents) if p.exists()), path)  # or its first parent
    fix = f"make {str(path)!r} a writable directory for the user running the tool (in the "
    fix += f"container, the cache volume); {OPERATING}"
    if not there.is_dir():
        detail = f"{str(there)!r} is not a directory, so {str(path)!r} cannot be created"
        yield Check("CACHE_DIR", detail, fix)
    elif not os.access(there, os.W_OK | os.X_OK):
        yield Check("CACHE_DIR", f"{str(there)!r} is not writable", fix)
    else:
        yet = "is writable" if there == path else "does not exist yet; the first sync creates it"
        yield Check("CACHE_DIR", f"{str(path)!r} {yet}")
    try:  # never printed: the DSN is a credential
        host = Dsn(config.sentry_dsn).host if config.sentry_dsn else ""
    except BadDsn as exc:
        fix = f"copy the DSN from Sentry: Project settings → Client Keys (DSN); {OPERATING}"
        yield Check("SENTRY_DSN", f"not a valid DSN ({str(exc).split(':')[0] or 'malformed'})", fix)
    else:
        slug = f"well-formed (host {host}); monitor slug {config.sentry_monitor_slug!r}"
        off = "not set: error reporting and Sentry Crons are off"
        yield Check("SENTRY_DSN", slug if host else off)
    ping = "set (not pinged by doctor: a ping would change the monitor)"
    off = "not set: no dead-man's-switch monitor is pinged"
    yield Check("HEALTHCHECK_URL", ping if config.healthcheck_url else off)
    zone, at = ZoneInfo(config.tz), datetime.now(UTC)
    runs = [at := schedule.next_run(config.schedule, zone, at) for _ in range(3)]  # the next 3
    times = "; ".join(t.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z") for t in runs)
    yield Check("SCHEDULE/TZ", f"{config.schedule!r} in {config.tz}: next {times}")


def run_checks(env: Mapping[str, str]) -> Iterator[Check]:
    """Every check in order (FOLDER_ID is required: doctor checks a Drive sync)."""
    try:
        config = settings.load(env, needs_drive=True)
    except ConfigError as exc:
        yield from (Check("settings", line, CONFIG) for line in exc.problems)
        yield Check("other checks", "skipped until the settings are fixed", skipped=True)
        return
    yield Check("settings", "all present and well-formed")
    yield (key := check_key_file(config))
    yield from google_checks(config, not key.fix)
    yield from check_mongo(config)
    yield from local_checks(config)


def main(env: Mapping[str, str], *, out: TextIO) -> int:
    """`main.py doctor`: print each check as it completes; 0 when a sync would work, else 2."""
    started = time.monotonic()
    print("backtest-compilation doctor: checking the set-up (nothing is changed)", file=out)
    marks = []
    for check in run_checks(env):
        marks.append("–" if check.skipped else "✗" if check.fix else "✓")
        fix = f"\n    fix: {check.fix}" if check.fix else ""
        print(f"{marks[-1]} {check.name}: {check.detail}{fix}", file=out, flush=True)
    failed, skipped, elapsed = marks.count("✗"), marks.count("–"), time.monotonic() - started
    if failed or skipped:
        also = f", {skipped} skipped" if skipped else ""
        counted = f"{failed} of {len(marks) - skipped} checks failed{also} ({elapsed:.1f} s)"
        print(f"{counted}: fix the ✗ lines, then run doctor again.", file=out)
        return 2
    then = "Next: `sync --dry-run`, then `sync --no-rename`, then `sync`."
    print(f"all {len(marks)} checks passed ({elapsed:.1f} s): a sync would work. {then}", file=out)
    return 0
