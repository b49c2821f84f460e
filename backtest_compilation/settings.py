"""Configuration (contract §6): one frozen dataclass, built once from the environment and `.env`.

`load` reports every problem at once (`ConfigError.problems`, one line each); the CLI
prints them and exits 2. Secrets never appear in `repr` or `redacted()`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from dotenv import dotenv_values

from .errors import ConfigError
from .sheet_layout import Layout

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MONGO_SCHEMES = ("mongodb", "mongodb+srv", "mongomock")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_SHEET_KEY = re.compile(r"/spreadsheets/d/([A-Za-z0-9_-]+)")
# A folder's or shared drive's address as the browser shows it, `/u/0/` and `?usp=…` included.
_FOLDER_URL = re.compile(
    r"^https?://drive\.google\.com/(?:drive/(?:u/\d+/)?folders/|open\?id=)([A-Za-z0-9_-]+)"
)
_FILE_URL = re.compile(r"^https?://(?:drive|docs)\.google\.com/(?:file/d/|\w+/d/)")
CRON_FIELDS = "minute hour day-of-month month day-of-week"
_DB_NAME_FORBIDDEN = set('/\\. "$*<>:|?')
REDACTED = "***"


@dataclass(frozen=True)
class Settings:
    """Every setting of contract §6, with its default."""

    folder_id: str = ""
    delegate_email: str = ""
    sheet_url: str = ""
    google_credentials_file: Path = Path("config/service-credentials.json")
    mongo_uri: str = "mongodb://localhost:27017"
    mongo_db: str = "apo_main"
    cache_dir: Path = Path("cache")
    log_level: str = "INFO"
    sentry_dsn: str = ""
    sentry_trace_rate: float = 1.0
    schedule: str = "2 9-19/2 * * *"
    tz: str = "America/New_York"
    rename_files: bool = True
    full_rescan_hours: float = 24.0
    rename_stall_s: float = 300.0
    rename_budget_s: float = 600.0
    drive_writes_per_s: float = 3.0
    run_timeout_s: float = 2700.0
    max_delete_fraction: float = 0.25
    future_year_exempt: frozenset[str] = frozenset({"BEAR"})
    drive_api_endpoint: str = ""
    sheets_api_endpoint: str = ""
    # contract §4: every tab and cell of the sheet is configurable; defaults are today's sheet.
    # The defaults are the layout's own, so today's sheet is named in one place.
    sheet_errors_tab: str = Layout.errors_tab
    sheet_copies_tab: str = Layout.copies_tab
    sheet_not_found_tab: str = Layout.not_found_tab
    sheet_count_column: str = Layout.count_column
    sheet_stamp_cell: str = Layout.stamp_cell
    # contract §6 alerts: a dead-man's-switch monitor, and the Sentry Crons monitor's slug.
    healthcheck_url: str = ""
    sentry_monitor_slug: str = "backtest-compilation"

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({inner})"

    __str__ = __repr__

    def redacted(self) -> dict[str, object]:
        """Field → value, safe to log: passwords and the DSN are masked."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "mongo_uri":
                value = redact_uri(value)
            elif f.name in ("sentry_dsn", "healthcheck_url") and value:
                value = REDACTED
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, frozenset):
                value = sorted(value)
            out[f.name] = value
        return out

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def sheet_key(self) -> str:
        """The spreadsheet id in `SHEET_URL` (a bare id is accepted too)."""
        m = _SHEET_KEY.search(self.sheet_url)
        return m.group(1) if m else self.sheet_url.strip()

    @property
    def uses_mongomock(self) -> bool:
        return self.mongo_uri.startswith("mongomock:")


def redact_uri(uri: str) -> str:
    """`mongodb://user:secret@host/db` → `mongodb://user:***@host/db`."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return REDACTED
    if "@" not in parts.netloc:
        # Options like tlsCertificateKeyFilePassword may carry secrets too.
        return (
            uri
            if "password" not in parts.query.lower()
            else urlunsplit(parts._replace(query=REDACTED))
        )
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{user}@{host}"
    query = REDACTED if "password" in parts.query.lower() else parts.query
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _quoted(value: str) -> bool:
    """`"abc"` or `'abc'`: a value wrapped in one pair of matching quotes."""
    return len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'"


def _folder_id(raw: str, problems: list[str]) -> str:
    """The id in `FOLDER_ID`: a bare id, or taken from a folder's Drive URL."""
    if not raw.lower().startswith(("http://", "https://")):
        return raw
    m = _FOLDER_URL.match(raw)
    if m:
        return m.group(1)
    if _FILE_URL.match(raw):
        problems.append(
            "FOLDER_ID is the address of a file; it must be the shared drive or the top folder "
            "of the backtests (https://drive.google.com/drive/folders/<id>)"
        )
    else:
        problems.append(
            "FOLDER_ID is not a Drive folder URL (https://drive.google.com/drive/folders/<id>) "
            f"nor an id: {raw!r}"
        )
    return ""


