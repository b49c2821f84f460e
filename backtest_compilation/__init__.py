"""backtest-compilation: keep the backtest drive, the website and the sheet in agreement."""
