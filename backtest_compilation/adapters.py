"""Settings → the run's adapters: Drive or a local folder, MongoDB, the sheet, Sentry (which
take plain values; their modules are imported only when used)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from . import __version__, google, pipeline, sources, telemetry
from .errors import ConfigError
from .local import LocalFolderSource
from .settings import Settings
from .sheet_contents import Layout

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

    from .drive import DriveSource
    from .sheet import SheetReport

log = logging.getLogger("backtest_compilation")
_LAYOUT = ("errors_tab", "copies_tab", "not_found_tab", "count_column", "stamp_cell")


def run_config(config: Settings) -> pipeline.RunConfig:
    """The values a run uses from `config` (the pipeline never reads `Settings`)."""
    return pipeline.RunConfig(
        cache_dir=config.cache_dir,
        zone=ZoneInfo(config.tz),
        future_year_exempt=config.future_year_exempt,
        rename_files=config.rename_files,
        sheet_identity=(config.sheet_key, *(getattr(config, f"sheet_{n}") for n in _LAYOUT)),
        max_delete_fraction=config.max_delete_fraction,
        run_timeout_s=config.run_timeout_s,
    )


def sheet_layout(config: Settings) -> Layout:
    """The layout the `SHEET_*` settings name (`_LAYOUT`: the fields of `Layout` they set)."""
    return Layout(**{name: getattr(config, f"sheet_{name}") for name in _LAYOUT})


def _credentials(config: Settings, endpoint: str, scopes: tuple[str, ...]) -> Credentials | None:
    """None (anonymous) for an emulator at `endpoint`, else the key acting as `DELEGATE_EMAIL`."""
    if endpoint:
        return None
    return google.credentials(config.google_credentials_file, config.delegate_email, scopes)


def drive_source(
    config: Settings,
    *,
    renames: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    deadline: google.Deadline = google.NO_DEADLINE,
    one_try_s: float | None = None,
) -> DriveSource:
    """The Drive adapter. With renames off (`renames=False` for `--no-rename`, `--dry-run`
    and `check`, or `RENAME_FILES=false`) it asks only for the read-only scope. With
    `one_try_s` (doctor) each call is one attempt of at most that long."""
    from google.auth.credentials import AnonymousCredentials

    from .drive import SCOPE_READ, SCOPE_RENAME, DriveSource

    allow = renames and config.rename_files
    scopes = (SCOPE_READ, SCOPE_RENAME) if allow else (SCOPE_READ,)
    return DriveSource(
        config.folder_id,
        credentials=_credentials(config, config.drive_api_endpoint, scopes)
        or AnonymousCredentials(),
        endpoint=config.drive_api_endpoint,
        delegate=config.delegate_email,
        scopes=scopes,
        allow_renames=allow,
        full_rescan_hours=config.full_rescan_hours,
        sleep=sleep,
        rename_stall_s=config.rename_stall_s,
        rename_budget_s=config.rename_budget_s,
        writes_per_s=config.drive_writes_per_s,
        deadline=deadline,
        num_retries=0 if one_try_s else google.MAX_RETRIES,
        timeout=one_try_s or google.REQUEST_TIMEOUT_S,
        call_budget_s=one_try_s or google.CALL_BUDGET_S,
    )


def connect_sheet(
    config: Settings,
    *,
    sleep: Callable[[float], None] = time.sleep,
    deadline: google.Deadline = google.NO_DEADLINE,
    one_try_s: float | None = None,
) -> SheetReport:
    """The report for `SHEET_URL` in the `SHEET_*` layout (`one_try_s`: as for Drive).
    Makes no call yet."""
    from .sheet import SCOPE, open_report

    if not config.sheet_key:
        raise ConfigError("SHEET_URL is not set: the sheet report needs the spreadsheet URL")
    return open_report(
        config.sheet_key,
        endpoint=config.sheets_api_endpoint,
        credentials=_credentials(config, config.sheets_api_endpoint, (SCOPE,)),
        layout=sheet_layout(config),
        tz=config.tz,
        sleep=sleep,
        who=config.delegate_email,
        deadline=deadline,
        retries=0 if one_try_s else google.MAX_RETRIES,
        timeout=one_try_s or google.REQUEST_TIMEOUT_S,
    )


def build_services(
    config: Settings,
    *,
    source: Path | None,
    options: pipeline.Options,
    publish: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> pipeline.Services:
    """The real adapters for `config`: Drive (or a local folder), MongoDB, the sheet. A local
    `source` is for trying things: unless `publish`, it writes no sheet and uses an in-process
    MongoDB, so a try-out never changes what the website and the tracking sheet show."""
    from .store import Store

    deadline = google.Deadline(config.run_timeout_s)
    renames = options.rename and config.rename_files and options.mode == "sync"
    trying = source is not None and not publish
    if source is None:
        tree: sources.Source = sources.DriveTree(
            drive_source(config, renames=renames, sleep=sleep, deadline=deadline)
        )
    else:
        tree = sources.LocalTree(LocalFolderSource(source), allow_renames=renames)
    skipped, sheet = "SHEET_URL is not set", None
    if config.sheet_url and trying:
        skipped = "a local --source writes no sheet (add --publish to write SHEET_URL's)"
    elif config.sheet_url:
        sheet = connect_sheet(config, sleep=sleep, deadline=deadline)
    uri = config.mongo_uri
    if trying and not uri.startswith("mongomock:"):
        log.warning(
            "a local --source uses an in-process MongoDB, not MONGO_URI "
            "(add --publish to write MONGO_URI's database)"
        )
        uri = "mongomock://"
    store = Store.connect(uri, config.mongo_db, deadline=deadline)
    return pipeline.Services(tree, store, sheet, sheet_skipped=skipped, deadline=deadline)


def start_telemetry(config: Settings) -> telemetry.Telemetry:
    """Sentry for `SENTRY_DSN` (else disabled), masking the DSN and the MongoDB password."""
    return telemetry.init(
        config.sentry_dsn,
        monitor_slug=config.sentry_monitor_slug,
        secrets=telemetry.secrets_of(sentry_dsn=config.sentry_dsn, mongo_uri=config.mongo_uri),
        release=__version__,
        trace_rate=config.sentry_trace_rate,
    )
