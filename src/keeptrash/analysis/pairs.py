"""Pairwise preferences: how often the model ranks the photo people preferred above the other one.

The pairs file is a CSV in the PhotoTriage style with the columns series, preferred, other: the
series groups photos of one scene, preferred and other are image paths relative to the CSV.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from keeptrash.errors import KeeptrashError

PAIR_COLUMNS = ("series", "preferred", "other")


def read_pairs(csv_path: Path) -> pd.DataFrame:
    """series, preferred, other with absolute paths; every photo must exist."""
    if not csv_path.is_file():
        raise KeeptrashError(f"{csv_path}: pairs file not found; fix analyze.pairs_csv or set it to \"\"")
    try:
        pairs = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise KeeptrashError(f"{csv_path}: not a readable CSV ({error}); expected columns {', '.join(PAIR_COLUMNS)}") from None
    missing = [column for column in PAIR_COLUMNS if column not in pairs.columns]
    if missing:
        raise KeeptrashError(f"{csv_path}: missing column(s) {', '.join(missing)}; expected {', '.join(PAIR_COLUMNS)}")
    for column in ("preferred", "other"):
        pairs[column] = [str((csv_path.parent / path).resolve()) for path in pairs[column]]
        absent = [path for path in pairs[column] if not Path(path).is_file()]
        if absent:
            raise KeeptrashError(f"{csv_path}: {column} photo {absent[0]} not found ({len(absent)} missing); paths are relative to the CSV")
    return pairs[list(PAIR_COLUMNS)]


def pair_agreement(pairs: pd.DataFrame, keep_probability: dict[str, float], seen_in_training: set[str]) -> dict:
    """Share of pairs ordered as people ordered them (ties count half), over pairs with no training photo and over all."""

    def agreement(rows: pd.DataFrame) -> float:
        if rows.empty:
            return np.nan
        preferred = rows["preferred"].map(keep_probability).to_numpy()
        other = rows["other"].map(keep_probability).to_numpy()
        return round(float(((preferred > other) + 0.5 * (preferred == other)).mean()), 4)

    scored = pairs[pairs["preferred"].isin(keep_probability.keys()) & pairs["other"].isin(keep_probability.keys())]
    unseen = scored[~scored["preferred"].isin(seen_in_training) & ~scored["other"].isin(seen_in_training)]
    return {
        "pairs": int(len(pairs)),
        "pairs_scored": int(len(scored)),
        "pairs_without_training_photos": int(len(unseen)),
        "agreement": agreement(unseen),
        "agreement_including_training_photos": agreement(scored),
    }
