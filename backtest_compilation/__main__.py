"""`python -m backtest_compilation` does what `main.py` does."""

from .cli import main

raise SystemExit(main())
