"""The one place that turns `Settings` into what a run is given: the run's plain
values (`run_config`) and the adapters — Drive or a local folder, MongoDB, the sheet,
Sentry. The adapters themselves take explicit values, and their modules are imported
only when configured.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, pipeline, settings, sources, telemetry
from .errors import ConfigError
from .local import LocalFolderSource

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

    from .drive import DriveSource
    from .google import Deadline
    from .sheet import SheetReport
    from .sheet_contents import Layout as SheetLayout
    from .store import Store

log = logging.getLogger("backtest_compilation")


def run_config(config: settings.Settings) -> pipeline.RunConfig:
    """The values a run uses from `config` (the pipeline never reads `Settings`)."""
    return pipeline.RunConfig(
        cache_dir=config.cache_dir,
        zone=config.zone,
        future_year_exempt=frozenset(config.future_year_exempt),
        rename_files=config.rename_files,
        max_delete_fraction=config.max_delete_fraction,
        run_timeout_s=config.run_timeout_s,
        sheet_identity=(
            config.sheet_key,
            config.sheet_errors_tab,
            config.sheet_copies_tab,
            config.sheet_not_found_tab,
            config.sheet_count_column,
            config.sheet_stamp_cell,
        ),
    )


def demo_config(config: settings.Settings, cache_dir: Path) -> pipeline.RunConfig:
    """The demo's run: only harmless settings are taken from the environment (time zone,
    exempt departments), so it never talks to a real database, drive or sheet,
    whatever .env says."""
    demo = dataclasses.replace(
        settings.Settings(),
        cache_dir=cache_dir,
        tz=config.tz,
        future_year_exempt=config.future_year_exempt,
    )
    return run_config(demo)


def drive_source(
    config: settings.Settings,
    *,
    renames: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    deadline: Deadline | None = None,
) -> DriveSource:
    """The Drive adapter for `config`. `renames=False` for `--no-rename`/`--dry-run`/`check`:
    with renames off (here or `RENAME_FILES=false`) only the read-only scope is asked."""
    from . import google
    from .drive import SCOPE_READ, SCOPE_RENAME, DriveSource

    allow = renames and config.rename_files
    scopes = (SCOPE_READ, SCOPE_RENAME) if allow else (SCOPE_READ,)
    if config.drive_api_endpoint:
        from google.auth.credentials import AnonymousCredentials

        creds: Credentials = AnonymousCredentials()
    else:
        creds = google.credentials(config.google_credentials_file, config.delegate_email, scopes)
    return DriveSource(
        config.folder_id,
        credentials=creds,
        endpoint=config.drive_api_endpoint,
        delegate=config.delegate_email,
        scopes=scopes,
        allow_renames=allow,
        full_rescan_hours=config.full_rescan_hours,
        sleep=sleep,
        rename_stall_s=config.rename_stall_s,
        rename_budget_s=config.rename_budget_s,
        writes_per_s=config.drive_writes_per_s,
        deadline=deadline or google.NO_DEADLINE,
    )


def build_services(
    config: settings.Settings,
    *,
    source: Path | None,
    options: pipeline.Options,
    publish: bool = False,
) -> pipeline.Services:
    """The real adapters for `config`: Drive (or a local folder), MongoDB, the sheet.

    A local `source` is for trying things: unless `publish`, it writes no Google sheet
    and uses an in-process MongoDB instead of a real one, so a try-out never overwrites
    what the website and the tracking sheet show; its `--dry-run` and `check` compare
    with that same in-process database (what the run without `--dry-run` would do)."""
    from .google import Deadline
    from .store import Store

    deadline = Deadline(config.run_timeout_s)
    renames = options.rename and config.rename_files and options.mode == "sync"
    tree_source: sources.Source
    trying = source is not None and not publish
    if source is not None:
        tree_source = sources.LocalTree(LocalFolderSource(source), allow_renames=renames)
    else:
        tree_source = sources.DriveTree(drive_source(config, renames=renames, deadline=deadline))
    sheet_report = None
    skipped = "SHEET_URL is not set"
    if config.sheet_url and trying:
        skipped = "a local --source writes no sheet (add --publish to write SHEET_URL's)"
    elif config.sheet_url:
        sheet_report = connect_sheet(config, deadline=deadline)
    if trying and not config.mongo_uri.startswith("mongomock:"):
        log.warning(
            "a local --source uses an in-process MongoDB, not MONGO_URI "
            "(add --publish to write MONGO_URI's database)"
        )
        store = Store.connect("mongomock://", config.mongo_db)
    else:
        store = connect_store(config, deadline=deadline)
    return pipeline.Services(
        tree_source, store, sheet_report, sheet_skipped=skipped, deadline=deadline
    )


def sheet_layout(config: settings.Settings) -> SheetLayout:
    """The layout named by the `SHEET_*` settings (today's sheet by default)."""
    from .sheet_contents import Layout

    return Layout(
        errors_tab=config.sheet_errors_tab,
        copies_tab=config.sheet_copies_tab,
        not_found_tab=config.sheet_not_found_tab,
        count_column=config.sheet_count_column,
        stamp_cell=config.sheet_stamp_cell,
    )


def connect_sheet(
    config: settings.Settings,
    layout: SheetLayout | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    deadline: Deadline | None = None,
) -> SheetReport:
    """The report for `SHEET_URL`: anonymous when `SHEETS_API_ENDPOINT` is set, else the
    service-account key with delegation to `DELEGATE_EMAIL`. Makes no call yet.
    `layout` defaults to the one the `SHEET_*` settings name."""
    from . import google
    from .sheet import SCOPE, open_report

    layout = sheet_layout(config) if layout is None else layout
    if not config.sheet_key:
        raise ConfigError("SHEET_URL is not set: the sheet report needs the spreadsheet URL")
    credentials = None
    if not config.sheets_api_endpoint:
        credentials = google.credentials(
            config.google_credentials_file, config.delegate_email, (SCOPE,)
        )
    return open_report(
        config.sheet_key,
        endpoint=config.sheets_api_endpoint,
        credentials=credentials,
        layout=layout,
        tz=config.tz,
        sleep=sleep,
        who=config.delegate_email,
        deadline=google.NO_DEADLINE if deadline is None else deadline,
    )


def start_telemetry(config: settings.Settings) -> telemetry.Telemetry:
    """Sentry for `SENTRY_DSN` (a disabled handle without one), masking the DSN and the
    MongoDB password in everything it sends."""
    return telemetry.init(
        config.sentry_dsn,
        trace_rate=config.sentry_trace_rate,
        monitor_slug=config.sentry_monitor_slug,
        secrets=telemetry.secrets_of(sentry_dsn=config.sentry_dsn, mongo_uri=config.mongo_uri),
        release=__version__,
    )


def connect_store(
    config: settings.Settings, *, timeout_ms: int | None = None, deadline: Deadline | None = None
) -> Store:
    """The MongoDB store at `MONGO_URI`, database `MONGO_DB`; no operation outlives
    `deadline` (the run's)."""
    from .store import DEFAULT_TIMEOUT_MS, Store

    return Store.connect(
        config.mongo_uri,
        config.mongo_db,
        timeout_ms=DEFAULT_TIMEOUT_MS if timeout_ms is None else timeout_ms,
        deadline=deadline,
    )
