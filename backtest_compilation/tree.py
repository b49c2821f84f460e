"""The drive as plain data: the flat listing a source reads (`Item`s) and the tree of
folders and files they make (`Node`s), on which the catalog, plan and report work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FOLDER_MIME = "application/vnd.google-apps.folder"
PDF_MIME = "application/pdf"
OTHER_MIME = "application/octet-stream"
# A Drive shortcut points at a folder or file elsewhere; it is neither itself.
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"


@dataclass(frozen=True, slots=True)
class Node:
    """One folder or file. `children` is empty for files."""

    id: str
    name: str
    mime_type: str
    children: tuple[Node, ...] = ()

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


def children(root_id: str, items: Iterable[Item]) -> dict[str, list[Item]]:
    """The children of each folder under `root_id` (parents before their children):
    items whose parent chain does not reach the root are left out. No recursion (deep
    trees), and each id is placed once (a cycle, impossible in Drive, is cut)."""
    by_parent: dict[str, list[Item]] = {}
    for item in items:
        by_parent.setdefault(item.parent, []).append(item)
    kids: dict[str, list[Item]] = {}
    stack, seen = [root_id], {root_id}
    while stack:
        parent = stack.pop()
        kids[parent] = [k for k in by_parent.get(parent, ()) if k.id not in seen]
        seen.update(k.id for k in kids[parent])
        stack.extend(k.id for k in kids[parent] if k.mime_type == FOLDER_MIME)
    return kids


def assemble(root_id: str, root_name: str, items: Iterable[Item]) -> Node:
    """The tree under `root_id` from a flat listing (`children`), children in (name, id)
    order: a listing of a whole shared drive gives the same tree as one of its folder."""
    kids = children(root_id, items)
    built: dict[str, tuple[Node, ...]] = {}
    for parent in reversed(kids):  # children before their parents
        ordered = sorted(kids[parent], key=lambda k: (k.name, k.id))
        built[parent] = tuple(Node(k.id, k.name, k.mime_type, built.pop(k.id, ())) for k in ordered)
    return Node(root_id, root_name, FOLDER_MIME, built[root_id])
