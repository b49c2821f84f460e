"""Secrets never leak (issue #6 item 6, contract §5.1): every command, run for real.

Each command runs in its own process, as cron or the container would run it, with a
password in `MONGO_URI` (a real user on the MongoDB-wire server), a `SENTRY_DSN` whose
key is secret and whose endpoint is a local server recording every envelope the SDK
sends, and a generated service-account key file. Logging is at DEBUG, the most
talkative level. Everything the runs leave behind — stdout, stderr, Sentry envelopes,
the state and heartbeat files, the demo's HTML report, the sheet — is searched for the
password, the DSN and its key, the key's `private_key_id` and every line of its private
key. Failing runs are included (unreachable MongoDB, a key Google rejects, a password
MongoDB rejects), since error paths are where secrets usually slip out.

A second test runs the pipeline in-process with the key actually exchanged for tokens
at the emulators' token endpoints, and searches the captured logs for the key and the
access tokens too. All secrets are generated per run; none is stored in the repository.
"""

from __future__ import annotations

import json
import logging
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pymongo import MongoClient

from backtest_compilation import pipeline, schedule, sheet, sources
from backtest_compilation.adapters import run_config
from backtest_compilation.drive import SCOPE_READ, SCOPE_RENAME, DriveSource
from backtest_compilation.google import credentials as load_credentials
from backtest_compilation.settings import Settings
from backtest_compilation.store import Store
from emulators.drive import DriveEmulator
from emulators.secantus import free_port
from emulators.sheets import SheetsEmulator
from tests.support.fixtures_mongo import MongoServer
from tests.support.isolation import environment
from tests.support.sentry_ingest import Endpoint

ROOT = Path(__file__).resolve().parent.parent
DELEGATE = "backtests@chapter.example.org"
KEY = "1SecretsSheet"
COPIES = "Physical Copies of Backtests"
NOW = datetime(2026, 11, 21, 15, 2, tzinfo=UTC)
TIMEOUT_S = 60


@dataclass
class Secrets:
    """The secrets of one test, and everything collected that must not contain them."""

    password: str
    dsn: str
    dsn_key: str
    key_file: Path
    collected: list[tuple[str, str]] = field(default_factory=list)

    @property
    def key_material(self) -> list[str]:
        key = json.loads(self.key_file.read_text())
        pem_lines = [line for line in key["private_key"].splitlines() if "-----" not in line]
        return [key["private_key_id"], key["private_key"], *pem_lines]

    def all(self) -> list[str]:
        values = [self.password, quote(self.password, safe=""), self.dsn, self.dsn_key]
        return values + self.key_material

    def collect(self, where: str, text: str) -> None:
        self.collected.append((where, text))

    def leaks(self) -> list[str]:
        """`where: secret` for every secret found in anything collected."""
        found = []
        for where, text in self.collected:
            for secret in self.all():
                if secret and secret in text:
                    found.append(f"{where}: {secret[:12]}…")
        return found


def _new_key(path: Path, token_uri: str) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "test-project",
                "private_key_id": secrets.token_hex(20),
                "private_key": pem,
                "client_email": "backtests@test-project.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    return path


@dataclass
class Setup:
    tmp: Path
    drive: DriveEmulator
    sheets: SheetsEmulator
    sentry: Endpoint
    secret: Secrets
    env: dict[str, str]


@pytest.fixture
def setup(
    tmp_path: Path,
    drive_emulator: DriveEmulator,
    sheets_emulator: SheetsEmulator,
    mongo_server: MongoServer,
    mongo_db_name: str,
) -> Iterator[Setup]:
    """A drive, a sheet, a MongoDB user with a generated password, a recording Sentry
    endpoint and a generated key; `env` is the environment every command gets."""
    password = "Pw-" + secrets.token_hex(12)
    user = f"u{secrets.token_hex(4)}"
    admin: MongoClient[dict[str, Any]] = MongoClient(mongo_server.uri)
    admin.admin.command("createUser", user, pwd=password, roles=["root"])
    admin.close()
    drive = drive_emulator.add_drive("Backtests")
    csci = drive_emulator.add_folder(drive, "CSCI")
    course = drive_emulator.add_folder(csci, "CSCI-1200 Data Structures")
    drive_emulator.add_file(course, "csci-1200 e1 f22.pdf")
    drive_emulator.add_file(course, "notes.docx", "application/msword")
    sheets_emulator.add_spreadsheet(KEY, tabs={COPIES: [["Course"], ["CSCI-1200"]]})
    endpoint = Endpoint()
    dsn_key = secrets.token_hex(16)
    secret = Secrets(
        password=password,
        dsn=f"http://{dsn_key}@127.0.0.1:{endpoint.port}/1",
        dsn_key=dsn_key,
        key_file=_new_key(tmp_path / "service-credentials.json", drive_emulator.url + "/token"),
    )
    env = environment()  # issue 17: nothing from the developer's environment
    env.update(
        FOLDER_ID=drive,
        DELEGATE_EMAIL=DELEGATE,
        SHEET_URL=f"https://docs.google.com/spreadsheets/d/{KEY}/edit",
        GOOGLE_CREDENTIALS_FILE=str(secret.key_file),
        MONGO_URI=(
            f"mongodb://{user}:{password}@127.0.0.1:{mongo_server.port}/"
            "?directConnection=true&authSource=admin"
        ),
        MONGO_DB=mongo_db_name,
        CACHE_DIR=str(tmp_path / "cache"),
        LOG_LEVEL="DEBUG",
        SENTRY_DSN=secret.dsn,
        SENTRY_TRACE_RATE="1.0",
        DRIVE_API_ENDPOINT=drive_emulator.url,
        SHEETS_API_ENDPOINT=sheets_emulator.url,
        SCHEDULE="0 0 1 1 *",
    )
    yield Setup(tmp_path, drive_emulator, sheets_emulator, endpoint, secret, env)
    endpoint.close()


