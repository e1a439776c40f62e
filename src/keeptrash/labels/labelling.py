"""Turn AVA votes and the user's own photos into one labelled table with train/val/test splits.

Sampling and splitting draw a seeded hash of each row's key rather than a shuffled permutation:
a photo keeps its place when others are added, so raising `max_ava` or adding own photos grows
the sample and the splits instead of reshuffling them.

Own photos are one photo per content: byte-identical files (a copy under another name, a ratings row
naming the file by another path) are deduplicated by sha256 before splitting, so identical bytes can
never sit in two splits or carry two labels (see `deduplicate`).
"""

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from keeptrash.metadata.ava import read_id_list
from keeptrash.errors import KeeptrashError
from keeptrash.grouping import SeriesSplits, keep_series_together
from keeptrash.images import list_images, readable_file_digest
from keeptrash.labels import KEEP, TRASH
from keeptrash.labels.own_decisions import DecisionsReport, apply_decisions, read_decisions
from keeptrash.labels.xmp_flags import XmpReport, apply_xmp
from keeptrash.params import GroupingParams, LabelsParams

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
    paths = [Path(os.path.normpath(path)) for path in paths]
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


def unsorted_own_photos(own_dir: Path) -> pd.DataFrame:
    """Photos anywhere in own_dir but keep/ and trash/ (copied there to be reviewed): labelled only once a person
    decides them on the contact sheet (labels.own_decisions); until then their label is a placeholder."""
    sorted_folders = (own_dir / "keep", own_dir / "trash")
    paths = [path for path in list_images(own_dir) if not any(path.is_relative_to(folder) for folder in sorted_folders)]
    return _own_rows(paths, [TRASH] * len(paths), [np.nan] * len(paths))


def _leaves_folder(path: str) -> bool:
    normal = os.path.normpath(path)
    return os.path.isabs(path) or normal == os.pardir or normal.startswith(os.pardir + os.sep)


def _not_a_number(given: object) -> str:
    if pd.isna(given) or not str(given).strip():
        return "an empty cell; give the photo a score or remove its row"
    if np.isinf(pd.to_numeric(given, errors="coerce")):
        return f"{given!r}, which is infinite"
    return f"{given!r}, which is not a number"


def rated_own_photos(ratings_csv: Path, threshold: float, allow_outside: bool = False) -> pd.DataFrame:
    """Photos rated by people: a CSV of `path,score` (path relative to the CSV); keep when score >= threshold.

    Paths that leave the CSV's folder (`..`, absolute) are refused unless allow_outside: a CSV from
    elsewhere must not make the pipeline read and record any file on the machine.
    """
    try:
        # Blank lines are kept (then dropped below) so that row positions map to file lines.
        # Scores are read as the text written, so that a bad one ("nan", "n/a", "high") is quoted as it is.
        ratings = pd.read_csv(
            ratings_csv, dtype={"path": "string", "score": str}, skip_blank_lines=False, keep_default_na=False,
            na_values={"path": [""], "score": [""]},
        )
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
    bad = ~np.isfinite(scores.to_numpy(dtype="float64"))
    if bad.any():
        raise KeeptrashError(f"{ratings_csv}:{line_of[bad][0]}: score must be a number, got {_not_a_number(ratings['score'][bad].iloc[0])}")
    if not allow_outside:
        outside = ratings["path"].map(_leaves_folder).to_numpy()
        if outside.any():
            raise KeeptrashError(
                f"{ratings_csv}:{line_of[outside][0]}: path {ratings['path'][outside].iloc[0]!r} leaves the CSV's folder; "
                f"move the photo under {ratings_csv.parent} or set labels.allow_paths_outside_csv: true"
            )
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


@dataclass
class Duplicates:
    """Own photos with identical bytes, and what became of them (see `deduplicate`)."""

    rows_dropped: int = 0  # copies removed: the photo stays once
    conflicts_settled_by_folder: int = 0  # photos a rating labelled otherwise than their keep/trash folder
    conflicting_photos_dropped: int = 0  # photos labelled both keep and trash at the same level: left out
    notes: list[str] = field(default_factory=list)  # one line per conflict, for the stage's output

    def summary(self) -> dict:
        return {
            "rows_dropped": self.rows_dropped,
            "conflicts_settled_by_folder": self.conflicts_settled_by_folder,
            "conflicting_photos_dropped": self.conflicting_photos_dropped,
        }


