"""How tests start processes: never with the developer's settings or `.env` (issue 17).

Every process a test starts gets `environment(...)` (PATH, the import path, and only the
settings the test names) and a temporary working directory, so neither the developer's
environment nor the repository's `.env` reaches it. `conftest.py` also strips every
setting from the test process itself and runs it in an empty directory.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "main.py")


def environment(**settings: str) -> dict[str, str]:
    """The whole environment of a process a test starts: PATH, PYTHONPATH (the project
    and `tests.support` import from any directory) and `settings`."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), **settings}
