"""train.noise_penalty, measured: what learning from the training photos' noisy copies costs in ranking and buys in
robustness to noise.

Run from the repo root after `dvc repro` (it reads data/*.parquet, including data/noise_copies.parquet, and
models/model.cbm's feature settings):
    python benchmarks/noise_penalty.py [--penalties 0 0.3 0.5 1 2] [--photos N]

--photos N uses the copies of the first N of the features.noise_copies photos only (by sha256, as the features stage
chooses them), to measure how many a default needs. Per penalty (the committed params otherwise):
- cross-validation on train+val with the train stage's folds (train.cv_folds x train.cv_repeats, same seed), each fold's
  model learning from the copies of its own training photos only: Spearman and ROC AUC mean +- sd, and the paired
  per-fold Spearman difference from the first penalty with the corrected resampled t-test's p;
- fitted on the train split as the train stage does (threshold from val): on the validation photos, the share whose
  strong noisy copy (features.noise_copies) scores below the photo, a check that needs no test photo;
- the analyze stage's own series and noise degradation on the test photos, whose noise is not the copies' kind
  (reported, never used to choose).
"""

import argparse
import dataclasses
import time

import numpy as np

from keeptrash.analysis.registry import AnalysisContext, degradation, series
from keeptrash.features.noise_copies import NOISE_LEVELS
from keeptrash.model.cross_validation import fold_scores, paired_difference
from keeptrash.model.model_inputs import stamp_inputs
from keeptrash.model.trained import TrainedModel
from keeptrash.model.training import NOISE_COPY, decision_threshold, fit_classifier, training_inputs
from keeptrash.params import load_params
from keeptrash.stages.analyze import analysis_context

STRONGEST = len(NOISE_LEVELS) - 1


def trained_model(context: AnalysisContext, penalty: float) -> TrainedModel:
    """The train stage's recipe with this penalty on the train split, threshold from val."""
    params = dataclasses.replace(context.params.train, noise_penalty=penalty)
    spec, inputs, columns = training_inputs(context.table, params, context.noise_copies)
    train, val = inputs[inputs["split"] == "train"], inputs[inputs["split"] == "val"]
    classifier = fit_classifier(train, val, columns, params, inputs[inputs["split"] == NOISE_COPY])
    stamp_inputs(classifier, spec)
    return TrainedModel(classifier, context.model.features, decision_threshold(classifier, val, columns, params))


def validation_copies_below(context: AnalysisContext, model: TrainedModel) -> float:
    """The share of validation photos with a strong noisy copy whose copy's keep probability is below the photo's."""
    copies = context.noise_copies[(context.noise_copies["level"] == STRONGEST) & context.noise_copies["key"].isin(set(context.val["key"]))]
    photos = context.val.set_index("key").loc[copies["key"]]
    return float(np.mean(model.keep_probability(copies) < model.keep_probability(photos)))


def test_figures(context: AnalysisContext, model: TrainedModel) -> dict:
    context = dataclasses.replace(context, model=model, test_probabilities=model.keep_probability(context.test))
    series_metrics, noise = series(context).metrics, degradation(context).metrics["noise"]
    return {
        "original_first": series_metrics["original_first_share"],
        "high_iso_beats_original": series_metrics["per_take"]["high_iso"]["beats_original_share"],
        "best_of_1_keeps_originals": series_metrics["culling"]["best_of_1"]["keep_originals_kept_share"],
        "noise_curve": noise["mean_keep_probability"],
        "noise_falling_steps": noise["falling_steps"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--penalties", type=float, nargs="+", default=[0.0, 0.3, 0.5, 1.0, 2.0])
    parser.add_argument("--photos", type=int, default=None, help="use the copies of the first N photos only")
    args = parser.parse_args()
    context = analysis_context(load_params())
    if args.photos is not None:
        photos = context.manifest.set_index("key").loc[context.noise_copies["key"].unique(), "sha256"].sort_values().index[: args.photos]
        context = dataclasses.replace(context, noise_copies=context.noise_copies[context.noise_copies["key"].isin(set(photos))])
    print(f"{len(context.noise_copies)} noisy copies; train.objective {context.params.train.objective}, target {context.params.train.target_scale}\n")
    print("| noise_penalty | CV Spearman | CV ROC AUC | paired Spearman vs first (folds better, corrected p) | val: strong copy below photo | "
          "test series: original first | high-ISO beats original | best-of-1 keeps originals | test noise curve (sigma 0/8/16/32/64) |")
    print("|---|---|---|---|---|---|---|---|---|")
    first = None
    for penalty in args.penalties:
        started = time.perf_counter()
        folds = fold_scores(context.table, dataclasses.replace(context.params.train, noise_penalty=penalty), context.noise_copies)
        first = folds if first is None else first
        difference = paired_difference(folds, first, context.params.train.cv_folds)
        model = trained_model(context, penalty)
        figures = test_figures(context, model)
        print(
            f"| {penalty:g} | {folds['spearman'].mean():.3f} ± {folds['spearman'].std(ddof=1):.3f} | {folds['roc_auc'].mean():.3f} ± {folds['roc_auc'].std(ddof=1):.3f} | "
            f"{difference['mean']:+.4f} ± {difference['sd']:.4f} ({difference['better']}/{difference['folds']}, p {difference['p']:.2f}) | {validation_copies_below(context, model):.2f} | "
            f"{figures['original_first']:.2f} | {figures['high_iso_beats_original']:.2f} | {figures['best_of_1_keeps_originals']:.2f} | "
            f"{', '.join(f'{value:.2f}' for value in figures['noise_curve'])} ({time.perf_counter() - started:.0f} s) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
