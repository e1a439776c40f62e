"""Test-split metrics of a trained model: what the benchmark stage reports."""

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from keeptrash.labelling import KEEP, TRASH

CLASS_NAMES = {KEEP: "keep", TRASH: "trash"}
# Fewer ranked pairs than this make a rank correlation noise, so it is reported as null.
MIN_ROWS_FOR_SPEARMAN = 5
SCORE_NAMES = {"ava": "ava_mean_score", "own": "own_rating"}


def rank_correlation(probabilities: np.ndarray, scores: pd.Series) -> float:
    rated = scores.notna().to_numpy()
    if rated.sum() < MIN_ROWS_FOR_SPEARMAN:
        return np.nan
    return float(spearmanr(probabilities[rated], scores[rated]).statistic)


def classification_metrics(labels: pd.Series, probabilities: np.ndarray, threshold: float) -> dict:
    """Balanced accuracy and ROC AUC need both classes present; with one they are null."""
    predicted = (probabilities >= threshold).astype(int)
    both_classes = labels.nunique() == 2
    return {
        "rows": int(len(labels)),
        "accuracy": round(float(accuracy_score(labels, predicted)), 4),
        "balanced_accuracy": round(float(balanced_accuracy_score(labels, predicted)), 4) if both_classes else np.nan,
        "roc_auc": round(float(roc_auc_score(labels, probabilities)), 4) if both_classes else np.nan,
    }


def benchmark_metrics(test: pd.DataFrame, probabilities: np.ndarray, train_labels: pd.Series, threshold: float) -> dict:
    """test has label, source and score (AVA mean score or own rating) per row."""
    labels = test["label"]
    predicted = (probabilities >= threshold).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=[KEEP, TRASH], zero_division=0)
    majority = int(train_labels.mode().iloc[0])
    per_class = {
        CLASS_NAMES[label]: {
            "precision": round(float(precision[i]), 4),
            "recall": round(float(recall[i]), 4),
            "f1": round(float(f1[i]), 4),
            "support": int(support[i]),
        }
        for i, label in enumerate([KEEP, TRASH])
    }
    per_source = {}
    for source, rows in test.groupby("source"):
        selected = np.flatnonzero((test["source"] == source).to_numpy())
        per_source[source] = classification_metrics(rows["label"], probabilities[selected], threshold)
        per_source[source][f"spearman_vs_{SCORE_NAMES[source]}"] = round(rank_correlation(probabilities[selected], rows["score"]), 4)
    return {
        **classification_metrics(labels, probabilities, threshold),
        "decision_threshold": threshold,
        "majority_class": CLASS_NAMES[majority],
        "majority_baseline_accuracy": round(float((labels == majority).mean()), 4),
        "per_class": per_class,
        "per_source": per_source,
    }
