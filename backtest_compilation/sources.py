"""Where the tree comes from, behind one small interface the pipeline uses.

Google Drive (`drive.DriveSource`) and a folder on disk (`local.LocalFolderSource`) are
wrapped so the pipeline sees the same thing from both: a `Reading` (the tree, the
snapshot the state keeps, and whether anything changed since the last
one) and `rename`, whose failures come back as `rename_failed` problems.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from . import state
from .catalog import Category, Problem, Rename, RenameResult
from .local import LocalFolderSource
from .snapshot import DriveSnapshot
from .tree import Item, Node, assemble, flatten

if TYPE_CHECKING:
    from .drive import DriveRead, DriveSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    """One read of the tree.

    `full` is True when this was a full listing that should refresh everything (a
    forced or periodic rescan), False when it came from the changes feed.
    `fingerprint` identifies the tree's contents: equal fingerprints, equal trees.
    `tree` is built on first use: a run that finds the drive unchanged never builds it
    (nor reads the saved items it is made of)."""

    snapshot: Mapping[str, Any]
    changed: bool
    full: bool
    fingerprint: str
    make_tree: Callable[[], Node]

    @classmethod
    def of(
        cls, tree: Node, snapshot: Mapping[str, Any], changed: bool, full: bool, fingerprint: str
    ) -> Reading:
        """A reading whose tree is already built."""
        return cls(snapshot, changed, full, fingerprint, lambda: tree)

    @cached_property
    def tree(self) -> Node:
        return self.make_tree()


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

    def root_parent(self) -> tuple[str, str] | None:
        """(id, name) of the folder that holds the root, if it can be seen."""
        ...

    @property
    def calls(self) -> int: ...


def fingerprint(items: Iterable[Item]) -> str:
    """A digest of the tree's contents, independent of listing order."""
    h = hashlib.sha256()
    for item in sorted(items, key=lambda i: i.id):
        h.update(repr((item.id, item.name, item.mime_type, item.parent)).encode("utf-8", "replace"))
    return h.hexdigest()


class DriveTree:
    """Google Drive: full listings and the changes feed (see `drive.DriveSource`). Its
    snapshot in the state is the `DriveSnapshot`'s header with `fingerprint` and `items`
    (a tuple of `Item`s)."""

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
        snapshot = None
        if previous is not None:
            try:
                snapshot = DriveSnapshot.from_header(previous)
                if not isinstance(previous.get("fingerprint"), str):
                    raise ValueError("it has no fingerprint")
            except ValueError as exc:
                log.warning("drive: saved snapshot unusable (%s); listing the whole drive", exc)
                snapshot = None
        saved = previous

        def load_items() -> tuple[Item, ...]:
            assert saved is not None
            items = saved.get("items")  # read from the state's snapshot.json now
            if not isinstance(items, tuple):
                raise ValueError("the saved drive items are missing")
            return items

        got = self.drive.read(snapshot, full_rescan=full_rescan, now=now, load_items=load_items)
        if got.tree is None:
            # Nothing changed: the saved items stay where they are, unread.
            assert saved is not None
            header = state.replaced(saved, page_token=got.snapshot.page_token)
            return Reading(header, False, False, saved["fingerprint"], lambda: _tree_of(header))
        tree = got.tree
        return _reading(lambda: tree, got.snapshot.header(), got.snapshot.items, got)

    def rename(self, renames: Sequence[Rename]) -> RenameResult:
        return self.drive.rename(renames)

    def root_parent(self) -> tuple[str, str] | None:
        return self.drive.root_parent()

    def after_renames(self, reading: Reading, renames: Sequence[Rename]) -> Reading:
        """The reading with applied renames folded in, so the next run sees no change."""
        if not renames:
            return reading
        new_names = {r.id: r.new for r in renames}
        items = tuple(
            replace(i, name=new_names[i.id]) if i.id in new_names else i
            for i in reading.snapshot["items"]
        )
        header = {k: v for k, v in reading.snapshot.items() if k != "items"}
        # The tree is built only if someone asks (the catalog is not rebuilt after renames).
        return _reading(lambda: _tree_of({**header, "items": items}), header, items, reading)

    @property
    def calls(self) -> int:
        return self.drive.calls.requests


def _reading(
    make_tree: Callable[[], Node],
    header: Mapping[str, Any],
    items: tuple[Item, ...],
    was: DriveRead | Reading,
) -> Reading:
    """A Drive reading: the snapshot as the state keeps it, with its fingerprint."""
    print_ = fingerprint(items)
    snapshot = {**header, "fingerprint": print_, "items": items}
    return Reading(snapshot, was.changed, was.full, print_, make_tree)


def _tree_of(saved: Mapping[str, Any]) -> Node:
    return assemble(saved["root_id"], saved["root_name"], saved["items"])


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
        return Reading.of(tree, snapshot, changed, full_rescan, tree_print)

    def root_parent(self) -> tuple[str, str] | None:
        """The directory that holds the root, by its path."""
        parent = str(self.source.root.resolve().parent)
        return parent, parent

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
