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

_WORKDIR: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """No test sees the developer's settings: they leave this process's environment (which
    the processes tests start would inherit), and the tests run in an empty directory,
    so no `.env` is found there. Processes get `tests.support.isolation.environment`."""
    for name in list(os.environ):
        if name in settings.TABLE or settings.closest(name, strict=True):
            del os.environ[name]
    _WORKDIR.append(tempfile.mkdtemp(prefix="backtest-tests-"))
    os.chdir(_WORKDIR[0])


def pytest_unconfigure(config: pytest.Config) -> None:
    os.chdir(config.invocation_params.dir)
    for path in _WORKDIR:
        shutil.rmtree(path, ignore_errors=True)
