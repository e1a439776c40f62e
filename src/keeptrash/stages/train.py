"""Stage 5: fit CatBoost on the train split, log learning curves, report accuracy per split, the gap and cross-validation."""

import time

from dvclive import Live

from keeptrash import paths
from keeptrash.model.cross_validation import cross_validate
from keeptrash.errors import KeeptrashError, exits_cleanly
from keeptrash.io import read_table, write_json
from keeptrash.params import load_params
from keeptrash.model import trained
from keeptrash.model.training import (
    NOISE_COPY,
    decision_threshold,
    fit_classifier,
    join_features,
    learning_curves,
    split_decisions,
    train_summary,
    training_inputs,
)

def log_learning_curves(curves: dict) -> None:
    """Loss and accuracy per iteration for train and validation (training.learning_curves), as dvclive step plots."""
    with Live(dir=str(paths.TRAIN_CURVES), save_dvc_exp=False, dvcyaml=None, report=None) as live:
        iterations = len(curves["train"]["logloss"])
        for step in range(iterations):
            for dataset, metrics in curves.items():
                for metric, values in metrics.items():
                    live.log_metric(f"{dataset}/{metric}", values[step])
            live.next_step()


@exits_cleanly
def main() -> None:
    params = load_params()
    table, _, skipped = join_features(
        read_table(paths.LABELS, "labels"), read_table(paths.MANIFEST, "download"), read_table(paths.FEATURES, "features")
    )
    noise_copies = read_table(paths.NOISE_COPIES, "features")
    if params.train.noise_penalty and not noise_copies["key"].isin(set(table.loc[table["split"] == "train", "key"])).any():
        raise KeeptrashError(
            f"train.noise_penalty {params.train.noise_penalty} learns from noisy copies of training photos, and none of the "
            f"features.noise_copies {params.features.noise_copies} photos is in the train split; raise features.noise_copies or set "
            "train.noise_penalty to 0"
        )
    spec, inputs, columns = training_inputs(table, params.train, noise_copies)
    train, val = inputs[inputs["split"] == "train"], inputs[inputs["split"] == "val"]
    model = fit_classifier(train, val, columns, params.train, inputs[inputs["split"] == NOISE_COPY])
    threshold = decision_threshold(model, val, columns, params.train)
    curves = learning_curves(model, train, val, columns)
    summary = train_summary(model, split_decisions(model, inputs, columns, threshold), threshold, skipped)
    summary["noise_copies"] = int((inputs["split"] == NOISE_COPY).sum())
    if params.train.cv_folds:
        print(f"train: cross-validating, {params.train.cv_folds} folds x {params.train.cv_repeats}", flush=True)
        started = time.perf_counter()
        summary["cv"] = cross_validate(table, params.train, noise_copies)
        cv = summary["cv"]
        print(
            f"train: {cv['folds']}-fold cross-validation x {cv['repeats']} in {time.perf_counter() - started:.1f} s: "
            + ", ".join(f"{name} {cv[name]['mean']:.3f} +- {cv[name]['sd']:.3f}" for name in ("roc_auc", "spearman", "overfitting_gap"))
        )
    # Nothing is written until every step has finished, and the model last: a stage interrupted part-way (Ctrl+C during
    # cross-validation) leaves the previous outputs as they were, never a model that `keeptrash cull` would take for
    # the result of a finished run.
    log_learning_curves(curves)
    write_json(paths.TRAIN_METRICS, summary)
    trained.save(model, params.features, spec, threshold, paths.MODEL)
    print(
        f"train: accuracy train {summary['train_accuracy']:.3f} / val {summary['val_accuracy']:.3f} / "
        f"test {summary['test_accuracy']:.3f}, gap {summary['overfitting_gap']} points ({summary['overfitting_verdict']}), keep at P >= {threshold}"
    )


if __name__ == "__main__":
    main()
