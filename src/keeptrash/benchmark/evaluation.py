"""Test-split metrics of a trained model: what the benchmark stage reports."""

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from keeptrash.labels import KEEP, TRASH

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


# --- uncertainty: bootstrap intervals over test photos, and paired comparisons of two models ------------

HEADLINE_METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "spearman")
BOOTSTRAP_RESAMPLES = 2000
# Fixed, so the same predictions always give the same interval (and an unchanged metrics file).
BOOTSTRAP_SEED = 20260
CONFIDENCE = 0.95
BETTER, WORSE, WITHIN_NOISE, UNKNOWN = "better", "worse", "within noise", "unknown"


def ratings_by_source(photos: pd.DataFrame) -> np.ndarray:
    """(sources, photos): each source's scores in a row of its own, NaN elsewhere (and for unrated photos).

    AVA mean scores and own ratings are on different scales, so rank correlation is taken within each
    source and the sources' correlations are averaged (resampled_metrics). Pooling the sources as
    percentiles let a cross-validation fold's one or two AVA photos take arbitrary ranks among the own photos.
    """
    sources, scores = photos["source"].to_numpy(), photos["score"].to_numpy(dtype=float)
    return np.array([np.where(sources == source, scores, np.nan) for source in pd.unique(sources)]).reshape(-1, len(photos)) if len(photos) else np.empty((0, 0))


def spearman_within_sources(probabilities: np.ndarray, photos: pd.DataFrame) -> float:
    """Spearman of keep probability against score within each source, averaged weighted by rated photos."""
    everything = np.arange(len(photos))[None, :]
    return float(_spearman_within_sources(np.asarray(probabilities)[everything], ratings_by_source(photos), everything)[0])


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of x with the same row of y, ignoring NaN cells."""
    with np.errstate(invalid="ignore", divide="ignore"):
        x = x - np.nansum(x, axis=1, keepdims=True) / np.isfinite(x).sum(axis=1, keepdims=True)
        y = y - np.nansum(y, axis=1, keepdims=True) / np.isfinite(y).sum(axis=1, keepdims=True)
        return np.nansum(x * y, axis=1) / np.sqrt(np.nansum(x * x, axis=1) * np.nansum(y * y, axis=1))


def resampled_metrics(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float, ratings: np.ndarray, rows: np.ndarray
) -> dict[str, np.ndarray]:
    """The headline metrics of each resample; `rows` is (resamples, photos) row indices; ratings one source's
    scores per photo, or ratings_by_source's (sources, photos).

    With rows = [arange(n)] these are the point estimates (equal to sklearn's and scipy's);
    a resample missing a class (AUC, balanced accuracy) or with too few rated photos (Spearman) gives NaN.
    """
    label = labels[rows].astype(bool)
    probability = probabilities[rows]
    predicted_keep = probability >= threshold
    keeps = label.sum(axis=1)
    trashes = label.shape[1] - keeps
    with np.errstate(invalid="ignore", divide="ignore"):
        balanced = ((predicted_keep & label).sum(axis=1) / keeps + (~predicted_keep & ~label).sum(axis=1) / trashes) / 2
        # Mann-Whitney: the chance a random keep outranks a random trash photo (ties count half), i.e. ROC AUC.
        ranks = rankdata(probability, axis=1)
        auc = ((ranks * label).sum(axis=1) - keeps * (keeps + 1) / 2) / (keeps * trashes)
    both_classes = (keeps > 0) & (trashes > 0)
    return {
        "accuracy": (predicted_keep == label).mean(axis=1),
        "balanced_accuracy": np.where(both_classes, balanced, np.nan),
        "roc_auc": np.where(both_classes, auc, np.nan),
        "spearman": _spearman_within_sources(probability, ratings, rows),
    }


def _spearman_within_sources(probability: np.ndarray, ratings: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per resample, each source's Spearman weighted by its rated photos; sources with fewer than
    MIN_ROWS_FOR_SPEARMAN rated photos in a resample, or with no correlation, are left out of it; NaN when none is left."""
    weighted, weights = np.zeros(len(rows)), np.zeros(len(rows))
    for source_ratings in np.atleast_2d(ratings):
        rating = source_ratings[rows]
        rated = np.isfinite(rating)
        rated_probability = np.where(rated, probability, np.nan)
        spearman = _rowwise_pearson(rankdata(rated_probability, axis=1, nan_policy="omit"), rankdata(rating, axis=1, nan_policy="omit"))
        # A source whose ratings or predictions are all equal in a resample has no rank correlation: left out, like a small one.
        counted = np.where((rated.sum(axis=1) >= MIN_ROWS_FOR_SPEARMAN) & np.isfinite(spearman), rated.sum(axis=1), 0)
        weighted += np.where(counted > 0, spearman * counted, 0.0)
        weights += counted
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weights > 0, weighted / weights, np.nan)


