"""Configuration (contract §6): one table of settings, read once from the environment and `.env`.

Each setting is one field of `Settings`, declared once with `setting(default, parser, help)`:
its environment name is the field's, upper-cased. Loading, `--help` (`help_text`), the
README's table (`markdown_table`), `.env.example` (`env_example`) and `doctor` read it.
`load` reports every problem at once (`ConfigError.problems`, one line each); the CLI
prints them and exits 2. Secrets never appear in `repr` or `redacted()`.

A plain dataclass, not pydantic-settings: the messages are ours (one line, the fix, never
a secret), unknown `.env` names must be told apart from the process environment, and the
rest of the program keeps its frozen `Settings` without a new dependency.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from croniter import croniter
from dotenv import dotenv_values

from .errors import ConfigError
from .sheet_contents import Layout

log = logging.getLogger(__name__)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CRON_FIELDS = "minute hour day-of-month month day-of-week"
REDACTED = "***"
_SHEET_KEY = re.compile(r"/spreadsheets/d/([A-Za-z0-9_-]+)")
# A folder's or shared drive's address as the browser shows it, `/u/0/` and `?usp=…` included.
_FOLDER_URL = re.compile(
    r"^https?://drive\.google\.com/(?:drive/(?:u/\d+/)?folders/|open\?id=)([A-Za-z0-9_-]+)"
)
_KEY_FILE, _CACHE = Path("config/service-credentials.json"), Path("cache")
_FILE_URL = re.compile(r"^https?://(?:drive|docs)\.google\.com/(?:file/d/|\w+/d/)")


def _matching(pattern: str, what: str) -> Callable[[str], str]:
    """A parser accepting a value that matches `pattern` whole; else "must be WHAT"."""

    def parse(raw: str) -> str:
        if not re.fullmatch(pattern, raw):
            raise ValueError(f"must be {what}, not {raw!r}")
        return raw

    return parse


def _number(low: float, high: float) -> Callable[[str], float]:
    """A parser for a finite number in [low, high] (`inf` and `nan` are refused)."""

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number, not {raw!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"must be between {low:g} and {high:g}, not {raw!r}")
        return value

    return parse


def _bool(raw: str) -> bool:
    if raw.lower() not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        raise ValueError(f"must be true or false, not {raw!r}")
    return raw.lower() in ("true", "yes", "on", "1")


def _url(example: str, *, secret: bool = False) -> Callable[[str], str]:
    """A parser for an http(s) URL (trailing `/` removed); a secret one is never echoed."""

    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"must be an http(s) URL like {example}" + ("" if secret else f", not {raw!r}")
            )
        return raw.rstrip("/")

    return parse


def _folder_id(raw: str) -> str:
    """A bare id, or the id in a folder's Drive URL."""
    if not raw.lower().startswith(("http://", "https://")):
        return raw
    if m := _FOLDER_URL.match(raw):
        return m.group(1)
    if _FILE_URL.match(raw):
        raise ValueError(
            "is the address of a file; it must be the shared drive or the top folder "
            "of the backtests (https://drive.google.com/drive/folders/<id>)"
        )
    raise ValueError(
        "is not a Drive folder URL (https://drive.google.com/drive/folders/<id>) "
        f"nor an id: {raw!r}"
    )


def _sheet_url(raw: str) -> str:
    if raw.startswith("http") and not _SHEET_KEY.search(raw):
        raise ValueError(
            "is not a spreadsheet URL (https://docs.google.com/spreadsheets/d/<id>/edit)"
        )
    return raw


def _mongo_uri(raw: str) -> str:
    if "://" not in raw or raw.split("://", 1)[0] not in ("mongodb", "mongodb+srv", "mongomock"):
        shown = redact_uri(raw)
        raise ValueError(
            f"must start with mongodb://, mongodb+srv:// or mongomock:// (got {shown!r})"
        )
    return raw


def _log_level(raw: str) -> str:
    if raw.upper() not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, not {raw.upper()!r}")
    return raw.upper()


