"""The rename phase (contract §5.9): how `DriveSource.rename` paces, retries and stops."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import google
from .catalog import Category, Problem, Rename, RenameResult
from .google import Answer, Kind

if TYPE_CHECKING:
    from .drive import DriveSource

log = logging.getLogger(__name__)


class Renames:
    """One run's renames, one batch at a time as the write pacer allows. Rate-limited parts
    are sent again; a permanent answer, or nothing succeeding for `rename_stall_s`, is a
    `rename_failed` problem; read-only access stops the renames (`refused`). Renames past
    `rename_budget_s` (or half the run's time left), and of files someone else changed
    since the listing, are `pending`."""

    def __init__(self, source: DriveSource, renames: Sequence[Rename]) -> None:
        self.source, self.clock = source, source.clock
        self.by_id = {r.id: r for r in renames}
        self.queue: deque[str] = deque(self.by_id)
        self.applied: set[str] = set()
        self.failed: dict[str, str] = {}  # id → why
        self.dropped: set[str] = set()  # for the next run: the files may have changed
        self.refused = self.last_error = ""
        self.limited = self.failing = 0
        self.started = self.clock.now()
        self.next_line = self.started + google.PROGRESS_EVERY_S

    def run(self) -> RenameResult:
        """Send the renames: what was applied, what failed and why, what is left pending."""
        source, clock = self.source, self.clock
        last_success = self.started
        # Renames never hold back MongoDB and the sheet: they stop at their own budget,
        # and well before the run's deadline.
        budget = min(source.rename_budget_s, source.transport.deadline.left() * 0.5)
        while self.queue and not self.refused:
            most = min(len(self.queue), google.BATCH_LIMIT)
            n = source.write_pacer.take(most, latest=self.started + budget)
            if n is None:  # out of time: the rest is pending
                log.info("drive: RENAME_BUDGET_S or the run's time (%.0f s) ran out", budget)
                break
            self._drop_changed()
            chunk = [self.queue.popleft() for _ in range(min(n, len(self.queue)))]
            if chunk and self._take(chunk, source.send_batch([self.by_id[i] for i in chunk])):
                last_success = clock.now()
            self._progress()
            if self.queue and clock.now() - last_success >= source.rename_stall_s:
                why = (
                    f"no rename succeeded for {source.rename_stall_s:g} s (RENAME_STALL_S); "
                    f"Drive kept answering {self.last_error or 'errors'}"
                )
                self.failed.update(dict.fromkeys(self.queue, why))
                self.queue.clear()
        failed = sorted((self.by_id[i] for i in self.failed), key=lambda r: (r.path, r.id))
        problems = tuple(
            Problem(Category.RENAME_FAILED, "Rename failed", r.path, r.id, f"to {r.new!r}: {why}")
            for r, why in ((r, self.failed[r.id]) for r in failed)
        )
        pending = frozenset(self.queue) | self.dropped
        return RenameResult(frozenset(self.applied), problems, pending, self.refused)

    def _drop_changed(self) -> None:
        """Leave for the next run the queued files someone else changed since the listing
        (renaming them would overwrite what a person did); all when the feed is unreadable."""
        changed = self.source.changed_since_listing()
        # Our own renames come back through the feed too: only others' changes count.
        dropped = set(self.queue) if changed is None else (changed - self.applied) & set(self.queue)
        if dropped:
            log.info("drive: %d files changed during the run: renamed next run", len(dropped))
            self.dropped |= dropped
            self.queue = deque(i for i in self.queue if i not in dropped)

    def _take(self, chunk: list[str], answers: dict[str, Answer]) -> bool:
        """Fold one batch's answers in and tell the pacer; True when a part was renamed."""
        again = [i for i in chunk if answers[i].kind in (Kind.RATE_LIMIT, Kind.TRANSIENT)]
        who = self.source.who
        for rid in chunk:
            answer = answers[rid]
            if answer.kind is Kind.OK:
                self.applied.add(rid)
            elif "insufficientFilePermissions" in answer.reasons:  # the account may only read
                self.failed[rid] = why = (
                    f"{who} may only read the drive; give {who} the Content manager role on the "
                    "shared drive (or edit access to the folder), or set RENAME_FILES=false"
                )
                self.refused = self.refused or f"renames stopped: {why}"
            elif answer.kind is Kind.PERMANENT:
                self.failed[rid] = answer.message or f"HTTP {answer.status}"
        # Back at the front: the oldest work goes first, and the order stays stable.
        self.queue.extendleft(reversed(again))
        limited = [answers[i] for i in again if answers[i].kind is Kind.RATE_LIMIT]
        self.limited += len(limited)
        if again:
            self.last_error = (limited or [answers[again[0]]])[0].message
        waits = [a.retry_after for a in answers.values() if a.retry_after is not None]
        pacer, accepted = self.source.write_pacer, any(i in self.applied for i in chunk)
        # Backoff after errors grows with consecutive failing batches, not with the total.
        self.failing = 0 if accepted or len(limited) == len(again) else self.failing + 1
        if limited:
            pacer.refused(max(waits, default=None))
        elif self.failing:
            pacer.hold(max(waits) if waits else pacer.backoff(self.failing))
        else:
            pacer.accepted()
        return accepted

    def _progress(self) -> None:
        """`renames: 1,200 of 6,700 applied, 3.1/s, about 29 min left (…)`, also for `status`."""
        now, done, total = self.clock.now(), len(self.applied), len(self.by_id)
        if now < self.next_line:
            return
        self.next_line = now + google.PROGRESS_EVERY_S
        rate = done / max(now - self.started, 1e-9)
        line = f"renames: {done:,} of {total:,} applied, {rate:.1f}/s"
        if rate > 0:
            left = (total - done) / rate
            when = f"{left:.0f} s" if left < 90 else f"{left / 60:.0f} min"
            line += f", about {when if left < 5400 else f'{left / 3600:.1f} h'} left"
        line += f" ({self.limited:,} rate-limit answers)"
        log.info("%s", line, extra={"progress": True})  # noted for `status` (lock.py)
