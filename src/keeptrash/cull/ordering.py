"""In which order the cull CSV and contact sheet list photos."""

import pandas as pd

# probability: the sheet from most to least likely keep, the CSV in folder order.
# uncertain: both nearest the keep threshold first, where the model is least sure and a person's label teaches it most.
ORDERS = ("probability", "uncertain")


def uncertain_first(scores: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Scored photos nearest the threshold first (ties by path, so the order is the same every run)."""
    distance = (scores["keep_probability"] - threshold).abs()
    order = pd.DataFrame({"distance": distance, "path": scores["path"].map(str)}).sort_values(["distance", "path"], kind="stable")
    return scores.loc[order.index].reset_index(drop=True)


def sheet_order(scores: pd.DataFrame, threshold: float, order: str) -> pd.DataFrame:
    if order == "uncertain":
        return uncertain_first(scores, threshold)
    return scores.sort_values("keep_probability", ascending=False, kind="stable")
