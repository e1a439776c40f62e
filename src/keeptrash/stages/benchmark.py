"""Stage 6: score the test split; metrics per class and source with bootstrap intervals, ROC curve and
confusion matrix plots, and metrics/summary.json: the headline figures a reviewer reads first."""

import json

from dvclive import Live

from keeptrash import paths
from keeptrash.errors import KeeptrashError, exits_cleanly
from keeptrash.benchmark.evaluation import (
    CLASS_NAMES,
    benchmark_metrics,
    ratings_by_source,
    headline_with_intervals,
    summary_metrics,
)
from keeptrash.io import read_table, write_json, write_table
from keeptrash.model.trained import TrainedModel
from keeptrash.model.training import join_features


def read_train_metrics() -> dict:
    """The train stage's figures: the overfitting gap and verdict, and its cross-validation ("cv") when it ran one."""
    if not paths.TRAIN_METRICS.is_file():
        raise KeeptrashError(f"{paths.TRAIN_METRICS}: not found; run the 'train' stage first (dvc repro)")
    metrics = json.loads(paths.TRAIN_METRICS.read_text(encoding="utf-8"))
    if "overfitting_gap_ci95" not in metrics:
        raise KeeptrashError(f"{paths.TRAIN_METRICS}: written by an older train stage (no overfitting_gap_ci95); rerun it (dvc repro)")
    return metrics


@exits_cleanly
def main() -> None:
    table, _, _ = join_features(
        read_table(paths.LABELS, "labels"), read_table(paths.MANIFEST, "download"), read_table(paths.FEATURES, "features")
    )
    test = table[table["split"] == "test"].reset_index(drop=True)
    if test.empty:
        raise KeeptrashError("the test split is empty; set labels.test_fraction above 0")
    model = TrainedModel.load(paths.MODEL)
    threshold = model.threshold
    probabilities = model.keep_probability(test)
    metrics = benchmark_metrics(test, probabilities, table.loc[table["split"] == "train", "label"], threshold)
    headline = headline_with_intervals(test["label"].to_numpy(), probabilities, threshold, ratings_by_source(test))
    for name in ("accuracy", "balanced_accuracy", "roc_auc"):
        headline[name]["value"] = metrics[name]  # one figure per metric across files (rounding can differ in the 4th digit)
    metrics["spearman"] = headline["spearman"]["value"]
    metrics["ci95"] = {name: figure["ci95"] for name, figure in headline.items()}
    train_metrics = read_train_metrics()
    # The gap, its interval and its verdict are the train stage's: only it has the leave-one-out inputs of the
    # training photos that the gap is measured on.
    gap = {"value": train_metrics["overfitting_gap"], "ci95": train_metrics["overfitting_gap_ci95"]}
    # Written once everything is computed (as the train stage does): a run interrupted during the resampling leaves the
    # previous metrics, never a benchmark.json (which `keeptrash report` reads) from a run that did not finish.
    write_json(paths.BENCHMARK_METRICS, metrics)
    write_json(paths.SUMMARY_METRICS, summary_metrics(headline, gap, train_metrics["overfitting_verdict"], train_metrics.get("cv")))
    write_table(paths.PREDICTIONS, test[["key", "source", "score", "label"]].assign(keep_probability=probabilities))
    with Live(dir=str(paths.BENCHMARK_PLOTS), save_dvc_exp=False, dvcyaml=None, report=None) as live:
        live.log_sklearn_plot("roc", test["label"].to_numpy(), probabilities, name="roc")
        live.log_sklearn_plot(
            "confusion_matrix",
            test["label"].map(CLASS_NAMES).to_list(),
            [CLASS_NAMES[int(keep)] for keep in model.keeps(probabilities)],
            name="confusion_matrix",
        )
    print(
        f"benchmark: test accuracy {metrics['accuracy']:.3f}, balanced {metrics['balanced_accuracy']:.3f}, "
        f"ROC AUC {metrics['roc_auc']:.3f} (95% interval {headline['roc_auc']['ci95'][0]:.3f} to {headline['roc_auc']['ci95'][1]:.3f}; "
        f"majority baseline {metrics['majority_baseline_accuracy']:.3f}) -> {paths.SUMMARY_METRICS}"
    )


if __name__ == "__main__":
    main()
