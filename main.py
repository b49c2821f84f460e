"""One-off entry point: `uv run main.py [sync|check|schedule|demo] …` (see --help)."""

import sys

from backtest_compilation.cli import main

if __name__ == "__main__":
    sys.exit(main())
