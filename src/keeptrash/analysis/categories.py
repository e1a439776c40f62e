"""Where the model fails: metrics per AVA semantic tag and per photo source, with counts."""

import numpy as np
import pandas as pd

from keeptrash.benchmark.evaluation import classification_metrics


def per_category(test: pd.DataFrame, probabilities: np.ndarray, threshold: float, columns: list[str]) -> pd.DataFrame:
    """Rows, keep fraction, accuracy, balanced accuracy and ROC AUC per value found in any of `columns`.

    A photo with two tags counts under both. AUC and balanced accuracy are null for a category
    holding one class only.
    """
    scored = test.assign(keep_probability=probabilities)
    long = pd.concat([scored.assign(category=scored[column]) for column in columns], ignore_index=True)
    long = long[long["category"].notna()]
    rows = []
    for category, group in long.groupby("category", sort=True):
        metrics = classification_metrics(group["label"], group["keep_probability"].to_numpy(), threshold)
        rows.append({"category": str(category), "keep_fraction": round(float(group["label"].mean()), 4), **metrics})
    return pd.DataFrame(rows, columns=["category", "keep_fraction", "rows", "accuracy", "balanced_accuracy", "roc_auc"])


def as_metrics(table: pd.DataFrame) -> dict:
    return {row.pop("category"): row for row in table.to_dict("records")}
