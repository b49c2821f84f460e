"""The errors that end a run, each with the exit code the CLI maps it to (contract §5.11).

Code deep inside the tool raises these; only `cli` turns them into exit codes.
Messages must never contain secrets (passwords, DSNs, key material).

| exit | meaning |
| --- | --- |
| 0 | success (drive problems are data, not failures); `check`: in sync |
| 1 | a runtime failure (a service unreachable or failing after retries); `check`: out of sync |
| 2 | configuration, including credentials a service rejects |
| 3 | the mass-delete guard refused |
| 4 | another run holds the lock |
| 5 | `check` only: could not check (a service unreachable or failing) |
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

# `check` alone: "could not check", told apart from 1 "out of sync" (contract §5).
CHECK_FAILED = 5


class RunError(Exception):
    """A run could not complete: a service unreachable or failing after retries.

    `summary`, when the pipeline sets it, is what was known when the run stopped (the
    contract §8 object, `ok: false`), so `--json` still prints one object."""

    exit_code = 1
    summary: dict[str, Any] | None = None


class ServiceError(RunError):
    """A Google API or MongoDB failed after retries (exit 1)."""


class ConfigError(RunError):
    """Settings missing or malformed, or credentials a service rejects (exit 2).

    `problems` holds one line per problem."""

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


# A file system that is full (or over quota) answers these.
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def cache_dir_error(exc: OSError, path: Path, doing: str) -> RunError:
    """The error for an `OSError` on a file in `CACHE_DIR` while `doing` (exit 1).

    A full disk is said as such, naming `CACHE_DIR` and its path; the state file is
    only ever replaced whole, so the previous one is still there."""
    where = str(Path(path).parent)
    if exc.errno in _FULL:
        return RunError(
            f"CACHE_DIR {where!r} is full ({exc.strerror or exc}): cannot {doing} "
            f"{str(path)!r}. The previous state is kept; free space there (or point "
            "CACHE_DIR elsewhere) and run again"
        )
    return RunError(
        f"cannot {doing} {str(path)!r}: {exc.strerror or exc} "
        f"(check that CACHE_DIR {where!r} exists and is writable)"
    )
