"""The drive snapshot, as plain data and pure functions (no I/O).

`DriveSnapshot` is the one in-memory shape of "what the drive looked like": the items
of a listing (`tree.Item`) under a root, with the changes-feed token. The Drive adapter
(`drive.DriveSource`) fills it from Google's answers; here it is updated from a page of
changes, pruned to what lies under the root, and turned into the tree. Saved, the items
are a column per field (`items_to_json`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from .tree import FOLDER_MIME, Item, Node, assemble

SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class DriveSnapshot:
    """What one read of the drive saw, persisted between runs (by the state module).

    `drive_id` is the shared drive holding the root (the root itself for a shared-drive
    root), `None` for a folder in My Drive. `listed_at` is the last *full* listing.
    """

    root_id: str
    root_name: str
    drive_id: str | None
    is_shared_drive: bool
    items: tuple[Item, ...]
    page_token: str | None
    listed_at: datetime

    def tree(self) -> Node:
        """The tree these items make (`tree.assemble`)."""
        return assemble(self.root_id, self.root_name, self.items)

    def header(self) -> dict[str, Any]:
        """Everything but the items, as plain JSON (`from_header` reads it back)."""
        return {
            "version": SNAPSHOT_VERSION,
            "root_id": self.root_id,
            "root_name": self.root_name,
            "drive_id": self.drive_id,
            "is_shared_drive": self.is_shared_drive,
            "page_token": self.page_token,
            "listed_at": self.listed_at.isoformat(),
        }

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (`from_json` reads it back)."""
        return {**self.header(), "items": items_to_json(self.items)}

    @classmethod
    def from_json(cls, data: Any) -> DriveSnapshot:
        """The snapshot `to_json` wrote; ValueError naming what is wrong otherwise."""
        return replace(cls.from_header(data), items=items_from_json(data.get("items")))

    @classmethod
    def from_header(cls, data: Any) -> DriveSnapshot:
        """The snapshot `header` wrote, without items; ValueError naming what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError("drive snapshot is not a JSON object")
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"drive snapshot version {data.get('version')!r} is not supported")
        fields = {k: data.get(k) for k in ("root_id", "root_name", "drive_id", "page_token")}
        for key, value in fields.items():
            if not (isinstance(value, str) or (value is None and key in _OPTIONAL)):
                raise ValueError(f"drive snapshot field {key!r} must be a string")
        if not isinstance(data.get("is_shared_drive"), bool):
            raise ValueError("drive snapshot field 'is_shared_drive' must be true or false")
        try:
            listed_at = datetime.fromisoformat(data["listed_at"])
        except (TypeError, ValueError):
            raise ValueError("drive snapshot field 'listed_at' is not an ISO time") from None
        if listed_at.tzinfo is None:
            raise ValueError("drive snapshot field 'listed_at' has no time zone")
        return cls(**fields, is_shared_drive=data["is_shared_drive"], items=(), listed_at=listed_at)


_OPTIONAL = ("drive_id", "page_token")


def items_to_json(items: Sequence[Item]) -> dict[str, list[str]]:
    """Items as saved: a column per field (`items_from_json` reads them back)."""
    return {
        "id": [i.id for i in items],
        "name": [i.name for i in items],
        "mime_type": [i.mime_type for i in items],
        "parent": [i.parent for i in items],
    }


def items_from_json(raw: Any) -> tuple[Item, ...]:
    """Items as `items_to_json` saved them; ValueError naming what is wrong otherwise."""
    try:
        columns = [raw[k] for k in ("id", "name", "mime_type", "parent")]
    except (TypeError, KeyError, IndexError):
        raise ValueError("drive snapshot field 'items' is not a column per field") from None
    if not all(type(c) is list and len(c) == len(columns[0]) for c in columns) or not all(
        type(v) is str for c in columns for v in c
    ):
        raise ValueError("drive snapshot field 'items' has a column that is not text")
    return tuple(map(Item, *columns))


def to_item(resource: Mapping[str, Any]) -> Item | None:
    """A Drive file resource as an `Item`; None when it has no parent (a drive root)."""
    parents = resource.get("parents") or []
    if not parents:
        return None
    return Item(resource["id"], resource["name"], resource["mimeType"], parents[0])


def apply_changes(
    items: Mapping[str, Item], changes: Sequence[Mapping[str, Any]]
) -> dict[str, Item]:
    """The items after the changes feed: adds, renames and moves upserted; trashed and
    removed items dropped. Items outside the root are kept here and pruned later."""
    out = dict(items)
    for change in changes:
        if change.get("changeType", "file") != "file":
            continue
        fid = change["fileId"]
        resource = change.get("file")
        item = None if change.get("removed") or not resource else to_item(resource)
        if item is None or resource is None or resource.get("trashed"):
            out.pop(fid, None)
        else:
            out[fid] = item
    return out


def reachable(root_id: str, items: Mapping[str, Item]) -> dict[str, Item]:
    """The items whose parent chain reaches `root_id`."""
    children: dict[str, list[Item]] = {}
    for item in items.values():
        children.setdefault(item.parent, []).append(item)
    out: dict[str, Item] = {}
    stack = [root_id]
    while stack:
        for kid in children.get(stack.pop(), ()):
            if kid.id not in out and kid.id != root_id:
                out[kid.id] = kid
                if kid.mime_type == FOLDER_MIME:
                    stack.append(kid.id)
    return out


def sorted_items(items: Sequence[Item]) -> tuple[Item, ...]:
    return tuple(sorted(items, key=lambda i: i.id))


def differs(previous: DriveSnapshot | None, snapshot: DriveSnapshot) -> bool:
    if previous is None:
        return True
    return (
        previous.root_id != snapshot.root_id
        or previous.root_name != snapshot.root_name
        or set(previous.items) != set(snapshot.items)
    )


def full_reason(
    previous: DriveSnapshot | None,
    folder_id: str,
    full_rescan: bool,
    now: datetime,
    hours: float,
) -> str | None:
    """Why this read must list everything, or None when the changes feed will do."""
    if previous is None:
        return "there is no saved snapshot"
    if full_rescan:
        return "--full-rescan was given"
    if previous.root_id != folder_id:
        return "FOLDER_ID changed"
    if not previous.page_token:
        return "there is no saved changes token"
    if now - previous.listed_at >= timedelta(hours=hours):
        return f"the last full listing is older than FULL_RESCAN_HOURS ({hours:g})"
    return None
