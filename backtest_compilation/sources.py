"""Where the tree comes from, behind one small interface the pipeline uses.

Google Drive (`drive.DriveSource`) and a folder on disk (`local.LocalFolderSource`) are
wrapped so the pipeline sees the same thing from both: a `Reading` (the tree, a
JSON-able snapshot for the state file, and whether anything changed since the last
one) and `rename`, whose failures come back as `rename_failed` problems.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from . import state
from .catalog import Category, Problem, Rename, RenameResult
from .local import LocalFolderSource
from .tree import Item, Node, flatten

if TYPE_CHECKING:
    from .drive import DriveSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    """One read of the tree.

    `full` is True when this was a full listing that should refresh everything (a
    forced or periodic rescan), False when it came from the changes feed.
    `fingerprint` identifies the tree's contents: equal fingerprints, equal trees."""

    tree: Node
    snapshot: Mapping[str, Any]
    changed: bool
    full: bool
    fingerprint: str


class Source(Protocol):
    """What the pipeline needs from a source of the tree."""

    name: str
    key: str  # whose state this is (`state.source_key`)

    def read(
        self, previous: Mapping[str, Any] | None, *, full_rescan: bool, now: datetime
    ) -> Reading: ...

    def rename(self, renames: Sequence[Rename]) -> RenameResult: ...

    def after_renames(self, reading: Reading, renames: Sequence[Rename]) -> Reading: ...

    def sheet_version(self, spreadsheet_id: str) -> str | None: ...

    @property
    def calls(self) -> int: ...


def fingerprint(items: Sequence[Item]) -> str:
    """A digest of the tree's contents, independent of listing order."""
    return state.digest(sorted([i.id, i.name, i.mime_type, i.parent] for i in items))


class DriveTree:
    """Google Drive: full listings and the changes feed (see `drive.DriveSource`)."""

    name = "drive"

    def __init__(self, drive: DriveSource) -> None:
        self.drive = drive
        self.key = state.source_key("drive", drive.folder_id)

    def sheet_version(self, spreadsheet_id: str) -> str | None:
        """The spreadsheet's Drive `version` (one call), None if Drive cannot see it."""
        return self.drive.file_version(spreadsheet_id)

    def read(
        self, previous: Mapping[str, Any] | None, *, full_rescan: bool, now: datetime
    ) -> Reading:
        """Read through the changes feed when `previous` allows it, else list everything."""
        from .drive import DriveSnapshot

        snapshot = None
        if previous is not None:
            try:
                snapshot = DriveSnapshot.from_json(previous)
            except ValueError as exc:
                log.warning("drive: saved snapshot unusable (%s); listing the whole drive", exc)
        got = self.drive.read(snapshot, full_rescan=full_rescan, now=now)
        return Reading(
            got.tree, got.snapshot.to_json(), got.changed, got.full, fingerprint(got.snapshot.items)
        )

    def rename(self, renames: Sequence[Rename]) -> RenameResult:
        return self.drive.rename(renames)

    def after_renames(self, reading: Reading, renames: Sequence[Rename]) -> Reading:
        """The reading with applied renames folded in, so the next run sees no change."""
        from .drive import DriveSnapshot

        if not renames:
            return reading
        new_names = {r.id: r.new for r in renames}
        snapshot = DriveSnapshot.from_json(reading.snapshot)
        items = tuple(
            replace(i, name=new_names[i.id]) if i.id in new_names else i for i in snapshot.items
        )
        snapshot = replace(snapshot, items=items)
        return replace(
            reading,
            tree=snapshot.tree(),
            snapshot=snapshot.to_json(),
            fingerprint=fingerprint(items),
        )

    @property
    def calls(self) -> int:
        return self.drive.calls.requests


class LocalTree:
    """A folder on disk laid out like the drive (`--source PATH`, the demo)."""

    name = "local"

    def __init__(self, source: LocalFolderSource, *, allow_renames: bool = True) -> None:
        self.source = source
        self.allow_renames = allow_renames
        self.key = state.source_key("local", os.path.abspath(source.root))

    def sheet_version(self, spreadsheet_id: str) -> str | None:
        """A local folder has no Drive to ask: unknown."""
        return None

    def read(
        self, previous: Mapping[str, Any] | None, *, full_rescan: bool, now: datetime
    ) -> Reading:
        """Read the whole folder (it is local: always cheap) and compare with `previous`."""
        tree = self.source.read()
        tree_print = fingerprint(flatten(tree))
        snapshot = {"kind": "local", "root": str(self.source.root), "fingerprint": tree_print}
        changed = previous is None or dict(previous) != snapshot
        return Reading(tree, snapshot, changed, full_rescan, tree_print)

    def rename(self, renames: Sequence[Rename]) -> RenameResult:
        """Rename on disk; a failure becomes a `rename_failed` problem."""
        if not self.allow_renames:
            return RenameResult()
        applied: set[str] = set()
        problems: list[Problem] = []
        for r in renames:
            try:
                self.source.rename(r.id, r.new)
            except OSError as exc:
                problems.append(
                    Problem(
                        Category.RENAME_FAILED,
                        "Rename failed",
                        r.path,
                        r.id,
                        f"to '{r.new}': {exc.strerror or exc}",
                    )
                )
            else:
                applied.add(r.id)
        return RenameResult(frozenset(applied), tuple(problems))

    def after_renames(self, reading: Reading, renames: Sequence[Rename]) -> Reading:
        """Renames change a local file's id (its path): read the folder again."""
        if not renames:
            return reading
        again = self.read(None, full_rescan=reading.full, now=datetime.now())
        return replace(again, changed=reading.changed)

    @property
    def calls(self) -> int:
        return 0
