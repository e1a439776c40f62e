"""Series of near-identical shots (bursts, bracketing, "one more for safety"), found as photographers' tools find them.

Photos are put in shooting order: capture time (EXIF DateTimeOriginal with its sub-seconds, else the file's
modification time where that can be trusted), then file name, which cameras number in shooting order. Walking that order, a photo
joins the series of the one before it when it was taken at most `max_gap_seconds` later and looks the same:
their perceptual hashes (a 64-bit DCT hash of the greyscale thumbnail) differ in at most `max_hash_distance`
bits. Comparing neighbours only, not every pair, keeps grouping linear in the number of photos, and lets a
series drift (a pan, a subject walking) while two similar scenes shot an hour apart stay apart.

The same rule runs in `keeptrash cull` and in the labels stage, which runs before any CNN features exist,
so it uses nothing the labels stage cannot compute.
"""

import datetime
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from keeptrash.images import DECODE_ERRORS, ImageTooLarge, open_photo, pixel_limit
from keeptrash.params import GroupingParams
from keeptrash.raw import exif_capture_time, is_raw

EXIF_IFD = 0x8769
DATE_TIME_ORIGINAL, _SUBSEC_TIME_ORIGINAL = 0x9003, 0x9291
_DATE_TIME = 0x0132  # when the file was written: cameras set it, editors may change it; the fallback inside EXIF
EXIF_TIME_FORMAT = "%Y:%m:%d %H:%M:%S"
# The thumbnail side the hash is computed from: a JPEG decodes at 1/8 scale in draft mode to reach it.
_HASH_DECODE_SIDE = 64


@dataclass(frozen=True)
class Signature:
    """What grouping knows of one photo: when it was taken (seconds since the epoch, None if unknown) and its look."""

    path: Path
    captured: float | None
    hash: imagehash.ImageHash | None  # None: the photo does not decode, so it is a series of its own


def exif_timestamp(text: object, subsec: object) -> float | None:
    """Seconds since the epoch of an EXIF time and its sub-seconds as written; None for no time or a placeholder."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.datetime.strptime(text.strip("\0 "), EXIF_TIME_FORMAT)
    except ValueError:
        return None  # "0000:00:00 00:00:00" and other placeholders cameras write without a clock
    digits = str(subsec).strip("\0 ")
    fraction = float(f"0.{digits}") if digits.isdigit() else 0.0
    # EXIF times carry no zone: read as UTC, they are consistent with each other, which is all grouping needs.
    return moment.replace(tzinfo=datetime.UTC).timestamp() + fraction


def _exif_time(exif: Image.Exif) -> float | None:
    details = exif.get_ifd(EXIF_IFD)
    return exif_timestamp(details.get(DATE_TIME_ORIGINAL) or exif.get(_DATE_TIME), details.get(_SUBSEC_TIME_ORIGINAL, ""))


def capture_time(path: Path) -> float | None:
    """When the photo was taken, by its own EXIF: a RAW file's through Exiv2 (keeptrash.raw), others' through Pillow."""
    if is_raw(path):
        written = exif_capture_time(path)
        return exif_timestamp(*written) if written else None
    with Image.open(path) as image:
        return _exif_time(image.getexif())


def read_signature(path: Path, max_pixels: int, file_time: bool = True) -> Signature:
    """The photo's capture time and perceptual hash; an unreadable photo gets no hash.

    Without EXIF time the file's modification time stands in when file_time; the labels stage passes False,
    since a checkout's file times say nothing about the photos and differ on every machine.
    """
    try:
        status = os.stat(path)
    except OSError:
        return Signature(path, None, None)
    modified = status.st_mtime if file_time else None
    if not stat.S_ISREG(status.st_mode):
        return Signature(path, modified, None)  # a pipe or device named like a photo: opening it could block forever
    try:
        with pixel_limit(max_pixels):
            captured = capture_time(path)
            thumbnail, _ = open_photo(path, _HASH_DECODE_SIDE)
    except (ImageTooLarge, *DECODE_ERRORS):
        return Signature(path, modified, None)
    return Signature(path, modified if captured is None else captured, imagehash.phash(thumbnail))


def read_signatures(paths: Sequence[Path], max_pixels: int, file_time: bool = True) -> list[Signature]:
    return [read_signature(Path(path), max_pixels, file_time) for path in tqdm(paths, desc="grouping", unit="img", disable=None)]


def _same_series(before: Signature, after: Signature, params: GroupingParams) -> bool:
    if before.hash is None or after.hash is None:
        return False
    # Where either time is unknown, neighbours in file order are judged by their look alone.
    timed = before.captured is not None and after.captured is not None
    return (not timed or after.captured - before.captured <= params.max_gap_seconds) and before.hash - after.hash <= params.max_hash_distance


def group_series(signatures: Sequence[Signature], params: GroupingParams) -> np.ndarray:
    """A series id per photo (in the order given): 1, 2, ... numbered in shooting order; singletons get their own.

    Photos of known time come first, by time then name; the rest follow by name.
    """

    def shooting_order(index: int) -> tuple:
        captured = signatures[index].captured
        return (captured is None, captured or 0.0, str(signatures[index].path))

    order = sorted(range(len(signatures)), key=shooting_order)
    groups = np.zeros(len(signatures), dtype=np.int64)
    current = 0
    for position, index in enumerate(order):
        if position == 0 or not _same_series(signatures[order[position - 1]], signatures[index], params):
            current += 1
        groups[index] = current
    return groups


def rank_in_groups(groups: Sequence[int], keep_probability: Sequence[float]) -> np.ndarray:
    """1 for the photo with the highest keep probability in its series, 2 for the next, ...; ties keep input order."""
    frame = pd.DataFrame({"group": groups, "probability": keep_probability})
    return frame.groupby("group")["probability"].rank(method="first", ascending=False).astype(np.int64).to_numpy()


@dataclass(frozen=True)
class SeriesSplits:
    split: pd.Series  # each photo's split, a series' photos all in the same one
    series: int  # series of two or more photos found
    photos_in_series: int
    photos_moved: int  # photos whose own split differed from their series' split

    def summary(self) -> dict:
        return {"series_kept_together": self.series, "photos_in_series": self.photos_in_series, "photos_moved": self.photos_moved}


def keep_series_together(keys: pd.Series, paths: pd.Series, split: pd.Series, params: GroupingParams, max_pixels: int) -> SeriesSplits:
    """Put every photo of a series in the split of the series' smallest key, so near-duplicates never straddle splits.

    keys, paths and split share an index; photos outside any series keep their split, and a series keeps its
    split as photos are added unless a new photo with a smaller key joins it. Capture times come from EXIF only.
    """
    signatures = read_signatures([Path(path) for path in paths], max_pixels, file_time=False)
    groups = pd.Series(group_series(signatures, params), index=keys.index)
    sizes = groups.map(groups.value_counts())
    anchor = keys.groupby(groups).transform("min")
    together = anchor.map(pd.Series(split.to_numpy(), index=keys.to_numpy())).astype(split.dtype)
    return SeriesSplits(
        split=together,
        series=int(groups[sizes > 1].nunique()),
        photos_in_series=int((sizes > 1).sum()),
        photos_moved=int((together != split).sum()),
    )
