"""The drive snapshot, as plain data and pure functions (no I/O).

`DriveSnapshot` is what one read of the drive saw: the `tree.Item`s under a root, with
the changes-feed token. The Drive adapter (`drive.DriveSource`) fills it from Google's
answers; here it is updated from a page of changes and pruned to what lies under the
root. The state keeps its `header` and its items (a column per field in the file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

from .tree import Item, children

COLUMNS = ("id", "name", "mime_type", "parent")
HEADER = ("root_id", "root_name", "drive_id", "page_token")
_SHOWN = attrgetter("root_id", "root_name", "items")  # what `differs` compares


@dataclass(frozen=True)
class DriveSnapshot:
    """What one read of the drive saw. `drive_id` is the shared drive holding the root
    (the root itself for a shared-drive root), `None` for a folder in My Drive.
    `listed_at` is the last *full* listing."""

    root_id: str
    root_name: str
    drive_id: str | None
    items: tuple[Item, ...]
    page_token: str | None
    listed_at: datetime

    def header(self) -> dict[str, Any]:
        """Everything but the items, as plain JSON (`from_header` reads it back)."""
        return {**{k: getattr(self, k) for k in HEADER}, "listed_at": self.listed_at.isoformat()}

    @classmethod
    def from_header(cls, data: Mapping[str, Any]) -> DriveSnapshot:
        """The snapshot `header` wrote, without items; ValueError saying what is wrong."""
        try:
            listed_at = datetime.fromisoformat(data["listed_at"])
            return cls(**{k: data[k] for k in HEADER}, items=(), listed_at=listed_at)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"drive snapshot is malformed ({exc!r})") from None


def items_to_json(items: Sequence[Item]) -> dict[str, list[str]]:
    """Items as saved: a column per field (`items_from_json` reads them back)."""
    return {column: [getattr(i, column) for i in items] for column in COLUMNS}


def items_from_json(raw: Any) -> tuple[Item, ...]:
    """Items as `items_to_json` saved them."""
    return tuple(map(Item, *(raw[k] for k in COLUMNS)))


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
        resource = change.get("file")
        item = None if change.get("removed") or not resource else to_item(resource)
        if item is None or resource is None or resource.get("trashed"):
            out.pop(change["fileId"], None)
        else:
            out[item.id] = item
    return out


def reachable(root_id: str, items: Mapping[str, Item]) -> dict[str, Item]:
    """The items whose parent chain reaches `root_id`."""
    return {k.id: k for kids in children(root_id, items.values()).values() for k in kids}


def sorted_items(items: Sequence[Item]) -> tuple[Item, ...]:
    return tuple(sorted(items, key=lambda i: i.id))


def differs(previous: DriveSnapshot | None, snapshot: DriveSnapshot) -> bool:
    """Whether `snapshot` shows another drive than `previous` (items in id order in both)."""
    return previous is None or _SHOWN(previous) != _SHOWN(snapshot)


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
