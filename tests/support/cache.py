"""Where a run keeps its state in a test's `CACHE_DIR`."""

from __future__ import annotations

from pathlib import Path

from backtest_compilation import state


def state_path(cache_dir: Path, source: str | None = None) -> Path:
    """`source`'s `state.json`; without `source` the one saved last in `CACHE_DIR`."""
    if source is not None:
        return state.folder(cache_dir, source) / state.FILE_NAME
    found = Path(cache_dir).glob(f"*/{state.FILE_NAME}")
    newest = max(found, key=lambda p: p.stat().st_mtime_ns, default=None)
    return newest if newest is not None else Path(cache_dir) / state.FILE_NAME
