"""The paired comparison of two revisions' test predictions: which photos both scored, each headline
metric's change with its paired-bootstrap interval and verdict, and the photos whose decision changed."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from keeptrash.benchmark.evaluation import paired_comparison, ratings_by_source


@dataclass(frozen=True)
class Pairing:
    photos: pd.DataFrame  # key, source, score, label, probability_base, probability_new
    only_base: int  # test photos the base scored that the new revision did not
    only_new: int
    relabelled: int  # photos in both whose label differs (a changed labels.threshold); left out


def pair_predictions(base: pd.DataFrame, new: pd.DataFrame) -> Pairing:
    """The test photos both revisions scored with the same label: the only fair ground for a paired test."""
    both = new.merge(base[["key", "label", "keep_probability"]], on="key", suffixes=("_new", "_base"))
    same_label = both["label_new"] == both["label_base"]
    photos = both[same_label].rename(
        columns={"label_new": "label", "keep_probability_new": "probability_new", "keep_probability_base": "probability_base"}
    )
    return Pairing(
        photos[["key", "source", "score", "label", "probability_base", "probability_new"]].sort_values("key").reset_index(drop=True),
        only_base=int((~base["key"].isin(new["key"])).sum()),
        only_new=int((~new["key"].isin(base["key"])).sum()),
        relabelled=int((~same_label).sum()),
    )


def compare(pairing: Pairing, base_threshold: float, new_threshold: float) -> dict:
    photos = pairing.photos
    return paired_comparison(
        photos["label"].to_numpy(), ratings_by_source(photos),
        photos["probability_base"].to_numpy(), base_threshold, photos["probability_new"].to_numpy(), new_threshold,
    )


def changed_decisions(pairing: Pairing, base_threshold: float, new_threshold: float) -> pd.DataFrame:
    """Photos kept by one revision and trashed by the other, the largest swing in probability first."""
    photos = pairing.photos
    keep_base = photos["probability_base"] >= base_threshold
    keep_new = photos["probability_new"] >= new_threshold
    changed = photos[keep_base != keep_new].assign(
        swing=lambda rows: (rows["probability_new"] - rows["probability_base"]).abs(),
        decision_base=np.where(keep_base, "keep", "trash")[keep_base != keep_new],
        decision_new=np.where(keep_new, "keep", "trash")[keep_base != keep_new],
    )
    return changed.sort_values(["swing", "key"], ascending=[False, True], kind="stable").drop(columns="swing").reset_index(drop=True)
