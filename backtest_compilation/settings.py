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
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from dotenv import dotenv_values

from .errors import ConfigError

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
    run_timeout_s: float = 2700.0
    max_delete_fraction: float = 0.25
    future_year_exempt: frozenset[str] = frozenset({"BEAR"})
    drive_api_endpoint: str = ""
    sheets_api_endpoint: str = ""
    # contract §4: every tab and cell of the sheet is configurable; defaults are today's sheet.
    sheet_errors_tab: str = "Errors in Drive"
    sheet_copies_tab: str = "Physical Copies of Backtests"
    sheet_not_found_tab: str = "Classes Not Found"
    sheet_count_column: str = "F"
    sheet_stamp_cell: str = "P24"
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


def load(
    env: Mapping[str, str],
    *,
    needs_drive: bool = True,
) -> Settings:
    """Build `Settings` from `env` (the environment merged over `.env`).

    `needs_drive` is False when the tree comes from a local folder (`--source`, `demo`):
    then `FOLDER_ID` and Drive credentials are not required. Raises `ConfigError`
    listing every problem found.
    """
    problems: list[str] = []

    def get(name: str, default: str = "") -> str:
        value = env.get(name)
        if value is None or value.strip() == "":
            return default
        value = value.strip()
        if _quoted(value):
            # `docker run --env-file` keeps quotes that `.env` parsing would remove; the
            # value is not echoed, since it may be a password or a DSN.
            problems.append(
                f"{name} is wrapped in quotes: remove the quotes (docker --env-file keeps them)"
            )
            value = value[1:-1].strip() or default
        return value

    defaults = Settings()
    folder_raw = get("FOLDER_ID")
    folder_id = _folder_id(folder_raw, problems)
    if needs_drive and not folder_raw:
        problems.append("FOLDER_ID is not set: the id of the backtest shared drive or folder")

    mongo_uri = get("MONGO_URI", defaults.mongo_uri)
    scheme = mongo_uri.split("://", 1)[0] if "://" in mongo_uri else ""
    if scheme not in MONGO_SCHEMES:
        problems.append(
            "MONGO_URI must start with mongodb://, mongodb+srv:// or mongomock:// "
            f"(got {redact_uri(mongo_uri)!r})"
        )

    mongo_db = get("MONGO_DB", defaults.mongo_db)
    if set(mongo_db) & _DB_NAME_FORBIDDEN or len(mongo_db.encode()) > 63:
        problems.append(f"MONGO_DB is not a valid database name: {mongo_db!r}")

    log_level = get("LOG_LEVEL", defaults.log_level).upper()
    if log_level not in LOG_LEVELS:
        problems.append(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")

    schedule = get("SCHEDULE", defaults.schedule)
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

    tz = get("TZ", defaults.tz)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"TZ is not a known time zone: {tz!r} (e.g. America/New_York)")

    sentry_trace_rate = _number(
        "SENTRY_TRACE_RATE", get("SENTRY_TRACE_RATE", "1.0"), problems, low=0.0, high=1.0
    )
    max_delete_fraction = _number(
        "MAX_DELETE_FRACTION", get("MAX_DELETE_FRACTION", "0.25"), problems, low=0.0, high=1.0
    )
    full_rescan_hours = _number(
        "FULL_RESCAN_HOURS", get("FULL_RESCAN_HOURS", "24"), problems, low=0.0, high=None
    )
    rename_files = _bool("RENAME_FILES", get("RENAME_FILES", "true"), problems)
    rename_stall_s = _number(
        "RENAME_STALL_S", get("RENAME_STALL_S", "300"), problems, low=1.0, high=None
    )
    rename_budget_s = _number(
        "RENAME_BUDGET_S", get("RENAME_BUDGET_S", "600"), problems, low=0.0, high=None
    )
    run_timeout_s = _number(
        "RUN_TIMEOUT_S", get("RUN_TIMEOUT_S", "2700"), problems, low=1.0, high=None
    )

    exempt_raw = get("FUTURE_YEAR_EXEMPT", "BEAR")
    exempt = frozenset(code.strip() for code in exempt_raw.split(",") if code.strip())
    bad_codes = sorted(code for code in exempt if not re.fullmatch(r"[A-Z]{4}", code))
    if bad_codes:
        problems.append(
            "FUTURE_YEAR_EXEMPT must be department codes (four capitals) separated by commas, "
            f"not {', '.join(bad_codes)}"
        )

    delegate_email = get("DELEGATE_EMAIL")
    if delegate_email and "@" not in delegate_email:
        problems.append(f"DELEGATE_EMAIL is not an e-mail address: {delegate_email!r}")

    sheet_url = get("SHEET_URL")
    if sheet_url and sheet_url.startswith("http") and not _SHEET_KEY.search(sheet_url):
        problems.append(
            "SHEET_URL is not a spreadsheet URL (https://docs.google.com/spreadsheets/d/<id>/edit)"
        )

    sentry_dsn = get("SENTRY_DSN")
    if sentry_dsn and urlsplit(sentry_dsn).scheme not in ("http", "https"):
        problems.append("SENTRY_DSN is not a DSN URL (https://<key>@<host>/<project>)")

    healthcheck_url = get("HEALTHCHECK_URL").rstrip("/")
    if healthcheck_url and (
        urlsplit(healthcheck_url).scheme not in ("http", "https")
        or not urlsplit(healthcheck_url).netloc
    ):
        # The value is not echoed: a ping URL is the monitor's only credential.
        problems.append("HEALTHCHECK_URL must be an http(s) URL like https://hc-ping.com/<uuid>")
    monitor_slug = get("SENTRY_MONITOR_SLUG", defaults.sentry_monitor_slug)
    if not re.fullmatch(r"[a-z0-9_-]{1,50}", monitor_slug):
        problems.append(
            "SENTRY_MONITOR_SLUG must be lower-case letters, digits, - and _ "
            f"(at most 50), not {monitor_slug!r}"
        )

    drive_endpoint = _endpoint("DRIVE_API_ENDPOINT", get("DRIVE_API_ENDPOINT"), problems)
    sheets_endpoint = _endpoint("SHEETS_API_ENDPOINT", get("SHEETS_API_ENDPOINT"), problems)

    sheet_names = {
        name: get(name, getattr(defaults, name.lower()))
        for name in (
            "SHEET_ERRORS_TAB",
            "SHEET_COPIES_TAB",
            "SHEET_NOT_FOUND_TAB",
            "SHEET_COUNT_COLUMN",
            "SHEET_STAMP_CELL",
        )
    }
    if not re.fullmatch(r"[A-Z]{1,3}", sheet_names["SHEET_COUNT_COLUMN"]):
        problems.append(
            f"SHEET_COUNT_COLUMN must be column letters like F, not "
            f"{sheet_names['SHEET_COUNT_COLUMN']!r}"
        )
    if not re.fullmatch(r"[A-Z]{1,3}[1-9][0-9]{0,6}", sheet_names["SHEET_STAMP_CELL"]):
        problems.append(
            f"SHEET_STAMP_CELL must be a cell like P24, not {sheet_names['SHEET_STAMP_CELL']!r}"
        )

    credentials = Path(get("GOOGLE_CREDENTIALS_FILE", str(defaults.google_credentials_file)))
    wants_key = [
        api
        for api, used, endpoint in (
            ("Drive", needs_drive, drive_endpoint),
            ("Sheets", bool(sheet_url), sheets_endpoint),
        )
        if used and not endpoint
    ]
    if wants_key and not credentials.is_file():
        problems.append(
            f"GOOGLE_CREDENTIALS_FILE {str(credentials)!r} does not exist: the service-account "
            f"key is needed for {' and '.join(wants_key)} (see config/README.md)"
        )

    if problems:
        raise ConfigError(problems)
    return Settings(
        folder_id=folder_id,
        delegate_email=delegate_email,
        sheet_url=sheet_url,
        google_credentials_file=credentials,
        mongo_uri=mongo_uri,
        mongo_db=mongo_db,
        cache_dir=Path(get("CACHE_DIR", str(defaults.cache_dir))),
        log_level=log_level,
        sentry_dsn=sentry_dsn,
        sentry_trace_rate=sentry_trace_rate,
        schedule=schedule,
        tz=tz,
        rename_files=rename_files,
        full_rescan_hours=full_rescan_hours,
        rename_stall_s=rename_stall_s,
        rename_budget_s=rename_budget_s,
        run_timeout_s=run_timeout_s,
        max_delete_fraction=max_delete_fraction,
        future_year_exempt=exempt,
        drive_api_endpoint=drive_endpoint,
        sheets_api_endpoint=sheets_endpoint,
        healthcheck_url=healthcheck_url,
        sentry_monitor_slug=monitor_slug,
        **{name.lower(): value for name, value in sheet_names.items()},
    )


def read_env(dotenv_path: Path | None = Path(".env")) -> dict[str, str]:
    """The process environment merged over `.env` (the environment wins)."""
    merged: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(os.environ)
    return merged