def _schedule(raw: str) -> str:
    """Five cron fields (croniter would read a sixth as seconds) that fire within a year."""
    if not croniter.is_valid(raw):
        raise ValueError(
            f"is not a valid cron expression: {raw!r} (it needs 5 fields: {CRON_FIELDS})"
        )
    if len(raw.split()) != 5:
        raise ValueError(f"needs 5 fields: {CRON_FIELDS} (got {len(raw.split())}: {raw!r})")
    now = datetime.now(UTC)
    try:
        fires = croniter(raw, now).get_next(datetime) - now <= timedelta(days=366)
    except ValueError:  # croniter's "no such date" (`0 0 30 2 *`) is one
        fires = False
    if not fires:
        raise ValueError(f"never fires within a year: {raw!r}")
    return raw


def _zone(raw: str) -> str:
    """A known IANA zone. A fixed offset (`EST`, `Etc/GMT+5`) other than UTC is refused:
    it is almost always meant as a place's time, and would run an hour off all summer."""
    try:
        zone = ZoneInfo(raw)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"is not a known time zone: {raw!r} (e.g. America/New_York)") from None
    year = datetime.now(UTC).year
    offsets = {datetime(year, month, 1, tzinfo=zone).utcoffset() for month in (1, 7)}
    # The zones that are offsets, not places (`Japan`, without daylight saving, is a place).
    fixed = raw in ("EST", "MST", "HST") or raw.startswith("Etc/")
    if fixed and len(offsets) == 1 and offsets != {timedelta(0)}:
        raise ValueError(
            f"{raw!r} is a fixed offset, without daylight saving: name the place instead "
            "(America/New_York; America/Phoenix where clocks never change) or use UTC"
        )
    return raw


def _codes(raw: str) -> frozenset[str]:
    codes = frozenset(code.strip() for code in raw.split(",") if code.strip())
    if bad := sorted(code for code in codes if not re.fullmatch(r"[A-Z]{4}", code)):
        raise ValueError(
            f"must be department codes (four capitals) separated by commas, not {', '.join(bad)}"
        )
    return codes


def setting(default: Any, parse: Callable[[str], Any], help: str, **extra: str) -> Any:
    """One row of the settings table: a `Settings` field with its default, its one line of
    help and its parser (`parse(raw)` returns the value or raises `ValueError` saying
    what is wrong, after the name). `example=` is what `.env.example` suggests instead."""
    return field(default=default, metadata={"help": help, "parse": parse, **extra})


