"""Shared paths and small fixtures: real files from the repo's data folder, copied into tmp_path."""

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARAMS_YAML = REPO / "params.yaml"
AVA_TXT = REPO / "data" / "ava" / "AVA_partial.txt"
LIVEC_IMAGES = REPO / "data" / "sample" / "livec" / "images"
# A handful of real LIVE-C photos (all 500x500 RGB JPEGs).
PHOTO_NAMES = ("100.jpg", "1002.jpg", "1003.jpg", "1004.jpg", "1007.jpg")


@pytest.fixture(scope="session")
def ava_lines() -> list[str]:
    """The first 20 lines of the shipped AVA_partial.txt, verbatim (canonical 15 columns)."""
    with AVA_TXT.open(encoding="utf-8") as handle:
        return [next(handle).rstrip("\n") for _ in range(20)]


@pytest.fixture
def photo(tmp_path) -> Path:
    """A copy of one real JPEG photo."""
    target = tmp_path / "photo.jpg"
    shutil.copyfile(LIVEC_IMAGES / PHOTO_NAMES[0], target)
    return target


def copy_photos(names, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for name in names:
        shutil.copyfile(LIVEC_IMAGES / name, folder / name)
        copies.append(folder / name)
    return copies
