"""Repeated stratified k-fold cross-validation of the whole training recipe on train+val.

One validation split of ~100 photos moves by several points between seeds; the mean and standard
deviation over k x r held-out folds say whether an experiment really differs from another. Every
step that learns from data is refitted inside each fold on the fold's training part alone: the PCA
projection, the ridge score, the model (with objective regress, its calibration) and, with decision_threshold auto, the
threshold, which is chosen on the training part's own predictions. The held-out fold is scored only.
The test split is never seen. Above train.cv_max_rows train+val rows the folds are cut from a stratified sample of
that many: the fold sd at tens of thousands of rows is far below any difference between experiments worth
reporting, while the folds' refits would cost many times the model's own.
"""

import dataclasses

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split
from tqdm import tqdm

from keeptrash.errors import KeeptrashError
from keeptrash.benchmark.evaluation import classification_metrics, spearman_within_sources
from keeptrash.model.model_inputs import fit_inputs
from keeptrash.params import TrainParams
from keeptrash.model.training import choose_threshold, copy_targets, fit_classifier, with_targets

METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "spearman", "overfitting_gap")


def fold_metrics(
    fitted: pd.DataFrame, held_out: pd.DataFrame, params: TrainParams, noise_copies: pd.DataFrame | None = None
) -> dict[str, float]:
    """Fit the recipe on `fitted` alone (and the noisy copies of its photos) and score `held_out`: one fold's accuracy,
    balanced accuracy, ROC AUC, Spearman(keep probability, score) within each source and train-minus-held-out accuracy in points."""
    spec, fitted_inputs, copy_inputs = fit_inputs(fitted, params, noise_copies)
    held_out_inputs = spec.frame(held_out)
    columns = list(fitted_inputs.columns)
    # No early stopping inside a fold: its only validation data is the held-out part, which must stay unseen.
    model = fit_classifier(
        with_targets(fitted_inputs, fitted, params), fitted_inputs.iloc[0:0], columns, dataclasses.replace(params, early_stopping_rounds=0),
        copy_targets(copy_inputs, fitted, params),
    )
    fitted_probability = model.predict_proba(fitted_inputs)[:, 1]
    held_out_probability = model.predict_proba(held_out_inputs[columns])[:, 1]
    threshold = params.decision_threshold
    if threshold is None:
        threshold = choose_threshold(fitted["label"].reset_index(drop=True), fitted_probability)
    train_scores = classification_metrics(fitted["label"], fitted_probability, threshold)
    scores = classification_metrics(held_out["label"], held_out_probability, threshold)
    return {
        "accuracy": scores["accuracy"],
        "balanced_accuracy": scores["balanced_accuracy"],
        "roc_auc": scores["roc_auc"],
        "spearman": spearman_within_sources(held_out_probability, held_out),
        "overfitting_gap": 100 * (train_scores["accuracy"] - scores["accuracy"]),
    }


def cv_folds(labels: pd.Series, folds: int, repeats: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, held-out rows) positions of each fold, stratified by label, the same for the same seed."""
    smallest = int(labels.value_counts().min()) if labels.nunique() == 2 else 0
    if smallest < folds:
        raise KeeptrashError(
            f"train.cv_folds {folds} needs at least {folds} keep and {folds} trash photos in train+val, got {smallest} of the "
            "rarer class; label more photos or lower train.cv_folds (0 turns cross-validation off)"
        )
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels))


def cv_rows(table: pd.DataFrame, params: TrainParams) -> np.ndarray:
    """Positions in `table` of the train+val rows cross-validation uses, in table order: all of them, or above
    train.cv_max_rows a sample of that many stratified by label, the same for the same seed."""
    pool = np.flatnonzero(table["split"].isin(("train", "val")).to_numpy())
    if not params.cv_max_rows or len(pool) <= params.cv_max_rows:
        return pool
    labels = table["label"].to_numpy()[pool]
    rarer = int(min(np.sum(labels == 0), np.sum(labels == 1)))
    kept_of_rarer = rarer * params.cv_max_rows // len(pool)
    if rarer >= params.cv_folds > kept_of_rarer:
        raise KeeptrashError(
            f"train.cv_max_rows {params.cv_max_rows} keeps about {kept_of_rarer} photos of the rarer class of {len(pool)} train+val "
            f"photos, fewer than train.cv_folds {params.cv_folds}; raise it or set it to 0 (all rows)"
        )
    sample, _ = train_test_split(pool, train_size=params.cv_max_rows, stratify=labels, random_state=params.seed)
    return np.sort(sample)


def fold_scores(table: pd.DataFrame, params: TrainParams, noise_copies: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row of METRICS per held-out fold over the train+val rows of `table` cross-validation uses (cv_rows), in
    cv_folds' order: two experiments run with the same seed are scored on the same folds, so they can be compared
    fold by fold (paired_difference). With train.noise_penalty each fold's model learns from the noisy copies of that
    fold's training photos alone."""
    pool = table.iloc[cv_rows(table, params)].reset_index(drop=True)
    return pd.DataFrame(
        [
            fold_metrics(pool.iloc[fitted], pool.iloc[held_out], params, noise_copies)
            for fitted, held_out in tqdm(
                cv_folds(pool["label"], params.cv_folds, params.cv_repeats, params.seed), desc="cross-validation", unit="fold", disable=None
            )
        ]
    )


def paired_difference(scores: pd.DataFrame, baseline: pd.DataFrame, cv_folds: int, metric: str = "spearman") -> dict:
    """An experiment's per-fold `metric` minus the baseline's on the same folds (fold_scores, cv_folds folds a repeat):
    mean, sd, the folds it is better on, and the two-sided p of the corrected resampled t-test (Nadeau and Bengio 2003).

    The folds of repeated k-fold share most of their training rows, so their differences are not independent and a
    plain t-test over them finds differences that are not there; the correction widens the variance by the held-out
    rows' share of the training rows, 1 / (k - 1) (Bouckaert and Frank 2004)."""
    difference = scores[metric] - baseline[metric]
    mean, sd, count = float(difference.mean()), float(difference.std(ddof=1)), len(difference)
    corrected_se = sd * np.sqrt(1 / count + 1 / (cv_folds - 1))
    if corrected_se == 0:
        p = 1.0 if mean == 0 else 0.0
    else:
        p = float(2 * stats.t.sf(abs(mean) / corrected_se, df=count - 1))
    return {"mean": mean, "sd": sd, "better": int((difference > 0).sum()), "folds": count, "p": p}


def cross_validate(table: pd.DataFrame, params: TrainParams, noise_copies: pd.DataFrame | None = None) -> dict:
    """The train stage's `cv` metrics over train+val rows of `table` (label, source, score and feature columns): each
    metric's mean and sd over fold_scores."""
    per_fold = fold_scores(table, params, noise_copies)
    return {
        "folds": params.cv_folds,
        "repeats": params.cv_repeats,
        "rows": len(cv_rows(table, params)),
        **{
            name: {"mean": round(float(per_fold[name].mean()), 4), "sd": round(float(per_fold[name].std(ddof=1)), 4)}
            for name in METRICS
        },
    }
