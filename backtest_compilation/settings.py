"""Configuration (contract §6): one table of settings, read from the environment and `.env`
(not pydantic-settings: it cannot tell a stray name in `.env` from one in the environment)."""

from __future__ import annotations

import difflib
import logging
import os
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from dotenv import dotenv_values

from .errors import ConfigError
from .sheet_contents import Layout

log = logging.getLogger(__name__)
LOG_LEVELS = "DEBUG, INFO, WARNING, ERROR, CRITICAL"
REDACTED = "***"
Parse = Callable[[str], Any]  # raises a `ValueError` saying what is wrong (after the name)


def _matching(pattern: str, what: str, convert: Parse = str, *, secret: bool = False) -> Parse:
    """A parser of values matching `pattern` whole; a `secret` one is never echoed."""

    def parse(raw: str) -> Any:
        if not re.fullmatch(pattern, raw):
            raise ValueError(f"must be {what}" + ("" if secret else f", not {raw!r}"))
        return convert(raw)

    return parse


def _url(example: str, *, secret: bool = False) -> Parse:
    url = r"https?://[^\s/]+\S*"
    return _matching(url, f"an http(s) URL like {example}", lambda u: u.rstrip("/"), secret=secret)


def _number(low: float, high: float) -> Parse:
    """A parser for a number in [low, high] (so never NaN nor infinite)."""

    def parse(raw: str) -> float:
        number = re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?", raw, re.I)
        if not number or not low <= float(raw) <= high:
            raise ValueError(f"must be a number between {low:g} and {high:g}, not {raw!r}")
        return float(raw)

    return parse


def _folder_id(raw: str) -> str:
    """A bare id, or the id in a folder's Drive address as the browser shows it."""
    m = re.match(r"https?://drive\.google\.com/(drive/(u/\d+/)?folders/|open\?id=)([\w-]+)", raw)
    if m or not re.match(r"(?i)https?://", raw):
        return m.group(3) if m else raw
    raise ValueError(
        "is not a folder's address: it must be the shared drive or the top folder of the "
        f"backtests (https://drive.google.com/drive/folders/<id>), or its id, not {raw!r}"
    )


def _schedule(raw: str) -> str:
    """Five cron fields (croniter would read a sixth as seconds) that fire within a year."""
    if len(raw.split()) != 5 or not croniter.is_valid(raw):
        raise ValueError(
            f"is not a valid cron expression: {raw!r} "
            "(it needs 5 fields: minute hour day-of-month month day-of-week)"
        )
    try:
        croniter(raw, max_years_between_matches=1).get_next()
    except ValueError:  # CroniterBadDateError (`0 0 30 2 *`)
        raise ValueError(f"never fires within a year: {raw!r}") from None
    return raw


def _zone(raw: str) -> str:
    """A known zone, not a fixed offset other than UTC (`EST`: an hour off all summer)."""
    try:
        zone = ZoneInfo(raw)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"is not a known time zone: {raw!r} (e.g. America/New_York)") from None
    if (raw in ("EST", "MST", "HST") or raw.startswith("Etc/")) and datetime.now(zone).utcoffset():
        raise ValueError(
            f"{raw!r} is a fixed offset, without daylight saving: name the place instead "
            "(America/New_York; America/Phoenix where clocks never change) or use UTC"
        )
    return raw


