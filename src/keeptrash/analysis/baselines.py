"""What CatBoost adds: no-learning image-quality scores and a logistic-regression probe, on the same splits."""

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from keeptrash.benchmark.evaluation import classification_metrics, rank_correlation
from keeptrash.model.training import choose_threshold

# Classic no-reference quality cues, each a score where higher should mean "keep".
NO_LEARNING_SCORES = {
    "sharpness": lambda table: table["sharpness"],
    "unclipped": lambda table: -(table["highlights_clipped"] + table["shadows_clipped"]),
}
# Inverse regularisation strengths tried for the probe; the best validation ROC AUC wins.
PROBE_C_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 1.0)


def scored_metrics(val: pd.DataFrame, val_scores: np.ndarray, test: pd.DataFrame, test_scores: np.ndarray) -> dict:
    """Test metrics of any score, thresholded where it gives the best balanced accuracy on validation."""
    threshold = choose_threshold(val["label"], val_scores)
    return {
        **classification_metrics(test["label"], test_scores, threshold),
        "spearman_vs_own_rating": round(
            rank_correlation(test_scores[(test["source"] == "own").to_numpy()], test.loc[test["source"] == "own", "score"]), 4
        ),
    }


def fit_probe(train: pd.DataFrame, val: pd.DataFrame, columns: list[str], seed: int):
    """Standardised features and L2 logistic regression, its strength chosen by validation ROC AUC.

    The probe works in float32, standardising its own copy in place: at AVA scale the training rows' features in
    float64, twice over, would be most of a 24 GB machine, and the embedding holds float16 values to begin with."""
    best, best_auc = None, -np.inf
    for strength in PROBE_C_GRID:
        probe = make_pipeline(
            FunctionTransformer(np.asarray, kw_args={"dtype": np.float32}),
            StandardScaler(copy=False),
            LogisticRegression(C=strength, max_iter=5000, random_state=seed),
        )
        probe.fit(train[columns], train["label"])
        auc = roc_auc_score(val["label"], probe.predict_proba(val[columns])[:, 1]) if val["label"].nunique() == 2 else 0.0
        if auc > best_auc:
            best, best_auc = probe, auc
    return best


def baseline_metrics(train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame, columns: list[str], seed: int) -> dict:
    results = {
        name: scored_metrics(val, score(val).to_numpy(), test, score(test).to_numpy()) for name, score in NO_LEARNING_SCORES.items()
    }
    probe = fit_probe(train, val, columns, seed)
    results["logistic_probe"] = {
        **scored_metrics(val, probe.predict_proba(val[columns])[:, 1], test, probe.predict_proba(test[columns])[:, 1]),
        "C": float(probe[-1].C),
    }
    return results