@dataclass(frozen=True)
class Settings:
    """The settings table (contract §6): each field is one setting, `NAME` upper-cased:
    `setting(default, parser, help)`; `example=` is what `.env.example` suggests instead."""

    # A table, one setting per entry: kept as written.
    # fmt: off
    folder_id: str = setting("", _folder_id, "the backtest shared drive's (or top folder's) id "
        "or Drive address; required unless `--source`", example="")
    delegate_email: str = setting("", _matching(r"[^@\s]+@[^@\s]+", "an e-mail address"),
        "user the service account acts as (domain-wide delegation)", example="")
    sheet_url: str = setting("", _sheet_url,
        "spreadsheet URL; when unset the sheet step is skipped (a warning)", example="")
    google_credentials_file: Path = setting(_KEY_FILE, Path,  # noqa: RUF009 (a field)
        "the service account's JSON key (git-ignored)", example=str(_KEY_FILE))
    mongo_uri: str = setting("mongodb://localhost:27017", _mongo_uri, "the website's MongoDB; "
        "`mongomock://` is an in-process store for trying things out",
        example="mongodb://mongo:27017")  # the database compose.yaml starts
    mongo_db: str = setting("apo_main", _matching(r'[^/\\. "$*<>:|?]{1,63}', "a database name"),
        "database holding the three backtest collections")
    cache_dir: Path = setting(_CACHE, Path,  # noqa: RUF009
        "state file, lock, heartbeat, `last-run.json`, `report.html`")
    log_level: str = setting("INFO", _log_level,
        f"{', '.join(LOG_LEVELS)} (`-v`/`-q` change it)")
    sentry_dsn: str = setting("", _url("https://<key>@<host>/<project>", secret=True),
        "Sentry error reporting (off when unset); under `schedule` also Sentry Crons", example="")
    sentry_trace_rate: float = setting(1.0, _number(0, 1), "share of runs traced for Sentry")
    schedule: str = setting("*/10 * * * *", _schedule,
        "cron expression of `schedule`'s runs, in `TZ`")
    tz: str = setting("America/New_York", _zone,
        "time zone of `SCHEDULE`, the logs and the sheet's time stamp")
    rename_files: bool = setting(True, _bool, "normalise badly named test files in Drive")
    full_rescan_hours: float = setting(24.0, _number(0, 8760),
        "at least this often, list the whole drive instead of following the changes feed")
    max_delete_fraction: float = setting(0.25, _number(0, 1), "mass-delete guard: refuse to "
        "delete more than this share of the courses (and more than 10)")
    future_year_exempt: frozenset[str] = setting(frozenset({"BEAR"}), _codes,
        "departments allowed future years (comma-separated)")
    drive_writes_per_s: float = setting(3.0, _number(0.1, 100), "the sustained Drive write "
        "rate renames start from (Google's figure per user); the pacer slows down on "
        "refusals and never goes above it")
    rename_stall_s: float = setting(300.0, _number(1, 86400), "renames give up (as "
        "`rename_failed`) only after this long without a single success")
    rename_budget_s: float = setting(600.0, _number(0, 86400),
        "at most this long renaming per run; the rest is pending for the next run")
    run_timeout_s: float = setting(2700.0, _number(1, 86400), "a run that takes longer "
        "stops cleanly (exit 1), keeping what its completed sinks did")
    healthcheck_url: str = setting("", _url("https://hc-ping.com/<uuid>", secret=True),
        "a dead-man's-switch monitor pinged at `/start`, on success and at `/fail` of every "
        "sync; one that is down never fails a run", example="")  # the URL is the credential
    sentry_monitor_slug: str = setting("backtest-compilation", _matching(r"[a-z0-9_-]{1,50}",
        "lower-case letters, digits, - and _ (at most 50)"),
        "the Sentry Crons monitor `schedule` reports to (with the DSN)")
    drive_api_endpoint: str = setting("", _url("http://127.0.0.1:8080"), "root URL of a "
        "server answering like Google Drive (tests, demos): no key needed")
    sheets_api_endpoint: str = setting("", _url("http://127.0.0.1:8080"), "the same for Sheets")
    # contract §4: every tab and cell of the sheet is configurable; the defaults are the
    # layout's own, so today's sheet is named in one place.
    sheet_errors_tab: str = setting(Layout.errors_tab, str, "the tool's problems tab")
    sheet_copies_tab: str = setting(Layout.copies_tab, str, "the people's tab, a row per course")
    sheet_not_found_tab: str = setting(Layout.not_found_tab, str,
        "the tool's tab of courses without a row")
    sheet_count_column: str = setting(Layout.count_column, _matching(r"[A-Z]{1,3}",
        "column letters like F"), "column of the people's tab that receives the digital counts")
    sheet_stamp_cell: str = setting(Layout.stamp_cell, _matching(r"[A-Z]{1,3}[1-9][0-9]{0,6}",
        "a cell like P24"), "cell of the people's tab receiving the time of the last change "
        "written to the sheet")
    # fmt: on

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


TABLE = {f.name.upper(): f for f in fields(Settings)}


def redact_uri(uri: str) -> str:
    """`mongodb://user:secret@host/db` → `mongodb://user:***@host/db`."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return REDACTED
    # Options like tlsCertificateKeyFilePassword may carry secrets too.
    query = REDACTED if "password" in parts.query.lower() else parts.query
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{user}@{host}"
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class Environment(dict[str, str]):
    """The process environment merged over `.env`, remembering the `.env` names that are
    no setting (`load` refuses them)."""

    def __init__(self, values: Mapping[str, str], unknown: Iterable[str] = ()) -> None:
        super().__init__(values)
        self.unknown = tuple(unknown)


def closest(name: str, *, strict: bool = False) -> str | None:
    """The setting `name` (no setting) most resembles, if any. `strict` for the process
    environment, which holds other programs' names (`UV_CACHE_DIR` is not `CACHE_DIR`)."""
    found = difflib.get_close_matches(name, TABLE, n=1, cutoff=0.85 if strict else 0.6)
    if name in TABLE or not found or (strict and abs(len(found[0]) - len(name)) > 2):
        return None
    return found[0]


def _not_a_setting(name: str, near: str | None) -> str:
    hint = f"did you mean {near}?" if near else 'README.md "Configuration" lists them'
    return f"{name} is not a setting; {hint}"


