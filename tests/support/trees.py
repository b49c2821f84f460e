"""Test helpers over a `tree.Node` tree: its flat listing and its counts."""

from __future__ import annotations

from backtest_compilation.tree import FOLDER_MIME, Item, Node


def flatten(root: Node) -> list[Item]:
    """The flat listing of everything under `root` (what `tree.assemble` reads back)."""
    out: list[Item] = []
    stack = [root]
    while stack:
        node = stack.pop()
        out.extend(Item(child.id, child.name, child.mime_type, node.id) for child in node.children)
        stack.extend(node.children)
    return out


def count(root: Node) -> tuple[int, int]:
    """(folders, files) under `root`, the root itself not counted."""
    items = flatten(root)
    folders = sum(i.mime_type == FOLDER_MIME for i in items)
    return folders, len(items) - folders
