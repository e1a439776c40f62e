"""Turn AVA votes and the user's own photos into one labelled table with train/val/test splits.

Sampling and splitting draw a seeded hash of each row's key rather than a shuffled permutation:
a photo keeps its place when others are added, so raising `max_ava` or adding own photos grows
the sample and the splits instead of reshuffling them.
"""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from keeptrash.ava import read_id_list
from keeptrash.errors import KeeptrashError
from keeptrash.images import list_images
from keeptrash.params import LabelsParams

KEEP, TRASH = 1, 0
SPLITS = ("train", "val", "test")
ALL_AVA = "all"


def stable_uniform(keys: pd.Series, seed: int) -> pd.Series:
    """A seeded pseudo-random number in [0, 1) per key that depends on nothing but the key and the seed."""
    return keys.map(lambda key: int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:13], 16) / 16**13)


def select_ava(metadata: pd.DataFrame, params: LabelsParams, pool: set[str] | None) -> pd.DataFrame:
    """Label AVA images by mean score, drop the ambiguous band, then sample `max_ava` stratified by label."""
    candidates = metadata if pool is None else metadata[metadata["image_id"].isin(pool)]
    clear = (candidates["mean_score"] - params.threshold).abs() >= params.margin
    candidates = candidates[clear].assign(label=(candidates["mean_score"] >= params.threshold).astype("int8"))
    candidates = candidates.assign(_rank=stable_uniform(candidates["image_id"], params.seed))
    if params.max_ava >= len(candidates):
        chosen = candidates
    else:
        shares = candidates["label"].value_counts(normalize=True).sort_index()
        quotas = np.floor(shares * params.max_ava).astype(int)
        # Largest remainders get the seats that flooring left over, so the total is exactly max_ava.
        leftover = params.max_ava - quotas.sum()
        for label in (shares * params.max_ava - quotas).sort_values(ascending=False).index[:leftover]:
            quotas[label] += 1
        chosen = pd.concat(
            group.nsmallest(quotas[label], "_rank") for label, group in candidates.groupby("label")
        )
    return pd.DataFrame(
        {
            "key": "ava:" + chosen["image_id"],
            "source": "ava",
            "image_id": chosen["image_id"],
            "path": pd.Series(pd.NA, index=chosen.index, dtype="string"),
            "score": chosen["mean_score"],
            "label": chosen["label"],
            "tag_1": chosen["tag_1"],
            "tag_2": chosen["tag_2"],
            "challenge": chosen["challenge"],
        }
    )


def _own_rows(paths: list[Path], labels: list[int], scores: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "key": [f"own:{path.as_posix()}" for path in paths],
            "source": "own",
            "image_id": pd.Series([pd.NA] * len(paths), dtype="string"),
            "path": pd.Series([path.as_posix() for path in paths], dtype="string"),
            "score": pd.Series(scores, dtype="float64"),
            "label": pd.Series(labels, dtype="int8"),
        }
    )


def own_folder_photos(own_dir: Path) -> pd.DataFrame:
    """Photos the user sorted by hand into own_dir/keep and own_dir/trash (either may be empty)."""
    if not own_dir.is_dir():
        raise KeeptrashError(
            f"{own_dir}: own-photos folder not found (labels.own_dir); create {own_dir}/keep and {own_dir}/trash, they may be empty"
        )
    keep, trash = list_images(own_dir / "keep"), list_images(own_dir / "trash")
    return _own_rows(keep + trash, [KEEP] * len(keep) + [TRASH] * len(trash), [np.nan] * (len(keep) + len(trash)))


