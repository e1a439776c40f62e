"""Stage 6: score the test split; metrics per class and source, ROC curve and confusion matrix plots."""

from dvclive import Live

from keeptrash import paths
from keeptrash.errors import KeeptrashError, exits_cleanly
from keeptrash.evaluation import CLASS_NAMES, benchmark_metrics
from keeptrash.io import read_table, write_json, write_table
from keeptrash.model_inputs import keep_probability
from keeptrash.training import join_features, load_model


@exits_cleanly
def main() -> None:
    table, _, _ = join_features(
        read_table(paths.LABELS, "labels"), read_table(paths.MANIFEST, "download"), read_table(paths.FEATURES, "features")
    )
    test = table[table["split"] == "test"].reset_index(drop=True)
    if test.empty:
        raise KeeptrashError("the test split is empty; set labels.test_fraction above 0")
    model, metadata = load_model(paths.MODEL)
    threshold = metadata["decision_threshold"]
    probabilities = keep_probability(model, test)
    metrics = benchmark_metrics(test, probabilities, table.loc[table["split"] == "train", "label"], threshold)
    write_json(paths.BENCHMARK_METRICS, metrics)
    write_table(paths.PREDICTIONS, test[["key", "source", "score", "label"]].assign(keep_probability=probabilities))
    with Live(dir=str(paths.BENCHMARK_PLOTS), save_dvc_exp=False, dvcyaml=None, report=None) as live:
        live.log_sklearn_plot("roc", test["label"].to_numpy(), probabilities, name="roc")
        live.log_sklearn_plot(
            "confusion_matrix",
            test["label"].map(CLASS_NAMES).to_list(),
            [CLASS_NAMES[int(p >= threshold)] for p in probabilities],
            name="confusion_matrix",
        )
    print(
        f"benchmark: test accuracy {metrics['accuracy']:.3f}, balanced {metrics['balanced_accuracy']:.3f}, "
        f"ROC AUC {metrics['roc_auc']:.3f} (majority baseline {metrics['majority_baseline_accuracy']:.3f})"
    )


if __name__ == "__main__":
    main()
