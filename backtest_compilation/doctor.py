"""`doctor`: check the whole set-up against the real services, one line per check (contract §7).

Only reads are sent, through the adapters a sync uses (`DriveSource`, `SheetReport`,
`Store`) with one short attempt per call, so it ends within a minute even when a server
never answers. Each ✗ carries its fix and the README section to read. Exit 0 when a
sync would work, 2 otherwise.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from . import adapters, google, schedule, settings
from .drive import SCOPE_READ, SCOPE_RENAME, DriveCallError, DriveSource
from .errors import ConfigError, RunError
from .naming import department_code, parse_course
from .sheet import SCOPE, SheetReport
from .store import AUTH_ERROR_CODES, BACKTESTS, CODES, COURSES
from .tree import FOLDER_MIME

CALL_TIMEOUT_S = 8.0
SILENT = "Drive did not answer"
MONGO_TIMEOUT_MS = 5000
COLLECTIONS = (CODES, COURSES, BACKTESTS)
# Built-in MongoDB roles that may insert, update and delete in a database's collections.
_WRITE_ROLES = {"readWrite", "dbOwner", "root", "readWriteAnyDatabase", "__system"}
_ANY_DB_ROLES = {"root", "readWriteAnyDatabase", "__system"}
CONFIG, GOOGLE = 'see README "Configuration"', 'see README "Google set-up (once)"'
MONGO, SHEET = 'see README "MongoDB"', 'see README "The sheet"'
OPERATING, TROUBLE = 'see README "Operating it"', 'see README "Troubleshooting"'


class Check(NamedTuple):
    """One line of the report; a skipped check (not run because of another ✗) is no failure."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    skipped: bool = False

    def line(self) -> str:
        mark = "–" if self.skipped else "✓" if self.ok else "✗"
        return f"{mark} {self.name}: {self.detail}" + (
            f"\n    fix: {self.fix}" if not self.ok and self.fix else ""
        )


def _skipped(name: str, detail: str) -> Check:
    return Check(name, False, detail, skipped=True)


def _keyed(config: settings.Settings) -> dict[str, tuple[str, ...]]:
    """The APIs a sync reaches with the key (no emulator endpoint), with the scopes it asks."""
    drive = (SCOPE_READ, SCOPE_RENAME) if config.rename_files else (SCOPE_READ,)
    keyed = {"Drive": (not config.drive_api_endpoint, drive)}
    keyed["Sheets"] = (bool(config.sheet_url) and not config.sheets_api_endpoint, (SCOPE,))
    return {api: scopes for api, (used, scopes) in keyed.items() if used}


def check_key_file(config: settings.Settings) -> Check:
    """The key file is a service-account key (without quoting any of it)."""
    name, path, needed = "key file", str(config.google_credentials_file), _keyed(config)
    if not needed:
        return Check(
            name, True, "not needed (DRIVE_API_ENDPOINT/SHEETS_API_ENDPOINT answer without one)"
        )
    fix = f"download a JSON key of the service account into {path!r}; {GOOGLE}"
    try:
        json.loads(Path(path).read_text(encoding="utf-8"))
        email = google.credentials(path, "", ()).service_account_email
    except FileNotFoundError:
        return Check(name, False, f"GOOGLE_CREDENTIALS_FILE {path!r} does not exist", fix)
    except (OSError, ValueError) as exc:
        return Check(name, False, f"{path!r} is not readable JSON ({type(exc).__name__})", fix)
    except ConfigError as exc:
        return Check(name, False, str(exc), fix)
    return Check(name, True, f"service account {email} ({', '.join(needed)})")


