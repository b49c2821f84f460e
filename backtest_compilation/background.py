"""`Background`: one piece of I/O started early, in a thread of its own, and taken later.

The run's work is sequential (source → catalog → plan → apply → remember); two waits in
it do not depend on each other and overlap this way: MongoDB is read while the drive is,
and written while the renames run. `result()` waits, and raises what the work raised, so
the pipeline sees the same outcome, at the same step, as if it had run then."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """`work()` running in a daemon thread (a run that fails elsewhere does not wait for
    it on exit)."""

    def __init__(self, work: Callable[[], T], name: str) -> None:
        self._got: T | None = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._got = work()
            except BaseException as exc:  # raised where the result is taken
                self._error = exc

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def result(self) -> T:
        """Wait for the work; its value, or the exception it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._got  # type: ignore[return-value]
