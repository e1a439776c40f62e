"""Validation log loss and rank correlation after every boosting iteration, and the best iteration."""

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier
from sklearn.metrics import log_loss

from keeptrash.labels import KEEP, TRASH
from keeptrash.benchmark.evaluation import spearman_within_sources
from keeptrash.model.model_inputs import model_frame


def validation_curve(model: CatBoostClassifier, val: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Per iteration: validation log loss and Spearman(keep probability, score) within each source.

    Also returns the best iterations by each (0-based, like CatBoost's get_best_iteration) and a
    two-point vertical line per curve at the log-loss-best iteration, to draw on the plots.
    """
    rows = []
    for step, probabilities in enumerate(model.staged_predict_proba(model_frame(model, val), eval_period=1)):
        keep = probabilities[:, 1]
        rows.append(
            {
                "step": step,
                "val_logloss": float(log_loss(val["label"], keep, labels=[TRASH, KEEP])),
                "val_spearman": spearman_within_sources(keep, val) if np.ptp(keep) > 0 else np.nan,
            }
        )
    curve = pd.DataFrame(rows).round(5)
    best_loss = int(curve["val_logloss"].idxmin())
    best_spearman = int(curve["val_spearman"].idxmax()) if curve["val_spearman"].notna().any() else None
    marker = pd.DataFrame(
        {
            "step": [best_loss, best_loss],
            "val_logloss": [curve["val_logloss"].min(), curve["val_logloss"].max()],
            "val_spearman": [curve["val_spearman"].min(), curve["val_spearman"].max()],
        }
    )
    metrics = {
        "best_iteration_by_val_logloss": best_loss,
        "best_val_logloss": round(float(curve["val_logloss"].min()), 4),
        "best_iteration_by_val_spearman": best_spearman,
        "best_val_spearman": round(float(curve["val_spearman"].max()), 4),
        "final_val_spearman": round(float(curve["val_spearman"].iloc[-1]), 4),
    }
    return curve, marker, metrics
