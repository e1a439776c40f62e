"""ExifTool, the independent reader of the XMP keeptrash writes: its reading of a file's XMP, by group and name."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="needs ExifTool (Debian: libimage-exiftool-perl; .ci/run installs it)")


def exiftool_xmp(path: Path) -> dict:
    """Every XMP property ExifTool reads in path, as "XMP-<prefix>:<Name>" -> value (numbers as numbers, -n)."""
    result = subprocess.run([EXIFTOOL, "-j", "-G1", "-struct", "-n", "-XMP:all", str(path)], capture_output=True, text=True, check=True)
    return {key: value for key, value in json.loads(result.stdout)[0].items() if key.startswith("XMP-")}


def exiftool_write(path: Path, *assignments: str) -> None:
    """Tags written by ExifTool itself, as another tool would (e.g. "-XMP-xmp:Rating=3")."""
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", *assignments, str(path)], check=True, capture_output=True)
