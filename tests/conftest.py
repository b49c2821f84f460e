"""Shared fixtures (emulators and databases live in their own plugin modules), and the
guard that keeps the tests away from the developer's settings (issue 17)."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from backtest_compilation import settings

pytest_plugins: list[str] = [
    "tests.support.fixtures_drive",
    "tests.support.fixtures_faults",
    "tests.support.fixtures_mongo",
    "tests.support.fixtures_sheets",
]

_WORKDIR = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """No test sees the developer's settings: they leave this process's environment (which
    the processes tests start would inherit), and the tests run in an empty directory,
    so no `.env` is found there. Processes get `tests.support.isolation.environment`."""
    for name in list(os.environ):
        if name in settings.TABLE or settings.not_a_setting(name, strict=True):
            del os.environ[name]
    config.stash[_WORKDIR] = tempfile.mkdtemp(prefix="backtest-tests-")
    os.chdir(config.stash[_WORKDIR])


def pytest_unconfigure(config: pytest.Config) -> None:
    os.chdir(config.invocation_params.dir)
    shutil.rmtree(config.stash[_WORKDIR], ignore_errors=True)
