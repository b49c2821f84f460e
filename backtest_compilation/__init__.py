"""backtest-compilation: keep the backtest drive, the website and the sheet in agreement."""

__version__ = "0.1.0"  # the same as pyproject.toml (a test checks)
