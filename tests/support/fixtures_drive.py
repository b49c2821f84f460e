"""Drive fixtures: a Drive v3 emulator per test, and sources pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from backtest_compilation.drive import DriveSource
from emulators.drive import DriveEmulator
from emulators.google import QuotaClock


@pytest.fixture
def quota_clock(tmp_path_factory: pytest.TempPathFactory) -> QuotaClock:
    """The time the test's emulators count their quotas on (Google's, on by default):
    real time plus every wait the code under test was handed as `quota_clock.sleep`
    (counted, not slept) and every `quota_clock.between_runs()`. Kept in a file, so a
    CLI process (`forkserver.command(quota_clock.path, argv)`) can count on it too."""
    return QuotaClock(path=tmp_path_factory.mktemp("quota") / "quota.clock")


@pytest.fixture
def drive_emulator(quota_clock: QuotaClock) -> Iterator[DriveEmulator]:
    """A fresh, empty Drive emulator on a free 127.0.0.1 port, with Google's write
    limit, on `quota_clock`."""
    with DriveEmulator(clock=quota_clock) as emulator:
        yield emulator


@pytest.fixture
def drive_source(
    drive_emulator: DriveEmulator, quota_clock: QuotaClock
) -> Callable[..., DriveSource]:
    """`drive_source(root_id, **options)`: a DriveSource talking to the emulator, with
    anonymous credentials and waits that are not slept but pass on `quota_clock` (and
    are recorded in `source.pacer.waited`)."""

    def make(root_id: str, **options: Any) -> DriveSource:
        options.setdefault("allow_renames", True)
        options.setdefault("sleep", quota_clock.sleep)
        return DriveSource(
            root_id,
            credentials=AnonymousCredentials(),
            endpoint=drive_emulator.url,
            delegate="backtests@chapter.example.org",
            **options,
        )

    return make