def check_cache_dir(config: settings.Settings) -> Check:
    """`CACHE_DIR` exists or can be created, and a file can be created in it (and removed)."""
    path = Path(config.cache_dir)
    fix = (
        f"make {str(path)!r} a writable directory for the user running the tool "
        f"(in the container, the cache volume); {OPERATING}"
    )
    probe = next((p for p in (path, *path.parents) if p.exists()), path)
    if not probe.is_dir():
        detail = f"{str(probe)!r} is not a directory, so {str(path)!r} cannot be created"
        return Check("CACHE_DIR", False, detail, fix)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".doctor-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return Check(
            "CACHE_DIR", False, f"{str(probe)!r} is not writable ({exc.strerror or exc})", fix
        )
    if probe != path:
        return Check(
            "CACHE_DIR", True, f"{str(path)!r} does not exist yet; the first sync creates it"
        )
    return Check("CACHE_DIR", True, f"{str(path)!r} is writable")


def check_sentry(config: settings.Settings) -> Check:
    """`SENTRY_DSN` is a DSN the SDK accepts (never printed)."""
    from sentry_sdk.utils import BadDsn, Dsn

    if not config.sentry_dsn:
        return Check("SENTRY_DSN", True, "not set: error reporting and Sentry Crons are off")
    try:
        host = Dsn(config.sentry_dsn).host
    except BadDsn as exc:
        fix = f"copy the DSN from Sentry: Project settings → Client Keys (DSN); {OPERATING}"
        detail = f"not a valid DSN ({str(exc).split(':')[0] or 'malformed'})"
        return Check("SENTRY_DSN", False, detail, fix)
    slug = config.sentry_monitor_slug
    return Check("SENTRY_DSN", True, f"well-formed (host {host}); monitor slug {slug!r}")


def check_schedule(config: settings.Settings) -> Check:
    """The next three run times of `SCHEDULE` in `TZ` (and whether a monitor is pinged)."""
    at, times = datetime.now(UTC), []
    for _ in range(3):
        at = schedule.next_run(config.schedule, config.zone, at)
        times.append(at.astimezone(config.zone).strftime("%a %Y-%m-%d %H:%M %Z"))
    return Check(
        "SCHEDULE/TZ", True, f"{config.schedule!r} in {config.tz}: next {'; '.join(times)}"
    )


def check_token(
    name: str, credentials: Any, scopes: Sequence[str], delegate: str, timeout_s: float
) -> Check:
    """Ask Google for a token of exactly `scopes` for `delegate` (a read: nothing changes)."""
    import httplib2
    from google.auth import exceptions
    from google_auth_httplib2 import Request

    listed = ", ".join(s.rsplit("/", 1)[-1] for s in scopes)
    try:  # google-auth's own transport would wait up to 120 s
        credentials.refresh(Request(httplib2.Http(timeout=timeout_s)))
    except exceptions.RefreshError as exc:
        code = str(exc.args[0] if exc.args else "").split(":", 1)[0].strip() or "refused"
        fix = (
            "in the Google Admin console → Security → API controls → Domain-wide delegation, "
            f"grant the service account's client id exactly these scopes: {', '.join(scopes)}; "
            + GOOGLE
        )
        return Check(
            name, False, f"Google refused a token for {listed} as {delegate!r}: {code}", fix
        )
    except exceptions.TransportError as exc:
        fix = f"check the network connection to oauth2.googleapis.com; {TROUBLE}"
        return Check(name, False, f"the token endpoint did not answer ({type(exc).__name__})", fix)
    return Check(name, True, f"granted for {listed} as {delegate or 'the service account'}")


def _who(config: settings.Settings) -> str:
    """Who the checks act as: an address for the person who fixes the sharing."""
    if config.delegate_email:
        return config.delegate_email
    try:
        key = json.loads(Path(config.google_credentials_file).read_text(encoding="utf-8"))
        return f"the service account {key['client_email']} (DELEGATE_EMAIL is not set)"
    except (OSError, ValueError, KeyError, TypeError):
        return "the service account (DELEGATE_EMAIL is not set)"


