"""Drive fixtures: a Drive v3 emulator per test, and sources pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from backtest_compilation.drive import DriveSource
from emulators.drive import DriveEmulator


@pytest.fixture
def drive_emulator() -> Iterator[DriveEmulator]:
    """A fresh, empty Drive emulator on a free 127.0.0.1 port."""
    with DriveEmulator() as emulator:
        yield emulator


@pytest.fixture
def drive_source(drive_emulator: DriveEmulator) -> Callable[..., DriveSource]:
    """`drive_source(root_id, **options)`: a DriveSource talking to the emulator, with
    anonymous credentials and retries that do not really sleep (waits are recorded in
    `source.pacer.waited`)."""

    def make(root_id: str, **options: Any) -> DriveSource:
        options.setdefault("allow_renames", True)
        options.setdefault("sleep", lambda seconds: None)
        return DriveSource(
            root_id,
            credentials=AnonymousCredentials(),
            endpoint=drive_emulator.url,
            delegate="backtests@chapter.example.org",
            **options,
        )

    return make
