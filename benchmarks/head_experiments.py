"""The head experiments of issue 13: train params -> cross-validated mean +- sd, and the test-split figures.

Run from the repo root after `dvc repro` (it reads data/labels.parquet, manifest and features):
    python benchmarks/head_experiments.py
Each row changes the committed train params as shown; the last row is the ridge score alone, for reference. Selection is by the cross-validated mean on
train+val; the test figures (fitted on train, threshold from val, as the train stage does) carry a
95% bootstrap interval and are never used to choose.
"""

import dataclasses
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from keeptrash import paths
from keeptrash.model.cross_validation import cross_validate, cv_folds
from keeptrash.io import read_table
from keeptrash.benchmark.evaluation import headline_with_intervals, ratings_by_source, spearman_within_sources
from keeptrash.model.model_inputs import EMBEDDING_PREFIX, RidgeScore, score_target
from keeptrash.params import load_params
from keeptrash.model.training import NOISE_COPY, decision_threshold, fit_classifier, join_features, training_inputs

EXPERIMENTS = {
    # Classification has no score target to lower, so its rows learn nothing from the noisy copies.
    "classify: PCA 32 + statistics (no ridge score)": {"objective": "classify", "ridge_score": False, "feature_set": "all", "pca_components": 32, "noise_penalty": 0.0},
    "regress: PCA 32 + statistics (no ridge score)": {"objective": "regress", "ridge_score": False, "feature_set": "all", "pca_components": 32},
    "classify: ridge score + statistics (issue 13's first default)": {"objective": "classify", "noise_penalty": 0.0},
    "regress: ridge score + statistics, rank target (issue 13's second default)": {"objective": "regress", "target_scale": "rank", "noise_penalty": 0.0},
    "regress: ridge score + statistics, standardised score (issue 13's third default)": {"objective": "regress", "target_scale": "zscore", "noise_penalty": 0.0},
    "regress: standardised score, noise copies a standard deviation below their photos": {"objective": "regress", "target_scale": "zscore", "noise_penalty": 1.0},
    "regress: the final map weighed as much as the blocks in the ridge": {"objective": "regress", "final_map_weight": 1.0},
    "regress: ridge score + PCA 8 + statistics": {"objective": "regress", "feature_set": "all", "pca_components": 8},
    "regress: depth 4": {"objective": "regress", "depth": 4},
    "regress: l2_leaf_reg 10": {"objective": "regress", "l2_leaf_reg": 10.0},
    "regress: 600 iterations": {"objective": "regress", "iterations": 600},
    "regress: no monotone faults": {"objective": "regress", "monotone_faults": False},
}


def with_intervals(labels: np.ndarray, score: np.ndarray, threshold: float, test: pd.DataFrame) -> dict:
    """Test accuracy, ROC AUC and Spearman (within each source) with the benchmark stage's own 95% bootstrap intervals."""
    figures = headline_with_intervals(labels, score, threshold, ratings_by_source(test))
    return {name: (figures[name]["value"], tuple(figures[name]["ci95"])) for name in ("accuracy", "roc_auc", "spearman")}


def test_figures(table: pd.DataFrame, params, noise_copies: pd.DataFrame) -> dict:
    _, inputs, columns = training_inputs(table, params, noise_copies)
    train, val, test = (inputs[inputs["split"] == split] for split in ("train", "val", "test"))
    model = fit_classifier(train, val, columns, params, inputs[inputs["split"] == NOISE_COPY])
    threshold = decision_threshold(model, val, columns, params)
    probability = model.predict_proba(test[columns])[:, 1]
    return with_intervals(test["label"].to_numpy(), probability, threshold, table[table["split"] == "test"].reset_index(drop=True))


def ridge_reference(table: pd.DataFrame, params) -> tuple[dict, dict]:
    """The ridge score alone (no CatBoost), on the same folds and the same test split: what the embedding gives a linear model."""
    pool = table[table["split"].isin(("train", "val"))].reset_index(drop=True)
    per_fold = []
    for fitted, held_out in cv_folds(pool["label"], params.cv_folds, params.cv_repeats, params.seed):
        ridge, _ = RidgeScore.fit(embedding(pool.iloc[fitted]), score_target(pool.iloc[fitted], params.target_scale))
        rows = pool.iloc[held_out].reset_index(drop=True)
        score = ridge.apply(embedding(rows))
        per_fold.append({"roc_auc": roc_auc_score(rows["label"], score), "spearman": spearman_within_sources(score, rows)})
    cv = {name: {"mean": np.mean([fold[name] for fold in per_fold]), "sd": np.std([fold[name] for fold in per_fold], ddof=1)} for name in ("roc_auc", "spearman")}
    train, test = table[table["split"] == "train"], table[table["split"] == "test"].reset_index(drop=True)
    ridge, _ = RidgeScore.fit(embedding(train), score_target(train, params.target_scale))
    # The ridge score is no probability: its accuracy at any threshold is left out of the table.
    return cv, with_intervals(test["label"].to_numpy(), ridge.apply(embedding(test)), 0.0, test)


def embedding(rows: pd.DataFrame) -> np.ndarray:
    return rows[[column for column in rows.columns if column.startswith(EMBEDDING_PREFIX)]].to_numpy(dtype=np.float64)


def main() -> None:
    params = load_params()
    table, _, _ = join_features(read_table(paths.LABELS, "labels"), read_table(paths.MANIFEST, "download"), read_table(paths.FEATURES, "features"))
    noise_copies = read_table(paths.NOISE_COPIES, "features")
    print(f"features: {params.features.backbone} {params.features.pooling} at {params.features.resolution} px; "
          f"{params.train.cv_folds}-fold x {params.train.cv_repeats} cross-validation on train+val; test split of "
          f"{int((table['split'] == 'test').sum())} photos with 95% bootstrap intervals\n")
    print("| head | params changed from params.yaml | CV Spearman | CV ROC AUC | CV accuracy | CV gap (points) | test Spearman | test ROC AUC | test accuracy | CV seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, changes in EXPERIMENTS.items():
        train_params = dataclasses.replace(params.train, **changes)
        started = time.perf_counter()
        cv = cross_validate(table, train_params, noise_copies)
        seconds = time.perf_counter() - started
        test = test_figures(table, train_params, noise_copies)
        cells = [", ".join(f"{key}={value}" for key, value in changes.items())]
        cells += [f"{cv[metric]['mean']:.3f} ± {cv[metric]['sd']:.3f}" for metric in ("spearman", "roc_auc", "accuracy")]
        cells.append(f"{cv['overfitting_gap']['mean']:.1f} ± {cv['overfitting_gap']['sd']:.1f}")
        cells += [f"{value:.3f} [{low:.2f}, {high:.2f}]" for value, (low, high) in (test[metric] for metric in ("spearman", "roc_auc", "accuracy"))]
        print(f"| {name} | " + " | ".join(cells) + f" | {seconds:.0f} |", flush=True)
    cv, test = ridge_reference(table, params.train)
    cells = [f"{cv[metric]['mean']:.3f} ± {cv[metric]['sd']:.3f}" for metric in ("spearman", "roc_auc")] + ["–", "–"]
    cells += [f"{value:.3f} [{low:.2f}, {high:.2f}]" for value, (low, high) in (test[metric] for metric in ("spearman", "roc_auc"))] + ["–", "–"]
    print("| reference: the ridge score alone, no CatBoost | – | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
