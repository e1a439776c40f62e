"""Series of realistic takes made from real photos: does the model rank the good take first, and are series found?

Each photo becomes a series a photographer might shoot: the original, and takes that went wrong in the
ways takes do: a slight reframe with camera shake, under-exposure, missed focus, high-ISO noise, and a
heavily recompressed copy. The takes are written as JPEGs with EXIF capture times one second apart, the
series a few seconds to minutes apart, so grouping reads them exactly as it reads a camera's folder.
"""

import datetime
import io
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter
from sklearn.metrics import adjusted_rand_score

from keeptrash.analysis.degradation import exposure, motion_blur
from keeptrash.errors import KeeptrashError
from keeptrash.features.table import feature_table
from keeptrash.features.store import FeatureStore
from keeptrash.grouping import DATE_TIME_ORIGINAL, EXIF_IFD, EXIF_TIME_FORMAT, group_series, rank_in_groups, read_signatures
from keeptrash.images import file_digest, open_photo
from keeptrash.model.trained import TrainedModel
from keeptrash.params import FeaturesParams, GroupingParams

# Bump when a take or the way takes are written changes: the takes' features are cached by their bytes anyway,
# but series made by another version must not be compared with these.
SERIES_VERSION = 1
_START = datetime.datetime(2026, 6, 6, 14, 0, 0)
# Seconds between one series' last take and the next series' first: a photographer moving on, or turning round.
_SERIES_GAPS = (3, 5, 8, 15, 30, 60, 120, 600)


def _reframe_with_shake(image: Image.Image) -> Image.Image:
    """The frame moved by 4% and the camera shook during the exposure (a 9-pixel horizontal smear at 500 px)."""
    width, height = image.size
    dx, dy = round(width * 0.04), round(height * 0.02)
    moved = image.crop((dx, dy, width, height)).resize(image.size, Image.Resampling.LANCZOS)
    return motion_blur(moved, max(3, round(width / 55)))


def _missed_focus(image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(max(image.size) / 160))


def _high_iso_noise(image: Image.Image, seed: int) -> Image.Image:
    """Sensor noise at a high ISO: strong luminance noise plus some colour noise."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image, dtype=np.float64)
    luminance = rng.normal(0, 18, size=pixels.shape[:2])[..., None]
    colour = rng.normal(0, 8, size=pixels.shape)
    return Image.fromarray(np.clip((pixels + luminance + colour).round(), 0, 255).astype(np.uint8))


def _recompressed(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=12)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


ORIGINAL = "original"
# Every take of a series, from the photo itself: (name, make the take from the upright photo and a seed).
TAKES: dict[str, Callable[[Image.Image, int], Image.Image]] = {
    ORIGINAL: lambda image, seed: image,
    "reframe_shake": lambda image, seed: _reframe_with_shake(image),
    "underexposed": lambda image, seed: exposure(image, 0.4),
    "missed_focus": lambda image, seed: _missed_focus(image),
    "high_iso": _high_iso_noise,
    "recompressed": lambda image, seed: _recompressed(image),
}


def _exif_at(moment: datetime.datetime) -> Image.Exif:
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = moment.strftime(EXIF_TIME_FORMAT)
    return exif


def write_series(photos: list[Path], folder: Path, decode_side: int) -> pd.DataFrame:
    """One series per photo, written to folder as IMG_0001.jpg, ... in shooting order with EXIF times 1 s apart;
    a row per take: path, series (0, 1, ...), take, photo (its source) and capture time.

    The takes' order within a series rotates, so the original is not always the first frame, and the gaps
    between series cycle through _SERIES_GAPS, so some series follow each other closely enough for
    capture time alone to merge them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    names = list(TAKES)
    rows, moment, frame = [], _START, 0
    for series, photo in enumerate(photos):
        upright, _ = open_photo(photo, decode_side)
        upright.thumbnail((decode_side, decode_side))
        order = names[series % len(names):] + names[: series % len(names)]
        for take in order:
            frame += 1
            path = folder / f"IMG_{frame:04d}.jpg"
            TAKES[take](upright, series).save(path, "JPEG", quality=92, exif=_exif_at(moment))
            rows.append({"path": path, "series": series, "take": take, "photo": str(photo), "captured": moment.isoformat()})
            moment += datetime.timedelta(seconds=1)
        moment += datetime.timedelta(seconds=_SERIES_GAPS[series % len(_SERIES_GAPS)])
    return pd.DataFrame(rows)


def original_ranks(takes: pd.DataFrame) -> pd.Series:
    """The original's rank by keep probability in its own series (1 = first); a tie counts against the original."""
    ranks = {}
    for series, group in takes.groupby("series"):
        original = group.loc[group["take"] == ORIGINAL, "keep_probability"].iloc[0]
        others = group.loc[group["take"] != ORIGINAL, "keep_probability"]
        ranks[series] = 1 + int((others >= original).sum())
    return pd.Series(ranks, name="original_rank")


