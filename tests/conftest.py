"""Shared fixtures. Emulator and database fixtures live in their own plugin modules."""

pytest_plugins: list[str] = [
    "tests.fixtures_drive",
    "tests.fixtures_faults",
    "tests.fixtures_mongo",
    "tests.fixtures_sheets",
]