def _bool(name: str, raw: str, problems: list[str]) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value not in _FALSE:
        problems.append(f"{name} must be true or false, not {raw!r}")
    return False


def _number(name: str, raw: str, problems: list[str], *, low: float, high: float | None) -> float:
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name} must be a number, not {raw!r}")
        return low
    if value != value or value < low or (high is not None and value > high):  # NaN too
        bounds = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        problems.append(f"{name} must be {bounds}, not {raw!r}")
        return low
    return value


def _endpoint(name: str, raw: str, problems: list[str]) -> str:
    value = raw.strip().rstrip("/")
    if value and urlsplit(value).scheme not in ("http", "https"):
        problems.append(f"{name} must be an http(s) URL like http://127.0.0.1:8080, not {raw!r}")
    return value


class _Group:
    """Reads one group of settings from the environment and collects that group's
    problems; each group's phase returns them with its values."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def get(self, name: str, default: str = "") -> str:
        """`name`'s value, stripped; `default` when unset or blank; quotes refused."""
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return default
        value = value.strip()
        if _quoted(value):
            # `docker run --env-file` keeps quotes that `.env` parsing would remove; the
            # value is not echoed, since it may be a password or a DSN.
            self.problems.append(
                f"{name} is wrapped in quotes: remove the quotes (docker --env-file keeps them)"
            )
            value = value[1:-1].strip() or default
        return value


Fields = dict[str, Any]
_DEFAULTS = Settings()


def load(
    env: Mapping[str, str],
    *,
    needs_drive: bool = True,
) -> Settings:
    """Build `Settings` from `env` (the environment merged over `.env`).

    `needs_drive` is False when the tree comes from a local folder (`--source`, `demo`):
    then `FOLDER_ID` and Drive credentials are not required. Raises `ConfigError`
    listing every problem found, in the order the settings are read.
    """
    fields_: Fields = {}
    problems: list[str] = []
    for phase in (
        lambda: _drive(env, needs_drive),
        lambda: _mongo(env),
        lambda: _logging_and_schedule(env),
        lambda: _numbers(env),
        lambda: _people_and_sheet(env),
        lambda: _monitoring(env),
        lambda: _endpoints(env),
        lambda: _sheet_layout(env),
        lambda: _credentials(env, needs_drive, fields_),
    ):
        values, found = phase()
        fields_.update(values)
        problems += found
    if problems:
        raise ConfigError(problems)
    # Read last, as before: a quoted CACHE_DIR loses its quotes without a problem.
    fields_["cache_dir"] = Path(_Group(env).get("CACHE_DIR", str(_DEFAULTS.cache_dir)))
    return Settings(**fields_)


def _drive(env: Mapping[str, str], needs_drive: bool) -> tuple[Fields, list[str]]:
    """`FOLDER_ID`: a bare id or a folder's URL; required unless the tree is local."""
    group = _Group(env)
    folder_raw = group.get("FOLDER_ID")
    folder_id = _folder_id(folder_raw, group.problems)
    if needs_drive and not folder_raw:
        group.problems.append("FOLDER_ID is not set: the id of the backtest shared drive or folder")
    return {"folder_id": folder_id}, group.problems


def _mongo(env: Mapping[str, str]) -> tuple[Fields, list[str]]:
    """`MONGO_URI` (its scheme) and `MONGO_DB` (a valid database name)."""
    group = _Group(env)
    mongo_uri = group.get("MONGO_URI", _DEFAULTS.mongo_uri)
    scheme = mongo_uri.split("://", 1)[0] if "://" in mongo_uri else ""
    if scheme not in MONGO_SCHEMES:
        group.problems.append(
            "MONGO_URI must start with mongodb://, mongodb+srv:// or mongomock:// "
            f"(got {redact_uri(mongo_uri)!r})"
        )
    mongo_db = group.get("MONGO_DB", _DEFAULTS.mongo_db)
    if set(mongo_db) & _DB_NAME_FORBIDDEN or len(mongo_db.encode()) > 63:
        group.problems.append(f"MONGO_DB is not a valid database name: {mongo_db!r}")
    return {"mongo_uri": mongo_uri, "mongo_db": mongo_db}, group.problems


