"""The errors that end a run, each with its exit code (contract §5.11); never with a secret."""

from __future__ import annotations

import errno
from pathlib import Path

CHECK_FAILED = 5  # `check` alone: "could not check", told apart from 1 "out of sync"


class RunError(Exception):
    """A run could not complete: a service unreachable or failing after retries (exit 1)."""

    exit_code = 1


class ServiceError(RunError):
    """A Google API or MongoDB failed after retries (exit 1)."""


class ConfigError(RunError):
    """Settings missing or malformed, or credentials a service rejects (exit 2), a line each."""

    exit_code = 2

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class GuardRefused(RunError):
    """The mass-delete guard refused to apply the plan (exit 3)."""

    exit_code = 3


class Locked(RunError):
    """Another run holds the lock (exit 4)."""

    exit_code = 4


def cache_dir_error(exc: OSError, path: Path, doing: str) -> RunError:
    """The error for `exc` while `doing` `path` in `CACHE_DIR`, saying so if the disk is full."""
    where, why = str(path.parent), exc.strerror or exc
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return RunError(
            f"CACHE_DIR {where!r} is full ({why}): cannot {doing} {str(path)!r}. The previous "
            "state is kept; free space there (or point CACHE_DIR elsewhere) and run again"
        )
    return RunError(
        f"cannot {doing} {str(path)!r}: {why} (check that CACHE_DIR {where!r} exists, writable)"
    )
