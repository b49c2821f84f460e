"""`write_atomic`: the one way this project replaces a file (state, last-run files,
heartbeat): whole or not at all, even across a crash or a power loss."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace `path` with `data` (text is UTF-8): a temp file `.<name>.<pid>.*.tmp`
    beside it, fsync, rename, fsync of the directory. Readers see the old file or the
    new one; on failure (`OSError`) the old one is left as it was. Creates the directory;
    the file is readable by all (the health check reads it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(".*.*.*.tmp"):  # those of killed writers go
        try:
            os.kill(int(stale.name.rsplit(".", 3)[1]), 0)  # its writer is alive
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                stale.unlink()
        except (ValueError, OSError):  # not ours, or another user's live writer
            pass
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # POSIX makes a rename durable once its directory is synced; some systems cannot
    # open a directory, and the file is whole either way.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
