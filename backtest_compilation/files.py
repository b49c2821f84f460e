"""`write_atomic`: the one way this project replaces a file (state, last-run files,
heartbeat): whole or not at all, even across a crash or a power loss."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: a temp file beside it, fsync, rename over `path`, fsync
    of the directory (so the rename itself survives a power loss). Creates the directory.

    Readers see the old file or the new one, never a part. On failure (`OSError`, e.g. a
    full disk) the old file is left as it was and the temp file is removed; one left by a
    killed process is named `.<name>.*.tmp`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # POSIX makes a rename durable only once its directory is synced; some systems
    # cannot open a directory, and the file is written whole either way.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
