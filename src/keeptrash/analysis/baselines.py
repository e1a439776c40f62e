"""What CatBoost adds: no-learning image-quality scores and a logistic-regression probe, on the same splits."""

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from keeptrash.benchmark.evaluation import classification_metrics, rank_correlation
from keeptrash.model.ridge import CHUNK_ROWS, row_chunks
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


def as_float32(rows: pd.DataFrame) -> np.ndarray:
    """A frame's values as one C-ordered float32 array, converted a chunk of rows at a time: pandas would build the
    float16 embedding's float32 copy and then the array, each as large as the result."""
    values = np.empty(rows.shape, np.float32)
    for part, chunk in row_chunks(rows, CHUNK_ROWS, np.float32):
        values[part] = chunk
    return values


def fit_probe(train: pd.DataFrame, val: pd.DataFrame, columns: list[str], seed: int) -> Pipeline:
    """Standardised features and L2 logistic regression, its strength chosen by validation ROC AUC.

    The probe works in float32 (the embedding holds float16 values to begin with), and the training rows are converted
    and standardised once, in place, for every strength: at AVA scale each copy of them is gigabytes."""
    to_float32, scaler = FunctionTransformer(as_float32), StandardScaler(copy=False)
    inputs = to_float32.fit_transform(train[columns])
    # Fitted a chunk at a time: in one go the scaler would accumulate a float64 copy of all the rows.
    for start in range(0, len(inputs), CHUNK_ROWS):
        scaler.partial_fit(inputs[start : start + CHUNK_ROWS])
    inputs = scaler.transform(inputs)
    val_inputs = scaler.transform(to_float32.transform(val[columns]))
    best, best_auc = None, -np.inf
    for strength in PROBE_C_GRID:
        logistic = LogisticRegression(C=strength, max_iter=5000, random_state=seed).fit(inputs, train["label"])
        auc = roc_auc_score(val["label"], logistic.predict_proba(val_inputs)[:, 1]) if val["label"].nunique() == 2 else 0.0
        if auc > best_auc:
            best, best_auc = logistic, auc
    return make_pipeline(to_float32, scaler, best)


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