def _culling_rules(takes: pd.DataFrame, rank: np.ndarray, threshold: float) -> dict:
    """What each way of culling the folder keeps, against the people's rating of each series' photo.

    threshold: every photo on its own; best_of_1: the best of each series if it clears the threshold (what
    `keep_best_of` does); best_of_1_promoted: the best of each series always, the others if they clear it.
    A series is kept when any of its takes is; lesser takes kept are duplicates a person deletes by hand.
    """
    clears = takes["keep_probability"].to_numpy() >= threshold
    kept = {"threshold": clears, "best_of_1": clears & (rank == 1), "best_of_1_promoted": clears | (rank == 1)}
    original = (takes["take"] == ORIGINAL).to_numpy()
    worth_keeping = takes.groupby("series")["label"].first() == 1
    result = {}
    for rule, keep in kept.items():
        series_kept = pd.Series(keep).groupby(takes["series"].to_numpy()).any()
        result[rule] = {
            "keep_series_kept_share": _share(series_kept[worth_keeping]),
            "trash_series_kept_share": _share(series_kept[~worth_keeping]),
            "keep_originals_kept_share": _share(keep[original & takes["label"].eq(1).to_numpy()]),
            "lesser_takes_kept_share": _share(keep[~original]),
        }
    return result


def _share(kept: pd.Series | np.ndarray) -> float | None:
    """The share kept, or None (null in the metrics file) when there is nothing to share out."""
    return round(float(np.mean(kept)), 4) if len(kept) else None


def series_evaluation(takes: pd.DataFrame, threshold: float, grouping: GroupingParams, max_pixels: int) -> tuple[dict, pd.DataFrame]:
    """Metrics and a plot table from takes with path, series, take, label (of the photo) and keep_probability.

    Ranking: the share of series whose original ranks first, and its mean rank. Grouping: the adjusted
    Rand index of the series found in the whole folder against the true series, beside what capture time
    or the hash alone would find. Culling: what each rule keeps. Per take: mean keep probability, the share
    kept, and how often it beats the original.
    """
    ranks = original_ranks(takes)
    signatures = read_signatures(list(takes["path"]), max_pixels)
    found = group_series(signatures, grouping)
    time_only = group_series(signatures, GroupingParams(grouping.max_gap_seconds, 64))
    hash_only = group_series(signatures, GroupingParams(float("inf"), grouping.max_hash_distance))
    originals = takes.loc[takes["take"] == ORIGINAL, ["series", "keep_probability"]].rename(columns={"keep_probability": "original"})
    with_original = takes.merge(originals, on="series")
    per_take = (
        with_original.assign(
            kept=with_original["keep_probability"] >= threshold, beats=with_original["keep_probability"] > with_original["original"]
        )
        .groupby("take", sort=False)
        .agg(mean_keep_probability=("keep_probability", "mean"), kept_share=("kept", "mean"), beats_original_share=("beats", "mean"))
        .reindex(list(TAKES))
        .round(4)
        .reset_index()
    )
    metrics = {
        "version": SERIES_VERSION,
        "series": int(takes["series"].nunique()),
        "takes_per_series": len(TAKES),
        "original_first_share": round(float((ranks == 1).mean()), 4),
        "original_mean_rank": round(float(ranks.mean()), 4),
        "grouping_adjusted_rand_index": round(float(adjusted_rand_score(takes["series"], found)), 4),
        "grouping_ari_time_only": round(float(adjusted_rand_score(takes["series"], time_only)), 4),
        "grouping_ari_hash_only": round(float(adjusted_rand_score(takes["series"], hash_only)), 4),
        "groups_found": int(len(set(found))),
        "culling": _culling_rules(takes, rank_in_groups(found, takes["keep_probability"]), threshold),
        "per_take": per_take.set_index("take").to_dict("index"),
    }
    return metrics, per_take


def series_analysis(
    model: TrainedModel, photos: pd.DataFrame, features: FeaturesParams, store: FeatureStore, threshold: float,
    grouping: GroupingParams, max_pixels: int, decode_side: int,
) -> tuple[dict, pd.DataFrame]:
    """Series of takes from photos (path, label), written to a temporary folder, scored by the model and grouped.

    The takes are decoded at decode_side (their short side, at most the photo's own) and written as JPEGs;
    their features are cached by content like any photo's, so a rerun extracts nothing new.
    """
    with tempfile.TemporaryDirectory(prefix="keeptrash-series-") as folder:
        written = write_series([Path(path) for path in photos["path"]], Path(folder), decode_side)
        takes = written.merge(photos[["path", "label"]].rename(columns={"path": "photo"}).astype({"photo": str}), on="photo")
        digests = [file_digest(path) for path in takes["path"]]
        extracted, failures, _ = feature_table([str(path) for path in takes["path"]], digests, features, store, max_pixels)
        if failures:
            raise KeeptrashError(f"series of takes: a take does not decode ({next(iter(failures.values()))}); rerun dvc repro")
        scored = pd.DataFrame({"sha256": digests}).merge(extracted, on="sha256", how="left")
        takes = takes.assign(keep_probability=model.keep_probability(scored))
        return series_evaluation(takes, threshold, grouping, max_pixels)
