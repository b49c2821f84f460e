"""Drive benchmark (issue #3): DriveSource against the Drive v3 emulator over HTTP.

A drive of 20,000 files in 1,600 folders, 100 ms injected latency per HTTP request.
Prints request counts and wall times for: shared drive cold, ordinary folder cold,
unchanged drive warm (changes feed), 500 renames (without Drive's write limit: this
measures our overhead; bench/quota.py renames under it), and, as the baseline, the same
drive read one folder per request (what the tool this replaces does), with the ratio.

    uv run python bench/drive.py [--latency 0.1] [--files 20000] [--folders 1600]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build

from backtest_compilation.catalog import Rename
from backtest_compilation.drive import DriveSource
from emulators.drive import FOLDER_MIME, DriveEmulator, sample_drive

DEPARTMENTS = 60


def source(emu: DriveEmulator, root: str) -> DriveSource:
    # Renames at the most DRIVE_WRITES_PER_S allows: this bench measures our overhead.
    return DriveSource(
        root,
        credentials=AnonymousCredentials(),
        endpoint=emu.url,
        allow_renames=True,
        writes_per_s=100.0,
    )


def one_folder_per_request(emu: DriveEmulator, root: str) -> tuple[int, int]:
    """The baseline: list each folder with its own query (pages of 100 followed, so it
    is at least complete), breadth-first. Returns (items, requests)."""
    service = build(
        "drive",
        "v3",
        credentials=AnonymousCredentials(),
        static_discovery=True,
        client_options={"api_endpoint": emu.url + "/drive/v3/"},
    )
    requests = items = 0
    frontier = [root]
    while frontier:
        folder_id = frontier.pop()
        request = service.files().list(
            q=f"'{folder_id}' in parents and trashed = false",
            fields="nextPageToken,files(id,name,mimeType,parents)",
            corpora="drive",
            driveId=root,
            includeItemsFromAllDrives=True,
            supportsAllDrives=True,
        )
        while request is not None:
            page = request.execute(num_retries=3)
            requests += 1
            for f in page.get("files", []):
                items += 1
                if f["mimeType"] == FOLDER_MIME:
                    frontier.append(f["id"])
            request = service.files().list_next(request, page)
    return items, requests


def timed(label: str, target: str, emu: DriveEmulator, fn, ok) -> tuple[float, int]:
    emu.reset_stats()
    started = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - started
    requests = emu.stats.requests
    verdict = "ok" if ok(requests, wall) else "MISSED"
    print(f"{label:<34} {requests:>6} req {wall:>8.2f} s   target: {target:<34} {verdict}")
    return wall, requests, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--folders", type=int, default=1_600)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()

    courses = args.folders - DEPARTMENTS
    content = sample_drive(DEPARTMENTS, courses, args.files)
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    print(
        f"drive: {args.files:,} files in {args.folders:,} folders "
        f"({DEPARTMENTS} departments, {courses:,} courses); "
        f"{args.latency * 1000:.0f} ms latency per HTTP request\n"
    )

    # Our own overhead (requests, batching, latency), so no write limit: renames under
    # Drive's (Google's 3 writes a second, the emulators' default) are bench/quota.py's.
    with (
        DriveEmulator(write_limit=None) as shared,
        DriveEmulator(write_limit=None) as mydrive,
    ):
        drive_id = shared.add_drive("Backtests")
        shared.seed(drive_id, content)
        folder_id = mydrive.add_folder("root", "Backtests", "backtests-folder")
        mydrive.seed(folder_id, content)
        shared.latency = mydrive.latency = args.latency

        src = source(shared, drive_id)
        # Issue 3 asked ≤ 25 requests (20 pages in one stream); a shared drive is now read
        # as an ordinary folder is, breadth-first, a level's queries 8 at a time: the
        # folder's request budget (docs/benchmarks.md).
        cold_wall, cold_req, cold = timed(
            "shared drive, cold",
            "<= 80 requests, < 5 s",
            shared,
            lambda: src.read(None, now=now),
            lambda r, w: r <= 80 and w < 5,
        )
        folders = sum(i.mime_type == FOLDER_MIME for i in cold.snapshot.items)
        counted = (folders, len(cold.snapshot.items) - folders)
        assert counted == (args.folders, args.files), counted

        folder_src = source(mydrive, folder_id)
        _, _, folder_read = timed(
            "ordinary folder, cold",
            "<= 80 requests, < 15 s",
            mydrive,
            lambda: folder_src.read(None, now=now),
            lambda r, w: r <= 80 and w < 15,
        )
        assert folder_read.tree.children == cold.tree.children

        _, _, warm = timed(
            "unchanged drive, warm",
            "<= 2 requests",
            shared,
            lambda: src.read(cold.snapshot, now=now + timedelta(hours=2)),
            lambda r, w: r <= 2,
        )
        assert not warm.full and not warm.changed

        files = [i for i in cold.snapshot.items if i.mime_type != FOLDER_MIME][:500]
        renames = [
            Rename(i.id, i.name, i.name, f"renamed {n} {i.name}") for n, i in enumerate(files)
        ]
        _, _, result = timed(
            "500 renames",
            "<= 10 requests, or < 5 s",
            shared,
            lambda: src.rename(renames),
            lambda r, w: r <= 10 or w < 5,
        )
        assert len(result.applied) == 500 and not result.problems

        shared.fail_every(3)
        _, _, stormy = timed(
            "shared drive, cold, every 3rd fails",
            "(exact tree; retries not slept)",
            shared,
            lambda: DriveSource(
                drive_id, credentials=AnonymousCredentials(), endpoint=shared.url,
                sleep=lambda s: None,
            ).read(None, now=now),
            lambda r, w: True,
        )  # fmt: skip
        shared.fail_every(0)
        assert (
            stormy.tree
            == DriveSource(drive_id, credentials=AnonymousCredentials(), endpoint=shared.url)
            .read(None, now=now)
            .tree
        )

        if not args.no_baseline:
            base_wall, base_req, (items, _) = timed(
                "baseline: one folder per request",
                "(the tool this replaces)",
                shared,
                lambda: one_folder_per_request(shared, drive_id),
                lambda r, w: True,
            )
            assert items == args.files + args.folders
            print(
                f"\nshared drive cold vs baseline: {base_req / cold_req:.0f}x fewer requests, "
                f"{base_wall / cold_wall:.0f}x faster"
            )


if __name__ == "__main__":
    main()
