"""`doctor`: check the whole set-up against the real services, one line per check (contract §7).

Each ✗ carries its fix and the README section to read. Only reads are sent, through the
adapters a sync uses (`DriveSource`, the sheet report) with one short attempt per call,
so the whole check ends within a minute even when a server never answers; a service that
did not answer once is not asked again. Exit 0 when a sync would work, 2 otherwise.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO
from zoneinfo import ZoneInfo

from . import adapters, schedule, settings
from .drive import SCOPE_READ, SCOPE_RENAME, DriveCallError, DriveSource
from .errors import ConfigError, RunError
from .naming import department_code, parse_course
from .settings import redact_uri
from .store import BACKTESTS, CODES, COURSES, Store
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
        fix = f"\n    fix: {self.fix}" if not self.ok and self.fix else ""
        return f"{mark} {self.name}: {self.detail}{fix}"


def _ok(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def _bad(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)


# ---------------------------------------------------------------- local checks


def _keyed(config: settings.Settings) -> dict[str, tuple[str, ...]]:
    """The APIs a sync reaches with the key (those without an emulator endpoint), each
    with exactly the scopes a sync asks for."""
    from .sheet import SCOPE

    drive = (SCOPE_READ, SCOPE_RENAME) if config.rename_files else (SCOPE_READ,)
    keyed = {"Drive": not config.drive_api_endpoint, "Sheets": bool(config.sheet_url)}
    keyed["Sheets"] &= not config.sheets_api_endpoint
    return {api: scopes for api, scopes in (("Drive", drive), ("Sheets", (SCOPE,))) if keyed[api]}


def check_key_file(config: settings.Settings) -> Check:
    """The key file parses and is a service-account key (without quoting any of it)."""
    name, path, needed = "key file", str(config.google_credentials_file), _keyed(config)
    if not needed:
        return _ok(name, "not needed (DRIVE_API_ENDPOINT/SHEETS_API_ENDPOINT answer without one)")
    fix = f"download a JSON key of the service account into {path!r}; see {README_GOOGLE}"
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _bad(name, f"GOOGLE_CREDENTIALS_FILE {path!r} does not exist", fix)
    except (OSError, ValueError) as exc:
        return _bad(name, f"{path!r} is not readable JSON ({type(exc).__name__})", fix)
    if not isinstance(doc, dict) or doc.get("type") != "service_account":
        return _bad(
            name, f"{path!r} is not a service-account key (type is not service_account)", fix
        )
    missing = [k for k in ("client_email", "private_key", "token_uri") if not doc.get(k)]
    if missing:
        return _bad(name, f"{path!r} lacks {', '.join(missing)}", fix)
    from google.oauth2 import service_account

    try:
        service_account.Credentials.from_service_account_info(doc)
    except (ValueError, KeyError, TypeError) as exc:
        return _bad(name, f"{path!r} holds no usable private key ({type(exc).__name__})", fix)
    return _ok(name, f"service account {doc['client_email']} ({', '.join(needed)})")


def check_cache_dir(config: settings.Settings) -> Check:
    """`CACHE_DIR` exists or can be created, and a file can be created in it (the probe
    file is removed at once; nothing else is touched)."""
    name, path = "CACHE_DIR", Path(config.cache_dir)
    fix = (
        f"make {str(path)!r} a writable directory for the user running the tool "
        f"(in the container, the cache volume); see {README_OPERATING}"
    )
    probe = next((p for p in (path, *path.parents) if p.exists()), path)
    if not probe.is_dir():
        return _bad(
            name, f"{str(probe)!r} is not a directory, so {str(path)!r} cannot be created", fix
        )
    try:
        fd, tmp = tempfile.mkstemp(prefix=".doctor-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return _bad(name, f"{str(probe)!r} is not writable ({exc.strerror or exc})", fix)
    if probe != path:
        return _ok(name, f"{str(path)!r} does not exist yet; the first sync creates it")
    return _ok(name, f"{str(path)!r} is writable")


def check_sentry(config: settings.Settings) -> Check:
    """`SENTRY_DSN` is a DSN the SDK accepts (never printed)."""
    from sentry_sdk.utils import BadDsn, Dsn

    if not config.sentry_dsn:
        return _ok("SENTRY_DSN", "not set: error reporting and Sentry Crons are off")
    try:
        dsn = Dsn(config.sentry_dsn)
    except BadDsn as exc:
        return _bad(
            "SENTRY_DSN",
            f"not a valid DSN ({str(exc).split(':')[0] or 'malformed'})",
            "copy the DSN from Sentry: Project settings → Client Keys (DSN); "
            f"see {README_OPERATING}",
        )
    slug = config.sentry_monitor_slug
    return _ok("SENTRY_DSN", f"well-formed (host {dsn.host}); monitor slug {slug!r}")


def check_schedule(config: settings.Settings, now: datetime | None = None) -> Check:
    """The next three run times of `SCHEDULE` in `TZ`."""
    zone, at, times = ZoneInfo(config.tz), now or datetime.now(UTC), []
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


def check_token(
    name: str, credentials: Any, scopes: Sequence[str], delegate: str, timeout_s: float
) -> Check:
    """Ask Google for a token of exactly `scopes` for `delegate` (a read: nothing changes)."""
    import google.auth.exceptions
    import httplib2
    from google_auth_httplib2 import Request

    listed = ", ".join(s.rsplit("/", 1)[-1] for s in scopes)
    try:
        # google-auth's own transport waits up to 120 s; doctor must finish quickly.
        credentials.refresh(Request(httplib2.Http(timeout=timeout_s)))
    except google.auth.exceptions.RefreshError as exc:
        code = str(exc.args[0] if exc.args else "").split(":", 1)[0].strip() or "refused"
        return _bad(
            name,
            f"Google refused a token for {listed} as {delegate!r}: {code}",
            "in the Google Admin console → Security → API controls → Domain-wide delegation, "
            f"grant the service account's client id exactly these scopes: {', '.join(scopes)}; "
            f"see {README_GOOGLE}",
        )
    except google.auth.exceptions.TransportError as exc:
        return _bad(
            name,
            f"the token endpoint did not answer ({type(exc).__name__})",
            f"check the network connection to oauth2.googleapis.com; see {README_TROUBLE}",
        )
    return _ok(name, f"granted for {listed} as {delegate or 'the service account'}")


def _who(config: settings.Settings) -> str:
    """Who the checks act as: `DELEGATE_EMAIL`, else the service account the key names
    (never "the account in use": the person fixing the share needs an address)."""
    if config.delegate_email:
        return config.delegate_email
    try:
        key = json.loads(Path(config.google_credentials_file).read_text(encoding="utf-8"))
        return f"the service account {key['client_email']} (DELEGATE_EMAIL is not set)"
    except (OSError, ValueError, KeyError, TypeError):
        return "the service account (DELEGATE_EMAIL is not set)"


def check_folder(config: settings.Settings, drive: DriveSource, dead: set[str]) -> Iterator[Check]:
    """`FOLDER_ID` exists, is a shared drive or a folder that holds departments, and
    (renames on) the delegate may rename in it: Drive's `capabilities.canEdit`."""
    who, folder, caps = _who(config), config.folder_id, "capabilities(canEdit)"
    try:
        meta = drive.shared_drive(folder, f"id,name,{caps}")
        kind = "shared drive" if meta is not None else "folder"
        if meta is None:
            meta = drive.item(folder, f"id,name,mimeType,trashed,driveId,parents,{caps}")
    except DriveCallError as exc:
        if exc.status == 0:
            dead.add("drive")
            fix = f"check the network connection to www.googleapis.com; see {README_TROUBLE}"
            yield _bad("FOLDER_ID", f"Drive did not answer ({exc.detail})", fix)
        else:
            yield _bad(
                "FOLDER_ID",
                f"{folder!r} was not found by {who} (HTTP {exc.detail})",
                f"share the drive or folder with {who} (renames need Content manager / Editor), "
                f"or fix FOLDER_ID; see {README_GOOGLE}",
            )
        return
    title = meta.get("name", "")
    if meta.get("mimeType", FOLDER_MIME) != FOLDER_MIME:
        yield _bad(
            "FOLDER_ID",
            f"{folder!r} is a file ({meta.get('mimeType')}), not a shared drive or folder",
            f"use the id of the backtest drive or its folder; see {README_CONFIG}",
        )
        return
    if meta.get("trashed"):
        fix = f"restore it from the trash in Drive, or fix FOLDER_ID; see {README_CONFIG}"
        yield _bad("FOLDER_ID", f"folder {title!r} is in the trash", fix)
        return
    try:
        deep = _one_level_too_deep(drive, meta, kind == "shared drive")
    except RunError:  # a listing refused: the rights line below says why
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
    if not config.rename_files:
        yield _ok("rename rights", "renames are off (RENAME_FILES=false): reading is enough")
    elif meta.get("capabilities", {}).get("canEdit"):
        yield _ok("rename rights", f"{who} may rename files in the {kind}")
    else:
        yield _bad(
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
    above = drive.root_parent()  # None: a shared drive, or a parent the account cannot see
    return shown, f"{above[1]!r} ({above[0]})" if above else ""


def check_spreadsheet(
    config: settings.Settings,
    drive: DriveSource,
    credentials: Any,
    dead: set[str],
    timeout_s: float,
) -> Iterator[Check]:
    """The spreadsheet is reachable, editable by the delegate (Drive's
    `capabilities.canEdit` for its id), has the people's tab, and the tool's tabs exist or
    can be created."""
    from .sheet import open_report

    who, key = _who(config), config.sheet_key
    if not config.sheet_url:
        yield _ok("spreadsheet", "SHEET_URL is not set: syncs skip the sheet (with a warning)")
        return
    if "drive" in dead:
        yield Check("spreadsheet", False, "not checked: Drive did not answer", skipped=True)
        return
    share_fix = f"share the spreadsheet with {who} as Editor, or fix SHEET_URL; see {README_SHEET}"
    try:
        meta = drive.item(key, "id,name,mimeType,capabilities(canEdit)")
    except DriveCallError as exc:
        detail = f"HTTP {exc.detail}" if exc.status else exc.detail
        yield _bad("spreadsheet", f"{key} is not visible to {who} in Drive ({detail})", share_fix)
        return
    if meta.get("mimeType") != SHEET_MIME:
        fix = f"use the URL of the tracking spreadsheet; see {README_SHEET}"
        yield _bad("spreadsheet", f"{key} is a {meta.get('mimeType')}, not a Google Sheet", fix)
        return
    name, editable = meta.get("name"), bool(meta.get("capabilities", {}).get("canEdit"))
    if editable:
        yield _ok("spreadsheet", f"{name!r} reachable and editable by {who}")
    else:
        yield _bad(
            "spreadsheet",
            f"{name!r} is reachable but {who} may not edit it "
            "(Drive capabilities.canEdit is false)",
            share_fix,
        )
    layout = adapters.sheet_layout(config)
    report = open_report(
        key,
        endpoint=config.sheets_api_endpoint,
        credentials=credentials,
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


def _google_checks(config: settings.Settings, key_ok: bool, timeout_s: float) -> Iterator[Check]:
    """Tokens of exactly the scopes a sync asks for, then Drive and the spreadsheet
    through the adapters a sync uses (one attempt per call: doctor must be quick)."""
    from google.auth.credentials import AnonymousCredentials

    from .google import credentials

    creds: dict[str, Any] = {}
    tokens_ok, who = key_ok, config.delegate_email
    for api, scopes in _keyed(config).items() if key_ok else ():
        creds[api] = credentials(config.google_credentials_file, who, scopes)
        check = check_token(f"{api} token", creds[api], scopes, who, timeout_s)
        tokens_ok = tokens_ok and check.ok
        yield check
    if config.drive_api_endpoint or config.sheets_api_endpoint:
        yield _ok("tokens", "not asked for the APIs with an endpoint set (no credentials used)")
    if not tokens_ok:
        yield Check(
            "Drive and the spreadsheet", False, "not checked without a key and tokens", skipped=True
        )
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
    dead: set[str] = set()  # services that did not answer: their later checks are skipped
    yield from check_folder(config, drive, dead)
    yield from check_spreadsheet(config, drive, creds.get("Sheets"), dead, timeout_s)


# ---------------------------------------------------------------- MongoDB


def can_write_collections(status: Mapping[str, Any], db: str) -> tuple[bool, str]:
    """Whether the user of a `connectionStatus` answer (asked with `showPrivileges`) may
    insert, update and remove in the three collections of database `db`, and why: the
    privileges decide when the server lists them (mongod does), else the roles."""
    info = status.get("authInfo", {})
    privileges = info.get("authenticatedUserPrivileges") or []
    needed = {"insert", "update", "remove"}
    if privileges:
        for name in COLLECTIONS:
            allowed = {
                action
                for p in privileges
                if p.get("resource", {}).get("anyResource")
                or (
                    p.get("resource", {}).get("db") in (db, "")
                    and p.get("resource", {}).get("collection") in (name, "")
                )
                for action in p.get("actions", [])
            }
            # `anyAction` is MongoDB's superuser action: every action.
            if "anyAction" not in allowed and not needed <= allowed:
                return False, f"no {', '.join(sorted(needed - allowed))} on {db}.{name}"
        return True, "insert, update and remove on the three collections"
    roles = info.get("authenticatedUserRoles") or []
    for role in roles:
        name, on = role.get("role"), role.get("db")
        if name in _ANY_DB_ROLES or (name in _WRITE_ROLES and on == db):
            return True, f"role {name} on {on}"
    names = ", ".join(f"{r.get('role')}@{r.get('db')}" for r in roles) or "none"
    return False, f"roles {names} do not allow writing to {db}"


def check_mongo(config: settings.Settings, *, timeout_ms: int = MONGO_TIMEOUT_MS) -> list[Check]:
    """MongoDB reachable, authenticated, and allowed to write the three collections."""
    if config.mongo_uri.startswith("mongomock:"):
        return [_ok("MongoDB", "mongomock:// in-process store (nothing to check)")]
    from pymongo.errors import OperationFailure, PyMongoError

    where = redact_uri(config.mongo_uri)
    refused = f"fix the user or password in MONGO_URI; see {README_MONGO}"
    fix_reach = (
        f"start MongoDB or fix the host in MONGO_URI ({where}); in compose, the `mongo` "
        f"service must be up; see {README_MONGO}"
    )
    store = Store.connect(config.mongo_uri, config.mongo_db, timeout_ms=timeout_ms)
    client = store.database.client
    try:
        try:
            client.admin.command("ping")
        except OperationFailure as exc:
            if exc.code in (18, 13):
                return [
                    _bad("MongoDB", f"{where} refused the credentials (code {exc.code})", refused)
                ]
            raise
        except PyMongoError as exc:
            if "auth" in str(exc).split(",")[0][:160].lower():
                return [_bad("MongoDB", f"{where} refused the credentials", refused)]
            late = f"did not answer within {timeout_ms / 1000:g} s ({type(exc).__name__})"
            return [_bad("MongoDB", f"{where} {late}", fix_reach)]
        return [_ok("MongoDB", f"{where} reachable"), _mongo_rights(client, config.mongo_db)]
    except PyMongoError as exc:
        return [_bad("MongoDB", f"{where}: {type(exc).__name__}", fix_reach)]
    finally:
        store.close()


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
    fix = f"grant the user readWrite on {db} (db.grantRolesToUser); see {README_MONGO}"
    return Check(name, allowed, f"user {user!r}: {why}", fix)


# ---------------------------------------------------------------- all of it


def run_checks(
    env: Mapping[str, str],
    *,
    timeout_s: float = CALL_TIMEOUT_S,
    mongo_timeout_ms: int = MONGO_TIMEOUT_MS,
    emit: Callable[[Check], None] = lambda c: None,
) -> list[Check]:
    """Every check in order (`FOLDER_ID` is required: doctor checks a Drive sync); `emit`
    sees each as soon as it is known."""
    out: list[Check] = []

    def add(checks: Iterator[Check] | list[Check]) -> None:
        for check in checks:
            out.append(check)
            emit(check)

    try:
        config = settings.load(env, needs_drive=True)
    except ConfigError as exc:
        add([_bad("settings", line, f"see {README_CONFIG}") for line in exc.problems])
        add([Check("other checks", False, "skipped until the settings are fixed", skipped=True)])
        return out
    add([_ok("settings", "all present and well-formed"), key := check_key_file(config)])
    add(_google_checks(config, key.ok, timeout_s))
    add(check_mongo(config, timeout_ms=mongo_timeout_ms))
    add([check_cache_dir(config), check_sentry(config), check_healthcheck(config)])
    add([check_schedule(config)])
    return out


def main(env: Mapping[str, str], *, out: TextIO) -> int:
    """`main.py doctor`: print each check as it completes; 0 when a sync would work, else 2."""
    started = time.monotonic()
    print("backtest-compilation doctor: checking the set-up (nothing is changed)", file=out)
    checks = run_checks(env, emit=lambda check: print(check.line(), file=out, flush=True))
    failed = [c for c in checks if not c.ok and not c.skipped]
    skipped = sum(c.skipped for c in checks)
    elapsed = time.monotonic() - started
    if failed or skipped:
        also = f", {skipped} skipped" if skipped else ""
        print(
            f"{len(failed)} of {len(checks) - skipped} checks failed{also} ({elapsed:.1f} s): "
            "fix the ✗ lines, then run doctor again.",
            file=out,
        )
        return 2
    print(
        f"all {len(checks)} checks passed ({elapsed:.1f} s): a sync would work. Next: "
        "`sync --dry-run`, then `sync --no-rename`, then `sync`.",
        file=out,
    )
    return 0
