"""The errors that end a run, each with the exit code the CLI maps it to (contract §5.11).

Code deep inside the tool raises these; only `cli` turns them into exit codes.
Messages must never contain secrets (passwords, DSNs, key material).
"""

from __future__ import annotations


class RunError(Exception):
    """A run could not complete: a service unreachable or failing after retries."""

    exit_code = 1


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
