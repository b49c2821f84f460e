"""Shared fixtures. Emulator and database fixtures live in their own plugin modules."""

pytest_plugins: list[str] = [
    "tests.support.fixtures_drive",
    "tests.support.fixtures_faults",
    "tests.support.fixtures_mongo",
    "tests.support.fixtures_sheets",
]