def check_folder(config: settings.Settings, drive: DriveSource) -> Iterator[Check]:
    """`FOLDER_ID` is a shared drive or a folder that holds departments, and (renames on)
    the delegate may rename in it: Drive's `capabilities.canEdit`."""
    who, folder, caps = _who(config), config.folder_id, "capabilities(canEdit)"
    try:
        meta = drive.shared_drive(folder, f"id,name,{caps}")
        kind = "folder" if meta is None else "shared drive"
        meta = meta or drive.item(folder, f"id,name,mimeType,trashed,driveId,{caps}")
    except DriveCallError as exc:
        if exc.status == 0:
            fix = f"check the network connection to www.googleapis.com; {TROUBLE}"
            yield Check("FOLDER_ID", False, f"{SILENT} ({exc.detail})", fix)
        else:
            detail = f"{folder!r} was not found by {who} (HTTP {exc.detail})"
            fix = (
                f"share the drive or folder with {who} (renames need Content manager / "
                f"Editor), or fix FOLDER_ID; {GOOGLE}"
            )
            yield Check("FOLDER_ID", False, detail, fix)
        return
    title, mime = meta.get("name", ""), meta.get("mimeType", FOLDER_MIME)
    if mime != FOLDER_MIME:
        detail = f"{folder!r} is a file ({mime}), not a shared drive or folder"
        yield Check(
            "FOLDER_ID", False, detail, f"use the id of the backtest drive or its folder; {CONFIG}"
        )
        return
    if meta.get("trashed"):
        fix = f"restore it from the trash in Drive, or fix FOLDER_ID; {CONFIG}"
        yield Check("FOLDER_ID", False, f"folder {title!r} is in the trash", fix)
        return
    yield _one_level_too_deep(drive, meta, kind) or Check(
        "FOLDER_ID", True, f"{kind} {title!r}, readable by {who}"
    )
    if not config.rename_files:
        yield Check(
            "rename rights", True, "renames are off (RENAME_FILES=false): reading is enough"
        )
    elif meta.get("capabilities", {}).get("canEdit"):
        yield Check("rename rights", True, f"{who} may rename files in the {kind}")
    else:
        yield Check(
            "rename rights",
            False,
            f"{who} may only read the {kind} (Drive capabilities.canEdit is false)",
            f"give {who} the Content manager role on the shared drive (Editor on a folder), "
            f"or set RENAME_FILES=false; {GOOGLE}",
        )


def _one_level_too_deep(drive: DriveSource, meta: Mapping[str, Any], kind: str) -> Check | None:
    """A ✗ when the root's child folders look like courses (`DEPT-NNNN Title`) and none
    like a department, naming the folder above it when the account can see it."""
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
    use = (
        f"set FOLDER_ID to {above[1]!r} ({above[0]})"
        if above
        else "set FOLDER_ID to the folder above it"
    )
    return Check(
        "FOLDER_ID",
        False,
        f"{kind} {meta.get('name', '')!r} holds course folders ({shown}), not departments: "
        "it is one level too deep",
        f"{use}, the one that holds the department folders; {CONFIG}",
    )


