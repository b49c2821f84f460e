"""`python -m backtest_compilation` does what `main.py` does."""

import sys

from .cli import main

sys.exit(main())
