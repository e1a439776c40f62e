"""The head experiments of issue 13: train params -> cross-validated mean +- sd, and the test-split figures.

Run from the repo root after `dvc repro` (it reads data/labels.parquet, manifest and features):
    python benchmarks/head_experiments.py
Each row changes the committed train params as shown. Selection is by the cross-validated mean on
train+val; the test figures (fitted on train, threshold from val, as the train stage does) carry a
95% bootstrap interval and are never used to choose.
"""

import dataclasses
import time

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, roc_auc_score

from keeptrash import paths
from keeptrash.model.cross_validation import cross_validate
from keeptrash.io import read_table
from keeptrash.model.model_inputs import within_source_rank
from keeptrash.params import load_params
from keeptrash.model.training import decision_threshold, fit_classifier, join_features, training_inputs

EXPERIMENTS = {
    "shipped head (PCA 32 + statistics)": {"ridge_score": False},
    "PCA 8 + statistics": {"ridge_score": False, "pca_components": 8},
    "PCA 64 + statistics": {"ridge_score": False, "pca_components": 64},
    "ridge score + statistics": {"ridge_score": True, "feature_set": "stats"},
    "ridge score + PCA 8 + statistics": {"ridge_score": True, "pca_components": 8},
    "ridge score + PCA 32 + statistics": {"ridge_score": True, "pca_components": 32},
}
BOOTSTRAP_SAMPLES = 1000


def bootstrap_interval(statistic, *columns: np.ndarray, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(BOOTSTRAP_SAMPLES):
        rows = rng.integers(0, len(columns[0]), len(columns[0]))
        sample = [column[rows] for column in columns]
        if len(np.unique(sample[0])) == 2 or statistic is not roc_auc_score:
            values.append(statistic(*sample))
    return tuple(np.nanpercentile(values, [2.5, 97.5]))


def spearman(probability: np.ndarray, rank: np.ndarray) -> float:
    rated = np.isfinite(rank)
    return float(spearmanr(probability[rated], rank[rated]).statistic)


def test_figures(table: pd.DataFrame, params) -> dict:
    _, inputs, columns = training_inputs(table, params)
    train, val, test = (inputs[inputs["split"] == split] for split in ("train", "val", "test"))
    model = fit_classifier(train, val, columns, params)
    threshold = decision_threshold(model, val, columns, params)
    probability = model.predict_proba(test[columns])[:, 1]
    labels = test["label"].to_numpy()
    rank = within_source_rank(table[table["split"] == "test"]).to_numpy()
    return {
        "accuracy": (accuracy_score(labels, probability >= threshold), bootstrap_interval(lambda y, p: accuracy_score(y, p >= threshold), labels, probability)),
        "roc_auc": (roc_auc_score(labels, probability), bootstrap_interval(roc_auc_score, labels, probability)),
        "spearman": (spearman(probability, rank), bootstrap_interval(spearman, probability, rank)),
    }


def main() -> None:
    params = load_params()
    table, _, _ = join_features(read_table(paths.LABELS, "labels"), read_table(paths.MANIFEST, "download"), read_table(paths.FEATURES, "features"))
    print(f"features: {params.features.backbone} {params.features.pooling} at {params.features.resolution} px; "
          f"{params.train.cv_folds}-fold x {params.train.cv_repeats} cross-validation on train+val\n")
    print("| head | CV accuracy | CV ROC AUC | CV Spearman | CV gap (points) | test accuracy | test ROC AUC | test Spearman | CV seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, changes in EXPERIMENTS.items():
        train_params = dataclasses.replace(params.train, **changes)
        started = time.perf_counter()
        cv = cross_validate(table, train_params)
        seconds = time.perf_counter() - started
        test = test_figures(table, train_params)
        cells = [f"{cv[metric]['mean']:.3f} ± {cv[metric]['sd']:.3f}" for metric in ("accuracy", "roc_auc", "spearman")]
        cells.append(f"{cv['overfitting_gap']['mean']:.1f} ± {cv['overfitting_gap']['sd']:.1f}")
        cells += [f"{value:.3f} [{low:.2f}, {high:.2f}]" for value, (low, high) in test.values()]
        print(f"| {name} | " + " | ".join(cells) + f" | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