def check_spreadsheet(
    config: settings.Settings, drive: DriveSource, credentials: Any, timeout_s: float
) -> Iterator[Check]:
    """The spreadsheet is visible in Drive, editable by the delegate (`capabilities.canEdit`),
    has the people's tab, and the tool's tabs exist or can be created."""
    who, key, layout = _who(config), config.sheet_key, adapters.sheet_layout(config)
    share = f"share the spreadsheet with {who} as Editor, or fix SHEET_URL; {SHEET}"
    try:
        meta = drive.item(key, "id,name,mimeType,capabilities(canEdit)")
    except DriveCallError as exc:
        detail = f"HTTP {exc.detail}" if exc.status else exc.detail
        yield Check(
            "spreadsheet", False, f"{key} is not visible to {who} in Drive ({detail})", share
        )
        return
    if meta.get("mimeType") != "application/vnd.google-apps.spreadsheet":
        fix = f"use the URL of the tracking spreadsheet; {SHEET}"
        yield Check(
            "spreadsheet", False, f"{key} is a {meta.get('mimeType')}, not a Google Sheet", fix
        )
        return
    name, editable = meta.get("name"), bool(meta.get("capabilities", {}).get("canEdit"))
    if editable:
        yield Check("spreadsheet", True, f"{name!r} reachable and editable by {who}")
    else:
        detail = (
            f"{name!r} is reachable but {who} may not edit it (Drive capabilities.canEdit is false)"
        )
        yield Check("spreadsheet", False, detail, share)
    report = SheetReport(
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
        yield Check("sheet tabs", False, f"Sheets could not read the tabs: {exc}", share)
        return
    folded = {t.casefold() for t in titles}
    if layout.copies_tab.casefold() in folded:
        yield Check("people's tab", True, f"{layout.copies_tab!r} present")
    else:
        yield Check(
            "people's tab",
            False,
            f"{layout.copies_tab!r} is missing; the tabs are {', '.join(map(repr, titles))}",
            f"rename the tab back, or set SHEET_COPIES_TAB to its name; {SHEET}",
        )
    for tab in (layout.errors_tab, layout.not_found_tab):
        if tab.casefold() in folded:
            yield Check("tool's tab", True, f"{tab!r} present")
        elif editable:
            yield Check("tool's tab", True, f"{tab!r} missing; the first sync creates it")
        else:
            yield Check("tool's tab", False, f"{tab!r} missing and {who} cannot create it", share)


def _google_checks(config: settings.Settings, key_ok: bool, timeout_s: float) -> Iterator[Check]:
    """Tokens of exactly the scopes a sync asks for, then Drive and the spreadsheet."""
    from google.auth.credentials import AnonymousCredentials

    creds: dict[str, Any] = {}
    for api, scopes in _keyed(config).items() if key_ok else ():
        creds[api] = google.credentials(
            config.google_credentials_file, config.delegate_email, scopes
        )
        check = check_token(f"{api} token", creds[api], scopes, config.delegate_email, timeout_s)
        key_ok = key_ok and check.ok
        yield check
    if config.drive_api_endpoint or config.sheets_api_endpoint:
        yield Check(
            "tokens", True, "not asked for the APIs with an endpoint set (no credentials used)"
        )
    if not key_ok:
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
    checks = list(check_folder(config, drive))
    yield from checks
    if not config.sheet_url:
        yield Check(
            "spreadsheet", True, "SHEET_URL is not set: syncs skip the sheet (with a warning)"
        )
    elif checks[0].detail.startswith(SILENT):  # a server that did not answer is not asked again
        yield _skipped("spreadsheet", f"not checked: {SILENT}")
    else:
        yield from check_spreadsheet(config, drive, creds.get("Sheets"), timeout_s)


def can_write_collections(status: Mapping[str, Any], db: str) -> tuple[bool, str]:
    """Whether the user of a `connectionStatus` answer (with `showPrivileges`) may insert,
    update and remove in the three collections of `db`, and why: the privileges decide
    when the server lists them (mongod does), else the roles."""
    info, needed = status.get("authInfo", {}), {"insert", "update", "remove"}
    if privileges := info.get("authenticatedUserPrivileges"):
        for name in COLLECTIONS:
            allowed = {
                action
                for p in privileges
                for r in [p.get("resource", {})]
                if r.get("anyResource")
                or (r.get("db") in (db, "") and r.get("collection") in (name, ""))
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


def check_mongo(config: settings.Settings, timeout_ms: int = MONGO_TIMEOUT_MS) -> list[Check]:
    """MongoDB reachable, authenticated, and allowed to write the three collections."""
    if config.uses_mongomock:
        return [Check("MongoDB", True, "mongomock:// in-process store (nothing to check)")]
    from pymongo.errors import ConnectionFailure, PyMongoError

    where = settings.redact_uri(config.mongo_uri)
    store = adapters.connect_store(config, timeout_ms=timeout_ms)  # the adapter a sync uses
    try:
        store.database.client.admin.command("ping")
        rights = _mongo_rights(store.database.client, config.mongo_db)
        return [Check("MongoDB", True, f"{where} reachable"), rights]
    except PyMongoError as exc:
        code = getattr(exc, "code", None)
        if code in AUTH_ERROR_CODES or "auth" in str(exc).split(",")[0][:160].lower():
            detail = f"{where} refused the credentials" + (f" (code {code})" if code else "")
            return [
                Check("MongoDB", False, detail, f"fix the user or password in MONGO_URI; {MONGO}")
            ]
        detail = f"{where}: {type(exc).__name__}"
        if isinstance(exc, ConnectionFailure):
            late = f"did not answer within {timeout_ms / 1000:g} s"
            detail = f"{where} {late} ({type(exc).__name__})"
        fix = (
            f"start MongoDB or fix the host in MONGO_URI ({where}); in compose, the `mongo` "
            f"service must be up; {MONGO}"
        )
        return [Check("MongoDB", False, detail, fix)]
    finally:
        store.close()


def _mongo_rights(client: Any, db: str) -> Check:
    """Whether the user MONGO_URI names may write the three collections of `db`."""
    from pymongo.errors import OperationFailure

    status = client.admin.command("connectionStatus", showPrivileges=True)
    if users := status.get("authInfo", {}).get("authenticatedUsers"):
        allowed, why = can_write_collections(status, db)
        fix = f"grant the user readWrite on {db} (db.grantRolesToUser); {MONGO}"
        return Check("MongoDB rights", allowed, f"user {users[0].get('user', '?')!r}: {why}", fix)
    try:
        client[db].list_collection_names()
    except OperationFailure as exc:
        detail = f"not authenticated and the server requires it (code {exc.code})"
        fix = f"put the user and password into MONGO_URI; {MONGO}"
        return Check("MongoDB rights", False, detail, fix)
    return Check("MongoDB rights", True, f"no authentication required: any client may write {db}")


def run_checks(
    env: Mapping[str, str], *, timeout_s: float = CALL_TIMEOUT_S, emit: Callable[[Check], None]
) -> list[Check]:
    """Every check in order, each passed to `emit` as soon as it is known."""
    out: list[Check] = []

    def add(checks: Iterator[Check] | list[Check]) -> None:
        for check in checks:
            out.append(check)
            emit(check)

    try:
        config = settings.load(env, needs_drive=True)  # doctor checks a Drive sync
    except ConfigError as exc:
        add([Check("settings", False, line, CONFIG) for line in exc.problems])
        add([_skipped("other checks", "skipped until the settings are fixed")])
        return out
    add([Check("settings", True, "all present and well-formed"), key := check_key_file(config)])
    add(_google_checks(config, key.ok, timeout_s))
    add(check_mongo(config))
    healthcheck = "set (not pinged by doctor: a ping would change the monitor)"
    if not config.healthcheck_url:
        healthcheck = "not set: no dead-man's-switch monitor is pinged"
    add(
        [check_cache_dir(config), check_sentry(config), Check("HEALTHCHECK_URL", True, healthcheck)]
    )
    add([check_schedule(config)])
    return out


def main(env: Mapping[str, str], *, out: TextIO) -> int:
    """`main.py doctor`: print each check as it completes; 0 when a sync would work, else 2."""
    started = time.monotonic()
    print("backtest-compilation doctor: checking the set-up (nothing is changed)", file=out)
    checks = run_checks(env, emit=lambda check: print(check.line(), file=out, flush=True))
    failed = sum(not c.ok and not c.skipped for c in checks)
    skipped = sum(c.skipped for c in checks)
    elapsed = time.monotonic() - started
    if failed or skipped:
        also = f", {skipped} skipped" if skipped else ""
        print(
            f"{failed} of {len(checks) - skipped} checks failed{also} ({elapsed:.1f} s): "
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
