"""`write_atomic`: the one way this project replaces a file (state, last-run files,
heartbeat): whole or not at all, even across a crash or a power loss."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace `path` with `data` (text is UTF-8): a temp file beside it, fsync, rename
    over `path`, fsync of the directory (so the rename itself survives a power loss).
    Creates the directory; the file is readable by all (the health check reads it).

    Readers see the old file or the new one, never a part. On failure (`OSError`, e.g. a
    full disk) the old file is left as it was and the temp file is removed. Temp files
    are named `.<name>.<pid>.*.tmp`; those of a killed process are removed here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
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
    _fsync_dir(path.parent)


def _remove_stale_temps(path: Path) -> None:
    """Temp files of `path` left by a process killed while writing (its pid is in the
    name); those of a live process are left alone."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            with contextlib.suppress(OSError):
                tmp.unlink()
        except PermissionError:
            pass  # alive, another user's


def _fsync_dir(directory: Path) -> None:
    # POSIX makes a rename durable only once its directory is synced; some systems
    # cannot open a directory, and the file is written whole either way.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
