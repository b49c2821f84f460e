"""Shared fixtures. Emulator and database fixtures live in their own plugin modules."""

pytest_plugins: list[str] = ["tests.fixtures_drive"]
