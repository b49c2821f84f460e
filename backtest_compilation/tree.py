"""The drive as plain data: a tree of folders and files, whatever it was read from.

Sources (Google Drive, a local folder) produce a `Node` tree; everything after that
(catalog, plan, report) works on this model only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

FOLDER_MIME = "application/vnd.google-apps.folder"
PDF_MIME = "application/pdf"
OTHER_MIME = "application/octet-stream"
# A Drive shortcut points at a folder or file elsewhere; it is neither itself.
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"


class Kind(StrEnum):
    FOLDER = "folder"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class Node:
    """One folder or file. `children` is empty for files."""

    id: str
    name: str
    mime_type: str
    children: tuple[Node, ...] = ()

    @property
    def kind(self) -> Kind:
        return Kind.FOLDER if self.mime_type == FOLDER_MIME else Kind.FILE

    @property
    def is_folder(self) -> bool:
        return self.mime_type == FOLDER_MIME

    @property
    def is_pdf(self) -> bool:
        return self.mime_type == PDF_MIME


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a flat listing (what Drive returns): the tree is assembled from these."""

    id: str
    name: str
    mime_type: str
    parent: str


def folder(id: str, name: str, *children: Node) -> Node:
    """A folder node (shorthand for tests and sample trees)."""
    return Node(id, name, FOLDER_MIME, tuple(children))


def file(id: str, name: str, mime_type: str = PDF_MIME) -> Node:
    """A file node, a PDF unless told otherwise (shorthand for tests and sample trees)."""
    return Node(id, name, mime_type)


def assemble(root_id: str, root_name: str, items: Iterable[Item]) -> Node:
    """Build the tree under `root_id` from a flat listing.

    Items whose parent chain does not reach the root are left out, so a listing of a
    whole shared drive or a changes feed with unrelated items gives the same tree.
    Children are kept in a stable order (name, then id) so trees compare equal however
    the listing was paged.
    """
    by_parent: dict[str, list[Item]] = {}
    for item in items:
        by_parent.setdefault(item.parent, []).append(item)

    # Iterative post-order build: deep trees must not hit the recursion limit, and a
    # cycle (impossible in Drive, possible in hand-made data) must not loop forever.
    def build(item_id: str, name: str, mime: str) -> Node:
        built: dict[str, Node] = {}
        stack: list[tuple[Item | None, bool]] = [(None, False)]
        seen: set[str] = {item_id}
        while stack:
            current, expanded = stack.pop()
            cid = item_id if current is None else current.id
            kids = (
                by_parent.get(cid, ())
                if (current is None or current.mime_type == FOLDER_MIME)
                else ()
            )
            if not expanded:
                stack.append((current, True))
                for kid in kids:
                    if kid.id not in seen:
                        seen.add(kid.id)
                        stack.append((kid, False))
                continue
            children = tuple(
                built.pop(kid.id)
                for kid in sorted(kids, key=lambda k: (k.name, k.id))
                if kid.id in built
            )
            if current is None:
                return Node(item_id, name, mime, children)
            built[cid] = Node(cid, current.name, current.mime_type, children)
        raise AssertionError("unreachable")

    return build(root_id, root_name, FOLDER_MIME)


def flatten(root: Node) -> list[Item]:
    """The flat listing of everything under `root` (the inverse of `assemble`)."""
    out: list[Item] = []
    stack = [root]
    while stack:
        node = stack.pop()
        for child in node.children:
            out.append(Item(child.id, child.name, child.mime_type, node.id))
            stack.append(child)
    return out


def count(root: Node) -> tuple[int, int]:
    """(folders, files) under `root`, the root itself not counted."""
    folders = files = 0
    stack = list(root.children)
    while stack:
        node = stack.pop()
        if node.is_folder:
            folders += 1
            stack.extend(node.children)
        else:
            files += 1
    return folders, files