def rated_own_photos(ratings_csv: Path, threshold: float) -> pd.DataFrame:
    """Photos rated by people: a CSV of `path,score` (path relative to the CSV); keep when score >= threshold."""
    try:
        # Blank lines are kept (then dropped below) so that row positions map to file lines.
        ratings = pd.read_csv(ratings_csv, dtype={"path": "string"}, skip_blank_lines=False)
    except FileNotFoundError:
        raise KeeptrashError(f"{ratings_csv}: ratings file not found (labels.rated_own_csv); set it to '' to use none") from None
    except pd.errors.EmptyDataError:
        raise KeeptrashError(f"{ratings_csv}: empty; it needs a header line 'path,score' and one line per photo") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise KeeptrashError(f"{ratings_csv}: not a readable CSV ({error})") from None
    except OSError as error:
        raise KeeptrashError(f"{ratings_csv}: cannot be read ({error.strerror}); labels.rated_own_csv must name a CSV file") from None
    missing = {"path", "score"} - set(ratings.columns)
    if missing:
        raise KeeptrashError(f"{ratings_csv}: needs columns 'path' and 'score', missing {', '.join(sorted(missing))}")
    ratings = ratings.dropna(how="all")
    line_of = ratings.index + 2  # +1 for the header, +1 for 1-based lines
    if ratings["path"].isna().any():
        raise KeeptrashError(f"{ratings_csv}:{line_of[ratings['path'].isna().to_numpy()][0]}: path is empty")
    scores = pd.to_numeric(ratings["score"], errors="coerce")
    if scores.isna().any():
        bad = scores.isna().to_numpy()
        raise KeeptrashError(f"{ratings_csv}:{line_of[bad][0]}: score must be a number, got {ratings['score'][bad].iloc[0]!r}")
    paths = [ratings_csv.parent / path for path in ratings["path"]]
    labels = (scores >= threshold).astype(int).tolist()
    return _own_rows(paths, labels, scores.tolist())


def assign_splits(table: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int) -> pd.Series:
    """Each photo's split follows from its own key alone, so it never moves when photos are added.

    Every source and class gets about `test_fraction` of its photos in test and `val_fraction` in val.
    """
    draw = stable_uniform(table["key"], seed)
    split = pd.Series("train", index=table.index, dtype="string")
    split[draw < test_fraction + val_fraction] = "val"
    split[draw < test_fraction] = "test"
    return split


def build_labels(metadata: pd.DataFrame, params: LabelsParams) -> pd.DataFrame:
    pool = None if params.ava_pool == ALL_AVA else read_id_list(Path(params.ava_pool))
    parts = [select_ava(metadata, params, pool), own_folder_photos(Path(params.own_dir))]
    if params.rated_own_csv:
        parts.append(rated_own_photos(Path(params.rated_own_csv), params.rated_own_threshold))
    table = pd.concat(parts, ignore_index=True)
    duplicated = table["key"][table["key"].duplicated()]
    if not duplicated.empty:
        raise KeeptrashError(f"{duplicated.iloc[0]} is labelled twice (own folder and ratings CSV?); keep one")
    if table.empty:
        raise KeeptrashError("no labelled photos: set labels.max_ava above 0 or add photos to labels.own_dir keep/ and trash/")
    table["split"] = assign_splits(table, params.val_fraction, params.test_fraction, params.seed)
    return table.sort_values("key", kind="stable").reset_index(drop=True)


def labels_summary(table: pd.DataFrame, metadata: pd.DataFrame, threshold: float) -> dict:
    """Counts per source, split and class; also the keep share over all AVA metadata, before any sampling."""
    counts = {}
    for source, by_source in table.groupby("source"):
        counts[source] = {
            split: {
                "keep": int((by_split["label"] == KEEP).sum()),
                "trash": int((by_split["label"] == TRASH).sum()),
            }
            for split, by_split in by_source.groupby("split")
        }
    return {
        "rows": int(len(table)),
        "keep_fraction": round(float(table["label"].mean()), 4),
        "keep_fraction_by_source": {
            source: round(float(group["label"].mean()), 4) for source, group in table.groupby("source")
        },
        "rows_by_split": {split: int((table["split"] == split).sum()) for split in SPLITS},
        "ava_metadata_keep_fraction": round(float((metadata["mean_score"] >= threshold).mean()), 4),
        "counts": counts,
    }
