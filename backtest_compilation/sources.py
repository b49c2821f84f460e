"""Where the tree comes from: Google Drive (`DriveTree`) or a folder on disk (`LocalTree`),
each a `Source` with the same methods: `read` (a `Reading` of the tree), `rename`,
`after_renames`, `sheet_version`, `root_parent` (the folder holding the root), `calls`."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from . import state
from .catalog import Category, Problem, Rename, RenameResult
from .local import LocalFolderSource
from .snapshot import DriveSnapshot
from .tree import Node, assemble

if TYPE_CHECKING:
    from .drive import DriveSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    """One read of the tree: what the state keeps of it (`snapshot`), whether it changed,
    whether it was a full listing, and a `fingerprint` of its contents. `tree` is built
    on first use: an unchanged run never builds it (nor reads the saved items)."""

    snapshot: Mapping[str, Any]
    changed: bool
    full: bool
    fingerprint: str
    make_tree: Callable[[], Node]

    @cached_property
    def tree(self) -> Node:
        return self.make_tree()


class DriveTree:
    """Google Drive: full listings and the changes feed (`drive.DriveSource`). The state
    keeps its `DriveSnapshot` as the header, `fingerprint` and `items` (`Item`s)."""

    name = "drive"

    def __init__(self, drive: DriveSource) -> None:
        self.drive = drive
        self.key = state.source_key("drive", drive.folder_id)

    def read(
        self, previous: Mapping[str, Any] | None, *, full_rescan: bool, now: datetime
    ) -> Reading:
        """Read through the changes feed when `previous` allows it, else list everything;
        the saved items are read only when the feed reports a change."""
        header = None
        if previous is not None:
            try:
                header = DriveSnapshot.from_header(previous)
            except ValueError as exc:
                log.warning("drive: saved snapshot unusable (%s); listing the whole drive", exc)
        got = self.drive.read(
            header, full_rescan=full_rescan, now=now, load_items=lambda: previous["items"]
        )
        if got.tree is None:  # nothing changed
            assert previous is not None
            saved = state.replaced(previous, page_token=got.snapshot.page_token)
            return _drive_reading(saved, False, False)
        tree, items = got.tree, got.snapshot.items
        saved = {**got.snapshot.header(), "fingerprint": state.digest(items), "items": items}
        return replace(_drive_reading(saved, got.changed, got.full), make_tree=lambda: tree)

    def after_renames(self, reading: Reading, renames: Sequence[Rename]) -> Reading:
        """The reading with applied renames folded in, so the next run sees no change."""
        if not renames:
            return reading
        new = {r.id: r.new for r in renames}
        items = tuple(
            replace(i, name=new[i.id]) if i.id in new else i for i in reading.snapshot["items"]
        )
        saved = {**reading.snapshot, "fingerprint": state.digest(items), "items": items}
        return _drive_reading(saved, reading.changed, reading.full)

    def rename(self, renames: Sequence[Rename]) -> RenameResult:
        return self.drive.rename(renames)

    def sheet_version(self, spreadsheet_id: str) -> str | None:
        """The spreadsheet's Drive `version` (one call), None if Drive cannot see it."""
        return self.drive.file_version(spreadsheet_id)

    def root_parent(self) -> tuple[str, str] | None:
        return self.drive.root_parent()

    @property
    def calls(self) -> int:
        return self.drive.requests


def _drive_reading(saved: Mapping[str, Any], changed: bool, full: bool) -> Reading:
    """A Drive reading of what the state keeps; its tree is built if someone asks."""

    def tree() -> Node:
        return assemble(saved["root_id"], saved["root_name"], saved["items"])

    return Reading(saved, changed, full, saved["fingerprint"], tree)


class LocalTree:
    """A folder on disk laid out like the drive (`--source PATH`, the demo)."""

    name = "local"
    calls = 0

    def __init__(self, source: LocalFolderSource, *, allow_renames: bool = True) -> None:
        self.source = source
        self.allow_renames = allow_renames
        self.key = state.source_key("local", os.path.abspath(source.root))

    def read(
        self, previous: Mapping[str, Any] | None, *, full_rescan: bool, now: datetime
    ) -> Reading:
        """Read the whole folder (it is local: always cheap) and compare with `previous`."""
        tree = self.source.read()
        saved = {"fingerprint": state.digest(tree)}  # its folder in CACHE_DIR is its path's
        changed = previous is None or dict(previous) != saved
        return Reading(saved, changed, full_rescan, saved["fingerprint"], lambda: tree)

    def after_renames(self, reading: Reading, renames: Sequence[Rename]) -> Reading:
        """Renames change a local file's id (its path): read the folder again."""
        if not renames:
            return reading
        again = self.read(None, full_rescan=reading.full, now=datetime.now())
        return replace(again, changed=reading.changed)

    def rename(self, renames: Sequence[Rename]) -> RenameResult:
        """Rename on disk; a failure becomes a `rename_failed` problem."""
        if not self.allow_renames:
            return RenameResult()
        applied: set[str] = set()
        problems: list[Problem] = []
        for r in renames:
            try:
                self.source.rename(r.id, r.new)
                applied.add(r.id)
            except OSError as exc:
                why = f"to '{r.new}': {exc.strerror or exc}"
                problems.append(Problem(Category.RENAME_FAILED, "Rename failed", r.path, r.id, why))
        return RenameResult(frozenset(applied), tuple(problems))

    def sheet_version(self, spreadsheet_id: str) -> str | None:
        """A local folder has no Drive to ask: unknown."""
        return None

    def root_parent(self) -> tuple[str, str] | None:
        """The directory that holds the root, by its path."""
        parent = str(self.source.root.resolve().parent)
        return parent, parent


Source = DriveTree | LocalTree