def setting(
    default: str, parse: Parse, help: str, *, example: str | None = None, secret: bool = False
) -> Any:
    """A field: `default` as written in `.env` ("" unset); `example` what `.env.example` sets."""
    metadata = {"default": default, "parse": parse, "help": help, "example": example}
    return field(default=parse(default) if default else "", repr=not secret, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    """The settings table (contract §6): each field is the setting named `FIELD`."""

    # fmt: off
    folder_id: str = setting("", _folder_id, "the backtest shared drive's (or top folder's) id "
        "or Drive address; required unless `--source`", example="")
    delegate_email: str = setting("", _matching(r"[^@\s]+@[^@\s]+", "an e-mail address"),
        "user the service account acts as (domain-wide delegation)", example="")
    sheet_url: str = setting("", _matching(r"(?!https?:).*|https?://.*/spreadsheets/d/[\w-]+.*",
        "a spreadsheet URL (https://docs.google.com/spreadsheets/d/<id>/edit)"),
        "spreadsheet URL; when unset the sheet step is skipped (a warning)", example="")
    google_credentials_file: Path = setting("config/service-credentials.json", Path,  # noqa: RUF009
        "the service account's JSON key (git-ignored)")
    mongo_uri: str = setting("mongodb://localhost:27017", _matching(r"(mongodb|mongodb\+srv|"
        "mongomock)://.*", "a mongodb://, mongodb+srv:// or mongomock:// URI", secret=True),
        "the website's MongoDB; `mongomock://` is an in-process store for trying things out",
        example="mongodb://mongo:27017", secret=True)  # the database compose.yaml starts
    mongo_db: str = setting("apo_main", _matching(r'[^/\\. "$*<>:|?]{1,63}', "a database name"),
        "database holding the three backtest collections")
    cache_dir: Path = setting("cache", Path,  # noqa: RUF009
        "state file, lock, heartbeat, `last-run.json`, `report.html`")
    log_level: str = setting("INFO", _matching("(?i)" + LOG_LEVELS.replace(", ", "|"),
        f"one of {LOG_LEVELS}", str.upper), f"{LOG_LEVELS} (`-v`/`-q` change it)")
    sentry_dsn: str = setting("", _url("https://<key>@<host>/<project>", secret=True),
        "Sentry error reporting (off when unset); under `schedule` also Sentry Crons", secret=True)
    sentry_trace_rate: float = setting("1", _number(0, 1), "share of runs traced for Sentry")
    schedule: str = setting("*/10 * * * *", _schedule,
        "cron expression of `schedule`'s runs, in `TZ`")
    tz: str = setting("America/New_York", _zone,
        "time zone of `SCHEDULE`, the logs and the sheet's time stamp")
    rename_files: bool = setting("true", _matching("(?i)true|false|yes|no|on|off|1|0",
        "true or false", lambda raw: raw.lower() in ("true", "yes", "on", "1")),
        "normalise badly named test files in Drive")
    full_rescan_hours: float = setting("24", _number(0, 8760),
        "at least this often, list the whole drive instead of following the changes feed")
    max_delete_fraction: float = setting("0.25", _number(0, 1), "mass-delete guard: refuse to "
        "delete more than this share of the courses (and more than 10)")
    future_year_exempt: frozenset[str] = setting("BEAR", _matching(r"[A-Z]{4}(\s*,\s*[A-Z]{4})*,?",
        "department codes (four capitals) separated by commas",
        lambda raw: frozenset(re.findall("[A-Z]{4}", raw))), "departments allowed future years")
    drive_writes_per_s: float = setting("3", _number(0.1, 100), "Drive writes a second "
        "renames start at (Google's figure per user); the pacer slows on refusals, never above it")
    rename_stall_s: float = setting("300", _number(1, 86400), "renames give up (as "
        "`rename_failed`) only after this long without a single success")
    rename_budget_s: float = setting("600", _number(0, 86400),
        "at most this long renaming per run; the rest is pending for the next run")
    run_timeout_s: float = setting("2700", _number(1, 86400), "a run that takes longer "
        "stops cleanly (exit 1), keeping what its completed sinks did")
    healthcheck_url: str = setting("", _url("https://hc-ping.com/<uuid>", secret=True),
        "a dead-man's-switch monitor pinged at `/start`, on success and at `/fail` of every "
        "sync; one that is down never fails a run", secret=True)  # the URL is a key
    sentry_monitor_slug: str = setting("backtest-compilation", _matching(r"[a-z0-9_-]{1,50}",
        "lower-case letters, digits, - and _ (at most 50)"),
        "the Sentry Crons monitor `schedule` reports to (with the DSN)")
    drive_api_endpoint: str = setting("", _url("http://127.0.0.1:8080"), "root URL of a "
        "server answering like Google Drive (tests, demos): no key needed")
    sheets_api_endpoint: str = setting("", _url("http://127.0.0.1:8080"), "the same for Sheets")
    sheet_errors_tab: str = setting(Layout.errors_tab, str, "the tool's problems tab")
    sheet_copies_tab: str = setting(Layout.copies_tab, str, "the people's tab, a row per course")
    sheet_not_found_tab: str = setting(Layout.not_found_tab, str,
        "the tool's tab of courses without a row")
    sheet_count_column: str = setting(Layout.count_column, _matching(r"[A-Z]{1,3}",
        "column letters like F"), "column of the people's tab that receives the digital counts")
    sheet_stamp_cell: str = setting(Layout.stamp_cell, _matching(r"[A-Z]{1,3}[1-9][0-9]{0,6}",
        "a cell like P24"), "cell of the people's tab receiving the time the sheet last changed")
    # fmt: on

    @property
    def sheet_key(self) -> str:
        """The spreadsheet id in `SHEET_URL` (a bare id is accepted too)."""
        m = re.search(r"/spreadsheets/d/([\w-]+)", self.sheet_url)
        return m.group(1) if m else self.sheet_url.strip()


TABLE = {f.name.upper(): f for f in fields(Settings)}


def redact_uri(uri: str) -> str:
    """`mongodb://user:secret@host/db` → `mongodb://user:***@host/db`; a password query too."""
    uri = re.sub(r"(://[^:/@]*:)[^/]*@", rf"\g<1>{REDACTED}@", uri)
    return re.sub(r"\?.*password.*", f"?{REDACTED}", uri, flags=re.IGNORECASE)


def not_a_setting(name: str, *, strict: bool = False) -> str | None:
    """The line saying `name` is not a setting, naming the closest; None for a setting, and with
    `strict` (other programs' names: `UV_CACHE_DIR` is not `CACHE_DIR`) unless one is close."""
    found = difflib.get_close_matches(name, TABLE, n=1, cutoff=0.85 if strict else 0.6)
    if name in TABLE or (strict and (not found or abs(len(found[0]) - len(name)) > 2)):
        return None
    hint = f"did you mean {found[0]}?" if found else 'README.md "Configuration" lists them'
    return f"{name} is not a setting; {hint}"


def read_env(dotenv: Path) -> dict[str, str]:
    """The `.env` at `dotenv` under the process environment's settings, warning of look-alikes
    of a setting in the environment (`MONGO_URL`). Tests never read the repository's `.env`."""
    for name in sorted(os.environ):
        if warning := not_a_setting(name, strict=True):
            log.warning("%s (in the environment)", warning)
    from_file = {k: v or "" for k, v in dotenv_values(dotenv).items()} if dotenv.is_file() else {}
    return from_file | {name: value for name, value in os.environ.items() if name in TABLE}


def load(env: Mapping[str, str], *, needs_drive: bool = True) -> Settings:
    """`Settings` from `read_env`'s `env`, or `ConfigError` listing every problem; `needs_drive`
    False for a local folder (`--source`, `demo`), which needs no `FOLDER_ID` nor Drive key."""
    problems = [problem for name in env if (problem := not_a_setting(name))]
    values: dict[str, Any] = {}
    for name, f in TABLE.items():
        raw = env.get(name, "").strip()
        quoted = f"{name} is wrapped in quotes: remove the quotes (docker --env-file keeps them)"
        if re.fullmatch(r"(?s)(['\"]).*\1", raw):  # the value is not echoed: it may be a secret
            problems.append(quoted)
        elif raw:
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                problems.append(f"{name} {exc}")
    config = Settings(**values)
    if needs_drive and not env.get("FOLDER_ID", "").strip():
        problems.append("FOLDER_ID is not set: the id of the backtest shared drive or folder")
    apis = {"Drive": needs_drive and not config.drive_api_endpoint}
    apis["Sheets"] = bool(config.sheet_url) and not config.sheets_api_endpoint
    key = config.google_credentials_file
    if any(apis.values()) and not key.is_file():
        problems.append(
            f"GOOGLE_CREDENTIALS_FILE {str(key)!r} "
            f"{'is a directory' if key.is_dir() else 'does not exist'}: the service-account "
            f"key file is needed for {' and '.join(api for api, on in apis.items() if on)} "
            "(see config/README.md)"
        )
    if problems:
        raise ConfigError(problems)
    return config


def help_text() -> str:
    """The settings part of `--help`: each name, its help and its default."""
    lines = ['settings (environment or .env; README.md "Configuration"):']
    for name, f in TABLE.items():
        default = f" (default {f.metadata['default']})" if f.metadata["default"] else ""
        text = f"{name}: {f.metadata['help']}{default}".replace("`", "")
        lines += textwrap.wrap(text, 88, initial_indent="  ", subsequent_indent="      ")
    return "\n".join(lines)
