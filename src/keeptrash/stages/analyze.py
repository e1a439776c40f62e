"""Stage 7: the analyses a reviewer needs, as DVC metrics (metrics/analysis.json) and plots (metrics/analysis/)."""

import dataclasses

from keeptrash import paths
from keeptrash.analysis.registry import AnalysisContext, run_analyses
from keeptrash.errors import KeeptrashError, exits_cleanly
from keeptrash.features.extract import cache_namespace
from keeptrash.features.store import FeatureStore, default_cache_root
from keeptrash.io import read_table, write_csv, write_json
from keeptrash.model.trained import TrainedModel
from keeptrash.model.training import join_features
from keeptrash.params import Params, load_params


def analysis_context(params: Params) -> AnalysisContext:
    manifest = read_table(paths.MANIFEST, "download")
    table, columns, _ = join_features(read_table(paths.LABELS, "labels"), manifest, read_table(paths.FEATURES, "features"))
    train, val, test = (table[table["split"] == split].reset_index(drop=True) for split in ("train", "val", "test"))
    if test.empty or val.empty:
        raise KeeptrashError("the analyses need validation and test photos; set labels.val_fraction and labels.test_fraction above 0")
    # Degraded and paired photos get the features the model was trained on, whatever params.yaml says now.
    model = TrainedModel.load(paths.MODEL, params.features)
    params = dataclasses.replace(params, features=model.features)
    store = FeatureStore(default_cache_root(), cache_namespace(params.features))
    noise_copies = read_table(paths.NOISE_COPIES, "features")
    return AnalysisContext(model, params, manifest, table, columns, train, val, test, model.keep_probability(test), store, noise_copies)


def summary(metrics: dict) -> str:
    baselines, series = metrics["baselines"], metrics["series"]
    return (
        f"Brier {metrics['calibration']['brier_score']:.3f}, degradation monotonicity {metrics['degradation']['monotonicity']:.2f}, "
        f"test AUC catboost {baselines['catboost']['roc_auc']:.3f} vs logistic probe {baselines['logistic_probe']['roc_auc']:.3f}, "
        f"pair agreement {metrics['pairs'].get('agreement', float('nan')):.3f}, original take first in {series['original_first_share']:.0%} of series "
        f"(grouping ARI {series['grouping_adjusted_rand_index']:.2f})"
    )


@exits_cleanly
def main() -> None:
    metrics, plots = run_analyses(analysis_context(load_params()))
    for name, plot in plots.items():
        write_csv(paths.ANALYSIS_PLOTS / f"{name}.csv", plot)
    write_json(paths.ANALYSIS_METRICS, metrics)
    print(f"analyze: {summary(metrics)} -> {paths.ANALYSIS_METRICS}")


if __name__ == "__main__":
    main()
