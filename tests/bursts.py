"""Bursts of near-identical shots written from real photos, with real EXIF capture times: the grouping tests' and
`keeptrash cull`'s memory card."""

import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

from keeptrash.grouping import DATE_TIME_ORIGINAL, EXIF_IFD

START = datetime.datetime(2026, 7, 4, 18, 30, 0)


def with_exif_time(moment: datetime.datetime | None) -> dict:
    if moment is None:
        return {}
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = moment.strftime("%Y:%m:%d %H:%M:%S")
    return {"exif": exif}


def takes_of(photo: Path) -> list[Image.Image]:
    """Four takes of one moment: as shot, darker, a little soft, noisy."""
    with Image.open(photo) as image:
        original = image.convert("RGB")
    pixels = np.asarray(original, dtype=np.float64)
    noise = np.random.default_rng(0).normal(0, 15, pixels.shape)
    return [
        original,
        Image.fromarray((pixels * 0.5).astype(np.uint8)),
        original.filter(ImageFilter.GaussianBlur(2)),
        Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)),
    ]


def write_bursts(folder: Path, photos: list[Path], gap_seconds: int = 30, exif: bool = True) -> pd.DataFrame:
    """One burst per photo, 1 s between takes and gap_seconds between bursts, as IMG_0001.jpg ... in shooting order."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, moment, frame = [], START, 0
    for series, photo in enumerate(photos):
        for take, image in enumerate(takes_of(photo)):
            frame += 1
            path = folder / f"IMG_{frame:04d}.jpg"
            image.save(path, "JPEG", quality=92, **with_exif_time(moment if exif else None))
            rows.append({"path": path, "series": series, "take": take})
            moment += datetime.timedelta(seconds=1)
        moment += datetime.timedelta(seconds=gap_seconds)
    return pd.DataFrame(rows)
