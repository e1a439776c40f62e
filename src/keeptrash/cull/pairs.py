"""RAW+JPEG pairs: a camera set to record both writes IMG_0001.CR2 and IMG_0001.JPG of one exposure. They are one shot:
scored once, from the JPEG, and sorted together.

The JPEG is what is scored because it is the camera's own full-size rendering of the same exposure: it decodes at
a reduced scale in milliseconds, carries the capture time and orientation in plain EXIF, never needs a RAW decode
(a RAW's preview may be too small), and still scores when LibRaw does not know the camera yet.
"""

from dataclasses import dataclass, field
from pathlib import Path

from keeptrash.raw import is_raw

# The renderings cameras write beside a RAW file: JPEG, and HEIF on newer bodies.
RENDER_SUFFIXES = {".jpg", ".jpeg", ".heic", ".heif"}
# How a pair's companion files are named in one CSV cell.
SEPARATOR = "; "


@dataclass
class Shots:
    photos: list[Path] = field(default_factory=list)  # what is scored: every photo but the RAW files of pairs
    companions: dict[Path, tuple[Path, ...]] = field(default_factory=dict)  # a pair's JPEG -> its RAW file(s)


def pair_shots(photos: list[Path]) -> Shots:
    """Photos of one folder with the same stem (IMG_0001.CR2, IMG_0001.JPG; suffixes of any case) are one shot when
    one is a JPEG (or HEIF) and the others RAW files: the JPEG stands for the shot. Order is kept."""
    by_stem: dict[tuple[Path, str], list[Path]] = {}
    for photo in photos:
        by_stem.setdefault((photo.parent, photo.stem), []).append(photo)
    shots = Shots()
    for same_stem in by_stem.values():
        renders = [photo for photo in same_stem if photo.suffix.lower() in RENDER_SUFFIXES]
        raws = tuple(photo for photo in same_stem if is_raw(photo))
        if renders and raws:
            shots.companions[renders[0]] = raws
    paired_raws = {raw for raws in shots.companions.values() for raw in raws}
    shots.photos = [photo for photo in photos if photo not in paired_raws]
    return shots


def unpaired(shots: Shots, failed: list[tuple[Path, str]]) -> list[Path]:
    """The RAW files of pairs whose JPEG could not be scored: each is then a photo of its own (and dropped from shots)."""
    return [raw for path, _ in failed for raw in shots.companions.pop(path, ())]