def _logging_and_schedule(env: Mapping[str, str]) -> tuple[Fields, list[str]]:
    """`LOG_LEVEL`, `SCHEDULE` (five cron fields) and `TZ` (a known zone)."""
    group = _Group(env)
    problems = group.problems
    log_level = group.get("LOG_LEVEL", _DEFAULTS.log_level).upper()
    if log_level not in LOG_LEVELS:
        problems.append(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
    schedule = group.get("SCHEDULE", _DEFAULTS.schedule)
    if not croniter.is_valid(schedule):
        problems.append(
            f"SCHEDULE is not a valid cron expression: {schedule!r} (it needs 5 fields: "
            f"{CRON_FIELDS})"
        )
    elif len(schedule.split()) != 5:
        # croniter also takes a sixth field, as seconds: "2 9-19/2 * * * *" would run 60
        # times a minute at 9:02. Only the classic five fields mean what people expect.
        problems.append(
            f"SCHEDULE needs 5 fields: {CRON_FIELDS} (got {len(schedule.split())}: {schedule!r})"
        )
    tz = group.get("TZ", _DEFAULTS.tz)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"TZ is not a known time zone: {tz!r} (e.g. America/New_York)")
    return {"log_level": log_level, "schedule": schedule, "tz": tz}, problems


def _numbers(env: Mapping[str, str]) -> tuple[Fields, list[str]]:
    """Rates, fractions, durations and `RENAME_FILES`, each within its bounds."""
    group = _Group(env)
    p, get = group.problems, group.get
    values = {
        "sentry_trace_rate": _number(
            "SENTRY_TRACE_RATE", get("SENTRY_TRACE_RATE", "1.0"), p, low=0.0, high=1.0
        ),
        "max_delete_fraction": _number(
            "MAX_DELETE_FRACTION", get("MAX_DELETE_FRACTION", "0.25"), p, low=0.0, high=1.0
        ),
        "full_rescan_hours": _number(
            "FULL_RESCAN_HOURS", get("FULL_RESCAN_HOURS", "24"), p, low=0.0, high=None
        ),
        "rename_files": _bool("RENAME_FILES", get("RENAME_FILES", "true"), p),
        "rename_stall_s": _number(
            "RENAME_STALL_S", get("RENAME_STALL_S", "300"), p, low=1.0, high=None
        ),
        "rename_budget_s": _number(
            "RENAME_BUDGET_S", get("RENAME_BUDGET_S", "600"), p, low=0.0, high=None
        ),
        "drive_writes_per_s": _number(
            "DRIVE_WRITES_PER_S", get("DRIVE_WRITES_PER_S", "3"), p, low=0.1, high=None
        ),
        "run_timeout_s": _number(
            "RUN_TIMEOUT_S", get("RUN_TIMEOUT_S", "2700"), p, low=1.0, high=None
        ),
    }
    return values, p


def _people_and_sheet(env: Mapping[str, str]) -> tuple[Fields, list[str]]:
    """`FUTURE_YEAR_EXEMPT` (department codes), `DELEGATE_EMAIL` and `SHEET_URL`."""
    group = _Group(env)
    problems = group.problems
    exempt_raw = group.get("FUTURE_YEAR_EXEMPT", "BEAR")
    exempt = frozenset(code.strip() for code in exempt_raw.split(",") if code.strip())
    bad_codes = sorted(code for code in exempt if not re.fullmatch(r"[A-Z]{4}", code))
    if bad_codes:
        problems.append(
            "FUTURE_YEAR_EXEMPT must be department codes (four capitals) separated by commas, "
            f"not {', '.join(bad_codes)}"
        )
    delegate_email = group.get("DELEGATE_EMAIL")
    if delegate_email and "@" not in delegate_email:
        problems.append(f"DELEGATE_EMAIL is not an e-mail address: {delegate_email!r}")
    sheet_url = group.get("SHEET_URL")
    if sheet_url and sheet_url.startswith("http") and not _SHEET_KEY.search(sheet_url):
        problems.append(
            "SHEET_URL is not a spreadsheet URL (https://docs.google.com/spreadsheets/d/<id>/edit)"
        )
    values = {
        "future_year_exempt": exempt,
        "delegate_email": delegate_email,
        "sheet_url": sheet_url,
    }
    return values, problems


