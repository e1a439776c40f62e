"""Stage 7: the analyses a reviewer needs, as DVC metrics (metrics/analysis.json) and plots (metrics/analysis/)."""

import dataclasses
from pathlib import Path

import pandas as pd

from keeptrash import paths
from keeptrash.analysis.baselines import baseline_metrics, scored_metrics
from keeptrash.analysis.calibration import PERFECT_CALIBRATION, calibration, confident_mistakes, probability_histogram
from keeptrash.analysis.categories import as_metrics, per_category
from keeptrash.analysis.degradation import degradation_jobs, degradation_summary
from keeptrash.analysis.learning_curve import learning_curve
from keeptrash.analysis.pairs import pair_agreement, read_pairs
from keeptrash.analysis.series import series_analysis
from keeptrash.analysis.training_curve import validation_curve
from keeptrash.images import file_digest
from keeptrash.errors import KeeptrashError, exits_cleanly
from keeptrash.features.extract import cache_namespace
from keeptrash.features.table import feature_table, loaded_features
from keeptrash.features.store import FeatureStore, default_cache_root
from keeptrash.io import read_table, write_csv, write_json
from keeptrash.model.trained import TrainedModel
from keeptrash.params import Params, load_params
from keeptrash.model.training import join_features


def degradation_analysis(model: TrainedModel, test: pd.DataFrame, manifest: pd.DataFrame, params: Params, store: FeatureStore):
    photos = test.sort_values("key").head(params.analyze.degradation_photos)[["key"]].merge(manifest[["key", "path", "sha256"]], on="key")
    original = pd.Series(model.keep_probability(test.set_index("key").loc[photos["key"]]), index=photos["key"])
    jobs = degradation_jobs(photos)
    features, failures, _ = loaded_features(dict(zip(jobs["cache_key"], jobs["loader"])), params.features, store, params.download.max_image_pixels)
    if failures:
        raise KeeptrashError(f"degrading test photos failed ({next(iter(failures.values()))}); rerun dvc repro")
    scored = jobs.merge(features, left_on="cache_key", right_on="sha256")
    return degradation_summary(original, scored.assign(keep_probability=model.keep_probability(scored)))


def pairs_analysis(model: TrainedModel, pairs_csv: Path, manifest: pd.DataFrame, train_keys: set[str], params: Params, store: FeatureStore) -> dict:
    pairs = read_pairs(pairs_csv)
    photos = sorted(set(pairs["preferred"]) | set(pairs["other"]))
    digests = [file_digest(Path(photo)) for photo in photos]
    features, failures, _ = feature_table(photos, digests, params.features, store, params.download.max_image_pixels)
    if failures:
        path, reason = next(iter(failures.items()))
        raise KeeptrashError(f"{pairs_csv}: photo {path} does not decode ({reason}); fix or remove its pairs")
    by_digest = dict(zip(features["sha256"], model.keep_probability(features)))
    training_digests = set(manifest.loc[manifest["key"].isin(train_keys), "sha256"])
    probability_of = {photo: by_digest[digest] for photo, digest in zip(photos, digests) if digest in by_digest}
    seen = {photo for photo, digest in zip(photos, digests) if digest in training_digests}
    return pair_agreement(pairs, probability_of, seen)


@exits_cleanly
def main() -> None:
    params = load_params()
    manifest = read_table(paths.MANIFEST, "download")
    table, columns, _ = join_features(read_table(paths.LABELS, "labels"), manifest, read_table(paths.FEATURES, "features"))
    train, val, test = (table[table["split"] == split].reset_index(drop=True) for split in ("train", "val", "test"))
    if test.empty or val.empty:
        raise KeeptrashError("the analyses need validation and test photos; set labels.val_fraction and labels.test_fraction above 0")
    # Degraded and paired photos get the features the model was trained on, whatever params.yaml says now.
    model = TrainedModel.load(paths.MODEL, params.features)
    params = dataclasses.replace(params, features=model.features)
    threshold = model.threshold
    probabilities = model.keep_probability(test)
    store = FeatureStore(default_cache_root(), cache_namespace(params.features))
    plots = paths.ANALYSIS_PLOTS

    curve, best_marker, training = validation_curve(model.classifier, val)
    calibration_curve, calibration_metrics = calibration(test["label"], probabilities, params.analyze.calibration_bins)
    per_tag = per_category(test, probabilities, threshold, ["tag_1", "tag_2"])
    per_source = per_category(test, probabilities, threshold, ["source"])
    degradation_curves, degradation = degradation_analysis(model, test, manifest, params, store)
    learning = learning_curve(table, params.train)
    baselines = baseline_metrics(train, val, test, columns, params.train.seed)
    baselines["catboost"] = scored_metrics(val, model.keep_probability(val), test, probabilities)
    own_test = test[test["source"] == "own"].sort_values("key").head(params.analyze.series_photos)[["key", "label"]]
    series, series_takes = series_analysis(
        model, own_test.merge(manifest[["key", "path"]], on="key"), params.features, store, threshold, params.grouping,
        params.download.max_image_pixels, params.features.resolution,
    )
    pairs = (
        pairs_analysis(model, Path(params.analyze.pairs_csv), manifest, set(train["key"]), params, store)
        if params.analyze.pairs_csv
        else {}
    )

    write_csv(plots / "training.csv", curve)
    write_csv(plots / "best_iteration.csv", best_marker)
    write_csv(plots / "keep_probability_histogram.csv", probability_histogram(test["label"], probabilities, params.analyze.histogram_bins))
    write_csv(plots / "calibration.csv", calibration_curve)
    write_csv(plots / "perfect_calibration.csv", PERFECT_CALIBRATION)
    for source, score_name in (("ava", "ava_mean_score"), ("own", "own_rating")):
        rows = test["source"] == source
        write_csv(
            plots / f"probability_vs_{score_name}.csv",
            pd.DataFrame({score_name: test.loc[rows, "score"], "keep_probability": probabilities[rows.to_numpy()].round(4)}),
        )
    write_csv(plots / "per_tag.csv", per_tag)
    write_csv(plots / "per_source.csv", per_source)
    write_csv(plots / "degradation.csv", degradation_curves)
    write_csv(plots / "learning_curve.csv", learning)
    write_csv(plots / "baselines.csv", pd.DataFrame([{"model": name, **metrics} for name, metrics in baselines.items()]))
    write_csv(plots / "confident_mistakes.csv", confident_mistakes(test, probabilities))
    write_csv(plots / "series_takes.csv", series_takes)
    write_json(
        paths.ANALYSIS_METRICS,
        {
            "training": training,
            "calibration": calibration_metrics,
            "per_source": as_metrics(per_source),
            "per_tag": as_metrics(per_tag),
            "degradation": degradation,
            "learning_curve": {f"train_photos_{row.pop('train_photos')}": row for row in learning.to_dict("records")},
            "baselines": baselines,
            "pairs": pairs,
            "series": series,
        },
    )
    print(
        f"analyze: Brier {calibration_metrics['brier_score']:.3f}, degradation monotonicity {degradation['monotonicity']:.2f}, "
        f"test AUC catboost {baselines['catboost']['roc_auc']:.3f} vs logistic probe {baselines['logistic_probe']['roc_auc']:.3f}, "
        f"pair agreement {pairs.get('agreement', float('nan')):.3f}, original take first in {series['original_first_share']:.0%} of series "
        f"(grouping ARI {series['grouping_adjusted_rand_index']:.2f}) -> {paths.ANALYSIS_METRICS}"
    )


if __name__ == "__main__":
    main()