def _command(setup: Setup, name: str, args: list[str], **env: str) -> subprocess.Popen[str]:
    cwd = setup.tmp / f"cwd-{name}"  # no .env there; the demo writes its report there
    cwd.mkdir()
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *args],
        cwd=cwd,
        env={**setup.env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(setup: Setup, name: str, proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    setup.secret.collect(f"{name} stdout", out)
    setup.secret.collect(f"{name} stderr", err)
    return proc.returncode, out, err


def _run(setup: Setup, name: str, args: list[str], **env: str) -> tuple[int, str, str]:
    return _finish(setup, name, _command(setup, name, args, **env))


def _schedule_briefly(setup: Setup) -> tuple[int, str, str]:
    """`schedule` runs at once on its first start; SIGTERM once its heartbeat says so."""
    cache = setup.tmp / "cache-schedule"
    proc = _command(setup, "schedule", ["schedule"], CACHE_DIR=str(cache))
    heartbeat = schedule.heartbeat_path(cache)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while True:
            beat = schedule.read_heartbeat(heartbeat)
            if beat is not None and beat.last_run is not None:
                break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "schedule never ran"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
    finally:
        code, out, err = _finish(setup, "schedule", proc)
    setup.secret.collect("schedule heartbeat", heartbeat.read_text())
    return code, out, err


@pytest.mark.mongo_server
def test_no_command_reveals_a_secret(
    setup: Setup, mongo_auth_server: MongoServer, drive_emulator: DriveEmulator
) -> None:
    secret, env = setup.secret, setup.env
    dead_port = free_port()
    # The failing runs, started first: they run alongside the others (own caches).
    unreachable = _command(
        setup,
        "unreachable",
        [],
        MONGO_URI=f"mongodb://backtest:{secret.password}@127.0.0.1:{dead_port}/"
        "?directConnection=true",
        CACHE_DIR=str(setup.tmp / "cache-unreachable"),
    )
    wrong_password = _command(
        setup,
        "wrong-password",
        ["--json"],
        MONGO_URI=f"mongodb://backtest:{secret.password}@127.0.0.1:{mongo_auth_server.port}/"
        "?directConnection=true",
        CACHE_DIR=str(setup.tmp / "cache-wrong-password"),
    )
    demo = _command(setup, "demo", ["demo"])

    code, out, _err = _run(setup, "dry-run", ["sync", "--dry-run", "--json"])
    assert code == 0 and json.loads(out)["mode"] == "dry-run", _err[-3000:]
    code, out, _err = _run(setup, "sync", ["sync", "--json"])
    summary = json.loads(out)
    assert code == 0 and summary["mongo"]["inserted"] == 3, summary
    assert summary["renames"][0]["applied"] is True
    code, out, _err = _run(setup, "check", ["check"])
    assert code == 0, out
    code, _out, err = _schedule_briefly(setup)
    assert code == 0, err

    # A key Google rejects: Drive is reached through the key (no endpoint), and the
    # emulator's token endpoint grants nothing, as for a key without delegation. The
    # token is asked for before any API call, so nothing goes beyond 127.0.0.1.
    drive_emulator.grants = {}
    code, _out, err = _run(
        setup,
        "rejected-key",
        [],
        DRIVE_API_ENDPOINT="",
        CACHE_DIR=str(setup.tmp / "cache-rejected"),
    )
    assert code == 2, err
    assert "rejected" in err.lower()

    code, _out, err = _finish(setup, "unreachable", unreachable)
    assert code == 1 and "unreachable" in err, err
    code, out, err = _finish(setup, "wrong-password", wrong_password)
    assert code == 2 and "credentials" in err, err
    code, out, _err = _finish(setup, "demo", demo)
    assert code == 0 and "What the website now shows" in out
    report = setup.tmp / "cwd-demo" / "demo-report.html"
    secret.collect("demo report", report.read_text())

    envelopes = setup.sentry.all()
    events = [e for r in envelopes for e in r.of_type("event")]
    # The unreachable database is a runtime failure and is reported; configuration
    # errors (exit 2) are the operator's to fix and are not sent.
    assert any("unreachable" in json.dumps(e) for e in events), "no failure reached Sentry"
    for n, received in enumerate(envelopes):
        secret.collect(f"sentry envelope {n}", received.raw.decode(errors="replace"))
    for path in setup.tmp.rglob("*"):
        in_cache = path.parent.name.startswith("cache") or path.suffix == ".json"
        if path.is_file() and in_cache and path != secret.key_file:
            secret.collect(str(path.relative_to(setup.tmp)), path.read_text())
    secret.collect("sheet", json.dumps(setup.sheets.snapshot(KEY), ensure_ascii=False))
    assert env["MONGO_URI"] not in "".join(text for _where, text in secret.collected)

    assert len(secret.collected) > 20
    assert secret.leaks() == []


def test_an_in_process_run_with_real_token_exchanges_logs_no_secret(
    tmp_path: Path,
    drive_emulator: DriveEmulator,
    sheets_emulator: SheetsEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The key is really used: both emulators exchange its JWT for access tokens."""
    drive = drive_emulator.add_drive("Backtests")
    course = drive_emulator.add_folder(
        drive_emulator.add_folder(drive, "CSCI"), "CSCI-1200 Data Structures"
    )
    drive_emulator.add_file(course, "csci-1200 e1 f22.pdf")
    drive_emulator.grant(DELEGATE, SCOPE_READ, SCOPE_RENAME)
    sheets_emulator.add_spreadsheet(KEY, tabs={COPIES: [["Course"], ["CSCI-1200"]]})
    secret = Secrets(
        password="",
        dsn="",
        dsn_key="",
        key_file=_new_key(tmp_path / "key.json", drive_emulator.url + "/token"),
    )
    sheets_key = _new_key(tmp_path / "sheets-key.json", sheets_emulator.token_uri)
    scopes = (SCOPE_READ, SCOPE_RENAME)
    source = DriveSource(
        drive,
        credentials=load_credentials(secret.key_file, DELEGATE, scopes),
        endpoint=drive_emulator.url,
        delegate=DELEGATE,
        scopes=scopes,
        allow_renames=True,
        sleep=drive_emulator.clock.sleep,  # type: ignore[attr-defined]
    )
    report = sheet.open_report(
        KEY,
        endpoint=sheets_emulator.url,
        credentials=load_credentials(sheets_key, DELEGATE, (sheet.SCOPE,)),
        sleep=sheets_emulator.clock.sleep,  # type: ignore[attr-defined]
    )
    settings = replace(Settings(), cache_dir=tmp_path / "cache", mongo_uri="mongomock://x")
    caplog.set_level(logging.DEBUG)
    with Store.connect(settings.mongo_uri, settings.mongo_db) as store:
        outcome = pipeline.run(
            run_config(settings),
            pipeline.Options(),
            pipeline.Services(sources.DriveTree(source), store, report, lambda: NOW),
        )
    assert outcome.exit_code == 0, outcome.summary
    assert drive_emulator.stats.by_method["oauth.token"] >= 1
    tokens = [*drive_emulator.access_tokens, *sheets_emulator.access_tokens]
    assert tokens, "no access token was handed out"
    secret.collect("logs", "\n".join(r.getMessage() for r in caplog.records))
    secret.collect("summary", json.dumps(outcome.summary, ensure_ascii=False))
    secret.collect("text", outcome.text_for(verbose=True))
    cached = sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file())
    # The source's state and the snapshot beside it (items, catalog, problem keys).
    assert {"state.json", "snapshot.json"} <= {p.name for p in cached}, cached
    for path in cached:
        secret.collect(f"cache/{path.name}", path.read_text(errors="replace"))
    sheet_key_material = Secrets("", "", "", sheets_key).key_material
    leaks = secret.leaks()
    for where, text in secret.collected:
        leaks += [f"{where}: token" for token in tokens if token in text]
        leaks += [f"{where}: sheets key" for s in sheet_key_material if s in text]
    assert leaks == []