def _monitoring(env: Mapping[str, str]) -> tuple[Fields, list[str]]:
    """`SENTRY_DSN`, `HEALTHCHECK_URL` and `SENTRY_MONITOR_SLUG` (never echoed if secret)."""
    group = _Group(env)
    problems = group.problems
    sentry_dsn = group.get("SENTRY_DSN")
    if sentry_dsn and urlsplit(sentry_dsn).scheme not in ("http", "https"):
        problems.append("SENTRY_DSN is not a DSN URL (https://<key>@<host>/<project>)")
    healthcheck_url = group.get("HEALTHCHECK_URL").rstrip("/")
    if healthcheck_url and (
        urlsplit(healthcheck_url).scheme not in ("http", "https")
        or not urlsplit(healthcheck_url).netloc
    ):
        # The value is not echoed: a ping URL is the monitor's only credential.
        problems.append("HEALTHCHECK_URL must be an http(s) URL like https://hc-ping.com/<uuid>")
    monitor_slug = group.get("SENTRY_MONITOR_SLUG", _DEFAULTS.sentry_monitor_slug)
    if not re.fullmatch(r"[a-z0-9_-]{1,50}", monitor_slug):
        problems.append(
            "SENTRY_MONITOR_SLUG must be lower-case letters, digits, - and _ "
            f"(at most 50), not {monitor_slug!r}"
        )
    values = {
        "sentry_dsn": sentry_dsn,
        "healthcheck_url": healthcheck_url,
        "sentry_monitor_slug": monitor_slug,
    }
    return values, problems


def _endpoints(env: Mapping[str, str]) -> tuple[Fields, list[str]]:
    """`DRIVE_API_ENDPOINT` and `SHEETS_API_ENDPOINT` (emulators; http(s) URLs)."""
    group = _Group(env)
    p = group.problems
    drive = _endpoint("DRIVE_API_ENDPOINT", group.get("DRIVE_API_ENDPOINT"), p)
    sheets = _endpoint("SHEETS_API_ENDPOINT", group.get("SHEETS_API_ENDPOINT"), p)
    return {"drive_api_endpoint": drive, "sheets_api_endpoint": sheets}, p


def _sheet_layout(env: Mapping[str, str]) -> tuple[Fields, list[str]]:
    """The `SHEET_*` tab names, count column and time-stamp cell."""
    group = _Group(env)
    names = {
        name: group.get(name, getattr(_DEFAULTS, name.lower()))
        for name in (
            "SHEET_ERRORS_TAB",
            "SHEET_COPIES_TAB",
            "SHEET_NOT_FOUND_TAB",
            "SHEET_COUNT_COLUMN",
            "SHEET_STAMP_CELL",
        )
    }
    if not re.fullmatch(r"[A-Z]{1,3}", names["SHEET_COUNT_COLUMN"]):
        group.problems.append(
            f"SHEET_COUNT_COLUMN must be column letters like F, not {names['SHEET_COUNT_COLUMN']!r}"
        )
    if not re.fullmatch(r"[A-Z]{1,3}[1-9][0-9]{0,6}", names["SHEET_STAMP_CELL"]):
        group.problems.append(
            f"SHEET_STAMP_CELL must be a cell like P24, not {names['SHEET_STAMP_CELL']!r}"
        )
    return {name.lower(): value for name, value in names.items()}, group.problems


def _credentials(
    env: Mapping[str, str], needs_drive: bool, read: Fields
) -> tuple[Fields, list[str]]:
    """`GOOGLE_CREDENTIALS_FILE` must exist when Drive or Sheets is used without an emulator."""
    group = _Group(env)
    credentials = Path(group.get("GOOGLE_CREDENTIALS_FILE", str(_DEFAULTS.google_credentials_file)))
    wants_key = [
        api
        for api, used, endpoint in (
            ("Drive", needs_drive, read["drive_api_endpoint"]),
            ("Sheets", bool(read["sheet_url"]), read["sheets_api_endpoint"]),
        )
        if used and not endpoint
    ]
    if wants_key and not credentials.is_file():
        group.problems.append(
            f"GOOGLE_CREDENTIALS_FILE {str(credentials)!r} does not exist: the service-account "
            f"key is needed for {' and '.join(wants_key)} (see config/README.md)"
        )
    return {"google_credentials_file": credentials}, group.problems


def read_env(dotenv_path: Path | None = Path(".env")) -> dict[str, str]:
    """The process environment merged over `.env` (the environment wins)."""
    merged: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(os.environ)
    return merged
