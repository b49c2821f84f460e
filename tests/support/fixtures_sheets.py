"""Fixtures for the sheet report: a Sheets v4 emulator per test, reports that talk to it,
and throwaway service-account keys (generated per test; no real key material anywhere)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from backtest_compilation import sheet
from emulators.google import QuotaClock
from emulators.sheets import SheetsEmulator

SHEET_KEY = "1TestSheetKey_abc-XYZ"


@pytest.fixture
def sheets_emulator(quota_clock: QuotaClock) -> Iterator[SheetsEmulator]:
    """A fresh emulator on a free 127.0.0.1 port, with Google's quotas on `quota_clock`
    (shared with `drive_emulator`), stopped after the test."""
    with SheetsEmulator(clock=quota_clock) as emulator:
        yield emulator


@pytest.fixture
def sleeps() -> list[float]:
    """Backoff delays the report asked for (recorded instead of slept)."""
    return []


@pytest.fixture
def make_report(
    sheets_emulator: SheetsEmulator, sleeps: list[float], quota_clock: QuotaClock
) -> Callable[..., sheet.SheetReport]:
    """`make_report(key=SHEET_KEY, **open_report_kwargs)`: an anonymous report on the
    emulator whose waits are recorded in `sleeps` and pass on `quota_clock`, not slept."""

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        quota_clock.sleep(seconds)

    def make(key: str = SHEET_KEY, **kwargs: Any) -> sheet.SheetReport:
        kwargs.setdefault("sleep", sleep)
        return sheet.open_report(key, endpoint=sheets_emulator.url, **kwargs)

    return make


@pytest.fixture(scope="session")
def rsa_pem() -> str:
    """A private key generated for this test session (never stored anywhere)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def service_account_key(tmp_path: Path, rsa_pem: str) -> Callable[..., Path]:
    """`service_account_key(token_uri, client_email=…)`: a key file generated for this
    test run."""

    def write(
        token_uri: str, client_email: str = "backtests@test-project.iam.gserviceaccount.com"
    ) -> Path:
        path = tmp_path / "service-credentials.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": "test-project",
                    "private_key_id": "0" * 40,
                    "private_key": rsa_pem,
                    "client_email": client_email,
                    "client_id": "1",
                    "token_uri": token_uri,
                }
            )
        )
        return path

    return write
