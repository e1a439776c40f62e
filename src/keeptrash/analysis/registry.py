"""The analyses the analyze stage runs, by name: each one function from the shared context to its metrics and plots.

A new analysis is one function here and one entry in ANALYSES; its metrics land in metrics/analysis.json under its name
and each of its plots in metrics/analysis/<plot name>.csv.
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from keeptrash.analysis.baselines import baseline_metrics, scored_metrics
from keeptrash.analysis.calibration import PERFECT_CALIBRATION, calibration, confident_mistakes, probability_histogram
from keeptrash.analysis.categories import as_metrics, per_category
from keeptrash.analysis.degradation import degradation_jobs, degradation_summary
from keeptrash.analysis.learning_curve import learning_curve
from keeptrash.analysis.pairs import pair_agreement, read_pairs
from keeptrash.analysis.series import series_analysis
from keeptrash.analysis.training_curve import validation_curve
from keeptrash.errors import KeeptrashError
from keeptrash.features.store import FeatureStore
from keeptrash.features.table import feature_table, loaded_features
from keeptrash.images import file_digest
from keeptrash.model.trained import TrainedModel
from keeptrash.params import Params


@dataclasses.dataclass(frozen=True)
class AnalysisContext:
    """What every analysis may use: the trained model, the labelled photos with features and their splits, the store."""

    model: TrainedModel
    params: Params
    manifest: pd.DataFrame
    table: pd.DataFrame
    columns: list[str]
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    test_probabilities: np.ndarray
    store: FeatureStore
    noise_copies: pd.DataFrame | None = None  # the features stage's noisy copies, for refits with train.noise_penalty


@dataclasses.dataclass(frozen=True)
class AnalysisResult:
    metrics: dict
    plots: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)


def training(context: AnalysisContext) -> AnalysisResult:
    curve, best_marker, summary = validation_curve(context.model.classifier, context.val)
    return AnalysisResult(summary, {"training": curve, "best_iteration": best_marker})


def calibration_analysis(context: AnalysisContext) -> AnalysisResult:
    test, probabilities, settings = context.test, context.test_probabilities, context.params.analyze
    curve, metrics = calibration(test["label"], probabilities, settings.calibration_bins)
    plots = {
        "calibration": curve,
        "perfect_calibration": PERFECT_CALIBRATION,
        "keep_probability_histogram": probability_histogram(test["label"], probabilities, settings.histogram_bins),
        "confident_mistakes": confident_mistakes(test, probabilities),
    }
    for source, score_name in (("ava", "ava_mean_score"), ("own", "own_rating")):
        rows = test["source"] == source
        plots[f"probability_vs_{score_name}"] = pd.DataFrame(
            {score_name: test.loc[rows, "score"], "keep_probability": probabilities[rows.to_numpy()].round(4)}
        )
    return AnalysisResult(metrics, plots)


def per_source(context: AnalysisContext) -> AnalysisResult:
    table = per_category(context.test, context.test_probabilities, context.model.threshold, ["source"])
    return AnalysisResult(as_metrics(table), {"per_source": table})


def per_tag(context: AnalysisContext) -> AnalysisResult:
    table = per_category(context.test, context.test_probabilities, context.model.threshold, ["tag_1", "tag_2"])
    return AnalysisResult(as_metrics(table), {"per_tag": table})


def degradation(context: AnalysisContext) -> AnalysisResult:
    model, test, params = context.model, context.test, context.params
    photos = test.sort_values("key").head(params.analyze.degradation_photos)[["key"]].merge(context.manifest[["key", "path", "sha256"]], on="key")
    original = pd.Series(model.keep_probability(test.set_index("key").loc[photos["key"]]), index=photos["key"])
    jobs = degradation_jobs(photos)
    features, failures, _ = loaded_features(dict(zip(jobs["cache_key"], jobs["loader"])), params.features, context.store, params.download.max_image_pixels)
    if failures:
        raise KeeptrashError(f"degrading test photos failed ({next(iter(failures.values()))}); rerun dvc repro")
    scored = jobs.merge(features, left_on="cache_key", right_on="sha256")
    curves, summary = degradation_summary(original, scored.assign(keep_probability=model.keep_probability(scored)))
    return AnalysisResult(summary, {"degradation": curves})


def learning_curve_analysis(context: AnalysisContext) -> AnalysisResult:
    curve = learning_curve(context.table, context.params.train, context.noise_copies)
    metrics = {f"train_photos_{row.pop('train_photos')}": row for row in curve.to_dict("records")}
    return AnalysisResult(metrics, {"learning_curve": curve})


def baselines(context: AnalysisContext) -> AnalysisResult:
    train, val, test = context.train, context.val, context.test
    metrics = baseline_metrics(train, val, test, context.columns, context.params.train.seed)
    metrics["catboost"] = scored_metrics(val, context.model.keep_probability(val), test, context.test_probabilities)
    return AnalysisResult(metrics, {"baselines": pd.DataFrame([{"model": name, **scores} for name, scores in metrics.items()])})


def pairs(context: AnalysisContext) -> AnalysisResult:
    """Agreement with the preference pairs of params.analyze.pairs_csv; no metrics when none is set."""
    if not context.params.analyze.pairs_csv:
        return AnalysisResult({})
    pairs_csv, params = Path(context.params.analyze.pairs_csv), context.params
    preferences = read_pairs(pairs_csv)
    photos = sorted(set(preferences["preferred"]) | set(preferences["other"]))
    digests = [file_digest(Path(photo)) for photo in photos]
    features, failures, _ = feature_table(photos, digests, params.features, context.store, params.download.max_image_pixels)
    if failures:
        path, reason = next(iter(failures.items()))
        raise KeeptrashError(f"{pairs_csv}: photo {path} does not decode ({reason}); fix or remove its pairs")
    by_digest = dict(zip(features["sha256"], context.model.keep_probability(features)))
    manifest = context.manifest
    training_digests = set(manifest.loc[manifest["key"].isin(set(context.train["key"])), "sha256"])
    probability_of = {photo: by_digest[digest] for photo, digest in zip(photos, digests) if digest in by_digest}
    seen = {photo for photo, digest in zip(photos, digests) if digest in training_digests}
    return AnalysisResult(pair_agreement(preferences, probability_of, seen))


def series_photos(test: pd.DataFrame, count: int) -> pd.DataFrame:
    """The test photos made into series: people's own first (what they cull), then the others, each by key, so an
    AVA-only run has series too."""
    return test.assign(other=test["source"] != "own").sort_values(["other", "key"]).head(count).drop(columns="other")


def series(context: AnalysisContext) -> AnalysisResult:
    params = context.params
    chosen = series_photos(context.test, params.analyze.series_photos)
    if chosen.empty:
        return AnalysisResult({"series": 0}, {"series_takes": pd.DataFrame(columns=["take", "mean_keep_probability", "kept_share", "beats_original_share"])})
    metrics, takes = series_analysis(
        context.model, chosen[["key", "label"]].merge(context.manifest[["key", "path"]], on="key"), params.features, context.store,
        context.model.threshold, params.grouping, params.download.max_image_pixels, params.features.resolution,
    )
    return AnalysisResult(metrics, {"series_takes": takes})


ANALYSES: dict[str, Callable[[AnalysisContext], AnalysisResult]] = {
    "training": training,
    "calibration": calibration_analysis,
    "per_source": per_source,
    "per_tag": per_tag,
    "degradation": degradation,
    "learning_curve": learning_curve_analysis,
    "baselines": baselines,
    "pairs": pairs,
    "series": series,
}


def run_analyses(context: AnalysisContext) -> tuple[dict, dict[str, pd.DataFrame]]:
    """Every registered analysis in order: the metrics by analysis name, and all plots by plot name."""
    metrics, plots = {}, {}
    for name, analysis in ANALYSES.items():
        result = analysis(context)
        if clashing := plots.keys() & result.plots.keys():
            raise ValueError(f"analysis {name!r} writes plot {sorted(clashing)[0]!r} that an earlier analysis wrote")
        metrics[name] = result.metrics
        plots.update(result.plots)
    return metrics, plots