def deduplicate(table: pd.DataFrame, sorted_by_hand: pd.Series) -> tuple[pd.DataFrame, Duplicates]:
    """One row per own photo content (sha256); files that cannot be read count as their own path.

    The rule for identical bytes listed more than once: a hand-sorted keep/trash folder label decides over a
    rating (the user judged that photo directly; a rating only becomes a label through a threshold). If the
    rows that decide agree, the first of them by key stays and the others are dropped; if they disagree (the
    same photo in keep/ and trash/, or rated on both sides of the threshold), no label can be trusted and the
    photo is left out. The rows that stay keep their own key's split, so unique photos never move.
    """
    contents = table["key"].astype(object)
    own = table.loc[table["source"] == "own", ["path", "key"]]
    hashing = tqdm(own.itertuples(), total=len(own), desc="hashing own photos", unit="img", disable=None)
    contents[own.index] = [readable_file_digest(Path(row.path)) or row.key for row in hashing]
    duplicates, dropped = Duplicates(), []
    repeated = contents.duplicated(keep=False)
    for _, group in table[repeated].groupby(contents[repeated], sort=False):
        by_hand = sorted_by_hand[group.index]
        deciding = group[by_hand] if by_hand.any() else group
        places = ", ".join(group["path"].sort_values())
        if deciding["label"].nunique() > 1:
            dropped.extend(group.index)
            duplicates.conflicting_photos_dropped += 1
            duplicates.notes.append(f"identical photos labelled both keep and trash, left out: {places}")
            continue
        survivor = deciding["key"].idxmin()
        dropped.extend(index for index in group.index if index != survivor)
        if group["label"].nunique() > 1:
            duplicates.conflicts_settled_by_folder += 1
            duplicates.notes.append(f"identical photos, the folder label decides over the rating: {places}")
    duplicates.rows_dropped = len(dropped)
    return table.drop(index=dropped), duplicates


@dataclass
class Labels:
    table: pd.DataFrame
    duplicates: Duplicates
    decisions: DecisionsReport = field(default_factory=DecisionsReport)
    series: SeriesSplits | None = None  # own photos' near-duplicate series, each kept within one split
    xmp: XmpReport = field(default_factory=XmpReport)  # past culls read from the own photos' XMP (labels.own_xmp)


def _rows_from(parts: list[pd.DataFrame], part: pd.DataFrame) -> np.ndarray:
    """Which rows of pd.concat(parts) came from part."""
    return np.concatenate([np.full(len(other), other is part) for other in parts])


def build_labels(metadata: pd.DataFrame, params: LabelsParams, grouping: GroupingParams = GroupingParams(), max_pixels: int = 100_000_000) -> Labels:
    pool = None if params.ava_pool == ALL_AVA else read_id_list(Path(params.ava_pool))
    folders = own_folder_photos(Path(params.own_dir))
    parts = [select_ava(metadata, params, pool), folders]
    if params.rated_own_csv:
        parts.append(rated_own_photos(Path(params.rated_own_csv), params.rated_own_threshold, params.allow_paths_outside_csv))
    decisions, report = read_decisions([Path(path) for path in params.own_decisions], Path(params.own_dir))
    unsorted = unsorted_own_photos(Path(params.own_dir)) if len(decisions) or params.own_xmp else folders.iloc[:0]
    unsorted = unsorted[~unsorted["path"].isin(pd.concat(parts)["path"])]  # e.g. rated photos kept in own_dir
    parts.append(unsorted)
    table = pd.concat(parts, ignore_index=True)
    sorted_by_hand, waiting = (pd.Series(_rows_from(parts, part), index=table.index) for part in (folders, unsorted))
    xmp_labelled, xmp = pd.Series(False, index=table.index), XmpReport()
    if params.own_xmp:
        table, xmp_labelled, xmp = apply_xmp(table, sorted_by_hand | waiting, sorted_by_hand, params.own_xmp_keep_stars, max_pixels)
    # Before deduplicating: every copy of a decided photo gets the decision, so its copies agree. A decision on the
    # contact sheet overrides the XMP: it is the person's newest verdict, given to keeptrash itself.
    table, decided = apply_decisions(table, decisions, report, unlabelled=waiting & ~xmp_labelled)
    table, duplicates = deduplicate(table[~waiting | xmp_labelled | decided], sorted_by_hand)
    if table.empty:
        raise KeeptrashError("no labelled photos: set labels.max_ava above 0 or add photos to labels.own_dir keep/ and trash/")
    table["split"] = assign_splits(table, params.val_fraction, params.test_fraction, params.seed)
    own = table["source"] == "own"
    series = keep_series_together(table.loc[own, "key"], table.loc[own, "path"], table.loc[own, "split"], grouping, max_pixels)
    table.loc[own, "split"] = series.split
    return Labels(table.sort_values("key", kind="stable").reset_index(drop=True), duplicates, report, series, xmp)


def labels_summary(labels: Labels, metadata: pd.DataFrame, threshold: float) -> dict:
    """Counts per source, split and class; duplicates dropped; the keep share over all AVA metadata, before sampling."""
    table = labels.table
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
        "duplicates": labels.duplicates.summary(),
        "own_decisions": labels.decisions.summary(),
        "own_xmp": labels.xmp.summary(),
        "near_duplicate_series": labels.series.summary() if labels.series else {},
    }