def bootstrap_rows(photos: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, photos, size=(resamples, photos))


def percentile_interval(samples: np.ndarray, digits: int = 4) -> list[float]:
    """The central CONFIDENCE interval of the finite samples ([nan, nan] when there are none)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return [np.nan, np.nan]
    tail = 100 * (1 - CONFIDENCE) / 2
    return [round(float(value), digits) for value in np.percentile(finite, [tail, 100 - tail])]


def headline_with_intervals(labels: np.ndarray, probabilities: np.ndarray, threshold: float, ratings: np.ndarray) -> dict:
    """Each headline metric with its seeded 95% bootstrap interval over the test photos."""
    point = resampled_metrics(labels, probabilities, threshold, ratings, np.arange(len(labels))[None, :])
    samples = resampled_metrics(labels, probabilities, threshold, ratings, bootstrap_rows(len(labels)))
    return {
        name: {"value": round(float(point[name][0]), 4), "ci95": percentile_interval(samples[name])}
        for name in HEADLINE_METRICS
    }


def gap_interval(train_correct: np.ndarray, val_correct: np.ndarray) -> list[float]:
    """95% interval of train minus validation accuracy in points, resampling each split on its own."""
    train_rows = bootstrap_rows(len(train_correct))
    val_rows = bootstrap_rows(len(val_correct), seed=BOOTSTRAP_SEED + 1)
    samples = 100 * (train_correct[train_rows].mean(axis=1) - val_correct[val_rows].mean(axis=1))
    return percentile_interval(samples, digits=2)


def verdict(interval: list[float]) -> str:
    """better / worse when the whole interval of new minus base lies above / below zero."""
    low, high = interval
    if not (np.isfinite(low) and np.isfinite(high)):
        return UNKNOWN
    if low > 0:
        return BETTER
    if high < 0:
        return WORSE
    return WITHIN_NOISE


def paired_comparison(
    labels: np.ndarray, ratings: np.ndarray, base: np.ndarray, base_threshold: float, new: np.ndarray, new_threshold: float
) -> dict:
    """Both models' metrics on the same photos, and the paired bootstrap of new minus base per metric.

    Every resample draws the same photos for both models, so the photo-to-photo variation that both
    share cancels; identical predictions give a difference of exactly 0 in every resample.
    """
    everything = np.arange(len(labels))[None, :]
    rows = bootstrap_rows(len(labels))
    base_point = resampled_metrics(labels, base, base_threshold, ratings, everything)
    new_point = resampled_metrics(labels, new, new_threshold, ratings, everything)
    base_samples = resampled_metrics(labels, base, base_threshold, ratings, rows)
    new_samples = resampled_metrics(labels, new, new_threshold, ratings, rows)
    comparison = {}
    for name in HEADLINE_METRICS:
        interval = percentile_interval(new_samples[name] - base_samples[name])
        comparison[name] = {
            "base": round(float(base_point[name][0]), 4),
            "new": round(float(new_point[name][0]), 4),
            "change": round(float(new_point[name][0] - base_point[name][0]), 4),
            "ci95": interval,
            "verdict": verdict(interval),
        }
    return comparison


# metrics/summary.json holds one section, so its column names in `dvc exp show` never collide with train.json's.
SUMMARY_SECTION = "headline"
# Summary name -> the train stage's cross-validation key ("cv" in metrics/train.json, when it has one).
SUMMARY_METRICS = {
    "overfitting_gap": "overfitting_gap",
    "test_accuracy": "accuracy",
    "test_balanced_accuracy": "balanced_accuracy",
    "test_roc_auc": "roc_auc",
    "test_spearman": "spearman",
}


def _interval_text(interval: list, digits: int) -> str:
    low, high = interval
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return "n/a"
    return f"{low:.{digits}f} to {high:.{digits}f}"


def summary_metrics(headline: dict, gap: dict, overfitting: str, cross_validation: dict | None) -> dict:
    """The few figures a reviewer reads first: each value, its 95% interval and, when the train stage
    cross-validated, the folds' mean ± sd beside it (as text, so the file stays at about 15 rows), all under
    SUMMARY_SECTION."""
    figures = {"overfitting_gap": gap, **{f"test_{name}": headline[name] for name in HEADLINE_METRICS}}
    summary = {"overfitting_verdict": overfitting}
    for name, cv_key in SUMMARY_METRICS.items():
        digits = 1 if name == "overfitting_gap" else 3
        summary[name] = figures[name]["value"]
        summary[f"{name}_95ci"] = _interval_text(figures[name]["ci95"], digits)
        if cross_validation and cv_key in cross_validation:
            spread = cross_validation[cv_key]
            summary[f"{name}_cv"] = f"{spread['mean']:.{digits}f} ± {spread['sd']:.{digits}f}"
    return {SUMMARY_SECTION: summary}
