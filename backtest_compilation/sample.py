"""The bundled sample drive `demo` runs on (see `sample_drive/ABOUT THIS SAMPLE.txt`)."""

import shutil
from pathlib import Path

SAMPLE_DRIVE = Path(__file__).resolve().with_name("sample_drive")


def copy_sample_drive(destination: Path) -> Path:
    """A copy of the sample drive in `destination`: renames then change only the copy."""
    return Path(shutil.copytree(SAMPLE_DRIVE, destination / "sample drive"))
