"""The bundled sample drive used by `demo` (see `sample_drive/ABOUT THIS SAMPLE.txt`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final

SAMPLE_DRIVE: Final = Path(__file__).resolve().with_name("sample_drive")
COPY_NAME: Final = "sample drive"


def copy_sample_drive(destination: Path) -> Path:
    """Copy the sample drive into `destination` (e.g. a temporary directory) and return
    the copy's root, ready for `LocalFolderSource`; renames then change only the copy."""
    target = Path(destination) / COPY_NAME
    shutil.copytree(SAMPLE_DRIVE, target)
    return target
