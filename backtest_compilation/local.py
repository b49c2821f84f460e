"""`LocalFolderSource`: a directory on disk laid out like the drive (`--source PATH`, demo).

Node ids are paths relative to the root (POSIX separators), which are unique and
stable. A file counts as a PDF when its name ends in `.pdf` in any case (contract §2.3).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ServiceError
from .tree import FOLDER_MIME, OTHER_MIME, PDF_MIME, Node

ROOT_ID = "."


class SourceError(ServiceError):
    """The tree could not be read (the run stops before anything is written)."""


@dataclass(frozen=True)
class LocalFolderSource:
    """Reads the tree under `root`; `rename` renames on disk (used by the demo)."""

    root: Path

    def read(self) -> Node:
        """The whole tree; hidden entries (`.DS_Store`, `.git`) and symlinks are skipped."""
        if not self.root.is_dir():
            raise SourceError(f"--source {str(self.root)!r} is not a directory")
        return Node(ROOT_ID, self.root.name, FOLDER_MIME, self._children(self.root, ""))

    def _children(self, directory: Path, rel: str) -> tuple[Node, ...]:
        try:
            entries = [e for e in os.scandir(directory) if not e.name.startswith(".")]
            entries = [e for e in entries if not e.is_symlink()]
        except OSError as exc:
            raise SourceError(f"cannot read {str(directory)!r}: {exc.strerror}") from exc
        nodes = []
        for entry in entries:
            node_id = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir():
                kids = self._children(Path(entry.path), node_id)
                nodes.append(Node(node_id, entry.name, FOLDER_MIME, kids))
            else:
                mime = PDF_MIME if entry.name.lower().endswith(".pdf") else OTHER_MIME
                nodes.append(Node(node_id, entry.name, mime))
        return tuple(sorted(nodes, key=lambda n: (n.name, n.id)))

    def rename(self, node_id: str, new_name: str) -> None:
        """Rename the file `node_id` (a relative path) within its folder."""
        path = self.root / node_id
        target = path.with_name(new_name)
        if target.exists():
            raise FileExistsError(f"{target.name!r} already exists in {str(path.parent)!r}")
        path.rename(target)
