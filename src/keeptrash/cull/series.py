"""Series of near-identical shots in a culled folder: each photo's series and rank, and keeping the best of each."""

import pandas as pd

from keeptrash.cull import KEEP, TRASH
from keeptrash.grouping import group_series, rank_in_groups, read_signatures
from keeptrash.params import GroupingParams


def add_series(scores: pd.DataFrame, params: GroupingParams, max_pixels: int) -> pd.DataFrame:
    """scores with `group` (a series id, shared by near-identical shots; a lone photo has its own) and `group_rank`
    (1 = the highest keep probability in the series)."""
    groups = group_series(read_signatures(list(scores["path"]), max_pixels), params)
    with_series = scores.copy()
    at = list(scores.columns).index("decision") + 1
    with_series.insert(at, "group", pd.array(groups, dtype="Int64"))
    with_series.insert(at + 1, "group_rank", pd.array(rank_in_groups(groups, scores["keep_probability"]), dtype="Int64"))
    return with_series


def series_summary(scores: pd.DataFrame) -> str:
    sizes = scores["group"].value_counts()
    return f"{int((sizes > 1).sum())} series of near-identical shots ({int(sizes[sizes > 1].sum())} photos)"


def keep_best_of(scores: pd.DataFrame, best_of: int) -> pd.DataFrame:
    """At most the best `best_of` shots of each series are kept: a series' lesser shots go to trash even when they
    clear the threshold, because a better take of the same moment is kept. Lone photos keep the model's decision.

    Nothing is promoted: the best of a series still has to clear the threshold, so a burst of misfires stays trash.
    """
    beaten = (scores["group_rank"] > best_of) & (scores["decision"] == KEEP)
    return scores.assign(
        decision=scores["decision"].where(~beaten, TRASH),
        reason=scores["reason"].where(~beaten, f"not among the best {best_of} of its series (group_rank " + scores["group_rank"].astype(str) + ")"),
    )