def read_env(dotenv_path: Path | None) -> Environment:
    """The process environment merged over the `.env` file at `dotenv_path` (the caller
    names it: tests must never read the repository's). Names in the file that are no
    setting are kept for `load` to refuse; environment variables that look like a
    misspelled setting (`MONGO_URL`) are warned about."""
    from_file: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        from_file = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
    for name in sorted(os.environ):
        if near := closest(name, strict=True):
            log.warning("%s (in the environment)", _not_a_setting(name, near))
    unknown = [name for name in from_file if name not in TABLE]
    return Environment({**from_file, **os.environ}, unknown)


def load(env: Mapping[str, str], *, needs_drive: bool = True) -> Settings:
    """Build `Settings` from `env` (`read_env`'s, or any mapping in tests).

    `needs_drive` is False when the tree comes from a local folder (`--source`, `demo`):
    then `FOLDER_ID` and Drive credentials are not required. Raises `ConfigError`
    listing every problem found, in the order of the table."""
    problems = [_not_a_setting(name, closest(name)) for name in getattr(env, "unknown", ())]
    values: dict[str, Any] = {}
    for name, f in TABLE.items():
        raw = env.get(name, "").strip()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
            # `docker run --env-file` keeps quotes that `.env` parsing would remove; the
            # value is not echoed, since it may be a password or a DSN.
            problems.append(
                f"{name} is wrapped in quotes: remove the quotes (docker --env-file keeps them)"
            )
            raw = raw[1:-1].strip()
        if raw:
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                problems.append(f"{name} {exc}")
    config = Settings(**values)
    problems += _needed(config, needs_drive, folder_given=bool(env.get("FOLDER_ID", "").strip()))
    if problems:
        raise ConfigError(problems)
    return config


def _needed(config: Settings, needs_drive: bool, *, folder_given: bool) -> list[str]:
    """`FOLDER_ID` for a Drive sync; the key file where Google is used without an emulator."""
    problems = []
    if needs_drive and not folder_given:
        problems.append("FOLDER_ID is not set: the id of the backtest shared drive or folder")
    uses = {"Drive": needs_drive, "Sheets": bool(config.sheet_url)}
    endpoints = {"Drive": config.drive_api_endpoint, "Sheets": config.sheets_api_endpoint}
    wants_key = [api for api, used in uses.items() if used and not endpoints[api]]
    key = config.google_credentials_file
    if wants_key and not key.is_file():
        state = "is a directory" if key.is_dir() else "does not exist"
        problems.append(
            f"GOOGLE_CREDENTIALS_FILE {str(key)!r} {state}: the service-account key file is "
            f"needed for {' and '.join(wants_key)} (see config/README.md)"
        )
    return problems


def shown(value: object) -> str:
    """A default as a person writes it in `.env`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, frozenset):
        return ",".join(sorted(value))
    return str(value)


def markdown_table() -> str:
    """The README's configuration table (a test keeps the two equal)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, f in TABLE.items():
        default = f"`{shown(f.default)}`" if shown(f.default) else "—"
        rows.append(f"| `{name}` | {default} | {f.metadata['help']} |")
    return "\n".join(rows) + "\n"


def help_text() -> str:
    """The settings part of `--help`: each name, its help and its default."""
    lines = ['settings (environment or .env; README.md "Configuration"):']
    for name, f in TABLE.items():
        default = f" (default {shown(f.default)})" if shown(f.default) else ""
        text = f"{name}: {f.metadata['help'].replace('`', '')}{default}"
        lines += textwrap.wrap(text, 88, initial_indent="  ", subsequent_indent="      ")
    return "\n".join(lines)


def env_example() -> str:
    """`.env.example`: every setting with its help; the ones to fill in are set, the others
    commented out at their default (so a later default still applies)."""
    out = [
        "# backtest-compilation settings (generated from backtest_compilation/settings.py:",
        "# uv run python -c 'from backtest_compilation import settings as s; "
        'print(s.env_example(), end="")\' > .env.example).',
        "# Copy to .env (git-ignored) and fill in; the environment wins over this file.",
        "# `uv run main.py doctor` checks them all against the real services.",
    ]
    for name, f in TABLE.items():
        wrapped = textwrap.wrap(f.metadata["help"].replace("`", ""), 84)
        out += ["", *(f"# {line}" for line in wrapped)]
        example = f.metadata.get("example")
        out.append(f"{name}={example}" if example is not None else f"# {name}={shown(f.default)}")
    return "\n".join(out) + "\n"
